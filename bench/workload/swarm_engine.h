/* swarm_engine.h — between swarm_multi.c (the parent) and swarm_engine.c (one engine process): the barrier messages and what a process reports. */
#ifndef KVT_BENCH_SWARM_ENGINE_H
#define KVT_BENCH_SWARM_ENGINE_H

#include <stdint.h>

#include "swarm_multi.h"

/* "No more epochs": the last word of an engine, and the server's stop. */
#define SM_DONE UINT64_MAX

/* One request as the TTFT model takes it. */
typedef struct sm_rec {
    double t;
    uint64_t dram_bytes, nvme_bytes, cluster_bytes; /* real (unscaled) bytes loaded per tier */
    uint64_t missed, session, prompt_tokens;
    uint32_t proc, window;
} sm_rec;

/* An engine's totals, written to its result file before its records. */
typedef struct sm_counts {
    int32_t rc; /* BENCH_OK or why it stopped */
    uint32_t proc;
    uint64_t requests, blocks, hit_blocks, hit_dram, hit_nvme, hit_cluster, seen_blocks;
    uint64_t reprefills, verify_errors, get_short, nrecs;
} sm_counts;

/* What an engine asks the barrier for: the step of its next request (the
 * epoch's number; with epoch_s 0 the request's index in the stream) and its
 * arrival time; step SM_DONE at its end. */
typedef struct sm_want {
    uint64_t step, t_ns;
} sm_want;

/* The pipes and files of engine `me`. Barrier: it writes an sm_want to
 * want_fd and reads the step it may run (a uint64_t) from go_fd before
 * serving it. */
typedef struct sm_engine_io {
    uint32_t me;
    int want_fd, go_fd;
    int out_fd;             /* its result file: sm_counts, then nrecs sm_rec */
    const char *socket;     /* SM_SHARED: the server's socket */
    const char *nvme_path;  /* SM_NODE_NVME: its own file */
    const char *cluster;    /* SM_NODE_CLUSTER: the run's shared directory */
} sm_engine_io;

/* The body of engine process `me` (in a forked child): runs its share of
 * the workload and returns its exit status. */
int sm_engine_main(const swarm_cfg *c, const sm_opts *o, const sm_engine_io *io);

/* The process a request goes to: uniform, no affinity (session and turn hashed). */
uint32_t sm_route(uint64_t seed, uint64_t session, uint32_t turn, uint32_t procs);

/* The store each engine (or the shared server) opens: capacity and tiers by
 * configuration. Returns bench_store_open's code. */
int sm_open_store(const swarm_cfg *c, const sm_opts *o, const char *nvme_path,
                  const char *cluster, kvt_store **out);

/* Whole writes and reads on a pipe or file; 0 or -1. */
int sm_write_all(int fd, const void *p, size_t n);
int sm_read_all(int fd, void *p, size_t n);

#endif
