/* test_nvme_stripe.c — the NVMe tier striped across 2-4 files: round trips, recovery from every device, refused sets, a device missing at reopen. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "../tier_kinds.h"
#include "tier/nvme.h"
#include "tier/tier.h"

#define KIB ((uint64_t)1 << 10)
#define BB (64 * KIB)

#if !KVT_HAVE_URING
Test(nvme_stripe, unavailable)
{
    cr_skip_test("built without io_uring: there is no NVMe tier to test");
}
#else

static const kvt_tier_ops *const nv = &kvt__tier_nvme;

static char dir[512];

static void setup(void)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    snprintf(dir, sizeof dir, "%s/nvme-stripe-XXXXXX", root ? root : KVT_BUILD_ROOT);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
}

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(p);
    return 0;
}

static void teardown(void)
{
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(nvme_stripe, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ helpers */

/* "dir/<name>0,dir/<name>1,..." for n devices, each in a directory of its own. */
static char *paths_of(const char *name, unsigned n)
{
    static char buf[4][2048];
    static unsigned which;
    char *b = buf[which++ % 4];
    b[0] = 0;
    for (unsigned d = 0; d < n; d++) {
        char sub[700];
        snprintf(sub, sizeof sub, "%s/%s%u", dir, name, d);
        mkdir(sub, 0700);
        size_t len = strlen(b);
        snprintf(b + len, 2048 - len, "%s%s/dev", d ? "," : "", sub);
    }
    return b;
}

static char *device_path(const char *name, unsigned d)
{
    static char b[2][700];
    static unsigned which;
    char *p = b[which++ % 2];
    snprintf(p, 700, "%s/%s%u/dev", dir, name, d);
    return p;
}

static kvt_tier_params params(const char *paths, uint32_t nslots)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, &kvt__tier_nvme);
    p.name = "nvme";
    p.block_bytes = BB;
    p.block_tokens = 16;
    p.frags = 1;
    kvt__tier_params_set_str(&p, "path", paths);
    kvt__tier_params_set_int(&p, "queue_depth", 8);
    p.capacity = kvt__nvme_slot_bytes(BB) * nslots;
    return p;
}

static kvt_tier_impl *open_ok(const kvt_tier_params *p)
{
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    int rc = nv->open(p, &t, &n);
    cr_assert_eq(rc, 0, "open %s: %d %s", kvt__tier_opt_str(p, "path"), rc, kvt_last_error());
    cr_assert_eq((uint64_t)n, p->capacity / kvt__nvme_slot_bytes(BB));
    return t;
}

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

static void probe_fn(const char *name, uint64_t v, void *user)
{
    struct stat_probe *p = user;
    if (!strcmp(name, p->name)) {
        p->value = v;
        p->found = 1;
    }
}

static uint64_t stat_of(kvt_tier_impl *t, const char *name)
{
    struct stat_probe p = {name, 0, 0};
    nv->stats(t, probe_fn, &p);
    cr_assert(p.found, "no stat %s", name);
    return p.value;
}

/* Block i's bytes and key: a function of (i, gen). */
static void fill(uint8_t *b, uint32_t i, uint32_t gen)
{
    uint64_t s = ((uint64_t)gen << 32) | (i + 1);
    fill_random(b, BB, &s);
}

static kvt_key key_of(uint32_t i, uint32_t gen)
{
    kvt_key k;
    uint64_t s = ((uint64_t)(gen + 77) << 32) | (i + 1);
    fill_random(k.b, sizeof k.b, &s);
    return k;
}

/* Writes (or reads and checks) slots[0..n) holding blocks (slot, gen).
 * Returns the tier's rc; statuses in st (may be NULL). */
