/* prefix.c — prefix-aware eviction: orphans first, then leaves of the prefix tree by recency plus a reuse credit. */
#include <stdlib.h>

#include "alloc.h"
#include "policy/ghost.h"
#include "policy/policy.h"

/*
 * Why this shape (docs/policies.md has the measurements):
 *
 * - A lookup stops at the first missing block, so evicting a block makes all
 *   its cached descendants useless. Only leaves of the prefix tree (blocks
 *   with no cached child) are candidates; a parent becomes one when its last
 *   child leaves. A block whose parent left (an orphan) can never be hit
 *   again through a lookup and goes before anything else.
 * - Most blocks are never read again; blocks that were (a hit, or a block
 *   put again soon after it was evicted, which the ghost remembers) are read
 *   again about twice as often. A reused leaf is kept as if it had been used
 *   REUSE_CREDIT cache-turnovers later than it was: it outlives first-time
 *   blocks without pinning the cache forever (the credit is finite, so a
 *   workload that changes flushes old favourites).
 * - Leaves are ordered by key = last use + credit, in a calendar queue: a
 *   ring of buckets of `width` ticks each. Keys older than the ring's base
 *   share its first bucket, older buckets' members on its older side; order
 *   within one bucket is arrival order. That is O(1) per operation and, on
 *   the traces, within a few tenths of a point of an exact priority queue.
 *
 * Time is a tick counter advanced by every insert and touch.
 */

enum { S_NONE = 0, S_ORPHAN, S_LEAF, S_INNER };
enum { NBUCKETS = 256 };
/* In units of nslots ticks: see docs/policies.md for the sweep. */
enum { REUSE_CREDIT = 3, GHOST_WINDOW = 6 };
/* The ring covers keys from base to base + (REUSE_CREDIT + RING_SLACK) *
 * nslots ticks; base trails `now` by a quarter of the ring. */
enum { RING_SLACK = 2, RING_LAG = NBUCKETS / 4 };

/* Everything about one slot in 48 bytes, so that an operation on a slot
 * costs one or two cache misses, not one per field: with millions of slots
 * the misses are the cost. Nodes past nslots are list sentinels (only
 * next and prev used). */
typedef struct node {
    uint32_t next, prev;      /* list links: toward newer / older */
    uint32_t parent;          /* in the prefix tree, or KVT_NO_SLOT */
    uint32_t first_child;
    uint32_t next_sib, prev_sib;
    uint8_t state;            /* S_* */
    uint8_t reused;           /* hit, or returned while the ghost remembered it */
    uint64_t stamp;           /* last use, in ticks */
    uint64_t tag;
} node;

struct kvt_policy {
    uint32_t nslots;
    uint32_t nleaf, ninner;
    uint32_t hint;        /* buckets after base before the first nonempty one, at least */
    uint32_t leaf_skips;  /* since the last insert or remove */
    uint32_t inner_skips;
    uint64_t now;         /* ticks */
    uint64_t credit;      /* ticks added to a reused leaf's key */
    uint64_t width;       /* ticks per bucket */
    uint64_t base;        /* absolute bucket number of the ring's first bucket */
    /* Circular doubly linked lists, with sentinels after the slots: ORPHANS,
     * INNER, then the NBUCKETS leaf buckets. A sentinel's next is the newest
     * member, its prev the oldest. */
    node *n;
    kvt__ghost ghost;
};

static uint32_t orphans(const kvt_policy *p) { return p->nslots; }
static uint32_t inner(const kvt_policy *p) { return p->nslots + 1; }
static uint32_t bucket(const kvt_policy *p, uint64_t abs)
{
    return p->nslots + 2 + (uint32_t)(abs % NBUCKETS);
}

static int list_empty(const kvt_policy *p, uint32_t sentinel)
{
    return p->n[sentinel].next == sentinel;
}

/* The oldest member of a nonempty list. */
static uint32_t oldest(const kvt_policy *p, uint32_t sentinel)
{
    return p->n[sentinel].prev;
}

static void link_after(kvt_policy *p, uint32_t at, uint32_t s)
{
    node *n = p->n;
    n[s].next = n[at].next;
    n[s].prev = at;
    n[n[at].next].prev = s;
    n[at].next = s;
}

static void push_newest(kvt_policy *p, uint32_t sentinel, uint32_t s)
{
    link_after(p, sentinel, s);
}

static void push_oldest(kvt_policy *p, uint32_t sentinel, uint32_t s)
{
    link_after(p, p->n[sentinel].prev, s);
}

