/* cmd_micro_cluster.c — `kvtier-bench micro --tier cluster`: the cluster tier's put/get GB/s next to a raw io_uring loop doing the same file operations and the anchors' file-per-block pool; kvt_lookup latency on blocks held only there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <xxhash.h>

#include "../baseline/anchor_files.h"
#include "../baseline/raw_cluster.h"
#include "../bench.h"
#include "../report/rows.h"

static const char summary[] =
    "The cluster tier (a directory on a shared filesystem) put and get GB/s per block size,\n"
    "  next to a raw io_uring loop doing the same file operations on the same filesystem\n"
    "  (per put: open a temporary name, write header + payload, close, rename into place;\n"
    "  per get: open, read, close; the same fan-out directories, O_DIRECT when the tier\n"
    "  uses it, queue_depth blocks in flight), taking turns in the same run (medians of\n"
    "  per-run ratios), and next to the anchors' thread pool of open/pwrite/close and\n"
    "  open/pread/close per block file. Puts go through a store (small DRAM tier + the\n"
    "  cluster tier, which every put writes through to); gets through a second store on\n"
    "  the same directory whose DRAM is empty (another node), KVT_IO_NO_PROMOTE, so each\n"
    "  get reads a block file. Also kvt_lookup latency (p50/p99) for prefixes held only in\n"
    "  the cluster tier, whole and half held.";

#define WHO "micro --tier cluster"

typedef struct cl_opts {
    const char *dir;
    char base[PATH_MAX];  /* dir/kvtier-bench-cluster-<pid>: everything this run makes */
    char tier_dir[PATH_MAX], tier_root[PATH_MAX], raw_root[PATH_MAX], anchor_dir[PATH_MAX];
    uint64_t total;
    int runs, qd, anchor;
    unsigned anchor_threads;
    int direct, noreplace; /* the tier's stats cluster.direct_io, cluster.rename_noreplace */
} cl_opts;

static int fail(const char *what)
{
    fprintf(stderr, "kvtier-bench " WHO ": %s: %s\n", what, kvt_last_error());
    return BENCH_FAILED;
}

static int sys_fail(const char *what, int neg_errno)
{
    fprintf(stderr, "kvtier-bench " WHO ": %s: %s\n", what, strerror(-neg_errno));
    return BENCH_FAILED;
}

static double gbps(uint64_t bytes, uint64_t ns)
{
    return (double)bytes / (double)(ns ? ns : 1);
}

static double med(bench_samples *s)
{
    return s->n ? bench_median(s) : NAN;
}

static double pct(bench_samples *s, double p)
{
    return s->n ? bench_percentile(s, p) : NAN;
}

/* The filesystem under dir by statfs f_type: the shared filesystems the
 * tier is meant for, and the local ones it is tried on. */
static const char *fs_name(const char *dir, char *buf, size_t cap)
{
    struct statfs sf;
    if (statfs(dir, &sf))
        return "unknown";
    switch ((uint32_t)sf.f_type) {
    case EXT4_SUPER_MAGIC: return "ext4";
    case XFS_SUPER_MAGIC: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case TMPFS_MAGIC: return "tmpfs";
    case NFS_SUPER_MAGIC: return "nfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
    case 0x65735546u: return "fuse"; /* GlusterFS, 3FS, WEKA's client... */
    case 0x00c36400u: return "ceph";
    case 0x0bd00bd0u: return "lustre";
    case 0x19830326u: return "beegfs";
    case 0x2fc12fc1u: return "zfs";
    default: snprintf(buf, cap, "0x%x", (unsigned)sf.f_type); return buf;
    }
}

/* out = a/b; 1 when it does not fit in PATH_MAX. */
static int join(char out[PATH_MAX], const char *a, const char *b)
{
    int k = snprintf(out, PATH_MAX, "%s/%s", a, b);
    return k < 0 || k >= PATH_MAX;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Everything under o->base, and base itself. */
static void remove_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writer: a DRAM tier of dram_blocks over the cluster tier (every put is
 * written through to the cluster tier). Reader: the same over the same
 * directory, with nothing in its DRAM: every get there reads a block file. */
static kvt_store *open_store(const cl_opts *o, uint64_t bb, uint64_t dram_blocks)
{
    bench_store_spec spec = bench_dram_spec(WHO, bb, dram_blocks * bb);
    spec.block_tokens = 16;
    spec.close_flush_ms = 0;
    spec.tier[BENCH_CLUSTER] = (bench_tier_spec){.path = o->tier_dir, .queue_depth = o->qd};
    kvt_store *s = NULL;
    bench_store_open(&spec, &s);
    return s;
}

static void mark_dst(uint8_t *dst, size_t n, uint64_t bb)
{
    for (size_t i = 0; i < n; i++) {
        memset(dst + i * bb, 0, 64);
        memset(dst + (i + 1) * bb - 64, 0, 64);
    }
}

static int check_read(const uint8_t *got, uint64_t got_stride, const uint8_t *src, size_t n,
                      uint64_t bb, const char *who)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(got + i * got_stride, src + i * bb, 64) ||
            memcmp(got + i * got_stride + bb - 64, src + (i + 1) * bb - 64, 64)) {
            fprintf(stderr, "kvtier-bench " WHO ": %s read wrong bytes in block %zu\n", who, i);
            return BENCH_FAILED;
        }
    return 0;
}

/* ------------------------------------------------------- one block size */

typedef struct tp_row {
    uint64_t block_bytes, file_bytes;
    size_t blocks, pairs;
    double put, get, raw_put, raw_get, put_ratio, put_p10, put_p90, get_ratio, get_p10, get_p90;
    double a_put_cache, a_put_wb, a_get_cold, a_get_warm;
    double put_vs_anchor, get_vs_anchor, get_vs_anchor_p10, get_vs_anchor_p90, get_vs_warm;
    double cpu_put, cpu_get, put_serial, get_serial;
    uint64_t races_lost, corrupt;
} tp_row;

