/* test_remove.c — a removed block stays removed, whatever was in flight; durability on request. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 8192

static char path[512];

static void make_path(const char *name)
{
    const char *dir = getenv("KVT_BUILD_ROOT");
    snprintf(path, sizeof path, "%s/remove-%s-%d.kvt", dir ? dir : ".", name, (int)getpid());
    unlink(path);
}

typedef struct shape {
    uint64_t dram_blocks, nvme_blocks;
    int write_through, workers, no_close_flush;
    int gated; /* the store's clock holds other threads while `gate` is closed */
} shape;

/* A clock that stops every thread but the test's own while the gate is
 * closed: an async operation then stays queued or in progress for as long
 * as the test needs (the store reads its clock as each operation starts). */
static pthread_t test_thread;
static atomic_int gate;

static uint64_t gated_clock(void *user)
{
    (void)user;
    while (atomic_load(&gate) && !pthread_equal(pthread_self(), test_thread))
        usleep(100);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static kvt_store *open_store(shape sh)
{
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", BLOCK, &slot), 0);
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_WORKERS, sh.workers ? sh.workers : 2);
    if (sh.no_close_flush)
        kvt_config_set(c, KVT_OPT_CLOSE_FLUSH_MS, 0);
    if (sh.gated) {
        test_thread = pthread_self();
        kvt_config_set_clock(c, gated_clock, NULL);
    }
    if (sh.dram_blocks) {
        kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(sh.dram_blocks * BLOCK));
        kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    }
    if (sh.nvme_blocks) {
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(sh.nvme_blocks * slot));
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "admit",
                            sh.write_through ? KVT_ADMIT_WRITE_THROUGH : KVT_ADMIT_WRITE_BACK);
        kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    }
    int rc = kvt_open(c, &s);
    cr_assert_eq(rc, 0, "open: %s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    kvt_ns_field f = {KVT_NS_CUSTOM, 6, "remove"};
    kvt_ns_key(&f, 1, &ns);
    uint32_t tok[1] = {i};
    kvt_key_chain(&ns, tok, 1, 1, &k, 1);
    return k;
}

static void fill(uint8_t *b, uint32_t i)
{
    for (int j = 0; j < BLOCK; j++)
        b[j] = (uint8_t)(i * 131 + (uint32_t)j * 7 + (uint32_t)(j >> 8));
}

/* Blocks first..first+n-1: keys, bytes and pointers, owned by the caller. */
typedef struct blocks {
    size_t n;
    kvt_key *k;
    uint8_t *b;
    void **p;
} blocks;

static blocks make_blocks(uint32_t first, size_t n)
{
    blocks bl = {n, calloc(n, sizeof(kvt_key)), malloc(n * BLOCK), calloc(n, sizeof(void *))};
    cr_assert(bl.k && bl.b && bl.p);
    for (size_t i = 0; i < n; i++) {
        bl.k[i] = key_of(first + (uint32_t)i);
        fill(bl.b + i * BLOCK, first + (uint32_t)i);
        bl.p[i] = bl.b + i * BLOCK;
    }
    return bl;
}

static void free_blocks(blocks *bl)
{
    free(bl->k);
    free(bl->b);
    free(bl->p);
}

static uint64_t stat(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    cr_assert_eq(kvt_stat(s, name, &v), 0, "stat %s", name);
    return v;
}

/* How many of the keys any call of this store still finds. */
static int found(kvt_store *s, const kvt_key *k, size_t n)
{
    int hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += kvt_lookup(s, &k[i], 1, NULL, 0) == 1;
    return hits;
}

static void check_bytes(kvt_store *s, const blocks *bl)
{
    uint8_t got[BLOCK];
    for (size_t i = 0; i < bl->n; i++) {
        void *p = got;
        int32_t st = -100;
        kvt_io_opts o = {.size = sizeof o, .status = &st, .flags = KVT_IO_NO_PROMOTE};
        cr_assert_eq(kvt_get(s, &bl->k[i], 1, &p, &o, NULL), 1, "block %zu: %s", i,
                     kvt_error_name(st));
        cr_assert_eq(memcmp(got, bl->b + i * BLOCK, BLOCK), 0, "block %zu bytes", i);
    }
}

