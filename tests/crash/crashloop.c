/*
 * crashloop.c — SIGKILL a writer/reader of an NVMe-backed store at random
 * times, reopen, verify: no wrong bytes ever, no durable block missing, no
 * removed block back.
 *
 *   crashloop [--kills N] [--seconds S] [--seed X] [--dir D]
 *             [--min-ms A] [--max-ms B] [--block-bytes N] [--universe N]
 *             [--mode nvme|writeback|writethrough] [--removes [--readers N]
 *             [--no-overlap] [--put-overlap]] [--no-durable] [--trace I]
 *             [--whitebox R [--sites write,flush,meta,publish]]
 *
 * Each round forks a child that opens the store (recovering it), then puts
 * random batches of blocks whose bytes derive from their key index, reporting
 * each acknowledged index to the parent through a pipe, and reads random
 * blocks back, checking them itself. The parent kills it after a uniform
 * random delay in [A, B] ms, reopens the store, and checks every block of the
 * universe: a present block must read back exactly (or be reported corrupt,
 * if its put was never acknowledged), and every block promised durable must
 * be present (the file holds the whole universe, so nothing is ever evicted).
 * Exit status 0 and a "N passed, 0 failed" line when all rounds verify.
 *
 * --mode: the store's shape. `nvme` (default): the NVMe tier alone; every
 * acknowledged put is promised durable (against SIGKILL; not power loss).
 * `writeback`: a DRAM tier of 48 blocks in front of NVMe, victims demoted, so
 * demotions run all the time. `writethrough`: the same with NVMe admitting
 * KVT_ADMIT_WRITE_THROUGH (every put also copied to NVMe, queued). In both
 * DRAM modes a put acknowledged in DRAM is not promised durable (a kill may
 * lose it: counted, "acknowledged-but-not-durable lost", informational);
 * what is promised is a put with KVT_IO_DURABLE (sync, or async once its
 * ticket completes with the block's status 0), a block kvt_flush() reported
 * 0 for, and, after a clean kvt_close() (KVT_OPT_CLOSE_FLUSH_MS default),
 * every block acknowledged before it ("close-then-reopen keeps every DRAM
 * block").
 *
 * --removes: the remove-heavy child (issue 15, the three resurrection paths
 * of kvt_remove). It puts batches (sync and async, some KVT_IO_DURABLE),
 * removes keys it put a moment ago (often right after the put, with the
 * write-through copy still queued; while an async put of other keys, or of
 * the same keys, is in flight; while that put's demotions run), flushes some
 * acknowledged keys (kvt_flush), closes and reopens now and then, and runs
 * two reader threads that get the keys just put or removed (so removes meet
 * reads in flight). In half the rounds it SIGKILLs itself, at once or up to
 * 3 ms after one remove in 32 returned; in the others the parent's timer
 * kills it. After each remove it
 * looks the keys up (an in-process resurrection is reported to the parent).
 * The parent asserts after every kill that a key whose last acknowledged
 * event was a remove (no put started since) is not served: kvt_lookup 0 and
 * kvt_get KVT_ENOENT ("removed keys served"). An async put of a key issued
 * before a remove of that key is ordered before it (kvt_remove's contract):
 * the child reports no acknowledgement for it.
 *
 * --readers N: reader threads of the remove-heavy child (default 2, 0..16).
 * --no-overlap: the remove-heavy child never removes a key while a put of it
 * is in flight. With these two, one resurrection path can be run alone:
 * `--mode nvme --no-overlap` (removes with reads in flight),
 * `--mode writethrough --no-overlap --readers 0` (a write-through copy still
 * queued), `--mode writeback --no-overlap --readers 0` (a demotion running).
 *
 * --put-overlap: the remove-heavy child puts, sync or async, keys of an
 * async put still in flight, and kills itself (every round) right after one
 * such sync put in four. Without it,
 * puts avoid keys with an async put in flight: a put that finds its key
 * being written by another put returns 0 at once, before that write is on
 * the device, so a SIGKILL then loses a block whose put returned (found by
 * this mode; open, see docs/reliability.md "Findings").
 *
 * --no-durable: no KVT_IO_DURABLE puts and no kvt_flush() calls (only the
 * close promise), e.g. to run against a library older than them.
 *
 * --trace I: print every event of block I (debugging).
 *
 * The three counts that must be zero: wrong bytes, removed keys served,
 * durable blocks lost. Any non-zero: exit status 1 and "0 passed, 1 failed".
 *
 * --whitebox R: instead of a SIGKILL from outside, the child (a fresh exec
 * of this program, so the library reads its environment anew) runs with
 * KVT_KILLPOINTS=rate=R,seed=S[,sites=...] (lib/killpoint.h) and exits with
 * status 86 + site at a kill point inside the library: an NVMe block write
 * submission, an fdatasync, a metadata update (superblock, slot discard) or
 * an index publish. To pass all four kinds of site, the child also removes
 * blocks (acknowledged removes must stay removed after the restart) and
 * now and then closes and reopens its store. The parent counts the exits per
 * site and verifies exactly as after a SIGKILL. With --removes, the whitebox
 * child is the remove-heavy one (without its self-kills).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np (meson defines it already) */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvtier.h"
#include "../tier_kinds.h"

static uint64_t block_bytes = 16384;
static uint32_t universe = 3000;
static char path[4096];
static int whitebox;   /* child: removes and reopens too, and reports intents */
static int removes;    /* --removes: the remove-heavy child */
static int no_durable; /* --no-durable */
static int no_overlap; /* --no-overlap: never remove a key with a put in flight */
static int put_overlap; /* --put-overlap: put keys with a put in flight (see below) */
static int readers = 2; /* --readers: reader threads of the remove-heavy child */

