/* test_layerwise.c — gets of a range of each block's fragments (layer-wise
 * loads, kvt_io_opts.frag_first/frag_count): exact bytes on a DRAM store
 * (the tier reads the range) and an NVMe-only one (read whole, range copied
 * out), refused ranges, and callers of the older opts size. */
#include <criterion/criterion.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvt_build_config.h"
#include "kvtier.h"
#include "../tier_kinds.h"

#define FRAGS 8
#define FRAG 512
#define BLOCK (FRAGS * FRAG)
#define NBLOCKS 4

static char nvme_file[512];

/* kind: "dram", "dram+faults" (through the fault wrapper, with no fault
 * drawn: it must pass the range through) or "nvme" (NVMe only). */
static kvt_store *open_store(const char *kind)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, FRAGS), 0);
    if (strncmp(kind, "dram", 4) == 0) {
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 16 * BLOCK), 0);
        if (strcmp(kind, "dram+faults") == 0)
            cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "faults", "seed=7"),
                         0, "%s", kvt_last_error());
    } else {
#if KVT_HAVE_URING
        const char *dir = getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".";
        snprintf(nvme_file, sizeof nvme_file, "%s/layerwise-%d.kvt", dir, (int)getpid());
        unlink(nvme_file);
        uint64_t slot;
        cr_assert_eq(kvt_slot_bytes("nvme", BLOCK, &slot), 0);
        int t = kvt_test_tier(c, "nvme");
        cr_assert_eq(kvt_config_tier_set(c, t, "capacity", (int64_t)(16 * slot)), 0);
        cr_assert_eq(kvt_config_tier_set_str(c, t, "path", nvme_file), 0);
#else
        kvt_config_free(c);
        cr_skip_test("built without io_uring: no NVMe tier");
#endif
    }
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static void close_store(kvt_store *s)
{
    cr_assert_eq(kvt_close(s), 0);
    if (nvme_file[0])
        unlink(nvme_file);
    nvme_file[0] = 0;
}

/* Byte j of fragment f of block b: distinct across blocks and fragments. */
static unsigned char pattern(int b, int f, int j)
{
    return (unsigned char)(b * 37 + f * 11 + j);
}

static unsigned char src[NBLOCKS][BLOCK];
static kvt_key keys[NBLOCKS];

static void put_all(kvt_store *s)
{
    void *p[NBLOCKS * FRAGS];
    for (int b = 0; b < NBLOCKS; b++) {
        keys[b] = (kvt_key){{(uint8_t)(b + 1), 0x4c}};
        for (int f = 0; f < FRAGS; f++) {
            for (int j = 0; j < FRAG; j++)
                src[b][f * FRAG + j] = pattern(b, f, j);
            p[b * FRAGS + f] = src[b] + f * FRAG;
        }
    }
    cr_assert_eq(kvt_put(s, keys, NBLOCKS, p, NULL, NULL), NBLOCKS, "%s", kvt_last_error());
}

/* Gets fragments first..first+count-1 of every block (the last key a miss),
 * synchronously or through a ticket, and checks every byte: the range
 * exactly, nothing written past it. */
static void check_range(kvt_store *s, uint32_t first, uint32_t count, int async)
{
    static unsigned char dst[NBLOCKS + 1][FRAGS][FRAG + 16];
    void *p[(NBLOCKS + 1) * FRAGS];
    memset(dst, 0xee, sizeof dst);
    kvt_key k[NBLOCKS + 1];
    memcpy(k, keys, sizeof keys);
    k[NBLOCKS] = (kvt_key){{0xff, 0xff}};
    for (int b = 0; b <= NBLOCKS; b++)
        for (uint32_t f = 0; f < count; f++)
            p[b * count + f] = dst[b][f];
    int32_t st[NBLOCKS + 1];
    kvt_io_opts o = {.size = sizeof o, .status = st, .frag_first = first, .frag_count = count};
    int rc;
    if (async) {
        kvt_ticket t;
        cr_assert_eq(kvt_get(s, k, NBLOCKS + 1, p, &o, &t), 0, "%s", kvt_last_error());
        rc = kvt_wait(s, t, -1);
    } else {
        rc = kvt_get(s, k, NBLOCKS + 1, p, &o, NULL);
    }
    cr_assert_eq(rc, NBLOCKS, "range %u+%u: %d %s", first, count, rc, kvt_last_error());
    cr_expect_eq(st[NBLOCKS], KVT_ENOENT);
    for (int b = 0; b < NBLOCKS; b++) {
        cr_expect_eq(st[b], 0);
        for (uint32_t f = 0; f < count; f++) {
            for (int j = 0; j < FRAG; j++)
                if (dst[b][f][j] != pattern(b, (int)(first + f), j))
                    cr_assert_fail("range %u+%u: block %d fragment %u byte %d is %#x, not %#x",
                             first, count, b, first + f, j, dst[b][f][j],
                             pattern(b, (int)(first + f), j));
            for (int j = FRAG; j < FRAG + 16; j++)
                cr_assert_eq(dst[b][f][j], 0xee, "written past fragment %u", first + f);
        }
        for (uint32_t f = count; f < FRAGS; f++)
            cr_assert_eq(dst[b][f][0], 0xee, "block %d: a buffer past the range written", b);
    }
}

