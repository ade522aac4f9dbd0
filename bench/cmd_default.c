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
#include "raw_uring.h"
#include "swarm.h"

static const char summary[] =
    "The default run: a synthetic agent swarm (the `swarm` workload, docs/bench.md)\n"
    "  through a DRAM tier and an NVMe file in a temporary directory (removed at exit),\n"
    "  on the store's manual clock. Reports hit ratios per tier, prefill avoided, the\n"
    "  TTFT model, put/get/lookup latency, each tier's rate next to its ceiling measured\n"
    "  in the same run (memcpy; a raw io_uring O_DIRECT loop on the same file), and the\n"
    "  hit ratio under idle TTLs of 1 min / 5 min / 1 h (fast reruns, tiny blocks).";

/* The main phase's size: ~30-60 s on a 2-vCPU VM, < 2 GiB of memory, a
 * 2 GiB NVMe file. --quick: seconds, for the smoke test. */
typedef struct dflt_size {
    uint32_t agents, block_tokens;
    double duration_s, scale, raw_s;
    uint64_t dram_bytes, nvme_bytes;
} dflt_size;

static const dflt_size full_size = {6, 256, 7200, 1.0 / 512, 0.5, 64u << 20, 2ull << 30};
static const dflt_size quick_size = {3, 1024, 1200, 1.0 / 4096, 0.1, 4u << 20, 64u << 20};

#define TTL_BLOCK_BYTES 64 /* hit ratios only: the smallest block the tiers take */

typedef struct raw_result {
    int ok;
    unsigned qd;
    double read_gbps, write_gbps, read_iops, write_iops;
} raw_result;

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

/* ------------------------------------------------ the raw io_uring ceiling */

/* What the device gives a plain program (raw_uring.c, the NVMe micro
 * benchmark's baseline): qd O_DIRECT transfers of whole slots in flight, at
 * random slot offsets of the store's own file (closed by now: scratch),
 * through registered buffers as the tier's arena is, for about `seconds`.
 * Returns 0, or -1 after saying why. */
static int raw_loop(const char *path, uint64_t nslots, uint64_t slot, unsigned qd, int write,
                    double seconds, double *gbps, double *iops)
{
    int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "kvtier-bench: raw loop: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* Batches long enough that draining the queue at each end costs little. */
    const size_t batch = qd * 32 > 64 ? (size_t)qd * 32 : 64;
    void *mem = NULL;
    raw_io *ios = malloc(batch * sizeof *ios);
    raw_uring *ring = NULL;
    int rc = -1;
    if (!ios || posix_memalign(&mem, 4096, (size_t)qd * slot) != 0) {
        mem = NULL;
        fprintf(stderr, "kvtier-bench: raw loop: out of memory\n");
        goto out;
    }
    bench_fill(mem, (size_t)qd * slot, 7);
    struct iovec reg = {mem, (size_t)qd * slot};
    int e = raw_uring_new(fd, qd, &reg, 1, &ring);
    if (e < 0) {
        fprintf(stderr, "kvtier-bench: raw loop: io_uring ring: %s\n", strerror(-e));
        goto out;
    }
    uint64_t rnd = bench_rand_seed(qd * 2u + (unsigned)write);
    uint64_t done = 0, t0 = bench_now_ns(), elapsed = 0;
    const uint64_t limit = (uint64_t)(seconds * 1e9);
    while (elapsed < limit) {
        for (size_t i = 0; i < batch; i++)
            ios[i] = (raw_io){(char *)mem + (i % qd) * slot,
                              4096 + (bench_rand(&rnd) % nslots) * slot, (uint32_t)slot};
        e = raw_uring_run(ring, write, ios, batch);
        if (e < 0) {
            fprintf(stderr, "kvtier-bench: raw loop: %s: %s\n", write ? "write" : "read",
                    strerror(-e));
            goto out;
        }
        done += batch;
        elapsed = bench_now_ns() - t0;
    }
    *gbps = (double)done * (double)slot / (double)elapsed;
    *iops = (double)done * 1e9 / (double)elapsed;
    rc = 0;
out:
    raw_uring_free(ring);
    free(mem);
    free(ios);
    close(fd);
    return rc;
}

