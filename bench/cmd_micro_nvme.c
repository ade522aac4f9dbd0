/* cmd_micro_nvme.c — `kvtier-bench micro --tier nvme`: NVMe tier GB/s vs raw io_uring O_DIRECT and the anchors' file-per-block tier; recovery time. */
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

#include "anchor_files.h"
#include "bench.h"
#include "raw_sum.h"
#include "raw_uring.h"

static const char summary[] =
    "NVMe tier put and get GB/s for each block size x queue depth, each next to a raw\n"
    "  liburing O_DIRECT loop over the store's own slots (taking turns), the same bytes and\n"
    "  the same depth, measured in the same run (passes alternate; medians reported), and\n"
    "  next to that loop plus an XXH3-64 checksum of every block, hashed as the tier does;\n"
    "  with each side's CPU per GB and its run delay (the ring's thread waiting for a CPU).\n"
    "  Also: the anchors' one-file-per-block tier (buffered pwrite/pread from a thread\n"
    "  pool; cold and warm page cache), puts into a small DRAM tier demoting to NVMe, and\n"
    "  on-media overhead. --recovery instead fills a file with small blocks, reopens it,\n"
    "  and reports the open time and nvme.recovery_ms.";

#define MAX_QD 4096

/* ------------------------------------------------------------ settings */

typedef struct nv_opts {
    const char *dir;
    char path[PATH_MAX];  /* the store's file, also the raw loop's */
    char adir[PATH_MAX];  /* the anchor's directory of block files */
    uint64_t total;       /* bytes per pass */
    int runs;
    unsigned anchor_threads;
    unsigned big_qd;      /* the anchors, the demotion path and recovery run at this depth */
    int anchor, demote;
    uint64_t dram_bytes;
    uint8_t *src, *dst;   /* caller buffers: total bytes each */
    int fixed_ok;         /* whether the raw loop could register them */
    int raw_sum;          /* also run the raw loop with checksums */
    unsigned sum_helpers; /* its hashing threads: as many as the tier's */
    double touch_gbps;    /* page_touch_gbps() before the anchor rows */
} nv_opts;

/* Samples of one series: GB/s per pass, or a ratio per run. */
typedef bench_samples series;

typedef struct nv_row {
    uint64_t block_bytes, slot_bytes;
    unsigned qd;
    size_t blocks, pairs;
    double put, put_raw, put_fixed, put_ratio, put_p10, put_p90, put_ratio_fixed;
    double get, get_raw, get_fixed, get_ratio, get_p10, get_p90, get_ratio_fixed;
    double put_cpu, put_raw_cpu, put_fixed_cpu, get_cpu, get_raw_cpu, get_fixed_cpu; /* s/GB */
    /* The raw loop with checksums (raw_sum.h): GB/s, kvtier's ratio to it, CPU s/GB. */
    double put_sum, put_ratio_sum, put_sum_p10, put_sum_p90, put_sum_cpu;
    double get_sum, get_ratio_sum, get_sum_p10, get_sum_p90, get_sum_cpu;
    /* The driving thread's run delay, ms per pass: kvtier, raw, sum. */
    double put_delay, put_raw_delay, put_sum_delay, get_delay, get_raw_delay, get_sum_delay;
    uint64_t staged, fixed_host, resubmits, raw_fixed_ios, raw_resubmits;
} nv_row;

typedef struct anchor_row {
    uint64_t block_bytes;
    unsigned threads, qd;
    size_t blocks, pairs;
    double put_cache, put_wb, get_cold, get_warm, kvt_put, kvt_get;
    double get_vs_cold, get_vs_cold_p10, get_vs_cold_p90, get_vs_warm, put_vs_wb;
    int64_t cold_resident_pages; /* the most found before any cold pass */
} anchor_row;

typedef struct demote_row {
    uint64_t block_bytes, dram_bytes;
    unsigned qd;
    size_t blocks, pairs;
    double put, raw1, rawq, ratio1, ratioq;
    double demotions_per_run;
    size_t raw_writes; /* blocks the raw side writes per pass: kvtier's warm-up demotions */
    int fixed;
} demote_row;

typedef struct rec_row {
    uint64_t blocks, block_bytes, slot_bytes, file_bytes;
    unsigned qd;
    double create_ms, fill_s, close_ms;
    double open_ms, open_ms_min, open_ms_max, recovery_ms;
    uint64_t recovered;
    int reopens;
} rec_row;

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

static int sys_fail(const char *what, int neg_errno)
{
    fprintf(stderr, "kvtier-bench micro --tier nvme: %s: %s\n", what, strerror(-neg_errno));
    return BENCH_FAILED;
}

