/* store_cfg.c — the one place that turns a bench store description into kvt_config calls. */
#include <stdlib.h>

#include "bench.h"

/* What a setting is called in messages when the command gives no flag. */
static const char *const setting_names[BSET_COUNT] = {
    [BSET_BLOCK_BYTES] = "block bytes",     [BSET_COPY_THREADS] = "copy threads",
    [BSET_DRAM_CAPACITY] = "DRAM capacity", [BSET_DRAM_TTL] = "DRAM TTL",
    [BSET_NVME_CAPACITY] = "NVMe capacity", [BSET_NVME_TTL] = "NVMe TTL",
    [BSET_POLICY] = "policy",               [BSET_PATH] = "NVMe path",
};

/* The library's tier kind of each bench tier (configured in this order:
 * fastest first). */
static const char *const tier_kinds[BENCH_TIERS] = {
    [BENCH_HBM] = "hbm",
    [BENCH_DRAM] = "dram",
    [BENCH_NVME] = "nvme",
    [BENCH_CLUSTER] = "cluster",
};

bench_store_spec bench_store_spec_default(const char *who)
{
    bench_store_spec s = {0};
    s.close_flush_ms = -1;
    s.who = who;
    return s;
}

bench_store_spec bench_dram_spec(const char *who, uint64_t block_bytes, uint64_t dram_bytes)
{
    bench_store_spec s = bench_store_spec_default(who);
    s.block_bytes = block_bytes;
    s.tier[BENCH_DRAM].capacity = dram_bytes;
    return s;
}

/* The config's instance of `kind` (named as the kind), added when missing. */
static int config_tier(kvt_config *c, const char *kind)
{
    int t = kvt_config_tier_find(c, kind);
    return t >= 0 ? t : kvt_config_add_tier(c, kind, NULL);
}

/* Setting refusals: sizes and names are the caller's to fix, except memory. */
static int refused(const bench_store_spec *sp, int rc, const char *what)
{
    if (rc >= 0)
        return BENCH_OK;
    fprintf(stderr, "kvtier-bench %s: %s: %s\n", sp->who ? sp->who : "", what, kvt_last_error());
    return rc == KVT_ENOMEM ? BENCH_FAILED : BENCH_USAGE;
}

static const char *named(const bench_store_spec *sp, bench_setting s)
{
    return sp->flag[s] ? sp->flag[s] : setting_names[s];
}

static int set(const bench_store_spec *sp, kvt_config *c, kvt_option o, int64_t v, const char *what)
{
    return refused(sp, kvt_config_set(c, o, v), what);
}

/* One tier's settings, in the order the bench always set them. */
static int set_tier(const bench_store_spec *sp, kvt_config *c, bench_tier t)
{
    const bench_tier_spec *ts = &sp->tier[t];
    const int id = config_tier(c, tier_kinds[t]);
    const int nvme = t == BENCH_NVME, hbm = t == BENCH_HBM;
    if (id < 0)
        return refused(sp, id, tier_kinds[t]);
    if (t == BENCH_CLUSTER) {
        int rc = refused(sp, kvt_config_tier_set_str(c, id, "dir", ts->path), "cluster directory");
        if (!rc && ts->capacity)
            rc = refused(sp, kvt_config_tier_set(c, id, "capacity", (int64_t)ts->capacity),
                         "cluster quota");
        if (!rc && ts->ttl_ms)
            rc = refused(sp, kvt_config_tier_set(c, id, "ttl_ms", (int64_t)ts->ttl_ms),
                         "cluster TTL");
        if (!rc && ts->queue_depth)
            rc = refused(sp, kvt_config_tier_set(c, id, "queue_depth", ts->queue_depth),
                         "cluster queue depth");
        return rc;
    }
    int rc = refused(sp, kvt_config_tier_set(c, id, "capacity", (int64_t)ts->capacity),
                     hbm ? "HBM capacity"
                         : named(sp, nvme ? BSET_NVME_CAPACITY : BSET_DRAM_CAPACITY));
    if (!rc && ts->ttl_ms)
        rc = refused(sp, kvt_config_tier_set(c, id, "ttl_ms", (int64_t)ts->ttl_ms),
                     hbm ? "HBM TTL" : named(sp, nvme ? BSET_NVME_TTL : BSET_DRAM_TTL));
    if (!rc && ts->queue_depth)
        rc = refused(sp, kvt_config_tier_set(c, id, "queue_depth", ts->queue_depth),
                     "queue depth");
    if (!rc && ts->recreate)
        rc = refused(sp, kvt_config_tier_set(c, id, "recreate", 1), "recreate");
    if (!rc && ts->no_hugepages)
        rc = refused(sp, kvt_config_tier_set(c, id, "hugepages", 0), "huge pages");
    if (!rc && ts->shared)
        rc = refused(sp, kvt_config_tier_set(c, id, "shared", 1), "shared DRAM arena");
    if (!rc && ts->has_device)
        rc = refused(sp, kvt_config_tier_set(c, id, "device", ts->device), "device");
    if (!rc && ts->path)
        rc = refused(sp, kvt_config_tier_set_str(c, id, "path", ts->path),
                     named(sp, BSET_PATH));
    if (!rc && ts->policy)
        rc = refused(sp, kvt_config_tier_set_str(c, id, "policy", ts->policy),
                     named(sp, BSET_POLICY));
    return rc;
}

