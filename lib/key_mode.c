/* key_mode.c — key modes: v1 XXH3-128 (key.c) or keyed BLAKE2b-128 for adversarial prompts (docs/key-spec.md). */
#include <string.h>

#include "error.h"

#ifndef KVT_HAVE_BLAKE2
#define KVT_HAVE_BLAKE2 0
#endif

#if KVT_HAVE_BLAKE2
#include <blake2.h>
#endif

/* Checks shared by both modes, so that a caller of the _mode functions gets
 * messages naming them, whichever mode does the work. */
static int check_mode(const char *fn, uint32_t mode, const void *secret, size_t secret_len)
{
    switch (mode) {
    case KVT_KEY_XXH3_128:
        /* A secret given to the unkeyed mode would be silently useless: the
         * caller believes keys are unpredictable and they are not. */
        if (secret_len)
            return kvt__err(KVT_ESIZE, "%s: mode xxh3-128 takes no secret (secret_len %zu)", fn,
                            secret_len);
        return 0;
    case KVT_KEY_BLAKE2B_128:
        if (!KVT_HAVE_BLAKE2)
            return kvt__err(KVT_ENOTSUP, "%s: mode blake2b-128 needs libb2, which this build "
                                         "lacks (meson -Dblake2=enabled)", fn);
        if (secret_len && !secret)
            return kvt__err(KVT_ENULL, "%s: secret is NULL", fn);
        if (secret_len < KVT_KEY_SECRET_MIN || secret_len > KVT_KEY_SECRET_MAX)
            return kvt__err(KVT_ESIZE, "%s: mode blake2b-128 needs a secret of %d..%d bytes, "
                                       "not %zu", fn, KVT_KEY_SECRET_MIN, KVT_KEY_SECRET_MAX,
                            secret_len);
        return 0;
    }
    return kvt__err(KVT_EINVAL, "%s: unknown key mode %u", fn, mode);
}

static int check_fields(const char *fn, const kvt_ns_field *fields, size_t n, const kvt_key *out)
{
    if (!out || (n && !fields))
        return kvt__err(KVT_ENULL, "%s: %s is NULL", fn, out ? "fields" : "out");
    for (size_t i = 0; i < n; i++) {
        if (fields[i].tag > 255)
            return kvt__err(KVT_EINVAL, "%s: field %zu has tag %u > 255", fn, i, fields[i].tag);
        if (fields[i].len && !fields[i].data)
            return kvt__err(KVT_ENULL, "%s: field %zu has len %u and NULL data", fn, i,
                            fields[i].len);
    }
    return 0;
}

/* Number of keys to write (>= 0), or an error. */
static int check_chain(const char *fn, const kvt_key *parent, const uint32_t *tokens,
                       size_t ntokens, uint32_t block_tokens, const kvt_key *out, size_t out_cap)
{
    if (!parent || (ntokens && !tokens))
        return kvt__err(KVT_ENULL, "%s: %s is NULL", fn, parent ? "tokens" : "parent");
    if (block_tokens == 0)
        return kvt__err(KVT_ESIZE, "%s: block_tokens is 0", fn);
    size_t nblocks = ntokens / block_tokens;
    if (nblocks > (size_t)INT32_MAX)
        return kvt__err(KVT_ESIZE, "%s: %zu blocks is too many for one call", fn, nblocks);
    if (nblocks && !out)
        return kvt__err(KVT_ENULL, "%s: out is NULL", fn);
    if (out_cap < nblocks)
        return kvt__err(KVT_ESIZE, "%s: out holds %zu keys, %zu needed", fn, out_cap, nblocks);
    return (int)nblocks;
}

#if KVT_HAVE_BLAKE2

/* Differs from v1's "kvtier-ns-v1", so no namespace hashes the same bytes in
 * both modes: the modes' keys can meet only by chance (2^-128), never by
 * construction. */
static const char b2_magic[] = "kvtier-ns-blake2b-v1";

/* The keyed state before any input: computed once per call and copied for
 * each key, since every key of a call uses the same secret. */
static void b2_start(blake2b_state *s, const void *secret, size_t secret_len)
{
    blake2b_init_key(s, sizeof(kvt_key), secret, secret_len);
}

