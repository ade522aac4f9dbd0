/* demote.c — demotion: victims of a tier copied to the tier below, and a
 * slot for a block arriving in a tier that demotes its victims. Calls down
 * into slots.c; slots.c never calls up here. */
#include "internal.h"

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
            kvt__release_slot(s, n, to[j], 1);
            kvt__unfill(s, id[j], n);
            continue;
        }
        if (!kvt__publish(s, id[j], n, to[j], now, 0))
            continue;
        ADD(&b->st, bytes_in, s->block_bytes);
        CNT(&b->st, demotions_in);
    }
}

/* Copies k victims of tier t (entries ids, LEAVING at slots `from`) into
 * the tier below, each unless that tier already holds or is getting it, in
 * one batch: an NVMe tier has them all in flight together instead of one
 * synchronous write per eviction. */
void kvt__demote_batch(kvt_store *s, int t, const uint32_t *ids, const uint32_t *from,
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
            kvt__fill_begin(s, e, n);
        }
        pthread_mutex_unlock(&sh->lock);
        if (!go)
            continue;
        /* A batch larger than the tier below fills it with its own blocks,
         * which can't be evicted while in flight: write and publish those,
         * then ask again (as a put does). Waiting instead cost the full slot
         * wait per victim (found by the api fuzzer: 15 s for one call). */
        uint32_t slot;
        for (int wait = m == 0;;) {
            uint32_t victim;
            slot = kvt__take_slot_for(s, n, wait, &victim);
            if (slot == KVT_NO_SLOT && m) {
                demote_write(s, t, x, id, to, m);
                m = 0;
                wait = 1;
                continue;
            }
            if (victim == KVT_NO_ENTRY)
                break;
            /* The tier below demotes too: its victim goes one tier further
             * down first (the recursion ends at the last tier). */
            kvt__demote_batch(s, n, &victim, &slot, 1);
            if (kvt__leave(s, victim, n, slot, LEFT_DEMOTED))
                break;
            /* A reader still holds the victim's slot; it will free it. */
        }
        if (slot == KVT_NO_SLOT) {
            kvt__unfill(s, ids[j], n);
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
            x[m].status = kvt__copy_between(s, t, from[j], n, slot, &e->key) ? KVT_EIO : 0;
            ptr[m] = NULL;
        }
        m++;
    }
    demote_write(s, t, x, id, to, m);
}

uint32_t kvt__make_room(kvt_store *s, int t, int wait)
{
    for (;;) {
        uint32_t victim;
        uint32_t slot = kvt__take_slot_for(s, t, wait, &victim);
        if (victim == KVT_NO_ENTRY)
            return slot;
        kvt__demote_batch(s, t, &victim, &slot, 1);
        if (kvt__leave(s, victim, t, slot, LEFT_DEMOTED))
            return slot;
        /* A reader still holds the victim's slot; it will free it. Go again. */
    }
}
