/* test_nvme.c — the NVMe tier through its ops table: round trips, recovery, threads, crash survival and every refused path. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/rand.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "tier/nvme.h"
#include "tier/tier.h"
#include "../tier_kinds.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define POISON 0xEE

#if !KVT_HAVE_URING
Test(nvme, unavailable)
{
    cr_skip_test("built without io_uring: there is no NVMe tier to test");
}
#else

static const kvt_tier_ops *const nv = &kvt__tier_nvme;

static kvt_key rand_key(uint64_t *s)
{
    kvt_key k;
    fill_random(k.b, sizeof k.b, s);
    return k;
}

/* 4 KiB-aligned memory of at least len bytes (aligned_alloc wants a multiple). */
static void *abuf(uint64_t len)
{
    void *p = aligned_alloc(4096, (len + 4095) / 4096 * 4096);
    cr_assert_not_null(p);
    return p;
}

/* ------------------------------------------------------- scratch directory */

static char dir[512];
static char path[640];

static void setup(void)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    snprintf(dir, sizeof dir, "%s/nvme-test-XXXXXX", root ? root : KVT_BUILD_ROOT);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/tier.kvt", dir);
}

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_F) {
        int fd = open(p, O_RDONLY | O_NOFOLLOW);
        if (fd >= 0) { /* undo the immutable flag of the unwritable-path test */
            int attr = 0;
            if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0 && (attr & FS_IMMUTABLE_FL)) {
                attr &= ~FS_IMMUTABLE_FL;
                ioctl(fd, FS_IOC_SETFLAGS, &attr);
            }
            close(fd);
        }
    }
    remove(p);
    return 0;
}

static void teardown(void)
{
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(nvme, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ helpers */

static kvt_tier_params params(uint64_t block_bytes, uint32_t frags, uint32_t nslots)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, &kvt__tier_nvme);
    p.name = "nvme";
    p.block_bytes = block_bytes;
    p.block_tokens = 16;
    p.frags = frags;
    kvt__tier_params_set_str(&p, "path", path);
    p.capacity = kvt__nvme_slot_bytes(block_bytes) * nslots;
    return p;
}

static kvt_tier_impl *open_ok(const kvt_tier_params *p)
{
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    int rc = nv->open(p, &t, &n);
    cr_assert_eq(rc, 0, "open %s: %d %s", kvt__tier_opt_str(p, "path"), rc, kvt_last_error());
    cr_assert_eq((uint64_t)n, p->capacity / kvt__nvme_slot_bytes(p->block_bytes));
    return t;
}

/* Opens expecting failure; closes if it unexpectedly succeeded. */
static int open_rc(const kvt_tier_params *p)
{
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    int rc = nv->open(p, &t, &n);
    if (rc == 0)
        nv->close(t);
    else
        cr_assert_null(t);
    return rc;
}

struct stat_probe {
    const char *name;
    uint64_t value;
    int found;
};

static void probe_cb(const char *name, uint64_t value, void *user)
{
    struct stat_probe *p = user;
    if (!strcmp(name, p->name)) {
        p->value = value;
        p->found = 1;
    }
}

static uint64_t stat_of(kvt_tier_impl *t, const char *name)
{
    struct stat_probe p = {name, 0, 0};
    nv->stats(t, probe_cb, &p);
    cr_assert(p.found, "stat %s missing", name);
    return p.value;
}

static uint8_t *file_bytes(const char *p, size_t *len)
{
    int fd = open(p, O_RDONLY);
    cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        cr_assert(r > 0);
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return b;
}

static void write_file(const char *p, const void *data, size_t len)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0, "create %s: %s", p, strerror(errno));
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* ---------------------------------------------------------------- buffers */

enum mode { ALIGNED, SEPARATE, UNALIGNED, HOST_REGION, MODES };
static const char *const mode_name[MODES] = {"aligned", "separate", "unaligned", "host_region"};

/* nblocks blocks of caller memory for one direction, laid out per mode. */
struct bufs {
    uint64_t block_bytes;
    uint32_t nfrags, nblocks;
    void **frags;      /* nblocks * nfrags pointers */
    void *mem;         /* ALIGNED/UNALIGNED: the one allocation */
    void **separate;   /* SEPARATE: one allocation per fragment */
};

static void bufs_init(struct bufs *b, enum mode m, uint64_t bb, uint32_t nfrags, uint32_t n,
                      uint8_t *region)
{
    uint64_t fs = bb / nfrags;
    memset(b, 0, sizeof *b);
    b->block_bytes = bb;
    b->nfrags = nfrags;
    b->nblocks = n;
    b->frags = calloc((size_t)n * nfrags, sizeof *b->frags);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t f = 0; f < nfrags; f++) {
            size_t k = (size_t)i * nfrags + f;
            switch (m) {
            case ALIGNED:
                if (!b->mem)
                    b->mem = abuf(bb * n);
                b->frags[k] = (uint8_t *)b->mem + i * bb + f * fs;
                break;
            case HOST_REGION:
                b->frags[k] = region + i * bb + f * fs;
                break;
            case UNALIGNED:
                /* Every fragment at an odd address: all of it bounces. */
                if (!b->mem)
                    b->mem = malloc((fs + 8) * n * nfrags + 8);
                b->frags[k] = (uint8_t *)b->mem + k * (fs + 8) + 1 + k % 7;
                break;
            case SEPARATE:
                if (!b->separate)
                    b->separate = calloc((size_t)n * nfrags, sizeof *b->separate);
                b->separate[k] = abuf((fs + 4095) / 4096 * 4096);
                b->frags[k] = b->separate[k];
                break;
            default:
                break;
            }
        }
}

static void bufs_free(struct bufs *b)
{
    if (b->separate)
        for (size_t k = 0; k < (size_t)b->nblocks * b->nfrags; k++)
            free(b->separate[k]);
    free(b->separate);
    free(b->mem);
    free(b->frags);
}

static void bufs_fill(struct bufs *b, uint64_t *s)
{
    uint64_t fs = b->block_bytes / b->nfrags;
    for (size_t k = 0; k < (size_t)b->nblocks * b->nfrags; k++)
        fill_random(b->frags[k], fs, s);
}

static void bufs_poison(struct bufs *b)
{
    uint64_t fs = b->block_bytes / b->nfrags;
    for (size_t k = 0; k < (size_t)b->nblocks * b->nfrags; k++)
        memset(b->frags[k], POISON, fs);
}

static void bufs_expect_equal(const struct bufs *a, const struct bufs *b, const char *what)
{
    uint64_t fs = a->block_bytes / a->nfrags;
    for (size_t k = 0; k < (size_t)a->nblocks * a->nfrags; k++)
        cr_assert(memcmp(a->frags[k], b->frags[k], fs) == 0,
                  "%s: block %zu fragment %zu differs", what, k / a->nfrags, k % a->nfrags);
}

static kvt_xfer *xfers(const struct bufs *b, const kvt_key *keys, uint32_t first_slot)
{
    kvt_xfer *x = calloc(b->nblocks, sizeof *x);
    for (uint32_t i = 0; i < b->nblocks; i++) {
        x[i].slot = first_slot + i;
        x[i].nfrags = b->nfrags;
        x[i].frags = b->frags + (size_t)i * b->nfrags;
        x[i].key = keys[i];
        x[i].status = 12345;
    }
    return x;
}

static void expect_status(const kvt_xfer *x, size_t n, int want, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(x[i].status, want, "%s: xfer %zu (slot %u) status %d (%s), want %d", what,
                     i, x[i].slot, x[i].status, kvt_error_name(x[i].status), want);
}

/* Writes n random blocks, reads them back in the same open and after a
 * reopen, all through memory of the given mode. */
