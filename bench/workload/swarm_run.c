/* swarm_run.c — one run of the agent swarm through a real store (DRAM + NVMe file) on its manual clock, then the TTFT model over its requests. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../bench.h"
#include "../model/hbm.h"
#include "swarm_model.h"
#include "swarm_run.h"

/* ---------------------------------------------------- the seen-before set */

/* Keys ever offered, for the hit ratio of a cache that never loses a block.
 * Open addressing on the key's first 8 bytes (a 2^-64 collision is noise). */
typedef struct seen_set {
    uint64_t *v;
    size_t cap, n;
} seen_set;

static uint64_t key64(const kvt_key *k)
{
    uint64_t x;
    memcpy(&x, k->b, sizeof x);
    return x ? x : 1; /* 0 marks an empty cell */
}

static int seen_has(const seen_set *s, uint64_t x)
{
    if (!s->cap)
        return 0;
    for (size_t i = x & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->v[i] == x)
            return 1;
        if (!s->v[i])
            return 0;
    }
}

static int seen_add(seen_set *s, uint64_t x)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1 << 16;
        uint64_t *v = calloc(cap, sizeof *v);
        if (!v)
            return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->v[i])
                continue;
            size_t j = s->v[i] & (cap - 1);
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
    if (!s->v[i]) {
        s->v[i] = x;
        s->n++;
    }
    return 0;
}

/* --------------------------------------------------------------- the run */

typedef struct op_acc {
    uint64_t calls, blocks, bytes, ns, base_bytes, base_ns;
    bench_samples lat_us, pair;
} op_acc;

double swarm_gbps(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / (double)ns : 0; /* bytes per ns = GB/s */
}

static void op_call(op_acc *o, uint64_t blocks, uint64_t bytes, uint64_t ns)
{
    o->calls++;
    o->blocks += blocks;
    o->bytes += bytes;
    o->ns += ns;
    bench_samples_add(&o->lat_us, (double)ns / 1e3);
}

static void op_done(op_acc *o, swarm_op *out)
{
    *out = (swarm_op){.calls = o->calls,
                      .blocks = o->blocks,
                      .bytes = o->bytes,
                      .ns = o->ns,
                      .base_bytes = o->base_bytes,
                      .base_ns = o->base_ns,
                      .lat_p50_us = bench_percentile(&o->lat_us, 50),
                      .lat_p99_us = bench_percentile(&o->lat_us, 99),
                      .ratio = bench_median(&o->pair),
                      .ratio_p10 = bench_percentile(&o->pair, 10),
                      .ratio_p90 = bench_percentile(&o->pair, 90)};
    bench_samples_free(&o->lat_us);
    bench_samples_free(&o->pair);
}

/* memcpy of k blocks between the engine's buffer and the baseline region,
 * through the same number of threads as the library's copier. */
static uint64_t baseline(bench_copier *cp, bench_copy_op *ops, char *buf, char *base, size_t k,
                         uint64_t bb, int to_buf)
{
    for (size_t i = 0; i < k; i++) {
        char *p = buf + i * bb, *q = base + i * bb;
        ops[i] = to_buf ? (bench_copy_op){p, q, bb} : (bench_copy_op){q, p, bb};
    }
    uint64_t t0 = bench_now_ns();
    bench_copier_run(cp, ops, k);
    return bench_now_ns() - t0;
}

/* One library call and its memcpy neighbour: the ratio of their GB/s. A
 * preemption lands in one of a pair; the median over pairs ignores it. */
static void add_pair(op_acc *o, uint64_t lib_bytes, uint64_t lib_ns, uint64_t base_bytes,
                     uint64_t base_ns)
{
    o->base_bytes += base_bytes;
    o->base_ns += base_ns;
    if (lib_bytes && base_bytes && lib_ns && base_ns)
        bench_samples_add(&o->pair, swarm_gbps(lib_bytes, lib_ns) / swarm_gbps(base_bytes, base_ns));
}

