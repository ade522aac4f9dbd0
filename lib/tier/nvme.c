/* nvme.c — the NVMe tier: an O_DIRECT file or block device of self-verifying slots, moved by io_uring. */
#include "kvt_build_config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "alloc.h"
#include "clock.h"
#include "error.h"
#include "jobpool.h"
#include "killpoint.h"
#include "tier/faults.h"
#include "tier/nvme.h"
#include "tier/tier.h"

/*
 * Media format (docs/nvme-format.md is the reference; keep them in step):
 *   [0, 4096)                  superblock: sb_* fields below, rest zero
 *   4096 + i * slot_bytes      slot i: a 4096-byte header unit (hdr_* fields,
 *                              rest zero), then the payload, padded to 4096
 * All integers little-endian. Both headers end in an XXH3-64 of their first
 * 120 bytes.
 */
#define UNIT KVT__NVME_UNIT
#define SLOTS_OFF KVT__NVME_SLOTS_OFFSET
#define FORMAT_VERSION 1u
#define HDR_BYTES 128u   /* bytes of either header in use */
#define HDR_SUMMED 120u  /* bytes covered by the header checksum */
static const uint8_t sb_magic[8] = {'K', 'V', 'T', 'I', 'E', 'R', 'S', 'B'};
static const uint8_t blk_magic[8] = {'K', 'V', 'T', 'B', 'L', 'O', 'C', 'K'};

enum { /* superblock field offsets */
    SB_MAGIC = 0, SB_VERSION = 8, SB_HDRBYTES = 12, SB_UNIT = 16, SB_FLAGS = 20,
    SB_BLOCK_BYTES = 24, SB_BLOCK_TOKENS = 32, SB_FRAGS = 36, SB_SLOT_BYTES = 40,
    SB_SLOT_COUNT = 48, SB_SLOTS_OFF = 56, SB_STORE_ID = 64, SB_CREATED = 80, SB_KEY_MODE = 88,
    SB_SUM = 120
};
enum { /* slot header field offsets */
    H_MAGIC = 0, H_VERSION = 8, H_HDRBYTES = 12, H_BLOCK_BYTES = 16, H_BLOCK_TOKENS = 24,
    H_FRAGS = 28, H_STORE_ID = 32, H_KEY = 48, H_LEN = 64, H_PAYLOAD_SUM = 72, H_SEQ = 80,
    H_SLOT = 88, H_FLAGS = 92, H_SUM = 120
};

/* Tuning constants (see "I/O engine" below for the reasoning). */
#define DEFAULT_QD 64
#define MAX_QD 4096
#define MIN_LANES 2
#define MAX_LANES 8
#define BOUNCE_MAX (1u << 20)           /* largest staged piece */
#define BOUNCE_PER_LANE (8u << 20)      /* staging bytes per ring for bounce pieces */
#define MAX_PIECE (256u << 20)          /* largest single direct transfer */
#define REG_CHUNK (1ull << 30)          /* io_uring's limit for one registered buffer */
#define MAX_RESUBMITS 16
#define SQ_IDLE_MS 10
#define LOCK_WAIT_MS 5000 /* longest wait for a previous store's I/O to drain ("file lock") */
/* Payloads at least this large are hashed by the tier's hashing threads
 * (write checksums ahead of the ring, read verification behind it); smaller
 * ones by the ring's thread, where a hand-over would cost more than the hash
 * (measured: 64 KiB gains from the hand-over, 16 KiB loses; docs/perf.md). */
#define OFFLOAD_MIN (64u << 10)
/* Write batches of blocks at least this large submit before each block's
 * checksum (run()). */
#define EARLY_MIN (1u << 20)
#define MAX_HASHERS 4

/* IORING_REGISTER_CLONE_BUFFERS (Linux 6.12): liburing 2.3 predates it. */
#define KVT_IORING_REGISTER_CLONE_BUFFERS 30
struct kvt_clone_buffers {
    uint32_t src_fd, flags, src_off, dst_off, nr, pad[3];
};

enum { DIR_READ = 0, DIR_WRITE = 1 };

/* ------------------------------------------------------------ little endian */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}
static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t kvt__nvme_slot_bytes(uint64_t block_bytes)
{
    return block_bytes ? UNIT + round_up(block_bytes, UNIT) : 0;
}

uint64_t kvt__nvme_file_bytes(uint64_t block_bytes, uint64_t nslots)
{
    return SLOTS_OFF + nslots * kvt__nvme_slot_bytes(block_bytes);
}

/* ------------------------------------------------------------------ state */

/*
 * I/O engine. A pool of rings ("lanes"), each with its own SQ/CQ, staging
 * memory and per-operation state. A write() or read() call checks one lane
 * out of the pool (a mutex held only to pop/push the free list, never across
 * I/O), drives its whole batch on it with up to queue_depth transfers in
 * flight, blocks in io_uring_enter() for completions, and gives the lane
 * back. Why not one shared ring and a completion thread: every completion
 * would then cost a wake-up of the submitting thread and the ring's lock
 * would be taken per SQE by every caller; with a lane per batch, the thread
 * that submits reaps its own completions (COOP_TASKRUN: no IPIs), nothing is
 * shared on the hot path, and batches from different threads proceed in
 * parallel on different rings. Registered buffers are set up once and cloned
 * into the other rings (Linux 6.12+; else registered again), and the rings
 * share one kernel worker pool (ATTACH_WQ) and, with SQPOLL, one poll thread.
 *
 * A block moves as one or more "pieces" (one SQE each). Staged blocks (small
 * ones, and any whose caller memory or fragment size is not aligned for
 * O_DIRECT) go through bounce buffers in the lane's staging memory, header
 * unit and payload in one transfer when the slot fits one bounce buffer.
 * Direct blocks move the header unit from staging and the payload straight
 * between the device and the caller's memory: as two transfers
 * (READ_FIXED/WRITE_FIXED, contiguous fragments merged into one SQE) when
 * the payload lies in a registered region, else as one vectored transfer
 * (READV/WRITEV of the header unit and the payload). The block layer merges
 * the two fixed transfers into one request anyway; for unregistered memory
 * the vectored SQE does the same with half the submission work (each SQE
 * is a pass through the filesystem's direct-I/O path: docs/perf.md).
 * queue_depth bounds the blocks in flight per ring; a ring has twice as many
 * SQEs so that direct blocks (two transfers) keep queue_depth payloads on
 * the device, as a plain io_uring loop at that depth would. CPU work on a
 * block (hashing before a write, verifying after a read) is done after the
 * ring has been handed everything else it can take.
 */
typedef struct op op;

typedef struct piece {
    op *op;
    uint8_t *mem;     /* next byte in memory */
    uint8_t *bounce;  /* staging buffer held, or NULL */
    uint64_t off;     /* next byte on media */
    uint64_t start;   /* slot-relative position of the piece's first byte */
    uint32_t span;    /* bytes the piece covers */
    uint32_t len;     /* bytes still to move */
    uint32_t asked;   /* bytes in the SQE in flight */
    int buf_index;    /* registered buffer, or -1 */
    uint8_t fault;    /* kvt__fault still to act on */
    uint8_t resubmits;
    uint8_t nvec;         /* 0: linear at mem; else iov[0..nvec), iov[0] at mem */
    struct iovec iov[2];  /* a vectored piece's header unit and payload */
    struct iovec trim[2]; /* what an injected short transfer asks for */
    struct piece *next;
} piece;

struct op {
    kvt_xfer *x;
    uint8_t *hdr;      /* this op's header unit, in registered staging */
    uint64_t fs;       /* bytes per fragment */
    uint64_t slot_off; /* media offset of the slot */
    uint64_t cursor;   /* slot-relative next byte to plan */
    uint64_t end;      /* slot-relative end of what moves */
    uint64_t rnd;      /* fault randomness */
    uint32_t inflight; /* pieces planned, not finished */
    int status;
    uint8_t staged, single, planning, verified, fault;
    op *next;
    /* Verification on a hashing thread: vjob runs verify() and sets vdone;
     * the ring's thread settles the op when it sees vdone. */
    kvt__job vjob;
    struct kvt_tier_impl *t;
    struct lane *lane;
    _Atomic int vdone;
    op *vnext;
};

typedef struct lane {
    struct io_uring ring;
    bool ring_ok;
    int file;          /* fixed-file index 0, or the fd */
    uint8_t sqe_flags; /* IOSQE_FIXED_FILE or 0 */
    int host_idx;      /* registered index of the host region's first chunk, or -1 */
    int staging_idx;   /* registered index of this lane's staging, or -1 */
    uint8_t *staging;  /* zero unit, qd+1 header units, bounce buffers */
    size_t staging_bytes;
    op *ops, *free_ops;
    op *ready_head, *ready_tail; /* all pieces done; to verify and settle */
    unsigned active;             /* ops started and not settled */
    piece *pieces, *free_pieces, *retry_head, *retry_tail;
    uint8_t **bounce_free;
    unsigned nbounce_free;
    struct lane *next_free;
    /* Ops whose verification runs on a hashing thread. Each one, when done,
     * adds 1 to efd; an eventfd read in the ring (armed while any are out)
     * wakes this lane's thread for it. */
    op *verifying;
    unsigned nverifying;
    int efd;
    bool efd_armed;
    uint64_t efd_val;
} lane;

struct kvt_tier_impl {
    int fd;
    int lock_fd;                 /* holds the owner lock ("file lock") */
    kvt_tier_impl *lock_next;    /* in `lockers`, under lockers_mu */
    bool blockdev;
    uint64_t block_bytes, slot_bytes;
    uint32_t block_tokens, frags, nslots, key_mode;
    uint32_t mem_align, len_align, hdr_io;
    uint8_t store_id[16];
    uint8_t *host_base;
    size_t host_bytes;
    unsigned qd, sq, nlanes, nbounce; /* sq: SQEs in flight per ring, 2 * qd */
    uint64_t bounce_bytes;
    bool sqpoll, fixed_host, fixed_staging, cloned, locked;
    lane *lanes;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lane *free_lanes;
    kvt__faults *faults;
    kvt__jobpool *hashers; /* NULL: the rings' threads hash everything */
    _Atomic uint64_t seq;
    struct {
        _Atomic uint64_t bytes_written, bytes_read, reads, writes, corrupt, corrupt_header,
            corrupt_payload, io_errors, resubmits, staged, vectored, discards, discard_batches,
            recovered, recovery_ms, syncs, hashed_off_ring, verified_off_ring;
    } st;
};

#define STAT_ADD(t, f, v) atomic_fetch_add_explicit(&(t)->st.f, (v), memory_order_relaxed)

/* --------------------------------------------------------------- headers */

