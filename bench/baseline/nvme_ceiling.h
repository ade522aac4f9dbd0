/* nvme_ceiling.h — the default run's NVMe rows: kvtier and a raw io_uring loop over the same slots of the store's own file. */
#ifndef KVT_BENCH_NVME_CEILING_H
#define KVT_BENCH_NVME_CEILING_H

#include <stdint.h>

#include "../workload/swarm_run.h"

/*
 * Each NVMe row runs the library and a plain io_uring loop (raw_uring.c)
 * over the same slots of the store's own file: the slots whose header says
 * kvtier wrote a block there (docs/nvme-format.md) and whose key the store
 * holds in NVMe. Never unwritten space: a read of an unwritten extent is
 * answered by the filesystem with zeros, without the device. Both sides move
 * NVME_BATCH whole slots per call (a library get of that many blocks; a raw
 * batch) through a ring of the tier's default depth, O_DIRECT, into the
 * caller's (unregistered) memory, and only the calls are timed. Run at the
 * end of the workload, with the store open and idle.
 */
#define NVME_QD 64    /* the tier's default queue depth ("queue_depth") */
#define NVME_BATCH 64 /* blocks per library call and per raw batch */
#define UNIT 4096

/* One side of an NVMe row. Transfers are whole slots: the library's
 * nvme.reads / nvme.writes, the raw loop's own count. */
typedef struct io_side {
    uint64_t calls, blocks, ns;
    uint64_t slot_reads, slot_writes;
    uint64_t distinct; /* distinct slots read (raw) */
    uint64_t verified; /* raw: reads whose header is kvtier's header for that slot and key;
                          library: blocks returned */
} io_side;

typedef struct nvme_rows {
    int ok;         /* measured; else why[] says why not */
    char why[160];
    double seconds; /* each side's budget */
    uint64_t slots, slot_bytes;
    uint64_t written;        /* slots holding a block header after the workload */
    uint64_t resident;       /* of those, blocks the store holds in NVMe: both sides' set */
    uint64_t resident_after; /* the same after the promoting gets: the read+write set */
    io_side get, raw_read;   /* get with KVT_IO_NO_PROMOTE; raw reads */
    io_side get_promote, raw_rw; /* get with promotion; raw reads + as many writes */
} nvme_rows;

typedef struct nvme_job {
    nvme_rows *rows;
    uint64_t seed;
} nvme_job;

/* swarm_run's at_end hook (user: an nvme_job): fills job->rows, or says in
 * rows->why why not; the run goes on either way. */
int measure_nvme_rows(kvt_store *s, const swarm_cfg *c, swarm_result *r, void *user);

#endif
