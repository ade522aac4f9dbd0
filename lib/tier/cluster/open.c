/* open.c — opening a cluster directory: checks, the format marker, probes of O_DIRECT and of atomic publishing; close and stats. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "error.h"
#include "tier/cluster/internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

static const char format_text[] = "kvtier-cluster 1\n"; /* the FORMAT file's whole content */

uint64_t kvt__cluster_file_bytes(const kvt_cluster *c)
{
    return c->file_bytes;
}

const char *kvt__cluster_root(const kvt_cluster *c)
{
    return c->root;
}

/* Writes `len` bytes as dir_fd/name through a temporary name and a link, so
 * a reader sees all or nothing; EEXIST (another node was first) is fine. */
static int publish_small(kvt_cluster *c, const char *name, const void *data, size_t len)
{
    char tmp[96];
    char who[9];
    cl_hex(c->writer, 4, who);
    snprintf(tmp, sizeof tmp, CL_TMP_PREFIX "%s.%s", name, who);
    int fd = openat(c->root_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    c->p.file_mode | 0444 /* the marker is readable by all who can search */);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, data, len);
    int err = w == (ssize_t)len ? 0 : (w < 0 ? errno : EIO);
    if (close(fd) && !err)
        err = errno;
    if (!err && linkat(c->root_fd, tmp, c->root_fd, name, 0) && errno != EEXIST)
        err = errno;
    unlinkat(c->root_fd, tmp, 0);
    return -err;
}

/* The tree's FORMAT marker: created by the first store, checked by every other. */
static int check_format(kvt_cluster *c)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = openat(c->root_fd, CL_FORMAT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            char buf[64] = {0};
            ssize_t r = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (r == (ssize_t)strlen(format_text) && !memcmp(buf, format_text, (size_t)r))
                return 0;
            return kvt__err(KVT_EFORMAT,
                            "cluster: %s/" CL_FORMAT_FILE " is not this format version's "
                            "marker (\"%.20s\"): another kvtier version or a foreign tree",
                            c->root, buf);
        }
        if (errno == ELOOP)
            return kvt__err(KVT_EPATH, "cluster: %s/" CL_FORMAT_FILE " is a symlink", c->root);
        if (errno != ENOENT)
            return kvt__err_errno(KVT_EPATH, errno, "cluster: cannot read %s/" CL_FORMAT_FILE,
                                  c->root);
        int rc = publish_small(c, CL_FORMAT_FILE, format_text, strlen(format_text));
        if (rc == -ENOSPC || rc == -EDQUOT)
            return kvt__err(KVT_ENOSPC, "cluster: no space in %s for its marker", c->root);
        if (rc < 0)
            return kvt__err_errno(KVT_EPATH, -rc, "cluster: cannot create %s/" CL_FORMAT_FILE,
                                  c->root);
    }
    return kvt__err(KVT_EPATH, "cluster: %s/" CL_FORMAT_FILE " vanished while being read",
                    c->root);
}

/* Whether O_DIRECT works here (one aligned write and read of a probe file),
 * and which atomic publish the filesystem offers: rename without replace
 * (one operation), else link then unlink (two). */
