/* store_cfg.h — every store the bench opens, described as data; store_cfg.c is the only file
 * that turns a description into kvt_config calls, so an ABI change to how tiers are
 * configured touches that one file. */
#ifndef KVT_BENCH_STORE_CFG_H
#define KVT_BENCH_STORE_CFG_H

#include <stdint.h>

#include "kvtier.h"

/* The tiers a bench store may have, fastest first. Commands name tiers by
 * these, never by the library's identifiers: bench_tier_id() maps them. */
typedef enum bench_tier {
    BENCH_HBM,
    BENCH_DRAM,
    BENCH_NVME,
    BENCH_CLUSTER, /* key-addressed, under the slot tiers: part of the store when path is set */
    BENCH_TIERS
} bench_tier;

/* One tier of a store. A tier is part of the store when capacity > 0 (the
 * cluster tier: when path is set; its capacity is the directory's quota, 0
 * none); zero in any other field means "the library's default". */
typedef struct bench_tier_spec {
    uint64_t capacity;  /* bytes (NVMe: slots × bench_slot_bytes) */
    uint64_t ttl_ms;    /* 0: no TTL */
    const char *policy; /* eviction policy by name */
    const char *path;   /* NVMe: the file; cluster: the shared directory */
    int queue_depth;    /* NVMe, cluster: blocks in flight */
    int recreate;       /* NVMe: 1 = start from an empty file */
    int no_hugepages;   /* DRAM: 1 = no transparent huge pages */
    int shared;         /* DRAM: 1 = tier option "shared" (the arena in shared memory) */
    int device;         /* HBM, DRAM: the CUDA device to pin for, when has_device */
    int has_device;
} bench_tier_spec;

/* The settings whose refusal a command reports by its own flag name. */
typedef enum bench_setting {
    BSET_BLOCK_BYTES,
    BSET_COPY_THREADS,
    BSET_DRAM_CAPACITY,
    BSET_DRAM_TTL,
    BSET_NVME_CAPACITY,
    BSET_NVME_TTL,
    BSET_POLICY,
    BSET_PATH,
    BSET_COUNT
} bench_setting;

typedef struct bench_store_spec {
    uint64_t block_bytes;
    uint32_t block_tokens;   /* 0: the library's default */
    uint32_t frags;          /* fragments per block; 0: the library's default */
    int copy_threads;        /* 0: the library's default */
    int manual_clock;        /* 1: the store's clock moves only by kvt_clock_advance */
    int64_t close_flush_ms;  /* < 0: the library's default; 0: close writes nothing down */
    bench_tier_spec tier[BENCH_TIERS];
    /* Messages: "kvtier-bench <who>: <flag or setting>: <library error>". */
    const char *who;
    const char *flag[BSET_COUNT]; /* NULL: the setting's own name */
} bench_store_spec;

/* A spec with every field at the library's default (close_flush_ms -1). */
bench_store_spec bench_store_spec_default(const char *who);

/* A DRAM-only store of dram_bytes, everything else at the defaults. */
bench_store_spec bench_dram_spec(const char *who, uint64_t block_bytes, uint64_t dram_bytes);

/* Opens the store spec describes. Returns BENCH_OK with *out set, or, after
 * printing why to stderr, BENCH_USAGE when the caller's sizes, names or
 * paths were refused and BENCH_FAILED when the library or machine failed. */
int bench_store_open(const bench_store_spec *spec, kvt_store **out);

/* Bytes one NVMe slot takes for blocks of block_bytes (payload plus the
 * slot's header), the unit NVMe capacities are counted in. 0, or a negative
 * KVT_E* code with kvt_last_error() saying why. */
int bench_slot_bytes(uint64_t block_bytes, uint64_t *out);

/* The tier identifier kvt_lookup reports for `t` in store s. */
uint8_t bench_tier_id(kvt_store *s, bench_tier t);

/* 1 when the library has an eviction policy of that name. */
int bench_policy_known(const char *name);

/* 1 when a tier of `kind` takes integer option `opt` = value in this
 * library; else 0 with the library's message in why (cap bytes). */
int bench_tier_option_known(const char *kind, const char *opt, int64_t value, char *why,
                            size_t cap);

/* A statistic, or 0 when the library does not have it. */
uint64_t bench_stat(kvt_store *s, const char *name);
/* n distinct keys: one chain over pseudo-random tokens (block_tokens 1), so
 * the keys look like any engine's. Returns 0 or -1 (library error printed). */
int bench_keys(kvt_key *out, size_t n, uint64_t seed);

#endif
