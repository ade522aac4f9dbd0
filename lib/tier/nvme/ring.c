/* ring.c — the NVMe tier's io_uring engine: setting up lanes, queueing and reaping transfers. */
#include "tier/nvme/ring.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "killpoint.h"

#define MIN_LANES 2
#define MAX_LANES 8
#define BOUNCE_MAX (1u << 20)      /* largest staged piece */
#define BOUNCE_PER_LANE (8u << 20) /* staging bytes per ring for bounce pieces */
#define SQ_IDLE_MS 10

/* IORING_REGISTER_CLONE_BUFFERS (Linux 6.12): liburing 2.3 predates it. */
#define KVT_IORING_REGISTER_CLONE_BUFFERS 30
struct kvt_clone_buffers {
    uint32_t src_fd, flags, src_off, dst_off, nr, pad[3];
};

/* ----------------------------------------------------------------- lanes */

lane *nvme_lane_get(kvt_tier_impl *t)
{
    pthread_mutex_lock(&t->mu);
    while (!t->free_lanes)
        pthread_cond_wait(&t->cv, &t->mu);
    lane *l = t->free_lanes;
    t->free_lanes = l->next_free;
    pthread_mutex_unlock(&t->mu);
    return l;
}

void nvme_lane_put(kvt_tier_impl *t, lane *l)
{
    pthread_mutex_lock(&t->mu);
    l->next_free = t->free_lanes;
    t->free_lanes = l;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void nvme_prep_rw(lane *l, int dir, uint8_t *mem, uint32_t len, uint64_t off, int buf_index,
                    void *data)
{
    /* Never NULL: at most sq SQEs are in flight and the SQ has sq entries. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (buf_index >= 0) {
        if (dir == DIR_WRITE)
            io_uring_prep_write_fixed(sqe, l->file, mem, len, off, buf_index);
        else
            io_uring_prep_read_fixed(sqe, l->file, mem, len, off, buf_index);
    } else {
        if (dir == DIR_WRITE)
            io_uring_prep_write(sqe, l->file, mem, len, off);
        else
            io_uring_prep_read(sqe, l->file, mem, len, off);
    }
    sqe->flags |= l->sqe_flags;
    io_uring_sqe_set_data(sqe, data);
}

/* Prepares piece p's transfer of its next p->asked bytes. */
void nvme_prep_piece(lane *l, int dir, piece *p)
{
    if (!p->nvec) {
        nvme_prep_rw(l, dir, p->mem, p->asked, p->off, p->buf_index, p);
        return;
    }
    /* The kernel reads the iovecs at submission, from the piece. An
     * injected short transfer asks for fewer bytes than they hold: it gets a
     * trimmed copy. */
    unsigned nv = p->asked <= p->iov[0].iov_len ? 1 : p->nvec;
    struct iovec *v = p->iov;
    if (p->asked < p->len) {
        p->trim[0] = p->iov[0];
        if (nv == 1)
            p->trim[0].iov_len = p->asked;
        else
            p->trim[1] = (struct iovec){p->iov[1].iov_base, p->asked - p->iov[0].iov_len};
        v = p->trim;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (dir == DIR_WRITE)
        io_uring_prep_writev(sqe, l->file, v, nv, p->off);
    else
        io_uring_prep_readv(sqe, l->file, v, nv, p->off);
    sqe->flags |= l->sqe_flags;
    io_uring_sqe_set_data(sqe, p);
}

/* Moves piece p past the `got` bytes of a short transfer, to resubmit the rest. */
void nvme_piece_advance(piece *p, uint32_t got)
{
    p->off += got;
    p->len -= got;
    if (!p->nvec) {
        p->mem += got;
        return;
    }
    while (got) {
        if (got < p->iov[0].iov_len) {
            p->iov[0].iov_base = (uint8_t *)p->iov[0].iov_base + got;
            p->iov[0].iov_len -= got;
            break;
        }
        got -= (uint32_t)p->iov[0].iov_len;
        p->iov[0] = p->iov[1];
        p->nvec--;
    }
    p->mem = p->iov[0].iov_base;
}

/* Submits what is queued and waits for at least one completion. */
void nvme_submit_wait(lane *l)
{
    for (;;) {
        int rc = io_uring_submit_and_wait(&l->ring, 1);
        if (rc >= 0 || (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY))
            return;
        if (rc != -EINTR) {
            /* Out of kernel resources for new SQEs: completions free them. */
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&l->ring, &cqe) == 0)
                return;
        }
    }
}

int nvme_errno_code(int neg)
{
    return neg == -ENOSPC || neg == -EDQUOT ? KVT_ENOSPC : KVT_EIO;
}

char nvme_efd_tag;

void nvme_arm_efd(lane *l)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring); /* sq + 1 entries */
    io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof l->efd_val, 0);
    io_uring_sqe_set_data(sqe, &nvme_efd_tag);
    l->efd_armed = true;
}


/* ---------------------------------------------------- header-only batches */

