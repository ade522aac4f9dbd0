/* default_report.c — the default run's reports: each tier next to its ceiling, the TTL table, the story of the two ramps. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"
#include "../cmd/default_run.h"
#include "rows.h"


/* --------------------------------------------------------------- reports */

static double gbps(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / (double)ns : 0;
}

/* One row of the ceilings table: the library and its ceiling doing the same
 * work (the same string), on the same block and call sizes; rendered as a
 * text row and as a JSON object from this one description. */
typedef struct side {
    const char *work;
    double rate; /* GB/s (DRAM rows) or blocks/s (NVMe rows) */
    uint64_t calls, blocks;
    double seconds;
    double reads_per_block, writes_per_block; /* NVMe: whole-slot transfers */
    uint64_t distinct, verified;              /* raw NVMe sides */
} side;

typedef struct ceil_row {
    const char *path, *key, *unit, *how;
    char how_buf[200];
    int nvme;
    side lib, top;
    double ratio, p10, p90; /* DRAM: median and spread of paired calls; NVMe: rate / rate */
} ceil_row;

static side dram_side(const char *work, uint64_t calls, uint64_t bytes, uint64_t ns, uint64_t bb)
{
    return (side){.work = work, .rate = gbps(bytes, ns), .calls = calls,
                  .blocks = bb ? bytes / bb : 0, .seconds = (double)ns / 1e9};
}

static side nvme_side(const char *work, const io_side *o)
{
    return (side){.work = work,
                  .rate = o->ns ? (double)o->blocks * 1e9 / (double)o->ns : 0,
                  .calls = o->calls,
                  .blocks = o->blocks,
                  .seconds = (double)o->ns / 1e9,
                  .reads_per_block = o->blocks ? (double)o->slot_reads / (double)o->blocks : 0,
                  .writes_per_block = o->blocks ? (double)o->slot_writes / (double)o->blocks : 0,
                  .distinct = o->distinct,
                  .verified = o->verified};
}

/* The rows this run can fill; returns how many. */
static int ceiling_rows(const swarm_cfg *c, const swarm_result *r, const nvme_rows *n,
                        ceil_row *row)
{
    const uint64_t bb = c->block_bytes;
    int k = 0;
    char a[32];
    ceil_row *w = &row[k++];
    *w = (ceil_row){.path = "DRAM -> engine (get)", .key = "dram_get", .unit = "GB/s",
                    .how = "the same blocks by memcpy, one copy per get, paired call by call"};
    w->lib = dram_side("copy blocks DRAM -> engine buffer", r->get_dram.calls, r->get_dram.bytes,
                       r->get_dram.ns, bb);
    w->top = dram_side("copy blocks DRAM -> engine buffer", r->get_dram.calls,
                       r->get_dram.base_bytes, r->get_dram.base_ns, bb);
    w->ratio = r->get_dram.ratio, w->p10 = r->get_dram.ratio_p10, w->p90 = r->get_dram.ratio_p90;
    w = &row[k++];
    *w = (ceil_row){.path = "engine -> DRAM (put)", .key = "dram_put", .unit = "GB/s"};
    snprintf(w->how_buf, sizeof w->how_buf,
             "memcpy, paired; only the %" PRIu64 " of %" PRIu64 " puts that demoted nothing",
             r->put_dram.calls, r->put.calls);
    w->how = w->how_buf;
    w->lib = dram_side("copy blocks engine buffer -> DRAM", r->put_dram.calls, r->put_dram.bytes,
                       r->put_dram.ns, bb);
    w->top = dram_side("copy blocks engine buffer -> DRAM", r->put_dram.calls,
                       r->put_dram.base_bytes, r->put_dram.base_ns, bb);
    w->ratio = r->put_dram.ratio, w->p10 = r->put_dram.ratio_p10, w->p90 = r->put_dram.ratio_p90;
    if (!n->ok)
        return k;
    bench_fmt_bytes(n->slot_bytes, a, sizeof a);
    w = &row[k++];
    *w = (ceil_row){.path = "NVMe -> engine (get, no promotion)", .key = "nvme_get",
                    .unit = "blocks/s", .nvme = 1};
    snprintf(w->how_buf, sizeof w->how_buf,
             "raw reads of the same %" PRIu64 " slots: %d x %s per call, QD%d, O_DIRECT",
             n->resident, NVME_BATCH, a, NVME_QD);
    w->how = w->how_buf;
    w->lib = nvme_side("read slots kvtier wrote -> engine buffer", &n->get);
    w->top = nvme_side("read slots kvtier wrote -> engine buffer", &n->raw_read);
    w = &row[k++];
    *w = (ceil_row){.path = "NVMe -> engine + DRAM (get, promotion)", .key = "nvme_get_promote",
                    .unit = "blocks/s", .nvme = 1};
    w->lib = nvme_side("read slots kvtier wrote, write slots", &n->get_promote);
    w->top = nvme_side("read slots kvtier wrote, write slots", &n->raw_rw);
    snprintf(w->how_buf, sizeof w->how_buf,
             "raw reads + writes of %s slots, as many per block as kvtier's promotions and "
             "demotions: %.2f read + %.2f written",
             a, w->lib.reads_per_block, w->lib.writes_per_block);
    w->how = w->how_buf;
    for (int i = k - 2; i < k; i++)
        row[i].ratio = row[i].top.rate > 0 ? row[i].lib.rate / row[i].top.rate : NAN;
    return k;
}

