/* index.c — sharded hash table of block entries with chained buckets. */
#include "index.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"
#include "error.h"

#define HUGE_PAGE (2u << 20)

static uint32_t pow2_at_least(uint64_t v)
{
    uint32_t p = 1;
    while (p < v && p < (1u << 31))
        p <<= 1;
    return p;
}

int kvt__index_init(kvt_index *ix, uint32_t capacity)
{
    memset(ix, 0, sizeof *ix);
    if (capacity == 0 || capacity >= KVT_NO_ENTRY)
        return kvt__err(KVT_ESIZE, "index capacity %u", capacity);
    ix->capacity = capacity;
    /* Enough shards that 64 threads rarely meet, few enough that tiny stores
     * stay small. */
    ix->nshards = capacity >= 4096 ? 256 : 16;
    unsigned bits = 0;
    while ((1u << bits) < ix->nshards)
        bits++;
    ix->shard_shift = 64 - bits;
    uint32_t per_shard = pow2_at_least((uint64_t)capacity / ix->nshards + 1);
    ix->bucket_mask = per_shard - 1;

    /* Big indexes are read at random: huge pages save a TLB miss per lookup. */
    size_t entry_bytes = (size_t)capacity * sizeof(kvt_entry);
    size_t entry_align = entry_bytes >= HUGE_PAGE ? HUGE_PAGE : 64;
    entry_bytes = (entry_bytes + entry_align - 1) / entry_align * entry_align;
    ix->entries = kvt__aligned_alloc(entry_align, entry_bytes);
    if (ix->entries && entry_align == HUGE_PAGE)
        madvise(ix->entries, entry_bytes, MADV_HUGEPAGE);
    ix->shards = kvt__aligned_alloc(64, ix->nshards * sizeof(kvt_shard));
    if (ix->shards) /* before any goto: kvt__index_destroy reads every shard */
        memset(ix->shards, 0, ix->nshards * sizeof(kvt_shard));
    if (!ix->entries || !ix->shards)
        goto nomem;
    for (uint32_t s = 0; s < ix->nshards; s++) {
        ix->shards[s].buckets = kvt__malloc((size_t)per_shard * sizeof(uint32_t));
        if (!ix->shards[s].buckets)
            goto nomem;
        memset(ix->shards[s].buckets, 0xff, (size_t)per_shard * sizeof(uint32_t));
        pthread_mutex_init(&ix->shards[s].lock, NULL);
    }
    for (uint32_t i = 0; i < capacity; i++)
        ix->entries[i].next = i + 1 < capacity ? i + 1 : KVT_NO_ENTRY;
    ix->free_head = 0;
    ix->free_count = capacity;
    pthread_mutex_init(&ix->free_lock, NULL);
    return 0;
nomem:
    kvt__index_destroy(ix);
    return kvt__err(KVT_ENOMEM, "index of %u entries", capacity);
}

void kvt__index_destroy(kvt_index *ix)
{
    if (ix->shards) {
        for (uint32_t s = 0; s < ix->nshards; s++) {
            if (ix->shards[s].buckets) {
                kvt__free(ix->shards[s].buckets);
                pthread_mutex_destroy(&ix->shards[s].lock);
            }
        }
        pthread_mutex_destroy(&ix->free_lock);
    }
    kvt__free(ix->shards);
    kvt__free(ix->entries);
    memset(ix, 0, sizeof *ix);
}

static inline uint32_t *bucket_of(kvt_index *ix, kvt_shard *sh, const kvt_key *k)
{
    return &sh->buckets[kvt__key_hash(k) & ix->bucket_mask];
}

uint32_t kvt__index_find(kvt_index *ix, kvt_shard *sh, const kvt_key *k)
{
    uint32_t id = *bucket_of(ix, sh, k);
    while (id != KVT_NO_ENTRY) {
        const kvt_entry *e = &ix->entries[id];
        if (memcmp(e->key.b, k->b, sizeof k->b) == 0)
            return id;
        id = e->next;
    }
    return KVT_NO_ENTRY;
}

size_t kvt__index_shard_keys(kvt_index *ix, kvt_shard *sh, kvt_key *out, size_t cap)
{
    size_t n = 0;
    for (uint32_t b = 0; b <= ix->bucket_mask; b++) {
        for (uint32_t id = sh->buckets[b]; id != KVT_NO_ENTRY; id = ix->entries[id].next) {
            const kvt_entry *e = &ix->entries[id];
            if (e->flags & KVT_ENTRY_TOMB)
                continue;
            if (n < cap)
                out[n] = e->key;
            n++;
        }
    }
    return n;
}

uint32_t kvt__index_find_hash(kvt_index *ix, kvt_shard *sh, uint64_t h)
{
    uint32_t id = sh->buckets[h & ix->bucket_mask];
    while (id != KVT_NO_ENTRY) {
        const kvt_entry *e = &ix->entries[id];
        if (kvt__key_hash(&e->key) == h)
            return id;
        id = e->next;
    }
    return KVT_NO_ENTRY;
}

void kvt__index_link(kvt_index *ix, kvt_shard *sh, uint32_t id)
{
    kvt_entry *e = &ix->entries[id];
    uint32_t *b = bucket_of(ix, sh, &e->key);
    e->next = *b;
    /* Atomic: kvt__index_prefetch reads bucket heads without the lock. */
    __atomic_store_n(b, id, __ATOMIC_RELEASE);
    sh->entries++;
}

void kvt__index_unlink(kvt_index *ix, kvt_shard *sh, uint32_t id)
{
    kvt_entry *e = &ix->entries[id];
    uint32_t *p = bucket_of(ix, sh, &e->key);
    while (*p != KVT_NO_ENTRY) {
        if (*p == id) {
            __atomic_store_n(p, e->next, __ATOMIC_RELEASE);
            e->next = KVT_NO_ENTRY;
            sh->entries--;
            return;
        }
        p = &ix->entries[*p].next;
    }
}

uint32_t kvt__index_alloc(kvt_index *ix, const kvt_key *k)
{
    pthread_mutex_lock(&ix->free_lock);
    uint32_t id = ix->free_head;
    if (id != KVT_NO_ENTRY) {
        ix->free_head = ix->entries[id].next;
        ix->free_count--;
    }
    pthread_mutex_unlock(&ix->free_lock);
    if (id == KVT_NO_ENTRY)
        return id;
    kvt_entry *e = &ix->entries[id];
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->next = KVT_NO_ENTRY;
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
        e->slot[t] = UINT32_MAX;
    return id;
}

void kvt__index_free(kvt_index *ix, uint32_t id)
{
    pthread_mutex_lock(&ix->free_lock);
    ix->entries[id].next = ix->free_head;
    ix->free_head = id;
    ix->free_count++;
    pthread_mutex_unlock(&ix->free_lock);
}

void kvt__index_prefetch(kvt_index *ix, const kvt_key *k)
{
    __builtin_prefetch(bucket_of(ix, kvt__index_shard(ix, k), k));
}

void kvt__index_prefetch_entry(kvt_index *ix, const kvt_key *k)
{
    /* A stale head only prefetches the wrong line; find() rereads it locked. */
    uint32_t id = __atomic_load_n(bucket_of(ix, kvt__index_shard(ix, k), k), __ATOMIC_RELAXED);
    if (id < ix->capacity)
        __builtin_prefetch(&ix->entries[id]);
}
