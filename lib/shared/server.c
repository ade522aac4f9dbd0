/* server.c — kvt_serve: one store served over a unix socket to other
 * processes (docs/shared.md). A thread accepts; each client gets a thread
 * of its own that parses its requests (proto.c), runs them on the store
 * through the public calls, and answers. What a client holds (pins, leases,
 * its staging memory) is the connection's and goes with it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "alloc.h"
#include "error.h"
#include "shared/pins.h"
#include "shared/proto.h"
#include "shared/recv_spin.h"
#include "shared/shared.h"
#include "store.h"
#include "shared/zero_copy.h"
#include "store/internal.h"
#include "tier/dram.h"

#define DEFAULT_STAGING_BLOCKS 64u
#define STAGING_BYTES_MAX (256ull << 20)
#define DEFAULT_MAX_CLIENTS 256u
/* A client that stops reading its replies is dropped after this long. */
#define SEND_TIMEOUT_S 2

typedef struct conn conn;

struct kvt_server {
    kvt_store *store;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listen_fd;
    int stop_fd; /* eventfd: readable once stopping */
    atomic_int stopping; /* set with stop_fd: a client thread busy spinning checks it */
    pthread_t acceptor;
    kvt_serve_opts opts;
    uint64_t block_bytes;
    uint32_t frags;
    uint32_t staging_blocks;
    /* Zero-copy (protocol v2): the served store's top tier is a shared DRAM
     * arena, passed to every v2 client; -1 when not (or in tenant mode). */
    int arena_fd;
    size_t arena_bytes;

    pthread_mutex_t lock; /* guards clients, nclients */
    pthread_cond_t gone;  /* a client thread ended */
    conn *clients;
    uint32_t nclients;

    _Atomic uint64_t connections, refused, malformed, requests;
    _Atomic uint64_t zero_copy_blocks, staged_blocks; /* moved by the client through each */
};

struct conn {
    kvt_server *srv;
    int fd;
    conn *next, *prev;
    int handshaken;
    int staging_fd;
    uint8_t *staging;
    size_t staging_bytes;
    uint32_t nslots;
    kvt__pins pins;
    uint8_t *in, *out; /* message buffers, KVT_PROTO_MAX_MSG + 1 each */
    pid_t pid;         /* the peer's, from SO_PEERCRED */
    uid_t uid;
    kvt_key *tenant_keys; /* KVT_SERVE_TENANT_UID: the request's keys, folded */
    int zero_copy;        /* a v2 client given the arena */
    kvt__zc_conn zc;      /* its reservation and read references (zero_copy.c) */
    _Atomic uint64_t requests, pinned; /* for kvt_serve_stats, per client */
};

/* ------------------------------------------------------------ replies */

static int send_msg_fds(int fd, const void *buf, size_t len, int pass_fd, int pass_fd2)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    if (pass_fd >= 0) {
        int fds[2] = {pass_fd, pass_fd2}, nfd = pass_fd2 >= 0 ? 2 : 1;
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfd * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfd * sizeof(int));
    }
    ssize_t r;
    do
        r = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)len ? 0 : -1;
}

static int send_msg(int fd, const void *buf, size_t len, int pass_fd)
{
    return send_msg_fds(fd, buf, len, pass_fd, -1);
}

/* A reply: header, payload (already at out + header), then the message of
 * this thread's last error when rc < 0. */
static int reply(conn *c, const kvt__request *rq, uint32_t n, int rc, size_t payload)
{
    size_t len = sizeof(kvt__msg_hdr) + payload;
    uint32_t msg_len = 0;
    if (rc < 0) {
        const char *m = kvt_last_error();
        size_t l = strlen(m);
        if (l > 512)
            l = 512;
        if (len + l <= KVT_PROTO_MAX_MSG) {
            memcpy(c->out + len, m, l);
            msg_len = (uint32_t)l;
            len += l;
        }
    }
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = (uint16_t)(rq->op | KVT_OP_REPLY),
                      .seq = rq->seq, .n = n, .arg0 = (uint32_t)rc, .arg1 = msg_len};
    memcpy(c->out, &h, sizeof h);
    return send_msg(c->fd, c->out, len, -1);
}

