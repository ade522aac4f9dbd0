/* swarm_run.h — the agent swarm run through a store: configuration, results, the ramp, reports and shared flags. */
#ifndef KVT_BENCH_SWARM_RUN_H
#define KVT_BENCH_SWARM_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"
#include "../model/profile.h"
#include "../model/ttft.h"
#include "swarm.h"

/* ------------------------------------------------------- swarm_run.c */

/* Models whose bytes per token the presets know. */
typedef struct swarm_model {
    const char *name;
    uint64_t bytes_per_token; /* K and V, all layers, bf16 */
} swarm_model;
const swarm_model *swarm_find_model(const char *name); /* cmd/swarm_flags.c */

/* A run of the workload through a store. */
struct swarm_result;
typedef struct swarm_cfg {
    swarm_params wl;
    const char *model;
    uint64_t bytes_per_token; /* the model's, unscaled */
    uint64_t block_bytes;     /* moved per block (scaled) */
    uint64_t dram_bytes, nvme_bytes; /* nvme 0: no NVMe tier */
    const char *dir;          /* where the NVMe file goes */
    /* The cluster tier (kind "cluster", under DRAM/NVMe) when set: each run
     * works in a fresh directory made under it and removed after;
     * cluster_bytes its quota (0: none). */
    const char *cluster_dir;
    uint64_t cluster_bytes;
    /* The engines' HBM, modelled per instance (hbm.h): real bytes each
     * instance keeps of the prompts it served; 0: not modelled (the
     * engines' HBM is left out, every reuse comes from the store). */
    uint64_t hbm_bytes;
    const char *policy;       /* NULL: the library's default */
    uint64_t dram_ttl_ms, nvme_ttl_ms;
    uint32_t lease_ms;
    uint64_t buffer_bytes;    /* the engine's buffer (and the memcpy baseline's) */
    int copy_threads;         /* 0: the library's default */
    int no_promote;           /* KVT_IO_NO_PROMOTE on gets */
    int pairs;                /* pair DRAM gets and puts with memcpy (else hit ratios only) */
    int keep_file;            /* leave the NVMe file for the caller (cmd_default's raw loop) */
    /* Called once after the workload, its counters taken, before the store
     * closes (cmd_default measures its NVMe rows there); NULL: none. A
     * non-zero return is the run's result. */
    int (*at_end)(kvt_store *s, const struct swarm_cfg *c, struct swarm_result *r, void *user);
    void *at_end_user;
    /* TTFT model (ttft.h): the profile, its overrides applied; fields < 0
     * (profile "measured") are measured by the run. gpus and prefill_tps
     * are the profile's (HW_GPUS, the model's prefill). */
    hw_profile prof;
    uint32_t gpus;
    double prefill_tps, slo_ms;
    /* kvtier's efficiency per tier (library / raw path) the loads are
     * divided by: > 0 given (with its source), 0 measured by this run
     * where it can (DRAM: the memcpy pairs; NVMe: at_end's raw reads). */
    double dram_eff, nvme_eff, cluster_eff;
    char dram_eff_src[160], nvme_eff_src[160], cluster_eff_src[160];
    /* Parallelism and P/D (ttft.h's ttft_layout); all zero: one instance
     * per GPU, one queue (the model before layouts). */
    ttft_layout layout;
    double judge_after_s;     /* requests arriving earlier are not judged (ramp steps) */
    int ramp;                 /* part of a ramp (reports) */
    const char *label;        /* progress line prefix; NULL: no progress line (threads) */
} swarm_cfg;

/* One operation's totals (the library's time, the memcpy pairs). */
typedef struct swarm_op {
    uint64_t calls, blocks, bytes, ns;
    uint64_t base_bytes, base_ns;
    double lat_p50_us, lat_p99_us;
    double ratio, ratio_p10, ratio_p90; /* median and spread of library/memcpy pairs */
} swarm_op;

