/* cmd_default.c — `kvtier-bench` with no command: the agent swarm through DRAM + NVMe, each tier next to its ceiling, and the TTL comparison. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "knee.h"
#include "raw_uring.h"
#include "swarm.h"

static const char summary[] =
    "The default run: a synthetic agent swarm (the `swarm` workload, docs/bench.md)\n"
    "  through a DRAM tier and an NVMe file in a temporary directory (removed at exit),\n"
    "  on the store's manual clock. Reports hit ratios per tier, prefill avoided, the\n"
    "  TTFT model, put/get/lookup latency, each tier's rate next to a ceiling doing the\n"
    "  same work on the same data in the same run (memcpy of the same blocks; raw io_uring\n"
    "  O_DIRECT reads, and reads + writes, of the slots kvtier wrote in the same file), and\n"
    "  the hit ratio under idle TTLs of 1 min / 5 min / 1 h (fast reruns, tiny blocks).";

/* The main phase's size: a few seconds on a 2-vCPU VM, < 2 GiB of memory, a
 * 2 GiB NVMe file. --quick: seconds, for the smoke test. */
typedef struct dflt_size {
    uint32_t agents, block_tokens;
    double duration_s, scale, raw_s; /* raw_s: each NVMe row side's time budget */
    uint64_t dram_bytes, nvme_bytes;
} dflt_size;

static const dflt_size full_size = {6, 256, 7200, 1.0 / 512, 0.5, 64u << 20, 2ull << 30};
static const dflt_size quick_size = {3, 1024, 1200, 1.0 / 4096, 0.1, 4u << 20, 64u << 20};

/* The ramps' wall budget: what is left of RUN_WALL_S after the main run
 * and the TTL reruns, within [RAMP_WALL_MIN_S, RAMP_WALL_MAX_S], so the
 * default run stays within a minute. */
#define RUN_WALL_S 55
#define RAMP_WALL_MIN_S 8
#define RAMP_WALL_MAX_S 35

#define TTL_BLOCK_BYTES 64 /* hit ratios only: the smallest block the tiers take */

typedef struct ttl_row {
    double dram_ttl_s, nvme_ttl_s;
    swarm_cfg c;
    swarm_result r;
    int rc;
    int main_run; /* the row is the main run's (no TTL) */
} ttl_row;

/* The reruns wait mostly on one-block NVMe writes (demotions): they run
 * side by side, each with its own store and file. */
static void *ttl_thread(void *arg)
{
    ttl_row *w = arg;
    w->rc = swarm_run(&w->c, &w->r);
    return NULL;
}

/* The story's two ramps (DRAM alone, DRAM + NVMe): hit-ratio runs with tiny
 * blocks, side by side, the TTFT model at the main run's profile, measured
 * rates and efficiencies. */
typedef struct ramp_job {
    const char *what;
    swarm_cfg c;
    swarm_ramp_opts o;
    knee_result k;
    int rc;
} ramp_job;

static void *ramp_thread(void *arg)
{
    ramp_job *w = arg;
    w->rc = swarm_ramp(&w->c, &w->o, &w->k, NULL);
    return NULL;
}

/* ------------------------------------------ the NVMe rows: like with like */

/*
 * Each NVMe row runs the library and a plain io_uring loop (raw_uring.c)
 * over the same slots of the store's own file: the slots whose header says
 * kvtier wrote a block there (docs/nvme-format.md) and whose key the store
 * holds in NVMe. Never unwritten space: a read of an unwritten extent is
 * answered by the filesystem with zeros, without the device. Both sides move
 * NVME_BATCH whole slots per call (a library get of that many blocks; a raw
 * batch) through a ring of the tier's default depth, O_DIRECT, into the
 * caller's (unregistered) memory, and only the calls are timed. Run at the
 * end of the workload, with the store open and idle.
 */
#define NVME_QD 64    /* the tier's default queue depth ("queue_depth") */
#define NVME_BATCH 64 /* blocks per library call and per raw batch */
#define UNIT 4096

