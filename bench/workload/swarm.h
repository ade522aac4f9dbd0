/* swarm.h — the synthetic agent-swarm workload (generator in swarm.c) and its run through a store (cmd_swarm.c). */
#ifndef KVT_BENCH_SWARM_H
#define KVT_BENCH_SWARM_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"
#include "../model/profile.h"
#include "../model/ttft.h"

/* ------------------------------------------------------------ swarm.c */

/*
 * Every knob of the generator. Defaults (swarm_params_default) come from the
 * analysis of 739 Claude Code sessions behind WEKA's kv-cache-tester; the
 * ones that analysis does not give are marked "assumed" in docs/bench.md.
 * Lognormals are given by their median and sigma (of the log).
 */
typedef struct swarm_params {
    uint64_t seed;
    uint32_t agents;       /* agents that run (static) or may run (ramp) */
    uint32_t agent_types;  /* agents of one type share their tools+system prefix */
    double duration_s;     /* virtual seconds of arrivals generated */
    uint64_t max_requests; /* 0: no limit */
    double stagger_s;      /* an agent's first request: uniform in [start, start + stagger) */
    /* ramp: agent a starts at (a / ramp_add) * ramp_step_s; 0 = static (all at 0) */
    double ramp_step_s;
    uint32_t ramp_add;

    uint32_t prefix_tokens;     /* tools + system prompt, identical per agent type */
    double first_median;        /* first request's tokens, prefix included */
    double first_sigma;         /* of its own part (beyond the prefix) */
    uint32_t max_context;       /* a turn that would pass this compacts (forced reset) */
    double turns_median, turns_sigma;
    double tool_share;          /* turns that follow a tool call; the rest follow user text */
    double tool_append_median, tool_append_sigma;
    double user_append_median, user_append_sigma;
    double reset_rate;          /* turns that compact the context (spontaneous) */
    double reset_keep_min, reset_keep_max; /* share of the own context kept, uniform */
    double output_median, output_sigma;
    double tool_think_mu, tool_think_sigma;   /* lognormal, seconds */
    double human_think_mu, human_think_sigma; /* lognormal, seconds, ... */
    double human_think_min_s;                 /* ... truncated: samples below this are redrawn */
    double decode_tps;          /* open-loop response time = output tokens / this */
    double spawn_share;         /* sessions that spawn sub-agents (once, at one turn) */
    uint32_t spawn_min, spawn_max;        /* sub-agents per spawn, uniform */
    double sub_requests_median, sub_requests_sigma;
    uint32_t sub_prefix_min, sub_prefix_max; /* their tool prefix, shared among siblings */
    double sub_first_median, sub_first_sigma; /* a sub-agent's task prompt beyond its prefix */
    uint32_t sessions;          /* session scripts in the pool; 0 = every session new */
    int cycle_random;           /* pick scripts at random (else round-robin) */

    uint32_t block_tokens;      /* tokens per key (block) */
    uint32_t vocab;             /* token ids are < vocab */
    int no_keys;                /* do not compute keys (distribution checks) */
} swarm_params;

void swarm_params_default(swarm_params *p);

/* Why a request's prompt has the tokens it has. */
typedef enum swarm_kind {
    SWARM_FIRST = 0,     /* a session's first request */
    SWARM_AFTER_TOOL = 1, /* after a tool call: appended a tool result */
    SWARM_AFTER_USER = 2, /* after the user typed: appended user text */
    SWARM_SUB_FIRST = 3, /* a sub-agent's first request */
    SWARM_SUB = 4        /* a sub-agent's later request (after a tool call) */
} swarm_kind;

typedef struct swarm_req {
    uint64_t t_ns;       /* virtual arrival time */
    uint32_t agent;
    uint32_t kind;       /* swarm_kind */
    uint64_t session;    /* session instance (sub-agents: their own instance) */
    uint32_t script;     /* the pool script the session runs */
    uint32_t turn;       /* 0-based request index within the session */
    uint32_t prompt_tokens, prefix_tokens, output_tokens;
    uint32_t appended;   /* tokens appended before this request, beyond the last output */
    double think_s;      /* the think time sampled before this request (0 for firsts) */
    uint8_t reset;       /* 1: spontaneous compaction, 2: forced by max_context */
    uint8_t last;        /* the session's (or sub-agent's) last request */
    uint8_t spawns;      /* sub-agents this request starts */
    const kvt_key *keys; /* prompt_tokens / block_tokens keys; valid until the next call */
    uint32_t nblocks;
} swarm_req;

typedef struct swarm_gen swarm_gen;

