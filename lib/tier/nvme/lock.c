/* lock.c — the NVMe tier's file lock: who owns the file, whether a dead owner's I/O drained. */
#include "tier/nvme/file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "tier/nvme/ring.h"

#define LOCK_WAIT_MS 5000 /* longest wait for a previous store's I/O to drain */

/* ------------------------------------------------------------- file lock
 *
 * Two open-file-description locks (fcntl F_OFD_SETLK): byte-range locks that
 * belong to an open file description, conflict with those of any other
 * description (in this process too) and last until unlocked or until the
 * description's last reference goes. Two, because after kill -9 "a store owns
 * the file" and "a store's I/O may still land on it" end at different times:
 *
 * A, the owner: a write lock on byte 0 through `lock_fd`, a descriptor
 * opened only for it. Only the process's descriptor table references that
 * description, and the kernel closes the table when the last of the
 * process's threads has exited: a dead store's A is gone by the time its
 * process can be reaped. Held by anyone else: KVT_ELOCKED at once. (The
 * holder's pid can't be named: /proc/locks shows OFD locks with pid -1.)
 *
 * B, I/O drained: a write lock on byte 1 through the I/O descriptor `t->fd`.
 * Its description is referenced by every ring (a registered file) and every
 * request in flight, so a dead store's B lasts until the kernel has torn its
 * rings down, after its last submitted write completed (tens of ms, seconds
 * on a loaded machine). The next store, holding A, waits for B (polling, at
 * most LOCK_WAIT_MS, then KVT_ELOCKED) before it reads or writes a byte: a
 * late write of the dead store can't land over a block the new store wrote
 * and acknowledged. B stays a write lock (nothing else takes byte 1, so a
 * read lock would add nothing). A clean close unlocks B explicitly: every
 * operation has reaped its own completions, nothing of ours is in flight.
 * (A flock on the I/O descriptor did both jobs once, but a live store could
 * then not be told from a dead one's rings, and forked children kept it.)
 *
 * A forked child shares the parent's descriptions: its copies of lock_fd,
 * t->fd and the rings (their descriptors and mappings) would keep A and B
 * for as long as it lives once the parent died. A fork handler drops them
 * (closing never unlocks what another reference holds: the parent keeps
 * both); the store is unusable in the child anyway, its threads were not
 * copied. The handler runs in the child, when the child first runs: fork()
 * returns in the parent before that (by default the parent runs on), so a
 * child holds both locks until it is first scheduled, milliseconds, tens of
 * them on a loaded machine. A store killed inside that window leaves its file
 * KVT_ELOCKED until then (not waited for: A's refusal stays immediate, and the
 * parent is not made to wait in fork() for its child). A fork that races the
 * store's open or close may leave the child a copy: KVT_ELOCKED while that
 * child lives, nothing worse. Only OFD locks
 * (no flock beside them): a network filesystem that maps flock onto byte
 * ranges would see a store's two kinds collide. */

static pthread_mutex_t lockers_mu = PTHREAD_MUTEX_INITIALIZER;
static kvt_tier_impl *lockers; /* tiers with a lock_fd, through lock_next */
static pthread_once_t lockers_once = PTHREAD_ONCE_INIT;

static void lockers_fork_prepare(void)
{
    pthread_mutex_lock(&lockers_mu);
}

static void lockers_fork_parent(void)
{
    pthread_mutex_unlock(&lockers_mu);
}

/* The child: drop its references to the locked descriptions (above). Only
 * syscalls: io_uring_queue_exit() is munmap() and close(). */
static void lockers_fork_child(void)
{
    for (kvt_tier_impl *t = lockers; t; t = t->lock_next) {
        nvme_lanes_forget(t);
        close(t->lock_fd);
        close(t->fd);
        t->lock_fd = t->fd = -1;
        t->locked = false;
    }
    lockers = NULL;
    pthread_mutex_unlock(&lockers_mu);
}