/* ------------------------------------------------------------- handshake */

static int refuse(conn *c, int code, const char *fmt, const char *detail)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, detail);
    size_t l = strlen(msg);
    kvt__welcome w = {.version = KVT_PROTO_VERSION};
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_WELCOME, .arg0 = (uint32_t)code,
                      .arg1 = (uint32_t)l};
    memcpy(c->out, &h, sizeof h);
    memcpy(c->out + sizeof h, &w, sizeof w);
    memcpy(c->out + sizeof h + sizeof w, msg, l);
    send_msg(c->fd, c->out, sizeof h + sizeof w + l, -1);
    atomic_fetch_add(&c->srv->refused, 1);
    return -1;
}

static int make_staging(conn *c, uint32_t blocks)
{
    c->staging_bytes = (size_t)blocks * c->srv->block_bytes;
    c->staging_fd = memfd_create("kvtier-staging", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (c->staging_fd < 0)
        return -1;
    /* Sealed against resizing: a client that truncated the memfd would
     * have the server fault (SIGBUS) on its next copy. */
    if (ftruncate(c->staging_fd, (off_t)c->staging_bytes) ||
        fcntl(c->staging_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
        return -1;
    void *p = mmap(NULL, c->staging_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, c->staging_fd, 0);
    if (p == MAP_FAILED)
        return -1;
    c->staging = p;
    c->nslots = blocks;
    return 0;
}

static int handshake(conn *c, const kvt__request *rq)
{
    kvt_server *srv = c->srv;
    char detail[96];
    if (rq->arg0 < KVT_PROTO_VERSION_MIN || rq->arg0 > KVT_PROTO_VERSION) {
        snprintf(detail, sizeof detail, "%u", rq->arg0);
        return refuse(c, KVT_EFORMAT, "protocol version %s; this server speaks versions 1 and 2",
                      detail);
    }
    uint32_t version = rq->arg0;
    const kvt__hello *h = rq->hello;
    if ((h->block_bytes && h->block_bytes != srv->block_bytes) ||
        (h->frags && h->frags != srv->frags)) {
        snprintf(detail, sizeof detail, "%llu bytes in %u fragments",
                 (unsigned long long)srv->block_bytes, srv->frags);
        return refuse(c, KVT_EGEOMETRY, "the served store has blocks of %s", detail);
    }
    uint32_t blocks = h->staging_blocks ? h->staging_blocks : srv->staging_blocks;
    if (blocks > srv->staging_blocks)
        blocks = srv->staging_blocks;
    if (make_staging(c, blocks)) {
        snprintf(detail, sizeof detail, "%s", strerror(errno));
        return refuse(c, KVT_ENOMEM, "no staging memory: %s", detail);
    }
    int ntiers = kvt_store_tier_count(srv->store);
    if (ntiers < 0 || ntiers > KVT_MAX_TIERS)
        ntiers = 0;
    kvt__welcome w = {.version = version, .frags = srv->frags,
                      .block_bytes = srv->block_bytes, .staging_blocks = blocks,
                      .max_keys = KVT_PROTO_MAX_KEYS, .ntiers = (uint32_t)ntiers};
    kvt__msg_hdr hd = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_WELCOME};
    memcpy(c->out, &hd, sizeof hd);
    memcpy(c->out + sizeof hd, &w, sizeof w);
    size_t len = sizeof hd + sizeof w;
    for (int t = 0; t < ntiers; t++) {
        kvt__tier_info ti = {.available = kvt_store_tier_available(srv->store, t)};
        const char *name = kvt_store_tier_name(srv->store, t);
        snprintf(ti.name, sizeof ti.name, "%s", name ? name : "");
        memcpy(c->out + len, &ti, sizeof ti);
        len += sizeof ti;
    }
    /* Version 2: the arena's size, and its memfd after the staging one. A
     * version 1 client gets the welcome it knows, and the staging path. */
    int arena_fd = -1;
    if (version >= 2) {
        uint64_t arena = srv->arena_fd >= 0 ? srv->arena_bytes : 0;
        memcpy(c->out + len, &arena, sizeof arena);
        len += sizeof arena;
        arena_fd = srv->arena_fd;
    }
    if (send_msg_fds(c->fd, c->out, len, c->staging_fd, arena_fd))
        return -1;
    c->zero_copy = arena_fd >= 0;
    c->handshaken = 1;
    return 0;
}

/* -------------------------------------------------------------- requests */

static void pins_add_or_release(conn *c, const kvt_key *keys, uint32_t n, uint32_t lease_ms)
{
    uint64_t until = kvt_clock_now(c->srv->store) + (uint64_t)lease_ms * 1000000u;
    for (uint32_t i = 0; i < n; i++) {
        if (kvt__pins_add(&c->pins, &keys[i], until))
            kvt_release(c->srv->store, &keys[i], 1, NULL); /* can't track it: don't keep it */
        else
            atomic_fetch_add_explicit(&c->pinned, 1, memory_order_relaxed);
    }
}

static int do_release(conn *c, const kvt__request *rq, int32_t *status)
{
    /* Only pins this client holds go to the store: a duplicate release must
     * not take another client's pin. */
    kvt_key *mine = kvt__malloc((size_t)rq->n * sizeof *mine);
    uint32_t *where = kvt__malloc((size_t)rq->n * sizeof *where);
    int32_t *st = kvt__malloc((size_t)rq->n * sizeof *st);
    int rc;
    if (!mine || !where || !st) {
        rc = kvt__err(KVT_ENOMEM, "kvt_release: server out of memory");
        goto out;
    }
    uint32_t m = 0;
    uint64_t now = kvt_clock_now(c->srv->store);
    for (uint32_t i = 0; i < rq->n; i++) {
        status[i] = KVT_ENOTPINNED;
        if (kvt__pins_take(&c->pins, &rq->keys[i], now)) {
            atomic_fetch_sub_explicit(&c->pinned, 1, memory_order_relaxed);
            mine[m] = rq->keys[i];
            where[m++] = i;
        }
    }
    rc = 0;
    if (m) {
        rc = kvt_release(c->srv->store, mine, m, st);
        if (rc >= 0)
            for (uint32_t j = 0; j < m; j++)
                status[where[j]] = st[j];
    }
out:
    kvt__free(mine);
    kvt__free(where);
    kvt__free(st);
    return rc;
}

static int do_io(conn *c, const kvt__request *rq, int32_t *status)
{
    kvt_server *srv = c->srv;
    size_t nptr = (size_t)rq->n * srv->frags;
    void **ptrs = kvt__malloc(nptr * sizeof *ptrs);
    if (!ptrs)
        return kvt__err(KVT_ENOMEM, "server out of memory");
    uint64_t frag_bytes = srv->block_bytes / srv->frags;
    for (uint32_t i = 0; i < rq->n; i++) {
        uint8_t *block = c->staging + (size_t)kvt__proto_slot(rq, i) * srv->block_bytes;
        for (uint32_t f = 0; f < srv->frags; f++)
            ptrs[(size_t)i * srv->frags + f] = block + f * frag_bytes;
    }
    kvt_io_opts o = {.size = sizeof o, .flags = rq->arg0, .status = status};
    int rc;
    atomic_fetch_add_explicit(&srv->staged_blocks, rq->n, memory_order_relaxed);
    if (rq->op == KVT_OP_PUT) {
        o.retain_s = rq->arg1;
        rc = kvt_put(srv->store, rq->keys, rq->n, ptrs, &o, NULL);
    } else {
        rc = kvt_get(srv->store, rq->keys, rq->n, ptrs, &o, NULL);
    }
    kvt__free(ptrs);
    return rc;
}

typedef struct stats_out {
    uint8_t *p, *end;
    uint32_t n;
} stats_out;

static void put_stat(const char *name, uint64_t value, void *user)
{
    stats_out *o = user;
    size_t l = strlen(name);
    if (l > UINT16_MAX || (size_t)(o->end - o->p) < 10 + l)
        return;
    uint16_t l16 = (uint16_t)l;
    memcpy(o->p, &value, 8);
    memcpy(o->p + 8, &l16, 2);
    memcpy(o->p + 10, name, l);
    o->p += 10 + l;
    o->n++;
}

/* KVT_SERVE_TENANT_UID: a tenant's keys are its own. The uid seeds a
 * 128-bit hash of each key, so two uids' keys meet only by chance (2^-128)
 * and a client cannot name another tenant's key. */
static void fold_tenant(conn *c, kvt__request *rq)
{
    uint64_t seed = 0x6b7674656e616e74ull ^ (uint64_t)c->uid;
    for (uint32_t i = 0; i < rq->n; i++) {
        XXH128_canonical_t canon;
        XXH128_canonicalFromHash(&canon, XXH3_128bits_withSeed(rq->keys[i].b, 16, seed));
        memcpy(c->tenant_keys[i].b, canon.digest, 16);
    }
    rq->keys = c->tenant_keys;
}

static int handle(conn *c, const kvt__request *request)
{
    kvt__request folded = *request;
    const kvt__request *rq = &folded;
    if (c->srv->opts.flags & KVT_SERVE_TENANT_UID) {
        if (rq->op == KVT_OP_CLEAR) {
            kvt__err(KVT_ENOTSUP, "kvt_clear: this server keeps tenants apart (a tenant may "
                                  "not clear the others' blocks); remove your keys instead");
            return reply(c, rq, 0, KVT_ENOTSUP, 0);
        }
        if (rq->keys) /* COMMIT counts keys it does not carry */
            fold_tenant(c, &folded);
    }
    kvt_store *st = c->srv->store;
    uint8_t *payload = c->out + sizeof(kvt__msg_hdr);
    int zc_op = rq->op >= KVT_OP_RESERVE && rq->op <= KVT_OP_UNHOLD;
    if (zc_op && !c->zero_copy) {
        if (rq->op == KVT_OP_UNHOLD)
            return -1; /* no reply to send a refusal in */
        kvt__err(KVT_ENOTSUP, "zero-copy request on a connection without the shared arena");
        size_t none = kvt__proto_reply_payload(rq->op, rq->n);
        memset(payload, 0, none); /* the reply's length, as a client expects it */
        return reply(c, rq, rq->n, KVT_ENOTSUP, none);
    }
    /* Per-key results are built aligned, then copied into the reply. */
    int32_t status[KVT_PROTO_MAX_KEYS];
    uint8_t *tiers = payload;
    size_t pl = kvt__proto_reply_payload(rq->op, rq->n);
    int rc;
    kvt__err_clear();
    switch (rq->op) {
    case KVT_OP_LOOKUP:
        rc = kvt_lookup(st, rq->keys, rq->n, tiers, rq->arg0);
        if (rc > 0 && rq->arg0)
            pins_add_or_release(c, rq->keys, (uint32_t)rc, rq->arg0);
        break;
    case KVT_OP_CONTAINS:
        rc = kvt_contains(st, rq->keys, rq->n, tiers);
        break;
    case KVT_OP_TOUCH:
        rc = kvt_touch(st, rq->keys, rq->n);
        break;
    case KVT_OP_PIN:
        rc = kvt_pin(st, rq->keys, rq->n, rq->arg0);
        if (rc > 0)
            pins_add_or_release(c, rq->keys, rq->n, rq->arg0);
        break;
    case KVT_OP_RELEASE:
        rc = do_release(c, rq, status);
        break;
    case KVT_OP_PUT:
    case KVT_OP_GET:
        rc = do_io(c, rq, status);
        break;
    case KVT_OP_REMOVE:
        rc = kvt_remove(st, rq->keys, rq->n);
        break;
    case KVT_OP_CLEAR:
        rc = kvt_clear(st);
        break;
    case KVT_OP_FLUSH:
        rc = kvt_flush(st, rq->n ? rq->keys : NULL, rq->n, rq->n ? status : NULL);
        break;
    case KVT_OP_RESERVE:
    case KVT_OP_HOLD:
        rc = rq->op == KVT_OP_RESERVE
                 ? kvt__zc_reserve(&c->zc, st, c->srv->block_bytes, rq, payload)
                 : kvt__zc_hold(&c->zc, st, c->srv->block_bytes, rq, payload);
        if (rc < 0)
            memset(payload, 0, pl);
        else
            atomic_fetch_add_explicit(&c->srv->zero_copy_blocks, (uint64_t)rc,
                                      memory_order_relaxed);
        return reply(c, rq, rq->n, rc, pl);
    case KVT_OP_COMMIT:
        rc = kvt__zc_commit(&c->zc, rq, status);
        break;
    case KVT_OP_UNHOLD:
        kvt__zc_unhold(&c->zc, st);
        return 0; /* no reply: the client does not wait for it */
    case KVT_OP_STATS: {
        stats_out o = {.p = payload, .end = c->out + KVT_PROTO_MAX_MSG - 600};
        rc = kvt_stats(st, put_stat, &o);
        return reply(c, rq, o.n, rc, (size_t)(o.p - payload));
    }
    default:
        return -1; /* the parser lets none through */
    }
    if (pl == (size_t)rq->n * sizeof(int32_t) && rq->op != KVT_OP_LOOKUP &&
        rq->op != KVT_OP_CONTAINS) {
        if (rc < 0)
            memset(status, 0, pl);
        memcpy(payload, status, pl);
    }
    return reply(c, rq, rq->n, rc, pl);
}

/* ----------------------------------------------------- connection thread */

static void release_all(const kvt_key *key, uint32_t count, void *user)
{
    kvt_store *st = user;
    while (count--)
        kvt_release(st, key, 1, NULL);
}

static void conn_free(conn *c)
{
    /* A client gone between RESERVE and COMMIT: nothing it reserved becomes
     * visible, the slots are free again. Its read references go too. */
    kvt__zc_end(&c->zc, c->srv->store);
    kvt__pins_drain(&c->pins, kvt_clock_now(c->srv->store), release_all, c->srv->store);
    if (c->staging)
        munmap(c->staging, c->staging_bytes);
    if (c->staging_fd >= 0)
        close(c->staging_fd);
    if (c->fd >= 0)
        close(c->fd);
    kvt__free(c->in);
    kvt__free(c->out);
    kvt__free(c->tenant_keys);
    kvt__free(c);
}

static void serve_client(conn *c)
{
    kvt_server *srv = c->srv;
    struct pollfd pf[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = srv->stop_fd, .events = POLLIN}};
    while (!atomic_load_explicit(&srv->stopping, memory_order_relaxed)) {
        /* MSG_TRUNC: the packet's real length, so an oversized one is seen
         * as such rather than parsed cut. A client's next request often
         * follows its last reply at once: spin for it before sleeping
         * (a busy client never lets this thread reach the poll, hence the
         * stopping flag). */
        ssize_t len = kvt__recv_spin(c->fd, c->in, KVT_PROTO_MAX_MSG + 1, MSG_TRUNC,
                                     KVT__RECV_SPIN_NS);
        if (len < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (poll(pf, 2, -1) < 0 && errno != EINTR)
                return;
            if (pf[1].revents)
                return;
            continue;
        }
        if (len <= 0)
            return; /* gone */
        kvt__request rq;
        const char *why;
        if (kvt__proto_parse_request(c->in, (size_t)len, c->nslots, c->handshaken, &rq, &why)) {
            atomic_fetch_add(&srv->malformed, 1);
            return;
        }
        atomic_fetch_add(&srv->requests, 1);
        atomic_fetch_add_explicit(&c->requests, 1, memory_order_relaxed);
        if (!c->handshaken ? handshake(c, &rq) : handle(c, &rq))
            return;
    }
}

static void *client_main(void *arg)
{
    conn *c = arg;
    kvt_server *srv = c->srv;
    serve_client(c);
    pthread_mutex_lock(&srv->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&srv->lock);
    conn_free(c);
    pthread_mutex_lock(&srv->lock);
    srv->nclients--;
    pthread_cond_broadcast(&srv->gone);
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

/* Who may connect: the server's uid, root, or the group when allowed. */
static int peer_allowed(kvt_server *srv, conn *c)
{
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &l))
        return 0;
    c->pid = cr.pid;
    c->uid = cr.uid;
    if (cr.uid == geteuid() || cr.uid == 0)
        return 1;
    return (srv->opts.flags & KVT_SERVE_GROUP) && cr.gid == srv->opts.gid;
}

