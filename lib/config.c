/* config.c — kvt_config: defaults, typed setters, validation. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "policy/policy.h"

#define MAX_BLOCK_BYTES (1ull << 30)
#define MAX_THREADS 64
#define MAX_INFLIGHT (1u << 20)

static const char *tier_name(kvt_tier t)
{
    static const char *names[] = {"hbm", "dram", "nvme"};
    return (unsigned)t < KVT_TIER_COUNT ? names[t] : "?";
}

int kvt_config_new(kvt_config **out)
{
    if (!out)
        return kvt__err(KVT_ENULL, "kvt_config_new: out is NULL");
    kvt_config *c = kvt__calloc(1, sizeof *c);
    if (!c)
        return kvt__err(KVT_ENOMEM, "kvt_config_new");
    c->block_tokens = 16;
    c->frags = 1;
    c->workers = 2;
    c->copy_threads = 2;
    c->max_inflight = 1024;
    c->close_flush_ms = 60000;
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        c->tier[t].victims = KVT_VICTIM_DEMOTE;
        c->tier[t].admit = KVT_ADMIT_WRITE_BACK;
        c->tier[t].admit_after = 2;
        c->tier[t].numa_node = -1;
        c->tier[t].queue_depth = 64;
        c->tier[t].hugepages = 1;
    }
    *out = c;
    return 0;
}

void kvt_config_free(kvt_config *cfg)
{
    if (!cfg)
        return;
    kvt__config_clear(cfg);
    kvt__free(cfg);
}

static int check_open(const kvt_config *cfg, const char *fn)
{
    if (!cfg)
        return kvt__err(KVT_ENULL, "%s: config is NULL", fn);
    if (cfg->frozen)
        return kvt__err(KVT_EFROZEN, "%s: this config opened a store; make a new one", fn);
    return 0;
}

static int in_range(int64_t v, int64_t lo, int64_t hi, const char *what)
{
    if (v < lo || v > hi)
        return kvt__err(KVT_ESIZE, "%s = %lld is outside %lld..%lld", what, (long long)v,
                        (long long)lo, (long long)hi);
    return 0;
}

int kvt_config_set(kvt_config *cfg, kvt_option opt, int64_t v)
{
    int rc = check_open(cfg, "kvt_config_set");
    if (rc)
        return rc;
    switch (opt) {
    case KVT_OPT_BLOCK_BYTES:
        if ((rc = in_range(v, 1, (int64_t)MAX_BLOCK_BYTES, "block bytes")))
            return rc;
        cfg->block_bytes = (uint64_t)v;
        return 0;
    case KVT_OPT_BLOCK_TOKENS:
        if ((rc = in_range(v, 1, 1 << 24, "block tokens")))
            return rc;
        cfg->block_tokens = (uint32_t)v;
        return 0;
    case KVT_OPT_FRAGS:
        if ((rc = in_range(v, 1, 1 << 16, "fragments per block")))
            return rc;
        cfg->frags = (uint32_t)v;
        return 0;
    case KVT_OPT_WORKERS:
        if ((rc = in_range(v, 1, MAX_THREADS, "workers")))
            return rc;
        cfg->workers = (uint32_t)v;
        return 0;
    case KVT_OPT_COPY_THREADS:
        if ((rc = in_range(v, 1, MAX_THREADS, "copy threads")))
            return rc;
        cfg->copy_threads = (uint32_t)v;
        return 0;
    case KVT_OPT_MAX_INFLIGHT:
        if ((rc = in_range(v, 1, MAX_INFLIGHT, "max in-flight tickets")))
            return rc;
        cfg->max_inflight = (uint32_t)v;
        return 0;
    case KVT_OPT_CLOSE_FLUSH_MS:
        if ((rc = in_range(v, 0, 86400000, "close flush ms")))
            return rc;
        cfg->close_flush_ms = (uint64_t)v;
        return 0;
    case KVT_OPT_MANUAL_CLOCK:
        if ((rc = in_range(v, 0, 1, "manual clock")))
            return rc;
        cfg->manual_clock = (int)v;
        return 0;
    case KVT_OPT_KEY_MODE:
        /* Any known mode, built in or not: the store never hashes, so keys
         * computed elsewhere (an engine in Python) may be of a mode this
         * build cannot compute. */
        if (v != KVT_KEY_XXH3_128 && v != KVT_KEY_BLAKE2B_128)
            return kvt__err(KVT_EINVAL, "key mode %lld is not a kvt_key_mode value", (long long)v);
        cfg->key_mode = (uint32_t)v;
        return 0;
    }
    return kvt__err(KVT_EINVAL, "kvt_config_set: unknown option %d", (int)opt);
}

