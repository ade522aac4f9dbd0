/* cuda.h — the CUDA access layer: runtime loaded at first use, device copies, pinned host memory, stream ordering. */
#ifndef KVT_CUDA_H
#define KVT_CUDA_H

/*
 * Everything kvtier does with CUDA goes through here, so that the same
 * libkvtier binary loads and works on machines without the CUDA runtime:
 * libcudart.so.<major of the headers built against> is dlopen()ed at first
 * use (never linked), after a probe for the driver (libcuda.so.1), and the
 * copy kernels are an embedded fatbin loaded with cudaLibraryLoadData.
 * Builds without CUDA compile lib/gpu/nocuda.c instead: kvt__cuda_load()
 * says KVT_ENODEV, copies say KVT_EMEMKIND, ordering hooks do nothing.
 * The implementation is lib/gpu/ (gpu/internal.h lists its files).
 *
 * Environment (read once, at first use; docs/gpu.md):
 *   KVTIER_CUDART=PATH|none   the runtime to load, or none: behave as without a GPU
 *   KVTIER_CUDA_COPY=auto|ce|batch|kernel   force one small-fragment method
 *   KVTIER_CUDA_CE_MIN=BYTES  fragments of at least this size use the copy engines
 *
 * Resources (streams, events, pinned staging, gate words) are created on
 * first use, bounded per device, and live as long as the process, like the
 * CUDA runtime's own: freeing pinned memory synchronizes the whole device,
 * which must never happen while an engine's stream waits on a gate.
 *
 * No function here calls into the store or a tier. None prints.
 */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "copy.h"
#include "kvt_build_config.h"
#include "kvtier.h"

/* Which method copies a fragment, by its size (pinned host memory or one
 * GPU; docs/gpu.md has the sweep these come from, H200, PCIe Gen5 x16,
 * raw ceiling 54.6 GB/s each way):
 *   < KVT_CUDA_BATCH_MIN_BYTES   the gather/scatter kernel (16 KiB: 45 GB/s,
 *                                 256 KiB: 51; one cudaMemcpyAsync per piece
 *                                 gave 6 and 38);
 *   < KVT_CUDA_CE_MIN_BYTES      one cudaMemcpyBatchAsync for all of them
 *                                 (1 MiB: 53.6 GB/s, against 50.8 for the
 *                                 kernel and 48.3 for the copy engines);
 *   otherwise                    one cudaMemcpyAsync each (2 MiB: 51 GB/s
 *                                 each way and 90 both ways at once, where
 *                                 batches reached 80-82).
 * Fragments the kernel can't reach (host memory not pinned, unaligned) go
 * to batches below the copy-engine size. KVTIER_CUDA_CE_MIN overrides the
 * second at run time. */
#define KVT_CUDA_BATCH_MIN_BYTES ((size_t)1 << 20)
#define KVT_CUDA_CE_MIN_BYTES ((size_t)2 << 20)

/* The kernel copies pieces of at most this many bytes, one thread block
 * each, so that a batch of a few large fragments still spreads over every
 * SM. */
#define KVT_CUDA_KERNEL_PIECE ((size_t)64 << 10)

/* Pinned staging per lane for device memory <-> a tier that takes host
 * memory only (lib/tier/staged.c), in two halves that take turns (one being
 * copied on the GPU while the other is written or read by the tier). Blocks
 * larger than a half bounce through pageable memory. */
#define KVT_CUDA_STAGING_BYTES ((size_t)64 << 20)

/* The DRAM arena is pinned (cudaHostRegister) in chunks of about this size,
 * rounded to whole slots, by this many background threads, so that opening
 * a store does not wait for it; copies use the fast paths chunk by chunk as
 * the chunks are pinned. */
#define KVT_CUDA_PIN_CHUNK ((size_t)256 << 20)
#define KVT_CUDA_PIN_THREADS 4

/* Internal flag in a kvt_io_opts copy made by kvt__cuda_call_begin: its
 * `stream` field then points to the call's context, not to a cudaStream_t.
 * Callers may not set it (kvtier.h reserves bits 16..31). */
