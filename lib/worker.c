/* worker.c — background threads: asynchronous operations, tickets, write-through, TTL reaping. */
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
#include "store.h"

/* Tells lib/cuda.c that async jobs run the stream-ordering hooks. */
const int kvt__workers_cuda_hooks = 1;

/* How often idle workers apply TTL expiry on a real clock. */
#define REAP_INTERVAL_MS 100
/* Write-through copies queued at most; more are dropped. */
#define BACKGROUND_SLOTS 4096

enum { T_FREE = 0, T_PENDING = 1, T_DONE = 2 };

typedef struct ticket_slot {
    uint32_t gen;
    int state;
    int result;
    char message[200]; /* the worker's kvt_last_error() when result < 0 */
} ticket_slot;

typedef struct job {
    int op; /* KVT_JOB_*, or 0 for a write-through copy */
    uint32_t ticket;
    const kvt_key *keys;
    size_t n;
    void *const *ptrs;
    kvt_io_opts opts; /* opts.parent is NULL: the key is copied to `parent` */
    int has_opts;
    int has_parent;
    kvt_key parent; /* the caller's *opts->parent, read at the call (not kept) */
    uint64_t seq;   /* a put's issue sequence (kvt__store_put_begin) */
    uint32_t id;
    int src, dst;
} job;

/* A FIFO of jobs and the threads that serve it. */
typedef struct jobq {
    job *ring;
    uint32_t cap, head, len;
    pthread_cond_t work; /* jobs queued or stopping */
    int stopping;
} jobq;

typedef struct worker {
    pthread_t thread;
    kvt_workers *w;
    jobq *q;
} worker;

/*
 * Two queues with their own threads: async puts and gets (tickets), and
 * write-through copies. A copy holds a ref on its source slot until it runs,
 * and a put may wait in take_slot (store.c) for exactly such a slot; were the
 * copies queued behind the puts on the same threads, every thread could be
 * waiting for a slot that only a copy queued behind it would free. Copier
 * threads never run puts, so the copies always drain.
 */
struct kvt_workers {
    kvt_store *store;
    pthread_mutex_t lock;
    pthread_cond_t done; /* a ticket completed, or a background job finished */
    jobq ops;            /* puts and gets, one per ticket */
    jobq copies;         /* write-through copies */
    ticket_slot *tickets;
    uint32_t ntickets;
    uint32_t *free_tickets;
    uint32_t nfree;
    uint32_t background; /* queued or running write-through copies */
    int efd;
    _Atomic uint64_t last_reap; /* store time of the last TTL pass */
    unsigned nops, ncopiers;    /* threads started for each queue */
    worker *threads;            /* nops for `ops`, then ncopiers for `copies` */
};

static void complete(kvt_workers *w, const job *j, int result)
{
    pthread_mutex_lock(&w->lock);
    if (j->op) {
        w->tickets[j->ticket].state = T_DONE;
        w->tickets[j->ticket].result = result;
        /* Errors are per thread: carry the detail over to the waiter. */
        snprintf(w->tickets[j->ticket].message, sizeof w->tickets[j->ticket].message, "%s",
                 result < 0 ? kvt_last_error() : "");
    } else {
        w->background--;
    }
    pthread_cond_broadcast(&w->done);
    pthread_mutex_unlock(&w->lock);
    if (j->op) {
        uint64_t one = 1;
        ssize_t r = write(w->efd, &one, sizeof one);
        (void)r; /* the counter can't overflow in practice; nothing to do if it does */
        atomic_fetch_add_explicit(&w->store->st.tickets_completed, 1, memory_order_relaxed);
    }
}

static void run(kvt_workers *w, const job *j)
{
    kvt_store *s = w->store;
    kvt_io_opts opts;
    const kvt_io_opts *o = NULL;
    if (j->has_opts) {
        opts = j->opts;
        if (j->has_parent)
            opts.parent = &j->parent;
        o = &opts;
    }
    int rc = 0;
    if (j->op == KVT_JOB_PUT || j->op == KVT_JOB_GET) {
        /* Waits for the event recorded on the caller's stream at the call;
         * io_end opens a KVT_IO_STREAM_WAIT gate on every path. */
        rc = kvt__cuda_io_begin(o);
        if (!rc)
            rc = j->op == KVT_JOB_PUT ? kvt__store_put(s, j->keys, j->n, j->ptrs, o, j->seq)
                                      : kvt__store_get(s, j->keys, j->n, j->ptrs, o);
        kvt__cuda_io_end(o);
        if (j->op == KVT_JOB_PUT)
            kvt__store_put_end(s, j->seq);
    } else
        kvt__store_writethrough(s, j->id, j->src, j->dst);
    complete(w, j, rc);
}

/* Applies TTL expiry on a real clock at least every REAP_INTERVAL_MS, also
 * while the queue never empties (operations themselves don't, see store.c). */
