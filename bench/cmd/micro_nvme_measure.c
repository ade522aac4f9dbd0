/* micro_nvme_measure.c — `micro --tier nvme` measurements: kvtier vs the raw io_uring loop (and with checksums) and the anchors' files, DRAM -> NVMe demotion, recovery. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>


#include "../baseline/anchor_files.h"
#include "../baseline/raw_sum.h"
#include "../baseline/raw_uring.h"
#include "micro_nvme.h"

/* ---------------------------------------------------------- small helpers */

static double gbps(uint64_t bytes, uint64_t ns)
{
    return (double)bytes / (double)(ns ? ns : 1); /* bytes/ns = GB/s */
}

static double pct(series *s, double p)
{
    return s->n ? bench_percentile(s, p) : NAN;
}

static double med(series *s)
{
    return s->n ? bench_median(s) : NAN;
}

static int lib_fail(const char *what)
{
    fprintf(stderr, "kvtier-bench micro --tier nvme: %s: %s\n", what, kvt_last_error());
    return BENCH_FAILED;
}

int nv_sys_fail(const char *what, int neg_errno)
{
    fprintf(stderr, "kvtier-bench micro --tier nvme: %s: %s\n", what, strerror(-neg_errno));
    return BENCH_FAILED;
}

/* The filesystem and block device under dir, for the report. */
void nv_describe_dir(const char *dir, char *fs, size_t fscap, char *dev, size_t devcap)
{
    struct statfs sf;
    struct stat st;
    snprintf(fs, fscap, "unknown");
    snprintf(dev, devcap, "unknown");
    if (statfs(dir, &sf) == 0) {
        switch ((uint32_t)sf.f_type) {
        case EXT4_SUPER_MAGIC: snprintf(fs, fscap, "ext4"); break;
        case XFS_SUPER_MAGIC: snprintf(fs, fscap, "xfs"); break;
        case BTRFS_SUPER_MAGIC: snprintf(fs, fscap, "btrfs"); break;
        case TMPFS_MAGIC: snprintf(fs, fscap, "tmpfs"); break;
        default: snprintf(fs, fscap, "0x%x", (unsigned)sf.f_type); break;
        }
    }
    if (stat(dir, &st) == 0) {
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k > 0) {
            target[k] = 0;
            const char *b = strrchr(target, '/');
            b = b ? b + 1 : target;
            size_t k2 = strlen(b) < devcap - 1 ? strlen(b) : devcap - 1;
            memcpy(dev, b, k2);
            dev[k2] = 0;
        }
    }
}

/* GB/s of first touches of fresh 4 KiB pages (16 MiB, no huge pages): what
 * allocating page-cache pages costs here. The file-per-block tier pays it
 * for every put and every cold read; a VM whose host backs guest memory
 * lazily makes it far slower than bare metal's several GB/s. */
double nv_page_touch_gbps(void)
{
    const size_t bytes = 16u << 20;
    uint64_t t0 = bench_now_ns();
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NAN;
    madvise(p, bytes, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < bytes; i += 4096)
        p[i] = 1;
    double g = gbps(bytes, bench_now_ns() - t0);
    munmap(p, bytes);
    return g;
}

/* An NVMe-only store (dram_bytes 0) or a DRAM tier over the NVMe tier. */
static kvt_store *open_store(const char *path, uint64_t bb, uint64_t nvme_slots, unsigned qd,
                             uint64_t dram_bytes)
{
    uint64_t slot = 0;
    if (bench_slot_bytes(bb, &slot)) {
        lib_fail("config");
        return NULL;
    }
    bench_store_spec spec = bench_dram_spec("micro --tier nvme", bb, dram_bytes);
    spec.block_tokens = 16;
    spec.close_flush_ms = 0; /* its files are deleted */
    spec.tier[BENCH_NVME] = (bench_tier_spec){
        .capacity = nvme_slots * slot, .queue_depth = (int)qd, .recreate = 1, .path = path};
    kvt_store *s = NULL;
    bench_store_open(&spec, &s);
    return s;
}

/* Where the store's slots start in its file (after the superblock). */
#define RAW_BASE 4096u

/* The raw loop's transfers: block i at the payload offset of the store's
 * own slot i. The raw loop runs on the store's slots, while the store holds
 * nothing, rather than on a region of its own: on the virtual disk two
 * regions of one file differed by 8-16% in speed for the same transfers,
 * more than the difference being measured (docs/perf.md). The payload
 * starts after the slot's header unit: slot - bb, block sizes being whole
 * 4 KiB (docs/nvme-format.md, "Sizes"). */
