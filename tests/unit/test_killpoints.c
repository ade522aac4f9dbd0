/* test_killpoints.c — KVT_KILLPOINTS (lib/killpoint.h): parsing, site selection, exit codes, rate and determinism. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "killpoint.h"
#include "kvt_build_config.h"

#if !KVT_HAVE_FAULTS
Test(killpoints, unavailable)
{
    cr_skip_test("built with -Dfault_injection=false: kill points are compiled out");
}
#else

/* Each Criterion test runs in a fresh process, so the environment is read
 * anew at its first kill point. */

Test(killpoints, unset_is_off)
{
    unsetenv("KVT_KILLPOINTS");
    cr_assert_eq(kvt__killpoint_state(), -1, "read before the first kill point");
    for (int i = 0; i < 1000; i++)
        KVT_KILLPOINT((kvt__kp_site)(i % KVT__KP_SITES));
    cr_assert_eq(kvt__killpoint_state(), 0);
}

Test(killpoints, malformed_is_off)
{
    static const char *const bad[] = {"", "rate", "rate=", "rate=2", "rate=-0.1", "rate=x",
                                      "seed=1", "rate=1,bogus=2", "rate=1,sites=", "rate=1,sites=nope",
                                      "rate=1,sites=write,nope", "rate=1,seed=", "rate=0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("KVT_KILLPOINTS", bad[i], 1);
            for (int k = 0; k < 100; k++)
                KVT_KILLPOINT((kvt__kp_site)(k % KVT__KP_SITES));
            _exit(kvt__killpoint_state() == 0 ? 0 : 1);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "'%s' armed kill points (status %d)",
                  bad[i], st);
    }
}

/* rate=1: the first kill point of a selected site exits with 86 + site. */
static int first_exit(const char *spec, kvt__kp_site first, kvt__kp_site second)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("KVT_KILLPOINTS", spec, 1);
        KVT_KILLPOINT(first);
        KVT_KILLPOINT(second);
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "status %d", st);
    return WEXITSTATUS(st);
}

Test(killpoints, exit_codes_and_sites)
{
    cr_assert_eq(first_exit("rate=1", KVT__KP_WRITE, KVT__KP_META), 86);
    cr_assert_eq(first_exit("rate=1", KVT__KP_FLUSH, KVT__KP_META), 87);
    cr_assert_eq(first_exit("rate=1,sites=meta", KVT__KP_WRITE, KVT__KP_META), 88);
    cr_assert_eq(first_exit("rate=1,seed=3,sites=publish", KVT__KP_FLUSH, KVT__KP_PUBLISH), 89);
    cr_assert_eq(first_exit("rate=1,sites=write,flush", KVT__KP_META, KVT__KP_FLUSH), 87);
    cr_assert_eq(first_exit("rate=1,sites=publish", KVT__KP_WRITE, KVT__KP_META), 0);
    cr_assert_str_eq(kvt__killpoint_name(KVT__KP_META), "meta");
}

/* How many kill points a child passes before it exits, under spec. */
static long passes(const char *spec)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        setenv("KVT_KILLPOINTS", spec, 1);
        for (long n = 0; n < 1000000; n++) {
            if (write(fds[1], &n, sizeof n) != sizeof n)
                _exit(3);
            KVT_KILLPOINT(KVT__KP_WRITE);
        }
        _exit(0);
    }
    close(fds[1]);
    long n = -1, got;
    while (read(fds[0], &got, sizeof got) == sizeof got)
        n = got;
    close(fds[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 86, "status %d", st);
    return n; /* the kill point that fired was the n-th (0-based) */
}

Test(killpoints, rate_and_determinism)
{
    cr_assert_eq(passes("rate=0.01,seed=42"), passes("rate=0.01,seed=42"), "not deterministic");
    /* The draws are geometric: mean 1/R - 1 points passed before the one
     * that fires. 60 children at R = 0.05: mean 19, standard error 2.5
     * (forks are slow under ASan: keep them few). */
    enum { CHILDREN = 60 };
    double sum = 0;
    int differ = 0;
    long first = -1;
    for (int i = 0; i < CHILDREN; i++) {
        char spec[64];
        snprintf(spec, sizeof spec, "rate=0.05,seed=%d", 1000 + i);
        long n = passes(spec);
        sum += (double)n;
        if (first < 0)
            first = n;
        differ += n != first;
    }
    double mean = sum / CHILDREN;
    cr_assert(mean > 19 - 5 * 2.5 && mean < 19 + 5 * 2.5, "mean %.1f kill points passed at "
              "rate 0.05 (expected 19)", mean);
    cr_assert_gt(differ, CHILDREN / 2, "seeds barely change the draws");
}
#endif
