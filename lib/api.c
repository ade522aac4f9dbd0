/* api.c — the exported store functions: argument checks, the live-store registry, async dispatch. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cuda.h"
#include "error.h"
#include "live.h"
#include "store/events.h"
#include "store/groups.h"
#include "kvt_build_config.h"
#include "shared/shared.h"
#include "store.h"
#include "worker.h"

#define STR2(x) #x
#define STR(x) STR2(x)

int kvt_version(void)
{
    return KVT_VERSION_NUMBER;
}

const char *kvt_version_string(void)
{
    return STR(KVT_VERSION_MAJOR) "." STR(KVT_VERSION_MINOR) "." STR(KVT_VERSION_PATCH);
}

/* ------------------------------------------------- live stores, by address
 * kvt_close() must tell a second close from a first without touching freed
 * memory, so open stores are listed here. Only open and close take this
 * lock; the data path never does. */
static kvt__live open_stores = KVT__LIVE_INIT;

/* ------------------------------------------------------- call guard
 * Every data call counts itself in `active`; close waits for it to drain. */
static int enter(kvt_store *s, const char *fn)
{
    kvt__err_clear();
    if (!s)
        return kvt__err(KVT_ENULL, "%s: store is NULL", fn);
    if (s->magic != KVT_STORE_MAGIC)
        return kvt__err(KVT_ECLOSED, "%s: not an open store", fn);
    /* seq_cst, with the two in kvt_close: a Dekker handshake (either this
     * call sees `closing`, or close sees it in `active`); acquire/release
     * alone would let both miss each other. */
    atomic_fetch_add_explicit(&s->active, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&s->closing, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&s->active, 1, memory_order_acq_rel);
        return kvt__err(KVT_ECLOSED, "%s: store is closing", fn);
    }
    return 0;
}

static int leave_call(kvt_store *s, int rc)
{
    atomic_fetch_sub_explicit(&s->active, 1, memory_order_acq_rel);
    return rc;
}

/* Queued asynchronous calls first (their write-through copies land too,
 * see kvt__store_close), then the store. */
static void close_store(kvt_store *s)
{
    kvt__workers_free(s->workers);
    s->workers = NULL;
    kvt__assemble_close(s); /* incomplete layer-wise puts: aborted, unseen */
    kvt__store_close(s);
}

int kvt_open(kvt_config *cfg, kvt_store **out)
{
    kvt__err_clear();
    if (!cfg || !out)
        return kvt__err(KVT_ENULL, "kvt_open: %s is NULL", cfg ? "out" : "config");
    kvt_store *s;
    int rc = kvt__store_open(cfg, &s);
    if (rc)
        return rc;
    /* The API's asynchronous calls run on workers of their own, above the
     * store (which never calls them). */
    rc = kvt__workers_new(s, cfg->workers, cfg->max_inflight, &s->workers);
    if (rc) {
        kvt__store_close(s);
        return rc;
    }
    if (kvt__live_add(&open_stores, s)) {
        close_store(s);
        return kvt__err(KVT_ENOMEM, "kvt_open: store registry");
    }
    cfg->frozen = 1;
    *out = s;
    return 0;
}

int kvt_close(kvt_store *s)
{
    int client_rc;
    if (kvt__client_try_close(s, &client_rc))
        return client_rc;
    kvt__err_clear();
    if (!s)
        return 0;
    if (!kvt__live_take(&open_stores, s))
        return kvt__err(KVT_ECLOSED, "kvt_close: %p is not an open store (closed twice?)",
                        (void *)s);
    atomic_store_explicit(&s->closing, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&s->active, memory_order_seq_cst))
        sched_yield();
    close_store(s);
    return 0;
}

int kvt_slot_bytes(const char *kind, uint64_t block_bytes, uint64_t *out)
{
    kvt__err_clear();
    if (!out || !kind)
        return kvt__err(KVT_ENULL, "kvt_slot_bytes: %s is NULL", out ? "kind" : "out");
    if (block_bytes == 0 || block_bytes > (1ull << 30))
        return kvt__err(KVT_ESIZE, "kvt_slot_bytes: %llu block bytes",
                        (unsigned long long)block_bytes);
    const kvt_tier_ops *ops = kvt__tier_find(kind);
    if (!ops)
        return kvt__err(KVT_ENOTSUP, "kvt_slot_bytes: no tier kind \"%s\" in this build", kind);
    if (!ops->slot_bytes) {
        *out = block_bytes;
        return 0;
    }
    return ops->slot_bytes(block_bytes, out);
}

