/* slots.c — slots: taking a slot (eviction), publishing a fill, leaving a
 * tier. Moving blocks between tiers (demotion) is demote.c's, above this. */
#include "internal.h"

/* --------------------------------------------------------- slots, moves */

/* Gives a slot back to its tier. Persistent tiers forget it on media first,
 * so that a dropped or removed block does not come back after a restart. */

void kvt__release_slots(kvt_store *s, int t, const uint32_t *slots, size_t n, int discard)
{
    kvt_tier_rt *tr = &s->tier[t];
    if (!n)
        return;
    /* Forgotten on media before anyone can take the slot and write it; a
     * slot that could not be is not taken again (discard_on_media). */
    if (discard && kvt__discard_on_media(s, t, slots, n))
        return;
    pthread_mutex_lock(&tr->lock);
    for (size_t i = 0; i < n; i++)
        tr->free_slots[tr->nfree++] = slots[i];
    pthread_mutex_unlock(&tr->lock);
}

void kvt__release_slot(kvt_store *s, int t, uint32_t slot, int discard)
{
    kvt__release_slots(s, t, &slot, 1, discard);
}

/* Frees the entry when no tier holds or is filling it. Shard lock held. */
int kvt__entry_unused(kvt_index *ix, kvt_shard *sh, uint32_t id)
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
int kvt__discard_on_media(kvt_store *s, int t, const uint32_t *slots, size_t n)
{
    kvt_tier_rt *tr = &s->tier[t];
    if (!n || !kvt__persistent(s, t) || !tr->ops->discard || !tr->ops->discard(tr->impl, slots, n))
        return 0;
    ADD(&tr->st, io_errors, 1);
    atomic_fetch_add(&s->discard_failures, 1);
    return KVT_EIO;
}

/* Drops reader ref on tier t of entry id; the last reader of a zombie slot
 * frees it. `read` is what the holder found when it read the copy: 0 good,
 * KVT_ECORRUPT bad (both settle whether a put can trust it), other errors
 * or NOT_READ nothing. */
void kvt__unref_read(kvt_store *s, uint32_t id, int t, int32_t read)
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
        if (kvt__persistent(s, t)) {
            /* Off the media before NONE: a remove that finds NONE relies on
             * it. A zombie without a slot is being freed (zombie_hold). */
            e->slot[t] = KVT_NO_SLOT;
            pthread_mutex_unlock(&sh->lock);
            if (kvt__discard_on_media(s, t, &slot, 1))
                lost = 1;
            pthread_mutex_lock(&sh->lock);
        }
        e->slot[t] = KVT_NO_SLOT;
        e->res[t] = KVT_RES_NONE;
        free_entry = kvt__entry_unused(&s->ix, sh, id);
    }
    pthread_mutex_unlock(&sh->lock);
    if (free_entry)
        kvt__index_free(&s->ix, id);
    if (slot != KVT_NO_SLOT && !lost)
        kvt__release_slot(s, t, slot, !kvt__persistent(s, t));
}

void kvt__unref(kvt_store *s, uint32_t id, int t)
{
    kvt__unref_read(s, id, t, NOT_READ);
}

void kvt__nap_briefly(void)
{
    struct timespec nap = {0, 100000};
    nanosleep(&nap, NULL);
}

/* Waiting for another thread's work to land: yield for the first rounds,
 * then nap, so a long wait does not spin a CPU the other thread needs. */
void kvt__backoff(int round)
{
    if (round < 16)
        sched_yield();
    else
        kvt__nap_briefly();
}

/* A zombie copy's slot in tier t (readers still copying out of it, after it
 * left), held with a ref of our own so that it is not freed and reused
 * while we invalidate it; KVT_NO_SLOT if none. Shard lock held. */
uint32_t kvt__zombie_hold(kvt_entry *e, int t)
{
    if (e->res[t] != KVT_RES_ZOMBIE || e->slot[t] == KVT_NO_SLOT)
        return KVT_NO_SLOT;
    e->refs[t]++;
    return e->slot[t];
}

/* Invalidates the zombie slots held by zombie_hold on media, then drops
 * the refs (the last reader frees the slot, as always). */
void kvt__zombie_discard(kvt_store *s, uint32_t id, const uint32_t *zombie)
{
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++) {
        if (zombie[t] == KVT_NO_SLOT)
            continue;
        kvt__discard_on_media(s, t, &zombie[t], 1);
        kvt__unref(s, id, t);
    }
}

/* Copies a block between two tiers' slots: straight from host-addressable
 * slot memory when either side has it, else through a bounce buffer. */
