/* gpu/internal.h — what the files of the CUDA layer (lib/gpu/) share: the loaded runtime, device state, lanes. */
#ifndef KVT_GPU_INTERNAL_H
#define KVT_GPU_INTERNAL_H

/*
 * lib/cuda.h is the layer's contract with the rest of the library; this
 * header is for the files of lib/gpu/ only. The layer is split by concern:
 *   runtime.c       dlopen of the driver and cudart, device facts, the
 *                   current-device guard
 *   kernels.c       the embedded fatbin's kernels, tests' kernels
 *   lanes.c         lanes: a stream, events and descriptors held by one thread
 *   pinned.c        pinned host regions (the DRAM arena) and staging
 *   copy_methods.c  one batch of copies, method chosen per piece
 *   stream_order.c  per-call ordering against the caller's stream (events, gates)
 *   staging.c       a lane's pinned staging for the tier wrapper lib/tier/staged.c
 *   common.c        what builds with and without CUDA share
 *   nocuda.c        the layer in builds without CUDA: stubs
 * Nothing here calls a tier or the store.
 */

#include <stdint.h>

#include "cuda.h"
#include "kvt_build_config.h"
#include "kvtier.h"

/* The per-call flags kvtier knows (kvtier.h); KVT_EINVAL naming the rest. */
int kvt__gpu_flags_ok(const kvt_io_opts *o, const char *fn);

#if KVT_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdatomic.h>

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

/* Whatever device or context a caller's thread had current is put back when
 * the layer is done, and a thread that had none is left with none
 * (restoring "device 0" would create a context on it). */
typedef struct kvt__gpu_guard {
    void *ctx;
    int prev;
    int how; /* 0 nothing to restore, 1 context, 2 device */
} kvt__gpu_guard;

/* A stream with its events, kernel descriptors and (once a bounce needed
 * it) pinned staging; held by one thread between get and put. */
struct kvt__cuda_lane {
    struct kvt__cuda_lane *next;
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
    kvt__gpu_guard guard; /* kvt__cuda_lane_begin's, undone by _end */
};

typedef struct ev_node {
    struct ev_node *next;
    cudaEvent_t ev;
} ev_node;

typedef struct kvt__gpu_dev {
    pthread_mutex_t lock;
    pthread_cond_t lane_free;
    int info_done;
    int sm_count;
    int host_ptr_ok;       /* kernels may use registered host memory at its host address */
    kvt__cuda_lane *lanes; /* free list */
    int nlanes;            /* created */
    ev_node *events;       /* free list */
} kvt__gpu_dev;

/* The process-wide state of the layer (runtime.c defines it). */
typedef struct kvt__gpu_state {
    pthread_once_t once;
    int rc;
    char why[256];
    void *driver, *handle;
    kvt__cudart rt;
    _Atomic int usable; /* set once loading succeeded: cheap test for the hot path */
    int ndev;
    kvt__gpu_dev *devs;
    int method;
    size_t ce_min;
    pfn_wait_value32 wait32;
    pfn_ctx_get ctx_get;
    pfn_ctx_set ctx_set;

    pthread_mutex_t lock; /* kernels */
    int kernel_state;     /* 0 not tried, 1 loaded, -1 failed */
    char kernel_why[160];
    cudaLibrary_t lib;
    cudaKernel_t copy_kernel, gate_kernel;
} kvt__gpu_state;

extern kvt__gpu_state kvt__gpu;
#define RT (kvt__gpu.rt)

/* runtime.c */
/* KVT_E* `code` with the CUDA error as message; clears a non-sticky error. */
int kvt__gpu_err(int code, cudaError_t e, const char *what);
/* kvt__cuda_load() without touching this thread's error message. */
int kvt__gpu_load_quiet(void);
int kvt__gpu_guard_enter(kvt__gpu_guard *gd, int device);
void kvt__gpu_guard_leave(kvt__gpu_guard *gd);
/* Device facts the copy paths need, read once per device. */
kvt__gpu_dev *kvt__gpu_dev_info(int device);

/* kernels.c: 1 when the copy and gate kernels are loaded. */
int kvt__gpu_kernels_load(void);

/* lanes.c: a free lane of `device` (current device already set by the
 * caller); waits while LANES_MAX are in use. */
int kvt__gpu_lane_get(int device, kvt__cuda_lane **out);
void kvt__gpu_lane_put(kvt__cuda_lane *l);
/* Waits for the lane's stream. 0 or KVT_EIO (message). */
int kvt__gpu_lane_sync(kvt__cuda_lane *l);

/* copy_methods.c: queues the pieces on the lane's stream, using descriptor
 * half `half` (whose previous kernel must have completed), or with half < 0
 * both halves in turn (the caller owns the lane's events and waits for the
 * stream after). Returns without waiting for the last launch. */
int kvt__gpu_lane_enqueue(kvt__cuda_lane *l, kvt__cuda_dir dir, int kernel_d2d,
                          const kvt__copy_op *ops, size_t n, int half, kvt__cuda_counters *c);

/* pinned.c. Regions only go away when their tier closes, never while it
 * copies: readers hold the lock for a whole batch. */
extern pthread_rwlock_t kvt__gpu_regions_lock;
/* kvt__cuda_host_pinned() with kvt__gpu_regions_lock held for reading. */
int kvt__gpu_host_pinned_locked(const void *p, size_t len);
/* Pinned memory the layer allocated itself (staging): a region born pinned,
 * never removed. */
void kvt__gpu_staging_region(void *base, size_t bytes);

#endif /* KVT_HAVE_CUDA */
#endif
