/* file.h — the NVMe tier's file: open, format or check, recover; and its lock (lock.c). */
#ifndef KVT_NVME_FILE_H
#define KVT_NVME_FILE_H

#include <stdbool.h>

#include "tier/nvme/state.h"

/* Opens the path per the rules in docs/nvme-format.md ("Opening a path")
 * into t->fd; *created: the file did not exist. */
int nvme_open_path(kvt_tier_impl *t, const char *path, bool *created);
/* The device's direct-I/O alignment into t->mem_align, len_align, hdr_io. */
int nvme_probe_alignment(kvt_tier_impl *t, const char *path);
/* Opens what is on media, or formats a new, blank or (with recreate)
 * incompatible file (t->formatted says which). A compatible file is kept
 * even with recreate. */
int nvme_load(kvt_tier_impl *t, const char *path, bool recreate, bool created);
/* Writes t->geo's superblock again (a stripe member adopting its set's id). */
int nvme_sb_rewrite(kvt_tier_impl *t, const char *path);
/* Whether the device still answers: reads its superblock. 0 or KVT_EIO. */
int nvme_probe(kvt_tier_impl *t);

/* Block devices: hands the payloads of n discarded slots (headers already
 * zeroed) back to the device with BLKDISCARD. Best effort: a device that
 * refuses is not asked again. */
void nvme_trim_payloads(kvt_tier_impl *t, const uint32_t *slots, size_t n);

/* The tier's path option: one path, or several separated by commas (a
 * stripe set, in order). *out gets n strings in one allocation (kvt__free
 * it); errors: KVT_EPATH (an empty entry), KVT_ENOMEM. The one place that
 * reads the option, so that a separate `paths` option lands here. */
int nvme_parse_paths(const char *spec, char ***out, unsigned *n);
/* The tier's recover(): every valid header found goes to fn. */
int nvme_recover(kvt_tier_impl *t, kvt_recover_fn fn, void *user);

/* The file lock (lock.c): takes the owner lock and waits for a previous
 * store's I/O to drain. Errors: KVT_ELOCKED, KVT_EPATH, KVT_ESYS. */
int nvme_lock_file(kvt_tier_impl *t, const char *path);
/* Takes t off the list the fork handler walks: before its rings go. */
void nvme_lock_unlist(kvt_tier_impl *t);
/* After the rings: releases both locks. */
void nvme_lock_release(kvt_tier_impl *t);

#endif