static void round_trip(uint64_t bb, uint32_t nfrags, enum mode m, uint32_t n, uint64_t *s)
{
    unlink(path);
    uint8_t *region = NULL;
    size_t region_bytes = 0;
    kvt_tier_params p = params(bb, nfrags, n + 3);
    kvt__tier_params_set_int(&p, "queue_depth", 8);
    if (m == HOST_REGION) {
        region_bytes = (size_t)(bb * n * 2 + 4095) / 4096 * 4096;
        region = mmap(NULL, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
        cr_assert(region != MAP_FAILED);
        p.host_region = region;
        p.host_region_bytes = region_bytes;
    }
    struct bufs src, dst;
    bufs_init(&src, m, bb, nfrags, n, region);
    bufs_init(&dst, m, bb, nfrags, n, region ? region + bb * n : NULL);
    bufs_fill(&src, s);
    kvt_key *keys = malloc(n * sizeof *keys);
    for (uint32_t i = 0; i < n; i++)
        keys[i] = rand_key(s);

    char what[128];
    snprintf(what, sizeof what, "%llu-byte blocks, %u frags, %s", (unsigned long long)bb, nfrags,
             mode_name[m]);
    kvt_tier_impl *t = open_ok(&p);
    if (m == HOST_REGION)
        cr_expect_eq(stat_of(t, "nvme.fixed_host"), 1, "%s: host region not registered", what);
    kvt_xfer *w = xfers(&src, keys, 2);
    cr_assert_eq(nv->write(t, w, n, KVT_MEM_HOST), 0, "%s: write: %s", what, kvt_last_error());
    expect_status(w, n, 0, what);
    bufs_poison(&dst);
    kvt_xfer *r = xfers(&dst, keys, 2);
    cr_assert_eq(nv->read(t, r, n, KVT_MEM_HOST), 0, "%s: read: %s", what, kvt_last_error());
    expect_status(r, n, 0, what);
    bufs_expect_equal(&src, &dst, what);
    cr_expect_eq(stat_of(t, "nvme.writes"), n);
    cr_expect_eq(stat_of(t, "nvme.reads"), n);
    cr_expect_eq(stat_of(t, "nvme.bytes_written"), n * bb);
    /* Large direct reads are verified by the hashing threads (where there is
     * a CPU for them), every one of them; checksums of a write batch are
     * computed by whichever side takes the block first. */
    if (bb >= 128 * KIB && m != UNALIGNED && sysconf(_SC_NPROCESSORS_ONLN) > 1)
        cr_expect_eq(stat_of(t, "nvme.verified_off_ring"), n, "%s: verified off the ring", what);
    cr_expect_leq(stat_of(t, "nvme.hashed_off_ring"), n);
    nv->close(t);

    t = open_ok(&p);
    bufs_poison(&dst);
    cr_assert_eq(nv->read(t, r, n, KVT_MEM_HOST), 0, "%s: read after reopen: %s", what,
                 kvt_last_error());
    bufs_expect_equal(&src, &dst, what);
    nv->close(t);

    free(w);
    free(r);
    free(keys);
    bufs_free(&src);
    bufs_free(&dst);
    if (region)
        munmap(region, region_bytes);
}

static void round_trips(uint64_t bb, const uint32_t *frag_counts, size_t nf, uint32_t n,
                        const char *test)
{
    uint64_t s = test_seed(test);
    for (size_t f = 0; f < nf; f++)
        for (int m = 0; m < MODES; m++)
            round_trip(bb, frag_counts[f], (enum mode)m, n, &s);
}

/* ------------------------------------------------------------- round trips */

Test(nvme, round_trip_4k)
{
    static const uint32_t fr[] = {1, 4};
    round_trips(4 * KIB, fr, 2, 64, "round_trip_4k");
}

Test(nvme, round_trip_64k)
{
    static const uint32_t fr[] = {1, 16};
    round_trips(64 * KIB, fr, 2, 32, "round_trip_64k");
}

Test(nvme, round_trip_256k)
{
    static const uint32_t fr[] = {1, 8};
    round_trips(256 * KIB, fr, 2, 16, "round_trip_256k");
}

Test(nvme, round_trip_2m, .timeout = 120)
{
    static const uint32_t fr[] = {1, 64};
    round_trips(2 * MIB, fr, 2, 8, "round_trip_2m");
}

Test(nvme, round_trip_odd_sizes)
{
    uint64_t s = test_seed("round_trip_odd_sizes");
    /* fragment sizes not a multiple of the device block: staged */
    round_trip(10000, 2, ALIGNED, 9, &s);
    /* a multiple of 512 but not of 4096: direct, payload not padded on media */
    round_trip(300 * KIB + 512, 1, ALIGNED, 5, &s);
    round_trip(300 * KIB + 512, 1, HOST_REGION, 5, &s);
    /* large and unaligned: staged in several bounce pieces */
    round_trip(2 * MIB + 8, 2, ALIGNED, 3, &s);
    round_trip(2 * MIB + 8, 2, UNALIGNED, 3, &s);
    round_trip(1, 1, UNALIGNED, 3, &s);
}

Test(nvme, host_region_over_many_blocks_with_queue_depth_1)
{
    uint64_t s = test_seed("host_region_qd1");
    uint64_t bb = 256 * KIB;
    uint32_t n = 24;
    size_t bytes = bb * n * 2;
    uint8_t *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    kvt_tier_params p = params(bb, 1, n);
    kvt__tier_params_set_int(&p, "queue_depth", 1);
    p.host_region = region;
    p.host_region_bytes = bytes;
    kvt_tier_impl *t = open_ok(&p);
    struct bufs src, dst;
    bufs_init(&src, HOST_REGION, bb, 1, n, region);
    bufs_init(&dst, HOST_REGION, bb, 1, n, region + bb * n);
    bufs_fill(&src, &s);
    bufs_poison(&dst);
    kvt_key *keys = malloc(n * sizeof *keys);
    for (uint32_t i = 0; i < n; i++)
        keys[i] = rand_key(&s);
    kvt_xfer *w = xfers(&src, keys, 0), *r = xfers(&dst, keys, 0);
    cr_assert_eq(nv->write(t, w, n, KVT_MEM_HOST), 0, "%s", kvt_last_error());
    cr_assert_eq(nv->read(t, r, n, KVT_MEM_HOST), 0, "%s", kvt_last_error());
    bufs_expect_equal(&src, &dst, "qd 1");
    cr_expect_eq(stat_of(t, "nvme.queue_depth"), 1);
    nv->close(t);
    free(w);
    free(r);
    free(keys);
    bufs_free(&src);
    bufs_free(&dst);
    munmap(region, bytes);
}

/* -------------------------------------------------------------- threads */

struct worker {
    kvt_tier_impl *t;
    uint64_t bb, seed;
    uint32_t first, count;
    int errors;
    char msg[256];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t s = w->seed;
    uint8_t *src = abuf(w->bb * w->count);
    uint8_t *dst = abuf(w->bb * w->count);
    kvt_xfer *x = calloc(w->count, sizeof *x);
    void **sp = calloc(w->count, sizeof *sp), **dp = calloc(w->count, sizeof *dp);
    kvt_key *keys = calloc(w->count, sizeof *keys);
    for (int round = 0; round < 6 && !w->errors; round++) {
        fill_random(src, w->bb * w->count, &s);
        memset(dst, POISON, w->bb * w->count);
        for (uint32_t i = 0; i < w->count; i++) {
            keys[i] = rand_key(&s);
            sp[i] = src + i * w->bb;
            dp[i] = dst + i * w->bb;
        }
        /* Batches of 4, writes then reads, so threads interleave on the rings. */
        for (int dir = 0; dir < 2; dir++)
            for (uint32_t b = 0; b < w->count; b += 4) {
                uint32_t k = w->count - b < 4 ? w->count - b : 4;
                for (uint32_t i = 0; i < k; i++) {
                    x[i].slot = w->first + b + i;
                    x[i].nfrags = 1;
                    x[i].frags = dir ? &dp[b + i] : &sp[b + i];
                    x[i].key = keys[b + i];
                }
                int rc = dir ? nv->read(w->t, x, k, KVT_MEM_HOST)
                             : nv->write(w->t, x, k, KVT_MEM_HOST);
                if (rc && !w->errors++)
                    snprintf(w->msg, sizeof w->msg, "round %d %s slot %u: %d %s", round,
                             dir ? "read" : "write", w->first + b, rc, kvt_last_error());
            }
        if (!w->errors && memcmp(src, dst, w->bb * w->count)) {
            w->errors++;
            snprintf(w->msg, sizeof w->msg, "round %d: bytes differ", round);
        }
    }
    free(src);
    free(dst);
    free(x);
    free(sp);
    free(dp);
    free(keys);
    return NULL;
}

static void threads_on_distinct_slots(uint64_t bb, uint32_t per_thread)
{
    enum { THREADS = 4 };
    uint64_t seed = test_seed("threads_on_distinct_slots");
    kvt_tier_params p = params(bb, 1, THREADS * per_thread);
    kvt__tier_params_set_int(&p, "queue_depth", 16);
    kvt_tier_impl *t = open_ok(&p);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].t = t;
        w[i].bb = bb;
        w[i].seed = seed + (uint64_t)i * 7919;
        w[i].first = (uint32_t)i * per_thread;
        w[i].count = per_thread;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++)
        cr_expect_eq(w[i].errors, 0, "%llu-byte blocks, thread %d: %s", (unsigned long long)bb,
                     i, w[i].msg);
    nv->close(t);
    unlink(path);
}

