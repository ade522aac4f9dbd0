/* time.c — clocks, the date and machine facts a report needs, and the tty progress line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench.h"

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_thread_run_delay_ns(void)
{
    FILE *f = fopen("/proc/thread-self/schedstat", "re");
    unsigned long long on_cpu, delay;
    int ok = f && fscanf(f, "%llu %llu", &on_cpu, &delay) == 2;
    if (f)
        fclose(f);
    return ok ? (uint64_t)delay : UINT64_MAX;
}

const char *bench_utc_date(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

const char *bench_cpu_model(void)
{
    static char model[128];
    if (model[0])
        return model;
    snprintf(model, sizeof model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return model;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *v = strchr(line, ':');
        if (!v)
            break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(model, sizeof model, "%s", v);
        model[strcspn(model, "\n")] = 0;
        break;
    }
    fclose(f);
    return model;
}

int bench_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

double bench_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "re");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static int progress_state = -1; /* -1 unknown, 0 not a tty, 1 tty */
static uint64_t progress_last;
static int progress_shown;

void bench_progress(const char *fmt, ...)
{
    if (progress_state < 0)
        progress_state = isatty(STDERR_FILENO) ? 1 : 0;
    if (!progress_state)
        return;
    uint64_t now = bench_now_ns();
    if (progress_shown && now - progress_last < 100000000u)
        return;
    progress_last = now;
    progress_shown = 1;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void bench_progress_done(void)
{
    if (progress_state == 1 && progress_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    progress_shown = 0;
}