/* Store shapes (--mode). */
enum { MODE_NVME, MODE_WRITEBACK, MODE_WRITETHROUGH, MODES };
static const char *const mode_names[MODES] = {"nvme", "writeback", "writethrough"};
static int mode = MODE_NVME;
/* The DRAM tier of the two DRAM modes: small, so that puts evict (and
 * demote) all the time. */
#define DRAM_BLOCKS 48

/* Records the child sends, 8 bytes each (atomic in a pipe): the kind in the
 * high 32 bits, the block index in the low 32. Only the child's main thread
 * sends, so their order is the order of its calls. Intents come first, so
 * that the parent knows what a kill in the middle of a call may have done. */
enum {
    REC_PUT = 0,           /* a put of this index was acknowledged */
    REC_INTENT = 1,        /* a put of this index is about to start */
    REC_REMOVED = 2,       /* this index was removed (acknowledged) */
    REC_REMOVE_INTENT = 3, /* a remove of this index is about to start */
    REC_DURABLE = 4,       /* this (acknowledged) index is promised durable */
    REC_CLOSED = 5,        /* kvt_close returned 0 (no index) */
    REC_SERVED = 6,        /* the child found this removed index in its store */
    REC_KINDS
};
static const char *const kind_names[REC_KINDS] = {
    "put acknowledged", "put starts", "removed", "remove starts", "durable",
    "clean close (acknowledged before it)",
    "found after its remove (child)"};
#define REC_INDEX 0x3fffffffu

/* Exit statuses of a child stopped at a kill point (lib/killpoint.h). */
#define KP_EXIT_BASE 86
#define KP_SITES 4
#define VERIFY_BATCH 64
static const char *const kp_names[KP_SITES] = {"write", "flush", "meta", "publish"};

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    kvt_ns_field f = {KVT_NS_CUSTOM, 9, "crashloop"};
    kvt_ns_key(&f, 1, &ns);
    uint32_t tok[2] = {i, ~i};
    kvt_key_chain(&ns, tok, 2, 2, &k, 1);
    return k;
}

static double last_open_s; /* the successful attempt: the recovery time */

static int open_store(kvt_store **s)
{
    uint64_t slot;
    kvt_config *c;
    if (kvt_slot_bytes("nvme", block_bytes, &slot) || kvt_config_new(&c))
        return -1;
    int bad = 0;
    bad |= kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)block_bytes);
    bad |= kvt_config_set(c, KVT_OPT_WORKERS, removes ? 2 : 1);
    if (mode != MODE_NVME) { /* DRAM first: tiers are added fastest first */
        bad |= kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity",
                                   (int64_t)(DRAM_BLOCKS * block_bytes));
        bad |= kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
        bad |= kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "victims", KVT_VICTIM_DEMOTE);
    }
    bad |= kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(slot * (universe + 64)));
    bad |= kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "queue_depth", 32);
    bad |= kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    if (mode != MODE_NVME) {
        if (mode == MODE_WRITETHROUGH)
            bad |= kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "admit", KVT_ADMIT_WRITE_THROUGH);
    }
    if (bad) {
        kvt_config_free(c);
        return -1;
    }
    /* The file's lock goes with the killed process's descriptors (an open
     * waits for a holder still exiting, up to 5 s); retried all the same,
     * as a supervisor would, should that ever not suffice. */
    int rc;
    for (int tries = 0;; tries++) {
        double t0 = now_s();
        rc = kvt_open(c, s);
        last_open_s = now_s() - t0;
        if (rc != KVT_ELOCKED || tries == 300)
            break;
        usleep(10000);
    }
    kvt_config_free(c);
    return rc;
}

static void send(int fd, uint32_t kind, uint32_t idx)
{
    uint64_t rec = (uint64_t)kind << 32 | idx;
    if (write(fd, &rec, sizeof rec) != sizeof rec)
        _exit(5);
}

/* The child: put and read until killed. Acknowledged indices go to fd. */
static void child(int fd, uint64_t seed)
{
    kvt_store *s;
    int rc = open_store(&s);
    if (rc) {
        fprintf(stderr, "child: open: %s\n", kvt_last_error());
        _exit(3);
    }
    enum { MAXB = 16 };
    uint8_t *buf = malloc(MAXB * block_bytes), *want = malloc(block_bytes);
    void *ptrs[MAXB];
    kvt_key keys[MAXB];
    uint32_t idx[MAXB];
    int32_t st[MAXB];
    for (;;) {
        uint32_t n = 1 + (uint32_t)(rng(&seed) % MAXB);
        for (uint32_t i = 0; i < n; i++) {
            idx[i] = (uint32_t)(rng(&seed) % universe);
            keys[i] = key_of(idx[i]);
            ptrs[i] = buf + i * block_bytes;
        }
        kvt_io_opts o = {.size = sizeof o, .status = st};
        uint64_t dice = rng(&seed);
        if (whitebox && dice % 40 == 0) {
            /* close (fdatasync) and reopen (recovery) */
            if (kvt_close(s) != 0)
                _exit(4);
            send(fd, REC_CLOSED, 0);
            if ((rc = open_store(&s)) != 0) {
                fprintf(stderr, "child: reopen: %s\n", kvt_last_error());
                _exit(3);
            }
        } else if (whitebox && dice % 10 == 1) {
            uint32_t m = 1 + (uint32_t)(dice / 10 % n); /* 1..n: keys set this round */
            for (uint32_t i = 0; i < m; i++)
                send(fd, REC_REMOVE_INTENT, idx[i]);
            if (kvt_remove(s, keys, m) < 0)
                _exit(4);
            for (uint32_t i = 0; i < m; i++)
                send(fd, REC_REMOVED, idx[i]);
        } else if (dice % 3) {
            for (uint32_t i = 0; i < n; i++) {
                fill_pattern(buf + i * block_bytes, block_bytes, idx[i], 77);
                if (whitebox)
                    send(fd, REC_INTENT, idx[i]);
            }
            if (kvt_put(s, keys, n, ptrs, &o, NULL) < 0)
                _exit(4);
            for (uint32_t i = 0; i < n; i++)
                if (st[i] == 0)
                    send(fd, REC_PUT, idx[i]);
        } else {
            memset(buf, 0xA5, n * block_bytes);
            if (kvt_get(s, keys, n, ptrs, &o, NULL) < 0)
                _exit(4);
            for (uint32_t i = 0; i < n; i++) {
                if (st[i])
                    continue;
                fill_pattern(want, block_bytes, idx[i], 77);
                if (memcmp(want, buf + i * block_bytes, block_bytes)) {
                    fprintf(stderr, "child: WRONG BYTES for block %u\n", idx[i]);
                    _exit(6);
                }
            }
        }
    }
}

