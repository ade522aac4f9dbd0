/* cmd_swarm.c — `kvtier-bench swarm`: its flags; the run is workload/swarm_run.c, the reports report/swarm_report.c. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "../workload/swarm_run.h"
#include "../workload/swarm_multi.h"
#include "../model/knee.h"
#include "../model/ttft.h"

static const char summary[] =
    "The agent swarm (docs/bench.md): agents run sessions that share a tools+system\n"
    "  prefix, append tool results every few seconds and user text every few minutes,\n"
    "  compact now and then, and spawn sub-agents. Each request goes through a real\n"
    "  store on its manual clock (lookup with lease, get the hits tier by tier, put\n"
    "  the rest); TTFT is modelled on a hardware profile (--profile: link and NVMe rates,\n"
    "  GPUs, prefill rate; kvtier's measured efficiency applied) with FIFO queueing.\n"
    "  --mode ramp searches the knee: the most agents whose TTFT p95 meets --slo-ms.";

/* Flags that take decimals: parsed from text after the table is read. */
typedef struct dflag {
    const char *name;
    double *out;
    const char *text;
    double lo, hi;
} dflag;

int bench_swarm(int argc, char **argv)
{
    swarm_cfg c;
    memset(&c, 0, sizeof c);
    swarm_params_default(&c.wl);
    swarm_params *p = &c.wl;
    const char *mode = "static", *model = "llama-3.1-8b", *scale = NULL, *cycle = "rr";
    const char *duration = NULL, *dram_ttl = NULL, *nvme_ttl = NULL, *ttl = NULL;
    const char *stagger = NULL, *ramp_step = NULL, *ramp_warm = NULL, *ramp_wall = NULL;
    const char *ptexts[16] = {0};
    swarm_layout_texts lt = {0};
    swarm_cluster_texts ct = {0};
    int64_t agents = -1, types = -1, max_req = 0, seed = -1, block_tokens = -1, prefix = -1,
            max_ctx = -1, spawn_min = -1, spawn_max = -1, sub_pmin = -1, sub_pmax = -1,
            sessions = -1, lease = 30000, copy_threads = 0, ramp_start = 8, ramp_steps = 16;
    uint64_t bpt = 0, block_bytes = 0, dram_bytes = 512u << 20, nvme_bytes = 2ull << 30,
             buffer = 256u << 20;
    int no_promote = 0, no_pairs = 0, json = 0;
    double slo = 2000, growth = 2, resolution = 0.05;
    dflag df[] = {
        {"first-tokens", &p->first_median, NULL, 1, 1e8},
        {"first-sigma", &p->first_sigma, NULL, 0, 10},
        {"turns", &p->turns_median, NULL, 1, 1e6},
        {"turns-sigma", &p->turns_sigma, NULL, 0, 10},
        {"tool-share", &p->tool_share, NULL, 0, 1},
        {"tool-append", &p->tool_append_median, NULL, 0, 1e7},
        {"tool-append-sigma", &p->tool_append_sigma, NULL, 0, 10},
        {"user-append", &p->user_append_median, NULL, 0, 1e7},
        {"user-append-sigma", &p->user_append_sigma, NULL, 0, 10},
        {"reset-rate", &p->reset_rate, NULL, 0, 1},
        {"reset-keep-min", &p->reset_keep_min, NULL, 0, 1},
        {"reset-keep-max", &p->reset_keep_max, NULL, 0, 1},
        {"output-tokens", &p->output_median, NULL, 1, 1e6},
        {"output-sigma", &p->output_sigma, NULL, 0, 10},
        {"tool-think-mu", &p->tool_think_mu, NULL, -20, 20},
        {"tool-think-sigma", &p->tool_think_sigma, NULL, 0, 10},
        {"human-think-mu", &p->human_think_mu, NULL, -20, 20},
        {"human-think-sigma", &p->human_think_sigma, NULL, 0, 10},
        {"human-think-min", &p->human_think_min_s, NULL, 0, 1e6},
        {"decode-tokens-per-s", &p->decode_tps, NULL, 0, 1e9},
        {"spawn-share", &p->spawn_share, NULL, 0, 1},
        {"sub-requests", &p->sub_requests_median, NULL, 1, 1e6},
        {"sub-requests-sigma", &p->sub_requests_sigma, NULL, 0, 10},
        {"sub-first-tokens", &p->sub_first_median, NULL, 1, 1e8},
        {"sub-first-sigma", &p->sub_first_sigma, NULL, 0, 10},
        {"slo-ms", &slo, NULL, 1, 1e9},
        {"ramp-growth", &growth, NULL, 1.01, 100},
        {"ramp-resolution", &resolution, NULL, 0, 1},
    };
    enum { NDF = sizeof df / sizeof df[0] };
    swarm_multi_texts mt = {0};
    barg spec[112];
    int ns = 0;
    spec[ns++] = (barg){"mode", BARG_STR, &mode, "static (default) or ramp"};
    spec[ns++] = (barg){"agents", BARG_INT, &agents, "agents (static; default 32) or the most a ramp tries (default 256)"};
    spec[ns++] = (barg){"agent-types", BARG_INT, &types, "agent types, each with its own prefix (default 1)"};
    spec[ns++] = (barg){"duration", BARG_STR, &duration, "virtual time of arrivals, s (or 30m, 2h; default 1h; ramp: the steps)"};
    spec[ns++] = (barg){"requests", BARG_INT, &max_req, "stop after this many requests (default: no limit)"};
    spec[ns++] = (barg){"stagger", BARG_STR, &stagger, "agents' first requests spread over this long, s (default 60)"};
    spec[ns++] = (barg){"ramp-step", BARG_STR, &ramp_step, "ramp: virtual s each step's run lasts (default 1h)"};
    spec[ns++] = (barg){"ramp-warm", BARG_STR, &ramp_warm, "ramp: requests before this are not judged (default 10m)"};
    spec[ns++] = (barg){"ramp-start", BARG_INT, &ramp_start, "ramp: agents of the first step (default 8)"};
    spec[ns++] = (barg){"ramp-steps", BARG_INT, &ramp_steps, "ramp: at most this many steps (default 16)"};
    spec[ns++] = (barg){"ramp-wall", BARG_STR, &ramp_wall, "ramp: no step starts after this much wall time, s (default none)"};
    spec[ns++] = (barg){"seed", BARG_INT, &seed, "workload seed (default 1)"};
    spec[ns++] = (barg){"sessions", BARG_INT, &sessions, "session scripts in a pool that agents cycle through (default 0: every session new)"};
    spec[ns++] = (barg){"cycle", BARG_STR, &cycle, "rr (round-robin, default) or random: how agents pick pool scripts"};
    spec[ns++] = (barg){"prefix-tokens", BARG_INT, &prefix, "shared tools+system prefix per agent type (default 15000)"};
    spec[ns++] = (barg){"max-context-tokens", BARG_INT, &max_ctx, "a turn past this compacts (default 262144)"};
    spec[ns++] = (barg){"spawn-min", BARG_INT, &spawn_min, "sub-agents per spawn, at least (default 1)"};
    spec[ns++] = (barg){"spawn-max", BARG_INT, &spawn_max, "sub-agents per spawn, at most (default 4)"};
    spec[ns++] = (barg){"sub-prefix-min", BARG_INT, &sub_pmin, "sub-agents' tool prefix, tokens, at least (default 8000)"};
    spec[ns++] = (barg){"sub-prefix-max", BARG_INT, &sub_pmax, "... at most (default 10000)"};
    static const char *const dhelp[NDF] = {
        "first request's median tokens, prefix included (default 25000)",
        "lognormal sigma of the first request's own part (default 1.4)",
        "median requests per session (default 45)",
        "lognormal sigma of requests per session (default 1.0, assumed)",
        "share of turns after a tool call (default 0.81)",
        "median tokens appended after a tool call (default 290)",
        "its lognormal sigma (default 1.797: p90 ~2900)",
        "median tokens appended after user text (default 100)",
        "its lognormal sigma (default 1.0, assumed)",
        "share of turns that compact the context (default 0.017)",
        "a compaction keeps at least this share of the context (default 0.1, assumed)",
        "... at most this share (default 0.5)",
        "median output tokens (default 216)",
        "their lognormal sigma (default 1.0, assumed)",
        "tool-loop think time: lognormal mu, log-seconds (default 2.21)",
        "... sigma (default 0.75)",
        "human think time: lognormal mu (default 5.55)",
        "... sigma (default 1.22)",
        "... samples below this many seconds are redrawn (default 60)",
        "open-loop response time = output tokens / this (default 100, assumed)",
        "share of sessions that spawn sub-agents (default 0.04)",
        "median requests per sub-agent (default 11)",
        "its lognormal sigma (default 0.5, assumed)",
        "median tokens of a sub-agent's task beyond its prefix (default 1000, assumed)",
        "its lognormal sigma (default 1.0, assumed)",
        "TTFT model: the SLO on p95 (default 2000)",
        "ramp: agents x this per step while the SLO holds (default 2)",
        "ramp: bisect until the gap is <= this share of the knee (default 0.05; 0: 1 agent)",
    };
    for (int i = 0; i < NDF; i++)
        spec[ns++] = (barg){df[i].name, BARG_STR, &df[i].text, dhelp[i]};
    spec[ns++] = (barg){"block-tokens", BARG_INT, &block_tokens, "tokens per block (default 64)"};
    spec[ns++] = (barg){"model", BARG_STR, &model, "llama-3.1-8b (128 KiB/token, default) or llama-3.1-70b (320 KiB/token)"};
    spec[ns++] = (barg){"bytes-per-token", BARG_SIZE, &bpt, "KV bytes per token (default: the model's)"};
    spec[ns++] = (barg){"scale-bytes", BARG_STR, &scale, "move this fraction of each block's bytes, e.g. 1/256 (default 1/256)"};
    spec[ns++] = (barg){"block-bytes", BARG_SIZE, &block_bytes, "bytes moved per block (overrides --scale-bytes)"};
    spec[ns++] = (barg){"dram-bytes", BARG_SIZE, &dram_bytes, "DRAM tier capacity (default 512M)"};
    spec[ns++] = (barg){"nvme-bytes", BARG_SIZE, &nvme_bytes, "NVMe tier file size, whole slots (default 2G; 0: no NVMe tier)"};
    spec[ns++] = (barg){"dir", BARG_STR, &c.dir, "directory of the NVMe file, removed at exit (default $TMPDIR or /tmp)"};
    spec[ns++] = (barg){"policy", BARG_STR, &c.policy, "eviction policy of both tiers (default: the library's, prefix)"};
    spec[ns++] = (barg){"ttl", BARG_STR, &ttl, "idle TTL of both tiers, s (or 5m, 1h; default none)"};
    spec[ns++] = (barg){"dram-ttl", BARG_STR, &dram_ttl, "DRAM idle TTL (overrides --ttl)"};
    spec[ns++] = (barg){"nvme-ttl", BARG_STR, &nvme_ttl, "NVMe idle TTL (overrides --ttl)"};
    spec[ns++] = (barg){"lease-ms", BARG_INT, &lease, "lookup pins its hits this long (virtual ms; default 30000)"};
    spec[ns++] = (barg){"buffer-bytes", BARG_SIZE, &buffer, "the engine's buffer; longer prompts move in several calls (default 256M)"};
    spec[ns++] = (barg){"copy-threads", BARG_INT, &copy_threads, "KVT_OPT_COPY_THREADS (default: the library's)"};
    spec[ns++] = (barg){"no-promote", BARG_BOOL, &no_promote, "gets do not promote NVMe hits into DRAM"};
    spec[ns++] = (barg){"no-memcpy", BARG_BOOL, &no_pairs, "skip the memcpy baseline (hit ratios and TTFT only)"};
    ns = swarm_profile_flags(spec, ns, ptexts);
    ns = swarm_layout_flags(spec, ns, &lt);
    ns = swarm_cluster_flags(spec, ns, &ct);
    ns = swarm_multi_flags(spec, ns, &mt); /* --procs, --nodes: workload/swarm_multi.c */
    spec[ns++] = (barg){"json", BARG_BOOL, &json, "print one JSON object instead of tables"};
    spec[ns] = (barg){0};
    int rc = bench_parse_args("swarm", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    const char *bad = NULL;
    char msg[160];
    for (int i = 0; i < NDF && !bad; i++) {
        if (!df[i].text)
            continue;
        char *end;
        errno = 0;
        double v = strtod(df[i].text, &end);
        if (errno || end == df[i].text || *end || !(v >= df[i].lo && v <= df[i].hi)) {
            snprintf(msg, sizeof msg, "--%s wants a number in [%g, %g], not '%s'", df[i].name,
                     df[i].lo, df[i].hi, df[i].text);
            bad = msg;
        }
        *df[i].out = v;
    }
    c.ramp = strcmp(mode, "ramp") == 0;
    const swarm_model *mdl = swarm_find_model(model);
    double sc = 1.0 / 256, dsec = 0, rwarm = 0, rwall = 0;
    if (!bad && !c.ramp && strcmp(mode, "static") != 0)
        bad = "--mode must be static or ramp";
    else if (!bad && !mdl && !bpt)
        bad = "--model must be llama-3.1-8b or llama-3.1-70b (or give --bytes-per-token)";
    else if (!bad && scale && swarm_parse_fraction(scale, &sc))
        bad = "--scale-bytes wants a fraction in (0, 1] like 1/256 or 0.01";
    else if (!bad && strcmp(cycle, "rr") != 0 && strcmp(cycle, "random") != 0)
        bad = "--cycle must be rr or random";
    if (!bad) {
        struct {
            const char *name, *text;
            double *out;
        } secs[] = {{"--duration", duration, &p->duration_s},
                    {"--stagger", stagger, &p->stagger_s},
                    {"--ramp-step", ramp_step, &dsec},
                    {"--ramp-warm", ramp_warm, &rwarm},
                    {"--ramp-wall", ramp_wall, &rwall}};
        for (size_t i = 0; i < 5 && !bad; i++) {
            if (secs[i].text && swarm_parse_seconds(secs[i].text, secs[i].out)) {
                snprintf(msg, sizeof msg, "%s wants seconds (or 30m, 2h), not '%s'", secs[i].name,
                         secs[i].text);
                bad = msg;
            }
        }
        double t_all = 0, t;
        if (!bad && ttl && swarm_parse_seconds(ttl, &t_all))
            bad = "--ttl wants seconds (or 5m, 1h, inf)";
        c.dram_ttl_ms = c.nvme_ttl_ms = (uint64_t)llround(t_all * 1e3);
        if (!bad && dram_ttl) {
            if (swarm_parse_seconds(dram_ttl, &t))
                bad = "--dram-ttl wants seconds (or 5m, 1h, inf)";
            c.dram_ttl_ms = (uint64_t)llround(t * 1e3);
        }
        if (!bad && nvme_ttl) {
            if (swarm_parse_seconds(nvme_ttl, &t))
                bad = "--nvme-ttl wants seconds (or 5m, 1h, inf)";
            c.nvme_ttl_ms = (uint64_t)llround(t * 1e3);
        }
    }
    if (!bad) {
        if (agents >= 0)
            p->agents = (uint32_t)(agents > 1000000 ? 1000001 : agents);
        else if (c.ramp)
            p->agents = 256;
        if (types >= 0)
            p->agent_types = (uint32_t)(types > 1000000 ? 0 : types);
        if (seed >= 0)
            p->seed = (uint64_t)seed;
        p->max_requests = max_req > 0 ? (uint64_t)max_req : 0;
        if (sessions >= 0)
            p->sessions = (uint32_t)(sessions > 100000000 ? 100000000 : sessions);
        p->cycle_random = strcmp(cycle, "random") == 0;
        if (block_tokens >= 0)
            p->block_tokens = (uint32_t)(block_tokens > 65536 ? 0 : block_tokens);
        if (prefix >= 0)
            p->prefix_tokens = (uint32_t)(prefix > (1 << 24) ? 1 << 24 : prefix);
        if (max_ctx >= 0)
            p->max_context = (uint32_t)(max_ctx > (1 << 25) ? 1 << 25 : max_ctx);
        if (spawn_min >= 0)
            p->spawn_min = (uint32_t)(spawn_min > 65 ? 65 : spawn_min);
        if (spawn_max >= 0)
            p->spawn_max = (uint32_t)(spawn_max > 65 ? 65 : spawn_max);
        if (sub_pmin >= 0)
            p->sub_prefix_min = (uint32_t)(sub_pmin > (1 << 24) ? 1 << 24 : sub_pmin);
        if (sub_pmax >= 0)
            p->sub_prefix_max = (uint32_t)(sub_pmax > (1 << 24) ? 1 << 24 : sub_pmax);
        if (agents == 0 || types == 0 || block_tokens == 0)
            bad = "--agents, --agent-types and --block-tokens must be at least 1";
        else if (c.ramp && ramp_step && !(dsec > 0))
            bad = "--ramp-step must be above 0";
        else if (c.ramp && (ramp_start < 1 || ramp_start > p->agents))
            bad = "--ramp-start must be 1..--agents";
        else if (c.ramp && (ramp_steps < 1 || ramp_steps > KNEE_MAX_STEPS))
            bad = "--ramp-steps must be 1..64";
        else if (lease < 0 || lease > 86400000)
            bad = "--lease-ms must be 0..86400000";
        else if (copy_threads < 0 || copy_threads > 64)
            bad = "--copy-threads must be 1..64";
    }
    if (bad) {
        fprintf(stderr, "kvtier-bench swarm: %s\nTry 'kvtier-bench swarm --help'.\n", bad);
        return BENCH_USAGE;
    }
    c.model = mdl ? mdl->name : "custom";
    c.bytes_per_token = bpt ? bpt : mdl->bytes_per_token;
    c.slo_ms = slo;
    if (swarm_profile_resolve(ptexts, &c, msg, sizeof msg) ||
        swarm_layout_resolve(&lt, &c, msg, sizeof msg)) {
        fprintf(stderr, "kvtier-bench swarm: %s\nTry 'kvtier-bench swarm --help'.\n", msg);
        return BENCH_USAGE;
    }
    swarm_ramp_opts ro = {.step_s = ramp_step ? dsec : 3600,
                          .warm_s = ramp_warm ? rwarm : 600,
                          .start = (uint32_t)ramp_start,
                          .max = p->agents,
                          .growth = growth,
                          .resolution = resolution,
                          .max_steps = (int)ramp_steps,
                          .wall_budget_s = rwall};
    c.lease_ms = (uint32_t)lease;
    c.copy_threads = (int)copy_threads;
    c.no_promote = no_promote;
    c.pairs = !no_pairs;
    c.dram_bytes = dram_bytes;
    c.nvme_bytes = nvme_bytes;
    swarm_cluster_resolve(&ct, &c);
    c.buffer_bytes = buffer;
    if (block_bytes) {
        c.block_bytes = block_bytes;
    } else {
        double b = (double)p->block_tokens * (double)c.bytes_per_token * sc;
        c.block_bytes = b < 64 ? 64 : (uint64_t)b / 64 * 64; /* whole cache lines */
    }
    c.label = "swarm";
    if (swarm_multi_wanted(&mt))
        return swarm_multi_main(&c, &ro, &mt, json, argc, argv);
    swarm_result *r = malloc(sizeof *r);
    if (!r) {
        fprintf(stderr, "kvtier-bench swarm: out of memory\n");
        return BENCH_FAILED;
    }
    knee_result *kr = c.ramp ? malloc(sizeof *kr) : NULL;
    if (c.ramp && !kr) {
        free(r);
        fprintf(stderr, "kvtier-bench swarm: out of memory\n");
        return BENCH_FAILED;
    }
    if (c.ramp) {
        c.wl.duration_s = ro.step_s;
        rc = swarm_ramp(&c, &ro, kr, r);
        c.wl.agents = kr->knee ? kr->knee : kr->step[0].agents; /* the run r reports */
    } else {
        rc = swarm_run(&c, r);
    }
    if (rc == BENCH_OK) {
        if (json) {
            bench_json j;
            bench_json_init(&j, stdout);
            bench_json_object(&j, NULL);
            bench_json_header(&j, "swarm");
            swarm_json_config(&j, &c, r);
            swarm_json_layout(&j, &c);
            swarm_json_results(&j, &c, r);
            if (c.ramp)
                swarm_json_ramp(&j, &c, &ro, kr);
            bench_json_end_object(&j);
        } else {
            bench_print_header(stdout, c.ramp ? "agent swarm ramp through a store (manual clock)"
                                              : "agent swarm through a store (manual clock)");
            swarm_text_workload(&c, r);
            if (c.ramp)
                printf("  (the run below is the knee's: %u agents for %.0f virtual s)\n",
                       c.wl.agents, ro.step_s);
            swarm_text_results(&c, r);
            if (c.ramp)
                swarm_text_ramp(&c, &ro, kr);
        }
    }
    free(kr);
    free(r);
    return rc;
}

