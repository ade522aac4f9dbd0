/* assemble.c — layer-wise puts (kvt_put with kvt_io_opts.frag_count > 0):
 * a block is assembled fragment range by fragment range in a slot of the
 * put tier reserved as reserve.c reserves one (FILLING: no lookup, get or
 * contains sees it, no eviction takes it), the caller's fragments copied
 * straight into that slot. When every fragment has been put the
 * reservation is committed exactly as a whole-block put is published
 * (write-through, events, TTL, durability); a block that never completes
 * is aborted (kvt_remove of its key, kvt_clear, kvt_close, or older than
 * ASSEMBLE_AGE_NS) and its slot goes back, never having been visible.
 *
 * A fragment put twice while its block assembles is overwritten (last
 * wins: a block's key names its bytes, so both copies should agree). */
#include "internal.h"
#include "groups.h"

/* Blocks assembling at once in one store; a range put that would start
 * one more gets KVT_EBUSY for it (they pin slots of the put tier). */
#define ASSEMBLE_MAX 256
/* A block still incomplete this long after its first fragment is aborted
 * (checked by every range put, remove and clear). */
#define ASSEMBLE_AGE_NS (10 * NS_PER_S)
/* Rounds a range put waits for another put writing the same key whole. */
#define PENDING_ROUNDS 64

typedef struct asm_block {
    kvt_key key;
    kvt__reservation *r;
    char *slot;        /* the reserved slot's bytes */
    uint64_t started;  /* store clock at the first fragment */
    uint32_t have;     /* fragments put so far */
    uint32_t copiers;  /* calls copying into the slot now */
    int doomed;        /* aborted while copied into: its last copier aborts it */
    uint8_t got[];     /* per fragment: put yet */
} asm_block;

struct kvt__assembly {
    pthread_mutex_t lock;
    size_t n;
    asm_block *b[ASSEMBLE_MAX]; /* the first n are assembling */
};

static struct kvt__assembly *assembly(kvt_store *s, int create)
{
    struct kvt__assembly *a = atomic_load_explicit(&s->assembly, memory_order_acquire);
    if (a || !create)
        return a;
    struct kvt__assembly *fresh = kvt__calloc(1, sizeof *fresh);
    if (!fresh)
        return NULL;
    pthread_mutex_init(&fresh->lock, NULL);
    if (!atomic_compare_exchange_strong(&s->assembly, &a, fresh)) {
        pthread_mutex_destroy(&fresh->lock);
        kvt__free(fresh);
        return a;
    }
    return fresh;
}

/* Takes b out of the table (lock held). */
static void unlist(struct kvt__assembly *a, size_t i)
{
    a->b[i] = a->b[--a->n];
    a->b[a->n] = NULL;
}

static asm_block *find(struct kvt__assembly *a, const kvt_key *key, size_t *at)
{
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(&a->b[i]->key, key, sizeof *key) == 0) {
            if (at)
                *at = i;
            return a->b[i];
        }
    return NULL;
}

static void abort_block(kvt_store *s, asm_block *b)
{
    kvt__store_abort(b->r);
    CNT(&s->st, assembly_aborted);
    ADD(&s->st, assembling, (uint64_t)-1);
    kvt__free(b);
}

/* Unlists the blocks `doom` picks (lock held): those no call copies into
 * go to out[], the others are left to their last copier. */
typedef int (*doom_fn)(const asm_block *b, const void *arg);

static void drop_where(kvt_store *s, doom_fn doom, const void *arg)
{
    struct kvt__assembly *a = assembly(s, 0);
    if (!a)
        return;
    asm_block *out[ASSEMBLE_MAX];
    size_t k = 0;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->n;) {
        asm_block *b = a->b[i];
        if (!doom(b, arg)) {
            i++;
            continue;
        }
        unlist(a, i);
        if (b->copiers)
            b->doomed = 1;
        else
            out[k++] = b;
    }
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; i < k; i++)
        abort_block(s, out[i]);
}

static int doom_all(const asm_block *b, const void *arg)
{
    (void)b;
    (void)arg;
    return 1;
}

static int doom_old(const asm_block *b, const void *arg)
{
    /* A block another thread started after `now` was read is young. */
    uint64_t now = *(const uint64_t *)arg;
    return now > b->started && now - b->started >= ASSEMBLE_AGE_NS;
}

typedef struct key_set {
    const kvt_key *keys;
    size_t n;
} key_set;

static int doom_keys(const asm_block *b, const void *arg)
{
    const key_set *ks = arg;
    for (size_t i = 0; i < ks->n; i++)
        if (memcmp(&ks->keys[i], &b->key, sizeof b->key) == 0)
            return 1;
    return 0;
}

void kvt__assemble_expire(kvt_store *s)
{
    if (!assembly(s, 0))
        return;
    uint64_t now = kvt__store_now(s);
    drop_where(s, doom_old, &now);
}

void kvt__assemble_drop(kvt_store *s, const kvt_key *keys, size_t n)
{
    key_set ks = {keys, n};
    drop_where(s, doom_keys, &ks);
    kvt__assemble_expire(s);
}

void kvt__assemble_drop_all(kvt_store *s)
{
    drop_where(s, doom_all, NULL);
}

