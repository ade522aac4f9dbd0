/* gpu/runtime.c — the CUDA runtime loaded at first use (dlopen, never linked), device facts, the current-device guard. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "gpu/internal.h"

kvt__gpu_state kvt__gpu = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

int kvt__gpu_err(int code, cudaError_t e, const char *what)
{
    const char *name = RT.cudaGetErrorName ? RT.cudaGetErrorName(e) : "?";
    const char *text = RT.cudaGetErrorString ? RT.cudaGetErrorString(e) : "?";
    if (RT.cudaGetLastError)
        RT.cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    return kvt__err(code, "%s: %s (%s)", what, name ? name : "?", text ? text : "?");
}

static void set_why(const char *fmt, const char *a, const char *b)
{
    snprintf(kvt__gpu.why, sizeof kvt__gpu.why, fmt, a ? a : "", b ? b : "");
}

/* dlsym gives an object pointer; ISO C has no cast from it to a function
 * pointer, so the bits are copied (what POSIX guarantees to work). */
static int sym_load(void *handle, const char *name, void *fn_ptr, size_t size)
{
    void *sym = dlsym(handle, name);
    if (sym && size == sizeof sym)
        memcpy(fn_ptr, &sym, sizeof sym);
    return sym != NULL;
}

/* A driver function by name, for the CUDA 12.0 ABI of it. */
static int driver_fn(const char *name, void *fn_ptr, size_t size)
{
    enum cudaDriverEntryPointQueryResult q;
    void *fn = NULL;
    if (RT.cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &q) !=
            cudaSuccess ||
        q != cudaDriverEntryPointSuccess || !fn || size != sizeof fn) {
        RT.cudaGetLastError();
        return 0;
    }
    memcpy(fn_ptr, &fn, sizeof fn);
    return 1;
}

static void *open_runtime(void)
{
    const char *env = getenv("KVTIER_CUDART");
    if (env && *env)
        return dlopen(env, RTLD_NOW | RTLD_LOCAL);
    char name[64], path[sizeof KVT_CUDA_HOME + 80];
    snprintf(name, sizeof name, "libcudart.so.%d", CUDART_MAJOR);
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) { /* not on the loader's path: the toolkit the library was built with */
        snprintf(path, sizeof path, "%s/lib64/%s", KVT_CUDA_HOME, name);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    return h;
}

static void load_once(void)
{
    kvt__gpu.rc = KVT_ENODEV;
    const char *env = getenv("KVTIER_CUDART");
    if (env && strcmp(env, "none") == 0) {
        set_why("CUDA disabled by KVTIER_CUDART=none%s%s", NULL, NULL);
        return;
    }
    /* The driver first: without it the runtime can only fail, and loading
     * the runtime on a machine without a GPU costs time and memory. */
    kvt__gpu.driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!kvt__gpu.driver) {
        set_why("no CUDA driver (%s)%s", dlerror(), NULL);
        return;
    }
    kvt__gpu.handle = open_runtime();
    if (!kvt__gpu.handle) {
        snprintf(kvt__gpu.why, sizeof kvt__gpu.why, "no CUDA runtime libcudart.so.%d (%s)",
                 CUDART_MAJOR, dlerror());
        return;
    }
#define KVT_X_REQ(name)                                                              \
    if (!sym_load(kvt__gpu.handle, #name, &RT.name, sizeof RT.name)) {                      \
        set_why("CUDA runtime lacks %s%s", #name, NULL);                             \
        return;                                                                      \
    }
    KVT_CUDART_REQUIRED(KVT_X_REQ)
#undef KVT_X_REQ
#define KVT_X_OPT(name) sym_load(kvt__gpu.handle, #name, &RT.name, sizeof RT.name);
    KVT_CUDART_OPTIONAL(KVT_X_OPT)
#undef KVT_X_OPT
    int n = 0;
    cudaError_t e = RT.cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        char detail[128];
        snprintf(detail, sizeof detail, "%s: %s",
                 e == cudaSuccess ? "cudaGetDeviceCount" : RT.cudaGetErrorName(e),
                 e == cudaSuccess ? "0 devices" : RT.cudaGetErrorString(e));
        RT.cudaGetLastError();
        set_why("no CUDA device (%s)%s", detail, NULL);
        return;
    }
    kvt__gpu.devs = kvt__calloc((size_t)n, sizeof *kvt__gpu.devs);
    if (!kvt__gpu.devs) {
        set_why("no memory for CUDA device state%s%s", NULL, NULL);
        return;
    }
    for (int d = 0; d < n; d++) {
        pthread_mutex_init(&kvt__gpu.devs[d].lock, NULL);
        pthread_cond_init(&kvt__gpu.devs[d].lane_free, NULL);
    }
    kvt__gpu.ndev = n;

    if (RT.cudaGetDriverEntryPointByVersion) {
        driver_fn("cuStreamWaitValue32", &kvt__gpu.wait32, sizeof kvt__gpu.wait32);
        if (!driver_fn("cuCtxGetCurrent", &kvt__gpu.ctx_get, sizeof kvt__gpu.ctx_get) ||
            !driver_fn("cuCtxSetCurrent", &kvt__gpu.ctx_set, sizeof kvt__gpu.ctx_set))
            kvt__gpu.ctx_get = NULL, kvt__gpu.ctx_set = NULL;
    }

    kvt__gpu.ce_min = KVT_CUDA_CE_MIN_BYTES;
    const char *ce = getenv("KVTIER_CUDA_CE_MIN");
    if (ce && *ce) {
        char *end;
        unsigned long long v = strtoull(ce, &end, 0);
        if (*end == 'K' || *end == 'k')
            v <<= 10;
        else if (*end == 'M' || *end == 'm')
            v <<= 20;
        if (v)
            kvt__gpu.ce_min = (size_t)v;
    }
    const char *m = getenv("KVTIER_CUDA_COPY");
    if (m && strcmp(m, "ce") == 0)
        kvt__gpu.method = METHOD_CE;
    else if (m && strcmp(m, "batch") == 0)
        kvt__gpu.method = METHOD_BATCH;
    else if (m && strcmp(m, "kernel") == 0)
        kvt__gpu.method = METHOD_KERNEL;
    kvt__gpu.rc = 0;
    atomic_store_explicit(&kvt__gpu.usable, 1, memory_order_release);
}