Test(nvme, threads_on_distinct_slots)
{
    threads_on_distinct_slots(4 * KIB, 32);
    threads_on_distinct_slots(256 * KIB, 12);
}

/* --------------------------------------------------------------- recovery */

struct seen {
    uint32_t nslots;
    kvt_key *keys;
    uint8_t *present;
    uint32_t count, dups;
    int drop_even;
};

static int visit(void *user, uint32_t slot, const kvt_key *key)
{
    struct seen *s = user;
    if (slot >= s->nslots)
        return 0;
    if (s->present[slot])
        s->dups++;
    s->present[slot] = 1;
    s->keys[slot] = *key;
    s->count++;
    return s->drop_even && slot % 2 == 0;
}

static struct seen seen_new(uint32_t nslots)
{
    struct seen s = {nslots, calloc(nslots, sizeof(kvt_key)), calloc(nslots, 1), 0, 0, 0};
    return s;
}

static void seen_free(struct seen *s)
{
    free(s->keys);
    free(s->present);
}

Test(nvme, recover_finds_exactly_the_written_blocks)
{
    uint64_t s = test_seed("recover_exact");
    const uint32_t n = 300;
    const uint64_t bb = 4 * KIB;
    kvt_tier_params p = params(bb, 1, n);
    kvt_tier_impl *t = open_ok(&p);
    kvt_key *want = calloc(n, sizeof *want);
    uint8_t *have = calloc(n, 1);
    uint8_t *data = abuf(bb * n);
    fill_random(data, bb * n, &s);
    /* Three passes: write random subsets (later writes replace the key),
     * then discard some. */
    for (int pass = 0; pass < 3; pass++) {
        for (uint32_t i = 0; i < n; i++) {
            if (next_rand(&s) % 3)
                continue;
            void *fp = data + i * bb;
            kvt_xfer x = {.slot = i, .nfrags = 1, .frags = &fp, .key = rand_key(&s)};
            cr_assert_eq(nv->write(t, &x, 1, KVT_MEM_HOST), 0, "%s", kvt_last_error());
            want[i] = x.key;
            have[i] = 1;
        }
    }
    /* Discarded in one batch, as a remove does. */
    uint32_t *gone = calloc(n, sizeof *gone), discarded = 0;
    cr_assert_not_null(gone);
    for (uint32_t i = 0; i < n; i++)
        if (have[i] && next_rand(&s) % 4 == 0) {
            gone[discarded++] = i;
            have[i] = 0;
        }
    cr_assert_gt(discarded, 0);
    cr_assert_eq(nv->discard(t, gone, discarded), 0, "%s", kvt_last_error());
    free(gone);
    uint32_t expected = 0;
    for (uint32_t i = 0; i < n; i++)
        expected += have[i];

    /* In the same open, then after a reopen. */
    for (int reopen = 0; reopen < 2; reopen++) {
        if (reopen) {
            nv->close(t);
            t = open_ok(&p);
        }
        struct seen sn = seen_new(n);
        cr_assert_eq(nv->recover(t, visit, &sn), 0, "%s", kvt_last_error());
        cr_expect_eq(sn.count, expected, "recovered %u blocks, wrote %u", sn.count, expected);
        cr_expect_eq(sn.dups, 0);
        for (uint32_t i = 0; i < n; i++) {
            cr_assert_eq(sn.present[i], have[i], "slot %u: recovered %d, written %d", i,
                         sn.present[i], have[i]);
            if (have[i])
                cr_assert(!memcmp(sn.keys[i].b, want[i].b, 16), "slot %u: wrong key", i);
        }
        cr_expect_eq(stat_of(t, "nvme.recovered"), expected);
        seen_free(&sn);
    }
    /* Every recovered block reads back with its bytes. */
    uint8_t *back = abuf(bb);
    for (uint32_t i = 0; i < n; i++) {
        if (!have[i])
            continue;
        void *fp = back;
        kvt_xfer x = {.slot = i, .nfrags = 1, .frags = &fp, .key = want[i]};
        cr_assert_eq(nv->read(t, &x, 1, KVT_MEM_HOST), 0, "slot %u: %s", i, kvt_last_error());
        cr_assert(!memcmp(back, data + i * bb, bb), "slot %u bytes", i);
    }
    nv->close(t);
    free(back);
    free(want);
    free(have);
    free(data);
}

Test(nvme, recover_visitor_can_give_slots_up)
{
    const uint32_t n = 40;
    const uint64_t bb = 64 * KIB;
    kvt_tier_params p = params(bb, 1, n);
    kvt_tier_impl *t = open_ok(&p);
    uint8_t *data = abuf(bb);
    memset(data, 7, bb);
    for (uint32_t i = 0; i < n; i++) {
        void *fp = data;
        kvt_xfer x = {.slot = i, .nfrags = 1, .frags = &fp};
        memset(x.key.b, (int)i, 16);
        cr_assert_eq(nv->write(t, &x, 1, KVT_MEM_HOST), 0);
    }
    struct seen sn = seen_new(n);
    sn.drop_even = 1;
    cr_assert_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, n);
    cr_expect_eq(stat_of(t, "nvme.recovered"), n / 2);
    seen_free(&sn);
    nv->close(t);
    t = open_ok(&p);
    sn = seen_new(n);
    cr_assert_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, n / 2);
    for (uint32_t i = 0; i < n; i++)
        cr_expect_eq(sn.present[i], i % 2, "slot %u", i);
    seen_free(&sn);
    nv->close(t);
    free(data);
}

Test(nvme, recover_on_a_fresh_file_finds_nothing)
{
    kvt_tier_params p = params(4 * KIB, 1, 100);
    kvt_tier_impl *t = open_ok(&p);
    struct seen sn = seen_new(100);
    cr_assert_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, 0);
    seen_free(&sn);
    nv->close(t);
}

