/* crew.c — a fixed set of threads that each run one function per round: the thread pools of the bench's baselines. */
#include "../bench.h"

#include <pthread.h>
#include <stdlib.h>

struct bench_crew {
    unsigned nthreads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t round;   /* bumped to start a round; threads wait for a new one */
    unsigned running; /* threads not yet back from this round's fn */
    int stop;
    void (*fn)(void *arg);
    void *arg;
};

static void *crew_main(void *p)
{
    bench_crew *c = p;
    uint64_t seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->round == seen)
            pthread_cond_wait(&c->go, &c->mu);
        if (c->stop)
            break;
        seen = c->round;
        void (*fn)(void *) = c->fn;
        void *arg = c->arg;
        pthread_mutex_unlock(&c->mu);
        fn(arg);
        pthread_mutex_lock(&c->mu);
        if (--c->running == 0)
            pthread_cond_signal(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

bench_crew *bench_crew_new(unsigned nthreads)
{
    bench_crew *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->threads = calloc(nthreads ? nthreads : 1, sizeof *c->threads);
    if (!c->threads) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->go, NULL);
    pthread_cond_init(&c->done, NULL);
    for (unsigned i = 0; i < nthreads; i++) {
        if (pthread_create(&c->threads[i], NULL, crew_main, c)) {
            bench_crew_free(c);
            return NULL;
        }
        c->nthreads++;
    }
    return c;
}

void bench_crew_free(bench_crew *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    for (unsigned i = 0; i < c->nthreads; i++)
        pthread_join(c->threads[i], NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->go);
    pthread_cond_destroy(&c->done);
    free(c->threads);
    free(c);
}

unsigned bench_crew_threads(const bench_crew *c)
{
    return c->nthreads;
}

void bench_crew_start(bench_crew *c, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&c->mu);
    c->fn = fn;
    c->arg = arg;
    /* Every thread counts, woken yet or not, so that wait() covers a thread
     * that only gets to run fn after the caller's own part is done. */
    c->running = c->nthreads;
    c->round++;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
}

void bench_crew_wait(bench_crew *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->running)
        pthread_cond_wait(&c->done, &c->mu);
    pthread_mutex_unlock(&c->mu);
}
