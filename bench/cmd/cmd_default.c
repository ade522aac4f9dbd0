/* cmd_default.c — `kvtier-bench` with no command: the agent swarm through DRAM + NVMe, each tier next to its ceiling, and the TTL comparison. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"
#include "default_run.h"

static const char summary[] =
    "The default run: a synthetic agent swarm (the `swarm` workload, docs/bench.md)\n"
    "  through a DRAM tier and an NVMe file in a temporary directory (removed at exit),\n"
    "  on the store's manual clock. Reports hit ratios per tier, prefill avoided, the\n"
    "  TTFT model, put/get/lookup latency, each tier's rate next to a ceiling doing the\n"
    "  same work on the same data in the same run (memcpy of the same blocks; raw io_uring\n"
    "  O_DIRECT reads, and reads + writes, of the slots kvtier wrote in the same file), and\n"
    "  the hit ratio under idle TTLs of 1 min / 5 min / 1 h (fast reruns, tiny blocks).";

/* The main phase's size: a few seconds on a 2-vCPU VM, < 2 GiB of memory, a
 * 2 GiB NVMe file. --quick: seconds, for the smoke test. */
typedef struct dflt_size {
    uint32_t agents, block_tokens;
    double duration_s, scale, raw_s; /* raw_s: each NVMe row side's time budget */
    uint64_t dram_bytes, nvme_bytes;
} dflt_size;

static const dflt_size full_size = {6, 256, 7200, 1.0 / 512, 0.5, 64u << 20, 2ull << 30};
static const dflt_size quick_size = {3, 1024, 1200, 1.0 / 4096, 0.1, 4u << 20, 64u << 20};

/* The ramps' wall budget: what is left of RUN_WALL_S after the main run
 * and the TTL reruns, within [RAMP_WALL_MIN_S, RAMP_WALL_MAX_S], so the
 * default run stays within a minute. */
#define RUN_WALL_S 55
#define RAMP_WALL_MIN_S 8
#define RAMP_WALL_MAX_S 35


/* The reruns wait mostly on one-block NVMe writes (demotions): they run
 * side by side, each with its own store and file. */
static void *ttl_thread(void *arg)
{
    ttl_row *w = arg;
    w->rc = swarm_run(&w->c, &w->r);
    return NULL;
}

static void *ramp_thread(void *arg)
{
    ramp_job *w = arg;
    w->rc = swarm_ramp(&w->c, &w->o, &w->k, NULL);
    return NULL;
}

/* ------------------------------------------------------ the story: knees */

static int run_ramps(const swarm_cfg *c, const swarm_result *r, double step_s, double budget_s,
                     ramp_job *job)
{
    swarm_cfg t = *c;
    t.block_bytes = TTL_BLOCK_BYTES; /* hits only: the model loads the real bytes */
    t.pairs = 0;
    t.keep_file = 0;
    t.at_end = NULL;
    t.label = NULL;
    t.dram_bytes = r->dram_blocks * TTL_BLOCK_BYTES;
    /* The main run's profile, its measured fields filled, and efficiencies. */
    t.prof = r->prof;
    t.dram_eff = r->rates.dram_eff;
    t.nvme_eff = r->rates.nvme_eff;
    snprintf(t.dram_eff_src, sizeof t.dram_eff_src, "the main run's: %.140s", r->dram_eff_src);
    snprintf(t.nvme_eff_src, sizeof t.nvme_eff_src, "the main run's: %.140s", r->nvme_eff_src);
    uint64_t slot = 0;
    if (!r->nvme_blocks || bench_slot_bytes(TTL_BLOCK_BYTES, &slot) < 0) {
        fprintf(stderr, "kvtier-bench: the ramps need the main run's NVMe tier\n");
        return BENCH_FAILED;
    }
    swarm_ramp_opts o = {.step_s = step_s,
                         .warm_s = step_s / 6,
                         .start = 2,
                         .max = 1024,
                         .growth = 2,
                         .resolution = 0.1,
                         .max_steps = 10,
                         .wall_budget_s = budget_s};
    for (int i = 0; i < 2; i++) {
        job[i].what = i ? "DRAM + NVMe" : "DRAM alone";
        job[i].c = t;
        job[i].c.wl.duration_s = step_s;
        job[i].c.nvme_bytes = i ? r->nvme_blocks * slot : 0;
        job[i].c.ramp = 1;
        job[i].o = o;
    }
    pthread_t th[2];
    int started[2];
    bench_progress("default: two ramps side by side (DRAM alone, DRAM + NVMe; 64-byte blocks)");
    for (int i = 0; i < 2; i++) {
        started[i] = pthread_create(&th[i], NULL, ramp_thread, &job[i]) == 0;
        if (!started[i])
            ramp_thread(&job[i]);
    }
    for (int i = 0; i < 2; i++)
        if (started[i])
            pthread_join(th[i], NULL);
    bench_progress_done();
    return job[0].rc ? job[0].rc : job[1].rc;
}
/* ----------------------------------------------------------- the command */