int nvme_zero_headers(kvt_tier_impl *t, lane *l, const uint32_t *slots, size_t n)
{
    size_t next = 0;
    unsigned inflight = 0;
    int rc = 0;
    uint8_t *zero = l->staging; /* never written: the first unit of staging */
    KVT_KILLPOINT(KVT__KP_META);
    while (next < n || inflight) {
        while (next < n && inflight < t->qd) {
            uint64_t off = nvme_slot_offset(&t->geo, slots[next]);
            nvme_prep_rw(l, DIR_WRITE, zero, t->hdr_io, off, l->staging_idx,
                    (void *)(uintptr_t)(next + 1));
            next++;
            inflight++;
        }
        nvme_submit_wait(l);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            if (cqe->res != (int)t->hdr_io) {
                size_t i = (size_t)(uintptr_t)io_uring_cqe_get_data(cqe) - 1;
                if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
                    /* Rare; retried synchronously to keep this loop simple. */
                    nvme_prep_rw(l, DIR_WRITE, zero, t->hdr_io,
                            nvme_slot_offset(&t->geo, slots[i]), l->staging_idx,
                            (void *)(uintptr_t)(i + 1));
                    inflight++;
                } else if (!rc) {
                    rc = kvt__err_errno(KVT_EIO, cqe->res < 0 ? -cqe->res : 0,
                                        "nvme: invalidating the header of slot %u", slots[i]);
                }
            }
            seen++;
        }
        io_uring_cq_advance(&l->ring, seen);
        inflight -= seen;
    }
    return rc;
}

/* ------------------------------------------------------------ setup */

void nvme_lanes_free(kvt_tier_impl *t)
{
    if (!t->lanes)
        return;
    /* Rings that attached to lane 0's worker pool go first. */
    for (unsigned i = t->nlanes; i-- > 0;) {
        lane *l = &t->lanes[i];
        if (l->ring_ok)
            io_uring_queue_exit(&l->ring);
        if (l->efd >= 0)
            close(l->efd);
        if (l->staging)
            munmap(l->staging, l->staging_bytes);
        kvt__free(l->ops);
        kvt__free(l->pieces);
        kvt__free(l->bounce_free);
    }
    kvt__free(t->lanes);
    t->lanes = NULL;
}

static int ring_init(kvt_tier_impl *t, lane *l, const lane *first, bool want_sqpoll)
{
    /* From the most wanted setup down to the plainest: SQPOLL may be refused
     * (privilege, resources), COOP_TASKRUN and ATTACH_WQ unknown to the
     * kernel; each is an optimisation, none is needed. */
    int rc = -EINVAL;
    for (int sq = want_sqpoll ? 1 : 0; sq >= 0; sq--)
        for (int coop = 1; coop >= 0; coop--)
            for (int attach = first ? 1 : 0; attach >= 0; attach--) {
                struct io_uring_params prm;
                memset(&prm, 0, sizeof prm);
                prm.flags = IORING_SETUP_CQSIZE | (coop ? IORING_SETUP_COOP_TASKRUN : 0);
                prm.cq_entries = 2 * (t->sq + 1);
                if (sq) {
                    prm.flags |= IORING_SETUP_SQPOLL;
                    prm.sq_thread_idle = SQ_IDLE_MS;
                }
                if (attach) {
                    prm.flags |= IORING_SETUP_ATTACH_WQ;
                    prm.wq_fd = (uint32_t)first->ring.ring_fd;
                }
                /* One entry more than the pieces in flight: the eventfd
                 * read that wakes the thread for verified blocks. */
                rc = io_uring_queue_init_params(t->sq + 1, &l->ring, &prm);
                if (!rc) {
                    t->sqpoll = sq;
                    return 0;
                }
            }
    return rc;
}

