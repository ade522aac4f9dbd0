/* swarm_multi.c — the parent of a multi-process swarm: forks the engines (and the shared server), drives the epoch barrier and the server's clock, merges the engines' requests into one report. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench.h"
#include "swarm_engine.h"

#define SM_MAX_PROCS 64

const char *sm_store_name(sm_store s)
{
    static const char *const names[SM_STORES] = {
        [SM_SHARED] = "shared",     [SM_PRIVATE] = "private",        [SM_NODE_DRAM] = "dram",
        [SM_NODE_NVME] = "dram+nvme", [SM_NODE_CLUSTER] = "dram+cluster",
    };
    return (unsigned)s < SM_STORES ? names[s] : "?";
}

/* ------------------------------------------------- the shared server */

/* The server child: opens the store of the whole capacity, serves it, and
 * then sets its clock to each epoch's start when the parent says (reading
 * uint64_t times from ctl; SM_DONE stops it), answering each with an int32. */
static int server_main(const swarm_cfg *c, const sm_opts *o, const char *socket,
                       const char *nvme_path, int ctl, int ack)
{
    kvt_store *s = NULL;
    kvt_server *srv = NULL;
    int32_t rc = sm_open_store(c, o, nvme_path, NULL, &s);
    if (!rc && kvt_serve(s, socket, NULL, &srv) < 0) {
        fprintf(stderr, "kvtier-bench swarm: kvt_serve %s: %s\n", socket, kvt_last_error());
        rc = BENCH_FAILED;
    }
    if (sm_write_all(ack, &rc, sizeof rc) || rc) {
        kvt_close(s);
        return rc ? rc : BENCH_FAILED;
    }
    uint64_t t;
    while (sm_read_all(ctl, &t, sizeof t) == 0 && t != SM_DONE) {
        /* Every client is between epochs here (the parent's barrier), so
         * the clock moves while no request is in flight. */
        int32_t r = kvt_clock_set(s, t) < 0 ? BENCH_FAILED : BENCH_OK;
        if (r)
            fprintf(stderr, "kvtier-bench swarm: server kvt_clock_set: %s\n", kvt_last_error());
        if (sm_write_all(ack, &r, sizeof r))
            break;
    }
    kvt_serve_stop(srv);
    return kvt_close(s) < 0 ? BENCH_FAILED : BENCH_OK;
}

/* --------------------------------------------------------- the parent */

typedef struct proc {
    pid_t pid;
    int want, go;  /* parent's ends of the barrier pipes */
    int out;       /* the result file */
    sm_want next;  /* the step it waits for (SM_DONE: finished) */
} proc;

typedef struct multi {
    const swarm_cfg *c;
    const sm_opts *o;
    proc p[SM_MAX_PROCS];
    uint32_t np;
    pid_t server;
    int srv_ctl, srv_ack;
    char socket[108], dir_run[4096], nvme[SM_MAX_PROCS + 1][4096];
    int made_dir;
} multi;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A fresh child closes every descriptor of the others (so a dead engine's
 * pipe reads as EOF in the parent) before running fn. */
static void close_others(multi *m, uint32_t keep)
{
    for (uint32_t i = 0; i < m->np; i++)
        if (i != keep) {
            close_fd(&m->p[i].want);
            close_fd(&m->p[i].go);
            close_fd(&m->p[i].out);
        }
    close_fd(&m->srv_ctl);
    close_fd(&m->srv_ack);
}

static int start_server(multi *m)
{
    int ctl[2], ack[2];
    if (pipe(ctl) || pipe(ack)) {
        fprintf(stderr, "kvtier-bench swarm: pipe: %s\n", strerror(errno));
        return BENCH_FAILED;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "kvtier-bench swarm: fork: %s\n", strerror(errno));
        return BENCH_FAILED;
    }
    if (pid == 0) {
        close(ctl[1]);
        close(ack[0]);
        const char *nv = m->c->nvme_bytes ? m->nvme[SM_MAX_PROCS] : NULL;
        _exit(server_main(m->c, m->o, m->socket, nv, ctl[0], ack[1]));
    }
    close(ctl[0]);
    close(ack[1]);
    m->server = pid;
    m->srv_ctl = ctl[1];
    m->srv_ack = ack[0];
    int32_t rc;
    if (sm_read_all(m->srv_ack, &rc, sizeof rc))
        rc = BENCH_FAILED;
    return rc;
}

