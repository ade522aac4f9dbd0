/* blocks.c — the cluster engine's batched calls: each block's stages (open, read/write, close, publish) on the ring runner. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tier/cluster/internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define STALE_RETRIES 4 /* GlusterFS: an open racing a rename fails with ESTALE now and then */

enum {
    ST_DONE = -1,
    /* get */
    G_OPEN = 0, G_READ, G_CLOSE, G_VERIFIED, G_DROP,
    /* put */
    P_OPEN = 0, P_MKDIR_TOP, P_MKDIR_LEAF, P_WRITE, P_SYNC, P_CLOSE, P_PUBLISH, P_ABORT_CLOSE,
    P_UNLINK_TMP,
    /* contains, remove */
    C_STATX = 0, R_UNLINK = 0
};

static uint32_t dir_mode(const kvt_cluster *c)
{
    uint32_t m = c->p.file_mode;
    return m | ((m & 0444) >> 2); /* searchable where readable */
}

/* Every path is resolved beneath the tree's root and no symlink is followed
 * on the way, so a planted link cannot lead a store out of the tree. */
static void prep_open(kvt_cluster *c, cl_op *op, struct io_uring_sqe *sqe, const char *path,
                      uint64_t flags, uint64_t mode)
{
    memset(&op->how, 0, sizeof op->how);
    op->how.flags = flags | O_NOFOLLOW | O_CLOEXEC | (c->direct ? O_DIRECT : 0);
    op->how.mode = mode;
    op->how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    io_uring_prep_openat2(sqe, c->root_fd, path, &op->how);
}

static int finish(cl_op *op, int status)
{
    op->status = status;
    op->stage = ST_DONE;
    return CL_DONE;
}

static int path_code(kvt_cluster *c, int err)
{
    int code = cl_errno_code(err);
    if (err == ELOOP || err == EXDEV)
        CL_ADD(c, unsafe_paths, 1);
    return code;
}

/* ------------------------------------------------------------------- get */

static int get_begin(kvt_cluster *c, cl_op *op)
{
    kvt__cluster_rel_path(&op->io->key, op->rel);
    if (op->io->nfrags == 0 || c->p.block_bytes % op->io->nfrags || !op->io->frags)
        return finish(op, KVT_EINVAL);
    return CL_NEXT;
}

static void get_prep(kvt_cluster *c, cl_op *op, struct io_uring_sqe *sqe)
{
    switch (op->stage) {
    case G_OPEN:
        prep_open(c, op, sqe, op->rel, O_RDONLY, 0);
        break;
    case G_READ:
        io_uring_prep_read(sqe, op->fd, op->buf + op->done_bytes,
                           (unsigned)(c->file_bytes - op->done_bytes), op->done_bytes);
        break;
    case G_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case G_DROP:
        io_uring_prep_unlinkat(sqe, c->root_fd, op->rel, 0);
        break;
    }
}

/* Verifies the image read and copies the payload out: 0 or the block's error. */
static int verify_and_copy(kvt_cluster *c, cl_op *op)
{
    uint64_t sum;
    int rc = cl_header_check(c, op->buf, &op->io->key, &sum);
    if (rc)
        return rc;
    if (cl_hash(op->buf + CL_UNIT, c->p.block_bytes) != sum)
        return KVT_ECORRUPT;
    size_t fs = c->p.block_bytes / op->io->nfrags;
    for (uint32_t f = 0; f < op->io->nfrags; f++)
        memcpy(op->io->frags[f], op->buf + CL_UNIT + (size_t)f * fs, fs);
    return 0;
}

static void verify_off_ring(kvt_cluster *c, cl_op *op)
{
    if (c->p.slow_verify_ms_for_tests) /* a verifier still busy when the call times out */
        usleep(c->p.slow_verify_ms_for_tests * 1000u);
    op->status = verify_and_copy(c, op);
    CL_ADD(c, verified_off_ring, 1);
}

/* A get's verdict, once its image is verified and copied out (or failed). */
static int get_settle(kvt_cluster *c, cl_op *op)
{
    switch (op->status) {
    case 0:
        CL_ADD(c, hits, 1);
        CL_ADD(c, bytes_read, c->p.block_bytes);
        cl_touch_note(c, &op->io->key);
        return finish(op, 0);
    case KVT_ENOENT:
        CL_ADD(c, misses, 1);
        return finish(op, KVT_ENOENT);
    case KVT_EFORMAT:
    case KVT_EGEOMETRY:
        CL_ADD(c, foreign, 1); /* another version's or geometry's file: not ours to delete */
        return finish(op, op->status);
    case KVT_ECORRUPT:
    case KVT_ETOOSMALL:
        CL_ADD(c, corrupt, op->status == KVT_ECORRUPT);
        CL_ADD(c, truncated, op->status == KVT_ETOOSMALL);
        /* Published files are immutable, so this one will never verify:
         * unlink it so that the next put can publish the block again. */
        op->stage = G_DROP;
        return CL_NEXT;
    default:
        return finish(op, op->status);
    }
}

