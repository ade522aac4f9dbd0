/* gpu/copy_methods.c — one batch of copies on a lane: copy engines, cudaMemcpyBatchAsync or the gather/scatter kernel, per piece. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "gpu/internal.h"

static int aligned16(const void *a, const void *b)
{
    return (((uintptr_t)a | (uintptr_t)b) & 15) == 0;
}

/* The method for one piece (see kvt__cuda_copy). kvt__gpu_regions_lock held. */
static int choose(const kvt__gpu_dev *d, kvt__cuda_dir dir, int kernel_d2d, const kvt__copy_op *op,
                  int kernels, int *pageable)
{
    const void *host = dir == KVT__CUDA_H2D ? op->src : dir == KVT__CUDA_D2H ? op->dst : NULL;
    int pinned = !host || kvt__gpu_host_pinned_locked(host, op->len);
    *pageable = !pinned;
    int kernel_ok = kernels && aligned16(op->src, op->dst) &&
                    (dir == KVT__CUDA_D2D ? kernel_d2d : pinned && d->host_ptr_ok);
    int batch_ok = RT.cudaMemcpyBatchAsync != NULL;
    switch (kvt__gpu.method) {
    case METHOD_CE:
        return METHOD_CE;
    case METHOD_BATCH:
        return batch_ok ? METHOD_BATCH : METHOD_CE;
    case METHOD_KERNEL:
        return kernel_ok ? METHOD_KERNEL : batch_ok ? METHOD_BATCH : METHOD_CE;
    }
    if (op->len >= kvt__gpu.ce_min)
        return METHOD_CE;
    if (kernel_ok && (op->len < KVT_CUDA_BATCH_MIN_BYTES || !batch_ok))
        return METHOD_KERNEL;
    return batch_ok ? METHOD_BATCH : METHOD_CE;
}

static int batch_grow(kvt__cuda_lane *l, size_t want)
{
    if (want <= l->bcap)
        return 0;
    size_t cap = l->bcap ? l->bcap : 256;
    while (cap < want)
        cap *= 2;
    void **d = kvt__realloc(l->bdst, cap * sizeof *d);
    if (d)
        l->bdst = d;
    const void **s = kvt__realloc(l->bsrc, cap * sizeof *s);
    if (s)
        l->bsrc = s;
    size_t *n = kvt__realloc(l->blen, cap * sizeof *n);
    if (n)
        l->blen = n;
    if (!d || !s || !n)
        return KVT_ENOMEM;
    l->bcap = cap;
    return 0;
}

static int batch_flush(kvt__cuda_lane *l, size_t k)
{
    if (!k)
        return 0;
    struct cudaMemcpyAttributes attr;
    memset(&attr, 0, sizeof attr);
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    size_t idx = 0;
    cudaError_t e = RT.cudaMemcpyBatchAsync((void *const *)l->bdst, (const void *const *)l->bsrc,
                                            l->blen, k, &attr, &idx, 1, l->stream);
    return e == cudaSuccess ? 0 : kvt__gpu_err(KVT_EIO, e, "cudaMemcpyBatchAsync");
}

static int kernel_flush(kvt__cuda_lane *l, const kvt__gpu_dev *d, int half, unsigned k)
{
    if (!k)
        return 0;
    cudaError_t e = RT.cudaMemcpyAsync(l->desc_dev[half], l->desc_host[half],
                                       k * sizeof(kvt__cuda_desc), cudaMemcpyHostToDevice,
                                       l->stream);
    if (e != cudaSuccess)
        return kvt__gpu_err(KVT_EIO, e, "copy descriptors");
    /* Two blocks of 512 threads per SM: half the threads an SM can hold, so
     * that a put's kernel and a get's kernel (each on its own lane) run at
     * the same time rather than one after the other; 64 KiB of loads in
     * flight per SM is still far more than PCIe's latency needs. */
    unsigned grid = (unsigned)d->sm_count * 2;
    if (grid > k)
        grid = k;
    dim3 gdim = {grid, 1, 1}, bdim = {512, 1, 1};
    void *desc = l->desc_dev[half];
    void *args[] = {&desc, &k};
    e = RT.cudaLaunchKernel((const void *)kvt__gpu.copy_kernel, gdim, bdim, args, 0, l->stream);
    return e == cudaSuccess ? 0 : kvt__gpu_err(KVT_EIO, e, "kvt_copy_kernel launch");
}

#define CADD(c, field, v)                                                              \
    do {                                                                              \
        if (c)                                                                        \
            atomic_fetch_add_explicit(&(c)->field, (v), memory_order_relaxed);       \
    } while (0)