static void lockers_init(void)
{
    /* Without the handler (ENOMEM), a forked child keeps a dead parent's
     * store locked until it exits: KVT_ELOCKED meanwhile, nothing worse. */
    (void)pthread_atfork(lockers_fork_prepare, lockers_fork_parent, lockers_fork_child);
}

static int ofd_lock(int fd, short type, off_t byte)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Takes t off the list the fork handler walks: before its rings go. */
void nvme_lock_unlist(kvt_tier_impl *t)
{
    pthread_mutex_lock(&lockers_mu);
    for (kvt_tier_impl **p = &lockers; *p; p = &(*p)->lock_next) {
        if (*p == t) {
            *p = t->lock_next;
            break;
        }
    }
    pthread_mutex_unlock(&lockers_mu);
}

/* After the rings: unlocks A and B (explicitly, for any copy of the
 * descriptors elsewhere; a lock not held is a no-op) and closes lock_fd. */
void nvme_lock_release(kvt_tier_impl *t)
{
    nvme_lock_unlist(t);
    if (t->lock_fd >= 0) {
        if (t->fd >= 0)
            ofd_lock(t->fd, F_UNLCK, 1);
        ofd_lock(t->lock_fd, F_UNLCK, 0);
        close(t->lock_fd);
        t->lock_fd = -1;
    }
    t->locked = false;
}

/* Whether another store of this process has st's file open for its lock. */
static bool locked_here(const kvt_tier_impl *self, const struct stat *st)
{
    bool here = false;
    pthread_mutex_lock(&lockers_mu);
    for (const kvt_tier_impl *t = lockers; t && !here; t = t->lock_next) {
        struct stat ts;
        here = t != self && fstat(t->lock_fd, &ts) == 0 && ts.st_dev == st->st_dev &&
               ts.st_ino == st->st_ino;
    }
    pthread_mutex_unlock(&lockers_mu);
    return here;
}

/* Takes A, then waits for B (above). */
int nvme_lock_file(kvt_tier_impl *t, const char *path)
{
    struct stat st, lst;
    if (fstat(t->fd, &st))
        return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
    pthread_once(&lockers_once, lockers_init);
    /* Under the mutex, so that a fork in another thread sees it listed. A
     * write lock needs a descriptor open for writing. */
    pthread_mutex_lock(&lockers_mu);
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        t->lock_fd = fd;
        t->lock_next = lockers;
        lockers = t;
    }
    pthread_mutex_unlock(&lockers_mu);
    if (fd < 0)
        return kvt__err_errno(KVT_EPATH, errno, "nvme: opening %s for its lock", path);
    if (fstat(fd, &lst))
        return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
    if (lst.st_dev != st.st_dev || lst.st_ino != st.st_ino)
        return kvt__err(KVT_EPATH, "nvme: %s was replaced while being opened", path);
    if (ofd_lock(fd, F_WRLCK, 0)) {
        if (errno != EAGAIN && errno != EACCES)
            return kvt__err_errno(KVT_ESYS, errno, "nvme: locking %s", path);
        if (locked_here(t, &st))
            return kvt__err(KVT_ELOCKED, "nvme: %s is in use by another store of this process",
                            path);
        return kvt__err(KVT_ELOCKED, "nvme: %s is in use by another store (another process, or "
                                     "one that got its descriptor from one)", path);
    }
    t->locked = true;
    uint64_t t0 = kvt__clock_ns(CLOCK_MONOTONIC);
    while (ofd_lock(t->fd, F_WRLCK, 1)) {
        if (errno != EAGAIN && errno != EACCES)
            return kvt__err_errno(KVT_ESYS, errno, "nvme: locking %s", path);
        if (kvt__clock_ns(CLOCK_MONOTONIC) - t0 >= LOCK_WAIT_MS * 1000000ull)
            return kvt__err(KVT_ELOCKED, "nvme: %s: the I/O of its previous store has not "
                                         "drained after %u ms (its io_uring instances, or a "
                                         "process that inherited them, still hold the file)",
                            path, LOCK_WAIT_MS);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
