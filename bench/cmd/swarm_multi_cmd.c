/* swarm_multi_cmd.c — `swarm --procs N` (shared server vs private stores) and `swarm --nodes N` (per-node DRAM, DRAM+NVMe, DRAM+cluster): flags, small defaults, the table, JSON, CSV and the plot. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"
#include "../model/knee.h"
#include "../workload/swarm_multi.h"

#ifndef KVT_BENCH_PLOT
#define KVT_BENCH_PLOT "bench/plot.py"
#endif

#define MAX_N 16

int swarm_multi_flags(barg *spec, int ns, swarm_multi_texts *t)
{
    spec[ns++] = (barg){"procs", BARG_STR, &t->procs,
                        "engine processes sharing one served store vs private stores of 1/N each"};
    spec[ns++] = (barg){"procs-list", BARG_STR, &t->procs_list,
                        "several --procs, e.g. 1,2,4,8 (one table)"};
    spec[ns++] = (barg){"nodes", BARG_STR, &t->nodes,
                        "node processes: per-node DRAM, DRAM+NVMe, DRAM+cluster tier"};
    spec[ns++] = (barg){"nodes-list", BARG_STR, &t->nodes_list, "several --nodes, e.g. 1,2,4,8"};
    spec[ns++] = (barg){"socket", BARG_STR, &t->socket,
                        "--procs: the shared server's socket (default: one in --dir)"};
    spec[ns++] = (barg){"nvme-dir", BARG_STR, &t->nvme_dir,
                        "--nodes: where each node's NVMe file goes (default --dir)"};
    spec[ns++] = (barg){"epoch", BARG_STR, &t->epoch,
                        "--procs/--nodes: virtual s between the processes' barriers (default 1; 0: exact order)"};
    spec[ns++] = (barg){"out", BARG_STR, &t->out,
                        "--procs/--nodes: write swarm-procs.csv / swarm-nodes.csv here and plot them"};
    spec[ns++] = (barg){"csv", BARG_BOOL, &t->csv, "--procs/--nodes: print CSV rows instead of tables"};
    return ns;
}

int swarm_multi_wanted(const swarm_multi_texts *t)
{
    return t->procs || t->procs_list || t->nodes || t->nodes_list;
}

/* "1,2,4" -> counts in 1..64. Returns the count of values, or -1. */
static int parse_list(const char *text, uint32_t *v, int cap)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long x = strtoul(p, &end, 10);
        if (errno || end == p || x < 1 || x > 64 || n == cap || (*end && *end != ','))
            return -1;
        v[n++] = (uint32_t)x;
        p = *end ? end + 1 : end;
    }
    return n ? n : -1;
}

/* Whether the command line named a flag (to keep the swarm's defaults out
 * of a multi-process run's small ones only where the user chose nothing). */
static int given(int argc, char **argv, const char *flag)
{
    size_t n = strlen(flag);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], flag, n) == 0 && (argv[i][n] == 0 || argv[i][n] == '='))
            return 1;
    return 0;
}

/* One row: a configuration at one N (a ramp: at its knee). */
typedef struct mrow {
    uint32_t n;
    sm_store store;
    sm_result r;
    uint32_t agents;    /* of the run r reports */
    uint32_t knee;      /* ramp: the most agents meeting the SLO (0: none) */
    int ramp_steps;
} mrow;

/* The ramp's measure: one multi-process run of `agents`. */
typedef struct ramp_ctx {
    swarm_cfg *c;
    const sm_opts *o;
    mrow *row;
    int rc;
} ramp_ctx;

static int ramp_step(uint32_t agents, void *user, knee_step *st)
{
    ramp_ctx *x = user;
    x->c->wl.agents = agents;
    sm_result r;
    int rc = swarm_multi_run(x->c, x->o, &r);
    if (rc) {
        x->rc = rc;
        return rc;
    }
    st->met = r.judged && r.judged_p95_ms <= x->c->slo_ms;
    st->requests = r.judged;
    st->hit_ratio = r.hit_ratio;
    st->ttft_p50_ms = r.ttft_p50_ms;
    st->ttft_p95_ms = r.ttft_p95_ms;
    st->wall_s = r.wall_s;
    st->goodput_rps = r.goodput_rps;
    x->row->ramp_steps++;
    if (st->met ? agents > x->row->agents || !x->row->knee : !x->row->knee && !x->row->agents) {
        x->row->r = r;
        x->row->agents = agents;
        x->row->knee = st->met ? agents : 0;
    }
    return 0;
}

