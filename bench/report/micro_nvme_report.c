/* micro_nvme_report.c — the reports of `micro --tier nvme`: text and JSON of the rows, the anchors, demotion, overhead, recovery. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "../cmd/micro_nvme.h"
#include "rows.h"

/* --------------------------------------------------------------- reports */

static void json_common_config(bench_json *j, const nv_opts *o, const char *mode)
{
    char fs[32], dev[64];
    nv_describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_json_str(j, "tier", "nvme");
    bench_json_str(j, "mode", mode);
    bench_json_str(j, "dir", o->dir);
    bench_json_str(j, "filesystem", fs);
    bench_json_str(j, "device", dev);
    bench_json_i64(j, "runs", o->runs);
}

/* On-media size per block size: one row each. */
static const bench_field overhead_fields[] = {
    {"block_bytes", BT_U64},
    {"slot_bytes", BT_U64},
    {"overhead", BT_NUM},
};

static const bench_col overhead_cols[] = {
    BENCH_COL_LEFT("block", "bytes", "block_bytes"),
    BENCH_COL("slot on media", "bytes", "slot_bytes"),
    {.head = "overhead", .fmt = "%.2f%%", .keys = {"overhead"}, .scale = 100},
};

static void overhead_fill(bench_rows *t, const bench_list *blocks)
{
    bench_rows_init(t, overhead_fields, (int)(sizeof overhead_fields / sizeof *overhead_fields));
    for (int i = 0; i < blocks->n; i++) {
        uint64_t slot = 0;
        bench_slot_bytes(blocks->v[i], &slot);
        bench_rows_add(t);
        bench_rows_u64(t, "block_bytes", blocks->v[i]);
        bench_rows_u64(t, "slot_bytes", slot);
        bench_rows_num(t, "overhead", (double)(slot - blocks->v[i]) / (double)blocks->v[i]);
    }
}

static void json_overhead(bench_json *j, const bench_list *blocks)
{
    bench_rows t;
    overhead_fill(&t, blocks);
    bench_rows_json(&t, j, "overhead");
    bench_rows_free(&t);
}

static void text_overhead(const bench_list *blocks)
{
    bench_rows t;
    overhead_fill(&t, blocks);
    printf("\n  on-media overhead (4 KiB header unit + payload rounded to 4 KiB; plus one 4 KiB "
           "superblock per file):\n");
    bench_rows_text(&t, overhead_cols, 3, stdout, 2);
    bench_rows_free(&t);
}

/* ------------------------------------------- kvtier vs raw: the rows */

static const bench_field nv_fields[] = {
    {"block_bytes", BT_U64},
    {"queue_depth", BT_U64},
    {"slot_bytes", BT_U64},
    {"blocks_per_run", BT_U64},
    {"run_bytes", BT_U64},
    {"put_gb_per_s", BT_NUM},
    {"put_raw_gb_per_s", BT_NUM},
    {"put_raw_fixed_gb_per_s", BT_NUM},
    {"put_ratio", BT_NUM},
    {"put_ratio_p10", BT_NUM},
    {"put_ratio_p90", BT_NUM},
    {"put_ratio_fixed", BT_NUM},
    {"get_gb_per_s", BT_NUM},
    {"get_raw_gb_per_s", BT_NUM},
    {"get_raw_fixed_gb_per_s", BT_NUM},
    {"get_ratio", BT_NUM},
    {"get_ratio_p10", BT_NUM},
    {"get_ratio_p90", BT_NUM},
    {"get_ratio_fixed", BT_NUM},
    {"put_cpu_s_per_gb", BT_NUM},
    {"put_raw_cpu_s_per_gb", BT_NUM},
    {"put_raw_fixed_cpu_s_per_gb", BT_NUM},
    {"get_cpu_s_per_gb", BT_NUM},
    {"get_raw_cpu_s_per_gb", BT_NUM},
    {"get_raw_fixed_cpu_s_per_gb", BT_NUM},
    {"put_raw_sum_gb_per_s", BT_NUM},
    {"put_ratio_sum", BT_NUM},
    {"put_ratio_sum_p10", BT_NUM},
    {"put_ratio_sum_p90", BT_NUM},
    {"put_raw_sum_cpu_s_per_gb", BT_NUM},
    {"get_raw_sum_gb_per_s", BT_NUM},
    {"get_ratio_sum", BT_NUM},
    {"get_ratio_sum_p10", BT_NUM},
    {"get_ratio_sum_p90", BT_NUM},
    {"get_raw_sum_cpu_s_per_gb", BT_NUM},
    {"hash_cpu_s_per_gb", BT_NUM},
    {"put_cpu_vs_raw_hash", BT_NUM},
    {"get_cpu_vs_raw_hash", BT_NUM},
    {"put_run_delay_ms", BT_NUM},
    {"put_raw_run_delay_ms", BT_NUM},
    {"put_raw_sum_run_delay_ms", BT_NUM},
    {"get_run_delay_ms", BT_NUM},
    {"get_raw_run_delay_ms", BT_NUM},
    {"get_raw_sum_run_delay_ms", BT_NUM},
    {"pairs", BT_U64},
    {"staged_blocks", BT_U64},
    {"fixed_host", BT_U64},
    {"resubmits", BT_U64},
    {"raw_fixed_transfers", BT_U64},
    {"raw_resubmits", BT_U64},
};

