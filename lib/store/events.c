/* events.c — the store's event stream: blocks leaving by eviction, expiry or removal, queued for the caller to take. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "store/events.h"
#include "index.h"
#include "store.h"

#define EVENTS_MAX (1u << 24)

/* A ring under one lock. The lock is a leaf: callers may hold tier and
 * shard locks, and nothing here takes another lock. */
struct kvt__events {
    pthread_mutex_t lock;
    kvt_event *ring;
    uint32_t cap, head, n;
    uint64_t overflow;
    int fd;
};

static void signal_fd(int fd)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is already far from zero; a reader will come. */
    ssize_t rc = write(fd, &one, sizeof one);
    (void)rc;
}

static void push(kvt_store *s, const kvt_key *key, uint8_t kind, uint8_t tier, uint8_t to)
{
    kvt__events *ev = atomic_load_explicit(&s->events, memory_order_acquire);
    if (!ev)
        return;
    kvt_event e;
    memset(&e, 0, sizeof e);
    e.key = *key;
    e.time_ns = kvt__store_now(s);
    e.kind = kind;
    e.tier = tier;
    e.to = to;
    pthread_mutex_lock(&ev->lock);
    int was_empty = ev->n == 0;
    if (ev->n == ev->cap) {
        ev->overflow++;
        was_empty = 0;
    } else {
        ev->ring[(ev->head + ev->n) % ev->cap] = e;
        ev->n++;
    }
    pthread_mutex_unlock(&ev->lock);
    if (was_empty)
        signal_fd(ev->fd);
}

void kvt__event_left(kvt_store *s, uint8_t kind, int t, uint32_t id)
{
    if (!atomic_load_explicit(&s->events, memory_order_relaxed))
        return;
    const kvt_tier_rt *tr = &s->tier[t];
    uint8_t to = tr->victims == KVT_VICTIM_DEMOTE && tr->below >= 0 ? (uint8_t)tr->below
                                                                   : (uint8_t)KVT_TIER_NONE;
    /* The entry is LEAVING tier t: alive, its key fixed, until leave(). */
    push(s, &kvt__index_entry(&s->ix, id)->key, kind, (uint8_t)t, to);
}

void kvt__event_removed(kvt_store *s, const kvt_key *key)
{
    push(s, key, KVT_EVENT_REMOVED, KVT_TIER_NONE, KVT_TIER_NONE);
}

void kvt__events_free(kvt_store *s)
{
    kvt__events *ev = atomic_exchange(&s->events, NULL);
    if (!ev)
        return;
    close(ev->fd);
    pthread_mutex_destroy(&ev->lock);
    kvt__free(ev->ring);
    kvt__free(ev);
}

int kvt__events_enable(kvt_store *s, uint32_t capacity)
{
    if (capacity == 0 || capacity > EVENTS_MAX)
        return kvt__err(KVT_ESIZE, "kvt_events_enable: capacity %u (1 .. %u)", capacity,
                        EVENTS_MAX);
    kvt__events *ev = kvt__calloc(1, sizeof *ev);
    kvt_event *ring = kvt__malloc((size_t)capacity * sizeof *ring);
    if (!ev || !ring) {
        kvt__free(ev);
        kvt__free(ring);
        return kvt__err(KVT_ENOMEM, "kvt_events_enable: %u events", capacity);
    }
    ev->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ev->fd < 0) {
        int e = errno;
        kvt__free(ev);
        kvt__free(ring);
        return kvt__err(KVT_ESYS, "kvt_events_enable: eventfd: %s", strerror(e));
    }
    pthread_mutex_init(&ev->lock, NULL);
    ev->ring = ring;
    ev->cap = capacity;
    kvt__events *none = NULL;
    if (!atomic_compare_exchange_strong(&s->events, &none, ev)) {
        close(ev->fd);
        pthread_mutex_destroy(&ev->lock);
        kvt__free(ring);
        kvt__free(ev);
        return kvt__err(KVT_EINVAL, "kvt_events_enable: the event stream is already on");
    }
    return 0;
}

static kvt__events *stream(kvt_store *s, const char *fn)
{
    kvt__events *ev = atomic_load_explicit(&s->events, memory_order_acquire);
    if (!ev)
        kvt__err(KVT_EINVAL, "%s: the event stream is not on (kvt_events_enable)", fn);
    return ev;
}

int kvt__events_take(kvt_store *s, kvt_event *out, size_t cap, uint64_t *overflow)
{
    kvt__events *ev = stream(s, "kvt_events_take");
    if (!ev)
        return KVT_EINVAL;
    if (cap && !out)
        return kvt__err(KVT_ENULL, "kvt_events_take: out is NULL");
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    pthread_mutex_lock(&ev->lock);
    size_t k = ev->n < cap ? ev->n : cap;
    for (size_t i = 0; i < k; i++)
        out[i] = ev->ring[(ev->head + i) % ev->cap];
    ev->head = (uint32_t)((ev->head + k) % ev->cap);
    ev->n -= (uint32_t)k;
    if (overflow) {
        *overflow = ev->overflow;
        ev->overflow = 0;
    }
    pthread_mutex_unlock(&ev->lock);
    return (int)k;
}

int kvt__events_fd(kvt_store *s)
{
    kvt__events *ev = stream(s, "kvt_events_fd");
    return ev ? ev->fd : KVT_EINVAL;
}
