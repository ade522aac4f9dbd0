/* test_bad_input.c — what a kvtier server and client do with input they
 * should not get: a missing socket, a socket that is not kvtier's, another
 * protocol version or geometry, garbage, truncated and oversized messages,
 * huge counts, slot ids out of range, a second HELLO; each a clear code
 * for the client, a closed connection (only that one) on the server, and
 * nothing leaked over 1,000 connections. */
#include <stddef.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvtier.h"
#include "shared/proto.h"
#include "spawn.h"

#define BLOCK 4096u

static char dir[256], sock[320];
static kvt_store *store;
static kvt_server *srv;

static void serve(void)
{
    scratch_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/kv.sock", dir);
    kvt_config *cfg;
    cr_assert_eq(kvt_config_new(&cfg), 0);
    kvt_config_set(cfg, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_tier_set(cfg, kvt_config_add_tier(cfg, "dram", NULL), "capacity", 64 * BLOCK);
    cr_assert_eq(kvt_open(cfg, &store), 0, "%s", kvt_last_error());
    kvt_config_free(cfg);
    kvt_serve_opts o = {.size = sizeof o, .staging_blocks = 8};
    cr_assert_eq(kvt_serve(store, sock, &o, &srv), 0, "%s", kvt_last_error());
}

static void unserve(void)
{
    cr_assert_eq(kvt_serve_stop(srv), 0);
    cr_assert_eq(kvt_close(store), 0);
    scratch_remove(dir);
}

static int raw_connect(const char *path, int type)
{
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void hello(int fd, uint32_t version, uint64_t block_bytes)
{
    uint8_t msg[sizeof(kvt__msg_hdr) + sizeof(kvt__hello)];
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_HELLO, .arg0 = version};
    kvt__hello he = {.block_bytes = block_bytes};
    memcpy(msg, &h, sizeof h);
    memcpy(msg + sizeof h, &he, sizeof he);
    cr_assert_eq(send(fd, msg, sizeof msg, MSG_NOSIGNAL), (ssize_t)sizeof msg);
}

/* The WELCOME's result code; closes any fd that came with it. */
static int welcome(int fd)
{
    uint8_t buf[1024];
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof ctl};
    ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    cr_assert_geq(r, (ssize_t)sizeof(kvt__msg_hdr), "no welcome");
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c && c->cmsg_type == SCM_RIGHTS) {
        int mfd;
        memcpy(&mfd, CMSG_DATA(c), sizeof mfd);
        close(mfd);
    }
    kvt__msg_hdr h;
    memcpy(&h, buf, sizeof h);
    cr_assert_eq(h.op, KVT_OP_WELCOME);
    return (int32_t)h.arg0;
}

/* After a malformed message the server closes: the next read sees EOF. */
static void expect_closed(int fd)
{
    char b[64];
    cr_assert_eq(recv(fd, b, sizeof b, 0), 0, "the server kept a connection after bad input");
    close(fd);
}

static int handshaken(void)
{
    int fd = raw_connect(sock, SOCK_SEQPACKET);
    hello(fd, KVT_PROTO_VERSION, 0);
    cr_assert_eq(welcome(fd), 0);
    return fd;
}

static void send_req(int fd, uint16_t op, uint32_t n, uint32_t a0, size_t body)
{
    size_t len = sizeof(kvt__msg_hdr) + body;
    uint8_t *m = calloc(1, len);
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = op, .n = n, .arg0 = a0};
    memcpy(m, &h, sizeof h);
    send(fd, m, len, MSG_NOSIGNAL);
    free(m);
}

