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


#include "../baseline/raw_sum.h"
#include "../baseline/raw_uring.h"
#include "micro_nvme.h"
#include "micro_nvme_paths.h"

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


/* ------------------------------------------------------------------ main */

int bench_micro_nvme(int argc, char **argv)
{
    const char *tier = "nvme", *dir = NULL, *paths = NULL;
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
        {"paths", BARG_STR, &paths,
         "A,B,...: files or block devices (overwritten, left in place) to stripe the tier "
         "across; measures only that, next to the sum of each device's raw loop"},
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

    if (paths)
        return bench_micro_nvme_paths(paths, &blocks, &qds, total, o.runs, json);
    if (recovery) {
        rec_row *rows = calloc((size_t)rec_blocks.n, sizeof *rows);
        size_t nrows = 0;
        rc = rows ? BENCH_OK : BENCH_FAILED;
        for (int i = 0; rc == BENCH_OK && i < rec_blocks.n; i++) {
            rows[nrows].blocks = rec_blocks.v[i];
            rows[nrows].block_bytes = rec_bb;
            rc = nv_measure_recovery(&o, &rows[nrows], o.runs);
            if (rc == BENCH_OK)
                nrows++;
        }
        bench_progress_done();
        bench_list rb = {{rec_bb}, 1};
        if (rc == BENCH_OK)
            nv_report_recovery(&o, json, rows, nrows, &rb);
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
        rc = nv_sys_fail("creating the anchor's directory", -errno);
        o.anchor = 0;
    }
    o.touch_gbps = o.anchor ? nv_page_touch_gbps() : NAN;
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
            rc = nv_measure_row(&o, r, &arows[narows], keys, with_anchor);
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
            rc = nv_measure_demote(&o, d, keys);
            if (rc == BENCH_OK)
                ndrows++;
        }
    }
    bench_progress_done();
    if (o.anchor)
        rmdir(o.adir);
    if (rc == BENCH_OK) {
        if (json)
            nv_report_json(&o, &blocks, rows, nrows, arows, narows, drows, ndrows);
        else
            nv_report_text(&o, &blocks, rows, nrows, arows, narows, drows, ndrows);
    }
    free(keys);
    free(rows);
    free(arows);
    free(drows);
    bench_free(o.src, total);
    bench_free(o.dst, total);
    return rc;
}

