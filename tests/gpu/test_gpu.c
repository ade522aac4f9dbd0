/* test_gpu.c — the gpu suite: device memory through every tier path, copy methods, stream ordering, concurrency; skips without a GPU. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "tier/staged.h"
#include "tier/tier.h"
#include "../tier_kinds.h"

/*
 * Every test initialises CUDA in its own process (Criterion forks one per
 * test; the runner never touches CUDA) and skips with the reason when no
 * device is usable. Data is random (seed printed; KVT_TEST_SEED repeats a
 * run), destinations are poisoned first, and every comparison is exact.
 * Fragments of a batch are interleaved in one allocation (fragment f of
 * block i at (f * nblocks + i) * frag), as in layer-separate engine
 * layouts, so no two fragments of a block are adjacent.
 * KVT_GPU_TEST_SMALL=1 shrinks the sizes for compute-sanitizer runs.
 */

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define POISON 0xA5
#define MS 1000000ull

extern const unsigned char kvt_test_gpu_fatbin[];

static const kvt__cudart *rt;

#define CK(call)                                                                          \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        cr_assert_eq(e_, cudaSuccess, "%s: %s", #call, rt->cudaGetErrorString(e_));       \
    } while (0)

static int small_run(void)
{
    const char *e = getenv("KVT_GPU_TEST_SMALL");
    return e && *e && *e != '0';
}

static uint64_t seed;

/* CUDA up in this test's process, or the test skips. method: force one
 * small-fragment copy method (KVTIER_CUDA_COPY), read at first use. */
static void gpu_init(const char *test, const char *method)
{
    if (method)
        setenv("KVTIER_CUDA_COPY", method, 1);
    if (kvt__cuda_load())
        cr_skip_test("no CUDA device: %s", kvt__cuda_why());
    rt = kvt__cuda_rt();
    CK(rt->cudaSetDevice(0));
    CK(rt->cudaFree(NULL)); /* the context, now */
    const char *env = getenv("KVT_TEST_SEED");
    seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    fprintf(stderr, "test_gpu %s: seed %llu (KVT_TEST_SEED=%llu repeats it)\n", test,
            (unsigned long long)seed, (unsigned long long)seed);
}

/* splitmix64, as mix() in gpu_test_kernels.cu. */
static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Byte i is byte i % 8 of mix(s + i / 8): spin_then_fill writes the same. */
static void pattern(uint8_t *p, size_t n, uint64_t s)
{
    for (size_t w = 0; w * 8 < n; w++) {
        uint64_t v = mix(s + w);
        for (size_t b = 0; b < 8 && w * 8 + b < n; b++)
            p[w * 8 + b] = (uint8_t)(v >> (8 * b));
    }
}

static kvt_key key_of(uint64_t i)
{
    kvt_key ns, k;
    kvt_ns_key(NULL, 0, &ns);
    uint32_t tok[2] = {(uint32_t)i, (uint32_t)(i >> 32)};
    kvt_key_chain(&ns, tok, 2, 2, &k, 1);
    return k;
}

static void keys_of(kvt_key *k, size_t n, uint64_t first)
{
    for (size_t i = 0; i < n; i++)
        k[i] = key_of(first + i);
}

/* ----------------------------------------------------------------- batches */

/* n blocks of `frags` fragments of `frag` bytes, interleaved, in device
 * (dev) or host memory, with the expected bytes kept on the host. */
typedef struct batch {
    size_t n, frags, frag, total;
    int on_device;
    uint8_t *mem;
    uint8_t *expect;
    void **ptrs;
} batch;

static void batch_new(batch *b, size_t n, size_t frags, size_t frag, int on_device)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    b->frags = frags;
    b->frag = frag;
    b->total = n * frags * frag;
    b->on_device = on_device;
    if (on_device)
        CK(rt->cudaMalloc((void **)&b->mem, b->total));
    else
        cr_assert_not_null(b->mem = malloc(b->total));
    cr_assert_not_null(b->expect = malloc(b->total));
    cr_assert_not_null(b->ptrs = malloc(n * frags * sizeof *b->ptrs));
    for (size_t i = 0; i < n; i++)
        for (size_t f = 0; f < frags; f++)
            b->ptrs[i * frags + f] = b->mem + (f * n + i) * frag;
}

static void batch_free(batch *b)
{
    if (b->on_device)
        rt->cudaFree(b->mem);
    else
        free(b->mem);
    free(b->expect);
    free(b->ptrs);
}

/* Random contents (expected = what is in memory). */
static void batch_fill(batch *b, uint64_t s)
{
    pattern(b->expect, b->total, s);
    if (b->on_device)
        CK(rt->cudaMemcpy(b->mem, b->expect, b->total, cudaMemcpyHostToDevice));
    else
        memcpy(b->mem, b->expect, b->total);
}

static void batch_poison(batch *b)
{
    if (b->on_device)
        CK(rt->cudaMemset(b->mem, POISON, b->total));
    else
        memset(b->mem, POISON, b->total);
}

/* Block i of `got` holds block i of `want` (fragment by fragment), or,
 * where present[i] is 0, is still poisoned. */
static void batch_check(const batch *got, const batch *want, const int *present, const char *what)
{
    uint8_t *h = malloc(got->total);
    cr_assert_not_null(h);
    if (got->on_device)
        CK(rt->cudaMemcpy(h, got->mem, got->total, cudaMemcpyDeviceToHost));
    else
        memcpy(h, got->mem, got->total);
    for (size_t i = 0; i < got->n; i++) {
        for (size_t f = 0; f < got->frags; f++) {
            size_t at = (f * got->n + i) * got->frag;
            const uint8_t *g = h + at;
            for (size_t j = 0; j < got->frag; j++) {
                int ok = present && !present[i] ? g[j] == POISON : g[j] == want->expect[at + j];
                if (!ok) {
                    free(h);
                    cr_assert_fail("%s: block %zu fragment %zu byte %zu of %zu: %s", what, i, f,
                                   j, got->frag,
                                   present && !present[i] ? "written although missing"
                                                          : "wrong byte");
                }
            }
        }
    }
    free(h);
}

