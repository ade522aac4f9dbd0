/* test_ttft.c — the bench's TTFT model (bench/model/ttft.c) on hardware profiles (bench/model/profile.c) against hand-computed cases, the per-instance HBM model and its router (bench/model/hbm.c), and the ramp's knee search (bench/model/knee.c) on fake runs whose knee is known. */
#include <criterion/criterion.h>
#include <math.h>

#include "../../bench/model/hbm.h"
#include "../../bench/model/knee.h"
#include "../../bench/model/profile.h"
#include "../../bench/model/ttft.h"

#define EPS 1e-9

static hw_profile get(const char *name)
{
    hw_profile p;
    cr_assert_eq(hw_profile_get(name, &p), 0, "profile %s", name);
    return p;
}

static ttft_rates rates_of(const hw_profile *p, double de, double ne)
{
    ttft_rates r;
    ttft_rates_from(&r, p->f[HW_GPU_GBPS].v, p->f[HW_NVME_GBPS].v, (uint32_t)p->f[HW_GPUS].v, de,
                    ne);
    return r;
}

Test(ttft, profiles_give_their_figures_with_sources)
{
    hw_profile p = get("h200-pcie5");
    cr_expect_eq(p.f[HW_GPU_GBPS].v, 55);
    cr_expect_eq(p.f[HW_NVME_GBPS].v, 8 * 14.0);
    cr_expect_eq(p.f[HW_GPUS].v, 8);
    cr_expect_eq(p.f[hw_prefill_key("llama-3.1-8b")].v, 10000);
    cr_expect_eq(p.f[hw_prefill_key("llama-3.1-70b")].v, 1150);
    const char *names[] = {"h100-pcie5", "h200-pcie5", "gb200", "measured"};
    for (int i = 0; i < 4; i++) {
        hw_profile q = get(names[i]);
        for (int k = 0; k < HW_NKEYS; k++)
            cr_expect(hw_src(&q, (hw_key)k) && hw_src(&q, (hw_key)k)[0], "%s: field %d has no source",
                      names[i], k);
    }
    hw_profile m = get("measured");
    cr_expect_lt(m.f[HW_GPU_GBPS].v, 0, "measured: the link is measured in the run");
    cr_expect_lt(m.f[HW_NVME_GBPS].v, 0);
    cr_expect_eq(m.f[HW_GPUS].v, 1);
    hw_profile x;
    cr_expect_eq(hw_profile_get("h300", &x), -1);
}

/* 11 GB from DRAM at 55 GB/s x 0.5 = 0.4 s; 7 GB from NVMe at min(55,
 * 112 / 8) = 14 GB/s x 1 = 0.5 s. */
Test(ttft, load_time_is_bytes_per_tier_over_rate_and_efficiency)
{
    hw_profile p = get("h200-pcie5");
    ttft_rates r = rates_of(&p, 0.5, 1);
    cr_expect_float_eq(r.dram_gbps, 55, EPS);
    cr_expect_float_eq(r.nvme_gbps, 14, EPS);
    cr_expect_float_eq(ttft_load_s(&r, 11000000000ull, 0), 0.4, EPS);
    cr_expect_float_eq(ttft_load_s(&r, 0, 7000000000ull), 0.5, EPS);
    cr_expect_float_eq(ttft_load_s(&r, 11000000000ull, 7000000000ull), 0.9, EPS);
    cr_expect_eq(ttft_load_s(&r, 0, 0), 0);
    /* gb200: 225 GB/s links, 112 GB/s of drives shared by 4 GPUs = 28. */
    hw_profile g = get("gb200");
    ttft_rates rg = rates_of(&g, 1, 0.5);
    cr_expect_float_eq(rg.nvme_gbps, 28, EPS);
    cr_expect_float_eq(ttft_load_s(&rg, 4500000000ull, 2800000000ull), 0.02 + 0.2, EPS);
    /* A link slower than the drive share caps NVMe loads. */
    ttft_rates slow;
    ttft_rates_from(&slow, 10, 112, 1, 1, 1);
    cr_expect_float_eq(slow.nvme_gbps, 10, EPS);
}

