/* cmd_index.c — `kvtier-bench index`: single-thread kvt_lookup rate on resident keys, and memory per block. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"

static const char summary[] =
    "Fills a DRAM store with --keys blocks of 64 bytes (so the arena is small), then\n"
    "  times kvt_lookup on one thread over every key in random order, --batch keys per\n"
    "  call, --runs times; reports the median keys/s (every key is a hit) and the memory\n"
    "  the store costs per block beyond the block's bytes, measured from the RSS.";

/* The documented size of one index entry (lib/index.h: one cache line per
 * block). The entry struct is internal, so the bench takes the number from
 * the documentation and the entry count from the index_capacity stat. */
#define ENTRY_BYTES 64
#define BLOCK_BYTES 64
#define FILL_BATCH 4096
#define TARGET_KEYS_PER_S 10e6

typedef struct index_result {
    uint64_t keys, hits_per_run, capacity, arena_bytes;
    uint64_t rss_open, rss_fill;
    double fill_s;
    double keys_per_s, keys_lo, keys_hi;
    double cpu_keys_per_s; /* median over runs, per second of this thread's CPU time */
} index_result;

static int64_t signed_diff(uint64_t a, uint64_t b)
{
    return a >= b ? (int64_t)(a - b) : -(int64_t)(b - a);
}

static void report_json(const index_result *r, int64_t batch, int64_t runs)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "index");
    bench_json_object(&j, "config");
    bench_json_u64(&j, "keys", r->keys);
    bench_json_i64(&j, "batch", batch);
    bench_json_i64(&j, "runs", runs);
    bench_json_u64(&j, "block_bytes", BLOCK_BYTES);
    bench_json_str(&j, "statistic", "median");
    bench_json_end_object(&j);
    bench_json_object(&j, "lookup");
    bench_json_num(&j, "keys_per_s", r->keys_per_s);
    bench_json_num(&j, "keys_per_s_min", r->keys_lo);
    bench_json_num(&j, "keys_per_s_max", r->keys_hi);
    bench_json_num(&j, "cpu_keys_per_s", r->cpu_keys_per_s);
    bench_json_num(&j, "ns_per_key", 1e9 / r->keys_per_s);
    bench_json_num(&j, "calls_per_s", r->keys_per_s / (double)batch);
    bench_json_u64(&j, "hits_per_run", r->hits_per_run);
    bench_json_num(&j, "target_keys_per_s", TARGET_KEYS_PER_S);
    bench_json_bool(&j, "meets_target", r->keys_per_s >= TARGET_KEYS_PER_S);
    bench_json_end_object(&j);
    bench_json_object(&j, "fill");
    bench_json_num(&j, "seconds", r->fill_s);
    bench_json_num(&j, "blocks_per_s", (double)r->keys / r->fill_s);
    bench_json_end_object(&j);
    bench_json_object(&j, "memory");
    bench_json_u64(&j, "index_capacity", r->capacity);
    bench_json_u64(&j, "entry_bytes", ENTRY_BYTES);
    bench_json_num(&j, "index_entry_bytes_per_block",
                   (double)r->capacity * ENTRY_BYTES / (double)r->keys);
    bench_json_u64(&j, "arena_bytes", r->arena_bytes);
    bench_json_u64(&j, "rss_open_bytes", r->rss_open);
    bench_json_u64(&j, "rss_fill_bytes", r->rss_fill);
    bench_json_num(&j, "overhead_bytes_per_block",
                   (double)signed_diff(r->rss_open + r->rss_fill, r->arena_bytes) /
                       (double)r->keys);
    bench_json_end_object(&j);
    bench_json_end_object(&j);
}

static void report_text(const index_result *r, int64_t batch, int64_t runs)
{
    char a[32], b[32], c[32];
    bench_print_header(stdout, "index lookup rate, one thread");
    printf("  %" PRIu64 " resident blocks of %d bytes; %" PRId64
           " keys per kvt_lookup, random order; median of %" PRId64 " runs\n\n",
           r->keys, BLOCK_BYTES, batch, runs);
    printf("  lookup      %.2f M keys/s (min %.2f, max %.2f), %.1f ns/key, %.0f calls/s\n",
           r->keys_per_s / 1e6, r->keys_lo / 1e6, r->keys_hi / 1e6, 1e9 / r->keys_per_s,
           r->keys_per_s / (double)batch);
    printf("  per CPU-s   %.2f M keys/s (this thread's CPU time: without other processes' turns)\n",
           r->cpu_keys_per_s / 1e6);
    printf("  target      %.0f M keys/s: %s\n", TARGET_KEYS_PER_S / 1e6,
           r->keys_per_s >= TARGET_KEYS_PER_S ? "met" : "NOT met");
    printf("  fill        %" PRIu64 " puts in %.2f s (%.2f M blocks/s)\n", r->keys, r->fill_s,
           (double)r->keys / r->fill_s / 1e6);
    printf("  index       %" PRIu64 " entries x %d B = %.1f B per block\n", r->capacity,
           ENTRY_BYTES, (double)r->capacity * ENTRY_BYTES / (double)r->keys);
    printf("  RSS         +%s at open (arena %s), +%s during the fill\n",
           bench_fmt_bytes(r->rss_open, a, sizeof a), bench_fmt_bytes(r->arena_bytes, b, sizeof b),
           bench_fmt_bytes(r->rss_fill, c, sizeof c));
    printf("  overhead    %.1f B per block beyond its %d bytes (RSS growth - arena) / blocks\n",
           (double)signed_diff(r->rss_open + r->rss_fill, r->arena_bytes) / (double)r->keys,
           BLOCK_BYTES);
}

