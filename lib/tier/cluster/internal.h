/* internal.h — what the cluster engine's files share: the handle, the file format, the ring runner. */
#ifndef KVT_TIER_CLUSTER_INTERNAL_H
#define KVT_TIER_CLUSTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <liburing.h>

#include "jobpool.h"
#include "tier/cluster/cluster.h"

/* ------------------------------------------------------------ file format */

#define CL_UNIT 4096u          /* header unit and payload alignment (O_DIRECT) */
#define CL_FORMAT_VERSION 1u
#define CL_HDR_SUMMED 120u     /* header bytes covered by the header checksum */
#define CL_TREE "kvtier-cluster-v1"
#define CL_FORMAT_FILE "FORMAT"
#define CL_SUFFIX ".kvb"
#define CL_TMP_PREFIX ".tmp."

enum { /* header field offsets, little-endian (docs/cluster-format.md) */
    CH_MAGIC = 0, CH_VERSION = 8, CH_HDR_BYTES = 12, CH_BLOCK_BYTES = 16, CH_BLOCK_TOKENS = 24,
    CH_FRAGS = 28, CH_KEY_MODE = 32, CH_FLAGS = 36, CH_KEY = 40, CH_PAYLOAD_LEN = 56,
    CH_PAYLOAD_SUM = 64, CH_WRITER = 72, CH_CREATED = 88, CH_SUM = 120
};

/* Writes a block file's header unit (CL_UNIT bytes, rest zero). */
void cl_header_write(const kvt_cluster *c, uint8_t *unit, const kvt_key *key,
                     uint64_t payload_sum);
/* Checks a header unit read for `key`: 0, KVT_EFORMAT (not a block file of
 * this version), KVT_ECORRUPT (header checksum, or another key),
 * KVT_EGEOMETRY (another geometry or key mode). *payload_sum gets the sum. */
int cl_header_check(const kvt_cluster *c, const uint8_t *unit, const kvt_key *key,
                    uint64_t *payload_sum);
uint64_t cl_hash(const void *p, size_t n);

void cl_hex(const uint8_t *b, size_t n, char *out); /* 2n hex digits + NUL */

/* ------------------------------------------------------------------ state */

#define CL_STATS(X)                                                             \
    X(hits) X(misses) X(bytes_read) X(bytes_written) X(puts) X(already_held)    \
    X(publish_races_lost) X(removed) X(corrupt) X(foreign) X(truncated)         \
    X(io_errors) X(enospc) X(timeouts) X(abandoned_rings) X(stale_retries)      \
    X(contains_checks) X(contains_skipped) X(touches) X(touches_dropped)        \
    X(swept) X(expired) X(tmp_cleaned) X(sweep_steps) X(unsafe_paths) X(verified_off_ring)

typedef struct cl_counters {
#define CL_FIELD(n) _Atomic uint64_t n;
    CL_STATS(CL_FIELD)
#undef CL_FIELD
} cl_counters;

#define CL_ADD(c, field, v) atomic_fetch_add_explicit(&(c)->st.field, (v), memory_order_relaxed)

typedef struct cl_lane cl_lane;

#define CL_TOUCH_SLOTS 4096u /* per-node throttle table of recent access-time refreshes */
#define CL_TOUCH_QUEUE 1024u

struct kvt_cluster {
    kvt_cluster_params p;
    char *root;               /* dir/kvtier-cluster-v1 */
    int root_fd;              /* O_DIRECTORY of root: every path is resolved beneath it */
    uint64_t file_bytes;      /* CL_UNIT + payload rounded up to CL_UNIT */
    uint32_t qd;              /* blocks in flight per call */
    bool direct;              /* O_DIRECT accepted (probed at open) */
    bool noreplace;           /* renameat2(RENAME_NOREPLACE) works; else link + unlink */
    uint8_t writer[16];       /* this open's identity, in headers and temporary names */
    _Atomic uint64_t tmp_seq;

    pthread_mutex_t lanes_mu;
    cl_lane *free_lanes;
    /* Threads that verify and copy out reads of large blocks, so that the
     * ring's thread keeps the filesystem busy meanwhile; NULL: the ring's
     * thread does it. */
    kvt__jobpool *verifiers;

