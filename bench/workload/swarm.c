/* swarm.c — the agent-swarm generator: sessions, turns, think times, compactions and sub-agents as a time-ordered request stream. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"
#include "swarm.h"

void swarm_params_default(swarm_params *p)
{
    memset(p, 0, sizeof *p);
    p->seed = 1;
    p->agents = 32;
    p->agent_types = 1;
    p->duration_s = 3600;
    p->stagger_s = 60;
    p->ramp_add = 8;
    p->prefix_tokens = 15000;
    p->first_median = 25000;
    p->first_sigma = 1.4; /* own part's p99 ~ 10K * e^(2.33*1.4) = 260K: "a tail to 250K+" */
    p->max_context = 262144;
    p->turns_median = 45;
    p->turns_sigma = 1.0;
    p->tool_share = 0.81;
    p->tool_append_median = 290;
    p->tool_append_sigma = 1.797; /* p90 = 290 * e^(1.2816 * 1.797) = 2900 */
    p->user_append_median = 100;
    p->user_append_sigma = 1.0;
    p->reset_rate = 0.017;
    p->reset_keep_min = 0.1;
    p->reset_keep_max = 0.5;
    p->output_median = 216;
    p->output_sigma = 1.0;
    p->tool_think_mu = 2.21;
    p->tool_think_sigma = 0.75;
    p->human_think_mu = 5.55;
    p->human_think_sigma = 1.22;
    p->human_think_min_s = 60;
    p->decode_tps = 100;
    p->spawn_share = 0.04;
    p->spawn_min = 1;
    p->spawn_max = 4;
    p->sub_requests_median = 11;
    p->sub_requests_sigma = 0.5;
    p->sub_prefix_min = 8000;
    p->sub_prefix_max = 10000;
    p->sub_first_median = 1000;
    p->sub_first_sigma = 1.0;
    p->sessions = 0;
    p->cycle_random = 0;
    p->block_tokens = 64;
    p->vocab = 128256; /* Llama 3 */
}

/* ------------------------------------------------------------ randomness */