Test(shared_bad, connect_errors)
{
    serve();
    kvt_store *c;
    char missing[400];
    snprintf(missing, sizeof missing, "%s/none.sock", dir);
    cr_assert_eq(kvt_connect(missing, NULL, &c), KVT_ENODEV);
    cr_assert_eq(kvt_connect(NULL, NULL, &c), KVT_ENULL);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    cr_assert_eq(kvt_connect(longp, NULL, &c), KVT_EPATH);
    kvt_connect_opts o = {.size = 3};
    cr_assert_eq(kvt_connect(sock, &o, &c), KVT_EINVAL);
    o = (kvt_connect_opts){.size = sizeof o, .block_bytes = 2 * BLOCK};
    cr_assert_eq(kvt_connect(sock, &o, &c), KVT_EGEOMETRY);
    cr_assert_not_null(strstr(kvt_last_error(), "4096"), "%s", kvt_last_error());
    o = (kvt_connect_opts){.size = sizeof o, .frags = 2};
    cr_assert_eq(kvt_connect(sock, &o, &c), KVT_EGEOMETRY);
    o = (kvt_connect_opts){.size = sizeof o, .copy_threads = 65};
    cr_assert_eq(kvt_connect(sock, &o, &c), KVT_EINVAL);
    cr_assert_not_null(strstr(kvt_last_error(), "copy_threads"), "%s", kvt_last_error());
    o = (kvt_connect_opts){.size = sizeof o, .reserved = 1};
    cr_assert_eq(kvt_connect(sock, &o, &c), KVT_EINVAL);
    /* the first version's size (no copy_threads) still connects */
    o = (kvt_connect_opts){.size = offsetof(kvt_connect_opts, copy_threads)};
    cr_assert_eq(kvt_connect(sock, &o, &c), 0, "%s", kvt_last_error());
    kvt_close(c);
    /* a stream socket: not kvtier's */
    char other[400];
    snprintf(other, sizeof other, "%s/stream.sock", dir);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(other), sizeof sa.sun_path);
    memcpy(sa.sun_path, other, strlen(other) + 1);
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    listen(l, 4);
    cr_assert_eq(kvt_connect(other, NULL, &c), KVT_EFORMAT, "%s", kvt_last_error());
    close(l);
    unlink(other);
    /* a seqpacket socket that never answers */
    l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    listen(l, 4);
    o = (kvt_connect_opts){.size = sizeof o, .timeout_ms = 200};
    cr_assert_eq(kvt_connect(other, &o, &c), KVT_ETIMEDOUT, "%s", kvt_last_error());
    /* ... and one that answers garbage */
    int peer = accept(l, NULL, NULL);
    close(peer);
    pid_t pid = fork();
    if (pid == 0) {
        int p = accept(l, NULL, NULL);
        char junk[64];
        if (recv(p, junk, sizeof junk, 0) > 0)
            memset(junk, 0x5a, sizeof junk), send(p, junk, sizeof junk, 0);
        _exit(0);
    }
    cr_assert_eq(kvt_connect(other, NULL, &c), KVT_EFORMAT, "%s", kvt_last_error());
    close(l);
    /* a second server on the same socket path: refused */
    kvt_server *second;
    cr_assert_eq(kvt_serve(store, sock, NULL, &second), KVT_ELOCKED);
    unserve();
}

Test(shared_bad, refusals_by_the_server)
{
    serve();
    int fd = raw_connect(sock, SOCK_SEQPACKET);
    hello(fd, 99, 0);
    cr_assert_eq(welcome(fd), KVT_EFORMAT);
    expect_closed(fd);
    fd = raw_connect(sock, SOCK_SEQPACKET);
    hello(fd, KVT_PROTO_VERSION, BLOCK * 4);
    cr_assert_eq(welcome(fd), KVT_EGEOMETRY);
    expect_closed(fd);
    uint64_t refused = served_stat(srv, "server.refused");
    cr_assert_eq(refused, 2);
    /* a full server */
    cr_assert_eq(kvt_serve_stop(srv), 0);
    kvt_serve_opts o = {.size = sizeof o, .max_clients = 1};
    cr_assert_eq(kvt_serve(store, sock, &o, &srv), 0, "%s", kvt_last_error());
    kvt_store *one, *two;
    cr_assert_eq(kvt_connect(sock, NULL, &one), 0, "%s", kvt_last_error());
    cr_assert_eq(kvt_connect(sock, NULL, &two), KVT_EBUSY, "%s", kvt_last_error());
    cr_assert_eq(kvt_close(one), 0);
    for (int i = 0; i < 500 && served_stat(srv, "server.clients"); i++)
        usleep(10000);
    cr_assert_eq(kvt_connect(sock, NULL, &two), 0, "%s", kvt_last_error());
    cr_assert_eq(kvt_close(two), 0);
    unserve();
}