int kvt_store_tier_count(kvt_store *s)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_tier_count(s));
    int rc = enter(s, "kvt_store_tier_count");
    if (rc)
        return rc;
    return leave_call(s, s->cfg.ntiers);
}

const char *kvt_store_tier_name(kvt_store *s, int tier)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_tier_name(s, tier));
    if (enter(s, "kvt_store_tier_name"))
        return NULL;
    const char *name = NULL;
    if (tier >= 0 && tier < s->cfg.ntiers)
        name = s->cfg.tier[tier].name;
    else
        kvt__err(KVT_EINVAL, "kvt_store_tier_name: no tier %d", tier);
    leave_call(s, 0);
    return name;
}

int kvt_store_tier_find(kvt_store *s, const char *name)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_tier_find(s, name));
    int rc = enter(s, "kvt_store_tier_find");
    if (rc)
        return rc;
    if (!name)
        return leave_call(s, kvt__err(KVT_ENULL, "kvt_store_tier_find: name is NULL"));
    for (int t = 0; t < s->cfg.ntiers; t++)
        if (strcmp(s->cfg.tier[t].name, name) == 0)
            return leave_call(s, t);
    return leave_call(s, kvt__err(KVT_ENOENT, "kvt_store_tier_find: no tier \"%s\"", name));
}

int kvt_store_tier_available(kvt_store *s, int tier)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_tier_available(s, tier));
    int rc = enter(s, "kvt_store_tier_available");
    if (rc)
        return rc;
    if (tier < 0 || tier >= s->cfg.ntiers)
        rc = kvt__err(KVT_EINVAL, "kvt_store_tier_available: no tier %d", tier);
    else if (s->tier_unavailable[tier])
        rc = kvt__err(KVT_ENODEV, "%s tier is configured but unavailable here",
                      s->cfg.tier[tier].name);
    else
        rc = tier < KVT_MAX_SLOT_TIERS && s->tier[tier].on;
    for (int k = 0; rc == 0 && k < s->nkeyed; k++)
        rc = s->keyed[k].index == tier; /* a key-addressed tier, open */
    return leave_call(s, rc);
}

uint64_t kvt_clock_now(kvt_store *s)
{
    if (enter(s, "kvt_clock_now"))
        return 0;
    return (uint64_t)leave_call(s, 0) + kvt__store_now(s);
}

int kvt_clock_set(kvt_store *s, uint64_t now_ns)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_notsup(s, "kvt_clock_set"));
    int rc = enter(s, "kvt_clock_set");
    if (rc)
        return rc;
    if (!s->manual_clock)
        return leave_call(s, kvt__err(KVT_ENOTSUP, "kvt_clock_set: store has no manual clock"));
    uint64_t cur = atomic_load_explicit(&s->manual_now, memory_order_acquire);
    do {
        if (now_ns < cur)
            return leave_call(s, kvt__err(KVT_EINVAL, "kvt_clock_set: time may not go back"));
    } while (!atomic_compare_exchange_weak(&s->manual_now, &cur, now_ns));
    return leave_call(s, 0);
}

int kvt_expire(kvt_store *s)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_notsup(s, "kvt_expire"));
    int rc = enter(s, "kvt_expire");
    if (rc)
        return rc;
    return leave_call(s, kvt__store_expire(s));
}

static int check_keys(const kvt_key *keys, size_t n, const char *fn)
{
    if (!keys)
        return kvt__err(KVT_ENULL, "%s: keys is NULL", fn);
    if (n == 0 || n > (size_t)INT32_MAX)
        return kvt__err(KVT_ESIZE, "%s: %zu keys", fn, n);
    return 0;
}

int kvt_lookup(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers, uint32_t lease_ms)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_lookup(s, keys, n, tiers, lease_ms));
    int rc = enter(s, "kvt_lookup");
    if (rc)
        return rc;
    if ((rc = check_keys(keys, n, "kvt_lookup")))
        return leave_call(s, rc);
    if (lease_ms > INT32_MAX)
        return leave_call(s, kvt__err(KVT_ESIZE, "kvt_lookup: lease %u ms is too long", lease_ms));
    return leave_call(s, kvt__store_lookup(s, keys, n, tiers, lease_ms));
}