/* The filesystem and block device under dir, for the report. */
static void describe_dir(const char *dir, char *fs, size_t fscap, char *dev, size_t devcap)
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
static double page_touch_gbps(void)
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
    kvt_config *c = NULL;
    kvt_store *s = NULL;
    uint64_t slot = 0;
    if (kvt_config_new(&c) || kvt_slot_bytes("nvme", bb, &slot)) {
        lib_fail("config");
        kvt_config_free(c);
        return NULL;
    }
    int bad = kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)bb) ||
              kvt_config_set(c, KVT_OPT_BLOCK_TOKENS, 16) ||
              kvt_config_set(c, KVT_OPT_CLOSE_FLUSH_MS, 0) || /* its files are deleted */
              /* DRAM, when there is one, is added first: the faster tier */
              (dram_bytes &&
               kvt_config_tier_set(c, bench_tier(c, "dram"), "capacity", (int64_t)dram_bytes)) ||
              kvt_config_tier_set(c, bench_tier(c, "nvme"), "capacity",
                                  (int64_t)(nvme_slots * slot)) ||
              kvt_config_tier_set(c, bench_tier(c, "nvme"), "queue_depth", qd) ||
              kvt_config_tier_set(c, bench_tier(c, "nvme"), "recreate", 1) ||
              kvt_config_tier_set_str(c, bench_tier(c, "nvme"), "path", path);
    if (bad)
        lib_fail("configuring the store");
    else if (kvt_open(c, &s))
        lib_fail("kvt_open");
    kvt_config_free(c);
    return s;
}

/* Where the store's slots start in its file (after the superblock). */
#define RAW_BASE 4096u

/* The raw loop's transfers: block i at the payload offset of the store's
 * own slot i. The raw loop runs on the store's slots, while the store holds
 * nothing, rather than on a region of its own: on the virtual disk two
 * regions of one file differed by 8-16% in speed for the same transfers,
 * more than the difference being measured (docs/perf.md). */