Test(shared_bad, malformed_messages_close_only_their_connection)
{
    serve();
    kvt_store *good;
    cr_assert_eq(kvt_connect(sock, NULL, &good), 0, "%s", kvt_last_error());
    kvt_key k = {{1}};
    uint8_t blk[BLOCK] = {7};
    void *p = blk;
    cr_assert_eq(kvt_put(good, &k, 1, &p, NULL, NULL), 1);

    /* garbage before any HELLO */
    int fd = raw_connect(sock, SOCK_SEQPACKET);
    send(fd, "garbage!garbage!garbage!garbage!", 32, MSG_NOSIGNAL);
    expect_closed(fd);
    /* truncated header */
    fd = raw_connect(sock, SOCK_SEQPACKET);
    send(fd, "KVTP", 4, MSG_NOSIGNAL);
    expect_closed(fd);
    /* truncated HELLO */
    fd = raw_connect(sock, SOCK_SEQPACKET);
    send_req(fd, KVT_OP_HELLO, 0, 1, 4);
    expect_closed(fd);
    /* after the handshake: a count larger than the body */
    fd = handshaken();
    send_req(fd, KVT_OP_LOOKUP, 1000000, 0, 16);
    expect_closed(fd);
    /* a huge count with a body to match is over the message limit */
    fd = handshaken();
    send_req(fd, KVT_OP_CONTAINS, KVT_PROTO_MAX_KEYS + 1, 0, (KVT_PROTO_MAX_KEYS + 1) * 16);
    expect_closed(fd);
    /* slot ids out of range */
    fd = handshaken();
    {
        uint8_t m[sizeof(kvt__msg_hdr) + 20];
        kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_GET, .n = 1};
        memcpy(m, &h, sizeof h);
        memset(m + sizeof h, 1, 16);
        uint32_t slot = 8; /* staging has 8: 0..7 */
        memcpy(m + sizeof h + 16, &slot, 4);
        send(fd, m, sizeof m, MSG_NOSIGNAL);
        expect_closed(fd);
    }
    /* unknown op, a second HELLO, unknown flags, zero keys */
    fd = handshaken();
    send_req(fd, 77, 0, 0, 0);
    expect_closed(fd);
    fd = handshaken();
    hello(fd, KVT_PROTO_VERSION, 0);
    expect_closed(fd);
    fd = handshaken();
    send_req(fd, KVT_OP_PUT, 0, 1u << 20, 0);
    expect_closed(fd);
    fd = handshaken();
    send_req(fd, KVT_OP_REMOVE, 0, 0, 0);
    expect_closed(fd);
    /* an oversized packet */
    fd = handshaken();
    send_req(fd, KVT_OP_LOOKUP, 1, 0, KVT_PROTO_MAX_MSG);
    expect_closed(fd);
    cr_assert_geq(served_stat(srv, "server.malformed"), 11);

    /* the well-behaved client never noticed */
    uint8_t out[BLOCK] = {0};
    void *q = out;
    cr_assert_eq(kvt_get(good, &k, 1, &q, NULL, NULL), 1, "%s", kvt_last_error());
    cr_assert_eq(out[0], 7);
    cr_assert_eq(kvt_close(good), 0);
    unserve();
}

/* A client that sends requests and never reads the replies is dropped once
 * its socket is full; the server stops without hanging. */
Test(shared_bad, client_that_never_reads, .timeout = 30)
{
    serve();
    int fd = handshaken();
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
    uint8_t m[sizeof(kvt__msg_hdr) + 16 * 512];
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_CONTAINS, .n = 512};
    memcpy(m, &h, sizeof h);
    memset(m + sizeof h, 3, 16 * 512);
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (int i = 0; i < 2000; i++)
        if (send(fd, m, sizeof m, MSG_NOSIGNAL) < 0)
            break;
    unserve(); /* returns: the stuck connection was dropped or stopped */
    close(fd);
}

Test(shared_bad, thousand_connections_leave_fds_flat, .timeout = 60)
{
    serve();
    kvt_store *c;
    cr_assert_eq(kvt_connect(sock, NULL, &c), 0);
    cr_assert_eq(kvt_close(c), 0);
    for (int i = 0; i < 200 && served_stat(srv, "server.clients"); i++)
        usleep(10000);
    int before = open_fds();
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(kvt_connect(sock, NULL, &c), 0, "cycle %d: %s", i, kvt_last_error());
        cr_assert_eq(kvt_close(c), 0);
    }
    for (int i = 0; i < 500 && (served_stat(srv, "server.clients") || open_fds() != before); i++)
        usleep(10000);
    cr_assert_eq(served_stat(srv, "server.clients"), 0);
    cr_assert_eq(open_fds(), before, "fds: %d before, %d after", before, open_fds());
    cr_assert_eq(served_stat(srv, "server.connections"), 1001);
    unserve();
}

/* SO_PEERCRED and tenants need a client of another uid. It runs in a fresh
 * image of this program (spawn_self): the constructor below is that client;
 * the parent passes what to do in the environment and reads the outcome
 * from the exit status. */
#define AS_NOBODY_ENV "KVT_TEST_AS_NOBODY"   /* connect, tenant_get, tenant_put */
#define AS_NOBODY_SOCK "KVT_TEST_AS_NOBODY_SOCK"
static const kvt_key tenant_key = {{9, 9, 9}};

__attribute__((constructor)) static void as_nobody_main(void)
{
    const char *what = getenv(AS_NOBODY_ENV), *path = getenv(AS_NOBODY_SOCK);
    if (!what || !path)
        return;
    if (setgid(65534) || setuid(65534))
        _exit(100);
    kvt_store *c;
    int rc = kvt_connect(path, NULL, &c);
    if (!strcmp(what, "connect")) {
        if (rc == 0)
            kvt_close(c);
        _exit(-rc);
    }
    if (rc)
        _exit(101);
    int put = !strcmp(what, "tenant_put");
    uint8_t blk[BLOCK];
    memset(blk, 0x33, sizeof blk);
    void *p = blk;
    int32_t st = 1;
    kvt_io_opts o = {.size = sizeof o, .status = &st};
    rc = put ? kvt_put(c, &tenant_key, 1, &p, &o, NULL) : kvt_get(c, &tenant_key, 1, &p, &o, NULL);
    int clear = kvt_clear(c);
    kvt_close(c);
    if (clear != KVT_ENOTSUP)
        _exit(102);
    _exit(put ? (rc == 1 ? 0 : 103) : (st == KVT_ENOENT ? 0 : blk[0] == 0x33 ? 10 : 104));
}

