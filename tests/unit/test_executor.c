/* test_executor.c — the executor (lib/executor.h): every task runs exactly once, in FIFO
 * order on one thread, groups wait for exactly their tasks, cancel takes back only what
 * has not started, the queue bound refuses, free runs what is queued, ticks come. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <unistd.h>

#include "executor.h"
#include "kvtier.h"

typedef struct counted {
    kvt__task task;
    unsigned index;
    unsigned *order; /* where each task records when it ran */
    _Atomic unsigned *next;
    _Atomic unsigned *runs;
} counted;

static void count_main(kvt__task *task)
{
    counted *c = (counted *)task;
    atomic_fetch_add(&c->runs[c->index], 1);
    if (c->order)
        c->order[atomic_fetch_add(c->next, 1)] = c->index;
}

static kvt__executor *start(unsigned threads, unsigned max_queued)
{
    kvt__executor_opts o = {.threads = threads, .name = "test-exec", .max_queued = max_queued};
    kvt__executor *ex = NULL;
    cr_assert_eq(kvt__executor_new(&o, &ex), 0);
    cr_assert_eq(kvt__executor_threads(ex), threads);
    return ex;
}

#define N 2000

Test(executor, every_task_once_and_groups_wait)
{
    static counted tasks[N];
    static _Atomic unsigned runs[N];
    kvt__executor *ex = start(3, 0);
    kvt__group g;
    kvt__group_init(&g);
    for (unsigned i = 0; i < N; i++) {
        tasks[i] = (counted){.task.fn = count_main, .index = i, .runs = runs};
        cr_assert_eq(kvt__executor_submit(ex, &tasks[i].task, &g), 0);
    }
    kvt__group_wait(&g);
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(runs[i], 1, "task %u ran %u times", i, runs[i]);
    /* submit_all: one wake-up, the same accounting. */
    kvt__task *ptrs[64];
    for (unsigned i = 0; i < 64; i++)
        ptrs[i] = &tasks[i].task;
    cr_assert_eq(kvt__executor_submit_all(ex, ptrs, 64, &g), 0);
    kvt__group_wait(&g);
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(runs[i], i < 64 ? 2u : 1u);
    kvt__group_destroy(&g);
    kvt__executor_free(ex);
    kvt__executor_free(NULL);
}

Test(executor, one_thread_runs_in_order)
{
    static counted tasks[N];
    static _Atomic unsigned runs[N];
    static unsigned order[N];
    _Atomic unsigned next = 0;
    kvt__executor *ex = start(1, 0);
    kvt__group g;
    kvt__group_init(&g);
    for (unsigned i = 0; i < N; i++) {
        tasks[i] = (counted){.task.fn = count_main, .index = i, .order = order, .next = &next,
                             .runs = runs};
        cr_assert_eq(kvt__executor_submit(ex, &tasks[i].task, &g), 0);
    }
    kvt__group_wait(&g);
    cr_assert_eq(next, N);
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(order[i], i);
    kvt__group_destroy(&g);
    kvt__executor_free(ex);
}

/* A task that holds its thread until released, to keep others queued. */
typedef struct gate {
    kvt__task task;
    _Atomic int entered, open;
} gate;

static void gate_main(kvt__task *task)
{
    gate *gt = (gate *)task;
    atomic_store(&gt->entered, 1);
    while (!atomic_load(&gt->open))
        usleep(100);
}

Test(executor, cancel_bound_and_free_drains)
{
    static _Atomic unsigned runs[8];
    counted tasks[8];
    gate gt = {.task.fn = gate_main};
    kvt__executor *ex = start(1, 4);
    kvt__group g;
    kvt__group_init(&g);
    cr_assert_eq(kvt__executor_submit(ex, &gt.task, NULL), 0);
    while (!atomic_load(&gt.entered))
        usleep(100);
    for (unsigned i = 0; i < 8; i++)
        tasks[i] = (counted){.task.fn = count_main, .index = i, .runs = runs};
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(kvt__executor_submit(ex, &tasks[i].task, &g), 0);
    /* Four queued (the running gate does not count): the fifth is refused. */
    cr_assert_eq(kvt__executor_submit(ex, &tasks[4].task, &g), KVT_EBUSY);
    /* Cancel: a queued task comes back and leaves its group; a running one does not. */
    cr_assert(kvt__executor_cancel(ex, &tasks[2].task));
    cr_assert_not(kvt__executor_cancel(ex, &tasks[2].task));
    cr_assert_not(kvt__executor_cancel(ex, &gt.task));
    cr_assert_eq(kvt__executor_submit(ex, &tasks[5].task, NULL), 0);
    atomic_store(&gt.open, 1);
    kvt__group_wait(&g);
    kvt__group_destroy(&g);
    cr_assert_eq(kvt__executor_submit(ex, &tasks[6].task, NULL), 0);
    /* free runs what is still queued before it returns. */
    kvt__executor_free(ex);
    unsigned want[8] = {1, 1, 0, 1, 0, 1, 1, 0};
    for (unsigned i = 0; i < 8; i++)
        cr_assert_eq(runs[i], want[i], "task %u ran %u times", i, runs[i]);
}

static void tick_main(void *user)
{
    atomic_fetch_add((_Atomic unsigned *)user, 1);
}

Test(executor, ticks_while_idle_and_after_tasks)
{
    _Atomic unsigned ticks = 0;
    kvt__executor_opts o = {.threads = 1, .tick = tick_main, .tick_user = &ticks, .tick_ms = 5};
    kvt__executor *ex = NULL;
    cr_assert_eq(kvt__executor_new(&o, &ex), 0);
    for (int i = 0; i < 2000 && atomic_load(&ticks) < 3; i++)
        usleep(1000);
    cr_assert_geq(atomic_load(&ticks), 3, "idle ticks: %u", atomic_load(&ticks));
    kvt__executor_free(ex);

    /* tick_ms 0: only after tasks. */
    static _Atomic unsigned runs[1];
    counted c = {.task.fn = count_main, .runs = runs};
    atomic_store(&ticks, 0);
    o.tick_ms = 0;
    cr_assert_eq(kvt__executor_new(&o, &ex), 0);
    kvt__group g;
    kvt__group_init(&g);
    cr_assert_eq(kvt__executor_submit(ex, &c.task, &g), 0);
    kvt__group_wait(&g);
    kvt__group_destroy(&g);
    kvt__executor_free(ex); /* the tick after the task has run by now */
    cr_assert_eq(atomic_load(&ticks), 1);
    cr_assert_eq(runs[0], 1);
}

Test(executor, no_threads_is_einval)
{
    kvt__executor_opts o = {.threads = 0};
    kvt__executor *ex = NULL;
    cr_assert_eq(kvt__executor_new(&o, &ex), KVT_EINVAL);
    cr_assert_null(ex);
}
