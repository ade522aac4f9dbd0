/* cmd_micro.c — `kvtier-bench micro`: DRAM tier put/get GB/s per block size and copy threads, next to memcpy. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "../report/rows.h"

static const char summary[] =
    "DRAM tier put and get GB/s for each block size x copy-thread count, each next to\n"
    "  a plain memcpy of the same bytes (same threads, same pieces) measured in the same\n"
    "  run. Each run moves --total-bytes each way in calls of --batch-bytes, library and\n"
    "  memcpy calls alternating; medians over all calls and call pairs are reported.\n"
    "  Before each run the previous run's blocks are removed (untimed), so puts measure\n"
    "  the copy path and index inserts, not eviction (`mixed` evicts). Each store's\n"
    "  open time is reported with its first-touch part. --open-only: only opens and\n"
    "  closes a store of --total-bytes, --runs times per copy-thread count, and\n"
    "  reports where the open time went (dram.mmap_ms, touch_ms, thp_scan_ms).";

typedef struct micro_row {
    uint64_t block_bytes;
    unsigned threads;
    size_t per_call, calls;
    size_t pairs;                              /* library/memcpy call pairs per direction */
    double put, put_base, get, get_base;       /* medians of per-call GB/s */
    double put_ratio, get_ratio;               /* medians of per-pair library/memcpy */
    double put_p10, put_p90, get_p10, get_p90; /* spread of the pair ratios */
    uint64_t pooled;                           /* batches the library split across threads */
    double open_ms;                            /* kvt_open of the row's store, wall */
    uint64_t touch_ms;                         /* dram.touch_ms: its first touch */
} micro_row;

typedef struct micro_bufs {
    char *src, *dst, *base;
    size_t call_bytes, run_bytes;
} micro_bufs;

/* Per-direction samples: each call's GB/s for both sides, and the ratio of
 * the two calls of a pair, which ran back to back. On a shared machine a
 * preemption lands in one call of a pair; the median of the pair ratios
 * shrugs it off where a ratio of totals would not. */
typedef struct dir_samples {
    bench_samples lib, base, ratio;
} dir_samples;

static void dir_free(dir_samples *d)
{
    bench_samples_free(&d->lib);
    bench_samples_free(&d->base);
    bench_samples_free(&d->ratio);
}

/* One call pair: the library moves n blocks (put: ptrs -> store, get: store
 * -> ptrs), the baseline copies the same pieces to or from `base`. Which
 * goes first alternates with `order`, so that neither always meets the
 * caches the other left. Returns 0, or BENCH_FAILED (message printed). */
static int pair(kvt_store *s, int is_put, const kvt_key *keys, size_t n, void **ptrs,
                bench_copier *cp, bench_copy_op *ops, char *base, size_t bb, int order,
                dir_samples *d)
{
    for (size_t i = 0; i < n; i++)
        ops[i] = is_put ? (bench_copy_op){base + i * bb, ptrs[i], bb}
                        : (bench_copy_op){ptrs[i], base + i * bb, bb};
    uint64_t lib_ns = 1, base_ns = 1;
    for (int side = 0; side < 2; side++) {
        uint64_t t0 = bench_now_ns();
        if ((side + order) % 2 == 0) {
            int got = is_put ? kvt_put(s, keys, n, ptrs, NULL, NULL)
                             : kvt_get(s, keys, n, ptrs, NULL, NULL);
            lib_ns = bench_now_ns() - t0;
            if (got != (int)n) {
                fprintf(stderr, "kvtier-bench micro: %s moved %d of %zu blocks: %s\n",
                        is_put ? "put" : "get", got, n,
                        got < 0 ? kvt_last_error() : is_put ? "rejected" : "missing");
                return BENCH_FAILED;
            }
        } else {
            bench_copier_run(cp, ops, n);
            base_ns = bench_now_ns() - t0;
        }
    }
    double bytes = (double)n * (double)bb;
    double lib = bytes / (double)lib_ns, bl = bytes / (double)base_ns; /* bytes/ns = GB/s */
    bench_samples_add(&d->lib, lib);
    bench_samples_add(&d->base, bl);
    bench_samples_add(&d->ratio, lib / bl);
    return 0;
}

