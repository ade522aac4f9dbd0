/*
 * policy.h — the eviction policy interface.
 *
 * A policy orders the occupied slots of one tier and proposes victims. It
 * sees slot numbers, events and a 64-bit tag per block, never bytes or keys
 * (docs/policies.md). The store calls every function with the tier's lock
 * held, so a policy needs no locking of its own; `touch` is batched by the
 * store (one lock per get batch).
 *
 * Contract for victim(): return a slot currently inserted, or UINT32_MAX when
 * empty. The store then either removes it (remove()) or, when it cannot evict
 * it now (pinned, busy), calls skip() and asks again; a policy must make
 * progress across skips: with every slot skipped but one, that one comes up
 * within nslots victim() calls (the store tries nslots + 1 before giving up).
 * victim() alone changes nothing a second call would see.
 */
#ifndef KVT_POLICY_H
#define KVT_POLICY_H

#include <stdint.h>

#define KVT_POLICY_OPS_VERSION 1
#define KVT_NO_SLOT UINT32_MAX

typedef struct kvt_policy kvt_policy; /* a policy's private state */

typedef struct kvt_policy_ops {
    uint32_t version; /* KVT_POLICY_OPS_VERSION */
    const char *name;

    /* State for a tier of nslots slots. NULL on allocation failure. */
    kvt_policy *(*create)(uint32_t nslots);
    void (*destroy)(kvt_policy *p);

    /* slot became occupied. parent: the slot in this tier holding the block
     * that precedes this one in its prefix chain, or KVT_NO_SLOT. tag: a
     * stable identity of the block (the low 64 bits of its key), so that a
     * policy can recognise a block it evicted earlier after its slot was
     * reused (S3-FIFO's ghost queue); 0 when unknown. */
    void (*insert)(kvt_policy *p, uint32_t slot, uint32_t parent, uint64_t tag);
    /* slot's block was accessed (a get hit). */
    void (*touch)(kvt_policy *p, uint32_t slot);
    /* slot left the tier (evicted, expired, removed). */
    void (*remove)(kvt_policy *p, uint32_t slot);
    /* Next eviction candidate, or KVT_NO_SLOT when none is inserted. */
    uint32_t (*victim)(kvt_policy *p);
    /* The last candidate could not be evicted now; keep it, move on. */
    void (*skip)(kvt_policy *p, uint32_t slot);
} kvt_policy_ops;

/* The named policy, or NULL. Names: see lib/policy/registry.c. */
const kvt_policy_ops *kvt__policy_find(const char *name);
/* The default policy's name. */
const char *kvt__policy_default(void);

#endif
