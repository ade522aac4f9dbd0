/* keyed.c — the store's side of key-addressed tiers: open, and the lookups,
 * reads, write-through and removes it passes on to them. Each operation is
 * submitted and waited for here; the tier completes it on its own threads or
 * in poll(). */
#include "internal.h"

#include <pthread.h>

int kvt__keyed_open(kvt_store *s)
{
    for (int t = 0; t < s->cfg.ntiers; t++) {
        const kvt_tier_cfg *tc = &s->cfg.tier[t];
        if (!(tc->ops->caps & KVT_TCAP_KEYED))
            continue;
        if (!tc->ops->keyed || !tc->ops->keyed->submit)
            return kvt__err(KVT_EINVAL, "%s tier: keyed capability without keyed ops", tc->name);
        struct kvt_keyed_rt *k = &s->keyed[s->nkeyed];
        kvt_tier_params p = {
            .name = tc->name,
            .capacity = tc->capacity,
            .block_bytes = s->block_bytes,
            .block_tokens = s->cfg.block_tokens,
            .frags = s->frags,
            .key_mode = s->cfg.key_mode,
            .copy_threads = s->cfg.copy_threads,
            .ttl_ms = tc->ttl_ms,
            .faults = tc->faults,
            .nopts = tc->nopts,
        };
        memcpy(p.opts, tc->opt, sizeof p.opts);
        uint32_t nslots = 0;
        int rc = tc->ops->open(&p, &k->impl, &nslots);
        if (rc == KVT_ENODEV && (tc->ops->caps & KVT_TCAP_OPTIONAL)) {
            s->tier_unavailable[t] = 1;
            continue;
        }
        if (rc)
            return rc;
        k->index = t;
        k->ops = tc->ops;
        s->nkeyed++;
    }
    return 0;
}

void kvt__keyed_close(kvt_store *s)
{
    for (int i = s->nkeyed; i-- > 0;)
        if (s->keyed[i].ops->close)
            s->keyed[i].ops->close(s->keyed[i].impl);
    s->nkeyed = 0;
}

/* One operation, submitted and waited for. */
typedef struct waiter {
    kvt_keyed_op op;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
} waiter;

