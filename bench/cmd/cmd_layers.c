/* cmd_layers.c — `kvtier-bench layers`: how soon the first layer of a batch of blocks is in
 * place with a layer-wise get (kvt_io_opts.frag_first/frag_count) vs the whole blocks, and
 * how long a layer-wise put of them takes, layer by layer, vs one whole-block put. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"

static const char summary[] =
    "Puts --blocks blocks of --layers fragments (one per layer) of --frag-bytes each\n"
    "  into a DRAM store, then times, --runs times, a kvt_get of fragment 0 of every\n"
    "  block (the first layer, kvt_io_opts.frag_first/frag_count) and a kvt_get of the\n"
    "  whole blocks, into the same caller buffers; medians. The first layer's bytes\n"
    "  are checked against the whole block's. Then, --runs times on fresh keys, a\n"
    "  layer-wise put (one kvt_put per layer, every block, timed until the last\n"
    "  layer is put) vs one whole-block kvt_put; medians.";

typedef struct layers_result {
    double first_us, whole_us, first_lo, first_hi, whole_lo, whole_hi;
    double layered_put_us, whole_put_us;
} layers_result;

static void report_json(const layers_result *r, int64_t blocks, int64_t layers, int64_t frag,
                        int64_t runs)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "layers");
    bench_json_object(&j, "config");
    bench_json_str(&j, "tier", "dram");
    bench_json_i64(&j, "blocks", blocks);
    bench_json_i64(&j, "layers", layers);
    bench_json_i64(&j, "frag_bytes", frag);
    bench_json_i64(&j, "runs", runs);
    bench_json_str(&j, "statistic", "median");
    bench_json_end_object(&j);
    bench_json_num(&j, "first_layer_us", r->first_us);
    bench_json_num(&j, "first_layer_us_min", r->first_lo);
    bench_json_num(&j, "first_layer_us_max", r->first_hi);
    bench_json_num(&j, "whole_block_us", r->whole_us);
    bench_json_num(&j, "whole_block_us_min", r->whole_lo);
    bench_json_num(&j, "whole_block_us_max", r->whole_hi);
    bench_json_num(&j, "ratio", r->first_us / r->whole_us);
    bench_json_num(&j, "layered_put_us", r->layered_put_us);
    bench_json_num(&j, "whole_put_us", r->whole_put_us);
    bench_json_num(&j, "put_ratio", r->layered_put_us / r->whole_put_us);
    bench_json_end_object(&j);
}

static void report_text(const layers_result *r, int64_t blocks, int64_t layers, int64_t frag,
                        int64_t runs)
{
    char b[32];
    bench_print_header(stdout, "layer-wise get, DRAM tier");
    printf("  %" PRId64 " blocks of %" PRId64 " layers x %s; median of %" PRId64 " runs\n\n",
           blocks, layers, bench_fmt_bytes((uint64_t)frag, b, sizeof b), runs);
    printf("  first layer  %.1f us (min %.1f, max %.1f)\n", r->first_us, r->first_lo,
           r->first_hi);
    printf("  whole blocks %.1f us (min %.1f, max %.1f)\n", r->whole_us, r->whole_lo,
           r->whole_hi);
    printf("  ratio        %.3f\n", r->first_us / r->whole_us);
    printf("  put, layer by layer until the last %.1f us; whole blocks %.1f us (ratio %.3f)\n",
           r->layered_put_us, r->whole_put_us, r->layered_put_us / r->whole_put_us);
}

/* One timed kvt_get of every block; returns microseconds, or < 0 after
 * printing why. */
static double timed_get(kvt_store *s, const kvt_key *keys, size_t n, void **ptrs,
                        const kvt_io_opts *o)
{
    uint64_t t0 = bench_now_ns();
    int got = kvt_get(s, keys, n, ptrs, o, NULL);
    uint64_t ns = bench_now_ns() - t0;
    if (got != (int)n) {
        fprintf(stderr, "kvtier-bench layers: get copied %d of %zu: %s\n", got, n,
                got < 0 ? kvt_last_error() : "blocks missing");
        return -1;
    }
    return (double)ns / 1e3;
}

