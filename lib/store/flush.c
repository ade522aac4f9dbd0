/* flush.c — durability: writing blocks down to the persistent tier (kvt_flush, close). */
#include "internal.h"

/* ----------------------------------------------------------------- flush
 *
 * Writing blocks down to the persistent tier (durable_tier) where they are
 * held only above it: kvt_flush, KVT_IO_DURABLE puts, and kvt_close. A copy
 * down is a fill of that tier like a write-through copy, taken from the
 * block's fastest copy (a ref held on it), in batches of one tier write. */

enum { DOWN_DONE, DOWN_WAIT, DOWN_COPY, DOWN_MISSING };

/* What writing entry e down to tier d needs; on DOWN_COPY, e is FILLING in
 * d and *src has a ref taken for the copy. Shard lock held. */
static int down_claim(kvt_store *s, kvt_entry *e, int d, int *src)
{
    if (d < 0 || d >= KVT_MAX_SLOT_TIERS || (e->flags & (KVT_ENTRY_REMOVED | KVT_ENTRY_TOMB)))
        return DOWN_MISSING;
    if (e->res[d] == KVT_RES_READY)
        return DOWN_DONE;
    if (e->res[d] == KVT_RES_LEAVING)
        return DOWN_WAIT; /* leaving there (expiry, eviction): write it down anew after */
    int t = kvt__fastest(e);
    if (e->res[d] == KVT_RES_FILLING && (e->queued & (1u << d)) && t >= 0) {
        /* A write-through copy no thread has started: ours now. Its job
         * still holds its ref (the entry can't go while it is queued) and
         * only drops it when it runs (writethrough.c, copy_through). */
        e->queued &= (uint8_t)~(1u << d);
        e->queued |= (uint8_t)(1u << (KVT_QUEUED_TAKEN_SHIFT + d));
        kvt__fill_begin(s, e, d);
        e->refs[t]++;
        *src = t;
        return DOWN_COPY;
    }
    if (e->res[d] != KVT_RES_NONE)
        return DOWN_WAIT; /* being written there, or its old slot still read */
    if (t < 0)
        return DOWN_MISSING;
    e->res[d] = KVT_RES_FILLING;
    kvt__fill_begin(s, e, d);
    e->refs[t]++;
    *src = t;
    return DOWN_COPY;
}

/* Writes k claimed items down to tier d in one batch and publishes them;
 * status[it.index] gets each one's result. Returns how many landed. */
static int copy_down(kvt_store *s, int d, down_work *w, size_t k, int32_t *status)
{
    kvt_tier_rt *dr = &s->tier[d];
    down_item *it = w->it;
    kvt_xfer *x = w->x;
    void **ptr = w->ptr;
    uint32_t *to = w->to;
    int32_t *st = w->st;
    size_t *at = w->at, m = 0;
    int landed = 0;
    for (size_t j = 0; j < k; j++) {
        kvt_tier_rt *sr = &s->tier[it[j].src];
        to[j] = kvt__make_room(s, d, 1);
        st[j] = to[j] == KVT_NO_SLOT ? KVT_EFULL : 0;
        if (st[j])
            continue;
        if (sr->ops->caps & KVT_TCAP_HOST_PTR) {
            ptr[m] = sr->ops->slot_ptr(sr->impl, it[j].from);
            x[m] = (kvt_xfer){.slot = to[j], .nfrags = 1, .frags = &ptr[m], .key = it[j].key};
            at[m++] = j;
        } else {
            st[j] = kvt__copy_between(s, it[j].src, it[j].from, d, to[j], &it[j].key) ? KVT_EIO : 0;
        }
    }
    if (m)
        dr->ops->write(dr->impl, x, m, KVT_MEM_HOST);
    for (size_t c = 0; c < m; c++)
        st[at[c]] = x[c].status;
    uint64_t now = kvt__store_now(s);
    for (size_t j = 0; j < k; j++) {
        if (st[j]) {
            if (to[j] != KVT_NO_SLOT) {
                CNT(&dr->st, io_errors);
                kvt__release_slot(s, d, to[j], 1);
            }
            kvt__unfill(s, it[j].id, d);
        } else if (!kvt__publish(s, it[j].id, d, to[j], now, 0)) {
            st[j] = KVT_ENOENT; /* removed meanwhile */
        } else {
            landed++;
            CNT(&s->st, flush_written);
            ADD(&dr->st, bytes_in, s->block_bytes);
        }
        kvt__unref(s, it[j].id, it[j].src);
        if (status && it[j].index != SIZE_MAX)
            status[it[j].index] = st[j];
    }
    return landed;
}

/* Blocks per copy_down: a batch of our own fills can't be evicted, so at
 * most half the tier. */
static size_t down_batch_size(const kvt_store *s, int d)
{
    uint32_t half = s->tier[d].nslots / 2;
    return half < 1 ? 1 : half < DOWN_BATCH ? half : DOWN_BATCH;
}

