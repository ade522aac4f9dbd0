/* raw_cluster.c — a plain io_uring loop doing the cluster tier's file operations: the baseline `micro --tier cluster` measures the tier against. */
#include "raw_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define UNIT 4096u

uint64_t raw_cluster_file_bytes(uint64_t block_bytes)
{
    return UNIT + (block_bytes + UNIT - 1) / UNIT * UNIT;
}

/* "ab/cd/<32 hex>.kvb": the tier's name for a block (docs/cluster-format.md). */
static void rel_path(const kvt_key *key, char out[48])
{
    char hex[33];
    kvt_key_hex(key, hex);
    snprintf(out, 48, "%.2s/%.2s/%s.kvb", hex, hex + 2, hex);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void raw_cluster_image(uint8_t *image, uint64_t file_bytes, const kvt_key *key,
                       const void *payload, uint64_t block_bytes, uint32_t block_tokens,
                       uint32_t frags)
{
    /* The header's fields at the format's offsets; key mode 0 (XXH3-128). */
    memset(image, 0, UNIT);
    memcpy(image, "KVTCLUST", 8);
    put32(image + 8, 1);
    put32(image + 12, UNIT);
    put64(image + 16, block_bytes);
    put32(image + 24, block_tokens);
    put32(image + 28, frags);
    memcpy(image + 40, key->b, 16);
    put64(image + 56, block_bytes);
    put64(image + 64, XXH3_64bits(payload, block_bytes));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    put64(image + 88, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    put64(image + 120, XXH3_64bits(image, 120));
    memcpy(image + UNIT, payload, block_bytes);
    memset(image + UNIT + block_bytes, 0, file_bytes - UNIT - block_bytes);
}

int raw_cluster_writeback(const char *root, const kvt_key *keys, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char rel[48], path[PATH_MAX];
        rel_path(&keys[i], rel);
        snprintf(path, sizeof path, "%s/%s", root, rel);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        if (sync_file_range(fd, 0, 0,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER))
            rc = -errno;
        else
            rc = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    return rc;
}

#if KVT_BENCH_URING
#include <liburing.h>

enum { S_OPEN, S_MKDIR_TOP, S_MKDIR_LEAF, S_IO, S_CLOSE, S_PUBLISH, S_UNLINK_TMP };

/* One block's chain in flight. */
typedef struct op {
    size_t index;
    int stage, fd, err, mkdirs;
    uint64_t done;
    char rel[48], tmp[96], dir[8];
} op;

struct raw_cluster {
    struct io_uring ring;
    int root_fd;
    unsigned qd;
    int direct, noreplace;
    uint64_t file_bytes, seq;
    op *ops;
    unsigned *free_ops;
};

int raw_cluster_new(const char *root, unsigned qd, int direct, int noreplace,
                    uint64_t file_bytes, raw_cluster **out)
{
    *out = NULL;
    if (qd < 1 || qd > 4096 || !file_bytes || file_bytes % UNIT)
        return -EINVAL;
    raw_cluster *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->qd = qd;
    r->direct = direct;
    r->noreplace = noreplace;
    r->file_bytes = file_bytes;
    r->ops = calloc(qd, sizeof *r->ops);
    r->free_ops = calloc(qd, sizeof *r->free_ops);
    r->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = !r->ops || !r->free_ops ? -ENOMEM : r->root_fd < 0 ? -errno : 0;
    if (!rc) {
        /* Set up as the tier's rings are (COOP_TASKRUN), so that a
         * difference is the tier's own work, not a ring flag. */
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_COOP_TASKRUN;
        rc = io_uring_queue_init_params(qd, &r->ring, &p);
        if (rc == -EINVAL) {
            memset(&p, 0, sizeof p);
            rc = io_uring_queue_init_params(qd, &r->ring, &p);
        }
    }
    if (rc) {
        if (r->root_fd >= 0)
            close(r->root_fd);
        free(r->ops);
        free(r->free_ops);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void raw_cluster_free(raw_cluster *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);
    close(r->root_fd);
    free(r->ops);
    free(r->free_ops);
    free(r);
}

typedef struct batch {
    raw_cluster *r;
    int write;
    const kvt_key *keys;
    uint8_t *const *images;
} batch;

static void prep(const batch *b, op *o, struct io_uring_sqe *sqe)
{
    raw_cluster *r = b->r;
    int oflags = O_CLOEXEC | O_NOFOLLOW | (r->direct ? O_DIRECT : 0);
    switch (o->stage) {
    case S_OPEN:
        if (b->write)
            io_uring_prep_openat(sqe, r->root_fd, o->tmp, oflags | O_WRONLY | O_CREAT | O_EXCL,
                                 0600);
        else
            io_uring_prep_openat(sqe, r->root_fd, o->rel, oflags | O_RDONLY, 0);
        break;
    case S_MKDIR_TOP:
        o->dir[2] = '\0';
        io_uring_prep_mkdirat(sqe, r->root_fd, o->dir, 0700);
        break;
    case S_MKDIR_LEAF:
        o->dir[2] = '/';
        io_uring_prep_mkdirat(sqe, r->root_fd, o->dir, 0700);
        break;
    case S_IO:
        if (b->write)
            io_uring_prep_write(sqe, o->fd, b->images[o->index] + o->done,
                                (unsigned)(r->file_bytes - o->done), o->done);
        else
            io_uring_prep_read(sqe, o->fd, b->images[o->index] + o->done,
                               (unsigned)(r->file_bytes - o->done), o->done);
        break;
    case S_CLOSE:
        io_uring_prep_close(sqe, o->fd);
        break;
    case S_PUBLISH:
        if (r->noreplace)
            io_uring_prep_renameat(sqe, r->root_fd, o->tmp, r->root_fd, o->rel,
                                   RENAME_NOREPLACE);
        else
            io_uring_prep_linkat(sqe, r->root_fd, o->tmp, r->root_fd, o->rel, 0);
        break;
    case S_UNLINK_TMP:
        io_uring_prep_unlinkat(sqe, r->root_fd, o->tmp, 0);
        break;
    }
}

/* Takes a completion; returns 1 when the block's chain is finished. */
static int complete(const batch *b, op *o, int res)
{
    raw_cluster *r = b->r;
    switch (o->stage) {
    case S_OPEN:
        if (res >= 0) {
            o->fd = res;
            o->stage = S_IO;
            return 0;
        }
        if (res == -ENOENT && b->write && o->mkdirs++ < 2) {
            o->stage = S_MKDIR_TOP; /* fan-out directories are made on first use */
            return 0;
        }
        o->err = res;
        return 1;
    case S_MKDIR_TOP:
    case S_MKDIR_LEAF:
        if (res < 0 && res != -EEXIST) {
            o->err = res;
            return 1;
        }
        o->stage = o->stage == S_MKDIR_TOP ? S_MKDIR_LEAF : S_OPEN;
        return 0;
    case S_IO:
        if (res <= 0) {
            o->err = res ? res : -EIO;
            o->stage = S_CLOSE;
            return 0;
        }
        o->done += (uint64_t)res;
        if (o->done < r->file_bytes)
            return 0; /* a short transfer: the rest */
        o->stage = S_CLOSE;
        return 0;
    case S_CLOSE:
        o->fd = -1;
        if (res < 0 && !o->err)
            o->err = res;
        if (!b->write)
            return 1;
        o->stage = o->err ? S_UNLINK_TMP : S_PUBLISH;
        return 0;
    case S_PUBLISH:
        if (res < 0) {
            o->err = res;
            o->stage = S_UNLINK_TMP;
            return 0;
        }
        if (r->noreplace)
            return 1;
        o->stage = S_UNLINK_TMP;
        return 0;
    default:
        return 1;
    }
}

static int run(raw_cluster *r, int write, const kvt_key *keys, size_t n, uint8_t *const *images)
{
    batch b = {r, write, keys, images};
    unsigned nfree = 0;
    for (unsigned i = 0; i < r->qd; i++)
        r->free_ops[nfree++] = i;
    size_t next = 0;
    unsigned inflight = 0;
    int err = 0;
    while (next < n || inflight) {
        while (next < n && nfree) {
            op *o = &r->ops[r->free_ops[--nfree]];
            memset(o, 0, sizeof *o);
            o->index = next;
            o->fd = -1;
            rel_path(&keys[next], o->rel);
            if (write) {
                char hex[33];
                kvt_key_hex(&keys[next], hex);
                memcpy(o->dir, o->rel, 5);
                snprintf(o->tmp, sizeof o->tmp, "%.5s/.tmp.%s.raw.%llu", o->rel, hex,
                         (unsigned long long)r->seq++);
            }
            next++;
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
            prep(&b, o, sqe);
            io_uring_sqe_set_data(sqe, o);
            inflight++;
        }
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait(&r->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
            return rc; /* the ring itself failed: its ops are lost, as is the loop */
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&r->ring, head, cqe) {
            op *o = io_uring_cqe_get_data(cqe);
            seen++;
            if (complete(&b, o, cqe->res)) {
                if (o->err && !err)
                    err = o->err;
                r->free_ops[nfree++] = (unsigned)(o - r->ops);
                inflight--;
            } else {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
                prep(&b, o, sqe);
                io_uring_sqe_set_data(sqe, o);
            }
        }
        io_uring_cq_advance(&r->ring, seen);
    }
    return err;
}

int raw_cluster_put(raw_cluster *r, const kvt_key *keys, size_t n, uint8_t *const *images)
{
    return run(r, 1, keys, n, images);
}

int raw_cluster_get(raw_cluster *r, const kvt_key *keys, size_t n, uint8_t *const *images)
{
    return run(r, 0, keys, n, images);
}

int raw_cluster_unlink(raw_cluster *r, const kvt_key *keys, size_t n)
{
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        char rel[48];
        rel_path(&keys[i], rel);
        if (unlinkat(r->root_fd, rel, 0) && errno != ENOENT && !err)
            err = -errno;
    }
    return err;
}

#else /* built without liburing: the baseline is unavailable, like the tier */

int raw_cluster_new(const char *root, unsigned qd, int direct, int noreplace,
                    uint64_t file_bytes, raw_cluster **out)
{
    (void)root, (void)qd, (void)direct, (void)noreplace, (void)file_bytes;
    *out = NULL;
    return -ENOSYS;
}
void raw_cluster_free(raw_cluster *r)
{
    (void)r;
}
int raw_cluster_put(raw_cluster *r, const kvt_key *keys, size_t n, uint8_t *const *images)
{
    (void)r, (void)keys, (void)n, (void)images;
    return -ENOSYS;
}
int raw_cluster_get(raw_cluster *r, const kvt_key *keys, size_t n, uint8_t *const *images)
{
    (void)r, (void)keys, (void)n, (void)images;
    return -ENOSYS;
}
int raw_cluster_unlink(raw_cluster *r, const kvt_key *keys, size_t n)
{
    (void)r, (void)keys, (void)n;
    return -ENOSYS;
}

#endif
