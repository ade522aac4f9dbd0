/* ttft.h — the time-to-first-token model: tier loads at a hardware profile's rates, then FIFO queueing for prefill on N GPUs in virtual time. */
#ifndef KVT_BENCH_TTFT_H
#define KVT_BENCH_TTFT_H

#include <stdint.h>

#include "../bench.h"

/*
 * A model, not a measurement of an engine; docs/bench.md states it:
 *   load     = the real bytes served from each tier / that tier's rate on
 *              the profile, each divided by kvtier's measured efficiency on
 *              that tier (library / raw path in the same run; 1 when not
 *              measured): ttft_load_s
 *   prefill  = missed tokens / prefill_tps
 *   TTFT     = load + wait + prefill. Loads run beside other requests'
 *              prefills (as the engines' asynchronous KV connectors park a
 *              request while its KV arrives); a loaded request waits FIFO,
 *              in the order requests become loaded, for the first of `gpus`
 *              servers to be free, in the workload's virtual time. Decode
 *              is assumed to overlap prefills (continuous batching), so it
 *              holds no server.
 * Requests are added in arrival order; a request is scheduled once no later
 * arrival can be loaded before it (its load ends by the latest arrival).
 */
typedef struct ttft_pend {
    double ready, t, load, prefill, transfer;
    uint64_t seq, session;
    uint32_t window;
    uint32_t instance; /* the router's choice (ttft_add_on); UINT32_MAX: the model's */
} ttft_pend;

/*
 * How the GPUs are organised (ttft_set_layout; the default is tp 1 and one
 * instance per GPU behind one shared queue, the model above):
 *   tp        GPUs per engine instance (tensor-parallel ranks). The KV of a
 *             request is split evenly across the ranks, each loading its
 *             share over its own link, in parallel: load = ttft_load_tp_s.
 *             An instance prefills at tp x prefill_tps x tp_eff (the ranks'
 *             all-reduces cost the rest; ttft_tp_efficiency's default).
 *   dp        engine instances (0: gpus / tp, at least 1), each a server.
 *   affinity  1: the router sends a session to instance session % dp, each
 *             with its own FIFO queue; 0: to the instance that is free
 *             first (one shared queue).
 *   pd        disaggregated prefill and decode: prefill_instances of the dp
 *             instances prefill (the others decode, assumed free as in the
 *             model above); a prefill worker puts the KV of the prompt it
 *             computed into the node-shared store and the decode worker gets
 *             the whole prompt's KV back before its first token:
 *             transfer_s, added after the prefill (ttft_pd_transfer_s).
 */
typedef struct ttft_layout {
    uint32_t tp, dp;
    int affinity, pd;
    uint32_t prefill_instances; /* pd: 0 = dp / 2, at least 1 */
    double tp_eff;              /* <= 0: ttft_tp_efficiency(tp) */
} ttft_layout;

typedef struct ttft_model {
    uint32_t gpus, nwin;
    double prefill_tps, slo_ms;
    int affinity; /* route by session (ttft_set_layout) */
    double *free_at; /* per server: virtual second it is next free */
    double *busy;    /* per server: prefill seconds it was given (load imbalance) */
    ttft_pend *pend; /* min-heap on (ready, seq) */
    size_t npend, cap;
    uint64_t seq, count, within;
    double sum_ms;
    bench_samples ttft_ms, load_ms, prefill_ms, queue_ms;
    bench_samples *win;    /* per window (of arrival): TTFT samples */
    uint32_t *win_pending; /* per window: requests not yet scheduled */
} ttft_model;

/* The rates a served byte crosses to the GPU at. */
typedef struct ttft_rates {
    double dram_gbps, nvme_gbps; /* GB/s per GPU (1 GB = 1e9 bytes) */
    double dram_eff, nvme_eff;   /* kvtier / raw path, in (0, 1] */
    double cluster_gbps;         /* GB/s per GPU from the cluster tier (0: none) */
    double cluster_eff;          /* kvtier / raw path, in (0, 1] */
} ttft_rates;

/* Bytes a request loads, per tier it is served from (real, unscaled). */
typedef struct ttft_bytes {
    uint64_t dram, nvme, cluster;
} ttft_bytes;

/* From a profile's figures: a DRAM-served byte crosses the GPU's host link
 * (gpu_gbps); an NVMe-served byte is read from the node's drives, shared by
 * its gpus GPUs, and then crosses the link: min(gpu_gbps, nvme_node_gbps /
 * gpus). An efficiency above 1 (kvtier faster than its raw path, noise) is
 * taken as 1: the link is the ceiling; <= 0 or NaN (not measured) as 1. */
void ttft_rates_from(ttft_rates *r, double gpu_gbps, double nvme_node_gbps, uint32_t gpus,
                     double dram_eff, double nvme_eff);
