/* paged_engine.c — a miniature inference engine: paged KV cache in host memory, prefix reuse through kvtier. */
/*
 * The engine keeps its KV cache in pages of one block each (BLOCK_TOKENS
 * tokens), stored layer-major as real engines do: the KV bytes of layer l for
 * page p sit at pool[l][p], so one block is LAYERS fragments in LAYERS places.
 * For every request it
 *   1. hashes the prompt into block keys (kvt_ns_key + kvt_key_chain),
 *   2. asks the store for the longest cached prefix (kvt_lookup with a lease),
 *   3. fetches the hit blocks straight into its pages (kvt_get, scattered
 *      fragments), and releases the lease,
 *   4. "computes" the missing blocks (a deterministic fill from the block's
 *      tokens and everything before them, as real KV depends on the prefix),
 *   5. offloads the new blocks (asynchronous kvt_put + kvt_wait).
 * It checks every fetched page byte for byte against what computing it would
 * give, and every hit count against its own record of what it offloaded.
 * Exits 0 when everything matches, 1 otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kvtier.h>

enum {
    BLOCK_TOKENS = 16,
    LAYERS = 4,                           /* fragments per block */
    FRAG_BYTES = 1024,                    /* one layer's K and V of one block */
    BLOCK_BYTES = LAYERS * FRAG_BYTES,
    PAGES = 64,                           /* the engine's KV pool */
    MAX_BLOCKS = PAGES,
    MAX_TOKENS = MAX_BLOCKS * BLOCK_TOKENS,
    MAX_RECORD = 1024
};

static uint8_t pool[LAYERS][PAGES][FRAG_BYTES]; /* the paged KV cache */

/* What the engine has offloaded, to predict lookups independently. */
static kvt_key record[MAX_RECORD];
static int nrecord;

static int recorded(const kvt_key *k)
{
    for (int i = 0; i < nrecord; i++)
        if (memcmp(record[i].b, k->b, sizeof k->b) == 0)
            return 1;
    return 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* The "model": layer `layer` of a block's KV from its tokens and its key
 * (which stands for the whole prefix before it). */
static void compute(const kvt_key *key, const uint32_t *tokens, int layer, uint8_t *out)
{
    uint64_t h = 0x6b76746965720000ull + (uint64_t)layer;
    for (int i = 0; i < 16; i++)
        h = mix(h ^ key->b[i]);
    for (int i = 0; i < BLOCK_TOKENS; i++)
        h = mix(h ^ tokens[i]);
    for (int j = 0; j < FRAG_BYTES; j += 8) {
        h = mix(h + 0x9e3779b97f4a7c15ull);
        memcpy(out + j, &h, 8);
    }
}

/* Deterministic synthetic token segments. */
static size_t segment(uint32_t *out, uint64_t seed, size_t len)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (uint32_t)(mix(seed * 1000003u + i) % 128256u);
    return len;
}

typedef struct request {
    const char *what;
    const char *tenant;
    uint64_t segs[4]; /* segment seeds, 0 ends the list; seed 1 is the system prompt */
    size_t lens[4];
} request;

static const request requests[] = {
    {"A turn 1", "tenant-1", {1, 10}, {64, 50}},
    {"B turn 1", "tenant-1", {1, 20}, {64, 45}},
    {"A turn 2", "tenant-1", {1, 10, 11}, {64, 50, 40}},
    {"B turn 2", "tenant-1", {1, 20, 21}, {64, 45, 60}},
    {"A turn 3", "tenant-1", {1, 10, 11, 12}, {64, 50, 40, 37}},
    {"A turn 1, other tenant", "tenant-2", {1, 10}, {64, 50}},
    {"B turn 2, repeated", "tenant-1", {1, 20, 21}, {64, 45, 60}},
};

static int fail(const char *what, int rc)
{
    fprintf(stderr, "paged_engine: %s: %d %s (%s)\n", what, rc, kvt_error_name(rc) ? kvt_error_name(rc) : "?",
            kvt_last_error());
    return 1;
}