static void sb_encode(const kvt_tier_impl *t, uint8_t *b)
{
    memset(b, 0, UNIT);
    memcpy(b + SB_MAGIC, sb_magic, 8);
    put32(b + SB_VERSION, FORMAT_VERSION);
    put32(b + SB_HDRBYTES, HDR_BYTES);
    put32(b + SB_UNIT, UNIT);
    put32(b + SB_FLAGS, 0);
    put64(b + SB_BLOCK_BYTES, t->block_bytes);
    put32(b + SB_BLOCK_TOKENS, t->block_tokens);
    put32(b + SB_FRAGS, t->frags);
    put64(b + SB_SLOT_BYTES, t->slot_bytes);
    put64(b + SB_SLOT_COUNT, t->nslots);
    put64(b + SB_SLOTS_OFF, SLOTS_OFF);
    memcpy(b + SB_STORE_ID, t->store_id, 16);
    put64(b + SB_CREATED, kvt__clock_ns(CLOCK_REALTIME));
    put32(b + SB_KEY_MODE, t->key_mode);
    put64(b + SB_SUM, XXH3_64bits(b, HDR_SUMMED));
}

static void hdr_encode(const kvt_tier_impl *t, uint8_t *h, const kvt_xfer *x, uint64_t sum,
                       uint64_t seq)
{
    memset(h, 0, UNIT);
    memcpy(h + H_MAGIC, blk_magic, 8);
    put32(h + H_VERSION, FORMAT_VERSION);
    put32(h + H_HDRBYTES, HDR_BYTES);
    put64(h + H_BLOCK_BYTES, t->block_bytes);
    put32(h + H_BLOCK_TOKENS, t->block_tokens);
    put32(h + H_FRAGS, t->frags);
    memcpy(h + H_STORE_ID, t->store_id, 16);
    memcpy(h + H_KEY, x->key.b, 16);
    put64(h + H_LEN, t->block_bytes);
    put64(h + H_PAYLOAD_SUM, sum);
    put64(h + H_SEQ, seq);
    put32(h + H_SLOT, x->slot);
    put32(h + H_FLAGS, 0);
    put64(h + H_SUM, XXH3_64bits(h, HDR_SUMMED));
}

/* Whether h is a valid header of this store for `slot` (everything but the
 * payload checksum); the key it names goes to *key. */
static bool hdr_valid(const kvt_tier_impl *t, const uint8_t *h, uint32_t slot, kvt_key *key)
{
    if (memcmp(h + H_MAGIC, blk_magic, 8) || get32(h + H_VERSION) != FORMAT_VERSION ||
        get32(h + H_HDRBYTES) != HDR_BYTES || get64(h + H_BLOCK_BYTES) != t->block_bytes ||
        get32(h + H_BLOCK_TOKENS) != t->block_tokens || get32(h + H_FRAGS) != t->frags ||
        memcmp(h + H_STORE_ID, t->store_id, 16) || get64(h + H_LEN) != t->block_bytes ||
        get32(h + H_SLOT) != slot || get64(h + H_SUM) != XXH3_64bits(h, HDR_SUMMED))
        return false;
    memcpy(key->b, h + H_KEY, 16);
    return true;
}

/* --------------------------------------------------------- payload helpers */

/* libxxhash builds with runtime CPU dispatch (Debian's, Fedora's) export
 * XXH3_64bits_dispatch(), AVX2/AVX-512 code about 3x the speed of the
 * baseline SSE2 code inlined here on large payloads (15 vs 43 GB/s on the
 * development machine). It is looked up at run time: the build inlines
 * xxHash, so the linker would not even keep libxxhash as a dependency, and
 * a library without the entry point must still work. */
typedef XXH64_hash_t (*hash_fn)(const void *input, size_t len);
static hash_fn fast_hash;
static pthread_once_t fast_hash_once = PTHREAD_ONCE_INIT;

