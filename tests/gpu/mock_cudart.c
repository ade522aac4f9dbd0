/* mock_cudart.c — a test-only stand-in for libcudart: host memory as "device" memory, threaded streams, emulated kernels. */
/*
 * Loaded by kvtier through KVTIER_CUDART (with an empty libcuda.so.1 on
 * LD_LIBRARY_PATH for the driver probe), it lets the gpu suite run on
 * machines without a GPU and check the library's logic: lanes, methods,
 * staging rounds, pinned regions, events and stream gates. Semantics kept
 * where they matter to kvtier: every stream is a FIFO run by its own thread
 * (copies really are asynchronous, so missing waits show as wrong bytes),
 * events and cuStreamWaitValue32 block a stream, cudaFree and friends
 * synchronize every stream (as the real ones do: a gate held across one
 * hangs here too), host registrations may not overlap and are removed by
 * their base address. The three kernels kvtier and its tests launch are
 * recognised by name and run in C. Not a model of performance or of
 * memory protection: "device" memory is host memory.
 */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

static pthread_mutex_t big = PTHREAD_MUTEX_INITIALIZER; /* events, registry, stream list */
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static int ndev(void)
{
    const char *e = getenv("MOCK_CUDA_DEVICES");
    return e ? atoi(e) : 1;
}

static _Thread_local int cur_dev;
static _Thread_local void *cur_ctx;

/* --------------------------------------------------------------- pointers */

typedef struct region {
    char *base;
    size_t size;
    enum cudaMemoryType type;
    int device;
    int owned; /* allocated here (free on cudaFree/cudaFreeHost) */
} region;

static region regs[4096];
static int nregs;

static region *find(const void *p)
{
    for (int i = 0; i < nregs; i++)
        if ((const char *)p >= regs[i].base && (const char *)p < regs[i].base + regs[i].size)
            return &regs[i];
    return NULL;
}

static cudaError_t add_region(void *base, size_t size, enum cudaMemoryType type, int owned)
{
    pthread_mutex_lock(&big);
    for (int i = 0; i < nregs; i++) {
        if ((char *)base < regs[i].base + regs[i].size && regs[i].base < (char *)base + size) {
            pthread_mutex_unlock(&big);
            return cudaErrorHostMemoryAlreadyRegistered;
        }
    }
    if (nregs == 4096) {
        pthread_mutex_unlock(&big);
        return cudaErrorMemoryAllocation;
    }
    regs[nregs++] = (region){base, size, type, cur_dev, owned};
    pthread_mutex_unlock(&big);
    return cudaSuccess;
}

static int remove_region(void *base, enum cudaMemoryType type)
{
    int found = 0;
    pthread_mutex_lock(&big);
    for (int i = 0; i < nregs; i++) {
        if (regs[i].base == base && regs[i].type == type) {
            regs[i] = regs[--nregs];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&big);
    return found;
}

/* ---------------------------------------------------------------- streams */

enum { OP_COPY, OP_SET, OP_EVENT, OP_WAIT_EVENT, OP_WAIT32, OP_COPY_KERNEL, OP_GATE_KERNEL,
       OP_FILL_KERNEL };

struct CUevent_st {
    uint64_t recorded, completed;
};

typedef struct op {
    struct op *next;
    int kind;
    void *dst;
    const void *src;
    size_t n;
    int value;
    struct CUevent_st *ev;
    uint64_t target;
    const volatile uint32_t *word;
    uint32_t v32;
    uint64_t seed, spin_ns;
} op;

struct CUstream_st {
    pthread_mutex_t m;
    pthread_cond_t c;
    op *head, *tail;
    int busy, stop;
    int device;
    pthread_t th;
    struct CUstream_st *next;
};

static struct CUstream_st *streams;
static struct CUstream_st *legacy;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* kvt_copy_desc of lib/tier/hbm_kernels.cu. */
typedef struct desc {
    const void *src;
    void *dst;
    unsigned long long len, pad;
} desc;

static void run_op(op *o)
{
    switch (o->kind) {
    case OP_COPY:
        memmove(o->dst, o->src, o->n);
        break;
    case OP_SET:
        memset(o->dst, o->value, o->n);
        break;
    case OP_EVENT:
        pthread_mutex_lock(&big);
        if (o->ev->completed < o->target)
            o->ev->completed = o->target;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&big);
        break;
    case OP_WAIT_EVENT:
        pthread_mutex_lock(&big);
        while (o->ev->completed < o->target)
            pthread_cond_wait(&changed, &big);
        pthread_mutex_unlock(&big);
        break;
    case OP_WAIT32:
    case OP_GATE_KERNEL:
        while ((int32_t)(*o->word - o->v32) < 0)
            usleep(20);
        break;
    case OP_COPY_KERNEL: {
        const desc *d = o->src;
        for (size_t i = 0; i < o->n; i++) {
            if (((uintptr_t)d[i].src | (uintptr_t)d[i].dst) & 15)
                abort(); /* kvtier sends only 16-byte aligned pieces here */
            memmove(d[i].dst, d[i].src, d[i].len);
        }
        break;
    }
    case OP_FILL_KERNEL: {
        uint64_t until = mono_ns() + o->spin_ns;
        while (mono_ns() < until)
            usleep(200);
        unsigned char *p = o->dst;
        for (size_t w = 0; w * 8 < o->n; w++) {
            uint64_t v = mix(o->seed + w);
            for (size_t b = 0; b < 8 && w * 8 + b < o->n; b++)
                p[w * 8 + b] = (unsigned char)(v >> (8 * b));
        }
        break;
    }
    }
}