/* One configuration: a store, a warm-up fill, then `runs` runs of `calls`
 * put pairs and `calls` get pairs. Returns 0 or BENCH_FAILED. */
static int measure(micro_row *row, const micro_bufs *b, int runs, const char *policy,
                   int no_hugepages)
{
    const size_t bb = row->block_bytes, n = row->per_call, calls = row->calls;
    const size_t per_run = n * calls;
    bench_store_spec spec = bench_dram_spec("micro", bb, (uint64_t)per_run * bb);
    spec.block_tokens = 16;
    spec.copy_threads = (int)row->threads;
    spec.tier[BENCH_DRAM].policy = policy;
    spec.tier[BENCH_DRAM].no_hugepages = no_hugepages;
    kvt_store *s = NULL;
    uint64_t t0 = bench_now_ns();
    int opened = bench_store_open(&spec, &s);
    row->open_ms = (double)(bench_now_ns() - t0) / 1e6;
    if (opened)
        return BENCH_FAILED;
    row->touch_ms = bench_stat(s, "dram.touch_ms");
    bench_copier *cp = bench_copier_new(row->threads);
    kvt_key *keys = malloc((size_t)(runs + 1) * per_run * sizeof *keys);
    void **sp = malloc(n * sizeof *sp), **dp = malloc(n * sizeof *dp);
    bench_copy_op *ops = malloc(n * sizeof *ops);
    dir_samples put = {0}, get = {0};
    int rc = BENCH_FAILED;
    if (!cp || !keys || !sp || !dp || !ops) {
        fprintf(stderr, "kvtier-bench micro: out of memory\n");
        goto out;
    }
    if (bench_keys(keys, (size_t)(runs + 1) * per_run, bb * 31 + row->threads))
        goto out;
    for (size_t i = 0; i < n; i++) {
        sp[i] = b->src + i * bb;
        dp[i] = b->dst + i * bb;
    }

    /* Warm-up: fill the store once (page tables, caches, copy threads). */
    for (size_t c = 0; c < calls; c++) {
        int got = kvt_put(s, keys + c * n, n, sp, NULL, NULL);
        if (got != (int)n) {
            fprintf(stderr, "kvtier-bench micro: warm-up put stored %d of %zu: %s\n", got, n,
                    got < 0 ? kvt_last_error() : "blocks rejected");
            goto out;
        }
    }
    for (int r = 0; r < runs; r++) {
        bench_progress("micro: %" PRIu64 " B blocks, %u copy threads, run %d/%d", row->block_bytes,
                       row->threads, r + 1, runs);
        const kvt_key *rk = keys + (size_t)(r + 1) * per_run;
        /* Room for this run, so that no put waits on an eviction and no
         * policy decides which of the measured blocks stay. */
        int gone = kvt_remove(s, rk - per_run, per_run);
        if (gone != (int)per_run) {
            fprintf(stderr, "kvtier-bench micro: removed %d of %zu blocks of the last run%s%s\n",
                    gone, per_run, gone < 0 ? ": " : "", gone < 0 ? kvt_last_error() : "");
            goto out;
        }
        for (size_t c = 0; c < calls; c++)
            if (pair(s, 1, rk + c * n, n, sp, cp, ops, b->base + c * n * bb, bb,
                     (int)((c + (size_t)r) % 2), &put))
                goto out;
        for (size_t c = 0; c < calls; c++)
            if (pair(s, 0, rk + c * n, n, dp, cp, ops, b->base + c * n * bb, bb,
                     (int)((c + (size_t)r) % 2), &get))
                goto out;
    }
    row->pairs = put.ratio.n;
    row->put = bench_median(&put.lib);
    row->put_base = bench_median(&put.base);
    row->put_ratio = bench_median(&put.ratio);
    row->put_p10 = bench_percentile(&put.ratio, 10);
    row->put_p90 = bench_percentile(&put.ratio, 90);
    row->get = bench_median(&get.lib);
    row->get_base = bench_median(&get.base);
    row->get_ratio = bench_median(&get.ratio);
    row->get_p10 = bench_percentile(&get.ratio, 10);
    row->get_p90 = bench_percentile(&get.ratio, 90);
    row->pooled = bench_stat(s, "dram.copy_batches_pooled");
    rc = BENCH_OK;
out:
    dir_free(&put);
    dir_free(&get);
    free(ops);
    free(sp);
    free(dp);
    free(keys);
    bench_copier_free(cp);
    kvt_close(s);
    return rc;
}

