/* store.c — placement across tiers: puts, gets, eviction, demotion, promotion, TTL, pins. */
#include "store.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "cuda.h"
#include "error.h"
#include "jobpool.h"
#include "killpoint.h"
#include "kvt_build_config.h"
#include "worker.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
/* How long a slot request waits for blocks that are only in flight (being
 * read, filled or copied by another thread) before calling the tier full. */
#define MAX_SLOT_WAIT_NS (1000 * NS_PER_MS)

/* Tells lib/cuda.c that tier I/O goes through kvt__cuda_tier_read/write here. */
const int kvt__store_cuda_tiers = 1;

static const char *const tier_names[KVT_TIER_COUNT] = {"hbm", "dram", "nvme"};

#define CNT(p, field) atomic_fetch_add_explicit(&(p)->field, 1, memory_order_relaxed)
#define ADD(p, field, v) atomic_fetch_add_explicit(&(p)->field, (v), memory_order_relaxed)

/* ------------------------------------------------------------------ time */

uint64_t kvt__store_now(kvt_store *s)
{
    if (s->manual_clock)
        return atomic_load_explicit(&s->manual_now, memory_order_acquire);
    if (s->clock)
        return s->clock(s->clock_user);
    return kvt__monotonic_ns();
}

/* Store-relative milliseconds and seconds, for the 32-bit deadlines in
 * entries. Compared with wrap-safe differences, so they stay exact for
 * leases shorter than 24 days and retentions shorter than 68 years. */
static uint32_t rel_ms(const kvt_store *s, uint64_t now)
{
    return (uint32_t)((now - s->epoch_ns) / NS_PER_MS);
}

static uint32_t rel_s(const kvt_store *s, uint64_t now)
{
    return (uint32_t)((now - s->epoch_ns) / NS_PER_S);
}

static int pinned(kvt_store *s, kvt_entry *e, uint64_t now)
{
    if (!e->pins)
        return 0;
    if ((int32_t)(e->pin_deadline_ms - rel_ms(s, now)) > 0)
        return 1;
    e->pins = 0; /* the lease ran out: it releases itself */
    CNT(&s->st, lease_expired);
    return 0;
}

static int retained(kvt_store *s, const kvt_entry *e, uint64_t now)
{
    return e->retain_until_s && (int32_t)(e->retain_until_s - rel_s(s, now)) > 0;
}

static int readable(const kvt_entry *e, int t)
{
    return e->res[t] == KVT_RES_READY || e->res[t] == KVT_RES_LEAVING;
}

/* The fastest tier a block can be read from, or -1. */
static int fastest(const kvt_entry *e)
{
    for (int t = 0; t < KVT_TIER_COUNT; t++)
        if (readable(e, t))
            return t;
    return -1;
}

static int persistent(const kvt_store *s, int t)
{
    return s->tier[t].on && (s->tier[t].ops->caps & KVT_TCAP_PERSISTENT);
}

/* ---------------------------------------------------- fills and removes
 *
 * A remove must leave nothing on media that a reopen would find: neither the
 * key's own copy, nor a copy still being written, nor the old header of a
 * slot the key was just evicted from and whose new block is not written yet
 * (which the index no longer knows about). Every fill of the persistent tier
 * (a put, demotion, write-through or write-down reserving a slot there)
 * counts itself under the current epoch from FILLING until it is published
 * or undone; every slot taken from that tier is taken by such a fill. A
 * remove flips the epoch and waits until the old epoch's fills are done
 * (remove_barrier): by then every slot the key could have been in holds
 * another block, or was invalidated. Fills of a removed key are cancelled
 * where they land (publish), invalidating their slot first. Copies leaving
 * the persistent tier (expiry, corruption, the last reader of a slot that
 * left) invalidate it on media before they say NONE, so a remove that waits
 * for NONE has nothing left to do. */

/* Counts entry e's fill of tier t (FILLING there; shard lock held). */
static void fill_begin(kvt_store *s, kvt_entry *e, int t)
{
    if (!persistent(s, t))
        return;
    unsigned p;
    for (;;) { /* seq_cst, with remove_barrier's flip: either it sees us or we see it */
        p = atomic_load(&s->fill_epoch) & 1;
        atomic_fetch_add(&s->fills[p], 1);
        if ((atomic_load(&s->fill_epoch) & 1) == p)
            break;
        atomic_fetch_sub(&s->fills[p], 1);
    }
    uint8_t bit = (uint8_t)(1u << (KVT_ENTRY_EPOCH_SHIFT + t));
    e->flags = (uint8_t)(p ? e->flags | bit : e->flags & ~bit);
}

/* Ends it (the caller takes e out of FILLING in tier t; shard lock held).
 * A write-through copy still queued was never counted. */
static void fill_end(kvt_store *s, kvt_entry *e, int t)
{
    if (e->queued & (1u << t)) {
        e->queued &= (uint8_t)~(1u << t);
        return;
    }
    if (persistent(s, t))
        atomic_fetch_sub(&s->fills[(e->flags >> (KVT_ENTRY_EPOCH_SHIFT + t)) & 1], 1);
}

/* Waits until every fill of the persistent tier that began before the call
 * is published or undone. */
static void remove_barrier(kvt_store *s)
{
    pthread_mutex_lock(&s->barrier_lock);
    unsigned old = atomic_fetch_xor(&s->fill_epoch, 1) & 1;
    for (int round = 0; atomic_load(&s->fills[old]); round++) {
        struct timespec nap = {0, round < 16 ? 0 : 50000};
        if (nap.tv_nsec)
            nanosleep(&nap, NULL);
        else
            sched_yield();
    }
    pthread_mutex_unlock(&s->barrier_lock);
}

/* ------------------------------------------------------------ idle lists */

static void update_next_expiry(kvt_tier_rt *tr)
{
    uint64_t next = UINT64_MAX;
    if (tr->idle_head != KVT_NO_SLOT)
        next = tr->idle_stamp[tr->idle_head] + tr->ttl_ns;
    atomic_store_explicit(&tr->next_expiry, next, memory_order_release);
}

static void idle_push(kvt_tier_rt *tr, uint32_t slot, uint64_t stamp)
{
    if (!tr->ttl_ns)
        return;
    tr->idle_stamp[slot] = stamp;
    tr->idle_next[slot] = KVT_NO_SLOT;
    tr->idle_prev[slot] = tr->idle_tail;
    if (tr->idle_tail != KVT_NO_SLOT)
        tr->idle_next[tr->idle_tail] = slot;
    else
        tr->idle_head = slot;
    tr->idle_tail = slot;
    if (tr->idle_head == slot)
        update_next_expiry(tr);
}

static void idle_remove(kvt_tier_rt *tr, uint32_t slot)
{
    if (!tr->ttl_ns)
        return;
    uint32_t p = tr->idle_prev[slot], n = tr->idle_next[slot];
    int was_head = tr->idle_head == slot;
    if (p != KVT_NO_SLOT)
        tr->idle_next[p] = n;
    else
        tr->idle_head = n;
    if (n != KVT_NO_SLOT)
        tr->idle_prev[n] = p;
    else
        tr->idle_tail = p;
    if (was_head)
        update_next_expiry(tr);
}

/* Takes the block at `slot` out of its tier's policy, idle list and slot
 * map: nobody can pick it as a victim or expire it any more. Tier lock held. */
static void forget_slot(kvt_tier_rt *tr, uint32_t slot)
{
    tr->pol->remove(tr->pst, slot);
    idle_remove(tr, slot);
    tr->slot_entry[slot] = KVT_NO_ENTRY;
}

/* --------------------------------------------------------- slots, moves */

/* Gives a slot back to its tier. Persistent tiers forget it on media first,
 * so that a dropped or removed block does not come back after a restart. */
static int discard_on_media(kvt_store *s, int t, const uint32_t *slots, size_t n);

static void release_slots(kvt_store *s, int t, const uint32_t *slots, size_t n, int discard)
{
    kvt_tier_rt *tr = &s->tier[t];
    if (!n)
        return;
    /* Forgotten on media before anyone can take the slot and write it; a
     * slot that could not be is not taken again (discard_on_media). */
    if (discard && discard_on_media(s, t, slots, n))
        return;
    pthread_mutex_lock(&tr->lock);
    for (size_t i = 0; i < n; i++)
        tr->free_slots[tr->nfree++] = slots[i];
    pthread_mutex_unlock(&tr->lock);
}

static void release_slot(kvt_store *s, int t, uint32_t slot, int discard)
{
    release_slots(s, t, &slot, 1, discard);
}

/* Frees the entry when no tier holds or is filling it. Shard lock held. */
static int entry_unused(kvt_index *ix, kvt_shard *sh, uint32_t id)
{
    kvt_entry *e = kvt__index_entry(ix, id);
    if (kvt__entry_resident(e))
        return 0;
    if (e->flags & KVT_ENTRY_REMOVED) /* unlinked by the remove already */
        return !(e->flags & KVT_ENTRY_REMOVE_WAIT);
    kvt__index_unlink(ix, sh, id);
    return 1;
}

