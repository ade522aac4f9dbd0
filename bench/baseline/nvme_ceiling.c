/* nvme_ceiling.c — the default run's NVMe rows: kvtier gets next to raw O_DIRECT reads (and reads + writes) of the slots kvtier wrote. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"
#include "raw_uring.h"
#include "nvme_ceiling.h"


typedef struct slot_set {
    uint64_t *slot; /* slot indices, ascending */
    kvt_key *key;   /* the key each one's header names */
    size_t n;
} slot_set;

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
            if (s && (kvt_lookup(s, &key, 1, &tier, 0) != 1 ||
                      tier != bench_tier_id(s, BENCH_NVME)))
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
            if (promote && (kvt_lookup(s, &w->key[i], 1, &tier, 0) != 1 ||
                            tier != bench_tier_id(s, BENCH_NVME)))
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

static int nvme_rows_fail(nvme_rows *n, const char *what, int e)
{
    snprintf(n->why, sizeof n->why, "%s: %s", what, strerror(e < 0 ? -e : e));
    return 0; /* the run goes on without the rows */
}

/* swarm_run's at_end hook. */
int measure_nvme_rows(kvt_store *s, const swarm_cfg *c, swarm_result *r, void *user)
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

