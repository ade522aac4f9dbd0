/* default_run.h — what the default run's command (cmd_default.c) and its reports (report/default_report.c) share. */
#ifndef KVT_BENCH_DEFAULT_RUN_H
#define KVT_BENCH_DEFAULT_RUN_H

#include "../baseline/nvme_ceiling.h"
#include "../model/knee.h"
#include "../workload/swarm_run.h"

#define TTL_BLOCK_BYTES 64 /* hit ratios only: the smallest block the tiers take */

typedef struct ttl_row {
    double dram_ttl_s, nvme_ttl_s;
    swarm_cfg c;
    swarm_result r;
    int rc;
    int main_run; /* the row is the main run's (no TTL) */
} ttl_row;


/* The story's two ramps (DRAM alone, DRAM + NVMe): hit-ratio runs with tiny
 * blocks, side by side, the TTFT model at the main run's profile, measured
 * rates and efficiencies. */
typedef struct ramp_job {
    const char *what;
    swarm_cfg c;
    swarm_ramp_opts o;
    knee_result k;
    int rc;
} ramp_job;

static inline double ratio_of(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0;
}

/* report/default_report.c */
void default_text_ceilings(const swarm_cfg *c, const swarm_result *r, const nvme_rows *n);
void default_json_ceilings(bench_json *j, const swarm_cfg *c, const swarm_result *r,
                           const nvme_rows *n);
void default_text_ttl(const ttl_row *rows, int n);
void default_json_ttl(bench_json *j, const ttl_row *rows, int n);
void default_text_story(const swarm_cfg *c, const swarm_result *r, const nvme_rows *n,
                        const ramp_job *job);
void default_json_story(bench_json *j, const swarm_cfg *c, const swarm_result *r,
                        const nvme_rows *n, const ramp_job *job);

#endif
