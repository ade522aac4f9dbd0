/* test_isolation.c — tenant isolation through the public store API: tenants with different salts or secrets never hit each other's blocks. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#ifndef KVT_HAVE_BLAKE2
#error "tests/meson.build passes KVT_HAVE_BLAKE2 through kvtier_internal_dep"
#endif

#define BLOCK 4096
#define B 16       /* tokens per block */
#define BLOCKS 8   /* blocks of the shared prompt */
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A tenant as an engine sees it: how it hashes and what it stores. */
typedef struct tenant {
    const char *name;
    uint32_t mode;
    const char *secret; /* KVT_KEY_SECRET_MIN.. bytes, or NULL */
    const char *salt;   /* KVT_NS_SALT value, or NULL for none */
    uint8_t fill;       /* first byte of its block contents */
    kvt_key keys[BLOCKS];
} tenant;

/* Every tenant sends these very tokens: the same system prompt and question. */
static uint32_t prompt[BLOCKS * B];

static void init_prompt(void)
{
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < N(prompt); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        prompt[i] = (uint32_t)(x % 128256);
    }
}

static size_t secret_len(const tenant *t)
{
    return t->secret ? strlen(t->secret) : 0;
}

static void hash_tenant(tenant *t)
{
    if (t->mode == KVT_KEY_BLAKE2B_128 && !KVT_HAVE_BLAKE2)
        cr_skip_test("built without libb2: no blake2b-128 keys to compute");
    kvt_ns_field f[3] = {
        {.tag = KVT_NS_MODEL, .len = 24, .data = "meta-llama/Llama-3.1-8B"},
        {.tag = KVT_NS_LAYOUT, .len = 14, .data = "bf16;NHD;B=16;"},
        {.tag = KVT_NS_SALT, .len = t->salt ? (uint32_t)strlen(t->salt) : 0, .data = t->salt},
    };
    size_t nf = t->salt ? 3 : 2;
    kvt_key ns;
    int rc = kvt_ns_key_mode(t->mode, t->secret, secret_len(t), f, nf, &ns);
    cr_assert_eq(rc, 0, "%s: %s", t->name, kvt_last_error());
    rc = kvt_key_chain_mode(t->mode, t->secret, secret_len(t), &ns, prompt, N(prompt), B, t->keys,
                            BLOCKS);
    cr_assert_eq(rc, BLOCKS, "%s: %s", t->name, kvt_last_error());
}

/* Block i of a tenant: its fill byte, then the block index, then a pattern. */
static void contents(const tenant *t, uint32_t i, uint8_t *buf)
{
    for (size_t j = 0; j < BLOCK; j++)
        buf[j] = (uint8_t)(t->fill + i * 31 + j * 7);
    buf[0] = t->fill;
    buf[1] = (uint8_t)i;
}

