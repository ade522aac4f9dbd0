/* test_nvme_loop.c — the NVMe tier striped across loop block devices: round trips and recovery, and a device failing under load. Skips (exit 77) without losetup or the rights to use it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "../tier_kinds.h"
#include "tier/nvme.h"
#include "tier/tier.h"

#define KIB ((uint64_t)1 << 10)
#define BB (128 * KIB)
#define MAX_LOOPS 4

#if !KVT_HAVE_URING
Test(nvme_loop, unavailable)
{
    cr_skip_test("built without io_uring: there is no NVMe tier to test");
}
#else

static const kvt_tier_ops *const nv = &kvt__tier_nvme;

static char dir[512];
static char loop_dev[MAX_LOOPS][64];
static char loop_file[MAX_LOOPS][700];
static unsigned nloops;

/* Runs a shell command, bounded: every losetup call goes through `timeout`. */
static int sh(const char *fmt, const char *a, char *out, size_t outlen)
{
    char cmd[1600];
    snprintf(cmd, sizeof cmd, fmt, a);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    if (out) {
        out[0] = 0;
        if (fgets(out, (int)outlen, f))
            out[strcspn(out, "\n")] = 0;
    }
    char sink[256];
    while (fgets(sink, sizeof sink, f))
        ;
    return pclose(f);
}

static void setup(void)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    snprintf(dir, sizeof dir, "%s/nvme-loop-XXXXXX", root ? root : KVT_BUILD_ROOT);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
    nloops = 0;
}

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(p);
    return 0;
}

/* Detaches every loop device this test attached (a busy one goes when its
 * last user closes it), then removes the files. */
static void teardown(void)
{
    for (unsigned i = 0; i < nloops; i++)
        if (loop_dev[i][0])
            sh("timeout 10 losetup -d %s 2>/dev/null", loop_dev[i], NULL, 0);
    nloops = 0;
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(nvme_loop, .init = setup, .fini = teardown, .timeout = 60);

/* A loop device over a new file of `bytes`, or NULL with *why set: then
 * the test skips. */
static const char *loop_attach_sectors(uint64_t bytes, unsigned sector, const char **why);

static const char *loop_attach(uint64_t bytes, const char **why)
{
    return loop_attach_sectors(bytes, 0, why);
}

/* The same with logical blocks of `sector` bytes (0: the driver's 512). */
static const char *loop_attach_sectors(uint64_t bytes, unsigned sector, const char **why)
{
    cr_assert_lt(nloops, MAX_LOOPS);
    if (geteuid() != 0) {
        *why = "loop devices need root";
        return NULL;
    }
    if (access("/dev/loop-control", R_OK | W_OK)) {
        *why = "no /dev/loop-control";
        return NULL;
    }
    if (sh("timeout 10 losetup --version >/dev/null 2>&1 && echo ok", "", loop_dev[nloops],
           sizeof loop_dev[nloops]) || strcmp(loop_dev[nloops], "ok")) {
        *why = "losetup is not available";
        return NULL;
    }
    unsigned i = nloops;
    snprintf(loop_file[i], sizeof loop_file[i], "%s/backing%u", dir, i);
    int fd = open(loop_file[i], O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)bytes), 0);
    close(fd);
    loop_dev[i][0] = 0;
    char cmd[900];
    snprintf(cmd, sizeof cmd, "timeout 10 losetup%s%.0u -f --show %s 2>/dev/null",
             sector ? " --sector-size " : "", sector, loop_file[i]);
    int rc = sh("%s", cmd, loop_dev[i], sizeof loop_dev[i]);
    if (rc || strncmp(loop_dev[i], "/dev/loop", 9)) {
        loop_dev[i][0] = 0;
        *why = "losetup -f could not attach a loop device here";
        return NULL;
    }
    nloops++;
    return loop_dev[i];
}

