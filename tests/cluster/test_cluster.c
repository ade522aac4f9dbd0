/* test_cluster.c — the cluster engine as several nodes see it: round trips across processes, publish races, killed writers, the sweeper, TTL, quota, corruption and every refused path. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"
#include "tier/cluster/cluster.h"

/*
 * Runs on a local directory by default, and on a GlusterFS mount when
 * KVT_CLUSTER_DIR names one (tests/cluster/with-glusterfs.sh sets it).
 * Processes forked here, each with its own open of the directory, are the
 * nodes. Every wait has a deadline, so a misbehaving filesystem fails a
 * test instead of hanging it.
 */

#define KIB ((uint64_t)1 << 10)
#define BLOCK (64 * KIB)
#define FRAGS 2u
#define TOKENS 16u

/* FUSE on 2 vCPUs is slow: the GlusterFS runs use smaller counts. */
static bool on_shared_mount(void)
{
    return getenv("KVT_CLUSTER_DIR") && *getenv("KVT_CLUSTER_DIR");
}

static uint64_t seed_for(const char *test)
{
    const char *env = getenv("KVT_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    fprintf(stderr, "test_cluster %s: seed %llu (rerun with KVT_TEST_SEED=%llu)\n", test,
            (unsigned long long)seed, (unsigned long long)seed);
    return seed ? seed : 1;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static kvt_key key_of(uint64_t i)
{
    kvt_key k;
    uint64_t a = mix(i * 2 + 1), b = mix(i * 2 + 2);
    memcpy(k.b, &a, 8);
    memcpy(k.b + 8, &b, 8);
    return k;
}

/* The bytes block i always holds, whoever writes it. */
static void fill(uint8_t *p, uint64_t i)
{
    for (size_t off = 0; off < BLOCK; off += 8) {
        uint64_t v = mix(i ^ (off << 20));
        memcpy(p + off, &v, 8);
    }
}

/* ------------------------------------------------------------ directories */

static char test_dir[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_test_dir(void)
{
    const char *base = getenv("KVT_CLUSTER_DIR");
    if (!base || !*base)
        base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(test_dir, sizeof test_dir, "%s/kvt-cluster-test-XXXXXX", base);
    cr_assert_not_null(mkdtemp(test_dir), "mkdtemp under %s: %s", base, strerror(errno));
}

static void remove_test_dir(void)
{
    char small[600];
    snprintf(small, sizeof small, "%s/small", test_dir);
    umount2(small, MNT_DETACH); /* full_filesystem_gives_enospc's tmpfs, if a failure left it */
    if (test_dir[0])
        rm_tree(test_dir);
    test_dir[0] = '\0';
}

/* Criterion runs no .fini after a skip: remove the directory first. */
#define SKIP_TEST(...)                                                          \
    do {                                                                        \
        remove_test_dir();                                                      \
        cr_skip_test(__VA_ARGS__);                                              \
    } while (0)

static kvt_cluster_params params(void)
{
    kvt_cluster_params p;
    memset(&p, 0, sizeof p);
    p.dir = test_dir;
    p.block_bytes = BLOCK;
    p.block_tokens = TOKENS;
    p.frags = FRAGS;
    p.key_mode = KVT_KEY_XXH3_128;
    p.timeout_ms = 20000;
    return p;
}

static kvt_cluster *open_with(const kvt_cluster_params *p)
{
    kvt_cluster *c = NULL;
    int rc = kvt__cluster_open(p, &c);
    cr_assert_eq(rc, 0, "open %s: %s (%s)", p->dir, kvt_strerror(rc), kvt_last_error());
    return c;
}

static kvt_cluster *open_node(void)
{
    kvt_cluster_params p = params();
    return open_with(&p);
}

/* ------------------------------------------------------------------ batches */

typedef struct batch {
    size_t n;
    kvt_cluster_io *io;
    uint8_t *mem;
    void **frag_ptrs;
} batch;

/* n blocks, numbered first.., with memory (filled for puts, poisoned for gets). */
static batch batch_of(uint64_t first, size_t n, bool fill_it)
{
    batch b = {n, calloc(n, sizeof(kvt_cluster_io)), malloc(n * BLOCK),
               calloc(n * FRAGS, sizeof(void *))};
    cr_assert(b.io && b.mem && b.frag_ptrs);
    for (size_t i = 0; i < n; i++) {
        uint8_t *m = b.mem + i * BLOCK;
        if (fill_it)
            fill(m, first + i);
        else
            memset(m, 0xEE, BLOCK);
        for (uint32_t f = 0; f < FRAGS; f++)
            b.frag_ptrs[i * FRAGS + f] = m + f * (BLOCK / FRAGS);
        b.io[i].key = key_of(first + i);
        b.io[i].nfrags = FRAGS;
        b.io[i].frags = &b.frag_ptrs[i * FRAGS];
        b.io[i].status = 12345;
    }
    return b;
}

static void batch_free(batch *b)
{
    free(b->io);
    free(b->mem);
    free(b->frag_ptrs);
}

static void put_range(kvt_cluster *c, uint64_t first, size_t n)
{
    batch b = batch_of(first, n, true);
    int rc = kvt__cluster_put(c, b.io, n);
    cr_assert_eq(rc, 0, "put: %s (%s)", kvt_strerror(rc), kvt_last_error());
    batch_free(&b);
}

/* Gets block i: its status, and when 0 checks the bytes exactly. */
static int get_one(kvt_cluster *c, uint64_t i)
{
    batch b = batch_of(i, 1, false);
    kvt__cluster_get(c, b.io, 1);
    int st = b.io[0].status;
    if (st == 0) {
        uint8_t *want = malloc(BLOCK);
        fill(want, i);
        cr_assert(memcmp(b.mem, want, BLOCK) == 0, "block %llu came back with wrong bytes",
                  (unsigned long long)i);
        free(want);
    }
    batch_free(&b);
    return st;
}

/* Gets blocks first..first+n-1 in one batch: each must be a miss or the
 * exact bytes. Returns the hits. */
static int check_range(kvt_cluster *c, uint64_t first, size_t n, const char *when)
{
    batch b = batch_of(first, n, false);
    kvt__cluster_get(c, b.io, n);
    uint8_t *want = malloc(BLOCK);
    int hits = 0;
    for (size_t i = 0; i < n; i++) {
        int st = b.io[i].status;
        cr_assert(st == 0 || st == KVT_ENOENT, "%s: block %llu gave %s", when,
                  (unsigned long long)(first + i), kvt_strerror(st));
        if (st == 0) {
            fill(want, first + i);
            cr_assert(memcmp(b.mem + i * BLOCK, want, BLOCK) == 0,
                      "%s: block %llu came back with wrong bytes", when,
                      (unsigned long long)(first + i));
            hits++;
        }
    }
    free(want);
    batch_free(&b);
    return hits;
}

static void block_path(kvt_cluster *c, uint64_t i, char *out, size_t len)
{
    char rel[KVT__CLUSTER_REL_MAX];
    kvt_key k = key_of(i);
    kvt__cluster_rel_path(&k, rel);
    snprintf(out, len, "%s/%s", kvt__cluster_root(c), rel);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void backdate(kvt_cluster *c, uint64_t i, time_t seconds)
{
    char path[600];
    block_path(c, i, path, sizeof path);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= seconds;
    t[1] = t[0];
    cr_assert_eq(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW), 0, "backdate %s: %s", path,
                 strerror(errno));
}

/* Counts files whose name starts with `prefix` under the tree. */
static int counted;
static const char *count_prefix;
static int count_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (flag == FTW_F && !strncmp(path + ftw->base, count_prefix, strlen(count_prefix)))
        counted++;
    return 0;
}
static int count_files(kvt_cluster *c, const char *prefix)
{
    counted = 0;
    count_prefix = prefix;
    nftw(kvt__cluster_root(c), count_one, 16, FTW_PHYS);
    return counted;
}

TestSuite(cluster, .init = make_test_dir, .fini = remove_test_dir, .timeout = 120);

/* ----------------------------------------------------------------- basics */

Test(cluster, round_trip_contains_and_remove)
{
    kvt_cluster *c = open_node();
    put_range(c, 0, 40);
    for (uint64_t i = 0; i < 40; i++)
        cr_assert_eq(get_one(c, i), 0, "block %llu", (unsigned long long)i);
    cr_assert_eq(get_one(c, 1000), KVT_ENOENT);
    cr_assert_eq(kvt__cluster_stat(c, "hits"), 40);
    cr_assert_eq(kvt__cluster_stat(c, "misses"), 1);
    cr_assert_eq(kvt__cluster_stat(c, "puts"), 40);
    cr_assert_eq(kvt__cluster_stat(c, "bytes_written"), 40 * BLOCK);

    batch b = batch_of(30, 20, false); /* 30..39 held, 40..49 not */
    cr_assert_eq(kvt__cluster_contains(c, b.io, 20), 10);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(b.io[i].status, i < 10 ? 0 : KVT_ENOENT, "contains %d", i);
    cr_assert_eq(kvt__cluster_remove(c, b.io, 20), 0, "remove of absent keys is fine");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(b.io[i].status, i < 10 ? 0 : KVT_ENOENT, "remove %d", i);
    cr_assert_eq(kvt__cluster_contains(c, b.io, 20), 0);
    cr_assert_eq(kvt__cluster_stat(c, "removed"), 10);
    batch_free(&b);

    /* Putting a key again is harmless and counts as stored. */
    put_range(c, 0, 5);
    cr_assert_eq(kvt__cluster_stat(c, "publish_races_lost"), 5);
    cr_assert_eq(count_files(c, ".tmp."), 0, "no temporary file left behind");
    kvt__cluster_close(c);
}

/* A lookup's prefix check stops after the first key not held: keys after
 * it are answered not held without a statx, and the held ones before it
 * are all found, whatever order their answers arrive in. */
Test(cluster, prefix_contains_stops_at_the_first_miss)
{
    kvt_cluster_params p = params();
    p.queue_depth = 8;
    kvt_cluster *c = open_with(&p);
    put_range(c, 0, 50);
    put_range(c, 60, 40); /* held again after the gap: never reached */
    batch b = batch_of(0, 200, false);
    cr_assert_eq(kvt__cluster_contains_prefix(c, b.io, 200), 50);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(b.io[i].status, 0, "key %d of the prefix", i);
    for (int i = 50; i < 200; i++)
        cr_assert_eq(b.io[i].status, KVT_ENOENT, "key %d after the first miss", i);
    uint64_t asked = kvt__cluster_stat(c, "contains_checks");
    uint64_t skipped = kvt__cluster_stat(c, "contains_skipped");
    cr_assert_eq(asked + skipped, 200);
    /* Keys 50..57 may be in flight when key 50's miss comes back. */
    cr_assert_leq(asked, 50 + p.queue_depth, "asked %llu keys", (unsigned long long)asked);

    /* The plain check answers every key. */
    cr_assert_eq(kvt__cluster_contains(c, b.io, 200), 90);
    cr_assert_eq(kvt__cluster_stat(c, "contains_checks"), asked + 200);
    cr_assert_eq(kvt__cluster_stat(c, "contains_skipped"), skipped);
    batch_free(&b);
    kvt__cluster_close(c);
}

Test(cluster, buffered_fallback_and_file_mode)
{
    kvt_cluster_params p = params();
    p.no_direct = 1;
    mode_t old = umask(0);
    kvt_cluster *c = open_with(&p);
    cr_assert_eq(kvt__cluster_stat(c, "direct_io"), 0, "no_direct: buffered, and said so");
    put_range(c, 0, 3);
    cr_assert_eq(get_one(c, 2), 0);
    char path[600];
    struct stat st;
    block_path(c, 1, path, sizeof path);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "block files are 0600 by default, got %o",
                 st.st_mode & 0777);
    kvt__cluster_close(c);

    p.no_direct = 0;
    p.file_mode = 0660;
    c = open_with(&p);
    put_range(c, 10, 1);
    block_path(c, 10, path, sizeof path);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0660, "group mode when asked, got %o", st.st_mode & 0777);
    kvt__cluster_close(c);
    umask(old);
}