static void raw_layout(raw_io *ios, uint8_t *mem, size_t n, uint64_t bb, uint64_t slot)
{
    for (size_t i = 0; i < n; i++)
        ios[i] = (raw_io){.buf = mem + i * bb, .off = RAW_BASE + i * slot + (slot - bb),
                          .len = (uint32_t)bb};
}

/* Removes the n blocks just measured, untimed, so that the raw loop can
 * take the slots. */
static int remove_all(kvt_store *s, const kvt_key *keys, size_t n)
{
    int gone = kvt_remove(s, keys, n);
    if (gone == (int)n)
        return 0;
    fprintf(stderr, "kvtier-bench micro --tier nvme: removed %d of %zu blocks\n", gone, n);
    return BENCH_FAILED;
}

/* Before a read pass: blank each block's first and last 64 bytes, so that a
 * block the pass did not write is noticed by check_read(). */
static void mark_dst(uint8_t *dst, size_t n, uint64_t bb)
{
    for (size_t i = 0; i < n; i++) {
        memset(dst + i * bb, 0, 64);
        memset(dst + (i + 1) * bb - 64, 0, 64);
    }
}

static int check_read(const uint8_t *dst, const uint8_t *src, size_t n, uint64_t bb,
                      const char *who)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(dst + i * bb, src + i * bb, 64) ||
            memcmp(dst + (i + 1) * bb - 64, src + (i + 1) * bb - 64, 64)) {
            fprintf(stderr, "kvtier-bench micro --tier nvme: %s read wrong bytes in block %zu\n",
                    who, i);
            return BENCH_FAILED;
        }
    return 0;
}

/* CPU time of this process in the last kvt_pass() or raw_pass(): the raw
 * loop works on the calling thread alone, the tier on the caller (which
 * drives its ring) and its hashing threads; counting the whole process
 * charges each side all it costs, whatever other processes take. */
static uint64_t last_cpu_ns;

/* Where raw_sum_hash_only()'s result goes, so that the hashing is done. */
static volatile uint64_t hash_sink;

/* The calling thread's run delay in the last pass: the time it was ready
 * to reap completions and submit more but waited for a CPU, which another
 * of the process's threads may hold (the tier's hashing threads, or the
 * checksumming loop's). On 2 vCPUs this wait idled the device for
 * milliseconds per pass (docs/perf.md). */
static uint64_t last_delay_ns;

/* The clocks at the start of a pass. */
typedef struct pass_start {
    uint64_t delay, cpu, wall;
} pass_start;

static pass_start pass_begin(void)
{
    return (pass_start){.delay = bench_thread_run_delay_ns(), .cpu = bench_process_cpu_ns(),
                        .wall = bench_now_ns()};
}

/* The pass's wall time into *ns; its CPU and run delay into last_*. */
static void pass_end(pass_start b, uint64_t *ns)
{
    *ns = bench_now_ns() - b.wall;
    last_cpu_ns = bench_process_cpu_ns() - b.cpu;
    uint64_t d = bench_thread_run_delay_ns();
    last_delay_ns = d == UINT64_MAX || b.delay == UINT64_MAX ? UINT64_MAX : d - b.delay;
}

static int kvt_pass(kvt_store *s, int put, const kvt_key *keys, size_t n, void **ptrs,
                    uint64_t *ns)
{
    pass_start b = pass_begin();
    int got = put ? kvt_put(s, keys, n, ptrs, NULL, NULL) : kvt_get(s, keys, n, ptrs, NULL, NULL);
    pass_end(b, ns);
    if (got != (int)n) {
        fprintf(stderr, "kvtier-bench micro --tier nvme: %s moved %d of %zu blocks: %s\n",
                put ? "kvt_put" : "kvt_get", got, n,
                got < 0 ? kvt_last_error() : put ? "rejected" : "missing");
        return BENCH_FAILED;
    }
    return 0;
}

static int raw_pass(raw_uring *r, int write, const raw_io *ios, size_t n, uint64_t *ns)
{
    pass_start b = pass_begin();
    int rc = raw_uring_run(r, write, ios, n);
    pass_end(b, ns);
    return rc ? nv_sys_fail(write ? "raw write" : "raw read", rc) : 0;
}

