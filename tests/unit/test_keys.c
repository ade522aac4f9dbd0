/* test_keys.c — key spec v1: the documented vectors, chain continuation, namespace encoding, errors. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvt_build_config.h"
#include "kvtier.h"

/* The vectors of docs/key-spec.md, copied by hand: they are the spec, so the
 * C code must match them, not the other way round. */
typedef struct ns_def {
    uint32_t tag;
    const char *value;
} ns_def;

typedef struct vector {
    const char *name;
    ns_def ns[4];
    size_t nns;
    uint32_t block_tokens;
    const uint32_t *tokens;
    size_t ntokens;
    const char *ns_key;
    const char *keys[3];
    size_t nkeys;
} vector;

static const uint32_t t_1_8[] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint32_t t_chat[] = {128000, 128006, 9125, 128007, 271,    2675,   527,    264,
                                  11190,  18328,  13,   128009, 128006, 882,    128007, 271,
                                  3923,   374,    279,  6864,   315,    9822,   30,     128009,
                                  128006, 78191,  128007, 271,  791,    6864,   315,    9822};
static const uint32_t t_7_9[] = {7, 8, 9};
static uint32_t t_0_135[136]; /* tokens[i] = i, filled by init_tokens() */
static const uint32_t t_high[] = {2147483648u, 4294967295u, 0, 2147483647u, 4294967294u};
static const uint32_t t_1_15[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

#define MODEL_NS                                                \
    {1, "meta-llama/Llama-3.1-8B-Instruct"},                    \
        {2, "bf16;NHD;layers=32;kv_heads=8;head_dim=128"}, {3, "tp=0/2;pp=0/1"}
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const vector vectors[] = {
    {"empty-namespace", {{0, NULL}}, 0, 4, t_1_8, N(t_1_8), "24112c5efcc67e4dce6b8da10fa379a2",
     {"9da380f5fa0a9fdc0986e77d66658f17", "bb6279a413bf663098aba8a4e646116a"}, 2},
    {"model-layout-rank", {MODEL_NS}, 3, 16, t_chat, N(t_chat), "b0d2b38b697136b8fd6f540d300b5d7c",
     {"1697292943b2ef43f693a816db4885c9", "3521bc5aa24e804e827ad380765c7ffb"}, 2},
    {"salt-tenant-a", {MODEL_NS, {5, "tenant-a"}}, 4, 16, t_chat, N(t_chat),
     "dd6b141979d3c04d8d5edbd42d6f2b1f",
     {"505857595ae4d72e9529ec6620d9e966", "5e38ce58d2ba1e7112b5caacec13db68"}, 2},
    {"salt-tenant-b", {MODEL_NS, {5, "tenant-b"}}, 4, 16, t_chat, N(t_chat),
     "c3f9b036f88ecac02dcb2378db1caa42",
     {"16c0e93beec426b9f1a473d289bc0aca", "a31959fdf30be0725eb3ab9b1822c9c6"}, 2},
    {"model-only", {{1, "m"}}, 1, 1, t_7_9, N(t_7_9), "c85380108149ce2f863608d2943914a2",
     {"e1fc8b7057add31de0b5206e6b10d115", "6945a000ef9263eb96eea7cad8ca7017",
      "39fe95ebc2dff4b8e8c95bf59c7adc6d"},
     3},
    {"empty-value-field", {{1, "m"}, {4, ""}}, 2, 1, t_7_9, N(t_7_9),
     "80db8af880ac229bc12b20581c9e355e",
     {"28c63ed52cfd7ba3ac93de90dc95997e", "cc5382998d13b5a497b929d892c28d1e",
      "f8a23a93677b3d925d8c458ee8e34e7f"},
     3},
    {"large-block-partial", {{1, "m"}}, 1, 64, t_0_135, N(t_0_135),
     "c85380108149ce2f863608d2943914a2",
     {"d3bbdbd61a490cbd18cdd5f64f4f5508", "547ddaceb1762e9edf65f92afd3ace17"}, 2},
    {"high-tokens-tag-0-255", {{0, ""}, {255, "a:b"}}, 2, 2, t_high, N(t_high),
     "76041c1be87deb11ca68ac34f8e24e43",
     {"32d54d6ca8448eacc46e33cc6d634a22", "eeca9dc5a4f9a692c18bc5a59bfcb53b"}, 2},
    {"partial-block-only", {{1, "m"}}, 1, 16, t_1_15, N(t_1_15), "c85380108149ce2f863608d2943914a2",
     {NULL}, 0},
};

static void init_tokens(void)
{
    for (uint32_t i = 0; i < N(t_0_135); i++)
        t_0_135[i] = i;
}

static void fields_of(const ns_def *defs, size_t n, kvt_ns_field *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (kvt_ns_field){.tag = defs[i].tag,
                                .len = (uint32_t)strlen(defs[i].value),
                                .data = defs[i].value};
}

static void hex_of(const kvt_key *k, char out[33])
{
    cr_assert_eq(kvt_key_hex(k, out), 0);
}

static kvt_key ns_of(const ns_def *defs, size_t n)
{
    kvt_ns_field f[8];
    cr_assert_leq(n, N(f));
    fields_of(defs, n, f);
    kvt_key k;
    memset(&k, 0xAA, sizeof k);
    cr_assert_eq(kvt_ns_key(f, n, &k), 0);
    return k;
}

static int key_eq(const kvt_key *a, const kvt_key *b)
{
    return memcmp(a->b, b->b, sizeof a->b) == 0;
}

Test(keys, documented_vectors, .init = init_tokens)
{
    for (size_t v = 0; v < N(vectors); v++) {
        const vector *vec = &vectors[v];
        char hex[33];
        kvt_key ns = ns_of(vec->ns, vec->nns);
        hex_of(&ns, hex);
        cr_assert_str_eq(hex, vec->ns_key, "vector %s: ns_key", vec->name);

        kvt_key out[4];
        memset(out, 0x55, sizeof out);
        int n = kvt_key_chain(&ns, vec->tokens, vec->ntokens, vec->block_tokens, out, N(out));
        cr_assert_eq(n, (int)vec->nkeys, "vector %s: %d keys, expected %zu", vec->name, n,
                     vec->nkeys);
        for (size_t i = 0; i < vec->nkeys; i++) {
            hex_of(&out[i], hex);
            cr_assert_str_eq(hex, vec->keys[i], "vector %s: key[%zu]", vec->name, i);
        }
        /* Only n keys are written: the slot after them is untouched. */
        for (size_t b = 0; b < sizeof out[n].b; b++)
            cr_assert_eq(out[n].b[b], 0x55, "vector %s wrote past its keys", vec->name);
    }
}

/* The hard-coded hex must be what the page says: a vector changed in one
 * place and not the other fails here. */
Test(keys, vectors_appear_in_doc)
{
    const char *path = KVT_SOURCE_ROOT "/docs/key-spec.md";
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char doc[1 << 16];
    size_t len = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    cr_assert_lt(len, sizeof doc - 1, "%s is larger than this test expects", path);
    doc[len] = '\0';
    for (size_t v = 0; v < N(vectors); v++) {
        char needle[80];
        snprintf(needle, sizeof needle, "\"name\": \"%s\"", vectors[v].name);
        cr_assert_not_null(strstr(doc, needle), "vector %s not in the doc", vectors[v].name);
        snprintf(needle, sizeof needle, "\"%s\"", vectors[v].ns_key);
        cr_assert_not_null(strstr(doc, needle), "ns_key of %s not in the doc", vectors[v].name);
        for (size_t i = 0; i < vectors[v].nkeys; i++) {
            snprintf(needle, sizeof needle, "\"%s\"", vectors[v].keys[i]);
            cr_assert_not_null(strstr(doc, needle), "key %zu of %s not in the doc", i,
                               vectors[v].name);
        }
    }
}

Test(keys, hex_is_canonical_lowercase)
{
    const kvt_key k = {{0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba,
                        0x98, 0x76, 0x54, 0x10}};
    char hex[33];
    memset(hex, 'Z', sizeof hex);
    cr_assert_eq(kvt_key_hex(&k, hex), 0);
    cr_assert_str_eq(hex, "000123456789abcdeffedcba98765410");
    cr_assert_eq(hex[32], '\0');
}

/* Hashing blocks k.. from key[k-1] must give the tail of the whole chain:
 * engines rely on it to hash only a conversation's new blocks. */
Test(keys, chain_continues_from_any_key)
{
    enum { B = 3, BLOCKS = 12, EXTRA = 2, NT = B * BLOCKS + EXTRA };
    uint32_t tokens[NT];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < NT; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tokens[i] = (uint32_t)(x >> 11);
    }
    const ns_def defs[] = {{1, "model"}, {5, "salt"}};
    kvt_key ns = ns_of(defs, N(defs));
    kvt_key full[BLOCKS];
    cr_assert_eq(kvt_key_chain(&ns, tokens, NT, B, full, BLOCKS), BLOCKS);
    for (int k = 1; k < BLOCKS; k++) {
        kvt_key tail[BLOCKS];
        int n = kvt_key_chain(&full[k - 1], tokens + k * B, (size_t)(NT - k * B), B, tail, BLOCKS);
        cr_assert_eq(n, BLOCKS - k);
        for (int i = 0; i < n; i++)
            cr_assert(key_eq(&tail[i], &full[k + i]), "continuing at block %d: key %d differs", k,
                      k + i);
    }
    /* Block by block, one call each, also gives the same chain. */
    kvt_key prev = ns;
    for (int i = 0; i < BLOCKS; i++) {
        kvt_key one;
        cr_assert_eq(kvt_key_chain(&prev, tokens + i * B, B, B, &one, 1), 1);
        cr_assert(key_eq(&one, &full[i]), "single-block call %d differs", i);
        prev = one;
    }
    /* Every block's key differs from every other (the chain never repeats). */
    for (int i = 0; i < BLOCKS; i++)
        for (int j = i + 1; j < BLOCKS; j++)
            cr_assert(!key_eq(&full[i], &full[j]), "key %d equals key %d", i, j);
}

