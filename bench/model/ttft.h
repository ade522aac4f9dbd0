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
    double ready, t, load, prefill;
    uint64_t seq;
    uint32_t window;
} ttft_pend;

typedef struct ttft_model {
    uint32_t gpus, nwin;
    double prefill_tps, slo_ms;
    double *free_at; /* per server: virtual second it is next free */
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
} ttft_rates;

/* From a profile's figures: a DRAM-served byte crosses the GPU's host link
 * (gpu_gbps); an NVMe-served byte is read from the node's drives, shared by
 * its gpus GPUs, and then crosses the link: min(gpu_gbps, nvme_node_gbps /
 * gpus). An efficiency above 1 (kvtier faster than its raw path, noise) is
 * taken as 1: the link is the ceiling; <= 0 or NaN (not measured) as 1. */
void ttft_rates_from(ttft_rates *r, double gpu_gbps, double nvme_node_gbps, uint32_t gpus,
                     double dram_eff, double nvme_eff);
/* Seconds to load dram_bytes from DRAM and nvme_bytes from NVMe (real,
 * unscaled bytes): bytes / (rate x efficiency), summed. */
double ttft_load_s(const ttft_rates *r, uint64_t dram_bytes, uint64_t nvme_bytes);

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

#endif
