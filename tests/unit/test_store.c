/* test_store.c — the public store API on the DRAM tier: bytes, prefixes, eviction, tickets, errors. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 4096

static kvt_key key_of(uint64_t i)
{
    kvt_key ns, k;
    uint32_t tok[4] = {(uint32_t)i, (uint32_t)(i >> 32), 7, 9};
    cr_assert_eq(kvt_ns_key(NULL, 0, &ns), 0);
    cr_assert_eq(kvt_key_chain(&ns, tok, 4, 4, &k, 1), 1);
    return k;
}

static kvt_store *open_dram(uint64_t blocks, uint32_t frags, int manual)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, frags), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, manual), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(blocks * BLOCK)), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0), 0);
    int rc = kvt_open(c, &s);
    cr_assert_eq(rc, 0, "kvt_open: %s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static int put1(kvt_store *s, uint64_t i)
{
    uint8_t buf[BLOCK];
    fill_pattern(buf, BLOCK, i, 1);
    kvt_key k = key_of(i);
    void *p = buf;
    return kvt_put(s, &k, 1, &p, NULL, NULL);
}

static int present(kvt_store *s, uint64_t i)
{
    kvt_key k = key_of(i);
    return kvt_lookup(s, &k, 1, NULL, 0);
}

Test(store, round_trip_exact_bytes_with_fragments)
{
    const uint32_t frags = 8, n = 32;
    kvt_store *s = open_dram(64, frags, 0);
    uint8_t *src = malloc((size_t)n * BLOCK), *dst = malloc((size_t)n * BLOCK);
    kvt_key keys[32];
    void *sp[32 * 8], *dp[32 * 8];
    /* fragments deliberately scattered: fragment f of block i at a different place */
    for (uint32_t i = 0; i < n; i++) {
        keys[i] = key_of(i);
        fill_pattern(src + (size_t)i * BLOCK, BLOCK, i, 1);
        for (uint32_t f = 0; f < frags; f++) {
            size_t off = ((size_t)f * n + i) * (BLOCK / frags);
            sp[i * frags + f] = src + (size_t)i * BLOCK + f * (BLOCK / frags);
            dp[i * frags + f] = dst + off;
        }
    }
    cr_assert_eq(kvt_put(s, keys, n, sp, NULL, NULL), (int)n, "%s", kvt_last_error());
    memset(dst, 0xA5, (size_t)n * BLOCK);
    int32_t st[32];
    kvt_io_opts o = {.size = sizeof o, .status = st};
    cr_assert_eq(kvt_get(s, keys, n, dp, &o, NULL), (int)n);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(st[i], 0);
        for (uint32_t f = 0; f < frags; f++)
            cr_assert_eq(memcmp(dp[i * frags + f], sp[i * frags + f], BLOCK / frags), 0,
                         "block %u fragment %u differs", i, f);
    }
    free(src);
    free(dst);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, lookup_stops_at_first_absent_block)
{
    kvt_store *s = open_dram(16, 1, 0);
    for (uint64_t i = 0; i < 6; i++)
        if (i != 3)
            cr_assert_eq(put1(s, i), 1);
    kvt_key keys[6];
    uint8_t tiers[6];
    for (int i = 0; i < 6; i++)
        keys[i] = key_of((uint64_t)i);
    cr_assert_eq(kvt_lookup(s, keys, 6, tiers, 0), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tiers[i], TIER_DRAM);
    for (int i = 3; i < 6; i++)
        cr_assert_eq(tiers[i], KVT_TIER_NONE);
    cr_assert_eq(kvt_lookup(s, keys + 4, 2, NULL, 0), 2);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, get_reports_missing_blocks_and_leaves_their_bytes)
{
    kvt_store *s = open_dram(16, 1, 0);
    cr_assert_eq(put1(s, 1), 1);
    kvt_key keys[2] = {key_of(0), key_of(1)};
    uint8_t a[BLOCK], b[BLOCK], want[BLOCK];
    memset(a, 0x5a, BLOCK);
    void *p[2] = {a, b};
    int32_t st[2];
    kvt_io_opts o = {.size = sizeof o, .status = st};
    cr_assert_eq(kvt_get(s, keys, 2, p, &o, NULL), 1);
    cr_assert_eq(st[0], KVT_ENOENT);
    cr_assert_eq(st[1], 0);
    for (int j = 0; j < BLOCK; j++)
        cr_assert_eq(a[j], 0x5a);
    fill_pattern(want, BLOCK, 1, 1);
    cr_assert_eq(memcmp(b, want, BLOCK), 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, lru_eviction_at_capacity_on_virtual_clock)
{
    kvt_store *s = open_dram(4, 1, 1);
    uint64_t t = 1000;
    for (uint64_t i = 0; i < 4; i++) {
        cr_assert_eq(kvt_clock_set(s, t += 10), 0);
        cr_assert_eq(put1(s, i), 1);
    }
    /* touch 0 by a get: 1 is now least recently used */
    uint8_t buf[BLOCK];
    void *p = buf;
    kvt_key k0 = key_of(0);
    cr_assert_eq(kvt_get(s, &k0, 1, &p, NULL, NULL), 1);
    cr_assert_eq(put1(s, 4), 1);
    cr_assert_eq(present(s, 1), 0, "LRU block 1 must be evicted");
    cr_assert_eq(present(s, 0), 1);
    cr_assert_eq(present(s, 2), 1);
    cr_assert_eq(present(s, 4), 1);
    uint64_t ev;
    cr_assert_eq(kvt_stat(s, "dram.evictions", &ev), 0);
    cr_assert_eq(ev, 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, pinned_blocks_survive_and_full_store_rejects)
{
    kvt_store *s = open_dram(2, 1, 1);
    cr_assert_eq(put1(s, 0), 1);
    cr_assert_eq(put1(s, 1), 1);
    kvt_key k[2] = {key_of(0), key_of(1)};
    cr_assert_eq(kvt_pin(s, k, 2, 1000), 2);
    int32_t st;
    uint8_t buf[BLOCK];
    void *p = buf;
    kvt_key k2 = key_of(2);
    kvt_io_opts o = {.size = sizeof o, .status = &st};
    cr_assert_eq(kvt_put(s, &k2, 1, &p, &o, NULL), 0);
    cr_assert_eq(st, KVT_EFULL);
    cr_assert_eq(present(s, 0) + present(s, 1), 2);
    /* release one: it becomes the victim */
    cr_assert_eq(kvt_release(s, k, 1, NULL), 1);
    cr_assert_eq(kvt_put(s, &k2, 1, &p, NULL, NULL), 1);
    cr_assert_eq(present(s, 0), 0);
    cr_assert_eq(present(s, 1), 1);
    /* the other lease runs out by itself */
    cr_assert_eq(kvt_clock_set(s, 1000 * 1000000ull + 1), 0);
    kvt_key k3 = key_of(3);
    cr_assert_eq(kvt_put(s, &k3, 1, &p, NULL, NULL), 1);
    int32_t rs;
    cr_assert_eq(kvt_release(s, &k[1], 1, &rs), 0);
    cr_assert_eq(rs, KVT_ENOTPINNED);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, pin_is_all_or_nothing)
{
    kvt_store *s = open_dram(4, 1, 1);
    cr_assert_eq(put1(s, 0), 1);
    kvt_key k[2] = {key_of(0), key_of(9)};
    cr_assert_eq(kvt_pin(s, k, 2, 100), KVT_ENOENT);
    int32_t st;
    cr_assert_eq(kvt_release(s, k, 1, &st), 0, "the first key must not stay pinned");
    cr_assert_eq(st, KVT_ENOTPINNED);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, lookup_lease_pins_hits)
{
    kvt_store *s = open_dram(2, 1, 1);
    cr_assert_eq(put1(s, 0), 1);
    cr_assert_eq(put1(s, 1), 1);
    kvt_key k[2] = {key_of(0), key_of(1)};
    cr_assert_eq(kvt_lookup(s, k, 2, NULL, 50), 2);
    cr_assert_eq(put1(s, 2), 0);
    cr_assert_eq(kvt_clock_set(s, 50 * 1000000ull), 0);
    cr_assert_eq(put1(s, 2), 1, "lease ended at 50 ms");
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, remove_forgets)
{
    kvt_store *s = open_dram(4, 1, 0);
    cr_assert_eq(put1(s, 0), 1);
    cr_assert_eq(put1(s, 1), 1);
    kvt_key k[3] = {key_of(0), key_of(1), key_of(2)};
    cr_assert_eq(kvt_remove(s, k, 3), 2);
    cr_assert_eq(kvt_lookup(s, k, 3, NULL, 0), 0);
    cr_assert_eq(put1(s, 0), 1, "a removed key can be stored again");
    cr_assert_eq(present(s, 0), 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, put_of_present_block_counts_and_keeps_bytes)
{
    kvt_store *s = open_dram(4, 1, 0);
    cr_assert_eq(put1(s, 0), 1);
    uint8_t other[BLOCK], got[BLOCK], want[BLOCK];
    memset(other, 1, BLOCK);
    kvt_key k = key_of(0);
    void *p = other;
    cr_assert_eq(kvt_put(s, &k, 1, &p, NULL, NULL), 1);
    p = got;
    cr_assert_eq(kvt_get(s, &k, 1, &p, NULL, NULL), 1);
    fill_pattern(want, BLOCK, 0, 1);
    cr_assert_eq(memcmp(got, want, BLOCK), 0, "first write wins: blocks are immutable");
    uint64_t present_count;
    cr_assert_eq(kvt_stat(s, "put_present", &present_count), 0);
    cr_assert_eq(present_count, 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, async_put_get_tickets_and_eventfd)
{
    kvt_store *s = open_dram(64, 2, 0);
    enum { N = 16 };
    static uint8_t src[N][BLOCK], dst[N][BLOCK];
    kvt_key keys[N];
    void *sp[N * 2], *dp[N * 2];
    for (int i = 0; i < N; i++) {
        keys[i] = key_of((uint64_t)i + 100);
        fill_pattern(src[i], BLOCK, (uint64_t)i + 100, 1);
        sp[2 * i] = src[i];
        sp[2 * i + 1] = src[i] + BLOCK / 2;
        dp[2 * i] = dst[i];
        dp[2 * i + 1] = dst[i] + BLOCK / 2;
    }
    int efd = kvt_eventfd(s);
    cr_assert_geq(efd, 0);
    kvt_ticket t;
    cr_assert_eq(kvt_put(s, keys, N, sp, NULL, &t), 0);
    struct pollfd pfd = {.fd = efd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "eventfd must wake up on completion");
    uint64_t cnt;
    cr_assert_eq(read(efd, &cnt, sizeof cnt), (ssize_t)sizeof cnt);
    cr_assert_geq(cnt, 1);
    cr_assert_eq(kvt_poll(s, t), N);
    cr_assert_eq(kvt_poll(s, t), KVT_ETICKET, "a ticket is consumed once");
    cr_assert_eq(kvt_wait(s, t, 0), KVT_ETICKET);
    cr_assert_eq(kvt_get(s, keys, N, dp, NULL, &t), 0);
    cr_assert_eq(kvt_wait(s, t, -1), N);
    cr_assert_eq(memcmp(src, dst, sizeof src), 0);
    cr_assert_eq(kvt_wait(s, 12345, 0), KVT_ETICKET);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, close_with_async_operations_in_flight)
{
    kvt_store *s = open_dram(256, 1, 0);
    enum { N = 64 };
    static uint8_t src[N][BLOCK];
    static kvt_key keys[N];
    static void *sp[N];
    for (int i = 0; i < N; i++) {
        keys[i] = key_of((uint64_t)i);
        sp[i] = src[i];
    }
    kvt_ticket t;
    for (int r = 0; r < 8; r++)
        cr_assert_eq(kvt_put(s, keys, N, sp, NULL, &t), 0);
    cr_assert_eq(kvt_close(s), 0, "close waits for queued work");
}

Test(store, too_many_tickets_is_busy)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_MAX_INFLIGHT, 2);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 8 * BLOCK);
    cr_assert_eq(kvt_open(c, &s), 0);
    kvt_config_free(c);
    static uint8_t buf[BLOCK];
    void *p = buf;
    kvt_key k = key_of(1);
    kvt_ticket t[3];
    cr_assert_eq(kvt_put(s, &k, 1, &p, NULL, &t[0]), 0);
    cr_assert_eq(kvt_put(s, &k, 1, &p, NULL, &t[1]), 0);
    cr_assert_eq(kvt_put(s, &k, 1, &p, NULL, &t[2]), KVT_EBUSY, "tickets are bounded");
    cr_assert_eq(kvt_wait(s, t[0], -1), 1);
    cr_assert_eq(kvt_wait(s, t[1], -1), 1);
    cr_assert_eq(kvt_close(s), 0);
}

static uint64_t fake_now = 5;
static uint64_t fake_clock(void *user)
{
    (void)user;
    return fake_now;
}

Test(store, clock_hook_is_used)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 8 * BLOCK);
    cr_assert_eq(kvt_config_set_clock(c, fake_clock, NULL), 0);
    cr_assert_eq(kvt_open(c, &s), 0);
    kvt_config_free(c);
    fake_now = 777;
    cr_assert_eq(kvt_clock_now(s), 777);
    cr_assert_eq(kvt_clock_set(s, 1000), KVT_ENOTSUP, "only manual clocks are set");
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, manual_clock_never_goes_back)
{
    kvt_store *s = open_dram(4, 1, 1);
    cr_assert_eq(kvt_clock_set(s, 100), 0);
    cr_assert_eq(kvt_clock_now(s), 100);
    cr_assert_eq(kvt_clock_set(s, 99), KVT_EINVAL);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, stats_visit_names_and_values)
{
    kvt_store *s = open_dram(4, 1, 0);
    cr_assert_eq(put1(s, 0), 1);
    uint64_t v;
    cr_assert_eq(kvt_stat(s, "put_stored", &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(kvt_stat(s, "dram.used_blocks", &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(kvt_stat(s, "dram.capacity_blocks", &v), 0);
    cr_assert_eq(v, 4);
    cr_assert_eq(kvt_stat(s, "no.such.stat", &v), KVT_ENOENT);
    cr_assert_gt(kvt_stats(s, (kvt_stat_fn)(void (*)(void))NULL, NULL) == KVT_ENULL, 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(store, tier_available)
{
    kvt_store *s = open_dram(4, 1, 0);
    cr_assert_eq(kvt_test_tier_available(s, "dram"), 1);
    cr_assert_eq(kvt_test_tier_available(s, "nvme"), 0);
    cr_assert_eq(kvt_store_tier_available(s, 7), KVT_EINVAL);
    cr_assert_eq(kvt_close(s), 0);
}

/* A block's read count is 16 bits: one get naming a key 65,540 times holds
 * 65,535 reads of it, and the rest get KVT_EBUSY instead of wrapping the
 * count to a few (which would let the slot be reused under the readers). */
Test(store, read_count_saturates_busy_instead_of_wrapping)
{
    kvt_store *s = open_dram(8, 1, 0);
    cr_assert_eq(put1(s, 1), 1);
    enum { N = 65540 };
    kvt_key *keys = malloc(N * sizeof *keys);
    void **ptrs = malloc(N * sizeof *ptrs);
    int32_t *st = malloc(N * sizeof *st);
    uint8_t *buf = malloc(BLOCK);
    cr_assert(keys && ptrs && st && buf);
    for (size_t i = 0; i < N; i++) {
        keys[i] = key_of(1);
        ptrs[i] = buf;
    }
    kvt_io_opts o = {.size = sizeof o, .status = st};
    cr_assert_eq(kvt_get(s, keys, N, ptrs, &o, NULL), 65535);
    size_t busy = 0;
    for (size_t i = 0; i < N; i++)
        busy += st[i] == KVT_EBUSY;
    cr_assert_eq(busy, N - 65535);
    uint8_t want[BLOCK];
    fill_pattern(want, BLOCK, 1, 1);
    cr_assert_eq(memcmp(buf, want, BLOCK), 0);
    /* every read released: the block can be evicted and the store fills */
    for (uint64_t i = 2; i < 20; i++)
        cr_assert_eq(put1(s, i), 1);
    free(keys);
    free(ptrs);
    free(st);
    free(buf);
    kvt_close(s);
}
