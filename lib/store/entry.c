/* entry.c — entry state: the store clock, pins, readability, and fills counted against
 * removes. */
#include "internal.h"

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
uint32_t kvt__rel_ms(const kvt_store *s, uint64_t now)
{
    return (uint32_t)((now - s->epoch_ns) / NS_PER_MS);
}

uint32_t kvt__rel_s(const kvt_store *s, uint64_t now)
{
    return (uint32_t)((now - s->epoch_ns) / NS_PER_S);
}

int kvt__pinned(kvt_store *s, kvt_entry *e, uint64_t now)
{
    if (!e->pins)
        return 0;
    if ((int32_t)(e->pin_deadline_ms - kvt__rel_ms(s, now)) > 0)
        return 1;
    e->pins = 0; /* the lease ran out: it releases itself */
    CNT(&s->st, lease_expired);
    return 0;
}

int kvt__retained(kvt_store *s, const kvt_entry *e, uint64_t now)
{
    return e->retain_until_s && (int32_t)(e->retain_until_s - kvt__rel_s(s, now)) > 0;
}

int kvt__readable(const kvt_entry *e, int t)
{
    return e->res[t] == KVT_RES_READY || e->res[t] == KVT_RES_LEAVING;
}

/* The fastest tier a block can be read from, or -1. */
int kvt__fastest(const kvt_entry *e)
{
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
        if (kvt__readable(e, t))
            return t;
    return -1;
}

int kvt__persistent(const kvt_store *s, int t)
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
void kvt__fill_begin(kvt_store *s, kvt_entry *e, int t)
{
    if (!kvt__persistent(s, t))
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
void kvt__fill_end(kvt_store *s, kvt_entry *e, int t)
{
    if (e->queued & (1u << t)) {
        e->queued &= (uint8_t)~(1u << t);
        return;
    }
    if (kvt__persistent(s, t))
        atomic_fetch_sub(&s->fills[(e->flags >> (KVT_ENTRY_EPOCH_SHIFT + t)) & 1], 1);
}

/* Waits until every fill of the persistent tier that began before the call
 * is published or undone. */
void kvt__remove_barrier(kvt_store *s)
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