typedef struct swarm_result {
    swarm_counts gen;
    uint64_t requests, blocks, hit_blocks, hit_dram, hit_nvme, seen_blocks;
    uint64_t hit_cluster;        /* hit blocks lookup placed in the cluster tier */
    /* the modelled HBM (cfg hbm_bytes): blocks per instance; hit blocks
     * reused from it (not loaded from the store); of those, beyond the
     * store's own hit prefix (the store had lost them) */
    uint64_t hbm_blocks, hit_hbm, hbm_beyond_store;
    uint32_t instances;          /* the HBM model's: the layout's prefill servers */
    uint64_t prompt_tokens, hit_tokens;
    uint64_t reprefills; /* requests that missed a block an earlier request offered */
    double virtual_s, wall_s;
    swarm_op put, get, lookup;
    swarm_op put_dram;            /* the puts that demoted nothing: DRAM work only */
    uint64_t lookup_keys;
    swarm_op get_dram, get_nvme;  /* gets split by the tier lookup placed the blocks in */
    swarm_op get_cluster;
    uint64_t nvme_demote_put_ns;  /* time of put calls that demoted blocks to NVMe */
    uint64_t nvme_demote_bytes;   /* bytes those calls wrote to NVMe */
    /* store counters (deltas) */
    uint64_t dram_bytes_in, dram_bytes_out, nvme_bytes_in, nvme_bytes_out;
    uint64_t nvme_bytes_written, nvme_bytes_read;
    uint64_t dram_evictions, nvme_evictions, dram_expirations, nvme_expirations;
    uint64_t nvme_demotions_in, dram_promotions_in, put_rejected, put_present;
    uint64_t get_short, verify_errors;
    uint64_t dram_blocks, nvme_blocks, nvme_slot_bytes;
    /* TTFT */
    double ttft_p50_ms, ttft_p95_ms, ttft_p99_ms, ttft_mean_ms;
    double load_p50_ms, load_p99_ms, prefill_p50_ms, queue_p50_ms, queue_p95_ms;
    double within_slo, goodput_rps;
    uint64_t load_dram_bytes, load_nvme_bytes; /* real bytes the model loaded per tier */
    uint64_t load_cluster_bytes;
    double load_imbalance;       /* ttft_imbalance: busiest instance's prefill work / mean */
    const char *pd_via;          /* "dram" or "cluster" with P/D, else NULL */
    double pd_transfer_mean_ms;  /* P/D's transfer per request, mean */
    char cluster_eff_src[160];
    /* the cluster tier's library / raw read ratio measured at the end of
     * the run (0: not measured) and how */
    double cluster_lib_vs_raw, cluster_raw_gbps;
    char cluster_raw_src[160];
    char cluster_run_dir[4096];  /* the run's own directory under cluster_dir */
    hw_profile prof;  /* cfg's, with the measured fields filled in */
    ttft_rates rates; /* what the loads used */
    char dram_eff_src[160], nvme_eff_src[160];
    /* set by at_end (the default run's raw NVMe reads); 0: not measured */
    double nvme_lib_vs_raw, nvme_raw_gbps;
    /* the requests judged (arrived at judge_after_s or later) */
    uint64_t judged;
    double judged_p50_ms, judged_p95_ms, judged_hit_ratio;
    char nvme_path[4096]; /* with keep_file: the file to use and then remove */
    int nvme_temp;        /* its bench_temp handle (common/temp_files.c) */
} swarm_result;

/* Runs cfg; returns BENCH_OK, BENCH_USAGE (the library refused the
 * configuration) or BENCH_FAILED, after printing why to stderr. */
int swarm_run(const swarm_cfg *cfg, swarm_result *res);

/* swarm_cluster_raw.c: up to 256 of the cluster tier's block files under
 * dir read back raw (open, O_DIRECT read where taken, close; one at a
 * time), their payload rate set against kvtier's cluster gets (lib_bytes
 * in lib_ns): r's cluster_raw_gbps, cluster_lib_vs_raw (0: not measured)
 * and cluster_raw_src. */
void swarm_cluster_raw(const char *dir, uint64_t block_bytes, uint64_t lib_bytes, uint64_t lib_ns,
                       struct swarm_result *r);

/* The store every swarm run opens, one process's or one node's: DRAM of
 * dram_bytes, NVMe of nvme_bytes (whole slots; 0: none) in nvme_path, the
 * cluster tier in cluster_path (NULL: none; --cluster-bytes its quota), on
 * the manual clock; refusals name the swarm's flags, path_flag the one that
 * chose nvme_path. */
struct bench_store_spec swarm_store_spec(const swarm_cfg *c, uint64_t dram_bytes,
                                         uint64_t nvme_bytes, const char *nvme_path,
                                         const char *cluster_path, const char *path_flag);

