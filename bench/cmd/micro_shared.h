/* micro_shared.h — `kvtier-bench micro --shared`: the serving process, the concurrent clients. */
#ifndef KVT_BENCH_MICRO_SHARED_H
#define KVT_BENCH_MICRO_SHARED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../bench.h"

/* The server: a child of the bench (fork, no exec) that opens its store
 * through store_cfg.c, exactly as the in-process side does, and serves it
 * with kvt_serve. It stays until micro_shared_server_stop closes stop_fd,
 * or until the bench dies (the pipe closes then too), so no server outlives
 * the run. */
typedef struct micro_shared_server {
    pid_t pid;  /* 0: not running */
    int stop_fd;   /* the bench's end of the pipe the child waits on; -1 none */
    int report_fd; /* the child's status, then its counters at the stop; -1 none */
} micro_shared_server;

/* Forks the server for spec on socket, each client given staging_blocks
 * of staging, and waits until it serves. Returns BENCH_OK, or BENCH_USAGE /
 * BENCH_FAILED after the child said why on stderr (the child is reaped).
 * Call it while the bench has no threads of its own (before any store or
 * copier of the bench's side is open), since only the forking thread
 * lives on in the child. */
int micro_shared_server_start(micro_shared_server *srv, const bench_store_spec *spec,
                              const char *socket, uint32_t staging_blocks);
/* Stops the server (kvt_serve_stop, kvt_close in the child) and reaps it;
 * zero_copy and staged (may be NULL) get the server's counters of blocks
 * moved through a shared arena and through staging, found by name in its
 * statistics (server.zero_copy_blocks, server.staged_blocks, else a
 * server or store statistic containing "zero_copy" / "staged"), NaN where
 * the library has none: the report prints "n/a". BENCH_OK, or
 * BENCH_FAILED when the child did not exit 0. */
int micro_shared_server_stop(micro_shared_server *srv, double *zero_copy, double *staged);

/* kvt_connect to socket expecting blocks of block_bytes, asking for
 * staging_blocks of staging and copy_threads for its arena copies (the
 * in-process store's KVT_OPT_COPY_THREADS, so both sides copy alike).
 * BENCH_OK or BENCH_FAILED (message printed). */
int micro_shared_connect(const char *socket, uint64_t block_bytes, uint32_t staging_blocks,
                         uint32_t copy_threads, kvt_store **out);

/* The concurrent clients: nclients processes (fork), each connected on its
 * own, putting and getting rounds × blocks of its own random bytes in calls
 * of per_call blocks and comparing every block a get returned with status 0. */
typedef struct micro_shared_clients {
    unsigned clients;
    uint64_t block_bytes;
    size_t blocks;   /* per client per round */
    size_t per_call; /* blocks per put/get call */
    int rounds;
    unsigned copy_threads; /* each client's arena copy threads */
    uint64_t seed;
    /* results */
    uint64_t bytes;        /* put (stored) + got (status 0), all clients */
    double seconds;        /* from the common start to the last client's end */
    uint64_t wrong_bytes;  /* bytes of status-0 gets that differ from what was put */
    uint64_t gets_checked; /* blocks compared */
    uint64_t gets_missing; /* blocks a get did not return (status not 0) */
    uint64_t puts_stored;
    unsigned failed; /* clients that failed a call, or died without a result */
} micro_shared_clients;

/* Runs the clients against the server on socket. close_fd, close_fd2:
 * descriptors of the bench's that the children must not hold (the
 * server's pipes), -1 none. BENCH_OK when every client ran (wrong bytes
 * are the caller's to judge), else BENCH_FAILED. */
int micro_shared_clients_run(micro_shared_clients *c, const char *socket, int close_fd,
                             int close_fd2);

/* ------------------------------------------- the report (report/micro_shared_report.c) */

/* The targets (issue 17, "Measure and report"), printed with the numbers. */
#define TARGET_RATIO 0.90
#define TARGET_P50_US 20.0
#define TARGET_P99_US 100.0

/* The flags, as given and as applied. */
typedef struct shared_opts {
    const char *socket, *nvme_dir; /* nvme_dir NULL: DRAM only */
    uint64_t total, batch, client_bytes;
    int64_t runs, copy_threads, lookups, clients, client_rounds, seed;
    int dram_shared;         /* applied to the server's DRAM tier */
    int dram_shared_asked;   /* --dram-shared */
    char dram_shared_why[256]; /* why it was not applied */
} shared_opts;

/* One block size: medians over calls (GB/s) and over turns (ratios). */
typedef struct shared_row {
    uint64_t block_bytes;
    size_t per_call, calls, pairs; /* pairs: turns per direction (runs x calls) */
    double put_in, put_conn, put_mem, put_ratio, put_p10, put_p90;
    double get_in, get_conn, get_mem, get_ratio, get_p10, get_p90;
    double zero_copy, staged; /* the server's counters; NaN: it has none */
    double arena_hugetlb;     /* the served arena on hugetlb pages: 1, 0; NaN: not said */
} shared_row;

/* 64-key lookups on one store, in microseconds. */
typedef struct lookup_row {
    const char *store; /* "in-process" or "connected" */
    uint64_t block_bytes;
    size_t calls, keys;
    double p50, p99, mean;
} lookup_row;

/* What one invocation measured, for the report. */
typedef struct shared_report {
    const shared_opts *o;
    const shared_row *rows;
    size_t nrows;
    const lookup_row *lk; /* 2 rows, or NULL */
    const micro_shared_clients *cl; /* NULL: not run */
    double cl_zero_copy, cl_staged;
} shared_report;

/* Prints the report: text tables, or with json one JSON object (docs/bench.md). */
void micro_shared_report(const shared_report *r, int json);

#endif