/* ------------------------------------------------------------- many nodes */

Test(cluster, node_a_puts_node_b_gets)
{
    pid_t a = fork();
    if (a == 0) {
        kvt_cluster *c = NULL;
        kvt_cluster_params p = params();
        if (kvt__cluster_open(&p, &c))
            _exit(2);
        batch b = batch_of(0, 64, true);
        int rc = kvt__cluster_put(c, b.io, 64);
        kvt__cluster_close(c);
        _exit(rc ? 1 : 0);
    }
    int ws;
    cr_assert_eq(waitpid(a, &ws, 0), a);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "node A failed to put");
    pid_t b = fork();
    if (b == 0) { /* node B: a fresh process with its own open */
        kvt_cluster *c = NULL;
        kvt_cluster_params p = params();
        if (kvt__cluster_open(&p, &c))
            _exit(2);
        batch g = batch_of(0, 64, false);
        int hits = kvt__cluster_get(c, g.io, 64);
        uint8_t *want = malloc(BLOCK);
        for (uint64_t i = 0; i < 64; i++) {
            fill(want, i);
            if (memcmp(want, g.mem + i * BLOCK, BLOCK))
                _exit(3);
        }
        kvt__cluster_close(c);
        _exit(hits == 64 ? 0 : 4);
    }
    cr_assert_eq(waitpid(b, &ws, 0), b);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "node B: exit %d (3: wrong bytes, 4: misses)",
              WEXITSTATUS(ws));
}

