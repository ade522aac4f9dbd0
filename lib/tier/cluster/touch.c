/* touch.c — refreshing blocks' last access (their mtime) after reads, throttled per node, off the caller's thread. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "tier/cluster/internal.h"

/*
 * The idle TTL and the quota's least-recently-used order both read a block
 * file's mtime as its last access (atime is often off: noatime, relatime,
 * or not kept by the filesystem). Readers refresh it, but at most once per
 * key per node per interval (a table of recent refreshes, collisions just
 * cost an extra refresh), and on a thread of their own: a metadata write per
 * read would be a storm, and a refresh on the caller's thread could hang on
 * a hung filesystem. When the queue is full a refresh is dropped (counted):
 * the next read of that key asks again.
 */

static void *toucher(void *arg)
{
    kvt_cluster *c = arg;
    pthread_mutex_lock(&c->touch_mu);
    for (;;) {
        while (!c->touch_len && !c->touch_stop)
            pthread_cond_wait(&c->touch_cv, &c->touch_mu);
        if (c->touch_stop)
            break;
        kvt_key key = c->touch_q[c->touch_head];
        c->touch_head = (c->touch_head + 1) % CL_TOUCH_QUEUE;
        c->touch_len--;
        pthread_mutex_unlock(&c->touch_mu);
        char rel[KVT__CLUSTER_REL_MAX];
        kvt__cluster_rel_path(&key, rel);
        if (utimensat(c->root_fd, rel, NULL, AT_SYMLINK_NOFOLLOW) == 0)
            CL_ADD(c, touches, 1);
        pthread_mutex_lock(&c->touch_mu);
    }
    pthread_mutex_unlock(&c->touch_mu);
    return NULL;
}

int cl_touch_start(kvt_cluster *c)
{
    if (pthread_create(&c->touch_thread, NULL, toucher, c))
        return kvt__err(KVT_ENOMEM, "cluster: cannot start the access-time thread");
    c->touch_started = true;
    return 0;
}

bool cl_touch_stop(kvt_cluster *c)
{
    if (!c->touch_started)
        return true;
    pthread_mutex_lock(&c->touch_mu);
    c->touch_stop = true;
    pthread_cond_signal(&c->touch_cv);
    pthread_mutex_unlock(&c->touch_mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    uint64_t ms = c->p.timeout_ms;
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(c->touch_thread, NULL, &until) == 0) {
        c->touch_started = false;
        return true;
    }
    pthread_detach(c->touch_thread);
    return false;
}

void cl_touch_note(kvt_cluster *c, const kvt_key *key)
{
    if (!c->touch_started)
        return;
    uint64_t h = cl_hash(key->b, 16);
    uint64_t bucket = kvt__monotonic_ns() / c->touch_interval_ns;
    uint64_t tag = (h ^ (bucket * 0x9e3779b97f4a7c15ull)) | 1;
    _Atomic uint64_t *seen = &c->touch_seen[h % CL_TOUCH_SLOTS];
    if (atomic_load_explicit(seen, memory_order_relaxed) == tag)
        return;
    atomic_store_explicit(seen, tag, memory_order_relaxed);
    pthread_mutex_lock(&c->touch_mu);
    if (c->touch_len < CL_TOUCH_QUEUE) {
        c->touch_q[(c->touch_head + c->touch_len) % CL_TOUCH_QUEUE] = *key;
        c->touch_len++;
        pthread_cond_signal(&c->touch_cv);
    } else {
        CL_ADD(c, touches_dropped, 1);
    }
    pthread_mutex_unlock(&c->touch_mu);
}
