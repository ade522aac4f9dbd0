/* verify.c — the NVMe tier's hashing threads: checksums ahead of writes, read verification. */
#include "tier/nvme/verify.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

/* Blocks a helper hashes before it goes to the back of the pool's queue,
 * so that verifications of other rings' reads are not stuck behind a long
 * write batch. */
#define AHEAD_TURN 16

static void ahead_main(kvt__job *job)
{
    hash_ahead *h = ((struct ahead_job *)job)->h;
    for (unsigned turn = 0;; turn++) {
        if (turn == AHEAD_TURN &&
            atomic_load_explicit(&h->cursor, memory_order_relaxed) < h->n) {
            /* Not finished: nvme_ahead_end() either takes this job back from the
             * queue or waits for it to run once more and see the end. */
            kvt__jobpool_post(h->t->hashers, job);
            return;
        }
        size_t i = atomic_fetch_add_explicit(&h->cursor, 1, memory_order_relaxed);
        if (i >= h->n)
            break;
        uint8_t todo = 0;
        if (!atomic_compare_exchange_strong(&h->state[i], &todo, 1))
            continue;
        const kvt_xfer *x = &h->x[i];
        uint32_t bad;
        if (!nvme_xfer_problem(&h->t->geo, x, &bad)) {
            h->sum[i] = nvme_frags_hash(x, h->t->geo.block_bytes / x->nfrags);
            STAT_ADD(h->t, hashed_off_ring, 1);
        }
        atomic_store_explicit(&h->state[i], 2, memory_order_release);
        /* The ring's thread, woken onto this CPU by completions, runs soon
         * rather than after our time slice: that wait, milliseconds per
         * batch, idled the device (docs/perf.md, "run delay"). */
        kvt__jobpool_pause();
    }
    /* The last touch of h: the ring's thread may free it from here on. */
    atomic_fetch_add_explicit(&h->finished, 1, memory_order_release);
}

/* Starts hashing x[0..n) ahead when it pays; h->posted stays 0 otherwise. */
void nvme_ahead_start(kvt_tier_impl *t, hash_ahead *h, const kvt_xfer *x, size_t n)
{
    memset(h, 0, sizeof *h);
    if (!t->hashers || n < 2 || t->geo.block_bytes < OFFLOAD_MIN)
        return;
    h->state = kvt__calloc(n, sizeof *h->state);
    h->sum = kvt__malloc(n * sizeof *h->sum);
    if (!h->state || !h->sum) {
        kvt__free((void *)h->state);
        kvt__free(h->sum);
        h->state = NULL;
        h->sum = NULL;
        return; /* the ring's thread hashes everything: slower, not wrong */
    }
    h->t = t;
    h->x = x;
    h->n = n;
    unsigned k = kvt__jobpool_threads(t->hashers);
    h->posted = k < n - 1 ? k : (unsigned)(n - 1);
    for (unsigned j = 0; j < h->posted; j++) {
        h->job[j].job.fn = ahead_main;
        h->job[j].h = h;
        kvt__jobpool_post(t->hashers, &h->job[j].job);
    }
}

/* Whether a helper has block i's checksum ready, or none is hashing ahead
 * (the ring's thread hashes everything itself). When the ring's thread is
 * about to hash block i or wait for it, it first hands the device what is
 * prepared: at the start of a batch no helper is ahead yet, and a batch of
 * 32 blocks of 256 KiB waited 0.3 ms for its first submission. */
bool nvme_ahead_done(hash_ahead *h, size_t i)
{
    return !h->posted || atomic_load_explicit(&h->state[i], memory_order_acquire) == 2;
}

/* Block i's checksum: from a helper, or hashed here. */
uint64_t nvme_ahead_sum(hash_ahead *h, size_t i, const kvt_xfer *x, uint64_t fs)
{
    if (!h || !h->posted)
        return nvme_frags_hash(x, fs);
    uint8_t todo = 0;
    if (atomic_compare_exchange_strong(&h->state[i], &todo, 1))
        return nvme_frags_hash(x, fs);
    while (atomic_load_explicit(&h->state[i], memory_order_acquire) != 2)
        sched_yield(); /* a helper is hashing this very block */
    return h->sum[i];
}

