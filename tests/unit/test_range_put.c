/* test_range_put.c — layer-wise puts (kvt_put with kvt_io_opts.frag_count,
 * issue 20): blocks assemble fragment range by range, become visible only
 * when complete (then byte-exact), and an incomplete block is aborted by
 * kvt_remove, kvt_clear, kvt_close and age, its slot returned. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvt_build_config.h"
#include "kvtier.h"
#include "../tier_kinds.h"

#define FRAGS 8
#define FRAG 256
#define BLOCK (FRAGS * FRAG)
#define NB 4
#define SLOTS 16
#define MS 1000000ull

static unsigned char src[NB][BLOCK];
static kvt_key keys[NB];

static kvt_store *open_store(int manual_clock)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, FRAGS), 0);
    if (manual_clock)
        cr_assert_eq(kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", SLOTS * BLOCK), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    for (int b = 0; b < NB; b++) {
        keys[b] = (kvt_key){{(uint8_t)(b + 1), 0x52, 0x50}};
        for (int j = 0; j < BLOCK; j++)
            src[b][j] = (unsigned char)(b * 53 + j * 7 + j / FRAG);
    }
    return s;
}

/* Puts fragments first..first+count-1 of blocks [b0, b0+n). */
static int put_range(kvt_store *s, int b0, int n, uint32_t first, uint32_t count, int32_t *st)
{
    void *p[NB * FRAGS];
    for (int i = 0; i < n; i++)
        for (uint32_t f = 0; f < count; f++)
            p[i * count + f] = src[b0 + i] + (first + f) * FRAG;
    kvt_io_opts o = {.size = sizeof o, .status = st, .frag_first = first, .frag_count = count};
    return kvt_put(s, keys + b0, (size_t)n, p, &o, NULL);
}

static uint64_t stat(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    cr_assert_eq(kvt_stat(s, name, &v), 0, "%s: %s", name, kvt_last_error());
    return v;
}

/* Whether block b is visible (lookup, contains, get) and, if so, exact. */
static int visible(kvt_store *s, int b)
{
    uint8_t tier = 0;
    int looked = kvt_lookup(s, &keys[b], 1, NULL, 0);
    cr_assert_eq(kvt_contains(s, &keys[b], 1, &tier) >= 0, 1);
    int contained = tier != KVT_TIER_NONE;
    static unsigned char dst[BLOCK];
    memset(dst, 0, sizeof dst);
    void *p[FRAGS];
    for (int f = 0; f < FRAGS; f++)
        p[f] = dst + f * FRAG;
    int got = kvt_get(s, &keys[b], 1, p, NULL, NULL);
    cr_assert_eq(looked, got, "lookup %d, get %d", looked, got);
    cr_assert_eq(contained, got, "contains %d, get %d", contained, got);
    if (got == 1)
        cr_assert_eq(memcmp(dst, src[b], BLOCK), 0, "block %d: bytes differ", b);
    return got == 1;
}

Test(range_put, layer_by_layer_in_order_visible_only_when_complete)
{
    kvt_store *s = open_store(0);
    for (uint32_t f = 0; f < FRAGS; f++) {
        int32_t st[NB];
        cr_assert_eq(put_range(s, 0, NB, f, 1, st), NB, "%s", kvt_last_error());
        for (int b = 0; b < NB; b++) {
            cr_expect_eq(st[b], 0);
            cr_assert_eq(visible(s, b), f == FRAGS - 1, "layer %u block %d", f, b);
        }
        cr_expect_eq(stat(s, "assembling"), f == FRAGS - 1 ? 0 : NB);
    }
    cr_expect_eq(stat(s, "assembled"), NB);
    cr_expect_eq(stat(s, "put_stored"), NB);
    cr_assert_eq(kvt_close(s), 0);
}