int bench_default(int argc, char **argv)
{
    int quick = 0, json = 0, no_ttl = 0, no_ramp = 0;
    int64_t seed = 1, agents = 0;
    const char *dir = NULL, *duration = NULL, *ramp_step = NULL;
    const char *ptexts[16] = {0};
    barg spec[32] = {
        {"quick", BARG_BOOL, &quick, "a seconds-long version for tests (3 agents, 20 virtual min, tiny blocks)"},
        {"agents", BARG_INT, &agents, "agents (default 6; --quick 3)"},
        {"duration", BARG_STR, &duration, "virtual time, s (or 30m, 2h; default 2h; --quick 20m)"},
        {"seed", BARG_INT, &seed, "workload seed (default 1)"},
        {"dir", BARG_STR, &dir, "directory for the NVMe file, removed at exit (default $TMPDIR or /tmp)"},
        {"no-ttl", BARG_BOOL, &no_ttl, "skip the TTL reruns"},
        {"no-ramp", BARG_BOOL, &no_ramp, "skip the two ramps (DRAM alone, DRAM + NVMe) and the answer"},
        {"ramp-step", BARG_STR, &ramp_step, "each ramp step's virtual time (default 1h; --quick 20m)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of tables"},
    };
    int nspec = 0;
    while (spec[nspec].name)
        nspec++;
    nspec = swarm_profile_flags(spec, nspec, ptexts);
    spec[nspec] = (barg){0};
    /* argv[0] is the program when no command was given: parse from argv[1]. */
    int rc = bench_parse_args("default", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    const dflt_size *z = quick ? &quick_size : &full_size;
    swarm_cfg c;
    memset(&c, 0, sizeof c);
    swarm_params_default(&c.wl);
    c.wl.agents = z->agents;
    c.wl.block_tokens = z->block_tokens;
    c.wl.duration_s = z->duration_s;
    const char *bad = NULL;
    if (agents < 0 || agents > 100000)
        bad = "--agents must be 1..100000";
    else if (seed < 0)
        bad = "--seed must be >= 0";
    else if (duration && (swarm_parse_seconds(duration, &c.wl.duration_s) || !(c.wl.duration_s > 0)))
        bad = "--duration wants seconds above 0 (or 30m, 2h)";
    double step_s = quick ? 1200 : 3600;
    if (!bad && ramp_step && (swarm_parse_seconds(ramp_step, &step_s) || !(step_s > 0)))
        bad = "--ramp-step wants seconds above 0 (or 30m, 2h)";
    if (bad) {
        fprintf(stderr, "kvtier-bench: %s\nTry 'kvtier-bench default --help'.\n",
                bad);
        return BENCH_USAGE;
    }
    if (agents)
        c.wl.agents = (uint32_t)agents;
    c.wl.seed = (uint64_t)seed;
    const swarm_model *mdl = swarm_find_model("llama-3.1-8b");
    c.model = mdl->name;
    c.bytes_per_token = mdl->bytes_per_token;
    double b = (double)c.wl.block_tokens * (double)c.bytes_per_token * z->scale;
    c.block_bytes = (uint64_t)b / 64 * 64;
    c.dram_bytes = z->dram_bytes;
    c.nvme_bytes = z->nvme_bytes;
    c.dir = dir;
    c.lease_ms = 30000;
    c.buffer_bytes = 256u << 20;
    c.pairs = 1;
    c.keep_file = 1;
    c.slo_ms = 2000;
    char msg[200];
    if (swarm_profile_resolve(ptexts, &c, msg, sizeof msg)) {
        fprintf(stderr, "kvtier-bench: %s\nTry 'kvtier-bench default --help'.\n", msg);
        return BENCH_USAGE;
    }
    c.label = "default: swarm";

    uint64_t t0 = bench_now_ns();
    swarm_result *r = calloc(1, sizeof *r);
    ttl_row *rows = calloc(8, sizeof *rows);
    ramp_job *ramps = calloc(2, sizeof *ramps);
    nvme_rows nrow;
    memset(&nrow, 0, sizeof nrow);
    nrow.seconds = z->raw_s;
    nvme_job job = {&nrow, (uint64_t)seed};
    int nrows = 0;
    if (!r || !rows || !ramps) {
        fprintf(stderr, "kvtier-bench: out of memory\n");
        free(r);
        free(rows);
        free(ramps);
        return BENCH_FAILED;
    }
    c.at_end = measure_nvme_rows;
    c.at_end_user = &job;
    rc = swarm_run(&c, r);
    if (rc)
        goto out;
    if (r->nvme_path[0]) {
        bench_temp_remove(r->nvme_temp);
        if (r->nvme_temp < 0)
            unlink(r->nvme_path);
    }
    if (!no_ttl) {
        /* No TTL is the main run itself: the hits depend on the workload and
         * the capacities in blocks, not on the bytes in a block. */
        static const double ttls[][2] = {{60, 60}, {300, 300}, {3600, 3600}, {300, 3600}};
        enum { NT = sizeof ttls / sizeof ttls[0] };
        ttl_row *w = &rows[nrows++];
        w->main_run = 1;
        w->r = *r;
        swarm_cfg t = c;
        t.block_bytes = TTL_BLOCK_BYTES;
        t.pairs = 0;
        t.keep_file = 0;
        t.at_end = NULL; /* the NVMe rows are the main run's */
        t.nvme_bytes = 0;
        t.label = NULL; /* threads: no progress line of their own */
        /* The same capacities in blocks as the main run. */
        t.dram_bytes = r->dram_blocks * TTL_BLOCK_BYTES;
        uint64_t slot = 0;
        if (r->nvme_blocks && bench_slot_bytes(TTL_BLOCK_BYTES, &slot) == 0)
            t.nvme_bytes = r->nvme_blocks * slot;
        pthread_t th[NT];
        int started[NT] = {0};
        bench_progress("default: %d TTL reruns side by side (64-byte blocks)", NT);
        for (int i = 0; i < NT; i++) {
            w = &rows[nrows++];
            w->dram_ttl_s = ttls[i][0];
            w->nvme_ttl_s = ttls[i][1];
            w->c = t;
            w->c.dram_ttl_ms = (uint64_t)(w->dram_ttl_s * 1e3);
            w->c.nvme_ttl_ms = (uint64_t)(w->nvme_ttl_s * 1e3);
            started[i] = pthread_create(&th[i], NULL, ttl_thread, w) == 0;
            if (!started[i])
                ttl_thread(w); /* no thread: run it here */
        }
        for (int i = 0; i < NT; i++)
            if (started[i])
                pthread_join(th[i], NULL);
        bench_progress_done();
        for (int i = 0; i < nrows; i++)
            if (rows[i].rc) {
                rc = rows[i].rc;
                goto out;
            }
    }
    if (!no_ramp) {
        double left = RUN_WALL_S - (double)(bench_now_ns() - t0) / 1e9;
        rc = run_ramps(&c, r, step_s,
                       left < RAMP_WALL_MIN_S   ? RAMP_WALL_MIN_S
                       : left > RAMP_WALL_MAX_S ? RAMP_WALL_MAX_S
                                                : left,
                       ramps);
        if (rc)
            goto out;
    }
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "default");
        bench_json_bool(&j, "quick", quick);
        swarm_json_config(&j, &c, r);
        swarm_json_results(&j, &c, r);
        default_json_ceilings(&j, &c, r, &nrow);
        default_json_ttl(&j, rows, nrows);
        if (!no_ramp)
            default_json_story(&j, &c, r, &nrow, ramps);
        bench_json_num(&j, "total_wall_s", wall);
        bench_json_end_object(&j);
    } else {
        bench_print_header(stdout, "agent swarm through DRAM + NVMe (the default run)");
        swarm_text_workload(&c, r);
        swarm_text_results(&c, r);
        default_text_ceilings(&c, r, &nrow);
        if (nrows)
            default_text_ttl(rows, nrows);
        if (!no_ramp)
            default_text_story(&c, r, &nrow, ramps);
        printf("\n  total        %.1f s wall; GB = 1e9 bytes; TTFT is a model (docs/bench.md); "
               "%s\n",
               wall, quick ? "--quick sizes" : "kvtier-bench swarm --help for every knob");
    }
out:
    if (r->nvme_path[0]) {
        bench_temp_remove(r->nvme_temp);
        if (r->nvme_temp < 0)
            unlink(r->nvme_path);
    }
    free(r);
    free(rows);
    free(ramps);
    return rc;
}

