/* cmd_compare.c — `kvtier-bench compare`: the same swarm, static and ramp, through HBM+DRAM, HBM+DRAM+NVMe, HBM+DRAM+plain files and HBM+DRAM+cluster tier; one table (text, JSON, CSV) and the charts (bench/plot.py). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../bench.h"
#include "../baseline/anchor_files.h"
#include "../model/knee.h"
#include "../report/rows.h"
#include "../workload/swarm_run.h"
#include "../workload/trace.h"

#ifndef KVT_BENCH_PLOT
#define KVT_BENCH_PLOT "bench/plot.py"
#endif

static const char summary[] =
    "The comparison of the talk: the agent swarm (as `swarm`) through four stores on\n"
    "  the same workload and hardware profile: HBM+DRAM, HBM+DRAM+NVMe (kvtier's tier),\n"
    "  HBM+DRAM+plain files (the anchors' one-file-per-block tier) and HBM+DRAM+cluster\n"
    "  tier (kvtier's shared-directory tier: the talk's memory grid; --no-cluster skips\n"
    "  it). For each: a\n"
    "  static run of --agents, and a ramp that finds its knee (the most agents whose\n"
    "  TTFT p95 meets --slo-ms). Then the TTL curve: hit ratio and re-prefills per\n"
    "  session at TTL 1 min, 5 min, 1 h and none, on the NVMe store. With --out DIR it\n"
    "  writes compare.csv, knees.csv, ttl.csv, compare.json and the PNG charts\n"
    "  (bench/plot.py).";

/* The four stores. HBM is modelled in every one (see hbm_note). */
enum { CFG_DRAM, CFG_NVME, CFG_FILES, CFG_CLUSTER, NCFG };
static const char *const cfg_name[NCFG] = {"hbm+dram", "hbm+dram+nvme", "hbm+dram+files",
                                           "hbm+dram+cluster"};

static const char cluster_note[] =
    "the cluster tier (kind \"cluster\": one verified file per block in a shared directory, "
    "every put written through) under DRAM, its quota the NVMe tier's capacity; with one "
    "process it behaves as one large shared tier, which is the talk's memory grid; its loads "
    "come at the profile's cluster GB/s";

/* Whether this build has the cluster tier (io_uring builds). */
static int cluster_built(void)
{
    kvt_config *cfg = NULL;
    if (kvt_config_new(&cfg) < 0)
        return 0;
    int ok = kvt_config_add_tier(cfg, "cluster", NULL) >= 0;
    kvt_config_free(cfg);
    return ok;
}

static const char hbm_note[] =
    "HBM is modelled (no GPU here): the engine's HBM holds the running requests' KV; "
    "reuse is served from the tiers below it, at the profile's link rate";

/* What a configuration gave. */
typedef struct cfg_out {
    swarm_result *st; /* the static run */
    knee_result knee;
    double nvme_eff;  /* the efficiency its loads from below DRAM used */
    char eff_src[160];
} cfg_out;

static const bench_field run_fields[] = {
    {"config", BT_STR},       {"mode", BT_STR},        {"agents", BT_U64},
    {"requests", BT_U64},     {"hit_ratio", BT_NUM},   {"ttft_p50_ms", BT_NUM},
    {"ttft_p95_ms", BT_NUM},  {"goodput_rps", BT_NUM}, {"within_slo", BT_BOOL},
    {"wall_s", BT_NUM},
};
static const bench_col run_cols[] = {
    BENCH_COL_LEFT("config", NULL, "config"),
    BENCH_COL_LEFT("mode", NULL, "mode"),
    BENCH_COL("agents", NULL, "agents"),
    BENCH_COL("requests", NULL, "requests"),
    {.head = "hit ratio", .fmt = "%.1f%%", .keys = {"hit_ratio"}, .scale = 100},
    BENCH_COL("TTFT p50 ms", "%.0f", "ttft_p50_ms"),
    BENCH_COL("TTFT p95 ms", "%.0f", "ttft_p95_ms"),
    BENCH_COL("goodput req/s", "%.3f", "goodput_rps"),
    BENCH_COL_LEFT("SLO", "met|MISSED", "within_slo"),
};