Test(ttft, efficiency_above_one_or_unmeasured_counts_as_one)
{
    ttft_rates r;
    ttft_rates_from(&r, 50, 100, 2, 1.3, NAN);
    cr_expect_eq(r.dram_eff, 1);
    cr_expect_eq(r.nvme_eff, 1);
    ttft_rates_from(&r, 50, 100, 2, 0, -2);
    cr_expect_eq(r.dram_eff, 1);
    cr_expect_eq(r.nvme_eff, 1);
    ttft_rates_from(&r, 50, 100, 2, 0.25, 0.8);
    cr_expect_float_eq(ttft_load_s(&r, 5000000000ull, 0), 0.4, EPS);
    cr_expect_float_eq(ttft_load_s(&r, 0, 4000000000ull), 0.1, EPS);
}

Test(ttft, overrides_recompute_the_node_nvme_rate_unless_it_was_set)
{
    hw_profile p = get("h200-pcie5");
    hw_set(&p, HW_NVME_DRIVES, 4, "--nvme-drives");
    cr_expect_float_eq(p.f[HW_NVME_GBPS].v, 56, EPS);
    cr_expect_str_eq(hw_src(&p, HW_NVME_DRIVES), "--nvme-drives");
    hw_set(&p, HW_NVME_GBPS, 20, "--nvme-gbps");
    hw_set(&p, HW_NVME_DRIVES, 2, "--nvme-drives");
    cr_expect_float_eq(p.f[HW_NVME_GBPS].v, 20, EPS);
    hw_profile copy = p; /* sources live in the profile: a copy keeps them */
    cr_expect_str_eq(hw_src(&copy, HW_NVME_GBPS), "--nvme-gbps");
}

/* Four requests, 10000 tok/s per GPU: three at t = 0 with nothing cached
 * (10000 tokens: 1 s of prefill each), one at t = 0.5 that loads 27.5 GB
 * from DRAM (0.5 s at 55 GB/s) and prefills 5000 tokens (0.5 s). */
static void four_requests(ttft_model *m, uint32_t gpus)
{
    hw_profile p = get("h200-pcie5");
    ttft_rates r = rates_of(&p, 1, 1);
    cr_assert_eq(ttft_init(m, gpus, 10000, 1500, 0), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ttft_add(m, 0, ttft_load_s(&r, 0, 0), 10000, 0), 0);
    cr_assert_eq(ttft_add(m, 0.5, ttft_load_s(&r, 27500000000ull, 0), 5000, 0), 0);
    ttft_finish(m);
    cr_assert_eq(m->count, 4);
}

Test(ttft, fifo_queue_on_two_gpus)
{
    ttft_model m;
    four_requests(&m, 2);
    /* GPUs A, B: r1 0-1 on A, r2 0-1 on B, r3 waits 1 s: 1-2 on A (TTFT 2),
     * r4 is loaded at 1.0 and takes B: 1.0-1.5 (TTFT 1.0, no wait). */
    cr_expect_float_eq(m.sum_ms, 1000 + 1000 + 2000 + 1000, 1e-6);
    cr_expect_eq(m.within, 3);
    cr_expect_float_eq(bench_max(&m.queue_ms), 1000, 1e-6);
    cr_expect_float_eq(bench_sum(&m.queue_ms), 1000, 1e-6);
    cr_expect_float_eq(bench_max(&m.load_ms), 500, 1e-6);
    ttft_free(&m);
}

Test(ttft, fifo_queue_on_one_gpu)
{
    ttft_model m;
    four_requests(&m, 1);
    /* r1 0-1, r2 1-2, r3 2-3, r4 (loaded at 1.0) 3-3.5: TTFT 3.0. */
    cr_expect_float_eq(m.sum_ms, 1000 + 2000 + 3000 + 3000, 1e-6);
    cr_expect_eq(m.within, 1);
    cr_expect_float_eq(bench_sum(&m.queue_ms), 1000 + 2000 + 2000, 1e-6);
    ttft_free(&m);
}

/* ------------------------------------------------------- the knee search */

typedef struct fake {
    uint32_t limit; /* the SLO holds for agents <= limit */
    int calls, fail_at;
} fake;

static int fake_measure(uint32_t agents, void *user, knee_step *st)
{
    fake *f = user;
    if (++f->calls == f->fail_at)
        return 7;
    st->met = agents <= f->limit;
    st->ttft_p95_ms = st->met ? 1000 : 3000;
    return 0;
}

