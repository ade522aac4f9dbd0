/* swarm_multi.h — the agent swarm over N engine processes (fork), each with its own store or a connection to one served store, on a shared virtual clock advanced in epochs. */
#ifndef KVT_BENCH_SWARM_MULTI_H
#define KVT_BENCH_SWARM_MULTI_H

#include <stdint.h>

#include "swarm_run.h"

/* Where each process's blocks live. */
typedef enum sm_store {
    SM_SHARED,       /* one server process (kvt_serve) with the whole capacity; N clients connect */
    SM_PRIVATE,      /* N private stores of 1/N of the capacity each */
    SM_NODE_DRAM,    /* N nodes, each with the whole DRAM capacity (per-node DRAM) */
    SM_NODE_NVME,    /* ... and its own NVMe file of the whole NVMe capacity */
    SM_NODE_CLUSTER, /* ... DRAM and one cluster tier directory every node names */
    SM_STORES
} sm_store;

/* "shared", "private", "dram", "dram+nvme", "dram+cluster". */
const char *sm_store_name(sm_store s);

typedef struct sm_opts {
    uint32_t procs;          /* engine processes (nodes), >= 1 */
    sm_store store;
    const char *socket;      /* SM_SHARED: the socket (NULL: one in swarm_dir) */
    const char *nvme_dir;    /* SM_NODE_NVME: where the NVMe files go (NULL: swarm_dir) */
    const char *cluster_dir; /* SM_NODE_CLUSTER: the run uses a fresh directory under it */
    double epoch_s;          /* the virtual clock's barrier step; 0: one request at a time,
                                in the stream's order (exact, no concurrency) */
} sm_opts;

/* What the parent merged from its processes. Hit ratio = hit_blocks / blocks. */
typedef struct sm_result {
    uint64_t requests, blocks, hit_blocks, hit_dram, hit_nvme, hit_cluster, seen_blocks;
    uint64_t reprefills;    /* requests that missed a block an earlier request offered */
    uint64_t verify_errors; /* blocks whose bytes were another block's (must be 0) */
    uint64_t get_short;     /* blocks a lookup found that the get then missed */
    uint64_t epochs;        /* barriers the run went through */
    double hit_ratio, seen_ratio;
    double ttft_p50_ms, ttft_p95_ms, within_slo, goodput_rps;
    uint64_t judged;        /* requests arriving at cfg's judge_after_s or later (ramp steps) */
    double judged_p95_ms;   /* their TTFT p95: what a ramp step is judged by */
    double virtual_s, wall_s;
    uint64_t dram_bytes_each, nvme_bytes_each; /* capacity of each process's store (shared: the server's) */
} sm_result;

/* Runs cfg's workload (its static run: wl.agents for wl.duration_s) over
 * o->procs processes; requests are routed to processes uniformly at random
 * (a hash of session and turn: no affinity). The TTFT model runs over the
 * merged requests: SM_SHARED and SM_PRIVATE model one node (the profile's
 * GPUs serve every process), the SM_NODE_* configurations one model per
 * node (each node has the profile's GPUs). Efficiencies are 1 (a
 * multi-process run does not pair calls with memcpy). Returns BENCH_OK,
 * BENCH_USAGE or BENCH_FAILED after printing why to stderr. */
int swarm_multi_run(const swarm_cfg *c, const sm_opts *o, sm_result *r);

/* ------------------------------------------ cmd/swarm_multi_cmd.c */

/* The flags swarm takes for these runs (--procs, --procs-list, --nodes,
 * --nodes-list, --socket, --nvme-dir, --nodes-cluster-dir, --epoch, --out,
 * --csv); texts filled by the parser. */
typedef struct swarm_multi_texts {
    const char *procs, *procs_list, *nodes, *nodes_list, *socket, *nvme_dir;
    const char *epoch, *out;
    int csv;
} swarm_multi_texts;
struct barg;
int swarm_multi_flags(struct barg *spec, int ns, swarm_multi_texts *t);
/* 1 when the command line asked for a multi-process run. */
int swarm_multi_wanted(const swarm_multi_texts *t);
/* The multi-process runs, after swarm's own flags made c and ro (json:
 * --json); flags the command line did not name get small defaults (argv
 * is read for that). Returns the exit code. */
int swarm_multi_main(swarm_cfg *c, swarm_ramp_opts *ro, const swarm_multi_texts *t, int json,
                     int argc, char **argv);

#endif