static const bench_field knee_fields[] = {
    {"config", BT_STR},          {"knee_agents", BT_U64},    {"first_missed_agents", BT_U64},
    {"exhausted", BT_BOOL},      {"capped", BT_BOOL},        {"steps", BT_U64},
    {"below_dram_gbps", BT_NUM}, {"below_dram_efficiency", BT_NUM},
    {"efficiency_source", BT_STR},
};
static const bench_col knee_cols[] = {
    BENCH_COL_LEFT("config", NULL, "config"),
    BENCH_COL("knee (agents at SLO)", NULL, "knee_agents"),
    BENCH_COL("falls off at", NULL, "first_missed_agents"),
    BENCH_COL("steps", NULL, "steps"),
    BENCH_COL("tier below DRAM", "%.3g GB/s", "below_dram_gbps"),
    BENCH_COL("x efficiency", "%.3f", "below_dram_efficiency"),
};

static const bench_field ttl_fields[] = {
    {"config", BT_STR},       {"ttl_s", BT_NUM},   {"hit_ratio", BT_NUM},
    {"reprefills_per_session", BT_NUM}, {"sessions", BT_U64}, {"requests", BT_U64},
};
static const bench_col ttl_cols[] = {
    BENCH_COL_LEFT("config", NULL, "config"),
    BENCH_COL("TTL s", "%.0f", "ttl_s"),
    {.head = "hit ratio", .fmt = "%.1f%%", .keys = {"hit_ratio"}, .scale = 100},
    BENCH_COL("re-prefills / session", "%.2f", "reprefills_per_session"),
    BENCH_COL("sessions", NULL, "sessions"),
};

/* kvtier's NVMe tier reading n blocks cold: put into a store, closed (the
 * close writes DRAM down), reopened (the blocks are on NVMe only), one
 * kvt_get of all n without promotion. GB/s, or 0 when it failed. */
static double kvtier_cold_gbps(const kvt_key *keys, size_t n, void *const *bufs, size_t len,
                               const char *path)
{
    uint64_t slot = 0;
    if (bench_slot_bytes(len, &slot) < 0)
        return 0;
    bench_store_spec sp = bench_dram_spec("compare", len, (n + 16) * len);
    sp.tier[BENCH_NVME] = (bench_tier_spec){.capacity = (n + 16) * slot, .path = path,
                                            .recreate = 1};
    kvt_store *s = NULL;
    double gbps = 0;
    if (bench_store_open(&sp, &s))
        return 0;
    int put = kvt_put(s, keys, n, bufs, NULL, NULL);
    kvt_close(s);
    sp.tier[BENCH_NVME].recreate = 0;
    if (put == (int)n && bench_store_open(&sp, &s) == BENCH_OK) {
        kvt_io_opts o = {.size = sizeof o, .flags = KVT_IO_NO_PROMOTE};
        uint64_t t0 = bench_now_ns();
        int got = kvt_get(s, keys, n, bufs, &o, NULL);
        uint64_t ns = bench_now_ns() - t0;
        if (got == (int)n && bench_stat(s, "nvme.hits") >= n)
            gbps = swarm_gbps((uint64_t)n * len, ns);
        kvt_close(s);
    }
    return gbps;
}

/* The anchors' file-per-block reads against kvtier's NVMe tier, the same
 * blocks, both cold (written, then out of every cache: files written back
 * and dropped from the page cache; kvtier's O_DIRECT slots after a reopen):
 * the plain-files store's efficiency below DRAM. Both measured here. */
