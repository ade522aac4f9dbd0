/* ring.c — the cluster engine's batch runner: many blocks in flight on one io_uring, every call bounded by a deadline. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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
    /* Parked ops (cl_park): a verifier pushes each one it finished on
     * `parked_done` and writes `efd`, on which the ring has a poll armed
     * while any op is parked. */
    int efd;
    _Atomic(cl_op *) parked_done;
    uint32_t parked;
    bool poll_armed;
};

/* The user data of a lane's eventfd poll (no op has this address). */
static char efd_poll_marker;

static void lane_destroy(cl_lane *l)
{
    if (!l)
        return;
    io_uring_queue_exit(&l->ring);
    if (l->efd >= 0)
        close(l->efd);
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
    l->efd = c->verifiers ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    uint64_t by_memory = LANE_BUFFER_BUDGET / c->file_bytes;
    l->nops = c->qd;
    if (by_memory < l->nops)
        l->nops = by_memory ? (uint32_t)by_memory : 1;
    l->ops = calloc(l->nops, sizeof *l->ops);
    l->free_ops = calloc(l->nops, sizeof *l->free_ops);
    if (!l->ops || !l->free_ops) {
        if (l->efd >= 0)
            close(l->efd);
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
        if (l->efd >= 0)
            close(l->efd);
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

/* ------------------------------------------------------ off-ring work */

static void park_main(kvt__job *job)
{
    cl_op *op = (cl_op *)((char *)job - offsetof(cl_op, job));
    cl_lane *l = op->lane;
    op->cpu_fn(op->cluster, op);
    atomic_store_explicit(&op->cpu_done, true, memory_order_release);
    /* The push hands op back: the ring's thread may reuse it at once, so
     * nothing of op is touched after it. */
    cl_op *head = atomic_load_explicit(&l->parked_done, memory_order_relaxed);
    do
        op->cpu_next = head;
    while (!atomic_compare_exchange_weak_explicit(&l->parked_done, &head, op,
                                                  memory_order_release, memory_order_relaxed));
    uint64_t one = 1; /* l outlives this job: lanes are freed at close, or never */
    while (write(l->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

bool cl_can_park(const kvt_cluster *c, const cl_op *op)
{
    return c->verifiers && op->lane->efd >= 0;
}

void cl_park(kvt_cluster *c, cl_op *op, void (*fn)(kvt_cluster *c, cl_op *op))
{
    op->job.fn = park_main;
    op->cpu_fn = fn;
    op->cluster = c;
    atomic_store_explicit(&op->cpu_done, false, memory_order_relaxed);
    op->lane->parked++;
    /* Refused only while the pool stops (a call racing the close): then
     * this thread does the work, and the poll brings the op back all the
     * same. */
    if (kvt__executor_submit(c->verifiers, &op->job, NULL))
        park_main(&op->job);
}

/* Arms the poll that wakes the ring's thread when a parked op is done. */
static void arm_poll(cl_lane *l)
{
    if (l->poll_armed || !l->parked)
        return;
    struct io_uring_sqe *sqe = sqe_for(l);
    io_uring_prep_poll_add(sqe, l->efd, POLLIN);
    io_uring_sqe_set_data(sqe, &efd_poll_marker);
    l->poll_armed = true;
}

/* Takes every op a verifier finished off the lane's list. */
static cl_op *take_parked(cl_lane *l)
{
    uint64_t drained;
    while (read(l->efd, &drained, sizeof drained) < 0 && errno == EINTR)
        ;
    return atomic_exchange_explicit(&l->parked_done, NULL, memory_order_acquire);
}

/* Before a lane is abandoned: a parked op's verifier writes caller memory,
 * so none may still run when the call returns. A job not started is taken
 * back; one running is waited for (CPU work, bounded). */
static void settle_parked(kvt_cluster *c, cl_lane *l)
{
    for (uint32_t i = 0; i < l->nops; i++) {
        cl_op *op = &l->ops[i];
        if (!op->cpu_fn || atomic_load_explicit(&op->cpu_done, memory_order_acquire))
            continue;
        if (!kvt__jobpool_cancel(c->verifiers, &op->job))
            while (!atomic_load_explicit(&op->cpu_done, memory_order_acquire))
                sched_yield();
    }
}

/* Test hook (cl_params' hang): the op's first SQE is a timer of an hour,
 * standing in for a filesystem that never answers. */
static const struct __kernel_timespec an_hour = {.tv_sec = 3600};

/* What a call's loop keeps. */
typedef struct run_state {
    kvt_cluster *c;
    const cl_kind *kind;
    cl_lane *l;
    uint32_t nfree, inflight;
    bool stop; /* stop_at_miss, and a block was not held */
} run_state;

/* Acts on complete()'s answer for op: finished, next stage, or parked. */
static void moved_on(run_state *r, cl_op *op, int verdict)
{
    if (verdict == CL_DONE) {
        op->io->status = op->status;
        r->stop |= r->kind->stop_at_miss && op->status != 0;
        r->l->free_ops[r->nfree++] = (uint32_t)(op - r->l->ops);
        r->inflight--;
    } else if (verdict == CL_NEXT) {
        struct io_uring_sqe *sqe = sqe_for(r->l);
        r->kind->prep(r->c, op, sqe);
        io_uring_sqe_set_data(sqe, op);
    } /* CL_PARKED: its verifier's poll completion brings it back */
}

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
    run_state r = {.c = c, .kind = kind, .l = l};
    for (uint32_t i = 0; i < l->nops; i++) {
        l->ops[i].buf = l->images ? l->images + (size_t)i * c->file_bytes : NULL;
        l->free_ops[r.nfree++] = i;
    }
    uint64_t timeout_ns = (uint64_t)c->p.timeout_ms * 1000000ull;
    uint64_t deadline = kvt__monotonic_ns() + timeout_ns;
    size_t next = 0;
    while ((next < n && !r.stop) || r.inflight) {
        /* One block begun per turn (its copy and checksum), submitted at
         * once, then whatever completed is moved on without waiting: the
         * blocks already in flight do their I/O while the next one is
         * prepared, instead of all of a batch's preparation coming first. */
        bool began = false;
        if (next < n && r.nfree && !r.stop) {
            cl_op *op = &l->ops[l->free_ops[--r.nfree]];
            uint8_t *buf = op->buf;
            memset(op, 0, offsetof(cl_op, stx));
            op->buf = buf;
            op->lane = l;
            op->io = &io[next++];
            op->fd = -1;
            r.inflight++;
            if (kind->begin && kind->begin(c, op) == CL_DONE) {
                moved_on(&r, op, CL_DONE); /* finished before any I/O */
                continue;
            }
            struct io_uring_sqe *sqe = sqe_for(l);
            if (c->p.hang_for_tests)
                io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&an_hour, 0, 0);
            else
                kind->prep(c, op, sqe);
            io_uring_sqe_set_data(sqe, op);
            began = true;
        }
        arm_poll(l);
        io_uring_submit(&l->ring);
        if (!r.inflight)
            continue;
        struct io_uring_cqe *cqe;
        int rc;
        if (began && next < n && r.nfree && !r.stop) {
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
            void *data = io_uring_cqe_get_data(cqe);
            int res = cqe->res;
            seen++;
            if (data == &efd_poll_marker) { /* verifiers finished parked ops */
                l->poll_armed = false;
                for (cl_op *op = take_parked(l), *after; op; op = after) {
                    after = op->cpu_next;
                    l->parked--;
                    moved_on(&r, op, kind->complete(c, op, 0));
                }
                continue;
            }
            cl_op *op = data;
            moved_on(&r, op, kind->complete(c, op, res));
        }
        io_uring_cq_advance(&l->ring, seen);
    }
    lane_put(c, l);
    for (size_t i = next; i < n; i++)
        io[i].status = CL_NOT_BEGUN; /* after a miss of a stop_at_miss kind */
    return 0;

timed_out:
    if (c->verifiers)
        settle_parked(c, l);
    for (uint32_t i = 0; i < l->nops; i++) {
        bool busy = true;
        for (uint32_t j = 0; j < r.nfree; j++)
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
                    c->root, c->p.timeout_ms, r.inflight);
}
