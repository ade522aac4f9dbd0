/* ghost.h — a bounded memory of recently evicted block tags, for policies that reward returns. */
#ifndef KVT_POLICY_GHOST_H
#define KVT_POLICY_GHOST_H

#include <stdint.h>

/* Remembers the last window/2 to window tags added, in 3 to 7 bytes per tag
 * of window, with O(1) amortised add and take. It may forget a tag early
 * (a full bucket) and, rarely (< 1e-3 per take), report a tag it never saw:
 * callers use it as a hint, never for correctness. */
typedef struct kvt__ghost {
    uint16_t *gen[2]; /* fingerprint buckets; gen[cur] receives adds */
    uint32_t mask;    /* buckets per generation - 1 */
    uint32_t per_gen; /* adds before the older generation is forgotten */
    uint32_t added;   /* adds into gen[cur] so far */
    int cur;
} kvt__ghost;

/* 0, or -1 when out of memory (g is then safe to free). */
int kvt__ghost_init(kvt__ghost *g, uint32_t window);
void kvt__ghost_free(kvt__ghost *g);
void kvt__ghost_add(kvt__ghost *g, uint64_t tag);
/* 1 when tag is remembered (and forgets it), else 0. */
int kvt__ghost_take(kvt__ghost *g, uint64_t tag);

#endif
