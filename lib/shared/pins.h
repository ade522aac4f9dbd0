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
    uint64_t until; /* the latest lease end of these pins, store time (ns) */
} kvt__pin_slot;

typedef struct kvt__pins {
    kvt__pin_slot *slot;
    uint32_t cap; /* a power of two, or 0 */
    uint32_t used;
} kvt__pins;

/* Counts one more pin of key, held until `until` (ns). 0, or KVT_ENOMEM
 * (nothing counted). */
int kvt__pins_add(kvt__pins *p, const kvt_key *key, uint64_t until);
/* Takes one pin of key: 1 if there was one whose lease has not ended by
 * `now`, 0 if not. Pins whose leases all ended are forgotten, not released:
 * the store ended them, and a release could take a pin another client took
 * since (a block's pins share one deadline, the latest). */
int kvt__pins_take(kvt__pins *p, const kvt_key *key, uint64_t now);
/* Calls fn for every key with live pins at `now` and its count, then
 * forgets them all. */
void kvt__pins_drain(kvt__pins *p, uint64_t now,
                     void (*fn)(const kvt_key *key, uint32_t count, void *user), void *user);
void kvt__pins_free(kvt__pins *p);

#endif
