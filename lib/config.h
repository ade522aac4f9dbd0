/* config.h — the configuration object behind kvt_config. */
#ifndef KVT_CONFIG_H
#define KVT_CONFIG_H

#include <stdint.h>

#include "kvtier.h"

typedef struct kvt_tier_cfg {
    uint64_t capacity;
    uint64_t ttl_ms;
    int victims;
    int admit;
    uint32_t admit_after;
    int numa_node;
    int queue_depth;
    int sqpoll;
    int recreate;
    int device;
    int hugepages;
    char *policy; /* NULL: the default policy */
    char *path;
    char *faults;
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
    kvt_tier_cfg tier[KVT_TIER_COUNT];
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
