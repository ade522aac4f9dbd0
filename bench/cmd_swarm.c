/* cmd_swarm.c — `kvtier-bench swarm`: the agent swarm through a real store (DRAM + NVMe file) on its manual clock, with the TTFT model. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bench.h"
#include "swarm.h"
#include "ttft.h"

/* ---------------------------------------------------------------- models */

/* Bytes per token: 2 (K, V) x layers x KV heads x head dim x 2 bytes (bf16).
 * Prefill rates are assumptions (docs/bench.md): 8B ~ 2 x 8e9 FLOP per token
 * at ~16% of an H100's 989 dense bf16 TFLOP/s, the attention of long
 * contexts included; 70B scaled by the parameter ratio. */
static const swarm_model models[] = {
    {"llama-3.1-8b", 2ull * 32 * 8 * 128 * 2, 10000},  /* 128 KiB */
    {"llama-3.1-70b", 2ull * 80 * 8 * 128 * 2, 1150}, /* 320 KiB */
};

const swarm_model *swarm_find_model(const char *name)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (strcmp(name, models[i].name) == 0)
            return &models[i];
    return NULL;
}

/* ------------------------------------------------------------ temp files */

static char temp_path[SWARM_MAX_TEMP][4096];
static volatile sig_atomic_t temp_armed[SWARM_MAX_TEMP];
static pthread_mutex_t temp_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
    for (int i = 0; i < SWARM_MAX_TEMP; i++)
        if (temp_armed[i])
            unlink(temp_path[i]); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

int swarm_temp_register(const char *path)
{
    static int installed;
    int h = -1;
    pthread_mutex_lock(&temp_lock);
    for (int i = 0; i < SWARM_MAX_TEMP && h < 0; i++) {
        if (!temp_armed[i]) {
            h = i;
            snprintf(temp_path[i], sizeof temp_path[i], "%s", path);
            temp_armed[i] = 1;
        }
    }
    if (!installed) {
        installed = 1;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
    }
    pthread_mutex_unlock(&temp_lock);
    return h;
}

void swarm_temp_remove(int h)
{
    if (h < 0 || h >= SWARM_MAX_TEMP)
        return;
    pthread_mutex_lock(&temp_lock);
    if (temp_armed[h]) {
        temp_armed[h] = 0;
        unlink(temp_path[h]);
    }
    pthread_mutex_unlock(&temp_lock);
}

/* --------------------------------------------------------------- parsing */

int swarm_parse_fraction(const char *text, double *out)
{
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    double a = strtod(text, &end);
    if (errno || end == text)
        return -1;
    if (*end == '/') {
        const char *q = end + 1;
        double b = strtod(q, &end);
        if (errno || end == q || !(b > 0))
            return -1;
        a /= b;
    }
    if (*end || !(a > 0 && a <= 1))
        return -1;
    *out = a;
    return 0;
}