/* Attaches n devices for a set of `slots` slots; skips the test if it cannot. */
static char *attach_set(unsigned n, uint32_t slots)
{
    static char list[MAX_LOOPS * 64];
    list[0] = 0;
    for (unsigned d = 0; d < n; d++) {
        const char *why = NULL;
        uint64_t local = (slots - d + n - 1) / n;
        const char *dev = loop_attach(kvt__nvme_file_bytes(BB, local), &why);
        if (!dev)
            cr_skip_test("%s", why);
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s", d ? "," : "", dev);
    }
    return list;
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
    return t;
}

struct stat_probe {
    const char *name;
    uint64_t value;
};

static void probe_fn(const char *name, uint64_t v, void *user)
{
    struct stat_probe *p = user;
    if (!strcmp(name, p->name))
        p->value = v;
}

static uint64_t stat_of(kvt_tier_impl *t, const char *name)
{
    struct stat_probe p = {name, UINT64_MAX};
    nv->stats(t, probe_fn, &p);
    cr_assert_neq(p.value, UINT64_MAX, "no stat %s", name);
    return p.value;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key k;
    uint64_t s = 0x5eed0000u + i;
    fill_random(k.b, sizeof k.b, &s);
    return k;
}

/* All n slots written (write) or read and checked; statuses into st. */
static int move_all(kvt_tier_impl *t, uint32_t n, int write, int *st)
{
    uint8_t *mem = aligned_alloc(4096, n * BB);
    kvt_xfer *x = calloc(n, sizeof *x);
    void **frag = calloc(n, sizeof *frag);
    cr_assert(mem && x && frag);
    for (uint32_t i = 0; i < n; i++) {
        frag[i] = mem + (size_t)i * BB;
        if (write)
            memset(frag[i], (int)(i * 37 + 1), BB);
        else
            memset(frag[i], 0xEE, BB);
        x[i] = (kvt_xfer){.slot = i, .nfrags = 1, .frags = &frag[i], .key = key_of(i)};
    }
    int rc = write ? nv->write(t, x, n, KVT_MEM_HOST) : nv->read(t, x, n, KVT_MEM_HOST);
    for (uint32_t i = 0; i < n; i++) {
        if (st)
            st[i] = x[i].status;
        if (!write && !x[i].status) {
            const uint8_t *b = frag[i];
            cr_assert(b[0] == (uint8_t)(i * 37 + 1) && b[BB - 1] == b[0], "slot %u: wrong bytes",
                      i);
        }
    }
    free(mem);
    free(x);
    free(frag);
    return rc;
}

static int count_visit(void *user, uint32_t slot, const kvt_key *key)
{
    kvt_key want = key_of(slot);
    cr_assert(!memcmp(key->b, want.b, sizeof want.b), "slot %u: another key", slot);
    (*(uint32_t *)user)++;
    return 0;
}

/* A device with 4096-byte logical blocks can't take 512-byte units: small
 * blocks get the whole unit there (same slot count, larger slots), and a
 * file laid out in 512-byte units copied onto it is refused with
 * KVT_ENOTSUP, left as it was until recreate rebuilds it. */
