/* reserve.c — a put in two halves (reserve slots, someone else copies,
 * commit or abort) and reads under references, for a server whose clients
 * copy blocks into and out of the shared DRAM arena themselves
 * (lib/shared/server.c, docs/shared.md). The machinery is put.c's and
 * get.c's: reservations are FILLING entries whose victims are demoted by
 * put runs; readers hold the read references a get holds while it copies. */
#include "internal.h"
#include "groups.h"

/* Blocks promoted from a slower tier per kvt__store_get of kvt__store_hold
 * (its bounce buffer: 8 blocks, 16 MiB at 2 MiB blocks). */
#define PROMOTE_BATCH 8

struct kvt__reservation {
    kvt_store *s;
    int p;
    uint64_t seq; /* the put's issue sequence (kvt__store_put_begin) */
    int durable;
    size_t n;
    kvt_key *keys;
    int32_t *status; /* per key, as kvt__store_reserve reported it */
    put_item *items; /* the reserved: entry, slot, index in keys */
    size_t nitems;
    int held;        /* keys the store held already (count as stored) */
};

/* As api.c's enter/leave: a call on a store that is closing fails. */
static int enter(kvt_store *s)
{
    atomic_fetch_add_explicit(&s->active, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&s->closing, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&s->active, 1, memory_order_acq_rel);
        return kvt__err(KVT_ECLOSED, "store is closing");
    }
    return 0;
}

static void leave(kvt_store *s)
{
    atomic_fetch_sub_explicit(&s->active, 1, memory_order_acq_rel);
}

static void reservation_free(kvt__reservation *r)
{
    if (!r)
        return;
    kvt__free(r->keys);
    kvt__free(r->status);
    kvt__free(r->items);
    kvt__free(r);
}

size_t kvt__reservation_keys(const kvt__reservation *r)
{
    return r ? r->n : 0;
}

int kvt__store_reserve(kvt_store *s, const kvt_key *keys, size_t n, const kvt_io_opts *o,
                       int32_t *status, uint32_t *slots, kvt__reservation **out)
{
    *out = NULL;
    int rc = enter(s);
    if (rc)
        return rc;
    kvt__expire_due(s);
    uint64_t now = kvt__store_now(s);
    int p = s->put_tier;
    kvt__reservation *r = kvt__calloc(1, sizeof *r);
    put_item *scratch = kvt__malloc(n * sizeof *scratch);
    kvt_xfer *x = kvt__calloc(n, sizeof *x);
    if (r) {
        r->keys = kvt__malloc(n * sizeof *r->keys);
        r->status = kvt__malloc(n * sizeof *r->status);
        r->items = kvt__malloc(n * sizeof *r->items);
    }
    if (!r || !scratch || !x || !r->keys || !r->status || !r->items) {
        reservation_free(r);
        kvt__free(scratch);
        kvt__free(x);
        leave(s);
        return kvt__err(KVT_ENOMEM, "reserve: %zu blocks", n);
    }
    if ((rc = kvt__store_put_begin(s, &r->seq))) {
        reservation_free(r);
        kvt__free(scratch);
        kvt__free(x);
        leave(s);
        return rc;
    }
    r->s = s;
    r->p = p;
    r->n = n;
    r->durable = o && (o->flags & KVT_IO_DURABLE);
    memcpy(r->keys, keys, n * sizeof *keys);
    uint32_t retain_until = o && o->retain_s ? kvt__rel_s(s, now) + o->retain_s : 0;
    ADD(&s->st, put_blocks, n);

    put_runs run = {.s = s, .p = p, .items = scratch, .x = x, .mem = KVT_MEM_HOST,
                    .status = r->status, .per_run = kvt__victims_per_run(s, p),
                    .kept = r->items};
    uint64_t parent = 0;
    int full = 0; /* a slot could not be had: the rest take the copying path */
    for (size_t i = 0; i < n; i++) {
        int code = 0;
        uint32_t id = full ? KVT_NO_ENTRY
                           : kvt__put_reserve(s, &keys[i], parent, p, retain_until, r->seq, &code);
        parent = kvt__key_hash(&keys[i]);
        r->status[i] = 0;
        if (full || code == PUT_PENDING) {
            /* Another put is writing it: kvt_put waits for that write. */
            r->status[i] = KVT__ZC_STAGE;
            continue;
        }
        if (id == KVT_NO_ENTRY) {
            if (code == PUT_CANCELLED || code == 0) {
                r->status[i] = KVT__ZC_HELD;
                r->held++;
                if (code)
                    CNT(&s->st, put_cancelled);
                else
                    CNT(&s->st, put_present);
            } else {
                r->status[i] = code;
                CNT(&s->st, put_rejected);
            }
            continue;
        }
        if (kvt__run_add(&run, id, i, &keys[i], NULL)) {
            /* Our own reservations fill the tier (they can't be evicted
             * before their commit): the copying path, which writes as it
             * goes, takes this block and the rest. */
            kvt__unfill(s, id, p);
            r->status[i] = KVT__ZC_STAGE;
            full = 1;
        }
    }
    kvt__run_drain(&run);
    r->nitems = run.nkept;
    for (size_t i = 0; i < n; i++)
        status[i] = r->status[i];
    for (size_t j = 0; j < r->nitems; j++)
        slots[r->items[j].index] = r->items[j].slot;
    /* A reserved key whose victim stayed with a reader and got no other
     * slot has KVT_EFULL from settle_victims, which counted it rejected. */
    kvt__free(scratch);
    kvt__free(x);
    leave(s);
    *out = r;
    return (int)r->nitems;
}

