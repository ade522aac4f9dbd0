/*
 * test_conformance.c — the contract of lib/tier/tier.h, tested the same way on every tier
 * through its ops table: random round trips, every size class and fragment count, batches,
 * threads on disjoint slots, discard, recovery of persistent tiers, flush, stats, the error
 * codes of bad calls, and (with lib/tier/faulty.c) faults injected through the wrapper.
 *
 * A new tier gets the whole suite by ONE line in `tiers` below: its kind, its ops table and
 * a function that fills the kvt_tier_params it needs. Random tests print their seed
 * (KVT_TEST_SEED replays it). A tier whose open says KVT_ENODEV (no GPU) is skipped with
 * the reason.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rand.h"
#include "error.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "tier/nvme.h"
#include "tier/tier.h"

/* The fault wrapper (lib/tier/faulty.c, helper "nvme"): tests/meson.build defines
 * KVT_TEST_FAULTY=1 once that file exists. Until then the blocks marked FAULTY are
 * compiled out. */
#ifndef KVT_TEST_FAULTY
#define KVT_TEST_FAULTY 0
#endif
#if KVT_TEST_FAULTY
#if defined(__has_include)
#if __has_include("tier/faulty.h")
#include "tier/faulty.h"
#endif
#endif
int kvt__faulty_wrap(kvt_tier_handle *h, const char *spec);
#endif

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)

/* ================================================================ the tiers */

/* The shape every test asks a tier for. */
typedef struct geometry {
    uint64_t block;  /* payload bytes per slot */
    uint32_t frags;  /* fragments per block (persistent tiers record it) */
    uint32_t nslots; /* slots wanted: the capacity is sized for exactly these */
} geometry;

typedef struct tier_case {
    const char *kind;
    const kvt_tier_ops *ops;
    /* Fills *p for geometry g: the capacity in this kind's slot bytes and whatever
     * else it needs. `file` is a path in a fresh directory, for tiers that keep a file
     * (it outlives the tier). */
    void (*params)(kvt_tier_params *p, const geometry *g, const char *file);
} tier_case;

static void base_params(kvt_tier_params *p, const geometry *g, const kvt_tier_ops *ops)
{
    memset(p, 0, sizeof *p);
    kvt__tier_params_defaults(p, ops); /* the kind's own options at their defaults */
    p->name = ops->name;
    p->block_bytes = g->block;
    p->block_tokens = 16;
    p->frags = g->frags;
}

static void dram_params(kvt_tier_params *p, const geometry *g, const char *file)
{
    (void)file;
    base_params(p, g, &kvt__tier_dram);
    p->capacity = (uint64_t)g->nslots * g->block;
    p->copy_threads = 2;
}

#if KVT_HAVE_URING
static void nvme_params(kvt_tier_params *p, const geometry *g, const char *file)
{
    base_params(p, g, &kvt__tier_nvme);
    p->capacity = (uint64_t)g->nslots * kvt__nvme_slot_bytes(g->block);
    kvt__tier_params_set_int(p, "queue_depth", 16);
    kvt__tier_params_set_str(p, "path", file);
}

/* The 4096-byte layout of format versions 1 and 2 (the default lays blocks under 256 KiB
 * out in 512-byte units), and a stripe set of two files in the default layout. */
static void nvme_unit4k_params(kvt_tier_params *p, const geometry *g, const char *file)
{
    nvme_params(p, g, file);
    kvt__tier_params_set_int(p, "unit", 4096);
}

static void nvme_striped_params(kvt_tier_params *p, const geometry *g, const char *file)
{
    static char lists[16][1500]; /* borrowed by p: outlives the tier */
    static unsigned next;
    char *list = lists[next++ % 16];
    nvme_params(p, g, file);
    snprintf(list, sizeof lists[0], "%s.0,%s.1", file, file);
    kvt__tier_params_set_str(p, "path", list);
}
#endif

#if KVT_HAVE_CUDA
static void hbm_params(kvt_tier_params *p, const geometry *g, const char *file)
{
    (void)file;
    base_params(p, g, &kvt__tier_hbm);
    p->capacity = (uint64_t)g->nslots * g->block;
}
#endif

/* Every tier under test, fastest first. When lib/tier/registry.c lands, `ops` comes
 * from kvt__tier_find(kind) (see ops_of) and this table keeps only kind and params. */
static const tier_case tiers[] = {
#if KVT_HAVE_CUDA
    {"hbm", &kvt__tier_hbm, hbm_params},
#endif
    {"dram", &kvt__tier_dram, dram_params},
#if KVT_HAVE_URING
    {"nvme", &kvt__tier_nvme, nvme_params},
    {"nvme", &kvt__tier_nvme, nvme_unit4k_params},
    {"nvme", &kvt__tier_nvme, nvme_striped_params},
#endif
};
#define NTIERS (sizeof tiers / sizeof tiers[0])

static const kvt_tier_ops *ops_of(const tier_case *tc)
{
    return tc->ops;
}

/* What a test runs against: a tier as it opens, or wrapped by the fault wrapper with a
 * spec that injects nothing (the wrapper must itself be a conforming tier). Plain
 * numbers: Criterion copies parameters into each test's process, where pointers to
 * this one's data need not hold. */
typedef struct subject {
    uint32_t tier;    /* index in tiers[] */
    uint32_t wrapped; /* 1: through the fault wrapper with PASS_THROUGH */
} subject;
#define PASS_THROUGH "seed=7,eio=0"

static subject subjects[2 * NTIERS];

static size_t subjects_init(int with_wrapped)
{
    size_t n = 0;
    for (uint32_t i = 0; i < NTIERS; i++)
        subjects[n++] = (subject){i, 0};
    for (uint32_t i = 0; with_wrapped && KVT_TEST_FAULTY && i < NTIERS; i++)
        subjects[n++] = (subject){i, 1};
    return n;
}

/* Every contract test runs once per subject. */
#define EACH_SUBJECT(name)                                                                 \
    ParameterizedTestParameters(conformance, name)                                         \
    {                                                                                      \
        size_t n = subjects_init(1);                                                       \
        return cr_make_param_array(subject, subjects, n);                                  \
    }                                                                                      \
    ParameterizedTest(subject *s, conformance, name)

/* Fault tests run once per tier, each wrapping it with its own spec. */
#define EACH_TIER(name)                                                                    \
    ParameterizedTestParameters(conformance, name)                                         \
    {                                                                                      \
        size_t n = subjects_init(0);                                                       \
        return cr_make_param_array(subject, subjects, n);                                  \
    }                                                                                      \
    ParameterizedTest(subject *s, conformance, name)

