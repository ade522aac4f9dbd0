/* file.c — the NVMe tier's file: opening a path, formatting or checking it, recovery. */
#include "tier/nvme/file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "error.h"
#include "killpoint.h"
#include "tier/nvme/ring.h"

/* Opens the path per the rules in docs/nvme-format.md ("Opening a path"). */
int nvme_open_path(kvt_tier_impl *t, const char *path, bool *created)
{
    const int base = O_RDWR | O_CLOEXEC;
    bool symlink = false;
    int fd = open(path, base | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST) {
        fd = open(path, base | O_NOFOLLOW);
        if (fd < 0 && errno == ELOOP) {
            symlink = true;
            fd = open(path, base);
        }
    }
    if (fd < 0) {
        int e = errno;
        switch (e) {
        case EISDIR:
            return kvt__err(KVT_EPATH, "nvme: %s is a directory", path);
        case EACCES:
        case EPERM:
        case EROFS:
        case ETXTBSY:
            return kvt__err_errno(KVT_EPATH, e, "nvme: %s is not writable", path);
        case ENOENT:
        case ENOTDIR:
            return kvt__err_errno(KVT_EPATH, e, "nvme: %s%s", path,
                                  symlink ? " is a dangling symlink" : ": no such directory");
        case ENOSPC:
        case EDQUOT:
            return kvt__err_errno(KVT_ENOSPC, e, "nvme: creating %s", path);
        case EINVAL:
            return kvt__err_errno(KVT_ENODIRECT, e, "nvme: opening %s", path);
        default:
            return kvt__err_errno(KVT_EPATH, e, "nvme: opening %s", path);
        }
    }
    t->fd = fd;
    struct stat st;
    if (fstat(fd, &st))
        return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
    if (S_ISBLK(st.st_mode))
        t->blockdev = true;
    else if (!S_ISREG(st.st_mode))
        return kvt__err(KVT_EPATH, "nvme: %s is neither a regular file nor a block device", path);
    if (symlink && st.st_uid != geteuid())
        return kvt__err(KVT_EPATH,
                        "nvme: %s is a symlink to a file owned by uid %u; a symlink is followed "
                        "only to a file of the calling user (uid %u)",
                        path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (!t->blockdev) {
        /* tmpfs and ramfs accept O_DIRECT (Linux 6.6+) but only emulate it:
         * the bytes stay in RAM and vanish with the machine. */
        struct statfs fs;
        if (fstatfs(fd, &fs) == 0 &&
            ((uint32_t)fs.f_type == (uint32_t)TMPFS_MAGIC ||
             (uint32_t)fs.f_type == (uint32_t)RAMFS_MAGIC))
            return kvt__err(KVT_ENODIRECT,
                            "nvme: %s is on a memory filesystem (tmpfs/ramfs): no direct I/O to "
                            "a device; put it on an NVMe filesystem or use the DRAM tier",
                            path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
        return kvt__err_errno(KVT_ENODIRECT, errno, "nvme: the filesystem of %s refuses O_DIRECT",
                              path);
    return 0;
}

int nvme_probe_alignment(kvt_tier_impl *t, const char *path)
{
    uint32_t mem = 0, len = 0;
    struct statx sx;
    if (statx(t->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN)) {
        if (!sx.stx_dio_offset_align)
            return kvt__err(KVT_ENODIRECT, "nvme: %s does not support direct I/O", path);
        mem = sx.stx_dio_mem_align;
        len = sx.stx_dio_offset_align;
    }
    if (!len && t->blockdev) {
        int lbs = 0;
        if (ioctl(t->fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
            mem = len = (uint32_t)lbs;
    }
    if (!len)
        mem = len = UNIT;
    if (!mem)
        mem = len;
    if (len > UNIT || UNIT % len)
        return kvt__err(KVT_ENOTSUP, "nvme: %s needs %u-byte direct I/O; this format supports "
                                     "devices with logical blocks up to %u bytes",
                        path, len, UNIT);
    t->mem_align = mem;
    t->len_align = len;
    t->hdr_io = (uint32_t)round_up(HDR_BYTES, len);
    return 0;
}

static int sb_write(kvt_tier_impl *t, uint8_t *buf, const char *path)
{
    nvme_sb_encode(&t->geo, buf);
    KVT_KILLPOINT(KVT__KP_META);
    ssize_t w = pwrite(t->fd, buf, UNIT, 0);
    if (w != (ssize_t)UNIT)
        return kvt__err_errno(w < 0 && errno == EINVAL ? KVT_ENODIRECT : KVT_EIO,
                              w < 0 ? errno : 0, "nvme: writing the superblock of %s", path);
    KVT_KILLPOINT(KVT__KP_FLUSH);
    if (fdatasync(t->fd))
        return kvt__err_errno(KVT_EIO, errno, "nvme: fdatasync %s", path);
    return 0;
}

static int format_file(kvt_tier_impl *t, uint8_t *buf, uint64_t size, bool shrink, const char *path)
{
    /* A device that can't do direct I/O in the unit asked for gets its own
     * (at most UNIT: nvme_probe_alignment). Same slots, larger ones. */
    if (t->geo.unit < t->len_align)
        nvme_geo_set_unit(&t->geo, t->len_align);
    uint64_t total = kvt__nvme_file_bytes_in(t->geo.block_bytes, t->geo.nslots, t->geo.unit);
    nvme_new_store_id(t->geo.store_id);
    t->formatted = true;
    if (t->blockdev) {
        if (size < total)
            return kvt__err(KVT_ECAPACITY, "nvme: %s holds %llu bytes; the capacity needs %llu "
                                           "(slots + %u-byte superblock)",
                            path, (unsigned long long)size, (unsigned long long)total,
                            SLOTS_OFF);
    } else if (size < total) {
        /* Preallocated so that writes never find the filesystem full. */
        int r = fallocate(t->fd, 0, 0, (off_t)total);
        if (r && (errno == EOPNOTSUPP || errno == ENOSYS))
            r = ftruncate(t->fd, (off_t)total);
        if (r)
            return kvt__err_errno(errno == ENOSPC || errno == EDQUOT ? KVT_ENOSPC : KVT_EIO,
                                  errno, "nvme: preallocating %llu bytes for %s",
                                  (unsigned long long)total, path);
    } else if (size > total && shrink && ftruncate(t->fd, (off_t)total)) {
        return kvt__err_errno(KVT_EIO, errno, "nvme: truncating %s", path);
    }
    return sb_write(t, buf, path);
}

/* Opens what is on media, or formats a new, blank or (with recreate)
 * incompatible file. A compatible file is kept even with recreate. */
int nvme_load(kvt_tier_impl *t, const char *path, bool recreate, bool created)
{
    uint64_t size;
    if (t->blockdev) {
        if (ioctl(t->fd, BLKGETSIZE64, &size))
            return kvt__err_errno(KVT_ESYS, errno, "nvme: size of %s", path);
    } else {
        struct stat st;
        if (fstat(t->fd, &st))
            return kvt__err_errno(KVT_ESYS, errno, "nvme: fstat %s", path);
        size = (uint64_t)st.st_size;
    }
    uint8_t *buf = kvt__aligned_alloc(UNIT, UNIT);
    if (!buf)
        return kvt__err(KVT_ENOMEM, "nvme: superblock buffer");
    int rc;
    nvme_geometry asked = t->geo; /* nvme_sb_check adopts the file's unit */
    if (created || (!t->blockdev && size == 0)) {
        rc = format_file(t, buf, size, false, path);
    } else if (size < SLOTS_OFF) {
        rc = kvt__err(KVT_ETOOSMALL, "nvme: %s has %llu bytes, less than its %u-byte "
                                     "superblock; left untouched, set recreate to overwrite it",
                      path, (unsigned long long)size, SLOTS_OFF);
    } else {
        ssize_t r = pread(t->fd, buf, UNIT, 0);
        if (r != (ssize_t)UNIT) {
            rc = kvt__err_errno(r < 0 && errno == EINVAL ? KVT_ENODIRECT : KVT_EIO,
                                r < 0 ? errno : 0, "nvme: reading the superblock of %s", path);
            goto out;
        }
        bool blank = true;
        for (unsigned i = 0; i < UNIT && blank; i++)
            blank = buf[i] == 0;
        /* A zeroed device, or a file we never got to format: nothing to lose. */
        rc = blank ? format_file(t, buf, size, false, path)
                   : nvme_sb_check(&t->geo, buf, size, t->geo.stripe_count ? 0 : t->capacity,
                                   path);
        if (!rc && !blank && t->geo.unit < t->len_align)
            rc = kvt__err(KVT_ENOTSUP, "nvme: %s is laid out in %u-byte units; this device "
                                       "needs %u-byte direct I/O; left untouched, set recreate "
                                       "to rebuild it",
                          path, t->geo.unit, t->len_align);
    }
    if (recreate && (rc == KVT_EFORMAT || rc == KVT_EGEOMETRY || rc == KVT_ETOOSMALL ||
                     rc == KVT_ENOTSUP)) {
        t->geo = asked; /* laid out as a new file */
        rc = format_file(t, buf, size, true, path);
    }
out:
    kvt__free(buf);
    return rc;
}

int nvme_sb_rewrite(kvt_tier_impl *t, const char *path)
{
    uint8_t *buf = kvt__aligned_alloc(UNIT, UNIT);
    if (!buf)
        return kvt__err(KVT_ENOMEM, "nvme: superblock buffer");
    int rc = sb_write(t, buf, path);
    kvt__free(buf);
    return rc;
}

int nvme_probe(kvt_tier_impl *t)
{
    uint8_t *buf = kvt__aligned_alloc(UNIT, UNIT);
    if (!buf)
        return 0; /* no memory says nothing about the device */
    ssize_t r = pread(t->fd, buf, UNIT, 0);
    kvt__free(buf);
    return r == (ssize_t)UNIT ? 0 : KVT_EIO;
}

/* Why only block devices: a file's slots are preallocated so that a write
 * never finds the filesystem full, and punching holes in them would undo
 * that (a later write could fail with ENOSPC). A device has no such
 * promise to keep, and an SSD told which blocks are free writes faster and
 * wears less. Why payloads only, one call per slot: a discarded range may
 * read back as anything the device likes, and a header must read back as
 * the zeros just written. */
void nvme_trim_payloads(kvt_tier_impl *t, const uint32_t *slots, size_t n)
{
    uint64_t calls = 0, bytes = 0;
    for (size_t i = 0; i < n && !atomic_load_explicit(&t->no_trim, memory_order_relaxed); i++) {
        uint64_t range[2] = {nvme_slot_offset(&t->geo, slots[i]) + t->geo.unit,
                             t->geo.slot_bytes - t->geo.unit};
        if (ioctl(t->fd, BLKDISCARD, range)) {
            atomic_store_explicit(&t->no_trim, true, memory_order_relaxed);
            break;
        }
        calls++;
        bytes += range[1];
    }
    STAT_ADD(t, trims, calls);
    STAT_ADD(t, trim_bytes, bytes);
}

int nvme_parse_paths(const char *spec, char ***out, unsigned *n)
{
    size_t len = strlen(spec);
    unsigned count = 1;
    for (size_t i = 0; i < len; i++)
        count += spec[i] == ',';
    /* The pointers, then a copy of spec cut at the commas. */
    char **v = kvt__malloc(count * sizeof *v + len + 1);
    if (!v)
        return kvt__err(KVT_ENOMEM, "nvme: list of %u paths", count);
    char *copy = (char *)(v + count);
    memcpy(copy, spec, len + 1);
    unsigned k = 0;
    for (char *p = copy;; p++) {
        char *end = strchr(p, ',');
        if (end)
            *end = 0;
        if (!*p) {
            kvt__free(v);
            return kvt__err(KVT_EPATH, "nvme: path %u of \"%s\" is empty", k + 1, spec);
        }
        v[k++] = p;
        if (!end)
            break;
        p = end;
    }
    *out = v;
    *n = count;
    return 0;
}

/* ---------------------------------------------------------------- recovery */

int nvme_recover(kvt_tier_impl *t, kvt_recover_fn fn, void *user)
{
    if (!t || !fn)
        return kvt__err(KVT_ENULL, "nvme: recover: %s is NULL", t ? "fn" : "tier");
    uint64_t t0 = kvt__clock_ns(CLOCK_MONOTONIC);
    lane *l = nvme_lane_get(t);
    uint32_t *drop = NULL;
    size_t ndrop = 0, capdrop = 0;
    uint64_t kept = 0;
    int rc = 0;
    /* Header reads are small: go as deep as the ring allows, each into a
     * unit of the lane's staging (header units, then bounce buffers; all
     * idle while this lane is ours). */
    size_t units = l->staging_bytes / UNIT - 1;
    unsigned depth = t->sq < units ? t->sq : (unsigned)units;
    uint32_t *slot_of = kvt__calloc(depth, sizeof *slot_of);
    unsigned *free_units = kvt__calloc(depth, sizeof *free_units);
    if (!slot_of || !free_units) {
        rc = kvt__err(KVT_ENOMEM, "nvme: recover: allocating %u entries", depth);
        goto out;
    }
    unsigned nfree = depth, inflight = 0;
    for (unsigned i = 0; i < depth; i++)
        free_units[i] = i;
    uint32_t next = 0;
    while (next < t->geo.nslots || inflight) {
        while (next < t->geo.nslots && nfree) {
            unsigned u = free_units[--nfree];
            slot_of[u] = next;
            nvme_prep_rw(l, DIR_READ, l->staging + (size_t)UNIT * (1 + u), t->hdr_io,
                    nvme_slot_offset(&t->geo, next), l->staging_idx,
                    (void *)(uintptr_t)u);
            next++;
            inflight++;
        }
        nvme_submit_wait(l);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            unsigned u = (unsigned)(uintptr_t)io_uring_cqe_get_data(cqe);
            uint32_t slot = slot_of[u];
            seen++;
            if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
                nvme_prep_rw(l, DIR_READ, l->staging + (size_t)UNIT * (1 + u), t->hdr_io,
                        nvme_slot_offset(&t->geo, slot), l->staging_idx,
                        (void *)(uintptr_t)u);
                continue; /* stays in flight */
            }
            inflight--;
            free_units[nfree++] = u;
            kvt_key key;
            if (cqe->res != (int)t->hdr_io) {
                STAT_ADD(t, io_errors, 1); /* unreadable header: the slot is lost, not fatal */
                continue;
            }
            if (!nvme_hdr_valid(&t->geo, l->staging + (size_t)UNIT * (1 + u), slot, &key))
                continue;
            if (!fn(user, slot, &key)) {
                kept++;
                continue;
            }
            if (ndrop == capdrop) {
                size_t cap = capdrop ? capdrop * 2 : 64;
                uint32_t *d = kvt__realloc(drop, cap * sizeof *d);
                if (!d) {
                    rc = kvt__err(KVT_ENOMEM, "nvme: recover: list of dropped slots");
                    continue;
                }
                drop = d;
                capdrop = cap;
            }
            drop[ndrop++] = slot;
        }
        io_uring_cq_advance(&l->ring, seen);
    }
    if (ndrop) {
        /* The visitor gave these slots up (duplicates, unwanted): make sure
         * they are not found again at the next open. */
        int zr = nvme_zero_headers(t, l, drop, ndrop);
        if (!rc)
            rc = zr;
    }
out:
    nvme_lane_put(t, l);
    kvt__free(drop);
    kvt__free(slot_of);
    kvt__free(free_units);
    atomic_store(&t->st.recovered, kept);
    atomic_store(&t->st.recovery_ms, (kvt__clock_ns(CLOCK_MONOTONIC) - t0) / 1000000u);
    return rc;
}