/* ------------------------------------------------ the remove-heavy child */

enum { RMAXB = 16, RECENT = 64, ASYNC_SLOTS = 2 };
#define NO_INDEX UINT32_MAX

/* What the readers share with the main thread: the store (replaced by a
 * close and reopen, under the write lock) and the indices just put or
 * removed, which they read. */
static struct {
    pthread_rwlock_t lock;
    kvt_store *s;
    _Atomic uint32_t recent[RECENT];
    _Atomic uint32_t next;
} rd;

static void note_recent(uint32_t i)
{
    atomic_store_explicit(&rd.recent[atomic_fetch_add(&rd.next, 1) % RECENT], i,
                          memory_order_relaxed);
}

/* A reader: gets of the keys just put or removed, bytes checked. */
static void *reader(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg | 1;
    uint8_t *buf = malloc(4 * block_bytes), *want = malloc(block_bytes);
    if (!buf || !want)
        _exit(2);
    for (;;) {
        uint32_t n = 1 + (uint32_t)(rng(&seed) % 4), idx[4];
        kvt_key keys[4];
        void *ptrs[4];
        int32_t st[4];
        for (uint32_t i = 0; i < n; i++) {
            /* mostly the last few noted: the keys being removed now */
            uint64_t d = rng(&seed);
            uint32_t at = (uint32_t)(d >> 8);
            if (d % 4)
                at = atomic_load_explicit(&rd.next, memory_order_relaxed) - 1 - at % 8;
            idx[i] = atomic_load_explicit(&rd.recent[at % RECENT], memory_order_relaxed);
            if (idx[i] == NO_INDEX)
                idx[i] = (uint32_t)(rng(&seed) % universe);
            keys[i] = key_of(idx[i]);
            ptrs[i] = buf + i * block_bytes;
        }
        kvt_io_opts o = {.size = sizeof o, .status = st};
        pthread_rwlock_rdlock(&rd.lock);
        int rc = kvt_get(rd.s, keys, n, ptrs, &o, NULL);
        pthread_rwlock_unlock(&rd.lock);
        if (rc < 0) {
            fprintf(stderr, "child reader: get: %s\n", kvt_last_error());
            _exit(4);
        }
        for (uint32_t i = 0; i < n; i++) {
            if (st[i])
                continue;
            fill_pattern(want, block_bytes, idx[i], 77);
            if (memcmp(want, buf + i * block_bytes, block_bytes)) {
                fprintf(stderr, "child reader: WRONG BYTES for block %u\n", idx[i]);
                _exit(6);
            }
        }
    }
    return NULL;
}

/* An asynchronous put in flight: what the library keeps until its ticket
 * completes, and which of its blocks a remove has overtaken since. */
typedef struct async_put {
    int busy, durable;
    kvt_ticket ticket;
    uint32_t n, idx[RMAXB];
    kvt_key keys[RMAXB];
    void *ptrs[RMAXB];
    int32_t st[RMAXB];
    uint8_t cancelled[RMAXB]; /* removed after this put was issued */
    uint8_t *buf;
} async_put;

typedef struct rchild {
    int fd;
    uint64_t seed;
    uint8_t *removed;         /* per index: its last acknowledged event is a remove */
    uint8_t *held;            /* per index: its last acknowledged event is a put */
    uint32_t acked[RECENT];   /* indices acknowledged lately (may be stale) */
    uint32_t nacked;
    uint32_t gone[RECENT];    /* indices removed lately (may be stale) */
    uint32_t ngone;
    async_put ap[ASYNC_SLOTS];
    uint32_t self_kill;       /* kill itself after one remove in this many; 0 never */
} rchild;

/* One of the indices acknowledged lately (c->nacked > 0). */
static uint32_t pick_acked(rchild *c)
{
    return c->acked[rng(&c->seed) % (c->nacked < RECENT ? c->nacked : RECENT)];
}

/* The child's own check: a removed key must not be found in its store. */
static void check_gone(rchild *c, uint32_t i)
{
    kvt_key k = key_of(i);
    if (c->removed[i] && kvt_lookup(rd.s, &k, 1, NULL, 0) > 0)
        send(c->fd, REC_SERVED, i);
}

static void acked_put(rchild *c, uint32_t i, int durable)
{
    send(c->fd, REC_PUT, i);
    if (durable)
        send(c->fd, REC_DURABLE, i);
    c->held[i] = 1;
    c->acked[c->nacked++ % RECENT] = i;
}

static void put_intent(rchild *c, uint32_t i)
{
    send(c->fd, REC_INTENT, i);
    c->removed[i] = 0;
    note_recent(i);
}

/* Waits for slot a's put and reports its blocks (those no remove overtook). */
static void async_finish(rchild *c, async_put *a)
{
    int rc = kvt_wait(rd.s, a->ticket, -1);
    if (rc < 0) {
        fprintf(stderr, "child: async put: %s\n", kvt_last_error());
        _exit(4);
    }
    for (uint32_t j = 0; j < a->n; j++)
        if (a->st[j] == 0 && !a->cancelled[j])
            acked_put(c, a->idx[j], a->durable);
    a->busy = 0;
}