/* A generator over ns (the namespace key; required unless no_keys). Returns
 * NULL and a message in err when a parameter is out of range or memory runs
 * out. Deterministic: the same params give the same request stream. */
swarm_gen *swarm_new(const swarm_params *p, const kvt_key *ns, char *err, size_t errcap);
/* The next request in arrival order (ties: scheduling order). Returns 1 with
 * *r filled, 0 at the end (duration or request limit), -1 on a library error
 * (kvt_key_chain; message in err of swarm_new's caller via swarm_error). */
int swarm_next(swarm_gen *g, swarm_req *r);
const char *swarm_error(const swarm_gen *g);
/* Counters of what was generated so far. */
typedef struct swarm_counts {
    uint64_t requests, sessions, subagents, spawns, resets, forced_resets;
} swarm_counts;
void swarm_get_counts(const swarm_gen *g, swarm_counts *c);
void swarm_free(swarm_gen *g);

/* The synthetic token at position pos of a segment (a prefix or a session's
 * own context): a pure function, so equal segments hash to equal keys. */
uint32_t swarm_token(uint64_t segment, uint64_t pos, uint32_t vocab);

/* ----------------------------------------------- cmd_swarm.c: the run */

/* Models whose bytes per token the presets know. */
typedef struct swarm_model {
    const char *name;
    uint64_t bytes_per_token; /* K and V, all layers, bf16 */
} swarm_model;
const swarm_model *swarm_find_model(const char *name);

/* A run of the workload through a store. */
struct swarm_result;
typedef struct swarm_cfg {
    swarm_params wl;
    const char *model;
    uint64_t bytes_per_token; /* the model's, unscaled */
    uint64_t block_bytes;     /* moved per block (scaled) */
    uint64_t dram_bytes, nvme_bytes; /* nvme 0: no NVMe tier */
    const char *dir;          /* where the NVMe file goes */
    const char *policy;       /* NULL: the library's default */
    uint64_t dram_ttl_ms, nvme_ttl_ms;
    uint32_t lease_ms;
    uint64_t buffer_bytes;    /* the engine's buffer (and the memcpy baseline's) */
    int copy_threads;         /* 0: the library's default */
    int no_promote;           /* KVT_IO_NO_PROMOTE on gets */
    int pairs;                /* pair DRAM gets and puts with memcpy (else hit ratios only) */
    int keep_file;            /* leave the NVMe file for the caller (cmd_default's raw loop) */
    /* Called once after the workload, its counters taken, before the store
     * closes (cmd_default measures its NVMe rows there); NULL: none. A
     * non-zero return is the run's result. */
    int (*at_end)(kvt_store *s, const struct swarm_cfg *c, struct swarm_result *r, void *user);
    void *at_end_user;
    /* TTFT model (ttft.h): the profile, its overrides applied; fields < 0
     * (profile "measured") are measured by the run. gpus and prefill_tps
     * are the profile's (HW_GPUS, the model's prefill). */
    hw_profile prof;
    uint32_t gpus;
    double prefill_tps, slo_ms;
    /* kvtier's efficiency per tier (library / raw path) the loads are
     * divided by: > 0 given (with its source), 0 measured by this run
     * where it can (DRAM: the memcpy pairs; NVMe: at_end's raw reads). */
    double dram_eff, nvme_eff;
    char dram_eff_src[160], nvme_eff_src[160];
    double judge_after_s;     /* requests arriving earlier are not judged (ramp steps) */
    int ramp;                 /* part of a ramp (reports) */
    const char *label;        /* progress line prefix; NULL: no progress line (threads) */
} swarm_cfg;

/* One operation's totals (the library's time, the memcpy pairs). */
typedef struct swarm_op {
    uint64_t calls, blocks, bytes, ns;
    uint64_t base_bytes, base_ns;
    double lat_p50_us, lat_p99_us;
    double ratio, ratio_p10, ratio_p90; /* median and spread of library/memcpy pairs */
} swarm_op;