/* Invalidates slots of a persistent tier on media (nothing elsewhere).
 * When that fails the blocks may still be found on media after a restart:
 * the caller keeps the slots out of use (their old headers stay until the
 * next open), and the store counts the failure, which a remove in progress
 * reports (KVT_EIO). */
static int discard_on_media(kvt_store *s, int t, const uint32_t *slots, size_t n)
{
    kvt_tier_rt *tr = &s->tier[t];
    if (!n || !persistent(s, t) || !tr->ops->discard || !tr->ops->discard(tr->impl, slots, n))
        return 0;
    ADD(&tr->st, io_errors, 1);
    atomic_fetch_add(&s->discard_failures, 1);
    return KVT_EIO;
}

/* unref_read's `read` for a holder that did not read the copy. */
#define NOT_READ 1

/* Drops reader ref on tier t of entry id; the last reader of a zombie slot
 * frees it. `read` is what the holder found when it read the copy: 0 good,
 * KVT_ECORRUPT bad (both settle whether a put can trust it), other errors
 * or NOT_READ nothing. */
static void unref_read(kvt_store *s, uint32_t id, int t, int32_t read)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    uint32_t slot = KVT_NO_SLOT;
    int free_entry = 0, lost = 0;
    pthread_mutex_lock(&sh->lock);
    if (read == 0)
        e->untrusted &= (uint8_t)~(1u << t);
    else if (read == KVT_ECORRUPT)
        e->untrusted |= (uint8_t)(1u << t);
    if (--e->refs[t] == 0 && e->res[t] == KVT_RES_ZOMBIE) {
        slot = e->slot[t];
        if (persistent(s, t)) {
            /* Off the media before NONE: a remove that finds NONE relies on
             * it. A zombie without a slot is being freed (zombie_hold). */
            e->slot[t] = KVT_NO_SLOT;
            pthread_mutex_unlock(&sh->lock);
            if (discard_on_media(s, t, &slot, 1))
                lost = 1;
            pthread_mutex_lock(&sh->lock);
        }
        e->slot[t] = KVT_NO_SLOT;
        e->res[t] = KVT_RES_NONE;
        free_entry = entry_unused(&s->ix, sh, id);
    }
    pthread_mutex_unlock(&sh->lock);
    if (free_entry)
        kvt__index_free(&s->ix, id);
    if (slot != KVT_NO_SLOT && !lost)
        release_slot(s, t, slot, !persistent(s, t));
}

static void unref(kvt_store *s, uint32_t id, int t)
{
    unref_read(s, id, t, NOT_READ);
}

static void nap_briefly(void)
{
    struct timespec nap = {0, 100000};
    nanosleep(&nap, NULL);
}

/* Waiting for another thread's work to land: yield for the first rounds,
 * then nap, so a long wait does not spin a CPU the other thread needs. */
static void backoff(int round)
{
    if (round < 16)
        sched_yield();
    else
        nap_briefly();
}

/* A zombie copy's slot in tier t (readers still copying out of it, after it
 * left), held with a ref of our own so that it is not freed and reused
 * while we invalidate it; KVT_NO_SLOT if none. Shard lock held. */
static uint32_t zombie_hold(kvt_entry *e, int t)
{
    if (e->res[t] != KVT_RES_ZOMBIE || e->slot[t] == KVT_NO_SLOT)
        return KVT_NO_SLOT;
    e->refs[t]++;
    return e->slot[t];
}

/* Invalidates the zombie slots held by zombie_hold on media, then drops
 * the refs (the last reader frees the slot, as always). */
static void zombie_discard(kvt_store *s, uint32_t id, const uint32_t *zombie)
{
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        if (zombie[t] == KVT_NO_SLOT)
            continue;
        discard_on_media(s, t, &zombie[t], 1);
        unref(s, id, t);
    }
}


/* Copies a block between two tiers' slots: straight from host-addressable
 * slot memory when either side has it, else through a bounce buffer. */
static int copy_between(kvt_store *s, int from, uint32_t fslot, int to, uint32_t tslot,
                        const kvt_key *key)
{
    kvt_tier_rt *a = &s->tier[from], *b = &s->tier[to];
    if (a->ops->caps & KVT_TCAP_HOST_PTR) {
        void *src = a->ops->slot_ptr(a->impl, fslot);
        kvt_xfer x = {.slot = tslot, .nfrags = 1, .frags = &src, .key = *key};
        return b->ops->write(b->impl, &x, 1, KVT_MEM_HOST);
    }
    if (b->ops->caps & KVT_TCAP_HOST_PTR) {
        void *dst = b->ops->slot_ptr(b->impl, tslot);
        kvt_xfer x = {.slot = fslot, .nfrags = 1, .frags = &dst, .key = *key};
        return a->ops->read(a->impl, &x, 1, KVT_MEM_HOST);
    }
    void *bounce = NULL;
    if (kvt__posix_memalign(&bounce, 4096, s->block_bytes))
        return KVT_ENOMEM;
    kvt_xfer x = {.slot = fslot, .nfrags = 1, .frags = &bounce, .key = *key};
    int rc = a->ops->read(a->impl, &x, 1, KVT_MEM_HOST);
    if (rc == 0) {
        x.slot = tslot;
        rc = b->ops->write(b->impl, &x, 1, KVT_MEM_HOST);
    }
    kvt__free(bounce);
    return rc;
}

/* The slot in tier t of the block whose key hashes to `parent`, when it is
 * READY there, and its entry id. */
