/* groups.c — group tags of keys (kvt_io_opts.group) and kvt_remove_group.
 *
 * A side table from key to group, since an index entry has no byte left (one
 * cache line). A key's tag is that of the last put naming it, set once the
 * put has stored its blocks (so a sweep never takes the tag of a block still
 * on its way in); a put without a group clears it, so a tag left behind by a
 * block that was evicted or removed never reaches a later block of the same
 * key. Such stale tags, and those of blocks a put could not store, are swept
 * when the table has grown past twice the store's blocks. The table is made
 * by the first tagged put: stores that never use groups pay one atomic load
 * per put. */
#include "internal.h"
#include "groups.h"

typedef struct group_slot {
    kvt_key key;
    uint64_t group; /* 0: empty */
} group_slot;

struct kvt__groups {
    pthread_mutex_t lock;
    group_slot *tab;
    size_t cap, n;  /* cap a power of two, n <= cap / 2 */
    size_t sweep_at; /* sweep stale tags when n reaches it */
};

#define GROUPS_MIN_CAP 1024

uint64_t kvt__io_group(const kvt_io_opts *o)
{
    return o && o->size >= offsetof(kvt_io_opts, group) + sizeof o->group ? o->group : 0;
}

static size_t home(const kvt__groups *g, const kvt_key *k)
{
    uint64_t h;
    memcpy(&h, k->b, sizeof h); /* keys are hashes already */
    return (size_t)(h * 0x9e3779b97f4a7c15ull >> 17) & (g->cap - 1);
}

static size_t find(const kvt__groups *g, const kvt_key *k)
{
    for (size_t i = home(g, k);; i = (i + 1) & (g->cap - 1))
        if (!g->tab[i].group || !memcmp(&g->tab[i].key, k, sizeof *k))
            return i;
}

/* Backward-shift deletion keeps probe runs unbroken without tombstones. */
static void erase_at(kvt__groups *g, size_t i)
{
    size_t mask = g->cap - 1;
    for (size_t j = (i + 1) & mask; g->tab[j].group; j = (j + 1) & mask) {
        size_t h = home(g, &g->tab[j].key);
        /* Entry j may move to the hole at i when its home is not in (i, j]. */
        if (((j - h) & mask) >= ((j - i) & mask)) {
            g->tab[i] = g->tab[j];
            i = j;
        }
    }
    g->tab[i].group = 0;
    g->n--;
}

static int grow(kvt__groups *g)
{
    size_t cap = g->cap ? 2 * g->cap : GROUPS_MIN_CAP;
    group_slot *old = g->tab, *tab = kvt__calloc(cap, sizeof *tab);
    if (!tab)
        return kvt__err(KVT_ENOMEM, "kvt_put: group table of %zu keys", cap);
    size_t oldcap = g->cap;
    g->tab = tab;
    g->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].group)
            g->tab[find(g, &old[i].key)] = old[i];
    kvt__free(old);
    return 0;
}

/* Drops the tags of keys no tier holds. Lock held, so only the index is
 * asked: a key-addressed tier's answer is I/O (and may fail), and every
 * tagging put waits on this lock. With such tiers a tag stays (the backend
 * may hold the block, and kvt_remove_group passes removes on to it). */
static void sweep(kvt_store *s, kvt__groups *g)
{
    for (size_t i = 0; i < g->cap;) {
        if (g->tab[i].group && !s->nkeyed && kvt__contains_local(s, &g->tab[i].key, 1, NULL) == 0)
            erase_at(g, i); /* slot i now holds a shifted entry: look again */
        else
            i++;
    }
    size_t blocks = 0;
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
        blocks += s->tier[t].on ? s->tier[t].nslots : 0;
    size_t floor = 2 * blocks > GROUPS_MIN_CAP ? 2 * blocks : GROUPS_MIN_CAP;
    g->sweep_at = 2 * g->n > floor ? 2 * g->n : floor;
}

static kvt__groups *groups_get(kvt_store *s)
{
    kvt__groups *g = atomic_load_explicit(&s->groups, memory_order_acquire);
    if (g)
        return g;
    kvt__groups *fresh = kvt__calloc(1, sizeof *fresh);
    if (!fresh)
        return NULL;
    pthread_mutex_init(&fresh->lock, NULL);
    if (grow(fresh)) {
        pthread_mutex_destroy(&fresh->lock);
        kvt__free(fresh);
        return NULL;
    }
    fresh->sweep_at = GROUPS_MIN_CAP / 2;
    if (!atomic_compare_exchange_strong(&s->groups, &g, fresh)) {
        kvt__free(fresh->tab);
        pthread_mutex_destroy(&fresh->lock);
        kvt__free(fresh);
        return g;
    }
    return fresh;
}

int kvt__groups_tag(kvt_store *s, const kvt_key *keys, size_t n, const kvt_io_opts *o)
{
    uint64_t group = kvt__io_group(o);
    kvt__groups *g = group ? groups_get(s)
                           : atomic_load_explicit(&s->groups, memory_order_acquire);
    if (!g)
        return group ? kvt__err(KVT_ENOMEM, "kvt_put: group table") : 0;
    pthread_mutex_lock(&g->lock);
    if (!group && !g->n) {
        pthread_mutex_unlock(&g->lock);
        return 0;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!group) {
            size_t at = find(g, &keys[i]);
            if (g->tab[at].group)
                erase_at(g, at);
            continue;
        }
        if (g->n + 1 > g->cap / 2) {
            if (g->n + 1 > g->sweep_at)
                sweep(s, g);
            if (g->n + 1 > g->cap / 2 && (rc = grow(g)))
                break;
        }
        size_t at = find(g, &keys[i]);
        if (!g->tab[at].group) {
            g->tab[at].key = keys[i];
            g->n++;
        }
        g->tab[at].group = group;
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int kvt__store_remove_group(kvt_store *s, uint64_t group)
{
    kvt__groups *g = atomic_load_explicit(&s->groups, memory_order_acquire);
    if (!g)
        return 0;
    pthread_mutex_lock(&g->lock);
    size_t k = 0;
    for (size_t i = 0; i < g->cap; i++)
        k += g->tab[i].group == group;
    kvt_key *keys = k ? kvt__malloc(k * sizeof *keys) : NULL;
    if (k && !keys) {
        pthread_mutex_unlock(&g->lock);
        return kvt__err(KVT_ENOMEM, "kvt_remove_group: %zu keys", k);
    }
    size_t m = 0;
    for (size_t i = 0; i < g->cap;) {
        if (g->tab[i].group == group) {
            keys[m++] = g->tab[i].key;
            erase_at(g, i);
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&g->lock);
    int rc = m ? kvt__store_remove(s, keys, m) : 0;
    kvt__free(keys);
    return rc;
}

void kvt__groups_free(kvt_store *s)
{
    kvt__groups *g = atomic_exchange(&s->groups, NULL);
    if (!g)
        return;
    kvt__free(g->tab);
    pthread_mutex_destroy(&g->lock);
    kvt__free(g);
}