static int sync_durable(kvt_store *s, const char *fn)
{
    kvt_tier_rt *dr = &s->tier[s->durable_tier];
    if (!dr->ops->flush)
        return 0;
    CNT(&s->st, flushes);
    int rc = dr->ops->flush(dr->impl);
    return rc ? kvt__err(KVT_EIO, "%s: flushing the %s tier failed", fn, dr->name) : 0;
}

/* Every block held above the durable tier and not in it, written down
 * until `deadline` (CLOCK_MONOTONIC ns: real time, whatever the store's
 * clock). Returns blocks written, or KVT_ENOMEM; *left counts those it had
 * no time or room for. */
static int flush_all(kvt_store *s, down_work *w, uint64_t deadline, uint64_t *left)
{
    int d = s->durable_tier, written = 0;
    size_t batch = down_batch_size(s, d);
    down_item *it = w->it;
    *left = 0;
    for (int t = 0; t < d; t++) {
        kvt_tier_rt *tr = &s->tier[t];
        if (!tr->on)
            continue;
        for (uint32_t next = 0; next < tr->nslots;) {
            size_t k = 0;
            int late = kvt__monotonic_ns() > deadline;
            pthread_mutex_lock(&tr->lock);
            for (; next < tr->nslots && k < batch; next++) {
                uint32_t id = tr->slot_entry[next];
                if (id == KVT_NO_ENTRY)
                    continue;
                /* In this tier's map, so resident: its key can't change. */
                kvt_entry *e = kvt__index_entry(&s->ix, id);
                kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
                pthread_mutex_lock(&sh->lock);
                int src, c = late ? DOWN_MISSING : down_claim(s, e, d, &src);
                if (late && !kvt__readable(e, d) && !(e->flags & KVT_ENTRY_REMOVED))
                    (*left)++;
                if (c == DOWN_COPY)
                    it[k++] = (down_item){.id = id, .src = src, .from = e->slot[src],
                                          .index = SIZE_MAX, .key = e->key};
                pthread_mutex_unlock(&sh->lock);
            }
            pthread_mutex_unlock(&tr->lock);
            int got = copy_down(s, d, w, k, NULL);
            written += got;
            *left += k - (size_t)got;
        }
    }
    return written;
}

int kvt__store_flush(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status)
{
    int d = s->durable_tier;
    if (d < 0)
        return kvt__err(KVT_ENOTSUP, "kvt_flush: the store has no persistent tier");
    if (!keys) {
        uint64_t left;
        down_work *w = kvt__malloc(sizeof *w);
        if (!w)
            return kvt__err(KVT_ENOMEM, "kvt_flush: %zu bytes", sizeof *w);
        int written = flush_all(s, w, UINT64_MAX, &left);
        kvt__free(w);
        kvt__remove_barrier(s); /* and what others were writing there: landed too */
        int rc = sync_durable(s, "kvt_flush");
        return rc ? rc : written;
    }
    int durable = 0;
    size_t batch = down_batch_size(s, d), k = 0;
    down_work *w = kvt__malloc(sizeof *w);
    if (!w)
        return kvt__err(KVT_ENOMEM, "kvt_flush: %zu bytes", sizeof *w);
    down_item *it = w->it;
    for (size_t i = 0; i < n; i++) {
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        for (int round = 0;; round++) {
            pthread_mutex_lock(&sh->lock);
            uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
            int src = -1, c = DOWN_MISSING;
            if (id != KVT_NO_ENTRY) {
                kvt_entry *e = kvt__index_entry(&s->ix, id);
                c = down_claim(s, e, d, &src);
                if (c == DOWN_COPY)
                    it[k++] = (down_item){.id = id, .src = src, .from = e->slot[src],
                                          .index = i, .key = keys[i]};
            }
            pthread_mutex_unlock(&sh->lock);
            if (c == DOWN_WAIT) { /* another thread's write there: let it land */
                if (k) {
                    durable += copy_down(s, d, w, k, status);
                    k = 0;
                }
                kvt__backoff(round);
                continue;
            }
            if (c != DOWN_COPY && status)
                status[i] = c == DOWN_DONE ? 0 : KVT_ENOENT;
            durable += c == DOWN_DONE;
            break;
        }
        if (k == batch) {
            durable += copy_down(s, d, w, k, status);
            k = 0;
        }
    }
    if (k)
        durable += copy_down(s, d, w, k, status);
    kvt__free(w);
    int rc = sync_durable(s, "kvt_flush");
    return rc ? rc : durable;
}

void kvt__store_close_flush(kvt_store *s, uint64_t budget_ms)
{
    if (s->durable_tier < 0 || !budget_ms)
        return;
    uint64_t left;
    if (!s->close_work)
        return; /* nothing above the persistent tier */
    flush_all(s, s->close_work, kvt__monotonic_ns() + budget_ms * NS_PER_MS, &left);
    ADD(&s->st, close_unflushed, left);
    sync_durable(s, "kvt_close");
}
