/* test_contains.c — kvt_contains (per key, past misses), kvt_touch (an access without a copy) and kvt_clear on the DRAM tier. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdint.h>
#include <string.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 1024
#define MS 1000000ull

static kvt_store *open_dram(uint64_t blocks, uint64_t ttl_ms)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(blocks * BLOCK)), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0), 0);
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", "lru"), 0);
    if (ttl_ms)
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", (int64_t)ttl_ms), 0);
    int rc = kvt_open(c, &s);
    cr_assert_eq(rc, 0, "kvt_open: %s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

/* Real chained keys: spread over the index's shards as an engine's are. */
static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    uint32_t tok[2] = {i, 0x3d};
    cr_assert_eq(kvt_ns_key(NULL, 0, &ns), 0);
    cr_assert_eq(kvt_key_chain(&ns, tok, 2, 2, &k, 1), 1);
    return k;
}

static void put1(kvt_store *s, uint32_t i)
{
    uint8_t buf[BLOCK];
    memset(buf, (int)i, sizeof buf);
    kvt_key k = key_of(i);
    void *p = buf;
    cr_assert_eq(kvt_put(s, &k, 1, &p, NULL, NULL), 1, "put %u: %s", i, kvt_last_error());
}

static int held(kvt_store *s, uint32_t i)
{
    kvt_key k = key_of(i);
    return kvt_contains(s, &k, 1, NULL);
}

static void touch1(kvt_store *s, uint32_t i)
{
    kvt_key k = key_of(i);
    cr_assert_eq(kvt_touch(s, &k, 1), 1);
}

