/* test_tiering.c — DRAM + NVMe through the public API: demotion, promotion, restart, TTL demotion, write modes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 8192
#define MS 1000000ull

static char path[512];

static void make_path(const char *name)
{
    const char *dir = getenv("KVT_BUILD_ROOT");
    snprintf(path, sizeof path, "%s/tiering-%s-%d.kvt", dir ? dir : ".", name, (int)getpid());
    unlink(path);
}

typedef struct opts {
    uint64_t dram_blocks, nvme_blocks, dram_ttl_ms, nvme_ttl_ms;
    int nvme_admit, dram_admit, manual;
    int no_close_flush; /* KVT_OPT_CLOSE_FLUSH_MS 0: close drops DRAM-only blocks */
} opts;

static kvt_store *open_two(opts o)
{
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", BLOCK, &slot), 0);
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, o.manual);
    if (o.no_close_flush)
        kvt_config_set(c, KVT_OPT_CLOSE_FLUSH_MS, 0);
    if (o.dram_blocks) {
        kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(o.dram_blocks * BLOCK));
        kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", (int64_t)o.dram_ttl_ms);
        kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "admit", o.dram_admit);
        kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    }
    kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(o.nvme_blocks * slot));
    kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "ttl_ms", (int64_t)o.nvme_ttl_ms);
    kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "admit", o.nvme_admit);
    kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    int rc = kvt_open(c, &s);
    cr_assert_eq(rc, 0, "open: %s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    kvt_ns_key(NULL, 0, &ns);
    uint32_t tok[1] = {i};
    kvt_key_chain(&ns, tok, 1, 1, &k, 1);
    return k;
}

static void fill(uint8_t *b, uint32_t i)
{
    for (int j = 0; j < BLOCK; j++)
        b[j] = (uint8_t)(i * 131 + (uint32_t)j * 7 + (uint32_t)(j >> 8));
}

static void put(kvt_store *s, uint32_t i)
{
    static uint8_t b[BLOCK];
    fill(b, i);
    kvt_key k = key_of(i);
    void *p = b;
    cr_assert_eq(kvt_put(s, &k, 1, &p, NULL, NULL), 1, "put %u: %s", i, kvt_last_error());
}

/* Blocks 0..95, their keys and pointers, for the batching tests. */
typedef struct blocks96 {
    uint8_t b[96][BLOCK];
    kvt_key k[96];
    void *p[96];
} blocks96;

static blocks96 *blocks96_make(void)
{
    static blocks96 bl;
    for (uint32_t i = 0; i < 96; i++) {
        fill(bl.b[i], i);
        bl.k[i] = key_of(i);
        bl.p[i] = bl.b[i];
    }
    return &bl;
}

/* The tier a block is found in, or -1. */
static int where(kvt_store *s, uint32_t i)
{
    kvt_key k = key_of(i);
    uint8_t t;
    return kvt_lookup(s, &k, 1, &t, 0) == 1 ? t : -1;
}

static void check_get(kvt_store *s, uint32_t i, int flags)
{
    static uint8_t got[BLOCK], want[BLOCK];
    memset(got, 0xA5, BLOCK);
    kvt_key k = key_of(i);
    void *p = got;
    int32_t st;
    kvt_io_opts o = {.size = sizeof o, .status = &st, .flags = (uint32_t)flags};
    cr_assert_eq(kvt_get(s, &k, 1, &p, &o, NULL), 1, "get %u: status %d", i, st);
    fill(want, i);
    cr_assert_eq(memcmp(got, want, BLOCK), 0, "block %u bytes differ", i);
}

static uint64_t stat(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    cr_assert_eq(kvt_stat(s, name, &v), 0, "stat %s", name);
    return v;
}

/* A put that evicts many DRAM blocks demotes them in batches (one NVMe
 * write per run of victims: half the DRAM tier, at most VICTIM_BATCH = 64),
 * not one synchronous write per victim; with the same outcome as one by
 * one: every block in its place, bytes intact. */
