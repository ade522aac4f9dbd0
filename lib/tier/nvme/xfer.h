/* xfer.h — the NVMe tier's block transfers: a batch of reads or writes driven on one lane. */
#ifndef KVT_NVME_XFER_H
#define KVT_NVME_XFER_H

#include <stddef.h>

#include "tier/nvme/state.h"

/* Moves x[0..n) (dir: DIR_READ or DIR_WRITE) between caller memory of kind
 * mem and their slots, blocking until all are done; the tier's read() and
 * write(). Returns 0, or the first failing xfer's code with a message; each
 * xfer's status says which. */
int nvme_batch(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int dir);

#endif
