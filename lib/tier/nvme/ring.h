/* ring.h — the NVMe tier's io_uring engine: lanes (rings with their staging), pieces and ops. */
#ifndef KVT_NVME_RING_H
#define KVT_NVME_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "jobpool.h"
#include "tier/nvme/state.h"

#define REG_CHUNK (1ull << 30) /* io_uring's limit for one registered buffer */

/*
 * I/O engine. A pool of rings ("lanes"), each with its own SQ/CQ, staging
 * memory and per-operation state. A write() or read() call checks one lane
 * out of the pool (a mutex held only to pop/push the free list, never across
 * I/O), drives its whole batch on it with up to queue_depth transfers in
 * flight, blocks in io_uring_enter() for completions, and gives the lane
 * back. Why not one shared ring and a completion thread: every completion
 * would then cost a wake-up of the submitting thread and the ring's lock
 * would be taken per SQE by every caller; with a lane per batch, the thread
 * that submits reaps its own completions (COOP_TASKRUN: no IPIs), nothing is
 * shared on the hot path, and batches from different threads proceed in
 * parallel on different rings. Registered buffers are set up once and cloned
 * into the other rings (Linux 6.12+; else registered again), and the rings
 * share one kernel worker pool (ATTACH_WQ) and, with SQPOLL, one poll thread.
 *
 * A block moves as one or more "pieces" (one SQE each). Staged blocks (small
 * ones, and any whose caller memory or fragment size is not aligned for
 * O_DIRECT) go through bounce buffers in the lane's staging memory, header
 * unit and payload in one transfer when the slot fits one bounce buffer.
 * Direct blocks move the header unit from staging and the payload straight
 * between the device and the caller's memory: as two transfers
 * (READ_FIXED/WRITE_FIXED, contiguous fragments merged into one SQE) when
 * the payload lies in a registered region, else as one vectored transfer
 * (READV/WRITEV of the header unit and the payload). The block layer merges
 * the two fixed transfers into one request anyway; for unregistered memory
 * the vectored SQE does the same with half the submission work (each SQE
 * is a pass through the filesystem's direct-I/O path: docs/perf.md).
 * queue_depth bounds the blocks in flight per ring; a ring has twice as many
 * SQEs so that direct blocks (two transfers) keep queue_depth payloads on
 * the device, as a plain io_uring loop at that depth would. CPU work on a
 * block (hashing before a write, verifying after a read) is done after the
 * ring has been handed everything else it can take.
 */
typedef struct op op;

typedef struct piece {
    op *op;
    uint8_t *mem;     /* next byte in memory */
    uint8_t *bounce;  /* staging buffer held, or NULL */
    uint64_t off;     /* next byte on media */
    uint64_t start;   /* slot-relative position of the piece's first byte */
    uint32_t span;    /* bytes the piece covers */
    uint32_t len;     /* bytes still to move */
    uint32_t asked;   /* bytes in the SQE in flight */
    int buf_index;    /* registered buffer, or -1 */
    uint8_t fault;    /* kvt__fault still to act on */
    uint8_t resubmits;
    uint8_t nvec;         /* 0: linear at mem; else iov[0..nvec), iov[0] at mem */
    struct iovec iov[2];  /* a vectored piece's header unit and payload */
    struct iovec trim[2]; /* what an injected short transfer asks for */
    struct piece *next;
} piece;

struct op {
    kvt_xfer *x;
    uint8_t *hdr;      /* this op's header unit, in registered staging */
    uint64_t fs;       /* bytes per fragment */
    uint64_t slot_off; /* media offset of the slot */
    uint64_t cursor;   /* slot-relative next byte to plan */
    uint64_t end;      /* slot-relative end of what moves */
    uint64_t rnd;      /* fault randomness */
    uint32_t inflight; /* pieces planned, not finished */
    int status;
    uint8_t staged, single, planning, verified, fault;
    op *next;
    /* Verification on a hashing thread: vjob runs verify() and sets vdone;
     * the ring's thread settles the op when it sees vdone. */
    kvt__job vjob;
    struct kvt_tier_impl *t;
    struct lane *lane;
    _Atomic int vdone;
    op *vnext;
};

typedef struct lane {
    struct io_uring ring;
    bool ring_ok;
    int file;          /* fixed-file index 0, or the fd */
    uint8_t sqe_flags; /* IOSQE_FIXED_FILE or 0 */
    int host_idx;      /* registered index of the host region's first chunk, or -1 */
    int staging_idx;   /* registered index of this lane's staging, or -1 */
    uint8_t *staging;  /* zero unit, qd+1 header units, bounce buffers */
    size_t staging_bytes;
    op *ops, *free_ops;
    op *ready_head, *ready_tail; /* all pieces done; to verify and settle */
    unsigned active;             /* ops started and not settled */
    piece *pieces, *free_pieces, *retry_head, *retry_tail;
    uint8_t **bounce_free;
    unsigned nbounce_free;
    struct lane *next_free;
    /* Ops whose verification runs on a hashing thread. Each one, when done,
     * adds 1 to efd; an eventfd read in the ring (armed while any are out)
     * wakes this lane's thread for it. */
    op *verifying;
    unsigned nverifying;
    int efd;
    bool efd_armed;
    uint64_t efd_val;
} lane;

/* Sets up t->nlanes rings, their staging and registered buffers (t->qd,
 * t->sq, t->geo and the host region set). Errors: KVT_ENOMEM, KVT_ENODEV. */
int nvme_lanes_setup(kvt_tier_impl *t, bool want_sqpoll);
void nvme_lanes_free(kvt_tier_impl *t);
/* In a forked child: drops the child's references to the rings, syscalls
 * only (lock.c's fork handler). */
void nvme_lanes_forget(kvt_tier_impl *t);

/* Checks a lane out of the pool (blocks while all are in use), and back. */
lane *nvme_lane_get(kvt_tier_impl *t);
void nvme_lane_put(kvt_tier_impl *t, lane *l);

/* Queues one transfer of len bytes at media offset off (buf_index: the
 * registered buffer holding mem, or -1), tagged with data. */
void nvme_prep_rw(lane *l, int dir, uint8_t *mem, uint32_t len, uint64_t off, int buf_index,
                  void *data);
/* Queues piece p's transfer of its next p->asked bytes. */
void nvme_prep_piece(lane *l, int dir, piece *p);
/* Moves piece p past the `got` bytes of a short transfer, to resubmit the rest. */
void nvme_piece_advance(piece *p, uint32_t got);
/* Submits what is queued and waits for at least one completion. */
void nvme_submit_wait(lane *l);
/* Queues the eventfd read that wakes the lane's thread for verified ops. */
void nvme_arm_efd(lane *l);
/* Tag of the eventfd read's completion (pieces carry their piece). */
extern char nvme_efd_tag;

/* KVT_ENOSPC for -ENOSPC and -EDQUOT, else KVT_EIO. */
int nvme_errno_code(int neg);

/* Zeroes the headers of n slots (discard, recovery's dropped slots) on lane
 * l. Returns 0 or KVT_EIO. */
int nvme_zero_headers(kvt_tier_impl *t, lane *l, const uint32_t *slots, size_t n);

#endif
