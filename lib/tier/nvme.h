/* nvme.h — what the store and kvtier-bench need to know about the NVMe tier beyond tier.h. */
#ifndef KVT_TIER_NVME_H
#define KVT_TIER_NVME_H

#include <stdint.h>

#include "tier/tier.h"

/* The whole layout unit (docs/nvme-format.md): the superblock, and each slot's
 * header and payload rounding in files of large blocks, in files written
 * before format version 3, and on devices that need 4096-byte direct I/O. */
#define KVT__NVME_UNIT 4096u
/* The small unit: a new file of blocks below KVT__NVME_SMALL_BELOW bytes lays
 * its slots out in units of the device's direct-I/O size, 512 bytes on
 * nearly every NVMe drive and filesystem (format version 3). Why a limit:
 * from 256 KiB up the 4096-byte unit costs under 1.6% and keeps payloads
 * 4 KiB-aligned on media (no read-modify-write in a drive with 4 KiB pages);
 * below it the unit is 3-100% of the block. */
#define KVT__NVME_SMALL_UNIT 512u
#define KVT__NVME_SMALL_BELOW (256u << 10)
/* Bytes before slot 0 (the superblock), whatever the unit. */
#define KVT__NVME_SLOTS_OFFSET 4096u

/* The unit a new file of block_bytes takes on a device whose direct I/O works
 * in 512-byte units: KVT__NVME_SMALL_UNIT below KVT__NVME_SMALL_BELOW, else
 * KVT__NVME_UNIT. A device that needs more lays the file out in its own
 * size (at most 4096); an existing file keeps the unit it records. */
uint32_t kvt__nvme_unit(uint64_t block_bytes);

/* Bytes one block takes in a slot laid out in `unit`: a header unit plus the
 * payload rounded up to the unit. 0 for block_bytes 0. */
uint64_t kvt__nvme_slot_bytes_in(uint64_t block_bytes, uint32_t unit);

/* Bytes one block takes on media in a new file on a device with 512-byte
 * direct I/O: kvt__nvme_slot_bytes_in(block_bytes, kvt__nvme_unit(...)).
 * kvt_slot_bytes("nvme") answers this. An NVMe capacity is N * this (N slots);
 * N * the 4096-unit slot (what builds before format version 3 asked for) is
 * read as N slots too. The tier always holds N slots: where the device or an
 * existing file needs a larger unit, the file is larger than the capacity
 * (kvt__nvme_file_bytes_in), never the slot count smaller or larger. */
uint64_t kvt__nvme_slot_bytes(uint64_t block_bytes);

/* Size of a file (or the part of a device) that holds nslots slots, laid
 * out in kvt__nvme_unit(block_bytes) / in `unit`. */
uint64_t kvt__nvme_file_bytes(uint64_t block_bytes, uint64_t nslots);
uint64_t kvt__nvme_file_bytes_in(uint64_t block_bytes, uint64_t nslots, uint32_t unit);

/* Makes every write completed so far durable across power loss (fdatasync:
 * flushes the device's volatile write cache). Completed writes already
 * survive a crash of the process without it. Thread-safe; blocking.
 * Errors: KVT_EIO. */
int kvt__nvme_sync(kvt_tier_impl *t);

#endif