static void *stream_main(void *arg)
{
    struct CUstream_st *s = arg;
    pthread_mutex_lock(&s->m);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->c, &s->m);
        if (!s->head)
            break;
        op *o = s->head;
        s->head = o->next;
        if (!s->head)
            s->tail = NULL;
        s->busy = 1;
        pthread_mutex_unlock(&s->m);
        run_op(o);
        free(o);
        pthread_mutex_lock(&s->m);
        s->busy = 0;
        pthread_cond_broadcast(&s->c);
    }
    pthread_mutex_unlock(&s->m);
    return NULL;
}

static struct CUstream_st *new_stream(int device)
{
    struct CUstream_st *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->m, NULL);
    pthread_cond_init(&s->c, NULL);
    s->device = device;
    pthread_create(&s->th, NULL, stream_main, s);
    pthread_mutex_lock(&big);
    s->next = streams;
    streams = s;
    pthread_mutex_unlock(&big);
    return s;
}

static struct CUstream_st *resolve(cudaStream_t s)
{
    if ((uintptr_t)s > 2)
        return s;
    pthread_mutex_lock(&big);
    int make = !legacy;
    pthread_mutex_unlock(&big);
    if (make) {
        struct CUstream_st *l = new_stream(0);
        pthread_mutex_lock(&big);
        if (!legacy)
            legacy = l;
        pthread_mutex_unlock(&big);
    }
    return legacy;
}

static cudaError_t push(cudaStream_t st, op o)
{
    struct CUstream_st *s = resolve(st);
    op *p = malloc(sizeof *p);
    *p = o;
    p->next = NULL;
    pthread_mutex_lock(&s->m);
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    pthread_cond_broadcast(&s->c);
    pthread_mutex_unlock(&s->m);
    return cudaSuccess;
}

static void drain(struct CUstream_st *s)
{
    pthread_mutex_lock(&s->m);
    while (s->head || s->busy)
        pthread_cond_wait(&s->c, &s->m);
    pthread_mutex_unlock(&s->m);
}

/* What cudaFree and cudaHostUnregister do on real devices. */
static void sync_all(void)
{
    pthread_mutex_lock(&big);
    struct CUstream_st *list[256];
    int n = 0;
    for (struct CUstream_st *s = streams; s && n < 256; s = s->next)
        list[n++] = s;
    pthread_mutex_unlock(&big);
    for (int i = 0; i < n; i++)
        drain(list[i]);
}

/* ------------------------------------------------------------ the API */