int kvt_config_set_tier(kvt_config *cfg, kvt_tier tier, kvt_tier_option opt, int64_t v)
{
    int rc = check_open(cfg, "kvt_config_set_tier");
    if (rc)
        return rc;
    if ((unsigned)tier >= KVT_TIER_COUNT)
        return kvt__err(KVT_EINVAL, "kvt_config_set_tier: unknown tier %d", (int)tier);
    kvt_tier_cfg *t = &cfg->tier[tier];
    const char *n = tier_name(tier);
    switch (opt) {
    case KVT_TOPT_CAPACITY:
        if (v < 0)
            return kvt__err(KVT_ESIZE, "%s capacity is negative", n);
        t->capacity = (uint64_t)v;
        return 0;
    case KVT_TOPT_TTL_MS:
        if ((rc = in_range(v, 0, INT64_MAX / 1000000, "ttl ms")))
            return rc;
        t->ttl_ms = (uint64_t)v;
        return 0;
    case KVT_TOPT_VICTIMS:
        if (v != KVT_VICTIM_DEMOTE && v != KVT_VICTIM_DROP)
            return kvt__err(KVT_EINVAL, "%s victims: %lld is not a kvt_victims value", n,
                            (long long)v);
        t->victims = (int)v;
        return 0;
    case KVT_TOPT_ADMIT:
        if (v != KVT_ADMIT_WRITE_BACK && v != KVT_ADMIT_WRITE_THROUGH && v != KVT_ADMIT_AFTER_N)
            return kvt__err(KVT_EINVAL, "%s admit: %lld is not a kvt_admit value", n,
                            (long long)v);
        t->admit = (int)v;
        return 0;
    case KVT_TOPT_ADMIT_AFTER:
        if ((rc = in_range(v, 1, 65535, "admit after")))
            return rc;
        t->admit_after = (uint32_t)v;
        return 0;
    case KVT_TOPT_NUMA_NODE:
        if ((rc = in_range(v, -1, 1023, "numa node")))
            return rc;
        t->numa_node = (int)v;
        return 0;
    case KVT_TOPT_QUEUE_DEPTH:
        if ((rc = in_range(v, 1, 4096, "queue depth")))
            return rc;
        t->queue_depth = (int)v;
        return 0;
    case KVT_TOPT_SQPOLL:
    case KVT_TOPT_RECREATE:
    case KVT_TOPT_HUGEPAGES:
        if ((rc = in_range(v, 0, 1, "flag")))
            return rc;
        if (opt == KVT_TOPT_SQPOLL)
            t->sqpoll = (int)v;
        else if (opt == KVT_TOPT_RECREATE)
            t->recreate = (int)v;
        else
            t->hugepages = (int)v;
        return 0;
    case KVT_TOPT_DEVICE:
        if ((rc = in_range(v, 0, 1023, "device")))
            return rc;
        t->device = (int)v;
        return 0;
    }
    return kvt__err(KVT_EINVAL, "kvt_config_set_tier: unknown option %d", (int)opt);
}

