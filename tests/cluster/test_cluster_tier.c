/* test_cluster_tier.c — the "cluster" kind through the key-addressed tier interface: two instances on one directory are two nodes; batches complete through done(). */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"
#include "tier/cluster/tier_cluster.h"
#include "tier/tier.h"

#define BLOCK 32768u
#define FRAGS 4u

static char dir[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void setup(void)
{
    const char *base = getenv("KVT_CLUSTER_DIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(dir, sizeof dir, "%s/kvt-cluster-tier-XXXXXX", base);
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const kvt_tier_ops *const cl = &kvt__tier_cluster;

static kvt_tier_impl *open_node(uint64_t ttl_ms)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, cl);
    p.name = "cluster";
    p.block_bytes = BLOCK;
    p.block_tokens = 16;
    p.frags = FRAGS;
    p.ttl_ms = ttl_ms;
    cr_assert_eq(kvt__tier_params_set_str(&p, "dir", dir), 0);
    cr_assert_eq(kvt__tier_params_set_int(&p, "timeout_ms", 20000), 0);
    kvt_tier_impl *t = NULL;
    uint32_t nslots = 99;
    int rc = cl->open(&p, &t, &nslots);
    cr_assert_eq(rc, 0, "open: %s (%s)", kvt_strerror(rc), kvt_last_error());
    cr_assert_eq(nslots, 0, "key-addressed: no slots");
    return t;
}

typedef struct waiter {
    kvt_keyed_op op;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
} waiter;

static void on_done(kvt_keyed_op *op)
{
    waiter *w = op->user;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Submits and waits (10 s at most); returns op.result. */
static int run(kvt_tier_impl *t, kvt_keyed_kind kind, const kvt_key *keys, size_t n,
               void *const *frags, int32_t *status)
{
    waiter w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.op = (kvt_keyed_op){.kind = kind, .keys = keys, .n = n, .frags = frags, .nfrags = FRAGS,
                          .mem = KVT_MEM_HOST, .status = status, .done = on_done, .user = &w};
    cr_assert_eq(cl->keyed->submit(t, &w.op), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&w.mu);
    while (!w.calls)
        cr_assert_neq(pthread_cond_timedwait(&w.cv, &w.mu, &until), ETIMEDOUT, "done() not called in 10 s");
    pthread_mutex_unlock(&w.mu);
    usleep(1000);
    cr_assert_eq(w.calls, 1, "done() exactly once");
    return w.op.result;
}

static uint64_t grabbed;
static void grab(const char *name, uint64_t v, void *user)
{
    if (!strcmp(name, user))
        grabbed = v;
}

TestSuite(cluster_tier, .init = setup, .fini = teardown, .timeout = 60);

Test(cluster_tier, node_a_writes_node_b_reads_contains_removes)
{
    enum { N = 24 };
    kvt_tier_impl *a = open_node(0), *b = open_node(0);
    kvt_key keys[N];
    uint8_t *src = malloc(N * BLOCK), *dst = malloc(N * BLOCK);
    void *sf[N * FRAGS], *df[N * FRAGS];
    for (int i = 0; i < N; i++) {
        for (int b = 0; b < 16; b++)
            keys[i].b[b] = (uint8_t)(i * 37 + b * 101 + 5);
        for (uint32_t f = 0; f < FRAGS; f++) {
            sf[i * FRAGS + f] = src + i * BLOCK + f * (BLOCK / FRAGS);
            df[i * FRAGS + f] = dst + i * BLOCK + f * (BLOCK / FRAGS);
        }
    }
    for (size_t i = 0; i < N * BLOCK; i++)
        src[i] = (uint8_t)(i * 31 + (i >> 13));
    memset(dst, 0xEE, N * BLOCK);
    int32_t st[N];
    cr_assert_eq(run(a, KVT_KEYED_WRITE, keys, N / 2, sf, st), 0);
    cr_assert_eq(run(b, KVT_KEYED_CONTAINS, keys, N, NULL, st), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(st[i], i < N / 2 ? 1 : 0, "contains %d", i);
    cr_assert_eq(run(b, KVT_KEYED_READ, keys, N, df, st), 0, "misses are not failures");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(st[i], i < N / 2 ? 0 : KVT_ENOENT, "read %d", i);
        if (i < N / 2)
            cr_assert(!memcmp(src + i * BLOCK, dst + i * BLOCK, BLOCK), "bytes of %d", i);
    }
    cr_assert_eq(run(b, KVT_KEYED_REMOVE, keys, 2, NULL, st), 0);
    cr_assert_eq(st[0], 0);
    cr_assert_eq(run(a, KVT_KEYED_REMOVE, keys, 2, NULL, st), 0);
    cr_assert_eq(st[0], KVT_ENOENT, "node B removed it");
    cl->stats(b, grab, "cluster.hits");
    cr_assert_eq(grabbed, N / 2);
    cl->close(a);
    cl->close(b);
    free(src);
    free(dst);
}

Test(cluster_tier, required_dir_and_device_memory)
{
    kvt_tier_params p;
    memset(&p, 0, sizeof p);
    kvt__tier_params_defaults(&p, cl);
    p.block_bytes = BLOCK;
    p.block_tokens = 16;
    p.frags = FRAGS;
    kvt_tier_impl *t = NULL;
    cr_assert_eq(cl->open(&p, &t, NULL), KVT_EPATH, "no dir");
    t = open_node(0);
    kvt_key k = {{1}};
    int32_t st[1];
    waiter w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    uint8_t buf[BLOCK];
    void *f[FRAGS] = {buf, buf + BLOCK / 4, buf + BLOCK / 2, buf + 3 * BLOCK / 4};
    w.op = (kvt_keyed_op){.kind = KVT_KEYED_READ, .keys = &k, .n = 1, .frags = f,
                          .nfrags = FRAGS, .mem = KVT_MEM_CUDA, .status = st, .done = on_done,
                          .user = &w};
    cr_assert_eq(cl->keyed->submit(t, &w.op), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.calls)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    cr_assert_eq(st[0], KVT_EMEMKIND);
    cl->close(t);
}
