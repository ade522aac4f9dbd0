/* jobpool.h — the rings' view of the executor (lib/executor.h): a few
 * threads that hash payloads so that the ring's thread keeps the device
 * queue full: the NVMe tier's hashers (docs/architecture.md, "NVMe: hashing
 * off the ring") and the cluster tier's verifiers (docs/cluster.md). Only
 * names: the pool is an executor, a job is a task. */
#ifndef KVT_JOBPOOL_H
#define KVT_JOBPOOL_H

#include <stdbool.h>

#include "error.h"
#include "executor.h"

typedef kvt__task kvt__job;
typedef kvt__executor kvt__jobpool;

/* NULL when threads is 0 or they could not be started: callers then do the
 * work themselves (the error is not theirs to report). */
static inline kvt__jobpool *kvt__jobpool_new(unsigned threads)
{
    kvt__executor_opts o = {.threads = threads, .name = "kvt-hash", .pause_between = true};
    kvt__executor *ex = NULL;
    if (threads && kvt__executor_new(&o, &ex))
        kvt__err_clear();
    return ex;
}

static inline void kvt__jobpool_free(kvt__jobpool *p)
{
    kvt__executor_free(p);
}

/* Never refused: the pool is unbounded and outlives its posters. */
static inline void kvt__jobpool_post(kvt__jobpool *p, kvt__job *job)
{
    (void)kvt__executor_submit(p, job, NULL);
}

static inline bool kvt__jobpool_cancel(kvt__jobpool *p, kvt__job *job)
{
    return kvt__executor_cancel(p, job);
}

static inline unsigned kvt__jobpool_threads(const kvt__jobpool *p)
{
    return kvt__executor_threads(p);
}

static inline void kvt__jobpool_pause(void)
{
    kvt__executor_pause();
}

#endif
