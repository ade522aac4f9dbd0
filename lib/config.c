/* config.c — kvt_config: defaults, typed setters, validation. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "policy/policy.h"

#define MAX_BLOCK_BYTES (1ull << 30)
#define MAX_THREADS 64
#define MAX_INFLIGHT (1u << 20)

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

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= KVT_TIER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int name_taken(const kvt_config *cfg, const char *name)
{
    for (int t = 0; t < cfg->ntiers; t++)
        if (strcmp(cfg->tier[t].name, name) == 0)
            return 1;
    return 0;
}

int kvt_config_add_tier(kvt_config *cfg, const char *kind, const char *name)
{
    int rc = check_open(cfg, "kvt_config_add_tier");
    if (rc)
        return rc;
    if (!kind)
        return kvt__err(KVT_ENULL, "kvt_config_add_tier: kind is NULL");
    const kvt_tier_ops *ops = kvt__tier_find(kind);
    if (!ops)
        return kvt__err(KVT_ENOTSUP, "no tier kind \"%s\" in this build", kind);
    if (cfg->ntiers == KVT_MAX_TIERS)
        return kvt__err(KVT_ESIZE, "a store takes at most %d tiers", KVT_MAX_TIERS);
    if (!(ops->caps & KVT_TCAP_KEYED)) {
        /* The index keeps per-tier arrays for slot tiers only (lib/index.h),
         * indexed by instance: slot tiers come first. */
        int slot_tiers = 0;
        for (int t = 0; t < cfg->ntiers; t++) {
            if (cfg->tier[t].ops->caps & KVT_TCAP_KEYED)
                return kvt__err(KVT_EINVAL, "%s: slot tiers are added before key-addressed "
                                "ones (%s)", kind, cfg->tier[t].name);
            slot_tiers++;
        }
        if (slot_tiers == KVT_MAX_SLOT_TIERS)
            return kvt__err(KVT_ESIZE, "a store takes at most %d slot tiers", KVT_MAX_SLOT_TIERS);
    }
    char chosen[KVT_TIER_NAME_MAX];
    if (name) {
        if (!name_ok(name))
            return kvt__err(KVT_EINVAL, "tier name \"%s\": 1..%d of A-Z a-z 0-9 _ -", name,
                            KVT_TIER_NAME_MAX - 1);
        if (name_taken(cfg, name))
            return kvt__err(KVT_EINVAL, "tier name \"%s\" is taken", name);
        snprintf(chosen, sizeof chosen, "%s", name);
    } else {
        snprintf(chosen, sizeof chosen, "%s", ops->name);
        for (int k = 1; name_taken(cfg, chosen); k++)
            snprintf(chosen, sizeof chosen, "%.20s%d", ops->name, k % 1000000);
    }
    kvt_tier_cfg *t = &cfg->tier[cfg->ntiers];
    memset(t, 0, sizeof *t);
    t->ops = ops;
    memcpy(t->name, chosen, sizeof chosen);
    t->victims = KVT_VICTIM_DEMOTE;
    t->admit = KVT_ADMIT_WRITE_BACK;
    t->admit_after = 2;
    for (const kvt_tier_opt_spec *o = ops->options; o && o->name; o++) {
        if (t->nopts == KVT_TIER_MAX_OPTS)
            return kvt__err(KVT_EINVAL, "tier kind \"%s\" has more than %d options", kind,
                            KVT_TIER_MAX_OPTS);
        t->opt[t->nopts++] = (kvt_tier_optval){.spec = o, .i = o->def};
    }
    return cfg->ntiers++;
}

int kvt_config_tier_find(const kvt_config *cfg, const char *name)
{
    if (!cfg || !name)
        return kvt__err(KVT_ENULL, "kvt_config_tier_find: %s is NULL", cfg ? "name" : "config");
    for (int t = 0; t < cfg->ntiers; t++)
        if (strcmp(cfg->tier[t].name, name) == 0)
            return t;
    return kvt__err(KVT_ENOENT, "kvt_config_tier_find: no tier \"%s\"", name);
}

static int tier_of(kvt_config *cfg, int tier, const char *opt, const char *fn, kvt_tier_cfg **out)
{
    int rc = check_open(cfg, fn);
    if (rc)
        return rc;
    if (!opt)
        return kvt__err(KVT_ENULL, "%s: option name is NULL", fn);
    if (tier < 0 || tier >= cfg->ntiers)
        return kvt__err(KVT_EINVAL, "%s: no tier %d (the config has %d)", fn, tier, cfg->ntiers);
    *out = &cfg->tier[tier];
    return 0;
}

static kvt_tier_optval *own_option(kvt_tier_cfg *t, const char *opt)
{
    for (uint32_t i = 0; i < t->nopts; i++)
        if (strcmp(t->opt[i].spec->name, opt) == 0)
            return &t->opt[i];
    return NULL;
}

