/* key.c — chained prefix keys and namespace keys, key spec v1 (docs/key-spec.md). */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "error.h"

static const char ns_magic[] = "kvtier-ns-v1";

static void to_key(XXH128_hash_t h, kvt_key *out)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out->b, c.digest, sizeof out->b);
}

int kvt_ns_key(const kvt_ns_field *fields, size_t n, kvt_key *out)
{
    if (!out || (n && !fields))
        return kvt__err(KVT_ENULL, "kvt_ns_key: %s is NULL", out ? "fields" : "out");
    for (size_t i = 0; i < n; i++) {
        if (fields[i].tag > 255)
            return kvt__err(KVT_EINVAL, "kvt_ns_key: field %zu has tag %u > 255", i,
                            fields[i].tag);
        if (fields[i].len && !fields[i].data)
            return kvt__err(KVT_ENULL, "kvt_ns_key: field %zu has len %u and NULL data", i,
                            fields[i].len);
    }
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, ns_magic, sizeof ns_magic - 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t head[5] = {(uint8_t)fields[i].tag, (uint8_t)fields[i].len,
                           (uint8_t)(fields[i].len >> 8), (uint8_t)(fields[i].len >> 16),
                           (uint8_t)(fields[i].len >> 24)};
        XXH3_128bits_update(&st, head, sizeof head);
        if (fields[i].len)
            XXH3_128bits_update(&st, fields[i].data, fields[i].len);
    }
    to_key(XXH3_128bits_digest(&st), out);
    return 0;
}

/* Tokens are hashed as u32 little-endian. On a little-endian machine that is
 * their memory layout, so a block hashes straight from the caller's array;
 * elsewhere it is byte-swapped through a small buffer. */
static void update_tokens(XXH3_state_t *st, const uint32_t *t, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    XXH3_128bits_update(st, t, n * sizeof *t);
#else
    uint32_t buf[256];
    while (n) {
        size_t k = n < 256 ? n : 256;
        for (size_t i = 0; i < k; i++)
            buf[i] = __builtin_bswap32(t[i]);
        XXH3_128bits_update(st, buf, k * sizeof *buf);
        t += k;
        n -= k;
    }
#endif
}

int kvt_key_chain(const kvt_key *parent, const uint32_t *tokens, size_t ntokens,
                  uint32_t block_tokens, kvt_key *out, size_t out_cap)
{
    if (!parent || (ntokens && !tokens))
        return kvt__err(KVT_ENULL, "kvt_key_chain: %s is NULL", parent ? "tokens" : "parent");
    if (block_tokens == 0)
        return kvt__err(KVT_ESIZE, "kvt_key_chain: block_tokens is 0");
    size_t nblocks = ntokens / block_tokens;
    if (nblocks > (size_t)INT32_MAX)
        return kvt__err(KVT_ESIZE, "kvt_key_chain: %zu blocks is too many for one call", nblocks);
    if (nblocks && !out)
        return kvt__err(KVT_ENULL, "kvt_key_chain: out is NULL");
    if (out_cap < nblocks)
        return kvt__err(KVT_ESIZE, "kvt_key_chain: out holds %zu keys, %zu needed", out_cap,
                        nblocks);
    kvt_key prev = *parent;
    XXH3_state_t st;
    for (size_t i = 0; i < nblocks; i++) {
        XXH3_128bits_reset(&st);
        XXH3_128bits_update(&st, prev.b, sizeof prev.b);
        update_tokens(&st, tokens + i * block_tokens, block_tokens);
        to_key(XXH3_128bits_digest(&st), &out[i]);
        prev = out[i];
    }
    return (int)nblocks;
}

int kvt_key_hex(const kvt_key *key, char out[33])
{
    static const char digits[] = "0123456789abcdef";
    if (!key || !out)
        return kvt__err(KVT_ENULL, "kvt_key_hex: %s is NULL", key ? "out" : "key");
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[key->b[i] >> 4];
        out[2 * i + 1] = digits[key->b[i] & 15];
    }
    out[32] = '\0';
    return 0;
}

/* Folding engine keys (docs/key-spec.md, "Folding engine keys"). The magic
 * string separates fold inputs from chain inputs, which begin with a key:
 * an engine hash can never be read as tokens of a chained block. */
static const char fold_magic[] = "kvtier-fold-v1";

static void fold_one(const kvt_key *ns, const void *bytes, size_t len, kvt_key *out)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, fold_magic, sizeof fold_magic - 1);
    XXH3_128bits_update(&st, ns->b, sizeof ns->b);
    if (len)
        XXH3_128bits_update(&st, bytes, len);
    to_key(XXH3_128bits_digest(&st), out);
}

int kvt_key_fold(const kvt_key *ns, const void *bytes, size_t len, kvt_key *out)
{
    if (!ns || !out || (len && !bytes))
        return kvt__err(KVT_ENULL, "kvt_key_fold: %s is NULL",
                        !ns ? "ns" : !out ? "out" : "bytes");
    fold_one(ns, bytes, len, out);
    return 0;
}

int kvt_key_fold_many(const kvt_key *ns, const void *bytes, size_t item_len, size_t n,
                      kvt_key *out)
{
    if (!ns || (n && (!out || (item_len && !bytes))))
        return kvt__err(KVT_ENULL, "kvt_key_fold_many: %s is NULL",
                        !ns ? "ns" : !out ? "out" : "bytes");
    if (n > (size_t)INT32_MAX)
        return kvt__err(KVT_ESIZE, "kvt_key_fold_many: %zu keys is too many for one call", n);
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n; i++)
        fold_one(ns, p + i * item_len, item_len, &out[i]);
    return (int)n;
}