static int run_row(swarm_cfg *c, const swarm_ramp_opts *ro, const sm_opts *o, mrow *row)
{
    if (!c->ramp) {
        row->agents = c->wl.agents;
        return swarm_multi_run(c, o, &row->r);
    }
    uint32_t agents = c->wl.agents;
    ramp_ctx x = {.c = c, .o = o, .row = row};
    knee_opts ko = {.start = ro->start, .max = ro->max, .growth = ro->growth,
                    .resolution = ro->resolution, .max_steps = ro->max_steps};
    knee_result *k = malloc(sizeof *k);
    int rc = k ? knee_find(&ko, ramp_step, &x, k) : BENCH_FAILED;
    free(k);
    c->wl.agents = agents;
    if (rc < 0 && !x.rc) {
        fprintf(stderr, "kvtier-bench swarm: a ramp wants 1 <= --ramp-start <= --agents, "
                        "--ramp-growth > 1, --ramp-resolution >= 0\n");
        return BENCH_USAGE;
    }
    return x.rc ? x.rc : rc ? BENCH_FAILED : BENCH_OK;
}

/* ------------------------------------------------------------- reports */

static const char csv_head[] =
    "mode,store,n,agents,knee_agents,duration_s,requests,blocks,hit_ratio,seen_ratio,hit_dram,"
    "hit_nvme,hit_cluster,ttft_p50_ms,ttft_p95_ms,within_slo,goodput_rps,reprefills,"
    "verify_errors,get_short,epochs,dram_bytes_each,nvme_bytes_each,wall_s\n";

static void csv_row(FILE *f, const char *mode, const swarm_cfg *c, const mrow *w)
{
    const sm_result *r = &w->r;
    char knee[16] = "";
    if (c->ramp)
        snprintf(knee, sizeof knee, "%u", w->knee);
    fprintf(f,
            "%s,%s,%u,%u,%s,%g,%" PRIu64 ",%" PRIu64 ",%.6f,%.6f,%" PRIu64 ",%" PRIu64
            ",%" PRIu64 ",%.3f,%.3f,%.6f,%.6f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
            ",%" PRIu64 ",%" PRIu64 ",%.3f\n",
            mode, sm_store_name(w->store), w->n, w->agents, knee,
            r->virtual_s, r->requests, r->blocks, r->hit_ratio, r->seen_ratio, r->hit_dram,
            r->hit_nvme, r->hit_cluster, r->ttft_p50_ms, r->ttft_p95_ms, r->within_slo,
            r->goodput_rps, r->reprefills, r->verify_errors, r->get_short, r->epochs,
            r->dram_bytes_each, r->nvme_bytes_each, r->wall_s);
}