int kvt__copy_between(kvt_store *s, int from, uint32_t fslot, int to, uint32_t tslot,
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


/* Makes a filled slot visible: first to the tier's policy and idle list,
 * then to readers. In that order, a block is never READY without being
 * known to the policy, so whoever turns it LEAVING can always remove it.
 * Returns 1, or 0 when the key was removed meanwhile: then the fill is
 * cancelled (its slot invalidated and freed) instead. */
int kvt__publish(kvt_store *s, uint32_t id, int t, uint32_t slot, uint64_t now, int write_through)
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
    kvt__idle_push(tr, slot, now);
    pthread_mutex_unlock(&tr->lock);

    pthread_mutex_lock(&sh->lock);
    if (!(e->flags & KVT_ENTRY_REMOVED)) {
        e->res[t] = KVT_RES_READY;
        e->untrusted &= (uint8_t)~(1u << t); /* written and acknowledged just now */
        kvt__fill_end(s, e, t);
        unsigned wt = write_through ? kvt__write_through_claim(s, e, t) : 0;
        pthread_mutex_unlock(&sh->lock);
        if (wt)
            kvt__write_through_submit(s, id, t, wt);
        return 1;
    }
    pthread_mutex_unlock(&sh->lock);
    /* Removed while we filled: still FILLING, so unseen by readers. */
    pthread_mutex_lock(&tr->lock);
    if (tr->slot_entry[slot] == id)
        kvt__forget_slot(tr, slot);
    pthread_mutex_unlock(&tr->lock);
    int lost = kvt__discard_on_media(s, t, &slot, 1); /* before the remove's barrier lets it return */
    kvt__unfill(s, id, t);
    if (!lost)
        kvt__release_slot(s, t, slot, 0);
    CNT(&s->st, fills_cancelled);
    return 0;
}

/* Undoes a FILLING reservation that never got its bytes. */
void kvt__unfill(kvt_store *s, uint32_t id, int t)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    kvt__fill_end(s, e, t);
    e->res[t] = KVT_RES_NONE;
    e->slot[t] = KVT_NO_SLOT;
    int free_entry = kvt__entry_unused(&s->ix, sh, id);
    pthread_mutex_unlock(&sh->lock);
    if (free_entry)
        kvt__index_free(&s->ix, id);
}



/* Entry id leaves tier t, where it was LEAVING at `slot` (already out of the
 * policy and idle list): detached. Demotion is the caller's, before this
 * (demote.c): `demoted` says it was tried, which then counted a block it
 * could not place as dropped. Returns 1 when the slot is free for the
 * caller, 0 when readers still hold it (the last of them frees it). */
int kvt__leave(kvt_store *s, uint32_t id, int t, uint32_t slot, int demoted)
{
    kvt_tier_rt *tr = &s->tier[t];
    (void)slot; /* the entry knows it; kept so that every caller names it */
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
    int gone = kvt__entry_unused(&s->ix, sh, id);
    pthread_mutex_unlock(&sh->lock);
    if (gone)
        kvt__index_free(&s->ix, id);
    if (!demoted || tr->below < 0 || gone)
        CNT(&tr->st, dropped);
    return freed;
}

/* Whether a block may be pushed out of tier t now. Shard lock held. */
static int evictable(kvt_store *s, kvt_entry *e, int t, uint64_t now)
{
    return e->res[t] == KVT_RES_READY && e->refs[t] == 0 && !kvt__pinned(s, e, now) &&
           !kvt__retained(s, e, now);
}

/* Marks entry id LEAVING tier t when it can go now (1), under its shard's
 * lock. Otherwise 0, or -1 when it is only busy for a moment: being read
 * or filled. */
int kvt__claim_leaving(kvt_store *s, uint32_t id, int t, uint64_t now)
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

/* A free slot of tier t, evicting a victim when the tier is full, or
 * KVT_NO_SLOT when every candidate is pinned or retained. Blocks that are
 * only busy for a moment (being read, or filled by another thread) are
 * waited for when `wait` is set, so a burst of concurrent puts does not see
 * a full tier that is merely in flight.
 * Nothing is demoted here (slots never call into movement): when tier t
 * demotes its victims, the victim's slot is returned still LEAVING and its
 * entry id in *pending, for the caller to demote and then kvt__leave()
 * (kvt__make_room, settle_victims); otherwise the victim has left and
 * *pending is KVT_NO_ENTRY, as when the slot was free. */
uint32_t kvt__take_slot_for(kvt_store *s, int t, int wait, uint32_t *pending)
{
    *pending = KVT_NO_ENTRY;
    kvt_tier_rt *tr = &s->tier[t];
    uint64_t deadline = 0; /* CLOCK_MONOTONIC ns; set when the first wait starts */
    for (int round = 0;; round++) {
        pthread_mutex_lock(&tr->lock);
        while (tr->nfree && tr->ops->slot_usable && /* its device failed: never hand it out */
               !tr->ops->slot_usable(tr->impl, tr->free_slots[tr->nfree - 1]))
            tr->nfree--;
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
            int claim = kvt__claim_leaving(s, vid, t, now);
            if (claim < 0)
                busy++;
            if (claim <= 0) {
                tr->pol->skip(tr->pst, v);
                continue;
            }
            kvt__forget_slot(tr, v);
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
        kvt__event_left(s, KVT_EVENT_EVICTED, t, id);
        if (tr->victims == KVT_VICTIM_DEMOTE && tr->below >= 0) {
            *pending = id;
            return victim;
        }
        if (kvt__leave(s, id, t, victim, 0))
            return victim;
        /* A reader still holds the victim's slot; it will free it. Go again. */
    }
}