static void expect_steps(const knee_result *r, const uint32_t *want, int n)
{
    cr_assert_eq(r->nsteps, n, "%d steps, wanted %d", r->nsteps, n);
    for (int i = 0; i < n; i++)
        cr_expect_eq(r->step[i].agents, want[i], "step %d: %u agents, wanted %u", i,
                     r->step[i].agents, want[i]);
}

Test(knee, grows_then_bisects_to_the_known_knee)
{
    fake f = {.limit = 37};
    knee_opts o = {.start = 8, .max = 1024, .growth = 2, .resolution = 0, .max_steps = 64};
    knee_result r;
    cr_assert_eq(knee_find(&o, fake_measure, &f, &r), 0);
    static const uint32_t want[] = {8, 16, 32, 64, 48, 40, 36, 38, 37};
    expect_steps(&r, want, 9);
    cr_expect_eq(r.knee, 37);
    cr_expect_eq(r.first_bad, 38);
    cr_expect(!r.exhausted && !r.capped);
    for (int i = 0; i < r.nsteps; i++)
        cr_expect_eq(r.step[i].met, r.step[i].agents <= 37);
}

Test(knee, every_limit_is_found_exactly)
{
    knee_opts o = {.start = 8, .max = 500, .growth = 2, .resolution = 0, .max_steps = 64};
    for (uint32_t limit = 0; limit <= 500; limit++) {
        fake f = {.limit = limit};
        knee_result r;
        cr_assert_eq(knee_find(&o, fake_measure, &f, &r), 0);
        cr_assert_eq(r.knee, limit, "limit %u: knee %u", limit, r.knee);
        cr_assert_eq(r.exhausted, limit == 500);
        cr_assert_eq(r.first_bad, limit == 500 ? 0 : limit + 1, "limit %u", limit);
    }
}

Test(knee, a_first_step_that_misses_bisects_down)
{
    fake f = {.limit = 3};
    knee_opts o = {.start = 8, .max = 1024, .growth = 2, .resolution = 0, .max_steps = 64};
    knee_result r;
    cr_assert_eq(knee_find(&o, fake_measure, &f, &r), 0);
    static const uint32_t want[] = {8, 4, 2, 3};
    expect_steps(&r, want, 4);
    cr_expect_eq(r.knee, 3);
    fake none = {.limit = 0};
    cr_assert_eq(knee_find(&o, fake_measure, &none, &r), 0);
    static const uint32_t want0[] = {8, 4, 2, 1};
    expect_steps(&r, want0, 4);
    cr_expect_eq(r.knee, 0);
}

Test(knee, stops_at_max_agents_and_at_the_resolution)
{
    fake all = {.limit = UINT32_MAX};
    knee_opts o = {.start = 8, .max = 100, .growth = 2, .resolution = 0, .max_steps = 64};
    knee_result r;
    cr_assert_eq(knee_find(&o, fake_measure, &all, &r), 0);
    static const uint32_t want[] = {8, 16, 32, 64, 100};
    expect_steps(&r, want, 5);
    cr_expect(r.exhausted);
    cr_expect_eq(r.knee, 100);
    /* 10%: 32 met, 64 missed; 48, 40 miss, 36 meets; 36..40 is within 3.6
     * after 38 misses. */
    fake f = {.limit = 37};
    o.max = 1024;
    o.resolution = 0.1;
    cr_assert_eq(knee_find(&o, fake_measure, &f, &r), 0);
    static const uint32_t want10[] = {8, 16, 32, 64, 48, 40, 36, 38};
    expect_steps(&r, want10, 8);
    cr_expect_eq(r.knee, 36);
    cr_expect_eq(r.first_bad, 38);
}

Test(knee, step_budget_and_errors)
{
    fake f = {.limit = 37};
    knee_opts o = {.start = 8, .max = 1024, .growth = 2, .resolution = 0, .max_steps = 5};
    knee_result r;
    cr_assert_eq(knee_find(&o, fake_measure, &f, &r), 0);
    cr_expect_eq(r.nsteps, 5);
    cr_expect(r.capped);
    cr_expect_eq(r.knee, 32);
    fake bad = {.limit = 37, .fail_at = 3};
    o.max_steps = 64;
    cr_expect_eq(knee_find(&o, fake_measure, &bad, &r), 7);
    cr_expect_eq(r.nsteps, 3);
    knee_opts z = {.start = 0, .max = 10, .growth = 2, .max_steps = 8};
    cr_expect_eq(knee_find(&z, fake_measure, &f, &r), -1);
    z.start = 4;
    z.growth = 1;
    cr_expect_eq(knee_find(&z, fake_measure, &f, &r), -1);
}

