/* put.c — puts: reservation, admission, and put runs with their demotions. */
#include "internal.h"
#include "groups.h"
#include "worker.h"

/* -------------------------------------------------------------- put, get */

void kvt__frag_ptrs(const kvt_store *s, void *const *ptrs, size_t i, kvt_xfer *x)
{
    x->nfrags = s->frags;
    x->frags = ptrs + i * s->frags;
}

int32_t kvt__xfer_code(int32_t status, int fallback)
{
    return status ? status : fallback;
}

/* Bumps recency and idle time of blocks just read from tier t. */
void kvt__touch_all(kvt_store *s, int t, const uint32_t *ids, const uint32_t *slots,
                      size_t n, uint64_t now)
{
    kvt_tier_rt *tr = &s->tier[t];
    pthread_mutex_lock(&tr->lock);
    for (size_t i = 0; i < n; i++) {
        if (tr->slot_entry[slots[i]] != ids[i])
            continue; /* left the policy meanwhile */
        tr->pol->touch(tr->pst, slots[i]);
        if (tr->ttl_ns) {
            kvt__idle_remove(tr, slots[i]);
            kvt__idle_push(tr, slots[i], now);
        }
    }
    pthread_mutex_unlock(&tr->lock);
}

/* Whether entry e holds a copy a put can take for the block: a readable one
 * not marked untrusted (1), or one another put is still filling in tier p
 * (HELD_WHEN_FILLED). Shard lock held. */
#define HELD_WHEN_FILLED 2
static int held_for_put(const kvt_entry *e, int p)
{
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
        if (kvt__readable(e, t) && !(e->untrusted & (1u << t)))
            return 1;
    return e->res[p] == KVT_RES_FILLING ? HELD_WHEN_FILLED : 0;
}

/* Reads entry id's copy in tier t (slot; the caller holds a ref on it) to
 * check it, and settles the verdict: 0 (now trusted), KVT_ECORRUPT (dropped)
 * or another error. */
static int32_t verify_copy(kvt_store *s, uint32_t id, int t, uint32_t slot, const kvt_key *key)
{
    kvt_tier_rt *tr = &s->tier[t];
    void *buf = NULL;
    int32_t st = KVT_ENOMEM;
    if (!kvt__posix_memalign(&buf, 4096, s->block_bytes)) {
        kvt_xfer x = {.slot = slot, .nfrags = 1, .frags = &buf, .key = *key};
        tr->ops->read(tr->impl, &x, 1, KVT_MEM_HOST);
        st = x.status;
        kvt__free(buf);
    }
    if (st == KVT_ECORRUPT) { /* while our ref still keeps entry and slot ours */
        CNT(&tr->st, corrupt);
        kvt__drop_corrupt(s, id, t, slot);
    }
    kvt__unref_read(s, id, t, st);
    if (st && st != KVT_ECORRUPT && st != KVT_ENOMEM) {
        CNT(&tr->st, io_errors);
    }
    return st;
}

/* Finds or reserves keys[i] in tier p. Returns the entry id to fill, or
 * KVT_NO_ENTRY when the block is already held (or being stored) — then
 * *code is 0 — or can't be taken (*code < 0).
 *
 * An untrusted copy (recovered from NVMe and not read since, e.g. a slot
 * whose header reached media in a power cut but whose payload did not) is
 * not taken on trust: acknowledging the put against a bad copy would lose
 * the block. It is read back first: good, the put finds the block held as
 * before; bad, it is dropped and the put stores its own bytes. Not dropped
 * unread: the copy may be the only durable one of an earlier acknowledged
 * put, and a crash between the drop and the new write would lose it. */
