/* zero_copy.h — the server's side of protocol v2's zero copy
 * (docs/shared.md): what one connection holds in the shared DRAM arena. */
#ifndef KVT_SHARED_ZERO_COPY_H
#define KVT_SHARED_ZERO_COPY_H

#include <stdint.h>

#include "shared/proto.h"
#include "store/internal.h"

/* One connection's: zeroed at its start, kvt__zc_end at its end. */
typedef struct kvt__zc_conn {
    kvt__reservation *reservation; /* RESERVE's, until COMMIT */
    uint32_t *held;                /* HOLD's entries, until UNHOLD */
    uint32_t nheld;
} kvt__zc_conn;

/* RESERVE, HOLD: the reply's payload (status i32[n], offset u64[n]) into
 * payload; the blocks reserved or held (the client copies those), or an
 * error. */
int kvt__zc_reserve(kvt__zc_conn *z, kvt_store *s, uint64_t block_bytes, const kvt__request *rq,
                    uint8_t *payload);
int kvt__zc_hold(kvt__zc_conn *z, kvt_store *s, uint64_t block_bytes, const kvt__request *rq,
                 uint8_t *payload);
/* COMMIT (or abort, arg0 1): status[n]; the blocks stored, or an error. */
int kvt__zc_commit(kvt__zc_conn *z, const kvt__request *rq, int32_t *status);
/* UNHOLD: lets go of what the last HOLD gave. */
void kvt__zc_unhold(kvt__zc_conn *z, kvt_store *s);
/* The connection's end, whatever the reason: an uncommitted reservation
 * aborted (nothing visible, slots free), read references released. */
void kvt__zc_end(kvt__zc_conn *z, kvt_store *s);

#endif
