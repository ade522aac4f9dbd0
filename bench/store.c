/* store.c — opening benchmark stores through the public API, reading stats, making keys. */
#include <stdlib.h>

#include "bench.h"

static int check(int rc, const char *what)
{
    if (rc < 0)
        fprintf(stderr, "kvtier-bench: %s: %s\n", what, kvt_last_error());
    return rc < 0;
}

kvt_store *bench_open_dram(const bench_store_cfg *cfg)
{
    kvt_config *c = NULL;
    kvt_store *s = NULL;
    if (check(kvt_config_new(&c), "kvt_config_new"))
        return NULL;
    int bad = check(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)cfg->block_bytes),
                    "block bytes") ||
              (cfg->block_tokens &&
               check(kvt_config_set(c, KVT_OPT_BLOCK_TOKENS, cfg->block_tokens), "block tokens")) ||
              (cfg->copy_threads &&
               check(kvt_config_set(c, KVT_OPT_COPY_THREADS, cfg->copy_threads), "copy threads")) ||
              check(kvt_config_tier_set(c, bench_tier(c, "dram"), "capacity",
                                        (int64_t)cfg->dram_bytes),
                    "DRAM capacity") ||
              (cfg->policy && check(kvt_config_tier_set_str(c, bench_tier(c, "dram"), "policy",
                                                            cfg->policy),
                                    "DRAM policy")) ||
              (cfg->no_hugepages &&
               check(kvt_config_tier_set(c, bench_tier(c, "dram"), "hugepages", 0), "huge pages")) ||
              check(kvt_open(c, &s), "kvt_open");
    kvt_config_free(c);
    return bad ? NULL : s;
}

uint64_t bench_stat(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    if (kvt_stat(s, name, &v) < 0)
        return 0;
    return v;
}

int bench_keys(kvt_key *out, size_t n, uint64_t seed)
{
    uint32_t *tokens = malloc(n * sizeof *tokens);
    if (!tokens) {
        fprintf(stderr, "kvtier-bench: no memory for %zu tokens\n", n);
        return -1;
    }
    uint64_t r = bench_rand_seed(seed);
    for (size_t i = 0; i < n; i++)
        tokens[i] = (uint32_t)(bench_rand(&r) % 128256); /* a Llama-3 vocabulary */
    kvt_key ns;
    kvt_ns_field f = {.tag = KVT_NS_CUSTOM, .len = sizeof seed, .data = &seed};
    int bad = check(kvt_ns_key(&f, 1, &ns), "kvt_ns_key") ||
              check(kvt_key_chain(&ns, tokens, n, 1, out, n), "kvt_key_chain");
    free(tokens);
    return bad ? -1 : 0;
}
