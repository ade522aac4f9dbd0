/* swarm_flags.c — what `swarm` and the default run share on the command line: models, fractions and durations, hardware-profile flags. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "../workload/swarm_run.h"

/* ---------------------------------------------------------------- models */

/* Bytes per token: 2 (K, V) x layers x KV heads x head dim x 2 bytes (bf16).
 * Prefill rates are the hardware profile's (profile.c). */
static const swarm_model models[] = {
    {"llama-3.1-8b", 2ull * 32 * 8 * 128 * 2},  /* 128 KiB */
    {"llama-3.1-70b", 2ull * 80 * 8 * 128 * 2}, /* 320 KiB */
};

const swarm_model *swarm_find_model(const char *name)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strcmp(name, models[i].name) == 0)
            return &models[i];
    return NULL;
}

/* --------------------------------------------------------------- parsing */

int swarm_parse_fraction(const char *text, double *out)
{
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    double a = strtod(text, &end);
    if (errno || end == text)
        return -1;
    if (*end == '/') {
        const char *q = end + 1;
        double b = strtod(q, &end);
        if (errno || end == q || !(b > 0))
            return -1;
        a /= b;
    }
    if (*end || !(a > 0 && a <= 1))
        return -1;
    *out = a;
    return 0;
}

int swarm_parse_seconds(const char *text, double *out)
{
    if (!text || !*text)
        return -1;
    if (strcmp(text, "inf") == 0 || strcmp(text, "none") == 0) {
        *out = 0;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !(v >= 0))
        return -1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        v *= 60, end++;
    else if (*end == 'h')
        v *= 3600, end++;
    else if (*end == 'd')
        v *= 86400, end++;
    if (*end || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------- profiles and the ramp */

static const hw_key flag_keys[] = {HW_GPU_GBPS,        HW_NVME_DRIVES,  HW_NVME_DRIVE_GBPS,
                                   HW_NVME_GBPS,       HW_CLUSTER_GBPS, HW_GPUS};
#define NFLAG_KEYS (sizeof flag_keys / sizeof flag_keys[0])
/* texts[]: one per flag_keys entry, then the prefill rate, then --profile. */
#define T_PREFILL NFLAG_KEYS
#define T_PROFILE (NFLAG_KEYS + 1)

int swarm_profile_flags(barg *spec, int ns, const char **texts)
{
    static const char *const help[] = {
        "TTFT model: host <-> GPU GB/s per GPU (default: the profile's)",
        "TTFT model: NVMe drives per node (default: the profile's)",
        "TTFT model: NVMe read GB/s per drive (default: the profile's)",
        "TTFT model: NVMe read GB/s per node (default: drives x rate)",
        "cluster tier GB/s per node (printed; the swarm has no cluster tier)",
        "TTFT model: GPUs per node, the prefill servers (default: the profile's)",
    };
    for (size_t i = 0; i < NFLAG_KEYS; i++)
        spec[ns++] = (barg){hw_flag(flag_keys[i]), BARG_STR, &texts[i], help[i]};
    spec[ns++] = (barg){"prefill-tokens-per-s", BARG_STR, &texts[T_PREFILL],
                        "TTFT model: prefill tok/s per GPU (default: the profile's for the model)"};
    spec[ns++] = (barg){"profile", BARG_STR, &texts[T_PROFILE],
                        "TTFT model's hardware: h100-pcie5, h200-pcie5 (default), gb200, measured"};
    return ns;
}

int swarm_profile_resolve(const char *const *texts, swarm_cfg *c, char *msg, size_t cap)
{
    const char *name = texts[T_PROFILE] ? texts[T_PROFILE] : HW_DEFAULT_PROFILE;
    if (hw_profile_get(name, &c->prof)) {
        snprintf(msg, cap, "--profile must be one of %s, not '%s'", hw_profile_names(), name);
        return -1;
    }
    hw_key pk = hw_prefill_key(c->model);
    for (size_t i = 0; i <= NFLAG_KEYS; i++) {
        const char *t = texts[i];
        if (!t)
            continue;
        hw_key k = i < NFLAG_KEYS ? flag_keys[i] : pk;
        const char *flag = i < NFLAG_KEYS ? hw_flag(k) : "prefill-tokens-per-s";
        char *end;
        errno = 0;
        double v = strtod(t, &end);
        int whole = k == HW_GPUS || k == HW_NVME_DRIVES;
        int ok = (v > 0 || (k == HW_CLUSTER_GBPS && v == 0)) && v <= 1e9;
        if (errno || end == t || *end || !ok || (whole && (v != floor(v) || v > 100000))) {
            snprintf(msg, cap, "--%s wants a number above 0%s, not '%s'", flag,
                     whole ? " (whole, <= 100000)" : "", t);
            return -1;
        }
        char why[64];
        snprintf(why, sizeof why, "--%s", flag);
        hw_set(&c->prof, k, v, why);
    }
    c->gpus = (uint32_t)c->prof.f[HW_GPUS].v;
    c->prefill_tps = c->prof.f[pk].v;
    return 0;
}


/* ------------------------------------------------ parallelism and P/D */

int swarm_layout_flags(barg *spec, int ns, swarm_layout_texts *t)
{
    spec[ns++] = (barg){"tp", BARG_STR, &t->tp,
                        "TTFT model: tensor-parallel GPUs per engine instance; KV split across them (default 1)"};
    spec[ns++] = (barg){"dp", BARG_STR, &t->dp,
                        "TTFT model: engine instances behind the router (default GPUs / tp)"};
    spec[ns++] = (barg){"affinity", BARG_STR, &t->affinity,
                        "TTFT model: router sends a session to one instance: on, or off (default: the instance free first; with --hbm-bytes a random one)"};
    spec[ns++] = (barg){"hbm-bytes", BARG_SIZE, &t->hbm_bytes,
                        "TTFT model: each instance's own HBM for KV (real bytes, e.g. 40G; default 0: not modelled)"};
    spec[ns++] = (barg){"pd", BARG_BOOL, &t->pd,
                        "TTFT model: disaggregated prefill/decode; KV goes through the store to the decode worker"};
    spec[ns++] = (barg){"pd-prefill", BARG_STR, &t->pd_prefill,
                        "with --pd: instances that prefill (default dp / 2; the rest decode)"};
    spec[ns++] = (barg){"tp-efficiency", BARG_STR, &t->tp_eff,
                        "TTFT model: prefill efficiency of tp ranks (default 0.9 per doubling, assumed)"};
    return ns;
}

static int whole_flag(const char *text, const char *flag, uint32_t lo, uint32_t hi, uint32_t *out,
                      char *msg, size_t cap)
{
    if (!text)
        return 0;
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        snprintf(msg, cap, "--%s wants a whole number in %u..%u, not '%s'", flag, lo, hi, text);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int swarm_layout_resolve(const swarm_layout_texts *t, swarm_cfg *c, char *msg, size_t cap)
{
    ttft_layout *l = &c->layout;
    memset(l, 0, sizeof *l);
    if (whole_flag(t->tp, "tp", 1, 1024, &l->tp, msg, cap) ||
        whole_flag(t->dp, "dp", 1, 100000, &l->dp, msg, cap) ||
        whole_flag(t->pd_prefill, "pd-prefill", 1, 100000, &l->prefill_instances, msg, cap))
        return -1;
    if (t->affinity && strcmp(t->affinity, "on") != 0 && strcmp(t->affinity, "off") != 0) {
        snprintf(msg, cap, "--affinity must be on or off, not '%s'", t->affinity);
        return -1;
    }
    l->affinity = t->affinity && strcmp(t->affinity, "on") == 0;
    l->pd = t->pd;
    c->hbm_bytes = t->hbm_bytes;
    if (t->tp_eff) {
        char *end;
        errno = 0;
        double v = strtod(t->tp_eff, &end);
        if (errno || end == t->tp_eff || *end || !(v > 0 && v <= 1)) {
            snprintf(msg, cap, "--tp-efficiency wants a number in (0, 1], not '%s'", t->tp_eff);
            return -1;
        }
        l->tp_eff = v;
    }
    uint32_t tp = l->tp ? l->tp : 1;
    if (!l->dp && tp > c->gpus) {
        snprintf(msg, cap, "--tp %u is more than the profile's %u GPUs (give --gpus or --dp)", tp,
                 c->gpus);
        return -1;
    }
    uint32_t dp = l->dp ? l->dp : c->gpus / tp;
    if (l->prefill_instances && !l->pd) {
        snprintf(msg, cap, "--pd-prefill needs --pd");
        return -1;
    }
    if (l->pd && (dp < 2 || (l->prefill_instances && l->prefill_instances >= dp))) {
        snprintf(msg, cap, "--pd needs at least 2 instances and --pd-prefill below them (%u)", dp);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- cluster tier */

int swarm_cluster_flags(barg *spec, int ns, swarm_cluster_texts *t)
{
    spec[ns++] = (barg){"cluster-dir", BARG_STR, &t->dir,
                        "add the cluster tier under DRAM/NVMe: each run's own directory is made here and removed after (default: none)"};
    spec[ns++] = (barg){"cluster-bytes", BARG_SIZE, &t->bytes,
                        "the cluster tier's quota (default 0: none)"};
    return ns;
}

void swarm_cluster_resolve(const swarm_cluster_texts *t, swarm_cfg *c)
{
    c->cluster_dir = t->dir;
    c->cluster_bytes = t->dir ? t->bytes : 0;
}