/* Path 1 of issue 15: with a write-through NVMe tier, the queued copy of a
 * block landed after the remove, and the key was served again (and after
 * a reopen). Every one of 2,000 removed keys stays removed here. */
Test(remove, write_through_copy_in_flight_is_cancelled)
{
    make_path("wt");
    enum { N = 2000 };
    kvt_store *s = open_store((shape){.dram_blocks = 4096, .nvme_blocks = 4096, .write_through = 1});
    blocks bl = make_blocks(0, N);
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(kvt_put(s, &bl.k[i], 1, &bl.p[i], NULL, NULL), 1, "%s", kvt_last_error());
        cr_assert_eq(kvt_remove(s, &bl.k[i], 1), 1, "block %zu was held", i);
    }
    cr_assert_eq(kvt_close(s), 0); /* lets every queued copy run */
    s = open_store((shape){.dram_blocks = 4096, .nvme_blocks = 4096, .write_through = 1});
    cr_assert_eq(stat(s, "nvme.recovered"), 0, "removed blocks were on media after a clean close");
    cr_assert_eq(found(s, bl.k, N), 0);
    cr_assert_eq(kvt_close(s), 0);
    free_blocks(&bl);
    unlink(path);
}

/* The same in one process: copies that run after the remove returned don't
 * publish the key. */
Test(remove, write_through_copy_does_not_publish_after_remove)
{
    make_path("wt-live");
    enum { N = 2000 };
    kvt_store *s = open_store((shape){.dram_blocks = 4096, .nvme_blocks = 4096, .write_through = 1});
    blocks bl = make_blocks(0, N);
    cr_assert_eq(kvt_put(s, bl.k, N, bl.p, NULL, NULL), N, "%s", kvt_last_error());
    cr_assert_eq(kvt_remove(s, bl.k, N), N);
    for (int tries = 0; tries < 2000 && stat(s, "nvme.writethrough_in") +
                                                stat(s, "fills_cancelled") +
                                                stat(s, "writethrough_dropped") < N; tries++)
        usleep(1000);
    cr_assert_eq(found(s, bl.k, N), 0);
    cr_assert_eq(stat(s, "nvme.used_blocks"), 0);
    cr_assert_eq(kvt_close(s), 0);
    free_blocks(&bl);
    unlink(path);
}

/* Path 2: write-back with DRAM full; an async put demotes the older blocks
 * while the caller removes them. The remove returned 0 for blocks being
 * demoted, and the demotion then published them on NVMe. */