static int probe(kvt_cluster *c)
{
    char who[33], tmp[96], name[96];
    cl_hex(c->writer, 16, who);
    snprintf(tmp, sizeof tmp, CL_TMP_PREFIX "probe.%s", who);
    snprintf(name, sizeof name, ".probe.%s", who);
    void *unit = NULL;
    if (posix_memalign(&unit, CL_UNIT, CL_UNIT))
        return kvt__err(KVT_ENOMEM, "cluster: no memory for the probe");
    memset(unit, 0x5a, CL_UNIT);
    int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    c->direct = !c->p.no_direct;
    int fd = openat(c->root_fd, tmp, flags | (c->direct ? O_DIRECT : 0), c->p.file_mode);
    if (fd < 0 && errno == EINVAL && c->direct) {
        c->direct = false;
        fd = openat(c->root_fd, tmp, flags, c->p.file_mode);
    }
    int rc = 0;
    if (fd < 0) {
        rc = errno == ENOSPC || errno == EDQUOT
                 ? kvt__err(KVT_ENOSPC, "cluster: no space in %s", c->root)
                 : kvt__err_errno(KVT_EPATH, errno, "cluster: cannot create files in %s",
                                  c->root);
        free(unit);
        return rc;
    }
    ssize_t w = pwrite(fd, unit, CL_UNIT, 0);
    if (w < 0 && errno == EINVAL && c->direct) { /* accepted at open, refused at write */
        c->direct = false;
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl & ~O_DIRECT);
        w = pwrite(fd, unit, CL_UNIT, 0);
    }
    if (w != (ssize_t)CL_UNIT)
        rc = w < 0 && (errno == ENOSPC || errno == EDQUOT)
                 ? kvt__err(KVT_ENOSPC, "cluster: no space in %s", c->root)
                 : kvt__err_errno(KVT_EIO, w < 0 ? errno : EIO, "cluster: probe write in %s",
                                  c->root);
    else if (pread(fd, unit, CL_UNIT, 0) != (ssize_t)CL_UNIT)
        rc = kvt__err_errno(KVT_EIO, errno, "cluster: probe read in %s", c->root);
    close(fd);
    free(unit);
    if (rc == 0) {
        if (renameat2(c->root_fd, tmp, c->root_fd, name, RENAME_NOREPLACE) == 0) {
            c->noreplace = true;
            unlinkat(c->root_fd, name, 0);
        } else if (linkat(c->root_fd, tmp, c->root_fd, name, 0) == 0) {
            c->noreplace = false;
            unlinkat(c->root_fd, name, 0);
        } else {
            rc = kvt__err_errno(KVT_ENOTSUP, errno,
                                "cluster: %s offers neither rename without replace nor hard "
                                "links, so blocks cannot be published atomically", c->root);
        }
    }
    unlinkat(c->root_fd, tmp, 0);
    return rc;
}