Test(keys, different_salts_different_keys, .init = init_tokens)
{
    const ns_def a[] = {{1, "m"}, {5, "tenant-a"}};
    const ns_def b[] = {{1, "m"}, {5, "tenant-b"}};
    const ns_def none[] = {{1, "m"}};
    kvt_key ns[3] = {ns_of(a, N(a)), ns_of(b, N(b)), ns_of(none, N(none))};
    kvt_key keys[3][8];
    for (int s = 0; s < 3; s++)
        cr_assert_eq(kvt_key_chain(&ns[s], t_0_135, 128, 16, keys[s], 8), 8);
    for (int i = 0; i < 8; i++) {
        cr_assert(!key_eq(&keys[0][i], &keys[1][i]), "salts a and b share key %d", i);
        cr_assert(!key_eq(&keys[0][i], &keys[2][i]), "salt a and no salt share key %d", i);
        cr_assert(!key_eq(&keys[1][i], &keys[2][i]), "salt b and no salt share key %d", i);
    }
}

/* Lengths make field boundaries part of the hash; tags make roles part of it;
 * order and field count matter. Each pair here would collide under plain
 * concatenation of values. */
Test(keys, namespace_encoding_is_unambiguous)
{
    const ns_def ab_c[] = {{1, "ab"}, {1, "c"}};
    const ns_def a_bc[] = {{1, "a"}, {1, "bc"}};
    const ns_def abc[] = {{1, "abc"}};
    const ns_def abc_empty[] = {{1, "abc"}, {1, ""}};
    const ns_def tag2[] = {{2, "abc"}};
    const ns_def order1[] = {{1, "x"}, {2, "y"}};
    const ns_def order2[] = {{2, "y"}, {1, "x"}};
    kvt_key k[] = {ns_of(ab_c, N(ab_c)),           ns_of(a_bc, N(a_bc)),   ns_of(abc, N(abc)),
                   ns_of(abc_empty, N(abc_empty)), ns_of(tag2, N(tag2)),   ns_of(order1, N(order1)),
                   ns_of(order2, N(order2)),       ns_of(NULL, 0)};
    for (size_t i = 0; i < N(k); i++)
        for (size_t j = i + 1; j < N(k); j++)
            cr_assert(!key_eq(&k[i], &k[j]), "namespaces %zu and %zu give the same key", i, j);

    /* ...and the difference carries into the block keys. */
    const uint32_t tokens[] = {1, 2, 3, 4};
    kvt_key x, y;
    cr_assert_eq(kvt_key_chain(&k[0], tokens, 4, 4, &x, 1), 1);
    cr_assert_eq(kvt_key_chain(&k[1], tokens, 4, 4, &y, 1), 1);
    cr_assert(!key_eq(&x, &y));
}