static void fast_hash_init(void)
{
    void *lib = dlopen("libxxhash.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    void *sym = dlsym(lib, "XXH3_64bits_dispatch");
    hash_fn fn = NULL;
    memcpy(&fn, &sym, sizeof fn); /* ISO C has no object-to-function pointer cast */
    static const char probe[] = "kvtier nvme payload checksum probe, longer than one stripe "
                                "of XXH3 so that the long-input path is the one compared";
    if (fn && fn(probe, sizeof probe) == XXH3_64bits(probe, sizeof probe))
        fast_hash = fn;
    else
        dlclose(lib);
}

static uint64_t payload_hash(const void *p, size_t n)
{
    return fast_hash ? fast_hash(p, n) : XXH3_64bits(p, n);
}

/* Whether x's fragments (fs bytes each) lie back to back: one linear payload. */
static bool frags_contiguous(const kvt_xfer *x, uint64_t fs)
{
    for (uint32_t f = 1; f < x->nfrags; f++)
        if ((const uint8_t *)x->frags[f] != (const uint8_t *)x->frags[0] + f * fs)
            return false;
    return true;
}

static uint64_t frags_hash(const kvt_xfer *x, uint64_t fs)
{
    if (frags_contiguous(x, fs))
        return payload_hash(x->frags[0], fs * x->nfrags);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (uint32_t f = 0; f < x->nfrags; f++)
        XXH3_64bits_update(&st, x->frags[f], fs);
    return XXH3_64bits_digest(&st);
}

/* Copies payload bytes [pos, pos+n) between a linear buffer and the
 * fragments (to_frags: buffer -> fragments). */
static void frags_copy(const kvt_xfer *x, uint64_t fs, uint64_t pos, uint8_t *buf, uint64_t n,
                       bool to_frags)
{
    while (n) {
        uint64_t f = pos / fs, in = pos % fs, k = min64(fs - in, n);
        uint8_t *fp = (uint8_t *)x->frags[f] + in;
        if (to_frags)
            memcpy(fp, buf, k);
        else
            memcpy(buf, fp, k);
        pos += k;
        buf += k;
        n -= k;
    }
}

/* --------------------------------------------------- hashing off the ring */

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

/* What is wrong with x (a KVT_E* code, or 0), without a message: a hashing
 * thread must not set the caller's, and skips what check_xfer() will refuse.
 * *bad_frag: the NULL fragment, for KVT_ENULL (UINT32_MAX: no array). */
static int xfer_problem(const kvt_tier_impl *t, const kvt_xfer *x, uint32_t *bad_frag)
{
    *bad_frag = UINT32_MAX;
    if (x->slot >= t->nslots)
        return KVT_EINVAL;
    if (!x->nfrags || t->block_bytes % x->nfrags)
        return KVT_EFRAGS;
    if (!x->frags)
        return KVT_ENULL;
    for (uint32_t f = 0; f < x->nfrags; f++)
        if (!x->frags[f]) {
            *bad_frag = f;
            return KVT_ENULL;
        }
    return 0;
}

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
            /* Not finished: ahead_end() either takes this job back from the
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
        if (!xfer_problem(h->t, x, &bad)) {
            h->sum[i] = frags_hash(x, h->t->block_bytes / x->nfrags);
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
static void ahead_start(kvt_tier_impl *t, hash_ahead *h, const kvt_xfer *x, size_t n)
{
    memset(h, 0, sizeof *h);
    if (!t->hashers || n < 2 || t->block_bytes < OFFLOAD_MIN)
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
static bool ahead_done(hash_ahead *h, size_t i)
{
    return !h->posted || atomic_load_explicit(&h->state[i], memory_order_acquire) == 2;
}

/* Block i's checksum: from a helper, or hashed here. */
static uint64_t ahead_sum(hash_ahead *h, size_t i, const kvt_xfer *x, uint64_t fs)
{
    if (!h || !h->posted)
        return frags_hash(x, fs);
    uint8_t todo = 0;
    if (atomic_compare_exchange_strong(&h->state[i], &todo, 1))
        return frags_hash(x, fs);
    while (atomic_load_explicit(&h->state[i], memory_order_acquire) != 2)
        sched_yield(); /* a helper is hashing this very block */
    return h->sum[i];
}

/* Stops the helpers (a job not started is taken back; one running finishes
 * its current block) and frees the state. */
static void ahead_end(kvt_tier_impl *t, hash_ahead *h)
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

/* ----------------------------------------------------------------- lanes */

static lane *lane_get(kvt_tier_impl *t)
{
    pthread_mutex_lock(&t->mu);
    while (!t->free_lanes)
        pthread_cond_wait(&t->cv, &t->mu);
    lane *l = t->free_lanes;
    t->free_lanes = l->next_free;
    pthread_mutex_unlock(&t->mu);
    return l;
}

static void lane_put(kvt_tier_impl *t, lane *l)
{
    pthread_mutex_lock(&t->mu);
    l->next_free = t->free_lanes;
    t->free_lanes = l;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void prep_rw(lane *l, int dir, uint8_t *mem, uint32_t len, uint64_t off, int buf_index,
                    void *data)
{
    /* Never NULL: at most sq SQEs are in flight and the SQ has sq entries. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (buf_index >= 0) {
        if (dir == DIR_WRITE)
            io_uring_prep_write_fixed(sqe, l->file, mem, len, off, buf_index);
        else
            io_uring_prep_read_fixed(sqe, l->file, mem, len, off, buf_index);
    } else {
        if (dir == DIR_WRITE)
            io_uring_prep_write(sqe, l->file, mem, len, off);
        else
            io_uring_prep_read(sqe, l->file, mem, len, off);
    }
    sqe->flags |= l->sqe_flags;
    io_uring_sqe_set_data(sqe, data);
}

/* Prepares piece p's transfer of its next p->asked bytes. */
static void prep_piece(lane *l, int dir, piece *p)
{
    if (!p->nvec) {
        prep_rw(l, dir, p->mem, p->asked, p->off, p->buf_index, p);
        return;
    }
    /* The kernel reads the iovecs at submission, from the piece. An
     * injected short transfer asks for fewer bytes than they hold: it gets a
     * trimmed copy. */
    unsigned nv = p->asked <= p->iov[0].iov_len ? 1 : p->nvec;
    struct iovec *v = p->iov;
    if (p->asked < p->len) {
        p->trim[0] = p->iov[0];
        if (nv == 1)
            p->trim[0].iov_len = p->asked;
        else
            p->trim[1] = (struct iovec){p->iov[1].iov_base, p->asked - p->iov[0].iov_len};
        v = p->trim;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (dir == DIR_WRITE)
        io_uring_prep_writev(sqe, l->file, v, nv, p->off);
    else
        io_uring_prep_readv(sqe, l->file, v, nv, p->off);
    sqe->flags |= l->sqe_flags;
    io_uring_sqe_set_data(sqe, p);
}

/* Moves piece p past the `got` bytes of a short transfer, to resubmit the rest. */
static void piece_advance(piece *p, uint32_t got)
{
    p->off += got;
    p->len -= got;
    if (!p->nvec) {
        p->mem += got;
        return;
    }
    while (got) {
        if (got < p->iov[0].iov_len) {
            p->iov[0].iov_base = (uint8_t *)p->iov[0].iov_base + got;
            p->iov[0].iov_len -= got;
            break;
        }
        got -= (uint32_t)p->iov[0].iov_len;
        p->iov[0] = p->iov[1];
        p->nvec--;
    }
    p->mem = p->iov[0].iov_base;
}

/* Submits what is queued and waits for at least one completion. */
static void submit_wait(lane *l)
{
    for (;;) {
        int rc = io_uring_submit_and_wait(&l->ring, 1);
        if (rc >= 0 || (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY))
            return;
        if (rc != -EINTR) {
            /* Out of kernel resources for new SQEs: completions free them. */
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&l->ring, &cqe) == 0)
                return;
        }
    }
}

static int errno_code(int neg)
{
    return neg == -ENOSPC || neg == -EDQUOT ? KVT_ENOSPC : KVT_EIO;
}

/* ------------------------------------------------------- block operations */

static int check_xfer(const kvt_tier_impl *t, const kvt_xfer *x)
{
    uint32_t f;
    switch (xfer_problem(t, x, &f)) {
    case 0:
        return 0;
    case KVT_EINVAL:
        return kvt__err(KVT_EINVAL, "nvme: slot %u out of range (%u slots)", x->slot, t->nslots);
    case KVT_EFRAGS:
        return kvt__err(KVT_EFRAGS, "nvme: %u fragments do not divide a %llu-byte block",
                        x->nfrags, (unsigned long long)t->block_bytes);
    default:
        if (f == UINT32_MAX)
            return kvt__err(KVT_ENULL, "nvme: xfer for slot %u has no fragment array", x->slot);
        return kvt__err(KVT_ENULL, "nvme: fragment %u of slot %u is NULL", f, x->slot);
    }
}

static bool direct_ok(const kvt_tier_impl *t, const kvt_xfer *x, uint64_t fs)
{
    if (fs % t->len_align)
        return false;
    for (uint32_t f = 0; f < x->nfrags; f++)
        if ((uintptr_t)x->frags[f] % t->mem_align)
            return false;
    return true;
}

/* Sets up the op for x, or settles x at once (bad xfer, injected failure)
 * and returns NULL. */
static op *op_start(kvt_tier_impl *t, lane *l, kvt_xfer *x, int dir, hash_ahead *h, size_t i)
{
    int rc = check_xfer(t, x);
    if (rc) {
        x->status = rc;
        return NULL;
    }
    uint64_t rnd = 0;
    kvt__fault fault = t->faults ? kvt__faults_draw(t->faults, dir == DIR_WRITE, &rnd)
                                 : KVT__FAULT_NONE;
    if (fault == KVT__FAULT_EIO || fault == KVT__FAULT_ENOSPC) {
        x->status = fault == KVT__FAULT_EIO ? KVT_EIO : KVT_ENOSPC;
        STAT_ADD(t, io_errors, 1);
        return NULL;
    }
    op *o = l->free_ops;
    l->free_ops = o->next;
    l->active++;
    o->x = x;
    o->fs = t->block_bytes / x->nfrags;
    o->slot_off = SLOTS_OFF + (uint64_t)x->slot * t->slot_bytes;
    o->cursor = 0;
    o->inflight = 0;
    o->status = 0;
    /* Staged only when the caller's memory can't do direct I/O: small
     * blocks through a bounce buffer (one transfer, a copy) ran at half
     * the speed of two direct transfers (docs/perf.md). */
    o->staged = !direct_ok(t, x, o->fs);
    o->end = UNIT + (o->staged ? round_up(t->block_bytes, t->len_align) : t->block_bytes);
    o->single = o->staged && o->end <= t->bounce_bytes;
    o->planning = 1;
    o->verified = 0;
    o->fault = (uint8_t)fault;
    o->rnd = rnd;
    if (o->staged)
        STAT_ADD(t, staged, 1);
    if (dir == DIR_WRITE) {
        KVT_KILLPOINT(KVT__KP_WRITE);
        uint64_t seq = atomic_fetch_add_explicit(&t->seq, 1, memory_order_relaxed);
        hdr_encode(t, o->hdr, x, ahead_sum(h, i, x, o->fs), seq);
        if (fault == KVT__FAULT_TORN4K || fault == KVT__FAULT_TORN512) {
            /* A crash mid-write: only the slot's first bytes reach media. */
            uint64_t torn = fault == KVT__FAULT_TORN4K ? 4096 : 512;
            o->end = min64(o->end, round_up(torn, t->len_align));
            o->fault = KVT__FAULT_NONE;
        }
    }
    return o;
}

static void op_fail(op *o, int code)
{
    if (!o->status)
        o->status = code;
    o->cursor = o->end; /* plan nothing more */
}

/* Fills a bounce buffer with slot bytes [pos, pos+n) of the block being
 * written: header unit, payload, zero padding. */
static void bounce_fill(const kvt_tier_impl *t, const op *o, uint8_t *b, uint64_t pos, uint64_t n)
{
    uint64_t end = pos + n;
    if (pos < UNIT) {
        uint64_t k = min64(end, UNIT) - pos;
        memcpy(b, o->hdr + pos, k);
        b += k;
        pos += k;
    }
    if (pos < end && pos - UNIT < t->block_bytes) {
        uint64_t k = min64(end - UNIT, t->block_bytes) - (pos - UNIT);
        frags_copy(o->x, o->fs, pos - UNIT, b, k, false);
        b += k;
        pos += k;
    }
    if (pos < end)
        memset(b, 0, end - pos);
}

/* The registered index for [mem, mem + *len) in the host region, trimming
 * *len to the end of its 1 GiB chunk when that stays aligned; -1 if none. */
static int host_index(const kvt_tier_impl *t, const lane *l, const uint8_t *mem, uint64_t *len)
{
    if (l->host_idx < 0 || mem < t->host_base || mem >= t->host_base + t->host_bytes)
        return -1;
    uint64_t rel = (uint64_t)(mem - t->host_base), chunk = rel / REG_CHUNK;
    uint64_t chunk_end = min64((chunk + 1) * REG_CHUNK, t->host_bytes);
    if (rel + *len > chunk_end) {
        uint64_t fit = chunk_end - rel;
        if (fit % t->len_align)
            return -1;
        *len = fit;
    }
    return l->host_idx + (int)chunk;
}

/* The payload of direct op o when it is one run of caller memory outside
 * the registered regions, to move with its header unit in one vectored
 * transfer; NULL when it goes as fixed or separate transfers. */
static uint8_t *contiguous_payload(const kvt_tier_impl *t, const lane *l, const op *o)
{
    uint8_t *p = o->x->frags[0];
    if (o->end != UNIT + t->block_bytes || t->block_bytes > MAX_PIECE ||
        !frags_contiguous(o->x, o->fs))
        return NULL;
    uint64_t len = t->block_bytes;
    return host_index(t, l, p, &len) < 0 ? p : NULL;
}

/* Plans and prepares o's next piece; false when it must wait for a bounce
 * buffer. */
static bool plan(kvt_tier_impl *t, lane *l, op *o, int dir)
{
    uint64_t pos = o->cursor, left = o->end - pos, n;
    uint8_t *mem, *bounce = NULL, *payload = NULL;
    int idx;
    if (o->staged) {
        if (!l->nbounce_free)
            return false;
        bounce = l->bounce_free[--l->nbounce_free];
        n = min64(left, t->bounce_bytes);
        if (dir == DIR_WRITE)
            bounce_fill(t, o, bounce, pos, n);
        mem = bounce;
        idx = l->staging_idx;
    } else if (pos == 0 && (payload = contiguous_payload(t, l, o))) {
        n = left; /* the header unit and the whole payload, one transfer */
        mem = o->hdr;
        idx = -1;
    } else if (pos < UNIT) {
        n = min64(left, UNIT - pos);
        mem = o->hdr + pos;
        idx = l->staging_idx;
    } else {
        const kvt_xfer *x = o->x;
        uint64_t pp = pos - UNIT, f = pp / o->fs;
        mem = (uint8_t *)x->frags[f] + pp % o->fs;
        n = o->fs - pp % o->fs;
        while (f + 1 < x->nfrags && n < MAX_PIECE &&
               (uint8_t *)x->frags[f + 1] == (uint8_t *)x->frags[f] + o->fs) {
            f++;
            n += o->fs;
        }
        n = min64(min64(n, left), MAX_PIECE);
        idx = host_index(t, l, mem, &n);
    }
    piece *p = l->free_pieces;
    l->free_pieces = p->next;
    p->op = o;
    p->mem = mem;
    p->bounce = bounce;
    p->off = o->slot_off + pos;
    p->start = pos;
    p->span = p->len = p->asked = (uint32_t)n;
    p->buf_index = idx;
    p->resubmits = 0;
    p->fault = KVT__FAULT_NONE;
    p->nvec = 0;
    if (payload) {
        p->nvec = 2;
        p->iov[0] = (struct iovec){o->hdr, UNIT};
        p->iov[1] = (struct iovec){payload, n - UNIT};
        STAT_ADD(t, vectored, 1);
    }
    if (o->fault == KVT__FAULT_SHORT || o->fault == KVT__FAULT_PARTIAL) {
        /* The device moves only an aligned part (maybe nothing) of this piece. */
        p->fault = o->fault;
        p->asked = (uint32_t)((o->rnd % n) / t->len_align * t->len_align);
        o->fault = KVT__FAULT_NONE;
    } else if (o->fault >= KVT__FAULT_CQE_EIO) {
        p->fault = o->fault; /* goes out whole; its completion is replaced */
        o->fault = KVT__FAULT_NONE;
    }
    o->cursor += n;
    o->inflight++;
    prep_piece(l, dir, p);
    return true;
}

/* Read verification of a finished op, header in h, payload hashed from
 * `payload` (linear) or the caller's fragments (NULL). */
static int verify(kvt_tier_impl *t, const op *o, const uint8_t *h, const uint8_t *payload)
{
    kvt_key key;
    if (!hdr_valid(t, h, o->x->slot, &key) || memcmp(key.b, o->x->key.b, 16)) {
        STAT_ADD(t, corrupt_header, 1);
        return KVT_ECORRUPT;
    }
    uint64_t sum = payload ? payload_hash(payload, t->block_bytes) : frags_hash(o->x, o->fs);
    if (sum != get64(h + H_PAYLOAD_SUM)) {
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
    o->status = verify(o->t, o, o->hdr, NULL);
    STAT_ADD(o->t, verified_off_ring, 1);
    atomic_store_explicit(&o->vdone, 1, memory_order_release);
    uint64_t one = 1;
    while (write(efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* Hands o's verification to a hashing thread when that pays. */
static bool verify_off_ring(kvt_tier_impl *t, lane *l, op *o, int dir)
{
    if (dir != DIR_READ || !t->hashers || l->efd < 0 || o->status || o->verified ||
        t->block_bytes < OFFLOAD_MIN)
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
static bool verify_here(kvt_tier_impl *t, lane *l)
{
    for (op *o = l->verifying; o; o = o->vnext)
        if (!atomic_load_explicit(&o->vdone, memory_order_acquire) &&
            kvt__jobpool_cancel(t->hashers, &o->vjob)) {
            o->vjob.fn(&o->vjob); /* as the pool would: the eventfd counts it */
            return true;
        }
    return false;
}

static void op_finish(kvt_tier_impl *t, lane *l, op *o, int dir);

/* Settles the ops whose verification is done; returns how many. */
static unsigned settle_verified(kvt_tier_impl *t, lane *l)
{
    unsigned done = 0;
    for (op **pp = &l->verifying; *pp;) {
        op *o = *pp;
        if (!atomic_load_explicit(&o->vdone, memory_order_acquire)) {
            pp = &o->vnext;
            continue;
        }
        *pp = o->vnext;
        l->nverifying--;
        o->verified = 1;
        op_finish(t, l, o, DIR_READ);
        done++;
    }
    return done;
}

/* Tag of the eventfd read's completion (pieces carry their piece). */
static char efd_tag;

static void arm_efd(lane *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring); /* sq + 1 entries */
    io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof l->efd_val, 0);
    io_uring_sqe_set_data(sqe, &efd_tag);
    l->efd_armed = true;
}

/* A staged read piece arrived: verify (single piece) or copy out. */
static void bounce_drain(kvt_tier_impl *t, op *o, const piece *p)
{
    if (o->single) {
        int rc = verify(t, o, p->bounce, p->bounce + UNIT);
        if (!rc)
            frags_copy(o->x, o->fs, 0, p->bounce + UNIT, t->block_bytes, true);
        o->status = rc;
        o->verified = 1;
        return;
    }
    uint64_t pos = p->start, end = p->start + p->span;
    const uint8_t *b = p->bounce;
    if (pos < UNIT) {
        uint64_t k = min64(end, UNIT) - pos;
        memcpy(o->hdr + pos, b, k);
        b += k;
        pos += k;
    }
    if (pos < end && pos - UNIT < t->block_bytes) {
        uint64_t k = min64(end - UNIT, t->block_bytes) - (pos - UNIT);
        frags_copy(o->x, o->fs, pos - UNIT, (uint8_t *)b, k, true);
    }
}

static void op_finish(kvt_tier_impl *t, lane *l, op *o, int dir)
{
    kvt_xfer *x = o->x;
    if (dir == DIR_READ && !o->status && !o->verified)
        o->status = verify(t, o, o->hdr, NULL);
    x->status = o->status;
    if (!o->status) {
        if (dir == DIR_WRITE) {
            STAT_ADD(t, writes, 1);
            STAT_ADD(t, bytes_written, t->block_bytes);
        } else {
            STAT_ADD(t, reads, 1);
            STAT_ADD(t, bytes_read, t->block_bytes);
        }
    } else if (o->status == KVT_ECORRUPT) {
        STAT_ADD(t, corrupt, 1);
    } else {
        STAT_ADD(t, io_errors, 1);
    }
    o->next = l->free_ops;
    l->free_ops = o;
    l->active--;
}

/* Queues o for settling once nothing of it is left to plan or in flight;
 * run() settles it after submitting more work, so that verifying a large
 * block overlaps the device's work instead of starving its queue. */
static void maybe_finish(lane *l, op *o)
{
    if (o->planning || o->inflight || o->cursor < o->end)
        return;
    o->next = NULL;
    if (l->ready_tail)
        l->ready_tail->next = o;
    else
        l->ready_head = o;
    l->ready_tail = o;
}

static void retry_push(lane *l, piece *p)
{
    p->next = NULL;
    if (l->retry_tail)
        l->retry_tail->next = p;
    else
        l->retry_head = p;
    l->retry_tail = p;
}

/* The result an injected completion fault reports for piece p, whose
 * transfer moved all its bytes: an error, or a short count that the tier
 * can't resume from (none, or one off the device's alignment). */
static int cqe_fault(const kvt_tier_impl *t, piece *p)
{
    kvt__fault f = p->fault;
    uint64_t r = p->op->rnd;
    p->fault = KVT__FAULT_NONE;
    if (f == KVT__FAULT_CQE_EIO)
        return -EIO;
    if (f == KVT__FAULT_CQE_ENOSPC)
        return -ENOSPC;
    if ((r & 1) || t->len_align < 2)
        return 0;
    return (int)(((r >> 1) % p->asked) | 1); /* odd: below asked (even), off alignment */
}

static void piece_done(kvt_tier_impl *t, lane *l, piece *p, int res, int dir)
{
    op *o = p->op;
    if ((res == -EAGAIN || res == -EINTR) && p->resubmits < MAX_RESUBMITS) {
        p->resubmits++;
        STAT_ADD(t, resubmits, 1);
        retry_push(l, p);
        return;
    }
    if (p->fault >= KVT__FAULT_CQE_EIO && res >= 0)
        res = cqe_fault(t, p);
    if (res < 0) {
        op_fail(o, errno_code(res));
    } else if (p->fault == KVT__FAULT_SHORT) {
        op_fail(o, KVT_EIO); /* the device said it moved less: the block failed */
    } else if ((uint32_t)res < p->len && !o->status) {
        uint32_t got = (uint32_t)res;
        bool injected = p->fault == KVT__FAULT_PARTIAL;
        p->fault = KVT__FAULT_NONE;
        /* A short transfer: resubmit the rest, unless it made no progress,
         * broke alignment, or keeps happening. */
        if (!injected && (got == 0 || got % t->len_align || p->resubmits >= MAX_RESUBMITS)) {
            op_fail(o, KVT_EIO);
        } else {
            p->resubmits++;
            piece_advance(p, got);
            p->asked = p->len;
            STAT_ADD(t, resubmits, 1);
            retry_push(l, p);
            return;
        }
    } else if (dir == DIR_READ && p->bounce && !o->status) {
        bounce_drain(t, o, p);
    }
    if (p->bounce)
        l->bounce_free[l->nbounce_free++] = p->bounce;
    p->next = l->free_pieces;
    l->free_pieces = p;
    o->inflight--;
    maybe_finish(l, o);
}

/* Moves a batch on one lane. Up to qd blocks and 2 * qd SQEs (a direct
 * block is a header and a payload transfer) are in flight. */
static void run(kvt_tier_impl *t, lane *l, kvt_xfer *x, size_t n, int dir)
{
    size_t next = 0;
    unsigned inflight = 0;
    op *cur = NULL;
    hash_ahead ahead;
    ahead_start(t, &ahead, x, dir == DIR_WRITE ? n : 0);
    /* Hashing a large block before writing it takes a while: hand the
     * device what is prepared first. That costs a submission per block,
     * which pays from about 1 MiB up (at least 40 us of hashing, when the
     * ring's thread gets to hash one itself); at 256 KiB it cost puts about
     * 2% and at 8 MiB dropping it cost 20% (docs/perf.md). */
    bool early = dir == DIR_WRITE && t->block_bytes >= EARLY_MIN;
    for (;;) {
        while (inflight < t->sq) {
            if (l->retry_head) {
                piece *p = l->retry_head;
                l->retry_head = p->next;
                if (!l->retry_head)
                    l->retry_tail = NULL;
                prep_piece(l, dir, p);
                inflight++;
                continue;
            }
            if (cur && cur->cursor >= cur->end) {
                cur->planning = 0;
                maybe_finish(l, cur);
                cur = NULL;
            }
            if (!cur) {
                /* Blocks being verified off the ring don't count against
                 * the depth: the device is done with them. */
                if (next == n || l->active - l->nverifying >= t->qd || !l->free_ops)
                    break;
                if ((early || !ahead_done(&ahead, next)) && io_uring_sq_ready(&l->ring))
                    io_uring_submit(&l->ring);
                cur = op_start(t, l, &x[next], dir, &ahead, next);
                next++;
                continue;
            }
            if (!plan(t, l, cur, dir))
                break;
            inflight++;
        }
        if (l->ready_head) {
            if (io_uring_sq_ready(&l->ring))
                io_uring_submit(&l->ring);
            while (l->ready_head) {
                op *o = l->ready_head;
                l->ready_head = o->next;
                if (!verify_off_ring(t, l, o, dir))
                    op_finish(t, l, o, dir);
            }
            l->ready_tail = NULL;
            continue;
        }
        if (l->nverifying && settle_verified(t, l))
            continue;
        /* All settled: with nothing in flight every bounce is free, and no
         * eventfd read is left in the ring for the next batch. */
        if (!inflight && !l->nverifying && !l->efd_armed)
            break;
        if (l->nverifying && !inflight && next == n && !cur && verify_here(t, l))
            continue;
        if (l->nverifying && !l->efd_armed)
            arm_efd(l);
        submit_wait(l);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0, pieces = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            void *data = io_uring_cqe_get_data(cqe);
            seen++;
            if (data == &efd_tag) {
                /* A failed read (never expected) is re-armed while ops are
                 * out: each finished verification writes the eventfd. */
                l->efd_armed = false;
                continue;
            }
            piece_done(t, l, data, cqe->res, dir);
            pieces++;
        }
        io_uring_cq_advance(&l->ring, seen);
        inflight -= pieces;
    }
    ahead_end(t, &ahead);
}

static int batch(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int dir)
{
    if (!t || (n && !x))
        return kvt__err(KVT_ENULL, "nvme: %s is NULL", t ? "xfer array" : "tier");
    if (mem != KVT_MEM_HOST) {
        for (size_t i = 0; i < n; i++)
            x[i].status = KVT_EMEMKIND;
        return n ? kvt__err(KVT_EMEMKIND, "nvme: moves host memory only; stage device "
                                          "memory through DRAM") : 0;
    }
    if (!n)
        return 0;
    lane *l = lane_get(t);
    run(t, l, x, n, dir);
    lane_put(t, l);
    for (size_t i = 0; i < n; i++)
        if (x[i].status) {
            int rc = x[i].status;
            if (rc == KVT_ECORRUPT)
                return kvt__err(rc, "nvme: slot %u failed verification", x[i].slot);
            if (rc == KVT_EIO || rc == KVT_ENOSPC)
                return kvt__err(rc, "nvme: %s of slot %u failed", dir ? "write" : "read",
                                x[i].slot);
            return rc; /* check_xfer() set the message */
        }
    return 0;
}

static int nvme_write(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return batch(t, x, n, mem, DIR_WRITE);
}

static int nvme_read(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return batch(t, x, n, mem, DIR_READ);
}

/* ---------------------------------------------------- header-only batches */

/* Zeroes the headers of n slots (discard). Returns 0 or KVT_EIO. */
static int zero_headers(kvt_tier_impl *t, lane *l, const uint32_t *slots, size_t n)
{
    size_t next = 0;
    unsigned inflight = 0;
    int rc = 0;
    uint8_t *zero = l->staging; /* never written: the first unit of staging */
    KVT_KILLPOINT(KVT__KP_META);
    while (next < n || inflight) {
        while (next < n && inflight < t->qd) {
            uint64_t off = SLOTS_OFF + (uint64_t)slots[next] * t->slot_bytes;
            prep_rw(l, DIR_WRITE, zero, t->hdr_io, off, l->staging_idx,
                    (void *)(uintptr_t)(next + 1));
            next++;
            inflight++;
        }
        submit_wait(l);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            if (cqe->res != (int)t->hdr_io) {
                size_t i = (size_t)(uintptr_t)io_uring_cqe_get_data(cqe) - 1;
                if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
                    /* Rare; retried synchronously to keep this loop simple. */
                    prep_rw(l, DIR_WRITE, zero, t->hdr_io,
                            SLOTS_OFF + (uint64_t)slots[i] * t->slot_bytes, l->staging_idx,
                            (void *)(uintptr_t)(i + 1));
                    inflight++;
                } else if (!rc) {
                    rc = kvt__err_errno(KVT_EIO, cqe->res < 0 ? -cqe->res : 0,
                                        "nvme: invalidating the header of slot %u", slots[i]);
                }
            }
            seen++;
        }
        io_uring_cq_advance(&l->ring, seen);
        inflight -= seen;
    }
    return rc;
}

/* One batch of header writes, qd at a time, for all n slots. */
static int nvme_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n)
{
    if (!t || (n && !slots))
        return kvt__err(KVT_ENULL, "nvme: %s is NULL", t ? "slot array" : "tier");
    for (size_t i = 0; i < n; i++)
        if (slots[i] >= t->nslots)
            return kvt__err(KVT_EINVAL, "nvme: slot %u out of range (%u slots)", slots[i],
                            t->nslots);
    if (!n)
        return 0;
    lane *l = lane_get(t);
    int rc = zero_headers(t, l, slots, n);
    lane_put(t, l);
    if (!rc) {
        STAT_ADD(t, discards, n);
        STAT_ADD(t, discard_batches, 1);
    }
    return rc;
}

static int nvme_recover(kvt_tier_impl *t, kvt_recover_fn fn, void *user)
{
    if (!t || !fn)
        return kvt__err(KVT_ENULL, "nvme: recover: %s is NULL", t ? "fn" : "tier");
    uint64_t t0 = kvt__clock_ns(CLOCK_MONOTONIC);
    lane *l = lane_get(t);
    uint32_t *drop = NULL;
    size_t ndrop = 0, capdrop = 0;
    uint64_t kept = 0;
    int rc = 0;
    /* Header reads are small: go as deep as the ring allows, each into a
     * unit of the lane's staging (header units, then bounce buffers; all
     * idle while this lane is ours). */
    size_t units = l->staging_bytes / UNIT - 1;
    unsigned depth = t->sq < units ? t->sq : (unsigned)units;
    uint32_t *slot_of = kvt__calloc(depth, sizeof *slot_of);
    unsigned *free_units = kvt__calloc(depth, sizeof *free_units);
    if (!slot_of || !free_units) {
        rc = kvt__err(KVT_ENOMEM, "nvme: recover: allocating %u entries", depth);
        goto out;
    }
    unsigned nfree = depth, inflight = 0;
    for (unsigned i = 0; i < depth; i++)
        free_units[i] = i;
    uint32_t next = 0;
    while (next < t->nslots || inflight) {
        while (next < t->nslots && nfree) {
            unsigned u = free_units[--nfree];
            slot_of[u] = next;
            prep_rw(l, DIR_READ, l->staging + (size_t)UNIT * (1 + u), t->hdr_io,
                    SLOTS_OFF + (uint64_t)next * t->slot_bytes, l->staging_idx,
                    (void *)(uintptr_t)u);
            next++;
            inflight++;
        }
        submit_wait(l);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            unsigned u = (unsigned)(uintptr_t)io_uring_cqe_get_data(cqe);
            uint32_t slot = slot_of[u];
            seen++;
            if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
                prep_rw(l, DIR_READ, l->staging + (size_t)UNIT * (1 + u), t->hdr_io,
                        SLOTS_OFF + (uint64_t)slot * t->slot_bytes, l->staging_idx,
                        (void *)(uintptr_t)u);
                continue; /* stays in flight */
            }
            inflight--;
            free_units[nfree++] = u;
            kvt_key key;
            if (cqe->res != (int)t->hdr_io) {
                STAT_ADD(t, io_errors, 1); /* unreadable header: the slot is lost, not fatal */
                continue;
            }
            if (!hdr_valid(t, l->staging + (size_t)UNIT * (1 + u), slot, &key))
                continue;
            if (!fn(user, slot, &key)) {
                kept++;
                continue;
            }
            if (ndrop == capdrop) {
                size_t cap = capdrop ? capdrop * 2 : 64;
                uint32_t *d = kvt__realloc(drop, cap * sizeof *d);
                if (!d) {
                    rc = kvt__err(KVT_ENOMEM, "nvme: recover: list of dropped slots");
                    continue;
                }
                drop = d;
                capdrop = cap;
            }
            drop[ndrop++] = slot;
        }
        io_uring_cq_advance(&l->ring, seen);
    }
    if (ndrop) {
        /* The visitor gave these slots up (duplicates, unwanted): make sure
         * they are not found again at the next open. */
        int zr = zero_headers(t, l, drop, ndrop);
        if (!rc)
            rc = zr;
    }