enum { S_KVT, S_RAW, S_ANCHOR, NSIDES };

typedef struct side_ns {
    uint64_t put, wb, get, warm;
} side_ns;

/* One side's turn in a run: put (until the bytes are on the device: O_DIRECT,
 * or buffered plus writeback), get from a cold cache, check, clean up. */
static int kvt_turn(const cl_opts *o, kvt_store *w, kvt_store *rd, const kvt_key *keys, size_t n,
                    void **sp, void **dp, uint8_t *dst, const uint8_t *src, uint64_t bb,
                    side_ns *t)
{
    uint64_t puts0 = bench_stat(w, "cluster.puts");
    uint64_t t0 = bench_now_ns();
    int got = kvt_put(w, keys, n, sp, NULL, NULL);
    t->put = bench_now_ns() - t0;
    uint64_t written = bench_stat(w, "cluster.puts") - puts0;
    if (got != (int)n || written != n) {
        fprintf(stderr, "kvtier-bench " WHO ": kvt_put stored %d of %zu blocks, %" PRIu64
                        " written to the cluster tier: %s\n",
                got, n, written, got < 0 ? kvt_last_error() : "rejected");
        return BENCH_FAILED;
    }
    t->wb = 0;
    if (!o->direct) {
        t0 = bench_now_ns();
        int e = raw_cluster_writeback(o->tier_root, keys, n);
        t->wb = bench_now_ns() - t0;
        if (e)
            return sys_fail("writing back the tier's files", e);
    }
    mark_dst(dst, n, bb);
    kvt_io_opts io = {.size = sizeof io, .flags = KVT_IO_NO_PROMOTE};
    t0 = bench_now_ns();
    got = kvt_get(rd, keys, n, dp, &io, NULL);
    t->get = bench_now_ns() - t0;
    if (got != (int)n) {
        fprintf(stderr, "kvtier-bench " WHO ": kvt_get from the other store read %d of %zu "
                        "blocks: %s\n", got, n, got < 0 ? kvt_last_error() : "missing");
        return BENCH_FAILED;
    }
    if (check_read(dst, bb, src, n, bb, "kvtier"))
        return BENCH_FAILED;
    /* Untimed: the next run writes the same keys again, into directories
     * that exist, as in a tree that has been in use for a while. */
    int gone = kvt_remove(w, keys, n);
    if (gone != (int)n) {
        fprintf(stderr, "kvtier-bench " WHO ": kvt_remove removed %d of %zu blocks: %s\n", gone,
                n, gone < 0 ? kvt_last_error() : "not held");
        return BENCH_FAILED;
    }
    return 0;
}

static int raw_turn(const cl_opts *o, raw_cluster *raw, const kvt_key *keys, size_t n,
                    uint8_t *const *wimg, uint8_t *const *rimg, uint8_t *rbase,
                    const uint8_t *src, uint64_t bb, uint64_t fb, side_ns *t)
{
    uint64_t t0 = bench_now_ns();
    int e = raw_cluster_put(raw, keys, n, wimg);
    t->put = bench_now_ns() - t0;
    if (e)
        return sys_fail("the raw loop's put", e);
    t->wb = 0;
    if (!o->direct) {
        t0 = bench_now_ns();
        e = raw_cluster_writeback(o->raw_root, keys, n);
        t->wb = bench_now_ns() - t0;
        if (e)
            return sys_fail("writing back the raw loop's files", e);
    }
    for (size_t i = 0; i < n; i++) {
        memset(rimg[i] + 4096, 0, 64);
        memset(rimg[i] + 4096 + bb - 64, 0, 64);
    }
    t0 = bench_now_ns();
    e = raw_cluster_get(raw, keys, n, rimg);
    t->get = bench_now_ns() - t0;
    if (e)
        return sys_fail("the raw loop's get", e);
    if (check_read(rbase + 4096, fb, src, n, bb, "the raw loop"))
        return BENCH_FAILED;
    e = raw_cluster_unlink(raw, keys, n);
    return e ? sys_fail("removing the raw loop's files", e) : 0;
}

static int anchor_turn(const cl_opts *o, anchor_pool *ap, const kvt_key *keys, size_t n,
                       void **sp, void **dp, uint8_t *dst, const uint8_t *src, uint64_t bb,
                       side_ns *t)
{
    /* As micro --tier nvme measures it: the put to the page cache, then its
     * writeback and the dropping of its pages, timed on their own; a cold
     * read, then a warm one. */
    uint64_t t0 = bench_now_ns();
    int e = anchor_run(ap, ANCHOR_PUT, o->anchor_dir, keys, n, sp, bb);
    t->put = bench_now_ns() - t0;
    t0 = bench_now_ns();
    if (!e)
        e = anchor_run(ap, ANCHOR_WRITEBACK, o->anchor_dir, keys, n, NULL, bb);
    t->wb = bench_now_ns() - t0;
    mark_dst(dst, n, bb);
    t0 = bench_now_ns();
    if (!e)
        e = anchor_run(ap, ANCHOR_GET, o->anchor_dir, keys, n, dp, bb);
    t->get = bench_now_ns() - t0;
    if (e)
        return sys_fail("one-file-per-block I/O", e);
    if (check_read(dst, bb, src, n, bb, "the anchor (cold)"))
        return BENCH_FAILED;
    mark_dst(dst, n, bb);
    t0 = bench_now_ns();
    e = anchor_run(ap, ANCHOR_GET, o->anchor_dir, keys, n, dp, bb);
    t->warm = bench_now_ns() - t0;
    if (!e)
        e = anchor_run(ap, ANCHOR_UNLINK, o->anchor_dir, keys, n, NULL, bb);
    if (e)
        return sys_fail("one-file-per-block I/O", e);
    return check_read(dst, bb, src, n, bb, "the anchor (warm)");
}

