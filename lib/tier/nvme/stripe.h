/* stripe.h — an NVMe tier over several devices: slots striped across them, one tier each. */
#ifndef KVT_NVME_STRIPE_H
#define KVT_NVME_STRIPE_H

#include <stddef.h>
#include <stdint.h>

#include "tier/nvme/state.h"

/* Most devices one tier stripes across. */
#define NVME_MAX_DEVICES 64u

/*
 * A striped tier is a kvt_tier_impl whose `stripe` is set: it owns one
 * single-device tier per path (a file or block device, each with its own
 * rings, registered buffers, staging, lock and superblock) and maps global
 * slot g to slot g / n of device g % n. Batches are split by device and the
 * devices' parts run at once (one on the caller's thread, the others on
 * the set's threads). A device that cannot be opened at open (missing path,
 * unreadable superblock) or that fails an I/O and then its superblock read
 * is out of service: its slots answer KVT_EIO at once, the others keep
 * serving (docs/nvme-format.md, "Striping").
 */

/* Opens the set of n paths (in order; the order is the stripe order). */
int nvme_stripe_open(const kvt_tier_params *p, char **paths, unsigned n, kvt_tier_impl **out);
void nvme_stripe_close(kvt_tier_impl *t);
int nvme_stripe_batch(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int dir);
int nvme_stripe_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n);
int nvme_stripe_sync(kvt_tier_impl *t);
int nvme_stripe_recover(kvt_tier_impl *t, kvt_recover_fn fn, void *user);
void nvme_stripe_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user);
/* 1 when the slot's device is in service, else 0. */
int nvme_stripe_slot_usable(kvt_tier_impl *t, uint32_t slot);

/* What stripe.c uses of ops.c: one device's tier. stripe: the member's
 * geometry (nslots, stripe_*, set_id), or NULL for a single file. */
int nvme_open_device(const kvt_tier_params *p, const char *path, const nvme_geometry *stripe,
                     kvt_tier_impl **out);
void nvme_device_close(kvt_tier_impl *t);
/* The unit a new file of p is laid out in: the "unit" option, else
 * kvt__nvme_unit(block_bytes); a device may need more (file.c). */
uint32_t nvme_asked_unit(const kvt_tier_params *p);
int nvme_device_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n);
int nvme_device_sync(kvt_tier_impl *t);
void nvme_device_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user);

#endif