/* Refused at accept: the refusal is sent at once, then the client's HELLO
 * read (briefly) before the close. Closing over unread data would reset the
 * connection, and the client would read ECONNRESET instead of the reason. */
static void refuse_at_accept(conn *c, int code, const char *why)
{
    refuse(c, code, "%s", why);
    shutdown(c->fd, SHUT_WR);
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    if (poll(&pf, 1, 50) == 1)
        recv(c->fd, c->in, KVT_PROTO_MAX_MSG + 1, MSG_DONTWAIT | MSG_TRUNC);
    conn_free(c);
}

static void start_client(kvt_server *srv, int fd)
{
    conn *c = kvt__calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->staging_fd = -1;
    c->in = kvt__malloc(KVT_PROTO_MAX_MSG + 1);
    c->out = kvt__malloc(KVT_PROTO_MAX_MSG + 1);
    if (srv->opts.flags & KVT_SERVE_TENANT_UID)
        c->tenant_keys = kvt__malloc(KVT_PROTO_MAX_KEYS * sizeof *c->tenant_keys);
    if (!c->in || !c->out || ((srv->opts.flags & KVT_SERVE_TENANT_UID) && !c->tenant_keys)) {
        conn_free(c);
        return;
    }
    struct timeval tv = {.tv_sec = SEND_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (!peer_allowed(srv, c)) {
        refuse_at_accept(c, KVT_EPATH, "this server does not let your uid/gid in");
        return;
    }
    pthread_mutex_lock(&srv->lock);
    if (srv->nclients >= srv->opts.max_clients) {
        pthread_mutex_unlock(&srv->lock);
        refuse_at_accept(c, KVT_EBUSY, "the server has as many clients as it takes");
        return;
    }
    srv->nclients++;
    c->next = srv->clients;
    if (c->next)
        c->next->prev = c;
    srv->clients = c;
    pthread_mutex_unlock(&srv->lock);
    atomic_fetch_add(&srv->connections, 1);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &attr, client_main, c);
    pthread_attr_destroy(&attr);
    if (e) {
        c->fd = -1; /* client_main's cleanup, done here */
        pthread_mutex_lock(&srv->lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->clients = c->next;
        if (c->next)
            c->next->prev = c->prev;
        srv->nclients--;
        pthread_mutex_unlock(&srv->lock);
        close(fd);
        conn_free(c);
    }
}

static void *accept_main(void *arg)
{
    kvt_server *srv = arg;
    struct pollfd pf[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                           {.fd = srv->stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents)
            break;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                usleep(10000); /* out of fds: don't spin */
            continue;
        }
        start_client(srv, fd);
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

/* Binds, sets the mode and listens on name; 0 or a KVT_E* (name removed). */
static int bind_listen(kvt_server *srv, const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, name, strlen(name) + 1);
    if (bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof sa))
        return kvt__err_errno(KVT_EPATH, errno, "kvt_serve: bind %s", name);
    /* Before listen(): nobody can connect while the mode is still the umask's. */
    mode_t mode = (srv->opts.flags & KVT_SERVE_GROUP) ? 0660 : 0600;
    if (chmod(name, mode) ||
        ((srv->opts.flags & KVT_SERVE_GROUP) && chown(name, (uid_t)-1, srv->opts.gid))) {
        int e = errno;
        unlink(name);
        return kvt__err_errno(KVT_EPATH, e, "kvt_serve: setting the mode of %s", name);
    }
    if (listen(srv->listen_fd, 64)) {
        int e = errno;
        unlink(name);
        return kvt__err_errno(KVT_ESYS, e, "kvt_serve: listen");
    }
    return 0;
}

