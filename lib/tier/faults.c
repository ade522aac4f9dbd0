/* faults.c — the fault-injection engine behind faults.h (test builds: KVT_HAVE_FAULTS). */
#include "kvt_build_config.h"

#include "alloc.h"
#include "tier/faults.h"

#include <stddef.h>

#include "error.h"

static const char *const names[KVT__FAULT_KINDS] = {
    [KVT__FAULT_NONE] = "none",       [KVT__FAULT_EIO] = "eio",
    [KVT__FAULT_SHORT] = "short",     [KVT__FAULT_TORN4K] = "torn4k",
    [KVT__FAULT_TORN512] = "torn512", [KVT__FAULT_ENOSPC] = "enospc",
    [KVT__FAULT_PARTIAL] = "partial", [KVT__FAULT_CQE_EIO] = "cqe_eio",
    [KVT__FAULT_CQE_ENOSPC] = "cqe_enospc", [KVT__FAULT_CQE_SHORT] = "cqe_short",
};

const char *kvt__fault_name(kvt__fault kind)
{
    return (unsigned)kind < KVT__FAULT_KINDS ? names[kind] : "unknown";
}

int kvt__fault_in_engine(kvt__fault kind)
{
    return kind == KVT__FAULT_TORN4K || kind == KVT__FAULT_TORN512 ||
           kind == KVT__FAULT_PARTIAL || (kind >= KVT__FAULT_CQE_EIO && kind < KVT__FAULT_KINDS);
}

/* The plan of the wrapper call in progress on this thread (faulty.c). */
static _Thread_local const kvt__fault_plan *current_plan;

const kvt__fault_plan *kvt__faults_plan(const kvt__fault_plan *plan)
{
    const kvt__fault_plan *prev = current_plan;
    current_plan = plan;
    return prev;
}

kvt__fault kvt__faults_planned(const kvt_xfer *x, uint64_t *rnd)
{
    const kvt__fault_plan *p = current_plan;
    if (!p || x < p->x || x >= p->x + p->n) {
        *rnd = 0;
        return KVT__FAULT_NONE;
    }
    size_t i = (size_t)(x - p->x);
    *rnd = p->rnd[i];
    return (kvt__fault)p->kind[i];
}

#if KVT_HAVE_FAULTS

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NTH 16
#define MAX_SPEC 1024

struct kvt__faults {
    double rate[KVT__FAULT_KINDS];
    struct {
        uint64_t n;
        kvt__fault kind;
    } nth[MAX_NTH];
    unsigned nnth;
    uint64_t seed;
    _Atomic uint64_t ops;
    _Atomic uint64_t injected[KVT__FAULT_KINDS];
};

static int applies(kvt__fault kind, int is_write)
{
    switch (kind) {
    case KVT__FAULT_EIO:
    case KVT__FAULT_SHORT:
    case KVT__FAULT_PARTIAL:
    case KVT__FAULT_CQE_EIO:
    case KVT__FAULT_CQE_ENOSPC:
    case KVT__FAULT_CQE_SHORT:
        return 1;
    case KVT__FAULT_TORN4K:
    case KVT__FAULT_TORN512:
    case KVT__FAULT_ENOSPC:
        return is_write;
    default:
        return 0;
    }
}

static kvt__fault kind_named(const char *s, size_t len)
{
    if (len == 4 && !strncmp(s, "torn", 4))
        return KVT__FAULT_TORN4K;
    for (int k = 1; k < KVT__FAULT_KINDS; k++)
        if (strlen(names[k]) == len && !strncmp(s, names[k], len))
            return (kvt__fault)k;
    return KVT__FAULT_NONE;
}

static int bad(const char *item, size_t len, const char *why)
{
    return kvt__err(KVT_EINVAL, "fault spec item '%.*s': %s", (int)len, item, why);
}

/* One "key=value" item of length len (not NUL-terminated in the spec). */
static int parse_item(kvt__faults *f, const char *item, size_t len)
{
    char buf[128];
    if (len == 0)
        return bad(item, len, "empty item");
    if (len >= sizeof buf)
        return bad(item, len, "too long");
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *eq = strchr(buf, '=');
    if (!eq || eq == buf || !eq[1])
        return bad(item, len, "expected key=value");
    *eq = '\0';
    const char *key = buf, *val = eq + 1;
    char *end;

    if (!strcmp(key, "seed")) {
        errno = 0;
        unsigned long long s = strtoull(val, &end, 0);
        if (errno || *end || *val == '-')
            return bad(item, len, "seed must be an unsigned integer");
        f->seed = s;
        return 0;
    }
    if (!strcmp(key, "nth")) {
        errno = 0;
        unsigned long long n = strtoull(val, &end, 10);
        if (errno || end == val || *end != ':' || n == 0 || *val == '-')
            return bad(item, len, "expected nth=N:KIND with N >= 1");
        kvt__fault k = kind_named(end + 1, strlen(end + 1));
        if (k == KVT__FAULT_NONE)
            return bad(item, len, "unknown fault kind after ':'");
        if (f->nnth == MAX_NTH)
            return bad(item, len, "too many nth items (16 at most)");
        f->nth[f->nnth].n = n;
        f->nth[f->nnth].kind = k;
        f->nnth++;
        return 0;
    }
    kvt__fault k = kind_named(key, strlen(key));
    if (k == KVT__FAULT_NONE)
        return bad(item, len, "unknown key (eio, short, torn4k, torn512, torn, enospc, partial, "
                              "cqe_eio, cqe_enospc, cqe_short, nth, seed)");
    errno = 0;
    double r = strtod(val, &end);
    if (errno || *end || end == val || !isfinite(r) || r < 0.0 || r > 1.0)
        return bad(item, len, "rate must be a number in [0, 1]");
    f->rate[k] = r;
    return 0;
}

