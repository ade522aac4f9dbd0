/* swarm_report.c — the swarm run's text and JSON reports: workload, results, hardware profile, ramp. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "../model/knee.h"
#include "../workload/swarm_run.h"
#include "rows.h"

/* ------------------------------------------------------------- reports */

static const char *ttl_text(uint64_t ms, char *buf, size_t cap)
{
    if (!ms)
        snprintf(buf, cap, "none");
    else if (ms % 3600000 == 0)
        snprintf(buf, cap, "%" PRIu64 " h", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, cap, "%" PRIu64 " min", ms / 60000);
    else
        snprintf(buf, cap, "%.3g s", (double)ms / 1e3);
    return buf;
}

static double ratio_of(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0;
}

void swarm_text_workload(const swarm_cfg *c, const swarm_result *r)
{
    const swarm_params *p = &c->wl;
    char a[32], b[32], d[32], e[32], t1[32], t2[32];
    if (c->ramp)
        printf("  ramp: runs of N agents (1 type), %.0f virtual s each, seed %" PRIu64
               ", N searched up to the knee at TTFT p95 <= %.0f ms\n",
               p->duration_s, p->seed, c->slo_ms);
    else
        printf("  %u agents (%u type%s), %.0f virtual s (%.2f h), seed %" PRIu64 "%s\n", p->agents,
               p->agent_types, p->agent_types == 1 ? "" : "s", p->duration_s,
               p->duration_s / 3600, p->seed,
               p->sessions ? (p->cycle_random ? ", scripts drawn at random" : ", scripts round-robin")
                           : "");
    printf("  sessions: %u-token shared prefix, first request median %.0f tokens, ~%.0f turns;\n"
           "    +%.0f tokens after a tool call (%.0f%% of turns, think ~%.0f s), +%.0f after user "
           "text (think >= %.0f s);\n"
           "    %.1f%% of turns compact; %.0f%% of sessions spawn %u-%u sub-agents (~%.0f requests, "
           "%u-%u-token prefix)\n",
           p->prefix_tokens, p->first_median, p->turns_median, p->tool_append_median,
           100 * p->tool_share, exp(p->tool_think_mu), p->user_append_median,
           p->human_think_min_s, 100 * p->reset_rate, 100 * p->spawn_share, p->spawn_min,
           p->spawn_max, p->sub_requests_median, p->sub_prefix_min, p->sub_prefix_max);
    uint64_t real_block = (uint64_t)p->block_tokens * c->bytes_per_token;
    printf("  model %s: %s per token; blocks of %u tokens move %s", c->model,
           bench_fmt_bytes(c->bytes_per_token, a, sizeof a), p->block_tokens,
           bench_fmt_bytes(c->block_bytes, b, sizeof b));
    if (c->block_bytes != real_block)
        printf(" (bytes scaled x%.4g: the real block is %s)\n",
               (double)c->block_bytes / (double)real_block,
               bench_fmt_bytes(real_block, d, sizeof d));
    else
        printf(" (real size)\n");
    printf("  store: DRAM %s (%" PRIu64 " blocks)", bench_fmt_bytes(r->dram_blocks * c->block_bytes, a, sizeof a),
           r->dram_blocks);
    if (r->nvme_blocks)
        printf(", NVMe %s (%" PRIu64 " slots of %s) in %s",
               bench_fmt_bytes(r->nvme_blocks * r->nvme_slot_bytes, d, sizeof d), r->nvme_blocks,
               bench_fmt_bytes(r->nvme_slot_bytes, e, sizeof e), swarm_dir(c));
    if (c->cluster_dir)
        printf(", cluster tier in %s (%s%s)", c->cluster_dir,
               c->cluster_bytes ? "quota " : "no quota",
               c->cluster_bytes ? bench_fmt_bytes(c->cluster_bytes, e, sizeof e) : "");
    printf("; policy %s; TTL DRAM %s, NVMe %s\n", c->policy ? c->policy : "default",
           ttl_text(c->dram_ttl_ms, t1, sizeof t1), ttl_text(c->nvme_ttl_ms, t2, sizeof t2));
}

/* The operations table: one row per operation (put, get, get by tier,
 * lookup), JSON objects keyed by the row's "key", text rows by its "op". */
static const bench_field op_fields[] = {
    {"key", BT_LABEL},           {"op", BT_LABEL},       {"blocks_per_call", BT_LABEL},
    {"paired", BT_LABEL},        {"calls", BT_U64},      {"blocks", BT_U64},
    {"bytes", BT_U64},           {"seconds", BT_NUM},    {"gb_per_s", BT_NUM},
    {"memcpy_gb_per_s", BT_NUM}, {"ratio", BT_NUM},      {"ratio_p10", BT_NUM},
    {"ratio_p90", BT_NUM},       {"p50_us", BT_NUM},     {"p99_us", BT_NUM},
    {"keys", BT_U64},            {"lookups_per_s", BT_NUM}, {"keys_per_s", BT_NUM},
};