static void json_rows(const char *mode, const swarm_cfg *c, const sm_opts *base,
                      const char *defaults, const mrow *rows, int nrows)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, mode[0] == 'p' ? "swarm-procs" : "swarm-nodes");
    bench_json_object(&j, "config");
    bench_json_str(&j, "mode", c->ramp ? "ramp" : "static");
    bench_json_str(&j, "split", mode);
    bench_json_str(&j, "model", c->model);
    bench_json_u64(&j, "agents", c->wl.agents);
    bench_json_num(&j, "duration_s", c->wl.duration_s);
    bench_json_u64(&j, "seed", c->wl.seed);
    bench_json_u64(&j, "block_tokens", c->wl.block_tokens);
    bench_json_u64(&j, "block_bytes", c->block_bytes);
    bench_json_u64(&j, "dram_bytes", c->dram_bytes);
    bench_json_u64(&j, "nvme_bytes", c->nvme_bytes);
    bench_json_num(&j, "epoch_s", base->epoch_s);
    bench_json_str(&j, "routing", "uniform per request (session, turn hashed): no affinity");
    bench_json_str(&j, "profile", c->prof.name);
    bench_json_u64(&j, "gpus_per_node", c->gpus);
    bench_json_num(&j, "slo_ms", c->slo_ms);
    bench_json_str(&j, "small_defaults", defaults);
    bench_json_end_object(&j);
    bench_json_array(&j, "rows");
    for (int i = 0; i < nrows; i++) {
        const mrow *w = &rows[i];
        const sm_result *r = &w->r;
        bench_json_object(&j, NULL);
        bench_json_u64(&j, "n", w->n);
        bench_json_str(&j, "store", sm_store_name(w->store));
        bench_json_u64(&j, "agents", w->agents);
        if (c->ramp) {
            bench_json_u64(&j, "knee_agents", w->knee);
            bench_json_i64(&j, "ramp_steps", w->ramp_steps);
        }
        bench_json_u64(&j, "requests", r->requests);
        bench_json_u64(&j, "blocks", r->blocks);
        bench_json_u64(&j, "hit_blocks", r->hit_blocks);
        bench_json_u64(&j, "seen_blocks", r->seen_blocks);
        bench_json_num(&j, "hit_ratio", r->hit_ratio);
        bench_json_num(&j, "seen_ratio", r->seen_ratio);
        bench_json_u64(&j, "hit_dram", r->hit_dram);
        bench_json_u64(&j, "hit_nvme", r->hit_nvme);
        bench_json_u64(&j, "hit_cluster", r->hit_cluster);
        bench_json_num(&j, "ttft_p50_ms", r->ttft_p50_ms);
        bench_json_num(&j, "ttft_p95_ms", r->ttft_p95_ms);
        if (c->ramp) {
            bench_json_u64(&j, "judged", r->judged);
            bench_json_num(&j, "judged_p95_ms", r->judged_p95_ms);
        }
        bench_json_num(&j, "within_slo", r->within_slo);
        bench_json_num(&j, "goodput_rps", r->goodput_rps);
        bench_json_u64(&j, "reprefills", r->reprefills);
        bench_json_u64(&j, "verify_errors", r->verify_errors);
        bench_json_u64(&j, "get_short", r->get_short);
        bench_json_u64(&j, "epochs", r->epochs);
        bench_json_u64(&j, "dram_bytes_each", r->dram_bytes_each);
        bench_json_u64(&j, "nvme_bytes_each", r->nvme_bytes_each);
        bench_json_num(&j, "wall_s", r->wall_s);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    bench_json_end_object(&j);
}

static void text_rows(const char *mode, const swarm_cfg *c, const sm_opts *base,
                      const char *defaults, const mrow *rows, int nrows)
{
    char b1[32], b2[32], b3[32];
    bench_print_header(stdout, mode[0] == 'p'
                                   ? "agent swarm over N engine processes: one shared store vs private stores"
                                   : "agent swarm over N nodes: per-node DRAM, DRAM+NVMe, DRAM+cluster tier");
    printf("  %u agents%s for %.0f virtual s, seed %" PRIu64 ", blocks of %s moved (%u tokens), "
           "DRAM %s%s, NVMe %s%s\n",
           c->wl.agents, c->ramp ? " at most (ramp)" : "", c->wl.duration_s, c->wl.seed,
           bench_fmt_bytes(c->block_bytes, b1, sizeof b1), c->wl.block_tokens,
           bench_fmt_bytes(c->dram_bytes, b2, sizeof b2),
           mode[0] == 'p' ? " (shared: the server's; private: 1/N each)" : " per node",
           c->nvme_bytes ? bench_fmt_bytes(c->nvme_bytes, b3, sizeof b3) : "none",
           mode[0] == 'p' ? "" : " per node (dram+nvme)");
    char barrier[64];
    if (base->epoch_s > 0)
        snprintf(barrier, sizeof barrier, "barrier every %g virtual s", base->epoch_s);
    else
        snprintf(barrier, sizeof barrier, "one request at a time, in arrival order");
    printf("  requests routed uniformly to processes (no affinity); %s; "
           "TTFT model on %s, %u GPUs per node, SLO p95 %g ms\n",
           barrier, c->prof.name, c->gpus, c->slo_ms);
    if (defaults[0])
        printf("  small defaults for this 2-vCPU machine (give the flags to change): %s\n", defaults);
    static const char *const head[] = {"N", "store", "agents", "hit ratio", "seen", "TTFT p50 ms",
                                       "TTFT p95 ms", "within SLO", "goodput req/s",
                                       "re-prefills", "wall s"};
    bench_table t;
    bench_table_init(&t, 11, head, "rlrrrrrrrrr");
    for (int i = 0; i < nrows; i++) {
        const mrow *w = &rows[i];
        const sm_result *r = &w->r;
        bench_table_cell(&t, "%u", w->n);
        bench_table_cell(&t, "%s", sm_store_name(w->store));
        if (c->ramp && !w->knee)
            bench_table_cell(&t, "none (%u)", w->agents);
        else
            bench_table_cell(&t, "%u", w->agents);
        bench_table_cell(&t, "%.1f%%", 100 * r->hit_ratio);
        bench_table_cell(&t, "%.1f%%", 100 * r->seen_ratio);
        bench_table_cell(&t, "%.0f", r->ttft_p50_ms);
        bench_table_cell(&t, "%.0f", r->ttft_p95_ms);
        bench_table_cell(&t, "%.1f%%", 100 * r->within_slo);
        bench_table_cell(&t, "%.2f", r->goodput_rps);
        bench_table_cell(&t, "%" PRIu64, r->reprefills);
        bench_table_cell(&t, "%.1f", r->wall_s);
    }
    printf("\n");
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
    if (c->ramp)
        printf("  (ramp: each row is the knee's run, the most agents whose TTFT p95 met the SLO)\n");
    uint64_t bad = 0;
    for (int i = 0; i < nrows; i++)
        bad += rows[i].r.verify_errors;
    printf("  seen: the share of blocks any earlier request offered (a cache that never forgets); "
           "wrong bytes: %" PRIu64 "\n", bad);
}

