/* fuzz_api.c — target (b): a byte string decoded into a sequence of public API calls with arbitrary arguments. */
/*
 * Each input is a little program: one opcode byte, then that call's
 * arguments, read from the input as needed (a short input reads zeros).
 * Calls reach every exported function: config setters with arbitrary
 * values, open/close, put/get (sync and async) with arbitrary counts, NULL
 * arrays and NULL fragment pointers, status arrays or none, options of any
 * size, flags and memory kind; lookup/pin/release/remove/expire, the manual
 * clock, tickets (ours and made-up ones), stats, eventfd, the key functions.
 *
 * Invariants, checked after every call:
 *  - no crash, hang, leak or UB (the sanitizers);
 *  - a negative return is a KVT_E* code; counts stay within 0..n;
 *  - a call refused for its arguments wrote none of the caller's buffers;
 *  - a block read back equals a block that was put under that key: the
 *    target keeps a shadow map, key -> the contents ever put under it since
 *    the store last said it did not hold the key (contents are a function of
 *    the key and a variant number, so any mix-up or torn copy shows);
 *  - status arrays agree with the returned count; a missed block's
 *    destination is left unwritten.
 *
 * Resources are the target's to bound, not the library's to refuse: a store
 * whose configuration would take more than a few MiB, slots or threads is
 * not opened (the setters still see every value). NVMe files live in
 * $KVT_FUZZ_DIR (default: the current directory) and are removed after
 * each input; paths come from a fixed list, never from the input.
 */
#include "kvt_build_config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz.h"
#include "kvtier.h"
#include "../tier_kinds.h"

#define MAX_OPS 256
#define MAX_OPENS 8 /* kvt_open attempts per input */
#define MAX_N 64               /* blocks per call */
#define MAX_CALL_BYTES (8u << 20)
#define MAX_BLOCK (1u << 20)   /* a store with larger blocks is not opened */
#define MAX_TIER_BYTES (16u << 20)
#define MAX_NVME_BYTES (32u << 20)
#define MAX_SLOTS 65536u
#define MAX_INFLIGHT_OPEN 65536u
#define MAX_PENDING 32         /* async calls the target keeps in flight */
#define NKEYS 24               /* 16 fixed keys, 8 the input sets */
#define NVARIANTS 4
#define POISON 0xEE
#define SHADOW_MAX 64

/* Durability is not under test (see fuzz_recovery.c): fdatasync is free. */
int fdatasync(int fd)
{
    (void)fd;
    return 0;
}

/* ---------------------------------------------------------- input reader */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static bool rd_done(const rd *r)
{
    return r->p >= r->end;
}

static uint8_t u8(rd *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

static uint16_t u16(rd *r)
{
    return (uint16_t)(u8(r) | u8(r) << 8);
}

static uint32_t u32(rd *r)
{
    return (uint32_t)u16(r) | (uint32_t)u16(r) << 16;
}

static uint64_t u64(rd *r)
{
    return (uint64_t)u32(r) | (uint64_t)u32(r) << 32;
}

/* -------------------------------------------------------------- state */

typedef struct shadow_entry {
    kvt_key key;
    uint8_t mask;    /* bit v: variant v may be held under key */
    uint8_t durable; /* variants put while an NVMe tier was open: a later
                        store on the same file may recover them */
} shadow_entry;

typedef struct cfg_shadow {
    uint64_t bb;
    uint32_t frags, workers, copy, inflight, qd;
    uint64_t cap[KVT_MAX_TIERS];
    bool manual;
} cfg_shadow;

typedef struct pending {
    kvt_ticket ticket;
    int is_get;
    size_t n;
    kvt_key *keys;
    void **ptrs;
    uint8_t **blocks; /* per block: its fragments' memory (see bufs_*) */
    int32_t *status;
    unsigned layout;
} pending;

typedef struct state {
    kvt_config *cfg;
    cfg_shadow cs; /* what cfg holds, as far as the setters accepted it */
    kvt_store *store;
    kvt_store *stale; /* a closed store's address: only kvt_close may see it */
    uint64_t bb;      /* the open store's geometry */
    uint32_t frags;
    bool manual, nvme_faults, has_nvme;
    uint64_t manual_now;
    int opens;
    kvt_key keys[NKEYS];
    shadow_entry shadow[SHADOW_MAX];
    unsigned nshadow;
    pending pend[MAX_PENDING];
    unsigned npend;
    uint64_t fake_now; /* the clock the input may install */
    char stat_names[8][64];
    unsigned nstat_names;
} state;

static char dir_path[512], nvme_a[600], nvme_b[600], nvme_bad[600];
static bool trace_calls; /* KVT_FUZZ_TRACE=1: print every call's result (debugging an input) */

static uint64_t fake_clock(void *user)
{
    return ((state *)user)->fake_now;
}

/* --------------------------------------------------------- block bytes */

/* Byte i of variant v of the block stored under key k. */
static uint64_t content_seed(const kvt_key *k, unsigned v)
{
    return XXH3_64bits_withSeed(k->b, 16, v + 1);
}

static uint8_t content_byte(uint64_t seed, uint64_t j)
{
    return (uint8_t)((seed * (j / 8 + 1)) >> (8 * (j % 8))) ^ (uint8_t)(j >> 11);
}

static void content_fill(uint8_t *p, uint64_t off, uint64_t n, uint64_t seed)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = content_byte(seed, off + i);
}

static bool content_is(const uint8_t *p, uint64_t off, uint64_t n, uint64_t seed)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != content_byte(seed, off + i))
            return false;
    return true;
}

static shadow_entry *shadow_of(state *s, const kvt_key *k, bool make)
{
    for (unsigned i = 0; i < s->nshadow; i++)
        if (!memcmp(s->shadow[i].key.b, k->b, 16))
            return &s->shadow[i];
    if (!make)
        return NULL;
    FUZZ_CHECK(s->nshadow < SHADOW_MAX, "shadow map full");
    shadow_entry *e = &s->shadow[s->nshadow++];
    e->key = *k;
    e->mask = 0;
    return e;
}

/* The store said it does not hold k: forget its contents, unless an
 * asynchronous call still in flight may put one, or an NVMe file may give
 * it back to a later store. */
static void shadow_absent(state *s, const kvt_key *k)
{
    shadow_entry *e = shadow_of(s, k, false);
    if (e && s->npend == 0)
        e->mask = e->durable;
}

/* ------------------------------------------------------------- buffers */