static const bench_col op_cols[] = {
    BENCH_COL_LEFT("op", NULL, "op"),
    BENCH_COL("calls", NULL, "calls"),
    BENCH_COL("blocks/call", NULL, "blocks_per_call"),
    {.head = "GB/s", .fmt = "%.2f", .keys = {"gb_per_s"}, .when = "bytes"},
    {.head = "memcpy GB/s", .fmt = "%.2f", .keys = {"memcpy_gb_per_s"}, .when = "paired"},
    {.head = "vs memcpy",
     .fmt = "%.0f%% (%.0f-%.0f)",
     .keys = {"ratio", "ratio_p10", "ratio_p90"},
     .scale = 100,
     .when = "paired"},
    {.head = "p50 us", .fmt = "%.1f", .keys = {"p50_us"}, .when = "calls"},
    {.head = "p99 us", .fmt = "%.1f", .keys = {"p99_us"}, .when = "calls"},
};

/* One operation. json_pairs: its JSON has the memcpy fields (null without
 * a baseline); text_pairs: its text row shows them when it had one. */
static void op_row(bench_rows *t, const char *key, const char *op, const swarm_op *o,
                   int json_pairs, int text_pairs)
{
    char per_call[32];
    snprintf(per_call, sizeof per_call, "%.1f",
             o->calls ? (double)o->blocks / (double)o->calls : 0);
    bench_rows_add(t);
    bench_rows_str(t, "key", key);
    bench_rows_str(t, "op", op);
    bench_rows_str(t, "blocks_per_call", per_call);
    bench_rows_str(t, "paired", text_pairs && o->base_ns && o->bytes ? "yes" : "");
    bench_rows_u64(t, "calls", o->calls);
    bench_rows_u64(t, "blocks", o->blocks);
    bench_rows_u64(t, "bytes", o->bytes);
    bench_rows_num(t, "seconds", (double)o->ns / 1e9);
    bench_rows_num(t, "gb_per_s", swarm_gbps(o->bytes, o->ns));
    if (json_pairs) {
        bench_rows_num(t, "memcpy_gb_per_s",
                       o->base_ns ? swarm_gbps(o->base_bytes, o->base_ns) : NAN);
        bench_rows_num(t, "ratio", o->ratio);
        bench_rows_num(t, "ratio_p10", o->ratio_p10);
        bench_rows_num(t, "ratio_p90", o->ratio_p90);
    }
    bench_rows_num(t, "p50_us", o->lat_p50_us);
    bench_rows_num(t, "p99_us", o->lat_p99_us);
}

/* Rows: put, get, get_dram, get_nvme (JSON only without an NVMe tier), lookup. */
static void ops_fill(bench_rows *t, const swarm_cfg *c, const swarm_result *r)
{
    bench_rows_init(t, op_fields, (int)(sizeof op_fields / sizeof *op_fields));
    op_row(t, "put", "put", &r->put, 1, c->pairs);
    op_row(t, "get", "get", &r->get, 0, 0);
    op_row(t, "get_dram", "  from DRAM", &r->get_dram, 1, c->pairs);
    op_row(t, "get_nvme", "  from NVMe", &r->get_nvme, 0, 0);
    if (!r->nvme_blocks)
        bench_rows_hide_text(t);
    if (c->cluster_dir)
        op_row(t, "get_cluster", "  from cluster", &r->get_cluster, 0, 0);
    /* lookup moves no bytes: its JSON has the key rates instead */
    const swarm_op *o = &r->lookup;
    double ls = (double)o->ns / 1e9;
    bench_rows_add(t);
    bench_rows_str(t, "key", "lookup");
    bench_rows_str(t, "op", "lookup");
    char per_call[32];
    snprintf(per_call, sizeof per_call, "%.1f",
             o->calls ? (double)o->blocks / (double)o->calls : 0);
    bench_rows_str(t, "blocks_per_call", per_call);
    bench_rows_u64(t, "calls", o->calls);
    bench_rows_u64(t, "blocks", o->blocks);
    bench_rows_num(t, "seconds", ls);
    bench_rows_num(t, "p50_us", o->lat_p50_us);
    bench_rows_num(t, "p99_us", o->lat_p99_us);
    bench_rows_u64(t, "keys", r->lookup_keys);
    bench_rows_num(t, "lookups_per_s", ls > 0 ? (double)o->calls / ls : 0);
    bench_rows_num(t, "keys_per_s", ls > 0 ? (double)r->lookup_keys / ls : 0);
}

