/* swarm_engine.c — one engine process of a multi-process swarm: the whole request stream generated, its own share served on its store in epoch lock-step. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"
#include "swarm_engine.h"

int sm_write_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n) {
        ssize_t w = write(fd, q, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

int sm_read_all(int fd, void *p, size_t n)
{
    char *q = p;
    while (n) {
        ssize_t r = read(fd, q, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        q += r;
        n -= (size_t)r;
    }
    return 0;
}

uint32_t sm_route(uint64_t seed, uint64_t session, uint32_t turn, uint32_t procs)
{
    uint64_t h = bench_rand_seed(bench_rand_seed(seed ^ 0x5357524du) ^ session);
    h = bench_rand_seed(h ^ turn);
    return (uint32_t)(h % procs);
}

int sm_open_store(const swarm_cfg *c, const sm_opts *o, const char *nvme_path,
                  const char *cluster, kvt_store **out)
{
    uint64_t dram = c->dram_bytes, nvme = c->nvme_bytes;
    if (o->store == SM_PRIVATE)
        dram /= o->procs, nvme /= o->procs;
    if (o->store == SM_NODE_DRAM || o->store == SM_NODE_CLUSTER)
        nvme = 0;
    uint64_t slot = 0;
    if (!nvme_path || bench_slot_bytes(c->block_bytes, &slot) != 0 || !slot)
        nvme = 0;
    bench_store_spec spec =
        swarm_store_spec(c, dram, nvme / (slot ? slot : 1) * slot, nvme_path,
                         o->store == SM_NODE_CLUSTER ? cluster : NULL, "--nvme-dir");
    spec.tier[BENCH_NVME].recreate = 1; /* a fresh file per run (no effect without NVMe) */
    return bench_store_open(&spec, out);
}

/* ------------------------------------------------------ the seen set */

/* Keys any earlier request offered (first 8 bytes; 0 marks a free cell). */
typedef struct seen_set {
    uint64_t *v;
    size_t cap, n;
} seen_set;

static uint64_t key64(const kvt_key *k)
{
    uint64_t x;
    memcpy(&x, k->b, sizeof x);
    return x ? x : 1;
}

static int seen_has(const seen_set *s, uint64_t x)
{
    for (size_t i = s->cap ? x & (s->cap - 1) : 0; s->cap; i = (i + 1) & (s->cap - 1)) {
        if (s->v[i] == x)
            return 1;
        if (!s->v[i])
            return 0;
    }
    return 0;
}

static int seen_add(seen_set *s, uint64_t x)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1 << 14;
        uint64_t *v = calloc(cap, sizeof *v);
        if (!v)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            size_t j = s->v[i] & (cap - 1);
            if (!s->v[i])
                continue;
            while (v[j])
                j = (j + 1) & (cap - 1);
            v[j] = s->v[i];
        }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    size_t i = x & (s->cap - 1);
    while (s->v[i] && s->v[i] != x)
        i = (i + 1) & (s->cap - 1);
    if (!s->v[i])
        s->v[i] = x, s->n++;
    return 0;
}

/* ------------------------------------------------------- the engine */

typedef struct engine {
    const swarm_cfg *c;
    const sm_opts *o;
    const sm_engine_io *io;
    kvt_store *s;
    int own_clock;          /* a store of its own: its clock follows each request */
    int keyed;              /* it has a cluster tier */
    int32_t *status;        /* a get's per-block results */
    uint8_t id_dram, id_nvme, id_cluster;
    uint64_t bb, real_block;
    size_t chunk;
    char *buf;
    void **ptrs;
    uint8_t *tiers;
    seen_set seen;
    sm_counts n;
    sm_rec *recs;
    size_t cap;
} engine;

/* The engine "computed" a block: its key at both ends, so bytes of another
 * block (or a torn one) are caught on the way back. */
static void stamp(char *p, uint64_t bb, const kvt_key *k)
{
    memcpy(p, k->b, bb < 16 ? bb : 16);
    if (bb >= 32)
        memcpy(p + bb - 16, k->b, 16);
}

static int stamped(const char *p, uint64_t bb, const kvt_key *k)
{
    return memcmp(p, k->b, bb < 16 ? bb : 16) == 0 &&
           (bb < 32 || memcmp(p + bb - 16, k->b, 16) == 0);
}

static int fail(const char *what)
{
    fprintf(stderr, "kvtier-bench swarm: %s: %s\n", what, kvt_last_error());
    return -1;
}