Test(nvme_loop, small_blocks_on_a_4k_sector_device)
{
    const uint64_t bb = 16 * KIB;
    const uint32_t n = 4;
    const char *why = NULL;
    const char *dev = loop_attach_sectors(kvt__nvme_file_bytes_in(bb, n, 4096), 4096, &why);
    if (!dev)
        cr_skip_test("%s", why);
    kvt_tier_params p = params(dev, n);
    p.block_bytes = bb;
    p.capacity = kvt__nvme_slot_bytes(bb) * n;
    kvt_tier_impl *t = NULL;
    uint32_t got = 0;
    int rc = nv->open(&p, &t, &got);
    if (rc == KVT_ENOTSUP || rc == KVT_ENODIRECT)
        cr_skip_test("the 4096-byte loop device takes no direct I/O here: %s", kvt_last_error());
    cr_assert_eq(rc, 0, "%s", kvt_last_error());
    cr_expect_eq(got, n);
    cr_expect_eq(stat_of(t, "nvme.dio_len_align"), 4096);
    cr_expect_eq(stat_of(t, "nvme.unit"), 4096);
    cr_expect_eq(stat_of(t, "nvme.slot_bytes"), bb + 4096);
    uint8_t *mem = aligned_alloc(4096, n * bb);
    kvt_xfer x[4];
    void *fr[4];
    for (uint32_t i = 0; i < n; i++) {
        fr[i] = mem + i * bb;
        memset(fr[i], (int)(i + 1), bb);
        x[i] = (kvt_xfer){.slot = i, .nfrags = 1, .frags = &fr[i], .key = key_of(i)};
    }
    cr_assert_eq(nv->write(t, x, n, KVT_MEM_HOST), 0, "%s", kvt_last_error());
    memset(mem, 0xEE, n * bb);
    cr_assert_eq(nv->read(t, x, n, KVT_MEM_HOST), 0, "%s", kvt_last_error());
    for (uint32_t i = 0; i < n; i++)
        cr_expect(mem[i * bb] == i + 1 && mem[i * bb + bb - 1] == i + 1, "block %u", i);
    nv->close(t);

    /* A 512-unit file's image on the device. */
    char file[700];
    snprintf(file, sizeof file, "%s/small.kvt", dir);
    kvt_tier_params q = params(file, n);
    q.block_bytes = bb;
    q.capacity = p.capacity;
    t = open_ok(&q);
    cr_expect_eq(stat_of(t, "nvme.unit"), 512);
    nv->close(t);
    int in = open(file, O_RDONLY), out = open(dev, O_WRONLY);
    cr_assert(in >= 0 && out >= 0);
    uint8_t sb[4096];
    cr_assert_eq(pread(in, sb, sizeof sb, 0), (ssize_t)sizeof sb);
    cr_assert_eq(pwrite(out, sb, sizeof sb, 0), (ssize_t)sizeof sb);
    fsync(out);
    close(in);
    close(out);
    t = NULL;
    rc = nv->open(&p, &t, &got);
    if (!rc)
        nv->close(t);
    cr_expect_eq(rc, KVT_ENOTSUP, "%d %s", rc, kvt_last_error());
    cr_expect(strstr(kvt_last_error(), "512-byte units"), "%s", kvt_last_error());
    kvt__tier_params_set_int(&p, "recreate", 1);
    t = open_ok(&p);
    cr_expect_eq(stat_of(t, "nvme.unit"), 4096);
    nv->close(t);
    free(mem);
}

/* Two and three loop devices: every slot round-trips, and all come back
 * from every device after a reopen. */
Test(nvme_loop, round_trip_and_recovery)
{
    for (unsigned nd = 2; nd <= 3; nd++) {
        uint32_t n = 3 * nd + 1;
        kvt_tier_params p = params(attach_set(nd, n), n);
        kvt_tier_impl *t = open_ok(&p);
        cr_expect_eq(stat_of(t, "nvme.devices"), nd);
        cr_assert_eq(move_all(t, n, 1, NULL), 0, "write: %s", kvt_last_error());
        cr_assert_eq(move_all(t, n, 0, NULL), 0, "read: %s", kvt_last_error());
        nv->close(t);
        t = open_ok(&p);
        uint32_t found = 0;
        cr_assert_eq(nv->recover(t, count_visit, &found), 0);
        cr_expect_eq(found, n, "%u devices: recovered %u of %u", nd, found, n);
        cr_assert_eq(move_all(t, n, 0, NULL), 0, "read after reopen: %s", kvt_last_error());
        nv->close(t);
        teardown(); /* the next round attaches its own */
        setup();
    }
}