static void b2_update(blake2b_state *s, const void *p, size_t n)
{
    blake2b_update(s, (const uint8_t *)p, n);
}

/* Tokens are hashed as u32 little-endian, as in v1 (see key.c). */
static void b2_tokens(blake2b_state *s, const uint32_t *t, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    b2_update(s, t, n * sizeof *t);
#else
    uint32_t buf[256];
    while (n) {
        size_t k = n < 256 ? n : 256;
        for (size_t i = 0; i < k; i++)
            buf[i] = __builtin_bswap32(t[i]);
        b2_update(s, buf, k * sizeof *buf);
        t += k;
        n -= k;
    }
#endif
}

/* The states hold the padded secret until their first compression: wiped
 * so that it does not linger on the caller's stack. */
static void b2_wipe(blake2b_state *s)
{
    explicit_bzero(s, sizeof *s);
}

static void b2_ns(const void *secret, size_t secret_len, const kvt_ns_field *fields, size_t n,
                  kvt_key *out)
{
    blake2b_state st;
    b2_start(&st, secret, secret_len);
    b2_update(&st, b2_magic, sizeof b2_magic - 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t head[5] = {(uint8_t)fields[i].tag, (uint8_t)fields[i].len,
                           (uint8_t)(fields[i].len >> 8), (uint8_t)(fields[i].len >> 16),
                           (uint8_t)(fields[i].len >> 24)};
        b2_update(&st, head, sizeof head);
        if (fields[i].len)
            b2_update(&st, fields[i].data, fields[i].len);
    }
    blake2b_final(&st, out->b, sizeof out->b);
    b2_wipe(&st);
}

static void b2_chain(const void *secret, size_t secret_len, const kvt_key *parent,
                     const uint32_t *tokens, size_t nblocks, uint32_t block_tokens, kvt_key *out)
{
    blake2b_state keyed, st;
    b2_start(&keyed, secret, secret_len);
    kvt_key prev = *parent;
    for (size_t i = 0; i < nblocks; i++) {
        st = keyed;
        b2_update(&st, prev.b, sizeof prev.b);
        b2_tokens(&st, tokens + i * block_tokens, block_tokens);
        blake2b_final(&st, prev.b, sizeof prev.b);
        out[i] = prev;
    }
    b2_wipe(&st);
    b2_wipe(&keyed);
}

#else /* Never called: check_mode() refuses the mode first. */

static void b2_ns(const void *secret, size_t secret_len, const kvt_ns_field *fields, size_t n,
                  kvt_key *out)
{
}

static void b2_chain(const void *secret, size_t secret_len, const kvt_key *parent,
                     const uint32_t *tokens, size_t nblocks, uint32_t block_tokens, kvt_key *out)
{
}

#endif

int kvt_ns_key_mode(uint32_t mode, const void *secret, size_t secret_len,
                    const kvt_ns_field *fields, size_t n, kvt_key *out)
{
    static const char fn[] = "kvt_ns_key_mode";
    int rc = check_mode(fn, mode, secret, secret_len);
    if (rc || (rc = check_fields(fn, fields, n, out)))
        return rc;
    if (mode == KVT_KEY_XXH3_128)
        return kvt_ns_key(fields, n, out);
    b2_ns(secret, secret_len, fields, n, out);
    return 0;
}

int kvt_key_chain_mode(uint32_t mode, const void *secret, size_t secret_len,
                       const kvt_key *parent, const uint32_t *tokens, size_t ntokens,
                       uint32_t block_tokens, kvt_key *out, size_t out_cap)
{
    static const char fn[] = "kvt_key_chain_mode";
    int rc = check_mode(fn, mode, secret, secret_len);
    if (rc)
        return rc;
    int nblocks = check_chain(fn, parent, tokens, ntokens, block_tokens, out, out_cap);
    if (nblocks < 0)
        return nblocks;
    if (mode == KVT_KEY_XXH3_128)
        return kvt_key_chain(parent, tokens, ntokens, block_tokens, out, out_cap);
    b2_chain(secret, secret_len, parent, tokens, (size_t)nblocks, block_tokens, out);
    return nblocks;
}