static void raw_layout(raw_io *ios, uint8_t *mem, size_t n, uint64_t bb, uint64_t slot)
{
    for (size_t i = 0; i < n; i++)
        ios[i] = (raw_io){.buf = mem + i * bb, .off = RAW_BASE + i * slot + 4096,
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
    return rc ? sys_fail(write ? "raw write" : "raw read", rc) : 0;
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
    return rc ? sys_fail(write ? "raw write with checksums" : "raw read with checksums", rc) : 0;
}

static int anchor_pass(anchor_pool *a, anchor_op op, const nv_opts *o, const kvt_key *keys,
                       size_t n, void **ptrs, uint64_t bb, uint64_t *ns)
{
    uint64_t t0 = bench_now_ns();
    int rc = anchor_run(a, op, o->adir, keys, n, ptrs, bb);
    *ns = bench_now_ns() - t0;
    return rc ? sys_fail("one-file-per-block I/O", rc) : 0;
}

/* -------------------------------------------- kvtier vs raw (and anchors) */

enum { P_KVT, P_RAW, P_FIXED, P_SUM, P_ANCHOR, NPASS };

typedef struct row_series {
    series put[NPASS], get[NPASS];
    series put_cpu[NPASS], get_cpu[NPASS];     /* CPU seconds per GB */
    series put_delay[NPASS], get_delay[NPASS]; /* run delay, ms per pass */
    series put_ratio, get_ratio, put_ratio_fixed, get_ratio_fixed, put_ratio_sum, get_ratio_sum;
    series anchor_wb, anchor_warm, get_vs_cold, get_vs_warm, put_vs_wb;
} row_series;

static void row_series_free(row_series *rs)
{
    series *all[] = {&rs->put_ratio,  &rs->get_ratio,   &rs->put_ratio_fixed,
                     &rs->get_ratio_fixed, &rs->anchor_wb, &rs->anchor_warm,
                     &rs->get_vs_cold, &rs->get_vs_warm, &rs->put_vs_wb,
                     &rs->put_ratio_sum, &rs->get_ratio_sum};
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
static int measure_row(nv_opts *o, nv_row *row, anchor_row *arow, const kvt_key *keys,
                       int with_anchor)
{
    const uint64_t bb = row->block_bytes;
    const size_t n = row->blocks;
    const uint64_t run_bytes = (uint64_t)n * bb;
    uint64_t slot = 0;
    kvt_slot_bytes("nvme", bb, &slot);
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
        rc = sys_fail("opening the store's file for the raw loop", fd);
        fd = -1;
        goto out;
    }
    raw_layout(wio, o->src, n, bb, slot);
    raw_layout(rio, o->dst, n, bb, slot);
    int e = raw_uring_new(fd, row->qd, NULL, 0, &plain);
    if (e) {
        rc = sys_fail("raw io_uring setup", e);
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
        rc = sys_fail("starting the raw loop's hashing threads", e);
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
            if (p == P_KVT && kvt_pass(s, 1, rk, n, sp, &put_ns[p]))
                goto out;
            if (p == P_RAW && raw_pass(plain, 1, wio, n, &put_ns[p]))
                goto out;
            if (p == P_FIXED && raw_pass(fixed, 1, wio, n, &put_ns[p]))
                goto out;
            if (p == P_SUM && sum_pass(summer, plain, 1, wio, n, &put_ns[p]))
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
            if (p == P_KVT && kvt_pass(s, 0, rk, n, dp, &get_ns[p]))
                goto out;
            if (p == P_RAW && raw_pass(plain, 0, rio, n, &get_ns[p]))
                goto out;
            if (p == P_FIXED && raw_pass(fixed, 0, rio, n, &get_ns[p]))
                goto out;
            if (p == P_SUM && sum_pass(summer, plain, 0, rio, n, &get_ns[p]))
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
    return rc ? sys_fail("raw write", rc) : 0;
}

static int measure_demote(nv_opts *o, demote_row *row, const kvt_key *keys)
{
    const uint64_t bb = row->block_bytes;
    const size_t n = row->blocks;
    const uint64_t run_bytes = (uint64_t)n * bb;
    uint64_t slot = 0;
    kvt_slot_bytes("nvme", bb, &slot);
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
        rc = sys_fail("opening the store's file for the raw loop", fd);
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
        rc = sys_fail("raw io_uring setup", e);
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
        /* As in measure_row(): the raw loops write the store's own slots,
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
static int measure_recovery(nv_opts *o, rec_row *row, int reopens)
{
    const uint64_t bb = row->block_bytes, n = row->blocks;
    kvt_slot_bytes("nvme", bb, &row->slot_bytes);
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

/* --------------------------------------------------------------- reports */

static void json_common_config(bench_json *j, const nv_opts *o, const char *mode)
{
    char fs[32], dev[64];
    describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_json_str(j, "tier", "nvme");
    bench_json_str(j, "mode", mode);
    bench_json_str(j, "dir", o->dir);
    bench_json_str(j, "filesystem", fs);
    bench_json_str(j, "device", dev);
    bench_json_i64(j, "runs", o->runs);
}

static void json_overhead(bench_json *j, const bench_list *blocks)
{
    bench_json_array(j, "overhead");
    for (int i = 0; i < blocks->n; i++) {
        uint64_t slot = 0;
        kvt_slot_bytes("nvme", blocks->v[i], &slot);
        bench_json_object(j, NULL);
        bench_json_u64(j, "block_bytes", blocks->v[i]);
        bench_json_u64(j, "slot_bytes", slot);
        bench_json_num(j, "overhead", (double)(slot - blocks->v[i]) / (double)blocks->v[i]);
        bench_json_end_object(j);
    }
    bench_json_end_array(j);
}

static void text_overhead(const bench_list *blocks)
{
    char a[32], b[32];
    static const char *const head[] = {"block", "slot on media", "overhead"};
    bench_table t;
    bench_table_init(&t, 3, head, "lrr");
    for (int i = 0; i < blocks->n; i++) {
        uint64_t slot = 0;
        kvt_slot_bytes("nvme", blocks->v[i], &slot);
        bench_table_cell(&t, "%s", bench_fmt_bytes(blocks->v[i], a, sizeof a));
        bench_table_cell(&t, "%s", bench_fmt_bytes(slot, b, sizeof b));
        bench_table_cell(&t, "%.2f%%", 100.0 * (double)(slot - blocks->v[i]) / (double)blocks->v[i]);
    }
    printf("\n  on-media overhead (4 KiB header unit + payload rounded to 4 KiB; plus one 4 KiB "
           "superblock per file):\n");
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
}

static void report_json(const nv_opts *o, const bench_list *blocks, const nv_row *rows,
                        size_t nrows, const anchor_row *arows, size_t narows,
                        const demote_row *drows, size_t ndrows)
{
    bench_json j;
    bench_json_init(&j, stdout);
    bench_json_object(&j, NULL);
    bench_json_header(&j, "micro");
    bench_json_object(&j, "config");
    json_common_config(&j, o, "throughput");
    bench_json_u64(&j, "total_bytes", o->total);
    bench_json_str(&j, "store", "nvme-only (no DRAM tier); tier option queue_depth = queue_depth");
    bench_json_str(&j, "caller_buffers",
                   "anonymous memory, 4096-aligned, MADV_HUGEPAGE, not registered with io_uring");
    bench_json_str(&j, "raw", "one ring, one thread, queue_depth transfers in flight, ring set "
                              "up like the tier's; raw_*: plain READ/WRITE on the caller's "
                              "buffers (what the tier gets); raw_fixed_*: the same buffers "
                              "registered (READ_FIXED/WRITE_FIXED)");
    bench_json_bool(&j, "raw_fixed", o->fixed_ok);
    bench_json_str(&j, "raw_sum", "the raw loop plus XXH3-64 of every block, as the tier "
                                  "checksums: hashed ahead of each write and verified after "
                                  "each read by raw_sum_helpers threads; raw_sum_*, *_ratio_sum");
    bench_json_bool(&j, "raw_sum_run", o->raw_sum);
    bench_json_u64(&j, "raw_sum_helpers", o->sum_helpers);
    bench_json_u64(&j, "anchor_threads", o->anchor_threads);
    bench_json_num(&j, "page_touch_gb_per_s", o->touch_gbps);
    bench_json_u64(&j, "big_queue_depth", o->big_qd);
    bench_json_u64(&j, "demote_dram_bytes", o->dram_bytes);
    bench_json_str(&j, "statistic", "GB/s: median over passes; ratio: median over runs of "
                                    "the other side's time / kvtier's time");
    bench_json_end_object(&j);
    bench_json_array(&j, "results");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_json_object(&j, NULL);
        bench_json_u64(&j, "block_bytes", r->block_bytes);
        bench_json_u64(&j, "queue_depth", r->qd);
        bench_json_u64(&j, "slot_bytes", r->slot_bytes);
        bench_json_u64(&j, "blocks_per_run", r->blocks);
        bench_json_u64(&j, "run_bytes", (uint64_t)r->blocks * r->block_bytes);
        bench_json_num(&j, "put_gb_per_s", r->put);
        bench_json_num(&j, "put_raw_gb_per_s", r->put_raw);
        bench_json_num(&j, "put_raw_fixed_gb_per_s", r->put_fixed);
        bench_json_num(&j, "put_ratio", r->put_ratio);
        bench_json_num(&j, "put_ratio_p10", r->put_p10);
        bench_json_num(&j, "put_ratio_p90", r->put_p90);
        bench_json_num(&j, "put_ratio_fixed", r->put_ratio_fixed);
        bench_json_num(&j, "get_gb_per_s", r->get);
        bench_json_num(&j, "get_raw_gb_per_s", r->get_raw);
        bench_json_num(&j, "get_raw_fixed_gb_per_s", r->get_fixed);
        bench_json_num(&j, "get_ratio", r->get_ratio);
        bench_json_num(&j, "get_ratio_p10", r->get_p10);
        bench_json_num(&j, "get_ratio_p90", r->get_p90);
        bench_json_num(&j, "get_ratio_fixed", r->get_ratio_fixed);
        bench_json_num(&j, "put_cpu_s_per_gb", r->put_cpu);
        bench_json_num(&j, "put_raw_cpu_s_per_gb", r->put_raw_cpu);
        bench_json_num(&j, "put_raw_fixed_cpu_s_per_gb", r->put_fixed_cpu);
        bench_json_num(&j, "get_cpu_s_per_gb", r->get_cpu);
        bench_json_num(&j, "get_raw_cpu_s_per_gb", r->get_raw_cpu);
        bench_json_num(&j, "get_raw_fixed_cpu_s_per_gb", r->get_fixed_cpu);
        bench_json_num(&j, "put_raw_sum_gb_per_s", r->put_sum);
        bench_json_num(&j, "put_ratio_sum", r->put_ratio_sum);
        bench_json_num(&j, "put_ratio_sum_p10", r->put_sum_p10);
        bench_json_num(&j, "put_ratio_sum_p90", r->put_sum_p90);
        bench_json_num(&j, "put_raw_sum_cpu_s_per_gb", r->put_sum_cpu);
        bench_json_num(&j, "get_raw_sum_gb_per_s", r->get_sum);
        bench_json_num(&j, "get_ratio_sum", r->get_ratio_sum);
        bench_json_num(&j, "get_ratio_sum_p10", r->get_sum_p10);
        bench_json_num(&j, "get_ratio_sum_p90", r->get_sum_p90);
        bench_json_num(&j, "get_raw_sum_cpu_s_per_gb", r->get_sum_cpu);
        bench_json_num(&j, "put_run_delay_ms", r->put_delay);
        bench_json_num(&j, "put_raw_run_delay_ms", r->put_raw_delay);
        bench_json_num(&j, "put_raw_sum_run_delay_ms", r->put_sum_delay);
        bench_json_num(&j, "get_run_delay_ms", r->get_delay);
        bench_json_num(&j, "get_raw_run_delay_ms", r->get_raw_delay);
        bench_json_num(&j, "get_raw_sum_run_delay_ms", r->get_sum_delay);
        bench_json_u64(&j, "pairs", r->pairs);
        bench_json_u64(&j, "staged_blocks", r->staged);
        bench_json_u64(&j, "fixed_host", r->fixed_host);
        bench_json_u64(&j, "resubmits", r->resubmits);
        bench_json_u64(&j, "raw_fixed_transfers", r->raw_fixed_ios);
        bench_json_u64(&j, "raw_resubmits", r->raw_resubmits);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    bench_json_array(&j, "anchor");
    for (size_t i = 0; i < narows; i++) {
        const anchor_row *r = &arows[i];
        bench_json_object(&j, NULL);
        bench_json_u64(&j, "block_bytes", r->block_bytes);
        bench_json_u64(&j, "threads", r->threads);
        bench_json_u64(&j, "queue_depth", r->qd);
        bench_json_u64(&j, "blocks_per_run", r->blocks);
        bench_json_num(&j, "put_page_cache_gb_per_s", r->put_cache);
        bench_json_num(&j, "put_writeback_gb_per_s", r->put_wb);
        bench_json_num(&j, "get_cold_gb_per_s", r->get_cold);
        bench_json_num(&j, "get_warm_gb_per_s", r->get_warm);
        bench_json_i64(&j, "cold_resident_pages", r->cold_resident_pages);
        bench_json_num(&j, "kvtier_put_gb_per_s", r->kvt_put);
        bench_json_num(&j, "kvtier_get_gb_per_s", r->kvt_get);
        bench_json_num(&j, "get_vs_cold", r->get_vs_cold);
        bench_json_num(&j, "get_vs_cold_p10", r->get_vs_cold_p10);
        bench_json_num(&j, "get_vs_cold_p90", r->get_vs_cold_p90);
        bench_json_num(&j, "get_vs_warm", r->get_vs_warm);
        bench_json_num(&j, "put_vs_writeback", r->put_vs_wb);
        bench_json_u64(&j, "pairs", r->pairs);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    bench_json_array(&j, "demote");
    for (size_t i = 0; i < ndrows; i++) {
        const demote_row *r = &drows[i];
        bench_json_object(&j, NULL);
        bench_json_u64(&j, "block_bytes", r->block_bytes);
        bench_json_u64(&j, "dram_bytes", r->dram_bytes);
        bench_json_u64(&j, "queue_depth", r->qd);
        bench_json_u64(&j, "blocks_per_run", r->blocks);
        bench_json_num(&j, "demotions_per_run", r->demotions_per_run);
        bench_json_u64(&j, "raw_writes", r->raw_writes);
        bench_json_num(&j, "put_gb_per_s", r->put);
        bench_json_num(&j, "raw_qd1_gb_per_s", r->raw1);
        bench_json_num(&j, "raw_gb_per_s", r->rawq);
        bench_json_num(&j, "ratio_qd1", r->ratio1);
        bench_json_num(&j, "ratio", r->ratioq);
        bench_json_bool(&j, "raw_registered", r->fixed);
        bench_json_u64(&j, "pairs", r->pairs);
        bench_json_end_object(&j);
    }
    bench_json_end_array(&j);
    json_overhead(&j, blocks);
    bench_json_end_object(&j);
}

static void report_text(const nv_opts *o, const bench_list *blocks, const nv_row *rows,
                        size_t nrows, const anchor_row *arows, size_t narows,
                        const demote_row *drows, size_t ndrows)
{
    char a[32], b[32], fs[32], dev[64];
    describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_print_header(stdout, "NVMe tier put/get vs raw io_uring O_DIRECT");
    printf("  file in %s (%s on %s); %d runs of %s each way per configuration;\n"
           "  NVMe-only store, caller buffers 4 KiB-aligned and not registered. raw: the same\n"
           "  bytes, offsets and depth from the same buffers (plain READ/WRITE, as the tier\n"
           "  gets them); reg: the same, buffers registered. GB/s: median over passes\n"
           "  (GB = 1e9 B). kvtier/raw: median over runs of the time ratio (10th-90th pct).\n\n",
           o->dir, fs, dev, o->runs, bench_fmt_bytes(o->total, a, sizeof a));
    static const char *const head[] = {"block", "QD", "put GB/s", "raw", "reg", "put/raw",
                                       "get GB/s", "raw", "reg", "get/raw"};
    bench_table t;
    bench_table_init(&t, 10, head, "lrrrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%u", r->qd);
        bench_table_cell(&t, "%.2f", r->put);
        bench_table_cell(&t, "%.2f", r->put_raw);
        bench_table_cell(&t, "%.2f", r->put_fixed);
        bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->put_ratio, 100 * r->put_p10,
                         100 * r->put_p90);
        bench_table_cell(&t, "%.2f", r->get);
        bench_table_cell(&t, "%.2f", r->get_raw);
        bench_table_cell(&t, "%.2f", r->get_fixed);
        bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->get_ratio, 100 * r->get_p10,
                         100 * r->get_p90);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);

    if (o->raw_sum) {
        printf("\n  kvtier next to the raw loop plus a checksum of every block (sum), XXH3-64 as the\n"
               "  tier computes it: hashed ahead of each write and verified after each read by %u\n"
               "  hashing thread%s, like the tier's. What kvtier/sum leaves out is what checksums\n"
               "  cost on this machine; the rest is the tier's own work.\n",
               o->sum_helpers, o->sum_helpers == 1 ? "" : "s");
        static const char *const sh[] = {"block", "QD", "put GB/s", "sum", "put/sum",
                                         "get GB/s", "sum", "get/sum"};
        bench_table_init(&t, 8, sh, "lrrrrrrr");
        for (size_t i = 0; i < nrows; i++) {
            const nv_row *r = &rows[i];
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
            bench_table_cell(&t, "%u", r->qd);
            bench_table_cell(&t, "%.2f", r->put);
            bench_table_cell(&t, "%.2f", r->put_sum);
            bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->put_ratio_sum,
                             100 * r->put_sum_p10, 100 * r->put_sum_p90);
            bench_table_cell(&t, "%.2f", r->get);
            bench_table_cell(&t, "%.2f", r->get_sum);
            bench_table_cell(&t, "%.1f%% (%.0f-%.0f)", 100 * r->get_ratio_sum,
                             100 * r->get_sum_p10, 100 * r->get_sum_p90);
        }
        bench_table_print(&t, stdout, 2);
        bench_table_free(&t);
    }

    printf("\n  CPU time of the process (all its threads), ms per GB moved (median over passes): what\n"
           "  each side costs whatever else runs on the machine.\n");
    static const char *const ch[] = {"block", "QD", "put kvtier", "raw", "reg", "sum",
                                     "get kvtier", "raw", "reg", "sum"};
    bench_table_init(&t, 10, ch, "lrrrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%u", r->qd);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_raw_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_fixed_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->put_sum_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_raw_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_fixed_cpu);
        bench_table_cell(&t, "%.0f", 1e3 * r->get_sum_cpu);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);

    printf("\n  run delay: ms per pass (median) that the thread driving the ring was ready to\n"
           "  reap and submit but waited for a CPU, which the device spends idle.\n");
    static const char *const dh[] = {"block", "QD", "put kvtier", "raw", "sum",
                                     "get kvtier", "raw", "sum"};
    bench_table_init(&t, 8, dh, "lrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const nv_row *r = &rows[i];
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%u", r->qd);
        bench_table_cell(&t, "%.2f", r->put_delay);
        bench_table_cell(&t, "%.2f", r->put_raw_delay);
        bench_table_cell(&t, "%.2f", r->put_sum_delay);
        bench_table_cell(&t, "%.2f", r->get_delay);
        bench_table_cell(&t, "%.2f", r->get_raw_delay);
        bench_table_cell(&t, "%.2f", r->get_sum_delay);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);

    if (narows) {
        printf("\n  one file per block (the anchors' disk tier), %u threads, buffered, no fsync;\n"
               "  same blocks, same runs as kvtier at QD %u. put: returns with the bytes in the\n"
               "  page cache; +wb: plus writing them back (sync_file_range) and dropping them.\n"
               "  cold: read after the drop (resident pages found before: %" PRId64 ");\n"
               "  warm: read again at once, from the page cache. First touches of fresh 4 KiB\n"
               "  pages (what new page-cache pages cost) ran at %.2f GB/s on this machine.\n",
               arows[0].threads, arows[0].qd, arows[0].cold_resident_pages, o->touch_gbps);
        static const char *const ah[] = {"block", "put", "put+wb", "get cold", "get warm",
                                         "kvtier put", "kvtier get", "get vs cold",
                                         "get vs warm"};
        bench_table_init(&t, 9, ah, "lrrrrrrrr");
        for (size_t i = 0; i < narows; i++) {
            const anchor_row *r = &arows[i];
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
            bench_table_cell(&t, "%.2f", r->put_cache);
            bench_table_cell(&t, "%.2f", r->put_wb);
            bench_table_cell(&t, "%.2f", r->get_cold);
            bench_table_cell(&t, "%.2f", r->get_warm);
            bench_table_cell(&t, "%.2f", r->kvt_put);
            bench_table_cell(&t, "%.2f", r->kvt_get);
            bench_table_cell(&t, "%.2fx (%.2f-%.2f)", r->get_vs_cold, r->get_vs_cold_p10,
                             r->get_vs_cold_p90);
            bench_table_cell(&t, "%.2fx", r->get_vs_warm);
        }
        bench_table_print(&t, stdout, 2);
        bench_table_free(&t);
    }
    if (ndrows) {
        printf("\n  puts into a DRAM tier of up to %s (a quarter of a run at most) demoting to\n"
               "  NVMe (writes from the registered arena), vs the same work by hand: memcpy of\n"
               "  the run's blocks (one thread), then the raw loop writing as many blocks as\n"
               "  kvtier demoted (\"raw writes\"), O_DIRECT from registered memory; GB/s of\n"
               "  bytes put on both sides:\n",
               bench_fmt_bytes(o->dram_bytes, b, sizeof b));
        static const char *const dh[] = {"block", "DRAM", "demoted/run", "raw writes",
                                         "put GB/s", "raw QD1", "raw QD", "QD", "vs QD1",
                                         "vs QD"};
        bench_table_init(&t, 10, dh, "lrrrrrrrrr");
        for (size_t i = 0; i < ndrows; i++) {
            const demote_row *r = &drows[i];
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
            bench_table_cell(&t, "%s", bench_fmt_bytes(r->dram_bytes, b, sizeof b));
            bench_table_cell(&t, "%.0f of %zu", r->demotions_per_run, r->blocks);
            bench_table_cell(&t, "%zu", r->raw_writes);
            bench_table_cell(&t, "%.2f", r->put);
            bench_table_cell(&t, "%.2f", r->raw1);
            bench_table_cell(&t, "%.2f", r->rawq);
            bench_table_cell(&t, "%u", r->qd);
            bench_table_cell(&t, "%.1f%%", 100 * r->ratio1);
            bench_table_cell(&t, "%.1f%%", 100 * r->ratioq);
        }
        bench_table_print(&t, stdout, 2);
        bench_table_free(&t);
    }
    text_overhead(blocks);
}

