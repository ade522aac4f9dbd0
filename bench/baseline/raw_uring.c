/* raw_uring.c — a plain liburing O_DIRECT read/write loop: the baseline the NVMe tier is measured against. */
#include "raw_uring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if KVT_BENCH_URING
#include <liburing.h>

#define REG_CHUNK (1ull << 30) /* io_uring's limit for one registered buffer */
#define MAX_RESUBMITS 16

/* A transfer in flight: which one, and how far it got. */
typedef struct tag {
    size_t index;
    uint32_t done;
    uint32_t resubmits;
} tag;

struct raw_uring {
    struct io_uring ring;
    unsigned qd;
    int file;          /* fixed-file index 0, or the fd */
    uint8_t sqe_flags; /* IOSQE_FIXED_FILE or 0 */
    struct iovec *reg; /* the registered table, in chunks */
    unsigned nreg;
    tag *tags;
    unsigned *free_tags;
    uint64_t fixed, resubmits;
    int ring_ok;
};

int raw_uring_new(int fd, unsigned qd, const struct iovec *regs, unsigned nregs,
                  raw_uring **out)
{
    *out = NULL;
    if (fd < 0 || qd < 1 || qd > 4096 || (nregs && !regs))
        return -EINVAL;
    raw_uring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->qd = qd;
    r->tags = calloc(qd, sizeof *r->tags);
    r->free_tags = calloc(qd, sizeof *r->free_tags);
    size_t nchunks = 0;
    for (unsigned i = 0; i < nregs; i++)
        nchunks += (regs[i].iov_len + REG_CHUNK - 1) / REG_CHUNK;
    r->reg = nchunks ? calloc(nchunks, sizeof *r->reg) : NULL;
    if (!r->tags || !r->free_tags || (nchunks && !r->reg)) {
        raw_uring_free(r);
        return -ENOMEM;
    }
    /* The tier's ring setup, down to the plainest the kernel takes. */
    struct io_uring_params p;
    int rc = -EINVAL;
    for (int coop = 1; coop >= 0 && rc; coop--) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | (coop ? IORING_SETUP_COOP_TASKRUN : 0);
        p.cq_entries = 2 * qd;
        rc = io_uring_queue_init_params(qd, &r->ring, &p);
    }
    if (rc) {
        free(r->tags);
        free(r->free_tags);
        free(r->reg);
        free(r);
        return rc;
    }
    r->ring_ok = 1;
    r->file = fd;
    if (io_uring_register_files(&r->ring, &fd, 1) == 0) {
        r->file = 0;
        r->sqe_flags = IOSQE_FIXED_FILE;
    }
    for (unsigned i = 0; i < nregs; i++)
        for (size_t at = 0; at < regs[i].iov_len; at += REG_CHUNK) {
            size_t left = regs[i].iov_len - at;
            r->reg[r->nreg].iov_base = (char *)regs[i].iov_base + at;
            r->reg[r->nreg].iov_len = left < REG_CHUNK ? left : REG_CHUNK;
            r->nreg++;
        }
    if (r->nreg && (rc = io_uring_register_buffers(&r->ring, r->reg, r->nreg)) != 0) {
        raw_uring_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void raw_uring_free(raw_uring *r)
{
    if (!r)
        return;
    if (r->ring_ok)
        io_uring_queue_exit(&r->ring);
    free(r->tags);
    free(r->free_tags);
    free(r->reg);
    free(r);
}

/* The registered buffer holding [p, p + len), or -1. */
static int reg_index(const raw_uring *r, const uint8_t *p, uint64_t len)
{
    for (unsigned i = 0; i < r->nreg; i++) {
        const uint8_t *b = r->reg[i].iov_base;
        if (p >= b && p + len <= b + r->reg[i].iov_len)
            return (int)i;
    }
    return -1;
}

static void prep(raw_uring *r, int write, const raw_io *io, unsigned t)
{
    const tag *g = &r->tags[t];
    uint8_t *mem = (uint8_t *)io->buf + g->done;
    uint32_t len = io->len - g->done;
    uint64_t off = io->off + g->done;
    int idx = reg_index(r, mem, len);
    /* Never NULL: at most qd transfers are in flight on a qd-entry SQ. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (idx >= 0) {
        if (write)
            io_uring_prep_write_fixed(sqe, r->file, mem, len, off, idx);
        else
            io_uring_prep_read_fixed(sqe, r->file, mem, len, off, idx);
        r->fixed++;
    } else if (write) {
        io_uring_prep_write(sqe, r->file, mem, len, off);
    } else {
        io_uring_prep_read(sqe, r->file, mem, len, off);
    }
    sqe->flags |= r->sqe_flags;
    io_uring_sqe_set_data(sqe, (void *)(uintptr_t)t);
}

int raw_uring_run(raw_uring *r, int write, const raw_io *ios, size_t n)
{
    return raw_uring_run_cb(r, write, ios, n, NULL, NULL, NULL);
}

int raw_uring_run_cb(raw_uring *r, int write, const raw_io *ios, size_t n,
                     void (*before)(void *user, size_t index),
                     void (*done)(void *user, size_t index), void *user)
{
    size_t next = 0, finished = 0;
    unsigned inflight = 0, nfree = r->qd;
    int err = 0;
    for (unsigned t = 0; t < r->qd; t++)
        r->free_tags[t] = r->qd - 1 - t;
    while (finished < n) {
        while (nfree && next < n && !err) {
            unsigned t = r->free_tags[--nfree];
            if (before)
                before(user, next);
            r->tags[t] = (tag){.index = next++};
            prep(r, write, &ios[r->tags[t].index], t);
            inflight++;
        }
        if (!inflight)
            break; /* an error stopped new work and the rest has drained */
        int rc = io_uring_submit_and_wait(&r->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            return rc;
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&r->ring, head, cqe)
        {
            seen++;
            unsigned t = (unsigned)(uintptr_t)io_uring_cqe_get_data(cqe);
            tag *g = &r->tags[t];
            const raw_io *io = &ios[g->index];
            int res = cqe->res;
            int again = (res == -EAGAIN || res == -EINTR) ||
                        (res > 0 && g->done + (uint32_t)res < io->len);
            if (res > 0)
                g->done += (uint32_t)res;
            if (again && g->resubmits < MAX_RESUBMITS && !err) {
                g->resubmits++;
                r->resubmits++;
                prep(r, write, io, t); /* stays in flight */
                continue;
            }
            if (!err && g->done < io->len)
                err = res < 0 ? res : -EIO;
            else if (done && g->done == io->len)
                done(user, g->index);
            inflight--;
            finished++;
            r->free_tags[nfree++] = t;
        }
        io_uring_cq_advance(&r->ring, seen);
    }
    return err;
}

