/* cmd_micro_shared.c — `kvtier-bench micro --shared`: a connected store (server in another process) vs the same store in-process: put/get GB/s, lookup latency, concurrent clients. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../report/rows.h"
#include "micro_shared.h"

static const char summary[] =
    "The DRAM store served from another process (a forked kvtier-bench calling kvt_serve,\n"
    "  its store built from the same config as the in-process one) and reached with\n"
    "  kvt_connect, next to the same store opened in-process and a memcpy of the same bytes,\n"
    "  taking turns call by call: put and get GB/s per block size and the ratio\n"
    "  connected/in-process (target >= 90%); 64-key kvt_lookup latency p50/p99 through the\n"
    "  socket and in-process (targets p50 <= 20 us, p99 <= 100 us); then --clients client\n"
    "  processes at once putting and getting their own random blocks, every returned byte\n"
    "  checked (any wrong byte: exit 1). One server per block size; each run removes the\n"
    "  last run's blocks first (untimed), so puts measure copies, not eviction.";

/* The targets (issue 17, "Measure and report"), printed with the numbers. */
#define TARGET_RATIO 0.90
#define TARGET_P50_US 20.0
#define TARGET_P99_US 100.0

typedef struct shared_opts {
    const char *socket, *nvme_dir;
    uint64_t total, batch, client_bytes;
    int64_t runs, copy_threads, lookups, clients, client_rounds, seed;
    int dram_shared;         /* applied to the server's DRAM tier */
    int dram_shared_asked;   /* --dram-shared */
    char dram_shared_why[256]; /* why it was not applied */
} shared_opts;

typedef struct shared_row {
    uint64_t block_bytes;
    size_t per_call, calls, pairs;
    double put_in, put_conn, put_mem, put_ratio, put_p10, put_p90;
    double get_in, get_conn, get_mem, get_ratio, get_p10, get_p90;
    double zero_copy, staged; /* the server's counters; NaN: it has none */
} shared_row;

typedef struct lookup_row {
    const char *store;
    uint64_t block_bytes;
    size_t calls, keys;
    double p50, p99, mean;
} lookup_row;

/* Per direction: each call's GB/s on the three sides, and connected /
 * in-process of the two calls of one turn. */
typedef struct dir_samples {
    bench_samples in, conn, mem, ratio;
} dir_samples;

static void dir_free(dir_samples *d)
{
    bench_samples_free(&d->in);
    bench_samples_free(&d->conn);
    bench_samples_free(&d->mem);
    bench_samples_free(&d->ratio);
}

typedef struct bufs {
    char *src, *dst, *base;
    size_t call_bytes, run_bytes;
} bufs;

/* ------------------------------------------------------------ the stores */

/* The store both sides open: a DRAM tier of dram_bytes and, with
 * --nvme-dir, an NVMe tier of nvme_blocks slots under it. Only the server's
 * DRAM tier gets the shared arena: the in-process side is what an engine
 * gets on its own. */
static int store_spec(const shared_opts *o, uint64_t bb, uint64_t dram_bytes, size_t nvme_blocks,
                      const char *nvme_path, int server, bench_store_spec *out)
{
    bench_store_spec s = bench_dram_spec(server ? "micro --shared (server)" : "micro --shared", bb,
                                         dram_bytes);
    s.copy_threads = (int)o->copy_threads;
    s.close_flush_ms = 0; /* the blocks are the bench's own: nothing to write down at close */
    s.flag[BSET_BLOCK_BYTES] = "--block-bytes";
    s.flag[BSET_DRAM_CAPACITY] = "--total-bytes";
    s.flag[BSET_COPY_THREADS] = "--copy-threads";
    s.tier[BENCH_DRAM].shared = server && o->dram_shared;
    if (nvme_path) {
        uint64_t slot = 0;
        if (bench_slot_bytes(bb, &slot) < 0) {
            fprintf(stderr, "kvtier-bench micro --shared: NVMe slot of %" PRIu64 " B: %s\n", bb,
                    kvt_last_error());
            return BENCH_USAGE;
        }
        s.tier[BENCH_NVME].capacity = (uint64_t)nvme_blocks * slot;
        s.tier[BENCH_NVME].path = nvme_path;
        s.tier[BENCH_NVME].recreate = 1;
        s.flag[BSET_PATH] = "--nvme-dir";
    }
    *out = s;
    return BENCH_OK;
}

