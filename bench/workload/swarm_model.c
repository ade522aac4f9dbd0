/* swarm_model.c — a swarm run's rates (profile, measured fields, kvtier's efficiency per tier) and its TTFT model over the requests' records. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../bench.h"
#include "swarm_model.h"

int swarm_rec_push(rec_vec *a, const req_rec *x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        req_rec *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *x;
    return 0;
}

/* Fills the profile's measured fields, the efficiencies and the rates. */
void swarm_resolve_rates(const swarm_cfg *c, swarm_result *r)
{
    hw_profile *p = &r->prof;
    *p = c->prof;
    if (p->f[HW_GPU_GBPS].v < 0) {
        double v = 0;
        const char *how = "not measured: no DRAM gets or puts in this run";
        if (r->get_dram.base_ns)
            v = swarm_gbps(r->get_dram.base_bytes, r->get_dram.base_ns),
            how = "measured in this run: memcpy of the DRAM gets' blocks";
        else if (r->put.base_ns)
            v = swarm_gbps(r->put.base_bytes, r->put.base_ns),
            how = "measured in this run: memcpy of the puts' blocks";
        else if (r->get_dram.ns)
            v = swarm_gbps(r->get_dram.bytes, r->get_dram.ns),
            how = "measured in this run: kvtier's DRAM gets (no memcpy pairs)";
        hw_set(p, HW_GPU_GBPS, v, how);
    }
    if (p->f[HW_NVME_GBPS].v < 0) {
        double v = 0;
        const char *how = "not measured: no NVMe reads in this run";
        if (r->nvme_raw_gbps > 0)
            v = r->nvme_raw_gbps,
            how = "measured in this run: raw O_DIRECT reads of the slots kvtier wrote";
        else if (r->get_nvme.ns)
            v = swarm_gbps(r->get_nvme.bytes, r->get_nvme.ns),
            how = "measured in this run: kvtier's NVMe gets (swarm has no raw NVMe path)";
        hw_set(p, HW_NVME_DRIVES, 1, "this machine's disk");
        hw_set(p, HW_NVME_DRIVE_GBPS, v, how);
        hw_set(p, HW_NVME_GBPS, v, how);
    }
    if (c->cluster_dir && !(p->f[HW_CLUSTER_GBPS].v > 0)) {
        double v = swarm_gbps(r->get_cluster.bytes, r->get_cluster.ns);
        hw_set(p, HW_CLUSTER_GBPS, v,
               v > 0 ? "measured in this run: kvtier's cluster-tier gets"
                     : "not measured: no cluster-tier gets in this run");
    }
    double de = c->dram_eff, ne = c->nvme_eff;
    if (de > 0) {
        snprintf(r->dram_eff_src, sizeof r->dram_eff_src, "%s", c->dram_eff_src);
    } else if (r->get_dram.base_ns && r->get_dram.ratio > 0) {
        de = r->get_dram.ratio;
        snprintf(r->dram_eff_src, sizeof r->dram_eff_src,
                 "measured in this run: kvt_get from DRAM / memcpy of the same blocks, median "
                 "of %" PRIu64 " pairs",
                 r->get_dram.calls);
    } else {
        de = 1;
        snprintf(r->dram_eff_src, sizeof r->dram_eff_src,
                 "not measured (no memcpy pairs of DRAM gets): 1");
    }
    if (ne > 0) {
        snprintf(r->nvme_eff_src, sizeof r->nvme_eff_src, "%s", c->nvme_eff_src);
    } else if (r->nvme_lib_vs_raw > 0) {
        ne = r->nvme_lib_vs_raw;
        snprintf(r->nvme_eff_src, sizeof r->nvme_eff_src,
                 "measured in this run: kvt_get from NVMe / raw O_DIRECT reads of the same "
                 "slots");
    } else {
        ne = 1;
        snprintf(r->nvme_eff_src, sizeof r->nvme_eff_src,
                 "not measured (swarm has no raw NVMe path; the default run measures it): 1");
    }
    ttft_rates_from(&r->rates, p->f[HW_GPU_GBPS].v, p->f[HW_NVME_GBPS].v, c->gpus, de, ne);
    if (c->cluster_dir) {
        double ce = c->cluster_eff;
        if (ce > 0)
            snprintf(r->cluster_eff_src, sizeof r->cluster_eff_src, "%s", c->cluster_eff_src);
        else if (r->cluster_lib_vs_raw > 0)
            ce = r->cluster_lib_vs_raw,
            snprintf(r->cluster_eff_src, sizeof r->cluster_eff_src, "%s", r->cluster_raw_src);
        else
            ce = 1, snprintf(r->cluster_eff_src, sizeof r->cluster_eff_src, "assumed 1: %.140s",
                             r->cluster_raw_src[0] ? r->cluster_raw_src
                                                   : "no cluster gets to compare with raw reads");
        ttft_rates_cluster(&r->rates, p->f[HW_CLUSTER_GBPS].v, c->gpus, ce);
    }
}

