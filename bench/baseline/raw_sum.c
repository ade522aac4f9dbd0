/* raw_sum.c — the raw io_uring loop plus payload checksums, done as the NVMe tier does them: what verifying costs, without the tier. */
#include "raw_sum.h"

#include "../bench.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#if KVT_BENCH_XXH_DISPATCH
#include <xxh_x86dispatch.h> /* XXH3_64bits becomes the AVX2/AVX-512 dispatcher */
#endif

#define MAX_HELPERS 4 /* the tier's MAX_HASHERS */

enum { TODO = 0, HASHING = 1, HASHED = 2 };

struct raw_sum {
    bench_crew *helpers;
    size_t cap;
    pthread_mutex_t mu;    /* the read queue */
    pthread_cond_t items;  /* a block read, or the reads over */
    /* The pass. */
    int write;
    raw_uring *ring;
    const raw_io *ios;
    size_t n;
    _Atomic uint8_t *state; /* writes: TODO/HASHING/HASHED per block */
    _Atomic size_t cursor;  /* writes: next block a helper may take */
    uint64_t *sum;          /* per block, from its last write */
    size_t *queue, qhead, qtail; /* reads: blocks read, to verify (under mu) */
    int reads_done;
    _Atomic int bad;
};

static void verify_one(raw_sum *h, size_t i)
{
    const raw_io *io = &h->ios[i];
    if (XXH3_64bits(io->buf, io->len) != h->sum[i])
        atomic_store_explicit(&h->bad, 1, memory_order_relaxed);
}

static void hash_ahead(raw_sum *h)
{
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&h->cursor, 1, memory_order_relaxed);
        if (i >= h->n)
            return;
        uint8_t todo = TODO;
        if (!atomic_compare_exchange_strong(&h->state[i], &todo, HASHING))
            continue;
        h->sum[i] = XXH3_64bits(h->ios[i].buf, h->ios[i].len);
        atomic_store_explicit(&h->state[i], HASHED, memory_order_release);
        sched_yield(); /* the ring's thread first (the tier's threads: every 20 us at most) */
    }
}

/* Takes the next block read and not yet verified; false when the reads
 * are over and none is left. Called with mu held. */
static int take_read(raw_sum *h, size_t *i, int wait)
{
    while (h->qhead == h->qtail && !h->reads_done && wait)
        pthread_cond_wait(&h->items, &h->mu);
    if (h->qhead == h->qtail)
        return 0;
    *i = h->queue[h->qhead++];
    return 1;
}

/* A helper's part of a pass: hash ahead of the writes, or verify reads as
 * they arrive until they are over. */
static void helper(void *arg)
{
    raw_sum *h = arg;
    if (h->write) {
        hash_ahead(h);
        return;
    }
    size_t i;
    pthread_mutex_lock(&h->mu);
    while (take_read(h, &i, 1)) {
        pthread_mutex_unlock(&h->mu);
        verify_one(h, i);
        sched_yield();
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
}

uint64_t raw_sum_hash_only(const raw_io *ios, size_t n)
{
    uint64_t folded = 0;
    for (size_t i = 0; i < n; i++)
        folded ^= XXH3_64bits(ios[i].buf, ios[i].len) + i;
    return folded;
}

unsigned raw_sum_tier_helpers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned k = cpus > 1 ? (unsigned)(cpus - 1) : 0;
    return k < MAX_HELPERS ? k : MAX_HELPERS;
}

int raw_sum_new(unsigned helpers, size_t max_blocks, raw_sum **out)
{
    *out = NULL;
    raw_sum *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->cap = max_blocks;
    h->state = calloc(max_blocks ? max_blocks : 1, sizeof *h->state);
    h->sum = calloc(max_blocks ? max_blocks : 1, sizeof *h->sum);
    h->queue = calloc(max_blocks ? max_blocks : 1, sizeof *h->queue);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->items, NULL);
    h->helpers = bench_crew_new(helpers < MAX_HELPERS ? helpers : MAX_HELPERS);
    if (!h->state || !h->sum || !h->queue || !h->helpers) {
        int rc = h->helpers ? -ENOMEM : -EAGAIN; /* no memory, or no threads */
        raw_sum_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void raw_sum_free(raw_sum *h)
{
    if (!h)
        return;
    bench_crew_free(h->helpers);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->items);
    free((void *)h->state);
    free(h->sum);
    free(h->queue);
    free(h);
}

/* Before block i's write: its checksum, from a helper or hashed here. When
 * it is not ready, what is prepared goes to the device first, so that the
 * wait (or the hashing) does not leave the device idle; with large blocks,
 * a whole queue of them is a lot of hashing before the first submission. */
static void before_write(void *user, size_t i)
{
    raw_sum *h = user;
    if (atomic_load_explicit(&h->state[i], memory_order_acquire) != HASHED)
        raw_uring_submit(h->ring);
    uint8_t todo = TODO;
    if (atomic_compare_exchange_strong(&h->state[i], &todo, HASHING)) {
        h->sum[i] = XXH3_64bits(h->ios[i].buf, h->ios[i].len);
        atomic_store_explicit(&h->state[i], HASHED, memory_order_relaxed);
        return;
    }
    while (atomic_load_explicit(&h->state[i], memory_order_acquire) != HASHED)
        sched_yield(); /* a helper is hashing this very block */
}

/* Block i is read: queue it for a helper, or verify it here if none. */
static void after_read(void *user, size_t i)
{
    raw_sum *h = user;
    if (!bench_crew_threads(h->helpers)) {
        verify_one(h, i);
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->queue[h->qtail++] = i;
    pthread_cond_signal(&h->items);
    pthread_mutex_unlock(&h->mu);
}

int raw_sum_run(raw_sum *h, raw_uring *r, int write, const raw_io *ios, size_t n)
{
    if (n > h->cap)
        return -EINVAL;
    pthread_mutex_lock(&h->mu);
    h->write = write;
    h->ring = r;
    h->ios = ios;
    h->n = n;
    memset((void *)h->state, 0, n * sizeof *h->state);
    atomic_store(&h->cursor, 0);
    h->qhead = h->qtail = 0;
    h->reads_done = 0;
    atomic_store(&h->bad, 0);
    pthread_mutex_unlock(&h->mu);
    bench_crew_start(h->helpers, helper, h);

    int rc = raw_uring_run_cb(r, write, ios, n, write ? before_write : NULL,
                              write ? NULL : after_read, h);

    pthread_mutex_lock(&h->mu);
    if (write) {
        atomic_store(&h->cursor, n); /* helpers stop taking blocks */
    } else {
        /* The reads are over: help verify what is left. */
        h->reads_done = 1;
        pthread_cond_broadcast(&h->items);
        size_t i;
        while (take_read(h, &i, 0)) {
            pthread_mutex_unlock(&h->mu);
            verify_one(h, i);
            pthread_mutex_lock(&h->mu);
        }
    }
    pthread_mutex_unlock(&h->mu);
    bench_crew_wait(h->helpers);
    if (rc)
        return rc;
    return atomic_load(&h->bad) ? -EILSEQ : 0;
}
