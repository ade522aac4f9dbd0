/* ops.c — the NVMe tier's ops table: open, close, stats; ties format, ring, hashing, file. */
#include "kvt_build_config.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "error.h"
#include "jobpool.h"
#include "killpoint.h"
#include "tier/faulty.h"
#include "tier/nvme.h"
#include "tier/nvme/file.h"
#include "tier/nvme/format.h"
#include "tier/nvme/ring.h"
#include "tier/nvme/state.h"
#include "tier/nvme/stripe.h"
#include "tier/nvme/verify.h"
#include "tier/nvme/xfer.h"
#include "tier/tier.h"

#define DEFAULT_QD 64
#define MAX_QD 4096

static void tier_free(kvt_tier_impl *t)
{
    /* Before the lanes: a hashing thread may still write a lane's eventfd
     * just after it marked its last op verified. */
    kvt__jobpool_free(t->hashers);
    nvme_lock_unlist(t); /* a fork from now on must not touch the rings */
    nvme_lanes_free(t);
    /* After the rings: nothing of ours is in flight once the lock goes. */
    nvme_lock_release(t);
    if (t->fd >= 0)
        close(t->fd);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    kvt__free(t);
}

void nvme_device_close(kvt_tier_impl *t)
{
    if (!t)
        return;
    KVT_KILLPOINT(KVT__KP_FLUSH);
    fdatasync(t->fd); /* close() has nobody to report to; kvt__nvme_sync() does */
    tier_free(t);
}

static int nvme_write(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    if (t && t->stripe)
        return nvme_stripe_batch(t, x, n, mem, DIR_WRITE);
    return nvme_batch(t, x, n, mem, DIR_WRITE);
}

static int nvme_read(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    if (t && t->stripe)
        return nvme_stripe_batch(t, x, n, mem, DIR_READ);
    return nvme_batch(t, x, n, mem, DIR_READ);
}

static int nvme_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n)
{
    if (t && t->stripe)
        return nvme_stripe_discard(t, slots, n);
    return nvme_device_discard(t, slots, n);
}

/* One batch of header writes, qd at a time, for all n slots; then, on a
 * block device, the payloads are handed back to it (file.c says why files
 * keep theirs). */
int nvme_device_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n)
{
    if (!t || (n && !slots))
        return kvt__err(KVT_ENULL, "nvme: %s is NULL", t ? "slot array" : "tier");
    for (size_t i = 0; i < n; i++)
        if (slots[i] >= t->geo.nslots)
            return kvt__err(KVT_EINVAL, "nvme: slot %u out of range (%u slots)", slots[i],
                            t->geo.nslots);
    if (!n)
        return 0;
    lane *l = nvme_lane_get(t);
    int rc = nvme_zero_headers(t, l, slots, n);
    nvme_lane_put(t, l);
    if (!rc) {
        STAT_ADD(t, discards, n);
        STAT_ADD(t, discard_batches, 1);
        if (t->blockdev)
            nvme_trim_payloads(t, slots, n);
    }
    return rc;
}

uint32_t nvme_asked_unit(const kvt_tier_params *p)
{
    int64_t u = kvt__tier_opt_int(p, "unit");
    return u ? (uint32_t)u : kvt__nvme_unit(p->block_bytes);
}

/* The parameters every device of the tier shares: 0 or an error. */
static int check_params(const kvt_tier_params *p)
{
    const char *path = kvt__tier_opt_str(p, "path");
    int queue_depth = (int)kvt__tier_opt_int(p, "queue_depth");
    if (!path || !*path)
        return kvt__err(KVT_EPATH, "nvme: no path configured");
    if (!p->block_bytes || p->block_bytes > (1ull << 30))
        return kvt__err(KVT_ESIZE, "nvme: block_bytes %llu outside 1 .. 1 GiB",
                        (unsigned long long)p->block_bytes);
    uint32_t frags = p->frags ? p->frags : 1;
    if (p->block_bytes % frags)
        return kvt__err(KVT_EFRAGS, "nvme: %u fragments do not divide %llu bytes", frags,
                        (unsigned long long)p->block_bytes);
    if (queue_depth < 0 || queue_depth > MAX_QD)
        return kvt__err(KVT_EINVAL, "nvme: queue depth %d outside 0 (default %d) .. %d",
                        queue_depth, DEFAULT_QD, MAX_QD);
    int64_t want_unit = kvt__tier_opt_int(p, "unit");
    if (want_unit && (want_unit < KVT__NVME_SMALL_UNIT || want_unit > UNIT ||
                      (want_unit & (want_unit - 1))))
        return kvt__err(KVT_EINVAL, "nvme: unit %lld is not 0 (by block size), 512, 1024, 2048 "
                                    "or 4096", (long long)want_unit);
    uint64_t slot = kvt__nvme_slot_bytes(p->block_bytes);
    uint32_t unit = kvt__nvme_unit(p->block_bytes), nslots;
    if (nvme_capacity_slots(p->block_bytes, p->capacity, 0, &nslots))
        return kvt__err(KVT_ECAPACITY,
                        "nvme: capacity %llu is not a whole number of %llu-byte slots (a slot is "
                        "a %u-byte header plus the block rounded up to %u bytes): use N * %llu",
                        (unsigned long long)p->capacity, (unsigned long long)slot, unit, unit,
                        (unsigned long long)slot);
    if (p->faults && *p->faults) {
        /* Faults come from the wrapper over the opened tier (faulty.h); a
         * spec here is refused as a bad one always was, before any file. */
        int rc = kvt__faulty_check(p->faults);
        return rc ? rc
                  : kvt__err(KVT_EINVAL, "nvme: a fault spec is applied by the fault wrapper "
                                         "(kvt__faulty_wrap), not by the tier");
    }
    if ((p->host_region == NULL) != (p->host_region_bytes == 0))
        return kvt__err(KVT_EINVAL, "nvme: host_region and host_region_bytes disagree");
    return 0;
}