static uint32_t parent_slot(kvt_store *s, uint64_t parent, int t, uint32_t *pid)
{
    *pid = KVT_NO_ENTRY;
    if (!parent)
        return KVT_NO_SLOT;
    kvt_shard *sh = kvt__index_shard_of_hash(&s->ix, parent);
    uint32_t slot = KVT_NO_SLOT;
    pthread_mutex_lock(&sh->lock);
    uint32_t id = kvt__index_find_hash(&s->ix, sh, parent);
    if (id != KVT_NO_ENTRY) {
        kvt_entry *p = kvt__index_entry(&s->ix, id);
        if (p->res[t] == KVT_RES_READY) {
            slot = p->slot[t];
            *pid = id;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return slot;
}

static void unfill(kvt_store *s, uint32_t id, int t);

/* Makes a filled slot visible: first to the tier's policy and idle list,
 * then to readers. In that order, a block is never READY without being
 * known to the policy, so whoever turns it LEAVING can always remove it.
 * Returns 1, or 0 when the key was removed meanwhile: then the fill is
 * cancelled (its slot invalidated and freed) instead. */
static int publish(kvt_store *s, uint32_t id, int t, uint32_t slot, uint64_t now)
{
    KVT_KILLPOINT(KVT__KP_PUBLISH);
    kvt_tier_rt *tr = &s->tier[t];
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    uint64_t parent = e->parent;
    e->slot[t] = slot;
    pthread_mutex_unlock(&sh->lock);
    uint32_t pid;
    uint32_t pslot = parent_slot(s, parent, t, &pid);

    pthread_mutex_lock(&tr->lock);
    if (pslot != KVT_NO_SLOT && tr->slot_entry[pslot] != pid)
        pslot = KVT_NO_SLOT; /* moved on since we looked */
    tr->slot_entry[slot] = id;
    tr->pol->insert(tr->pst, slot, pslot, kvt__key_hash(&e->key));
    idle_push(tr, slot, now);
    pthread_mutex_unlock(&tr->lock);

    pthread_mutex_lock(&sh->lock);
    if (!(e->flags & KVT_ENTRY_REMOVED)) {
        e->res[t] = KVT_RES_READY;
        e->untrusted &= (uint8_t)~(1u << t); /* written and acknowledged just now */
        fill_end(s, e, t);
        pthread_mutex_unlock(&sh->lock);
        return 1;
    }
    pthread_mutex_unlock(&sh->lock);
    /* Removed while we filled: still FILLING, so unseen by readers. */
    pthread_mutex_lock(&tr->lock);
    if (tr->slot_entry[slot] == id)
        forget_slot(tr, slot);
    pthread_mutex_unlock(&tr->lock);
    int lost = discard_on_media(s, t, &slot, 1); /* before the remove's barrier lets it return */
    unfill(s, id, t);
    if (!lost)
        release_slot(s, t, slot, 0);
    CNT(&s->st, fills_cancelled);
    return 0;
}

/* Undoes a FILLING reservation that never got its bytes. */
static void unfill(kvt_store *s, uint32_t id, int t)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    fill_end(s, e, t);
    e->res[t] = KVT_RES_NONE;
    e->slot[t] = KVT_NO_SLOT;
    int free_entry = entry_unused(&s->ix, sh, id);
    pthread_mutex_unlock(&sh->lock);
    if (free_entry)
        kvt__index_free(&s->ix, id);
}

static uint32_t take_slot(kvt_store *s, int t, int wait);
static uint32_t take_slot_for(kvt_store *s, int t, int wait, uint32_t *pending);

static void demote_batch(kvt_store *s, int t, const uint32_t *ids, const uint32_t *from,
                         size_t k);

/* Entry id leaves tier t, where it was LEAVING at `slot` (already out of the
 * policy and idle list): demoted when asked and possible (already, when
 * `demote_it` is LEFT_DEMOTED: see demote_batch), then detached. Returns 1
 * when the slot is free for the caller, 0 when readers still hold it (the
 * last of them frees it). */
#define LEFT_DEMOTED 2
static int leave(kvt_store *s, uint32_t id, int t, uint32_t slot, int demote_it)
{
    kvt_tier_rt *tr = &s->tier[t];
    if (demote_it == 1 && tr->below >= 0)
        demote_batch(s, t, &id, &slot, 1);
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    int freed = e->refs[t] == 0;
    if (freed) {
        e->res[t] = KVT_RES_NONE;
        e->slot[t] = KVT_NO_SLOT;
    } else {
        e->res[t] = KVT_RES_ZOMBIE;
    }
    int gone = entry_unused(&s->ix, sh, id);
    pthread_mutex_unlock(&sh->lock);
    if (gone)
        kvt__index_free(&s->ix, id);
    if (!demote_it || tr->below < 0 || gone)
        CNT(&tr->st, dropped);
    return freed;
}

/* Up to this many victims are evicted, and demoted in one write to the tier
 * below, per round of take_slots. */
#define VICTIM_BATCH 64

/* Moves m prepared demotions of tier t's victims (entries id[], to slots
 * to[] of the tier below) in one batch and publishes those that arrived. */
static void demote_write(kvt_store *s, int t, kvt_xfer *x, const uint32_t *id,
                         const uint32_t *to, size_t m)
{
    int n = s->tier[t].below;
    kvt_tier_rt *a = &s->tier[t], *b = &s->tier[n];
    if (!m)
        return;
    if (a->ops->caps & KVT_TCAP_HOST_PTR)
        b->ops->write(b->impl, x, m, KVT_MEM_HOST);
    else if (b->ops->caps & KVT_TCAP_HOST_PTR)
        a->ops->read(a->impl, x, m, KVT_MEM_HOST);
    CNT(&b->st, demotion_writes);
    uint64_t now = kvt__store_now(s);
    for (size_t j = 0; j < m; j++) {
        if (x[j].status) {
            CNT(&b->st, io_errors);
            CNT(&a->st, dropped);
            release_slot(s, n, to[j], 1);
            unfill(s, id[j], n);
            continue;
        }
        if (!publish(s, id[j], n, to[j], now))
            continue;
        ADD(&b->st, bytes_in, s->block_bytes);
        CNT(&b->st, demotions_in);
    }
}

/* Copies k victims of tier t (entries ids, LEAVING at slots `from`) into
 * the tier below, each unless that tier already holds or is getting it, in
 * one batch: an NVMe tier has them all in flight together instead of one
 * synchronous write per eviction. */
static void demote_batch(kvt_store *s, int t, const uint32_t *ids, const uint32_t *from,
                         size_t k)
{
    int n = s->tier[t].below;
    kvt_tier_rt *a = &s->tier[t], *b = &s->tier[n];
    kvt_xfer x[VICTIM_BATCH];
    void *ptr[VICTIM_BATCH];
    uint32_t id[VICTIM_BATCH], to[VICTIM_BATCH];
    size_t m = 0;
    for (size_t j = 0; j < k; j++) {
        kvt_entry *e = kvt__index_entry(&s->ix, ids[j]);
        kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
        pthread_mutex_lock(&sh->lock);
        int go = e->res[n] == KVT_RES_NONE && !(e->flags & KVT_ENTRY_REMOVED);
        if (go) {
            e->res[n] = KVT_RES_FILLING;
            fill_begin(s, e, n);
        }
        pthread_mutex_unlock(&sh->lock);
        if (!go)
            continue;
        /* A batch larger than the tier below fills it with its own blocks,
         * which can't be evicted while in flight: write and publish those,
         * then ask again (as a put does). Waiting instead cost the full slot
         * wait per victim (found by the api fuzzer: 15 s for one call). */
        uint32_t slot = take_slot(s, n, m == 0);
        if (slot == KVT_NO_SLOT && m) {
            demote_write(s, t, x, id, to, m);
            m = 0;
            slot = take_slot(s, n, 1);
        }
        if (slot == KVT_NO_SLOT) {
            unfill(s, ids[j], n);
            CNT(&a->st, dropped);
            continue;
        }
        id[m] = ids[j];
        to[m] = slot;
        x[m] = (kvt_xfer){.nfrags = 1, .frags = &ptr[m], .key = e->key};
        if (a->ops->caps & KVT_TCAP_HOST_PTR) { /* write the lower tier from our slot */
            ptr[m] = a->ops->slot_ptr(a->impl, from[j]);
            x[m].slot = slot;
        } else if (b->ops->caps & KVT_TCAP_HOST_PTR) { /* read our slot into its slot */
            ptr[m] = b->ops->slot_ptr(b->impl, slot);
            x[m].slot = from[j];
        } else {
            /* Neither side addressable (no such pair of tiers today): one
             * bounced copy at a time. */
            x[m].status = copy_between(s, t, from[j], n, slot, &e->key) ? KVT_EIO : 0;
            ptr[m] = NULL;
        }
        m++;
    }
    demote_write(s, t, x, id, to, m);
}

/* Whether a block may be pushed out of tier t now. Shard lock held. */
static int evictable(kvt_store *s, kvt_entry *e, int t, uint64_t now)
{
    return e->res[t] == KVT_RES_READY && e->refs[t] == 0 && !pinned(s, e, now) &&
           !retained(s, e, now);
}

/* Marks entry id LEAVING tier t when it can go now (1), under its shard's
 * lock. Otherwise 0, or -1 when it is only busy for a moment: being read
 * or filled. */
static int claim_leaving(kvt_store *s, uint32_t id, int t, uint64_t now)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    int claim = 1;
    if (evictable(s, e, t, now))
        e->res[t] = KVT_RES_LEAVING;
    else
        claim = e->refs[t] || e->res[t] != KVT_RES_READY ? -1 : 0;
    pthread_mutex_unlock(&sh->lock);
    return claim;
}

/* A free slot of tier t, evicting (and demoting) a victim when the tier is
 * full, or KVT_NO_SLOT when every candidate is pinned or retained. Blocks
 * that are only busy for a moment (being read, or filled by another thread)
 * are waited for when `wait` is set, so a burst of concurrent puts does not
 * see a full tier that is merely in flight.
 * With `pending` (not NULL) and a tier that demotes its victims, a victim is
 * not demoted here: its slot is returned still LEAVING, its entry id in
 * *pending, for the caller to demote with others and then leave()
 * (settle_victims); *pending is KVT_NO_ENTRY when the slot was free. */
static uint32_t take_slot(kvt_store *s, int t, int wait)
{
    return take_slot_for(s, t, wait, NULL);
}

static uint32_t take_slot_for(kvt_store *s, int t, int wait, uint32_t *pending)
{
    if (pending)
        *pending = KVT_NO_ENTRY;
    kvt_tier_rt *tr = &s->tier[t];
    uint64_t deadline = 0; /* CLOCK_MONOTONIC ns; set when the first wait starts */
    for (int round = 0;; round++) {
        pthread_mutex_lock(&tr->lock);
        if (tr->nfree) {
            uint32_t slot = tr->free_slots[--tr->nfree];
            pthread_mutex_unlock(&tr->lock);
            return slot;
        }
        uint64_t now = kvt__store_now(s);
        uint32_t victim = KVT_NO_SLOT, id = KVT_NO_ENTRY;
        uint32_t tries = 0, busy = 0;
        for (; tries <= tr->nslots; tries++) {
            uint32_t v = tr->pol->victim(tr->pst);
            if (v == KVT_NO_SLOT)
                break;
            uint32_t vid = tr->slot_entry[v];
            int claim = claim_leaving(s, vid, t, now);
            if (claim < 0)
                busy++;
            if (claim <= 0) {
                tr->pol->skip(tr->pst, v);
                continue;
            }
            forget_slot(tr, v);
            victim = v;
            id = vid;
            break;
        }
        pthread_mutex_unlock(&tr->lock);
        if (victim == KVT_NO_SLOT) {
            /* Nothing in the policy at all means every slot is in flight. */
            int transient = busy || tries == 0;
            if (wait && transient) {
                /* The budget is elapsed time, not the sum of our naps: on a
                 * loaded machine a 50 us nap lasts far longer, and a thread
                 * that is descheduled or stopped keeps no count at all. Real
                 * time, not the store's clock: a virtual one need not move. */
                uint64_t real = kvt__monotonic_ns();
                if (!deadline)
                    deadline = real + MAX_SLOT_WAIT_NS;
                if (real < deadline) {
                    struct timespec nap = {0, round < 16 ? 0 : 50000};
                    if (nap.tv_nsec)
                        nanosleep(&nap, NULL);
                    else
                        sched_yield();
                    continue;
                }
            }
            CNT(&tr->st, full);
            return KVT_NO_SLOT;
        }
        CNT(&tr->st, evictions);
        int demoting = tr->victims == KVT_VICTIM_DEMOTE && tr->below >= 0;
        if (pending && demoting) {
            *pending = id;
            return victim;
        }
        if (leave(s, id, t, victim, tr->victims == KVT_VICTIM_DEMOTE))
            return victim;
        /* A reader still holds the victim's slot; it will free it. Go again. */
    }
}

