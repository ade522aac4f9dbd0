/* faults.h — fault injection for tiers: the draws of a spec string, and the plan engines consult. */
#ifndef KVT_FAULTS_H
#define KVT_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "tier/tier.h"

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
 *
 * Where each kind happens. The wrapper in lib/tier/faulty.c draws every
 * block's fault and injects eio, enospc and short itself, around the inner
 * tier's ops: any tier gets them. torn4k, torn512, partial and the cqe_
 * kinds need real transfers and completions: the wrapper leaves them to the
 * inner tier's I/O engine through a plan (kvt__faults_planned), and accepts
 * them only over a tier that has one (KVT_TCAP_PERSISTENT: the NVMe tier).
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

/* Whether `kind` happens inside a tier's I/O engine (torn4k, torn512,
 * partial, cqe_*) rather than around its ops. */
int kvt__fault_in_engine(kvt__fault kind);

/* Whether f (may be NULL) can draw a kind that happens in an engine. */
int kvt__faults_need_engine(const kvt__faults *f);

/* The engine-level faults the wrapper drew for a batch it hands the inner
 * tier: kind[i] (a kvt__fault, or KVT__FAULT_NONE) and the draw's random
 * bits rnd[i] belong to x[i]. */
typedef struct kvt__fault_plan {
    const kvt_xfer *x;
    size_t n;
    const uint8_t *kind;
    const uint64_t *rnd;
} kvt__fault_plan;

/* Makes `plan` (NULL: none) the calling thread's current plan, for the
 * duration of one call into the inner tier; returns the previous one, which
 * the caller restores. The plan must outlive that call. */
const kvt__fault_plan *kvt__faults_plan(const kvt__fault_plan *plan);

/* For an engine starting the transfer of x, on the thread that called its
 * read() or write(): the engine-level fault planned for x (its random bits
 * in *rnd), or KVT__FAULT_NONE when there is no plan or x is not in it.
 * One thread-local load when no wrapper is in use. */
kvt__fault kvt__faults_planned(const kvt_xfer *x, uint64_t *rnd);

#endif