/* Blocks whose write completed survive kill -9 of the writer. */
Test(nvme, completed_writes_survive_sigkill)
{
    uint64_t seed = test_seed("sigkill");
    const uint32_t n = 256;
    const uint64_t bb = 16 * KIB;
    kvt_tier_params p = params(bb, 1, n);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        kvt_tier_impl *t = NULL;
        uint32_t ns;
        if (nv->open(&p, &t, &ns))
            _exit(2);
        uint64_t s = seed;
        uint8_t *data = abuf(bb * 8);
        for (uint32_t b = 0;; b = (b + 8) % n) {
            kvt_xfer x[8];
            void *fp[8];
            fill_random(data, bb * 8, &s); /* the parent replays the same stream */
            for (int i = 0; i < 8; i++) {
                fp[i] = data + i * bb;
                x[i] = (kvt_xfer){.slot = b + (uint32_t)i, .nfrags = 1, .frags = &fp[i]};
                memcpy(x[i].key.b, data + i * bb, 16);
            }
            if (nv->write(t, x, 8, KVT_MEM_HOST))
                _exit(3);
            uint32_t done = b + 8; /* acknowledged up to here, in this lap */
            if (write(fds[1], &done, sizeof done) != sizeof done)
                _exit(4);
        }
    }
    close(fds[1]);
    /* Let it write for a while (several laps over the slots), then kill it. */
    uint32_t acks = 0, last = 0;
    while (acks < 150 && read(fds[0], &last, sizeof last) == sizeof last)
        acks++;
    kill(pid, SIGKILL);
    /* Drain acknowledgements the writer sent before dying. */
    while (read(fds[0], &last, sizeof last) == sizeof last)
        acks++;
    close(fds[0]);
    /* Reopen before reaping it, as a supervisor restarting a store would:
     * the open waits while the writer is still exiting (its lock descriptor
     * not closed yet). */
    kvt_tier_impl *t = open_ok(&p);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status), "writer exited with %d", WEXITSTATUS(status));

    /* Replay the writer's random stream to know each slot's last
     * acknowledged contents. */
    uint8_t *expect = calloc(n, bb);
    uint8_t *batch = malloc(bb * 8);
    uint64_t s = seed;
    for (uint32_t a = 0, b = 0; a < acks; a++, b = (b + 8) % n) {
        fill_random(batch, bb * 8, &s);
        memcpy(expect + (uint64_t)b * bb, batch, bb * 8);
    }
    uint32_t in_flight_first = (acks * 8) % n; /* the batch being written when killed */

    struct seen sn = seen_new(n);
    cr_assert_eq(nv->recover(t, visit, &sn), 0);
    uint8_t *back = abuf(bb);
    uint32_t checked = 0;
    for (uint32_t i = 0; i < n; i++) {
        int maybe_torn = i >= in_flight_first && i < in_flight_first + 8;
        if (acks * 8 >= n || i < acks * 8)
            cr_assert(sn.present[i] || maybe_torn, "slot %u acknowledged but not recovered", i);
        if (!sn.present[i])
            continue;
        void *fp = back;
        kvt_xfer x = {.slot = i, .nfrags = 1, .frags = &fp, .key = sn.keys[i]};
        int rc = nv->read(t, &x, 1, KVT_MEM_HOST);
        if (maybe_torn) {
            /* Either the new block, whole, or a detected failure. */
            cr_assert(rc == 0 || rc == KVT_ECORRUPT, "slot %u: %d", i, rc);
            if (rc == 0)
                cr_assert(!memcmp(back, sn.keys[i].b, 16));
            continue;
        }
        cr_assert_eq(rc, 0, "slot %u: %s", i, kvt_last_error());
        cr_assert(!memcmp(back, expect + (uint64_t)i * bb, bb), "slot %u: bytes differ", i);
        checked++;
    }
    cr_assert_gt(checked, n / 2);
    seen_free(&sn);
    nv->close(t);
    free(back);
    free(batch);
    free(expect);
}

/* ------------------------------------------------------------ media format */

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Reads the file as docs/nvme-format.md describes it, independently of
 * lib/tier/nvme/format.c: every field at its offset, both checksums, the
 * payload in place. */
Test(nvme, media_layout_matches_the_spec)
{
    uint64_t s = test_seed("media_layout");
    const uint64_t sizes[] = {4 * KIB, 300 * KIB + 512};
    for (int z = 0; z < 2; z++) {
        uint64_t bb = sizes[z], slot = kvt__nvme_slot_bytes_in(bb, 4096);
        unlink(path);
        kvt_tier_params p = params(bb, 2, 5);
        kvt__tier_params_set_int(&p, "unit", 4096); /* version 1; version 3: test_nvme_small.c */
        p.block_tokens = 32;
        kvt_tier_impl *t = open_ok(&p);
        uint8_t *data = abuf(bb);
        fill_random(data, bb, &s);
        void *fp[2] = {data, data + bb / 2};
        kvt_xfer x = {.slot = 3, .nfrags = 2, .frags = fp, .key = rand_key(&s)};
        cr_assert_eq(nv->write(t, &x, 1, KVT_MEM_HOST), 0);
        kvt_xfer y = x;
        y.slot = 4;
        cr_assert_eq(nv->write(t, &y, 1, KVT_MEM_HOST), 0);
        uint32_t four = 4;
        cr_assert_eq(nv->discard(t, &four, 1), 0);
        cr_expect_eq(stat_of(t, "nvme.fast_checksum") <= 1, 1);
        nv->close(t);

        size_t len;
        uint8_t *f = file_bytes(path, &len);
        cr_assert_eq(len, 4096 + 5 * slot);
        cr_expect(!memcmp(f, "KVTIERSB", 8));
        cr_expect_eq(le(f + 8, 4), 1);      /* format version */
        cr_expect_eq(le(f + 12, 4), 128);   /* header bytes */
        cr_expect_eq(le(f + 16, 4), 4096);  /* unit */
        cr_expect_eq(le(f + 24, 8), bb);
        cr_expect_eq(le(f + 32, 4), 32);    /* block_tokens */
        cr_expect_eq(le(f + 36, 4), 2);     /* frags */
        cr_expect_eq(le(f + 40, 8), slot);
        cr_expect_eq(le(f + 48, 8), 5);     /* slot count */
        cr_expect_eq(le(f + 56, 8), 4096);  /* slot 0 offset */
        cr_expect_eq(le(f + 120, 8), XXH3_64bits(f, 120), "superblock checksum");
        for (size_t i = 128; i < 4096; i++)
            cr_assert_eq(f[i], 0, "superblock byte %zu", i);

        const uint8_t *h = f + 4096 + 3 * slot;
        cr_expect(!memcmp(h, "KVTBLOCK", 8));
        cr_expect_eq(le(h + 8, 4), 1);
        cr_expect_eq(le(h + 12, 4), 128);
        cr_expect_eq(le(h + 16, 8), bb);
        cr_expect_eq(le(h + 24, 4), 32);
        cr_expect_eq(le(h + 28, 4), 2);
        cr_expect(!memcmp(h + 32, f + 64, 16), "store id");
        cr_expect(!memcmp(h + 48, x.key.b, 16), "key");
        cr_expect_eq(le(h + 64, 8), bb);
        cr_expect_eq(le(h + 72, 8), XXH3_64bits(data, bb), "payload checksum");
        cr_expect_eq(le(h + 88, 4), 3, "slot index");
        cr_expect_eq(le(h + 120, 8), XXH3_64bits(h, 120), "header checksum");
        for (size_t i = 128; i < 4096; i++)
            cr_assert_eq(h[i], 0, "header unit byte %zu", i);
        cr_expect(!memcmp(h + 4096, data, bb), "payload in place");
        /* The discarded slot's header no longer has its magic. */
        const uint8_t *d = f + 4096 + 4 * slot;
        for (size_t i = 0; i < 512; i++)
            cr_assert_eq(d[i], 0, "discarded header byte %zu", i);
        free(f);
        free(data);
    }
}

/* ------------------------------------------------------------ verification */

