/* range.c — layer-wise I/O: a range of each block's fragments
 * (kvt_io_opts.frag_first/frag_count). Puts assemble blocks (assemble.c);
 * for gets, tiers with KVT_TCAP_FRAG_RANGE read
 * the range themselves; the others read whole blocks into a bounce buffer
 * here, and only the range is copied out to the caller. */
#include "internal.h"

#include "worker.h"

int kvt__io_frag_range(const kvt_store *s, const kvt_io_opts *o, int op, uint32_t *first,
                       uint32_t *count, const char *fn)
{
    *first = *count = 0;
    /* Callers of an older size end before the range: the whole block. */
    if (!o || o->size < offsetof(kvt_io_opts, frag_count) + sizeof o->frag_count)
        return 0;
    uint32_t f = o->frag_first, c = o->frag_count;
    if (c == 0 && f == 0)
        return 0;
    if (c == 0)
        return kvt__err(KVT_EINVAL, "%s: frag_first %u with frag_count 0 (0 is the whole block)",
                        fn, f);
    if (f >= s->frags || c > s->frags - f)
        return kvt__err(KVT_EINVAL, "%s: fragments %u..%u of a block of %u", fn, f,
                        f + (c - 1), s->frags);
    if (o->mem_kind != KVT_MEM_HOST)
        return kvt__err(KVT_ENOTSUP, "%s: a fragment range into device memory (host memory only, "
                                     "for now)", fn);
    if (s->nkeyed)
        return kvt__err(KVT_ENOTSUP, "%s: a fragment range on a store with a key-addressed tier",
                        fn);
    if (f == 0 && c == s->frags)
        return 0; /* the whole block, same pointer layout */
    if (op == KVT_JOB_PUT) {
        /* Blocks assemble in a reserved slot of the put tier, copied into
         * through its host address (assemble.c). */
        const kvt_tier_rt *tr = s->put_tier < 0 ? NULL : &s->tier[s->put_tier];
        if (!tr || !(tr->ops->caps & KVT_TCAP_HOST_PTR) || !tr->ops->slot_ptr)
            return kvt__err(KVT_ENOTSUP, "%s: a fragment range put needs a DRAM put tier "
                                         "(blocks assemble in its slots)", fn);
    }
    *first = f;
    *count = c;
    return 0;
}

/* Reads x[0..n) (each a range, frags = count caller pointers) through whole
 * blocks in host memory. */
static void read_bounced(kvt_store *s, kvt_tier_rt *tr, kvt_xfer *x, size_t n)
{
    size_t frag = s->block_bytes / s->frags;
    /* Page-aligned, as slots.c's bounce: an NVMe tier reads straight into it. */
    void *mem = NULL;
    char *buf = kvt__posix_memalign(&mem, 4096, n * s->block_bytes) ? NULL : mem;
    void **bp = kvt__malloc(n * s->frags * sizeof *bp);
    kvt_xfer *y = kvt__malloc(n * sizeof *y);
    if (!buf || !bp || !y) {
        for (size_t i = 0; i < n; i++)
            x[i].status = KVT_ENOMEM;
        kvt__err(KVT_ENOMEM, "kvt_get: bounce buffer for %zu blocks of a fragment range", n);
    } else {
        for (size_t i = 0; i < n; i++) {
            for (uint32_t f = 0; f < s->frags; f++)
                bp[i * s->frags + f] = buf + i * s->block_bytes + f * frag;
            y[i] = x[i];
            y[i].first = y[i].count = 0;
            y[i].frags = bp + i * s->frags;
        }
        tr->ops->read(tr->impl, y, n, KVT_MEM_HOST);
        for (size_t i = 0; i < n; i++) {
            x[i].status = y[i].status;
            if (y[i].status)
                continue;
            for (uint32_t f = 0; f < x[i].count; f++)
                memcpy(x[i].frags[f], bp[i * s->frags + x[i].first + f], frag);
        }
    }
    kvt__free(buf);
    kvt__free(bp);
    kvt__free(y);
}

void kvt__range_read(kvt_store *s, kvt_tier_rt *tr, kvt_xfer *x, size_t n)
{
    if (tr->ops->caps & KVT_TCAP_FRAG_RANGE)
        tr->ops->read(tr->impl, x, n, KVT_MEM_HOST);
    else
        read_bounced(s, tr, x, n);
}
