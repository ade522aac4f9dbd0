/* ring.c — the cluster engine's batch runner: many blocks in flight on one io_uring, every call bounded by a deadline. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "tier/cluster/internal.h"

/*
 * A call checks a "lane" (a ring, its ops and, for reads and writes, one
 * file image per op) out of the engine's pool, drives its whole batch on it
 * and gives it back: the thread that submits reaps its own completions and
 * calls from different threads run on different rings. Every block is a
 * short chain of stages (open, read or write, close, publish...), each one
 * SQE; an op has at most one SQE in flight, so a ring of qd entries never
 * runs out of SQEs.
 *
 * Deadline: the wait for completions is bounded by what is left of the
 * open's timeout. When it passes, the outstanding blocks get KVT_ETIMEDOUT
 * and the lane is abandoned: the kernel may still complete its operations
 * into the lane's buffers (a hung FUSE mount answers when it answers), so
 * neither the ring nor its memory is ever reused or freed. Leaking a few MiB
 * per hang is the price of never hanging the caller and never handing out
 * memory the kernel may still write.
 */

#define LANE_BUFFER_BUDGET (64ull << 20) /* file images per lane, in bytes */
#define HUGE_PAGE ((size_t)2 << 20)

struct cl_lane {
    struct io_uring ring;
    uint32_t nops;
    cl_op *ops;
    uint8_t *images;   /* nops * file_bytes, CL_UNIT-aligned; NULL until a call needs them */
    uint32_t *free_ops;
    cl_lane *next;
};

static void lane_destroy(cl_lane *l)
{
    if (!l)
        return;
    io_uring_queue_exit(&l->ring);
    free(l->images);
    free(l->ops);
    free(l->free_ops);
    free(l);
}

static cl_lane *lane_create(kvt_cluster *c)
{
    cl_lane *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    uint64_t by_memory = LANE_BUFFER_BUDGET / c->file_bytes;
    l->nops = c->qd;
    if (by_memory < l->nops)
        l->nops = by_memory ? (uint32_t)by_memory : 1;
    l->ops = calloc(l->nops, sizeof *l->ops);
    l->free_ops = calloc(l->nops, sizeof *l->free_ops);
    if (!l->ops || !l->free_ops) {
        free(l->ops);
        free(l->free_ops);
        free(l);
        return NULL;
    }
    struct io_uring_params up;
    memset(&up, 0, sizeof up);
    up.flags = IORING_SETUP_COOP_TASKRUN; /* no IPIs: this thread reaps its own completions */
    int rc = io_uring_queue_init_params(l->nops, &l->ring, &up);
    if (rc == -EINVAL) {
        memset(&up, 0, sizeof up);
        rc = io_uring_queue_init_params(l->nops, &l->ring, &up);
    }
    if (rc < 0) {
        free(l->ops);
        free(l->free_ops);
        free(l);
        return NULL;
    }
    return l;
}

/* Lanes abandoned after a timeout, kept reachable on purpose: their memory
 * may still be written by the kernel, so it is never freed (and a leak
 * checker sees it as held, which it is). */
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static cl_lane *abandoned;

static void lane_abandon(cl_lane *l)
{
    pthread_mutex_lock(&abandoned_mu);
    l->next = abandoned;
    abandoned = l;
    pthread_mutex_unlock(&abandoned_mu);
}

static cl_lane *lane_get(kvt_cluster *c, bool buffers)
{
    pthread_mutex_lock(&c->lanes_mu);
    cl_lane *l = c->free_lanes;
    if (l)
        c->free_lanes = l->next;
    pthread_mutex_unlock(&c->lanes_mu);
    if (!l && !(l = lane_create(c)))
        return NULL;
    if (buffers && !l->images) {
        /* Huge pages for images of 2 MiB or more: on small pages the copies
         * into and out of them, and the kernel's pinning of them for direct
         * I/O, ran the raw loop (same operations) at about half speed. */
        const size_t bytes = (size_t)l->nops * c->file_bytes;
        const size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : CL_UNIT;
        void *p = NULL;
        if (posix_memalign(&p, align, bytes)) {
            pthread_mutex_lock(&c->lanes_mu);
            l->next = c->free_lanes;
            c->free_lanes = l;
            pthread_mutex_unlock(&c->lanes_mu);
            return NULL;
        }
        if (align == HUGE_PAGE)
            madvise(p, bytes, MADV_HUGEPAGE);
        l->images = p;
    }
    return l;
}

static void lane_put(kvt_cluster *c, cl_lane *l)
{
    pthread_mutex_lock(&c->lanes_mu);
    l->next = c->free_lanes;
    c->free_lanes = l;
    pthread_mutex_unlock(&c->lanes_mu);
}

void cl_lanes_free(kvt_cluster *c)
{
    cl_lane *l = c->free_lanes;
    while (l) {
        cl_lane *next = l->next;
        lane_destroy(l);
        l = next;
    }
    c->free_lanes = NULL;
}

