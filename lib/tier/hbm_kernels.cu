// hbm_kernels.cu — the gather/scatter copy kernel and the stream-gate fallback, built into a fatbin the library embeds.
//
// Built by nvcc into a fatbin at build time (lib/meson.build), embedded as a
// C array (hbm_embed.py) and loaded at run time with cudaLibraryLoadData, so
// that libkvtier links no CUDA library and loads on machines without one.
// Kernel names are extern "C" so that cudaLibraryGetKernel finds them by
// their plain names.

#include <stdint.h>

// One piece of a copy batch. Same layout as kvt__cuda_desc in lib/gpu/internal.h.
struct kvt_copy_desc {
    const void *src;
    void *dst;
    unsigned long long len;
    unsigned long long pad; // 32 bytes: two descriptors per 64-byte line
};

// 16-byte loads per thread issued before any store: enough reads in flight to
// cover PCIe latency when one side is pinned host memory (zero-copy), where a
// load takes a microsecond or more to come back.
#define KVT_UNROLL 4

// Copies descriptor d with every thread of the block. Aligned pieces move in
// 16-byte accesses; anything else byte by byte (the host only sends aligned
// pieces here, the slow path only keeps odd ones correct).
__device__ static void copy_piece(const kvt_copy_desc &d)
{
    const uintptr_t s = (uintptr_t)d.src, t = (uintptr_t)d.dst;
    const unsigned long long n = d.len;
    if (((s | t) & 15) == 0) {
        const uint4 *__restrict__ src = (const uint4 *)d.src;
        uint4 *__restrict__ dst = (uint4 *)d.dst;
        const unsigned long long n16 = n / 16;
        const unsigned long long step = (unsigned long long)blockDim.x * KVT_UNROLL;
        for (unsigned long long base = threadIdx.x; base < n16; base += step) {
            uint4 v[KVT_UNROLL];
#pragma unroll
            for (int u = 0; u < KVT_UNROLL; u++) {
                unsigned long long i = base + (unsigned long long)u * blockDim.x;
                if (i < n16)
                    v[u] = src[i];
            }
#pragma unroll
            for (int u = 0; u < KVT_UNROLL; u++) {
                unsigned long long i = base + (unsigned long long)u * blockDim.x;
                if (i < n16)
                    dst[i] = v[u];
            }
        }
        for (unsigned long long i = n16 * 16 + threadIdx.x; i < n; i += blockDim.x)
            ((unsigned char *)d.dst)[i] = ((const unsigned char *)d.src)[i];
        return;
    }
    for (unsigned long long i = threadIdx.x; i < n; i += blockDim.x)
        ((unsigned char *)d.dst)[i] = ((const unsigned char *)d.src)[i];
}

// Copies n pieces; block b takes pieces b, b + gridDim.x, ... The host splits
// fragments into pieces of at most KVT_CUDA_KERNEL_PIECE bytes so that blocks
// get even work whatever the fragment sizes. Every thread reads the 32-byte
// descriptor itself (one cached line for the whole block) instead of thread 0
// staging it in shared memory: no barrier between pieces, so a warp that is
// done with its share of one piece starts loading the next while the others
// still wait on PCIe. With small pieces (16 KiB) the two barriers per piece
// were the difference between 16 KiB and 64 KiB fragments.
extern "C" __global__ void __launch_bounds__(512) kvt_copy_kernel(const kvt_copy_desc *desc,
                                                                   unsigned n)
{
    for (unsigned p = blockIdx.x; p < n; p += gridDim.x) {
        const kvt_copy_desc d = desc[p];
        copy_piece(d);
    }
}

// Fallback gate for devices whose driver refuses stream memory operations
// (cuStreamWaitValue32): one thread holds the engine's stream until the
// library writes `value` (or later) into the pinned word. Cyclic comparison,
// as cuStreamWaitValue32's GEQ.
extern "C" __global__ void kvt_gate_wait(const volatile unsigned *word, unsigned value)
{
    while ((int)(*word - value) < 0)
        __nanosleep(2000);
}