static void async_finish_all(rchild *c)
{
    for (int k = 0; k < ASYNC_SLOTS; k++)
        if (c->ap[k].busy)
            async_finish(c, &c->ap[k]);
}

static int in_flight(const rchild *c, uint32_t i)
{
    for (int k = 0; k < ASYNC_SLOTS; k++)
        for (uint32_t j = 0; c->ap[k].busy && j < c->ap[k].n; j++)
            if (c->ap[k].idx[j] == i)
                return 1;
    return 0;
}

static void remove_keys(rchild *c, const uint32_t *idx, uint32_t m)
{
    kvt_key keys[RMAXB] = {{{0}}};
    /* let the readers get to these keys first (a remove meets reads in flight) */
    for (uint32_t i = 0; i < m; i++)
        note_recent(idx[i]);
    if (readers && rng(&c->seed) % 2) {
        struct timespec nap = {0, (long)(rng(&c->seed) % 200000)};
        nanosleep(&nap, NULL);
    }
    for (uint32_t i = 0; i < m; i++) {
        send(c->fd, REC_REMOVE_INTENT, idx[i]);
        keys[i] = key_of(idx[i]);
        c->held[idx[i]] = 0;
    }
    if (kvt_remove(rd.s, keys, m) < 0) {
        fprintf(stderr, "child: remove: %s\n", kvt_last_error());
        _exit(4);
    }
    for (uint32_t i = 0; i < m; i++) {
        send(c->fd, REC_REMOVED, idx[i]);
        c->removed[idx[i]] = 1;
        c->gone[c->ngone++ % RECENT] = idx[i];
        note_recent(idx[i]);
        /* An async put of this key issued before the remove is ordered
         * before it: it must not leave the key stored, whatever its status. */
        for (int k = 0; k < ASYNC_SLOTS; k++)
            for (uint32_t j = 0; c->ap[k].busy && j < c->ap[k].n; j++)
                if (c->ap[k].idx[j] == idx[i])
                    c->ap[k].cancelled[j] = 1;
    }
    for (uint32_t i = 0; i < m; i++)
        check_gone(c, idx[i]);
    /* A kill just after the remove returned, with reads, an async put and
     * its demotions (and write-through copies) in flight. */
    if (c->self_kill && rng(&c->seed) % c->self_kill == 0) {
        /* at once half the time: reads of these keys may still be running */
        uint64_t d = rng(&c->seed);
        struct timespec nap = {0, d % 2 ? (long)(d / 2 % 3000000) : 0};
        if (nap.tv_nsec)
            nanosleep(&nap, NULL);
        raise(SIGKILL);
    }
}

