/* live.c — a set of live handles (live.h). */
#include "live.h"

#include "alloc.h"
#include "kvtier.h"

int kvt__live_add(kvt__live *l, void *p)
{
    pthread_mutex_lock(&l->lock);
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        void **items = kvt__realloc(l->items, cap * sizeof *items);
        if (!items) {
            pthread_mutex_unlock(&l->lock);
            return KVT_ENOMEM;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = p;
    pthread_mutex_unlock(&l->lock);
    return 0;
}

int kvt__live_take(kvt__live *l, void *p)
{
    int found = 0;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->len; i++)
        if (l->items[i] == p) {
            l->items[i] = l->items[--l->len];
            found = 1;
            break;
        }
    if (!l->len) { /* nothing left behind at exit (leak checkers) */
        kvt__free(l->items);
        l->items = NULL;
        l->cap = 0;
    }
    pthread_mutex_unlock(&l->lock);
    return found;
}
