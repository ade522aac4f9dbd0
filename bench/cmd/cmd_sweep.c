/* cmd_sweep.c — `kvtier-bench sweep`: trace replays over a grid of policy × capacity × NVMe size × TTL, as CSV. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "../workload/trace.h"
#include "../report/rows.h"

static const char summary[] =
    "Replays the traces (as `replay` does: real store, manual clock, scaled blocks)\n"
    "  once per point of the grid --policy x --nvme-capacity-blocks x\n"
    "  --capacity-blocks x --ttl, and writes one CSV row per point (--csv FILE;\n"
    "  columns in docs/bench.md). bench/plot.py draws the CSV.";

#define MAX_TRACES 4096
#define MAX_GRID 64

/* The CSV columns, in order (documented in docs/bench.md). */
static const char csv_head[] =
    "trace,formats,policy,capacity_blocks,capacity_unlimited,nvme_capacity_blocks,ttl_s,"
    "block_bytes,requests,sessions,total_blocks,hit_blocks,hit_ratio,hit_ratio_unlimited,"
    "dram_hits,nvme_hits,expiry_reprefills,expiry_reprefill_blocks,"
    "expiry_reprefills_per_session,expiry_baseline,dram_evictions,nvme_evictions,"
    "dram_expirations,nvme_expirations,put_rejected,verify_errors,wall_s";

typedef struct row {
    const char *policy;
    uint64_t cap, nvme, ttl_ms;
    replay_result r;
    replay_expiry exp;
    const char *baseline;
} row;

/* Splits a comma list into out[] (pointers into buf). Returns the count, or -1. */
static int split(const char *text, char *buf, size_t cap, char **out, int max)
{
    if (!text || strlen(text) >= cap)
        return -1;
    strcpy(buf, text);
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        out[n++] = t;
    }
    return n ? n : -1;
}

static int parse_count(const char *t, int allow_unlimited, uint64_t *v)
{
    if (allow_unlimited && strcmp(t, "unlimited") == 0) {
        *v = 0;
        return 0;
    }
    char *end;
    if (*t < '0' || *t > '9')
        return -1;
    unsigned long long x = strtoull(t, &end, 10);
    if (*end || x > (1ull << 40))
        return -1;
    *v = x;
    return 0;
}