static void child_removes(int fd, uint64_t seed)
{
    rchild c = {.fd = fd, .seed = seed};
    /* Half the rounds end with a kill right after a remove, the other half
     * at the parent's random time. */
    c.self_kill = whitebox || (rng(&c.seed) % 2 && !put_overlap) ? 0 : 32;
    c.removed = calloc(universe, 1);
    c.held = calloc(universe, 1);
    uint8_t *buf = malloc(RMAXB * block_bytes), *want = malloc(block_bytes);
    for (int k = 0; k < ASYNC_SLOTS; k++)
        c.ap[k].buf = malloc(RMAXB * block_bytes);
    if (!c.removed || !c.held || !buf || !want || !c.ap[0].buf || !c.ap[1].buf)
        _exit(2);
    for (int i = 0; i < RECENT; i++)
        rd.recent[i] = NO_INDEX;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* the main thread's close and reopen must not starve behind readers */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&rd.lock, &attr);
    if (open_store(&rd.s)) {
        fprintf(stderr, "child: open: %s\n", kvt_last_error());
        _exit(3);
    }
    for (int r = 0; r < readers; r++) {
        pthread_t t;
        if (pthread_create(&t, NULL, reader, (void *)(uintptr_t)rng(&c.seed)))
            _exit(2);
    }
    uint32_t idx[RMAXB];
    kvt_key keys[RMAXB];
    void *ptrs[RMAXB];
    int32_t st[RMAXB];
    for (;;) {
        uint64_t dice = rng(&c.seed);
        uint32_t n = 1 + (uint32_t)(rng(&c.seed) % RMAXB);
        int durable = !no_durable && rng(&c.seed) % 4 == 0;
        if (dice % 80 == 0) {
            /* clean close (writes DRAM down) and reopen */
            async_finish_all(&c);
            pthread_rwlock_wrlock(&rd.lock);
            if (kvt_close(rd.s) != 0) {
                fprintf(stderr, "child: close: %s\n", kvt_last_error());
                _exit(4);
            }
            send(fd, REC_CLOSED, 0);
            if (open_store(&rd.s)) {
                fprintf(stderr, "child: reopen: %s\n", kvt_last_error());
                _exit(3);
            }
            pthread_rwlock_unlock(&rd.lock);
        } else if (dice % 8 < 3) {
            /* remove keys put lately, some of them perhaps with an async put
             * in flight */
            uint32_t m = 0, want_m = 1 + (uint32_t)(rng(&c.seed) % 8);
            for (uint32_t t = 0; t < 4 * want_m && m < want_m && c.nacked; t++) {
                uint32_t i = pick_acked(&c);
                if (c.held[i] && !(no_overlap && in_flight(&c, i)))
                    idx[m++] = i;
            }
            for (int k = 0; k < ASYNC_SLOTS && m < RMAXB && !no_overlap; k++)
                if (c.ap[k].busy && rng(&c.seed) % 4 == 0)
                    idx[m++] = c.ap[k].idx[rng(&c.seed) % c.ap[k].n];
            if (m)
                remove_keys(&c, idx, m);
        } else if (dice % 8 < 6) {
            /* a put, sync or async, perhaps durable; a sync one perhaps
             * removed again at once (its write-through copy still queued) */
            int async = rng(&c.seed) % 2;
            async_put *a = NULL;
            if (async) {
                a = &c.ap[rng(&c.seed) % ASYNC_SLOTS];
                if (a->busy)
                    async_finish(&c, a);
            }
            uint8_t *b = a ? a->buf : buf;
            int overlap = 0;
            for (uint32_t i = 0; i < n; i++) {
                idx[i] = (uint32_t)(rng(&c.seed) % universe);
                async_put *o2 = &c.ap[i % ASYNC_SLOTS];
                if (put_overlap && o2->busy)
                    idx[i] = o2->idx[rng(&c.seed) % o2->n];
                /* Not a key with an async put in flight (unless asked):
                 * see --put-overlap. */
                for (int t = 0; !put_overlap && t < 64 && in_flight(&c, idx[i]); t++)
                    idx[i] = (uint32_t)(rng(&c.seed) % universe);
                overlap |= in_flight(&c, idx[i]);
                keys[i] = key_of(idx[i]);
                ptrs[i] = b + i * block_bytes;
                fill_pattern(b + i * block_bytes, block_bytes, idx[i], 77);
                put_intent(&c, idx[i]);
            }
            kvt_io_opts o = {.size = sizeof o, .flags = durable ? KVT_IO_DURABLE : 0u};
            if (a) {
                memcpy(a->idx, idx, n * sizeof *idx);
                memcpy(a->keys, keys, n * sizeof *keys);
                memcpy(a->ptrs, ptrs, n * sizeof *ptrs);
                memset(a->cancelled, 0, sizeof a->cancelled);
                a->n = n;
                a->durable = durable;
                o.status = a->st;
                if (kvt_put(rd.s, a->keys, n, a->ptrs, &o, &a->ticket) < 0) {
                    fprintf(stderr, "child: async put: %s\n", kvt_last_error());
                    _exit(4);
                }
                a->busy = 1;
            } else {
                o.status = st;
                if (kvt_put(rd.s, keys, n, ptrs, &o, NULL) < 0) {
                    fprintf(stderr, "child: put: %s\n", kvt_last_error());
                    _exit(4);
                }
                for (uint32_t i = 0; i < n; i++)
                    if (st[i] == 0)
                        acked_put(&c, idx[i], durable);
                if (overlap && c.self_kill && rng(&c.seed) % 4 == 0)
                    raise(SIGKILL); /* the other put may still be writing */
                if (rng(&c.seed) % 3 == 0) {
                    uint32_t m = 0;
                    for (uint32_t i = 0, want_m = 1 + (uint32_t)(rng(&c.seed) % n); i < want_m; i++)
                        if (!(no_overlap && in_flight(&c, idx[i])))
                            idx[m++] = idx[i];
                    if (m)
                        remove_keys(&c, idx, m);
                }
            }
        } else if (dice % 8 == 6 && !no_durable) {
            /* flush keys acknowledged lately */
            uint32_t m = 0;
            for (uint32_t t = 0; t < n && c.nacked; t++) {
                uint32_t i = pick_acked(&c);
                if (c.held[i])
                    idx[m++] = i;
            }
            for (uint32_t i = 0; i < m; i++)
                keys[i] = key_of(idx[i]);
            if (m && kvt_flush(rd.s, keys, m, st) < 0) {
                fprintf(stderr, "child: flush: %s\n", kvt_last_error());
                _exit(4);
            }
            for (uint32_t i = 0; i < m; i++)
                if (st[i] == 0)
                    send(fd, REC_DURABLE, idx[i]);
        } else {
            /* read back (promoting), and look up keys removed lately */
            for (uint32_t i = 0; i < n; i++) {
                idx[i] = c.nacked && i % 2 ? pick_acked(&c) : (uint32_t)(rng(&c.seed) % universe);
                keys[i] = key_of(idx[i]);
                ptrs[i] = buf + i * block_bytes;
            }
            kvt_io_opts o = {.size = sizeof o, .status = st};
            if (kvt_get(rd.s, keys, n, ptrs, &o, NULL) < 0) {
                fprintf(stderr, "child: get: %s\n", kvt_last_error());
                _exit(4);
            }
            for (uint32_t i = 0; i < n; i++) {
                if (st[i])
                    continue;
                fill_pattern(want, block_bytes, idx[i], 77);
                if (memcmp(want, buf + i * block_bytes, block_bytes)) {
                    fprintf(stderr, "child: WRONG BYTES for block %u\n", idx[i]);
                    _exit(6);
                }
            }
            for (uint32_t t = 0; t < 4 && c.ngone; t++)
                check_gone(&c, c.gone[rng(&c.seed) % (c.ngone < RECENT ? c.ngone : RECENT)]);
        }
    }
}

/* Appends what the pipe holds now (all of it, to EOF, when `all`) to *buf.
 * The parent drains the pipe while a child runs, so that a child that lives
 * long never blocks on a full pipe (64 KiB) before its kill. */
