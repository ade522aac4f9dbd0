/* writethrough.c — write-through: copies of freshly put blocks to the tiers
 * below that admit on put, run on the store's own executor. */
#include "internal.h"

/* Write-through copies queued at most; more are dropped. */
#define BACKGROUND_SLOTS 4096

/* A queued copy. The tasks are allocated at open: BACKGROUND_SLOTS queued
 * and one running on each thread, so a copy the executor would take always
 * finds one free. */
typedef struct wt_task {
    kvt__task task; /* first: the executor hands it back */
    kvt_store *s;
    uint32_t id;
    int src, dst;
    struct wt_task *next_free;
} wt_task;

struct kvt__writethrough {
    kvt__executor *ex;
    pthread_mutex_t lock; /* guards free */
    wt_task *tasks, *free;
};

/* The copy of entry id from tier src (a ref is held on it) to tier dst
 * (reserved FILLING, queued). Drops the ref. */
static void copy_through(kvt_store *s, uint32_t id, int src, int dst)
{
    kvt_entry *e = kvt__index_entry(&s->ix, id);
    kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
    pthread_mutex_lock(&sh->lock);
    if (!(e->queued & (1u << dst))) {
        /* A flush took this copy over (down_claim): ours only to drop our ref. */
        e->queued &= (uint8_t)~(1u << (KVT_QUEUED_TAKEN_SHIFT + dst));
        pthread_mutex_unlock(&sh->lock);
        kvt__unref(s, id, src);
        return;
    }
    if (e->flags & KVT_ENTRY_REMOVED) { /* nothing written yet: nothing to undo on media */
        pthread_mutex_unlock(&sh->lock);
        kvt__unfill(s, id, dst); /* still queued: never counted as a fill */
        kvt__unref(s, id, src);
        CNT(&s->st, fills_cancelled);
        return;
    }
    e->queued &= (uint8_t)~(1u << dst);
    kvt__fill_begin(s, e, dst);
    uint32_t from = e->slot[src];
    kvt_key key = e->key;
    pthread_mutex_unlock(&sh->lock);
    uint32_t slot = kvt__make_room(s, dst, 1);
    if (slot == KVT_NO_SLOT) {
        kvt__unfill(s, id, dst);
        CNT(&s->st, writethrough_dropped);
    } else if (kvt__copy_between(s, src, from, dst, slot, &key)) {
        CNT(&s->tier[dst].st, io_errors);
        kvt__release_slot(s, dst, slot, 1);
        kvt__unfill(s, id, dst);
    } else if (kvt__publish(s, id, dst, slot, kvt__store_now(s), 0)) {
        CNT(&s->tier[dst].st, writethrough_in);
        ADD(&s->tier[dst].st, bytes_in, s->block_bytes);
    }
    kvt__unref(s, id, src);
}

static void give_back(kvt__writethrough *w, wt_task *t)
{
    pthread_mutex_lock(&w->lock);
    t->next_free = w->free;
    w->free = t;
    pthread_mutex_unlock(&w->lock);
}

static void copy_main(kvt__task *task)
{
    wt_task *t = (wt_task *)task;
    kvt_store *s = t->s;
    copy_through(s, t->id, t->src, t->dst);
    give_back(s->writethrough, t); /* t is not ours after this */
}

/* Queues the copy of entry id from src to dst. Non-zero when the queue is
 * full or stopping, or the store has no write-through executor: the caller
 * drops the copy (bounded memory). */
static int submit(kvt_store *s, uint32_t id, int src, int dst)
{
    kvt__writethrough *w = s->writethrough;
    if (!w)
        return 1;
    pthread_mutex_lock(&w->lock);
    wt_task *t = w->free;
    if (t)
        w->free = t->next_free;
    pthread_mutex_unlock(&w->lock);
    if (!t)
        return 1;
    *t = (wt_task){.task.fn = copy_main, .s = s, .id = id, .src = src, .dst = dst};
    if (kvt__executor_submit(w->ex, &t->task, NULL) == 0)
        return 0;
    give_back(w, t);
    return 1;
}

/* Claims the write-through copies of a block just published in tier p:
 * marks them FILLING and takes a ref on p for each. Shard lock held, so
 * the entry cannot be removed and recycled under us: called from
 * kvt__publish before it lets go of a put's entry. Returns the claimed
 * destination tiers as a bit mask for kvt__write_through_submit. */
