/* cmd_micro_shared.c — `kvtier-bench micro --shared`: a connected store (server in another process) vs the same store in-process: put/get GB/s, lookup latency, concurrent clients. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
    rc = micro_shared_connect(o->socket, bb, staging_for(row->per_call, bb),
                              (uint32_t)o->copy_threads, &conn);
    row->arena_hugetlb = NAN;
    uint64_t huge = 0;
    if (rc == BENCH_OK && kvt_stat(conn, "dram.shared_hugetlb", &huge) == 0)
        row->arena_hugetlb = (double)huge;
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
    free(keys);
    bench_copier_free(cp);
    kvt_close(conn);
    kvt_close(in);
    int stopped = micro_shared_server_stop(&srv, &row->zero_copy, &row->staged);
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
                                .copy_threads = (unsigned)o->copy_threads,
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
    if (rc != BENCH_OK) {
        c->failed = c->clients; /* none ran: the report must not read as a clean run */
        return rc;
    }
    bench_progress("micro --shared: %u clients", c->clients);
    rc = micro_shared_clients_run(c, o->socket, srv.stop_fd, srv.report_fd);
    int stopped = micro_shared_server_stop(&srv, zero_copy, staged);
    return rc != BENCH_OK ? rc : stopped;
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
    /* The servers fork from a bench without threads: the copier lives only
     * inside measure(). */
    b.src = bench_alloc(b.call_bytes);
    b.dst = bench_alloc(b.call_bytes);
    b.base = bench_alloc(b.run_bytes);
    rc = BENCH_OK;
    if (!rows || !b.src || !b.dst || !b.base) {
        fprintf(stderr, "kvtier-bench micro --shared: cannot allocate %zu + %zu + %zu bytes\n",
                b.call_bytes, b.call_bytes, b.run_bytes);
        rc = BENCH_FAILED;
    } else {
        /* Not inherited by the forked server and clients: shared copy-on-write
         * pages would make the bench's first write to each page a copy, inside
         * the timed calls (the memcpy reference's destination most of all). */
        madvise(b.src, b.call_bytes, MADV_DONTFORK);
        madvise(b.dst, b.call_bytes, MADV_DONTFORK);
        madvise(b.base, b.run_bytes, MADV_DONTFORK);
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
        micro_shared_report(&r, json);
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
