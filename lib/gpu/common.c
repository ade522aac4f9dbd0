/* gpu/common.c — the parts of the CUDA layer built with and without CUDA: counters, per-call flags. */
#include <stdio.h>

#include "error.h"
#include "gpu/internal.h"

void kvt__cuda_counters_visit(kvt__cuda_counters *c, const char *prefix, kvt_stat_fn fn,
                              void *user)
{
    if (!c || !fn)
        return;
    char name[96];
#define KVT_X_VISIT(field)                                                          \
    snprintf(name, sizeof name, "%s.cuda_" #field, prefix);                         \
    fn(name, atomic_load_explicit(&c->field, memory_order_relaxed), user);
    KVT_CUDA_COUNTERS(KVT_X_VISIT)
#undef KVT_X_VISIT
}

int kvt__gpu_flags_ok(const kvt_io_opts *o, const char *fn)
{
    const uint32_t known = KVT_IO_NO_PROMOTE | KVT_IO_STREAM_WAIT | KVT_IO_DURABLE;
    if (o->flags & ~known)
        return kvt__err(KVT_EINVAL, "%s: unknown or reserved flags 0x%x", fn, o->flags & ~known);
    return 0;
}