/* ------------------------------------------------------------------ stores */

typedef struct tiers {
    uint64_t hbm, dram, nvme; /* blocks */
    uint64_t hbm_ttl_ms;
    int manual;
    int workers;
} tiers;

static char nvme_path[512];

static kvt_store *open_store(size_t block, size_t frags, tiers t)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)block), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, (int64_t)frags), 0);
    if (t.workers)
        cr_assert_eq(kvt_config_set(c, KVT_OPT_WORKERS, t.workers), 0);
    if (t.manual)
        cr_assert_eq(kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1), 0);
    if (t.hbm) {
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "hbm"), "capacity",
                                         (int64_t)(t.hbm * block)), 0);
        kvt_config_tier_set(c, kvt_test_tier(c, "hbm"), "ttl_ms", (int64_t)t.hbm_ttl_ms);
    }
    if (t.dram)
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity",
                                         (int64_t)(t.dram * block)), 0);
    if (t.nvme) {
#if KVT_HAVE_URING
        uint64_t slot;
        cr_assert_eq(kvt_slot_bytes("nvme", block, &slot), 0);
        const char *dir = getenv("KVT_BUILD_ROOT");
        snprintf(nvme_path, sizeof nvme_path, "%s/gpu-%d.kvt", dir ? dir : ".", (int)getpid());
        unlink(nvme_path);
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity",
                                         (int64_t)(t.nvme * slot)), 0);
        cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", nvme_path), 0);
#else
        cr_skip_test("built without io_uring: no NVMe tier");
#endif
    }
    int rc = kvt_open(c, &s);
    kvt_config_free(c);
    cr_assert_eq(rc, 0, "open: %s", kvt_last_error());
    if (t.hbm)
        cr_assert_eq(kvt_test_tier_available(s, "hbm"), 1, "%s", kvt_last_error());
    return s;
}

static void close_store(kvt_store *s)
{
    cr_assert_eq(kvt_close(s), 0);
    if (nvme_path[0])
        unlink(nvme_path);
}

static uint64_t stat_of(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    kvt_stat(s, name, &v);
    return v;
}

/* Waits until the DRAM arena is pinned (the fast paths need it). */
static void wait_pinned(kvt_store *s)
{
    for (int i = 0; i < 600; i++) {
        if (stat_of(s, "dram.cuda_pinned_bytes") == stat_of(s, "dram.arena_bytes"))
            return;
        usleep(100000);
    }
    cr_assert_fail("DRAM arena not pinned after 60 s: %llu of %llu bytes",
                   (unsigned long long)stat_of(s, "dram.cuda_pinned_bytes"),
                   (unsigned long long)stat_of(s, "dram.arena_bytes"));
}

static kvt_io_opts dev_opts(int32_t *status)
{
    return (kvt_io_opts){.size = sizeof(kvt_io_opts), .mem_kind = KVT_MEM_CUDA, .device = 0,
                         .status = status};
}

static void all_ok(const int32_t *status, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(status[i], 0, "%s: block %zu: %s", what, i, kvt_strerror(status[i]));
}

/* Puts src's n blocks under keys and gets them back into dst with the
 * options o (whose statuses are status): every block stored and read, byte
 * for byte. */
static void put_get_exact(kvt_store *s, const kvt_key *keys, size_t n, const batch *src,
                          const batch *dst, const kvt_io_opts *o, const int32_t *status,
                          const char *what)
{
    cr_assert_eq(kvt_put(s, keys, n, src->ptrs, o, NULL), (int)n, "%s: put: %s", what,
                 kvt_last_error());
    all_ok(status, n, what);
    cr_assert_eq(kvt_get(s, keys, n, dst->ptrs, o, NULL), (int)n, "%s: get: %s", what,
                 kvt_last_error());
    all_ok(status, n, what);
    batch_check(dst, src, NULL, what);
}

/* --------------------------------------------------- round trips by size */

/* Fragment size classes: below, at and above the kernel's piece size and
 * the copy-engine crossover, plus one whose fragments are not 16-byte
 * aligned in the slot (only the batch/copy-engine paths may take those). */
static const size_t size_classes[] = {8 * KIB,  16 * KIB, 64 * KIB, 256 * KIB,
                                      1 * MIB,  2 * MIB,  12 * KIB + 8};
#define NCLASSES (sizeof size_classes / sizeof size_classes[0])
#define FRAGS 4

enum { VIA_DRAM = 1, VIA_HBM = 2, VIA_NVME = 3 };

/* For each size class, in a store whose only tier is `via`:
 * GPU -> tier -> GPU, GPU -> tier -> host, host -> tier -> GPU. */
static void round_trips(int via, int pinned_first)
{
    for (size_t c = 0; c < NCLASSES; c++) {
        size_t frag = size_classes[c], block = frag * FRAGS;
        size_t n = small_run() ? 3 : frag <= 64 * KIB ? 48 : 8;
        tiers t = {0};
        if (via == VIA_DRAM)
            t.dram = 2 * n;
        else if (via == VIA_HBM)
            t.hbm = 2 * n;
        else
            t.nvme = 2 * n;
        kvt_store *s = open_store(block, FRAGS, t);
        if (via == VIA_DRAM && pinned_first)
            wait_pinned(s);
        char what[96];
        kvt_key keys[96];
        int32_t st[96];
        batch src, dst, hsrc, hdst;
        batch_new(&src, n, FRAGS, frag, 1);
        batch_new(&dst, n, FRAGS, frag, 1);
        batch_new(&hsrc, n, FRAGS, frag, 0);
        batch_new(&hdst, n, FRAGS, frag, 0);
        batch_fill(&src, seed + c);
        batch_fill(&hsrc, seed + 1000 + c);
        batch_poison(&dst);
        batch_poison(&hdst);
        kvt_io_opts o = dev_opts(st);

        snprintf(what, sizeof what, "tier %d, %zu-byte fragments, GPU -> GPU", via, frag);
        keys_of(keys, n, 1000 * c);
        put_get_exact(s, keys, n, &src, &dst, &o, st, what);

        snprintf(what, sizeof what, "tier %d, %zu-byte fragments, GPU -> host", via, frag);
        cr_assert_eq(kvt_get(s, keys, n, hdst.ptrs, NULL, NULL), (int)n, "%s: %s", what,
                     kvt_last_error());
        batch_check(&hdst, &src, NULL, what);

        snprintf(what, sizeof what, "tier %d, %zu-byte fragments, host -> GPU", via, frag);
        keys_of(keys, n, 1000 * c + 500);
        cr_assert_eq(kvt_put(s, keys, n, hsrc.ptrs, NULL, NULL), (int)n, "%s: %s", what,
                     kvt_last_error());
        batch_poison(&dst);
        cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &o, NULL), (int)n, "%s: %s", what,
                     kvt_last_error());
        batch_check(&dst, &hsrc, NULL, what);

        batch_free(&src);
        batch_free(&dst);
        batch_free(&hsrc);
        batch_free(&hdst);
        close_store(s);
    }
}

