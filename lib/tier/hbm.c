/* hbm.c — the HBM tier: one cudaMalloc arena of slots on a chosen device; KVT_ENODEV where there is none. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cuda.h"
#include "error.h"
#include "tier/tier.h"
#include "tier/xfer.h"

/* Like every tier, HBM moves bytes between its slots and memory it is
 * handed; the copies themselves (copy engines, batch memcpy or the
 * gather/scatter kernel, chosen per fragment size) are lib/cuda.h's. Caller
 * GPU memory on the arena's device moves device to device; host memory (the
 * DRAM arena on demotion and promotion, or a caller's host buffers) across
 * PCIe. Every call returns when its bytes are in place. */

/* Ops per batch that need no allocation. */
#define STACK_OPS 128

struct kvt_tier_impl {
    int device;
    char *arena; /* device memory, nslots * block_bytes */
    size_t block_bytes;
    uint32_t nslots;
    kvt__cuda_counters ctr;
    _Atomic uint64_t bytes_written;
    _Atomic uint64_t bytes_read;
};

static void hbm_close(kvt_tier_impl *t)
{
    if (!t)
        return;
    kvt__cuda_free(t->device, t->arena);
    kvt__free(t);
}

static int hbm_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    if (!p || !out || !nslots)
        return kvt__err(KVT_ENULL, "hbm tier open: %s is NULL",
                        !p ? "params" : !out ? "out" : "nslots");
    *out = NULL;
    int device = (int)kvt__tier_opt_int(p, "device");
    /* Unavailable before invalid: the store opens without this tier on a
     * machine without a GPU, whatever the rest of its configuration. */
    if (kvt__cuda_load())
        return kvt__err(KVT_ENODEV, "hbm tier: %s", kvt__cuda_why());
    if (device < 0 || device >= kvt__cuda_device_count())
        return kvt__err(KVT_ENODEV, "hbm tier: CUDA device %d does not exist (%d visible)",
                        device, kvt__cuda_device_count());
    if (p->block_bytes == 0)
        return kvt__err(KVT_ESIZE, "hbm tier: block_bytes is 0");
    if (p->capacity < p->block_bytes)
        return kvt__err(KVT_ECAPACITY,
                        "hbm tier: capacity %llu bytes is less than one block of %llu",
                        (unsigned long long)p->capacity, (unsigned long long)p->block_bytes);
    uint64_t slots = p->capacity / p->block_bytes;
    if (slots > UINT32_MAX || slots * p->block_bytes > SIZE_MAX)
        return kvt__err(KVT_ECAPACITY, "hbm tier: %llu slots are too many",
                        (unsigned long long)slots);

    kvt_tier_impl *t = kvt__calloc(1, sizeof *t);
    if (!t)
        return kvt__err(KVT_ENOMEM, "hbm tier: state");
    t->device = device;
    t->block_bytes = (size_t)p->block_bytes;
    t->nslots = (uint32_t)slots;
    /* One allocation: slots are plain offsets, and nothing is allocated or
     * freed while engines' streams may be waiting on the library (cudaFree
     * synchronizes the device). */
    int rc = kvt__cuda_malloc(t->device, (size_t)slots * t->block_bytes, (void **)&t->arena);
    if (rc) {
        kvt__free(t);
        return rc; /* the message names the allocation and the device */
    }
    /* Demotion to and promotion from DRAM go through the DRAM arena: pin
     * it now (in the background) so those copies run at PCIe speed. */
    kvt__cuda_region_pin_at(p->host_region);
    kvt__err_clear();
    *out = t;
    *nslots = t->nslots;
    return 0;
}

