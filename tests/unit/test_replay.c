/* test_replay.c — the Mooncake conversation trace through the library (LRU, DRAM, manual clock) against an independent LRU written here, request by request. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtier.h"

/* Tiny blocks: the bytes are real but only the hit counts are under test. */
#define BLOCK 16
#define NONE UINT32_MAX

typedef struct req {
    uint64_t t_ms;
    uint32_t n;
    uint32_t *id;
} req;

typedef struct trace {
    req *r;
    size_t nreq;
    uint32_t maxid;
} trace;

/* Mooncake JSONL, read here without the bench's reader: "timestamp" and
 * "hash_ids" of each line. Returns 0, or -1 when the file is absent. */
static int load(trace *t, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    memset(t, 0, sizeof *t);
    size_t cap = 0, linecap = 0;
    char *line = NULL;
    while (getline(&line, &linecap, f) > 0) {
        char *ts = strstr(line, "\"timestamp\""), *ids = strstr(line, "\"hash_ids\"");
        if (!ts || !ids || !(ts = strchr(ts, ':')) || !(ids = strchr(ids, '[')))
            continue;
        if (t->nreq == cap) {
            cap = cap ? 2 * cap : 16384;
            t->r = realloc(t->r, cap * sizeof *t->r);
            cr_assert(t->r);
        }
        req *q = &t->r[t->nreq++];
        q->t_ms = strtoull(ts + 1, NULL, 10);
        q->n = 0;
        q->id = malloc((strlen(ids) / 2 + 1) * sizeof *q->id); /* an id takes a digit and a comma */
        cr_assert(q->id);
        for (char *p = ids + 1;;) {
            while (*p == ' ' || *p == ',')
                p++;
            if (*p < '0' || *p > '9')
                break;
            uint32_t v = (uint32_t)strtoul(p, &p, 10);
            q->id[q->n++] = v;
            if (v > t->maxid)
                t->maxid = v;
        }
    }
    free(line);
    fclose(f);
    return 0;
}

static void unload(trace *t)
{
    for (size_t i = 0; i < t->nreq; i++)
        free(t->r[i].id);
    free(t->r);
}

/* ---------------------------------------------------- the reference LRU */

/* An LRU of hash ids with an idle TTL, as docs/bench.md states the replay:
 * expire idle blocks, h = leading ids held, ids 0..h-1 used (to the front),
 * ids h..n-1 added in order (an id still held is left alone), the least
 * recently used one leaving when full. The list runs from most to least
 * recently used, so stamps fall along it and expiry pops from the tail. */
typedef struct lru {
    uint32_t *prev, *next;
    uint64_t *stamp;
    uint8_t *in;
    uint32_t head, tail, size, cap;
} lru;

static void unlink_id(lru *l, uint32_t x)
{
    if (l->prev[x] != NONE)
        l->next[l->prev[x]] = l->next[x];
    else
        l->head = l->next[x];
    if (l->next[x] != NONE)
        l->prev[l->next[x]] = l->prev[x];
    else
        l->tail = l->prev[x];
}

static void to_front(lru *l, uint32_t x, uint64_t now)
{
    l->prev[x] = NONE;
    l->next[x] = l->head;
    if (l->head != NONE)
        l->prev[l->head] = x;
    l->head = x;
    if (l->tail == NONE)
        l->tail = x;
    l->stamp[x] = now;
}

static void drop(lru *l, uint32_t x)
{
    unlink_id(l, x);
    l->in[x] = 0;
    l->size--;
}

static uint64_t reference(const trace *t, uint32_t cap, uint64_t ttl_ms, uint32_t *h_out)
{
    size_t n = (size_t)t->maxid + 1;
    lru l = {.prev = malloc(n * 4), .next = malloc(n * 4), .stamp = malloc(n * 8),
             .in = calloc(n, 1), .head = NONE, .tail = NONE, .cap = cap};
    cr_assert(l.prev && l.next && l.stamp && l.in);
    uint64_t hits = 0;
    for (size_t r = 0; r < t->nreq; r++) {
        const req *q = &t->r[r];
        while (ttl_ms && l.tail != NONE && q->t_ms - l.stamp[l.tail] > ttl_ms)
            drop(&l, l.tail);
        uint32_t h = 0;
        while (h < q->n && l.in[q->id[h]])
            h++;
        for (uint32_t i = 0; i < h; i++) {
            unlink_id(&l, q->id[i]);
            to_front(&l, q->id[i], q->t_ms);
        }
        for (uint32_t i = h; i < q->n; i++) {
            uint32_t x = q->id[i];
            if (l.in[x])
                continue;
            if (l.size == l.cap)
                drop(&l, l.tail);
            to_front(&l, x, q->t_ms);
            l.in[x] = 1;
            l.size++;
        }
        h_out[r] = h;
        hits += h;
    }
    free(l.prev);
    free(l.next);
    free(l.stamp);
    free(l.in);
    return hits;
}

/* ------------------------------------------------------ the library side */