/* Where the checksums of cpu_pass() go, so that the hashing is done. */
static volatile uint64_t hash_sink;

/* The CPU work the tier does on top of the raw loop's, on one thread, no
 * I/O: per put, the store's copy into its DRAM tier, the tier's copy into
 * its aligned file image and the payload's XXH3-64; per get, the checksum
 * and the copy out to the caller (cluster.md, "Fast paths"). Timed by this
 * thread's CPU clock, so a loaded machine's waits are not counted. Its time added
 * to the raw loop's is what the tier would take if none of that overlapped
 * the I/O: a diagnostic, *_vs_raw_serial. */
static uint64_t cpu_pass(int put, const uint8_t *src, uint8_t *dst, uint8_t *scratch,
                         uint8_t *const *images, size_t n, uint64_t bb)
{
    uint64_t t0 = bench_thread_cpu_ns(), h = 0;
    for (size_t i = 0; i < n; i++) {
        if (put) {
            memcpy(scratch, src + i * bb, bb);
            memcpy(scratch + bb, src + i * bb, bb);
            h ^= XXH3_64bits(scratch + bb, bb);
        } else {
            h ^= XXH3_64bits(images[i] + 4096, bb);
            memcpy(dst + i * bb, images[i] + 4096, bb);
        }
    }
    hash_sink ^= h;
    return bench_thread_cpu_ns() - t0;
}

typedef struct tp_series {
    bench_samples cpu_put, cpu_get, put_serial, get_serial;
    bench_samples put[NSIDES], get[NSIDES], warm, a_wb;
    bench_samples put_ratio, get_ratio, put_vs_anchor, get_vs_anchor, get_vs_warm;
} tp_series;

static void tp_series_free(tp_series *s)
{
    for (int i = 0; i < NSIDES; i++) {
        bench_samples_free(&s->put[i]);
        bench_samples_free(&s->get[i]);
    }
    bench_samples *all[] = {&s->cpu_put, &s->cpu_get, &s->put_serial, &s->get_serial,
                            &s->warm, &s->a_wb, &s->put_ratio, &s->get_ratio,
                            &s->put_vs_anchor, &s->get_vs_anchor, &s->get_vs_warm};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bench_samples_free(all[i]);
}