static int start_engine(multi *m, uint32_t i)
{
    int want[2], go[2];
    char tmpl[4200];
    snprintf(tmpl, sizeof tmpl, "%s/kvtier-bench-swarm-out-XXXXXX", swarm_dir(m->c));
    int out = mkstemp(tmpl);
    if (out < 0 || pipe(want) || pipe(go)) {
        fprintf(stderr, "kvtier-bench swarm: %s: %s\n", out < 0 ? tmpl : "pipe", strerror(errno));
        if (out >= 0)
            close(out), unlink(tmpl);
        return BENCH_FAILED;
    }
    unlink(tmpl); /* open, nameless: gone with the last descriptor */
    proc *p = &m->p[i];
    p->want = want[0];
    p->go = go[1];
    p->out = out;
    m->np = i + 1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "kvtier-bench swarm: fork: %s\n", strerror(errno));
        close(want[1]);
        close(go[0]);
        return BENCH_FAILED;
    }
    if (pid == 0) {
        close_others(m, i);
        close(want[0]);
        close(go[1]);
        sm_engine_io io = {.me = i,
                           .want_fd = want[1],
                           .go_fd = go[0],
                           .out_fd = out,
                           .socket = m->socket,
                           .nvme_path = m->c->nvme_bytes ? m->nvme[i] : NULL,
                           .cluster = m->dir_run};
        _exit(sm_engine_main(m->c, m->o, &io));
    }
    close(want[1]);
    close(go[0]);
    p->pid = pid;
    return BENCH_OK;
}

/* The barrier: the smallest step any engine waits for runs next; the
 * server's clock is set to its start first; then the engines that wait for
 * it run it (with --epoch 0 a step is one request: one engine), and each
 * says which step it needs next. */
static int drive(multi *m, sm_result *r)
{
    const uint64_t epoch_ns = (uint64_t)(m->o->epoch_s * 1e9);
    for (uint32_t i = 0; i < m->np; i++)
        if (sm_read_all(m->p[i].want, &m->p[i].next, sizeof m->p[i].next))
            m->p[i].next.step = SM_DONE; /* its result file says why */
    for (;;) {
        uint64_t e = SM_DONE, t = 0;
        for (uint32_t i = 0; i < m->np; i++)
            if (m->p[i].next.step < e)
                e = m->p[i].next.step, t = m->p[i].next.t_ns;
        if (e == SM_DONE)
            return BENCH_OK;
        r->epochs++;
        if (m->server > 0) {
            uint64_t now = epoch_ns ? e * epoch_ns : t;
            int32_t rc;
            if (sm_write_all(m->srv_ctl, &now, sizeof now) ||
                sm_read_all(m->srv_ack, &rc, sizeof rc) || rc) {
                fprintf(stderr, "kvtier-bench swarm: the server stopped\n");
                return BENCH_FAILED;
            }
        }
        int go[SM_MAX_PROCS] = {0};
        for (uint32_t i = 0; i < m->np; i++) {
            go[i] = m->p[i].next.step == e;
            if (go[i] && sm_write_all(m->p[i].go, &e, sizeof e))
                go[i] = 0, m->p[i].next.step = SM_DONE;
        }
        for (uint32_t i = 0; i < m->np; i++)
            if (go[i] && sm_read_all(m->p[i].want, &m->p[i].next, sizeof m->p[i].next))
                m->p[i].next.step = SM_DONE;
    }
}

/* ----------------------------------------------------- merging results */