Test(tiering, victims_of_one_put_are_demoted_in_batches)
{
    make_path("batch");
    kvt_store *s = open_two((opts){.dram_blocks = 32, .nvme_blocks = 256});
    blocks96 *bl = blocks96_make();
    kvt_key *k = bl->k;
    void **p = bl->p;
    cr_assert_eq(kvt_put(s, k, 32, p, NULL, NULL), 32, "%s", kvt_last_error());
    cr_assert_eq(stat(s, "nvme.demotions_in"), 0);
    /* 64 more: the first 32 blocks make room for 32 of them (two runs of 16
     * victims, the second demoted while the first run's blocks are copied);
     * the put's own blocks are evictable once published, so they make room
     * for its last 32 (two more runs). */
    cr_assert_eq(kvt_put(s, k + 32, 64, p + 32, NULL, NULL), 64, "%s", kvt_last_error());
    cr_assert_eq(stat(s, "nvme.demotions_in"), 64);
    cr_assert_eq(stat(s, "nvme.demotion_writes"), 4, "64 victims in %llu writes",
                 (unsigned long long)stat(s, "nvme.demotion_writes"));
    for (uint32_t i = 0; i < 64; i++)
        cr_assert_eq(where(s, i), TIER_NVME, "block %u", i);
    for (uint32_t i = 64; i < 96; i++)
        cr_assert_eq(where(s, i), TIER_DRAM, "block %u", i);
    for (uint32_t i = 0; i < 96; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

/* A get that promotes many NVMe blocks into a full DRAM tier demotes the
 * DRAM blocks it pushes out in runs too (one NVMe write per run of 16 here),
 * not one synchronous write per promoted block. */
Test(tiering, promotions_demote_their_victims_in_runs)
{
    make_path("promote-runs");
    kvt_store *s = open_two((opts){.dram_blocks = 32, .nvme_blocks = 256});
    blocks96 *bl = blocks96_make();
    uint8_t(*b)[BLOCK] = bl->b;
    kvt_key *k = bl->k;
    void **p = bl->p;
    /* 0..63 on NVMe only, 64..95 in DRAM only. */
    cr_assert_eq(kvt_put(s, k, 96, p, NULL, NULL), 96, "%s", kvt_last_error());
    for (uint32_t i = 0; i < 64; i++)
        cr_assert_eq(where(s, i), TIER_NVME, "block %u", i);
    uint64_t writes0 = stat(s, "nvme.demotion_writes"), in0 = stat(s, "nvme.demotions_in");
    /* Get 0..63: each is promoted into DRAM. The first 32 push out 64..95,
     * which NVMe does not hold: 32 demotions in two runs of 16. The last 32
     * push out promoted blocks that NVMe still holds: nothing to write. */
    static uint8_t got[64][BLOCK];
    void *g[64];
    for (uint32_t i = 0; i < 64; i++)
        g[i] = got[i];
    cr_assert_eq(kvt_get(s, k, 64, g, NULL, NULL), 64, "%s", kvt_last_error());
    for (uint32_t i = 0; i < 64; i++)
        cr_assert_eq(memcmp(got[i], b[i], BLOCK), 0, "block %u bytes differ", i);
    cr_assert_eq(stat(s, "dram.promotions_in"), 64);
    uint64_t in = stat(s, "nvme.demotions_in") - in0;
    uint64_t writes = stat(s, "nvme.demotion_writes") - writes0;
    cr_assert_eq(in, 32, "%llu blocks demoted", (unsigned long long)in);
    cr_assert_eq(writes, 2, "32 victims in %llu writes", (unsigned long long)writes);
    for (uint32_t i = 32; i < 64; i++)
        cr_assert_eq(where(s, i), TIER_DRAM, "block %u", i);
    for (uint32_t i = 0; i < 96; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

/* More victims in one batch than the tier below has slots: the batch's own
 * demoted blocks fill NVMe and can't be evicted while in flight, so the
 * batch writes what it has and goes on (as a put does) rather than waiting
 * out the slot wait for each victim (the api fuzzer found 15 s for one put). */
Test(tiering, more_victims_than_slots_below_do_not_wait)
{
    make_path("overflow");
    kvt_store *s = open_two((opts){.dram_blocks = 32, .nvme_blocks = 8});
    blocks96 *bl = blocks96_make(); /* the first 64 */
    kvt_key *k = bl->k;
    void **p = bl->p;
    cr_assert_eq(kvt_put(s, k, 32, p, NULL, NULL), 32, "%s", kvt_last_error());
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(kvt_put(s, k + 32, 32, p + 32, NULL, NULL), 32, "%s", kvt_last_error());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* One slot wait is 1 s; the 24 victims beyond NVMe's 8 slots took one
     * each. A single wait would already break this bound. */
    cr_assert_lt(secs, 0.9, "put of 32 demoting 32 into 8 NVMe slots took %.2f s", secs);
    cr_assert_eq(stat(s, "nvme.demotions_in"), 32);
    /* Batched: 4 writes of 8 when the put's two runs of 16 victims are
     * demoted one after the other. The next run's demotion may start while
     * the previous one's is still running on the other demoter thread
     * (put.c: run_close); then the two share NVMe's 8 slots and take more,
     * smaller writes (7 seen). One write per victim would be 32. */
    uint64_t writes = stat(s, "nvme.demotion_writes");
    cr_assert(writes >= 4 && writes <= 16, "demotion writes %llu", (unsigned long long)writes);
    cr_assert_eq(stat(s, "nvme.used_blocks"), 8);
    /* Which 8 of the first 32 stay is the policy's choice; 8 do, intact. */
    uint32_t in_nvme = 0;
    for (uint32_t i = 0; i < 32; i++)
        if (where(s, i) == TIER_NVME) {
            in_nvme++;
            check_get(s, i, KVT_IO_NO_PROMOTE);
        }
    cr_assert_eq(in_nvme, 8);
    for (uint32_t i = 32; i < 64; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, dram_victims_demote_to_nvme_and_promote_back)
{
    make_path("demote");
    kvt_store *s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 64});
    for (uint32_t i = 0; i < 20; i++)
        put(s, i);
    cr_assert_eq(stat(s, "dram.used_blocks"), 4);
    cr_assert_eq(stat(s, "nvme.demotions_in"), 16);
    for (uint32_t i = 0; i < 16; i++)
        cr_assert_eq(where(s, i), TIER_NVME, "block %u", i);
    for (uint32_t i = 16; i < 20; i++)
        cr_assert_eq(where(s, i), TIER_DRAM);
    check_get(s, 3, 0);
    cr_assert_eq(where(s, 3), TIER_DRAM, "a get promotes into DRAM");
    cr_assert_eq(stat(s, "dram.promotions_in"), 1);
    check_get(s, 5, KVT_IO_NO_PROMOTE);
    cr_assert_eq(where(s, 5), TIER_NVME);
    /* every block still reads back exactly */
    for (uint32_t i = 0; i < 20; i++)
        check_get(s, i, 0);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, nvme_only_round_trips_and_eviction)
{
    make_path("only");
    kvt_store *s = open_two((opts){.nvme_blocks = 8});
    for (uint32_t i = 0; i < 12; i++)
        put(s, i);
    cr_assert_eq(stat(s, "nvme.used_blocks"), 8);
    cr_assert_eq(stat(s, "nvme.evictions"), 4);
    for (uint32_t i = 4; i < 12; i++)
        check_get(s, i, 0);
    cr_assert_eq(where(s, 0), -1);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, restart_after_clean_close_keeps_everything)
{
    make_path("restart");
    kvt_store *s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 64});
    for (uint32_t i = 0; i < 30; i++)
        put(s, i);
    kvt_key gone = key_of(7);
    cr_assert_eq(kvt_remove(s, &gone, 1), 1);
    cr_assert_eq(kvt_close(s), 0);
    /* The close wrote the last 4, held only in DRAM, down to NVMe: every
     * block comes back, except the removed one. */
    s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 64});
    for (uint32_t i = 0; i < 30; i++) {
        if (i == 7)
            cr_assert_eq(where(s, i), -1, "a removed block stays removed");
        else
            check_get(s, i, KVT_IO_NO_PROMOTE);
    }
    cr_assert_eq(stat(s, "nvme.used_blocks"), 29);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