static int measure_block_size(cl_opts *o, tp_row *row, uint8_t *src, uint8_t *dst)
{
    const uint64_t bb = row->block_bytes, fb = raw_cluster_file_bytes(bb);
    const size_t n = row->blocks;
    const uint64_t run_bytes = (uint64_t)n * bb;
    row->file_bytes = fb;
    int rc = BENCH_FAILED;
    kvt_store *w = NULL, *rd = NULL;
    raw_cluster *raw = NULL;
    anchor_pool *ap = NULL;
    tp_series ss;
    memset(&ss, 0, sizeof ss);
    kvt_key *keys = malloc(n * sizeof *keys);
    void **sp = malloc(n * sizeof *sp), **dp = malloc(n * sizeof *dp);
    uint8_t **wimg = malloc(n * sizeof *wimg), **rimg = malloc(n * sizeof *rimg);
    uint8_t *wbase = bench_alloc(n * fb), *rbase = bench_alloc(n * fb);
    uint8_t *scratch = bench_alloc(2 * bb);
    if (!keys || !sp || !dp || !wimg || !rimg || !wbase || !rbase || !scratch) {
        fprintf(stderr, "kvtier-bench " WHO ": cannot allocate 2 x %" PRIu64 " bytes\n", n * fb);
        goto out;
    }
    if (bench_keys(keys, n, bb * 131 + 7))
        goto out;
    for (size_t i = 0; i < n; i++) {
        sp[i] = src + i * bb;
        dp[i] = dst + i * bb;
        wimg[i] = wbase + i * fb;
        rimg[i] = rbase + i * fb;
        raw_cluster_image(wimg[i], fb, &keys[i], sp[i], bb, 16, 1);
    }
    /* A few blocks of DRAM in the writer (the store needs a slot tier; its
     * victims are dropped, there is no slot tier below), one in the reader. */
    if (!(w = open_store(o, bb, n < 4 ? n : 4)) || !(rd = open_store(o, bb, 1)))
        goto out;
    o->direct = (int)bench_stat(w, "cluster.direct_io");
    o->noreplace = (int)bench_stat(w, "cluster.rename_noreplace");
    int e = raw_cluster_new(o->raw_root, (unsigned)o->qd, o->direct, o->noreplace, fb, &raw);
    if (e) {
        rc = sys_fail("raw io_uring setup", e);
        goto out;
    }
    if (o->anchor && !(ap = anchor_pool_new(o->anchor_threads))) {
        fprintf(stderr, "kvtier-bench " WHO ": cannot start %u anchor threads\n",
                o->anchor_threads);
        goto out;
    }
    /* Warm-up, untimed: every side makes its directories and has done a
     * batch before the first measured one. */
    side_ns t[NSIDES];
    memset(t, 0, sizeof t);
    if (kvt_turn(o, w, rd, keys, n, sp, dp, dst, src, bb, &t[S_KVT]) ||
        raw_turn(o, raw, keys, n, wimg, rimg, rbase, src, bb, fb, &t[S_RAW]) ||
        (ap && anchor_turn(o, ap, keys, n, sp, dp, dst, src, bb, &t[S_ANCHOR])))
        goto out;
    const uint64_t races0 = bench_stat(w, "cluster.publish_races_lost");
    const uint64_t corrupt0 = bench_stat(rd, "cluster.corrupt");
    const int nsides = ap ? 3 : 2;
    for (int r = 0; r < o->runs; r++) {
        bench_progress("micro cluster: %" PRIu64 " B blocks, run %d/%d", bb, r + 1, o->runs);
        /* Who goes first rotates from run to run. */
        for (int k = 0; k < nsides; k++) {
            int s = (k + r) % nsides;
            int bad = s == S_KVT   ? kvt_turn(o, w, rd, keys, n, sp, dp, dst, src, bb, &t[s])
                      : s == S_RAW ? raw_turn(o, raw, keys, n, wimg, rimg, rbase, src, bb, fb,
                                              &t[s])
                                   : anchor_turn(o, ap, keys, n, sp, dp, dst, src, bb, &t[s]);
            if (bad)
                goto out;
        }
        /* A put counts until its bytes are on the device (writeback too,
         * where a side wrote buffered). Ratios per run: the sides ran
         * seconds apart at most, so a slow minute of a shared disk hits
         * both. */
        uint64_t kput = t[S_KVT].put + t[S_KVT].wb, rput = t[S_RAW].put + t[S_RAW].wb;
        uint64_t cput = cpu_pass(1, src, dst, scratch, wimg, n, bb);
        uint64_t cget = cpu_pass(0, src, dst, scratch, wimg, n, bb);
        bench_samples_add(&ss.cpu_put, gbps(run_bytes, cput));
        bench_samples_add(&ss.cpu_get, gbps(run_bytes, cget));
        bench_samples_add(&ss.put_serial, (double)(rput + cput) / (double)kput);
        bench_samples_add(&ss.get_serial, (double)(t[S_RAW].get + cget) / (double)t[S_KVT].get);
        for (int s = 0; s < nsides; s++) {
            bench_samples_add(&ss.put[s], gbps(run_bytes, t[s].put + (s == S_ANCHOR ? 0 : t[s].wb)));
            bench_samples_add(&ss.get[s], gbps(run_bytes, t[s].get));
        }
        bench_samples_add(&ss.put_ratio, (double)rput / (double)kput);
        bench_samples_add(&ss.get_ratio, (double)t[S_RAW].get / (double)t[S_KVT].get);
        if (ap) {
            uint64_t aput = t[S_ANCHOR].put + t[S_ANCHOR].wb;
            bench_samples_add(&ss.a_wb, gbps(run_bytes, aput));
            bench_samples_add(&ss.warm, gbps(run_bytes, t[S_ANCHOR].warm));
            bench_samples_add(&ss.put_vs_anchor, (double)aput / (double)kput);
            bench_samples_add(&ss.get_vs_anchor,
                              (double)t[S_ANCHOR].get / (double)t[S_KVT].get);
            bench_samples_add(&ss.get_vs_warm, (double)t[S_ANCHOR].warm / (double)t[S_KVT].get);
        }
    }
    row->pairs = ss.put_ratio.n;
    row->put = med(&ss.put[S_KVT]);
    row->get = med(&ss.get[S_KVT]);
    row->raw_put = med(&ss.put[S_RAW]);
    row->raw_get = med(&ss.get[S_RAW]);
    row->put_ratio = med(&ss.put_ratio);
    row->put_p10 = pct(&ss.put_ratio, 10);
    row->put_p90 = pct(&ss.put_ratio, 90);
    row->get_ratio = med(&ss.get_ratio);
    row->get_p10 = pct(&ss.get_ratio, 10);
    row->get_p90 = pct(&ss.get_ratio, 90);
    row->cpu_put = med(&ss.cpu_put);
    row->cpu_get = med(&ss.cpu_get);
    row->put_serial = med(&ss.put_serial);
    row->get_serial = med(&ss.get_serial);
    row->a_put_cache = med(&ss.put[S_ANCHOR]);
    row->a_put_wb = med(&ss.a_wb);
    row->a_get_cold = med(&ss.get[S_ANCHOR]);
    row->a_get_warm = med(&ss.warm);
    row->put_vs_anchor = med(&ss.put_vs_anchor);
    row->get_vs_anchor = med(&ss.get_vs_anchor);
    row->get_vs_anchor_p10 = pct(&ss.get_vs_anchor, 10);
    row->get_vs_anchor_p90 = pct(&ss.get_vs_anchor, 90);
    row->get_vs_warm = med(&ss.get_vs_warm);
    row->races_lost = bench_stat(w, "cluster.publish_races_lost") - races0;
    row->corrupt = bench_stat(rd, "cluster.corrupt") - corrupt0;
    rc = BENCH_OK;
out:
    if (ap) {
        anchor_run(ap, ANCHOR_UNLINK, o->anchor_dir, keys, n, NULL, bb);
        anchor_pool_free(ap);
    }
    if (raw)
        raw_cluster_unlink(raw, keys, n);
    raw_cluster_free(raw);
    if (w && keys)
        kvt_remove(w, keys, n);
    if (kvt_close(w) && rc == BENCH_OK)
        rc = fail("kvt_close");
    if (kvt_close(rd) && rc == BENCH_OK)
        rc = fail("kvt_close");
    tp_series_free(&ss);
    bench_free(wbase, n * fb);
    bench_free(rbase, n * fb);
    bench_free(scratch, 2 * bb);
    free(keys);
    free(sp);
    free(dp);
    free(wimg);
    free(rimg);
    return rc;
}

/* ---------------------------------------------------------------- lookup */

typedef struct lk_row {
    uint64_t prefix, held, reps, statx_per_lookup;
    int half;
    double p50_us, p99_us, mean_us;
} lk_row;