int nvme_open_device(const kvt_tier_params *p, const char *path, const nvme_geometry *stripe,
                     kvt_tier_impl **out)
{
    *out = NULL;
    kvt_tier_impl *t = kvt__calloc(1, sizeof *t);
    if (!t)
        return kvt__err(KVT_ENOMEM, "nvme: tier state");
    t->fd = -1;
    t->lock_fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->geo.block_bytes = p->block_bytes;
    t->geo.block_tokens = p->block_tokens;
    t->geo.key_mode = p->key_mode;
    t->geo.frags = p->frags ? p->frags : 1;
    nvme_geo_set_unit(&t->geo, nvme_asked_unit(p));
    nvme_capacity_slots(p->block_bytes, p->capacity, 0, &t->geo.nslots); /* checked by check_params */
    t->capacity = p->capacity;
    if (stripe) {
        t->geo.nslots = stripe->nslots;
        t->geo.stripe_index = stripe->stripe_index;
        t->geo.stripe_count = stripe->stripe_count;
        t->geo.stripe_slots = stripe->stripe_slots;
        memcpy(t->geo.set_id, stripe->set_id, 16);
    }
    int queue_depth = (int)kvt__tier_opt_int(p, "queue_depth");
    t->qd = queue_depth ? (unsigned)queue_depth : DEFAULT_QD;
    t->sq = 2 * t->qd;
    t->host_base = p->host_region;
    t->host_bytes = p->host_region_bytes;
    atomic_init(&t->seq, kvt__clock_ns(CLOCK_REALTIME));
    nvme_checksum_init();

    bool created = false;
    int rc = nvme_open_path(t, path, &created);
    if (!rc)
        rc = nvme_lock_file(t, path);
    if (!rc)
        rc = nvme_probe_alignment(t, path);
    if (!rc)
        rc = nvme_load(t, path, kvt__tier_opt_int(p, "recreate") != 0, created);
    if (!rc && t->geo.block_bytes >= OFFLOAD_MIN) {
        /* One core is the ring's; the others may hash (at most MAX_HASHERS).
         * No pool (one CPU, or threads refused): the ring hashes. */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned k = cpus > 1 ? (unsigned)(cpus - 1) : 0;
        t->hashers = kvt__jobpool_new(k < MAX_HASHERS ? k : MAX_HASHERS);
    }
    if (!rc)
        rc = nvme_lanes_setup(t, kvt__tier_opt_int(p, "sqpoll") != 0);
    if (rc) {
        /* A file we created is ours to remove, unless another store raced
         * in and holds it. */
        if (created && (t->locked || rc != KVT_ELOCKED))
            unlink(path);
        tier_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int nvme_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    if (!p || !out || !nslots)
        return kvt__err(KVT_ENULL, "nvme: open: NULL argument");
    *out = NULL;
    int rc = check_params(p);
    if (rc)
        return rc;
    char **paths;
    unsigned n;
    if ((rc = nvme_parse_paths(kvt__tier_opt_str(p, "path"), &paths, &n)))
        return rc;
    kvt_tier_impl *t;
    rc = n == 1 ? nvme_open_device(p, paths[0], NULL, &t) : nvme_stripe_open(p, paths, n, &t);
    kvt__free(paths);
    if (rc)
        return rc;
    *out = t;
    *nslots = t->geo.nslots;
    return 0;
}

int kvt__nvme_sync(kvt_tier_impl *t)
{
    if (!t)
        return kvt__err(KVT_ENULL, "nvme: tier is NULL");
    return t->stripe ? nvme_stripe_sync(t) : nvme_device_sync(t);
}

int nvme_device_sync(kvt_tier_impl *t)
{
    STAT_ADD(t, syncs, 1);
    KVT_KILLPOINT(KVT__KP_FLUSH);
    if (fdatasync(t->fd))
        return kvt__err_errno(KVT_EIO, errno, "nvme: fdatasync");
    return 0;
}

static void nvme_close(kvt_tier_impl *t)
{
    if (t && t->stripe)
        nvme_stripe_close(t);
    else
        nvme_device_close(t);
}

static void nvme_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    if (!t || !fn)
        return;
    if (t->stripe)
        nvme_stripe_stats(t, fn, user);
    else
        nvme_device_stats(t, fn, user);
}

