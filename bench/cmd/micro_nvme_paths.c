/* micro_nvme_paths.c — `kvtier-bench micro --tier nvme --paths A,B,...`: a tier striped across the devices next to the sum of each device's raw loop, measured in the same run. */
#include "micro_nvme_paths.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../baseline/raw_uring.h"
#include "../bench.h"
#include "../store_cfg.h"

#define MAX_DEVICES 64
#define SLOTS_OFF 4096u /* the superblock before slot 0 (docs/nvme-format.md) */

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "kvtier-bench micro --tier nvme --paths: %s: %s\n", what, detail);
    return BENCH_FAILED;
}

static double gbps(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / (double)ns : 0.0;
}

/* One device's raw loop, set up: its own slots of the set (slot j of device
 * d holds global slot j * n + d), payloads only, the blocks the tier moved
 * there. */
typedef struct raw_dev {
    const char *path;
    int fd;
    raw_io *ios;
    raw_uring *r;
    size_t blocks;
} raw_dev;

static void raw_dev_close(raw_dev *d)
{
    raw_uring_free(d->r);
    free(d->ios);
    if (d->fd >= 0)
        close(d->fd);
}

static int raw_dev_open(const char *path, unsigned qd, uint8_t *mem, size_t blocks, uint64_t bb,
                        uint64_t slot, raw_dev *d)
{
    *d = (raw_dev){.path = path, .fd = raw_uring_open_file(path, 0), .blocks = blocks};
    if (d->fd < 0)
        return fail(path, strerror(-d->fd));
    d->ios = calloc(blocks ? blocks : 1, sizeof *d->ios);
    int e = d->ios ? raw_uring_new(d->fd, qd, NULL, 0, &d->r) : -ENOMEM;
    if (e) {
        raw_dev_close(d);
        return fail(path, strerror(-e));
    }
    for (size_t j = 0; j < blocks; j++)
        d->ios[j] = (raw_io){.buf = mem + j * bb, .off = SLOTS_OFF + j * slot + (slot - bb),
                             .len = (uint32_t)bb};
    return 0;
}

static int raw_dev_run(raw_dev *d, int write)
{
    int e = raw_uring_run(d->r, write, d->ios, d->blocks);
    return e ? fail(d->path, strerror(-e)) : 0;
}

/* One device's raw loop alone; *ns: its transfers only. */
static int raw_device(const char *path, unsigned qd, uint8_t *mem, size_t blocks, uint64_t bb,
                      uint64_t slot, int write, uint64_t *ns)
{
    raw_dev d;
    int rc = raw_dev_open(path, qd, mem, blocks, bb, slot, &d);
    if (rc)
        return rc;
    uint64_t t0 = bench_now_ns();
    rc = raw_dev_run(&d, write);
    *ns = bench_now_ns() - t0;
    raw_dev_close(&d);
    return rc;
}

/* Every device's raw loop at once, one thread each, each on its own part
 * of mem: what this machine can do with all of them together, which is
 * less than the sum of each alone where their I/O costs CPU (loop devices:
 * the kernel's copies). Each thread sets its loop up, then all start
 * together; *ns: from that start to the last finish (transfers only, as
 * raw_device times them). */
typedef struct start_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned ready;
    int go;
} start_gate;

typedef struct raw_job {
    raw_dev dev;
    int rc, write;
    uint64_t end;
    start_gate *gate;
} raw_job;

static void *raw_job_main(void *arg)
{
    raw_job *j = arg;
    start_gate *g = j->gate;
    pthread_mutex_lock(&g->mu);
    g->ready++;
    pthread_cond_broadcast(&g->cv);
    while (!g->go)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    if (!j->rc)
        j->rc = raw_dev_run(&j->dev, j->write);
    j->end = bench_now_ns();
    return NULL;
}

static int raw_together(char **dev, unsigned nd, unsigned qd, uint8_t *mem, size_t n, uint64_t bb,
                        uint64_t slot, int write, uint64_t *ns)
{
    raw_job job[MAX_DEVICES];
    pthread_t th[MAX_DEVICES];
    start_gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    size_t at = 0;
    unsigned started = 0;
    int rc = BENCH_OK;
    for (unsigned d = 0; d < nd; d++) {
        size_t blocks = (n - d + nd - 1) / nd;
        job[d] = (raw_job){.write = write, .gate = &g};
        job[d].rc = raw_dev_open(dev[d], qd, mem + at * bb, blocks, bb, slot, &job[d].dev);
        at += blocks;
        if (job[d].rc) {
            rc = job[d].rc;
            break;
        }
        if (pthread_create(&th[d], NULL, raw_job_main, &job[d])) {
            raw_dev_close(&job[d].dev);
            rc = fail("raw loops together", "cannot start a thread");
            break;
        }
        started++;
    }
    pthread_mutex_lock(&g.mu);
    while (g.ready < started)
        pthread_cond_wait(&g.cv, &g.mu);
    g.go = 1;
    uint64_t t0 = bench_now_ns(), end = t0;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (unsigned d = 0; d < started; d++) {
        pthread_join(th[d], NULL);
        raw_dev_close(&job[d].dev);
        if (job[d].rc)
            rc = job[d].rc;
        if (job[d].end > end)
            end = job[d].end;
    }
    *ns = end - t0;
    return rc;
}

