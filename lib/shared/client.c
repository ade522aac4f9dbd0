/* client.c — kvt_connect and the data calls on a connected store: each
 * call is one request per chunk of keys (docs/shared.md); block bytes go
 * through the staging memory the server shared at the handshake. */
#include "shared/client.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "copy.h"
#include "error.h"
#include "live.h"
#include "shared/proto.h"
#include "shared/recv_spin.h"
#include "shared/shared.h"

#define DEFAULT_TIMEOUT_MS 5000u

/* ------------------------------------------------ live clients, by address
 * As the store registry in api.c: a second kvt_close is told from a first
 * without touching freed memory. */
static kvt__live clients = KVT__LIVE_INIT;

int kvt__is_client(const kvt_store *s)
{
    uint32_t magic;
    if (!s)
        return 0;
    memcpy(&magic, s, sizeof magic);
    return magic == KVT_CLIENT_MAGIC;
}

int kvt__check_opts_size(const void *p, uint32_t size, size_t min, size_t known, const char *fn,
                         const char *type)
{
    if (!p)
        return 0;
    if (size < min)
        return kvt__err(KVT_EINVAL, "%s: opts->size %u is less than %zu (set it to sizeof(%s))",
                        fn, size, min, type);
    if (size > 4096)
        return kvt__err(KVT_ESIZE, "%s: opts->size %u is more than 4096", fn, size);
    for (size_t i = known; i < size; i++)
        if (((const unsigned char *)p)[i])
            return kvt__err(KVT_ESIZE, "%s: opts->size %u, and byte %zu of it is not zero: this "
                                       "library's %s has %zu bytes", fn, size, i, type, known);
    return 0;
}

static kvt__client *client_of(kvt_store *s)
{
    return (kvt__client *)(void *)s;
}

/* Copy threads of a connection's arena copies when kvt_connect_opts does
 * not say: the store's default (KVT_OPT_COPY_THREADS), so that a client
 * copies a batch as fast as the same call in process does. */
#define ARENA_COPY_THREADS 2u
#define MAX_COPY_THREADS 64u
/* kvt_connect_opts up to staging_blocks: the first version's size. */
#define CONNECT_OPTS_V1 (offsetof(kvt_connect_opts, staging_blocks) + sizeof(uint32_t))

/* ------------------------------------------------------------ messages */

int kvt__client_gone(kvt__client *c, const char *fn)
{
    atomic_store(&c->dead, 1);
    /* Shut the connection now, not at kvt_close: a server that broke the
     * protocol (or went away) then lets go of this client's reservation
     * and read references at once. */
    shutdown(c->fd, SHUT_RDWR);
    return kvt__err(KVT_ECLOSED, "%s: the kvtier server went away (connect again)", fn);
}

/* One round trip: request op with keys (and slots), reply payload copied to
 * res (res_len bytes expected exactly, except STATS: *stats points into the
 * reply). Returns the server's result; its message becomes this thread's.
 * Caller holds c->lock. */
