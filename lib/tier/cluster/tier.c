/* tier.c — the cluster engine as a key-addressed tier of kind "cluster": options, asynchronous batches on worker threads, the background sweeper. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "tier/cluster/cluster.h"
#include "tier/cluster/tier_cluster.h"
#include "tier/tier.h"

/*
 * The store submits a batch and waits for its
 * done(); the batch runs on one of this tier's workers, which blocks in the
 * engine (bounded by the tier's timeout_ms), so a hung filesystem costs the
 * store a KVT_ETIMEDOUT per key, never a hung caller, and the store goes on
 * serving from its local tiers.
 *
 * The generic options mean here: capacity = the directory's quota (bytes,
 * 0 none), ttl_ms = the idle TTL. Both are enforced by the sweeper, which
 * any node may run (option sweep_ms; 0 leaves sweeping to other nodes).
 */

#define WORKERS 2
#define QUEUE_MAX 256

static const kvt_tier_opt_spec cluster_options[] = {
    {"dir", KVT_OPTTYPE_STR, 0, 0, 0, KVT_EPATH,
     "the shared directory (every store naming it shares its blocks)"},
    {"timeout_ms", KVT_OPTTYPE_INT, 1, 3600000, 10000, 0,
     "bound of every batch: a hung filesystem gives KVT_ETIMEDOUT"},
    {"queue_depth", KVT_OPTTYPE_INT, 1, 1024, 32, 0, "blocks in flight per batch"},
    {"file_mode", KVT_OPTTYPE_INT, 0, 0666, 0600, 0, "mode of new block files (0660: a group)"},
    {"tmp_grace_ms", KVT_OPTTYPE_INT, 1000, INT64_C(86400000), 600000, 0,
     "age after which a temporary file is a killed writer's"},
    {"sweep_ms", KVT_OPTTYPE_INT, 0, INT64_C(86400000), 600000, 0,
     "period of a full sweeper pass on this node (0: this node does not sweep)"},
    {"durable", KVT_OPTTYPE_INT, 0, 1, 0, 0, "fdatasync each block file before publishing it"},
    {"direct", KVT_OPTTYPE_INT, 0, 1, 1, 0, "try O_DIRECT (probed at open; 0: buffered)"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

struct kvt_tier_impl {
    kvt_cluster *c;
    uint32_t timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, stop_cv;
    kvt_keyed_op *queue[QUEUE_MAX];
    uint32_t head, len;
    bool stopping;
    uint32_t running; /* threads not yet exited */
    pthread_t workers[WORKERS];
    uint32_t nworkers;
    pthread_t sweeper;
    bool sweeping;
    uint64_t sweep_step_ns;
    _Atomic uint64_t batches, sweep_errors;
};

/* One batch on the engine. */
static void run(kvt_tier_impl *t, kvt_keyed_op *op)
{
    op->result = 0;
    if (!op->n)
        return;
    if ((op->kind == KVT_KEYED_READ || op->kind == KVT_KEYED_WRITE) && op->mem != KVT_MEM_HOST) {
        for (size_t i = 0; i < op->n; i++)
            op->status[i] = KVT_EMEMKIND;
        op->result = KVT_EMEMKIND;
        return;
    }
    kvt_cluster_io *io = calloc(op->n, sizeof *io);
    if (!io) {
        for (size_t i = 0; i < op->n; i++)
            op->status[i] = KVT_ENOMEM;
        op->result = KVT_ENOMEM;
        return;
    }
    for (size_t i = 0; i < op->n; i++) {
        io[i].key = op->keys[i];
        io[i].nfrags = op->nfrags;
        io[i].frags = op->frags ? &op->frags[i * op->nfrags] : NULL;
    }
    switch (op->kind) {
    case KVT_KEYED_CONTAINS:
        if (op->flags & KVT_KEYED_PREFIX)
            kvt__cluster_contains_prefix(t->c, io, op->n);
        else
            kvt__cluster_contains(t->c, io, op->n);
        for (size_t i = 0; i < op->n; i++) {
            int st = io[i].status;
            /* A file a get would refuse is not held; errors stay errors. */
            op->status[i] = st == 0 ? 1 : (st == KVT_ENOENT || st == KVT_EFORMAT ? 0 : st);
        }
        break;
    case KVT_KEYED_READ:
        kvt__cluster_get(t->c, io, op->n);
        for (size_t i = 0; i < op->n; i++)
            op->status[i] = io[i].status;
        break;
    case KVT_KEYED_WRITE:
        kvt__cluster_put(t->c, io, op->n);
        for (size_t i = 0; i < op->n; i++)
            op->status[i] = io[i].status;
        break;
    case KVT_KEYED_REMOVE:
        kvt__cluster_remove(t->c, io, op->n);
        for (size_t i = 0; i < op->n; i++)
            op->status[i] = io[i].status;
        break;
    default:
        for (size_t i = 0; i < op->n; i++)
            io[i].status = op->status[i] = KVT_EINVAL;
    }
    for (size_t i = 0; i < op->n && !op->result; i++) {
        int st = op->status[i];
        if (st < 0 && st != KVT_ENOENT)
            op->result = st;
    }
    free(io);
    t->batches++;
}

static void *worker(void *arg)
{
    kvt_tier_impl *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->len && !t->stopping)
            pthread_cond_wait(&t->work_cv, &t->mu);
        if (!t->len) /* stopping, and nothing left: submitted batches always finish */
            break;
        kvt_keyed_op *op = t->queue[t->head];
        t->head = (t->head + 1) % QUEUE_MAX;
        t->len--;
        pthread_mutex_unlock(&t->mu);
        run(t, op);
        op->done(op);
        pthread_mutex_lock(&t->mu);
    }
    t->running--;
    pthread_cond_broadcast(&t->stop_cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void *sweeper(void *arg)
{
    kvt_tier_impl *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + t->sweep_step_ns;
        until.tv_sec += (time_t)(ns / 1000000000ull);
        until.tv_nsec = (long)(ns % 1000000000ull);
        pthread_cond_timedwait(&t->stop_cv, &t->mu, &until);
        if (t->stopping)
            break;
        pthread_mutex_unlock(&t->mu);
        if (kvt__cluster_sweep_step(t->c, 0) < 0)
            t->sweep_errors++;
        pthread_mutex_lock(&t->mu);
    }
    t->running--;
    pthread_cond_broadcast(&t->stop_cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static int submit(kvt_tier_impl *t, kvt_keyed_op *op)
{
    if (!op || !op->done || (op->n && (!op->keys || !op->status)))
        return kvt__err(KVT_ENULL, "cluster tier: op, done, keys and status are required");
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    if (t->stopping)
        rc = kvt__err(KVT_ECLOSED, "cluster tier: closing");
    else if (t->len == QUEUE_MAX)
        rc = kvt__err(KVT_EBUSY, "cluster tier: %d batches queued", QUEUE_MAX);
    else {
        t->queue[(t->head + t->len) % QUEUE_MAX] = op;
        t->len++;
        pthread_cond_signal(&t->work_cv);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static void tier_close(kvt_tier_impl *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->work_cv);
    pthread_cond_broadcast(&t->stop_cv);
    /* Workers finish what was submitted (each batch bounded by timeout_ms);
     * the sweeper stops between steps. A thread stuck past that on a hung
     * filesystem (a sweep step is synchronous) is left behind with t. */
    uint64_t wait_ms = (uint64_t)t->timeout_ms * (t->len + WORKERS + 1) + 1000;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    int rc = 0;
    while (t->running && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&t->stop_cv, &t->mu, &until);
    bool stuck = t->running != 0;
    pthread_mutex_unlock(&t->mu);
    for (uint32_t i = 0; i < t->nworkers; i++)
        stuck ? pthread_detach(t->workers[i]) : pthread_join(t->workers[i], NULL);
    if (t->sweeping)
        stuck ? pthread_detach(t->sweeper) : pthread_join(t->sweeper, NULL);
    if (stuck)
        return; /* leak: the stuck thread still uses t and the engine */
    kvt__cluster_close(t->c);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->stop_cv);
    free(t);
}

static int tier_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    if (!p || !out)
        return kvt__err(KVT_ENULL, "cluster tier: params and out are required");
    *out = NULL;
    if (nslots)
        *nslots = 0; /* key-addressed: no slots */
    const char *dir = kvt__tier_opt_str(p, "dir");
    if (!dir || !*dir)
        return kvt__err(KVT_EPATH, "%s tier: the option \"dir\" (a shared directory) is required",
                        p->name ? p->name : "cluster");
    kvt_cluster_params cp;
    memset(&cp, 0, sizeof cp);
    cp.dir = dir;
    cp.block_bytes = p->block_bytes;
    cp.block_tokens = p->block_tokens;
    cp.frags = p->frags;
    cp.key_mode = p->key_mode;
    cp.timeout_ms = (uint32_t)kvt__tier_opt_int(p, "timeout_ms");
    cp.queue_depth = (uint32_t)kvt__tier_opt_int(p, "queue_depth");
    cp.file_mode = (uint32_t)kvt__tier_opt_int(p, "file_mode");
    cp.tmp_grace_ms = (uint64_t)kvt__tier_opt_int(p, "tmp_grace_ms");
    cp.durable = (int)kvt__tier_opt_int(p, "durable");
    cp.no_direct = !kvt__tier_opt_int(p, "direct");
    cp.ttl_ms = p->ttl_ms;
    cp.quota_bytes = p->capacity;
    kvt_tier_impl *t = calloc(1, sizeof *t);
    if (!t)
        return kvt__err(KVT_ENOMEM, "cluster tier: no memory");
    int rc = kvt__cluster_open(&cp, &t->c);
    if (rc) {
        free(t);
        return rc;
    }
    t->timeout_ms = cp.timeout_ms;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work_cv, NULL);
    pthread_cond_init(&t->stop_cv, NULL);
    for (uint32_t i = 0; i < WORKERS; i++) {
        if (pthread_create(&t->workers[i], NULL, worker, t))
            break;
        t->nworkers++;
        t->running++;
    }
    int64_t sweep_ms = kvt__tier_opt_int(p, "sweep_ms");
    if (t->nworkers && sweep_ms > 0) {
        t->sweep_step_ns = (uint64_t)sweep_ms * 1000000ull / 256; /* a pass = 256 steps */
        if (pthread_create(&t->sweeper, NULL, sweeper, t) == 0) {
            t->sweeping = true;
            t->running++;
        }
    }
    if (!t->nworkers) {
        tier_close(t);
        return kvt__err(KVT_ENOMEM, "cluster tier: cannot start its threads");
    }
    *out = t;
    return 0;
}

static void tier_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    kvt__cluster_stats(t->c, fn, user);
    fn("cluster.batches", t->batches, user);
    fn("cluster.sweep_errors", t->sweep_errors, user);
}

static const kvt_keyed_ops cluster_keyed = {
    .submit = submit,
    .poll = NULL, /* completes on its own workers */
};

const kvt_tier_ops kvt__tier_cluster = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "cluster",
    .caps = KVT_TCAP_KEYED | KVT_TCAP_VERIFIES,
    .options = cluster_options,
    .open = tier_open,
    .close = tier_close,
    .stats = tier_stats,
    .keyed = &cluster_keyed,
};