int bench_index(int argc, char **argv)
{
    int64_t nkeys = 1000000, batch = 64, runs = 5;
    int json = 0;
    const barg spec[] = {
        {"keys", BARG_INT, &nkeys, "resident blocks (default 1000000)"},
        {"batch", BARG_INT, &batch, "keys per kvt_lookup call (default 64)"},
        {"runs", BARG_INT, &runs, "passes over all keys; the median is reported (default 5)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of text"},
        {0},
    };
    int rc = bench_parse_args("index", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    if (nkeys < 1 || nkeys > 100000000 || batch < 1 || batch > 1000000 || runs < 1 ||
        runs > 1000) {
        fprintf(stderr, "kvtier-bench index: --keys 1..1e8, --batch 1..1e6, --runs 1..1000\n");
        return BENCH_USAGE;
    }
    const size_t n = (size_t)nkeys;
    index_result r = {.keys = n};
    kvt_key *keys = malloc(n * sizeof *keys), *order = malloc(n * sizeof *order);
    void **ptrs = malloc(FILL_BATCH * sizeof *ptrs);
    static char src[BLOCK_BYTES];
    bench_samples rate = {0}, cpu_rate = {0};
    kvt_store *s = NULL;
    rc = BENCH_FAILED;
    if (!keys || !order || !ptrs) {
        fprintf(stderr, "kvtier-bench index: out of memory for %zu keys\n", n);
        goto out;
    }
    if (bench_keys(keys, n, 42))
        goto out;
    memcpy(order, keys, n * sizeof *keys);
    uint64_t rnd = bench_rand_seed(7);
    for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        size_t k = (size_t)(bench_rand(&rnd) % (i + 1));
        kvt_key t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    for (size_t i = 0; i < FILL_BATCH; i++)
        ptrs[i] = src; /* the bytes don't matter here, only the index */
    memset(src, 0x5a, sizeof src);

    uint64_t rss0 = bench_rss_bytes();
    bench_store_spec store = bench_dram_spec("index", BLOCK_BYTES, (uint64_t)n * BLOCK_BYTES);
    store.block_tokens = 16;
    store.copy_threads = 1;
    if (bench_store_open(&store, &s))
        goto out;
    uint64_t rss1 = bench_rss_bytes();
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i += FILL_BATCH) {
        size_t m = n - i < FILL_BATCH ? n - i : FILL_BATCH;
        int got = kvt_put(s, keys + i, m, ptrs, NULL, NULL);
        if (got != (int)m) {
            fprintf(stderr, "kvtier-bench index: put stored %d of %zu: %s\n", got, m,
                    got < 0 ? kvt_last_error() : "blocks rejected");
            goto out;
        }
        bench_progress("index: fill %zu/%zu", i + m, n);
    }
    r.fill_s = (double)(bench_now_ns() - t0) / 1e9;
    uint64_t rss2 = bench_rss_bytes();
    r.rss_open = rss1 > rss0 ? rss1 - rss0 : 0;
    r.rss_fill = rss2 > rss1 ? rss2 - rss1 : 0;
    r.capacity = bench_stat(s, "index_capacity");
    r.arena_bytes = bench_stat(s, "dram.arena_bytes");

    for (int64_t run = 0; run < runs; run++) {
        bench_progress("index: lookup run %" PRId64 "/%" PRId64, run + 1, runs);
        uint64_t hits = 0;
        uint64_t c0 = bench_thread_cpu_ns();
        t0 = bench_now_ns();
        for (size_t i = 0; i < n; i += (size_t)batch) {
            size_t m = n - i < (size_t)batch ? n - i : (size_t)batch;
            int h = kvt_lookup(s, order + i, m, NULL, 0);
            if (h < 0) {
                fprintf(stderr, "kvtier-bench index: kvt_lookup: %s\n", kvt_last_error());
                goto out;
            }
            hits += (uint64_t)h;
        }
        uint64_t ns = bench_now_ns() - t0;
        uint64_t cpu_ns = bench_thread_cpu_ns() - c0;
        if (hits != n) {
            /* Every key was put and nothing evicts: a shortfall is a bug. */
            fprintf(stderr, "kvtier-bench index: %" PRIu64 " of %zu resident keys were found\n",
                    hits, n);
            goto out;
        }
        r.hits_per_run = hits;
        bench_samples_add(&rate, (double)hits * 1e9 / (double)ns);
        bench_samples_add(&cpu_rate, (double)hits * 1e9 / (double)(cpu_ns ? cpu_ns : 1));
    }
    bench_progress_done();
    r.keys_per_s = bench_median(&rate);
    r.keys_lo = bench_min(&rate);
    r.keys_hi = bench_max(&rate);
    r.cpu_keys_per_s = bench_median(&cpu_rate);
    if (json)
        report_json(&r, batch, runs);
    else
        report_text(&r, batch, runs);
    rc = BENCH_OK;
out:
    bench_progress_done();
    bench_samples_free(&rate);
    bench_samples_free(&cpu_rate);
    kvt_close(s);
    free(keys);
    free(order);
    free(ptrs);
    return rc;
}
