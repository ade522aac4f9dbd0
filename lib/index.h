/*
 * index.h — the concurrent key -> entry map: which tiers hold a block, in
 * which slot, its pins and refs. The only state shared between threads.
 *
 * Entries live in one preallocated array and are named by a 32-bit id. The
 * hash table is split into shards, each with its own lock; an entry's fields
 * are guarded by the lock of the shard its key hashes to. Nothing here does
 * I/O or takes a tier lock.
 */
#ifndef KVT_INDEX_H
#define KVT_INDEX_H

#include <pthread.h>
#include <stdint.h>

#include "kvtier.h"

#define KVT_NO_ENTRY UINT32_MAX

/* Residency of an entry in one tier. */
enum {
    KVT_RES_NONE = 0,    /* not in the tier */
    KVT_RES_FILLING = 1, /* slot reserved, bytes being written; not readable */
    KVT_RES_READY = 2,   /* readable; known to the tier's policy and idle list */
    KVT_RES_LEAVING = 3, /* chosen to leave (evict, expire, remove); still readable */
    KVT_RES_ZOMBIE = 4   /* left, but readers still hold the slot; the last frees it */
};

/* 64 bytes: one cache line per block (see docs/architecture.md). */
typedef struct kvt_entry {
    kvt_key key;
    uint64_t parent;          /* hash of the previous block's key in its chain (kvt__key_hash), 0 = none */
    uint32_t slot[KVT_MAX_SLOT_TIERS];
    uint32_t next;            /* hash chain, or the free list */
    uint32_t pin_deadline_ms; /* store-relative ms; pins are live while now < deadline */
    uint32_t retain_until_s;  /* store-relative s; a soft pin from kvt_io_opts.retain_s */
    uint16_t refs[KVT_MAX_SLOT_TIERS]; /* readers copying out of each tier's slot now */
    uint16_t pins;
    uint16_t hits;            /* accesses, saturating; for admit-after-N */
    uint8_t res[KVT_MAX_SLOT_TIERS];
    /* Bit 1 << tier: that tier's copy is not known to be good — recovered
     * from media and not read back since, or it just failed verification.
     * A put does not take such a copy for the block (store.c, reserve). */
    uint8_t untrusted;
    /* KVT_ENTRY_* below, and in bits 3 + tier the epoch of the tier's fill
     * in flight (store.c, fill_begin). */
    uint8_t flags;
    /* Bit 1 << tier: FILLING there for a write-through copy that no thread
     * has started yet (it holds no slot and writes nothing until then).
     * Bit 1 << (KVT_QUEUED_TAKEN_SHIFT + tier): a flush did that copy
     * instead; the queued job only drops its ref when it runs. */
    uint8_t queued;
} __attribute__((aligned(64))) kvt_entry;

/* kvt_entry.flags */
enum {
    /* kvt_remove took the key away: the entry is unlinked from the index;
     * only the threads that hold its id (readers, fills in flight) still see
     * it, and a fill that lands here is cancelled instead of published. */
    KVT_ENTRY_REMOVED = 1u << 0,
    /* A remove waits for a persistent copy of this removed entry that
     * another thread is taking out: keeps the entry from being freed. */
    KVT_ENTRY_REMOVE_WAIT = 1u << 1,
    /* A tombstone (no residency): puts issued before the remove that left
     * it must not store the key (seq of that remove in `parent`). */
    KVT_ENTRY_TOMB = 1u << 2,
    KVT_ENTRY_EPOCH_SHIFT = 3
};
#define KVT_QUEUED_TAKEN_SHIFT 4

_Static_assert(sizeof(kvt_entry) == 64, "an index entry is one cache line");
/* Per-tier bits in untrusted, queued (two per tier) and flags (epochs from
 * bit 3) must fit their bytes: */
_Static_assert(KVT_MAX_SLOT_TIERS <= KVT_QUEUED_TAKEN_SHIFT && KVT_ENTRY_EPOCH_SHIFT + KVT_MAX_SLOT_TIERS <= 8,
               "per-tier bits of an entry fit its bytes");

typedef struct kvt_shard {
    pthread_mutex_t lock;
    uint32_t *buckets; /* heads of chains */
    uint64_t entries;
} __attribute__((aligned(64))) kvt_shard;

typedef struct kvt_index {
    kvt_entry *entries;
    uint32_t capacity;
    kvt_shard *shards;
    uint32_t nshards;     /* power of two */
    uint32_t bucket_mask; /* per shard, power of two minus one */
    unsigned shard_shift;
    pthread_mutex_t free_lock;
    uint32_t free_head;
    uint32_t free_count;
} kvt_index;

int kvt__index_init(kvt_index *ix, uint32_t capacity);
void kvt__index_destroy(kvt_index *ix);

static inline uint64_t kvt__key_hash(const kvt_key *k)
{
    uint64_t h;
    __builtin_memcpy(&h, k->b + 8, sizeof h); /* low 64 bits of the XXH3 hash */
    return h;
}

static inline kvt_shard *kvt__index_shard(kvt_index *ix, const kvt_key *k)
{
    return &ix->shards[kvt__key_hash(k) >> ix->shard_shift];
}

static inline kvt_entry *kvt__index_entry(kvt_index *ix, uint32_t id)
{
    return &ix->entries[id];
}

/* Shard lock held by the caller for the three below. */
uint32_t kvt__index_find(kvt_index *ix, kvt_shard *sh, const kvt_key *k);
void kvt__index_link(kvt_index *ix, kvt_shard *sh, uint32_t id);
void kvt__index_unlink(kvt_index *ix, kvt_shard *sh, uint32_t id);

/* Copies the keys of the shard's linked entries, tombstones left out, into
 * out (cap entries at most). Returns how many there are, which may be more
 * than cap: then only cap were copied. Shard lock held. */
size_t kvt__index_shard_keys(kvt_index *ix, kvt_shard *sh, kvt_key *out, size_t cap);

/* The entry whose key hashes to h (kvt__key_hash), or KVT_NO_ENTRY. Shard
 * lock of h held. 64-bit hashes of distinct keys meet with probability 2^-64;
 * this serves only as a policy hint (prefix parents). */
uint32_t kvt__index_find_hash(kvt_index *ix, kvt_shard *sh, uint64_t h);

static inline kvt_shard *kvt__index_shard_of_hash(kvt_index *ix, uint64_t h)
{
    return &ix->shards[h >> ix->shard_shift];
}

/* A fresh entry for key k (residency none, no pins), or KVT_NO_ENTRY when the
 * index is full. Not linked. Takes the free-list lock only. */
uint32_t kvt__index_alloc(kvt_index *ix, const kvt_key *k);
void kvt__index_free(kvt_index *ix, uint32_t id);

/* Prefetch what a find of k will touch, for batched lookups: first the
 * bucket head, a little later (once it is likely cached) the entry. */
void kvt__index_prefetch(kvt_index *ix, const kvt_key *k);
void kvt__index_prefetch_entry(kvt_index *ix, const kvt_key *k);

static inline int kvt__entry_resident(const kvt_entry *e)
{
    for (int t = 0; t < KVT_MAX_SLOT_TIERS; t++)
        if (e->res[t] != KVT_RES_NONE)
            return 1;
    return 0;
}

#endif
