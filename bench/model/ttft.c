/* ttft.c — the TTFT model: loads at a profile's rates, then FIFO queueing for prefill on N servers in virtual time. */
#include <math.h>
#include <stdlib.h>

#include "ttft.h"

static double eff(double e)
{
    return e > 0 && e < 1 ? e : 1; /* NaN fails both tests */
}

void ttft_rates_from(ttft_rates *r, double gpu_gbps, double nvme_node_gbps, uint32_t gpus,
                     double dram_eff, double nvme_eff)
{
    double share = nvme_node_gbps / (gpus ? gpus : 1);
    *r = (ttft_rates){.dram_gbps = gpu_gbps,
                      .nvme_gbps = share < gpu_gbps ? share : gpu_gbps,
                      .dram_eff = eff(dram_eff),
                      .nvme_eff = eff(nvme_eff)};
}

void ttft_rates_cluster(ttft_rates *r, double cluster_node_gbps, uint32_t gpus, double e)
{
    double share = cluster_node_gbps > 0 ? cluster_node_gbps / (gpus ? gpus : 1) : 0;
    r->cluster_gbps = share < r->dram_gbps ? share : r->dram_gbps;
    r->cluster_eff = eff(e);
}

double ttft_load_bytes_s(const ttft_rates *r, const ttft_bytes *b, uint32_t tp)
{
    double n = tp ? (double)tp : 1, s = 0;
    if (b->dram)
        s += (double)b->dram / n / (r->dram_gbps * 1e9 * r->dram_eff);
    if (b->nvme)
        s += (double)b->nvme / n / (r->nvme_gbps * 1e9 * r->nvme_eff);
    if (b->cluster)
        s += r->cluster_gbps > 0 ? (double)b->cluster / n / (r->cluster_gbps * 1e9 * r->cluster_eff)
                                 : INFINITY;
    return s;
}

double ttft_load_s(const ttft_rates *r, uint64_t dram_bytes, uint64_t nvme_bytes)
{
    double s = 0;
    if (dram_bytes)
        s += (double)dram_bytes / (r->dram_gbps * 1e9 * r->dram_eff);
    if (nvme_bytes)
        s += (double)nvme_bytes / (r->nvme_gbps * 1e9 * r->nvme_eff);
    return s;
}

double ttft_tp_efficiency(uint32_t tp)
{
    return tp <= 1 ? 1 : pow(0.9, log2((double)tp));
}

double ttft_load_tp_s(const ttft_rates *r, uint64_t dram_bytes, uint64_t nvme_bytes, uint32_t tp)
{
    double n = tp ? (double)tp : 1, s = 0;
    if (dram_bytes)
        s += (double)dram_bytes / n / (r->dram_gbps * 1e9 * r->dram_eff);
    if (nvme_bytes)
        s += (double)nvme_bytes / n / (r->nvme_gbps * 1e9 * r->nvme_eff);
    return s;
}

double ttft_pd_transfer_s(const ttft_rates *r, uint64_t new_bytes, uint64_t prompt_bytes,
                          uint32_t tp)
{
    double n = tp ? (double)tp : 1;
    return ((double)new_bytes + (double)prompt_bytes) / n / (r->dram_gbps * 1e9 * r->dram_eff);
}

double ttft_pd_transfer_via_s(const ttft_rates *r, uint64_t new_bytes, uint64_t prompt_bytes,
                              uint32_t tp, ttft_pd_via via)
{
    if (via == TTFT_VIA_DRAM)
        return ttft_pd_transfer_s(r, new_bytes, prompt_bytes, tp);
    double n = tp ? (double)tp : 1;
    if (!(r->cluster_gbps > 0))
        return INFINITY;
    return ((double)new_bytes + (double)prompt_bytes) / n / (r->cluster_gbps * 1e9 * r->cluster_eff);
}

uint32_t ttft_layout_servers(const ttft_layout *l, uint32_t gpus)
{
    uint32_t tp = l->tp ? l->tp : 1;
    uint32_t dp = l->dp ? l->dp : gpus / tp;
    if (!dp)
        dp = 1;
    if (!l->pd)
        return dp;
    uint32_t p = l->prefill_instances ? l->prefill_instances : dp / 2;
    return p ? p : 1;
}

int ttft_set_layout(ttft_model *m, const ttft_layout *l)
{
    uint32_t tp = l->tp ? l->tp : 1;
    if (l->pd && l->prefill_instances && l->dp && l->prefill_instances >= l->dp)
        return -1; /* no instance left to decode */
    uint32_t n = ttft_layout_servers(l, m->gpus);
    double *f = calloc(n, sizeof *f), *b = calloc(n, sizeof *b);
    if (!f || !b) {
        free(f);
        free(b);
        return -1;
    }
    free(m->free_at);
    free(m->busy);
    m->free_at = f;
    m->busy = b;
    m->gpus = n;
    double e = l->tp_eff > 0 ? l->tp_eff : ttft_tp_efficiency(tp);
    m->prefill_tps *= (double)tp * e;
    m->affinity = l->affinity;
    return 0;
}