Test(cluster, concurrent_publishers_of_one_key)
{
    enum { NODES = 4, KEYS = 24 };
    /* counts[node] = {puts, races lost} */
    uint64_t *counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(counts, MAP_FAILED);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t kids[NODES];
    for (int n = 0; n < NODES; n++) {
        kids[n] = fork();
        if (kids[n] == 0) {
            close(go[1]);
            kvt_cluster *c = NULL;
            kvt_cluster_params p = params();
            if (kvt__cluster_open(&p, &c))
                _exit(2);
            batch b = batch_of(0, KEYS, true);
            char x;
            if (read(go[0], &x, 1) < 0) /* everyone starts at once: EOF */
                _exit(5);
            int rc = kvt__cluster_put(c, b.io, KEYS);
            counts[2 * n] = kvt__cluster_stat(c, "puts");
            counts[2 * n + 1] = kvt__cluster_stat(c, "publish_races_lost");
            kvt__cluster_close(c);
            _exit(rc ? 1 : 0);
        }
    }
    close(go[0]);
    usleep(100000);
    close(go[1]);
    for (int n = 0; n < NODES; n++) {
        int ws;
        cr_assert_eq(waitpid(kids[n], &ws, 0), kids[n]);
        cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "publisher %d: exit %d", n,
                  WEXITSTATUS(ws));
    }
    uint64_t puts = 0, lost = 0;
    for (int n = 0; n < NODES; n++) {
        puts += counts[2 * n];
        lost += counts[2 * n + 1];
    }
    cr_assert_eq(puts, KEYS, "exactly one publisher wins each key (won %llu)",
                 (unsigned long long)puts);
    cr_assert_eq(lost, (NODES - 1) * KEYS);
    kvt_cluster *c = open_node();
    for (uint64_t i = 0; i < KEYS; i++)
        cr_assert_eq(get_one(c, i), 0);
    cr_assert_eq(count_files(c, ".tmp."), 0, "losers removed their temporary files");
    kvt__cluster_close(c);
    munmap(counts, 4096);
}