static int get_complete(kvt_cluster *c, cl_op *op, int res)
{
    switch (op->stage) {
    case G_OPEN:
        if (res >= 0) {
            op->fd = res;
            op->stage = G_READ;
            return false;
        }
        if (res == -ESTALE && op->retries++ < STALE_RETRIES) {
            CL_ADD(c, stale_retries, 1);
            return false;
        }
        if (res == -ENOENT || res == -ESTALE)
            CL_ADD(c, misses, 1);
        else
            CL_ADD(c, io_errors, res == -ELOOP || res == -EXDEV ? 0 : 1);
        return finish(op, res == -ESTALE ? KVT_ENOENT : path_code(c, -res));
    case G_READ:
        if (res < 0) {
            CL_ADD(c, io_errors, 1);
            /* Deleted under us (ESTALE on a network filesystem): a miss. */
            op->status = res == -ESTALE || res == -ENOENT ? KVT_ENOENT : cl_errno_code(-res);
        } else if (res == 0 || (res % CL_UNIT && op->done_bytes + (uint64_t)res < c->file_bytes)) {
            op->status = KVT_ETOOSMALL; /* block files are whole units: a truncated file */
        } else {
            op->done_bytes += (uint64_t)res;
            if (op->done_bytes < c->file_bytes)
                return false;
        }
        op->stage = G_CLOSE;
        return false;
    case G_CLOSE:
        op->fd = -1;
        if (op->status == 0 && c->p.block_bytes >= CL_OFFLOAD_MIN && cl_can_park(c, op)) {
            /* The checksum and the copy out, about a third of a 2 MiB
             * block's time on ext4, run beside the ring's thread, which
             * keeps the other blocks' opens, reads and closes going. */
            op->stage = G_VERIFIED;
            cl_park(c, op, verify_off_ring);
            return CL_PARKED;
        }
        if (op->status == 0)
            op->status = verify_and_copy(c, op);
        return get_settle(c, op);
    case G_VERIFIED:
        return get_settle(c, op);
    case G_DROP:
    default:
        return finish(op, op->status);
    }
}

static const cl_kind get_kind = {true, false, get_begin, get_prep, get_complete};

int kvt__cluster_get(kvt_cluster *c, kvt_cluster_io *io, size_t n)
{
    int rc = cl_run(c, &get_kind, io, n);
    if (rc < 0 && rc != KVT_ETIMEDOUT)
        return rc;
    int hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += io[i].status == 0;
    return hits;
}

/* ------------------------------------------------------------------- put */

/* The file image: the payload copied in from the caller's fragments, its
 * checksum in the header. */
static void put_prepare(kvt_cluster *c, cl_op *op)
{
    kvt_cluster_io *io = op->io;
    size_t fs = c->p.block_bytes / io->nfrags;
    uint8_t *payload = op->buf + CL_UNIT;
    for (uint32_t f = 0; f < io->nfrags; f++)
        memcpy(payload + (size_t)f * fs, io->frags[f], fs);
    memset(payload + c->p.block_bytes, 0, c->file_bytes - CL_UNIT - c->p.block_bytes);
    cl_header_write(c, op->buf, &io->key, cl_hash(payload, c->p.block_bytes));
}

static int put_begin(kvt_cluster *c, cl_op *op)
{
    kvt_cluster_io *io = op->io;
    if (io->nfrags == 0 || c->p.block_bytes % io->nfrags || !io->frags)
        return finish(op, KVT_EINVAL);
    kvt__cluster_rel_path(&io->key, op->rel);
    memcpy(op->dir, op->rel, 5);
    op->dir[5] = '\0';
    char hex[33], who[9];
    cl_hex(io->key.b, 16, hex);
    cl_hex(c->writer, 4, who);
    unsigned long long seq = atomic_fetch_add(&c->tmp_seq, 1);
    /* The writer's identity and a sequence make the name unique among all
     * writers; the sweeper recognises the prefix and the age. */
    snprintf(op->tmp, sizeof op->tmp, "%s/" CL_TMP_PREFIX "%s.%s.%llu", op->dir, hex, who, seq);
    /* Here, not on a verifier: at 256 KiB and 2 MiB that measured no faster
     * (docs/perf.md), unlike gets. */
    put_prepare(c, op);
    return CL_NEXT;
}

