/* swarm.h — the synthetic agent-swarm workload: the request generator (swarm.c). Its run through a store: swarm_run.h. */
#ifndef KVT_BENCH_SWARM_H
#define KVT_BENCH_SWARM_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

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

#endif
