/* verify.h — the NVMe tier's hashing threads: checksums ahead of writes, read verification. */
#ifndef KVT_NVME_VERIFY_H
#define KVT_NVME_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobpool.h"
#include "tier/nvme/ring.h"

/* Payloads at least this large are hashed by the tier's hashing threads
 * (write checksums ahead of the ring, read verification behind it); smaller
 * ones by the ring's thread, where a hand-over would cost more than the hash
 * (measured: 64 KiB gains from the hand-over, 16 KiB loses; docs/perf.md). */
#define OFFLOAD_MIN (64u << 10)
/* Read verifications are handed over one block at a time, each with a job
 * post and an eventfd wakeup of the ring's thread; below this size those
 * cost more CPU than the hash they move (64 KiB gets: ~2.2x the raw loop's
 * CPU plus the hash's, docs/perf.md). */
#define VERIFY_OFFLOAD_MIN (256u << 10)
#define MAX_HASHERS 4

/* Checksums of a write batch's payloads, computed ahead of the ring by the
 * hashing threads while the ring's thread submits earlier blocks. Either
 * side takes block i by moving state[i] from 0 (to do) to 1 (being hashed);
 * 2 is done. The ring's thread hashes a block itself when no helper has
 * taken it yet, and waits only for one a helper is hashing right then. */
typedef struct hash_ahead hash_ahead;
struct hash_ahead {
    struct ahead_job {
        kvt__job job;
        hash_ahead *h;
    } job[MAX_HASHERS];
    unsigned posted;
    kvt_tier_impl *t;
    const kvt_xfer *x;
    size_t n;
    _Atomic size_t cursor;
    _Atomic unsigned finished; /* jobs whose fn has returned */
    _Atomic uint8_t *state;
    uint64_t *sum;
};

/* Starts hashing x[0..n) ahead when it pays; h->posted stays 0 otherwise. */
void nvme_ahead_start(kvt_tier_impl *t, hash_ahead *h, const kvt_xfer *x, size_t n);
/* Whether a helper has block i's checksum ready, or none is hashing ahead. */
bool nvme_ahead_done(hash_ahead *h, size_t i);
/* Block i's checksum: from a helper, or hashed here. h may be NULL. */
uint64_t nvme_ahead_sum(hash_ahead *h, size_t i, const kvt_xfer *x, uint64_t fs);
/* Stops the helpers and frees the state. */
void nvme_ahead_end(kvt_tier_impl *t, hash_ahead *h);

/* Read verification of a finished op, header in h, payload hashed from
 * `payload` (linear) or the caller's fragments (NULL): 0 or KVT_ECORRUPT. */
int nvme_verify(kvt_tier_impl *t, const op *o, const uint8_t *h, const uint8_t *payload);
/* Hands o's verification to a hashing thread when that pays; false if not. */
bool nvme_verify_off_ring(kvt_tier_impl *t, lane *l, op *o, int dir);
/* Runs here one verification still queued for a hashing thread; false if
 * none was queued. */
bool nvme_verify_here(kvt_tier_impl *t, lane *l);

#endif
