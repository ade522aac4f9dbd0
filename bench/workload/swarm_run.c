/* swarm_run.c — one run of the agent swarm through a real store (DRAM + NVMe file) on its manual clock, then the TTFT model over its requests. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../bench.h"
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

static int open_store(const swarm_cfg *c, const char *path, uint64_t dram_blocks,
                      uint64_t nvme_slots, uint64_t slot, kvt_store **out)
{
    bench_store_spec spec = bench_dram_spec("swarm", c->block_bytes, dram_blocks * c->block_bytes);
    spec.block_tokens = c->wl.block_tokens;
    spec.manual_clock = 1;
    spec.close_flush_ms = 0; /* the run deletes its NVMe file: a warm close would write for nothing */
    spec.copy_threads = c->copy_threads;
    spec.tier[BENCH_DRAM].ttl_ms = c->dram_ttl_ms;
    spec.tier[BENCH_DRAM].policy = c->policy;
    if (nvme_slots)
        spec.tier[BENCH_NVME] = (bench_tier_spec){.capacity = nvme_slots * slot,
                                                  .ttl_ms = c->nvme_ttl_ms,
                                                  .path = path,
                                                  .policy = c->policy};
    spec.flag[BSET_COPY_THREADS] = "--copy-threads";
    spec.flag[BSET_DRAM_CAPACITY] = "--dram-bytes";
    spec.flag[BSET_DRAM_TTL] = "--dram-ttl";
    spec.flag[BSET_NVME_CAPACITY] = "--nvme-bytes";
    spec.flag[BSET_NVME_TTL] = "--nvme-ttl";
    spec.flag[BSET_POLICY] = "--policy";
    spec.flag[BSET_PATH] = "--dir";
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

/* A request as the TTFT model takes it, once the run's rates are known. */
typedef struct req_rec {
    double t;
    uint64_t dram_bytes, nvme_bytes, missed; /* real bytes loaded per tier; tokens to prefill */
    uint32_t window;                         /* 1: judged */
} req_rec;

typedef struct rec_vec {
    req_rec *v;
    size_t n, cap;
} rec_vec;

static int rec_push(rec_vec *a, const req_rec *x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        req_rec *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *x;
    return 0;
}

/* Fills the profile's measured fields, the efficiencies and the rates. */
static void resolve_rates(const swarm_cfg *c, swarm_result *r)
{
    hw_profile *p = &r->prof;
    *p = c->prof;
    if (p->f[HW_GPU_GBPS].v < 0) {
        double v = 0;
        const char *how = "not measured: no DRAM gets or puts in this run";
        if (r->get_dram.base_ns)
            v = swarm_gbps(r->get_dram.base_bytes, r->get_dram.base_ns),
            how = "measured in this run: memcpy of the DRAM gets' blocks";
        else if (r->put.base_ns)
            v = swarm_gbps(r->put.base_bytes, r->put.base_ns),
            how = "measured in this run: memcpy of the puts' blocks";
        else if (r->get_dram.ns)
            v = swarm_gbps(r->get_dram.bytes, r->get_dram.ns),
            how = "measured in this run: kvtier's DRAM gets (no memcpy pairs)";
        hw_set(p, HW_GPU_GBPS, v, how);
    }
    if (p->f[HW_NVME_GBPS].v < 0) {
        double v = 0;
        const char *how = "not measured: no NVMe reads in this run";
        if (r->nvme_raw_gbps > 0)
            v = r->nvme_raw_gbps,
            how = "measured in this run: raw O_DIRECT reads of the slots kvtier wrote";
        else if (r->get_nvme.ns)
            v = swarm_gbps(r->get_nvme.bytes, r->get_nvme.ns),
            how = "measured in this run: kvtier's NVMe gets (swarm has no raw NVMe path)";
        hw_set(p, HW_NVME_DRIVES, 1, "this machine's disk");
        hw_set(p, HW_NVME_DRIVE_GBPS, v, how);
        hw_set(p, HW_NVME_GBPS, v, how);
    }
    double de = c->dram_eff, ne = c->nvme_eff;
    if (de > 0) {
        snprintf(r->dram_eff_src, sizeof r->dram_eff_src, "%s", c->dram_eff_src);
    } else if (r->get_dram.base_ns && r->get_dram.ratio > 0) {
        de = r->get_dram.ratio;
        snprintf(r->dram_eff_src, sizeof r->dram_eff_src,
                 "measured in this run: kvt_get from DRAM / memcpy of the same blocks, median "
                 "of %" PRIu64 " pairs",
                 r->get_dram.calls);
    } else {
        de = 1;
        snprintf(r->dram_eff_src, sizeof r->dram_eff_src,
                 "not measured (no memcpy pairs of DRAM gets): 1");
    }
    if (ne > 0) {
        snprintf(r->nvme_eff_src, sizeof r->nvme_eff_src, "%s", c->nvme_eff_src);
    } else if (r->nvme_lib_vs_raw > 0) {
        ne = r->nvme_lib_vs_raw;
        snprintf(r->nvme_eff_src, sizeof r->nvme_eff_src,
                 "measured in this run: kvt_get from NVMe / raw O_DIRECT reads of the same "
                 "slots");
    } else {
        ne = 1;
        snprintf(r->nvme_eff_src, sizeof r->nvme_eff_src,
                 "not measured (swarm has no raw NVMe path; the default run measures it): 1");
    }
    ttft_rates_from(&r->rates, p->f[HW_GPU_GBPS].v, p->f[HW_NVME_GBPS].v, c->gpus, de, ne);
}

