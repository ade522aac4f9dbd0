/* test_keyed.c — a key-addressed tier behind a DRAM tier (tests/tier/keyed_mem.c):
 * blocks another process put are found and read, puts write through, TTL,
 * remove, errors. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "keyed_mem.h"
#include "kvtier.h"
#include "tier/tier.h"

#define BLOCK 4096
#define FRAGS 2

static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    kvt_ns_key(NULL, 0, &ns);
    uint32_t tok[1] = {i};
    kvt_key_chain(&ns, tok, 1, 1, &k, 1);
    return k;
}

static void fill(uint8_t *b, uint32_t i)
{
    for (int j = 0; j < BLOCK; j++)
        b[j] = (uint8_t)(i * 151 + (uint32_t)j * 13 + (uint32_t)(j >> 7));
}

/* What another process does: the block goes into the shared backend only. */
static void put_elsewhere(uint32_t i)
{
    static uint8_t b[BLOCK];
    fill(b, i);
    kvt_key k = key_of(i);
    keyed_mem_put_direct(&k, b, BLOCK);
}

static void setup(void)
{
    cr_assert_eq(keyed_mem_register(), 0, "%s", kvt_last_error());
    keyed_mem_reset();
}

TestSuite(keyed, .init = setup, .timeout = 30);

/* A config of BLOCK-byte blocks with a DRAM tier of dram_blocks (index 0). */
static kvt_config *dram_config(uint64_t dram_blocks)
{
    kvt_config *c;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, FRAGS), 0);
    int d = kvt_config_add_tier(c, "dram", NULL);
    cr_assert_eq(d, 0);
    cr_assert_eq(kvt_config_tier_set(c, d, "capacity", (int64_t)(dram_blocks * BLOCK)), 0);
    cr_assert_eq(kvt_config_tier_set(c, d, "hugepages", 0), 0);
    return c;
}

/* DRAM of dram_blocks over the key-addressed tier "shared" (index 1). */
static kvt_store *open_store(uint64_t dram_blocks, int64_t ttl_ms)
{
    kvt_config *c = dram_config(dram_blocks);
    kvt_store *s;
    int k = kvt_config_add_tier(c, "keyed_mem", "shared");
    cr_assert_eq(k, 1, "%s", kvt_last_error());
    cr_assert_eq(kvt_config_tier_set(c, k, "ttl_ms", ttl_ms), 0);
    int rc = kvt_open(c, &s);
    cr_assert_eq(rc, 0, "open: %s", kvt_last_error());
    kvt_config_free(c);
    cr_assert_eq(kvt_store_tier_available(s, 1), 1);
    return s;
}

static int get_one(kvt_store *s, uint32_t i, uint8_t *out, int32_t *status)
{
    kvt_key k = key_of(i);
    void *p[FRAGS] = {out, out + BLOCK / FRAGS};
    kvt_io_opts o = {.size = sizeof o, .status = status};
    return kvt_get(s, &k, 1, p, &o, NULL);
}

static uint64_t stat(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    cr_assert_eq(kvt_stat(s, name, &v), 0, "stat %s", name);
    return v;
}

Test(keyed, blocks_put_elsewhere_are_found_and_read_byte_exact)
{
    kvt_store *s = open_store(8, 0);
    for (uint32_t i = 0; i < 4; i++)
        put_elsewhere(i);
    kvt_key keys[5];
    for (uint32_t i = 0; i < 5; i++)
        keys[i] = key_of(i);
    uint8_t tiers[5];
    cr_assert_eq(kvt_lookup(s, keys, 5, tiers, 0), 4, "the local index never saw them");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tiers[i], 1, "key %d in the key-addressed tier", i);
    cr_assert_eq(tiers[4], KVT_TIER_NONE);
    cr_assert_eq(kvt_contains(s, keys, 5, NULL), 4);

    static uint8_t got[BLOCK], want[BLOCK];
    for (uint32_t i = 0; i < 4; i++) {
        int32_t st = 1;
        memset(got, 0xA5, BLOCK);
        cr_assert_eq(get_one(s, i, got, &st), 1, "%s", kvt_last_error());
        cr_assert_eq(st, 0);
        fill(want, i);
        cr_assert_eq(memcmp(got, want, BLOCK), 0, "block %u byte-exact, across fragments", i);
    }
    int32_t st = 0;
    cr_assert_eq(get_one(s, 4, got, &st), 0);
    cr_assert_eq(st, KVT_ENOENT);
    cr_assert_eq(stat(s, "shared.hits"), 4);
    cr_assert_eq(stat(s, "get_hit_blocks"), 4);
    cr_assert(stat(s, "shared.ops") > 0, "the tier's own stats, under the instance name");
    cr_assert_eq(kvt_close(s), 0);
}