void swarm_text_results(const swarm_cfg *c, const swarm_result *r)
{
    char a[32], b[32], d[32], e[32];
    printf("\n  requests     %" PRIu64 " (%" PRIu64 " sessions, %" PRIu64
           " sub-agents, %" PRIu64 " compactions) over %.0f virtual s, in %.1f s\n",
           r->requests, r->gen.sessions, r->gen.subagents, r->gen.resets + r->gen.forced_resets,
           r->virtual_s, r->wall_s);
    printf("  hit ratio    %.1f%% of %" PRIu64 " blocks: DRAM %.1f%%, NVMe %.1f%% (a cache that "
           "never forgets: %.1f%%)\n",
           100 * ratio_of(r->hit_blocks, r->blocks), r->blocks, 100 * ratio_of(r->hit_dram, r->blocks),
           100 * ratio_of(r->hit_nvme, r->blocks), 100 * ratio_of(r->seen_blocks, r->blocks));
    if (c->cluster_dir)
        printf("               cluster tier %.1f%% (%" PRIu64 " blocks, counted apart from "
               "DRAM and NVMe)\n",
               100 * ratio_of(r->hit_cluster, r->blocks), r->hit_cluster);
    if (r->hbm_blocks)
        printf("  HBM model    %u instances x %" PRIu64 " blocks (modelled): %.1f%% of blocks "
               "reused from the instance's own HBM (%.1f%% the store had lost); router %s\n",
               r->instances, r->hbm_blocks, 100 * ratio_of(r->hit_hbm, r->blocks),
               100 * ratio_of(r->hbm_beyond_store, r->blocks),
               c->layout.affinity ? "by session (affinity on)" : "at random (affinity off)");
    printf("  prefill      %.1f%% of %.1f M prompt tokens avoided (%.1f M from cache, %.1f M "
           "computed)\n",
           100 * ratio_of(r->hit_tokens, r->prompt_tokens), (double)r->prompt_tokens / 1e6,
           (double)r->hit_tokens / 1e6, (double)(r->prompt_tokens - r->hit_tokens) / 1e6);
    printf("  TTFT model   (modelled, profile %s) p50 %.0f ms, p95 %.0f ms, p99 %.0f ms; %.1f%% "
           "within the %.0f ms SLO; goodput %.3f req/s\n",
           r->prof.name, r->ttft_p50_ms, r->ttft_p95_ms, r->ttft_p99_ms, 100 * r->within_slo,
           c->slo_ms, r->goodput_rps);
    /* With a layout (ttft.h) the servers are instances of tp GPUs. */
    const ttft_layout *l = &c->layout;
    const int layout = l->tp > 1 || l->dp || l->pd || l->affinity || c->hbm_bytes;
    const uint32_t tp = l->tp ? l->tp : 1;
    const uint32_t servers = layout ? ttft_layout_servers(l, c->gpus) : c->gpus;
    const double tps = c->prefill_tps * tp * (l->tp_eff > 0 ? l->tp_eff : ttft_tp_efficiency(tp));
    printf("               = load (real bytes per tier / the profile's rate / kvtier's measured "
           "efficiency; p50 %.1f ms, p99 %.1f ms)\n"
           "               + FIFO wait for 1 of %u %s%s (p50 %.0f ms, p95 %.0f ms)"
           " + missed tokens / %.0f tok/s (p50 %.0f ms)%s\n",
           r->load_p50_ms, r->load_p99_ms, servers, layout ? "instance" : "GPU",
           servers == 1 ? "" : "s", r->queue_p50_ms, r->queue_p95_ms, tps, r->prefill_p50_ms,
           l->pd ? " + P/D transfer" : "");
    if (l->pd)
        printf("               P/D transfer through %s: mean %.1f ms per request\n",
               r->pd_via && strcmp(r->pd_via, "cluster") == 0
                   ? "the cluster tier (decode on another node)"
                   : "the node-shared store's DRAM",
               r->pd_transfer_mean_ms);
    if (servers > 1)
        printf("               load imbalance: the busiest instance prefilled %.2fx the mean "
               "(modelled)\n",
               r->load_imbalance);
    swarm_text_profile(c, r);
    printf("\n");
    bench_rows t;
    ops_fill(&t, c, r);
    bench_rows_text(&t, op_cols, (int)(sizeof op_cols / sizeof *op_cols), stdout, 2);
    bench_rows_free(&t);
    double ls = (double)r->lookup.ns / 1e9;
    printf("\n  lookup       %.0f lookups/s, %.2f M keys/s (keys examined: hits + first miss)\n",
           ls > 0 ? (double)r->lookup.calls / ls : 0,
           ls > 0 ? (double)r->lookup_keys / ls / 1e6 : 0);
    printf("  DRAM         %s in, %s out; %" PRIu64 " evictions, %" PRIu64 " expirations, %" PRIu64
           " promotions in\n",
           bench_fmt_bytes(r->dram_bytes_in, a, sizeof a), bench_fmt_bytes(r->dram_bytes_out, b, sizeof b),
           r->dram_evictions, r->dram_expirations, r->dram_promotions_in);
    if (r->nvme_blocks) {
        printf("  NVMe         %s written, %s read; %" PRIu64 " demotions in, %" PRIu64
               " evictions, %" PRIu64 " expirations\n",
               bench_fmt_bytes(r->nvme_bytes_written, d, sizeof d),
               bench_fmt_bytes(r->nvme_bytes_read, e, sizeof e), r->nvme_demotions_in,
               r->nvme_evictions, r->nvme_expirations);
        if (r->nvme_demote_put_ns)
            printf("               puts that demoted: %.3f GB/s of NVMe writes (demoted bytes / "
                   "those puts' time)\n",
                   swarm_gbps(r->nvme_demote_bytes, r->nvme_demote_put_ns));
    }
    printf("  checks       %" PRIu64 " puts rejected, %" PRIu64 " already held, %" PRIu64
           " short gets, %" PRIu64 " blocks with wrong bytes\n",
           r->put_rejected, r->put_present, r->get_short, r->verify_errors);
}