/* The two NVMe files (one per store: a file belongs to one process). */
typedef struct nvme_files {
    char path[2][4096];
    int handle[2];
} nvme_files;

static void nvme_files_init(nvme_files *f, const char *dir)
{
    for (int i = 0; i < 2; i++) {
        f->handle[i] = -1;
        f->path[i][0] = 0;
        if (dir) {
            snprintf(f->path[i], sizeof f->path[i], "%s/kvtier-bench-shared-%ld-%s.kvt", dir,
                     (long)getpid(), i ? "server" : "in-process");
            f->handle[i] = bench_temp_register(f->path[i]);
        }
    }
}

static void nvme_files_remove(nvme_files *f)
{
    for (int i = 0; i < 2; i++) {
        if (f->handle[i] >= 0)
            bench_temp_remove(f->handle[i]);
        else if (f->path[i][0])
            unlink(f->path[i]);
        f->handle[i] = -1;
    }
}

static const char *nvme_path(const nvme_files *f, int server)
{
    return f->path[server][0] ? f->path[server] : NULL;
}

/* Staging blocks per client: one call's blocks, within the server's cap. */
static uint32_t staging_for(size_t per_call, uint64_t bb)
{
    uint64_t cap = (256ull << 20) / bb;
    uint64_t n = per_call < cap ? per_call : cap;
    return (uint32_t)(n ? n : 1);
}

/* ---------------------------------------------------------- measurement */

/* One turn: the in-process call, the connected call and the memcpy of the
 * same pieces, back to back, the first of them rotating with `order` so
 * that none always meets the caches another left. */
static int turn(kvt_store *in, kvt_store *conn, int is_put, const kvt_key *keys, size_t n,
                void **ptrs, bench_copier *cp, bench_copy_op *ops, char *base, size_t bb,
                int order, dir_samples *d)
{
    for (size_t i = 0; i < n; i++)
        ops[i] = is_put ? (bench_copy_op){base + i * bb, ptrs[i], bb}
                        : (bench_copy_op){ptrs[i], base + i * bb, bb};
    uint64_t ns[3] = {1, 1, 1};
    for (int k = 0; k < 3; k++) {
        int side = (k + order) % 3;
        uint64_t t0 = bench_now_ns();
        if (side == 2) {
            bench_copier_run(cp, ops, n);
            ns[2] = bench_now_ns() - t0;
            continue;
        }
        kvt_store *s = side ? conn : in;
        int got = is_put ? kvt_put(s, keys, n, ptrs, NULL, NULL)
                         : kvt_get(s, keys, n, ptrs, NULL, NULL);
        ns[side] = bench_now_ns() - t0;
        if (got != (int)n) {
            fprintf(stderr, "kvtier-bench micro --shared: %s %s moved %d of %zu blocks: %s\n",
                    side ? "connected" : "in-process", is_put ? "put" : "get", got, n,
                    got < 0 ? kvt_last_error() : is_put ? "rejected" : "missing");
            return BENCH_FAILED;
        }
    }
    double bytes = (double)n * (double)bb; /* bytes/ns = GB/s */
    double in_r = bytes / (double)ns[0], conn_r = bytes / (double)ns[1];
    bench_samples_add(&d->in, in_r);
    bench_samples_add(&d->conn, conn_r);
    bench_samples_add(&d->mem, bytes / (double)ns[2]);
    bench_samples_add(&d->ratio, conn_r / in_r);
    return BENCH_OK;
}

