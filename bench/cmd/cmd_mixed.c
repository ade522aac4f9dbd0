/* cmd_mixed.c — `kvtier-bench mixed`: an agentic put/lookup/get mix on the DRAM tier, next to memcpy. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "../report/rows.h"

static const char summary[] =
    "An engine's loop on the DRAM tier: sessions share a system prefix and grow their\n"
    "  context a few hundred tokens per turn; each request hashes its prompt, looks up\n"
    "  the cached prefix (pinned), gets it, and puts the blocks it had to compute. Put\n"
    "  and get GB/s are shown next to a memcpy of the same blocks, measured in the same\n"
    "  run, one request apart. Token counts are ~10x smaller than real agent traces so\n"
    "  that the default fits in 2 GiB and 15-30 s.";

/* Per-turn growth, in tokens: the user's first message, then what each turn
 * appends (the model's answer plus a tool result). */
#define FIRST_MIN 128
#define FIRST_MAX 512
#define APPEND_MIN 64
#define APPEND_MAX 512
#define VOCAB 128256 /* Llama 3 */

typedef struct mixed_cfg {
    uint64_t block_bytes, dram_bytes;
    int64_t block_tokens, copy_threads, requests, sessions, system_tokens, max_context, seed,
        lease_ms;
    const char *policy;
    int quick, json;
} mixed_cfg;

typedef struct session {
    uint32_t *tok; /* the session's own tokens, after the shared prefix */
    size_t len;
    size_t prev_blocks; /* full blocks of its last prompt */
    int started;        /* has sent a request */
} session;

/* One operation's totals: time in the library, time of the memcpy baseline
 * over the same bytes, and per-call latencies. */
typedef struct op_acc {
    uint64_t calls, blocks, bytes, lib_ns;
    uint64_t base_bytes, base_ns; /* equal to bytes unless the library skipped some */
    bench_samples lat_us;
    /* Per request: library GB/s over memcpy GB/s of the call right before or
     * after it. A preemption hits one side of a pair; the median ignores it. */
    bench_samples pair;
} op_acc;

typedef struct mixed_run {
    op_acc put, get, lookup;
    uint64_t lookup_keys; /* keys examined: the hits plus the first miss */
    uint64_t blocks, hits, ideal_hits, hash_tokens, hash_ns, put_rejected, wall_ns;
    uint64_t evictions, copy_threads, pooled, busy, thp_bytes;
} mixed_run;

static double rate(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / (double)ns : 0; /* bytes per ns = GB/s */
}


/* The operations: put and get next to memcpy, lookup with its key rates;
 * JSON objects keyed by "key", text rows by "op". */
static const bench_field op_fields[] = {
    {"key", BT_LABEL},           {"blocks_per_call", BT_LABEL}, {"calls", BT_U64},
    {"blocks", BT_U64},          {"bytes", BT_U64},             {"seconds", BT_NUM},
    {"gb_per_s", BT_NUM},        {"memcpy_gb_per_s", BT_NUM},   {"ratio", BT_NUM},
    {"ratio_p10", BT_NUM},       {"ratio_p90", BT_NUM},         {"p50_us", BT_NUM},
    {"p99_us", BT_NUM},          {"keys", BT_U64},              {"lookups_per_s", BT_NUM},
    {"keys_per_s", BT_NUM},
};

static const bench_col op_cols[] = {
    BENCH_COL_LEFT("op", NULL, "key"),
    BENCH_COL("calls", NULL, "calls"),
    BENCH_COL("blocks/call", NULL, "blocks_per_call"),
    BENCH_COL("GB/s", "%.2f", "gb_per_s"),
    BENCH_COL("memcpy GB/s", "%.2f", "memcpy_gb_per_s"),
    BENCH_COL_RATIO("vs memcpy", "ratio", "ratio_p10", "ratio_p90"),
    BENCH_COL("p50 us", "%.1f", "p50_us"),
    BENCH_COL("p99 us", "%.1f", "p99_us"),
};