/* The fragments of n blocks: ptrs[i * frags + f]. layout 0: a malloc per
 * fragment; 1: one malloc per block; 2: one 4096-aligned allocation per
 * block (the NVMe tier's direct path). */
typedef struct bufs {
    size_t n;
    uint32_t frags;
    uint64_t fs;
    unsigned layout;
    void **ptrs;
    uint8_t **blocks; /* layouts 1, 2: the block allocations */
} bufs;

static void bufs_alloc(bufs *b, size_t n, uint32_t frags, uint64_t bb, unsigned layout)
{
    b->n = n;
    b->frags = frags;
    b->fs = bb / frags;
    b->layout = layout % 3;
    b->ptrs = calloc(n * frags + 1, sizeof *b->ptrs);
    b->blocks = calloc(n + 1, sizeof *b->blocks);
    FUZZ_CHECK(b->ptrs && b->blocks, "calloc");
    for (size_t i = 0; i < n; i++) {
        if (b->layout == 0) {
            for (uint32_t f = 0; f < frags; f++)
                FUZZ_CHECK((b->ptrs[i * frags + f] = malloc(b->fs)) != NULL, "malloc");
            continue;
        }
        uint8_t *m = b->layout == 1 ? malloc(bb) : aligned_alloc(4096, (bb + 4095) / 4096 * 4096);
        FUZZ_CHECK(m != NULL, "malloc");
        b->blocks[i] = m;
        for (uint32_t f = 0; f < frags; f++)
            b->ptrs[i * frags + f] = m + f * b->fs;
    }
}

static void bufs_free(bufs *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->layout == 0)
            for (uint32_t f = 0; f < b->frags; f++)
                free(b->ptrs[i * b->frags + f]);
        else
            free(b->blocks[i]);
    }
    free(b->ptrs);
    free(b->blocks);
    memset(b, 0, sizeof *b);
}

static void *frag_ptr(const bufs *b, size_t i, uint32_t f)
{
    return b->layout == 0 ? b->ptrs[i * b->frags + f] : b->blocks[i] + f * b->fs;
}

static void block_fill(const bufs *b, size_t i, uint64_t seed)
{
    for (uint32_t f = 0; f < b->frags; f++)
        content_fill(frag_ptr(b, i, f), f * b->fs, b->fs, seed);
}

static void block_poison(const bufs *b, size_t i)
{
    for (uint32_t f = 0; f < b->frags; f++)
        memset(frag_ptr(b, i, f), POISON, b->fs);
}

static bool block_poisoned(const bufs *b, size_t i)
{
    for (uint32_t f = 0; f < b->frags; f++) {
        const uint8_t *p = frag_ptr(b, i, f);
        for (uint64_t j = 0; j < b->fs; j++)
            if (p[j] != POISON)
                return false;
    }
    return true;
}

static bool block_is(const bufs *b, size_t i, uint64_t seed)
{
    for (uint32_t f = 0; f < b->frags; f++)
        if (!content_is(frag_ptr(b, i, f), f * b->fs, b->fs, seed))
            return false;
    return true;
}

/* What a get left in block i: 1 a block put under keys[i], 0 untouched. */
static int check_block(state *s, const bufs *b, size_t i, const kvt_key *k, int32_t status,
                       bool have_status)
{
    if (block_poisoned(b, i)) {
        FUZZ_CHECK(!have_status || status != 0, "get block %zu: status 0, destination untouched",
                   i);
        return 0;
    }
    shadow_entry *e = shadow_of(s, k, false);
    for (unsigned v = 0; e && v < NVARIANTS; v++)
        if ((e->mask >> v & 1) && block_is(b, i, content_seed(k, v)))
            return 1;
    /* A large block that failed verification may leave the bytes read
     * (docs/nvme-format.md); only injected faults corrupt blocks here. */
    if (s->nvme_faults && (!have_status || status == KVT_ECORRUPT))
        return 0;
    FUZZ_FAIL("get block %zu (status %d): bytes that were never put under its key (mask %#x)", i,
              have_status ? status : 0, e ? e->mask : 0);
}

/* ------------------------------------------------------------- helpers */

static void check_rc(int rc, const char *what)
{
    if (trace_calls)
        fprintf(stderr, "  %s = %d%s%s\n", what, rc, rc < 0 ? " " : "", rc < 0 ? kvt_last_error() : "");
    FUZZ_CODE(rc, what);
    if (rc < 0)
        FUZZ_CHECK(kvt_last_error() != NULL, "%s: kvt_last_error() is NULL", what);
}

static int64_t value(rd *r, const state *s)
{
    static const int64_t interesting[] = {0, 1, -1, 2, 3, 7, 16, 64, 100, 255, 256, 4095, 4096,
                                          4097, 8192, 65535, 65536, 1 << 20, (1 << 20) + 1,
                                          1 << 24, (1 << 24) + 1, 1 << 30, (1 << 30) + 1,
                                          INT32_MAX, (int64_t)INT32_MAX + 1, UINT32_MAX,
                                          INT64_MAX, INT64_MIN, INT64_MAX / 1000000,
                                          INT64_MAX / 1000000 + 1};
    uint64_t bb = s->cs.bb ? s->cs.bb : 4096;
    switch (u8(r) % 8) {
    case 0:
        return (int64_t)u64(r);
    case 1:
        return u8(r);
    case 2:
        return interesting[u8(r) % (sizeof interesting / sizeof interesting[0])];
    case 3:
        return (int64_t)((u8(r) % 16 + 1) * bb);
    case 4: {
        uint64_t sb = 0;
        if (kvt_slot_bytes("nvme", bb, &sb) != 0)
            sb = 4096 + (bb + 4095) / 4096 * 4096;
        return (int64_t)((u8(r) % 8 + 1) * sb);
    }
    case 5:
        return -(int64_t)u8(r);
    case 6:
        return u16(r);
    default:
        return (int64_t)1 << (u8(r) % 63);
    }
}

/* A string from the input: up to 48 bytes, NUL-terminated. */
static void input_string(rd *r, char *out, size_t cap)
{
    size_t n = u8(r) % 49;
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)u8(r);
    out[n] = 0;
}

static kvt_key *key_at(state *s, uint8_t i)
{
    return &s->keys[i % NKEYS];
}

/* n keys (copied, so that the array may outlive the pool's changes). */
static kvt_key *pick_keys(state *s, rd *r, size_t n)
{
    kvt_key *k = malloc((n ? n : 1) * sizeof *k);
    FUZZ_CHECK(k != NULL, "malloc");
    for (size_t i = 0; i < n; i++)
        k[i] = *key_at(s, u8(r));
    return k;
}