/* What each configuration reports, in JSON order; the text table shows a
 * selection (ratios with their spread in one cell). */
static const bench_field micro_fields[] = {
    {"block_bytes", BT_U64},         {"copy_threads", BT_U64},
    {"blocks_per_call", BT_U64},     {"calls_per_run", BT_U64},
    {"run_bytes", BT_U64},           {"put_gb_per_s", BT_NUM},
    {"put_memcpy_gb_per_s", BT_NUM}, {"put_ratio", BT_NUM},
    {"put_ratio_p10", BT_NUM},       {"put_ratio_p90", BT_NUM},
    {"get_gb_per_s", BT_NUM},        {"get_memcpy_gb_per_s", BT_NUM},
    {"get_ratio", BT_NUM},           {"get_ratio_p10", BT_NUM},
    {"get_ratio_p90", BT_NUM},       {"pairs", BT_U64},
    {"pooled_batches", BT_U64},      {"open_ms", BT_NUM},
    {"open_touch_ms", BT_U64},
};

static const bench_col micro_cols[] = {
    BENCH_COL_LEFT("block", "bytes", "block_bytes"),
    BENCH_COL("threads", NULL, "copy_threads"),
    BENCH_COL("blocks/call", NULL, "blocks_per_call"),
    BENCH_COL("put GB/s", "%.2f", "put_gb_per_s"),
    BENCH_COL("memcpy", "%.2f", "put_memcpy_gb_per_s"),
    BENCH_COL_RATIO("put/memcpy", "put_ratio", "put_ratio_p10", "put_ratio_p90"),
    BENCH_COL("get GB/s", "%.2f", "get_gb_per_s"),
    BENCH_COL("memcpy", "%.2f", "get_memcpy_gb_per_s"),
    BENCH_COL_RATIO("get/memcpy", "get_ratio", "get_ratio_p10", "get_ratio_p90"),
    BENCH_COL("open ms", "%.0f", "open_ms"),
    BENCH_COL("touch ms", NULL, "open_touch_ms"),
};

static void micro_fill(bench_rows *t, const micro_row *rows, size_t nrows)
{
    bench_rows_init(t, micro_fields, (int)(sizeof micro_fields / sizeof *micro_fields));
    for (size_t i = 0; i < nrows; i++) {
        const micro_row *r = &rows[i];
        bench_rows_add(t);
        bench_rows_u64(t, "block_bytes", r->block_bytes);
        bench_rows_u64(t, "copy_threads", r->threads);
        bench_rows_u64(t, "blocks_per_call", r->per_call);
        bench_rows_u64(t, "calls_per_run", r->calls);
        bench_rows_u64(t, "run_bytes", (uint64_t)(r->per_call * r->calls) * r->block_bytes);
        bench_rows_num(t, "put_gb_per_s", r->put);
        bench_rows_num(t, "put_memcpy_gb_per_s", r->put_base);
        bench_rows_num(t, "put_ratio", r->put_ratio);
        bench_rows_num(t, "put_ratio_p10", r->put_p10);
        bench_rows_num(t, "put_ratio_p90", r->put_p90);
        bench_rows_num(t, "get_gb_per_s", r->get);
        bench_rows_num(t, "get_memcpy_gb_per_s", r->get_base);
        bench_rows_num(t, "get_ratio", r->get_ratio);
        bench_rows_num(t, "get_ratio_p10", r->get_p10);
        bench_rows_num(t, "get_ratio_p90", r->get_p90);
        bench_rows_u64(t, "pairs", r->pairs);
        bench_rows_u64(t, "pooled_batches", r->pooled);
        bench_rows_num(t, "open_ms", r->open_ms);
        bench_rows_u64(t, "open_touch_ms", r->touch_ms);
    }
}

