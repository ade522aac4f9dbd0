/* staged.c — a tier wrapper: device memory for a tier that takes host memory only, bounced through pinned staging. */
#include "tier/staged.h"

#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "cuda.h"
#include "error.h"
#include "tier/xfer.h"

/*
 * The store hands every tier KVT_MEM_CUDA memory alike; a tier without
 * KVT_TCAP_CUDA_MEM (NVMe) is wrapped at open, and the wrapper moves device
 * fragments into a lane's pinned staging and calls the inner tier with host
 * memory (and the read twin). The staging has two halves that take turns:
 * while the inner tier writes (reads) one, the GPU fills (drains) the
 * other. Host memory and every other operation go straight to the inner
 * tier. The flow is one way: wrapper -> inner tier, wrapper -> CUDA layer;
 * the CUDA layer never calls a tier.
 */

struct kvt_tier_impl {
    kvt_tier_ops ops; /* the inner tier's, with this file's functions in place */
    kvt_tier_handle inner;
    uint64_t block_bytes;
};

static int first_status(const kvt_xfer *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i].status)
            return x[i].status;
    return 0;
}

/* Pieces between a block's device fragments and its contiguous copy at
 * `staged` (to_staging: device -> staging). */
static size_t block_ops(const kvt_xfer *x, uint64_t block_bytes, char *staged, int to_staging,
                        kvt__copy_op *ops)
{
    size_t frag = block_bytes / x->nfrags;
    for (uint32_t f = 0; f < x->nfrags; f++) {
        char *s = staged + (size_t)f * frag;
        ops[f] = to_staging ? (kvt__copy_op){s, x->frags[f], frag}
                            : (kvt__copy_op){x->frags[f], s, frag};
    }
    return x->nfrags;
}

/* Blocks larger than a staging half: one at a time through pageable
 * memory, rare enough (blocks over 32 MiB) not to need pinning. */
static void bounce_pageable(kvt_tier_impl *w, kvt__cuda_lane *l, kvt_xfer *x, size_t n,
                            uint32_t maxf, int write)
{
    const kvt_tier_handle *in = &w->inner;
    void *buf = NULL;
    kvt__copy_op *cops = kvt__malloc(maxf * sizeof *cops);
    if (!cops || kvt__posix_memalign(&buf, 4096, w->block_bytes)) {
        for (size_t i = 0; i < n; i++)
            if (!x[i].status)
                x[i].status = KVT_ENOMEM;
        kvt__free(cops);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (x[i].status)
            continue;
        size_t k = block_ops(&x[i], w->block_bytes, buf, write, cops);
        kvt_xfer one = x[i];
        void *p = buf;
        one.nfrags = 1;
        one.frags = &p;
        if (!write) {
            in->ops->read(in->impl, &one, 1, KVT_MEM_HOST);
            if ((x[i].status = one.status) != 0)
                continue;
        }
        if (kvt__cuda_stage_queue(l, 0, write ? KVT__CUDA_D2H : KVT__CUDA_H2D, cops, k) ||
            kvt__cuda_stage_sync(l)) {
            x[i].status = KVT_EIO;
            continue;
        }
        if (write) {
            in->ops->write(in->impl, &one, 1, KVT_MEM_HOST);
            x[i].status = one.status;
        }
    }
    kvt__free(cops);
    kvt__free(buf);
}

/* A bounce in progress: chunks of up to `per` blocks take turns in the two
 * halves of the lane's staging. Half h holds cnt[h] blocks, staged xfers
 * sx[h * per ...] for the caller's xfers orig[h * per ...]. */
typedef struct bounce_run {
    kvt_tier_impl *w;
    kvt_xfer *x;
    size_t n;
    uint64_t block_bytes;
    int write;
    kvt__cuda_lane *l;
    char *staging;
    size_t half, per;
    kvt_xfer *sx;
    void **sp;
    size_t *orig;
    kvt__copy_op *cops;
    size_t next; /* the caller's next xfer to stage */
    size_t cnt[2];
    int queued[2]; /* half h has GPU copies queued and marked */
} bounce_run;

/* Takes the next chunk into half h; for a write, queues its device ->
 * staging copies. */
static void stage(bounce_run *b, int h)
{
    size_t k = 0, nops = 0;
    while (b->next < b->n && k < b->per) {
        size_t i = b->next++;
        if (b->x[i].status)
            continue;
        size_t at = (size_t)h * b->per + k++;
        char *mem = b->staging + (size_t)h * b->half + (at - (size_t)h * b->per) * b->block_bytes;
        b->sp[at] = mem;
        b->sx[at] = b->x[i];
        b->sx[at].nfrags = 1;
        b->sx[at].frags = &b->sp[at];
        b->sx[at].status = 0;
        b->orig[at] = i;
        if (b->write)
            nops += block_ops(&b->x[i], b->block_bytes, mem, 1, b->cops + nops);
    }
    b->cnt[h] = k;
    b->queued[h] = 0;
    if (b->write && nops)
        b->queued[h] = kvt__cuda_stage_queue(b->l, h, KVT__CUDA_D2H, b->cops, nops) == 0;
}