static size_t pick_n(rd *r)
{
    uint8_t b = u8(r);
    return b & 0x80 ? b % (MAX_N + 1) : b % 9;
}

/* ------------------------------------------------------------- config */

/* The input names tiers by their place in this list (0..2), or by made-up
 * numbers; options by their place in fuzz_tier_opts. */
#define FUZZ_KINDS 3
static const char *const fuzz_kinds[FUZZ_KINDS] = {"hbm", "dram", "nvme"};
enum { FUZZ_NVME = 2 };
static const char *const fuzz_tier_opts[13] = {
    "no-such-option", "capacity", "ttl_ms", "victims", "admit", "admit_after", "numa_node",
    "queue_depth", "sqpoll", "recreate", "device", "hugepages", "no-such-option"};
static const char *const fuzz_tier_strs[4] = {"no-such-option", "policy", "path", "faults"};

/* The config's instance of input tier number `tier`, or a number that is
 * none (a made-up one, or a kind this build lacks). */
static int fuzz_tier(const kvt_config *cfg, uint32_t tier)
{
    if (tier < FUZZ_KINDS && cfg) {
        int t = kvt_config_tier_find(cfg, fuzz_kinds[tier]);
        return t >= 0 ? t : 200;
    }
    return (int)tier;
}

static void cfg_new(state *s)
{
    kvt_config_free(s->cfg);
    s->cfg = NULL;
    int rc = kvt_config_new(&s->cfg);
    FUZZ_CHECK(rc == 0 && s->cfg, "kvt_config_new = %d", rc);
    memset(&s->cs, 0, sizeof s->cs);
    s->cs.frags = 1;
    s->cs.workers = 2;
    s->cs.copy = 2;
    s->cs.inflight = 1024;
    s->cs.qd = 64;
    /* The tiers of the old fixed list, in its order, each left out until it
     * gets a capacity; those this build lacks ("hbm" without CUDA) refuse
     * to be added, and options set on them fail as on a missing instance. */
    for (int k = 0; k < FUZZ_KINDS; k++)
        (void)kvt_config_add_tier(s->cfg, fuzz_kinds[k], NULL);
}

static void op_config_set(state *s, rd *r)
{
    int opt = u8(r) % 10;
    int64_t v = value(r, s);
    int rc = kvt_config_set(s->cfg, (kvt_option)opt, v);
    check_rc(rc, "kvt_config_set");
    if (!s->cfg) {
        FUZZ_CHECK(rc == KVT_ENULL, "kvt_config_set(NULL) = %d", rc);
        return;
    }
    if (rc)
        return;
    switch (opt) {
    case KVT_OPT_BLOCK_BYTES:
        FUZZ_CHECK(v >= 1 && v <= (1 << 30), "block bytes %lld accepted", (long long)v);
        s->cs.bb = (uint64_t)v;
        break;
    case KVT_OPT_FRAGS:
        FUZZ_CHECK(v >= 1 && v <= 65536, "frags %lld accepted", (long long)v);
        s->cs.frags = (uint32_t)v;
        break;
    case KVT_OPT_WORKERS:
        FUZZ_CHECK(v >= 1 && v <= 64, "workers %lld accepted", (long long)v);
        s->cs.workers = (uint32_t)v;
        break;
    case KVT_OPT_COPY_THREADS:
        FUZZ_CHECK(v >= 1 && v <= 64, "copy threads %lld accepted", (long long)v);
        s->cs.copy = (uint32_t)v;
        break;
    case KVT_OPT_MAX_INFLIGHT:
        FUZZ_CHECK(v >= 1, "max inflight %lld accepted", (long long)v);
        s->cs.inflight = (uint32_t)v;
        break;
    case KVT_OPT_MANUAL_CLOCK:
        s->cs.manual = v == 1;
        break;
    case KVT_OPT_CLOSE_FLUSH_MS:
        FUZZ_CHECK(v >= 0 && v <= 86400000, "close flush ms %lld accepted", (long long)v);
        break;
    case KVT_OPT_BLOCK_TOKENS:
    case KVT_OPT_KEY_MODE:
        break;
    default:
        FUZZ_FAIL("kvt_config_set accepted unknown option %d", opt);
    }
}

static void op_config_tier(state *s, rd *r)
{
    uint32_t tier = u8(r);
    tier = tier < 0xF0 ? tier % 4 : tier; /* mostly real tiers, some made-up ones */
    int opt = u8(r) % 13;
    int64_t v = value(r, s);
    int rc = kvt_config_tier_set(s->cfg, fuzz_tier(s->cfg, tier), fuzz_tier_opts[opt], v);
    check_rc(rc, "kvt_config_tier_set");
    if (rc || !s->cfg)
        return;
    FUZZ_CHECK(tier < FUZZ_KINDS, "kvt_config_tier_set accepted tier %u", tier);
    FUZZ_CHECK(opt >= 1 && opt <= 11, "kvt_config_tier_set accepted option %d", opt);
    if (opt == 1)
        s->cs.cap[tier] = (uint64_t)v;
    if (opt == 7)
        s->cs.qd = (uint32_t)v;
}

static void op_config_str(state *s, rd *r)
{
    static const char *const policies[] = {"prefix", "lru", "s3fifo", "sieve", "", "LRU"};
    static const char *const faults[] = {"eio=0.1", "torn=0.5,seed=3", "nth=2:torn4k",
                                         "short=0.2,partial=0.3", "enospc=1", "nth=1:eio,nth=3:short",
                                         "torn512=1", "eio=0.5,torn=0.6", "seed=0x10,partial=1"};
    uint32_t tier = u8(r) % 4;
    int opt = u8(r) % 4;
    char buf[64];
    const char *v = buf;
    uint8_t how = u8(r) % 4;
    if (how == 0)
        v = NULL;
    else if (how == 1)
        input_string(r, buf, sizeof buf);
    else if (opt == 1)
        v = policies[u8(r) % 6];
    else if (opt == 3)
        v = faults[u8(r) % (sizeof faults / sizeof faults[0])];
    else {
        /* Paths come from this list only: never a path the input names. */
        const char *paths[] = {nvme_a, nvme_b, dir_path, nvme_bad, ""};
        v = paths[u8(r) % 5];
    }
    if (opt == 2 && how == 1)
        v = nvme_b; /* the input's string is not a path we may touch */
    int rc = kvt_config_tier_set_str(s->cfg, fuzz_tier(s->cfg, tier), fuzz_tier_strs[opt], v);
    check_rc(rc, "kvt_config_tier_set_str");
}

