/*
 * test_conformance.c — the same contract tests against every tier, through its ops table:
 * exact round trips in every size class and fragment count, overwrites, concurrent
 * threads on disjoint slots, discards, and recovery where the tier is persistent.
 * A new tier gets the whole suite by one line in `tiers` below.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvt_build_config.h"
#include "kvtier.h"
#include "tier/nvme.h"
#include "tier/tier.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)

/* ---------------------------------------------------------------- tiers */

typedef struct tier_case {
    const char *name;
    const kvt_tier_ops *ops;
    int needs_path;                     /* a file in a fresh directory (persistent tiers) */
    uint64_t (*slot_bytes)(uint64_t block); /* capacity per slot */
} tier_case;

static uint64_t block_only(uint64_t block)
{
    return block;
}

static const tier_case tiers[] = {
    {"dram", &kvt__tier_dram, 0, block_only},
#if KVT_HAVE_URING
    {"nvme", &kvt__tier_nvme, 1, kvt__nvme_slot_bytes},
#endif
};
#define NTIERS (sizeof tiers / sizeof tiers[0])

static char dir[512], path[640];

static void setup(void)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    snprintf(dir, sizeof dir, "%s/conformance-XXXXXX", root ? root : ".");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tier.kvt", dir);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(conformance, .init = setup, .fini = teardown, .timeout = 120);

static kvt_tier_params params_for(const tier_case *tc, uint64_t block, uint32_t frags,
                                  uint32_t nslots)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, tc->ops);
    p.name = tc->name;
    p.block_bytes = block;
    p.block_tokens = 16;
    p.frags = frags;
    p.copy_threads = 2;
    /* Options only some kinds have: the others refuse them (ignored). */
    (void)kvt__tier_params_set_int(&p, "queue_depth", 16);
    (void)kvt__tier_params_set_str(&p, "path", tc->needs_path ? path : NULL);
    p.capacity = (uint64_t)nslots * tc->slot_bytes(block);
    return p;
}

static kvt_tier_impl *open_tier(const tier_case *tc, const kvt_tier_params *p, uint32_t *nslots)
{
    kvt_tier_impl *t = NULL;
    int rc = tc->ops->open(p, &t, nslots);
    cr_assert_eq(rc, 0, "%s: open: %s", tc->name, kvt_last_error());
    cr_assert_gt(*nslots, 0, "%s: no slots", tc->name);
    return t;
}

/* ------------------------------------------------------------- blocks */

static uint64_t seed_of(void)
{
    static uint64_t seed;
    if (!seed) {
        const char *env = getenv("KVT_TEST_SEED");
        seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
        seed += !seed;
        fprintf(stderr, "conformance: seed %llu (KVT_TEST_SEED repeats it)\n",
                (unsigned long long)seed);
    }
    return seed;
}

/* The bytes of block `id` (version v): a pattern only it has. */
static void fill(uint8_t *b, uint64_t len, uint32_t id, uint32_t v)
{
    uint64_t x = seed_of() ^ ((uint64_t)id << 32 | v) * 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < len; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(b + i, &x, len - i < 8 ? len - i : 8);
    }
}

static kvt_key key_of(uint32_t id, uint32_t v)
{
    kvt_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.b, &id, sizeof id);
    memcpy(k.b + 4, &v, sizeof v);
    k.b[15] = 0x5a;
    return k;
}

/* n blocks of `block` bytes in `frags` fragments each, 4 KiB-aligned. */
typedef struct batch {
    uint32_t n, frags;
    uint64_t block;
    uint8_t *mem;
    void **ptrs;
    kvt_xfer *x;
} batch;

static batch batch_new(uint32_t n, uint64_t block, uint32_t frags)
{
    batch b = {n, frags, block, aligned_alloc(4096, n * block), calloc((size_t)n * frags, sizeof(void *)),
               calloc(n, sizeof(kvt_xfer))};
    cr_assert(b.mem && b.ptrs && b.x);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t f = 0; f < frags; f++)
            b.ptrs[(size_t)i * frags + f] = b.mem + i * block + f * (block / frags);
    return b;
}

static void batch_free(batch *b)
{
    free(b->mem);
    free(b->ptrs);
    free(b->x);
}

/* Slots slot0 + i*stride get blocks ids[i] (version v). */
static void batch_set(batch *b, const uint32_t *slots, const uint32_t *ids, uint32_t v, int fill_bytes)
{
    for (uint32_t i = 0; i < b->n; i++) {
        if (fill_bytes)
            fill(b->mem + i * b->block, b->block, ids[i], v);
        else
            memset(b->mem + i * b->block, 0xEE, b->block);
        b->x[i] = (kvt_xfer){.slot = slots[i], .nfrags = b->frags,
                             .frags = b->ptrs + (size_t)i * b->frags, .key = key_of(ids[i], v)};
    }
}