void swarm_json_config(bench_json *j, const swarm_cfg *c, const swarm_result *r)
{
    const swarm_params *p = &c->wl;
    bench_json_object(j, "config");
    bench_json_str(j, "mode", c->ramp ? "ramp" : "static");
    bench_json_str(j, "model", c->model);
    bench_json_u64(j, "bytes_per_token", c->bytes_per_token);
    bench_json_u64(j, "block_tokens", p->block_tokens);
    bench_json_u64(j, "block_bytes", c->block_bytes);
    uint64_t real_block = (uint64_t)p->block_tokens * c->bytes_per_token;
    bench_json_u64(j, "real_block_bytes", real_block);
    bench_json_bool(j, "bytes_scaled", c->block_bytes != real_block);
    bench_json_num(j, "byte_scale", (double)c->block_bytes / (double)real_block);
    bench_json_u64(j, "dram_bytes", r->dram_blocks * c->block_bytes);
    bench_json_u64(j, "dram_blocks", r->dram_blocks);
    bench_json_u64(j, "nvme_bytes", r->nvme_blocks * r->nvme_slot_bytes);
    bench_json_u64(j, "nvme_slots", r->nvme_blocks);
    bench_json_u64(j, "nvme_slot_bytes", r->nvme_slot_bytes);
    if (c->cluster_dir) {
        bench_json_str(j, "cluster_dir", c->cluster_dir);
        bench_json_u64(j, "cluster_bytes", c->cluster_bytes);
    }
    bench_json_str(j, "policy", c->policy ? c->policy : "default");
    bench_json_num(j, "dram_ttl_s", (double)c->dram_ttl_ms / 1e3);
    bench_json_num(j, "nvme_ttl_s", (double)c->nvme_ttl_ms / 1e3);
    bench_json_u64(j, "lease_ms", c->lease_ms);
    bench_json_bool(j, "promote", !c->no_promote);
    bench_json_u64(j, "gpus", c->gpus);
    bench_json_num(j, "prefill_tokens_per_s", c->prefill_tps);
    bench_json_num(j, "slo_ms", c->slo_ms);
    swarm_json_profile(j, r);
    bench_json_object(j, "workload");
    bench_json_u64(j, "seed", p->seed);
    bench_json_u64(j, "agents", p->agents);
    bench_json_u64(j, "agent_types", p->agent_types);
    bench_json_num(j, "duration_s", p->duration_s);
    bench_json_u64(j, "max_requests", p->max_requests);
    bench_json_num(j, "stagger_s", p->stagger_s);
    bench_json_num(j, "ramp_step_s", c->ramp ? p->duration_s : 0);
    bench_json_u64(j, "ramp_add", 0); /* kept: the ramp now searches (ramp.search) */
    bench_json_u64(j, "prefix_tokens", p->prefix_tokens);
    bench_json_num(j, "first_tokens_median", p->first_median);
    bench_json_num(j, "first_sigma", p->first_sigma);
    bench_json_u64(j, "max_context_tokens", p->max_context);
    bench_json_num(j, "turns_median", p->turns_median);
    bench_json_num(j, "turns_sigma", p->turns_sigma);
    bench_json_num(j, "tool_share", p->tool_share);
    bench_json_num(j, "tool_append_median", p->tool_append_median);
    bench_json_num(j, "tool_append_sigma", p->tool_append_sigma);
    bench_json_num(j, "user_append_median", p->user_append_median);
    bench_json_num(j, "user_append_sigma", p->user_append_sigma);
    bench_json_num(j, "reset_rate", p->reset_rate);
    bench_json_num(j, "reset_keep_min", p->reset_keep_min);
    bench_json_num(j, "reset_keep_max", p->reset_keep_max);
    bench_json_num(j, "output_median", p->output_median);
    bench_json_num(j, "output_sigma", p->output_sigma);
    bench_json_num(j, "tool_think_mu", p->tool_think_mu);
    bench_json_num(j, "tool_think_sigma", p->tool_think_sigma);
    bench_json_num(j, "human_think_mu", p->human_think_mu);
    bench_json_num(j, "human_think_sigma", p->human_think_sigma);
    bench_json_num(j, "human_think_min_s", p->human_think_min_s);
    bench_json_num(j, "decode_tokens_per_s", p->decode_tps);
    bench_json_num(j, "spawn_share", p->spawn_share);
    bench_json_u64(j, "spawn_min", p->spawn_min);
    bench_json_u64(j, "spawn_max", p->spawn_max);
    bench_json_num(j, "sub_requests_median", p->sub_requests_median);
    bench_json_num(j, "sub_requests_sigma", p->sub_requests_sigma);
    bench_json_u64(j, "sub_prefix_min", p->sub_prefix_min);
    bench_json_u64(j, "sub_prefix_max", p->sub_prefix_max);
    bench_json_num(j, "sub_first_median", p->sub_first_median);
    bench_json_num(j, "sub_first_sigma", p->sub_first_sigma);
    bench_json_u64(j, "sessions", p->sessions);
    bench_json_str(j, "cycle", p->cycle_random ? "random" : "rr");
    bench_json_end_object(j);
    bench_json_end_object(j);
}

