/* jobpool.h — a few threads that run jobs posted by other threads: the NVMe
 * rings hand them payload hashing so that the ring's thread keeps the device
 * queue full (docs/architecture.md, "NVMe: hashing off the ring"). */
#ifndef KVT_JOBPOOL_H
#define KVT_JOBPOOL_H

#include <stdbool.h>

/* A job lives in its poster's memory (no allocation per post). The pool
 * calls fn once; the poster must keep the job alive until fn has returned
 * or kvt__jobpool_cancel took it back. */
typedef struct kvt__job kvt__job;
struct kvt__job {
    void (*fn)(kvt__job *job);
    kvt__job *next;
};

typedef struct kvt__jobpool kvt__jobpool;

/* NULL when threads is 0 or nothing could be started: callers then do the
 * work themselves. */
kvt__jobpool *kvt__jobpool_new(unsigned threads);
/* Runs what is still queued, then joins the threads. NULL is a no-op. */
void kvt__jobpool_free(kvt__jobpool *p);
void kvt__jobpool_post(kvt__jobpool *p, kvt__job *job);
/* Takes job back if no thread has picked it up yet: true then (fn will not
 * be called), false if it has started or finished. */
bool kvt__jobpool_cancel(kvt__jobpool *p, kvt__job *job);
unsigned kvt__jobpool_threads(const kvt__jobpool *p);
/* Called by a pool thread between pieces of work: gives the CPU to whoever
 * waits for it once this thread has worked POOL_SLICE_NS since it last
 * did. The jobs serve threads that drive I/O rings; one of those, woken by
 * completions onto this CPU, would otherwise wait out our whole time slice
 * (milliseconds) while the device idles. */
void kvt__jobpool_pause(void);

#endif