typedef struct slot_set {
    uint64_t *slot; /* slot indices, ascending */
    kvt_key *key;   /* the key each one's header names */
    size_t n;
} slot_set;

/* One side of an NVMe row. Transfers are whole slots: the library's
 * nvme.reads / nvme.writes, the raw loop's own count. */
typedef struct io_side {
    uint64_t calls, blocks, ns;
    uint64_t slot_reads, slot_writes;
    uint64_t distinct; /* distinct slots read (raw) */
    uint64_t verified; /* raw: reads whose header is kvtier's header for that slot and key;
                          library: blocks returned */
} io_side;

typedef struct nvme_rows {
    int ok;         /* measured; else why[] says why not */
    char why[160];
    double seconds; /* each side's budget */
    uint64_t slots, slot_bytes;
    uint64_t written;        /* slots holding a block header after the workload */
    uint64_t resident;       /* of those, blocks the store holds in NVMe: both sides' set */
    uint64_t resident_after; /* the same after the promoting gets: the read+write set */
    io_side get, raw_read;   /* get with KVT_IO_NO_PROMOTE; raw reads */
    io_side get_promote, raw_rw; /* get with promotion; raw reads + as many writes */
} nvme_rows;

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* 1 when h, the first unit of slot i, is a block header kvtier wrote for
 * slot i (magic, slot index at offset 88) naming key (offset 48; NULL: any). */
static int slot_header_ok(const unsigned char *h, uint64_t i, const kvt_key *key)
{
    return memcmp(h, "KVTBLOCK", 8) == 0 && le32(h + 88) == (uint32_t)i &&
           (!key || memcmp(h + 48, key->b, 16) == 0);
}

static void slot_set_free(slot_set *w)
{
    free(w->slot);
    free(w->key);
    memset(w, 0, sizeof *w);
}

/* Reads every slot's header unit; keeps those kvtier wrote and, with s, whose
 * key s holds in NVMe now. *written: slots with a header. 0 or -errno. */
static int scan_slots(raw_uring *ring, void *mem, uint64_t nslots, uint64_t slot, kvt_store *s,
                      slot_set *w, uint64_t *written)
{
    memset(w, 0, sizeof *w);
    *written = 0;
    w->slot = malloc(nslots * sizeof *w->slot);
    w->key = malloc(nslots * sizeof *w->key);
    if (!w->slot || !w->key) {
        slot_set_free(w);
        return -ENOMEM;
    }
    raw_io ios[NVME_QD];
    for (uint64_t i0 = 0; i0 < nslots; i0 += NVME_QD) {
        size_t k = nslots - i0 < NVME_QD ? (size_t)(nslots - i0) : NVME_QD;
        for (size_t j = 0; j < k; j++)
            ios[j] = (raw_io){(char *)mem + j * UNIT, UNIT + (i0 + j) * slot, UNIT};
        int e = raw_uring_run(ring, 0, ios, k);
        if (e < 0) {
            slot_set_free(w);
            return e;
        }
        for (size_t j = 0; j < k; j++) {
            const unsigned char *h = (const unsigned char *)mem + j * UNIT;
            if (!slot_header_ok(h, i0 + j, NULL))
                continue;
            ++*written;
            kvt_key key;
            memcpy(key.b, h + 48, 16);
            uint8_t tier = KVT_TIER_NONE;
            if (s && (kvt_lookup(s, &key, 1, &tier, 0) != 1 || tier != kvt_store_tier_find(s, "nvme")))
                continue;
            w->slot[w->n] = i0 + j;
            w->key[w->n++] = key;
        }
    }
    return 0;
}

/* A walk over a random permutation of 0..n-1, reshuffled at each wrap:
 * batches of distinct members, every member as often as the others. */
typedef struct perm_walk {
    uint32_t *v;
    size_t n, at;
    uint64_t rnd;
} perm_walk;

static void perm_shuffle(perm_walk *p)
{
    for (size_t i = p->n; i > 1; i--) {
        size_t j = (size_t)(bench_rand(&p->rnd) % i);
        uint32_t t = p->v[i - 1];
        p->v[i - 1] = p->v[j];
        p->v[j] = t;
    }
    p->at = 0;
}