int kvt__gpu_lane_enqueue(kvt__cuda_lane *l, kvt__cuda_dir dir, int kernel_d2d,
                          const kvt__copy_op *ops, size_t n, int half, kvt__cuda_counters *c)
{
    /* More pieces than a half holds: with both halves, one half's launch
     * runs while the other is filled (waiting only for that half's previous
     * launch); with one, the stream is drained before the half is reused.
     * The drain left the GPU idle between launches: 16 KiB fragments in
     * 256 MiB calls (two launches) ran at 0.84 of the raw ceiling, 8 KiB
     * (four) at 0.78, 64 KiB (one) at 0.91 (H200, docs/gpu.md). */
    int alternate = half < 0, used[2] = {0, 0};
    if (alternate)
        half = 0;
    const kvt__gpu_dev *d = &kvt__gpu.devs[l->device];
    int kernels = (kvt__gpu.method == METHOD_AUTO || kvt__gpu.method == METHOD_KERNEL) &&
                  kvt__gpu_kernels_load();
    unsigned nk = 0;
    size_t nb = 0;
    int rc = 0;
    /* Once per batch, not per piece: regions only go away when their tier
     * closes, never while it copies. */
    pthread_rwlock_rdlock(&kvt__gpu_regions_lock);
    for (size_t i = 0; i < n && !rc; i++) {
        const kvt__copy_op *op = &ops[i];
        if (!op->len)
            continue;
        int pageable;
        int m = choose(d, dir, kernel_d2d, op, kernels, &pageable);
        if (pageable)
            CADD(c, pageable_bytes, op->len);
        if (m == METHOD_CE) {
            cudaError_t e =
                RT.cudaMemcpyAsync(op->dst, op->src, op->len, cudaMemcpyDefault, l->stream);
            if (e != cudaSuccess)
                rc = kvt__gpu_err(KVT_EIO, e, "cudaMemcpyAsync");
            CADD(c, ce_bytes, op->len);
            CADD(c, ce_copies, 1);
        } else if (m == METHOD_BATCH) {
            if (nb == BATCH_MAX) {
                rc = batch_flush(l, nb);
                nb = 0;
            }
            if (!rc && (rc = batch_grow(l, nb + 1)) != 0) {
                rc = kvt__err(KVT_ENOMEM, "copy batch of %zu", nb + 1);
                break;
            }
            l->bdst[nb] = op->dst;
            l->bsrc[nb] = op->src;
            l->blen[nb] = op->len;
            nb++;
            CADD(c, batch_bytes, op->len);
            CADD(c, batch_copies, 1);
        } else {
            for (size_t off = 0; off < op->len && !rc; off += KVT_CUDA_KERNEL_PIECE) {
                if (nk == LANE_DESC) {
                    /* The descriptors' host copy is reused: the launch
                     * that reads it must have taken its copy first. */
                    rc = kernel_flush(l, d, half, nk);
                    CADD(c, kernel_launches, 1);
                    nk = 0;
                    if (!rc && alternate) {
                        cudaError_t e = RT.cudaEventRecord(l->ev[half], l->stream);
                        used[half] = 1;
                        half ^= 1;
                        if (e == cudaSuccess && used[half])
                            e = RT.cudaEventSynchronize(l->ev[half]);
                        if (e != cudaSuccess)
                            rc = kvt__gpu_err(KVT_EIO, e, "descriptor half");
                    } else if (!rc) {
                        rc = kvt__gpu_lane_sync(l);
                    }
                }
                size_t len = op->len - off < KVT_CUDA_KERNEL_PIECE ? op->len - off
                                                                   : KVT_CUDA_KERNEL_PIECE;
                l->desc_host[half][nk++] = (kvt__cuda_desc){
                    .src = (const char *)op->src + off, .dst = (char *)op->dst + off, .len = len};
            }
            CADD(c, kernel_bytes, op->len);
            CADD(c, kernel_copies, 1);
        }
    }
    pthread_rwlock_unlock(&kvt__gpu_regions_lock);
    if (!rc && nb)
        rc = batch_flush(l, nb);
    if (!rc && nk) {
        rc = kernel_flush(l, d, half, nk);
        CADD(c, kernel_launches, 1);
    }
    if (rc)
        CADD(c, errors, 1);
    return rc;
}

int kvt__cuda_copy(int device, kvt__cuda_dir dir, int kernel_d2d, const kvt__copy_op *ops,
                   size_t n, kvt__cuda_counters *c)
{
    int rc = kvt__cuda_check_device(device);
    if (rc || !n)
        return rc;
    kvt__gpu_guard gd;
    if ((rc = kvt__gpu_guard_enter(&gd, device)))
        return rc;
    kvt__cuda_lane *l;
    rc = kvt__gpu_lane_get(device, &l);
    if (!rc) {
        rc = kvt__gpu_lane_enqueue(l, dir, kernel_d2d, ops, n, -1, c);
        /* Wait even after a failed enqueue: what was queued still reads
         * and writes memory the caller is about to reuse. */
        int rs = kvt__gpu_lane_sync(l);
        if (!rc && rs) {
            rc = rs;
            CADD(c, errors, 1);
        }
        kvt__gpu_lane_put(l);
    }
    kvt__gpu_guard_leave(&gd);
    return rc;
}

int kvt__cuda_malloc(int device, size_t bytes, void **out)
{
    int rc = kvt__cuda_check_device(device);
    if (rc)
        return rc;
    kvt__gpu_guard gd;
    if ((rc = kvt__gpu_guard_enter(&gd, device)))
        return rc;
    cudaError_t e = RT.cudaMalloc(out, bytes);
    kvt__gpu_guard_leave(&gd);
    if (e == cudaSuccess)
        return 0;
    char what[80];
    snprintf(what, sizeof what, "cudaMalloc of %zu bytes on device %d", bytes, device);
    return kvt__gpu_err(e == cudaErrorMemoryAllocation ? KVT_ENOMEM : KVT_EIO, e, what);
}

void kvt__cuda_free(int device, void *p)
{
    if (!p || kvt__gpu_load_quiet())
        return;
    kvt__gpu_guard gd;
    if (kvt__gpu_guard_enter(&gd, device))
        return;
    RT.cudaFree(p);
    RT.cudaGetLastError();
    kvt__gpu_guard_leave(&gd);
}
