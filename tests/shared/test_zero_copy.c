/* test_zero_copy.c — protocol v2's zero copy through a shared DRAM arena
 * (docs/shared.md): bytes exact with several client processes, and every
 * block counted as zero-copy (server.zero_copy_blocks) so that a silent
 * fall back to staging fails; a client SIGKILLed between RESERVE and
 * COMMIT leaves nothing visible and its slots free; one killed while
 * holding read references has them released; the fall backs (tenant mode,
 * KVT_IO_NO_PROMOTE of a block below DRAM, a version 1 client). The dying
 * clients speak the protocol by hand, to stop exactly between two steps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvtier.h"
#include "shared/proto.h"
#include "store/internal.h"
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

/* A store of dram_blocks in a shared DRAM arena (and slow_blocks in a
 * second, private DRAM tier below it when not 0), served. */
static void serve_with(uint32_t dram_blocks, uint32_t slow_blocks, uint32_t flags)
{
    scratch_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/kv.sock", dir);
    kvt_config *cfg;
    cr_assert_eq(kvt_config_new(&cfg), 0);
    kvt_config_set(cfg, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_set(cfg, KVT_OPT_FRAGS, FRAGS);
    int t = kvt_config_add_tier(cfg, "dram", NULL);
    cr_assert_geq(t, 0, "%s", kvt_last_error());
    cr_assert_eq(kvt_config_tier_set(cfg, t, "capacity", (int64_t)dram_blocks * BLOCK), 0);
    cr_assert_eq(kvt_config_tier_set(cfg, t, "shared", 1), 0, "%s", kvt_last_error());
    if (slow_blocks) {
        int u = kvt_config_add_tier(cfg, "dram", "slow");
        cr_assert_geq(u, 0, "%s", kvt_last_error());
        cr_assert_eq(kvt_config_tier_set(cfg, u, "capacity", (int64_t)slow_blocks * BLOCK), 0);
    }
    cr_assert_eq(kvt_open(cfg, &store), 0, "%s", kvt_last_error());
    kvt_config_free(cfg);
    kvt_serve_opts o = {.size = sizeof o, .flags = flags};
    cr_assert_eq(kvt_serve(store, sock, &o, &srv), 0, "%s", kvt_last_error());
}

static void unserve(void)
{
    cr_assert_eq(kvt_serve_stop(srv), 0);
    cr_assert_eq(kvt_close(store), 0);
    scratch_remove(dir);
}

static uint64_t store_stat(const char *name)
{
    uint64_t v = UINT64_MAX;
    cr_assert_eq(kvt_stat(store, name, &v), 0, "%s: %s", name, kvt_last_error());
    return v;
}

static void wait_clients(uint64_t want)
{
    for (int i = 0; i < 500 && served_stat(srv, "server.clients") != want; i++)
        usleep(10000);
    cr_assert_eq(served_stat(srv, "server.clients"), want);
}

static void layout(uint8_t *buf, void **ptrs, size_t n)
{
    for (size_t i = 0; i < n * FRAGS; i++)
        ptrs[i] = buf + i * (BLOCK / FRAGS);
}

/* Puts keys through client c, gets them back, compares: 0 when exact. */
static int round_trip(kvt_store *c, const kvt_key *k, size_t n, int32_t flags_get)
{
    uint8_t *src = malloc(n * BLOCK), *dst = malloc(n * BLOCK);
    void **sp = malloc(n * FRAGS * sizeof *sp), **dp = malloc(n * FRAGS * sizeof *dp);
    int32_t *st = malloc(n * sizeof *st);
    for (size_t i = 0; i < n; i++)
        fill(src + i * BLOCK, BLOCK, &k[i]);
    layout(src, sp, n);
    layout(dst, dp, n);
    memset(dst, 0, n * BLOCK);
    kvt_io_opts io = {.size = sizeof io, .status = st};
    int bad = kvt_put(c, k, n, sp, &io, NULL) != (int)n;
    io.flags = (uint32_t)flags_get;
    bad |= kvt_get(c, k, n, dp, &io, NULL) != (int)n;
    for (size_t i = 0; i < n; i++)
        bad |= st[i] != 0;
    bad |= memcmp(src, dst, n * BLOCK) != 0;
    free(src);
    free(dst);
    free(sp);
    free(dp);
    free(st);
    return bad;
}

Test(zero_copy, bytes_exact_with_many_clients)
{
    uint64_t rs = test_seed("zero_copy_many");
    enum { CLIENTS = 4, EACH = 24 };
    kvt_key k[CLIENTS * EACH];
    make_keys(k, CLIENTS * EACH, &rs);
    /* The clients are forked before the server starts, and told its socket
     * through a pipe: a child forked while the server's threads are busy
     * may inherit a lock one of them held (it hung under ASan). */
    pid_t pid[CLIENTS];
    int go[CLIENTS];
    for (int c = 0; c < CLIENTS; c++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid[c] = fork();
        cr_assert_geq(pid[c], 0);
        if (pid[c] == 0) {
            char path[sizeof sock];
            close(p[1]);
            ssize_t r = read(p[0], path, sizeof path - 1);
            if (r <= 0)
                _exit(3);
            path[r] = '\0';
            kvt_store *s;
            if (kvt_connect(path, NULL, &s))
                _exit(2);
            int bad = round_trip(s, k + c * EACH, EACH, 0);
            kvt_close(s);
            _exit(bad);
        }
        close(p[0]);
        go[c] = p[1];
    }
    serve_with(256, 0, 0);
    cr_assert_eq(served_stat(srv, "server.zero_copy"), 1);
    for (int c = 0; c < CLIENTS; c++) {
        cr_assert_eq(write(go[c], sock, strlen(sock)), (ssize_t)strlen(sock));
        close(go[c]);
    }
    for (int c = 0; c < CLIENTS; c++) {
        int ws;
        cr_assert_eq(waitpid(pid[c], &ws, 0), pid[c]);
        cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "client %d: status %#x", c, ws);
    }
    /* every client's blocks, read by another */
    kvt_store *s;
    cr_assert_eq(kvt_connect(sock, NULL, &s), 0, "%s", kvt_last_error());
    cr_assert_eq(round_trip(s, k, CLIENTS * EACH, 0), 0);
    cr_assert_eq(kvt_close(s), 0);
    /* 4 x 24 reserved and read by their clients, then read again (the put
     * finds them held: nothing reserved, nothing staged) */
    cr_assert_eq(served_stat(srv, "server.zero_copy_blocks"), 3u * CLIENTS * EACH);
    cr_assert_eq(served_stat(srv, "server.staged_blocks"), 0);
    cr_assert_eq(store_stat("dram.used_blocks"), CLIENTS * EACH);
    wait_clients(0);
    unserve();
}