static void put_prep(kvt_cluster *c, cl_op *op, struct io_uring_sqe *sqe)
{
    switch (op->stage) {
    case P_OPEN:
        prep_open(c, op, sqe, op->tmp, O_WRONLY | O_CREAT | O_EXCL, c->p.file_mode);
        break;
    case P_MKDIR_TOP:
        op->dir[2] = '\0';
        io_uring_prep_mkdirat(sqe, c->root_fd, op->dir, dir_mode(c));
        break;
    case P_MKDIR_LEAF:
        op->dir[2] = '/';
        io_uring_prep_mkdirat(sqe, c->root_fd, op->dir, dir_mode(c));
        break;
    case P_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf + op->done_bytes,
                            (unsigned)(c->file_bytes - op->done_bytes), op->done_bytes);
        break;
    case P_SYNC:
        io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
        break;
    case P_CLOSE:
    case P_ABORT_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case P_PUBLISH:
        /* Publishing never replaces: a reader holding the old file and a
         * writer racing us both see one whole file. */
        if (c->noreplace)
            io_uring_prep_renameat(sqe, c->root_fd, op->tmp, c->root_fd, op->rel,
                                   RENAME_NOREPLACE);
        else
            io_uring_prep_linkat(sqe, c->root_fd, op->tmp, c->root_fd, op->rel, 0);
        break;
    case P_UNLINK_TMP:
        io_uring_prep_unlinkat(sqe, c->root_fd, op->tmp, 0);
        break;
    }
}

static int put_complete(kvt_cluster *c, cl_op *op, int res)
{
    switch (op->stage) {
    case P_OPEN:
        if (res >= 0) {
            op->fd = res;
            op->stage = P_WRITE;
        } else if (res == -ENOENT && op->retries++ < 2) {
            op->stage = P_MKDIR_TOP; /* fan-out directories are made on first use */
        } else if (res == -ESTALE && op->retries++ < STALE_RETRIES) {
            CL_ADD(c, stale_retries, 1);
        } else {
            if (res == -ENOSPC || res == -EDQUOT)
                CL_ADD(c, enospc, 1);
            else if (res != -ELOOP && res != -EXDEV)
                CL_ADD(c, io_errors, 1);
            return finish(op, path_code(c, -res));
        }
        return false;
    case P_MKDIR_TOP:
    case P_MKDIR_LEAF:
        if (res < 0 && res != -EEXIST) {
            CL_ADD(c, io_errors, res == -ENOSPC ? 0 : 1);
            CL_ADD(c, enospc, res == -ENOSPC);
            return finish(op, path_code(c, -res));
        }
        op->stage = op->stage == P_MKDIR_TOP ? P_MKDIR_LEAF : P_OPEN;
        return false;
    case P_WRITE:
        if (res <= 0) {
            if (res == -ENOSPC || res == -EDQUOT)
                CL_ADD(c, enospc, 1);
            else
                CL_ADD(c, io_errors, 1);
            op->status = res == 0 ? KVT_EIO : cl_errno_code(-res);
            op->stage = P_ABORT_CLOSE;
            return false;
        }
        op->done_bytes += (uint64_t)res;
        if (op->done_bytes < c->file_bytes)
            return false;
        op->stage = c->p.durable ? P_SYNC : P_CLOSE;
        return false;
    case P_SYNC:
        if (res < 0) {
            CL_ADD(c, io_errors, 1);
            op->status = cl_errno_code(-res);
            op->stage = P_ABORT_CLOSE;
        } else {
            op->stage = P_CLOSE;
        }
        return false;
    case P_CLOSE:
        op->fd = -1;
        if (res < 0) { /* network filesystems report write-back errors at close */
            CL_ADD(c, io_errors, res == -ENOSPC ? 0 : 1);
            CL_ADD(c, enospc, res == -ENOSPC);
            op->status = cl_errno_code(-res);
            op->stage = P_UNLINK_TMP;
        } else {
            op->stage = P_PUBLISH;
        }
        return false;
    case P_PUBLISH:
        if (res == 0) {
            CL_ADD(c, puts, 1);
            CL_ADD(c, bytes_written, c->p.block_bytes);
            if (c->noreplace)
                return finish(op, 0);
            op->stage = P_UNLINK_TMP; /* the link is published; drop the temporary name */
            return false;
        }
        if (res == -EEXIST) {
            CL_ADD(c, publish_races_lost, 1); /* someone published the same bytes first */
        } else {
            CL_ADD(c, io_errors, 1);
            op->status = cl_errno_code(-res);
        }
        op->stage = P_UNLINK_TMP;
        return false;
    case P_ABORT_CLOSE:
        op->fd = -1;
        op->stage = P_UNLINK_TMP;
        return false;
    case P_UNLINK_TMP:
    default:
        return finish(op, op->status);
    }
}