static int perm_init(perm_walk *p, size_t n, uint64_t seed)
{
    p->v = malloc((n ? n : 1) * sizeof *p->v);
    if (!p->v)
        return -1;
    for (size_t i = 0; i < n; i++)
        p->v[i] = (uint32_t)i;
    p->n = n;
    p->rnd = bench_rand_seed(seed);
    perm_shuffle(p);
    return 0;
}

static uint32_t perm_next(perm_walk *p)
{
    if (p->at == p->n)
        perm_shuffle(p);
    return p->v[p->at++];
}

/* Raw batches over w's slots for about `seconds` of timed transfers: k =
 * batch (at most NVME_BATCH) whole-slot reads, then (write_per_read > 0) writes of as many of those
 * buffers back to the slots they came from (the file's bytes stay the
 * store's), so that writes / reads tracks write_per_read. Each read is
 * checked to be kvtier's header for that slot and key. */
static int raw_batches(raw_uring *ring, char *mem, const slot_set *w, uint64_t slot, size_t batch,
                       double write_per_read, double seconds, uint64_t seed, io_side *o)
{
    memset(o, 0, sizeof *o);
    perm_walk p;
    uint8_t *seen = calloc(w->n ? w->n : 1, 1);
    if (!seen || perm_init(&p, w->n, seed)) {
        free(seen);
        return -ENOMEM;
    }
    raw_io ios[NVME_BATCH];
    uint32_t idx[NVME_BATCH];
    if (batch < 1 || batch > NVME_BATCH)
        batch = NVME_BATCH;
    const size_t k = w->n < batch ? w->n : batch;
    const uint64_t limit = (uint64_t)(seconds * 1e9);
    int e = 0;
    while (k && o->ns < limit) {
        for (size_t i = 0; i < k; i++) {
            idx[i] = perm_next(&p);
            ios[i] = (raw_io){mem + i * slot, UNIT + w->slot[idx[i]] * slot, (uint32_t)slot};
        }
        uint64_t t0 = bench_now_ns();
        e = raw_uring_run(ring, 0, ios, k);
        uint64_t t1 = bench_now_ns();
        if (e < 0)
            break;
        o->ns += t1 - t0;
        for (size_t i = 0; i < k; i++) {
            o->verified += slot_header_ok((unsigned char *)ios[i].buf, w->slot[idx[i]],
                                          &w->key[idx[i]]);
            o->distinct += !seen[idx[i]];
            seen[idx[i]] = 1;
        }
        o->calls++;
        o->blocks += k;
        o->slot_reads += k;
        if (write_per_read > 0) {
            double want = llround((double)o->slot_reads * write_per_read) - (double)o->slot_writes;
            size_t m = want <= 0 ? 0 : want >= (double)k ? k : (size_t)want;
            if (m) {
                t0 = bench_now_ns();
                e = raw_uring_run(ring, 1, ios, m);
                t1 = bench_now_ns();
                if (e < 0)
                    break;
                o->ns += t1 - t0;
                o->slot_writes += m;
            }
        }
    }
    free(seen);
    free(p.v);
    return e;
}

/* Library gets of w's keys, NVME_BATCH per call. Without promote: for about
 * `seconds` of calls, over and over. With promote: each key once (a promoted
 * block no longer sits only in NVMe), skipping keys that left NVMe meanwhile
 * (demotions of the promotions' DRAM victims may evict them). */
