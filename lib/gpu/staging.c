/* gpu/staging.c — a lane with pinned staging, lent to the tier wrapper that bounces device memory through host memory. */
#include <stddef.h>

#include "error.h"
#include "gpu/internal.h"

int kvt__cuda_stage_begin(int device, kvt__cuda_lane **out)
{
    *out = NULL;
    kvt__gpu_guard gd;
    int rc = kvt__gpu_guard_enter(&gd, device);
    if (rc)
        return rc;
    kvt__cuda_lane *l;
    if ((rc = kvt__gpu_lane_get(device, &l)) != 0) {
        kvt__gpu_guard_leave(&gd);
        return rc;
    }
    l->guard = gd;
    if (!l->staging) {
        cudaError_t e = RT.cudaHostAlloc((void **)&l->staging, KVT_CUDA_STAGING_BYTES,
                                         cudaHostAllocPortable | cudaHostAllocMapped);
        if (e == cudaSuccess) {
            kvt__gpu_staging_region(l->staging, KVT_CUDA_STAGING_BYTES);
        } else {
            l->staging = NULL; /* the caller's pageable path still works */
            RT.cudaGetLastError();
        }
    }
    *out = l;
    return 0;
}

char *kvt__cuda_stage_mem(kvt__cuda_lane *l)
{
    return l->staging;
}

int kvt__cuda_stage_queue(kvt__cuda_lane *l, int half, kvt__cuda_dir dir,
                          const kvt__copy_op *ops, size_t n)
{
    int rc = kvt__gpu_lane_enqueue(l, dir, 0, ops, n, half, NULL);
    if (rc)
        return rc;
    cudaError_t e = RT.cudaEventRecord(l->ev[half], l->stream);
    return e == cudaSuccess ? 0 : kvt__gpu_err(KVT_EIO, e, "staging half");
}

int kvt__cuda_stage_wait(kvt__cuda_lane *l, int half)
{
    if (RT.cudaEventSynchronize(l->ev[half]) == cudaSuccess)
        return 0;
    RT.cudaGetLastError();
    return KVT_EIO;
}

int kvt__cuda_stage_sync(kvt__cuda_lane *l)
{
    return kvt__gpu_lane_sync(l);
}

void kvt__cuda_stage_end(kvt__cuda_lane *l)
{
    if (!l)
        return;
    kvt__gpu_guard gd = l->guard;
    kvt__gpu_lane_sync(l); /* nothing of the caller's may still touch the staging */
    kvt__gpu_lane_put(l);
    kvt__gpu_guard_leave(&gd);
}