uint32_t kvt__put_reserve(kvt_store *s, const kvt_key *key, uint64_t parent, int p,
                          uint32_t retain_until, uint64_t seq, int *code)
{
    kvt_shard *sh = kvt__index_shard(&s->ix, key);
    *code = 0;
again:
    pthread_mutex_lock(&sh->lock);
    uint32_t id = kvt__index_find(&s->ix, sh, key);
    if (id != KVT_NO_ENTRY && (kvt__index_entry(&s->ix, id)->flags & KVT_ENTRY_TOMB)) {
        kvt_entry *e = kvt__index_entry(&s->ix, id);
        if (seq < e->parent) { /* the remove came after this put was issued */
            pthread_mutex_unlock(&sh->lock);
            *code = PUT_CANCELLED;
            return KVT_NO_ENTRY;
        }
        /* The remove is older than this put: the tombstone becomes its entry
         * (its key and shard stay the same, as tomb_gc expects). */
        e->flags = 0;
        e->parent = parent;
        e->retain_until_s = retain_until;
        e->res[p] = KVT_RES_FILLING;
        kvt__fill_begin(s, e, p);
        pthread_mutex_unlock(&sh->lock);
        return id;
    }
    if (id != KVT_NO_ENTRY) {
        kvt_entry *e = kvt__index_entry(&s->ix, id);
        int held = held_for_put(e, p);
        for (int t = 0; !held && t < KVT_MAX_SLOT_TIERS; t++) {
            if (e->res[t] == KVT_RES_READY && (e->untrusted & (1u << t))) {
                uint32_t slot = e->slot[t];
                e->refs[t]++; /* as a get: the slot stays put while we read it */
                pthread_mutex_unlock(&sh->lock);
                int32_t st = verify_copy(s, id, t, slot, key);
                if (st && st != KVT_ECORRUPT) {
                    *code = st;
                    return KVT_NO_ENTRY;
                }
                goto again;
            }
        }
        if (!held && e->res[p] == KVT_RES_NONE) {
            e->res[p] = KVT_RES_FILLING;
            kvt__fill_begin(s, e, p);
            if (parent)
                e->parent = parent;
            if (retain_until)
                e->retain_until_s = retain_until;
            pthread_mutex_unlock(&sh->lock);
            return id;
        }
        if (!held) {
            /* Its only copy here left while a reader still copies out of
             * it: that entry is done with the key, a new one takes it (as
             * after a remove; the last reader frees the old slot). Not
             * while a persistent copy is still on its way out, and not
             * before its zombies are off the media: a remove would only
             * see the new entry. */
            uint32_t zombie[KVT_MAX_SLOT_TIERS];
            int busy = 0;
            for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
                busy |= kvt__persistent(s, t) &&
                        (e->res[t] == KVT_RES_LEAVING ||
                         (e->res[t] == KVT_RES_ZOMBIE && e->slot[t] == KVT_NO_SLOT));
            if (busy) {
                pthread_mutex_unlock(&sh->lock);
                kvt__nap_briefly();
                goto again;
            }
            for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
                zombie[t] = kvt__persistent(s, t) ? kvt__zombie_hold(e, t) : KVT_NO_SLOT;
            e->flags |= KVT_ENTRY_REMOVED;
            kvt__index_unlink(&s->ix, sh, id);
            pthread_mutex_unlock(&sh->lock);
            kvt__zombie_discard(s, id, zombie);
            goto again;
        }
        if (retain_until && (int32_t)(retain_until - e->retain_until_s) > 0)
            e->retain_until_s = retain_until;
        pthread_mutex_unlock(&sh->lock);
        if (held == HELD_WHEN_FILLED)
            *code = PUT_PENDING;
        return KVT_NO_ENTRY;
    }
    pthread_mutex_unlock(&sh->lock);

    uint32_t fresh = kvt__index_alloc(&s->ix, key);
    if (fresh == KVT_NO_ENTRY) {
        *code = KVT_EFULL;
        return KVT_NO_ENTRY;
    }
    kvt_entry *e = kvt__index_entry(&s->ix, fresh);
    e->parent = parent;
    e->retain_until_s = retain_until;
    e->res[p] = KVT_RES_FILLING;
    pthread_mutex_lock(&sh->lock);
    id = kvt__index_find(&s->ix, sh, key);
    if (id == KVT_NO_ENTRY) {
        kvt__fill_begin(s, e, p);
        kvt__index_link(&s->ix, sh, fresh);
    }
    pthread_mutex_unlock(&sh->lock);
    if (id != KVT_NO_ENTRY) { /* another thread stored it (or removed it) meanwhile */
        kvt__index_free(&s->ix, fresh);
        goto again;
    }
    return fresh;
}

static void demotion_run(kvt__task *task)
{
    demotion *d = (demotion *)task;
    kvt__demote_batch(d->s, d->tier, d->ids, d->slots, d->k);
}

/* Starts demoting the victims of items [start, end): on the store's
 * demotion executor when it has one, else here and now. */