Test(remove, demotion_in_flight_is_cancelled)
{
    make_path("demote");
    enum { D = 64, ROUNDS = 20 };
    kvt_store *s = open_store((shape){.dram_blocks = D, .nvme_blocks = 8 * D * ROUNDS});
    int removed = 0, want = 0;
    for (uint32_t r = 0; r < ROUNDS; r++) {
        blocks old = make_blocks(2 * D * r, D), young = make_blocks(2 * D * r + D, D);
        cr_assert_eq(kvt_put(s, old.k, D, old.p, NULL, NULL), D, "%s", kvt_last_error());
        kvt_ticket t;
        cr_assert_eq(kvt_put(s, young.k, D, young.p, NULL, &t), 0, "%s", kvt_last_error());
        removed += kvt_remove(s, old.k, D);
        want += D;
        cr_assert_eq(kvt_wait(s, t, -1), D, "%s", kvt_last_error());
        cr_assert_eq(found(s, old.k, D), 0, "round %u: removed blocks are served", r);
        check_bytes(s, &young);
        free_blocks(&old);
        free_blocks(&young);
    }
    cr_assert_eq(removed, want, "every acknowledged block was held when removed");
    cr_assert_eq(kvt_close(s), 0);
    s = open_store((shape){.dram_blocks = D, .nvme_blocks = 8 * D * ROUNDS});
    for (uint32_t r = 0; r < ROUNDS; r++) {
        blocks old = make_blocks(2 * D * r, D), young = make_blocks(2 * D * r + D, D);
        cr_assert_eq(found(s, old.k, D), 0, "round %u: removed blocks came back", r);
        check_bytes(s, &young);
        free_blocks(&old);
        free_blocks(&young);
    }
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

/* An async put issued before a remove of its key, still queued when the
 * remove runs (one worker, busy with a big put), does not store the key. */
Test(remove, queued_put_issued_before_remove_is_cancelled)
{
    make_path("queued");
    kvt_store *s = open_store((shape){.dram_blocks = 4096, .workers = 1, .gated = 1});
    blocks big = make_blocks(0, 2048), one = make_blocks(5000, 1);
    kvt_ticket tb, t1;
    int32_t st = -100;
    kvt_io_opts o = {.size = sizeof o, .status = &st};
    atomic_store(&gate, 1); /* the worker stops in the big put */
    cr_assert_eq(kvt_put(s, big.k, big.n, big.p, NULL, &tb), 0);
    cr_assert_eq(kvt_put(s, one.k, 1, one.p, &o, &t1), 0);
    cr_assert_eq(kvt_poll(s, t1), KVT_EINPROGRESS);
    cr_assert_eq(kvt_remove(s, one.k, 1), 0, "not stored yet");
    atomic_store(&gate, 0);
    cr_assert_eq(kvt_wait(s, tb, -1), 2048);
    cr_assert_eq(kvt_wait(s, t1, -1), 1, "counted as stored, then removed");
    cr_assert_eq(st, 0);
    cr_assert_eq(found(s, one.k, 1), 0, "the put issued before the remove stored the key");
    cr_assert_eq(stat(s, "put_cancelled"), 1);
    /* A put issued after the remove stores it again. */
    cr_assert_eq(kvt_put(s, one.k, 1, one.p, NULL, NULL), 1);
    check_bytes(s, &one);
    cr_assert_eq(kvt_close(s), 0);
    free_blocks(&big);
    free_blocks(&one);
}

/* Path 3: NVMe only, two threads reading the key, kvt_remove returns 1 and
 * the process dies right after: the key came back after the reopen (the
 * on-media discard waited for the readers). */
typedef struct reader_arg {
    kvt_store *s;
    kvt_key k;
    atomic_int stop;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    uint8_t *buf = aligned_alloc(4096, BLOCK);
    void *ptr = buf;
    while (!atomic_load(&a->stop))
        kvt_get(a->s, &a->k, 1, &ptr, NULL, NULL);
    free(buf);
    return NULL;
}

Test(remove, remove_with_readers_then_sigkill_stays_removed)
{
    make_path("readers");
    enum { TRIALS = 20 };
    for (uint32_t trial = 0; trial < TRIALS; trial++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            kvt_store *s = open_store((shape){.nvme_blocks = 64});
            blocks bl = make_blocks(trial, 1);
            if (kvt_put(s, bl.k, 1, bl.p, NULL, NULL) != 1)
                _exit(2);
            reader_arg a = {.s = s, .k = bl.k[0]};
            pthread_t th[2];
            for (int i = 0; i < 2; i++)
                pthread_create(&th[i], NULL, reader, &a);
            usleep(2000);
            if (kvt_remove(s, bl.k, 1) != 1)
                _exit(3);
            raise(SIGKILL); /* right after the remove returned */
            _exit(4);
        }
        int wst;
        cr_assert_eq(waitpid(pid, &wst, 0), pid);
        cr_assert(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "child status %#x", wst);
        kvt_store *s = open_store((shape){.nvme_blocks = 64});
        kvt_key k = key_of(trial);
        cr_assert_eq(found(s, &k, 1), 0, "trial %u: the removed key came back", trial);
        cr_assert_eq(kvt_close(s), 0);
    }
    unlink(path);
}

/* kvt_clear: blocks in DRAM only, on NVMe only, and in both all go; the
 * store takes new blocks after, and a reopen finds exactly those. */