/* 64-key lookups of held keys, in-process and connected taking turns. */
static int lookups(const shared_opts *o, kvt_store *in, kvt_store *conn, const kvt_key *held,
                   size_t nheld, uint64_t bb, lookup_row out[2])
{
    const size_t k = nheld < 64 ? nheld : 64;
    bench_samples us[2] = {{0}};
    uint8_t tiers[64];
    int rc = BENCH_OK;
    for (int64_t i = 0; i < o->lookups && rc == BENCH_OK; i++) {
        const kvt_key *keys = held + ((size_t)i * k) % (nheld - k + 1);
        for (int j = 0; j < 2; j++) {
            int side = (int)((j + i) % 2);
            uint64_t t0 = bench_now_ns();
            int hits = kvt_lookup(side ? conn : in, keys, k, tiers, 0);
            uint64_t t = bench_now_ns() - t0;
            if (hits != (int)k) {
                fprintf(stderr, "kvtier-bench micro --shared: %s lookup found %d of %zu: %s\n",
                        side ? "connected" : "in-process", hits, k,
                        hits < 0 ? kvt_last_error() : "keys missing");
                rc = BENCH_FAILED;
                break;
            }
            bench_samples_add(&us[side], (double)t / 1e3);
        }
    }
    for (int side = 0; side < 2 && rc == BENCH_OK; side++)
        out[side] = (lookup_row){side ? "connected" : "in-process", bb, us[side].n, k,
                                 bench_median(&us[side]), bench_percentile(&us[side], 99),
                                 bench_sum(&us[side]) / (double)us[side].n};
    bench_samples_free(&us[0]);
    bench_samples_free(&us[1]);
    return rc;
}

static int put_all(kvt_store *s, const char *which, const kvt_key *keys, size_t n, size_t calls,
                   void **ptrs)
{
    for (size_t c = 0; c < calls; c++) {
        int got = kvt_put(s, keys + c * n, n, ptrs, NULL, NULL);
        if (got != (int)n) {
            fprintf(stderr, "kvtier-bench micro --shared: %s warm-up put stored %d of %zu: %s\n",
                    which, got, n, got < 0 ? kvt_last_error() : "blocks rejected");
            return BENCH_FAILED;
        }
    }
    return BENCH_OK;
}

static int remove_all(kvt_store *s, const char *which, const kvt_key *keys, size_t n)
{
    int gone = kvt_remove(s, keys, n);
    if (gone == (int)n)
        return BENCH_OK;
    fprintf(stderr, "kvtier-bench micro --shared: %s removed %d of %zu blocks of the last run%s%s\n",
            which, gone, n, gone < 0 ? ": " : "", gone < 0 ? kvt_last_error() : "");
    return BENCH_FAILED;
}

/* The turns of one block size on a store pair that is open and warm. */
static int runs_of(const shared_opts *o, shared_row *row, const bufs *b, kvt_store *in,
                   kvt_store *conn, const kvt_key *keys, bench_copier *cp)
{
    const size_t bb = row->block_bytes, n = row->per_call, calls = row->calls, per_run = n * calls;
    void **sp = malloc(n * sizeof *sp), **dp = malloc(n * sizeof *dp);
    bench_copy_op *ops = malloc(n * sizeof *ops);
    dir_samples put = {0}, get = {0};
    int rc = sp && dp && ops ? BENCH_OK : BENCH_FAILED;
    for (size_t i = 0; rc == BENCH_OK && i < n; i++) {
        sp[i] = b->src + i * bb;
        dp[i] = b->dst + i * bb;
    }
    if (rc == BENCH_OK)
        rc = put_all(in, "in-process", keys, n, calls, sp);
    if (rc == BENCH_OK)
        rc = put_all(conn, "connected", keys, n, calls, sp);
    for (int r = 0; rc == BENCH_OK && r < (int)o->runs; r++) {
        bench_progress("micro --shared: %zu B blocks, run %d/%d", bb, r + 1, (int)o->runs);
        const kvt_key *rk = keys + (size_t)(r + 1) * per_run;
        rc = remove_all(in, "in-process", rk - per_run, per_run);
        if (rc == BENCH_OK)
            rc = remove_all(conn, "connected", rk - per_run, per_run);
        for (size_t c = 0; rc == BENCH_OK && c < calls; c++)
            rc = turn(in, conn, 1, rk + c * n, n, sp, cp, ops, b->base + c * n * bb, bb,
                      (int)((c + (size_t)r) % 3), &put);
        for (size_t c = 0; rc == BENCH_OK && c < calls; c++)
            rc = turn(in, conn, 0, rk + c * n, n, dp, cp, ops, b->base + c * n * bb, bb,
                      (int)((c + (size_t)r) % 3), &get);
    }
    if (rc == BENCH_OK) {
        row->pairs = put.ratio.n;
        row->put_in = bench_median(&put.in);
        row->put_conn = bench_median(&put.conn);
        row->put_mem = bench_median(&put.mem);
        row->put_ratio = bench_median(&put.ratio);
        row->put_p10 = bench_percentile(&put.ratio, 10);
        row->put_p90 = bench_percentile(&put.ratio, 90);
        row->get_in = bench_median(&get.in);
        row->get_conn = bench_median(&get.conn);
        row->get_mem = bench_median(&get.mem);
        row->get_ratio = bench_median(&get.ratio);
        row->get_p10 = bench_percentile(&get.ratio, 10);
        row->get_p90 = bench_percentile(&get.ratio, 90);
    }
    dir_free(&put);
    dir_free(&get);
    free(sp);
    free(dp);
    free(ops);
    return rc;
}