/* ---------------------------------------------- a client by hand */

typedef struct raw {
    int fd;
    uint8_t *arena;
    size_t arena_bytes;
    uint32_t seq;
    uint8_t buf[KVT_PROTO_MAX_MSG + 1];
} raw;

/* Connects and says HELLO in `version`; maps the arena when one comes.
 * Returns 0 or a step number (children can't use cr_assert). */
static int raw_open(raw *r, uint32_t version)
{
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    if (connect(r->fd, (struct sockaddr *)&sa, sizeof sa))
        return 1;
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_HELLO, .arg0 = version};
    kvt__hello hello = {0};
    memcpy(r->buf, &h, sizeof h);
    memcpy(r->buf + sizeof h, &hello, sizeof hello);
    if (send(r->fd, r->buf, sizeof h + sizeof hello, 0) != (ssize_t)(sizeof h + sizeof hello))
        return 2;
    union {
        char b[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = r->buf, .iov_len = sizeof r->buf};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                        .msg_controllen = sizeof ctl.b};
    ssize_t len = recvmsg(r->fd, &mh, MSG_CMSG_CLOEXEC);
    kvt__welcome w;
    if (len < (ssize_t)(sizeof h + sizeof w))
        return 3;
    memcpy(&h, r->buf, sizeof h);
    memcpy(&w, r->buf + sizeof h, sizeof w);
    if (h.arg0 != 0 || w.version != version)
        return 4;
    int fds[2] = {-1, -1}, nfd = 0;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_type == SCM_RIGHTS) {
        nfd = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(fds, CMSG_DATA(cm), (size_t)nfd * sizeof(int));
    }
    size_t v1_len = sizeof h + sizeof w + w.ntiers * sizeof(kvt__tier_info);
    if (version == 1)
        return (size_t)len == v1_len && nfd == 1 ? 0 : 5; /* no arena for version 1 */
    uint64_t arena;
    if ((size_t)len != v1_len + 8)
        return 6;
    memcpy(&arena, r->buf + v1_len, 8);
    if (arena && nfd == 2) {
        r->arena = mmap(NULL, arena, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
        if (r->arena == MAP_FAILED)
            return 7;
        r->arena_bytes = arena;
    }
    return 0;
}