/* One request: lookup (with the lease), get the hits, put the rest. */
static int serve(engine *e, const swarm_req *q, uint32_t seen_prefix)
{
    const uint32_t n = q->nblocks;
    const uint64_t bb = e->bb;
    sm_rec rec = {.t = (double)q->t_ns / 1e9, .session = q->session,
                  .prompt_tokens = q->prompt_tokens, .proc = e->io->me,
                  .window = (double)q->t_ns / 1e9 >= e->c->judge_after_s};
    if (e->own_clock && kvt_clock_set(e->s, q->t_ns) < 0)
        return fail("kvt_clock_set");
    int got = n ? kvt_lookup(e->s, q->keys, n, e->tiers, e->c->lease_ms) : 0;
    if (got < 0)
        return fail("kvt_lookup");
    const uint32_t pinned = e->c->lease_ms ? (uint32_t)got : 0;
    /* A leased lookup stops where the local tiers stop; the prefix goes on
     * in a cluster tier (blocks other nodes put), which only a lookup
     * without a lease asks. Those blocks can't be pinned: a get may miss
     * one that another node's sweeper removed (counted as get_short). */
    if (e->keyed && (uint32_t)got < n) {
        int more = kvt_lookup(e->s, q->keys, n, e->tiers, 0);
        if (more < 0)
            return fail("kvt_lookup");
        got = more > got ? more : got;
    }
    const uint32_t h = (uint32_t)got;
    for (uint32_t a = 0; a < h;) {
        uint32_t m = h - a < e->chunk ? h - a : (uint32_t)e->chunk;
        kvt_io_opts go = {.size = sizeof go, .status = e->status};
        if (kvt_get(e->s, q->keys + a, m, e->ptrs, &go, NULL) < 0)
            return fail("kvt_get");
        /* Only a 0 status makes the destination the block's bytes. */
        for (uint32_t i = 0; i < m; i++) {
            if (e->status[i])
                e->n.get_short++;
            else
                e->n.verify_errors += !stamped(e->buf + (size_t)i * bb, bb, &q->keys[a + i]);
        }
        a += m;
    }
    if (pinned)
        kvt_release(e->s, q->keys, pinned, NULL);
    for (uint32_t i = 0; i < h; i++) {
        uint8_t t = e->tiers[i];
        if (t == e->id_dram)
            e->n.hit_dram++, rec.dram_bytes += e->real_block;
        else if (t == e->id_nvme)
            e->n.hit_nvme++, rec.nvme_bytes += e->real_block;
        else
            e->n.hit_cluster++, rec.cluster_bytes += e->real_block;
    }
    for (uint32_t a = h; a < n;) {
        uint32_t m = n - a < e->chunk ? n - a : (uint32_t)e->chunk;
        for (uint32_t i = 0; i < m; i++)
            stamp(e->buf + (size_t)i * bb, bb, &q->keys[a + i]);
        /* No parent hint (the prefix policy's): protocol v1 does not carry
         * it to a served store, so no configuration gets it and the
         * comparison is of sharing alone. */
        if (kvt_put(e->s, q->keys + a, m, e->ptrs, NULL, NULL) < 0)
            return fail("kvt_put");
        a += m;
    }
    e->n.requests++;
    e->n.blocks += n;
    e->n.hit_blocks += h;
    e->n.seen_blocks += seen_prefix;
    e->n.reprefills += seen_prefix > h;
    rec.missed = q->prompt_tokens - (uint64_t)h * e->c->wl.block_tokens;
    if (e->n.nrecs == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 1024;
        sm_rec *v = realloc(e->recs, cap * sizeof *v);
        if (!v)
            return -1;
        e->recs = v;
        e->cap = cap;
    }
    e->recs[e->n.nrecs++] = rec;
    return 0;
}

/* The seen prefix of q (before q), then q's keys added. */
static int count_seen(engine *e, const swarm_req *q, uint32_t *prefix)
{
    uint32_t k = 0;
    while (k < q->nblocks && seen_has(&e->seen, key64(&q->keys[k])))
        k++;
    *prefix = k;
    for (uint32_t i = k; i < q->nblocks; i++)
        if (seen_add(&e->seen, key64(&q->keys[i])))
            return -1;
    return 0;
}

/* Every request generated (all processes make the same stream), the seen
 * set kept over all of them, and this process's share served, each epoch
 * only once the parent lets it. */
