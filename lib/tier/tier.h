/*
 * tier.h — the tier interface: a versioned table of functions over slots.
 *
 * A tier owns `nslots` slots of `slot_bytes` (= block bytes) each and moves
 * bytes between its slots and memory it is handed. It knows nothing of keys'
 * meaning, TTLs, policies or other tiers: the store decides which slot holds
 * what. Persistent tiers also receive the key with every write (to make the
 * block self-verifying on media) and hand back (slot, key) pairs on recovery.
 *
 * Every function may be called from several threads at once on different
 * slots; the store never issues two operations on one slot at the same time.
 * No function calls back into the store.
 */
#ifndef KVT_TIER_H
#define KVT_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

#define KVT_TIER_OPS_VERSION 1

/* Capability bits the store reads instead of asking which tier it is. */
enum {
    KVT_TCAP_HOST_PTR = 1u << 0,   /* slot_ptr() gives host-addressable memory */
    KVT_TCAP_PERSISTENT = 1u << 1, /* survives close/crash; has recover() */
    KVT_TCAP_DEVICE_PTR = 1u << 2, /* slot_ptr() gives CUDA device memory */
    KVT_TCAP_VERIFIES = 1u << 3,   /* read() may report KVT_ECORRUPT */
    /* read()/write() accept KVT_MEM_CUDA caller memory (DRAM, HBM). The
     * store hands device memory to other tiers through kvt__cuda_tier_read/
     * _write (lib/cuda.h), which bounce it through pinned host staging. */
    KVT_TCAP_CUDA_MEM = 1u << 4
};

typedef struct kvt_tier_impl kvt_tier_impl; /* a tier's private state */

/* What the store knows when it opens a tier. */
typedef struct kvt_tier_params {
    kvt_tier id;
    uint64_t capacity;     /* bytes, as configured */
    uint64_t block_bytes;  /* payload bytes per slot */
    uint32_t block_tokens; /* geometry recorded by persistent tiers */
    uint32_t frags;        /* geometry recorded by persistent tiers */
    uint32_t key_mode;     /* kvt_key_mode of the keys: recorded by persistent tiers,
                              which refuse a file of another mode (KVT_EGEOMETRY) */
    int numa_node;         /* -1: choose */
    int hugepages;
    int queue_depth;
    int sqpoll;
    int recreate;
    int device;
    uint32_t copy_threads;
    const char *path;
    const char *faults;    /* fault-injection spec, NULL for none */
    /* Host memory other tiers may move to or from this tier (the DRAM arena):
     * a tier that can register memory for DMA (io_uring, CUDA) registers it. */
    void *host_region;
    size_t host_region_bytes;
} kvt_tier_params;

/* One slot's part of a batched transfer. `frags` pointers of
 * block_bytes / nfrags bytes each, of memory kind `mem`. */
typedef struct kvt_xfer {
    uint32_t slot;
    uint32_t nfrags;
    void *const *frags;
    kvt_key key;    /* the block's key (persistent tiers write and verify it) */
    int32_t status; /* out: 0 or KVT_E* for this slot */
} kvt_xfer;

/* Recovery visitor: a valid block `key` sits in `slot`. Return 0 to keep it,
 * non-zero to have the tier treat the slot as free. */
typedef int (*kvt_recover_fn)(void *user, uint32_t slot, const kvt_key *key);

typedef struct kvt_tier_ops {
    uint32_t version; /* KVT_TIER_OPS_VERSION */
    const char *name;
    uint32_t caps;    /* KVT_TCAP_* */

    /* Opens the tier; *nslots gets the slot count. Errors are KVT_E*, with
     * detail through kvt__set_error(). */
    int (*open)(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots);
    /* Flushes and frees. NULL is fine. */
    void (*close)(kvt_tier_impl *t);

    /* Batched copies between caller memory (kind `mem`) and slots. Block
     * until all n are done. Return 0 when every xfer succeeded, else the
     * first error; each xfer's status says which. */
    int (*write)(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem);
    int (*read)(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem);

    /* Marks n slots empty (persistent tiers invalidate them on media so
     * they are not recovered), all before returning. May be NULL when
     * nothing needs doing. */
    int (*discard)(kvt_tier_impl *t, const uint32_t *slots, size_t n);

    /* Persistent tiers: makes every completed write and discard durable
     * across power loss (fdatasync: the device's volatile cache and the
     * file's metadata). May be NULL when nothing needs doing. */
    int (*flush)(kvt_tier_impl *t);

    /* KVT_TCAP_HOST_PTR / DEVICE_PTR tiers: the slot's memory. Else NULL. */
    void *(*slot_ptr)(kvt_tier_impl *t, uint32_t slot);

    /* KVT_TCAP_PERSISTENT tiers: visit every valid block found at open. */
    int (*recover)(kvt_tier_impl *t, kvt_recover_fn fn, void *user);

    /* Tier-specific statistics ("nvme.bytes_written", ...). May be NULL. */
    void (*stats)(kvt_tier_impl *t, kvt_stat_fn fn, void *user);

    /* Whether the slot can hold a block (0: its device is out of service,
     * e.g. a missing drive of a striped NVMe tier): the store leaves such
     * slots off its free list at open. NULL: every slot can. */
    int (*slot_usable)(kvt_tier_impl *t, uint32_t slot);
} kvt_tier_ops;

/* One opened tier instance as the store holds it. Wrappers (lib/tier/staged.c,
 * lib/tier/faulty.c) take a handle and replace it with one of their own that
 * forwards to the inner tier; the wrapper's close closes the inner tier, and
 * its caps may differ from the inner ones, so the store reads caps here, not
 * from ops. */
typedef struct kvt_tier_handle {
    const kvt_tier_ops *ops;
    kvt_tier_impl *impl;
    uint32_t caps;
} kvt_tier_handle;

extern const kvt_tier_ops kvt__tier_dram;
extern const kvt_tier_ops kvt__tier_nvme; /* present only with io_uring */
extern const kvt_tier_ops kvt__tier_hbm;  /* present only with CUDA */

#endif
