/* test_dram_faults.c — faults injected into the DRAM tier through the fault wrapper (lib/tier/faulty.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvt_build_config.h"
#include "kvtier.h"
#include "tier/faults.h"
#include "tier/faulty.h"
#include "tier/tier.h"
#include "../tier_kinds.h"

#define BB 4096u /* block bytes */

static void setup(void)
{
#if !KVT_HAVE_FAULTS
    cr_skip_test("built without fault injection (-Dfault_injection=false)");
#endif
}

TestSuite(dram_faults, .init = setup, .timeout = 60);

static uint64_t test_seed(const char *test)
{
    const char *env = getenv("KVT_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    if (!seed)
        seed = 1;
    fprintf(stderr, "test_dram_faults %s: seed %llu (rerun with KVT_TEST_SEED=%llu)\n", test,
            (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_random(void *p, size_t len, uint64_t *s)
{
    uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) {
            uint64_t v = next_rand(s);
            memcpy(b + i, &v, len - i < 8 ? len - i : 8);
        }
    }
}

static const char *code(int rc)
{
    const char *n = kvt_error_name(rc);
    return n ? n : "?";
}

/* An open DRAM tier of nslots blocks: `inner` is the tier itself, `h` the
 * handle the wrapper replaces (both reach the same slots). */
typedef struct dram {
    kvt_tier_handle inner, h;
    uint32_t nslots;
} dram;

static void dram_open(dram *d, uint32_t nslots)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, &kvt__tier_dram);
    p.name = "dram";
    p.capacity = (uint64_t)BB * nslots;
    p.block_bytes = BB;
    p.block_tokens = 16;
    p.frags = 1;
    p.copy_threads = 1;
    const kvt_tier_ops *ops = &kvt__tier_dram;
    kvt_tier_impl *impl = NULL;
    int rc = ops->open(&p, &impl, &d->nslots);
    cr_assert_eq(rc, 0, "dram open: %s", kvt_last_error());
    cr_assert_eq(d->nslots, nslots);
    d->inner = (kvt_tier_handle){ops, impl, ops->caps};
    d->h = d->inner;
}

static void dram_close(dram *d)
{
    d->h.ops->close(d->h.impl); /* the wrapper's close closes the inner tier */
}

/* Moves blocks [first, first + n) between data (block i at data + i * BB)
 * and slots first.. in one batch through handle h; statuses to st. */
static int io(const kvt_tier_handle *h, int write, uint8_t *data, uint32_t first, uint32_t n,
              int32_t *st)
{
    kvt_xfer *x = calloc(n, sizeof *x);
    void **fp = calloc(n, sizeof *fp);
    for (uint32_t i = 0; i < n; i++) {
        fp[i] = data + (size_t)(first + i) * BB;
        x[i] = (kvt_xfer){.slot = first + i, .nfrags = 1, .frags = &fp[i], .status = 999};
        memcpy(x[i].key.b, &i, sizeof i);
    }
    int rc = write ? h->ops->write(h->impl, x, n, KVT_MEM_HOST)
                   : h->ops->read(h->impl, x, n, KVT_MEM_HOST);
    for (uint32_t i = 0; i < n; i++)
        st[first + i] = x[i].status;
    free(x);
    free(fp);
    return rc;
}

struct probe {
    const char *name;
    uint64_t value;
    int found;
};

static void probe_cb(const char *name, uint64_t value, void *user)
{
    struct probe *p = user;
    if (!strcmp(name, p->name)) {
        p->value = value;
        p->found = 1;
    }
}

static uint64_t stat_of(const kvt_tier_handle *h, const char *name)
{
    struct probe p = {name, 0, 0};
    h->ops->stats(h->impl, probe_cb, &p);
    cr_assert(p.found, "stat %s missing", name);
    return p.value;
}

static int write_code(kvt__fault f)
{
    return f == KVT__FAULT_ENOSPC ? KVT_ENOSPC : f == KVT__FAULT_NONE ? 0 : KVT_EIO;
}

/*
 * Old blocks A in every slot through the bare tier; then new blocks B
 * written and read through the wrapper under `spec`, in batches of `batch`
 * (more than the wrapper plans at a time, too). A replay of the spec's
 * draws gives each operation's fault: every status must be the one it
 * implies; a failed write leaves the old block whole (nothing moved), a
 * successful read gives exactly the slot's block.
 */