static void report_recovery(const nv_opts *o, int json, const rec_row *rows, size_t nrows,
                            const bench_list *blocks)
{
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        bench_json_object(&j, "config");
        json_common_config(&j, o, "recovery");
        bench_json_u64(&j, "queue_depth", o->big_qd);
        bench_json_str(&j, "statistic", "median over reopens");
        bench_json_end_object(&j);
        bench_json_array(&j, "recovery");
        for (size_t i = 0; i < nrows; i++) {
            const rec_row *r = &rows[i];
            bench_json_object(&j, NULL);
            bench_json_u64(&j, "blocks", r->blocks);
            bench_json_u64(&j, "block_bytes", r->block_bytes);
            bench_json_u64(&j, "slot_bytes", r->slot_bytes);
            bench_json_u64(&j, "file_bytes", r->file_bytes);
            bench_json_u64(&j, "queue_depth", r->qd);
            bench_json_num(&j, "create_ms", r->create_ms);
            bench_json_num(&j, "fill_s", r->fill_s);
            bench_json_num(&j, "fill_blocks_per_s", (double)r->blocks / r->fill_s);
            bench_json_num(&j, "close_ms", r->close_ms);
            bench_json_num(&j, "open_ms", r->open_ms);
            bench_json_num(&j, "open_ms_min", r->open_ms_min);
            bench_json_num(&j, "open_ms_max", r->open_ms_max);
            bench_json_num(&j, "recovery_ms", r->recovery_ms);
            bench_json_num(&j, "headers_per_s",
                           r->recovery_ms > 0 ? (double)r->blocks / (r->recovery_ms / 1e3) : NAN);
            bench_json_u64(&j, "recovered", r->recovered);
            bench_json_i64(&j, "reopens", r->reopens);
            bench_json_end_object(&j);
        }
        bench_json_end_array(&j);
        json_overhead(&j, blocks);
        bench_json_end_object(&j);
        return;
    }
    char a[32], b[32], c[32], fs[32], dev[64];
    describe_dir(o->dir, fs, sizeof fs, dev, sizeof dev);
    bench_print_header(stdout, "NVMe tier recovery time");
    printf("  file in %s (%s on %s); NVMe-only store, queue depth %u. Fill, close, then\n"
           "  %d reopens: open = kvt_open wall time; recovery = the nvme.recovery_ms stat\n"
           "  (reading every slot header and rebuilding the index). Medians over reopens.\n\n",
           o->dir, fs, dev, o->big_qd, nrows ? rows[0].reopens : 0);
    static const char *const head[] = {"blocks", "block", "slot", "file", "fill s",
                                       "close ms", "open ms (min-max)", "recovery ms",
                                       "headers/s", "recovered"};
    bench_table t;
    bench_table_init(&t, 10, head, "rlrrrrrrrr");
    for (size_t i = 0; i < nrows; i++) {
        const rec_row *r = &rows[i];
        bench_table_cell(&t, "%" PRIu64, r->blocks);
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->block_bytes, a, sizeof a));
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->slot_bytes, b, sizeof b));
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->file_bytes, c, sizeof c));
        bench_table_cell(&t, "%.2f", r->fill_s);
        bench_table_cell(&t, "%.1f", r->close_ms);
        bench_table_cell(&t, "%.1f (%.1f-%.1f)", r->open_ms, r->open_ms_min, r->open_ms_max);
        bench_table_cell(&t, "%.0f", r->recovery_ms);
        bench_table_cell(&t, "%.0f",
                         r->recovery_ms > 0 ? (double)r->blocks / (r->recovery_ms / 1e3) : NAN);
        bench_table_cell(&t, "%" PRIu64, r->recovered);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
    text_overhead(blocks);
}

