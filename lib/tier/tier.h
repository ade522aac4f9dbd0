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

#define KVT_TIER_OPS_VERSION 2

/* Options of one tier kind's own (not counting the generic ones), at most. */
#define KVT_TIER_MAX_OPTS 8

/* Capability bits the store reads instead of asking which tier it is. */
enum {
    KVT_TCAP_HOST_PTR = 1u << 0,   /* slot_ptr() gives host-addressable memory (below) */
    KVT_TCAP_PERSISTENT = 1u << 1, /* survives close/crash; has recover() */
    KVT_TCAP_DEVICE_PTR = 1u << 2, /* slot_ptr() gives CUDA device memory */
    KVT_TCAP_VERIFIES = 1u << 3,   /* read() may report KVT_ECORRUPT */
    /* read()/write() accept KVT_MEM_CUDA caller memory (DRAM, HBM). The
     * store wraps the other tiers at open in lib/tier/staged.c, which
     * bounces device memory through pinned host staging. */
    KVT_TCAP_CUDA_MEM = 1u << 4,
    /* The device may be missing on a machine (a GPU): open's KVT_ENODEV
     * leaves the instance out of the store instead of failing the open, and
     * kvt_store_tier_available() reports it. */
    KVT_TCAP_OPTIONAL = 1u << 5,
    /* A key-addressed tier (below): ops->keyed is set, the slot functions
     * are NULL. The store keeps no slots, index entries or policy for it. */
    KVT_TCAP_KEYED = 1u << 6,
    /* read() honours kvt_xfer.first/count (a fragment range). The store
     * hands a range only to such tiers; others read the whole block into a
     * bounce buffer and the store copies the range out (lib/store/range.c). */
    KVT_TCAP_FRAG_RANGE = 1u << 7
};
/* KVT_TCAP_HOST_PTR tiers open before the others: the first one's slot
 * memory is the host region (kvt_tier_params.host_region) they register for
 * DMA. */

/* One option a tier kind takes (its own, beyond the generic ones the store
 * reads: capacity, ttl_ms, policy, victims, admit, admit_after, faults). The
 * config checks values against the spec (unknown name or wrong type:
 * KVT_EINVAL; an integer outside min..max: KVT_ESIZE; an empty string:
 * `empty_code`), so a tier's open sees only valid values. */
typedef enum kvt_tier_opt_type { KVT_OPTTYPE_INT = 0, KVT_OPTTYPE_STR = 1 } kvt_tier_opt_type;

typedef struct kvt_tier_opt_spec {
    const char *name;
    kvt_tier_opt_type type;
    int64_t min, max, def; /* integers; def is the value when not set */
    int empty_code;        /* strings: the code an empty string gets, and a missing one at
                              open when the instance has a capacity (0: optional) */
    const char *doc;       /* one line, for messages and docs/tiers.md */
} kvt_tier_opt_spec;

/* An option's value in one instance: every option of the kind's table, in
 * its order, set or defaulted. */
typedef struct kvt_tier_optval {
    const kvt_tier_opt_spec *spec;
    int set;
    int64_t i;
    char *s; /* owned by the config (or the store's copy of it) */
} kvt_tier_optval;

typedef struct kvt_tier_impl kvt_tier_impl; /* a tier's private state */

/* What the store knows when it opens a tier. */
typedef struct kvt_tier_params {
    const char *name;      /* the instance's name ("dram", "nvme1"), for messages */
    uint64_t capacity;     /* bytes, as configured */
    uint64_t block_bytes;  /* payload bytes per slot */
    uint32_t block_tokens; /* geometry recorded by persistent tiers */
    uint32_t frags;        /* geometry recorded by persistent tiers */
    uint32_t key_mode;     /* kvt_key_mode of the keys: recorded by persistent tiers,
                              which refuse a file of another mode (KVT_EGEOMETRY) */
    uint32_t copy_threads;
    uint64_t ttl_ms;       /* key-addressed tiers apply it themselves (the store applies
                              slot tiers'); 0 = never */
    const char *faults;    /* fault-injection spec, NULL for none (generic option) */
    /* The kind's own options (its ops->options, in order; strings borrowed
     * for the call): read them with kvt__tier_opt_int() / kvt__tier_opt_str().
     * Held by value, so a copy of the params is a separate set. */
    kvt_tier_optval opts[KVT_TIER_MAX_OPTS];
    uint32_t nopts;
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
    /* A fragment range (KVT_TCAP_FRAG_RANGE tiers' read() only; 0/0 for
     * every other call): count > 0 moves fragments first .. first+count-1
     * of the block, nfrags still the block's fragment count (it sets the
     * fragment size), and frags then holds count pointers, one a fragment
     * of the range. Wrappers pass both through. */
    uint32_t first;
    uint32_t count;
} kvt_xfer;

/* Recovery visitor: a valid block `key` sits in `slot`. Return 0 to keep it,
 * non-zero to have the tier treat the slot as free. */
typedef int (*kvt_recover_fn)(void *user, uint32_t slot, const kvt_key *key);