static int lib_batches(kvt_store *s, char *buf, uint64_t bb, const slot_set *w, int promote,
                       double seconds, uint64_t seed, io_side *o)
{
    memset(o, 0, sizeof *o);
    perm_walk p;
    if (perm_init(&p, w->n, seed))
        return -ENOMEM;
    kvt_key keys[NVME_BATCH];
    void *ptrs[NVME_BATCH];
    for (size_t i = 0; i < NVME_BATCH; i++)
        ptrs[i] = buf + i * bb;
    kvt_io_opts opt = {.size = sizeof opt, .flags = promote ? 0 : KVT_IO_NO_PROMOTE};
    const uint64_t limit = (uint64_t)(seconds * 1e9);
    uint64_t r0 = bench_stat(s, "nvme.reads"), w0 = bench_stat(s, "nvme.writes");
    size_t used = 0;
    int rc = 0;
    while (w->n && o->ns < limit && (!promote || used < w->n)) {
        size_t k = 0;
        while (k < NVME_BATCH && (!promote || used < w->n)) {
            uint32_t i = perm_next(&p);
            used++;
            uint8_t tier = KVT_TIER_NONE;
            if (promote && (kvt_lookup(s, &w->key[i], 1, &tier, 0) != 1 || tier != kvt_store_tier_find(s, "nvme")))
                continue;
            keys[k++] = w->key[i];
            if (!promote && k == w->n)
                break;
        }
        if (!k)
            break;
        uint64_t t0 = bench_now_ns();
        int got = kvt_get(s, keys, k, ptrs, &opt, NULL);
        uint64_t t1 = bench_now_ns();
        if (got < 0) {
            rc = got;
            break;
        }
        o->ns += t1 - t0;
        o->calls++;
        o->blocks += k;
        o->verified += (uint64_t)got;
    }
    o->slot_reads = bench_stat(s, "nvme.reads") - r0;
    o->slot_writes = bench_stat(s, "nvme.writes") - w0;
    free(p.v);
    return rc;
}

typedef struct nvme_job {
    nvme_rows *rows;
    uint64_t seed;
} nvme_job;

static int nvme_rows_fail(nvme_rows *n, const char *what, int e)
{
    snprintf(n->why, sizeof n->why, "%s: %s", what, strerror(e < 0 ? -e : e));
    return 0; /* the run goes on without the rows */
}