static int nvme_recover_any(kvt_tier_impl *t, kvt_recover_fn fn, void *user)
{
    if (t && t->stripe)
        return nvme_stripe_recover(t, fn, user);
    return nvme_recover(t, fn, user);
}

static int nvme_slot_usable(kvt_tier_impl *t, uint32_t slot)
{
    return t && t->stripe ? nvme_stripe_slot_usable(t, slot) : 1;
}

void nvme_device_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
#define S(name, f) fn("nvme." name, atomic_load_explicit(&t->st.f, memory_order_relaxed), user)
    S("bytes_written", bytes_written);
    S("bytes_read", bytes_read);
    S("reads", reads);
    S("writes", writes);
    S("corrupt", corrupt);
    S("corrupt_header", corrupt_header);
    S("corrupt_payload", corrupt_payload);
    S("io_errors", io_errors);
    S("resubmits", resubmits);
    S("staged", staged);
    S("vectored", vectored);
    S("discards", discards);
    S("discard_batches", discard_batches);
    S("recovered", recovered);
    S("recovery_ms", recovery_ms);
    S("syncs", syncs);
    S("hashed_off_ring", hashed_off_ring);
    S("verified_off_ring", verified_off_ring);
    if (t->blockdev) {
        S("trims", trims);
        S("trim_bytes", trim_bytes);
    }
#undef S
    fn("nvme.slots", t->geo.nslots, user);
    fn("nvme.slot_bytes", t->geo.slot_bytes, user);
    fn("nvme.unit", t->geo.unit, user);
    fn("nvme.queue_depth", t->qd, user);
    fn("nvme.rings", t->nlanes, user);
    fn("nvme.sqpoll", t->sqpoll, user);
    fn("nvme.fixed_host", t->fixed_host, user);
    fn("nvme.fixed_staging", t->fixed_staging, user);
    fn("nvme.cloned_buffers", t->cloned, user);
    fn("nvme.fast_checksum", nvme_checksum_is_fast(), user);
    fn("nvme.dio_mem_align", t->mem_align, user);
    fn("nvme.dio_len_align", t->len_align, user);
}

static int nvme_slot_bytes(uint64_t block_bytes, uint64_t *out)
{
    *out = kvt__nvme_slot_bytes(block_bytes);
    return 0;
}

static const kvt_tier_opt_spec nvme_options[] = {
    {"path", KVT_OPTTYPE_STR, 0, 0, 0, KVT_EPATH,
     "file or block device (required); several, comma-separated, stripe the tier across them"},
    {"queue_depth", KVT_OPTTYPE_INT, 1, MAX_QD, DEFAULT_QD, 0, "io_uring queue depth"},
    {"sqpoll", KVT_OPTTYPE_INT, 0, 1, 0, 0, "1: a kernel submission polling thread"},
    {"recreate", KVT_OPTTYPE_INT, 0, 1, 0, 0, "1: overwrite a file of another format/geometry"},
    {"unit", KVT_OPTTYPE_INT, 0, UNIT, 0, 0,
     "layout unit of a new file: 0 (512 below 256 KiB blocks, else 4096), 512 .. 4096; 4096 "
     "writes format version 1, which builds before version 3 read"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

const kvt_tier_ops kvt__tier_nvme = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "nvme",
    .caps = KVT_TCAP_PERSISTENT | KVT_TCAP_VERIFIES,
    .options = nvme_options,
    .slot_bytes = nvme_slot_bytes,
    .open = nvme_open,
    .close = nvme_close,
    .flush = kvt__nvme_sync,
    .write = nvme_write,
    .read = nvme_read,
    .discard = nvme_discard,
    .slot_ptr = NULL,
    .recover = nvme_recover_any,
    .stats = nvme_stats,
    .slot_usable = nvme_slot_usable,
};
