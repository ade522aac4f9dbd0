/* format.c — the cluster tier's block file: names in the fan-out tree and the self-verifying header. */
#include <errno.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "le.h"
#include "tier/cluster/internal.h"

/* docs/cluster-format.md is the reference; keep them in step. */
static const uint8_t magic[8] = {'K', 'V', 'T', 'C', 'L', 'U', 'S', 'T'};


uint64_t cl_hash(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

void cl_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Two levels of 256 directories from the key's first two bytes: keys are
 * hashes, so files spread evenly, a directory stays small at millions of
 * blocks, and the sweeper can visit the tree 1/256 at a time. */
void kvt__cluster_rel_path(const kvt_key *key, char out[KVT__CLUSTER_REL_MAX])
{
    char hex[33];
    cl_hex(key->b, 16, hex);
    memcpy(out, hex, 2);
    out[2] = '/';
    memcpy(out + 3, hex + 2, 2);
    out[5] = '/';
    memcpy(out + 6, hex, 32);
    memcpy(out + 38, CL_SUFFIX, sizeof CL_SUFFIX); /* with its NUL */
}

void cl_header_write(const kvt_cluster *c, uint8_t *unit, const kvt_key *key,
                     uint64_t payload_sum)
{
    memset(unit, 0, CL_UNIT);
    memcpy(unit + CH_MAGIC, magic, 8);
    kvt__put32(unit + CH_VERSION, CL_FORMAT_VERSION);
    kvt__put32(unit + CH_HDR_BYTES, CL_UNIT);
    kvt__put64(unit + CH_BLOCK_BYTES, c->p.block_bytes);
    kvt__put32(unit + CH_BLOCK_TOKENS, c->p.block_tokens);
    kvt__put32(unit + CH_FRAGS, c->p.frags);
    kvt__put32(unit + CH_KEY_MODE, c->p.key_mode);
    kvt__put32(unit + CH_FLAGS, 0);
    memcpy(unit + CH_KEY, key->b, 16);
    kvt__put64(unit + CH_PAYLOAD_LEN, c->p.block_bytes);
    kvt__put64(unit + CH_PAYLOAD_SUM, payload_sum);
    memcpy(unit + CH_WRITER, c->writer, 16);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    kvt__put64(unit + CH_CREATED, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    kvt__put64(unit + CH_SUM, cl_hash(unit, CL_HDR_SUMMED));
}

int cl_header_check(const kvt_cluster *c, const uint8_t *unit, const kvt_key *key,
                    uint64_t *payload_sum)
{
    if (memcmp(unit + CH_MAGIC, magic, 8) || kvt__get32(unit + CH_VERSION) != CL_FORMAT_VERSION ||
        kvt__get32(unit + CH_HDR_BYTES) != CL_UNIT)
        return KVT_EFORMAT;
    if (kvt__get64(unit + CH_SUM) != cl_hash(unit, CL_HDR_SUMMED))
        return KVT_ECORRUPT;
    if (kvt__get64(unit + CH_BLOCK_BYTES) != c->p.block_bytes ||
        kvt__get32(unit + CH_BLOCK_TOKENS) != c->p.block_tokens ||
        kvt__get32(unit + CH_FRAGS) != c->p.frags || kvt__get32(unit + CH_KEY_MODE) != c->p.key_mode ||
        kvt__get64(unit + CH_PAYLOAD_LEN) != c->p.block_bytes)
        return KVT_EGEOMETRY;
    /* A file under another key's name: a copied or renamed file, never ours. */
    if (memcmp(unit + CH_KEY, key->b, 16))
        return KVT_ECORRUPT;
    *payload_sum = kvt__get64(unit + CH_PAYLOAD_SUM);
    return 0;
}

int cl_errno_code(int err)
{
    switch (err) {
    case ENOENT:
        return KVT_ENOENT;
    case ENOSPC:
    case EDQUOT:
        return KVT_ENOSPC;
    case ELOOP:
    case EXDEV:
    case ENOTDIR:
    case EACCES:
    case EPERM:
    case EROFS:
        return KVT_EPATH;
    case ETIMEDOUT:
    case ECANCELED:
        return KVT_ETIMEDOUT;
    default:
        return KVT_EIO;
    }
}
