/* test_dram.c — the DRAM tier through its ops table, the copier, and NUMA node choice. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "copy.h"
#include "common/rand.h"
#include "kvt_build_config.h"
#include "numa_node.h"
#include "tier/dram.h"
#include "tier/tier.h"
#include "../tier_kinds.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define POISON 0xA5

/* Index of the first differing byte, or SIZE_MAX. */
static size_t first_diff(const void *a, const void *b, size_t len)
{
    if (memcmp(a, b, len) == 0)
        return SIZE_MAX;
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < len; i++)
        if (x[i] != y[i])
            return i;
    return SIZE_MAX;
}

static size_t first_not(const void *p, int byte, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i] != (unsigned char)byte)
            return i;
    return SIZE_MAX;
}

/* ----------------------------------------------------------------- helpers */

static void set_opt(kvt_tier_params *p, const char *name, int64_t v)
{
    cr_assert_eq(kvt__tier_params_set_int(p, name, v), 0, "%s", kvt_last_error());
}

static kvt_tier_params params(uint64_t capacity, uint64_t block_bytes, uint32_t copy_threads)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, &kvt__tier_dram);
    p.name = "dram";
    p.capacity = capacity;
    p.block_bytes = block_bytes;
    p.block_tokens = 16;
    p.frags = 1;
    p.copy_threads = copy_threads;
    return p;
}

static kvt_tier_impl *open_tier(uint32_t nslots, size_t block, uint32_t copy_threads)
{
    kvt_tier_params p = params((uint64_t)nslots * block, block, copy_threads);
    kvt_tier_impl *t = NULL;
    uint32_t got = 0;
    int rc = kvt__tier_dram.open(&p, &t, &got);
    cr_assert_eq(rc, 0, "open(%u x %zu): %d %s", nslots, block, rc, kvt_last_error());
    cr_assert_not_null(t);
    cr_assert_eq(got, nslots);
    return t;
}

typedef struct {
    const char *name;
    uint64_t value;
    int seen;
} stat_slot;

typedef struct {
    stat_slot s[32];
    int n;
} stat_set;

static void collect(const char *name, uint64_t value, void *user)
{
    stat_set *set = user;
    cr_assert_lt(set->n, 32);
    set->s[set->n++] = (stat_slot){name, value, 1};
}

static uint64_t stat_of(kvt_tier_impl *t, const char *name)
{
    stat_set set = {.n = 0};
    kvt__tier_dram.stats(t, collect, &set);
    for (int i = 0; i < set.n; i++)
        if (strcmp(set.s[i].name, name) == 0)
            return set.s[i].value;
    cr_assert_fail("stat %s missing", name);
    return 0;
}

/* A block's fragments, each its own allocation so that no two are adjacent. */
typedef struct {
    uint32_t nfrags;
    size_t frag;
    void **p;
} frags;

static frags frags_new(size_t block, uint32_t nfrags)
{
    frags f = {nfrags, block / nfrags, calloc(nfrags, sizeof(void *))};
    cr_assert_not_null(f.p);
    for (uint32_t i = 0; i < nfrags; i++) {
        f.p[i] = malloc(f.frag);
        cr_assert_not_null(f.p[i]);
    }
    return f;
}

static void frags_free(frags *f)
{
    for (uint32_t i = 0; i < f->nfrags; i++)
        free(f->p[i]);
    free(f->p);
}

static kvt_xfer xfer(uint32_t slot, const frags *f)
{
    kvt_xfer x;
    memset(&x, 0, sizeof x);
    x.slot = slot;
    x.nfrags = f->nfrags;
    x.frags = f->p;
    x.status = 12345;
    return x;
}

/* ------------------------------------------------------------- open/close */

Test(dram, open_close_geometry)
{
    const kvt_tier_ops *ops = &kvt__tier_dram;
    cr_assert_eq(ops->version, KVT_TIER_OPS_VERSION);
    cr_assert_str_eq(ops->name, "dram");
    /* CUDA builds also take device memory (docs/gpu.md); every build reads
     * fragment ranges itself (layer-wise gets). */
    cr_assert_eq(ops->caps & ~(uint32_t)KVT_TCAP_CUDA_MEM, KVT_TCAP_HOST_PTR | KVT_TCAP_FRAG_RANGE);
    cr_assert_null(ops->discard);

    /* 3.5 blocks of capacity: 3 slots. */
    size_t block = 96 * KIB;
    kvt_tier_params p = params(3 * block + block / 2, block, 2);
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    cr_assert_eq(ops->open(&p, &t, &n), 0, "%s", kvt_last_error());
    cr_assert_eq(n, 3);

    size_t bytes = 0;
    char *arena = kvt__dram_arena(t, &bytes);
    cr_assert_not_null(arena);
    cr_assert_eq((uintptr_t)arena % (2 * MIB), 0, "arena %p not 2 MiB aligned", (void *)arena);
    cr_assert_eq(bytes, 2 * MIB);
    for (uint32_t s = 0; s < 3; s++)
        cr_assert_eq(ops->slot_ptr(t, s), arena + s * block);
    cr_assert_null(ops->slot_ptr(t, 3));
    /* Pre-faulted arena of fresh memory: all zero, all resident. */
    cr_assert_eq(first_not(arena, 0, bytes), SIZE_MAX);
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec[2 * MIB / 4096];
    cr_assert_eq(mincore(arena, bytes, vec), 0);
    for (size_t i = 0; i < bytes / (size_t)page; i++)
        cr_assert(vec[i] & 1, "arena page %zu not resident after open", i);

    cr_assert_eq(stat_of(t, "dram.slots"), 3);
    cr_assert_eq(stat_of(t, "dram.arena_bytes"), 2 * MIB);
    cr_assert_eq(stat_of(t, "dram.hugepages"), 1);
    cr_assert_eq(stat_of(t, "dram.copy_threads"), 2);
    cr_assert_leq(stat_of(t, "dram.thp_bytes"), 2 * MIB);
    cr_assert_lt(stat_of(t, "dram.open_ms"), 10000);
    uint64_t node = stat_of(t, "dram.numa_node");
    if (node != UINT64_MAX) {
        char path[64];
        snprintf(path, sizeof path, "/sys/devices/system/node/node%llu",
                 (unsigned long long)node);
        cr_assert_eq(access(path, F_OK), 0, "dram.numa_node %llu has no %s",
                     (unsigned long long)node, path);
    }
    ops->close(t);
    ops->close(NULL);
    cr_assert_null(kvt__dram_arena(NULL, &bytes));
    cr_assert_eq(bytes, 0);
}