/* ---------------------------------------------------------------- expiry */

static int expire_tier(kvt_store *s, int t, uint64_t now)
{
    kvt_tier_rt *tr = &s->tier[t];
    int n = 0;
    if (!tr->ttl_ns || now <= atomic_load_explicit(&tr->next_expiry, memory_order_acquire))
        return 0;
    int demote = tr->victims == KVT_VICTIM_DEMOTE && tr->below >= 0;
    /* Expired blocks leave in batches: one demotion write, and one batch of
     * discards on a persistent tier, per VICTIM_BATCH of them. */
    for (;;) {
        uint32_t ids[VICTIM_BATCH], slots[VICTIM_BATCH], freed[VICTIM_BATCH];
        size_t k = 0, f = 0;
        pthread_mutex_lock(&tr->lock);
        while (k < VICTIM_BATCH && tr->idle_head != KVT_NO_SLOT &&
               now - tr->idle_stamp[tr->idle_head] > tr->ttl_ns) {
            uint32_t v = tr->idle_head;
            uint32_t id = tr->slot_entry[v];
            if (claim_leaving(s, id, t, now) <= 0) {
                /* Pinned, retained or being read: its idle time starts again. */
                idle_remove(tr, v);
                idle_push(tr, v, now);
                continue;
            }
            forget_slot(tr, v);
            CNT(&tr->st, expirations);
            ids[k] = id;
            slots[k++] = v;
        }
        pthread_mutex_unlock(&tr->lock);
        if (!k)
            return n;
        n += (int)k;
        if (demote)
            demote_batch(s, t, ids, slots, k);
        int lost = discard_on_media(s, t, slots, k); /* before NONE ("fills and removes") */
        for (size_t j = 0; j < k; j++)
            if (leave(s, ids[j], t, slots[j], demote ? LEFT_DEMOTED : 0) && !lost)
                freed[f++] = slots[j];
        release_slots(s, t, freed, f, !persistent(s, t));
    }
}

/* Expiry before an operation. On a virtual clock (manual, or the caller's
 * own) it runs right here, so replays are exact. On the real clock it is
 * the workers' job, every REAP interval: a lookup must not wait for the
 * demotion writes of blocks that happened to expire just before it. */
static void expire_due(kvt_store *s)
{
    if (s->manual_clock || s->clock)
        kvt__store_expire(s);
}

int kvt__store_expire(kvt_store *s)
{
    uint64_t now = kvt__store_now(s);
    int n = 0;
    for (int t = 0; t < KVT_TIER_COUNT; t++)
        if (s->tier[t].on)
            n += expire_tier(s, t, now);
    return n;
}

/* ---------------------------------------------------------------- lookup */

int kvt__store_lookup(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers,
                      uint32_t lease_ms)
{
    expire_due(s);
    uint64_t now = kvt__store_now(s);
    uint32_t deadline = rel_ms(s, now) + lease_ms;
    size_t h = 0;
    CNT(&s->st, lookups);
    ADD(&s->st, lookup_blocks, n);
    for (size_t i = 0; i < n && i < 16; i++)
        kvt__index_prefetch(&s->ix, &keys[i]);
    for (size_t i = 0; i < n && i < 8; i++)
        kvt__index_prefetch_entry(&s->ix, &keys[i]);
    for (; h < n; h++) {
        if (h + 16 < n)
            kvt__index_prefetch(&s->ix, &keys[h + 16]);
        if (h + 8 < n)
            kvt__index_prefetch_entry(&s->ix, &keys[h + 8]);
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[h]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[h]);
        int t = -1;
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            t = fastest(e);
            if (t >= 0 && lease_ms) {
                if (!pinned(s, e, now) || (int32_t)(deadline - e->pin_deadline_ms) > 0)
                    e->pin_deadline_ms = deadline;
                if (e->pins < UINT16_MAX)
                    e->pins++;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        if (t < 0)
            break;
        if (tiers)
            tiers[h] = (uint8_t)t;
    }
    if (tiers)
        for (size_t i = h; i < n; i++)
            tiers[i] = KVT_TIER_NONE;
    ADD(&s->st, lookup_hit_blocks, h);
    if (lease_ms)
        ADD(&s->st, pins, h);
    return (int)h;
}

/* kvt_lookup's walk without the stop at the first miss, and without pins:
 * what SGLang's batch_exists_v2 asks of a model whose trailing pages (Mamba,
 * SWA) are stored apart from the prefix. Removed entries are unlinked and
 * tombstones have no readable residency: fastest() says -1 for both. */
int kvt__store_contains(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers)
{
    expire_due(s);
    size_t h = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        kvt__index_prefetch(&s->ix, &keys[i]);
    for (size_t i = 0; i < n && i < 8; i++)
        kvt__index_prefetch_entry(&s->ix, &keys[i]);
    for (size_t i = 0; i < n; i++) {
        if (i + 16 < n)
            kvt__index_prefetch(&s->ix, &keys[i + 16]);
        if (i + 8 < n)
            kvt__index_prefetch_entry(&s->ix, &keys[i + 8]);
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        int t = id == KVT_NO_ENTRY ? -1 : fastest(kvt__index_entry(&s->ix, id));
        pthread_mutex_unlock(&sh->lock);
        if (t >= 0)
            h++;
        if (tiers)
            tiers[i] = t < 0 ? KVT_TIER_NONE : (uint8_t)t;
    }
    return (int)h;
}

int kvt__store_pin(kvt_store *s, const kvt_key *keys, size_t n, uint32_t lease_ms)
{
    expire_due(s);
    /* All or nothing: pin as we go, and undo on the first absent key. */
    int h = kvt__store_lookup(s, keys, n, NULL, lease_ms);
    if (h < 0 || (size_t)h == n)
        return h;
    kvt__store_release(s, keys, (size_t)h, NULL);
    char hex[33];
    kvt_key_hex(&keys[h], hex);
    return kvt__err(KVT_ENOENT, "kvt_pin: key %d (%s) is not held; nothing pinned", h, hex);
}

