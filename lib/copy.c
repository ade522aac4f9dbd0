/* copy.c — the copier: splits large copy batches across the caller and an executor's threads. */
#include "copy.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "executor.h"

/* A part smaller than this is not worth a helper's wake-up. */
#define MIN_PART_BYTES ((size_t)256 << 10)
#define TOUCH_UNIT ((size_t)2 << 20)
#define CACHE_LINE 64

typedef struct job job;
struct job {
    void (*part)(const job *j, unsigned k);
    unsigned nparts;
    /* copy */
    const kvt__copy_op *ops;
    size_t n;
    size_t total;
    /* touch */
    char *mem;
    size_t len;
    size_t page;
};

/* Part k of the batch being copied, as a task for the helpers. */
typedef struct part_task {
    kvt__task task;
    const job *j;
    unsigned k;
} part_task;

struct kvt__copier {
    unsigned nthreads; /* participants, the caller included */
    /* Held by the caller whose batch the helpers work on. Callers that find
     * it taken copy inline (see kvt__copier_run). */
    pthread_mutex_t busy;
    kvt__executor *helpers; /* nthreads - 1 threads; NULL when nthreads is 1 */
    /* The tasks of parts 1.. of the batch in flight (under busy). */
    part_task *parts;
    kvt__task **part_ptrs;
    _Atomic uint64_t pooled;
    _Atomic uint64_t busy_inline;
};

/* ------------------------------------------------------------------ parts */

typedef struct {
    size_t op;
    size_t off;
} cursor;

/* Where part k of nparts begins: byte total*k/nparts of the concatenated ops,
 * moved forward to the next 64-byte aligned destination address so that two
 * threads never write the same cache line. Every participant computes the
 * same boundaries, so parts meet exactly without sharing state. */
static cursor boundary(const job *j, unsigned k)
{
    cursor c = {0, 0};
    if (k == 0)
        return c;
    if (k >= j->nparts) {
        c.op = j->n;
        return c;
    }
    /* total * k / nparts without overflow */
    size_t q = j->total / j->nparts, r = j->total % j->nparts;
    size_t g = q * k + r * k / j->nparts;
    while (c.op < j->n && g >= j->ops[c.op].len) {
        g -= j->ops[c.op].len;
        c.op++;
    }
    if (c.op == j->n)
        return c;
    uintptr_t at = (uintptr_t)j->ops[c.op].dst + g;
    g += (CACHE_LINE - (at & (CACHE_LINE - 1))) & (CACHE_LINE - 1);
    if (g >= j->ops[c.op].len) {
        c.op++;
        g = 0;
    }
    c.off = g;
    return c;
}

static void copy_part(const job *j, unsigned k)
{
    cursor from = boundary(j, k), to = boundary(j, k + 1);
    for (size_t i = from.op; i < j->n && i <= to.op; i++) {
        size_t a = i == from.op ? from.off : 0;
        size_t b = i == to.op ? to.off : j->ops[i].len;
        if (b > a)
            memcpy((char *)j->ops[i].dst + a, (const char *)j->ops[i].src + a, b - a);
    }
}

static void touch_part(const job *j, unsigned k)
{
    size_t units = (j->len + TOUCH_UNIT - 1) / TOUCH_UNIT;
    size_t a = units * k / j->nparts * TOUCH_UNIT;
    size_t b = units * (k + 1) / j->nparts * TOUCH_UNIT;
    if (b > j->len)
        b = j->len;
    volatile char *mem = j->mem;
    for (size_t at = a; at < b; at += j->page)
        mem[at] = 0;
}

/* ---------------------------------------------------------------- threads */

static void part_main(kvt__task *task)
{
    part_task *p = (part_task *)task;
    p->j->part(p->j, p->k);
}

/* Runs part 0 here and parts 1.. on the helpers; the busy mutex is held. */
static void run_on_pool(kvt__copier *c, const job *j)
{
    kvt__group g;
    kvt__group_init(&g);
    unsigned helpers = j->nparts - 1;
    for (unsigned k = 1; k <= helpers; k++) {
        c->parts[k - 1] = (part_task){.task.fn = part_main, .j = j, .k = k};
        c->part_ptrs[k - 1] = &c->parts[k - 1].task;
    }
    int queued = kvt__executor_submit_all(c->helpers, c->part_ptrs, helpers, &g) == 0;
    j->part(j, 0);
    if (!queued) /* never while the copier lives; all parts here then */
        for (unsigned k = 1; k <= helpers; k++)
            j->part(j, k);
    kvt__group_wait(&g);
    kvt__group_destroy(&g);
}

kvt__copier *kvt__copier_new(unsigned nthreads)
{
    if (nthreads == 0)
        nthreads = 1;
    kvt__copier *c = kvt__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->nthreads = nthreads;
    pthread_mutex_init(&c->busy, NULL);
    if (nthreads > 1) {
        kvt__executor_opts o = {.threads = nthreads - 1, .name = "kvt-copy"};
        c->parts = kvt__calloc(nthreads - 1, sizeof *c->parts);
        c->part_ptrs = kvt__calloc(nthreads - 1, sizeof *c->part_ptrs);
        if (!c->parts || !c->part_ptrs || kvt__executor_new(&o, &c->helpers)) {
            kvt__err_clear(); /* NULL tells the caller; no message is ours to leave */
            kvt__copier_free(c);
            return NULL;
        }
    }
    return c;
}

