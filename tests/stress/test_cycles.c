/* test_cycles.c — open/close a DRAM+NVMe store thousands of times: file descriptors and RSS must stay level. */
/*
 *   test-stress-cycles [--cycles N] [--warmup W] [--rss-slack-kib K] [--dram-only]
 *
 * Each cycle opens a store (a small DRAM tier in front of an NVMe file that
 * survives from cycle to cycle, so every open after the first recovers it),
 * puts a few blocks (sync and async), gets some back with exact bytes,
 * looks up, removes one, and closes it. After W warm-up cycles (default
 * N / 10, at least 20) the process's open file descriptors (/proc/self/fd)
 * and resident memory (/proc/self/statm) are sampled. "Steady" means:
 *  - the fd count after every later cycle equals the warm-up count, exactly;
 *  - RSS after the last cycle is at most the warm-up RSS plus K KiB
 *    (default 2048: 2 MiB), and so is the largest RSS seen after a cycle.
 * A leak of one fd, one mapping of the DRAM arena (256 KiB here) or of a
 * ring's staging memory per cycle shows long before N cycles. Under a
 * sanitizer (ASan's quarantine keeps freed memory on purpose) RSS is
 * reported but not checked. The CI run is 100 cycles (20 of warm-up); docs/reliability.md
 * has the 10,000-cycle run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvt_build_config.h"
#include "kvtier.h"
#include "stress_util.h"
#include "../tier_kinds.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif


#define BLOCK 8192
#define NB 8

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL, "%s", "opendir /proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static uint64_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    CHECK(f != NULL, "%s", "fopen /proc/self/statm");
    unsigned long size = 0, res = 0;
    CHECK(fscanf(f, "%lu %lu", &size, &res) == 2, "%s", "statm");
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}


static kvt_key key_of(uint64_t i)
{
    kvt_key ns, k;
    uint32_t tok[2] = {(uint32_t)i, 0xc1c1e};
    kvt_ns_key(NULL, 0, &ns);
    kvt_key_chain(&ns, tok, 2, 2, &k, 1);
    return k;
}


static kvt_config *config(const char *path, int nvme)
{
    kvt_config *c;
    CHECK(kvt_config_new(&c) == 0, "%s", kvt_last_error());
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_WORKERS, 2);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 32 * BLOCK);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", 60000);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    if (nvme) {
        uint64_t slot;
        CHECK(kvt_slot_bytes("nvme", BLOCK, &slot) == 0, "%s", kvt_last_error());
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(256 * slot));
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "queue_depth", 16);
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "admit", KVT_ADMIT_WRITE_THROUGH);
        kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    }
    return c;
}

/* One cycle: open, a little of everything, close. */
static void cycle(const char *path, int nvme, long n, uint8_t *buf, uint8_t *want)
{
    kvt_config *c = config(path, nvme);
    kvt_store *s;
    int rc = kvt_open(c, &s);
    CHECK(rc == 0, "cycle %ld: open: %s", n, kvt_last_error());
    kvt_config_free(c);
    kvt_key k[NB];
    void *p[NB];
    int32_t st[NB];
    uint64_t base = (uint64_t)(n % 64) * NB;
    for (int i = 0; i < NB; i++) {
        k[i] = key_of(base + (uint64_t)i);
        p[i] = buf + (size_t)i * BLOCK;
        fill_pattern(buf + (size_t)i * BLOCK, BLOCK, base + (uint64_t)i, 11);
    }
    kvt_io_opts o = {.size = sizeof o, .status = st};
    kvt_ticket t;
    CHECK(kvt_put(s, k, NB / 2, p, &o, NULL) == NB / 2, "cycle %ld: put: %s", n, kvt_last_error());
    CHECK(kvt_put(s, k + NB / 2, NB / 2, p + NB / 2, &o, &t) == 0, "cycle %ld: async put", n);
    CHECK(kvt_wait(s, t, -1) == NB / 2, "cycle %ld: async put: %s", n, kvt_last_error());
    memset(buf, 0, (size_t)NB * BLOCK);
    CHECK(kvt_get(s, k, NB, p, &o, &t) == 0, "cycle %ld: async get", n);
    CHECK(kvt_wait(s, t, -1) == NB, "cycle %ld: get: %s", n, kvt_last_error());
    for (int i = 0; i < NB; i++) {
        fill_pattern(want, BLOCK, base + (uint64_t)i, 11);
        CHECK(memcmp(want, buf + (size_t)i * BLOCK, BLOCK) == 0, "cycle %ld: block %d: wrong bytes",
              n, i);
    }
    if (nvme) { /* a block from an earlier cycle, recovered from the file */
        kvt_key old = key_of(((uint64_t)((n + 63) % 64)) * NB);
        uint8_t tiers[1];
        CHECK(kvt_lookup(s, &old, 1, tiers, 0) >= 0, "cycle %ld: lookup", n);
    }
    CHECK(kvt_remove(s, &k[0], 1) == 1, "cycle %ld: remove", n);
    CHECK(kvt_close(s) == 0, "cycle %ld: close: %s", n, kvt_last_error());
}

