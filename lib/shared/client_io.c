/* client_io.c — kvt_put and kvt_get on a connected store (docs/shared.md):
 * through the server's shared DRAM arena (protocol v2: RESERVE, copies in,
 * COMMIT; HOLD, copies out, UNHOLD), and through the connection's staging
 * slots (version 1's path, and version 2's for the blocks the arena can't
 * take). Device memory (KVT_MEM_CUDA, CUDA builds, arena only): the client
 * registers the arena with CUDA and makes the device copies itself, by the
 * same CUDA layer as a store's DRAM tier; blocks the server sends to the
 * staging path fail with KVT_ENOTSUP (the staging is not registered). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "copy.h"
#include "cuda.h"
#include "error.h"
#include "shared/client.h"
#include "shared/proto.h"

/* The staging path (protocol v1's, and v2's fallback): the client copies
 * into its staging slots, the server copies from there (and back for a
 * get). Caller holds c->lock. */
static int staged_io(kvt__client *c, int is_put, const kvt_key *keys, size_t n,
                     void *const *ptrs, uint32_t flags, uint32_t retain, int32_t *status,
                     const char *fn)
{
    size_t frag_bytes = c->block_bytes / c->frags;
    uint32_t per = c->max_keys < c->nslots ? c->max_keys : c->nslots;
    uint32_t slots[KVT_PROTO_MAX_KEYS];
    for (uint32_t i = 0; i < per; i++)
        slots[i] = i;
    int total = 0;
    for (size_t at = 0; at < n;) {
        uint32_t k = (uint32_t)(n - at < per ? n - at : per);
        if (is_put) /* the client's own copy, before the server sees the slots */
            for (uint32_t i = 0; i < k; i++)
                for (uint32_t f = 0; f < c->frags; f++)
                    memcpy(c->staging + (size_t)i * c->block_bytes + f * frag_bytes,
                           ptrs[(at + i) * c->frags + f], frag_bytes);
        int rc = kvt__client_rpc(c, is_put ? KVT_OP_PUT : KVT_OP_GET, k, flags, retain, keys + at,
                                 slots, status + at, k * sizeof *status, NULL, NULL, NULL, fn);
        if (rc < 0)
            return rc;
        if (!is_put)
            for (uint32_t i = 0; i < k; i++)
                if (status[at + i] == 0)
                    for (uint32_t f = 0; f < c->frags; f++)
                        memcpy(ptrs[(at + i) * c->frags + f],
                               c->staging + (size_t)i * c->block_bytes + f * frag_bytes,
                               frag_bytes);
        total += rc;
        at += k;
    }
    return total;
}

/* UNHOLD has no reply: the next request's reply follows it in order. */
static int send_unhold(kvt__client *c, const char *fn)
{
    kvt__msg_hdr h = {.magic = KVT_PROTO_MAGIC, .op = KVT_OP_UNHOLD, .seq = ++c->seq};
    ssize_t r;
    do
        r = send(c->fd, &h, sizeof h, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)sizeof h ? 0 : kvt__client_gone(c, fn);
}

/* The copies of one request: host memory on the copier's threads (or here,
 * one at a time when ops could not be batched), device memory (dev >= 0)
 * by the CUDA layer. 0, or the CUDA layer's KVT_EIO. */
static int run_copy(kvt__client *c, int dev, int is_put, const kvt__copy_op *ops, size_t n)
{
    if (dev < 0) {
        kvt__copier_run(c->copier, ops, n);
        return 0;
    }
    return kvt__cuda_copy(dev, is_put ? KVT__CUDA_D2H : KVT__CUDA_H2D, 0, ops, n, &c->cuda);
}

