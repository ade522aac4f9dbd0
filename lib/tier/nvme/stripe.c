/* stripe.c — an NVMe tier over several devices: slots striped across them, one tier each. */
#include "tier/nvme/stripe.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "executor.h"
#include "tier/nvme.h"
#include "tier/nvme/file.h"
#include "tier/nvme/xfer.h"

#define WHY_BYTES 240

struct nvme_stripe {
    unsigned n;
    kvt_tier_impl **dev;      /* NULL: out of service since open */
    char **path;              /* one allocation after the pointers */
    char (*why)[WHY_BYTES];   /* why a device is out of service */
    _Atomic bool *failed;     /* out of service since a failed I/O (why[] set first) */
    pthread_mutex_t mu;       /* one writer of why[] at a time */
    kvt__executor *pool;      /* n - 1 threads: the devices' parts of a batch at once */
    unsigned missing;         /* devices out of service since open */
    _Atomic unsigned failures;       /* devices failed since open */
    _Atomic uint64_t rejected;       /* xfers refused: their device out of service */
};

static bool in_service(const struct nvme_stripe *s, unsigned d)
{
    return s->dev[d] && !atomic_load_explicit(&s->failed[d], memory_order_acquire);
}

/* Local slots on device d of n, for a set of total slots: the g < total with g % n == d. */
static uint32_t device_slots(uint32_t total, unsigned n, unsigned d)
{
    return total > d ? (total - d + n - 1) / n : 0;
}

/* Errors that may mean the device is gone (a shrunk or detached device
 * answers writes with ENOSPC). */
static bool device_error(int rc)
{
    return rc == KVT_EIO || rc == KVT_ENOSPC;
}

/* After an I/O error on device d: a device that no longer reads its own
 * superblock is taken out of service; a bad sector alone is not. */
static void check_device(kvt_tier_impl *t, unsigned d)
{
    struct nvme_stripe *s = t->stripe;
    if (!in_service(s, d) || !nvme_probe(s->dev[d]))
        return;
    pthread_mutex_lock(&s->mu);
    if (!atomic_load(&s->failed[d])) {
        snprintf(s->why[d], WHY_BYTES, "an I/O failed and its superblock no longer reads");
        atomic_store_explicit(&s->failed[d], true, memory_order_release);
        atomic_fetch_add(&s->failures, 1);
    }
    pthread_mutex_unlock(&s->mu);
}

static void stripe_free(kvt_tier_impl *t)
{
    struct nvme_stripe *s = t->stripe;
    if (s) {
        kvt__executor_free(s->pool);
        for (unsigned d = 0; d < s->n; d++)
            nvme_device_close(s->dev[d]);
        pthread_mutex_destroy(&s->mu);
        kvt__free(s->dev);
        kvt__free(s->path);
        kvt__free(s->why);
        kvt__free(s->failed);
        kvt__free(s);
    }
    kvt__free(t);
}

/* Errors that take one device out of service instead of failing the open:
 * its path is gone (a drive pulled, a directory unmounted) or it does not
 * read. Everything else (another set's device, another geometry, a lock)
 * is a configuration to fix and fails the open. */
static bool device_missing(int rc)
{
    return rc == KVT_EPATH || rc == KVT_EIO;
}

/* The devices that were there before agree on the set they belong to; a
 * device formatted just now (blank, new, replaced) joins it. With recreate,
 * a device of another set is rebuilt as an empty device of the first
 * known device's set (a new store id: none of its blocks is recovered). */