Test(range_put, out_of_order_ranges_and_overwrites)
{
    kvt_store *s = open_store(0);
    const uint32_t order[][2] = {{5, 3}, {0, 2}, {1, 1}, {0, 1} /* again: last wins */};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(visible(s, 1), 0);
        cr_assert_eq(put_range(s, 1, 1, order[i][0], order[i][1], NULL), 1, "%s",
                     kvt_last_error());
    }
    cr_assert_eq(visible(s, 1), 0, "fragments 2 to 4 missing");
    cr_assert_eq(put_range(s, 1, 1, 2, 3, NULL), 1);
    cr_assert_eq(visible(s, 1), 1);
    cr_expect_eq(stat(s, "assembled"), 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(range_put, held_blocks_in_a_mixed_batch_write_nothing)
{
    kvt_store *s = open_store(0);
    void *p[FRAGS];
    for (int f = 0; f < FRAGS; f++)
        p[f] = src[2] + f * FRAG;
    cr_assert_eq(kvt_put(s, &keys[2], 1, p, NULL, NULL), 1);
    /* Block 2 held whole; the rest assemble. A range of zeros for block 2
     * must not reach it: the store keeps its bytes. */
    unsigned char zero[FRAG] = {0};
    void *q[NB];
    for (int b = 0; b < NB; b++)
        q[b] = b == 2 ? (void *)zero : (void *)src[b];
    int32_t st[NB];
    kvt_io_opts o = {.size = sizeof o, .status = st, .frag_first = 0, .frag_count = 1};
    cr_assert_eq(kvt_put(s, keys, NB, q, &o, NULL), NB, "%s", kvt_last_error());
    for (int b = 0; b < NB; b++)
        cr_expect_eq(st[b], 0);
    cr_expect_eq(stat(s, "assembling"), NB - 1);
    cr_assert_eq(visible(s, 2), 1);
    cr_assert_eq(put_range(s, 0, NB, 1, FRAGS - 1, NULL), NB);
    for (int b = 0; b < NB; b++)
        cr_assert_eq(visible(s, b), 1);
    cr_expect_eq(stat(s, "assembled"), NB - 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(range_put, tickets_complete_once_per_call)
{
    kvt_store *s = open_store(0);
    for (uint32_t f = 0; f < FRAGS; f += 2) {
        void *p[NB * 2];
        for (int b = 0; b < NB; b++)
            for (uint32_t k = 0; k < 2; k++)
                p[b * 2 + k] = src[b] + (f + k) * FRAG;
        kvt_io_opts o = {.size = sizeof o, .frag_first = f, .frag_count = 2};
        kvt_ticket t;
        cr_assert_eq(kvt_put(s, keys, NB, p, &o, &t), 0, "%s", kvt_last_error());
        cr_assert_eq(kvt_wait(s, t, -1), NB);
    }
    for (int b = 0; b < NB; b++)
        cr_assert_eq(visible(s, b), 1);
    cr_assert_eq(kvt_close(s), 0);
}

/* Each abort path: the block is never seen, its slot comes back (the
 * tier can take SLOTS whole blocks afterwards), and it counts. */
static void fill_whole_tier(kvt_store *s)
{
    static unsigned char buf[BLOCK];
    void *p[FRAGS];
    for (int f = 0; f < FRAGS; f++)
        p[f] = buf + f * FRAG;
    for (int i = 0; i < SLOTS; i++) {
        kvt_key k = {{0xee, (uint8_t)i}};
        cr_assert_eq(kvt_put(s, &k, 1, p, NULL, NULL), 1, "%s", kvt_last_error());
    }
    kvt_key first = {{0xee, 0}};
    cr_expect_eq(kvt_lookup(s, &first, 1, NULL, 0), 1, "a slot still held by an abort");
}

Test(range_put, remove_aborts)
{
    kvt_store *s = open_store(0);
    cr_assert_eq(put_range(s, 0, NB, 0, 3, NULL), NB);
    cr_assert_eq(kvt_remove(s, keys, 2), 0, "removed blocks were never visible");
    cr_expect_eq(stat(s, "assembly_aborted"), 2);
    cr_expect_eq(stat(s, "assembling"), NB - 2);
    cr_assert_eq(put_range(s, 0, NB, 3, FRAGS - 3, NULL), NB);
    cr_assert_eq(visible(s, 0), 0, "aborted, then only part put again");
    cr_assert_eq(visible(s, 1), 0);
    cr_assert_eq(visible(s, 2), 1);
    cr_assert_eq(visible(s, 3), 1);
    cr_assert_eq(kvt_remove(s, keys, 2), 0);
    cr_assert_eq(kvt_remove(s, keys + 2, 2), 2);
    fill_whole_tier(s);
    cr_assert_eq(kvt_close(s), 0);
}

Test(range_put, clear_aborts)
{
    kvt_store *s = open_store(0);
    cr_assert_eq(put_range(s, 0, NB, 0, FRAGS - 1, NULL), NB);
    cr_assert(kvt_clear(s) >= 0, "%s", kvt_last_error());
    cr_expect_eq(stat(s, "assembly_aborted"), NB);
    cr_expect_eq(stat(s, "assembling"), 0);
    cr_assert_eq(put_range(s, 0, NB, FRAGS - 1, 1, NULL), NB);
    for (int b = 0; b < NB; b++)
        cr_assert_eq(visible(s, b), 0);
    cr_assert(kvt_clear(s) >= 0); /* the blocks that last put started */
    cr_expect_eq(stat(s, "assembly_aborted"), 2 * NB);
    fill_whole_tier(s);
    cr_assert_eq(kvt_close(s), 0);
}

Test(range_put, close_aborts_and_age_aborts)
{
    kvt_store *s = open_store(1);
    cr_assert_eq(put_range(s, 0, NB, 0, 1, NULL), NB);
    cr_assert_eq(kvt_clock_set(s, 9000 * MS), 0);
    cr_assert_eq(put_range(s, 0, 1, 1, 1, NULL), 1);
    cr_expect_eq(stat(s, "assembly_aborted"), 0, "not yet 10 s old");
    cr_assert_eq(kvt_clock_set(s, 10001 * MS), 0);
    cr_assert_eq(put_range(s, 0, NB, 1, FRAGS - 1, NULL), NB);
    cr_expect_eq(stat(s, "assembly_aborted"), NB, "over 10 s old");
    for (int b = 0; b < NB; b++)
        cr_assert_eq(visible(s, b), 0, "block %d completed after its abort", b);
    cr_assert_eq(kvt_remove(s, keys, NB), 0); /* the blocks that last put started */
    fill_whole_tier(s);
    /* Left assembling at close: let go (a leak checker would see otherwise). */
    cr_assert_eq(put_range(s, 0, NB, 0, 1, NULL), NB);
    cr_assert_eq(kvt_close(s), 0);
}

Test(range_put, cap_on_blocks_assembling)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, 512), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, 2), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 600 * 512), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    static char buf[256];
    int32_t st[300];
    static kvt_key k[300];
    void *p[300];
    for (int i = 0; i < 300; i++) {
        k[i] = (kvt_key){{0xca, (uint8_t)i, (uint8_t)(i >> 8)}};
        p[i] = buf;
    }
    kvt_io_opts o = {.size = sizeof o, .status = st, .frag_first = 0, .frag_count = 1};
    cr_assert_eq(kvt_put(s, k, 300, p, &o, NULL), 256, "%s", kvt_last_error());
    cr_expect_eq(st[255], 0);
    cr_expect_eq(st[256], KVT_EBUSY);
    cr_expect_eq(stat(s, "assembling"), 256);
    cr_assert_eq(kvt_close(s), 0);
}