#define NV_KEY_COLS BENCH_COL_LEFT("block", "bytes", "block_bytes"), BENCH_COL("QD", NULL, "queue_depth")

static const bench_col nv_rate_cols[] = {
    NV_KEY_COLS,
    BENCH_COL("put GB/s", "%.2f", "put_gb_per_s"),
    BENCH_COL("raw", "%.2f", "put_raw_gb_per_s"),
    BENCH_COL("reg", "%.2f", "put_raw_fixed_gb_per_s"),
    BENCH_COL_RATIO("put/raw", "put_ratio", "put_ratio_p10", "put_ratio_p90"),
    BENCH_COL("get GB/s", "%.2f", "get_gb_per_s"),
    BENCH_COL("raw", "%.2f", "get_raw_gb_per_s"),
    BENCH_COL("reg", "%.2f", "get_raw_fixed_gb_per_s"),
    BENCH_COL_RATIO("get/raw", "get_ratio", "get_ratio_p10", "get_ratio_p90"),
};

static const bench_col nv_sum_cols[] = {
    NV_KEY_COLS,
    BENCH_COL("put GB/s", "%.2f", "put_gb_per_s"),
    BENCH_COL("sum", "%.2f", "put_raw_sum_gb_per_s"),
    BENCH_COL_RATIO("put/sum", "put_ratio_sum", "put_ratio_sum_p10", "put_ratio_sum_p90"),
    BENCH_COL("get GB/s", "%.2f", "get_gb_per_s"),
    BENCH_COL("sum", "%.2f", "get_raw_sum_gb_per_s"),
    BENCH_COL_RATIO("get/sum", "get_ratio_sum", "get_ratio_sum_p10", "get_ratio_sum_p90"),
};

/* CPU s/GB shown as ms/GB. */
#define NV_CPU_COL(head_, key_) {.head = (head_), .fmt = "%.0f", .keys = {(key_)}, .scale = 1e3}
static const bench_col nv_cpu_cols[] = {
    NV_KEY_COLS,
    NV_CPU_COL("put kvtier", "put_cpu_s_per_gb"),
    NV_CPU_COL("raw", "put_raw_cpu_s_per_gb"),
    NV_CPU_COL("reg", "put_raw_fixed_cpu_s_per_gb"),
    NV_CPU_COL("sum", "put_raw_sum_cpu_s_per_gb"),
    NV_CPU_COL("get kvtier", "get_cpu_s_per_gb"),
    NV_CPU_COL("raw", "get_raw_cpu_s_per_gb"),
    NV_CPU_COL("reg", "get_raw_fixed_cpu_s_per_gb"),
    NV_CPU_COL("sum", "get_raw_sum_cpu_s_per_gb"),
};

