/* swarm_model.h — between a swarm run and its TTFT model: the record of each request, the rates resolved at the end of the run, and the model over the records (swarm_model.c). */
#ifndef KVT_BENCH_SWARM_MODEL_H
#define KVT_BENCH_SWARM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "swarm_run.h"

/* A request as the TTFT model takes it, once the run's rates are known. */
typedef struct req_rec {
    double t;
    ttft_bytes load;                 /* real bytes loaded per tier (beyond the HBM's prefix) */
    uint64_t missed;                 /* tokens to prefill */
    uint64_t session, prompt_tokens; /* affinity routing; P/D transfer */
    uint32_t window;                 /* 1: judged */
    uint32_t instance;               /* the HBM model's router's choice; UINT32_MAX: none */
} req_rec;

typedef struct rec_vec {
    req_rec *v;
    size_t n, cap;
} rec_vec;

/* Appends x. Returns 0, or -1 without memory. */
int swarm_rec_push(rec_vec *a, const req_rec *x);
/* Fills r's profile (its measured fields), the efficiencies and the rates. */
void swarm_resolve_rates(const swarm_cfg *c, swarm_result *r);
/* The TTFT model over the run's requests at r's rates. Returns 0, or -1
 * without memory. */
int swarm_model_ttft(const swarm_cfg *c, swarm_result *r, const rec_vec *a);

#endif