Test(nvme, wrong_key_or_empty_slot_is_corrupt_never_bytes)
{
    uint64_t s = test_seed("wrong_key");
    const uint64_t sizes[] = {4 * KIB, 256 * KIB};
    for (int z = 0; z < 2; z++) {
        uint64_t bb = sizes[z];
        unlink(path);
        kvt_tier_params p = params(bb, 1, 4);
        kvt_tier_impl *t = open_ok(&p);
        uint8_t *src = abuf(bb), *dbuf = abuf(bb + 64);
        /* The 4 KiB case reads into memory that can't do direct I/O, so it
         * is staged: a staged read verifies before it copies out. */
        uint8_t *dst = bb == 4 * KIB ? dbuf + 64 : dbuf;
        fill_random(src, bb, &s);
        void *sp = src, *dp = dst;
        kvt_key k = rand_key(&s), other = k;
        other.b[15] ^= 1;
        kvt_xfer w = {.slot = 1, .nfrags = 1, .frags = &sp, .key = k};
        cr_assert_eq(nv->write(t, &w, 1, KVT_MEM_HOST), 0);

        kvt_xfer r[3] = {
            {.slot = 1, .nfrags = 1, .frags = &dp, .key = other}, /* wrong key */
            {.slot = 2, .nfrags = 1, .frags = &dp, .key = k},     /* never written */
            {.slot = 0, .nfrags = 1, .frags = &dp, .key = k},     /* never written */
        };
        memset(dst, POISON, bb);
        cr_assert_eq(nv->read(t, r, 3, KVT_MEM_HOST), KVT_ECORRUPT);
        expect_status(r, 3, KVT_ECORRUPT, "wrong key / empty");
        if (bb == 4 * KIB) /* staged: nothing copied out of a failed read */
            for (uint64_t i = 0; i < bb; i++)
                cr_assert_eq(dst[i], POISON, "byte %llu written on a failed read",
                             (unsigned long long)i);
        cr_expect_eq(stat_of(t, "nvme.corrupt"), 3);
        cr_expect_eq(stat_of(t, "nvme.reads"), 0);

        kvt_xfer ok = {.slot = 1, .nfrags = 1, .frags = &dp, .key = k};
        cr_assert_eq(nv->read(t, &ok, 1, KVT_MEM_HOST), 0);
        cr_assert(!memcmp(src, dst, bb));
        /* The slot belongs to the slot index it was written for. */
        nv->close(t);
        free(src);
        free(dbuf);
    }
}

Test(nvme, bad_xfers_get_their_status_others_complete)
{
    const uint64_t bb = 64 * KIB;
    kvt_tier_params p = params(bb, 4, 8);
    kvt_tier_impl *t = open_ok(&p);
    uint8_t *a = abuf(bb), *b = abuf(bb);
    memset(a, 0x3c, bb);
    void *fa[4] = {a, a + bb / 4, a + bb / 2, a + 3 * bb / 4};
    void *fnull[2] = {a, NULL};
    void *fb = b;
    kvt_xfer x[5] = {
        {.slot = 0, .nfrags = 4, .frags = fa},
        {.slot = 8, .nfrags = 4, .frags = fa},     /* out of range */
        {.slot = 1, .nfrags = 3, .frags = fa},     /* does not divide */
        {.slot = 2, .nfrags = 2, .frags = fnull},  /* NULL fragment */
        {.slot = 3, .nfrags = 1, .frags = &fb},    /* another split of the same bytes */
    };
    memset(b, 0x3c, bb);
    int rc = nv->write(t, x, 5, KVT_MEM_HOST);
    cr_expect_eq(rc, KVT_EINVAL);
    cr_expect_eq(x[0].status, 0);
    cr_expect_eq(x[1].status, KVT_EINVAL);
    cr_expect_eq(x[2].status, KVT_EFRAGS);
    cr_expect_eq(x[3].status, KVT_ENULL);
    cr_expect_eq(x[4].status, 0);
    /* Read slot 0 (written in 4 fragments) as one fragment: same bytes. */
    memset(b, 0, bb);
    kvt_xfer r = {.slot = 0, .nfrags = 1, .frags = &fb};
    cr_assert_eq(nv->read(t, &r, 1, KVT_MEM_HOST), 0);
    cr_assert(!memcmp(a, b, bb));
    kvt_xfer c = {.slot = 0, .nfrags = 1, .frags = &fb};
    cr_expect_eq(nv->read(t, &c, 1, KVT_MEM_CUDA), KVT_EMEMKIND);
    cr_expect_eq(c.status, KVT_EMEMKIND);
    uint32_t eight = 8;
    cr_expect_eq(nv->discard(t, &eight, 1), KVT_EINVAL);
    cr_expect_eq(nv->write(t, x, 0, KVT_MEM_HOST), 0);
    nv->close(t);
    free(a);
    free(b);
}

/* ---------------------------------------------------------- refused paths */

Test(nvme, directory_is_refused)
{
    kvt_tier_params p = params(4 * KIB, 1, 4);
    kvt__tier_params_set_str(&p, "path", dir);
    cr_expect_eq(open_rc(&p), KVT_EPATH, "%s", kvt_last_error());
    kvt__tier_params_set_str(&p, "path", "");
    cr_expect_eq(open_rc(&p), KVT_EPATH);
    kvt__tier_params_set_str(&p, "path", NULL);
    cr_expect_eq(open_rc(&p), KVT_EPATH);
}

Test(nvme, unwritable_path_is_refused)
{
    kvt_tier_params p = params(4 * KIB, 1, 4);
    /* A path whose directory does not exist. */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no/such/dir/tier.kvt", dir);
    kvt__tier_params_set_str(&p, "path", missing);
    cr_expect_eq(open_rc(&p), KVT_EPATH, "%s", kvt_last_error());

    /* An existing file we may not write. Tests often run as root, which
     * ignores permission bits; the immutable attribute stops root too. */
    kvt__tier_params_set_str(&p, "path", path);
    write_file(path, "x", 1);
    int fd = open(path, O_RDONLY);
    int attr = 0;
    int immutable = ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0 &&
                    (attr |= FS_IMMUTABLE_FL, ioctl(fd, FS_IOC_SETFLAGS, &attr) == 0);
    close(fd);
    if (!immutable) {
        if (geteuid() == 0)
            cr_skip_test("running as root on a filesystem without the immutable attribute "
                         "(or without CAP_LINUX_IMMUTABLE): cannot make an unwritable file");
        chmod(path, 0400);
    }
    size_t before_len, after_len;
    uint8_t *before = file_bytes(path, &before_len);
    cr_expect_eq(open_rc(&p), KVT_EPATH, "%s", kvt_last_error());
    cr_expect(strstr(kvt_last_error(), "not writable") != NULL, "%s", kvt_last_error());
    uint8_t *after = file_bytes(path, &after_len);
    cr_expect(before_len == after_len && !memcmp(before, after, before_len));
    free(before);
    free(after);
}

Test(nvme, tmpfs_is_refused_and_left_clean)
{
    struct statfs fs;
    if (statfs("/dev/shm", &fs) || fs.f_type != 0x01021994)
        cr_skip_test("/dev/shm is not a tmpfs here");
    char shm[128];
    snprintf(shm, sizeof shm, "/dev/shm/kvtier-nvme-test-%d", (int)getpid());
    kvt_tier_params p = params(4 * KIB, 1, 4);
    kvt__tier_params_set_str(&p, "path", shm);
    cr_expect_eq(open_rc(&p), KVT_ENODIRECT, "%s", kvt_last_error());
    cr_expect(access(shm, F_OK) != 0, "a refused open left %s behind", shm);
    unlink(shm);
}

Test(nvme, file_smaller_than_superblock)
{
    char junk[100];
    memset(junk, 'j', sizeof junk);
    write_file(path, junk, sizeof junk);
    kvt_tier_params p = params(4 * KIB, 1, 4);
    cr_expect_eq(open_rc(&p), KVT_ETOOSMALL, "%s", kvt_last_error());
    size_t len;
    uint8_t *b = file_bytes(path, &len);
    cr_expect(len == sizeof junk && !memcmp(b, junk, len), "file changed");
    free(b);
    kvt__tier_params_set_int(&p, "recreate", 1);
    cr_expect_eq(open_rc(&p), 0, "%s", kvt_last_error());
}