static double files_efficiency(const swarm_cfg *c, char *src, size_t cap)
{
    const size_t n = 256, len = (size_t)c->block_bytes;
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/kvtier-compare-XXXXXX", swarm_dir(c));
    kvt_key *keys = calloc(n, sizeof *keys);
    void **bufs = calloc(n, sizeof *bufs);
    char *mem = aligned_alloc(4096, n * ((len + 4095) / 4096 * 4096));
    anchor_pool *pool = anchor_pool_new(8);
    double eff = 1;
    snprintf(src, cap, "not measured (no memory, threads or temp dir): 1");
    if (keys && bufs && mem && pool && mkdtemp(dir) && bench_keys(keys, n, 7) == 0) {
        for (size_t i = 0; i < n; i++)
            bufs[i] = mem + i * ((len + 4095) / 4096 * 4096), memset(bufs[i], (int)i, len);
        int rc = anchor_run(pool, ANCHOR_PUT, dir, keys, n, bufs, len);
        if (!rc)
            rc = anchor_run(pool, ANCHOR_WRITEBACK, dir, keys, n, bufs, len);
        uint64_t t0 = bench_now_ns();
        if (!rc)
            rc = anchor_run(pool, ANCHOR_GET, dir, keys, n, bufs, len);
        uint64_t ns = bench_now_ns() - t0;
        anchor_run(pool, ANCHOR_UNLINK, dir, keys, n, bufs, len);
        snprintf(path, sizeof path, "%s/kvtier.nvme", dir);
        int h = bench_temp_register(path);
        double kv = rc ? 0 : kvtier_cold_gbps(keys, n, bufs, len, path);
        unlink(path);
        bench_temp_remove(h);
        rmdir(dir);
        if (rc) {
            snprintf(src, cap, "not measured (file I/O failed: %s): 1", strerror(-rc));
        } else if (!(kv > 0) || !ns) {
            snprintf(src, cap, "not measured (kvtier's cold NVMe read failed): 1");
        } else {
            double files = swarm_gbps((uint64_t)n * len, ns);
            eff = files / kv;
            snprintf(src, cap,
                     "measured here: %zu cold %zu-byte blocks, one file each %.3g GB/s / "
                     "kvtier NVMe %.3g GB/s%s",
                     n, len, files, kv, eff > 1 ? " (above 1: taken as 1)" : "");
            if (eff > 1)
                eff = 1;
        }
    }
    anchor_pool_free(pool);
    free(mem);
    free(bufs);
    free(keys);
    return eff;
}

static void add_run(bench_rows *t, const char *cfg, const char *mode, uint32_t agents,
                    uint64_t requests, double hit, double p50, double p95, double goodput, int met,
                    double wall)
{
    bench_rows_add(t);
    bench_rows_str(t, "config", cfg);
    bench_rows_str(t, "mode", mode);
    bench_rows_u64(t, "agents", agents);
    bench_rows_u64(t, "requests", requests);
    bench_rows_num(t, "hit_ratio", hit);
    bench_rows_num(t, "ttft_p50_ms", p50);
    bench_rows_num(t, "ttft_p95_ms", p95);
    bench_rows_num(t, "goodput_rps", goodput);
    bench_rows_bool(t, "within_slo", met);
    bench_rows_num(t, "wall_s", wall);
}

/* The TTL curve of a trace (--trace): every unique block fits (no
 * eviction), so what the TTL costs is all there is; re-prefills per session
 * are the requests that lost hits to expiry against the same replay without
 * a TTL, per trace file (a WEKA file is a session). */
static int trace_ttl(const char *path, const char *dir, const double *ttl_s, int nttl,
                     bench_rows *t)
{
    trace_set ts;
    double parse_s = 0;
    int rc = replay_load("compare", &path, 1, &ts, &parse_s);
    if (rc)
        return rc;
    uint32_t *h0 = malloc((ts.nreq ? ts.nreq : 1) * sizeof *h0);
    char name[64];
    snprintf(name, sizeof name, "trace:%s", trace_formats(&ts));
    rc = h0 ? BENCH_OK : BENCH_FAILED;
    /* No TTL first: its hits are the baseline of the others. */
    for (int pass = 0; pass < 2 && rc == BENCH_OK; pass++) {
        for (int i = 0; i < nttl && rc == BENCH_OK; i++) {
            if ((pass == 0) != isinf(ttl_s[i]))
                continue;
            replay_cfg cfg = {.ttl_ms = isinf(ttl_s[i]) ? 0 : (uint64_t)(ttl_s[i] * 1e3),
                              .block_bytes = 64,
                              .dir = dir};
            replay_result rr;
            replay_expiry ex = {0};
            const char *baseline = NULL;
            rc = replay_with_expiry(&ts, &cfg, &rr, &ex, &baseline, pass ? h0 : NULL,
                                    pass ? NULL : h0);
            if (rc)
                break;
            bench_rows_add(t);
            bench_rows_str(t, "config", name);
            bench_rows_num(t, "ttl_s", ttl_s[i]);
            bench_rows_num(t, "hit_ratio", rr.total_blocks ? (double)rr.hit_blocks /
                                                                 (double)rr.total_blocks : 0);
            bench_rows_num(t, "reprefills_per_session", pass ? ex.per_session : 0);
            bench_rows_u64(t, "sessions", ts.nfiles);
            bench_rows_u64(t, "requests", rr.requests);
        }
    }
    free(h0);
    trace_free(&ts);
    return rc;
}

