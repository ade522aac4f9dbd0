/*
 * cluster.h — the cluster engine: immutable, self-verifying block files in a
 * directory that many processes on many nodes share (a shared POSIX
 * filesystem, or a local directory). No lock server, no master: a key names
 * its file, a file is published whole by a rename that refuses to replace
 * (or a link), and every reader verifies what it read.
 *
 * This is the engine alone, addressed by key; lib/tier/cluster/keyed.c wraps
 * it as a key-addressed tier. docs/cluster-format.md is the on-disk
 * reference, docs/cluster.md the behaviour.
 *
 * Threads: every function may be called from several threads at once. Every
 * batched call is bounded by the open's `timeout_ms`: a hung filesystem gives
 * KVT_ETIMEDOUT for the blocks still outstanding, never a hung caller (the
 * ring of that call, with its buffers, is then abandoned, never reused).
 */
#ifndef KVT_TIER_CLUSTER_H
#define KVT_TIER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

typedef struct kvt_cluster kvt_cluster;

typedef struct kvt_cluster_params {
    const char *dir;        /* an existing directory; the engine works under dir/kvtier-cluster-v1 */
    uint64_t block_bytes;   /* payload bytes of every block */
    uint32_t block_tokens;  /* geometry, recorded in and checked against every file */
    uint32_t frags;         /* idem */
    uint32_t key_mode;      /* kvt_key_mode, idem */
    uint32_t timeout_ms;    /* bound of every batched call; 0: 10,000 */
    uint32_t queue_depth;   /* blocks in flight per call; 0: 32 */
    uint64_t ttl_ms;        /* idle TTL (last access older than this is swept); 0: none */
    uint64_t quota_bytes;   /* capacity of the directory; 0: none */
    uint64_t tmp_grace_ms;  /* temporary files older than this are a killed writer's; 0: 600,000 */
    uint32_t file_mode;     /* mode of new files and directories' files; 0: 0600 */
    int durable;            /* fdatasync each file before publishing it */
    int no_direct;          /* do not even try O_DIRECT */
    int hang_for_tests;     /* every operation waits forever (a hung filesystem), for tests */
    uint32_t slow_verify_ms_for_tests; /* each off-ring verification first sleeps this long */
} kvt_cluster_params;

/* Opens (creating the tree if needed). Errors: KVT_ENULL, KVT_ESIZE (geometry),
 * KVT_EPATH (missing, not a directory, not writable, a symlink), KVT_EFORMAT
 * (the tree holds another format version), KVT_ENOTSUP (the filesystem
 * refuses both rename-without-replace and link), KVT_ENOMEM, KVT_ESYS.
 * Blocking (a few metadata operations, not bounded by timeout_ms). */
int kvt__cluster_open(const kvt_cluster_params *p, kvt_cluster **out);
/* Stops and frees; NULL is fine. Rings abandoned after timeouts are leaked
 * on purpose (the kernel may still write into their buffers). */
void kvt__cluster_close(kvt_cluster *c);

/* One block of a batched call. */
typedef struct kvt_cluster_io {
    kvt_key key;
    uint32_t nfrags;        /* get/put: fragments of block_bytes / nfrags bytes */
    void *const *frags;
    int32_t status;         /* out: 0, KVT_ENOENT (miss), KVT_ECORRUPT, KVT_EGEOMETRY,
                               KVT_EFORMAT, KVT_ETOOSMALL, KVT_ENOSPC, KVT_EIO,
                               KVT_ETIMEDOUT, KVT_EPATH */
} kvt_cluster_io;

/* Whether each key's file exists with the size of a block (one statx per
 * key, all in flight at once). status: 0 held, KVT_ENOENT, or an error.
 * Returns the number held, or KVT_ETIMEDOUT/KVT_ENOMEM when the call itself failed. */
int kvt__cluster_contains(kvt_cluster *c, kvt_cluster_io *io, size_t n);
/* The same for a lookup, where only the longest held prefix matters: no
 * key is begun after one is known not held (or failed), and the keys never
 * asked get KVT_ENOENT. A prefix of 1,000 keys of which the first 500 are
 * held costs about 500 + queue_depth statx, not 1,000: a miss is the
 * expensive answer on a distributed filesystem (every brick is asked). */
int kvt__cluster_contains_prefix(kvt_cluster *c, kvt_cluster_io *io, size_t n);
/* Reads and verifies n blocks into caller memory. A status other than 0
 * leaves that block's memory unspecified. Returns the number of hits. */
int kvt__cluster_get(kvt_cluster *c, kvt_cluster_io *io, size_t n);
/* Publishes n blocks. A key already published counts as stored (blocks are
 * immutable); losing a publish race too. Returns 0 when all were stored,
 * else the first error (statuses say which). */
int kvt__cluster_put(kvt_cluster *c, kvt_cluster_io *io, size_t n);
/* Unlinks n blocks' files. status: 0 removed, KVT_ENOENT not there (another
 * node may have been first), or an error. Returns 0 or the first error. */
int kvt__cluster_remove(kvt_cluster *c, kvt_cluster_io *io, size_t n);

/* The sweeper: one incremental step over 1/256 of the tree (one top-level
 * fan-out directory): expires files idle past the TTL, deletes temporary
 * files older than the grace period, and deletes the least recently used
 * files of that directory while its share of the quota is exceeded. Safe
 * when several processes or nodes sweep at once. `now_ns` is wall-clock
 * time (CLOCK_REALTIME), 0 for now. Returns files deleted, or an error.
 * Blocking (synchronous metadata calls). */
int kvt__cluster_sweep_step(kvt_cluster *c, uint64_t now_ns);
/* All 256 steps: a full pass, for tests and for tools, not for the hot path. */
int kvt__cluster_sweep_all(kvt_cluster *c, uint64_t now_ns);

/* Statistics as "cluster.<name>" pairs. */
void kvt__cluster_stats(kvt_cluster *c, kvt_stat_fn fn, void *user);
/* One statistic by its short name ("hits"), 0 when unknown. */
uint64_t kvt__cluster_stat(kvt_cluster *c, const char *name);

/* The block file's path relative to the tree root ("ab/cd/<32 hex>.kvb"), into
 * out[KVT__CLUSTER_REL_MAX]. For tests and tools. */
#define KVT__CLUSTER_REL_MAX 48
void kvt__cluster_rel_path(const kvt_key *key, char out[KVT__CLUSTER_REL_MAX]);
/* The tree root (dir/kvtier-cluster-v1). */
const char *kvt__cluster_root(const kvt_cluster *c);
/* Bytes of one block file (header unit + payload rounded to 4096). */
uint64_t kvt__cluster_file_bytes(const kvt_cluster *c);

#endif