static void drain(int fd, uint8_t **buf, size_t *len, size_t *cap, int all)
{
    for (;;) {
        if (*cap - *len < 65536) {
            *cap = *cap * 2 + 65536;
            *buf = realloc(*buf, *cap);
            if (!*buf) {
                fprintf(stderr, "crashloop: out of memory for the child's records\n");
                exit(1);
            }
        }
        ssize_t r = read(fd, *buf + *len, *cap - *len);
        if (r > 0) {
            *len += (size_t)r;
            continue;
        }
        if (r == 0 || !all)
            return; /* EOF, or nothing more for now */
        if (errno != EAGAIN && errno != EINTR)
            return;
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Whitebox child: a fresh exec, told what to do by the environment. */
static void exec_child(int fd, uint64_t child_seed, const char *kp_spec)
{
    char spec[sizeof path + 128];
    snprintf(spec, sizeof spec, "%d:%llu:%llu:%u:%d:%d:%d:%s", fd, (unsigned long long)child_seed,
             (unsigned long long)block_bytes, universe, mode,
             removes | no_durable << 1 | no_overlap << 2 | put_overlap << 3, readers, path);
    setenv("KVT_CRASHLOOP_CHILD", spec, 1);
    setenv("KVT_KILLPOINTS", kp_spec, 1);
    execl("/proc/self/exe", "crashloop-child", (char *)NULL);
    perror("crashloop: exec");
    _exit(7);
}

static void run_exec_child(const char *spec)
{
    int fd, off = 0, m, f, nr;
    unsigned long long sd, bb;
    unsigned u;
    if (sscanf(spec, "%d:%llu:%llu:%u:%d:%d:%d:%n", &fd, &sd, &bb, &u, &m, &f, &nr, &off) != 7 ||
        !off || m < 0 || m >= MODES || nr < 0) {
        fprintf(stderr, "crashloop child: bad KVT_CRASHLOOP_CHILD\n");
        _exit(2);
    }
    block_bytes = bb;
    universe = u;
    mode = m;
    removes = f & 1;
    no_durable = f >> 1 & 1;
    no_overlap = f >> 2 & 1;
    put_overlap = f >> 3 & 1;
    readers = nr;
    snprintf(path, sizeof path, "%s", spec + off);
    whitebox = 1;
    if (removes)
        child_removes(fd, sd);
    child(fd, sd);
}

int main(int argc, char **argv)
{
    if (getenv("KVT_CRASHLOOP_CHILD"))
        run_exec_child(getenv("KVT_CRASHLOOP_CHILD"));
    /* The parent itself must never stop at a kill point. */
    unsetenv("KVT_KILLPOINTS");
    long kills = 20;
    double seconds = 0, min_ms = 100, max_ms = 600, kp_rate = 0;
    const char *kp_sites = NULL;
    long trace = -1; /* --trace I: print every event of block I (debugging) */
    /* The last HIST events of each block (round << 3 | kind), printed when
     * a check fails on it. */
    enum { HIST = 12 };
    uint64_t seed = (uint64_t)time(NULL);
    const char *dir = getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--removes")) {
            removes = 1;
            continue;
        }
        if (!strcmp(a, "--no-durable")) {
            no_durable = 1;
            continue;
        }
        if (!strcmp(a, "--no-overlap")) {
            no_overlap = 1;
            continue;
        }
        if (!strcmp(a, "--put-overlap")) {
            put_overlap = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "crashloop: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--kills"))
            kills = atol(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "--min-ms"))
            min_ms = atof(v);
        else if (!strcmp(a, "--max-ms"))
            max_ms = atof(v);
        else if (!strcmp(a, "--block-bytes"))
            block_bytes = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--universe"))
            universe = (uint32_t)atol(v);
        else if (!strcmp(a, "--whitebox"))
            kp_rate = atof(v);
        else if (!strcmp(a, "--sites"))
            kp_sites = v;
        else if (!strcmp(a, "--trace"))
            trace = atol(v);
        else if (!strcmp(a, "--readers"))
            readers = atoi(v);
        else if (!strcmp(a, "--mode")) {
            for (mode = 0; mode < MODES && strcmp(v, mode_names[mode]); mode++)
                ;
            if (mode == MODES) {
                fprintf(stderr, "crashloop: --mode is nvme, writeback or writethrough\n");
                return 2;
            }
        } else {
            fprintf(stderr, "crashloop: unknown flag %s\n", a);
            return 2;
        }
        i++;
    }
    whitebox = kp_rate > 0;
    if (block_bytes == 0 || block_bytes % 8 || universe == 0 || universe > REC_INDEX ||
        max_ms < min_ms || kp_rate < 0 || kp_rate > 1 || readers < 0 || readers > 16) {
        fprintf(stderr, "crashloop: bad sizes\n");
        return 2;
    }
    if (seed == 0)
        seed = 1;
    snprintf(path, sizeof path, "%s/crashloop-%d.kvt", dir, (int)getpid());
    unlink(path);
    printf("crashloop: seed %llu, file %s, mode %s", (unsigned long long)seed, path,
           mode_names[mode]);
    if (removes)
        printf(", remove-heavy with %d readers%s%s%s", readers,
               no_durable ? ", no durable puts or flushes" : "",
               no_overlap ? ", no remove of a key with a put in flight" : "",
               put_overlap ? ", puts of keys with a put in flight" : "");
    printf(", %s %g s / %ld kills, ", seconds > 0 ? "for" : "up to", seconds, kills);
    if (whitebox)
        printf("whitebox: kill points at rate %g, sites %s\n", kp_rate,
               kp_sites ? kp_sites : "write,flush,meta,publish");
    else
        printf("kill after %g..%g ms%s\n", min_ms, max_ms,
               removes ? " or by the child itself 0..3 ms after a remove" : "");
    fflush(stdout);

    /* Per block, from the records of every round so far:
     * acked[i]: its last acknowledged put was not followed by a remove;
     * durable[i]: acked and promised durable (nvme mode: every acknowledged
     *   put; DRAM modes: KVT_IO_DURABLE, kvt_flush, or a clean close since);
     * removed[i]: its last acknowledged event was a remove, with no put of
     *   it started since: it must not come back. */
    uint8_t *acked = calloc(universe, 1), *durable = calloc(universe, 1),
            *removed = calloc(universe, 1);
    uint8_t *buf = malloc(VERIFY_BATCH * block_bytes), *want = malloc(block_bytes);
    uint32_t *hist = calloc((size_t)universe * HIST, sizeof *hist);
    uint32_t *nev = calloc(universe, sizeof *nev); /* events seen per block */
    if (!acked || !durable || !removed || !buf || !want || !hist || !nev) {
        fprintf(stderr, "crashloop: out of memory\n");
        return 1;
    }
    const char *last_site = "SIGKILL";
    uint8_t *recbuf = NULL;
    size_t reclen = 0, reccap = 0;
    uint64_t site_hits[KP_SITES] = {0}, served = 0, served_child = 0, nremoved = 0, closes = 0;
    uint64_t ndurable_recs = 0;
    size_t cap_rec = 1024, nrec = 0;
    double *recovery = malloc(cap_rec * sizeof *recovery);
    uint64_t wrong = 0, lost = 0, lost_nondurable = 0, verified = 0, corrupt = 0;
    long done = 0, self_kills = 0;
    double start = now_s();
    uint64_t r = seed;
    while (seconds > 0 ? now_s() - start < seconds : done < kills) {
        int fds[2];
        if (pipe(fds)) {
            perror("pipe");
            return 1;
        }
        uint64_t child_seed = rng(&r);
        char kp_spec[200];
        if (whitebox)
            snprintf(kp_spec, sizeof kp_spec, "rate=%.17g,seed=%llu%s%s", kp_rate,
                     (unsigned long long)rng(&r), kp_sites ? ",sites=" : "",
                     kp_sites ? kp_sites : "");
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            if (whitebox)
                exec_child(fds[1], child_seed, kp_spec);
            if (removes)
                child_removes(fds[1], child_seed);
            child(fds[1], child_seed);
        }
        close(fds[1]);
        fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
        reclen = 0;
        int status;
        if (whitebox) {
            /* It stops itself; a child that runs 120 s without reaching a
             * kill point is a failure (rate too low, or kill points off). */
            double t0 = now_s();
            while (waitpid(pid, &status, WNOHANG) == 0) {
                if (now_s() - t0 > 120) {
                    kill(pid, SIGKILL);
                    waitpid(pid, &status, 0);
                    fprintf(stderr, "crashloop: whitebox child reached no kill point in 120 s "
                                    "(%s)\n", kp_spec);
                    return 1;
                }
                drain(fds[0], &recbuf, &reclen, &reccap, 0);
                struct timespec nap = {0, 2000000};
                nanosleep(&nap, NULL);
            }
            int site = WIFEXITED(status) ? WEXITSTATUS(status) - KP_EXIT_BASE : -1;
            if (site < 0 || site >= KP_SITES) {
                fprintf(stderr, "crashloop: whitebox child ended with status %d, not at a kill "
                                "point (%s)\n", status, kp_spec);
                return 1;
            }
            site_hits[site]++;
            last_site = kp_names[site];
            if (trace >= 0)
                fprintf(stderr, "crashloop: round %ld: child stopped at kill point '%s'\n",
                        done + 1, kp_names[site]);
        } else {
            double delay = min_ms + (max_ms - min_ms) * (double)(rng(&r) % 1000001) / 1e6;
            /* Sleep until the kill, draining the pipe meanwhile (a child
             * blocked on a full pipe would stop doing I/O). The remove-heavy
             * child may kill itself first. */
            double kill_at = now_s() + delay / 1e3;
            pid_t ended = 0;
            for (double left; !ended && (left = kill_at - now_s()) > 0;) {
                drain(fds[0], &recbuf, &reclen, &reccap, 0);
                double nap_s = left < 0.002 ? left : 0.002;
                struct timespec ts = {0, (long)(nap_s * 1e9)};
                nanosleep(&ts, NULL);
                ended = waitpid(pid, &status, WNOHANG);
            }
            if (!ended) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                last_site = "SIGKILL (parent)";
            } else {
                self_kills++;
                last_site = "SIGKILL (the child's own)";
            }
            if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                (ended && !removes)) {
                fprintf(stderr, "crashloop: child ended by itself (status %d) before the kill\n", status);
                return 1;
            }
        }
        drain(fds[0], &recbuf, &reclen, &reccap, 1);
        for (size_t off = 0; off + sizeof(uint64_t) <= reclen; off += sizeof(uint64_t)) {
            uint64_t rec;
            memcpy(&rec, recbuf + off, sizeof rec);
            uint32_t idx = (uint32_t)rec & REC_INDEX, kind = (uint32_t)(rec >> 32);
            if (kind >= REC_KINDS) {
                fprintf(stderr, "crashloop: bad record %#llx from the child\n", (unsigned long long)rec);
                return 1;
            }
            if (kind == REC_CLOSED) {
                /* kvt_close wrote every DRAM block down */
                closes++;
                for (uint32_t i = 0; i < universe; i++)
                    if (acked[i] && !durable[i]) {
                        durable[i] = 1;
                        hist[(size_t)i * HIST + nev[i]++ % HIST] = (uint32_t)(done + 1) << 3 | kind;
                    }
                continue;
            }
            if (idx >= universe)
                continue;
            hist[(size_t)idx * HIST + nev[idx]++ % HIST] = (uint32_t)(done + 1) << 3 | kind;
            if ((long)idx == trace)
                fprintf(stderr, "crashloop: round %ld: block %u %s\n", done + 1, idx, kind_names[kind]);
            switch (kind) {
            case REC_REMOVED:
                removed[idx] = 1;
                nremoved++;
                break;
            case REC_REMOVE_INTENT: /* the block may be gone or not */
                acked[idx] = durable[idx] = removed[idx] = 0;
                break;
            case REC_INTENT: /* a put started: it may or may not have landed */
                removed[idx] = 0;
                break;
            case REC_PUT:
                acked[idx] = 1;
                removed[idx] = 0;
                /* an acknowledged NVMe put is on the device */
                durable[idx] |= mode == MODE_NVME;
                break;
            case REC_DURABLE:
                ndurable_recs++;
                durable[idx] |= acked[idx];
                break;
            case REC_SERVED:
                served++;
                served_child++;
                fprintf(stderr, "crashloop: the child found block %u in its store after its "
                                "acknowledged remove (round %ld)\n", idx, done + 1);
                break;
            }
        }
        close(fds[0]);
        done++;

        kvt_store *s;
        if (open_store(&s)) {
            fprintf(stderr, "crashloop: reopen after kill %ld: %s\n", done, kvt_last_error());
            return 1;
        }
        if (nrec == cap_rec)
            recovery = realloc(recovery, (cap_rec *= 2) * sizeof *recovery);
        recovery[nrec++] = last_open_s;
        /* Read back the whole universe, VERIFY_BATCH blocks per call (one
         * call per block made verification most of a round's overhead). */
        for (uint32_t base = 0; base < universe; base += VERIFY_BATCH) {
            uint32_t nb = universe - base < VERIFY_BATCH ? universe - base : VERIFY_BATCH;
            kvt_key keys[VERIFY_BATCH];
            void *ptrs[VERIFY_BATCH];
            int32_t sts[VERIFY_BATCH];
            int looked[VERIFY_BATCH];
            for (uint32_t j = 0; j < nb; j++) {
                keys[j] = key_of(base + j);
                ptrs[j] = buf + (size_t)j * block_bytes;
                /* a removed block must not even be found (a get drops a
                 * corrupt one, so look first) */
                looked[j] = removed[base + j] ? kvt_lookup(s, &keys[j], 1, NULL, 0) : 0;
            }
            memset(buf, 0x5A, (size_t)nb * block_bytes);
            kvt_io_opts o = {.size = sizeof o, .status = sts, .flags = KVT_IO_NO_PROMOTE};
            if (kvt_get(s, keys, nb, ptrs, &o, NULL) < 0) {
                fprintf(stderr, "crashloop: get after kill %ld: %s\n", done, kvt_last_error());
                return 1;
            }
            for (uint32_t j = 0; j < nb; j++) {
                uint32_t i = base + j;
                int32_t st = sts[j];
                uint64_t failures = wrong + lost + served;
                if (st == 0) {
                    fill_pattern(want, block_bytes, i, 77);
                    if (memcmp(want, ptrs[j], block_bytes)) {
                        wrong++;
                        fprintf(stderr, "crashloop: WRONG BYTES for block %u after kill %ld\n", i, done);
                    }
                    verified++;
                } else if (st == KVT_ECORRUPT) {
                    corrupt++; /* a torn write, never promised durable, detected */
                }
                if (removed[i] && (st != KVT_ENOENT || looked[j] != 0)) {
                    served++;
                    fprintf(stderr, "crashloop: block %u was removed (acknowledged) but is back "
                                    "after kill %ld (lookup %d, get %s)\n", i, done, looked[j],
                            st ? kvt_error_name(st) : "its bytes");
                } else if (st != 0 && durable[i]) {
                    lost++;
                    fprintf(stderr, "crashloop: durable block %u %s after kill %ld\n", i,
                            st == KVT_ECORRUPT ? "reads corrupt" : "missing", done);
                } else if (st != 0 && acked[i]) {
                    lost_nondurable++; /* held in DRAM only: allowed */
                }
                /* what a kill lost is gone; only later promises count now */
                if (st != 0)
                    acked[i] = durable[i] = 0;
                if (wrong + lost + served != failures) {
                    fprintf(stderr, "crashloop: block %u: the child stopped at %s; its last events "
                                    "(round: event):", i, last_site);
                    for (uint32_t e = nev[i] > HIST ? nev[i] - HIST : 0; e < nev[i]; e++) {
                        uint32_t h = hist[(size_t)i * HIST + e % HIST];
                        fprintf(stderr, " %u: %s;", h >> 3, kind_names[h & 7]);
                    }
                    fprintf(stderr, "\n");
                }
            }
        }
        kvt_close(s);
        if (wrong || lost || served)
            break;
    }
    qsort(recovery, nrec, sizeof *recovery, cmp_double);
    uint64_t nacked = 0, ndurable = 0;
    for (uint32_t i = 0; i < universe; i++) {
        nacked += acked[i];
        ndurable += durable[i];
    }
    printf("crashloop: kills %ld (%ld by the child itself), blocks verified %llu, "
           "wrong bytes %llu, removed keys served %llu (%llu by the child, %llu after a kill), "
           "durable blocks lost %llu, acknowledged-but-not-durable lost %llu (informational)\n",
           done, self_kills, (unsigned long long)verified, (unsigned long long)wrong,
           (unsigned long long)served, (unsigned long long)served_child,
           (unsigned long long)(served - served_child), (unsigned long long)lost,
           (unsigned long long)lost_nondurable);
    printf("crashloop: acknowledged %llu, durable %llu at the end; removes acknowledged %llu, "
           "durable promises %llu, clean closes %llu, torn unacknowledged detected %llu, "
           "recovery p50 %.1f ms max %.1f ms\n",
           (unsigned long long)nacked, (unsigned long long)ndurable,
           (unsigned long long)nremoved, (unsigned long long)ndurable_recs,
           (unsigned long long)closes, (unsigned long long)corrupt,
           nrec ? recovery[nrec / 2] * 1e3 : 0.0, nrec ? recovery[nrec - 1] * 1e3 : 0.0);
    if (whitebox) {
        printf("crashloop: whitebox kill points hit:");
        for (int k = 0; k < KP_SITES; k++)
            printf(" %s %llu%s", kp_names[k], (unsigned long long)site_hits[k],
                   k + 1 < KP_SITES ? "," : "\n");
    }
    unlink(path);
    free(acked);
    free(durable);
    free(removed);
    free(hist);
    free(nev);
    free(recbuf);
    free(buf);
    free(want);
    free(recovery);
    int ok = wrong == 0 && lost == 0 && served == 0 && done > 0;
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
