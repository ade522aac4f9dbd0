/* get.c — gets: reads from the fastest tier, promotion, corrupt copies, touches. */
#include "internal.h"

#include "worker.h"

typedef struct get_item {
    uint32_t id;
    uint32_t slot;
    int tier;
    size_t index;
} get_item;

/* Copies blocks read from a lower tier up into the fastest tier, straight
 * from the caller's buffer (already verified). The fastest tier's victims
 * are demoted in runs, as a put's are: one write per run, not one per
 * promoted block. */
static void promote(kvt_store *s, const get_item *g, size_t n, const kvt_key *keys,
                    void *const *ptrs, kvt_mem_kind mem)
{
    int u = s->top_tier;
    kvt_tier_rt *ur = &s->tier[u];
    size_t want = 0;
    for (size_t j = 0; j < n; j++)
        want += g[j].tier > u;
    if (!want)
        return;
    put_item *items = kvt__malloc(want * sizeof *items);
    kvt_xfer *x = kvt__calloc(want, sizeof *x);
    if (!items || !x) { /* promotion is optional: the blocks stay where they are */
        kvt__free(items);
        kvt__free(x);
        return;
    }
    put_runs r = {.s = s, .p = u, .items = items, .x = x, .mem = mem, .promoting = 1,
                  .per_run = kvt__victims_per_run(s, u)};
    for (size_t j = 0; j < n; j++) {
        if (g[j].tier <= u)
            continue;
        const kvt_key *key = &keys[g[j].index];
        kvt_entry *e = kvt__index_entry(&s->ix, g[j].id);
        kvt_shard *sh = kvt__index_shard(&s->ix, key);
        pthread_mutex_lock(&sh->lock);
        int go = kvt__index_find(&s->ix, sh, key) == g[j].id && e->res[u] == KVT_RES_NONE &&
                 (ur->admit != KVT_ADMIT_AFTER_N || e->hits >= ur->admit_after);
        if (go) {
            e->res[u] = KVT_RES_FILLING;
            kvt__fill_begin(s, e, u);
        }
        pthread_mutex_unlock(&sh->lock);
        if (!go)
            continue;
        if (kvt__run_add(&r, g[j].id, g[j].index, key, ptrs))
            kvt__unfill(s, g[j].id, u);
    }
    kvt__run_drain(&r);
    kvt__free(items);
    kvt__free(x);
}

/* A block that failed verification leaves that tier for good. The caller
 * still holds its ref on the copy (so the entry cannot be freed and
 * recycled under us): the copy becomes a zombie, and the caller's unref
 * frees its slot. */
void kvt__drop_corrupt(kvt_store *s, uint32_t id, int t, uint32_t slot)
{
    kvt_tier_rt *tr = &s->tier[t];
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    int go = e->res[t] == KVT_RES_READY && e->slot[t] == slot;
    if (go)
        e->res[t] = KVT_RES_LEAVING;
    pthread_mutex_unlock(&sh->lock);
    if (!go)
        return;
    pthread_mutex_lock(&tr->lock);
    if (tr->slot_entry[slot] == id) {
        kvt__forget_slot(tr, slot);
    }
    pthread_mutex_unlock(&tr->lock);
    int lost = kvt__discard_on_media(s, t, &slot, 1); /* before NONE ("fills and removes") */
    if (kvt__leave(s, id, t, slot, 0) && !lost)
        kvt__release_slot(s, t, slot, !kvt__persistent(s, t));
}

/* Whether entry id's copy in tier t, which the caller holds a ref on, has
 * left or is leaving (removed, expired, evicted) since the caller found it. */
static int leaving(kvt_store *s, uint32_t id, int t)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    int gone = (e->flags & KVT_ENTRY_REMOVED) || e->res[t] != KVT_RES_READY;
    pthread_mutex_unlock(&sh->lock);
    return gone;
}

