/* cmd_close.c — `kvtier-bench close`: how long kvt_close takes to write a full DRAM tier down to NVMe, next to a raw loop writing the same bytes. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../bench.h"
#include "../baseline/raw_uring.h"

static const char summary[] =
    "Fills a DRAM tier of --dram bytes with blocks of --block-bytes (write-back, so\n"
    "  nothing is on NVMe yet), then times kvt_close, which writes them all down to\n"
    "  an NVMe file in --dir (KVT_OPT_CLOSE_FLUSH_MS) and flushes it; reopens the\n"
    "  store, times the recovery and checks that every block came back with its\n"
    "  bytes (a sample of them read back). Next to it, in the same run, a raw\n"
    "  io_uring loop writes the same payload (the blocks alone, without kvtier's\n"
    "  header units) at the same queue depth from registered memory into a fresh\n"
    "  file and fdatasyncs it.\n"
    "  --runs alternates which of the two goes first; medians.";

#define FILL_BATCH 64
#define RAW_BUF (256ull << 20)

typedef struct close_run {
    double close_s, raw_s, open_s;
    uint64_t recovered, checked, wrong, unflushed;
} close_run;

static kvt_store *open_store(uint64_t dram, uint64_t block, uint64_t nvme, const char *path,
                             int qd)
{
    bench_store_spec spec = bench_dram_spec("close", block, dram);
    spec.close_flush_ms = 86400000; /* all of it, however long */
    spec.tier[BENCH_NVME].capacity = nvme;
    spec.tier[BENCH_NVME].queue_depth = qd;
    spec.tier[BENCH_NVME].path = path;
    kvt_store *s = NULL;
    bench_store_open(&spec, &s);
    return s;
}

static kvt_key key_of(uint64_t i)
{
    kvt_key ns, k;
    kvt_ns_field f = {KVT_NS_CUSTOM, 5, "close"};
    kvt_ns_key(&f, 1, &ns);
    uint32_t tok[2] = {(uint32_t)i, (uint32_t)(i >> 32)};
    kvt_key_chain(&ns, tok, 2, 2, &k, 1);
    return k;
}

/* Block i's first 8 bytes say i (the rest is the pattern of `src`). */
static void stamp(uint8_t *b, uint64_t i)
{
    memcpy(b, &i, sizeof i);
}

static int kvtier_side(close_run *r, uint64_t dram, uint64_t block, const char *path, int qd)
{
    uint64_t n = dram / block, slot;
    if (bench_slot_bytes(block, &slot))
        return -1;
    unlink(path);
    kvt_store *s = open_store(dram, block, slot * n, path, qd);
    if (!s)
        return -1;
    uint8_t *src = bench_alloc(FILL_BATCH * block);
    if (!src) {
        kvt_close(s);
        return -1;
    }
    bench_fill(src, FILL_BATCH * block, 7);
    for (uint64_t i = 0; i < n; i += FILL_BATCH) {
        kvt_key k[FILL_BATCH];
        void *p[FILL_BATCH];
        size_t m = n - i < FILL_BATCH ? (size_t)(n - i) : FILL_BATCH;
        for (size_t j = 0; j < m; j++) {
            k[j] = key_of(i + j);
            p[j] = src + j * block;
            stamp(p[j], i + j);
        }
        if (kvt_put(s, k, m, p, NULL, NULL) != (int)m) {
            fprintf(stderr, "close: put: %s\n", kvt_last_error());
            kvt_close(s);
            bench_free(src, FILL_BATCH * block);
            return -1;
        }
    }
    uint64_t t0 = bench_now_ns();
    kvt_close(s);
    r->close_s = (double)(bench_now_ns() - t0) / 1e9;

    t0 = bench_now_ns();
    s = open_store(dram, block, slot * n, path, qd);
    r->open_s = (double)(bench_now_ns() - t0) / 1e9;
    if (!s) {
        bench_free(src, FILL_BATCH * block);
        return -1;
    }
    kvt_stat(s, "nvme.recovered", &r->recovered);
    /* Every 97th block and the last, read back and compared. */
    uint8_t *dst = bench_alloc(block);
    for (uint64_t i = 0; dst && i < n; i = i + 97 < n || i == n - 1 ? i + 97 : n - 1) {
        kvt_key k = key_of(i);
        void *p = dst;
        uint8_t *want = src + (i % FILL_BATCH) * block;
        stamp(want, i);
        r->checked++;
        kvt_io_opts o = {.size = sizeof o, .flags = KVT_IO_NO_PROMOTE};
        if (kvt_get(s, &k, 1, &p, &o, NULL) != 1 || memcmp(dst, want, block) != 0)
            r->wrong++;
    }
    bench_free(dst, block);
    kvt_close(s);
    unlink(path);
    bench_free(src, FILL_BATCH * block);
    return 0;
}

