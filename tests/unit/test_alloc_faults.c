/* test_alloc_faults.c — SQLite-style OOM loops: every allocating entry point, with its n-th allocation failing, for n = 1, 2, ... */
/*
 * For each public entry point that allocates, the loop arms
 * kvt__alloc_fail_after(n) (lib/alloc.h) for n = 1, 2, ... and makes the call,
 * until a call runs with no failure injected (it then reached no n-th
 * allocation). Each call that met a failure must return KVT_ENOMEM (or
 * succeed, where the library has a fallback), leave the store usable (a
 * put + get round trip with exact bytes right after) and leave its state as
 * documented (a failed put stores nothing, a failed get loses nothing).
 * Leaks: CI runs this file under the asan setup, whose LeakSanitizer fails
 * the test on any block not freed at exit; `meson test --setup=valgrind`
 * checks the same. Each loop runs twice: "one-shot" (only the n-th
 * allocation fails) and "sticky" (the n-th and every later one fail, until
 * the call returns), as SQLite's malloc tests do.
 *
 * Every loop prints one line ("alloc-faults: ...") with the allocations it
 * met and the outcomes; docs/reliability.md quotes them.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "common/rand.h"
#include "config.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 4096
#define MAX_N 100000 /* no entry point makes this many allocations */

#if !KVT_HAVE_FAULTS
Test(alloc_faults, unavailable)
{
    cr_skip_test("built with -Dfault_injection=false: no allocation hook to arm");
}
#else

/* ------------------------------------------------------------ fixtures */

static kvt_key key_of(uint64_t i)
{
    kvt_key ns, k;
    uint32_t tok[4] = {(uint32_t)i, (uint32_t)(i >> 32), 0xa110c, 5};
    cr_assert_eq(kvt_ns_key(NULL, 0, &ns), 0);
    cr_assert_eq(kvt_key_chain(&ns, tok, 4, 4, &k, 1), 1);
    return k;
}

typedef struct fx {
    kvt_config *cfg;
    kvt_store *s;
    uint32_t frags;
    char path[512];
    uint64_t next_key; /* fresh keys for round trips and puts */
    /* blocks known present (get, remove fixtures) */
    uint64_t present[64];
    size_t npresent;
    const char *what;
    int cfg_opened; /* a store was opened with cfg: its setters refuse */
} fx;

static void nvme_path(fx *f, const char *tag)
{
    const char *dir = getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".";
    snprintf(f->path, sizeof f->path, "%s/alloc-faults-%s-%d.kvt", dir, tag, (int)getpid());
    unlink(f->path);
}

/* DRAM of dram_blocks, plus NVMe of nvme_slots when nvme_slots > 0. */
static kvt_config *make_config(fx *f, uint64_t dram_blocks, uint64_t nvme_slots, uint32_t frags,
                               const char *policy)
{
    kvt_config *c;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, frags), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_WORKERS, 2), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity",
                                     (int64_t)(dram_blocks * BLOCK)), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", 60000), 0);
    if (policy)
        cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", policy), 0);
    if (nvme_slots) {
#if KVT_HAVE_URING
        uint64_t slot;
        cr_assert_eq(kvt_slot_bytes("nvme", BLOCK, &slot), 0);
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity",
                                         (int64_t)(nvme_slots * slot)), 0);
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "ttl_ms", 60000), 0);
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "queue_depth", 8), 0);
        cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", f->path), 0);
        /* a fault engine with no faults: its allocation is on the open path */
        cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "faults", "seed=7"), 0);
        if (policy)
            cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "policy", policy), 0);
#else
        cr_skip_test("built without io_uring: no NVMe tier");
#endif
    }
    f->frags = frags;
    return c;
}

static void open_fixture(fx *f, uint64_t dram_blocks, uint64_t nvme_slots, uint32_t frags)
{
    if (nvme_slots)
        nvme_path(f, "fx");
    f->cfg = make_config(f, dram_blocks, nvme_slots, frags, NULL);
    int rc = kvt_open(f->cfg, &f->s);
    cr_assert_eq(rc, 0, "kvt_open: %s", kvt_last_error());
    f->next_key = 1000;
}