void swarm_json_results(bench_json *j, const swarm_cfg *c, const swarm_result *r)
{
    bench_json_u64(j, "requests", r->requests);
    bench_json_u64(j, "sessions", r->gen.sessions);
    bench_json_u64(j, "subagents", r->gen.subagents);
    bench_json_u64(j, "compactions", r->gen.resets);
    bench_json_u64(j, "forced_compactions", r->gen.forced_resets);
    bench_json_num(j, "virtual_s", r->virtual_s);
    bench_json_num(j, "wall_s", r->wall_s);
    bench_json_u64(j, "blocks_requested", r->blocks);
    bench_json_u64(j, "blocks_hit", r->hit_blocks);
    bench_json_num(j, "hit_ratio", ratio_of(r->hit_blocks, r->blocks));
    bench_json_num(j, "hit_ratio_dram", ratio_of(r->hit_dram, r->blocks));
    bench_json_num(j, "hit_ratio_nvme", ratio_of(r->hit_nvme, r->blocks));
    bench_json_num(j, "hit_ratio_unbounded", ratio_of(r->seen_blocks, r->blocks));
    if (c->cluster_dir)
        bench_json_num(j, "hit_ratio_cluster", ratio_of(r->hit_cluster, r->blocks));
    if (r->hbm_blocks) {
        bench_json_object(j, "hbm");
        bench_json_str(j, "kind", "modelled");
        bench_json_u64(j, "instances", r->instances);
        bench_json_u64(j, "blocks_per_instance", r->hbm_blocks);
        bench_json_u64(j, "hit_blocks", r->hit_hbm);
        bench_json_num(j, "hit_ratio", ratio_of(r->hit_hbm, r->blocks));
        bench_json_u64(j, "beyond_store_blocks", r->hbm_beyond_store);
        bench_json_str(j, "router", c->layout.affinity ? "session" : "random");
        bench_json_end_object(j);
    }
    bench_json_object(j, "tokens");
    bench_json_u64(j, "prompt", r->prompt_tokens);
    bench_json_u64(j, "from_cache", r->hit_tokens);
    bench_json_u64(j, "prefilled", r->prompt_tokens - r->hit_tokens);
    bench_json_num(j, "avoided_ratio", ratio_of(r->hit_tokens, r->prompt_tokens));
    bench_json_end_object(j);
    bench_json_object(j, "ttft");
    bench_json_str(j, "model",
                   "load (real bytes from DRAM / (dram_gbps x dram_efficiency) + real bytes "
                   "from NVMe / (nvme_gbps x nvme_efficiency)) + wait (FIFO in the order "
                   "loads end for the first of gpus servers, virtual time) + missed tokens / "
                   "prefill_tokens_per_s");
    bench_json_str(j, "kind", "modelled");
    bench_json_str(j, "profile", r->prof.name);
    bench_json_num(j, "dram_gbps", r->rates.dram_gbps);
    bench_json_num(j, "nvme_gbps", r->rates.nvme_gbps);
    bench_json_num(j, "dram_efficiency", r->rates.dram_eff);
    bench_json_str(j, "dram_efficiency_source", r->dram_eff_src);
    bench_json_num(j, "nvme_efficiency", r->rates.nvme_eff);
    bench_json_str(j, "nvme_efficiency_source", r->nvme_eff_src);
    bench_json_u64(j, "load_dram_bytes", r->load_dram_bytes);
    bench_json_u64(j, "load_nvme_bytes", r->load_nvme_bytes);
    if (c->cluster_dir) {
        bench_json_num(j, "cluster_gbps", r->rates.cluster_gbps);
        bench_json_num(j, "cluster_efficiency", r->rates.cluster_eff);
        bench_json_str(j, "cluster_efficiency_source", r->cluster_eff_src);
        bench_json_u64(j, "load_cluster_bytes", r->load_cluster_bytes);
    }
    bench_json_num(j, "load_imbalance", r->load_imbalance);
    if (r->pd_via) {
        bench_json_str(j, "pd_via", r->pd_via);
        bench_json_num(j, "pd_transfer_mean_ms", r->pd_transfer_mean_ms);
    }
    bench_json_num(j, "p50_ms", r->ttft_p50_ms);
    bench_json_num(j, "p95_ms", r->ttft_p95_ms);
    bench_json_num(j, "p99_ms", r->ttft_p99_ms);
    bench_json_num(j, "mean_ms", r->ttft_mean_ms);
    bench_json_num(j, "load_p50_ms", r->load_p50_ms);
    bench_json_num(j, "load_p99_ms", r->load_p99_ms);
    bench_json_num(j, "prefill_p50_ms", r->prefill_p50_ms);
    bench_json_num(j, "queue_p50_ms", r->queue_p50_ms);
    bench_json_num(j, "queue_p95_ms", r->queue_p95_ms);
    bench_json_num(j, "slo_ms", c->slo_ms);
    bench_json_num(j, "within_slo", r->within_slo);
    bench_json_num(j, "goodput_rps", r->goodput_rps);
    bench_json_end_object(j);
    bench_rows t;
    ops_fill(&t, c, r);
    for (size_t i = 0; i < t.nrows; i++) /* objects named by their key */
        bench_rows_json_row(&t, i, j, bench_rows_str_of(&t, i, "key"));
    bench_rows_free(&t);
    bench_json_object(j, "tiers");
    bench_json_object(j, "dram");
    bench_json_u64(j, "hit_blocks", r->hit_dram);
    bench_json_u64(j, "bytes_in", r->dram_bytes_in);
    bench_json_u64(j, "bytes_out", r->dram_bytes_out);
    bench_json_u64(j, "evictions", r->dram_evictions);
    bench_json_u64(j, "expirations", r->dram_expirations);
    bench_json_u64(j, "promotions_in", r->dram_promotions_in);
    bench_json_end_object(j);
    if (c->cluster_dir) {
        bench_json_object(j, "cluster");
        bench_json_u64(j, "hit_blocks", r->hit_cluster);
        bench_json_end_object(j);
    }
    bench_json_object(j, "nvme");
    bench_json_u64(j, "hit_blocks", r->hit_nvme);
    bench_json_u64(j, "bytes_in", r->nvme_bytes_in);
    bench_json_u64(j, "bytes_out", r->nvme_bytes_out);
    bench_json_u64(j, "bytes_written", r->nvme_bytes_written);
    bench_json_u64(j, "bytes_read", r->nvme_bytes_read);
    bench_json_u64(j, "demotions_in", r->nvme_demotions_in);
    bench_json_u64(j, "evictions", r->nvme_evictions);
    bench_json_u64(j, "expirations", r->nvme_expirations);
    bench_json_num(j, "demoting_put_write_gb_per_s",
                   swarm_gbps(r->nvme_demote_bytes, r->nvme_demote_put_ns));
    bench_json_end_object(j);
    bench_json_end_object(j);
    bench_json_object(j, "store");
    bench_json_u64(j, "put_rejected", r->put_rejected);
    bench_json_u64(j, "put_present", r->put_present);
    bench_json_u64(j, "get_short", r->get_short);
    bench_json_u64(j, "verify_errors", r->verify_errors);
    bench_json_end_object(j);
}

