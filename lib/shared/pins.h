/* pins.h — the pins and leases one client holds, so that its connection's
 * end releases exactly those (and a release never takes another's pin). */
#ifndef KVT_SHARED_PINS_H
#define KVT_SHARED_PINS_H

#include <stdint.h>

#include "kvtier.h"

typedef struct kvt__pin_slot {
    kvt_key key;
    uint32_t count; /* 0: free (or never used) */
    uint32_t used;  /* the key was ever here: probing continues past it */
} kvt__pin_slot;

typedef struct kvt__pins {
    kvt__pin_slot *slot;
    uint32_t cap; /* a power of two, or 0 */
    uint32_t used;
} kvt__pins;

/* Counts one more pin of key. 0, or KVT_ENOMEM (nothing counted). */
int kvt__pins_add(kvt__pins *p, const kvt_key *key);
/* Takes one pin of key: 1 if there was one, 0 if not. */
int kvt__pins_take(kvt__pins *p, const kvt_key *key);
/* Calls fn for every key with its count, then forgets them all. */
void kvt__pins_drain(kvt__pins *p, void (*fn)(const kvt_key *key, uint32_t count, void *user),
                     void *user);
void kvt__pins_free(kvt__pins *p);

#endif
