// gpu_test_kernels.cu — kernels the gpu suite runs on an engine's stream: a slow writer, to catch copies that do not wait for it.

// splitmix64: the byte pattern test_gpu.c computes on the host (pattern()).
__device__ static unsigned long long mix(unsigned long long z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__device__ static unsigned long long now_ns()
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// Waits spin_ns (every thread, so nothing is written early), then writes
// pattern(seed) over dst[0..n): byte i is byte i % 8 of mix(seed + i / 8).
extern "C" __global__ void spin_then_fill(unsigned char *dst, unsigned long long n,
                                          unsigned long long seed, unsigned long long spin_ns)
{
    unsigned long long until = now_ns() + spin_ns;
    while (now_ns() < until)
        __nanosleep(1000);
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long w = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
         w * 8 < n; w += stride) {
        unsigned long long v = mix(seed + w);
        for (int b = 0; b < 8 && w * 8 + b < n; b++)
            dst[w * 8 + b] = (unsigned char)(v >> (8 * b));
    }
}