static void expect_bytes(const tier_case *tc, const batch *b, const uint32_t *ids, uint32_t v)
{
    uint8_t *want = malloc(b->block);
    cr_assert(want);
    for (uint32_t i = 0; i < b->n; i++) {
        cr_assert_eq(b->x[i].status, 0, "%s: block %u: %s", tc->name, i,
                     kvt_error_name(b->x[i].status));
        fill(want, b->block, ids[i], v);
        cr_assert_eq(memcmp(want, b->mem + i * b->block, b->block), 0,
                     "%s: block %u (slot %u) has other bytes", tc->name, i, b->x[i].slot);
    }
    free(want);
}

/* -------------------------------------------------------------- tests */

/* Every size class, 1 and 4 fragments: what is written is read back. */
Test(conformance, round_trips_every_size)
{
    static const uint64_t sizes[] = {4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 2 * MIB};
    for (size_t c = 0; c < NTIERS; c++) {
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            for (uint32_t frags = 1; frags <= 4; frags *= 4) {
                unlink(path);
                kvt_tier_params p = params_for(&tiers[c], sizes[z], frags, 24);
                uint32_t ns;
                kvt_tier_impl *t = open_tier(&tiers[c], &p, &ns);
                uint32_t n = ns < 16 ? ns : 16, slots[16], ids[16];
                for (uint32_t i = 0; i < n; i++) { /* distinct, from the end down */
                    slots[i] = ns - 1 - i;
                    ids[i] = (uint32_t)(z * 100 + frags * 10 + i);
                }
                batch b = batch_new(n, sizes[z], frags);
                batch_set(&b, slots, ids, 1, 1);
                cr_assert_eq(tiers[c].ops->write(t, b.x, n, KVT_MEM_HOST), 0, "%s: write: %s",
                             tiers[c].name, kvt_last_error());
                batch_set(&b, slots, ids, 1, 0);
                cr_assert_eq(tiers[c].ops->read(t, b.x, n, KVT_MEM_HOST), 0, "%s: read: %s",
                             tiers[c].name, kvt_last_error());
                expect_bytes(&tiers[c], &b, ids, 1);
                batch_free(&b);
                tiers[c].ops->close(t);
            }
        }
    }
}

/* A slot written twice holds the second block. */
Test(conformance, overwrite_keeps_the_last)
{
    for (size_t c = 0; c < NTIERS; c++) {
        unlink(path);
        kvt_tier_params p = params_for(&tiers[c], 64 * KIB, 1, 8);
        uint32_t ns;
        kvt_tier_impl *t = open_tier(&tiers[c], &p, &ns);
        uint32_t slots[4] = {0, 1, 2, 3}, ids[4] = {1, 2, 3, 4};
        batch b = batch_new(4, 64 * KIB, 1);
        for (uint32_t v = 1; v <= 3; v++) {
            batch_set(&b, slots, ids, v, 1);
            cr_assert_eq(tiers[c].ops->write(t, b.x, 4, KVT_MEM_HOST), 0, "%s", tiers[c].name);
        }
        batch_set(&b, slots, ids, 3, 0);
        cr_assert_eq(tiers[c].ops->read(t, b.x, 4, KVT_MEM_HOST), 0, "%s", tiers[c].name);
        expect_bytes(&tiers[c], &b, ids, 3);
        batch_free(&b);
        tiers[c].ops->close(t);
    }
}

/* Threads on disjoint slots at once: each reads back exactly its own. */
typedef struct worker {
    const tier_case *tc;
    kvt_tier_impl *t;
    uint32_t first, count, rounds;
    int failed;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    uint32_t slots[8], ids[8];
    batch b = batch_new(8, 16 * KIB, 2);
    for (uint32_t r = 0; r < w->rounds && !w->failed; r++) {
        for (uint32_t i = 0; i < 8; i++) {
            slots[i] = w->first + (r * 8 + i) % w->count;
            ids[i] = slots[i] * 1000 + r;
        }
        batch_set(&b, slots, ids, r, 1);
        if (w->tc->ops->write(w->t, b.x, 8, KVT_MEM_HOST))
            w->failed = 1;
        batch_set(&b, slots, ids, r, 0);
        if (w->tc->ops->read(w->t, b.x, 8, KVT_MEM_HOST))
            w->failed = 2;
        uint8_t *want = malloc(b.block);
        for (uint32_t i = 0; want && i < 8 && !w->failed; i++) {
            fill(want, b.block, ids[i], r);
            if (memcmp(want, b.mem + i * b.block, b.block))
                w->failed = 3;
        }
        free(want);
    }
    batch_free(&b);
    return NULL;
}