/* swarm_run's at_end hook. */
static int measure_nvme_rows(kvt_store *s, const swarm_cfg *c, swarm_result *r, void *user)
{
    nvme_job *job = user;
    nvme_rows *n = job->rows;
    const uint64_t slot = r->nvme_slot_bytes, bb = c->block_bytes;
    n->slots = r->nvme_blocks;
    n->slot_bytes = slot;
    if (!r->nvme_path[0] || !slot)
        return nvme_rows_fail(n, "no NVMe tier", ENOENT);
    int fd = open(r->nvme_path, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (fd < 0)
        return nvme_rows_fail(n, "open the store's file", errno);
    raw_uring *ring = NULL;
    char *mem = NULL, *buf = bench_alloc(NVME_BATCH * bb);
    slot_set w = {0}, w2 = {0};
    int e = -ENOMEM;
    const char *what = "memory";
    if (!buf || !(mem = bench_alloc(NVME_BATCH * slot)))
        goto out;
    what = "io_uring ring";
    if ((e = raw_uring_new(fd, NVME_QD, NULL, 0, &ring)) < 0)
        goto out;
    bench_progress("default: the NVMe rows (slots written, gets, raw loops)");
    what = "scan the slot headers";
    if ((e = scan_slots(ring, mem, n->slots, slot, s, &w, &n->written)) < 0)
        goto out;
    n->resident = w.n;
    what = "raw reads";
    if ((e = raw_batches(ring, mem, &w, slot, NVME_BATCH, 0, n->seconds, job->seed, &n->raw_read)) < 0)
        goto out;
    what = "kvt_get";
    if ((e = lib_batches(s, buf, bb, &w, 0, n->seconds, job->seed, &n->get)) < 0)
        goto out;
    if ((e = lib_batches(s, buf, bb, &w, 1, n->seconds, job->seed + 1, &n->get_promote)) < 0)
        goto out;
    /* The blocks in NVMe now; the raw side writes as many slots per slot
     * read as the promoting gets did. */
    uint64_t written2 = 0;
    what = "scan the slot headers";
    if ((e = scan_slots(ring, mem, n->slots, slot, s, &w2, &written2)) < 0)
        goto out;
    n->resident_after = w2.n;
    double wpr = n->get_promote.slot_reads
                     ? (double)n->get_promote.slot_writes / (double)n->get_promote.slot_reads
                     : 0;
    /* And as many blocks per batch as the promoting gets had per call (the
     * last call, and keys that left NVMe, make some calls short). */
    const io_side *gp = &n->get_promote;
    size_t per_call = gp->calls ? (size_t)llround((double)gp->blocks / (double)gp->calls) : 0;
    what = "raw reads + writes";
    if ((e = raw_batches(ring, mem, &w2, slot, per_call, wpr, n->seconds, job->seed + 2, &n->raw_rw)) < 0)
        goto out;
    n->ok = w.n > 0 && w2.n > 0;
    if (w.n && n->get.ns && n->raw_read.ns && n->raw_read.blocks) {
        /* The TTFT model's NVMe efficiency and the measured profile's rate. */
        double lib = (double)n->get.blocks / (double)n->get.ns;
        double raw = (double)n->raw_read.blocks / (double)n->raw_read.ns;
        r->nvme_lib_vs_raw = lib / raw;
        r->nvme_raw_gbps = raw * (double)slot;
    }
    if (!n->ok)
        snprintf(n->why, sizeof n->why, "no blocks in NVMe at the end of the workload");
    e = 0;
out:
    if (e < 0)
        nvme_rows_fail(n, what, e);
    bench_progress_done();
    raw_uring_free(ring);
    close(fd);
    bench_free(mem, NVME_BATCH * slot);
    bench_free(buf, NVME_BATCH * bb);
    slot_set_free(&w);
    slot_set_free(&w2);
    return 0;
}

/* --------------------------------------------------------------- reports */

static double ratio_of(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0;
}

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

static void text_ceilings(const swarm_cfg *c, const swarm_result *r, const nvme_rows *n)
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

static void json_ceilings(bench_json *j, const swarm_cfg *c, const swarm_result *r,
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

static void text_ttl(const ttl_row *rows, int n)
{
    printf("\n  idle TTL vs hit ratio (the same workload; TTL rows rerun side by side with "
           "%d-byte blocks):\n",
           TTL_BLOCK_BYTES);
    static const char *const head[] = {"DRAM TTL", "NVMe TTL", "hit ratio", "from DRAM",
                                       "from NVMe", "prefill avoided", "expired", "run"};
    bench_table t;
    bench_table_init(&t, 8, head, "rrrrrrrl");
    for (int i = 0; i < n; i++) {
        const ttl_row *w = &rows[i];
        char d[32], v[32];
        ttl_name(w->dram_ttl_s, d, sizeof d);
        ttl_name(w->nvme_ttl_s, v, sizeof v);
        bench_table_cell(&t, "%s", d);
        bench_table_cell(&t, "%s", v);
        const swarm_result *r = &w->r;
        bench_table_cell(&t, "%.1f%%", 100 * ratio_of(r->hit_blocks, r->blocks));
        bench_table_cell(&t, "%.1f%%", 100 * ratio_of(r->hit_dram, r->blocks));
        bench_table_cell(&t, "%.1f%%", 100 * ratio_of(r->hit_nvme, r->blocks));
        bench_table_cell(&t, "%.1f%%", 100 * ratio_of(r->hit_tokens, r->prompt_tokens));
        bench_table_cell(&t, "%" PRIu64, r->dram_expirations + r->nvme_expirations);
        if (w->main_run)
            bench_table_cell(&t, "the main run");
        else
            bench_table_cell(&t, "%.1f s", r->wall_s);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
}

/* ------------------------------------------------------ the story: knees */

static int run_ramps(const swarm_cfg *c, const swarm_result *r, double step_s, double budget_s,
                     ramp_job *job)
{
    swarm_cfg t = *c;
    t.block_bytes = TTL_BLOCK_BYTES; /* hits only: the model loads the real bytes */
    t.pairs = 0;
    t.keep_file = 0;
    t.at_end = NULL;
    t.label = NULL;
    t.dram_bytes = r->dram_blocks * TTL_BLOCK_BYTES;
    /* The main run's profile, its measured fields filled, and efficiencies. */
    t.prof = r->prof;
    t.dram_eff = r->rates.dram_eff;
    t.nvme_eff = r->rates.nvme_eff;
    snprintf(t.dram_eff_src, sizeof t.dram_eff_src, "the main run's: %.140s", r->dram_eff_src);
    snprintf(t.nvme_eff_src, sizeof t.nvme_eff_src, "the main run's: %.140s", r->nvme_eff_src);
    uint64_t slot = 0;
    if (!r->nvme_blocks || kvt_slot_bytes("nvme", TTL_BLOCK_BYTES, &slot) < 0) {
        fprintf(stderr, "kvtier-bench: the ramps need the main run's NVMe tier\n");
        return BENCH_FAILED;
    }
    swarm_ramp_opts o = {.step_s = step_s,
                         .warm_s = step_s / 6,
                         .start = 2,
                         .max = 1024,
                         .growth = 2,
                         .resolution = 0.1,
                         .max_steps = 10,
                         .wall_budget_s = budget_s};
    for (int i = 0; i < 2; i++) {
        job[i].what = i ? "DRAM + NVMe" : "DRAM alone";
        job[i].c = t;
        job[i].c.wl.duration_s = step_s;
        job[i].c.nvme_bytes = i ? r->nvme_blocks * slot : 0;
        job[i].c.ramp = 1;
        job[i].o = o;
    }
    pthread_t th[2];
    int started[2];
    bench_progress("default: two ramps side by side (DRAM alone, DRAM + NVMe; 64-byte blocks)");
    for (int i = 0; i < 2; i++) {
        started[i] = pthread_create(&th[i], NULL, ramp_thread, &job[i]) == 0;
        if (!started[i])
            ramp_thread(&job[i]);
    }
    for (int i = 0; i < 2; i++)
        if (started[i])
            pthread_join(th[i], NULL);
    bench_progress_done();
    return job[0].rc ? job[0].rc : job[1].rc;
}

/* "12", ">= 1024" (exhausted) or "0" */
static const char *knee_text(const knee_result *k, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%u", k->exhausted ? ">= " : "", k->knee);
    return buf;
}

static void text_story(const swarm_cfg *c, const swarm_result *r, const nvme_rows *n,
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

static void json_story(bench_json *j, const swarm_cfg *c, const swarm_result *r,
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

/* ----------------------------------------------------------- the command */

int bench_default(int argc, char **argv)
{
    int quick = 0, json = 0, no_ttl = 0, no_ramp = 0;
    int64_t seed = 1, agents = 0;
    const char *dir = NULL, *duration = NULL, *ramp_step = NULL;
    const char *ptexts[16] = {0};
    barg spec[32] = {
        {"quick", BARG_BOOL, &quick, "a seconds-long version for tests (3 agents, 20 virtual min, tiny blocks)"},
        {"agents", BARG_INT, &agents, "agents (default 6; --quick 3)"},
        {"duration", BARG_STR, &duration, "virtual time, s (or 30m, 2h; default 2h; --quick 20m)"},
        {"seed", BARG_INT, &seed, "workload seed (default 1)"},
        {"dir", BARG_STR, &dir, "directory for the NVMe file, removed at exit (default $TMPDIR or /tmp)"},
        {"no-ttl", BARG_BOOL, &no_ttl, "skip the TTL reruns"},
        {"no-ramp", BARG_BOOL, &no_ramp, "skip the two ramps (DRAM alone, DRAM + NVMe) and the answer"},
        {"ramp-step", BARG_STR, &ramp_step, "each ramp step's virtual time (default 1h; --quick 20m)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of tables"},
    };
    int nspec = 0;
    while (spec[nspec].name)
        nspec++;
    nspec = swarm_profile_flags(spec, nspec, ptexts);
    spec[nspec] = (barg){0};
    /* argv[0] is the program when no command was given: parse from argv[1]. */
    int rc = bench_parse_args("default", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    const dflt_size *z = quick ? &quick_size : &full_size;
    swarm_cfg c;
    memset(&c, 0, sizeof c);
    swarm_params_default(&c.wl);
    c.wl.agents = z->agents;
    c.wl.block_tokens = z->block_tokens;
    c.wl.duration_s = z->duration_s;
    const char *bad = NULL;
    if (agents < 0 || agents > 100000)
        bad = "--agents must be 1..100000";
    else if (seed < 0)
        bad = "--seed must be >= 0";
    else if (duration && (swarm_parse_seconds(duration, &c.wl.duration_s) || !(c.wl.duration_s > 0)))
        bad = "--duration wants seconds above 0 (or 30m, 2h)";
    double step_s = quick ? 1200 : 3600;
    if (!bad && ramp_step && (swarm_parse_seconds(ramp_step, &step_s) || !(step_s > 0)))
        bad = "--ramp-step wants seconds above 0 (or 30m, 2h)";
    if (bad) {
        fprintf(stderr, "kvtier-bench: %s\nTry 'kvtier-bench default --help'.\n",
                bad);
        return BENCH_USAGE;
    }
    if (agents)
        c.wl.agents = (uint32_t)agents;
    c.wl.seed = (uint64_t)seed;
    const swarm_model *mdl = swarm_find_model("llama-3.1-8b");
    c.model = mdl->name;
    c.bytes_per_token = mdl->bytes_per_token;
    double b = (double)c.wl.block_tokens * (double)c.bytes_per_token * z->scale;
    c.block_bytes = (uint64_t)b / 64 * 64;
    c.dram_bytes = z->dram_bytes;
    c.nvme_bytes = z->nvme_bytes;
    c.dir = dir;
    c.lease_ms = 30000;
    c.buffer_bytes = 256u << 20;
    c.pairs = 1;
    c.keep_file = 1;
    c.slo_ms = 2000;
    char msg[200];
    if (swarm_profile_resolve(ptexts, &c, msg, sizeof msg)) {
        fprintf(stderr, "kvtier-bench: %s\nTry 'kvtier-bench default --help'.\n", msg);
        return BENCH_USAGE;
    }
    c.label = "default: swarm";

    uint64_t t0 = bench_now_ns();
    swarm_result *r = calloc(1, sizeof *r);
    ttl_row *rows = calloc(8, sizeof *rows);
    ramp_job *ramps = calloc(2, sizeof *ramps);
    nvme_rows nrow;
    memset(&nrow, 0, sizeof nrow);
    nrow.seconds = z->raw_s;
    nvme_job job = {&nrow, (uint64_t)seed};
    int nrows = 0;
    if (!r || !rows || !ramps) {
        fprintf(stderr, "kvtier-bench: out of memory\n");
        free(r);
        free(rows);
        free(ramps);
        return BENCH_FAILED;
    }
    c.at_end = measure_nvme_rows;
    c.at_end_user = &job;
    rc = swarm_run(&c, r);
    if (rc)
        goto out;
    if (r->nvme_path[0]) {
        swarm_temp_remove(r->nvme_temp);
        if (r->nvme_temp < 0)
            unlink(r->nvme_path);
    }
    if (!no_ttl) {
        /* No TTL is the main run itself: the hits depend on the workload and
         * the capacities in blocks, not on the bytes in a block. */
        static const double ttls[][2] = {{60, 60}, {300, 300}, {3600, 3600}, {300, 3600}};
        enum { NT = sizeof ttls / sizeof ttls[0] };
        ttl_row *w = &rows[nrows++];
        w->main_run = 1;
        w->r = *r;
        swarm_cfg t = c;
        t.block_bytes = TTL_BLOCK_BYTES;
        t.pairs = 0;
        t.keep_file = 0;
        t.at_end = NULL; /* the NVMe rows are the main run's */
        t.nvme_bytes = 0;
        t.label = NULL; /* threads: no progress line of their own */
        /* The same capacities in blocks as the main run. */
        t.dram_bytes = r->dram_blocks * TTL_BLOCK_BYTES;
        uint64_t slot = 0;
        if (r->nvme_blocks && kvt_slot_bytes("nvme", TTL_BLOCK_BYTES, &slot) == 0)
            t.nvme_bytes = r->nvme_blocks * slot;
        pthread_t th[NT];
        int started[NT] = {0};
        bench_progress("default: %d TTL reruns side by side (64-byte blocks)", NT);
        for (int i = 0; i < NT; i++) {
            w = &rows[nrows++];
            w->dram_ttl_s = ttls[i][0];
            w->nvme_ttl_s = ttls[i][1];
            w->c = t;
            w->c.dram_ttl_ms = (uint64_t)(w->dram_ttl_s * 1e3);
            w->c.nvme_ttl_ms = (uint64_t)(w->nvme_ttl_s * 1e3);
            started[i] = pthread_create(&th[i], NULL, ttl_thread, w) == 0;
            if (!started[i])
                ttl_thread(w); /* no thread: run it here */
        }
        for (int i = 0; i < NT; i++)
            if (started[i])
                pthread_join(th[i], NULL);
        bench_progress_done();
        for (int i = 0; i < nrows; i++)
            if (rows[i].rc) {
                rc = rows[i].rc;
                goto out;
            }
    }
    if (!no_ramp) {
        double left = RUN_WALL_S - (double)(bench_now_ns() - t0) / 1e9;
        rc = run_ramps(&c, r, step_s,
                       left < RAMP_WALL_MIN_S   ? RAMP_WALL_MIN_S
                       : left > RAMP_WALL_MAX_S ? RAMP_WALL_MAX_S
                                                : left,
                       ramps);
        if (rc)
            goto out;
    }
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "default");
        bench_json_bool(&j, "quick", quick);
        swarm_json_config(&j, &c, r);
        swarm_json_results(&j, &c, r);
        json_ceilings(&j, &c, r, &nrow);
        bench_json_object(&j, "ttl");
        bench_json_u64(&j, "block_bytes", TTL_BLOCK_BYTES);
        bench_json_array(&j, "runs");
        for (int i = 0; i < nrows; i++) {
            const swarm_result *w = &rows[i].r;
            bench_json_object(&j, NULL);
            bench_json_num(&j, "dram_ttl_s", rows[i].dram_ttl_s);
            bench_json_num(&j, "nvme_ttl_s", rows[i].nvme_ttl_s);
            bench_json_str(&j, "source", rows[i].main_run ? "main run" : "rerun");
            bench_json_num(&j, "hit_ratio", ratio_of(w->hit_blocks, w->blocks));
            bench_json_num(&j, "hit_ratio_dram", ratio_of(w->hit_dram, w->blocks));
            bench_json_num(&j, "hit_ratio_nvme", ratio_of(w->hit_nvme, w->blocks));
            bench_json_num(&j, "prefill_avoided_ratio", ratio_of(w->hit_tokens, w->prompt_tokens));
            bench_json_u64(&j, "dram_expirations", w->dram_expirations);
            bench_json_u64(&j, "nvme_expirations", w->nvme_expirations);
            bench_json_num(&j, "wall_s", w->wall_s);
            bench_json_end_object(&j);
        }
        bench_json_end_array(&j);
        bench_json_end_object(&j);
        if (!no_ramp)
            json_story(&j, &c, r, &nrow, ramps);
        bench_json_num(&j, "total_wall_s", wall);
        bench_json_end_object(&j);
    } else {
        bench_print_header(stdout, "agent swarm through DRAM + NVMe (the default run)");
        swarm_text_workload(&c, r);
        swarm_text_results(&c, r);
        text_ceilings(&c, r, &nrow);
        if (nrows)
            text_ttl(rows, nrows);
        if (!no_ramp)
            text_story(&c, r, &nrow, ramps);
        printf("\n  total        %.1f s wall; GB = 1e9 bytes; TTFT is a model (docs/bench.md); "
               "%s\n",
               wall, quick ? "--quick sizes" : "kvtier-bench swarm --help for every knob");
    }
out:
    if (r->nvme_path[0]) {
        swarm_temp_remove(r->nvme_temp);
        if (r->nvme_temp < 0)
            unlink(r->nvme_path);
    }
    free(r);
    free(rows);
    free(ramps);
    return rc;
}