static void text_figure(const hw_profile *p, hw_key k, const char *value)
{
    printf("    %-44s %-18s %s\n", hw_label(k), value, hw_src(p, k));
}

void swarm_text_profile(const swarm_cfg *c, const swarm_result *r)
{
    const hw_profile *p = &r->prof;
    char v[48];
    printf("  profile      %s%s: %s (--profile: %s)\n", p->name,
           strcmp(p->name, HW_DEFAULT_PROFILE) == 0 ? " (the default)" : "", p->what,
           hw_profile_names());
    for (int k = 0; k < HW_NKEYS; k++) {
        if (k == HW_PREFILL_8B || k == HW_PREFILL_70B) {
            if (k != (int)hw_prefill_key(c->model))
                continue;
            snprintf(v, sizeof v, "%.0f tok/s", p->f[k].v);
        } else if (k == HW_GPUS || k == HW_NVME_DRIVES) {
            snprintf(v, sizeof v, "%.0f", p->f[k].v);
        } else {
            snprintf(v, sizeof v, "%.3g GB/s", p->f[k].v);
        }
        text_figure(p, (hw_key)k, v);
    }
    printf("    %-44s %-18s %s\n", "kvtier efficiency, DRAM loads", "", r->dram_eff_src);
    printf("    %-44s %-18s %s\n", "kvtier efficiency, NVMe loads", "", r->nvme_eff_src);
    if (c->cluster_dir)
        printf("    %-44s %-18s %s\n", "kvtier efficiency, cluster loads", "", r->cluster_eff_src);
    printf("    loads: DRAM bytes at %.3g GB/s x %.2f; NVMe bytes at min(link, node NVMe / %u GPUs) "
           "= %.3g GB/s x %.2f\n",
           r->rates.dram_gbps, r->rates.dram_eff, c->gpus, r->rates.nvme_gbps, r->rates.nvme_eff);
    if (c->cluster_dir)
        printf("    cluster bytes at min(link, node cluster GB/s / %u GPUs) = %.3g GB/s x %.2f\n",
               c->gpus, r->rates.cluster_gbps, r->rates.cluster_eff);
    const ttft_layout *l = &c->layout;
    uint32_t tp = l->tp ? l->tp : 1;
    printf("    layout: tp %u (KV split over %u links; prefill x %u x %.3f), %u prefill server%s, "
           "router %s%s\n",
           tp, tp, tp, l->tp_eff > 0 ? l->tp_eff : ttft_tp_efficiency(tp),
           ttft_layout_servers(l, c->gpus), ttft_layout_servers(l, c->gpus) == 1 ? "" : "s",
           l->affinity ? "by session (affinity on)"
                       : c->hbm_bytes ? "to a random instance (affinity off)"
                                      : "to the instance free first",
           !l->pd ? ""
           : c->cluster_dir ? "; P/D: prefill workers put the KV into the cluster tier, decode "
                              "workers (another node) get it before their first token"
                            : "; P/D: prefill workers put the KV into the node-shared store, "
                              "decode workers get it from its DRAM before their first token");
}