/* The checksum alone, and kvtier's CPU over what it cannot avoid. */
static const bench_col nv_hash_cols[] = {
    NV_KEY_COLS,
    NV_CPU_COL("hash ms/GB", "hash_cpu_s_per_gb"),
    BENCH_COL("put kvtier/(raw+hash)", "%.2f", "put_cpu_vs_raw_hash"),
    BENCH_COL("get kvtier/(raw+hash)", "%.2f", "get_cpu_vs_raw_hash"),
};

static const bench_col nv_delay_cols[] = {
    NV_KEY_COLS,
    BENCH_COL("put kvtier", "%.2f", "put_run_delay_ms"),
    BENCH_COL("raw", "%.2f", "put_raw_run_delay_ms"),
    BENCH_COL("sum", "%.2f", "put_raw_sum_run_delay_ms"),
    BENCH_COL("get kvtier", "%.2f", "get_run_delay_ms"),
    BENCH_COL("raw", "%.2f", "get_raw_run_delay_ms"),
    BENCH_COL("sum", "%.2f", "get_raw_sum_run_delay_ms"),
};

static void nv_fill(bench_rows *t, const nv_row *rows, size_t nrows)
{
    bench_rows_init(t, nv_fields, (int)(sizeof nv_fields / sizeof *nv_fields));
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_rows_add(t);
        bench_rows_u64(t, "block_bytes", r->block_bytes);
        bench_rows_u64(t, "queue_depth", r->qd);
        bench_rows_u64(t, "slot_bytes", r->slot_bytes);
        bench_rows_u64(t, "blocks_per_run", r->blocks);
        bench_rows_u64(t, "run_bytes", (uint64_t)r->blocks * r->block_bytes);
        bench_rows_num(t, "put_gb_per_s", r->put);
        bench_rows_num(t, "put_raw_gb_per_s", r->put_raw);
        bench_rows_num(t, "put_raw_fixed_gb_per_s", r->put_fixed);
        bench_rows_num(t, "put_ratio", r->put_ratio);
        bench_rows_num(t, "put_ratio_p10", r->put_p10);
        bench_rows_num(t, "put_ratio_p90", r->put_p90);
        bench_rows_num(t, "put_ratio_fixed", r->put_ratio_fixed);
        bench_rows_num(t, "get_gb_per_s", r->get);
        bench_rows_num(t, "get_raw_gb_per_s", r->get_raw);
        bench_rows_num(t, "get_raw_fixed_gb_per_s", r->get_fixed);
        bench_rows_num(t, "get_ratio", r->get_ratio);
        bench_rows_num(t, "get_ratio_p10", r->get_p10);
        bench_rows_num(t, "get_ratio_p90", r->get_p90);
        bench_rows_num(t, "get_ratio_fixed", r->get_ratio_fixed);
        bench_rows_num(t, "put_cpu_s_per_gb", r->put_cpu);
        bench_rows_num(t, "put_raw_cpu_s_per_gb", r->put_raw_cpu);
        bench_rows_num(t, "put_raw_fixed_cpu_s_per_gb", r->put_fixed_cpu);
        bench_rows_num(t, "get_cpu_s_per_gb", r->get_cpu);
        bench_rows_num(t, "get_raw_cpu_s_per_gb", r->get_raw_cpu);
        bench_rows_num(t, "get_raw_fixed_cpu_s_per_gb", r->get_fixed_cpu);
        bench_rows_num(t, "put_raw_sum_gb_per_s", r->put_sum);
        bench_rows_num(t, "put_ratio_sum", r->put_ratio_sum);
        bench_rows_num(t, "put_ratio_sum_p10", r->put_sum_p10);
        bench_rows_num(t, "put_ratio_sum_p90", r->put_sum_p90);
        bench_rows_num(t, "put_raw_sum_cpu_s_per_gb", r->put_sum_cpu);
        bench_rows_num(t, "get_raw_sum_gb_per_s", r->get_sum);
        bench_rows_num(t, "get_ratio_sum", r->get_ratio_sum);
        bench_rows_num(t, "get_ratio_sum_p10", r->get_sum_p10);
        bench_rows_num(t, "get_ratio_sum_p90", r->get_sum_p90);
        bench_rows_num(t, "get_raw_sum_cpu_s_per_gb", r->get_sum_cpu);
        bench_rows_num(t, "hash_cpu_s_per_gb", r->hash_cpu);
        bench_rows_num(t, "put_cpu_vs_raw_hash", r->put_cpu_vs_raw_hash);
        bench_rows_num(t, "get_cpu_vs_raw_hash", r->get_cpu_vs_raw_hash);
        bench_rows_num(t, "put_run_delay_ms", r->put_delay);
        bench_rows_num(t, "put_raw_run_delay_ms", r->put_raw_delay);
        bench_rows_num(t, "put_raw_sum_run_delay_ms", r->put_sum_delay);
        bench_rows_num(t, "get_run_delay_ms", r->get_delay);
        bench_rows_num(t, "get_raw_run_delay_ms", r->get_raw_delay);
        bench_rows_num(t, "get_raw_sum_run_delay_ms", r->get_sum_delay);
        bench_rows_u64(t, "pairs", r->pairs);
        bench_rows_u64(t, "staged_blocks", r->staged);
        bench_rows_u64(t, "fixed_host", r->fixed_host);
        bench_rows_u64(t, "resubmits", r->resubmits);
        bench_rows_u64(t, "raw_fixed_transfers", r->raw_fixed_ios);
        bench_rows_u64(t, "raw_resubmits", r->raw_resubmits);
    }
}

