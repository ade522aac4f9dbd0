/* remove.c — removes and clear: tombstones for puts in flight, invalidation on media. */
#include "internal.h"

/* ---------------------------------------------------------------- remove
 *
 * Puts carry the number of removes begun before they were issued (their
 * seq); a remove that finds puts in progress leaves a tombstone entry for
 * each of its keys, carrying its own seq, so that those puts, which may not
 * have reached the key yet, find it and skip it (reserve). Tombstones go
 * once no put older than them is in progress (tomb_gc). */

/* Frees the tombstones no put in progress can still meet. rm_lock held. */
static void tomb_gc(kvt_store *s)
{
    uint64_t oldest = s->npending ? s->pending[s->pending_head].seq : UINT64_MAX;
    while (s->ntombs && s->tombs[s->tomb_head].seq <= oldest) {
        kvt__tomb tb = s->tombs[s->tomb_head];
        s->tomb_head = (s->tomb_head + 1) % s->tomb_cap;
        s->ntombs--;
        kvt_shard *sh = kvt__index_shard(&s->ix, &tb.key);
        pthread_mutex_lock(&sh->lock);
        /* Found by key, so never an entry reused for another key since. */
        int gone = kvt__index_find(&s->ix, sh, &tb.key) == tb.id &&
                   (kvt__index_entry(&s->ix, tb.id)->flags & KVT_ENTRY_TOMB) &&
                   kvt__index_entry(&s->ix, tb.id)->parent == tb.seq;
        if (gone)
            kvt__index_unlink(&s->ix, sh, tb.id);
        pthread_mutex_unlock(&sh->lock);
        if (gone)
            kvt__index_free(&s->ix, tb.id);
    }
}

int kvt__store_put_begin(kvt_store *s, uint64_t *seq)
{
    pthread_mutex_lock(&s->rm_lock);
    *seq = s->remove_seq;
    uint32_t end = s->pending_head + s->npending;
    if (s->npending && s->pending[end - 1].seq == *seq) {
        s->pending[end - 1].count++;
        pthread_mutex_unlock(&s->rm_lock);
        return 0;
    }
    if (end == s->pending_cap) {
        if (s->pending_head) { /* slide down over the finished ones */
            memmove(s->pending, s->pending + s->pending_head, s->npending * sizeof *s->pending);
            s->pending_head = 0;
        } else {
            uint32_t cap = s->pending_cap ? 2 * s->pending_cap : 64;
            kvt__pending *p = kvt__realloc(s->pending, cap * sizeof *p);
            if (!p) {
                pthread_mutex_unlock(&s->rm_lock);
                return kvt__err(KVT_ENOMEM, "kvt_put: recording the put");
            }
            s->pending = p;
            s->pending_cap = cap;
        }
        end = s->pending_head + s->npending;
    }
    s->pending[end] = (kvt__pending){.seq = *seq, .count = 1};
    s->npending++;
    pthread_mutex_unlock(&s->rm_lock);
    return 0;
}