static void reap_if_due(kvt_workers *w)
{
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

/* Takes the oldest job of q into *j. Lock held. */
static int dequeue(jobq *q, job *j)
{
    if (!q->len)
        return 0;
    *j = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return 1;
}

static void *worker_main(void *arg)
{
    worker *me = arg;
    kvt_workers *w = me->w;
    jobq *q = me->q;
    /* TTL reaping is the ticket threads' job: copies may wait on I/O for long. */
    int reaps = q == &w->ops;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        job j;
        if (dequeue(q, &j)) {
            pthread_mutex_unlock(&w->lock);
            run(w, &j);
            if (reaps)
                reap_if_due(w);
            pthread_mutex_lock(&w->lock);
            continue;
        }
        if (q->stopping)
            break;
        if (!reaps || w->store->manual_clock) {
            pthread_cond_wait(&q->work, &w->lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REAP_INTERVAL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&q->work, &w->lock, &until) == ETIMEDOUT && !q->len) {
            pthread_mutex_unlock(&w->lock);
            reap_if_due(w);
            pthread_mutex_lock(&w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int kvt__workers_new(kvt_store *s, unsigned nthreads, unsigned ncopiers, unsigned max_inflight,
                     kvt_workers **out)
{
    kvt_workers *w = kvt__calloc(1, sizeof *w);
    if (!w)
        return kvt__err(KVT_ENOMEM, "workers");
    w->store = s;
    w->efd = -1;
    w->ntickets = max_inflight;
    w->ops.cap = max_inflight;
    w->copies.cap = BACKGROUND_SLOTS;
    w->ops.ring = kvt__calloc(w->ops.cap, sizeof *w->ops.ring);
    w->copies.ring = ncopiers ? kvt__calloc(w->copies.cap, sizeof *w->copies.ring) : NULL;
    w->tickets = kvt__calloc(w->ntickets, sizeof *w->tickets);
    w->free_tickets = kvt__malloc(w->ntickets * sizeof *w->free_tickets);
    w->threads = kvt__calloc(nthreads + ncopiers, sizeof *w->threads);
    if (!w->ops.ring || (ncopiers && !w->copies.ring) || !w->tickets || !w->free_tickets ||
        !w->threads) {
        kvt__free(w->ops.ring);
        kvt__free(w->copies.ring);
        kvt__free(w->tickets);
        kvt__free(w->free_tickets);
        kvt__free(w->threads);
        kvt__free(w);
        return kvt__err(KVT_ENOMEM, "worker queues");
    }
    for (uint32_t i = 0; i < w->ntickets; i++) {
        w->tickets[i].gen = 1;
        w->free_tickets[w->nfree++] = w->ntickets - 1 - i;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->ops.work, NULL);
    pthread_cond_init(&w->copies.work, NULL);
    pthread_cond_init(&w->done, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        int e = errno;
        kvt__workers_free(w);
        return kvt__err_errno(KVT_ESYS, e, "eventfd");
    }
    for (unsigned i = 0; i < nthreads + ncopiers; i++) {
        worker *t = &w->threads[i];
        int copier = i >= nthreads;
        t->w = w;
        t->q = copier ? &w->copies : &w->ops;
        int e = pthread_create(&t->thread, NULL, worker_main, t);
        if (e) {
            kvt__workers_free(w);
            return kvt__err_errno(KVT_ESYS, e, "starting %s thread %u",
                                  copier ? "write-through" : "worker", i);
        }
        if (copier)
            w->ncopiers++;
        else
            w->nops++;
    }
    *out = w;
    return 0;
}

/* Lets q's threads finish every queued job, then joins them. */
static void stop(kvt_workers *w, jobq *q, unsigned first, unsigned n)
{
    pthread_mutex_lock(&w->lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = first; i < first + n; i++)
        pthread_join(w->threads[i].thread, NULL);
}

void kvt__workers_free(kvt_workers *w)
{
    if (!w)
        return;
    /* Puts first: the copies they queue while draining still run. */
    stop(w, &w->ops, 0, w->nops);
    stop(w, &w->copies, w->nops, w->ncopiers);
    /* Jobs queued with no thread to run them (a failed start) are run here. */
    job j;
    while (dequeue(&w->ops, &j))
        run(w, &j);
    while (dequeue(&w->copies, &j))
        run(w, &j);
    if (w->efd >= 0)
        close(w->efd);
    pthread_cond_destroy(&w->ops.work);
    pthread_cond_destroy(&w->copies.work);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->lock);
    kvt__free(w->ops.ring);
    kvt__free(w->copies.ring);
    kvt__free(w->tickets);
    kvt__free(w->free_tickets);
    kvt__free(w->threads);
    kvt__free(w);
}

static void enqueue(jobq *q, const job *j)
{
    q->ring[(q->head + q->len) % q->cap] = *j;
    q->len++;
    pthread_cond_signal(&q->work);
}

int kvt__workers_submit(kvt_workers *w, int op, const kvt_key *keys, size_t n,
                        void *const *ptrs, const kvt_io_opts *opts, uint64_t seq,
                        kvt_ticket *ticket)
{
    job j = {.op = op, .keys = keys, .n = n, .ptrs = ptrs, .seq = seq};
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
    if (!w->nfree || w->ops.len == w->ops.cap) {
        pthread_mutex_unlock(&w->lock);
        return kvt__err(KVT_EBUSY, "%u tickets are pending", w->ntickets);
    }
    uint32_t t = w->free_tickets[--w->nfree];
    w->tickets[t].state = T_PENDING;
    j.ticket = t;
    enqueue(&w->ops, &j);
    *ticket = ((uint64_t)w->tickets[t].gen << 32) | (t + 1);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int kvt__workers_background(kvt_workers *w, uint32_t id, int src, int dst)
{
    job j = {.op = 0, .id = id, .src = src, .dst = dst};
    pthread_mutex_lock(&w->lock);
    int full = !w->ncopiers || w->copies.stopping || w->copies.len == w->copies.cap;
    if (!full) {
        w->background++;
        enqueue(&w->copies, &j);
    }
    pthread_mutex_unlock(&w->lock);
    return full;
}

void kvt__workers_quiesce(kvt_workers *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->background)
        pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
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
    pthread_mutex_unlock(&w->lock);
    return result;
}

int kvt__workers_eventfd(kvt_workers *w)
{
    return w->efd;
}

uint64_t kvt__workers_pending(kvt_workers *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t n = w->ntickets - w->nfree;
    pthread_mutex_unlock(&w->lock);
    return n;
}