static void close_fixture(fx *f)
{
    if (f->s)
        cr_assert_eq(kvt_close(f->s), 0);
    kvt_config_free(f->cfg);
    if (f->path[0])
        unlink(f->path);
    memset(f, 0, sizeof *f);
}

/* Puts blocks i[0..n) (synchronously, no faults armed), asserting success. */
static void put_blocks(fx *f, const uint64_t *ids, size_t n)
{
    uint8_t *buf = malloc(n * BLOCK);
    void **p = malloc(n * f->frags * sizeof *p);
    kvt_key *k = malloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++) {
        k[i] = key_of(ids[i]);
        fill_pattern(buf + i * BLOCK, BLOCK, ids[i], 3);
        for (uint32_t g = 0; g < f->frags; g++)
            p[i * f->frags + g] = buf + i * BLOCK + g * (BLOCK / f->frags);
    }
    int rc = kvt_put(f->s, k, n, p, NULL, NULL);
    cr_assert_eq(rc, (int)n, "put_blocks: %d: %s", rc, kvt_last_error());
    free(buf);
    free(p);
    free(k);
}

/* 1 when block id reads back with exactly its bytes, 0 when absent. */
static int block_ok(fx *f, uint64_t id)
{
    uint8_t got[BLOCK], want[BLOCK];
    void *p[16];
    for (uint32_t g = 0; g < f->frags; g++)
        p[g] = got + g * (BLOCK / f->frags);
    kvt_key k = key_of(id);
    int32_t st;
    kvt_io_opts o = {.size = sizeof o, .status = &st};
    memset(got, 0xEE, sizeof got);
    int rc = kvt_get(f->s, &k, 1, p, &o, NULL);
    cr_assert(rc == 0 || rc == 1, "%s: get of block %llu: %s", f->what,
              (unsigned long long)id, kvt_last_error());
    if (rc == 0) {
        cr_assert_eq(st, KVT_ENOENT, "%s: block %llu: status %s", f->what,
                     (unsigned long long)id, kvt_error_name(st));
        return 0;
    }
    fill_pattern(want, BLOCK, id, 3);
    cr_assert(memcmp(got, want, BLOCK) == 0, "%s: block %llu: wrong bytes", f->what,
              (unsigned long long)id);
    return 1;
}

/* The store is usable: a fresh block goes in and comes back exact. */
static void round_trip(fx *f)
{
    uint64_t id = f->next_key++;
    put_blocks(f, &id, 1);
    cr_assert_eq(block_ok(f, id), 1, "%s: round trip after a failure lost the block", f->what);
}

/* ------------------------------------------------------------ the loop */

typedef struct outcome {
    long runs;       /* calls made */
    long met;        /* calls in which an allocation failed */
    long enomem;     /* ... that returned KVT_ENOMEM */
    long recovered;  /* ... that succeeded anyway (a fallback) */
    long allocs;     /* allocations of a call that met no failure (one-shot) */
} outcome;

/* op: makes the call (n is the iteration) and returns its result.
 * check: asserts the state after the call (failed says whether an
 * allocation failed in it). */
typedef int (*op_fn)(fx *f, long n);
typedef void (*check_fn)(fx *f, int rc, int failed);

static outcome loop(fx *f, const char *what, int sticky, op_fn op, check_fn check)
{
    outcome o = {0};
    f->what = what;
    for (long n = 1; n < MAX_N; n++) {
        long before = kvt__alloc_failures();
        kvt__alloc_fail_mode(n, sticky);
        int rc = op(f, n);
        kvt__alloc_fail_after(-1);
        long met = kvt__alloc_failures() - before;
        o.runs++;
        if (!met) {
            cr_assert(rc >= 0, "%s: with no allocation failing, got %s: %s", what,
                      kvt_error_name(rc), kvt_last_error());
            if (check)
                check(f, rc, 0);
            o.allocs = n - 1;
            break;
        }
        o.met++;
        cr_assert(rc >= 0 || rc == KVT_ENOMEM,
                  "%s: allocation %ld failed (%s): got %s (%s), not KVT_ENOMEM", what, n,
                  sticky ? "sticky" : "one-shot", kvt_error_name(rc), kvt_last_error());
        if (rc == KVT_ENOMEM)
            o.enomem++;
        else
            o.recovered++;
        if (check)
            check(f, rc, 1);
        if (f->s)
            round_trip(f);
    }
    cr_assert(o.runs < MAX_N - 1, "%s: never ran without a failure", what);
    fprintf(stderr,
            "alloc-faults: %-34s %-8s allocations %3ld, failing runs %3ld: KVT_ENOMEM %3ld, "
            "succeeded anyway %2ld; no crash, store usable after each\n",
            what, sticky ? "sticky" : "one-shot", o.allocs, o.met, o.enomem, o.recovered);
    return o;
}