/* One request; the reply's payload lands in r->buf after the header.
 * Returns the reply's arg0 (the result), or INT32_MIN when it went wrong. */
static int raw_rpc(raw *r, uint16_t op, uint32_t n, uint32_t a0, const kvt_key *keys)
{
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = op, .seq = ++r->seq, .n = n, .arg0 = a0};
    memcpy(r->buf, &h, sizeof h);
    size_t len = sizeof h;
    if (keys) {
        memcpy(r->buf + len, keys, n * sizeof *keys);
        len += n * sizeof *keys;
    }
    if (send(r->fd, r->buf, len, 0) != (ssize_t)len)
        return INT32_MIN;
    if (recv(r->fd, r->buf, sizeof r->buf, 0) < (ssize_t)sizeof h)
        return INT32_MIN;
    memcpy(&h, r->buf, sizeof h);
    return h.op == (op | KVT_OP_REPLY) ? (int32_t)h.arg0 : INT32_MIN;
}

static int32_t raw_status(const raw *r, uint32_t i)
{
    int32_t st;
    memcpy(&st, r->buf + sizeof(kvt__msg_hdr) + i * 4, 4);
    return st;
}

static uint64_t raw_offset(const raw *r, uint32_t n, uint32_t i)
{
    uint64_t off;
    memcpy(&off, r->buf + sizeof(kvt__msg_hdr) + n * 4 + i * 8, 8);
    return off;
}

Test(zero_copy, killed_between_reserve_and_commit)
{
    uint64_t rs = test_seed("zero_copy_reserve_kill");
    serve_with(16, 0, 0);
    enum { N = 8 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    uint64_t used = store_stat("dram.used_blocks"), stored = store_stat("put_stored");
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        static raw r;
        int step = raw_open(&r, KVT_PROTO_VERSION);
        if (step)
            _exit(10 + step);
        if (!r.arena)
            _exit(20);
        if (raw_rpc(&r, KVT_OP_RESERVE, N, 0, k) != N)
            _exit(21);
        for (uint32_t i = 0; i < N; i++) {
            if (raw_status(&r, i) != 0)
                _exit(22);
            /* half a block written, then death */
            memset(r.arena + raw_offset(&r, N, i), 0xab, BLOCK / 2);
        }
        char one = 1;
        if (write(ready[1], &one, 1) != 1)
            _exit(23);
        pause();
        _exit(24);
    }
    close(ready[1]);
    char one = 0;
    cr_assert_eq(read(ready[0], &one, 1), 1, "the client did not reserve");
    /* reserved: invisible to every reader, the slots taken */
    kvt_store *s;
    cr_assert_eq(kvt_connect(sock, NULL, &s), 0, "%s", kvt_last_error());
    uint8_t tiers[N];
    cr_assert_eq(kvt_contains(s, k, N, tiers), 0);
    cr_assert_eq(store_stat("dram.used_blocks"), used + N);
    kill(pid, SIGKILL);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_assert(WIFSIGNALED(ws), "status %#x", ws);
    wait_clients(1);
    /* aborted: nothing visible, the slots free, nothing counted as stored */
    cr_assert_eq(kvt_contains(s, k, N, tiers), 0);
    cr_assert_eq(kvt_get(s, k, 1, (void *[]){tiers, tiers}, NULL, NULL), 0);
    cr_assert_eq(store_stat("dram.used_blocks"), used);
    cr_assert_eq(store_stat("put_stored"), stored);
    /* and reusable: the whole tier filled twice over, then the same keys */
    kvt_key more[32];
    make_keys(more, 32, &rs);
    cr_assert_eq(round_trip(s, more, 16, 0), 0);
    cr_assert_eq(round_trip(s, more + 16, 16, 0), 0);
    cr_assert_eq(round_trip(s, k, N, 0), 0);
    cr_assert_eq(served_stat(srv, "server.staged_blocks"), 0);
    cr_assert_eq(kvt_close(s), 0);
    close(ready[0]);
    unserve();
}

