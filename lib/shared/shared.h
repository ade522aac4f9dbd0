/* shared.h — the library's side of serving and connecting (docs/shared.md):
 * how lib/api.c hands a connected store's calls to lib/shared/client.c. */
#ifndef KVT_SHARED_H
#define KVT_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

/* The first field of a connected store, where an opened one has
 * KVT_STORE_MAGIC: the public calls tell the two apart by it. */
#define KVT_CLIENT_MAGIC 0x4b56434cu

/* Whether s is a connected store (reads its first 4 bytes, as the store
 * calls read a store's magic). */
int kvt__is_client(const kvt_store *s);

/* In lib/api.c's calls: a connected store's call goes to the client. */
#define KVT__CLIENT_DISPATCH(s, call)  \
    do {                               \
        if (kvt__is_client(s))         \
            return call;               \
    } while (0)

/* kvt_close of a connected store, told by address (nothing dereferenced,
 * so a second close is safe): 1 with *rc set when s was one, else 0. */
int kvt__client_try_close(kvt_store *s, int *rc);

/* The public calls on a connected store (client.c, client_async.c). */
int kvt__client_notsup(kvt_store *s, const char *fn);
int kvt__client_tier_count(kvt_store *s);
const char *kvt__client_tier_name(kvt_store *s, int tier);
int kvt__client_tier_find(kvt_store *s, const char *name);
int kvt__client_tier_available(kvt_store *s, int tier);
int kvt__client_lookup(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers,
                       uint32_t lease_ms);
int kvt__client_contains(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers);
int kvt__client_touch(kvt_store *s, const kvt_key *keys, size_t n);
int kvt__client_pin(kvt_store *s, const kvt_key *keys, size_t n, uint32_t lease_ms);
int kvt__client_release(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status);
int kvt__client_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *o, kvt_ticket *ticket);
int kvt__client_get(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *o, kvt_ticket *ticket);
int kvt__client_remove(kvt_store *s, const kvt_key *keys, size_t n);
int kvt__client_clear(kvt_store *s);
int kvt__client_flush(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status);
int kvt__client_wait(kvt_store *s, kvt_ticket ticket, int timeout_ms);
int kvt__client_poll(kvt_store *s, kvt_ticket ticket);
int kvt__client_eventfd(kvt_store *s);
int kvt__client_stats(kvt_store *s, kvt_stat_fn fn, void *user);
int kvt__client_stat(kvt_store *s, const char *name, uint64_t *value);

/* The `size` rule of the structs crossing the ABI (kvtier.h, top): at
 * least min (the struct's first version), bytes past known all zero, at
 * most 4096. p NULL is fine. */
int kvt__check_opts_size(const void *p, uint32_t size, size_t min, size_t known, const char *fn,
                         const char *type);

#endif