/* bytes per ns = GB/s; 0 when ns is 0. */
double swarm_gbps(uint64_t bytes, uint64_t ns);
/* Where the run's NVMe file goes: --dir, else $TMPDIR, else /tmp. */
const char *swarm_dir(const swarm_cfg *c);

/* --------------------------------------------- report/swarm_report.c */

/* Adds the command-line description of cfg's flags shared by swarm and the
 * default run to a JSON object / prints the text report's sections. */
struct bench_json;
void swarm_json_config(struct bench_json *j, const swarm_cfg *c, const swarm_result *r);
void swarm_json_results(struct bench_json *j, const swarm_cfg *c, const swarm_result *r);
void swarm_text_workload(const swarm_cfg *c, const swarm_result *r);
void swarm_text_results(const swarm_cfg *c, const swarm_result *r);

/* ------------------------------------------------ cmd/swarm_flags.c */

/* The profile flags both commands take: --profile and one override per
 * field. swarm_profile_flags adds them to spec (texts: HW_NKEYS + 1 slots,
 * the last --profile); swarm_profile_resolve applies them to c (prof,
 * gpus, prefill_tps for c->model). Returns 0, or -1 with a message. */
struct barg;
int swarm_profile_flags(struct barg *spec, int ns, const char **texts);
int swarm_profile_resolve(const char *const *texts, swarm_cfg *c, char *msg, size_t cap);
/* The parallelism flags (--tp, --dp, --affinity, --pd, --pd-prefill,
 * --tp-efficiency, --hbm-bytes) of swarm and compare: texts filled by the parser;
 * swarm_layout_resolve sets c->layout (after swarm_profile_resolve: it
 * checks tp against the profile's GPUs). Returns 0, or -1 with a message. */
typedef struct swarm_layout_texts {
    const char *tp, *dp, *affinity, *pd_prefill, *tp_eff;
    int pd;
    uint64_t hbm_bytes; /* --hbm-bytes: the modelled HBM per instance (cfg hbm_bytes) */
} swarm_layout_texts;
int swarm_layout_flags(struct barg *spec, int ns, swarm_layout_texts *t);
int swarm_layout_resolve(const swarm_layout_texts *t, swarm_cfg *c, char *msg, size_t cap);
/* The cluster tier's flags of swarm and compare (--cluster-dir,
 * --cluster-bytes); swarm_cluster_resolve copies them into c. */
typedef struct swarm_cluster_texts {
    const char *dir;
    uint64_t bytes;
} swarm_cluster_texts;
int swarm_cluster_flags(struct barg *spec, int ns, swarm_cluster_texts *t);
void swarm_cluster_resolve(const swarm_cluster_texts *t, swarm_cfg *c);
/* report/swarm_report.c */
void swarm_text_profile(const swarm_cfg *c, const swarm_result *r);
void swarm_json_profile(struct bench_json *j, const swarm_result *r);
void swarm_json_layout(struct bench_json *j, const swarm_cfg *c);

/* ------------------------------------------------------ swarm_ramp.c */

/* The ramp: runs of N agents for step_s virtual seconds each (requests
 * before warm_s not judged), N searched by knee_find (knee.h). */
struct knee_opts;
struct knee_result;
typedef struct swarm_ramp_opts {
    double step_s, warm_s;
    uint32_t start, max;
    double growth, resolution;
    int max_steps;
    double wall_budget_s; /* no step starts after this much wall time (0: none) */
} swarm_ramp_opts;
/* knee_run (may be NULL): a copy of the knee's run (or of the first step's
 * when none met the SLO). Returns BENCH_OK or swarm_run's error. */
int swarm_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, struct knee_result *k,
               swarm_result *knee_run);
/* report/swarm_report.c */
void swarm_text_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, const struct knee_result *k);
void swarm_json_ramp(struct bench_json *j, const swarm_cfg *c, const swarm_ramp_opts *o,
                     const struct knee_result *k);

/* cmd/swarm_flags.c: "1/256" or "0.5" -> a fraction in (0, 1]. Returns 0 or -1. */
int swarm_parse_fraction(const char *text, double *out);
/* A decimal number with optional "s"/"m"/"h" suffix ("5m" = 300) -> seconds;
 * "inf"/"none"/"0" -> 0. Returns 0 or -1. */
int swarm_parse_seconds(const char *text, double *out);

#endif