Test(nvme, other_format_is_refused_untouched)
{
    uint64_t s = test_seed("other_format");
    size_t glen = 64 * KIB;
    uint8_t *garbage = malloc(glen);
    fill_random(garbage, glen, &s);
    write_file(path, garbage, glen);
    struct stat st0, st1;
    stat(path, &st0);
    kvt_tier_params p = params(4 * KIB, 1, 4);
    cr_expect_eq(open_rc(&p), KVT_EFORMAT, "%s", kvt_last_error());
    size_t len;
    uint8_t *b = file_bytes(path, &len);
    stat(path, &st1);
    cr_expect(len == glen && !memcmp(b, garbage, glen), "file bytes changed");
    cr_expect(st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
              st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec, "file modified");
    free(b);
    kvt__tier_params_set_int(&p, "recreate", 1);
    kvt_tier_impl *t = open_ok(&p);
    struct seen sn = seen_new(4);
    cr_expect_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, 0);
    seen_free(&sn);
    nv->close(t);
    kvt__tier_params_set_int(&p, "recreate", 0);
    cr_expect_eq(open_rc(&p), 0, "a recreated file reopens: %s", kvt_last_error());
    free(garbage);
}

/* A valid superblock of another version, or with a bad checksum: EFORMAT. */
Test(nvme, other_version_or_bad_superblock_checksum)
{
    kvt_tier_params p = params(4 * KIB, 1, 4);
    cr_assert_eq(open_rc(&p), 0);
    size_t len;
    uint8_t *orig = file_bytes(path, &len);
    for (int variant = 0; variant < 2; variant++) {
        uint8_t *b = malloc(len);
        memcpy(b, orig, len);
        if (variant == 0) {
            b[8] = 2; /* format version 2, checksum recomputed */
            uint64_t sum = XXH3_64bits(b, 120);
            for (int i = 0; i < 8; i++)
                b[120 + i] = (uint8_t)(sum >> (8 * i));
        } else {
            b[24] ^= 0x10; /* block_bytes, checksum left stale */
        }
        write_file(path, b, len);
        cr_expect_eq(open_rc(&p), KVT_EFORMAT, "variant %d: %s", variant, kvt_last_error());
        size_t l2;
        uint8_t *after = file_bytes(path, &l2);
        cr_expect(l2 == len && !memcmp(after, b, len), "variant %d: file changed", variant);
        free(after);
        free(b);
    }
    free(orig);
}

Test(nvme, other_geometry_is_refused_untouched)
{
    uint64_t s = test_seed("other_geometry");
    kvt_tier_params p = params(4 * KIB, 1, 8);
    kvt_tier_impl *t = open_ok(&p);
    uint8_t *data = abuf(4 * KIB);
    fill_random(data, 4 * KIB, &s);
    void *fp = data;
    kvt_xfer x = {.slot = 3, .nfrags = 1, .frags = &fp, .key = rand_key(&s)};
    cr_assert_eq(nv->write(t, &x, 1, KVT_MEM_HOST), 0);
    nv->close(t);
    size_t len;
    uint8_t *before = file_bytes(path, &len);

    kvt_tier_params v[5] = {p, p, p, p, p};
    v[0].block_bytes = 8 * KIB;
    v[0].capacity = kvt__nvme_slot_bytes(8 * KIB) * 8;
    v[1].frags = 2;
    v[2].block_tokens = 32;
    v[3].capacity = p.capacity * 2;
    v[4].block_bytes = 4 * KIB - 512; /* same slot size, other block size */
    for (int i = 0; i < 5; i++) {
        int rc = open_rc(&v[i]);
        cr_expect_eq(rc, KVT_EGEOMETRY, "variant %d: %d %s", i, rc, kvt_last_error());
        size_t l2;
        uint8_t *after = file_bytes(path, &l2);
        cr_expect(l2 == len && !memcmp(after, before, len), "variant %d changed the file", i);
        free(after);
    }
    cr_expect(strstr(kvt_last_error(), "recreate") != NULL, "%s", kvt_last_error());
    /* The original geometry still opens and finds its block. */
    t = open_ok(&p);
    struct seen sn = seen_new(8);
    cr_expect_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, 1);
    seen_free(&sn);
    nv->close(t);
    /* recreate keeps a compatible file as it is. */
    kvt_tier_params keep = p;
    kvt__tier_params_set_int(&keep, "recreate", 1);
    t = open_ok(&keep);
    sn = seen_new(8);
    cr_expect_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, 1, "recreate dropped a compatible file");
    seen_free(&sn);
    nv->close(t);
    /* Recreated with more slots of the same size: the old header still sits
     * where slot 3 is, but belongs to the old store. */
    kvt__tier_params_set_int(&v[3], "recreate", 1);
    t = open_ok(&v[3]);
    sn = seen_new(16);
    cr_expect_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, 0, "a block of the previous store was recovered");
    seen_free(&sn);
    nv->close(t);
    /* recreate rebuilds for the new geometry; the old block is gone. */
    kvt__tier_params_set_int(&v[0], "recreate", 1);
    t = open_ok(&v[0]);
    sn = seen_new(8);
    cr_expect_eq(nv->recover(t, visit, &sn), 0);
    cr_expect_eq(sn.count, 0);
    seen_free(&sn);
    nv->close(t);
    struct stat st;
    stat(path, &st);
    cr_expect_eq((uint64_t)st.st_size, kvt__nvme_file_bytes(8 * KIB, 8));
    free(before);
    free(data);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Opens p, timing it: the return code into *rc, the seconds taken back. */
static double timed_open(const kvt_tier_params *p, kvt_tier_impl **t, int *rc)
{
    uint32_t n;
    *t = NULL;
    double t0 = mono_s();
    *rc = nv->open(p, t, &n);
    return mono_s() - t0;
}

/* The lock tests bound a refusal by this many seconds: far above what an
 * open of a small file takes, far below the 5 s an open waits for a previous
 * store's I/O to drain. */
#define LOCK_PROMPT_S 1.0
/* The tier's LOCK_WAIT_MS, in seconds. */
#define LOCK_WAIT_S 5.0

Test(nvme, second_open_is_locked_out)
{
    kvt_tier_params p = params(4 * KIB, 1, 4);
    kvt_tier_impl *t = open_ok(&p), *u;
    int rc;
    double took = timed_open(&p, &u, &rc);
    cr_expect_eq(rc, KVT_ELOCKED, "%s", kvt_last_error());
    cr_expect(strstr(kvt_last_error(), "another store of this process") != NULL, "%s",
              kvt_last_error());
    cr_expect_lt(took, LOCK_PROMPT_S, "a second open in the same process took %.2f s", took);
    if (!rc)
        nv->close(u);
    nv->close(t);
    t = open_ok(&p);
    nv->close(t);
}

/* How writer_child's grandchild is made. */
enum holder_kind {
    NO_HOLDER,
    FORKED_HOLDER, /* fork(): inherits every descriptor, runs the fork handlers */
    RING_HOLDER,   /* raw clone(), no fork handlers: keeps only the store's rings */
};

/* A child that opens p, writes to it without end (so that it dies with I/O
 * in flight), and tells the caller once open; with a holder it first makes
 * a grandchild that sleeps, whose pid goes to *holder. */