/* ------------------------------------------------------------------ main */

int bench_micro_nvme(int argc, char **argv)
{
    const char *tier = "nvme", *dir = NULL;
    bench_list blocks = {{256u << 10, 2u << 20, 8u << 20}, 3};
    bench_list qds = {{4, 16, 64}, 3};
    bench_list rec_blocks = {{10000, 100000}, 2};
    uint64_t total = 512u << 20, dram_bytes = 32u << 20, rec_bb = 4096;
    int64_t runs = 5, anchor_threads = 8;
    int json = 0, recovery = 0, no_anchor = 0, no_demote = 0, no_fixed = 0, no_sum = 0;
    const barg spec[] = {
        {"tier", BARG_STR, &tier, "nvme (this command; `micro --tier dram` is the DRAM one)"},
        {"block-bytes", BARG_SIZE_LIST, &blocks,
         "block sizes, multiples of 4K (default 256K,2M,8M)"},
        {"qd", BARG_SIZE_LIST, &qds, "queue_depth values, 1..4096 (default 4,16,64)"},
        {"total-bytes", BARG_SIZE, &total,
         "bytes per pass, rounded down to whole blocks; also the store's size (default 512M)"},
        {"runs", BARG_INT, &runs, "runs per configuration (default 5)"},
        {"dir", BARG_STR, &dir,
         "directory for the files, on the device to measure; not tmpfs (default $TMPDIR or /tmp)"},
        {"anchor-threads", BARG_INT, &anchor_threads,
         "threads of the one-file-per-block tier (default 8)"},
        {"no-anchor", BARG_BOOL, &no_anchor, "skip the one-file-per-block comparison"},
        {"no-demote", BARG_BOOL, &no_demote, "skip the DRAM -> NVMe demotion rows"},
        {"no-registered", BARG_BOOL, &no_fixed, "skip the raw loop with registered buffers"},
        {"no-raw-sum", BARG_BOOL, &no_sum, "skip the raw loop with checksums"},
        {"dram-bytes", BARG_SIZE, &dram_bytes,
         "DRAM tier of the demotion rows: at most a quarter of a run, at least a block (default 32M)"},
        {"recovery", BARG_BOOL, &recovery,
         "measure recovery instead: fill, close, reopen --runs times"},
        {"recovery-blocks", BARG_SIZE_LIST, &rec_blocks,
         "block counts for --recovery (default 10000,100000)"},
        {"recovery-block-bytes", BARG_SIZE, &rec_bb, "block size for --recovery (default 4K)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of tables"},
        {0},
    };
    int rc = bench_parse_args("micro", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    const char *why = NULL;
    if (strcmp(tier, "nvme") != 0)
        why = "--tier must be nvme here";
    else if (runs < 1 || runs > 1000)
        why = "--runs must be 1..1000";
    else if (anchor_threads < 1 || anchor_threads > 256)
        why = "--anchor-threads must be 1..256";
    else if (rec_bb < 1 || rec_bb > (1u << 30))
        why = "--recovery-block-bytes must be 1..1G";
    for (int i = 0; !why && i < blocks.n; i++)
        if (blocks.v[i] < 4096 || blocks.v[i] % 4096 || blocks.v[i] > (1u << 30))
            why = "--block-bytes values must be multiples of 4K in 4K..1G";
    for (int i = 0; !why && i < qds.n; i++)
        if (qds.v[i] < 1 || qds.v[i] > MAX_QD)
            why = "--qd values must be 1..4096";
    for (int i = 0; !why && i < rec_blocks.n; i++)
        if (rec_blocks.v[i] < 1 || rec_blocks.v[i] > 100000000)
            why = "--recovery-blocks values must be 1..100000000";
    if (why) {
        fprintf(stderr, "kvtier-bench micro: %s\nTry 'kvtier-bench micro --tier nvme --help'.\n",
                why);
        return BENCH_USAGE;
    }
    uint64_t min_block = blocks.v[0];
    for (int i = 0; i < blocks.n; i++)
        if (blocks.v[i] < min_block)
            min_block = blocks.v[i];
    if (!recovery && total < min_block) {
        fprintf(stderr, "kvtier-bench micro: --total-bytes is less than one block\n"
                        "Try 'kvtier-bench micro --tier nvme --help'.\n");
        return BENCH_USAGE;
    }

    nv_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir ? dir : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    o.total = total;
    o.runs = (int)runs;
    o.anchor_threads = (unsigned)anchor_threads;
    o.anchor = !no_anchor;
    o.demote = !no_demote;
    o.dram_bytes = dram_bytes;
    o.fixed_ok = !no_fixed;
    o.raw_sum = !no_sum;
    o.sum_helpers = raw_sum_tier_helpers();
    for (int i = 0; i < qds.n; i++)
        if (qds.v[i] > o.big_qd)
            o.big_qd = (unsigned)qds.v[i];
    snprintf(o.path, sizeof o.path, "%s/kvtier-bench-nvme-%d.kvt", o.dir, (int)getpid());
    snprintf(o.adir, sizeof o.adir, "%s/kvtier-bench-anchor-%d", o.dir, (int)getpid());
    struct stat st;
    if (stat(o.dir, &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kvtier-bench micro: --dir %s is not a directory\n", o.dir);
        return BENCH_USAGE;
    }

    if (recovery) {
        rec_row *rows = calloc((size_t)rec_blocks.n, sizeof *rows);
        size_t nrows = 0;
        rc = rows ? BENCH_OK : BENCH_FAILED;
        for (int i = 0; rc == BENCH_OK && i < rec_blocks.n; i++) {
            rows[nrows].blocks = rec_blocks.v[i];
            rows[nrows].block_bytes = rec_bb;
            rc = measure_recovery(&o, &rows[nrows], o.runs);
            if (rc == BENCH_OK)
                nrows++;
        }
        bench_progress_done();
        bench_list rb = {{rec_bb}, 1};
        if (rc == BENCH_OK)
            report_recovery(&o, json, rows, nrows, &rb);
        free(rows);
        return rc;
    }

    /* Caller buffers for the largest run: every configuration uses the
     * front of them. */
    o.src = bench_alloc(total);
    o.dst = bench_alloc(total);
    size_t cap = (size_t)blocks.n * (size_t)qds.n;
    nv_row *rows = calloc(cap, sizeof *rows);
    anchor_row *arows = calloc((size_t)blocks.n, sizeof *arows);
    demote_row *drows = calloc((size_t)blocks.n, sizeof *drows);
    kvt_key *keys = NULL;
    size_t nrows = 0, narows = 0, ndrows = 0;
    rc = BENCH_OK;
    if (!o.src || !o.dst || !rows || !arows || !drows) {
        fprintf(stderr, "kvtier-bench micro: cannot allocate 2 x %" PRIu64 " bytes\n", total);
        rc = BENCH_FAILED;
    }
    if (rc == BENCH_OK && o.anchor && mkdir(o.adir, 0700)) {
        rc = sys_fail("creating the anchor's directory", -errno);
        o.anchor = 0;
    }
    o.touch_gbps = o.anchor ? page_touch_gbps() : NAN;
    for (int bi = 0; rc == BENCH_OK && bi < blocks.n; bi++) {
        const uint64_t bb = blocks.v[bi];
        const size_t n = (size_t)(total / bb);
        free(keys);
        keys = malloc((size_t)(o.runs + 1) * n * sizeof *keys);
        if (!keys || bench_keys(keys, (size_t)(o.runs + 1) * n, bb * 131 + 7)) {
            rc = BENCH_FAILED;
            break;
        }
        for (int qi = 0; rc == BENCH_OK && qi < qds.n; qi++) {
            nv_row *r = &rows[nrows];
            r->block_bytes = bb;
            r->qd = (unsigned)qds.v[qi];
            r->blocks = n;
            int with_anchor = o.anchor && r->qd == o.big_qd && !arows[narows].block_bytes;
            rc = measure_row(&o, r, &arows[narows], keys, with_anchor);
            if (rc == BENCH_OK) {
                nrows++;
                if (with_anchor)
                    narows++;
            }
        }
        if (rc == BENCH_OK && o.demote) {
            demote_row *d = &drows[ndrows];
            d->block_bytes = bb;
            /* At most a quarter of the run, so most of its blocks are demoted. */
            uint64_t dblocks = dram_bytes / bb < n / 4 ? dram_bytes / bb : n / 4;
            d->dram_bytes = (dblocks ? dblocks : 1) * bb;
            d->qd = o.big_qd;
            d->blocks = n;
            rc = measure_demote(&o, d, keys);
            if (rc == BENCH_OK)
                ndrows++;
        }
    }
    bench_progress_done();
    if (o.anchor)
        rmdir(o.adir);
    if (rc == BENCH_OK) {
        if (json)
            report_json(&o, &blocks, rows, nrows, arows, narows, drows, ndrows);
        else
            report_text(&o, &blocks, rows, nrows, arows, narows, drows, ndrows);
    }
    free(keys);
    free(rows);
    free(arows);
    free(drows);
    bench_free(o.src, total);
    bench_free(o.dst, total);
    return rc;
}