static int join_set(kvt_tier_impl *t, bool recreate)
{
    struct nvme_stripe *s = t->stripe;
    int known = -1;
    for (unsigned d = 0; d < s->n; d++) {
        kvt_tier_impl *m = s->dev[d];
        if (!m || m->formatted)
            continue;
        if (known < 0) {
            known = (int)d;
        } else if (memcmp(m->geo.set_id, s->dev[known]->geo.set_id, 16)) {
            if (!recreate)
                return kvt__err(KVT_EGEOMETRY, "nvme: %s and %s are devices of different "
                                               "stripe sets; left untouched, set recreate to "
                                               "rebuild the second",
                                s->path[known], s->path[d]);
            nvme_new_store_id(m->geo.store_id);
            m->formatted = true; /* rewritten below with the set's id */
        }
    }
    if (known < 0) {
        for (unsigned d = 0; d < s->n; d++)
            if (!s->dev[d])
                return kvt__err(KVT_EPATH, "nvme: a new stripe set needs all its %u devices; "
                                           "device %u: %s",
                                s->n, d + 1, s->why[d]);
        return 0; /* all new: formatted with one id */
    }
    for (unsigned d = 0; d < s->n; d++) {
        kvt_tier_impl *m = s->dev[d];
        if (!m || !m->formatted || !memcmp(m->geo.set_id, s->dev[known]->geo.set_id, 16))
            continue;
        memcpy(m->geo.set_id, s->dev[known]->geo.set_id, 16);
        int rc = nvme_sb_rewrite(m, s->path[d]);
        if (rc)
            return rc;
    }
    return 0;
}

/* The unit of the kvtier NVMe file or device at path, or 0 (none there,
 * unreadable, not kvtier's). */
static uint32_t existing_unit(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint8_t buf[UNIT];
    uint32_t unit = pread(fd, buf, UNIT, 0) == (ssize_t)UNIT ? nvme_sb_unit(buf) : 0;
    close(fd);
    return unit;
}

int nvme_stripe_open(const kvt_tier_params *p, char **paths, unsigned n, kvt_tier_impl **out)
{
    *out = NULL;
    if (n > NVME_MAX_DEVICES)
        return kvt__err(KVT_EINVAL, "nvme: %u paths; a tier stripes across at most %u", n,
                        NVME_MAX_DEVICES);
    for (unsigned a = 0; a < n; a++)
        for (unsigned b = a + 1; b < n; b++)
            if (!strcmp(paths[a], paths[b]))
                return kvt__err(KVT_EPATH, "nvme: %s is named twice in the path list", paths[a]);
    /* An existing set keeps the unit it was laid out in: its slot count is
     * read in that unit (check_params checked one reading fits). */
    uint32_t total = 0, unit = 0;
    for (unsigned d = 0; d < n && !unit; d++)
        unit = existing_unit(paths[d]);
    nvme_capacity_slots(p->block_bytes, p->capacity, unit, &total);
    if (total < n)
        return kvt__err(KVT_ECAPACITY, "nvme: capacity holds %u slots; %u devices need one "
                                       "each at least", total, n);
    kvt_tier_impl *t = kvt__calloc(1, sizeof *t);
    struct nvme_stripe *s = kvt__calloc(1, sizeof *s);
    size_t path_bytes = 0;
    for (unsigned d = 0; d < n; d++)
        path_bytes += strlen(paths[d]) + 1;
    if (t)
        t->stripe = s;
    if (s) {
        s->n = n;
        pthread_mutex_init(&s->mu, NULL);
        s->dev = kvt__calloc(n, sizeof *s->dev);
        s->path = kvt__malloc(n * sizeof *s->path + path_bytes);
        s->why = kvt__calloc(n, sizeof *s->why);
        s->failed = kvt__calloc(n, sizeof *s->failed);
    }
    if (!t || !s || !s->dev || !s->path || !s->why || !s->failed) {
        if (t)
            stripe_free(t);
        else
            kvt__free(s);
        return kvt__err(KVT_ENOMEM, "nvme: state of a %u-device stripe set", n);
    }
    char *copy = (char *)(s->path + n);
    for (unsigned d = 0; d < n; d++) {
        s->path[d] = copy;
        copy = stpcpy(copy, paths[d]) + 1;
    }
    t->fd = -1;
    t->lock_fd = -1;
    t->geo.block_bytes = p->block_bytes;
    nvme_geo_set_unit(&t->geo, nvme_asked_unit(p)); /* devices may need more */
    t->geo.nslots = total;
    t->geo.stripe_count = n;

    nvme_geometry member = {.stripe_count = n, .stripe_slots = total};
    nvme_new_store_id(member.set_id);
    int rc = 0;
    for (unsigned d = 0; d < n && !rc; d++) {
        member.stripe_index = d;
        member.nslots = device_slots(total, n, d);
        rc = nvme_open_device(p, paths[d], &member, &s->dev[d]);
        if (rc && device_missing(rc)) {
            snprintf(s->why[d], WHY_BYTES, "%s", kvt_last_error());
            s->missing++;
            rc = 0;
        }
    }
    if (!rc && s->missing == n)
        rc = kvt__err(KVT_EPATH, "nvme: none of the %u devices opened; the first: %s", n,
                      s->why[0]);
    if (!rc)
        rc = join_set(t, kvt__tier_opt_int(p, "recreate") != 0);
    if (!rc && kvt__executor_new(&(kvt__executor_opts){.threads = n - 1, .name = "kvt-stripe"},
                                 &s->pool))
        kvt__err_clear(); /* no threads: the caller's thread does every part */
    if (rc) {
        stripe_free(t);
        return rc;
    }
    kvt__err_clear(); /* a missing device's message is in its why[], not the caller's */
    *out = t;
    return 0;
}