Test(clear, empties_dram_and_nvme_and_a_reopen_finds_nothing_cleared)
{
    make_path("clear");
    enum { N = 200, M = 10 };
    shape sh = {.dram_blocks = 64, .nvme_blocks = 512};
    kvt_store *s = open_store(sh);
    blocks bl = make_blocks(0, N);
    cr_assert_eq(kvt_put(s, bl.k, N, bl.p, NULL, NULL), N, "%s", kvt_last_error());
    cr_assert_eq(kvt_flush(s, bl.k, 20, NULL), 20); /* some in both tiers */
    cr_assert_eq(kvt_put(s, bl.k, 20, bl.p, NULL, NULL), 20);
    uint8_t tiers[N];
    cr_assert_eq(kvt_contains(s, bl.k, N, tiers), N);
    int in_dram = 0;
    for (size_t i = 0; i < N; i++)
        in_dram += tiers[i] == TIER_DRAM;
    cr_assert(in_dram > 0 && in_dram < N, "%d of %d in DRAM", in_dram, N);
    cr_assert_eq(kvt_clear(s), N, "%s", kvt_last_error());
    cr_assert_eq(kvt_contains(s, bl.k, N, NULL), 0);
    cr_assert_eq(stat(s, "dram.used_blocks"), 0);
    cr_assert_eq(stat(s, "nvme.used_blocks"), 0);
    blocks after = make_blocks(1000, M);
    cr_assert_eq(kvt_put(s, after.k, M, after.p, NULL, NULL), M, "%s", kvt_last_error());
    check_bytes(s, &after);
    cr_assert_eq(kvt_close(s), 0); /* writes the new blocks down */
    s = open_store(sh);
    cr_assert_eq(stat(s, "nvme.recovered"), M, "only the blocks stored after the clear");
    cr_assert_eq(found(s, bl.k, N), 0);
    check_bytes(s, &after);
    cr_assert_eq(kvt_close(s), 0);
    free_blocks(&bl);
    free_blocks(&after);
    unlink(path);
}

/* As final as kvt_remove: a SIGKILL right after the clear returns brings
 * nothing back. */
Test(clear, stays_cleared_after_sigkill)
{
    make_path("clear-kill");
    enum { N = 100 };
    shape sh = {.dram_blocks = 32, .nvme_blocks = 256, .write_through = 1};
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        kvt_store *s = open_store(sh);
        blocks bl = make_blocks(0, N);
        if (kvt_put(s, bl.k, N, bl.p, NULL, NULL) != N || kvt_flush(s, NULL, 0, NULL) < 0)
            _exit(2);
        if (kvt_clear(s) != N)
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    int wst;
    cr_assert_eq(waitpid(pid, &wst, 0), pid);
    cr_assert(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "child status %#x", wst);
    kvt_store *s = open_store(sh);
    blocks bl = make_blocks(0, N);
    cr_assert_eq(stat(s, "nvme.recovered"), 0);
    cr_assert_eq(found(s, bl.k, N), 0);
    cr_assert_eq(kvt_close(s), 0);
    free_blocks(&bl);
    unlink(path);
}

/* ---------------------------------------------------------- durability */

/* A child puts into a write-back DRAM + NVMe store (DRAM holds all), makes
 * some blocks durable (how), then dies by SIGKILL. */
enum { BY_NOTHING, BY_FLUSH_KEYS, BY_FLUSH_ALL, BY_DURABLE_PUT, BY_DURABLE_ASYNC };

static void die_after(int how, size_t n)
{
    kvt_store *s = open_store((shape){.dram_blocks = 256, .nvme_blocks = 256});
    blocks bl = make_blocks(0, n);
    kvt_io_opts o = {.size = sizeof o, .flags = KVT_IO_DURABLE};
    kvt_ticket t;
    int32_t st[64];
    int rc = 0;
    switch (how) {
    case BY_NOTHING:
    case BY_FLUSH_KEYS:
    case BY_FLUSH_ALL:
        rc = kvt_put(s, bl.k, n, bl.p, NULL, NULL);
        if (rc == (int)n && how == BY_FLUSH_KEYS)
            rc = kvt_flush(s, bl.k, n, st);
        else if (rc == (int)n && how == BY_FLUSH_ALL)
            rc = kvt_flush(s, NULL, 0, NULL);
        break;
    case BY_DURABLE_PUT:
        rc = kvt_put(s, bl.k, n, bl.p, &o, NULL);
        break;
    case BY_DURABLE_ASYNC:
        rc = kvt_put(s, bl.k, n, bl.p, &o, &t);
        rc = rc ? rc : kvt_wait(s, t, -1);
        break;
    }
    if (rc != (int)n)
        _exit(2);
    raise(SIGKILL);
    _exit(4);
}

static int survivors(int how, size_t n)
{
    make_path("durable");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        die_after(how, n);
    int wst;
    cr_assert_eq(waitpid(pid, &wst, 0), pid);
    cr_assert(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "child status %#x", wst);
    kvt_store *s = open_store((shape){.dram_blocks = 256, .nvme_blocks = 256});
    blocks bl = make_blocks(0, n);
    int hits = found(s, bl.k, n);
    if (hits == (int)n)
        check_bytes(s, &bl);
    cr_assert_eq(kvt_close(s), 0);
    free_blocks(&bl);
    unlink(path);
    return hits;
}