Test(dram, hugepages_off_is_reported)
{
    kvt_tier_params p = params(4 * MIB, MIB, 1);
    set_opt(&p, "hugepages", 0);
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    cr_assert_eq(kvt__tier_dram.open(&p, &t, &n), 0, "%s", kvt_last_error());
    cr_assert_eq(n, 4);
    cr_assert_eq(stat_of(t, "dram.hugepages"), 0);
    cr_assert_eq(stat_of(t, "dram.thp_bytes"), 0);
    kvt__tier_dram.close(t);
}

/* Pages of [mem, mem + len) not resident, by mincore; SIZE_MAX if all are. */
static size_t first_absent_page(const void *mem, size_t len)
{
    size_t pages = len / 4096;
    unsigned char *vec = malloc(pages);
    cr_assert_not_null(vec);
    cr_assert_eq(mincore((void *)mem, len, vec), 0);
    size_t at = SIZE_MAX;
    for (size_t i = 0; i < pages && at == SIZE_MAX; i++)
        if (!(vec[i] & 1))
            at = i;
    free(vec);
    return at;
}

static uint64_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* One open of a 37-slot arena (40 MiB mapped, 20 huge-page units, split
 * unevenly across threads), huge pages on or off, 1..4 copy threads: every
 * page resident after open, RSS grown by the arena, bytes round-trip in the
 * first and last slot and the rest is still zero, the breakdown present. */
static void open_fully_touched(int hugepages, uint32_t copy_threads)
{
    const kvt_tier_ops *ops = &kvt__tier_dram;
    size_t block = MIB + 64 * KIB;
    kvt_tier_params p = params(37 * block, block, copy_threads);
    set_opt(&p, "hugepages", hugepages);
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    uint64_t rss = rss_bytes();
    cr_assert_eq(ops->open(&p, &t, &n), 0, "%s", kvt_last_error());
    uint64_t after = rss_bytes(), grown = after > rss ? after - rss : 0;
    size_t bytes = 0;
    char *arena = kvt__dram_arena(t, &bytes);
    cr_assert_eq(bytes, 40 * MIB);
    size_t absent = first_absent_page(arena, bytes);
    cr_assert_eq(absent, SIZE_MAX, "hugepages %d, %u threads: page %zu of %zu not resident",
                 hugepages, copy_threads, absent, bytes / 4096);
    /* mincore above is exact; RSS is the process's, and the allocator
     * (ASan's especially) may give memory back meanwhile: an eighth of slack. */
    cr_assert_geq(grown, bytes - bytes / 8, "RSS grew by %llu, arena %zu",
                  (unsigned long long)grown, bytes);
    cr_assert_eq(first_not(arena, 0, bytes), SIZE_MAX);

    uint64_t seed = test_seed("open_fully_touched") + copy_threads * 2 + (unsigned)hugepages;
    frags in = frags_new(block, 4), out = frags_new(block, 4);
    uint32_t slots[2] = {0, n - 1};
    for (int i = 0; i < 2; i++) {
        for (uint32_t f = 0; f < 4; f++)
            fill_random(in.p[f], in.frag, &seed);
        kvt_xfer x = xfer(slots[i], &in);
        cr_assert_eq(ops->write(t, &x, 1, KVT_MEM_HOST), 0, "%s", kvt_last_error());
        x = xfer(slots[i], &out);
        cr_assert_eq(ops->read(t, &x, 1, KVT_MEM_HOST), 0, "%s", kvt_last_error());
        for (uint32_t f = 0; f < 4; f++)
            cr_assert_eq(first_diff(in.p[f], out.p[f], in.frag), SIZE_MAX, "slot %u frag %u",
                         slots[i], f);
    }
    cr_assert_eq(first_not(arena + block, 0, (size_t)(n - 2) * block), SIZE_MAX);
    frags_free(&in);
    frags_free(&out);

    uint64_t threads = stat_of(t, "dram.touch_threads");
    cr_assert(threads >= 1 && threads <= 20, "dram.touch_threads %llu",
              (unsigned long long)threads);
    cr_assert_leq(stat_of(t, "dram.touch_ms"), stat_of(t, "dram.open_ms"));
    cr_assert_leq(stat_of(t, "dram.mmap_ms"), stat_of(t, "dram.open_ms"));
    cr_assert_leq(stat_of(t, "dram.thp_scan_ms"), stat_of(t, "dram.open_ms"));
    cr_assert_leq(stat_of(t, "dram.thp_bytes"), hugepages ? bytes : 0);
    ops->close(t);
}