void raw_uring_submit(raw_uring *r)
{
    if (io_uring_sq_ready(&r->ring))
        io_uring_submit(&r->ring);
}

uint64_t raw_uring_fixed(const raw_uring *r)
{
    return r->fixed;
}

uint64_t raw_uring_resubmits(const raw_uring *r)
{
    return r->resubmits;
}

int raw_uring_open_file(const char *path, uint64_t bytes)
{
    int fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (bytes && fallocate(fd, 0, 0, (off_t)bytes) != 0 && ftruncate(fd, (off_t)bytes) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

#else /* built without liburing: the baseline is unavailable, like the tier */

int raw_uring_new(int fd, unsigned qd, const struct iovec *regs, unsigned nregs,
                  raw_uring **out)
{
    (void)fd, (void)qd, (void)regs, (void)nregs;
    *out = NULL;
    return -ENOSYS;
}
void raw_uring_free(raw_uring *r)
{
    (void)r;
}
int raw_uring_run(raw_uring *r, int write, const raw_io *ios, size_t n)
{
    (void)r, (void)write, (void)ios, (void)n;
    return -ENOSYS;
}
int raw_uring_run_cb(raw_uring *r, int write, const raw_io *ios, size_t n,
                     void (*before)(void *user, size_t index),
                     void (*done)(void *user, size_t index), void *user)
{
    (void)before, (void)r, (void)write, (void)ios, (void)n, (void)done, (void)user;
    return -ENOSYS;
}
void raw_uring_submit(raw_uring *r)
{
    (void)r;
}
uint64_t raw_uring_fixed(const raw_uring *r)
{
    (void)r;
    return 0;
}
uint64_t raw_uring_resubmits(const raw_uring *r)
{
    (void)r;
    return 0;
}
int raw_uring_open_file(const char *path, uint64_t bytes)
{
    (void)path, (void)bytes;
    return -ENOSYS;
}
#endif
