/* worker.c — the API's asynchronous operations (tickets) on an executor, and TTL reaping. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cuda.h"
#include "error.h"
#include "executor.h"
#include "store.h"

/* How often idle workers apply TTL expiry on a real clock. */
#define REAP_INTERVAL_MS 100

enum { T_FREE = 0, T_PENDING = 1, T_DONE = 2 };

/* An API call to run: the executor's task, and what the call passed. */
typedef struct job {
    kvt__task task; /* first: the executor hands it back */
    kvt_workers *w;
    int op; /* KVT_JOB_* */
    uint32_t ticket;
    const kvt_key *keys;
    size_t n;
    void *const *ptrs;
    kvt_io_opts opts; /* opts.parent is NULL: the key is copied to `parent` */
    int has_opts;
    int has_parent;
    kvt_key parent; /* the caller's *opts->parent, read at the call (not kept) */
    uint64_t seq;   /* a put's issue sequence (kvt__store_put_begin) */
} job;

/* A ticket and the job it stands for (the job lives here until the ticket
 * completes: no allocation per call). */
typedef struct ticket_slot {
    uint32_t gen;
    int state;
    int result;
    char message[200]; /* the worker's kvt_last_error() when result < 0 */
    job job;
} ticket_slot;

/* The API calls down into the store on the executor's threads; the store's
 * own background work (write-through, demotion) runs on the store's
 * executors, so a put waiting for a slot never waits for a ticket queued
 * behind it. */
struct kvt_workers {
    kvt_store *store;
    kvt__executor *ex;
    pthread_mutex_t lock;
    pthread_cond_t done; /* a ticket completed */
    ticket_slot *tickets;
    uint32_t ntickets;
    uint32_t *free_tickets;
    uint32_t nfree;
    int efd;
    _Atomic uint64_t last_reap; /* store time of the last TTL pass */
};

static void complete(kvt_workers *w, const job *j, int result)
{
    pthread_mutex_lock(&w->lock);
    ticket_slot *t = &w->tickets[j->ticket];
    t->state = T_DONE;
    t->result = result;
    /* Errors are per thread: carry the detail over to the waiter. */
    snprintf(t->message, sizeof t->message, "%s", result < 0 ? kvt_last_error() : "");
    pthread_cond_broadcast(&w->done);
    pthread_mutex_unlock(&w->lock);
    uint64_t one = 1;
    ssize_t r = write(w->efd, &one, sizeof one);
    (void)r; /* the counter can't overflow in practice; nothing to do if it does */
    atomic_fetch_add_explicit(&w->store->st.tickets_completed, 1, memory_order_relaxed);
}

static void run(kvt__task *task)
{
    job *j = (job *)task;
    kvt_workers *w = j->w;
    kvt_store *s = w->store;
    kvt_io_opts opts;
    const kvt_io_opts *o = NULL;
    if (j->has_opts) {
        opts = j->opts;
        if (j->has_parent)
            opts.parent = &j->parent;
        o = &opts;
    }
    /* Waits for the event recorded on the caller's stream at the call;
     * io_end opens a KVT_IO_STREAM_WAIT gate on every path. */
    int rc = kvt__cuda_io_begin(o);
    if (!rc)
        rc = j->op == KVT_JOB_PUT ? kvt__store_put(s, j->keys, j->n, j->ptrs, o, j->seq)
                                  : kvt__store_get(s, j->keys, j->n, j->ptrs, o);
    kvt__cuda_io_end(o);
    if (j->op == KVT_JOB_PUT)
        kvt__store_put_end(s, j->seq);
    complete(w, j, rc);
}

/* Applies TTL expiry on a real clock at least every REAP_INTERVAL_MS, also
 * while the queue never empties (operations themselves don't, see store.c). */
static void reap_if_due(void *user)
{
    kvt_workers *w = user;
    kvt_store *s = w->store;
    if (s->manual_clock || s->clock)
        return;
    uint64_t now = kvt__store_now(s);
    uint64_t last = atomic_load_explicit(&w->last_reap, memory_order_relaxed);
    if (now - last < REAP_INTERVAL_MS * 1000000ull ||
        !atomic_compare_exchange_strong(&w->last_reap, &last, now))
        return;
    kvt__store_expire(s);
}