API cudaError_t cudaGetDeviceCount(int *n)
{
    *n = ndev();
    return *n ? cudaSuccess : cudaErrorNoDevice;
}
API cudaError_t cudaGetDevice(int *d)
{
    *d = cur_dev;
    return cudaSuccess;
}
API cudaError_t cudaSetDevice(int d)
{
    if (d < 0 || d >= ndev())
        return cudaErrorInvalidDevice;
    cur_dev = d;
    cur_ctx = (void *)(uintptr_t)(0x1000 + d);
    return cudaSuccess;
}
API cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}
API cudaError_t cudaDriverGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}
API const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaSuccess ? "no error" : "mock error";
}
API const char *cudaGetErrorName(cudaError_t e)
{
    static _Thread_local char b[32];
    snprintf(b, sizeof b, "mockError%d", (int)e);
    return b;
}
API cudaError_t cudaGetLastError(void)
{
    return cudaSuccess;
}
API cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int d)
{
    (void)d;
    *v = a == cudaDevAttrMultiProcessorCount ? 8
         : a == cudaDevAttrCanUseHostPointerForRegisteredMem ? 1
                                                              : 0;
    return cudaSuccess;
}
API cudaError_t cudaDeviceGetPCIBusId(char *b, int len, int d)
{
    snprintf(b, (size_t)len, "0000:%02x:00.0", 0xe0 + d);
    return cudaSuccess;
}
API cudaError_t cudaDeviceSynchronize(void)
{
    sync_all();
    return cudaSuccess;
}
API cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
    if (!*p)
        return cudaErrorMemoryAllocation;
    return add_region(*p, n ? n : 1, cudaMemoryTypeDevice, 1);
}
API cudaError_t cudaFree(void *p)
{
    sync_all();
    if (p) {
        if (!remove_region(p, cudaMemoryTypeDevice))
            return cudaErrorInvalidValue;
        free(p);
    }
    return cudaSuccess;
}
API cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags)
{
    (void)flags;
    *p = aligned_alloc(4096, (n + 4095) & ~(size_t)4095);
    if (!*p)
        return cudaErrorMemoryAllocation;
    return add_region(*p, n, cudaMemoryTypeHost, 1);
}
API cudaError_t cudaFreeHost(void *p)
{
    sync_all();
    if (!remove_region(p, cudaMemoryTypeHost))
        return cudaErrorInvalidValue;
    free(p);
    return cudaSuccess;
}
API cudaError_t cudaHostRegister(void *p, size_t n, unsigned flags)
{
    (void)flags;
    return add_region(p, n, cudaMemoryTypeHost, 0);
}
API cudaError_t cudaHostUnregister(void *p)
{
    sync_all();
    return remove_region(p, cudaMemoryTypeHost) ? cudaSuccess : cudaErrorHostMemoryNotRegistered;
}
API cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_lock(&big);
    region *r = find(p);
    if (r) {
        a->type = r->type;
        a->device = r->device;
        a->devicePointer = (void *)p;
        a->hostPointer = r->type == cudaMemoryTypeHost ? (void *)p : NULL;
    } else {
        a->type = cudaMemoryTypeUnregistered;
        a->device = -2;
        a->hostPointer = (void *)p;
    }
    pthread_mutex_unlock(&big);
    return cudaSuccess;
}
API cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind k,
                                cudaStream_t st)
{
    (void)k;
    return push(st, (op){.kind = OP_COPY, .dst = d, .src = s, .n = n});
}
API cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind k)
{
    cudaMemcpyAsync(d, s, n, k, NULL);
    drain(resolve(NULL));
    return cudaSuccess;
}
API cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st)
{
    return push(st, (op){.kind = OP_SET, .dst = d, .value = v, .n = n});
}
API cudaError_t cudaMemset(void *d, int v, size_t n)
{
    cudaMemsetAsync(d, v, n, NULL);
    drain(resolve(NULL));
    return cudaSuccess;
}
API cudaError_t cudaMemcpyBatchAsync(void *const *dsts, const void *const *srcs,
                                     const size_t *sizes, size_t count,
                                     struct cudaMemcpyAttributes *attrs, size_t *idx,
                                     size_t nattrs, cudaStream_t st)
{
    if (!count || !attrs || !idx || nattrs != 1 || idx[0] != 0 ||
        attrs[0].srcAccessOrder == cudaMemcpySrcAccessOrderInvalid || (uintptr_t)st == 0)
        return cudaErrorInvalidValue;
    for (size_t i = 0; i < count; i++)
        push(st, (op){.kind = OP_COPY, .dst = dsts[i], .src = srcs[i], .n = sizes[i]});
    return cudaSuccess;
}
API cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void)flags;
    *s = new_stream(cur_dev);
    return cudaSuccess;
}
API cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    /* Real CUDA lets queued work finish; so does this. The thread stays. */
    drain(resolve(s));
    return cudaSuccess;
}
API cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    drain(resolve(s));
    return cudaSuccess;
}
API cudaError_t cudaStreamQuery(cudaStream_t st)
{
    struct CUstream_st *s = resolve(st);
    pthread_mutex_lock(&s->m);
    int idle = !s->head && !s->busy;
    pthread_mutex_unlock(&s->m);
    return idle ? cudaSuccess : cudaErrorNotReady;
}
API cudaError_t cudaStreamGetDevice(cudaStream_t st, int *d)
{
    *d = (uintptr_t)st <= 2 ? cur_dev : ((struct CUstream_st *)st)->device;
    return cudaSuccess;
}
API cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    *e = calloc(1, sizeof(struct CUevent_st));
    return cudaSuccess;
}
API cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    free(e);
    return cudaSuccess;
}
API cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t st)
{
    pthread_mutex_lock(&big);
    uint64_t t = ++e->recorded;
    pthread_mutex_unlock(&big);
    return push(st, (op){.kind = OP_EVENT, .ev = e, .target = t});
}
API cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    pthread_mutex_lock(&big);
    uint64_t t = e->recorded;
    while (e->completed < t)
        pthread_cond_wait(&changed, &big);
    pthread_mutex_unlock(&big);
    return cudaSuccess;
}
API cudaError_t cudaEventQuery(cudaEvent_t e)
{
    pthread_mutex_lock(&big);
    int done = e->completed >= e->recorded;
    pthread_mutex_unlock(&big);
    return done ? cudaSuccess : cudaErrorNotReady;
}
API cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    (void)a;
    (void)b;
    *ms = 0;
    return cudaSuccess;
}
API cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t e, unsigned flags)
{
    (void)flags;
    pthread_mutex_lock(&big);
    uint64_t t = e->recorded;
    pthread_mutex_unlock(&big);
    return push(st, (op){.kind = OP_WAIT_EVENT, .ev = e, .target = t});
}

