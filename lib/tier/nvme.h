/* nvme.h — what the store and kvtier-bench need to know about the NVMe tier beyond tier.h. */
#ifndef KVT_TIER_NVME_H
#define KVT_TIER_NVME_H

#include <stdint.h>

#include "tier/tier.h"

/* Layout unit of the media format (docs/nvme-format.md): the superblock, each
 * slot's header and the payload rounding are multiples of it, whatever the
 * device's own block size, so a file moves between devices unchanged. */
#define KVT__NVME_UNIT 4096u
/* Bytes before slot 0 (the superblock). */
#define KVT__NVME_SLOTS_OFFSET 4096u

/* Bytes one block takes on media: a header unit plus the payload rounded up
 * to KVT__NVME_UNIT. An NVMe capacity must be N * this. 0 for block_bytes 0. */
uint64_t kvt__nvme_slot_bytes(uint64_t block_bytes);

/* Size of a file (or the part of a device) that holds nslots slots. */
uint64_t kvt__nvme_file_bytes(uint64_t block_bytes, uint64_t nslots);

/* Makes every write completed so far durable across power loss (fdatasync:
 * flushes the device's volatile write cache). Completed writes already
 * survive a crash of the process without it. Thread-safe; blocking.
 * Errors: KVT_EIO. */
int kvt__nvme_sync(kvt_tier_impl *t);

#endif