/* ============================================================ the fixture */

static char dir[512];

static void setup(void)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    snprintf(dir, sizeof dir, "%s/conformance-XXXXXX", root ? root : ".");
    cr_assert_not_null(mkdtemp(dir));
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

TestSuite(conformance, .init = setup, .fini = teardown, .timeout = 60);

/* One opened tier. */
typedef struct tier {
    subject s;
    const tier_case *tc;
    char name[64];  /* for messages: "nvme", "dram+faulty" */
    char file[700]; /* in a directory of its own */
    geometry g;
    kvt_tier_params p;
    kvt_tier_handle h;
    uint32_t nslots;
} tier;

static void close_tier(tier *t)
{
    if (t->h.impl && t->h.ops && t->h.ops->close)
        t->h.ops->close(t->h.impl);
    t->h.impl = NULL;
}

/* Skips the rest of the test with the reason, closing t (if open) first: Criterion runs
 * no .fini after a skip, so the directory goes here. */
#define SKIP(t, ...)                                                                       \
    do {                                                                                   \
        close_tier(t);                                                                     \
        teardown();                                                                        \
        cr_skip_test(__VA_ARGS__);                                                         \
    } while (0)

/* Opens the tier t describes (t->p), as a fresh one would be or again after a close. */
static int try_reopen(tier *t)
{
    t->h.ops = ops_of(t->tc);
    t->h.caps = t->h.ops->caps;
    t->h.impl = NULL;
    t->nslots = 0;
    return t->h.ops->open(&t->p, &t->h.impl, &t->nslots);
}

/* A new tier of geometry g, in a directory of its own. */
static int try_open(const subject *s, const geometry *g, tier *t)
{
    static unsigned places;
    memset(t, 0, sizeof *t);
    t->s = *s;
    t->tc = &tiers[s->tier];
    t->g = *g;
    snprintf(t->name, sizeof t->name, "%s%s", t->tc->kind, s->wrapped ? "+faulty" : "");
    char sub[600];
    snprintf(sub, sizeof sub, "%s/%u", dir, places++);
    cr_assert_eq(mkdir(sub, 0700), 0, "mkdir %s", sub);
    snprintf(t->file, sizeof t->file, "%s/tier.kvt", sub);
    t->tc->params(&t->p, g, t->file);
    return try_reopen(t);
}

/* Opens the subject (again: a persistent tier finds what it held), or skips the test
 * where the tier's device is absent. */
static void opened(tier *t, int rc);

static void open_tier(const subject *s, const geometry *g, tier *t)
{
    opened(t, try_open(s, g, t));
}

static void reopen_tier(tier *t)
{
    opened(t, try_reopen(t));
}

static void opened(tier *t, int rc)
{
    const geometry *g = &t->g;
    if (rc == KVT_ENODEV)
        SKIP(t, "%s: no device here: %s", t->name, kvt_last_error());
    cr_assert_eq(rc, 0, "%s: open: %s (%s)", t->name, kvt_error_name(rc), kvt_last_error());
    cr_assert_not_null(t->h.impl, "%s: open gave no state", t->name);
    cr_assert_eq(t->nslots, g->nslots, "%s: %u slots for a capacity of %u", t->name, t->nslots,
                 g->nslots);
#if KVT_TEST_FAULTY
    if (t->s.wrapped) {
        rc = kvt__faulty_wrap(&t->h, PASS_THROUGH);
        if (rc == KVT_ENOTSUP)
            SKIP(t, "%s: built without fault injection", t->name);
        cr_assert_eq(rc, 0, "%s: wrap \"%s\": %s", t->name, PASS_THROUGH, kvt_last_error());
    }
#endif
}


static int tier_write(tier *t, kvt_xfer *x, size_t n)
{
    return t->h.ops->write(t->h.impl, x, n, KVT_MEM_HOST);
}

static int tier_read(tier *t, kvt_xfer *x, size_t n)
{
    return t->h.ops->read(t->h.impl, x, n, KVT_MEM_HOST);
}

/* ================================================================ blocks */

static uint64_t seed(void)
{
    return test_seed(criterion_current_test ? criterion_current_test->name : "conformance");
}

/* The bytes of block `id` version `v`: a pattern only it has, from the run's seed. */
static void fill_block(uint8_t *b, uint64_t len, uint32_t id, uint32_t v)
{
    fill_pattern(b, len, (uint64_t)id << 32 | v, seed());
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

/* n blocks of `block` bytes, each in `frags` fragments packed one after the other, so
 * a block's bytes are contiguous whatever the fragment count (and fragments of odd
 * sizes start at odd addresses). */
typedef struct batch {
    uint32_t n, frags;
    uint64_t block;
    uint8_t *mem;
    void **ptrs;
    kvt_xfer *x;
    uint32_t *ids, *vers;
} batch;

static batch batch_new(uint32_t n, uint64_t block, uint32_t frags)
{
    size_t bytes = (n * block + 4095) / 4096 * 4096;
    batch b = {n, frags, block, aligned_alloc(4096, bytes),
               calloc((size_t)n * frags, sizeof(void *)), calloc(n, sizeof(kvt_xfer)),
               calloc(n, sizeof(uint32_t)), calloc(n, sizeof(uint32_t))};
    cr_assert(b.mem && b.ptrs && b.x && b.ids && b.vers, "out of memory for %u blocks", n);
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
    free(b->ids);
    free(b->vers);
}

static uint8_t *block_at(const batch *b, uint32_t i)
{
    return b->mem + i * b->block;
}

/* Xfer i moves block ids[i] version vers[i] to or from slots[i]; for a write its bytes
 * are filled in, for a read poisoned first. */
static void batch_set(batch *b, const uint32_t *slots, const uint32_t *ids, const uint32_t *vers,
                      int for_write)
{
    for (uint32_t i = 0; i < b->n; i++) {
        b->ids[i] = ids[i];
        b->vers[i] = vers[i];
        if (for_write)
            fill_block(block_at(b, i), b->block, ids[i], vers[i]);
        else
            memset(block_at(b, i), 0xEE, b->block);
        b->x[i] = (kvt_xfer){.slot = slots[i], .nfrags = b->frags,
                             .frags = b->ptrs + (size_t)i * b->frags,
                             .key = key_of(ids[i], vers[i]), .status = 12345};
    }
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (a[i] != b[i])
            return i;
    return len;
}

/* Every xfer of b succeeded and holds the bytes of its block. */
static void expect_blocks(const tier *t, const batch *b)
{
    uint8_t *want = malloc(b->block);
    cr_assert(want);
    for (uint32_t i = 0; i < b->n; i++) {
        cr_assert_eq(b->x[i].status, 0, "%s: xfer %u (slot %u): %s", t->name, i, b->x[i].slot,
                     kvt_error_name(b->x[i].status));
        fill_block(want, b->block, b->ids[i], b->vers[i]);
        size_t at = first_diff(want, block_at(b, i), b->block);
        cr_assert_eq(at, b->block,
                     "%s: slot %u (block %u v%u, %llu bytes, %u fragments): byte %zu differs "
                     "(seed %llu)",
                     t->name, b->x[i].slot, b->ids[i], b->vers[i], (unsigned long long)b->block,
                     b->frags, at, (unsigned long long)seed());
    }
    free(want);
}

static void write_ok(tier *t, batch *b)
{
    int rc = tier_write(t, b->x, b->n);
    cr_assert_eq(rc, 0, "%s: write of %u: %s (%s)", t->name, b->n, kvt_error_name(rc),
                 kvt_last_error());
    for (uint32_t i = 0; i < b->n; i++)
        cr_assert_eq(b->x[i].status, 0, "%s: write status %u: %s", t->name, i,
                     kvt_error_name(b->x[i].status));
}

static void read_ok(tier *t, batch *b)
{
    int rc = tier_read(t, b->x, b->n);
    cr_assert_eq(rc, 0, "%s: read of %u: %s (%s)", t->name, b->n, kvt_error_name(rc),
                 kvt_last_error());
    expect_blocks(t, b);
}

/* Writes blocks ids[i] v to slots[i] and reads them back, checking every byte. */
static void round_trip(tier *t, uint32_t n, uint32_t frags, const uint32_t *slots,
                       const uint32_t *ids, const uint32_t *vers)
{
    batch b = batch_new(n, t->g.block, frags);
    batch_set(&b, slots, ids, vers, 1);
    write_ok(t, &b);
    batch_set(&b, slots, ids, vers, 0);
    read_ok(t, &b);
    batch_free(&b);
}

/* Slots 0..n-1 in a random order. */
static void shuffled(uint32_t *out, uint32_t n, uint64_t *rs)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)rand_below(rs, i), tmp = out[i - 1];
        out[i - 1] = out[j];
        out[j] = tmp;
    }
}

