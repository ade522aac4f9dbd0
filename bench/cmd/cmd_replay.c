/* cmd_replay.c — `kvtier-bench replay`: request traces through a real store on its manual clock; hit ratios per tier. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"
#include "../workload/trace.h"

static const char summary[] =
    "Replays request traces (Mooncake JSONL, WEKA kv-cache-tester JSON sessions;\n"
    "  --trace repeats, a directory means its *.json/*.jsonl) through a real store:\n"
    "  per request, the manual clock is set to its time, the leading blocks held are\n"
    "  found (kvt_lookup) and read (kvt_get), the rest written (kvt_put). Capacities\n"
    "  count blocks; block bytes are scaled down (--block-bytes) so that only hit\n"
    "  ratios, not byte rates, are measured. Semantics: docs/bench.md.";

/* Bytes of caller buffer per get/put call: a request longer than this (at
 * large --block-bytes) is moved in several calls, in order. */
#define BUF_BYTES (64ull << 20)

/* ------------------------------------------------------------ arguments */

int replay_parse_ttl(const char *text, uint64_t *ms)
{
    if (!text || !*text)
        return -1;
    if (strcmp(text, "inf") == 0 || strcmp(text, "none") == 0) {
        *ms = 0;
        return 0;
    }
    errno = 0;
    char *end;
    double s = strtod(text, &end);
    if (errno || end == text || *end || !(s >= 0) || s > 1e9)
        return -1;
    *ms = (uint64_t)llround(s * 1e3);
    if (s > 0 && *ms == 0)
        return -1; /* below the library's 1 ms resolution */
    return 0;
}

