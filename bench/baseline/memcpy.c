/* memcpy.c — the memcpy baseline: the copy the library's copier is measured against, split the same way over as many threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"

/* ----------------------------------------------------------- the baseline
 * Plain memcpy, split like the library's copier would ideally split it:
 * participant k copies bytes [total*k/n, total*(k+1)/n) of the concatenated
 * ops, boundaries rounded to 64 bytes so no cache line has two writers.
 * Persistent threads and two barriers: the wake-up costs the same few
 * microseconds as the library's pool, so small batches compare fairly. */

struct bench_copier {
    unsigned nthreads;
    pthread_t *threads;
    pthread_barrier_t start, end;
    const bench_copy_op *ops;
    size_t n, total;
    int stop;
};

typedef struct {
    bench_copier *c;
    unsigned k;
} part_arg;

static void copy_part(const bench_copier *c, unsigned k)
{
    size_t lo = c->total / c->nthreads * k, hi = c->total / c->nthreads * (k + 1);
    lo &= ~(size_t)63;
    hi = k + 1 == c->nthreads ? c->total : hi & ~(size_t)63;
    size_t at = 0;
    for (size_t i = 0; i < c->n && at < hi; i++) {
        size_t a = at, b = at + c->ops[i].len;
        at = b;
        if (b <= lo)
            continue;
        size_t from = a < lo ? lo - a : 0, to = (b > hi ? hi : b) - a;
        if (to > from)
            memcpy((char *)c->ops[i].dst + from, (const char *)c->ops[i].src + from, to - from);
    }
}

static void *helper(void *arg)
{
    part_arg *p = arg;
    bench_copier *c = p->c;
    for (;;) {
        pthread_barrier_wait(&c->start);
        if (c->stop)
            break;
        copy_part(c, p->k);
        pthread_barrier_wait(&c->end);
    }
    free(p);
    return NULL;
}

bench_copier *bench_copier_new(unsigned nthreads)
{
    bench_copier *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->nthreads = nthreads ? nthreads : 1;
    if (c->nthreads == 1)
        return c;
    c->threads = calloc(c->nthreads - 1, sizeof *c->threads);
    if (!c->threads) {
        free(c);
        return NULL;
    }
    pthread_barrier_init(&c->start, NULL, c->nthreads);
    pthread_barrier_init(&c->end, NULL, c->nthreads);
    for (unsigned k = 1; k < c->nthreads; k++) {
        part_arg *p = malloc(sizeof *p);
        if (p) {
            p->c = c;
            p->k = k;
        }
        if (!p || pthread_create(&c->threads[k - 1], NULL, helper, p)) {
            /* Barriers count every participant, so a missing one would hang
             * the others: give up here, before any barrier is used. */
            fprintf(stderr, "kvtier-bench: cannot start baseline copy thread %u\n", k);
            exit(BENCH_FAILED);
        }
    }
    return c;
}

void bench_copier_run(bench_copier *c, const bench_copy_op *ops, size_t n)
{
    if (c->nthreads == 1) {
        for (size_t i = 0; i < n; i++)
            memcpy(ops[i].dst, ops[i].src, ops[i].len);
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ops[i].len;
    c->ops = ops;
    c->n = n;
    c->total = total;
    pthread_barrier_wait(&c->start);
    copy_part(c, 0);
    pthread_barrier_wait(&c->end);
}

void bench_copier_free(bench_copier *c)
{
    if (!c)
        return;
    if (c->nthreads > 1) {
        c->stop = 1;
        pthread_barrier_wait(&c->start);
        for (unsigned k = 1; k < c->nthreads; k++)
            pthread_join(c->threads[k - 1], NULL);
        pthread_barrier_destroy(&c->start);
        pthread_barrier_destroy(&c->end);
    }
    free(c->threads);
    free(c);
}
