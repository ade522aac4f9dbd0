/* cuda.c — the CUDA access layer: runtime loading, copy methods, lanes, pinned regions, stream gates, NVMe bounce. */
#include "cuda.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "error.h"

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

static int flags_ok(const kvt_io_opts *o, const char *fn)
{
    const uint32_t known = KVT_IO_NO_PROMOTE | KVT_IO_STREAM_WAIT | KVT_IO_DURABLE;
    if (o->flags & ~known)
        return kvt__err(KVT_EINVAL, "%s: unknown or reserved flags 0x%x", fn, o->flags & ~known);
    return 0;
}

#if !KVT_HAVE_CUDA
/* ===================================================== built without CUDA */

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
    int rc = flags_ok(o, fn);
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

static int all_status(kvt_xfer *x, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        x[i].status = code;
    return n ? kvt__err(code, "device memory needs a CUDA build of kvtier") : 0;
}

int kvt__cuda_tier_write(const kvt_tier_ops *ops, kvt_tier_impl *t, kvt_xfer *x, size_t n,
                         kvt_mem_kind mem, uint64_t block_bytes)
{
    (void)block_bytes;
    if (mem == KVT_MEM_CUDA && !(ops->caps & KVT_TCAP_CUDA_MEM))
        return all_status(x, n, KVT_EMEMKIND);
    return ops->write(t, x, n, mem);
}