static void demotion_start(kvt_store *s, int p, demotion *d, const put_item *items, size_t start,
                           size_t end)
{
    d->s = s;
    d->tier = p;
    d->start = start;
    d->end = end;
    d->k = 0;
    for (size_t j = start; j < end; j++)
        if (items[j].victim != KVT_NO_ENTRY) {
            d->ids[d->k] = items[j].victim;
            d->slots[d->k++] = items[j].slot;
        }
    d->task.fn = demotion_run;
    /* Only a host tier's victims go to the executor: a device tier's copies
     * belong on the thread that set up its device. */
    d->posted = d->k && s->demoter && (s->tier[p].ops->caps & KVT_TCAP_HOST_PTR);
    if (d->posted) {
        kvt__group_init(&d->done);
        if (kvt__executor_submit(s->demoter, &d->task, &d->done)) {
            kvt__group_destroy(&d->done); /* refused (never while the store is open) */
            d->posted = 0;
        }
    }
    if (!d->posted && d->k)
        demotion_run(&d->task);
}

/* Waits for d's demotion (running it here if no thread has taken it yet:
 * they may be busy with another put's). */
static void demotion_wait(kvt_store *s, demotion *d)
{
    if (!d->posted)
        return;
    d->posted = 0;
    if (kvt__executor_cancel(s->demoter, &d->task))
        demotion_run(&d->task);
    kvt__group_wait(&d->done);
    kvt__group_destroy(&d->done);
}

/* Lets the victims whose slots items[0..m) took leave, once demoted. A
 * victim slot that a reader took meanwhile stays with the reader; its block
 * gets another slot, or KVT_EFULL. Returns the items left, in order. */
static size_t settle_victims(kvt_store *s, int p, put_item *items, kvt_xfer *x, size_t m,
                             int32_t *status, int promoting)
{
    size_t out = 0;
    for (size_t j = 0; j < m; j++) {
        put_item it = items[j];
        if (it.victim != KVT_NO_ENTRY) {
            uint32_t v = it.victim;
            it.victim = KVT_NO_ENTRY;
            if (!kvt__leave(s, v, p, it.slot, LEFT_DEMOTED)) {
                it.slot = kvt__make_room(s, p, 1);
                if (it.slot == KVT_NO_SLOT) {
                    kvt__unfill(s, it.id, p);
                    if (status)
                        status[it.index] = KVT_EFULL;
                    if (!promoting)
                        CNT(&s->st, put_rejected);
                    continue;
                }
            }
        }
        kvt_xfer xj = x[j];
        xj.slot = it.slot;
        items[out] = it;
        x[out++] = xj;
    }
    return out;
}

/* Writes the reserved blocks of a put (or the blocks a get promotes) in
 * one batch and publishes them. Returns how many were stored. */
static int put_flush(kvt_store *s, int p, put_item *items, kvt_xfer *x, size_t m,
                     kvt_mem_kind mem, int32_t *status, int promoting)
{
    kvt_tier_rt *tr = &s->tier[p];
    int stored = 0;
    if (!m)
        return 0;
    tr->ops->write(tr->impl, x, m, mem);
    uint64_t after = kvt__store_now(s);
    for (size_t j = 0; j < m; j++) {
        if (x[j].status) {
            CNT(&tr->st, io_errors);
            if (!promoting)
                CNT(&s->st, put_rejected);
            kvt__release_slot(s, p, items[j].slot, 1);
            kvt__unfill(s, items[j].id, p);
            if (status)
                status[items[j].index] = x[j].status;
            continue;
        }
        stored++; /* a put cancelled by a remove counts as stored, then removed */
        if (!kvt__publish(s, items[j].id, p, items[j].slot, after, !promoting)) {
            if (!promoting)
                CNT(&s->st, put_cancelled);
            continue;
        }
        ADD(&tr->st, bytes_in, s->block_bytes);
        if (promoting) {
            CNT(&tr->st, promotions_in);
            continue;
        }
        CNT(&tr->st, inserts);
        CNT(&s->st, put_stored);
    }
    return stored;
}

static void run_finish(put_runs *r, demotion *d)
{
    demotion_wait(r->s, d);
    size_t m = settle_victims(r->s, r->p, r->items + d->start, r->x + d->start,
                              d->end - d->start, r->status, r->promoting);
    if (r->kept) { /* a reservation (reserve.c): the slots stay FILLING for its caller */
        memcpy(r->kept + r->nkept, r->items + d->start, m * sizeof *r->kept);
        r->nkept += m;
        return;
    }
    r->stored += put_flush(r->s, r->p, r->items + d->start, r->x + d->start, m, r->mem,
                           r->status, r->promoting);
}