int kvt__cluster_open(const kvt_cluster_params *p, kvt_cluster **out)
{
    if (!p || !out || !p->dir)
        return kvt__err(KVT_ENULL, "cluster: params, dir and out are required");
    *out = NULL;
    if (!p->block_bytes || p->block_bytes > (1ull << 30) || !p->frags ||
        p->block_bytes % p->frags)
        return kvt__err(KVT_ESIZE, "cluster: block_bytes %llu with %u fragments",
                        (unsigned long long)p->block_bytes, p->frags);
    kvt_cluster *c = calloc(1, sizeof *c);
    if (!c)
        return kvt__err(KVT_ENOMEM, "cluster: no memory");
    c->p = *p;
    c->p.dir = NULL;
    c->root_fd = -1;
    if (!c->p.timeout_ms)
        c->p.timeout_ms = 10000;
    if (!c->p.queue_depth)
        c->p.queue_depth = 32;
    if (c->p.queue_depth > 1024)
        c->p.queue_depth = 1024;
    if (!c->p.tmp_grace_ms)
        c->p.tmp_grace_ms = 600000;
    if (!c->p.file_mode)
        c->p.file_mode = 0600;
    c->p.file_mode &= 0666;
    c->qd = c->p.queue_depth;
    c->file_bytes = CL_UNIT + (p->block_bytes + CL_UNIT - 1) / CL_UNIT * CL_UNIT;
    pthread_mutex_init(&c->lanes_mu, NULL);
    pthread_mutex_init(&c->touch_mu, NULL);
    pthread_cond_init(&c->touch_cv, NULL);
    pthread_mutex_init(&c->sweep_mu, NULL);
    if (getrandom(c->writer, sizeof c->writer, 0) != (ssize_t)sizeof c->writer) {
        uint64_t t[2] = {(uint64_t)getpid(), (uint64_t)(uintptr_t)c};
        memcpy(c->writer, t, 16);
    }
    c->sweep_cursor = c->writer[0]; /* nodes start their sweeps in different places */
    size_t rl = strlen(p->dir) + sizeof "/" CL_TREE;
    c->root = malloc(rl);
    int rc;
    if (!c->root) {
        rc = kvt__err(KVT_ENOMEM, "cluster: no memory");
        goto fail;
    }
    snprintf(c->root, rl, "%s/" CL_TREE, p->dir);

    int dir_fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        rc = kvt__err_errno(KVT_EPATH, errno, "cluster: cannot open the directory %s", p->dir);
        goto fail;
    }
    if (faccessat(dir_fd, ".", W_OK | X_OK, AT_EACCESS)) {
        rc = kvt__err_errno(KVT_EPATH, errno, "cluster: %s is not writable", p->dir);
        close(dir_fd);
        goto fail;
    }
    uint32_t dmode = c->p.file_mode | ((c->p.file_mode & 0444) >> 2);
    if (mkdirat(dir_fd, CL_TREE, dmode) && errno != EEXIST) {
        rc = kvt__err_errno(errno == ENOSPC ? KVT_ENOSPC : KVT_EPATH, errno,
                            "cluster: cannot create %s", c->root);
        close(dir_fd);
        goto fail;
    }
    c->root_fd = openat(dir_fd, CL_TREE, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(dir_fd);
    if (c->root_fd < 0) {
        rc = kvt__err_errno(KVT_EPATH, err, "cluster: cannot open %s (a symlink is refused)",
                            c->root);
        goto fail;
    }
    if ((rc = check_format(c)) || (rc = probe(c)))
        goto fail;
    /* Verifiers beside the callers' ring threads, one per CPU beyond the
     * first, at most 4 (every concurrent call of this open shares them);
     * with one CPU the ring's thread verifies (slower, not wrong). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (c->p.block_bytes >= CL_OFFLOAD_MIN && cpus > 1)
        c->verifiers = kvt__jobpool_new(cpus - 1 < 4 ? (unsigned)(cpus - 1) : 4);
    if (c->p.ttl_ms || c->p.quota_bytes) {
        /* Refresh last access at most a few times per TTL, so reads do not
         * become a storm of metadata writes; a minute when only a quota
         * (least recently used first) needs it. */
        uint64_t ms = c->p.ttl_ms ? c->p.ttl_ms / 8 : 60000;
        c->touch_interval_ns = (ms ? ms : 1) * 1000000ull;
        if ((rc = cl_touch_start(c)))
            goto fail;
    }
    *out = c;
    return 0;
fail:
    kvt__cluster_close(c);
    return rc;
}

void kvt__cluster_close(kvt_cluster *c)
{
    if (!c)
        return;
    bool stopped = cl_touch_stop(c);
    kvt__jobpool_free(c->verifiers); /* idle: every call has settled its parked ops */
    c->verifiers = NULL;
    cl_lanes_free(c);
    if (!stopped) /* the toucher is stuck on a hung filesystem and still uses c: leak it */
        return;
    if (c->root_fd >= 0)
        close(c->root_fd);
    pthread_mutex_destroy(&c->lanes_mu);
    pthread_mutex_destroy(&c->sweep_mu);
    pthread_mutex_destroy(&c->touch_mu);
    pthread_cond_destroy(&c->touch_cv);
    free(c->root);
    free(c);
}

void kvt__cluster_stats(kvt_cluster *c, kvt_stat_fn fn, void *user)
{
#define CL_VISIT(n) fn("cluster." #n, atomic_load_explicit(&c->st.n, memory_order_relaxed), user);
    CL_STATS(CL_VISIT)
#undef CL_VISIT
    fn("cluster.direct_io", c->direct, user);
    fn("cluster.rename_noreplace", c->noreplace, user);
    fn("cluster.block_file_bytes", c->file_bytes, user);
}

uint64_t kvt__cluster_stat(kvt_cluster *c, const char *name)
{
#define CL_ONE(n)                                                                   \
    if (!strcmp(name, #n))                                                         \
        return atomic_load_explicit(&c->st.n, memory_order_relaxed);
    CL_STATS(CL_ONE)
#undef CL_ONE
    if (!strcmp(name, "direct_io"))
        return c->direct;
    if (!strcmp(name, "rename_noreplace"))
        return c->noreplace;
    return 0;
}