static void op_config_clock(state *s, rd *r)
{
    int rc = kvt_config_set_clock(s->cfg, u8(r) & 1 ? fake_clock : NULL, s);
    check_rc(rc, "kvt_config_set_clock");
}

/* ------------------------------------------------------------ open/close */

static void verify_pending(state *s, pending *p, int rc, bool known);

static void pending_drop(state *s, unsigned i)
{
    pending *p = &s->pend[i];
    bufs b = {.n = p->n, .frags = s->frags, .fs = s->bb / s->frags, .layout = p->layout,
              .ptrs = p->ptrs, .blocks = p->blocks};
    bufs_free(&b);
    free(p->keys);
    free(p->status);
    s->pend[i] = s->pend[--s->npend];
}

static void close_store(state *s)
{
    if (!s->store)
        return;
    int rc = kvt_close(s->store);
    FUZZ_CHECK(rc == 0, "kvt_close of an open store = %d", rc);
    /* Every queued call ran; results are gone with the store, but the
     * bytes got are still checked. */
    while (s->npend) {
        verify_pending(s, &s->pend[0], 0, false);
        pending_drop(s, 0);
    }
    s->stale = s->store;
    s->store = NULL;
}

/* Whether opening what cfg holds stays within the target's budget. */
static bool affordable(const state *s)
{
    const cfg_shadow *c = &s->cs;
    if (!c->bb || c->bb > MAX_BLOCK || c->inflight > MAX_INFLIGHT_OPEN || c->frags > c->bb)
        return c->bb == 0; /* block bytes unset: kvt_open refuses it cheaply */
    uint64_t slots = 0;
    for (int t = 0; t < KVT_MAX_TIERS; t++) {
        uint64_t cap = c->cap[t];
        if (cap > (t == FUZZ_NVME ? MAX_NVME_BYTES : MAX_TIER_BYTES))
            return false;
        slots += cap / c->bb;
    }
    if (slots > MAX_SLOTS)
        return false;
    /* NVMe staging: up to queue depth bounce buffers of a slot per ring. */
    return (uint64_t)c->qd * (c->bb + 8192) <= (64u << 20);
}

static void op_open(state *s, rd *r)
{
    uint8_t how = u8(r) % 8;
    if (how == 0) {
        kvt_store *x = NULL;
        int rc = kvt_open(NULL, &x);
        FUZZ_CHECK(rc == KVT_ENULL && !x, "kvt_open(NULL) = %d", rc);
        rc = kvt_open(s->cfg, NULL);
        FUZZ_CHECK(rc == KVT_ENULL, "kvt_open(cfg, NULL) = %d", rc);
        return;
    }
    if (s->store && how < 6)
        close_store(s);
    if (s->store || s->opens >= MAX_OPENS || !s->cfg || !affordable(s))
        return;
    s->opens++;
    kvt_store *st = NULL;
    int rc = kvt_open(s->cfg, &st);
    check_rc(rc, "kvt_open");
    if (rc) {
        FUZZ_CHECK(rc < 0, "kvt_open = %d", rc);
        return;
    }
    FUZZ_CHECK(st != NULL, "kvt_open succeeded without a store");
    s->store = st;
    if (s->stale == st)
        s->stale = NULL;
    s->bb = s->cs.bb;
    s->frags = s->cs.frags;
    s->manual = s->cs.manual;
    s->manual_now = 0;
    uint64_t v = 0;
    /* Injected faults (in any tier: lib/tier/faulty.c) may corrupt blocks on
     * purpose (see check_block). */
    s->nvme_faults = kvt_stat(st, "nvme.faults_injected", &v) == 0 ||
                     kvt_stat(st, "dram.faults_injected", &v) == 0 ||
                     kvt_stat(st, "hbm.faults_injected", &v) == 0;
    s->nstat_names = 0;
    s->has_nvme = kvt_test_tier_available(st, "nvme") == 1;
    /* The config is frozen now. */
    rc = kvt_config_set(s->cfg, KVT_OPT_WORKERS, 1);
    FUZZ_CHECK(rc == KVT_EFROZEN, "a setter on an opened config = %d", rc);
}

static void op_close(state *s, rd *r)
{
    switch (u8(r) % 4) {
    case 0:
        FUZZ_CHECK(kvt_close(NULL) == 0, "kvt_close(NULL)");
        break;
    case 1:
        if (s->stale && s->stale != s->store)
            FUZZ_CHECK(kvt_close(s->stale) == KVT_ECLOSED, "closing a closed store");
        break;
    default:
        close_store(s);
    }
}

/* ----------------------------------------------------------- put / get */

/* A caller's kvt_io_opts of a claimed size up to sizeof + 255: the library
 * reads every byte the size claims (kvtier.h, top), so they must exist. */
typedef union opts_buf {
    kvt_io_opts o;
    unsigned char bytes[sizeof(kvt_io_opts) + 256];
} opts_buf;

/* *tail_set: a byte past sizeof(kvt_io_opts), within size, is not zero. */
static void fill_opts(state *s, rd *r, opts_buf *ob, int32_t *status, kvt_key *parent,
                      bool *tail_set)
{
    kvt_io_opts *o = &ob->o;
    memset(ob, 0, sizeof *ob);
    uint8_t a = u8(r), b = u8(r);
    o->size = a & 1 ? sizeof *o : a & 2 ? u8(r) : (uint32_t)(sizeof *o + u8(r));
    /* From bits of `a` no other field uses, so older inputs decode as before. */
    *tail_set = o->size > sizeof *o && (a & 8);
    if (*tail_set)
        ob->bytes[sizeof *o + (a >> 4) % (o->size - sizeof *o)] = (uint8_t)(a | 1);
    o->mem_kind = b & 1 ? (b & 2 ? KVT_MEM_CUDA : u8(r)) : KVT_MEM_HOST;
    o->device = b & 4 ? (int32_t)u32(r) : 0;
    o->flags = b & 8 ? (b & 16 ? u32(r) : KVT_IO_NO_PROMOTE) : 0;
    /* Only values a caller may pass without a GPU: NULL, the legacy and
     * per-thread default streams. */
    o->stream = b & 32 ? (void *)(uintptr_t)(1 + (u8(r) & 1)) : NULL;
    o->retain_s = b & 64 ? u32(r) : 0;
    o->frags = b & 128 ? u8(r) % 3 == 0 ? s->frags + 1 : s->frags : 0;
    if (a & 4) {
        *parent = *key_at(s, u8(r));
        o->parent = parent;
    }
    o->status = status;
}