int kvt_contains(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_contains(s, keys, n, tiers));
    int rc = enter(s, "kvt_contains");
    if (rc)
        return rc;
    if ((rc = check_keys(keys, n, "kvt_contains")))
        return leave_call(s, rc);
    return leave_call(s, kvt__store_contains(s, keys, n, tiers));
}

int kvt_touch(kvt_store *s, const kvt_key *keys, size_t n)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_touch(s, keys, n));
    int rc = enter(s, "kvt_touch");
    if (rc)
        return rc;
    if ((rc = check_keys(keys, n, "kvt_touch")))
        return leave_call(s, rc);
    return leave_call(s, kvt__store_touch(s, keys, n));
}

int kvt_pin(kvt_store *s, const kvt_key *keys, size_t n, uint32_t lease_ms)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_pin(s, keys, n, lease_ms));
    int rc = enter(s, "kvt_pin");
    if (rc)
        return rc;
    if ((rc = check_keys(keys, n, "kvt_pin")))
        return leave_call(s, rc);
    if (lease_ms == 0 || lease_ms > INT32_MAX)
        return leave_call(s, kvt__err(KVT_ESIZE, "kvt_pin: lease of %u ms", lease_ms));
    return leave_call(s, kvt__store_pin(s, keys, n, lease_ms));
}

int kvt_release(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_release(s, keys, n, status));
    int rc = enter(s, "kvt_release");
    if (rc)
        return rc;
    if ((rc = check_keys(keys, n, "kvt_release")))
        return leave_call(s, rc);
    return leave_call(s, kvt__store_release(s, keys, n, status));
}

/* The largest `size` a struct crossing the ABI may claim: bigger ones are
 * refused unread (0xFFFFFFFF would have us scan 4 GiB of the caller's). */
#define STRUCT_SIZE_MAX 4096

/* The `size` of a struct that crosses the ABI (it begins with uint32_t
 * size), by the rules of Linux's copy_struct_from_user(), so that callers
 * built against another version of the header meet this library safely:
 *  - size < min (the first version's size; no shorter version exists):
 *    KVT_EINVAL — size not set, or not this struct;
 *  - min <= size <= known (this library's sizeof): fine; fields past size
 *    would read as zero (none yet: min == known);
 *  - known < size <= STRUCT_SIZE_MAX: a newer caller's struct, fine only if
 *    every byte past `known` is zero (it sets nothing this library lacks),
 *    else KVT_ESIZE naming the first such byte; the caller's struct really is
 *    size bytes long, that is its contract (as with the kernel);
 *  - size > STRUCT_SIZE_MAX: KVT_ESIZE, nothing read.
 * KVT_ESIZE thus says "this library is older than your header": retry with
 * size = the library's sizeof and the new fields left out. */
static int check_struct_size(const void *p, uint32_t size, size_t min, size_t known,
                             const char *fn, const char *arg, const char *type)
{
    if (size < min)
        return kvt__err(KVT_EINVAL, "%s: %s->size %u is less than %zu, the size of the first "
                                    "%s (set it to sizeof(%s))", fn, arg, size, min, type, type);
    if (size > STRUCT_SIZE_MAX)
        return kvt__err(KVT_ESIZE, "%s: %s->size %u is more than %u: not a %s size", fn, arg,
                        size, STRUCT_SIZE_MAX, type);
    const unsigned char *b = p;
    for (size_t i = known; i < size; i++)
        if (b[i])
            return kvt__err(KVT_ESIZE, "%s: %s->size %u, and byte %zu of it is not zero: this "
                                       "library's %s has %zu bytes and knows no field there "
                                       "(built against a newer kvtier.h?)",
                            fn, arg, size, i, type, known);
    return 0;
}