/* Marks the caller's xfers of half h failed (those still fine, or all). */
static void half_failed(bounce_run *b, int h, int all)
{
    for (size_t k = 0; k < b->cnt[h]; k++) {
        kvt_xfer *x = &b->x[b->orig[(size_t)h * b->per + k]];
        if (all || !x->status)
            x->status = KVT_EIO;
    }
}

static void bounce_write(bounce_run *b)
{
    const kvt_tier_handle *in = &b->w->inner;
    int h = 0;
    stage(b, 0);
    while (b->cnt[h]) {
        stage(b, h ^ 1); /* the GPU fills the other half meanwhile */
        if (!b->queued[h] || kvt__cuda_stage_wait(b->l, h)) {
            half_failed(b, h, 1);
        } else {
            in->ops->write(in->impl, &b->sx[(size_t)h * b->per], b->cnt[h], KVT_MEM_HOST);
            for (size_t k = 0; k < b->cnt[h]; k++)
                b->x[b->orig[(size_t)h * b->per + k]].status = b->sx[(size_t)h * b->per + k].status;
        }
        h ^= 1;
    }
}

static void bounce_read(bounce_run *b)
{
    const kvt_tier_handle *in = &b->w->inner;
    int h = 0;
    for (;;) {
        /* The half's previous copies to the device must be done before the
         * tier reads into it again. */
        if (b->queued[h] && kvt__cuda_stage_wait(b->l, h))
            half_failed(b, h, 0);
        stage(b, h);
        if (!b->cnt[h])
            break;
        kvt_xfer *sx = &b->sx[(size_t)h * b->per];
        in->ops->read(in->impl, sx, b->cnt[h], KVT_MEM_HOST);
        size_t nops = 0;
        for (size_t k = 0; k < b->cnt[h]; k++) {
            kvt_xfer *x = &b->x[b->orig[(size_t)h * b->per + k]];
            if ((x->status = sx[k].status) == 0)
                nops += block_ops(x, b->block_bytes, b->sp[(size_t)h * b->per + k], 0,
                                  b->cops + nops);
        }
        b->queued[h] = !nops || kvt__cuda_stage_queue(b->l, h, KVT__CUDA_H2D, b->cops, nops) == 0;
        if (!b->queued[h])
            half_failed(b, h, 0);
        h ^= 1;
    }
    /* The other half's copies are the last ones in flight. */
    if (b->queued[h ^ 1] && kvt__cuda_stage_sync(b->l))
        half_failed(b, h ^ 1, 0);
}

static int all_status(kvt_xfer *x, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        x[i].status = code;
    return n ? kvt__err(code, "device memory needs a CUDA build of kvtier") : 0;
}

/* Device fragments <-> the inner tier, through a lane's pinned staging. */
static int bounce(kvt_tier_impl *w, kvt_xfer *x, size_t n, int write)
{
    if (!KVT_HAVE_CUDA)
        return all_status(x, n, KVT_EMEMKIND);
    int dev = -1;
    uint32_t maxf = 1;
    for (size_t i = 0; i < n; i++) {
        x[i].status = kvt__xfer_check_frags(&x[i], w->block_bytes);
        if (x[i].status)
            continue;
        if (x[i].nfrags > maxf)
            maxf = x[i].nfrags;
        if (dev < 0) {
            int rc = kvt__cuda_ptr_device(x[i].frags[0], &dev);
            if (rc) {
                for (size_t j = 0; j < n; j++)
                    x[j].status = rc;
                return rc;
            }
        }
    }
    if (dev < 0)
        return first_status(x, n) ? kvt__err(first_status(x, n), "bounce: no valid xfer") : 0;

    bounce_run b = {.w = w, .x = x, .n = n, .block_bytes = w->block_bytes, .write = write,
                    .half = KVT_CUDA_STAGING_BYTES / 2};
    int rc = kvt__cuda_stage_begin(dev, &b.l);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            if (!x[i].status)
                x[i].status = rc;
        return rc;
    }
    b.staging = kvt__cuda_stage_mem(b.l);
    b.per = b.staging ? b.half / b.block_bytes : 0;
    if (b.per) {
        b.sx = kvt__calloc(2 * b.per, sizeof *b.sx);
        b.sp = kvt__calloc(2 * b.per, sizeof *b.sp);
        b.orig = kvt__calloc(2 * b.per, sizeof *b.orig);
        b.cops = kvt__malloc(b.per * maxf * sizeof *b.cops);
    }
    if (!b.per)
        bounce_pageable(w, b.l, x, n, maxf, write);
    else if (!b.sx || !b.sp || !b.orig || !b.cops)
        for (size_t i = 0; i < n; i++)
            x[i].status = x[i].status ? x[i].status : KVT_ENOMEM;
    else if (write)
        bounce_write(&b);
    else
        bounce_read(&b);
    kvt__cuda_stage_end(b.l); /* waits: nothing of this call may still touch the staging */
    kvt__free(b.sx);
    kvt__free(b.sp);
    kvt__free(b.orig);
    kvt__free(b.cops);
    rc = first_status(x, n);
    return rc ? kvt__err(rc, "device memory %s the %s tier through pinned staging: %s",
                         write ? "to" : "from", w->inner.ops->name, kvt_strerror(rc))
              : 0;
}

