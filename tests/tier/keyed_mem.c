/* keyed_mem.c — the test-only key-addressed tier of keyed_mem.h. */
#include "keyed_mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tier/tier.h"

/* ------------------------------------------------------- the shared table */

typedef struct block {
    kvt_key key;
    uint8_t *bytes;
    size_t len;
    uint64_t written_ns;
    uint64_t ttl_ns; /* 0: never expires */
} block;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static block *table;
static size_t table_len, table_cap;
static uint64_t now_ns;
static int fail_next;
static uint64_t contains_calls, prefix_calls;

static int expired(const block *b)
{
    return b->ttl_ns && now_ns - b->written_ns >= b->ttl_ns;
}

/* Table lock held. Expired blocks are dropped when found. */
static block *find(const kvt_key *k)
{
    for (size_t i = 0; i < table_len; i++) {
        if (memcmp(table[i].key.b, k->b, sizeof k->b))
            continue;
        if (!expired(&table[i]))
            return &table[i];
        free(table[i].bytes);
        table[i] = table[--table_len];
        return NULL;
    }
    return NULL;
}

/* Table lock held. */
static int store(const kvt_key *k, const void *const *frags, uint32_t nfrags, size_t len,
                 uint64_t ttl_ns)
{
    block *b = find(k);
    if (!b) {
        if (table_len == table_cap) {
            size_t cap = table_cap ? 2 * table_cap : 64;
            block *t = realloc(table, cap * sizeof *t);
            if (!t)
                return KVT_ENOMEM;
            table = t;
            table_cap = cap;
        }
        b = &table[table_len++];
        memset(b, 0, sizeof *b);
        b->key = *k;
    }
    if (b->len != len) {
        free(b->bytes);
        b->bytes = malloc(len);
        b->len = b->bytes ? len : 0;
        if (!b->bytes) {
            *b = table[--table_len];
            return KVT_ENOMEM;
        }
    }
    size_t frag = len / nfrags;
    for (uint32_t f = 0; f < nfrags; f++)
        memcpy(b->bytes + f * frag, frags[f], frag);
    b->written_ns = now_ns;
    b->ttl_ns = ttl_ns;
    return 0;
}

void keyed_mem_put_direct(const kvt_key *key, const void *bytes, size_t len)
{
    pthread_mutex_lock(&table_lock);
    const void *one[1] = {bytes};
    store(key, one, 1, len, 0);
    pthread_mutex_unlock(&table_lock);
}

int keyed_mem_get_direct(const kvt_key *key, void *out, size_t len)
{
    pthread_mutex_lock(&table_lock);
    block *b = find(key);
    int held = b != NULL;
    if (b && out)
        memcpy(out, b->bytes, len < b->len ? len : b->len);
    pthread_mutex_unlock(&table_lock);
    return held;
}

size_t keyed_mem_count(void)
{
    pthread_mutex_lock(&table_lock);
    size_t n = table_len;
    pthread_mutex_unlock(&table_lock);
    return n;
}

void keyed_mem_set_now(uint64_t ns)
{
    pthread_mutex_lock(&table_lock);
    now_ns = ns;
    pthread_mutex_unlock(&table_lock);
}

void keyed_mem_fail_next(int code)
{
    pthread_mutex_lock(&table_lock);
    fail_next = code;
    pthread_mutex_unlock(&table_lock);
}

void keyed_mem_reset(void)
{
    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < table_len; i++)
        free(table[i].bytes);
    table_len = 0;
    now_ns = 0;
    fail_next = 0;
    pthread_mutex_unlock(&table_lock);
}

/* ------------------------------------------------------ the tier instance */

struct kvt_tier_impl {
    size_t block_bytes;
    uint64_t ttl_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kvt_keyed_op *queue[256];
    size_t head, len;
    int closing;
    pthread_t thread;
    uint64_t ops_done;
};