Test(dram, open_touches_whole_arena, .timeout = 60)
{
    for (uint32_t threads = 1; threads <= 4; threads++) {
        open_fully_touched(1, threads);
        open_fully_touched(0, threads);
    }
}

/* Huge pages asked for but refused (THP disabled for this process, which
 * Criterion forks per test): the touch at one byte per 2 MiB left most pages
 * unfaulted, and open must have touched them all the same. */
Test(dram, open_touches_every_page_when_thp_refused, .timeout = 60)
{
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
        cr_skip_test("prctl(PR_SET_THP_DISABLE) refused: %s", strerror(errno));
    for (uint32_t threads = 1; threads <= 2; threads++) {
        open_fully_touched(1, threads);
        kvt_tier_params p = params(8 * MIB, MIB, threads);
        kvt_tier_impl *t = NULL;
        uint32_t n = 0;
        cr_assert_eq(kvt__tier_dram.open(&p, &t, &n), 0, "%s", kvt_last_error());
        cr_assert_eq(stat_of(t, "dram.thp_bytes"), 0);
        kvt__tier_dram.close(t);
    }
}

Test(dram, open_errors)
{
    const kvt_tier_ops *ops = &kvt__tier_dram;
    kvt_tier_impl *t = (kvt_tier_impl *)&t;
    uint32_t n = 77;

    kvt_tier_params p = params(4095, 4096, 1);
    cr_assert_eq(ops->open(&p, &t, &n), KVT_ECAPACITY);
    cr_assert_null(t);
    cr_assert_eq(n, 77);
    cr_assert(strstr(kvt_last_error(), "4095"), "message: %s", kvt_last_error());

    p = params(0, 4096, 1);
    cr_assert_eq(ops->open(&p, &t, &n), KVT_ECAPACITY);
    p = params(1 << 20, 0, 1);
    cr_assert_eq(ops->open(&p, &t, &n), KVT_ESIZE);
    /* 2^33 one-byte slots do not fit a uint32_t slot number. */
    p = params((uint64_t)1 << 33, 1, 1);
    cr_assert_eq(ops->open(&p, &t, &n), KVT_ECAPACITY);
    p = params(1 << 20, 4096, 1);
    set_opt(&p, "numa_node", 100000);
    cr_assert_eq(ops->open(&p, &t, &n), KVT_EINVAL);
    cr_assert_null(t);
    cr_assert_eq(ops->open(NULL, &t, &n), KVT_ENULL);
    cr_assert_eq(ops->open(&p, NULL, &n), KVT_ENULL);
    cr_assert_eq(ops->open(&p, &t, NULL), KVT_ENULL);
}

/* ------------------------------------------------------------ round trips */

/* Writes nslots random blocks as nfrags fragments, checks the slot layout
 * (fragment f at offset f * block / nfrags) through slot_ptr, reads them back
 * into poisoned fragments, then reads again with another fragment count. */
static void round_trip(size_t block, uint32_t nfrags, uint32_t nslots, uint32_t threads,
                       uint64_t *seed)
{
    const kvt_tier_ops *ops = &kvt__tier_dram;
    kvt_tier_impl *t = open_tier(nslots, block, threads);
    frags *src = calloc(nslots, sizeof *src), *dst = calloc(nslots, sizeof *dst);
    kvt_xfer *x = calloc(nslots, sizeof *x);
    cr_assert(src && dst && x);
    /* Slots written in reverse order: slot and batch index differ. */
    for (uint32_t i = 0; i < nslots; i++) {
        src[i] = frags_new(block, nfrags);
        for (uint32_t f = 0; f < nfrags; f++)
            fill_random(src[i].p[f], src[i].frag, seed);
        x[i] = xfer(nslots - 1 - i, &src[i]);
    }
    cr_assert_eq(ops->write(t, x, nslots, KVT_MEM_HOST), 0, "%s", kvt_last_error());
    for (uint32_t i = 0; i < nslots; i++) {
        cr_assert_eq(x[i].status, 0);
        const char *slot = ops->slot_ptr(t, nslots - 1 - i);
        for (uint32_t f = 0; f < nfrags; f++) {
            size_t d = first_diff(slot + f * src[i].frag, src[i].p[f], src[i].frag);
            cr_assert_eq(d, SIZE_MAX, "block %zu frags %u: slot %u frag %u differs at byte %zu",
                         block, nfrags, nslots - 1 - i, f, d);
        }
    }

    for (uint32_t i = 0; i < nslots; i++) {
        dst[i] = frags_new(block, nfrags);
        for (uint32_t f = 0; f < nfrags; f++)
            memset(dst[i].p[f], POISON, dst[i].frag);
        x[i] = xfer(nslots - 1 - i, &dst[i]);
    }
    cr_assert_eq(ops->read(t, x, nslots, KVT_MEM_HOST), 0, "%s", kvt_last_error());
    for (uint32_t i = 0; i < nslots; i++) {
        cr_assert_eq(x[i].status, 0);
        for (uint32_t f = 0; f < nfrags; f++) {
            size_t d = first_diff(dst[i].p[f], src[i].p[f], src[i].frag);
            cr_assert_eq(d, SIZE_MAX, "block %zu frags %u: read slot %u frag %u differs at %zu",
                         block, nfrags, nslots - 1 - i, f, d);
        }
    }

    /* Whole blocks read back as one fragment equal the concatenation. */
    frags whole = frags_new(block, 1);
    for (uint32_t i = 0; i < nslots; i++) {
        memset(whole.p[0], POISON, block);
        kvt_xfer one = xfer(nslots - 1 - i, &whole);
        cr_assert_eq(ops->read(t, &one, 1, KVT_MEM_HOST), 0);
        for (uint32_t f = 0; f < nfrags; f++)
            cr_assert_eq(first_diff((char *)whole.p[0] + f * src[i].frag, src[i].p[f],
                                    src[i].frag), SIZE_MAX);
    }
    cr_assert_eq(stat_of(t, "dram.bytes_written"), (uint64_t)nslots * block);
    cr_assert_eq(stat_of(t, "dram.bytes_read"), (uint64_t)2 * nslots * block);

    frags_free(&whole);
    for (uint32_t i = 0; i < nslots; i++) {
        frags_free(&src[i]);
        frags_free(&dst[i]);
    }
    free(src);
    free(dst);
    free(x);
    ops->close(t);
}

