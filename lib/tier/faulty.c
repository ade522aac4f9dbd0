/* faulty.c — fault injection as a wrapper over any tier: a spec's faults around the inner tier's ops. */
#include "tier/faulty.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tier/faults.h"

struct kvt_tier_impl {
    /* This instance's table: the inner tier's name, caps and optional ops,
     * so that the store sees the same tier, only less reliable. */
    kvt_tier_ops ops;
    kvt_tier_handle inner;
    kvt__faults *faults;
    _Atomic uint64_t failed;  /* blocks failed here: part of "<name>.io_errors" */
    char io_errors_name[64];  /* "<name>.io_errors" */
};

static int faulty_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    (void)p;
    (void)out;
    (void)nslots;
    return kvt__err(KVT_ENOTSUP, "faulty: a wrapper over an opened tier (kvt__faulty_wrap)");
}

static void faulty_close(kvt_tier_impl *t)
{
    if (!t)
        return;
    if (t->inner.ops->close)
        t->inner.ops->close(t->inner.impl);
    kvt__faults_free(t->faults);
    kvt__free(t);
}

/* Whether x could be a block operation at all. The wrapper can't check the
 * slot range or the fragment size (the inner tier knows them); a malformed
 * xfer draws no fault, as it drew none when the engine drew after its own
 * checks. */
static bool well_formed(const kvt_xfer *x)
{
    if (!x->nfrags || !x->frags)
        return false;
    /* A fragment range (first/count) holds count pointers; the inner tier
     * checks the range itself. */
    uint32_t nptrs = x->count ? x->count : x->nfrags;
    for (uint32_t f = 0; f < nptrs; f++)
        if (!x->frags[f])
            return false;
    return true;
}

/* Blocks planned at a time: the plan lives on the stack, so that the data
 * path allocates nothing (allocation-failure tests run with a spec). */
#define CHUNK 64

/*
 * Up to CHUNK blocks: draws each block's fault; fails the wrapper-level ones
 * here; hands the rest to the inner tier, compacted, with the engine-level
 * ones in the thread's plan; merges the statuses back in order. Returns the
 * first failure's code, with its message.
 */
static int faulty_chunk(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int is_write)
{
    const kvt_tier_ops *in = t->inner.ops;
    int (*op)(kvt_tier_impl *, kvt_xfer *, size_t, kvt_mem_kind) = is_write ? in->write : in->read;
    kvt_xfer y[CHUNK];
    uint64_t rnd[CHUNK];
    uint8_t kind[CHUNK];
    uint8_t here[CHUNK]; /* the kind failed here, or 0 */
    size_t nhere = 0;
    for (size_t i = 0; i < n; i++) {
        kind[i] = KVT__FAULT_NONE;
        here[i] = 0;
        rnd[i] = 0;
        if (!well_formed(&x[i]))
            continue;
        kvt__fault k = kvt__faults_draw(t->faults, is_write, &rnd[i]);
        kind[i] = (uint8_t)k;
        if (k != KVT__FAULT_NONE && !kvt__fault_in_engine(k)) {
            here[i] = (uint8_t)k;
            nhere++;
        }
    }

    /* The blocks the inner tier gets, with their engine-level faults (kind
     * and rnd compacted in place: m <= i). */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (here[i]) {
            x[i].status = here[i] == KVT__FAULT_ENOSPC ? KVT_ENOSPC : KVT_EIO;
            continue;
        }
        y[m] = x[i];
        kind[m] = kind[i];
        rnd[m] = rnd[i];
        m++;
    }
    int rc = 0;
    if (m) {
        kvt__fault_plan plan = {.x = y, .n = m, .kind = kind, .rnd = rnd};
        const kvt__fault_plan *prev = kvt__faults_plan(&plan);
        rc = op(t->inner.impl, y, m, mem);
        kvt__faults_plan(prev);
    }
    for (size_t i = 0, j = 0; i < n; i++)
        if (!here[i])
            x[i].status = y[j++].status;
    if (nhere)
        atomic_fetch_add_explicit(&t->failed, nhere, memory_order_relaxed);

    /* The inner tier's message stands when the first failure is its own. */
    for (size_t i = 0; i < n; i++) {
        if (!x[i].status)
            continue;
        if (here[i])
            return kvt__err(x[i].status, "%s: %s of slot %u failed (injected %s)", in->name,
                            is_write ? "write" : "read", x[i].slot,
                            kvt__fault_name((kvt__fault)here[i]));
        return rc ? rc : x[i].status;
    }
    return rc;
}

/* A batch, CHUNK blocks at a time; the first failure in batch order is the
 * one reported, with its message. */