static int stop_after(uint32_t agents, void *user, knee_step *st)
{
    fake *f = user;
    if (f->calls == f->fail_at)
        return KNEE_STOP;
    f->calls++;
    st->met = agents <= f->limit;
    return 0;
}

Test(knee, a_spent_budget_ends_the_search_capped)
{
    fake f = {.limit = 37, .fail_at = 6};
    knee_opts o = {.start = 8, .max = 1024, .growth = 2, .resolution = 0, .max_steps = 64};
    knee_result r;
    cr_assert_eq(knee_find(&o, stop_after, &f, &r), 0);
    static const uint32_t want[] = {8, 16, 32, 64, 48, 40};
    expect_steps(&r, want, 6);
    cr_expect(r.capped);
    cr_expect_eq(r.knee, 32);
    cr_expect_eq(r.first_bad, 40);
}

/* Parallelism and disaggregation (ttft_layout), by hand. */
Test(ttft, tp_efficiency_is_ninety_percent_per_doubling)
{
    cr_expect_float_eq(ttft_tp_efficiency(0), 1, EPS);
    cr_expect_float_eq(ttft_tp_efficiency(1), 1, EPS);
    cr_expect_float_eq(ttft_tp_efficiency(2), 0.9, EPS);
    cr_expect_float_eq(ttft_tp_efficiency(4), 0.81, EPS);
    cr_expect_float_eq(ttft_tp_efficiency(8), 0.729, EPS);
}

/* 11 GB from DRAM at 55 GB/s: 0.2 s on one rank, 0.1 s on two (each loads
 * 5.5 GB over its own link); 7 GB from NVMe at 14 GB/s per GPU on 4 ranks:
 * 1.75 GB each, 0.125 s. */
Test(ttft, tp_splits_the_load_across_ranks)
{
    hw_profile p = get("h200-pcie5");
    ttft_rates r = rates_of(&p, 1, 1);
    cr_expect_float_eq(ttft_load_tp_s(&r, 11000000000ull, 0, 1), 0.2, EPS);
    cr_expect_float_eq(ttft_load_tp_s(&r, 11000000000ull, 0, 2), 0.1, EPS);
    cr_expect_float_eq(ttft_load_tp_s(&r, 0, 7000000000ull, 4), 0.125, EPS);
    cr_expect_float_eq(ttft_load_tp_s(&r, 11000000000ull, 7000000000ull, 0),
                       ttft_load_s(&r, 11000000000ull, 7000000000ull), EPS);
}

/* 8 GPUs at tp 2: 4 instances, each prefilling 2 x 10000 x 0.9 = 18000
 * tokens/s; 18000 missed tokens take 1 s. Five such requests at once: four
 * instances take one each (1 s), the fifth waits for the first (2 s). */
Test(ttft, tp_instances_prefill_faster_and_are_fewer)
{
    ttft_model m;
    cr_assert_eq(ttft_init(&m, 8, 10000, 1500, 0), 0);
    ttft_layout l = {.tp = 2};
    cr_expect_eq(ttft_layout_servers(&l, 8), 4);
    cr_assert_eq(ttft_set_layout(&m, &l), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ttft_add(&m, 0, 0, 18000, 0), 0);
    ttft_finish(&m);
    cr_expect_eq(m.count, 5);
    cr_expect_float_eq(bench_percentile(&m.ttft_ms, 0), 1000, 1e-6);
    cr_expect_float_eq(bench_percentile(&m.ttft_ms, 100), 2000, 1e-6);
    cr_expect_eq(m.within, 4);
    ttft_free(&m);
}

/* Two instances (dp 2) at 1000 tokens/s, two 1000-token requests at t 0
 * from sessions 0 and 2. Affinity: both go to instance 0 (2 % 2 = 0), the
 * second waits: 1 s and 2 s. No affinity: one each, 1 s and 1 s. */