Test(gpu, dram_round_trips_auto)
{
    gpu_init("dram_round_trips_auto", NULL);
    round_trips(VIA_DRAM, 0); /* pinning races the copies: both paths run */
}

Test(gpu, dram_round_trips_copy_engines)
{
    gpu_init("dram_round_trips_copy_engines", "ce");
    round_trips(VIA_DRAM, 1);
}

Test(gpu, dram_round_trips_batch_memcpy)
{
    gpu_init("dram_round_trips_batch_memcpy", "batch");
    cr_assert_not_null(rt->cudaMemcpyBatchAsync, "runtime lacks cudaMemcpyBatchAsync");
    round_trips(VIA_DRAM, 1);
}

Test(gpu, dram_round_trips_kernel)
{
    gpu_init("dram_round_trips_kernel", "kernel");
    const char *why;
    const char *m = kvt__cuda_small_method(0, &why);
    cr_assert_str_eq(m, "kernel", "%s", why);
    cr_assert_eq(why[0], '\0', "kernel path unusable: %s", why);
    round_trips(VIA_DRAM, 1);
}

/* The kernel really ran (and the counters say so): 16 KiB fragments from
 * GPU memory into the pinned arena and back. */
Test(gpu, kernel_path_is_taken_for_small_fragments)
{
    gpu_init("kernel_path_is_taken_for_small_fragments", NULL);
    size_t frag = 16 * KIB, n = 32;
    tiers t = {.dram = n};
    kvt_store *s = open_store(frag * FRAGS, FRAGS, t);
    wait_pinned(s);
    batch src, dst;
    batch_new(&src, n, FRAGS, frag, 1);
    batch_new(&dst, n, FRAGS, frag, 1);
    batch_fill(&src, seed);
    batch_poison(&dst);
    kvt_key keys[32];
    keys_of(keys, n, 1);
    kvt_io_opts o = dev_opts(NULL);
    cr_assert_eq(kvt_put(s, keys, n, src.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    batch_check(&dst, &src, NULL, "kernel path");
    cr_assert_eq(stat_of(s, "dram.cuda_kernel_bytes"), 2 * n * frag * FRAGS);
    cr_assert_eq(stat_of(s, "dram.cuda_ce_bytes"), 0);
    cr_assert_eq(stat_of(s, "dram.cuda_pageable_bytes"), 0);
    cr_assert_eq(stat_of(s, "dram.cuda_errors"), 0);
    batch_free(&src);
    batch_free(&dst);
    close_store(s);
}

/* A call with more kernel pieces than one descriptor half holds (8192):
 * the launches alternate between the lane's two halves, each refilled only
 * after its previous launch is done. 4 KiB fragments, 64 per block, 300
 * blocks = 19200 pieces = three launches, the third reusing the first half. */
Test(gpu, kernel_launches_in_rounds)
{
    gpu_init("kernel_launches_in_rounds", "kernel");
    size_t frag = 4 * KIB, frags = 64, n = 300;
    tiers t = {.dram = n};
    kvt_store *s = open_store(frag * frags, frags, t);
    wait_pinned(s);
    batch src, dst;
    batch_new(&src, n, frags, frag, 1);
    batch_new(&dst, n, frags, frag, 1);
    batch_fill(&src, seed);
    batch_poison(&dst);
    kvt_key *keys = calloc(n, sizeof *keys);
    int32_t *st = calloc(n, sizeof *st);
    cr_assert(keys && st);
    keys_of(keys, n, 7);
    kvt_io_opts o = dev_opts(st);
    cr_assert_eq(kvt_put(s, keys, n, src.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    all_ok(st, n, "put in rounds");
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    all_ok(st, n, "get in rounds");
    batch_check(&dst, &src, NULL, "kernel launches in rounds");
    cr_assert_eq(stat_of(s, "dram.cuda_kernel_bytes"), 2 * n * frag * frags);
    cr_assert_geq(stat_of(s, "dram.cuda_kernel_launches"), 6);
    cr_assert_eq(stat_of(s, "dram.cuda_errors"), 0);
    free(keys);
    free(st);
    batch_free(&src);
    batch_free(&dst);
    close_store(s);
}

Test(gpu, hbm_round_trips)
{
    gpu_init("hbm_round_trips", NULL);
    round_trips(VIA_HBM, 0);
}

Test(gpu, nvme_round_trips)
{
    gpu_init("nvme_round_trips", NULL);
    round_trips(VIA_NVME, 0);
}

/* ------------------------------------------------------- NVMe bounce, tier */

#if KVT_HAVE_URING
/* The bounce through pinned staging on the NVMe tier's own ops, without the
 * store: many blocks (several staging rounds, both halves) and blocks
 * larger than a half (the pageable path). */
static void bounce_case(size_t block, size_t n, size_t frags)
{
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", block, &slot), 0);
    const char *dir = getenv("KVT_BUILD_ROOT");
    snprintf(nvme_path, sizeof nvme_path, "%s/gpu-bounce-%d.kvt", dir ? dir : ".",
             (int)getpid());
    unlink(nvme_path);
    kvt_tier_params p = {.name = "nvme", .capacity = n * slot, .block_bytes = block,
                         .block_tokens = 16, .frags = (uint32_t)frags, .copy_threads = 2};
    kvt__tier_params_defaults(&p, &kvt__tier_nvme);
    kvt__tier_params_set_str(&p, "path", nvme_path);
    kvt_tier_impl *t;
    uint32_t nslots;
    int rc = kvt__tier_nvme.open(&p, &t, &nslots);
    if (rc == KVT_ENODIRECT)
        cr_skip_test("%s: no O_DIRECT here", nvme_path);
    cr_assert_eq(rc, 0, "nvme open: %s", kvt_last_error());
    cr_assert_geq(nslots, n);
    batch src, dst;
    batch_new(&src, n, frags, block / frags, 1);
    batch_new(&dst, n, frags, block / frags, 1);
    batch_fill(&src, seed + block);
    batch_poison(&dst);
    kvt_xfer *x = calloc(n, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (kvt_xfer){.slot = (uint32_t)i, .nfrags = (uint32_t)frags,
                          .frags = src.ptrs + i * frags, .key = key_of(i)};
    /* The wrapper the store applies at open. */
    kvt_tier_handle h = {.ops = &kvt__tier_nvme, .impl = t, .caps = kvt__tier_nvme.caps};
    cr_assert_eq(kvt__staged_wrap(&h, block), 0, "%s", kvt_last_error());
    cr_assert(h.caps & KVT_TCAP_CUDA_MEM);
    rc = h.ops->write(h.impl, x, n, KVT_MEM_CUDA);
    cr_assert_eq(rc, 0, "bounce write: %s", kvt_last_error());
    for (size_t i = 0; i < n; i++) {
        x[i].frags = dst.ptrs + i * frags;
        x[i].status = -99;
    }
    rc = h.ops->read(h.impl, x, n, KVT_MEM_CUDA);
    cr_assert_eq(rc, 0, "bounce read: %s", kvt_last_error());
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(x[i].status, 0);
    char what[64];
    snprintf(what, sizeof what, "bounce, %zu-byte blocks", block);
    batch_check(&dst, &src, NULL, what);
    free(x);
    batch_free(&src);
    batch_free(&dst);
    h.ops->close(h.impl); /* closes the NVMe tier under it */
    unlink(nvme_path);
}
#endif

Test(gpu, nvme_bounce_staging_rounds_and_large_blocks)
{
    gpu_init("nvme_bounce_staging_rounds_and_large_blocks", NULL);
#if KVT_HAVE_URING
    bounce_case(2 * MIB, small_run() ? 20 : 80, 8);     /* 160 MiB: 5 rounds of 32 MiB */
    bounce_case(64 * KIB, small_run() ? 40 : 1200, 16); /* many blocks per round */
    bounce_case(40 * MIB, 3, 2);                        /* larger than a half */
#else
    cr_skip_test("built without io_uring: no NVMe tier");
#endif
}

/* ------------------------------------------------------ tiers and moves */

static void tiers_of(kvt_store *s, const kvt_key *keys, size_t n, int *count)
{
    uint8_t t[64];
    cr_assert_eq(kvt_lookup(s, keys, n, t, 0), (int)n, "not every block is held");
    memset(count, 0, KVT_MAX_TIERS * sizeof *count);
    for (size_t i = 0; i < n; i++)
        count[t[i]]++;
}

/* GPU -> HBM, demoted HBM -> DRAM -> NVMe, read back from each tier into
 * GPU memory, then promoted back up. */
Test(gpu, demotion_chain_and_back)
{
    gpu_init("demotion_chain_and_back", NULL);
    size_t frag = 64 * KIB, block = frag * FRAGS, n = 10;
    tiers t = {.hbm = 2, .dram = 3, .nvme = 16};
    kvt_store *s = open_store(block, FRAGS, t);
    batch src, dst;
    batch_new(&src, n, FRAGS, frag, 1);
    batch_new(&dst, n, FRAGS, frag, 1);
    batch_fill(&src, seed);
    kvt_key keys[10];
    keys_of(keys, n, 77);
    kvt_io_opts o = dev_opts(NULL);
    for (size_t i = 0; i < n; i++) /* one by one: each put evicts the oldest */
        cr_assert_eq(kvt_put(s, &keys[i], 1, &src.ptrs[i * FRAGS], &o, NULL), 1, "put %zu: %s",
                     i, kvt_last_error());
    int count[KVT_MAX_TIERS];
    tiers_of(s, keys, n, count);
    cr_assert_eq(count[TIER_HBM], 2, "HBM holds %d", count[TIER_HBM]);
    cr_assert_eq(count[TIER_DRAM], 3, "DRAM holds %d", count[TIER_DRAM]);
    cr_assert_eq(count[TIER_NVME], 5, "NVMe holds %d", count[TIER_NVME]);
    cr_assert_geq(stat_of(s, "dram.demotions_in"), 3);
    cr_assert_geq(stat_of(s, "nvme.demotions_in"), 5);

    batch_poison(&dst);
    int32_t st[10];
    kvt_io_opts g = dev_opts(st);
    g.flags = KVT_IO_NO_PROMOTE;
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &g, NULL), (int)n, "%s", kvt_last_error());
    all_ok(st, n, "get from every tier");
    batch_check(&dst, &src, NULL, "HBM, DRAM and NVMe -> GPU");

    /* With promotion: NVMe and DRAM hits come back up; bytes still exact. */
    batch_poison(&dst);
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    batch_check(&dst, &src, NULL, "get with promotion");
    cr_assert_gt(stat_of(s, "hbm.promotions_in"), 0);
    batch_poison(&dst);
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &g, NULL), (int)n, "%s", kvt_last_error());
    batch_check(&dst, &src, NULL, "after promotion");
    batch_free(&src);
    batch_free(&dst);
    close_store(s);
}

/* HBM is a tier like any: its idle TTL demotes to DRAM. */
Test(gpu, hbm_ttl_demotes_to_dram)
{
    gpu_init("hbm_ttl_demotes_to_dram", NULL);
    size_t frag = 256 * KIB, block = frag * 2, n = 4;
    tiers t = {.hbm = 8, .dram = 8, .hbm_ttl_ms = 1000, .manual = 1};
    kvt_store *s = open_store(block, 2, t);
    batch src, dst;
    batch_new(&src, n, 2, frag, 1);
    batch_new(&dst, n, 2, frag, 1);
    batch_fill(&src, seed);
    batch_poison(&dst);
    kvt_key keys[4];
    keys_of(keys, n, 5);
    kvt_io_opts o = dev_opts(NULL);
    cr_assert_eq(kvt_put(s, keys, n, src.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    int count[KVT_MAX_TIERS];
    tiers_of(s, keys, n, count);
    cr_assert_eq(count[TIER_HBM], (int)n);
    cr_assert_eq(kvt_clock_set(s, kvt_clock_now(s) + 2000 * MS), 0);
    cr_assert_eq(kvt_expire(s), (int)n);
    tiers_of(s, keys, n, count);
    cr_assert_eq(count[TIER_DRAM], (int)n, "after the HBM TTL: %d in DRAM",
                 count[TIER_DRAM]);
    kvt_io_opts g = dev_opts(NULL);
    g.flags = KVT_IO_NO_PROMOTE;
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &g, NULL), (int)n, "%s", kvt_last_error());
    batch_check(&dst, &src, NULL, "HBM -> DRAM by TTL -> GPU");
    batch_free(&src);
    batch_free(&dst);
    close_store(s);
}

/* ---------------------------------------------------------- concurrency */

typedef struct worker_arg {
    kvt_store *s;
    int id;
    int rounds;
    int use_tickets;
    batch src, dst;
    char failure[256];
} worker_arg;

/* Criterion's asserts belong to the test's thread: workers note failures. */
static void *failw(worker_arg *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *failw(worker_arg *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->failure, sizeof w->failure, fmt, ap);
    va_end(ap);
    return NULL;
}

static int device_equal(const batch *a, const batch *b, uint8_t *h1, uint8_t *h2)
{
    if (rt->cudaMemcpy(h1, a->mem, a->total, cudaMemcpyDeviceToHost) != cudaSuccess ||
        rt->cudaMemcpy(h2, b->mem, b->total, cudaMemcpyDeviceToHost) != cudaSuccess)
        return 0;
    return memcmp(h1, h2, a->total) == 0;
}

/* Puts and gets of its own keys on its own stream; async rounds use
 * tickets (with the stream once the worker hooks are in). */
static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    if (rt->cudaSetDevice(0) != cudaSuccess)
        return failw(w, "cudaSetDevice");
    cudaStream_t st;
    if (rt->cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) != cudaSuccess)
        return failw(w, "stream");
    uint8_t *h1 = malloc(w->src.total), *h2 = malloc(w->src.total);
    kvt_key keys[64];
    for (int r = 0; r < w->rounds && !w->failure[0]; r++) {
        keys_of(keys, w->src.n, (uint64_t)w->id << 40 | (uint64_t)r << 20);
        kvt_io_opts o = dev_opts(NULL);
        o.stream = st;
        int async = w->use_tickets && (r & 1);
        rt->cudaMemsetAsync(w->dst.mem, POISON, w->dst.total, st);
        int rc;
        if (async) {
            kvt_ticket tk;
            rc = kvt_put(w->s, keys, w->src.n, w->src.ptrs, &o, &tk);
            if (rc == 0)
                rc = kvt_wait(w->s, tk, -1);
            if (rc == (int)w->src.n && (rc = kvt_get(w->s, keys, w->src.n, w->dst.ptrs, &o, &tk)) == 0)
                rc = kvt_wait(w->s, tk, -1);
        } else {
            rc = kvt_put(w->s, keys, w->src.n, w->src.ptrs, &o, NULL);
            if (rc == (int)w->src.n)
                rc = kvt_get(w->s, keys, w->src.n, w->dst.ptrs, &o, NULL);
        }
        if (rc != (int)w->src.n)
            failw(w, "thread %d round %d: %d (%s)", w->id, r, rc, kvt_last_error());
        else if (!device_equal(&w->src, &w->dst, h1, h2))
            failw(w, "thread %d round %d: wrong bytes", w->id, r);
        /* Room for the other threads: nothing of this round is evicted
         * between its put and its get. */
        kvt_remove(w->s, keys, w->src.n);
    }
    free(h1);
    free(h2);
    rt->cudaStreamDestroy(st);
    return NULL;
}