static struct io_uring_sqe *sqe_for(cl_lane *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (!sqe) { /* cannot happen with one SQE per op, but never spin on it */
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

/* Test hook (cl_params' hang): the op's first SQE is a timer of an hour,
 * standing in for a filesystem that never answers. */
static const struct __kernel_timespec an_hour = {.tv_sec = 3600};

int cl_run(kvt_cluster *c, const cl_kind *kind, kvt_cluster_io *io, size_t n)
{
    if (!n)
        return 0;
    cl_lane *l = lane_get(c, kind->needs_buffers);
    if (!l) {
        for (size_t i = 0; i < n; i++)
            io[i].status = KVT_ENOMEM;
        return kvt__err(KVT_ENOMEM, "cluster: no memory for an io_uring lane");
    }
    uint32_t nfree = 0;
    for (uint32_t i = 0; i < l->nops; i++) {
        l->ops[i].buf = l->images ? l->images + (size_t)i * c->file_bytes : NULL;
        l->free_ops[nfree++] = i;
    }
    uint64_t timeout_ns = (uint64_t)c->p.timeout_ms * 1000000ull;
    uint64_t deadline = kvt__monotonic_ns() + timeout_ns;
    size_t next = 0;
    uint32_t inflight = 0;
    bool stop = false; /* stop_at_miss, and a block was not held */
    while ((next < n && !stop) || inflight) {
        /* One block begun per turn (its copy and checksum), submitted at
         * once, then whatever completed is moved on without waiting: the
         * blocks already in flight do their I/O while the next one is
         * prepared, instead of all of a batch's preparation coming first. */
        bool began = false;
        if (next < n && nfree && !stop) {
            cl_op *op = &l->ops[l->free_ops[--nfree]];
            uint8_t *buf = op->buf;
            memset(op, 0, offsetof(cl_op, stx));
            op->buf = buf;
            op->io = &io[next++];
            op->fd = -1;
            if (kind->begin)
                kind->begin(c, op);
            if (op->stage < 0) { /* finished before any I/O */
                op->io->status = op->status;
                stop |= kind->stop_at_miss && op->status != 0;
                l->free_ops[nfree++] = (uint32_t)(op - l->ops);
                continue;
            }
            struct io_uring_sqe *sqe = sqe_for(l);
            if (c->p.hang_for_tests)
                io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&an_hour, 0, 0);
            else
                kind->prep(c, op, sqe);
            io_uring_sqe_set_data(sqe, op);
            inflight++;
            began = true;
        }
        io_uring_submit(&l->ring);
        if (!inflight)
            continue;
        struct io_uring_cqe *cqe;
        int rc;
        if (began && next < n && nfree && !stop) {
            rc = io_uring_peek_cqe(&l->ring, &cqe); /* more to begin: never wait here */
            if (rc == -EAGAIN)
                continue;
        } else {
            uint64_t now = kvt__monotonic_ns();
            if (now >= deadline)
                goto timed_out;
            struct __kernel_timespec left = {
                .tv_sec = (long long)((deadline - now) / 1000000000ull),
                .tv_nsec = (long long)((deadline - now) % 1000000000ull)};
            rc = io_uring_wait_cqe_timeout(&l->ring, &cqe, &left);
        }
        if (rc == -ETIME || rc == -EINTR)
            continue;
        if (rc < 0)
            goto timed_out; /* the ring itself failed: treat its ops as lost, like a hang */
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe) {
            cl_op *op = io_uring_cqe_get_data(cqe);
            int res = cqe->res;
            seen++;
            if (kind->complete(c, op, res)) {
                op->io->status = op->status;
                stop |= kind->stop_at_miss && op->status != 0;
                l->free_ops[nfree++] = (uint32_t)(op - l->ops);
                inflight--;
            } else {
                struct io_uring_sqe *sqe = sqe_for(l);
                kind->prep(c, op, sqe);
                io_uring_sqe_set_data(sqe, op);
            }
        }
        io_uring_cq_advance(&l->ring, seen);
    }
    lane_put(c, l);
    for (size_t i = next; i < n; i++)
        io[i].status = CL_NOT_BEGUN; /* after a miss of a stop_at_miss kind */
    return 0;

timed_out:
    for (uint32_t i = 0; i < l->nops; i++) {
        bool busy = true;
        for (uint32_t j = 0; j < nfree; j++)
            if (l->free_ops[j] == i)
                busy = false;
        if (busy)
            l->ops[i].io->status = KVT_ETIMEDOUT;
    }
    for (size_t i = next; i < n; i++)
        io[i].status = KVT_ETIMEDOUT;
    CL_ADD(c, timeouts, 1);
    CL_ADD(c, abandoned_rings, 1);
    lane_abandon(l); /* never put back nor freed (see the top) */
    return kvt__err(KVT_ETIMEDOUT,
                    "cluster: %s did not answer within %u ms (%u operations outstanding)",
                    c->root, c->p.timeout_ms, inflight);
}