int kvt__store_release(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status)
{
    uint64_t now = kvt__store_now(s);
    int released = 0;
    for (size_t i = 0; i < n; i++) {
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        int ok = 0;
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            if (pinned(s, e, now)) {
                e->pins--;
                ok = 1;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        released += ok;
        if (status)
            status[i] = ok ? 0 : KVT_ENOTPINNED;
    }
    return released;
}

/* -------------------------------------------------------------- put, get */

static void frag_ptrs(const kvt_store *s, void *const *ptrs, size_t i, kvt_xfer *x)
{
    x->nfrags = s->frags;
    x->frags = ptrs + i * s->frags;
}

static int32_t xfer_code(int32_t status, int fallback)
{
    return status ? status : fallback;
}

/* Bumps recency and idle time of blocks just read from tier t. */
static void touch_all(kvt_store *s, int t, const uint32_t *ids, const uint32_t *slots,
                      size_t n, uint64_t now)
{
    kvt_tier_rt *tr = &s->tier[t];
    pthread_mutex_lock(&tr->lock);
    for (size_t i = 0; i < n; i++) {
        if (tr->slot_entry[slots[i]] != ids[i])
            continue; /* left the policy meanwhile */
        tr->pol->touch(tr->pst, slots[i]);
        if (tr->ttl_ns) {
            idle_remove(tr, slots[i]);
            idle_push(tr, slots[i], now);
        }
    }
    pthread_mutex_unlock(&tr->lock);
}

typedef struct put_item {
    uint32_t id;
    uint32_t slot;
    uint32_t victim; /* entry still LEAVING `slot`, to demote first, or KVT_NO_ENTRY */
    size_t index;    /* in the caller's arrays */
} put_item;

static void drop_corrupt(kvt_store *s, uint32_t id, int t, uint32_t slot);

/* Whether entry e holds a copy a put can take for the block: a readable one
 * not marked untrusted (1), or one another put is still filling in tier p
 * (HELD_WHEN_FILLED). Shard lock held. */
#define HELD_WHEN_FILLED 2
static int held_for_put(const kvt_entry *e, int p)
{
    for (int t = 0; t < KVT_TIER_COUNT; t++)
        if (readable(e, t) && !(e->untrusted & (1u << t)))
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
    unref_read(s, id, t, st);
    if (st == KVT_ECORRUPT) {
        CNT(&tr->st, corrupt);
        drop_corrupt(s, id, t, slot);
    } else if (st && st != KVT_ENOMEM) {
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
/* reserve's *code for a put issued before a remove of the key: not stored,
 * and reported as stored then removed (kvtier.h, kvt_remove). */
#define PUT_CANCELLED 1
/* reserve's *code for a key another put is still writing: this put may
 * only count it once that write has landed (kvt__store_put waits for it
 * after its own blocks, which may be that other write, are done). */
#define PUT_PENDING 2

static uint32_t reserve(kvt_store *s, const kvt_key *key, uint64_t parent, int p,
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
        fill_begin(s, e, p);
        pthread_mutex_unlock(&sh->lock);
        return id;
    }
    if (id != KVT_NO_ENTRY) {
        kvt_entry *e = kvt__index_entry(&s->ix, id);
        int held = held_for_put(e, p);
        for (int t = 0; !held && t < KVT_TIER_COUNT; t++) {
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
            fill_begin(s, e, p);
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
            uint32_t zombie[KVT_TIER_COUNT];
            int busy = 0;
            for (int t = 0; t < KVT_TIER_COUNT; t++)
                busy |= persistent(s, t) &&
                        (e->res[t] == KVT_RES_LEAVING ||
                         (e->res[t] == KVT_RES_ZOMBIE && e->slot[t] == KVT_NO_SLOT));
            if (busy) {
                pthread_mutex_unlock(&sh->lock);
                nap_briefly();
                goto again;
            }
            for (int t = 0; t < KVT_TIER_COUNT; t++)
                zombie[t] = persistent(s, t) ? zombie_hold(e, t) : KVT_NO_SLOT;
            e->flags |= KVT_ENTRY_REMOVED;
            kvt__index_unlink(&s->ix, sh, id);
            pthread_mutex_unlock(&sh->lock);
            zombie_discard(s, id, zombie);
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
        fill_begin(s, e, p);
        kvt__index_link(&s->ix, sh, fresh);
    }
    pthread_mutex_unlock(&sh->lock);
    if (id != KVT_NO_ENTRY) { /* another thread stored it (or removed it) meanwhile */
        kvt__index_free(&s->ix, fresh);
        goto again;
    }
    return fresh;
}

/* Queues write-through copies of a freshly put block to the tiers below
 * that admit on put. The source slot is held by a ref until copied. */
static void write_through(kvt_store *s, uint32_t id, int p)
{
    for (int d = s->tier[p].below; d >= 0; d = s->tier[d].below) {
        if (s->tier[d].admit != KVT_ADMIT_WRITE_THROUGH)
            continue;
        kvt_entry *e = kvt__index_entry(&s->ix, id);
        kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
        pthread_mutex_lock(&sh->lock);
        int go = e->res[d] == KVT_RES_NONE && readable(e, p) && !(e->flags & KVT_ENTRY_REMOVED);
        if (go) {
            e->res[d] = KVT_RES_FILLING;
            e->queued |= (uint8_t)(1u << d); /* counted as a fill when it starts */
            e->refs[p]++;
        }
        pthread_mutex_unlock(&sh->lock);
        if (go && kvt__workers_background(s->workers, id, p, d) != 0) {
            /* Not queued after all. A flush may have taken the copy over
             * meanwhile (down_claim): then it is the flush's to finish. */
            pthread_mutex_lock(&sh->lock);
            int free_entry = 0;
            if (e->queued & (1u << d)) {
                e->queued &= (uint8_t)~(1u << d);
                e->res[d] = KVT_RES_NONE;
                e->slot[d] = KVT_NO_SLOT;
                free_entry = entry_unused(&s->ix, sh, id);
                CNT(&s->st, writethrough_dropped);
            } else {
                e->queued &= (uint8_t)~(1u << (KVT_QUEUED_TAKEN_SHIFT + d));
            }
            pthread_mutex_unlock(&sh->lock);
            if (free_entry)
                kvt__index_free(&s->ix, id);
            unref(s, id, p);
        }
    }
}

void kvt__store_writethrough(kvt_store *s, uint32_t id, int src, int dst)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    if (!(e->queued & (1u << dst))) {
        /* A flush took this copy over (down_claim): ours only to drop our ref. */
        e->queued &= (uint8_t)~(1u << (KVT_QUEUED_TAKEN_SHIFT + dst));
        pthread_mutex_unlock(&sh->lock);
        unref(s, id, src);
        return;
    }
    if (e->flags & KVT_ENTRY_REMOVED) { /* nothing written yet: nothing to undo on media */
        pthread_mutex_unlock(&sh->lock);
        unfill(s, id, dst); /* still queued: never counted as a fill */
        unref(s, id, src);
        CNT(&s->st, fills_cancelled);
        return;
    }
    e->queued &= (uint8_t)~(1u << dst);
    fill_begin(s, e, dst);
    uint32_t from = e->slot[src];
    kvt_key key = e->key;
    pthread_mutex_unlock(&sh->lock);
    uint32_t slot = take_slot(s, dst, 1);
    if (slot == KVT_NO_SLOT) {
        unfill(s, id, dst);
        CNT(&s->st, writethrough_dropped);
    } else if (copy_between(s, src, from, dst, slot, &key)) {
        CNT(&s->tier[dst].st, io_errors);
        release_slot(s, dst, slot, 1);
        unfill(s, id, dst);
    } else if (publish(s, id, dst, slot, kvt__store_now(s))) {
        CNT(&s->tier[dst].st, writethrough_in);
        ADD(&s->tier[dst].st, bytes_in, s->block_bytes);
    }
    unref(s, id, src);
}

/* The victims of a run of a put's items, demoted in one batch (one write
 * to the tier below for up to VICTIM_BATCH of them, where one at a time made
 * demotion a fifth of the NVMe tier's speed) on the store's demotion
 * thread while the put copies its previous run, or on the put's thread. */
typedef struct demotion {
    kvt__job job;
    kvt_store *s;
    int tier;
    size_t k, start, end; /* victims; the items [start, end) they make room for */
    uint32_t ids[VICTIM_BATCH], slots[VICTIM_BATCH];
    sem_t done; /* posted by the demotion thread */
    int posted;
} demotion;

static void demotion_run(kvt__job *job)
{
    demotion *d = (demotion *)job;
    demote_batch(d->s, d->tier, d->ids, d->slots, d->k);
}

static void demotion_thread_run(kvt__job *job)
{
    demotion_run(job);
    sem_post(&((demotion *)job)->done);
}

/* Starts demoting the victims of items [start, end): on the demotion thread
 * when the store has one, else here and now. */
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
    /* Only a host tier's victims go to the thread: a device tier's copies
     * belong on the thread that set up its device. */
    d->posted = d->k && s->demoter && (s->tier[p].ops->caps & KVT_TCAP_HOST_PTR) &&
                sem_init(&d->done, 0, 0) == 0;
    if (d->posted) {
        d->job.fn = demotion_thread_run;
        kvt__jobpool_post(s->demoter, &d->job);
    } else if (d->k) {
        demotion_run(&d->job);
    }
}

/* Waits for d's demotion (running it here if the thread has not taken it
 * yet: it may be busy with another put's). */
static void demotion_wait(kvt_store *s, demotion *d)
{
    if (!d->posted)
        return;
    d->posted = 0;
    if (kvt__jobpool_cancel(s->demoter, &d->job))
        demotion_run(&d->job);
    else
        while (sem_wait(&d->done) && errno == EINTR)
            ;
    sem_destroy(&d->done);
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
            if (!leave(s, v, p, it.slot, LEFT_DEMOTED)) {
                it.slot = take_slot(s, p, 1);
                if (it.slot == KVT_NO_SLOT) {
                    unfill(s, it.id, p);
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
    kvt__cuda_tier_write(tr->ops, tr->impl, x, m, mem, s->block_bytes);
    uint64_t after = kvt__store_now(s);
    for (size_t j = 0; j < m; j++) {
        if (x[j].status) {
            CNT(&tr->st, io_errors);
            if (!promoting)
                CNT(&s->st, put_rejected);
            release_slot(s, p, items[j].slot, 1);
            unfill(s, items[j].id, p);
            if (status)
                status[items[j].index] = x[j].status;
            continue;
        }
        stored++; /* a put cancelled by a remove counts as stored, then removed */
        if (!publish(s, items[j].id, p, items[j].slot, after)) {
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
        write_through(s, items[j].id, p);
    }
    return stored;
}

/* A put's items in runs: each run's victims are demoted while the put
 * copies the previous run into the slots its victims left, so the copies
 * and the tier below's writes overlap (docs/architecture.md). */
typedef struct put_runs {
    kvt_store *s;
    int p;
    put_item *items;
    kvt_xfer *x;
    kvt_mem_kind mem;
    int32_t *status;
    int promoting;    /* a get's promotion, not a put */
    size_t per_run;   /* victims that close a run */
    size_t m;         /* items gathered */
    size_t start;     /* first item of the run being gathered */
    size_t victims;   /* in it so far */
    demotion d[2];    /* the run being demoted, and the one before it */
    int cur;          /* d[cur] is the last run started */
    int have_prev;    /* d[!cur] still to settle and copy */
    int stored;
} put_runs;

static void run_finish(put_runs *r, demotion *d)
{
    demotion_wait(r->s, d);
    size_t m = settle_victims(r->s, r->p, r->items + d->start, r->x + d->start,
                              d->end - d->start, r->status, r->promoting);
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
static void run_drain(put_runs *r)
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
static int run_add(put_runs *r, uint32_t id, size_t index, const kvt_key *key,
                   void *const *ptrs)
{
    uint32_t victim;
    uint32_t slot = take_slot_for(r->s, r->p, r->m == 0, &victim);
    if (slot == KVT_NO_SLOT && r->m) {
        run_drain(r);
        slot = take_slot_for(r->s, r->p, 1, &victim);
    }
    if (slot == KVT_NO_SLOT)
        return KVT_EFULL;
    r->items[r->m] = (put_item){.id = id, .slot = slot, .victim = victim, .index = index};
    r->x[r->m] = (kvt_xfer){.slot = slot, .key = *key};
    frag_ptrs(r->s, ptrs, index, &r->x[r->m]);
    r->m++;
    if (victim != KVT_NO_ENTRY && ++r->victims == r->per_run)
        run_close(r);
    return 0;
}

/* Two runs in flight take up to twice this many slots: half the tier. */
static size_t victims_per_run(const kvt_store *s, int p)
{
    uint32_t half = s->tier[p].nslots / 2;
    return half < 1 ? 1 : half < VICTIM_BATCH ? half : VICTIM_BATCH;
}

/* KVT_IO_DURABLE: the blocks a put stored, written down and flushed; one
 * that could not be (removed or evicted meanwhile, no room, I/O error) gets
 * that code instead of 0 and does not count. */
static int make_durable(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status, int stored)
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
    expire_due(s);
    uint64_t now = kvt__store_now(s);
    int p = s->put_tier;
    int durable = o && (o->flags & KVT_IO_DURABLE);
    int32_t *status = o ? o->status : NULL;
    kvt_mem_kind mem = o ? (kvt_mem_kind)o->mem_kind : KVT_MEM_HOST;
    uint32_t retain_until = o && o->retain_s ? rel_s(s, now) + o->retain_s : 0;
    put_item *items = kvt__malloc(n * sizeof *items);
    kvt_xfer *x = kvt__calloc(n, sizeof *x);
    int32_t *own = durable && !status ? kvt__malloc(n * sizeof *own) : NULL;
    size_t *pending = kvt__malloc(n * sizeof *pending), npending = 0;
    if (!items || !x || !pending || (durable && !status && !own)) {
        kvt__free(items);
        kvt__free(x);
        kvt__free(own);
        kvt__free(pending);
        return kvt__err(KVT_ENOMEM, "kvt_put: %zu blocks", n);
    }
    if (own)
        status = own; /* a durable put needs each block's outcome */
    ADD(&s->st, put_blocks, n);

    put_runs r = {.s = s, .p = p, .items = items, .x = x, .mem = mem, .status = status,
                  .per_run = victims_per_run(s, p)};
    uint64_t parent = o && o->parent ? kvt__key_hash(o->parent) : 0;
    for (size_t i = 0; i < n; i++) {
        int code;
        uint32_t id = reserve(s, &keys[i], parent, p, retain_until, seq, &code);
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
        if (run_add(&r, id, i, &keys[i], ptrs)) {
            unfill(s, id, p);
            if (status)
                status[i] = KVT_EFULL;
            CNT(&s->st, put_rejected);
        }
    }
    run_drain(&r);
    /* Keys another put was writing: once that write has landed (or failed),
     * they are held, or this put stores them itself. */
    for (size_t j = 0; j < npending; j++) {
        size_t i = pending[j];
        uint64_t up = i ? kvt__key_hash(&keys[i - 1]) : o && o->parent ? kvt__key_hash(o->parent) : 0;
        for (int round = 0;; round++) {
            int code;
            uint32_t id = reserve(s, &keys[i], up, p, retain_until, seq, &code);
            if (status)
                status[i] = code > 0 ? 0 : code;
            if (id != KVT_NO_ENTRY) {
                if (run_add(&r, id, i, &keys[i], ptrs)) {
                    unfill(s, id, p);
                    if (status)
                        status[i] = KVT_EFULL;
                    CNT(&s->st, put_rejected);
                }
                run_drain(&r);
            } else if (code == PUT_PENDING) {
                backoff(round);
                continue;
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
    int stored = durable ? make_durable(s, keys, n, status, r.stored) : r.stored;
    kvt__free(own);
    return stored;
}

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
                  .per_run = victims_per_run(s, u)};
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
            fill_begin(s, e, u);
        }
        pthread_mutex_unlock(&sh->lock);
        if (!go)
            continue;
        if (run_add(&r, g[j].id, g[j].index, key, ptrs))
            unfill(s, g[j].id, u);
    }
    run_drain(&r);
    kvt__free(items);
    kvt__free(x);
}

/* A block that failed verification leaves that tier for good. */
static void drop_corrupt(kvt_store *s, uint32_t id, int t, uint32_t slot)
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
        forget_slot(tr, slot);
    }
    pthread_mutex_unlock(&tr->lock);
    int lost = discard_on_media(s, t, &slot, 1); /* before NONE ("fills and removes") */
    if (leave(s, id, t, slot, 0) && !lost)
        release_slot(s, t, slot, !persistent(s, t));
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
    expire_due(s);
    int32_t *status = o ? o->status : NULL;
    kvt_mem_kind mem = o ? (kvt_mem_kind)o->mem_kind : KVT_MEM_HOST;
    int no_promote = o && (o->flags & KVT_IO_NO_PROMOTE);
    get_item *g = kvt__malloc(n * sizeof *g), *up = kvt__malloc(n * sizeof *up);
    kvt_xfer *x = kvt__calloc(n, sizeof *x);
    uint32_t *ids = kvt__malloc(n * sizeof *ids), *slots = kvt__malloc(n * sizeof *slots);
    if (!g || !up || !x || !ids || !slots) {
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
        int t = -1;
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            t = fastest(e);
            if (t >= 0) {
                e->refs[t]++;
                if (e->hits < UINT16_MAX)
                    e->hits++;
                g[m] = (get_item){.id = id, .slot = e->slot[t], .tier = t, .index = i};
            }
        }
        pthread_mutex_unlock(&sh->lock);
        if (status)
            status[i] = t < 0 ? KVT_ENOENT : 0;
        if (t >= 0)
            m++;
    }

    int copied = 0;
    size_t promoted = 0;
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        kvt_tier_rt *tr = &s->tier[t];
        size_t k = 0;
        for (size_t j = 0; j < m; j++) {
            if (g[j].tier != t)
                continue;
            x[k] = (kvt_xfer){.slot = g[j].slot, .key = keys[g[j].index]};
            frag_ptrs(s, ptrs, g[j].index, &x[k]);
            ids[k] = g[j].id;
            slots[k] = g[j].slot;
            k++;
        }
        if (!k)
            continue;
        kvt__cuda_tier_read(tr->ops, tr->impl, x, k, mem, s->block_bytes);
        touch_all(s, t, ids, slots, k, kvt__store_now(s));
        size_t c = 0;
        for (size_t j = 0; j < m; j++) {
            if (g[j].tier != t)
                continue;
            int32_t st = x[c++].status;
            if (st == KVT_ECORRUPT && leaving(s, g[j].id, t))
                st = KVT_ENOENT; /* invalidated on media as it left: a miss */
            unref_read(s, g[j].id, t, st == KVT_ENOENT ? NOT_READ : st);
            if (st) {
                if (st == KVT_ECORRUPT) {
                    CNT(&tr->st, corrupt);
                    drop_corrupt(s, g[j].id, t, g[j].slot);
                } else if (st != KVT_ENOENT) {
                    CNT(&tr->st, io_errors);
                }
                if (status)
                    status[g[j].index] = xfer_code(st, KVT_EIO);
                g[j].tier = -1; /* not promoted */
                continue;
            }
            CNT(&tr->st, hits);
            ADD(&tr->st, bytes_out, s->block_bytes);
            copied++;
            if (!no_promote && t > s->top_tier)
                up[promoted++] = g[j];
        }
    }
    if (promoted)
        promote(s, up, promoted, keys, ptrs, mem);
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
    expire_due(s);
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
            int t = fastest(e);
            if (t >= 0) {
                if (e->hits < UINT16_MAX)
                    e->hits++;
                g[m++] = (get_item){.id = id, .slot = e->slot[t], .tier = t, .index = i};
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
    uint64_t now = kvt__store_now(s);
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        size_t k = 0;
        for (size_t j = 0; j < m; j++) {
            if (g[j].tier != t)
                continue;
            ids[k] = g[j].id;
            slots[k++] = g[j].slot;
        }
        if (k)
            touch_all(s, t, ids, slots, k, now);
    }
    kvt__free(g);
    kvt__free(ids);
    kvt__free(slots);
    return (int)m;
}

