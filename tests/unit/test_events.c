/* test_events.c — the event stream on a virtual clock: exact sequences of evictions, expirations and removals, the overflow count and the eventfd. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 1024
#define MS 1000000ull

static kvt_store *open_lru(uint64_t blocks, uint64_t ttl_ms)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(blocks * BLOCK));
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", (int64_t)ttl_ms);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", "lru"), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, &i, sizeof i);
    k.b[15] = 0xe7;
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

static void get_at(kvt_store *s, uint32_t i, uint64_t now)
{
    cr_assert_eq(kvt_clock_set(s, now), 0);
    kvt_key k = key_of(i);
    void *p = buf;
    cr_assert_eq(kvt_get(s, &k, 1, &p, NULL, NULL), 1);
}

static void expect(const kvt_event *e, uint8_t kind, uint32_t key, uint8_t tier, uint8_t to,
                   uint64_t time_ns)
{
    kvt_key k = key_of(key);
    cr_assert_eq(e->kind, kind, "kind %u, want %u", e->kind, kind);
    cr_assert(memcmp(&e->key, &k, sizeof k) == 0, "key of event (kind %u) is not %u", kind, key);
    cr_assert_eq(e->tier, tier);
    cr_assert_eq(e->to, to);
    cr_assert_eq(e->time_ns, time_ns, "time %llu, want %llu", (unsigned long long)e->time_ns,
                 (unsigned long long)time_ns);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(e->reserved[i], 0);
}

static int fd_readable(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    if (r < 0) {
        cr_assert_eq(errno, EAGAIN);
        return 0;
    }
    cr_assert_eq(r, (ssize_t)sizeof v);
    return 1;
}

Test(events, layout_is_fixed)
{
    cr_assert_eq(sizeof(kvt_event), 32);
    cr_assert_eq(offsetof(kvt_event, time_ns), 16);
    cr_assert_eq(offsetof(kvt_event, kind), 24);
}

Test(events, off_until_enabled_and_argument_errors)
{
    kvt_store *s = open_lru(4, 0);
    kvt_event ev[4];
    cr_assert_eq(kvt_events_take(s, ev, 4, NULL), KVT_EINVAL);
    cr_assert_eq(kvt_events_fd(s), KVT_EINVAL);
    for (uint32_t i = 0; i < 6; i++) /* evictions while off: never reported */
        put_at(s, i, (i + 1) * MS);
    cr_assert_eq(kvt_events_enable(s, 0), KVT_ESIZE);
    cr_assert_eq(kvt_events_enable(s, (1u << 24) + 1), KVT_ESIZE);
    cr_assert_eq(kvt_events_enable(s, 8), 0);
    cr_assert_eq(kvt_events_enable(s, 8), KVT_EINVAL);
    cr_assert_eq(kvt_events_take(s, NULL, 1, NULL), KVT_ENULL);
    cr_assert_eq(kvt_events_take(s, NULL, 0, NULL), 0);
    cr_assert_eq(kvt_events_take(s, ev, 4, NULL), 0);
    cr_assert_eq(kvt_events_enable(NULL, 8), KVT_ENULL);
    cr_assert_eq(kvt_close(s), 0);
}

