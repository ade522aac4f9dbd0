/* test_abi.c — the ABI's contracts beyond the error table: the `size` of structs that cross
 * it (copy_struct_from_user rules), and the per-block status codes of kvt_put / kvt_get. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 4096

static kvt_store *open_dram(uint64_t blocks, kvt_clock_fn clock, void *user)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(blocks * BLOCK)),
                 0);
    if (clock)
        cr_assert_eq(kvt_config_set_clock(c, clock, user), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

/* ------------------------------------------------------------------ size */

/* A caller's kvt_io_opts of any claimed size: the library's struct, then
 * whatever a newer header would have added, in one zeroed buffer. */
static _Alignas(16) unsigned char raw[8192];

static kvt_io_opts *opts_of_size(uint32_t size, int32_t *status)
{
    memset(raw, 0, sizeof raw);
    kvt_io_opts o = {.size = size, .status = status};
    memcpy(raw, &o, sizeof o);
    return (kvt_io_opts *)raw;
}

static int put_with(kvt_store *s, uint8_t id, const kvt_io_opts *o)
{
    static unsigned char block[BLOCK];
    memset(block, id, sizeof block);
    kvt_key k = {{id}};
    void *p = block;
    return kvt_put(s, &k, 1, &p, o, NULL);
}

static int held(kvt_store *s, uint8_t id)
{
    kvt_key k = {{id}};
    return kvt_lookup(s, &k, 1, NULL, 0);
}

Test(abi, io_opts_size_too_small_is_einval)
{
    kvt_store *s = open_dram(16, NULL, NULL);
    /* The first version of kvt_io_opts ends where `group` begins. */
    const uint32_t first = offsetof(kvt_io_opts, group);
    const uint32_t sizes[] = {0, 4, first - 8, first - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int32_t st = 7;
        cr_expect_eq(put_with(s, 1, opts_of_size(sizes[i], &st)), KVT_EINVAL, "size %u",
                     sizes[i]);
        cr_expect(strstr(kvt_last_error(), "opts->size") != NULL, "size %u: %s", sizes[i],
                  kvt_last_error());
        cr_expect_eq(st, 7, "size %u: status written by a refused call", sizes[i]);
    }
    cr_expect_eq(held(s, 1), 0, "a refused put stored its block");
    cr_assert_eq(kvt_close(s), 0);
}

Test(abi, io_opts_size_exact_or_larger_with_zero_tail_is_accepted)
{
    kvt_store *s = open_dram(16, NULL, NULL);
    const uint32_t sizes[] = {sizeof(kvt_io_opts), sizeof(kvt_io_opts) + 1,
                              sizeof(kvt_io_opts) + 8, sizeof(kvt_io_opts) + 64, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int32_t st = 7;
        uint8_t id = (uint8_t)(10 + i);
        cr_expect_eq(put_with(s, id, opts_of_size(sizes[i], &st)), 1, "size %u: %s", sizes[i],
                     kvt_last_error());
        cr_expect_eq(st, 0, "size %u", sizes[i]);
        cr_expect_eq(held(s, id), 1, "size %u", sizes[i]);
    }
    /* The same through a ticket: the worker gets a copy of the known part. */
    unsigned char dst[BLOCK];
    void *p = dst;
    kvt_key k = {{10}};
    int32_t st = 7;
    kvt_ticket t;
    cr_assert_eq(kvt_get(s, &k, 1, &p, opts_of_size(sizeof(kvt_io_opts) + 64, &st), &t), 0, "%s",
                 kvt_last_error());
    memset(raw, 0xee, sizeof raw); /* the library keeps status, not opts */
    cr_expect_eq(kvt_wait(s, t, -1), 1);
    cr_expect_eq(st, 0);
    cr_expect_eq(dst[0], 10);
    cr_assert_eq(kvt_close(s), 0);
}

