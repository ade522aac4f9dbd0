/* state.h — the NVMe tier's state, shared by the files of lib/tier/nvme/. */
#ifndef KVT_NVME_STATE_H
#define KVT_NVME_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobpool.h"
#include "tier/nvme/format.h"

enum { DIR_READ = 0, DIR_WRITE = 1 };

struct lane; /* one ring and its staging (ring.h) */
struct nvme_stripe; /* the devices of a striped tier (stripe.h) */

struct kvt_tier_impl {
    nvme_geometry geo;           /* what the file records (format.h) */
    uint64_t capacity;           /* asked for: read in an existing file's own slots too */
    int fd;
    int lock_fd;                 /* holds the owner lock ("file lock", lock.c) */
    kvt_tier_impl *lock_next;    /* in lock.c's list of lockers, under its mutex */
    bool blockdev;
    uint32_t mem_align, len_align, hdr_io;
    uint8_t *host_base;
    size_t host_bytes;
    unsigned qd, sq, nlanes, nbounce; /* sq: SQEs in flight per ring, 2 * qd */
    uint64_t bounce_bytes;
    bool sqpoll, fixed_host, fixed_staging, cloned, locked;
    bool formatted;              /* nvme_load() wrote a new superblock */
    _Atomic bool no_trim;        /* the block device refused BLKDISCARD once */
    /* Set: this tier is a stripe set and forwards to its devices' tiers
     * (stripe.c); none of the fields above is in use. */
    struct nvme_stripe *stripe;
    struct lane *lanes;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct lane *free_lanes;
    kvt__jobpool *hashers; /* NULL: the rings' threads hash everything */
    _Atomic uint64_t seq;
    struct {
        _Atomic uint64_t bytes_written, bytes_read, reads, writes, corrupt, corrupt_header,
            corrupt_payload, io_errors, resubmits, staged, vectored, discards, discard_batches,
            recovered, recovery_ms, syncs, hashed_off_ring, verified_off_ring, trims, trim_bytes;
    } st;
};

#define STAT_ADD(t, f, v) atomic_fetch_add_explicit(&(t)->st.f, (v), memory_order_relaxed)

#endif