/* The TTFT model over the run's requests, at the resolved rates. */
int swarm_model_ttft(const swarm_cfg *c, swarm_result *r, const rec_vec *a)
{
    ttft_model tm;
    if (ttft_init(&tm, c->gpus, c->prefill_tps, c->slo_ms, 2))
        return -1;
    if (ttft_set_layout(&tm, &c->layout)) {
        ttft_free(&tm);
        return -1;
    }
    const uint32_t tp = c->layout.tp ? c->layout.tp : 1;
    /* P/D: through the cluster tier when there is one (decode on another
     * node), else through the node-shared store's DRAM. */
    const ttft_pd_via via = c->cluster_dir ? TTFT_VIA_CLUSTER : TTFT_VIA_DRAM;
    double xfer_sum = 0;
    for (size_t i = 0; i < a->n; i++) {
        const req_rec *q = &a->v[i];
        double xfer = c->layout.pd ? ttft_pd_transfer_via_s(&r->rates, q->missed * c->bytes_per_token,
                                                            q->prompt_tokens * c->bytes_per_token,
                                                            tp, via)
                                   : 0;
        xfer_sum += xfer;
        if (ttft_add_on(&tm, q->t, ttft_load_bytes_s(&r->rates, &q->load, tp), q->missed,
                        q->window, q->session, xfer, q->instance)) {
            ttft_free(&tm);
            return -1;
        }
    }
    ttft_finish(&tm);
    r->ttft_p50_ms = bench_percentile(&tm.ttft_ms, 50);
    r->ttft_p95_ms = bench_percentile(&tm.ttft_ms, 95);
    r->ttft_p99_ms = bench_percentile(&tm.ttft_ms, 99);
    r->ttft_mean_ms = tm.count ? tm.sum_ms / (double)tm.count : NAN;
    r->load_p50_ms = bench_percentile(&tm.load_ms, 50);
    r->load_p99_ms = bench_percentile(&tm.load_ms, 99);
    r->prefill_p50_ms = bench_percentile(&tm.prefill_ms, 50);
    r->queue_p50_ms = bench_percentile(&tm.queue_ms, 50);
    r->queue_p95_ms = bench_percentile(&tm.queue_ms, 95);
    r->within_slo = tm.count ? (double)tm.within / (double)tm.count : 0;
    r->goodput_rps = r->virtual_s > 0 ? (double)tm.within / r->virtual_s : 0;
    r->pd_via = c->layout.pd ? (via == TTFT_VIA_CLUSTER ? "cluster" : "dram") : NULL;
    r->pd_transfer_mean_ms = a->n ? xfer_sum / (double)a->n * 1e3 : 0;
    r->load_imbalance = ttft_imbalance(&tm);
    r->judged = tm.win[1].n;
    r->judged_p50_ms = bench_percentile(&tm.win[1], 50);
    r->judged_p95_ms = bench_percentile(&tm.win[1], 95);
    ttft_free(&tm);
    return 0;
}

