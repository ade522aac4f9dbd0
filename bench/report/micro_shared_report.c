/* micro_shared_report.c — `micro --shared`'s report: rows of the three measurements, rendered as text tables or one JSON object. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "../cmd/micro_shared.h"
#include "rows.h"

static const bench_field row_fields[] = {
    {"block_bytes", BT_U64},
    {"blocks_per_call", BT_U64},
    {"calls_per_run", BT_U64},
    {"run_bytes", BT_U64},
    {"turns", BT_U64},
    {"put_in_process_gb_per_s", BT_NUM},
    {"put_connected_gb_per_s", BT_NUM},
    {"put_memcpy_gb_per_s", BT_NUM},
    {"put_ratio", BT_NUM},
    {"put_ratio_p10", BT_NUM},
    {"put_ratio_p90", BT_NUM},
    {"put_meets_target", BT_BOOL},
    {"get_in_process_gb_per_s", BT_NUM},
    {"get_connected_gb_per_s", BT_NUM},
    {"get_memcpy_gb_per_s", BT_NUM},
    {"get_ratio", BT_NUM},
    {"get_ratio_p10", BT_NUM},
    {"get_ratio_p90", BT_NUM},
    {"get_meets_target", BT_BOOL},
    {"server_zero_copy_blocks", BT_NUM},
    {"server_staged_blocks", BT_NUM},
    {"server_arena_hugetlb", BT_NUM},
};

static const bench_col row_cols[] = {
    BENCH_COL_LEFT("block", "bytes", "block_bytes"),
    BENCH_COL("blocks/call", NULL, "blocks_per_call"),
    BENCH_COL("put in-proc", "%.2f", "put_in_process_gb_per_s"),
    BENCH_COL("put conn", "%.2f", "put_connected_gb_per_s"),
    BENCH_COL_RATIO("conn/in-proc", "put_ratio", "put_ratio_p10", "put_ratio_p90"),
    BENCH_COL("memcpy", "%.2f", "put_memcpy_gb_per_s"),
    BENCH_COL("get in-proc", "%.2f", "get_in_process_gb_per_s"),
    BENCH_COL("get conn", "%.2f", "get_connected_gb_per_s"),
    BENCH_COL_RATIO("conn/in-proc", "get_ratio", "get_ratio_p10", "get_ratio_p90"),
    BENCH_COL("memcpy", "%.2f", "get_memcpy_gb_per_s"),
};

static const bench_field lookup_fields[] = {
    {"store", BT_STR},        {"block_bytes", BT_U64}, {"calls", BT_U64},
    {"keys_per_call", BT_U64}, {"p50_us", BT_NUM},     {"p99_us", BT_NUM},
    {"mean_us", BT_NUM},      {"meets_target", BT_BOOL},
};

static const bench_col lookup_cols[] = {
    BENCH_COL_LEFT("store", NULL, "store"),
    BENCH_COL("keys/call", NULL, "keys_per_call"),
    BENCH_COL("calls", NULL, "calls"),
    BENCH_COL("p50 us", "%.1f", "p50_us"),
    BENCH_COL("p99 us", "%.1f", "p99_us"),
    BENCH_COL("mean us", "%.1f", "mean_us"),
    BENCH_COL("meets target", "yes|no", "meets_target"),
};

static const bench_field client_fields[] = {
    {"clients", BT_U64},       {"block_bytes", BT_U64},     {"blocks_per_round", BT_U64},
    {"rounds", BT_U64},        {"blocks_per_call", BT_U64}, {"bytes", BT_U64},
    {"seconds", BT_NUM},       {"gb_per_s", BT_NUM},        {"wrong_bytes", BT_U64},
    {"gets_checked", BT_U64},  {"gets_missing", BT_U64},    {"puts_stored", BT_U64},
    {"failed_clients", BT_U64}, {"server_zero_copy_blocks", BT_NUM},
    {"server_staged_blocks", BT_NUM},
    {"server_arena_hugetlb", BT_NUM},
};

static const bench_col client_cols[] = {
    BENCH_COL("clients", NULL, "clients"),
    BENCH_COL_LEFT("block", "bytes", "block_bytes"),
    BENCH_COL("blocks/round", NULL, "blocks_per_round"),
    BENCH_COL("rounds", NULL, "rounds"),
    BENCH_COL("GB/s", "%.2f", "gb_per_s"),
    BENCH_COL("seconds", "%.2f", "seconds"),
    BENCH_COL("gets checked", NULL, "gets_checked"),
    BENCH_COL("gets missing", NULL, "gets_missing"),
    BENCH_COL("wrong bytes", NULL, "wrong_bytes"),
    BENCH_COL("failed", NULL, "failed_clients"),
};


static void fill_rows(bench_rows *t, const shared_report *r)
{
    bench_rows_init(t, row_fields, (int)(sizeof row_fields / sizeof *row_fields));
    for (size_t i = 0; i < r->nrows; i++) {
        const shared_row *w = &r->rows[i];
        bench_rows_add(t);
        bench_rows_u64(t, "block_bytes", w->block_bytes);
        bench_rows_u64(t, "blocks_per_call", w->per_call);
        bench_rows_u64(t, "calls_per_run", w->calls);
        bench_rows_u64(t, "run_bytes", (uint64_t)(w->per_call * w->calls) * w->block_bytes);
        bench_rows_u64(t, "turns", w->pairs);
        bench_rows_num(t, "put_in_process_gb_per_s", w->put_in);
        bench_rows_num(t, "put_connected_gb_per_s", w->put_conn);
        bench_rows_num(t, "put_memcpy_gb_per_s", w->put_mem);
        bench_rows_num(t, "put_ratio", w->put_ratio);
        bench_rows_num(t, "put_ratio_p10", w->put_p10);
        bench_rows_num(t, "put_ratio_p90", w->put_p90);
        bench_rows_bool(t, "put_meets_target", w->put_ratio >= TARGET_RATIO);
        bench_rows_num(t, "get_in_process_gb_per_s", w->get_in);
        bench_rows_num(t, "get_connected_gb_per_s", w->get_conn);
        bench_rows_num(t, "get_memcpy_gb_per_s", w->get_mem);
        bench_rows_num(t, "get_ratio", w->get_ratio);
        bench_rows_num(t, "get_ratio_p10", w->get_p10);
        bench_rows_num(t, "get_ratio_p90", w->get_p90);
        bench_rows_bool(t, "get_meets_target", w->get_ratio >= TARGET_RATIO);
        bench_rows_num(t, "server_zero_copy_blocks", w->zero_copy);
        bench_rows_num(t, "server_staged_blocks", w->staged);
        bench_rows_num(t, "server_arena_hugetlb", w->arena_hugetlb);
    }
}

static void fill_lookup(bench_rows *t, const lookup_row *lk)
{
    bench_rows_init(t, lookup_fields, (int)(sizeof lookup_fields / sizeof *lookup_fields));
    for (int i = 0; lk && i < 2; i++) {
        bench_rows_add(t);
        bench_rows_str(t, "store", lk[i].store);
        bench_rows_u64(t, "block_bytes", lk[i].block_bytes);
        bench_rows_u64(t, "calls", lk[i].calls);
        bench_rows_u64(t, "keys_per_call", lk[i].keys);
        bench_rows_num(t, "p50_us", lk[i].p50);
        bench_rows_num(t, "p99_us", lk[i].p99);
        bench_rows_num(t, "mean_us", lk[i].mean);
        bench_rows_bool(t, "meets_target", lk[i].p50 <= TARGET_P50_US && lk[i].p99 <= TARGET_P99_US);
    }
}

static void fill_clients(bench_rows *t, const shared_report *r)
{
    const micro_shared_clients *c = r->cl;
    bench_rows_init(t, client_fields, (int)(sizeof client_fields / sizeof *client_fields));
    if (!c)
        return;
    bench_rows_add(t);
    bench_rows_u64(t, "clients", c->clients);
    bench_rows_u64(t, "block_bytes", c->block_bytes);
    bench_rows_u64(t, "blocks_per_round", c->blocks);
    bench_rows_u64(t, "rounds", (uint64_t)c->rounds);
    bench_rows_u64(t, "blocks_per_call", c->per_call);
    bench_rows_u64(t, "bytes", c->bytes);
    bench_rows_num(t, "seconds", c->seconds);
    bench_rows_num(t, "gb_per_s", c->seconds > 0 ? (double)c->bytes / c->seconds / 1e9 : NAN);
    bench_rows_u64(t, "wrong_bytes", c->wrong_bytes);
    bench_rows_u64(t, "gets_checked", c->gets_checked);
    bench_rows_u64(t, "gets_missing", c->gets_missing);
    bench_rows_u64(t, "puts_stored", c->puts_stored);
    bench_rows_u64(t, "failed_clients", c->failed);
    bench_rows_num(t, "server_zero_copy_blocks", r->cl_zero_copy);
    bench_rows_num(t, "server_staged_blocks", r->cl_staged);
}

static void json_config(bench_json *j, const shared_report *r)
{
    const shared_opts *o = r->o;
    bench_json_object(j, "config");
    bench_json_str(j, "tier", "dram");
    bench_json_str(j, "mode", "shared");
    bench_json_str(j, "server", "fork+kvt_serve");
    bench_json_str(j, "socket", o->socket);
    bench_json_u64(j, "total_bytes", o->total);
    bench_json_u64(j, "batch_bytes", o->batch);
    bench_json_i64(j, "runs", o->runs);
    bench_json_i64(j, "copy_threads", o->copy_threads);
    bench_json_str(j, "nvme_dir", o->nvme_dir);
    bench_json_bool(j, "dram_shared_requested", o->dram_shared_asked);
    bench_json_bool(j, "dram_shared", o->dram_shared);
    bench_json_str(j, "dram_shared_why_not", o->dram_shared_why[0] ? o->dram_shared_why : NULL);
    bench_json_i64(j, "lookups", o->lookups);
    bench_json_i64(j, "clients", o->clients);
    bench_json_u64(j, "client_bytes", o->client_bytes);
    bench_json_i64(j, "client_rounds", o->client_rounds);
    bench_json_i64(j, "seed", o->seed);
    bench_json_str(j, "statistic",
                   "GB/s: median over calls; ratio: median over turns of connected/in-process; "
                   "latency: nearest-rank percentiles over calls");
    bench_json_object(j, "targets");
    bench_json_num(j, "ratio_min", TARGET_RATIO);
    bench_json_num(j, "lookup_p50_us_max", TARGET_P50_US);
    bench_json_num(j, "lookup_p99_us_max", TARGET_P99_US);
    bench_json_u64(j, "wrong_bytes", 0);
    bench_json_end_object(j);
    bench_json_end_object(j);
}

static const char *counter_text(double v, char *buf, size_t cap)
{
    if (isnan(v))
        return "n/a";
    snprintf(buf, cap, "%.0f", v);
    return buf;
}

static void text_report(const shared_report *r, bench_rows *rows, bench_rows *lk, bench_rows *cl)
{
    const shared_opts *o = r->o;
    char a[32], b[32], z[32], s[32];
    bench_print_header(stdout, "a connected store (server in another process) vs in-process");
    printf("  server: a forked kvtier-bench serving with kvt_serve on %s; shared DRAM arena: %s",
           o->socket, o->dram_shared ? "on" : "off");
    if (o->dram_shared_why[0])
        printf(" (--dram-shared: %s)", o->dram_shared_why);
    printf("\n  tiers: DRAM%s%s; %" PRId64 " copy thread(s) in both stores and the memcpy\n",
           o->nvme_dir ? " + NVMe in " : "", o->nvme_dir ? o->nvme_dir : "", o->copy_threads);
    printf("  %" PRId64 " runs of %s each way, in calls of up to %s; the in-process call, the\n"
           "  connected call and a memcpy of the same bytes take turns. GB/s: median over calls\n"
           "  (GB = 1e9 bytes). Ratio: median over turns of connected/in-process (10th-90th\n"
           "  percentile). Target: connected/in-process >= %.0f%%.\n\n",
           o->runs, bench_fmt_bytes(o->total, a, sizeof a), bench_fmt_bytes(o->batch, b, sizeof b),
           TARGET_RATIO * 100);
    bench_rows_text(rows, row_cols, (int)(sizeof row_cols / sizeof *row_cols), stdout, 2);
    printf("  server data path (server.zero_copy_blocks / server.staged_blocks):");
    for (size_t i = 0; i < r->nrows; i++)
        printf("%s %s: %s / %s", i ? ";" : "",
               bench_fmt_bytes(r->rows[i].block_bytes, a, sizeof a),
               counter_text(r->rows[i].zero_copy, z, sizeof z),
               counter_text(r->rows[i].staged, s, sizeof s));
    printf("\n");
    /* The arena's pages decide the copies' speed: shared memory gets huge
     * pages only from hugetlbfs (vm.nr_hugepages) or where shmem THP is on. */
    if (r->nrows && !isnan(r->rows[0].arena_hugetlb))
        printf("  the served arena is on %s\n",
               r->rows[0].arena_hugetlb ? "hugetlb pages (2 MiB)"
                                        : "ordinary shared memory pages (no hugetlb pages "
                                          "reserved: /proc/sys/vm/nr_hugepages)");
    if (r->lk) {
        printf("\n  kvt_lookup of %zu held keys, %zu calls per store, taking turns.\n"
               "  Targets through the socket: p50 <= %.0f us, p99 <= %.0f us.\n\n",
               r->lk[0].keys, r->lk[0].calls, TARGET_P50_US, TARGET_P99_US);
        bench_rows_text(lk, lookup_cols, (int)(sizeof lookup_cols / sizeof *lookup_cols), stdout,
                        2);
    }
    if (r->cl) {
        printf("\n  %u client processes at once, each putting and getting its own random blocks;\n"
               "  every block a get returned with status 0 compared byte by byte (GB/s: bytes put\n"
               "  and got, all clients, over the wall time from the common start to the last\n"
               "  client's end, checks included). Target: 0 wrong bytes.\n\n",
               r->cl->clients);
        bench_rows_text(cl, client_cols, (int)(sizeof client_cols / sizeof *client_cols), stdout,
                        2);
        printf("  server data path: %s zero-copy / %s staged blocks\n",
               counter_text(r->cl_zero_copy, z, sizeof z), counter_text(r->cl_staged, s, sizeof s));
    }
}

void micro_shared_report(const shared_report *r, int json)
{
    bench_rows rows, lk, cl;
    fill_rows(&rows, r);
    fill_lookup(&lk, r->lk);
    fill_clients(&cl, r);
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        json_config(&j, r);
        bench_rows_json(&rows, &j, "results");
        bench_rows_json(&lk, &j, "lookup");
        if (r->cl)
            bench_rows_json_row(&cl, 0, &j, "clients");
        bench_json_end_object(&j);
    } else {
        text_report(r, &rows, &lk, &cl);
    }
    bench_rows_free(&rows);
    bench_rows_free(&lk);
    bench_rows_free(&cl);
}

