/* xfer.c — the NVMe tier's block transfers: plan blocks into pieces, complete, verify, settle. */
#include "tier/nvme/xfer.h"

#include <errno.h>
#include <string.h>

#include "error.h"
#include "killpoint.h"
#include "tier/faults.h"
#include "tier/nvme/ring.h"
#include "tier/nvme/verify.h"

#define MAX_PIECE (256u << 20) /* largest single direct transfer */
#define MAX_RESUBMITS 16
/* Write batches of blocks at least this large submit before each block's
 * checksum (run()). */
#define EARLY_MIN (1u << 20)

/* Copies payload bytes [pos, pos+n) between a linear buffer and the
 * fragments (to_frags: buffer -> fragments). */
static void frags_copy(const kvt_xfer *x, uint64_t fs, uint64_t pos, uint8_t *buf, uint64_t n,
                       bool to_frags)
{
    while (n) {
        uint64_t f = pos / fs, in = pos % fs, k = min64(fs - in, n);
        uint8_t *fp = (uint8_t *)x->frags[f] + in;
        if (to_frags)
            memcpy(fp, buf, k);
        else
            memcpy(buf, fp, k);
        pos += k;
        buf += k;
        n -= k;
    }
}

/* ------------------------------------------------------- block operations */

static int check_xfer(const kvt_tier_impl *t, const kvt_xfer *x)
{
    uint32_t f;
    switch (nvme_xfer_problem(&t->geo, x, &f)) {
    case 0:
        return 0;
    case KVT_EINVAL:
        return kvt__err(KVT_EINVAL, "nvme: slot %u out of range (%u slots)", x->slot,
                        t->geo.nslots);
    case KVT_EFRAGS:
        return kvt__err(KVT_EFRAGS, "nvme: %u fragments do not divide a %llu-byte block",
                        x->nfrags, (unsigned long long)t->geo.block_bytes);
    default:
        if (f == UINT32_MAX)
            return kvt__err(KVT_ENULL, "nvme: xfer for slot %u has no fragment array", x->slot);
        return kvt__err(KVT_ENULL, "nvme: fragment %u of slot %u is NULL", f, x->slot);
    }
}

static bool direct_ok(const kvt_tier_impl *t, const kvt_xfer *x, uint64_t fs)
{
    if (fs % t->len_align)
        return false;
    for (uint32_t f = 0; f < x->nfrags; f++)
        if ((uintptr_t)x->frags[f] % t->mem_align)
            return false;
    return true;
}

/* Sets up the op for x, or settles x at once (bad xfer) and returns NULL.
 * The faults that need this engine (torn4k, torn512, partial, cqe_*) come
 * from the fault wrapper's plan (lib/tier/faulty.c), which drew them. */
static op *op_start(kvt_tier_impl *t, lane *l, kvt_xfer *x, int dir, hash_ahead *h, size_t i)
{
    int rc = check_xfer(t, x);
    if (rc) {
        x->status = rc;
        return NULL;
    }
    uint64_t rnd;
    kvt__fault fault = kvt__faults_planned(x, &rnd);
    op *o = l->free_ops;
    l->free_ops = o->next;
    l->active++;
    o->x = x;
    o->fs = t->geo.block_bytes / x->nfrags;
    o->slot_off = nvme_slot_offset(&t->geo, x->slot);
    o->cursor = 0;
    o->inflight = 0;
    o->status = 0;
    /* Staged only when the caller's memory can't do direct I/O: small
     * blocks through a bounce buffer (one transfer, a copy) ran at half
     * the speed of two direct transfers (docs/perf.md). */
    o->staged = !direct_ok(t, x, o->fs);
    o->end = t->geo.unit + (o->staged ? round_up(t->geo.block_bytes, t->len_align)
                                      : t->geo.block_bytes);
    o->single = o->staged && o->end <= t->bounce_bytes;
    o->planning = 1;
    o->verified = 0;
    o->fault = (uint8_t)fault;
    o->rnd = rnd;
    if (o->staged)
        STAT_ADD(t, staged, 1);
    if (dir == DIR_WRITE) {
        KVT_KILLPOINT(KVT__KP_WRITE);
        uint64_t seq = atomic_fetch_add_explicit(&t->seq, 1, memory_order_relaxed);
        nvme_hdr_encode(&t->geo, o->hdr, x, nvme_ahead_sum(h, i, x, o->fs), seq);
        if (fault == KVT__FAULT_TORN4K || fault == KVT__FAULT_TORN512) {
            /* A crash mid-write: only the slot's first bytes reach media.
             * A slot no longer than that (small unit, small block) keeps
             * only its header unit: a torn write must lose something. */
            uint64_t torn = round_up(fault == KVT__FAULT_TORN4K ? 4096 : 512, t->len_align);
            o->end = torn < o->end ? torn : t->geo.unit;
            o->fault = KVT__FAULT_NONE;
        }
    }
    return o;
}