/* Binds path, replacing a stale socket file but never a live server's. The
 * socket is bound and listening under a temporary name first, then linked
 * to path: a client that finds path can connect (bound but not yet
 * listening, it would get ECONNREFUSED). A path too long for the temporary
 * name is bound directly, with that short window. */
static int bind_path(kvt_server *srv, const char *path)
{
    static _Atomic unsigned serial;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode))
            return kvt__err(KVT_EPATH, "kvt_serve: %s exists and is not a socket", path);
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (probe < 0)
            return kvt__err_errno(KVT_ESYS, errno, "kvt_serve: socket");
        int live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(probe);
        if (live)
            return kvt__err(KVT_ELOCKED, "kvt_serve: a server is listening at %s", path);
        unlink(path);
    }
    char tmp[sizeof sa.sun_path];
    int len = snprintf(tmp, sizeof tmp, "%s.%d.%u.tmp", path, (int)getpid(),
                       atomic_fetch_add(&serial, 1));
    if (len < 0 || (size_t)len >= sizeof tmp)
        return bind_listen(srv, path);
    unlink(tmp); /* a killed server of this pid's may have left it */
    int rc = bind_listen(srv, tmp);
    if (rc)
        return rc;
    int e = link(tmp, path) ? errno : 0;
    unlink(tmp);
    if (e == EEXIST)
        return kvt__err(KVT_ELOCKED, "kvt_serve: another server took %s meanwhile", path);
    if (e)
        return kvt__err_errno(KVT_EPATH, e, "kvt_serve: linking %s into place", path);
    return 0;
}