static int sum_pass(raw_sum *h, raw_uring *r, int write, const raw_io *ios, size_t n,
                    uint64_t *ns)
{
    pass_start b = pass_begin();
    int rc = raw_sum_run(h, r, write, ios, n);
    pass_end(b, ns);
    if (rc == -EILSEQ) {
        fprintf(stderr, "kvtier-bench micro --tier nvme: the raw loop with checksums read a "
                        "block whose checksum differs from the one written\n");
        return BENCH_FAILED;
    }
    return rc ? nv_sys_fail(write ? "raw write with checksums" : "raw read with checksums", rc) : 0;
}

static int anchor_pass(anchor_pool *a, anchor_op op, const nv_opts *o, const kvt_key *keys,
                       size_t n, void **ptrs, uint64_t bb, uint64_t *ns)
{
    uint64_t t0 = bench_now_ns();
    int rc = anchor_run(a, op, o->adir, keys, n, ptrs, bb);
    *ns = bench_now_ns() - t0;
    return rc ? nv_sys_fail("one-file-per-block I/O", rc) : 0;
}

/* -------------------------------------------- kvtier vs raw (and anchors) */

enum { P_KVT, P_RAW, P_FIXED, P_SUM, P_ANCHOR, NPASS };

/* One timed pass of side p (kvtier, a raw loop, or the raw loop plus
 * checksums), writing (put) or reading. The anchor's passes are its own. */
static int side_pass(int p, int put, kvt_store *s, const kvt_key *keys, void **ptrs,
                     raw_uring *plain, raw_uring *fixed, raw_sum *summer, const raw_io *ios,
                     size_t n, uint64_t *ns)
{
    switch (p) {
    case P_KVT:
        return kvt_pass(s, put, keys, n, ptrs, ns);
    case P_RAW:
        return raw_pass(plain, put, ios, n, ns);
    case P_FIXED:
        return raw_pass(fixed, put, ios, n, ns);
    case P_SUM:
        return sum_pass(summer, plain, put, ios, n, ns);
    default:
        return 0;
    }
}

typedef struct row_series {
    series put[NPASS], get[NPASS];
    series put_cpu[NPASS], get_cpu[NPASS];     /* CPU seconds per GB */
    series hash_cpu;                           /* the checksum alone, CPU s/GB */
    series put_delay[NPASS], get_delay[NPASS]; /* run delay, ms per pass */
    series put_ratio, get_ratio, put_ratio_fixed, get_ratio_fixed, put_ratio_sum, get_ratio_sum;
    series anchor_wb, anchor_warm, get_vs_cold, get_vs_warm, put_vs_wb;
} row_series;

static void row_series_free(row_series *rs)
{
    series *all[] = {&rs->put_ratio,  &rs->get_ratio,   &rs->put_ratio_fixed,
                     &rs->get_ratio_fixed, &rs->anchor_wb, &rs->anchor_warm,
                     &rs->get_vs_cold, &rs->get_vs_warm, &rs->put_vs_wb,
                     &rs->put_ratio_sum, &rs->get_ratio_sum, &rs->hash_cpu};
    for (int p = 0; p < NPASS; p++) {
        bench_samples_free(&rs->put[p]);
        bench_samples_free(&rs->get[p]);
        bench_samples_free(&rs->put_cpu[p]);
        bench_samples_free(&rs->get_cpu[p]);
        bench_samples_free(&rs->put_delay[p]);
        bench_samples_free(&rs->get_delay[p]);
    }
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bench_samples_free(all[i]);
}

/* One block size x queue depth: an NVMe-only store of exactly one run's
 * blocks, and the raw loop on the same slots. In each run every side writes
 * the run's blocks and reads them back in turn: kvtier (a put and a get of
 * fresh keys, then an untimed remove), the raw loop (plain buffers, then
 * registered ones) and, when with_anchor, the anchor; who goes first
 * rotates from run to run. */
