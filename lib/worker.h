/* worker.h — the API's asynchronous operations: tickets, run on an executor
 * (lib/executor.h) that calls down into the store, and TTL reaping on a real
 * clock. The store never calls up into this file. */
#ifndef KVT_WORKER_H
#define KVT_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

typedef struct kvt_workers kvt_workers;

enum { KVT_JOB_PUT = 1, KVT_JOB_GET = 2 };

/* nthreads run async puts and gets, at most max_inflight tickets pending. */
int kvt__workers_new(kvt_store *s, unsigned nthreads, unsigned max_inflight, kvt_workers **out);
/* Runs every queued job, then stops and joins the threads. NULL is fine. */
void kvt__workers_free(kvt_workers *w);

/* Queues a put or get; *ticket identifies it. The arrays stay the caller's
 * and must live until the ticket completes; opts is copied. KVT_EBUSY when
 * max_inflight tickets are pending. */
/* seq: a put's issue sequence; the worker ends it (kvt__store_put_end). */
int kvt__workers_submit(kvt_workers *w, int op, const kvt_key *keys, size_t n,
                        void *const *ptrs, const kvt_io_opts *opts, uint64_t seq,
                        kvt_ticket *ticket);
int kvt__workers_wait(kvt_workers *w, kvt_ticket ticket, int timeout_ms);
int kvt__workers_eventfd(kvt_workers *w);

#endif