/* The payload kvtier's write-down persists, and nothing more: one write of
 * each block, contiguous. kvtier also writes a 4 KiB header unit per block
 * (its slot, bench_slot_bytes): that is the tier's cost, which the ratio
 * shows rather than hides (as micro --tier nvme's raw loop, docs/bench.md). */
static int raw_side(close_run *r, uint64_t dram, uint64_t block, const char *path, int qd)
{
    uint64_t n = dram / block;
    unlink(path);
    int fd = raw_uring_open_file(path, n * block);
    if (fd < 0)
        return -1;
    uint64_t bufbytes = block > RAW_BUF ? block : RAW_BUF - RAW_BUF % block;
    uint8_t *buf = bench_alloc(bufbytes);
    raw_uring *u = NULL;
    struct iovec reg = {buf, bufbytes};
    raw_io *ios = calloc(n, sizeof *ios);
    int rc = -1;
    if (buf && ios && raw_uring_new(fd, (unsigned)qd, &reg, 1, &u) == 0) {
        bench_fill(buf, bufbytes, 9);
        uint64_t per = bufbytes / block;
        for (uint64_t i = 0; i < n; i++)
            ios[i] = (raw_io){buf + (i % per) * block, i * block, (uint32_t)block};
        uint64_t t0 = bench_now_ns();
        rc = raw_uring_run(u, 1, ios, n);
        if (!rc)
            rc = fdatasync(fd) ? -errno : 0;
        r->raw_s = (double)(bench_now_ns() - t0) / 1e9;
    }
    raw_uring_free(u);
    free(ios);
    if (buf)
        bench_free(buf, bufbytes);
    close(fd);
    unlink(path);
    return rc;
}