int kvt__store_commit(kvt__reservation *r, int32_t *status)
{
    kvt_store *s = r->s;
    int p = r->p;
    kvt_tier_rt *tr = &s->tier[p];
    int rc = enter(s);
    if (rc) { /* closing: what was reserved is let go, unseen */
        kvt__store_abort(r);
        return rc;
    }
    /* Key-addressed tiers get the bytes before they become readable: the
     * slots are still FILLING, so no eviction can reuse them meanwhile. */
    if (s->nkeyed && r->nitems) {
        kvt_key *keys = kvt__malloc(r->nitems * sizeof *keys);
        void **ptrs = kvt__malloc(r->nitems * s->frags * sizeof *ptrs);
        if (keys && ptrs) {
            for (size_t j = 0; j < r->nitems; j++) {
                char *slot = tr->ops->slot_ptr(tr->impl, r->items[j].slot);
                keys[j] = r->keys[r->items[j].index];
                for (uint32_t f = 0; f < s->frags; f++)
                    ptrs[j * s->frags + f] = slot + (size_t)f * s->frag_bytes;
            }
            kvt__keyed_put(s, keys, r->nitems, ptrs, KVT_MEM_HOST, NULL);
        }
        kvt__free(keys);
        kvt__free(ptrs);
    }
    uint64_t now = kvt__store_now(s);
    int stored = r->held;
    for (size_t j = 0; j < r->nitems; j++) {
        const put_item *it = &r->items[j];
        stored++; /* a put cancelled by a remove counts as stored, then removed */
        if (!kvt__publish(s, it->id, p, it->slot, now, 1)) {
            CNT(&s->st, put_cancelled);
            continue;
        }
        ADD(&tr->st, bytes_in, s->block_bytes);
        CNT(&tr->st, inserts);
        CNT(&s->st, put_stored);
    }
    for (size_t i = 0; i < r->n; i++)
        if (r->status[i] == KVT__ZC_HELD)
            r->status[i] = 0;
    if (r->durable)
        stored = kvt__make_durable(s, r->keys, r->n, r->status, stored);
    int tagged = kvt__groups_tag(s, r->keys, r->n, NULL); /* no group: as a put without one */
    kvt__store_put_end(s, r->seq);
    if (status)
        memcpy(status, r->status, r->n * sizeof *status);
    reservation_free(r);
    leave(s);
    return tagged ? tagged : stored;
}

void kvt__store_abort(kvt__reservation *r)
{
    if (!r)
        return;
    kvt_store *s = r->s;
    for (size_t j = 0; j < r->nitems; j++) {
        kvt__release_slot(s, r->p, r->items[j].slot, 1);
        kvt__unfill(s, r->items[j].id, r->p);
        CNT(&s->st, put_rejected);
    }
    kvt__store_put_end(s, r->seq);
    reservation_free(r);
}

/* One pass over keys whose status is `want`: a read reference on each one
 * whose fastest copy is in the top tier (status 0), else KVT_ENOENT or
 * `below` for one held only in a slower tier. */
static void take_refs(kvt_store *s, const kvt_key *keys, size_t n, int32_t want, int32_t below,
                      uint32_t *ids, uint32_t *slots, int32_t *status)
{
    int u = s->top_tier;
    for (size_t i = 0; i < n; i++) {
        if (status[i] != want)
            continue;
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        int t = -1;
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            t = kvt__fastest(e);
            if (t == u && !kvt__read_ref(e, t))
                t = u + 1; /* saturated: the copying path, as a block below */
            if (t == u) {
                ids[i] = id;
                slots[i] = e->slot[t];
            }
        }
        pthread_mutex_unlock(&sh->lock);
        status[i] = t < 0 ? KVT_ENOENT : t == u ? 0 : below;
    }
}