/* ------------------------------------------------------------- the ops */

static int staged_write(kvt_tier_impl *w, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    if (mem != KVT_MEM_CUDA)
        return w->inner.ops->write(w->inner.impl, x, n, mem);
    return bounce(w, x, n, 1);
}

static int staged_read(kvt_tier_impl *w, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    if (mem != KVT_MEM_CUDA)
        return w->inner.ops->read(w->inner.impl, x, n, mem);
    return bounce(w, x, n, 0);
}

static void staged_close(kvt_tier_impl *w)
{
    if (!w)
        return;
    if (w->inner.ops->close)
        w->inner.ops->close(w->inner.impl);
    kvt__free(w);
}

static int staged_discard(kvt_tier_impl *w, const uint32_t *slots, size_t n)
{
    return w->inner.ops->discard(w->inner.impl, slots, n);
}

static int staged_flush(kvt_tier_impl *w)
{
    return w->inner.ops->flush(w->inner.impl);
}

static void *staged_slot_ptr(kvt_tier_impl *w, uint32_t slot)
{
    return w->inner.ops->slot_ptr(w->inner.impl, slot);
}

static int staged_recover(kvt_tier_impl *w, kvt_recover_fn fn, void *user)
{
    return w->inner.ops->recover(w->inner.impl, fn, user);
}

static void staged_stats(kvt_tier_impl *w, kvt_stat_fn fn, void *user)
{
    w->inner.ops->stats(w->inner.impl, fn, user);
}

static int staged_slot_usable(kvt_tier_impl *w, uint32_t slot)
{
    return w->inner.ops->slot_usable(w->inner.impl, slot);
}

int kvt__staged_wrap(kvt_tier_handle *h, uint64_t block_bytes)
{
    if (!h || !h->ops)
        return kvt__err(KVT_ENULL, "staged tier: no tier to wrap");
    /* Key-addressed tiers move no slots: their own ops decide what memory
     * they take. */
    if (h->caps & (KVT_TCAP_CUDA_MEM | KVT_TCAP_KEYED))
        return 0;
    if (!block_bytes)
        return kvt__err(KVT_EINVAL, "staged tier: block_bytes is 0");
    kvt_tier_impl *w = kvt__calloc(1, sizeof *w);
    if (!w)
        return kvt__err(KVT_ENOMEM, "staged tier over %s", h->ops->name);
    w->inner = *h;
    w->block_bytes = block_bytes;
    /* The inner tier's identity (name, version, options) and which of its
     * optional operations exist (NULL ones stay NULL: the store skips
     * them), each forwarded with the inner state. Built field by field, not
     * copied: an operation added to kvt_tier_ops later must be forwarded
     * here, never handed the wrapper's state. open belongs to the inner
     * tier, which is open already. */
    const kvt_tier_ops *in = h->ops;
    w->ops = (kvt_tier_ops){
        .version = in->version,
        .name = in->name,
        .caps = h->caps | KVT_TCAP_CUDA_MEM,
        .options = in->options,
        .slot_bytes = in->slot_bytes, /* takes no tier state */
        .close = staged_close,
        .write = staged_write,
        .read = staged_read,
        .discard = in->discard ? staged_discard : NULL,
        .flush = in->flush ? staged_flush : NULL,
        .slot_ptr = in->slot_ptr ? staged_slot_ptr : NULL,
        .recover = in->recover ? staged_recover : NULL,
        .stats = in->stats ? staged_stats : NULL,
        .slot_usable = in->slot_usable ? staged_slot_usable : NULL,
    };
    h->ops = &w->ops;
    h->impl = w;
    h->caps = w->ops.caps;
    return 0;
}

const kvt_tier_handle *kvt__staged_inner(const kvt_tier_handle *h)
{
    if (!h || !h->ops || h->ops->close != staged_close)
        return h;
    return &h->impl->inner;
}