/* ================================================================= tests */

/* The table is what the store reads: version, name, caps and the functions that go
 * with each capability. */
EACH_SUBJECT(ops_table_matches_caps)
{
    tier t;
    open_tier(s, &(geometry){16 * KIB, 1, 4}, &t);
    const kvt_tier_ops *o = t.h.ops;
    cr_expect_eq(o->version, KVT_TIER_OPS_VERSION, "%s: ops version %u", t.name, o->version);
    if (!s->wrapped)
        cr_expect_str_eq(o->name, t.tc->kind, "%s: ops name %s", t.name, o->name);
    /* A wrapper has no open: it wraps an opened tier. */
    cr_expect((o->open || s->wrapped) && o->close && o->read && o->write,
              "%s: a required op is NULL", t.name);
    int persistent = (t.h.caps & KVT_TCAP_PERSISTENT) != 0;
    cr_expect_eq(persistent, o->recover != NULL, "%s: PERSISTENT and recover() go together",
                 t.name);
    cr_expect(!persistent || o->discard, "%s: a persistent tier must discard", t.name);
    int mapped = (t.h.caps & (KVT_TCAP_HOST_PTR | KVT_TCAP_DEVICE_PTR)) != 0;
    cr_expect_eq(mapped, o->slot_ptr != NULL, "%s: HOST_PTR/DEVICE_PTR and slot_ptr() go together",
                 t.name);
    cr_expect(!((t.h.caps & KVT_TCAP_HOST_PTR) && (t.h.caps & KVT_TCAP_DEVICE_PTR)),
              "%s: slot memory is host or device, not both", t.name);
    close_tier(&t);
}

/* Random slots, batch sizes, versions and geometry (seeded): every block read back is
 * the last one written to its slot. */
EACH_SUBJECT(random_round_trips)
{
    enum { SLOTS = 48, ROUNDS = 60, MAXB = 12 };
    uint64_t rs = seed() ^ 0x51ull;
    static const uint32_t frag_choices[] = {1, 2, 3, 4, 8};
    uint32_t frags = frag_choices[rand_below(&rs, 5)];
    uint64_t block = (1 + rand_below(&rs, 40 * KIB)) * frags; /* any size, frags divide it */
    tier t;
    open_tier(s, &(geometry){block, frags, SLOTS}, &t);
    cr_log_info("%s: %llu-byte blocks in %u fragments (seed %llu)", t.name,
                (unsigned long long)block, frags, (unsigned long long)seed());
    uint32_t held[SLOTS] = {0}; /* version in each slot, 0: never written */
    uint32_t order[SLOTS], slots[MAXB], ids[MAXB], vers[MAXB];
    for (uint32_t r = 1; r <= ROUNDS; r++) {
        uint32_t n = 1 + (uint32_t)rand_below(&rs, MAXB);
        shuffled(order, SLOTS, &rs);
        batch b = batch_new(n, block, frags);
        for (uint32_t i = 0; i < n; i++) {
            slots[i] = order[i];
            ids[i] = order[i];
            vers[i] = held[order[i]] = r;
        }
        batch_set(&b, slots, ids, vers, 1);
        write_ok(&t, &b);
        /* Read back up to n slots written in any round so far. */
        shuffled(order, SLOTS, &rs);
        uint32_t k = 0;
        for (uint32_t i = 0; i < SLOTS && k < n; i++)
            if (held[order[i]]) {
                slots[k] = ids[k] = order[i];
                vers[k++] = held[order[i]];
            }
        b.n = k;
        batch_set(&b, slots, ids, vers, 0);
        read_ok(&t, &b);
        batch_free(&b);
    }
    close_tier(&t);
}

/* Every size class: tiny, 4 KiB, sizes that are not multiples of 4 KiB, 1 MiB and
 * more, in one and in several fragments; a block written in k fragments reads back the
 * same in one. */
