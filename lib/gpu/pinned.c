/* gpu/pinned.c — pinned host regions: the DRAM arena registered by chunks in the background, and the layer's own staging. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "alloc.h"
#include "clock.h"
#include "error.h"
#include "gpu/internal.h"

struct kvt__cuda_region {
    struct kvt__cuda_region *next;
    char *base;
    size_t bytes;
    size_t chunk;
    size_t nchunks;
    int device;
    _Atomic unsigned char *pinned; /* per chunk: 1 once registered */
    pthread_mutex_t lock;          /* start and stop */
    _Atomic int started;
    _Atomic int stop;
    pthread_t threads[KVT_CUDA_PIN_THREADS];
    int nthreads;
    _Atomic size_t next_chunk;
    _Atomic int active;
    _Atomic uint64_t pinned_bytes;
    _Atomic uint64_t pin_ns;
    uint64_t t0;
};

pthread_rwlock_t kvt__gpu_regions_lock = PTHREAD_RWLOCK_INITIALIZER;
static kvt__cuda_region *regions;

static size_t gcd(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static kvt__cuda_region *region_new(void *base, size_t bytes, size_t chunk, int device)
{
    kvt__cuda_region *r = kvt__calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->base = base;
    r->bytes = bytes;
    r->chunk = chunk;
    r->nchunks = (bytes + chunk - 1) / chunk;
    r->device = device;
    r->pinned = kvt__calloc(r->nchunks, 1);
    if (!r->pinned) {
        kvt__free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    pthread_rwlock_wrlock(&kvt__gpu_regions_lock);
    r->next = regions;
    regions = r;
    pthread_rwlock_unlock(&kvt__gpu_regions_lock);
    return r;
}

int kvt__cuda_region_add(void *base, size_t bytes, size_t unit, int device,
                         kvt__cuda_region **out)
{
    *out = NULL;
    if (!base || !bytes || !unit)
        return kvt__err(KVT_EINVAL, "CUDA region: empty");
    /* Chunks hold whole slots (a fragment never spans two registrations)
     * and whole pages (registrations never share one). */
    size_t page = 4096, l = unit / gcd(unit, page);
    size_t lcm = l <= SIZE_MAX / page ? l * page : 0;
    size_t chunk = bytes;
    if (lcm && lcm < bytes)
        chunk = lcm * (KVT_CUDA_PIN_CHUNK > lcm ? KVT_CUDA_PIN_CHUNK / lcm : 1);
    *out = region_new(base, bytes, chunk, device);
    return *out ? 0 : kvt__err(KVT_ENOMEM, "CUDA region of %zu bytes", bytes);
}

static void *pin_main(void *arg)
{
    kvt__cuda_region *r = arg;
    /* Registration happens in the current context: the region's device. */
    int ok = RT.cudaSetDevice(r->device) == cudaSuccess;
    while (ok && !atomic_load_explicit(&r->stop, memory_order_acquire)) {
        size_t c = atomic_fetch_add(&r->next_chunk, 1);
        if (c >= r->nchunks)
            break;
        size_t len = c + 1 == r->nchunks ? r->bytes - c * r->chunk : r->chunk;
        cudaError_t e = RT.cudaHostRegister(r->base + c * r->chunk, len,
                                            cudaHostRegisterPortable | cudaHostRegisterMapped);
        if (e != cudaSuccess) {
            /* The rest stays pageable: copies still work, more slowly. */
            RT.cudaGetLastError();
            atomic_store(&r->stop, 1);
            break;
        }
        atomic_store_explicit(&r->pinned[c], 1, memory_order_release);
        atomic_fetch_add(&r->pinned_bytes, len);
    }
    if (atomic_fetch_sub(&r->active, 1) == 1)
        atomic_store(&r->pin_ns, kvt__monotonic_ns() - r->t0 + 1);
    return NULL;
}

void kvt__cuda_region_pin(kvt__cuda_region *r)
{
    if (!r || atomic_load_explicit(&r->started, memory_order_acquire) || kvt__gpu_load_quiet() ||
        r->device < 0 || r->device >= kvt__gpu.ndev)
        return;
    pthread_mutex_lock(&r->lock);
    if (!r->started) {
        r->started = 1;
        r->t0 = kvt__monotonic_ns();
        int want = r->nchunks < KVT_CUDA_PIN_THREADS ? (int)r->nchunks : KVT_CUDA_PIN_THREADS;
        atomic_store(&r->active, want);
        for (int i = 0; i < want; i++) {
            if (pthread_create(&r->threads[r->nthreads], NULL, pin_main, r) == 0) {
                r->nthreads++;
            } else if (atomic_fetch_sub(&r->active, 1) == 1) {
                atomic_store(&r->pin_ns, kvt__monotonic_ns() - r->t0 + 1);
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
}

void kvt__cuda_region_pin_at(const void *addr)
{
    if (!addr)
        return;
    kvt__cuda_region *hit = NULL;
    pthread_rwlock_rdlock(&kvt__gpu_regions_lock);
    for (kvt__cuda_region *r = regions; r; r = r->next)
        if ((const char *)addr >= r->base && (const char *)addr < r->base + r->bytes)
            hit = r;
    pthread_rwlock_unlock(&kvt__gpu_regions_lock);
    /* Called as the HBM tier opens, while the DRAM tier (which removes the
     * region when it closes) is open: the region can't go away meanwhile. */
    kvt__cuda_region_pin(hit);
}

void kvt__cuda_region_remove(kvt__cuda_region *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    r->nthreads = 0;
    pthread_mutex_unlock(&r->lock);
    pthread_rwlock_wrlock(&kvt__gpu_regions_lock);
    for (kvt__cuda_region **p = &regions; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    pthread_rwlock_unlock(&kvt__gpu_regions_lock);
    if (atomic_load(&r->pinned_bytes)) {
        kvt__gpu_guard gd;
        int entered = kvt__gpu_guard_enter(&gd, r->device) == 0;
        for (size_t c = 0; c < r->nchunks; c++)
            if (atomic_load(&r->pinned[c]))
                RT.cudaHostUnregister(r->base + c * r->chunk);
        RT.cudaGetLastError();
        if (entered)
            kvt__gpu_guard_leave(&gd);
    }
    pthread_mutex_destroy(&r->lock);
    kvt__free((void *)r->pinned);
    kvt__free(r);
}

void kvt__cuda_region_stats(kvt__cuda_region *r, uint64_t *pinned_bytes, uint64_t *pin_ms)
{
    *pinned_bytes = r ? atomic_load(&r->pinned_bytes) : 0;
    uint64_t ns = r ? atomic_load(&r->pin_ns) : 0;
    *pin_ms = ns ? (ns + 500000) / 1000000 : 0;
}

int kvt__gpu_host_pinned_locked(const void *p, size_t len)
{
    const char *a = p;
    int yes = 0;
    for (kvt__cuda_region *r = regions; r; r = r->next) {
        if (a < r->base || a >= r->base + r->bytes)
            continue;
        if (len > (size_t)(r->base + r->bytes - a))
            break;
        size_t c0 = (size_t)(a - r->base) / r->chunk;
        size_t c1 = (size_t)(a + (len ? len - 1 : 0) - r->base) / r->chunk;
        yes = 1;
        for (size_t c = c0; c <= c1 && yes; c++)
            yes = atomic_load_explicit(&r->pinned[c], memory_order_acquire);
        break;
    }
    return yes;
}

int kvt__cuda_host_pinned(const void *p, size_t len)
{
    pthread_rwlock_rdlock(&kvt__gpu_regions_lock);
    int yes = kvt__gpu_host_pinned_locked(p, len);
    pthread_rwlock_unlock(&kvt__gpu_regions_lock);
    return yes;
}

void kvt__gpu_staging_region(void *base, size_t bytes)
{
    kvt__cuda_region *r = region_new(base, bytes, bytes, -1);
    if (r) {
        atomic_store(&r->pinned[0], 1);
        atomic_store(&r->pinned_bytes, bytes);
    }
}