/* KVT_OPT_CLOSE_FLUSH_MS 0: what was only in DRAM (the last 4) is gone; the
 * rest was demoted to NVMe and comes back, except the removed block. */
Test(tiering, restart_without_close_flush_keeps_what_was_on_nvme)
{
    make_path("restart-noflush");
    kvt_store *s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 64, .no_close_flush = 1});
    for (uint32_t i = 0; i < 30; i++)
        put(s, i);
    kvt_key gone = key_of(7);
    cr_assert_eq(kvt_remove(s, &gone, 1), 1);
    cr_assert_eq(kvt_close(s), 0);
    s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 64});
    for (uint32_t i = 26; i < 30; i++)
        cr_assert_eq(where(s, i), -1, "block %u was only in DRAM", i);
    for (uint32_t i = 0; i < 26; i++) {
        if (i == 7)
            cr_assert_eq(where(s, i), -1, "a removed block stays removed");
        else
            check_get(s, i, KVT_IO_NO_PROMOTE);
    }
    cr_assert_eq(stat(s, "nvme.used_blocks"), 25);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, ttl_expiry_demotes_to_next_tier)
{
    make_path("ttl");
    kvt_store *s = open_two((opts){.dram_blocks = 8, .nvme_blocks = 16, .dram_ttl_ms = 100,
                                   .nvme_ttl_ms = 1000, .manual = 1});
    put(s, 1);
    cr_assert_eq(kvt_clock_set(s, 100 * MS), 0);
    cr_assert_eq(where(s, 1), TIER_DRAM);
    cr_assert_eq(kvt_clock_set(s, 100 * MS + 1), 0);
    cr_assert_eq(where(s, 1), TIER_NVME, "expired from DRAM into NVMe");
    cr_assert_eq(stat(s, "dram.expirations"), 1);
    /* NVMe's idle time counts from arrival there (100 ms + 1 ns) */
    cr_assert_eq(kvt_clock_set(s, 1100 * MS + 1), 0);
    cr_assert_eq(where(s, 1), TIER_NVME);
    cr_assert_eq(kvt_clock_set(s, 1100 * MS + 2), 0);
    cr_assert_eq(where(s, 1), -1, "then dropped from the last tier");
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

/* Blocks that expire together leave together: one demotion write for the
 * DRAM blocks, one batch of header discards for the NVMe ones. */
Test(tiering, expiry_demotes_and_discards_in_batches)
{
    make_path("ttl-batch");
    kvt_store *s = open_two((opts){.dram_blocks = 32, .nvme_blocks = 64, .dram_ttl_ms = 100,
                                   .nvme_ttl_ms = 1000, .manual = 1});
    for (uint32_t i = 0; i < 32; i++)
        put(s, i);
    cr_assert_eq(kvt_clock_set(s, 100 * MS + 1), 0);
    cr_assert_eq(kvt_expire(s), 32);
    cr_assert_eq(stat(s, "dram.expirations"), 32);
    cr_assert_eq(stat(s, "nvme.demotions_in"), 32);
    cr_assert_eq(stat(s, "nvme.demotion_writes"), 1, "32 expired blocks in %llu writes",
                 (unsigned long long)stat(s, "nvme.demotion_writes"));
    for (uint32_t i = 0; i < 32; i++)
        cr_assert_eq(where(s, i), TIER_NVME, "block %u", i);
    for (uint32_t i = 0; i < 32; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    /* The gets above restarted their NVMe idle time at 100 ms + 1 ns. */
    cr_assert_eq(kvt_clock_set(s, 1100 * MS + 2), 0);
    cr_assert_eq(kvt_expire(s), 32);
    cr_assert_eq(stat(s, "nvme.discards"), 32);
    cr_assert_eq(stat(s, "nvme.discard_batches"), 1);
    for (uint32_t i = 0; i < 32; i++)
        cr_assert_eq(where(s, i), -1, "block %u", i);
    cr_assert_eq(kvt_close(s), 0);
    /* Discarded on media: a reopen finds none of them. */
    s = open_two((opts){.dram_blocks = 32, .nvme_blocks = 64});
    cr_assert_eq(stat(s, "nvme.recovered"), 0);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

/* A remove of many NVMe blocks invalidates their headers in one batch of
 * writes, not one synchronous write per block; a reopen finds none. */
Test(tiering, remove_discards_in_one_batch)
{
    make_path("remove-batch");
    kvt_store *s = open_two((opts){.dram_blocks = 32, .nvme_blocks = 256});
    blocks96 *bl = blocks96_make();
    kvt_key *k = bl->k;
    void **p = bl->p;
    cr_assert_eq(kvt_put(s, k, 96, p, NULL, NULL), 96, "%s", kvt_last_error());
    cr_assert_eq(kvt_remove(s, k, 96), 96);
    cr_assert_eq(stat(s, "nvme.discards"), 64);
    cr_assert_eq(stat(s, "nvme.discard_batches"), 1);
    for (uint32_t i = 0; i < 96; i++)
        cr_assert_eq(where(s, i), -1, "block %u", i);
    /* The slots are free again: all 96 fit once more. */
    cr_assert_eq(kvt_put(s, k, 96, p, NULL, NULL), 96, "%s", kvt_last_error());
    for (uint32_t i = 0; i < 96; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_remove(s, k, 64), 64);
    cr_assert_eq(kvt_close(s), 0);
    /* The close wrote the 32 kept blocks down; none of the 64 came back. */
    s = open_two((opts){.dram_blocks = 32, .nvme_blocks = 256});
    cr_assert_eq(stat(s, "nvme.recovered"), 32);
    for (uint32_t i = 0; i < 64; i++)
        cr_assert_eq(where(s, i), -1, "removed block %u came back", i);
    for (uint32_t i = 64; i < 96; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, write_through_copies_to_nvme)
{
    make_path("wt");
    kvt_store *s = open_two((opts){.dram_blocks = 8, .nvme_blocks = 16,
                                   .nvme_admit = KVT_ADMIT_WRITE_THROUGH});
    for (uint32_t i = 0; i < 6; i++)
        put(s, i);
    /* write-through is asynchronous: wait for the copies */
    for (int tries = 0; tries < 500 && stat(s, "nvme.writethrough_in") < 6; tries++)
        usleep(10000);
    cr_assert_eq(stat(s, "nvme.writethrough_in"), 6);
    cr_assert_eq(kvt_close(s), 0);
    s = open_two((opts){.dram_blocks = 8, .nvme_blocks = 16});
    for (uint32_t i = 0; i < 6; i++)
        check_get(s, i, 0);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, admit_after_n_accesses)
{
    make_path("admit");
    kvt_store *s = open_two((opts){.dram_blocks = 8, .nvme_blocks = 16,
                                   .dram_admit = KVT_ADMIT_AFTER_N});
    put(s, 1);
    cr_assert_eq(where(s, 1), TIER_NVME, "DRAM admits only after accesses: puts land below");
    check_get(s, 1, 0);
    cr_assert_eq(where(s, 1), TIER_NVME, "one access is not enough (default N = 2)");
    check_get(s, 1, 0);
    cr_assert_eq(where(s, 1), TIER_DRAM, "the second access promotes");
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, a_touch_counts_toward_admit_after_n)
{
    make_path("admit-touch");
    kvt_store *s = open_two((opts){.dram_blocks = 8, .nvme_blocks = 16,
                                   .dram_admit = KVT_ADMIT_AFTER_N});
    put(s, 1);
    put(s, 2);
    kvt_key k[3] = {key_of(1), key_of(3), key_of(2)};
    uint8_t tiers[3];
    cr_assert_eq(kvt_contains(s, k, 3, tiers), 2);
    cr_assert_eq(tiers[0], TIER_NVME);
    cr_assert_eq(tiers[1], KVT_TIER_NONE);
    cr_assert_eq(tiers[2], TIER_NVME);
    cr_assert_eq(kvt_touch(s, k, 1), 1);
    cr_assert_eq(where(s, 1), TIER_NVME, "a touch copies nothing, up or out");
    check_get(s, 1, 0);
    cr_assert_eq(where(s, 1), TIER_DRAM, "touch + get are the two accesses (N = 2)");
    check_get(s, 2, 0);
    cr_assert_eq(where(s, 2), TIER_NVME, "untouched: one access is not enough");
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, batch_larger_than_the_put_tier)
{
    make_path("batch");
    kvt_store *s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 64});
    enum { N = 20 };
    static uint8_t b[N][BLOCK];
    kvt_key k[N];
    void *p[N];
    for (uint32_t i = 0; i < N; i++) {
        fill(b[i], i);
        k[i] = key_of(i);
        p[i] = b[i];
    }
    cr_assert_eq(kvt_put(s, k, N, p, NULL, NULL), N, "one batch bigger than DRAM is stored whole");
    for (uint32_t i = 0; i < N; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

Test(tiering, write_through_does_not_block_later_puts)
{
    make_path("wtburst");
    kvt_store *s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 64,
                                   .nvme_admit = KVT_ADMIT_WRITE_THROUGH});
    for (uint32_t i = 0; i < 40; i++)
        put(s, i); /* asserts each put stores its block */
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Regression: write-through copies hold a ref on their DRAM source slot and
 * used to run on the same workers as async puts. Once DRAM was full, every
 * worker sat in take_slot waiting for a slot that only a write-through copy
 * queued behind it would free: each put waited out the slot budget and failed
 * with KVT_EFULL, so a burst of tickets took minutes and stored almost nothing. */
Test(tiering, async_puts_with_write_through_and_full_dram_complete, .timeout = 60)
{
    make_path("wtasync");
    kvt_store *s = open_two((opts){.dram_blocks = 4, .nvme_blocks = 256,
                                   .nvme_admit = KVT_ADMIT_WRITE_THROUGH});
    enum { N = 128 };
    static uint8_t b[N][BLOCK];
    static kvt_key k[N];
    static void *p[N];
    static int32_t st[N];
    kvt_ticket t[N];
    for (uint32_t i = 0; i < N; i++) {
        fill(b[i], i);
        k[i] = key_of(i);
        p[i] = b[i];
    }
    uint64_t t0 = mono_ns();
    for (uint32_t i = 0; i < N; i++) {
        kvt_io_opts o = {.size = sizeof o, .status = &st[i]};
        cr_assert_eq(kvt_put(s, &k[i], 1, &p[i], &o, &t[i]), 0, "put %u: %s", i,
                     kvt_last_error());
    }
    /* Unloaded, the whole burst takes milliseconds; 10 s is far above any
     * honest scheduling delay and far below the stall (~1 s per put). */
    const uint64_t budget_ns = 10ull * 1000000000ull;
    for (uint32_t i = 0; i < N; i++) {
        uint64_t spent = mono_ns() - t0;
        int left_ms = spent >= budget_ns ? 0 : (int)((budget_ns - spent) / 1000000ull);
        int rc = kvt_wait(s, t[i], left_ms);
        cr_assert_neq(rc, KVT_ETIMEDOUT, "ticket %u still pending after %.1f s", i,
                      (double)(mono_ns() - t0) / 1e9);
        cr_assert_eq(rc, 1, "put %u: %d (status %s)", i, rc, kvt_error_name(st[i]));
    }
    for (uint32_t i = 0; i < N; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
}

/* ------------------------------------------------- two instances of a kind */

static char path2[512];

/* DRAM (4 blocks) over two NVMe files: "nvme" (8 slots) then "nvme1". */
static kvt_store *open_dram_two_nvme(void)
{
    uint64_t slot;
    cr_assert_eq(kvt_slot_bytes("nvme", BLOCK, &slot), 0);
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    int d = kvt_config_add_tier(c, "dram", NULL);
    int n0 = kvt_config_add_tier(c, "nvme", NULL);
    int n1 = kvt_config_add_tier(c, "nvme", NULL);
    cr_assert_eq(d, 0);
    cr_assert_eq(n0, 1);
    cr_assert_eq(n1, 2, "the same kind twice: %s", kvt_last_error());
    cr_assert_eq(kvt_config_tier_find(c, "nvme1"), 2, "the second one is named nvme1");
    cr_assert_eq(kvt_config_tier_set(c, d, "capacity", 4 * BLOCK), 0);
    cr_assert_eq(kvt_config_tier_set(c, d, "hugepages", 0), 0);
    cr_assert_eq(kvt_config_tier_set(c, n0, "capacity", (int64_t)(8 * slot)), 0);
    cr_assert_eq(kvt_config_tier_set_str(c, n0, "path", path), 0);
    cr_assert_eq(kvt_config_tier_set(c, n1, "capacity", (int64_t)(64 * slot)), 0);
    cr_assert_eq(kvt_config_tier_set_str(c, n1, "path", path2), 0);
    int rc = kvt_open(c, &s);
    cr_assert_eq(rc, 0, "open: %s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

/* Two NVMe files in one store: blocks demote DRAM -> nvme -> nvme1, every
 * block reads back byte-exact from wherever it is, each file has its own
 * stats, and a reopen recovers both (recovery runs for every tier that has
 * recover, not for one named tier). */
Test(tiering, two_nvme_files_demote_in_order_and_recover)
{
    make_path("two-a");
    const char *dir = getenv("KVT_BUILD_ROOT");
    snprintf(path2, sizeof path2, "%s/tiering-two-b-%d.kvt", dir ? dir : ".", (int)getpid());
    unlink(path2);
    kvt_store *s = open_dram_two_nvme();
    cr_assert_eq(kvt_store_tier_count(s), 3);
    cr_assert_str_eq(kvt_store_tier_name(s, 0), "dram");
    cr_assert_str_eq(kvt_store_tier_name(s, 1), "nvme");
    cr_assert_str_eq(kvt_store_tier_name(s, 2), "nvme1");
    cr_assert_null(kvt_store_tier_name(s, 3));
    cr_assert_eq(kvt_store_tier_find(s, "nvme1"), 2);
    cr_assert_eq(kvt_store_tier_find(s, "nvme2"), KVT_ENOENT);
    for (int t = 0; t < 3; t++)
        cr_assert_eq(kvt_store_tier_available(s, t), 1);
    enum { N = 40 };
    for (uint32_t i = 0; i < N; i++)
        put(s, i);
    int seen[3] = {0};
    for (uint32_t i = 0; i < N; i++) {
        int t = where(s, i);
        cr_assert(t >= 0 && t < 3, "block %u held (tier %d)", i, t);
        seen[t]++;
    }
    cr_assert_eq(seen[0], 4, "DRAM holds the last 4");
    cr_assert_eq(seen[1] + seen[2], N - 4);
    cr_assert(seen[2] > 0, "the first file's victims went on to the second");
    cr_assert_eq(stat(s, "nvme.used_blocks"), (uint64_t)seen[1]);
    cr_assert_eq(stat(s, "nvme1.used_blocks"), (uint64_t)seen[2]);
    cr_assert(stat(s, "nvme1.bytes_written") > 0, "the second file's own counters");
    for (uint32_t i = 0; i < N; i++)
        check_get(s, i, KVT_IO_NO_PROMOTE);
    cr_assert_eq(kvt_close(s), 0);

    s = open_dram_two_nvme();
    for (uint32_t i = 0; i < N; i++) {
        int t = where(s, i);
        cr_assert(t == 1 || t == 2, "block %u recovered from a file (tier %d)", i, t);
        check_get(s, i, KVT_IO_NO_PROMOTE);
    }
    cr_assert_eq(kvt_close(s), 0);
    unlink(path);
    unlink(path2);
}