static pid_t writer_child(const kvt_tier_params *p, enum holder_kind kind, pid_t *holder)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        kvt_tier_impl *t = NULL;
        uint32_t ns;
        if (nv->open(p, &t, &ns))
            _exit(2);
        pid_t g = 0;
        if (kind == FORKED_HOLDER) {
            /* fork() returns here before the grandchild has run at all, and
             * its fork handlers run only when it does: on a loaded machine
             * that can be after the writer was killed, and the grandchild
             * still holds the store's descriptions meanwhile. Wait until it
             * is out of fork(): its handlers have run. */
            int ready[2];
            char c = 0;
            if (pipe(ready))
                _exit(3);
            g = fork();
            if (g == 0) {
                if (write(ready[1], &c, 1) != 1)
                    _exit(4);
                for (;;)
                    pause();
            }
            if (g < 0 || read(ready[0], &c, 1) != 1)
                _exit(5);
        } else if (kind == RING_HOLDER) {
            struct stat st;
            int ready[2];
            char c = 0;
            if (stat(kvt__tier_opt_str(p, "path"), &st) || pipe(ready))
                _exit(3);
            /* A multithreaded parent: only syscalls in the grandchild. */
            g = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
            if (g == 0) {
                for (int fd = 3; fd < 4096; fd++) {
                    struct stat fs;
                    if (fstat(fd, &fs) == 0 && fs.st_dev == st.st_dev && fs.st_ino == st.st_ino)
                        close(fd);
                }
                if (write(ready[1], &c, 1) != 1)
                    _exit(4);
                for (;;)
                    pause();
            }
            if (g < 0 || read(ready[0], &c, 1) != 1)
                _exit(5);
        }
        if (write(fds[1], &g, sizeof g) != sizeof g)
            _exit(4);
        uint8_t *data = abuf(p->block_bytes * 8);
        memset(data, 7, p->block_bytes * 8);
        for (uint32_t b = 0;; b = (b + 8) % 64) {
            kvt_xfer x[8];
            void *fp[8];
            for (int i = 0; i < 8; i++) {
                fp[i] = data + i * p->block_bytes;
                x[i] = (kvt_xfer){.slot = b + (uint32_t)i, .nfrags = 1, .frags = &fp[i]};
                x[i].key.b[0] = (uint8_t)(b + i);
            }
            nv->write(t, x, 8, KVT_MEM_HOST);
        }
    }
    close(fds[1]);
    pid_t g = -1;
    cr_assert_eq(read(fds[0], &g, sizeof g), (ssize_t)sizeof g, "the writer did not open");
    close(fds[0]);
    if (holder)
        *holder = g;
    usleep(20000); /* let it get I/O in flight */
    return pid;
}

static void kill_and_reap(pid_t pid)
{
    int status;
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "writer exited with %d", WEXITSTATUS(status));
}

/* kill -9 of the store's process frees the file: its owner lock goes with the
 * process, its I/O lock once the kernel has torn its rings down; the next
 * open waits for the latter (well within the bound) and succeeds. */
Test(nvme, dead_owner_lock_is_free_at_once)
{
    kvt_tier_params p = params(64 * KIB, 1, 64);
    for (int round = 0; round < 3; round++) {
        kill_and_reap(writer_child(&p, NO_HOLDER, NULL));
        kvt_tier_impl *t;
        int rc;
        double took = timed_open(&p, &t, &rc);
        cr_assert_eq(rc, 0, "round %d: open after kill -9: %d %s", round, rc, kvt_last_error());
        fprintf(stderr, "dead_owner_lock_is_free_at_once: round %d opened in %.3f s\n", round,
                took);
        nv->close(t);
    }
}

/* A process forked by the store's process inherits its descriptors and
 * rings; once it has run (its fork handlers with it), it must not keep the
 * store locked after the store's process is gone (neither lock: KVT_ELOCKED
 * at once for the owner lock, after 5 s for the I/O lock). */
Test(nvme, lock_is_not_kept_by_a_forked_child)
{
    kvt_tier_params p = params(64 * KIB, 1, 64);
    pid_t holder = 0;
    pid_t pid = writer_child(&p, FORKED_HOLDER, &holder);
    cr_assert_gt(holder, 0);
    kill_and_reap(pid);
    cr_assert_eq(kill(holder, 0), 0, "the inheriting child is gone too early");
    kvt_tier_impl *t;
    int rc;
    double took = timed_open(&p, &t, &rc);
    kill(holder, SIGKILL);
    cr_assert_eq(rc, 0, "open with the dead owner's child alive: %d %s (%.2f s)", rc,
                 kvt_last_error(), took);
    nv->close(t);
}

/* A live store in another process: KVT_ELOCKED at once (the owner lock), not
 * after waiting for its I/O. */
Test(nvme, live_owner_is_refused_at_once)
{
    kvt_tier_params p = params(64 * KIB, 1, 64);
    pid_t pid = writer_child(&p, NO_HOLDER, NULL);
    kvt_tier_impl *t;
    int rc;
    double took = timed_open(&p, &t, &rc);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kvt_last_error());
    kill_and_reap(pid);
    cr_assert_eq(rc, KVT_ELOCKED, "open beside a live store: %d %s", rc, msg);
    cr_expect_lt(took, LOCK_PROMPT_S, "refusal took %.2f s", took);
    cr_expect(strstr(msg, "in use by another store (another process") != NULL, "%s", msg);
    t = open_ok(&p);
    nv->close(t);
}

/* The I/O lock: after its owner died, a store's file is not written until
 * nothing references the description its rings do I/O through, so that a
 * late write of the dead store can't land over a block the next store wrote.
 * A real write can't be held in flight on demand; the stand-in is a process
 * that holds the dead store's io_uring instances (descriptors and mappings,
 * copied by a raw clone() that skips the fork handlers) and nothing else of
 * it, as the kernel does until it has torn the rings down. */
static void *kill_later(void *arg)
{
    usleep(500000);
    kill(*(pid_t *)arg, SIGKILL);
    return NULL;
}

Test(nvme, dead_owners_io_is_waited_for)
{
    kvt_tier_params p = params(64 * KIB, 1, 64);
    pid_t rings = 0;
    kill_and_reap(writer_child(&p, RING_HOLDER, &rings));
    cr_assert_gt(rings, 0);
    cr_assert_eq(kill(rings, 0), 0, "the ring holder is gone too early");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, kill_later, &rings), 0);
    kvt_tier_impl *t;
    int rc;
    double took = timed_open(&p, &t, &rc);
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "open once the rings went: %d %s", rc, kvt_last_error());
    cr_expect_geq(took, 0.5, "the open did not wait for the dead store's rings (%.3f s)", took);
    fprintf(stderr, "dead_owners_io_is_waited_for: opened after %.3f s\n", took);
    nv->close(t);
}

/* ...for at most 5 s: then KVT_ELOCKED, saying why; and the file opens once
 * the rings are gone. */
Test(nvme, undrained_io_is_refused_after_the_bound)
{
    kvt_tier_params p = params(64 * KIB, 1, 64);
    pid_t rings = 0;
    kill_and_reap(writer_child(&p, RING_HOLDER, &rings));
    cr_assert_gt(rings, 0);
    kvt_tier_impl *t;
    int rc;
    double took = timed_open(&p, &t, &rc);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kvt_last_error());
    kill(rings, SIGKILL);
    if (!rc)
        nv->close(t);
    cr_assert_eq(rc, KVT_ELOCKED, "open beside the dead store's rings: %d %s", rc, msg);
    cr_expect_geq(took, LOCK_WAIT_S - 0.01, "refused after %.2f s", took);
    cr_expect(strstr(msg, "has not drained") != NULL, "%s", msg);
    double again = timed_open(&p, &t, &rc);
    cr_assert_eq(rc, 0, "open after the rings went: %d %s (%.2f s)", rc, kvt_last_error(), again);
    nv->close(t);
}

Test(nvme, capacity_must_be_whole_slots)
{
    kvt_tier_params p = params(4 * KIB, 1, 10);
    p.capacity += 4096;
    cr_expect_eq(open_rc(&p), KVT_ECAPACITY);
    char want[64];
    snprintf(want, sizeof want, "%llu", (unsigned long long)kvt__nvme_slot_bytes(4 * KIB));
    cr_expect(strstr(kvt_last_error(), want) != NULL, "message lacks the slot size: %s",
              kvt_last_error());
    p.capacity = kvt__nvme_slot_bytes(4 * KIB) - 1;
    cr_expect_eq(open_rc(&p), KVT_ECAPACITY);
    p.capacity = 0;
    cr_expect_eq(open_rc(&p), KVT_ECAPACITY);
    cr_expect(access(path, F_OK) != 0, "a refused open created the file");
    /* Blocks under 256 KiB: 512-byte units (format version 3); the 4096-byte
     * layout of version 1 as before. */
    cr_expect_eq(kvt__nvme_slot_bytes(4096), 4608);
    cr_expect_eq(kvt__nvme_slot_bytes(4097), 5120);
    cr_expect_eq(kvt__nvme_slot_bytes_in(4096, 4096), 8192);
    cr_expect_eq(kvt__nvme_slot_bytes_in(4097, 4096), 12288);
    cr_expect_eq(kvt__nvme_slot_bytes(2 * MIB), 2 * MIB + 4096);
}

