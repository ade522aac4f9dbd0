/* ttft.h — the time-to-first-token model: measured tier loads, then FIFO queueing for prefill on N GPUs in virtual time. */
#ifndef KVT_BENCH_TTFT_H
#define KVT_BENCH_TTFT_H

#include <stdint.h>

#include "bench.h"

/*
 * A model, not a measurement of an engine; docs/bench.md states it:
 *   load     = the measured wall time of the request's kvt_get calls, times
 *              load_scale (real bytes / moved bytes when the bytes were
 *              scaled down: moving the real bytes is assumed to take
 *              proportionally longer)
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
    double prefill_tps, slo_ms, load_scale;
    double *free_at; /* per server: virtual second it is next free */
    ttft_pend *pend; /* min-heap on (ready, seq) */
    size_t npend, cap;
    uint64_t seq, count, within;
    double sum_ms;
    bench_samples ttft_ms, load_ms, prefill_ms, queue_ms;
    bench_samples *win;    /* per window (of arrival): TTFT samples */
    uint32_t *win_pending; /* per window: requests not yet scheduled */
} ttft_model;

/* nwin windows of arrival time (0: none). Returns 0, or -1 without memory. */
int ttft_init(ttft_model *m, uint32_t gpus, double prefill_tps, double slo_ms, double load_scale,
              uint32_t nwin);
/* One request arriving at t_s (virtual seconds, not before the last one)
 * whose loads took load_s (measured, before load_scale) and which must
 * prefill `missed` tokens; window < nwin (ignored without windows).
 * Schedules whatever can be. Returns 0, or -1 without memory. */
int ttft_add(ttft_model *m, double t_s, double load_s, uint64_t missed, uint32_t window);
/* No more arrivals: schedules everything. */
void ttft_finish(ttft_model *m);
void ttft_free(ttft_model *m);

#endif