static kvt_store *open_set(const char *paths, uint64_t bb, uint64_t slots, unsigned qd)
{
    uint64_t slot = 0;
    if (bench_slot_bytes(bb, &slot)) {
        fail("slot bytes", kvt_last_error());
        return NULL;
    }
    bench_store_spec spec = bench_store_spec_default("micro --tier nvme --paths");
    spec.block_bytes = bb;
    spec.block_tokens = 16;
    spec.close_flush_ms = 0;
    spec.flag[BSET_PATH] = "--paths";
    spec.tier[BENCH_NVME] = (bench_tier_spec){
        .capacity = slots * slot, .queue_depth = (int)qd, .recreate = 1, .path = paths};
    kvt_store *s = NULL;
    bench_store_open(&spec, &s);
    return s;
}

typedef struct paths_row {
    uint64_t bb;
    unsigned qd;
    double put, get, raw_put, raw_get; /* medians; raw: the sum over devices */
    double all_put, all_get;           /* medians: every device's raw loop at once */
} paths_row;

static int measure(const char *paths, char **dev, unsigned nd, paths_row *row, uint64_t total,
                   int runs, uint8_t *src, uint8_t *dst)
{
    uint64_t bb = row->bb, slot = 0;
    bench_slot_bytes(bb, &slot);
    size_t n = (size_t)(total / bb);
    if (n < nd)
        return fail("--total-bytes", "fewer blocks than devices");
    kvt_store *s = open_set(paths, bb, n, row->qd);
    kvt_key *keys = malloc(n * sizeof *keys);
    void **sp = malloc(n * sizeof *sp), **dp = malloc(n * sizeof *dp);
    if (!s || !keys || !sp || !dp) {
        if (s)
            kvt_close(s);
        free(keys), free(sp), free(dp);
        return BENCH_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        sp[i] = src + i * bb;
        dp[i] = dst + i * bb;
    }
    bench_samples put = {0}, get = {0}, rput = {0}, rget = {0}, aput = {0}, aget = {0};
    int rc = BENCH_OK;
    for (int run = 0; rc == BENCH_OK && run < runs; run++) {
        bench_progress("--paths: %" PRIu64 "-byte blocks, QD %u, run %d of %d", bb, row->qd,
                       run + 1, runs);
        if (bench_keys(keys, n, bb * 131 + (uint64_t)run)) {
            rc = BENCH_FAILED;
            break;
        }
        uint64_t t0 = bench_now_ns();
        int got = kvt_put(s, keys, n, sp, NULL, NULL);
        uint64_t t1 = bench_now_ns();
        int back = got == (int)n ? kvt_get(s, keys, n, dp, NULL, NULL) : -1;
        uint64_t t2 = bench_now_ns();
        if (got != (int)n || back != (int)n || memcmp(src, dst, n * bb)) {
            rc = fail("put/get", got != (int)n || back != (int)n ? kvt_last_error()
                                                                 : "read wrong bytes");
            break;
        }
        bench_samples_add(&put, gbps(n * bb, t1 - t0));
        bench_samples_add(&get, gbps(n * bb, t2 - t1));
        /* Each device's raw loop alone, on its share of the blocks; the
         * tier's ceiling is the sum of their rates. */
        if (kvt_remove(s, keys, n) != (int)n) {
            rc = fail("removing the measured blocks", kvt_last_error());
            break;
        }
        double sum_w = 0, sum_r = 0;
        for (unsigned d = 0; rc == BENCH_OK && d < nd; d++) {
            size_t blocks = (n - d + nd - 1) / nd;
            uint64_t ns_w = 0, ns_r = 0;
            rc = raw_device(dev[d], row->qd, src, blocks, bb, slot, 1, &ns_w);
            if (rc == BENCH_OK)
                rc = raw_device(dev[d], row->qd, dst, blocks, bb, slot, 0, &ns_r);
            sum_w += gbps(blocks * bb, ns_w);
            sum_r += gbps(blocks * bb, ns_r);
        }
        bench_samples_add(&rput, sum_w);
        bench_samples_add(&rget, sum_r);
        uint64_t ns_w = 0, ns_r = 0;
        if (rc == BENCH_OK && nd > 1)
            rc = raw_together(dev, nd, row->qd, src, n, bb, slot, 1, &ns_w);
        if (rc == BENCH_OK && nd > 1)
            rc = raw_together(dev, nd, row->qd, dst, n, bb, slot, 0, &ns_r);
        if (nd > 1) {
            bench_samples_add(&aput, gbps(n * bb, ns_w));
            bench_samples_add(&aget, gbps(n * bb, ns_r));
        }
    }
    row->put = bench_median(&put);
    row->get = bench_median(&get);
    row->raw_put = bench_median(&rput);
    row->raw_get = bench_median(&rget);
    row->all_put = nd > 1 ? bench_median(&aput) : row->raw_put;
    row->all_get = nd > 1 ? bench_median(&aget) : row->raw_get;
    bench_samples_free(&aput), bench_samples_free(&aget);
    bench_samples_free(&put), bench_samples_free(&get);
    bench_samples_free(&rput), bench_samples_free(&rget);
    kvt_close(s);
    free(keys), free(sp), free(dp);
    return rc;
}