/* kvt_lookup on a store whose DRAM is empty, of prefixes whose blocks only
 * the cluster tier holds (another store put them): every lookup asks the
 * tier for the whole prefix. Half: the prefix's first half held, the rest
 * never put. */
static int measure_lookup(cl_opts *o, const bench_list *prefixes, uint64_t bb, int reps,
                          lk_row *rows, size_t *nrows)
{
    uint64_t maxp = 0;
    for (int i = 0; i < prefixes->n; i++)
        maxp = prefixes->v[i] > maxp ? prefixes->v[i] : maxp;
    int rc = BENCH_FAILED;
    kvt_store *w = NULL, *rd = NULL;
    kvt_key *keys = malloc(2 * maxp * sizeof *keys), *ask = malloc(maxp * sizeof *ask);
    void **sp = malloc(maxp * sizeof *sp);
    uint8_t *payload = bench_alloc(bb);
    bench_samples lat = {0};
    if (!keys || !ask || !sp || !payload) {
        fprintf(stderr, "kvtier-bench " WHO ": out of memory\n");
        goto out;
    }
    bench_fill(payload, bb, 11);
    for (uint64_t i = 0; i < maxp; i++)
        sp[i] = payload; /* the bytes do not matter to a lookup */
    if (bench_keys(keys, 2 * maxp, 0x100c0b))
        goto out;
    if (!(w = open_store(o, bb, 1)) || !(rd = open_store(o, bb, 1)))
        goto out;
    bench_progress("micro cluster: lookup, putting %" PRIu64 " blocks", maxp);
    uint64_t puts0 = bench_stat(w, "cluster.puts");
    int got = kvt_put(w, keys, (size_t)maxp, sp, NULL, NULL);
    if (got != (int)maxp || bench_stat(w, "cluster.puts") - puts0 != maxp) {
        fprintf(stderr, "kvtier-bench " WHO ": lookup set: stored %d of %" PRIu64 ": %s\n", got,
                maxp, got < 0 ? kvt_last_error() : "rejected");
        goto out;
    }
    for (int i = 0; i < prefixes->n; i++) {
        for (int half = 0; half < 2; half++) {
            const uint64_t p = prefixes->v[i], held = half ? p / 2 : p;
            for (uint64_t k = 0; k < p; k++)
                ask[k] = k < held ? keys[k] : keys[maxp + k]; /* never put */
            bench_progress("micro cluster: lookup of %" PRIu64 "%s", p, half ? ", half held" : "");
            bench_samples_free(&lat);
            uint64_t checks0 = bench_stat(rd, "cluster.contains_checks");
            for (int r = 0; r < reps; r++) {
                uint64_t t0 = bench_now_ns();
                int h = kvt_lookup(rd, ask, (size_t)p, NULL, 0);
                uint64_t ns = bench_now_ns() - t0;
                if (h != (int)held) {
                    fprintf(stderr, "kvtier-bench " WHO ": kvt_lookup of %" PRIu64 " found %d, "
                                    "not %" PRIu64 ": %s\n", p, h, held,
                            h < 0 ? kvt_last_error() : "the cluster tier disagrees");
                    goto out;
                }
                bench_samples_add(&lat, (double)ns / 1e3);
            }
            lk_row *row = &rows[(*nrows)++];
            row->prefix = p;
            row->held = held;
            row->half = half;
            row->reps = (uint64_t)reps;
            row->statx_per_lookup =
                (bench_stat(rd, "cluster.contains_checks") - checks0) / (uint64_t)reps;
            row->p50_us = bench_percentile(&lat, 50);
            row->p99_us = bench_percentile(&lat, 99);
            row->mean_us = bench_sum(&lat) / (double)lat.n;
        }
    }
    rc = BENCH_OK;
out:
    if (w && keys)
        kvt_remove(w, keys, (size_t)maxp);
    if (kvt_close(w) && rc == BENCH_OK)
        rc = fail("kvt_close");
    if (kvt_close(rd) && rc == BENCH_OK)
        rc = fail("kvt_close");
    bench_samples_free(&lat);
    bench_free(payload, bb);
    free(keys);
    free(ask);
    free(sp);
    return rc;
}

/* ---------------------------------------------------------------- report */

static const bench_field tp_fields[] = {
    {"block_bytes", BT_U64},           {"file_bytes", BT_U64},
    {"blocks", BT_U64},                {"queue_depth", BT_U64},
    {"pairs", BT_U64},                 {"put_gb_per_s", BT_NUM},
    {"get_gb_per_s", BT_NUM},          {"raw_put_gb_per_s", BT_NUM},
    {"raw_get_gb_per_s", BT_NUM},      {"put_vs_raw", BT_NUM},
    {"put_vs_raw_p10", BT_NUM},        {"put_vs_raw_p90", BT_NUM},
    {"get_vs_raw", BT_NUM},            {"get_vs_raw_p10", BT_NUM},
    {"get_vs_raw_p90", BT_NUM},        {"cpu_put_gb_per_s", BT_NUM},
    {"cpu_get_gb_per_s", BT_NUM},      {"put_vs_raw_serial", BT_NUM},
    {"get_vs_raw_serial", BT_NUM},     {"anchor_put_cache_gb_per_s", BT_NUM},
    {"anchor_put_gb_per_s", BT_NUM},   {"anchor_get_cold_gb_per_s", BT_NUM},
    {"anchor_get_warm_gb_per_s", BT_NUM}, {"put_vs_anchor", BT_NUM},
    {"get_vs_anchor", BT_NUM},         {"get_vs_anchor_p10", BT_NUM},
    {"get_vs_anchor_p90", BT_NUM},     {"get_vs_anchor_warm", BT_NUM},
    {"publish_races_lost", BT_U64},    {"corrupt", BT_U64},
};