    /* Access-time refresh (touch.c). */
    pthread_mutex_t touch_mu;
    pthread_cond_t touch_cv;
    pthread_t touch_thread;
    bool touch_started, touch_stop;
    uint64_t touch_interval_ns;
    _Atomic uint64_t touch_seen[CL_TOUCH_SLOTS]; /* key hash ^ time bucket, 0 empty */
    kvt_key touch_q[CL_TOUCH_QUEUE];
    uint32_t touch_head, touch_len;

    /* Sweeper (sweep.c). */
    pthread_mutex_t sweep_mu;
    uint32_t sweep_cursor;
    uint64_t dir_usage[256];  /* bytes last seen per top-level directory */

    cl_counters st;
};

/* ---------------------------------------------------------- ring runner */

/* One block's progress through its stages (blocks.c gives the stages). */
typedef struct cl_op {
    kvt_cluster_io *io;
    int stage;
    int fd;
    int status;          /* the block's result so far */
    int retries;
    uint64_t done_bytes; /* of the read or write in progress */
    uint8_t *buf;        /* CL-aligned file image, lane-owned */
    /* Off-ring work (cl_park): the job, what it runs, and the lane's list
     * of finished ones. */
    kvt__job job;
    void (*cpu_fn)(kvt_cluster *c, struct cl_op *op);
    cl_lane *lane;
    kvt_cluster *cluster;
    struct cl_op *cpu_next;
    _Atomic bool cpu_done;
    struct statx stx;
    struct open_how how;
    char rel[KVT__CLUSTER_REL_MAX];
    char tmp[KVT__CLUSTER_REL_MAX + 64];
    char dir[8];
} cl_op;

/* Stage callbacks of one kind of batched call. prep() fills the SQE of the
 * op's current stage; complete() takes its result and returns CL_DONE when
 * the op is finished (op->status final), CL_NEXT after moving to another
 * stage, or CL_PARKED after handing CPU work to cl_park (complete() is then
 * called again, with res 0, once that work is done). */
enum { CL_NEXT = 0, CL_DONE = 1, CL_PARKED = 2 };
#define CL_NOT_BEGUN INT32_MIN /* cl_run's status of a block a stop_at_miss kind never began */

typedef struct cl_kind {
    bool needs_buffers;
    bool stop_at_miss; /* no op begun after one finished with a non-zero status */
    /* Before the first stage: CL_NEXT (submit it) or CL_DONE (finished
     * before any I/O). */
    int (*begin)(kvt_cluster *c, cl_op *op);
    void (*prep)(kvt_cluster *c, cl_op *op, struct io_uring_sqe *sqe);
    int (*complete)(kvt_cluster *c, cl_op *op, int res);
} cl_kind;

/* Runs the kind over n blocks with up to c->qd in flight, bounded by the
 * open's timeout. A stop_at_miss kind begins no block after one finished
 * with a non-zero status; the blocks never begun get CL_NOT_BEGUN. Every io[i].status is set. Returns 0, or KVT_ETIMEDOUT /
 * KVT_ENOMEM when the call stopped early (outstanding statuses say so too). */
int cl_run(kvt_cluster *c, const cl_kind *kind, kvt_cluster_io *io, size_t n);
void cl_lanes_free(kvt_cluster *c);
/* Whether op's call can park work: the open has verifiers and the lane
 * its eventfd. */
bool cl_can_park(const kvt_cluster *c, const cl_op *op);
/* From complete(): runs fn(c, op) on a verifier thread while the ring's
 * thread goes on; complete() returns CL_PARKED right after. */
void cl_park(kvt_cluster *c, cl_op *op, void (*fn)(kvt_cluster *c, cl_op *op));
/* Payloads at least this large are verified and copied out off the ring's
 * thread (when the open has verifiers). */
#define CL_OFFLOAD_MIN (256u << 10)

/* Touch (touch.c): queue an access-time refresh, throttled per node. */
int cl_touch_start(kvt_cluster *c);
bool cl_touch_stop(kvt_cluster *c); /* false: still running (detached) */
void cl_touch_note(kvt_cluster *c, const kvt_key *key);

/* errno -> KVT_E* for block operations. */
int cl_errno_code(int err);

#endif