static void report(const micro_row *rows, size_t nrows, uint64_t total, uint64_t batch, int runs,
                   int json)
{
    bench_rows t;
    micro_fill(&t, rows, nrows);
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        bench_json_object(&j, "config");
        bench_json_str(&j, "tier", "dram");
        bench_json_u64(&j, "total_bytes", total);
        bench_json_u64(&j, "batch_bytes", batch);
        bench_json_i64(&j, "runs", runs);
        bench_json_str(&j, "statistic", "median over calls; ratio: median over call pairs");
        bench_json_end_object(&j);
        bench_rows_json(&t, &j, "results");
        bench_json_end_object(&j);
    } else {
        char a[32], b[32];
        bench_print_header(stdout, "DRAM tier put/get vs memcpy");
        printf("  %d runs of %s each way, in calls of up to %s; library and memcpy calls\n"
               "  alternate. GB/s: median over calls (GB = 1e9 bytes). Ratio: median over\n"
               "  back-to-back call pairs of library/memcpy (10th-90th percentile).\n\n",
               runs, bench_fmt_bytes(total, a, sizeof a), bench_fmt_bytes(batch, b, sizeof b));
        bench_rows_text(&t, micro_cols, (int)(sizeof micro_cols / sizeof *micro_cols), stdout, 2);
    }
    bench_rows_free(&t);
}

/* --open-only: where the open time of a DRAM store goes. */
typedef struct open_row {
    unsigned threads;
    double wall, open, mmap, touch, thp_scan; /* medians, ms */
    uint64_t touch_threads, thp_bytes, arena_bytes; /* of the last run */
} open_row;

static int measure_open(open_row *row, uint64_t bytes, int runs, int no_hugepages)
{
    bench_store_spec spec = bench_dram_spec("micro", 2u << 20, bytes);
    spec.copy_threads = (int)row->threads;
    spec.tier[BENCH_DRAM].no_hugepages = no_hugepages;
    bench_samples wall = {0}, open = {0}, mmap = {0}, touch = {0}, scan = {0};
    int rc = BENCH_OK;
    for (int r = 0; r < runs && rc == BENCH_OK; r++) {
        bench_progress("micro --open-only: %u copy threads, run %d/%d", row->threads, r + 1, runs);
        uint64_t t0 = bench_now_ns();
        kvt_store *s = NULL;
        int opened = bench_store_open(&spec, &s);
        double ms = (double)(bench_now_ns() - t0) / 1e6;
        if (opened) {
            rc = BENCH_FAILED;
            break;
        }
        bench_samples_add(&wall, ms);
        bench_samples_add(&open, (double)bench_stat(s, "dram.open_ms"));
        bench_samples_add(&mmap, (double)bench_stat(s, "dram.mmap_ms"));
        bench_samples_add(&touch, (double)bench_stat(s, "dram.touch_ms"));
        bench_samples_add(&scan, (double)bench_stat(s, "dram.thp_scan_ms"));
        row->touch_threads = bench_stat(s, "dram.touch_threads");
        row->thp_bytes = bench_stat(s, "dram.thp_bytes");
        row->arena_bytes = bench_stat(s, "dram.arena_bytes");
        kvt_close(s);
    }
    if (rc == BENCH_OK) {
        row->wall = bench_median(&wall);
        row->open = bench_median(&open);
        row->mmap = bench_median(&mmap);
        row->touch = bench_median(&touch);
        row->thp_scan = bench_median(&scan);
    }
    bench_samples_free(&wall);
    bench_samples_free(&open);
    bench_samples_free(&mmap);
    bench_samples_free(&touch);
    bench_samples_free(&scan);
    return rc;
}

static const bench_field open_fields[] = {
    {"copy_threads", BT_U64}, {"open_wall_ms", BT_NUM},  {"open_ms", BT_NUM},
    {"mmap_ms", BT_NUM},      {"touch_ms", BT_NUM},      {"thp_scan_ms", BT_NUM},
    {"touch_threads", BT_U64}, {"thp_bytes", BT_U64},    {"arena_bytes", BT_U64},
};

