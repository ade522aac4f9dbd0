/* test_events_tiers.c — events across DRAM and NVMe on a virtual clock: an eviction names the tier it demotes to, the last tier's evictions drop. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 8192
#define MS 1000000ull

static char path[512];

static kvt_store *open_two(uint64_t dram_blocks, uint64_t nvme_blocks)
{
    const char *dir = getenv("KVT_BUILD_ROOT");
    snprintf(path, sizeof path, "%s/events-%d.kvt", dir ? dir : ".", (int)getpid());
    unlink(path);
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", BLOCK, &slot), 0);
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1);
    kvt_config_set(c, KVT_OPT_CLOSE_FLUSH_MS, 0);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(dram_blocks * BLOCK));
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", "lru");
    kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(nvme_blocks * slot));
    kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "policy", "lru");
    kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    int rc = kvt_open(c, &s);
    kvt_config_free(c);
    if (rc == KVT_ENOTSUP || rc == KVT_ENODIRECT)
        cr_skip("NVMe tier unavailable here: %s", kvt_last_error());
    cr_assert_eq(rc, 0, "open: %s", kvt_last_error());
    return s;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, &i, sizeof i);
    k.b[15] = 0xd4;
    return k;
}

static uint8_t buf[BLOCK];

static void put_at(kvt_store *s, uint32_t i, uint64_t now)
{
    cr_assert_eq(kvt_clock_set(s, now), 0);
    kvt_key k = key_of(i);
    void *p = buf;
    cr_assert_eq(kvt_put(s, &k, 1, &p, NULL, NULL), 1, "%s", kvt_last_error());
}

static void expect(const kvt_event *e, uint32_t key, uint8_t tier, uint8_t to, uint64_t t)
{
    kvt_key k = key_of(key);
    cr_assert_eq(e->kind, KVT_EVENT_EVICTED);
    cr_assert(memcmp(&e->key, &k, sizeof k) == 0, "key is not %u", key);
    cr_assert_eq(e->tier, tier, "key %u: tier %u, want %u", key, e->tier, tier);
    cr_assert_eq(e->to, to, "key %u: to %u, want %u", key, e->to, to);
    cr_assert_eq(e->time_ns, t);
}

Test(events_tiers, demotions_then_a_drop_from_the_last_tier)
{
    kvt_store *s = open_two(2, 4);
    cr_assert_eq(kvt_events_enable(s, 32), 0);
    for (uint32_t i = 0; i < 7; i++)
        put_at(s, i, (i + 1) * MS);
    /* DRAM held 2: puts 2..6 each pushed the oldest down; NVMe held 4: the
     * fifth block demoted (4) pushed NVMe's oldest (0) out for good. */
    kvt_event ev[16];
    cr_assert_eq(kvt_events_take(s, ev, 16, NULL), 6);
    for (uint32_t i = 0; i < 5; i++)
        expect(&ev[i], i, TIER_DRAM, TIER_NVME, (i + 3) * MS);
    expect(&ev[5], 0, TIER_NVME, KVT_TIER_NONE, 7 * MS);
    kvt_key k0 = key_of(0), k1 = key_of(1);
    cr_assert_eq(kvt_contains(s, &k0, 1, NULL), 0);
    cr_assert_eq(kvt_contains(s, &k1, 1, NULL), 1);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}