int swarm_parse_seconds(const char *text, double *out)
{
    if (!text || !*text)
        return -1;
    if (strcmp(text, "inf") == 0 || strcmp(text, "none") == 0) {
        *out = 0;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !(v >= 0))
        return -1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        v *= 60, end++;
    else if (*end == 'h')
        v *= 3600, end++;
    else if (*end == 'd')
        v *= 86400, end++;
    if (*end || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

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

static double rate(uint64_t bytes, uint64_t ns)
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
        bench_samples_add(&o->pair, rate(lib_bytes, lib_ns) / rate(base_bytes, base_ns));
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

static int refused(int rc, const char *what)
{
    if (rc >= 0)
        return 0;
    fprintf(stderr, "kvtier-bench swarm: %s: %s\n", what, kvt_last_error());
    return rc == KVT_ENOMEM ? BENCH_FAILED : BENCH_USAGE;
}

static const char *tmpdir(const swarm_cfg *c)
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
    kvt_config *k = NULL;
    int rc = refused(kvt_config_new(&k), "kvt_config_new");
    if (rc)
        return rc;
    const uint64_t bb = c->block_bytes;
    rc = refused(kvt_config_set(k, KVT_OPT_BLOCK_BYTES, (int64_t)bb), "block bytes");
    if (!rc)
        rc = refused(kvt_config_set(k, KVT_OPT_BLOCK_TOKENS, c->wl.block_tokens), "block tokens");
    if (!rc)
        rc = refused(kvt_config_set(k, KVT_OPT_MANUAL_CLOCK, 1), "manual clock");
    if (!rc) /* the run deletes its NVMe file: a warm close would write for nothing */
        rc = refused(kvt_config_set(k, KVT_OPT_CLOSE_FLUSH_MS, 0), "close flush");
    if (!rc && c->copy_threads)
        rc = refused(kvt_config_set(k, KVT_OPT_COPY_THREADS, c->copy_threads), "--copy-threads");
    if (!rc)
        rc = refused(kvt_config_set_tier(k, KVT_TIER_DRAM, KVT_TOPT_CAPACITY,
                                         (int64_t)(dram_blocks * bb)),
                     "--dram-bytes");
    if (!rc)
        rc = refused(
            kvt_config_set_tier(k, KVT_TIER_DRAM, KVT_TOPT_TTL_MS, (int64_t)c->dram_ttl_ms),
            "--dram-ttl");
    if (!rc && c->policy)
        rc = refused(kvt_config_set_tier_str(k, KVT_TIER_DRAM, KVT_TSTR_POLICY, c->policy),
                     "--policy");
    if (!rc && nvme_slots) {
        rc = refused(kvt_config_set_tier(k, KVT_TIER_NVME, KVT_TOPT_CAPACITY,
                                         (int64_t)(nvme_slots * slot)),
                     "--nvme-bytes");
        if (!rc)
            rc = refused(
                kvt_config_set_tier(k, KVT_TIER_NVME, KVT_TOPT_TTL_MS, (int64_t)c->nvme_ttl_ms),
                "--nvme-ttl");
        if (!rc)
            rc = refused(kvt_config_set_tier_str(k, KVT_TIER_NVME, KVT_TSTR_PATH, path), "--dir");
        if (!rc && c->policy)
            rc = refused(kvt_config_set_tier_str(k, KVT_TIER_NVME, KVT_TSTR_POLICY, c->policy),
                         "--policy");
    }
    if (!rc) {
        int o = kvt_open(k, out);
        if (o < 0) {
            fprintf(stderr, "kvtier-bench swarm: kvt_open: %s\n", kvt_last_error());
            rc = o == KVT_ECAPACITY || o == KVT_ESIZE || o == KVT_EPOLICY || o == KVT_EPATH ||
                         o == KVT_ENODIRECT
                     ? BENCH_USAGE
                     : BENCH_FAILED;
        }
    }
    kvt_config_free(k);
    return rc;
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

/* Judges ramp window k (all its requests scheduled); returns 1 when the
 * ramp must stop there. */
static int judge_window(const swarm_cfg *c, ttft_model *tm, swarm_result *r, uint32_t k,
                        const uint64_t *hits, const uint64_t *blocks)
{
    if (r->nsteps >= SWARM_MAX_STEPS)
        return 1;
    uint64_t want = (uint64_t)(k + 1) * c->wl.ramp_add;
    swarm_step *st = &r->step[r->nsteps++];
    st->agents = (uint32_t)(want < c->wl.agents ? want : c->wl.agents);
    st->requests = tm->win[k].n;
    st->hit_ratio = blocks[k] ? (double)hits[k] / (double)blocks[k] : 0;
    st->ttft_p50_ms = bench_percentile(&tm->win[k], 50);
    st->ttft_p95_ms = bench_percentile(&tm->win[k], 95);
    /* An empty window (no arrivals yet) breaks nothing. */
    st->within_slo = !(st->ttft_p95_ms > c->slo_ms);
    if (!st->within_slo)
        return 1;
    r->max_agents = st->agents;
    return 0;
}

int swarm_run(const swarm_cfg *c, swarm_result *r)
{
    memset(r, 0, sizeof *r);
    r->nvme_temp = -1;
    const uint64_t bb = c->block_bytes;
    const uint32_t bt = c->wl.block_tokens;
    swarm_params wl = c->wl;
    uint32_t nwin = 0;
    if (c->ramp) {
        nwin = (wl.agents + wl.ramp_add - 1) / wl.ramp_add;
        if (nwin > SWARM_MAX_STEPS || !(wl.ramp_step_s > 0)) {
            fprintf(stderr, "kvtier-bench swarm: a ramp takes 1..%d steps of --ramp-step > 0 "
                            "(--agents / --ramp-add)\n",
                    SWARM_MAX_STEPS);
            return BENCH_USAGE;
        }
        wl.duration_s = nwin * wl.ramp_step_s;
    }
    uint64_t dram_blocks = c->dram_bytes / bb;
    if (dram_blocks == 0) {
        fprintf(stderr, "kvtier-bench swarm: --dram-bytes must hold at least one block of %" PRIu64
                        " bytes\n",
                bb);
        return BENCH_USAGE;
    }
    uint64_t slot = 0, nvme_slots = 0;
    if (c->nvme_bytes) {
        if (kvt_nvme_slot_bytes(bb, &slot) < 0) {
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
        int d = check_dir(tmpdir(c), 4096 + nvme_slots * slot);
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
    ttft_model tm;
    int rc = BENCH_FAILED, tm_ok = 0;
    if (ttft_init(&tm, c->gpus, c->prefill_tps, c->slo_ms,
                  c->load_scale > 0 ? c->load_scale
                                    : (double)bt * (double)c->bytes_per_token / (double)bb,
                  nwin) == 0)
        tm_ok = 1;
    buf = bench_alloc(chunk * bb);
    if (c->pairs)
        base = bench_alloc(chunk * bb);
    if (!tm_ok || !ptrs || !ops || !tiers || !buf || (c->pairs && !base)) {
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
        const char *dir = tmpdir(c);
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
    uint64_t win_hits[SWARM_MAX_STEPS] = {0}, win_blocks[SWARM_MAX_STEPS] = {0};
    uint32_t window = 0, judged = 0;
    int stop = 0;
    swarm_req q;
    int more;
    uint64_t nreq = 0, last_t = 0;
    while (!stop && (more = swarm_next(g, &q)) == 1) {
        nreq++;
        last_t = q.t_ns;
        if ((nreq & 63) == 1 && c->label)
            bench_progress("%s: %.0f/%.0f virtual s, %" PRIu64 " requests, hit ratio %.1f%%",
                           c->label ? c->label : "swarm", (double)q.t_ns / 1e9, dur, nreq,
                           r->blocks ? 100.0 * (double)r->hit_blocks / (double)r->blocks : 0);
        if (c->ramp) {
            /* A window is judged once every request that arrived in it has
             * its TTFT (its load ended by now), in window order. */
            window = (uint32_t)((double)q.t_ns / 1e9 / wl.ramp_step_s);
            if (window >= nwin)
                window = nwin - 1;
            while (!stop && judged < window && tm.win_pending[judged] == 0)
                stop = judge_window(c, &tm, r, judged++, win_hits, win_blocks);
            if (stop)
                break;
        }
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
        uint64_t load_ns = 0;
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
            int dram = t == KVT_TIER_DRAM;
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
            load_ns += dt;
            r->get_short += m - (uint32_t)got;
            op_call(&get, m, (uint64_t)got * bb, dt);
            op_acc *tier_op = dram ? &gdram : &gnvme;
            op_call(tier_op, m, (uint64_t)got * bb, dt);
            if (dram && cp)
                add_pair(&gdram, (uint64_t)got * bb, dt, (uint64_t)m * bb, base_ns);
            if (dram)
                r->hit_dram += m;
            else
                r->hit_nvme += m;
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
        win_hits[window] += h;
        win_blocks[window] += n;
        /* The new agents' first requests, all within the stagger after a
         * step begins, are a burst no steady state has: not judged. */
        uint32_t judge = window;
        double warm = wl.stagger_s < wl.ramp_step_s / 2 ? wl.stagger_s : wl.ramp_step_s / 2;
        if (c->ramp && (double)q.t_ns / 1e9 - window * wl.ramp_step_s < warm)
            judge = UINT32_MAX;
        if (ttft_add(&tm, (double)q.t_ns / 1e9, (double)load_ns / 1e9,
                     q.prompt_tokens - hit_tokens, judge)) {
            fprintf(stderr, "kvtier-bench swarm: out of memory\n");
            goto out;
        }
    }
    if (!stop && more < 0) {
        fprintf(stderr, "kvtier-bench swarm: workload: %s\n", swarm_error(g));
        goto out;
    }
    ttft_finish(&tm);
    if (c->ramp) {
        /* The windows left, up to where the ramp stopped or ended. */
        uint32_t end = stop ? window : nwin;
        while (judged < end && !stop)
            stop = judge_window(c, &tm, r, judged++, win_hits, win_blocks);
        r->ramp_exhausted = !stop;
    }
    if (c->label)
        bench_progress_done();
    snap(s, &s1);
    r->virtual_s = c->ramp ? (double)last_t / 1e9 : dur;
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
    r->load_scale = tm.load_scale;
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
    swarm_free(g);
    if (tm_ok)
        ttft_free(&tm);
    free(seen.v);
    free(ptrs);
    free(ops);
    free(tiers);
    bench_free(buf, chunk * bb);
    bench_free(base, chunk * bb);
    bench_copier_free(cp);
    return rc;
}

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
        printf("  ramp: %u agents more every %.0f virtual s (up to %u) while TTFT p95 <= %.0f ms\n",
               p->ramp_add, p->ramp_step_s, p->agents, c->slo_ms);
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
               bench_fmt_bytes(r->nvme_slot_bytes, e, sizeof e), tmpdir(c));
    printf("; policy %s; TTL DRAM %s, NVMe %s\n", c->policy ? c->policy : "default",
           ttl_text(c->dram_ttl_ms, t1, sizeof t1), ttl_text(c->nvme_ttl_ms, t2, sizeof t2));
}

static void text_op(bench_table *t, const char *name, const swarm_op *o, int pairs)
{
    bench_table_cell(t, "%s", name);
    bench_table_cell(t, "%" PRIu64, o->calls);
    bench_table_cell(t, "%.1f", o->calls ? (double)o->blocks / (double)o->calls : 0);
    if (o->bytes) {
        bench_table_cell(t, "%.2f", rate(o->bytes, o->ns));
        if (pairs && o->base_ns) {
            bench_table_cell(t, "%.2f", rate(o->base_bytes, o->base_ns));
            bench_table_cell(t, "%.0f%% (%.0f-%.0f)", 100 * o->ratio, 100 * o->ratio_p10,
                             100 * o->ratio_p90);
        } else {
            bench_table_cell(t, "-");
            bench_table_cell(t, "-");
        }
    } else {
        bench_table_cell(t, "-");
        bench_table_cell(t, "-");
        bench_table_cell(t, "-");
    }
    if (o->calls) {
        bench_table_cell(t, "%.1f", o->lat_p50_us);
        bench_table_cell(t, "%.1f", o->lat_p99_us);
    } else {
        bench_table_cell(t, "-");
        bench_table_cell(t, "-");
    }
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
    printf("  prefill      %.1f%% of %.1f M prompt tokens avoided (%.1f M from cache, %.1f M "
           "computed)\n",
           100 * ratio_of(r->hit_tokens, r->prompt_tokens), (double)r->prompt_tokens / 1e6,
           (double)r->hit_tokens / 1e6, (double)(r->prompt_tokens - r->hit_tokens) / 1e6);
    printf("  TTFT model   p50 %.0f ms, p95 %.0f ms, p99 %.0f ms; %.1f%% within the %.0f ms SLO; "
           "goodput %.3f req/s\n",
           r->ttft_p50_ms, r->ttft_p95_ms, r->ttft_p99_ms, 100 * r->within_slo, c->slo_ms,
           r->goodput_rps);
    printf("               = load (measured");
    if (r->load_scale != 1)
        printf(" x%.4g for the scaled bytes", r->load_scale);
    printf("; p50 %.1f ms, p99 %.1f ms) + FIFO wait for 1 of %u GPU%s (p50 %.0f ms, p95 %.0f "
           "ms)\n"
           "               + missed tokens / %.0f tok/s (assumed prefill rate; p50 %.0f ms)\n",
           r->load_p50_ms, r->load_p99_ms, c->gpus, c->gpus == 1 ? "" : "s", r->queue_p50_ms,
           r->queue_p95_ms, c->prefill_tps, r->prefill_p50_ms);
    printf("\n");
    static const char *const head[] = {"op",          "calls",     "blocks/call", "GB/s",
                                       "memcpy GB/s", "vs memcpy", "p50 us",      "p99 us"};
    bench_table t;
    bench_table_init(&t, 8, head, "lrrrrrrr");
    text_op(&t, "put", &r->put, c->pairs);
    text_op(&t, "get", &r->get, 0);
    text_op(&t, "  from DRAM", &r->get_dram, c->pairs);
    if (r->nvme_blocks)
        text_op(&t, "  from NVMe", &r->get_nvme, 0);
    text_op(&t, "lookup", &r->lookup, 0);
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
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
                   rate(r->nvme_demote_bytes, r->nvme_demote_put_ns));
    }
    printf("  checks       %" PRIu64 " puts rejected, %" PRIu64 " already held, %" PRIu64
           " short gets, %" PRIu64 " blocks with wrong bytes\n",
           r->put_rejected, r->put_present, r->get_short, r->verify_errors);
    if (c->ramp) {
        printf("\n  ramp         ");
        if (r->max_agents == 0)
            printf("no window met the SLO\n");
        else
            printf("%s%u agents within TTFT p95 <= %.0f ms\n", r->ramp_exhausted ? ">= " : "",
                   r->max_agents, c->slo_ms);
        static const char *const rh[] = {"window", "agents", "requests", "hit ratio",
                                         "TTFT p50 ms", "TTFT p95 ms", "SLO"};
        bench_table rt;
        bench_table_init(&rt, 7, rh, "rrrrrrl");
        for (int i = 0; i < r->nsteps; i++) {
            const swarm_step *st = &r->step[i];
            bench_table_cell(&rt, "%d", i);
            bench_table_cell(&rt, "%u", st->agents);
            bench_table_cell(&rt, "%" PRIu64, st->requests);
            bench_table_cell(&rt, "%.1f%%", 100 * st->hit_ratio);
            bench_table_cell(&rt, "%.0f", st->ttft_p50_ms);
            bench_table_cell(&rt, "%.0f", st->ttft_p95_ms);
            bench_table_cell(&rt, "%s", st->within_slo ? "met" : "MISSED");
        }
        bench_table_print(&rt, stdout, 2);
        bench_table_free(&rt);
    }
}

static void json_op(bench_json *j, const char *name, const swarm_op *o, int pairs)
{
    bench_json_object(j, name);
    bench_json_u64(j, "calls", o->calls);
    bench_json_u64(j, "blocks", o->blocks);
    bench_json_u64(j, "bytes", o->bytes);
    bench_json_num(j, "seconds", (double)o->ns / 1e9);
    bench_json_num(j, "gb_per_s", rate(o->bytes, o->ns));
    if (pairs) { /* null when the run had no memcpy baseline */
        bench_json_num(j, "memcpy_gb_per_s", o->base_ns ? rate(o->base_bytes, o->base_ns) : NAN);
        bench_json_num(j, "ratio", o->ratio);
        bench_json_num(j, "ratio_p10", o->ratio_p10);
        bench_json_num(j, "ratio_p90", o->ratio_p90);
    }
    bench_json_num(j, "p50_us", o->lat_p50_us);
    bench_json_num(j, "p99_us", o->lat_p99_us);
    bench_json_end_object(j);
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
    bench_json_str(j, "policy", c->policy ? c->policy : "default");
    bench_json_num(j, "dram_ttl_s", (double)c->dram_ttl_ms / 1e3);
    bench_json_num(j, "nvme_ttl_s", (double)c->nvme_ttl_ms / 1e3);
    bench_json_u64(j, "lease_ms", c->lease_ms);
    bench_json_bool(j, "promote", !c->no_promote);
    bench_json_u64(j, "gpus", c->gpus);
    bench_json_num(j, "prefill_tokens_per_s", c->prefill_tps);
    bench_json_num(j, "slo_ms", c->slo_ms);
    bench_json_object(j, "workload");
    bench_json_u64(j, "seed", p->seed);
    bench_json_u64(j, "agents", p->agents);
    bench_json_u64(j, "agent_types", p->agent_types);
    bench_json_num(j, "duration_s", c->ramp ? r->virtual_s : p->duration_s);
    bench_json_u64(j, "max_requests", p->max_requests);
    bench_json_num(j, "stagger_s", p->stagger_s);
    bench_json_num(j, "ramp_step_s", c->ramp ? p->ramp_step_s : 0);
    bench_json_u64(j, "ramp_add", c->ramp ? p->ramp_add : 0);
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
    bench_json_object(j, "tokens");
    bench_json_u64(j, "prompt", r->prompt_tokens);
    bench_json_u64(j, "from_cache", r->hit_tokens);
    bench_json_u64(j, "prefilled", r->prompt_tokens - r->hit_tokens);
    bench_json_num(j, "avoided_ratio", ratio_of(r->hit_tokens, r->prompt_tokens));
    bench_json_end_object(j);
    bench_json_object(j, "ttft");
    bench_json_str(j, "model",
                   "load (measured get time x load_scale) + wait (FIFO in arrival order for "
                   "the first of gpus servers, virtual time) + missed tokens / "
                   "prefill_tokens_per_s");
    bench_json_num(j, "p50_ms", r->ttft_p50_ms);
    bench_json_num(j, "p95_ms", r->ttft_p95_ms);
    bench_json_num(j, "p99_ms", r->ttft_p99_ms);
    bench_json_num(j, "mean_ms", r->ttft_mean_ms);
    bench_json_num(j, "load_p50_ms", r->load_p50_ms);
    bench_json_num(j, "load_p99_ms", r->load_p99_ms);
    bench_json_num(j, "prefill_p50_ms", r->prefill_p50_ms);
    bench_json_num(j, "queue_p50_ms", r->queue_p50_ms);
    bench_json_num(j, "queue_p95_ms", r->queue_p95_ms);
    bench_json_num(j, "load_scale", r->load_scale);
    bench_json_num(j, "slo_ms", c->slo_ms);
    bench_json_num(j, "within_slo", r->within_slo);
    bench_json_num(j, "goodput_rps", r->goodput_rps);
    bench_json_end_object(j);
    json_op(j, "put", &r->put, 1);
    json_op(j, "get", &r->get, 0);
    json_op(j, "get_dram", &r->get_dram, 1);
    json_op(j, "get_nvme", &r->get_nvme, 0);
    bench_json_object(j, "lookup");
    bench_json_u64(j, "calls", r->lookup.calls);
    bench_json_u64(j, "blocks", r->lookup.blocks);
    bench_json_num(j, "seconds", (double)r->lookup.ns / 1e9);
    bench_json_num(j, "p50_us", r->lookup.lat_p50_us);
    bench_json_num(j, "p99_us", r->lookup.lat_p99_us);
    bench_json_u64(j, "keys", r->lookup_keys);
    double ls = (double)r->lookup.ns / 1e9;
    bench_json_num(j, "lookups_per_s", ls > 0 ? (double)r->lookup.calls / ls : 0);
    bench_json_num(j, "keys_per_s", ls > 0 ? (double)r->lookup_keys / ls : 0);
    bench_json_end_object(j);
    bench_json_object(j, "tiers");
    bench_json_object(j, "dram");
    bench_json_u64(j, "hit_blocks", r->hit_dram);
    bench_json_u64(j, "bytes_in", r->dram_bytes_in);
    bench_json_u64(j, "bytes_out", r->dram_bytes_out);
    bench_json_u64(j, "evictions", r->dram_evictions);
    bench_json_u64(j, "expirations", r->dram_expirations);
    bench_json_u64(j, "promotions_in", r->dram_promotions_in);
    bench_json_end_object(j);
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
                   rate(r->nvme_demote_bytes, r->nvme_demote_put_ns));
    bench_json_end_object(j);
    bench_json_end_object(j);
    bench_json_object(j, "store");
    bench_json_u64(j, "put_rejected", r->put_rejected);
    bench_json_u64(j, "put_present", r->put_present);
    bench_json_u64(j, "get_short", r->get_short);
    bench_json_u64(j, "verify_errors", r->verify_errors);
    bench_json_end_object(j);
    if (c->ramp) {
        bench_json_object(j, "ramp");
        bench_json_u64(j, "max_agents", r->max_agents);
        bench_json_bool(j, "exhausted", r->ramp_exhausted);
        bench_json_array(j, "windows");
        for (int i = 0; i < r->nsteps; i++) {
            const swarm_step *st = &r->step[i];
            bench_json_object(j, NULL);
            bench_json_u64(j, "agents", st->agents);
            bench_json_u64(j, "requests", st->requests);
            bench_json_num(j, "hit_ratio", st->hit_ratio);
            bench_json_num(j, "ttft_p50_ms", st->ttft_p50_ms);
            bench_json_num(j, "ttft_p95_ms", st->ttft_p95_ms);
            bench_json_bool(j, "within_slo", st->within_slo);
            bench_json_end_object(j);
        }
        bench_json_end_array(j);
        bench_json_end_object(j);
    }
}