Test(dram, round_trip_sizes_and_fragments, .timeout = 60)
{
    uint64_t seed = test_seed("round_trip_sizes_and_fragments");
    static const size_t blocks[] = {4 * KIB, 64 * KIB, 1 * MIB, 16 * MIB};
    static const uint32_t nfrags[] = {1, 4, 64};
    for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++)
        for (size_t f = 0; f < sizeof nfrags / sizeof *nfrags; f++) {
            uint32_t nslots = blocks[b] >= 16 * MIB ? 3 : 5;
            round_trip(blocks[b], nfrags[f], nslots, 2, &seed);
        }
}

Test(dram, round_trip_odd_block_single_thread)
{
    uint64_t seed = test_seed("round_trip_odd_block_single_thread") + 1;
    /* 3 * 5 * 7 * 4099: slots are not aligned to anything. */
    round_trip(3 * 5 * 7 * 4099, 105, 7, 1, &seed);
    round_trip(3 * 5 * 7 * 4099, 3, 7, 3, &seed);
}

/* Large batches go to the helpers; small ones stay on the caller. */
Test(dram, batches_take_pool_or_inline_path)
{
    uint64_t seed = test_seed("batches_take_pool_or_inline_path") + 2;
    const kvt_tier_ops *ops = &kvt__tier_dram;
    kvt_tier_impl *t = open_tier(16, 256 * KIB, 4);
    cr_assert_eq(stat_of(t, "dram.copy_batches_pooled"), 0);

    frags small = frags_new(256 * KIB, 4);
    for (uint32_t f = 0; f < 4; f++)
        fill_random(small.p[f], small.frag, &seed);
    kvt_xfer x = xfer(5, &small);
    cr_assert_eq(ops->write(t, &x, 1, KVT_MEM_HOST), 0);
    cr_assert_eq(stat_of(t, "dram.copy_batches_pooled"), 0, "256 KiB batch went to the pool");

    frags big[16];
    kvt_xfer xs[16];
    for (uint32_t i = 0; i < 16; i++) {
        big[i] = frags_new(256 * KIB, 8);
        for (uint32_t f = 0; f < 8; f++)
            fill_random(big[i].p[f], big[i].frag, &seed);
        xs[i] = xfer(i, &big[i]);
    }
    cr_assert_eq(ops->write(t, xs, 16, KVT_MEM_HOST), 0);
    cr_assert_eq(stat_of(t, "dram.copy_batches_pooled"), 1, "4 MiB batch stayed inline");
    for (uint32_t i = 0; i < 16; i++) {
        for (uint32_t f = 0; f < 8; f++)
            memset(big[i].p[f], POISON, big[i].frag);
    }
    cr_assert_eq(ops->read(t, xs, 16, KVT_MEM_HOST), 0);
    cr_assert_eq(stat_of(t, "dram.copy_batches_pooled"), 2);
    for (uint32_t i = 0; i < 16; i++) {
        const char *slot = ops->slot_ptr(t, i);
        for (uint32_t f = 0; f < 8; f++)
            cr_assert_eq(first_diff(big[i].p[f], slot + f * big[i].frag, big[i].frag),
                         SIZE_MAX, "slot %u frag %u", i, f);
    }
    for (uint32_t i = 0; i < 16; i++)
        frags_free(&big[i]);
    frags_free(&small);
    ops->close(t);
}

/* ------------------------------------------------------------ bad xfers */