/* Takes s off whatever list it is on; its state is then S_NONE. */
static void unlist(kvt_policy *p, uint32_t s)
{
    node *n = p->n;
    if (n[s].state == S_LEAF)
        p->nleaf--;
    else if (n[s].state == S_INNER)
        p->ninner--;
    n[n[s].next].prev = n[s].prev;
    n[n[s].prev].next = n[s].next;
    n[s].state = S_NONE;
}

/* Appends the whole of list `from` on the old side of list `to`. */
static void splice_older(kvt_policy *p, uint32_t from, uint32_t to)
{
    if (list_empty(p, from))
        return;
    node *n = p->n;
    uint32_t newest = n[from].next, old = n[from].prev, to_oldest = n[to].prev;
    n[to_oldest].next = newest;
    n[newest].prev = to_oldest;
    n[old].next = to;
    n[to].prev = old;
    n[from].next = n[from].prev = from;
}

static void tick(kvt_policy *p)
{
    p->now++;
    uint64_t want = p->now / p->width;
    want = want > RING_LAG ? want - RING_LAG : 0;
    while (p->base < want) {
        splice_older(p, bucket(p, p->base), bucket(p, p->base + 1));
        p->base++;
        if (p->hint)
            p->hint--;
    }
}

static void add_leaf(kvt_policy *p, uint32_t s)
{
    node *n = &p->n[s];
    uint64_t abs = (n->stamp + (n->reused ? p->credit : 0)) / p->width;
    n->state = S_LEAF;
    p->nleaf++;
    if (abs <= p->base) {
        /* Older than the ring (a parent left childless, long unused): the
         * older side of the merged past is the closer guess. */
        if (abs < p->base)
            push_oldest(p, bucket(p, p->base), s);
        else
            push_newest(p, bucket(p, p->base), s);
        p->hint = 0;
        return;
    }
    if (abs >= p->base + NBUCKETS)
        abs = p->base + NBUCKETS - 1; /* cannot happen with the ring's slack */
    push_newest(p, bucket(p, abs), s);
    if (abs - p->base < p->hint)
        p->hint = (uint32_t)(abs - p->base);
}

static void add_inner(kvt_policy *p, uint32_t s)
{
    p->n[s].state = S_INNER;
    p->ninner++;
    push_newest(p, inner(p), s);
}

static void add_orphan(kvt_policy *p, uint32_t s)
{
    p->n[s].state = S_ORPHAN;
    push_newest(p, orphans(p), s);
}

static int present(const kvt_policy *p, uint32_t s)
{
    return s < p->nslots && p->n[s].state != S_NONE;
}

static void prefix_destroy(kvt_policy *p)
{
    if (!p)
        return;
    kvt__free(p->n);
    kvt__ghost_free(&p->ghost);
    kvt__free(p);
}

static kvt_policy *prefix_create(uint32_t nslots)
{
    if (nslots == 0 || nslots > UINT32_MAX - 2 - NBUCKETS)
        return NULL;
    kvt_policy *p = kvt__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nslots = nslots;
    p->credit = (uint64_t)REUSE_CREDIT * nslots;
    p->width = ((uint64_t)(REUSE_CREDIT + RING_SLACK) * nslots) / NBUCKETS + 1;
    size_t nodes = (size_t)nslots + 2 + NBUCKETS;
    p->n = kvt__calloc(nodes, sizeof *p->n); /* state 0 == S_NONE */
    uint64_t window = (uint64_t)GHOST_WINDOW * nslots;
    int ghost_ok =
        kvt__ghost_init(&p->ghost, window > UINT32_MAX ? UINT32_MAX : (uint32_t)window) == 0;
    if (!p->n || !ghost_ok) {
        prefix_destroy(p);
        return NULL;
    }
    for (size_t i = nslots; i < nodes; i++)
        p->n[i].next = p->n[i].prev = (uint32_t)i;
    return p;
}

/* s leaves its parent's children; a parent left childless becomes a leaf. */
static void detach_from_parent(kvt_policy *p, uint32_t s)
{
    node *n = p->n;
    uint32_t par = n[s].parent;
    if (par == KVT_NO_SLOT)
        return;
    if (n[s].prev_sib != KVT_NO_SLOT)
        n[n[s].prev_sib].next_sib = n[s].next_sib;
    else
        n[par].first_child = n[s].next_sib;
    if (n[s].next_sib != KVT_NO_SLOT)
        n[n[s].next_sib].prev_sib = n[s].prev_sib;
    n[s].parent = n[s].next_sib = n[s].prev_sib = KVT_NO_SLOT;
    if (n[par].first_child == KVT_NO_SLOT && n[par].state == S_INNER) {
        unlist(p, par);
        add_leaf(p, par);
    }
}

