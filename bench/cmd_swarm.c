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
#include "knee.h"
#include "ttft.h"

/* ---------------------------------------------------------------- models */

/* Bytes per token: 2 (K, V) x layers x KV heads x head dim x 2 bytes (bf16).
 * Prefill rates are the hardware profile's (profile.c). */
static const swarm_model models[] = {
    {"llama-3.1-8b", 2ull * 32 * 8 * 128 * 2},  /* 128 KiB */
    {"llama-3.1-70b", 2ull * 80 * 8 * 128 * 2}, /* 320 KiB */
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
        rc = refused(kvt_config_tier_set(k, bench_tier(k, "dram"), "capacity",
                                         (int64_t)(dram_blocks * bb)),
                     "--dram-bytes");
    if (!rc)
        rc = refused(
            kvt_config_tier_set(k, bench_tier(k, "dram"), "ttl_ms", (int64_t)c->dram_ttl_ms),
            "--dram-ttl");
    if (!rc && c->policy)
        rc = refused(kvt_config_tier_set_str(k, bench_tier(k, "dram"), "policy", c->policy),
                     "--policy");
    if (!rc && nvme_slots) {
        rc = refused(kvt_config_tier_set(k, bench_tier(k, "nvme"), "capacity",
                                         (int64_t)(nvme_slots * slot)),
                     "--nvme-bytes");
        if (!rc)
            rc = refused(
                kvt_config_tier_set(k, bench_tier(k, "nvme"), "ttl_ms", (int64_t)c->nvme_ttl_ms),
                "--nvme-ttl");
        if (!rc)
            rc = refused(kvt_config_tier_set_str(k, bench_tier(k, "nvme"), "path", path), "--dir");
        if (!rc && c->policy)
            rc = refused(kvt_config_tier_set_str(k, bench_tier(k, "nvme"), "policy", c->policy),
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
            v = rate(r->get_dram.base_bytes, r->get_dram.base_ns),
            how = "measured in this run: memcpy of the DRAM gets' blocks";
        else if (r->put.base_ns)
            v = rate(r->put.base_bytes, r->put.base_ns),
            how = "measured in this run: memcpy of the puts' blocks";
        else if (r->get_dram.ns)
            v = rate(r->get_dram.bytes, r->get_dram.ns),
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
            v = rate(r->get_nvme.bytes, r->get_nvme.ns),
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
        if (kvt_slot_bytes("nvme", bb, &slot) < 0) {
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
            int dram = t == kvt_store_tier_find(s, "dram");
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
    printf("  TTFT model   (modelled, profile %s) p50 %.0f ms, p95 %.0f ms, p99 %.0f ms; %.1f%% "
           "within the %.0f ms SLO; goodput %.3f req/s\n",
           r->prof.name, r->ttft_p50_ms, r->ttft_p95_ms, r->ttft_p99_ms, 100 * r->within_slo,
           c->slo_ms, r->goodput_rps);
    printf("               = load (real bytes per tier / the profile's rate / kvtier's measured "
           "efficiency; p50 %.1f ms, p99 %.1f ms)\n"
           "               + FIFO wait for 1 of %u GPU%s (p50 %.0f ms, p95 %.0f ms)"
           " + missed tokens / %.0f tok/s (p50 %.0f ms)\n",
           r->load_p50_ms, r->load_p99_ms, c->gpus, c->gpus == 1 ? "" : "s", r->queue_p50_ms,
           r->queue_p95_ms, c->prefill_tps, r->prefill_p50_ms);
    swarm_text_profile(c, r);
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
}

/* ------------------------------------------------- profiles and the ramp */

static const hw_key flag_keys[] = {HW_GPU_GBPS,        HW_NVME_DRIVES,  HW_NVME_DRIVE_GBPS,
                                   HW_NVME_GBPS,       HW_CLUSTER_GBPS, HW_GPUS};
#define NFLAG_KEYS (sizeof flag_keys / sizeof flag_keys[0])
/* texts[]: one per flag_keys entry, then the prefill rate, then --profile. */
#define T_PREFILL NFLAG_KEYS
#define T_PROFILE (NFLAG_KEYS + 1)

int swarm_profile_flags(barg *spec, int ns, const char **texts)
{
    static const char *const help[] = {
        "TTFT model: host <-> GPU GB/s per GPU (default: the profile's)",
        "TTFT model: NVMe drives per node (default: the profile's)",
        "TTFT model: NVMe read GB/s per drive (default: the profile's)",
        "TTFT model: NVMe read GB/s per node (default: drives x rate)",
        "cluster tier GB/s per node (printed; the swarm has no cluster tier)",
        "TTFT model: GPUs per node, the prefill servers (default: the profile's)",
    };
    for (size_t i = 0; i < NFLAG_KEYS; i++)
        spec[ns++] = (barg){hw_flag(flag_keys[i]), BARG_STR, &texts[i], help[i]};
    spec[ns++] = (barg){"prefill-tokens-per-s", BARG_STR, &texts[T_PREFILL],
                        "TTFT model: prefill tok/s per GPU (default: the profile's for the model)"};
    spec[ns++] = (barg){"profile", BARG_STR, &texts[T_PROFILE],
                        "TTFT model's hardware: h100-pcie5, h200-pcie5 (default), gb200, measured"};
    return ns;
}

int swarm_profile_resolve(const char *const *texts, swarm_cfg *c, char *msg, size_t cap)
{
    const char *name = texts[T_PROFILE] ? texts[T_PROFILE] : HW_DEFAULT_PROFILE;
    if (hw_profile_get(name, &c->prof)) {
        snprintf(msg, cap, "--profile must be one of %s, not '%s'", hw_profile_names(), name);
        return -1;
    }
    hw_key pk = hw_prefill_key(c->model);
    for (size_t i = 0; i <= NFLAG_KEYS; i++) {
        const char *t = texts[i];
        if (!t)
            continue;
        hw_key k = i < NFLAG_KEYS ? flag_keys[i] : pk;
        const char *flag = i < NFLAG_KEYS ? hw_flag(k) : "prefill-tokens-per-s";
        char *end;
        errno = 0;
        double v = strtod(t, &end);
        int whole = k == HW_GPUS || k == HW_NVME_DRIVES;
        int ok = (v > 0 || (k == HW_CLUSTER_GBPS && v == 0)) && v <= 1e9;
        if (errno || end == t || *end || !ok || (whole && (v != floor(v) || v > 100000))) {
            snprintf(msg, cap, "--%s wants a number above 0%s, not '%s'", flag,
                     whole ? " (whole, <= 100000)" : "", t);
            return -1;
        }
        char why[64];
        snprintf(why, sizeof why, "--%s", flag);
        hw_set(&c->prof, k, v, why);
    }
    c->gpus = (uint32_t)c->prof.f[HW_GPUS].v;
    c->prefill_tps = c->prof.f[pk].v;
    return 0;
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
    printf("    loads: DRAM bytes at %.3g GB/s x %.2f; NVMe bytes at min(link, node NVMe / %u GPUs) "
           "= %.3g GB/s x %.2f\n",
           r->rates.dram_gbps, r->rates.dram_eff, c->gpus, r->rates.nvme_gbps, r->rates.nvme_eff);
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

typedef struct ramp_ctx {
    const swarm_cfg *c;
    const swarm_ramp_opts *o;
    swarm_result *r;      /* scratch */
    swarm_result *keep;   /* the knee's run */
    uint32_t kept;        /* agents of the run in keep if it met the SLO, else 0 */
    int have;             /* keep holds a run */
    uint64_t t0;          /* the ramp's start, for wall_budget_s */
    double last_wall;     /* the last step's wall seconds and agents: the next */
    uint32_t last_agents; /* step's time is predicted in proportion */
    int rc;
} ramp_ctx;

static int ramp_step(uint32_t agents, void *user, knee_step *st)
{
    ramp_ctx *x = user;
    if (x->o->wall_budget_s > 0) {
        /* No step starts that would end past the budget: a run's work
         * grows with its agents. */
        double spent = (double)(bench_now_ns() - x->t0) / 1e9;
        double next = x->last_agents ? x->last_wall * agents / x->last_agents : 0;
        if (spent + next > x->o->wall_budget_s)
            return KNEE_STOP;
    }
    swarm_cfg c = *x->c;
    c.wl.agents = agents;
    c.wl.duration_s = x->o->step_s;
    c.wl.ramp_step_s = 0; /* every agent from the start: a static run */
    c.judge_after_s = x->o->warm_s;
    char label[64];
    if (x->c->label) {
        snprintf(label, sizeof label, "%s: %u agents", x->c->label, agents);
        c.label = label;
    }
    int rc = swarm_run(&c, x->r);
    if (rc) {
        x->rc = rc;
        return rc;
    }
    const swarm_result *r = x->r;
    st->requests = r->judged;
    st->hit_ratio = r->judged_hit_ratio;
    st->ttft_p50_ms = r->judged_p50_ms;
    st->ttft_p95_ms = r->judged_p95_ms;
    st->wall_s = r->wall_s;
    x->last_wall = r->wall_s;
    x->last_agents = agents;
    st->met = r->judged > 0 && !(r->judged_p95_ms > c.slo_ms);
    if (x->keep && ((st->met && agents > x->kept) || !x->have)) {
        *x->keep = *r;
        x->kept = st->met ? agents : 0;
        x->have = 1;
    }
    return 0;
}

int swarm_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, knee_result *k,
               swarm_result *knee_run)
{
    swarm_result *scratch = malloc(sizeof *scratch);
    if (!scratch) {
        fprintf(stderr, "kvtier-bench swarm: out of memory\n");
        return BENCH_FAILED;
    }
    ramp_ctx x = {.c = c, .o = o, .r = scratch, .keep = knee_run, .t0 = bench_now_ns()};
    knee_opts ko = {.start = o->start, .max = o->max, .growth = o->growth,
                    .resolution = o->resolution, .max_steps = o->max_steps};
    int rc = knee_find(&ko, ramp_step, &x, k);
    free(scratch);
    if (rc < 0 && !x.rc) {
        fprintf(stderr, "kvtier-bench swarm: a ramp wants 1 <= --ramp-start <= --agents, "
                        "--ramp-growth > 1, --ramp-resolution >= 0\n");
        return BENCH_USAGE;
    }
    return x.rc;
}

void swarm_text_ramp(const swarm_cfg *c, const swarm_ramp_opts *o, const knee_result *k)
{
    printf("\n  ramp         (modelled TTFT, profile %s, %u GPU%s) runs of N agents for %.0f "
           "virtual s each, judged after %.0f s;\n"
           "               N grows x%.3g from %u until TTFT p95 > %.0f ms, then bisects "
           "(to %.0f%% or 1 agent)\n",
           c->prof.name, c->gpus, c->gpus == 1 ? "" : "s", o->step_s, o->warm_s, o->growth,
           o->start, c->slo_ms, 100 * o->resolution);
    static const char *const rh[] = {"step", "agents", "requests", "hit ratio", "TTFT p50 ms",
                                     "TTFT p95 ms", "SLO", "wall"};
    bench_table rt;
    bench_table_init(&rt, 8, rh, "rrrrrrlr");
    for (int i = 0; i < k->nsteps; i++) {
        const knee_step *st = &k->step[i];
        bench_table_cell(&rt, "%d", i + 1);
        bench_table_cell(&rt, "%u", st->agents);
        bench_table_cell(&rt, "%" PRIu64, st->requests);
        bench_table_cell(&rt, "%.1f%%", 100 * st->hit_ratio);
        bench_table_cell(&rt, "%.0f", st->ttft_p50_ms);
        bench_table_cell(&rt, "%.0f", st->ttft_p95_ms);
        bench_table_cell(&rt, "%s", st->met ? "met" : "MISSED");
        bench_table_cell(&rt, "%.1f s", st->wall_s);
    }
    bench_table_print(&rt, stdout, 2);
    bench_table_free(&rt);
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
    bench_json_array(j, "windows"); /* the steps, in the order run */
    for (int i = 0; i < k->nsteps; i++) {
        const knee_step *st = &k->step[i];
        bench_json_object(j, NULL);
        bench_json_u64(j, "agents", st->agents);
        bench_json_u64(j, "requests", st->requests);
        bench_json_num(j, "hit_ratio", st->hit_ratio);
        bench_json_num(j, "ttft_p50_ms", st->ttft_p50_ms);
        bench_json_num(j, "ttft_p95_ms", st->ttft_p95_ms);
        bench_json_bool(j, "within_slo", st->met);
        bench_json_num(j, "wall_s", st->wall_s);
        bench_json_end_object(j);
    }
    bench_json_end_array(j);
    bench_json_end_object(j);
}

/* ------------------------------------------------------------ the command */

static const char summary[] =
    "The agent swarm (docs/bench.md): agents run sessions that share a tools+system\n"
    "  prefix, append tool results every few seconds and user text every few minutes,\n"
    "  compact now and then, and spawn sub-agents. Each request goes through a real\n"
    "  store on its manual clock (lookup with lease, get the hits tier by tier, put\n"
    "  the rest); TTFT is modelled on a hardware profile (--profile: link and NVMe rates,\n"
    "  GPUs, prefill rate; kvtier's measured efficiency applied) with FIFO queueing.\n"
    "  --mode ramp searches the knee: the most agents whose TTFT p95 meets --slo-ms.";

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
    const char *stagger = NULL, *ramp_step = NULL, *ramp_warm = NULL, *ramp_wall = NULL;
    const char *ptexts[16] = {0};
    int64_t agents = -1, types = -1, max_req = 0, seed = -1, block_tokens = -1, prefix = -1,
            max_ctx = -1, spawn_min = -1, spawn_max = -1, sub_pmin = -1, sub_pmax = -1,
            sessions = -1, lease = 30000, copy_threads = 0, ramp_start = 8, ramp_steps = 16;
    uint64_t bpt = 0, block_bytes = 0, dram_bytes = 512u << 20, nvme_bytes = 2ull << 30,
             buffer = 256u << 20;
    int no_promote = 0, no_pairs = 0, json = 0;
    double slo = 2000, growth = 2, resolution = 0.05;
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
        {"slo-ms", &slo, NULL, 1, 1e9},
        {"ramp-growth", &growth, NULL, 1.01, 100},
        {"ramp-resolution", &resolution, NULL, 0, 1},
    };
    enum { NDF = sizeof df / sizeof df[0] };
    barg spec[96];
    int ns = 0;
    spec[ns++] = (barg){"mode", BARG_STR, &mode, "static (default) or ramp"};
    spec[ns++] = (barg){"agents", BARG_INT, &agents, "agents (static; default 32) or the most a ramp tries (default 256)"};
    spec[ns++] = (barg){"agent-types", BARG_INT, &types, "agent types, each with its own prefix (default 1)"};
    spec[ns++] = (barg){"duration", BARG_STR, &duration, "virtual time of arrivals, s (or 30m, 2h; default 1h; ramp: the steps)"};
    spec[ns++] = (barg){"requests", BARG_INT, &max_req, "stop after this many requests (default: no limit)"};
    spec[ns++] = (barg){"stagger", BARG_STR, &stagger, "agents' first requests spread over this long, s (default 60)"};
    spec[ns++] = (barg){"ramp-step", BARG_STR, &ramp_step, "ramp: virtual s each step's run lasts (default 1h)"};
    spec[ns++] = (barg){"ramp-warm", BARG_STR, &ramp_warm, "ramp: requests before this are not judged (default 10m)"};
    spec[ns++] = (barg){"ramp-start", BARG_INT, &ramp_start, "ramp: agents of the first step (default 8)"};
    spec[ns++] = (barg){"ramp-steps", BARG_INT, &ramp_steps, "ramp: at most this many steps (default 16)"};
    spec[ns++] = (barg){"ramp-wall", BARG_STR, &ramp_wall, "ramp: no step starts after this much wall time, s (default none)"};
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
        "TTFT model: the SLO on p95 (default 2000)",
        "ramp: agents x this per step while the SLO holds (default 2)",
        "ramp: bisect until the gap is <= this share of the knee (default 0.05; 0: 1 agent)",
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
    ns = swarm_profile_flags(spec, ns, ptexts);
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
    double sc = 1.0 / 256, dsec = 0, rwarm = 0, rwall = 0;
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
                    {"--ramp-step", ramp_step, &dsec},
                    {"--ramp-warm", ramp_warm, &rwarm},
                    {"--ramp-wall", ramp_wall, &rwall}};
        for (size_t i = 0; i < 5 && !bad; i++) {
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
        else if (c.ramp && ramp_step && !(dsec > 0))
            bad = "--ramp-step must be above 0";
        else if (c.ramp && (ramp_start < 1 || ramp_start > p->agents))
            bad = "--ramp-start must be 1..--agents";
        else if (c.ramp && (ramp_steps < 1 || ramp_steps > KNEE_MAX_STEPS))
            bad = "--ramp-steps must be 1..64";
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
    c.slo_ms = slo;
    if (swarm_profile_resolve(ptexts, &c, msg, sizeof msg)) {
        fprintf(stderr, "kvtier-bench swarm: %s\nTry 'kvtier-bench swarm --help'.\n", msg);
        return BENCH_USAGE;
    }
    swarm_ramp_opts ro = {.step_s = ramp_step ? dsec : 3600,
                          .warm_s = ramp_warm ? rwarm : 600,
                          .start = (uint32_t)ramp_start,
                          .max = p->agents,
                          .growth = growth,
                          .resolution = resolution,
                          .max_steps = (int)ramp_steps,
                          .wall_budget_s = rwall};
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
    knee_result *kr = c.ramp ? malloc(sizeof *kr) : NULL;
    if (c.ramp && !kr) {
        free(r);
        fprintf(stderr, "kvtier-bench swarm: out of memory\n");
        return BENCH_FAILED;
    }
    if (c.ramp) {
        c.wl.duration_s = ro.step_s;
        rc = swarm_ramp(&c, &ro, kr, r);
        c.wl.agents = kr->knee ? kr->knee : kr->step[0].agents; /* the run r reports */
    } else {
        rc = swarm_run(&c, r);
    }
    if (rc == BENCH_OK) {
        if (json) {
            bench_json j;
            bench_json_init(&j, stdout);
            bench_json_object(&j, NULL);
            bench_json_header(&j, "swarm");
            swarm_json_config(&j, &c, r);
            swarm_json_results(&j, &c, r);
            if (c.ramp)
                swarm_json_ramp(&j, &c, &ro, kr);
            bench_json_end_object(&j);
        } else {
            bench_print_header(stdout, c.ramp ? "agent swarm ramp through a store (manual clock)"
                                              : "agent swarm through a store (manual clock)");
            swarm_text_workload(&c, r);
            if (c.ramp)
                printf("  (the run below is the knee's: %u agents for %.0f virtual s)\n",
                       c.wl.agents, ro.step_s);
            swarm_text_results(&c, r);
            if (c.ramp)
                swarm_text_ramp(&c, &ro, kr);
        }
    }
    free(kr);
    free(r);
    return rc;
}