/* One request's worth of keys through the arena (protocol v2): a put is
 * RESERVE, the client's copies into the slots, COMMIT (its own request:
 * kvt_put returns with the blocks readable by every client and the
 * statuses final, KVT_IO_DURABLE included); a get is HOLD, the copies out,
 * UNHOLD (sent without waiting). status[i] KVT_PROTO_ZC_STAGE: the block
 * goes the staging path. dev >= 0: ptrs are memory of that device. A
 * device copy that fails fails the request's blocks (KVT_EIO), a put's
 * reservation aborted. Caller holds c->lock. */
static int zero_copy_io(kvt__client *c, int is_put, const kvt_key *keys, uint32_t k,
                        void *const *ptrs, int dev, uint32_t flags, uint32_t retain,
                        int32_t *status, const char *fn)
{
    size_t frag_bytes = c->block_bytes / c->frags;
    int rc = kvt__client_rpc(c, is_put ? KVT_OP_RESERVE : KVT_OP_HOLD, k, flags, retain, keys,
                             NULL, c->zc, (size_t)k * 12, NULL, NULL, NULL, fn);
    if (rc < 0)
        return rc;
    memcpy(status, c->zc, (size_t)k * sizeof *status);
    /* One batch of every fragment, split across the copy threads; without
     * memory for it, fragment by fragment here. */
    kvt__copy_op *ops = rc > 0 ? kvt__malloc((size_t)rc * c->frags * sizeof *ops) : NULL;
    size_t nops = 0;
    int bad = 0, copy_rc = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (status[i] != 0)
            continue;
        uint64_t off;
        memcpy(&off, c->zc + (size_t)k * 4 + (size_t)i * 8, 8);
        if (off % c->block_bytes || off > c->arena_bytes - c->block_bytes ||
            (ops && nops + c->frags > (size_t)rc * c->frags)) {
            bad = 1; /* not a slot of the arena, or more than it said: not a server to trust */
            break;
        }
        uint8_t *slot = c->arena + off;
        for (uint32_t f = 0; f < c->frags; f++) {
            uint8_t *user = ptrs[(size_t)i * c->frags + f], *at = slot + f * frag_bytes;
            kvt__copy_op op = is_put ? (kvt__copy_op){at, user, frag_bytes}
                                     : (kvt__copy_op){user, at, frag_bytes};
            if (ops)
                ops[nops++] = op;
            else if (dev < 0)
                memcpy(op.dst, op.src, op.len);
            else if (!copy_rc)
                copy_rc = run_copy(c, dev, is_put, &op, 1);
        }
    }
    if (ops && !bad)
        copy_rc = run_copy(c, dev, is_put, ops, nops);
    kvt__free(ops);
    if (bad)
        return kvt__client_gone(c, fn);
    if (copy_rc) {
        /* The device copy failed: no block of this request is stored or
         * read; a put's reserved slots go back unpublished. */
        for (uint32_t i = 0; i < k; i++)
            if (status[i] == 0)
                status[i] = copy_rc;
        if (is_put) {
            int arc = kvt__client_rpc(c, KVT_OP_COMMIT, k, 1, 0, NULL, NULL, c->zc,
                                      (size_t)k * sizeof *status, NULL, NULL, NULL, fn);
            if (arc < 0)
                return arc;
        } else if (rc > 0 && send_unhold(c, fn)) {
            return KVT_ECLOSED;
        }
        kvt__err(copy_rc, "%s: device copy %s the shared arena failed", fn,
                 is_put ? "into" : "out of");
        return 0;
    }
    if (!is_put)
        return rc > 0 && send_unhold(c, fn) ? KVT_ECLOSED : rc;
    return kvt__client_rpc(c, KVT_OP_COMMIT, k, 0, 0, NULL, NULL, status,
                           (size_t)k * sizeof *status, NULL, NULL, NULL, fn);
}

/* The blocks zero_copy_io left to the staging path, there; device memory
 * (dev >= 0) does not go there: those blocks fail with KVT_ENOTSUP. */