static void op_io(state *s, rd *r, bool is_get, bool async)
{
    uint8_t shape = u8(r);
    size_t n = pick_n(r);
    if (!s->store || !s->bb) {
        kvt_key k = s->keys[0];
        void *p = &k;
        kvt_ticket t;
        int rc = is_get ? kvt_get(s->store, &k, 1, &p, NULL, async ? &t : NULL)
                        : kvt_put(s->store, &k, 1, &p, NULL, async ? &t : NULL);
        FUZZ_CHECK(rc == KVT_ENULL, "data call on no store = %d", rc);
        return;
    }
    while (n && n * s->bb > MAX_CALL_BYTES)
        n--;
    while (n > 1 && n * s->frags > 4096)
        n--;
    if (async && s->npend == MAX_PENDING)
        async = false;
    kvt_key *keys = pick_keys(s, r, n);
    bufs b;
    uint8_t layout = u8(r);
    bufs_alloc(&b, n, s->frags, s->bb, s->frags > 256 && layout % 3 == 0 ? 1 : layout);
    uint8_t variant[MAX_N];
    for (size_t i = 0; i < n; i++) {
        variant[i] = u8(r) % NVARIANTS;
        if (is_get)
            block_poison(&b, i);
        else
            block_fill(&b, i, content_seed(&keys[i], variant[i]));
    }
    bool want_status = shape & 1, null_keys = shape & 2 && !(shape & 4),
         null_ptrs = shape & 4 && !(shape & 2), null_frag = (shape & 6) == 6,
         want_opts = shape & 8 || want_status;
    int32_t *status = want_status ? malloc((n ? n : 1) * sizeof *status) : NULL;
    if (status)
        for (size_t i = 0; i < n; i++)
            status[i] = 0x7777;
    /* The parent key lives only during the call (the header keeps no
     * pointer beyond it unless it says "kept"; parent is not). */
    kvt_key *parent = malloc(sizeof *parent);
    FUZZ_CHECK(parent != NULL, "malloc");
    opts_buf o;
    bool tail_set = false;
    if (want_opts)
        fill_opts(s, r, &o, status, parent, &tail_set);
    size_t null_at = 0;
    void *saved = NULL;
    if (null_frag && n) {
        null_at = (u8(r) % n) * s->frags + u8(r) % s->frags;
        saved = b.ptrs[null_at];
        b.ptrs[null_at] = NULL;
    }
    bool args_ok = n && !null_keys && !null_ptrs && !(null_frag && n);

    /* A put may store any variant it names, whatever it returns. */
    if (!is_get && args_ok)
        for (size_t i = 0; i < n; i++) {
            shadow_entry *e = shadow_of(s, &keys[i], true);
            e->mask |= (uint8_t)(1u << variant[i]);
            if (s->has_nvme)
                e->durable |= (uint8_t)(1u << variant[i]);
        }

    kvt_ticket ticket = 0;
    const kvt_key *kp = null_keys ? NULL : keys;
    void *const *pp = null_ptrs ? NULL : b.ptrs;
    const kvt_io_opts *op = want_opts ? &o.o : NULL;
    int rc = is_get ? kvt_get(s->store, kp, n, pp, op, async ? &ticket : NULL)
                    : kvt_put(s->store, kp, n, pp, op, async ? &ticket : NULL);
    check_rc(rc, is_get ? "kvt_get" : "kvt_put");
    free(parent);
    if (saved)
        b.ptrs[null_at] = saved;
    if (rc < 0 || !async) {
        if (rc < 0 && is_get)
            for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(block_poisoned(&b, i), "a refused get (%s) wrote block %zu",
                           kvt_error_name(rc), i);
        if (!args_ok)
            FUZZ_CHECK(rc == (null_keys || n ? KVT_ENULL : KVT_ESIZE),
                       "%s with bad arguments = %d", is_get ? "kvt_get" : "kvt_put", rc);
        else if (tail_set)
            FUZZ_CHECK(rc == KVT_ESIZE, "%s with opts->size %u and a non-zero byte past "
                       "the struct = %d", is_get ? "kvt_get" : "kvt_put", o.o.size, rc);
        if (rc >= 0) {
            FUZZ_CHECK(!async || rc == 0, "async call returned %d", rc);
            pending p = {.is_get = is_get, .n = n, .keys = keys, .ptrs = b.ptrs,
                         .blocks = b.blocks, .status = status, .layout = b.layout};
            verify_pending(s, &p, rc, true);
        }
        bufs_free(&b);
        free(keys);
        free(status);
        return;
    }
    FUZZ_CHECK(rc == 0 && ticket != 0, "async call = %d, ticket %llu", rc,
               (unsigned long long)ticket);
    pending *p = &s->pend[s->npend++];
    *p = (pending){.ticket = ticket, .is_get = is_get, .n = n, .keys = keys, .ptrs = b.ptrs,
                   .blocks = b.blocks, .status = status, .layout = b.layout};
}

/* Checks a finished put/get: rc its result (known: rc is the real one). */
static void verify_pending(state *s, pending *p, int rc, bool known)
{
    bufs b = {.n = p->n, .frags = s->frags, .fs = s->bb / s->frags, .layout = p->layout,
              .ptrs = p->ptrs, .blocks = p->blocks};
    if (known) {
        FUZZ_CODE(rc, "put/get result");
        if (rc < 0)
            return;
        FUZZ_CHECK((size_t)rc <= p->n, "%s returned %d for %zu blocks", p->is_get ? "get" : "put",
                   rc, p->n);
    }
    size_t ok = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->status)
            FUZZ_CODE(p->status[i], "status entry");
        if (p->status && known)
            FUZZ_CHECK(p->status[i] <= 0, "status[%zu] = %d", i, p->status[i]);
        ok += p->status && p->status[i] == 0;
        if (!p->is_get)
            continue;
        if (b.ptrs[i * s->frags] == NULL)
            continue;
        int got = check_block(s, &b, i, &p->keys[i], p->status ? p->status[i] : 0,
                              p->status != NULL && known);
        if (p->status && known && p->status[i] == KVT_ENOENT) {
            FUZZ_CHECK(!got, "block %zu: ENOENT, but its destination was written", i);
            shadow_absent(s, &p->keys[i]);
        }
    }
    if (p->status && known)
        FUZZ_CHECK(ok == (size_t)rc, "%s returned %d, status says %zu ok",
                   p->is_get ? "get" : "put", rc, ok);
}