#define KVT__IO_CALL (1u << 31)

/* ------------------------------------------------------------------ loading */

/* 0 when a CUDA runtime and at least one device are usable; else
 * KVT_ENODEV with the reason as this thread's message (no driver, no
 * runtime, no device, KVTIER_CUDART=none, built without CUDA). Loads on the
 * first call; cheap afterwards. Thread-safe. */
int kvt__cuda_load(void);
/* Why kvt__cuda_load() fails, without the error code's text ("no CUDA
 * driver (libcuda.so.1: ...)"); "" when it does not. Static storage. */
const char *kvt__cuda_why(void);
/* Devices visible to this process; 0 when kvt__cuda_load() fails. */
int kvt__cuda_device_count(void);
/* 1 when some code already loaded the CUDA driver into this process (an
 * inference engine): kvtier then follows the GPU (NUMA node, pinning) at
 * store open without bringing CUDA into processes that don't use it. */
int kvt__cuda_in_process(void);
/* 0 when `device` is a usable ordinal; KVT_ENODEV otherwise (message). */
int kvt__cuda_check_device(int device);
/* The PCI bus id ("0000:3b:00.0") of a device into buf. 0 or KVT_ENODEV. */
int kvt__cuda_pci_bus_id(int device, char *buf, size_t cap);
/* The device of CUDA device or managed memory p into *device: 0, or
 * KVT_EMEMKIND when p is host memory or unknown to CUDA (message). */
int kvt__cuda_ptr_device(const void *p, int *device);

/* ------------------------------------------------------ api.c: per call */

/* Checks per-call options that concern CUDA: device pointers (mem kind
 * CUDA: usable device, first and last pointer are memory of that device),
 * the stream (usable runtime), flags. nptrs pointers at ptrs. 0, or
 * KVT_ENODEV (no runtime/device, ordinal out of range), KVT_EMEMKIND
 * (pointer is not device memory of opts->device; CUDA memory in a build
 * without CUDA), KVT_ENOTSUP (stream in a build without CUDA), KVT_EINVAL
 * (reserved flags). `fn` names the call in messages. */
int kvt__cuda_check_io(const kvt_io_opts *o, void *const *ptrs, size_t nptrs, const char *fn);

/* At an asynchronous kvt_put/kvt_get call with a stream, in the caller's
 * thread: records an event on the stream now (so the operation is ordered
 * after the work queued before the call, not whatever the worker finds
 * later) and, with KVT_IO_STREAM_WAIT, gates the stream: work queued on it
 * after the call waits until the library is done with the caller's memory.
 * *copy gets o with the context in place of the stream (KVT__IO_CALL);
 * pass `copy` on. The context is ended by kvt__cuda_io_end() in the store,
 * or by kvt__cuda_call_abort() if the operation never runs.
 * 0, KVT_EIO (CUDA error, message), KVT_ENOMEM. */
int kvt__cuda_call_begin(const kvt_io_opts *o, kvt_io_opts *copy);
/* The operation begun will not run (queue full...): opens its gate, frees. */
void kvt__cuda_call_abort(const kvt_io_opts *o);

/* ---------------------------- api.c, worker.c, store.c: around an operation */

/* Before a put or get runs (api.c for synchronous calls, the worker for
 * queued ones): waits (host) until the work queued on the caller's stream
 * before the call is done, so the source is complete (put) or the
 * destination free to overwrite (get). Nothing without a stream.
 * 0, or KVT_EIO when the stream's work failed (the call then fails). */
int kvt__cuda_io_begin(const kvt_io_opts *o);
/* After a put or get ran (or failed to), on every path: opens the gate (if
 * any) and frees the call's context. Nothing without one. */
void kvt__cuda_io_end(const kvt_io_opts *o);

/* --------------------------------------------------------- tiers: copies */

typedef enum kvt__cuda_dir {
    KVT__CUDA_H2D = 0, /* host src, device dst */
    KVT__CUDA_D2H = 1, /* device src, host dst */
    KVT__CUDA_D2D = 2  /* both on devices */
} kvt__cuda_dir;