static int faulty_batch(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int is_write)
{
    const kvt_tier_ops *in = t->inner.ops;
    /* Nothing the inner tier would move: no draw (it refuses the batch). */
    if (!n || !x || (mem != KVT_MEM_HOST && !(t->inner.caps & KVT_TCAP_CUDA_MEM)))
        return is_write ? in->write(t->inner.impl, x, n, mem) : in->read(t->inner.impl, x, n, mem);
    int first = 0;
    char msg[256];
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        int rc = faulty_chunk(t, x + at, k, mem, is_write);
        if (rc && !first) {
            const char *e = kvt_last_error();
            first = rc;
            snprintf(msg, sizeof msg, "%s", e ? e : kvt_strerror(rc));
        }
    }
    /* A later chunk's failure overwrote the first one's message. */
    return first && n > CHUNK ? kvt__err(first, "%s", msg) : first;
}

static int faulty_write(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return faulty_batch(t, x, n, mem, 1);
}

static int faulty_read(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return faulty_batch(t, x, n, mem, 0);
}

static int faulty_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n)
{
    return t->inner.ops->discard(t->inner.impl, slots, n);
}

static int faulty_flush(kvt_tier_impl *t)
{
    return t->inner.ops->flush(t->inner.impl);
}

static void *faulty_slot_ptr(kvt_tier_impl *t, uint32_t slot)
{
    return t->inner.ops->slot_ptr(t->inner.impl, slot);
}

static int faulty_slot_usable(kvt_tier_impl *t, uint32_t slot)
{
    return t->inner.ops->slot_usable(t->inner.impl, slot);
}

static int faulty_recover(kvt_tier_impl *t, kvt_recover_fn fn, void *user)
{
    return t->inner.ops->recover(t->inner.impl, fn, user);
}

struct stat_pass {
    const kvt_tier_impl *t;
    kvt_stat_fn fn;
    void *user;
};

/* The inner tier's stats, its I/O errors counting the blocks failed here
 * (as they counted when the engine injected them). */
static void pass_stat(const char *name, uint64_t value, void *user)
{
    struct stat_pass *sp = user;
    if (!strcmp(name, sp->t->io_errors_name))
        value += atomic_load_explicit(&sp->t->failed, memory_order_relaxed);
    sp->fn(name, value, sp->user);
}

static void faulty_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    if (!t || !fn)
        return;
    if (t->inner.ops->stats) {
        struct stat_pass sp = {t, fn, user};
        t->inner.ops->stats(t->inner.impl, pass_stat, &sp);
    }
    char name[96];
    snprintf(name, sizeof name, "%s.faults_injected", t->ops.name);
    fn(name, kvt__faults_injected(t->faults, KVT__FAULT_NONE), user);
    for (int k = 1; k < KVT__FAULT_KINDS; k++) {
        snprintf(name, sizeof name, "%s.faults_injected.%s", t->ops.name,
                 kvt__fault_name((kvt__fault)k));
        fn(name, kvt__faults_injected(t->faults, (kvt__fault)k), user);
    }
}

int kvt__faulty_check(const char *spec)
{
    kvt__faults *f = NULL;
    int rc = kvt__faults_new(spec, &f);
    kvt__faults_free(f);
    return rc;
}

int kvt__faulty_wrap(kvt_tier_handle *h, const char *spec)
{
    if (!h || !h->ops || !h->impl)
        return kvt__err(KVT_ENULL, "faulty: no opened tier to wrap");
    kvt__faults *f = NULL;
    int rc = kvt__faults_new(spec, &f);
    if (rc || !f)
        return rc;
    if (kvt__faults_need_engine(f) && !(h->caps & KVT_TCAP_PERSISTENT)) {
        kvt__faults_free(f);
        return kvt__err(KVT_EINVAL, "fault spec '%s': torn4k, torn512, partial and cqe_* happen "
                                    "in a tier's I/O engine; the %s tier has none",
                        spec, h->ops->name);
    }
    kvt_tier_impl *t = kvt__calloc(1, sizeof *t);
    if (!t) {
        kvt__faults_free(f);
        return kvt__err(KVT_ENOMEM, "faulty: wrapper state");
    }
    const kvt_tier_ops *in = h->ops;
    t->inner = *h;
    t->faults = f;
    snprintf(t->io_errors_name, sizeof t->io_errors_name, "%s.io_errors", in->name);
    t->ops = (kvt_tier_ops){
        .version = KVT_TIER_OPS_VERSION,
        .name = in->name,
        .caps = in->caps,
        .open = faulty_open,
        .close = faulty_close,
        .write = faulty_write,
        .read = faulty_read,
        .discard = in->discard ? faulty_discard : NULL,
        .flush = in->flush ? faulty_flush : NULL,
        .slot_ptr = in->slot_ptr ? faulty_slot_ptr : NULL,
        .recover = in->recover ? faulty_recover : NULL,
        .stats = faulty_stats,
        .slot_usable = in->slot_usable ? faulty_slot_usable : NULL,
    };
    h->ops = &t->ops;
    h->impl = t;
    /* h->caps stays the inner tier's: the wrapper adds and removes nothing. */
    return 0;
}