static int move(kvt_tier_impl *t, const uint32_t *slots, size_t n, uint32_t gen, int write,
                int *st)
{
    uint8_t *mem = aligned_alloc(4096, n * BB);
    uint8_t *want = malloc(BB);
    cr_assert(mem && want);
    kvt_xfer *x = calloc(n, sizeof *x);
    void **frag = calloc(n, sizeof *frag);
    for (size_t i = 0; i < n; i++) {
        frag[i] = mem + i * BB;
        if (write)
            fill(frag[i], slots[i], gen);
        else
            memset(frag[i], 0xEE, BB);
        x[i] = (kvt_xfer){.slot = slots[i], .nfrags = 1, .frags = &frag[i],
                          .key = key_of(slots[i], gen), .status = 12345};
    }
    int rc = write ? nv->write(t, x, n, KVT_MEM_HOST) : nv->read(t, x, n, KVT_MEM_HOST);
    for (size_t i = 0; i < n; i++) {
        if (st)
            st[i] = x[i].status;
        if (!write && x[i].status == 0) {
            fill(want, slots[i], gen);
            cr_assert(!memcmp(frag[i], want, BB), "slot %u: wrong bytes", slots[i]);
        }
    }
    free(mem);
    free(want);
    free(x);
    free(frag);
    return rc;
}

static uint32_t *all_slots(uint32_t n)
{
    uint32_t *s = malloc(n * sizeof *s);
    for (uint32_t i = 0; i < n; i++)
        s[i] = i;
    return s;
}

typedef struct found {
    uint32_t n, count;
    uint8_t *seen;
    uint32_t gen;
} found;

static int visit(void *user, uint32_t slot, const kvt_key *key)
{
    found *f = user;
    cr_assert_lt(slot, f->n, "recovered slot %u of %u", slot, f->n);
    cr_assert_not(f->seen[slot], "slot %u recovered twice", slot);
    kvt_key want = key_of(slot, f->gen);
    cr_assert(!memcmp(key->b, want.b, sizeof want.b), "slot %u: recovered another key", slot);
    f->seen[slot] = 1;
    f->count++;
    return 0;
}

static found recover_all(kvt_tier_impl *t, uint32_t n, uint32_t gen)
{
    found f = {.n = n, .seen = calloc(n, 1), .gen = gen};
    cr_assert_eq(nv->recover(t, visit, &f), 0, "recover: %s", kvt_last_error());
    return f;
}

static int sb_version(const char *path)
{
    uint8_t b[16];
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
    close(fd);
    return b[8] | b[9] << 8;
}

/* ------------------------------------------------------------------- tests */

/* 2, 3 and 4 devices, a slot count no device count divides: every slot
 * round-trips, lands on device slot % n, and comes back from every device
 * after a reopen. */
Test(nvme_stripe, round_trip_and_recovery)
{
    for (unsigned nd = 2; nd <= 4; nd++) {
        char name[16];
        snprintf(name, sizeof name, "rt%u_", nd);
        uint32_t n = 4 * nd + 1;
        kvt_tier_params p = params(paths_of(name, nd), n);
        kvt__tier_params_set_int(&p, "unit", 4096); /* the version-2 layout */
        kvt_tier_impl *t = open_ok(&p);
        cr_expect_eq(stat_of(t, "nvme.devices"), nd);
        cr_expect_eq(stat_of(t, "nvme.devices_degraded"), 0);
        cr_expect_eq(stat_of(t, "nvme.slots"), n);
        uint32_t *slots = all_slots(n);
        cr_assert_eq(move(t, slots, n, 1, 1, NULL), 0, "write: %s", kvt_last_error());
        cr_assert_eq(move(t, slots, n, 1, 0, NULL), 0, "read: %s", kvt_last_error());
        cr_expect_eq(stat_of(t, "nvme.writes"), n);
        cr_expect_eq(stat_of(t, "nvme.reads"), n);
        cr_assert_eq(nv->flush(t), 0);
        nv->close(t);
        for (unsigned d = 0; d < nd; d++) {
            struct stat st;
            cr_assert_eq(stat(device_path(name, d), &st), 0);
            uint64_t local = (n - d + nd - 1) / nd;
            cr_expect_eq((uint64_t)st.st_size, kvt__nvme_file_bytes_in(BB, local, 4096),
                         "device %u of %u: %llu bytes", d, nd, (unsigned long long)st.st_size);
            cr_expect_eq(sb_version(device_path(name, d)), 2);
        }
        t = open_ok(&p);
        found f = recover_all(t, n, 1);
        cr_expect_eq(f.count, n, "%u devices: recovered %u of %u", nd, f.count, n);
        cr_expect_eq(stat_of(t, "nvme.recovered"), n);
        cr_assert_eq(move(t, slots, n, 1, 0, NULL), 0, "read after reopen: %s", kvt_last_error());
        /* A discard on every device: none of them is recovered again. */
        uint32_t gone[4];
        for (unsigned d = 0; d < nd; d++)
            gone[d] = d;
        cr_assert_eq(nv->discard(t, gone, nd), 0, "%s", kvt_last_error());
        nv->close(t);
        t = open_ok(&p);
        free(f.seen);
        f = recover_all(t, n, 1);
        cr_expect_eq(f.count, n - nd);
        for (unsigned d = 0; d < nd; d++)
            cr_expect_not(f.seen[d], "discarded slot %u came back", d);
        free(f.seen);
        free(slots);
        nv->close(t);
    }
}

