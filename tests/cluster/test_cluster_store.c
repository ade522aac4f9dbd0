/* test_cluster_store.c — two stores (two nodes) over one cluster directory: a block put on one is read, with the right bytes, on the other. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"

#define BLOCK 16384u
#define N 32

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
    snprintf(dir, sizeof dir, "%s/kvt-cluster-store-XXXXXX", base);
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Without Criterion's assertions: also called in forked children. */
static kvt_store *open_node(void)
{
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    int rc, dram, cl;
    if ((rc = kvt_config_new(&cfg)) || (rc = kvt_config_set(cfg, KVT_OPT_BLOCK_BYTES, BLOCK)) ||
        (rc = dram = kvt_config_add_tier(cfg, "dram", NULL)) < 0 ||
        (rc = kvt_config_tier_set(cfg, dram, "capacity", 64 * BLOCK)) ||
        (rc = cl = kvt_config_add_tier(cfg, "cluster", NULL)) < 0 ||
        (rc = kvt_config_tier_set(cfg, cl, "capacity", 1 << 30)) ||
        (rc = kvt_config_tier_set_str(cfg, cl, "dir", dir)) || (rc = kvt_open(cfg, &s)))
        fprintf(stderr, "open_node: %s (%s)\n", kvt_strerror(rc), kvt_last_error());
    kvt_config_free(cfg);
    return s;
}

static void key_of(int i, kvt_key *k)
{
    for (int b = 0; b < 16; b++)
        k->b[b] = (uint8_t)(i * 53 + b * 7 + 1);
}

TestSuite(cluster_store, .init = setup, .fini = teardown, .timeout = 60);

Test(cluster_store, put_on_node_a_get_on_node_b)
{
    static uint8_t src[N][BLOCK], dst[N][BLOCK];
    kvt_key keys[N];
    void *sp[N], *dp[N];
    for (int i = 0; i < N; i++) {
        key_of(i, &keys[i]);
        for (unsigned j = 0; j < BLOCK; j++)
            src[i][j] = (uint8_t)(i ^ (j * 13));
        sp[i] = src[i];
        dp[i] = dst[i];
    }
    pid_t a = fork();
    if (a == 0) { /* node A: puts, then closes (so its write-through is done) */
        kvt_store *s = open_node();
        if (!s)
            _exit(2);
        int rc = kvt_put(s, keys, N, sp, NULL, NULL);
        if (rc != N)
            fprintf(stderr, "node A: put %d (%s)\n", rc, kvt_last_error());
        kvt_close(s);
        _exit(rc == N ? 0 : 1);
    }
    int ws;
    cr_assert_eq(waitpid(a, &ws, 0), a);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "node A: exit %d", WEXITSTATUS(ws));
    kvt_store *b = open_node();
    cr_assert_not_null(b);
    int32_t status[N];
    memset(dst, 0xEE, sizeof dst);
    kvt_io_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.size = sizeof opts;
    opts.status = status;
    int got = kvt_get(b, keys, N, dp, &opts, NULL);
    cr_assert_eq(got, N, "node B read %d of %d from the cluster tier (%s)", got, N,
                 kvt_last_error());
    for (int i = 0; i < N; i++)
        cr_assert(!memcmp(src[i], dst[i], BLOCK), "block %d: wrong bytes", i);
    uint64_t hits = 0;
    cr_assert_eq(kvt_stat(b, "cluster.hits", &hits), 0);
    cr_assert_eq(hits, N);
    kvt_close(b);
}

/* Node A (another process) publishes blocks 1 and 3; node B holds block 0
 * locally. B's lookup continues its local prefix in the cluster tier and
 * stops at the first miss; contains goes past misses; a remove reaches
 * blocks only the cluster held, for every node. */
Test(cluster_store, lookup_contains_and_remove_across_nodes)
{
    static uint8_t blk[4][BLOCK];
    kvt_key keys[4];
    void *p[4];
    for (int i = 0; i < 4; i++) {
        key_of(100 + i, &keys[i]);
        memset(blk[i], 0x30 + i, BLOCK);
        p[i] = blk[i];
    }
    /* Node A is forked before B opens: a child forked while B's threads run
     * could block forever on a lock one of them held at the fork. */
    pid_t a = fork();
    if (a == 0) {
        kvt_store *s = open_node();
        if (!s)
            _exit(2);
        int rc = kvt_put(s, (kvt_key[]){keys[1], keys[3]}, 2, (void *[]){p[1], p[3]}, NULL, NULL);
        kvt_close(s);
        _exit(rc == 2 ? 0 : 1);
    }
    int ws;
    cr_assert_eq(waitpid(a, &ws, 0), a);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "node A: exit %d", WEXITSTATUS(ws));
    kvt_store *b = open_node();
    cr_assert_not_null(b);
    /* Block 0 goes to B's DRAM (and is written through to the cluster too:
     * lookups name the fastest tier holding it). */
    cr_assert_eq(kvt_put(b, keys, 1, p, NULL, NULL), 1);
    int cl = kvt_store_tier_find(b, "cluster");
    cr_assert_geq(cl, 0);
    uint8_t tiers[4];
    cr_assert_eq(kvt_lookup(b, keys, 4, tiers, 0), 2);
    cr_assert_eq(tiers[0], 0, "block 0 in DRAM first");
    cr_assert_eq(tiers[1], cl, "block 1 in the cluster tier");
    cr_assert_eq(tiers[2], KVT_TIER_NONE);
    cr_assert_eq(tiers[3], KVT_TIER_NONE, "a lookup stops at the first miss");
    cr_assert_eq(kvt_contains(b, keys, 4, tiers), 3);
    cr_assert_eq(tiers[3], cl, "contains goes past misses");
    cr_assert_eq(kvt_remove(b, &keys[3], 1), 1, "held only in the cluster tier: still held");
    kvt_close(b);
    /* A fresh node no longer sees block 3, still sees block 1. */
    kvt_store *c = open_node();
    cr_assert_not_null(c);
    cr_assert_eq(kvt_contains(c, keys + 1, 3, tiers), 1);
    cr_assert_eq(tiers[0], cl);
    cr_assert_eq(tiers[2], KVT_TIER_NONE, "removed for every node");
    kvt_close(c);
}