static void op_wait(state *s, rd *r)
{
    uint8_t how = u8(r);
    int timeout = how & 1 ? 0 : how & 2 ? (int)(u8(r) % 20) : -1;
    kvt_ticket t;
    int known = -1;
    if (s->npend && !(how & 4)) {
        known = u8(r) % s->npend;
        t = s->pend[known].ticket;
    } else {
        t = how & 8 ? u64(r) : u8(r);
        for (unsigned i = 0; i < s->npend; i++)
            if (s->pend[i].ticket == t)
                known = (int)i;
        if (known < 0 && timeout < 0)
            timeout = 0; /* a made-up ticket that happens to be live could block */
    }
    bool poll = how & 16;
    int rc = poll ? kvt_poll(s->store, t) : kvt_wait(s->store, t, timeout);
    check_rc(rc, poll ? "kvt_poll" : "kvt_wait");
    if (!s->store) {
        FUZZ_CHECK(rc == KVT_ENULL, "wait on no store = %d", rc);
        return;
    }
    if (known < 0) {
        FUZZ_CHECK(rc == KVT_ETICKET, "a ticket never issued (%llu) = %d",
                   (unsigned long long)t, rc);
        return;
    }
    if (rc == (poll ? KVT_EINPROGRESS : KVT_ETIMEDOUT)) {
        FUZZ_CHECK(timeout >= 0 || poll, "wait forever timed out");
        return;
    }
    FUZZ_CHECK(rc != KVT_ETICKET, "a live ticket is unknown");
    verify_pending(s, &s->pend[known], rc, true);
    pending_drop(s, (unsigned)known);
    /* Consumed: a second wait must not find it. */
    FUZZ_CHECK(kvt_poll(s->store, t) == KVT_ETICKET, "a consumed ticket is still known");
}

/* ------------------------------------------------- lookup, pin, remove */

static void op_keys_call(state *s, rd *r, int which)
{
    size_t n = pick_n(r);
    uint8_t shape = u8(r);
    kvt_key *keys = pick_keys(s, r, n);
    uint32_t lease = shape & 1 ? u32(r) : shape & 2 ? u8(r) : 0;
    const kvt_key *kp = shape & 4 && !(shape & 8) ? NULL : keys;
    uint8_t *tiers = shape & 16 ? malloc(n ? n : 1) : NULL;
    int32_t *status = shape & 32 ? malloc((n ? n : 1) * sizeof *status) : NULL;
    if (tiers)
        memset(tiers, 0x77, n ? n : 1);
    int rc;
    const char *name;
    if (which < 2 && (shape & 64)) { /* kvt_contains, kvt_touch: every key on its own */
        name = which == 0 ? "kvt_contains" : "kvt_touch";
        rc = which == 0 ? kvt_contains(s->store, kp, n, tiers) : kvt_touch(s->store, kp, n);
        check_rc(rc, name);
        if (!s->store)
            FUZZ_CHECK(rc == KVT_ENULL, "%s on no store = %d", name, rc);
        else if (!kp)
            FUZZ_CHECK(rc == KVT_ENULL, "%s(keys NULL) = %d", name, rc);
        else if (!n)
            FUZZ_CHECK(rc == KVT_ESIZE, "%s(n 0) = %d", name, rc);
        if (rc >= 0) {
            FUZZ_CHECK((size_t)rc <= n, "%s returned %d for %zu keys", name, rc, n);
            size_t held = 0;
            for (size_t i = 0; which == 0 && tiers && i < n; i++) {
                FUZZ_CHECK(tiers[i] < KVT_MAX_TIERS || tiers[i] == KVT_TIER_NONE,
                           "contains: tiers[%zu] = %u", i, tiers[i]);
                held += tiers[i] != KVT_TIER_NONE;
                if (tiers[i] == KVT_TIER_NONE)
                    shadow_absent(s, &keys[i]);
            }
            FUZZ_CHECK(which != 0 || !tiers || held == (size_t)rc,
                       "kvt_contains returned %d, tiers say %zu", rc, held);
        }
        free(keys);
        free(tiers);
        free(status);
        return;
    }
    switch (which) {
    case 0:
        name = "kvt_lookup";
        rc = kvt_lookup(s->store, kp, n, tiers, lease);
        break;
    case 1:
        name = "kvt_pin";
        rc = kvt_pin(s->store, kp, n, lease);
        break;
    case 2:
        name = "kvt_release";
        rc = kvt_release(s->store, kp, n, status);
        break;
    default:
        if (shape & 64) { /* kvt_flush: those keys, or everything (keys NULL, n 0) */
            name = "kvt_flush";
            rc = kvt_flush(s->store, shape & 128 ? NULL : kp, shape & 128 ? 0 : n, status);
            check_rc(rc, name);
            if (!s->store)
                FUZZ_CHECK(rc == KVT_ENULL, "%s on no store = %d", name, rc);
            else if (!(shape & 128) && !kp)
                FUZZ_CHECK(rc == KVT_ENULL || rc == KVT_ENOTSUP, "%s(keys NULL, n) = %d", name, rc);
            else if (!(shape & 128) && !n)
                FUZZ_CHECK(rc == KVT_ESIZE || rc == KVT_ENOTSUP, "%s(n 0) = %d", name, rc);
            if (rc >= 0 && !(shape & 128)) {
                FUZZ_CHECK((size_t)rc <= n, "%s returned %d for %zu keys", name, rc, n);
                size_t ok = 0;
                for (size_t i = 0; status && i < n; i++) {
                    FUZZ_CHECK(status[i] == 0 || status[i] == KVT_ENOENT || status[i] == KVT_EFULL ||
                                   status[i] == KVT_EIO || status[i] == KVT_ENOSPC,
                               "flush status %d", status[i]);
                    ok += status[i] == 0;
                }
                FUZZ_CHECK(!status || ok == (size_t)rc, "kvt_flush returned %d, status says %zu", rc,
                           ok);
            }
            free(keys);
            free(tiers);
            free(status);
            return;
        }
        if ((shape & 128) && (shape & 8)) { /* kvt_clear: every key */
            name = "kvt_clear";
            rc = kvt_clear(s->store);
            check_rc(rc, name);
            if (!s->store)
                FUZZ_CHECK(rc == KVT_ENULL, "%s on no store = %d", name, rc);
            if (rc >= 0)
                for (unsigned i = 0; i < s->nshadow; i++)
                    shadow_absent(s, &s->shadow[i].key);
            free(keys);
            free(tiers);
            free(status);
            return;
        }
        name = "kvt_remove";
        rc = kvt_remove(s->store, kp, n);
        break;
    }
    check_rc(rc, name);
    if (!s->store)
        FUZZ_CHECK(rc == KVT_ENULL, "%s on no store = %d", name, rc);
    else if (!kp)
        FUZZ_CHECK(rc == KVT_ENULL, "%s(keys NULL) = %d", name, rc);
    else if (!n)
        FUZZ_CHECK(rc == KVT_ESIZE, "%s(n 0) = %d", name, rc);
    if (rc >= 0) {
        FUZZ_CHECK((size_t)rc <= n, "%s returned %d for %zu keys", name, rc, n);
        if (which == 0) {
            for (size_t i = 0; tiers && i < n; i++)
                FUZZ_CHECK(i < (size_t)rc ? tiers[i] < KVT_MAX_TIERS : tiers[i] == KVT_TIER_NONE,
                           "lookup hit %d: tiers[%zu] = %u", rc, i, tiers[i]);
            if ((size_t)rc < n && lease == 0)
                shadow_absent(s, &keys[rc]);
        } else if (which == 1) {
            FUZZ_CHECK((size_t)rc == n, "kvt_pin returned %d for %zu keys", rc, n);
        } else if (which == 2 && status) {
            size_t ok = 0;
            for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(status[i] == 0 || status[i] == KVT_ENOTPINNED, "release status %d",
                           status[i]);
                ok += status[i] == 0;
            }
            FUZZ_CHECK(ok == (size_t)rc, "kvt_release returned %d, status says %zu", rc, ok);
        } else if (which == 3) {
            for (size_t i = 0; i < n; i++)
                shadow_absent(s, &keys[i]);
        }
    }
    free(keys);
    free(tiers);
    free(status);
}