/* A single file keeps format version 1 and opens as before; a device of a
 * set refuses to open alone, and a single file refuses to be a device. */
Test(nvme_stripe, versions_refused_clearly)
{
    char single[700];
    snprintf(single, sizeof single, "%s/single.kvt", dir);
    kvt_tier_params p = params(single, 6);
    kvt__tier_params_set_int(&p, "unit", 4096); /* versions 1 and 2 */
    kvt_tier_impl *t = open_ok(&p);
    uint32_t *slots = all_slots(6);
    cr_assert_eq(move(t, slots, 6, 3, 1, NULL), 0);
    nv->close(t);
    cr_expect_eq(sb_version(single), 1);
    t = open_ok(&p);
    found f = recover_all(t, 6, 3);
    cr_expect_eq(f.count, 6);
    free(f.seen);
    cr_expect_eq(stat_of(t, "nvme.slots"), 6);
    nv->close(t);

    kvt_tier_params ps = params(paths_of("set", 2), 6);
    kvt__tier_params_set_int(&ps, "unit", 4096);
    nv->close(open_ok(&ps));
    kvt_tier_params alone = params(device_path("set", 1), 3);
    cr_expect_eq(open_rc(&alone), KVT_EFORMAT);
    cr_expect(strstr(kvt_last_error(), "device 2 of a 2-device stripe set"), "%s",
              kvt_last_error());

    char list[1500];
    snprintf(list, sizeof list, "%s,%s", single, device_path("set", 1));
    kvt_tier_params mixed = params(list, 6);
    cr_expect_eq(open_rc(&mixed), KVT_EGEOMETRY);
    cr_expect(strstr(kvt_last_error(), "single-device file"), "%s", kvt_last_error());
    /* Nothing was overwritten: the single file still holds its blocks. */
    t = open_ok(&p);
    f = recover_all(t, 6, 3);
    cr_expect_eq(f.count, 6);
    free(f.seen);
    nv->close(t);
    free(slots);
}

/* A set opened with another count, order, capacity, or with a device of
 * another set, is refused and left as it was. */
Test(nvme_stripe, geometry_mismatch)
{
    kvt_tier_params p = params(paths_of("g", 2), 8);
    kvt_tier_impl *t = open_ok(&p);
    uint32_t *slots = all_slots(8);
    cr_assert_eq(move(t, slots, 8, 5, 1, NULL), 0);
    nv->close(t);

    kvt_tier_params three = params(paths_of("g", 3), 9); /* g0, g1 and a new g2 */
    cr_expect_eq(open_rc(&three), KVT_EGEOMETRY);
    char swapped[1500];
    snprintf(swapped, sizeof swapped, "%s,%s", device_path("g", 1), device_path("g", 0));
    kvt_tier_params sw = params(swapped, 8);
    cr_expect_eq(open_rc(&sw), KVT_EGEOMETRY);
    cr_expect(strstr(kvt_last_error(), "device 2 of a 2-device"), "%s", kvt_last_error());
    kvt_tier_params bigger = params(kvt__tier_opt_str(&p, "path"), 10);
    cr_expect_eq(open_rc(&bigger), KVT_EGEOMETRY);

    kvt_tier_params other = params(paths_of("h", 2), 8);
    nv->close(open_ok(&other));
    char cross[1500];
    snprintf(cross, sizeof cross, "%s,%s", device_path("g", 0), device_path("h", 1));
    kvt_tier_params x = params(cross, 8);
    cr_expect_eq(open_rc(&x), KVT_EGEOMETRY);
    cr_expect(strstr(kvt_last_error(), "different stripe sets"), "%s", kvt_last_error());

    kvt_tier_params cross_re = x;
    kvt__tier_params_set_int(&cross_re, "recreate", 1);
    kvt_tier_impl *rebuilt = open_ok(&cross_re); /* h1 joins g's set, empty */
    found fr = recover_all(rebuilt, 8, 5);
    cr_expect_eq(fr.count, 4, "g0's blocks only");
    free(fr.seen);
    nv->close(rebuilt);
    rebuilt = open_ok(&x); /* and stays in it */
    nv->close(rebuilt);

    char dup[1500];
    snprintf(dup, sizeof dup, "%s,%s", device_path("g", 0), device_path("g", 0));
    kvt_tier_params twice = params(dup, 8);
    cr_expect_eq(open_rc(&twice), KVT_EPATH);

    t = open_ok(&p);
    found f = recover_all(t, 8, 5);
    cr_expect_eq(f.count, 8, "the refusals changed the set");
    free(f.seen);
    nv->close(t);
    free(slots);
}