int main(void)
{
    kvt_config *cfg;
    kvt_store *store;
    int rc, dram = -1;
    if ((rc = kvt_config_new(&cfg)) ||
        (rc = kvt_config_set(cfg, KVT_OPT_BLOCK_BYTES, BLOCK_BYTES)) ||
        (rc = kvt_config_set(cfg, KVT_OPT_BLOCK_TOKENS, BLOCK_TOKENS)) ||
        (rc = kvt_config_set(cfg, KVT_OPT_FRAGS, LAYERS)) ||
        (rc = dram = kvt_config_add_tier(cfg, "dram", NULL)) < 0 ||
        (rc = kvt_config_tier_set(cfg, dram, "capacity", 256 * BLOCK_BYTES)) ||
        (rc = kvt_config_tier_set(cfg, dram, "hugepages", 0)))
        return fail("config", rc);
    if ((rc = kvt_open(cfg, &store)))
        return fail("kvt_open", rc);
    kvt_config_free(cfg);

    static uint32_t tokens[MAX_TOKENS];
    static kvt_key keys[MAX_BLOCKS];
    static void *ptrs[MAX_BLOCKS * LAYERS];
    static uint8_t expect[FRAG_BYTES];
    int page_of[MAX_BLOCKS];
    uint8_t tiers[MAX_BLOCKS];
    int32_t status[MAX_BLOCKS];
    int total_hits = 0, total_computed = 0, mismatches = 0;
    const size_t nreq = sizeof requests / sizeof requests[0];

    for (size_t r = 0; r < nreq; r++) {
        const request *q = &requests[r];
        size_t ntok = 0;
        for (int s = 0; s < 4 && q->segs[s]; s++)
            ntok += segment(tokens + ntok, q->segs[s], q->lens[s]);

        /* 1. hash */
        const char *model = "paged-engine-demo", *layout = "u8;layers=4;frag=1024;B=16";
        kvt_ns_field fields[3] = {
            {KVT_NS_MODEL, (uint32_t)strlen(model), model},
            {KVT_NS_LAYOUT, (uint32_t)strlen(layout), layout},
            {KVT_NS_SALT, (uint32_t)strlen(q->tenant), q->tenant},
        };
        kvt_key ns;
        if ((rc = kvt_ns_key(fields, 3, &ns)))
            return fail("kvt_ns_key", rc);
        int n = kvt_key_chain(&ns, tokens, ntok, BLOCK_TOKENS, keys, MAX_BLOCKS);
        if (n < 0)
            return fail("kvt_key_chain", n);
        int want_hits = 0;
        while (want_hits < n && recorded(&keys[want_hits]))
            want_hits++;

        /* pages for this request: a permutation of the pool, poisoned */
        for (int i = 0; i < n; i++) {
            page_of[i] = (int)((7u * (unsigned)i + 3u * (unsigned)r) % PAGES);
            for (int l = 0; l < LAYERS; l++) {
                memset(pool[l][page_of[i]], 0xEE, FRAG_BYTES);
                ptrs[i * LAYERS + l] = pool[l][page_of[i]];
            }
        }

        /* 2. lookup, leased until fetched */
        int hit = n ? kvt_lookup(store, keys, (size_t)n, tiers, 5000) : 0;
        if (hit < 0)
            return fail("kvt_lookup", hit);
        if (hit != want_hits) {
            printf("request %zu (%s): %d hits, expected %d\n", r, q->what, hit, want_hits);
            mismatches++;
        }

        /* 3. fetch the hits into their pages */
        if (hit > 0) {
            kvt_io_opts o = {.size = sizeof o, .status = status};
            int got = kvt_get(store, keys, (size_t)hit, ptrs, &o, NULL);
            if (got != hit) {
                printf("request %zu: kvt_get copied %d of %d blocks\n", r, got, hit);
                mismatches++;
            }
            if ((rc = kvt_release(store, keys, (size_t)hit, NULL)) != hit) {
                printf("request %zu: released %d of %d leases\n", r, rc, hit);
                mismatches++;
            }
            for (int i = 0; i < hit; i++) {
                for (int l = 0; l < LAYERS; l++) {
                    compute(&keys[i], tokens + (size_t)i * BLOCK_TOKENS, l, expect);
                    if (status[i] != 0 || memcmp(pool[l][page_of[i]], expect, FRAG_BYTES) != 0) {
                        printf("request %zu: block %d layer %d (page %d): status %d, bytes %s\n", r,
                               i, l, page_of[i], status[i],
                               memcmp(pool[l][page_of[i]], expect, FRAG_BYTES) ? "differ" : "match");
                        mismatches++;
                    }
                }
            }
        }

        /* 4. compute the rest */
        for (int i = hit; i < n; i++)
            for (int l = 0; l < LAYERS; l++)
                compute(&keys[i], tokens + (size_t)i * BLOCK_TOKENS, l, pool[l][page_of[i]]);

        /* 5. offload the new blocks; the pages are reusable once the ticket completes */
        if (n > hit) {
            kvt_io_opts o = {.size = sizeof o, .parent = hit ? &keys[hit - 1] : NULL,
                             .status = status};
            kvt_ticket t;
            if ((rc = kvt_put(store, keys + hit, (size_t)(n - hit), ptrs + (size_t)hit * LAYERS, &o, &t)))
                return fail("kvt_put", rc);
            int stored = kvt_wait(store, t, -1);
            if (stored != n - hit) {
                printf("request %zu: stored %d of %d blocks\n", r, stored, n - hit);
                mismatches++;
            }
            for (int i = hit; i < n && nrecord < MAX_RECORD; i++)
                record[nrecord++] = keys[i];
        }
        printf("request %zu %-24s %4zu tokens, %2d blocks: %2d hits (%s), %2d computed, "
               "%zu tokens left for later\n",
               r, q->what, ntok, n, hit, hit && tiers[0] != KVT_TIER_NONE ? kvt_store_tier_name(store, tiers[0]) : "-",
               n - hit, ntok % BLOCK_TOKENS);
        total_hits += hit;
        total_computed += n - hit;
    }

    uint64_t v = 0;
    if ((rc = kvt_stat(store, "lookup_hit_blocks", &v)) || v != (uint64_t)total_hits) {
        printf("lookup_hit_blocks = %llu, expected %d\n", (unsigned long long)v, total_hits);
        mismatches++;
    }
    if ((rc = kvt_close(store)))
        return fail("kvt_close", rc);
    printf("%d blocks loaded, %d computed", total_hits, total_computed);
    if (mismatches) {
        printf(": %d MISMATCHES\n", mismatches);
        return 1;
    }
    printf(": all pages verified\n");
    return 0;
}