static void both(fx *f, const char *what, op_fn op, check_fn check)
{
    loop(f, what, 0, op, check);
    loop(f, what, 1, op, check);
}

/* ------------------------------------------------------- configuration */

static int op_config_new(fx *f, long n)
{
    kvt_config *c = NULL;
    int rc = kvt_config_new(&c);
    if (rc == 0) {
        cr_assert_not_null(c);
        cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
        kvt_config_free(c);
    }
    return rc;
}

Test(alloc_faults, config_new)
{
    fx f = {0};
    both(&f, "kvt_config_new", op_config_new, NULL);
}

/* The string options, in the order tested. */
enum { STR_POLICY, STR_PATH, STR_FAULTS, STR_OPTIONS };
static const char *const str_names[STR_OPTIONS] = {"policy", "path", "faults"};

static const char *str_value(long n, int opt)
{
    static const char *const policies[] = {"lru", "sieve", "s3fifo", "prefix"};
    static char buf[64];
    if (opt == STR_POLICY)
        return policies[n % 4];
    snprintf(buf, sizeof buf, opt == STR_PATH ? "/nonexistent/p%ld.kvt" : "seed=%ld", n);
    return buf;
}

static char **str_slot(fx *f, int opt)
{
    kvt_tier_cfg *t = &f->cfg->tier[kvt_config_tier_find(f->cfg, "nvme")];
    if (opt == STR_PATH)
        for (uint32_t i = 0; i < t->nopts; i++)
            if (strcmp(t->opt[i].spec->name, "path") == 0)
                return &t->opt[i].s;
    return opt == STR_POLICY ? &t->policy : &t->faults;
}

static int str_opt;
static char str_before[128];

static int op_set_str(fx *f, long n)
{
    char **slot = str_slot(f, str_opt);
    snprintf(str_before, sizeof str_before, "%s", *slot ? *slot : "(null)");
    return kvt_config_tier_set_str(f->cfg, kvt_config_tier_find(f->cfg, "nvme"),
                                   str_names[str_opt], str_value(n, str_opt));
}

static void check_set_str(fx *f, int rc, int failed)
{
    char **slot = str_slot(f, str_opt);
    cr_assert_not_null(*slot);
    if (rc < 0) /* the old value stays */
        cr_assert_str_eq(*slot, str_before);
    else
        cr_assert_str_neq(*slot, "(null)");
}

Test(alloc_faults, config_set_strings)
{
#if !KVT_HAVE_URING
    cr_skip_test("built without io_uring: no NVMe tier to set strings on");
#endif
    fx f = {0};
    cr_assert_eq(kvt_config_new(&f.cfg), 0);
    cr_assert_eq(kvt_config_tier_set_str(f.cfg, kvt_test_tier(f.cfg, "nvme"), "policy", "lru"), 0);
    cr_assert_eq(kvt_config_tier_set_str(f.cfg, kvt_test_tier(f.cfg, "nvme"), "path", "/x"), 0);
    cr_assert_eq(kvt_config_tier_set_str(f.cfg, kvt_test_tier(f.cfg, "nvme"), "faults", "seed=1"), 0);
    static const char *const names[] = {[STR_POLICY] = "kvt_config_tier_set_str(policy)",
                                        [STR_PATH] = "kvt_config_tier_set_str(path)",
                                        [STR_FAULTS] = "kvt_config_tier_set_str(faults)"};
    for (str_opt = STR_POLICY; str_opt < STR_OPTIONS; str_opt++)
        both(&f, names[str_opt], op_set_str, check_set_str);
    kvt_config_free(f.cfg);
}