static void raw_ceiling(const char *path, uint64_t nslots, uint64_t slot, unsigned qd,
                        double seconds, raw_result *out)
{
    memset(out, 0, sizeof *out);
    out->qd = qd;
#if KVT_BENCH_URING
    bench_progress("default: raw io_uring O_DIRECT loop, queue depth %u", qd);
    out->ok = raw_loop(path, nslots, slot, qd, 0, seconds, &out->read_gbps, &out->read_iops) == 0 &&
              raw_loop(path, nslots, slot, qd, 1, seconds, &out->write_gbps, &out->write_iops) == 0;
    bench_progress_done();
#else
    (void)path, (void)nslots, (void)slot, (void)seconds, (void)raw_loop;
#endif
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

static double blocks_per_s(const swarm_op *o)
{
    return o->ns ? (double)o->blocks * 1e9 / (double)o->ns : 0;
}

static void text_ceilings(const swarm_cfg *c, const swarm_result *r, const raw_result *raw)
{
    char a[32];
    printf("\n  tier rates next to their ceilings, measured in this run:\n");
    static const char *const head[] = {"path", "library", "ceiling", "library/ceiling", "how"};
    bench_table t;
    bench_table_init(&t, 5, head, "lrrrl");
    bench_table_cell(&t, "DRAM -> engine (get)");
    bench_table_cell(&t, "%.2f GB/s", gbps(r->get_dram.bytes, r->get_dram.ns));
    bench_table_cell(&t, "%.2f GB/s", gbps(r->get_dram.base_bytes, r->get_dram.base_ns));
    bench_table_cell(&t, "%.0f%% (%.0f-%.0f)", 100 * r->get_dram.ratio, 100 * r->get_dram.ratio_p10,
                     100 * r->get_dram.ratio_p90);
    bench_table_cell(&t, "memcpy of the same blocks, paired per call");
    bench_table_cell(&t, "engine -> DRAM (put)");
    bench_table_cell(&t, "%.2f GB/s", gbps(r->put.bytes, r->put.ns));
    bench_table_cell(&t, "%.2f GB/s", gbps(r->put.base_bytes, r->put.base_ns));
    bench_table_cell(&t, "%.0f%% (%.0f-%.0f)", 100 * r->put.ratio, 100 * r->put.ratio_p10,
                     100 * r->put.ratio_p90);
    bench_table_cell(&t, "memcpy, paired; puts include demotions to NVMe");
    if (r->nvme_blocks && raw->ok) {
        double lib_rd = blocks_per_s(&r->get_nvme);
        bench_table_cell(&t, "NVMe -> engine (get)");
        bench_table_cell(&t, "%.0f blocks/s", lib_rd);
        bench_table_cell(&t, "%.0f IO/s", raw->read_iops);
        bench_table_cell(&t, "%.0f%%", raw->read_iops > 0 ? 100 * lib_rd / raw->read_iops : 0);
        bench_table_cell(&t, "raw read QD%u of %s slots; get includes promotion", raw->qd,
                         bench_fmt_bytes(r->nvme_slot_bytes, a, sizeof a));
        double lib_wr = r->nvme_demote_put_ns
                            ? (double)r->nvme_demote_bytes / (double)c->block_bytes * 1e9 /
                                  (double)r->nvme_demote_put_ns
                            : 0;
        bench_table_cell(&t, "DRAM -> NVMe (demotion)");
        bench_table_cell(&t, "%.0f blocks/s", lib_wr);
        bench_table_cell(&t, "%.0f IO/s", raw->write_iops);
        bench_table_cell(&t, "%.0f%%", raw->write_iops > 0 ? 100 * lib_wr / raw->write_iops : 0);
        bench_table_cell(&t, "raw write QD%u; library: demoted blocks / time of puts that demoted",
                         raw->qd);
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
    if (r->nvme_blocks && raw->ok)
        printf("  raw loop: %.2f GB/s read, %.2f GB/s write at QD%u (%.2f / %.2f GB/s at QD1), "
               "whole slots\n",
               raw[0].read_gbps, raw[0].write_gbps, raw[0].qd, raw[1].read_gbps,
               raw[1].write_gbps);
    else if (r->nvme_blocks)
        printf("  (no raw io_uring ceiling: this build has no liburing, or the loop failed)\n");
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

static void json_raw(bench_json *j, const char *key, const raw_result *raw)
{
    bench_json_object(j, key);
    bench_json_u64(j, "queue_depth", raw->qd);
    bench_json_num(j, "read_gb_per_s", raw->ok ? raw->read_gbps : NAN);
    bench_json_num(j, "write_gb_per_s", raw->ok ? raw->write_gbps : NAN);
    bench_json_num(j, "read_iops", raw->ok ? raw->read_iops : NAN);
    bench_json_num(j, "write_iops", raw->ok ? raw->write_iops : NAN);
    bench_json_end_object(j);
}

/* ----------------------------------------------------------- the command */

int bench_default(int argc, char **argv)
{
    int quick = 0, json = 0, no_ttl = 0;
    int64_t seed = 1, agents = 0;
    const char *dir = NULL, *duration = NULL;
    const barg spec[] = {
        {"quick", BARG_BOOL, &quick, "a seconds-long version for tests (3 agents, 20 virtual min, tiny blocks)"},
        {"agents", BARG_INT, &agents, "agents (default 6; --quick 3)"},
        {"duration", BARG_STR, &duration, "virtual time, s (or 30m, 2h; default 2h; --quick 20m)"},
        {"seed", BARG_INT, &seed, "workload seed (default 1)"},
        {"dir", BARG_STR, &dir, "directory for the NVMe file, removed at exit (default $TMPDIR or /tmp)"},
        {"no-ttl", BARG_BOOL, &no_ttl, "skip the TTL reruns"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of tables"},
        {0},
    };
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
    c.gpus = 1;
    c.prefill_tps = mdl->prefill_tps;
    c.slo_ms = 2000;
    c.label = "default: swarm";

    uint64_t t0 = bench_now_ns();
    swarm_result *r = calloc(1, sizeof *r);
    ttl_row *rows = calloc(8, sizeof *rows);
    raw_result raw[2];
    memset(raw, 0, sizeof raw);
    int nrows = 0;
    if (!r || !rows) {
        fprintf(stderr, "kvtier-bench: out of memory\n");
        free(r);
        free(rows);
        return BENCH_FAILED;
    }
    rc = swarm_run(&c, r);
    if (rc)
        goto out;
    if (r->nvme_path[0]) {
        /* The library's default queue depth, and one I/O at a time: the
         * depth a block-by-block demotion runs at. */
        raw_ceiling(r->nvme_path, r->nvme_blocks, r->nvme_slot_bytes, 64, z->raw_s, &raw[0]);
        raw_ceiling(r->nvme_path, r->nvme_blocks, r->nvme_slot_bytes, 1, z->raw_s, &raw[1]);
        raw[0].ok = raw[0].ok && raw[1].ok;
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
        t.nvme_bytes = 0;
        t.label = NULL; /* threads: no progress line of their own */
        /* The same capacities in blocks as the main run. */
        t.dram_bytes = r->dram_blocks * TTL_BLOCK_BYTES;
        uint64_t slot = 0;
        if (r->nvme_blocks && kvt_nvme_slot_bytes(TTL_BLOCK_BYTES, &slot) == 0)
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
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "default");
        bench_json_bool(&j, "quick", quick);
        swarm_json_config(&j, &c, r);
        swarm_json_results(&j, &c, r);
        bench_json_object(&j, "ceilings");
        bench_json_num(&j, "dram_get_memcpy_gb_per_s", gbps(r->get_dram.base_bytes, r->get_dram.base_ns));
        bench_json_num(&j, "dram_put_memcpy_gb_per_s", gbps(r->put.base_bytes, r->put.base_ns));
        bench_json_u64(&j, "nvme_slot_bytes", r->nvme_slot_bytes);
        json_raw(&j, "nvme_raw", &raw[0]);
        json_raw(&j, "nvme_raw_qd1", &raw[1]);
        bench_json_num(&j, "nvme_get_blocks_per_s", blocks_per_s(&r->get_nvme));
        bench_json_num(&j, "nvme_demote_blocks_per_s",
                       r->nvme_demote_put_ns ? (double)r->nvme_demote_bytes /
                                                   (double)c.block_bytes * 1e9 /
                                                   (double)r->nvme_demote_put_ns
                                             : 0);
        bench_json_end_object(&j);
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
        bench_json_num(&j, "total_wall_s", wall);
        bench_json_end_object(&j);
    } else {
        bench_print_header(stdout, "agent swarm through DRAM + NVMe (the default run)");
        swarm_text_workload(&c, r);
        swarm_text_results(&c, r);
        text_ceilings(&c, r, raw);
        if (nrows)
            text_ttl(rows, nrows);
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
    return rc;
}
