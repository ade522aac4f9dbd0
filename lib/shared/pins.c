/* pins.c — a small open-addressing table of the keys a client has pinned. */
#include "shared/pins.h"

#include <string.h>

#include "alloc.h"

static uint32_t key_hash(const kvt_key *k)
{
    uint32_t h;
    memcpy(&h, k->b + 12, sizeof h); /* keys are hashes already */
    return h;
}

static kvt__pin_slot *find(kvt__pins *p, const kvt_key *key, int for_insert)
{
    if (!p->cap)
        return NULL;
    uint32_t mask = p->cap - 1, i = key_hash(key) & mask;
    kvt__pin_slot *free_slot = NULL;
    for (uint32_t probe = 0; probe < p->cap; probe++, i = (i + 1) & mask) {
        kvt__pin_slot *s = &p->slot[i];
        if (!s->used)
            return for_insert ? (free_slot ? free_slot : s) : NULL;
        if (memcmp(&s->key, key, sizeof *key) == 0)
            return s;
        if (!s->count && !free_slot)
            free_slot = s;
    }
    return for_insert ? free_slot : NULL;
}

static int grow(kvt__pins *p)
{
    uint32_t cap = p->cap ? p->cap * 2 : 64;
    if (cap < p->cap)
        return KVT_ENOMEM;
    kvt__pins bigger = {.slot = kvt__calloc(cap, sizeof *bigger.slot), .cap = cap};
    if (!bigger.slot)
        return KVT_ENOMEM;
    for (uint32_t i = 0; i < p->cap; i++) {
        if (!p->slot[i].count)
            continue; /* dropping released keys here keeps probes short */
        kvt__pin_slot *s = find(&bigger, &p->slot[i].key, 1);
        *s = p->slot[i];
        bigger.used++;
    }
    kvt__free(p->slot);
    *p = bigger;
    return 0;
}

int kvt__pins_add(kvt__pins *p, const kvt_key *key, uint64_t until)
{
    kvt__pin_slot *s = find(p, key, 0);
    if (s && s->count) {
        if (s->count == UINT32_MAX)
            return KVT_ENOMEM;
        s->count++;
        if (until > s->until)
            s->until = until;
        return 0;
    }
    if ((p->used + 1) * 2 > p->cap && grow(p))
        return KVT_ENOMEM;
    s = find(p, key, 1);
    if (!s->used)
        p->used++;
    s->key = *key;
    s->count = 1;
    s->used = 1;
    s->until = until;
    return 0;
}

int kvt__pins_take(kvt__pins *p, const kvt_key *key, uint64_t now)
{
    kvt__pin_slot *s = find(p, key, 0);
    if (!s || !s->count)
        return 0;
    if (now > s->until) {
        s->count = 0;
        return 0;
    }
    s->count--;
    return 1;
}

void kvt__pins_drain(kvt__pins *p, uint64_t now,
                     void (*fn)(const kvt_key *key, uint32_t count, void *user), void *user)
{
    for (uint32_t i = 0; i < p->cap; i++)
        if (p->slot[i].count && now <= p->slot[i].until)
            fn(&p->slot[i].key, p->slot[i].count, user);
    kvt__pins_free(p);
}

void kvt__pins_free(kvt__pins *p)
{
    kvt__free(p->slot);
    memset(p, 0, sizeof *p);
}
