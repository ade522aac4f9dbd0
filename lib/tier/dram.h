/* dram.h — what the store may ask the DRAM tier beyond the tier interface. */
#ifndef KVT_TIER_DRAM_H
#define KVT_TIER_DRAM_H

#include <stddef.h>

#include "tier/tier.h"

/* The DRAM tier's arena: 2 MiB aligned, *bytes long (slots * block bytes
 * rounded up to 2 MiB), slot i at arena + i * block_bytes. For registering
 * with io_uring or CUDA (kvt_tier_params.host_region). Valid until the tier
 * is closed. t must be a DRAM tier; NULL gives NULL and 0. */
void *kvt__dram_arena(kvt_tier_impl *t, size_t *bytes);

/* The memfd of the shared arena (option "shared") that starts at base (a
 * DRAM tier's slot_ptr of slot 0), *bytes its mapped length; -1 and 0 for
 * any other address. Owned by the tier, valid until it closes. */
int kvt__dram_shared_fd(const void *base, size_t *bytes);

#endif