/* A device whose path is gone at reopen takes only its slots out of
 * service: the others recover and serve, its slots answer KVT_EIO and are
 * not usable; a set cannot be created with a device missing. */
Test(nvme_stripe, device_missing_at_reopen)
{
    const unsigned nd = 3;
    const uint32_t n = 12;
    kvt_tier_params p = params(paths_of("m", nd), n);
    kvt_tier_impl *t = open_ok(&p);
    uint32_t *slots = all_slots(n);
    cr_assert_eq(move(t, slots, n, 7, 1, NULL), 0);
    nv->close(t);

    char gone[700];
    snprintf(gone, sizeof gone, "%s/m1", dir);
    cr_assert_eq(unlink(device_path("m", 1)), 0);
    cr_assert_eq(rmdir(gone), 0);
    t = open_ok(&p);
    cr_expect_eq(stat_of(t, "nvme.devices"), nd);
    cr_expect_eq(stat_of(t, "nvme.devices_degraded"), 1);
    cr_expect_eq(stat_of(t, "nvme.devices_missing"), 1);
    cr_expect_eq(stat_of(t, "nvme.slots_out_of_service"), n / nd);
    found f = recover_all(t, n, 7);
    cr_expect_eq(f.count, n - n / nd);
    for (uint32_t i = 0; i < n; i++) {
        cr_expect_eq(f.seen[i], i % nd != 1, "slot %u", i);
        cr_expect_eq(nv->slot_usable(t, i), i % nd != 1, "slot %u usable", i);
    }
    free(f.seen);
    int *st = calloc(n, sizeof *st);
    cr_expect_eq(move(t, slots, n, 7, 0, st), KVT_EIO);
    cr_expect(strstr(kvt_last_error(), "out of service"), "%s", kvt_last_error());
    for (uint32_t i = 0; i < n; i++)
        cr_expect_eq(st[i], i % nd == 1 ? KVT_EIO : 0, "slot %u: %d", i, st[i]);
    /* The others keep serving writes. */
    uint32_t live[2] = {0, 2};
    cr_expect_eq(move(t, live, 2, 8, 1, NULL), 0, "%s", kvt_last_error());
    cr_expect_eq(move(t, live, 2, 8, 0, NULL), 0, "%s", kvt_last_error());
    cr_expect_geq(stat_of(t, "nvme.degraded_rejects"), n / nd);
    nv->close(t);
    free(st);

    kvt_tier_params fresh = params(paths_of("new", 2), 4);
    snprintf(gone, sizeof gone, "%s/new1", dir);
    cr_assert_eq(rmdir(gone), 0);
    cr_expect_eq(open_rc(&fresh), KVT_EPATH);
    cr_expect(strstr(kvt_last_error(), "new stripe set"), "%s", kvt_last_error());
    free(slots);
}

/* A device replaced by a blank one (its file deleted) joins the set empty:
 * the others' blocks recover, and after the next reopen still do. */