/* One layer-wise put of n fresh blocks (keys from seed), a kvt_put per
 * layer, and one whole-block put of n other fresh blocks (seed + 1), from
 * src (ptrs: n * nf pointers, scratch); microseconds of each, or -1. */
static int timed_puts(kvt_store *s, kvt_key *keys, size_t n, size_t nf, void **ptrs,
                      uint8_t *src, size_t fb, uint64_t seed, double *layered, double *whole)
{
    const size_t bb = nf * fb;
    if (bench_keys(keys, n, seed))
        return -1;
    void **one = malloc(n * sizeof *one);
    if (!one)
        return -1;
    uint64_t t0 = bench_now_ns();
    for (size_t f = 0; f < nf; f++) {
        for (size_t i = 0; i < n; i++)
            one[i] = src + i * bb + f * fb;
        kvt_io_opts o = {.size = sizeof o, .frag_first = (uint32_t)f, .frag_count = 1};
        int got = kvt_put(s, keys, n, one, &o, NULL);
        if (got != (int)n) {
            fprintf(stderr, "kvtier-bench layers: layer %zu put %d of %zu: %s\n", f, got, n,
                    got < 0 ? kvt_last_error() : "blocks rejected");
            free(one);
            return -1;
        }
    }
    free(one);
    *layered = (double)(bench_now_ns() - t0) / 1e3;
    if (kvt_lookup(s, keys, n, NULL, 0) != (int)n) {
        fprintf(stderr, "kvtier-bench layers: blocks put layer by layer are not all held\n");
        return -1;
    }
    if (bench_keys(keys, n, seed + 1))
        return -1;
    for (size_t i = 0; i < n * nf; i++)
        ptrs[i] = src + i * fb;
    t0 = bench_now_ns();
    int got = kvt_put(s, keys, n, ptrs, NULL, NULL);
    *whole = (double)(bench_now_ns() - t0) / 1e3;
    if (got != (int)n) {
        fprintf(stderr, "kvtier-bench layers: whole put stored %d of %zu\n", got, n);
        return -1;
    }
    return 0;
}

