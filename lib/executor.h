/* executor.h — the one thread pool of the library: tasks posted by other
 * threads run in FIFO order on a few threads, and groups let a poster wait
 * for the tasks it posted. Every background thread of kvtier is one of an
 * executor's: the API's ticket workers (worker.c), the store's write-through
 * copiers and demotion writers (store), the DRAM tier's copy helpers
 * (copy.c), the NVMe tier's hashers and the cluster tier's verifiers
 * (jobpool.h). */
#ifndef KVT_EXECUTOR_H
#define KVT_EXECUTOR_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct kvt__executor kvt__executor;
typedef struct kvt__group kvt__group;

/* A task lives in its poster's memory (no allocation per submit). fn is
 * called once, on a pool thread; the task must stay alive until fn has
 * returned (fn may free it when nobody waits for it) or
 * kvt__executor_cancel took it back. */
typedef struct kvt__task kvt__task;
struct kvt__task {
    void (*fn)(kvt__task *task);
    kvt__task *next;   /* the executor's while queued */
    kvt__group *group; /* the executor's: set by submit */
};

/* Tasks submitted with a group count in it until they have run (or were
 * cancelled); kvt__group_wait waits for that count to reach 0. Lives in the
 * waiter's memory; destroy it only once its count is 0. */
struct kvt__group {
    pthread_mutex_t lock;
    pthread_cond_t done;
    unsigned pending;
};
void kvt__group_init(kvt__group *g);
void kvt__group_destroy(kvt__group *g);
void kvt__group_wait(kvt__group *g);

typedef struct kvt__executor_opts {
    unsigned threads;
    const char *name; /* thread name (at most 15 characters), or NULL */
    /* Submits are refused (KVT_EBUSY) while this many tasks are queued, not
     * yet running: a bound on memory for work that may be dropped. 0: no
     * bound. */
    unsigned max_queued;
    /* Each thread gives up the CPU between tasks after a slice of work (see
     * kvt__executor_pause): for threads that serve I/O rings. */
    bool pause_between;
    /* Called on a pool thread after each task it ran, and every tick_ms
     * while the queue is empty (0: only after tasks). tick NULL: never. */
    void (*tick)(void *user);
    void *tick_user;
    unsigned tick_ms;
} kvt__executor_opts;

/* Starts o->threads threads (blocking every signal, which stay the
 * application's). 0 and *out, or KVT_ENOMEM / KVT_ESYS (nothing started;
 * the message names o->name); threads 0 is KVT_EINVAL. */
int kvt__executor_new(const kvt__executor_opts *o, kvt__executor **out);
/* Lets the threads run every queued task, joins them, and frees. NULL is
 * fine. Submits meanwhile are refused. */
void kvt__executor_free(kvt__executor *ex);

/* Queues task to run once on a pool thread; with g, the task counts in g
 * until it has run. 0, KVT_EBUSY (max_queued tasks queued) or KVT_ECLOSED
 * (the executor is stopping): then the task was not queued. No error
 * message is recorded: a refusal is the caller's to handle. Thread-safe. */
int kvt__executor_submit(kvt__executor *ex, kvt__task *task, kvt__group *g);
/* Queues n tasks at once, all in g (which may be NULL), waking the threads
 * with one broadcast: for work split into parts that start together. Not
 * bounded by max_queued; KVT_ECLOSED (none queued) while stopping. */
int kvt__executor_submit_all(kvt__executor *ex, kvt__task *const *tasks, size_t n,
                             kvt__group *g);
/* Takes task back if no thread has picked it up yet: true then (fn will
 * not be called; its group no longer counts it), false if it has started or
 * finished. */
bool kvt__executor_cancel(kvt__executor *ex, kvt__task *task);

unsigned kvt__executor_threads(const kvt__executor *ex);
/* Restricts the pool's threads to `cpus`: 0, or the pthread error of the
 * first thread that could not be moved (the pool works either way). */
int kvt__executor_set_affinity(kvt__executor *ex, const cpu_set_t *cpus);

/* Called by a pool thread between pieces of work: gives the CPU to whoever
 * waits for it once this thread has worked a slice (20 us) since it last
 * did. The tasks serve threads that drive I/O rings; one of those, woken by
 * completions onto this CPU, would otherwise wait out our whole time slice
 * (milliseconds) while the device idles. */
void kvt__executor_pause(void);

#endif