Test(events, evictions_in_lru_order)
{
    kvt_store *s = open_lru(4, 0);
    cr_assert_eq(kvt_events_enable(s, 16), 0);
    for (uint32_t i = 0; i < 4; i++)
        put_at(s, i, (i + 1) * MS); /* 0 1 2 3, oldest first */
    get_at(s, 0, 5 * MS);           /* 1 2 3 0 */
    put_at(s, 4, 6 * MS);           /* evicts 1 */
    put_at(s, 5, 7 * MS);           /* evicts 2 */
    get_at(s, 3, 8 * MS);           /* 0 4 5 3 */
    put_at(s, 6, 9 * MS);           /* evicts 0 */
    kvt_event ev[8];
    uint64_t overflow = 99;
    cr_assert_eq(kvt_events_take(s, ev, 8, &overflow), 3);
    cr_assert_eq(overflow, 0);
    expect(&ev[0], KVT_EVENT_EVICTED, 1, TIER_DRAM, KVT_TIER_NONE, 6 * MS);
    expect(&ev[1], KVT_EVENT_EVICTED, 2, TIER_DRAM, KVT_TIER_NONE, 7 * MS);
    expect(&ev[2], KVT_EVENT_EVICTED, 0, TIER_DRAM, KVT_TIER_NONE, 9 * MS);
    cr_assert_eq(kvt_events_take(s, ev, 8, NULL), 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(events, expirations_and_removals)
{
    kvt_store *s = open_lru(8, 100);
    cr_assert_eq(kvt_events_enable(s, 16), 0);
    put_at(s, 10, 10 * MS);
    put_at(s, 11, 20 * MS);
    put_at(s, 12, 30 * MS);
    cr_assert_eq(kvt_clock_set(s, 115 * MS), 0);
    cr_assert_eq(kvt_expire(s), 1); /* 10 is 105 ms idle; 11 is 95 */
    kvt_key k12 = key_of(12), absent = key_of(99);
    kvt_key both[2] = {k12, absent};
    cr_assert_eq(kvt_clock_set(s, 116 * MS), 0);
    cr_assert_eq(kvt_remove(s, both, 2), 1); /* an absent key: no event */
    cr_assert_eq(kvt_clock_set(s, 200 * MS), 0);
    cr_assert_eq(kvt_expire(s), 1);
    kvt_event ev[8];
    cr_assert_eq(kvt_events_take(s, ev, 8, NULL), 3);
    expect(&ev[0], KVT_EVENT_EXPIRED, 10, TIER_DRAM, KVT_TIER_NONE, 115 * MS);
    expect(&ev[1], KVT_EVENT_REMOVED, 12, KVT_TIER_NONE, KVT_TIER_NONE, 116 * MS);
    expect(&ev[2], KVT_EVENT_EXPIRED, 11, TIER_DRAM, KVT_TIER_NONE, 200 * MS);
    /* A removed key removed again, an expired one removed: nothing held, no event. */
    kvt_key k10 = key_of(10);
    cr_assert_eq(kvt_remove(s, &k10, 1), 0);
    cr_assert_eq(kvt_remove(s, &k12, 1), 0);
    cr_assert_eq(kvt_events_take(s, ev, 8, NULL), 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(events, clear_reports_every_key_once)
{
    kvt_store *s = open_lru(8, 0);
    cr_assert_eq(kvt_events_enable(s, 16), 0);
    for (uint32_t i = 0; i < 5; i++)
        put_at(s, 20 + i, (i + 1) * MS);
    cr_assert_eq(kvt_clock_set(s, 50 * MS), 0);
    cr_assert_eq(kvt_clear(s), 5);
    kvt_event ev[8];
    cr_assert_eq(kvt_events_take(s, ev, 8, NULL), 5);
    int seen[5] = {0};
    for (int j = 0; j < 5; j++) {
        uint32_t i;
        memcpy(&i, ev[j].key.b, sizeof i);
        cr_assert(i >= 20 && i < 25);
        expect(&ev[j], KVT_EVENT_REMOVED, i, KVT_TIER_NONE, KVT_TIER_NONE, 50 * MS);
        seen[i - 20]++;
    }
    for (int i = 0; i < 5; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(events, overflow_keeps_the_oldest_and_counts_the_rest)
{
    kvt_store *s = open_lru(2, 0);
    cr_assert_eq(kvt_events_enable(s, 2), 0);
    for (uint32_t i = 0; i < 7; i++) /* 5 evictions: of 0 1 2 3 4 */
        put_at(s, i, (i + 1) * MS);
    kvt_event ev[8];
    uint64_t overflow = 0;
    cr_assert_eq(kvt_events_take(s, ev, 1, &overflow), 1);
    cr_assert_eq(overflow, 3);
    expect(&ev[0], KVT_EVENT_EVICTED, 0, TIER_DRAM, KVT_TIER_NONE, 3 * MS);
    cr_assert_eq(kvt_events_take(s, ev, 8, &overflow), 1);
    cr_assert_eq(overflow, 0, "reset by the take that read it");
    expect(&ev[0], KVT_EVENT_EVICTED, 1, TIER_DRAM, KVT_TIER_NONE, 4 * MS);
    put_at(s, 7, 9 * MS); /* room again: evicts 5 */
    cr_assert_eq(kvt_events_take(s, ev, 8, &overflow), 1);
    cr_assert_eq(overflow, 0);
    expect(&ev[0], KVT_EVENT_EVICTED, 5, TIER_DRAM, KVT_TIER_NONE, 9 * MS);
    cr_assert_eq(kvt_close(s), 0);
}

Test(events, eventfd_signals_an_empty_queue_filling)
{
    kvt_store *s = open_lru(2, 0);
    cr_assert_eq(kvt_events_enable(s, 8), 0);
    int fd = kvt_events_fd(s);
    cr_assert_geq(fd, 0);
    cr_assert_neq(fd, kvt_eventfd(s), "not the tickets' eventfd");
    put_at(s, 0, 1 * MS);
    put_at(s, 1, 2 * MS);
    cr_assert_eq(fd_readable(fd), 0, "no event yet");
    put_at(s, 2, 3 * MS);
    cr_assert_eq(fd_readable(fd), 1);
    cr_assert_eq(fd_readable(fd), 0, "reset by the read");
    put_at(s, 3, 4 * MS); /* a second event while one is queued: no new signal */
    cr_assert_eq(fd_readable(fd), 0);
    kvt_event ev[4];
    cr_assert_eq(kvt_events_take(s, ev, 4, NULL), 2);
    put_at(s, 4, 5 * MS); /* the queue was empty: signalled */
    cr_assert_eq(fd_readable(fd), 1);
    cr_assert_eq(kvt_events_take(s, ev, 4, NULL), 1);
    expect(&ev[0], KVT_EVENT_EVICTED, 2, TIER_DRAM, KVT_TIER_NONE, 5 * MS);
    cr_assert_eq(kvt_close(s), 0);
}