static int rpc(kvt__client *c, uint16_t op, uint32_t n, uint32_t arg0, uint32_t arg1,
               const kvt_key *keys, const uint32_t *slots, void *res, size_t res_len,
               const uint8_t **stats, size_t *stats_len, uint32_t *stats_n, const char *fn)
{
    if (atomic_load(&c->dead))
        return kvt__err(KVT_ECLOSED, "%s: the kvtier server went away (connect again)", fn);
    uint32_t seq = ++c->seq;
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = op, .seq = seq, .n = n, .arg0 = arg0,
                      .arg1 = arg1};
    size_t len = sizeof h;
    memcpy(c->out, &h, sizeof h);
    if (n && keys) {
        memcpy(c->out + len, keys, (size_t)n * sizeof *keys);
        len += (size_t)n * sizeof *keys;
    }
    if (slots) {
        memcpy(c->out + len, slots, (size_t)n * 4);
        len += (size_t)n * 4;
    }
    ssize_t r;
    do
        r = send(c->fd, c->out, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)len)
        return kvt__client_gone(c, fn);
    r = kvt__recv_spin(c->fd, c->in, KVT_PROTO_MAX_MSG + 1, MSG_TRUNC, KVT__RECV_SPIN_NS);
    while (r < 0 && (errno == EINTR || errno == EAGAIN))
        r = recv(c->fd, c->in, KVT_PROTO_MAX_MSG + 1, MSG_TRUNC);
    if (r <= 0)
        return kvt__client_gone(c, fn);
    kvt__msg_hdr rh;
    if ((size_t)r < sizeof rh || (size_t)r > KVT_PROTO_MAX_MSG)
        return kvt__client_gone(c, fn);
    memcpy(&rh, c->in, sizeof rh);
    size_t body = (size_t)r - sizeof rh;
    if (rh.magic != KVT_PROTO_MAGIC || rh.op != (op | KVT_OP_REPLY) || rh.seq != seq ||
        rh.arg1 > body)
        return kvt__client_gone(c, fn);
    const uint8_t *payload = c->in + sizeof rh;
    size_t payload_len = body - rh.arg1;
    int rc = (int32_t)rh.arg0;
    if (stats) {
        *stats = payload;
        *stats_len = payload_len;
        *stats_n = rh.n;
    } else if (res_len) {
        if (payload_len != res_len || rh.n != n)
            return kvt__client_gone(c, fn);
        memcpy(res, payload, res_len);
    }
    if (rc < 0) {
        if (rc < -64 || !kvt_error_name(rc))
            rc = KVT_EIO;
        return kvt__err(rc, "%s (server): %.*s", fn, (int)rh.arg1, (const char *)payload + payload_len);
    }
    return rc;
}

int kvt__client_rpc(kvt__client *c, uint16_t op, uint32_t n, uint32_t arg0, uint32_t arg1,
                    const kvt_key *keys, const uint32_t *slots, void *res, size_t res_len,
                    const uint8_t **stats, size_t *stats_len, uint32_t *stats_n, const char *fn)
{
    return rpc(c, op, n, arg0, arg1, keys, slots, res, res_len, stats, stats_len, stats_n, fn);
}

/* ------------------------------------------------------------- connect */

static int recv_welcome(kvt__client *c, kvt__welcome *w, int *memfd, int *arenafd,
                        uint64_t *arena_bytes, const char *path)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = c->in, .iov_len = KVT_PROTO_MAX_MSG};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                        .msg_controllen = sizeof ctl.buf};
    ssize_t r;
    do
        r = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    *memfd = *arenafd = -1;
    *arena_bytes = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (*memfd < 0)
                *memfd = fd;
            else if (*arenafd < 0)
                *arenafd = fd;
            else
                close(fd); /* more than two: not ours to keep */
        }
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return kvt__err(KVT_ETIMEDOUT, "kvt_connect: %s did not answer the handshake", path);
    if (r <= 0)
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s closed the connection at the handshake "
                                     "(not a kvtier server?)", path);
    kvt__msg_hdr h;
    if ((size_t)r < sizeof h + sizeof *w)
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s is not a kvtier server (short answer)", path);
    memcpy(&h, c->in, sizeof h);
    memcpy(w, c->in + sizeof h, sizeof *w);
    if (h.magic != KVT_PROTO_MAGIC || h.op != KVT_OP_WELCOME)
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s is not a kvtier server", path);
    int rc = (int32_t)h.arg0;
    if (rc < 0) {
        size_t room = (size_t)r - sizeof h - sizeof *w;
        int l = (int)(h.arg1 < room ? h.arg1 : room);
        if (!kvt_error_name(rc))
            rc = KVT_EINVAL;
        return kvt__err(rc, "kvt_connect: %s refused: %.*s", path, l,
                        (const char *)c->in + sizeof h + sizeof *w);
    }
    if (w->version != KVT_PROTO_VERSION)
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s speaks protocol version %u, this library %u",
                        path, w->version, KVT_PROTO_VERSION);
    if (*memfd < 0 || !w->block_bytes || !w->frags || !w->staging_blocks || !w->max_keys ||
        w->max_keys > KVT_PROTO_MAX_KEYS || w->block_bytes > (1ull << 30) ||
        w->ntiers > KVT_MAX_TIERS ||
        (size_t)r != sizeof h + sizeof *w + w->ntiers * sizeof(kvt__tier_info) + 8)
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s sent a malformed welcome", path);
    memcpy(arena_bytes, c->in + sizeof h + sizeof *w + w->ntiers * sizeof(kvt__tier_info), 8);
    if ((*arena_bytes != 0) != (*arenafd >= 0))
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s sent a malformed welcome (arena)", path);
    c->ntiers = (int)w->ntiers;
    for (int t = 0; t < c->ntiers; t++) {
        kvt__tier_info ti;
        memcpy(&ti, c->in + sizeof h + sizeof *w + (size_t)t * sizeof ti, sizeof ti);
        ti.name[sizeof ti.name - 1] = 0;
        memcpy(c->tier_name[t], ti.name, sizeof ti.name);
        c->tier_available[t] = ti.available;
    }
    return 0;
}