static int check_io(kvt_store *s, int op, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *o, const char *fn)
{
    int rc = check_keys(keys, n, fn);
    if (rc)
        return rc;
    if (!ptrs)
        return kvt__err(KVT_ENULL, "%s: ptrs is NULL", fn);
    if (n > SIZE_MAX / s->frags)
        return kvt__err(KVT_ESIZE, "%s: %zu blocks", fn, n);
    /* A fragment range changes how many pointers ptrs holds: count of them
     * per block when the caller's opts are long enough to name one that fits
     * the block (the range itself is checked below, after the pointers, as
     * every other option is). */
    uint32_t per = s->frags, first = 0, count = 0;
    if (o && o->size >= offsetof(kvt_io_opts, frag_count) + sizeof o->frag_count &&
        o->size <= STRUCT_SIZE_MAX && o->frag_count && o->frag_count < s->frags)
        per = o->frag_count;
    for (size_t i = 0; i < n * per; i++)
        if (!ptrs[i])
            return kvt__err(KVT_ENULL, "%s: fragment pointer %zu (block %zu, fragment %zu) is NULL",
                            fn, i, i / per, i % per);
    if (o) {
        if ((rc = check_struct_size(o, o->size, offsetof(kvt_io_opts, group), sizeof *o, fn,
                                    "opts", "kvt_io_opts")))
            return rc;
        if ((rc = kvt__io_frag_range(s, o, op, &first, &count, fn)))
            return rc;
        if (o->mem_kind != KVT_MEM_HOST && o->mem_kind != KVT_MEM_CUDA)
            return kvt__err(KVT_EINVAL, "%s: unknown memory kind %u", fn, o->mem_kind);
        if (o->frags && o->frags != s->frags)
            return kvt__err(KVT_EFRAGS, "%s: %u fragments per block given, the store has %u", fn,
                            o->frags, s->frags);
    }
    /* kvtier-gpu: device pointers, streams, flags (lib/cuda.h); with no
     * opts too, where device memory passed as host would crash a memcpy. */
    return kvt__cuda_check_io(o, ptrs, n * per, fn);
}

static int io(kvt_store *s, int op, const kvt_key *keys, size_t n, void *const *ptrs,
              const kvt_io_opts *o, kvt_ticket *ticket, const char *fn)
{
    int rc = enter(s, fn);
    if (rc)
        return rc;
    if ((rc = check_io(s, op, keys, n, ptrs, o, fn)))
        return leave_call(s, rc);
    if (op == KVT_JOB_PUT && o && (o->flags & KVT_IO_DURABLE) && s->durable_tier < 0)
        return leave_call(s, kvt__err(KVT_ENOTSUP, "%s: KVT_IO_DURABLE, but the store has no "
                                                   "persistent tier", fn));
    /* kvtier-gpu: a call is ordered after the work queued on the caller's
     * stream before it. An asynchronous one records that point now (not
     * when a worker gets to it) and may gate the stream; the context travels
     * in the copied options and the worker ends it (lib/cuda.h). */
    kvt_io_opts call_opts;
    if (ticket && o && o->stream) {
        if ((rc = kvt__cuda_call_begin(o, &call_opts)))
            return leave_call(s, rc);
        o = &call_opts;
    }
    /* A put is issued here, also when a worker runs it later: a remove that
     * starts after this point does not cancel it (kvt_remove). */
    uint64_t seq = 0;
    if (op == KVT_JOB_PUT && (rc = kvt__store_put_begin(s, &seq))) {
        if (o == &call_opts)
            kvt__cuda_call_abort(o);
        return leave_call(s, rc);
    }
    if (ticket) {
        rc = kvt__workers_submit(s->workers, op, keys, n, ptrs, o, seq, ticket);
        if (rc < 0) {
            kvt__cuda_call_abort(o);
            if (op == KVT_JOB_PUT)
                kvt__store_put_end(s, seq);
        }
    } else {
        if ((rc = kvt__cuda_io_begin(o)) == 0) {
            rc = op == KVT_JOB_PUT ? kvt__store_put(s, keys, n, ptrs, o, seq)
                                   : kvt__store_get(s, keys, n, ptrs, o);
            kvt__cuda_io_end(o);
        }
        if (op == KVT_JOB_PUT)
            kvt__store_put_end(s, seq);
    }
    return leave_call(s, rc);
}

int kvt_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
            const kvt_io_opts *o, kvt_ticket *ticket)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_put(s, keys, n, ptrs, o, ticket));
    return io(s, KVT_JOB_PUT, keys, n, ptrs, o, ticket, "kvt_put");
}

int kvt_get(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
            const kvt_io_opts *o, kvt_ticket *ticket)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_get(s, keys, n, ptrs, o, ticket));
    return io(s, KVT_JOB_GET, keys, n, ptrs, o, ticket, "kvt_get");
}

int kvt_remove(kvt_store *s, const kvt_key *keys, size_t n)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_remove(s, keys, n));
    int rc = enter(s, "kvt_remove");
    if (rc)
        return rc;
    if ((rc = check_keys(keys, n, "kvt_remove")))
        return leave_call(s, rc);
    kvt__assemble_drop(s, keys, n); /* blocks assembling: aborted, never seen */
    return leave_call(s, kvt__store_remove(s, keys, n));
}