/* The engine "computed" block i: its key at both ends, so a get that
 * returns another block's bytes (or a torn one) is caught. */
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

const char *swarm_dir(const swarm_cfg *c)
{
    if (c->dir)
        return c->dir;
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* The directory exists and has room for the file (and a margin). */
static int check_dir(const char *dir, uint64_t need)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kvtier-bench: --dir %s: not a directory (%s)\n", dir,
                strerror(errno ? errno : ENOTDIR));
        return BENCH_USAGE;
    }
    struct statvfs vs;
    if (statvfs(dir, &vs) == 0) {
        uint64_t avail = (uint64_t)vs.f_bavail * vs.f_frsize;
        if (avail < need + (64u << 20)) {
            char a[32], b[32];
            fprintf(stderr,
                    "kvtier-bench: --dir %s has %s free; the NVMe file needs %s (plus 64 MiB "
                    "to spare). Choose another --dir (swarm: or a smaller --nvme-bytes).\n",
                    dir, bench_fmt_bytes(avail, a, sizeof a), bench_fmt_bytes(need, b, sizeof b));
            return BENCH_FAILED;
        }
    }
    return 0;
}

bench_store_spec swarm_store_spec(const swarm_cfg *c, uint64_t dram_bytes, uint64_t nvme_bytes,
                                  const char *nvme_path, const char *cluster_path,
                                  const char *path_flag)
{
    bench_store_spec spec = bench_dram_spec("swarm", c->block_bytes, dram_bytes);
    spec.block_tokens = c->wl.block_tokens;
    spec.manual_clock = 1;
    spec.close_flush_ms = 0; /* the run deletes its NVMe file: a warm close would write for nothing */
    spec.copy_threads = c->copy_threads;
    spec.tier[BENCH_DRAM].ttl_ms = c->dram_ttl_ms;
    spec.tier[BENCH_DRAM].policy = c->policy;
    if (nvme_bytes)
        spec.tier[BENCH_NVME] = (bench_tier_spec){.capacity = nvme_bytes,
                                                  .ttl_ms = c->nvme_ttl_ms,
                                                  .path = nvme_path,
                                                  .policy = c->policy};
    if (cluster_path)
        spec.tier[BENCH_CLUSTER] = (bench_tier_spec){.capacity = c->cluster_bytes,
                                                     .ttl_ms = c->nvme_ttl_ms,
                                                     .path = cluster_path};
    spec.flag[BSET_COPY_THREADS] = "--copy-threads";
    spec.flag[BSET_DRAM_CAPACITY] = "--dram-bytes";
    spec.flag[BSET_DRAM_TTL] = "--dram-ttl";
    spec.flag[BSET_NVME_CAPACITY] = "--nvme-bytes";
    spec.flag[BSET_NVME_TTL] = "--nvme-ttl";
    spec.flag[BSET_POLICY] = "--policy";
    spec.flag[BSET_PATH] = path_flag;
    return spec;
}

static int open_store(const swarm_cfg *c, const char *path, const char *cluster_path,
                      uint64_t dram_blocks, uint64_t nvme_slots, uint64_t slot, kvt_store **out)
{
    bench_store_spec spec = swarm_store_spec(c, dram_blocks * c->block_bytes, nvme_slots * slot,
                                             path, cluster_path, "--dir");
    return bench_store_open(&spec, out);
}

typedef struct stat_snap {
    uint64_t v[20];
} stat_snap;

static const char *const snap_names[] = {
    "dram.bytes_in",       "dram.bytes_out",      "nvme.bytes_in",       "nvme.bytes_out",
    "nvme.bytes_written",  "nvme.bytes_read",     "dram.evictions",      "nvme.evictions",
    "dram.expirations",    "nvme.expirations",    "nvme.demotions_in",   "dram.promotions_in",
    "put_rejected",        "put_present",         "dram.hits",           "nvme.hits",
};
#define NSNAP (sizeof snap_names / sizeof snap_names[0])

static void snap(kvt_store *s, stat_snap *o)
{
    for (size_t i = 0; i < NSNAP; i++)
        o->v[i] = bench_stat(s, snap_names[i]);
}