void kvt__store_put_end(kvt_store *s, uint64_t seq)
{
    pthread_mutex_lock(&s->rm_lock);
    uint32_t lo = s->pending_head, hi = s->pending_head + s->npending;
    while (lo < hi) { /* seqs ascend */
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->pending[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->pending_head + s->npending && s->pending[lo].seq == seq)
        s->pending[lo].count--;
    while (s->npending && !s->pending[s->pending_head].count) {
        s->pending_head++;
        s->npending--;
    }
    if (!s->npending)
        s->pending_head = 0;
    if (s->ntombs)
        tomb_gc(s);
    pthread_mutex_unlock(&s->rm_lock);
}

/* Slots of a remove's own copies on their way out, per tier: invalidated on
 * media together (on the stack), then left. Before a remove waits for
 * anything, it lets them go: puts would otherwise wait for them as busy. */
#define REMOVE_BATCH 128
typedef struct leaving_batch {
    uint32_t id[KVT_MAX_SLOT_TIERS][REMOVE_BATCH];
    uint32_t slot[KVT_MAX_SLOT_TIERS][REMOVE_BATCH];
    size_t n[KVT_MAX_SLOT_TIERS];
} leaving_batch;

static void leaving_flush(kvt_store *s, leaving_batch *b, int t);

static void leaving_flush_all(kvt_store *s, leaving_batch *b)
{
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
        if (b->n[t])
            leaving_flush(s, b, t);
}

/* Records tombstone id (key, seq) for tomb_gc, waiting for room. */
static void tomb_push(kvt_store *s, leaving_batch *b, uint32_t id, uint64_t seq,
                      const kvt_key *key)
{
    pthread_mutex_lock(&s->rm_lock);
    tomb_gc(s);
    if (s->ntombs == s->tomb_cap) {
        pthread_mutex_unlock(&s->rm_lock);
        leaving_flush_all(s, b);
        pthread_mutex_lock(&s->rm_lock);
    }
    while (s->ntombs == s->tomb_cap) {
        pthread_mutex_unlock(&s->rm_lock);
        /* A block left assembling keeps its put open, and with it every
         * tombstone: age it out here too, or a caller with no other thread
         * would wait for itself. */
        kvt__assemble_expire(s);
        kvt__nap_briefly();
        pthread_mutex_lock(&s->rm_lock);
        tomb_gc(s);
    }
    s->tombs[(s->tomb_head + s->ntombs++) % s->tomb_cap] = (kvt__tomb){id, seq, *key};
    pthread_mutex_unlock(&s->rm_lock);
}

/* A fresh entry for a tombstone of key, waiting while the index is full of
 * them (tombstones are freed as older puts finish). */
static uint32_t tomb_alloc(kvt_store *s, leaving_batch *b, const kvt_key *key)
{
    for (;;) {
        uint32_t id = kvt__index_alloc(&s->ix, key);
        if (id != KVT_NO_ENTRY)
            return id;
        leaving_flush_all(s, b);
        kvt__assemble_expire(s); /* as in tomb_push */
        pthread_mutex_lock(&s->rm_lock);
        tomb_gc(s);
        pthread_mutex_unlock(&s->rm_lock);
        kvt__nap_briefly();
    }
}

static void leaving_flush(kvt_store *s, leaving_batch *b, int t)
{
    kvt_tier_rt *tr = &s->tier[t];
    uint32_t freed[REMOVE_BATCH];
    size_t f = 0;
    pthread_mutex_lock(&tr->lock);
    for (size_t j = 0; j < b->n[t]; j++)
        kvt__forget_slot(tr, b->slot[t][j]);
    pthread_mutex_unlock(&tr->lock);
    int lost = kvt__discard_on_media(s, t, b->slot[t], b->n[t]); /* before NONE ("fills and removes") */
    for (size_t j = 0; j < b->n[t]; j++)
        if (kvt__leave(s, b->id[t][j], t, b->slot[t][j], 0) && !lost)
            freed[f++] = b->slot[t][j];
    kvt__release_slots(s, t, freed, f, 0);
    b->n[t] = 0;
}

/* Waits until a persistent copy that another thread is taking out (expiry,
 * eviction, a corrupt read) is gone from media, then lets the entry go. A
 * copy that became a zombie (readers still copying) is invalidated here:
 * its slot is not reused before the last reader frees it. */
static void remove_wait(kvt_store *s, uint32_t id, const int *waits)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    for (int round = 0;; round++) {
        uint32_t zombie[KVT_MAX_SLOT_TIERS];
        int busy = 0;
        pthread_mutex_lock(&sh->lock);
        for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) /* leaving, or its last reader freeing it */
            busy |= waits[t] && (e->res[t] == KVT_RES_LEAVING ||
                                 (e->res[t] == KVT_RES_ZOMBIE && e->slot[t] == KVT_NO_SLOT));
        int free_entry = 0;
        if (!busy) {
            for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
                zombie[t] = waits[t] ? kvt__zombie_hold(e, t) : KVT_NO_SLOT;
            e->flags &= (uint8_t)~KVT_ENTRY_REMOVE_WAIT;
            free_entry = !kvt__entry_resident(e);
        }
        pthread_mutex_unlock(&sh->lock);
        if (!busy) {
            kvt__zombie_discard(s, id, zombie);
            if (free_entry)
                kvt__index_free(&s->ix, id);
            return;
        }
        kvt__backoff(round);
    }
}

