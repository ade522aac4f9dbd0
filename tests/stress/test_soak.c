/* test_soak.c — overload: async puts faster than NVMe absorbs them; memory stays bounded, excess is refused and counted, gets keep working. */
/*
 *   test-soak [--seconds S] [--submitters N] [--readers N] [--write-through]
 *             [--overhead-mib M] [--seed X]
 *
 * The store: 64 KiB blocks in 16 fragments, DRAM 64 MiB (1024 blocks) in
 * front of an NVMe file of 2048 slots, KVT_OPT_MAX_INFLIGHT 256. NVMe admits
 * blocks demoted from DRAM (default) or, with --write-through, a copy of
 * every put. N submitter threads (default 6) put batches of 8 fresh blocks
 * asynchronously as fast as they can, each keeping up to 128 tickets in
 * flight, and only when refused (KVT_EBUSY) or out of ticket room do they
 * reap finished tickets (kvt_poll); readers (default 2) get recently
 * acknowledged blocks and check every byte. It runs S seconds (default 20;
 * docs/reliability.md has the 10-minute run), then drains and checks:
 *  - memory: the largest RSS seen (sampled every 50 ms) stays under
 *    DRAM capacity + the test's own buffers + M MiB of fixed overhead
 *    (default 32: NVMe rings and staging, index, policies, threads, libc);
 *  - nothing queues without bound: RSS after the first second grows by
 *    less than 8 MiB to the end;
 *  - refusals are counted: the per-block statuses the submitters saw add up
 *    exactly to the store's put_stored + put_present (status 0) and
 *    put_rejected (KVT_EFULL and the like); KVT_EBUSY refusals are the
 *    caller's to count (the submission never started);
 *  - gets keep working: no wrong byte, and no reader waits more than 5 s for
 *    a get to return.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvtier.h"
#include "stress_util.h"
#include "../tier_kinds.h"


#define BLOCK (64u << 10)
#define FRAGS 16
#define FRAG (BLOCK / FRAGS)
#define DRAM_BLOCKS 1024
#define NVME_SLOTS 2048
#define MAX_INFLIGHT 256
#define BATCH 8
#define RING 128 /* tickets in flight per submitter */
#define VARIANTS 8
#define ACKED 65536 /* ring of recently acknowledged block ids */
#define MIB (1024.0 * 1024.0)

static uint8_t *shared_frags; /* [VARIANTS][FRAGS - 1][FRAG], read-only */
static _Atomic uint64_t next_id = 1;
static _Atomic uint64_t acked_ring[ACKED];
static _Atomic uint64_t acked_count;
static _Atomic int stop_submit, stop_read;
static _Atomic uint64_t n_ebusy, n_tickets, n_ok_blocks, n_refused_blocks, n_status[64];
static _Atomic uint64_t n_gets, n_hits, n_wrong;
static _Atomic uint64_t max_get_gap_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static kvt_key key_of(uint64_t id)
{
    kvt_key ns, k;
    uint32_t tok[2] = {(uint32_t)id, (uint32_t)(id >> 32)};
    kvt_ns_key(NULL, 0, &ns);
    kvt_key_chain(&ns, tok, 2, 2, &k, 1);
    return k;
}

/* Fragment 0 of a block is its own (derived from the id); fragments 1..15
 * are one of VARIANTS shared buffers, chosen by the id. A block read back
 * must match both. */
static void fill_frag0(uint8_t *b, uint64_t id)
{
    fill_pattern(b, FRAG, id, 99);
    memcpy(b, &id, 8);
}

static const uint8_t *shared_frag(uint64_t id, int f)
{
    return shared_frags + ((size_t)(id % VARIANTS) * (FRAGS - 1) + (size_t)(f - 1)) * FRAG;
}

typedef struct slot {
    int busy;
    kvt_ticket t;
    uint64_t ids[BATCH];
    kvt_key keys[BATCH];
    void *ptrs[BATCH * FRAGS];
    int32_t st[BATCH];
    uint8_t *frag0; /* BATCH * FRAG */
} slot;