/* copies: the operation moves bytes and has memcpy pairs. */
static void op_row(bench_rows *t, const char *name, op_acc *o, int copies)
{
    char per_call[32];
    snprintf(per_call, sizeof per_call, "%.1f",
             o->calls ? (double)o->blocks / (double)o->calls : 0);
    bench_rows_add(t);
    bench_rows_str(t, "key", name);
    bench_rows_str(t, "blocks_per_call", per_call);
    bench_rows_u64(t, "calls", o->calls);
    bench_rows_u64(t, "blocks", o->blocks);
    if (copies) {
        bench_rows_u64(t, "bytes", o->bytes);
        bench_rows_num(t, "gb_per_s", rate(o->bytes, o->lib_ns));
        bench_rows_num(t, "memcpy_gb_per_s", rate(o->base_bytes, o->base_ns));
        bench_rows_num(t, "ratio", bench_median(&o->pair));
        bench_rows_num(t, "ratio_p10", bench_percentile(&o->pair, 10));
        bench_rows_num(t, "ratio_p90", bench_percentile(&o->pair, 90));
    }
    bench_rows_num(t, "seconds", (double)o->lib_ns / 1e9);
    bench_rows_num(t, "p50_us", bench_percentile(&o->lat_us, 50));
    bench_rows_num(t, "p99_us", bench_percentile(&o->lat_us, 99));
}

static void ops_fill(bench_rows *t, mixed_run *r)
{
    bench_rows_init(t, op_fields, (int)(sizeof op_fields / sizeof *op_fields));
    op_row(t, "put", &r->put, 1);
    op_row(t, "get", &r->get, 1);
    op_row(t, "lookup", &r->lookup, 0);
    double ls = (double)r->lookup.lib_ns / 1e9;
    bench_rows_u64(t, "keys", r->lookup_keys);
    bench_rows_num(t, "lookups_per_s", ls > 0 ? (double)r->lookup.calls / ls : 0);
    bench_rows_num(t, "keys_per_s", ls > 0 ? (double)r->lookup_keys / ls : 0);
}

static void report_json(const mixed_cfg *c, mixed_run *r)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "mixed");
    bench_json_object(&j, "config");
    bench_json_u64(&j, "block_bytes", c->block_bytes);
    bench_json_i64(&j, "block_tokens", c->block_tokens);
    bench_json_u64(&j, "dram_bytes", c->dram_bytes);
    bench_json_u64(&j, "copy_threads", r->copy_threads);
    bench_json_str(&j, "policy", c->policy ? c->policy : "default");
    bench_json_i64(&j, "requests", c->requests);
    bench_json_i64(&j, "sessions", c->sessions);
    bench_json_i64(&j, "system_tokens", c->system_tokens);
    bench_json_i64(&j, "max_context_tokens", c->max_context);
    bench_json_i64(&j, "lease_ms", c->lease_ms);
    bench_json_i64(&j, "seed", c->seed);
    bench_json_bool(&j, "quick", c->quick);
    bench_json_end_object(&j);
    bench_json_u64(&j, "requests", (uint64_t)c->requests);
    bench_json_num(&j, "wall_s", (double)r->wall_ns / 1e9);
    bench_json_u64(&j, "blocks_requested", r->blocks);
    bench_json_u64(&j, "blocks_hit", r->hits);
    bench_json_num(&j, "hit_ratio", r->blocks ? (double)r->hits / (double)r->blocks : 0);
    bench_json_num(&j, "hit_ratio_unbounded",
                   r->blocks ? (double)r->ideal_hits / (double)r->blocks : 0);
    bench_rows t;
    ops_fill(&t, r);
    for (size_t i = 0; i < t.nrows; i++) /* objects named by their key */
        bench_rows_json_row(&t, i, &j, bench_rows_str_of(&t, i, "key"));
    bench_rows_free(&t);
    bench_json_object(&j, "hash");
    bench_json_u64(&j, "tokens", r->hash_tokens);
    bench_json_num(&j, "seconds", (double)r->hash_ns / 1e9);
    bench_json_num(&j, "tokens_per_s",
                   r->hash_ns ? (double)r->hash_tokens * 1e9 / (double)r->hash_ns : 0);
    bench_json_end_object(&j);
    bench_json_object(&j, "store");
    bench_json_u64(&j, "evictions", r->evictions);
    bench_json_u64(&j, "put_rejected", r->put_rejected);
    bench_json_u64(&j, "copy_batches_pooled", r->pooled);
    bench_json_u64(&j, "copy_batches_busy", r->busy);
    bench_json_u64(&j, "thp_bytes", r->thp_bytes);
    bench_json_end_object(&j);
    bench_json_end_object(&j);
}