int kvt__store_get(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                   const kvt_io_opts *o)
{
    kvt__expire_due(s);
    int32_t *status = o ? o->status : NULL;
    kvt_mem_kind mem = o ? (kvt_mem_kind)o->mem_kind : KVT_MEM_HOST;
    int no_promote = o && (o->flags & KVT_IO_NO_PROMOTE);
    /* A fragment range (checked by the caller): the caller's memory holds
     * part of each block, so nothing is promoted from it. */
    uint32_t first = 0, count = 0;
    int rc = kvt__io_frag_range(s, o, KVT_JOB_GET, &first, &count, "kvt_get");
    if (rc)
        return rc;
    if (count)
        no_promote = 1;
    get_item *g = kvt__malloc(n * sizeof *g), *up = kvt__malloc(n * sizeof *up);
    kvt_xfer *x = kvt__calloc(n, sizeof *x);
    uint32_t *ids = kvt__malloc(n * sizeof *ids), *slots = kvt__malloc(n * sizeof *slots);
    uint8_t *got = s->nkeyed ? kvt__calloc(n, 1) : NULL; /* copied, for key-addressed tiers */
    if (!g || !up || !x || !ids || !slots || (s->nkeyed && !got)) {
        kvt__free(got);
        kvt__free(g);
        kvt__free(up);
        kvt__free(x);
        kvt__free(ids);
        kvt__free(slots);
        return kvt__err(KVT_ENOMEM, "kvt_get: %zu blocks", n);
    }
    ADD(&s->st, get_blocks, n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        int t = -1, saturated = 0;
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            t = kvt__fastest(e);
            if (t >= 0 && !kvt__read_ref(e, t))
                t = -1, saturated = 1; /* KVT_EBUSY for this one */
            if (t >= 0)
                g[m] = (get_item){.id = id, .slot = e->slot[t], .tier = t, .index = i};
        }
        pthread_mutex_unlock(&sh->lock);
        if (status)
            status[i] = saturated ? KVT_EBUSY : t < 0 ? KVT_ENOENT : 0;
        if (t >= 0)
            m++;
    }

    int copied = 0;
    size_t promoted = 0;
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
        kvt_tier_rt *tr = &s->tier[t];
        size_t k = 0;
        for (size_t j = 0; j < m; j++) {
            if (g[j].tier != t)
                continue;
            x[k] = (kvt_xfer){.slot = g[j].slot, .key = keys[g[j].index]};
            kvt__frag_ptrs(s, ptrs, g[j].index, &x[k]);
            if (count) {
                x[k].frags = ptrs + g[j].index * count;
                x[k].first = first;
                x[k].count = count;
            }
            ids[k] = g[j].id;
            slots[k] = g[j].slot;
            k++;
        }
        if (!k)
            continue;
        if (count)
            kvt__range_read(s, tr, x, k);
        else
            tr->ops->read(tr->impl, x, k, mem);
        kvt__touch_all(s, t, ids, slots, k, kvt__store_now(s));
        size_t c = 0;
        for (size_t j = 0; j < m; j++) {
            if (g[j].tier != t)
                continue;
            int32_t st = x[c++].status;
            if (st == KVT_ECORRUPT && leaving(s, g[j].id, t))
                st = KVT_ENOENT; /* invalidated on media as it left: a miss */
            if (st == KVT_ECORRUPT) { /* while our ref still keeps entry and slot ours */
                CNT(&tr->st, corrupt);
                kvt__drop_corrupt(s, g[j].id, t, g[j].slot);
            }
            kvt__unref_read(s, g[j].id, t, st == KVT_ENOENT ? NOT_READ : st);
            if (st) {
                if (st != KVT_ECORRUPT && st != KVT_ENOENT) {
                    CNT(&tr->st, io_errors);
                }
                if (status)
                    status[g[j].index] = kvt__xfer_code(st, KVT_EIO);
                g[j].tier = -1; /* not promoted */
                continue;
            }
            CNT(&tr->st, hits);
            ADD(&tr->st, bytes_out, count ? s->frag_bytes * count : s->block_bytes);
            copied++;
            if (got)
                got[g[j].index] = 1;
            if (!no_promote && t > s->top_tier)
                up[promoted++] = g[j];
        }
    }
    if (promoted)
        promote(s, up, promoted, keys, ptrs, mem);
    if (got && (size_t)copied < n) /* the rest may be in key-addressed tiers */
        copied += (int)kvt__keyed_get(s, keys, n, ptrs, mem, got, status);
    kvt__free(got);
    ADD(&s->st, get_hit_blocks, (uint64_t)copied);
    ADD(&s->st, get_miss_blocks, n - (size_t)copied);
    kvt__free(g);
    kvt__free(up);
    kvt__free(x);
    kvt__free(ids);
    kvt__free(slots);
    return copied;
}

/* An access without a copy: the hit count (admit-after-N) as a get bumps
 * it, and recency and idle time of the block's fastest copy. No reader ref
 * is taken, since nothing is read: between the shard lock and the tier lock
 * the copy may leave, and touch_all skips a slot whose slot_entry is no
 * longer this entry (slot_entry, the policy and the idle list change
 * together, under the tier lock). Returns the keys held when looked up. */
int kvt__store_touch(kvt_store *s, const kvt_key *keys, size_t n)
{
    kvt__expire_due(s);
    get_item *g = kvt__malloc(n * sizeof *g);
    uint32_t *ids = kvt__malloc(n * sizeof *ids), *slots = kvt__malloc(n * sizeof *slots);
    if (!g || !ids || !slots) {
        kvt__free(g);
        kvt__free(ids);
        kvt__free(slots);
        return kvt__err(KVT_ENOMEM, "kvt_touch: %zu keys", n);
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            int t = kvt__fastest(e);
            if (t >= 0) {
                if (e->hits < UINT16_MAX)
                    e->hits++;
                g[m++] = (get_item){.id = id, .slot = e->slot[t], .tier = t, .index = i};
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
    uint64_t now = kvt__store_now(s);
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
        size_t k = 0;
        for (size_t j = 0; j < m; j++) {
            if (g[j].tier != t)
                continue;
            ids[k] = g[j].id;
            slots[k++] = g[j].slot;
        }
        if (k)
            kvt__touch_all(s, t, ids, slots, k, now);
    }
    kvt__free(g);
    kvt__free(ids);
    kvt__free(slots);
    return (int)m;
}