int replay_take_traces(const char *cmd, int *argc, char **argv, const char **paths, int *npaths,
                       int max)
{
    int out = 1;
    *npaths = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--trace") == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "kvtier-bench %s: --trace needs a path\n", cmd);
                return BENCH_USAGE;
            }
            v = argv[++i];
        } else if (strncmp(a, "--trace=", 8) == 0) {
            v = a + 8;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (*npaths == max) {
            fprintf(stderr, "kvtier-bench %s: more than %d --trace flags (give a directory)\n",
                    cmd, max);
            return BENCH_USAGE;
        }
        paths[(*npaths)++] = v;
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

int replay_load(const char *cmd, const char *const *paths, int npaths, trace_set *ts,
                double *parse_s)
{
    char err[1024];
    uint64_t t0 = bench_now_ns();
    memset(ts, 0, sizeof *ts);
    if (npaths == 0) {
        fprintf(stderr, "kvtier-bench %s: give at least one --trace PATH\nTry 'kvtier-bench %s --help'.\n",
                cmd, cmd);
        return BENCH_USAGE;
    }
    for (int i = 0; i < npaths; i++) {
        bench_progress("%s: reading %s", cmd, paths[i]);
        if (trace_add(ts, paths[i], err, sizeof err)) {
            bench_progress_done();
            fprintf(stderr, "kvtier-bench %s: cannot use trace %s\n", cmd, err);
            trace_free(ts);
            return BENCH_USAGE;
        }
    }
    bench_progress_done();
    if (trace_finish(ts, err, sizeof err)) {
        fprintf(stderr, "kvtier-bench %s: %s\n", cmd, err);
        trace_free(ts);
        return BENCH_USAGE;
    }
    *parse_s = (double)(bench_now_ns() - t0) / 1e9;
    return 0;
}

/* ------------------------------------------------------------- the run */

static void fill(uint8_t *p, uint64_t bytes, const kvt_key *k)
{
    for (uint64_t i = 0; i < bytes; i++)
        p[i] = k->b[i % 16] ^ (uint8_t)(i / 16);
}

static int same(const uint8_t *p, uint64_t bytes, const kvt_key *k)
{
    for (uint64_t i = 0; i < bytes; i++)
        if (p[i] != (k->b[i % 16] ^ (uint8_t)(i / 16)))
            return 0;
    return 1;
}

/* The block tokens the set's files share, or 0 when they differ. */
static uint32_t common_block_tokens(const trace_set *ts)
{
    uint32_t bt = ts->file[0].block_tokens;
    for (uint32_t i = 1; i < ts->nfiles; i++)
        if (ts->file[i].block_tokens != bt)
            return 0;
    return bt;
}

/* A failed config setter: a value the library refuses is a bad flag. */
static int refused(int rc, const char *what)
{
    if (rc >= 0)
        return 0;
    fprintf(stderr, "kvtier-bench replay: %s: %s\n", what, kvt_last_error());
    return rc == KVT_ENOMEM ? BENCH_FAILED : BENCH_USAGE;
}

static int open_store(const trace_set *ts, const replay_cfg *cfg, uint64_t dram_blocks,
                      const char *nvme_path, kvt_store **out)
{
    bench_store_spec spec = bench_dram_spec("replay", cfg->block_bytes,
                                            dram_blocks * cfg->block_bytes);
    spec.block_tokens = common_block_tokens(ts);
    spec.manual_clock = 1;
    spec.close_flush_ms = 0; /* the replay deletes its NVMe file: a warm close would write for nothing */
    spec.tier[BENCH_DRAM].ttl_ms = cfg->ttl_ms;
    spec.tier[BENCH_DRAM].policy = cfg->policy;
    if (cfg->nvme_blocks) {
        uint64_t slot = 0;
        int rc = refused(bench_slot_bytes(cfg->block_bytes, &slot), "NVMe slot size");
        if (rc)
            return rc;
        spec.tier[BENCH_NVME] = (bench_tier_spec){.capacity = cfg->nvme_blocks * slot,
                                                  .ttl_ms = cfg->ttl_ms,
                                                  .path = nvme_path,
                                                  .policy = cfg->policy};
    }
    spec.flag[BSET_BLOCK_BYTES] = "--block-bytes";
    spec.flag[BSET_DRAM_CAPACITY] = "--capacity-blocks";
    spec.flag[BSET_NVME_CAPACITY] = "--nvme-capacity-blocks";
    spec.flag[BSET_DRAM_TTL] = spec.flag[BSET_NVME_TTL] = "--ttl";
    spec.flag[BSET_POLICY] = "--policy";
    spec.flag[BSET_PATH] = "--dir";
    return bench_store_open(&spec, out);
}

uint64_t replay_seen(const trace_set *ts, uint32_t *h)
{
    uint8_t *seen = calloc(ts->nblocks ? ts->nblocks : 1, 1);
    uint64_t sum = 0;
    if (!seen)
        return UINT64_MAX;
    for (size_t r = 0; r < ts->nreq; r++) {
        const uint32_t *ref = ts->ref + ts->req[r].off;
        uint32_t n = ts->req[r].n, k = 0;
        while (k < n && seen[ref[k]])
            k++;
        for (uint32_t i = k; i < n; i++)
            seen[ref[i]] = 1;
        if (h)
            h[r] = k;
        sum += k;
    }
    free(seen);
    return sum;
}

void replay_expiry_count(const trace_set *ts, const uint32_t *h_ttl, const uint32_t *h_base,
                         replay_expiry *out)
{
    memset(out, 0, sizeof *out);
    for (size_t r = 0; r < ts->nreq; r++) {
        if (h_ttl[r] < h_base[r]) {
            out->requests++;
            out->blocks += h_base[r] - h_ttl[r];
        }
    }
    out->per_session = (double)out->requests / (double)(ts->nfiles ? ts->nfiles : 1);
}

int replay_run(const trace_set *ts, const replay_cfg *cfg, replay_result *out, uint32_t *hout)
{
    static unsigned run_no;
    memset(out, 0, sizeof *out);
    snprintf(out->policy, sizeof out->policy, "%s", cfg->policy ? cfg->policy : "default");
    const uint64_t bb = cfg->block_bytes;
    uint64_t dram_blocks = cfg->dram_blocks ? cfg->dram_blocks : ts->nblocks;
    if (dram_blocks == 0)
        dram_blocks = 1;
    out->dram_blocks = dram_blocks;
    out->nvme_blocks = cfg->nvme_blocks;
    if (bb == 0 || dram_blocks > UINT64_MAX / bb ||
        (cfg->nvme_blocks && cfg->nvme_blocks > (UINT64_MAX >> 13) / bb)) {
        fprintf(stderr, "kvtier-bench replay: capacity x block bytes overflows\n");
        return BENCH_USAGE;
    }
    char path[4096] = "";
    if (cfg->nvme_blocks)
        snprintf(path, sizeof path, "%s/kvtier-replay-%d-%u.kvt", cfg->dir ? cfg->dir : "/tmp",
                 (int)getpid(), run_no++);

    uint64_t chunk = BUF_BYTES / bb;
    if (chunk < 1)
        chunk = 1;
    if (chunk > ts->max_n)
        chunk = ts->max_n ? ts->max_n : 1;
    /* Smaller put batches (--put-batch) let a request's new blocks evict
     * each other, as a policy simulation inserting block by block does. */
    const uint64_t put_chunk = cfg->put_batch && cfg->put_batch < chunk ? cfg->put_batch : chunk;
    size_t maxn = ts->max_n ? ts->max_n : 1;
    kvt_key *keys = malloc(maxn * sizeof *keys);
    uint8_t *tiers = malloc(maxn);
    void **sptr = malloc(chunk * sizeof *sptr), **dptr = malloc(chunk * sizeof *dptr);
    uint8_t *src = malloc(chunk * bb), *dst = malloc(chunk * bb);
    uint8_t *seen = calloc(ts->nblocks ? ts->nblocks : 1, 1);
    kvt_store *s = NULL;
    int rc = BENCH_FAILED;
    if (!keys || !tiers || !sptr || !dptr || !src || !dst || !seen) {
        fprintf(stderr, "kvtier-bench replay: out of memory for buffers (%" PRIu64
                        " blocks of %" PRIu64 " bytes)\n",
                chunk, bb);
        goto out;
    }
    for (uint64_t i = 0; i < chunk; i++) {
        sptr[i] = src + i * bb;
        dptr[i] = dst + i * bb;
    }
    uint64_t t0 = bench_now_ns();
    rc = open_store(ts, cfg, dram_blocks, path, &s);
    if (rc)
        goto out;
    rc = BENCH_FAILED;

    for (size_t r = 0; r < ts->nreq; r++) {
        const trace_req *q = &ts->req[r];
        const uint32_t *ref = ts->ref + q->off;
        const uint32_t n = q->n;
        if ((r & 1023) == 0)
            bench_progress("replay: request %zu/%zu", r, ts->nreq);
        if (kvt_clock_set(s, q->t_ns) < 0) {
            fprintf(stderr, "kvtier-bench replay: kvt_clock_set: %s\n", kvt_last_error());
            goto out;
        }
        uint32_t h = 0, k = 0;
        while (k < n && seen[ref[k]])
            k++;
        for (uint32_t i = 0; i < n; i++) {
            keys[i] = ts->key[ref[i]];
            seen[ref[i]] = 1;
        }
        out->seen_blocks += k;
        out->requests++;
        out->total_blocks += n;
        if (n) {
            int got = kvt_lookup(s, keys, n, tiers, 0);
            if (got < 0) {
                fprintf(stderr, "kvtier-bench replay: kvt_lookup: %s\n", kvt_last_error());
                goto out;
            }
            h = (uint32_t)got;
        }
        for (uint32_t i = 0; i < h; i++)
            out->lookup_nvme_blocks += tiers[i] == bench_tier_id(s, BENCH_NVME);
        /* The hit prefix is read, in order: a get is the access that
         * refreshes recency and idle time. */
        for (uint32_t off = 0; off < h; off += (uint32_t)chunk) {
            uint32_t m = h - off < chunk ? h - off : (uint32_t)chunk;
            int got = kvt_get(s, keys + off, m, dptr, NULL, NULL);
            if (got < 0) {
                fprintf(stderr, "kvtier-bench replay: kvt_get: %s\n", kvt_last_error());
                goto out;
            }
            out->get_short += m - (uint32_t)got;
            if (cfg->verify && (uint32_t)got == m)
                for (uint32_t i = 0; i < m; i++)
                    out->verify_errors += !same(dst + i * bb, bb, &keys[off + i]);
        }
        /* The rest is "computed" and written, parent = the last hit. */
        for (uint32_t off = h; off < n; off += (uint32_t)put_chunk) {
            uint32_t m = n - off < put_chunk ? n - off : (uint32_t)put_chunk;
            for (uint32_t i = 0; i < m; i++)
                fill(src + i * bb, bb, &keys[off + i]);
            kvt_io_opts o = {.size = sizeof o, .parent = off ? &keys[off - 1] : NULL};
            int got = kvt_put(s, keys + off, m, sptr, &o, NULL);
            if (got < 0) {
                fprintf(stderr, "kvtier-bench replay: kvt_put: %s\n", kvt_last_error());
                goto out;
            }
            out->put_rejected += m - (uint32_t)got;
        }
        out->hit_blocks += h;
        if (hout)
            hout[r] = h;
    }
    bench_progress_done();
    out->dram_hits = bench_stat(s, "dram.hits");
    out->nvme_hits = bench_stat(s, "nvme.hits");
    out->dram_evictions = bench_stat(s, "dram.evictions");
    out->nvme_evictions = bench_stat(s, "nvme.evictions");
    out->dram_expirations = bench_stat(s, "dram.expirations");
    out->nvme_expirations = bench_stat(s, "nvme.expirations");
    out->nvme_demotions_in = bench_stat(s, "nvme.demotions_in");
    out->dram_promotions_in = bench_stat(s, "dram.promotions_in");
    out->put_present = bench_stat(s, "put_present");
    if (kvt_close(s) < 0) {
        s = NULL;
        fprintf(stderr, "kvtier-bench replay: kvt_close: %s\n", kvt_last_error());
        goto out;
    }
    s = NULL;
    out->wall_s = (double)(bench_now_ns() - t0) / 1e9;
    rc = BENCH_OK;
out:
    bench_progress_done();
    if (s)
        kvt_close(s);
    if (path[0])
        unlink(path); /* the NVMe file is this run's scratch space */
    free(keys);
    free(tiers);
    free(sptr);
    free(dptr);
    free(src);
    free(dst);
    free(seen);
    return rc;
}

/* Runs cfg, and when it has a TTL the baseline the expiry count needs: the
 * seen-before hits when nothing can be evicted (one tier holding every
 * block), else the same store without a TTL. */
int replay_with_expiry(const trace_set *ts, const replay_cfg *cfg, replay_result *res,
                       replay_expiry *exp, const char **baseline, const uint32_t *h_base,
                       uint32_t *hout)
{
    const size_t nreq = ts->nreq ? ts->nreq : 1;
    uint32_t *h = hout ? hout : malloc(nreq * sizeof *h);
    uint32_t *hb = h_base ? NULL : malloc(nreq * sizeof *hb);
    int rc = BENCH_FAILED;
    memset(exp, 0, sizeof *exp);
    *baseline = "none";
    if (!h || (!h_base && !hb)) {
        fprintf(stderr, "kvtier-bench replay: out of memory\n");
        goto out;
    }
    rc = replay_run(ts, cfg, res, h);
    if (rc || cfg->ttl_ms == 0)
        goto out;
    const uint32_t *base = h_base;
    const int unlimited =
        cfg->nvme_blocks == 0 && (cfg->dram_blocks == 0 || cfg->dram_blocks >= ts->nblocks);
    if (base) {
        *baseline = "no-ttl run";
    } else if (unlimited) {
        /* Nothing is ever evicted: without a TTL a block stays from its
         * first reference on, so the no-TTL hits are the seen-before ones. */
        if (replay_seen(ts, hb) == UINT64_MAX) {
            fprintf(stderr, "kvtier-bench replay: out of memory\n");
            rc = BENCH_FAILED;
            goto out;
        }
        base = hb;
        *baseline = "seen";
    } else {
        replay_cfg c = *cfg;
        c.ttl_ms = 0;
        replay_result r0;
        rc = replay_run(ts, &c, &r0, hb);
        if (rc)
            goto out;
        base = hb;
        *baseline = "no-ttl run";
    }
    replay_expiry_count(ts, h, base, exp);
out:
    if (h != hout)
        free(h);
    free(hb);
    return rc;
}

/* ------------------------------------------------------------- reports */

typedef struct report {
    const trace_set *ts;
    const replay_cfg *cfg;
    const replay_result *r;
    const replay_expiry *exp;
    const char *baseline;
    double parse_s;
} report;

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : NAN;
}