static void prefix_remove(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    node *n = p->n;
    /* An orphan was worthless, so its return proves nothing. */
    if (n[slot].state != S_ORPHAN && n[slot].tag != 0)
        kvt__ghost_add(&p->ghost, n[slot].tag);
    unlist(p, slot);
    detach_from_parent(p, slot);
    /* O(children), once per child: a child is orphaned at most once. */
    for (uint32_t c = n[slot].first_child, next; c != KVT_NO_SLOT; c = next) {
        next = n[c].next_sib;
        n[c].parent = n[c].next_sib = n[c].prev_sib = KVT_NO_SLOT;
        unlist(p, c);
        add_orphan(p, c);
    }
    n[slot].first_child = KVT_NO_SLOT;
    p->leaf_skips = p->inner_skips = 0;
}

static void prefix_insert(kvt_policy *p, uint32_t slot, uint32_t parent, uint64_t tag)
{
    if (slot >= p->nslots)
        return;
    if (present(p, slot))
        prefix_remove(p, slot);
    tick(p);
    node *n = p->n;
    n[slot].parent = n[slot].first_child = KVT_NO_SLOT;
    n[slot].next_sib = n[slot].prev_sib = KVT_NO_SLOT;
    n[slot].stamp = p->now;
    n[slot].tag = tag;
    p->leaf_skips = p->inner_skips = 0;
    if (parent == slot || !present(p, parent))
        parent = KVT_NO_SLOT;
    if (parent != KVT_NO_SLOT && n[parent].state == S_ORPHAN) {
        n[slot].reused = 0;
        add_orphan(p, slot); /* unreachable through its orphaned parent */
        return;
    }
    n[slot].reused = (uint8_t)(tag != 0 && kvt__ghost_take(&p->ghost, tag));
    add_leaf(p, slot);
    if (parent == KVT_NO_SLOT)
        return;
    n[slot].parent = parent;
    n[slot].next_sib = n[parent].first_child;
    if (n[parent].first_child != KVT_NO_SLOT)
        n[n[parent].first_child].prev_sib = slot;
    n[parent].first_child = slot;
    if (n[parent].state == S_LEAF) {
        unlist(p, parent);
        add_inner(p, parent);
    }
}

/* A hit proves the block reachable, so a touched orphan is one no longer
 * (its parent came back under another slot, which we are not told). */
static void prefix_touch(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    tick(p);
    node *n = &p->n[slot];
    n->stamp = p->now;
    n->reused = 1;
    unlist(p, slot);
    if (n->first_child == KVT_NO_SLOT)
        add_leaf(p, slot);
    else
        add_inner(p, slot);
}

/* O(1): the scan for a nonempty bucket is bounded by NBUCKETS, and the hint
 * only moves back when a leaf lands before it. */
static uint32_t prefix_victim(kvt_policy *p)
{
    if (!list_empty(p, orphans(p)))
        return oldest(p, orphans(p));
    /* Inner blocks are offered only once every leaf was skipped since the
     * last change, so a store skipping pinned leaves still reaches them. */
    if (p->nleaf && (p->leaf_skips < p->nleaf || p->ninner == 0)) {
        for (;; p->hint++) {
            uint32_t b = bucket(p, p->base + p->hint);
            if (!list_empty(p, b))
                return oldest(p, b);
        }
    }
    if (p->ninner)
        return oldest(p, inner(p));
    return KVT_NO_SLOT;
}

/* A skipped block is in use, so it counts as touched: its key moves past
 * every other leaf's, and each leaf is offered once before any is offered
 * again. Skipped inner blocks rotate until all were offered, then leaves get
 * their turn again. */
static void prefix_skip(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    if (p->n[slot].state == S_INNER) {
        unlist(p, slot);
        add_inner(p, slot);
        if (++p->inner_skips >= p->ninner)
            p->leaf_skips = p->inner_skips = 0;
        return;
    }
    prefix_touch(p, slot);
    /* counted once it is a leaf, so that leaf_skips == nleaf means "every
     * leaf offered" also when skipped orphans turned into leaves */
    if (p->n[slot].state == S_LEAF && p->leaf_skips < UINT32_MAX)
        p->leaf_skips++;
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
