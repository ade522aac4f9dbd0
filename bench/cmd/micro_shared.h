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
    int stop_fd; /* the bench's end of the pipe the child waits on; -1 none */
} micro_shared_server;

/* Forks the server for spec on socket, each client given staging_blocks
 * of staging, and waits until it serves. Returns BENCH_OK, or BENCH_USAGE /
 * BENCH_FAILED after the child said why on stderr (the child is reaped).
 * Call it while the bench has no threads of its own (before any store or
 * copier of the bench's side is open), since only the forking thread
 * lives on in the child. */
int micro_shared_server_start(micro_shared_server *srv, const bench_store_spec *spec,
                              const char *socket, uint32_t staging_blocks);
/* Stops the server (kvt_serve_stop, kvt_close in the child) and reaps it.
 * BENCH_OK, or BENCH_FAILED when the child did not exit 0. */
int micro_shared_server_stop(micro_shared_server *srv);

/* kvt_connect to socket expecting blocks of block_bytes, asking for
 * staging_blocks of staging. BENCH_OK or BENCH_FAILED (message printed). */
int micro_shared_connect(const char *socket, uint64_t block_bytes, uint32_t staging_blocks,
                         kvt_store **out);

/* The server's counter whose name is exactly `name`, else the first stat
 * whose name contains `part`; NaN when it has neither (an older library:
 * the report prints "n/a"). */
double micro_shared_counter(kvt_store *conn, const char *name, const char *part);

/* The concurrent clients: nclients processes (fork), each connected on its
 * own, putting and getting rounds × blocks of its own random bytes in calls
 * of per_call blocks and comparing every block a get returned with status 0. */
typedef struct micro_shared_clients {
    unsigned clients;
    uint64_t block_bytes;
    size_t blocks;   /* per client per round */
    size_t per_call; /* blocks per put/get call */
    int rounds;
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

/* Runs the clients against the server on socket. close_fd: a descriptor of
 * the bench's that the children must not hold (the server's stop pipe),
 * -1 none. BENCH_OK when every client ran (wrong bytes are the caller's to
 * judge), else BENCH_FAILED. */
int micro_shared_clients_run(micro_shared_clients *c, const char *socket, int close_fd);

#endif
