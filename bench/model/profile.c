/* profile.c — the hardware profiles of the TTFT model; every figure carries its source (docs/bench.md, "Hardware profiles"). */
#include <stdio.h>
#include <string.h>

#include "profile.h"

/* Prefill rates are assumptions (docs/bench.md): llama-3.1-8b costs ~2 x 8e9
 * FLOP per token; at ~16% of a GPU's dense bf16 peak, long-context attention
 * included, an H100 or H200 (989 TFLOP/s) prefills ~10000 tokens/s and a
 * B200-class GPU of a GB200 (2.5 PFLOP/s) ~25000. 70b: scaled by parameters. */
#define SRC_PREFILL_H "assumed: 16% of 989 dense bf16 TFLOP/s (H100/H200 datasheets) / 2 x params FLOP per token"
#define SRC_PREFILL_B "assumed: 16% of 2.5 dense bf16 PFLOP/s per GPU (GB200 datasheet) / 2 x params FLOP per token"
#define SRC_CLUSTER "assumed: one 400 Gb/s NIC per GPU (ConnectX-7), 50 GB/s per GPU"

static const hw_profile profiles[] = {
    {.name = "h100-pcie5",
     .what = "8x H100 on PCIe Gen5 x16, 8 Gen4 NVMe drives (a DGX H100-like node)",
     .f = {[HW_GPU_GBPS] = {55, "PCIe Gen5 x16 pinned copies measured 55 GB/s each way on an H200 (../shared/DESIGN.md); the same link"},
           [HW_NVME_DRIVES] = {8, "DGX H100 datasheet: 8 x 3.84 TB NVMe U.2 data drives"},
           [HW_NVME_DRIVE_GBPS] = {6.9, "assumed: a PCIe Gen4 U.2 drive's datasheet sequential read (e.g. Kioxia CM6, 6.9 GB/s)"},
           [HW_NVME_GBPS] = {8 * 6.9, "drives x rate"},
           [HW_CLUSTER_GBPS] = {8 * 50, SRC_CLUSTER},
           [HW_GPUS] = {8, "DGX H100 datasheet: 8 GPUs"},
           [HW_PREFILL_8B] = {10000, SRC_PREFILL_H},
           [HW_PREFILL_70B] = {1150, SRC_PREFILL_H}}},
    {.name = "h200-pcie5",
     .what = "8x H200 on PCIe Gen5 x16, 8 Gen5 NVMe drives",
     .f = {[HW_GPU_GBPS] = {55, "PCIe Gen5 x16 pinned copies measured 55 GB/s each way on an H200 (../shared/DESIGN.md)"},
           [HW_NVME_DRIVES] = {8, "assumed: 8 data drives, as a DGX H200 datasheet lists"},
           [HW_NVME_DRIVE_GBPS] = {14, "assumed: a PCIe Gen5 drive's datasheet sequential read (e.g. Kioxia CM7, 14 GB/s)"},
           [HW_NVME_GBPS] = {8 * 14, "drives x rate"},
           [HW_CLUSTER_GBPS] = {8 * 50, SRC_CLUSTER},
           [HW_GPUS] = {8, "DGX H200 datasheet: 8 GPUs"},
           [HW_PREFILL_8B] = {10000, SRC_PREFILL_H},
           [HW_PREFILL_70B] = {1150, SRC_PREFILL_H}}},
    {.name = "gb200",
     .what = "a GB200 NVL72 compute tray: 4 GPUs, 2 Grace CPUs over NVLink-C2C, 8 Gen5 NVMe drives",
     .f = {[HW_GPU_GBPS] = {225, "assumed: NVLink-C2C 900 GB/s both ways per Grace (GB200 datasheet) = 450 each way, shared by its 2 GPUs"},
           [HW_NVME_DRIVES] = {8, "assumed: 8 E1.S bays per compute tray"},
           [HW_NVME_DRIVE_GBPS] = {14, "assumed: a PCIe Gen5 drive's datasheet sequential read (e.g. Kioxia CM7, 14 GB/s)"},
           [HW_NVME_GBPS] = {8 * 14, "drives x rate"},
           [HW_CLUSTER_GBPS] = {4 * 50, SRC_CLUSTER},
           [HW_GPUS] = {4, "GB200 NVL72: 72 GPUs in 18 compute trays of 4"},
           [HW_PREFILL_8B] = {25000, SRC_PREFILL_B},
           [HW_PREFILL_70B] = {2860, SRC_PREFILL_B}}},
    {.name = "measured",
     .what = "this machine: its memcpy as the host <-> GPU link, its disk as the node's NVMe, one GPU",
     .f = {[HW_GPU_GBPS] = {-1, "measured in this run: memcpy of the same blocks (the DRAM gets' baseline)"},
           [HW_NVME_DRIVES] = {1, "this machine's disk (the --dir filesystem)"},
           [HW_NVME_DRIVE_GBPS] = {-1, "measured in this run"},
           [HW_NVME_GBPS] = {-1, "measured in this run"},
           [HW_CLUSTER_GBPS] = {0, "none: no cluster tier here"},
           [HW_GPUS] = {1, "assumed: one GPU (this machine has none)"},
           [HW_PREFILL_8B] = {10000, "no GPU here to measure; as h100-pcie5, " SRC_PREFILL_H},
           [HW_PREFILL_70B] = {1150, "no GPU here to measure; as h100-pcie5, " SRC_PREFILL_H}}},
};
#define NPROFILES (sizeof profiles / sizeof profiles[0])

