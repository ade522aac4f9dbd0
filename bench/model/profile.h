/* profile.h — hardware profiles for the TTFT model: link, NVMe, cluster and prefill rates of a GPU server, each figure with its source. */
#ifndef KVT_BENCH_PROFILE_H
#define KVT_BENCH_PROFILE_H

#include <stdint.h>

/* The figures a profile gives. The TTFT model uses GPU_GBPS, NVMe (drives x
 * rate, per node), GPUS and the model's PREFILL; CLUSTER_GBPS is printed
 * (the swarm has no cluster tier). */
typedef enum hw_key {
    HW_GPU_GBPS = 0,    /* host <-> GPU, GB/s per GPU, each way */
    HW_NVME_DRIVES,     /* NVMe drives per node */
    HW_NVME_DRIVE_GBPS, /* GB/s read per drive */
    HW_NVME_GBPS,       /* GB/s per node: drives x rate unless overridden */
    HW_CLUSTER_GBPS,    /* GB/s per node from the cluster (network) tier */
    HW_GPUS,            /* GPUs per node: the TTFT model's prefill servers */
    HW_PREFILL_8B,      /* prefill tokens/s per GPU, llama-3.1-8b */
    HW_PREFILL_70B,     /* ... llama-3.1-70b */
    HW_NKEYS
} hw_key;

typedef struct hw_field {
    double v;        /* < 0: measured in the run (profile "measured"), not yet known */
    const char *src; /* where the figure comes from (static); NULL: in srcbuf */
} hw_field;

typedef struct hw_profile {
    const char *name, *what;
    hw_field f[HW_NKEYS];
    char srcbuf[HW_NKEYS][160]; /* sources written at run time (overrides, measurements) */
} hw_profile;

#define HW_DEFAULT_PROFILE "h200-pcie5"

/* Copies the named profile into *out. Returns 0, or -1 (unknown name). */
int hw_profile_get(const char *name, hw_profile *out);
/* "h100-pcie5, h200-pcie5, gb200, measured" */
const char *hw_profile_names(void);
/* Field k's source. */
const char *hw_src(const hw_profile *p, hw_key k);
/* Field k's flag name ("gpu-gbps"), JSON key ("gpu_gbps"), and text label. */
const char *hw_flag(hw_key k);
const char *hw_json_key(hw_key k);
const char *hw_label(hw_key k);
/* Sets field k to v with the source `why` (copied). Setting the drives or
 * their rate recomputes the node's NVMe rate unless it was set itself. */
void hw_set(hw_profile *p, hw_key k, double v, const char *why);
/* The model's prefill field: HW_PREFILL_70B for names containing "70b",
 * else HW_PREFILL_8B. */
hw_key hw_prefill_key(const char *model);

#endif
