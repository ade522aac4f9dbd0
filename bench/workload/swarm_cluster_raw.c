/* swarm_cluster_raw.c — the cluster tier's raw path: its own block files read back with plain open/read/close, to set kvtier's cluster gets against (the efficiency the TTFT model divides by). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../bench.h"
#include "swarm_run.h"

#define RAW_FILES 256

/* nftw has no user pointer: the walk's state lives here for one call. */
static struct {
    char (*paths)[4096];
    size_t n;
    uint64_t largest;
} walk;

static int collect(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    const char *base = path + f->base;
    if (flag != FTW_F || !S_ISREG(st->st_mode) || base[0] == '.' || st->st_size <= 0)
        return 0; /* directories, temporary files (".tmp.*"), probes */
    snprintf(walk.paths[walk.n], sizeof walk.paths[0], "%s", path);
    if ((uint64_t)st->st_size > walk.largest)
        walk.largest = (uint64_t)st->st_size;
    return ++walk.n == RAW_FILES;
}

/* One file read whole, O_DIRECT where the filesystem takes it (as the tier
 * reads), else buffered. Returns 0 or -errno. */
static int read_whole(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0 && errno == EINVAL)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0;;) {
        ssize_t got = pread(fd, buf + off, cap - off, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            break;
        }
        if (got == 0 || (off += (size_t)got) == cap)
            break;
    }
    close(fd);
    return rc;
}

void swarm_cluster_raw(const char *dir, uint64_t block_bytes, uint64_t lib_bytes, uint64_t lib_ns,
                       swarm_result *r)
{
    const double lib = swarm_gbps(lib_bytes, lib_ns);
    r->cluster_lib_vs_raw = 0;
    if (!(lib > 0)) {
        snprintf(r->cluster_raw_src, sizeof r->cluster_raw_src,
                 "no cluster gets to compare with raw reads");
        return;
    }
    walk.paths = malloc(RAW_FILES * sizeof *walk.paths);
    walk.n = 0;
    walk.largest = 0;
    if (!walk.paths || nftw(dir, collect, 16, FTW_PHYS) < 0 || !walk.n) {
        snprintf(r->cluster_raw_src, sizeof r->cluster_raw_src,
                 "the tier's files could not be listed for a raw read");
        free(walk.paths);
        return;
    }
    size_t cap = (size_t)(walk.largest + 4095) / 4096 * 4096;
    char *buf = aligned_alloc(4096, cap);
    int rc = buf ? 0 : -ENOMEM;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < walk.n && !rc; i++)
        rc = read_whole(walk.paths[i], buf, cap);
    uint64_t ns = bench_now_ns() - t0;
    free(buf);
    free(walk.paths);
    if (rc || !ns) {
        snprintf(r->cluster_raw_src, sizeof r->cluster_raw_src,
                 "the raw read of the tier's files failed (%s)", strerror(rc ? -rc : EIO));
        return;
    }
    /* Payload bytes per second on both sides (each reads whole files). */
    const double raw = swarm_gbps((uint64_t)walk.n * block_bytes, ns);
    r->cluster_raw_gbps = raw;
    r->cluster_lib_vs_raw = lib / raw;
    snprintf(r->cluster_raw_src, sizeof r->cluster_raw_src,
             "measured in this run: kvt_get from the cluster tier %.3g GB/s / %zu of its files "
             "read raw, one at a time, %.3g GB/s%s",
             lib, walk.n, raw, lib > raw ? " (above 1: taken as 1)" : "");
}