/* ------------------------------------------ the anchors' files: rows */

static const bench_field anchor_fields[] = {
    {"block_bytes", BT_U64},
    {"threads", BT_U64},
    {"queue_depth", BT_U64},
    {"blocks_per_run", BT_U64},
    {"put_page_cache_gb_per_s", BT_NUM},
    {"put_writeback_gb_per_s", BT_NUM},
    {"get_cold_gb_per_s", BT_NUM},
    {"get_warm_gb_per_s", BT_NUM},
    {"cold_resident_pages", BT_I64},
    {"kvtier_put_gb_per_s", BT_NUM},
    {"kvtier_get_gb_per_s", BT_NUM},
    {"get_vs_cold", BT_NUM},
    {"get_vs_cold_p10", BT_NUM},
    {"get_vs_cold_p90", BT_NUM},
    {"get_vs_warm", BT_NUM},
    {"put_vs_writeback", BT_NUM},
    {"pairs", BT_U64},
};

static const bench_col anchor_cols[] = {
    BENCH_COL_LEFT("block", "bytes", "block_bytes"),
    BENCH_COL("put", "%.2f", "put_page_cache_gb_per_s"),
    BENCH_COL("put+wb", "%.2f", "put_writeback_gb_per_s"),
    BENCH_COL("get cold", "%.2f", "get_cold_gb_per_s"),
    BENCH_COL("get warm", "%.2f", "get_warm_gb_per_s"),
    BENCH_COL("kvtier put", "%.2f", "kvtier_put_gb_per_s"),
    BENCH_COL("kvtier get", "%.2f", "kvtier_get_gb_per_s"),
    BENCH_COL("get vs cold", "%.2fx (%.2f-%.2f)", "get_vs_cold", "get_vs_cold_p10",
              "get_vs_cold_p90"),
    /* No "get vs warm" column: a page-cache read next to kvtier's reads of
     * the device is not the same work (JSON get_vs_warm stays, documented
     * as such); the warm rate is printed as what this machine's page cache
     * gives instead. */
};