static void fault_run(const char *spec, uint32_t n, uint32_t batch, uint64_t *s)
{
    dram d;
    dram_open(&d, n);
    uint8_t *a = malloc((size_t)n * BB), *b = malloc((size_t)n * BB), *back = malloc((size_t)n * BB);
    int32_t *st = malloc(n * sizeof *st);
    fill_random(a, (size_t)n * BB, s);
    fill_random(b, (size_t)n * BB, s);
    for (uint32_t at = 0; at < n; at += batch)
        cr_assert_eq(io(&d.inner, 1, a, at, n - at < batch ? n - at : batch, st), 0);

    kvt__faults *replay;
    cr_assert_eq(kvt__faults_new(spec, &replay), 0);
    kvt__fault *wf = malloc(n * sizeof *wf), *rf = malloc(n * sizeof *rf);
    for (uint32_t i = 0; i < n; i++)
        wf[i] = kvt__faults_draw(replay, 1, NULL);
    for (uint32_t i = 0; i < n; i++)
        rf[i] = kvt__faults_draw(replay, 0, NULL);

    cr_assert_eq(kvt__faulty_wrap(&d.h, spec), 0, "wrap '%s': %s", spec, kvt_last_error());
    cr_assert_eq(d.h.caps, d.inner.caps, "the wrapper changed the caps");
    cr_assert_str_eq(d.h.ops->name, "dram");
    uint64_t injected = 0;
    for (uint32_t at = 0; at < n; at += batch) {
        uint32_t k = n - at < batch ? n - at : batch;
        int rc = io(&d.h, 1, b, at, k, st);
        int first = 0;
        for (uint32_t i = at; i < at + k && !first; i++)
            first = write_code(wf[i]);
        cr_assert_eq(rc, first, "%s: write batch at %u returned %s, want %s", spec, at, code(rc),
                     code(first));
    }
    for (uint32_t i = 0; i < n; i++) {
        injected += wf[i] != KVT__FAULT_NONE;
        cr_assert_eq(st[i], write_code(wf[i]), "%s: write %u (%s): %s", spec, i,
                     kvt__fault_name(wf[i]), code(st[i]));
    }
    /* What the slots hold, read past the wrapper. */
    memset(back, 0xEE, (size_t)n * BB);
    cr_assert_eq(io(&d.inner, 0, back, 0, n, st), 0);
    for (uint32_t i = 0; i < n; i++)
        cr_assert(!memcmp(back + (size_t)i * BB, (wf[i] ? a : b) + (size_t)i * BB, BB),
                  "%s: slot %u after a %s write holds the wrong block", spec, i,
                  kvt__fault_name(wf[i]));
    /* Reads through the wrapper. */
    memset(back, 0xEE, (size_t)n * BB);
    for (uint32_t at = 0; at < n; at += batch)
        io(&d.h, 0, back, at, n - at < batch ? n - at : batch, st);
    for (uint32_t i = 0; i < n; i++) {
        injected += rf[i] != KVT__FAULT_NONE;
        cr_assert_eq(st[i], rf[i] ? KVT_EIO : 0, "%s: read %u (%s): %s", spec, i,
                     kvt__fault_name(rf[i]), code(st[i]));
        if (!st[i])
            cr_assert(!memcmp(back + (size_t)i * BB, (wf[i] ? a : b) + (size_t)i * BB, BB),
                      "%s: read %u: wrong bytes", spec, i);
    }
    cr_expect_eq(stat_of(&d.h, "dram.faults_injected"), injected, "%s", spec);
    for (int k = 1; k < KVT__FAULT_KINDS; k++) {
        char name[64];
        snprintf(name, sizeof name, "dram.faults_injected.%s", kvt__fault_name((kvt__fault)k));
        cr_expect_eq(stat_of(&d.h, name), kvt__faults_injected(replay, (kvt__fault)k), "%s: %s",
                     spec, name);
    }
    dram_close(&d);
    kvt__faults_free(replay);
    free(wf);
    free(rf);
    free(a);
    free(b);
    free(back);
    free(st);
}

Test(dram_faults, eio_enospc_short_through_the_wrapper)
{
    uint64_t s = test_seed("kinds");
    static const char *const kinds[] = {"eio", "enospc", "short"};
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < 2; r++) {
            char spec[96];
            snprintf(spec, sizeof spec, "%s=%s,seed=%llu", kinds[k], r ? "0.5" : "0.05",
                     (unsigned long long)(next_rand(&s) % 1000000));
            fault_run(spec, 96, 16, &s);
        }
}

Test(dram_faults, all_kinds_in_batches_larger_than_a_plan)
{
    uint64_t s = test_seed("mixed");
    char spec[96];
    snprintf(spec, sizeof spec, "eio=0.1,enospc=0.1,short=0.1,seed=%llu",
             (unsigned long long)(next_rand(&s) % 1000000));
    fault_run(spec, 300, 150, &s);
    fault_run(spec, 64, 64, &s);
}

Test(dram_faults, nth_operation)
{
    uint64_t s = test_seed("nth");
    /* 8 writes are operations 1..8, then 8 reads 9..16. */
    fault_run("nth=2:eio,nth=3:enospc,nth=7:short,nth=9:eio,nth=16:short", 8, 8, &s);
}