/* ---------------------------------------------------------------- remove
 *
 * Puts carry the number of removes begun before they were issued (their
 * seq); a remove that finds puts in progress leaves a tombstone entry for
 * each of its keys, carrying its own seq, so that those puts, which may not
 * have reached the key yet, find it and skip it (reserve). Tombstones go
 * once no put older than them is in progress (tomb_gc). */

typedef struct kvt__pending {
    uint64_t seq;
    uint64_t count;
} kvt__pending;

typedef struct kvt__tomb {
    uint32_t id;
    uint64_t seq;
    kvt_key key;
} kvt__tomb;

/* Tombstones at most; a remove that would leave more waits for older puts. */
#define TOMB_CAP 4096

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
    uint32_t id[KVT_TIER_COUNT][REMOVE_BATCH];
    uint32_t slot[KVT_TIER_COUNT][REMOVE_BATCH];
    size_t n[KVT_TIER_COUNT];
} leaving_batch;

static void leaving_flush(kvt_store *s, leaving_batch *b, int t);

static void leaving_flush_all(kvt_store *s, leaving_batch *b)
{
    for (int t = 0; t < KVT_TIER_COUNT; t++)
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
        nap_briefly();
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
        pthread_mutex_lock(&s->rm_lock);
        tomb_gc(s);
        pthread_mutex_unlock(&s->rm_lock);
        nap_briefly();
    }
}

