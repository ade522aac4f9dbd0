/* test_stress.c — many threads doing random put/get/lookup/remove/pin on a small store; every byte read is checked.
 * A plain program, not a Criterion test, so that it also runs under TSan
 * (Criterion's forking arena does not start under TSan: Snaipe/Criterion#274). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"
#include "stress_util.h"
#include "../tier_kinds.h"


/* Block bytes: 2 KiB, or 256 KiB with --big (the NVMe tier then hashes and
 * verifies on its helper threads: TSan sees those too). */
static size_t BLOCK = 2048;
#define FRAGS 2
#define UNIVERSE 512 /* distinct blocks; the store holds 64 of them */

static kvt_key keys[UNIVERSE];
static atomic_ulong wrong_bytes, blocks_verified, ops;




typedef struct worker_arg {
    kvt_store *s;
    uint64_t seed;
    double until;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    uint64_t r = a->seed;
    enum { MAXB = 8 };
    /* Page-aligned, so that large NVMe blocks move directly (no bounce). */
    uint8_t *srcb = aligned_alloc(4096, (2 * MAXB * BLOCK + BLOCK + 4095) / 4096 * 4096);
    uint8_t *src[MAXB], *dst[MAXB], *want;
    CHECK(srcb != NULL, "%s", "out of memory");
    for (int i = 0; i < MAXB; i++) {
        src[i] = srcb + (size_t)i * BLOCK;
        dst[i] = srcb + (size_t)(MAXB + i) * BLOCK;
    }
    want = srcb + 2 * (size_t)MAXB * BLOCK;
    void *sp[MAXB * FRAGS], *dp[MAXB * FRAGS];
    kvt_key k[MAXB];
    uint64_t idx[MAXB];
    int32_t st[MAXB];
    while (stress_seconds() < a->until) {
        size_t n = 1 + stress_rng(&r) % MAXB;
        uint64_t base = stress_rng(&r) % UNIVERSE;
        for (size_t i = 0; i < n; i++) {
            idx[i] = (base + i) % UNIVERSE; /* prefix-like runs of neighbours */
            k[i] = keys[idx[i]];
            for (int f = 0; f < FRAGS; f++) {
                sp[i * FRAGS + f] = src[i] + f * (BLOCK / FRAGS);
                dp[i * FRAGS + f] = dst[i] + f * (BLOCK / FRAGS);
            }
        }
        kvt_io_opts o = {.size = sizeof o, .status = st};
        int op = (int)(stress_rng(&r) % 10);
        if (op < 4) {
            for (size_t i = 0; i < n; i++)
                fill_pattern(src[i], BLOCK, idx[i], 12345);
            kvt_ticket t;
            int async = stress_rng(&r) % 4 == 0;
            int rc = kvt_put(a->s, k, n, sp, &o, async ? &t : NULL);
            if (async && rc == 0)
                rc = kvt_wait(a->s, t, -1);
            CHECK((rc) >= (0), "put: %s", kvt_strerror(rc));
        } else if (op < 8) {
            memset(dst[0], 0xA5, MAXB * BLOCK);
            int rc = kvt_get(a->s, k, n, dp, &o, NULL);
            CHECK((rc) >= (0), "get: %s", kvt_strerror(rc));
            for (size_t i = 0; i < n; i++) {
                if (st[i] != 0) {
                    CHECK((st[i]) == (KVT_ENOENT), "get status %d", st[i]);
                    continue;
                }
                fill_pattern(want, BLOCK, idx[i], 12345);
                if (memcmp(want, dst[i], BLOCK) != 0)
                    atomic_fetch_add(&wrong_bytes, 1);
                atomic_fetch_add(&blocks_verified, 1);
            }
        } else if (op == 8) {
            int h = kvt_lookup(a->s, k, n, NULL, stress_rng(&r) % 2 ? 5 : 0);
            CHECK((h) >= (0), "%s", "failed");
            if (h > 0 && stress_rng(&r) % 2)
                kvt_release(a->s, k, (size_t)h, NULL);
        } else {
            CHECK(kvt_remove(a->s, k, 1 + stress_rng(&r) % n) >= 0, "%s", "remove");
        }
        atomic_fetch_add(&ops, 1);
    }
    free(srcb);
    return NULL;
}

