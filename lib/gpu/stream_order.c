/* gpu/stream_order.c — a call ordered against the caller's CUDA stream: events at the call, gates that hold the stream until the library is done. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "alloc.h"
#include "error.h"
#include "gpu/internal.h"

static int event_get(int device, cudaEvent_t *out)
{
    kvt__gpu_dev *d = &kvt__gpu.devs[device];
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
    return err == cudaSuccess ? 0 : kvt__gpu_err(KVT_EIO, err, "cudaEventCreateWithFlags");
}

static void event_put(int device, cudaEvent_t ev)
{
    ev_node *e = kvt__malloc(sizeof *e);
    if (!e) {
        RT.cudaEventDestroy(ev);
        return;
    }
    e->ev = ev;
    kvt__gpu_dev *d = &kvt__gpu.devs[device];
    pthread_mutex_lock(&d->lock);
    e->next = d->events;
    d->events = e;
    pthread_mutex_unlock(&d->lock);
}

typedef struct gate {
    struct gate *next;
    _Atomic uint32_t *word; /* pinned, mapped host memory the GPU polls */
    uint32_t seq;           /* last value waited for */
} gate;

static pthread_mutex_t gates_lock = PTHREAD_MUTEX_INITIALIZER;
static gate *gates; /* free list */

/* A gate word: pinned, mapped, portable host memory, so the GPU of any
 * device can poll it and the host can open it with a plain store, which
 * works even when the CUDA context has failed. Words are reused with ever
 * larger values, so a stream still waiting on an old value is released by
 * any later one. */
static int gate_get(gate **out)
{
    pthread_mutex_lock(&gates_lock);
    if (!gates) {
        _Atomic uint32_t *page = NULL;
        cudaError_t e = RT.cudaHostAlloc((void **)&page, GATE_WORDS * 64,
                                         cudaHostAllocPortable | cudaHostAllocMapped);
        gate *gs = e == cudaSuccess ? kvt__calloc(GATE_WORDS, sizeof *gs) : NULL;
        if (!gs) {
            pthread_mutex_unlock(&gates_lock);
            return e == cudaSuccess ? kvt__err(KVT_ENOMEM, "stream gates")
                                    : kvt__gpu_err(KVT_ENOMEM, e, "cudaHostAlloc (stream gates)");
        }
        for (int i = 0; i < GATE_WORDS; i++) {
            gs[i].word = (_Atomic uint32_t *)((char *)page + 64 * i);
            atomic_store(gs[i].word, 0);
            gs[i].next = i + 1 < GATE_WORDS ? &gs[i + 1] : NULL;
        }
        gates = gs;
    }
    *out = gates;
    gates = gates->next;
    pthread_mutex_unlock(&gates_lock);
    return 0;
}

static void gate_put(gate *gt)
{
    pthread_mutex_lock(&gates_lock);
    gt->next = gates;
    gates = gt;
    pthread_mutex_unlock(&gates_lock);
}

/* Holds `stream` (current device = its device) until gate_open(gt). */
static int gate_install(gate *gt, cudaStream_t stream)
{
    uint32_t v = ++gt->seq;
    if (kvt__gpu.wait32 && kvt__gpu.wait32(stream, (unsigned long long)(uintptr_t)gt->word, v,
                                           CU_STREAM_WAIT_VALUE_GEQ) == 0)
        return 0;
    RT.cudaGetLastError();
    /* The driver refused a stream memory operation: a one-thread kernel
     * polls the word instead. */
    if (kvt__gpu_kernels_load()) {
        dim3 one = {1, 1, 1};
        const volatile uint32_t *w = (const volatile uint32_t *)gt->word;
        void *args[] = {&w, &v};
        cudaError_t e =
            RT.cudaLaunchKernel((const void *)kvt__gpu.gate_kernel, one, one, args, 0, stream);
        if (e == cudaSuccess)
            return 0;
        return kvt__gpu_err(KVT_ENOTSUP, e, "KVT_IO_STREAM_WAIT: can't make the stream wait");
    }
    return kvt__err(KVT_ENOTSUP,
                    "KVT_IO_STREAM_WAIT: the driver refuses cuStreamWaitValue32 and the kernels "
                    "are unavailable (%s)",
                    kvt__gpu.kernel_why);
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
            return kvt__gpu_err(KVT_EINVAL, e, "opts->stream is not a usable CUDA stream");
    }
    return kvt__cuda_check_device(*out);
}

int kvt__cuda_check_io(const kvt_io_opts *o, void *const *ptrs, size_t nptrs, const char *fn)
{
    int rc = o ? kvt__gpu_flags_ok(o, fn) : 0;
    if (rc)
        return rc;
    if (!o || o->mem_kind != KVT_MEM_CUDA) {
        /* Device memory labelled as host would crash a memcpy: catch it,
         * but only where CUDA is already in use (no cost elsewhere). */
        if (nptrs && atomic_load_explicit(&kvt__gpu.usable, memory_order_acquire)) {
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
    if (kvt__gpu_load_quiet())
        return kvt__err(KVT_ENODEV, "%s: %s needs CUDA: %s", fn,
                        o->mem_kind == KVT_MEM_CUDA ? "device memory" : "a stream", kvt__gpu.why);
    if (o->mem_kind == KVT_MEM_CUDA) {
        if (o->device < 0 || o->device >= kvt__gpu.ndev)
            return kvt__err(KVT_ENODEV, "%s: opts->device %d does not exist (%d visible)", fn,
                            o->device, kvt__gpu.ndev);
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
    kvt__gpu_guard gd;
    if ((rc = kvt__gpu_guard_enter(&gd, dev))) {
        kvt__free(c);
        return rc;
    }
    cudaStream_t s = (cudaStream_t)o->stream;
    rc = event_get(dev, &c->ev);
    if (!rc) {
        cudaError_t e = RT.cudaEventRecord(c->ev, s);
        if (e != cudaSuccess) {
            rc = kvt__gpu_err(KVT_EIO, e, "cudaEventRecord on opts->stream");
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
    kvt__gpu_guard_leave(&gd);
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
        return e == cudaSuccess ? 0
                                : kvt__gpu_err(KVT_EIO, e, "work queued on opts->stream failed");
    }
    if (o->flags & KVT__IO_CALL)
        return 0;
    if (kvt__gpu_load_quiet()) /* kvt__cuda_check_io() refuses such calls first */
        return kvt__err(KVT_ENODEV, "a stream needs CUDA: %s", kvt__gpu.why);
    /* A synchronous call: the work queued before it is the work queued now. */
    int dev, rc = stream_device((cudaStream_t)o->stream, o->device, &dev);
    if (rc)
        return rc;
    kvt__gpu_guard gd;
    if ((rc = kvt__gpu_guard_enter(&gd, dev)))
        return rc;
    cudaEvent_t ev;
    if (!(rc = event_get(dev, &ev))) {
        cudaError_t e = RT.cudaEventRecord(ev, (cudaStream_t)o->stream);
        if (e == cudaSuccess)
            e = RT.cudaEventSynchronize(ev);
        if (e != cudaSuccess)
            rc = kvt__gpu_err(KVT_EIO, e, "waiting for opts->stream");
        event_put(dev, ev);
    }
    kvt__gpu_guard_leave(&gd);
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