Test(ttft, affinity_routes_by_session_and_can_queue)
{
    for (int aff = 0; aff <= 1; aff++) {
        ttft_model m;
        cr_assert_eq(ttft_init(&m, 2, 1000, 5000, 0), 0);
        ttft_layout l = {.dp = 2, .affinity = aff};
        cr_assert_eq(ttft_set_layout(&m, &l), 0);
        cr_assert_eq(ttft_add_req(&m, 0, 0, 1000, 0, 0, 0), 0);
        cr_assert_eq(ttft_add_req(&m, 0, 0, 1000, 0, 2, 0), 0);
        ttft_finish(&m);
        cr_expect_float_eq(bench_percentile(&m.ttft_ms, 100), aff ? 2000 : 1000, 1e-6,
                           "affinity %d", aff);
        ttft_free(&m);
    }
}

/* P/D on 4 instances: 2 prefill. A request that missed 1000 tokens (5.5
 * GB of new KV) of an 11 GB prompt: prefill 1 s at 1000 tokens/s, then the
 * put of 5.5 GB and the decode's get of 11 GB through DRAM at 55 GB/s: 0.3
 * s; TTFT 1.3 s. With tp 2 the transfer halves (0.15 s). Three requests at
 * once: the third waits for a prefill worker: 2.3 s. */
Test(ttft, pd_counts_the_transfer_in_the_first_token)
{
    hw_profile p = get("h200-pcie5");
    ttft_rates r = rates_of(&p, 1, 1);
    double x = ttft_pd_transfer_s(&r, 5500000000ull, 11000000000ull, 1);
    cr_expect_float_eq(x, 0.3, EPS);
    cr_expect_float_eq(ttft_pd_transfer_s(&r, 5500000000ull, 11000000000ull, 2), 0.15, EPS);
    ttft_layout l = {.dp = 4, .pd = 1};
    cr_expect_eq(ttft_layout_servers(&l, 4), 2);
    ttft_model m;
    cr_assert_eq(ttft_init(&m, 4, 1000, 5000, 0), 0);
    cr_assert_eq(ttft_set_layout(&m, &l), 0);
    for (uint64_t s = 0; s < 3; s++)
        cr_assert_eq(ttft_add_req(&m, 0, 0, 1000, 0, s, x), 0);
    ttft_finish(&m);
    cr_expect_float_eq(bench_percentile(&m.ttft_ms, 0), 1300, 1e-6);
    cr_expect_float_eq(bench_percentile(&m.ttft_ms, 100), 2300, 1e-6);
    ttft_free(&m);
    ttft_layout bad = {.dp = 2, .pd = 1, .prefill_instances = 2};
    cr_assert_eq(ttft_init(&m, 2, 1000, 5000, 0), 0);
    cr_expect_eq(ttft_set_layout(&m, &bad), -1, "no decode instance left");
    ttft_free(&m);
}

/* A ramp whose knee is known by construction: N agents each send one
 * 1800-token request at t 0 to 8 GPUs at tp 2 (4 instances at 2 x 1000 x
 * 0.9 = 1800 tokens/s: 1 s each). Request i finishes at ceil((i + 1) / 4)
 * s, so p95 <= 2 s exactly while N <= 8: knee 8, first miss 9, found by
 * growing 1, 2, 4, 8, 16 and bisecting 12, 10, 9. */
static int tp_measure(uint32_t agents, void *user, knee_step *st)
{
    (void)user;
    ttft_model m;
    cr_assert_eq(ttft_init(&m, 8, 1000, 2000, 0), 0);
    ttft_layout l = {.tp = 2};
    cr_assert_eq(ttft_set_layout(&m, &l), 0);
    for (uint32_t i = 0; i < agents; i++)
        cr_assert_eq(ttft_add_req(&m, 0, 0, 1800, 0, i, 0), 0);
    ttft_finish(&m);
    st->ttft_p95_ms = bench_percentile(&m.ttft_ms, 95);
    st->met = !(st->ttft_p95_ms > 2000 + 1e-6);
    ttft_free(&m);
    return 0;
}

Test(ttft, ramp_over_the_tp_model_finds_the_constructed_knee)
{
    knee_opts o = {.start = 1, .max = 64, .growth = 2, .resolution = 0, .max_steps = 20};
    knee_result r;
    cr_assert_eq(knee_find(&o, tp_measure, NULL, &r), 0);
    cr_expect_eq(r.knee, 8);
    cr_expect_eq(r.first_bad, 9);
    cr_expect_eq(r.nsteps, 8, "1 2 4 8 16 12 10 9: %d steps", r.nsteps);
    cr_expect(!r.capped && !r.exhausted);
}

