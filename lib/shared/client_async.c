/* client_async.c — tickets on a connected store: asynchronous puts and gets
 * run in order on a thread of the client's own, completing through
 * kvt_wait/kvt_poll and the eventfd as on a local store. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "shared/client.h"
#include "shared/shared.h"

#define MAX_INFLIGHT 1024u

struct kvt__job {
    kvt__job *next_queued, *next;
    uint64_t ticket;
    int is_put;
    int done;
    int rc;
    size_t n;
    kvt_key *keys;
    void **ptrs;
    kvt_io_opts opts; /* status kept: the caller's, written on completion */
    int has_opts;
    char msg[256];
};

static void job_free(kvt__job *j)
{
    kvt__free(j->keys);
    kvt__free(j->ptrs);
    kvt__free(j);
}

static void *worker_main(void *arg)
{
    kvt__client *c = arg;
    pthread_mutex_lock(&c->qlock);
    for (;;) {
        while (!c->queue && !c->stopping)
            pthread_cond_wait(&c->qcond, &c->qlock);
        kvt__job *j = c->queue;
        if (!j)
            break; /* stopping, and everything queued has run */
        c->queue = j->next_queued;
        if (!c->queue)
            c->queue_tail = NULL;
        pthread_mutex_unlock(&c->qlock);
        kvt__err_clear();
        int rc = kvt__client_io(c, j->is_put, j->keys, j->n, j->ptrs, j->has_opts ? &j->opts : NULL);
        pthread_mutex_lock(&c->qlock);
        j->rc = rc;
        if (rc < 0)
            snprintf(j->msg, sizeof j->msg, "%s", kvt_last_error());
        j->done = 1;
        c->inflight--;
        pthread_cond_broadcast(&c->qdone);
        uint64_t one = 1;
        if (write(c->efd, &one, sizeof one) < 0) {
            /* full counter: the reader has a wake-up pending anyway */
        }
    }
    pthread_mutex_unlock(&c->qlock);
    return NULL;
}

int kvt__client_async_start(kvt__client *c)
{
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0)
        return kvt__err_errno(KVT_ESYS, errno, "kvt_connect: eventfd");
    pthread_mutex_init(&c->qlock, NULL);
    pthread_cond_init(&c->qcond, NULL);
    pthread_cond_init(&c->qdone, NULL);
    c->next_ticket = 1;
    if ((errno = pthread_create(&c->worker, NULL, worker_main, c))) {
        int e = errno;
        close(c->efd);
        c->efd = -1;
        pthread_mutex_destroy(&c->qlock);
        pthread_cond_destroy(&c->qcond);
        pthread_cond_destroy(&c->qdone);
        return kvt__err_errno(KVT_ESYS, e, "kvt_connect: thread");
    }
    c->started = 1;
    return 0;
}

void kvt__client_async_stop(kvt__client *c)
{
    pthread_mutex_lock(&c->qlock);
    c->stopping = 1;
    pthread_cond_broadcast(&c->qcond);
    pthread_mutex_unlock(&c->qlock);
    pthread_join(c->worker, NULL);
    for (kvt__job *j = c->jobs, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    c->jobs = NULL;
    close(c->efd);
    c->efd = -1;
    pthread_mutex_destroy(&c->qlock);
    pthread_cond_destroy(&c->qcond);
    pthread_cond_destroy(&c->qdone);
    c->started = 0;
}

int kvt__client_submit(kvt__client *c, int is_put, const kvt_key *keys, size_t n,
                       void *const *ptrs, const kvt_io_opts *o, kvt_ticket *ticket)
{
    kvt__job *j = kvt__calloc(1, sizeof *j);
    if (j) {
        j->keys = kvt__malloc(n * sizeof *keys);
        j->ptrs = kvt__malloc(n * c->frags * sizeof *ptrs);
    }
    if (!j || !j->keys || !j->ptrs) {
        if (j)
            job_free(j);
        return kvt__err(KVT_ENOMEM, "%s: out of memory", is_put ? "kvt_put" : "kvt_get");
    }
    memcpy(j->keys, keys, n * sizeof *keys);
    memcpy(j->ptrs, ptrs, n * c->frags * sizeof *ptrs);
    j->n = n;
    j->is_put = is_put;
    if (o) {
        j->opts = *o;
        j->opts.size = sizeof j->opts;
        j->opts.parent = NULL; /* not kept past the call; the server's policy gets no parent */
        j->has_opts = 1;
    }
    pthread_mutex_lock(&c->qlock);
    if (c->inflight >= MAX_INFLIGHT) {
        pthread_mutex_unlock(&c->qlock);
        job_free(j);
        return kvt__err(KVT_EBUSY, "%s: %u tickets pending", is_put ? "kvt_put" : "kvt_get",
                        MAX_INFLIGHT);
    }
    c->inflight++;
    j->ticket = c->next_ticket++;
    j->next = c->jobs;
    c->jobs = j;
    if (c->queue_tail)
        c->queue_tail->next_queued = j;
    else
        c->queue = j;
    c->queue_tail = j;
    *ticket = j->ticket;
    pthread_cond_signal(&c->qcond);
    pthread_mutex_unlock(&c->qlock);
    return 0;
}

static kvt__job **find(kvt__client *c, kvt_ticket t)
{
    for (kvt__job **p = &c->jobs; *p; p = &(*p)->next)
        if ((*p)->ticket == t)
            return p;
    return NULL;
}

int kvt__client_wait(kvt_store *s, kvt_ticket ticket, int timeout_ms)
{
    kvt__err_clear();
    kvt__client *c = (kvt__client *)(void *)s;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&c->qlock);
    kvt__job **p = find(c, ticket);
    if (!p) {
        pthread_mutex_unlock(&c->qlock);
        return kvt__err(KVT_ETICKET, "kvt_wait: unknown ticket %llu", (unsigned long long)ticket);
    }
    kvt__job *j = *p;
    while (!j->done && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&c->qdone, &c->qlock);
        else if (pthread_cond_timedwait(&c->qdone, &c->qlock, &deadline) == ETIMEDOUT)
            break;
    }
    if (!j->done) {
        pthread_mutex_unlock(&c->qlock);
        return kvt__err(KVT_ETIMEDOUT, "kvt_wait: ticket %llu still pending",
                        (unsigned long long)ticket);
    }
    *find(c, ticket) = j->next;
    pthread_mutex_unlock(&c->qlock);
    int rc = j->rc;
    if (rc < 0)
        kvt__err(rc, "%s", j->msg);
    job_free(j);
    return rc;
}

int kvt__client_poll(kvt_store *s, kvt_ticket ticket)
{
    int rc = kvt__client_wait(s, ticket, 0);
    return rc == KVT_ETIMEDOUT ? KVT_EINPROGRESS : rc;
}

int kvt__client_eventfd(kvt_store *s)
{
    kvt__err_clear();
    return ((kvt__client *)(void *)s)->efd;
}