static void anchor_fill(bench_rows *t, const anchor_row *arows, size_t narows)
{
    bench_rows_init(t, anchor_fields, (int)(sizeof anchor_fields / sizeof *anchor_fields));
    for (size_t i = 0; i < narows; i++) {
        const anchor_row *r = &arows[i];
        bench_rows_add(t);
        bench_rows_u64(t, "block_bytes", r->block_bytes);
        bench_rows_u64(t, "threads", r->threads);
        bench_rows_u64(t, "queue_depth", r->qd);
        bench_rows_u64(t, "blocks_per_run", r->blocks);
        bench_rows_num(t, "put_page_cache_gb_per_s", r->put_cache);
        bench_rows_num(t, "put_writeback_gb_per_s", r->put_wb);
        bench_rows_num(t, "get_cold_gb_per_s", r->get_cold);
        bench_rows_num(t, "get_warm_gb_per_s", r->get_warm);
        bench_rows_i64(t, "cold_resident_pages", r->cold_resident_pages);
        bench_rows_num(t, "kvtier_put_gb_per_s", r->kvt_put);
        bench_rows_num(t, "kvtier_get_gb_per_s", r->kvt_get);
        bench_rows_num(t, "get_vs_cold", r->get_vs_cold);
        bench_rows_num(t, "get_vs_cold_p10", r->get_vs_cold_p10);
        bench_rows_num(t, "get_vs_cold_p90", r->get_vs_cold_p90);
        bench_rows_num(t, "get_vs_warm", r->get_vs_warm);
        bench_rows_num(t, "put_vs_writeback", r->put_vs_wb);
        bench_rows_u64(t, "pairs", r->pairs);
    }
}

/* ------------------------------------------ DRAM -> NVMe demotion: rows */

static const bench_field demote_fields[] = {
    {"block_bytes", BT_U64},
    {"dram_bytes", BT_U64},
    {"queue_depth", BT_U64},
    {"blocks_per_run", BT_U64},
    {"demotions_per_run", BT_NUM},
    {"raw_writes", BT_U64},
    {"put_gb_per_s", BT_NUM},
    {"raw_qd1_gb_per_s", BT_NUM},
    {"raw_gb_per_s", BT_NUM},
    {"ratio_qd1", BT_NUM},
    {"ratio", BT_NUM},
    {"raw_registered", BT_BOOL},
    {"pairs", BT_U64},
};

static const bench_col demote_cols[] = {
    BENCH_COL_LEFT("block", "bytes", "block_bytes"),
    BENCH_COL("DRAM", "bytes", "dram_bytes"),
    BENCH_COL("demoted/run", "%.0f of %.0f", "demotions_per_run", "blocks_per_run"),
    BENCH_COL("raw writes", NULL, "raw_writes"),
    BENCH_COL("put GB/s", "%.2f", "put_gb_per_s"),
    BENCH_COL("raw QD1", "%.2f", "raw_qd1_gb_per_s"),
    BENCH_COL("raw QD", "%.2f", "raw_gb_per_s"),
    BENCH_COL("QD", NULL, "queue_depth"),
    {.head = "vs QD1", .fmt = "%.1f%%", .keys = {"ratio_qd1"}, .scale = 100},
    {.head = "vs QD", .fmt = "%.1f%%", .keys = {"ratio"}, .scale = 100},
};

static void demote_fill(bench_rows *t, const demote_row *drows, size_t ndrows)
{
    bench_rows_init(t, demote_fields, (int)(sizeof demote_fields / sizeof *demote_fields));
    for (size_t i = 0; i < ndrows; i++) {
        const demote_row *r = &drows[i];
        bench_rows_add(t);
        bench_rows_u64(t, "block_bytes", r->block_bytes);
        bench_rows_u64(t, "dram_bytes", r->dram_bytes);
        bench_rows_u64(t, "queue_depth", r->qd);
        bench_rows_u64(t, "blocks_per_run", r->blocks);
        bench_rows_num(t, "demotions_per_run", r->demotions_per_run);
        bench_rows_u64(t, "raw_writes", r->raw_writes);
        bench_rows_num(t, "put_gb_per_s", r->put);
        bench_rows_num(t, "raw_qd1_gb_per_s", r->raw1);
        bench_rows_num(t, "raw_gb_per_s", r->rawq);
        bench_rows_num(t, "ratio_qd1", r->ratio1);
        bench_rows_num(t, "ratio", r->ratioq);
        bench_rows_bool(t, "raw_registered", r->fixed);
        bench_rows_u64(t, "pairs", r->pairs);
    }
}