static void report_json(const report *p)
{
    const replay_result *r = p->r;
    const trace_set *ts = p->ts;
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "replay");
    bench_json_object(&j, "config");
    bench_json_array(&j, "traces");
    for (uint32_t i = 0; i < ts->nfiles; i++) {
        bench_json_object(&j, NULL);
        bench_json_str(&j, "path", ts->file[i].path);
        bench_json_str(&j, "format", ts->file[i].format == TRACE_MOONCAKE ? "mooncake" : "weka");
        bench_json_u64(&j, "block_tokens", ts->file[i].block_tokens);
        bench_json_u64(&j, "requests", ts->file[i].requests);
        bench_json_u64(&j, "blocks", ts->file[i].refs);
        bench_json_u64(&j, "streams", ts->file[i].streams);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    bench_json_str(&j, "policy", r->policy);
    bench_json_u64(&j, "capacity_blocks", r->dram_blocks);
    bench_json_bool(&j, "capacity_unlimited", p->cfg->dram_blocks == 0);
    bench_json_u64(&j, "nvme_capacity_blocks", r->nvme_blocks);
    bench_json_str(&j, "tiers", r->nvme_blocks ? "dram,nvme" : "dram");
    if (p->cfg->ttl_ms)
        bench_json_num(&j, "ttl_s", (double)p->cfg->ttl_ms / 1e3);
    else
        bench_json_str(&j, "ttl_s", NULL);
    bench_json_u64(&j, "block_bytes", p->cfg->block_bytes);
    bench_json_bool(&j, "bytes_scaled", 1);
    bench_json_bool(&j, "verify", p->cfg->verify);
    bench_json_u64(&j, "put_batch", p->cfg->put_batch);
    bench_json_str(&j, "clock", "manual: each request's trace time");
    bench_json_end_object(&j);
    bench_json_u64(&j, "requests", r->requests);
    bench_json_u64(&j, "sessions", ts->nfiles);
    bench_json_u64(&j, "streams", ts->nstreams);
    bench_json_u64(&j, "unique_blocks", ts->nblocks);
    bench_json_num(&j, "trace_seconds", (double)ts->end_ns / 1e9);
    bench_json_u64(&j, "total_blocks", r->total_blocks);
    bench_json_u64(&j, "hit_blocks", r->hit_blocks);
    bench_json_num(&j, "hit_ratio", ratio(r->hit_blocks, r->total_blocks));
    bench_json_u64(&j, "seen_blocks", r->seen_blocks);
    bench_json_num(&j, "hit_ratio_unlimited", ratio(r->seen_blocks, r->total_blocks));
    bench_json_u64(&j, "dram_hits", r->dram_hits);
    bench_json_u64(&j, "nvme_hits", r->nvme_hits);
    bench_json_u64(&j, "expiry_reprefills", p->exp->requests);
    bench_json_u64(&j, "expiry_reprefill_blocks", p->exp->blocks);
    bench_json_num(&j, "expiry_reprefills_per_session", p->exp->per_session);
    bench_json_str(&j, "expiry_baseline", p->baseline);
    bench_json_object(&j, "store");
    bench_json_u64(&j, "dram_evictions", r->dram_evictions);
    bench_json_u64(&j, "nvme_evictions", r->nvme_evictions);
    bench_json_u64(&j, "dram_expirations", r->dram_expirations);
    bench_json_u64(&j, "nvme_expirations", r->nvme_expirations);
    bench_json_u64(&j, "nvme_demotions_in", r->nvme_demotions_in);
    bench_json_u64(&j, "dram_promotions_in", r->dram_promotions_in);
    bench_json_u64(&j, "lookup_nvme_blocks", r->lookup_nvme_blocks);
    bench_json_u64(&j, "put_rejected", r->put_rejected);
    bench_json_u64(&j, "put_present", r->put_present);
    bench_json_u64(&j, "get_short", r->get_short);
    bench_json_u64(&j, "verify_errors", r->verify_errors);
    bench_json_end_object(&j);
    bench_json_num(&j, "parse_s", p->parse_s);
    bench_json_num(&j, "wall_s", r->wall_s);
    bench_json_end_object(&j);
}

