/* raw_sum.h — the raw io_uring loop plus payload checksums, done as the NVMe tier does them: what verifying costs, without the tier. */
#ifndef KVT_BENCH_RAW_SUM_H
#define KVT_BENCH_RAW_SUM_H

#include <stddef.h>

#include "raw_uring.h"

/*
 * A self-verifying store must read every byte once more than a plain I/O
 * loop: to checksum a block before writing it and after reading it. This
 * baseline adds exactly that to raw_uring and nothing else (no headers, no
 * index), so that `micro --tier nvme` can tell the cost of checksums on the
 * machine from the cost of the tier's own work.
 *
 * It checksums the way the tier does (lib/tier/nvme.c): XXH3-64 over each
 * block, through xxHash's CPU dispatch when the library has it; on writes,
 * `helpers` threads hash ahead of the ring and a block is submitted once
 * its checksum is known (the ring's thread hashes a block itself when no
 * helper has started it); on reads, helpers verify each block as its read
 * completes and a pass ends when every block is verified. With no helpers
 * the ring's thread does all the hashing.
 */

typedef struct raw_sum raw_sum;

/* Checksums for passes of up to max_blocks blocks, with that many helper
 * threads. Returns 0 or a negative errno. */
int raw_sum_new(unsigned helpers, size_t max_blocks, raw_sum **out);
void raw_sum_free(raw_sum *h);

/* raw_uring_run() of ios[0..n) on r, with checksums: a write pass records
 * each block's checksum; a read pass checks each block against the
 * checksum its last write recorded and returns -EILSEQ if one differs.
 * Otherwise 0 or raw_uring_run()'s error. */
int raw_sum_run(raw_sum *h, raw_uring *r, int write, const raw_io *ios, size_t n);

/* XXH3-64 of every block of ios[0..n) on the calling thread, as the tier
 * and raw_sum_run() compute it, with no I/O and no other thread: what the
 * checksum alone costs (time it with bench_thread_cpu_ns()). Returns the
 * sums folded into one value, so that the work cannot be left out. */
uint64_t raw_sum_hash_only(const raw_io *ios, size_t n);

/* The number of helper threads the NVMe tier starts on this machine: one
 * per online CPU but one (the ring's), at most 4. */
unsigned raw_sum_tier_helpers(void);

#endif