/* ------------------------------------------------------ recovery: rows */

static const bench_field rec_fields[] = {
    {"blocks", BT_U64},
    {"block_bytes", BT_U64},
    {"slot_bytes", BT_U64},
    {"file_bytes", BT_U64},
    {"queue_depth", BT_U64},
    {"create_ms", BT_NUM},
    {"fill_s", BT_NUM},
    {"fill_blocks_per_s", BT_NUM},
    {"close_ms", BT_NUM},
    {"open_ms", BT_NUM},
    {"open_ms_min", BT_NUM},
    {"open_ms_max", BT_NUM},
    {"recovery_ms", BT_NUM},
    {"headers_per_s", BT_NUM},
    {"recovered", BT_U64},
    {"reopens", BT_I64},
};

static const bench_col rec_cols[] = {
    BENCH_COL("blocks", NULL, "blocks"),
    BENCH_COL_LEFT("block", "bytes", "block_bytes"),
    BENCH_COL("slot", "bytes", "slot_bytes"),
    BENCH_COL("file", "bytes", "file_bytes"),
    BENCH_COL("fill s", "%.2f", "fill_s"),
    BENCH_COL("close ms", "%.1f", "close_ms"),
    BENCH_COL("open ms (min-max)", "%.1f (%.1f-%.1f)", "open_ms", "open_ms_min", "open_ms_max"),
    BENCH_COL("recovery ms", "%.0f", "recovery_ms"),
    BENCH_COL("headers/s", "%.0f", "headers_per_s"),
    BENCH_COL("recovered", NULL, "recovered"),
};

static void rec_fill(bench_rows *t, const rec_row *rows, size_t nrows)
{
    bench_rows_init(t, rec_fields, (int)(sizeof rec_fields / sizeof *rec_fields));
    for (size_t i = 0; i < nrows; i++) {
        const rec_row *r = &rows[i];
        bench_rows_add(t);
        bench_rows_u64(t, "blocks", r->blocks);
        bench_rows_u64(t, "block_bytes", r->block_bytes);
        bench_rows_u64(t, "slot_bytes", r->slot_bytes);
        bench_rows_u64(t, "file_bytes", r->file_bytes);
        bench_rows_u64(t, "queue_depth", r->qd);
        bench_rows_num(t, "create_ms", r->create_ms);
        bench_rows_num(t, "fill_s", r->fill_s);
        bench_rows_num(t, "fill_blocks_per_s", (double)r->blocks / r->fill_s);
        bench_rows_num(t, "close_ms", r->close_ms);
        bench_rows_num(t, "open_ms", r->open_ms);
        bench_rows_num(t, "open_ms_min", r->open_ms_min);
        bench_rows_num(t, "open_ms_max", r->open_ms_max);
        bench_rows_num(t, "recovery_ms", r->recovery_ms);
        bench_rows_num(t, "headers_per_s",
                       r->recovery_ms > 0 ? (double)r->blocks / (r->recovery_ms / 1e3) : NAN);
        bench_rows_u64(t, "recovered", r->recovered);
        bench_rows_i64(t, "reopens", r->reopens);
    }
}

#define NCOLS(cols) ((int)(sizeof cols / sizeof *cols))

/* ---------------------------------------------------------- the reports */

