/* swarm_ramp.c — the ramp: swarm runs of N agents, N searched for the knee where TTFT p95 meets the SLO. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "../model/knee.h"
#include "swarm_run.h"

typedef struct ramp_ctx {
    const swarm_cfg *c;
    const swarm_ramp_opts *o;
    swarm_result *r;      /* scratch */
    swarm_result *keep;   /* the knee's run */
    uint32_t kept;        /* agents of the run in keep if it met the SLO, else 0 */
    int have;             /* keep holds a run */
    uint64_t t0;          /* the ramp's start, for wall_budget_s */
    double last_wall;     /* the last step's wall seconds and agents: the next */
    uint32_t last_agents; /* step's time is predicted in proportion */
    int rc;
} ramp_ctx;

static int ramp_step(uint32_t agents, void *user, knee_step *st)
{
    ramp_ctx *x = user;
    if (x->o->wall_budget_s > 0) {
        /* No step starts that would end past the budget: a run's work
         * grows with its agents. */
        double spent = (double)(bench_now_ns() - x->t0) / 1e9;
        double next = x->last_agents ? x->last_wall * agents / x->last_agents : 0;
        if (spent + next > x->o->wall_budget_s)
            return KNEE_STOP;
    }
    swarm_cfg c = *x->c;
    c.wl.agents = agents;
    c.wl.duration_s = x->o->step_s;
    c.wl.ramp_step_s = 0; /* every agent from the start: a static run */
    c.judge_after_s = x->o->warm_s;
    char label[64];
    if (x->c->label) {
        snprintf(label, sizeof label, "%s: %u agents", x->c->label, agents);
        c.label = label;
    }
    int rc = swarm_run(&c, x->r);
    if (rc) {
        x->rc = rc;
        return rc;
    }
    const swarm_result *r = x->r;
    st->requests = r->judged;
    st->hit_ratio = r->judged_hit_ratio;
    st->ttft_p50_ms = r->judged_p50_ms;
    st->ttft_p95_ms = r->judged_p95_ms;
    st->wall_s = r->wall_s;
    st->goodput_rps = r->goodput_rps;
    x->last_wall = r->wall_s;
    x->last_agents = agents;
    st->met = r->judged > 0 && !(r->judged_p95_ms > c.slo_ms);
    if (x->keep && ((st->met && agents > x->kept) || !x->have)) {
        *x->keep = *r;
        x->kept = st->met ? agents : 0;
        x->have = 1;
    }
    return 0;
}

int swarm_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, knee_result *k,
               swarm_result *knee_run)
{
    swarm_result *scratch = malloc(sizeof *scratch);
    if (!scratch) {
        fprintf(stderr, "kvtier-bench swarm: out of memory\n");
        return BENCH_FAILED;
    }
    ramp_ctx x = {.c = c, .o = o, .r = scratch, .keep = knee_run, .t0 = bench_now_ns()};
    knee_opts ko = {.start = o->start, .max = o->max, .growth = o->growth,
                    .resolution = o->resolution, .max_steps = o->max_steps};
    int rc = knee_find(&ko, ramp_step, &x, k);
    free(scratch);
    if (rc < 0 && !x.rc) {
        fprintf(stderr, "kvtier-bench swarm: a ramp wants 1 <= --ramp-start <= --agents, "
                        "--ramp-growth > 1, --ramp-resolution >= 0\n");
        return BENCH_USAGE;
    }
    return x.rc;
}

