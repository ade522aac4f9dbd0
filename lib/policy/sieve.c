/* sieve.c — SIEVE eviction (Zhang et al., NSDI'24): a FIFO with a visited bit and a moving hand. */
#include <stdlib.h>

#include "alloc.h"
#include "policy/policy.h"

/* Slots sit in insertion order; a hit only sets a bit, so touch never moves
 * list links (the reason SIEVE is cheap and scan-resistant). The hand walks
 * from the oldest slot toward the newest, clearing bits, and stops at the first
 * unvisited slot; it keeps its place between evictions and wraps to the oldest.
 * Slot n is the sentinel: newer[n] is the oldest slot, older[n] the newest. */
struct kvt_policy {
    uint32_t nslots;
    uint32_t hand; /* next slot to examine, or KVT_NO_SLOT: start at the oldest */
    uint32_t *newer;
    uint32_t *older; /* KVT_NO_SLOT when the slot is not inserted */
    uint8_t *visited;
};

static int present(const kvt_policy *p, uint32_t s)
{
    return s < p->nslots && p->older[s] != KVT_NO_SLOT;
}

/* The slot after s in the hand's direction; KVT_NO_SLOT past the newest. */
static uint32_t after(const kvt_policy *p, uint32_t s)
{
    uint32_t n = p->newer[s];
    return n == p->nslots ? KVT_NO_SLOT : n;
}

static void unlink_slot(kvt_policy *p, uint32_t s)
{
    if (p->hand == s)
        p->hand = after(p, s);
    p->older[p->newer[s]] = p->older[s];
    p->newer[p->older[s]] = p->newer[s];
    p->older[s] = KVT_NO_SLOT;
}

static kvt_policy *sieve_create(uint32_t nslots)
{
    if (nslots == 0 || nslots == KVT_NO_SLOT)
        return NULL;
    kvt_policy *p = kvt__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nslots = nslots;
    p->hand = KVT_NO_SLOT;
    p->newer = kvt__malloc(((size_t)nslots + 1) * sizeof *p->newer);
    p->older = kvt__malloc(((size_t)nslots + 1) * sizeof *p->older);
    p->visited = kvt__calloc(nslots, 1);
    if (!p->newer || !p->older || !p->visited) {
        kvt__free(p->newer);
        kvt__free(p->older);
        kvt__free(p->visited);
        kvt__free(p);
        return NULL;
    }
    for (uint32_t i = 0; i < nslots; i++)
        p->older[i] = KVT_NO_SLOT;
    p->newer[nslots] = p->older[nslots] = nslots;
    return p;
}

static void sieve_destroy(kvt_policy *p)
{
    if (!p)
        return;
    kvt__free(p->newer);
    kvt__free(p->older);
    kvt__free(p->visited);
    kvt__free(p);
}

static void sieve_insert(kvt_policy *p, uint32_t slot, uint32_t parent, uint64_t tag)
{
    (void)parent;
    (void)tag;
    if (slot >= p->nslots)
        return;
    if (present(p, slot))
        unlink_slot(p, slot);
    uint32_t head = p->nslots;
    p->older[slot] = p->older[head];
    p->newer[slot] = head;
    p->newer[p->older[head]] = slot;
    p->older[head] = slot;
    p->visited[slot] = 0;
}

static void sieve_touch(kvt_policy *p, uint32_t slot)
{
    if (present(p, slot))
        p->visited[slot] = 1;
}

static void sieve_remove(kvt_policy *p, uint32_t slot)
{
    if (present(p, slot))
        unlink_slot(p, slot);
}

/* Amortised O(1): every bit the hand clears was set by one touch. */
static uint32_t sieve_victim(kvt_policy *p)
{
    uint32_t oldest = p->newer[p->nslots];
    if (oldest == p->nslots)
        return KVT_NO_SLOT;
    uint32_t s = p->hand == KVT_NO_SLOT ? oldest : p->hand;
    while (p->visited[s]) {
        p->visited[s] = 0;
        s = after(p, s);
        if (s == KVT_NO_SLOT)
            s = oldest;
    }
    p->hand = s;
    return s;
}

/* A skipped slot is in use: it counts as visited, and the hand moves past it.
 * So the hand's next lap clears it instead of offering it again before the
 * slots whose bits the last lap cleared: every slot is offered within nslots
 * calls, which is what the store's search for an evictable slot relies on. */
static void sieve_skip(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    p->visited[slot] = 1;
    if (p->hand == slot)
        p->hand = after(p, slot);
}

const kvt_policy_ops kvt__policy_sieve = {
    .version = KVT_POLICY_OPS_VERSION,
    .name = "sieve",
    .create = sieve_create,
    .destroy = sieve_destroy,
    .insert = sieve_insert,
    .touch = sieve_touch,
    .remove = sieve_remove,
    .victim = sieve_victim,
    .skip = sieve_skip,
};