Test(zero_copy, read_refs_of_a_dead_client_released)
{
    uint64_t rs = test_seed("zero_copy_hold_kill");
    serve_with(16, 0, 0);
    enum { N = 4 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    kvt_store *s;
    cr_assert_eq(kvt_connect(sock, NULL, &s), 0, "%s", kvt_last_error());
    cr_assert_eq(round_trip(s, k, N, 0), 0);
    cr_assert_eq(store_stat("dram.used_blocks"), N);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        static raw r;
        if (raw_open(&r, KVT_PROTO_VERSION) || !r.arena)
            _exit(10);
        if (raw_rpc(&r, KVT_OP_HOLD, N, 0, k) != N)
            _exit(11);
        char one = 1;
        if (write(ready[1], &one, 1) != 1)
            _exit(12);
        pause();
        _exit(13);
    }
    close(ready[1]);
    char one = 0;
    cr_assert_eq(read(ready[0], &one, 1), 1, "the client did not hold");
    /* removed while held: gone for readers, but the slots stay the reader's */
    cr_assert_eq(kvt_remove(s, k, N), N, "%s", kvt_last_error());
    uint8_t tiers[N];
    cr_assert_eq(kvt_contains(s, k, N, tiers), 0);
    cr_assert_eq(store_stat("dram.used_blocks"), N);
    kill(pid, SIGKILL);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    wait_clients(1);
    cr_assert_eq(store_stat("dram.used_blocks"), 0, "the dead client's read references stayed");
    cr_assert_eq(kvt_close(s), 0);
    close(ready[0]);
    unserve();
}

Test(zero_copy, fall_backs)
{
    uint64_t rs = test_seed("zero_copy_fall_backs");
    /* KVT_IO_NO_PROMOTE of a block demoted below DRAM: staged; without it
     * the block is promoted and read from the arena. */
    serve_with(8, 64, 0);
    kvt_store *s;
    cr_assert_eq(kvt_connect(sock, NULL, &s), 0, "%s", kvt_last_error());
    enum { N = 24 };
    kvt_key k[N];
    make_keys(k, N, &rs);
    for (int i = 0; i < N; i += 4) /* k[0..8) demoted to "slow" */
        cr_assert_eq(round_trip(s, k + i, 4, 0), 0);
    uint8_t tiers[8];
    cr_assert_eq(kvt_contains(s, k, 8, tiers), 8);
    cr_assert_eq(tiers[0], 1, "k[0] in tier %u", tiers[0]);
    uint64_t zc = served_stat(srv, "server.zero_copy_blocks");
    cr_assert_eq(served_stat(srv, "server.staged_blocks"), 0);
    uint8_t buf[BLOCK], want[BLOCK];
    void *p[FRAGS] = {buf, buf + BLOCK / FRAGS};
    fill(want, BLOCK, &k[0]);
    kvt_io_opts io = {.size = sizeof io, .flags = KVT_IO_NO_PROMOTE};
    cr_assert_eq(kvt_get(s, k, 1, p, &io, NULL), 1, "%s", kvt_last_error());
    cr_assert_eq(memcmp(buf, want, BLOCK), 0);
    cr_assert_eq(served_stat(srv, "server.staged_blocks"), 1);
    cr_assert_eq(served_stat(srv, "server.zero_copy_blocks"), zc);
    memset(buf, 0, sizeof buf);
    cr_assert_eq(kvt_get(s, k, 1, p, NULL, NULL), 1, "%s", kvt_last_error());
    cr_assert_eq(memcmp(buf, want, BLOCK), 0);
    cr_assert_eq(served_stat(srv, "server.zero_copy_blocks"), zc + 1, "not promoted and held");
    cr_assert_eq(kvt_contains(s, k, 1, tiers), 1);
    cr_assert_eq(tiers[0], 0);
    /* more than the arena holds: the rest staged, bytes still exact */
    kvt_key big[20];
    make_keys(big, 20, &rs);
    cr_assert_eq(round_trip(s, big, 20, 0), 0);
    cr_assert_gt(served_stat(srv, "server.staged_blocks"), 1);
    /* a COMMIT with no reservation is refused, the connection kept */
    static raw r;
    cr_assert_eq(raw_open(&r, KVT_PROTO_VERSION), 0);
    cr_assert_eq(raw_rpc(&r, KVT_OP_COMMIT, 3, 0, NULL), KVT_EINVAL);
    cr_assert_eq(raw_rpc(&r, KVT_OP_HOLD, 1, 0, k + 8), 1);
    close(r.fd);
    munmap(r.arena, r.arena_bytes);
    /* a version 1 client: no arena, the staging path, bytes exact */
    cr_assert_eq(raw_open(&r, 1), 0);
    close(r.fd);
    cr_assert_eq(kvt_close(s), 0);
    wait_clients(0);
    unserve();

    /* tenants never get the arena */
    serve_with(64, 0, KVT_SERVE_TENANT_UID);
    cr_assert_eq(served_stat(srv, "server.zero_copy"), 0);
    cr_assert_eq(kvt_connect(sock, NULL, &s), 0, "%s", kvt_last_error());
    cr_assert_eq(round_trip(s, k, 8, 0), 0);
    cr_assert_eq(served_stat(srv, "server.zero_copy_blocks"), 0);
    cr_assert_eq(served_stat(srv, "server.staged_blocks"), 16);
    cr_assert_eq(raw_open(&r, KVT_PROTO_VERSION), 0);
    cr_assert_null(r.arena);
    cr_assert_eq(raw_rpc(&r, KVT_OP_HOLD, 1, 0, k), KVT_ENOTSUP);
    close(r.fd);
    cr_assert_eq(kvt_close(s), 0);
    wait_clients(0);
    unserve();
}