out:
    lane_put(t, l);
    kvt__free(drop);
    kvt__free(slot_of);
    kvt__free(free_units);
    atomic_store(&t->st.recovered, kept);
    atomic_store(&t->st.recovery_ms, (kvt__clock_ns(CLOCK_MONOTONIC) - t0) / 1000000u);
    return rc;
}

/* ------------------------------------------------------------ open/close */

static void lanes_free(kvt_tier_impl *t)
{
    if (!t->lanes)
        return;
    /* Rings that attached to lane 0's worker pool go first. */
    for (unsigned i = t->nlanes; i-- > 0;) {
        lane *l = &t->lanes[i];
        if (l->ring_ok)
            io_uring_queue_exit(&l->ring);
        if (l->efd >= 0)
            close(l->efd);
        if (l->staging)
            munmap(l->staging, l->staging_bytes);
        kvt__free(l->ops);
        kvt__free(l->pieces);
        kvt__free(l->bounce_free);
    }
    kvt__free(t->lanes);
    t->lanes = NULL;
}

static void lock_unlist(kvt_tier_impl *t);
static void lock_release(kvt_tier_impl *t);

static void tier_free(kvt_tier_impl *t)
{
    /* Before the lanes: a hashing thread may still write a lane's eventfd
     * just after it marked its last op verified. */
    kvt__jobpool_free(t->hashers);
    lock_unlist(t); /* a fork from now on must not touch the rings */
    lanes_free(t);
    /* After the rings: nothing of ours is in flight once the lock goes. */
    lock_release(t);
    if (t->fd >= 0)
        close(t->fd);
    kvt__faults_free(t->faults);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    kvt__free(t);
}