EACH_SUBJECT(every_size_class)
{
    static const struct {
        uint64_t block;
        uint32_t frags, nslots;
    } cls[] = {
        {1, 1, 4},          {100, 4, 6},          {512, 2, 6},
        {4 * KIB, 1, 6},    {4 * KIB, 8, 6},      {6000, 3, 5},
        {12300, 4, 5},      {64 * KIB + 8, 2, 4}, {MIB, 16, 3},
        {MIB + 4 * KIB + 12, 4, 3},
    };
    for (size_t c = 0; c < sizeof cls / sizeof cls[0]; c++) {
        uint32_t n = cls[c].nslots, frags = cls[c].frags;
        uint32_t slots[8], ids[8], vers[8];
        tier t;
        open_tier(s, &(geometry){cls[c].block, frags, n}, &t);
        for (uint32_t i = 0; i < n; i++) {
            slots[i] = n - 1 - i;
            ids[i] = (uint32_t)(c * 100 + i);
            vers[i] = 1;
        }
        round_trip(&t, n, frags, slots, ids, vers);
        /* The same blocks in one fragment. */
        batch one = batch_new(n, cls[c].block, 1);
        batch_set(&one, slots, ids, vers, 0);
        read_ok(&t, &one);
        batch_free(&one);
        close_tier(&t);
    }
}

/* One call of 100 blocks (400 fragments: more than any fixed-size array a tier keeps
 * on its stack), read back in batches of 1, 7, 32 and 60 in a random order; empty
 * batches do nothing. */
EACH_SUBJECT(batched_transfers)
{
    enum { N = 100 };
    uint64_t rs = seed() ^ 0xba7cull;
    tier t;
    open_tier(s, &(geometry){8 * KIB, 4, N}, &t);
    uint32_t slots[N], ids[N], vers[N];
    shuffled(slots, N, &rs);
    for (uint32_t i = 0; i < N; i++) {
        ids[i] = 1000 + slots[i];
        vers[i] = 3;
    }
    batch all = batch_new(N, 8 * KIB, 4);
    batch_set(&all, slots, ids, vers, 1);
    write_ok(&t, &all);
    batch_free(&all);
    shuffled(slots, N, &rs);
    static const uint32_t parts[] = {1, 7, 32, 60};
    uint32_t at = 0;
    for (size_t p = 0; p < 4; p++) {
        batch b = batch_new(parts[p], 8 * KIB, 4);
        for (uint32_t i = 0; i < parts[p]; i++)
            ids[i] = 1000 + slots[at + i];
        batch_set(&b, slots + at, ids, vers, 0);
        read_ok(&t, &b);
        batch_free(&b);
        at += parts[p];
    }
    cr_assert_eq(at, N);
    kvt_xfer none;
    cr_expect_eq(tier_write(&t, &none, 0), 0, "%s: an empty write", t.name);
    cr_expect_eq(tier_read(&t, &none, 0), 0, "%s: an empty read", t.name);
    close_tier(&t);
}

/* A slot written three times holds the third block; its neighbours are untouched. */
EACH_SUBJECT(overwrite_keeps_the_last)
{
    tier t;
    open_tier(s, &(geometry){64 * KIB, 1, 8}, &t);
    uint32_t slots[4] = {0, 1, 2, 3}, ids[4] = {1, 2, 3, 4}, vers[4];
    batch b = batch_new(4, 64 * KIB, 1);
    for (uint32_t v = 1; v <= 3; v++) {
        for (uint32_t i = 0; i < 4; i++)
            vers[i] = v;
        batch_set(&b, slots, ids, vers, 1);
        b.n = v == 3 ? 2 : 4; /* slots 2 and 3 keep version 2 */
        write_ok(&t, &b);
        b.n = 4;
    }
    vers[2] = vers[3] = 2;
    batch_set(&b, slots, ids, vers, 0);
    read_ok(&t, &b);
    batch_free(&b);
    close_tier(&t);
}

/* Threads on disjoint slots at once, each writing and reading its own: every byte is
 * the thread's own. (Criterion's asserts are not for threads: failures are counted.) */
typedef struct worker {
    tier *t;
    uint32_t first, count, rounds;
    uint64_t seed;
    int failed;
    uint32_t bad_slot;
    uint32_t held[16]; /* the version last written to slot first + i */
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    uint32_t slots[4], ids[4], vers[4];
    uint8_t *want = malloc(w->t->g.block);
    batch b = batch_new(4, w->t->g.block, 2);
    for (uint32_t r = 1; r <= w->rounds && !w->failed && want; r++) {
        uint32_t n = 1 + (uint32_t)rand_below(&w->seed, 4);
        for (uint32_t i = 0; i < n; i++) {
            slots[i] = w->first + (r * 4 + i) % w->count;
            ids[i] = slots[i];
            vers[i] = w->held[slots[i] - w->first] = r;
        }
        b.n = n;
        batch_set(&b, slots, ids, vers, 1);
        if (tier_write(w->t, b.x, n))
            w->failed = 1;
        batch_set(&b, slots, ids, vers, 0);
        if (!w->failed && tier_read(w->t, b.x, n))
            w->failed = 2;
        for (uint32_t i = 0; i < n && !w->failed; i++) {
            fill_block(want, b.block, ids[i], r);
            if (memcmp(want, block_at(&b, i), b.block)) {
                w->failed = 3;
                w->bad_slot = slots[i];
            }
        }
    }
    batch_free(&b);
    free(want);
    return NULL;
}

EACH_SUBJECT(threads_on_disjoint_slots)
{
    enum { THREADS = 8, PER = 6 };
    tier t;
    open_tier(s, &(geometry){24 * KIB, 2, THREADS * PER}, &t);
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){&t, (uint32_t)i * PER, PER, 30, seed() + (uint64_t)i, 0, 0, {0}};
        cr_assert_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(w[i].failed, 0,
                     "%s: thread %d: %s (slot %u, seed %llu)", t.name, i,
                     w[i].failed == 1   ? "write failed"
                     : w[i].failed == 2 ? "read failed"
                                        : "other bytes read back",
                     w[i].bad_slot, (unsigned long long)seed());
    }
    /* Afterwards every slot holds its thread's last block: no write landed elsewhere. */
    uint32_t slots[THREADS * PER], ids[THREADS * PER], vers[THREADS * PER];
    for (uint32_t i = 0; i < THREADS * PER; i++) {
        slots[i] = ids[i] = i;
        vers[i] = w[i / PER].held[i % PER];
        cr_assert_neq(vers[i], 0, "slot %u was never written", i);
    }
    batch b = batch_new(THREADS * PER, t.g.block, 2);
    batch_set(&b, slots, ids, vers, 0);
    read_ok(&t, &b);
    batch_free(&b);
    close_tier(&t);
}

/* Discard: takes valid slots (none, some), refuses a slot out of range with a KVT_E*
 * code, and a discarded slot takes a new block. Tiers with nothing to discard have no
 * discard(). */