int kvt__faults_new(const char *spec, kvt__faults **out)
{
    if (!out)
        return kvt__err(KVT_ENULL, "faults: out is NULL");
    *out = NULL;
    if (!spec || !*spec)
        return 0;
    if (strlen(spec) > MAX_SPEC)
        return kvt__err(KVT_EINVAL, "fault spec longer than %d characters", MAX_SPEC);
    kvt__faults *f = kvt__calloc(1, sizeof *f);
    if (!f)
        return kvt__err(KVT_ENOMEM, "faults: allocating the engine");
    f->seed = 1;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int rc = parse_item(f, p, len);
        if (rc) {
            kvt__free(f);
            return rc;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    for (int w = 0; w <= 1; w++) {
        double sum = 0;
        for (int k = 1; k < KVT__FAULT_KINDS; k++)
            if (applies((kvt__fault)k, w))
                sum += f->rate[k];
        if (sum > 1.0 + 1e-12) {
            kvt__free(f);
            return kvt__err(KVT_EINVAL, "fault spec '%s': rates for %s sum to %g > 1", spec,
                            w ? "writes" : "reads", sum);
        }
    }
    *out = f;
    return 0;
}

void kvt__faults_free(kvt__faults *f)
{
    kvt__free(f);
}

int kvt__faults_need_engine(const kvt__faults *f)
{
    if (!f)
        return 0;
    for (int k = 1; k < KVT__FAULT_KINDS; k++)
        if (kvt__fault_in_engine((kvt__fault)k) && f->rate[k] > 0)
            return 1;
    for (unsigned i = 0; i < f->nnth; i++)
        if (kvt__fault_in_engine(f->nth[i].kind))
            return 1;
    return 0;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

kvt__fault kvt__faults_draw(kvt__faults *f, int is_write, uint64_t *rnd)
{
    if (!f) {
        if (rnd)
            *rnd = 0;
        return KVT__FAULT_NONE;
    }
    uint64_t idx = atomic_fetch_add_explicit(&f->ops, 1, memory_order_relaxed) + 1;
    /* Keyed by (seed, index) rather than a shared generator state, so that
     * threads need no lock and one thread's sequence is reproducible. */
    uint64_t r = splitmix64(f->seed ^ splitmix64(idx));
    if (rnd)
        *rnd = splitmix64(r);
    kvt__fault kind = KVT__FAULT_NONE;
    for (unsigned i = 0; i < f->nnth; i++)
        if (f->nth[i].n == idx && applies(f->nth[i].kind, is_write)) {
            kind = f->nth[i].kind;
            break;
        }
    if (kind == KVT__FAULT_NONE) {
        double u = (double)(r >> 11) * 0x1.0p-53, acc = 0;
        for (int k = 1; k < KVT__FAULT_KINDS; k++) {
            if (!applies((kvt__fault)k, is_write) || f->rate[k] <= 0)
                continue;
            acc += f->rate[k];
            if (u < acc) {
                kind = (kvt__fault)k;
                break;
            }
        }
    }
    if (kind != KVT__FAULT_NONE)
        atomic_fetch_add_explicit(&f->injected[kind], 1, memory_order_relaxed);
    return kind;
}

uint64_t kvt__faults_injected(const kvt__faults *f, kvt__fault kind)
{
    if (!f || (unsigned)kind >= KVT__FAULT_KINDS)
        return 0;
    if (kind != KVT__FAULT_NONE)
        return atomic_load_explicit(&f->injected[kind], memory_order_relaxed);
    uint64_t sum = 0;
    for (int k = 1; k < KVT__FAULT_KINDS; k++)
        sum += atomic_load_explicit(&f->injected[k], memory_order_relaxed);
    return sum;
}

#else /* !KVT_HAVE_FAULTS: the hooks compile away; a spec is refused, not ignored */

int kvt__faults_new(const char *spec, kvt__faults **out)
{
    if (!out)
        return kvt__err(KVT_ENULL, "faults: out is NULL");
    *out = NULL;
    if (!spec || !*spec)
        return 0;
    return kvt__err(KVT_ENOTSUP, "fault spec '%s': built without fault injection "
                                 "(-Dfault_injection=true)", spec);
}

void kvt__faults_free(kvt__faults *f)
{
    (void)f;
}

int kvt__faults_need_engine(const kvt__faults *f)
{
    (void)f;
    return 0;
}

kvt__fault kvt__faults_draw(kvt__faults *f, int is_write, uint64_t *rnd)
{
    (void)f;
    (void)is_write;
    if (rnd)
        *rnd = 0;
    return KVT__FAULT_NONE;
}

uint64_t kvt__faults_injected(const kvt__faults *f, kvt__fault kind)
{
    (void)f;
    (void)kind;
    return 0;
}

#endif
