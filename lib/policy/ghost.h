/* ghost.h — a bounded memory of recently evicted block tags, for policies that reward returns. */
#ifndef KVT_POLICY_GHOST_H
#define KVT_POLICY_GHOST_H

#include <stdint.h>

/* Remembers the last window/2 to window tags added, in 3 to 7 bytes per tag
 * of window, with O(1) amortised add and take (one cache line each). It may
 * forget a tag early (a full bucket) and, rarely (< 1e-3 per take), report a
 * tag it never saw: callers use it as a hint, never for correctness. */
typedef struct kvt__ghost {
    uint16_t *fp;     /* buckets of two generations' fingerprints */
    uint32_t mask;    /* buckets - 1 */
    uint32_t per_gen; /* adds before the older generation is forgotten */
    uint32_t added;   /* adds into the current generation so far */
    uint32_t cur;     /* the current generation: 0 or 1 */
} kvt__ghost;

/* 0, or -1 when out of memory (g is then safe to free). */
int kvt__ghost_init(kvt__ghost *g, uint32_t window);
void kvt__ghost_free(kvt__ghost *g);
void kvt__ghost_add(kvt__ghost *g, uint64_t tag);
/* 1 when tag is remembered (and forgets it), else 0. */
int kvt__ghost_take(kvt__ghost *g, uint64_t tag);

#endif
