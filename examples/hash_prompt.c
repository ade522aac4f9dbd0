/* hash_prompt.c — prints the chained block keys of a token list (key spec v1 or a keyed mode), through the public API only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kvtier.h>

static const char usage_text[] =
    "usage: hash_prompt --block-tokens B [--ns TAG:VALUE ...]\n"
    "                   [--mode xxh3-128|blake2b-128 [--secret HEX]] [--] TOKEN...\n"
    "\n"
    "Prints the key (32 hex digits) of every full block of B tokens, one per\n"
    "line, chained from the namespace key (docs/key-spec.md). A partial last\n"
    "block gets no key.\n"
    "\n"
    "  --block-tokens B  tokens per block, 1..4294967295 (required)\n"
    "  --ns TAG:VALUE    a namespace field: TAG 0..255 (1 model, 2 layout,\n"
    "                    3 rank, 4 adapter, 5 salt, 255 custom); VALUE is the\n"
    "                    rest of the argument after the first ':' (may be\n"
    "                    empty or contain ':'). Repeatable; order matters.\n"
    "  --mode MODE       key mode: xxh3-128 (default, key spec v1) or\n"
    "                    blake2b-128 (keyed; needs --secret)\n"
    "  --secret HEX      the blake2b-128 secret, 16..64 bytes as hex digits\n"
    "  TOKEN             token id, unsigned 32-bit decimal\n";

static int usage_error(const char *fmt, const char *arg)
{
    fputs("hash_prompt: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    fputs(usage_text, stderr);
    return 2;
}

/* Hex digits, two per byte, into out (as long as s / 2); -1 if malformed. */
static long parse_hex(const char *s, uint8_t *out)
{
    size_t len = strlen(s);
    if (len % 2)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int v = 0;
        for (size_t j = i; j < i + 2; j++) {
            char c = s[j];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i / 2] = (uint8_t)v;
    }
    return (long)(len / 2);
}

/* strtoul() accepts spaces, signs and wraps "-1" to ULONG_MAX; only plain
 * decimal digits are a valid number here. */
static int parse_u32(const char *s, size_t len, uint32_t max, uint32_t *out)
{
    if (len == 0 || len > 10)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    /* Every argument is at most one field or one token, so argc bounds both. */
    size_t cap = argc > 0 ? (size_t)argc : 1;
    kvt_ns_field *fields = calloc(cap, sizeof *fields);
    uint32_t *tokens = calloc(cap, sizeof *tokens);
    kvt_key *keys = NULL;
    uint8_t *secret = NULL;
    size_t secret_len = 0;
    uint32_t mode = KVT_KEY_XXH3_128;
    if (!fields || !tokens) {
        fputs("hash_prompt: out of memory\n", stderr);
        return 1;
    }
    size_t nfields = 0, ntokens = 0;
    uint32_t block_tokens = 0;
    int have_block_tokens = 0, rc = 2, options_done = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = 1;
        } else if (!options_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(usage_text, stdout);
            rc = 0;
            goto out;
        } else if (!options_done && strcmp(a, "--block-tokens") == 0) {
            if (++i == argc) {
                rc = usage_error("%s needs a value", a);
                goto out;
            }
            if (parse_u32(argv[i], strlen(argv[i]), UINT32_MAX, &block_tokens) || !block_tokens) {
                rc = usage_error("--block-tokens must be 1..4294967295, not '%s'", argv[i]);
                goto out;
            }
            have_block_tokens = 1;
        } else if (!options_done && strcmp(a, "--ns") == 0) {
            if (++i == argc) {
                rc = usage_error("%s needs TAG:VALUE", a);
                goto out;
            }
            const char *colon = strchr(argv[i], ':');
            uint32_t tag;
            if (!colon || parse_u32(argv[i], (size_t)(colon - argv[i]), 255, &tag)) {
                rc = usage_error("--ns wants TAG:VALUE with TAG 0..255, not '%s'", argv[i]);
                goto out;
            }
            size_t len = strlen(colon + 1);
            if (len > UINT32_MAX) {
                rc = usage_error("--ns value too long in '%s'", argv[i]);
                goto out;
            }
            fields[nfields++] = (kvt_ns_field){.tag = tag, .len = (uint32_t)len, .data = colon + 1};
        } else if (!options_done && strcmp(a, "--mode") == 0) {
            if (++i == argc) {
                rc = usage_error("%s needs a value", a);
                goto out;
            }
            if (strcmp(argv[i], "xxh3-128") == 0) {
                mode = KVT_KEY_XXH3_128;
            } else if (strcmp(argv[i], "blake2b-128") == 0) {
                mode = KVT_KEY_BLAKE2B_128;
            } else {
                rc = usage_error("--mode must be xxh3-128 or blake2b-128, not '%s'", argv[i]);
                goto out;
            }
        } else if (!options_done && strcmp(a, "--secret") == 0) {
            if (++i == argc) {
                rc = usage_error("%s needs a value", a);
                goto out;
            }
            free(secret);
            /* Its length is the library's to judge (KVT_ESIZE): exit 1. */
            long n = (secret = malloc(strlen(argv[i]) / 2 + 1)) ? parse_hex(argv[i], secret) : -2;
            if (n == -2) {
                fputs("hash_prompt: out of memory\n", stderr);
                rc = 1;
                goto out;
            }
            if (n < 0) {
                rc = usage_error("--secret must be hex digits, two per byte, not '%s'", argv[i]);
                goto out;
            }
            secret_len = (size_t)n;
        } else if (!options_done && a[0] == '-' && a[1] != '\0') {
            rc = usage_error("unknown option '%s'", a);
            goto out;
        } else {
            if (parse_u32(a, strlen(a), UINT32_MAX, &tokens[ntokens])) {
                rc = usage_error("token '%s' is not an unsigned 32-bit decimal number", a);
                goto out;
            }
            ntokens++;
        }
    }
    if (!have_block_tokens) {
        rc = usage_error("%s is required", "--block-tokens");
        goto out;
    }

    kvt_key ns;
    int n = kvt_ns_key_mode(mode, secret, secret_len, fields, nfields, &ns);
    if (n < 0) {
        fprintf(stderr, "hash_prompt: %s\n", kvt_last_error());
        rc = 1;
        goto out;
    }
    size_t nblocks = ntokens / block_tokens;
    keys = calloc(nblocks ? nblocks : 1, sizeof *keys);
    if (!keys) {
        fputs("hash_prompt: out of memory\n", stderr);
        rc = 1;
        goto out;
    }
    n = kvt_key_chain_mode(mode, secret, secret_len, &ns, tokens, ntokens, block_tokens, keys,
                           nblocks);
    if (n < 0) {
        fprintf(stderr, "hash_prompt: %s\n", kvt_last_error());
        rc = 1;
        goto out;
    }
    for (int k = 0; k < n; k++) {
        char hex[33];
        kvt_key_hex(&keys[k], hex);
        puts(hex);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    free(secret);
    free(keys);
    free(tokens);
    free(fields);
    return rc;
}