static int by_time(const void *a, const void *b)
{
    const sm_rec *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->proc < y->proc ? -1 : x->proc > y->proc;
}

/* The TTFT model over recs (in time order) of one node: its ttft samples
 * appended to all, its requests within the SLO added to *within. */
static int model_node(const swarm_cfg *c, const ttft_rates *rates, double cluster_gbps,
                      const sm_rec *recs, size_t n, bench_samples *all, bench_samples *judged,
                      uint64_t *within)
{
    ttft_model tm;
    if (ttft_init(&tm, c->gpus, c->prefill_tps, c->slo_ms, 2))
        return -1;
    if (ttft_set_layout(&tm, &c->layout)) {
        ttft_free(&tm);
        return -1;
    }
    const uint32_t tp = c->layout.tp ? c->layout.tp : 1;
    ttft_rates r = *rates; /* plus the cluster tier's rate (efficiency taken as 1) */
    ttft_rates_cluster(&r, cluster_gbps, c->gpus, 1);
    for (size_t i = 0; i < n; i++) {
        const sm_rec *q = &recs[i];
        const ttft_bytes b = {.dram = q->dram_bytes, .nvme = q->nvme_bytes,
                              .cluster = q->cluster_bytes};
        double load = ttft_load_bytes_s(&r, &b, tp);
        double xfer = c->layout.pd ? ttft_pd_transfer_s(&r, q->missed * c->bytes_per_token,
                                                        q->prompt_tokens * c->bytes_per_token, tp)
                                   : 0;
        if (ttft_add_req(&tm, q->t, load, q->missed, q->window, q->session, xfer)) {
            ttft_free(&tm);
            return -1;
        }
    }
    ttft_finish(&tm);
    int rc = 0;
    for (size_t i = 0; i < tm.ttft_ms.n && !rc; i++)
        rc = bench_samples_add(all, tm.ttft_ms.v[i]);
    for (size_t i = 0; i < tm.win[1].n && !rc; i++)
        rc = bench_samples_add(judged, tm.win[1].v[i]);
    *within += tm.within;
    ttft_free(&tm);
    return rc;
}

/* Reads each engine's counts and requests, sums them, models TTFT. */
static int merge(multi *m, sm_result *r)
{
    const swarm_cfg *c = m->c;
    sm_rec *recs = NULL;
    size_t n = 0;
    int rc = BENCH_OK;
    for (uint32_t i = 0; i < m->np && rc == BENCH_OK; i++) {
        sm_counts k;
        if (lseek(m->p[i].out, 0, SEEK_SET) != 0 || sm_read_all(m->p[i].out, &k, sizeof k)) {
            fprintf(stderr, "kvtier-bench swarm: engine %u left no result\n", i);
            rc = BENCH_FAILED;
            break;
        }
        if (k.rc) {
            rc = k.rc;
            break;
        }
        r->requests += k.requests, r->blocks += k.blocks, r->hit_blocks += k.hit_blocks;
        r->hit_dram += k.hit_dram, r->hit_nvme += k.hit_nvme, r->hit_cluster += k.hit_cluster;
        r->seen_blocks += k.seen_blocks, r->reprefills += k.reprefills;
        r->verify_errors += k.verify_errors, r->get_short += k.get_short;
        sm_rec *v = realloc(recs, (n + k.nrecs + 1) * sizeof *v);
        if (!v || (k.nrecs && sm_read_all(m->p[i].out, v + n, k.nrecs * sizeof *v))) {
            fprintf(stderr, "kvtier-bench swarm: engine %u's requests: %s\n", i,
                    v ? "truncated" : "out of memory");
            recs = v ? v : recs;
            rc = BENCH_FAILED;
            break;
        }
        recs = v;
        n += k.nrecs;
    }
    if (rc == BENCH_OK) {
        qsort(recs, n, sizeof *recs, by_time);
        ttft_rates rates;
        const hw_profile *p = &c->prof;
        ttft_rates_from(&rates, p->f[HW_GPU_GBPS].v, p->f[HW_NVME_GBPS].v, c->gpus, 1, 1);
        bench_samples all = {0}, judged = {0};
        uint64_t within = 0;
        const int per_node = m->o->store >= SM_NODE_DRAM;
        for (uint32_t node = 0; node < (per_node ? m->np : 1) && rc == BENCH_OK; node++) {
            size_t k = 0;
            sm_rec *mine = per_node ? malloc((n + 1) * sizeof *mine) : recs;
            if (!mine) {
                rc = BENCH_FAILED;
                break;
            }
            if (per_node)
                for (size_t i = 0; i < n; i++)
                    if (recs[i].proc == node)
                        mine[k++] = recs[i];
            if (model_node(c, &rates, p->f[HW_CLUSTER_GBPS].v, mine, per_node ? k : n, &all,
                           &judged, &within))
                rc = BENCH_FAILED;
            if (per_node)
                free(mine);
        }
        r->ttft_p50_ms = bench_percentile(&all, 50);
        r->ttft_p95_ms = bench_percentile(&all, 95);
        r->within_slo = n ? (double)within / (double)n : 0;
        r->goodput_rps = r->virtual_s > 0 ? (double)within / r->virtual_s : 0;
        r->judged = judged.n;
        r->judged_p95_ms = bench_percentile(&judged, 95);
        bench_samples_free(&all);
        bench_samples_free(&judged);
        if (rc)
            fprintf(stderr, "kvtier-bench swarm: out of memory for the TTFT model\n");
    }
    free(recs);
    r->hit_ratio = r->blocks ? (double)r->hit_blocks / (double)r->blocks : 0;
    r->seen_ratio = r->blocks ? (double)r->seen_blocks / (double)r->blocks : 0;
    return rc;
}

