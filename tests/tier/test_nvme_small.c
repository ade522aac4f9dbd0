/* test_nvme_small.c — the NVMe tier's small layout unit (format version 3): small-block round trips on every memory path, the layout on media, crash recovery, reopening files of every version, unknown versions refused, the recorded unit honoured. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/rand.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "tier/nvme.h"
#include "tier/tier.h"

#define KIB ((uint64_t)1 << 10)

#if !KVT_HAVE_URING
Test(nvme_small, unavailable)
{
    cr_skip_test("built without io_uring: there is no NVMe tier to test");
}
#else

static const kvt_tier_ops *const nv = &kvt__tier_nvme;

static char dir[512], path[700];

static void setup(void)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    snprintf(dir, sizeof dir, "%s/nvme-small-XXXXXX", root ? root : KVT_BUILD_ROOT);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/tier.kvt", dir);
}

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(p);
    return 0;
}

static void teardown(void)
{
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(nvme_small, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ helpers */

static kvt_tier_params params_at(const char *where, uint64_t bb, uint32_t frags, uint32_t n)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, &kvt__tier_nvme);
    p.name = "nvme";
    p.block_bytes = bb;
    p.block_tokens = 16;
    p.frags = frags;
    kvt__tier_params_set_str(&p, "path", where);
    kvt__tier_params_set_int(&p, "queue_depth", 8);
    p.capacity = kvt__nvme_slot_bytes(bb) * n;
    return p;
}

static kvt_tier_params params(uint64_t bb, uint32_t frags, uint32_t n)
{
    return params_at(path, bb, frags, n);
}

static kvt_tier_impl *open_n(const kvt_tier_params *p, uint32_t want)
{
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    int rc = nv->open(p, &t, &n);
    cr_assert_eq(rc, 0, "open %s: %d %s", kvt__tier_opt_str(p, "path"), rc, kvt_last_error());
    cr_assert_eq(n, want, "%u slots, want %u", n, want);
    return t;
}

static int open_rc(const kvt_tier_params *p)
{
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    int rc = nv->open(p, &t, &n);
    if (!rc)
        nv->close(t);
    return rc;
}

struct stat_probe {
    const char *name;
    uint64_t value;
    int found;
};