Test(range_put, refused_without_a_dram_put_tier_or_for_device_memory)
{
    kvt_store *s = open_store(0);
    void *p[1] = {src[0]};
    kvt_io_opts o = {.size = sizeof o, .frag_first = 0, .frag_count = 1,
                     .mem_kind = KVT_MEM_CUDA};
    int rc = kvt_put(s, keys, 1, p, &o, NULL);
    cr_expect(rc == KVT_ENOTSUP || rc == KVT_EINVAL, "%d", rc);
    cr_assert_eq(kvt_close(s), 0);
}

typedef struct half {
    kvt_store *s;
    uint32_t first;
    int rc[FRAGS];
} half;

/* Puts every other fragment, one per call, of all blocks. */
static void *put_half(void *arg)
{
    half *h = arg;
    for (uint32_t f = h->first; f < FRAGS; f += 2)
        h->rc[f] = put_range(h->s, 0, NB, f, 1, NULL);
    return NULL;
}

Test(range_put, two_threads_assemble_different_layers_of_the_same_blocks)
{
    for (int round = 0; round < 20; round++) {
        kvt_store *s = open_store(0);
        half h[2] = {{.s = s, .first = 0}, {.s = s, .first = 1}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            cr_assert_eq(pthread_create(&t[i], NULL, put_half, &h[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        for (int f = 0; f < FRAGS; f++)
            cr_assert_eq(h[f % 2].rc[f], NB, "round %d layer %d: %d", round, f, h[f % 2].rc[f]);
        for (int b = 0; b < NB; b++)
            cr_assert_eq(visible(s, b), 1, "round %d block %d: assembled %lu assembling %lu "
                         "aborted %lu stored %lu present %lu rejected %lu cancelled %lu",
                         round, b, (unsigned long)stat(s, "assembled"),
                         (unsigned long)stat(s, "assembling"),
                         (unsigned long)stat(s, "assembly_aborted"),
                         (unsigned long)stat(s, "put_stored"), (unsigned long)stat(s, "put_present"),
                         (unsigned long)stat(s, "put_rejected"),
                         (unsigned long)stat(s, "put_cancelled"));
        cr_expect_eq(stat(s, "assembled"), NB);
        cr_expect_eq(stat(s, "assembling"), 0);
        cr_assert_eq(kvt_close(s), 0);
    }
}

Test(range_put, refused_on_an_nvme_only_store_and_a_connected_one)
{
#if KVT_HAVE_URING
    kvt_config *c;
    kvt_store *s;
    char file[512];
    const char *dir = getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".";
    snprintf(file, sizeof file, "%s/range-put-%d.kvt", dir, (int)getpid());
    unlink(file);
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, FRAGS), 0);
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", BLOCK, &slot), 0);
    int t = kvt_test_tier(c, "nvme");
    cr_assert_eq(kvt_config_tier_set(c, t, "capacity", (int64_t)(16 * slot)), 0);
    cr_assert_eq(kvt_config_tier_set_str(c, t, "path", file), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    cr_expect_eq(put_range(s, 0, 1, 0, 1, NULL), KVT_ENOTSUP);
    cr_expect(strstr(kvt_last_error(), "DRAM") != NULL, "%s", kvt_last_error());
    cr_assert_eq(kvt_close(s), 0);
    unlink(file);
#endif
    kvt_store *d = open_store(0);
    char sock[512];
    const char *root = getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".";
    snprintf(sock, sizeof sock, "%s/range-put-%d.sock", root, (int)getpid());
    unlink(sock);
    kvt_server *srv;
    cr_assert_eq(kvt_serve(d, sock, NULL, &srv), 0, "%s", kvt_last_error());
    kvt_store *cl;
    cr_assert_eq(kvt_connect(sock, NULL, &cl), 0, "%s", kvt_last_error());
    cr_expect_eq(put_range(cl, 0, 1, 0, 1, NULL), KVT_ENOTSUP);
    cr_assert_eq(kvt_close(cl), 0);
    cr_assert_eq(kvt_serve_stop(srv), 0);
    unlink(sock);
    cr_assert_eq(kvt_close(d), 0);
}

Test(range_put, a_whole_put_replaces_an_assembly)
{
    kvt_store *s = open_store(0);
    cr_assert_eq(put_range(s, 0, 2, 0, 4, NULL), 2);
    void *p[FRAGS];
    for (int f = 0; f < FRAGS; f++)
        p[f] = src[0] + f * FRAG;
    cr_assert_eq(kvt_put(s, &keys[0], 1, p, NULL, NULL), 1, "%s", kvt_last_error());
    cr_expect_eq(stat(s, "assembly_aborted"), 1);
    cr_assert_eq(visible(s, 0), 1);
    cr_assert_eq(visible(s, 1), 0);
    /* The rest of block 0's layers: held whole now, nothing written. */
    cr_assert_eq(put_range(s, 0, 2, 4, 4, NULL), 2);
    cr_assert_eq(visible(s, 0), 1);
    cr_assert_eq(visible(s, 1), 1);
    cr_expect_eq(stat(s, "assembled"), 1);
    cr_assert_eq(kvt_close(s), 0);
}

typedef struct racer {
    kvt_store *s;
    int removes;
} racer;

static void *remove_loop(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 200; i++)
        if (kvt_remove(r->s, keys, NB) >= 0)
            r->removes++;
    return NULL;
}

/* Removes racing with layer-wise puts (an abort while a call copies into
 * the block: its last copier lets it go): whatever is visible afterwards
 * is byte-exact, nothing stays assembling once all layers are put again,
 * and the slots all come back. */
Test(range_put, removes_racing_with_assembly)
{
    kvt_store *s = open_store(0);
    racer r = {.s = s};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, remove_loop, &r), 0);
    for (int round = 0; round < 50; round++)
        for (uint32_t f = 0; f < FRAGS; f++)
            cr_assert_eq(put_range(s, 0, NB, f, 1, NULL), NB, "%s", kvt_last_error());
    pthread_join(t, NULL);
    cr_assert_eq(r.removes, 200);
    for (int b = 0; b < NB; b++)
        visible(s, b); /* asserts the bytes of any block held */
    cr_assert_eq(kvt_remove(s, keys, NB) >= 0, 1);
    cr_expect_eq(stat(s, "assembling"), 0);
    fill_whole_tier(s);
    cr_assert_eq(kvt_close(s), 0);
}