int nv_measure_row(nv_opts *o, nv_row *row, anchor_row *arow, const kvt_key *keys,
                   int with_anchor)
{
    const uint64_t bb = row->block_bytes;
    const size_t n = row->blocks;
    const uint64_t run_bytes = (uint64_t)n * bb;
    uint64_t slot = 0;
    bench_slot_bytes(bb, &slot);
    row->slot_bytes = slot;
    unlink(o->path);
    kvt_store *s = open_store(o->path, bb, n, row->qd, 0);
    if (!s)
        return BENCH_FAILED;
    int rc = BENCH_FAILED, fd = -1;
    raw_uring *plain = NULL, *fixed = NULL;
    raw_sum *summer = NULL;
    anchor_pool *ap = NULL;
    row_series rs;
    memset(&rs, 0, sizeof rs);
    void **sp = malloc(n * sizeof *sp), **dp = malloc(n * sizeof *dp);
    raw_io *wio = malloc(n * sizeof *wio), *rio = malloc(n * sizeof *rio);
    if (!sp || !dp || !wio || !rio) {
        fprintf(stderr, "kvtier-bench micro --tier nvme: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sp[i] = o->src + i * bb;
        dp[i] = o->dst + i * bb;
    }
    fd = raw_uring_open_file(o->path, RAW_BASE + (uint64_t)n * slot);
    if (fd < 0) {
        rc = nv_sys_fail("opening the store's file for the raw loop", fd);
        fd = -1;
        goto out;
    }
    raw_layout(wio, o->src, n, bb, slot);
    raw_layout(rio, o->dst, n, bb, slot);
    int e = raw_uring_new(fd, row->qd, NULL, 0, &plain);
    if (e) {
        rc = nv_sys_fail("raw io_uring setup", e);
        goto out;
    }
    if (o->fixed_ok) {
        struct iovec regs[2] = {{o->src, o->total}, {o->dst, o->total}};
        if ((e = raw_uring_new(fd, row->qd, regs, 2, &fixed)) != 0) {
            fprintf(stderr, "kvtier-bench micro --tier nvme: registering %" PRIu64
                            " MiB of buffers with io_uring failed (%s): the raw loop runs "
                            "without registered buffers\n",
                    2 * o->total >> 20, strerror(-e));
            o->fixed_ok = 0;
        }
    }
    if (o->raw_sum && (e = raw_sum_new(o->sum_helpers, n, &summer)) != 0) {
        rc = nv_sys_fail("starting the raw loop's hashing threads", e);
        goto out;
    }
    if (with_anchor && !(ap = anchor_pool_new(o->anchor_threads))) {
        fprintf(stderr, "kvtier-bench micro --tier nvme: cannot start %u anchor threads\n",
                o->anchor_threads);
        goto out;
    }

    /* Warm-up: every slot written once, so that no measured write lands
     * in a preallocated-but-unwritten extent (the filesystem converts those
     * on first write), and the anchor's directory has seen a batch. */
    uint64_t ns;
    if (kvt_pass(s, 1, keys, n, sp, &ns) || remove_all(s, keys, n))
        goto out;
    if (ap && (anchor_pass(ap, ANCHOR_PUT, o, keys, n, sp, bb, &ns) ||
               anchor_pass(ap, ANCHOR_UNLINK, o, keys, n, NULL, bb, &ns)))
        goto out;

    const uint64_t staged0 = bench_stat(s, "nvme.staged"), resub0 = bench_stat(s, "nvme.resubmits");
    int passes[NPASS], np = 0;
    passes[np++] = P_KVT;
    passes[np++] = P_RAW;
    if (fixed)
        passes[np++] = P_FIXED;
    if (summer)
        passes[np++] = P_SUM;
    if (ap)
        passes[np++] = P_ANCHOR;
    arow->cold_resident_pages = 0;
    static const char *const who[NPASS] = {"kvtier", "the raw loop", "the raw loop (registered)",
                                            "the raw loop with checksums", "the anchor"};
    for (int r = 0; r < o->runs; r++) {
        bench_progress("micro nvme: %" PRIu64 " B blocks, QD %u, run %d/%d", bb, row->qd, r + 1,
                       o->runs);
        const kvt_key *rk = keys + (size_t)(r + 1) * n;
        uint64_t put_ns[NPASS] = {0}, get_ns[NPASS] = {0}, wb_ns = 0, warm_ns = 0;
        uint64_t put_cpu[NPASS] = {0}, get_cpu[NPASS] = {0};
        uint64_t put_delay[NPASS] = {0}, get_delay[NPASS] = {0};
        /* Each side writes its blocks and reads them back before the next
         * side starts: kvtier and the raw loops take turns on the same
         * slots, so kvtier's blocks are removed (untimed) after its turn. */
        for (int k = 0; k < np; k++) {
            int p = passes[(k + r) % np];
            if (side_pass(p, 1, s, rk, sp, plain, fixed, summer, wio, n, &put_ns[p]))
                goto out;
            put_cpu[p] = last_cpu_ns;
            put_delay[p] = last_delay_ns;
            /* The anchor's put returns with the bytes in the page cache; its
             * writeback (and dropping the pages, for the cold read) is timed
             * on its own right after. */
            if (p == P_ANCHOR && (anchor_pass(ap, ANCHOR_PUT, o, rk, n, sp, bb, &put_ns[p]) ||
                                  anchor_pass(ap, ANCHOR_WRITEBACK, o, rk, n, NULL, bb, &wb_ns)))
                goto out;
            mark_dst(o->dst, n, bb);
            if (side_pass(p, 0, s, rk, dp, plain, fixed, summer, rio, n, &get_ns[p]))
                goto out;
            get_cpu[p] = last_cpu_ns;
            get_delay[p] = last_delay_ns;
            if (p == P_ANCHOR) {
                int64_t res = anchor_resident_pages(o->adir, rk, n, bb);
                if (res > arow->cold_resident_pages)
                    arow->cold_resident_pages = res;
                if (anchor_pass(ap, ANCHOR_GET, o, rk, n, dp, bb, &get_ns[p]))
                    goto out;
                if (check_read(o->dst, o->src, n, bb, "the anchor (cold)"))
                    goto out;
                mark_dst(o->dst, n, bb);
                if (anchor_pass(ap, ANCHOR_GET, o, rk, n, dp, bb, &warm_ns) ||
                    anchor_pass(ap, ANCHOR_UNLINK, o, rk, n, NULL, bb, &ns))
                    goto out;
            }
            if (check_read(o->dst, o->src, n, bb, who[p]))
                goto out;
            if (p == P_KVT && remove_all(s, rk, n))
                goto out;
        }
        for (int k = 0; k < np; k++) {
            int p = passes[k];
            bench_samples_add(&rs.put[p], gbps(run_bytes, put_ns[p]));
            bench_samples_add(&rs.get[p], gbps(run_bytes, get_ns[p]));
            bench_samples_add(&rs.put_cpu[p], (double)put_cpu[p] / (double)run_bytes);
            bench_samples_add(&rs.get_cpu[p], (double)get_cpu[p] / (double)run_bytes);
            if (put_delay[p] != UINT64_MAX && get_delay[p] != UINT64_MAX) {
                bench_samples_add(&rs.put_delay[p], (double)put_delay[p] / 1e6);
                bench_samples_add(&rs.get_delay[p], (double)get_delay[p] / 1e6);
            }
        }
        /* Ratios of time: the two passes of a run ran seconds apart at most,
         * so a ratio per run shrugs off slow minutes of the shared disk. */
        bench_samples_add(&rs.put_ratio, (double)put_ns[P_RAW] / (double)put_ns[P_KVT]);
        bench_samples_add(&rs.get_ratio, (double)get_ns[P_RAW] / (double)get_ns[P_KVT]);
        if (fixed) {
            bench_samples_add(&rs.put_ratio_fixed, (double)put_ns[P_FIXED] / (double)put_ns[P_KVT]);
            bench_samples_add(&rs.get_ratio_fixed, (double)get_ns[P_FIXED] / (double)get_ns[P_KVT]);
        }
        /* The checksum alone, once per run over the run's blocks: the
         * CPU a self-verifying tier cannot avoid, next to the raw loop's. */
        uint64_t h0 = bench_thread_cpu_ns();
        hash_sink ^= raw_sum_hash_only(wio, n);
        bench_samples_add(&rs.hash_cpu, (double)(bench_thread_cpu_ns() - h0) / (double)run_bytes);
        if (summer) {
            bench_samples_add(&rs.put_ratio_sum, (double)put_ns[P_SUM] / (double)put_ns[P_KVT]);
            bench_samples_add(&rs.get_ratio_sum, (double)get_ns[P_SUM] / (double)get_ns[P_KVT]);
        }
        if (ap) {
            bench_samples_add(&rs.anchor_wb, gbps(run_bytes, put_ns[P_ANCHOR] + wb_ns));
            bench_samples_add(&rs.anchor_warm, gbps(run_bytes, warm_ns));
            bench_samples_add(&rs.get_vs_cold, (double)get_ns[P_ANCHOR] / (double)get_ns[P_KVT]);
            bench_samples_add(&rs.get_vs_warm, (double)warm_ns / (double)get_ns[P_KVT]);
            bench_samples_add(&rs.put_vs_wb,
                              (double)(put_ns[P_ANCHOR] + wb_ns) / (double)put_ns[P_KVT]);
        }
    }
    row->pairs = rs.put_ratio.n;
    row->put = med(&rs.put[P_KVT]);
    row->put_raw = med(&rs.put[P_RAW]);
    row->put_fixed = med(&rs.put[P_FIXED]);
    row->put_ratio = med(&rs.put_ratio);
    row->put_p10 = pct(&rs.put_ratio, 10);
    row->put_p90 = pct(&rs.put_ratio, 90);
    row->put_ratio_fixed = med(&rs.put_ratio_fixed);
    row->get = med(&rs.get[P_KVT]);
    row->get_raw = med(&rs.get[P_RAW]);
    row->get_fixed = med(&rs.get[P_FIXED]);
    row->get_ratio = med(&rs.get_ratio);
    row->get_p10 = pct(&rs.get_ratio, 10);
    row->get_p90 = pct(&rs.get_ratio, 90);
    row->get_ratio_fixed = med(&rs.get_ratio_fixed);
    row->put_cpu = med(&rs.put_cpu[P_KVT]);
    row->put_raw_cpu = med(&rs.put_cpu[P_RAW]);
    row->put_fixed_cpu = med(&rs.put_cpu[P_FIXED]);
    row->get_cpu = med(&rs.get_cpu[P_KVT]);
    row->get_raw_cpu = med(&rs.get_cpu[P_RAW]);
    row->get_fixed_cpu = med(&rs.get_cpu[P_FIXED]);
    row->put_sum = med(&rs.put[P_SUM]);
    row->put_ratio_sum = med(&rs.put_ratio_sum);
    row->put_sum_p10 = pct(&rs.put_ratio_sum, 10);
    row->put_sum_p90 = pct(&rs.put_ratio_sum, 90);
    row->put_sum_cpu = med(&rs.put_cpu[P_SUM]);
    row->get_sum = med(&rs.get[P_SUM]);
    row->get_ratio_sum = med(&rs.get_ratio_sum);
    row->get_sum_p10 = pct(&rs.get_ratio_sum, 10);
    row->get_sum_p90 = pct(&rs.get_ratio_sum, 90);
    row->get_sum_cpu = med(&rs.get_cpu[P_SUM]);
    row->hash_cpu = med(&rs.hash_cpu);
    row->put_cpu_vs_raw_hash = row->put_cpu / (row->put_raw_cpu + row->hash_cpu);
    row->get_cpu_vs_raw_hash = row->get_cpu / (row->get_raw_cpu + row->hash_cpu);
    row->put_delay = med(&rs.put_delay[P_KVT]);
    row->put_raw_delay = med(&rs.put_delay[P_RAW]);
    row->put_sum_delay = med(&rs.put_delay[P_SUM]);
    row->get_delay = med(&rs.get_delay[P_KVT]);
    row->get_raw_delay = med(&rs.get_delay[P_RAW]);
    row->get_sum_delay = med(&rs.get_delay[P_SUM]);
    row->staged = bench_stat(s, "nvme.staged") - staged0;
    row->fixed_host = bench_stat(s, "nvme.fixed_host");
    row->resubmits = bench_stat(s, "nvme.resubmits") - resub0;
    row->raw_fixed_ios = fixed ? raw_uring_fixed(fixed) : 0;
    row->raw_resubmits = raw_uring_resubmits(plain) + (fixed ? raw_uring_resubmits(fixed) : 0);
    if (ap) {
        arow->block_bytes = bb;
        arow->threads = o->anchor_threads;
        arow->qd = row->qd;
        arow->blocks = n;
        arow->pairs = rs.get_vs_cold.n;
        arow->put_cache = med(&rs.put[P_ANCHOR]);
        arow->put_wb = med(&rs.anchor_wb);
        arow->get_cold = med(&rs.get[P_ANCHOR]);
        arow->get_warm = med(&rs.anchor_warm);
        arow->kvt_put = row->put;
        arow->kvt_get = row->get;
        arow->get_vs_cold = med(&rs.get_vs_cold);
        arow->get_vs_cold_p10 = pct(&rs.get_vs_cold, 10);
        arow->get_vs_cold_p90 = pct(&rs.get_vs_cold, 90);
        arow->get_vs_warm = med(&rs.get_vs_warm);
        arow->put_vs_wb = med(&rs.put_vs_wb);
    }
    rc = BENCH_OK;
out:
    if (ap) {
        /* Whatever the last runs left behind. */
        anchor_run(ap, ANCHOR_UNLINK, o->adir, keys, (size_t)(o->runs + 1) * n, NULL, bb);
        anchor_pool_free(ap);
    }
    raw_sum_free(summer);
    raw_uring_free(plain);
    raw_uring_free(fixed);
    if (fd >= 0)
        close(fd);
    if (kvt_close(s) && rc == BENCH_OK)
        rc = lib_fail("kvt_close");
    unlink(o->path);
    row_series_free(&rs);
    free(sp);
    free(dp);
    free(wio);
    free(rio);
    return rc;
}

/* ------------------------------------------------- DRAM -> NVMe demotion */

/* Puts into a DRAM tier of a few blocks over an NVMe tier: nearly every
 * block is written to NVMe when it is evicted from DRAM, from the DRAM
 * arena (registered with the rings). Next to the raw loop writing the same
 * bytes from registered memory at depth 1 and at the tier's depth. */
/* The demotion rows' raw side, the same work as kvtier's puts: copy the
 * run's blocks into memory (one thread), then write as many blocks as kvtier
 * demoted, O_DIRECT from registered memory. */
static int copy_write_pass(nv_opts *o, raw_uring *r, const raw_io *ios, size_t n, size_t writes,
                           uint64_t bb, uint64_t *ns)
{
    pass_start b = pass_begin();
    memcpy(o->dst, o->src, n * bb);
    int rc = writes ? raw_uring_run(r, 1, ios, writes) : 0;
    pass_end(b, ns);
    return rc ? nv_sys_fail("raw write", rc) : 0;
}

int nv_measure_demote(nv_opts *o, demote_row *row, const kvt_key *keys)
{
    const uint64_t bb = row->block_bytes;
    const size_t n = row->blocks;
    const uint64_t run_bytes = (uint64_t)n * bb;
    uint64_t slot = 0;
    bench_slot_bytes(bb, &slot);
    unlink(o->path);
    kvt_store *s = open_store(o->path, bb, n, row->qd, row->dram_bytes);
    if (!s)
        return BENCH_FAILED;
    int rc = BENCH_FAILED, fd = -1;
    raw_uring *r1 = NULL, *rq = NULL;
    series put = {0}, raw1 = {0}, rawq = {0}, ratio1 = {0}, ratioq = {0};
    void **sp = malloc(n * sizeof *sp);
    raw_io *wio = malloc(n * sizeof *wio);
    if (!sp || !wio) {
        fprintf(stderr, "kvtier-bench micro --tier nvme: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        sp[i] = o->src + i * bb;
    fd = raw_uring_open_file(o->path, RAW_BASE + (uint64_t)n * slot);
    if (fd < 0) {
        rc = nv_sys_fail("opening the store's file for the raw loop", fd);
        fd = -1;
        goto out;
    }
    raw_layout(wio, o->src, n, bb, slot);
    struct iovec reg = {o->src, o->total};
    row->fixed = o->fixed_ok;
    int e = raw_uring_new(fd, 1, &reg, o->fixed_ok, &r1);
    if (!e)
        e = raw_uring_new(fd, row->qd, &reg, o->fixed_ok, &rq);
    if (e) {
        rc = nv_sys_fail("raw io_uring setup", e);
        goto out;
    }
    uint64_t ns, dem0, demw = bench_stat(s, "nvme.demotions_in");
    if (kvt_pass(s, 1, keys, n, sp, &ns) || remove_all(s, keys, n))
        goto out;
    dem0 = bench_stat(s, "nvme.demotions_in");
    /* Each run starts from an empty store, as the warm-up did: the raw side
     * writes as many blocks as the warm-up demoted. */
    row->raw_writes = dem0 - demw < n ? (size_t)(dem0 - demw) : n;
    for (int r = 0; r < o->runs; r++) {
        bench_progress("micro nvme: DRAM->NVMe, %" PRIu64 " B blocks, run %d/%d", bb, r + 1,
                       o->runs);
        const kvt_key *rk = keys + (size_t)(r + 1) * n;
        uint64_t t[3] = {0};
        /* As in nv_measure_row(): the raw loops write the store's own slots,
         * so the store's blocks are removed (untimed) after its pass. */
        for (int k = 0; k < 3; k++) {
            int p = (k + r) % 3;
            if (p == 0 && (kvt_pass(s, 1, rk, n, sp, &t[0]) || remove_all(s, rk, n)))
                goto out;
            if (p == 1 && copy_write_pass(o, r1, wio, n, row->raw_writes, bb, &t[1]))
                goto out;
            if (p == 2 && copy_write_pass(o, rq, wio, n, row->raw_writes, bb, &t[2]))
                goto out;
        }
        bench_samples_add(&put, gbps(run_bytes, t[0]));
        bench_samples_add(&raw1, gbps(run_bytes, t[1]));
        bench_samples_add(&rawq, gbps(run_bytes, t[2]));
        bench_samples_add(&ratio1, (double)t[1] / (double)t[0]);
        bench_samples_add(&ratioq, (double)t[2] / (double)t[0]);
    }
    row->pairs = put.n;
    row->put = med(&put);
    row->raw1 = med(&raw1);
    row->rawq = med(&rawq);
    row->ratio1 = med(&ratio1);
    row->ratioq = med(&ratioq);
    row->demotions_per_run =
        (double)(bench_stat(s, "nvme.demotions_in") - dem0) / (double)(o->runs ? o->runs : 1);
    rc = BENCH_OK;
out:
    raw_uring_free(r1);
    raw_uring_free(rq);
    if (fd >= 0)
        close(fd);
    if (kvt_close(s) && rc == BENCH_OK)
        rc = lib_fail("kvt_close");
    unlink(o->path);
    bench_samples_free(&put);
    bench_samples_free(&raw1);
    bench_samples_free(&rawq);
    bench_samples_free(&ratio1);
    bench_samples_free(&ratioq);
    free(sp);
    free(wio);
    return rc;
}

/* -------------------------------------------------------------- recovery */

/* Fills an NVMe-only store with row->blocks blocks, closes it, then opens
 * it `reopens` times: each open rebuilds the index from the slot headers. */
int nv_measure_recovery(nv_opts *o, rec_row *row, int reopens)
{
    const uint64_t bb = row->block_bytes, n = row->blocks;
    bench_slot_bytes(bb, &row->slot_bytes);
    row->file_bytes = 4096 + n * row->slot_bytes;
    row->qd = o->big_qd;
    const size_t batch = n < 4096 ? (size_t)n : 4096;
    kvt_key *keys = malloc(batch * sizeof *keys);
    void **sp = malloc(batch * sizeof *sp);
    uint8_t *buf = bench_alloc(batch * bb);
    series open_ms = {0}, rec_ms = {0};
    kvt_store *s = NULL;
    int rc = BENCH_FAILED;
    if (!keys || !sp || !buf) {
        fprintf(stderr, "kvtier-bench micro --tier nvme: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < batch; i++)
        sp[i] = buf + i * bb;
    unlink(o->path);
    uint64_t t0 = bench_now_ns();
    if (!(s = open_store(o->path, bb, n, row->qd, 0)))
        goto out;
    row->create_ms = (double)(bench_now_ns() - t0) / 1e6;
    t0 = bench_now_ns();
    for (uint64_t done = 0; done < n;) {
        size_t k = n - done < batch ? (size_t)(n - done) : batch;
        bench_progress("micro nvme: recovery, filling %" PRIu64 "/%" PRIu64, done, n);
        if (bench_keys(keys, k, 0x5eed0000 + done))
            goto out;
        int got = kvt_put(s, keys, k, sp, NULL, NULL);
        if (got != (int)k) {
            fprintf(stderr, "kvtier-bench micro --tier nvme: recovery fill stored %d of %zu: %s\n",
                    got, k, got < 0 ? kvt_last_error() : "rejected");
            goto out;
        }
        done += k;
    }
    row->fill_s = (double)(bench_now_ns() - t0) / 1e9;
    t0 = bench_now_ns();
    int c = kvt_close(s);
    s = NULL;
    row->close_ms = (double)(bench_now_ns() - t0) / 1e6;
    if (c) {
        lib_fail("kvt_close");
        goto out;
    }
    for (int r = 0; r < reopens; r++) {
        bench_progress("micro nvme: recovery of %" PRIu64 " blocks, open %d/%d", n, r + 1, reopens);
        t0 = bench_now_ns();
        if (!(s = open_store(o->path, bb, n, row->qd, 0)))
            goto out;
        bench_samples_add(&open_ms, (double)(bench_now_ns() - t0) / 1e6);
        bench_samples_add(&rec_ms, (double)bench_stat(s, "nvme.recovery_ms"));
        row->recovered = bench_stat(s, "nvme.recovered");
        if (row->recovered != n) {
            fprintf(stderr, "kvtier-bench micro --tier nvme: recovered %" PRIu64 " of %" PRIu64
                            " blocks\n", row->recovered, n);
            goto out;
        }
        c = kvt_close(s);
        s = NULL;
        if (c) {
            lib_fail("kvt_close");
            goto out;
        }
    }
    row->reopens = reopens;
    row->open_ms = med(&open_ms);
    row->open_ms_min = open_ms.n ? bench_min(&open_ms) : NAN;
    row->open_ms_max = open_ms.n ? bench_max(&open_ms) : NAN;
    row->recovery_ms = med(&rec_ms);
    rc = BENCH_OK;
out:
    kvt_close(s);
    unlink(o->path);
    bench_samples_free(&open_ms);
    bench_samples_free(&rec_ms);
    bench_free(buf, batch * bb);
    free(keys);
    free(sp);
    return rc;
}