int main(int argc, char **argv)
{
    long cycles = 100, warmup = -1;
    uint64_t slack_kib = 2048;
    int nvme = KVT_HAVE_URING;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = atol(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rss-slack-kib") && i + 1 < argc)
            slack_kib = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--dram-only"))
            nvme = 0;
        else {
            fprintf(stderr, "usage: %s [--cycles N] [--warmup W] [--rss-slack-kib K] "
                            "[--dram-only]\n", argv[0]);
            return 2;
        }
    }
    if (warmup < 0)
        warmup = cycles / 10 < 20 ? 20 : cycles / 10;
    CHECK(cycles > warmup, "%ld cycles, %ld of warm-up", cycles, warmup);
    char path[512];
    snprintf(path, sizeof path, "%s/cycles-%d.kvt",
             getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".", (int)getpid());
    unlink(path);
    printf("cycles: %ld open/close cycles of DRAM 32 x 8 KiB%s, %ld of warm-up, RSS slack %llu "
           "KiB%s\n",
           cycles, nvme ? " + NVMe 256 slots (recovered at each open)" : "", warmup,
           (unsigned long long)slack_kib, SANITIZED ? " (sanitizer build: RSS not checked)" : "");
    fflush(stdout);
    uint8_t *buf = malloc((size_t)NB * BLOCK), *want = malloc(BLOCK);
    int fd0 = count_fds(), fd_warm = -1, fd_max = fd0;
    uint64_t rss0 = rss_kib(), rss_warm = 0, rss_max = 0;
    double t0 = stress_seconds(), t_warm = 0;
    for (long n = 0; n < cycles; n++) {
        cycle(path, nvme, n, buf, want);
        int fds = count_fds();
        uint64_t rss = rss_kib();
        if (n + 1 == warmup) {
            fd_warm = fds;
            rss_warm = rss;
            t_warm = stress_seconds();
        } else if (n + 1 > warmup) {
            CHECK(fds == fd_warm, "cycle %ld: %d fds open, %d after warm-up: a leak", n, fds,
                  fd_warm);
            if (rss > rss_max)
                rss_max = rss;
        }
        if (fds > fd_max)
            fd_max = fds;
    }
    double t1 = stress_seconds();
    uint64_t rss_end = rss_kib();
    int fd_end = count_fds();
    printf("cycles: fds before %d, after warm-up %d, at the end %d (max %d); RSS before %llu KiB, "
           "after warm-up %llu KiB, at the end %llu KiB (max after warm-up %llu KiB, growth %+lld "
           "KiB); %.2f ms per cycle\n",
           fd0, fd_warm, fd_end, fd_max, (unsigned long long)rss0, (unsigned long long)rss_warm,
           (unsigned long long)rss_end, (unsigned long long)rss_max,
           (long long)rss_end - (long long)rss_warm, (t1 - t_warm) * 1e3 / (double)(cycles - warmup));
    (void)t0;
    CHECK(fd_end == fd_warm, "%d fds at the end, %d after warm-up", fd_end, fd_warm);
    CHECK(fd_end == fd0, "%d fds at the end, %d before the first open", fd_end, fd0);
    if (!SANITIZED) {
        CHECK(rss_end <= rss_warm + slack_kib, "RSS grew %llu KiB over %ld cycles (slack %llu)",
              (unsigned long long)(rss_end - rss_warm), cycles - warmup,
              (unsigned long long)slack_kib);
        CHECK(rss_max <= rss_warm + slack_kib, "RSS peaked %llu KiB above warm-up (slack %llu)",
              (unsigned long long)(rss_max - rss_warm), (unsigned long long)slack_kib);
    }
    unlink(path);
    free(buf);
    free(want);
    printf("1 passed, 0 failed\n");
    return 0;
}
