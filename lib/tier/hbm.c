/* hbm.c — the HBM tier: a CUDA device arena of slots (reports KVT_ENODEV on machines without a GPU). */
#include <cuda_runtime_api.h>

#include "error.h"
#include "tier/tier.h"

static int hbm_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return kvt__err(KVT_ENODEV, "hbm tier: no CUDA device (%s)",
                        e == cudaSuccess ? "none found" : cudaGetErrorString(e));
    if (p->device >= n)
        return kvt__err(KVT_ENODEV, "hbm tier: device %d of %d", p->device, n);
    (void)out;
    (void)nslots;
    return kvt__err(KVT_ENOTSUP, "hbm tier: device arena not implemented yet");
}

const kvt_tier_ops kvt__tier_hbm = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "hbm",
    .caps = KVT_TCAP_DEVICE_PTR,
    .open = hbm_open,
};
