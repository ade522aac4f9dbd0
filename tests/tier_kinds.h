/*
 * tier_kinds.h — tests declare tiers by kind, in any order of options: the
 * instance of that kind in a config, added at the first option set on it.
 *
 * Tests add at most one instance per kind, fastest first (hbm, dram, nvme);
 * adding a faster kind after a slower one aborts, since the store's order is
 * the order added. kvt_test_tier_index() gives the index the last config got
 * for a kind, to compare with kvt_lookup()/kvt_contains() results.
 */
#ifndef KVT_TEST_TIER_KINDS_H
#define KVT_TEST_TIER_KINDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtier.h"

static const char *const kvt_test_kinds[] = {"hbm", "dram", "nvme"};
static int kvt_test_tier_seen[3] = {-1, -1, -1};

static inline int kvt_test_kind_rank(const char *kind)
{
    for (int k = 0; k < 3; k++)
        if (strcmp(kvt_test_kinds[k], kind) == 0)
            return k;
    return 3;
}

/* The instance named `kind` in c, added when missing (a negative KVT_E*
 * when it can't be: "hbm" without CUDA). */
static inline int kvt_test_tier(kvt_config *c, const char *kind)
{
    int t = kvt_config_tier_find(c, kind);
    if (t < 0) {
        for (int k = kvt_test_kind_rank(kind) + 1; k < 3; k++)
            if (kvt_config_tier_find(c, kvt_test_kinds[k]) >= 0) {
                fprintf(stderr, "test bug: tier %s added after the slower %s\n", kind,
                        kvt_test_kinds[k]);
                abort();
            }
        t = kvt_config_add_tier(c, kind, NULL);
    }
    if (t >= 0 && kvt_test_kind_rank(kind) < 3)
        kvt_test_tier_seen[kvt_test_kind_rank(kind)] = t;
    return t;
}

/* The index of kind's instance in the config set up last (KVT_TIER_NONE if
 * none had one). */
static inline int kvt_test_tier_index(const char *kind)
{
    int k = kvt_test_kind_rank(kind);
    return k < 3 && kvt_test_tier_seen[k] >= 0 ? kvt_test_tier_seen[k] : KVT_TIER_NONE;
}

/* kvt_store_tier_available() by kind: 0 when the store has no such tier. */
static inline int kvt_test_tier_available(kvt_store *s, const char *kind)
{
    int t = kvt_store_tier_find(s, kind);
    if (t == KVT_ENOENT)
        return 0;
    return t < 0 ? t : kvt_store_tier_available(s, t);
}

#define TIER_HBM kvt_test_tier_index("hbm")
#define TIER_DRAM kvt_test_tier_index("dram")
#define TIER_NVME kvt_test_tier_index("nvme")

#endif