static void concurrent(tiers t, size_t frag, size_t nblocks)
{
    enum { THREADS = 4 };
    kvt_store *s = open_store(frag * FRAGS, FRAGS, t);
    worker_arg w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].s = s;
        w[i].id = i;
        w[i].rounds = small_run() ? 2 : 12;
        w[i].use_tickets = i & 1;
        batch_new(&w[i].src, nblocks, FRAGS, frag, 1);
        batch_new(&w[i].dst, nblocks, FRAGS, frag, 1);
        batch_fill(&w[i].src, seed + (uint64_t)i * 7919);
    }
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(w[i].failure[0], '\0', "%s", w[i].failure);
        batch_free(&w[i].src);
        batch_free(&w[i].dst);
    }
    close_store(s);
}

Test(gpu, concurrent_threads_and_streams_dram)
{
    gpu_init("concurrent_threads_and_streams_dram", NULL);
    tiers t = {.dram = 4 * 32 * 2, .workers = 4};
    concurrent(t, 16 * KIB, 32);
    tiers big = {.dram = 4 * 4 * 2, .workers = 4};
    concurrent(big, small_run() ? 256 * KIB : 2 * MIB, 4);
}

Test(gpu, concurrent_threads_and_streams_hbm)
{
    gpu_init("concurrent_threads_and_streams_hbm", NULL);
    tiers t = {.hbm = 4 * 32 * 2, .dram = 64, .workers = 4};
    concurrent(t, 16 * KIB, 32);
}