/* ---------------------------------------------------------------- open */

static int op_open(fx *f, long n)
{
    kvt_store *s = NULL;
    int rc = kvt_open(f->cfg, &s);
    if (rc == 0) {
        f->s = s; /* the check runs the round trip, then closes */
        f->cfg_opened = 1;
    } else {
        cr_assert_null(s, "a failed kvt_open set *out");
        /* not frozen by the failure: setters still work (unless an open that
         * did without an optional helper thread froze it earlier) */
        if (!f->cfg_opened)
            cr_assert_eq(kvt_config_set(f->cfg, KVT_OPT_WORKERS, 2), 0);
    }
    return rc;
}

static void check_open(fx *f, int rc, int failed)
{
    if (rc < 0)
        return;
    round_trip(f);
    for (size_t i = 0; i < f->npresent; i++) /* a warm store recovered everything */
        cr_assert_eq(block_ok(f, f->present[i]), 1, "%s: block %llu lost across the reopen",
                     f->what, (unsigned long long)f->present[i]);
    cr_assert_eq(kvt_close(f->s), 0);
    f->s = NULL;
    if (failed)
        return; /* opened without an optional helper pool: the loop goes on */
    kvt_config_free(f->cfg); /* frozen now; the next loop gets a fresh one */
    f->cfg = NULL;
}

/* Opens are the slow part of this file (threads, io_uring, recovery):
 * one worker and no copy helpers, and the sticky pass only where asked. */
static void open_loops(fx *f, const char *what, uint64_t dram, uint64_t nvme, const char *policy,
                       int with_sticky)
{
    for (int sticky = 0; sticky <= with_sticky; sticky++) {
        f->cfg = make_config(f, dram, nvme, 1, policy);
        f->cfg_opened = 0;
        cr_assert_eq(kvt_config_set(f->cfg, KVT_OPT_WORKERS, 1), 0);
        cr_assert_eq(kvt_config_set(f->cfg, KVT_OPT_COPY_THREADS, 1), 0);
        loop(f, what, sticky, op_open, check_open);
    }
}

Test(alloc_faults, open_dram)
{
    fx f = {0};
    open_loops(&f, "kvt_open(dram, prefix)", 64, 0, NULL, 1);
    open_loops(&f, "kvt_open(dram, lru)", 64, 0, "lru", 0);
    open_loops(&f, "kvt_open(dram, s3fifo)", 64, 0, "s3fifo", 0);
    open_loops(&f, "kvt_open(dram, sieve)", 64, 0, "sieve", 0);
}

#if KVT_HAVE_URING
Test(alloc_faults, open_dram_nvme)
{
    fx f = {0};
    nvme_path(&f, "open");
    open_loops(&f, "kvt_open(dram+nvme, new file)", 16, 64, NULL, 1);

    /* Warm: a file holding blocks, recovered at each open; after every
     * failed open the next one must still find them all. */
    fx w = {0};
    open_fixture(&w, 16, 64, 1);
    for (uint64_t i = 0; i < 40; i++)
        w.present[w.npresent++] = 500 + i;
    put_blocks(&w, w.present, w.npresent);
    cr_assert_eq(kvt_close(w.s), 0);
    kvt_config_free(w.cfg);
    /* What a clean reopen finds is what every later open must find: the
     * blocks on NVMe (those still only in DRAM at close are gone, by
     * design: DRAM is not persistent). */
    w.cfg = make_config(&w, 16, 64, 1, NULL);
    cr_assert_eq(kvt_open(w.cfg, &w.s), 0, "%s", kvt_last_error());
    size_t kept = 0;
    for (size_t i = 0; i < w.npresent; i++)
        if (block_ok(&w, w.present[i]))
            w.present[kept++] = w.present[i];
    fprintf(stderr, "alloc-faults: warm file: %zu of %zu blocks on NVMe after a clean reopen\n",
            kept, w.npresent);
    cr_assert_geq(kept, 24, "blocks demoted to NVMe were lost across a clean close");
    w.npresent = kept;
    cr_assert_eq(kvt_close(w.s), 0);
    w.s = NULL;
    kvt_config_free(w.cfg);
    w.cfg = NULL;
    open_loops(&w, "kvt_open(dram+nvme, warm file)", 16, 64, NULL, 0);
    unlink(w.path);
    unlink(f.path);
}
#endif