/* Kernels, by name. */
static const char *const kernel_names[] = {"kvt_copy_kernel", "kvt_gate_wait", "spin_then_fill"};

API cudaError_t cudaLibraryLoadData(cudaLibrary_t *lib, const void *code, enum cudaJitOption *o,
                                    void **ov, unsigned no, enum cudaLibraryOption *lo,
                                    void **lov, unsigned nlo)
{
    (void)code, (void)o, (void)ov, (void)no, (void)lo, (void)lov, (void)nlo;
    *lib = (cudaLibrary_t)(uintptr_t)0x11b;
    return cudaSuccess;
}
API cudaError_t cudaLibraryUnload(cudaLibrary_t lib)
{
    (void)lib;
    return cudaSuccess;
}
API cudaError_t cudaLibraryGetKernel(cudaKernel_t *k, cudaLibrary_t lib, const char *name)
{
    (void)lib;
    for (size_t i = 0; i < sizeof kernel_names / sizeof *kernel_names; i++) {
        if (strcmp(name, kernel_names[i]) == 0) {
            *k = (cudaKernel_t)(uintptr_t)&kernel_names[i];
            return cudaSuccess;
        }
    }
    return cudaErrorSymbolNotFound;
}
API cudaError_t cudaLaunchKernel(const void *f, dim3 grid, dim3 block, void **args, size_t shm,
                                 cudaStream_t st)
{
    (void)shm;
    if (!grid.x || !block.x || block.x > 1024)
        return cudaErrorInvalidConfiguration;
    if (f == &kernel_names[0]) {
        /* The descriptors are read when the kernel runs, as on a GPU. */
        return push(st, (op){.kind = OP_COPY_KERNEL, .src = *(void **)args[0],
                             .n = *(unsigned *)args[1]});
    }
    if (f == &kernel_names[1])
        return push(st, (op){.kind = OP_GATE_KERNEL, .word = *(const volatile uint32_t **)args[0],
                             .v32 = *(uint32_t *)args[1]});
    if (f == &kernel_names[2])
        return push(st, (op){.kind = OP_FILL_KERNEL, .dst = *(void **)args[0],
                             .n = *(unsigned long long *)args[1],
                             .seed = *(unsigned long long *)args[2],
                             .spin_ns = *(unsigned long long *)args[3]});
    return cudaErrorInvalidDeviceFunction;
}

/* Driver entry points kvtier asks for. */
static int mock_wait32(cudaStream_t st, unsigned long long addr, uint32_t v, unsigned flags)
{
    if (flags != 0 || getenv("MOCK_CUDA_NO_STREAM_MEMOPS"))
        return 1; /* CUDA_ERROR_INVALID_VALUE: the library falls back to its gate kernel */
    push(st, (op){.kind = OP_WAIT32, .word = (const volatile uint32_t *)(uintptr_t)addr, .v32 = v});
    return 0;
}
static int mock_ctx_get(void **c)
{
    *c = cur_ctx;
    return 0;
}
static int mock_ctx_set(void *c)
{
    cur_ctx = c;
    cur_dev = c ? (int)((uintptr_t)c - 0x1000) : 0;
    return 0;
}

API cudaError_t cudaGetDriverEntryPointByVersion(const char *sym, void **fn, unsigned ver,
                                                 unsigned long long flags,
                                                 enum cudaDriverEntryPointQueryResult *q)
{
    (void)ver, (void)flags;
    void *f = NULL;
    if (strcmp(sym, "cuStreamWaitValue32") == 0)
        f = (void *)(uintptr_t)mock_wait32;
    else if (strcmp(sym, "cuCtxGetCurrent") == 0)
        f = (void *)(uintptr_t)mock_ctx_get;
    else if (strcmp(sym, "cuCtxSetCurrent") == 0)
        f = (void *)(uintptr_t)mock_ctx_set;
    *fn = f;
    if (q)
        *q = f ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
    return cudaSuccess;
}
