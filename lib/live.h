/* live.h — a set of live handles, so that a second close is told from a first
 * without touching freed memory (kvt_close of a store, of a connected store).
 * Only open and close take its lock; the data path never does. */
#ifndef KVT_LIVE_H
#define KVT_LIVE_H

#include <pthread.h>
#include <stddef.h>

typedef struct kvt__live {
    pthread_mutex_t lock;
    void **items;
    size_t len, cap;
} kvt__live;

#define KVT__LIVE_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0}

/* 0, or KVT_ENOMEM. */
int kvt__live_add(kvt__live *l, void *p);
/* 1 when p was in the set (and is taken out), 0 when it was not. */
int kvt__live_take(kvt__live *l, void *p);

#endif