static void leaving_flush(kvt_store *s, leaving_batch *b, int t)
{
    kvt_tier_rt *tr = &s->tier[t];
    uint32_t freed[REMOVE_BATCH];
    size_t f = 0;
    pthread_mutex_lock(&tr->lock);
    for (size_t j = 0; j < b->n[t]; j++)
        forget_slot(tr, b->slot[t][j]);
    pthread_mutex_unlock(&tr->lock);
    int lost = discard_on_media(s, t, b->slot[t], b->n[t]); /* before NONE ("fills and removes") */
    for (size_t j = 0; j < b->n[t]; j++)
        if (leave(s, b->id[t][j], t, b->slot[t][j], 0) && !lost)
            freed[f++] = b->slot[t][j];
    release_slots(s, t, freed, f, 0);
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
        uint32_t zombie[KVT_TIER_COUNT];
        int busy = 0;
        pthread_mutex_lock(&sh->lock);
        for (int t = 0; t < KVT_TIER_COUNT; t++) /* leaving, or its last reader freeing it */
            busy |= waits[t] && (e->res[t] == KVT_RES_LEAVING ||
                                 (e->res[t] == KVT_RES_ZOMBIE && e->slot[t] == KVT_NO_SLOT));
        int free_entry = 0;
        if (!busy) {
            for (int t = 0; t < KVT_TIER_COUNT; t++)
                zombie[t] = waits[t] ? zombie_hold(e, t) : KVT_NO_SLOT;
            e->flags &= (uint8_t)~KVT_ENTRY_REMOVE_WAIT;
            free_entry = !kvt__entry_resident(e);
        }
        pthread_mutex_unlock(&sh->lock);
        if (!busy) {
            zombie_discard(s, id, zombie);
            if (free_entry)
                kvt__index_free(&s->ix, id);
            return;
        }
        backoff(round);
    }
}