Test(keyed, lookup_continues_the_local_prefix_and_contains_fills_misses)
{
    kvt_store *s = open_store(8, 0);
    static uint8_t b[BLOCK];
    fill(b, 0);
    kvt_key k0 = key_of(0);
    void *p[FRAGS] = {b, b + BLOCK / FRAGS};
    cr_assert_eq(kvt_put(s, &k0, 1, p, NULL, NULL), 1);
    put_elsewhere(1);
    put_elsewhere(3);
    kvt_key keys[4] = {key_of(0), key_of(1), key_of(2), key_of(3)};
    uint8_t tiers[4];
    cr_assert_eq(kvt_lookup(s, keys, 4, tiers, 0), 2);
    cr_assert_eq(tiers[0], 0, "DRAM first");
    cr_assert_eq(tiers[1], 1);
    cr_assert_eq(tiers[2], KVT_TIER_NONE);
    cr_assert_eq(tiers[3], KVT_TIER_NONE, "a lookup stops at the first miss");
    /* With a lease only what can be pinned counts: the local prefix. */
    uint64_t pins0 = 0, pins1 = 0;
    cr_assert_eq(kvt_stat(s, "pins", &pins0), 0);
    cr_assert_eq(kvt_lookup(s, keys, 4, tiers, 1000), 1);
    cr_assert_eq(tiers[1], KVT_TIER_NONE);
    cr_assert_eq(kvt_stat(s, "pins", &pins1), 0);
    cr_assert_eq(pins1 - pins0, 1, "pins counted: %llu", (unsigned long long)(pins1 - pins0));
    int32_t rel = 1;
    cr_assert_eq(kvt_release(s, keys, 1, &rel), 1, "%s", kvt_last_error());
    cr_assert_eq(rel, 0);
    cr_assert_eq(kvt_contains(s, keys, 4, tiers), 3);
    cr_assert_eq(tiers[0], 0);
    cr_assert_eq(tiers[1], 1);
    cr_assert_eq(tiers[2], KVT_TIER_NONE);
    cr_assert_eq(tiers[3], 1, "contains goes past misses");
    cr_assert_eq(kvt_close(s), 0);
}

/* A lookup lets the last key-addressed tier stop at its first miss; every
 * earlier one answers all keys (a later tier is asked only about the keys
 * they miss, so an early stop there would shorten the prefix). kvt_contains
 * never asks for a prefix. */
Test(keyed, only_a_lookups_last_keyed_tier_is_asked_for_a_prefix)
{
    for (int tiers = 1; tiers <= 2; tiers++) {
        kvt_store *s = open_store(8, 0);
        if (tiers == 2) { /* the same shared table behind a second instance */
            cr_assert_eq(kvt_close(s), 0);
            kvt_config *c = dram_config(8);
            cr_assert_eq(kvt_config_add_tier(c, "keyed_mem", "first"), 1, "%s", kvt_last_error());
            cr_assert_eq(kvt_config_add_tier(c, "keyed_mem", "second"), 2, "%s", kvt_last_error());
            cr_assert_eq(kvt_open(c, &s), 0, "open: %s", kvt_last_error());
            kvt_config_free(c);
        }
        put_elsewhere(0);
        put_elsewhere(1);
        put_elsewhere(3);
        kvt_key keys[4] = {key_of(0), key_of(1), key_of(2), key_of(3)};
        uint64_t prefix0 = 0, prefix1 = 0;
        uint64_t calls0 = keyed_mem_contains_calls(&prefix0);
        cr_assert_eq(kvt_lookup(s, keys, 4, NULL, 0), 2, "tiers %d", tiers);
        uint64_t calls1 = keyed_mem_contains_calls(&prefix1);
        cr_assert_eq(calls1 - calls0, (uint64_t)tiers, "one check per keyed tier");
        cr_assert_eq(prefix1 - prefix0, 1, "only the last tier's check is a prefix check");
        cr_assert_eq(kvt_contains(s, keys, 4, NULL), 3, "contains answers every key");
        cr_assert_eq(keyed_mem_contains_calls(&prefix0) - calls1, (uint64_t)tiers);
        cr_assert_eq(prefix0, prefix1, "kvt_contains asks no tier for a prefix");
        cr_assert_eq(kvt_close(s), 0);
        keyed_mem_reset();
    }
}

