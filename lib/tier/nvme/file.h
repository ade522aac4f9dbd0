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
 * incompatible file. A compatible file is kept even with recreate. */
int nvme_load(kvt_tier_impl *t, const kvt_tier_params *p, bool created);
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