static void text_rate(bench_table *t, const ceil_row *w, double rate)
{
    if (w->nvme)
        bench_table_cell(t, "%.0f blocks/s", rate);
    else
        bench_table_cell(t, "%.2f GB/s", rate);
}

void default_text_ceilings(const swarm_cfg *c, const swarm_result *r, const nvme_rows *n)
{
    ceil_row row[4];
    int k = ceiling_rows(c, r, n, row);
    printf("\n  tier rates next to their ceilings: each ceiling does the row's work on the same "
           "data, in this run\n");
    static const char *const head[] = {"path", "kvtier", "ceiling", "kvtier/ceiling",
                                       "the ceiling"};
    bench_table t;
    bench_table_init(&t, 5, head, "lrrrl");
    for (int i = 0; i < k; i++) {
        const ceil_row *w = &row[i];
        bench_table_cell(&t, "%s", w->path);
        text_rate(&t, w, w->lib.rate);
        text_rate(&t, w, w->top.rate);
        if (w->nvme)
            bench_table_cell(&t, "%.0f%%", 100 * w->ratio);
        else if (isnan(w->ratio))
            bench_table_cell(&t, "-");
        else
            bench_table_cell(&t, "%.0f%% (%.0f-%.0f)", 100 * w->ratio, 100 * w->p10,
                             100 * w->p90);
        bench_table_cell(&t, "%s", w->how);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
    char a[32], b[32];
    printf("  machine      memcpy %.2f GB/s (the DRAM rows' baseline, on this machine's memory)\n",
           row[0].top.rate);
    if (n->ok) {
        const side *rd = &row[2].top;
        printf("  machine      O_DIRECT reads of written slots: %.2f GB/s at QD%d (%s per read; "
               "this disk, this filesystem)\n",
               rd->rate * (double)n->slot_bytes / 1e9, NVME_QD,
               bench_fmt_bytes(n->slot_bytes, a, sizeof a));
        printf("  NVMe rows    read only slots kvtier wrote: %" PRIu64 " slots of %" PRIu64
               " hold a block header (%s of the %s file), %" PRIu64
               " of them in NVMe; raw reads: %" PRIu64 " of %" PRIu64
               " found kvtier's header and key, %" PRIu64 " distinct slots\n",
               n->written, n->slots, bench_fmt_bytes(n->written * n->slot_bytes, a, sizeof a),
               bench_fmt_bytes(n->slots * n->slot_bytes + UNIT, b, sizeof b), n->resident,
               rd->verified, rd->blocks, rd->distinct);
    } else if (r->nvme_blocks) {
        printf("  (no NVMe rows: %s)\n", n->why[0] ? n->why : "not measured");
    }
    printf("  (no row for demotions alone: a put that demotes also copies its own blocks, so "
           "its time has no like raw loop;\n   the promotion row counts the NVMe writes its "
           "DRAM victims cost, and its raw loop writes as many)\n");
}

static void json_side(bench_json *j, const char *key, const ceil_row *w, const side *s,
                      const nvme_rows *n, uint64_t bb)
{
    bench_json_object(j, key);
    bench_json_str(j, "work", s->work);
    bench_json_u64(j, "block_bytes", bb);
    bench_json_num(j, "rate", s->rate);
    bench_json_u64(j, "calls", s->calls);
    bench_json_u64(j, "blocks", s->blocks);
    bench_json_num(j, "blocks_per_call", s->calls ? (double)s->blocks / (double)s->calls : NAN);
    bench_json_num(j, "seconds", s->seconds);
    if (w->nvme) {
        bench_json_u64(j, "slot_bytes", n->slot_bytes);
        bench_json_u64(j, "queue_depth", NVME_QD);
        bench_json_num(j, "reads_per_block", s->reads_per_block);
        bench_json_num(j, "writes_per_block", s->writes_per_block);
        if (s == &w->top) {
            bench_json_u64(j, "distinct_slots_read", s->distinct);
            bench_json_u64(j, "reads_verified", s->verified);
        } else {
            bench_json_u64(j, "blocks_returned", s->verified);
        }
    }
    bench_json_end_object(j);
}

void default_json_ceilings(bench_json *j, const swarm_cfg *c, const swarm_result *r,
                           const nvme_rows *n)
{
    ceil_row row[4];
    int k = ceiling_rows(c, r, n, row);
    bench_json_object(j, "ceilings");
    bench_json_object(j, "machine");
    bench_json_num(j, "memcpy_gb_per_s", row[0].top.rate);
    bench_json_num(j, "nvme_read_gb_per_s",
                   n->ok ? row[2].top.rate * (double)n->slot_bytes / 1e9 : NAN);
    bench_json_end_object(j);
    bench_json_object(j, "nvme");
    bench_json_bool(j, "measured", n->ok);
    bench_json_str(j, "why_not", n->ok ? "" : n->why);
    bench_json_u64(j, "slot_bytes", n->slot_bytes);
    bench_json_u64(j, "slots", n->slots);
    bench_json_u64(j, "slots_written", n->written);
    bench_json_u64(j, "slots_resident", n->resident);
    bench_json_u64(j, "slots_resident_after_promotion", n->resident_after);
    bench_json_end_object(j);
    bench_json_array(j, "rows");
    for (int i = 0; i < k; i++) {
        const ceil_row *w = &row[i];
        bench_json_object(j, NULL);
        bench_json_str(j, "row", w->key);
        bench_json_str(j, "path", w->path);
        bench_json_str(j, "ceiling_is", w->how);
        bench_json_str(j, "unit", w->unit);
        json_side(j, "kvtier", w, &w->lib, n, c->block_bytes);
        json_side(j, "ceiling", w, &w->top, n, c->block_bytes);
        bench_json_num(j, "ratio", w->ratio);
        bench_json_str(j, "ratio_is", w->nvme ? "kvtier rate / ceiling rate"
                                              : "median of paired calls' GB/s ratios");
        if (!w->nvme) {
            bench_json_num(j, "ratio_p10", w->p10);
            bench_json_num(j, "ratio_p90", w->p90);
        }
        bench_json_end_object(j);
    }
    bench_json_end_array(j);
    bench_json_end_object(j);
}

static void ttl_name(double s, char *buf, size_t cap)
{
    if (!(s > 0))
        snprintf(buf, cap, "none");
    else if (s >= 3600)
        snprintf(buf, cap, "%.0f h", s / 3600);
    else if (s >= 60)
        snprintf(buf, cap, "%.0f min", s / 60);
    else
        snprintf(buf, cap, "%.0f s", s);
}

/* One row per TTL run (the main run's included). */
static const bench_field ttl_fields[] = {
    {"dram_ttl_s", BT_NUM},
    {"nvme_ttl_s", BT_NUM},
    {"dram_ttl", BT_LABEL},
    {"nvme_ttl", BT_LABEL},
    {"source", BT_STR},
    {"hit_ratio", BT_NUM},
    {"hit_ratio_dram", BT_NUM},
    {"hit_ratio_nvme", BT_NUM},
    {"prefill_avoided_ratio", BT_NUM},
    {"dram_expirations", BT_U64},
    {"nvme_expirations", BT_U64},
    {"expired", BT_LABEL},
    {"run", BT_LABEL},
    {"wall_s", BT_NUM},
};

#define TTL_PCT_COL(head_, key_) {.head = (head_), .fmt = "%.1f%%", .keys = {(key_)}, .scale = 100}
static const bench_col ttl_cols[] = {
    BENCH_COL("DRAM TTL", NULL, "dram_ttl"),
    BENCH_COL("NVMe TTL", NULL, "nvme_ttl"),
    TTL_PCT_COL("hit ratio", "hit_ratio"),
    TTL_PCT_COL("from DRAM", "hit_ratio_dram"),
    TTL_PCT_COL("from NVMe", "hit_ratio_nvme"),
    TTL_PCT_COL("prefill avoided", "prefill_avoided_ratio"),
    BENCH_COL("expired", NULL, "expired"),
    BENCH_COL_LEFT("run", NULL, "run"),
};

static void ttl_fill(bench_rows *t, const ttl_row *rows, int n)
{
    bench_rows_init(t, ttl_fields, (int)(sizeof ttl_fields / sizeof *ttl_fields));
    for (int i = 0; i < n; i++) {
        const ttl_row *w = &rows[i];
        const swarm_result *r = &w->r;
        char d[32], v[32], expired[32], run[32];
        ttl_name(w->dram_ttl_s, d, sizeof d);
        ttl_name(w->nvme_ttl_s, v, sizeof v);
        snprintf(expired, sizeof expired, "%" PRIu64, r->dram_expirations + r->nvme_expirations);
        if (w->main_run)
            snprintf(run, sizeof run, "the main run");
        else
            snprintf(run, sizeof run, "%.1f s", r->wall_s);
        bench_rows_add(t);
        bench_rows_num(t, "dram_ttl_s", w->dram_ttl_s);
        bench_rows_num(t, "nvme_ttl_s", w->nvme_ttl_s);
        bench_rows_str(t, "dram_ttl", d);
        bench_rows_str(t, "nvme_ttl", v);
        bench_rows_str(t, "source", w->main_run ? "main run" : "rerun");
        bench_rows_num(t, "hit_ratio", ratio_of(r->hit_blocks, r->blocks));
        bench_rows_num(t, "hit_ratio_dram", ratio_of(r->hit_dram, r->blocks));
        bench_rows_num(t, "hit_ratio_nvme", ratio_of(r->hit_nvme, r->blocks));
        bench_rows_num(t, "prefill_avoided_ratio", ratio_of(r->hit_tokens, r->prompt_tokens));
        bench_rows_u64(t, "dram_expirations", r->dram_expirations);
        bench_rows_u64(t, "nvme_expirations", r->nvme_expirations);
        bench_rows_str(t, "expired", expired);
        bench_rows_str(t, "run", run);
        bench_rows_num(t, "wall_s", r->wall_s);
    }
}

void default_text_ttl(const ttl_row *rows, int n)
{
    printf("\n  idle TTL vs hit ratio (the same workload; TTL rows rerun side by side with "
           "%d-byte blocks):\n",
           TTL_BLOCK_BYTES);
    bench_rows t;
    ttl_fill(&t, rows, n);
    bench_rows_text(&t, ttl_cols, (int)(sizeof ttl_cols / sizeof *ttl_cols), stdout, 2);
    bench_rows_free(&t);
}

void default_json_ttl(bench_json *j, const ttl_row *rows, int n)
{
    bench_json_object(j, "ttl");
    bench_json_u64(j, "block_bytes", TTL_BLOCK_BYTES);
    bench_rows t;
    ttl_fill(&t, rows, n);
    bench_rows_json(&t, j, "runs");
    bench_rows_free(&t);
    bench_json_end_object(j);
}


/* "12", ">= 1024" (exhausted) or "0" */
static const char *knee_text(const knee_result *k, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%u", k->exhausted ? ">= " : "", k->knee);
    return buf;
}

void default_text_story(const swarm_cfg *c, const swarm_result *r, const nvme_rows *n,
                        const ramp_job *job)
{
    for (int i = 0; i < 2; i++) {
        printf("\n  %s:", job[i].what);
        swarm_text_ramp(&job[i].c, &job[i].o, &job[i].k);
    }
    const knee_result *d = &job[0].k, *dn = &job[1].k;
    const hw_profile *p = &r->prof;
    uint64_t real_block = (uint64_t)c->wl.block_tokens * c->bytes_per_token;
    char a[32], b[32], k1[32], k2[32];
    printf("\n  the answer   (modelled, profile %s: %u GPU%s, %.3g GB/s host <-> GPU each, %.3g "
           "GB/s of NVMe per node,\n"
           "               %.0f prefill tok/s per GPU; TTFT p95 <= %.0f ms)\n",
           p->name, c->gpus, c->gpus == 1 ? "" : "s", p->f[HW_GPU_GBPS].v, p->f[HW_NVME_GBPS].v, c->prefill_tps,
           c->slo_ms);
    printf("               DRAM alone (%s of KV) sustains %s agents at the SLO; DRAM + NVMe (%s "
           "more) sustains %s",
           bench_fmt_bytes(r->dram_blocks * real_block, a, sizeof a), knee_text(d, k1, sizeof k1),
           bench_fmt_bytes(r->nvme_blocks * real_block, b, sizeof b), knee_text(dn, k2, sizeof k2));
    if (dn->knee >= d->knee && d->knee)
        printf(": %s%u more agents (x%.1f).\n", dn->exhausted ? ">= " : "", dn->knee - d->knee,
               (double)dn->knee / (double)d->knee);
    else if (dn->knee >= d->knee)
        printf(": %s%u more agents.\n", dn->exhausted ? ">= " : "", dn->knee - d->knee);
    else
        printf(": %u fewer agents.\n", d->knee - dn->knee);
    printf("               measured here (this machine, this run): kvtier's DRAM gets at %.0f%% of "
           "memcpy (%.2f GB/s)",
           100 * r->rates.dram_eff,
           r->get_dram.base_ns ? (double)r->get_dram.base_bytes / (double)r->get_dram.base_ns : 0);
    if (n->ok && r->nvme_raw_gbps > 0)
        printf(", its NVMe gets at %.0f%% of raw O_DIRECT reads (%.2f GB/s)", 100 * r->nvme_lib_vs_raw,
               r->nvme_raw_gbps);
    printf(";\n               the load times use the profile's rates divided by these "
           "efficiencies (capped at 100%%); hit ratios are the store's, measured on the "
           "workload.\n");
    if (d->capped || dn->capped)
        printf("               (reduced ramp: its step or %.0f s wall budget ran out before its "
               "resolution; each knee is the most agents a step met the SLO with, a lower "
               "bound)\n",
               job[0].o.wall_budget_s);
}

void default_json_story(bench_json *j, const swarm_cfg *c, const swarm_result *r,
                        const nvme_rows *n, const ramp_job *job)
{
    (void)n;
    bench_json_object(j, "story");
    bench_json_str(j, "kind", "modelled TTFT on measured hit ratios and efficiencies");
    bench_json_str(j, "profile", r->prof.name);
    bench_json_num(j, "slo_ms", c->slo_ms);
    uint64_t real_block = (uint64_t)c->wl.block_tokens * c->bytes_per_token;
    bench_json_u64(j, "dram_real_bytes", r->dram_blocks * real_block);
    bench_json_u64(j, "nvme_real_bytes", r->nvme_blocks * real_block);
    bench_json_u64(j, "knee_dram", job[0].k.knee);
    bench_json_u64(j, "knee_dram_nvme", job[1].k.knee);
    bench_json_num(j, "more_agents", (double)job[1].k.knee - (double)job[0].k.knee);
    bench_json_object(j, "measured");
    bench_json_num(j, "dram_efficiency", r->rates.dram_eff);
    bench_json_num(j, "memcpy_gb_per_s",
                   r->get_dram.base_ns ? (double)r->get_dram.base_bytes / (double)r->get_dram.base_ns
                                       : NAN);
    bench_json_num(j, "nvme_efficiency", r->nvme_lib_vs_raw > 0 ? r->nvme_lib_vs_raw : NAN);
    bench_json_num(j, "nvme_raw_read_gb_per_s", r->nvme_raw_gbps > 0 ? r->nvme_raw_gbps : NAN);
    bench_json_end_object(j);
    bench_json_array(j, "ramps");
    for (int i = 0; i < 2; i++) {
        bench_json_object(j, NULL);
        bench_json_str(j, "tiers", job[i].what);
        swarm_json_ramp(j, &job[i].c, &job[i].o, &job[i].k);
        bench_json_end_object(j);
    }
    bench_json_end_array(j);
    bench_json_end_object(j);
}