Test(dram, bad_xfers_get_their_status_others_complete)
{
    uint64_t seed = test_seed("bad_xfers_get_their_status_others_complete") + 3;
    const kvt_tier_ops *ops = &kvt__tier_dram;
    kvt_tier_impl *t = open_tier(4, 64 * KIB, 2);
    frags a = frags_new(64 * KIB, 4), b = frags_new(64 * KIB, 4);
    for (uint32_t f = 0; f < 4; f++) {
        fill_random(a.p[f], a.frag, &seed);
        fill_random(b.p[f], b.frag, &seed);
    }
    void *with_null[4] = {a.p[0], a.p[1], NULL, a.p[3]};
    kvt_xfer x[6] = {xfer(0, &a), xfer(4, &a), xfer(3, &b), xfer(1, &a), xfer(2, &a),
                     xfer(UINT32_MAX, &a)};
    x[3].nfrags = 3;       /* does not divide 64 KiB */
    x[4].frags = with_null;
    int rc = ops->write(t, x, 6, KVT_MEM_HOST);
    cr_assert_eq(rc, KVT_EINVAL, "first error is slot 4 of 4: got %d", rc);
    cr_assert_eq(x[0].status, 0);
    cr_assert_eq(x[1].status, KVT_EINVAL);
    cr_assert_eq(x[2].status, 0);
    cr_assert_eq(x[3].status, KVT_EFRAGS);
    cr_assert_eq(x[4].status, KVT_ENULL);
    cr_assert_eq(x[5].status, KVT_EINVAL);
    const char *s0 = ops->slot_ptr(t, 0), *s3 = ops->slot_ptr(t, 3);
    for (uint32_t f = 0; f < 4; f++) {
        cr_assert_eq(first_diff(s0 + f * a.frag, a.p[f], a.frag), SIZE_MAX);
        cr_assert_eq(first_diff(s3 + f * b.frag, b.p[f], b.frag), SIZE_MAX);
    }
    /* Untouched slots stay as the pre-fault left them. */
    cr_assert_eq(first_not(ops->slot_ptr(t, 1), 0, 64 * KIB), SIZE_MAX);
    cr_assert_eq(first_not(ops->slot_ptr(t, 2), 0, 64 * KIB), SIZE_MAX);
    cr_assert_eq(stat_of(t, "dram.bytes_written"), 2 * 64 * KIB);

    kvt_xfer zero = xfer(0, &a);
    zero.nfrags = 0;
    cr_assert_eq(ops->read(t, &zero, 1, KVT_MEM_HOST), KVT_EFRAGS);
    cr_assert_eq(ops->read(t, NULL, 0, KVT_MEM_HOST), 0);
    cr_assert_eq(ops->read(t, NULL, 1, KVT_MEM_HOST), KVT_ENULL);
    frags_free(&a);
    frags_free(&b);
    ops->close(t);
}

/* Host memory labelled KVT_MEM_CUDA: refused, nothing written. Without CUDA
 * in the build that is KVT_EMEMKIND; with it, KVT_EMEMKIND where a GPU can
 * tell the pointer is host memory and KVT_ENODEV where there is no GPU. */
static void assert_cuda_refused(int rc, const kvt_xfer *x)
{
    int want = KVT_HAVE_CUDA && rc == KVT_ENODEV ? KVT_ENODEV : KVT_EMEMKIND;
    cr_assert_eq(rc, want, "rc %d (%s)", rc, kvt_last_error());
    cr_assert_eq(x[0].status, want);
    cr_assert_eq(x[1].status, want);
}

Test(dram, cuda_memory_kind_refused)
{
    const kvt_tier_ops *ops = &kvt__tier_dram;
    kvt_tier_impl *t = open_tier(2, 4 * KIB, 1);
    frags a = frags_new(4 * KIB, 1);
    memset(a.p[0], 0x5A, 4 * KIB);
    kvt_xfer x[2] = {xfer(0, &a), xfer(1, &a)};
    assert_cuda_refused(ops->write(t, x, 2, KVT_MEM_CUDA), x);
    cr_assert_eq(first_not(ops->slot_ptr(t, 0), 0, 4 * KIB), SIZE_MAX, "slot written anyway");
    x[0].status = x[1].status = 0;
    assert_cuda_refused(ops->read(t, x, 2, KVT_MEM_CUDA), x);
    cr_assert_eq(first_not(a.p[0], 0x5A, 4 * KIB), SIZE_MAX, "destination written anyway");
    frags_free(&a);
    ops->close(t);
}

/* ------------------------------------------------------------- concurrency */

typedef struct {
    kvt_tier_impl *t;
    uint32_t first_slot;
    uint32_t nslots;
    size_t block;
    uint64_t seed;
    int rounds;
    char failure[160];
} worker_arg;

static void *worker(void *argp)
{
    worker_arg *w = argp;
    const kvt_tier_ops *ops = &kvt__tier_dram;
    frags src[4], dst[4];
    kvt_xfer x[4];
    uint32_t nfrags = 8;
    for (uint32_t i = 0; i < w->nslots; i++) {
        src[i] = frags_new(w->block, nfrags);
        dst[i] = frags_new(w->block, nfrags);
    }
    for (int r = 0; r < w->rounds && !w->failure[0]; r++) {
        for (uint32_t i = 0; i < w->nslots; i++) {
            for (uint32_t f = 0; f < nfrags; f++) {
                fill_random(src[i].p[f], src[i].frag, &w->seed);
                memset(dst[i].p[f], POISON, dst[i].frag);
            }
            x[i] = xfer(w->first_slot + i, &src[i]);
        }
        int rc = ops->write(w->t, x, w->nslots, KVT_MEM_HOST);
        for (uint32_t i = 0; i < w->nslots; i++)
            x[i] = xfer(w->first_slot + i, &dst[i]);
        int rc2 = ops->read(w->t, x, w->nslots, KVT_MEM_HOST);
        if (rc || rc2) {
            snprintf(w->failure, sizeof w->failure, "round %d: write %d read %d", r, rc, rc2);
            break;
        }
        for (uint32_t i = 0; i < w->nslots && !w->failure[0]; i++)
            for (uint32_t f = 0; f < nfrags; f++) {
                size_t d = first_diff(dst[i].p[f], src[i].p[f], src[i].frag);
                if (d != SIZE_MAX) {
                    snprintf(w->failure, sizeof w->failure,
                             "round %d slot %u frag %u differs at byte %zu", r,
                             w->first_slot + i, f, d);
                    break;
                }
            }
    }
    for (uint32_t i = 0; i < w->nslots; i++) {
        frags_free(&src[i]);
        frags_free(&dst[i]);
    }
    return NULL;
}