/* What a tier moved, by method ("<tier>.cuda_ce_bytes"...). */
#define KVT_CUDA_COUNTERS(X)                                                        \
    X(ce_bytes)       /* copy engines, one cudaMemcpyAsync per fragment */          \
    X(ce_copies)                                                                    \
    X(batch_bytes)    /* cudaMemcpyBatchAsync */                                    \
    X(batch_copies)                                                                 \
    X(kernel_bytes)   /* gather/scatter kernel, 16-byte accesses */                 \
    X(kernel_copies)                                                                \
    X(kernel_launches)                                                              \
    X(pageable_bytes) /* host side not pinned (yet): the slow path */               \
    X(errors)

typedef struct kvt__cuda_counters {
#define KVT_X_FIELD(name) _Atomic uint64_t name;
    KVT_CUDA_COUNTERS(KVT_X_FIELD)
#undef KVT_X_FIELD
} kvt__cuda_counters;

/* Visits the counters as "<prefix>.cuda_<name>". */
void kvt__cuda_counters_visit(kvt__cuda_counters *c, const char *prefix, kvt_stat_fn fn,
                              void *user);

/* Copies n pieces on `device` (the device whose copy engines and SMs do the
 * work) and returns when every byte is in place. The method is chosen per
 * piece: copy engines for large ones, the kernel for small ones whose host
 * side is pinned (or, for D2D, when `kernel_d2d` says both sides are on
 * `device`), cudaMemcpyBatchAsync for the other small ones. c may be NULL.
 * 0 or KVT_EIO (with the CUDA error as message). Thread-safe. */
int kvt__cuda_copy(int device, kvt__cuda_dir dir, int kernel_d2d, const kvt__copy_op *ops,
                   size_t n, kvt__cuda_counters *c);

/* Device memory for the HBM arena. 0, KVT_ENOMEM, KVT_ENODEV. */
int kvt__cuda_malloc(int device, size_t bytes, void **out);
void kvt__cuda_free(int device, void *p);

/* ------------------------------------- staging (lib/tier/staged.c) */

/* A lane: a stream of one device with pinned staging, held by one thread
 * from kvt__cuda_stage_begin() to kvt__cuda_stage_end(). The wrapper that
 * bounces device memory through host memory for tiers without
 * KVT_TCAP_CUDA_MEM drives it; this layer never calls a tier. */
typedef struct kvt__cuda_lane kvt__cuda_lane;

/* Makes `device` current on this thread (until _end puts back what was)
 * and takes a free lane of it, waiting while all are in use; its
 * KVT_CUDA_STAGING_BYTES of pinned staging are allocated on first use.
 * 0, KVT_ENODEV, KVT_ENOMEM or KVT_EIO (message). */
int kvt__cuda_stage_begin(int device, kvt__cuda_lane **out);
/* The lane's pinned staging, or NULL when pinned memory could not be had
 * (the caller then bounces through pageable memory). */
char *kvt__cuda_stage_mem(kvt__cuda_lane *l);
/* Queues n copies (dir H2D or D2H, one side in the staging or other host
 * memory) after the lane's earlier work, using descriptor half `half` (0 or
 * 1, whose copies queued before must be done: kvt__cuda_stage_wait), and
 * marks the half done after them. Does not wait. 0, KVT_EIO, KVT_ENOMEM. */
int kvt__cuda_stage_queue(kvt__cuda_lane *l, int half, kvt__cuda_dir dir,
                          const kvt__copy_op *ops, size_t n);
/* Waits for the copies last queued on `half`. 0 or KVT_EIO. */
int kvt__cuda_stage_wait(kvt__cuda_lane *l, int half);
/* Waits for everything queued on the lane. 0 or KVT_EIO (message). */
int kvt__cuda_stage_sync(kvt__cuda_lane *l);
/* Waits for the lane, gives it back, restores this thread's device. */
void kvt__cuda_stage_end(kvt__cuda_lane *l);

/* -------------------------------------------- pinned host memory (DRAM) */

typedef struct kvt__cuda_region kvt__cuda_region;

