/* knee.h — the ramp's search for the knee: the most agents whose run meets the SLO (grow geometrically, then bisect). */
#ifndef KVT_BENCH_KNEE_H
#define KVT_BENCH_KNEE_H

#include <stdint.h>

#define KNEE_MAX_STEPS 64

/* One step: a run of `agents` agents and what it gave. */
typedef struct knee_step {
    uint32_t agents;
    int met;            /* the SLO held */
    uint64_t requests;  /* judged */
    double hit_ratio, ttft_p50_ms, ttft_p95_ms, wall_s;
    double goodput_rps; /* requests within the SLO per virtual second (0: not known) */
} knee_step;

typedef struct knee_opts {
    uint32_t start;    /* the first step's agents (>= 1) */
    uint32_t max;      /* never more agents than this */
    double growth;     /* > 1: the next step while the SLO holds: ceil(agents x growth) */
    double resolution; /* bisect until first bad - last good <= max(1, last good x this) */
    int max_steps;     /* <= KNEE_MAX_STEPS; the search stops there (capped) */
} knee_opts;

typedef struct knee_result {
    knee_step step[KNEE_MAX_STEPS]; /* in the order run */
    int nsteps;
    uint32_t knee;      /* the most agents a step met the SLO with (0: none did) */
    uint32_t first_bad; /* the fewest agents a step missed with (0: none missed) */
    int exhausted;      /* max agents met the SLO */
    int capped;         /* max_steps or the measure's budget ran out before the resolution */
} knee_result;

/* Runs `agents` agents and fills st->met and what else it knows (agents is
 * set by the caller). Returns 0; KNEE_STOP, without running, when a budget
 * (wall time) is spent: the search ends there, capped; or an error that ends
 * the search. */
#define KNEE_STOP 1000 /* apart from the bench's exit codes */
typedef int (*knee_measure)(uint32_t agents, void *user, knee_step *st);

/* Grows from start by growth until a step misses the SLO (or max meets it),
 * then bisects between the last good and the first bad step. A first step
 * that misses is bisected down towards 1. Returns 0, -1 on bad options, or
 * measure's error (res holds the steps run so far). */
int knee_find(const knee_opts *o, knee_measure measure, void *user, knee_result *res);

#endif