/* Everything one run holds between its steps. */
typedef struct run {
    const swarm_cfg *c;
    swarm_result *r;
    uint64_t bb;                /* bytes per block, as moved */
    uint32_t bt;                /* tokens per block */
    uint64_t real_block;        /* bytes per block of the real model (the TTFT model's loads) */
    uint64_t dram_blocks, slot, nvme_slots;
    swarm_params wl;
    swarm_gen *g;
    kvt_store *s;
    size_t chunk;               /* blocks per library call: the engine's buffer */
    char *buf, *base;           /* the engine's buffer; the memcpy baseline's region */
    void **ptrs;
    bench_copy_op *ops;
    uint8_t *tiers;
    bench_copier *cp;           /* NULL: no memcpy pairs */
    kvt_io_opts gopt;
    seen_set seen;
    op_acc put, putd, get, lookup, gdram, gnvme, gcluster;
    uint32_t pinned;             /* the lookup's pinned prefix (slot tiers) */
    uint8_t dram_id, cluster_id; /* the store's tier indexes (KVT_TIER_NONE: absent) */
    hbm_model hbm;               /* the engines' HBM (cfg hbm_bytes); inst NULL: none */
    uint64_t *dig;               /* a request's block digests (the HBM model's keys) */
    rec_vec recs;
    uint64_t judged_hits, judged_blocks;
    stat_snap s0;
    uint64_t t_open;
} run;

/* Blocks per tier from the sizes asked for. */
static int size_tiers(run *u)
{
    const swarm_cfg *c = u->c;
    u->dram_blocks = c->dram_bytes / u->bb;
    if (u->dram_blocks == 0) {
        fprintf(stderr, "kvtier-bench swarm: --dram-bytes must hold at least one block of %" PRIu64
                        " bytes\n",
                u->bb);
        return BENCH_USAGE;
    }
    if (c->nvme_bytes) {
        if (bench_slot_bytes(u->bb, &u->slot) < 0) {
            fprintf(stderr, "kvtier-bench swarm: no NVMe tier in this build: %s\n",
                    kvt_last_error());
            return BENCH_FAILED;
        }
        u->nvme_slots = c->nvme_bytes / u->slot;
        if (!u->nvme_slots) {
            fprintf(stderr, "kvtier-bench swarm: --nvme-bytes must hold one slot (%" PRIu64
                            " bytes)\n",
                    u->slot);
            return BENCH_USAGE;
        }
    }
    u->r->dram_blocks = u->dram_blocks;
    u->r->nvme_blocks = u->nvme_slots;
    u->r->nvme_slot_bytes = u->slot;
    return BENCH_OK;
}

/* The workload generator, keyed in the model's namespace. */
static int start_workload(run *u)
{
    const swarm_cfg *c = u->c;
    kvt_key ns;
    char layout[96];
    snprintf(layout, sizeof layout, "kvtier-bench-swarm,bf16,block_tokens=%u", u->bt);
    kvt_ns_field nf[2] = {{KVT_NS_MODEL, (uint32_t)strlen(c->model), c->model},
                          {KVT_NS_LAYOUT, (uint32_t)strlen(layout), layout}};
    if (kvt_ns_key(nf, 2, &ns) < 0) {
        fprintf(stderr, "kvtier-bench swarm: kvt_ns_key: %s\n", kvt_last_error());
        return BENCH_FAILED;
    }
    /* Before the buffers: a bad --dir is told at once. */
    if (u->nvme_slots) {
        int d = check_dir(swarm_dir(c), 4096 + u->nvme_slots * u->slot);
        if (d)
            return d;
    }
    char err[256];
    u->g = swarm_new(&u->wl, &ns, err, sizeof err);
    if (!u->g) {
        fprintf(stderr, "kvtier-bench swarm: %s\n", err);
        return BENCH_USAGE;
    }
    return BENCH_OK;
}