Test(durable, dram_only_blocks_are_lost_to_sigkill_without_a_flush)
{
    cr_assert_eq(survivors(BY_NOTHING, 48), 0);
}

Test(durable, flush_of_keys_survives_sigkill)
{
    cr_assert_eq(survivors(BY_FLUSH_KEYS, 48), 48);
}

Test(durable, flush_of_everything_survives_sigkill)
{
    cr_assert_eq(survivors(BY_FLUSH_ALL, 48), 48);
}

Test(durable, durable_put_survives_sigkill)
{
    cr_assert_eq(survivors(BY_DURABLE_PUT, 48), 48);
}

Test(durable, durable_async_put_survives_sigkill)
{
    cr_assert_eq(survivors(BY_DURABLE_ASYNC, 48), 48);
}

Test(durable, flush_reports_each_key)
{
    make_path("flush-status");
    kvt_store *s = open_store((shape){.dram_blocks = 64, .nvme_blocks = 64});
    blocks bl = make_blocks(0, 3);
    cr_assert_eq(kvt_put(s, bl.k, 2, bl.p, NULL, NULL), 2);
    int32_t st[3] = {-100, -100, -100};
    cr_assert_eq(kvt_flush(s, bl.k, 3, st), 2);
    cr_assert_eq(st[0], 0);
    cr_assert_eq(st[1], 0);
    cr_assert_eq(st[2], KVT_ENOENT, "never put");
    cr_assert_eq(stat(s, "flush_written"), 2);
    cr_assert_eq(kvt_flush(s, bl.k, 2, st), 2, "already durable: nothing to write");
    cr_assert_eq(stat(s, "flush_written"), 2);
    cr_assert_eq(kvt_flush(s, NULL, 0, NULL), 0);
    cr_assert_eq(kvt_flush(s, NULL, 1, NULL), KVT_ENULL);
    cr_assert_eq(kvt_close(s), 0);
    /* No persistent tier: nothing can be made durable. */
    kvt_store *d = open_store((shape){.dram_blocks = 64});
    cr_assert_eq(kvt_flush(d, bl.k, 1, NULL), KVT_ENOTSUP);
    kvt_io_opts o = {.size = sizeof o, .flags = KVT_IO_DURABLE};
    cr_assert_eq(kvt_put(d, bl.k, 1, bl.p, &o, NULL), KVT_ENOTSUP);
    cr_assert_eq(kvt_close(d), 0);
    free_blocks(&bl);
    unlink(path);
}

/* A clean close writes every DRAM-only block down (KVT_OPT_CLOSE_FLUSH_MS),
 * so the reopen is warm; with 0, they are dropped as before. */
Test(durable, close_then_reopen_keeps_every_dram_block)
{
    make_path("close");
    enum { N = 200 };
    kvt_store *s = open_store((shape){.dram_blocks = 256, .nvme_blocks = 256});
    blocks bl = make_blocks(0, N);
    cr_assert_eq(kvt_put(s, bl.k, N, bl.p, NULL, NULL), N);
    cr_assert_eq(stat(s, "nvme.used_blocks"), 0, "write-back: nothing on NVMe yet");
    cr_assert_eq(kvt_close(s), 0);
    s = open_store((shape){.dram_blocks = 256, .nvme_blocks = 256, .no_close_flush = 1});
    cr_assert_eq(stat(s, "nvme.recovered"), N);
    check_bytes(s, &bl);
    blocks more = make_blocks(1000, 16);
    cr_assert_eq(kvt_put(s, more.k, 16, more.p, NULL, NULL), 16);
    cr_assert_eq(kvt_close(s), 0); /* close flush off: the 16 stay in DRAM only */
    s = open_store((shape){.dram_blocks = 256, .nvme_blocks = 256});
    cr_assert_eq(found(s, more.k, 16), 0);
    cr_assert_eq(found(s, bl.k, N), N);
    cr_assert_eq(kvt_close(s), 0);
    free_blocks(&bl);
    free_blocks(&more);
    unlink(path);
}
