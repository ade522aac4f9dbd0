/* mem.c — benchmark buffers (huge pages, pre-faulted), RSS, and the memcpy baseline copier. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../bench.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *bench_alloc(size_t bytes)
{
    if (!bytes)
        return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (bytes >= HUGE_PAGE)
        madvise(p, bytes, MADV_HUGEPAGE); /* a hint: no huge pages is still a buffer */
    bench_fill(p, bytes, (uintptr_t)p);
    return p;
}

void bench_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

void bench_fill(void *p, size_t bytes, uint64_t seed)
{
    uint64_t x = bench_rand_seed(seed);
    uint64_t *w = p;
    size_t n = bytes / sizeof *w;
    /* One random word per cache line, the rest derived: fast enough to fill
     * gigabytes, and no page is all zeros (a kernel could share those). */
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            x = bench_rand(&x);
        w[i] = x + i;
    }
    memset((char *)p + n * sizeof *w, 0x5a, bytes - n * sizeof *w);
}

uint64_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    unsigned long size = 0, resident = 0;
    int ok = fscanf(f, "%lu %lu", &size, &resident) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok ? (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096) : 0;
}

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