void swarm_json_layout(bench_json *j, const swarm_cfg *c)
{
    const ttft_layout *l = &c->layout;
    uint32_t tp = l->tp ? l->tp : 1;
    bench_json_object(j, "layout");
    bench_json_num(j, "tp", tp);
    bench_json_num(j, "dp", l->dp ? l->dp : (c->gpus / tp ? c->gpus / tp : 1));
    bench_json_bool(j, "affinity", l->affinity);
    bench_json_bool(j, "pd", l->pd);
    bench_json_num(j, "prefill_servers", ttft_layout_servers(l, c->gpus));
    bench_json_num(j, "tp_efficiency", l->tp_eff > 0 ? l->tp_eff : ttft_tp_efficiency(tp));
    bench_json_num(j, "hbm_bytes_per_instance", (double)c->hbm_bytes);
    bench_json_str(j, "router", l->affinity ? "session" : c->hbm_bytes ? "random" : "free_first");
    if (l->pd)
        bench_json_str(j, "pd_via", c->cluster_dir ? "cluster" : "dram");
    bench_json_end_object(j);
}

void swarm_json_profile(bench_json *j, const swarm_result *r)
{
    const hw_profile *p = &r->prof;
    bench_json_object(j, "profile");
    bench_json_str(j, "name", p->name);
    bench_json_str(j, "what", p->what);
    for (int k = 0; k < HW_NKEYS; k++) {
        bench_json_object(j, hw_json_key((hw_key)k));
        bench_json_num(j, "value", p->f[k].v);
        bench_json_str(j, "source", hw_src(p, (hw_key)k));
        bench_json_end_object(j);
    }
    bench_json_end_object(j);
}