Test(abi, io_opts_larger_with_nonzero_tail_is_esize)
{
    kvt_store *s = open_dram(16, NULL, NULL);
    const size_t known = sizeof(kvt_io_opts);
    struct {
        uint32_t size;
        size_t bad; /* the non-zero byte */
    } cases[] = {{known + 1, known}, {known + 8, known + 3}, {known + 64, known + 63},
                 {4096, 4095}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t st = 7;
        kvt_io_opts *o = opts_of_size(cases[i].size, &st);
        raw[cases[i].bad] = 1;
        cr_expect_eq(put_with(s, 1, o), KVT_ESIZE, "size %u, byte %zu set", cases[i].size,
                     cases[i].bad);
        char want[32];
        snprintf(want, sizeof want, "byte %zu", cases[i].bad);
        cr_expect(strstr(kvt_last_error(), "opts->size") && strstr(kvt_last_error(), want),
                  "message lacks the field or %s: %s", want, kvt_last_error());
        cr_expect_eq(st, 7);
        /* A ticket's call is refused the same way, before anything is queued. */
        kvt_ticket t = 0;
        kvt_key k = {{1}};
        void *p = raw + 4096;
        cr_expect_eq(kvt_put(s, &k, 1, &p, o, &t), KVT_ESIZE);
    }
    cr_expect_eq(held(s, 1), 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(abi, io_opts_size_beyond_4096_is_esize_unread)
{
    kvt_store *s = open_dram(16, NULL, NULL);
    /* All zero: refused for the size alone. Only 8192 bytes exist behind
     * 0xFFFFFFFF, so reading them (caught by ASan) would also fail here. */
    const uint32_t sizes[] = {4097, 8192, 0x10000, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int32_t st = 7;
        cr_expect_eq(put_with(s, 1, opts_of_size(sizes[i], &st)), KVT_ESIZE, "size %u",
                     sizes[i]);
        cr_expect(strstr(kvt_last_error(), "opts->size") != NULL, "%s", kvt_last_error());
        cr_expect_eq(st, 7);
    }
    cr_expect_eq(held(s, 1), 0);
    cr_assert_eq(kvt_close(s), 0);
}

/* ---------------------------------------------------------- block status */

/* Every code kvtier.h lists for status[i] of a put. */
static int documented_put_status(int32_t st)
{
    switch (st) {
    case 0:
    case KVT_EFULL:
    case KVT_EIO:
    case KVT_ENOSPC:
    case KVT_ENOMEM:
    case KVT_EMEMKIND:
    case KVT_ENODEV:
        return 1;
    default:
        return 0;
    }
}

/* The store's clock, which a get reads after copying its blocks out and
 * before it lets go of their slots: armed, it removes the key and puts it
 * again right there, from the getting thread, while the get still reads. */
typedef struct race {
    kvt_store *s;
    kvt_key key;
    void *src;
    pthread_t thread;
    atomic_uint_fast64_t ticks;
    int armed, inside;
    int puts, busy_rc, busy_seen;
    int32_t busy_status;
} race;

static uint64_t racing_clock(void *user)
{
    race *r = user;
    uint64_t now = atomic_fetch_add(&r->ticks, 1);
    if (!r->armed || r->inside || !pthread_equal(pthread_self(), r->thread))
        return now;
    r->inside = 1; /* the calls below read the clock too */
    kvt_remove(r->s, &r->key, 1);
    int32_t st = 12345;
    kvt_io_opts o = {.size = sizeof o, .status = &st};
    r->busy_rc = kvt_put(r->s, &r->key, 1, &r->src, &o, NULL);
    r->busy_status = st;
    r->puts++;
    r->armed = 0; /* once, while the get still holds the old copy */
    r->inside = 0;
    return now;
}

/* A put of a key whose only copy left (removed) while a get still copies out
 * of it: the key takes a new entry and slot and is stored (status 0); the
 * old slot goes once the get is done. There is no per-block KVT_EBUSY. */
Test(abi, put_of_a_block_being_read_while_removed_stores_it_anew)
{
    static race r;
    static unsigned char src[BLOCK], dst[BLOCK];
    memset(src, 0x5a, sizeof src);
    r.thread = pthread_self();
    r.src = src;
    r.key = (kvt_key){{0x42}};
    r.s = open_dram(16, racing_clock, &r);
    cr_assert_eq(kvt_put(r.s, &r.key, 1, &r.src, NULL, NULL), 1);
    void *p = dst;
    int32_t gst = 7;
    kvt_io_opts go = {.size = sizeof go, .status = &gst};
    r.armed = 1;
    cr_assert_eq(kvt_get(r.s, &r.key, 1, &p, &go, NULL), 1, "%s", kvt_last_error());
    cr_expect_eq(gst, 0);
    cr_expect_eq(dst[0], 0x5a);
    cr_assert_eq(r.puts, 1, "the clock was not read while the get held the block");
    cr_expect_eq(r.busy_status, 0, "status %d (%s)", r.busy_status, kvt_error_name(r.busy_status));
    cr_expect(documented_put_status(r.busy_status), "status %d is not documented", r.busy_status);
    cr_expect_eq(r.busy_rc, 1, "the block was not stored");
    /* The reader is done: the old slot is free, the new copy is the one held. */
    cr_expect_eq(kvt_lookup(r.s, &r.key, 1, NULL, 0), 1, "the re-stored block is not held");
    uint64_t used = 0;
    cr_expect_eq(kvt_stat(r.s, "dram.used_blocks", &used), 0);
    cr_expect_eq(used, 1, "the old slot was not freed");
    memset(dst, 0, sizeof dst);
    cr_expect_eq(kvt_get(r.s, &r.key, 1, &p, NULL, NULL), 1);
    cr_expect_eq(dst[0], 0x5a);
    cr_assert_eq(kvt_close(r.s), 0);
}

/* The other per-block codes a DRAM store can give, each checked against the
 * list: a put into a full store of pinned blocks (KVT_EFULL), a get of a
 * missing key (KVT_ENOENT). */
Test(abi, put_into_a_pinned_full_store_is_efull)
{
    kvt_store *s = open_dram(2, NULL, NULL);
    static unsigned char b[BLOCK];
    kvt_key k[3] = {{{1}}, {{2}}, {{3}}};
    void *p[3] = {b, b, b};
    cr_assert_eq(kvt_put(s, k, 2, p, NULL, NULL), 2);
    cr_assert_eq(kvt_pin(s, k, 2, 60000), 2);
    int32_t st[3] = {7, 7, 7};
    kvt_io_opts o = {.size = sizeof o, .status = st};
    cr_expect_eq(kvt_put(s, k, 3, p, &o, NULL), 2);
    cr_expect_eq(st[0], 0);
    cr_expect_eq(st[1], 0);
    cr_expect_eq(st[2], KVT_EFULL, "%d", st[2]);
    cr_expect(documented_put_status(st[2]));
    kvt_key missing = {{9}};
    int32_t gst = 7;
    kvt_io_opts go = {.size = sizeof go, .status = &gst};
    cr_expect_eq(kvt_get(s, &missing, 1, p, &go, NULL), 0);
    cr_expect_eq(gst, KVT_ENOENT);
    cr_assert_eq(kvt_close(s), 0);
}
