/* lookup.c — lookup, contains, pins and leases. */
#include "internal.h"

/* ---------------------------------------------------------------- lookup */

int kvt__store_lookup(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers,
                      uint32_t lease_ms)
{
    kvt__expire_due(s);
    uint64_t now = kvt__store_now(s);
    uint32_t deadline = kvt__rel_ms(s, now) + lease_ms;
    size_t h = 0;
    CNT(&s->st, lookups);
    ADD(&s->st, lookup_blocks, n);
    for (size_t i = 0; i < n && i < 16; i++)
        kvt__index_prefetch(&s->ix, &keys[i]);
    for (size_t i = 0; i < n && i < 8; i++)
        kvt__index_prefetch_entry(&s->ix, &keys[i]);
    for (; h < n; h++) {
        if (h + 16 < n)
            kvt__index_prefetch(&s->ix, &keys[h + 16]);
        if (h + 8 < n)
            kvt__index_prefetch_entry(&s->ix, &keys[h + 8]);
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[h]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[h]);
        int t = -1;
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            t = kvt__fastest(e);
            if (t >= 0 && lease_ms) {
                if (!kvt__pinned(s, e, now) || (int32_t)(deadline - e->pin_deadline_ms) > 0)
                    e->pin_deadline_ms = deadline;
                if (e->pins < UINT16_MAX)
                    e->pins++;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        if (t < 0)
            break;
        if (tiers)
            tiers[h] = (uint8_t)t;
    }
    if (tiers)
        for (size_t i = h; i < n; i++)
            tiers[i] = KVT_TIER_NONE;
    /* Blocks other processes may have put into key-addressed tiers: the
     * prefix goes on there. Not with a lease: such a tier owns their
     * lifetime and they can't be pinned, and a count that included them
     * would have the caller (or the node-shared server, for its client)
     * release pins that were never taken. */
    if (s->nkeyed && h < n && !lease_ms)
        h = kvt__keyed_lookup(s, keys, h, n, tiers, 1);
    ADD(&s->st, lookup_hit_blocks, h);
    if (lease_ms)
        ADD(&s->st, pins, h);
    return (int)h;
}

/* kvt_lookup's walk without the stop at the first miss, and without pins:
 * what SGLang's batch_exists_v2 asks of a model whose trailing pages (Mamba,
 * SWA) are stored apart from the prefix. Removed entries are unlinked and
 * tombstones have no readable residency: fastest() says -1 for both. */
int kvt__store_contains(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers)
{
    kvt__expire_due(s);
    if (!s->nkeyed)
        return kvt__contains_local(s, keys, n, tiers);
    /* Keys the slot tiers miss are asked of the key-addressed tiers. */
    uint8_t *own = tiers ? NULL : kvt__malloc(n);
    if (!tiers && !own)
        return kvt__err(KVT_ENOMEM, "kvt_contains: %zu keys", n);
    uint8_t *t = tiers ? tiers : own;
    int h = kvt__contains_local(s, keys, n, t);
    h += (int)kvt__keyed_lookup(s, keys, 0, n, t, 0);
    kvt__free(own);
    return h;
}

int kvt__contains_local(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers)
{
    size_t h = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        kvt__index_prefetch(&s->ix, &keys[i]);
    for (size_t i = 0; i < n && i < 8; i++)
        kvt__index_prefetch_entry(&s->ix, &keys[i]);
    for (size_t i = 0; i < n; i++) {
        if (i + 16 < n)
            kvt__index_prefetch(&s->ix, &keys[i + 16]);
        if (i + 8 < n)
            kvt__index_prefetch_entry(&s->ix, &keys[i + 8]);
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        int t = id == KVT_NO_ENTRY ? -1 : kvt__fastest(kvt__index_entry(&s->ix, id));
        pthread_mutex_unlock(&sh->lock);
        if (t >= 0)
            h++;
        if (tiers)
            tiers[i] = t < 0 ? KVT_TIER_NONE : (uint8_t)t;
    }
    return (int)h;
}

int kvt__store_pin(kvt_store *s, const kvt_key *keys, size_t n, uint32_t lease_ms)
{
    kvt__expire_due(s);
    /* All or nothing: pin as we go, and undo on the first absent key. */
    int h = kvt__store_lookup(s, keys, n, NULL, lease_ms);
    if (h < 0 || (size_t)h == n)
        return h;
    kvt__store_release(s, keys, (size_t)h, NULL);
    char hex[33];
    kvt_key_hex(&keys[h], hex);
    return kvt__err(KVT_ENOENT, "kvt_pin: key %d (%s) is not held; nothing pinned", h, hex);
}

int kvt__store_release(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status)
{
    uint64_t now = kvt__store_now(s);
    int released = 0;
    for (size_t i = 0; i < n; i++) {
        kvt_shard *sh = kvt__index_shard(&s->ix, &keys[i]);
        pthread_mutex_lock(&sh->lock);
        uint32_t id = kvt__index_find(&s->ix, sh, &keys[i]);
        int ok = 0;
        if (id != KVT_NO_ENTRY) {
            kvt_entry *e = kvt__index_entry(&s->ix, id);
            if (kvt__pinned(s, e, now)) {
                e->pins--;
                ok = 1;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        released += ok;
        if (status)
            status[i] = ok ? 0 : KVT_ENOTPINNED;
    }
    return released;
}