static kvt_store *open_store(uint32_t key_mode)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_TOKENS, B), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_KEY_MODE, key_mode), 0);
    /* Room for every tenant's blocks: nothing is evicted, so a miss can only
     * mean the keys differ. */
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 64 * BLOCK), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0), 0);
    int rc = kvt_open(c, &s);
    cr_assert_eq(rc, 0, "kvt_open: %s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static void put_all(kvt_store *s, const tenant *t)
{
    static uint8_t buf[BLOCKS][BLOCK];
    void *ptrs[BLOCKS];
    for (uint32_t i = 0; i < BLOCKS; i++) {
        contents(t, i, buf[i]);
        ptrs[i] = buf[i];
    }
    int32_t status[BLOCKS];
    kvt_io_opts o = {.size = sizeof o, .status = status};
    int rc = kvt_put(s, t->keys, BLOCKS, ptrs, &o, NULL);
    cr_assert_eq(rc, BLOCKS, "%s put: %d %s", t->name, rc, kvt_last_error());
}

/* Asserts that t's own prompt finds exactly `hits` leading blocks, and that a
 * get returns t's own bytes for those and nothing for the rest. */
static void expect_hits(kvt_store *s, const tenant *t, int hits)
{
    uint8_t tiers[BLOCKS];
    int got = kvt_lookup(s, t->keys, BLOCKS, tiers, 0);
    cr_assert_eq(got, hits, "%s: lookup found %d blocks, expected %d", t->name, got, hits);
    for (int i = 0; i < BLOCKS; i++)
        cr_assert_eq(tiers[i], i < hits ? TIER_DRAM : KVT_TIER_NONE, "%s: tier of block %d",
                     t->name, i);

    static uint8_t dst[BLOCKS][BLOCK];
    uint8_t want[BLOCK];
    void *ptrs[BLOCKS];
    int32_t status[BLOCKS];
    memset(dst, 0xEE, sizeof dst);
    for (int i = 0; i < BLOCKS; i++)
        ptrs[i] = dst[i];
    kvt_io_opts o = {.size = sizeof o, .status = status, .flags = KVT_IO_NO_PROMOTE};
    got = kvt_get(s, t->keys, BLOCKS, ptrs, &o, NULL);
    cr_assert_eq(got, hits, "%s: get copied %d blocks, expected %d", t->name, got, hits);
    for (uint32_t i = 0; i < BLOCKS; i++) {
        if ((int)i < hits) {
            cr_assert_eq(status[i], 0, "%s: block %u status %d", t->name, i, status[i]);
            contents(t, i, want);
            cr_assert(memcmp(dst[i], want, BLOCK) == 0,
                      "%s: block %u holds another tenant's bytes (first byte %#x, own %#x)",
                      t->name, i, dst[i][0], want[0]);
        } else {
            cr_assert_eq(status[i], KVT_ENOENT, "%s: block %u status %d", t->name, i, status[i]);
            for (size_t j = 0; j < BLOCK; j++)
                cr_assert_eq(dst[i][j], 0xEE, "%s: missing block %u was written", t->name, i);
        }
    }
    if (!hits)
        cr_assert_eq(kvt_pin(s, t->keys, 1, 1000), KVT_ENOENT, "%s pinned a foreign block",
                     t->name);
}

static void expect_disjoint(const tenant *a, const tenant *b)
{
    for (int i = 0; i < BLOCKS; i++)
        for (int j = 0; j < BLOCKS; j++)
            cr_assert(memcmp(a->keys[i].b, b->keys[j].b, sizeof(kvt_key)) != 0,
                      "%s key %d equals %s key %d", a->name, i, b->name, j);
}

/* The whole story for two tenants sending the same prompt to one store:
 * b finds nothing of a's, a and b each get their own bytes back, and
 * removing one's blocks leaves the other's. */
static void isolated(uint32_t store_mode, tenant *a, tenant *b)
{
    hash_tenant(a);
    hash_tenant(b);
    expect_disjoint(a, b);
    kvt_store *s = open_store(store_mode);

    put_all(s, a);
    expect_hits(s, a, BLOCKS);
    expect_hits(s, b, 0);

    put_all(s, b);
    expect_hits(s, a, BLOCKS);
    expect_hits(s, b, BLOCKS);
    uint64_t used = 0;
    cr_assert_eq(kvt_stat(s, "dram.used_blocks", &used), 0);
    cr_assert_eq(used, 2 * BLOCKS, "the tenants share blocks: %llu held",
                 (unsigned long long)used);

    cr_assert_eq(kvt_remove(s, a->keys, BLOCKS), BLOCKS);
    expect_hits(s, a, 0);
    expect_hits(s, b, BLOCKS);
    cr_assert_eq(kvt_close(s), 0);
}

TestSuite(isolation, .init = init_prompt);

Test(isolation, different_salts)
{
    tenant a = {"tenant-a", KVT_KEY_XXH3_128, NULL, "tenant-a", 0xA0, {{{0}}}};
    tenant b = {"tenant-b", KVT_KEY_XXH3_128, NULL, "tenant-b", 0xB0, {{{0}}}};
    isolated(KVT_KEY_XXH3_128, &a, &b);
}

/* No salt is a namespace of its own, not a wildcard. */
Test(isolation, salt_and_no_salt)
{
    tenant a = {"salted", KVT_KEY_XXH3_128, NULL, "tenant-a", 0xA0, {{{0}}}};
    tenant b = {"unsalted", KVT_KEY_XXH3_128, NULL, NULL, 0xC0, {{{0}}}};
    isolated(KVT_KEY_XXH3_128, &a, &b);
}

/* Keyed mode: the same namespace fields (even the same salt) under two
 * secrets never meet. */
Test(isolation, keyed_different_secrets)
{
    tenant a = {"secret-1", KVT_KEY_BLAKE2B_128, "tenant one's 32-byte secret ....", "shared",
                0xA0, {{{0}}}};
    tenant b = {"secret-2", KVT_KEY_BLAKE2B_128, "tenant two's 32-byte secret ....", "shared",
                0xB0, {{{0}}}};
    isolated(KVT_KEY_BLAKE2B_128, &a, &b);
}

Test(isolation, keyed_same_secret_different_salts)
{
    tenant a = {"salt-a", KVT_KEY_BLAKE2B_128, "one deployment-wide secret", "tenant-a", 0xA0,
                {{{0}}}};
    tenant b = {"salt-b", KVT_KEY_BLAKE2B_128, "one deployment-wide secret", "tenant-b", 0xB0,
                {{{0}}}};
    isolated(KVT_KEY_BLAKE2B_128, &a, &b);
}

/* A misconfigured engine hashing in the other mode shares nothing either. */
Test(isolation, xxh3_and_keyed_with_equal_fields)
{
    tenant a = {"keyed", KVT_KEY_BLAKE2B_128, "a secret of twenty bytes", "tenant-a", 0xA0,
                {{{0}}}};
    tenant b = {"unkeyed", KVT_KEY_XXH3_128, NULL, "tenant-a", 0xB0, {{{0}}}};
    isolated(KVT_KEY_BLAKE2B_128, &a, &b);
}

/* The control: with equal salt and secret, a second engine of the same
 * tenant does hit the first one's blocks (so the misses above are the
 * isolation, not a store that never hits). */
static void shared(uint32_t mode, const char *secret)
{
    tenant a = {"engine-1", mode, secret, "tenant-a", 0xA0, {{{0}}}};
    tenant a2 = {"engine-2", mode, secret, "tenant-a", 0xA0, {{{0}}}};
    hash_tenant(&a);
    hash_tenant(&a2);
    cr_assert_arr_eq(a.keys, a2.keys, sizeof a.keys);
    kvt_store *s = open_store(mode);
    put_all(s, &a);
    expect_hits(s, &a2, BLOCKS);
    cr_assert_eq(kvt_close(s), 0);
}

Test(isolation, same_tenant_shares_xxh3)
{
    shared(KVT_KEY_XXH3_128, NULL);
}

Test(isolation, same_tenant_shares_keyed)
{
    shared(KVT_KEY_BLAKE2B_128, "one deployment-wide secret");
}

/* Many tenants at once: each finds exactly its own blocks. */
Test(isolation, many_tenants_one_store)
{
    enum { T = 6 };
    tenant t[T];
    char salts[T][16];
    for (int i = 0; i < T; i++) {
        snprintf(salts[i], sizeof salts[i], "tenant-%d", i);
        int keyed = KVT_HAVE_BLAKE2 && i % 2;
        t[i] = (tenant){salts[i], keyed ? KVT_KEY_BLAKE2B_128 : KVT_KEY_XXH3_128,
                        keyed ? "a secret shared by odd tenants" : NULL, salts[i],
                        (uint8_t)(0x10 * (i + 1)), {{{0}}}};
        hash_tenant(&t[i]);
    }
    for (int i = 0; i < T; i++)
        for (int j = i + 1; j < T; j++)
            expect_disjoint(&t[i], &t[j]);
    kvt_store *s = open_store(KVT_KEY_XXH3_128);
    for (int i = 0; i < T; i++) {
        for (int j = i; j < T; j++)
            expect_hits(s, &t[j], 0);
        put_all(s, &t[i]);
        for (int j = 0; j <= i; j++)
            expect_hits(s, &t[j], BLOCKS);
    }
    cr_assert_eq(kvt_close(s), 0);
}