EACH_SUBJECT(discard)
{
    tier t;
    open_tier(s, &(geometry){16 * KIB, 1, 8}, &t);
    if (!t.h.ops->discard) {
        SKIP(&t, "%s: no discard(): nothing to do for this tier", t.name);
    }
    uint32_t slots[3] = {2, 5, 7}, ids[3] = {2, 5, 7}, vers[3] = {1, 1, 1};
    round_trip(&t, 3, 1, slots, ids, vers);
    cr_expect_eq(t.h.ops->discard(t.h.impl, slots, 0), 0, "%s: discard of none", t.name);
    cr_expect_eq(t.h.ops->discard(t.h.impl, slots, 2), 0, "%s: discard: %s", t.name,
                 kvt_last_error());
    uint32_t bad[2] = {1, t.nslots};
    cr_expect_eq(t.h.ops->discard(t.h.impl, bad, 2), KVT_EINVAL,
                 "%s: discard of slot %u of %u", t.name, t.nslots, t.nslots);
    uint32_t huge = UINT32_MAX;
    cr_expect_eq(t.h.ops->discard(t.h.impl, &huge, 1), KVT_EINVAL, "%s: discard of slot 2^32-1",
                 t.name);
    vers[0] = vers[1] = 2;
    round_trip(&t, 2, 1, slots, ids, vers);
    /* Slot 7 was not discarded: it still holds version 1. */
    batch b = batch_new(1, 16 * KIB, 1);
    batch_set(&b, &slots[2], &ids[2], &vers[2], 0);
    read_ok(&t, &b);
    batch_free(&b);
    close_tier(&t);
}

/* Persistent tiers: after flush, close and reopen, recover() visits exactly the slots
 * written and not discarded, each once, with the key of its last write, and the bytes
 * are there; a discarded slot written again is back after the next reopen. */
typedef struct found {
    uint32_t nslots, visits, out_of_range;
    uint32_t *times; /* visits per slot */
    kvt_key *key;    /* the key of the last visit per slot */
} found;

static int collect(void *user, uint32_t slot, const kvt_key *key)
{
    found *f = user;
    f->visits++;
    if (slot >= f->nslots) {
        f->out_of_range++;
        return 0;
    }
    f->times[slot]++;
    f->key[slot] = *key;
    return 0;
}

/* Recovers t and checks it against held[] (0: empty slot, else the version of block
 * `slot`), then reads every held block back. */
static void expect_recovered(tier *t, const uint32_t *held)
{
    uint32_t n = t->nslots;
    found f = {n, 0, 0, calloc(n, sizeof(uint32_t)), calloc(n, sizeof(kvt_key))};
    cr_assert(f.times && f.key);
    int rc = t->h.ops->recover(t->h.impl, collect, &f);
    cr_assert_eq(rc, 0, "%s: recover: %s (%s)", t->name, kvt_error_name(rc), kvt_last_error());
    cr_expect_eq(f.out_of_range, 0, "%s: recover visited slots out of range", t->name);
    uint32_t want = 0, nheld = 0;
    uint32_t *slots = calloc(n, sizeof *slots), *ids = calloc(n, sizeof *ids),
             *vers = calloc(n, sizeof *vers);
    cr_assert(slots && ids && vers);
    for (uint32_t i = 0; i < n; i++) {
        want += held[i] != 0;
        if (!held[i]) {
            cr_expect_eq(f.times[i], 0, "%s: slot %u (empty or discarded) was recovered", t->name,
                         i);
            continue;
        }
        cr_expect_eq(f.times[i], 1, "%s: slot %u recovered %u times", t->name, i, f.times[i]);
        kvt_key k = key_of(i, held[i]);
        cr_expect_eq(memcmp(&k, &f.key[i], sizeof k), 0, "%s: slot %u: not the key of v%u",
                     t->name, i, held[i]);
        slots[nheld] = ids[nheld] = i;
        vers[nheld++] = held[i];
    }
    cr_expect_eq(f.visits, want, "%s: %u visits for %u blocks", t->name, f.visits, want);
    if (nheld) {
        batch b = batch_new(nheld, t->g.block, t->g.frags);
        batch_set(&b, slots, ids, vers, 0);
        read_ok(t, &b);
        batch_free(&b);
    }
    free(slots), free(ids), free(vers), free(f.times), free(f.key);
}

static void write_versions(tier *t, const uint32_t *slots, uint32_t n, uint32_t v, uint32_t *held)
{
    uint32_t ids[32], vers[32];
    cr_assert_leq(n, 32);
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = slots[i];
        vers[i] = held[slots[i]] = v;
    }
    batch b = batch_new(n, t->g.block, t->g.frags);
    batch_set(&b, slots, ids, vers, 1);
    write_ok(t, &b);
    batch_free(&b);
}

EACH_SUBJECT(recovery_after_reopen)
{
    enum { SLOTS = 32 };
    uint64_t rs = seed() ^ 0x2ec0ull;
    tier t;
    open_tier(s, &(geometry){20000, 2, SLOTS}, &t);
    if (!(t.h.caps & KVT_TCAP_PERSISTENT)) {
        SKIP(&t, "%s is not persistent: nothing to recover", t.name);
    }
    uint32_t held[SLOTS] = {0}, order[SLOTS];
    shuffled(order, SLOTS, &rs);
    write_versions(&t, order, 20, 1, held);         /* 20 random slots */
    write_versions(&t, order + 3, 5, 2, held);      /* 5 of them again */
    uint32_t gone[6] = {order[0], order[4], order[10], order[11], order[25], order[30]};
    cr_assert_eq(t.h.ops->discard(t.h.impl, gone, 6), 0, "%s: discard: %s", t.name,
                 kvt_last_error()); /* 4 written, 2 never written */
    for (int i = 0; i < 6; i++)
        held[gone[i]] = 0;
    if (t.h.ops->flush)
        cr_assert_eq(t.h.ops->flush(t.h.impl), 0, "%s: flush: %s", t.name, kvt_last_error());
    close_tier(&t);

    reopen_tier(&t);
    expect_recovered(&t, held);
    /* A discarded slot written again, without a flush: a clean close keeps it. */
    write_versions(&t, &order[4], 1, 3, held);
    close_tier(&t);

    reopen_tier(&t);
    expect_recovered(&t, held);
    close_tier(&t);
    cr_log_info("%s: seed %llu", t.name, (unsigned long long)seed());
}

/* flush() (where a tier has one) succeeds on a fresh tier, after writes, after a
 * discard and twice in a row. */