Test(dram_faults, engine_kinds_are_refused_over_a_tier_without_an_engine)
{
    static const char *const engine[] = {"torn4k=0.1", "torn=0.2", "torn512=1", "partial=0.5",
                                         "cqe_eio=0.1", "nth=3:cqe_short", "eio=0.1,nth=2:partial"};
    dram d;
    dram_open(&d, 4);
    for (size_t i = 0; i < sizeof engine / sizeof engine[0]; i++) {
        kvt_tier_handle before = d.h;
        cr_expect_eq(kvt__faulty_wrap(&d.h, engine[i]), KVT_EINVAL, "spec '%s'", engine[i]);
        cr_expect(d.h.ops == before.ops && d.h.impl == before.impl, "'%s' changed the handle",
                  engine[i]);
    }
    cr_expect_eq(kvt__faulty_wrap(&d.h, "eio=2"), KVT_EINVAL);
    cr_expect_eq(kvt__faulty_check("eio=2"), KVT_EINVAL);
    cr_expect_eq(kvt__faulty_check("torn4k=0.5"), 0, "valid over a tier that has an engine");
    /* No spec: the handle stays the tier's own. */
    cr_expect_eq(kvt__faulty_wrap(&d.h, NULL), 0);
    cr_expect_eq(kvt__faulty_wrap(&d.h, ""), 0);
    cr_expect(d.h.ops == &kvt__tier_dram);
    /* Still usable after the refusals. */
    uint8_t blk[BB], got[BB];
    int32_t st[4];
    memset(blk, 7, sizeof blk);
    cr_assert_eq(io(&d.h, 1, blk, 0, 1, st), 0);
    cr_assert_eq(io(&d.h, 0, got, 0, 1, st), 0);
    cr_assert(!memcmp(blk, got, BB));
    dram_close(&d);
}

/* The wrapper keeps what the store reads: name, caps, which optional ops
 * exist, and slot memory. */
Test(dram_faults, wrapper_is_the_same_tier_to_the_store)
{
    dram d;
    dram_open(&d, 4);
    const kvt_tier_ops *in = d.inner.ops;
    cr_assert_eq(kvt__faulty_wrap(&d.h, "seed=5"), 0);
    const kvt_tier_ops *w = d.h.ops;
    cr_expect_neq(w, in);
    cr_expect_eq(w->caps, in->caps);
    cr_expect_eq(w->discard == NULL, in->discard == NULL);
    cr_expect_eq(w->flush == NULL, in->flush == NULL);
    cr_expect_eq(w->slot_ptr == NULL, in->slot_ptr == NULL);
    cr_expect_eq(w->recover == NULL, in->recover == NULL);
    if (in->slot_ptr)
        for (uint32_t i = 0; i < 4; i++)
            cr_expect_eq(w->slot_ptr(d.h.impl, i), in->slot_ptr(d.inner.impl, i));
    cr_expect_eq(stat_of(&d.h, "dram.faults_injected"), 0);
    dram_close(&d);
}

/* Through the store: a DRAM-only store with a fault spec on its DRAM tier. */
Test(dram_faults, through_the_store)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BB);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 16 * BB);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    /* a put of 4 blocks is operations 1..4, the get of the 2 stored 5..6 */
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "faults",
                                         "nth=2:eio,nth=4:enospc,nth=6:short"), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);

    static uint8_t blk[4][BB], got[4][BB];
    void *src[4], *dst[4];
    kvt_key k[4];
    for (int i = 0; i < 4; i++) {
        memset(blk[i], 0x40 + i, BB);
        memset(&k[i], 0, sizeof k[i]);
        k[i].b[0] = (uint8_t)(i + 1);
        src[i] = blk[i];
        dst[i] = got[i];
    }
    int32_t st[4];
    kvt_io_opts o = {.size = sizeof o, .status = st};
    int rc = kvt_put(s, k, 4, src, &o, NULL);
    cr_expect_eq(rc, 2, "put stored %d", rc);
    cr_expect_eq(st[0], 0);
    cr_expect_eq(st[1], KVT_EIO, "%s", code(st[1]));
    cr_expect_eq(st[2], 0);
    cr_expect_eq(st[3], KVT_ENOSPC, "%s", code(st[3]));
    uint64_t v = 0;
    cr_expect_eq(kvt_stat(s, "dram.faults_injected", &v), 0);
    cr_expect_eq(v, 2);
    /* Of the two stored blocks, the second read (operation 6) fails. */
    void *d2[2] = {dst[0], dst[2]};
    kvt_key k2[2] = {k[0], k[2]};
    rc = kvt_get(s, k2, 2, d2, &o, NULL);
    cr_expect_eq(rc, 1, "get returned %d", rc);
    cr_expect_eq(st[0], 0, "%s", code(st[0]));
    cr_expect(!memcmp(got[0], blk[0], BB));
    cr_expect_eq(st[1], KVT_EIO, "the injected short read: %s", code(st[1]));
    cr_expect_eq(kvt_stat(s, "dram.faults_injected.short", &v), 0);
    cr_expect_eq(v, 1);
    cr_assert_eq(kvt_close(s), 0);
}