int kvt__store_remove(kvt_store *s, const kvt_key *keys, size_t n)
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
        uint32_t tomb = KVT_NO_ENTRY, zombie[KVT_TIER_COUNT], slot[KVT_TIER_COUNT];
        int mine[KVT_TIER_COUNT] = {0}, waits[KVT_TIER_COUNT] = {0}, any = 0, wait = 0;
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
            for (int t = 0; t < KVT_TIER_COUNT; t++) {
                zombie[t] = KVT_NO_SLOT;
                if (e->res[t] == KVT_RES_READY) { /* ours to take out */
                    e->res[t] = KVT_RES_LEAVING;
                    slot[t] = e->slot[t];
                    mine[t] = any = 1;
                } else if (e->res[t] == KVT_RES_LEAVING) { /* another thread's */
                    any = 1;
                    waits[t] = persistent(s, t);
                    wait |= waits[t];
                } else if (persistent(s, t) && e->res[t] == KVT_RES_ZOMBIE) {
                    zombie[t] = zombie_hold(e, t);
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
        zombie_discard(s, id, zombie); /* readers hold them: not reused before they finish */
        for (int t = 0; t < KVT_TIER_COUNT; t++) {
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
    remove_barrier(s);
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

/* ----------------------------------------------------------------- flush
 *
 * Writing blocks down to the persistent tier (durable_tier) where they are
 * held only above it: kvt_flush, KVT_IO_DURABLE puts, and kvt_close. A copy
 * down is a fill of that tier like a write-through copy, taken from the
 * block's fastest copy (a ref held on it), in batches of one tier write. */

typedef struct down_item {
    uint32_t id;
    int src;
    uint32_t from;
    size_t index; /* in the caller's keys, or SIZE_MAX */
    kvt_key key;
} down_item;

/* Blocks per tier write. Small blocks need large batches: the device idles
 * while a batch's last writes drain, before the next batch starts. */
#define DOWN_BATCH 512

/* A write-down batch: the claimed items and what their one tier write
 * needs (on the heap: 50 KiB). */
typedef struct down_work {
    down_item it[DOWN_BATCH];
    kvt_xfer x[DOWN_BATCH];
    void *ptr[DOWN_BATCH];
    uint32_t to[DOWN_BATCH];
    int32_t st[DOWN_BATCH];
    size_t at[DOWN_BATCH];
} down_work;

enum { DOWN_DONE, DOWN_WAIT, DOWN_COPY, DOWN_MISSING };

/* What writing entry e down to tier d needs; on DOWN_COPY, e is FILLING in
 * d and *src has a ref taken for the copy. Shard lock held. */
static int down_claim(kvt_store *s, kvt_entry *e, int d, int *src)
{
    if (d < 0 || d >= KVT_TIER_COUNT || (e->flags & (KVT_ENTRY_REMOVED | KVT_ENTRY_TOMB)))
        return DOWN_MISSING;
    if (e->res[d] == KVT_RES_READY)
        return DOWN_DONE;
    if (e->res[d] == KVT_RES_LEAVING)
        return DOWN_WAIT; /* leaving there (expiry, eviction): write it down anew after */
    int t = fastest(e);
    if (e->res[d] == KVT_RES_FILLING && (e->queued & (1u << d)) && t >= 0) {
        /* A write-through copy no thread has started: ours now. Its job
         * still holds its ref (the entry can't go while it is queued) and
         * only drops it when it runs (kvt__store_writethrough). */
        e->queued &= (uint8_t)~(1u << d);
        e->queued |= (uint8_t)(1u << (KVT_QUEUED_TAKEN_SHIFT + d));
        fill_begin(s, e, d);
        e->refs[t]++;
        *src = t;
        return DOWN_COPY;
    }
    if (e->res[d] != KVT_RES_NONE)
        return DOWN_WAIT; /* being written there, or its old slot still read */
    if (t < 0)
        return DOWN_MISSING;
    e->res[d] = KVT_RES_FILLING;
    fill_begin(s, e, d);
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
        to[j] = take_slot(s, d, 1);
        st[j] = to[j] == KVT_NO_SLOT ? KVT_EFULL : 0;
        if (st[j])
            continue;
        if (sr->ops->caps & KVT_TCAP_HOST_PTR) {
            ptr[m] = sr->ops->slot_ptr(sr->impl, it[j].from);
            x[m] = (kvt_xfer){.slot = to[j], .nfrags = 1, .frags = &ptr[m], .key = it[j].key};
            at[m++] = j;
        } else {
            st[j] = copy_between(s, it[j].src, it[j].from, d, to[j], &it[j].key) ? KVT_EIO : 0;
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
                release_slot(s, d, to[j], 1);
            }
            unfill(s, it[j].id, d);
        } else if (!publish(s, it[j].id, d, to[j], now)) {
            st[j] = KVT_ENOENT; /* removed meanwhile */
        } else {
            landed++;
            CNT(&s->st, flush_written);
            ADD(&dr->st, bytes_in, s->block_bytes);
        }
        unref(s, it[j].id, it[j].src);
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
                if (late && !readable(e, d) && !(e->flags & KVT_ENTRY_REMOVED))
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
        remove_barrier(s); /* and what others were writing there: landed too */
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
                backoff(round);
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

/* ----------------------------------------------------------------- stats */

/* Passes a tier's own statistics on to the caller, counting them. */
typedef struct stat_counter {
    kvt_stat_fn fn;
    void *user;
    int count;
} stat_counter;

static void count_stat(const char *name, uint64_t value, void *user)
{
    stat_counter *c = user;
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
    fn("tickets_pending", kvt__workers_pending(s->workers), user);
    fn("index_capacity", s->ix.capacity, user);
    fn("key_mode", s->cfg.key_mode, user);
    count += 3;
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
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
            stat_counter c = {.fn = fn, .user = user};
            tr->ops->stats(tr->impl, count_stat, &c);
            count += c.count;
        }
    }
    return count;
}

/* ------------------------------------------------------------ open/close */

static const kvt_tier_ops *tier_ops(int t)
{
    switch (t) {
    case KVT_TIER_DRAM:
        return &kvt__tier_dram;
#if KVT_HAVE_URING
    case KVT_TIER_NVME:
        return &kvt__tier_nvme;
#endif
#if KVT_HAVE_CUDA
    case KVT_TIER_HBM:
        return &kvt__tier_hbm;
#endif
    }
    return NULL;
}

static int recovered(void *user, uint32_t slot, const kvt_key *key)
{
    kvt_store *s = user;
    kvt_tier_rt *tr = &s->tier[KVT_TIER_NVME];
    kvt_shard *sh = kvt__index_shard(&s->ix, key);
    if (slot >= tr->nslots || kvt__index_find(&s->ix, sh, key) != KVT_NO_ENTRY)
        return 1; /* a stale twin of a block already found */
    uint32_t id = kvt__index_alloc(&s->ix, key);
    if (id == KVT_NO_ENTRY)
        return 1;
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    e->slot[KVT_TIER_NVME] = slot;
    e->res[KVT_TIER_NVME] = KVT_RES_READY;
    /* Recovery checks headers only: the payload is verified when first read. */
    e->untrusted = 1u << KVT_TIER_NVME;
    kvt__index_link(&s->ix, sh, id);
    tr->slot_entry[slot] = id;
    tr->pol->insert(tr->pst, slot, KVT_NO_SLOT, kvt__key_hash(key));
    idle_push(tr, slot, kvt__store_now(s));
    return 0;
}

static int open_tier(kvt_store *s, int t, void *region, size_t region_bytes)
{
    if (t < 0 || t >= KVT_TIER_COUNT)
        return kvt__err(KVT_EINVAL, "tier %d", t);
    kvt_tier_rt *tr = &s->tier[t];
    const kvt_tier_cfg *tc = &s->cfg.tier[t];
    tr->ops = tier_ops(t);
    if (!tr->ops)
        return kvt__err(t == KVT_TIER_HBM ? KVT_ENODEV : KVT_ENOTSUP,
                        "%s tier is not built into this library", tier_names[t]);
    kvt_tier_params p = {
        .id = (kvt_tier)t,
        .capacity = tc->capacity,
        .block_bytes = s->block_bytes,
        .block_tokens = s->cfg.block_tokens,
        .frags = s->frags,
        .key_mode = s->cfg.key_mode,
        .numa_node = tc->numa_node,
        .hugepages = tc->hugepages,
        .queue_depth = tc->queue_depth,
        .sqpoll = tc->sqpoll,
        .recreate = tc->recreate,
        .device = tc->device,
        .copy_threads = s->cfg.copy_threads,
        .path = tc->path,
        .faults = tc->faults,
        .host_region = region,
        .host_region_bytes = region_bytes,
    };
    int rc = tr->ops->open(&p, &tr->impl, &tr->nslots);
    if (rc)
        return rc;
    tr->on = 1;
    tr->pol = kvt__policy_find(tc->policy ? tc->policy : kvt__policy_default());
    if (!tr->pol)
        return kvt__err(KVT_EPOLICY, "no policy named \"%s\"", tc->policy);
    tr->pst = tr->pol->create(tr->nslots);
    tr->slot_entry = kvt__malloc((size_t)tr->nslots * sizeof(uint32_t));
    tr->free_slots = kvt__malloc((size_t)tr->nslots * sizeof(uint32_t));
    if (!tr->pst || !tr->slot_entry || !tr->free_slots)
        return kvt__err(KVT_ENOMEM, "%s tier bookkeeping for %u slots", tier_names[t],
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
            return kvt__err(KVT_ENOMEM, "%s idle list", tier_names[t]);
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
    kvt__workers_free(s->workers);
    kvt__jobpool_free(s->demoter);
    for (int t = KVT_TIER_COUNT - 1; t >= 0; t--)
        close_tier(&s->tier[t]);
    kvt__index_destroy(&s->ix);
    kvt__free(s->pending);
    kvt__free(s->tombs);
    kvt__free(s->close_work);
    pthread_mutex_destroy(&s->rm_lock);
    pthread_mutex_destroy(&s->barrier_lock);
    kvt__config_clear(&s->cfg);
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
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        s->tier[t].id = (kvt_tier)t;
        s->tier[t].name = tier_names[t];
        s->tier[t].victims = cfg->tier[t].victims;
        s->tier[t].admit = cfg->tier[t].admit;
        s->tier[t].admit_after = cfg->tier[t].admit_after;
        s->tier[t].below = -1;
        pthread_mutex_init(&s->tier[t].lock, NULL);
    }

    /* DRAM first: the other tiers register its arena for DMA. */
    static const int order[KVT_TIER_COUNT] = {KVT_TIER_DRAM, KVT_TIER_HBM, KVT_TIER_NVME};
    void *region = NULL;
    size_t region_bytes = 0;
    uint64_t slots = 0;
    for (int k = 0; k < KVT_TIER_COUNT; k++) {
        int t = order[k];
        if (!cfg->tier[t].capacity)
            continue;
        rc = open_tier(s, t, region, region_bytes);
        if (rc == KVT_ENODEV && t == KVT_TIER_HBM) {
            s->tier_unavailable[t] = 1; /* a GPU-less machine runs without HBM */
            continue;
        }
        if (rc)
            goto fail;
        kvt_tier_rt *tr = &s->tier[t];
        if (t == KVT_TIER_DRAM) {
            region = tr->ops->slot_ptr(tr->impl, 0);
            region_bytes = (size_t)tr->nslots * s->block_bytes;
        }
        slots += tr->nslots;
    }
    int prev = -1;
    s->put_tier = -1;
    s->top_tier = -1;
    for (int t = 0; t < KVT_TIER_COUNT; t++) {
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
    for (int t = KVT_TIER_COUNT - 1; t >= 0; t--)
        if (s->tier[t].on && persistent(s, t))
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

    for (int t = 0; t < KVT_TIER_COUNT; t++) {
        kvt_tier_rt *tr = &s->tier[t];
        if (!tr->on)
            continue;
        if ((tr->ops->caps & KVT_TCAP_PERSISTENT) && tr->ops->recover && t == KVT_TIER_NVME) {
            rc = tr->ops->recover(tr->impl, recovered, s);
            if (rc)
                goto fail;
        }
        for (uint32_t slot = tr->nslots; slot-- > 0;)
            if (tr->slot_entry[slot] == KVT_NO_ENTRY)
                tr->free_slots[tr->nfree++] = slot;
    }

    /* A tier below the put tier that is written through gets copier threads
     * of its own, as many as the workers (see lib/worker.c for why). */
    unsigned copiers = 0;
    for (int t = s->tier[s->put_tier].below; t >= 0; t = s->tier[t].below)
        if (s->tier[t].admit == KVT_ADMIT_WRITE_THROUGH)
            copiers = cfg->workers;
    rc = kvt__workers_new(s, cfg->workers, copiers, cfg->max_inflight, &s->workers);
    if (rc)
        goto fail;
    /* Puts into a host tier that demotes its victims overlap the demotion
     * writes with their copies (put_runs). Two threads, so that one run's
     * write can start while the previous one drains. Without them (none
     * could start) puts demote on their own thread. */
    kvt_tier_rt *pt = &s->tier[s->put_tier];
    if (pt->below >= 0 && pt->victims == KVT_VICTIM_DEMOTE && (pt->ops->caps & KVT_TCAP_HOST_PTR))
        s->demoter = kvt__jobpool_new(2);
    *out = s;
    return 0;
fail:
    free_store(s);
    return rc;
}

void kvt__store_close(kvt_store *s)
{
    /* Queued operations first (their write-through copies land too), then
     * what is left only in DRAM/HBM goes down, then everything is freed. */
    kvt__workers_free(s->workers);
    s->workers = NULL;
    kvt__store_close_flush(s, s->cfg.close_flush_ms);
    free_store(s);
}