/* The engine's buffer (one call's blocks) and the baseline's region. */
static int alloc_buffers(run *u)
{
    const size_t max_blocks = u->wl.max_context / u->bt + 1;
    const int pairs = u->c->pairs;
    u->chunk = (size_t)(u->c->buffer_bytes / u->bb);
    if (u->chunk < 1)
        u->chunk = 1;
    if (u->chunk > max_blocks)
        u->chunk = max_blocks;
    u->ptrs = malloc(u->chunk * sizeof *u->ptrs);
    u->ops = malloc(u->chunk * sizeof *u->ops);
    u->tiers = malloc(max_blocks);
    if (u->c->hbm_bytes) {
        uint64_t cap = u->c->hbm_bytes / u->real_block;
        uint32_t inst = ttft_layout_servers(&u->c->layout, u->c->gpus);
        u->dig = malloc(max_blocks * sizeof *u->dig);
        if (!u->dig || hbm_init(&u->hbm, inst, cap ? cap : 1, u->c->layout.affinity,
                                u->wl.seed ^ 0x4842u)) {
            fprintf(stderr, "kvtier-bench swarm: out of memory for the HBM model\n");
            return BENCH_FAILED;
        }
        u->r->hbm_blocks = cap ? cap : 1;
        u->r->instances = inst;
    }
    u->buf = bench_alloc(u->chunk * u->bb);
    if (pairs)
        u->base = bench_alloc(u->chunk * u->bb);
    if (!u->ptrs || !u->ops || !u->tiers || !u->buf || (pairs && !u->base)) {
        char b1[32];
        fprintf(stderr, "kvtier-bench swarm: out of memory for the engine's buffer (%s)\n",
                bench_fmt_bytes(u->chunk * u->bb * (pairs ? 2 : 1), b1, sizeof b1));
        return BENCH_FAILED;
    }
    for (size_t i = 0; i < u->chunk; i++)
        u->ptrs[i] = u->buf + i * u->bb;
    return BENCH_OK;
}

/* The store (its NVMe file named per process and run, removed on signals)
 * and, for memcpy pairs, a copier with as many threads as the library's. */
static int open_run_store(run *u)
{
    const swarm_cfg *c = u->c;
    char *path = u->r->nvme_path;
    if (u->nvme_slots) {
        static unsigned run_counter;
        unsigned run_no = __atomic_fetch_add(&run_counter, 1, __ATOMIC_RELAXED);
        snprintf(path, sizeof u->r->nvme_path, "%s/kvtier-bench-swarm-%d-%u.kvt", swarm_dir(c),
                 (int)getpid(), run_no);
        u->r->nvme_temp = bench_temp_register(path);
    }
    char *cdir = u->r->cluster_run_dir;
    if (c->cluster_dir) {
        /* A fresh directory per run: the runs of a ramp or a compare use
         * the same keys, and must not hit each other's blocks. */
        snprintf(cdir, sizeof u->r->cluster_run_dir, "%s/kvtier-bench-cluster-%d-XXXXXX",
                 c->cluster_dir, (int)getpid());
        if (!mkdtemp(cdir)) {
            fprintf(stderr, "kvtier-bench swarm: --cluster-dir %s: %s\n", c->cluster_dir,
                    strerror(errno));
            cdir[0] = 0;
            return BENCH_USAGE;
        }
    }
    u->t_open = bench_now_ns();
    int rc = open_store(c, path, c->cluster_dir ? cdir : NULL, u->dram_blocks, u->nvme_slots,
                        u->slot, &u->s);
    if (rc)
        return rc;
    u->dram_id = bench_tier_id(u->s, BENCH_DRAM);
    u->cluster_id = c->cluster_dir ? bench_tier_id(u->s, BENCH_CLUSTER) : (uint8_t)KVT_TIER_NONE;
    long copy_threads = (long)bench_stat(u->s, "dram.copy_threads");
    if (c->pairs) {
        u->cp = bench_copier_new((unsigned)(copy_threads > 0 ? copy_threads : 1));
        if (!u->cp) {
            fprintf(stderr, "kvtier-bench swarm: cannot start the memcpy baseline's threads\n");
            return BENCH_FAILED;
        }
    }
    snap(u->s, &u->s0);
    u->gopt = (kvt_io_opts){.size = sizeof u->gopt,
                            .flags = c->no_promote ? KVT_IO_NO_PROMOTE : 0};
    return BENCH_OK;
}