/* A writer SIGKILLed at random moments: every block file visible is whole. */
Test(cluster, killed_writer_never_leaves_a_partial_block)
{
    uint64_t seed = seed_for("killed_writer");
    const uint64_t UNIVERSE = on_shared_mount() ? 160 : 400;
    const int KILLS = on_shared_mount() ? 5 : 12;
    kvt_cluster *reader = open_node();
    for (int k = 0; k < KILLS; k++) {
        int ready[2];
        cr_assert_eq(pipe(ready), 0);
        pid_t w = fork();
        if (w == 0) {
            close(ready[0]);
            kvt_cluster *c = NULL;
            kvt_cluster_params p = params();
            if (kvt__cluster_open(&p, &c))
                _exit(2);
            uint64_t s = mix(seed + (uint64_t)k);
            for (int round = 0;; round++) { /* batches of 8 random blocks until killed */
                s = mix(s);
                batch b = batch_of(s % (UNIVERSE - 8), 8, true);
                kvt__cluster_put(c, b.io, 8);
                batch_free(&b);
                if (round == 0 && write(ready[1], "r", 1) < 0) /* kills land mid-stream */
                    _exit(3);
            }
        }
        close(ready[1]);
        struct pollfd pf = {.fd = ready[0], .events = POLLIN};
        cr_assert_eq(poll(&pf, 1, 30000), 1, "writer %d did not publish its first batch in 30 s", k);
        close(ready[0]);
        seed = mix(seed);
        usleep((useconds_t)(seed % 30000));
        kill(w, SIGKILL);
        int ws;
        cr_assert_eq(waitpid(w, &ws, 0), w);
        char when[32];
        snprintf(when, sizeof when, "after kill %d", k);
        check_range(reader, 0, UNIVERSE, when);
    }
    cr_assert_eq(kvt__cluster_stat(reader, "corrupt"), 0);
    cr_assert_eq(kvt__cluster_stat(reader, "truncated"), 0);
    cr_assert_gt(kvt__cluster_stat(reader, "hits"), 0, "the writers published something");
    /* Temporary files of the killed writers: kept through the grace period
     * (a live writer's look the same), then cleaned. */
    int tmps = count_files(reader, ".tmp.");
    kvt__cluster_sweep_all(reader, 0);
    cr_assert_eq(count_files(reader, ".tmp."), tmps, "young temporary files are kept");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t later = ((uint64_t)ts.tv_sec + 3600) * 1000000000ull;
    kvt__cluster_sweep_all(reader, later);
    cr_assert_eq(count_files(reader, ".tmp."), 0, "after the grace period none is left");
    cr_assert_eq(kvt__cluster_stat(reader, "tmp_cleaned"), (uint64_t)tmps);
    kvt__cluster_close(reader);
}

Test(cluster, sweeper_racing_readers)
{
    const uint64_t N = on_shared_mount() ? 60 : 120;
    kvt_cluster *c = open_node();
    put_range(c, 0, N);
    pid_t s = fork();
    if (s == 0) { /* a sweeping node whose quota is a third of the blocks */
        kvt_cluster *sc = NULL;
        kvt_cluster_params p = params();
        p.quota_bytes = N / 3 * kvt__cluster_file_bytes(c);
        if (kvt__cluster_open(&p, &sc))
            _exit(2);
        kvt__cluster_sweep_all(sc, 0);
        kvt__cluster_close(sc);
        _exit(0);
    }
    uint64_t deadline = now_ns() + 45000000000ull;
    int ws = 0, hits = 0;
    pid_t done = 0;
    while (done == 0 && now_ns() < deadline) {
        hits += check_range(c, 0, N, "while swept");
        done = waitpid(s, &ws, WNOHANG);
    }
    if (done == 0) {
        kill(s, SIGKILL);
        waitpid(s, &ws, 0);
        cr_assert_fail("the sweeper did not finish in 45 s");
    }
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    cr_assert_eq((uint64_t)count_files(c, "") - 1 /* FORMAT */, N / 3, "the quota holds after a pass");
    cr_assert_eq(kvt__cluster_stat(c, "corrupt"), 0);
    kvt__cluster_close(c);
}

/* -------------------------------------------------------------- TTL, quota */

Test(cluster, idle_ttl_across_nodes_and_refresh_by_readers)
{
    kvt_cluster_params p = params();
    p.ttl_ms = 3600 * 1000; /* an hour */
    kvt_cluster *a = open_with(&p), *b = open_with(&p);
    put_range(a, 0, 10);
    for (uint64_t i = 0; i < 5; i++)
        backdate(a, i, 2 * 3600); /* idle two hours */
    backdate(a, 9, 2 * 3600);
    /* A read by node B refreshes block 9's last access (asynchronously). */
    cr_assert_eq(get_one(b, 9), 0);
    uint64_t deadline = now_ns() + 5000000000ull;
    while (kvt__cluster_stat(b, "touches") < 1 && now_ns() < deadline)
        usleep(1000);
    cr_assert_eq(kvt__cluster_stat(b, "touches"), 1);
    cr_assert_eq(get_one(b, 9), 0);
    usleep(50000);
    cr_assert_eq(kvt__cluster_stat(b, "touches"), 1, "refreshes are throttled");
    /* Node B sweeps what node A put. */
    cr_assert_eq(kvt__cluster_sweep_all(b, 0), 5);
    cr_assert_eq(kvt__cluster_stat(b, "expired"), 5);
    for (uint64_t i = 0; i < 10; i++)
        cr_assert_eq(get_one(a, i), i < 5 ? KVT_ENOENT : 0, "block %llu", (unsigned long long)i);
    kvt__cluster_close(a);
    kvt__cluster_close(b);
}

Test(cluster, quota_holds_across_nodes)
{
    enum { N = 24, QUOTA_FILES = 9 };
    kvt_cluster *a = open_node();
    put_range(a, 0, N);
    for (uint64_t i = 0; i < N; i++)
        backdate(a, i, (time_t)(1000 - i)); /* block 0 the oldest */
    kvt_cluster_params p = params();
    p.quota_bytes = QUOTA_FILES * kvt__cluster_file_bytes(a);
    kvt_cluster *b = open_with(&p);
    cr_assert_eq(kvt__cluster_sweep_all(b, 0), N - QUOTA_FILES);
    cr_assert_eq(kvt__cluster_stat(b, "swept"), N - QUOTA_FILES);
    int held = 0;
    for (uint64_t i = 0; i < N; i++)
        held += get_one(a, i) == 0;
    cr_assert_eq(held, QUOTA_FILES);
    cr_assert_eq(kvt__cluster_sweep_all(b, 0), 0, "a second pass finds the tree within quota");
    kvt__cluster_close(a);
    kvt__cluster_close(b);
}