/* Ends the run being gathered: starts its demotion, then settles and
 * copies the run before it. */
static void run_close(put_runs *r)
{
    size_t m = r->m;
    if (m == r->start)
        return;
    int next = r->have_prev ? !r->cur : r->cur;
    demotion_start(r->s, r->p, &r->d[next], r->items, r->start, m);
    if (r->have_prev)
        run_finish(r, &r->d[r->cur]);
    r->cur = next;
    r->have_prev = 1;
    r->start = m;
    r->victims = 0;
}

/* Everything gathered so far, demoted, settled and copied. */
void kvt__run_drain(put_runs *r)
{
    run_close(r);
    if (r->have_prev)
        run_finish(r, &r->d[r->cur]);
    r->have_prev = 0;
    r->m = r->start = 0;
}

/* Gives entry id (FILLING in the runs' tier; the caller's block `index`) a
 * slot and adds it to the run being gathered. Victims are chosen block by
 * block, as without batching (a block of this put that is already held may
 * itself be evicted by an earlier one, and then put anew), but demoted
 * together. A tier full of our own blocks in flight, which can't be
 * evicted: write and publish those first, then ask again (waiting only
 * when none of ours are in flight). KVT_EFULL when no slot could be had. */
int kvt__run_add(put_runs *r, uint32_t id, size_t index, const kvt_key *key,
                   void *const *ptrs)
{
    uint32_t victim;
    uint32_t slot = kvt__take_slot_for(r->s, r->p, r->m == 0, &victim);
    if (slot == KVT_NO_SLOT && r->m && !r->kept) {
        kvt__run_drain(r);
        slot = kvt__take_slot_for(r->s, r->p, 1, &victim);
    }
    if (slot == KVT_NO_SLOT)
        return KVT_EFULL;
    r->items[r->m] = (put_item){.id = id, .slot = slot, .victim = victim, .index = index};
    r->x[r->m] = (kvt_xfer){.slot = slot, .key = *key};
    if (ptrs)
        kvt__frag_ptrs(r->s, ptrs, index, &r->x[r->m]);
    r->m++;
    if (victim != KVT_NO_ENTRY && ++r->victims == r->per_run)
        run_close(r);
    return 0;
}

/* Two runs in flight take up to twice this many slots: half the tier. */
size_t kvt__victims_per_run(const kvt_store *s, int p)
{
    uint32_t half = s->tier[p].nslots / 2;
    return half < 1 ? 1 : half < VICTIM_BATCH ? half : VICTIM_BATCH;
}

/* KVT_IO_DURABLE: the blocks a put stored, written down and flushed; one
 * that could not be (removed or evicted meanwhile, no room, I/O error) gets
 * that code instead of 0 and does not count. */
int kvt__make_durable(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status, int stored)
{
    int32_t *got = kvt__malloc(n * sizeof *got);
    if (!got)
        return kvt__err(KVT_ENOMEM, "kvt_put: %zu blocks", n);
    int rc = kvt__store_flush(s, keys, n, got);
    for (size_t i = 0; rc >= 0 && i < n; i++)
        if (!status[i] && got[i]) {
            status[i] = got[i];
            stored--;
        }
    kvt__free(got);
    return rc < 0 ? rc : stored;
}

