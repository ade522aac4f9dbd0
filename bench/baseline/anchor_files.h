/* anchor_files.h — the anchors' disk tier: one file per block, buffered pwrite/pread from a thread pool. */
#ifndef KVT_BENCH_ANCHOR_FILES_H
#define KVT_BENCH_ANCHOR_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

/*
 * How the engines' own disk tiers keep KV blocks (LMCache's local disk
 * backend, vLLM's filesystem offloading): a file per block, named by its
 * key, written and read whole with ordinary buffered I/O by a pool of
 * threads. Nothing is fsync()ed, so a put completes when the bytes are in
 * the page cache; a get is served from the page cache when the kernel
 * still holds the file ("warm") and from the device otherwise ("cold").
 *
 * Block i of a batch lives in <dir>/<32 hex digits of keys[i]>.kv.
 * A pool is driven by one thread at a time.
 */

typedef struct anchor_pool anchor_pool;

typedef enum anchor_op {
    ANCHOR_PUT = 0,       /* open(O_CREAT|O_TRUNC), pwrite the block, close */
    ANCHOR_GET = 1,       /* open, pread the block, close */
    ANCHOR_WRITEBACK = 2, /* write the file's dirty pages to the device and wait
                             (sync_file_range: no cache flush, no journal commit —
                             what a completed O_DIRECT write guarantees), then drop
                             its pages from the page cache (POSIX_FADV_DONTNEED) */
    ANCHOR_UNLINK = 3     /* remove the file */
} anchor_op;

/* nthreads (1..256) workers. NULL without memory or threads. */
anchor_pool *anchor_pool_new(unsigned nthreads);
void anchor_pool_free(anchor_pool *p);

/* Applies op to blocks 0..n-1, the workers taking blocks in order as they
 * become free; bufs[i] holds block i (len bytes; unused for WRITEBACK and
 * UNLINK). Returns 0 when every block succeeded, else the negative errno
 * of a failure (-EIO for a short transfer that made no progress). */
int anchor_run(anchor_pool *p, anchor_op op, const char *dir, const kvt_key *keys, size_t n,
               void *const *bufs, size_t len);

/* Pages of the n blocks' files now in the page cache (mmap + mincore), or a
 * negative errno: the check that a "cold" read really starts cold. */
int64_t anchor_resident_pages(const char *dir, const kvt_key *keys, size_t n, size_t len);

#endif
