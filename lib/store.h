/*
 * store.h — placement across tiers: admission, eviction, demotion,
 * promotion, TTL expiry, pins. The only code that spans tiers.
 *
 * Locks: each tier has one lock (its free slots, policy, idle list and
 * slot -> entry map); each index shard has one. Order: a tier lock may be held
 * while taking a shard lock, never the reverse; two shard locks are never
 * held together; no lock is held across a tier's read/write (I/O, copies).
 */
#ifndef KVT_STORE_H
#define KVT_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "index.h"
#include "policy/policy.h"
#include "tier/tier.h"

typedef struct kvt_workers kvt_workers;
typedef struct kvt__writethrough kvt__writethrough;

/* Counters per tier ("<tier>.<name>"). */
#define KVT_TIER_COUNTERS(X)                                            \
    X(hits)          /* gets served from this tier */                   \
    X(inserts)       /* blocks placed here by puts */                   \
    X(evictions)     /* blocks pushed out for room */                   \
    X(expirations)   /* blocks that passed the idle TTL */              \
    X(demotions_in)  /* blocks arriving from the tier above */          \
    X(demotion_writes) /* tier writes that brought them (batches) */    \
    X(promotions_in) /* blocks copied up here on a get */               \
    X(writethrough_in) /* blocks written here by write-through */       \
    X(dropped)       /* blocks that left the store from this tier */    \
    X(corrupt)       /* reads that failed verification */               \
    X(io_errors)     /* reads/writes that failed */                     \
    X(full)          /* slot requests refused: all pinned/busy */       \
    X(bytes_in)                                                         \
    X(bytes_out)

/* Store-wide counters. */
#define KVT_STORE_COUNTERS(X)                                           \
    X(lookups)                                                          \
    X(lookup_blocks)                                                    \
    X(lookup_hit_blocks)                                                \
    X(put_blocks)                                                       \
    X(put_stored)                                                       \
    X(put_present)                                                      \
    X(put_rejected)                                                     \
    X(get_blocks)                                                       \
    X(get_hit_blocks)                                                   \
    X(get_miss_blocks)                                                  \
    X(removed_blocks)                                                   \
    X(pins)                                                             \
    X(lease_expired)                                                    \
    X(tickets_completed)                                                \
    X(writethrough_dropped)                                             \
    X(put_cancelled)   /* blocks of puts issued before a remove of their key */ \
    X(fills_cancelled) /* copies in flight (puts, demotions, promotions,   \
                          write-through) of a key removed meanwhile */  \
    X(flush_written)   /* blocks kvt_flush/KVT_IO_DURABLE/close wrote down */ \
    X(flushes)         /* flushes of the persistent tier (fdatasync) */ \
    X(close_unflushed) /* blocks close left unwritten: out of time or room */ \
    X(assembling)      /* layer-wise puts: blocks incomplete now (a gauge) */ \
    X(assembled)       /* blocks completed by layer-wise puts, committed */ \
    X(assembly_aborted) /* incomplete ones dropped: remove, clear, close, age */

typedef struct kvt_tier_stats {
#define KVT_X_FIELD(name) _Atomic uint64_t name;
    KVT_TIER_COUNTERS(KVT_X_FIELD)
} kvt_tier_stats;

typedef struct kvt_store_stats {
    KVT_STORE_COUNTERS(KVT_X_FIELD)
#undef KVT_X_FIELD
} kvt_store_stats;

typedef struct kvt_tier_rt {
    int on;
    int id;
    const char *name;
    const kvt_tier_ops *ops;
    kvt_tier_impl *impl;
    uint32_t nslots;
    uint64_t ttl_ns;
    int victims;
    int admit;
    uint32_t admit_after;
    int below; /* next open tier down, or -1 */

    pthread_mutex_t lock; /* guards everything below */
    const kvt_policy_ops *pol;
    kvt_policy *pst;
    uint32_t *slot_entry; /* entry in the policy at this slot, or KVT_NO_ENTRY */
    uint32_t *free_slots;
    uint32_t nfree;
    /* Idle list: slots in order of last access, for exact TTL expiry. Only
     * kept when the tier has a TTL. */
    uint32_t *idle_prev, *idle_next;
    uint64_t *idle_stamp;
    uint32_t idle_head, idle_tail;
    _Atomic uint64_t next_expiry; /* ns; UINT64_MAX when nothing can expire */

    kvt_tier_stats st;
} kvt_tier_rt;

struct kvt_store {
    uint32_t magic;
    kvt_config cfg;
    uint64_t block_bytes;
    uint32_t frags;
    uint64_t frag_bytes;
    kvt_index ix;
    kvt_tier_rt tier[KVT_MAX_SLOT_TIERS]; /* slot tiers: they come first, so index = instance */
    int put_tier; /* where puts land: the top open tier that admits on put */
    uint64_t pending_wait_ns; /* a put's wait for another put of its key (put.c) */
    int top_tier; /* the fastest open tier */
    int tier_unavailable[KVT_MAX_TIERS];
    /* Key-addressed tier instances (lib/store/keyed.c), in config order:
     * their instance index, ops and state. Not in tier[]'s slot loops. */
    struct kvt_keyed_rt {
        int index;
        const kvt_tier_ops *ops;
        kvt_tier_impl *impl;
        _Atomic uint64_t hits, reads, writes, removes, io_errors;
    } keyed[KVT_MAX_TIERS];
    int nkeyed;