Test(conformance, threads_on_disjoint_slots)
{
    enum { THREADS = 4, PER = 16 };
    for (size_t c = 0; c < NTIERS; c++) {
        unlink(path);
        kvt_tier_params p = params_for(&tiers[c], 16 * KIB, 2, THREADS * PER);
        uint32_t ns;
        kvt_tier_impl *t = open_tier(&tiers[c], &p, &ns);
        cr_assert_geq(ns, THREADS * PER);
        worker w[THREADS];
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++) {
            w[i] = (worker){&tiers[c], t, (uint32_t)i * PER, PER, 40, 0};
            cr_assert_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            cr_expect_eq(w[i].failed, 0, "%s: thread %d failed (%d)", tiers[c].name, i, w[i].failed);
        }
        tiers[c].ops->close(t);
    }
}

/* Persistent tiers: what was written is recovered after a close, by slot and
 * key; a discarded slot is not. Others: no recover. */
typedef struct found {
    uint32_t n;
    uint32_t slot[64];
    kvt_key key[64];
} found;

static int collect(void *user, uint32_t slot, const kvt_key *key)
{
    found *f = user;
    if (f->n < 64) {
        f->slot[f->n] = slot;
        f->key[f->n++] = *key;
    }
    return 0;
}

Test(conformance, recovery_and_discard)
{
    for (size_t c = 0; c < NTIERS; c++) {
        const tier_case *tc = &tiers[c];
        int persistent = (tc->ops->caps & KVT_TCAP_PERSISTENT) != 0;
        cr_assert_eq(persistent, tc->ops->recover != NULL,
                     "%s: KVT_TCAP_PERSISTENT and recover() go together", tc->name);
        if (!persistent)
            continue;
        unlink(path);
        kvt_tier_params p = params_for(tc, 64 * KIB, 1, 16);
        uint32_t ns;
        kvt_tier_impl *t = open_tier(tc, &p, &ns);
        uint32_t slots[6] = {1, 3, 5, 7, 9, 11}, ids[6] = {10, 30, 50, 70, 90, 110};
        batch b = batch_new(6, 64 * KIB, 1);
        batch_set(&b, slots, ids, 1, 1);
        cr_assert_eq(tc->ops->write(t, b.x, 6, KVT_MEM_HOST), 0, "%s", tc->name);
        uint32_t gone[2] = {3, 9};
        cr_assert(tc->ops->discard, "%s: a persistent tier must discard", tc->name);
        cr_assert_eq(tc->ops->discard(t, gone, 2), 0, "%s: discard", tc->name);
        if (tc->ops->flush)
            cr_assert_eq(tc->ops->flush(t), 0, "%s: flush", tc->name);
        tc->ops->close(t);
        t = open_tier(tc, &p, &ns);
        found f = {0};
        cr_assert_eq(tc->ops->recover(t, collect, &f), 0, "%s: recover: %s", tc->name,
                     kvt_last_error());
        cr_assert_eq(f.n, 4, "%s: %u slots recovered, wanted 4", tc->name, f.n);
        for (uint32_t i = 0; i < f.n; i++) {
            uint32_t id = 0;
            for (uint32_t j = 0; j < 6; j++)
                if (slots[j] == f.slot[i])
                    id = ids[j];
            cr_assert(id && f.slot[i] != 3 && f.slot[i] != 9, "%s: slot %u recovered", tc->name,
                      f.slot[i]);
            kvt_key want = key_of(id, 1);
            cr_assert_eq(memcmp(&want, &f.key[i], sizeof want), 0, "%s: slot %u: other key",
                         tc->name, f.slot[i]);
        }
        /* And the bytes of what was recovered. */
        uint32_t keep[4] = {1, 5, 7, 11}, kid[4] = {10, 50, 70, 110};
        batch r = batch_new(4, 64 * KIB, 1);
        batch_set(&r, keep, kid, 1, 0);
        cr_assert_eq(tc->ops->read(t, r.x, 4, KVT_MEM_HOST), 0, "%s: read after recovery", tc->name);
        expect_bytes(tc, &r, kid, 1);
        batch_free(&r);
        batch_free(&b);
        tc->ops->close(t);
    }
}