/* One block size: a server, the in-process store, the turns; with lk, the
 * lookup latency on the last run's blocks. Returns BENCH_OK, BENCH_USAGE
 * or BENCH_FAILED. */
static int measure(const shared_opts *o, shared_row *row, const bufs *b, nvme_files *nf,
                   lookup_row *lk)
{
    const size_t bb = row->block_bytes, per_run = row->per_call * row->calls;
    bench_store_spec in_spec, srv_spec;
    int rc = store_spec(o, bb, per_run * bb, 2 * per_run, nvme_path(nf, 0), 0, &in_spec);
    if (rc == BENCH_OK)
        rc = store_spec(o, bb, per_run * bb, 2 * per_run, nvme_path(nf, 1), 1, &srv_spec);
    micro_shared_server srv = {0};
    if (rc == BENCH_OK) /* first, while the bench has no threads */
        rc = micro_shared_server_start(&srv, &srv_spec, o->socket, staging_for(row->per_call, bb));
    if (rc != BENCH_OK)
        return rc;
    kvt_store *in = NULL, *conn = NULL;
    bench_copier *cp = NULL;
    const size_t nkeys = (size_t)(o->runs + 1) * per_run;
    kvt_key *keys = malloc(nkeys * sizeof *keys);
    rc = micro_shared_connect(o->socket, bb, staging_for(row->per_call, bb), &conn);
    if (rc == BENCH_OK)
        rc = bench_store_open(&in_spec, &in);
    if (rc == BENCH_OK && !(cp = bench_copier_new((unsigned)o->copy_threads)))
        rc = BENCH_FAILED;
    if (rc == BENCH_OK && (!keys || bench_keys(keys, nkeys, bb * 31 + (uint64_t)o->seed))) {
        fprintf(stderr, "kvtier-bench micro --shared: no keys for %zu blocks\n", nkeys);
        rc = BENCH_FAILED;
    }
    if (rc == BENCH_OK)
        rc = runs_of(o, row, b, in, conn, keys, cp);
    if (rc == BENCH_OK && lk)
        rc = lookups(o, in, conn, keys + (size_t)o->runs * per_run, per_run, bb, lk);
    if (conn) {
        row->zero_copy = micro_shared_counter(conn, "server.zero_copy_blocks", "zero_copy");
        row->staged = micro_shared_counter(conn, "server.staged_blocks", "staged_blocks");
    }
    free(keys);
    bench_copier_free(cp);
    kvt_close(conn);
    kvt_close(in);
    int stopped = micro_shared_server_stop(&srv);
    return rc != BENCH_OK ? rc : stopped;
}