static int remove_local(kvt_store *s, const kvt_key *keys, size_t n)
{
    int removed = 0;
    leaving_batch b;
    memset(b.n, 0, sizeof b.n);
    uint64_t failures = atomic_load(&s->discard_failures);
    pthread_mutex_lock(&s->rm_lock);
    uint64_t seq = ++s->remove_seq;
    int tombs = s->npending > 0; /* puts in progress, all issued before us */
    pthread_mutex_unlock(&s->rm_lock);
    for (size_t i = 0; i < n; i++) {
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        uint32_t fresh = tombs ? tomb_alloc(s, &b, &keys[i]) : KVT_NO_ENTRY;
        uint32_t tomb = KVT_NO_ENTRY, zombie[KVT_MAX_SLOT_TIERS], slot[KVT_MAX_SLOT_TIERS];
        int mine[KVT_MAX_SLOT_TIERS] = {0}, waits[KVT_MAX_SLOT_TIERS] = {0}, any = 0, wait = 0;
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        kvt_entry *e = id == KVT_NO_ENTRY ? NULL : kvt__index_entry(&s->ix, id);
        if (e && (e->flags & KVT_ENTRY_TOMB)) {
            if (tombs) { /* an older remove's: ours is younger */
                e->parent = seq;
                tomb = id;
            }
            e = NULL;
        } else if (e) {
            for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
                zombie[t] = KVT_NO_SLOT;
                if (e->res[t] == KVT_RES_READY) { /* ours to take out */
                    e->res[t] = KVT_RES_LEAVING;
                    slot[t] = e->slot[t];
                    mine[t] = any = 1;
                } else if (e->res[t] == KVT_RES_LEAVING) { /* another thread's */
                    any = 1;
                    waits[t] = kvt__persistent(s, t);
                    wait |= waits[t];
                } else if (kvt__persistent(s, t) && e->res[t] == KVT_RES_ZOMBIE) {
                    zombie[t] = kvt__zombie_hold(e, t);
                    waits[t] = zombie[t] == KVT_NO_SLOT; /* its last reader is freeing it */
                    wait |= waits[t];
                }
                /* FILLING: the fill is cancelled where it lands (publish). */
            }
            e->flags |= KVT_ENTRY_REMOVED;
            if (wait)
                e->flags |= KVT_ENTRY_REMOVE_WAIT;
            kvt__index_unlink(&s->ix, sh, id);
        }
        if (tombs && tomb == KVT_NO_ENTRY) {
            kvt_entry *te = kvt__index_entry(&s->ix, fresh);
            te->flags = KVT_ENTRY_TOMB;
            te->parent = seq;
            kvt__index_link(&s->ix, sh, fresh);
            tomb = fresh;
            fresh = KVT_NO_ENTRY;
        }
        pthread_mutex_unlock(&sh->lock);
        if (fresh != KVT_NO_ENTRY)
            kvt__index_free(&s->ix, fresh);
        if (tomb != KVT_NO_ENTRY)
            tomb_push(s, &b, tomb, seq, &keys[i]);
        if (!e)
            continue;
        removed += any;
        if (any)
            kvt__event_removed(s, &keys[i]);
        kvt__zombie_discard(s, id, zombie); /* readers hold them: not reused before they finish */
        for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
            if (!mine[t])
                continue;
            b.id[t][b.n[t]] = id;
            b.slot[t][b.n[t]++] = slot[t];
            if (b.n[t] == REMOVE_BATCH)
                leaving_flush(s, &b, t);
        }
        if (wait) {
            leaving_flush_all(s, &b);
            remove_wait(s, id, waits);
        }
    }
    leaving_flush_all(s, &b);
    ADD(&s->st, removed_blocks, (uint64_t)removed);
    if (s->durable_tier < 0)
        return removed;
    /* Fills of these keys, and slots they were evicted from whose new block
     * is still being written: done. Then flushed, so that a power cut does
     * not bring back an old header either. */
    kvt__remove_barrier(s);
    kvt_tier_rt *dr = &s->tier[s->durable_tier];
    if (dr->ops->flush) {
        CNT(&s->st, flushes);
        if (dr->ops->flush(dr->impl))
            return kvt__err(KVT_EIO, "kvt_remove: %d keys removed, but flushing the %s tier "
                                     "failed: a power cut may bring them back", removed, dr->name);
    }
    if (atomic_load(&s->discard_failures) != failures)
        return kvt__err(KVT_EIO, "kvt_remove: %d keys removed, but invalidating a slot on media "
                                 "failed: a restart may bring a key back", removed);
    return removed;
}

