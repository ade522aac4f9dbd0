/* s3fifo.c — S3-FIFO eviction (Yang et al., SOSP'23): small probation FIFO, main FIFO, ghost of evicted ids. */
#include <stdlib.h>

#include "alloc.h"
#include "policy/ghost.h"
#include "policy/policy.h"

/* Most blocks are used once; S3-FIFO lets them leave through a small FIFO
 * (10% of the slots) without disturbing the main FIFO, where blocks that were
 * hit while on probation live. Blocks evicted from probation leave their tag
 * in a ghost that remembers about as many tags as main holds blocks: a block
 * that comes back while remembered goes straight to main. Hits only bump a
 * 2-bit counter, so touch never moves links. */

enum { Q_NONE = 0, Q_SMALL = 1, Q_MAIN = 2 };
enum { FREQ_MAX = 3 };
/* A probation block hit at least this often is promoted rather than evicted.
 * The paper's pseudocode says freq > 1; its text and libCacheSim's default
 * promote after one hit, which also measured better on our traces at 8 of 9
 * points (docs/policies.md). */
enum { PROMOTE_FREQ = 1 };

typedef struct fifo {
    uint32_t head; /* newest, or KVT_NO_SLOT */
    uint32_t tail; /* oldest, or KVT_NO_SLOT */
    uint32_t size;
} fifo;

struct kvt_policy {
    uint32_t nslots;
    uint32_t small_target;
    uint32_t skips; /* skip() calls since the last insert or remove */
    fifo q[3];
    uint32_t *newer;
    uint32_t *older;
    uint8_t *queue; /* Q_* */
    uint8_t *freq;
    uint64_t *tag;
    kvt__ghost ghost;
};

static void fifo_push(kvt_policy *p, int qi, uint32_t s)
{
    fifo *q = &p->q[qi];
    p->queue[s] = (uint8_t)qi;
    p->newer[s] = KVT_NO_SLOT;
    p->older[s] = q->head;
    if (q->head != KVT_NO_SLOT)
        p->newer[q->head] = s;
    else
        q->tail = s;
    q->head = s;
    q->size++;
}

static void fifo_unlink(kvt_policy *p, uint32_t s)
{
    fifo *q = &p->q[p->queue[s]];
    if (p->newer[s] != KVT_NO_SLOT)
        p->older[p->newer[s]] = p->older[s];
    else
        q->head = p->older[s];
    if (p->older[s] != KVT_NO_SLOT)
        p->newer[p->older[s]] = p->newer[s];
    else
        q->tail = p->newer[s];
    q->size--;
    p->queue[s] = Q_NONE;
}

static int present(const kvt_policy *p, uint32_t s)
{
    return s < p->nslots && p->queue[s] != Q_NONE;
}

static void s3_destroy(kvt_policy *p)
{
    if (!p)
        return;
    kvt__free(p->newer);
    kvt__free(p->older);
    kvt__free(p->queue);
    kvt__free(p->freq);
    kvt__free(p->tag);
    kvt__ghost_free(&p->ghost);
    kvt__free(p);
}

static kvt_policy *s3_create(uint32_t nslots)
{
    if (nslots == 0 || nslots == KVT_NO_SLOT)
        return NULL;
    kvt_policy *p = kvt__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nslots = nslots;
    p->small_target = nslots / 10 ? nslots / 10 : 1;
    for (int i = 0; i < 3; i++)
        p->q[i].head = p->q[i].tail = KVT_NO_SLOT;
    p->newer = kvt__malloc((size_t)nslots * sizeof *p->newer);
    p->older = kvt__malloc((size_t)nslots * sizeof *p->older);
    p->queue = kvt__calloc(nslots, 1);
    p->freq = kvt__calloc(nslots, 1);
    p->tag = kvt__calloc(nslots, sizeof *p->tag);
    /* remembers nslots/2..nslots tags: about main's size, as in the paper */
    int ghost_ok = kvt__ghost_init(&p->ghost, nslots) == 0;
    if (!p->newer || !p->older || !p->queue || !p->freq || !p->tag || !ghost_ok) {
        s3_destroy(p);
        return NULL;
    }
    return p;
}

static void s3_remove(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    /* Leaving probation unpromoted is what the ghost remembers, whatever
     * the reason (eviction, expiry): if it returns soon, it earned main. */
    if (p->queue[slot] == Q_SMALL && p->tag[slot] != 0)
        kvt__ghost_add(&p->ghost, p->tag[slot]);
    fifo_unlink(p, slot);
    p->skips = 0;
}

static void s3_insert(kvt_policy *p, uint32_t slot, uint32_t parent, uint64_t tag)
{
    (void)parent;
    if (slot >= p->nslots)
        return;
    if (present(p, slot))
        fifo_unlink(p, slot);
    p->tag[slot] = tag;
    p->freq[slot] = 0;
    p->skips = 0;
    fifo_push(p, tag != 0 && kvt__ghost_take(&p->ghost, tag) ? Q_MAIN : Q_SMALL, slot);
}

static void s3_touch(kvt_policy *p, uint32_t slot)
{
    if (present(p, slot) && p->freq[slot] < FREQ_MAX)
        p->freq[slot]++;
}

/* Amortised O(1): a promotion empties a probation place, a reinsertion into
 * main spends one unit of a counter that only touch() raises. */
static uint32_t s3_victim(kvt_policy *p)
{
    fifo *small = &p->q[Q_SMALL], *main = &p->q[Q_MAIN];
    if (p->skips > 0) {
        /* The store is hunting for any evictable slot among pinned ones:
         * offer each slot once, in queue order (probation first, then main,
         * where skipped slots went), without the second chances that would
         * let a re-offered slot overtake one not offered yet. */
        return small->size ? small->tail : main->tail;
    }
    for (;;) {
        if (small->size == 0 && main->size == 0)
            return KVT_NO_SLOT;
        if (small->size > 0 && (small->size >= p->small_target || main->size == 0)) {
            uint32_t s = small->tail;
            if (p->freq[s] < PROMOTE_FREQ)
                return s;
            fifo_unlink(p, s);
            p->freq[s] = 0;
            fifo_push(p, Q_MAIN, s);
        } else {
            uint32_t s = main->tail;
            if (p->freq[s] == 0)
                return s;
            fifo_unlink(p, s);
            p->freq[s]--;
            fifo_push(p, Q_MAIN, s);
        }
    }
}

/* A pinned candidate is in use: it joins main at the new end, as a hit block
 * would, behind every slot not offered yet. */
static void s3_skip(kvt_policy *p, uint32_t slot)
{
    if (!present(p, slot))
        return;
    fifo_unlink(p, slot);
    p->freq[slot] = 0;
    fifo_push(p, Q_MAIN, slot);
    if (p->skips < UINT32_MAX)
        p->skips++;
}

const kvt_policy_ops kvt__policy_s3fifo = {
    .version = KVT_POLICY_OPS_VERSION,
    .name = "s3fifo",
    .create = s3_create,
    .destroy = s3_destroy,
    .insert = s3_insert,
    .touch = s3_touch,
    .remove = s3_remove,
    .victim = s3_victim,
    .skip = s3_skip,
};