Test(keyed, puts_write_through_to_the_key_addressed_tier)
{
    kvt_store *s = open_store(2, 0);
    static uint8_t b[4][BLOCK], back[BLOCK];
    kvt_key keys[4];
    void *p[4 * FRAGS];
    for (uint32_t i = 0; i < 4; i++) {
        fill(b[i], 100 + i);
        keys[i] = key_of(100 + i);
        p[i * FRAGS] = b[i];
        p[i * FRAGS + 1] = b[i] + BLOCK / FRAGS;
    }
    for (uint32_t i = 0; i < 4; i++) /* one at a time: DRAM holds 2 */
        cr_assert_eq(kvt_put(s, &keys[i], 1, &p[i * FRAGS], NULL, NULL), 1);
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert(keyed_mem_get_direct(&keys[i], back, BLOCK), "block %u in the backend", i);
        cr_assert_eq(memcmp(back, b[i], BLOCK), 0, "block %u written whole", i);
    }
    cr_assert_eq(stat(s, "shared.writes"), 4);
    /* DRAM dropped the first two (no slot tier below): the backend has them. */
    static uint8_t got[BLOCK];
    int32_t st;
    cr_assert_eq(get_one(s, 100, got, &st), 1);
    cr_assert_eq(memcmp(got, b[0], BLOCK), 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(keyed, the_tier_applies_its_own_ttl)
{
    kvt_store *s = open_store(1, 100); /* DRAM of one block; the backend's TTL 100 ms */
    static uint8_t b[BLOCK], b2[BLOCK];
    fill(b, 7);
    fill(b2, 8);
    kvt_key k = key_of(7), other = key_of(8);
    void *p[FRAGS] = {b, b + BLOCK / FRAGS}, *p2[FRAGS] = {b2, b2 + BLOCK / FRAGS};
    keyed_mem_set_now(0);
    cr_assert_eq(kvt_put(s, &k, 1, p, NULL, NULL), 1);
    cr_assert_eq(kvt_put(s, &other, 1, p2, NULL, NULL), 1); /* DRAM's one slot: key 7 leaves */
    uint8_t t;
    keyed_mem_set_now(99 * 1000000ull);
    cr_assert_eq(kvt_lookup(s, &k, 1, &t, 0), 1, "within the backend's TTL");
    cr_assert_eq(t, 1);
    keyed_mem_set_now(100 * 1000000ull);
    cr_assert_eq(kvt_lookup(s, &k, 1, &t, 0), 0, "expired by the backend itself");
    int32_t st = 0;
    static uint8_t got[BLOCK];
    cr_assert_eq(get_one(s, 7, got, &st), 0);
    cr_assert_eq(st, KVT_ENOENT);
    cr_assert_eq(kvt_lookup(s, &other, 1, &t, 0), 1, "DRAM's copy has no TTL here");
    cr_assert_eq(t, 0);
    cr_assert_eq(kvt_close(s), 0);
}

Test(keyed, remove_reaches_blocks_only_the_backend_held)
{
    kvt_store *s = open_store(4, 0);
    put_elsewhere(20);
    put_elsewhere(21);
    kvt_key keys[3] = {key_of(20), key_of(21), key_of(22)};
    cr_assert_eq(kvt_remove(s, keys, 3), 2, "held only in the backend: still held");
    cr_assert_eq(keyed_mem_count(), 0);
    cr_assert_eq(kvt_lookup(s, keys, 3, NULL, 0), 0);
    cr_assert_eq(stat(s, "shared.removes"), 2);
    cr_assert_eq(kvt_close(s), 0);
}

Test(keyed, errors)
{
    /* A failing backend: a get reports its code, not a miss; lookups see
     * nothing; the local tiers are unaffected. */
    kvt_store *s = open_store(4, 0);
    put_elsewhere(30);
    keyed_mem_fail_next(KVT_EIO);
    int32_t st = 0;
    static uint8_t got[BLOCK];
    cr_assert_eq(get_one(s, 30, got, &st), 0);
    cr_assert_eq(st, KVT_EIO);
    cr_assert_eq(stat(s, "shared.io_errors"), 1);
    keyed_mem_fail_next(KVT_EIO);
    kvt_key k = key_of(30);
    cr_assert_eq(kvt_lookup(s, &k, 1, NULL, 0), 0, "a failed lookup finds nothing");
    cr_assert_eq(get_one(s, 30, got, &st), 1, "the next one works");
    cr_assert_eq(kvt_close(s), 0);

    /* Configuration: no options of its own; generic ones go through. */
    kvt_config *c;
    cr_assert_eq(kvt_config_new(&c), 0);
    int t = kvt_config_add_tier(c, "keyed_mem", NULL);
    cr_assert_eq(t, 0);
    cr_assert_eq(kvt_config_tier_set(c, t, "queue_depth", 4), KVT_EINVAL);
    cr_assert_eq(kvt_config_tier_set(c, t, "ttl_ms", 5), 0);
    cr_assert_eq(kvt_config_add_tier(c, "dram", NULL), KVT_EINVAL,
                 "slot tiers come before key-addressed ones");
    cr_assert_eq(kvt_config_add_tier(c, "keyed_mem", NULL), 1, "two of a kind: %s",
                 kvt_last_error());
    kvt_config_free(c);
    /* A kind is registered once. */
    cr_assert_eq(kvt__tier_register(kvt__tier_find("keyed_mem")), KVT_EINVAL);
}

/* A key-addressed tier whose submit fails (queue full, connection gone): its
 * keys are misses with its error, never hits with unwritten bytes. */
static int busy_submit(kvt_tier_impl *t, kvt_keyed_op *op)
{
    (void)t; (void)op;
    return KVT_EBUSY;
}
static int busy_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    (void)p;
    static int dummy;
    *out = (kvt_tier_impl *)&dummy;
    *nslots = 0;
    return 0;
}
static void busy_close(kvt_tier_impl *t) { (void)t; }
static const kvt_keyed_ops busy_keyed = {.submit = busy_submit, .poll = NULL};
static const kvt_tier_ops busy_ops = {.version = KVT_TIER_OPS_VERSION, .name = "keyed_busy",
    .caps = KVT_TCAP_KEYED, .open = busy_open, .close = busy_close, .keyed = &busy_keyed};