int bench_micro_nvme_paths(const char *paths, const bench_list *blocks, const bench_list *qds,
                           uint64_t total, int runs, int json)
{
    char *copy = strdup(paths), *dev[MAX_DEVICES];
    unsigned nd = 0;
    for (char *p = copy, *save = NULL; copy && (p = strtok_r(p, ",", &save)); p = NULL)
        if (nd < MAX_DEVICES)
            dev[nd++] = p;
    if (nd < 1) {
        free(copy);
        return fail("--paths", "no path");
    }
    uint8_t *src = bench_alloc(total), *dst = bench_alloc(total);
    paths_row *rows = calloc((size_t)blocks->n * (size_t)qds->n, sizeof *rows);
    size_t nrows = 0;
    int rc = src && dst && rows ? BENCH_OK : BENCH_FAILED;
    for (size_t i = 0; src && i < total; i++)
        src[i] = (uint8_t)(i * 2654435761u >> 13);
    for (int bi = 0; rc == BENCH_OK && bi < blocks->n; bi++)
        for (int qi = 0; rc == BENCH_OK && qi < qds->n; qi++) {
            rows[nrows] = (paths_row){.bb = blocks->v[bi], .qd = (unsigned)qds->v[qi]};
            rc = measure(paths, dev, nd, &rows[nrows], total, runs, src, dst);
            if (rc == BENCH_OK)
                nrows++;
        }
    bench_progress_done();
    if (rc == BENCH_OK && json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        bench_json_str(&j, "tier", "nvme");
        bench_json_str(&j, "mode", "paths");
        bench_json_str(&j, "paths", paths);
        bench_json_u64(&j, "devices", nd);
        bench_json_i64(&j, "runs", runs);
        bench_json_array(&j, "rows");
        for (size_t i = 0; i < nrows; i++) {
            bench_json_object(&j, NULL);
            bench_json_u64(&j, "block_bytes", rows[i].bb);
            bench_json_u64(&j, "queue_depth", rows[i].qd);
            bench_json_num(&j, "put_gb_per_s", rows[i].put);
            bench_json_num(&j, "get_gb_per_s", rows[i].get);
            bench_json_num(&j, "raw_sum_put_gb_per_s", rows[i].raw_put);
            bench_json_num(&j, "raw_sum_get_gb_per_s", rows[i].raw_get);
            bench_json_num(&j, "raw_together_put_gb_per_s", rows[i].all_put);
            bench_json_num(&j, "raw_together_get_gb_per_s", rows[i].all_get);
            bench_json_end_object(&j);
        }
        bench_json_end_array(&j);
        bench_json_end_object(&j);
        fputc('\n', stdout);
    } else if (rc == BENCH_OK) {
        bench_print_header(stdout, "micro --tier nvme --paths");
        printf("NVMe tier striped across %u devices (%s): put and get GB/s next to the sum of\n"
               "each device's raw io_uring O_DIRECT loop run alone on its share of the same\n"
               "blocks, same run, medians of %d runs. together: the same raw loops all at\n"
               "once, one thread each (what the machine does with every device busy; below\n"
               "the sum where the devices' I/O costs this machine's CPU, as loop devices do).\n\n",
               nd, paths, runs);
        static const char *const head[] = {"block", "QD", "put GB/s", "raw sum", "put/sum",
                                           "together", "put/tog.", "get GB/s", "raw sum",
                                           "get/sum", "together", "get/tog."};
        bench_table tb;
        bench_table_init(&tb, 12, head, "rrrrrrrrrrrr");
        for (size_t i = 0; i < nrows; i++) {
            bench_table_cell(&tb, "%" PRIu64 "K", rows[i].bb >> 10);
            bench_table_cell(&tb, "%u", rows[i].qd);
            bench_table_cell(&tb, "%.2f", rows[i].put);
            bench_table_cell(&tb, "%.2f", rows[i].raw_put);
            bench_table_cell(&tb, "%.0f%%", 100 * rows[i].put / rows[i].raw_put);
            bench_table_cell(&tb, "%.2f", rows[i].all_put);
            bench_table_cell(&tb, "%.0f%%", 100 * rows[i].put / rows[i].all_put);
            bench_table_cell(&tb, "%.2f", rows[i].get);
            bench_table_cell(&tb, "%.2f", rows[i].raw_get);
            bench_table_cell(&tb, "%.0f%%", 100 * rows[i].get / rows[i].raw_get);
            bench_table_cell(&tb, "%.2f", rows[i].all_get);
            bench_table_cell(&tb, "%.0f%%", 100 * rows[i].get / rows[i].all_get);
        }
        bench_table_print(&tb, stdout, 2);
        bench_table_free(&tb);
    }
    free(rows);
    bench_free(src, total);
    bench_free(dst, total);
    free(copy);
    return rc;
}