Test(nvme_stripe, blank_device_rejoins)
{
    const uint32_t n = 8;
    kvt_tier_params p = params(paths_of("r", 2), n);
    kvt_tier_impl *t = open_ok(&p);
    uint32_t *slots = all_slots(n);
    cr_assert_eq(move(t, slots, n, 9, 1, NULL), 0);
    nv->close(t);
    cr_assert_eq(unlink(device_path("r", 0)), 0);
    t = open_ok(&p);
    cr_expect_eq(stat_of(t, "nvme.devices_degraded"), 0);
    found f = recover_all(t, n, 9);
    cr_expect_eq(f.count, n / 2);
    free(f.seen);
    uint32_t even[4] = {0, 2, 4, 6};
    cr_assert_eq(move(t, even, 4, 9, 1, NULL), 0);
    nv->close(t);
    t = open_ok(&p);
    f = recover_all(t, n, 9);
    cr_expect_eq(f.count, n);
    free(f.seen);
    nv->close(t);
    free(slots);
}

typedef struct worker {
    kvt_tier_impl *t;
    uint32_t first, n;
    int rc;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    uint32_t slots[8];
    for (int round = 0; round < 6 && !w->rc; round++) {
        for (uint32_t i = 0; i < w->n; i++)
            slots[i] = w->first + i;
        w->rc = move(w->t, slots, w->n, (uint32_t)round, 1, NULL);
        if (!w->rc)
            w->rc = move(w->t, slots, w->n, (uint32_t)round, 0, NULL);
    }
    return NULL;
}

/* Several threads' batches at once, each over every device: the set's
 * threads and the callers' share the parts, and every byte comes back. */
Test(nvme_stripe, threads)
{
    const unsigned nthreads = 4, per = 6;
    kvt_tier_params p = params(paths_of("th", 3), nthreads * per);
    kvt_tier_impl *t = open_ok(&p);
    worker w[4];
    pthread_t th[4];
    for (unsigned i = 0; i < nthreads; i++) {
        w[i] = (worker){.t = t, .first = i * per, .n = per};
        cr_assert_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(w[i].rc, 0, "thread %u: %d", i, w[i].rc);
    }
    cr_expect_eq(stat_of(t, "nvme.writes"), 6 * nthreads * per);
    nv->close(t);
}

/* Through the store: a missing device's slots stay off the free list, so
 * puts after a degraded reopen succeed on the devices that are there. */
Test(nvme_stripe, store_skips_out_of_service_slots)
{
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", BB, &slot), 0);
    char *paths = paths_of("st", 2);
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            char gone[700];
            snprintf(gone, sizeof gone, "%s/st1", dir);
            cr_assert_eq(unlink(device_path("st", 1)), 0);
            cr_assert_eq(rmdir(gone), 0);
        }
        kvt_config *c;
        kvt_store *s;
        cr_assert_eq(kvt_config_new(&c), 0);
        kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BB);
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(8 * slot));
        kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", paths);
        cr_assert_eq(kvt_open(c, &s), 0, "open: %s", kvt_last_error());
        kvt_config_free(c);
        uint8_t *b = aligned_alloc(4096, BB);
        for (uint32_t i = 0; i < 8; i++) {
            fill(b, i, 20 + round);
            kvt_key k = key_of(i, 20 + round);
            void *ptr = b;
            cr_assert_eq(kvt_put(s, &k, 1, &ptr, NULL, NULL), 1, "round %d put %u: %s", round,
                         i, kvt_last_error());
        }
        uint64_t errors = 0;
        kvt_stat(s, "nvme.io_errors", &errors);
        cr_expect_eq(errors, 0);
        free(b);
        kvt_close(s);
    }
}

#endif

/* A discard of a slot on an out-of-service device must not report success:
 * the block would come back once the device is back. */
Test(nvme_stripe, a_discard_on_an_out_of_service_device_fails)
{
    const unsigned nd = 2;
    const uint32_t n = 4;
    kvt_tier_params p = params(paths_of("z", nd), n);
    kvt_tier_impl *t = open_ok(&p);
    uint32_t *slots = all_slots(n);
    cr_assert_eq(move(t, slots, n, 7, 1, NULL), 0);
    nv->close(t);
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/z1", dir);
    snprintf(b, sizeof b, "%s/z1.away", dir);
    cr_assert_eq(rename(a, b), 0);
    t = open_ok(&p);
    int rc = nv->discard(t, slots, n);
    nv->close(t);
    cr_assert_eq(rename(b, a), 0);
    t = open_ok(&p);
    found f = recover_all(t, n, 7);
    cr_assert(rc != 0 || f.count == 0, "discard said 0 but %u of %u blocks came back", f.count, n);
    free(f.seen);
    nv->close(t);
    free(slots);
}