static void op_fail(op *o, int code)
{
    if (!o->status)
        o->status = code;
    o->cursor = o->end; /* plan nothing more */
}

/* Fills a bounce buffer with slot bytes [pos, pos+n) of the block being
 * written: header unit, payload, zero padding. */
static void bounce_fill(const kvt_tier_impl *t, const op *o, uint8_t *b, uint64_t pos, uint64_t n)
{
    uint64_t end = pos + n;
    if (pos < t->geo.unit) {
        uint64_t k = min64(end, t->geo.unit) - pos;
        memcpy(b, o->hdr + pos, k);
        b += k;
        pos += k;
    }
    if (pos < end && pos - t->geo.unit < t->geo.block_bytes) {
        uint64_t k = min64(end - t->geo.unit, t->geo.block_bytes) - (pos - t->geo.unit);
        frags_copy(o->x, o->fs, pos - t->geo.unit, b, k, false);
        b += k;
        pos += k;
    }
    if (pos < end)
        memset(b, 0, end - pos);
}

/* The registered index for [mem, mem + *len) in the host region, trimming
 * *len to the end of its 1 GiB chunk when that stays aligned; -1 if none. */
static int host_index(const kvt_tier_impl *t, const lane *l, const uint8_t *mem, uint64_t *len)
{
    if (l->host_idx < 0 || mem < t->host_base || mem >= t->host_base + t->host_bytes)
        return -1;
    uint64_t rel = (uint64_t)(mem - t->host_base), chunk = rel / REG_CHUNK;
    uint64_t chunk_end = min64((chunk + 1) * REG_CHUNK, t->host_bytes);
    if (rel + *len > chunk_end) {
        uint64_t fit = chunk_end - rel;
        if (fit % t->len_align)
            return -1;
        *len = fit;
    }
    return l->host_idx + (int)chunk;
}

/* The payload of direct op o when it is one run of caller memory outside
 * the registered regions, to move with its header unit in one vectored
 * transfer; NULL when it goes as fixed or separate transfers. */
static uint8_t *contiguous_payload(const kvt_tier_impl *t, const lane *l, const op *o)
{
    uint8_t *p = o->x->frags[0];
    if (o->end != t->geo.unit + t->geo.block_bytes || t->geo.block_bytes > MAX_PIECE ||
        !nvme_frags_contiguous(o->x, o->fs))
        return NULL;
    uint64_t len = t->geo.block_bytes;
    return host_index(t, l, p, &len) < 0 ? p : NULL;
}

/* Plans and prepares o's next piece; false when it must wait for a bounce
 * buffer. */