void kvt__assemble_close(kvt_store *s)
{
    kvt__assemble_drop_all(s); /* no call is active: none is copied into */
    struct kvt__assembly *a = assembly(s, 0);
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    kvt__free(a);
    atomic_store_explicit(&s->assembly, NULL, memory_order_release);
}

/* Commits a complete block: what a whole-block put of it does after its
 * copy. Returns its status. */
static int32_t commit_block(kvt_store *s, asm_block *b, const kvt_io_opts *o)
{
    int32_t st = 0;
    int rc = kvt__store_commit(b->r, &st);
    if (rc < 0 && !st)
        st = rc;
    ADD(&s->st, assembling, (uint64_t)-1);
    if (!st) {
        CNT(&s->st, assembled);
        kvt__groups_tag(s, &b->key, 1, o); /* the group of the call that completed it */
    }
    kvt__free(b);
    return st;
}

/* The assembling block of key, with this call counted as its copier;
 * a new one (reserved now) when none is; NULL with *code 0 when the store
 * holds the key whole (nothing to write), else with an error. */
static asm_block *claim(kvt_store *s, struct kvt__assembly *a, const kvt_key *key,
                        const kvt_io_opts *o, int32_t *code)
{
    *code = 0;
    for (int round = 0;; round++) {
        pthread_mutex_lock(&a->lock);
        asm_block *b = find(a, key, NULL);
        if (b)
            b->copiers++;
        pthread_mutex_unlock(&a->lock);
        if (b)
            return b;

        int32_t st;
        uint32_t slot = 0;
        kvt__reservation *r = NULL;
        int rc = kvt__store_reserve(s, key, 1, o, &st, &slot, &r);
        if (rc < 0) {
            *code = rc;
            return NULL;
        }
        if (rc == 0) {
            if (st == KVT__ZC_HELD) { /* held whole: as a put of it, nothing copied */
                if (kvt__store_commit(r, NULL) >= 0)
                    kvt__groups_tag(s, key, 1, o);
                return NULL;
            }
            kvt__store_abort(r);
            if (st != KVT__ZC_STAGE) {
                *code = st;
                return NULL;
            }
            /* Another call is writing the key: one of ours assembling it
             * (listed at the next look) or a whole-block put. */
            if (round == PENDING_ROUNDS) {
                *code = kvt__err(KVT_EBUSY, "kvt_put: a fragment range of a block another put "
                                            "is still writing whole");
                return NULL;
            }
            kvt__backoff(round);
            continue;
        }
        kvt_tier_rt *tr = &s->tier[s->put_tier];
        b = kvt__calloc(1, sizeof *b + s->frags);
        if (!b) {
            kvt__store_abort(r);
            *code = kvt__err(KVT_ENOMEM, "kvt_put: a block to assemble");
            return NULL;
        }
        b->key = *key;
        b->r = r;
        b->slot = tr->ops->slot_ptr(tr->impl, slot);
        b->started = kvt__store_now(s);
        b->copiers = 1;
        pthread_mutex_lock(&a->lock);
        int full = a->n == ASSEMBLE_MAX;
        if (!full) {
            a->b[a->n++] = b;
            ADD(&s->st, assembling, 1);
        }
        pthread_mutex_unlock(&a->lock);
        if (full) {
            kvt__store_abort(r);
            kvt__free(b);
            *code = kvt__err(KVT_EBUSY, "kvt_put: %d blocks assembling already", ASSEMBLE_MAX);
            return NULL;
        }
        return b;
    }
}

/* Copies fragments first .. first+count-1 of one block into b's slot and
 * lets go of it: commits it when it is complete and this was its last
 * copier, aborts it when it was dropped meanwhile. */
static int32_t fill(kvt_store *s, struct kvt__assembly *a, asm_block *b, void *const *ptrs,
                    uint32_t first, uint32_t count, const kvt_io_opts *o)
{
    for (uint32_t f = 0; f < count; f++)
        memcpy(b->slot + (size_t)(first + f) * s->frag_bytes, ptrs[f], s->frag_bytes);
    int done = 0, doomed = 0;
    pthread_mutex_lock(&a->lock);
    for (uint32_t f = first; f < first + count; f++)
        if (!b->got[f]) {
            b->got[f] = 1;
            b->have++;
        }
    b->copiers--;
    if (b->doomed) {
        doomed = !b->copiers;
    } else if (b->have == s->frags && !b->copiers) {
        size_t at;
        if (find(a, &b->key, &at) == b) {
            unlist(a, at);
            done = 1;
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (doomed) {
        abort_block(s, b);
        return 0; /* accepted, then dropped by a remove: as a put cancelled */
    }
    return done ? commit_block(s, b, o) : 0;
}

int kvt__assemble_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                      const kvt_io_opts *o, uint32_t first, uint32_t count)
{
    int32_t *status = o ? o->status : NULL;
    struct kvt__assembly *a = assembly(s, 1);
    if (!a)
        return kvt__err(KVT_ENOMEM, "kvt_put: the assembly table");
    kvt__assemble_expire(s);
    int taken = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t code;
        asm_block *b = claim(s, a, &keys[i], o, &code);
        if (b)
            code = fill(s, a, b, ptrs + i * count, first, count, o);
        if (status)
            status[i] = code;
        taken += code == 0;
    }
    return taken;
}