Test(contains, answers_per_key_past_misses)
{
    kvt_store *s = open_dram(16, 0);
    for (uint32_t i = 0; i < 6; i += 2)
        put1(s, i);
    kvt_key k[6];
    uint8_t tiers[6];
    memset(tiers, 0x77, sizeof tiers);
    for (uint32_t i = 0; i < 6; i++)
        k[i] = key_of(i);
    cr_assert_eq(kvt_contains(s, k, 6, tiers), 3);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(tiers[i], i % 2 ? KVT_TIER_NONE : TIER_DRAM, "key %d: tier %u", i, tiers[i]);
    cr_assert_eq(kvt_contains(s, k, 6, NULL), 3, "tiers is optional");
    cr_assert_eq(kvt_lookup(s, k, 6, NULL, 0), 1, "lookup stops at the first miss");
    /* Not an access and no pin: the LRU order and the evictable set stay as they were. */
    uint64_t hits;
    cr_assert_eq(kvt_stat(s, "dram.hits", &hits), 0);
    cr_assert_eq(hits, 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(contains, removed_and_expired_keys_are_not_held)
{
    kvt_store *s = open_dram(16, 1000);
    cr_assert_eq(kvt_clock_set(s, 10 * MS), 0);
    for (uint32_t i = 0; i < 3; i++)
        put1(s, i);
    kvt_key k1 = key_of(1);
    cr_assert_eq(kvt_remove(s, &k1, 1), 1);
    kvt_key k[3] = {key_of(0), key_of(1), key_of(2)};
    uint8_t tiers[3];
    cr_assert_eq(kvt_contains(s, k, 3, tiers), 2);
    cr_assert_eq(tiers[1], KVT_TIER_NONE);
    /* Key 2 stays fresh; 0 idles past the TTL, which contains applies first. */
    cr_assert_eq(kvt_clock_set(s, 600 * MS), 0);
    touch1(s, 2);
    cr_assert_eq(kvt_clock_set(s, 1011 * MS), 0);
    cr_assert_eq(kvt_contains(s, k, 3, tiers), 1);
    cr_assert_eq(tiers[0], KVT_TIER_NONE);
    cr_assert_eq(tiers[1], KVT_TIER_NONE);
    cr_assert_eq(tiers[2], TIER_DRAM);
    cr_assert_eq(kvt_close(s), 0);
}

Test(contains, argument_errors)
{
    kvt_store *s = open_dram(4, 0);
    kvt_key k = key_of(0);
    cr_assert_eq(kvt_contains(s, NULL, 1, NULL), KVT_ENULL);
    cr_assert_eq(kvt_contains(s, &k, 0, NULL), KVT_ESIZE);
    cr_assert_eq(kvt_contains(NULL, &k, 1, NULL), KVT_ENULL);
    cr_assert_eq(kvt_touch(s, NULL, 1), KVT_ENULL);
    cr_assert_eq(kvt_touch(s, &k, 0), KVT_ESIZE);
    cr_assert_eq(kvt_touch(NULL, &k, 1), KVT_ENULL);
    cr_assert_eq(kvt_clear(NULL), KVT_ENULL);
    cr_assert_eq(kvt_touch(s, &k, 1), 0, "an absent key is not touched");
    cr_assert_eq(kvt_clear(s), 0, "an empty store");
    cr_assert_eq(kvt_close(s), 0);
}

/* A, B, C, D fill the tier in that order; E then evicts the least recently used. */
static void fill_then_e(kvt_store *s, int touch_a)
{
    uint64_t t = 1000 * MS;
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq(kvt_clock_set(s, t += 10 * MS), 0);
        put1(s, i);
    }
    cr_assert_eq(kvt_clock_set(s, t += 10 * MS), 0);
    if (touch_a)
        touch1(s, 0);
    put1(s, 4);
}

Test(touch, refreshes_lru_recency)
{
    kvt_store *s = open_dram(4, 0);
    fill_then_e(s, 1);
    cr_assert_eq(held(s, 0), 1, "A was touched: it must stay");
    cr_assert_eq(held(s, 1), 0, "B is now least recently used");
    cr_assert_eq(held(s, 2) + held(s, 3) + held(s, 4), 3);
    uint64_t ev, hits;
    cr_assert_eq(kvt_stat(s, "dram.evictions", &ev), 0);
    cr_assert_eq(ev, 1);
    cr_assert_eq(kvt_stat(s, "dram.hits", &hits), 0);
    cr_assert_eq(hits, 0, "a touch copies nothing");
    cr_assert_eq(kvt_close(s), 0);
}

Test(touch, without_it_the_oldest_goes)
{
    kvt_store *s = open_dram(4, 0);
    fill_then_e(s, 0);
    cr_assert_eq(held(s, 0), 0, "A is least recently used");
    cr_assert_eq(held(s, 1), 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(touch, restarts_the_idle_ttl)
{
    kvt_store *s = open_dram(8, 1000);
    cr_assert_eq(kvt_clock_set(s, 10 * MS), 0);
    put1(s, 0);
    put1(s, 1);
    cr_assert_eq(kvt_clock_set(s, 900 * MS), 0);
    kvt_key k[3] = {key_of(0), key_of(7), key_of(1)};
    cr_assert_eq(kvt_touch(s, k, 2), 1, "one of the two held");
    /* 1 idles from 10 ms, 0 from 900 ms: only 1 is due just past 1010 ms. */
    cr_assert_eq(kvt_clock_set(s, 1011 * MS), 0);
    cr_assert_eq(held(s, 1), 0);
    cr_assert_eq(held(s, 0), 1);
    cr_assert_eq(kvt_clock_set(s, 1900 * MS), 0);
    cr_assert_eq(held(s, 0), 1, "exactly 1000 ms idle: not yet");
    cr_assert_eq(kvt_clock_set(s, 1901 * MS), 0);
    cr_assert_eq(held(s, 0), 0);
    (void)k[2];
    cr_assert_eq(kvt_close(s), 0);
}

Test(clear, empties_the_store_and_it_works_after)
{
    kvt_store *s = open_dram(64, 0);
    for (uint32_t i = 0; i < 40; i++)
        put1(s, i);
    kvt_key k3 = key_of(3);
    cr_assert_eq(kvt_remove(s, &k3, 1), 1);
    cr_assert_eq(kvt_clear(s), 39);
    for (uint32_t i = 0; i < 40; i++)
        cr_assert_eq(held(s, i), 0, "key %u", i);
    uint64_t used;
    cr_assert_eq(kvt_stat(s, "dram.used_blocks", &used), 0);
    cr_assert_eq(used, 0);
    cr_assert_eq(kvt_clear(s), 0);
    for (uint32_t i = 0; i < 64; i++)
        put1(s, 100 + i);
    cr_assert_eq(held(s, 100) + held(s, 163), 2);
    cr_assert_eq(kvt_clear(s), 64);
    cr_assert_eq(kvt_close(s), 0);
}

/* Over one chunk of keys (4,096) and every shard of a big index. */
Test(clear, many_blocks_in_chunks)
{
    enum { N = 5000 };
    kvt_store *s = open_dram(N, 0);
    static uint8_t buf[BLOCK];
    static kvt_key k[N];
    static void *p[N];
    for (uint32_t i = 0; i < N; i++) {
        k[i] = key_of(i);
        p[i] = buf;
    }
    cr_assert_eq(kvt_put(s, k, N, p, NULL, NULL), N, "%s", kvt_last_error());
    cr_assert_eq(kvt_clear(s), N);
    cr_assert_eq(kvt_contains(s, k, N, NULL), 0);
    uint64_t used;
    cr_assert_eq(kvt_stat(s, "dram.used_blocks", &used), 0);
    cr_assert_eq(used, 0);
    cr_assert_eq(kvt_close(s), 0);
}

/* Puts, gets, touches and contains in two threads while a third clears
 * over and over, on the real clock: every get that succeeds has the bytes
 * of its key (the sanitizer builds look for the rest). */
typedef struct race {
    kvt_store *s;
    atomic_int stop;
    unsigned seed;
    atomic_int bad; /* asserted in the test's thread: Criterion asserts there only */
} race;

static void *racer(void *arg)
{
    race *r = arg;
    unsigned x = r->seed;
    uint8_t in[BLOCK], out[BLOCK];
    while (!atomic_load(&r->stop)) {
        x = x * 1103515245u + 12345u;
        uint32_t i = (x >> 8) % 96;
        kvt_key k = key_of(i);
        void *p;
        switch ((x >> 20) % 4) {
        case 0:
            memset(in, (int)i, sizeof in);
            p = in;
            if (kvt_put(r->s, &k, 1, &p, NULL, NULL) < 0)
                atomic_store(&r->bad, 1);
            break;
        case 1: {
            int32_t st = -1;
            kvt_io_opts o = {.size = sizeof o, .status = &st};
            p = out;
            if (kvt_get(r->s, &k, 1, &p, &o, NULL) == 1)
                for (int j = 0; j < BLOCK; j++)
                    if (out[j] != (uint8_t)i)
                        atomic_store(&r->bad, 2);
            break;
        }
        case 2:
            if (kvt_touch(r->s, &k, 1) < 0)
                atomic_store(&r->bad, 3);
            break;
        default: {
            uint8_t t;
            int h = kvt_contains(r->s, &k, 1, &t);
            if (!(h == 0 || h == 1) || (t == KVT_TIER_NONE) != (h == 0))
                atomic_store(&r->bad, 4);
            break;
        }
        }
    }
    return NULL;
}

Test(clear, races_puts_gets_and_touches)
{
    kvt_config *c;
    race r = {.seed = 1};
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 64 * BLOCK);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", 5);
    cr_assert_eq(kvt_open(c, &r.s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    pthread_t th[2];
    race rs[2] = {r, r};
    for (int i = 0; i < 2; i++) {
        rs[i].seed = (unsigned)i + 1;
        rs[i].s = r.s;
        atomic_init(&rs[i].stop, 0);
        atomic_init(&rs[i].bad, 0);
        pthread_create(&th[i], NULL, racer, &rs[i]);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int clears = 0;
    do {
        cr_assert_geq(kvt_clear(r.s), 0, "%s", kvt_last_error());
        clears++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 300);
    for (int i = 0; i < 2; i++) {
        atomic_store(&rs[i].stop, 1);
        pthread_join(th[i], NULL);
        cr_assert_eq(atomic_load(&rs[i].bad), 0, "thread %d: 1 put, 2 bytes, 3 touch, 4 contains", i);
    }
    cr_assert_geq(kvt_clear(r.s), 0);
    uint64_t used;
    cr_assert_eq(kvt_stat(r.s, "dram.used_blocks", &used), 0);
    cr_assert_eq(used, 0, "nothing stored after the threads stopped and a last clear");
    cr_assert_eq(kvt_close(r.s), 0);
    cr_assert_gt(clears, 0);
}