/* The request's blocks that any earlier request offered: what a cache that
 * never forgets would hit. */
static int count_seen(run *u, const swarm_req *q)
{
    uint32_t k = 0;
    while (k < q->nblocks && seen_has(&u->seen, key64(&q->keys[k])))
        k++;
    u->r->seen_blocks += k;
    for (uint32_t i = k; i < q->nblocks; i++)
        if (seen_add(&u->seen, key64(&q->keys[i]))) {
            fprintf(stderr, "kvtier-bench swarm: out of memory\n");
            return -1;
        }
    return 0;
}

/* kvt_lookup of the request's chain: the hit prefix's length, or -1. */
static int lookup_prefix(run *u, const swarm_req *q, uint32_t *hits)
{
    const uint32_t n = q->nblocks;
    *hits = 0;
    u->pinned = 0;
    if (!n)
        return 0;
    uint64_t t0 = bench_now_ns();
    int got = kvt_lookup(u->s, q->keys, n, u->tiers, u->c->lease_ms);
    uint64_t dt = bench_now_ns() - t0;
    if (got < 0) {
        fprintf(stderr, "kvtier-bench swarm: kvt_lookup: %s\n", kvt_last_error());
        return -1;
    }
    u->pinned = (uint32_t)got;
    /* A lease keeps kvt_lookup to the slot tiers (key-addressed blocks
     * cannot be pinned): the prefix goes on in the cluster tier unpinned. */
    if (u->cluster_id != (uint8_t)KVT_TIER_NONE && u->c->lease_ms && (uint32_t)got < n) {
        t0 = bench_now_ns();
        int more = kvt_lookup(u->s, q->keys + got, n - (uint32_t)got, u->tiers + got, 0);
        dt += bench_now_ns() - t0;
        if (more < 0) {
            fprintf(stderr, "kvtier-bench swarm: kvt_lookup: %s\n", kvt_last_error());
            return -1;
        }
        got += more;
    }
    *hits = (uint32_t)got;
    op_call(&u->lookup, n, 0, dt);
    u->r->lookup_keys += *hits < n ? *hits + 1 : *hits;
    return 0;
}

/* Loads the hit prefix, one call per run of blocks in one tier (and per
 * buffer-full), so each tier's rate is measured on its own. DRAM gets
 * alternate with their memcpy pair. */
static int load_hits(run *u, const swarm_req *q, uint32_t from, uint32_t h, req_rec *rec)
{
    swarm_result *r = u->r;
    const uint64_t bb = u->bb;
    const uint8_t dram_id = u->dram_id;
    for (uint32_t a = from; a < h;) {
        uint8_t t = u->tiers[a];
        uint32_t e = a;
        while (e < h && u->tiers[e] == t && e - a < u->chunk)
            e++;
        uint32_t m = e - a;
        int dram = t == dram_id;
        int lib_first = u->get.calls % 2 == 0;
        int paired = dram && u->cp;
        uint64_t base_ns = 0;
        if (paired && !lib_first)
            base_ns = baseline(u->cp, u->ops, u->buf, u->base, m, bb, 1);
        uint64_t t0 = bench_now_ns();
        int got = kvt_get(u->s, q->keys + a, m, u->ptrs, &u->gopt, NULL);
        uint64_t dt = bench_now_ns() - t0;
        if (got < 0) {
            fprintf(stderr, "kvtier-bench swarm: kvt_get: %s\n", kvt_last_error());
            return -1;
        }
        /* Checked before the baseline overwrites the buffer. */
        if ((uint32_t)got == m)
            for (uint32_t i = 0; i < m; i++)
                r->verify_errors += !stamped(u->buf + (size_t)i * bb, bb, &q->keys[a + i]);
        if (paired && lib_first)
            base_ns = baseline(u->cp, u->ops, u->buf, u->base, m, bb, 1);
        r->get_short += m - (uint32_t)got;
        op_call(&u->get, m, (uint64_t)got * bb, dt);
        int cluster = t == u->cluster_id;
        op_call(dram ? &u->gdram : cluster ? &u->gcluster : &u->gnvme, m, (uint64_t)got * bb, dt);
        if (paired)
            add_pair(&u->gdram, (uint64_t)got * bb, dt, (uint64_t)m * bb, base_ns);
        if (dram)
            r->hit_dram += m, rec->load.dram += (uint64_t)got * u->real_block;
        else if (cluster)
            r->hit_cluster += m, rec->load.cluster += (uint64_t)got * u->real_block;
        else
            r->hit_nvme += m, rec->load.nvme += (uint64_t)got * u->real_block;
        a = e;
    }
    if (u->pinned && u->c->lease_ms)
        kvt_release(u->s, q->keys, u->pinned, NULL);
    return 0;
}