static int configure(const bench_store_spec *sp, kvt_config *c)
{
    int rc = set(sp, c, KVT_OPT_BLOCK_BYTES, (int64_t)sp->block_bytes, named(sp, BSET_BLOCK_BYTES));
    if (!rc && sp->block_tokens)
        rc = set(sp, c, KVT_OPT_BLOCK_TOKENS, sp->block_tokens, "block tokens");
    if (!rc && sp->frags)
        rc = set(sp, c, KVT_OPT_FRAGS, sp->frags, "fragments");
    if (!rc && sp->manual_clock)
        rc = set(sp, c, KVT_OPT_MANUAL_CLOCK, 1, "manual clock");
    if (!rc && sp->close_flush_ms >= 0)
        rc = set(sp, c, KVT_OPT_CLOSE_FLUSH_MS, sp->close_flush_ms, "close flush");
    if (!rc && sp->copy_threads)
        rc = set(sp, c, KVT_OPT_COPY_THREADS, sp->copy_threads, named(sp, BSET_COPY_THREADS));
    for (int t = 0; t < BENCH_TIERS && !rc; t++)
        if (t == BENCH_CLUSTER ? sp->tier[t].path != NULL : sp->tier[t].capacity != 0)
            rc = set_tier(sp, c, (bench_tier)t);
    return rc;
}

int bench_store_open(const bench_store_spec *sp, kvt_store **out)
{
    kvt_config *c = NULL;
    *out = NULL;
    int rc = refused(sp, kvt_config_new(&c), "kvt_config_new");
    if (!rc)
        rc = configure(sp, c);
    if (!rc) {
        int o = kvt_open(c, out);
        if (o < 0) {
            fprintf(stderr, "kvtier-bench %s: kvt_open: %s\n", sp->who ? sp->who : "",
                    kvt_last_error());
            /* Sizes, names and directories are the caller's to fix. */
            rc = o == KVT_ECAPACITY || o == KVT_ESIZE || o == KVT_EPOLICY || o == KVT_EPATH ||
                         o == KVT_ENODIRECT
                     ? BENCH_USAGE
                     : BENCH_FAILED;
            *out = NULL;
        }
    }
    kvt_config_free(c);
    return rc;
}

int bench_slot_bytes(uint64_t block_bytes, uint64_t *out)
{
    return kvt_slot_bytes("nvme", block_bytes, out);
}

uint8_t bench_tier_id(kvt_store *s, bench_tier t)
{
    int id = kvt_store_tier_find(s, tier_kinds[t]);
    return id < 0 ? (uint8_t)KVT_TIER_NONE : (uint8_t)id;
}

int bench_policy_known(const char *name)
{
    kvt_config *c = NULL;
    if (kvt_config_new(&c) < 0)
        return 0;
    int ok = kvt_config_tier_set_str(c, config_tier(c, "dram"), "policy", name) == 0;
    kvt_config_free(c);
    return ok;
}

int bench_tier_option_known(const char *kind, const char *opt, int64_t value, char *why,
                            size_t cap)
{
    kvt_config *c = NULL;
    int rc = kvt_config_new(&c);
    if (rc >= 0)
        rc = config_tier(c, kind);
    if (rc >= 0)
        rc = kvt_config_tier_set(c, rc, opt, value);
    if (rc < 0 && why && cap)
        snprintf(why, cap, "%s", kvt_last_error());
    kvt_config_free(c);
    return rc >= 0;
}

uint64_t bench_stat(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    if (kvt_stat(s, name, &v) < 0)
        return 0;
    return v;
}

static int check(int rc, const char *what)
{
    if (rc < 0)
        fprintf(stderr, "kvtier-bench: %s: %s\n", what, kvt_last_error());
    return rc < 0;
}

int bench_keys(kvt_key *out, size_t n, uint64_t seed)
{
    uint32_t *tokens = malloc(n * sizeof *tokens);
    if (!tokens) {
        fprintf(stderr, "kvtier-bench: no memory for %zu tokens\n", n);
        return -1;
    }
    uint64_t r = bench_rand_seed(seed);
    for (size_t i = 0; i < n; i++)
        tokens[i] = (uint32_t)(bench_rand(&r) % 128256); /* a Llama-3 vocabulary */
    kvt_key ns;
    kvt_ns_field f = {.tag = KVT_NS_CUSTOM, .len = sizeof seed, .data = &seed};
    int bad = check(kvt_ns_key(&f, 1, &ns), "kvt_ns_key") ||
              check(kvt_key_chain(&ns, tokens, n, 1, out, n), "kvt_key_chain");
    free(tokens);
    return bad ? -1 : 0;
}
