/* zero_copy.c — the server's side of protocol v2's zero copy
 * (docs/shared.md): a connection's reservation (RESERVE → the client's
 * copies into the arena → COMMIT) and read references (HOLD → the client's
 * copies out → UNHOLD), both let go when the connection ends. The store's
 * half is lib/store/reserve.c. */
#include "shared/zero_copy.h"

#include <string.h>

/* Status i32[n] then offset u64[n] (the slot's place in the arena). */
static void put_offsets(uint8_t *payload, uint32_t n, const int32_t *status,
                        const uint32_t *slots, uint64_t block_bytes)
{
    memcpy(payload, status, (size_t)n * sizeof *status);
    uint8_t *off = payload + (size_t)n * sizeof *status;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t o = status[i] == 0 ? (uint64_t)slots[i] * block_bytes : 0;
        memcpy(off + (size_t)i * 8, &o, 8);
    }
}

/* One reservation at a time: a second aborts the first (a client of this
 * library never sends one). */
int kvt__zc_reserve(kvt__zc_conn *z, kvt_store *s, uint64_t block_bytes, const kvt__request *rq,
                    uint8_t *payload)
{
    int32_t status[KVT_PROTO_MAX_KEYS];
    uint32_t slots[KVT_PROTO_MAX_KEYS];
    kvt__store_abort(z->reservation);
    z->reservation = NULL;
    if ((rq->arg0 & KVT_IO_DURABLE) && s->durable_tier < 0)
        return kvt__err(KVT_ENOTSUP, "kvt_put: KVT_IO_DURABLE, but the store has no "
                                     "persistent tier");
    kvt_io_opts o = {.size = sizeof o, .flags = rq->arg0, .retain_s = rq->arg1};
    int rc = kvt__store_reserve(s, rq->keys, rq->n, &o, status, slots, &z->reservation);
    if (rc >= 0)
        put_offsets(payload, rq->n, status, slots, block_bytes);
    return rc;
}

int kvt__zc_commit(kvt__zc_conn *z, const kvt__request *rq, int32_t *status)
{
    kvt__reservation *r = z->reservation;
    if (!r || kvt__reservation_keys(r) != rq->n)
        return kvt__err(KVT_EINVAL, "commit: no reservation of %u keys", rq->n);
    z->reservation = NULL;
    if (rq->arg0) {
        kvt__store_abort(r);
        memset(status, 0, (size_t)rq->n * sizeof *status);
        return 0;
    }
    return kvt__store_commit(r, status);
}

void kvt__zc_unhold(kvt__zc_conn *z, kvt_store *s)
{
    if (z->nheld)
        kvt__store_unhold(s, z->held, z->nheld);
    z->nheld = 0;
}

/* Blocks held before are let go first: the client sends UNHOLD after each
 * HOLD, and one that did not holds no more than one request's worth. */
int kvt__zc_hold(kvt__zc_conn *z, kvt_store *s, uint64_t block_bytes, const kvt__request *rq,
                 uint8_t *payload)
{
    int32_t status[KVT_PROTO_MAX_KEYS];
    uint32_t slots[KVT_PROTO_MAX_KEYS], ids[KVT_PROTO_MAX_KEYS];
    kvt__zc_unhold(z, s);
    if (!z->held && !(z->held = kvt__malloc(KVT_PROTO_MAX_KEYS * sizeof *z->held)))
        return kvt__err(KVT_ENOMEM, "kvt_get: server out of memory");
    int rc = kvt__store_hold(s, rq->keys, rq->n, (rq->arg0 & KVT_IO_NO_PROMOTE) != 0, ids, slots,
                             status);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < rq->n; i++)
        if (status[i] == 0)
            z->held[z->nheld++] = ids[i];
    put_offsets(payload, rq->n, status, slots, block_bytes);
    return rc;
}

void kvt__zc_end(kvt__zc_conn *z, kvt_store *s)
{
    kvt__store_abort(z->reservation);
    z->reservation = NULL;
    kvt__zc_unhold(z, s);
    kvt__free(z->held);
    z->held = NULL;
}