/* ------------------------------------------------------ stream ordering */

static cudaLibrary_t test_lib;

/* Queues spin_then_fill on `st`: after spin_ms, memory gets pattern(s). */
static void slow_fill(cudaStream_t st, void *mem, size_t n, uint64_t s, unsigned spin_ms)
{
    cudaKernel_t k;
    cr_assert_eq(kvt__cuda_kernel(kvt_test_gpu_fatbin, "spin_then_fill", &test_lib, &k), 0, "%s",
                 kvt_last_error());
    unsigned long long nn = n, ss = s, ns = (unsigned long long)spin_ms * MS;
    void *args[] = {&mem, &nn, &ss, &ns};
    dim3 grid = {64, 1, 1}, block = {256, 1, 1};
    CK(rt->cudaLaunchKernel((const void *)k, grid, block, args, 0, st));
}

/* The expected bytes of a batch whose memory spin_then_fill wrote whole. */
static void expect_fill(batch *b, uint64_t s)
{
    pattern(b->expect, b->total, s);
}

static void stream_put(int via, int async, int gate)
{
    size_t frag = 64 * KIB, n = 16;
    tiers t = {0};
    if (via == VIA_HBM)
        t.hbm = 2 * n;
    else
        t.dram = 2 * n;
    kvt_store *s = open_store(frag * FRAGS, FRAGS, t);
    batch src, dst;
    batch_new(&src, n, FRAGS, frag, 1);
    batch_new(&dst, n, FRAGS, frag, 1);
    batch_poison(&src);
    batch_poison(&dst);
    cudaStream_t st;
    CK(rt->cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    kvt_key keys[16];
    keys_of(keys, n, 900);
    /* The engine's kernel writes the source 100 ms from now; the put is
     * called right away and must store the kernel's output, not the
     * poison that is there when it is called. */
    slow_fill(st, src.mem, src.total, seed, 100);
    expect_fill(&src, seed);
    kvt_io_opts o = dev_opts(NULL);
    o.stream = st;
    if (gate)
        o.flags |= KVT_IO_STREAM_WAIT;
    if (async) {
        kvt_ticket tk;
        cr_assert_eq(kvt_put(s, keys, n, src.ptrs, &o, &tk), 0, "%s", kvt_last_error());
        if (gate) /* queued after the gate: must not run before the put read the source */
            slow_fill(st, src.mem, src.total, seed + 1, 0);
        cr_assert_eq(kvt_wait(s, tk, -1), (int)n, "%s", kvt_last_error());
    } else {
        cr_assert_eq(kvt_put(s, keys, n, src.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    }
    CK(rt->cudaStreamSynchronize(st));
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &(kvt_io_opts){.size = sizeof(kvt_io_opts),
                                                            .mem_kind = KVT_MEM_CUDA},
                         NULL),
                 (int)n, "%s", kvt_last_error());
    batch_check(&dst, &src, NULL, "stored bytes are the kernel's output");
    CK(rt->cudaStreamDestroy(st));
    batch_free(&src);
    batch_free(&dst);
    close_store(s);
}

Test(gpu, stream_order_put_sync)
{
    gpu_init("stream_order_put_sync", NULL);
    stream_put(VIA_DRAM, 0, 0);
    stream_put(VIA_HBM, 0, 0);
}

Test(gpu, stream_order_put_async)
{
    gpu_init("stream_order_put_async", NULL);
    stream_put(VIA_DRAM, 1, 0);
    stream_put(VIA_DRAM, 1, 1);
    stream_put(VIA_HBM, 1, 1);
}

/* A get with a stream writes the destination only after the work queued
 * before it: here a kernel that overwrites it 100 ms later. */
Test(gpu, stream_order_get_after_prior_work)
{
    gpu_init("stream_order_get_after_prior_work", NULL);
    size_t frag = 64 * KIB, n = 16;
    tiers t = {.dram = 2 * n};
    kvt_store *s = open_store(frag * FRAGS, FRAGS, t);
    batch src, dst;
    batch_new(&src, n, FRAGS, frag, 1);
    batch_new(&dst, n, FRAGS, frag, 1);
    batch_fill(&src, seed);
    kvt_key keys[16];
    keys_of(keys, n, 300);
    kvt_io_opts o = dev_opts(NULL);
    cr_assert_eq(kvt_put(s, keys, n, src.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    cudaStream_t st;
    CK(rt->cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    slow_fill(st, dst.mem, dst.total, seed + 99, 100);
    o.stream = st;
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    CK(rt->cudaStreamSynchronize(st));
    batch_check(&dst, &src, NULL, "get landed after the engine's kernel");
    CK(rt->cudaStreamDestroy(st));
    batch_free(&src);
    batch_free(&dst);
    close_store(s);
}

/* KVT_IO_STREAM_WAIT: the engine queues a read of the destination right
 * after an asynchronous get; the stream waits for the library, the host
 * does not. */
static void stream_get_gate(int via)
{
    size_t frag = 64 * KIB, n = 32;
    tiers t = {0};
    if (via == VIA_HBM)
        t.hbm = 2 * n;
    else
        t.dram = 2 * n;
    kvt_store *s = open_store(frag * FRAGS, FRAGS, t);
    batch src, dst;
    batch_new(&src, n, FRAGS, frag, 1);
    batch_new(&dst, n, FRAGS, frag, 1);
    batch_fill(&src, seed);
    batch_poison(&dst);
    kvt_key keys[32];
    keys_of(keys, n, 4000);
    kvt_io_opts o = dev_opts(NULL);
    cr_assert_eq(kvt_put(s, keys, n, src.ptrs, &o, NULL), (int)n, "%s", kvt_last_error());
    cudaStream_t st;
    CK(rt->cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    uint8_t *pinned;
    CK(rt->cudaHostAlloc((void **)&pinned, dst.total, cudaHostAllocDefault));
    memset(pinned, 0, dst.total);
    o.stream = st;
    o.flags = KVT_IO_STREAM_WAIT;
    kvt_ticket tk;
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &o, &tk), 0, "%s", kvt_last_error());
    CK(rt->cudaMemcpyAsync(pinned, dst.mem, dst.total, cudaMemcpyDeviceToHost, st));
    CK(rt->cudaStreamSynchronize(st));
    batch hb = dst;
    hb.on_device = 0;
    hb.mem = pinned;
    batch_check(&hb, &src, NULL, "engine's copy after a gated get");
    cr_assert_eq(kvt_wait(s, tk, -1), (int)n, "%s", kvt_last_error());

    /* A miss still opens the gate (the stream must never hang). */
    keys_of(keys, n, 999999);
    cr_assert_eq(kvt_get(s, keys, n, dst.ptrs, &o, &tk), 0, "%s", kvt_last_error());
    CK(rt->cudaStreamSynchronize(st));
    cr_assert_eq(kvt_wait(s, tk, -1), 0);
    CK(rt->cudaFreeHost(pinned));
    CK(rt->cudaStreamDestroy(st));
    batch_free(&src);
    batch_free(&dst);
    close_store(s);
}

Test(gpu, stream_wait_gates_engine_stream)
{
    gpu_init("stream_wait_gates_engine_stream", NULL);
    stream_get_gate(VIA_DRAM);
    stream_get_gate(VIA_HBM);
}

/* ---------------------------------------------------------------- errors */

Test(gpu, clear_codes_with_a_device)
{
    gpu_init("clear_codes_with_a_device", NULL);
    size_t frag = 16 * KIB, n = 2;
    tiers t = {.dram = 8};
    kvt_store *s = open_store(frag * FRAGS, FRAGS, t);
    batch d, h;
    batch_new(&d, n, FRAGS, frag, 1);
    batch_new(&h, n, FRAGS, frag, 0);
    batch_fill(&d, seed);
    kvt_key keys[2];
    keys_of(keys, n, 1);
    kvt_io_opts o = dev_opts(NULL);
    o.device = kvt__cuda_device_count();
    cr_assert_eq(kvt_put(s, keys, n, d.ptrs, &o, NULL), KVT_ENODEV, "%s", kvt_last_error());
    o.device = 0;
    cr_assert_eq(kvt_put(s, keys, n, h.ptrs, &o, NULL), KVT_EMEMKIND, "host memory as CUDA");
    kvt_io_opts host = {.size = sizeof host, .mem_kind = KVT_MEM_HOST};
    cr_assert_eq(kvt_put(s, keys, n, d.ptrs, &host, NULL), KVT_EMEMKIND, "device memory as host");
    cr_assert_eq(kvt_put(s, keys, n, d.ptrs, NULL, NULL), KVT_EMEMKIND, "device memory, no opts");
    o.flags = 1u << 31;
    cr_assert_eq(kvt_put(s, keys, n, d.ptrs, &o, NULL), KVT_EINVAL);
    cr_assert_eq(kvt_lookup(s, keys, n, NULL, 0), 0, "refused puts stored something");
    if (kvt__cuda_device_count() > 1) {
        o.flags = 0;
        o.device = 1; /* the memory is on device 0 */
        cr_assert_eq(kvt_put(s, keys, n, d.ptrs, &o, NULL), KVT_EMEMKIND);
    }
    batch_free(&d);
    batch_free(&h);
    close_store(s);
}

/* The DRAM arena gets pinned in the background, on the GPU's NUMA node
 * when sysfs knows it. */
Test(gpu, dram_arena_pinned_and_placed)
{
    gpu_init("dram_arena_pinned_and_placed", NULL);
    tiers t = {.dram = small_run() ? 64 : 512};
    kvt_store *s = open_store(2 * MIB, 1, t); /* 1 GiB (small: 128 MiB) */
    wait_pinned(s);
    cr_assert_eq(stat_of(s, "dram.cuda_pinned_bytes"), stat_of(s, "dram.arena_bytes"));
    fprintf(stderr, "dram_arena_pinned_and_placed: %llu MiB pinned in %llu ms; node %lld (%s)\n",
            (unsigned long long)(stat_of(s, "dram.arena_bytes") >> 20),
            (unsigned long long)stat_of(s, "dram.cuda_pin_ms"),
            (long long)stat_of(s, "dram.numa_node"),
            stat_of(s, "dram.numa_asked_gpu") ? "asked of the GPU's PCI device" : "local");
    char bus[32];
    cr_assert_eq(kvt__cuda_pci_bus_id(0, bus, sizeof bus), 0);
    close_store(s);
}

/* ------------------------------------------------ connected store (shared) */

/* A store with one shared DRAM arena of `blocks`, served on a socket in a
 * fresh directory (docs/shared.md); serve_flags: KVT_SERVE_TENANT_UID... */
typedef struct served {
    kvt_store *store;
    kvt_server *srv;
    char dir[64], sock[96];
} served;

static void serve_shared(served *v, size_t block, size_t blocks, uint32_t serve_flags)
{
    kvt_config *c;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)block), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, FRAGS), 0);
    int t = kvt_test_tier(c, "dram");
    cr_assert_eq(kvt_config_tier_set(c, t, "capacity", (int64_t)(blocks * block)), 0);
    cr_assert_eq(kvt_config_tier_set(c, t, "shared", 1), 0, "%s", kvt_last_error());
    cr_assert_eq(kvt_open(c, &v->store), 0, "open: %s", kvt_last_error());
    kvt_config_free(c);
    snprintf(v->dir, sizeof v->dir, "/tmp/kvt-gpu-XXXXXX");
    cr_assert_not_null(mkdtemp(v->dir));
    snprintf(v->sock, sizeof v->sock, "%s/kv.sock", v->dir);
    kvt_serve_opts o = {.size = sizeof o, .flags = serve_flags};
    cr_assert_eq(kvt_serve(v->store, v->sock, &o, &v->srv), 0, "%s", kvt_last_error());
}