void nv_report_json(const nv_opts *o, const bench_list *blocks, const nv_row *rows,
                    size_t nrows, const anchor_row *arows, size_t narows,
                    const demote_row *drows, size_t ndrows)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "micro");
    bench_json_object(&j, "config");
    json_common_config(&j, o, "throughput");
    bench_json_u64(&j, "total_bytes", o->total);
    bench_json_str(&j, "store", "nvme-only (no DRAM tier); tier option queue_depth = queue_depth");
    bench_json_str(&j, "caller_buffers",
                   "anonymous memory, 4096-aligned, MADV_HUGEPAGE, not registered with io_uring");
    bench_json_str(&j, "raw", "one ring, one thread, queue_depth transfers in flight, ring set "
                              "up like the tier's; raw_*: plain READ/WRITE on the caller's "
                              "buffers (what the tier gets); raw_fixed_*: the same buffers "
                              "registered (READ_FIXED/WRITE_FIXED)");
    bench_json_bool(&j, "raw_fixed", o->fixed_ok);
    bench_json_str(&j, "raw_sum", "the raw loop plus XXH3-64 of every block, as the tier "
                                  "checksums: hashed ahead of each write and verified after "
                                  "each read by raw_sum_helpers threads; raw_sum_*, *_ratio_sum");
    bench_json_bool(&j, "raw_sum_run", o->raw_sum);
    bench_json_u64(&j, "raw_sum_helpers", o->sum_helpers);
    bench_json_str(&j, "hash", "XXH3-64 of the run's blocks alone: one thread, in memory, no "
                               "I/O, thread CPU time; hash_cpu_s_per_gb, and *_cpu_vs_raw_hash "
                               "= kvtier's CPU s/GB / (the raw loop's + hash's)");
    bench_json_u64(&j, "anchor_threads", o->anchor_threads);
    bench_json_num(&j, "page_touch_gb_per_s", o->touch_gbps);
    bench_json_u64(&j, "big_queue_depth", o->big_qd);
    bench_json_u64(&j, "demote_dram_bytes", o->dram_bytes);
    bench_json_str(&j, "statistic", "GB/s: median over passes; ratio: median over runs of "
                                    "the other side's time / kvtier's time");
    bench_json_end_object(&j);
    bench_rows t;
    nv_fill(&t, rows, nrows);
    bench_rows_json(&t, &j, "results");
    bench_rows_free(&t);
    anchor_fill(&t, arows, narows);
    bench_rows_json(&t, &j, "anchor");
    bench_rows_free(&t);
    demote_fill(&t, drows, ndrows);
    bench_rows_json(&t, &j, "demote");
    bench_rows_free(&t);
    json_overhead(&j, blocks);
    bench_json_end_object(&j);
}