static int ring_init(kvt_tier_impl *t, lane *l, const lane *first, bool want_sqpoll)
{
    /* From the most wanted setup down to the plainest: SQPOLL may be refused
     * (privilege, resources), COOP_TASKRUN and ATTACH_WQ unknown to the
     * kernel; each is an optimisation, none is needed. */
    int rc = -EINVAL;
    for (int sq = want_sqpoll ? 1 : 0; sq >= 0; sq--)
        for (int coop = 1; coop >= 0; coop--)
            for (int attach = first ? 1 : 0; attach >= 0; attach--) {
                struct io_uring_params prm;
                memset(&prm, 0, sizeof prm);
                prm.flags = IORING_SETUP_CQSIZE | (coop ? IORING_SETUP_COOP_TASKRUN : 0);
                prm.cq_entries = 2 * (t->sq + 1);
                if (sq) {
                    prm.flags |= IORING_SETUP_SQPOLL;
                    prm.sq_thread_idle = SQ_IDLE_MS;
                }
                if (attach) {
                    prm.flags |= IORING_SETUP_ATTACH_WQ;
                    prm.wq_fd = (uint32_t)first->ring.ring_fd;
                }
                /* One entry more than the pieces in flight: the eventfd
                 * read that wakes the thread for verified blocks. */
                rc = io_uring_queue_init_params(t->sq + 1, &l->ring, &prm);
                if (!rc) {
                    t->sqpoll = sq;
                    return 0;
                }
            }
    return rc;
}