/* The engine computes the rest and offloads it, parent = the last hit, in
 * buffer-fulls alternating with their memcpy pair. Puts that made the store
 * demote to NVMe are timed apart: they include NVMe writes. */
static int store_misses(run *u, const swarm_req *q, uint32_t h)
{
    swarm_result *r = u->r;
    const uint64_t bb = u->bb;
    const uint32_t n = q->nblocks;
    for (uint32_t a = h; a < n;) {
        uint32_t m = n - a < u->chunk ? n - a : (uint32_t)u->chunk;
        for (uint32_t i = 0; i < m; i++)
            stamp(u->buf + (size_t)i * bb, bb, &q->keys[a + i]);
        int lib_first = u->put.calls % 2 == 0;
        uint64_t base_ns = 0;
        if (u->cp && !lib_first)
            base_ns = baseline(u->cp, u->ops, u->buf, u->base, m, bb, 0);
        uint64_t stored0 = bench_stat(u->s, "put_stored");
        uint64_t dem0 = u->nvme_slots ? bench_stat(u->s, "nvme.demotions_in") : 0;
        kvt_io_opts o = {.size = sizeof o, .parent = a ? &q->keys[a - 1] : NULL};
        uint64_t t0 = bench_now_ns();
        int got = kvt_put(u->s, q->keys + a, m, u->ptrs, &o, NULL);
        uint64_t dt = bench_now_ns() - t0;
        if (got < 0) {
            fprintf(stderr, "kvtier-bench swarm: kvt_put: %s\n", kvt_last_error());
            return -1;
        }
        uint64_t stored = bench_stat(u->s, "put_stored") - stored0;
        uint64_t dem = 0;
        if (u->nvme_slots) {
            dem = bench_stat(u->s, "nvme.demotions_in") - dem0;
            if (dem) {
                r->nvme_demote_put_ns += dt;
                r->nvme_demote_bytes += dem * bb;
            }
        }
        if (u->cp && lib_first)
            base_ns = baseline(u->cp, u->ops, u->buf, u->base, (size_t)stored, bb, 0);
        const uint64_t base_bytes = (lib_first ? stored : m) * bb;
        op_call(&u->put, m, stored * bb, dt);
        if (u->cp)
            add_pair(&u->put, stored * bb, dt, base_bytes, base_ns);
        if (!dem) { /* its memcpy pair is like work: no NVMe write in the call */
            op_call(&u->putd, m, stored * bb, dt);
            if (u->cp)
                add_pair(&u->putd, stored * bb, dt, base_bytes, base_ns);
        }
        a += m;
    }
    return 0;
}

/* One request: lookup, load the hits, store the rest; its record for the
 * TTFT model. */