static uint64_t through_store(const trace *t, uint32_t cap, uint64_t ttl_ms, uint32_t *h_out)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1), 0);
    cr_assert_eq(kvt_config_set_tier(c, KVT_TIER_DRAM, KVT_TOPT_CAPACITY, (int64_t)cap * BLOCK), 0);
    cr_assert_eq(kvt_config_set_tier(c, KVT_TIER_DRAM, KVT_TOPT_TTL_MS, (int64_t)ttl_ms), 0);
    cr_assert_eq(kvt_config_set_tier(c, KVT_TIER_DRAM, KVT_TOPT_HUGEPAGES, 0), 0);
    cr_assert_eq(kvt_config_set_tier_str(c, KVT_TIER_DRAM, KVT_TSTR_POLICY, "lru"), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "open: %s", kvt_last_error());
    kvt_config_free(c);

    /* One key per hash id: the id as a one-token block under an empty
     * namespace (Mooncake ids already name whole prefixes). */
    size_t nid = (size_t)t->maxid + 1, maxn = 0;
    kvt_key *key = malloc(nid * sizeof *key), ns;
    cr_assert(key);
    cr_assert_eq(kvt_ns_key(NULL, 0, &ns), 0);
    for (uint32_t i = 0; i < nid; i++) {
        uint32_t tok = i;
        cr_assert_eq(kvt_key_chain(&ns, &tok, 1, 1, &key[i], 1), 1);
    }
    for (size_t r = 0; r < t->nreq; r++)
        if (t->r[r].n > maxn)
            maxn = t->r[r].n;
    kvt_key *k = malloc(maxn * sizeof *k);
    uint8_t *buf = malloc(maxn * BLOCK);
    void **ptr = malloc(maxn * sizeof *ptr);
    cr_assert(k && buf && ptr);
    for (size_t i = 0; i < maxn; i++)
        ptr[i] = buf + i * BLOCK;

    uint64_t hits = 0;
    for (size_t r = 0; r < t->nreq; r++) {
        const req *q = &t->r[r];
        cr_assert_eq(kvt_clock_set(s, q->t_ms * 1000000ull), 0, "%s", kvt_last_error());
        for (uint32_t i = 0; i < q->n; i++)
            k[i] = key[q->id[i]];
        int h = kvt_lookup(s, k, q->n, NULL, 0);
        cr_assert_geq(h, 0, "lookup: %s", kvt_last_error());
        if (h > 0)
            cr_assert_eq(kvt_get(s, k, (size_t)h, ptr, NULL, NULL), h, "request %zu: get: %s", r,
                         kvt_last_error());
        if ((uint32_t)h < q->n) {
            memset(buf, (int)(r & 0xff), (q->n - (uint32_t)h) * BLOCK);
            kvt_io_opts o = {.size = sizeof o, .parent = h ? &k[h - 1] : NULL};
            cr_assert_eq(kvt_put(s, k + h, q->n - (uint32_t)h, ptr, &o, NULL), (int)(q->n - (uint32_t)h),
                         "request %zu: put: %s", r, kvt_last_error());
        }
        h_out[r] = (uint32_t)h;
        hits += (uint64_t)h;
    }
    uint64_t served = 0;
    cr_assert_eq(kvt_stat(s, "dram.hits", &served), 0);
    cr_assert_eq(served, hits, "dram.hits %llu, gets of %llu hit blocks",
                 (unsigned long long)served, (unsigned long long)hits);
    cr_assert_eq(kvt_close(s), 0);
    free(key);
    free(k);
    free(buf);
    free(ptr);
    return hits;
}

static int load_conversation(trace *t)
{
    const char *dir = getenv("KVT_TRACES");
    char path[4096];
    snprintf(path, sizeof path, "%s/conversation_trace.jsonl", dir ? dir : "../shared/traces");
    return load(t, path);
}

static void compare(const trace *t, uint32_t cap, uint64_t ttl_ms, double published)
{
    uint32_t *want = malloc(t->nreq * 4), *got = malloc(t->nreq * 4);
    cr_assert(want && got);
    uint64_t ref = reference(t, cap, ttl_ms, want);
    uint64_t lib = through_store(t, cap, ttl_ms, got);
    uint64_t total = 0;
    for (size_t r = 0; r < t->nreq; r++) {
        total += t->r[r].n;
        cr_assert_eq(got[r], want[r],
                     "cap %u ttl %llu ms: request %zu (t %llu ms): library hit %u, reference %u",
                     cap, (unsigned long long)ttl_ms, r, (unsigned long long)t->r[r].t_ms, got[r],
                     want[r]);
    }
    cr_assert_eq(lib, ref);
    double pct = 100.0 * (double)lib / (double)total;
    fprintf(stderr, "replay lru @%u, ttl %llu ms: %llu / %llu blocks = %.2f%% (equal to the reference)\n",
            cap, (unsigned long long)ttl_ms, (unsigned long long)lib, (unsigned long long)total, pct);
    if (published > 0)
        cr_assert(pct > published - 0.005 && pct < published + 0.005,
                  "@%u: %.3f%%, the published LRU figure is %.2f%%", cap, pct, published);
    free(want);
    free(got);
}

Test(replay, lru_conversation_exact, .timeout = 120)
{
    trace t;
    if (load_conversation(&t) != 0)
        cr_skip("conversation_trace.jsonl not found under $KVT_TRACES (../shared/traces)");
    cr_assert_eq(t.nreq, 12031, "the trace has 12031 requests (traces/README.md)");
    static const uint32_t caps[] = {1000, 4000, 16000};
    static const double published[] = {4.45, 8.58, 26.27};
    for (int i = 0; i < 3; i++)
        compare(&t, caps[i], 0, published[i]);
    unload(&t);
}

/* The same with an idle TTL: expiry happens at each request's time, before
 * its lookup, on the store's manual clock. */
Test(replay, lru_conversation_ttl_exact, .timeout = 120)
{
    trace t;
    if (load_conversation(&t) != 0)
        cr_skip("conversation_trace.jsonl not found under $KVT_TRACES (../shared/traces)");
    compare(&t, 4000, 60000, 0);
    compare(&t, 16000, 120000, 0);
    unload(&t);
}