/* A value's bytes are hashed as given, embedded NULs included. */
Test(keys, binary_values_use_len_not_strlen)
{
    const char v1[] = {'a', '\0', 'b'};
    const char v2[] = {'a', '\0', 'c'};
    kvt_ns_field f1 = {.tag = 255, .len = 3, .data = v1};
    kvt_ns_field f2 = {.tag = 255, .len = 3, .data = v2};
    kvt_key k1, k2;
    cr_assert_eq(kvt_ns_key(&f1, 1, &k1), 0);
    cr_assert_eq(kvt_ns_key(&f2, 1, &k2), 0);
    cr_assert(!key_eq(&k1, &k2));
}

Test(keys, empty_value_may_have_null_data)
{
    kvt_ns_field f[2] = {{.tag = 1, .len = 1, .data = "m"}, {.tag = 4, .len = 0, .data = NULL}};
    kvt_key k;
    char hex[33];
    cr_assert_eq(kvt_ns_key(f, 2, &k), 0);
    hex_of(&k, hex);
    cr_assert_str_eq(hex, "80db8af880ac229bc12b20581c9e355e"); /* vector empty-value-field */
}

Test(keys, ns_key_errors)
{
    kvt_key out;
    kvt_ns_field ok = {.tag = 1, .len = 1, .data = "m"};
    kvt_ns_field bad_tag = {.tag = 256, .len = 1, .data = "m"};
    kvt_ns_field null_data = {.tag = 1, .len = 2, .data = NULL};

    cr_assert_eq(kvt_ns_key(NULL, 1, &out), KVT_ENULL);
    cr_assert_eq(kvt_ns_key(&ok, 1, NULL), KVT_ENULL);
    cr_assert_eq(kvt_ns_key(&null_data, 1, &out), KVT_ENULL);

    kvt_ns_field two[2] = {ok, bad_tag};
    memset(&out, 0x33, sizeof out);
    cr_assert_eq(kvt_ns_key(two, 2, &out), KVT_EINVAL);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(out.b[i], 0x33, "a failed kvt_ns_key wrote its output");
    const char *msg = kvt_last_error();
    cr_assert_not_null(msg);
    cr_assert_not_null(strstr(msg, "256"), "last error lacks the tag: \"%s\"", msg);
    cr_assert_not_null(strstr(msg, kvt_strerror(KVT_EINVAL)), "last error lacks the code text: \"%s\"",
                       msg);

    bad_tag.tag = UINT32_MAX;
    cr_assert_eq(kvt_ns_key(&bad_tag, 1, &out), KVT_EINVAL);
    bad_tag.tag = 255;
    cr_assert_eq(kvt_ns_key(&bad_tag, 1, &out), 0);

    /* n == 0 needs no fields pointer: the empty namespace. */
    char hex[33];
    cr_assert_eq(kvt_ns_key(NULL, 0, &out), 0);
    hex_of(&out, hex);
    cr_assert_str_eq(hex, "24112c5efcc67e4dce6b8da10fa379a2");
}