static void execute(kvt_tier_impl *t, kvt_keyed_op *op)
{
    pthread_mutex_lock(&table_lock);
    int fail = fail_next;
    fail_next = 0;
    op->result = fail;
    int prefix = op->kind == KVT_KEYED_CONTAINS && (op->flags & KVT_KEYED_PREFIX);
    int missed = 0;
    contains_calls += op->kind == KVT_KEYED_CONTAINS;
    prefix_calls += prefix;
    for (size_t i = 0; i < op->n; i++) {
        const kvt_key *k = &op->keys[i];
        int st = 0;
        if (fail) {
            st = fail;
        } else if (op->kind == KVT_KEYED_CONTAINS) {
            st = !(prefix && missed) && find(k) != NULL;
            missed |= !st;
        } else if (op->kind == KVT_KEYED_READ) {
            block *b = find(k);
            if (!b || op->mem != KVT_MEM_HOST) {
                st = b ? KVT_EMEMKIND : KVT_ENOENT;
            } else {
                size_t frag = b->len / op->nfrags;
                for (uint32_t f = 0; f < op->nfrags; f++)
                    memcpy(op->frags[i * op->nfrags + f], b->bytes + f * frag, frag);
            }
        } else if (op->kind == KVT_KEYED_WRITE) {
            st = op->mem != KVT_MEM_HOST
                     ? KVT_EMEMKIND
                     : store(k, (const void *const *)&op->frags[i * op->nfrags], op->nfrags,
                             t->block_bytes, t->ttl_ns);
        } else if (op->kind == KVT_KEYED_REMOVE) {
            block *b = find(k);
            if (b) {
                free(b->bytes);
                *b = table[--table_len];
            } else {
                st = KVT_ENOENT;
            }
        } else {
            st = KVT_EINVAL;
        }
        op->status[i] = st;
        if (st < 0 && st != KVT_ENOENT && !op->result)
            op->result = st;
    }
    pthread_mutex_unlock(&table_lock);
    op->done(op);
}

static void *completer(void *arg)
{
    kvt_tier_impl *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->len && !t->closing)
            pthread_cond_wait(&t->cv, &t->mu);
        if (!t->len)
            break;
        kvt_keyed_op *op = t->queue[t->head];
        t->head = (t->head + 1) % 256;
        t->len--;
        pthread_mutex_unlock(&t->mu);
        execute(t, op);
        pthread_mutex_lock(&t->mu);
        t->ops_done++;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static int mem_submit(kvt_tier_impl *t, kvt_keyed_op *op)
{
    pthread_mutex_lock(&t->mu);
    if (t->closing || t->len == 256) {
        pthread_mutex_unlock(&t->mu);
        return kvt__err(KVT_EBUSY, "keyed_mem: queue full or closing");
    }
    t->queue[(t->head + t->len++) % 256] = op;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static int mem_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    kvt_tier_impl *t = calloc(1, sizeof *t);
    if (!t)
        return kvt__err(KVT_ENOMEM, "keyed_mem: state");
    t->block_bytes = p->block_bytes;
    t->ttl_ns = p->ttl_ms * 1000000ull;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (pthread_create(&t->thread, NULL, completer, t)) {
        free(t);
        return kvt__err(KVT_ESYS, "keyed_mem: thread");
    }
    *out = t;
    *nslots = 0;
    return 0;
}

static void mem_close(kvt_tier_impl *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->closing = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

static void mem_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    pthread_mutex_lock(&t->mu);
    uint64_t done = t->ops_done;
    pthread_mutex_unlock(&t->mu);
    fn("keyed_mem.ops", done, user);
}

static const kvt_keyed_ops mem_keyed = {.submit = mem_submit, .poll = NULL};

static const kvt_tier_ops keyed_mem_ops = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "keyed_mem",
    .caps = KVT_TCAP_KEYED,
    .open = mem_open,
    .close = mem_close,
    .stats = mem_stats,
    .keyed = &mem_keyed,
};

int keyed_mem_register(void)
{
    if (kvt__tier_find("keyed_mem"))
        return 0;
    return kvt__tier_register(&keyed_mem_ops);
}

uint64_t keyed_mem_contains_calls(uint64_t *prefix)
{
    pthread_mutex_lock(&table_lock);
    uint64_t n = contains_calls;
    if (prefix)
        *prefix = prefix_calls;
    pthread_mutex_unlock(&table_lock);
    return n;
}