static int usage_err(const char *fmt, const char *a)
{
    fprintf(stderr, "kvtier-bench sweep: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\nTry 'kvtier-bench sweep --help'.\n");
    return BENCH_USAGE;
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* "conversation_trace" from ".../conversation_trace.jsonl"; "+N" for more. */
static void default_label(char *buf, size_t cap, const char *const *paths, int n)
{
    const char *p = paths[0];
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        len--;
    const char *b = p + len;
    while (b > p && b[-1] != '/')
        b--;
    size_t m = (size_t)(p + len - b);
    const char *dot = memchr(b, '.', m);
    if (dot && dot > b)
        m = (size_t)(dot - b);
    if (n > 1)
        snprintf(buf, cap, "%.*s+%d", (int)m, b, n - 1);
    else
        snprintf(buf, cap, "%.*s", (int)m, b);
}

static void csv_ttl(FILE *f, uint64_t ttl_ms)
{
    if (ttl_ms)
        fprintf(f, "%.3f", (double)ttl_ms / 1e3);
    else
        fputs("inf", f);
}

static void csv_row(FILE *f, const char *label, const trace_set *ts, const row *w,
                    uint64_t block_bytes)
{
    const replay_result *r = &w->r;
    fprintf(f, "%s,%s,%s,%" PRIu64 ",%d,%" PRIu64 ",", label, trace_formats(ts), r->policy,
            r->dram_blocks, w->cap == 0, r->nvme_blocks);
    csv_ttl(f, w->ttl_ms);
    fprintf(f,
            ",%" PRIu64 ",%" PRIu64 ",%u,%" PRIu64 ",%" PRIu64 ",%.6f,%.6f,%" PRIu64 ",%" PRIu64
            ",%" PRIu64 ",%" PRIu64 ",%.4f,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
            ",%" PRIu64 ",%" PRIu64 ",%.3f\n",
            block_bytes, r->requests, ts->nfiles, r->total_blocks, r->hit_blocks,
            (double)r->hit_blocks / (double)r->total_blocks,
            (double)r->seen_blocks / (double)r->total_blocks, r->dram_hits, r->nvme_hits,
            w->exp.requests, w->exp.blocks, w->exp.per_session, w->baseline, r->dram_evictions,
            r->nvme_evictions, r->dram_expirations, r->nvme_expirations, r->put_rejected,
            r->verify_errors, r->wall_s);
    fflush(f);
}

/* One grid point per row, in the order run. */
static const bench_field result_fields[] = {
    {"policy", BT_STR},
    {"capacity_blocks", BT_U64},
    {"capacity_text", BT_LABEL}, /* "1000 (all)" when unlimited */
    {"capacity_unlimited", BT_BOOL},
    {"nvme_capacity_blocks", BT_U64},
    {"ttl_s", BT_NUM}, /* null: no TTL */
    {"ttl_text", BT_LABEL},
    {"total_blocks", BT_U64},
    {"hit_blocks", BT_U64},
    {"hit_ratio", BT_NUM},
    {"hit_ratio_unlimited", BT_NUM},
    {"dram_hits", BT_U64},
    {"nvme_hits", BT_U64},
    {"expiry_reprefills", BT_U64},
    {"expiry_reprefill_blocks", BT_U64},
    {"expiry_reprefills_per_session", BT_NUM},
    {"expiry_baseline", BT_STR},
    {"verify_errors", BT_U64},
    {"wall_s", BT_NUM},
};

static const bench_col result_cols[] = {
    BENCH_COL_LEFT("policy", NULL, "policy"),
    BENCH_COL("DRAM blocks", NULL, "capacity_text"),
    BENCH_COL("NVMe blocks", NULL, "nvme_capacity_blocks"),
    BENCH_COL("TTL s", NULL, "ttl_text"),
    {.head = "hit ratio", .fmt = "%.2f%%", .keys = {"hit_ratio"}, .scale = 100},
    {.head = "DRAM hits", .fmt = "%.2f%%", .keys = {"dram_hits"}, .scale = 100,
     .per = "total_blocks"},
    {.head = "NVMe hits", .fmt = "%.2f%%", .keys = {"nvme_hits"}, .scale = 100,
     .per = "total_blocks"},
    {.head = "expiry re-prefills",
     .fmt = "%.0f (%.2f/session)",
     .keys = {"expiry_reprefills", "expiry_reprefills_per_session"},
     .when = "ttl_s"},
    BENCH_COL("wall s", "%.2f", "wall_s"),
};

static void results_fill(bench_rows *t, const row *rows, int n)
{
    bench_rows_init(t, result_fields, (int)(sizeof result_fields / sizeof *result_fields));
    for (int i = 0; i < n; i++) {
        const row *w = &rows[i];
        const replay_result *r = &w->r;
        char cap[48], ttl[32];
        snprintf(cap, sizeof cap, "%" PRIu64 "%s", r->dram_blocks, w->cap ? "" : " (all)");
        if (w->ttl_ms)
            snprintf(ttl, sizeof ttl, "%g", (double)w->ttl_ms / 1e3);
        else
            snprintf(ttl, sizeof ttl, "inf");
        bench_rows_add(t);
        bench_rows_str(t, "policy", r->policy);
        bench_rows_u64(t, "capacity_blocks", r->dram_blocks);
        bench_rows_str(t, "capacity_text", cap);
        bench_rows_bool(t, "capacity_unlimited", w->cap == 0);
        bench_rows_u64(t, "nvme_capacity_blocks", r->nvme_blocks);
        bench_rows_num(t, "ttl_s", w->ttl_ms ? (double)w->ttl_ms / 1e3 : NAN);
        bench_rows_str(t, "ttl_text", ttl);
        bench_rows_u64(t, "total_blocks", r->total_blocks);
        bench_rows_u64(t, "hit_blocks", r->hit_blocks);
        bench_rows_num(t, "hit_ratio", (double)r->hit_blocks / (double)r->total_blocks);
        bench_rows_num(t, "hit_ratio_unlimited", (double)r->seen_blocks / (double)r->total_blocks);
        bench_rows_u64(t, "dram_hits", r->dram_hits);
        bench_rows_u64(t, "nvme_hits", r->nvme_hits);
        bench_rows_u64(t, "expiry_reprefills", w->exp.requests);
        bench_rows_u64(t, "expiry_reprefill_blocks", w->exp.blocks);
        bench_rows_num(t, "expiry_reprefills_per_session", w->exp.per_session);
        bench_rows_str(t, "expiry_baseline", w->baseline);
        bench_rows_u64(t, "verify_errors", r->verify_errors);
        bench_rows_num(t, "wall_s", r->wall_s);
    }
}

static void report_json(const char *label, const trace_set *ts, const row *rows, int n,
                        uint64_t block_bytes, const char *csv)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "sweep");
    bench_json_object(&j, "config");
    bench_json_str(&j, "trace", label);
    bench_json_str(&j, "formats", trace_formats(ts));
    bench_json_u64(&j, "files", ts->nfiles);
    bench_json_u64(&j, "requests", ts->nreq);
    bench_json_u64(&j, "unique_blocks", ts->nblocks);
    bench_json_u64(&j, "block_bytes", block_bytes);
    bench_json_bool(&j, "bytes_scaled", 1);
    bench_json_str(&j, "csv", csv);
    bench_json_end_object(&j);
    bench_rows t;
    results_fill(&t, rows, n);
    bench_rows_json(&t, &j, "results");
    bench_rows_free(&t);
    bench_json_end_object(&j);
}