void nvme_stripe_close(kvt_tier_impl *t)
{
    stripe_free(t);
}

int nvme_stripe_slot_usable(kvt_tier_impl *t, uint32_t slot)
{
    struct nvme_stripe *s = t->stripe;
    return slot < t->geo.nslots && in_service(s, slot % s->n);
}

/* ------------------------------------------------------------- transfers */

typedef struct part {
    kvt__task task; /* first: the pool hands back the task */
    kvt_tier_impl *dev;
    kvt_xfer *x;
    size_t n;
    kvt_mem_kind mem;
    int dir, rc;
    unsigned d; /* the device */
} part;

static void part_run(kvt__task *task)
{
    part *pt = (part *)task;
    pt->rc = nvme_batch(pt->dev, pt->x, pt->n, pt->mem, pt->dir);
}

static int first_error(kvt_tier_impl *t, const kvt_xfer *x, size_t n, int dir)
{
    struct nvme_stripe *s = t->stripe;
    for (size_t i = 0; i < n; i++) {
        int rc = x[i].status;
        if (!rc)
            continue;
        uint32_t g = x[i].slot;
        if (rc == KVT_EINVAL)
            return kvt__err(rc, "nvme: slot %u out of range (%u slots)", g, t->geo.nslots);
        unsigned d = g % s->n;
        if (!in_service(s, d))
            return kvt__err(rc, "nvme: slot %u is on device %u (%s), out of service: %s", g,
                            d + 1, s->path[d], s->why[d]);
        if (rc == KVT_ECORRUPT)
            return kvt__err(rc, "nvme: slot %u failed verification", g);
        return kvt__err(rc, "nvme: %s of slot %u (device %u, %s) failed: %s",
                        dir == DIR_WRITE ? "write" : "read", g, d + 1, s->path[d],
                        kvt_strerror(rc));
    }
    return 0;
}