/* ---------------------------------------------------- clock, stats, misc */

static void op_clock(state *s, rd *r)
{
    uint8_t how = u8(r);
    if (how & 1) {
        uint64_t now = kvt_clock_now(s->store);
        if (!s->store)
            FUZZ_CHECK(now == 0, "kvt_clock_now(NULL) = %llu", (unsigned long long)now);
        else if (s->manual)
            FUZZ_CHECK(now == s->manual_now, "manual clock reads %llu, set to %llu",
                       (unsigned long long)now, (unsigned long long)s->manual_now);
        return;
    }
    if (how & 2) {
        s->fake_now += how & 4 ? u64(r) >> 8 : (uint64_t)u16(r) * 1000000ull;
        return;
    }
    uint64_t to = how & 4 ? u64(r) : s->manual_now + (uint64_t)u16(r) * (how & 8 ? 1000000000ull : 1000000ull);
    int rc = kvt_clock_set(s->store, to);
    check_rc(rc, "kvt_clock_set");
    if (!s->store)
        FUZZ_CHECK(rc == KVT_ENULL, "kvt_clock_set(NULL) = %d", rc);
    else if (!s->manual)
        FUZZ_CHECK(rc == KVT_ENOTSUP, "kvt_clock_set without a manual clock = %d", rc);
    else if (to < s->manual_now)
        FUZZ_CHECK(rc == KVT_EINVAL, "the clock went back: %d", rc);
    else {
        FUZZ_CHECK(rc == 0, "kvt_clock_set forward = %d", rc);
        s->manual_now = to;
    }
}

typedef struct stat_visit {
    state *s;
    int calls;
} stat_visit;

static void visit(const char *name, uint64_t value, void *user)
{
    stat_visit *v = user;
    (void)value;
    FUZZ_CHECK(name && *name && strlen(name) < 64, "a statistic with a bad name");
    v->calls++;
    state *s = v->s;
    if (s->nstat_names < 8 && (v->calls * 7) % 5 == 0)
        snprintf(s->stat_names[s->nstat_names++], sizeof s->stat_names[0], "%s", name);
}

static void op_stats(state *s, rd *r)
{
    uint8_t how = u8(r);
    if (how & 1) {
        stat_visit v = {.s = s};
        int rc = kvt_stats(s->store, how & 2 ? NULL : visit, &v);
        check_rc(rc, "kvt_stats");
        if (s->store && !(how & 2))
            FUZZ_CHECK(rc == v.calls, "kvt_stats returned %d after %d visits", rc, v.calls);
        return;
    }
    char buf[64];
    const char *name = buf;
    if (how & 2 && s->nstat_names)
        name = s->stat_names[u8(r) % s->nstat_names];
    else if (how & 4)
        name = NULL;
    else
        input_string(r, buf, sizeof buf);
    uint64_t value = 0;
    int rc = kvt_stat(s->store, name, how & 8 ? NULL : &value);
    check_rc(rc, "kvt_stat");
    if (s->store && name && !(how & 8) && name != buf)
        FUZZ_CHECK(rc == 0, "kvt_stat(%s), a name kvt_stats visited = %d", name, rc);
}