static void probe_cb(const char *name, uint64_t v, void *u)
{
    struct stat_probe *p = u;
    if (!strcmp(name, p->name)) {
        p->value = v;
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

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *file_bytes(const char *p, size_t *len)
{
    int fd = open(p, O_RDONLY);
    cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    cr_assert_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void write_at(const char *p, const void *data, size_t len, off_t off)
{
    int fd = open(p, O_WRONLY);
    cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
    cr_assert_eq(pwrite(fd, data, len, off), (ssize_t)len);
    close(fd);
}

static int sb_field(const char *p, int off)
{
    uint8_t b[128];
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s", p);
    cr_assert_eq(pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
    close(fd);
    return (int)le(b + off, 4);
}

static kvt_key key_of(uint32_t i, int gen)
{
    kvt_key k;
    for (int j = 0; j < 16; j++)
        k.b[j] = (uint8_t)(i * 29 + gen * 101 + j);
    return k;
}

static void block_fill(uint8_t *b, uint64_t bb, uint32_t i, int gen)
{
    for (uint64_t j = 0; j < bb; j++)
        b[j] = (uint8_t)(i * 13 + gen * 7 + j * 31 + (j >> 9));
}

/* How a batch's memory is laid out: the engine's paths for it. */
enum mem { CONTIG, SPLIT, UNALIGNED, REGION, MEMS };
static const char *const mem_name[MEMS] = {"contiguous", "split fragments", "unaligned",
                                           "host region"};

/* n blocks of bb bytes in `frags` fragments each, at fp[i * frags + f]. */
typedef struct blocks {
    uint8_t *base;
    void **fp;
} blocks;

static blocks blocks_new(enum mem m, uint64_t bb, uint32_t frags, uint32_t n)
{
    uint64_t fs = bb / frags, stride = (fs + 8 + 4095) / 4096 * 4096 + (m == SPLIT ? 4096 : 0);
    blocks b;
    b.base = aligned_alloc(4096, stride * frags * n + 4096);
    b.fp = calloc((size_t)frags * n, sizeof *b.fp);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t f = 0; f < frags; f++) {
            uint64_t at = m == CONTIG || m == REGION ? i * bb + f * fs
                          : m == SPLIT ? stride * ((uint64_t)i * frags + (frags - 1 - f))
                                       : stride * ((uint64_t)i * frags + f) + 8;
            b.fp[i * frags + f] = b.base + at;
        }
    return b;
}

/* Writes (write) or reads blocks [0, n) into slots [0, n); returns the rc, statuses in st. */
static int move(kvt_tier_impl *t, blocks *b, uint64_t bb, uint32_t frags, uint32_t n, int gen,
                int write, int32_t *st)
{
    kvt_xfer *x = calloc(n, sizeof *x);
    uint8_t *tmp = malloc(bb);
    uint64_t fs = bb / frags;
    for (uint32_t i = 0; i < n; i++) {
        x[i] = (kvt_xfer){.slot = i, .nfrags = frags, .frags = &b->fp[i * frags],
                          .key = key_of(i, gen)};
        block_fill(tmp, bb, i, gen);
        for (uint32_t f = 0; f < frags; f++)
            if (write)
                memcpy(b->fp[i * frags + f], tmp + f * fs, fs);
            else
                memset(b->fp[i * frags + f], 0xEE, fs);
    }
    int rc = write ? nv->write(t, x, n, KVT_MEM_HOST) : nv->read(t, x, n, KVT_MEM_HOST);
    for (uint32_t i = 0; i < n; i++) {
        if (st)
            st[i] = x[i].status;
        if (write || x[i].status)
            continue;
        block_fill(tmp, bb, i, gen);
        for (uint32_t f = 0; f < frags; f++)
            cr_assert(!memcmp(b->fp[i * frags + f], tmp + f * fs, fs),
                      "block %u fragment %u differs", i, f);
    }
    free(tmp);
    free(x);
    return rc;
}

typedef struct found {
    uint32_t n, count;
    uint8_t *seen;
    kvt_key *keys;
} found;

static int visit(void *user, uint32_t slot, const kvt_key *key)
{
    found *f = user;
    cr_assert_lt(slot, f->n);
    cr_assert_not(f->seen[slot], "slot %u twice", slot);
    f->seen[slot] = 1;
    f->keys[slot] = *key;
    f->count++;
    return 0;
}

static found recover_all(kvt_tier_impl *t, uint32_t n)
{
    found f = {n, 0, calloc(n, 1), calloc(n, sizeof(kvt_key))};
    cr_assert_eq(nv->recover(t, visit, &f), 0, "recover: %s", kvt_last_error());
    return f;
}

static void found_free(found *f)
{
    free(f->seen);
    free(f->keys);
}

/* -------------------------------------------------------------- round trips */

/* 4, 16 and 64 KiB blocks, one and four fragments, on every memory path:
 * 512-byte units, slots of 512 + the block, direct paths with no staging
 * (one vectored transfer per contiguous block), and everything back after
 * a reopen. */
Test(nvme_small, small_blocks_round_trip_in_512_byte_units)
{
    const uint64_t sizes[] = {4 * KIB, 16 * KIB, 64 * KIB};
    const uint32_t n = 6;
    for (int z = 0; z < 3; z++)
        for (uint32_t frags = 1; frags <= 4; frags *= 4)
            for (int m = 0; m < MEMS; m++) {
                uint64_t bb = sizes[z];
                unlink(path);
                blocks b = blocks_new((enum mem)m, bb, frags, n);
                kvt_tier_params p = params(bb, frags, n);
                if (m == REGION) {
                    p.host_region = b.base;
                    p.host_region_bytes = n * bb;
                }
                kvt_tier_impl *t = open_n(&p, n);
                cr_expect_eq(stat_of(t, "nvme.unit"), 512);
                cr_expect_eq(stat_of(t, "nvme.slot_bytes"), bb + 512);
                int32_t st[6];
                cr_assert_eq(move(t, &b, bb, frags, n, 1, 1, st), 0, "%s %llu/%u: write: %s",
                             mem_name[m], (unsigned long long)bb, frags, kvt_last_error());
                cr_assert_eq(move(t, &b, bb, frags, n, 1, 0, st), 0, "%s %llu/%u: read: %s",
                             mem_name[m], (unsigned long long)bb, frags, kvt_last_error());
                uint64_t staged = stat_of(t, "nvme.staged"), vec = stat_of(t, "nvme.vectored");
                if (m == UNALIGNED) {
                    cr_expect_eq(staged, 2 * n, "%s: staged %llu", mem_name[m],
                                 (unsigned long long)staged);
                } else {
                    cr_expect_eq(staged, 0, "%s %llu/%u: %llu blocks staged", mem_name[m],
                                 (unsigned long long)bb, frags, (unsigned long long)staged);
                    if (m == CONTIG)
                        cr_expect_eq(vec, 2 * n, "contiguous: one vectored transfer a block");
                }
                nv->close(t);
                struct stat sf;
                cr_assert_eq(stat(path, &sf), 0);
                cr_expect_eq((uint64_t)sf.st_size, 4096 + n * (bb + 512));
                cr_expect_eq(sb_field(path, 8), 3, "format version");
                cr_expect_eq(sb_field(path, 16), 512, "unit");
                t = open_n(&p, n);
                found f = recover_all(t, n);
                cr_expect_eq(f.count, n);
                found_free(&f);
                cr_assert_eq(move(t, &b, bb, frags, n, 1, 0, st), 0, "after reopen: %s",
                             kvt_last_error());
                nv->close(t);
                free(b.fp);
                free(b.base);
            }
}

/* ------------------------------------------------------------------ layout */

/* The version-3 layout as docs/nvme-format.md describes it. */
Test(nvme_small, media_layout_version_3_matches_the_spec)
{
    const uint64_t bb = 6000; /* not a multiple of the unit: padded to 6144 */
    const uint64_t slot = 512 + 6144;
    cr_assert_eq(kvt__nvme_slot_bytes(bb), slot);
    kvt_tier_params p = params(bb, 2, 5);
    kvt_tier_impl *t = open_n(&p, 5);
    blocks b = blocks_new(UNALIGNED, bb, 2, 1);
    uint8_t want[6000];
    block_fill(want, bb, 0, 3);
    kvt_xfer x = {.slot = 3, .nfrags = 2, .frags = b.fp, .key = key_of(3, 3)};
    memcpy(b.fp[0], want, bb / 2);
    memcpy(b.fp[1], want + bb / 2, bb / 2);
    cr_assert_eq(nv->write(t, &x, 1, KVT_MEM_HOST), 0, "%s", kvt_last_error());
    kvt_xfer y = x;
    y.slot = 4;
    cr_assert_eq(nv->write(t, &y, 1, KVT_MEM_HOST), 0);
    uint32_t four = 4;
    cr_assert_eq(nv->discard(t, &four, 1), 0);
    nv->close(t);

    size_t len;
    uint8_t *f = file_bytes(path, &len);
    cr_assert_eq(len, 4096 + 5 * slot);
    cr_expect(!memcmp(f, "KVTIERSB", 8));
    cr_expect_eq(le(f + 8, 4), 3);     /* format version */
    cr_expect_eq(le(f + 12, 4), 128);  /* header bytes */
    cr_expect_eq(le(f + 16, 4), 512);  /* unit */
    cr_expect_eq(le(f + 24, 8), bb);
    cr_expect_eq(le(f + 36, 4), 2);    /* frags */
    cr_expect_eq(le(f + 40, 8), slot);
    cr_expect_eq(le(f + 48, 8), 5);    /* slot count */
    cr_expect_eq(le(f + 56, 8), 4096); /* slot 0 offset */
    cr_expect_eq(le(f + 96, 4), 0);    /* stripe count: a single file */
    cr_expect_eq(le(f + 120, 8), XXH3_64bits(f, 120), "superblock checksum");
    for (size_t i = 128; i < 4096; i++)
        cr_assert_eq(f[i], 0, "superblock byte %zu", i);
    const uint8_t *h = f + 4096 + 3 * slot;
    cr_expect(!memcmp(h, "KVTBLOCK", 8));
    cr_expect_eq(le(h + 8, 4), 3, "header version");
    cr_expect_eq(le(h + 12, 4), 128);
    cr_expect_eq(le(h + 16, 8), bb);
    cr_expect(!memcmp(h + 32, f + 64, 16), "store id");
    cr_expect(!memcmp(h + 48, x.key.b, 16), "key");
    cr_expect_eq(le(h + 64, 8), bb);
    cr_expect_eq(le(h + 72, 8), XXH3_64bits(want, bb), "payload checksum");
    cr_expect_eq(le(h + 88, 4), 3, "slot index");
    cr_expect_eq(le(h + 120, 8), XXH3_64bits(h, 120), "header checksum");
    for (size_t i = 128; i < 512; i++)
        cr_assert_eq(h[i], 0, "header unit byte %zu", i);
    cr_expect(!memcmp(h + 512, want, bb), "payload at the unit");
    for (size_t i = 512 + bb; i < slot; i++)
        cr_assert_eq(h[i], 0, "padding byte %zu", i);
    const uint8_t *d = f + 4096 + 4 * slot;
    for (size_t i = 0; i < 512; i++)
        cr_assert_eq(d[i], 0, "discarded header byte %zu", i);
    free(f);
    free(b.fp);
    free(b.base);
}

/* ---------------------------------------------------------------- recovery */

/* A process killed with its tier open: every write that returned is
 * recovered and reads back; a slot torn afterwards (payload half new) is
 * found at recovery and fails at its read, never returning bytes. */
Test(nvme_small, recovery_after_a_crash)
{
    const uint64_t bb = 16 * KIB;
    const uint32_t n = 24;
    kvt_tier_params p = params(bb, 1, n);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        kvt_tier_impl *t = NULL;
        uint32_t got;
        if (nv->open(&p, &t, &got))
            _exit(2);
        blocks b = blocks_new(CONTIG, bb, 1, n);
        kvt_xfer *x = calloc(n, sizeof *x);
        for (uint32_t i = 0; i < n; i++) {
            block_fill(b.base + i * bb, bb, i, 5);
            x[i] = (kvt_xfer){.slot = i, .nfrags = 1, .frags = &b.fp[i], .key = key_of(i, 5)};
        }
        if (nv->write(t, x, n / 2, KVT_MEM_HOST) || nv->write(t, x + n / 2, n / 2, KVT_MEM_HOST))
            _exit(3);
        kill(getpid(), SIGKILL); /* no close, no sync */
        _exit(4);
    }
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "child: status %d", ws);

    /* Tear slot 7: its payload's last 512 bytes from another write. */
    uint8_t junk[512];
    memset(junk, 0x5A, sizeof junk);
    uint64_t slot = kvt__nvme_slot_bytes(bb);
    write_at(path, junk, sizeof junk, (off_t)(4096 + 7 * slot + 512 + bb - 512));

    kvt_tier_impl *t = open_n(&p, n);
    cr_expect_eq(stat_of(t, "nvme.unit"), 512);
    found f = recover_all(t, n);
    cr_expect_eq(f.count, n, "recovered %u of %u", f.count, n);
    for (uint32_t i = 0; i < n; i++)
        cr_expect(!memcmp(f.keys[i].b, key_of(i, 5).b, 16), "slot %u: key", i);
    found_free(&f);
    blocks b = blocks_new(CONTIG, bb, 1, n);
    int32_t st[24];
    cr_expect_eq(move(t, &b, bb, 1, n, 5, 0, st), KVT_ECORRUPT);
    for (uint32_t i = 0; i < n; i++)
        cr_expect_eq(st[i], i == 7 ? KVT_ECORRUPT : 0, "slot %u: %d", i, st[i]);
    nv->close(t);
    free(b.fp);
    free(b.base);
}

/* ------------------------------------------------------------ old and new */

/* A file in 4096-byte units (format version 1, what builds before version 3
 * wrote for every block size) opens unchanged in its own layout, whether
 * the capacity counts its slots in today's slot size or in its own, and
 * takes new blocks in that layout. */
Test(nvme_small, file_of_version_1_opens_in_its_own_layout)
{
    const uint64_t bb = 16 * KIB;
    const uint32_t n = 5;
    kvt_tier_params old = params(bb, 1, n);
    kvt__tier_params_set_int(&old, "unit", 4096);
    kvt_tier_impl *t = open_n(&old, n);
    blocks b = blocks_new(CONTIG, bb, 1, n);
    cr_assert_eq(move(t, &b, bb, 1, 3, 1, 1, NULL), 0);
    nv->close(t);
    cr_expect_eq(sb_field(path, 8), 1);
    cr_expect_eq(sb_field(path, 16), 4096);
    size_t len;
    uint8_t *before = file_bytes(path, &len);
    cr_assert_eq(len, kvt__nvme_file_bytes_in(bb, n, 4096));

    kvt_tier_params now = params(bb, 1, n); /* N * kvt__nvme_slot_bytes(): 512-byte slots */
    kvt_tier_params sized_old = params(bb, 1, n);
    sized_old.capacity = kvt__nvme_slot_bytes_in(bb, 4096) * n;
    const kvt_tier_params *ways[2] = {&now, &sized_old};
    for (int w = 0; w < 2; w++) {
        t = open_n(ways[w], n);
        cr_expect_eq(stat_of(t, "nvme.unit"), 4096);
        cr_expect_eq(stat_of(t, "nvme.slot_bytes"), bb + 4096);
        found f = recover_all(t, n);
        cr_expect_eq(f.count, 3);
        found_free(&f);
        cr_assert_eq(move(t, &b, bb, 1, 3, 1, 0, NULL), 0, "%s", kvt_last_error());
        nv->close(t);
        size_t len2;
        uint8_t *after = file_bytes(path, &len2);
        cr_expect(len2 == len && !memcmp(before, after, len), "opening changed the file");
        free(after);
    }
    /* New blocks land in the file's layout: version 1 still. */
    t = open_n(&now, n);
    cr_assert_eq(move(t, &b, bb, 1, n, 2, 1, NULL), 0);
    cr_assert_eq(move(t, &b, bb, 1, n, 2, 0, NULL), 0);
    nv->close(t);
    cr_expect_eq(sb_field(path, 8), 1);
    free(before);
    free(b.fp);
    free(b.base);
}

/* A capacity sized in 4096-unit slots (N * the old slot size) still asks
 * for N slots; a new file lays them out in 512-byte units. */
Test(nvme_small, old_sized_capacity_gives_the_same_slot_count)
{
    const uint64_t bb = 16 * KIB;
    kvt_tier_params p = params(bb, 1, 7);
    p.capacity = kvt__nvme_slot_bytes_in(bb, 4096) * 7;
    kvt_tier_impl *t = open_n(&p, 7);
    cr_expect_eq(stat_of(t, "nvme.unit"), 512);
    nv->close(t);
    struct stat sf;
    cr_assert_eq(stat(path, &sf), 0);
    cr_expect_eq((uint64_t)sf.st_size, kvt__nvme_file_bytes(bb, 7));
    cr_expect_leq((uint64_t)sf.st_size - 4096, p.capacity, "more slot space than the capacity");
    p.capacity += 512;
    cr_expect_eq(open_rc(&p), KVT_ECAPACITY);
}

/* A superblock of a version this build does not know, or a version-3 one
 * with a unit it does not lay slots out in, is refused with KVT_EFORMAT and
 * left as it was. */
Test(nvme_small, unknown_version_or_unit_is_refused)
{
    const uint64_t bb = 8 * KIB;
    kvt_tier_params p = params(bb, 1, 3);
    nv->close(open_n(&p, 3));
    size_t len;
    uint8_t *orig = file_bytes(path, &len);
    struct {
        int off;
        uint32_t v;
        const char *says;
    } bad[] = {
        {8, 4, "format version 4"},
        {8, 0, "format version 0"},
        {16, 4096, "unit 4096"}, /* version 3 in whole units: not written by anyone */
        {16, 256, "unit 256"},
        {16, 768, "unit 768"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t sb[4096];
        memcpy(sb, orig, sizeof sb);
        put_le32(sb + bad[i].off, bad[i].v);
        uint64_t sum = XXH3_64bits(sb, 120);
        for (int k = 0; k < 8; k++)
            sb[120 + k] = (uint8_t)(sum >> (8 * k));
        write_at(path, sb, sizeof sb, 0);
        cr_expect_eq(open_rc(&p), KVT_EFORMAT, "%s", bad[i].says);
        cr_expect(strstr(kvt_last_error(), bad[i].says), "%s: %s", bad[i].says,
                  kvt_last_error());
        size_t len2;
        uint8_t *now = file_bytes(path, &len2);
        cr_expect(len2 == len && !memcmp(now, sb, sizeof sb) &&
                      !memcmp(now + 4096, orig + 4096, len - 4096),
                  "%s: the file changed", bad[i].says);
        free(now);
    }
    /* recreate rebuilds it in today's layout. */
    kvt__tier_params_set_int(&p, "recreate", 1);
    nv->close(open_n(&p, 3));
    cr_expect_eq(sb_field(path, 8), 3);
    free(orig);
}

/* The unit a file records wins over the one a new file would get: a
 * 1024-unit file reopens as such under the default, a 512-unit one under
 * unit=4096; a bad unit option is refused before any file exists. */
Test(nvme_small, recorded_unit_is_honoured_on_reopen)
{
    const uint64_t bb = 16 * KIB;
    const uint32_t n = 4;
    blocks b = blocks_new(CONTIG, bb, 1, n);
    const uint32_t units[] = {1024, 512};
    const int64_t reopen_with[] = {0, 4096};
    for (int u = 0; u < 2; u++) {
        unlink(path);
        kvt_tier_params p = params(bb, 1, n);
        kvt__tier_params_set_int(&p, "unit", units[u]);
        kvt_tier_impl *t = open_n(&p, n);
        cr_expect_eq(stat_of(t, "nvme.unit"), units[u]);
        cr_assert_eq(move(t, &b, bb, 1, n, u, 1, NULL), 0);
        nv->close(t);
        cr_expect_eq(sb_field(path, 16), (int)units[u]);
        kvt_tier_params q = params(bb, 1, n);
        kvt__tier_params_set_int(&q, "unit", reopen_with[u]);
        t = open_n(&q, n);
        cr_expect_eq(stat_of(t, "nvme.unit"), units[u], "reopened with unit=%lld",
                     (long long)reopen_with[u]);
        found f = recover_all(t, n);
        cr_expect_eq(f.count, n);
        found_free(&f);
        cr_assert_eq(move(t, &b, bb, 1, n, u, 0, NULL), 0, "%s", kvt_last_error());
        nv->close(t);
    }
    unlink(path);
    kvt_tier_params p = params(bb, 1, n);
    kvt__tier_params_set_int(&p, "unit", 768);
    cr_expect_eq(open_rc(&p), KVT_EINVAL);
    cr_expect(access(path, F_OK) != 0, "a refused open created the file");
    /* Large blocks keep the whole unit. */
    kvt_tier_params big = params(256 * KIB, 1, 2);
    kvt_tier_impl *t = open_n(&big, 2);
    cr_expect_eq(stat_of(t, "nvme.unit"), 4096);
    nv->close(t);
    cr_expect_eq(sb_field(path, 8), 1);
    free(b.fp);
    free(b.base);
}

/* ------------------------------------------------------------------ stripes */

/* A stripe set of small blocks: version-3 members (stripe fields set),
 * round trip, recovery from both, discard; a member refuses to open alone,
 * a single version-3 file refuses to be a member. */
Test(nvme_small, stripe_set_in_512_byte_units)
{
    const uint64_t bb = 16 * KIB;
    const uint32_t n = 9;
    char list[1500], d0[700], d1[700], single[700];
    snprintf(d0, sizeof d0, "%s/a.kvt", dir);
    snprintf(d1, sizeof d1, "%s/b.kvt", dir);
    snprintf(single, sizeof single, "%s/single.kvt", dir);
    snprintf(list, sizeof list, "%s,%s", d0, d1);
    kvt_tier_params p = params_at(list, bb, 1, n);
    kvt_tier_impl *t = open_n(&p, n);
    cr_expect_eq(stat_of(t, "nvme.unit"), 512);
    blocks b = blocks_new(CONTIG, bb, 1, n);
    cr_assert_eq(move(t, &b, bb, 1, n, 4, 1, NULL), 0, "%s", kvt_last_error());
    nv->close(t);
    for (int d = 0; d < 2; d++) {
        const char *dp = d ? d1 : d0;
        cr_expect_eq(sb_field(dp, 8), 3);
        cr_expect_eq(sb_field(dp, 16), 512);
        cr_expect_eq(sb_field(dp, 92), d, "stripe index");
        cr_expect_eq(sb_field(dp, 96), 2, "stripe count");
        struct stat sf;
        cr_assert_eq(stat(dp, &sf), 0);
        cr_expect_eq((uint64_t)sf.st_size, kvt__nvme_file_bytes(bb, d ? 4 : 5));
    }
    t = open_n(&p, n);
    found f = recover_all(t, n);
    cr_expect_eq(f.count, n);
    found_free(&f);
    cr_assert_eq(move(t, &b, bb, 1, n, 4, 0, NULL), 0, "%s", kvt_last_error());
    uint32_t gone[2] = {0, 1};
    cr_assert_eq(nv->discard(t, gone, 2), 0);
    nv->close(t);
    t = open_n(&p, n);
    f = recover_all(t, n);
    cr_expect_eq(f.count, n - 2);
    cr_expect(!f.seen[0] && !f.seen[1], "a discarded slot came back");
    found_free(&f);
    nv->close(t);

    kvt_tier_params alone = params_at(d1, bb, 1, 4);
    cr_expect_eq(open_rc(&alone), KVT_EFORMAT);
    cr_expect(strstr(kvt_last_error(), "device 2 of a 2-device stripe set"), "%s",
              kvt_last_error());
    kvt_tier_params one = params_at(single, bb, 1, 5);
    nv->close(open_n(&one, 5));
    cr_expect_eq(sb_field(single, 8), 3);
    snprintf(list, sizeof list, "%s,%s", single, d1);
    kvt_tier_params mixed = params_at(list, bb, 1, n);
    cr_expect_eq(open_rc(&mixed), KVT_EGEOMETRY);
    cr_expect(strstr(kvt_last_error(), "single-device file"), "%s", kvt_last_error());
    free(b.fp);
    free(b.base);
}


static const char *list_first(const char *list)
{
    static char first[700];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(list, ","), list);
    return first;
}

/* A stripe set laid out in 4096-byte units (as before version 3) and sized
 * by its old slot: 129 slots of 64 KiB blocks are also exactly 136 of the
 * 512-unit slot, and the set must be read as the 129 it holds, not
 * refused for a slot count it never had. */
Test(nvme_small, old_unit_stripe_set_reopens_at_its_slot_count)
{
    const uint64_t bb = 64 * KIB;
    const uint32_t n = 129;
    char list[1500];
    snprintf(list, sizeof list, "%s/o0.kvt,%s/o1.kvt", dir, dir);
    /* Written as a build before version 3 wrote it: 4096-byte units. */
    kvt_tier_params p = params_at(list, bb, 1, n);
    kvt__tier_params_set_int(&p, "unit", 4096);
    nv->close(open_n(&p, n));
    cr_expect_eq(sb_field(list_first(list), 8), 2, "format version 2: a stripe set of old");
    /* ... and opened with the capacity that build was given. */
    kvt_tier_params again = params_at(list, bb, 1, n);
    again.capacity = kvt__nvme_slot_bytes_in(bb, 4096) * n;
    cr_assert_eq(again.capacity % kvt__nvme_slot_bytes(bb), 0, "the ambiguity this test is about");
    kvt_tier_impl *t = open_n(&again, n);
    cr_expect_eq(stat_of(t, "nvme.unit"), 4096);
    nv->close(t);
}

#endif /* KVT_HAVE_URING */
