/* test_swarm.c — the swarm generator (bench/workload/swarm.c): sampled distributions match their parameters, same seed gives the same stream, prefixes hash equal. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/workload/swarm.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct vec {
    double *v;
    size_t n, cap;
} vec;

static void push(vec *s, double x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        cr_assert_not_null(s->v);
    }
    s->v[s->n++] = x;
}

static double quantile(vec *s, double q)
{
    cr_assert(s->n > 0);
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    return s->v[(size_t)(q * (double)(s->n - 1))];
}

static void near(double got, double want, double rel, const char *what)
{
    cr_expect(fabs(got - want) <= rel * want, "%s: %g, wanted %g within %.0f%%", what, got, want,
              100 * rel);
}

/* A long run of many agents, without keys: every distribution has tens of
 * thousands of samples. The seed is fixed, so the test is exact to rerun. */
Test(swarm, distributions_match_parameters)
{
    swarm_params p;
    swarm_params_default(&p);
    p.no_keys = 1;
    p.agents = 300;
    p.duration_s = 48 * 3600.0;
    p.seed = 12345;
    char err[256];
    swarm_gen *g = swarm_new(&p, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    vec turns = {0}, tool_app = {0}, user_app = {0}, tool_think = {0}, human_think = {0},
        out = {0}, first = {0}, sub_req = {0};
    uint64_t tool = 0, user = 0, turns_n = 0, resets = 0, spawning = 0, firsts = 0;
    uint64_t last_t = 0, n = 0;
    /* sub-agent requests per sub-agent session */
    swarm_req r;
    int rc;
    while ((rc = swarm_next(g, &r)) == 1) {
        n++;
        cr_assert_geq(r.t_ns, last_t, "requests out of time order");
        cr_assert_lt(r.t_ns, (uint64_t)(p.duration_s * 1e9));
        last_t = r.t_ns;
        cr_assert_leq(r.prompt_tokens, p.max_context);
        push(&out, r.output_tokens);
        switch (r.kind) {
        case SWARM_FIRST:
            push(&first, r.prompt_tokens);
            firsts++;
            break;
        case SWARM_AFTER_TOOL:
            tool++;
            push(&tool_app, r.appended);
            push(&tool_think, r.think_s);
            break;
        case SWARM_AFTER_USER:
            user++;
            push(&user_app, r.appended);
            push(&human_think, r.think_s);
            cr_assert_geq(r.think_s, p.human_think_min_s, "a human think time below the cut");
            break;
        }
        if (r.kind == SWARM_AFTER_TOOL || r.kind == SWARM_AFTER_USER) {
            turns_n++;
            resets += r.reset == 1;
        }
        spawning += r.spawns > 0;
        if (r.spawns)
            cr_assert(r.spawns >= p.spawn_min && r.spawns <= p.spawn_max);
        if (r.last && (r.kind == SWARM_SUB || r.kind == SWARM_SUB_FIRST))
            push(&sub_req, r.turn + 1);
        if (r.last && r.kind != SWARM_SUB && r.kind != SWARM_SUB_FIRST)
            push(&turns, r.turn + 1);
    }
    cr_assert_eq(rc, 0);
    swarm_counts c;
    swarm_get_counts(g, &c);
    cr_assert_eq(c.requests, n);
    cr_assert_eq(c.sessions, firsts);
    swarm_free(g);
    cr_log_info("swarm: %llu requests, %zu finished sessions", (unsigned long long)n, turns.n);
    cr_assert_gt(turns.n, 3000);

    /* Medians of lognormals: the parameters themselves. Sessions that
     * finished inside the window lean a little short, hence 10%. */
    near(quantile(&turns, 0.5), p.turns_median, 0.10, "turns per session, median");
    near(quantile(&tool_app, 0.5), p.tool_append_median, 0.05, "tool append, median");
    near(quantile(&tool_app, 0.9), 2900, 0.10, "tool append, p90");
    near(quantile(&user_app, 0.5), p.user_append_median, 0.08, "user append, median");
    near(quantile(&out, 0.5), p.output_median, 0.05, "output tokens, median");
    near(quantile(&first, 0.5), p.first_median, 0.10, "first request tokens, median");
    near(quantile(&tool_think, 0.5), exp(p.tool_think_mu), 0.05, "tool think, median");
    /* Humans: the lognormal above its 60 s cut. Its median is the
     * lognormal's quantile at 1 - P(X > 60) / 2; with mu 5.55, sigma 1.22
     * that is e^(5.55 + 1.22 * 0.1460) = 307.4 s. */
    double z_cut = (log(p.human_think_min_s) - p.human_think_mu) / p.human_think_sigma;
    double above = 0.5 * erfc(z_cut / sqrt(2.0));
    double target = 1 - above / 2, lo = -5, hi = 5; /* invert the normal CDF */
    for (int i = 0; i < 100; i++) {
        double mid = (lo + hi) / 2;
        if (0.5 * erfc(-mid / sqrt(2.0)) < target)
            lo = mid;
        else
            hi = mid;
    }
    double want_human = exp(p.human_think_mu + p.human_think_sigma * lo);
    near(quantile(&human_think, 0.5), want_human, 0.08, "human think, median");
    /* The mixture's shares and the reset rate. */
    double share = (double)tool / (double)(tool + user);
    cr_expect(fabs(share - p.tool_share) < 0.01, "tool share %.4f, wanted %.2f", share,
              p.tool_share);
    double rate = (double)resets / (double)turns_n;
    cr_expect(fabs(rate - p.reset_rate) < 0.002, "reset rate %.4f, wanted %.3f", rate,
              p.reset_rate);
    double spawn = (double)spawning / (double)firsts;
    cr_expect(spawn > 0.02 && spawn < 0.06, "sessions that spawn: %.3f, wanted ~%.2f", spawn,
              p.spawn_share);
    near(quantile(&sub_req, 0.5), p.sub_requests_median, 0.20, "sub-agent requests, median");
    free(turns.v), free(tool_app.v), free(user_app.v), free(tool_think.v), free(human_think.v);
    free(out.v), free(first.v), free(sub_req.v);
}

static kvt_key test_ns(void)
{
    kvt_key ns;
    const char m[] = "test-swarm";
    kvt_ns_field f = {KVT_NS_MODEL, sizeof m - 1, m};
    cr_assert_eq(kvt_ns_key(&f, 1, &ns), 0);
    return ns;
}

/* FNV-1a over every field of every request, keys included. */
static uint64_t stream_hash(const swarm_params *p, uint64_t *nreq)
{
    kvt_key ns = test_ns();
    char err[256];
    swarm_gen *g = swarm_new(p, &ns, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    uint64_t h = 1469598103934665603ull;
    swarm_req r;
    *nreq = 0;
#define MIX(x)                                                                                     \
    do {                                                                                           \
        uint64_t v_ = (uint64_t)(x);                                                               \
        for (int b_ = 0; b_ < 8; b_++)                                                             \
            h = (h ^ ((v_ >> (8 * b_)) & 0xff)) * 1099511628211ull;                                \
    } while (0)
    while (swarm_next(g, &r) == 1) {
        (*nreq)++;
        MIX(r.t_ns);
        MIX(r.agent);
        MIX(r.kind);
        MIX(r.session);
        MIX(r.prompt_tokens);
        MIX(r.output_tokens);
        MIX(r.nblocks);
        cr_assert_eq(r.nblocks, r.prompt_tokens / p->block_tokens);
        for (uint32_t i = 0; i < r.nblocks; i++)
            for (int b = 0; b < 16; b++)
                h = (h ^ r.keys[i].b[b]) * 1099511628211ull;
    }
#undef MIX
    swarm_free(g);
    return h;
}

Test(swarm, same_seed_same_stream)
{
    swarm_params p;
    swarm_params_default(&p);
    p.agents = 6;
    p.duration_s = 1800;
    p.spawn_share = 0.5; /* sub-agents in the stream too */
    p.reset_rate = 0.05;
    uint64_t n1, n2, n3;
    uint64_t a = stream_hash(&p, &n1), b = stream_hash(&p, &n2);
    cr_assert_gt(n1, 50);
    cr_assert_eq(n1, n2);
    cr_assert_eq(a, b, "same seed, different streams: %016llx vs %016llx", (unsigned long long)a,
                 (unsigned long long)b);
    p.seed = 2;
    uint64_t c = stream_hash(&p, &n3);
    cr_assert_neq(a, c, "another seed gave the same stream");
    cr_log_info("swarm stream hash (seed 1, 6 agents, 1800 s): %016llx over %llu requests",
                (unsigned long long)a, (unsigned long long)n1);
}

/* Agents of one type share the prefix blocks; the next block (the prefix's
 * partial block plus the session's own tokens) differs; types differ. A
 * recomputation through kvt_key_chain gives the same keys. */
Test(swarm, prefixes_hash_equal)
{
    swarm_params p;
    swarm_params_default(&p);
    p.agents = 4;
    p.agent_types = 2;
    p.duration_s = 600;
    p.spawn_share = 0;
    kvt_key ns = test_ns();
    char err[256];
    swarm_gen *g = swarm_new(&p, &ns, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    const uint32_t pb = p.prefix_tokens / p.block_tokens;
    kvt_key first[4][2]; /* per agent: the last full prefix block and the one after */
    int seen[4] = {0};
    uint32_t *tok = malloc(sizeof(uint32_t) * p.max_context);
    kvt_key *keys = malloc(sizeof(kvt_key) * (p.max_context / p.block_tokens + 1));
    cr_assert(tok && keys);
    swarm_req r;
    while (swarm_next(g, &r) == 1) {
        cr_assert_gt(r.nblocks, pb);
        if (r.kind == SWARM_FIRST && !seen[r.agent]) {
            seen[r.agent] = 1;
            first[r.agent][0] = r.keys[pb - 1];
            first[r.agent][1] = r.keys[pb];
        }
        /* Independently: the same tokens through kvt_key_chain. */
        uint32_t n = r.nblocks * p.block_tokens;
        uint64_t pseg = 1ull << 56 | (r.agent % p.agent_types);
        for (uint32_t i = 0; i < p.prefix_tokens && i < n; i++)
            tok[i] = swarm_token(pseg, i, p.vocab);
        cr_assert_eq(kvt_key_chain(&ns, tok, p.prefix_tokens, p.block_tokens, keys, pb + 1),
                     (int)pb);
        cr_assert_eq(memcmp(keys, r.keys, pb * sizeof *keys), 0,
                     "prefix keys differ from an independent chain");
    }
    swarm_free(g);
    free(tok);
    free(keys);
    for (int a = 0; a < 4; a++)
        cr_assert(seen[a], "agent %d sent nothing", a);
    /* Agents 0 and 2 are type 0, 1 and 3 type 1. */
    cr_assert_eq(memcmp(&first[0][0], &first[2][0], 16), 0, "same type, different prefix");
    cr_assert_eq(memcmp(&first[1][0], &first[3][0], 16), 0, "same type, different prefix");
    cr_assert_neq(memcmp(&first[0][0], &first[1][0], 16), 0, "two types share a prefix");
    cr_assert_neq(memcmp(&first[0][1], &first[2][1], 16), 0, "two sessions share own tokens");
}

/* Sub-agents: siblings share their own prefix, not the parent's. */
Test(swarm, subagents_share_a_prefix_among_siblings)
{
    swarm_params p;
    swarm_params_default(&p);
    p.agents = 2;
    p.duration_s = 6 * 3600.0;
    p.spawn_share = 1;
    p.spawn_min = p.spawn_max = 3;
    p.block_tokens = 64;
    kvt_key ns = test_ns();
    char err[256];
    swarm_gen *g = swarm_new(&p, &ns, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    swarm_req r;
    kvt_key parent_prefix = {{0}}, sib[3];
    int nsib = 0, have_parent = 0;
    while (swarm_next(g, &r) == 1 && nsib < 3) {
        if (r.agent != 0)
            continue;
        if (r.kind == SWARM_FIRST && !have_parent) {
            parent_prefix = r.keys[0];
            have_parent = 1;
        }
        if (r.kind == SWARM_SUB_FIRST) {
            cr_assert(r.prefix_tokens >= p.sub_prefix_min && r.prefix_tokens <= p.sub_prefix_max);
            sib[nsib++] = r.keys[0];
        }
    }
    swarm_free(g);
    cr_assert_eq(nsib, 3, "no spawn of 3 sub-agents seen");
    cr_assert_eq(memcmp(&sib[0], &sib[1], 16), 0);
    cr_assert_eq(memcmp(&sib[0], &sib[2], 16), 0);
    cr_assert_neq(memcmp(&sib[0], &parent_prefix, 16), 0, "a sub-agent inherited the parent's");
}

/* Ramp: agent a starts no earlier than (a / ramp_add) * step. */
Test(swarm, ramp_adds_agents_by_step)
{
    swarm_params p;
    swarm_params_default(&p);
    p.no_keys = 1;
    p.agents = 12;
    p.ramp_add = 4;
    p.ramp_step_s = 300;
    p.duration_s = 900;
    char err[256];
    swarm_gen *g = swarm_new(&p, NULL, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    swarm_req r;
    int seen[12] = {0};
    while (swarm_next(g, &r) == 1) {
        double t = (double)r.t_ns / 1e9;
        cr_assert_geq(t, (double)(r.agent / p.ramp_add) * p.ramp_step_s, "agent %u early at %.0f s",
                      r.agent, t);
        seen[r.agent] = 1;
    }
    swarm_free(g);
    for (int a = 0; a < 12; a++)
        cr_assert(seen[a], "agent %d never started", a);
}

Test(swarm, bad_parameters_are_refused)
{
    swarm_params p;
    swarm_params_default(&p);
    char err[256] = "";
    p.agents = 0;
    cr_assert_null(swarm_new(&p, NULL, err, sizeof err));
    cr_assert(strlen(err) > 0);
    swarm_params_default(&p);
    p.tool_share = 1.5;
    cr_assert_null(swarm_new(&p, NULL, err, sizeof err));
    swarm_params_default(&p);
    p.prefix_tokens = p.max_context;
    cr_assert_null(swarm_new(&p, NULL, err, sizeof err));
    swarm_params_default(&p); /* keys wanted, no namespace */
    cr_assert_null(swarm_new(&p, NULL, err, sizeof err));
}
