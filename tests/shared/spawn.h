/* spawn.h — the shared-store tests' helpers: kvtierd as a child process,
 * scratch directories, open-fd counts. */
#ifndef KVT_TEST_SHARED_SPAWN_H
#define KVT_TEST_SHARED_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvtier.h"

/* A fresh directory under the build root; its path in dir (cap bytes). */
void scratch_dir(char *dir, size_t cap);
/* Removes it and everything in it. */
void scratch_remove(const char *dir);
/* Starts kvtierd with argv (NULL-terminated, without the program) and waits
 * up to 10 s until it accepts on sock. Returns its pid, or -1. */
pid_t kvtierd_start(const char *sock, const char *const *argv);
/* Sends sig and reaps; returns the exit status as waitpid gives it. */
int kvtierd_stop(pid_t pid, int sig);
/* Starts this test program again as a child (fork, then exec at once),
 * with its environment plus `extra` ("NAME=value" strings, NULL-terminated);
 * a constructor there that sees its variable is the child. A child that did
 * kvtier work straight after fork() could block forever on a lock one of
 * the parent's threads (a server's, the sanitizer's) held at the fork.
 * Returns its pid, or -1. */
pid_t spawn_self(const char *const *extra);
/* Open file descriptors of this process. */
int open_fds(void);
/* A statistic of the server srv (kvt_serve_stats), or UINT64_MAX when it
 * has none of that name. */
uint64_t served_stat(kvt_server *srv, const char *name);

#endif