static void client_free(kvt__client *c)
{
    if (c->started)
        kvt__client_async_stop(c);
    if (c->staging)
        munmap(c->staging, c->staging_bytes);
    kvt__cuda_region_remove(c->cuda_region); /* unpinned before unmapped */
    if (c->arena)
        munmap(c->arena, c->arena_bytes);
    kvt__free(c->zc);
    kvt__copier_free(c->copier);
    if (c->fd >= 0)
        close(c->fd);
    pthread_mutex_destroy(&c->lock);
    kvt__free(c->in);
    kvt__free(c->out);
    c->magic = 0;
    kvt__free(c);
}

/* The server's shared DRAM arena (v2): whole slots of block_bytes, all of
 * which an offset in a reply must fall in. */
/* Whether opts is of a size that has copy_threads (and reserved). */
static int has_copy_threads(const kvt_connect_opts *o)
{
    return o && o->size >= offsetof(kvt_connect_opts, reserved) + sizeof o->reserved;
}

static uint32_t copy_threads_of(const kvt_connect_opts *o)
{
    return has_copy_threads(o) && o->copy_threads ? o->copy_threads : ARENA_COPY_THREADS;
}

static int map_arena(kvt__client *c, int fd, uint64_t bytes, const kvt__welcome *w,
                     const char *path, uint32_t copy_threads)
{
    struct stat sb;
    if (bytes < w->block_bytes || bytes > SIZE_MAX || fstat(fd, &sb) ||
        (uint64_t)sb.st_size < bytes)
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s sent an arena of the wrong size", path);
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return kvt__err_errno(KVT_ENOMEM, errno, "kvt_connect: mapping the shared arena");
    c->zc = kvt__malloc((size_t)KVT_PROTO_MAX_KEYS * 12);
    c->copier = kvt__copier_new(copy_threads); /* NULL: copies inline */
    if (!c->zc) {
        munmap(p, (size_t)bytes);
        return kvt__err(KVT_ENOMEM, "kvt_connect: out of memory");
    }
    c->arena = p;
    c->arena_bytes = (size_t)bytes;
    return 0;
}