static bool plan(kvt_tier_impl *t, lane *l, op *o, int dir)
{
    uint64_t pos = o->cursor, left = o->end - pos, n;
    uint8_t *mem, *bounce = NULL, *payload = NULL;
    int idx;
    if (o->staged) {
        if (!l->nbounce_free)
            return false;
        bounce = l->bounce_free[--l->nbounce_free];
        n = min64(left, t->bounce_bytes);
        if (dir == DIR_WRITE)
            bounce_fill(t, o, bounce, pos, n);
        mem = bounce;
        idx = l->staging_idx;
    } else if (pos == 0 && (payload = contiguous_payload(t, l, o))) {
        n = left; /* the header unit and the whole payload, one transfer */
        mem = o->hdr;
        idx = -1;
    } else if (pos < t->geo.unit) {
        n = min64(left, t->geo.unit - pos);
        mem = o->hdr + pos;
        idx = l->staging_idx;
    } else {
        const kvt_xfer *x = o->x;
        uint64_t pp = pos - t->geo.unit, f = pp / o->fs;
        mem = (uint8_t *)x->frags[f] + pp % o->fs;
        n = o->fs - pp % o->fs;
        while (f + 1 < x->nfrags && n < MAX_PIECE &&
               (uint8_t *)x->frags[f + 1] == (uint8_t *)x->frags[f] + o->fs) {
            f++;
            n += o->fs;
        }
        n = min64(min64(n, left), MAX_PIECE);
        idx = host_index(t, l, mem, &n);
    }
    piece *p = l->free_pieces;
    l->free_pieces = p->next;
    p->op = o;
    p->mem = mem;
    p->bounce = bounce;
    p->off = o->slot_off + pos;
    p->start = pos;
    p->span = p->len = p->asked = (uint32_t)n;
    p->buf_index = idx;
    p->resubmits = 0;
    p->fault = KVT__FAULT_NONE;
    p->nvec = 0;
    if (payload) {
        p->nvec = 2;
        p->iov[0] = (struct iovec){o->hdr, t->geo.unit};
        p->iov[1] = (struct iovec){payload, n - t->geo.unit};
        STAT_ADD(t, vectored, 1);
    }
    if (o->fault == KVT__FAULT_PARTIAL) {
        /* The device moves only an aligned part (maybe nothing) of this piece. */
        p->fault = o->fault;
        p->asked = (uint32_t)((o->rnd % n) / t->len_align * t->len_align);
        o->fault = KVT__FAULT_NONE;
    } else if (o->fault >= KVT__FAULT_CQE_EIO) {
        p->fault = o->fault; /* goes out whole; its completion is replaced */
        o->fault = KVT__FAULT_NONE;
    }
    o->cursor += n;
    o->inflight++;
    nvme_prep_piece(l, dir, p);
    return true;
}

static void op_finish(kvt_tier_impl *t, lane *l, op *o, int dir);

/* Settles the ops whose verification is done; returns how many. */
static unsigned settle_verified(kvt_tier_impl *t, lane *l)
{
    unsigned done = 0;
    for (op **pp = &l->verifying; *pp;) {
        op *o = *pp;
        if (!atomic_load_explicit(&o->vdone, memory_order_acquire)) {
            pp = &o->vnext;
            continue;
        }
        *pp = o->vnext;
        l->nverifying--;
        o->verified = 1;
        op_finish(t, l, o, DIR_READ);
        done++;
    }
    return done;
}

/* A staged read piece arrived: verify (single piece) or copy out. */
static void bounce_drain(kvt_tier_impl *t, op *o, const piece *p)
{
    if (o->single) {
        int rc = nvme_verify(t, o, p->bounce, p->bounce + t->geo.unit);
        if (!rc)
            frags_copy(o->x, o->fs, 0, p->bounce + t->geo.unit, t->geo.block_bytes, true);
        o->status = rc;
        o->verified = 1;
        return;
    }
    uint64_t pos = p->start, end = p->start + p->span;
    const uint8_t *b = p->bounce;
    if (pos < t->geo.unit) {
        uint64_t k = min64(end, t->geo.unit) - pos;
        memcpy(o->hdr + pos, b, k);
        b += k;
        pos += k;
    }
    if (pos < end && pos - t->geo.unit < t->geo.block_bytes) {
        uint64_t k = min64(end - t->geo.unit, t->geo.block_bytes) - (pos - t->geo.unit);
        frags_copy(o->x, o->fs, pos - t->geo.unit, (uint8_t *)b, k, true);
    }
}

