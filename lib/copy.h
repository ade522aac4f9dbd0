/* copy.h — splits big memcpy batches across the caller and an executor's threads; first touches. */
#ifndef KVT_COPY_H
#define KVT_COPY_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvt__copier kvt__copier;

typedef struct {
    void *dst;
    const void *src;
    size_t len;
} kvt__copy_op;

/* Batches below this many bytes in total are copied on the calling thread:
 * waking helpers costs tens of microseconds, which is what a copy of this
 * size takes at DRAM speed. */
#define KVT__COPY_INLINE_BYTES ((size_t)512 << 10)

/* A pool of nthreads participants: the calling thread plus nthreads - 1
 * helper threads, which sleep on a condition variable while idle.
 * nthreads 0 is taken as 1 (no helpers). NULL when threads or memory cannot
 * be had. */
kvt__copier *kvt__copier_new(unsigned nthreads);
/* Stops and joins the helpers. NULL is fine. No batch may be running. */
void kvt__copier_free(kvt__copier *c);
/* Restricts the helpers (not callers) to `cpus`, e.g. the CPUs of the node
 * whose memory they copy to and from. 0, or the pthread error of the first
 * helper that could not be moved (the copier works either way). */
int kvt__copier_set_affinity(kvt__copier *c, const cpu_set_t *cpus);
/* Participants, including the caller (>= 1). */
unsigned kvt__copier_threads(const kvt__copier *c);

/* Batches run so far on the helpers, and batches copied inline because the
 * helpers were busy with another caller's (a sign of contention). */
void kvt__copier_counts(const kvt__copier *c, uint64_t *pooled, uint64_t *busy);

/* Copies n ops (no overlaps between any dst and any src) and returns when
 * every byte is copied. The total is split evenly across the participants,
 * inside ops too, at 64-byte aligned destination addresses. Thread-safe: a
 * caller that finds the helpers busy with another caller's batch copies its
 * own batch inline instead of waiting. c NULL copies inline. */
void kvt__copier_run(kvt__copier *c, const kvt__copy_op *ops, size_t n);

/* Pre-faults [mem, mem + len) by writing a zero byte at every `page` bytes
 * (0: 4096), split at 2 MiB boundaries (each transparent huge page is
 * faulted by one thread) across short-lived threads: a one-off at open,
 * bound by the kernel's page zeroing. With cpus (e.g. the CPUs of the node
 * the memory is bound to), one thread per CPU of the set, each restricted to
 * it, and the caller only waits; cpus NULL: one per online CPU, the caller
 * included. At most 32 threads, and no more than 2 MiB units. Returns the
 * parts the range was split into (0 for an empty range). Meant for fresh
 * anonymous memory: it overwrites those bytes. */
unsigned kvt__prefault(void *mem, size_t len, size_t page, const cpu_set_t *cpus);

#endif