/* The concurrent clients on a server of the first block size. */
static int clients_phase(const shared_opts *o, uint64_t bb, nvme_files *nf,
                         micro_shared_clients *c, double *zero_copy, double *staged)
{
    *zero_copy = *staged = NAN;
    size_t blocks = o->client_bytes / bb ? o->client_bytes / bb : 1;
    size_t per_call = o->batch / bb ? o->batch / bb : 1;
    *c = (micro_shared_clients){.clients = (unsigned)o->clients, .block_bytes = bb,
                                .blocks = blocks, .per_call = per_call < blocks ? per_call : blocks,
                                .rounds = (int)o->client_rounds, .seed = (uint64_t)o->seed};
    /* Two rounds of every client fit: a client removes a round's blocks
     * after checking them, so no block is evicted before its get. */
    size_t held = 2 * blocks * c->clients;
    bench_store_spec spec;
    int rc = store_spec(o, bb, held * bb, 2 * held, nvme_path(nf, 1), 1, &spec);
    micro_shared_server srv = {0};
    if (rc == BENCH_OK)
        rc = micro_shared_server_start(&srv, &spec, o->socket, staging_for(c->per_call, bb));
    if (rc != BENCH_OK)
        return rc;
    bench_progress("micro --shared: %u clients", c->clients);
    rc = micro_shared_clients_run(c, o->socket, srv.stop_fd);
    kvt_store *conn = NULL;
    if (micro_shared_connect(o->socket, bb, 1, &conn) == BENCH_OK) {
        *zero_copy = micro_shared_counter(conn, "server.zero_copy_blocks", "zero_copy");
        *staged = micro_shared_counter(conn, "server.staged_blocks", "staged_blocks");
        kvt_close(conn);
    }
    int stopped = micro_shared_server_stop(&srv);
    return rc != BENCH_OK ? rc : stopped;
}

/* --------------------------------------------------------------- report */

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

typedef struct shared_report {
    const shared_opts *o;
    const shared_row *rows;
    size_t nrows;
    const lookup_row *lk; /* 2 rows, or NULL */
    const micro_shared_clients *cl; /* NULL: not run */
    double cl_zero_copy, cl_staged;
} shared_report;

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

static void report(const shared_report *r, int json)
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

/* ----------------------------------------------------------------- main */

static int check_flags(const shared_opts *o, const bench_list *blocks)
{
    const char *why = NULL;
    if (o->runs < 1 || o->runs > 1000)
        why = "--runs must be 1..1000";
    else if (o->copy_threads < 1 || o->copy_threads > 64)
        why = "--copy-threads must be 1..64";
    else if (o->lookups < 1 || o->lookups > 10000000)
        why = "--lookups must be 1..10000000";
    else if (o->clients < 0 || o->clients > 256)
        why = "--clients must be 0..256";
    else if (o->client_rounds < 1 || o->client_rounds > 1000)
        why = "--client-rounds must be 1..1000";
    else if (!o->total || !o->batch || !o->client_bytes)
        why = "--total-bytes, --batch-bytes and --client-bytes must not be 0";
    for (int i = 0; !why && i < blocks->n; i++)
        if (blocks->v[i] < 64 || blocks->v[i] > (1u << 30) || blocks->v[i] % 64)
            why = "block sizes must be multiples of 64 in 64..1G";
    if (!why && o->nvme_dir && access(o->nvme_dir, W_OK) != 0)
        why = "--nvme-dir is not a writable directory";
    if (why) {
        fprintf(stderr, "kvtier-bench micro --shared: %s\n", why);
        return BENCH_USAGE;
    }
    return BENCH_OK;
}