/* A clock that runs a second per reading: a wait that reads it ages what
 * it waits for. */
static _Atomic uint64_t fast_ns;
static uint64_t fast_clock(void *user)
{
    (void)user;
    return atomic_fetch_add(&fast_ns, 1000 * MS) + 1000 * MS;
}

/* One kvt_remove of more keys than the store keeps tombstones for, while a
 * block assembles (its put open: no tombstone can be freed): the remove
 * ages the block out itself, rather than wait for a thread there is not. */
Test(range_put, a_long_remove_ages_out_a_block_left_assembling, .timeout = 60)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, FRAGS), 0);
    cr_assert_eq(kvt_config_set_clock(c, fast_clock, NULL), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", SLOTS * BLOCK), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    (void)open_store; /* this one keeps the fast clock */
    keys[0] = (kvt_key){{0x7a, 0x52, 0x50}};
    void *p = src[0];
    kvt_io_opts o = {.size = sizeof o, .frag_first = 0, .frag_count = 1};
    cr_assert_eq(kvt_put(s, keys, 1, &p, &o, NULL), 1, "%s", kvt_last_error());
    enum { N = 6000 };
    kvt_key *gone = calloc(N, sizeof *gone);
    cr_assert_not_null(gone);
    for (uint32_t i = 0; i < N; i++) {
        memcpy(gone[i].b, &i, sizeof i);
        gone[i].b[15] = 0xee;
    }
    cr_assert_geq(kvt_remove(s, gone, N), 0, "%s", kvt_last_error());
    cr_assert_eq(stat(s, "assembly_aborted"), 1);
    free(gone);
    kvt_close(s);
}