Test(nvme, created_file_is_private_and_preallocated)
{
    kvt_tier_params p = params(64 * KIB, 1, 10);
    kvt_tier_impl *t = open_ok(&p);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    cr_expect_eq((uint64_t)st.st_size, kvt__nvme_file_bytes(64 * KIB, 10));
    cr_expect_geq((uint64_t)st.st_blocks * 512, kvt__nvme_file_bytes(64 * KIB, 10),
                  "not preallocated");
    cr_expect_eq(stat_of(t, "nvme.slots"), 10);
    cr_expect_eq(stat_of(t, "nvme.slot_bytes"), 64 * KIB + 512);
    nv->close(t);
}

Test(nvme, empty_or_zeroed_file_is_formatted)
{
    write_file(path, "", 0);
    kvt_tier_params p = params(4 * KIB, 1, 4);
    cr_expect_eq(open_rc(&p), 0, "empty file: %s", kvt_last_error());
    uint8_t *zeros = calloc(1, 64 * KIB);
    write_file(path, zeros, 64 * KIB);
    cr_expect_eq(open_rc(&p), 0, "zeroed file: %s", kvt_last_error());
    free(zeros);
}

Test(nvme, symlink_rules)
{
    kvt_tier_params p = params(4 * KIB, 1, 4);
    char link[700], target[700];
    snprintf(link, sizeof link, "%s/link.kvt", dir);
    snprintf(target, sizeof target, "%s/target.kvt", dir);

    cr_assert_eq(symlink(target, link), 0);
    kvt__tier_params_set_str(&p, "path", link);
    cr_expect_eq(open_rc(&p), KVT_EPATH, "dangling: %s", kvt_last_error());
    cr_expect(access(target, F_OK) != 0, "created through a dangling symlink");

    write_file(target, "", 0);
    cr_expect_eq(open_rc(&p), 0, "own target: %s", kvt_last_error());

    if (geteuid() != 0)
        cr_skip_test("not root: cannot give the target to another user");
    cr_assert_eq(chown(target, 65534, 65534), 0);
    size_t len;
    uint8_t *before = file_bytes(target, &len);
    cr_expect_eq(open_rc(&p), KVT_EPATH, "foreign target: %s", kvt_last_error());
    cr_expect(strstr(kvt_last_error(), "symlink") != NULL, "%s", kvt_last_error());
    size_t l2;
    uint8_t *after = file_bytes(target, &l2);
    cr_expect(l2 == len && !memcmp(before, after, len));
    free(before);
    free(after);
    /* The same file by its own name is fine: the rule is about links. */
    kvt__tier_params_set_str(&p, "path", target);
    cr_expect_eq(open_rc(&p), 0, "%s", kvt_last_error());
}

Test(nvme, bad_parameters)
{
    kvt_tier_params p = params(4 * KIB, 1, 4);
    p.faults = "eio=2";
    cr_expect_eq(open_rc(&p), KVT_HAVE_FAULTS ? KVT_EINVAL : KVT_ENOTSUP);
    cr_expect(access(path, F_OK) != 0, "a refused open created the file");
    p.faults = NULL;
    kvt__tier_params_set_int(&p, "queue_depth", -1);
    cr_expect_eq(open_rc(&p), KVT_EINVAL);
    kvt__tier_params_set_int(&p, "queue_depth", 0);
    p.frags = 3;
    cr_expect_eq(open_rc(&p), KVT_EFRAGS);
    p.frags = 1;
    p.block_bytes = 0;
    cr_expect_eq(open_rc(&p), KVT_ESIZE);
    cr_expect_eq(nv->open(NULL, NULL, NULL), KVT_ENULL);
    nv->close(NULL);
}

Test(nvme, sqpoll_request_opens_with_or_without_it)
{
    uint64_t s = test_seed("sqpoll");
    kvt_tier_params p = params(64 * KIB, 1, 4);
    kvt__tier_params_set_int(&p, "sqpoll", 1);
    kvt_tier_impl *t = open_ok(&p);
    fprintf(stderr, "sqpoll granted: %llu\n", (unsigned long long)stat_of(t, "nvme.sqpoll"));
    uint8_t *a = abuf(64 * KIB), *b = abuf(64 * KIB);
    fill_random(a, 64 * KIB, &s);
    void *fa = a, *fb = b;
    kvt_xfer w = {.slot = 2, .nfrags = 1, .frags = &fa}, r = {.slot = 2, .nfrags = 1, .frags = &fb};
    cr_assert_eq(nv->write(t, &w, 1, KVT_MEM_HOST), 0);
    cr_assert_eq(nv->read(t, &r, 1, KVT_MEM_HOST), 0);
    cr_assert(!memcmp(a, b, 64 * KIB));
    cr_expect_eq(kvt__nvme_sync(t), 0);
    nv->close(t);
    free(a);
    free(b);
}

/* ----------------------------------------------------- format stability */

/*
 * tests/data/nvme-format-v1.kvt was written by the NVMe tier as it was
 * before lib/tier/nvme.c was split into lib/tier/nvme/ (commit 531d630):
 * block_bytes 8192, block_tokens 16, 2 fragments, 3 slots, key mode 0;
 * slots 0 and 2 hold blocks whose byte i is (slot * 31 + i * 7 + (i >> 8))
 * and whose key byte k is 0xA0 + slot * 16 + k; slot 1 was never written.
 * The format must not change: today's tier opens it, recovers exactly those
 * blocks and reads them back byte for byte.
 */
Test(nvme, file_written_before_the_split_opens_after)
{
    size_t len;
    uint8_t *old = file_bytes(KVT_SOURCE_ROOT "/tests/data/nvme-format-v1.kvt", &len);
    cr_assert_eq(len, kvt__nvme_file_bytes_in(8 * KIB, 3, 4096)); /* version 1 */
    write_file(path, old, len);
    kvt_tier_params p = params(8 * KIB, 2, 3);
    kvt_tier_impl *t = open_ok(&p);
    struct seen sn = seen_new(3);
    cr_assert_eq(nv->recover(t, visit, &sn), 0);
    cr_assert_eq(sn.count, 2, "recovered %u blocks", sn.count);
    uint8_t *blk = abuf(8 * KIB), *want = abuf(8 * KIB);
    for (uint32_t slot = 0; slot < 3; slot++) {
        kvt_key key;
        for (int k = 0; k < 16; k++)
            key.b[k] = (uint8_t)(0xA0 + slot * 16 + k);
        cr_assert_eq(sn.present[slot], slot != 1, "slot %u", slot);
        if (sn.present[slot])
            cr_assert(!memcmp(sn.keys[slot].b, key.b, 16), "slot %u: key", slot);
        for (int i = 0; i < (int)(8 * KIB); i++)
            want[i] = (uint8_t)(slot * 31 + i * 7 + (i >> 8));
        memset(blk, POISON, 8 * KIB);
        void *fr[2] = {blk, blk + 4 * KIB};
        kvt_xfer x = {.slot = slot, .nfrags = 2, .frags = fr, .key = key};
        int rc = nv->read(t, &x, 1, KVT_MEM_HOST);
        if (slot == 1) {
            cr_assert_eq(rc, KVT_ECORRUPT, "the empty slot read %d", rc);
            continue;
        }
        cr_assert_eq(rc, 0, "slot %u: %s", slot, kvt_last_error());
        cr_assert(!memcmp(blk, want, 8 * KIB), "slot %u: bytes differ", slot);
    }
    nv->close(t);
    /* Opening, recovering and reading changed nothing on media. */
    size_t len2;
    uint8_t *after = file_bytes(path, &len2);
    cr_assert(len2 == len && !memcmp(old, after, len), "the file changed");
    seen_free(&sn);
    free(old);
    free(after);
    free(blk);
    free(want);
}

#endif /* KVT_HAVE_URING */
