/* executor.c — the thread pool every background thread of kvtier belongs to. */
#include "executor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "error.h"

struct kvt__executor {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a task queued, or stopping */
    kvt__task *head, *tail;
    unsigned queued;
    bool stopping;
    kvt__executor_opts o;
    unsigned nthreads; /* started */
    pthread_t *threads;
};

/* ------------------------------------------------------------------ groups */

void kvt__group_init(kvt__group *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->done, NULL);
    g->pending = 0;
}

void kvt__group_destroy(kvt__group *g)
{
    pthread_cond_destroy(&g->done);
    pthread_mutex_destroy(&g->lock);
}

static void group_add(kvt__group *g, unsigned n)
{
    pthread_mutex_lock(&g->lock);
    g->pending += n;
    pthread_mutex_unlock(&g->lock);
}

/* The waiter may destroy g as soon as it sees 0, which it can only see
 * once we have unlocked: nothing here touches g after that. */
static void group_done(kvt__group *g)
{
    pthread_mutex_lock(&g->lock);
    if (--g->pending == 0)
        pthread_cond_broadcast(&g->done);
    pthread_mutex_unlock(&g->lock);
}

void kvt__group_wait(kvt__group *g)
{
    pthread_mutex_lock(&g->lock);
    while (g->pending)
        pthread_cond_wait(&g->done, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

/* ------------------------------------------------------------------- tasks */

/* 20 us: a ring's thread waits at most about that for the CPU, a small
 * part of the milliseconds a queue of transfers takes, and a pool thread
 * hashing 64 KiB blocks makes one system call per eight blocks rather than
 * one per block. */
#define PAUSE_SLICE_NS 20000u

static _Thread_local uint64_t last_pause_ns;

void kvt__executor_pause(void)
{
    uint64_t now = kvt__monotonic_ns();
    if (now - last_pause_ns < PAUSE_SLICE_NS)
        return;
    sched_yield();
    last_pause_ns = kvt__monotonic_ns();
}

/* The oldest queued task, or NULL. Lock held. */
static kvt__task *dequeue(kvt__executor *ex)
{
    kvt__task *t = ex->head;
    if (!t)
        return NULL;
    ex->head = t->next;
    if (!ex->head)
        ex->tail = NULL;
    ex->queued--;
    return t;
}

/* Runs t. Its group is read first: a task nobody waits for may be freed by
 * its own fn. */
static void run(kvt__task *t)
{
    kvt__group *g = t->group;
    t->fn(t);
    if (g)
        group_done(g);
}

static void *pool_main(void *arg)
{
    kvt__executor *ex = arg;
    const kvt__executor_opts *o = &ex->o;
    pthread_mutex_lock(&ex->lock);
    for (;;) {
        kvt__task *t = dequeue(ex);
        if (t) {
            pthread_mutex_unlock(&ex->lock);
            run(t);
            if (o->pause_between)
                kvt__executor_pause();
            if (o->tick)
                o->tick(o->tick_user);
            pthread_mutex_lock(&ex->lock);
            continue;
        }
        if (ex->stopping)
            break; /* and nothing left */
        if (!o->tick || !o->tick_ms) {
            pthread_cond_wait(&ex->work, &ex->lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += o->tick_ms / 1000;
        until.tv_nsec += (long)(o->tick_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&ex->work, &ex->lock, &until) == ETIMEDOUT && !ex->head) {
            pthread_mutex_unlock(&ex->lock);
            o->tick(o->tick_user);
            pthread_mutex_lock(&ex->lock);
        }
    }
    pthread_mutex_unlock(&ex->lock);
    return NULL;
}

/* ---------------------------------------------------------------- the pool */

static void stop_threads(kvt__executor *ex)
{
    pthread_mutex_lock(&ex->lock);
    ex->stopping = true;
    pthread_cond_broadcast(&ex->work);
    pthread_mutex_unlock(&ex->lock);
    for (unsigned i = 0; i < ex->nthreads; i++)
        pthread_join(ex->threads[i], NULL);
    ex->nthreads = 0;
}

int kvt__executor_new(const kvt__executor_opts *o, kvt__executor **out)
{
    const char *name = o->name ? o->name : "executor";
    if (!o->threads)
        return kvt__err(KVT_EINVAL, "%s: no threads", name);
    kvt__executor *ex = kvt__calloc(1, sizeof *ex);
    if (!ex)
        return kvt__err(KVT_ENOMEM, "%s", name);
    ex->threads = kvt__calloc(o->threads, sizeof *ex->threads);
    if (!ex->threads) {
        kvt__free(ex);
        return kvt__err(KVT_ENOMEM, "%s threads", name);
    }
    ex->o = *o;
    pthread_mutex_init(&ex->lock, NULL);
    pthread_cond_init(&ex->work, NULL);
    /* Pool threads block every signal so that the application's handlers
     * run on its own threads, as they would without this library. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = 0;
    for (unsigned i = 0; i < o->threads; i++) {
        e = pthread_create(&ex->threads[i], NULL, pool_main, ex);
        if (e)
            break;
        if (o->name)
            pthread_setname_np(ex->threads[i], o->name);
        ex->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        unsigned started = ex->nthreads;
        kvt__executor_free(ex);
        return kvt__err_errno(KVT_ESYS, e, "starting %s thread %u", name, started);
    }
    *out = ex;
    return 0;
}

void kvt__executor_free(kvt__executor *ex)
{
    if (!ex)
        return;
    stop_threads(ex);
    /* Tasks queued with no thread left to run them (a failed start). */
    kvt__task *t;
    while ((t = dequeue(ex)))
        run(t);
    pthread_cond_destroy(&ex->work);
    pthread_mutex_destroy(&ex->lock);
    kvt__free(ex->threads);
    kvt__free(ex);
}

/* Appends t. Lock held. */
static void enqueue(kvt__executor *ex, kvt__task *t, kvt__group *g)
{
    t->group = g;
    t->next = NULL;
    if (ex->tail)
        ex->tail->next = t;
    else
        ex->head = t;
    ex->tail = t;
    ex->queued++;
}

int kvt__executor_submit(kvt__executor *ex, kvt__task *task, kvt__group *g)
{
    if (g)
        group_add(g, 1);
    pthread_mutex_lock(&ex->lock);
    int rc = ex->stopping                                      ? KVT_ECLOSED
             : ex->o.max_queued && ex->queued >= ex->o.max_queued ? KVT_EBUSY
                                                                  : 0;
    if (!rc) {
        enqueue(ex, task, g);
        pthread_cond_signal(&ex->work);
    }
    pthread_mutex_unlock(&ex->lock);
    if (rc && g)
        group_done(g);
    return rc;
}

int kvt__executor_submit_all(kvt__executor *ex, kvt__task *const *tasks, size_t n,
                             kvt__group *g)
{
    if (g)
        group_add(g, (unsigned)n);
    pthread_mutex_lock(&ex->lock);
    int rc = ex->stopping ? KVT_ECLOSED : 0;
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            enqueue(ex, tasks[i], g);
        pthread_cond_broadcast(&ex->work);
    }
    pthread_mutex_unlock(&ex->lock);
    if (rc && g)
        for (size_t i = 0; i < n; i++)
            group_done(g);
    return rc;
}

bool kvt__executor_cancel(kvt__executor *ex, kvt__task *task)
{
    bool found = false;
    pthread_mutex_lock(&ex->lock);
    kvt__task *prev = NULL;
    for (kvt__task *t = ex->head; t; prev = t, t = t->next)
        if (t == task) {
            if (prev)
                prev->next = t->next;
            else
                ex->head = t->next;
            if (ex->tail == t)
                ex->tail = prev;
            ex->queued--;
            found = true;
            break;
        }
    pthread_mutex_unlock(&ex->lock);
    if (found && task->group)
        group_done(task->group);
    return found;
}

unsigned kvt__executor_threads(const kvt__executor *ex)
{
    return ex ? ex->nthreads : 0;
}

int kvt__executor_set_affinity(kvt__executor *ex, const cpu_set_t *cpus)
{
    int first = 0;
    for (unsigned i = 0; ex && i < ex->nthreads; i++) {
        int rc = pthread_setaffinity_np(ex->threads[i], sizeof *cpus, cpus);
        if (rc && !first)
            first = rc;
    }
    return first;
}