EACH_SUBJECT(flush)
{
    tier t;
    open_tier(s, &(geometry){16 * KIB, 1, 4}, &t);
    if (!t.h.ops->flush) {
        SKIP(&t, "%s: no flush(): nothing to make durable", t.name);
    }
    cr_expect_eq(t.h.ops->flush(t.h.impl), 0, "%s: flush of a fresh tier", t.name);
    uint32_t slots[2] = {0, 3}, ids[2] = {7, 8}, vers[2] = {1, 1};
    round_trip(&t, 2, 1, slots, ids, vers);
    cr_expect_eq(t.h.ops->flush(t.h.impl), 0, "%s: flush: %s", t.name, kvt_last_error());
    if (t.h.ops->discard)
        cr_expect_eq(t.h.ops->discard(t.h.impl, slots, 1), 0, "%s: discard", t.name);
    cr_expect_eq(t.h.ops->flush(t.h.impl), 0, "%s: flush after discard", t.name);
    cr_expect_eq(t.h.ops->flush(t.h.impl), 0, "%s: flush again", t.name);
    close_tier(&t);
}

/* stats() may be called at any time: names are distinct, non-empty "<group>.<counter>"
 * strings, and a bytes_written / bytes_read counter, where there is one, grows by at
 * least the bytes moved. */
typedef struct stat_seen {
    uint32_t n, bad_name, dup;
    char names[256][64];
    int has_written, has_read; /* a "*.bytes_written" / "*.bytes_read" counter */
    uint64_t written, read;
} stat_seen;

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

static void see_stat(const char *name, uint64_t value, void *user)
{
    stat_seen *st = user;
    if (!name || !*name || !strchr(name, '.') || strlen(name) >= 64) {
        st->bad_name++;
        return;
    }
    for (uint32_t i = 0; i < st->n; i++)
        if (!strcmp(st->names[i], name))
            st->dup++;
    if (st->n < 256)
        strcpy(st->names[st->n++], name);
    if (ends_with(name, ".bytes_written"))
        st->written = value, st->has_written = 1;
    if (ends_with(name, ".bytes_read"))
        st->read = value, st->has_read = 1;
}

EACH_SUBJECT(stats)
{
    tier t;
    open_tier(s, &(geometry){16 * KIB, 1, 8}, &t);
    if (!t.h.ops->stats) {
        SKIP(&t, "%s: no stats()", t.name);
    }
    static stat_seen before, after;
    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    t.h.ops->stats(t.h.impl, see_stat, &before);
    uint32_t slots[4] = {0, 1, 2, 3}, ids[4] = {1, 2, 3, 4}, vers[4] = {1, 1, 1, 1};
    round_trip(&t, 4, 1, slots, ids, vers);
    t.h.ops->stats(t.h.impl, see_stat, &after);
    cr_expect_gt(after.n, 0, "%s: stats() reported nothing", t.name);
    cr_expect_eq(before.bad_name + after.bad_name, 0, "%s: a stat without a \"group.\" name",
                 t.name);
    cr_expect_eq(before.dup + after.dup, 0, "%s: a stat reported twice", t.name);
    cr_expect_eq(before.n, after.n, "%s: %u stats, then %u", t.name, before.n, after.n);
    cr_expect_eq(before.has_written, after.has_written, "%s: bytes_written came or went", t.name);
    cr_expect_eq(before.has_read, after.has_read, "%s: bytes_read came or went", t.name);
    cr_expect_geq(after.written - before.written, after.has_written ? 4 * 16 * KIB : 0,
                  "%s: bytes_written grew by %llu for %llu bytes", t.name,
                  (unsigned long long)(after.written - before.written),
                  (unsigned long long)(4 * 16 * KIB));
    cr_expect_geq(after.read - before.read, after.has_read ? 4 * 16 * KIB : 0,
                  "%s: bytes_read grew by %llu for %llu bytes", t.name,
                  (unsigned long long)(after.read - before.read),
                  (unsigned long long)(4 * 16 * KIB));
    close_tier(&t);
}

/* Tiers with host memory behind their slots: slot_ptr() is the block's bytes, and NULL
 * out of range. */
EACH_SUBJECT(slot_ptr)
{
    tier t;
    open_tier(s, &(geometry){12 * KIB + 4, 2, 6}, &t);
    if (!(t.h.caps & (KVT_TCAP_HOST_PTR | KVT_TCAP_DEVICE_PTR))) {
        SKIP(&t, "%s: slots are not addressable memory", t.name);
    }
    uint32_t slots[2] = {1, 5}, ids[2] = {11, 15}, vers[2] = {4, 4};
    round_trip(&t, 2, 2, slots, ids, vers);
    for (uint32_t i = 0; i < t.nslots; i++)
        cr_expect_not_null(t.h.ops->slot_ptr(t.h.impl, i), "%s: slot %u has no memory", t.name, i);
    cr_expect_null(t.h.ops->slot_ptr(t.h.impl, t.nslots), "%s: memory past the last slot",
                   t.name);
    cr_expect_null(t.h.ops->slot_ptr(t.h.impl, UINT32_MAX), "%s: memory at slot 2^32-1", t.name);
    if (t.h.caps & KVT_TCAP_HOST_PTR) {
        uint8_t *want = malloc(t.g.block);
        cr_assert(want);
        for (int i = 0; i < 2; i++) {
            fill_block(want, t.g.block, ids[i], vers[i]);
            cr_expect_eq(memcmp(want, t.h.ops->slot_ptr(t.h.impl, slots[i]), t.g.block), 0,
                         "%s: slot %u's memory is not its block", t.name, slots[i]);
        }
        free(want);
    }
    close_tier(&t);
}

/* A batch mixing good xfers and each kind of bad one: the good ones move, each bad one
 * gets its own KVT_E* status, the call returns the first of them and sets a message. */