/* ------------------------------------------------------------ put, get */

typedef struct io_case {
    size_t n;   /* blocks per call */
    int async;  /* ticket + kvt_wait */
} io_case;

static io_case io_now;
static uint64_t io_ids[256];
static int io_status[256];

static int do_put(fx *f, const uint64_t *ids, size_t n, int async, int32_t *st)
{
    uint8_t *buf = malloc(n * BLOCK);
    void **p = malloc(n * f->frags * sizeof *p);
    kvt_key *k = malloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++) {
        k[i] = key_of(ids[i]);
        fill_pattern(buf + i * BLOCK, BLOCK, ids[i], 3);
        for (uint32_t g = 0; g < f->frags; g++)
            p[i * f->frags + g] = buf + i * BLOCK + g * (BLOCK / f->frags);
    }
    kvt_io_opts o = {.size = sizeof o, .status = st};
    kvt_ticket t;
    int rc = kvt_put(f->s, k, n, p, &o, async ? &t : NULL);
    if (async && rc == 0)
        rc = kvt_wait(f->s, t, -1);
    free(buf);
    free(p);
    free(k);
    return rc;
}

static int op_put(fx *f, long n)
{
    int32_t st[256];
    for (size_t i = 0; i < io_now.n; i++)
        io_ids[i] = f->next_key++;
    int rc = do_put(f, io_ids, io_now.n, io_now.async, st);
    for (size_t i = 0; i < io_now.n; i++)
        io_status[i] = st[i];
    return rc;
}

static void check_put(fx *f, int rc, int failed)
{
    if (rc == KVT_ENOMEM) { /* a failed put stores nothing */
        for (size_t i = 0; i < io_now.n; i++)
            cr_assert_eq(block_ok(f, io_ids[i]), 0, "%s: failed put stored block %zu", f->what, i);
        return;
    }
    cr_assert_eq(rc, (int)io_now.n, "%s: stored %d of %zu", f->what, rc, io_now.n);
    for (size_t i = 0; i < io_now.n; i++) {
        cr_assert_eq(io_status[i], 0);
        cr_assert_eq(block_ok(f, io_ids[i]), 1, "%s: block %zu of a put that succeeded is missing",
                     f->what, i);
    }
}