static const bench_col open_cols[] = {
    BENCH_COL("threads", NULL, "copy_threads"),
    BENCH_COL("wall ms", "%.0f", "open_wall_ms"),
    BENCH_COL("dram.open_ms", "%.0f", "open_ms"),
    BENCH_COL("mmap_ms", "%.0f", "mmap_ms"),
    BENCH_COL("touch_ms", "%.0f", "touch_ms"),
    BENCH_COL("thp_scan_ms", "%.0f", "thp_scan_ms"),
    BENCH_COL("touch threads", NULL, "touch_threads"),
    BENCH_COL("THP", "bytes", "thp_bytes"),
};

static int open_only(const bench_list *threads, uint64_t bytes, int runs, int no_hugepages,
                     int json)
{
    open_row rows[BENCH_LIST_MAX];
    int n = 0, rc = BENCH_OK;
    for (int i = 0; i < threads->n && rc == BENCH_OK; i++) {
        rows[n] = (open_row){.threads = (unsigned)threads->v[i]};
        rc = measure_open(&rows[n], bytes, runs, no_hugepages);
        if (rc == BENCH_OK)
            n++;
    }
    bench_progress_done();
    if (rc != BENCH_OK)
        return rc;
    bench_rows t;
    bench_rows_init(&t, open_fields, (int)(sizeof open_fields / sizeof *open_fields));
    for (int i = 0; i < n; i++) {
        bench_rows_add(&t);
        bench_rows_u64(&t, "copy_threads", rows[i].threads);
        bench_rows_num(&t, "open_wall_ms", rows[i].wall);
        bench_rows_num(&t, "open_ms", rows[i].open);
        bench_rows_num(&t, "mmap_ms", rows[i].mmap);
        bench_rows_num(&t, "touch_ms", rows[i].touch);
        bench_rows_num(&t, "thp_scan_ms", rows[i].thp_scan);
        bench_rows_u64(&t, "touch_threads", rows[i].touch_threads);
        bench_rows_u64(&t, "thp_bytes", rows[i].thp_bytes);
        bench_rows_u64(&t, "arena_bytes", rows[i].arena_bytes);
    }
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        bench_json_object(&j, "config");
        bench_json_str(&j, "tier", "dram");
        bench_json_str(&j, "mode", "open-only");
        bench_json_u64(&j, "total_bytes", bytes);
        bench_json_i64(&j, "runs", runs);
        bench_json_i64(&j, "hugepages", !no_hugepages);
        bench_json_str(&j, "statistic", "median over runs");
        bench_json_end_object(&j);
        bench_rows_json(&t, &j, "results");
        bench_json_end_object(&j);
    } else {
        char a[32];
        bench_print_header(stdout, "DRAM tier open time");
        printf("  %d opens of a %s DRAM-only store per copy-thread count, huge pages %s.\n"
               "  ms: medians over opens; wall is kvt_open, the rest the tier's stats.\n\n",
               runs, bench_fmt_bytes(bytes, a, sizeof a), no_hugepages ? "off" : "asked for");
        bench_rows_text(&t, open_cols, (int)(sizeof open_cols / sizeof *open_cols), stdout, 2);
    }
    bench_rows_free(&t);
    return BENCH_OK;
}