static int set_string(char **slot, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = kvt__strdup(value)))
        return kvt__err(KVT_ENOMEM, "copying a config string");
    kvt__free(*slot);
    *slot = copy;
    return 0;
}

int kvt_config_set_tier_str(kvt_config *cfg, kvt_tier tier, kvt_tier_str_option opt,
                            const char *value)
{
    int rc = check_open(cfg, "kvt_config_set_tier_str");
    if (rc)
        return rc;
    if ((unsigned)tier >= KVT_TIER_COUNT)
        return kvt__err(KVT_EINVAL, "kvt_config_set_tier_str: unknown tier %d", (int)tier);
    kvt_tier_cfg *t = &cfg->tier[tier];
    switch (opt) {
    case KVT_TSTR_POLICY:
        if (!value)
            return kvt__err(KVT_ENULL, "policy name is NULL");
        if (!kvt__policy_find(value))
            return kvt__err(KVT_EPOLICY, "no policy named \"%s\"", value);
        return set_string(&t->policy, value);
    case KVT_TSTR_PATH:
        if (!value)
            return kvt__err(KVT_ENULL, "path is NULL");
        if (!*value)
            return kvt__err(KVT_EPATH, "path is empty");
        return set_string(&t->path, value);
    case KVT_TSTR_FAULTS:
        return set_string(&t->faults, value && *value ? value : NULL);
    }
    return kvt__err(KVT_EINVAL, "kvt_config_set_tier_str: unknown option %d", (int)opt);
}

int kvt_config_set_clock(kvt_config *cfg, kvt_clock_fn fn, void *user)
{
    int rc = check_open(cfg, "kvt_config_set_clock");
    if (rc)
        return rc;
    cfg->clock = fn;
    cfg->clock_user = fn ? user : NULL;
    return 0;
}

int kvt__config_copy(kvt_config *dst, const kvt_config *src)
{
    *dst = *src;
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        dst->tier[t].policy = dst->tier[t].path = dst->tier[t].faults = NULL;
    }
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        if (set_string(&dst->tier[t].policy, src->tier[t].policy) ||
            set_string(&dst->tier[t].path, src->tier[t].path) ||
            set_string(&dst->tier[t].faults, src->tier[t].faults)) {
            kvt__config_clear(dst);
            return KVT_ENOMEM;
        }
    }
    dst->frozen = 0;
    return 0;
}

void kvt__config_clear(kvt_config *cfg)
{
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        kvt__free(cfg->tier[t].policy);
        kvt__free(cfg->tier[t].path);
        kvt__free(cfg->tier[t].faults);
        cfg->tier[t].policy = cfg->tier[t].path = cfg->tier[t].faults = NULL;
    }
}

int kvt__config_validate(const kvt_config *cfg)
{
    if (cfg->block_bytes == 0)
        return kvt__err(KVT_ESIZE, "block bytes not set (KVT_OPT_BLOCK_BYTES)");
    if (cfg->block_bytes % cfg->frags)
        return kvt__err(KVT_EFRAGS, "%u fragments do not divide %llu block bytes", cfg->frags,
                        (unsigned long long)cfg->block_bytes);
    int any = 0;
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        const kvt_tier_cfg *tc = &cfg->tier[t];
        if (!tc->capacity)
            continue;
        any = 1;
        if (tc->capacity < cfg->block_bytes)
            return kvt__err(KVT_ECAPACITY, "%s capacity %llu is smaller than one block (%llu)",
                            tier_name((kvt_tier)t), (unsigned long long)tc->capacity,
                            (unsigned long long)cfg->block_bytes);
        if (t == KVT_TIER_NVME && !tc->path)
            return kvt__err(KVT_EPATH, "nvme tier has a capacity but no path (KVT_TSTR_PATH)");
    }
    if (!any)
        return kvt__err(KVT_ENOTIER, "no tier has a capacity (KVT_TOPT_CAPACITY)");
    return 0;
}
