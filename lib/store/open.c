/* open.c — statistics, and opening and closing a store and its tiers. */
#include "internal.h"
#include "groups.h"

#include "tier/faulty.h"
#include "tier/staged.h"

/* ----------------------------------------------------------------- stats */

/* Passes a tier's own statistics on to the caller, counting them. */
typedef struct stat_counter {
    kvt_stat_fn fn;
    void *user;
    int count;
    const char *kind;     /* the tier's kind, which prefixes the names it gives */
    const char *instance; /* the name they get instead */
} stat_counter;

static void count_stat(const char *name, uint64_t value, void *user)
{
    stat_counter *c = user;
    size_t k = strlen(c->kind);
    char renamed[128];
    if (strncmp(name, c->kind, k) == 0 && name[k] == '.' && strcmp(c->kind, c->instance)) {
        snprintf(renamed, sizeof renamed, "%s%s", c->instance, name + k);
        name = renamed;
    }
    c->fn(name, value, c->user);
    c->count++;
}

int kvt__store_stats(kvt_store *s, kvt_stat_fn fn, void *user)
{
    int count = 0;
#define KVT_X_VISIT(name)                                                       \
    fn(#name, atomic_load_explicit(&s->st.name, memory_order_relaxed), user); \
    count++;
    KVT_STORE_COUNTERS(KVT_X_VISIT)
#undef KVT_X_VISIT
    fn("tickets_pending", atomic_load_explicit(&s->tickets_pending, memory_order_relaxed), user);
    fn("index_capacity", s->ix.capacity, user);
    fn("key_mode", s->cfg.key_mode, user);
    count += 3;
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
        kvt_tier_rt *tr = &s->tier[t];
        if (!tr->on)
            continue;
        char name[64];
#define KVT_X_VISIT(field)                                                            \
    snprintf(name, sizeof name, "%s." #field, tr->name);                              \
    fn(name, atomic_load_explicit(&tr->st.field, memory_order_relaxed), user);        \
    count++;
        KVT_TIER_COUNTERS(KVT_X_VISIT)
#undef KVT_X_VISIT
        pthread_mutex_lock(&tr->lock);
        uint64_t used = tr->nslots - tr->nfree;
        pthread_mutex_unlock(&tr->lock);
        snprintf(name, sizeof name, "%s.capacity_blocks", tr->name);
        fn(name, tr->nslots, user);
        snprintf(name, sizeof name, "%s.used_blocks", tr->name);
        fn(name, used, user);
        count += 2;
        if (tr->ops->stats) {
            /* kvt_stats returns the number visited: these too. */
            stat_counter c = {.fn = fn, .user = user, .kind = tr->ops->name, .instance = tr->name};
            tr->ops->stats(tr->impl, count_stat, &c);
            count += c.count;
        }
    }
    for (int i = 0; i < s->nkeyed; i++) {
        struct kvt_keyed_rt *k = &s->keyed[i];
        const char *inst = s->cfg.tier[k->index].name;
        char name[64];
#define KVT_X_VISIT(field)                                                   \
    snprintf(name, sizeof name, "%s." #field, inst);                          \
    fn(name, atomic_load_explicit(&k->field, memory_order_relaxed), user);   \
    count++;
        KVT_X_VISIT(hits)
        KVT_X_VISIT(reads)
        KVT_X_VISIT(writes)
        KVT_X_VISIT(removes)
        KVT_X_VISIT(io_errors)
#undef KVT_X_VISIT
        if (k->ops->stats) {
            stat_counter c = {.fn = fn, .user = user, .kind = k->ops->name, .instance = inst};
            k->ops->stats(k->impl, count_stat, &c);
            count += c.count;
        }
    }
    return count;
}

/* ------------------------------------------------------------ open/close */

/* What recover() visits: the store and the tier being recovered. */
typedef struct recovering {
    kvt_store *s;
    int t;
} recovering;

static int recovered(void *user, uint32_t slot, const kvt_key *key)
{
    recovering *rv = user;
    kvt_store *s = rv->s;
    int t = rv->t;
    kvt_tier_rt *tr = &s->tier[t];
    kvt_shard *sh = kvt__index_shard(&s->ix, key);
    if (slot >= tr->nslots || kvt__index_find(&s->ix, sh, key) != KVT_NO_ENTRY)
        return 1; /* a stale twin of a block already found */
    uint32_t id = kvt__index_alloc(&s->ix, key);
    if (id == KVT_NO_ENTRY)
        return 1;
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    e->slot[t] = slot;
    e->res[t] = KVT_RES_READY;
    /* Recovery checks headers only: the payload is verified when first read. */
    e->untrusted = (uint8_t)(e->untrusted | 1u << t);
    kvt__index_link(&s->ix, sh, id);
    tr->slot_entry[slot] = id;
    tr->pol->insert(tr->pst, slot, KVT_NO_SLOT, kvt__key_hash(key));
    kvt__idle_push(tr, slot, kvt__store_now(s));
    return 0;
}

static int open_tier(kvt_store *s, int t, void *region, size_t region_bytes)
{
    if (t < 0 || t >= s->cfg.ntiers)
        return kvt__err(KVT_EINVAL, "tier %d", t);
    kvt_tier_rt *tr = &s->tier[t];
    const kvt_tier_cfg *tc = &s->cfg.tier[t];
    tr->ops = tc->ops;
    kvt_tier_params p = {
        .name = tc->name,
        .capacity = tc->capacity,
        .block_bytes = s->block_bytes,
        .block_tokens = s->cfg.block_tokens,
        .frags = s->frags,
        .key_mode = s->cfg.key_mode,
        .copy_threads = s->cfg.copy_threads,
        .nopts = tc->nopts,
        .host_region = region,
        .host_region_bytes = region_bytes,
    };
    memcpy(p.opts, tc->opt, sizeof p.opts);
    /* Faults: a bad spec is refused before the tier opens (no new file);
     * a good one wraps the opened tier, whichever it is (tier/faulty.h). */
    int rc = kvt__faulty_check(tc->faults);
    if (!rc)
        rc = tr->ops->open(&p, &tr->impl, &tr->nslots);
    if (!rc && tc->faults) {
        kvt_tier_handle h = {tr->ops, tr->impl, tr->ops->caps};
        rc = kvt__faulty_wrap(&h, tc->faults);
        tr->ops = h.ops;
        tr->impl = h.impl;
    }
    if (rc)
        return rc;
    /* Device memory for a tier that takes host memory only goes through
     * pinned staging (lib/tier/staged.c), so that the store calls
     * ops->read/write alike for every tier. Above the fault wrapper: faults
     * hit the host-memory moves of the inner tier, as they did when the
     * NVMe engine injected them. */
    kvt_tier_handle staged = {.ops = tr->ops, .impl = tr->impl, .caps = tr->ops->caps};
    if ((rc = kvt__staged_wrap(&staged, s->block_bytes)))
        return rc;
    tr->ops = staged.ops;
    tr->impl = staged.impl;
    tr->on = 1;
    tr->pol = kvt__policy_find(tc->policy ? tc->policy : kvt__policy_default());
    if (!tr->pol)
        return kvt__err(KVT_EPOLICY, "no policy named \"%s\"", tc->policy);
    tr->pst = tr->pol->create(tr->nslots);
    tr->slot_entry = kvt__malloc((size_t)tr->nslots * sizeof(uint32_t));
    tr->free_slots = kvt__malloc((size_t)tr->nslots * sizeof(uint32_t));
    if (!tr->pst || !tr->slot_entry || !tr->free_slots)
        return kvt__err(KVT_ENOMEM, "%s tier bookkeeping for %u slots", tr->name,
                        tr->nslots);
    memset(tr->slot_entry, 0xff, (size_t)tr->nslots * sizeof(uint32_t));
    tr->ttl_ns = tc->ttl_ms * NS_PER_MS;
    tr->idle_head = tr->idle_tail = KVT_NO_SLOT;
    atomic_store(&tr->next_expiry, UINT64_MAX);
    if (tr->ttl_ns) {
        tr->idle_prev = kvt__malloc((size_t)tr->nslots * sizeof(uint32_t));
        tr->idle_next = kvt__malloc((size_t)tr->nslots * sizeof(uint32_t));
        tr->idle_stamp = kvt__malloc((size_t)tr->nslots * sizeof(uint64_t));
        if (!tr->idle_prev || !tr->idle_next || !tr->idle_stamp)
            return kvt__err(KVT_ENOMEM, "%s idle list", tr->name);
    }
    return 0;
}

static void close_tier(kvt_tier_rt *tr)
{
    if (tr->ops && tr->impl)
        tr->ops->close(tr->impl);
    if (tr->pol && tr->pst)
        tr->pol->destroy(tr->pst);
    pthread_mutex_destroy(&tr->lock);
    kvt__free(tr->slot_entry);
    kvt__free(tr->free_slots);
    kvt__free(tr->idle_prev);
    kvt__free(tr->idle_next);
    kvt__free(tr->idle_stamp);
    memset(tr, 0, sizeof *tr);
}

static void free_store(kvt_store *s)
{
    kvt__writethrough_close(s);
    kvt__executor_free(s->demoter);
    kvt__keyed_close(s);
    for (int t = KVT_MAX_SLOT_TIERS - 1; t >= 0; t--)
        close_tier(&s->tier[t]);
    kvt__index_destroy(&s->ix);
    kvt__free(s->pending);
    kvt__free(s->tombs);
    kvt__free(s->close_work);
    pthread_mutex_destroy(&s->rm_lock);
    pthread_mutex_destroy(&s->barrier_lock);
    kvt__config_clear(&s->cfg);
    kvt__events_free(s);
    kvt__groups_free(s);
    s->magic = 0;
    kvt__free(s);
}

int kvt__store_open(const kvt_config *cfg, kvt_store **out)
{
    int rc = kvt__config_validate(cfg);
    if (rc)
        return rc;
    kvt_store *s = kvt__calloc(1, sizeof *s);
    if (!s)
        return kvt__err(KVT_ENOMEM, "store");
    pthread_mutex_init(&s->rm_lock, NULL);
    pthread_mutex_init(&s->barrier_lock, NULL);
    s->durable_tier = -1;
    if (kvt__config_copy(&s->cfg, cfg)) {
        kvt__free(s);
        return kvt__err(KVT_ENOMEM, "config copy");
    }
    s->magic = KVT_STORE_MAGIC;
    s->block_bytes = cfg->block_bytes;
    s->frags = cfg->frags;
    s->frag_bytes = cfg->block_bytes / cfg->frags;
    s->clock = cfg->clock;
    s->clock_user = cfg->clock_user;
    s->manual_clock = cfg->manual_clock;
    s->epoch_ns = kvt__store_now(s);
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
        s->tier[t].id = t;
        s->tier[t].name = t < cfg->ntiers ? s->cfg.tier[t].name : "";
        s->tier[t].victims = cfg->tier[t].victims;
        s->tier[t].admit = cfg->tier[t].admit;
        s->tier[t].admit_after = cfg->tier[t].admit_after;
        s->tier[t].below = -1;
        pthread_mutex_init(&s->tier[t].lock, NULL);
    }

    /* Host-memory tiers (DRAM) first: the others register the first one's
     * slots for DMA. Then the rest, fastest first. */
    void *region = NULL;
    size_t region_bytes = 0;
    uint64_t slots = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int t = 0; t < cfg->ntiers; t++) {
            const kvt_tier_cfg *tc = &cfg->tier[t];
            int first = (tc->ops->caps & KVT_TCAP_HOST_PTR) != 0;
            if (!tc->capacity || first != (pass == 0) || (tc->ops->caps & KVT_TCAP_KEYED))
                continue;
            rc = open_tier(s, t, region, region_bytes);
            if (rc == KVT_ENODEV && (tc->ops->caps & KVT_TCAP_OPTIONAL)) {
                s->tier_unavailable[t] = 1; /* e.g. a GPU-less machine runs without HBM */
                continue;
            }
            if (rc)
                goto fail;
            kvt_tier_rt *tr = &s->tier[t];
            if (first && !region) {
                region = tr->ops->slot_ptr(tr->impl, 0);
                region_bytes = (size_t)tr->nslots * s->block_bytes;
            }
            slots += tr->nslots;
        }
    }
    int prev = -1;
    s->put_tier = -1;
    s->top_tier = -1;
    s->pending_wait_ns = KVT__PENDING_WAIT_NS;
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
        if (!s->tier[t].on)
            continue;
        if (prev >= 0)
            s->tier[prev].below = t;
        else
            s->top_tier = t;
        prev = t;
        if (s->put_tier < 0 && s->tier[t].admit != KVT_ADMIT_AFTER_N)
            s->put_tier = t;
    }
    if (prev < 0) {
        rc = kvt__err(KVT_ENODEV, "no configured tier is available on this machine");
        goto fail;
    }
    for (int t = KVT_MAX_SLOT_TIERS - 1; t >= 0; t--)
        if (s->tier[t].on && kvt__persistent(s, t))
            s->durable_tier = t; /* the first, fastest first */
    s->tomb_cap = TOMB_CAP;
    s->tombs = kvt__malloc(TOMB_CAP * sizeof *s->tombs);
    /* kvt_close writes blocks down with this (a close allocates nothing). */
    if (s->durable_tier > s->top_tier && cfg->close_flush_ms)
        s->close_work = kvt__malloc(sizeof(down_work));
    if (!s->tombs || (s->durable_tier > s->top_tier && cfg->close_flush_ms && !s->close_work)) {
        rc = kvt__err(KVT_ENOMEM, "tombstones, close write-down");
        goto fail;
    }
    if (s->put_tier < 0)
        s->put_tier = prev; /* every tier admits after N: the bottom one takes puts */

    /* Room for every slot to hold a distinct block, plus blocks in flight,
     * plus the tombstones removes may leave (TOMB_CAP). */
    uint64_t cap = slots + slots / 8 + 1024 + TOMB_CAP;
    if (cap >= KVT_NO_ENTRY) {
        rc = kvt__err(KVT_ESIZE, "%llu slots are more than one store can index",
                      (unsigned long long)slots);
        goto fail;
    }
    if ((rc = kvt__index_init(&s->ix, (uint32_t)cap)))
        goto fail;
    if ((rc = kvt__keyed_open(s)))
        goto fail;

    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
        kvt_tier_rt *tr = &s->tier[t];
        if (!tr->on)
            continue;
        if (tr->ops->recover) {
            recovering rv = {.s = s, .t = t};
            rc = tr->ops->recover(tr->impl, recovered, &rv);
            if (rc)
                goto fail;
        }
        for (uint32_t slot = tr->nslots; slot-- > 0;)
            if (tr->slot_entry[slot] == KVT_NO_ENTRY &&
                (!tr->ops->slot_usable || tr->ops->slot_usable(tr->impl, slot)))
                tr->free_slots[tr->nfree++] = slot;
    }

    /* A tier below the put tier that is written through gets threads of
     * its own, as many as the API's workers (writethrough.c says why). */
    rc = kvt__writethrough_open(s, cfg->workers);
    if (rc)
        goto fail;
    /* Puts into a host tier that demotes its victims overlap the demotion
     * writes with their copies (put_runs). Two threads, so that one run's
     * write can start while the previous one drains. Without them (none
     * could start) puts demote on their own thread. */
    kvt_tier_rt *pt = &s->tier[s->put_tier];
    kvt__executor_opts demoters = {.threads = 2, .name = "kvt-demote", .pause_between = true};
    if (pt->below >= 0 && pt->victims == KVT_VICTIM_DEMOTE &&
        (pt->ops->caps & KVT_TCAP_HOST_PTR) && kvt__executor_new(&demoters, &s->demoter))
        kvt__err_clear(); /* the puts demote on their own thread */
    *out = s;
    return 0;
fail:
    free_store(s);
    return rc;
}

void kvt__store_close(kvt_store *s)
{
    /* The API's queued calls ran before this (kvt_close). Their
     * write-through copies land first, then what is left only in DRAM/HBM
     * goes down, then everything is freed. */
    kvt__writethrough_close(s);
    kvt__store_close_flush(s, s->cfg.close_flush_ms);
    free_store(s);
}