/* -------------------------------------------------------------- corruption */

static void overwrite(kvt_cluster *c, uint64_t i, off_t off, const void *bytes, size_t n)
{
    char path[600];
    block_path(c, i, path, sizeof path);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(pwrite(fd, bytes, n, off), (ssize_t)n);
    close(fd);
}

Test(cluster, every_corruption_is_detected)
{
    uint64_t seed = seed_for("corruption");
    enum { N = 60 };
    kvt_cluster *c = open_node();
    put_range(c, 0, N);
    uint64_t file_bytes = kvt__cluster_file_bytes(c);
    /* One random byte flipped in each block, anywhere in header or payload. */
    for (uint64_t i = 0; i < N; i++) {
        seed = mix(seed);
        off_t off = (off_t)(seed % (128 + BLOCK)); /* header fields or payload */
        if (off >= 128)
            off += 4096 - 128;
        char path[600];
        block_path(c, i, path, sizeof path);
        int fd = open(path, O_RDWR);
        uint8_t byte;
        cr_assert_eq(pread(fd, &byte, 1, off), 1);
        byte ^= (uint8_t)(1u << (seed >> 60 & 7));
        cr_assert_eq(pwrite(fd, &byte, 1, off), 1);
        close(fd);
        int st = get_one(c, i);
        cr_assert(st == KVT_ECORRUPT || st == KVT_EFORMAT || st == KVT_EGEOMETRY,
                  "block %llu with byte %lld flipped gave %s", (unsigned long long)i,
                  (long long)off, kvt_strerror(st));
        (void)file_bytes;
    }
    cr_assert_eq(kvt__cluster_stat(c, "hits"), 0, "not one corrupted block was returned");
    kvt__cluster_close(c);
}

/* Blocks of CL_OFFLOAD_MIN (256 KiB) and more are verified and copied out
 * by a verifier thread while the ring's thread goes on: many gets in one
 * call come back byte-exact across fragments, a corrupted one is caught
 * (and its file dropped) on that path too, and a miss in the batch stays a
 * miss. */
Test(cluster, large_blocks_verified_off_the_ring)
{
    enum { N = 24, BIG = 256 * 1024, BFRAGS = 4 };
    kvt_cluster_params p = params();
    p.block_bytes = BIG;
    p.frags = BFRAGS;
    p.queue_depth = 8;
    kvt_cluster *c = open_with(&p);
    uint8_t *src = malloc((size_t)N * BIG), *dst = malloc((size_t)N * BIG);
    void **sp = calloc((size_t)N * BFRAGS, sizeof *sp), **dp = calloc((size_t)N * BFRAGS, sizeof *dp);
    kvt_cluster_io io[N + 1];
    cr_assert(src && dst && sp && dp);
    for (size_t i = 0; i < (size_t)N * BIG; i += 8) {
        uint64_t v = mix(i);
        memcpy(src + i, &v, 8);
    }
    memset(io, 0, sizeof io);
    for (int i = 0; i <= N; i++) {
        io[i].key = key_of(5000 + (uint64_t)i); /* io[N]: never put */
        io[i].nfrags = BFRAGS;
        io[i].frags = &sp[(i % N) * BFRAGS];
    }
    for (int i = 0; i < N; i++)
        for (int f = 0; f < BFRAGS; f++) {
            sp[i * BFRAGS + f] = src + (size_t)i * BIG + (size_t)f * (BIG / BFRAGS);
            dp[i * BFRAGS + f] = dst + (size_t)i * BIG + (size_t)f * (BIG / BFRAGS);
        }
    cr_assert_eq(kvt__cluster_put(c, io, N), 0, "%s", kvt_last_error());

    /* Block 3's payload gets one byte flipped on disk. */
    char rel[KVT__CLUSTER_REL_MAX], path[700];
    kvt__cluster_rel_path(&io[3].key, rel);
    snprintf(path, sizeof path, "%s/%s", kvt__cluster_root(c), rel);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, 4096 + 12345), 1);
    byte ^= 0x10;
    cr_assert_eq(pwrite(fd, &byte, 1, 4096 + 12345), 1);
    close(fd);

    memset(dst, 0xEE, (size_t)N * BIG);
    for (int i = 0; i <= N; i++)
        io[i].frags = &dp[(i % N) * BFRAGS];
    int hits = kvt__cluster_get(c, io, N + 1);
    cr_assert_eq(hits, N - 1, "hits %d", hits);
    for (int i = 0; i < N; i++) {
        if (i == 3) {
            cr_assert_eq(io[i].status, KVT_ECORRUPT, "the flipped block: %s",
                         kvt_strerror(io[i].status));
            continue;
        }
        cr_assert_eq(io[i].status, 0, "block %d: %s", i, kvt_strerror(io[i].status));
        cr_assert(memcmp(dst + (size_t)i * BIG, src + (size_t)i * BIG, BIG) == 0,
                  "block %d came back with wrong bytes", i);
    }
    cr_assert_eq(io[N].status, KVT_ENOENT);
    cr_assert_eq(kvt__cluster_stat(c, "corrupt"), 1);
    cr_assert_eq(access(path, F_OK), -1, "the corrupt file was dropped");
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
        cr_assert_eq(kvt__cluster_stat(c, "verified_off_ring"), N - 1 + 1,
                     "every read image went to the verifier (the corrupt one too)");
    kvt__cluster_close(c);
    free(src), free(dst), free(sp), free(dp);
}