static void unserve_shared(served *v)
{
    cr_assert_eq(kvt_serve_stop(v->srv), 0);
    cr_assert_eq(kvt_close(v->store), 0);
    unlink(v->sock);
    rmdir(v->dir);
}

static void serve_stat_of(const char *name, uint64_t value, void *user)
{
    const char **want = user;
    if (!strcmp(name, want[0]))
        memcpy((void *)want[1], &value, sizeof value);
}

static uint64_t server_stat(served *v, const char *name)
{
    uint64_t value = UINT64_MAX;
    const char *q[2] = {name, (const char *)&value};
    kvt_serve_stats(v->srv, serve_stat_of, q);
    return value;
}

/* Issue 17 item 2: a connected client puts from device memory into the
 * server's shared arena and gets back into device memory with its own CUDA
 * copies: bytes exact, every block zero copy (none staged), the copies
 * counted on the client; the served store and a host get see the same
 * bytes. */
Test(gpu, connected_store_device_copies_through_shared_arena)
{
    gpu_init("connected_store_device_copies_through_shared_arena", NULL);
    static const size_t frags[] = {16 * KIB, 512 * KIB};
    for (size_t c = 0; c < 2; c++) {
        size_t frag = frags[c], block = frag * FRAGS, n = small_run() ? 4 : 16;
        served v;
        serve_shared(&v, block, 4 * n, 0);
        cr_assert_eq(server_stat(&v, "server.zero_copy"), 1);
        kvt_store *cl;
        cr_assert_eq(kvt_connect(v.sock, NULL, &cl), 0, "%s", kvt_last_error());
        char what[96];
        snprintf(what, sizeof what, "connected, %zu-byte fragments", frag);
        kvt_key keys[16];
        int32_t st[16];
        batch src, dst, hdst;
        batch_new(&src, n, FRAGS, frag, 1);
        batch_new(&dst, n, FRAGS, frag, 1);
        batch_new(&hdst, n, FRAGS, frag, 0);
        batch_fill(&src, seed + c);
        batch_poison(&dst);
        batch_poison(&hdst);
        keys_of(keys, n, 7000 + 100 * c);
        kvt_io_opts o = dev_opts(st);
        put_get_exact(cl, keys, n, &src, &dst, &o, st, what);

        /* the served store itself holds the bytes */
        cr_assert_eq(kvt_get(v.store, keys, n, hdst.ptrs, NULL, NULL), (int)n, "%s: %s", what,
                     kvt_last_error());
        batch_check(&hdst, &src, NULL, what);
        /* a ticket: the client's own thread makes the device copies */
        batch_poison(&dst);
        kvt_ticket tk;
        cr_assert_eq(kvt_get(cl, keys, n, dst.ptrs, &o, &tk), 0, "%s", kvt_last_error());
        cr_assert_eq(kvt_wait(cl, tk, -1), (int)n, "%s: ticket: %s", what, kvt_last_error());
        all_ok(st, n, what);
        batch_check(&dst, &src, NULL, what);
        cr_assert_eq(server_stat(&v, "server.zero_copy_blocks"), 3 * n, "%s", what);
        cr_assert_eq(server_stat(&v, "server.staged_blocks"), 0, "%s", what);
        uint64_t moved = stat_of(cl, "client.cuda_ce_bytes") +
                         stat_of(cl, "client.cuda_batch_bytes") +
                         stat_of(cl, "client.cuda_kernel_bytes");
        cr_assert_eq(moved, 3 * n * block, "%s: device bytes the client copied", what);
        cr_assert_eq(stat_of(cl, "client.cuda_errors"), 0);
        /* a stream stays refused; host memory as device memory is caught */
        o.stream = (void *)1;
        cr_assert_eq(kvt_get(cl, keys, n, dst.ptrs, &o, NULL), KVT_ENOTSUP);
        o.stream = NULL;
        cr_assert_eq(kvt_put(cl, keys, n, hdst.ptrs, &o, NULL), KVT_EMEMKIND, "%s",
                     kvt_last_error());
        cr_assert_eq(kvt_close(cl), 0);
        batch_free(&src);
        batch_free(&dst);
        batch_free(&hdst);
        unserve_shared(&v);
    }
}