static void op_misc(state *s, rd *r)
{
    uint8_t how = u8(r) % 10;
    int rc;
    switch (how) {
    case 0:
        rc = kvt_expire(s->store);
        check_rc(rc, "kvt_expire");
        break;
    case 1: {
        rc = kvt_eventfd(s->store);
        check_rc(rc, "kvt_eventfd");
        if (rc >= 0) {
            uint64_t c;
            ssize_t n = read(rc, &c, sizeof c); /* resets it; EAGAIN when nothing completed */
            (void)n;
        }
        break;
    }
    case 2:
        rc = kvt_store_tier_available(s->store, (int)(u8(r) & 0x80 ? u32(r) : u8(r) % 4));
        check_rc(rc, "kvt_store_tier_available");
        FUZZ_CHECK(rc <= 1, "kvt_store_tier_available = %d", rc);
        break;
    case 3: {
        int code = u8(r) & 1 ? (int)u32(r) : -(int)(u8(r) % 40);
        FUZZ_CHECK(kvt_strerror(code) != NULL, "kvt_strerror(%d) is NULL", code);
        const char *nm = kvt_error_name(code);
        FUZZ_CHECK(!nm || (code <= 0 && code >= -30), "kvt_error_name(%d) = %s", code, nm);
        FUZZ_CHECK(kvt_version() == KVT_VERSION_NUMBER && kvt_version_string(), "version");
        break;
    }
    case 4: {
        uint64_t bb = (uint64_t)value(r, s), out = 0;
        rc = kvt_slot_bytes("nvme", bb, u8(r) & 1 ? NULL : &out);
        check_rc(rc, "kvt_slot_bytes");
        if (rc == 0)
            FUZZ_CHECK(out >= bb + 512 && out % 512 == 0, "slot bytes %llu for %llu",
                       (unsigned long long)out, (unsigned long long)bb);
        break;
    }
    case 5: { /* kvt_ns_key: up to 4 fields of input bytes */
        kvt_ns_field f[4];
        uint8_t data[4][32];
        size_t n = u8(r) % 5;
        for (size_t i = 0; i < n; i++) {
            f[i].tag = u8(r) & 0x80 ? u32(r) : u8(r);
            f[i].len = u8(r) % 33;
            for (uint32_t j = 0; j < f[i].len; j++)
                data[i][j] = u8(r);
            f[i].data = f[i].len || u8(r) & 1 ? data[i] : NULL;
        }
        kvt_key out;
        uint8_t m = u8(r);
        uint8_t secret[80];
        size_t slen = m & 2 ? u8(r) % 80 : 0;
        for (size_t i = 0; i < slen; i++)
            secret[i] = u8(r);
        rc = m & 1 ? kvt_ns_key_mode(m >> 6, m & 4 ? NULL : secret, slen, n ? f : NULL, n,
                                     m & 8 ? NULL : &out)
                   : kvt_ns_key(m & 16 && !n ? NULL : f, n, m & 8 ? NULL : &out);
        check_rc(rc, "kvt_ns_key");
        if (rc == 0 && !(m & 8) && u8(r) & 1) { /* a namespace made here joins the pool */
            *key_at(s, (uint8_t)(16 + u8(r) % 8)) = out;
        }
        break;
    }
    case 6: { /* kvt_key_chain */
        uint32_t tok[64];
        size_t nt = u8(r) % 65;
        for (size_t i = 0; i < nt; i++)
            tok[i] = u8(r) & 1 ? u32(r) : u8(r);
        uint32_t bt = u8(r) & 1 ? u32(r) : u8(r) % 9;
        kvt_key out[64];
        size_t cap = u8(r) % 65;
        uint8_t m = u8(r);
        const kvt_key *parent = m & 1 ? NULL : key_at(s, u8(r));
        uint8_t secret[64];
        size_t slen = m & 2 ? 16 + u8(r) % 49 : 0;
        memset(secret, 0x5a, sizeof secret);
        rc = m & 4 ? kvt_key_chain_mode(m >> 7, secret, slen, parent, tok, nt, bt, out, cap)
                   : kvt_key_chain(parent, m & 8 ? NULL : tok, nt, bt, out, cap);
        check_rc(rc, "kvt_key_chain");
        if (rc >= 0) {
            FUZZ_CHECK(bt && (size_t)rc == nt / bt && (size_t)rc <= cap, "chain of %zu/%u = %d",
                       nt, bt, rc);
            if (rc && u8(r) & 1)
                *key_at(s, (uint8_t)(16 + u8(r) % 8)) = out[u8(r) % rc];
        }
        break;
    }
    case 7: {
        char hex[33];
        memset(hex, 'x', sizeof hex);
        rc = kvt_key_hex(u8(r) & 1 ? NULL : key_at(s, u8(r)), hex);
        check_rc(rc, "kvt_key_hex");
        if (rc == 0)
            FUZZ_CHECK(strlen(hex) == 32 && strspn(hex, "0123456789abcdef") == 32, "hex %s", hex);
        break;
    }
    case 8: { /* a key of raw input bytes */
        kvt_key *k = key_at(s, (uint8_t)(16 + u8(r) % 8));
        for (int i = 0; i < 16; i++)
            k->b[i] = u8(r);
        break;
    }
    default: /* a fresh config (the old one may still back nothing: freeing is fine) */
        if (u8(r) & 1) {
            kvt_config_free(s->cfg);
            s->cfg = NULL;
        } else {
            cfg_new(s);
        }
        break;
    }
}

/* ------------------------------------------------------------- driver */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *d = kvt_fuzz_dir();
    const char *t = getenv("KVT_FUZZ_TRACE");
    trace_calls = t && *t == '1';
    snprintf(dir_path, sizeof dir_path, "%s", d);
    snprintf(nvme_a, sizeof nvme_a, "%s/fuzz-api-%d-a.kvt", d, (int)getpid());
    snprintf(nvme_b, sizeof nvme_b, "%s/fuzz-api-%d-b.kvt", d, (int)getpid());
    snprintf(nvme_bad, sizeof nvme_bad, "%s/fuzz-api-%d-no-such-dir/x.kvt", d, (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir_path[0])
        LLVMFuzzerInitialize(NULL, NULL);
    static state s; /* large; static, reset per input */
    memset(&s, 0, sizeof s);
    for (unsigned i = 0; i < NKEYS; i++) {
        uint64_t a = XXH3_64bits_withSeed(&i, sizeof i, 1), b = XXH3_64bits_withSeed(&i, sizeof i, 2);
        memcpy(s.keys[i].b, &a, 8);
        memcpy(s.keys[i].b + 8, &b, 8);
    }
    s.fake_now = 1000000000ull;
    unlink(nvme_a);
    unlink(nvme_b);
    cfg_new(&s);
    rd r = {data, data + size};
    for (int ops = 0; ops < MAX_OPS && !rd_done(&r); ops++) {
        switch (u8(&r) % 20) {
        case 0:
        case 1:
            op_config_set(&s, &r);
            break;
        case 2:
        case 3:
            op_config_tier(&s, &r);
            break;
        case 4:
            op_config_str(&s, &r);
            break;
        case 5:
            op_config_clock(&s, &r);
            break;
        case 6:
            op_open(&s, &r);
            break;
        case 7:
            op_close(&s, &r);
            break;
        case 8:
        case 9:
            op_io(&s, &r, false, u8(&r) & 1);
            break;
        case 10:
        case 11:
            op_io(&s, &r, true, u8(&r) & 1);
            break;
        case 12:
            op_wait(&s, &r);
            break;
        case 13:
        case 14:
            op_keys_call(&s, &r, u8(&r) % 4);
            break;
        case 15:
            op_clock(&s, &r);
            break;
        case 16:
            op_stats(&s, &r);
            break;
        default:
            op_misc(&s, &r);
            break;
        }
    }
    close_store(&s);
    kvt_config_free(s.cfg);
    unlink(nvme_a);
    unlink(nvme_b);
    return 0;
}