/* Names: the socket, the NVMe files, the run's cluster directory. */
static int name_files(multi *m)
{
    const char *dir = swarm_dir(m->c);
    const char *nd = m->o->nvme_dir ? m->o->nvme_dir : dir;
    static unsigned run_no;
    unsigned run = __atomic_fetch_add(&run_no, 1, __ATOMIC_RELAXED);
    int pid = (int)getpid();
    int n = m->o->socket ? snprintf(m->socket, sizeof m->socket, "%s", m->o->socket)
                         : snprintf(m->socket, sizeof m->socket, "%s/kvtier-bench-%d-%u.sock",
                                    dir, pid, run);
    if (n < 0 || (size_t)n >= sizeof m->socket) {
        fprintf(stderr, "kvtier-bench swarm: the socket path is too long (over %zu bytes): "
                        "give --socket\n", sizeof m->socket - 1);
        return BENCH_USAGE;
    }
    for (uint32_t i = 0; i <= SM_MAX_PROCS; i++)
        snprintf(m->nvme[i], sizeof m->nvme[i], "%s/kvtier-bench-swarm-%d-%u-%u.kvt", nd, pid,
                 run, i);
    if (m->o->store == SM_NODE_CLUSTER) {
        if (!m->o->cluster_dir) {
            fprintf(stderr, "kvtier-bench swarm: the dram+cluster nodes need a cluster directory\n");
            return BENCH_USAGE;
        }
        snprintf(m->dir_run, sizeof m->dir_run, "%s/kvtier-bench-swarm-%d-%u",
                 m->o->cluster_dir, pid, run);
        if (mkdir(m->dir_run, 0700) != 0) {
            fprintf(stderr, "kvtier-bench swarm: cannot make %s: %s\n", m->dir_run,
                    strerror(errno));
            return BENCH_USAGE;
        }
        m->made_dir = 1;
    }
    return BENCH_OK;
}