int kvt_config_tier_set(kvt_config *cfg, int tier, const char *opt, int64_t v)
{
    kvt_tier_cfg *t;
    int rc = tier_of(cfg, tier, opt, "kvt_config_tier_set", &t);
    if (rc)
        return rc;
    const char *n = t->name;
    if (strcmp(opt, "capacity") == 0) {
        if (v < 0)
            return kvt__err(KVT_ESIZE, "%s capacity is negative", n);
        t->capacity = (uint64_t)v;
        return 0;
    }
    if (strcmp(opt, "ttl_ms") == 0) {
        if ((rc = in_range(v, 0, INT64_MAX / 1000000, "ttl_ms")))
            return rc;
        t->ttl_ms = (uint64_t)v;
        return 0;
    }
    if (strcmp(opt, "victims") == 0) {
        if (v != KVT_VICTIM_DEMOTE && v != KVT_VICTIM_DROP)
            return kvt__err(KVT_EINVAL, "%s victims: %lld is not a kvt_victims value", n,
                            (long long)v);
        t->victims = (int)v;
        return 0;
    }
    if (strcmp(opt, "admit") == 0) {
        if (v != KVT_ADMIT_WRITE_BACK && v != KVT_ADMIT_WRITE_THROUGH && v != KVT_ADMIT_AFTER_N)
            return kvt__err(KVT_EINVAL, "%s admit: %lld is not a kvt_admit value", n,
                            (long long)v);
        t->admit = (int)v;
        return 0;
    }
    if (strcmp(opt, "admit_after") == 0) {
        if ((rc = in_range(v, 1, 65535, "admit_after")))
            return rc;
        t->admit_after = (uint32_t)v;
        return 0;
    }
    kvt_tier_optval *o = own_option(t, opt);
    if (!o || o->spec->type != KVT_OPTTYPE_INT)
        return kvt__err(KVT_EINVAL, "%s tier (kind %s) has no integer option \"%s\"", n,
                        t->ops->name, opt);
    char what[96];
    snprintf(what, sizeof what, "%s %s", n, opt);
    if ((rc = in_range(v, o->spec->min, o->spec->max, what)))
        return rc;
    o->i = v;
    o->set = 1;
    return 0;
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

int kvt_config_tier_set_str(kvt_config *cfg, int tier, const char *opt, const char *value)
{
    kvt_tier_cfg *t;
    int rc = tier_of(cfg, tier, opt, "kvt_config_tier_set_str", &t);
    if (rc)
        return rc;
    if (strcmp(opt, "policy") == 0) {
        if (!value)
            return kvt__err(KVT_ENULL, "policy name is NULL");
        if (!kvt__policy_find(value))
            return kvt__err(KVT_EPOLICY, "no policy named \"%s\"", value);
        return set_string(&t->policy, value);
    }
    if (strcmp(opt, "faults") == 0)
        return set_string(&t->faults, value && *value ? value : NULL);
    kvt_tier_optval *o = own_option(t, opt);
    if (!o || o->spec->type != KVT_OPTTYPE_STR)
        return kvt__err(KVT_EINVAL, "%s tier (kind %s) has no string option \"%s\"", t->name,
                        t->ops->name, opt);
    if (!value)
        return kvt__err(KVT_ENULL, "%s %s is NULL", t->name, opt);
    if (!*value && o->spec->empty_code)
        return kvt__err(o->spec->empty_code, "%s %s is empty", t->name, opt);
    if ((rc = set_string(&o->s, value)))
        return rc;
    o->set = 1;
    return 0;
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
    for (int t = 0; t < KVT_MAX_TIERS; t++) {
        kvt_tier_cfg *d = &dst->tier[t];
        d->policy = d->faults = NULL;
        for (uint32_t i = 0; i < d->nopts; i++)
            d->opt[i].s = NULL;
    }
    for (int t = 0; t < src->ntiers; t++) {
        kvt_tier_cfg *d = &dst->tier[t];
        const kvt_tier_cfg *s = &src->tier[t];
        int bad = set_string(&d->policy, s->policy) || set_string(&d->faults, s->faults);
        for (uint32_t i = 0; !bad && i < s->nopts; i++)
            bad = set_string(&d->opt[i].s, s->opt[i].s);
        if (bad) {
            kvt__config_clear(dst);
            return KVT_ENOMEM;
        }
    }
    dst->frozen = 0;
    return 0;
}

void kvt__config_clear(kvt_config *cfg)
{
    for (int t = 0; t < KVT_MAX_TIERS; t++) {
        kvt_tier_cfg *c = &cfg->tier[t];
        kvt__free(c->policy);
        kvt__free(c->faults);
        c->policy = c->faults = NULL;
        for (uint32_t i = 0; i < c->nopts; i++) {
            kvt__free(c->opt[i].s);
            c->opt[i].s = NULL;
        }
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
    for (int t = 0; t < cfg->ntiers; t++) {
        const kvt_tier_cfg *tc = &cfg->tier[t];
        if (!tc->capacity)
            continue;
        any = 1;
        if (tc->capacity < cfg->block_bytes)
            return kvt__err(KVT_ECAPACITY, "%s capacity %llu is smaller than one block (%llu)",
                            tc->name, (unsigned long long)tc->capacity,
                            (unsigned long long)cfg->block_bytes);
        for (uint32_t i = 0; i < tc->nopts; i++) {
            const kvt_tier_optval *o = &tc->opt[i];
            if (o->spec->type == KVT_OPTTYPE_STR && o->spec->empty_code && !o->s)
                return kvt__err(o->spec->empty_code, "%s tier has a capacity but no %s", tc->name,
                                o->spec->name);
        }
    }
    if (!any)
        return kvt__err(KVT_ENOTIER, "no tier has a capacity (add one: kvt_config_add_tier)");
    return 0;
}