    kvt_clock_fn clock;
    void *clock_user;
    int manual_clock;
    _Atomic uint64_t manual_now;
    uint64_t epoch_ns;

    _Atomic int closing;
    _Atomic int active;
    /* The API's (lib/api.c, lib/worker.c): they call the store, never the
     * reverse; the store only counts their pending tickets for kvt_stats. */
    kvt_workers *workers;
    _Atomic uint64_t tickets_pending;
    /* The store's own threads (lib/executor.h). */
    struct kvt__writethrough *writethrough; /* write-through copies; NULL: none */
    struct kvt__executor *demoter; /* runs puts' demotion writes; may be NULL */
    int durable_tier; /* the first persistent tier, or -1 */

    /* Removes against fills in flight (store.c, "remove"). Fills of the
     * persistent tier count themselves under an epoch; a remove flips the
     * epoch and waits until the old one's fills are done. */
    _Atomic unsigned fill_epoch;
    _Atomic uint64_t fills[2];
    pthread_mutex_t barrier_lock;
    _Atomic uint64_t discard_failures; /* invalidations on media that failed */
    /* Puts in progress by issue sequence (the remove count when issued),
     * and the tombstones removes leave for the older ones. */
    pthread_mutex_t rm_lock;
    uint64_t remove_seq;
    struct kvt__pending *pending; /* ascending seqs with counts, a ring */
    uint32_t npending, pending_head, pending_cap;
    struct kvt__tomb *tombs;      /* in remove order, a ring */
    struct down_work *close_work; /* kvt_close's write-down batch, or NULL */
    uint32_t ntombs, tomb_head, tomb_cap;
    kvt_store_stats st;
    _Atomic(struct kvt__events *) events; /* events.c: the event stream, NULL while off */
    _Atomic(struct kvt__groups *) groups; /* store/groups.c: key -> group tags, NULL until used */
    _Atomic(struct kvt__assembly *) assembly; /* store/assemble.c: layer-wise puts, NULL until used */
};

#define KVT_STORE_MAGIC 0x6b767473u /* "kvts" */

int kvt__store_open(const kvt_config *cfg, kvt_store **out);
void kvt__store_close(kvt_store *s);

uint64_t kvt__store_now(kvt_store *s);
int kvt__store_expire(kvt_store *s);
int kvt__store_lookup(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers,
                      uint32_t lease_ms);
/* kvt_contains: per key, not stopping at a miss. */
int kvt__store_contains(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers);
int kvt__store_pin(kvt_store *s, const kvt_key *keys, size_t n, uint32_t lease_ms);
int kvt__store_release(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status);
/* A put's issue point (sync: its call; async: kvt_put's call, before the
 * ticket is returned): returns the sequence the put carries, to end with
 * kvt__store_put_end once it is complete. KVT_ENOMEM when it can't be
 * recorded. */
int kvt__store_put_begin(kvt_store *s, uint64_t *seq);
void kvt__store_put_end(kvt_store *s, uint64_t seq);
int kvt__store_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                   const kvt_io_opts *o, uint64_t seq);
/* kvt_flush: keys NULL (n 0) for every block held only above the
 * persistent tier. */
int kvt__store_flush(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status);
/* kvt_close's write-down: kvt__store_flush of everything, for at most
 * budget_ms. */
void kvt__store_close_flush(kvt_store *s, uint64_t budget_ms);
int kvt__store_get(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                   const kvt_io_opts *o);
/* kvt_io_opts' fragment range for op (KVT_JOB_PUT/GET), checked (KVT_EINVAL
 * out of the block, KVT_ENOTSUP where not supported); 0/0 for the whole
 * block, also for opts of a size before the range (lib/store/range.c). */
int kvt__io_frag_range(const kvt_store *s, const kvt_io_opts *o, int op, uint32_t *first,
                       uint32_t *count, const char *fn);
/* kvt_put of a fragment range (count > 0) of each block: assembles the
 * blocks in reserved slots of the put tier (lib/store/assemble.c). */
int kvt__assemble_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                      const kvt_io_opts *o, uint32_t first, uint32_t count);
/* Aborts the blocks assembling under keys (kvt_remove), all of them
 * (kvt_clear), or all of them and frees the table (kvt_close, no call
 * active). */
void kvt__assemble_drop(kvt_store *s, const kvt_key *keys, size_t n);
void kvt__assemble_drop_all(kvt_store *s);
void kvt__assemble_close(kvt_store *s);
/* Aborts the blocks assembling for longer than their age limit. */
void kvt__assemble_expire(kvt_store *s);
/* Reads n range xfers (count > 0, host memory) from one tier. */
void kvt__range_read(kvt_store *s, kvt_tier_rt *tr, kvt_xfer *x, size_t n);
/* kvt_touch: an access without a copy. */
int kvt__store_touch(kvt_store *s, const kvt_key *keys, size_t n);
int kvt__store_remove(kvt_store *s, const kvt_key *keys, size_t n);
/* kvt_clear: kvt__store_remove of every key the index holds. */
int kvt__store_clear(kvt_store *s);
int kvt__store_stats(kvt_store *s, kvt_stat_fn fn, void *user);

#endif