Test(dram, threads_on_distinct_slots, .timeout = 60)
{
    uint64_t seed = test_seed("threads_on_distinct_slots") + 4;
    enum { THREADS = 4, PER = 4 };
    size_t block = 512 * KIB;
    kvt_tier_impl *t = open_tier(THREADS * PER, block, 2);
    pthread_t th[THREADS];
    worker_arg w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_arg){t, (uint32_t)(i * PER), PER, block, seed + 1000 * (uint64_t)i, 12, ""};
        cr_assert_eq(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(w[i].failure[0], 0, "thread %d: %s", i, w[i].failure);
    uint64_t pooled = stat_of(t, "dram.copy_batches_pooled");
    uint64_t busy = stat_of(t, "dram.copy_batches_busy");
    cr_assert_eq(pooled + busy, (uint64_t)THREADS * 12 * 2, "pooled %llu busy %llu",
                 (unsigned long long)pooled, (unsigned long long)busy);
    kvt__tier_dram.close(t);
}

/* ------------------------------------------------------------------ copier */

/* Ops of odd lengths at odd offsets inside one source and one destination
 * buffer, with gaps between them that must stay poisoned. */
static void copier_exact(unsigned nthreads, uint64_t *seed)
{
    static const size_t lens[] = {1, 3, 63, 64, 65, 4097, 777777, 0, 129, 1000003, 12345, 2};
    enum { NOPS = sizeof lens / sizeof *lens, GAP = 5 };
    size_t total = 0;
    for (size_t i = 0; i < NOPS; i++)
        total += lens[i] + GAP;
    unsigned char *src = malloc(total + 64), *dst = malloc(total + 64);
    cr_assert(src && dst);
    fill_random(src, total + 64, seed);

    kvt__copier *c = kvt__copier_new(nthreads);
    cr_assert_not_null(c);
    cr_assert_eq(kvt__copier_threads(c), nthreads ? nthreads : 1);
    for (int shift = 0; shift < 3; shift++) {
        kvt__copy_op ops[NOPS];
        /* Destination ops in reverse order of source ops, misaligned by
         * different amounts on each side. */
        size_t so = 1 + (size_t)shift, dof = 7 + (size_t)shift * 13;
        size_t at[NOPS];
        for (size_t i = 0; i < NOPS; i++) {
            at[NOPS - 1 - i] = dof;
            dof += lens[NOPS - 1 - i] + GAP;
        }
        for (size_t i = 0; i < NOPS; i++) {
            ops[i] = (kvt__copy_op){dst + at[i], src + so, lens[i]};
            so += lens[i] + GAP;
        }
        memset(dst, POISON, total + 64);
        kvt__copier_run(c, ops, NOPS);
        unsigned char *expect = malloc(total + 64);
        cr_assert_not_null(expect);
        memset(expect, POISON, total + 64);
        for (size_t i = 0; i < NOPS; i++)
            memcpy(expect + at[i], ops[i].src, lens[i]);
        size_t d = first_diff(dst, expect, total + 64);
        cr_assert_eq(d, SIZE_MAX, "%u threads shift %d: byte %zu differs", nthreads, shift, d);
        free(expect);
    }
    uint64_t pooled, busy;
    kvt__copier_counts(c, &pooled, &busy);
    cr_assert_eq(pooled, nthreads > 1 ? 3u : 0u, "%u threads: %llu batches pooled", nthreads,
                 (unsigned long long)pooled);
    cr_assert_eq(busy, 0);

    /* A small batch stays inline, still exact. */
    memset(dst, POISON, 200);
    kvt__copy_op small = {dst + 3, src + 5, 150};
    kvt__copier_run(c, &small, 1);
    cr_assert_eq(first_diff(dst + 3, src + 5, 150), SIZE_MAX);
    cr_assert_eq(first_not(dst, POISON, 3), SIZE_MAX);
    cr_assert_eq(first_not(dst + 153, POISON, 47), SIZE_MAX);
    kvt__copier_counts(c, &pooled, &busy);
    cr_assert_eq(pooled, nthreads > 1 ? 3u : 0u);
    kvt__copier_run(c, NULL, 0);

    kvt__copier_free(c);
    free(src);
    free(dst);
}

Test(copier, exact_bytes_odd_lengths_unaligned)
{
    uint64_t seed = test_seed("exact_bytes_odd_lengths_unaligned") + 5;
    for (unsigned n = 0; n <= 4; n++)
        copier_exact(n, &seed);
    kvt__copier_free(NULL);
    kvt__copier_run(NULL, NULL, 0);
}

/* One op much larger than the rest: the split falls inside it. */
Test(copier, split_inside_one_large_op)
{
    uint64_t seed = test_seed("split_inside_one_large_op") + 6;
    size_t len = 8 * MIB + 13;
    unsigned char *src = malloc(len + 1), *dst = malloc(len + 3);
    cr_assert(src && dst);
    fill_random(src, len + 1, &seed);
    memset(dst, POISON, len + 3);
    kvt__copier *c = kvt__copier_new(3);
    kvt__copy_op op = {dst + 1, src + 1, len};
    kvt__copier_run(c, &op, 1);
    cr_assert_eq(first_diff(dst + 1, src + 1, len), SIZE_MAX);
    cr_assert_eq(dst[0], POISON);
    cr_assert_eq(dst[len + 1], POISON);
    cr_assert_eq(dst[len + 2], POISON);
    kvt__copier_free(c);
    free(src);
    free(dst);
}

typedef struct {
    kvt__copier *c;
    uint64_t seed;
    int bad;
} caller_arg;

