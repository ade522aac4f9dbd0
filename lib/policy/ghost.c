/* ghost.c — recently evicted tags as 16-bit fingerprints in two rotating generations. */
#include "policy/ghost.h"

#include <stdlib.h>
#include <string.h>

/* A FIFO of tags would need a queue plus an index; two generations of a
 * bucketed fingerprint table give the same "forget the oldest" behaviour with
 * one memset per window/2 adds. A bucket is 8 fingerprints (16 bytes), so a
 * lookup reads one cache line per generation. */
enum { WAYS = 8 };

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: tags may be small or sequential numbers */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint16_t fingerprint(uint64_t h)
{
    uint16_t fp = (uint16_t)(h >> 48);
    return fp ? fp : 1; /* 0 marks an empty way */
}

int kvt__ghost_init(kvt__ghost *g, uint32_t window)
{
    memset(g, 0, sizeof *g);
    g->per_gen = window / 2 ? window / 2 : 1;
    /* at most 5 of 8 ways in use on average: few buckets overflow */
    uint64_t buckets = 1;
    while (buckets * 5 < g->per_gen)
        buckets <<= 1;
    g->mask = (uint32_t)(buckets - 1);
    for (int i = 0; i < 2; i++) {
        g->gen[i] = calloc(buckets * WAYS, sizeof *g->gen[i]);
        if (!g->gen[i]) {
            kvt__ghost_free(g);
            return -1;
        }
    }
    return 0;
}

void kvt__ghost_free(kvt__ghost *g)
{
    free(g->gen[0]);
    free(g->gen[1]);
    g->gen[0] = g->gen[1] = NULL;
}

void kvt__ghost_add(kvt__ghost *g, uint64_t tag)
{
    uint64_t h = mix64(tag);
    uint16_t fp = fingerprint(h);
    uint16_t *b = g->gen[g->cur] + (size_t)(h & g->mask) * WAYS;
    int way = -1;
    for (int i = 0; i < WAYS; i++) {
        if (b[i] == fp)
            return;
        if (b[i] == 0 && way < 0)
            way = i;
    }
    if (way < 0)
        way = (int)((h >> 32) & (WAYS - 1)); /* full: forget one early */
    b[way] = fp;
    if (++g->added >= g->per_gen) {
        g->cur ^= 1;
        memset(g->gen[g->cur], 0, ((size_t)g->mask + 1) * WAYS * sizeof *g->gen[0]);
        g->added = 0;
    }
}

int kvt__ghost_take(kvt__ghost *g, uint64_t tag)
{
    uint64_t h = mix64(tag);
    uint16_t fp = fingerprint(h);
    for (int k = 0; k < 2; k++) {
        uint16_t *b = g->gen[k] + (size_t)(h & g->mask) * WAYS;
        for (int i = 0; i < WAYS; i++) {
            if (b[i] == fp) {
                b[i] = 0;
                return 1;
            }
        }
    }
    return 0;
}
