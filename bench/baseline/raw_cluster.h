/* raw_cluster.h — a plain io_uring loop doing the cluster tier's file operations: the baseline `micro --tier cluster` measures the tier against. */
#ifndef KVT_BENCH_RAW_CLUSTER_H
#define KVT_BENCH_RAW_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

/*
 * What an engineer would write to keep one file per block on a shared
 * filesystem with io_uring, and nothing more: per put, openat of a
 * temporary name in the block's fan-out directory (O_CREAT|O_EXCL, O_DIRECT
 * when asked), one write of the whole file image, close, then renameat2
 * (RENAME_NOREPLACE) onto the final name (or link + unlink where the
 * filesystem has no rename-noreplace); per get, openat + one read + close.
 * The same tree as the tier's (docs/cluster-format.md: <root>/ab/cd/<32 hex
 * digits>.kvb, directories made on first use, when an open says ENOENT),
 * `qd` blocks in flight, each block one chain of SQEs with one in flight.
 * No header check, no checksum, no copy: the caller hands the kernel its
 * file images directly.
 *
 * Not thread-safe: one raw_cluster per thread.
 */

typedef struct raw_cluster raw_cluster;

/* A loop over the tree at `root` (an existing directory) for files of
 * file_bytes (a multiple of 4096), qd (1..4096) blocks in flight. direct:
 * open with O_DIRECT; noreplace: publish with renameat2(RENAME_NOREPLACE),
 * else link + unlink. Returns 0 or a negative errno. */
int raw_cluster_new(const char *root, unsigned qd, int direct, int noreplace,
                    uint64_t file_bytes, raw_cluster **out);
void raw_cluster_free(raw_cluster *r);

/* Publishes n blocks: images[i] (file_bytes, 4096-aligned) as keys[i]'s
 * file. Returns 0 or the negative errno of the first failure (-EEXIST: the
 * block was there already). Blocking. */
int raw_cluster_put(raw_cluster *r, const kvt_key *keys, size_t n, uint8_t *const *images);
/* Reads n blocks' files whole into images[i]. 0 or the first negative errno
 * (-EIO for a short file). Blocking. */
int raw_cluster_get(raw_cluster *r, const kvt_key *keys, size_t n, uint8_t *const *images);
/* Unlinks n blocks' files (missing ones are fine), synchronously: cleanup,
 * not measured. 0 or the first negative errno. */
int raw_cluster_unlink(raw_cluster *r, const kvt_key *keys, size_t n);

/* Writes the n files of a tree at `root` (this loop's, or the tier's
 * <dir>/kvtier-cluster-v1) to the device and drops their pages from the page
 * cache: sync_file_range then POSIX_FADV_DONTNEED, as the anchors' pool does
 * (anchor_files.h, ANCHOR_WRITEBACK). Used where files were written buffered,
 * so that a read pass starts cold. 0 or the first negative errno. */
int raw_cluster_writeback(const char *root, const kvt_key *keys, size_t n);

/* A block's file image as the tier lays it out (docs/cluster-format.md): the
 * 4096-byte header unit (magic, version, geometry, key, XXH3-64 checksums),
 * the payload, zero padding to file_bytes. So that both sides write the same
 * bytes; built before a run, not measured. */
void raw_cluster_image(uint8_t *image, uint64_t file_bytes, const kvt_key *key,
                       const void *payload, uint64_t block_bytes, uint32_t block_tokens,
                       uint32_t frags);

/* Bytes of a block file for blocks of block_bytes: 4096 + payload rounded up
 * to 4096. */
uint64_t raw_cluster_file_bytes(uint64_t block_bytes);

#endif