/* The TTFT model over the run's requests, at the resolved rates. */
static int model_ttft(const swarm_cfg *c, swarm_result *r, const rec_vec *a)
{
    ttft_model tm;
    if (ttft_init(&tm, c->gpus, c->prefill_tps, c->slo_ms, 2))
        return -1;
    for (size_t i = 0; i < a->n; i++) {
        const req_rec *q = &a->v[i];
        if (ttft_add(&tm, q->t, ttft_load_s(&r->rates, q->dram_bytes, q->nvme_bytes), q->missed,
                     q->window)) {
            ttft_free(&tm);
            return -1;
        }
    }
    ttft_finish(&tm);
    r->ttft_p50_ms = bench_percentile(&tm.ttft_ms, 50);
    r->ttft_p95_ms = bench_percentile(&tm.ttft_ms, 95);
    r->ttft_p99_ms = bench_percentile(&tm.ttft_ms, 99);
    r->ttft_mean_ms = tm.count ? tm.sum_ms / (double)tm.count : NAN;
    r->load_p50_ms = bench_percentile(&tm.load_ms, 50);
    r->load_p99_ms = bench_percentile(&tm.load_ms, 99);
    r->prefill_p50_ms = bench_percentile(&tm.prefill_ms, 50);
    r->queue_p50_ms = bench_percentile(&tm.queue_ms, 50);
    r->queue_p95_ms = bench_percentile(&tm.queue_ms, 95);
    r->within_slo = tm.count ? (double)tm.within / (double)tm.count : 0;
    r->goodput_rps = r->virtual_s > 0 ? (double)tm.within / r->virtual_s : 0;
    r->judged = tm.win[1].n;
    r->judged_p50_ms = bench_percentile(&tm.win[1], 50);
    r->judged_p95_ms = bench_percentile(&tm.win[1], 95);
    ttft_free(&tm);
    return 0;
}

