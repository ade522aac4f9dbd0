/* sweep.c — the cluster tier's sweeper: idle TTL, the directory's quota, and killed writers' temporary files, 1/256 of the tree per step. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "tier/cluster/internal.h"

/*
 * Any process on any node may sweep, as often as it likes, several at once:
 * every decision is an unlink of an immutable file, and an unlink that loses
 * a race (ENOENT) is simply not counted. A reader that has the file open
 * still reads the whole file (POSIX keeps the inode; a network filesystem
 * may give ESTALE instead, which the reader takes as a miss), and every read
 * is verified, so sweeping under readers gives misses, never wrong bytes.
 *
 * A step visits one top-level fan-out directory (1/256 of the blocks: keys
 * are hashes), so no pass ever walks the whole tree at once and a node's
 * sweeps cost O(files / 256) per step. The quota is enforced from a per-node
 * estimate of the tree's bytes: each step records the bytes of the directory
 * it visited and, while the sum of the last-seen bytes of all 256 exceeds the
 * quota, deletes the least recently used files of the directory in hand.
 * After one full pass of a node the tree is within the quota (minus what was
 * put meanwhile); least-recently-used order is exact within a directory,
 * approximate across them. Last access is the file's mtime (touch.c).
 */

typedef struct swept_file {
    int64_t mtime_ns;
    uint64_t bytes;
    char rel[3 + 64]; /* "cd/<name>" relative to the top-level directory */
} swept_file;

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000ll + st->st_mtim.tv_nsec;
}

static bool is_hex2(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[2] == '\0';
}

static bool is_block_name(const char *s)
{
    size_t n = strlen(s);
    return n == 32 + sizeof CL_SUFFIX - 1 && !strcmp(s + 32, CL_SUFFIX);
}

static int by_age(const void *a, const void *b)
{
    const swept_file *x = a, *y = b;
    return (x->mtime_ns > y->mtime_ns) - (x->mtime_ns < y->mtime_ns);
}

/* Visits one leaf directory: expires and cleans there, and appends the
 * surviving block files to *files. Returns files deleted. */
static int sweep_leaf(kvt_cluster *c, int top_fd, const char *leaf, int64_t now,
                      swept_file **files, size_t *n, size_t *cap)
{
    int fd = openat(top_fd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return 0;
    }
    int deleted = 0;
    int64_t ttl = (int64_t)c->p.ttl_ms * 1000000ll;
    int64_t grace = (int64_t)c->p.tmp_grace_ms * 1000000ll;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        bool tmp = !strncmp(name, CL_TMP_PREFIX, sizeof CL_TMP_PREFIX - 1);
        if (!tmp && !is_block_name(name))
            continue; /* not ours: leave it alone */
        struct stat st;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
            continue;
        if (tmp) {
            /* A writer takes well under the grace period to publish; an
             * older temporary file is a killed writer's. */
            if (now - mtime_ns(&st) > grace && unlinkat(fd, name, 0) == 0) {
                CL_ADD(c, tmp_cleaned, 1);
                deleted++;
            }
            continue;
        }
        if (ttl && now - mtime_ns(&st) > ttl) {
            if (unlinkat(fd, name, 0) == 0) {
                CL_ADD(c, expired, 1);
                deleted++;
            }
            continue;
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            swept_file *nf = realloc(*files, nc * sizeof *nf);
            if (!nf)
                continue; /* the quota skips this file this time */
            *files = nf;
            *cap = nc;
        }
        swept_file *f = &(*files)[(*n)++];
        f->mtime_ns = mtime_ns(&st);
        f->bytes = (uint64_t)st.st_size;
        memcpy(f->rel, leaf, 2);
        f->rel[2] = '/';
        memcpy(f->rel + 3, name, strlen(name) + 1);
    }
    closedir(d);
    return deleted;
}

static int sweep_top(kvt_cluster *c, uint32_t top, int64_t now)
{
    char name[3] = {"0123456789abcdef"[top >> 4], "0123456789abcdef"[top & 15], '\0'};
    int fd = openat(c->root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        c->dir_usage[top] = 0;
        return errno == ENOENT ? 0 : kvt__err_errno(KVT_EIO, errno, "cluster: sweeping %s/%s",
                                                   c->root, name);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return kvt__err(KVT_ENOMEM, "cluster: no memory to sweep");
    }
    swept_file *files = NULL;
    size_t n = 0, cap = 0;
    int deleted = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_hex2(e->d_name))
            deleted += sweep_leaf(c, fd, e->d_name, now, &files, &n, &cap);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += files[i].bytes;
    c->dir_usage[top] = bytes;
    if (c->p.quota_bytes) {
        uint64_t total = 0;
        for (int i = 0; i < 256; i++)
            total += c->dir_usage[i];
        if (total > c->p.quota_bytes) {
            qsort(files, n, sizeof *files, by_age);
            for (size_t i = 0; i < n && total > c->p.quota_bytes; i++) {
                if (unlinkat(fd, files[i].rel, 0))
                    continue; /* another sweeper was first */
                total -= files[i].bytes;
                c->dir_usage[top] -= files[i].bytes;
                CL_ADD(c, swept, 1);
                deleted++;
            }
        }
    }
    free(files);
    closedir(d);
    CL_ADD(c, sweep_steps, 1);
    return deleted;
}

/* The root holds the FORMAT marker and, briefly, the probe and marker files
 * of stores being opened; a store killed while opening leaves them. Visited
 * once per pass. */
static int sweep_root(kvt_cluster *c, int64_t now)
{
    int fd = openat(c->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    int deleted = 0;
    int64_t grace = (int64_t)c->p.tmp_grace_ms * 1000000ll;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, CL_TMP_PREFIX, sizeof CL_TMP_PREFIX - 1) &&
            strncmp(e->d_name, ".probe.", 7))
            continue;
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            now - mtime_ns(&st) > grace && unlinkat(fd, e->d_name, 0) == 0) {
            CL_ADD(c, tmp_cleaned, 1);
            deleted++;
        }
    }
    closedir(d);
    return deleted;
}

static int64_t wall_now(uint64_t now_ns)
{
    if (now_ns)
        return (int64_t)now_ns;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int kvt__cluster_sweep_step(kvt_cluster *c, uint64_t now_ns)
{
    pthread_mutex_lock(&c->sweep_mu);
    uint32_t top = c->sweep_cursor++ & 255u;
    int64_t now = wall_now(now_ns);
    int extra = top == 0 ? sweep_root(c, now) : 0;
    int rc = sweep_top(c, top, now);
    if (rc >= 0)
        rc += extra;
    pthread_mutex_unlock(&c->sweep_mu);
    return rc;
}

int kvt__cluster_sweep_all(kvt_cluster *c, uint64_t now_ns)
{
    int total = 0;
    for (int i = 0; i < 256; i++) {
        int rc = kvt__cluster_sweep_step(c, now_ns);
        if (rc < 0)
            return rc;
        total += rc;
    }
    return total;
}
