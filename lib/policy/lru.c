/* lru.c — exact least-recently-used eviction over an intrusive doubly linked list. */
#include <stdlib.h>

#include "alloc.h"
#include "policy/policy.h"

/* Slot n is the list's sentinel: next[n] is the most recently used slot,
 * prev[n] the least. A slot not in the list has next == KVT_NO_SLOT. */
struct kvt_policy {
    uint32_t nslots;
    uint32_t *next; /* toward older */
    uint32_t *prev; /* toward newer */
};

static void unlink_slot(kvt_policy *p, uint32_t s)
{
    p->prev[p->next[s]] = p->prev[s];
    p->next[p->prev[s]] = p->next[s];
    p->next[s] = KVT_NO_SLOT;
}

static void push_mru(kvt_policy *p, uint32_t s)
{
    uint32_t head = p->nslots;
    p->next[s] = p->next[head];
    p->prev[s] = head;
    p->prev[p->next[head]] = s;
    p->next[head] = s;
}

static int present(const kvt_policy *p, uint32_t s)
{
    return s < p->nslots && p->next[s] != KVT_NO_SLOT;
}

static kvt_policy *lru_create(uint32_t nslots)
{
    if (nslots == 0 || nslots == KVT_NO_SLOT)
        return NULL;
    kvt_policy *p = kvt__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nslots = nslots;
    p->next = kvt__malloc(((size_t)nslots + 1) * sizeof *p->next);
    p->prev = kvt__malloc(((size_t)nslots + 1) * sizeof *p->prev);
    if (!p->next || !p->prev) {
        kvt__free(p->next);
        kvt__free(p->prev);
        kvt__free(p);
        return NULL;
    }
    for (uint32_t i = 0; i < nslots; i++)
        p->next[i] = KVT_NO_SLOT;
    p->next[nslots] = p->prev[nslots] = nslots;
    return p;
}

static void lru_destroy(kvt_policy *p)
{
    if (!p)
        return;
    kvt__free(p->next);
    kvt__free(p->prev);
    kvt__free(p);
}

static void lru_insert(kvt_policy *p, uint32_t slot, uint32_t parent, uint64_t tag)
{
    (void)parent;
    (void)tag;
    if (slot >= p->nslots)
        return;
    if (present(p, slot))
        unlink_slot(p, slot);
    push_mru(p, slot);
}

static void lru_touch(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    unlink_slot(p, slot);
    push_mru(p, slot);
}

static void lru_remove(kvt_policy *p, uint32_t slot)
{
    if (present(p, slot))
        unlink_slot(p, slot);
}

static uint32_t lru_victim(kvt_policy *p)
{
    uint32_t tail = p->prev[p->nslots];
    return tail == p->nslots ? KVT_NO_SLOT : tail;
}

/* A skipped slot is pinned or busy, i.e. in use: it counts as recently used,
 * which also moves the next candidate into view. */
static void lru_skip(kvt_policy *p, uint32_t slot)
{
    lru_touch(p, slot);
}

const kvt_policy_ops kvt__policy_lru = {
    .version = KVT_POLICY_OPS_VERSION,
    .name = "lru",
    .create = lru_create,
    .destroy = lru_destroy,
    .insert = lru_insert,
    .touch = lru_touch,
    .remove = lru_remove,
    .victim = lru_victim,
    .skip = lru_skip,
};