/* The ramp's steps, in the order run. */
static const bench_field ramp_fields[] = {
    {"step", BT_LABEL},         {"agents", BT_U64},      {"requests", BT_U64},
    {"hit_ratio", BT_NUM},      {"ttft_p50_ms", BT_NUM}, {"ttft_p95_ms", BT_NUM},
    {"within_slo", BT_BOOL},    {"wall_s", BT_NUM},
};

static const bench_col ramp_cols[] = {
    BENCH_COL("step", NULL, "step"),
    BENCH_COL("agents", NULL, "agents"),
    BENCH_COL("requests", NULL, "requests"),
    {.head = "hit ratio", .fmt = "%.1f%%", .keys = {"hit_ratio"}, .scale = 100},
    BENCH_COL("TTFT p50 ms", "%.0f", "ttft_p50_ms"),
    BENCH_COL("TTFT p95 ms", "%.0f", "ttft_p95_ms"),
    BENCH_COL_LEFT("SLO", "met|MISSED", "within_slo"),
    BENCH_COL("wall", "%.1f s", "wall_s"),
};

static void ramp_fill(bench_rows *t, const knee_result *k)
{
    bench_rows_init(t, ramp_fields, (int)(sizeof ramp_fields / sizeof *ramp_fields));
    for (int i = 0; i < k->nsteps; i++) {
        const knee_step *st = &k->step[i];
        char step[16];
        snprintf(step, sizeof step, "%d", i + 1);
        bench_rows_add(t);
        bench_rows_str(t, "step", step);
        bench_rows_u64(t, "agents", st->agents);
        bench_rows_u64(t, "requests", st->requests);
        bench_rows_num(t, "hit_ratio", st->hit_ratio);
        bench_rows_num(t, "ttft_p50_ms", st->ttft_p50_ms);
        bench_rows_num(t, "ttft_p95_ms", st->ttft_p95_ms);
        bench_rows_bool(t, "within_slo", st->met);
        bench_rows_num(t, "wall_s", st->wall_s);
    }
}

void swarm_text_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, const knee_result *k)
{
    printf("\n  ramp         (modelled TTFT, profile %s, %u GPU%s) runs of N agents for %.0f "
           "virtual s each, judged after %.0f s;\n"
           "               N grows x%.3g from %u until TTFT p95 > %.0f ms, then bisects "
           "(to %.0f%% or 1 agent)\n",
           c->prof.name, c->gpus, c->gpus == 1 ? "" : "s", o->step_s, o->warm_s, o->growth,
           o->start, c->slo_ms, 100 * o->resolution);
    bench_rows t;
    ramp_fill(&t, k);
    bench_rows_text(&t, ramp_cols, (int)(sizeof ramp_cols / sizeof *ramp_cols), stdout, 2);
    bench_rows_free(&t);
    printf("  knee         ");
    if (!k->knee)
        printf("no run met the SLO (1 agent missed it)\n");
    else if (k->exhausted)
        printf(">= %u agents within TTFT p95 <= %.0f ms (the most --agents allows)\n", k->knee,
               c->slo_ms);
    else
    {
        printf("%u agents within TTFT p95 <= %.0f ms", k->knee, c->slo_ms);
        if (k->first_bad)
            printf(" (%u missed it)", k->first_bad);
        printf("%s\n", k->capped ? "; reduced: the ramp's step or wall budget ran out first, "
                                   "the knee may be higher"
                                 : "");
    }
}

void swarm_json_ramp(bench_json *j, const swarm_cfg *c, const swarm_ramp_opts *o,
                     const knee_result *k)
{
    bench_json_object(j, "ramp");
    bench_json_str(j, "kind", "modelled");
    bench_json_str(j, "profile", c->prof.name);
    bench_json_u64(j, "knee_agents", k->knee);
    bench_json_u64(j, "max_agents", k->knee);
    bench_json_u64(j, "first_missed_agents", k->first_bad);
    bench_json_bool(j, "exhausted", k->exhausted);
    bench_json_bool(j, "capped", k->capped);
    bench_json_object(j, "search");
    bench_json_num(j, "step_s", o->step_s);
    bench_json_num(j, "warm_s", o->warm_s);
    bench_json_u64(j, "start", o->start);
    bench_json_u64(j, "max", o->max);
    bench_json_num(j, "growth", o->growth);
    bench_json_num(j, "resolution", o->resolution);
    bench_json_u64(j, "max_steps", (uint64_t)o->max_steps);
    bench_json_num(j, "wall_budget_s", o->wall_budget_s);
    bench_json_end_object(j);
    bench_rows t;
    ramp_fill(&t, k);
    bench_rows_json(&t, j, "windows"); /* the steps, in the order run */
    bench_rows_free(&t);
    bench_json_end_object(j);
}

