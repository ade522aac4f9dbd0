/* micro_nvme.h — `micro --tier nvme`: what its measurements (micro_nvme_measure.c), its reports
 * (report/micro_nvme_report.c) and its command line (cmd_micro_nvme.c) share. */
#ifndef KVT_BENCH_MICRO_NVME_H
#define KVT_BENCH_MICRO_NVME_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "../bench.h"

#define MAX_QD 4096

typedef struct nv_opts {
    const char *dir;
    char path[PATH_MAX];  /* the store's file, also the raw loop's */
    char adir[PATH_MAX];  /* the anchor's directory of block files */
    uint64_t total;       /* bytes per pass */
    int runs;
    unsigned anchor_threads;
    unsigned big_qd;      /* the anchors, the demotion path and recovery run at this depth */
    int anchor, demote;
    uint64_t dram_bytes;
    uint8_t *src, *dst;   /* caller buffers: total bytes each */
    int fixed_ok;         /* whether the raw loop could register them */
    int raw_sum;          /* also run the raw loop with checksums */
    unsigned sum_helpers; /* its hashing threads: as many as the tier's */
    double touch_gbps;    /* page_touch_gbps() before the anchor rows */
} nv_opts;

/* Samples of one series: GB/s per pass, or a ratio per run. */
typedef bench_samples series;

typedef struct nv_row {
    uint64_t block_bytes, slot_bytes;
    unsigned qd;
    size_t blocks, pairs;
    double put, put_raw, put_fixed, put_ratio, put_p10, put_p90, put_ratio_fixed;
    double get, get_raw, get_fixed, get_ratio, get_p10, get_p90, get_ratio_fixed;
    double put_cpu, put_raw_cpu, put_fixed_cpu, get_cpu, get_raw_cpu, get_fixed_cpu; /* s/GB */
    /* The raw loop with checksums (raw_sum.h): GB/s, kvtier's ratio to it, CPU s/GB. */
    double put_sum, put_ratio_sum, put_sum_p10, put_sum_p90, put_sum_cpu;
    double get_sum, get_ratio_sum, get_sum_p10, get_sum_p90, get_sum_cpu;
    /* The checksum alone (raw_sum_hash_only: XXH3-64 of the run's blocks in
     * memory, one thread, no I/O), CPU s/GB; and kvtier's CPU per GB over
     * the raw loop's plus that: 1 = the tier costs no more CPU than moving
     * the bytes and checksumming them. */
    double hash_cpu, put_cpu_vs_raw_hash, get_cpu_vs_raw_hash;
    /* The driving thread's run delay, ms per pass: kvtier, raw, sum. */
    double put_delay, put_raw_delay, put_sum_delay, get_delay, get_raw_delay, get_sum_delay;
    uint64_t staged, fixed_host, resubmits, raw_fixed_ios, raw_resubmits;
} nv_row;

typedef struct anchor_row {
    uint64_t block_bytes;
    unsigned threads, qd;
    size_t blocks, pairs;
    double put_cache, put_wb, get_cold, get_warm, kvt_put, kvt_get;
    double get_vs_cold, get_vs_cold_p10, get_vs_cold_p90, get_vs_warm, put_vs_wb;
    int64_t cold_resident_pages; /* the most found before any cold pass */
} anchor_row;

typedef struct demote_row {
    uint64_t block_bytes, dram_bytes;
    unsigned qd;
    size_t blocks, pairs;
    double put, raw1, rawq, ratio1, ratioq;
    double demotions_per_run;
    size_t raw_writes; /* blocks the raw side writes per pass: kvtier's warm-up demotions */
    int fixed;
} demote_row;

typedef struct rec_row {
    uint64_t blocks, block_bytes, slot_bytes, file_bytes;
    unsigned qd;
    double create_ms, fill_s, close_ms;
    double open_ms, open_ms_min, open_ms_max, recovery_ms;
    uint64_t recovered;
    int reopens;
} rec_row;


/* ------------------------------------------------ micro_nvme_measure.c */

int nv_sys_fail(const char *what, int neg_errno);
void nv_describe_dir(const char *dir, char *fs, size_t fscap, char *dev, size_t devcap);
double nv_page_touch_gbps(void);

/* One block size x queue depth: kvtier, the raw loop (and with checksums),
 * the anchors; DRAM -> NVMe demotion; recovery of a filled file. Each
 * returns BENCH_OK or BENCH_FAILED after printing why. */
int nv_measure_row(nv_opts *o, nv_row *row, anchor_row *arow, const kvt_key *keys,
                   int with_anchor);
int nv_measure_demote(nv_opts *o, demote_row *row, const kvt_key *keys);
int nv_measure_recovery(nv_opts *o, rec_row *row, int reopens);

/* -------------------------------------------- report/micro_nvme_report.c */

void nv_report_json(const nv_opts *o, const bench_list *blocks, const nv_row *rows, size_t nrows,
                    const anchor_row *arows, size_t narows, const demote_row *drows,
                    size_t ndrows);
void nv_report_text(const nv_opts *o, const bench_list *blocks, const nv_row *rows, size_t nrows,
                    const anchor_row *arows, size_t narows, const demote_row *drows,
                    size_t ndrows);
void nv_report_recovery(const nv_opts *o, int json, const rec_row *rows, size_t nrows,
                        const bench_list *blocks);

#endif