/* Runs the client above as uid nobody; its exit status, or -1. */
static int run_as_nobody(const char *what, const char *path)
{
    char what_var[64], path_var[400];
    snprintf(what_var, sizeof what_var, AS_NOBODY_ENV "=%s", what);
    snprintf(path_var, sizeof path_var, AS_NOBODY_SOCK "=%s", path);
    const char *extra[] = {what_var, path_var, NULL};
    pid_t pid = spawn_self(extra);
    cr_assert_gt(pid, 0);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* SO_PEERCRED: another uid is refused even where the socket's mode would
 * let it connect; with KVT_SERVE_GROUP its group is let in. Needs root (to
 * become another uid in a child). */
static int connect_as_nobody(const char *path)
{
    int st = run_as_nobody("connect", path);
    return st >= 0 ? -st : -1000;
}

Test(shared_bad, peer_credentials)
{
    if (geteuid() != 0)
        cr_skip("needs root to connect as another uid");
    serve();
    struct stat sb;
    cr_assert_eq(stat(sock, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "socket mode %o", sb.st_mode & 0777);
    chmod(dir, 0755);
    chmod(sock, 0666); /* the mode alone would let anyone in */
    int rc = connect_as_nobody(sock);
    cr_assert_eq(rc, KVT_EPATH, "got %d", rc);
    cr_assert_geq(served_stat(srv, "server.refused"), 1);
    cr_assert_eq(kvt_serve_stop(srv), 0);
    kvt_serve_opts o = {.size = sizeof o, .flags = KVT_SERVE_GROUP, .gid = 65534};
    cr_assert_eq(kvt_serve(store, sock, &o, &srv), 0, "%s", kvt_last_error());
    cr_assert_eq(stat(sock, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0660);
    cr_assert_eq(sb.st_gid, 65534);
    cr_assert_eq(connect_as_nobody(sock), 0);
    unserve();
}

/* KVT_SERVE_TENANT_UID: another uid cannot reach root's block by its key,
 * and its own block under the same key is another block. Needs root. */
static int tenant_child(const char *path, int put)
{
    return run_as_nobody(put ? "tenant_put" : "tenant_get", path);
}

Test(shared_bad, tenants_by_uid)
{
    if (geteuid() != 0)
        cr_skip("needs root to connect as another uid");
    scratch_dir(dir, sizeof dir);
    chmod(dir, 0755);
    snprintf(sock, sizeof sock, "%s/kv.sock", dir);
    kvt_config *cfg;
    cr_assert_eq(kvt_config_new(&cfg), 0);
    kvt_config_set(cfg, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_tier_set(cfg, kvt_config_add_tier(cfg, "dram", NULL), "capacity", 64 * BLOCK);
    cr_assert_eq(kvt_open(cfg, &store), 0, "%s", kvt_last_error());
    kvt_config_free(cfg);
    kvt_serve_opts o = {.size = sizeof o, .flags = KVT_SERVE_GROUP | KVT_SERVE_TENANT_UID,
                        .gid = 65534};
    cr_assert_eq(kvt_serve(store, sock, &o, &srv), 0, "%s", kvt_last_error());
    o.flags = 1u << 7;
    kvt_server *bad;
    cr_assert_eq(kvt_serve(store, "/tmp/never.sock", &o, &bad), KVT_EINVAL);
    kvt_store *mine;
    cr_assert_eq(kvt_connect(sock, NULL, &mine), 0, "%s", kvt_last_error());
    kvt_key k = tenant_key;
    uint8_t blk[BLOCK];
    memset(blk, 0x77, sizeof blk);
    void *p = blk;
    cr_assert_eq(kvt_put(mine, &k, 1, &p, NULL, NULL), 1);
    cr_assert_eq(tenant_child(sock, 0), 0, "another uid read root's block by its key");
    cr_assert_eq(tenant_child(sock, 1), 0);
    memset(blk, 0, sizeof blk);
    cr_assert_eq(kvt_get(mine, &k, 1, &p, NULL, NULL), 1);
    cr_assert_eq(blk[0], 0x77, "another uid's put replaced root's block");
    cr_assert_eq(kvt_contains(store, &k, 1, NULL), 0, "keys reach the store unfolded");
    cr_assert_eq(kvt_close(mine), 0);
    unserve();
}
