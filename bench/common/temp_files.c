/* temp_files.c — temporary files (the runs' NVMe files): removed when the run is done, and on SIGINT / SIGTERM / SIGHUP. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"

static char temp_path[BENCH_MAX_TEMP][4096];
static volatile sig_atomic_t temp_armed[BENCH_MAX_TEMP];
static pthread_mutex_t temp_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
    for (int i = 0; i < BENCH_MAX_TEMP; i++)
        if (temp_armed[i])
            unlink(temp_path[i]); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

int bench_temp_register(const char *path)
{
    static int installed;
    int h = -1;
    pthread_mutex_lock(&temp_lock);
    for (int i = 0; i < BENCH_MAX_TEMP && h < 0; i++) {
        if (!temp_armed[i]) {
            h = i;
            snprintf(temp_path[i], sizeof temp_path[i], "%s", path);
            temp_armed[i] = 1;
        }
    }
    if (!installed) {
        installed = 1;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
    }
    pthread_mutex_unlock(&temp_lock);
    return h;
}

void bench_temp_remove(int h)
{
    if (h < 0 || h >= BENCH_MAX_TEMP)
        return;
    pthread_mutex_lock(&temp_lock);
    if (temp_armed[h]) {
        temp_armed[h] = 0;
        unlink(temp_path[h]);
    }
    pthread_mutex_unlock(&temp_lock);
}