static void put_loops(uint64_t dram, uint64_t nvme, uint32_t frags, const char *tier)
{
    static const io_case cases[] = {{1, 0}, {8, 0}, {40, 0}, {8, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fx f = {0};
        open_fixture(&f, dram, nvme, frags);
        io_now = cases[c];
        char what[96];
        snprintf(what, sizeof what, "kvt_put(%s, %zu x %u frags, %s)", tier, io_now.n, frags,
                 io_now.async ? "async" : "sync");
        both(&f, what, op_put, check_put);
        close_fixture(&f);
    }
}

Test(alloc_faults, put_dram)
{
    put_loops(256, 0, 1, "dram");
    put_loops(256, 0, 4, "dram"); /* 40 x 4 fragments: a batch past the DRAM tier's stack */
}

#if KVT_HAVE_URING
Test(alloc_faults, put_dram_nvme)
{
    /* DRAM of 8 blocks: most puts demote DRAM blocks to NVMe. */
    put_loops(8, 256, 1, "dram+nvme");
}
#endif

static int op_get(fx *f, long n)
{
    size_t m = io_now.n;
    uint8_t *buf = malloc(m * BLOCK);
    void **p = malloc(m * f->frags * sizeof *p);
    kvt_key *k = malloc(m * sizeof *k);
    int32_t st[256];
    for (size_t i = 0; i < m; i++) {
        k[i] = key_of(f->present[i % f->npresent]);
        for (uint32_t g = 0; g < f->frags; g++)
            p[i * f->frags + g] = buf + i * BLOCK + g * (BLOCK / f->frags);
    }
    memset(buf, 0xEE, m * BLOCK);
    kvt_io_opts o = {.size = sizeof o, .status = st};
    kvt_ticket t;
    int rc = kvt_get(f->s, k, m, p, &o, io_now.async ? &t : NULL);
    if (io_now.async && rc == 0)
        rc = kvt_wait(f->s, t, -1);
    if (rc >= 0) {
        cr_assert_eq(rc, (int)m, "%s: got %d of %zu present blocks", f->what, rc, m);
        uint8_t want[BLOCK];
        for (size_t i = 0; i < m; i++) {
            cr_assert_eq(st[i], 0);
            fill_pattern(want, BLOCK, f->present[i % f->npresent], 3);
            cr_assert(memcmp(want, buf + i * BLOCK, BLOCK) == 0, "%s: wrong bytes", f->what);
        }
    }
    free(buf);
    free(p);
    free(k);
    return rc;
}

static void check_get(fx *f, int rc, int failed)
{
    for (size_t i = 0; i < f->npresent; i++) /* a failed get loses nothing */
        cr_assert_eq(block_ok(f, f->present[i]), 1, "%s: block %llu lost", f->what,
                     (unsigned long long)f->present[i]);
}

static void get_loops(uint64_t dram, uint64_t nvme, const char *tier)
{
    static const io_case cases[] = {{1, 0}, {16, 0}, {16, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fx f = {0};
        open_fixture(&f, dram, nvme, 1);
        for (uint64_t i = 0; i < 32; i++)
            f.present[f.npresent++] = 100 + i;
        put_blocks(&f, f.present, f.npresent);
        io_now = cases[c];
        char what[96];
        snprintf(what, sizeof what, "kvt_get(%s, %zu, %s)", tier, io_now.n,
                 io_now.async ? "async" : "sync");
        both(&f, what, op_get, check_get);
        close_fixture(&f);
    }
}

Test(alloc_faults, get_dram)
{
    get_loops(64, 0, "dram");
}

#if KVT_HAVE_URING
Test(alloc_faults, get_dram_nvme)
{
    /* DRAM of 8 blocks in front of 32 present ones: gets hit NVMe and promote. */
    get_loops(8, 128, "dram+nvme");
}
#endif

/* ----------------------------------------- calls that must not allocate */

static int op_lookup(fx *f, long n)
{
    kvt_key k[8];
    uint8_t tiers[8];
    for (int i = 0; i < 8; i++)
        k[i] = key_of(f->present[i]);
    int h = kvt_lookup(f->s, k, 8, tiers, 1000);
    if (h == 8)
        cr_assert_eq(kvt_release(f->s, k, 8, NULL), 8);
    return h;
}

static int op_pin(fx *f, long n)
{
    kvt_key k[4];
    for (int i = 0; i < 4; i++)
        k[i] = key_of(f->present[i]);
    int rc = kvt_pin(f->s, k, 4, 500);
    if (rc == 4)
        rc = kvt_release(f->s, k, 4, NULL);
    return rc;
}

static int op_remove_only(fx *f, long n)
{
    kvt_key k = key_of(f->present[f->npresent - 1]);
    int rc = kvt_remove(f->s, &k, 1);
    if (rc >= 0)
        f->npresent--;
    return rc;
}

static void stat_cb(const char *name, uint64_t v, void *user)
{
    (*(int *)user)++;
}

static int op_stats(fx *f, long n)
{
    int count = 0;
    int rc = kvt_stats(f->s, stat_cb, &count);
    uint64_t v;
    if (rc >= 0) /* the tiers' own statistics (nvme.*) count too */
        cr_assert(rc > 0 && count == rc, "kvt_stats returned %d, visited %d", rc, count);
    if (rc >= 0)
        rc = kvt_stat(f->s, "dram.used_blocks", &v);
    return rc;
}

static int op_expire(fx *f, long n)
{
    cr_assert_eq(kvt_clock_set(f->s, kvt_clock_now(f->s) + 1000000), 0);
    return kvt_expire(f->s);
}

static int op_keys(fx *f, long n)
{
    kvt_ns_field fld = {KVT_NS_MODEL, 5, "model"};
    kvt_key ns, out[4];
    char hex[33];
    uint32_t tok[64];
    for (int i = 0; i < 64; i++)
        tok[i] = (uint32_t)i;
    int rc = kvt_ns_key(&fld, 1, &ns);
    if (rc == 0)
        rc = kvt_key_chain(&ns, tok, 64, 16, out, 4);
    if (rc == 4)
        rc = kvt_key_hex(&out[3], hex);
    return rc;
}

static void no_allocation(fx *f, const char *what, op_fn op)
{
    outcome o = loop(f, what, 0, op, NULL);
    cr_assert_eq(o.met, 0, "%s allocated", what);
    cr_assert_eq(o.allocs, 0, "%s made %ld allocations", what, o.allocs);
}

Test(alloc_faults, calls_without_allocation)
{
    fx f = {0};
#if KVT_HAVE_URING
    open_fixture(&f, 8, 64, 1);
#else
    open_fixture(&f, 64, 0, 1);
#endif
    for (uint64_t i = 0; i < 24; i++)
        f.present[f.npresent++] = 300 + i;
    put_blocks(&f, f.present, f.npresent);
    no_allocation(&f, "kvt_lookup(lease) + kvt_release", op_lookup);
    no_allocation(&f, "kvt_pin + kvt_release", op_pin);
    no_allocation(&f, "kvt_stats + kvt_stat", op_stats);
    no_allocation(&f, "kvt_clock_set + kvt_expire", op_expire);
    no_allocation(&f, "kvt_ns_key + kvt_key_chain + hex", op_keys);
    no_allocation(&f, "kvt_remove", op_remove_only);
    round_trip(&f);
    close_fixture(&f);
}

/* kvt_close frees; it must not need memory to do so. */
Test(alloc_faults, close_under_sticky_failure)
{
    fx f = {0};
#if KVT_HAVE_URING
    open_fixture(&f, 8, 64, 1);
#else
    open_fixture(&f, 64, 0, 1);
#endif
    uint64_t ids[16];
    for (int i = 0; i < 16; i++)
        ids[i] = 700 + (uint64_t)i;
    put_blocks(&f, ids, 16);
    long before = kvt__alloc_failures();
    kvt__alloc_fail_mode(1, 1);
    int rc = kvt_close(f.s);
    kvt__alloc_fail_after(-1);
    f.s = NULL;
    cr_assert_eq(rc, 0, "kvt_close with every allocation failing: %s", kvt_error_name(rc));
    cr_assert_eq(kvt__alloc_failures(), before, "kvt_close allocated");
    close_fixture(&f);
}

/* The hook itself: counts, one-shot, sticky, off. */
Test(alloc_faults, hook)
{
    long before = kvt__alloc_failures();
    kvt__alloc_fail_after(3);
    void *a = kvt__malloc(8), *b = kvt__calloc(1, 8), *c = kvt__malloc(8), *d = kvt__malloc(8);
    kvt__alloc_fail_after(-1);
    cr_assert(a && b && !c && d);
    cr_assert_eq(kvt__alloc_failures() - before, 1);
    kvt__free(a);
    kvt__free(b);
    kvt__free(d);
    kvt__alloc_fail_mode(2, 1);
    char *s1 = kvt__strdup("x"), *s2 = kvt__strdup("y");
    void *r = kvt__realloc(NULL, 8), *al = kvt__aligned_alloc(64, 10);
    void *pm = NULL;
    int pmrc = kvt__posix_memalign(&pm, 64, 10);
    kvt__alloc_fail_after(-1);
    cr_assert(s1 && !s2 && !r && !al && pmrc != 0 && !pm);
    kvt__free(s1);
    void *ok = kvt__aligned_alloc(4096, 100);
    cr_assert_not_null(ok);
    cr_assert_eq((uintptr_t)ok % 4096, 0);
    kvt__free(ok);
}
#endif
