/* prefix.c — prefix-aware eviction: orphans first, then leaves of the prefix tree by recency plus a reuse credit. */
#include <stdlib.h>

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
 *   share its first bucket, in order of arrival; order within one bucket is
 *   arrival order. That is O(1) per operation and, on the traces, within
 *   0.05 points of an exact priority queue.
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

struct kvt_policy {
    uint32_t nslots;
    uint32_t nleaf, ninner;
    uint32_t hint;         /* buckets after base before the first nonempty one, at least */
    uint32_t leaf_skips;   /* since the last insert or remove */
    uint32_t inner_skips;
    uint64_t now;          /* ticks */
    uint64_t credit;       /* ticks added to a reused leaf's key */
    uint64_t width;        /* ticks per bucket */
    uint64_t base;         /* absolute bucket number of the ring's first bucket */
    /* Circular doubly linked lists over slots, with sentinels after them:
     * ORPHANS, INNER, then the NBUCKETS leaf buckets. A sentinel's next is
     * the newest member, its prev the oldest. */
    uint32_t *next, *prev;
    uint32_t *parent, *first_child, *next_sib, *prev_sib; /* the prefix tree */
    uint64_t *stamp; /* last use, in ticks */
    uint64_t *tag;
    uint8_t *state;  /* S_* */
    uint8_t *reused; /* hit, or returned while the ghost remembered it */
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
    return p->next[sentinel] == sentinel;
}

static void link_after(kvt_policy *p, uint32_t at, uint32_t s)
{
    p->next[s] = p->next[at];
    p->prev[s] = at;
    p->prev[p->next[at]] = s;
    p->next[at] = s;
}

static void push_newest(kvt_policy *p, uint32_t sentinel, uint32_t s)
{
    link_after(p, sentinel, s);
}

static void push_oldest(kvt_policy *p, uint32_t sentinel, uint32_t s)
{
    link_after(p, p->prev[sentinel], s);
}

/* Takes s off whatever list it is on; its state is then S_NONE. */
static void unlist(kvt_policy *p, uint32_t s)
{
    if (p->state[s] == S_LEAF)
        p->nleaf--;
    else if (p->state[s] == S_INNER)
        p->ninner--;
    p->prev[p->next[s]] = p->prev[s];
    p->next[p->prev[s]] = p->next[s];
    p->state[s] = S_NONE;
}

/* Appends the whole of list `from` on the old side of list `to`. */
static void splice_older(kvt_policy *p, uint32_t from, uint32_t to)
{
    if (list_empty(p, from))
        return;
    uint32_t newest = p->next[from], oldest = p->prev[from], to_oldest = p->prev[to];
    p->next[to_oldest] = newest;
    p->prev[newest] = to_oldest;
    p->next[oldest] = to;
    p->prev[to] = oldest;
    p->next[from] = p->prev[from] = from;
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
    uint64_t key = p->stamp[s] + (p->reused[s] ? p->credit : 0);
    uint64_t abs = key / p->width;
    p->state[s] = S_LEAF;
    p->nleaf++;
    if (abs <= p->base) {
        /* Older than the ring: such a key is older than all it holds but
         * the merged past; the oldest end is the closer guess. */
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
    p->state[s] = S_INNER;
    p->ninner++;
    push_newest(p, inner(p), s);
}

static void add_orphan(kvt_policy *p, uint32_t s)
{
    p->state[s] = S_ORPHAN;
    push_newest(p, orphans(p), s);
}

static int present(const kvt_policy *p, uint32_t s)
{
    return s < p->nslots && p->state[s] != S_NONE;
}

static void prefix_destroy(kvt_policy *p)
{
    if (!p)
        return;
    free(p->next);
    free(p->prev);
    free(p->parent);
    free(p->first_child);
    free(p->next_sib);
    free(p->prev_sib);
    free(p->stamp);
    free(p->tag);
    free(p->state);
    free(p->reused);
    kvt__ghost_free(&p->ghost);
    free(p);
}

static kvt_policy *prefix_create(uint32_t nslots)
{
    if (nslots == 0 || nslots > UINT32_MAX - 2 - NBUCKETS)
        return NULL;
    kvt_policy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nslots = nslots;
    p->credit = (uint64_t)REUSE_CREDIT * nslots;
    p->width = ((uint64_t)(REUSE_CREDIT + RING_SLACK) * nslots) / NBUCKETS + 1;
    size_t links = (size_t)nslots + 2 + NBUCKETS;
    p->next = malloc(links * sizeof *p->next);
    p->prev = malloc(links * sizeof *p->prev);
    p->parent = malloc((size_t)nslots * sizeof *p->parent);
    p->first_child = malloc((size_t)nslots * sizeof *p->first_child);
    p->next_sib = malloc((size_t)nslots * sizeof *p->next_sib);
    p->prev_sib = malloc((size_t)nslots * sizeof *p->prev_sib);
    p->stamp = malloc((size_t)nslots * sizeof *p->stamp);
    p->tag = malloc((size_t)nslots * sizeof *p->tag);
    p->state = calloc(nslots, 1);
    p->reused = calloc(nslots, 1);
    uint64_t window = (uint64_t)GHOST_WINDOW * nslots;
    int ghost_ok = kvt__ghost_init(&p->ghost, window > UINT32_MAX ? UINT32_MAX : (uint32_t)window) == 0;
    if (!p->next || !p->prev || !p->parent || !p->first_child || !p->next_sib ||
        !p->prev_sib || !p->stamp || !p->tag || !p->state || !p->reused || !ghost_ok) {
        prefix_destroy(p);
        return NULL;
    }
    for (size_t i = nslots; i < links; i++)
        p->next[i] = p->prev[i] = (uint32_t)i;
    return p;
}

/* s leaves its parent's children; a parent left childless becomes a leaf. */
static void detach_from_parent(kvt_policy *p, uint32_t s)
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
    if (p->first_child[par] == KVT_NO_SLOT && p->state[par] == S_INNER) {
        unlist(p, par);
        add_leaf(p, par);
    }
}