/* --out: the CSV, then plot.py's charts (a convenience: without matplotlib the CSV stands). */
static int write_out(const char *out, const char *mode, const swarm_cfg *c, const mrow *rows,
                     int nrows, int quiet)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/swarm-%s.csv", out, mode);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kvtier-bench swarm: --out %s: %s\n", path, strerror(errno));
        return BENCH_USAGE;
    }
    fputs(csv_head, f);
    for (int i = 0; i < nrows; i++)
        csv_row(f, mode, c, &rows[i]);
    if (fclose(f) != 0) {
        fprintf(stderr, "kvtier-bench swarm: --out %s: %s\n", path, strerror(errno));
        return BENCH_FAILED;
    }
    char cmd[9000];
    fflush(stdout);
    snprintf(cmd, sizeof cmd, "%s '%s' --swarm-multi '%s' --out '%s' %s",
             access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3",
             KVT_BENCH_PLOT, path, out, quiet ? ">/dev/null" : "");
    if (strchr(out, '\'') || system(cmd) != 0)
        fprintf(stderr, "kvtier-bench swarm: the charts were not drawn (%s)\n", cmd);
    return BENCH_OK;
}

/* ---------------------------------------------------------------- main */

int swarm_multi_main(swarm_cfg *c, swarm_ramp_opts *ro, const swarm_multi_texts *t, int json,
                     int argc, char **argv)
{
    const int procs_mode = t->procs || t->procs_list;
    const char *mode = procs_mode ? "procs" : "nodes";
    const char *bad = NULL;
    uint32_t ns[MAX_N];
    int nn = 0;
    if (procs_mode && (t->nodes || t->nodes_list))
        bad = "--procs and --nodes are two runs: give one";
    else if ((t->procs && t->procs_list) || (t->nodes && t->nodes_list))
        bad = "give a count or a list, not both";
    else if ((nn = parse_list(procs_mode ? (t->procs ? t->procs : t->procs_list)
                                         : (t->nodes ? t->nodes : t->nodes_list),
                              ns, MAX_N)) < 0 ||
             ((t->procs || t->nodes) && nn != 1))
        bad = "--procs/--nodes want 1..64, their lists up to 16 such counts (1,2,4,8)";
    else if (!procs_mode && !c->cluster_dir)
        bad = "--nodes needs --cluster-dir DIR (the cluster tier's shared directory)";
    else if (procs_mode && c->ramp)
        bad = "--procs runs static only (the ramp is --nodes')";
    else if (t->socket && nn > 1)
        bad = "--socket names one server: give one --procs";
    sm_opts base = {.socket = t->socket, .nvme_dir = t->nvme_dir, .cluster_dir = c->cluster_dir,
                    .epoch_s = 1};
    if (!bad && t->epoch && (swarm_parse_seconds(t->epoch, &base.epoch_s) ||
                             strcmp(t->epoch, "inf") == 0 || strcmp(t->epoch, "none") == 0))
        bad = "--epoch wants virtual seconds (0: one request at a time, in order)";
    if (!bad && (c->prof.f[HW_GPU_GBPS].v < 0 || c->prof.f[HW_NVME_GBPS].v < 0))
        bad = "--procs/--nodes model TTFT on a profile's rates: --profile measured "
              "(rates measured by the run) is not supported here";
    if (bad) {
        fprintf(stderr, "kvtier-bench swarm: %s\nTry 'kvtier-bench swarm --help'.\n", bad);
        return BENCH_USAGE;
    }
    /* Small defaults where the user chose nothing: the whole default run
     * finishes in minutes on a 2-vCPU machine. */
    char defaults[512] = "";
    size_t dl = 0;
#define SMALL(flag, stmt, text)                                                                  \
    do {                                                                                         \
        if (!given(argc, argv, flag)) {                                                          \
            stmt;                                                                                \
            dl += (size_t)snprintf(defaults + dl, dl < sizeof defaults ? sizeof defaults - dl : 0, \
                                   "%s%s %s", dl ? ", " : "", flag, text);                       \
        }                                                                                        \
    } while (0)
    /* The nodes' cluster tier writes a file per block: fewer requests there. */
    if (procs_mode) {
        SMALL("--agents", c->wl.agents = 32, "32");
        SMALL("--duration", c->wl.duration_s = 1800, "30m");
    } else {
        SMALL("--agents", c->wl.agents = c->ramp ? 32 : 16, c->ramp ? "32" : "16");
        SMALL("--duration", c->wl.duration_s = 900, "15m");
    }
    SMALL("--block-bytes", c->block_bytes = 4096, "4K");
    SMALL("--dram-bytes", c->dram_bytes = procs_mode ? 16u << 20 : 8u << 20,
          procs_mode ? "16M" : "8M");
    /* A served store moves a call's blocks through its staging (64 blocks
     * by default): every configuration makes calls of that size, so the
     * comparison is of sharing alone (a store evicts differently when one
     * put brings thousands of blocks). */
    SMALL("--buffer-bytes", c->buffer_bytes = 64 * c->block_bytes, "64 blocks");
    SMALL("--nvme-bytes", c->nvme_bytes = procs_mode ? 0 : 256u << 20,
          procs_mode ? "0" : "256M");
    if (c->ramp) {
        SMALL("--ramp-step", ro->step_s = 900, "15m");
        SMALL("--ramp-warm", ro->warm_s = 120, "2m");
        SMALL("--ramp-start", ro->start = 4, "4");
        ro->max = c->wl.agents;
        if (ro->start > ro->max)
            ro->start = ro->max;
        c->wl.duration_s = ro->step_s;
        c->judge_after_s = ro->warm_s;
    }
#undef SMALL
    const sm_store stores_p[] = {SM_SHARED, SM_PRIVATE};
    const sm_store stores_n[] = {SM_NODE_DRAM, SM_NODE_NVME, SM_NODE_CLUSTER};
    const sm_store *stores = procs_mode ? stores_p : stores_n;
    const int nst = procs_mode ? 2 : 3;
    mrow rows[MAX_N * 3];
    int nrows = 0, rc = BENCH_OK;
    for (int i = 0; i < nn && rc == BENCH_OK; i++) {
        for (int s = 0; s < nst && rc == BENCH_OK; s++) {
            mrow *w = &rows[nrows++];
            memset(w, 0, sizeof *w);
            w->n = ns[i];
            w->store = stores[s];
            sm_opts o = base;
            o.procs = ns[i];
            o.store = stores[s];
            if (!json && !t->csv)
                bench_progress("swarm: %s, N = %u, %s", mode, ns[i], sm_store_name(stores[s]));
            rc = run_row(c, ro, &o, w);
        }
    }
    if (!json && !t->csv)
        bench_progress_done();
    if (rc != BENCH_OK)
        return rc;
    if (json)
        json_rows(mode, c, &base, defaults, rows, nrows);
    else if (t->csv) {
        fputs(csv_head, stdout);
        for (int i = 0; i < nrows; i++)
            csv_row(stdout, mode, c, &rows[i]);
    } else
        text_rows(mode, c, &base, defaults, rows, nrows);
    for (int i = 0; i < nrows; i++)
        if (rows[i].r.verify_errors) {
            fprintf(stderr, "kvtier-bench swarm: %" PRIu64 " blocks came back with wrong bytes\n",
                    rows[i].r.verify_errors);
            rc = BENCH_FAILED;
        }
    if (t->out) {
        int w = write_out(t->out, mode, c, rows, nrows, json || t->csv);
        rc = rc ? rc : w;
    }
    return rc;
}