/* Both directions: every fragment of every valid xfer in one batch. */
static int hbm_move(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int to_slots)
{
    const char *what = to_slots ? "write" : "read";
    if (!t || (n && !x))
        return kvt__err(KVT_ENULL, "hbm tier %s: %s is NULL", what, t ? "xfers" : "tier");
    if (mem != KVT_MEM_HOST && mem != KVT_MEM_CUDA) {
        for (size_t i = 0; i < n; i++)
            x[i].status = KVT_EMEMKIND;
        return kvt__err(KVT_EMEMKIND, "hbm tier %s: memory kind %d", what, (int)mem);
    }

    int first = 0;
    size_t first_at = 0, want = 0;
    const void *probe = NULL;
    for (size_t i = 0; i < n; i++) {
        x[i].status = kvt__xfer_check(&x[i], t->block_bytes, t->nslots);
        if (x[i].status == 0) {
            want += x[i].nfrags;
            if (!probe)
                probe = x[i].frags[0];
        } else if (!first) {
            first = x[i].status;
            first_at = i;
        }
    }
    if (!want)
        return first ? kvt__err(first, "hbm tier %s: xfer %zu", what, first_at) : 0;

    /* Caller memory on this device moves with the kernel too; on another
     * device (peer), only by the copy engines. */
    int same = 0;
    if (mem == KVT_MEM_CUDA) {
        int dev;
        int rc = kvt__cuda_ptr_device(probe, &dev);
        if (rc) {
            for (size_t i = 0; i < n; i++)
                if (!x[i].status)
                    x[i].status = rc;
            return rc;
        }
        same = dev == t->device;
    }

    kvt__copy_op stack[STACK_OPS], *ops = stack;
    if (want > STACK_OPS && !(ops = kvt__malloc(want * sizeof *ops))) {
        for (size_t i = 0; i < n; i++)
            if (!x[i].status)
                x[i].status = KVT_ENOMEM;
        return kvt__err(KVT_ENOMEM, "hbm tier %s: %zu fragments", what, want);
    }
    size_t k = 0;
    uint64_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        if (x[i].status)
            continue;
        size_t frag = t->block_bytes / x[i].nfrags;
        char *slot = t->arena + (size_t)x[i].slot * t->block_bytes;
        for (uint32_t f = 0; f < x[i].nfrags; f++) {
            char *at = slot + (size_t)f * frag;
            ops[k++] = to_slots ? (kvt__copy_op){at, x[i].frags[f], frag}
                                : (kvt__copy_op){x[i].frags[f], at, frag};
        }
        moved += t->block_bytes;
    }
    kvt__cuda_dir dir = mem == KVT_MEM_CUDA ? KVT__CUDA_D2D
                        : to_slots          ? KVT__CUDA_H2D
                                            : KVT__CUDA_D2H;
    int rc = kvt__cuda_copy(t->device, dir, same, ops, k, &t->ctr);
    if (ops != stack)
        kvt__free(ops);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            if (!x[i].status)
                x[i].status = KVT_EIO;
        return KVT_EIO; /* the message is the CUDA error */
    }
    atomic_fetch_add_explicit(to_slots ? &t->bytes_written : &t->bytes_read, moved,
                              memory_order_relaxed);
    if (first)
        return kvt__err(first, "hbm tier %s: xfer %zu (slot %u of %u, %u fragments)", what,
                        first_at, x[first_at].slot, t->nslots, x[first_at].nfrags);
    return 0;
}

static int hbm_write(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return hbm_move(t, x, n, mem, 1);
}

static int hbm_read(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return hbm_move(t, x, n, mem, 0);
}

static void *hbm_slot_ptr(kvt_tier_impl *t, uint32_t slot)
{
    if (!t || slot >= t->nslots)
        return NULL;
    return t->arena + (size_t)slot * t->block_bytes;
}

static void hbm_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    if (!t || !fn)
        return;
    fn("hbm.device", (uint64_t)t->device, user);
    fn("hbm.slots", t->nslots, user);
    fn("hbm.arena_bytes", (uint64_t)t->nslots * t->block_bytes, user);
    fn("hbm.bytes_written", atomic_load_explicit(&t->bytes_written, memory_order_relaxed), user);
    fn("hbm.bytes_read", atomic_load_explicit(&t->bytes_read, memory_order_relaxed), user);
    kvt__cuda_counters_visit(&t->ctr, "hbm", fn, user);
}

static const kvt_tier_opt_spec hbm_options[] = {
    {"device", KVT_OPTTYPE_INT, 0, 1023, 0, 0, "CUDA device ordinal"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

const kvt_tier_ops kvt__tier_hbm = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "hbm",
    .caps = KVT_TCAP_DEVICE_PTR | KVT_TCAP_CUDA_MEM | KVT_TCAP_OPTIONAL,
    .options = hbm_options,
    .open = hbm_open,
    .close = hbm_close,
    .write = hbm_write,
    .read = hbm_read,
    .discard = NULL,
    .slot_ptr = hbm_slot_ptr,
    .recover = NULL,
    .stats = hbm_stats,
};