static int serve(run *u, const swarm_req *q)
{
    swarm_result *r = u->r;
    if (kvt_clock_set(u->s, q->t_ns) < 0) {
        fprintf(stderr, "kvtier-bench swarm: kvt_clock_set: %s\n", kvt_last_error());
        return -1;
    }
    const uint32_t n = q->nblocks;
    r->requests++;
    r->blocks += n;
    r->prompt_tokens += q->prompt_tokens;
    uint32_t h = 0, hh = 0;
    req_rec rec = {.t = (double)q->t_ns / 1e9, .session = q->session,
                   .prompt_tokens = q->prompt_tokens, .instance = UINT32_MAX};
    if (u->hbm.inst) { /* the router picks the instance; its HBM serves a prefix */
        for (uint32_t i = 0; i < n; i++)
            u->dig[i] = key64(&q->keys[i]);
        rec.instance = hbm_route(&u->hbm, q->session);
        hh = hbm_prefix(&u->hbm, rec.instance, u->dig, n);
    }
    const uint64_t seen0 = r->seen_blocks;
    /* The engine gets from the store only what its HBM lacks. */
    if (count_seen(u, q) || lookup_prefix(u, q, &h) || load_hits(u, q, hh < h ? hh : h, h, &rec) ||
        store_misses(u, q, h))
        return -1;
    if (u->hbm.inst && hbm_admit(&u->hbm, rec.instance, u->dig, n))
        return -1;
    r->reprefills += r->seen_blocks - seen0 > (h > hh ? h : hh);
    r->hit_blocks += h;
    r->hit_hbm += hh;
    r->hbm_beyond_store += hh > h ? hh - h : 0;
    uint64_t hit_tokens = (uint64_t)h * u->bt;
    r->hit_tokens += hit_tokens;
    rec.missed = q->prompt_tokens - (uint64_t)(h > hh ? h : hh) * u->bt;
    rec.window = rec.t >= u->c->judge_after_s;
    if (rec.window)
        u->judged_hits += h, u->judged_blocks += n;
    r->load_dram_bytes += rec.load.dram;
    r->load_nvme_bytes += rec.load.nvme;
    r->load_cluster_bytes += rec.load.cluster;
    if (swarm_rec_push(&u->recs, &rec)) {
        fprintf(stderr, "kvtier-bench swarm: out of memory\n");
        return -1;
    }
    return 0;
}

/* Every request the generator makes, with a progress line. */
static int serve_all(run *u)
{
    const swarm_cfg *c = u->c;
    swarm_result *r = u->r;
    swarm_req q;
    int more;
    uint64_t nreq = 0;
    while ((more = swarm_next(u->g, &q)) == 1) {
        nreq++;
        if ((nreq & 63) == 1 && c->label)
            bench_progress("%s: %.0f/%.0f virtual s, %" PRIu64 " requests, hit ratio %.1f%%",
                           c->label ? c->label : "swarm", (double)q.t_ns / 1e9, u->wl.duration_s,
                           nreq, r->blocks ? 100.0 * (double)r->hit_blocks / (double)r->blocks : 0);
        if (serve(u, &q))
            return -1;
    }
    if (more < 0) {
        fprintf(stderr, "kvtier-bench swarm: workload: %s\n", swarm_error(u->g));
        return -1;
    }
    return 0;
}

/* The store's counters over the run. */
static void take_counters(run *u)
{
    swarm_result *r = u->r;
    stat_snap s1;
    snap(u->s, &s1);
    const stat_snap *s0 = &u->s0;
    r->dram_bytes_in = s1.v[0] - s0->v[0];
    r->dram_bytes_out = s1.v[1] - s0->v[1];
    r->nvme_bytes_in = s1.v[2] - s0->v[2];
    r->nvme_bytes_out = s1.v[3] - s0->v[3];
    r->nvme_bytes_written = s1.v[4] - s0->v[4];
    r->nvme_bytes_read = s1.v[5] - s0->v[5];
    r->dram_evictions = s1.v[6] - s0->v[6];
    r->nvme_evictions = s1.v[7] - s0->v[7];
    r->dram_expirations = s1.v[8] - s0->v[8];
    r->nvme_expirations = s1.v[9] - s0->v[9];
    r->nvme_demotions_in = s1.v[10] - s0->v[10];
    r->dram_promotions_in = s1.v[11] - s0->v[11];
    r->put_rejected = s1.v[12] - s0->v[12];
    r->put_present = s1.v[13] - s0->v[13];
}