int kvt__store_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                   const kvt_io_opts *o, uint64_t seq)
{
    uint32_t first, count;
    int rc = kvt__io_frag_range(s, o, KVT_JOB_PUT, &first, &count, "kvt_put");
    if (rc)
        return rc;
    if (count) /* layer-wise: the blocks assemble (assemble.c) */
        return kvt__assemble_put(s, keys, n, ptrs, o, first, count);
    /* A whole block replaces one of these keys still assembling (else it
     * would wait on that FILLING slot until the assembly ends). */
    if (atomic_load_explicit(&s->st.assembling, memory_order_relaxed))
        kvt__assemble_drop(s, keys, n);
    kvt__expire_due(s);
    uint64_t now = kvt__store_now(s);
    int p = s->put_tier;
    int durable = o && (o->flags & KVT_IO_DURABLE);
    int32_t *status = o ? o->status : NULL;
    kvt_mem_kind mem = o ? (kvt_mem_kind)o->mem_kind : KVT_MEM_HOST;
    uint32_t retain_until = o && o->retain_s ? kvt__rel_s(s, now) + o->retain_s : 0;
    put_item *items = kvt__malloc(n * sizeof *items);
    kvt_xfer *x = kvt__calloc(n, sizeof *x);
    /* A durable put, and write-through to key-addressed tiers, need each
     * block's outcome. */
    int outcomes = durable || s->nkeyed;
    int32_t *own = outcomes && !status ? kvt__malloc(n * sizeof *own) : NULL;
    size_t *pending = kvt__malloc(n * sizeof *pending), npending = 0;
    if (!items || !x || !pending || (outcomes && !status && !own)) {
        kvt__free(items);
        kvt__free(x);
        kvt__free(own);
        kvt__free(pending);
        return kvt__err(KVT_ENOMEM, "kvt_put: %zu blocks", n);
    }
    if (own)
        status = own;
    ADD(&s->st, put_blocks, n);

    put_runs r = {.s = s, .p = p, .items = items, .x = x, .mem = mem, .status = status,
                  .per_run = kvt__victims_per_run(s, p)};
    uint64_t parent = o && o->parent ? kvt__key_hash(o->parent) : 0;
    for (size_t i = 0; i < n; i++) {
        int code;
        uint32_t id = kvt__put_reserve(s, &keys[i], parent, p, retain_until, seq, &code);
        if (status)
            status[i] = code > 0 ? 0 : code;
        parent = kvt__key_hash(&keys[i]);
        if (id == KVT_NO_ENTRY) {
            if (code == PUT_PENDING) {
                pending[npending++] = i;
            } else if (code == PUT_CANCELLED) {
                r.stored++;
                CNT(&s->st, put_cancelled);
            } else if (code == 0) {
                r.stored++;
                CNT(&s->st, put_present);
            } else {
                CNT(&s->st, put_rejected);
            }
            continue;
        }
        if (kvt__run_add(&r, id, i, &keys[i], ptrs)) {
            kvt__unfill(s, id, p);
            if (status)
                status[i] = KVT_EFULL;
            CNT(&s->st, put_rejected);
        }
    }
    kvt__run_drain(&r);
    /* Keys another put was writing: once that write has landed (or failed),
     * they are held, or this put stores them itself. Not forever: a writer
     * that stopped between reserving and committing (a zero-copy client
     * under a debugger, docs/shared.md) would hold this put, and its
     * caller's connection, with it; after s->pending_wait_ns the key gets
     * KVT_EBUSY. The other writer's slot stays its own until it commits or
     * its connection closes: freeing it early would let a late copy land
     * in another block. */
    const uint64_t give_up = kvt__monotonic_ns() + s->pending_wait_ns;
    for (size_t j = 0; j < npending; j++) {
        size_t i = pending[j];
        uint64_t up = i ? kvt__key_hash(&keys[i - 1]) : o && o->parent ? kvt__key_hash(o->parent) : 0;
        for (int round = 0;; round++) {
            int code;
            uint32_t id = kvt__put_reserve(s, &keys[i], up, p, retain_until, seq, &code);
            if (status)
                status[i] = code > 0 ? 0 : code;
            if (id != KVT_NO_ENTRY) {
                if (kvt__run_add(&r, id, i, &keys[i], ptrs)) {
                    kvt__unfill(s, id, p);
                    if (status)
                        status[i] = KVT_EFULL;
                    CNT(&s->st, put_rejected);
                }
                kvt__run_drain(&r);
            } else if (code == PUT_PENDING && kvt__monotonic_ns() < give_up) {
                kvt__backoff(round);
                continue;
            } else if (code == PUT_PENDING) {
                if (status)
                    status[i] = KVT_EBUSY;
                CNT(&s->st, put_rejected);
            } else if (code == 0 || code == PUT_CANCELLED) {
                r.stored++;
                if (code)
                    CNT(&s->st, put_cancelled);
                else
                    CNT(&s->st, put_present);
            } else {
                CNT(&s->st, put_rejected);
            }
            break;
        }
    }
    kvt__free(items);
    kvt__free(x);
    kvt__free(pending);
    int stored = durable ? kvt__make_durable(s, keys, n, status, r.stored) : r.stored;
    if (s->nkeyed)
        kvt__keyed_put(s, keys, n, ptrs, mem, status);
    kvt__free(own);
    int tagged = kvt__groups_tag(s, keys, n, o); /* once stored: see groups.c */
    return tagged ? tagged : stored;
}