/* A call that times out while a verifier is still copying one of its
 * blocks out waits for that copy before it returns: once the get is back,
 * nothing writes the caller's memory any more. */
Test(cluster, a_timed_out_get_waits_for_its_verifiers)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        SKIP_TEST("no verifier thread on one CPU");
    enum { N = 4, BIG = 256 * 1024 };
    kvt_cluster_params p = params();
    p.block_bytes = BIG;
    p.frags = 1;
    kvt_cluster *c = open_with(&p);
    uint8_t *src = malloc((size_t)N * BIG), *dst = malloc((size_t)N * BIG);
    void *sp[N], *dp[N];
    kvt_cluster_io io[N];
    memset(io, 0, sizeof io);
    for (int i = 0; i < N; i++) {
        memset(src + (size_t)i * BIG, 0x40 + i, BIG);
        sp[i] = src + (size_t)i * BIG;
        dp[i] = dst + (size_t)i * BIG;
        io[i].key = key_of(9000 + (uint64_t)i);
        io[i].nfrags = 1;
        io[i].frags = &sp[i];
    }
    cr_assert_eq(kvt__cluster_put(c, io, N), 0, "%s", kvt_last_error());
    kvt__cluster_close(c);

    p.timeout_ms = 200;
    p.slow_verify_ms_for_tests = 700; /* every verification outlives the call's deadline */
    c = open_with(&p);
    for (int i = 0; i < N; i++)
        io[i].frags = &dp[i];
    memset(dst, 0, (size_t)N * BIG);
    uint64_t t0 = now_ns();
    kvt__cluster_get(c, io, N);
    uint64_t took = now_ns() - t0;
    for (int i = 0; i < N; i++)
        cr_assert(io[i].status == KVT_ETIMEDOUT || io[i].status == 0, "block %d: %s", i,
                  kvt_strerror(io[i].status));
    cr_assert(io[0].status == KVT_ETIMEDOUT || io[N - 1].status == KVT_ETIMEDOUT,
              "the call outlived its deadline without a timeout (%llu ms)",
              (unsigned long long)(took / 1000000));
    cr_assert_geq(took, 600000000ull, "returned after %llu ms, before its verifier finished",
                  (unsigned long long)(took / 1000000));
    /* Mark the memory now: a verifier still running would overwrite it. */
    memset(dst, 0x11, (size_t)N * BIG);
    usleep(1500 * 1000);
    for (size_t b = 0; b < (size_t)N * BIG; b += 4096)
        cr_assert_eq(dst[b], 0x11, "caller memory written at byte %zu after the get returned", b);
    kvt__cluster_close(c);
    free(src), free(dst);
}

Test(cluster, truncated_foreign_renamed_and_other_geometry_files)
{
    kvt_cluster *c = open_node();
    put_range(c, 0, 6);
    char path[600], other[600];
    /* 0: truncated mid-payload. */
    block_path(c, 0, path, sizeof path);
    cr_assert_eq(truncate(path, 4096 + 1000), 0);
    cr_assert_eq(get_one(c, 0), KVT_ETOOSMALL);
    cr_assert_eq(get_one(c, 0), KVT_ENOENT, "a bad file is unlinked so it can be put again");
    /* 1: foreign bytes of the right size. */
    uint8_t *junk = malloc(kvt__cluster_file_bytes(c));
    memset(junk, 'x', kvt__cluster_file_bytes(c));
    overwrite(c, 1, 0, junk, kvt__cluster_file_bytes(c));
    cr_assert_eq(get_one(c, 1), KVT_EFORMAT);
    free(junk);
    /* 2: block 3's file under block 2's name. */
    block_path(c, 2, path, sizeof path);
    block_path(c, 3, other, sizeof other);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(link(other, path), 0);
    cr_assert_eq(get_one(c, 2), KVT_ECORRUPT);
    cr_assert_eq(get_one(c, 3), 0);
    cr_assert_eq(kvt__cluster_stat(c, "corrupt"), 1);
    cr_assert_eq(kvt__cluster_stat(c, "truncated"), 1);
    /* 4: written by a store of another geometry and another key mode. */
    kvt_cluster_params p = params();
    p.block_tokens = TOKENS * 2;
    kvt_cluster *g = open_with(&p);
    cr_assert_eq(get_one(g, 4), KVT_EGEOMETRY);
    p.block_tokens = TOKENS;
    p.key_mode = KVT_KEY_BLAKE2B_128;
    kvt_cluster *m = open_with(&p);
    cr_assert_eq(get_one(m, 4), KVT_EGEOMETRY);
    cr_assert_eq(get_one(c, 4), 0, "another geometry's reads leave the file alone");
    cr_assert_eq(kvt__cluster_stat(g, "foreign"), 1);
    kvt__cluster_close(g);
    kvt__cluster_close(m);
    kvt__cluster_close(c);
}

/* ------------------------------------------------------------- bad paths */