/* A writer stopped between reserving and committing (a zero-copy client
 * under a debugger) holds other puts of its keys only so long: they get
 * KVT_EBUSY after the store's pending wait, and its slot stays its own,
 * so its commit, when it comes, still stores the block. */
Test(zero_copy, stuck_reservation_holds_other_puts_only_so_long)
{
    serve_with(16, 0, 0);
    store->pending_wait_ns = 300ull * 1000000ull;
    kvt_key k;
    uint64_t rs = 99;
    make_keys(&k, 1, &rs);
    int32_t st = 1;
    uint32_t slot = 0;
    kvt__reservation *r = NULL;
    kvt_io_opts ro = {.size = sizeof ro};
    cr_assert_eq(kvt__store_reserve(store, &k, 1, &ro, &st, &slot, &r), 1, "%s", kvt_last_error());
    cr_assert_eq(st, 0);
    kvt_store *c;
    cr_assert_eq(kvt_connect(sock, NULL, &c), 0, "%s", kvt_last_error());
    uint8_t *buf = malloc(BLOCK);
    fill(buf, BLOCK, &k);
    void *ptrs[FRAGS];
    layout(buf, ptrs, 1);
    int32_t pst = 0;
    kvt_io_opts io = {.size = sizeof io, .status = &pst};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(kvt_put(c, &k, 1, ptrs, &io, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_assert_eq(pst, KVT_EBUSY, "status %d", pst);
    cr_assert(s >= 0.29 && s < 5, "gave up after %.3f s", s);
    cr_assert_eq(kvt_lookup(c, &k, 1, NULL, 0), 0); /* not visible while reserved */
    /* the stuck writer resumes: its slot was never given away */
    uint8_t *arena = store->tier[store->top_tier].ops->slot_ptr(store->tier[store->top_tier].impl, slot);
    memcpy(arena, buf, BLOCK);
    cr_assert_eq(kvt__store_commit(r, &st), 1);
    uint8_t *got = calloc(1, BLOCK);
    layout(got, ptrs, 1);
    cr_assert_eq(kvt_get(c, &k, 1, ptrs, NULL, NULL), 1);
    cr_assert_eq(memcmp(got, buf, BLOCK), 0);
    free(buf);
    free(got);
    kvt_close(c);
    unserve();
}