static void report_text(const report *p)
{
    const replay_result *r = p->r;
    const trace_set *ts = p->ts;
    bench_print_header(stdout, "trace replay through the store (manual clock)");
    printf("  traces: %u file(s), %s, %u stream(s), %zu requests over %.0f s of trace time, "
           "%zu unique blocks\n",
           ts->nfiles, trace_formats(ts), ts->nstreams, ts->nreq, (double)ts->end_ns / 1e9,
           ts->nblocks);
    printf("  store: policy %s; DRAM %" PRIu64 " blocks%s", r->policy, r->dram_blocks,
           p->cfg->dram_blocks == 0 ? " (every unique block: unlimited)" : "");
    if (r->nvme_blocks)
        printf(" + NVMe %" PRIu64 " blocks", r->nvme_blocks);
    if (p->cfg->ttl_ms)
        printf("; TTL %g s per tier\n", (double)p->cfg->ttl_ms / 1e3);
    else
        printf("; no TTL\n");
    printf("  blocks of %" PRIu64 " bytes: scaled down, so hit ratios are real and byte rates "
           "are not\n\n",
           p->cfg->block_bytes);
    const char *head[] = {"", "blocks", "of referenced"};
    bench_table t;
    bench_table_init(&t, 3, head, "lrr");
    bench_table_cell(&t, "referenced");
    bench_table_cell(&t, "%" PRIu64, r->total_blocks);
    bench_table_cell(&t, "100.00%%");
    bench_table_cell(&t, "hit");
    bench_table_cell(&t, "%" PRIu64, r->hit_blocks);
    bench_table_cell(&t, "%.2f%%", 100 * ratio(r->hit_blocks, r->total_blocks));
    bench_table_cell(&t, "  from DRAM");
    bench_table_cell(&t, "%" PRIu64, r->dram_hits);
    bench_table_cell(&t, "%.2f%%", 100 * ratio(r->dram_hits, r->total_blocks));
    if (r->nvme_blocks) {
        bench_table_cell(&t, "  from NVMe");
        bench_table_cell(&t, "%" PRIu64, r->nvme_hits);
        bench_table_cell(&t, "%.2f%%", 100 * ratio(r->nvme_hits, r->total_blocks));
    }
    bench_table_cell(&t, "unlimited store");
    bench_table_cell(&t, "%" PRIu64, r->seen_blocks);
    bench_table_cell(&t, "%.2f%%", 100 * ratio(r->seen_blocks, r->total_blocks));
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
    printf("\n");
    if (p->cfg->ttl_ms)
        printf("  expiry       %" PRIu64 " requests re-prefilled %" PRIu64
               " blocks because of the TTL (%.2f per session; baseline: %s)\n",
               p->exp->requests, p->exp->blocks, p->exp->per_session, p->baseline);
    printf("  store        %" PRIu64 " DRAM evictions, %" PRIu64 " expirations", r->dram_evictions,
           r->dram_expirations);
    if (r->nvme_blocks)
        printf("; NVMe: %" PRIu64 " demoted in, %" PRIu64 " evictions, %" PRIu64
               " expirations, %" PRIu64 " promoted to DRAM",
               r->nvme_demotions_in, r->nvme_evictions, r->nvme_expirations,
               r->dram_promotions_in);
    printf("\n  checks       %" PRIu64 " puts rejected, %" PRIu64 " short gets, %" PRIu64
           " blocks with wrong bytes%s\n",
           r->put_rejected, r->get_short, r->verify_errors, p->cfg->verify ? "" : " (not verified)");
    printf("  wall time    %.2f s replay, %.2f s reading traces\n", r->wall_s, p->parse_s);
}