static uint64_t allocated(const char *file)
{
    struct stat st;
    cr_assert_eq(stat(file, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

/* A discard on a block device hands the payloads back (BLKDISCARD; the loop
 * driver punches them out of its backing file), and the discarded slots
 * are not recovered. */
Test(nvme_loop, discard_trims_payloads)
{
    const uint32_t n = 8;
    kvt_tier_params p = params(attach_set(2, n), n);
    kvt_tier_impl *t = open_ok(&p);
    cr_assert_eq(move_all(t, n, 1, NULL), 0, "write: %s", kvt_last_error());
    cr_assert_eq(nv->flush(t), 0);
    uint64_t before = allocated(loop_file[0]) + allocated(loop_file[1]);
    uint32_t gone[4] = {0, 1, 2, 3};
    cr_assert_eq(nv->discard(t, gone, 4), 0, "%s", kvt_last_error());
    uint64_t trims = stat_of(t, "nvme.trims");
    char sys[128];
    snprintf(sys, sizeof sys, "/sys/block/%.60s/queue/discard_max_bytes", loop_dev[0] + 5);
    FILE *f = fopen(sys, "r");
    unsigned long long max = 0;
    if (f) {
        if (fscanf(f, "%llu", &max) != 1)
            max = 0;
        fclose(f);
    }
    if (max)
        cr_expect_gt(trims, 0, "the device takes discards (%s), the tier sent none", sys);
    if (trims) {
        cr_expect_eq(trims, 4);
        cr_expect_eq(stat_of(t, "nvme.trim_bytes"), 4 * (kvt__nvme_slot_bytes(BB) - kvt__nvme_unit(BB)));
        uint64_t after = allocated(loop_file[0]) + allocated(loop_file[1]);
        cr_expect_lt(after, before, "the backing files kept %llu of %llu bytes",
                     (unsigned long long)after, (unsigned long long)before);
    }
    nv->close(t);
    t = open_ok(&p);
    uint32_t found = 0;
    cr_assert_eq(nv->recover(t, count_visit, &found), 0);
    cr_expect_eq(found, n - 4);
    nv->close(t);
}

/* Fails loop device i: its backing file shrinks to nothing under it, and
 * the driver then fails every I/O past the end. Writes in flight may extend
 * the file again before the driver reads its size: shrink until the device
 * says it has no sectors left. */
static void shrink_to_nothing(unsigned i)
{
    char sys[128], size[64] = "";
    snprintf(sys, sizeof sys, "cat /sys/block/%.60s/size", loop_dev[i] + 5);
    for (int k = 0; k < 20 && strcmp(size, "0"); k++) {
        cr_assert_eq(truncate(loop_file[i], 0), 0);
        sh("timeout 10 losetup -c %s 2>&1", loop_dev[i], NULL, 0);
        sh("%s", sys, size, sizeof size);
    }
    cr_assert_str_eq(size, "0", "%s: the loop device did not shrink", loop_dev[i]);
}

typedef struct load {
    kvt_tier_impl *t;
    uint32_t n, nd;
    atomic_bool stop;
    atomic_uint rounds;
    atomic_uint bad_live; /* errors on slots of devices that did not fail */
} load;

static void *load_run(void *arg)
{
    load *l = arg;
    int *st = calloc(l->n, sizeof *st);
    while (!atomic_load(&l->stop)) {
        for (int write = 1; write >= 0; write--) {
            move_all(l->t, l->n, write, st);
            for (uint32_t i = 0; i < l->n; i++)
                if (st[i] && i % l->nd != 1)
                    atomic_fetch_add(&l->bad_live, 1);
        }
        atomic_fetch_add(&l->rounds, 1);
    }
    free(st);
    return NULL;
}

/* Device 2 of 3 fails while a thread writes and reads every slot: its
 * backing file shrinks to nothing under it (the loop driver then fails
 * every I/O past the end) and it is detached (which the driver defers
 * while the tier holds it open, so detaching alone fails nothing). Only its slots fail; the tier takes it out of
 * service, counts it, and the others keep serving. */
Test(nvme_loop, device_fails_under_load)
{
    const unsigned nd = 3;
    const uint32_t n = 12;
    kvt_tier_params p = params(attach_set(nd, n), n);
    kvt_tier_impl *t = open_ok(&p);
    load l = {.t = t, .n = n, .nd = nd};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, load_run, &l), 0);
    struct timespec ms20 = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 250 && atomic_load(&l.rounds) < 2; i++)
        nanosleep(&ms20, NULL);
    shrink_to_nothing(1);
    /* And detached: the driver lets it go once the tier closes it. */
    sh("timeout 10 losetup -d %s 2>&1", loop_dev[1], NULL, 0);
    for (int i = 0; i < 250 && stat_of(t, "nvme.devices_failed") == 0; i++)
        nanosleep(&ms20, NULL);
    unsigned at_fail = atomic_load(&l.rounds);
    for (int i = 0; i < 250 && atomic_load(&l.rounds) < at_fail + 2; i++)
        nanosleep(&ms20, NULL);
    atomic_store(&l.stop, true);
    pthread_join(th, NULL);
    cr_expect_eq(stat_of(t, "nvme.devices_failed"), 1, "the shrunk device was not failed");
    cr_expect_eq(stat_of(t, "nvme.devices_degraded"), 1);
    cr_expect_eq(atomic_load(&l.bad_live), 0, "slots of the healthy devices failed");
    cr_expect_gt(stat_of(t, "nvme.degraded_rejects"), 0);
    int st[12];
    cr_expect_eq(move_all(t, n, 0, st), KVT_EIO);
    cr_expect(strstr(kvt_last_error(), "out of service"), "%s", kvt_last_error());
    for (uint32_t i = 0; i < n; i++) {
        cr_expect_eq(st[i], i % nd == 1 ? KVT_EIO : 0, "slot %u: %d", i, st[i]);
        cr_expect_eq(nv->slot_usable(t, i), i % nd != 1);
    }
    cr_expect_eq(nv->flush(t), 0, "flush with a failed device: %s", kvt_last_error());
    nv->close(t);
}