/* Tenants get no arena: device memory on their connections stays refused,
 * host memory still goes (through staging). */
Test(gpu, connected_store_device_memory_refused_for_tenants)
{
    gpu_init("connected_store_device_memory_refused_for_tenants", NULL);
    size_t frag = 16 * KIB, n = 2;
    served v;
    serve_shared(&v, frag * FRAGS, 16, KVT_SERVE_TENANT_UID);
    cr_assert_eq(server_stat(&v, "server.zero_copy"), 0);
    kvt_store *cl;
    cr_assert_eq(kvt_connect(v.sock, NULL, &cl), 0, "%s", kvt_last_error());
    batch d, h;
    batch_new(&d, n, FRAGS, frag, 1);
    batch_new(&h, n, FRAGS, frag, 0);
    batch_fill(&d, seed);
    batch_fill(&h, seed + 1);
    kvt_key keys[2];
    keys_of(keys, n, 1);
    kvt_io_opts o = dev_opts(NULL);
    cr_assert_eq(kvt_put(cl, keys, n, d.ptrs, &o, NULL), KVT_ENOTSUP, "%s", kvt_last_error());
    cr_assert_eq(kvt_get(cl, keys, n, d.ptrs, &o, NULL), KVT_ENOTSUP, "%s", kvt_last_error());
    cr_assert_eq(kvt_put(cl, keys, n, h.ptrs, NULL, NULL), (int)n, "%s", kvt_last_error());
    cr_assert_eq(kvt_close(cl), 0);
    batch_free(&d);
    batch_free(&h);
    unserve_shared(&v);
}
