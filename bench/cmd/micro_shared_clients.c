/* micro_shared_clients.c — `micro --shared`: N client processes at once through one server, every returned byte checked. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "micro_shared.h"

/* What a client sends back: one write, well under PIPE_BUF, so the
 * clients' reports never interleave on the shared pipe. */
typedef struct client_report {
    uint32_t index;
    int32_t failed;
    uint64_t bytes, wrong_bytes, gets_checked, gets_missing, puts_stored;
    uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC: one clock for every process */
} client_report;

static uint64_t differing_bytes(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (memcmp(a, b, n) == 0)
        return 0;
    uint64_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

/* One round's calls: put or get blocks [0, n) in calls of per_call. */
static int io_calls(kvt_store *s, int is_put, const kvt_key *keys, size_t n, size_t per_call,
                    char *buf, uint64_t bb, void **ptrs, int32_t *status, client_report *r)
{
    for (size_t at = 0; at < n; at += per_call) {
        size_t k = n - at < per_call ? n - at : per_call;
        for (size_t i = 0; i < k; i++)
            ptrs[i] = buf + (at + i) * bb;
        kvt_io_opts o = {.size = sizeof o, .status = status + at};
        int got = is_put ? kvt_put(s, keys + at, k, ptrs, &o, NULL)
                         : kvt_get(s, keys + at, k, ptrs, &o, NULL);
        if (got < 0) {
            fprintf(stderr, "kvtier-bench micro --shared: client %u: %s: %s\n", r->index,
                    is_put ? "kvt_put" : "kvt_get", kvt_last_error());
            return -1;
        }
        if (is_put)
            r->puts_stored += (uint64_t)got;
    }
    return 0;
}

/* A client's whole life, in the child: connect, say ready, wait for the
 * start, run the rounds, report. Returns its exit status. */
static int client_main(const micro_shared_clients *c, const char *socket, uint32_t index,
                       int ready_fd, int start_fd, int report_fd)
{
    client_report r = {.index = index, .failed = 1};
    const uint64_t bb = c->block_bytes;
    const size_t n = c->blocks, all = n * (size_t)c->rounds;
    kvt_store *s = NULL;
    char *src = malloc(n * bb), *dst = malloc(n * bb);
    kvt_key *keys = malloc(all * sizeof *keys);
    void **ptrs = malloc(c->per_call * sizeof *ptrs);
    int32_t *status = malloc(n * sizeof *status);
    unsigned char ok = 0;
    if (src && dst && keys && ptrs && status &&
        bench_keys(keys, all, c->seed * 1000003u + index + 1) == 0 &&
        micro_shared_connect(socket, bb, (uint32_t)c->per_call, c->copy_threads, &s) == BENCH_OK)
        ok = 1;
    if (write(ready_fd, &ok, 1) != 1)
        ok = 0;
    close(ready_fd);
    char byte;
    while (read(start_fd, &byte, 1) < 0 && errno == EINTR) /* EOF: start */
        ;
    close(start_fd);
    r.start_ns = bench_now_ns();
    for (int round = 0; ok && round < c->rounds; round++) {
        const kvt_key *rk = keys + (size_t)round * n;
        bench_fill(src, n * bb, c->seed ^ ((uint64_t)index << 32) ^ (uint64_t)round);
        if (io_calls(s, 1, rk, n, c->per_call, src, bb, ptrs, status, &r) ||
            io_calls(s, 0, rk, n, c->per_call, dst, bb, ptrs, status, &r)) {
            ok = 0;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (status[i] != 0) {
                r.gets_missing++;
                continue;
            }
            r.gets_checked++;
            r.bytes += bb;
            r.wrong_bytes += differing_bytes((unsigned char *)src + i * bb,
                                             (unsigned char *)dst + i * bb, bb);
        }
        /* Room for the next round: the server's DRAM holds two rounds. */
        if (kvt_remove(s, rk, n) < 0) {
            fprintf(stderr, "kvtier-bench micro --shared: client %u: kvt_remove: %s\n", index,
                    kvt_last_error());
            ok = 0;
        }
    }
    r.end_ns = bench_now_ns();
    r.bytes += r.puts_stored * bb;
    r.failed = !ok;
    if (s)
        kvt_close(s);
    if (write(report_fd, &r, sizeof r) != (ssize_t)sizeof r)
        r.failed = 1;
    free(src);
    free(dst);
    free(keys);
    free(ptrs);
    free(status);
    return r.failed ? BENCH_FAILED : BENCH_OK;
}

static void close_pair(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

int micro_shared_clients_run(micro_shared_clients *c, const char *socket, int close_fd,
                             int close_fd2)
{
    int ready[2] = {-1, -1}, start[2] = {-1, -1}, report[2] = {-1, -1};
    pid_t *pids = calloc(c->clients, sizeof *pids);
    unsigned forked = 0;
    int rc = BENCH_FAILED;
    c->failed = 0;
    if (!pids || pipe(ready) < 0 || pipe(start) < 0 || pipe(report) < 0) {
        fprintf(stderr, "kvtier-bench micro --shared: clients: %s\n", strerror(errno));
        goto out;
    }
    fflush(stdout);
    fflush(stderr);
    for (; forked < c->clients; forked++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "kvtier-bench micro --shared: fork: %s\n", strerror(errno));
            break;
        }
        if (pid == 0) {
            /* The start is the EOF of `start`: no child may hold its write end. */
            close(start[1]);
            close(ready[0]);
            close(report[0]);
            if (close_fd >= 0)
                close(close_fd);
            if (close_fd2 >= 0)
                close(close_fd2);
            int st = client_main(c, socket, forked, ready[1], start[0], report[1]);
            fflush(stderr);
            _exit(st);
        }
        pids[forked] = pid;
    }
    close(ready[1]);
    close(report[1]);
    ready[1] = report[1] = -1;
    unsigned ready_ok = 0;
    for (unsigned i = 0; i < forked; i++) {
        unsigned char ok = 0;
        ssize_t got;
        while ((got = read(ready[0], &ok, 1)) < 0 && errno == EINTR)
            ;
        if (got != 1)
            break;
        ready_ok += ok;
    }
    close(start[1]); /* every client starts now */
    start[1] = -1;
    uint64_t first = UINT64_MAX, last = 0;
    c->bytes = c->wrong_bytes = c->gets_checked = c->gets_missing = c->puts_stored = 0;
    unsigned reported = 0;
    client_report r;
    ssize_t got;
    for (;;) {
        while ((got = read(report[0], &r, sizeof r)) < 0 && errno == EINTR)
            ;
        if (got != (ssize_t)sizeof r)
            break;
        reported++;
        c->bytes += r.bytes;
        c->wrong_bytes += r.wrong_bytes;
        c->gets_checked += r.gets_checked;
        c->gets_missing += r.gets_missing;
        c->puts_stored += r.puts_stored;
        c->failed += r.failed != 0;
        if (r.start_ns < first)
            first = r.start_ns;
        if (r.end_ns > last)
            last = r.end_ns;
    }
    c->failed += c->clients - reported;
    c->seconds = last > first ? (double)(last - first) / 1e9 : 0;
    rc = ready_ok == c->clients && c->failed == 0 ? BENCH_OK : BENCH_FAILED;
out:
    close_pair(ready);
    close_pair(start);
    close_pair(report);
    for (unsigned i = 0; i < forked; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
    }
    free(pids);
    return rc;
}
