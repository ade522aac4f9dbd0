/* spawn.c — see spawn.h. */
#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvt_build_config.h"

void scratch_dir(char *dir, size_t cap)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    snprintf(dir, cap, "%s/shared-test-XXXXXX", root ? root : KVT_BUILD_ROOT);
    if (!mkdtemp(dir)) {
        /* the socket path must stay short (108 bytes): fall back to /tmp */
        snprintf(dir, cap, "/tmp/kvt-shared-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    if (strlen(dir) > 60) {
        snprintf(dir, cap, "/tmp/kvt-shared-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

void scratch_remove(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int accepts(const char *sock)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

pid_t kvtierd_start(const char *sock, const char *const *argv)
{
    const char *root = getenv("KVT_BUILD_ROOT");
    char prog[1024];
    snprintf(prog, sizeof prog, "%s/tools/kvtierd", root ? root : KVT_BUILD_ROOT);
    const char *args[64] = {prog, "--socket", sock};
    size_t n = 3;
    for (size_t i = 0; argv && argv[i] && n < 62; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execv(prog, (char *const *)args);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    for (int i = 0; i < 1000; i++) {
        if (accepts(sock))
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int kvtierd_stop(pid_t pid, int sig)
{
    int st = -1;
    kill(pid, sig);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

typedef struct stat_q {
    const char *name;
    uint64_t v;
} stat_q;

static void match(const char *n, uint64_t v, void *u)
{
    stat_q *q = u;
    if (!strcmp(n, q->name))
        q->v = v;
}

uint64_t served_stat(kvt_server *srv, const char *name)
{
    stat_q q = {name, UINT64_MAX};
    kvt_serve_stats(srv, match, &q);
    return q.v;
}

pid_t spawn_self(const char *const *extra)
{
    extern char **environ;
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    if (!env)
        return -1;
    memcpy(env, environ, n * sizeof *env);
    memcpy(env + n, extra, m * sizeof *env);
    char *argv[] = {"kvtier-test-child", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execve("/proc/self/exe", argv, env); /* nothing else between fork and the new image */
        _exit(127);
    }
    free(env);
    return pid;
}