static void prefix_remove(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    /* An orphan was worthless, so its return proves nothing. */
    if (p->state[slot] != S_ORPHAN && p->tag[slot] != 0)
        kvt__ghost_add(&p->ghost, p->tag[slot]);
    unlist(p, slot);
    detach_from_parent(p, slot);
    /* O(children), once per child: a child is orphaned at most once. */
    for (uint32_t c = p->first_child[slot], next; c != KVT_NO_SLOT; c = next) {
        next = p->next_sib[c];
        p->parent[c] = p->next_sib[c] = p->prev_sib[c] = KVT_NO_SLOT;
        unlist(p, c);
        add_orphan(p, c);
    }
    p->first_child[slot] = KVT_NO_SLOT;
    p->leaf_skips = p->inner_skips = 0;
}

static void prefix_insert(kvt_policy *p, uint32_t slot, uint32_t parent, uint64_t tag)
{
    if (slot >= p->nslots)
        return;
    if (present(p, slot))
        prefix_remove(p, slot);
    tick(p);
    p->parent[slot] = p->first_child[slot] = KVT_NO_SLOT;
    p->next_sib[slot] = p->prev_sib[slot] = KVT_NO_SLOT;
    p->stamp[slot] = p->now;
    p->tag[slot] = tag;
    p->leaf_skips = p->inner_skips = 0;
    if (parent == slot || !present(p, parent))
        parent = KVT_NO_SLOT;
    if (parent != KVT_NO_SLOT && p->state[parent] == S_ORPHAN) {
        p->reused[slot] = 0;
        add_orphan(p, slot); /* unreachable through its orphaned parent */
        return;
    }
    p->reused[slot] = (uint8_t)(tag != 0 && kvt__ghost_take(&p->ghost, tag));
    add_leaf(p, slot);
    if (parent == KVT_NO_SLOT)
        return;
    p->parent[slot] = parent;
    p->next_sib[slot] = p->first_child[parent];
    if (p->first_child[parent] != KVT_NO_SLOT)
        p->prev_sib[p->first_child[parent]] = slot;
    p->first_child[parent] = slot;
    if (p->state[parent] == S_LEAF) {
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
    p->stamp[slot] = p->now;
    p->reused[slot] = 1;
    unlist(p, slot);
    if (p->first_child[slot] == KVT_NO_SLOT)
        add_leaf(p, slot);
    else
        add_inner(p, slot);
}

/* Amortised O(1): the hint only moves forward between insertions behind it,
 * and the scan is bounded by NBUCKETS. */
static uint32_t prefix_victim(kvt_policy *p)
{
    if (!list_empty(p, orphans(p)))
        return p->prev[orphans(p)];
    /* Inner blocks are offered only once every leaf was skipped since the
     * last change, so a store skipping pinned leaves still reaches them. */
    if (p->nleaf && (p->leaf_skips < p->nleaf || p->ninner == 0)) {
        for (;; p->hint++) {
            uint32_t b = bucket(p, p->base + p->hint);
            if (!list_empty(p, b))
                return p->prev[b];
        }
    }
    if (p->ninner)
        return p->prev[inner(p)];
    return KVT_NO_SLOT;
}

/* A skipped block is in use, so it counts as touched (its key moves past
 * every other leaf's, and each leaf is offered once before any is offered
 * again); skipped inner blocks rotate until all were offered, then leaves
 * get their turn again. */
static void prefix_skip(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    if (p->state[slot] == S_INNER) {
        unlist(p, slot);
        add_inner(p, slot);
        if (++p->inner_skips >= p->ninner)
            p->leaf_skips = p->inner_skips = 0;
        return;
    }
    prefix_touch(p, slot);
    /* counted once it is a leaf, so that leaf_skips == nleaf means "every
     * leaf offered" also when skipped orphans turned into leaves */
    if (p->state[slot] == S_LEAF && p->leaf_skips < UINT32_MAX)
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