static int write_csv(const char *dir, const char *name, const bench_rows *t)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kvtier-bench compare: %s: %s\n", path, strerror(errno));
        return -1;
    }
    bench_rows_csv(t, f);
    return fclose(f) ? -1 : 0;
}

typedef struct knobs {
    int64_t agents, max_agents, ramp_start, ramp_steps, ttl_agents;
    const char *duration, *step, *warm, *ttl_duration, *wall;
} knobs;

int bench_compare(int argc, char **argv)
{
    swarm_cfg c;
    memset(&c, 0, sizeof c);
    swarm_params_default(&c.wl);
    const char *model = "llama-3.1-8b", *scale = NULL, *out = NULL, *plot = KVT_BENCH_PLOT;
    const char *ptexts[16] = {0};
    swarm_layout_texts lt = {0};
    swarm_cluster_texts ct = {0};
    int no_cluster = 0;
    knobs k = {-1, -1, -1, -1, -1, NULL, NULL, NULL, NULL, NULL};
    uint64_t dram_bytes = 0, nvme_bytes = 0;
    int quick = 0, json = 0, no_ttl = 0, no_plot = 0;
    const char *trace = NULL;
    double slo = 2000;
    const char *slo_text = NULL;
    barg spec[48];
    int ns = 0;
    spec[ns++] = (barg){"quick", BARG_BOOL, &quick, "tiny sizes for tests (a few seconds)"};
    spec[ns++] = (barg){"agents", BARG_INT, &k.agents, "static runs' agents (default 24; quick 4)"};
    spec[ns++] = (barg){"duration", BARG_STR, &k.duration, "static runs' virtual time (default 10m; quick 3m)"};
    spec[ns++] = (barg){"max-agents", BARG_INT, &k.max_agents, "the most agents a ramp tries (default 128; quick 16)"};
    spec[ns++] = (barg){"ramp-start", BARG_INT, &k.ramp_start, "ramp: the first step's agents (default 4; quick 2)"};
    spec[ns++] = (barg){"ramp-steps", BARG_INT, &k.ramp_steps, "ramp: at most this many steps (default 10; quick 4)"};
    spec[ns++] = (barg){"ramp-step", BARG_STR, &k.step, "ramp: each step's virtual time (default 10m; quick 2m)"};
    spec[ns++] = (barg){"ramp-warm", BARG_STR, &k.warm, "ramp: requests before this are not judged (default 1m; quick 20s)"};
    spec[ns++] = (barg){"ramp-wall", BARG_STR, &k.wall, "ramp: no step starts after this much wall time per store (default 30s; with the cluster store 90s in all, each store a share of what is left; quick 5s)"};
    spec[ns++] = (barg){"ttl-agents", BARG_INT, &k.ttl_agents, "TTL curve: agents (default 6; quick 2)"};
    spec[ns++] = (barg){"ttl-duration", BARG_STR, &k.ttl_duration, "TTL curve: virtual time (default 75m; quick 10m)"};
    spec[ns++] = (barg){"no-ttl", BARG_BOOL, &no_ttl, "skip the TTL curve"};
    spec[ns++] = (barg){"trace", BARG_STR, &trace, "also the TTL curve of these traces (a file or directory, e.g. the WEKA sessions)"};
    spec[ns++] = (barg){"slo-ms", BARG_STR, &slo_text, "TTFT p95 SLO, ms (default 2000)"};
    spec[ns++] = (barg){"model", BARG_STR, &model, "llama-3.1-8b (default) or llama-3.1-70b"};
    spec[ns++] = (barg){"scale-bytes", BARG_STR, &scale, "move this fraction of each block's bytes (default 1/256)"};
    spec[ns++] = (barg){"dram-bytes", BARG_SIZE, &dram_bytes, "DRAM tier (default 64M; quick 4M)"};
    spec[ns++] = (barg){"nvme-bytes", BARG_SIZE, &nvme_bytes, "NVMe, plain-files and cluster tier capacity (default 512M; quick 32M)"};
    spec[ns++] = (barg){"dir", BARG_STR, &c.dir, "directory of the NVMe file, the plain files and (without --cluster-dir) the cluster tier's (default $TMPDIR or /tmp)"};
    ns = swarm_cluster_flags(spec, ns, &ct);
    spec[ns++] = (barg){"no-cluster", BARG_BOOL, &no_cluster, "leave out the HBM+DRAM+cluster store"};
    spec[ns++] = (barg){"out", BARG_STR, &out, "write compare.csv, ttl.csv, compare.json and PNG charts here"};
    spec[ns++] = (barg){"plot", BARG_STR, &plot, "plot.py to draw the charts with (default: the source tree's)"};
    spec[ns++] = (barg){"no-plot", BARG_BOOL, &no_plot, "with --out: CSV and JSON only"};
    ns = swarm_profile_flags(spec, ns, ptexts);
    ns = swarm_layout_flags(spec, ns, &lt);
    spec[ns++] = (barg){"json", BARG_BOOL, &json, "print one JSON object instead of tables"};
    spec[ns] = (barg){0};
    int rc = bench_parse_args("compare", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;

    char msg[200];
    const char *bad = NULL;
    double dur, step, warm, wall, ttl_dur, sc = 1.0 / 256;
    const swarm_model *mdl = swarm_find_model(model);
    struct {
        const char *name, *text, *dflt, *qdflt;
        double *v;
    } secs[] = {{"--duration", k.duration, "10m", "3m", &dur},
                {"--ramp-step", k.step, "10m", "2m", &step},
                {"--ramp-warm", k.warm, "1m", "20s", &warm},
                {"--ramp-wall", k.wall, "30s", "5s", &wall},
                {"--ttl-duration", k.ttl_duration, "75m", "10m", &ttl_dur}};
    for (size_t i = 0; i < sizeof secs / sizeof secs[0] && !bad; i++) {
        const char *t = secs[i].text ? secs[i].text : quick ? secs[i].qdflt : secs[i].dflt;
        if (swarm_parse_seconds(t, secs[i].v) || !(*secs[i].v > 0)) {
            snprintf(msg, sizeof msg, "%s wants seconds above 0 (or 30m, 2h), not '%s'",
                     secs[i].name, t);
            bad = msg;
        }
    }
    if (!bad && slo_text) {
        char *end;
        slo = strtod(slo_text, &end);
        if (end == slo_text || *end || !(slo >= 1 && slo <= 1e9))
            bad = "--slo-ms wants a number in [1, 1e9]";
    }
    if (!bad && !mdl)
        bad = "--model must be llama-3.1-8b or llama-3.1-70b";
    if (!bad && scale && swarm_parse_fraction(scale, &sc))
        bad = "--scale-bytes wants a fraction in (0, 1] like 1/256";
    uint32_t agents = (uint32_t)(k.agents > 0 ? k.agents : quick ? 4 : 24);
    uint32_t max_agents = (uint32_t)(k.max_agents > 0 ? k.max_agents : quick ? 16 : 128);
    uint32_t start = (uint32_t)(k.ramp_start > 0 ? k.ramp_start : quick ? 2 : 4);
    int steps = (int)(k.ramp_steps > 0 ? k.ramp_steps : quick ? 4 : 10);
    uint32_t ttl_agents = (uint32_t)(k.ttl_agents > 0 ? k.ttl_agents : quick ? 2 : 6);
    if (!bad && (k.agents == 0 || k.max_agents == 0 || k.ttl_agents == 0 || k.agents > 100000 ||
                 k.max_agents > 100000 || k.ttl_agents > 100000))
        bad = "--agents, --max-agents and --ttl-agents must be 1..100000";
    else if (!bad && start > max_agents)
        bad = "--ramp-start must be at most --max-agents";
    else if (!bad && steps > KNEE_MAX_STEPS)
        bad = "--ramp-steps must be 1..64";
    if (!bad) {
        c.model = mdl->name;
        c.bytes_per_token = mdl->bytes_per_token;
        c.slo_ms = slo;
        if (swarm_profile_resolve(ptexts, &c, msg, sizeof msg) ||
            swarm_layout_resolve(&lt, &c, msg, sizeof msg))
            bad = msg;
    }
    if (bad) {
        fprintf(stderr, "kvtier-bench compare: %s\nTry 'kvtier-bench compare --help'.\n", bad);
        return BENCH_USAGE;
    }
    if (out && mkdir(out, 0777) && errno != EEXIST) {
        fprintf(stderr, "kvtier-bench compare: --out %s: %s\n", out, strerror(errno));
        return BENCH_USAGE;
    }
    double b = (double)c.wl.block_tokens * (double)c.bytes_per_token * sc;
    c.block_bytes = b < 64 ? 64 : (uint64_t)b / 64 * 64;
    c.dram_bytes = dram_bytes ? dram_bytes : quick ? 4u << 20 : 64u << 20;
    uint64_t below = nvme_bytes ? nvme_bytes : quick ? 32u << 20 : 512u << 20;
    c.lease_ms = 30000;
    c.buffer_bytes = 256u << 20;
    c.pairs = 0; /* hit ratios and the TTFT model: no memcpy pairs (time) */
    c.wl.agents = agents;
    c.wl.duration_s = dur;
    c.label = json ? NULL : "compare";

    cfg_out res[NCFG];
    memset(res, 0, sizeof res);
    bench_rows runs, knees, ttls;
    bench_rows_init(&runs, run_fields, sizeof run_fields / sizeof run_fields[0]);
    bench_rows_init(&knees, knee_fields, sizeof knee_fields / sizeof knee_fields[0]);
    bench_rows_init(&ttls, ttl_fields, sizeof ttl_fields / sizeof ttl_fields[0]);
    swarm_result *scratch = malloc(sizeof *scratch);
    rc = scratch ? BENCH_OK : BENCH_FAILED;
    swarm_ramp_opts ro = {.step_s = step, .warm_s = warm, .start = start, .max = max_agents,
                          .growth = 2, .resolution = 0.1, .max_steps = steps,
                          .wall_budget_s = wall};
    const int with_cluster = !no_cluster && cluster_built();
    /* The default budget is 90 s of ramps in all, as it was for three
     * stores of 30 s: with the cluster store each gets an equal share of
     * what is left, so the time a fast store leaves goes to the slower
     * ones after it (the cluster store, a file per block, is last). */
    const int shared_budget = !k.wall && !quick && with_cluster;
    double ramp_left = wall * (NCFG - 1);
    const int ncfg = with_cluster ? NCFG : CFG_CLUSTER;
    if (!no_cluster && !with_cluster && !json)
        printf("  (this build has no cluster tier: %s left out)\n", cfg_name[CFG_CLUSTER]);
    for (int i = 0; i < ncfg && rc == BENCH_OK; i++) {
        swarm_cfg ci = c;
        ci.nvme_bytes = i == CFG_DRAM || i == CFG_CLUSTER ? 0 : below;
        if (i == CFG_CLUSTER) { /* the same capacity below DRAM, as its quota */
            ci.cluster_dir = ct.dir ? ct.dir : swarm_dir(&c);
            ci.cluster_bytes = ct.bytes ? ct.bytes : below;
        }
        res[i].st = malloc(sizeof *res[i].st);
        if (!res[i].st) {
            rc = BENCH_FAILED;
            break;
        }
        if (i == CFG_FILES) {
            /* The same capacity below DRAM, so the same hits: what differs
             * is the rate they come back at. */
            res[i].nvme_eff = files_efficiency(&c, res[i].eff_src, sizeof res[i].eff_src);
            ci.nvme_eff = res[i].nvme_eff;
            snprintf(ci.nvme_eff_src, sizeof ci.nvme_eff_src, "%.159s", res[i].eff_src);
        }
        if ((rc = swarm_run(&ci, res[i].st)))
            break;
        if (i == CFG_CLUSTER) {
            res[i].nvme_eff = res[i].st->rates.cluster_eff;
            snprintf(res[i].eff_src, sizeof res[i].eff_src, "%s", res[i].st->cluster_eff_src);
        } else if (i != CFG_FILES) {
            res[i].nvme_eff = res[i].st->rates.nvme_eff;
            snprintf(res[i].eff_src, sizeof res[i].eff_src, "%s", res[i].st->nvme_eff_src);
        }
        const swarm_result *r = res[i].st;
        add_run(&runs, cfg_name[i], "static", agents, r->requests,
                r->blocks ? (double)r->hit_blocks / (double)r->blocks : 0, r->ttft_p50_ms,
                r->ttft_p95_ms, r->goodput_rps, !(r->ttft_p95_ms > slo), r->wall_s);
        if (shared_budget)
            ro.wall_budget_s = ramp_left / (ncfg - i) > 1 ? ramp_left / (ncfg - i) : 1;
        if ((rc = swarm_ramp(&ci, &ro, &res[i].knee, NULL)))
            break;
        const knee_result *kr = &res[i].knee;
        for (int s = 0; s < kr->nsteps; s++)
            ramp_left -= kr->step[s].wall_s;
        for (int s = 0; s < kr->nsteps; s++) {
            const knee_step *st = &kr->step[s];
            add_run(&runs, cfg_name[i], "ramp", st->agents, st->requests, st->hit_ratio,
                    st->ttft_p50_ms, st->ttft_p95_ms, st->goodput_rps, st->met, st->wall_s);
        }
        bench_rows_add(&knees);
        bench_rows_str(&knees, "config", cfg_name[i]);
        bench_rows_u64(&knees, "knee_agents", kr->knee);
        if (kr->first_bad)
            bench_rows_u64(&knees, "first_missed_agents", kr->first_bad);
        bench_rows_bool(&knees, "exhausted", kr->exhausted);
        bench_rows_bool(&knees, "capped", kr->capped);
        bench_rows_u64(&knees, "steps", (uint64_t)kr->nsteps);
        if (i != CFG_DRAM) {
            bench_rows_num(&knees, "below_dram_gbps",
                           i == CFG_CLUSTER ? r->rates.cluster_gbps : r->rates.nvme_gbps);
            bench_rows_num(&knees, "below_dram_efficiency", res[i].nvme_eff);
            bench_rows_str(&knees, "efficiency_source", res[i].eff_src);
        }
    }
    static const double ttl_s[] = {60, 300, 3600, INFINITY};
    for (size_t i = 0; i < 4 && rc == BENCH_OK && !no_ttl; i++) {
        swarm_cfg ct = c;
        ct.nvme_bytes = below;
        ct.wl.agents = ttl_agents;
        ct.wl.duration_s = ttl_dur;
        ct.dram_ttl_ms = ct.nvme_ttl_ms = isinf(ttl_s[i]) ? 0 : (uint64_t)(ttl_s[i] * 1e3);
        if ((rc = swarm_run(&ct, scratch)))
            break;
        bench_rows_add(&ttls);
        bench_rows_str(&ttls, "config", cfg_name[CFG_NVME]);
        bench_rows_num(&ttls, "ttl_s", ttl_s[i]);
        bench_rows_num(&ttls, "hit_ratio", scratch->blocks ? (double)scratch->hit_blocks /
                                                                 (double)scratch->blocks : 0);
        bench_rows_num(&ttls, "reprefills_per_session",
                       scratch->gen.sessions ? (double)scratch->reprefills /
                                                   (double)scratch->gen.sessions : 0);
        bench_rows_u64(&ttls, "sessions", scratch->gen.sessions);
        bench_rows_u64(&ttls, "requests", scratch->requests);
    }

    if (rc == BENCH_OK && !no_ttl && trace)
        rc = trace_ttl(trace, swarm_dir(&c), ttl_s, 4, &ttls);

    const char *modelled =
        "modelled: TTFT, goodput and the knee (the TTFT model on the profile, with the "
        "layout); HBM; the tier rates unless --profile measured";
    const char *measured =
        "measured: hit ratios and re-prefills (a real store on its manual clock), the "
        "plain files' efficiency below DRAM, the cluster tier's (its gets against raw reads "
        "of its files)";
    if (rc == BENCH_OK && out) {
        if (write_csv(out, "compare.csv", &runs) || write_csv(out, "knees.csv", &knees) ||
            (!no_ttl && write_csv(out, "ttl.csv", &ttls)))
            rc = BENCH_FAILED;
    }
    FILE *jf = NULL;
    if (rc == BENCH_OK && out) {
        char path[4200];
        snprintf(path, sizeof path, "%s/compare.json", out);
        if (!(jf = fopen(path, "w"))) {
            fprintf(stderr, "kvtier-bench compare: %s: %s\n", path, strerror(errno));
            rc = BENCH_FAILED;
        }
    }
    for (int pass = 0; pass < 2 && rc == BENCH_OK; pass++) {
        FILE *f = pass == 0 ? (json ? stdout : NULL) : jf;
        if (!f)
            continue;
        bench_json j;
        bench_json_init(&j, f);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "compare");
        bench_json_str(&j, "model", c.model);
        bench_json_num(&j, "slo_ms", slo);
        bench_json_num(&j, "block_bytes", (double)c.block_bytes);
        bench_json_num(&j, "dram_bytes", (double)c.dram_bytes);
        bench_json_num(&j, "below_dram_bytes", (double)below);
        bench_json_str(&j, "hbm", hbm_note);
        if (with_cluster)
            bench_json_str(&j, "cluster", cluster_note);
        bench_json_str(&j, "modelled", modelled);
        bench_json_str(&j, "measured", measured);
        swarm_json_profile(&j, res[CFG_NVME].st);
        swarm_json_layout(&j, &c);
        bench_rows_json(&runs, &j, "runs");
        bench_rows_json(&knees, &j, "knees");
        bench_rows_json(&ttls, &j, "ttl");
        bench_json_end_object(&j);
    }
    if (jf && fclose(jf))
        rc = BENCH_FAILED;
    if (rc == BENCH_OK && !json) {
        bench_print_header(stdout, with_cluster ? "compare: HBM+DRAM vs +NVMe vs +plain files vs "
                                                  "+cluster tier, static and ramp"
                                                : "compare: HBM+DRAM vs +NVMe vs +plain files, "
                                                  "static and ramp");
        printf("  %s\n  %s\n  %s\n", hbm_note, modelled, measured);
        if (with_cluster)
            printf("  %s\n", cluster_note);
        swarm_text_profile(&c, res[CFG_NVME].st);
        printf("\n  runs (static: %u agents for %.0f virtual s; ramp steps: %.0f s, judged after "
               "%.0f s)\n",
               agents, dur, step, warm);
        bench_rows_text(&runs, run_cols, sizeof run_cols / sizeof run_cols[0], stdout, 4);
        printf("\n  knees (TTFT p95 <= %.0f ms)\n", slo);
        bench_rows_text(&knees, knee_cols, sizeof knee_cols / sizeof knee_cols[0], stdout, 4);
        for (int i = 0; i < ncfg; i++) {
            const knee_result *kr = &res[i].knee;
            if (kr->knee && kr->first_bad)
                printf("    %s sustains %u agents at the SLO and falls off at %u%s\n", cfg_name[i],
                       kr->knee, kr->first_bad,
                       kr->capped && kr->first_bad - kr->knee > 1
                           ? " (the bisection stopped early: raise --ramp-wall or --ramp-steps)"
                           : "");
            else if (kr->knee)
                printf("    %s sustains %u agents at the SLO%s\n", cfg_name[i], kr->knee,
                       kr->exhausted
                           ? " (every agent the ramp tried: raise --max-agents)"
                           : " (the search stopped early: raise --ramp-wall or --ramp-steps)");
            else
                printf("    %s misses the SLO from its first step (%u agents)\n", cfg_name[i],
                       kr->nsteps ? kr->step[0].agents : start);
            if (i != CFG_DRAM)
                printf("      below DRAM x %.3f: %s\n", res[i].nvme_eff, res[i].eff_src);
            if (i == CFG_CLUSTER && res[i].st)
                printf("      cluster tier hits %.1f%% of blocks in the static run (the rest "
                       "from DRAM)\n",
                       res[i].st->blocks ? 100.0 * (double)res[i].st->hit_cluster /
                                               (double)res[i].st->blocks
                                         : 0);
        }
        if (!no_ttl) {
            printf("\n  TTL curve (%s, %u agents for %.0f virtual s%s%s)\n", cfg_name[CFG_NVME],
                   ttl_agents, ttl_dur, trace ? "; the trace: every block fits, re-prefills "
                                                "counted against no TTL, per trace file; " : "",
                   trace ? trace : "");
            bench_rows_text(&ttls, ttl_cols, sizeof ttl_cols / sizeof ttl_cols[0], stdout, 4);
        }
    }
    if (rc == BENCH_OK && out && !no_plot) {
        /* Charts are a convenience: without python3-matplotlib the numbers stand. */
        char cmd[9000];
        fflush(stdout); /* the script's lines come after the report */
        snprintf(cmd, sizeof cmd,
                 "%s '%s' --compare '%s/compare.csv' %s%s%s --slo-ms %g --out '%s' %s",
                 /* Debian's python3-matplotlib is for the system python */
                 access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3", plot,
                 out, no_ttl ? "" : "--ttl-csv '", no_ttl ? "" : out, no_ttl ? "" : "/ttl.csv'",
                 slo, out, json ? ">/dev/null" : "");
        if (strchr(plot, '\'') || strchr(out, '\'') || system(cmd) != 0)
            fprintf(stderr, "kvtier-bench compare: the charts were not drawn (%s)\n", cmd);
    }
    for (int i = 0; i < NCFG; i++)
        free(res[i].st);
    free(scratch);
    bench_rows_free(&runs);
    bench_rows_free(&knees);
    bench_rows_free(&ttls);
    return rc;
}
