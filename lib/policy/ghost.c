/* ghost.c — recently evicted tags as 16-bit fingerprints in two rotating generations. */
#include "policy/ghost.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* A FIFO of tags would need a queue plus an index; two generations of a
 * bucketed fingerprint table give the same "forget the oldest" behaviour for
 * one sweep per window/2 adds. A bucket holds 8 fingerprints of each
 * generation side by side (32 bytes), so add and take read one cache line:
 * at millions of slots the table is far bigger than the caches, and a miss
 * costs more than everything else the policy does. */
enum { WAYS = 8, BUCKET = 2 * WAYS };

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
    /* at most 5 of 8 ways of a generation in use on average: few overflow */
    uint64_t buckets = 1;
    while (buckets * 5 < g->per_gen)
        buckets <<= 1;
    g->mask = (uint32_t)(buckets - 1);
    g->fp = kvt__calloc(buckets * BUCKET, sizeof *g->fp);
    return g->fp ? 0 : -1;
}

void kvt__ghost_free(kvt__ghost *g)
{
    kvt__free(g->fp);
    g->fp = NULL;
}

static uint16_t *bucket_of(const kvt__ghost *g, uint64_t h)
{
    return g->fp + (size_t)(h & g->mask) * BUCKET;
}

void kvt__ghost_add(kvt__ghost *g, uint64_t tag)
{
    uint64_t h = mix64(tag);
    uint16_t fp = fingerprint(h);
    uint16_t *b = bucket_of(g, h) + g->cur * WAYS;
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
        /* the older generation is forgotten and becomes the current one */
        g->cur ^= 1;
        for (size_t i = 0; i <= g->mask; i++)
            memset(g->fp + i * BUCKET + g->cur * WAYS, 0, WAYS * sizeof *g->fp);
        g->added = 0;
    }
}

int kvt__ghost_take(kvt__ghost *g, uint64_t tag)
{
    uint64_t h = mix64(tag);
    uint16_t fp = fingerprint(h);
    uint16_t *b = bucket_of(g, h);
    for (int i = 0; i < BUCKET; i++) {
        if (b[i] == fp) {
            b[i] = 0;
            return 1;
        }
    }
    return 0;
}