int nvme_lanes_setup(kvt_tier_impl *t, bool want_sqpoll)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    t->nlanes = cpus < MIN_LANES ? MIN_LANES : cpus > MAX_LANES ? MAX_LANES : (unsigned)cpus;
    /* Whole units of staging each, so that every bounce buffer stays
     * aligned for direct I/O whatever the slot's own unit. */
    t->bounce_bytes = min64(round_up(t->geo.slot_bytes, UNIT), BOUNCE_MAX);
    uint64_t nb = BOUNCE_PER_LANE / t->bounce_bytes;
    t->nbounce = (unsigned)(nb < 2 ? 2 : nb > t->qd ? t->qd : nb);
    t->lanes = kvt__calloc(t->nlanes, sizeof *t->lanes);
    if (!t->lanes)
        return kvt__err(KVT_ENOMEM, "nvme: allocating %u rings", t->nlanes);
    for (unsigned i = 0; i < t->nlanes; i++)
        t->lanes[i].efd = -1;
    /* Up to qd blocks in flight plus up to qd being verified off the ring:
     * 2 * qd ops, each with a header unit in staging. */
    unsigned nops = 2 * t->qd;

    /* Registered buffer table, identical in every ring: the host region in
     * chunks, then each lane's staging. */
    size_t host_chunks = t->host_base ? (t->host_bytes + REG_CHUNK - 1) / REG_CHUNK : 0;
    size_t niov = host_chunks + t->nlanes;
    struct iovec *iov = kvt__calloc(niov, sizeof *iov);
    if (!iov)
        return kvt__err(KVT_ENOMEM, "nvme: allocating the buffer table");
    for (size_t c = 0; c < host_chunks; c++) {
        iov[c].iov_base = t->host_base + c * REG_CHUNK;
        iov[c].iov_len = min64(REG_CHUNK, t->host_bytes - c * REG_CHUNK);
    }
    int rc = 0;
    for (unsigned i = 0; i < t->nlanes && !rc; i++) {
        lane *l = &t->lanes[i];
        l->host_idx = l->staging_idx = -1;
        l->staging_bytes = (size_t)UNIT * (nops + 2) + (size_t)t->nbounce * t->bounce_bytes;
        void *m = mmap(NULL, l->staging_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        l->ops = kvt__calloc(nops + 1, sizeof *l->ops);
        l->pieces = kvt__calloc(t->sq, sizeof *l->pieces);
        l->bounce_free = kvt__calloc(t->nbounce, sizeof *l->bounce_free);
        if (m == MAP_FAILED || !l->ops || !l->pieces || !l->bounce_free) {
            if (m != MAP_FAILED)
                munmap(m, l->staging_bytes);
            rc = kvt__err(KVT_ENOMEM, "nvme: staging memory for ring %u (%zu bytes)", i,
                          l->staging_bytes);
            break;
        }
        l->staging = m;
        for (unsigned o = 0; o <= nops; o++) {
            l->ops[o].hdr = l->staging + (size_t)UNIT * (1 + o);
            l->ops[o].next = o < nops ? &l->ops[o + 1] : NULL;
        }
        l->free_ops = &l->ops[0];
        for (unsigned q = 0; q < t->sq; q++)
            l->pieces[q].next = q + 1 < t->sq ? &l->pieces[q + 1] : NULL;
        l->free_pieces = &l->pieces[0];
        uint8_t *b0 = l->staging + (size_t)UNIT * (nops + 2);
        for (unsigned b = 0; b < t->nbounce; b++)
            l->bounce_free[b] = b0 + (size_t)b * t->bounce_bytes;
        l->nbounce_free = t->nbounce;
        iov[host_chunks + i].iov_base = l->staging;
        iov[host_chunks + i].iov_len = l->staging_bytes;

        int r = ring_init(t, l, i ? &t->lanes[0] : NULL, want_sqpoll && (i == 0 || t->sqpoll));
        if (r) {
            rc = kvt__err_errno(KVT_ENODEV, -r, "nvme: io_uring setup (queue depth %u)", t->qd);
            break;
        }
        l->ring_ok = true;
        if (t->hashers && (l->efd = eventfd(0, EFD_CLOEXEC)) < 0)
            l->efd = -1; /* this lane verifies on its own thread */
        if (io_uring_register_files(&l->ring, &t->fd, 1) == 0) {
            l->file = 0;
            l->sqe_flags = IOSQE_FIXED_FILE;
        } else {
            l->file = t->fd;
        }
    }
    if (rc) {
        kvt__free(iov);
        return rc;
    }

    /* Lane 0 registers; a ring that can't hold the host region (memlock
     * limit, memory io_uring can't pin) still registers its staging. */
    lane *l0 = &t->lanes[0];
    struct iovec *tab = iov;
    size_t ntab = niov;
    int hoff = 0;
    if (io_uring_register_buffers(&l0->ring, tab, (unsigned)ntab) == 0) {
        t->fixed_host = host_chunks > 0;
    } else {
        tab = iov + host_chunks;
        ntab = t->nlanes;
        hoff = -1;
        if (!host_chunks || io_uring_register_buffers(&l0->ring, tab, (unsigned)ntab) != 0)
            ntab = 0;
    }
    t->fixed_staging = ntab > 0;
    for (unsigned i = 0; i < t->nlanes && ntab; i++) {
        lane *l = &t->lanes[i];
        bool ok = i == 0;
        if (!ok) {
            struct kvt_clone_buffers cb;
            memset(&cb, 0, sizeof cb);
            cb.src_fd = (uint32_t)l0->ring.ring_fd;
            ok = syscall(__NR_io_uring_register, l->ring.ring_fd,
                         KVT_IORING_REGISTER_CLONE_BUFFERS, &cb, 1) == 0;
            if (ok)
                t->cloned = true;
            else
                ok = io_uring_register_buffers(&l->ring, tab, (unsigned)ntab) == 0;
        }
        if (ok) {
            l->host_idx = (hoff < 0 || !host_chunks) ? -1 : 0;
            l->staging_idx = (int)(hoff < 0 ? i : host_chunks + i);
        }
    }
    kvt__free(iov);
    for (unsigned i = t->nlanes; i-- > 0;) {
        t->lanes[i].next_free = t->free_lanes;
        t->free_lanes = &t->lanes[i];
    }
    return 0;
}

void nvme_lanes_forget(kvt_tier_impl *t)
{
    for (unsigned i = 0; t->lanes && i < t->nlanes; i++) {
        if (t->lanes[i].ring_ok)
            io_uring_queue_exit(&t->lanes[i].ring);
        t->lanes[i].ring_ok = false;
    }
}
