/* gpu/nocuda.c — the CUDA layer in builds without CUDA: no device, device memory refused, ordering hooks do nothing. */
#include <stddef.h>

#include "error.h"
#include "gpu/internal.h"

#if KVT_HAVE_CUDA
#error "gpu/nocuda.c is for builds without CUDA (lib/meson.build picks the files)"
#endif

int kvt__cuda_load(void)
{
    return kvt__err(KVT_ENODEV, "kvtier was built without CUDA");
}

const char *kvt__cuda_why(void)
{
    return "kvtier was built without CUDA";
}

int kvt__cuda_device_count(void)
{
    return 0;
}

int kvt__cuda_in_process(void)
{
    return 0;
}

int kvt__cuda_check_device(int device)
{
    return kvt__err(KVT_ENODEV, "CUDA device %d: kvtier was built without CUDA", device);
}

int kvt__cuda_pci_bus_id(int device, char *buf, size_t cap)
{
    (void)buf;
    (void)cap;
    return kvt__cuda_check_device(device);
}

int kvt__cuda_ptr_device(const void *p, int *device)
{
    (void)device;
    return kvt__err(KVT_EMEMKIND, "pointer %p: kvtier was built without CUDA", p);
}

int kvt__cuda_check_io(const kvt_io_opts *o, void *const *ptrs, size_t nptrs, const char *fn)
{
    (void)ptrs;
    (void)nptrs;
    if (!o)
        return 0;
    int rc = kvt__gpu_flags_ok(o, fn);
    if (rc)
        return rc;
    if (o->mem_kind == KVT_MEM_CUDA)
        return kvt__err(KVT_EMEMKIND, "%s: device pointers need a CUDA build of kvtier", fn);
    if (o->stream)
        return kvt__err(KVT_ENOTSUP, "%s: a CUDA stream needs a CUDA build of kvtier", fn);
    return 0;
}

int kvt__cuda_call_begin(const kvt_io_opts *o, kvt_io_opts *copy)
{
    (void)copy;
    return o && o->stream ? kvt__err(KVT_ENOTSUP, "streams need a CUDA build") : 0;
}

void kvt__cuda_call_abort(const kvt_io_opts *o)
{
    (void)o;
}

int kvt__cuda_io_begin(const kvt_io_opts *o)
{
    (void)o;
    return 0;
}

void kvt__cuda_io_end(const kvt_io_opts *o)
{
    (void)o;
}

int kvt__cuda_copy(int device, kvt__cuda_dir dir, int kernel_d2d, const kvt__copy_op *ops,
                   size_t n, kvt__cuda_counters *c)
{
    (void)device;
    (void)dir;
    (void)kernel_d2d;
    (void)ops;
    (void)n;
    (void)c;
    return kvt__err(KVT_EMEMKIND, "device copies need a CUDA build of kvtier");
}

int kvt__cuda_malloc(int device, size_t bytes, void **out)
{
    (void)bytes;
    (void)out;
    return kvt__cuda_check_device(device);
}

void kvt__cuda_free(int device, void *p)
{
    (void)device;
    (void)p;
}

int kvt__cuda_region_add(void *base, size_t bytes, size_t unit, int device,
                         kvt__cuda_region **out)
{
    (void)base;
    (void)bytes;
    (void)unit;
    (void)device;
    *out = NULL;
    return 0;
}

void kvt__cuda_region_pin(kvt__cuda_region *r)
{
    (void)r;
}

void kvt__cuda_region_pin_at(const void *addr)
{
    (void)addr;
}

void kvt__cuda_region_remove(kvt__cuda_region *r)
{
    (void)r;
}

void kvt__cuda_region_stats(kvt__cuda_region *r, uint64_t *pinned_bytes, uint64_t *pin_ms)
{
    (void)r;
    *pinned_bytes = 0;
    *pin_ms = 0;
}

int kvt__cuda_host_pinned(const void *p, size_t len)
{
    (void)p;
    (void)len;
    return 0;
}


/* lib/tier/staged.c refuses device memory itself in these builds. */
int kvt__cuda_stage_begin(int device, kvt__cuda_lane **out)
{
    (void)device;
    *out = NULL;
    return kvt__err(KVT_EMEMKIND, "device memory needs a CUDA build of kvtier");
}

char *kvt__cuda_stage_mem(kvt__cuda_lane *l)
{
    (void)l;
    return NULL;
}

int kvt__cuda_stage_queue(kvt__cuda_lane *l, int half, kvt__cuda_dir dir,
                          const kvt__copy_op *ops, size_t n)
{
    (void)l;
    (void)half;
    (void)dir;
    (void)ops;
    (void)n;
    return KVT_EMEMKIND;
}

int kvt__cuda_stage_wait(kvt__cuda_lane *l, int half)
{
    (void)l;
    (void)half;
    return KVT_EMEMKIND;
}

int kvt__cuda_stage_sync(kvt__cuda_lane *l)
{
    (void)l;
    return KVT_EMEMKIND;
}

void kvt__cuda_stage_end(kvt__cuda_lane *l)
{
    (void)l;
}
