/* config.h — the configuration object behind kvt_config. */
#ifndef KVT_CONFIG_H
#define KVT_CONFIG_H

#include <stdint.h>

#include "kvtier.h"

#include "tier/tier.h"

/* One tier instance as declared: its kind, name, the generic options the
 * store reads, and the kind's own options (ops->options, in order). */
typedef struct kvt_tier_cfg {
    const kvt_tier_ops *ops;
    char name[KVT_TIER_NAME_MAX];
    uint64_t capacity;
    uint64_t ttl_ms;
    int victims;
    int admit;
    uint32_t admit_after;
    char *policy; /* NULL: the default policy */
    char *faults;
    kvt_tier_optval opt[KVT_TIER_MAX_OPTS];
    uint32_t nopts;
} kvt_tier_cfg;

struct kvt_config {
    uint64_t block_bytes;
    uint32_t block_tokens;
    uint32_t frags;
    uint32_t workers;
    uint32_t copy_threads;
    uint32_t max_inflight;
    uint64_t close_flush_ms;
    int manual_clock;
    uint32_t key_mode; /* kvt_key_mode: declared, recorded by persistent tiers */
    kvt_clock_fn clock;
    void *clock_user;
    kvt_tier_cfg tier[KVT_MAX_TIERS]; /* instances, fastest first */
    int ntiers;
    int frozen;
};

/* Deep copy (strings duplicated). KVT_ENOMEM on failure. */
int kvt__config_copy(kvt_config *dst, const kvt_config *src);
/* Frees the strings of a config copied with kvt__config_copy. */
void kvt__config_clear(kvt_config *cfg);
/* Checks what setters can't check alone (frags divide block bytes, some
 * tier has capacity, capacities hold a block). */
int kvt__config_validate(const kvt_config *cfg);

#endif