static void server_free(kvt_server *srv)
{
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->gone);
    kvt__free(srv);
}

int kvt_serve(kvt_store *store, const char *path, const kvt_serve_opts *opts, kvt_server **out)
{
    kvt__err_clear();
    if (!store || !path || !out)
        return kvt__err(KVT_ENULL, "kvt_serve: %s is NULL", !store ? "store" : !path ? "path" : "out");
    if (kvt__is_client(store))
        return kvt__err(KVT_ENOTSUP, "kvt_serve: the store is itself a connection to a server");
    if (store->magic != KVT_STORE_MAGIC)
        return kvt__err(KVT_ECLOSED, "kvt_serve: not an open store");
    int rc = kvt__check_opts_size(opts, opts ? opts->size : 0, sizeof *opts, sizeof *opts,
                                  "kvt_serve", "kvt_serve_opts");
    if (rc)
        return rc;
    if (opts && (opts->flags & ~(uint32_t)(KVT_SERVE_GROUP | KVT_SERVE_TENANT_UID)))
        return kvt__err(KVT_EINVAL, "kvt_serve: unknown flags %#x", opts->flags);
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return kvt__err(KVT_EPATH, "kvt_serve: socket path of %zu bytes (1..107)", plen);
    kvt_server *srv = kvt__calloc(1, sizeof *srv);
    if (!srv)
        return kvt__err(KVT_ENOMEM, "kvt_serve: out of memory");
    srv->store = store;
    memcpy(srv->path, path, plen + 1);
    if (opts)
        srv->opts = *opts;
    if (!srv->opts.max_clients)
        srv->opts.max_clients = DEFAULT_MAX_CLIENTS;
    srv->block_bytes = store->block_bytes;
    srv->frags = store->frags;
    uint64_t blocks = srv->opts.staging_blocks ? srv->opts.staging_blocks : DEFAULT_STAGING_BLOCKS;
    if (blocks * srv->block_bytes > STAGING_BYTES_MAX)
        blocks = STAGING_BYTES_MAX / srv->block_bytes;
    srv->staging_blocks = blocks ? (uint32_t)blocks : 1;
    srv->arena_fd = -1;
    /* Zero copy when puts and gets both land in a shared DRAM arena, and
     * not for tenants: mapping the arena, one would read the others' blocks. */
    int top = store->top_tier;
    if (!(srv->opts.flags & KVT_SERVE_TENANT_UID) && top >= 0 && store->put_tier == top &&
        store->tier[top].ops->slot_ptr) {
        void *base = store->tier[top].ops->slot_ptr(store->tier[top].impl, 0);
        if (base)
            srv->arena_fd = kvt__dram_shared_fd(base, &srv->arena_bytes);
    }
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->gone, NULL);
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (srv->stop_fd < 0 || srv->listen_fd < 0) {
        rc = kvt__err_errno(KVT_ESYS, errno, "kvt_serve: socket");
        server_free(srv);
        return rc;
    }
    if ((rc = bind_path(srv, path))) {
        server_free(srv);
        return rc;
    }
    if ((errno = pthread_create(&srv->acceptor, NULL, accept_main, srv))) {
        rc = kvt__err_errno(KVT_ESYS, errno, "kvt_serve: thread");
        unlink(path);
        server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int kvt_serve_stop(kvt_server *srv)
{
    kvt__err_clear();
    if (!srv)
        return 0;
    uint64_t one = 1;
    atomic_store(&srv->stopping, 1);
    if (write(srv->stop_fd, &one, sizeof one) != sizeof one)
        return kvt__err_errno(KVT_ESYS, errno, "kvt_serve_stop: eventfd");
    pthread_join(srv->acceptor, NULL);
    unlink(srv->path);
    pthread_mutex_lock(&srv->lock);
    while (srv->nclients)
        pthread_cond_wait(&srv->gone, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    server_free(srv);
    return 0;
}

int kvt_serve_stats(kvt_server *srv, kvt_stat_fn fn, void *user)
{
    kvt__err_clear();
    if (!srv || !fn)
        return kvt__err(KVT_ENULL, "kvt_serve_stats: %s is NULL", srv ? "fn" : "server");
    fn("server.connections", atomic_load(&srv->connections), user);
    fn("server.refused", atomic_load(&srv->refused), user);
    fn("server.malformed", atomic_load(&srv->malformed), user);
    fn("server.requests", atomic_load(&srv->requests), user);
    fn("server.zero_copy", srv->arena_fd >= 0, user);
    fn("server.zero_copy_blocks", atomic_load(&srv->zero_copy_blocks), user);
    fn("server.staged_blocks", atomic_load(&srv->staged_blocks), user);
    int count = 7;
    /* Per client, "client.<pid>.<name>": one name's entries together (the
     * Prometheus format wants a metric's lines in one group). The callback
     * runs under the client list's lock: it must not call kvt_serve_stop. */
    pthread_mutex_lock(&srv->lock);
    fn("server.clients", srv->nclients, user);
    count++;
    char name[64];
    for (int what = 0; what < 2; what++)
        for (conn *c = srv->clients; c; c = c->next) {
            snprintf(name, sizeof name, "client.%d.%s", (int)c->pid, what ? "pins" : "requests");
            fn(name, atomic_load_explicit(what ? &c->pinned : &c->requests, memory_order_relaxed),
               user);
            count++;
        }
    pthread_mutex_unlock(&srv->lock);
    return count;
}