int ttft_init(ttft_model *m, uint32_t gpus, double prefill_tps, double slo_ms, uint32_t nwin)
{
    *m = (ttft_model){.gpus = gpus ? gpus : 1,
                      .nwin = nwin,
                      .prefill_tps = prefill_tps,
                      .slo_ms = slo_ms};
    m->free_at = calloc(m->gpus, sizeof *m->free_at);
    m->busy = calloc(m->gpus, sizeof *m->busy);
    if (nwin) {
        m->win = calloc(nwin, sizeof *m->win);
        m->win_pending = calloc(nwin, sizeof *m->win_pending);
    }
    if (!m->free_at || !m->busy || (nwin && (!m->win || !m->win_pending))) {
        ttft_free(m);
        return -1;
    }
    return 0;
}

static int before(const ttft_pend *a, const ttft_pend *b)
{
    return a->ready < b->ready || (a->ready == b->ready && a->seq < b->seq);
}

static ttft_pend pop(ttft_model *m)
{
    ttft_pend top = m->pend[0], last = m->pend[--m->npend];
    size_t i = 0, n = m->npend;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const ttft_pend *b = &last;
        if (l < n && before(&m->pend[l], b))
            best = l, b = &m->pend[l];
        if (r < n && before(&m->pend[r], b))
            best = r;
        if (best == i)
            break;
        m->pend[i] = m->pend[best];
        i = best;
    }
    if (n)
        m->pend[i] = last;
    return top;
}

/* The request takes the server that frees first, once loaded. */
static void schedule(ttft_model *m, const ttft_pend *p)
{
    uint32_t best = 0;
    if (p->instance < m->gpus)
        best = p->instance;
    else if (m->affinity)
        best = (uint32_t)(p->session % m->gpus);
    else
        for (uint32_t i = 1; i < m->gpus; i++)
            if (m->free_at[i] < m->free_at[best])
                best = i;
    double start = m->free_at[best] > p->ready ? m->free_at[best] : p->ready;
    m->free_at[best] = start + p->prefill;
    m->busy[best] += p->prefill;
    double ttft_ms = (m->free_at[best] + p->transfer - p->t) * 1e3;
    bench_samples_add(&m->ttft_ms, ttft_ms);
    bench_samples_add(&m->load_ms, p->load * 1e3);
    bench_samples_add(&m->prefill_ms, p->prefill * 1e3);
    bench_samples_add(&m->queue_ms, (start - p->ready) * 1e3);
    if (p->window < m->nwin) {
        bench_samples_add(&m->win[p->window], ttft_ms);
        m->win_pending[p->window]--;
    }
    m->count++;
    m->sum_ms += ttft_ms;
    m->within += ttft_ms <= m->slo_ms;
}

int ttft_add(ttft_model *m, double t_s, double load_s, uint64_t missed, uint32_t window)
{
    return ttft_add_req(m, t_s, load_s, missed, window, 0, 0);
}

int ttft_add_req(ttft_model *m, double t_s, double load_s, uint64_t missed, uint32_t window,
                 uint64_t session, double transfer_s)
{
    return ttft_add_on(m, t_s, load_s, missed, window, session, transfer_s, UINT32_MAX);
}

double ttft_imbalance(const ttft_model *m)
{
    double max = 0, sum = 0;
    for (uint32_t i = 0; i < m->gpus; i++) {
        sum += m->busy[i];
        if (m->busy[i] > max)
            max = m->busy[i];
    }
    return sum > 0 ? max / (sum / m->gpus) : 0;
}

int ttft_add_on(ttft_model *m, double t_s, double load_s, uint64_t missed, uint32_t window,
                uint64_t session, double transfer_s, uint32_t instance)
{
    if (m->npend == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        ttft_pend *p = realloc(m->pend, cap * sizeof *p);
        if (!p)
            return -1;
        m->pend = p;
        m->cap = cap;
    }
    double load = load_s;
    ttft_pend p = {.ready = t_s + load,
                   .t = t_s,
                   .load = load,
                   .prefill = m->prefill_tps > 0 ? (double)missed / m->prefill_tps : 0,
                   .transfer = transfer_s,
                   .seq = m->seq++,
                   .session = session,
                   .instance = instance,
                   .window = m->nwin ? window : UINT32_MAX};
    if (p.window < m->nwin)
        m->win_pending[p.window]++;
    size_t i = m->npend++;
    while (i && before(&p, &m->pend[(i - 1) / 2])) {
        m->pend[i] = m->pend[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->pend[i] = p;
    /* Every later arrival is ready at t_s or after: what is ready by now
     * goes first, in ready order. */
    while (m->npend && m->pend[0].ready <= t_s) {
        ttft_pend q = pop(m);
        schedule(m, &q);
    }
    return 0;
}

void ttft_finish(ttft_model *m)
{
    while (m->npend) {
        ttft_pend q = pop(m);
        schedule(m, &q);
    }
}

void ttft_free(ttft_model *m)
{
    free(m->free_at);
    free(m->busy);
    free(m->pend);
    bench_samples_free(&m->ttft_ms);
    bench_samples_free(&m->load_ms);
    bench_samples_free(&m->prefill_ms);
    bench_samples_free(&m->queue_ms);
    if (m->win)
        for (uint32_t i = 0; i < m->nwin; i++)
            bench_samples_free(&m->win[i]);
    free(m->win);
    free(m->win_pending);
    m->free_at = NULL;
    m->busy = NULL;
    m->pend = NULL;
    m->win = NULL;
    m->win_pending = NULL;
}