/* Whether key's fastest copy is in a tier below the top one. */
static int below_top(kvt_store *s, const kvt_key *key)
{
    kvt_shard *sh = kvt__index_shard(&s->ix, key);
    pthread_mutex_lock(&sh->lock);
    uint32_t id = kvt__index_find(&s->ix, sh, key);
    int t = id == KVT_NO_ENTRY ? -1 : kvt__fastest(kvt__index_entry(&s->ix, id));
    pthread_mutex_unlock(&sh->lock);
    return t > s->top_tier;
}

/* Reads keys held only below the top tier into a bounce buffer with a
 * get, which promotes them (as any get does); PROMOTE_BATCH at a time. */
static void promote_below(kvt_store *s, const kvt_key *keys, size_t n, const int32_t *status)
{
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += status[i] == KVT__ZC_STAGE;
    if (!want)
        return;
    size_t per = want < PROMOTE_BATCH ? want : PROMOTE_BATCH;
    void *buf = NULL;
    kvt_key batch[PROMOTE_BATCH];
    void **ptrs = kvt__malloc(per * s->frags * sizeof *ptrs);
    if (!ptrs || kvt__posix_memalign(&buf, 4096, per * s->block_bytes)) {
        kvt__free(ptrs); /* promotion is optional: those take the copying path */
        return;
    }
    for (size_t j = 0; j < per; j++)
        for (uint32_t f = 0; f < s->frags; f++)
            ptrs[j * s->frags + f] = (char *)buf + j * s->block_bytes + (size_t)f * s->frag_bytes;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (status[i] == KVT__ZC_STAGE)
            batch[k++] = keys[i];
        if (k == per || (k && i == n - 1)) {
            kvt__store_get(s, batch, k, ptrs, NULL);
            k = 0;
        }
    }
    kvt__free(buf);
    kvt__free(ptrs);
}

int kvt__store_hold(kvt_store *s, const kvt_key *keys, size_t n, int no_promote, uint32_t *ids,
                    uint32_t *slots, int32_t *status)
{
    int rc = enter(s);
    if (rc)
        return rc;
    kvt__expire_due(s);
    int u = s->top_tier;
    kvt_tier_rt *tr = &s->tier[u];
    /* Promotions first, before this call holds any slot: a promotion
     * waiting for room that our own references keep would wait in vain. */
    /* The promoting gets counted their keys (get_blocks, hits below):
     * those are not counted again here. */
    uint8_t *promoted = no_promote ? NULL : kvt__calloc(n, 1);
    if (promoted) {
        for (size_t i = 0; i < n; i++)
            status[i] = below_top(s, &keys[i]) ? KVT__ZC_STAGE : 0;
        promote_below(s, keys, n, status);
        for (size_t i = 0; i < n; i++)
            promoted[i] = status[i] == KVT__ZC_STAGE;
    }
    for (size_t i = 0; i < n; i++)
        status[i] = 1; /* to look up */
    take_refs(s, keys, n, 1, KVT__ZC_STAGE, ids, slots, status);
    size_t held = 0, missed = 0, k = 0, refs = 0;
    uint32_t *tids = kvt__malloc(n * sizeof *tids), *tslots = kvt__malloc(n * sizeof *tslots);
    for (size_t i = 0; i < n; i++) {
        const int counted = !(promoted && promoted[i]);
        if (status[i] == 0) {
            held += counted;
            refs++;
            if (tids && tslots) {
                tids[k] = ids[i];
                tslots[k++] = slots[i];
            }
        } else if (status[i] == KVT_ENOENT) {
            missed += counted;
        }
    }
    if (k)
        kvt__touch_all(s, u, tids, tslots, k, kvt__store_now(s));
    kvt__free(tids);
    kvt__free(tslots);
    kvt__free(promoted);
    ADD(&s->st, get_blocks, held + missed);
    ADD(&s->st, get_hit_blocks, held);
    ADD(&s->st, get_miss_blocks, missed);
    ADD(&tr->st, hits, held);
    ADD(&tr->st, bytes_out, held * s->block_bytes);
    leave(s);
    return (int)refs;
}

void kvt__store_unhold(kvt_store *s, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kvt__unref_read(s, ids[i], s->top_tier, 0);
}