int kvt_clear(kvt_store *s)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_clear(s));
    int rc = enter(s, "kvt_clear");
    if (rc)
        return rc;
    kvt__assemble_drop_all(s);
    return leave_call(s, kvt__store_clear(s));
}

int kvt_flush(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_flush(s, keys, n, status));
    int rc = enter(s, "kvt_flush");
    if (rc)
        return rc;
    if (keys && (rc = check_keys(keys, n, "kvt_flush")))
        return leave_call(s, rc);
    if (!keys && n)
        return leave_call(s, kvt__err(KVT_ENULL, "kvt_flush: keys is NULL with n = %zu", n));
    return leave_call(s, kvt__store_flush(s, keys, n, status));
}

int kvt_wait(kvt_store *s, kvt_ticket ticket, int timeout_ms)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_wait(s, ticket, timeout_ms));
    int rc = enter(s, "kvt_wait");
    if (rc)
        return rc;
    return leave_call(s, kvt__workers_wait(s->workers, ticket, timeout_ms < 0 ? -1 : timeout_ms));
}

int kvt_poll(kvt_store *s, kvt_ticket ticket)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_poll(s, ticket));
    int rc = enter(s, "kvt_poll");
    if (rc)
        return rc;
    rc = kvt__workers_wait(s->workers, ticket, 0);
    return leave_call(s, rc == KVT_ETIMEDOUT ? KVT_EINPROGRESS : rc);
}

int kvt_eventfd(kvt_store *s)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_eventfd(s));
    int rc = enter(s, "kvt_eventfd");
    if (rc)
        return rc;
    return leave_call(s, kvt__workers_eventfd(s->workers));
}

int kvt_stats(kvt_store *s, kvt_stat_fn fn, void *user)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_stats(s, fn, user));
    int rc = enter(s, "kvt_stats");
    if (rc)
        return rc;
    if (!fn)
        return leave_call(s, kvt__err(KVT_ENULL, "kvt_stats: callback is NULL"));
    return leave_call(s, kvt__store_stats(s, fn, user));
}

typedef struct stat_query {
    const char *name;
    uint64_t value;
    int found;
} stat_query;

static void match_stat(const char *name, uint64_t value, void *user)
{
    stat_query *q = user;
    if (!q->found && strcmp(name, q->name) == 0) {
        q->value = value;
        q->found = 1;
    }
}

int kvt_stat(kvt_store *s, const char *name, uint64_t *value)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_stat(s, name, value));
    int rc = enter(s, "kvt_stat");
    if (rc)
        return rc;
    if (!name || !value)
        return leave_call(s, kvt__err(KVT_ENULL, "kvt_stat: %s is NULL", name ? "value" : "name"));
    stat_query q = {.name = name};
    kvt__store_stats(s, match_stat, &q);
    if (!q.found)
        return leave_call(s, kvt__err(KVT_ENOENT, "kvt_stat: no statistic named \"%s\"", name));
    *value = q.value;
    return leave_call(s, 0);
}

/* The event stream (events.c). */
int kvt_events_enable(kvt_store *s, uint32_t capacity)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_notsup(s, "kvt_events_enable"));
    int rc = enter(s, "kvt_events_enable");
    return rc ? rc : leave_call(s, kvt__events_enable(s, capacity));
}

int kvt_events_take(kvt_store *s, kvt_event *out, size_t cap, uint64_t *overflow)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_notsup(s, "kvt_events_take"));
    int rc = enter(s, "kvt_events_take");
    return rc ? rc : leave_call(s, kvt__events_take(s, out, cap, overflow));
}

int kvt_events_fd(kvt_store *s)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_notsup(s, "kvt_events_fd"));
    int rc = enter(s, "kvt_events_fd");
    return rc ? rc : leave_call(s, kvt__events_fd(s));
}

int kvt_remove_group(kvt_store *s, uint64_t group)
{
    KVT__CLIENT_DISPATCH(s, kvt__client_notsup(s, "kvt_remove_group"));
    int rc = enter(s, "kvt_remove_group");
    if (rc)
        return rc;
    if (!group)
        return leave_call(s, kvt__err(KVT_EINVAL, "kvt_remove_group: group 0 is no group"));
    return leave_call(s, kvt__store_remove_group(s, group));
}