int nvme_stripe_batch(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int dir)
{
    struct nvme_stripe *s = t->stripe;
    if (n && !x)
        return kvt__err(KVT_ENULL, "nvme: xfer array is NULL");
    if (!n)
        return 0;
    if (mem != KVT_MEM_HOST) {
        for (size_t i = 0; i < n; i++)
            x[i].status = KVT_EMEMKIND;
        return kvt__err(KVT_EMEMKIND, "nvme: moves host memory only; stage device memory "
                                      "through DRAM");
    }
    unsigned nd = s->n;
    size_t count[NVME_MAX_DEVICES] = {0}, at[NVME_MAX_DEVICES];
    for (size_t i = 0; i < n; i++) {
        x[i].status = 0;
        if (x[i].slot >= t->geo.nslots)
            x[i].status = KVT_EINVAL;
        else
            count[x[i].slot % nd]++;
    }
    /* Each device's xfers, copied with their device's slot numbers. */
    kvt_xfer *local = kvt__malloc(n * sizeof *local);
    size_t *from = kvt__malloc(n * sizeof *from);
    if (!local || !from) {
        kvt__free(local);
        kvt__free(from);
        return kvt__err(KVT_ENOMEM, "nvme: splitting %zu xfers across devices", n);
    }
    size_t sum = 0;
    for (unsigned d = 0; d < nd; d++) {
        at[d] = sum;
        sum += count[d];
    }
    size_t end[NVME_MAX_DEVICES];
    memcpy(end, at, sizeof at[0] * nd);
    for (size_t i = 0; i < n; i++) {
        if (x[i].status)
            continue;
        size_t k = end[x[i].slot % nd]++;
        local[k] = x[i];
        local[k].slot = x[i].slot / nd;
        from[k] = i;
    }
    part parts[NVME_MAX_DEVICES];
    unsigned nparts = 0;
    for (unsigned d = 0; d < nd; d++) {
        if (!count[d])
            continue;
        if (!in_service(s, d)) {
            for (size_t k = at[d]; k < at[d] + count[d]; k++)
                local[k].status = KVT_EIO;
            atomic_fetch_add_explicit(&s->rejected, count[d], memory_order_relaxed);
            continue;
        }
        parts[nparts++] = (part){.task.fn = part_run, .dev = s->dev[d], .x = local + at[d],
                                 .n = count[d], .mem = mem, .dir = dir, .d = d};
    }
    /* Every part but the first to the pool; the first here. A part the
     * pool has not started by then (its threads busy with other batches)
     * is taken back and run here too. */
    kvt__group g;
    kvt__group_init(&g);
    bool queued[NVME_MAX_DEVICES] = {false};
    for (unsigned k = 1; k < nparts; k++)
        queued[k] = s->pool && !kvt__executor_submit(s->pool, &parts[k].task, &g);
    for (unsigned k = 0; k < nparts; k++)
        if (!queued[k] || kvt__executor_cancel(s->pool, &parts[k].task))
            part_run(&parts[k].task);
    kvt__group_wait(&g);
    kvt__group_destroy(&g);
    for (unsigned k = 0; k < nparts; k++)
        for (size_t i = 0; parts[k].rc && i < parts[k].n; i++)
            if (device_error(parts[k].x[i].status)) {
                check_device(t, parts[k].d);
                break;
            }
    for (size_t k = 0; k < sum; k++)
        x[from[k]].status = local[k].status;
    kvt__free(local);
    kvt__free(from);
    return first_error(t, x, n, dir);
}

/* --------------------------------------------------- discard, sync, recover */

int nvme_stripe_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n)
{
    struct nvme_stripe *s = t->stripe;
    if (n && !slots)
        return kvt__err(KVT_ENULL, "nvme: slot array is NULL");
    for (size_t i = 0; i < n; i++)
        if (slots[i] >= t->geo.nslots)
            return kvt__err(KVT_EINVAL, "nvme: slot %u out of range (%u slots)", slots[i],
                            t->geo.nslots);
    if (!n)
        return 0;
    uint32_t *local = kvt__malloc(n * sizeof *local);
    if (!local)
        return kvt__err(KVT_ENOMEM, "nvme: splitting %zu discards across devices", n);
    int rc = 0;
    for (unsigned d = 0; d < s->n; d++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (slots[i] % s->n == d)
                local[k++] = slots[i] / s->n;
        if (!k)
            continue;
        /* A device out of service can't forget its blocks: if it comes back,
         * the next open would recover them. Say so, so the store keeps these
         * slots out of use and kvt_remove reports the failure. */
        if (!in_service(s, d)) {
            if (!rc)
                rc = kvt__err(KVT_EIO, "nvme: device %u of %u is out of service: %zu discard(s) "
                              "not on media", d, s->n, k);
            continue;
        }
        int r = nvme_device_discard(s->dev[d], local, k);
        if (device_error(r))
            check_device(t, d);
        if (r && !rc)
            rc = r;
    }
    kvt__free(local);
    return rc;
}