static void *caller(void *argp)
{
    caller_arg *a = argp;
    size_t len = 2 * MIB + 1;
    unsigned char *src = malloc(len), *dst = malloc(len);
    for (int r = 0; r < 20 && !a->bad; r++) {
        fill_random(src, len, &a->seed);
        memset(dst, POISON, len);
        kvt__copy_op ops[2] = {{dst, src, len / 2}, {dst + len / 2, src + len / 2, len - len / 2}};
        kvt__copier_run(a->c, ops, 2);
        a->bad = first_diff(dst, src, len) != SIZE_MAX;
    }
    free(src);
    free(dst);
    return NULL;
}

Test(copier, concurrent_callers_share_one_pool, .timeout = 60)
{
    uint64_t seed = test_seed("concurrent_callers_share_one_pool") + 7;
    kvt__copier *c = kvt__copier_new(2);
    pthread_t th[3];
    caller_arg a[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (caller_arg){c, seed + (uint64_t)i, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, caller, &a[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(a[i].bad, 0, "caller %d got wrong bytes", i);
    uint64_t pooled, busy;
    kvt__copier_counts(c, &pooled, &busy);
    cr_assert_eq(pooled + busy, 60);
    cr_assert_gt(pooled, 0);
    kvt__copier_free(c);
}

/* The pre-fault runs on its own threads (one per CPU), whatever the copier. */
Test(copier, touch_faults_every_page)
{
    size_t len = 9 * MIB + 3 * 4096;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    madvise(m, len, MADV_NOHUGEPAGE);
    size_t pages = len / 4096;
    unsigned char *vec = malloc(pages);
    cr_assert_eq(mincore(m, len, vec), 0);
    size_t before = 0;
    for (size_t i = 0; i < pages; i++)
        before += vec[i] & 1;
    cr_assert_eq(before, 0);
    kvt__prefault(m, len, 4096, NULL);
    cr_assert_eq(mincore(m, len, vec), 0);
    for (size_t i = 0; i < pages; i++)
        cr_assert(vec[i] & 1, "page %zu of %zu not faulted", i, pages);
    cr_assert_eq(first_not(m, 0, len), SIZE_MAX);
    free(vec);
    munmap(m, len);
}

/* With a CPU set, one part per CPU of the set that this process may use;
 * a set outside this process's CPUs falls back to all online CPUs. Every
 * page faulted either way. */
Test(copier, touch_on_a_cpu_set)
{
    size_t len = 9 * MIB + 3 * 4096;
    cpu_set_t mine, one, none;
    cr_assert_eq(sched_getaffinity(0, sizeof mine, &mine), 0);
    CPU_ZERO(&one);
    CPU_ZERO(&none);
    int first_cpu = -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &mine) && first_cpu < 0)
            first_cpu = c;
        if (!CPU_ISSET(c, &mine) && CPU_COUNT(&none) == 0)
            CPU_SET(c, &none);
    }
    CPU_SET(first_cpu, &one);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    size_t all = online > 1 ? (size_t)online : 1;
    if (all > 5) /* 9 MiB + 12 KiB: 5 units of 2 MiB */
        all = 5;
    size_t mine_n = (size_t)CPU_COUNT(&mine) < 5 ? (size_t)CPU_COUNT(&mine) : 5;
    const struct {
        const cpu_set_t *cpus;
        size_t parts;
    } cases[] = {{NULL, all}, {&mine, mine_n}, {&one, 1}, {&none, all}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char *m =
            mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(m, MAP_FAILED);
        madvise(m, len, MADV_NOHUGEPAGE);
        unsigned parts = kvt__prefault(m, len, 4096, cases[c].cpus);
        cr_assert_eq(parts, cases[c].parts, "case %zu: %u parts, expected %zu", c, parts,
                     cases[c].parts);
        size_t absent = first_absent_page(m, len);
        cr_assert_eq(absent, SIZE_MAX, "case %zu: page %zu not faulted", c, absent);
        munmap(m, len);
    }
    cr_assert_eq(kvt__prefault(NULL, len, 4096, &one), 0);
}

/* -------------------------------------------------------------------- numa */

static int node_dir_exists(int node)
{
    char path[64];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d", node);
    return access(path, F_OK) == 0;
}

/* The node chosen for (configured, pci); the call must succeed. */
static int node_for(int configured, const char *pci)
{
    int node = -7;
    int rc = kvt__numa_node_for(configured, pci, &node);
    cr_assert_eq(rc, 0, "node_for(%d, %s): %d %s", configured, pci ? pci : "NULL", rc,
                 kvt_last_error());
    return node;
}

Test(numa, absurd_configured_node_is_einval)
{
    int node = 5;
    cr_assert_eq(kvt__numa_node_for(100000, NULL, &node), KVT_EINVAL);
    cr_assert_eq(node, -1);
    cr_assert(strstr(kvt_last_error(), "100000"), "message: %s", kvt_last_error());
    cr_assert_eq(kvt__numa_node_for(INT_MAX, "0000:00:00.0", &node), KVT_EINVAL);
    cr_assert_eq(kvt__numa_node_for(-1, NULL, NULL), KVT_ENULL);
}

Test(numa, chosen_node_is_valid_or_none)
{
    int node = node_for(-1, NULL);
    cr_assert(node == -1 || (node >= 0 && node_dir_exists(node)), "node %d", node);
    /* Garbage and path tricks in a bus id fall back to the local node. */
    cr_assert_eq(node_for(-1, "../../../etc/passwd"), node);
    cr_assert_eq(node_for(-1, "zz:00.0"), node);
    cr_assert_eq(node_for(-1, ""), node);
    int zero = node_for(0, NULL);
    cr_assert(zero == 0 || zero == -1, "node 0 gave %d", zero);
    cr_assert_eq(zero, node == -1 ? -1 : 0);
}