static void bad_batch(tier *t, int writing)
{
    enum { N = 9 };
    uint32_t slots[N] = {0, 0, 1, 2, 3, 4, 5, 6, 7}, ids[N], vers[N];
    for (uint32_t i = 0; i < N; i++) {
        ids[i] = 50 + i;
        vers[i] = 1;
    }
    batch b = batch_new(N, t->g.block, 2);
    batch_set(&b, slots, ids, vers, writing);
    void *null_frag[2] = {b.ptrs[2 * 8], NULL};
    int want[N] = {0, KVT_EINVAL, 0, KVT_EFRAGS, 0, KVT_EFRAGS, KVT_ENULL, KVT_ENULL, 0};
    b.x[1].slot = t->nslots;         /* out of range */
    b.x[3].nfrags = 0;               /* no fragments */
    b.x[5].nfrags = 3;               /* 3 do not divide the block */
    b.x[6].frags = NULL;             /* no fragment array */
    b.x[7].frags = (void *const *)null_frag; /* a NULL fragment */
    b.x[1].status = b.x[3].status = 777;
    kvt__err_clear();
    int rc = writing ? tier_write(t, b.x, N) : tier_read(t, b.x, N);
    const char *what = writing ? "write" : "read";
    cr_expect_eq(rc, KVT_EINVAL, "%s: %s of a bad batch: %s, not the first error (EINVAL)",
                 t->name, what, kvt_error_name(rc));
    cr_expect_neq(kvt_last_error()[0], '\0', "%s: %s failed without a message", t->name, what);
    for (uint32_t i = 0; i < N; i++)
        cr_expect_eq(b.x[i].status, want[i], "%s: %s xfer %u: status %s, wanted %s", t->name,
                     what, i, kvt_error_name(b.x[i].status), kvt_error_name(want[i]));
    if (!writing) { /* the good ones were read: blocks 50, 52, 54 and 58 of the write */
        uint8_t *wantb = malloc(t->g.block);
        cr_assert(wantb);
        static const uint32_t good[] = {0, 2, 4, 8};
        for (int g = 0; g < 4; g++) {
            uint32_t i = good[g];
            fill_block(wantb, t->g.block, 50 + i, 1);
            cr_expect_eq(memcmp(wantb, block_at(&b, i), t->g.block), 0,
                         "%s: good xfer %u of a bad batch read other bytes", t->name, i);
        }
        free(wantb);
    }
    batch_free(&b);
}

EACH_SUBJECT(bad_xfers_get_codes)
{
    tier t;
    open_tier(s, &(geometry){16 * KIB, 2, 8}, &t);
    bad_batch(&t, 1);
    bad_batch(&t, 0);
    /* The tier goes on working. */
    uint32_t slots[2] = {6, 7}, ids[2] = {1, 2}, vers[2] = {9, 9};
    round_trip(&t, 2, 2, slots, ids, vers);
    close_tier(&t);
}

/* Memory kinds: one the tier does not take is refused whole, with KVT_EMEMKIND in
 * every status. */
static void refused_kind(tier *t, kvt_mem_kind mem)
{
    uint32_t slots[2] = {0, 1}, ids[2] = {1, 2}, vers[2] = {1, 1};
    batch b = batch_new(2, t->g.block, 1);
    batch_set(&b, slots, ids, vers, 1);
    int rc = t->h.ops->write(t->h.impl, b.x, 2, mem);
    cr_expect_eq(rc, KVT_EMEMKIND, "%s: write of memory kind %d: %s", t->name, (int)mem,
                 kvt_error_name(rc));
    cr_expect(b.x[0].status == KVT_EMEMKIND && b.x[1].status == KVT_EMEMKIND,
              "%s: write statuses of memory kind %d", t->name, (int)mem);
    rc = t->h.ops->read(t->h.impl, b.x, 2, mem);
    cr_expect_eq(rc, KVT_EMEMKIND, "%s: read of memory kind %d: %s", t->name, (int)mem,
                 kvt_error_name(rc));
    batch_free(&b);
}

EACH_SUBJECT(memory_kinds)
{
    tier t;
    open_tier(s, &(geometry){8 * KIB, 1, 4}, &t);
    refused_kind(&t, (kvt_mem_kind)77);
    if (!(t.h.caps & KVT_TCAP_CUDA_MEM))
        refused_kind(&t, KVT_MEM_CUDA);
    close_tier(&t);
}

/* Open refuses what it can't be: NULL arguments, an empty block, a capacity below one
 * slot, with their codes and no state. */
EACH_TIER(bad_opens_get_codes) /* a wrapper wraps opened tiers: opening is the tier's */
{
    tier t;
    open_tier(s, &(geometry){8 * KIB, 1, 2}, &t); /* skips where the device is absent */
    close_tier(&t);
    const kvt_tier_ops *o = t.h.ops;
    kvt_tier_params p = t.p;
    kvt_tier_impl *impl = NULL;
    uint32_t n = 0;
    cr_expect_eq(o->open(NULL, &impl, &n), KVT_ENULL, "%s: open(NULL params)", t.name);
    cr_expect_eq(o->open(&p, NULL, &n), KVT_ENULL, "%s: open(NULL out)", t.name);
    cr_expect_eq(o->open(&p, &impl, NULL), KVT_ENULL, "%s: open(NULL nslots)", t.name);
    p.block_bytes = 0;
    impl = (kvt_tier_impl *)&n;
    int rc = o->open(&p, &impl, &n);
    cr_expect_eq(rc, KVT_ESIZE, "%s: open of 0-byte blocks: %s", t.name, kvt_error_name(rc));
    cr_expect_null(impl, "%s: a failed open left state", t.name);
    p = t.p;
    p.capacity = 0;
    rc = o->open(&p, &impl, &n);
    cr_expect_eq(rc, KVT_ECAPACITY, "%s: open of capacity 0: %s", t.name, kvt_error_name(rc));
    p.capacity = t.p.capacity / t.g.nslots - 1; /* one byte short of a slot */
    rc = o->open(&p, &impl, &n);
    cr_expect_eq(rc, KVT_ECAPACITY, "%s: open of a capacity below a slot: %s", t.name,
                 kvt_error_name(rc));
    cr_expect_null(impl, "%s: a failed open left state", t.name);
}

/* ===================================================== faults (FAULTY block)
 * Through the wrapper of lib/tier/faulty.c, on every tier. Compiled once that file
 * exists (tests/meson.build defines KVT_TEST_FAULTY); the subjects above also run the
 * whole contract through the wrapper with a spec that injects nothing. */
#if KVT_TEST_FAULTY

static void wrap_or_skip(tier *t, const char *spec)
{
    int rc = kvt__faulty_wrap(&t->h, spec);
    if (rc == KVT_ENOTSUP) {
        SKIP(t, "%s: built without fault injection", t->name);
    }
    cr_assert_eq(rc, 0, "%s: wrap \"%s\": %s (%s)", t->name, spec, kvt_error_name(rc),
                 kvt_last_error());
}

/* eio=1: every block fails with KVT_EIO, both ways; the call says so. */
EACH_TIER(faults_every_block_fails)
{
    tier t;
    open_tier(s, &(geometry){16 * KIB, 1, 8}, &t);
    wrap_or_skip(&t, "eio=1");
    uint32_t slots[5] = {0, 1, 2, 3, 4}, ids[5] = {1, 2, 3, 4, 5}, vers[5] = {1, 1, 1, 1, 1};
    batch b = batch_new(5, 16 * KIB, 1);
    for (int writing = 1; writing >= 0; writing--) {
        batch_set(&b, slots, ids, vers, writing);
        int rc = writing ? tier_write(&t, b.x, 5) : tier_read(&t, b.x, 5);
        cr_expect_eq(rc, KVT_EIO, "%s: %s with eio=1: %s", t.name, writing ? "write" : "read",
                     kvt_error_name(rc));
        for (int i = 0; i < 5; i++)
            cr_expect_eq(b.x[i].status, KVT_EIO, "%s: xfer %d: %s", t.name, i,
                         kvt_error_name(b.x[i].status));
    }
    batch_free(&b);
    close_tier(&t);
}