/* Through the store: once a device has failed, puts stop landing on it
 * (the store drops its slots from the free list as it meets them), so
 * after a bounded number of failures every put succeeds on the device
 * still there. */
Test(nvme_loop, store_stops_using_a_failed_device)
{
    const uint32_t n = 16;
    char *paths = attach_set(2, n);
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", BB, &slot), 0);
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BB);
    kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(n * slot));
    kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", paths);
    cr_assert_eq(kvt_open(c, &s), 0, "open: %s", kvt_last_error());
    kvt_config_free(c);
    uint8_t *b = aligned_alloc(4096, BB);
    void *ptr = b;
    for (uint32_t i = 0; i < n / 2; i++) {
        memset(b, (int)i, BB);
        kvt_key k = key_of(i);
        cr_assert_eq(kvt_put(s, &k, 1, &ptr, NULL, NULL), 1, "put %u: %s", i, kvt_last_error());
    }
    shrink_to_nothing(1);
    unsigned failed = 0, late_failures = 0;
    for (uint32_t i = n / 2; i < 3 * n; i++) {
        memset(b, (int)i, BB);
        kvt_key k = key_of(i);
        int got = kvt_put(s, &k, 1, &ptr, NULL, NULL);
        failed += got != 1;
        late_failures += got != 1 && i >= 2 * n;
    }
    uint64_t v = 0;
    cr_expect_eq(kvt_stat(s, "nvme.devices_failed", &v), 0);
    cr_expect_eq(v, 1, "the shrunk device was not failed");
    /* At most once per slot of the failed device: a free one is dropped
     * when met, but a slot that held a block is handed out once more as the
     * policy's victim, and that put fails. */
    cr_expect_leq(failed, n / 2 + 1, "%u puts failed after the device did", failed);
    cr_expect_eq(late_failures, 0, "puts still fail long after the device failed");
    free(b);
    kvt_close(s);
}

#endif
