/* hbm.h — the engines' HBM, modelled: one LRU prefix cache of blocks per engine instance, and the router that picks the instance (session affinity or at random). */
#ifndef KVT_BENCH_HBM_H
#define KVT_BENCH_HBM_H

#include <stdint.h>

/*
 * A model, not a measurement (docs/bench.md, "Affinity"): each engine
 * instance keeps the KV of the prompts it prefilled in its own HBM (a
 * per-process cache, as vLLM's and SGLang's prefix caches are), cap blocks,
 * least recently used out first. A request reuses from its instance's HBM
 * the longest prefix of its blocks held there (its chain: a block counts
 * only after all before it), and loads the rest of its hits from the
 * node-shared store below. Blocks are identified by 64-bit digests of their
 * keys (a 2^-64 collision is noise).
 *
 * The router: with affinity a session's requests all go to instance
 * session % instances (the prefix is where it was left); without, each
 * request to an instance drawn at random (seeded, reproducible), so a
 * session's next request finds its prefix in HBM only by chance.
 */
typedef struct hbm_inst hbm_inst;

typedef struct hbm_model {
    uint32_t instances;
    uint64_t cap;       /* blocks per instance */
    int affinity;
    uint64_t rng;       /* the random router's state */
    hbm_inst *inst;
} hbm_model;

/* instances >= 1, cap >= 1 blocks each. Returns 0, or -1 without memory. */
int hbm_init(hbm_model *h, uint32_t instances, uint64_t cap, int affinity, uint64_t seed);
void hbm_free(hbm_model *h);
/* The instance a request of session goes to (advances the random router). */
uint32_t hbm_route(hbm_model *h, uint64_t session);
/* How many of keys[0..n) instance i holds as a prefix (each found one
 * becomes the most recently used). */
uint32_t hbm_prefix(hbm_model *h, uint32_t i, const uint64_t *keys, uint32_t n);
/* Instance i computed or loaded keys[0..n): all held now, most recently
 * used last; the least recently used beyond cap leave. Returns 0, or -1
 * without memory. */
int hbm_admit(hbm_model *h, uint32_t i, const uint64_t *keys, uint32_t n);
/* Blocks instance i holds. */
uint64_t hbm_held(const hbm_model *h, uint32_t i);

#endif
