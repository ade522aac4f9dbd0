/* raw_uring.h — a plain liburing O_DIRECT read/write loop: the baseline the NVMe tier is measured against. */
#ifndef KVT_BENCH_RAW_URING_H
#define KVT_BENCH_RAW_URING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * What an engineer would write without kvtier: one ring, one thread, `qd`
 * transfers in flight, each a whole buffer at a file offset, short
 * transfers resubmitted for the rest. No headers, no checksums, no index.
 * The ring is set up like the NVMe tier's rings (COOP_TASKRUN, CQ twice the
 * SQ, the file registered), so that a difference between the two is the
 * tier's own work, not a ring flag.
 *
 * Buffers: with `regs`, that memory is registered with the ring (in pieces
 * of at most 1 GiB, io_uring's limit) and transfers inside it use
 * READ_FIXED/WRITE_FIXED, as the tier does for its DRAM arena; other
 * memory moves with plain READ/WRITE, as the tier does for a caller's
 * buffers. A benchmark compares like with like by choosing which.
 *
 * Not thread-safe: one raw_uring per thread. Buffers, offsets and lengths
 * must be aligned for O_DIRECT on the file (4096 is always enough).
 */

typedef struct raw_uring raw_uring;

/* One transfer: len bytes between buf and the file at off. */
typedef struct raw_io {
    void *buf;
    uint64_t off;
    uint32_t len;
} raw_io;

/* A ring of depth qd (1..4096) over fd, which the caller opened (O_DIRECT)
 * and closes after raw_uring_free(). nregs regions (may be 0) are
 * registered. Returns 0 or a negative errno (the ring or the registration
 * was refused: -ENOMEM usually means RLIMIT_MEMLOCK without CAP_IPC_LOCK). */
int raw_uring_new(int fd, unsigned qd, const struct iovec *regs, unsigned nregs,
                  raw_uring **out);
void raw_uring_free(raw_uring *r);

/* Moves n transfers (write != 0: memory to file), up to qd in flight, and
 * returns when all are done: 0, or the negative errno of the first failure
 * (-EIO for a transfer that made no progress). Blocking. */
int raw_uring_run(raw_uring *r, int write, const raw_io *ios, size_t n);
/* raw_uring_run() with hooks, each called on this thread (either may be
 * NULL): before(user, i) just before transfer i is prepared, and done(user,
 * i) as it completes in full, before the loop reaps or submits anything
 * else. Work done in either delays the ring as it would in a real I/O loop
 * (raw_sum.c checksums blocks there). */
int raw_uring_run_cb(raw_uring *r, int write, const raw_io *ios, size_t n,
                     void (*before)(void *user, size_t index),
                     void (*done)(void *user, size_t index), void *user);

/* Hands the kernel the transfers prepared so far, without waiting: for a
 * before() hook about to block, so that the device is not kept idle. */
void raw_uring_submit(raw_uring *r);

/* Transfers that used a registered buffer, and resubmissions after short
 * transfers or -EAGAIN, since raw_uring_new(). */
uint64_t raw_uring_fixed(const raw_uring *r);
uint64_t raw_uring_resubmits(const raw_uring *r);

/* Opens (creating 0600 if missing) path for O_DIRECT reads and writes and
 * makes it at least `bytes` long with fallocate (so writes find the space
 * allocated, as the tier's preallocated file does). Returns the fd or a
 * negative errno. */
int raw_uring_open_file(const char *path, uint64_t bytes);

#endif