int bench_micro(int argc, char **argv)
{
    /* `--tier nvme` and `--tier cluster` are programs with their own flags
     * (cmd_micro_nvme.c, cmd_micro_cluster.c). */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tier=nvme") == 0 ||
            (strcmp(argv[i], "--tier") == 0 && i + 1 < argc && strcmp(argv[i + 1], "nvme") == 0))
            return bench_micro_nvme(argc, argv);
        if (strcmp(argv[i], "--tier=cluster") == 0 ||
            (strcmp(argv[i], "--tier") == 0 && i + 1 < argc && strcmp(argv[i + 1], "cluster") == 0))
            return bench_micro_cluster(argc, argv);
    }
    const char *tier = "dram", *policy = NULL;
    bench_list blocks = {{256u << 10, 2u << 20, 16u << 20}, 3};
    bench_list threads = {{1, 2}, 2};
    uint64_t total = 512u << 20, batch = 64u << 20;
    int64_t runs = 5;
    int json = 0, open_only_flag = 0, no_hugepages = 0;
    const barg spec[] = {
        {"tier", BARG_STR, &tier, "tier to measure: dram; nvme, cluster (own flags: --tier X --help)"},
        {"block-bytes", BARG_SIZE_LIST, &blocks, "block sizes (default 256K,2M,16M)"},
        {"copy-threads", BARG_SIZE_LIST, &threads, "KVT_OPT_COPY_THREADS values (default 1,2)"},
        {"total-bytes", BARG_SIZE, &total, "bytes per run, also the store's size (default 512M)"},
        {"batch-bytes", BARG_SIZE, &batch, "bytes per put/get call (default 64M)"},
        {"runs", BARG_INT, &runs, "runs per configuration (default 5)"},
        {"policy", BARG_STR, &policy, "DRAM eviction policy (default: the library's)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of a table"},
        {"open-only", BARG_BOOL, &open_only_flag,
         "only open and close a store of --total-bytes, --runs times per copy-thread count"},
        {"no-hugepages", BARG_BOOL, &no_hugepages, "tier option hugepages = 0 for the stores"},
        {0},
    };
    int rc = bench_parse_args("micro", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    if (strcmp(tier, "dram") != 0) {
        fprintf(stderr, "kvtier-bench micro: --tier %s is not implemented yet (dram, nvme, cluster)\n",
                tier);
        return BENCH_USAGE;
    }
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "kvtier-bench micro: --runs must be 1..1000\n");
        return BENCH_USAGE;
    }
    for (int i = 0; i < threads.n; i++) {
        if (threads.v[i] < 1 || threads.v[i] > 64) {
            fprintf(stderr, "kvtier-bench micro: --copy-threads values must be 1..64\n");
            return BENCH_USAGE;
        }
    }
    if (open_only_flag)
        return open_only(&threads, total, (int)runs, no_hugepages, json);
    /* Buffers sized for the largest configuration, shared by all. */
    micro_bufs b = {0};
    for (int i = 0; i < blocks.n; i++) {
        uint64_t bb = blocks.v[i];
        if (bb < 64 || bb > (1u << 30) || bb % 64) {
            fprintf(stderr, "kvtier-bench micro: block size %" PRIu64
                            " must be a multiple of 64 in 64..1G\n", bb);
            return BENCH_USAGE;
        }
        uint64_t per_call = batch / bb ? batch / bb : 1;
        uint64_t calls = total / (per_call * bb) ? total / (per_call * bb) : 1;
        if (per_call * bb > b.call_bytes)
            b.call_bytes = per_call * bb;
        if (calls * per_call * bb > b.run_bytes)
            b.run_bytes = calls * per_call * bb;
    }
    b.src = bench_alloc(b.call_bytes);
    b.dst = bench_alloc(b.call_bytes);
    b.base = bench_alloc(b.run_bytes);
    micro_row *rows = calloc((size_t)blocks.n * (size_t)threads.n, sizeof *rows);
    size_t nrows = 0;
    rc = BENCH_OK;
    if (!b.src || !b.dst || !b.base || !rows) {
        fprintf(stderr, "kvtier-bench micro: cannot allocate %zu + %zu + %zu bytes\n",
                b.call_bytes, b.call_bytes, b.run_bytes);
        rc = BENCH_FAILED;
    }
    for (int ti = 0; rc == BENCH_OK && ti < threads.n; ti++) {
        for (int bi = 0; rc == BENCH_OK && bi < blocks.n; bi++) {
            micro_row *r = &rows[nrows];
            r->block_bytes = blocks.v[bi];
            r->threads = (unsigned)threads.v[ti];
            r->per_call = batch / r->block_bytes ? batch / r->block_bytes : 1;
            r->calls = total / (r->per_call * r->block_bytes)
                           ? total / (r->per_call * r->block_bytes)
                           : 1;
            rc = measure(r, &b, (int)runs, policy, no_hugepages);
            if (rc == BENCH_OK)
                nrows++;
        }
    }
    bench_progress_done();
    if (rc == BENCH_OK) {
        report(rows, nrows, total, batch, (int)runs, json);
    }
    free(rows);
    bench_free(b.src, b.call_bytes);
    bench_free(b.dst, b.call_bytes);
    bench_free(b.base, b.run_bytes);
    return rc;
}