/* After the workload: counters, the caller's hook, the store's close. */
static int finish(run *u)
{
    const swarm_cfg *c = u->c;
    swarm_result *r = u->r;
    r->judged_hit_ratio =
        u->judged_blocks ? (double)u->judged_hits / (double)u->judged_blocks : 0;
    if (c->label)
        bench_progress_done();
    take_counters(u);
    if (r->cluster_run_dir[0])
        swarm_cluster_raw(r->cluster_run_dir, u->bb, u->gcluster.bytes, u->gcluster.ns, r);
    r->virtual_s = u->wl.duration_s;
    swarm_get_counts(u->g, &r->gen);
    if (c->at_end) {
        int rc = c->at_end(u->s, c, r, c->at_end_user);
        if (rc)
            return rc;
    }
    int closed = kvt_close(u->s);
    u->s = NULL;
    if (closed < 0) {
        fprintf(stderr, "kvtier-bench swarm: kvt_close: %s\n", kvt_last_error());
        return BENCH_FAILED;
    }
    r->wall_s = (double)(bench_now_ns() - u->t_open) / 1e9;
    return BENCH_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(path);
}

/* Whatever happened: the store closed, the file removed (unless kept for
 * the caller), the operations summed up, and on success the TTFT model. */
static int wind_up(run *u, int rc)
{
    const swarm_cfg *c = u->c;
    swarm_result *r = u->r;
    if (c->label)
        bench_progress_done();
    if (u->s)
        kvt_close(u->s);
    if (r->nvme_path[0] && !(rc == BENCH_OK && c->keep_file)) {
        bench_temp_remove(r->nvme_temp);
        if (r->nvme_temp < 0)
            unlink(r->nvme_path);
    }
    op_done(&u->put, &r->put);
    op_done(&u->putd, &r->put_dram);
    op_done(&u->get, &r->get);
    op_done(&u->lookup, &r->lookup);
    op_done(&u->gdram, &r->get_dram);
    op_done(&u->gnvme, &r->get_nvme);
    op_done(&u->gcluster, &r->get_cluster);
    if (r->cluster_run_dir[0] && nftw(r->cluster_run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS))
        fprintf(stderr, "kvtier-bench swarm: could not remove %s\n", r->cluster_run_dir);
    if (rc == BENCH_OK) {
        swarm_resolve_rates(c, r);
        if (swarm_model_ttft(c, r, &u->recs)) {
            fprintf(stderr, "kvtier-bench swarm: out of memory\n");
            rc = BENCH_FAILED;
        }
    }
    free(u->recs.v);
    hbm_free(&u->hbm);
    free(u->dig);
    swarm_free(u->g);
    free(u->seen.v);
    free(u->ptrs);
    free(u->ops);
    free(u->tiers);
    bench_free(u->buf, u->chunk * u->bb);
    bench_free(u->base, u->chunk * u->bb);
    bench_copier_free(u->cp);
    return rc;
}

int swarm_run(const swarm_cfg *c, swarm_result *r)
{
    memset(r, 0, sizeof *r);
    r->nvme_temp = -1;
    run u = {.c = c, .r = r, .bb = c->block_bytes, .bt = c->wl.block_tokens, .wl = c->wl};
    u.real_block = (uint64_t)u.bt * c->bytes_per_token;
    int rc = size_tiers(&u);
    if (rc)
        return rc;
    rc = start_workload(&u);
    if (rc)
        return rc;
    rc = alloc_buffers(&u);
    if (!rc)
        rc = open_run_store(&u);
    if (!rc)
        rc = serve_all(&u) ? BENCH_FAILED : finish(&u);
    return wind_up(&u, rc);
}