int kvt__workers_new(kvt_store *s, unsigned nthreads, unsigned max_inflight, kvt_workers **out)
{
    kvt_workers *w = kvt__calloc(1, sizeof *w);
    if (!w)
        return kvt__err(KVT_ENOMEM, "workers");
    w->store = s;
    w->efd = -1;
    w->ntickets = max_inflight;
    w->tickets = kvt__calloc(w->ntickets, sizeof *w->tickets);
    w->free_tickets = kvt__malloc(w->ntickets * sizeof *w->free_tickets);
    if (!w->tickets || !w->free_tickets) {
        kvt__free(w->tickets);
        kvt__free(w->free_tickets);
        kvt__free(w);
        return kvt__err(KVT_ENOMEM, "worker queues");
    }
    for (uint32_t i = 0; i < w->ntickets; i++) {
        w->tickets[i].gen = 1;
        w->free_tickets[w->nfree++] = w->ntickets - 1 - i;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->done, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        int e = errno;
        kvt__workers_free(w);
        return kvt__err_errno(KVT_ESYS, e, "eventfd");
    }
    /* TTL reaping on the real clock: after each call, and while idle. A
     * virtual clock (manual, or the caller's) is reaped by the operations
     * themselves (store.c, expire_due). */
    int real_clock = !s->manual_clock && !s->clock;
    kvt__executor_opts o = {.threads = nthreads,
                            .name = "kvt-worker",
                            .tick = real_clock ? reap_if_due : NULL,
                            .tick_user = w,
                            .tick_ms = REAP_INTERVAL_MS};
    int rc = kvt__executor_new(&o, &w->ex);
    if (rc) {
        kvt__workers_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void kvt__workers_free(kvt_workers *w)
{
    if (!w)
        return;
    kvt__executor_free(w->ex); /* runs every queued job first */
    if (w->efd >= 0)
        close(w->efd);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->lock);
    kvt__free(w->tickets);
    kvt__free(w->free_tickets);
    kvt__free(w);
}

int kvt__workers_submit(kvt_workers *w, int op, const kvt_key *keys, size_t n,
                        void *const *ptrs, const kvt_io_opts *opts, uint64_t seq,
                        kvt_ticket *ticket)
{
    job j = {.task.fn = run, .w = w, .op = op, .keys = keys, .n = n, .ptrs = ptrs, .seq = seq};
    if (opts) {
        size_t sz = opts->size < sizeof j.opts ? opts->size : sizeof j.opts;
        memcpy(&j.opts, opts, sz);
        j.opts.size = sizeof j.opts;
        j.has_opts = 1;
        /* The header keeps ptrs, keys and status until the ticket completes,
         * nothing else: the parent key is read now, not when a worker runs. */
        if (j.opts.parent) {
            j.parent = *j.opts.parent;
            j.has_parent = 1;
            j.opts.parent = NULL;
        }
    }
    pthread_mutex_lock(&w->lock);
    if (!w->nfree) {
        pthread_mutex_unlock(&w->lock);
        return kvt__err(KVT_EBUSY, "%u tickets are pending", w->ntickets);
    }
    uint32_t t = w->free_tickets[--w->nfree];
    ticket_slot *ts = &w->tickets[t];
    ts->state = T_PENDING;
    j.ticket = t;
    ts->job = j;
    /* Under the lock, so that a waiter never sees the ticket before it is
     * queued; the executor's queue is unbounded (tickets bound it). */
    int rc = kvt__executor_submit(w->ex, &ts->job.task, NULL);
    if (rc) { /* stopping: the store is closing */
        ts->state = T_FREE;
        w->free_tickets[w->nfree++] = t;
        pthread_mutex_unlock(&w->lock);
        return kvt__err(KVT_ECLOSED, "the store is closing");
    }
    atomic_fetch_add_explicit(&w->store->tickets_pending, 1, memory_order_relaxed);
    *ticket = ((uint64_t)ts->gen << 32) | (t + 1);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

/* The slot of a live ticket, or -1. Lock held. */
static int ticket_slot_of(kvt_workers *w, kvt_ticket ticket)
{
    uint64_t idx = (ticket & 0xffffffffu);
    uint32_t gen = (uint32_t)(ticket >> 32);
    if (idx == 0 || idx > w->ntickets)
        return -1;
    ticket_slot *t = &w->tickets[idx - 1];
    if (t->gen != gen || t->state == T_FREE)
        return -1;
    return (int)(idx - 1);
}

int kvt__workers_wait(kvt_workers *w, kvt_ticket ticket, int timeout_ms)
{
    struct timespec until;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&w->lock);
    int i = ticket_slot_of(w, ticket);
    if (i < 0) {
        pthread_mutex_unlock(&w->lock);
        return kvt__err(KVT_ETICKET, "ticket %#llx is unknown or already consumed",
                        (unsigned long long)ticket);
    }
    ticket_slot *t = &w->tickets[i];
    while (t->state == T_PENDING) {
        if (timeout_ms == 0)
            break;
        if (timeout_ms < 0)
            pthread_cond_wait(&w->done, &w->lock);
        else if (pthread_cond_timedwait(&w->done, &w->lock, &until) == ETIMEDOUT)
            break;
    }
    if (t->state == T_PENDING || ticket_slot_of(w, ticket) != i) {
        int consumed = ticket_slot_of(w, ticket) != i;
        pthread_mutex_unlock(&w->lock);
        if (consumed)
            return kvt__err(KVT_ETICKET, "ticket consumed by another thread");
        return KVT_ETIMEDOUT;
    }
    int result = t->result;
    if (result < 0)
        kvt__err(result, "asynchronous operation: %s", t->message);
    t->state = T_FREE;
    t->gen++;
    if (t->gen == 0)
        t->gen = 1;
    w->free_tickets[w->nfree++] = (uint32_t)i;
    atomic_fetch_sub_explicit(&w->store->tickets_pending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&w->lock);
    return result;
}

int kvt__workers_eventfd(kvt_workers *w)
{
    return w->efd;
}