static void report_text(const mixed_cfg *c, mixed_run *r)
{
    char a[32], b[32];
    bench_print_header(stdout, "mixed agentic workload on the DRAM tier");
    printf("  blocks of %s (%" PRId64 " tokens); DRAM %s = %" PRIu64
           " blocks; copy threads %" PRIu64 "; policy %s\n",
           bench_fmt_bytes(c->block_bytes, a, sizeof a), c->block_tokens,
           bench_fmt_bytes(c->dram_bytes, b, sizeof b), c->dram_bytes / c->block_bytes,
           r->copy_threads, c->policy ? c->policy : "default");
    printf("  %" PRId64 " requests from %" PRId64 " interleaved sessions: %" PRId64
           "-token shared prefix, context grows to %" PRId64 " tokens%s\n\n",
           c->requests, c->sessions, c->system_tokens, c->max_context,
           c->quick ? " (--quick)" : "");
    bench_rows t;
    ops_fill(&t, r);
    bench_rows_text(&t, op_cols, (int)(sizeof op_cols / sizeof *op_cols), stdout, 2);
    bench_rows_free(&t);
    double ls = (double)r->lookup.lib_ns / 1e9;
    printf("\n  hit ratio    %.1f%% of %" PRIu64 " blocks (an unbounded cache: %.1f%%)\n",
           r->blocks ? 100.0 * (double)r->hits / (double)r->blocks : 0, r->blocks,
           r->blocks ? 100.0 * (double)r->ideal_hits / (double)r->blocks : 0);
    printf("  lookup       %.0f lookups/s, %.2f M keys/s (keys examined: hits + first miss)\n",
           ls > 0 ? (double)r->lookup.calls / ls : 0,
           ls > 0 ? (double)r->lookup_keys / ls / 1e6 : 0);
    printf("  key hashing  %.1f M tokens/s (kvt_key_chain over each whole prompt)\n",
           r->hash_ns ? (double)r->hash_tokens * 1e3 / (double)r->hash_ns : 0);
    printf("  store        %" PRIu64 " evictions, %" PRIu64 " puts rejected, %" PRIu64
           " copy batches split across threads\n",
           r->evictions, r->put_rejected, r->pooled);
    printf("  wall time    %.1f s; GB = 1e9 bytes; memcpy uses the same thread count\n",
           (double)r->wall_ns / 1e9);
}

static void op_add(op_acc *o, uint64_t blocks, uint64_t bytes, uint64_t ns)
{
    o->calls++;
    o->blocks += blocks;
    o->bytes += bytes;
    o->lib_ns += ns;
    bench_samples_add(&o->lat_us, (double)ns / 1e3);
}

static void new_session(session *s, uint64_t *rnd)
{
    s->len = (size_t)bench_rand_range(rnd, FIRST_MIN, FIRST_MAX);
    for (size_t i = 0; i < s->len; i++)
        s->tok[i] = (uint32_t)(bench_rand(rnd) % VOCAB);
    s->prev_blocks = 0;
    s->started = 0;
}

/* Baseline copies of k blocks between the pool and the baseline region,
 * accounted to o; to_pool is the get direction. Returns its time. */
static uint64_t baseline(op_acc *o, bench_copier *cp, bench_copy_op *ops, char *pool, char *base,
                     size_t first, size_t k, uint64_t bb, int to_pool)
{
    for (size_t i = 0; i < k; i++) {
        char *p = pool + (first + i) * bb, *q = base + (first + i) * bb;
        ops[i] = to_pool ? (bench_copy_op){p, q, bb} : (bench_copy_op){q, p, bb};
    }
    uint64_t t0 = bench_now_ns();
    bench_copier_run(cp, ops, k);
    uint64_t ns = bench_now_ns() - t0;
    o->base_ns += ns;
    o->base_bytes += (uint64_t)k * bb;
    return ns;
}

/* The ratio of one library call to its baseline neighbour. */
static void add_pair(op_acc *o, uint64_t lib_bytes, uint64_t lib_ns, uint64_t base_bytes,
                     uint64_t base_ns)
{
    if (lib_bytes && base_bytes && lib_ns && base_ns)
        bench_samples_add(&o->pair, rate(lib_bytes, lib_ns) / rate(base_bytes, base_ns));
}

