/* test_connect.c — a store served in this process, used through
 * kvt_connect as a local one: bytes, leases, pins released with the
 * connection, tickets and the eventfd, stats, ENOTSUP, the server's death
 * (kvtierd killed: KVT_ECLOSED at once, tickets fail, reconnect works). */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvtier.h"
#include "spawn.h"

#define BLOCK (32u * 1024u)
#define FRAGS 2u

static char dir[256], sock[320];
static kvt_store *store;
static kvt_server *srv;

static void fill(uint8_t *p, size_t len, const kvt_key *k)
{
    uint64_t s;
    memcpy(&s, k->b, 8);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = next_rand(&s);
        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

static void make_keys(kvt_key *k, size_t n, uint64_t *rs)
{
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 16; b += 8) {
            uint64_t v = next_rand(rs);
            memcpy(k[i].b + b, &v, 8);
        }
}

static void serve(uint32_t dram_blocks)
{
    scratch_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/kv.sock", dir);
    kvt_config *cfg;
    cr_assert_eq(kvt_config_new(&cfg), 0);
    kvt_config_set(cfg, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(cfg, KVT_OPT_FRAGS, FRAGS);
    kvt_config_tier_set(cfg, kvt_config_add_tier(cfg, "dram", NULL), "capacity",
                        (int64_t)dram_blocks * BLOCK);
    cr_assert_eq(kvt_open(cfg, &store), 0, "%s", kvt_last_error());
    kvt_config_free(cfg);
    cr_assert_eq(kvt_serve(store, sock, NULL, &srv), 0, "%s", kvt_last_error());
}

static void unserve(void)
{
    cr_assert_eq(kvt_serve_stop(srv), 0);
    cr_assert_eq(kvt_close(store), 0);
    scratch_remove(dir);
}

static void wait_clients(uint64_t want)
{
    for (int i = 0; i < 500 && served_stat(srv, "server.clients") != want; i++)
        usleep(10000);
    cr_assert_eq(served_stat(srv, "server.clients"), want);
}

/* n blocks of ptrs (FRAGS each) over one buffer. */
static void layout(uint8_t *buf, void **ptrs, size_t n)
{
    for (size_t i = 0; i < n * FRAGS; i++)
        ptrs[i] = buf + i * (BLOCK / FRAGS);
}

Test(shared, put_get_bytes_across_clients)
{
    uint64_t rs = test_seed("shared_put_get");
    serve(256);
    kvt_store *a, *b;
    cr_assert_eq(kvt_connect(sock, NULL, &a), 0, "%s", kvt_last_error());
    kvt_connect_opts o = {.size = sizeof o, .block_bytes = BLOCK, .frags = FRAGS,
                          .staging_blocks = 3}; /* calls split into requests */
    cr_assert_eq(kvt_connect(sock, &o, &b), 0, "%s", kvt_last_error());
    enum { N = 40 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    uint8_t *src = malloc((size_t)N * BLOCK), *dst = malloc((size_t)N * BLOCK);
    void *sp[N * FRAGS], *dp[N * FRAGS];
    for (int i = 0; i < N; i++)
        fill(src + (size_t)i * BLOCK, BLOCK, &k[i]);
    layout(src, sp, N);
    layout(dst, dp, N);
    int32_t st[N];
    kvt_io_opts io = {.size = sizeof io, .status = st};
    cr_assert_eq(kvt_put(a, k, N, sp, &io, NULL), N, "%s", kvt_last_error());
    memset(dst, 0, (size_t)N * BLOCK);
    cr_assert_eq(kvt_get(b, k, N, dp, &io, NULL), N, "%s", kvt_last_error());
    cr_assert_eq(memcmp(src, dst, (size_t)N * BLOCK), 0);
    uint8_t tiers[N];
    cr_assert_eq(kvt_lookup(b, k, N, tiers, 0), N);
    cr_assert_eq(tiers[0], 0); /* the first tier instance */
    /* same answers as the store itself */
    cr_assert_eq(kvt_contains(store, k, N, NULL), N);
    cr_assert_eq(kvt_remove(a, k, 4), 4);
    cr_assert_eq(kvt_lookup(b, k, N, tiers, 0), 0);
    cr_assert_eq(tiers[N - 1], KVT_TIER_NONE);
    cr_assert_eq(kvt_contains(b, k, N, NULL), N - 4);
    cr_assert_eq(kvt_get(b, k, N, dp, &io, NULL), N - 4);
    cr_assert_eq(st[0], KVT_ENOENT);
    cr_assert_eq(st[4], 0);
    cr_assert_eq(kvt_touch(a, k, N), N - 4);
    uint64_t v;
    cr_assert_eq(kvt_stat(a, "put_stored", &v), 0, "%s", kvt_last_error());
    cr_assert_eq(v, N);
    cr_assert_eq(kvt_stat(a, "client.staging_blocks", &v), 0);
    cr_assert_eq(kvt_stat(b, "client.staging_blocks", &v), 0);
    cr_assert_eq(v, 3);
    cr_assert_eq(kvt_stat(a, "no.such", &v), KVT_ENOENT);
    cr_assert_eq(kvt_clear(b), N - 4);
    cr_assert_eq(kvt_contains(a, k, N, NULL), 0);
    cr_assert_eq(kvt_close(a), 0);
    cr_assert_eq(kvt_close(b), 0);
    cr_assert_eq(kvt_close(b), KVT_ECLOSED);
    free(src);
    free(dst);
    unserve();
}

Test(shared, leases_pins_and_duplicate_releases)
{
    uint64_t rs = test_seed("shared_pins");
    serve(64);
    kvt_store *a, *b;
    cr_assert_eq(kvt_connect(sock, NULL, &a), 0, "%s", kvt_last_error());
    cr_assert_eq(kvt_connect(sock, NULL, &b), 0, "%s", kvt_last_error());
    enum { N = 8 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    uint8_t *src = calloc(N, BLOCK);
    void *sp[N * FRAGS];
    layout(src, sp, N);
    cr_assert_eq(kvt_put(a, k, N, sp, NULL, NULL), N);
    cr_assert_eq(kvt_lookup(a, k, N, NULL, 60000), N); /* a lease on all */
    cr_assert_eq(kvt_pin(b, k, 2, 60000), 2);
    int32_t st[N];
    /* b releases what it pinned, then again: the second is refused and
     * a's leases stay */
    cr_assert_eq(kvt_release(b, k, 2, st), 2);
    cr_assert_eq(kvt_release(b, k, 2, st), 0);
    cr_assert_eq(st[0], KVT_ENOTPINNED);
    cr_assert_eq(st[1], KVT_ENOTPINNED);
    /* a's leases go when a's connection does: the store then has no pin
     * left to release */
    cr_assert_eq(kvt_close(a), 0);
    wait_clients(1);
    cr_assert_eq(kvt_release(store, k, N, st), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(st[i], KVT_ENOTPINNED, "key %d still pinned", i);
    /* a pin of an absent key: all or nothing, as locally */
    kvt_key absent;
    make_keys(&absent, 1, &rs);
    kvt_key two[2] = {k[0], absent};
    cr_assert_eq(kvt_pin(b, two, 2, 1000), KVT_ENOENT);
    cr_assert_eq(kvt_pin(b, k, 1, 0), KVT_ESIZE);
    cr_assert_eq(kvt_close(b), 0);
    free(src);
    unserve();
}

/* The pinning client below runs in a fresh image of this program
 * (spawn_self); the parent passes the socket, the keys (hex) and the fd to
 * report on in the environment. */
#define PIN_CLIENT_ENV "KVT_TEST_PIN_CLIENT" /* "SOCK FD HEXKEYS" */

__attribute__((constructor)) static void pin_client_main(void)
{
    const char *spec = getenv(PIN_CLIENT_ENV);
    if (!spec)
        return;
    char path[320], hex[8 * 32 + 1];
    int fd;
    if (sscanf(spec, "%319s %d %256s", path, &fd, hex) != 3)
        _exit(2);
    size_t n = strlen(hex) / 32;
    kvt_key k[8];
    for (size_t i = 0; i < n && i < 8; i++)
        for (int b = 0; b < 16; b++) {
            unsigned v;
            sscanf(hex + i * 32 + b * 2, "%2x", &v);
            k[i].b[b] = (uint8_t)v;
        }
    kvt_store *c;
    if (kvt_connect(path, NULL, &c) || kvt_pin(c, k, n, 600000) != (int)n)
        _exit(1);
    char x = 1;
    if (write(fd, &x, 1) != 1)
        _exit(1);
    pause();
    _exit(0);
}

Test(shared, pins_of_a_killed_client_are_released)
{
    uint64_t rs = test_seed("shared_killed");
    serve(64);
    enum { N = 8 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    uint8_t *src = calloc(N, BLOCK);
    void *sp[N * FRAGS];
    layout(src, sp, N);
    cr_assert_eq(kvt_put(store, k, N, sp, NULL, NULL), N);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    char spec[512], *at = spec + snprintf(spec, sizeof spec, PIN_CLIENT_ENV "=%s %d ", sock, ready[1]);
    for (int i = 0; i < N; i++)
        for (int b = 0; b < 16; b++)
            at += sprintf(at, "%02x", k[i].b[b]);
    const char *extra[] = {spec, NULL};
    pid_t pid = spawn_self(extra);
    cr_assert_gt(pid, 0);
    char x = 0;
    cr_assert_eq(read(ready[0], &x, 1), 1, "the pinning client did not report");
    int32_t st[N];
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    wait_clients(0);
    cr_assert_eq(kvt_release(store, k, N, st), 0, "the dead client's pins were kept");
    close(ready[0]);
    close(ready[1]);
    free(src);
    unserve();
}

Test(shared, tickets_and_eventfd)
{
    uint64_t rs = test_seed("shared_tickets");
    serve(128);
    kvt_store *c;
    cr_assert_eq(kvt_connect(sock, NULL, &c), 0, "%s", kvt_last_error());
    enum { N = 16 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    uint8_t *src = malloc((size_t)N * BLOCK), *dst = calloc(N, BLOCK);
    for (int i = 0; i < N; i++)
        fill(src + (size_t)i * BLOCK, BLOCK, &k[i]);
    void *sp[N * FRAGS], *dp[N * FRAGS];
    layout(src, sp, N);
    layout(dst, dp, N);
    int32_t st[N];
    kvt_io_opts io = {.size = sizeof io, .status = st};
    kvt_ticket t1, t2;
    cr_assert_eq(kvt_put(c, k, N, sp, &io, &t1), 0);
    cr_assert_eq(kvt_wait(c, t1, -1), N, "%s", kvt_last_error());
    cr_assert_eq(kvt_get(c, k, N, dp, &io, &t2), 0);
    int efd = kvt_eventfd(c);
    cr_assert_geq(efd, 0);
    struct pollfd pf = {.fd = efd, .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, 10000), 1);
    int rc;
    while ((rc = kvt_poll(c, t2)) == KVT_EINPROGRESS)
        usleep(1000);
    cr_assert_eq(rc, N);
    cr_assert_eq(memcmp(src, dst, (size_t)N * BLOCK), 0);
    cr_assert_eq(kvt_wait(c, t2, 0), KVT_ETICKET);
    /* calls that are the serving process's own */
    cr_assert_eq(kvt_expire(c), KVT_ENOTSUP);
    cr_assert_eq(kvt_clock_set(c, 1), KVT_ENOTSUP);
    /* the served store's tiers, as the server names them */
    cr_assert_eq(kvt_store_tier_count(c), 1);
    cr_assert_str_eq(kvt_store_tier_name(c, 0), "dram");
    cr_assert_eq(kvt_store_tier_find(c, "dram"), 0);
    cr_assert_eq(kvt_store_tier_find(c, "nvme"), KVT_ENOENT);
    cr_assert_eq(kvt_store_tier_available(c, 0), 1);
    cr_assert_eq(kvt_store_tier_available(c, 3), KVT_EINVAL);
    cr_assert_eq(kvt_remove_group(c, 1), KVT_ENOTSUP);
    kvt_io_opts grouped = {.size = sizeof grouped, .group = 7};
    cr_assert_eq(kvt_put(c, k, 1, sp, &grouped, NULL), KVT_ENOTSUP);
    kvt_server *nested;
    cr_assert_eq(kvt_serve(c, "/tmp/x.sock", NULL, &nested), KVT_ENOTSUP);
    /* options of the struct's first version (a caller built against an
     * older header), and a size that is no struct's */
    kvt_io_opts old = {.size = (uint32_t)(offsetof(kvt_io_opts, status) + sizeof(int32_t *)),
                       .status = st};
    cr_assert_eq(kvt_get(c, k, N, dp, &old, NULL), N, "%s", kvt_last_error());
    old.size = 4;
    cr_assert_eq(kvt_get(c, k, N, dp, &old, NULL), KVT_EINVAL);
    kvt_io_opts dev = {.size = sizeof dev, .mem_kind = KVT_MEM_CUDA};
    cr_assert_eq(kvt_put(c, k, 1, sp, &dev, NULL), KVT_ENOTSUP);
    /* Prometheus text of a connected store */
    char text[16384];
    int len = kvt_stats_prometheus(c, text, sizeof text);
    cr_assert_gt(len, 0);
    cr_assert_lt(len, (int)sizeof text);
    cr_assert_not_null(strstr(text, "kvtier_hits{tier=\"dram\"} 32\n"), "%s", text);
    cr_assert_not_null(strstr(text, "kvtier_put_stored 16\n"));
    char small[8];
    cr_assert_eq(kvt_stats_prometheus(c, small, sizeof small), len);
    cr_assert_eq(strlen(small), 7);
    cr_assert_eq(kvt_close(c), 0);
    free(src);
    free(dst);
    unserve();
}

/* kvtierd as a separate process: killed, calls fail at once, tickets
 * complete with the error, a restarted one is connected to again. */
Test(shared, server_death_and_reconnect, .timeout = 60)
{
    uint64_t rs = test_seed("shared_death");
    scratch_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/kv.sock", dir);
    const char *args[] = {"--block-bytes", "32K", "--frags", "2", "--dram", "4M", NULL};
    pid_t pid = kvtierd_start(sock, args);
    cr_assert_gt(pid, 0, "kvtierd did not start");
    kvt_store *c;
    cr_assert_eq(kvt_connect(sock, NULL, &c), 0, "%s", kvt_last_error());
    enum { N = 4 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    uint8_t *src = calloc(N, BLOCK);
    void *sp[N * FRAGS];
    layout(src, sp, N);
    cr_assert_eq(kvt_put(c, k, N, sp, NULL, NULL), N);
    kvtierd_stop(pid, SIGKILL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(kvt_lookup(c, k, N, NULL, 0), KVT_ECLOSED);
    cr_assert_eq(kvt_put(c, k, N, sp, NULL, NULL), KVT_ECLOSED);
    kvt_ticket t;
    cr_assert_eq(kvt_get(c, k, N, sp, NULL, &t), 0);
    cr_assert_eq(kvt_wait(c, t, 5000), KVT_ECLOSED);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 2, "failing took seconds");
    cr_assert_eq(kvt_close(c), 0);
    pid = kvtierd_start(sock, args); /* the stale socket file is replaced */
    cr_assert_gt(pid, 0, "kvtierd did not restart");
    cr_assert_eq(kvt_connect(sock, NULL, &c), 0, "%s", kvt_last_error());
    cr_assert_eq(kvt_put(c, k, N, sp, NULL, NULL), N);
    cr_assert_eq(kvt_close(c), 0);
    cr_assert_eq(kvtierd_stop(pid, SIGTERM), 0, "kvtierd did not exit cleanly on SIGTERM");
    free(src);
    scratch_remove(dir);
}

/* A client that finds the socket file can connect: the path appears only
 * once the server listens (it binds a temporary name, listens, then links
 * it into place), so a client started beside the server never gets
 * ECONNREFUSED. A thread connects as soon as it sees the path while the
 * server starts and stops again and again. */
typedef struct prober {
    const char *path;
    _Atomic int stop;
    int refused, connected;
} prober;

static void *probe_main(void *arg)
{
    prober *p = arg;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p->path);
    while (!p->stop) {
        if (access(p->path, F_OK) != 0)
            continue;
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            p->connected++;
        else if (errno == ECONNREFUSED)
            p->refused++;
        close(fd);
    }
    return NULL;
}

Test(shared, the_socket_path_appears_only_once_the_server_listens, .timeout = 60)
{
    serve(16);
    cr_assert_eq(kvt_serve_stop(srv), 0);
    prober p = {.path = sock};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, probe_main, &p), 0);
    for (int i = 0; i < 300; i++) {
        cr_assert_eq(kvt_serve(store, sock, NULL, &srv), 0, "%s", kvt_last_error());
        usleep(200);
        cr_assert_eq(kvt_serve_stop(srv), 0);
    }
    p.stop = 1;
    pthread_join(th, NULL);
    cr_assert_gt(p.connected, 0, "the prober never connected");
    cr_assert_eq(p.refused, 0, "%d connects were refused at a path that existed (%d worked)",
                 p.refused, p.connected);
    srv = NULL;
    cr_assert_eq(kvt_close(store), 0);
    scratch_remove(dir);
}