unsigned kvt__write_through_claim(kvt_store *s, kvt_entry *e, int p)
{
    unsigned mask = 0;
    for (int d = s->tier[p].below; d >= 0; d = s->tier[d].below) {
        if (s->tier[d].admit != KVT_ADMIT_WRITE_THROUGH)
            continue;
        if (e->res[d] != KVT_RES_NONE || !kvt__readable(e, p) || (e->flags & KVT_ENTRY_REMOVED))
            continue;
        e->res[d] = KVT_RES_FILLING;
        e->queued |= (uint8_t)(1u << d); /* counted as a fill when it starts */
        e->refs[p]++;
        mask |= 1u << d;
    }
    return mask;
}

/* Queues the copies claimed above. Each claim's ref keeps entry id alive
 * until its copy ends or is dropped here. */
void kvt__write_through_submit(kvt_store *s, uint32_t id, int p, unsigned mask)
{
    for (int d = 0; mask; d++) {
        if (!(mask & (1u << d)))
            continue;
        mask &= ~(1u << d);
        if (submit(s, id, p, d) == 0)
            continue;
        /* Not queued after all. A flush may have taken the copy over
         * meanwhile (down_claim): then it is the flush's to finish. */
        kvt_entry *e = kvt__index_entry(&s->ix, id);
        kvt_shard *sh = kvt__index_shard(&s->ix, &e->key);
        pthread_mutex_lock(&sh->lock);
        int free_entry = 0;
        if (e->queued & (1u << d)) {
            e->queued &= (uint8_t)~(1u << d);
            e->res[d] = KVT_RES_NONE;
            e->slot[d] = KVT_NO_SLOT;
            free_entry = kvt__entry_unused(&s->ix, sh, id);
            CNT(&s->st, writethrough_dropped);
        } else {
            e->queued &= (uint8_t)~(1u << (KVT_QUEUED_TAKEN_SHIFT + d));
        }
        pthread_mutex_unlock(&sh->lock);
        if (free_entry)
            kvt__index_free(&s->ix, id);
        kvt__unref(s, id, p);
    }
}

/* Copies run on threads of their own, not on the API's workers, so that the
 * copies a put may be waiting for (take_slot waits for exactly such a slot,
 * held by a queued copy's ref) never queue behind that put. */
int kvt__writethrough_open(kvt_store *s, unsigned threads)
{
    int any = 0;
    for (int t = s->tier[s->put_tier].below; t >= 0; t = s->tier[t].below)
        any |= s->tier[t].admit == KVT_ADMIT_WRITE_THROUGH;
    if (!any)
        return 0;
    kvt__writethrough *w = kvt__calloc(1, sizeof *w);
    if (!w)
        return kvt__err(KVT_ENOMEM, "write-through");
    size_t ntasks = (size_t)BACKGROUND_SLOTS + threads;
    w->tasks = kvt__calloc(ntasks, sizeof *w->tasks);
    if (!w->tasks) {
        kvt__free(w);
        return kvt__err(KVT_ENOMEM, "write-through queue");
    }
    for (size_t i = ntasks; i-- > 0;) {
        w->tasks[i].next_free = w->free;
        w->free = &w->tasks[i];
    }
    pthread_mutex_init(&w->lock, NULL);
    kvt__executor_opts o = {.threads = threads,
                            .name = "kvt-through",
                            .max_queued = BACKGROUND_SLOTS};
    int rc = kvt__executor_new(&o, &w->ex);
    if (rc) {
        pthread_mutex_destroy(&w->lock);
        kvt__free(w->tasks);
        kvt__free(w);
        return rc;
    }
    s->writethrough = w;
    return 0;
}

/* Runs every queued copy first. The executor stays reachable meanwhile:
 * its last copies give their tasks back through s->writethrough. */
void kvt__writethrough_close(kvt_store *s)
{
    kvt__writethrough *w = s->writethrough;
    if (!w)
        return;
    kvt__executor_free(w->ex);
    s->writethrough = NULL;
    pthread_mutex_destroy(&w->lock);
    kvt__free(w->tasks);
    kvt__free(w);
}