/* ---------------------------------------------------------------- main */

#define MAX_TRACES 4096

int bench_replay(int argc, char **argv)
{
    const char *paths[MAX_TRACES];
    int npaths = 0;
    int rc = replay_take_traces("replay", &argc, argv, paths, &npaths, MAX_TRACES);
    if (rc)
        return rc;
    int64_t cap = -1, nvme = -1, put_batch = 0;
    uint64_t block_bytes = 64;
    const char *policy = NULL, *ttl = NULL, *tiers = NULL, *dir = NULL;
    int json = 0, no_verify = 0;
    const char *unused_trace = NULL; /* --trace is taken out of argv before parsing */
    const barg spec[] = {
        {"trace", BARG_STR, &unused_trace, "PATH: a trace file or a directory of them (repeat for more)"},
        {"capacity-blocks", BARG_INT, &cap, "DRAM tier capacity in blocks; 0 = unlimited (required)"},
        {"policy", BARG_STR, &policy, "eviction policy of every tier: lru, sieve, s3fifo, prefix (default: the library's, prefix)"},
        {"ttl", BARG_STR, &ttl, "idle TTL of every tier, seconds (decimals allowed); inf or 0 = none (default)"},
        {"tiers", BARG_STR, &tiers, "dram or dram,nvme (default: dram, or dram,nvme with --nvme-capacity-blocks)"},
        {"nvme-capacity-blocks", BARG_INT, &nvme, "NVMe tier capacity in blocks (slots)"},
        {"block-bytes", BARG_SIZE, &block_bytes, "bytes per block (default 64: hit ratios only)"},
        {"dir", BARG_STR, &dir, "directory for the NVMe tier's file, removed at exit (default $TMPDIR or /tmp)"},
        {"no-verify", BARG_BOOL, &no_verify, "do not check the bytes every get returns"},
        {"put-batch", BARG_INT, &put_batch, "most blocks per kvt_put call (default 0: the request's whole miss)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of text"},
        {0},
    };
    rc = bench_parse_args("replay", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    replay_cfg cfg = {.policy = policy, .block_bytes = block_bytes, .verify = !no_verify};
    if (cap < 0) {
        fprintf(stderr, "kvtier-bench replay: --capacity-blocks N is required (0 = unlimited)\n"
                        "Try 'kvtier-bench replay --help'.\n");
        return BENCH_USAGE;
    }
    int want_nvme = nvme >= 0;
    if (tiers) {
        if (strcmp(tiers, "dram") == 0 && nvme < 0)
            want_nvme = 0;
        else if (strcmp(tiers, "dram,nvme") == 0)
            want_nvme = 1;
        else if (strcmp(tiers, "dram") == 0) {
            fprintf(stderr, "kvtier-bench replay: --tiers dram and --nvme-capacity-blocks "
                            "contradict each other\n");
            return BENCH_USAGE;
        } else {
            fprintf(stderr, "kvtier-bench replay: --tiers wants dram or dram,nvme, not '%s'\n",
                    tiers);
            return BENCH_USAGE;
        }
    }
    if (want_nvme && nvme <= 0) {
        fprintf(stderr, "kvtier-bench replay: the NVMe tier needs --nvme-capacity-blocks M > 0\n");
        return BENCH_USAGE;
    }
    if (ttl && replay_parse_ttl(ttl, &cfg.ttl_ms)) {
        fprintf(stderr, "kvtier-bench replay: --ttl wants seconds (>= 0.001) or inf, not '%s'\n",
                ttl);
        return BENCH_USAGE;
    }
    if (block_bytes == 0 || block_bytes > (1ull << 30)) {
        fprintf(stderr, "kvtier-bench replay: --block-bytes 1..1G\n");
        return BENCH_USAGE;
    }
    if (put_batch < 0 || put_batch > UINT32_MAX) {
        fprintf(stderr, "kvtier-bench replay: --put-batch 0..2^32-1 (0: whole requests)\n");
        return BENCH_USAGE;
    }
    cfg.put_batch = (uint32_t)put_batch;
    cfg.dram_blocks = (uint64_t)cap;
    cfg.nvme_blocks = want_nvme ? (uint64_t)nvme : 0;
    cfg.dir = dir ? dir : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

    trace_set ts;
    double parse_s = 0;
    rc = replay_load("replay", paths, npaths, &ts, &parse_s);
    if (rc)
        return rc;
    replay_result res;
    replay_expiry exp;
    const char *baseline;
    rc = replay_with_expiry(&ts, &cfg, &res, &exp, &baseline, NULL, NULL);
    if (rc == 0) {
        report p = {.ts = &ts, .cfg = &cfg, .r = &res, .exp = &exp, .baseline = baseline,
                    .parse_s = parse_s};
        if (json)
            report_json(&p);
        else
            report_text(&p);
        if (res.verify_errors || res.get_short) {
            fprintf(stderr, "kvtier-bench replay: %" PRIu64 " gets returned wrong bytes, %" PRIu64
                            " found blocks could not be read\n",
                    res.verify_errors, res.get_short);
            rc = BENCH_FAILED;
        }
    }
    trace_free(&ts);
    return rc;
}
