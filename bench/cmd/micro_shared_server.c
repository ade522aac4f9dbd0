/* micro_shared_server.c — `micro --shared`: the server in another process (a forked bench calling kvt_serve), connecting to it, its data-path counters. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "micro_shared.h"

/* Why a fork of the bench and not an exec of kvtierd: the server's store is
 * then built by store_cfg.c from the very spec the in-process store is
 * built from (every option, copy threads and huge pages included, which
 * kvtierd has no flags for), and the bench needs no path to another
 * binary. The child starts from a bench without threads (the caller's
 * rule), so nothing it inherits is half-locked. */

/* The server's data-path counters, found by name where the library has
 * them: the server's own statistics (kvt_serve_stats) first, then its
 * store's; an exact name first, then any "server.*" statistic containing
 * `part` (never a tier's, such as the NVMe tier's own staged blocks). */
typedef struct counter_find {
    const char *name, *part;
    double exact, partial;
} counter_find;

static void find_counter(const char *name, uint64_t value, void *user)
{
    counter_find *f = user;
    if (isnan(f->exact) && strcmp(name, f->name) == 0)
        f->exact = (double)value;
    else if (isnan(f->partial) && strncmp(name, "server.", 7) == 0 && strstr(name, f->part))
        f->partial = (double)value;
}

static double server_counter(kvt_server *srv, kvt_store *s, const char *name, const char *part)
{
    counter_find f = {name, part, NAN, NAN};
    if (srv)
        kvt_serve_stats(srv, find_counter, &f);
    if (isnan(f.exact) && s)
        kvt_stats(s, find_counter, &f);
    return isnan(f.exact) ? f.partial : f.exact;
}

/* report_fd carries a status byte once the server serves (or failed to),
 * then, after the stop, the two data-path counters (doubles, NaN: none). */
static void server_child(const bench_store_spec *spec, const char *socket, uint32_t staging,
                         int report_fd, int stop_fd)
{
    kvt_store *s = NULL;
    kvt_server *srv = NULL;
    int rc = bench_store_open(spec, &s);
    if (rc == BENCH_OK) {
        kvt_serve_opts o = {.size = sizeof o, .staging_blocks = staging};
        int sv = kvt_serve(s, socket, &o, &srv);
        if (sv < 0) {
            fprintf(stderr, "kvtier-bench micro --shared: server: kvt_serve %s: %s\n", socket,
                    kvt_last_error());
            rc = sv == KVT_EPATH || sv == KVT_ELOCKED ? BENCH_USAGE : BENCH_FAILED;
        }
    }
    unsigned char status = (unsigned char)rc;
    if (write(report_fd, &status, 1) != 1)
        rc = BENCH_FAILED;
    if (rc == BENCH_OK) { /* until the bench closes its end (or dies) */
        char c;
        while (read(stop_fd, &c, 1) < 0 && errno == EINTR)
            ;
        /* Read before kvt_serve_stop, while the server still has them. */
        double counters[2] = {
            server_counter(srv, s, "server.zero_copy_blocks", "zero_copy"),
            server_counter(srv, s, "server.staged_blocks", "staged"),
        };
        if (write(report_fd, counters, sizeof counters) != (ssize_t)sizeof counters)
            rc = BENCH_FAILED;
    }
    close(report_fd);
    if (srv && kvt_serve_stop(srv) < 0)
        rc = BENCH_FAILED;
    if (s && kvt_close(s) < 0) {
        fprintf(stderr, "kvtier-bench micro --shared: server: kvt_close: %s\n", kvt_last_error());
        rc = BENCH_FAILED;
    }
    fflush(stderr);
    _exit(rc);
}

static int reap(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return BENCH_FAILED;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    fprintf(stderr, "kvtier-bench micro --shared: the server died of signal %d\n",
            WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return BENCH_FAILED;
}

int micro_shared_server_start(micro_shared_server *srv, const bench_store_spec *spec,
                              const char *socket, uint32_t staging_blocks)
{
    int ready[2], stop[2];
    srv->pid = 0;
    srv->stop_fd = srv->report_fd = -1;
    if (pipe(ready) < 0)
        goto sys;
    if (pipe(stop) < 0) {
        close(ready[0]);
        close(ready[1]);
        goto sys;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(ready[0]);
        close(ready[1]);
        close(stop[0]);
        close(stop[1]);
        goto sys;
    }
    if (pid == 0) {
        close(ready[0]);
        close(stop[1]);
        server_child(spec, socket, staging_blocks, ready[1], stop[0]);
    }
    close(ready[1]);
    close(stop[0]);
    unsigned char status = BENCH_FAILED;
    ssize_t got;
    while ((got = read(ready[0], &status, 1)) < 0 && errno == EINTR)
        ;
    if (got != 1 || status != BENCH_OK) {
        close(ready[0]);
        close(stop[1]);
        int rc = reap(pid);
        if (got != 1)
            fprintf(stderr, "kvtier-bench micro --shared: the server exited before serving\n");
        return rc == BENCH_USAGE ? BENCH_USAGE : BENCH_FAILED;
    }
    srv->pid = pid;
    srv->stop_fd = stop[1];
    srv->report_fd = ready[0];
    return BENCH_OK;
sys:
    fprintf(stderr, "kvtier-bench micro --shared: cannot start the server: %s\n",
            strerror(errno));
    return BENCH_FAILED;
}

int micro_shared_server_stop(micro_shared_server *srv, double *zero_copy, double *staged)
{
    double counters[2] = {NAN, NAN};
    int rc = BENCH_OK;
    if (srv->pid) {
        close(srv->stop_fd);
        ssize_t got;
        while ((got = read(srv->report_fd, counters, sizeof counters)) < 0 && errno == EINTR)
            ;
        if (got != (ssize_t)sizeof counters)
            counters[0] = counters[1] = NAN;
        close(srv->report_fd);
        rc = reap(srv->pid);
        srv->pid = 0;
        srv->stop_fd = srv->report_fd = -1;
        if (rc != BENCH_OK) {
            fprintf(stderr, "kvtier-bench micro --shared: the server exited with %d\n", rc);
            rc = BENCH_FAILED;
        }
    }
    if (zero_copy)
        *zero_copy = counters[0];
    if (staged)
        *staged = counters[1];
    return rc;
}

int micro_shared_connect(const char *socket, uint64_t block_bytes, uint32_t staging_blocks,
                         uint32_t copy_threads, kvt_store **out)
{
    kvt_connect_opts o = {.size = sizeof o, .block_bytes = block_bytes,
                          .staging_blocks = staging_blocks, .copy_threads = copy_threads};
    *out = NULL;
    if (kvt_connect(socket, &o, out) < 0) {
        fprintf(stderr, "kvtier-bench micro --shared: kvt_connect %s: %s\n", socket,
                kvt_last_error());
        *out = NULL;
        return BENCH_FAILED;
    }
    return BENCH_OK;
}