/* ------------------------------------------------ the cluster tier's rate */

/* h200-pcie5: 400 GB/s of cluster network per node over 8 GPUs = 50 GB/s
 * each, under the 55 GB/s link; x 0.5 efficiency = 25 GB/s. 11 GB from DRAM
 * at 55 x 0.5 (0.4 s) + 7 GB from NVMe at 14 (0.5 s) + 5 GB from the
 * cluster at 25 (0.2 s) = 1.1 s; over tp 2 ranks 0.55 s. gb200: 200 / 4 =
 * 50 GB/s, under its 225 GB/s link. */
Test(ttft, cluster_loads_at_the_node_network_share_of_one_gpu)
{
    hw_profile p = get("h200-pcie5");
    ttft_rates r = rates_of(&p, 0.5, 1);
    cr_expect_eq(r.cluster_gbps, 0, "no cluster rate until it is set");
    ttft_rates_cluster(&r, p.f[HW_CLUSTER_GBPS].v, (uint32_t)p.f[HW_GPUS].v, 0.5);
    cr_expect_float_eq(r.cluster_gbps, 50, EPS);
    cr_expect_float_eq(r.cluster_eff, 0.5, EPS);
    ttft_bytes b = {.dram = 11000000000ull, .nvme = 7000000000ull, .cluster = 5000000000ull};
    cr_expect_float_eq(ttft_load_bytes_s(&r, &b, 1), 1.1, EPS);
    cr_expect_float_eq(ttft_load_bytes_s(&r, &b, 2), 0.55, EPS);
    ttft_bytes no_cluster = {.dram = 11000000000ull, .nvme = 7000000000ull};
    cr_expect_float_eq(ttft_load_bytes_s(&r, &no_cluster, 1),
                       ttft_load_s(&r, 11000000000ull, 7000000000ull), EPS);
    hw_profile g = get("gb200");
    ttft_rates rg = rates_of(&g, 1, 1);
    ttft_rates_cluster(&rg, g.f[HW_CLUSTER_GBPS].v, (uint32_t)g.f[HW_GPUS].v, 2 /* noise */);
    cr_expect_float_eq(rg.cluster_gbps, 50, EPS);
    cr_expect_float_eq(rg.cluster_eff, 1, EPS, "above 1 is taken as 1");
    ttft_rates_cluster(&rg, 1000, 4, 1);
    cr_expect_float_eq(rg.cluster_gbps, 225, EPS, "the link is the ceiling");
    ttft_rates none = rates_of(&p, 1, 1);
    ttft_bytes only = {.cluster = 1};
    cr_expect(isinf(ttft_load_bytes_s(&none, &only, 1)), "cluster bytes without a rate");
}

/* P/D through the store: 5.5 GB put by the prefill worker and the 11 GB
 * prompt got by the decode worker. Node-shared DRAM at 55 GB/s: 0.3 s.
 * The cluster tier (decode on another node) at 50 x 0.5 = 25 GB/s: 0.66 s,
 * 0.33 s over tp 2. In the model: a 1000-token prefill at 1000 tokens/s
 * (1 s) + 0.66 s = a first token at 1.66 s. */
Test(ttft, pd_through_the_cluster_tier_at_its_rate)
{
    hw_profile p = get("h200-pcie5");
    ttft_rates r = rates_of(&p, 1, 1);
    ttft_rates_cluster(&r, p.f[HW_CLUSTER_GBPS].v, (uint32_t)p.f[HW_GPUS].v, 0.5);
    const uint64_t nb = 5500000000ull, pb = 11000000000ull;
    cr_expect_float_eq(ttft_pd_transfer_via_s(&r, nb, pb, 1, TTFT_VIA_DRAM), 0.3, EPS);
    cr_expect_float_eq(ttft_pd_transfer_via_s(&r, nb, pb, 1, TTFT_VIA_DRAM),
                       ttft_pd_transfer_s(&r, nb, pb, 1), EPS);
    double x = ttft_pd_transfer_via_s(&r, nb, pb, 1, TTFT_VIA_CLUSTER);
    cr_expect_float_eq(x, 0.66, EPS);
    cr_expect_float_eq(ttft_pd_transfer_via_s(&r, nb, pb, 2, TTFT_VIA_CLUSTER), 0.33, EPS);
    ttft_model m;
    ttft_layout l = {.dp = 4, .pd = 1};
    cr_assert_eq(ttft_init(&m, 4, 1000, 5000, 0), 0);
    cr_assert_eq(ttft_set_layout(&m, &l), 0);
    cr_assert_eq(ttft_add_req(&m, 0, 0, 1000, 0, 0, x), 0);
    ttft_finish(&m);
    cr_expect_float_eq(bench_percentile(&m.ttft_ms, 50), 1660, 1e-6);
    ttft_free(&m);
    ttft_rates none = rates_of(&p, 1, 1);
    cr_expect(isinf(ttft_pd_transfer_via_s(&none, nb, pb, 1, TTFT_VIA_CLUSTER)));
}