/* ------------------------------------------------ key-addressed tiers
 *
 * A key-addressed tier owns placement, lifetime (its own TTL) and its own
 * index: a node-shared store, a cluster filesystem. Other processes or nodes
 * may add blocks the local index has never seen, and remove or expire them,
 * so the store asks the tier itself: kvt_lookup/kvt_contains for keys the
 * slot tiers miss, kvt_get for blocks they don't hold; puts are written
 * through to it and removes passed on.
 *
 * Operations are batches of keys, asynchronous: submit() queues one and
 * returns; the tier calls op->done exactly once when every key has its
 * status, from any thread (its own, or the caller's inside poll()). The
 * caller keeps keys, ptrs and status until then. */
typedef enum kvt_keyed_kind {
    KVT_KEYED_CONTAINS = 1, /* status[i]: 1 held, 0 not (or KVT_E*) */
    KVT_KEYED_READ = 2,     /* block i into its fragments; 0, KVT_ENOENT, KVT_E* */
    KVT_KEYED_WRITE = 3,    /* block i from its fragments; 0 or KVT_E* */
    KVT_KEYED_REMOVE = 4    /* 0 (was held), KVT_ENOENT, or KVT_E* */
} kvt_keyed_kind;

#define KVT_KEYED_PREFIX 1u

typedef struct kvt_keyed_op kvt_keyed_op;
struct kvt_keyed_op {
    kvt_keyed_kind kind;
    const kvt_key *keys;
    size_t n;
    /* READ/WRITE: n * nfrags fragment pointers (block i's at i * nfrags),
     * each block_bytes / nfrags long, of memory kind mem. */
    void *const *frags;
    uint32_t nfrags;
    kvt_mem_kind mem;
    int32_t *status; /* n entries, written by the tier */
    /* CONTAINS for a lookup (KVT_KEYED_PREFIX): only the longest held
     * prefix of keys matters, so the tier may stop asking after the first
     * key it does not hold and answer 0 for every key after that one. A
     * tier may ignore the flag and answer every key. */
    uint32_t flags;
    int result;      /* out: 0, or the first failure of the batch */
    void (*done)(kvt_keyed_op *op);
    void *user;      /* the caller's */
};

typedef struct kvt_keyed_ops {
    /* Queues op. 0: op->done will be called; a negative KVT_E*: refused
     * (queue full, tier closing), done is not called. */
    int (*submit)(kvt_tier_impl *t, kvt_keyed_op *op);
    /* Completes what is ready, waiting up to timeout_ms (-1 forever) for
     * something to be; returns the operations completed. NULL for a tier
     * that completes on threads of its own. */
    int (*poll)(kvt_tier_impl *t, int timeout_ms);
} kvt_keyed_ops;

typedef struct kvt_tier_ops {
    uint32_t version; /* KVT_TIER_OPS_VERSION */
    const char *name; /* the kind, as kvt_config_add_tier() takes it */
    uint32_t caps;    /* KVT_TCAP_* */
    /* The kind's own options, ended by an entry with name NULL; NULL for none. */
    const kvt_tier_opt_spec *options;

    /* Bytes one slot takes for blocks of block_bytes (a persistent tier's
     * header and alignment); capacity must be a whole multiple of it. NULL:
     * block_bytes. Pure. */
    int (*slot_bytes)(uint64_t block_bytes, uint64_t *out);

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

    /* KVT_TCAP_KEYED tiers: the key-addressed operations. Else NULL. */
    const kvt_keyed_ops *keyed;

    /* Whether the slot can hold a block (0: its device is out of service,
     * e.g. a missing drive of a striped NVMe tier): the store leaves such
     * slots off its free list. NULL: every slot can. */
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

/* ------------------------------------------------- registry (tier/registry.c) */

/* The tier kind named `kind`, or NULL when this build has none. */
const kvt_tier_ops *kvt__tier_find(const char *kind);
/* Every kind this build has (and those registered), fastest first by
 * convention; *out points to static storage. Returns the count. */
size_t kvt__tier_kinds(const kvt_tier_ops *const **out);
/* Adds a kind (tests register test-only tiers this way). Not thread-safe:
 * call before any config uses it. Errors: KVT_EINVAL (bad version, no name,
 * the name taken), KVT_ENOMEM (table full). */
int kvt__tier_register(const kvt_tier_ops *ops);
/* The option `name` of the kind of `ops`, or NULL. */
const kvt_tier_opt_spec *kvt__tier_opt_spec(const kvt_tier_ops *ops, const char *name);

/* Sets p->opts to every option of ops's kind at its default (tests and
 * wrappers that open a tier without a config). */
void kvt__tier_params_defaults(kvt_tier_params *p, const kvt_tier_ops *ops);
/* Sets one option in p, unchecked (the tier's open validates): 0, or
 * KVT_EINVAL when p's kind has no such option of that type. The string is
 * borrowed. */
int kvt__tier_params_set_int(kvt_tier_params *p, const char *name, int64_t v);
int kvt__tier_params_set_str(kvt_tier_params *p, const char *name, const char *v);

/* An instance's option, as set or its kind's default. Options not in the
 * kind's table read as 0 / NULL. */
int64_t kvt__tier_opt_int(const kvt_tier_params *p, const char *name);
const char *kvt__tier_opt_str(const kvt_tier_params *p, const char *name);

#endif
