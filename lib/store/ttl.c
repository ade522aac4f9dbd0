/* ttl.c — idle lists and exact TTL expiry per tier. */
#include "internal.h"

/* ------------------------------------------------------------ idle lists */

static void update_next_expiry(kvt_tier_rt *tr)
{
    uint64_t next = UINT64_MAX;
    if (tr->idle_head != KVT_NO_SLOT)
        next = tr->idle_stamp[tr->idle_head] + tr->ttl_ns;
    atomic_store_explicit(&tr->next_expiry, next, memory_order_release);
}

void kvt__idle_push(kvt_tier_rt *tr, uint32_t slot, uint64_t stamp)
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

void kvt__idle_remove(kvt_tier_rt *tr, uint32_t slot)
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
void kvt__forget_slot(kvt_tier_rt *tr, uint32_t slot)
{
    tr->pol->remove(tr->pst, slot);
    kvt__idle_remove(tr, slot);
    tr->slot_entry[slot] = KVT_NO_ENTRY;
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
            if (kvt__claim_leaving(s, id, t, now) <= 0) {
                /* Pinned, retained or being read: its idle time starts again. */
                kvt__idle_remove(tr, v);
                kvt__idle_push(tr, v, now);
                continue;
            }
            kvt__forget_slot(tr, v);
            CNT(&tr->st, expirations);
            kvt__event_left(s, KVT_EVENT_EXPIRED, t, id);
            ids[k] = id;
            slots[k++] = v;
        }
        pthread_mutex_unlock(&tr->lock);
        if (!k)
            return n;
        n += (int)k;
        if (demote)
            kvt__demote_batch(s, t, ids, slots, k);
        int lost = kvt__discard_on_media(s, t, slots, k); /* before NONE ("fills and removes") */
        for (size_t j = 0; j < k; j++)
            if (kvt__leave(s, ids[j], t, slots[j], demote ? LEFT_DEMOTED : 0) && !lost)
                freed[f++] = slots[j];
        kvt__release_slots(s, t, freed, f, !kvt__persistent(s, t));
    }
}

/* Expiry before an operation. On a virtual clock (manual, or the caller's
 * own) it runs right here, so replays are exact. On the real clock it is
 * the workers' job, every REAP interval: a lookup must not wait for the
 * demotion writes of blocks that happened to expire just before it. */
void kvt__expire_due(kvt_store *s)
{
    if (s->manual_clock || s->clock)
        kvt__store_expire(s);
}

int kvt__store_expire(kvt_store *s)
{
    uint64_t now = kvt__store_now(s);
    int n = 0;
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
        if (s->tier[t].on)
            n += expire_tier(s, t, now);
    return n;
}