static int handshake(kvt__client *c, const char *path, const kvt_connect_opts *o)
{
    kvt__hello hello = {0};
    uint32_t timeout_ms = DEFAULT_TIMEOUT_MS;
    if (o) {
        hello.block_bytes = o->block_bytes;
        hello.frags = o->frags;
        hello.staging_blocks = o->staging_blocks;
        if (o->timeout_ms)
            timeout_ms = o->timeout_ms;
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_HELLO, .arg0 = KVT_PROTO_VERSION};
    memcpy(c->out, &h, sizeof h);
    memcpy(c->out + sizeof h, &hello, sizeof hello);
    /* A server that refuses at once (credentials, too many clients) may have
     * closed already: its refusal is still there to read. */
    int sent = send(c->fd, c->out, sizeof h + sizeof hello, MSG_NOSIGNAL) ==
               (ssize_t)(sizeof h + sizeof hello);
    int send_errno = errno;
    kvt__welcome w;
    int memfd, arenafd;
    uint64_t arena_bytes;
    int rc = recv_welcome(c, &w, &memfd, &arenafd, &arena_bytes, path);
    if (!sent && rc == 0)
        rc = kvt__err_errno(KVT_EFORMAT, send_errno, "kvt_connect: sending to %s", path);
    if (rc == 0 && arenafd >= 0)
        rc = map_arena(c, arenafd, arena_bytes, &w, path, copy_threads_of(o));
    if (arenafd >= 0)
        close(arenafd); /* the mapping keeps the arena */
    if (rc) {
        if (memfd >= 0)
            close(memfd);
        return rc;
    }
    c->block_bytes = w.block_bytes;
    c->frags = w.frags;
    c->nslots = w.staging_blocks;
    c->max_keys = w.max_keys;
    c->staging_bytes = (size_t)w.staging_blocks * w.block_bytes;
    struct stat sb;
    if (fstat(memfd, &sb) || (uint64_t)sb.st_size < c->staging_bytes) {
        close(memfd);
        return kvt__err(KVT_EFORMAT, "kvt_connect: %s sent staging memory of the wrong size", path);
    }
    void *p = mmap(NULL, c->staging_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    close(memfd);
    if (p == MAP_FAILED)
        return kvt__err_errno(KVT_ENOMEM, errno, "kvt_connect: mapping the staging memory");
    c->staging = p;
    /* From here on a call waits for its answer as long as the server works. */
    struct timeval none = {0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    return 0;
}

int kvt_connect(const char *path, const kvt_connect_opts *o, kvt_store **out)
{
    kvt__err_clear();
    if (!path || !out)
        return kvt__err(KVT_ENULL, "kvt_connect: %s is NULL", path ? "out" : "path");
    int rc = kvt__check_opts_size(o, o ? o->size : 0, CONNECT_OPTS_V1, sizeof *o, "kvt_connect",
                                  "kvt_connect_opts");
    if (rc)
        return rc;
    if (copy_threads_of(o) > MAX_COPY_THREADS || (has_copy_threads(o) && o->reserved))
        return kvt__err(KVT_EINVAL, "kvt_connect: copy_threads %u (0..%u) or reserved %u (0)",
                        o->copy_threads, MAX_COPY_THREADS, o->reserved);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof sa.sun_path)
        return kvt__err(KVT_EPATH, "kvt_connect: socket path of %zu bytes (1..107)", plen);
    memcpy(sa.sun_path, path, plen + 1);
    kvt__client *c = kvt__calloc(1, sizeof *c);
    if (!c)
        return kvt__err(KVT_ENOMEM, "kvt_connect: out of memory");
    c->magic = KVT_CLIENT_MAGIC;
    c->efd = -1;
    pthread_mutex_init(&c->lock, NULL);
    c->in = kvt__malloc(KVT_PROTO_MAX_MSG + 1);
    c->out = kvt__malloc(KVT_PROTO_MAX_MSG + 1);
    c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (!c->in || !c->out || c->fd < 0) {
        rc = c->fd < 0 ? kvt__err_errno(KVT_ESYS, errno, "kvt_connect: socket")
                       : kvt__err(KVT_ENOMEM, "kvt_connect: out of memory");
        client_free(c);
        return rc;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa)) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            rc = kvt__err_errno(KVT_ENODEV, e, "kvt_connect: no kvtier server at %s", path);
        else if (e == EPROTOTYPE || e == ENOTSOCK)
            rc = kvt__err_errno(KVT_EFORMAT, e, "kvt_connect: %s is not a kvtier server", path);
        else
            rc = kvt__err_errno(KVT_EPATH, e, "kvt_connect: %s", path);
        client_free(c);
        return rc;
    }
    if ((rc = handshake(c, path, o)) || (rc = kvt__client_async_start(c)) ||
        (rc = kvt__live_add(&clients, c) ? kvt__err(KVT_ENOMEM, "kvt_connect: out of memory") : 0)) {
        client_free(c);
        return rc;
    }
    *out = (kvt_store *)(void *)c;
    return 0;
}