static void ranges_on(const char *kind)
{
    kvt_store *s = open_store(kind);
    put_all(s);
    const uint32_t ranges[][2] = {{0, 1}, {3, 1}, {FRAGS - 1, 1}, {2, 3}, {0, FRAGS}, {1, FRAGS - 1}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        for (int async = 0; async < 2; async++)
            check_range(s, ranges[i][0], ranges[i][1], async);
    close_store(s);
}

Test(layerwise, exact_fragment_ranges_from_dram)
{
    ranges_on("dram");
}

Test(layerwise, exact_fragment_ranges_through_the_fault_wrapper)
{
    ranges_on("dram+faults");
}

Test(layerwise, exact_fragment_ranges_from_nvme_only)
{
    ranges_on("nvme");
}

Test(layerwise, bad_ranges_are_einval_and_put_ranges_of_held_blocks_write_nothing)
{
    kvt_store *s = open_store("dram");
    put_all(s);
    static unsigned char buf[FRAGS][FRAG];
    void *p[FRAGS];
    for (int f = 0; f < FRAGS; f++)
        p[f] = buf[f];
    const uint32_t bad[][2] = {{FRAGS, 1}, {0, FRAGS + 1}, {FRAGS - 1, 2}, {1, 0},
                               {UINT32_MAX, 2}, {2, UINT32_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvt_io_opts o = {.size = sizeof o, .frag_first = bad[i][0], .frag_count = bad[i][1]};
        cr_expect_eq(kvt_get(s, keys, 1, p, &o, NULL), KVT_EINVAL, "range %u+%u", bad[i][0],
                     bad[i][1]);
    }
    kvt_io_opts o = {.size = sizeof o, .frag_first = 0, .frag_count = 1};
    /* Layer-wise puts (issue 20, test_range_put.c): a range of a block held
     * whole is accepted and writes nothing. */
    cr_expect_eq(kvt_put(s, keys, 1, p, &o, NULL), 1, "%s", kvt_last_error());
    close_store(s);
}

/* A caller built against the header before the range: its size ends at
 * `group`'s end (or before), and it gets whole blocks, whatever lies
 * past its struct. */
Test(layerwise, older_opts_sizes_get_whole_blocks)
{
    kvt_store *s = open_store("dram");
    put_all(s);
    const uint32_t sizes[] = {offsetof(kvt_io_opts, group),
                              offsetof(kvt_io_opts, group) + sizeof(uint64_t)};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        static unsigned char dst[BLOCK];
        void *p[FRAGS];
        for (int f = 0; f < FRAGS; f++)
            p[f] = dst + f * FRAG;
        memset(dst, 0, sizeof dst);
        /* Junk where the range would be: an old caller's memory past its struct. */
        kvt_io_opts o = {.size = sizes[i], .frag_first = 3, .frag_count = 1};
        cr_assert_eq(kvt_get(s, keys, 1, p, &o, NULL), 1, "size %u: %s", sizes[i],
                     kvt_last_error());
        cr_expect_eq(memcmp(dst, src[0], BLOCK), 0, "size %u: not the whole block", sizes[i]);
    }
    close_store(s);
}

Test(layerwise, connected_store_refuses_ranges)
{
    kvt_store *s = open_store("dram");
    put_all(s);
    char sock[512];
    const char *dir = getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".";
    snprintf(sock, sizeof sock, "%s/layerwise-%d.sock", dir, (int)getpid());
    unlink(sock);
    kvt_server *srv;
    cr_assert_eq(kvt_serve(s, sock, NULL, &srv), 0, "%s", kvt_last_error());
    kvt_store *c;
    cr_assert_eq(kvt_connect(sock, NULL, &c), 0, "%s", kvt_last_error());
    static unsigned char buf[FRAGS][FRAG];
    void *p[FRAGS];
    for (int f = 0; f < FRAGS; f++)
        p[f] = buf[f];
    kvt_io_opts o = {.size = sizeof o, .frag_first = 1, .frag_count = 1};
    cr_expect_eq(kvt_get(c, keys, 1, p, &o, NULL), KVT_ENOTSUP);
    cr_expect(strstr(kvt_last_error(), "connected") != NULL, "%s", kvt_last_error());
    /* whole blocks still work through the same options struct */
    o.frag_first = o.frag_count = 0;
    cr_expect_eq(kvt_get(c, keys, 1, p, &o, NULL), 1, "%s", kvt_last_error());
    cr_expect_eq(memcmp(buf, src[0], BLOCK), 0);
    cr_assert_eq(kvt_close(c), 0);
    cr_assert_eq(kvt_serve_stop(srv), 0);
    unlink(sock);
    close_store(s);
}