/* nth=3:eio: exactly one block of the first write fails, the others land. */
EACH_TIER(faults_nth_block_fails)
{
    tier t;
    open_tier(s, &(geometry){16 * KIB, 1, 8}, &t);
    wrap_or_skip(&t, "nth=3:eio");
    uint32_t slots[5] = {0, 1, 2, 3, 4}, ids[5] = {1, 2, 3, 4, 5}, vers[5] = {1, 1, 1, 1, 1};
    batch b = batch_new(5, 16 * KIB, 1);
    batch_set(&b, slots, ids, vers, 1);
    int rc = tier_write(&t, b.x, 5);
    cr_expect_eq(rc, KVT_EIO, "%s: the write with a failed block: %s", t.name, kvt_error_name(rc));
    uint32_t failed = 0, ok[5], nok = 0;
    for (uint32_t i = 0; i < 5; i++) {
        cr_expect(b.x[i].status == 0 || b.x[i].status == KVT_EIO, "%s: xfer %u: %s", t.name, i,
                  kvt_error_name(b.x[i].status));
        if (b.x[i].status)
            failed++;
        else
            ok[nok++] = i;
    }
    cr_expect_eq(failed, 1, "%s: %u blocks failed, wanted the 3rd only", t.name, failed);
    batch_free(&b);
    /* The blocks that landed read back (no more faults: nth fired once). */
    uint32_t rs[5], ri[5], rv[5];
    for (uint32_t i = 0; i < nok; i++)
        rs[i] = slots[ok[i]], ri[i] = ids[ok[i]], rv[i] = 1;
    batch r = batch_new(nok, 16 * KIB, 1);
    batch_set(&r, rs, ri, rv, 0);
    read_ok(&t, &r);
    batch_free(&r);
    close_tier(&t);
}

/* A quarter of the blocks fail at random (seeded): each xfer is 0 or KVT_EIO, the call
 * returns the first failure, and every block whose write and read both succeeded is
 * exact. */
EACH_TIER(faults_some_fail_the_rest_is_exact)
{
    enum { SLOTS = 16, ROUNDS = 20 };
    char spec[64];
    snprintf(spec, sizeof spec, "seed=%llu,eio=0.25", (unsigned long long)(seed() | 1));
    tier t;
    open_tier(s, &(geometry){8 * KIB, 2, SLOTS}, &t);
    wrap_or_skip(&t, spec);
    uint32_t held[SLOTS] = {0}; /* 0: unknown (never written, or the last write failed) */
    uint32_t slots[SLOTS], ids[SLOTS], vers[SLOTS], fails = 0, oks = 0;
    uint64_t rs = seed() ^ 0xfa17ull;
    for (uint32_t r = 1; r <= ROUNDS; r++) {
        uint32_t n = 1 + (uint32_t)rand_below(&rs, 8);
        shuffled(slots, SLOTS, &rs);
        for (uint32_t i = 0; i < n; i++)
            ids[i] = slots[i], vers[i] = r;
        batch b = batch_new(SLOTS, 8 * KIB, 2);
        b.n = n;
        batch_set(&b, slots, ids, vers, 1);
        int rc = tier_write(&t, b.x, n), first = 0;
        for (uint32_t i = 0; i < n; i++) {
            cr_expect(b.x[i].status == 0 || b.x[i].status == KVT_EIO, "%s: %s", t.name,
                      kvt_error_name(b.x[i].status));
            first = first ? first : b.x[i].status;
            held[slots[i]] = b.x[i].status ? 0 : r;
            fails += b.x[i].status != 0;
            oks += b.x[i].status == 0;
        }
        cr_expect_eq(rc, first, "%s: write returned %s, its first failure is %s (%s)", t.name,
                     kvt_error_name(rc), kvt_error_name(first), spec);
        /* Read back what is known. */
        uint32_t k = 0;
        for (uint32_t i = 0; i < SLOTS; i++)
            if (held[i])
                slots[k] = ids[k] = i, vers[k++] = held[i];
        b.n = k;
        batch_set(&b, slots, ids, vers, 0);
        rc = tier_read(&t, b.x, k);
        uint8_t *want = malloc(b.block);
        cr_assert(want);
        for (uint32_t i = 0; i < k; i++) {
            cr_expect(b.x[i].status == 0 || b.x[i].status == KVT_EIO, "%s: %s", t.name,
                      kvt_error_name(b.x[i].status));
            if (b.x[i].status)
                continue;
            fill_block(want, b.block, ids[i], vers[i]);
            cr_expect_eq(memcmp(want, block_at(&b, i), b.block), 0,
                         "%s: slot %u read other bytes under faults (%s)", t.name, slots[i], spec);
        }
        free(want);
        batch_free(&b);
    }
    cr_expect(fails > 0 && oks > 0, "%s: %u failed and %u landed: the rate did nothing (%s)",
              t.name, fails, oks, spec);
    close_tier(&t);
}

/* A bad spec is refused with KVT_EINVAL and leaves the tier as it was, working. */
EACH_TIER(faults_bad_spec_refused)
{
    tier t;
    open_tier(s, &(geometry){8 * KIB, 1, 4}, &t);
    kvt_tier_handle before = t.h;
    static const char *const bad[] = {"eio=2", "bogus=1", "eio=0.7,short=0.7", "nth=0:eio"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = kvt__faulty_wrap(&t.h, bad[i]);
        if (rc == KVT_ENOTSUP)
            SKIP(&t, "%s: built without fault injection", t.name);
        cr_expect_eq(rc, KVT_EINVAL, "%s: spec \"%s\": %s", t.name, bad[i], kvt_error_name(rc));
        cr_expect(t.h.ops == before.ops && t.h.impl == before.impl && t.h.caps == before.caps,
                  "%s: a refused spec changed the handle", t.name);
    }
    uint32_t slots[2] = {0, 3}, ids[2] = {1, 2}, vers[2] = {1, 1};
    round_trip(&t, 2, 1, slots, ids, vers);
    close_tier(&t);
}

#endif /* KVT_TEST_FAULTY */
