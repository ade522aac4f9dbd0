/* gpu/kernels.c — the copy and gate kernels of the embedded fatbin (lib/tier/hbm_kernels.cu), and tests' own kernels. */
#include <pthread.h>
#include <stdio.h>

#include "error.h"
#include "gpu/internal.h"

int kvt__gpu_kernels_load(void)
{
    pthread_mutex_lock(&kvt__gpu.lock);
    if (!kvt__gpu.kernel_state) {
        kvt__gpu.kernel_state = -1;
        if (!RT.cudaLibraryLoadData || !RT.cudaLibraryGetKernel) {
            snprintf(kvt__gpu.kernel_why, sizeof kvt__gpu.kernel_why,
                     "runtime lacks cudaLibraryLoadData");
        } else {
            cudaError_t e = RT.cudaLibraryLoadData(&kvt__gpu.lib, kvt__hbm_fatbin, NULL, NULL, 0,
                                                   NULL, NULL, 0);
            if (e == cudaSuccess)
                e = RT.cudaLibraryGetKernel(&kvt__gpu.copy_kernel, kvt__gpu.lib, "kvt_copy_kernel");
            if (e == cudaSuccess)
                e = RT.cudaLibraryGetKernel(&kvt__gpu.gate_kernel, kvt__gpu.lib, "kvt_gate_wait");
            if (e == cudaSuccess) {
                kvt__gpu.kernel_state = 1;
            } else {
                snprintf(kvt__gpu.kernel_why, sizeof kvt__gpu.kernel_why,
                         "loading the fatbin (%zu bytes): %s", kvt__hbm_fatbin_len,
                         RT.cudaGetErrorString(e));
                RT.cudaGetLastError();
            }
        }
    }
    int ok = kvt__gpu.kernel_state == 1;
    pthread_mutex_unlock(&kvt__gpu.lock);
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
    pthread_mutex_lock(&kvt__gpu.lock);
    if (!*lib)
        e = RT.cudaLibraryLoadData(lib, fatbin, NULL, NULL, 0, NULL, NULL, 0);
    pthread_mutex_unlock(&kvt__gpu.lock);
    if (e == cudaSuccess)
        e = RT.cudaLibraryGetKernel(out, *lib, name);
    return e == cudaSuccess ? 0 : kvt__gpu_err(KVT_EIO, e, name);
}

const char *kvt__cuda_small_method(int device, const char **why_not_kernel)
{
    static const char *const names[] = {"auto", "ce", "batch", "kernel"};
    *why_not_kernel = "";
    if (kvt__gpu_load_quiet()) {
        *why_not_kernel = kvt__gpu.why;
        return "none";
    }
    if (kvt__gpu.method)
        return names[kvt__gpu.method];
    if (device < 0 || device >= kvt__gpu.ndev)
        return "none";
    if (!kvt__gpu_kernels_load()) {
        *why_not_kernel = kvt__gpu.kernel_why;
        return RT.cudaMemcpyBatchAsync ? "batch" : "ce";
    }
    if (!kvt__gpu_dev_info(device)->host_ptr_ok)
        *why_not_kernel = "device cannot use registered host memory at its host address";
    return "kernel";
}
