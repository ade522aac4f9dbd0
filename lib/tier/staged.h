/* tier/staged.h — the wrapper that lets a host-memory-only tier take CUDA device memory, through pinned staging. */
#ifndef KVT_TIER_STAGED_H
#define KVT_TIER_STAGED_H

#include <stdint.h>

#include "tier/tier.h"

/* Wraps the opened tier *h when it lacks KVT_TCAP_CUDA_MEM, in place: *h
 * then reads and writes KVT_MEM_CUDA memory by copying device fragments
 * through a lane's pinned staging (lib/cuda.h) and calling the inner tier
 * with host memory, and forwards everything else (host memory, discard,
 * flush, slot_ptr, recover, stats) to the inner tier unchanged. Its caps
 * are the inner ones plus KVT_TCAP_CUDA_MEM; its ops->name is the inner
 * tier's; its close closes the inner tier. A tier that has
 * KVT_TCAP_CUDA_MEM, or is key-addressed (KVT_TCAP_KEYED), is left as it
 * is. In builds without CUDA the wrapper
 * refuses device memory with KVT_EMEMKIND, every xfer's status set.
 * block_bytes: bytes per block (the sum of an xfer's fragments).
 * 0, KVT_ENULL, KVT_EINVAL, KVT_ENOMEM (*h unchanged on error). */
int kvt__staged_wrap(kvt_tier_handle *h, uint64_t block_bytes);

/* The tier under the wrapper when *h is one, else h. */
const kvt_tier_handle *kvt__staged_inner(const kvt_tier_handle *h);

#endif