int kvt__cuda_tier_read(const kvt_tier_ops *ops, kvt_tier_impl *t, kvt_xfer *x, size_t n,
                        kvt_mem_kind mem, uint64_t block_bytes)
{
    (void)block_bytes;
    if (mem == KVT_MEM_CUDA && !(ops->caps & KVT_TCAP_CUDA_MEM))
        return all_status(x, n, KVT_EMEMKIND);
    return ops->read(t, x, n, mem);
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

#else
/* ========================================================== CUDA builds */

#include <dlfcn.h>

/* The fatbin of lib/tier/hbm_kernels.cu, generated at build time. */
extern const unsigned char kvt__hbm_fatbin[];
extern const size_t kvt__hbm_fatbin_len;

/* The runtime's soname for the headers built against: 13000 -> 13. Only
 * that major is loaded: cudaMemcpyBatchAsync changed its signature between
 * 12 and 13, and a runtime of another major is another ABI. */
#define CUDART_MAJOR (CUDART_VERSION / 1000)

/* Driver API pieces reached through cudaGetDriverEntryPointByVersion (the
 * driver the runtime already loaded), declared here rather than including
 * CUDA's <cuda.h>, which lib/cuda.h shadows on the include path. These are
 * stable ABI: CUresult is an int enum, CUstream is cudaStream_t, CUcontext
 * a pointer, CUdeviceptr 64 bits. */
typedef int (*pfn_wait_value32)(cudaStream_t stream, unsigned long long addr, uint32_t value,
                                unsigned flags);
typedef int (*pfn_ctx_get)(void **ctx);
typedef int (*pfn_ctx_set)(void *ctx);
#define CU_STREAM_WAIT_VALUE_GEQ 0x0

/* Descriptor of one kernel piece; the layout of kvt_copy_desc in the .cu. */
typedef struct kvt__cuda_desc {
    const void *src;
    void *dst;
    unsigned long long len;
    unsigned long long pad;
} kvt__cuda_desc;

enum { METHOD_AUTO = 0, METHOD_CE, METHOD_BATCH, METHOD_KERNEL };

/* Descriptors per half of a lane; a batch with more pieces launches in
 * rounds. 8192 x 64 KiB pieces = 512 MiB per launch at most. */
#define LANE_DESC 8192
/* Lanes (stream + staging) per device: enough for every worker and caller
 * thread of a few stores; more callers wait for a free lane. */
#define LANES_MAX 64
/* cudaMemcpyBatchAsync copies per call. */
#define BATCH_MAX 4096
/* Gate words per pinned page (one 64-byte line each). */
#define GATE_WORDS 64

typedef struct lane {
    struct lane *next;
    int device;
    cudaStream_t stream;
    cudaEvent_t ev[2];
    kvt__cuda_desc *desc_host[2]; /* pinned: filled by the host */
    kvt__cuda_desc *desc_dev[2];  /* device copies the kernel reads */
    char *staging;                /* pinned, KVT_CUDA_STAGING_BYTES, on first bounce */
    /* cudaMemcpyBatchAsync arguments, grown as needed. */
    void **bdst;
    const void **bsrc;
    size_t *blen;
    size_t bcap;
} lane;

typedef struct ev_node {
    struct ev_node *next;
    cudaEvent_t ev;
} ev_node;

typedef struct dev_state {
    pthread_mutex_t lock;
    pthread_cond_t lane_free;
    int info_done;
    int sm_count;
    int host_ptr_ok; /* kernels may use registered host memory at its host address */
    lane *lanes;     /* free list */
    int nlanes;      /* created */
    ev_node *events; /* free list */
} dev_state;

typedef struct gate {
    struct gate *next;
    _Atomic uint32_t *word; /* pinned, mapped host memory the GPU polls */
    uint32_t seq;           /* last value waited for */
} gate;

static struct {
    pthread_once_t once;
    int rc;
    char why[256];
    void *driver, *handle;
    kvt__cudart rt;
    _Atomic int usable; /* set once loading succeeded: cheap test for the hot path */
    int ndev;
    dev_state *devs;
    int method;
    size_t ce_min;
    pfn_wait_value32 wait32;
    pfn_ctx_get ctx_get;
    pfn_ctx_set ctx_set;

    pthread_mutex_t lock; /* kernels, gates */
    int kernel_state;     /* 0 not tried, 1 loaded, -1 failed */
    char kernel_why[160];
    cudaLibrary_t lib;
    cudaKernel_t copy_kernel, gate_kernel;
    gate *gates;
} g = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

#define RT (g.rt)

static int cuda_err(int code, cudaError_t e, const char *what)
{
    const char *name = RT.cudaGetErrorName ? RT.cudaGetErrorName(e) : "?";
    const char *text = RT.cudaGetErrorString ? RT.cudaGetErrorString(e) : "?";
    if (RT.cudaGetLastError)
        RT.cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    return kvt__err(code, "%s: %s (%s)", what, name ? name : "?", text ? text : "?");
}

static void set_why(const char *fmt, const char *a, const char *b)
{
    snprintf(g.why, sizeof g.why, fmt, a ? a : "", b ? b : "");
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
    g.rc = KVT_ENODEV;
    const char *env = getenv("KVTIER_CUDART");
    if (env && strcmp(env, "none") == 0) {
        set_why("CUDA disabled by KVTIER_CUDART=none%s%s", NULL, NULL);
        return;
    }
    /* The driver first: without it the runtime can only fail, and loading
     * the runtime on a machine without a GPU costs time and memory. */
    g.driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!g.driver) {
        set_why("no CUDA driver (%s)%s", dlerror(), NULL);
        return;
    }
    g.handle = open_runtime();
    if (!g.handle) {
        snprintf(g.why, sizeof g.why, "no CUDA runtime libcudart.so.%d (%s)", CUDART_MAJOR,
                 dlerror());
        return;
    }
#define KVT_X_REQ(name)                                                              \
    if (!sym_load(g.handle, #name, &RT.name, sizeof RT.name)) {                      \
        set_why("CUDA runtime lacks %s%s", #name, NULL);                             \
        return;                                                                      \
    }
    KVT_CUDART_REQUIRED(KVT_X_REQ)
#undef KVT_X_REQ
#define KVT_X_OPT(name) sym_load(g.handle, #name, &RT.name, sizeof RT.name);
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
    g.devs = kvt__calloc((size_t)n, sizeof *g.devs);
    if (!g.devs) {
        set_why("no memory for CUDA device state%s%s", NULL, NULL);
        return;
    }
    for (int d = 0; d < n; d++) {
        pthread_mutex_init(&g.devs[d].lock, NULL);
        pthread_cond_init(&g.devs[d].lane_free, NULL);
    }
    g.ndev = n;

    if (RT.cudaGetDriverEntryPointByVersion) {
        driver_fn("cuStreamWaitValue32", &g.wait32, sizeof g.wait32);
        if (!driver_fn("cuCtxGetCurrent", &g.ctx_get, sizeof g.ctx_get) ||
            !driver_fn("cuCtxSetCurrent", &g.ctx_set, sizeof g.ctx_set))
            g.ctx_get = NULL, g.ctx_set = NULL;
    }

    g.ce_min = KVT_CUDA_CE_MIN_BYTES;
    const char *ce = getenv("KVTIER_CUDA_CE_MIN");
    if (ce && *ce) {
        char *end;
        unsigned long long v = strtoull(ce, &end, 0);
        if (*end == 'K' || *end == 'k')
            v <<= 10;
        else if (*end == 'M' || *end == 'm')
            v <<= 20;
        if (v)
            g.ce_min = (size_t)v;
    }
    const char *m = getenv("KVTIER_CUDA_COPY");
    if (m && strcmp(m, "ce") == 0)
        g.method = METHOD_CE;
    else if (m && strcmp(m, "batch") == 0)
        g.method = METHOD_BATCH;
    else if (m && strcmp(m, "kernel") == 0)
        g.method = METHOD_KERNEL;
    g.rc = 0;
    atomic_store_explicit(&g.usable, 1, memory_order_release);
}

/* Loads without touching this thread's error message. */
static int load_quiet(void)
{
    pthread_once(&g.once, load_once);
    return g.rc;
}

int kvt__cuda_load(void)
{
    if (load_quiet())
        return kvt__err(KVT_ENODEV, "%s", g.why);
    return 0;
}

const char *kvt__cuda_why(void)
{
    return load_quiet() ? g.why : "";
}

int kvt__cuda_device_count(void)
{
    return load_quiet() ? 0 : g.ndev;
}

int kvt__cuda_in_process(void)
{
    if (atomic_load_explicit(&g.usable, memory_order_acquire))
        return 1;
    void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    if (!h)
        return 0;
    dlclose(h);
    return 1;
}

const kvt__cudart *kvt__cuda_rt(void)
{
    return load_quiet() ? NULL : &g.rt;
}

int kvt__cuda_check_device(int device)
{
    int rc = kvt__cuda_load();
    if (rc)
        return rc;
    if (device < 0 || device >= g.ndev)
        return kvt__err(KVT_ENODEV, "CUDA device %d does not exist (%d visible)", device, g.ndev);
    return 0;
}

/* ---------------------------------------------------------- device guard
 * The library runs on callers' threads: whatever device or context a
 * caller had current is put back, and a thread that had none is left with
 * none (restoring "device 0" would create a context on it). */
typedef struct guard {
    void *ctx;
    int prev;
    int how; /* 0 nothing to restore, 1 context, 2 device */
} guard;

static int guard_enter(guard *gd, int device)
{
    gd->how = 0;
    if (g.ctx_get && g.ctx_get(&gd->ctx) == 0)
        gd->how = 1;
    else if (RT.cudaGetDevice(&gd->prev) == cudaSuccess)
        gd->how = 2;
    cudaError_t e = RT.cudaSetDevice(device);
    if (e != cudaSuccess) {
        gd->how = 0;
        char what[48];
        snprintf(what, sizeof what, "cudaSetDevice(%d)", device);
        return cuda_err(KVT_ENODEV, e, what);
    }
    return 0;
}

static void guard_leave(guard *gd)
{
    if (gd->how == 1)
        g.ctx_set(gd->ctx);
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
        return cuda_err(KVT_ENODEV, e, "cudaDeviceGetPCIBusId");
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

/* Device facts the copy paths need, read once per device. */
static dev_state *dev_info(int device)
{
    dev_state *d = &g.devs[device];
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

/* -------------------------------------------------------------- kernels */

static int kernels_load(void)
{
    pthread_mutex_lock(&g.lock);
    if (!g.kernel_state) {
        g.kernel_state = -1;
        if (!RT.cudaLibraryLoadData || !RT.cudaLibraryGetKernel) {
            snprintf(g.kernel_why, sizeof g.kernel_why, "runtime lacks cudaLibraryLoadData");
        } else {
            cudaError_t e = RT.cudaLibraryLoadData(&g.lib, kvt__hbm_fatbin, NULL, NULL, 0, NULL,
                                                   NULL, 0);
            if (e == cudaSuccess)
                e = RT.cudaLibraryGetKernel(&g.copy_kernel, g.lib, "kvt_copy_kernel");
            if (e == cudaSuccess)
                e = RT.cudaLibraryGetKernel(&g.gate_kernel, g.lib, "kvt_gate_wait");
            if (e == cudaSuccess) {
                g.kernel_state = 1;
            } else {
                snprintf(g.kernel_why, sizeof g.kernel_why, "loading the fatbin (%zu bytes): %s",
                         kvt__hbm_fatbin_len, RT.cudaGetErrorString(e));
                RT.cudaGetLastError();
            }
        }
    }
    int ok = g.kernel_state == 1;
    pthread_mutex_unlock(&g.lock);
    return ok;
}

int kvt__cuda_kernel(const void *fatbin, const char *name, cudaLibrary_t *lib, cudaKernel_t *out)
{
    int rc = kvt__cuda_load();
    if (rc)
        return rc;
    if (!RT.cudaLibraryLoadData || !RT.cudaLibraryGetKernel)
        return kvt__err(KVT_ENOTSUP, "CUDA runtime lacks cudaLibraryLoadData");
    cudaError_t e = cudaSuccess;
    pthread_mutex_lock(&g.lock);
    if (!*lib)
        e = RT.cudaLibraryLoadData(lib, fatbin, NULL, NULL, 0, NULL, NULL, 0);
    pthread_mutex_unlock(&g.lock);
    if (e == cudaSuccess)
        e = RT.cudaLibraryGetKernel(out, *lib, name);
    return e == cudaSuccess ? 0 : cuda_err(KVT_EIO, e, name);
}

const char *kvt__cuda_small_method(int device, const char **why_not_kernel)
{
    static const char *const names[] = {"auto", "ce", "batch", "kernel"};
    *why_not_kernel = "";
    if (load_quiet()) {
        *why_not_kernel = g.why;
        return "none";
    }
    if (g.method)
        return names[g.method];
    if (device < 0 || device >= g.ndev)
        return "none";
    if (!kernels_load()) {
        *why_not_kernel = g.kernel_why;
        return RT.cudaMemcpyBatchAsync ? "batch" : "ce";
    }
    if (!dev_info(device)->host_ptr_ok)
        *why_not_kernel = "device cannot use registered host memory at its host address";
    return "kernel";
}

/* ---------------------------------------------------------------- lanes */

/* For a lane that failed half-way through creation. Its memory is left
 * allocated: freeing device or pinned memory synchronizes the device, and
 * this thread may be the one an engine's gated stream is waiting for. */
static void lane_destroy(lane *l)
{
    for (int h = 0; h < 2; h++)
        if (l->ev[h])
            RT.cudaEventDestroy(l->ev[h]);
    if (l->stream)
        RT.cudaStreamDestroy(l->stream);
    kvt__free(l);
}

/* A free lane of `device` (current device already set by the caller). */
static int lane_get(int device, lane **out)
{
    dev_state *d = dev_info(device);
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

    lane *l = kvt__calloc(1, sizeof *l);
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
        int rc = l ? cuda_err(e == cudaErrorMemoryAllocation ? KVT_ENOMEM : KVT_EIO, e, what)
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

static void lane_put(lane *l)
{
    dev_state *d = &g.devs[l->device];
    pthread_mutex_lock(&d->lock);
    l->next = d->lanes;
    d->lanes = l;
    pthread_cond_signal(&d->lane_free);
    pthread_mutex_unlock(&d->lock);
}

static int lane_sync(lane *l)
{
    cudaError_t e = RT.cudaStreamSynchronize(l->stream);
    return e == cudaSuccess ? 0 : cuda_err(KVT_EIO, e, "copy stream");
}

/* -------------------------------------------------------- pinned regions */

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

static pthread_rwlock_t regions_lock = PTHREAD_RWLOCK_INITIALIZER;
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
    pthread_rwlock_wrlock(&regions_lock);
    r->next = regions;
    regions = r;
    pthread_rwlock_unlock(&regions_lock);
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
    if (!r || atomic_load_explicit(&r->started, memory_order_acquire) || load_quiet() ||
        r->device < 0 || r->device >= g.ndev)
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
    pthread_rwlock_rdlock(&regions_lock);
    for (kvt__cuda_region *r = regions; r; r = r->next)
        if ((const char *)addr >= r->base && (const char *)addr < r->base + r->bytes)
            hit = r;
    pthread_rwlock_unlock(&regions_lock);
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
    pthread_rwlock_wrlock(&regions_lock);
    for (kvt__cuda_region **p = &regions; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    pthread_rwlock_unlock(&regions_lock);
    if (atomic_load(&r->pinned_bytes)) {
        guard gd;
        int entered = guard_enter(&gd, r->device) == 0;
        for (size_t c = 0; c < r->nchunks; c++)
            if (atomic_load(&r->pinned[c]))
                RT.cudaHostUnregister(r->base + c * r->chunk);
        RT.cudaGetLastError();
        if (entered)
            guard_leave(&gd);
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

/* regions_lock held (for reading). */
static int host_pinned_locked(const void *p, size_t len)
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
    pthread_rwlock_rdlock(&regions_lock);
    int yes = host_pinned_locked(p, len);
    pthread_rwlock_unlock(&regions_lock);
    return yes;
}

/* Pinned memory the layer allocated itself (staging): a region born pinned,
 * never removed. */
static void staging_region(void *base, size_t bytes)
{
    kvt__cuda_region *r = region_new(base, bytes, bytes, -1);
    if (r) {
        atomic_store(&r->pinned[0], 1);
        atomic_store(&r->pinned_bytes, bytes);
    }
}

/* ------------------------------------------------------------- copying */

static int aligned16(const void *a, const void *b)
{
    return (((uintptr_t)a | (uintptr_t)b) & 15) == 0;
}

/* The method for one piece (see kvt__cuda_copy). regions_lock held. */
static int choose(const dev_state *d, kvt__cuda_dir dir, int kernel_d2d, const kvt__copy_op *op,
                  int kernels, int *pageable)
{
    const void *host = dir == KVT__CUDA_H2D ? op->src : dir == KVT__CUDA_D2H ? op->dst : NULL;
    int pinned = !host || host_pinned_locked(host, op->len);
    *pageable = !pinned;
    int kernel_ok = kernels && aligned16(op->src, op->dst) &&
                    (dir == KVT__CUDA_D2D ? kernel_d2d : pinned && d->host_ptr_ok);
    int batch_ok = RT.cudaMemcpyBatchAsync != NULL;
    switch (g.method) {
    case METHOD_CE:
        return METHOD_CE;
    case METHOD_BATCH:
        return batch_ok ? METHOD_BATCH : METHOD_CE;
    case METHOD_KERNEL:
        return kernel_ok ? METHOD_KERNEL : batch_ok ? METHOD_BATCH : METHOD_CE;
    }
    if (op->len >= g.ce_min)
        return METHOD_CE;
    if (kernel_ok && (op->len < KVT_CUDA_BATCH_MIN_BYTES || !batch_ok))
        return METHOD_KERNEL;
    return batch_ok ? METHOD_BATCH : METHOD_CE;
}

static int batch_grow(lane *l, size_t want)
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

static int batch_flush(lane *l, size_t k)
{
    if (!k)
        return 0;
    struct cudaMemcpyAttributes attr;
    memset(&attr, 0, sizeof attr);
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    size_t idx = 0;
    cudaError_t e = RT.cudaMemcpyBatchAsync((void *const *)l->bdst, (const void *const *)l->bsrc,
                                            l->blen, k, &attr, &idx, 1, l->stream);
    return e == cudaSuccess ? 0 : cuda_err(KVT_EIO, e, "cudaMemcpyBatchAsync");
}

static int kernel_flush(lane *l, const dev_state *d, int half, unsigned k)
{
    if (!k)
        return 0;
    cudaError_t e = RT.cudaMemcpyAsync(l->desc_dev[half], l->desc_host[half],
                                       k * sizeof(kvt__cuda_desc), cudaMemcpyHostToDevice,
                                       l->stream);
    if (e != cudaSuccess)
        return cuda_err(KVT_EIO, e, "copy descriptors");
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
    e = RT.cudaLaunchKernel((const void *)g.copy_kernel, gdim, bdim, args, 0, l->stream);
    return e == cudaSuccess ? 0 : cuda_err(KVT_EIO, e, "kvt_copy_kernel launch");
}

#define CADD(c, field, v)                                                              \
    do {                                                                              \
        if (c)                                                                        \
            atomic_fetch_add_explicit(&(c)->field, (v), memory_order_relaxed);       \
    } while (0)

/* Queues the pieces on the lane's stream, using descriptor half `half`
 * (whose previous kernel must have completed), or with half < 0 both halves
 * in turn (the caller owns the lane's events and waits for the stream after).
 * Returns without waiting for the last launch. */
static int lane_enqueue(lane *l, kvt__cuda_dir dir, int kernel_d2d, const kvt__copy_op *ops,
                        size_t n, int half, kvt__cuda_counters *c)
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
    const dev_state *d = &g.devs[l->device];
    int kernels = (g.method == METHOD_AUTO || g.method == METHOD_KERNEL) && kernels_load();
    unsigned nk = 0;
    size_t nb = 0;
    int rc = 0;
    /* Once per batch, not per piece: regions only go away when their tier
     * closes, never while it copies. */
    pthread_rwlock_rdlock(&regions_lock);
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
                rc = cuda_err(KVT_EIO, e, "cudaMemcpyAsync");
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
                            rc = cuda_err(KVT_EIO, e, "descriptor half");
                    } else if (!rc) {
                        rc = lane_sync(l);
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
    pthread_rwlock_unlock(&regions_lock);
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
    guard gd;
    if ((rc = guard_enter(&gd, device)))
        return rc;
    lane *l;
    rc = lane_get(device, &l);
    if (!rc) {
        rc = lane_enqueue(l, dir, kernel_d2d, ops, n, -1, c);
        /* Wait even after a failed enqueue: what was queued still reads
         * and writes memory the caller is about to reuse. */
        int rs = lane_sync(l);
        if (!rc && rs) {
            rc = rs;
            CADD(c, errors, 1);
        }
        lane_put(l);
    }
    guard_leave(&gd);
    return rc;
}

int kvt__cuda_malloc(int device, size_t bytes, void **out)
{
    int rc = kvt__cuda_check_device(device);
    if (rc)
        return rc;
    guard gd;
    if ((rc = guard_enter(&gd, device)))
        return rc;
    cudaError_t e = RT.cudaMalloc(out, bytes);
    guard_leave(&gd);
    if (e == cudaSuccess)
        return 0;
    char what[80];
    snprintf(what, sizeof what, "cudaMalloc of %zu bytes on device %d", bytes, device);
    return cuda_err(e == cudaErrorMemoryAllocation ? KVT_ENOMEM : KVT_EIO, e, what);
}

void kvt__cuda_free(int device, void *p)
{
    if (!p || load_quiet())
        return;
    guard gd;
    if (guard_enter(&gd, device))
        return;
    RT.cudaFree(p);
    RT.cudaGetLastError();
    guard_leave(&gd);
}

/* ---------------------------------------------------- events and gates */

static int event_get(int device, cudaEvent_t *out)
{
    dev_state *d = &g.devs[device];
    pthread_mutex_lock(&d->lock);
    ev_node *e = d->events;
    if (e)
        d->events = e->next;
    pthread_mutex_unlock(&d->lock);
    if (e) {
        *out = e->ev;
        kvt__free(e);
        return 0;
    }
    /* Timing off: recording and waiting are cheaper without it. */
    cudaError_t err = RT.cudaEventCreateWithFlags(out, cudaEventDisableTiming);
    return err == cudaSuccess ? 0 : cuda_err(KVT_EIO, err, "cudaEventCreateWithFlags");
}

static void event_put(int device, cudaEvent_t ev)
{
    ev_node *e = kvt__malloc(sizeof *e);
    if (!e) {
        RT.cudaEventDestroy(ev);
        return;
    }
    e->ev = ev;
    dev_state *d = &g.devs[device];
    pthread_mutex_lock(&d->lock);
    e->next = d->events;
    d->events = e;
    pthread_mutex_unlock(&d->lock);
}

/* A gate word: pinned, mapped, portable host memory, so the GPU of any
 * device can poll it and the host can open it with a plain store, which
 * works even when the CUDA context has failed. Words are reused with ever
 * larger values, so a stream still waiting on an old value is released by
 * any later one. */
static int gate_get(gate **out)
{
    pthread_mutex_lock(&g.lock);
    if (!g.gates) {
        _Atomic uint32_t *page = NULL;
        cudaError_t e = RT.cudaHostAlloc((void **)&page, GATE_WORDS * 64,
                                         cudaHostAllocPortable | cudaHostAllocMapped);
        gate *gs = e == cudaSuccess ? kvt__calloc(GATE_WORDS, sizeof *gs) : NULL;
        if (!gs) {
            pthread_mutex_unlock(&g.lock);
            return e == cudaSuccess ? kvt__err(KVT_ENOMEM, "stream gates")
                                    : cuda_err(KVT_ENOMEM, e, "cudaHostAlloc (stream gates)");
        }
        for (int i = 0; i < GATE_WORDS; i++) {
            gs[i].word = (_Atomic uint32_t *)((char *)page + 64 * i);
            atomic_store(gs[i].word, 0);
            gs[i].next = i + 1 < GATE_WORDS ? &gs[i + 1] : NULL;
        }
        g.gates = gs;
    }
    *out = g.gates;
    g.gates = g.gates->next;
    pthread_mutex_unlock(&g.lock);
    return 0;
}

static void gate_put(gate *gt)
{
    pthread_mutex_lock(&g.lock);
    gt->next = g.gates;
    g.gates = gt;
    pthread_mutex_unlock(&g.lock);
}

/* Holds `stream` (current device = its device) until gate_open(gt). */
static int gate_install(gate *gt, cudaStream_t stream)
{
    uint32_t v = ++gt->seq;
    if (g.wait32 && g.wait32(stream, (unsigned long long)(uintptr_t)gt->word, v,
                             CU_STREAM_WAIT_VALUE_GEQ) == 0)
        return 0;
    RT.cudaGetLastError();
    /* The driver refused a stream memory operation: a one-thread kernel
     * polls the word instead. */
    if (kernels_load()) {
        dim3 one = {1, 1, 1};
        const volatile uint32_t *w = (const volatile uint32_t *)gt->word;
        void *args[] = {&w, &v};
        cudaError_t e = RT.cudaLaunchKernel((const void *)g.gate_kernel, one, one, args, 0, stream);
        if (e == cudaSuccess)
            return 0;
        return cuda_err(KVT_ENOTSUP, e, "KVT_IO_STREAM_WAIT: can't make the stream wait");
    }
    return kvt__err(KVT_ENOTSUP,
                    "KVT_IO_STREAM_WAIT: the driver refuses cuStreamWaitValue32 and the kernels "
                    "are unavailable (%s)",
                    g.kernel_why);
}

static void gate_open(gate *gt)
{
    atomic_store_explicit(gt->word, gt->seq, memory_order_release);
}

/* ----------------------------------------------------------- call context */

#define CALL_MAGIC 0x6b766363u /* "kvcc" */

typedef struct call_ctx {
    uint32_t magic;
    int device;
    cudaEvent_t ev; /* recorded on the caller's stream at the call */
    gate *gate;     /* KVT_IO_STREAM_WAIT: holds the caller's stream */
} call_ctx;

/* The device of a stream. The special handles (legacy, per-thread) are the
 * calling thread's current device. */
static int stream_device(cudaStream_t s, int fallback, int *out)
{
    *out = fallback;
    if (RT.cudaStreamGetDevice) {
        cudaError_t e = RT.cudaStreamGetDevice(s, out);
        if (e != cudaSuccess)
            return cuda_err(KVT_EINVAL, e, "opts->stream is not a usable CUDA stream");
    }
    return kvt__cuda_check_device(*out);
}

int kvt__cuda_check_io(const kvt_io_opts *o, void *const *ptrs, size_t nptrs, const char *fn)
{
    int rc = o ? flags_ok(o, fn) : 0;
    if (rc)
        return rc;
    if (!o || o->mem_kind != KVT_MEM_CUDA) {
        /* Device memory labelled as host would crash a memcpy: catch it,
         * but only where CUDA is already in use (no cost elsewhere). */
        if (nptrs && atomic_load_explicit(&g.usable, memory_order_acquire)) {
            struct cudaPointerAttributes a;
            if (RT.cudaPointerGetAttributes(&a, ptrs[0]) == cudaSuccess &&
                a.type == cudaMemoryTypeDevice)
                return kvt__err(KVT_EMEMKIND,
                                "%s: fragment pointer 0 (%p) is device memory of device %d but "
                                "opts->mem_kind is KVT_MEM_HOST",
                                fn, ptrs[0], a.device);
            RT.cudaGetLastError();
        }
        if (!o || !o->stream)
            return 0;
    }
    if (load_quiet())
        return kvt__err(KVT_ENODEV, "%s: %s needs CUDA: %s", fn,
                        o->mem_kind == KVT_MEM_CUDA ? "device memory" : "a stream", g.why);
    if (o->mem_kind == KVT_MEM_CUDA) {
        if (o->device < 0 || o->device >= g.ndev)
            return kvt__err(KVT_ENODEV, "%s: opts->device %d does not exist (%d visible)", fn,
                            o->device, g.ndev);
        for (size_t k = 0; k < 2 && nptrs; k++) {
            size_t i = k ? nptrs - 1 : 0;
            struct cudaPointerAttributes a;
            cudaError_t e = RT.cudaPointerGetAttributes(&a, ptrs[i]);
            if (e != cudaSuccess) {
                RT.cudaGetLastError();
                return kvt__err(KVT_EMEMKIND, "%s: fragment pointer %zu (%p) is unknown to CUDA",
                                fn, i, ptrs[i]);
            }
            if (a.type == cudaMemoryTypeManaged)
                continue;
            if (a.type != cudaMemoryTypeDevice)
                return kvt__err(KVT_EMEMKIND,
                                "%s: fragment pointer %zu (%p) is host memory, not device memory "
                                "(opts->mem_kind is KVT_MEM_CUDA)",
                                fn, i, ptrs[i]);
            if (a.device != o->device)
                return kvt__err(KVT_EMEMKIND,
                                "%s: fragment pointer %zu (%p) is on device %d, opts->device is %d",
                                fn, i, ptrs[i], a.device, o->device);
        }
    }
    return 0;
}

int kvt__cuda_call_begin(const kvt_io_opts *o, kvt_io_opts *copy)
{
    int dev, rc = stream_device((cudaStream_t)o->stream, o->device, &dev);
    if (rc)
        return rc;
    call_ctx *c = kvt__calloc(1, sizeof *c);
    if (!c)
        return kvt__err(KVT_ENOMEM, "call context");
    c->magic = CALL_MAGIC;
    c->device = dev;
    guard gd;
    if ((rc = guard_enter(&gd, dev))) {
        kvt__free(c);
        return rc;
    }
    cudaStream_t s = (cudaStream_t)o->stream;
    rc = event_get(dev, &c->ev);
    if (!rc) {
        cudaError_t e = RT.cudaEventRecord(c->ev, s);
        if (e != cudaSuccess) {
            rc = cuda_err(KVT_EIO, e, "cudaEventRecord on opts->stream");
            event_put(dev, c->ev);
        }
    }
    if (!rc && (o->flags & KVT_IO_STREAM_WAIT)) {
        rc = gate_get(&c->gate);
        if (!rc && (rc = gate_install(c->gate, s)) != 0) {
            gate_put(c->gate);
            event_put(dev, c->ev);
        }
    }
    guard_leave(&gd);
    if (rc) {
        kvt__free(c);
        return rc;
    }
    *copy = *o;
    copy->stream = c;
    copy->flags |= KVT__IO_CALL;
    return 0;
}

static call_ctx *ctx_of(const kvt_io_opts *o)
{
    if (!o || !(o->flags & KVT__IO_CALL))
        return NULL;
    call_ctx *c = o->stream;
    return c && c->magic == CALL_MAGIC ? c : NULL;
}

int kvt__cuda_io_begin(const kvt_io_opts *o)
{
    if (!o || !o->stream)
        return 0;
    call_ctx *c = ctx_of(o);
    if (c) {
        cudaError_t e = RT.cudaEventSynchronize(c->ev);
        return e == cudaSuccess ? 0 : cuda_err(KVT_EIO, e, "work queued on opts->stream failed");
    }
    if (o->flags & KVT__IO_CALL)
        return 0;
    if (load_quiet()) /* kvt__cuda_check_io() refuses such calls first */
        return kvt__err(KVT_ENODEV, "a stream needs CUDA: %s", g.why);
    /* A synchronous call: the work queued before it is the work queued now. */
    int dev, rc = stream_device((cudaStream_t)o->stream, o->device, &dev);
    if (rc)
        return rc;
    guard gd;
    if ((rc = guard_enter(&gd, dev)))
        return rc;
    cudaEvent_t ev;
    if (!(rc = event_get(dev, &ev))) {
        cudaError_t e = RT.cudaEventRecord(ev, (cudaStream_t)o->stream);
        if (e == cudaSuccess)
            e = RT.cudaEventSynchronize(ev);
        if (e != cudaSuccess)
            rc = cuda_err(KVT_EIO, e, "waiting for opts->stream");
        event_put(dev, ev);
    }
    guard_leave(&gd);
    return rc;
}

void kvt__cuda_io_end(const kvt_io_opts *o)
{
    call_ctx *c = ctx_of(o);
    if (!c)
        return;
    if (c->gate) {
        gate_open(c->gate);
        gate_put(c->gate);
    }
    event_put(c->device, c->ev);
    c->magic = 0;
    kvt__free(c);
}

void kvt__cuda_call_abort(const kvt_io_opts *o)
{
    kvt__cuda_io_end(o);
}

/* --------------------------------------------------------- NVMe bounce */

static int xfer_check(const kvt_xfer *x, uint64_t block_bytes)
{
    if (x->nfrags == 0 || block_bytes % x->nfrags)
        return KVT_EFRAGS;
    if (!x->frags)
        return KVT_ENULL;
    for (uint32_t f = 0; f < x->nfrags; f++)
        if (!x->frags[f])
            return KVT_ENULL;
    return 0;
}

static int first_status(const kvt_xfer *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (x[i].status)
            return x[i].status;
    return 0;
}

/* Pieces between a block's device fragments and its contiguous copy at
 * `staged` (to_staging: device -> staging). */
static size_t block_ops(const kvt_xfer *x, uint64_t block_bytes, char *staged, int to_staging,
                        kvt__copy_op *ops)
{
    size_t frag = block_bytes / x->nfrags;
    for (uint32_t f = 0; f < x->nfrags; f++) {
        char *s = staged + (size_t)f * frag;
        ops[f] = to_staging ? (kvt__copy_op){s, x->frags[f], frag}
                            : (kvt__copy_op){x->frags[f], s, frag};
    }
    return x->nfrags;
}

/* Blocks larger than a staging half: one at a time through pageable
 * memory, rare enough (blocks over 32 MiB) not to need pinning. */
static void bounce_pageable(lane *l, const kvt_tier_ops *ops, kvt_tier_impl *t, kvt_xfer *x,
                            size_t n, uint64_t block_bytes, uint32_t maxf, int write)
{
    void *buf = NULL;
    kvt__copy_op *cops = kvt__malloc(maxf * sizeof *cops);
    if (!cops || kvt__posix_memalign(&buf, 4096, block_bytes)) {
        for (size_t i = 0; i < n; i++)
            if (!x[i].status)
                x[i].status = KVT_ENOMEM;
        kvt__free(cops);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (x[i].status)
            continue;
        size_t k = block_ops(&x[i], block_bytes, buf, write, cops);
        kvt_xfer one = x[i];
        void *p = buf;
        one.nfrags = 1;
        one.frags = &p;
        if (!write) {
            ops->read(t, &one, 1, KVT_MEM_HOST);
            if ((x[i].status = one.status) != 0)
                continue;
        }
        if (lane_enqueue(l, write ? KVT__CUDA_D2H : KVT__CUDA_H2D, 0, cops, k, 0, NULL) ||
            lane_sync(l)) {
            x[i].status = KVT_EIO;
            continue;
        }
        if (write) {
            ops->write(t, &one, 1, KVT_MEM_HOST);
            x[i].status = one.status;
        }
    }
    kvt__free(cops);
    kvt__free(buf);
}

/* A bounce in progress: chunks of up to `per` blocks take turns in the two
 * halves of the lane's staging. Half h holds cnt[h] blocks, staged xfers
 * sx[h * per ...] for the caller's xfers orig[h * per ...]. */
typedef struct bounce_run {
    const kvt_tier_ops *ops;
    kvt_tier_impl *t;
    kvt_xfer *x;
    size_t n;
    uint64_t block_bytes;
    int write;
    lane *l;
    size_t half, per;
    kvt_xfer *sx;
    void **sp;
    size_t *orig;
    kvt__copy_op *cops;
    size_t next; /* the caller's next xfer to stage */
    size_t cnt[2];
    int queued[2]; /* half h has GPU copies recorded on ev[h] */
} bounce_run;

/* Takes the next chunk into half h; for a write, queues its device ->
 * staging copies and records ev[h] after them. */
static void stage(bounce_run *b, int h)
{
    size_t k = 0, nops = 0;
    while (b->next < b->n && k < b->per) {
        size_t i = b->next++;
        if (b->x[i].status)
            continue;
        size_t at = (size_t)h * b->per + k++;
        char *mem = b->l->staging + (size_t)h * b->half + (at - (size_t)h * b->per) * b->block_bytes;
        b->sp[at] = mem;
        b->sx[at] = b->x[i];
        b->sx[at].nfrags = 1;
        b->sx[at].frags = &b->sp[at];
        b->sx[at].status = 0;
        b->orig[at] = i;
        if (b->write)
            nops += block_ops(&b->x[i], b->block_bytes, mem, 1, b->cops + nops);
    }
    b->cnt[h] = k;
    b->queued[h] = 0;
    if (b->write && nops)
        b->queued[h] = lane_enqueue(b->l, KVT__CUDA_D2H, 0, b->cops, nops, h, NULL) == 0 &&
                       RT.cudaEventRecord(b->l->ev[h], b->l->stream) == cudaSuccess;
}

/* Marks the caller's xfers of half h failed (those still fine, or all). */
static void half_failed(bounce_run *b, int h, int all)
{
    for (size_t k = 0; k < b->cnt[h]; k++) {
        kvt_xfer *x = &b->x[b->orig[(size_t)h * b->per + k]];
        if (all || !x->status)
            x->status = KVT_EIO;
    }
}

static void bounce_write(bounce_run *b)
{
    int h = 0;
    stage(b, 0);
    while (b->cnt[h]) {
        stage(b, h ^ 1); /* the GPU fills the other half meanwhile */
        int ok = b->queued[h] && RT.cudaEventSynchronize(b->l->ev[h]) == cudaSuccess;
        if (!ok) {
            RT.cudaGetLastError();
            half_failed(b, h, 1);
        } else {
            b->ops->write(b->t, &b->sx[(size_t)h * b->per], b->cnt[h], KVT_MEM_HOST);
            for (size_t k = 0; k < b->cnt[h]; k++)
                b->x[b->orig[(size_t)h * b->per + k]].status = b->sx[(size_t)h * b->per + k].status;
        }
        h ^= 1;
    }
}

static void bounce_read(bounce_run *b)
{
    int h = 0;
    for (;;) {
        /* The half's previous copies to the device must be done before the
         * tier reads into it again. */
        if (b->queued[h] && RT.cudaEventSynchronize(b->l->ev[h]) != cudaSuccess) {
            RT.cudaGetLastError();
            half_failed(b, h, 0);
        }
        stage(b, h);
        if (!b->cnt[h])
            break;
        kvt_xfer *sx = &b->sx[(size_t)h * b->per];
        b->ops->read(b->t, sx, b->cnt[h], KVT_MEM_HOST);
        size_t nops = 0;
        for (size_t k = 0; k < b->cnt[h]; k++) {
            kvt_xfer *x = &b->x[b->orig[(size_t)h * b->per + k]];
            if ((x->status = sx[k].status) == 0)
                nops += block_ops(x, b->block_bytes, b->sp[(size_t)h * b->per + k], 0,
                                  b->cops + nops);
        }
        b->queued[h] = !nops || (lane_enqueue(b->l, KVT__CUDA_H2D, 0, b->cops, nops, h, NULL) == 0 &&
                                 RT.cudaEventRecord(b->l->ev[h], b->l->stream) == cudaSuccess);
        if (!b->queued[h])
            half_failed(b, h, 0);
        h ^= 1;
    }
    /* The other half's copies are the last ones in flight. */
    if (b->queued[h ^ 1] && lane_sync(b->l))
        half_failed(b, h ^ 1, 0);
}

/* Device fragments <-> a tier that takes host memory only, through the
 * lane's pinned staging in two halves: while the tier writes (reads) one
 * half, the GPU fills (drains) the other. */
static int bounce(const kvt_tier_ops *ops, kvt_tier_impl *t, kvt_xfer *x, size_t n,
                  uint64_t block_bytes, int write)
{
    int dev = -1;
    uint32_t maxf = 1;
    for (size_t i = 0; i < n; i++) {
        x[i].status = xfer_check(&x[i], block_bytes);
        if (x[i].status)
            continue;
        if (x[i].nfrags > maxf)
            maxf = x[i].nfrags;
        if (dev < 0) {
            int rc = kvt__cuda_ptr_device(x[i].frags[0], &dev);
            if (rc) {
                for (size_t j = 0; j < n; j++)
                    x[j].status = rc;
                return rc;
            }
        }
    }
    if (dev < 0)
        return first_status(x, n) ? kvt__err(first_status(x, n), "bounce: no valid xfer") : 0;

    bounce_run b = {.ops = ops, .t = t, .x = x, .n = n, .block_bytes = block_bytes,
                    .write = write, .half = KVT_CUDA_STAGING_BYTES / 2};
    guard gd;
    int rc = guard_enter(&gd, dev);
    if (!rc && (rc = lane_get(dev, &b.l)) != 0)
        guard_leave(&gd);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            if (!x[i].status)
                x[i].status = rc;
        return rc;
    }
    if (!b.l->staging) {
        cudaError_t e = RT.cudaHostAlloc((void **)&b.l->staging, KVT_CUDA_STAGING_BYTES,
                                         cudaHostAllocPortable | cudaHostAllocMapped);
        if (e == cudaSuccess) {
            staging_region(b.l->staging, KVT_CUDA_STAGING_BYTES);
        } else {
            b.l->staging = NULL; /* the pageable path below still works */
            RT.cudaGetLastError();
        }
    }
    b.per = b.l->staging ? b.half / block_bytes : 0;
    if (b.per) {
        b.sx = kvt__calloc(2 * b.per, sizeof *b.sx);
        b.sp = kvt__calloc(2 * b.per, sizeof *b.sp);
        b.orig = kvt__calloc(2 * b.per, sizeof *b.orig);
        b.cops = kvt__malloc(b.per * maxf * sizeof *b.cops);
    }
    if (!b.per)
        bounce_pageable(b.l, ops, t, x, n, block_bytes, maxf, write);
    else if (!b.sx || !b.sp || !b.orig || !b.cops)
        for (size_t i = 0; i < n; i++)
            x[i].status = x[i].status ? x[i].status : KVT_ENOMEM;
    else if (write)
        bounce_write(&b);
    else
        bounce_read(&b);
    lane_sync(b.l); /* nothing of this call may still touch the staging */
    lane_put(b.l);
    guard_leave(&gd);
    kvt__free(b.sx);
    kvt__free(b.sp);
    kvt__free(b.orig);
    kvt__free(b.cops);
    rc = first_status(x, n);
    return rc ? kvt__err(rc, "device memory %s the %s tier through pinned staging: %s",
                         write ? "to" : "from", ops->name, kvt_strerror(rc))
              : 0;
}

int kvt__cuda_tier_write(const kvt_tier_ops *ops, kvt_tier_impl *t, kvt_xfer *x, size_t n,
                         kvt_mem_kind mem, uint64_t block_bytes)
{
    if (mem != KVT_MEM_CUDA || (ops->caps & KVT_TCAP_CUDA_MEM))
        return ops->write(t, x, n, mem);
    return bounce(ops, t, x, n, block_bytes, 1);
}

int kvt__cuda_tier_read(const kvt_tier_ops *ops, kvt_tier_impl *t, kvt_xfer *x, size_t n,
                        kvt_mem_kind mem, uint64_t block_bytes)
{
    if (mem != KVT_MEM_CUDA || (ops->caps & KVT_TCAP_CUDA_MEM))
        return ops->read(t, x, n, mem);
    return bounce(ops, t, x, n, block_bytes, 0);
}

#endif /* KVT_HAVE_CUDA */