typedef struct submitter {
    kvt_store *s;
    slot *ring;
} submitter;

static void settle(slot *sl, int rc)
{
    CHECK(rc >= 0, "async put ticket: %s: %s", kvt_error_name(rc), kvt_last_error());
    for (int i = 0; i < BATCH; i++) {
        int32_t st = sl->st[i];
        if (st == 0) {
            uint64_t k = atomic_fetch_add(&acked_count, 1);
            atomic_store(&acked_ring[k % ACKED], sl->ids[i]);
            atomic_fetch_add(&n_ok_blocks, 1);
        } else {
            atomic_fetch_add(&n_refused_blocks, 1);
            atomic_fetch_add(&n_status[(unsigned)-st % 64], 1);
        }
    }
    sl->busy = 0;
}

/* Polls every ticket in flight once; returns how many finished. */
static int reap(submitter *a, int wait)
{
    int done = 0;
    for (int r = 0; r < RING; r++) {
        slot *sl = &a->ring[r];
        if (!sl->busy)
            continue;
        int rc = wait ? kvt_wait(a->s, sl->t, -1) : kvt_poll(a->s, sl->t);
        if (rc == KVT_EINPROGRESS)
            continue;
        settle(sl, rc);
        done++;
    }
    return done;
}

static void *submit_main(void *p)
{
    submitter *a = p;
    while (!atomic_load(&stop_submit)) {
        slot *sl = NULL;
        for (int r = 0; r < RING && !sl; r++)
            if (!a->ring[r].busy)
                sl = &a->ring[r];
        if (!sl) {
            if (!reap(a, 0))
                usleep(200);
            continue;
        }
        uint64_t first = atomic_fetch_add(&next_id, BATCH);
        for (int i = 0; i < BATCH; i++) {
            sl->ids[i] = first + (uint64_t)i;
            sl->keys[i] = key_of(sl->ids[i]);
            fill_frag0(sl->frag0 + (size_t)i * FRAG, sl->ids[i]);
            sl->ptrs[i * FRAGS] = sl->frag0 + (size_t)i * FRAG;
            for (int f = 1; f < FRAGS; f++)
                sl->ptrs[i * FRAGS + f] = (void *)shared_frag(sl->ids[i], f);
        }
        kvt_io_opts o = {.size = sizeof o, .status = sl->st};
        int rc = kvt_put(a->s, sl->keys, BATCH, sl->ptrs, &o, &sl->t);
        if (rc == KVT_EBUSY) {
            atomic_fetch_add(&n_ebusy, 1);
            if (!reap(a, 0))
                usleep(200);
            continue;
        }
        CHECK(rc == 0, "async put: %s: %s", kvt_error_name(rc), kvt_last_error());
        sl->busy = 1;
        atomic_fetch_add(&n_tickets, 1);
    }
    reap(a, 1); /* drain */
    return NULL;
}

typedef struct reader {
    kvt_store *s;
    uint64_t seed;
} reader;