Test(cluster, refused_directories)
{
    kvt_cluster_params p = params();
    kvt_cluster *c = NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/missing", test_dir);
    p.dir = path;
    cr_assert_eq(kvt__cluster_open(&p, &c), KVT_EPATH);
    cr_assert_null(c);
    snprintf(path, sizeof path, "%s/a-file", test_dir);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    cr_assert_eq(kvt__cluster_open(&p, &c), KVT_EPATH);
    p.dir = test_dir;
    p.block_bytes = 0;
    cr_assert_eq(kvt__cluster_open(&p, &c), KVT_ESIZE);
    p = params();
    /* A tree of another format version. */
    c = open_node();
    snprintf(path, sizeof path, "%s/FORMAT", kvt__cluster_root(c));
    kvt__cluster_close(c);
    c = NULL;
    FILE *f = fopen(path, "w");
    fputs("kvtier-cluster 9\n", f);
    fclose(f);
    cr_assert_eq(kvt__cluster_open(&p, &c), KVT_EFORMAT);
    cr_assert(strstr(kvt_last_error(), "FORMAT"), "message names the marker: %s",
              kvt_last_error());
}

Test(cluster, symlinks_never_lead_out_of_the_tree)
{
    kvt_cluster *c = open_node();
    put_range(c, 0, 1);
    /* Make an outside directory hold a valid copy of block 0's leaf, then
     * swap the leaf for a symlink to it. */
    char leaf[600], outside[600];
    block_path(c, 0, leaf, sizeof leaf);
    *strrchr(leaf, '/') = '\0';
    snprintf(outside, sizeof outside, "%s/outside", test_dir);
    cr_assert_eq(rename(leaf, outside), 0);
    cr_assert_eq(symlink(outside, leaf), 0);
    cr_assert_eq(get_one(c, 0), KVT_EPATH);
    batch w = batch_of(0, 1, true);
    cr_assert_eq(kvt__cluster_put(c, w.io, 1), KVT_EPATH, "no write through the link either");
    batch_free(&w);
    cr_assert_gt(kvt__cluster_stat(c, "unsafe_paths"), 0);
    kvt__cluster_close(c);
}

Test(cluster, hung_filesystem_times_out_with_a_clear_code)
{
    kvt_cluster_params p = params();
    p.timeout_ms = 300;
    p.hang_for_tests = 1;
    kvt_cluster *c = open_with(&p);
    batch b = batch_of(0, 50, true);
    uint64_t t0 = now_ns();
    cr_assert_eq(kvt__cluster_put(c, b.io, 50), KVT_ETIMEDOUT);
    cr_assert_eq(kvt__cluster_get(c, b.io, 50), 0);
    cr_assert_eq(kvt__cluster_contains(c, b.io, 50), KVT_ETIMEDOUT);
    uint64_t took = now_ns() - t0;
    for (int i = 0; i < 50; i++)
        cr_assert_eq(b.io[i].status, KVT_ETIMEDOUT);
    cr_assert_lt(took, 5000000000ull, "three calls took %llu ms", (unsigned long long)(took / 1000000));
    cr_assert_eq(kvt__cluster_stat(c, "timeouts"), 3);
    batch_free(&b);
    kvt__cluster_close(c);
}