/* Removes the run's cluster directory tree (blocks and fan-out directories). */
static void remove_tree(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

int swarm_multi_run(const swarm_cfg *c, const sm_opts *o, sm_result *r)
{
    memset(r, 0, sizeof *r);
    if (o->procs < 1 || o->procs > SM_MAX_PROCS || !(o->epoch_s >= 0)) {
        fprintf(stderr, "kvtier-bench swarm: processes must be 1..%d and the epoch >= 0\n",
                SM_MAX_PROCS);
        return BENCH_USAGE;
    }
    multi m = {.c = c, .o = o, .srv_ctl = -1, .srv_ack = -1};
    for (uint32_t i = 0; i < SM_MAX_PROCS; i++)
        m.p[i] = (proc){.want = -1, .go = -1, .out = -1, .next = {.step = SM_DONE}};
    r->virtual_s = c->wl.duration_s;
    r->dram_bytes_each = o->store == SM_PRIVATE ? c->dram_bytes / o->procs : c->dram_bytes;
    r->nvme_bytes_each = o->store == SM_NODE_DRAM || o->store == SM_NODE_CLUSTER ? 0
                         : o->store == SM_PRIVATE ? c->nvme_bytes / o->procs
                                                  : c->nvme_bytes;
    /* An engine that died closes its pipe: the parent's next write to it
     * must fail with EPIPE (the engine's result file says why), not kill
     * the parent. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    sigaction(SIGPIPE, &ign, &old_pipe);
    uint64_t t0 = bench_now_ns();
    int rc = name_files(&m);
    /* Removed on SIGINT/SIGTERM too, as far as the bench's table of temp
     * files goes (the cluster run directory is not: a tree). */
    int temp[BENCH_MAX_TEMP], ntemp = 0;
    if (!rc && o->store == SM_SHARED)
        temp[ntemp++] = bench_temp_register(m.socket);
    for (uint32_t i = 0; !rc && c->nvme_bytes && ntemp < BENCH_MAX_TEMP && i <= o->procs; i++) {
        int used = o->store == SM_SHARED ? i == o->procs
                                         : i < o->procs && (o->store == SM_PRIVATE ||
                                                            o->store == SM_NODE_NVME);
        if (used)
            temp[ntemp++] = bench_temp_register(m.nvme[i == o->procs ? SM_MAX_PROCS : i]);
    }
    if (!rc && o->store == SM_SHARED)
        rc = start_server(&m);
    for (uint32_t i = 0; !rc && i < o->procs; i++)
        rc = start_engine(&m, i);
    if (!rc)
        rc = drive(&m, r);
    else /* engines already started see EOF on their go pipes and stop */
        for (uint32_t i = 0; i < m.np; i++)
            close_fd(&m.p[i].go);
    int failed = 0;
    for (uint32_t i = 0; i < m.np; i++) {
        close_fd(&m.p[i].go);
        int st;
        if (m.p[i].pid > 0 && waitpid(m.p[i].pid, &st, 0) == m.p[i].pid &&
            !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            failed = 1;
    }
    if (m.server > 0) {
        uint64_t stop = SM_DONE;
        sm_write_all(m.srv_ctl, &stop, sizeof stop);
        close_fd(&m.srv_ctl);
        int st;
        if (waitpid(m.server, &st, 0) == m.server && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
            !rc)
            rc = BENCH_FAILED;
        close_fd(&m.srv_ack);
    }
    if (!rc)
        rc = merge(&m, r);
    if (!rc && failed)
        rc = BENCH_FAILED;
    for (uint32_t i = 0; i < m.np; i++) {
        close_fd(&m.p[i].want);
        close_fd(&m.p[i].out);
    }
    for (int i = 0; i < ntemp; i++)
        bench_temp_remove(temp[i]);
    for (uint32_t i = 0; i <= SM_MAX_PROCS; i++)
        unlink(m.nvme[i]); /* names that were never made: ENOENT, harmless */
    if (m.made_dir)
        remove_tree(m.dir_run);
    r->wall_s = (double)(bench_now_ns() - t0) / 1e9;
    sigaction(SIGPIPE, &old_pipe, NULL);
    return rc;
}