static void report_text(const char *label, const trace_set *ts, const row *rows, int n,
                        uint64_t block_bytes, const char *csv)
{
    bench_print_header(stdout, "trace replay sweep (manual clock)");
    printf("  trace %s: %u file(s), %zu requests, %zu unique blocks; blocks of %" PRIu64
           " bytes (scaled: hit ratios only)%s%s\n\n",
           label, ts->nfiles, ts->nreq, ts->nblocks, block_bytes, csv ? "; CSV: " : "",
           csv ? csv : "");
    bench_rows t;
    results_fill(&t, rows, n);
    bench_rows_text(&t, result_cols, (int)(sizeof result_cols / sizeof *result_cols), stdout, 2);
    bench_rows_free(&t);
    if (n)
        printf("\n  unlimited store (every block kept from its first reference): %.2f%%\n",
               100.0 * (double)rows[0].r.seen_blocks / (double)rows[0].r.total_blocks);
}

int bench_sweep(int argc, char **argv)
{
    const char *paths[MAX_TRACES];
    int npaths = 0;
    int rc = replay_take_traces("sweep", &argc, argv, paths, &npaths, MAX_TRACES);
    if (rc)
        return rc;
    const char *pol_s = "lru,sieve,s3fifo,prefix", *cap_s = "1000,4000,16000", *nvme_s = "0",
               *ttl_s = "inf", *dir = NULL, *csv = NULL, *label = NULL, *unused_trace = NULL;
    uint64_t block_bytes = 64;
    int json = 0, no_verify = 0;
    const barg spec[] = {
        {"trace", BARG_STR, &unused_trace, "PATH: a trace file or a directory of them (repeat for more)"},
        {"policy", BARG_STR, &pol_s, "policies, comma-separated (default lru,sieve,s3fifo,prefix)"},
        {"capacity-blocks", BARG_STR, &cap_s, "DRAM capacities in blocks; 0 or unlimited = every block (default 1000,4000,16000)"},
        {"nvme-capacity-blocks", BARG_STR, &nvme_s, "NVMe capacities in blocks; 0 = no NVMe tier (default 0)"},
        {"ttl", BARG_STR, &ttl_s, "idle TTLs of every tier, seconds; inf = none (default inf)"},
        {"block-bytes", BARG_SIZE, &block_bytes, "bytes per block (default 64)"},
        {"dir", BARG_STR, &dir, "directory for NVMe files (default $TMPDIR or /tmp)"},
        {"csv", BARG_STR, &csv, "write the rows to this CSV file ('-': stdout, instead of the table)"},
        {"label", BARG_STR, &label, "the CSV's trace column (default: the first trace's name)"},
        {"no-verify", BARG_BOOL, &no_verify, "do not check the bytes every get returns"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of text"},
        {0},
    };
    rc = bench_parse_args("sweep", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;

    char pb[1024], cb[1024], nb[1024], tb[1024];
    char *pol[MAX_GRID], *capt[MAX_GRID], *nvt[MAX_GRID], *ttlt[MAX_GRID];
    uint64_t caps[MAX_GRID], nvmes[MAX_GRID], ttls[MAX_GRID];
    int npol = split(pol_s, pb, sizeof pb, pol, MAX_GRID);
    int ncap = split(cap_s, cb, sizeof cb, capt, MAX_GRID);
    int nnv = split(nvme_s, nb, sizeof nb, nvt, MAX_GRID);
    int nttl = split(ttl_s, tb, sizeof tb, ttlt, MAX_GRID);
    if (npol < 0)
        return usage_err("--policy wants names separated by commas, not '%s'", pol_s);
    if (ncap < 0)
        return usage_err("--capacity-blocks wants up to 64 counts, not '%s'", cap_s);
    if (nnv < 0)
        return usage_err("--nvme-capacity-blocks wants up to 64 counts, not '%s'", nvme_s);
    if (nttl < 0)
        return usage_err("--ttl wants up to 64 values, not '%s'", ttl_s);
    for (int i = 0; i < ncap; i++)
        if (parse_count(capt[i], 1, &caps[i]))
            return usage_err("--capacity-blocks: '%s' is not a block count", capt[i]);
    for (int i = 0; i < nnv; i++)
        if (parse_count(nvt[i], 0, &nvmes[i]))
            return usage_err("--nvme-capacity-blocks: '%s' is not a block count", nvt[i]);
    for (int i = 0; i < nttl; i++)
        if (replay_parse_ttl(ttlt[i], &ttls[i]))
            return usage_err("--ttl: '%s' is not seconds (>= 0.001) or inf", ttlt[i]);
    /* No TTL first: its hits are the baseline the TTL points' expiry counts need. */
    qsort(ttls, (size_t)nttl, sizeof *ttls, by_u64);
    if (block_bytes == 0 || block_bytes > (1ull << 30))
        return usage_err("--block-bytes 1..1G%s", "");
    /* Unknown policy names fail here, before minutes of replays. */
    for (int i = 0; i < npol; i++)
        if (!bench_policy_known(pol[i]))
            return usage_err("--policy: no policy named '%s' (lru, sieve, s3fifo, prefix)",
                             pol[i]);
    if (json && csv && strcmp(csv, "-") == 0)
        return usage_err("--json and --csv - both want stdout%s", "");
    const int grid = npol * ncap * nnv * nttl;

    trace_set ts;
    double parse_s = 0;
    rc = replay_load("sweep", paths, npaths, &ts, &parse_s);
    if (rc)
        return rc;
    char labelbuf[256];
    if (!label) {
        default_label(labelbuf, sizeof labelbuf, paths, npaths);
        label = labelbuf;
    } else {
        snprintf(labelbuf, sizeof labelbuf, "%s", label);
        label = labelbuf;
    }
    for (char *q = labelbuf; *q; q++)
        if (*q == ',' || *q == '"' || *q == '\n')
            *q = '_'; /* one plain CSV field */
    FILE *out = NULL;
    row *rows = calloc((size_t)grid, sizeof *rows);
    uint32_t *h0 = malloc(ts.nreq * sizeof *h0);
    rc = BENCH_FAILED;
    if (!rows || !h0) {
        fprintf(stderr, "kvtier-bench sweep: out of memory\n");
        goto done;
    }
    if (csv) {
        out = strcmp(csv, "-") == 0 ? stdout : fopen(csv, "w");
        if (!out) {
            fprintf(stderr, "kvtier-bench sweep: --csv %s: cannot write it\n", csv);
            rc = BENCH_USAGE;
            goto done;
        }
        fprintf(out, "%s\n", csv_head);
    }
    int n = 0;
    for (int p = 0; p < npol; p++) {
        for (int v = 0; v < nnv; v++) {
            for (int c = 0; c < ncap; c++) {
                int have_h0 = 0;
                for (int t = 0; t < nttl; t++) {
                    row *w = &rows[n];
                    w->policy = pol[p];
                    w->cap = caps[c];
                    w->nvme = nvmes[v];
                    w->ttl_ms = ttls[t];
                    replay_cfg cfg = {.policy = pol[p],
                                      .dram_blocks = caps[c],
                                      .nvme_blocks = nvmes[v],
                                      .ttl_ms = ttls[t],
                                      .block_bytes = block_bytes,
                                      .dir = dir ? dir : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                                      .verify = !no_verify};
                    bench_progress("sweep: %d/%d: %s, %s blocks, NVMe %s, TTL %s", n + 1, grid,
                                   pol[p], capt[c], nvt[v], ttlt[t]);
                    int r = replay_with_expiry(&ts, &cfg, &w->r, &w->exp, &w->baseline,
                                               have_h0 ? h0 : NULL, ttls[t] ? NULL : h0);
                    if (r) {
                        rc = r;
                        goto done;
                    }
                    have_h0 |= ttls[t] == 0;
                    if (w->r.verify_errors || w->r.get_short) {
                        fprintf(stderr, "kvtier-bench sweep: %s: gets returned wrong or no bytes\n",
                                pol[p]);
                        goto done;
                    }
                    if (out)
                        csv_row(out, label, &ts, w, block_bytes);
                    n++;
                }
            }
        }
    }
    bench_progress_done();
    if (json)
        report_json(label, &ts, rows, n, block_bytes, csv);
    else if (!csv || strcmp(csv, "-") != 0)
        report_text(label, &ts, rows, n, block_bytes, csv);
    rc = BENCH_OK;
done:
    bench_progress_done();
    if (out && out != stdout && fclose(out)) {
        fprintf(stderr, "kvtier-bench sweep: --csv %s: write failed\n", csv);
        rc = BENCH_FAILED;
    }
    free(rows);
    free(h0);
    trace_free(&ts);
    return rc;
}
