/* hbm.c — one LRU cache of block digests per modelled engine instance (an open-addressing index over a doubly linked recency list) and the router. */
#include <stdlib.h>

#include "hbm.h"

#define NIL UINT32_MAX

typedef struct node {
    uint64_t key;
    uint32_t prev, next; /* recency list: head = least recently used */
} node;

struct hbm_inst {
    node *nodes;    /* cap of them; n used */
    uint32_t *slot; /* index: node number or NIL; mask + 1 cells, at most half full */
    uint64_t mask, n;
    uint32_t head, tail;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int hbm_init(hbm_model *h, uint32_t instances, uint64_t cap, int affinity, uint64_t seed)
{
    *h = (hbm_model){.instances = instances ? instances : 1,
                     .cap = cap ? cap : 1,
                     .affinity = affinity,
                     .rng = seed};
    if (h->cap >= NIL)
        return -1;
    h->inst = calloc(h->instances, sizeof *h->inst);
    if (!h->inst)
        return -1;
    uint64_t cells = 16;
    while (cells < 2 * h->cap)
        cells *= 2;
    for (uint32_t i = 0; i < h->instances; i++) {
        hbm_inst *c = &h->inst[i];
        c->nodes = malloc(h->cap * sizeof *c->nodes);
        c->slot = malloc(cells * sizeof *c->slot);
        c->mask = cells - 1;
        c->head = c->tail = NIL;
        if (!c->nodes || !c->slot) {
            hbm_free(h);
            return -1;
        }
        for (uint64_t s = 0; s < cells; s++)
            c->slot[s] = NIL;
    }
    return 0;
}

void hbm_free(hbm_model *h)
{
    if (h->inst)
        for (uint32_t i = 0; i < h->instances; i++) {
            free(h->inst[i].nodes);
            free(h->inst[i].slot);
        }
    free(h->inst);
    h->inst = NULL;
}

uint32_t hbm_route(hbm_model *h, uint64_t session)
{
    if (h->affinity)
        return (uint32_t)(session % h->instances);
    h->rng += 0x9e3779b97f4a7c15ull;
    return (uint32_t)(mix(h->rng) % h->instances);
}

/* The index cell of key: where it is, or the empty cell it would go in. */
static uint64_t cell(const hbm_inst *c, uint64_t key)
{
    uint64_t s = mix(key) & c->mask;
    while (c->slot[s] != NIL && c->nodes[c->slot[s]].key != key)
        s = (s + 1) & c->mask;
    return s;
}

static void unlink_node(hbm_inst *c, uint32_t x)
{
    node *n = &c->nodes[x];
    if (n->prev != NIL)
        c->nodes[n->prev].next = n->next;
    else
        c->head = n->next;
    if (n->next != NIL)
        c->nodes[n->next].prev = n->prev;
    else
        c->tail = n->prev;
}

static void push_tail(hbm_inst *c, uint32_t x)
{
    c->nodes[x].prev = c->tail;
    c->nodes[x].next = NIL;
    if (c->tail != NIL)
        c->nodes[c->tail].next = x;
    else
        c->head = x;
    c->tail = x;
}

/* Removes cell s from the index, shifting later cells of its probe run
 * back (linear probing without tombstones). */
static void index_remove(hbm_inst *c, uint64_t s)
{
    c->slot[s] = NIL;
    for (uint64_t j = (s + 1) & c->mask; c->slot[j] != NIL; j = (j + 1) & c->mask) {
        uint64_t home = mix(c->nodes[c->slot[j]].key) & c->mask;
        /* j's entry may move to s when s lies cyclically in [home, j). */
        if (((j - home) & c->mask) >= ((j - s) & c->mask)) {
            c->slot[s] = c->slot[j];
            c->slot[j] = NIL;
            s = j;
        }
    }
}

uint32_t hbm_prefix(hbm_model *h, uint32_t i, const uint64_t *keys, uint32_t n)
{
    hbm_inst *c = &h->inst[i % h->instances];
    uint32_t k = 0;
    for (; k < n; k++) {
        uint32_t x = c->slot[cell(c, keys[k])];
        if (x == NIL)
            break;
        unlink_node(c, x);
        push_tail(c, x);
    }
    return k;
}

int hbm_admit(hbm_model *h, uint32_t i, const uint64_t *keys, uint32_t n)
{
    hbm_inst *c = &h->inst[i % h->instances];
    for (uint32_t k = 0; k < n; k++) {
        uint64_t s = cell(c, keys[k]);
        uint32_t x = c->slot[s];
        if (x != NIL) {
            unlink_node(c, x);
            push_tail(c, x);
            continue;
        }
        if (c->n < h->cap) {
            x = (uint32_t)c->n++;
        } else { /* the least recently used leaves; its node is reused */
            x = c->head;
            unlink_node(c, x);
            index_remove(c, cell(c, c->nodes[x].key));
            s = cell(c, keys[k]); /* the removal may have moved cells */
        }
        c->nodes[x].key = keys[k];
        c->slot[s] = x;
        push_tail(c, x);
    }
    return 0;
}

uint64_t hbm_held(const hbm_model *h, uint32_t i)
{
    return h->inst[i % h->instances].n;
}