Test(cluster, full_filesystem_gives_enospc)
{
    if (getenv("KVT_CLUSTER_DIR"))
        SKIP_TEST("runs on a small tmpfs of its own, not on the shared mount");
    char mnt[600];
    snprintf(mnt, sizeof mnt, "%s/small", test_dir);
    cr_assert_eq(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=512k"))
        SKIP_TEST("cannot mount a small tmpfs here (%s): needs root", strerror(errno));
    kvt_cluster_params p = params();
    p.dir = mnt;
    kvt_cluster *c = open_with(&p);
    batch b = batch_of(0, 16, true); /* 16 * 68 KiB > 512 KiB */
    int rc = kvt__cluster_put(c, b.io, 16);
    cr_assert_eq(rc, KVT_ENOSPC, "got %s", kvt_strerror(rc));
    cr_assert_gt(kvt__cluster_stat(c, "enospc"), 0);
    int stored = 0;
    for (int i = 0; i < 16; i++)
        stored += b.io[i].status == 0;
    int held = 0;
    for (uint64_t i = 0; i < 16; i++) {
        int st = get_one(c, i);
        cr_assert(st == 0 || st == KVT_ENOENT);
        held += st == 0;
    }
    cr_assert_eq(held, stored, "exactly the blocks reported stored are there, whole");
    cr_assert_eq(count_files(c, ".tmp."), 0, "failed writes leave no temporary file");
    batch_free(&b);
    kvt__cluster_close(c);
    umount2(mnt, MNT_DETACH);
}

/* On GlusterFS: the FUSE client stopped under a running store (a real hung
 * mount). Calls come back with KVT_ETIMEDOUT within the timeout. */
Test(cluster, stopped_fuse_client_times_out)
{
    const char *pid_s = getenv("KVT_GLUSTER_CLIENT_PID");
    if (!pid_s || !*pid_s)
        SKIP_TEST("needs the GlusterFS fixture's FUSE client (with-glusterfs.sh)");
    pid_t client = (pid_t)atoi(pid_s);
    kvt_cluster_params p = params();
    p.timeout_ms = 700;
    kvt_cluster *c = open_with(&p);
    put_range(c, 0, 4);
    batch b = batch_of(0, 4, false);
    cr_assert_eq(kill(client, SIGSTOP), 0);
    uint64_t t0 = now_ns();
    int hits = kvt__cluster_get(c, b.io, 4);
    uint64_t took = now_ns() - t0;
    kill(client, SIGCONT); /* before any assertion: the fixture also does it at teardown */
    cr_assert_eq(hits, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(b.io[i].status, KVT_ETIMEDOUT, "block %d: %s", i,
                     kvt_strerror(b.io[i].status));
    cr_assert_lt(took, 3000000000ull, "the get took %llu ms", (unsigned long long)(took / 1000000));
    /* The mount answers again: the store serves as before (a fresh lane). */
    cr_assert_eq(check_range(c, 0, 4, "after the hang"), 4);
    batch_free(&b);
    kvt__cluster_close(c);
}

/* Whether pid runs: exists and is not a zombie (a killed brick stays one
 * until glusterd reaps it). */
static bool process_running(int pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool running = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    const char *close_paren = running ? strrchr(line, ')') : NULL;
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X';
}

/* A replica-2 volume with its second brick killed (SIGKILL) under a running
 * open: the blocks written before stay readable with the right bytes, new
 * blocks publish and read back, contains still answers. Run by
 * cluster-gluster-replica-brick-down, which names the brick's pidfile. (The
 * first brick is not the one killed: with replica 2, GlusterFS's default
 * client quorum needs it for writes.) */
Test(cluster, replica_keeps_serving_with_a_brick_killed)
{
    const char *pidfile = getenv("KVT_GLUSTER_KILL_BRICK_PIDFILE");
    if (!pidfile || !*pidfile)
        SKIP_TEST("needs with-glusterfs.sh replica with KVT_GLUSTER_KILL_BRICK "
                  "(the cluster-gluster-replica-brick-down test)");
    FILE *f = fopen(pidfile, "r");
    cr_assert_not_null(f, "brick pidfile %s: %s", pidfile, strerror(errno));
    int pid = 0;
    cr_assert_eq(fscanf(f, "%d", &pid), 1, "brick pidfile %s", pidfile);
    fclose(f);
    cr_assert_gt(pid, 1);
    cr_assert_eq(kill(pid, 0), 0, "brick %d is running before the test", pid);

    kvt_cluster *c = open_node();
    put_range(c, 0, 20);
    cr_assert_eq(check_range(c, 0, 20, "both bricks up"), 20);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    uint64_t t0 = now_ns();
    while (process_running(pid) && now_ns() - t0 < 5000000000ull)
        usleep(20000);
    cr_assert(!process_running(pid), "brick %d still runs 5 s after SIGKILL", pid);

    cr_assert_eq(check_range(c, 0, 20, "after the brick was killed"), 20);
    put_range(c, 20, 20);
    cr_assert_eq(check_range(c, 20, 20, "written with one brick down"), 20);
    batch b = batch_of(0, 50, false);
    cr_assert_eq(kvt__cluster_contains(c, b.io, 50), 40);
    batch_free(&b);
    cr_assert_eq(kvt__cluster_stat(c, "corrupt"), 0);
    cr_assert_eq(kvt__cluster_stat(c, "timeouts"), 0);
    kvt__cluster_close(c);

    /* A second open (another node) sees everything too. */
    c = open_node();
    cr_assert_eq(check_range(c, 0, 40, "from a fresh open"), 40);
    kvt__cluster_close(c);
}

/* One open used by several threads at once (each call checks out its own
 * ring): puts, gets and contains of overlapping keys, exact bytes. */
typedef struct thread_arg {
    kvt_cluster *c;
    uint64_t first;
    int bad;
} thread_arg;

static void *thread_body(void *p)
{
    thread_arg *a = p;
    for (int round = 0; round < 6; round++) {
        uint64_t first = a->first + (uint64_t)round * 5;
        batch b = batch_of(first, 16, true);
        if (kvt__cluster_put(a->c, b.io, 16))
            a->bad++;
        batch_free(&b);
        batch g = batch_of(first, 16, false);
        if (kvt__cluster_get(a->c, g.io, 16) != 16)
            a->bad++;
        uint8_t *want = malloc(BLOCK);
        for (uint64_t i = 0; i < 16; i++) {
            fill(want, first + i);
            if (memcmp(want, g.mem + i * BLOCK, BLOCK))
                a->bad++;
        }
        free(want);
        if (kvt__cluster_contains(a->c, g.io, 16) != 16)
            a->bad++;
        batch_free(&g);
    }
    return NULL;
}

Test(cluster, threads_share_one_open)
{
    kvt_cluster *c = open_node();
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){c, (uint64_t)i * 20, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, thread_body, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].bad, 0, "thread %d saw %d failures", i, args[i].bad);
    }
    cr_assert_eq(kvt__cluster_stat(c, "corrupt"), 0);
    kvt__cluster_close(c);
}

Test(cluster, read_only_directory_is_refused)
{
    if (on_shared_mount())
        SKIP_TEST("runs on a read-only bind mount of its own, not on the shared mount");
    char ro[600];
    snprintf(ro, sizeof ro, "%s/small", test_dir); /* fini unmounts "small" */
    cr_assert_eq(mkdir(ro, 0700), 0);
    if (mount(test_dir, ro, NULL, MS_BIND, NULL))
        SKIP_TEST("cannot bind-mount here (%s): needs root", strerror(errno));
    if (mount(NULL, ro, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)) {
        umount2(ro, MNT_DETACH);
        SKIP_TEST("cannot make a read-only bind mount here (%s)", strerror(errno));
    }
    kvt_cluster_params p = params();
    p.dir = ro;
    kvt_cluster *c = NULL;
    int rc = kvt__cluster_open(&p, &c);
    umount2(ro, MNT_DETACH);
    cr_assert_eq(rc, KVT_EPATH, "got %s", kvt_strerror(rc));
    cr_assert(strstr(kvt_last_error(), "not writable"), "message: %s", kvt_last_error());
}