static int run(const mixed_cfg *c, mixed_run *r)
{
    const uint64_t bb = c->block_bytes;
    const size_t bt = (size_t)c->block_tokens;
    const size_t max_tokens = (size_t)c->max_context;
    const size_t max_blocks = max_tokens / bt;
    const size_t pool_bytes = max_blocks * bb;
    uint64_t rnd = bench_rand_seed((uint64_t)c->seed);
    bench_store_spec spec = bench_dram_spec("mixed", bb, c->dram_bytes);
    spec.block_tokens = (uint32_t)bt;
    spec.copy_threads = (int)c->copy_threads;
    spec.tier[BENCH_DRAM].policy = c->policy;
    uint64_t t_start = bench_now_ns();
    kvt_store *s = NULL;
    if (bench_store_open(&spec, &s))
        return BENCH_FAILED;
    r->copy_threads = bench_stat(s, "dram.copy_threads");
    bench_copier *cp = bench_copier_new((unsigned)(r->copy_threads ? r->copy_threads : 1));
    /* The engine's KV memory (the pool: block i of a prompt lives at pool
     * block i) and the baseline's stand-in for the arena. */
    char *pool = bench_alloc(pool_bytes), *base = bench_alloc(pool_bytes);
    session *ss = calloc((size_t)c->sessions, sizeof *ss);
    uint32_t *prompt = malloc(max_tokens * sizeof *prompt);
    kvt_key *keys = malloc(max_blocks * sizeof *keys);
    void **ptrs = malloc(max_blocks * sizeof *ptrs);
    bench_copy_op *ops = malloc(max_blocks * sizeof *ops);
    int rc = BENCH_FAILED;
    if (!cp || !pool || !base || !ss || !prompt || !keys || !ptrs || !ops) {
        fprintf(stderr, "kvtier-bench: cannot allocate the workload's buffers (%zu MiB)\n",
                2 * pool_bytes >> 20);
        goto out;
    }
    for (size_t i = 0; i < max_blocks; i++)
        ptrs[i] = pool + i * bb;

    kvt_key ns;
    const char model[] = "bench:llama-3-8b", layout[] = "fp16,kv-per-block";
    kvt_ns_field nf[2] = {{KVT_NS_MODEL, sizeof model - 1, model},
                          {KVT_NS_LAYOUT, sizeof layout - 1, layout}};
    if (kvt_ns_key(nf, 2, &ns) < 0) {
        fprintf(stderr, "kvtier-bench: kvt_ns_key: %s\n", kvt_last_error());
        goto out;
    }
    const size_t sys = (size_t)c->system_tokens;
    for (size_t i = 0; i < sys; i++)
        prompt[i] = (uint32_t)(bench_rand(&rnd) % VOCAB);
    for (int64_t i = 0; i < c->sessions; i++) {
        ss[i].tok = malloc((max_tokens - sys) * sizeof *ss[i].tok);
        if (!ss[i].tok) {
            fprintf(stderr, "kvtier-bench: out of memory\n");
            goto out;
        }
        new_session(&ss[i], &rnd);
    }
    uint64_t rejected0 = bench_stat(s, "put_rejected");
    uint64_t evictions0 = bench_stat(s, "dram.evictions");
    int any_request = 0;

    for (int64_t q = 0; q < c->requests; q++) {
        bench_progress("mixed: request %" PRId64 "/%" PRId64 ", hit ratio %.1f%%", q + 1,
                       c->requests, r->blocks ? 100.0 * (double)r->hits / (double)r->blocks : 0);
        session *se = &ss[bench_rand(&rnd) % (uint64_t)c->sessions];
        /* A returning session appends a turn; one that would overflow the
         * context ends, and a new conversation takes its place. */
        if (se->started) {
            size_t add = (size_t)bench_rand_range(&rnd, APPEND_MIN, APPEND_MAX);
            if (sys + se->len + add > max_tokens) {
                new_session(se, &rnd);
            } else {
                for (size_t i = 0; i < add; i++)
                    se->tok[se->len + i] = (uint32_t)(bench_rand(&rnd) % VOCAB);
                se->len += add;
            }
        }
        size_t len = sys + se->len;
        memcpy(prompt + sys, se->tok, se->len * sizeof *prompt);

        uint64_t t0 = bench_now_ns();
        int nb = kvt_key_chain(&ns, prompt, len, (uint32_t)bt, keys, max_blocks);
        r->hash_ns += bench_now_ns() - t0;
        if (nb < 0) {
            fprintf(stderr, "kvtier-bench: kvt_key_chain: %s\n", kvt_last_error());
            goto out;
        }
        r->hash_tokens += len;
        r->blocks += (uint64_t)nb;
        /* What an unbounded cache would hold: the session's last prompt (its
         * prefix), or for a new session the shared prefix, once seen. */
        size_t ideal = se->started ? se->prev_blocks : any_request ? sys / bt : 0;
        r->ideal_hits += ideal < (size_t)nb ? ideal : (size_t)nb;
        se->prev_blocks = (size_t)nb;
        se->started = 1;
        any_request = 1;
        if (nb == 0)
            continue;

        t0 = bench_now_ns();
        int h = kvt_lookup(s, keys, (size_t)nb, NULL, (uint32_t)c->lease_ms);
        uint64_t ns_lookup = bench_now_ns() - t0;
        if (h < 0) {
            fprintf(stderr, "kvtier-bench: kvt_lookup: %s\n", kvt_last_error());
            goto out;
        }
        op_add(&r->lookup, (uint64_t)nb, 0, ns_lookup);
        r->lookup_keys += (uint64_t)(h < nb ? h + 1 : h);
        r->hits += (uint64_t)h;

        /* The library and the baseline take turns going first, so that
         * neither always finds the caches the other left. */
        int lib_first = q % 2 == 0;
        if (h > 0) {
            uint64_t base_ns = 0;
            if (!lib_first)
                base_ns = baseline(&r->get, cp, ops, pool, base, 0, (size_t)h, bb, 1);
            t0 = bench_now_ns();
            int got = kvt_get(s, keys, (size_t)h, ptrs, NULL, NULL);
            uint64_t ns_get = bench_now_ns() - t0;
            if (got != h) {
                fprintf(stderr, "kvtier-bench: kvt_get of %d pinned blocks copied %d: %s\n", h,
                        got, got < 0 ? kvt_last_error() : "blocks missing");
                goto out;
            }
            op_add(&r->get, (uint64_t)h, (uint64_t)h * bb, ns_get);
            if (lib_first)
                base_ns = baseline(&r->get, cp, ops, pool, base, 0, (size_t)h, bb, 1);
            add_pair(&r->get, (uint64_t)h * bb, ns_get, (uint64_t)h * bb, base_ns);
            if (c->lease_ms)
                kvt_release(s, keys, (size_t)h, NULL);
        }
        if (h == nb)
            continue;
        /* The engine computes the missing blocks (here: marks them), then
         * offloads them. Blocks past a hole may still be held; the library
         * skips those without copying, so the baseline copies only the new. */
        size_t fresh = 0;
        for (int i = h; i < nb; i++) {
            memcpy(pool + (size_t)i * bb, &q, sizeof q);
            fresh += kvt_lookup(s, &keys[i], 1, NULL, 0) == 0;
        }
        uint64_t base_ns = 0;
        if (!lib_first)
            base_ns = baseline(&r->put, cp, ops, pool, base, (size_t)h, fresh, bb, 0);
        uint64_t stored0 = bench_stat(s, "put_stored");
        kvt_io_opts o = {.size = sizeof o, .parent = h ? &keys[h - 1] : NULL};
        t0 = bench_now_ns();
        int put = kvt_put(s, keys + h, (size_t)(nb - h), ptrs + h, &o, NULL);
        uint64_t ns_put = bench_now_ns() - t0;
        if (put < 0) {
            fprintf(stderr, "kvtier-bench: kvt_put: %s\n", kvt_last_error());
            goto out;
        }
        uint64_t stored = bench_stat(s, "put_stored") - stored0;
        op_add(&r->put, (uint64_t)(nb - h), stored * bb, ns_put);
        if (lib_first)
            base_ns = baseline(&r->put, cp, ops, pool, base, (size_t)h, (size_t)stored, bb, 0);
        add_pair(&r->put, stored * bb, ns_put, (lib_first ? stored : fresh) * bb, base_ns);
    }
    bench_progress_done();
    r->put_rejected = bench_stat(s, "put_rejected") - rejected0;
    r->evictions = bench_stat(s, "dram.evictions") - evictions0;
    r->pooled = bench_stat(s, "dram.copy_batches_pooled");
    r->busy = bench_stat(s, "dram.copy_batches_busy");
    r->thp_bytes = bench_stat(s, "dram.thp_bytes");
    r->wall_ns = bench_now_ns() - t_start;
    rc = BENCH_OK;
out:
    bench_progress_done();
    if (ss)
        for (int64_t i = 0; i < c->sessions; i++)
            free(ss[i].tok);
    free(ss);
    free(prompt);
    free(keys);
    free(ptrs);
    free(ops);
    bench_free(pool, pool_bytes);
    bench_free(base, pool_bytes);
    bench_copier_free(cp);
    kvt_close(s);
    return rc;
}