typedef struct swarm_result {
    swarm_counts gen;
    uint64_t requests, blocks, hit_blocks, hit_dram, hit_nvme, seen_blocks;
    uint64_t prompt_tokens, hit_tokens;
    double virtual_s, wall_s;
    swarm_op put, get, lookup;
    swarm_op put_dram;            /* the puts that demoted nothing: DRAM work only */
    uint64_t lookup_keys;
    swarm_op get_dram, get_nvme;  /* gets split by the tier lookup placed the blocks in */
    uint64_t nvme_demote_put_ns;  /* time of put calls that demoted blocks to NVMe */
    uint64_t nvme_demote_bytes;   /* bytes those calls wrote to NVMe */
    /* store counters (deltas) */
    uint64_t dram_bytes_in, dram_bytes_out, nvme_bytes_in, nvme_bytes_out;
    uint64_t nvme_bytes_written, nvme_bytes_read;
    uint64_t dram_evictions, nvme_evictions, dram_expirations, nvme_expirations;
    uint64_t nvme_demotions_in, dram_promotions_in, put_rejected, put_present;
    uint64_t get_short, verify_errors;
    uint64_t dram_blocks, nvme_blocks, nvme_slot_bytes;
    /* TTFT */
    double ttft_p50_ms, ttft_p95_ms, ttft_p99_ms, ttft_mean_ms;
    double load_p50_ms, load_p99_ms, prefill_p50_ms, queue_p50_ms, queue_p95_ms;
    double within_slo, goodput_rps;
    uint64_t load_dram_bytes, load_nvme_bytes; /* real bytes the model loaded per tier */
    hw_profile prof;  /* cfg's, with the measured fields filled in */
    ttft_rates rates; /* what the loads used */
    char dram_eff_src[160], nvme_eff_src[160];
    /* set by at_end (the default run's raw NVMe reads); 0: not measured */
    double nvme_lib_vs_raw, nvme_raw_gbps;
    /* the requests judged (arrived at judge_after_s or later) */
    uint64_t judged;
    double judged_p50_ms, judged_p95_ms, judged_hit_ratio;
    char nvme_path[4096]; /* with keep_file: the file to use and then remove */
    int nvme_temp;        /* its swarm_temp handle */
} swarm_result;

/* Runs cfg; returns BENCH_OK, BENCH_USAGE (the library refused the
 * configuration) or BENCH_FAILED, after printing why to stderr. */
int swarm_run(const swarm_cfg *cfg, swarm_result *res);

/* Temporary files (NVMe files), removed by swarm_temp_remove and, while
 * registered, on SIGINT / SIGTERM / SIGHUP. Thread-safe. register returns a
 * handle, or -1 when SWARM_MAX_TEMP are registered (the caller goes on
 * without the signal-time removal). remove takes the handle (-1: nothing). */
#define SWARM_MAX_TEMP 16
int swarm_temp_register(const char *path);
void swarm_temp_remove(int handle);

/* Adds the command-line description of cfg's flags shared by swarm and the
 * default run to a JSON object / prints the text report's sections. */
struct bench_json;
void swarm_json_config(struct bench_json *j, const swarm_cfg *c, const swarm_result *r);
void swarm_json_results(struct bench_json *j, const swarm_cfg *c, const swarm_result *r);
void swarm_text_workload(const swarm_cfg *c, const swarm_result *r);
void swarm_text_results(const swarm_cfg *c, const swarm_result *r);

/* ------------------------------------ profiles and the ramp (cmd_swarm.c) */

/* The profile flags both commands take: --profile and one override per
 * field. swarm_profile_flags adds them to spec (texts: HW_NKEYS + 1 slots,
 * the last --profile); swarm_profile_resolve applies them to c (prof,
 * gpus, prefill_tps for c->model). Returns 0, or -1 with a message. */
struct barg;
int swarm_profile_flags(struct barg *spec, int ns, const char **texts);
int swarm_profile_resolve(const char *const *texts, swarm_cfg *c, char *msg, size_t cap);
void swarm_text_profile(const swarm_cfg *c, const swarm_result *r);
void swarm_json_profile(struct bench_json *j, const swarm_result *r);

/* The ramp: runs of N agents for step_s virtual seconds each (requests
 * before warm_s not judged), N searched by knee_find (knee.h). */
struct knee_opts;
struct knee_result;
typedef struct swarm_ramp_opts {
    double step_s, warm_s;
    uint32_t start, max;
    double growth, resolution;
    int max_steps;
    double wall_budget_s; /* no step starts after this much wall time (0: none) */
} swarm_ramp_opts;
/* knee_run (may be NULL): a copy of the knee's run (or of the first step's
 * when none met the SLO). Returns BENCH_OK or swarm_run's error. */
int swarm_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, struct knee_result *k,
               swarm_result *knee_run);
void swarm_text_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, const struct knee_result *k);
void swarm_json_ramp(struct bench_json *j, const swarm_cfg *c, const swarm_ramp_opts *o,
                     const struct knee_result *k);

/* "1/256" or "0.5" -> a fraction in (0, 1]. Returns 0 or -1. */
int swarm_parse_fraction(const char *text, double *out);
/* A decimal number with optional "s"/"m"/"h" suffix ("5m" = 300) -> seconds;
 * "inf"/"none"/"0" -> 0. Returns 0 or -1. */
int swarm_parse_seconds(const char *text, double *out);

#endif