Test(keyed, a_refused_submit_is_no_hit)
{
    if (!kvt__tier_find("keyed_busy"))
        cr_assert_eq(kvt__tier_register(&busy_ops), 0);
    kvt_config *c = dram_config(4);
    kvt_store *s;
    cr_assert_eq(kvt_config_add_tier(c, "keyed_busy", "shared"), 1, "%s", kvt_last_error());
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    size_t n = 40000;
    kvt_key *k = calloc(n, sizeof *k);
    void **p = calloc(n * FRAGS, sizeof *p);
    int32_t *st = calloc(n, sizeof *st);
    static uint8_t buf[BLOCK];
    for (size_t i = 0; i < n; i++) {
        k[i] = key_of((uint32_t)(100000 + i));
        p[i * FRAGS] = buf;
        p[i * FRAGS + 1] = buf + BLOCK / FRAGS;
    }
    kvt_io_opts o = {.size = sizeof o, .status = st};
    int got = kvt_get(s, k, n, p, &o, NULL);
    cr_assert_eq(got, 0, "blocks never stored reported as hits: %d", got);
    cr_assert_eq(st[0], KVT_EBUSY, "status[0] = %d", st[0]);
    free(k); free(p); free(st);
    cr_assert_eq(kvt_close(s), 0);
}