static const bench_col tp_cols[] = {
    BENCH_COL("block", "bytes", "block_bytes"),
    BENCH_COL("put GB/s", "%.2f", "put_gb_per_s"),
    BENCH_COL("raw put", "%.2f", "raw_put_gb_per_s"),
    BENCH_COL_RATIO("put/raw", "put_vs_raw", "put_vs_raw_p10", "put_vs_raw_p90"),
    BENCH_COL("get GB/s", "%.2f", "get_gb_per_s"),
    BENCH_COL("raw get", "%.2f", "raw_get_gb_per_s"),
    BENCH_COL_RATIO("get/raw", "get_vs_raw", "get_vs_raw_p10", "get_vs_raw_p90"),
    BENCH_COL("anchor put", "%.2f", "anchor_put_gb_per_s"),
    BENCH_COL("put/anchor", "%.2fx", "put_vs_anchor"),
    BENCH_COL("anchor get cold", "%.2f", "anchor_get_cold_gb_per_s"),
    BENCH_COL("get/anchor cold", "%.2fx", "get_vs_anchor"),
    BENCH_COL("get/anchor warm", "%.2fx", "get_vs_anchor_warm"),
};

/* The tier's own CPU work against the raw loop (cpu_pass()). */
static const bench_col cpu_cols[] = {
    BENCH_COL("block", "bytes", "block_bytes"),
    BENCH_COL("copy+hash put GB/s", "%.2f", "cpu_put_gb_per_s"),
    {.head = "(raw+cpu)/kvtier put", .fmt = "%.1f%%", .keys = {"put_vs_raw_serial"}, .scale = 100},
    BENCH_COL("copy+hash get GB/s", "%.2f", "cpu_get_gb_per_s"),
    {.head = "(raw+cpu)/kvtier get", .fmt = "%.1f%%", .keys = {"get_vs_raw_serial"}, .scale = 100},
};

static const bench_field lk_fields[] = {
    {"prefix", BT_U64}, {"held", BT_U64},   {"half_held", BT_BOOL}, {"lookups", BT_U64},
    {"statx_per_lookup", BT_U64}, {"p50_us", BT_NUM}, {"p99_us", BT_NUM}, {"mean_us", BT_NUM},
};

static const bench_col lk_cols[] = {
    BENCH_COL("prefix", NULL, "prefix"),
    BENCH_COL("held", NULL, "held"),
    BENCH_COL("statx/lookup", NULL, "statx_per_lookup"),
    BENCH_COL("p50 us", "%.0f", "p50_us"),
    BENCH_COL("p99 us", "%.0f", "p99_us"),
    BENCH_COL("mean us", "%.0f", "mean_us"),
};

static void fill_rows(const cl_opts *o, const tp_row *rows, size_t nrows, const lk_row *lrows,
                      size_t nlrows, bench_rows *tp, bench_rows *lk)
{
    bench_rows_init(tp, tp_fields, (int)(sizeof tp_fields / sizeof *tp_fields));
    bench_rows_init(lk, lk_fields, (int)(sizeof lk_fields / sizeof *lk_fields));
    for (size_t i = 0; i < nrows; i++) {
        const tp_row *r = &rows[i];
        bench_rows_add(tp);
        bench_rows_u64(tp, "block_bytes", r->block_bytes);
        bench_rows_u64(tp, "file_bytes", r->file_bytes);
        bench_rows_u64(tp, "blocks", r->blocks);
        bench_rows_u64(tp, "queue_depth", (uint64_t)o->qd);
        bench_rows_u64(tp, "pairs", r->pairs);
        bench_rows_num(tp, "put_gb_per_s", r->put);
        bench_rows_num(tp, "get_gb_per_s", r->get);
        bench_rows_num(tp, "raw_put_gb_per_s", r->raw_put);
        bench_rows_num(tp, "raw_get_gb_per_s", r->raw_get);
        bench_rows_num(tp, "put_vs_raw", r->put_ratio);
        bench_rows_num(tp, "put_vs_raw_p10", r->put_p10);
        bench_rows_num(tp, "put_vs_raw_p90", r->put_p90);
        bench_rows_num(tp, "get_vs_raw", r->get_ratio);
        bench_rows_num(tp, "get_vs_raw_p10", r->get_p10);
        bench_rows_num(tp, "get_vs_raw_p90", r->get_p90);
        bench_rows_num(tp, "cpu_put_gb_per_s", r->cpu_put);
        bench_rows_num(tp, "cpu_get_gb_per_s", r->cpu_get);
        bench_rows_num(tp, "put_vs_raw_serial", r->put_serial);
        bench_rows_num(tp, "get_vs_raw_serial", r->get_serial);
        if (o->anchor) {
            bench_rows_num(tp, "anchor_put_cache_gb_per_s", r->a_put_cache);
            bench_rows_num(tp, "anchor_put_gb_per_s", r->a_put_wb);
            bench_rows_num(tp, "anchor_get_cold_gb_per_s", r->a_get_cold);
            bench_rows_num(tp, "anchor_get_warm_gb_per_s", r->a_get_warm);
            bench_rows_num(tp, "put_vs_anchor", r->put_vs_anchor);
            bench_rows_num(tp, "get_vs_anchor", r->get_vs_anchor);
            bench_rows_num(tp, "get_vs_anchor_p10", r->get_vs_anchor_p10);
            bench_rows_num(tp, "get_vs_anchor_p90", r->get_vs_anchor_p90);
            bench_rows_num(tp, "get_vs_anchor_warm", r->get_vs_warm);
        }
        bench_rows_u64(tp, "publish_races_lost", r->races_lost);
        bench_rows_u64(tp, "corrupt", r->corrupt);
    }
    for (size_t i = 0; i < nlrows; i++) {
        const lk_row *r = &lrows[i];
        bench_rows_add(lk);
        bench_rows_u64(lk, "prefix", r->prefix);
        bench_rows_u64(lk, "held", r->held);
        bench_rows_bool(lk, "half_held", r->half);
        bench_rows_u64(lk, "lookups", r->reps);
        bench_rows_u64(lk, "statx_per_lookup", r->statx_per_lookup);
        bench_rows_num(lk, "p50_us", r->p50_us);
        bench_rows_num(lk, "p99_us", r->p99_us);
        bench_rows_num(lk, "mean_us", r->mean_us);
    }
}