static const struct {
    const char *flag, *json, *label;
} keys[HW_NKEYS] = {
    [HW_GPU_GBPS] = {"gpu-gbps", "gpu_gbps", "host <-> GPU, GB/s per GPU"},
    [HW_NVME_DRIVES] = {"nvme-drives", "nvme_drives", "NVMe drives per node"},
    [HW_NVME_DRIVE_GBPS] = {"nvme-drive-gbps", "nvme_drive_gbps", "NVMe GB/s per drive"},
    [HW_NVME_GBPS] = {"nvme-gbps", "nvme_gbps", "NVMe GB/s per node"},
    [HW_CLUSTER_GBPS] = {"cluster-gbps", "cluster_gbps", "cluster tier GB/s per node (swarm --cluster-dir)"},
    [HW_GPUS] = {"gpus", "gpus", "GPUs per node (prefill servers)"},
    [HW_PREFILL_8B] = {"prefill-tps-8b", "prefill_tps_llama_3_1_8b", "prefill tok/s per GPU, llama-3.1-8b"},
    [HW_PREFILL_70B] = {"prefill-tps-70b", "prefill_tps_llama_3_1_70b", "prefill tok/s per GPU, llama-3.1-70b"},
};

int hw_profile_get(const char *name, hw_profile *out)
{
    for (size_t i = 0; i < NPROFILES; i++)
        if (strcmp(name, profiles[i].name) == 0) {
            *out = profiles[i];
            return 0;
        }
    return -1;
}

const char *hw_profile_names(void)
{
    return "h100-pcie5, h200-pcie5 (default), gb200, measured";
}

const char *hw_src(const hw_profile *p, hw_key k)
{
    return p->f[k].src ? p->f[k].src : p->srcbuf[k];
}

const char *hw_flag(hw_key k)
{
    return keys[k].flag;
}

const char *hw_json_key(hw_key k)
{
    return keys[k].json;
}

const char *hw_label(hw_key k)
{
    return keys[k].label;
}

void hw_set(hw_profile *p, hw_key k, double v, const char *why)
{
    p->f[k].v = v;
    snprintf(p->srcbuf[k], sizeof p->srcbuf[k], "%s", why);
    p->f[k].src = NULL; /* srcbuf: a copy of the profile stays whole */
    if ((k == HW_NVME_DRIVES || k == HW_NVME_DRIVE_GBPS) &&
        strcmp(hw_src(p, HW_NVME_GBPS), "drives x rate") == 0)
        p->f[HW_NVME_GBPS].v = p->f[HW_NVME_DRIVES].v * p->f[HW_NVME_DRIVE_GBPS].v;
}

hw_key hw_prefill_key(const char *model)
{
    return model && strstr(model, "70b") ? HW_PREFILL_70B : HW_PREFILL_8B;
}
