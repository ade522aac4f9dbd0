/* test_slot_wait.c — how long a put waits for slots that are only in flight: about 1 s of real time. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"
#include "store.h" /* the index: to hold blocks "in flight" for as long as the test wants */
#include "../tier_kinds.h"

#define BLOCK 4096
#define NS 1000000000ull

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / NS), (long)(ns % NS)};
    while (nanosleep(&ts, &ts))
        ;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    uint32_t tok[1] = {i};
    cr_assert_eq(kvt_ns_key(NULL, 0, &ns), 0);
    cr_assert_eq(kvt_key_chain(&ns, tok, 1, 1, &k, 1), 1);
    return k;
}

static int put1(kvt_store *s, uint32_t i, int32_t *st)
{
    uint8_t buf[BLOCK];
    memset(buf, (int)i, sizeof buf);
    kvt_key k = key_of(i);
    void *p = buf;
    kvt_io_opts o = {.size = sizeof o, .status = st};
    return kvt_put(s, &k, 1, &p, &o, NULL);
}

/* Adds d to the DRAM reader count of block i, as a get copying out of its
 * slot does: the block is busy, neither evictable nor settled. */
static void hold(kvt_store *s, uint32_t i, int d)
{
    kvt_key k = key_of(i);
    kvt_shard *sh = kvt__index_shard(&s->ix, &k);
    pthread_mutex_lock(&sh->lock);
    uint32_t id = kvt__index_find(&s->ix, sh, &k);
    cr_assert_neq(id, KVT_NO_ENTRY);
    kvt__index_entry(&s->ix, id)->refs[TIER_DRAM] += d;
    pthread_mutex_unlock(&sh->lock);
}

static void *release_later(void *arg)
{
    kvt_store *s = arg;
    sleep_ns(100000000ull);
    for (uint32_t i = 0; i < 4; i++)
        hold(s, i, -1);
    return NULL;
}

/*
 * Regression: take_slot's budget for blocks in flight (1 s) used to count its
 * own naps (1 us per yield, 50 us per nanosleep) instead of elapsed time, so
 * whenever the waiting thread ran slower than that bookkeeping — a loaded
 * machine, or here a process stopped in the middle of the wait — it waited
 * far longer. A helper process stops this one with SIGSTOP shortly after the
 * put starts waiting and continues it after the budget has passed: a
 * deadline on CLOCK_MONOTONIC has expired by then, so the put gives up at
 * once; the old count had at least 0.8 s of naps still to go.
 */
Test(slot_wait, budget_is_elapsed_time_not_the_count_of_naps, .timeout = 60)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 4 * BLOCK), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "kvt_open: %s", kvt_last_error());
    kvt_config_free(c);
    int32_t st;
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq(put1(s, i, &st), 1);
        hold(s, i, 1);
    }

    /* The helper: told when the put starts, stops us 200 ms later (well
     * inside the 1 s wait), continues us 1.5 s after that (past the budget),
     * and reports when it sent SIGCONT. */
    const uint64_t stop_after = 200000000ull, stopped_for = 1500000000ull;
    int go[2], back[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(back), 0);
    pid_t me = getpid(), helper = fork();
    cr_assert(helper >= 0);
    if (helper == 0) {
        char b;
        if (read(go[0], &b, 1) != 1)
            _exit(1);
        sleep_ns(stop_after);
        kill(me, SIGSTOP);
        sleep_ns(stopped_for);
        uint64_t cont = mono_ns();
        kill(me, SIGCONT);
        _exit(write(back[1], &cont, sizeof cont) == sizeof cont ? 0 : 1);
    }
    uint64_t t0 = mono_ns();
    cr_assert_eq(write(go[1], "g", 1), 1);
    int rc = put1(s, 4, &st);
    uint64_t t1 = mono_ns();
    uint64_t cont = 0;
    cr_assert_eq(read(back[0], &cont, sizeof cont), (ssize_t)sizeof cont);
    int ws;
    cr_assert_eq(waitpid(helper, &ws, 0), helper);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);

    cr_assert_eq(rc, 0, "every slot is busy: nothing to evict");
    cr_assert_eq(st, KVT_EFULL, "status %s", kvt_error_name(st));
    double waited = (double)(t1 - t0) / 1e9;
    double after_cont = t1 > cont ? (double)(t1 - cont) / 1e9 : 0;
    fprintf(stderr, "slot_wait: put waited %.3f s, %.3f s of it after SIGCONT\n", waited,
            after_cont);
    cr_assert_geq(t1 - t0, NS, "the put waited out its 1 s budget");
    /* Unfixed, at least 0.8 s of counted naps remain after SIGCONT. */
    cr_assert_lt(after_cont, 0.4, "the put went on waiting %.3f s after its budget had passed",
                 after_cont);

    /* Still a wait, not a refusal, while blocks are in flight for less than
     * the budget: released 100 ms into the wait, the put gets a slot. */
    pthread_t th;
    uint64_t t2 = mono_ns();
    cr_assert_eq(pthread_create(&th, NULL, release_later, s), 0);
    cr_assert_eq(put1(s, 5, &st), 1, "status %s", kvt_error_name(st));
    uint64_t t3 = mono_ns();
    pthread_join(th, NULL);
    cr_assert_geq(t3 - t2, 100000000ull, "the put waited for the readers");
    cr_assert_eq(kvt_close(s), 0);
}