static void report(const cl_opts *o, const char *fs, uint64_t lookup_bb, const bench_rows *tp,
                   const bench_rows *lk, int json, int csv)
{
    const double load = bench_loadavg();
    if (csv) {
        bench_rows_csv(tp, stdout);
        printf("\n");
        bench_rows_csv(lk, stdout);
        return;
    }
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro");
        bench_json_str(&j, "tier", "cluster");
        bench_json_object(&j, "config");
        bench_json_str(&j, "dir", o->dir);
        bench_json_str(&j, "fs_type", fs);
        bench_json_bool(&j, "direct_io", o->direct);
        bench_json_bool(&j, "rename_noreplace", o->noreplace);
        bench_json_u64(&j, "queue_depth", (uint64_t)o->qd);
        bench_json_u64(&j, "total_bytes", o->total);
        bench_json_i64(&j, "runs", o->runs);
        bench_json_bool(&j, "anchor", o->anchor);
        bench_json_u64(&j, "anchor_threads", o->anchor_threads);
        bench_json_u64(&j, "lookup_block_bytes", lookup_bb);
        bench_json_str(&j, "store", "puts: DRAM (4 blocks) + cluster tier, written through; "
                                    "gets and lookups: a second store on the same directory, "
                                    "DRAM empty, KVT_IO_NO_PROMOTE");
        bench_json_str(&j, "raw", "io_uring, queue_depth blocks in flight: openat tmp "
                                  "(O_CREAT|O_EXCL, O_DIRECT when direct_io), write of the "
                                  "tier's file image, close, renameat2 NOREPLACE (link + "
                                  "unlink without it); get: openat, read, close; the images in "
                                  "anonymous memory with MADV_HUGEPAGE, like the caller's "
                                  "buffers");
        bench_json_str(&j, "ratios", "medians of per-run time ratios: *_vs_raw raw/tier "
                                     "(1 = as fast), *_vs_anchor anchor/tier; puts count until "
                                     "the bytes are on the device (writeback where buffered)");
        bench_json_end_object(&j);
        bench_rows_json(tp, &j, "rows");
        bench_rows_json(lk, &j, "lookup");
        bench_json_num(&j, "loadavg_1m_end", load);
        bench_json_end_object(&j);
        printf("\n");
        return;
    }
    char a[32], b[32];
    bench_print_header(stdout, "Cluster tier put/get vs raw io_uring and the anchors' files");
    printf("  directory %s (%s), O_DIRECT %s, publish by %s, queue_depth %d, %s per pass, "
           "%d runs, load average %.2f\n",
           o->dir, fs, o->direct ? "used" : "not usable (buffered; pages dropped before reads)",
           o->noreplace ? "rename-noreplace" : "link + unlink", o->qd,
           bench_fmt_bytes(o->total, a, sizeof a), o->runs, load);
    printf("  GB/s medians; ratios: medians of per-run time ratios (p10-p90); put/anchor and\n"
           "  get/anchor: anchor time / kvtier time (target >= 2x at 2 MiB); put/raw and get/raw:\n"
           "  raw time / kvtier time (target >= 90%%). Anchor put includes its writeback.\n\n");
    bench_rows_text(tp, tp_cols, (int)(sizeof tp_cols / sizeof *tp_cols), stdout, 2);
    printf("\n  The tier's copies and checksums alone (one thread, no I/O), and the raw loop's\n"
           "  time plus theirs over kvtier's: 100%% = kvtier takes exactly as long as doing\n"
           "  them after the I/O, none of it overlapped.\n\n");
    bench_rows_text(tp, cpu_cols, (int)(sizeof cpu_cols / sizeof *cpu_cols), stdout, 2);
    if (!lk->nrows)
        return;
    printf("\n  kvt_lookup on a store with an empty DRAM, blocks held only in the cluster tier "
           "(%s blocks):\n\n", bench_fmt_bytes(lookup_bb, b, sizeof b));
    bench_rows_text(lk, lk_cols, (int)(sizeof lk_cols / sizeof *lk_cols), stdout, 2);
}

/* ------------------------------------------------------------------ main */

