/* test_ttl.c — idle TTL on a virtual clock: exact expiry, refresh on hits, pins and retention override. */
#include <criterion/criterion.h>
#include <string.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 1024
#define MS 1000000ull

static kvt_store *open_ttl(uint64_t ttl_ms, uint64_t blocks)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(blocks * BLOCK));
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", (int64_t)ttl_ms);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, &i, sizeof i);
    k.b[15] = 0x5c;
    return k;
}

static uint8_t buf[BLOCK];

static void put_at(kvt_store *s, uint32_t i, uint32_t retain_s)
{
    kvt_key k = key_of(i);
    void *p = buf;
    kvt_io_opts o = {.size = sizeof o, .retain_s = retain_s};
    cr_assert_eq(kvt_put(s, &k, 1, &p, &o, NULL), 1);
}

static int held(kvt_store *s, uint32_t i)
{
    kvt_key k = key_of(i);
    return kvt_lookup(s, &k, 1, NULL, 0);
}

static void get1(kvt_store *s, uint32_t i)
{
    kvt_key k = key_of(i);
    void *p = buf;
    cr_assert_eq(kvt_get(s, &k, 1, &p, NULL, NULL), 1);
}

Test(ttl, expires_exactly_after_ttl)
{
    kvt_store *s = open_ttl(1000, 8);
    cr_assert_eq(kvt_clock_set(s, 5 * MS), 0);
    put_at(s, 1, 0);
    cr_assert_eq(kvt_clock_set(s, 1005 * MS), 0);
    cr_assert_eq(held(s, 1), 1, "present at exactly TTL");
    cr_assert_eq(kvt_clock_set(s, 1005 * MS + 1), 0);
    cr_assert_eq(held(s, 1), 0, "gone at TTL + 1 ns");
    uint64_t v;
    cr_assert_eq(kvt_stat(s, "dram.expirations", &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(kvt_stat(s, "dram.used_blocks", &v), 0);
    cr_assert_eq(v, 0, "an expired block frees its slot");
    cr_assert_eq(kvt_close(s), 0);
}

/* The same boundary behind a block that is past it: the store skips the
 * idle list while its oldest block is within the TTL, so a lone block at
 * exactly TTL cannot tell ">" from ">="; here the walk runs and must stop
 * at the block that is exactly TTL old. */
Test(ttl, exactly_ttl_stays_behind_an_expired_block)
{
    kvt_store *s = open_ttl(1000, 8);
    cr_assert_eq(kvt_clock_set(s, 5 * MS), 0);
    put_at(s, 1, 0);
    cr_assert_eq(kvt_clock_set(s, 6 * MS), 0);
    put_at(s, 2, 0);
    cr_assert_eq(kvt_clock_set(s, 1006 * MS), 0);
    cr_assert_eq(held(s, 1), 0, "idle 1001 ms: gone");
    cr_assert_eq(held(s, 2), 1, "idle exactly 1000 ms: present");
    uint64_t v;
    cr_assert_eq(kvt_stat(s, "dram.expirations", &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(kvt_clock_set(s, 1006 * MS + 1), 0);
    cr_assert_eq(held(s, 2), 0, "idle 1000 ms + 1 ns: gone");
    cr_assert_eq(kvt_close(s), 0);
}

Test(ttl, hits_refresh_lookups_do_not)
{
    kvt_store *s = open_ttl(1000, 8);
    put_at(s, 1, 0);
    put_at(s, 2, 0);
    cr_assert_eq(kvt_clock_set(s, 800 * MS), 0);
    get1(s, 1);
    cr_assert_eq(held(s, 2), 1);
    cr_assert_eq(kvt_clock_set(s, 1000 * MS + 1), 0);
    cr_assert_eq(held(s, 2), 0, "a lookup is not an access");
    cr_assert_eq(held(s, 1), 1, "the get at 800 ms refreshed block 1");
    cr_assert_eq(kvt_clock_set(s, 1800 * MS), 0);
    cr_assert_eq(held(s, 1), 1);
    cr_assert_eq(kvt_clock_set(s, 1800 * MS + 1), 0);
    cr_assert_eq(held(s, 1), 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(ttl, pins_override_expiry)
{
    kvt_store *s = open_ttl(100, 8);
    put_at(s, 1, 0);
    kvt_key k = key_of(1);
    cr_assert_eq(kvt_pin(s, &k, 1, 10000), 1);
    cr_assert_eq(kvt_clock_set(s, 5000 * MS), 0);
    cr_assert_eq(held(s, 1), 1, "pinned past its TTL");
    cr_assert_eq(kvt_release(s, &k, 1, NULL), 1);
    /* Deferred by the pin at 5000 ms: its idle time restarted then. */
    cr_assert_eq(kvt_clock_set(s, 5100 * MS), 0);
    cr_assert_eq(held(s, 1), 1);
    cr_assert_eq(kvt_clock_set(s, 5100 * MS + 1), 0);
    cr_assert_eq(held(s, 1), 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(ttl, retention_hint_keeps_at_least)
{
    kvt_store *s = open_ttl(100, 2);
    put_at(s, 1, 3600); /* keep an hour */
    put_at(s, 2, 0);
    cr_assert_eq(kvt_clock_set(s, 1800ull * 1000 * MS), 0);
    cr_assert_eq(held(s, 1), 1, "retained for the hour");
    cr_assert_eq(held(s, 2), 0);
    /* Retained blocks are not evicted either: the store is full of them. */
    put_at(s, 3, 3600);
    kvt_key k4 = key_of(4);
    void *p = buf;
    int32_t st;
    kvt_io_opts o = {.size = sizeof o, .status = &st};
    cr_assert_eq(kvt_put(s, &k4, 1, &p, &o, NULL), 0);
    cr_assert_eq(st, KVT_EFULL);
    cr_assert_eq(kvt_clock_set(s, 3601ull * 1000 * MS), 0);
    cr_assert_eq(kvt_expire(s), 1, "block 1 leaves after its hour");
    cr_assert_eq(held(s, 1), 0);
    cr_assert_eq(held(s, 3), 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(ttl, no_ttl_means_forever)
{
    kvt_store *s = open_ttl(0, 4);
    put_at(s, 1, 0);
    cr_assert_eq(kvt_clock_set(s, 1000000ull * 1000 * MS), 0);
    cr_assert_eq(held(s, 1), 1);
    cr_assert_eq(kvt_close(s), 0);
}