static void *read_main(void *p)
{
    reader *a = p;
    uint64_t r = a->seed;
    uint8_t *buf = malloc(BLOCK);
    void *ptrs[FRAGS];
    for (int f = 0; f < FRAGS; f++)
        ptrs[f] = buf + (size_t)f * FRAG;
    uint8_t want0[FRAG];
    uint64_t last = now_ns();
    while (!atomic_load(&stop_read)) {
        uint64_t n = atomic_load(&acked_count);
        if (!n) {
            usleep(1000);
            last = now_ns();
            continue;
        }
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        /* mostly recent blocks (likely in DRAM), some older (NVMe or gone) */
        uint64_t back = r % (r % 4 ? 512 : ACKED);
        if (back >= n)
            back = n - 1;
        uint64_t id = atomic_load(&acked_ring[(n - 1 - back) % ACKED]);
        if (!id)
            continue;
        kvt_key k = key_of(id);
        int32_t st;
        kvt_io_opts o = {.size = sizeof o, .status = &st};
        memset(buf, 0xEE, BLOCK);
        int rc = kvt_get(a->s, &k, 1, ptrs, &o, NULL);
        CHECK(rc >= 0, "get: %s: %s", kvt_error_name(rc), kvt_last_error());
        uint64_t t = now_ns();
        uint64_t gap = t - last, cur = atomic_load(&max_get_gap_ns);
        while (gap > cur && !atomic_compare_exchange_weak(&max_get_gap_ns, &cur, gap))
            ;
        last = t;
        atomic_fetch_add(&n_gets, 1);
        if (rc == 1) {
            atomic_fetch_add(&n_hits, 1);
            fill_frag0(want0, id);
            int bad = memcmp(buf, want0, FRAG) != 0;
            for (int f = 1; f < FRAGS && !bad; f++)
                bad = memcmp(buf + (size_t)f * FRAG, shared_frag(id, f), FRAG) != 0;
            if (bad) {
                atomic_fetch_add(&n_wrong, 1);
                fprintf(stderr, "soak: WRONG BYTES for block %llu\n", (unsigned long long)id);
            }
        } else {
            CHECK(st == KVT_ENOENT, "get status %s", kvt_error_name(st));
        }
    }
    free(buf);
    return NULL;
}

static uint64_t stat_of(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    if (kvt_stat(s, name, &v) != 0)
        return 0;
    return v;
}