void nv_report_text(const nv_opts *o, const bench_list *blocks, const nv_row *rows,
                    size_t nrows, const anchor_row *arows, size_t narows,
                    const demote_row *drows, size_t ndrows)
{
    char a[32], b[32], fs[32], dev[64];
    nv_describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_print_header(stdout, "NVMe tier put/get vs raw io_uring O_DIRECT");
    printf("  file in %s (%s on %s); %d runs of %s each way per configuration;\n"
           "  NVMe-only store, caller buffers 4 KiB-aligned and not registered. raw: the same\n"
           "  bytes, offsets and depth from the same buffers (plain READ/WRITE, as the tier\n"
           "  gets them); reg: the same, buffers registered. GB/s: median over passes\n"
           "  (GB = 1e9 B). kvtier/raw: median over runs of the time ratio (10th-90th pct).\n\n",
           o->dir, fs, dev, o->runs, bench_fmt_bytes(o->total, a, sizeof a));
    bench_rows t;
    nv_fill(&t, rows, nrows);
    bench_rows_text(&t, nv_rate_cols, NCOLS(nv_rate_cols), stdout, 2);

    if (o->raw_sum) {
        printf("\n  kvtier next to the raw loop plus a checksum of every block (sum), XXH3-64 as the\n"
               "  tier computes it: hashed ahead of each write and verified after each read by %u\n"
               "  hashing thread%s, like the tier's. What kvtier/sum leaves out is what checksums\n"
               "  cost on this machine; the rest is the tier's own work.\n",
               o->sum_helpers, o->sum_helpers == 1 ? "" : "s");
        bench_rows_text(&t, nv_sum_cols, NCOLS(nv_sum_cols), stdout, 2);
    }

    printf("\n  CPU time of the process (all its threads), ms per GB moved (median over passes): what\n"
           "  each side costs whatever else runs on the machine.\n");
    bench_rows_text(&t, nv_cpu_cols, NCOLS(nv_cpu_cols), stdout, 2);
    printf("\n  the checksum alone (hash: XXH3-64 of the same blocks, one thread, in memory, no\n"
           "  I/O; median over runs), and kvtier's CPU per GB over the raw loop's plus hash's:\n"
           "  the CPU a self-verifying tier cannot avoid (1.00 = nothing more; docs/bench.md).\n");
    bench_rows_text(&t, nv_hash_cols, NCOLS(nv_hash_cols), stdout, 2);

    printf("\n  run delay: ms per pass (median) that the thread driving the ring was ready to\n"
           "  reap and submit but waited for a CPU, which the device spends idle.\n");
    bench_rows_text(&t, nv_delay_cols, NCOLS(nv_delay_cols), stdout, 2);
    bench_rows_free(&t);

    if (narows) {
        printf("\n  one file per block (the anchors' disk tier), %u threads, buffered, no fsync;\n"
               "  same blocks, same runs as kvtier at QD %u. put: returns with the bytes in the\n"
               "  page cache; +wb: plus writing them back (sync_file_range) and dropping them.\n"
               "  cold: read after the drop (resident pages found before: %" PRId64 ");\n"
               "  warm: read again at once, from the page cache (memory, not the device: no ratio\n"
               "  to kvtier's gets, which read the device). get vs cold: anchor time / kvtier's.\n"
               "  machine: first touches of fresh 4 KiB pages (what each new page-cache page of\n"
               "  a put or cold read costs) ran at %.2f GB/s; get warm is this machine's page\n"
               "  cache, the first table's raw get this disk's O_DIRECT reads.\n",
               arows[0].threads, arows[0].qd, arows[0].cold_resident_pages, o->touch_gbps);
        anchor_fill(&t, arows, narows);
        bench_rows_text(&t, anchor_cols, NCOLS(anchor_cols), stdout, 2);
        bench_rows_free(&t);
    }
    if (ndrows) {
        printf("\n  puts into a DRAM tier of up to %s (a quarter of a run at most) demoting to\n"
               "  NVMe (writes from the registered arena), vs the same work by hand: memcpy of\n"
               "  the run's blocks (one thread), then the raw loop writing as many blocks as\n"
               "  kvtier demoted (\"raw writes\"), O_DIRECT from registered memory; GB/s of\n"
               "  bytes put on both sides:\n",
               bench_fmt_bytes(o->dram_bytes, b, sizeof b));
        demote_fill(&t, drows, ndrows);
        bench_rows_text(&t, demote_cols, NCOLS(demote_cols), stdout, 2);
        bench_rows_free(&t);
    }
    text_overhead(blocks);
}

void nv_report_recovery(const nv_opts *o, int json, const rec_row *rows, size_t nrows,
                        const bench_list *blocks)
{
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        bench_json_object(&j, "config");
        json_common_config(&j, o, "recovery");
        bench_json_u64(&j, "queue_depth", o->big_qd);
        bench_json_str(&j, "statistic", "median over reopens");
        bench_json_end_object(&j);
        bench_rows t;
        rec_fill(&t, rows, nrows);
        bench_rows_json(&t, &j, "recovery");
        bench_rows_free(&t);
        json_overhead(&j, blocks);
        bench_json_end_object(&j);
        return;
    }
    char fs[32], dev[64];
    nv_describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_print_header(stdout, "NVMe tier recovery time");
    printf("  file in %s (%s on %s); NVMe-only store, queue depth %u. Fill, close, then\n"
           "  %d reopens: open = kvt_open wall time; recovery = the nvme.recovery_ms stat\n"
           "  (reading every slot header and rebuilding the index). Medians over reopens.\n\n",
           o->dir, fs, dev, o->big_qd, nrows ? rows[0].reopens : 0);
    bench_rows t;
    rec_fill(&t, rows, nrows);
    bench_rows_text(&t, rec_cols, NCOLS(rec_cols), stdout, 2);
    bench_rows_free(&t);
    text_overhead(blocks);
}