/* Slot tiers first, with every guarantee above; then the key-addressed
 * tiers, which forget the keys too (a key only they held counts as held). */
int kvt__store_remove(kvt_store *s, const kvt_key *keys, size_t n)
{
    if (!s->nkeyed)
        return remove_local(s, keys, n);
    uint8_t *local = kvt__malloc(n), *held = kvt__calloc(n, 1);
    if (!local || !held) {
        kvt__free(local);
        kvt__free(held);
        return kvt__err(KVT_ENOMEM, "kvt_remove: %zu keys", n);
    }
    kvt__contains_local(s, keys, n, local);
    int rc = remove_local(s, keys, n);
    kvt__keyed_remove(s, keys, n, held);
    for (size_t i = 0; rc >= 0 && i < n; i++)
        if (held[i] && local[i] == KVT_TIER_NONE) {
            rc++;
            kvt__event_removed(s, &keys[i]); /* remove_local queued those it held */
        }
    kvt__free(local);
    kvt__free(held);
    return rc;
}

/* Every key the index holds, removed in chunks of up to CLEAR_CHUNK (a
 * shard's keys are never split), each chunk a kvt__store_remove with its
 * guarantees. A key stored after its shard was read survives: such a put is
 * ordered after the clear. */
#define CLEAR_CHUNK 4096

int kvt__store_clear(kvt_store *s)
{
    size_t cap = CLEAR_CHUNK, used = 0;
    kvt_key *keys = kvt__malloc(cap * sizeof *keys);
    if (!keys)
        return kvt__err(KVT_ENOMEM, "kvt_clear: %zu keys", cap);
    int held = 0, err = 0;
    for (uint32_t i = 0; i < s->ix.nshards; i++) {
        kvt_shard *sh = &s->ix.shards[i];
        for (;;) {
            pthread_mutex_lock(&sh->lock);
            size_t k = kvt__index_shard_keys(&s->ix, sh, keys + used, cap - used);
            pthread_mutex_unlock(&sh->lock);
            if (used + k <= cap) {
                used += k;
                break;
            }
            kvt_key *more = kvt__realloc(keys, (used + k) * 2 * sizeof *keys);
            if (!more) {
                kvt__free(keys);
                return kvt__err(KVT_ENOMEM, "kvt_clear: %zu keys", (used + k) * 2);
            }
            keys = more;
            cap = (used + k) * 2;
        }
        if (used < CLEAR_CHUNK && i + 1 < s->ix.nshards)
            continue;
        if (!used)
            continue;
        int rc = kvt__store_remove(s, keys, used);
        if (rc < 0)
            err = rc; /* its keys are removed all the same; go on */
        else
            held += rc;
        used = 0;
    }
    kvt__free(keys);
    return err ? err : held;
}
