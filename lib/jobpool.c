/* jobpool.c — a few threads that run jobs posted by other threads (FIFO). */
#include "jobpool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>

#include "alloc.h"
#include "clock.h"

struct kvt__jobpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kvt__job *head, *tail;
    bool stopping;
    unsigned nthreads;
    pthread_t *threads;
};

/* 20 us: a ring's thread waits at most about that for the CPU, a small
 * part of the milliseconds a queue of transfers takes, and a pool thread
 * hashing 64 KiB blocks makes one system call per eight blocks rather than
 * one per block. */
#define POOL_SLICE_NS 20000u

static _Thread_local uint64_t last_pause_ns;

void kvt__jobpool_pause(void)
{
    uint64_t now = kvt__monotonic_ns();
    if (now - last_pause_ns < POOL_SLICE_NS)
        return;
    sched_yield();
    last_pause_ns = kvt__monotonic_ns();
}

static void *pool_main(void *arg)
{
    kvt__jobpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        kvt__job *j = p->head;
        if (!j)
            break; /* stopping, and nothing left */
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->fn(j);
        kvt__jobpool_pause();
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

kvt__jobpool *kvt__jobpool_new(unsigned threads)
{
    if (!threads)
        return NULL;
    kvt__jobpool *p = kvt__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = kvt__calloc(threads, sizeof *p->threads);
    if (!p->threads) {
        kvt__free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    /* Helpers take no signals: those are the application's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&p->threads[p->nthreads], NULL, pool_main, p) == 0)
            p->nthreads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!p->nthreads) {
        kvt__jobpool_free(p);
        return NULL;
    }
    return p;
}

void kvt__jobpool_free(kvt__jobpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    kvt__free(p->threads);
    kvt__free(p);
}

void kvt__jobpool_post(kvt__jobpool *p, kvt__job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool kvt__jobpool_cancel(kvt__jobpool *p, kvt__job *job)
{
    bool found = false;
    pthread_mutex_lock(&p->mu);
    kvt__job *prev = NULL;
    for (kvt__job *j = p->head; j; prev = j, j = j->next)
        if (j == job) {
            if (prev)
                prev->next = j->next;
            else
                p->head = j->next;
            if (p->tail == j)
                p->tail = prev;
            found = true;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return found;
}

unsigned kvt__jobpool_threads(const kvt__jobpool *p)
{
    return p ? p->nthreads : 0;
}