/* ------------------------------------------------------------ the command */

static const char summary[] =
    "The agent swarm (docs/bench.md): agents run sessions that share a tools+system\n"
    "  prefix, append tool results every few seconds and user text every few minutes,\n"
    "  compact now and then, and spawn sub-agents. Each request goes through a real\n"
    "  store on its manual clock (lookup with lease, get the hits tier by tier, put\n"
    "  the rest); TTFT is modelled from the measured loads, a prefill rate and FIFO\n"
    "  queueing on --gpus. --mode ramp adds agents while TTFT p95 meets --slo-ms.";

/* Flags that take decimals: parsed from text after the table is read. */
typedef struct dflag {
    const char *name;
    double *out;
    const char *text;
    double lo, hi;
} dflag;

int bench_swarm(int argc, char **argv)
{
    swarm_cfg c;
    memset(&c, 0, sizeof c);
    swarm_params_default(&c.wl);
    swarm_params *p = &c.wl;
    const char *mode = "static", *model = "llama-3.1-8b", *scale = NULL, *cycle = "rr";
    const char *duration = NULL, *dram_ttl = NULL, *nvme_ttl = NULL, *ttl = NULL;
    const char *stagger = NULL, *ramp_step = NULL;
    int64_t agents = -1, types = -1, max_req = 0, seed = -1, block_tokens = -1, prefix = -1,
            max_ctx = -1, spawn_min = -1, spawn_max = -1, sub_pmin = -1, sub_pmax = -1,
            sessions = -1, gpus = 1, lease = 30000, copy_threads = 0, ramp_add = -1;
    uint64_t bpt = 0, block_bytes = 0, dram_bytes = 512u << 20, nvme_bytes = 2ull << 30,
             buffer = 256u << 20;
    int no_promote = 0, no_pairs = 0, json = 0;
    double prefill = 0, slo = 2000, load_scale = 0;
    dflag df[] = {
        {"first-tokens", &p->first_median, NULL, 1, 1e8},
        {"first-sigma", &p->first_sigma, NULL, 0, 10},
        {"turns", &p->turns_median, NULL, 1, 1e6},
        {"turns-sigma", &p->turns_sigma, NULL, 0, 10},
        {"tool-share", &p->tool_share, NULL, 0, 1},
        {"tool-append", &p->tool_append_median, NULL, 0, 1e7},
        {"tool-append-sigma", &p->tool_append_sigma, NULL, 0, 10},
        {"user-append", &p->user_append_median, NULL, 0, 1e7},
        {"user-append-sigma", &p->user_append_sigma, NULL, 0, 10},
        {"reset-rate", &p->reset_rate, NULL, 0, 1},
        {"reset-keep-min", &p->reset_keep_min, NULL, 0, 1},
        {"reset-keep-max", &p->reset_keep_max, NULL, 0, 1},
        {"output-tokens", &p->output_median, NULL, 1, 1e6},
        {"output-sigma", &p->output_sigma, NULL, 0, 10},
        {"tool-think-mu", &p->tool_think_mu, NULL, -20, 20},
        {"tool-think-sigma", &p->tool_think_sigma, NULL, 0, 10},
        {"human-think-mu", &p->human_think_mu, NULL, -20, 20},
        {"human-think-sigma", &p->human_think_sigma, NULL, 0, 10},
        {"human-think-min", &p->human_think_min_s, NULL, 0, 1e6},
        {"decode-tokens-per-s", &p->decode_tps, NULL, 0, 1e9},
        {"spawn-share", &p->spawn_share, NULL, 0, 1},
        {"sub-requests", &p->sub_requests_median, NULL, 1, 1e6},
        {"sub-requests-sigma", &p->sub_requests_sigma, NULL, 0, 10},
        {"sub-first-tokens", &p->sub_first_median, NULL, 1, 1e8},
        {"sub-first-sigma", &p->sub_first_sigma, NULL, 0, 10},
        {"prefill-tokens-per-s", &prefill, NULL, 1, 1e12},
        {"slo-ms", &slo, NULL, 1, 1e9},
        {"load-scale", &load_scale, NULL, 0, 1e9},
    };
    enum { NDF = sizeof df / sizeof df[0] };
    barg spec[96];
    int ns = 0;
    spec[ns++] = (barg){"mode", BARG_STR, &mode, "static (default) or ramp"};
    spec[ns++] = (barg){"agents", BARG_INT, &agents, "agents (static; default 32) or the most a ramp adds (default 256)"};
    spec[ns++] = (barg){"agent-types", BARG_INT, &types, "agent types, each with its own prefix (default 1)"};
    spec[ns++] = (barg){"duration", BARG_STR, &duration, "virtual time of arrivals, s (or 30m, 2h; default 1h; ramp: the steps)"};
    spec[ns++] = (barg){"requests", BARG_INT, &max_req, "stop after this many requests (default: no limit)"};
    spec[ns++] = (barg){"stagger", BARG_STR, &stagger, "agents' first requests spread over this long, s (default 60)"};
    spec[ns++] = (barg){"ramp-step", BARG_STR, &ramp_step, "ramp: virtual s per step (default 600)"};
    spec[ns++] = (barg){"ramp-add", BARG_INT, &ramp_add, "ramp: agents added per step (default 8)"};
    spec[ns++] = (barg){"seed", BARG_INT, &seed, "workload seed (default 1)"};
    spec[ns++] = (barg){"sessions", BARG_INT, &sessions, "session scripts in a pool that agents cycle through (default 0: every session new)"};
    spec[ns++] = (barg){"cycle", BARG_STR, &cycle, "rr (round-robin, default) or random: how agents pick pool scripts"};
    spec[ns++] = (barg){"prefix-tokens", BARG_INT, &prefix, "shared tools+system prefix per agent type (default 15000)"};
    spec[ns++] = (barg){"max-context-tokens", BARG_INT, &max_ctx, "a turn past this compacts (default 262144)"};
    spec[ns++] = (barg){"spawn-min", BARG_INT, &spawn_min, "sub-agents per spawn, at least (default 1)"};
    spec[ns++] = (barg){"spawn-max", BARG_INT, &spawn_max, "sub-agents per spawn, at most (default 4)"};
    spec[ns++] = (barg){"sub-prefix-min", BARG_INT, &sub_pmin, "sub-agents' tool prefix, tokens, at least (default 8000)"};
    spec[ns++] = (barg){"sub-prefix-max", BARG_INT, &sub_pmax, "... at most (default 10000)"};
    static const char *const dhelp[NDF] = {
        "first request's median tokens, prefix included (default 25000)",
        "lognormal sigma of the first request's own part (default 1.4)",
        "median requests per session (default 45)",
        "lognormal sigma of requests per session (default 1.0, assumed)",
        "share of turns after a tool call (default 0.81)",
        "median tokens appended after a tool call (default 290)",
        "its lognormal sigma (default 1.797: p90 ~2900)",
        "median tokens appended after user text (default 100)",
        "its lognormal sigma (default 1.0, assumed)",
        "share of turns that compact the context (default 0.017)",
        "a compaction keeps at least this share of the context (default 0.1, assumed)",
        "... at most this share (default 0.5)",
        "median output tokens (default 216)",
        "their lognormal sigma (default 1.0, assumed)",
        "tool-loop think time: lognormal mu, log-seconds (default 2.21)",
        "... sigma (default 0.75)",
        "human think time: lognormal mu (default 5.55)",
        "... sigma (default 1.22)",
        "... samples below this many seconds are redrawn (default 60)",
        "open-loop response time = output tokens / this (default 100, assumed)",
        "share of sessions that spawn sub-agents (default 0.04)",
        "median requests per sub-agent (default 11)",
        "its lognormal sigma (default 0.5, assumed)",
        "median tokens of a sub-agent's task beyond its prefix (default 1000, assumed)",
        "its lognormal sigma (default 1.0, assumed)",
        "TTFT model: prefill rate per GPU (default: the model's, assumed; 8b 10000)",
        "TTFT model: the SLO on p95 (default 2000)",
        "TTFT model: measured load time x this (default: real / moved bytes; 1: as measured)",
    };
    for (int i = 0; i < NDF; i++)
        spec[ns++] = (barg){df[i].name, BARG_STR, &df[i].text, dhelp[i]};
    spec[ns++] = (barg){"block-tokens", BARG_INT, &block_tokens, "tokens per block (default 64)"};
    spec[ns++] = (barg){"model", BARG_STR, &model, "llama-3.1-8b (128 KiB/token, default) or llama-3.1-70b (320 KiB/token)"};
    spec[ns++] = (barg){"bytes-per-token", BARG_SIZE, &bpt, "KV bytes per token (default: the model's)"};
    spec[ns++] = (barg){"scale-bytes", BARG_STR, &scale, "move this fraction of each block's bytes, e.g. 1/256 (default 1/256)"};
    spec[ns++] = (barg){"block-bytes", BARG_SIZE, &block_bytes, "bytes moved per block (overrides --scale-bytes)"};
    spec[ns++] = (barg){"dram-bytes", BARG_SIZE, &dram_bytes, "DRAM tier capacity (default 512M)"};
    spec[ns++] = (barg){"nvme-bytes", BARG_SIZE, &nvme_bytes, "NVMe tier file size, whole slots (default 2G; 0: no NVMe tier)"};
    spec[ns++] = (barg){"dir", BARG_STR, &c.dir, "directory of the NVMe file, removed at exit (default $TMPDIR or /tmp)"};
    spec[ns++] = (barg){"policy", BARG_STR, &c.policy, "eviction policy of both tiers (default: the library's, prefix)"};
    spec[ns++] = (barg){"ttl", BARG_STR, &ttl, "idle TTL of both tiers, s (or 5m, 1h; default none)"};
    spec[ns++] = (barg){"dram-ttl", BARG_STR, &dram_ttl, "DRAM idle TTL (overrides --ttl)"};
    spec[ns++] = (barg){"nvme-ttl", BARG_STR, &nvme_ttl, "NVMe idle TTL (overrides --ttl)"};
    spec[ns++] = (barg){"lease-ms", BARG_INT, &lease, "lookup pins its hits this long (virtual ms; default 30000)"};
    spec[ns++] = (barg){"buffer-bytes", BARG_SIZE, &buffer, "the engine's buffer; longer prompts move in several calls (default 256M)"};
    spec[ns++] = (barg){"copy-threads", BARG_INT, &copy_threads, "KVT_OPT_COPY_THREADS (default: the library's)"};
    spec[ns++] = (barg){"no-promote", BARG_BOOL, &no_promote, "gets do not promote NVMe hits into DRAM"};
    spec[ns++] = (barg){"no-memcpy", BARG_BOOL, &no_pairs, "skip the memcpy baseline (hit ratios and TTFT only)"};
    spec[ns++] = (barg){"gpus", BARG_INT, &gpus, "TTFT model: prefill servers (default 1)"};
    spec[ns++] = (barg){"json", BARG_BOOL, &json, "print one JSON object instead of tables"};
    spec[ns] = (barg){0};
    int rc = bench_parse_args("swarm", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    const char *bad = NULL;
    char msg[160];
    for (int i = 0; i < NDF && !bad; i++) {
        if (!df[i].text)
            continue;
        char *end;
        errno = 0;
        double v = strtod(df[i].text, &end);
        if (errno || end == df[i].text || *end || !(v >= df[i].lo && v <= df[i].hi)) {
            snprintf(msg, sizeof msg, "--%s wants a number in [%g, %g], not '%s'", df[i].name,
                     df[i].lo, df[i].hi, df[i].text);
            bad = msg;
        }
        *df[i].out = v;
    }
    c.ramp = strcmp(mode, "ramp") == 0;
    const swarm_model *mdl = swarm_find_model(model);
    double sc = 1.0 / 256, dsec = 0;
    if (!bad && !c.ramp && strcmp(mode, "static") != 0)
        bad = "--mode must be static or ramp";
    else if (!bad && !mdl && !bpt)
        bad = "--model must be llama-3.1-8b or llama-3.1-70b (or give --bytes-per-token)";
    else if (!bad && scale && swarm_parse_fraction(scale, &sc))
        bad = "--scale-bytes wants a fraction in (0, 1] like 1/256 or 0.01";
    else if (!bad && strcmp(cycle, "rr") != 0 && strcmp(cycle, "random") != 0)
        bad = "--cycle must be rr or random";
    if (!bad) {
        struct {
            const char *name, *text;
            double *out;
        } secs[] = {{"--duration", duration, &p->duration_s},
                    {"--stagger", stagger, &p->stagger_s},
                    {"--ramp-step", ramp_step, &dsec}};
        for (size_t i = 0; i < 3 && !bad; i++) {
            if (secs[i].text && swarm_parse_seconds(secs[i].text, secs[i].out)) {
                snprintf(msg, sizeof msg, "%s wants seconds (or 30m, 2h), not '%s'", secs[i].name,
                         secs[i].text);
                bad = msg;
            }
        }
        double t_all = 0, t;
        if (!bad && ttl && swarm_parse_seconds(ttl, &t_all))
            bad = "--ttl wants seconds (or 5m, 1h, inf)";
        c.dram_ttl_ms = c.nvme_ttl_ms = (uint64_t)llround(t_all * 1e3);
        if (!bad && dram_ttl) {
            if (swarm_parse_seconds(dram_ttl, &t))
                bad = "--dram-ttl wants seconds (or 5m, 1h, inf)";
            c.dram_ttl_ms = (uint64_t)llround(t * 1e3);
        }
        if (!bad && nvme_ttl) {
            if (swarm_parse_seconds(nvme_ttl, &t))
                bad = "--nvme-ttl wants seconds (or 5m, 1h, inf)";
            c.nvme_ttl_ms = (uint64_t)llround(t * 1e3);
        }
    }
    if (!bad) {
        if (agents >= 0)
            p->agents = (uint32_t)(agents > 1000000 ? 1000001 : agents);
        else if (c.ramp)
            p->agents = 256;
        if (c.ramp) {
            p->ramp_step_s = ramp_step ? dsec : 600;
            if (ramp_add >= 0)
                p->ramp_add = (uint32_t)(ramp_add > 1000000 ? 0 : ramp_add);
        }
        if (types >= 0)
            p->agent_types = (uint32_t)(types > 1000000 ? 0 : types);
        if (seed >= 0)
            p->seed = (uint64_t)seed;
        p->max_requests = max_req > 0 ? (uint64_t)max_req : 0;
        if (sessions >= 0)
            p->sessions = (uint32_t)(sessions > 100000000 ? 100000000 : sessions);
        p->cycle_random = strcmp(cycle, "random") == 0;
        if (block_tokens >= 0)
            p->block_tokens = (uint32_t)(block_tokens > 65536 ? 0 : block_tokens);
        if (prefix >= 0)
            p->prefix_tokens = (uint32_t)(prefix > (1 << 24) ? 1 << 24 : prefix);
        if (max_ctx >= 0)
            p->max_context = (uint32_t)(max_ctx > (1 << 25) ? 1 << 25 : max_ctx);
        if (spawn_min >= 0)
            p->spawn_min = (uint32_t)(spawn_min > 65 ? 65 : spawn_min);
        if (spawn_max >= 0)
            p->spawn_max = (uint32_t)(spawn_max > 65 ? 65 : spawn_max);
        if (sub_pmin >= 0)
            p->sub_prefix_min = (uint32_t)(sub_pmin > (1 << 24) ? 1 << 24 : sub_pmin);
        if (sub_pmax >= 0)
            p->sub_prefix_max = (uint32_t)(sub_pmax > (1 << 24) ? 1 << 24 : sub_pmax);
        if (agents == 0 || types == 0 || block_tokens == 0)
            bad = "--agents, --agent-types and --block-tokens must be at least 1";
        else if (c.ramp && !(p->ramp_step_s > 0))
            bad = "--ramp-step must be above 0";
        else if (gpus < 1 || gpus > 100000)
            bad = "--gpus must be 1..100000";
        else if (lease < 0 || lease > 86400000)
            bad = "--lease-ms must be 0..86400000";
        else if (copy_threads < 0 || copy_threads > 64)
            bad = "--copy-threads must be 1..64";
    }
    if (bad) {
        fprintf(stderr, "kvtier-bench swarm: %s\nTry 'kvtier-bench swarm --help'.\n", bad);
        return BENCH_USAGE;
    }
    c.model = mdl ? mdl->name : "custom";
    c.bytes_per_token = bpt ? bpt : mdl->bytes_per_token;
    c.prefill_tps = prefill > 0 ? prefill : mdl ? mdl->prefill_tps : 10000;
    c.slo_ms = slo;
    c.load_scale = load_scale;
    c.gpus = (uint32_t)gpus;
    c.lease_ms = (uint32_t)lease;
    c.copy_threads = (int)copy_threads;
    c.no_promote = no_promote;
    c.pairs = !no_pairs;
    c.dram_bytes = dram_bytes;
    c.nvme_bytes = nvme_bytes;
    c.buffer_bytes = buffer;
    if (block_bytes) {
        c.block_bytes = block_bytes;
    } else {
        double b = (double)p->block_tokens * (double)c.bytes_per_token * sc;
        c.block_bytes = b < 64 ? 64 : (uint64_t)b / 64 * 64; /* whole cache lines */
    }
    c.label = "swarm";
    swarm_result *r = malloc(sizeof *r);
    if (!r) {
        fprintf(stderr, "kvtier-bench swarm: out of memory\n");
        return BENCH_FAILED;
    }
    rc = swarm_run(&c, r);
    if (rc == BENCH_OK) {
        if (json) {
            bench_json j;
            bench_json_init(&j, stdout);
            bench_json_object(&j, NULL);
            bench_json_header(&j, "swarm");
            swarm_json_config(&j, &c, r);
            swarm_json_results(&j, &c, r);
            bench_json_end_object(&j);
        } else {
            bench_print_header(stdout, c.ramp ? "agent swarm ramp through a store (manual clock)"
                                              : "agent swarm through a store (manual clock)");
            swarm_text_workload(&c, r);
            swarm_text_results(&c, r);
        }
    }
    free(r);
    return rc;
}