static void op_finish(kvt_tier_impl *t, lane *l, op *o, int dir)
{
    kvt_xfer *x = o->x;
    if (dir == DIR_READ && !o->status && !o->verified)
        o->status = nvme_verify(t, o, o->hdr, NULL);
    x->status = o->status;
    if (!o->status) {
        if (dir == DIR_WRITE) {
            STAT_ADD(t, writes, 1);
            STAT_ADD(t, bytes_written, t->geo.block_bytes);
        } else {
            STAT_ADD(t, reads, 1);
            STAT_ADD(t, bytes_read, t->geo.block_bytes);
        }
    } else if (o->status == KVT_ECORRUPT) {
        STAT_ADD(t, corrupt, 1);
    } else {
        STAT_ADD(t, io_errors, 1);
    }
    o->next = l->free_ops;
    l->free_ops = o;
    l->active--;
}

/* Queues o for settling once nothing of it is left to plan or in flight;
 * run() settles it after submitting more work, so that verifying a large
 * block overlaps the device's work instead of starving its queue. */
static void maybe_finish(lane *l, op *o)
{
    if (o->planning || o->inflight || o->cursor < o->end)
        return;
    o->next = NULL;
    if (l->ready_tail)
        l->ready_tail->next = o;
    else
        l->ready_head = o;
    l->ready_tail = o;
}

static void retry_push(lane *l, piece *p)
{
    p->next = NULL;
    if (l->retry_tail)
        l->retry_tail->next = p;
    else
        l->retry_head = p;
    l->retry_tail = p;
}

/* The result an injected completion fault reports for piece p, whose
 * transfer moved all its bytes: an error, or a short count that the tier
 * can't resume from (none, or one off the device's alignment). */
static int cqe_fault(const kvt_tier_impl *t, piece *p)
{
    kvt__fault f = p->fault;
    uint64_t r = p->op->rnd;
    p->fault = KVT__FAULT_NONE;
    if (f == KVT__FAULT_CQE_EIO)
        return -EIO;
    if (f == KVT__FAULT_CQE_ENOSPC)
        return -ENOSPC;
    if ((r & 1) || t->len_align < 2)
        return 0;
    return (int)(((r >> 1) % p->asked) | 1); /* odd: below asked (even), off alignment */
}

static void piece_done(kvt_tier_impl *t, lane *l, piece *p, int res, int dir)
{
    op *o = p->op;
    if ((res == -EAGAIN || res == -EINTR) && p->resubmits < MAX_RESUBMITS) {
        p->resubmits++;
        STAT_ADD(t, resubmits, 1);
        retry_push(l, p);
        return;
    }
    if (p->fault >= KVT__FAULT_CQE_EIO && res >= 0)
        res = cqe_fault(t, p);
    if (res < 0) {
        op_fail(o, nvme_errno_code(res));
    } else if ((uint32_t)res < p->len && !o->status) {
        uint32_t got = (uint32_t)res;
        bool injected = p->fault == KVT__FAULT_PARTIAL;
        p->fault = KVT__FAULT_NONE;
        /* A short transfer: resubmit the rest, unless it made no progress,
         * broke alignment, or keeps happening. */
        if (!injected && (got == 0 || got % t->len_align || p->resubmits >= MAX_RESUBMITS)) {
            op_fail(o, KVT_EIO);
        } else {
            p->resubmits++;
            nvme_piece_advance(p, got);
            p->asked = p->len;
            STAT_ADD(t, resubmits, 1);
            retry_push(l, p);
            return;
        }
    } else if (dir == DIR_READ && p->bounce && !o->status) {
        bounce_drain(t, o, p);
    }
    if (p->bounce)
        l->bounce_free[l->nbounce_free++] = p->bounce;
    p->next = l->free_pieces;
    l->free_pieces = p;
    o->inflight--;
    maybe_finish(l, o);
}

/* Moves a batch on one lane. Up to qd blocks and 2 * qd SQEs (a direct
 * block is a header and a payload transfer) are in flight. */