static const cl_kind put_kind = {true, false, put_begin, put_prep, put_complete};

int kvt__cluster_put(kvt_cluster *c, kvt_cluster_io *io, size_t n)
{
    int rc = cl_run(c, &put_kind, io, n);
    if (rc < 0 && rc != KVT_ETIMEDOUT)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (io[i].status && io[i].status != KVT_ENOENT)
            return io[i].status;
    return 0;
}

/* -------------------------------------------------------------- contains */

static int key_begin(kvt_cluster *c, cl_op *op)
{
    (void)c;
    kvt__cluster_rel_path(&op->io->key, op->rel);
    return CL_NEXT;
}

static void contains_prep(kvt_cluster *c, cl_op *op, struct io_uring_sqe *sqe)
{
    io_uring_prep_statx(sqe, c->root_fd, op->rel, AT_SYMLINK_NOFOLLOW,
                        STATX_TYPE | STATX_SIZE, &op->stx);
}

static int contains_complete(kvt_cluster *c, cl_op *op, int res)
{
    if (res == -ESTALE && op->retries++ < STALE_RETRIES) {
        CL_ADD(c, stale_retries, 1);
        return false;
    }
    if (res < 0)
        return finish(op, res == -ESTALE ? KVT_ENOENT : path_code(c, -res));
    if (S_ISLNK(op->stx.stx_mode)) {
        CL_ADD(c, unsafe_paths, 1);
        return finish(op, KVT_EPATH);
    }
    if (!S_ISREG(op->stx.stx_mode) || op->stx.stx_size != c->file_bytes)
        return finish(op, KVT_EFORMAT); /* a get would refuse it: not held */
    return finish(op, 0);
}

static const cl_kind contains_kind = {false, false, key_begin, contains_prep, contains_complete};
static const cl_kind prefix_kind = {false, true, key_begin, contains_prep, contains_complete};

static int contains_run(kvt_cluster *c, const cl_kind *kind, kvt_cluster_io *io, size_t n)
{
    int rc = cl_run(c, kind, io, n);
    size_t asked = n;
    for (size_t i = 0; i < n; i++)
        if (io[i].status == CL_NOT_BEGUN) {
            io[i].status = KVT_ENOENT;
            asked--;
        }
    CL_ADD(c, contains_checks, asked);
    CL_ADD(c, contains_skipped, n - asked);
    if (rc < 0)
        return rc;
    int held = 0;
    for (size_t i = 0; i < n; i++)
        held += io[i].status == 0;
    return held;
}

int kvt__cluster_contains(kvt_cluster *c, kvt_cluster_io *io, size_t n)
{
    return contains_run(c, &contains_kind, io, n);
}

int kvt__cluster_contains_prefix(kvt_cluster *c, kvt_cluster_io *io, size_t n)
{
    return contains_run(c, &prefix_kind, io, n);
}

/* ---------------------------------------------------------------- remove */

static void remove_prep(kvt_cluster *c, cl_op *op, struct io_uring_sqe *sqe)
{
    io_uring_prep_unlinkat(sqe, c->root_fd, op->rel, 0);
}

static int remove_complete(kvt_cluster *c, cl_op *op, int res)
{
    if (res == 0) {
        CL_ADD(c, removed, 1);
        return finish(op, 0);
    }
    if (res == -ENOENT)
        return finish(op, KVT_ENOENT);
    if (res == -ESTALE && op->retries++ < STALE_RETRIES)
        return false;
    return finish(op, path_code(c, -res));
}

static const cl_kind remove_kind = {false, false, key_begin, remove_prep, remove_complete};

int kvt__cluster_remove(kvt_cluster *c, kvt_cluster_io *io, size_t n)
{
    int rc = cl_run(c, &remove_kind, io, n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (io[i].status && io[i].status != KVT_ENOENT)
            return io[i].status;
    return 0;
}