/* Uniform in (0, 1): never 0, so logs are finite. */
static double unif(uint64_t *r)
{
    return ((double)(bench_rand(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double normal(uint64_t *r)
{
    /* Box-Muller, one of the pair: simpler state, and the generator is not
     * the bottleneck (a request draws a handful). */
    double u = unif(r), v = unif(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static double lognormal(uint64_t *r, double median, double sigma)
{
    return median * exp(sigma * normal(r));
}

static uint32_t clamp_u32(double x, uint32_t lo, uint32_t hi)
{
    if (!(x >= lo))
        return lo;
    if (x >= hi)
        return hi;
    return (uint32_t)llround(x);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t swarm_token(uint64_t segment, uint64_t pos, uint32_t vocab)
{
    return (uint32_t)(mix64(segment * 0xd6e8feb86659fd93ull + pos + 0x9e3779b97f4a7c15ull) %
                      (vocab ? vocab : 1));
}

/* Segment ids: a domain in the top byte keeps prefixes and contexts apart. */
enum { SEG_TYPE_PREFIX = 1, SEG_SUB_PREFIX = 2, SEG_OWN = 3 };
static uint64_t segment(uint64_t domain, uint64_t id)
{
    return domain << 56 | (id & ((1ull << 56) - 1));
}

/* ------------------------------------------------------------ state */

typedef struct ctx {
    uint64_t prefix_seg, own_seg;
    uint32_t prefix_len, len; /* prompt tokens, prefix included */
    kvt_key *keys;            /* keys[0..nkeys) are valid for the current content */
    uint32_t nkeys;
} ctx;

typedef enum { ENT_FREE = 0, ENT_MAIN, ENT_SUB } ent_role;

typedef struct ent {
    ent_role role;
    uint32_t agent;
    ctx c;
    uint64_t rnd; /* the session script's (main) or the sub-agent's own randomness */
    uint64_t session;
    uint32_t script, turn, turns;
    int64_t spawn_turn; /* -1: never */
    /* the request scheduled next */
    uint32_t kind, appended;
    double think_s;
    uint8_t reset;
    /* sub-agents: the parent and its wait */
    uint32_t parent, pending;
    uint64_t children_end_ns;
    uint64_t resume_think_ns; /* the parent's think time after its children */
    uint32_t next_free;
} ent;

typedef struct event {
    uint64_t t_ns, seq;
    uint32_t ent;
} event;

struct swarm_gen {
    swarm_params p;
    kvt_key ns;
    ent *ents;
    uint32_t nents, cap, free_head; /* [0, agents) are the agents' main sessions */
    uint64_t *agent_rnd;
    uint64_t pick_rnd; /* random script choice */
    uint64_t seq, instances, spawn_ids, script_counter;
    event *heap;
    size_t nheap, heap_cap;
    uint32_t *tokens; /* scratch for hashing */
    uint32_t keys_cap;
    swarm_counts counts;
    uint64_t duration_ns;
    char err[256];
};

static int heap_push(swarm_gen *g, uint64_t t, uint32_t e)
{
    if (g->nheap == g->heap_cap) {
        size_t cap = g->heap_cap ? g->heap_cap * 2 : 64;
        event *h = realloc(g->heap, cap * sizeof *h);
        if (!h)
            return -1;
        g->heap = h;
        g->heap_cap = cap;
    }
    event ev = {t, g->seq++, e};
    size_t i = g->nheap++;
    while (i) {
        size_t up = (i - 1) / 2;
        event *u = &g->heap[up];
        if (u->t_ns < ev.t_ns || (u->t_ns == ev.t_ns && u->seq < ev.seq))
            break;
        g->heap[i] = *u;
        i = up;
    }
    g->heap[i] = ev;
    return 0;
}

static event heap_pop(swarm_gen *g)
{
    event top = g->heap[0], last = g->heap[--g->nheap];
    size_t i = 0, n = g->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const event *best = &last;
        if (l < n && (g->heap[l].t_ns < best->t_ns ||
                      (g->heap[l].t_ns == best->t_ns && g->heap[l].seq < best->seq))) {
            m = l;
            best = &g->heap[l];
        }
        if (r < n && (g->heap[r].t_ns < best->t_ns ||
                      (g->heap[r].t_ns == best->t_ns && g->heap[r].seq < best->seq)))
            m = r;
        if (m == i)
            break;
        g->heap[i] = g->heap[m];
        i = m;
    }
    if (n)
        g->heap[i] = last;
    return top;
}

static uint64_t ns_of(double s)
{
    return s > 0 ? (uint64_t)llround(s * 1e9) : 0;
}

static double tool_think(const swarm_params *p, uint64_t *r)
{
    return exp(p->tool_think_mu + p->tool_think_sigma * normal(r));
}

static double human_think(const swarm_params *p, uint64_t *r)
{
    /* The human component is what lies above the cut: a person who answers
     * within the cut looks like a tool loop in the data. Redrawn, bounded. */
    for (int i = 0; i < 10000; i++) {
        double x = exp(p->human_think_mu + p->human_think_sigma * normal(r));
        if (x >= p->human_think_min_s)
            return x;
    }
    return p->human_think_min_s;
}

static uint32_t output_tokens(const swarm_params *p, uint64_t *r)
{
    return clamp_u32(lognormal(r, p->output_median, p->output_sigma), 1, 32768);
}

static double response_s(const swarm_params *p, uint32_t out)
{
    return p->decode_tps > 0 ? (double)out / p->decode_tps : 0;
}

/* A new entity slot (sub-agents come and go). */
static int ent_alloc(swarm_gen *g, uint32_t *out)
{
    if (g->free_head != UINT32_MAX) {
        *out = g->free_head;
        g->free_head = g->ents[*out].next_free;
        return 0;
    }
    if (g->nents == g->cap) {
        uint32_t cap = g->cap * 2;
        ent *e = realloc(g->ents, (size_t)cap * sizeof *e);
        if (!e)
            return -1;
        memset(e + g->cap, 0, (size_t)(cap - g->cap) * sizeof *e);
        g->ents = e;
        g->cap = cap;
    }
    *out = g->nents++;
    return 0;
}

static int ctx_init(swarm_gen *g, ctx *c)
{
    if (g->p.no_keys || c->keys)
        return 0;
    c->keys = malloc((size_t)g->keys_cap * sizeof *c->keys);
    return c->keys ? 0 : -1;
}

/* The context gets a new own segment (a new session or a compaction): keys
 * of blocks wholly inside the shared prefix stay valid. */
static void ctx_rebase(swarm_gen *g, ctx *c, uint64_t prefix_seg, uint32_t prefix_len,
                       uint32_t len)
{
    uint32_t keep = 0;
    if (c->prefix_seg == prefix_seg && c->prefix_len == prefix_len)
        keep = prefix_len / g->p.block_tokens;
    if (c->nkeys > keep)
        c->nkeys = keep;
    c->prefix_seg = prefix_seg;
    c->prefix_len = prefix_len;
    c->own_seg = segment(SEG_OWN, g->instances++);
    c->len = len;
}

static int ctx_keys(swarm_gen *g, ctx *c)
{
    if (g->p.no_keys)
        return 0;
    const uint32_t bt = g->p.block_tokens, want = c->len / bt;
    if (c->nkeys >= want)
        return 0;
    uint64_t from = (uint64_t)c->nkeys * bt, to = (uint64_t)want * bt;
    for (uint64_t pos = from; pos < to; pos++)
        g->tokens[pos - from] = pos < c->prefix_len
                                    ? swarm_token(c->prefix_seg, pos, g->p.vocab)
                                    : swarm_token(c->own_seg, pos, g->p.vocab);
    int n = kvt_key_chain(c->nkeys ? &c->keys[c->nkeys - 1] : &g->ns, g->tokens, to - from, bt,
                          c->keys + c->nkeys, g->keys_cap - c->nkeys);
    if (n < 0) {
        snprintf(g->err, sizeof g->err, "kvt_key_chain: %s", kvt_last_error());
        return -1;
    }
    c->nkeys = want;
    return 0;
}

static uint32_t clamp_len(const swarm_gen *g, double x, uint32_t lo)
{
    return clamp_u32(x, lo, g->p.max_context);
}

/* Agent a begins a session at t. */
static int start_session(swarm_gen *g, uint32_t a, uint64_t t)
{
    const swarm_params *p = &g->p;
    ent *e = &g->ents[a];
    uint32_t script;
    if (p->sessions == 0)
        script = (uint32_t)g->script_counter++;
    else if (p->cycle_random)
        script = (uint32_t)(bench_rand(&g->pick_rnd) % p->sessions);
    else
        script = (uint32_t)(g->script_counter++ % p->sessions);
    e->role = ENT_MAIN;
    e->agent = a;
    e->script = script;
    e->rnd = bench_rand_seed(mix64(p->seed * 0x2545f4914f6cdd1dull ^ script) ^ 0x5357524dull);
    e->session = g->instances;
    e->turn = 0;
    e->turns = clamp_u32(lognormal(&e->rnd, p->turns_median, p->turns_sigma), 1, 100000);
    e->spawn_turn = -1;
    if (e->turns > 1 && unif(&e->rnd) < p->spawn_share)
        e->spawn_turn = (int64_t)(bench_rand(&e->rnd) % (e->turns - 1));
    double own_median = p->first_median - p->prefix_tokens;
    if (own_median < 1)
        own_median = 1;
    uint32_t own = clamp_u32(lognormal(&e->rnd, own_median, p->first_sigma), 1, UINT32_MAX);
    uint32_t type = a % p->agent_types;
    ctx_rebase(g, &e->c, segment(SEG_TYPE_PREFIX, type), p->prefix_tokens,
               clamp_len(g, (double)p->prefix_tokens + own, p->prefix_tokens + 1));
    e->kind = SWARM_FIRST;
    e->appended = 0;
    e->think_s = 0;
    e->reset = 0;
    e->pending = 0;
    return heap_push(g, t, a);
}

/* The context grows by the last output and what the next turn appends;
 * sometimes it compacts, and it must when it would overflow. */
static void grow(swarm_gen *g, ent *e, uint32_t out, int may_reset)
{
    const swarm_params *p = &g->p;
    uint64_t next = (uint64_t)e->c.len + out + e->appended;
    int reset = may_reset && unif(&e->rnd) < p->reset_rate ? 1 : 0;
    if (!reset && next > p->max_context)
        reset = 2;
    e->reset = (uint8_t)reset;
    if (!reset) {
        e->c.len = (uint32_t)next;
        return;
    }
    double keep = p->reset_keep_min + (p->reset_keep_max - p->reset_keep_min) * unif(&e->rnd);
    uint64_t own = next - e->c.prefix_len;
    double kept = (double)e->c.prefix_len + keep * (double)own;
    ctx_rebase(g, &e->c, e->c.prefix_seg, e->c.prefix_len,
               clamp_len(g, kept, e->c.prefix_len + 1));
}

/* A turn after a tool call or after user text: kind, think time, append. */
static void next_turn_kind(swarm_gen *g, ent *e, int tool_only)
{
    const swarm_params *p = &g->p;
    int tool = tool_only || unif(&e->rnd) < p->tool_share;
    e->kind = tool ? (e->role == ENT_SUB ? SWARM_SUB : SWARM_AFTER_TOOL) : SWARM_AFTER_USER;
    e->think_s = tool ? tool_think(p, &e->rnd) : human_think(p, &e->rnd);
    double a = tool ? lognormal(&e->rnd, p->tool_append_median, p->tool_append_sigma)
                    : lognormal(&e->rnd, p->user_append_median, p->user_append_sigma);
    e->appended = clamp_u32(a, 0, p->max_context);
}

static int spawn(swarm_gen *g, uint32_t pi, uint64_t t_start, uint32_t k)
{
    const swarm_params *p = &g->p;
    uint64_t sid = g->spawn_ids++;
    uint32_t plen = p->sub_prefix_min;
    {
        ent *pe = &g->ents[pi];
        if (p->sub_prefix_max > p->sub_prefix_min)
            plen += (uint32_t)(bench_rand(&pe->rnd) % (p->sub_prefix_max - p->sub_prefix_min + 1));
    }
    g->counts.spawns++;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t ci;
        if (ent_alloc(g, &ci))
            return -1;
        ent *pe = &g->ents[pi], *c = &g->ents[ci]; /* after the alloc: it may move */
        kvt_key *keys = c->c.keys;
        memset(c, 0, sizeof *c);
        c->c.keys = keys; /* a freed slot keeps its key buffer */
        if (ctx_init(g, &c->c))
            return -1;
        c->role = ENT_SUB;
        c->agent = pe->agent;
        c->parent = pi;
        c->script = pe->script;
        c->rnd = bench_rand_seed(bench_rand(&pe->rnd));
        c->session = g->instances;
        c->turns = clamp_u32(lognormal(&c->rnd, p->sub_requests_median, p->sub_requests_sigma), 1,
                             100000);
        c->spawn_turn = -1;
        uint32_t own = clamp_u32(lognormal(&c->rnd, p->sub_first_median, p->sub_first_sigma), 1,
                                 UINT32_MAX);
        c->c.prefix_seg = UINT64_MAX; /* nothing to keep */
        ctx_rebase(g, &c->c, segment(SEG_SUB_PREFIX, sid), plen,
                   clamp_len(g, (double)plen + own, plen + 1));
        c->kind = SWARM_SUB_FIRST;
        pe->pending++;
        if (heap_push(g, t_start, ci))
            return -1;
    }
    return 0;
}

swarm_gen *swarm_new(const swarm_params *p, const kvt_key *ns, char *err, size_t errcap)
{
    const char *bad = NULL;
    if (p->agents < 1 || p->agents > 1000000)
        bad = "agents must be 1..1000000";
    else if (p->agent_types < 1)
        bad = "agent types must be at least 1";
    else if (!(p->duration_s > 0) || p->duration_s > 1e8)
        bad = "duration must be in (0, 1e8] seconds";
    else if (p->block_tokens < 1 || p->block_tokens > 65536)
        bad = "block tokens must be 1..65536";
    else if (p->max_context < 2 || p->max_context > 16u << 20)
        bad = "max context must be 2..16M tokens";
    else if (p->prefix_tokens >= p->max_context || p->sub_prefix_max >= p->max_context)
        bad = "prefixes must be shorter than the max context";
    else if (p->sub_prefix_min > p->sub_prefix_max || p->spawn_min > p->spawn_max ||
             p->spawn_max > 64)
        bad = "min above max (sub-agent prefix or count; at most 64 sub-agents)";
    else if (!(p->tool_share >= 0 && p->tool_share <= 1) ||
             !(p->reset_rate >= 0 && p->reset_rate <= 1) ||
             !(p->spawn_share >= 0 && p->spawn_share <= 1))
        bad = "shares and rates must be in [0, 1]";
    else if (!(p->reset_keep_min >= 0 && p->reset_keep_min <= p->reset_keep_max &&
               p->reset_keep_max <= 1))
        bad = "reset keep must satisfy 0 <= min <= max <= 1";
    else if (!(p->first_median >= 1 && p->turns_median >= 1 && p->output_median >= 1 &&
               p->sub_requests_median >= 1 && p->sub_first_median >= 1 &&
               p->tool_append_median >= 0 && p->user_append_median >= 0))
        bad = "medians must be at least 1 token / request";
    else if (!(p->first_sigma >= 0 && p->turns_sigma >= 0 && p->output_sigma >= 0 &&
               p->tool_append_sigma >= 0 && p->user_append_sigma >= 0 &&
               p->tool_think_sigma >= 0 && p->human_think_sigma >= 0 &&
               p->sub_requests_sigma >= 0 && p->sub_first_sigma >= 0))
        bad = "sigmas must be >= 0";
    else if (!(p->decode_tps >= 0) || !(p->stagger_s >= 0) || !(p->human_think_min_s >= 0))
        bad = "decode rate, stagger and the think-time cut must be >= 0";
    else if (p->ramp_step_s > 0 && p->ramp_add < 1)
        bad = "ramp needs at least one agent per step";
    else if (p->vocab < 2)
        bad = "vocabulary must have at least 2 tokens";
    else if (!p->no_keys && !ns)
        bad = "no namespace key";
    if (bad) {
        snprintf(err, errcap, "%s", bad);
        return NULL;
    }
    swarm_gen *g = calloc(1, sizeof *g);
    if (!g)
        goto oom;
    g->p = *p;
    if (ns)
        g->ns = *ns;
    g->keys_cap = p->max_context / p->block_tokens + 1;
    g->duration_ns = ns_of(p->duration_s);
    g->cap = p->agents + 16;
    g->nents = p->agents;
    g->free_head = UINT32_MAX;
    g->ents = calloc(g->cap, sizeof *g->ents);
    g->agent_rnd = calloc(p->agents, sizeof *g->agent_rnd);
    g->tokens = p->no_keys ? NULL : malloc((size_t)p->max_context * sizeof *g->tokens);
    if (!g->ents || !g->agent_rnd || (!p->no_keys && !g->tokens))
        goto oom;
    g->pick_rnd = bench_rand_seed(p->seed ^ 0x7069636bull);
    for (uint32_t a = 0; a < p->agents; a++) {
        g->agent_rnd[a] = bench_rand_seed(mix64(p->seed) ^ mix64(a + 0x6167656eull));
        if (ctx_init(g, &g->ents[a].c))
            goto oom;
        g->ents[a].c.prefix_seg = UINT64_MAX;
        double start = 0, stagger = p->stagger_s;
        if (p->ramp_step_s > 0) {
            start = (double)(a / p->ramp_add) * p->ramp_step_s;
            if (stagger > p->ramp_step_s)
                stagger = p->ramp_step_s;
        }
        start += stagger * unif(&g->agent_rnd[a]);
        if (start_session(g, a, ns_of(start)))
            goto oom;
    }
    return g;
oom:
    snprintf(err, errcap, "out of memory for %u agents", p->agents);
    swarm_free(g);
    return NULL;
}

int swarm_next(swarm_gen *g, swarm_req *r)
{
    const swarm_params *p = &g->p;
    if (!g->nheap || g->heap[0].t_ns >= g->duration_ns ||
        (p->max_requests && g->counts.requests >= p->max_requests))
        return 0;
    event ev = heap_pop(g);
    ent *e = &g->ents[ev.ent];
    if (ctx_keys(g, &e->c))
        return -1;
    memset(r, 0, sizeof *r);
    r->t_ns = ev.t_ns;
    r->agent = e->agent;
    r->kind = e->kind;
    r->session = e->session;
    r->script = e->script;
    r->turn = e->turn;
    r->prompt_tokens = e->c.len;
    r->prefix_tokens = e->c.prefix_len;
    r->appended = e->appended;
    r->think_s = e->think_s;
    r->reset = e->reset;
    r->keys = p->no_keys ? NULL : e->c.keys;
    r->nblocks = e->c.len / p->block_tokens;
    uint32_t out = output_tokens(p, &e->rnd);
    r->output_tokens = out;
    g->counts.requests++;
    /* Counted as emitted, so that the counts describe the stream. */
    g->counts.sessions += e->kind == SWARM_FIRST;
    g->counts.subagents += e->kind == SWARM_SUB_FIRST;
    g->counts.resets += e->reset == 1;
    g->counts.forced_resets += e->reset == 2;
    uint64_t done = ev.t_ns + ns_of(response_s(p, out));
    r->last = e->turn + 1 >= e->turns;
    e->turn++;

    if (e->role == ENT_SUB) {
        if (r->last) {
            ent *pe = &g->ents[e->parent];
            if (done > pe->children_end_ns)
                pe->children_end_ns = done;
            uint32_t pi = e->parent;
            e->role = ENT_FREE;
            e->next_free = g->free_head;
            g->free_head = ev.ent;
            if (--pe->pending == 0 && heap_push(g, pe->children_end_ns + pe->resume_think_ns, pi))
                return -1;
            return 1;
        }
        next_turn_kind(g, e, 1);
        grow(g, e, out, 0);
        return heap_push(g, done + ns_of(e->think_s), ev.ent) ? -1 : 1;
    }
    if (r->last) {
        uint32_t a = e->agent;
        double gap = human_think(p, &g->agent_rnd[a]);
        return start_session(g, a, done + ns_of(gap)) ? -1 : 1;
    }
    if ((int64_t)r->turn == e->spawn_turn) {
        uint32_t k = p->spawn_min;
        if (p->spawn_max > p->spawn_min)
            k += (uint32_t)(bench_rand(&e->rnd) % (p->spawn_max - p->spawn_min + 1));
        /* The parent's next turn appends its sub-agents' results (a tool
         * result) once the last of them is done. Drawn now, so that the
         * script's randomness does not depend on the children's timing. */
        next_turn_kind(g, e, 1);
        grow(g, e, out, 1);
        e->resume_think_ns = ns_of(e->think_s);
        e->children_end_ns = done;
        r->spawns = (uint8_t)k;
        if (k == 0)
            return heap_push(g, done + e->resume_think_ns, ev.ent) ? -1 : 1;
        uint32_t idx = ev.ent;
        return spawn(g, idx, done, k) ? -1 : 1;
    }
    next_turn_kind(g, e, 0);
    grow(g, e, out, 1);
    return heap_push(g, done + ns_of(e->think_s), ev.ent) ? -1 : 1;
}

const char *swarm_error(const swarm_gen *g)
{
    return g->err[0] ? g->err : "out of memory";
}

void swarm_get_counts(const swarm_gen *g, swarm_counts *c)
{
    *c = g->counts;
}

void swarm_free(swarm_gen *g)
{
    if (!g)
        return;
    if (g->ents)
        for (uint32_t i = 0; i < g->cap; i++)
            free(g->ents[i].c.keys);
    free(g->ents);
    free(g->agent_rnd);
    free(g->heap);
    free(g->tokens);
    free(g);
}
