/* criterion_main.c — the runner of every Criterion test binary: exits 77 (meson: SKIP) when every test it ran skipped. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>

/* Criterion exits 0 when all its tests skip, and meson would show OK for a
 * binary that tested nothing (a trace folder or a device missing). 77 is
 * meson's "skipped"; a binary where anything ran keeps Criterion's status. */
static size_t ran, skipped;

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    ran = stats->nb_tests;
    skipped = stats->tests_skipped;
}

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    if (!result && ran && skipped == ran)
        return 77;
    return result;
}