static int stage_rest(kvt__client *c, int is_put, const kvt_key *keys, uint32_t k,
                      void *const *ptrs, int dev, uint32_t flags, uint32_t retain,
                      int32_t *status, const char *fn)
{
    uint32_t idx[KVT_PROTO_MAX_KEYS], m = 0;
    for (uint32_t i = 0; i < k; i++)
        if (status[i] == KVT_PROTO_ZC_STAGE)
            idx[m++] = i;
    if (!m)
        return 0;
    if (dev >= 0) {
        for (uint32_t j = 0; j < m; j++)
            status[idx[j]] = KVT_ENOTSUP;
        kvt__err(KVT_ENOTSUP, "%s: %u block(s) the server could not give arena slots, from "
                              "device memory (the staging path takes host memory only)",
                 fn, m);
        return 0;
    }
    kvt_key *mk = kvt__malloc((size_t)m * sizeof *mk);
    void **mp = kvt__malloc((size_t)m * c->frags * sizeof *mp);
    int32_t *ms = kvt__malloc((size_t)m * sizeof *ms);
    int rc = KVT_ENOMEM;
    if (mk && mp && ms) {
        for (uint32_t j = 0; j < m; j++) {
            mk[j] = keys[idx[j]];
            memcpy(mp + (size_t)j * c->frags, ptrs + (size_t)idx[j] * c->frags,
                   c->frags * sizeof *mp);
        }
        rc = staged_io(c, is_put, mk, m, mp, flags, retain, ms, fn);
        if (rc >= 0)
            for (uint32_t j = 0; j < m; j++)
                status[idx[j]] = ms[j];
    } else {
        kvt__err(KVT_ENOMEM, "%s: out of memory", fn);
    }
    kvt__free(mk);
    kvt__free(mp);
    kvt__free(ms);
    return rc;
}

int kvt__client_io(kvt__client *c, int is_put, const kvt_key *keys, size_t n, void *const *ptrs,
                   const kvt_io_opts *o)
{
    const char *fn = is_put ? "kvt_put" : "kvt_get";
    int32_t *status = o && o->status ? o->status : kvt__malloc(n * sizeof *status);
    if (!status)
        return kvt__err(KVT_ENOMEM, "%s: out of memory", fn);
    uint32_t flags = o ? o->flags : 0, retain = is_put && o ? o->retain_s : 0;
    int total = 0, dev = -1;
    pthread_mutex_lock(&c->lock);
    if (o && o->mem_kind == KVT_MEM_CUDA) { /* check_io: only with an arena, CUDA built */
        dev = o->device;
        /* Once, at the first device call: the arena announced to CUDA and
         * pinned in the background; copies take the fast paths chunk by
         * chunk as it is pinned, the pageable path before. */
        if (!c->cuda_region_added) {
            int rc = kvt__cuda_region_add(c->arena, c->arena_bytes, c->block_bytes, dev,
                                          &c->cuda_region);
            if (rc) {
                pthread_mutex_unlock(&c->lock);
                if (!(o && o->status))
                    kvt__free(status);
                return rc;
            }
            c->cuda_region_added = 1;
        }
        kvt__cuda_region_pin(c->cuda_region);
    }
    if (!c->arena) {
        total = staged_io(c, is_put, keys, n, ptrs, flags, retain, status, fn);
    } else {
        for (size_t at = 0; at < n;) {
            uint32_t k = (uint32_t)(n - at < c->max_keys ? n - at : c->max_keys);
            void *const *p = ptrs + at * c->frags;
            int rc = zero_copy_io(c, is_put, keys + at, k, p, dev, flags, retain, status + at,
                                  fn);
            int staged = rc < 0 ? 0 : stage_rest(c, is_put, keys + at, k, p, dev, flags, retain,
                                                 status + at, fn);
            if (rc < 0 || staged < 0) {
                total = rc < 0 ? rc : staged;
                break;
            }
            total += rc + staged;
            at += k;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (!(o && o->status))
        kvt__free(status);
    return total;
}

