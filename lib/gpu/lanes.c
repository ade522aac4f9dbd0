/* gpu/lanes.c — lanes: a non-blocking stream with its events and kernel descriptors, one per thread at a time. */
#include <pthread.h>

#include "alloc.h"
#include "error.h"
#include "gpu/internal.h"

/* For a lane that failed half-way through creation. Its memory is left
 * allocated: freeing device or pinned memory synchronizes the device, and
 * this thread may be the one an engine's gated stream is waiting for. */
static void lane_destroy(kvt__cuda_lane *l)
{
    for (int h = 0; h < 2; h++)
        if (l->ev[h])
            RT.cudaEventDestroy(l->ev[h]);
    if (l->stream)
        RT.cudaStreamDestroy(l->stream);
    kvt__free(l);
}

int kvt__gpu_lane_get(int device, kvt__cuda_lane **out)
{
    kvt__gpu_dev *d = kvt__gpu_dev_info(device);
    pthread_mutex_lock(&d->lock);
    while (!d->lanes && d->nlanes >= LANES_MAX)
        pthread_cond_wait(&d->lane_free, &d->lock);
    if (d->lanes) {
        *out = d->lanes;
        d->lanes = d->lanes->next;
        pthread_mutex_unlock(&d->lock);
        return 0;
    }
    d->nlanes++;
    pthread_mutex_unlock(&d->lock);

    kvt__cuda_lane *l = kvt__calloc(1, sizeof *l);
    cudaError_t e = cudaErrorMemoryAllocation;
    const char *what = "lane";
    if (l) {
        l->device = device;
        /* Non-blocking: never serialized with the legacy default stream,
         * which an engine may use and which a gate may be holding. */
        e = RT.cudaStreamCreateWithFlags(&l->stream, cudaStreamNonBlocking);
        what = "cudaStreamCreateWithFlags";
        for (int h = 0; h < 2 && e == cudaSuccess; h++) {
            e = RT.cudaEventCreateWithFlags(&l->ev[h], cudaEventDisableTiming);
            what = "cudaEventCreateWithFlags";
            if (e == cudaSuccess) {
                e = RT.cudaHostAlloc((void **)&l->desc_host[h], LANE_DESC * sizeof(kvt__cuda_desc),
                                     cudaHostAllocPortable);
                what = "cudaHostAlloc (descriptors)";
            }
            if (e == cudaSuccess) {
                e = RT.cudaMalloc((void **)&l->desc_dev[h], LANE_DESC * sizeof(kvt__cuda_desc));
                what = "cudaMalloc (descriptors)";
            }
        }
    }
    if (!l || e != cudaSuccess) {
        int rc = l ? kvt__gpu_err(e == cudaErrorMemoryAllocation ? KVT_ENOMEM : KVT_EIO, e, what)
                   : kvt__err(KVT_ENOMEM, "CUDA lane");
        if (l)
            lane_destroy(l);
        pthread_mutex_lock(&d->lock);
        d->nlanes--;
        pthread_cond_signal(&d->lane_free);
        pthread_mutex_unlock(&d->lock);
        return rc;
    }
    *out = l;
    return 0;
}

void kvt__gpu_lane_put(kvt__cuda_lane *l)
{
    kvt__gpu_dev *d = &kvt__gpu.devs[l->device];
    pthread_mutex_lock(&d->lock);
    l->next = d->lanes;
    d->lanes = l;
    pthread_cond_signal(&d->lane_free);
    pthread_mutex_unlock(&d->lock);
}

int kvt__gpu_lane_sync(kvt__cuda_lane *l)
{
    cudaError_t e = RT.cudaStreamSynchronize(l->stream);
    return e == cudaSuccess ? 0 : kvt__gpu_err(KVT_EIO, e, "copy stream");
}