int main(int argc, char **argv)
{
    int nvme = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nvme") == 0)
            nvme = 1;
        else if (strcmp(argv[i], "--big") == 0)
            BLOCK = 256 << 10;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/stress-%d.kvt", getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".", (int)getpid());
    const char *env = getenv("KVT_STRESS_SECONDS");
    double secs = env ? atof(env) : 3.0;
    const char *seed_env = getenv("KVT_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    printf("stress: seed %llu (KVT_SEED to replay), %.1f s\n", (unsigned long long)seed, secs);
    fflush(stdout);
    kvt_key ns;
    kvt_ns_key(NULL, 0, &ns);
    for (uint32_t i = 0; i < UNIVERSE; i++) {
        uint32_t tok[2] = {i, i * 7};
        kvt_key_chain(&ns, tok, 2, 2, &keys[i], 1);
    }
    kvt_config *c;
    kvt_store *s;
    CHECK((kvt_config_new(&c)) == (0), "%s", "failed");
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_FRAGS, FRAGS);
    kvt_config_set(c, KVT_OPT_WORKERS, 2);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 64 * BLOCK);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", 50);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    if (nvme) {
        /* DRAM in front of a bigger NVMe tier: demotion, promotion and NVMe
         * eviction all run concurrently with everything else. */
        uint64_t slot;
        CHECK(kvt_slot_bytes("nvme", BLOCK, &slot) == 0, "%s", kvt_last_error());
        kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 16 * BLOCK);
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(128 * slot));
        kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "ttl_ms", 200);
        kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
        printf("stress: DRAM 16 blocks + NVMe 128 slots at %s\n", path);
    }
    CHECK(kvt_open(c, &s) == 0, "%s", kvt_last_error());
    kvt_config_free(c);

    enum { MAXT = 64 };
    int T = getenv("KVT_STRESS_THREADS") ? atoi(getenv("KVT_STRESS_THREADS")) : 8;
    if (T < 1 || T > MAXT)
        T = 8;
    pthread_t th[MAXT];
    worker_arg a[MAXT];
    double until = stress_seconds() + secs;
    for (int i = 0; i < T; i++) {
        a[i] = (worker_arg){.s = s, .seed = seed * 31 + (uint64_t)i + 1, .until = until};
        CHECK((pthread_create(&th[i], NULL, worker, &a[i])) == (0), "%s", "failed");
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    uint64_t used, cap;
    CHECK((kvt_stat(s, "dram.used_blocks", &used)) == (0), "%s", "failed");
    CHECK((kvt_stat(s, "dram.capacity_blocks", &cap)) == (0), "%s", "failed");
    CHECK((used) <= (cap), "%s", "failed");
    if (nvme) {
        uint64_t hashed = 0, verified = 0, dw = 0;
        kvt_stat(s, "nvme.hashed_off_ring", &hashed);
        kvt_stat(s, "nvme.verified_off_ring", &verified);
        kvt_stat(s, "nvme.demotion_writes", &dw);
        printf("stress: nvme: %llu checksums and %llu verifications off the ring, %llu "
               "demotion writes\n", (unsigned long long)hashed, (unsigned long long)verified,
               (unsigned long long)dw);
    }
    printf("stress: %lu ops, %lu blocks verified, %lu wrong\n", atomic_load(&ops),
           atomic_load(&blocks_verified), atomic_load(&wrong_bytes));
    CHECK((atomic_load(&wrong_bytes)) == (0), "%s", "failed");
    CHECK((atomic_load(&blocks_verified)) > (0), "%s", "failed");
    CHECK((kvt_close(s)) == (0), "%s", "failed");
    unlink(path);
    printf("1 passed, 0 failed\n");
    return 0;
}