/* The cluster tier's rate: a byte comes over the node's network share of
 * one GPU and then crosses its host link: min(gpu_gbps, cluster_node_gbps /
 * gpus), times eff (as ttft_rates_from: <= 0, NaN or above 1 taken as 1).
 * ttft_rates_from leaves no cluster rate (0). */
void ttft_rates_cluster(ttft_rates *r, double cluster_node_gbps, uint32_t gpus, double eff);
/* Seconds to load b over tp ranks at once, each 1/tp of every tier's bytes
 * over its own link: sum over tiers of bytes / tp / (rate x efficiency).
 * Cluster bytes without a cluster rate take forever (INFINITY): a bug. */
double ttft_load_bytes_s(const ttft_rates *r, const ttft_bytes *b, uint32_t tp);
/* Seconds to load dram_bytes from DRAM and nvme_bytes from NVMe (real,
 * unscaled bytes): bytes / (rate x efficiency), summed. */
double ttft_load_s(const ttft_rates *r, uint64_t dram_bytes, uint64_t nvme_bytes);

/* Assumed prefill efficiency of tp tensor-parallel ranks (docs/bench.md):
 * 0.9 per doubling (0.9^log2 tp), the all-reduce share public TP scaling
 * measurements of 8B-70B models show at 2-8 ranks; 1 for tp <= 1. */
double ttft_tp_efficiency(uint32_t tp);
/* Load time when tp ranks each load 1/tp of the bytes over their own link
 * at once: ttft_load_s of the shares (as doubles: no rounding). */
double ttft_load_tp_s(const ttft_rates *r, uint64_t dram_bytes, uint64_t nvme_bytes, uint32_t tp);
/* P/D: the prefill worker puts the missed KV (new_bytes) over its links
 * and the decode worker gets the whole prompt's KV (prompt_bytes) over its
 * own, both through the node-shared DRAM store at the DRAM rate, split over
 * tp ranks: (new_bytes + prompt_bytes) / tp / (dram_gbps x dram_eff). */
double ttft_pd_transfer_s(const ttft_rates *r, uint64_t new_bytes, uint64_t prompt_bytes,
                          uint32_t tp);
/* Where P/D's KV goes between the prefill and the decode worker. */
typedef enum ttft_pd_via {
    TTFT_VIA_DRAM = 0, /* the node-shared store's DRAM: both cross their host link */
    TTFT_VIA_CLUSTER   /* the cluster tier: decode on another node; both at the cluster rate */
} ttft_pd_via;
/* ttft_pd_transfer_s through `via`: (new_bytes + prompt_bytes) / tp / (that
 * tier's rate x efficiency): the prefill worker's put of what it computed
 * and the decode worker's get of the whole prompt, one after the other. */
double ttft_pd_transfer_via_s(const ttft_rates *r, uint64_t new_bytes, uint64_t prompt_bytes,
                              uint32_t tp, ttft_pd_via via);
/* The number of servers a layout gives on `gpus` GPUs: dp (or gpus / tp),
 * with pd the prefill instances only. */
uint32_t ttft_layout_servers(const ttft_layout *l, uint32_t gpus);

/* nwin windows of arrival time (0: none). Returns 0, or -1 without memory. */
int ttft_init(ttft_model *m, uint32_t gpus, double prefill_tps, double slo_ms, uint32_t nwin);
/* One request arriving at t_s (virtual seconds, not before the last one)
 * whose loads take load_s (ttft_load_s) and which must
 * prefill `missed` tokens; window < nwin (ignored without windows).
 * Schedules whatever can be. Returns 0, or -1 without memory. */
int ttft_add(ttft_model *m, double t_s, double load_s, uint64_t missed, uint32_t window);
/* No more arrivals: schedules everything. */
void ttft_finish(ttft_model *m);
void ttft_free(ttft_model *m);

/* Before the first ttft_add: organises the model's GPUs (gpus of
 * ttft_init, prefill_tps per GPU) as l says: servers = ttft_layout_servers,
 * each prefilling at tp x prefill_tps x tp_eff; affinity routing. Returns 0,
 * or -1 without memory or on a bad layout (tp 0 is 1). */
int ttft_set_layout(ttft_model *m, const ttft_layout *l);
/* ttft_add with the request's session (affinity routing) and its P/D
 * transfer time (0 without P/D). */
int ttft_add_req(ttft_model *m, double t_s, double load_s, uint64_t missed, uint32_t window,
                 uint64_t session, double transfer_s);
/* ttft_add_req on the instance the router already chose (instance <
 * servers; the per-instance HBM model picks it at arrival, hbm.h): the
 * request waits for that instance only. UINT32_MAX: as ttft_add_req. */
int ttft_add_on(ttft_model *m, double t_s, double load_s, uint64_t missed, uint32_t window,
                uint64_t session, double transfer_s, uint32_t instance);
/* The servers' prefill work: the busiest's over the mean (1: even; 0: no
 * work). Affinity's cost when requests cannot go where the queue is short. */
double ttft_imbalance(const ttft_model *m);

#endif