int bench_micro_shared(int argc, char **argv)
{
    shared_opts o = {.total = 256u << 20, .batch = 32u << 20, .client_bytes = 16u << 20,
                     .runs = 5, .copy_threads = 1, .lookups = 20000, .clients = 8,
                     .client_rounds = 4, .seed = 1};
    bench_list blocks = {{256u << 10, 2u << 20}, 2};
    int shared_flag = 0, json = 0;
    char socket_buf[256];
    const barg spec[] = {
        {"shared", BARG_BOOL, &shared_flag, "this command: the store served from another process"},
        {"socket", BARG_STR, &o.socket,
         "the server's unix socket (default $TMPDIR or /tmp/kvtier-bench-PID.sock)"},
        {"block-bytes", BARG_SIZE_LIST, &blocks, "block sizes, one server each (default 256K,2M)"},
        {"total-bytes", BARG_SIZE, &o.total,
         "bytes per run each way, also each store's DRAM size (default 256M)"},
        {"batch-bytes", BARG_SIZE, &o.batch, "bytes per put/get call (default 32M)"},
        {"runs", BARG_INT, &o.runs, "runs per block size (default 5)"},
        {"copy-threads", BARG_INT, &o.copy_threads,
         "KVT_OPT_COPY_THREADS of both stores, and the memcpy's threads (default 1)"},
        {"lookups", BARG_INT, &o.lookups, "64-key lookups per store (default 20000)"},
        {"clients", BARG_INT, &o.clients, "concurrent client processes; 0 skips them (default 8)"},
        {"client-bytes", BARG_SIZE, &o.client_bytes,
         "each client's blocks per round, in bytes of the first block size (default 16M)"},
        {"client-rounds", BARG_INT, &o.client_rounds, "put/get/check rounds per client (default 4)"},
        {"nvme-dir", BARG_STR, &o.nvme_dir,
         "an NVMe tier under DRAM in both stores, files in this directory (default none)"},
        {"dram-shared", BARG_BOOL, &o.dram_shared_asked,
         "the server's DRAM tier option shared=1 (a warning where the library lacks it)"},
        {"seed", BARG_INT, &o.seed, "keys and bytes (default 1)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of tables"},
        {0},
    };
    int rc = bench_parse_args("micro", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    if ((rc = check_flags(&o, &blocks)))
        return rc;
    if (!o.socket) {
        const char *tmp = getenv("TMPDIR");
        snprintf(socket_buf, sizeof socket_buf, "%s/kvtier-bench-%ld.sock",
                 tmp && *tmp ? tmp : "/tmp", (long)getpid());
        o.socket = socket_buf;
    }
    if (o.dram_shared_asked) {
        o.dram_shared = bench_tier_option_known("dram", "shared", 1, o.dram_shared_why,
                                                sizeof o.dram_shared_why);
        if (!o.dram_shared)
            fprintf(stderr, "kvtier-bench micro --shared: warning: --dram-shared: this library's "
                            "DRAM tier has no option shared (%s); the server's arena stays "
                            "private\n", o.dram_shared_why);
    }

    /* Buffers for the largest block size, shared by all. */
    bufs b = {0};
    shared_row *rows = calloc((size_t)blocks.n, sizeof *rows);
    for (int i = 0; rows && i < blocks.n; i++) {
        shared_row *r = &rows[i];
        r->block_bytes = blocks.v[i];
        r->per_call = o.batch / r->block_bytes ? o.batch / r->block_bytes : 1;
        size_t call = r->per_call * r->block_bytes;
        r->calls = o.total / call ? o.total / call : 1;
        if (call > b.call_bytes)
            b.call_bytes = call;
        if (r->calls * call > b.run_bytes)
            b.run_bytes = r->calls * call;
    }
    nvme_files nf;
    nvme_files_init(&nf, o.nvme_dir);
    /* The servers fork from a bench without threads: these buffers are
     * plain memory, and the copier lives only inside measure(). */
    b.src = bench_alloc(b.call_bytes);
    b.dst = bench_alloc(b.call_bytes);
    b.base = bench_alloc(b.run_bytes);
    rc = BENCH_OK;
    if (!rows || !b.src || !b.dst || !b.base) {
        fprintf(stderr, "kvtier-bench micro --shared: cannot allocate %zu + %zu + %zu bytes\n",
                b.call_bytes, b.call_bytes, b.run_bytes);
        rc = BENCH_FAILED;
    }
    lookup_row lk[2];
    size_t nrows = 0;
    for (int i = 0; rc == BENCH_OK && i < blocks.n; i++) {
        rc = measure(&o, &rows[i], &b, &nf, i == 0 ? lk : NULL);
        if (rc == BENCH_OK)
            nrows++;
    }
    micro_shared_clients cl;
    shared_report r = {.o = &o, .rows = rows, .nrows = nrows, .lk = nrows ? lk : NULL};
    if (rc == BENCH_OK && o.clients > 0) {
        rc = clients_phase(&o, blocks.v[0], &nf, &cl, &r.cl_zero_copy, &r.cl_staged);
        r.cl = &cl; /* reported even when a client failed: its count says so */
    }
    bench_progress_done();
    nvme_files_remove(&nf);
    if (nrows == (size_t)blocks.n)
        report(&r, json);
    if (rc == BENCH_OK && r.cl && cl.wrong_bytes) {
        fprintf(stderr, "kvtier-bench micro --shared: %" PRIu64 " wrong bytes in gets with status 0\n",
                cl.wrong_bytes);
        rc = BENCH_FAILED;
    }
    free(rows);
    bench_free(b.src, b.call_bytes);
    bench_free(b.dst, b.call_bytes);
    bench_free(b.base, b.run_bytes);
    return rc;
}