int nvme_stripe_sync(kvt_tier_impl *t)
{
    struct nvme_stripe *s = t->stripe;
    int rc = 0;
    for (unsigned d = 0; d < s->n; d++) {
        if (!in_service(s, d))
            continue;
        int r = nvme_device_sync(s->dev[d]);
        if (device_error(r))
            check_device(t, d);
        if (r && !rc)
            rc = r;
    }
    return rc;
}

typedef struct remap {
    kvt_recover_fn fn;
    void *user;
    unsigned n, d;
} remap;

static int remap_slot(void *user, uint32_t slot, const kvt_key *key)
{
    remap *r = user;
    return r->fn(r->user, slot * r->n + r->d, key);
}

int nvme_stripe_recover(kvt_tier_impl *t, kvt_recover_fn fn, void *user)
{
    if (!fn)
        return kvt__err(KVT_ENULL, "nvme: recover: fn is NULL");
    struct nvme_stripe *s = t->stripe;
    int rc = 0;
    for (unsigned d = 0; d < s->n && !rc; d++) {
        if (!in_service(s, d))
            continue;
        remap r = {.fn = fn, .user = user, .n = s->n, .d = d};
        rc = nvme_recover(s->dev[d], remap_slot, &r);
    }
    return rc;
}

/* ------------------------------------------------------------------- stats */

/* Counters summed over the devices; settings (queue depth, alignment, ...)
 * the largest any device has. */
typedef struct stat_sum {
    const char *name[48];
    uint64_t v[48];
    unsigned n;
} stat_sum;

static const char *const settings[] = {
    "nvme.queue_depth", "nvme.sqpoll", "nvme.fixed_host", "nvme.fixed_staging",
    "nvme.cloned_buffers", "nvme.fast_checksum", "nvme.dio_mem_align", "nvme.dio_len_align",
    "nvme.slot_bytes", "nvme.unit"};

static void add_stat(const char *name, uint64_t v, void *user)
{
    stat_sum *a = user;
    bool setting = false;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        setting |= !strcmp(name, settings[i]);
    for (unsigned i = 0; i < a->n; i++)
        if (!strcmp(a->name[i], name)) {
            a->v[i] = setting ? (v > a->v[i] ? v : a->v[i]) : a->v[i] + v;
            return;
        }
    if (a->n < sizeof a->v / sizeof a->v[0]) {
        a->name[a->n] = name;
        a->v[a->n++] = v;
    }
}

void nvme_stripe_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    struct nvme_stripe *s = t->stripe;
    stat_sum a = {.n = 0};
    unsigned out = 0;
    uint64_t out_slots = 0;
    for (unsigned d = 0; d < s->n; d++) {
        if (s->dev[d])
            nvme_device_stats(s->dev[d], add_stat, &a);
        if (!in_service(s, d)) {
            out++;
            out_slots += device_slots(t->geo.nslots, s->n, d);
        }
    }
    for (unsigned i = 0; i < a.n; i++)
        fn(a.name[i], strcmp(a.name[i], "nvme.slots") ? a.v[i] : t->geo.nslots, user);
    fn("nvme.devices", s->n, user);
    fn("nvme.devices_degraded", out, user);
    fn("nvme.devices_missing", s->missing, user);
    fn("nvme.devices_failed", atomic_load(&s->failures), user);
    fn("nvme.slots_out_of_service", out_slots, user);
    fn("nvme.degraded_rejects", atomic_load(&s->rejected), user);
}
