/* events.h — the store's event stream (events.c): the hooks the store's eviction, expiry and removal paths call. */
#ifndef KVT_EVENTS_H
#define KVT_EVENTS_H

#include <stdint.h>

#include "kvtier.h"

typedef struct kvt__events kvt__events;

/* Entry id, LEAVING tier t, leaves it (kind KVT_EVENT_EVICTED or _EXPIRED).
 * A no-op while the stream is off: one atomic load. */
void kvt__event_left(kvt_store *s, uint8_t kind, int t, uint32_t id);
/* kvt_remove found key held. */
void kvt__event_removed(kvt_store *s, const kvt_key *key);

int kvt__events_enable(kvt_store *s, uint32_t capacity);
int kvt__events_take(kvt_store *s, kvt_event *out, size_t cap, uint64_t *overflow);
int kvt__events_fd(kvt_store *s);
/* At close (free_store). */
void kvt__events_free(kvt_store *s);

#endif