int bench_micro_cluster(int argc, char **argv)
{
    const char *tier = "cluster", *dir = NULL;
    bench_list blocks = {{256u << 10, 2u << 20, 8u << 20}, 3};
    bench_list prefixes = {{10, 100, 1000}, 3};
    uint64_t total = 256u << 20, lookup_bb = 4096;
    int64_t runs = 5, qd = 32, anchor_threads = 8, lookup_reps = 100;
    int json = 0, csv = 0, no_anchor = 0, no_lookup = 0;
    const barg spec[] = {
        {"tier", BARG_STR, &tier, "cluster (this command)"},
        {"dir", BARG_STR, &dir,
         "directory on the filesystem to measure (default $TMPDIR or /tmp); a private "
         "subdirectory is made and removed"},
        {"block-bytes", BARG_SIZE_LIST, &blocks, "block sizes, multiples of 4K (default 256K,2M,8M)"},
        {"total-bytes", BARG_SIZE, &total,
         "bytes per pass, rounded down to whole blocks (default 256M)"},
        {"runs", BARG_INT, &runs, "runs per block size (default 5)"},
        {"qd", BARG_INT, &qd, "the tier's queue_depth, and the raw loop's blocks in flight (default 32)"},
        {"anchor-threads", BARG_INT, &anchor_threads, "threads of the anchors' pool (default 8)"},
        {"no-anchor", BARG_BOOL, &no_anchor, "skip the anchors' one-file-per-block pool"},
        {"lookup-prefixes", BARG_SIZE_LIST, &prefixes, "kvt_lookup prefix lengths (default 10,100,1000)"},
        {"lookup-reps", BARG_INT, &lookup_reps, "lookups per prefix (default 100)"},
        {"lookup-block-bytes", BARG_SIZE, &lookup_bb, "block size of the lookup set (default 4K)"},
        {"no-lookup", BARG_BOOL, &no_lookup, "skip the lookup latency"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of tables"},
        {"csv", BARG_BOOL, &csv, "print the rows as CSV: throughput, a blank line, lookup"},
        {0},
    };
    int rc = bench_parse_args("micro", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    const char *why = NULL;
    if (strcmp(tier, "cluster") != 0)
        why = "--tier must be cluster here";
    else if (runs < 1 || runs > 1000)
        why = "--runs must be 1..1000";
    else if (qd < 1 || qd > 1024)
        why = "--qd must be 1..1024";
    else if (anchor_threads < 1 || anchor_threads > 256)
        why = "--anchor-threads must be 1..256";
    else if (lookup_reps < 1 || lookup_reps > 1000000)
        why = "--lookup-reps must be 1..1000000";
    else if (lookup_bb < 64 || lookup_bb > (64u << 20) || lookup_bb % 64)
        why = "--lookup-block-bytes must be a multiple of 64 in 64..64M";
    else if (json && csv)
        why = "--json and --csv exclude each other";
    for (int i = 0; !why && i < blocks.n; i++)
        if (blocks.v[i] < 4096 || blocks.v[i] % 4096 || blocks.v[i] > (1u << 30))
            why = "--block-bytes values must be multiples of 4K in 4K..1G";
        else if (total < blocks.v[i])
            why = "--total-bytes is less than one block";
    for (int i = 0; !why && i < prefixes.n; i++)
        if (prefixes.v[i] < 1 || prefixes.v[i] > 1000000)
            why = "--lookup-prefixes values must be 1..1000000";
    if (why) {
        fprintf(stderr, "kvtier-bench micro: %s\nTry 'kvtier-bench micro --tier cluster --help'.\n",
                why);
        return BENCH_USAGE;
    }
    cl_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir ? dir : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    o.total = total;
    o.runs = (int)runs;
    o.qd = (int)qd;
    o.anchor = !no_anchor;
    o.anchor_threads = (unsigned)anchor_threads;
    struct stat st;
    if (stat(o.dir, &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kvtier-bench micro: --dir %s is not a directory\n", o.dir);
        return BENCH_USAGE;
    }
    char name[48];
    snprintf(name, sizeof name, "kvtier-bench-cluster-%d", (int)getpid());
    if (join(o.base, o.dir, name) || join(o.tier_dir, o.base, "tier") ||
        join(o.tier_root, o.tier_dir, "kvtier-cluster-v1") || join(o.raw_root, o.base, "raw") ||
        join(o.anchor_dir, o.base, "anchor")) {
        fprintf(stderr, "kvtier-bench micro: --dir %s: path too long\n", o.dir);
        return BENCH_USAGE;
    }
    if (mkdir(o.base, 0700) || mkdir(o.tier_dir, 0700) || mkdir(o.raw_root, 0700) ||
        mkdir(o.anchor_dir, 0700))
        return sys_fail("creating the run's directories", -errno);
    char fsbuf[16];
    const char *fs = fs_name(o.dir, fsbuf, sizeof fsbuf);

    /* Caller buffers for the largest pass: every block size uses their front. */
    uint8_t *src = bench_alloc(total), *dst = bench_alloc(total);
    tp_row *rows = calloc((size_t)blocks.n, sizeof *rows);
    lk_row *lrows = calloc(2 * (size_t)prefixes.n, sizeof *lrows);
    size_t nrows = 0, nlrows = 0;
    rc = BENCH_OK;
    if (!src || !dst || !rows || !lrows) {
        fprintf(stderr, "kvtier-bench micro: cannot allocate 2 x %" PRIu64 " bytes\n", total);
        rc = BENCH_FAILED;
    }
    if (rc == BENCH_OK)
        bench_fill(src, total, 42);
    for (int i = 0; rc == BENCH_OK && i < blocks.n; i++) {
        tp_row *r = &rows[nrows];
        r->block_bytes = blocks.v[i];
        r->blocks = (size_t)(total / blocks.v[i]);
        rc = measure_block_size(&o, r, src, dst);
        if (rc == BENCH_OK)
            nrows++;
    }
    if (rc == BENCH_OK && !no_lookup)
        rc = measure_lookup(&o, &prefixes, lookup_bb, (int)lookup_reps, lrows, &nlrows);
    bench_progress_done();
    remove_tree(o.base);
    if (rc == BENCH_OK) {
        bench_rows tp, lk;
        fill_rows(&o, rows, nrows, lrows, nlrows, &tp, &lk);
        report(&o, fs, lookup_bb, &tp, &lk, json, csv);
        bench_rows_free(&tp);
        bench_rows_free(&lk);
    }
    free(rows);
    free(lrows);
    bench_free(src, total);
    bench_free(dst, total);
    return rc;
}