int kvt__gpu_load_quiet(void)
{
    pthread_once(&kvt__gpu.once, load_once);
    return kvt__gpu.rc;
}

int kvt__cuda_load(void)
{
    if (kvt__gpu_load_quiet())
        return kvt__err(KVT_ENODEV, "%s", kvt__gpu.why);
    return 0;
}

const char *kvt__cuda_why(void)
{
    return kvt__gpu_load_quiet() ? kvt__gpu.why : "";
}

int kvt__cuda_device_count(void)
{
    return kvt__gpu_load_quiet() ? 0 : kvt__gpu.ndev;
}

int kvt__cuda_in_process(void)
{
    if (atomic_load_explicit(&kvt__gpu.usable, memory_order_acquire))
        return 1;
    void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    if (!h)
        return 0;
    dlclose(h);
    return 1;
}

const kvt__cudart *kvt__cuda_rt(void)
{
    return kvt__gpu_load_quiet() ? NULL : &kvt__gpu.rt;
}

int kvt__cuda_check_device(int device)
{
    int rc = kvt__cuda_load();
    if (rc)
        return rc;
    if (device < 0 || device >= kvt__gpu.ndev)
        return kvt__err(KVT_ENODEV, "CUDA device %d does not exist (%d visible)", device,
                        kvt__gpu.ndev);
    return 0;
}

/* ---------------------------------------------------------- device guard
 * The library runs on callers' threads (kvt__gpu_guard in gpu/internal.h). */

int kvt__gpu_guard_enter(kvt__gpu_guard *gd, int device)
{
    gd->how = 0;
    if (kvt__gpu.ctx_get && kvt__gpu.ctx_get(&gd->ctx) == 0)
        gd->how = 1;
    else if (RT.cudaGetDevice(&gd->prev) == cudaSuccess)
        gd->how = 2;
    cudaError_t e = RT.cudaSetDevice(device);
    if (e != cudaSuccess) {
        gd->how = 0;
        char what[48];
        snprintf(what, sizeof what, "cudaSetDevice(%d)", device);
        return kvt__gpu_err(KVT_ENODEV, e, what);
    }
    return 0;
}

void kvt__gpu_guard_leave(kvt__gpu_guard *gd)
{
    if (gd->how == 1)
        kvt__gpu.ctx_set(gd->ctx);
    else if (gd->how == 2)
        RT.cudaSetDevice(gd->prev);
}

int kvt__cuda_pci_bus_id(int device, char *buf, size_t cap)
{
    int rc = kvt__cuda_check_device(device);
    if (rc)
        return rc;
    cudaError_t e = RT.cudaDeviceGetPCIBusId(buf, (int)cap, device);
    if (e != cudaSuccess)
        return kvt__gpu_err(KVT_ENODEV, e, "cudaDeviceGetPCIBusId");
    return 0;
}

int kvt__cuda_ptr_device(const void *p, int *device)
{
    int rc = kvt__cuda_load();
    if (rc)
        return rc;
    struct cudaPointerAttributes a;
    cudaError_t e = RT.cudaPointerGetAttributes(&a, p);
    if (e != cudaSuccess) {
        RT.cudaGetLastError();
        return kvt__err(KVT_EMEMKIND, "pointer %p is not known to CUDA (%s)", p,
                        RT.cudaGetErrorString(e));
    }
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
        return kvt__err(KVT_EMEMKIND, "pointer %p is %s host memory, not device memory", p,
                        a.type == cudaMemoryTypeHost ? "pinned" : "pageable");
    *device = a.device;
    return 0;
}

kvt__gpu_dev *kvt__gpu_dev_info(int device)
{
    kvt__gpu_dev *d = &kvt__gpu.devs[device];
    pthread_mutex_lock(&d->lock);
    if (!d->info_done) {
        int v = 0;
        d->sm_count = RT.cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device) ==
                              cudaSuccess && v > 0
                          ? v
                          : 16;
        v = 0;
        d->host_ptr_ok =
            RT.cudaDeviceGetAttribute(&v, cudaDevAttrCanUseHostPointerForRegisteredMem, device) ==
                cudaSuccess &&
            v;
        RT.cudaGetLastError();
        d->info_done = 1;
    }
    pthread_mutex_unlock(&d->lock);
    return d;
}