int kvt__client_try_close(kvt_store *s, int *rc)
{
    kvt__client *c = client_of(s);
    if (!kvt__live_take(&clients, c))
        return 0; /* not a live connected store: kvt_close goes on as for a store */
    kvt__err_clear();
    client_free(c);
    *rc = 0;
    return 1;
}

/* The served store's tiers, as the handshake told them. */
int kvt__client_tier_count(kvt_store *s)
{
    kvt__err_clear();
    return client_of(s)->ntiers;
}

const char *kvt__client_tier_name(kvt_store *s, int tier)
{
    kvt__err_clear();
    kvt__client *c = client_of(s);
    if (tier < 0 || tier >= c->ntiers) {
        kvt__err(KVT_EINVAL, "kvt_store_tier_name: no tier %d", tier);
        return NULL;
    }
    return c->tier_name[tier];
}

int kvt__client_tier_find(kvt_store *s, const char *name)
{
    kvt__err_clear();
    if (!name)
        return kvt__err(KVT_ENULL, "kvt_store_tier_find: name is NULL");
    kvt__client *c = client_of(s);
    for (int t = 0; t < c->ntiers; t++)
        if (!strcmp(c->tier_name[t], name))
            return t;
    return kvt__err(KVT_ENOENT, "kvt_store_tier_find: no tier \"%s\"", name);
}

int kvt__client_tier_available(kvt_store *s, int tier)
{
    kvt__err_clear();
    kvt__client *c = client_of(s);
    if (tier < 0 || tier >= c->ntiers)
        return kvt__err(KVT_EINVAL, "kvt_store_tier_available: no tier %d", tier);
    int rc = c->tier_available[tier];
    if (rc < 0 && kvt_error_name(rc))
        return kvt__err(rc, "kvt_store_tier_available: the server's %s tier is unavailable",
                        c->tier_name[tier]);
    return rc < 0 ? KVT_ENODEV : rc;
}

int kvt__client_notsup(kvt_store *s, const char *fn)
{
    kvt__err_clear();
    return kvt__err(KVT_ENOTSUP, "%s: not available on a store connected to a server "
                                 "(call it in the serving process)", fn);
}

/* --------------------------------------------------------- keyed calls */

static int check_keys(const kvt_key *keys, size_t n, const char *fn)
{
    kvt__err_clear();
    if (!keys)
        return kvt__err(KVT_ENULL, "%s: keys is NULL", fn);
    if (n == 0 || n > (size_t)INT32_MAX)
        return kvt__err(KVT_ESIZE, "%s: %zu keys", fn, n);
    return 0;
}

/* A call over keys in chunks of what one request takes; res_each bytes of
 * result per key (tiers or status) into res. stop_short: lookup's stop at
 * the first miss. Returns the sum of the chunks' results. */