void kvt__copier_free(kvt__copier *c)
{
    if (!c)
        return;
    kvt__executor_free(c->helpers);
    pthread_mutex_destroy(&c->busy);
    kvt__free(c->parts);
    kvt__free(c->part_ptrs);
    kvt__free(c);
}

int kvt__copier_set_affinity(kvt__copier *c, const cpu_set_t *cpus)
{
    return c ? kvt__executor_set_affinity(c->helpers, cpus) : 0;
}

unsigned kvt__copier_threads(const kvt__copier *c)
{
    return c ? c->nthreads : 1;
}

void kvt__copier_counts(const kvt__copier *c, uint64_t *pooled, uint64_t *busy)
{
    if (pooled)
        *pooled = c ? atomic_load_explicit(&c->pooled, memory_order_relaxed) : 0;
    if (busy)
        *busy = c ? atomic_load_explicit(&c->busy_inline, memory_order_relaxed) : 0;
}

static void copy_inline(const kvt__copy_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].len)
            memcpy(ops[i].dst, ops[i].src, ops[i].len);
}

void kvt__copier_run(kvt__copier *c, const kvt__copy_op *ops, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ops[i].len;
    if (!c || c->nthreads < 2 || total < KVT__COPY_INLINE_BYTES) {
        copy_inline(ops, n);
        return;
    }
    size_t parts = total / MIN_PART_BYTES;
    job j = {.part = copy_part,
             .nparts = parts < c->nthreads ? (unsigned)parts : c->nthreads,
             .ops = ops,
             .n = n,
             .total = total};
    if (j.nparts < 2) {
        copy_inline(ops, n);
        return;
    }
    /* The helpers already working for another caller, this caller copies its
     * own batch itself instead of queueing behind that batch: both batches
     * then progress at once, no core idles while work is waiting, and the
     * second caller's latency does not include the first's copy. Copies are
     * bound by memory bandwidth, which the extra thread shares rather than
     * wastes. */
    if (pthread_mutex_trylock(&c->busy) != 0) {
        atomic_fetch_add_explicit(&c->busy_inline, 1, memory_order_relaxed);
        copy_inline(ops, n);
        return;
    }
    atomic_fetch_add_explicit(&c->pooled, 1, memory_order_relaxed);
    run_on_pool(c, &j);
    pthread_mutex_unlock(&c->busy);
}

/* The first touch runs once, at open, and is bound by page-fault zeroing,
 * which scales with cores: it gets its own short-lived threads, one per CPU
 * it may use (up to TOUCH_THREADS_MAX), however small the copier. On a
 * 16-core GPU host an 8 GiB arena took 4.2 s with the copier's 2 threads
 * (docs/gpu.md). */
#define TOUCH_THREADS_MAX 32

typedef struct {
    const job *j;
    unsigned k;
    pthread_t thread;
} toucher;

static void *touch_main(void *arg)
{
    toucher *t = arg;
    touch_part(t->j, t->k);
    return NULL;
}

unsigned kvt__prefault(void *mem, size_t len, size_t page, const cpu_set_t *cpus)
{
    if (!mem || !len)
        return 0;
    job j = {.part = touch_part, .nparts = 1, .mem = mem, .len = len,
             .page = page ? page : 4096};
    /* Only the CPUs this process may run on (taskset, cgroups) count. */
    cpu_set_t mine;
    if (cpus && sched_getaffinity(0, sizeof mine, &mine) == 0) {
        CPU_AND(&mine, &mine, cpus);
        cpus = CPU_COUNT(&mine) ? &mine : NULL;
    }
    size_t units = (len + TOUCH_UNIT - 1) / TOUCH_UNIT;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    size_t want = cpus ? (size_t)CPU_COUNT(cpus) : online > 1 ? (size_t)online : 1;
    if (want > TOUCH_THREADS_MAX)
        want = TOUCH_THREADS_MAX;
    if (want > units)
        want = units;
    if (want < 1)
        want = 1;
    /* With a CPU set every part runs on a thread there, so that each page is
     * zeroed by a CPU next to its memory; the caller, wherever it runs, only
     * waits. Without one, the caller takes part 0. */
    unsigned first = cpus ? 0 : 1;
    toucher *ts = want > first ? kvt__calloc(want, sizeof *ts) : NULL;
    if (!ts) {
        touch_part(&j, 0);
        return 1;
    }
    j.nparts = (unsigned)want;
    pthread_attr_t attr, *pa = NULL;
    if (cpus && pthread_attr_init(&attr) == 0) {
        pa = &attr;
        pthread_attr_setaffinity_np(pa, sizeof *cpus, cpus);
    }
    /* A part whose thread can't start runs here. */
    for (unsigned k = first; k < want; k++) {
        ts[k] = (toucher){.j = &j, .k = k};
        if (pthread_create(&ts[k].thread, pa, touch_main, &ts[k]) != 0) {
            ts[k].j = NULL;
            touch_part(&j, k);
        }
    }
    if (pa)
        pthread_attr_destroy(pa);
    if (first)
        touch_part(&j, 0);
    for (unsigned k = first; k < want; k++)
        if (ts[k].j)
            pthread_join(ts[k].thread, NULL);
    kvt__free(ts);
    return (unsigned)want;
}