int bench_layers(int argc, char **argv)
{
    int64_t blocks = 64, layers = 32, frag = 16384, runs = 5;
    int json = 0;
    const barg spec[] = {
        {"blocks", BARG_INT, &blocks, "blocks per get (default 64)"},
        {"layers", BARG_INT, &layers, "fragments (layers) per block (default 32)"},
        {"frag-bytes", BARG_INT, &frag, "bytes per fragment (default 16384)"},
        {"runs", BARG_INT, &runs, "timed pairs; medians are reported (default 5)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of text"},
        {0},
    };
    int rc = bench_parse_args("layers", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    if (blocks < 1 || blocks > 65536 || layers < 1 || layers > 1024 || frag < 1 ||
        frag > (64 << 20) || runs < 1 || runs > 1000 || (uint64_t)blocks * layers * frag > (4ull << 30)) {
        fprintf(stderr, "kvtier-bench layers: --blocks 1..65536, --layers 1..1024, "
                        "--frag-bytes 1..64 MiB, --runs 1..1000, at most 4 GiB in all\n");
        return BENCH_USAGE;
    }
    const size_t n = (size_t)blocks, nf = (size_t)layers, fb = (size_t)frag, bb = nf * fb;
    kvt_key *keys = malloc(n * sizeof *keys);
    void **ptrs = malloc(n * nf * sizeof *ptrs);
    uint8_t *src = bench_alloc(n * bb), *dst = bench_alloc(n * bb);
    bench_samples first = {0}, whole = {0};
    kvt_store *s = NULL;
    rc = BENCH_FAILED;
    if (!keys || !ptrs || !src || !dst) {
        fprintf(stderr, "kvtier-bench layers: out of memory for %zu blocks\n", n);
        goto out;
    }
    if (bench_keys(keys, n, 20))
        goto out;
    bench_fill(src, n * bb, 3);
    bench_store_spec store = bench_dram_spec("layers", bb, 2 * n * bb);
    store.frags = (uint32_t)nf;
    if (bench_store_open(&store, &s))
        goto out;
    for (size_t i = 0; i < n * nf; i++)
        ptrs[i] = src + i * fb;
    int got = kvt_put(s, keys, n, ptrs, NULL, NULL);
    if (got != (int)n) {
        fprintf(stderr, "kvtier-bench layers: put stored %d of %zu: %s\n", got, n,
                got < 0 ? kvt_last_error() : "blocks rejected");
        goto out;
    }
    /* Layer 0 of block i lands where the whole get puts it: ptrs[i * layers]. */
    void **layer0 = malloc(n * sizeof *layer0);
    if (!layer0)
        goto out;
    for (size_t i = 0; i < n; i++)
        layer0[i] = dst + i * bb;
    for (size_t i = 0; i < n * nf; i++)
        ptrs[i] = dst + i * fb;
    kvt_io_opts one = {.size = sizeof one, .frag_first = 0, .frag_count = 1};
    for (int64_t run = 0; run < runs; run++) {
        bench_progress("layers: run %" PRId64 "/%" PRId64, run + 1, runs);
        memset(dst, 0, n * bb);
        double a = timed_get(s, keys, n, layer0, &one);
        if (a < 0)
            break;
        for (size_t i = 0; i < n; i++)
            if (memcmp(dst + i * bb, src + i * bb, fb) != 0) {
                fprintf(stderr, "kvtier-bench layers: block %zu's first layer differs\n", i);
                a = -1;
                break;
            }
        double w = a < 0 ? -1 : timed_get(s, keys, n, ptrs, NULL);
        if (w < 0 || memcmp(dst, src, n * bb) != 0) {
            if (w >= 0)
                fprintf(stderr, "kvtier-bench layers: whole blocks differ\n");
            a = -1;
        }
        if (a < 0) {
            free(layer0);
            goto out;
        }
        bench_samples_add(&first, a);
        bench_samples_add(&whole, w);
    }
    free(layer0);
    /* The put side (n blocks at most 256 assemble at once: larger batches
     * in chunks of 256 blocks). */
    bench_samples lput = {0}, wput = {0};
    for (int64_t run = 0; run < runs; run++) {
        bench_progress("layers: put run %" PRId64 "/%" PRId64, run + 1, runs);
        double a = 0, w = 0, ca, cw;
        for (size_t at = 0, chunk = 0; at < n; at += 256, chunk++) {
            size_t k = n - at < 256 ? n - at : 256;
            uint64_t seed = 100000 + ((uint64_t)run * ((n + 255) / 256) + chunk) * 2;
            if (timed_puts(s, keys, k, nf, ptrs, src + at * bb, fb, seed, &ca, &cw)) {
                bench_samples_free(&lput);
                bench_samples_free(&wput);
                goto out;
            }
            a += ca;
            w += cw;
        }
        bench_samples_add(&lput, a);
        bench_samples_add(&wput, w);
    }
    bench_progress_done();
    layers_result r = {.first_us = bench_median(&first), .first_lo = bench_min(&first),
                       .first_hi = bench_max(&first), .whole_us = bench_median(&whole),
                       .whole_lo = bench_min(&whole), .whole_hi = bench_max(&whole),
                       .layered_put_us = bench_median(&lput),
                       .whole_put_us = bench_median(&wput)};
    if (json)
        report_json(&r, blocks, layers, frag, runs);
    else
        report_text(&r, blocks, layers, frag, runs);
    bench_samples_free(&lput);
    bench_samples_free(&wput);
    rc = BENCH_OK;
out:
    bench_progress_done();
    bench_samples_free(&first);
    bench_samples_free(&whole);
    kvt_close(s);
    if (src)
        bench_free(src, n * bb);
    if (dst)
        bench_free(dst, n * bb);
    free(keys);
    free(ptrs);
    return rc;
}
