/* test_ttft.c — the bench's TTFT model (bench/model/ttft.c) on hardware profiles (bench/model/profile.c) against hand-computed cases, and the ramp's knee search (bench/model/knee.c) on fake runs whose knee is known. */
#include <criterion/criterion.h>
#include <math.h>

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
