/* faults.h — fault injection for tiers: a per-store engine chosen by a spec string. */
#ifndef KVT_FAULTS_H
#define KVT_FAULTS_H

#include <stdint.h>

/*
 * Spec (docs/nvme-format.md, "Fault injection"): comma-separated items
 *   eio=R  short=R  torn4k=R  torn512=R  enospc=R  partial=R   (rates in [0,1])
 *   cqe_eio=R  cqe_enospc=R  cqe_short=R          (at completion, rates in [0,1])
 *   torn=R                        (alias of torn4k)
 *   nth=N:KIND                    (the N-th block operation, 1-based; up to 16)
 *   seed=S                        (decimal or 0x hex; default 1)
 * Each block-level operation draws once; the rates that apply to its
 * direction must sum to at most 1. Reads draw only eio, short, partial and
 * the cqe_ kinds.
 */
typedef enum kvt__fault {
    KVT__FAULT_NONE = 0,
    KVT__FAULT_EIO,     /* the operation fails with an I/O error */
    KVT__FAULT_SHORT,   /* part of the bytes move, the device reports it; the block fails */
    KVT__FAULT_TORN4K,  /* write: only the first 4 KiB of the slot reach media; reports success */
    KVT__FAULT_TORN512, /* write: only the first 512 B of the slot reach media; reports success */
    KVT__FAULT_ENOSPC,  /* write: no space */
    KVT__FAULT_PARTIAL, /* one transfer comes back short; resubmitting the rest must succeed */
    /* At completion: the block's first transfer is submitted whole and really
     * moves its bytes; then its completion's result is replaced. Kept last:
     * the NVMe tier tells them apart by kind >= KVT__FAULT_CQE_EIO. */
    KVT__FAULT_CQE_EIO,    /* ... by -EIO */
    KVT__FAULT_CQE_ENOSPC, /* ... by -ENOSPC (reads too: an errno they never expect) */
    KVT__FAULT_CQE_SHORT,  /* ... by a short count the tier can't resume from: 0, or
                              one off the device's alignment */
    KVT__FAULT_KINDS
} kvt__fault;

typedef struct kvt__faults kvt__faults;

/* Parses spec into *out. NULL or "" gives *out = NULL (no faults) and 0.
 * Errors: KVT_EINVAL (bad spec, with the offending item in the message),
 * KVT_ENOMEM, KVT_ENOTSUP (a spec in a build without fault injection). */
int kvt__faults_new(const char *spec, kvt__faults **out);
void kvt__faults_free(kvt__faults *f);

/* The fault for the next block operation (is_write: 1 for writes), or
 * KVT__FAULT_NONE; f may be NULL. Thread-safe and lock-free; deterministic
 * for a given seed and order of calls. *rnd (may be NULL) gets 64 random bits
 * for the caller's choices (how many bytes a short transfer moves). */
kvt__fault kvt__faults_draw(kvt__faults *f, int is_write, uint64_t *rnd);

/* How many faults of `kind` were injected so far (KVT__FAULT_NONE: all). */
uint64_t kvt__faults_injected(const kvt__faults *f, kvt__fault kind);

/* "eio", "short", ...; "none" for KVT__FAULT_NONE. */
const char *kvt__fault_name(kvt__fault kind);

#endif