/* ------------------------------------------------------ the HBM model */

static uint32_t prefix_of(hbm_model *h, uint32_t inst, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t k[3] = {a, b, c};
    return hbm_prefix(h, inst, k, 3);
}

/* Three blocks per instance, least recently used out first; instances do
 * not share. */
Test(hbm, an_lru_prefix_cache_per_instance)
{
    hbm_model h;
    cr_assert_eq(hbm_init(&h, 2, 3, 1, 1), 0);
    uint64_t abc[3] = {1, 2, 3}, d = 4;
    cr_assert_eq(hbm_admit(&h, 0, abc, 3), 0);
    cr_expect_eq(hbm_held(&h, 0), 3);
    cr_expect_eq(hbm_held(&h, 1), 0);
    cr_expect_eq(prefix_of(&h, 0, 1, 2, 3), 3);
    cr_expect_eq(prefix_of(&h, 1, 1, 2, 3), 0, "instance 1 has its own HBM");
    cr_expect_eq(prefix_of(&h, 0, 2, 3, 9), 2, "2 and 3 used again: 1 is the oldest");
    cr_expect_eq(prefix_of(&h, 0, 9, 2, 3), 0, "a prefix: nothing after a miss counts");
    cr_assert_eq(hbm_admit(&h, 0, &d, 1), 0);
    cr_expect_eq(hbm_held(&h, 0), 3);
    cr_expect_eq(prefix_of(&h, 0, 1, 2, 3), 0, "1 left for 4");
    cr_expect_eq(prefix_of(&h, 0, 2, 3, 4), 3);
    /* Many admissions through one instance: the index stays consistent. */
    for (uint64_t k = 100; k < 2100; k++)
        cr_assert_eq(hbm_admit(&h, 1, &k, 1), 0);
    cr_expect_eq(hbm_held(&h, 1), 3);
    cr_expect_eq(prefix_of(&h, 1, 2097, 2098, 2099), 3);
    cr_expect_eq(prefix_of(&h, 1, 2096, 2097, 2098), 0);
    hbm_free(&h);
    cr_assert_eq(hbm_init(&h, 4, 1, 1, 1), 0);
    cr_expect_eq(hbm_route(&h, 6), 2, "affinity: session %% instances");
    cr_expect_eq(hbm_route(&h, 6), 2);
    hbm_free(&h);
}

/*
 * Affinity's benefit, known by construction. Two instances, each with HBM
 * for one session's 4 blocks (8 MiB each: 64 tokens of 128 KiB); two
 * sessions (0 and 1) asking for their same 4 blocks 5 times each,
 * alternately. The node-shared store holds every block after its first
 * request, so a request that misses in its instance's HBM loads the 4
 * blocks from DRAM (32 MiB at 55 GB/s) instead of prefilling them.
 *   affinity on: session s always on instance s; each first request
 *     prefills 256 tokens at 1000 tokens/s (256 ms), the 8 others reuse all
 *     4 blocks from HBM: 32 HBM hits, nothing loaded, TTFT 0.
 *   affinity off: each request on a random instance; it reuses HBM only
 *     where the instance last served the same session (an instance holds
 *     one session): the hits an oracle counts that way, fewer than 32, and
 *     each other later request loads 32 MiB.
 */
typedef struct aff_out {
    uint64_t hbm_hits, oracle_hits, loads;
    double ttft_sum_ms;
} aff_out;