int bench_close(int argc, char **argv)
{
    uint64_t dram = 1ull << 30, block = 2ull << 20;
    const char *dir = NULL;
    int64_t runs = 3, qd = 64;
    int json = 0;
    barg spec[] = {
        {"dram", BARG_SIZE, &dram, "DRAM tier filled, then written down at close (default 1G)"},
        {"block-bytes", BARG_SIZE, &block, "block size (default 2M)"},
        {"dir", BARG_STR, &dir, "directory of the NVMe files (default $TMPDIR or /tmp)"},
        {"qd", BARG_INT, &qd, "NVMe queue depth, both sides (default 64)"},
        {"runs", BARG_INT, &runs, "alternating runs of each side (default 3)"},
        {"json", BARG_BOOL, &json, "JSON instead of text"},
        {0},
    };
    int prc = bench_parse_args("close", summary, spec, argc, argv);
    if (prc)
        return prc < 0 ? BENCH_OK : prc;
    if (!dir)
        dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (runs < 1 || qd < 1 || qd > 4096 || block < 4096 || block % 4096 || dram < block) {
        fprintf(stderr, "close: need --runs >= 1, --qd 1..4096, --block-bytes a multiple of 4K, "
                        "--dram >= one block\n");
        return BENCH_USAGE;
    }
    char kpath[4096], rpath[4096];
    snprintf(kpath, sizeof kpath, "%s/kvtier-close-%d.kvt", dir, (int)getpid());
    snprintf(rpath, sizeof rpath, "%s/kvtier-close-raw-%d.bin", dir, (int)getpid());
    bench_samples close_s = {0}, raw_s = {0}, open_s = {0};
    close_run last = {0};
    uint64_t wrong = 0, missing = 0;
    for (int64_t i = 0; i < runs; i++) {
        close_run r = {0};
        bench_progress("close: run %lld of %lld", (long long)i + 1, (long long)runs);
        /* Alternating which side goes first: a virtual disk's host cache
         * may still be writing the first side's bytes back during the second. */
        int bad = i % 2 ? raw_side(&r, dram, block, rpath, (int)qd) ||
                              kvtier_side(&r, dram, block, kpath, (int)qd)
                        : kvtier_side(&r, dram, block, kpath, (int)qd) ||
                              raw_side(&r, dram, block, rpath, (int)qd);
        if (bad) {
            bench_progress_done();
            fprintf(stderr, "close: run %lld failed\n", (long long)i + 1);
            return BENCH_FAILED;
        }
        bench_samples_add(&close_s, r.close_s);
        bench_samples_add(&raw_s, r.raw_s);
        bench_samples_add(&open_s, r.open_s);
        wrong += r.wrong;
        missing += dram / block - r.recovered;
        last = r;
    }
    bench_progress_done();
    uint64_t n = dram / block;
    double c = bench_median(&close_s), w = bench_median(&raw_s), o = bench_median(&open_s);
    double bytes = (double)n * (double)block;
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "close");
        bench_json_object(&j, "config");
        bench_json_u64(&j, "dram_bytes", dram);
        bench_json_u64(&j, "block_bytes", block);
        bench_json_u64(&j, "blocks", n);
        bench_json_i64(&j, "queue_depth", qd);
        bench_json_i64(&j, "runs", runs);
        uint64_t slot = 0;
        bench_slot_bytes(block, &slot);
        bench_json_u64(&j, "slot_bytes", slot);
        bench_json_str(&j, "raw", "io_uring writes of the same payload (block_bytes per block, "
                                  "contiguous), then fdatasync; kvtier also writes a header "
                                  "unit per block (slot_bytes each), its own cost; GB/s of "
                                  "payload on both sides");
        bench_json_str(&j, "statistic", "median");
        bench_json_end_object(&j);
        bench_json_num(&j, "close_s", c);
        bench_json_num(&j, "close_gb_per_s", bytes / c / 1e9);
        bench_json_num(&j, "raw_write_sync_s", w);
        bench_json_num(&j, "raw_gb_per_s", bytes / w / 1e9);
        bench_json_num(&j, "ratio", w / c);
        bench_json_num(&j, "reopen_s", o);
        bench_json_u64(&j, "recovered_last_run", last.recovered);
        bench_json_u64(&j, "missing", missing);
        bench_json_u64(&j, "checked_last_run", last.checked);
        bench_json_u64(&j, "wrong", wrong);
        bench_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        char a[32], b[32];
        bench_print_header(stdout, "close: a full DRAM tier written down at kvt_close");
        printf("  %s of %s blocks (%" PRIu64 "), queue depth %lld, %lld runs, medians\n\n",
               bench_fmt_bytes(dram, a, sizeof a), bench_fmt_bytes(block, b, sizeof b), n,
               (long long)qd, (long long)runs);
        printf("  kvt_close (write-down + fdatasync)   %8.2f s   %6.2f GB/s\n", c, bytes / c / 1e9);
        printf("  raw io_uring writes + fdatasync      %8.2f s   %6.2f GB/s\n", w, bytes / w / 1e9);
        printf("    (both GB/s count payload; the raw loop writes the blocks alone, kvtier a 4 KiB\n"
               "     header unit with each, its own cost)\n");
        printf("  close / raw                          %8.1f %%\n", 100.0 * w / c);
        printf("  reopen (recovery)                    %8.2f s   %" PRIu64 " blocks recovered\n", o,
               last.recovered);
        printf("  blocks missing after reopen, all runs: %" PRIu64 "; wrong bytes in %" PRIu64
               " checked: %" PRIu64 "\n",
               missing, last.checked, wrong);
    }
    bench_samples_free(&close_s);
    bench_samples_free(&raw_s);
    bench_samples_free(&open_s);
    return wrong || missing ? BENCH_FAILED : BENCH_OK;
}