static int keyed(kvt__client *c, uint16_t op, const kvt_key *keys, size_t n, uint32_t arg0,
                 void *res, size_t res_each, int stop_short, const char *fn)
{
    int total = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t at = 0; at < n;) {
        uint32_t k = (uint32_t)(n - at < c->max_keys ? n - at : c->max_keys);
        int rc = rpc(c, op, k, arg0, 0, keys + at, NULL, res ? (uint8_t *)res + at * res_each : NULL,
                     res ? k * res_each : 0, NULL, NULL, NULL, fn);
        if (rc < 0) {
            pthread_mutex_unlock(&c->lock);
            return rc;
        }
        total += rc;
        at += k;
        if (stop_short && (uint32_t)rc < k) {
            if (res)
                memset((uint8_t *)res + at * res_each, KVT_TIER_NONE, (n - at) * res_each);
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return total;
}

int kvt__client_lookup(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers,
                       uint32_t lease_ms)
{
    int rc = check_keys(keys, n, "kvt_lookup");
    if (rc)
        return rc;
    if (lease_ms > INT32_MAX)
        return kvt__err(KVT_ESIZE, "kvt_lookup: lease %u ms is too long", lease_ms);
    kvt__client *c = client_of(s);
    /* The reply always carries tiers; a caller without room gets them dropped. */
    uint8_t local[256];
    uint8_t *t = tiers ? tiers : n <= sizeof local ? local : kvt__malloc(n);
    if (!t)
        return kvt__err(KVT_ENOMEM, "kvt_lookup: out of memory");
    rc = keyed(c, KVT_OP_LOOKUP, keys, n, lease_ms, t, 1, 1, "kvt_lookup");
    if (t != tiers && t != local)
        kvt__free(t);
    return rc;
}

int kvt__client_contains(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers)
{
    int rc = check_keys(keys, n, "kvt_contains");
    if (rc)
        return rc;
    uint8_t local[256];
    uint8_t *t = tiers ? tiers : n <= sizeof local ? local : kvt__malloc(n);
    if (!t)
        return kvt__err(KVT_ENOMEM, "kvt_contains: out of memory");
    rc = keyed(client_of(s), KVT_OP_CONTAINS, keys, n, 0, t, 1, 0, "kvt_contains");
    if (t != tiers && t != local)
        kvt__free(t);
    return rc;
}

int kvt__client_touch(kvt_store *s, const kvt_key *keys, size_t n)
{
    int rc = check_keys(keys, n, "kvt_touch");
    return rc ? rc : keyed(client_of(s), KVT_OP_TOUCH, keys, n, 0, NULL, 0, 0, "kvt_touch");
}

int kvt__client_remove(kvt_store *s, const kvt_key *keys, size_t n)
{
    int rc = check_keys(keys, n, "kvt_remove");
    return rc ? rc : keyed(client_of(s), KVT_OP_REMOVE, keys, n, 0, NULL, 0, 0, "kvt_remove");
}

int kvt__client_pin(kvt_store *s, const kvt_key *keys, size_t n, uint32_t lease_ms)
{
    int rc = check_keys(keys, n, "kvt_pin");
    if (rc)
        return rc;
    if (lease_ms == 0 || lease_ms > INT32_MAX)
        return kvt__err(KVT_ESIZE, "kvt_pin: lease of %u ms", lease_ms);
    kvt__client *c = client_of(s);
    if (n > c->max_keys) /* all or nothing needs one request */
        return kvt__err(KVT_ESIZE, "kvt_pin: %zu keys; a connected store pins at most %u at once",
                        n, c->max_keys);
    return keyed(c, KVT_OP_PIN, keys, n, lease_ms, NULL, 0, 0, "kvt_pin");
}

int kvt__client_release(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status)
{
    int rc = check_keys(keys, n, "kvt_release");
    if (rc)
        return rc;
    int32_t *st = status ? status : kvt__malloc(n * sizeof *st);
    if (!st)
        return kvt__err(KVT_ENOMEM, "kvt_release: out of memory");
    rc = keyed(client_of(s), KVT_OP_RELEASE, keys, n, 0, st, sizeof *st, 0, "kvt_release");
    if (st != status)
        kvt__free(st);
    return rc;
}

int kvt__client_clear(kvt_store *s)
{
    kvt__err_clear();
    kvt__client *c = client_of(s);
    pthread_mutex_lock(&c->lock);
    int rc = rpc(c, KVT_OP_CLEAR, 0, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, NULL, "kvt_clear");
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int kvt__client_flush(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status)
{
    kvt__err_clear();
    kvt__client *c = client_of(s);
    if (!keys && n)
        return kvt__err(KVT_ENULL, "kvt_flush: keys is NULL with n = %zu", n);
    if (!keys) {
        pthread_mutex_lock(&c->lock);
        int rc = rpc(c, KVT_OP_FLUSH, 0, 0, 0, NULL, NULL, NULL, 0, NULL, NULL, NULL, "kvt_flush");
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    int rc = check_keys(keys, n, "kvt_flush");
    if (rc)
        return rc;
    int32_t *st = status ? status : kvt__malloc(n * sizeof *st);
    if (!st)
        return kvt__err(KVT_ENOMEM, "kvt_flush: out of memory");
    rc = keyed(c, KVT_OP_FLUSH, keys, n, 0, st, sizeof *st, 0, "kvt_flush");
    if (st != status)
        kvt__free(st);
    return rc;
}

/* ------------------------------------------------------------ put, get */

static int check_io(kvt__client *c, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *o, const char *fn)
{
    int rc = check_keys(keys, n, fn);
    if (rc)
        return rc;
    if (!ptrs)
        return kvt__err(KVT_ENULL, "%s: ptrs is NULL", fn);
    /* Before the pointers: a range would change how many ptrs holds. */
    if (o && (o->frag_first || o->frag_count))
        return kvt__err(KVT_ENOTSUP, "%s: a fragment range on a connected store (whole blocks "
                                     "only, for now)", fn);
    for (size_t i = 0; i < n * c->frags; i++)
        if (!ptrs[i])
            return kvt__err(KVT_ENULL, "%s: fragment pointer %zu is NULL", fn, i);
    if (!o)
        return 0;
    /* Device memory: the client copies it into and out of the server's
     * shared arena itself (client_io.c), so only with an arena, in a CUDA
     * build; tenants and version 1 servers have none. */
    if (o->mem_kind == KVT_MEM_CUDA && !(KVT_HAVE_CUDA && c->arena))
        return kvt__err(KVT_ENOTSUP, "%s: device memory on a connected store %s", fn,
                        KVT_HAVE_CUDA ? "without the server's shared arena (tenant mode, or a "
                                        "version 1 server)"
                                      : "(built without CUDA)");
    if (o->mem_kind != KVT_MEM_HOST && o->mem_kind != KVT_MEM_CUDA)
        return kvt__err(KVT_EINVAL, "%s: memory kind %u on a connected store", fn, o->mem_kind);
    if (o->stream || (o->flags & KVT_IO_STREAM_WAIT))
        return kvt__err(KVT_ENOTSUP, "%s: streams on a connected store", fn);
    if (o->mem_kind == KVT_MEM_CUDA) {
        int rc = kvt__cuda_check_io(o, ptrs, n * c->frags, fn);
        if (rc)
            return rc;
    }
    if (o->flags & ~KVT_PROTO_IO_FLAGS)
        return kvt__err(KVT_EINVAL, "%s: flags %#x not supported on a connected store", fn,
                        o->flags);
    if (o->frags && o->frags != c->frags)
        return kvt__err(KVT_EFRAGS, "%s: %u fragments per block given, the store has %u", fn,
                        o->frags, c->frags);
    return 0;
}

/* The caller's options in this library's layout: a caller built against
 * an older header has a shorter struct (its size says so), whose missing
 * fields read as zero. The first version ends with `status`. */
static int copy_io_opts(const kvt_io_opts *o, kvt_io_opts *local, const char *fn)
{
    if (!o)
        return 0;
    size_t first = offsetof(kvt_io_opts, status) + sizeof o->status;
    int rc = kvt__check_opts_size(o, o->size, first, sizeof *o, fn, "kvt_io_opts");
    if (rc)
        return rc;
    memset(local, 0, sizeof *local);
    memcpy(local, o, o->size < sizeof *local ? o->size : sizeof *local);
    return 0;
}

int kvt__client_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *o, kvt_ticket *ticket)
{
    kvt__client *c = client_of(s);
    kvt_io_opts local;
    int rc = copy_io_opts(o, &local, "kvt_put");
    if (rc)
        return rc;
    o = o ? &local : NULL;
    rc = check_io(c, keys, n, ptrs, o, "kvt_put");
    if (rc)
        return rc;
    /* Protocol v1 has no field for a group: a put without its tag would clear
     * the keys' tags on the server, and kvt_remove_group there would miss them. */
    if (o && o->group)
        return kvt__err(KVT_ENOTSUP, "kvt_put: groups (kvt_io_opts.group) are not passed on "
                        "by a connected store (protocol v1)");
    return ticket ? kvt__client_submit(c, 1, keys, n, ptrs, o, ticket)
                  : kvt__client_io(c, 1, keys, n, ptrs, o);
}

int kvt__client_get(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *o, kvt_ticket *ticket)
{
    kvt__client *c = client_of(s);
    kvt_io_opts local;
    int rc = copy_io_opts(o, &local, "kvt_get");
    if (rc)
        return rc;
    o = o ? &local : NULL;
    rc = check_io(c, keys, n, ptrs, o, "kvt_get");
    if (rc)
        return rc;
    return ticket ? kvt__client_submit(c, 0, keys, n, ptrs, o, ticket)
                  : kvt__client_io(c, 0, keys, n, ptrs, o);
}

/* --------------------------------------------------------------- stats */

int kvt__client_stats(kvt_store *s, kvt_stat_fn fn, void *user)
{
    kvt__err_clear();
    if (!fn)
        return kvt__err(KVT_ENULL, "kvt_stats: callback is NULL");
    kvt__client *c = client_of(s);
    pthread_mutex_lock(&c->lock);
    const uint8_t *p;
    size_t len;
    uint32_t n;
    int rc = rpc(c, KVT_OP_STATS, 0, 0, 0, NULL, NULL, NULL, 0, &p, &len, &n, "kvt_stats");
    int count = 0;
    if (rc >= 0) {
        /* Copied out first: the callback may call the library again. */
        uint8_t *copy = kvt__malloc(len ? len : 1);
        if (!copy) {
            pthread_mutex_unlock(&c->lock);
            return kvt__err(KVT_ENOMEM, "kvt_stats: out of memory");
        }
        memcpy(copy, p, len);
        pthread_mutex_unlock(&c->lock);
        const uint8_t *q = copy, *end = copy + len;
        char name[256];
        for (uint32_t i = 0; i < n && end - q >= 10; i++) {
            uint64_t v;
            uint16_t l;
            memcpy(&v, q, 8);
            memcpy(&l, q + 8, 2);
            if ((size_t)(end - q) < 10u + l || l >= sizeof name)
                break;
            memcpy(name, q + 10, l);
            name[l] = 0;
            q += 10 + l;
            fn(name, v, user);
            count++;
        }
        kvt__free(copy);
    } else {
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    fn("client.block_bytes", c->block_bytes, user);
    fn("client.frags", c->frags, user);
    fn("client.staging_blocks", c->nslots, user);
    count += 3;
#if KVT_HAVE_CUDA
    /* The device copies this client made into and out of the arena. */
    kvt__cuda_counters_visit(&c->cuda, "client", fn, user);
#define KVT_X_ONE(name) +1
    count += 0 KVT_CUDA_COUNTERS(KVT_X_ONE);
#undef KVT_X_ONE
#endif
    return count;
}

typedef struct stat_query {
    const char *name;
    uint64_t value;
    int found;
} stat_query;

static void match_stat(const char *name, uint64_t value, void *user)
{
    stat_query *q = user;
    if (!q->found && strcmp(name, q->name) == 0) {
        q->value = value;
        q->found = 1;
    }
}

int kvt__client_stat(kvt_store *s, const char *name, uint64_t *value)
{
    kvt__err_clear();
    if (!name || !value)
        return kvt__err(KVT_ENULL, "kvt_stat: %s is NULL", name ? "value" : "name");
    stat_query q = {.name = name};
    int rc = kvt__client_stats(s, match_stat, &q);
    if (rc < 0)
        return rc;
    if (!q.found)
        return kvt__err(KVT_ENOENT, "kvt_stat: no statistic named \"%s\"", name);
    *value = q.value;
    return 0;
}