/* Announces a host arena [base, base + bytes) of `unit`-byte slots that
 * copies to and from `device` will use, into *out. No CUDA call. 0 (*out
 * NULL in builds without CUDA, where there is nothing to pin) or
 * KVT_ENOMEM. */
int kvt__cuda_region_add(void *base, size_t bytes, size_t unit, int device,
                         kvt__cuda_region **out);
/* Starts pinning the region in the background (cudaHostRegister by chunks).
 * Idempotent; NULL is fine; does nothing without a usable device. */
void kvt__cuda_region_pin(kvt__cuda_region *r);
/* Same, for the region containing addr (the HBM tier is handed the DRAM
 * arena by address). */
void kvt__cuda_region_pin_at(const void *addr);
/* Stops pinning, unpins, forgets. Before the memory is unmapped. NULL ok. */
void kvt__cuda_region_remove(kvt__cuda_region *r);
/* Pinned bytes so far, and milliseconds from the start of pinning to its
 * end (0 while it runs). */
void kvt__cuda_region_stats(kvt__cuda_region *r, uint64_t *pinned_bytes, uint64_t *pin_ms);
/* 1 when [p, p + len) lies in a pinned chunk of a region or in staging the
 * layer allocated. Lock-free read of the chunk flags. */
int kvt__cuda_host_pinned(const void *p, size_t len);

/* ------------------------------------------------------------------ tests */

#if KVT_HAVE_CUDA
#include <cuda_runtime_api.h>

/* The runtime functions kvtier uses, as loaded. Tests and tools inside the
 * tree use them to avoid linking libcudart themselves. Optional ones
 * (marked) may be NULL with an older runtime. */
#define KVT_CUDART_REQUIRED(X)                                                    \
    X(cudaGetDeviceCount) X(cudaGetDevice) X(cudaSetDevice) X(cudaRuntimeGetVersion) \
    X(cudaDriverGetVersion) X(cudaGetErrorString) X(cudaGetErrorName)              \
    X(cudaGetLastError) X(cudaDeviceGetAttribute) X(cudaDeviceGetPCIBusId)         \
    X(cudaDeviceSynchronize) X(cudaMalloc) X(cudaFree) X(cudaHostAlloc)            \
    X(cudaFreeHost) X(cudaHostRegister) X(cudaHostUnregister) X(cudaMemcpy)        \
    X(cudaMemcpyAsync) X(cudaMemset) X(cudaMemsetAsync) X(cudaStreamCreateWithFlags) \
    X(cudaStreamDestroy) X(cudaStreamSynchronize) X(cudaStreamQuery)               \
    X(cudaStreamWaitEvent) X(cudaEventCreateWithFlags) X(cudaEventDestroy)         \
    X(cudaEventRecord) X(cudaEventSynchronize) X(cudaEventQuery)                   \
    X(cudaEventElapsedTime) X(cudaPointerGetAttributes) X(cudaLaunchKernel)
#define KVT_CUDART_OPTIONAL(X)                                                    \
    X(cudaMemcpyBatchAsync) X(cudaLibraryLoadData) X(cudaLibraryUnload)            \
    X(cudaLibraryGetKernel) X(cudaStreamGetDevice) X(cudaGetDriverEntryPointByVersion)

typedef struct kvt__cudart {
#define KVT_X_FN(name) __typeof__(name) *name;
    KVT_CUDART_REQUIRED(KVT_X_FN)
    KVT_CUDART_OPTIONAL(KVT_X_FN)
#undef KVT_X_FN
} kvt__cudart;

/* The loaded table, or NULL when kvt__cuda_load() fails. */
const kvt__cudart *kvt__cuda_rt(void);
/* A kernel from a fatbin the caller embeds (tests' own kernels), loaded
 * once per call site's `lib` slot. 0 or KVT_ENOTSUP / KVT_EIO. */
int kvt__cuda_kernel(const void *fatbin, const char *name, cudaLibrary_t *lib, cudaKernel_t *out);
/* Which small-fragment method the layer uses on `device` and why the
 * others are off, for test skips and docs ("kernel", "batch", "ce"). */
const char *kvt__cuda_small_method(int device, const char **why_not_kernel);
#endif

#endif