static void run(kvt_tier_impl *t, lane *l, kvt_xfer *x, size_t n, int dir)
{
    size_t next = 0;
    unsigned inflight = 0;
    op *cur = NULL;
    hash_ahead ahead;
    nvme_ahead_start(t, &ahead, x, dir == DIR_WRITE ? n : 0);
    /* Hashing a large block before writing it takes a while: hand the
     * device what is prepared first. That costs a submission per block,
     * which pays from about 1 MiB up (at least 40 us of hashing, when the
     * ring's thread gets to hash one itself); at 256 KiB it cost puts about
     * 2% and at 8 MiB dropping it cost 20% (docs/perf.md). */
    bool early = dir == DIR_WRITE && t->geo.block_bytes >= EARLY_MIN;
    for (;;) {
        while (inflight < t->sq) {
            if (l->retry_head) {
                piece *p = l->retry_head;
                l->retry_head = p->next;
                if (!l->retry_head)
                    l->retry_tail = NULL;
                nvme_prep_piece(l, dir, p);
                inflight++;
                continue;
            }
            if (cur && cur->cursor >= cur->end) {
                cur->planning = 0;
                maybe_finish(l, cur);
                cur = NULL;
            }
            if (!cur) {
                /* Blocks being verified off the ring don't count against
                 * the depth: the device is done with them. */
                if (next == n || l->active - l->nverifying >= t->qd || !l->free_ops)
                    break;
                if ((early || !nvme_ahead_done(&ahead, next)) && io_uring_sq_ready(&l->ring))
                    io_uring_submit(&l->ring);
                cur = op_start(t, l, &x[next], dir, &ahead, next);
                next++;
                continue;
            }
            if (!plan(t, l, cur, dir))
                break;
            inflight++;
        }
        if (l->ready_head) {
            if (io_uring_sq_ready(&l->ring))
                io_uring_submit(&l->ring);
            while (l->ready_head) {
                op *o = l->ready_head;
                l->ready_head = o->next;
                if (!nvme_verify_off_ring(t, l, o, dir))
                    op_finish(t, l, o, dir);
            }
            l->ready_tail = NULL;
            continue;
        }
        if (l->nverifying && settle_verified(t, l))
            continue;
        /* All settled: with nothing in flight every bounce is free, and no
         * eventfd read is left in the ring for the next batch. */
        if (!inflight && !l->nverifying && !l->efd_armed)
            break;
        if (l->nverifying && !inflight && next == n && !cur && nvme_verify_here(t, l))
            continue;
        if (l->nverifying && !l->efd_armed)
            nvme_arm_efd(l);
        nvme_submit_wait(l);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0, pieces = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            void *data = io_uring_cqe_get_data(cqe);
            seen++;
            if (data == &nvme_efd_tag) {
                /* A failed read (never expected) is re-armed while ops are
                 * out: each finished verification writes the eventfd. */
                l->efd_armed = false;
                continue;
            }
            piece_done(t, l, data, cqe->res, dir);
            pieces++;
        }
        io_uring_cq_advance(&l->ring, seen);
        inflight -= pieces;
    }
    nvme_ahead_end(t, &ahead);
}

int nvme_batch(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int dir)
{
    if (!t || (n && !x))
        return kvt__err(KVT_ENULL, "nvme: %s is NULL", t ? "xfer array" : "tier");
    if (mem != KVT_MEM_HOST) {
        for (size_t i = 0; i < n; i++)
            x[i].status = KVT_EMEMKIND;
        return n ? kvt__err(KVT_EMEMKIND, "nvme: moves host memory only; stage device "
                                          "memory through DRAM") : 0;
    }
    if (!n)
        return 0;
    lane *l = nvme_lane_get(t);
    run(t, l, x, n, dir);
    nvme_lane_put(t, l);
    for (size_t i = 0; i < n; i++)
        if (x[i].status) {
            int rc = x[i].status;
            if (rc == KVT_ECORRUPT)
                return kvt__err(rc, "nvme: slot %u failed verification", x[i].slot);
            if (rc == KVT_EIO || rc == KVT_ENOSPC)
                return kvt__err(rc, "nvme: %s of slot %u failed", dir ? "write" : "read",
                                x[i].slot);
            return rc; /* check_xfer() set the message */
        }
    return 0;
}