int swarm_run(const swarm_cfg *c, swarm_result *r)
{
    memset(r, 0, sizeof *r);
    r->nvme_temp = -1;
    const uint64_t bb = c->block_bytes;
    const uint32_t bt = c->wl.block_tokens;
    swarm_params wl = c->wl;
    uint64_t dram_blocks = c->dram_bytes / bb;
    if (dram_blocks == 0) {
        fprintf(stderr, "kvtier-bench swarm: --dram-bytes must hold at least one block of %" PRIu64
                        " bytes\n",
                bb);
        return BENCH_USAGE;
    }
    uint64_t slot = 0, nvme_slots = 0;
    if (c->nvme_bytes) {
        if (bench_slot_bytes(bb, &slot) < 0) {
            fprintf(stderr, "kvtier-bench swarm: no NVMe tier in this build: %s\n",
                    kvt_last_error());
            return BENCH_FAILED;
        }
        nvme_slots = c->nvme_bytes / slot;
        if (!nvme_slots) {
            fprintf(stderr, "kvtier-bench swarm: --nvme-bytes must hold one slot (%" PRIu64
                            " bytes)\n",
                    slot);
            return BENCH_USAGE;
        }
    }
    r->dram_blocks = dram_blocks;
    r->nvme_blocks = nvme_slots;
    r->nvme_slot_bytes = slot;

    kvt_key ns;
    char layout[96];
    snprintf(layout, sizeof layout, "kvtier-bench-swarm,bf16,block_tokens=%u", bt);
    kvt_ns_field nf[2] = {{KVT_NS_MODEL, (uint32_t)strlen(c->model), c->model},
                          {KVT_NS_LAYOUT, (uint32_t)strlen(layout), layout}};
    if (kvt_ns_key(nf, 2, &ns) < 0) {
        fprintf(stderr, "kvtier-bench swarm: kvt_ns_key: %s\n", kvt_last_error());
        return BENCH_FAILED;
    }
    /* Before the buffers: a bad --dir is told at once. */
    if (nvme_slots) {
        int d = check_dir(swarm_dir(c), 4096 + nvme_slots * slot);
        if (d)
            return d;
    }
    char err[256];
    swarm_gen *g = swarm_new(&wl, &ns, err, sizeof err);
    if (!g) {
        fprintf(stderr, "kvtier-bench swarm: %s\n", err);
        return BENCH_USAGE;
    }

    const size_t max_blocks = wl.max_context / bt + 1;
    size_t chunk = (size_t)(c->buffer_bytes / bb);
    if (chunk < 1)
        chunk = 1;
    if (chunk > max_blocks)
        chunk = max_blocks;
    char *path = r->nvme_path;
    kvt_store *s = NULL;
    char *buf = NULL, *base = NULL;
    bench_copier *cp = NULL;
    void **ptrs = malloc(chunk * sizeof *ptrs);
    bench_copy_op *ops = malloc(chunk * sizeof *ops);
    uint8_t *tiers = malloc(max_blocks);
    seen_set seen = {0};
    op_acc put = {0}, putd = {0}, get = {0}, lookup = {0}, gdram = {0}, gnvme = {0};
    rec_vec recs = {0};
    int rc = BENCH_FAILED;
    const uint64_t real_block = (uint64_t)bt * c->bytes_per_token;
    uint64_t judged_hits = 0, judged_blocks = 0;
    buf = bench_alloc(chunk * bb);
    if (c->pairs)
        base = bench_alloc(chunk * bb);
    if (!ptrs || !ops || !tiers || !buf || (c->pairs && !base)) {
        char b1[32];
        fprintf(stderr, "kvtier-bench swarm: out of memory for the engine's buffer (%s)\n",
                bench_fmt_bytes(chunk * bb * (c->pairs ? 2 : 1), b1, sizeof b1));
        goto out;
    }
    for (size_t i = 0; i < chunk; i++)
        ptrs[i] = buf + i * bb;

    if (nvme_slots) {
        static unsigned run_counter;
        unsigned run_no = __atomic_fetch_add(&run_counter, 1, __ATOMIC_RELAXED);
        const char *dir = swarm_dir(c);
        snprintf(path, sizeof r->nvme_path, "%s/kvtier-bench-swarm-%d-%u.kvt", dir, (int)getpid(),
                 run_no);
        r->nvme_temp = swarm_temp_register(path);
    }
    uint64_t t_open = bench_now_ns();
    rc = open_store(c, path, dram_blocks, nvme_slots, slot, &s);
    if (rc)
        goto out;
    rc = BENCH_FAILED;
    long copy_threads = (long)bench_stat(s, "dram.copy_threads");
    if (c->pairs) {
        cp = bench_copier_new((unsigned)(copy_threads > 0 ? copy_threads : 1));
        if (!cp) {
            fprintf(stderr, "kvtier-bench swarm: cannot start the memcpy baseline's threads\n");
            goto out;
        }
    }
    stat_snap s0, s1;
    snap(s, &s0);
    kvt_io_opts gopt = {.size = sizeof gopt, .flags = c->no_promote ? KVT_IO_NO_PROMOTE : 0};
    const double dur = wl.duration_s;
    swarm_req q;
    int more;
    uint64_t nreq = 0;
    while ((more = swarm_next(g, &q)) == 1) {
        nreq++;
        if ((nreq & 63) == 1 && c->label)
            bench_progress("%s: %.0f/%.0f virtual s, %" PRIu64 " requests, hit ratio %.1f%%",
                           c->label ? c->label : "swarm", (double)q.t_ns / 1e9, dur, nreq,
                           r->blocks ? 100.0 * (double)r->hit_blocks / (double)r->blocks : 0);
        if (kvt_clock_set(s, q.t_ns) < 0) {
            fprintf(stderr, "kvtier-bench swarm: kvt_clock_set: %s\n", kvt_last_error());
            goto out;
        }
        const uint32_t n = q.nblocks;
        r->requests++;
        r->blocks += n;
        r->prompt_tokens += q.prompt_tokens;
        uint32_t k = 0;
        while (k < n && seen_has(&seen, key64(&q.keys[k])))
            k++;
        r->seen_blocks += k;
        for (uint32_t i = k; i < n; i++)
            if (seen_add(&seen, key64(&q.keys[i]))) {
                fprintf(stderr, "kvtier-bench swarm: out of memory\n");
                goto out;
            }
        uint32_t h = 0;
        req_rec rec = {.t = (double)q.t_ns / 1e9};
        if (n) {
            uint64_t t0 = bench_now_ns();
            int got = kvt_lookup(s, q.keys, n, tiers, c->lease_ms);
            uint64_t dt = bench_now_ns() - t0;
            if (got < 0) {
                fprintf(stderr, "kvtier-bench swarm: kvt_lookup: %s\n", kvt_last_error());
                goto out;
            }
            h = (uint32_t)got;
            op_call(&lookup, n, 0, dt);
            r->lookup_keys += h < n ? h + 1 : h;
        }
        /* Load the hit prefix, one call per run of blocks in one tier (and
         * per buffer-full), so each tier's rate is measured on its own. */
        for (uint32_t a = 0; a < h;) {
            uint8_t t = tiers[a];
            uint32_t e = a;
            while (e < h && tiers[e] == t && e - a < chunk)
                e++;
            uint32_t m = e - a;
            int dram = t == bench_tier_id(s, BENCH_DRAM);
            int lib_first = get.calls % 2 == 0;
            uint64_t base_ns = 0;
            if (dram && cp && !lib_first)
                base_ns = baseline(cp, ops, buf, base, m, bb, 1);
            uint64_t t0 = bench_now_ns();
            int got = kvt_get(s, q.keys + a, m, ptrs, &gopt, NULL);
            uint64_t dt = bench_now_ns() - t0;
            if (got < 0) {
                fprintf(stderr, "kvtier-bench swarm: kvt_get: %s\n", kvt_last_error());
                goto out;
            }
            /* Checked before the baseline overwrites the buffer. */
            if ((uint32_t)got == m)
                for (uint32_t i = 0; i < m; i++)
                    r->verify_errors += !stamped(buf + (size_t)i * bb, bb, &q.keys[a + i]);
            if (dram && cp && lib_first)
                base_ns = baseline(cp, ops, buf, base, m, bb, 1);
            r->get_short += m - (uint32_t)got;
            op_call(&get, m, (uint64_t)got * bb, dt);
            op_acc *tier_op = dram ? &gdram : &gnvme;
            op_call(tier_op, m, (uint64_t)got * bb, dt);
            if (dram && cp)
                add_pair(&gdram, (uint64_t)got * bb, dt, (uint64_t)m * bb, base_ns);
            if (dram)
                r->hit_dram += m, rec.dram_bytes += (uint64_t)got * real_block;
            else
                r->hit_nvme += m, rec.nvme_bytes += (uint64_t)got * real_block;
            a = e;
        }
        if (h && c->lease_ms)
            kvt_release(s, q.keys, h, NULL);
        /* The engine computes the rest and offloads it, parent = last hit. */
        for (uint32_t a = h; a < n;) {
            uint32_t m = n - a < chunk ? n - a : (uint32_t)chunk;
            for (uint32_t i = 0; i < m; i++)
                stamp(buf + (size_t)i * bb, bb, &q.keys[a + i]);
            int lib_first = put.calls % 2 == 0;
            uint64_t base_ns = 0;
            if (cp && !lib_first)
                base_ns = baseline(cp, ops, buf, base, m, bb, 0);
            uint64_t stored0 = bench_stat(s, "put_stored");
            uint64_t dem0 = nvme_slots ? bench_stat(s, "nvme.demotions_in") : 0;
            kvt_io_opts o = {.size = sizeof o, .parent = a ? &q.keys[a - 1] : NULL};
            uint64_t t0 = bench_now_ns();
            int got = kvt_put(s, q.keys + a, m, ptrs, &o, NULL);
            uint64_t dt = bench_now_ns() - t0;
            if (got < 0) {
                fprintf(stderr, "kvtier-bench swarm: kvt_put: %s\n", kvt_last_error());
                goto out;
            }
            uint64_t stored = bench_stat(s, "put_stored") - stored0;
            uint64_t dem = 0;
            if (nvme_slots) {
                dem = bench_stat(s, "nvme.demotions_in") - dem0;
                if (dem) {
                    r->nvme_demote_put_ns += dt;
                    r->nvme_demote_bytes += dem * bb;
                }
            }
            if (cp && lib_first)
                base_ns = baseline(cp, ops, buf, base, (size_t)stored, bb, 0);
            op_call(&put, m, stored * bb, dt);
            if (cp)
                add_pair(&put, stored * bb, dt, (lib_first ? stored : m) * bb, base_ns);
            if (!dem) { /* its memcpy pair is like work: no NVMe write in the call */
                op_call(&putd, m, stored * bb, dt);
                if (cp)
                    add_pair(&putd, stored * bb, dt, (lib_first ? stored : m) * bb, base_ns);
            }
            a += m;
        }
        r->hit_blocks += h;
        uint64_t hit_tokens = (uint64_t)h * bt;
        r->hit_tokens += hit_tokens;
        rec.missed = q.prompt_tokens - hit_tokens;
        rec.window = rec.t >= c->judge_after_s;
        if (rec.window)
            judged_hits += h, judged_blocks += n;
        r->load_dram_bytes += rec.dram_bytes;
        r->load_nvme_bytes += rec.nvme_bytes;
        if (rec_push(&recs, &rec)) {
            fprintf(stderr, "kvtier-bench swarm: out of memory\n");
            goto out;
        }
    }
    if (more < 0) {
        fprintf(stderr, "kvtier-bench swarm: workload: %s\n", swarm_error(g));
        goto out;
    }
    r->judged_hit_ratio = judged_blocks ? (double)judged_hits / (double)judged_blocks : 0;
    if (c->label)
        bench_progress_done();
    snap(s, &s1);
    r->virtual_s = dur;
    swarm_get_counts(g, &r->gen);
    r->dram_bytes_in = s1.v[0] - s0.v[0];
    r->dram_bytes_out = s1.v[1] - s0.v[1];
    r->nvme_bytes_in = s1.v[2] - s0.v[2];
    r->nvme_bytes_out = s1.v[3] - s0.v[3];
    r->nvme_bytes_written = s1.v[4] - s0.v[4];
    r->nvme_bytes_read = s1.v[5] - s0.v[5];
    r->dram_evictions = s1.v[6] - s0.v[6];
    r->nvme_evictions = s1.v[7] - s0.v[7];
    r->dram_expirations = s1.v[8] - s0.v[8];
    r->nvme_expirations = s1.v[9] - s0.v[9];
    r->nvme_demotions_in = s1.v[10] - s0.v[10];
    r->dram_promotions_in = s1.v[11] - s0.v[11];
    r->put_rejected = s1.v[12] - s0.v[12];
    r->put_present = s1.v[13] - s0.v[13];
    if (c->at_end) {
        rc = c->at_end(s, c, r, c->at_end_user);
        if (rc)
            goto out;
        rc = BENCH_FAILED;
    }
    if (kvt_close(s) < 0) {
        s = NULL;
        fprintf(stderr, "kvtier-bench swarm: kvt_close: %s\n", kvt_last_error());
        goto out;
    }
    s = NULL;
    r->wall_s = (double)(bench_now_ns() - t_open) / 1e9;
    rc = BENCH_OK;
out:
    if (c->label)
        bench_progress_done();
    if (s)
        kvt_close(s);
    if (path[0] && !(rc == BENCH_OK && c->keep_file)) {
        swarm_temp_remove(r->nvme_temp);
        if (r->nvme_temp < 0)
            unlink(path);
    }
    op_done(&put, &r->put);
    op_done(&putd, &r->put_dram);
    op_done(&get, &r->get);
    op_done(&lookup, &r->lookup);
    op_done(&gdram, &r->get_dram);
    op_done(&gnvme, &r->get_nvme);
    if (rc == BENCH_OK) {
        resolve_rates(c, r);
        if (model_ttft(c, r, &recs)) {
            fprintf(stderr, "kvtier-bench swarm: out of memory\n");
            rc = BENCH_FAILED;
        }
    }
    free(recs.v);
    swarm_free(g);
    free(seen.v);
    free(ptrs);
    free(ops);
    free(tiers);
    bench_free(buf, chunk * bb);
    bench_free(base, chunk * bb);
    bench_copier_free(cp);
    return rc;
}