int bench_mixed(int argc, char **argv)
{
    mixed_cfg c = {0};
    c.seed = 1;
    c.lease_ms = 10000;
    c.copy_threads = -1;
    const barg spec[] = {
        {"quick", BARG_BOOL, &c.quick,
         "a seconds-long version: 64 KiB blocks, 32 MiB DRAM, 40 requests"},
        {"requests", BARG_INT, &c.requests, "requests to run (default 200; --quick 40)"},
        {"sessions", BARG_INT, &c.sessions, "interleaved sessions (default 6)"},
        {"system-tokens", BARG_INT, &c.system_tokens, "shared prefix tokens (default 1024)"},
        {"max-context-tokens", BARG_INT, &c.max_context,
         "a session ends past this many tokens (default 3072)"},
        {"block-bytes", BARG_SIZE, &c.block_bytes,
         "bytes per block (default 2M: Llama-3-8B fp16, 16 tokens; --quick 64K)"},
        {"block-tokens", BARG_INT, &c.block_tokens, "tokens per block (default 16)"},
        {"dram-bytes", BARG_SIZE, &c.dram_bytes, "DRAM tier capacity (default 1G; --quick 32M)"},
        {"copy-threads", BARG_INT, &c.copy_threads,
         "KVT_OPT_COPY_THREADS (default: the library's); memcpy uses as many"},
        {"policy", BARG_STR, &c.policy, "DRAM eviction policy (default: the library's)"},
        {"lease-ms", BARG_INT, &c.lease_ms, "lookup pins the hits this long (default 10000)"},
        {"seed", BARG_INT, &c.seed, "workload seed (default 1)"},
        {"json", BARG_BOOL, &c.json, "print one JSON object instead of a table"},
        {0},
    };
    int rc = bench_parse_args("mixed", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    /* Unset flags take defaults; --quick only changes the unset ones. */
    if (!c.requests)
        c.requests = c.quick ? 40 : 200;
    if (!c.sessions)
        c.sessions = 6;
    if (!c.system_tokens)
        c.system_tokens = 1024;
    if (!c.max_context)
        c.max_context = 3072;
    if (!c.block_tokens)
        c.block_tokens = 16;
    if (!c.block_bytes)
        c.block_bytes = c.quick ? 64u << 10 : 2u << 20;
    if (!c.dram_bytes)
        c.dram_bytes = c.quick ? 32u << 20 : 1u << 30;
    if (c.copy_threads < 0)
        c.copy_threads = 0;
    const char *bad = NULL;
    if (c.requests < 1 || c.requests > 100000000)
        bad = "--requests must be 1..1e8";
    else if (c.sessions < 1 || c.sessions > 100000)
        bad = "--sessions must be 1..100000";
    else if (c.block_tokens < 1 || c.block_tokens > 65536)
        bad = "--block-tokens must be 1..65536";
    else if (c.system_tokens < 0 || c.max_context > 10000000 ||
             c.system_tokens + FIRST_MAX > c.max_context)
        bad = "--max-context-tokens must exceed --system-tokens by at least 512 (and be <= 1e7)";
    else if (c.max_context / c.block_tokens < 1)
        bad = "--max-context-tokens must hold at least one block";
    else if (c.copy_threads > 64)
        bad = "--copy-threads must be 1..64";
    else if (c.lease_ms < 0 || c.lease_ms > 86400000)
        bad = "--lease-ms must be 0..86400000";
    else if (c.block_bytes < 64 || c.block_bytes % 64)
        bad = "--block-bytes must be a multiple of 64";
    else if (c.dram_bytes < c.block_bytes)
        bad = "--dram-bytes must hold at least one block";
    if (bad) {
        fprintf(stderr, "kvtier-bench mixed: %s\nTry 'kvtier-bench mixed --help'.\n", bad);
        return BENCH_USAGE;
    }
    mixed_run r = {0};
    rc = run(&c, &r);
    if (rc == BENCH_OK) {
        if (c.json)
            report_json(&c, &r);
        else
            report_text(&c, &r);
    }
    bench_samples_free(&r.put.lat_us);
    bench_samples_free(&r.get.lat_us);
    bench_samples_free(&r.lookup.lat_us);
    bench_samples_free(&r.put.pair);
    bench_samples_free(&r.get.pair);
    return rc;
}
