/* anchor_files.c — the anchors' disk tier: one file per block, buffered pwrite/pread from a thread pool. */
#include "anchor_files.h"

#include "../bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * A fixed pool fed from a shared counter, like a ThreadPoolExecutor with
 * one task per block: a worker that finishes takes the next block, so a
 * slow file does not hold a whole share back. The caller only waits.
 */
struct anchor_pool {
    bench_crew *crew;
    /* the batch */
    anchor_op op;
    const char *dir;
    const kvt_key *keys;
    void *const *bufs;
    size_t n, len;
    atomic_size_t next;
    atomic_int err;
};

static void block_path(const char *dir, const kvt_key *key, char *out, size_t cap)
{
    char hex[33];
    kvt_key_hex(key, hex);
    snprintf(out, cap, "%s/%s.kv", dir, hex);
}

/* Whole-buffer pread/pwrite: a regular file may return short counts. */
static int full_io(int fd, int write, char *buf, size_t len)
{
    size_t at = 0;
    while (at < len) {
        ssize_t k = write ? pwrite(fd, buf + at, len - at, (off_t)at)
                          : pread(fd, buf + at, len - at, (off_t)at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -EIO;
        at += (size_t)k;
    }
    return 0;
}

static int one_block(const anchor_pool *p, size_t i)
{
    char path[PATH_MAX];
    block_path(p->dir, &p->keys[i], path, sizeof path);
    int fd, rc = 0;
    switch (p->op) {
    case ANCHOR_PUT:
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        rc = full_io(fd, 1, p->bufs[i], p->len);
        break;
    case ANCHOR_GET:
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        rc = full_io(fd, 0, p->bufs[i], p->len);
        break;
    case ANCHOR_WRITEBACK:
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        if (sync_file_range(fd, 0, 0,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER))
            rc = -errno;
        else
            rc = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        break;
    case ANCHOR_UNLINK:
        return unlink(path) && errno != ENOENT ? -errno : 0;
    default:
        return -EINVAL;
    }
    if (close(fd) && !rc)
        rc = -errno;
    return rc;
}

/* One worker's part of a batch: blocks in order, until none is left. */
static void worker(void *arg)
{
    anchor_pool *p = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            return;
        int rc = one_block(p, i);
        if (rc) {
            int zero = 0;
            atomic_compare_exchange_strong(&p->err, &zero, rc);
        }
    }
}

anchor_pool *anchor_pool_new(unsigned nthreads)
{
    if (nthreads < 1 || nthreads > 256)
        return NULL;
    anchor_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (!(p->crew = bench_crew_new(nthreads))) {
        free(p);
        return NULL;
    }
    return p;
}

void anchor_pool_free(anchor_pool *p)
{
    if (!p)
        return;
    bench_crew_free(p->crew);
    free(p);
}

int anchor_run(anchor_pool *p, anchor_op op, const char *dir, const kvt_key *keys, size_t n,
               void *const *bufs, size_t len)
{
    if (!n)
        return 0;
    p->op = op;
    p->dir = dir;
    p->keys = keys;
    p->bufs = bufs;
    p->n = n;
    p->len = len;
    atomic_store(&p->next, 0);
    atomic_store(&p->err, 0);
    bench_crew_start(p->crew, worker, p);
    bench_crew_wait(p->crew);
    return atomic_load(&p->err);
}

int64_t anchor_resident_pages(const char *dir, const kvt_key *keys, size_t n, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
    unsigned char *vec = malloc(pages ? pages : 1);
    if (!vec)
        return -ENOMEM;
    int64_t resident = 0;
    for (size_t i = 0; i < n && resident >= 0; i++) {
        char path[PATH_MAX];
        block_path(dir, &keys[i], path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            resident = -errno;
            break;
        }
        /* Mapping a file does not read it; mincore() only looks. */
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED || mincore(m, len, vec)) {
            resident = -errno;
        } else {
            for (size_t k = 0; k < pages; k++)
                resident += vec[k] & 1;
        }
        if (m != MAP_FAILED)
            munmap(m, len);
        close(fd);
    }
    free(vec);
    return resident;
}