Test(keys, key_chain_errors)
{
    const uint32_t tokens[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kvt_key ns, out[4];
    cr_assert_eq(kvt_ns_key(NULL, 0, &ns), 0);

    cr_assert_eq(kvt_key_chain(NULL, tokens, 8, 4, out, 4), KVT_ENULL);
    cr_assert_not_null(strstr(kvt_last_error(), "parent"), "\"%s\"", kvt_last_error());
    cr_assert_eq(kvt_key_chain(&ns, NULL, 8, 4, out, 4), KVT_ENULL);
    cr_assert_not_null(strstr(kvt_last_error(), "tokens"), "\"%s\"", kvt_last_error());
    cr_assert_eq(kvt_key_chain(&ns, tokens, 8, 4, NULL, 4), KVT_ENULL);
    cr_assert_not_null(strstr(kvt_last_error(), "out"), "\"%s\"", kvt_last_error());

    cr_assert_eq(kvt_key_chain(&ns, tokens, 8, 0, out, 4), KVT_ESIZE);
    const char *msg = kvt_last_error();
    cr_assert_not_null(strstr(msg, "block_tokens"), "last error lacks detail: \"%s\"", msg);
    cr_assert_not_null(strstr(msg, kvt_strerror(KVT_ESIZE)), "last error lacks the code text: \"%s\"",
                       msg);

    memset(out, 0x77, sizeof out);
    cr_assert_eq(kvt_key_chain(&ns, tokens, 8, 4, out, 1), KVT_ESIZE);
    msg = kvt_last_error();
    cr_assert_not_null(strstr(msg, "2 needed"), "last error lacks detail: \"%s\"", msg);
    for (size_t i = 0; i < sizeof out; i++)
        cr_assert_eq(((const uint8_t *)out)[i], 0x77, "a failed kvt_key_chain wrote its output");

    /* Exactly enough room is enough; a partial block needs no room. */
    cr_assert_eq(kvt_key_chain(&ns, tokens, 8, 4, out, 2), 2);
    cr_assert_eq(kvt_key_chain(&ns, tokens, 7, 4, out, 1), 1);
    cr_assert_eq(kvt_key_chain(&ns, tokens, 3, 4, NULL, 0), 0);
    cr_assert_eq(kvt_key_chain(&ns, NULL, 0, 4, NULL, 0), 0);
    cr_assert_eq(kvt_key_chain(&ns, tokens, 8, 9, out, 0), 0);

    char hex[33];
    kvt_key k = {{0}};
    cr_assert_eq(kvt_key_hex(NULL, hex), KVT_ENULL);
    cr_assert_eq(kvt_key_hex(&k, NULL), KVT_ENULL);
}

/* The functions keep no state: the same call gives the same keys, and the
 * block size is part of what a key means. */
Test(keys, pure_and_repeatable)
{
    const uint32_t tokens[] = {10, 20, 30, 40, 50, 60};
    kvt_key ns, a[3], b[3];
    cr_assert_eq(kvt_ns_key(NULL, 0, &ns), 0);
    cr_assert_eq(kvt_key_chain(&ns, tokens, 6, 2, a, 3), 3);
    cr_assert_eq(kvt_key_chain(&ns, tokens, 6, 3, b, 3), 2);
    cr_assert(!key_eq(&a[0], &b[0]), "block sizes 2 and 3 share a key");
    cr_assert_eq(kvt_key_chain(&ns, tokens, 6, 2, b, 3), 3);
    cr_assert_arr_eq(a, b, sizeof a);
}