static aff_out affinity_run(int affinity)
{
    const uint64_t block_bytes = 64ull * 131072;
    hw_profile p = get("h200-pcie5");
    ttft_rates r = rates_of(&p, 1, 1);
    hbm_model h;
    cr_assert_eq(hbm_init(&h, 2, 4, affinity, 7), 0);
    ttft_model m;
    cr_assert_eq(ttft_init(&m, 2, 1000, 5000, 0), 0);
    ttft_layout l = {.dp = 2, .affinity = affinity};
    cr_assert_eq(ttft_set_layout(&m, &l), 0);
    aff_out o = {0};
    int last[2] = {-1, -1}, stored[2] = {0, 0};
    for (int i = 0; i < 10; i++) {
        int s = i % 2;
        uint64_t keys[4];
        for (int k = 0; k < 4; k++)
            keys[k] = 1000 * (uint64_t)(s + 1) + (uint64_t)k;
        uint32_t inst = hbm_route(&h, (uint64_t)s);
        uint32_t hh = hbm_prefix(&h, inst, keys, 4);
        o.oracle_hits += last[inst] == s ? 4 : 0;
        last[inst] = s;
        uint32_t store_hits = stored[s] ? 4 : 0; /* the shared store */
        stored[s] = 1;
        ttft_bytes b = {.dram = (store_hits > hh ? store_hits - hh : 0) * block_bytes};
        o.loads += b.dram;
        uint32_t hit = hh > store_hits ? hh : store_hits;
        cr_assert_eq(ttft_add_on(&m, 10.0 * i, ttft_load_bytes_s(&r, &b, 1), (4 - hit) * 64ull, 0,
                                 (uint64_t)s, 0, inst),
                     0);
        cr_assert_eq(hbm_admit(&h, inst, keys, 4), 0);
        o.hbm_hits += hh;
    }
    ttft_finish(&m);
    o.ttft_sum_ms = m.sum_ms;
    ttft_free(&m);
    hbm_free(&h);
    return o;
}

Test(hbm, affinity_keeps_a_session_where_its_prefix_is)
{
    aff_out on = affinity_run(1), off = affinity_run(0);
    cr_expect_eq(on.hbm_hits, 32);
    cr_expect_eq(on.oracle_hits, 32);
    cr_expect_eq(on.loads, 0);
    cr_expect_float_eq(on.ttft_sum_ms, 2 * 256, 1e-6);
    cr_expect_eq(off.hbm_hits, off.oracle_hits, "the LRU agrees with the oracle");
    cr_expect_lt(off.hbm_hits, 32, "a random router loses HBM hits (seed 7)");
    cr_expect_eq(off.loads, (32 - off.hbm_hits) * 64ull * 131072,
                 "what HBM lost comes from the shared store");
    double load_ms = 4 * 64.0 * 131072 / 55e9 * 1e3;
    cr_expect_float_eq(off.ttft_sum_ms, 2 * 256 + (32 - off.hbm_hits) / 4 * load_ms, 1e-6);
    cr_expect_gt(off.ttft_sum_ms, on.ttft_sum_ms);
}

/* Affinity's cost: sessions 0 and 2 both belong to instance 0 of 2, so two
 * 1000-token requests at once queue there (the second's TTFT 2 s) while
 * instance 1 idles: the busiest instance did 2x the mean. Without affinity
 * (no HBM to keep) the free instance takes the second: 1 s each, even. */
Test(hbm, affinity_can_cost_load_balance)
{
    for (int aff = 0; aff <= 1; aff++) {
        ttft_model m;
        cr_assert_eq(ttft_init(&m, 2, 1000, 5000, 0), 0);
        ttft_layout l = {.dp = 2, .affinity = aff};
        cr_assert_eq(ttft_set_layout(&m, &l), 0);
        cr_assert_eq(ttft_add_req(&m, 0, 0, 1000, 0, 0, 0), 0);
        cr_assert_eq(ttft_add_req(&m, 0, 0, 1000, 0, 2, 0), 0);
        ttft_finish(&m);
        cr_expect_float_eq(ttft_imbalance(&m), aff ? 2 : 1, 1e-9, "affinity %d", aff);
        cr_expect_float_eq(bench_percentile(&m.ttft_ms, 100), aff ? 2000 : 1000, 1e-6);
        ttft_free(&m);
    }
}