static int lanes_setup(kvt_tier_impl *t, const kvt_tier_params *p)
{
    bool sqpoll = kvt__tier_opt_int(p, "sqpoll") != 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    t->nlanes = cpus < MIN_LANES ? MIN_LANES : cpus > MAX_LANES ? MAX_LANES : (unsigned)cpus;
    t->bounce_bytes = min64(round_up(t->slot_bytes, UNIT), BOUNCE_MAX);
    if (t->slot_bytes <= BOUNCE_MAX)
        t->bounce_bytes = t->slot_bytes;
    uint64_t nb = BOUNCE_PER_LANE / t->bounce_bytes;
    t->nbounce = (unsigned)(nb < 2 ? 2 : nb > t->qd ? t->qd : nb);
    t->lanes = kvt__calloc(t->nlanes, sizeof *t->lanes);
    if (!t->lanes)
        return kvt__err(KVT_ENOMEM, "nvme: allocating %u rings", t->nlanes);
    for (unsigned i = 0; i < t->nlanes; i++)
        t->lanes[i].efd = -1;
    /* Up to qd blocks in flight plus up to qd being verified off the ring:
     * 2 * qd ops, each with a header unit in staging. */
    unsigned nops = 2 * t->qd;

    /* Registered buffer table, identical in every ring: the host region in
     * chunks, then each lane's staging. */
    size_t host_chunks = t->host_base ? (t->host_bytes + REG_CHUNK - 1) / REG_CHUNK : 0;
    size_t niov = host_chunks + t->nlanes;
    struct iovec *iov = kvt__calloc(niov, sizeof *iov);
    if (!iov)
        return kvt__err(KVT_ENOMEM, "nvme: allocating the buffer table");
    for (size_t c = 0; c < host_chunks; c++) {
        iov[c].iov_base = t->host_base + c * REG_CHUNK;
        iov[c].iov_len = min64(REG_CHUNK, t->host_bytes - c * REG_CHUNK);
    }
    int rc = 0;
    for (unsigned i = 0; i < t->nlanes && !rc; i++) {
        lane *l = &t->lanes[i];
        l->host_idx = l->staging_idx = -1;
        l->staging_bytes = (size_t)UNIT * (nops + 2) + (size_t)t->nbounce * t->bounce_bytes;
        void *m = mmap(NULL, l->staging_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        l->ops = kvt__calloc(nops + 1, sizeof *l->ops);
        l->pieces = kvt__calloc(t->sq, sizeof *l->pieces);
        l->bounce_free = kvt__calloc(t->nbounce, sizeof *l->bounce_free);
        if (m == MAP_FAILED || !l->ops || !l->pieces || !l->bounce_free) {
            if (m != MAP_FAILED)
                munmap(m, l->staging_bytes);
            rc = kvt__err(KVT_ENOMEM, "nvme: staging memory for ring %u (%zu bytes)", i,
                          l->staging_bytes);
            break;
        }
        l->staging = m;
        for (unsigned o = 0; o <= nops; o++) {
            l->ops[o].hdr = l->staging + (size_t)UNIT * (1 + o);
            l->ops[o].next = o < nops ? &l->ops[o + 1] : NULL;
        }
        l->free_ops = &l->ops[0];
        for (unsigned q = 0; q < t->sq; q++)
            l->pieces[q].next = q + 1 < t->sq ? &l->pieces[q + 1] : NULL;
        l->free_pieces = &l->pieces[0];
        uint8_t *b0 = l->staging + (size_t)UNIT * (nops + 2);
        for (unsigned b = 0; b < t->nbounce; b++)
            l->bounce_free[b] = b0 + (size_t)b * t->bounce_bytes;
        l->nbounce_free = t->nbounce;
        iov[host_chunks + i].iov_base = l->staging;
        iov[host_chunks + i].iov_len = l->staging_bytes;

        int r = ring_init(t, l, i ? &t->lanes[0] : NULL, sqpoll && (i == 0 || t->sqpoll));
        if (r) {
            rc = kvt__err_errno(KVT_ENODEV, -r, "nvme: io_uring setup (queue depth %u)", t->qd);
            break;
        }
        l->ring_ok = true;
        if (t->hashers && (l->efd = eventfd(0, EFD_CLOEXEC)) < 0)
            l->efd = -1; /* this lane verifies on its own thread */
        if (io_uring_register_files(&l->ring, &t->fd, 1) == 0) {
            l->file = 0;
            l->sqe_flags = IOSQE_FIXED_FILE;
        } else {
            l->file = t->fd;
        }
    }
    if (rc) {
        kvt__free(iov);
        return rc;
    }

    /* Lane 0 registers; a ring that can't hold the host region (memlock
     * limit, memory io_uring can't pin) still registers its staging. */
    lane *l0 = &t->lanes[0];
    struct iovec *tab = iov;
    size_t ntab = niov;
    int hoff = 0;
    if (io_uring_register_buffers(&l0->ring, tab, (unsigned)ntab) == 0) {
        t->fixed_host = host_chunks > 0;
    } else {
        tab = iov + host_chunks;
        ntab = t->nlanes;
        hoff = -1;
        if (!host_chunks || io_uring_register_buffers(&l0->ring, tab, (unsigned)ntab) != 0)
            ntab = 0;
    }
    t->fixed_staging = ntab > 0;
    for (unsigned i = 0; i < t->nlanes && ntab; i++) {
        lane *l = &t->lanes[i];
        bool ok = i == 0;
        if (!ok) {
            struct kvt_clone_buffers cb;
            memset(&cb, 0, sizeof cb);
            cb.src_fd = (uint32_t)l0->ring.ring_fd;
            ok = syscall(__NR_io_uring_register, l->ring.ring_fd,
                         KVT_IORING_REGISTER_CLONE_BUFFERS, &cb, 1) == 0;
            if (ok)
                t->cloned = true;
            else
                ok = io_uring_register_buffers(&l->ring, tab, (unsigned)ntab) == 0;
        }
        if (ok) {
            l->host_idx = (hoff < 0 || !host_chunks) ? -1 : 0;
            l->staging_idx = (int)(hoff < 0 ? i : host_chunks + i);
        }
    }
    kvt__free(iov);
    for (unsigned i = t->nlanes; i-- > 0;) {
        t->lanes[i].next_free = t->free_lanes;
        t->free_lanes = &t->lanes[i];
    }
    return 0;
}

/* Opens the path per the rules in docs/nvme-format.md ("Opening a path"). */
static int open_path(kvt_tier_impl *t, const char *path, bool *created)
{
    const int base = O_RDWR | O_CLOEXEC;
    bool symlink = false;
    int fd = open(path, base | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST) {
        fd = open(path, base | O_NOFOLLOW);
        if (fd < 0 && errno == ELOOP) {
            symlink = true;
            fd = open(path, base);
        }
    }
    if (fd < 0) {
        int e = errno;
        switch (e) {
        case EISDIR:
            return kvt__err(KVT_EPATH, "nvme: %s is a directory", path);
        case EACCES:
        case EPERM:
        case EROFS:
        case ETXTBSY:
            return kvt__err_errno(KVT_EPATH, e, "nvme: %s is not writable", path);
        case ENOENT:
        case ENOTDIR:
            return kvt__err_errno(KVT_EPATH, e, "nvme: %s%s", path,
                                  symlink ? " is a dangling symlink" : ": no such directory");
        case ENOSPC:
        case EDQUOT:
            return kvt__err_errno(KVT_ENOSPC, e, "nvme: creating %s", path);
        case EINVAL:
            return kvt__err_errno(KVT_ENODIRECT, e, "nvme: opening %s", path);
        default:
            return kvt__err_errno(KVT_EPATH, e, "nvme: opening %s", path);
        }
    }
    t->fd = fd;
    struct stat st;
    if (fstat(fd, &st))
        return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
    if (S_ISBLK(st.st_mode))
        t->blockdev = true;
    else if (!S_ISREG(st.st_mode))
        return kvt__err(KVT_EPATH, "nvme: %s is neither a regular file nor a block device", path);
    if (symlink && st.st_uid != geteuid())
        return kvt__err(KVT_EPATH,
                        "nvme: %s is a symlink to a file owned by uid %u; a symlink is followed "
                        "only to a file of the calling user (uid %u)",
                        path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (!t->blockdev) {
        /* tmpfs and ramfs accept O_DIRECT (Linux 6.6+) but only emulate it:
         * the bytes stay in RAM and vanish with the machine. */
        struct statfs fs;
        if (fstatfs(fd, &fs) == 0 &&
            ((uint32_t)fs.f_type == (uint32_t)TMPFS_MAGIC ||
             (uint32_t)fs.f_type == (uint32_t)RAMFS_MAGIC))
            return kvt__err(KVT_ENODIRECT,
                            "nvme: %s is on a memory filesystem (tmpfs/ramfs): no direct I/O to "
                            "a device; put it on an NVMe filesystem or use the DRAM tier",
                            path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
        return kvt__err_errno(KVT_ENODIRECT, errno, "nvme: the filesystem of %s refuses O_DIRECT",
                              path);
    return 0;
}

static int probe_alignment(kvt_tier_impl *t, const char *path)
{
    uint32_t mem = 0, len = 0;
    struct statx sx;
    if (statx(t->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN)) {
        if (!sx.stx_dio_offset_align)
            return kvt__err(KVT_ENODIRECT, "nvme: %s does not support direct I/O", path);
        mem = sx.stx_dio_mem_align;
        len = sx.stx_dio_offset_align;
    }
    if (!len && t->blockdev) {
        int lbs = 0;
        if (ioctl(t->fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
            mem = len = (uint32_t)lbs;
    }
    if (!len)
        mem = len = UNIT;
    if (!mem)
        mem = len;
    if (len > UNIT || UNIT % len)
        return kvt__err(KVT_ENOTSUP, "nvme: %s needs %u-byte direct I/O; this format supports "
                                     "devices with logical blocks up to %u bytes",
                        path, len, UNIT);
    t->mem_align = mem;
    t->len_align = len;
    t->hdr_io = (uint32_t)round_up(HDR_BYTES, len);
    return 0;
}

static int sb_write(kvt_tier_impl *t, uint8_t *buf, const char *path)
{
    sb_encode(t, buf);
    KVT_KILLPOINT(KVT__KP_META);
    ssize_t w = pwrite(t->fd, buf, UNIT, 0);
    if (w != (ssize_t)UNIT)
        return kvt__err_errno(w < 0 && errno == EINVAL ? KVT_ENODIRECT : KVT_EIO,
                              w < 0 ? errno : 0, "nvme: writing the superblock of %s", path);
    KVT_KILLPOINT(KVT__KP_FLUSH);
    if (fdatasync(t->fd))
        return kvt__err_errno(KVT_EIO, errno, "nvme: fdatasync %s", path);
    return 0;
}

static int format(kvt_tier_impl *t, uint8_t *buf, uint64_t size, bool shrink, const char *path)
{
    uint64_t total = kvt__nvme_file_bytes(t->block_bytes, t->nslots);
    if (getrandom(t->store_id, sizeof t->store_id, 0) != (ssize_t)sizeof t->store_id) {
        uint64_t a = kvt__clock_ns(CLOCK_REALTIME), b = kvt__clock_ns(CLOCK_MONOTONIC) ^ (uint64_t)getpid();
        put64(t->store_id, XXH3_64bits(&a, sizeof a));
        put64(t->store_id + 8, XXH3_64bits(&b, sizeof b));
    }
    if (t->blockdev) {
        if (size < total)
            return kvt__err(KVT_ECAPACITY, "nvme: %s holds %llu bytes; the capacity needs %llu "
                                           "(slots + %u-byte superblock)",
                            path, (unsigned long long)size, (unsigned long long)total,
                            SLOTS_OFF);
    } else if (size < total) {
        /* Preallocated so that writes never find the filesystem full. */
        int r = fallocate(t->fd, 0, 0, (off_t)total);
        if (r && (errno == EOPNOTSUPP || errno == ENOSYS))
            r = ftruncate(t->fd, (off_t)total);
        if (r)
            return kvt__err_errno(errno == ENOSPC || errno == EDQUOT ? KVT_ENOSPC : KVT_EIO,
                                  errno, "nvme: preallocating %llu bytes for %s",
                                  (unsigned long long)total, path);
    } else if (size > total && shrink && ftruncate(t->fd, (off_t)total)) {
        return kvt__err_errno(KVT_EIO, errno, "nvme: truncating %s", path);
    }
    return sb_write(t, buf, path);
}

/* Checks a superblock against the geometry asked for: 0, or KVT_EFORMAT,
 * KVT_EGEOMETRY or KVT_ETOOSMALL with the reason. */
static int sb_check(kvt_tier_impl *t, const uint8_t *buf, uint64_t size, const char *path)
{
    if (memcmp(buf + SB_MAGIC, sb_magic, 8))
        return kvt__err(KVT_EFORMAT, "nvme: %s is not a kvtier NVMe file (no superblock magic); "
                                     "left untouched, set recreate to overwrite it", path);
    if (get32(buf + SB_VERSION) != FORMAT_VERSION || get32(buf + SB_HDRBYTES) != HDR_BYTES ||
        get32(buf + SB_UNIT) != UNIT || get64(buf + SB_SLOTS_OFF) != SLOTS_OFF)
        return kvt__err(KVT_EFORMAT, "nvme: %s has format version %u; this build reads version "
                                     "%u; left untouched, set recreate to overwrite it",
                        path, get32(buf + SB_VERSION), FORMAT_VERSION);
    if (get64(buf + SB_SUM) != XXH3_64bits(buf, HDR_SUMMED))
        return kvt__err(KVT_EFORMAT, "nvme: %s: superblock checksum mismatch; left untouched, "
                                     "set recreate to overwrite it", path);
    uint64_t bb = get64(buf + SB_BLOCK_BYTES), sb_slot = get64(buf + SB_SLOT_BYTES),
             count = get64(buf + SB_SLOT_COUNT);
    uint32_t bt = get32(buf + SB_BLOCK_TOKENS), fr = get32(buf + SB_FRAGS);
    if (bb != t->block_bytes || bt != t->block_tokens || fr != t->frags ||
        sb_slot != t->slot_bytes || count != t->nslots)
        return kvt__err(KVT_EGEOMETRY,
                        "nvme: %s holds block_bytes=%llu block_tokens=%u frags=%u slot_bytes=%llu "
                        "slots=%llu; asked block_bytes=%llu block_tokens=%u frags=%u "
                        "slot_bytes=%llu slots=%u; left untouched, set recreate to rebuild it",
                        path, (unsigned long long)bb, bt, fr, (unsigned long long)sb_slot,
                        (unsigned long long)count, (unsigned long long)t->block_bytes,
                        t->block_tokens, t->frags, (unsigned long long)t->slot_bytes, t->nslots);
    /* Files from before the field was defined hold 0 there: xxh3-128. */
    uint32_t km = get32(buf + SB_KEY_MODE);
    if (km != t->key_mode)
        return kvt__err(KVT_EGEOMETRY,
                        "nvme: %s holds blocks under key mode %u; asked key mode %u "
                        "(KVT_OPT_KEY_MODE); left untouched, set recreate to rebuild it",
                        path, km, t->key_mode);
    uint64_t total = kvt__nvme_file_bytes(t->block_bytes, t->nslots);
    if (size < total)
        return kvt__err(KVT_ETOOSMALL, "nvme: %s has %llu bytes; its superblock says %llu",
                        path, (unsigned long long)size, (unsigned long long)total);
    memcpy(t->store_id, buf + SB_STORE_ID, 16);
    return 0;
}

/* Opens what is on media, or formats a new, blank or (with recreate)
 * incompatible file. A compatible file is kept even with recreate. */
static int load(kvt_tier_impl *t, const kvt_tier_params *p, bool created)
{
    const char *path = kvt__tier_opt_str(p, "path");
    uint64_t size;
    if (t->blockdev) {
        if (ioctl(t->fd, BLKGETSIZE64, &size))
            return kvt__err_errno(KVT_ESYS, errno, "nvme: size of %s", path);
    } else {
        struct stat st;
        if (fstat(t->fd, &st))
            return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
        size = (uint64_t)st.st_size;
    }
    uint8_t *buf = kvt__aligned_alloc(UNIT, UNIT);
    if (!buf)
        return kvt__err(KVT_ENOMEM, "nvme: superblock buffer");
    int rc;
    if (created || (!t->blockdev && size == 0)) {
        rc = format(t, buf, size, false, path);
    } else if (size < SLOTS_OFF) {
        rc = kvt__err(KVT_ETOOSMALL, "nvme: %s has %llu bytes, less than its %u-byte "
                                     "superblock; left untouched, set recreate to overwrite it",
                      path, (unsigned long long)size, SLOTS_OFF);
    } else {
        ssize_t r = pread(t->fd, buf, UNIT, 0);
        if (r != (ssize_t)UNIT) {
            rc = kvt__err_errno(r < 0 && errno == EINVAL ? KVT_ENODIRECT : KVT_EIO,
                                r < 0 ? errno : 0, "nvme: reading the superblock of %s", path);
            goto out;
        }
        bool blank = true;
        for (unsigned i = 0; i < UNIT && blank; i++)
            blank = buf[i] == 0;
        /* A zeroed device, or a file we never got to format: nothing to lose. */
        rc = blank ? format(t, buf, size, false, path) : sb_check(t, buf, size, path);
    }
    if (kvt__tier_opt_int(p, "recreate") && (rc == KVT_EFORMAT || rc == KVT_EGEOMETRY || rc == KVT_ETOOSMALL))
        rc = format(t, buf, size, true, path);
out:
    kvt__free(buf);
    return rc;
}

/* ------------------------------------------------------------- file lock
 *
 * Two open-file-description locks (fcntl F_OFD_SETLK): byte-range locks that
 * belong to an open file description, conflict with those of any other
 * description (in this process too) and last until unlocked or until the
 * description's last reference goes. Two, because after kill -9 "a store owns
 * the file" and "a store's I/O may still land on it" end at different times:
 *
 * A, the owner: a write lock on byte 0 through `lock_fd`, a descriptor
 * opened only for it. Only the process's descriptor table references that
 * description, and the kernel closes the table when the last of the
 * process's threads has exited: a dead store's A is gone by the time its
 * process can be reaped. Held by anyone else: KVT_ELOCKED at once. (The
 * holder's pid can't be named: /proc/locks shows OFD locks with pid -1.)
 *
 * B, I/O drained: a write lock on byte 1 through the I/O descriptor `t->fd`.
 * Its description is referenced by every ring (a registered file) and every
 * request in flight, so a dead store's B lasts until the kernel has torn its
 * rings down, after its last submitted write completed (tens of ms, seconds
 * on a loaded machine). The next store, holding A, waits for B (polling, at
 * most LOCK_WAIT_MS, then KVT_ELOCKED) before it reads or writes a byte: a
 * late write of the dead store can't land over a block the new store wrote
 * and acknowledged. B stays a write lock (nothing else takes byte 1, so a
 * read lock would add nothing). A clean close unlocks B explicitly: every
 * operation has reaped its own completions, nothing of ours is in flight.
 * (A flock on the I/O descriptor did both jobs once, but a live store could
 * then not be told from a dead one's rings, and forked children kept it.)
 *
 * A forked child shares the parent's descriptions: its copies of lock_fd,
 * t->fd and the rings (their descriptors and mappings) would keep A and B
 * for as long as it lives once the parent died. A fork handler drops them
 * (closing never unlocks what another reference holds: the parent keeps
 * both); the store is unusable in the child anyway, its threads were not
 * copied. The handler runs in the child, when the child first runs: fork()
 * returns in the parent before that (by default the parent runs on), so a
 * child holds both locks until it is first scheduled, milliseconds, tens of
 * them on a loaded machine. A store killed inside that window leaves its file
 * KVT_ELOCKED until then (not waited for: A's refusal stays immediate, and the
 * parent is not made to wait in fork() for its child). A fork that races the
 * store's open or close may leave the child a copy: KVT_ELOCKED while that
 * child lives, nothing worse. Only OFD locks
 * (no flock beside them): a network filesystem that maps flock onto byte
 * ranges would see a store's two kinds collide. */

static pthread_mutex_t lockers_mu = PTHREAD_MUTEX_INITIALIZER;
static kvt_tier_impl *lockers; /* tiers with a lock_fd, through lock_next */
static pthread_once_t lockers_once = PTHREAD_ONCE_INIT;

static void lockers_fork_prepare(void)
{
    pthread_mutex_lock(&lockers_mu);
}

static void lockers_fork_parent(void)
{
    pthread_mutex_unlock(&lockers_mu);
}

/* The child: drop its references to the locked descriptions (above). Only
 * syscalls: io_uring_queue_exit() is munmap() and close(). */
static void lockers_fork_child(void)
{
    for (kvt_tier_impl *t = lockers; t; t = t->lock_next) {
        for (unsigned i = 0; t->lanes && i < t->nlanes; i++) {
            if (t->lanes[i].ring_ok)
                io_uring_queue_exit(&t->lanes[i].ring);
            t->lanes[i].ring_ok = false;
        }
        close(t->lock_fd);
        close(t->fd);
        t->lock_fd = t->fd = -1;
        t->locked = false;
    }
    lockers = NULL;
    pthread_mutex_unlock(&lockers_mu);
}

static void lockers_init(void)
{
    /* Without the handler (ENOMEM), a forked child keeps a dead parent's
     * store locked until it exits: KVT_ELOCKED meanwhile, nothing worse. */
    (void)pthread_atfork(lockers_fork_prepare, lockers_fork_parent, lockers_fork_child);
}

static int ofd_lock(int fd, short type, off_t byte)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Takes t off the list the fork handler walks: before its rings go. */
static void lock_unlist(kvt_tier_impl *t)
{
    pthread_mutex_lock(&lockers_mu);
    for (kvt_tier_impl **p = &lockers; *p; p = &(*p)->lock_next) {
        if (*p == t) {
            *p = t->lock_next;
            break;
        }
    }
    pthread_mutex_unlock(&lockers_mu);
}

/* After the rings: unlocks A and B (explicitly, for any copy of the
 * descriptors elsewhere; a lock not held is a no-op) and closes lock_fd. */
static void lock_release(kvt_tier_impl *t)
{
    lock_unlist(t);
    if (t->lock_fd >= 0) {
        if (t->fd >= 0)
            ofd_lock(t->fd, F_UNLCK, 1);
        ofd_lock(t->lock_fd, F_UNLCK, 0);
        close(t->lock_fd);
        t->lock_fd = -1;
    }
    t->locked = false;
}

/* Whether another store of this process has st's file open for its lock. */
static bool locked_here(const kvt_tier_impl *self, const struct stat *st)
{
    bool here = false;
    pthread_mutex_lock(&lockers_mu);
    for (const kvt_tier_impl *t = lockers; t && !here; t = t->lock_next) {
        struct stat ts;
        here = t != self && fstat(t->lock_fd, &ts) == 0 && ts.st_dev == st->st_dev &&
               ts.st_ino == st->st_ino;
    }
    pthread_mutex_unlock(&lockers_mu);
    return here;
}

/* Takes A, then waits for B (above). */
static int lock_file(kvt_tier_impl *t, const char *path)
{
    struct stat st, lst;
    if (fstat(t->fd, &st))
        return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
    pthread_once(&lockers_once, lockers_init);
    /* Under the mutex, so that a fork in another thread sees it listed. A
     * write lock needs a descriptor open for writing. */
    pthread_mutex_lock(&lockers_mu);
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        t->lock_fd = fd;
        t->lock_next = lockers;
        lockers = t;
    }
    pthread_mutex_unlock(&lockers_mu);
    if (fd < 0)
        return kvt__err_errno(KVT_EPATH, errno, "nvme: opening %s for its lock", path);
    if (fstat(fd, &lst))
        return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
    if (lst.st_dev != st.st_dev || lst.st_ino != st.st_ino)
        return kvt__err(KVT_EPATH, "nvme: %s was replaced while being opened", path);
    if (ofd_lock(fd, F_WRLCK, 0)) {
        if (errno != EAGAIN && errno != EACCES)
            return kvt__err_errno(KVT_ESYS, errno, "nvme: locking %s", path);
        if (locked_here(t, &st))
            return kvt__err(KVT_ELOCKED, "nvme: %s is in use by another store of this process",
                            path);
        return kvt__err(KVT_ELOCKED, "nvme: %s is in use by another store (another process, or "
                                     "one that got its descriptor from one)", path);
    }
    t->locked = true;
    uint64_t t0 = kvt__clock_ns(CLOCK_MONOTONIC);
    while (ofd_lock(t->fd, F_WRLCK, 1)) {
        if (errno != EAGAIN && errno != EACCES)
            return kvt__err_errno(KVT_ESYS, errno, "nvme: locking %s", path);
        if (kvt__clock_ns(CLOCK_MONOTONIC) - t0 >= LOCK_WAIT_MS * 1000000ull)
            return kvt__err(KVT_ELOCKED, "nvme: %s: the I/O of its previous store has not "
                                         "drained after %u ms (its io_uring instances, or a "
                                         "process that inherited them, still hold the file)",
                            path, LOCK_WAIT_MS);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int nvme_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    if (!p || !out || !nslots)
        return kvt__err(KVT_ENULL, "nvme: open: NULL argument");
    *out = NULL;
    const char *path = kvt__tier_opt_str(p, "path");
    int queue_depth = (int)kvt__tier_opt_int(p, "queue_depth");
    if (!path || !*path)
        return kvt__err(KVT_EPATH, "nvme: no path configured");
    if (!p->block_bytes || p->block_bytes > (1ull << 30))
        return kvt__err(KVT_ESIZE, "nvme: block_bytes %llu outside 1 .. 1 GiB",
                        (unsigned long long)p->block_bytes);
    uint32_t frags = p->frags ? p->frags : 1;
    if (p->block_bytes % frags)
        return kvt__err(KVT_EFRAGS, "nvme: %u fragments do not divide %llu bytes", frags,
                        (unsigned long long)p->block_bytes);
    if (queue_depth < 0 || queue_depth > MAX_QD)
        return kvt__err(KVT_EINVAL, "nvme: queue depth %d outside 0 (default %d) .. %d",
                        queue_depth, DEFAULT_QD, MAX_QD);
    uint64_t slot = kvt__nvme_slot_bytes(p->block_bytes);
    if (p->capacity < slot || p->capacity % slot || p->capacity / slot > UINT32_MAX)
        return kvt__err(KVT_ECAPACITY,
                        "nvme: capacity %llu is not a whole number of %llu-byte slots (a slot is "
                        "a %u-byte header plus the block rounded up to %u bytes): use N * %llu",
                        (unsigned long long)p->capacity, (unsigned long long)slot, UNIT, UNIT,
                        (unsigned long long)slot);
    if ((p->host_region == NULL) != (p->host_region_bytes == 0))
        return kvt__err(KVT_EINVAL, "nvme: host_region and host_region_bytes disagree");

    kvt_tier_impl *t = kvt__calloc(1, sizeof *t);
    if (!t)
        return kvt__err(KVT_ENOMEM, "nvme: tier state");
    t->fd = -1;
    t->lock_fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->block_bytes = p->block_bytes;
    t->block_tokens = p->block_tokens;
    t->key_mode = p->key_mode;
    t->frags = frags;
    t->slot_bytes = slot;
    t->nslots = (uint32_t)(p->capacity / slot);
    t->qd = queue_depth ? (unsigned)queue_depth : DEFAULT_QD;
    t->sq = 2 * t->qd;
    t->host_base = p->host_region;
    t->host_bytes = p->host_region_bytes;
    atomic_init(&t->seq, kvt__clock_ns(CLOCK_REALTIME));
    pthread_once(&fast_hash_once, fast_hash_init);

    bool created = false;
    int rc = kvt__faults_new(p->faults, &t->faults);
    if (!rc)
        rc = open_path(t, path, &created);
    if (!rc)
        rc = lock_file(t, path);
    if (!rc)
        rc = probe_alignment(t, path);
    if (!rc)
        rc = load(t, p, created);
    if (!rc && t->block_bytes >= OFFLOAD_MIN) {
        /* One core is the ring's; the others may hash (at most MAX_HASHERS).
         * No pool (one CPU, or threads refused): the ring hashes. */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned k = cpus > 1 ? (unsigned)(cpus - 1) : 0;
        t->hashers = kvt__jobpool_new(k < MAX_HASHERS ? k : MAX_HASHERS);
    }
    if (!rc)
        rc = lanes_setup(t, p);
    if (rc) {
        /* A file we created is ours to remove, unless another store raced
         * in and holds it. */
        if (created && (t->locked || rc != KVT_ELOCKED))
            unlink(path);
        tier_free(t);
        return rc;
    }
    *out = t;
    *nslots = t->nslots;
    return 0;
}

int kvt__nvme_sync(kvt_tier_impl *t)
{
    if (!t)
        return kvt__err(KVT_ENULL, "nvme: tier is NULL");
    STAT_ADD(t, syncs, 1);
    KVT_KILLPOINT(KVT__KP_FLUSH);
    if (fdatasync(t->fd))
        return kvt__err_errno(KVT_EIO, errno, "nvme: fdatasync");
    return 0;
}

static void nvme_close(kvt_tier_impl *t)
{
    if (!t)
        return;
    KVT_KILLPOINT(KVT__KP_FLUSH);
    fdatasync(t->fd); /* close() has nobody to report to; kvt__nvme_sync() does */
    tier_free(t);
}

static void nvme_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    if (!t || !fn)
        return;
#define S(name, f) fn("nvme." name, atomic_load_explicit(&t->st.f, memory_order_relaxed), user)
    S("bytes_written", bytes_written);
    S("bytes_read", bytes_read);
    S("reads", reads);
    S("writes", writes);
    S("corrupt", corrupt);
    S("corrupt_header", corrupt_header);
    S("corrupt_payload", corrupt_payload);
    S("io_errors", io_errors);
    S("resubmits", resubmits);
    S("staged", staged);
    S("vectored", vectored);
    S("discards", discards);
    S("discard_batches", discard_batches);
    S("recovered", recovered);
    S("recovery_ms", recovery_ms);
    S("syncs", syncs);
    S("hashed_off_ring", hashed_off_ring);
    S("verified_off_ring", verified_off_ring);
#undef S
    fn("nvme.slots", t->nslots, user);
    fn("nvme.slot_bytes", t->slot_bytes, user);
    fn("nvme.queue_depth", t->qd, user);
    fn("nvme.rings", t->nlanes, user);
    fn("nvme.sqpoll", t->sqpoll, user);
    fn("nvme.fixed_host", t->fixed_host, user);
    fn("nvme.fixed_staging", t->fixed_staging, user);
    fn("nvme.cloned_buffers", t->cloned, user);
    fn("nvme.fast_checksum", fast_hash != NULL, user);
    fn("nvme.dio_mem_align", t->mem_align, user);
    fn("nvme.dio_len_align", t->len_align, user);
    if (t->faults) {
        fn("nvme.faults_injected", kvt__faults_injected(t->faults, KVT__FAULT_NONE), user);
        static const char *const names[KVT__FAULT_KINDS] = {
            [KVT__FAULT_EIO] = "nvme.faults_injected.eio",
            [KVT__FAULT_SHORT] = "nvme.faults_injected.short",
            [KVT__FAULT_TORN4K] = "nvme.faults_injected.torn4k",
            [KVT__FAULT_TORN512] = "nvme.faults_injected.torn512",
            [KVT__FAULT_ENOSPC] = "nvme.faults_injected.enospc",
            [KVT__FAULT_PARTIAL] = "nvme.faults_injected.partial",
            [KVT__FAULT_CQE_EIO] = "nvme.faults_injected.cqe_eio",
            [KVT__FAULT_CQE_ENOSPC] = "nvme.faults_injected.cqe_enospc",
            [KVT__FAULT_CQE_SHORT] = "nvme.faults_injected.cqe_short",
        };
        for (int k = 1; k < KVT__FAULT_KINDS; k++)
            fn(names[k], kvt__faults_injected(t->faults, (kvt__fault)k), user);
    }
}

static int nvme_slot_bytes(uint64_t block_bytes, uint64_t *out)
{
    *out = kvt__nvme_slot_bytes(block_bytes);
    return 0;
}

static const kvt_tier_opt_spec nvme_options[] = {
    {"path", KVT_OPTTYPE_STR, 0, 0, 0, KVT_EPATH, "file or block device (required)"},
    {"queue_depth", KVT_OPTTYPE_INT, 1, MAX_QD, DEFAULT_QD, 0, "io_uring queue depth"},
    {"sqpoll", KVT_OPTTYPE_INT, 0, 1, 0, 0, "1: a kernel submission polling thread"},
    {"recreate", KVT_OPTTYPE_INT, 0, 1, 0, 0, "1: overwrite a file of another format/geometry"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

const kvt_tier_ops kvt__tier_nvme = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "nvme",
    .caps = KVT_TCAP_PERSISTENT | KVT_TCAP_VERIFIES,
    .options = nvme_options,
    .slot_bytes = nvme_slot_bytes,
    .open = nvme_open,
    .close = nvme_close,
    .flush = kvt__nvme_sync,
    .write = nvme_write,
    .read = nvme_read,
    .discard = nvme_discard,
    .slot_ptr = NULL,
    .recover = nvme_recover,
    .stats = nvme_stats,
};
