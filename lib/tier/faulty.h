/* faulty.h — fault injection as a wrapper over any opened tier. */
#ifndef KVT_TIER_FAULTY_H
#define KVT_TIER_FAULTY_H

#include "tier/tier.h"

/*
 * Replaces *h with a handle that injects the faults of `spec` (the grammar
 * is in tier/faults.h and docs/nvme-format.md, "Fault injection") around
 * the inner tier's read() and write(): every block draws once, in the order
 * of the batch. eio and enospc fail a block before anything moves; short
 * fails it as a transfer that stopped part-way (KVT_EIO; what reached the
 * slot or the caller's memory is unspecified: here nothing). The other kinds
 * (torn4k, torn512, partial, cqe_*) happen in the inner tier's I/O engine,
 * which reads them from the plan the wrapper sets for each call
 * (kvt__faults_planned); they are accepted only over a KVT_TCAP_PERSISTENT
 * tier. discard, flush, slot_ptr and recover go to the inner tier as they
 * are (slot_ptr access moves no transfer a fault could hit).
 *
 * The new handle has the inner tier's name, caps and set of optional ops;
 * its stats are the inner tier's, with the blocks failed here added to
 * "<name>.io_errors", then "<name>.faults_injected" and
 * "<name>.faults_injected.<kind>". Closing it closes the inner tier.
 *
 * NULL or "" leaves *h as it is and returns 0. Errors (*h unchanged, the
 * inner tier still open): KVT_EINVAL (bad spec, or engine-level kinds over
 * a tier without an engine), KVT_ENOTSUP (a build without fault injection),
 * KVT_ENOMEM, KVT_ENULL.
 */
int kvt__faulty_wrap(kvt_tier_handle *h, const char *spec);

/* 0 when spec would be accepted by kvt__faulty_wrap() over some tier, else
 * its error: lets a caller refuse a bad spec before opening the tier (a new
 * NVMe file is then not created). */
int kvt__faulty_check(const char *spec);

#endif