/* Stops the helpers (a job not started is taken back; one running finishes
 * its current block) and frees the state. */
void nvme_ahead_end(kvt_tier_impl *t, hash_ahead *h)
{
    if (!h->posted)
        return;
    atomic_store_explicit(&h->cursor, h->n, memory_order_relaxed);
    unsigned expect = h->posted;
    for (unsigned j = 0; j < h->posted; j++)
        if (kvt__jobpool_cancel(t->hashers, &h->job[j].job))
            expect--;
    while (atomic_load_explicit(&h->finished, memory_order_acquire) < expect)
        sched_yield();
    kvt__free((void *)h->state);
    kvt__free(h->sum);
}

/* Read verification of a finished op, header in h, payload hashed from
 * `payload` (linear) or the caller's fragments (NULL). */
int nvme_verify(kvt_tier_impl *t, const op *o, const uint8_t *h, const uint8_t *payload)
{
    kvt_key key;
    if (!nvme_hdr_valid(&t->geo, h, o->x->slot, &key) || memcmp(key.b, o->x->key.b, 16)) {
        STAT_ADD(t, corrupt_header, 1);
        return KVT_ECORRUPT;
    }
    uint64_t sum = payload ? nvme_payload_hash(payload, t->geo.block_bytes)
                           : nvme_frags_hash(o->x, o->fs);
    if (sum != nvme_hdr_payload_sum(h)) {
        STAT_ADD(t, corrupt_payload, 1);
        return KVT_ECORRUPT;
    }
    return 0;
}

/* A hashing thread verifies o (a direct read, all its bytes in); the
 * ring's thread settles it after seeing vdone. */
static void verify_main(kvt__job *job)
{
    op *o = (op *)((char *)job - offsetof(op, vjob));
    int efd = o->lane->efd; /* the lane outlives the pool (tier_free) */
    o->status = nvme_verify(o->t, o, o->hdr, NULL);
    STAT_ADD(o->t, verified_off_ring, 1);
    atomic_store_explicit(&o->vdone, 1, memory_order_release);
    uint64_t one = 1;
    while (write(efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* Hands o's verification to a hashing thread when that pays. */
bool nvme_verify_off_ring(kvt_tier_impl *t, lane *l, op *o, int dir)
{
    if (dir != DIR_READ || !t->hashers || l->efd < 0 || o->status || o->verified ||
        t->geo.block_bytes < VERIFY_OFFLOAD_MIN)
        return false;
    o->t = t;
    o->lane = l;
    atomic_store_explicit(&o->vdone, 0, memory_order_relaxed);
    o->vjob.fn = verify_main;
    o->vnext = l->verifying;
    l->verifying = o;
    l->nverifying++;
    kvt__jobpool_post(t->hashers, &o->vjob);
    return true;
}

/* Runs here one verification still queued for a hashing thread, once the
 * device has nothing of the batch left to do: a get's blocks tend to arrive
 * together at the end, and one hashing thread verifying a whole queue of
 * them alone made gets of 8 MiB batches 20-35% slower than a raw loop.
 * (Helping while transfers were still in flight cost large blocks up to 5%:
 * the CPU it takes slows this VM's disk.) The newest is taken (the pool
 * runs oldest first). False if none was queued. */
bool nvme_verify_here(kvt_tier_impl *t, lane *l)
{
    for (op *o = l->verifying; o; o = o->vnext)
        if (!atomic_load_explicit(&o->vdone, memory_order_acquire) &&
            kvt__jobpool_cancel(t->hashers, &o->vjob)) {
            o->vjob.fn(&o->vjob); /* as the pool would: the eventfd counts it */
            return true;
        }
    return false;
}