/* A real PCI device, in nvidia-smi's spelling, gives the node sysfs lists. */
Test(numa, pci_device_node_from_sysfs)
{
    int local = node_for(-1, NULL);
    FILE *ls = popen("ls /sys/bus/pci/devices 2>/dev/null | head -1", "r");
    char id[64] = "";
    if (ls) {
        if (!fgets(id, sizeof id, ls))
            id[0] = '\0';
        pclose(ls);
    }
    id[strcspn(id, "\n")] = '\0';
    if (!id[0])
        cr_skip_test("no PCI devices visible in /sys/bus/pci/devices");
    char path[128];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/numa_node", id);
    int expect = -1;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%d", &expect) != 1)
            expect = -1;
        fclose(f);
    }
    char upper[64] = "0000";
    for (size_t i = 0; id[i] && i + 5 < sizeof upper; i++)
        upper[4 + i] = (char)((id[i] >= 'a' && id[i] <= 'f') ? id[i] - 32 : id[i]);
    upper[4 + strlen(id)] = '\0';
    int want = local == -1 ? -1 : expect >= 0 ? expect : local;
    cr_assert_eq(node_for(-1, id), want, "%s", id);
    cr_assert_eq(node_for(-1, upper), want, "%s", upper);
    cr_assert_eq(node_for(-1, id + 5), want, "%s", id + 5);
}

Test(numa, bind_range)
{
    int node = node_for(-1, NULL);
    size_t len = 4 * MIB;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    cr_assert_eq(kvt__numa_bind(m, len, -1), 0);
    cr_assert_eq(kvt__numa_bind(m, len, node), 0, "%s", kvt_last_error());
    memset(m, 1, len);
    munmap(m, len);
}

Test(numa, cpulist_parse_exact)
{
    cpu_set_t set;
    cr_assert_eq(kvt__cpulist_parse("0-3,8,10-11\n", &set), 0);
    cr_assert_eq(CPU_COUNT(&set), 7);
    for (int cpu = 0; cpu < 16; cpu++)
        cr_assert_eq(CPU_ISSET(cpu, &set) != 0, cpu <= 3 || cpu == 8 || cpu == 10 || cpu == 11,
                     "cpu %d", cpu);
    cr_assert_eq(kvt__cpulist_parse("5", &set), 0);
    cr_assert_eq(CPU_COUNT(&set), 1);
    cr_assert(CPU_ISSET(5, &set));
    cr_assert_eq(kvt__cpulist_parse("", &set), 0);
    cr_assert_eq(CPU_COUNT(&set), 0);
    cr_assert_eq(kvt__cpulist_parse("3-1", &set), KVT_EINVAL);
    cr_assert_eq(kvt__cpulist_parse("1-", &set), KVT_EINVAL);
    cr_assert_eq(kvt__cpulist_parse("a", &set), KVT_EINVAL);
    cr_assert_eq(kvt__cpulist_parse("1;2", &set), KVT_EINVAL);
    cr_assert_eq(kvt__cpulist_parse("0-100000", &set), KVT_EINVAL);
}

Test(numa, node_cpus_and_helper_affinity)
{
    int node = node_for(-1, NULL);
    if (node < 0)
        cr_skip_test("NUMA unavailable: no node to place helpers on");
    cpu_set_t set, helper;
    cr_assert_eq(kvt__numa_node_cpus(node, &set), 0, "%s", kvt_last_error());
    cr_assert_gt(CPU_COUNT(&set), 0);
    int cpu = sched_getcpu();
    cr_assert(CPU_ISSET(cpu, &set), "the local node %d lacks the running CPU %d", node, cpu);
    cr_assert_eq(kvt__numa_node_cpus(100000, &set), KVT_EINVAL);

    /* The tier moves its helpers onto the arena's node. */
    kvt_tier_impl *t = open_tier(2, 64 * KIB, 2);
    cr_assert_eq(stat_of(t, "dram.helpers_on_node"), 1);
    kvt__tier_dram.close(t);

    kvt__copier *c = kvt__copier_new(2);
    CPU_ZERO(&helper);
    CPU_SET(cpu, &helper);
    cr_assert_eq(kvt__copier_set_affinity(c, &helper), 0);
    kvt__copier_free(c);
}

/* The shared arena (option "shared") is a memfd no client can resize or
 * reseal: a client that added F_SEAL_FUTURE_WRITE would lock every later
 * client out of the arena, one that shrank it would fault the store. */
Test(dram, shared_arena_is_sealed_for_good)
{
    kvt_tier_params p = params(4 * MIB, 2 * MIB, 1);
    set_opt(&p, "shared", 1);
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    cr_assert_eq(kvt__tier_dram.open(&p, &t, &n), 0, "%s", kvt_last_error());
    size_t bytes = 0, fd_bytes = 0;
    char *arena = kvt__dram_arena(t, &bytes);
    int fd = kvt__dram_shared_fd(arena, &fd_bytes);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fd_bytes, bytes);
    int seals = fcntl(fd, F_GET_SEALS);
    cr_assert_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, "seals %#x", seals);
    cr_assert_neq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
    cr_assert_neq(ftruncate(fd, 0), 0);
    /* a client's mapping still works */
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    munmap(m, bytes);
    kvt__tier_dram.close(t);
}