int main(int argc, char **argv)
{
    double seconds = 20;
    int nsub = 6, nread = 2, write_through = 0;
    double overhead_mib = 32;
    uint64_t seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--write-through")) {
            write_through = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "soak: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--submitters"))
            nsub = atoi(v);
        else if (!strcmp(a, "--readers"))
            nread = atoi(v);
        else if (!strcmp(a, "--overhead-mib"))
            overhead_mib = atof(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 0);
        else {
            fprintf(stderr, "soak: unknown flag %s\n", a);
            return 2;
        }
        i++;
    }
    if (nsub < 1 || nsub > 64 || nread < 0 || nread > 64 || seconds <= 0) {
        fprintf(stderr, "soak: bad arguments\n");
        return 2;
    }
    if (!seed)
        seed = 1;
    char path[512];
    snprintf(path, sizeof path, "%s/soak-%d.kvt",
             getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".", (int)getpid());
    unlink(path);
    uint64_t rss_start = rss_bytes();

    kvt_config *c;
    kvt_store *s;
    uint64_t slot_bytes;
    CHECK(kvt_slot_bytes("nvme", BLOCK, &slot_bytes) == 0, "%s", kvt_last_error());
    CHECK(kvt_config_new(&c) == 0, "%s", kvt_last_error());
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(c, KVT_OPT_FRAGS, FRAGS);
    kvt_config_set(c, KVT_OPT_WORKERS, 2);
    kvt_config_set(c, KVT_OPT_MAX_INFLIGHT, MAX_INFLIGHT);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)DRAM_BLOCKS * BLOCK);
    kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", (int64_t)(NVME_SLOTS * slot_bytes));
    kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "admit",
                        write_through ? KVT_ADMIT_WRITE_THROUGH : KVT_ADMIT_WRITE_BACK);
    kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    int rc = kvt_open(c, &s);
    CHECK(rc == 0, "open: %s", kvt_last_error());
    kvt_config_free(c);

    /* The test's own memory, all touched now so that it is in the baseline. */
    shared_frags = malloc((size_t)VARIANTS * (FRAGS - 1) * FRAG);
    for (size_t i = 0; i < (size_t)VARIANTS * (FRAGS - 1) * FRAG; i++)
        shared_frags[i] = (uint8_t)(i * 131 + i / FRAG);
    submitter *subs = calloc((size_t)nsub, sizeof *subs);
    size_t test_bytes = (size_t)VARIANTS * (FRAGS - 1) * FRAG;
    for (int i = 0; i < nsub; i++) {
        subs[i].s = s;
        subs[i].ring = calloc(RING, sizeof(slot));
        test_bytes += RING * sizeof(slot);
        for (int r = 0; r < RING; r++) {
            subs[i].ring[r].frag0 = malloc((size_t)BATCH * FRAG);
            memset(subs[i].ring[r].frag0, 0, (size_t)BATCH * FRAG);
            test_bytes += (size_t)BATCH * FRAG;
        }
    }
    test_bytes += (size_t)nread * BLOCK + sizeof acked_ring;
    uint64_t rss_open = rss_bytes();
    double cap_mib = (double)DRAM_BLOCKS * BLOCK / MIB;
    double bound_mib = cap_mib + (double)test_bytes / MIB + overhead_mib;
    printf("soak: seed %llu, %.0f s, %d submitters (async, up to %d tickets each), %d readers; "
           "DRAM %.0f MiB + NVMe %d slots of %llu B (%s), max in flight %d\n",
           (unsigned long long)seed, seconds, nsub, RING, nread, cap_mib, NVME_SLOTS,
           (unsigned long long)slot_bytes, write_through ? "write-through" : "write-back",
           MAX_INFLIGHT);
    printf("soak: RSS before open %.1f MiB, after open + test buffers %.1f MiB; bound = DRAM "
           "%.0f MiB + test buffers %.1f MiB + fixed overhead %.0f MiB = %.1f MiB\n",
           rss_start / MIB, rss_open / MIB, cap_mib, test_bytes / MIB, overhead_mib, bound_mib);
    fflush(stdout);

    pthread_t st[64], rt[64];
    reader rd[64];
    for (int i = 0; i < nsub; i++)
        CHECK(pthread_create(&st[i], NULL, submit_main, &subs[i]) == 0, "%s", "thread");
    for (int i = 0; i < nread; i++) {
        rd[i] = (reader){.s = s, .seed = seed * 7 + (uint64_t)i + 1};
        CHECK(pthread_create(&rt[i], NULL, read_main, &rd[i]) == 0, "%s", "thread");
    }
    uint64_t t0 = now_ns(), rss_max = 0, rss_1s = 0, rss_end = 0;
    double report_every = seconds >= 60 ? 60 : seconds >= 20 ? 5 : 1e9;
    double next_report = report_every;
    for (;;) {
        usleep(50 * 1000);
        double el = (double)(now_ns() - t0) / 1e9;
        uint64_t rss = rss_bytes();
        if (rss > rss_max)
            rss_max = rss;
        if (!rss_1s && el >= 1.0)
            rss_1s = rss;
        if (el >= next_report) {
            printf("soak: %5.0f s: RSS %.1f MiB (max %.1f), tickets %llu, EBUSY %llu, blocks "
                   "stored %llu, refused %llu, gets %llu (hits %llu)\n",
                   el, rss / MIB, rss_max / MIB, (unsigned long long)atomic_load(&n_tickets),
                   (unsigned long long)atomic_load(&n_ebusy),
                   (unsigned long long)atomic_load(&n_ok_blocks),
                   (unsigned long long)atomic_load(&n_refused_blocks),
                   (unsigned long long)atomic_load(&n_gets), (unsigned long long)atomic_load(&n_hits));
            fflush(stdout);
            next_report += report_every;
        }
        if (el >= seconds)
            break;
    }
    rss_end = rss_bytes();
    atomic_store(&stop_submit, 1);
    for (int i = 0; i < nsub; i++)
        pthread_join(st[i], NULL);
    atomic_store(&stop_read, 1);
    for (int i = 0; i < nread; i++)
        pthread_join(rt[i], NULL);
    double el = (double)(now_ns() - t0) / 1e9;

    uint64_t stored = stat_of(s, "put_stored"), present = stat_of(s, "put_present"),
             rejected = stat_of(s, "put_rejected"), put_blocks = stat_of(s, "put_blocks");
    printf("soak: %.1f s: %llu async puts accepted (%.0f/s), %llu refused with KVT_EBUSY; "
           "blocks: %llu stored, %llu refused per block",
           el, (unsigned long long)n_tickets, (double)n_tickets / el, (unsigned long long)n_ebusy,
           (unsigned long long)n_ok_blocks, (unsigned long long)n_refused_blocks);
    for (int e = 1; e < 64; e++)
        if (atomic_load(&n_status[e]))
            printf(" (%s %llu)", kvt_error_name(-e), (unsigned long long)atomic_load(&n_status[e]));
    printf("\n");
    printf("soak: store counters: put_blocks %llu, put_stored %llu, put_present %llu, "
           "put_rejected %llu, dram.evictions %llu, nvme.demotions_in %llu, "
           "nvme.writethrough_in %llu, writethrough_dropped %llu, nvme.evictions %llu, "
           "dram.dropped %llu, nvme.dropped %llu, dram.full %llu, nvme.full %llu\n",
           (unsigned long long)put_blocks, (unsigned long long)stored,
           (unsigned long long)present, (unsigned long long)rejected,
           (unsigned long long)stat_of(s, "dram.evictions"),
           (unsigned long long)stat_of(s, "nvme.demotions_in"),
           (unsigned long long)stat_of(s, "nvme.writethrough_in"),
           (unsigned long long)stat_of(s, "writethrough_dropped"),
           (unsigned long long)stat_of(s, "nvme.evictions"),
           (unsigned long long)stat_of(s, "dram.dropped"),
           (unsigned long long)stat_of(s, "nvme.dropped"),
           (unsigned long long)stat_of(s, "dram.full"), (unsigned long long)stat_of(s, "nvme.full"));
    printf("soak: gets %llu (%llu hits), wrong bytes %llu, longest wait between gets %.1f ms\n",
           (unsigned long long)n_gets, (unsigned long long)n_hits, (unsigned long long)n_wrong,
           atomic_load(&max_get_gap_ns) / 1e6);
    printf("soak: RSS max %.1f MiB (bound %.1f MiB; %.1f MiB over DRAM capacity + test "
           "buffers), after 1 s %.1f MiB, at the end %.1f MiB (growth after 1 s %+.1f MiB)\n",
           rss_max / MIB, bound_mib, rss_max / MIB - cap_mib - test_bytes / MIB, rss_1s / MIB,
           rss_end / MIB, ((double)rss_end - (double)rss_1s) / MIB);
    fflush(stdout);

    CHECK(n_wrong == 0, "%llu wrong blocks read", (unsigned long long)n_wrong);
    CHECK(n_gets > 0 || nread == 0, "%s", "no get completed");
    CHECK(atomic_load(&max_get_gap_ns) < 5000000000ull || nread == 0,
          "a reader waited %.1f s for a get", atomic_load(&max_get_gap_ns) / 1e9);
    CHECK(put_blocks == (uint64_t)(n_ok_blocks + n_refused_blocks),
          "store counted %llu put blocks, submitters saw %llu", (unsigned long long)put_blocks,
          (unsigned long long)(n_ok_blocks + n_refused_blocks));
    CHECK(stored + present == n_ok_blocks, "put_stored + put_present = %llu, status 0 for %llu",
          (unsigned long long)(stored + present), (unsigned long long)n_ok_blocks);
    CHECK(rejected == n_refused_blocks, "put_rejected %llu, refused statuses %llu",
          (unsigned long long)rejected, (unsigned long long)n_refused_blocks);
    CHECK(rss_max / MIB <= bound_mib, "RSS %.1f MiB over the bound %.1f MiB", rss_max / MIB,
          bound_mib);
    CHECK(rss_1s == 0 || (double)rss_end - (double)rss_1s < 8 * MIB,
          "RSS grew %.1f MiB after the first second", ((double)rss_end - (double)rss_1s) / MIB);
    CHECK(n_ebusy + n_refused_blocks > 0 || n_tickets == 0,
          "%s", "never overloaded: no refusal seen (the check would prove nothing)");
    CHECK(kvt_close(s) == 0, "%s", "close");
    unlink(path);
    printf("1 passed, 0 failed\n");
    return 0;
}
