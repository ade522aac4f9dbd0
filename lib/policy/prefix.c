/* prefix.c — prefix-aware eviction: orphans first, then leaves of the prefix tree in LRU order. */
#include <stdlib.h>

#include "policy/policy.h"

enum { L_NONE = 0, L_ORPHAN = 1, L_LEAF = 2, L_INNER = 3, L_COUNT = 4 };

typedef struct list {
    uint32_t head; /* newest */
    uint32_t tail; /* oldest */
    uint32_t size;
} list;

struct kvt_policy {
    uint32_t nslots;
    list l[L_COUNT];
    uint32_t *newer, *older;
    uint32_t *parent, *first_child, *next_sib, *prev_sib;
    uint8_t *which;
};

static int present(const kvt_policy *p, uint32_t s)
{
    return s < p->nslots && p->which[s] != L_NONE;
}

static void push_head(kvt_policy *p, int li, uint32_t s)
{
    list *l = &p->l[li];
    p->which[s] = (uint8_t)li;
    p->newer[s] = KVT_NO_SLOT;
    p->older[s] = l->head;
    if (l->head != KVT_NO_SLOT)
        p->newer[l->head] = s;
    else
        l->tail = s;
    l->head = s;
    l->size++;
}

static void push_tail(kvt_policy *p, int li, uint32_t s)
{
    list *l = &p->l[li];
    p->which[s] = (uint8_t)li;
    p->older[s] = KVT_NO_SLOT;
    p->newer[s] = l->tail;
    if (l->tail != KVT_NO_SLOT)
        p->older[l->tail] = s;
    else
        l->head = s;
    l->tail = s;
    l->size++;
}

static void unlink_slot(kvt_policy *p, uint32_t s)
{
    list *l = &p->l[p->which[s]];
    if (p->newer[s] != KVT_NO_SLOT)
        p->older[p->newer[s]] = p->older[s];
    else
        l->head = p->older[s];
    if (p->older[s] != KVT_NO_SLOT)
        p->newer[p->older[s]] = p->newer[s];
    else
        l->tail = p->newer[s];
    l->size--;
    p->which[s] = L_NONE;
}

static void move_head(kvt_policy *p, int li, uint32_t s)
{
    unlink_slot(p, s);
    push_head(p, li, s);
}

static void tree_detach(kvt_policy *p, uint32_t s)
{
    uint32_t par = p->parent[s];
    if (par == KVT_NO_SLOT)
        return;
    if (p->prev_sib[s] != KVT_NO_SLOT)
        p->next_sib[p->prev_sib[s]] = p->next_sib[s];
    else
        p->first_child[par] = p->next_sib[s];
    if (p->next_sib[s] != KVT_NO_SLOT)
        p->prev_sib[p->next_sib[s]] = p->prev_sib[s];
    p->parent[s] = p->next_sib[s] = p->prev_sib[s] = KVT_NO_SLOT;
    /* The parent was at least as old as this child when the chain was used:
     * as the new leaf it is next in line, which trims dead chains from the end. */
    if (p->first_child[par] == KVT_NO_SLOT && p->which[par] == L_INNER) {
        unlink_slot(p, par);
        push_tail(p, L_LEAF, par);
    }
}

static void tree_attach(kvt_policy *p, uint32_t s, uint32_t par)
{
    p->parent[s] = par;
    p->prev_sib[s] = KVT_NO_SLOT;
    p->next_sib[s] = p->first_child[par];
    if (p->first_child[par] != KVT_NO_SLOT)
        p->prev_sib[p->first_child[par]] = s;
    p->first_child[par] = s;
    if (p->which[par] == L_LEAF)
        move_head(p, L_INNER, par);
}

static void prefix_destroy(kvt_policy *p)
{
    if (!p)
        return;
    free(p->newer);
    free(p->older);
    free(p->parent);
    free(p->first_child);
    free(p->next_sib);
    free(p->prev_sib);
    free(p->which);
    free(p);
}

static kvt_policy *prefix_create(uint32_t nslots)
{
    if (nslots == 0 || nslots == KVT_NO_SLOT)
        return NULL;
    kvt_policy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nslots = nslots;
    for (int i = 0; i < L_COUNT; i++)
        p->l[i].head = p->l[i].tail = KVT_NO_SLOT;
    size_t bytes = (size_t)nslots * sizeof(uint32_t);
    p->newer = malloc(bytes);
    p->older = malloc(bytes);
    p->parent = malloc(bytes);
    p->first_child = malloc(bytes);
    p->next_sib = malloc(bytes);
    p->prev_sib = malloc(bytes);
    p->which = calloc(nslots, 1);
    if (!p->newer || !p->older || !p->parent || !p->first_child || !p->next_sib ||
        !p->prev_sib || !p->which) {
        prefix_destroy(p);
        return NULL;
    }
    return p;
}

static void prefix_remove(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    unlink_slot(p, slot);
    tree_detach(p, slot);
    /* Lookups stop at the first miss: the children can no longer be hit. */
    for (uint32_t c = p->first_child[slot], next; c != KVT_NO_SLOT; c = next) {
        next = p->next_sib[c];
        p->parent[c] = p->next_sib[c] = p->prev_sib[c] = KVT_NO_SLOT;
        unlink_slot(p, c);
        push_head(p, L_ORPHAN, c);
    }
    p->first_child[slot] = KVT_NO_SLOT;
}

static void prefix_insert(kvt_policy *p, uint32_t slot, uint32_t parent, uint64_t tag)
{
    (void)tag;
    if (slot >= p->nslots)
        return;
    if (present(p, slot))
        prefix_remove(p, slot);
    p->parent[slot] = p->first_child[slot] = KVT_NO_SLOT;
    p->next_sib[slot] = p->prev_sib[slot] = KVT_NO_SLOT;
    if (parent != slot && present(p, parent) && p->which[parent] == L_ORPHAN) {
        push_head(p, L_ORPHAN, slot);
        return;
    }
    push_head(p, L_LEAF, slot);
    if (parent != slot && present(p, parent))
        tree_attach(p, slot, parent);
}

static void prefix_touch(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    int li = p->which[slot];
    if (li == L_ORPHAN)
        li = p->first_child[slot] == KVT_NO_SLOT ? L_LEAF : L_INNER;
    move_head(p, li, slot);
}

static uint32_t prefix_victim(kvt_policy *p)
{
    if (p->l[L_ORPHAN].size)
        return p->l[L_ORPHAN].tail;
    if (p->l[L_LEAF].size)
        return p->l[L_LEAF].tail;
    return p->l[L_INNER].tail;
}

static void prefix_skip(kvt_policy *p, uint32_t slot)
{
    if (present(p, slot))
        move_head(p, p->which[slot], slot);
}

const kvt_policy_ops kvt__policy_prefix = {
    .version = KVT_POLICY_OPS_VERSION,
    .name = "prefix",
    .create = prefix_create,
    .destroy = prefix_destroy,
    .insert = prefix_insert,
    .touch = prefix_touch,
    .remove = prefix_remove,
    .victim = prefix_victim,
    .skip = prefix_skip,
};