static void finished(kvt_keyed_op *op)
{
    waiter *w = op->user;
    pthread_mutex_lock(&w->mu);
    w->finished = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int run_flags(struct kvt_keyed_rt *k, kvt_keyed_kind kind, const kvt_key *keys, size_t n,
                     void *const *frags, uint32_t nfrags, kvt_mem_kind mem, int32_t *status,
                     uint32_t flags)
{
    waiter w = {.op = {.kind = kind, .keys = keys, .n = n, .frags = frags, .nfrags = nfrags,
                       .mem = mem, .status = status, .done = finished, .flags = flags}};
    w.op.user = &w;
    /* Every key starts failed: a submit the tier refuses (or a tier that
     * leaves a key unanswered) must not leave a stale 0 read as a hit. */
    for (size_t i = 0; i < n; i++)
        status[i] = KVT_EIO;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = k->ops->keyed->submit(k->impl, &w.op);
    if (rc)
        for (size_t i = 0; i < n; i++)
            status[i] = rc;
    if (rc == 0) {
        if (k->ops->keyed->poll) {
            for (;;) {
                pthread_mutex_lock(&w.mu);
                int done = w.finished;
                pthread_mutex_unlock(&w.mu);
                if (done)
                    break;
                k->ops->keyed->poll(k->impl, 10);
            }
        } else {
            pthread_mutex_lock(&w.mu);
            while (!w.finished)
                pthread_cond_wait(&w.cv, &w.mu);
            pthread_mutex_unlock(&w.mu);
        }
        rc = w.op.result;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (rc)
        CNT(k, io_errors);
    return rc;
}

static int run(struct kvt_keyed_rt *k, kvt_keyed_kind kind, const kvt_key *keys, size_t n,
               void *const *frags, uint32_t nfrags, kvt_mem_kind mem, int32_t *status)
{
    return run_flags(k, kind, keys, n, frags, nfrags, mem, status, 0);
}

/* Scratch for a batch: keys (and their positions) still to ask about. */
typedef struct batch {
    kvt_key *keys;
    size_t *at;
    int32_t *status;
    void **frags;
} batch;

static int batch_new(batch *b, size_t n, uint32_t nfrags)
{
    b->keys = kvt__malloc((n ? n : 1) * sizeof *b->keys);
    b->at = kvt__malloc((n ? n : 1) * sizeof *b->at);
    b->status = kvt__malloc((n ? n : 1) * sizeof *b->status);
    b->frags = nfrags ? kvt__malloc((n ? n : 1) * nfrags * sizeof *b->frags) : NULL;
    if (!b->keys || !b->at || !b->status || (nfrags && !b->frags)) {
        kvt__free(b->keys);
        kvt__free(b->at);
        kvt__free(b->status);
        kvt__free(b->frags);
        return kvt__err(KVT_ENOMEM, "key-addressed tier batch of %zu", n);
    }
    return 0;
}

static void batch_free(batch *b)
{
    kvt__free(b->keys);
    kvt__free(b->at);
    kvt__free(b->status);
    kvt__free(b->frags);
}

size_t kvt__keyed_lookup(kvt_store *s, const kvt_key *keys, size_t from, size_t n, uint8_t *tiers,
                         int stop_at_miss)
{
    if (!s->nkeyed || from >= n)
        return stop_at_miss ? from : 0;
    size_t m = n - from, found = 0;
    batch b;
    if (batch_new(&b, m, 0))
        return stop_at_miss ? from : 0;
    uint8_t *where = kvt__malloc(m);
    if (!where) {
        batch_free(&b);
        return stop_at_miss ? from : 0;
    }
    memset(where, KVT_TIER_NONE, m);
    for (size_t i = 0; i < m; i++)
        if (stop_at_miss || !tiers || tiers[from + i] == KVT_TIER_NONE)
            where[i] = 0xfe; /* to ask */
    for (int k = 0; k < s->nkeyed; k++) {
        size_t q = 0;
        for (size_t i = 0; i < m; i++)
            if (where[i] == 0xfe) {
                b.keys[q] = keys[from + i];
                b.at[q++] = i;
            }
        if (!q)
            break;
        /* A lookup may let the last tier stop at its first miss: a key no
         * tier holds ends the prefix. Earlier tiers answer every key, since
         * a later tier is asked only about the keys they miss. */
        uint32_t flags = stop_at_miss && k == s->nkeyed - 1 ? KVT_KEYED_PREFIX : 0;
        if (run_flags(&s->keyed[k], KVT_KEYED_CONTAINS, b.keys, q, NULL, 0, KVT_MEM_HOST,
                      b.status, flags))
            continue;
        for (size_t j = 0; j < q; j++)
            if (b.status[j] == 1)
                where[b.at[j]] = (uint8_t)s->keyed[k].index;
    }
    size_t end = from;
    for (size_t i = 0; i < m; i++) {
        int held = where[i] != KVT_TIER_NONE && where[i] != 0xfe;
        if (stop_at_miss) {
            if (!held)
                break;
            if (tiers)
                tiers[from + i] = where[i];
            end++;
        } else if (held) {
            if (tiers)
                tiers[from + i] = where[i];
            found++;
        }
    }
    kvt__free(where);
    batch_free(&b);
    return stop_at_miss ? end : found;
}

size_t kvt__keyed_get(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                      kvt_mem_kind mem, uint8_t *got, int32_t *status)
{
    size_t read = 0;
    batch b;
    if (!s->nkeyed || batch_new(&b, n, s->frags))
        return 0;
    for (int k = 0; k < s->nkeyed; k++) {
        size_t q = 0;
        for (size_t i = 0; i < n; i++) {
            if (got[i])
                continue;
            b.keys[q] = keys[i];
            b.at[q] = i;
            memcpy(&b.frags[q * s->frags], &ptrs[i * s->frags], s->frags * sizeof(void *));
            q++;
        }
        if (!q)
            break;
        struct kvt_keyed_rt *kr = &s->keyed[k];
        run(kr, KVT_KEYED_READ, b.keys, q, b.frags, s->frags, mem, b.status);
        CNT(kr, reads);
        for (size_t j = 0; j < q; j++) {
            size_t i = b.at[j];
            if (b.status[j] == 0) {
                got[i] = 1;
                read++;
                CNT(kr, hits);
                if (status)
                    status[i] = 0;
            } else if (b.status[j] != KVT_ENOENT && status && status[i] == KVT_ENOENT) {
                status[i] = b.status[j]; /* the tier failed, not just a miss */
            }
        }
    }
    batch_free(&b);
    return read;
}

void kvt__keyed_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                    kvt_mem_kind mem, const int32_t *status)
{
    batch b;
    if (!s->nkeyed || batch_new(&b, n, s->frags))
        return;
    size_t q = 0;
    for (size_t i = 0; i < n; i++) {
        if (status && status[i])
            continue;
        b.keys[q] = keys[i];
        memcpy(&b.frags[q * s->frags], &ptrs[i * s->frags], s->frags * sizeof(void *));
        q++;
    }
    for (int k = 0; q && k < s->nkeyed; k++) {
        run(&s->keyed[k], KVT_KEYED_WRITE, b.keys, q, b.frags, s->frags, mem, b.status);
        size_t written = 0;
        for (size_t j = 0; j < q; j++)
            written += b.status[j] == 0;
        ADD(&s->keyed[k], writes, written);
    }
    batch_free(&b);
}

void kvt__keyed_remove(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *held)
{
    int32_t *st = s->nkeyed ? kvt__malloc(n * sizeof *st) : NULL;
    if (!st)
        return;
    for (int k = 0; k < s->nkeyed; k++) {
        if (run(&s->keyed[k], KVT_KEYED_REMOVE, keys, n, NULL, 0, KVT_MEM_HOST, st))
            continue;
        for (size_t i = 0; i < n; i++)
            if (st[i] == 0) {
                CNT(&s->keyed[k], removes);
                if (held)
                    held[i] = 1;
            }
    }
    kvt__free(st);
}