static int run_stream(engine *e, swarm_gen *g)
{
    const uint64_t epoch_ns = (uint64_t)(e->o->epoch_s * 1e9);
    const int exact = epoch_ns == 0; /* one request at a time, in stream order */
    uint64_t cur = SM_DONE, index = 0;
    swarm_req q;
    int more;
    while ((more = swarm_next(g, &q)) == 1) {
        uint32_t prefix;
        const uint64_t seq = index++;
        if (count_seen(e, &q, &prefix)) {
            fprintf(stderr, "kvtier-bench swarm: out of memory\n");
            return -1;
        }
        if (sm_route(e->c->wl.seed, q.session, q.turn, e->o->procs) != e->io->me)
            continue;
        sm_want w = {.step = exact ? seq : q.t_ns / epoch_ns, .t_ns = q.t_ns};
        if (exact || w.step != cur) {
            uint64_t go;
            if (sm_write_all(e->io->want_fd, &w, sizeof w) ||
                sm_read_all(e->io->go_fd, &go, sizeof go) || go != w.step) {
                fprintf(stderr, "kvtier-bench swarm: engine %u lost its barrier\n", e->io->me);
                return -1;
            }
            cur = w.step;
        }
        if (serve(e, &q, prefix))
            return -1;
    }
    if (more < 0) {
        fprintf(stderr, "kvtier-bench swarm: workload: %s\n", swarm_error(g));
        return -1;
    }
    return 0;
}

static int open_engine_store(engine *e)
{
    if (e->o->store == SM_SHARED) {
        kvt_connect_opts co = {.size = sizeof co, .block_bytes = e->bb};
        return kvt_connect(e->io->socket, &co, &e->s) < 0 ? (fail("kvt_connect"), BENCH_FAILED)
                                                           : BENCH_OK;
    }
    e->own_clock = 1;
    e->keyed = e->o->store == SM_NODE_CLUSTER;
    return sm_open_store(e->c, e->o, e->io->nvme_path, e->io->cluster, &e->s);
}

int sm_engine_main(const swarm_cfg *c, const sm_opts *o, const sm_engine_io *io)
{
    engine e = {.c = c, .o = o, .io = io, .bb = c->block_bytes};
    e.real_block = (uint64_t)c->wl.block_tokens * c->bytes_per_token;
    e.n.proc = io->me;
    int rc = open_engine_store(&e);
    swarm_gen *g = NULL;
    const size_t max_blocks = c->wl.max_context / c->wl.block_tokens + 1;
    if (!rc) {
        e.id_dram = bench_tier_id(e.s, BENCH_DRAM);
        e.id_nvme = bench_tier_id(e.s, BENCH_NVME);
        e.id_cluster = bench_tier_id(e.s, BENCH_CLUSTER);
        e.chunk = (size_t)(c->buffer_bytes / e.bb);
        e.chunk = e.chunk < 1 ? 1 : e.chunk > max_blocks ? max_blocks : e.chunk;
        e.buf = malloc(e.chunk * e.bb);
        e.ptrs = malloc(e.chunk * sizeof *e.ptrs);
        e.tiers = malloc(max_blocks);
        e.status = malloc(e.chunk * sizeof *e.status);
        if (!e.buf || !e.ptrs || !e.tiers || !e.status) {
            fprintf(stderr, "kvtier-bench swarm: out of memory for the engine's buffer\n");
            rc = BENCH_FAILED;
        }
        for (size_t i = 0; !rc && i < e.chunk; i++)
            e.ptrs[i] = e.buf + i * e.bb;
    }
    if (!rc) {
        kvt_key ns;
        char layout[96], err[256];
        snprintf(layout, sizeof layout, "kvtier-bench-swarm,bf16,block_tokens=%u",
                 c->wl.block_tokens);
        kvt_ns_field nf[2] = {{KVT_NS_MODEL, (uint32_t)strlen(c->model), c->model},
                              {KVT_NS_LAYOUT, (uint32_t)strlen(layout), layout}};
        if (kvt_ns_key(nf, 2, &ns) < 0)
            fail("kvt_ns_key"), rc = BENCH_FAILED;
        else if (!(g = swarm_new(&c->wl, &ns, err, sizeof err)))
            fprintf(stderr, "kvtier-bench swarm: %s\n", err), rc = BENCH_USAGE;
    }
    if (!rc && run_stream(&e, g))
        rc = BENCH_FAILED;
    /* The last word: no more epochs (also on failure, so the parent goes on). */
    sm_want done = {.step = SM_DONE};
    sm_write_all(io->want_fd, &done, sizeof done);
    e.n.rc = rc;
    if (!rc && kvt_close(e.s) < 0)
        fail("kvt_close"), e.n.rc = rc = BENCH_FAILED;
    else if (rc)
        kvt_close(e.s);
    if (rc)
        e.n.nrecs = 0;
    if (sm_write_all(io->out_fd, &e.n, sizeof e.n) ||
        (e.n.nrecs && sm_write_all(io->out_fd, e.recs, e.n.nrecs * sizeof *e.recs)))
        rc = BENCH_FAILED;
    swarm_free(g);
    free(e.seen.v);
    free(e.recs);
    free(e.buf);
    free(e.ptrs);
    free(e.tiers);
    free(e.status);
    return rc;
}
