/* format.c — the NVMe tier's media format: encoding and checking headers, payload checksums. */
#include "tier/nvme/format.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "clock.h"
#include "error.h"
#include "le.h"

#define FORMAT_VERSION 1u /* a single file; also the slot headers' version in units of 4096 */
#define STRIPE_VERSION 2u /* a superblock of one device of a stripe set */
/* A file in a smaller unit (512, 1024 or 2048), single or a stripe member
 * (by its stripe count); also its slot headers' version. Builds that read
 * only versions 1 and 2 refuse it as "format version 3". */
#define UNIT_VERSION 3u
#define NEWEST_VERSION UNIT_VERSION
#define HDR_SUMMED 120u /* bytes covered by the header checksum */
static const uint8_t sb_magic[8] = {'K', 'V', 'T', 'I', 'E', 'R', 'S', 'B'};
static const uint8_t blk_magic[8] = {'K', 'V', 'T', 'B', 'L', 'O', 'C', 'K'};

enum { /* superblock field offsets */
    SB_MAGIC = 0, SB_VERSION = 8, SB_HDRBYTES = 12, SB_UNIT = 16, SB_FLAGS = 20,
    SB_BLOCK_BYTES = 24, SB_BLOCK_TOKENS = 32, SB_FRAGS = 36, SB_SLOT_BYTES = 40,
    SB_SLOT_COUNT = 48, SB_SLOTS_OFF = 56, SB_STORE_ID = 64, SB_CREATED = 80, SB_KEY_MODE = 88,
    SB_STRIPE_INDEX = 92, SB_STRIPE_COUNT = 96, SB_STRIPE_SLOTS = 100, SB_SET_ID = 104,
    SB_SUM = 120
};
enum { /* slot header field offsets */
    H_MAGIC = 0, H_VERSION = 8, H_HDRBYTES = 12, H_BLOCK_BYTES = 16, H_BLOCK_TOKENS = 24,
    H_FRAGS = 28, H_STORE_ID = 32, H_KEY = 48, H_LEN = 64, H_PAYLOAD_SUM = 72, H_SEQ = 80,
    H_SLOT = 88, H_FLAGS = 92, H_SUM = 120
};

uint32_t kvt__nvme_unit(uint64_t block_bytes)
{
    return block_bytes < KVT__NVME_SMALL_BELOW ? KVT__NVME_SMALL_UNIT : UNIT;
}

uint64_t kvt__nvme_slot_bytes_in(uint64_t block_bytes, uint32_t unit)
{
    return block_bytes ? unit + round_up(block_bytes, unit) : 0;
}

uint64_t kvt__nvme_slot_bytes(uint64_t block_bytes)
{
    return kvt__nvme_slot_bytes_in(block_bytes, kvt__nvme_unit(block_bytes));
}

uint64_t kvt__nvme_file_bytes_in(uint64_t block_bytes, uint64_t nslots, uint32_t unit)
{
    return SLOTS_OFF + nslots * kvt__nvme_slot_bytes_in(block_bytes, unit);
}

uint64_t kvt__nvme_file_bytes(uint64_t block_bytes, uint64_t nslots)
{
    return kvt__nvme_file_bytes_in(block_bytes, nslots, kvt__nvme_unit(block_bytes));
}

int nvme_capacity_slots(uint64_t block_bytes, uint64_t capacity, uint32_t unit, uint32_t *nslots)
{
    /* Capacities count kvt_slot_bytes() slots, else 4096-unit ones (sized
     * before the small unit). An existing file's own unit (unit, 0: none)
     * comes first: 129 4096-unit slots of 64 KiB blocks are also 136
     * 512-unit ones, and a stripe set must be read as the 129 it holds. */
    uint64_t own = unit ? kvt__nvme_slot_bytes_in(block_bytes, unit) : 0,
             small = kvt__nvme_slot_bytes(block_bytes),
             whole = kvt__nvme_slot_bytes_in(block_bytes, UNIT);
    uint64_t n = 0;
    if (own && capacity && capacity % own == 0)
        n = capacity / own;
    else if (small && capacity && capacity % small == 0)
        n = capacity / small;
    else if (whole && capacity && capacity % whole == 0)
        n = capacity / whole;
    if (!n || n > UINT32_MAX)
        return KVT_ECAPACITY;
    *nslots = (uint32_t)n;
    return 0;
}

uint32_t nvme_sb_unit(const uint8_t *buf)
{
    if (memcmp(buf + SB_MAGIC, sb_magic, 8) || kvt__get64(buf + SB_SUM) != XXH3_64bits(buf, HDR_SUMMED))
        return 0;
    return kvt__get32(buf + SB_UNIT);
}

/* Whether u is a unit this build lays slots out in. */
static bool unit_known(uint32_t u)
{
    return u >= KVT__NVME_SMALL_UNIT && u <= UNIT && (u & (u - 1)) == 0;
}

/* The version a superblock of g carries; slot headers carry 1 or 3. */
static uint32_t sb_version(const nvme_geometry *g)
{
    if (g->unit != UNIT)
        return UNIT_VERSION;
    return g->stripe_count ? STRIPE_VERSION : FORMAT_VERSION;
}

static uint32_t hdr_version(const nvme_geometry *g)
{
    return g->unit != UNIT ? UNIT_VERSION : FORMAT_VERSION;
}

void nvme_new_store_id(uint8_t id[16])
{
    if (getrandom(id, 16, 0) == 16)
        return;
    uint64_t a = kvt__clock_ns(CLOCK_REALTIME);
    uint64_t b = kvt__clock_ns(CLOCK_MONOTONIC) ^ (uint64_t)getpid();
    kvt__put64(id, XXH3_64bits(&a, sizeof a));
    kvt__put64(id + 8, XXH3_64bits(&b, sizeof b));
}

/* --------------------------------------------------------------- headers */

void nvme_sb_encode(const nvme_geometry *g, uint8_t *b)
{
    memset(b, 0, UNIT);
    memcpy(b + SB_MAGIC, sb_magic, 8);
    kvt__put32(b + SB_VERSION, sb_version(g));
    kvt__put32(b + SB_HDRBYTES, HDR_BYTES);
    kvt__put32(b + SB_UNIT, g->unit);
    kvt__put32(b + SB_FLAGS, 0);
    kvt__put64(b + SB_BLOCK_BYTES, g->block_bytes);
    kvt__put32(b + SB_BLOCK_TOKENS, g->block_tokens);
    kvt__put32(b + SB_FRAGS, g->frags);
    kvt__put64(b + SB_SLOT_BYTES, g->slot_bytes);
    kvt__put64(b + SB_SLOT_COUNT, g->nslots);
    kvt__put64(b + SB_SLOTS_OFF, SLOTS_OFF);
    memcpy(b + SB_STORE_ID, g->store_id, 16);
    kvt__put64(b + SB_CREATED, kvt__clock_ns(CLOCK_REALTIME));
    kvt__put32(b + SB_KEY_MODE, g->key_mode);
    if (g->stripe_count) {
        kvt__put32(b + SB_STRIPE_INDEX, g->stripe_index);
        kvt__put32(b + SB_STRIPE_COUNT, g->stripe_count);
        kvt__put32(b + SB_STRIPE_SLOTS, g->stripe_slots);
        memcpy(b + SB_SET_ID, g->set_id, 16);
    }
    kvt__put64(b + SB_SUM, XXH3_64bits(b, HDR_SUMMED));
}

void nvme_hdr_encode(const nvme_geometry *g, uint8_t *h, const kvt_xfer *x, uint64_t sum,
                     uint64_t seq)
{
    memset(h, 0, g->unit);
    memcpy(h + H_MAGIC, blk_magic, 8);
    kvt__put32(h + H_VERSION, hdr_version(g));
    kvt__put32(h + H_HDRBYTES, HDR_BYTES);
    kvt__put64(h + H_BLOCK_BYTES, g->block_bytes);
    kvt__put32(h + H_BLOCK_TOKENS, g->block_tokens);
    kvt__put32(h + H_FRAGS, g->frags);
    memcpy(h + H_STORE_ID, g->store_id, 16);
    memcpy(h + H_KEY, x->key.b, 16);
    kvt__put64(h + H_LEN, g->block_bytes);
    kvt__put64(h + H_PAYLOAD_SUM, sum);
    kvt__put64(h + H_SEQ, seq);
    kvt__put32(h + H_SLOT, x->slot);
    kvt__put32(h + H_FLAGS, 0);
    kvt__put64(h + H_SUM, XXH3_64bits(h, HDR_SUMMED));
}

bool nvme_hdr_valid(const nvme_geometry *g, const uint8_t *h, uint32_t slot, kvt_key *key)
{
    if (memcmp(h + H_MAGIC, blk_magic, 8) || kvt__get32(h + H_VERSION) != hdr_version(g) ||
        kvt__get32(h + H_HDRBYTES) != HDR_BYTES || kvt__get64(h + H_BLOCK_BYTES) != g->block_bytes ||
        kvt__get32(h + H_BLOCK_TOKENS) != g->block_tokens || kvt__get32(h + H_FRAGS) != g->frags ||
        memcmp(h + H_STORE_ID, g->store_id, 16) || kvt__get64(h + H_LEN) != g->block_bytes ||
        kvt__get32(h + H_SLOT) != slot || kvt__get64(h + H_SUM) != XXH3_64bits(h, HDR_SUMMED))
        return false;
    memcpy(key->b, h + H_KEY, 16);
    return true;
}

uint64_t nvme_hdr_payload_sum(const uint8_t *h)
{
    return kvt__get64(h + H_PAYLOAD_SUM);
}

int nvme_sb_check(nvme_geometry *g, const uint8_t *buf, uint64_t size, uint64_t capacity,
                  const char *path)
{
    if (memcmp(buf + SB_MAGIC, sb_magic, 8))
        return kvt__err(KVT_EFORMAT, "nvme: %s is not a kvtier NVMe file (no superblock magic); "
                                     "left untouched, set recreate to overwrite it", path);
    uint32_t version = kvt__get32(buf + SB_VERSION), unit = kvt__get32(buf + SB_UNIT);
    if (version < FORMAT_VERSION || version > NEWEST_VERSION)
        return kvt__err(KVT_EFORMAT, "nvme: %s has format version %u; this build reads versions "
                                     "%u to %u; left untouched, set recreate to overwrite it",
                        path, version, FORMAT_VERSION, NEWEST_VERSION);
    if (kvt__get32(buf + SB_HDRBYTES) != HDR_BYTES ||
        (version == UNIT_VERSION ? !unit_known(unit) || unit == UNIT : unit != UNIT) ||
        kvt__get64(buf + SB_SLOTS_OFF) != SLOTS_OFF)
        return kvt__err(KVT_EFORMAT, "nvme: %s: format version %u with header bytes %u, unit %u, "
                                     "slot 0 at %llu is not a layout this build reads; left "
                                     "untouched, set recreate to overwrite it",
                        path, version, kvt__get32(buf + SB_HDRBYTES), unit,
                        (unsigned long long)kvt__get64(buf + SB_SLOTS_OFF));
    if (kvt__get64(buf + SB_SUM) != XXH3_64bits(buf, HDR_SUMMED))
        return kvt__err(KVT_EFORMAT, "nvme: %s: superblock checksum mismatch; left untouched, "
                                     "set recreate to overwrite it", path);
    uint32_t s_index = kvt__get32(buf + SB_STRIPE_INDEX), s_count = kvt__get32(buf + SB_STRIPE_COUNT);
    bool member = version == STRIPE_VERSION || (version == UNIT_VERSION && s_count);
    if (member && !g->stripe_count)
        return kvt__err(KVT_EFORMAT, "nvme: %s is device %u of a %u-device stripe set (format "
                                     "version %u); open it with the set's %u paths in order; "
                                     "left untouched, set recreate to overwrite it",
                        path, s_index + 1, s_count, version, s_count);
    if (!member && g->stripe_count)
        return kvt__err(KVT_EGEOMETRY, "nvme: %s is a single-device file (format version %u), "
                                       "not a device of a stripe set; left untouched, set "
                                       "recreate to rebuild it as device %u of %u",
                        path, version, g->stripe_index + 1, g->stripe_count);
    if (member &&
        (s_index != g->stripe_index || s_count != g->stripe_count ||
         kvt__get32(buf + SB_STRIPE_SLOTS) != g->stripe_slots))
        return kvt__err(KVT_EGEOMETRY, "nvme: %s is device %u of a %u-device stripe set of %u "
                                       "slots; asked device %u of %u, %u slots; left untouched, "
                                       "set recreate to rebuild it",
                        path, s_index + 1, s_count, kvt__get32(buf + SB_STRIPE_SLOTS),
                        g->stripe_index + 1, g->stripe_count, g->stripe_slots);
    uint64_t bb = kvt__get64(buf + SB_BLOCK_BYTES), sb_slot = kvt__get64(buf + SB_SLOT_BYTES),
             count = kvt__get64(buf + SB_SLOT_COUNT);
    uint32_t bt = kvt__get32(buf + SB_BLOCK_TOKENS), fr = kvt__get32(buf + SB_FRAGS);
    /* The file keeps the unit it was laid out in; a single file's slot
     * count may be read from the capacity in its own slots (a capacity
     * sized for that layout). */
    nvme_geo_set_unit(g, unit);
    if (!member && capacity && count != g->nslots && capacity % g->slot_bytes == 0 &&
        capacity / g->slot_bytes == count)
        g->nslots = (uint32_t)count;
    if (bb != g->block_bytes || bt != g->block_tokens || fr != g->frags ||
        sb_slot != g->slot_bytes || count != g->nslots)
        return kvt__err(KVT_EGEOMETRY,
                        "nvme: %s holds block_bytes=%llu block_tokens=%u frags=%u slot_bytes=%llu "
                        "slots=%llu; asked block_bytes=%llu block_tokens=%u frags=%u "
                        "slot_bytes=%llu slots=%u; left untouched, set recreate to rebuild it",
                        path, (unsigned long long)bb, bt, fr, (unsigned long long)sb_slot,
                        (unsigned long long)count, (unsigned long long)g->block_bytes,
                        g->block_tokens, g->frags, (unsigned long long)g->slot_bytes, g->nslots);
    /* Files from before the field was defined hold 0 there: xxh3-128. */
    uint32_t km = kvt__get32(buf + SB_KEY_MODE);
    if (km != g->key_mode)
        return kvt__err(KVT_EGEOMETRY,
                        "nvme: %s holds blocks under key mode %u; asked key mode %u "
                        "(KVT_OPT_KEY_MODE); left untouched, set recreate to rebuild it",
                        path, km, g->key_mode);
    uint64_t total = kvt__nvme_file_bytes_in(g->block_bytes, g->nslots, g->unit);
    if (size < total)
        return kvt__err(KVT_ETOOSMALL, "nvme: %s has %llu bytes; its superblock says %llu",
                        path, (unsigned long long)size, (unsigned long long)total);
    memcpy(g->store_id, buf + SB_STORE_ID, 16);
    if (member)
        memcpy(g->set_id, buf + SB_SET_ID, 16);
    return 0;
}


int nvme_xfer_problem(const nvme_geometry *g, const kvt_xfer *x, uint32_t *bad_frag)
{
    *bad_frag = UINT32_MAX;
    if (x->slot >= g->nslots)
        return KVT_EINVAL;
    if (!x->nfrags || g->block_bytes % x->nfrags)
        return KVT_EFRAGS;
    if (!x->frags)
        return KVT_ENULL;
    for (uint32_t f = 0; f < x->nfrags; f++)
        if (!x->frags[f]) {
            *bad_frag = f;
            return KVT_ENULL;
        }
    return 0;
}


/* --------------------------------------------------------- payload helpers */

/* libxxhash builds with runtime CPU dispatch (Debian's, Fedora's) export
 * XXH3_64bits_dispatch(), AVX2/AVX-512 code about 3x the speed of the
 * baseline SSE2 code inlined here on large payloads (15 vs 43 GB/s on the
 * development machine). It is looked up at run time: the build inlines
 * xxHash, so the linker would not even keep libxxhash as a dependency, and
 * a library without the entry point must still work. */
typedef XXH64_hash_t (*hash_fn)(const void *input, size_t len);
static hash_fn fast_hash;
static pthread_once_t fast_hash_once = PTHREAD_ONCE_INIT;

static void fast_hash_init(void)
{
    void *lib = dlopen("libxxhash.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    void *sym = dlsym(lib, "XXH3_64bits_dispatch");
    hash_fn fn = NULL;
    memcpy(&fn, &sym, sizeof fn); /* ISO C has no object-to-function pointer cast */
    static const char probe[] = "kvtier nvme payload checksum probe, longer than one stripe "
                                "of XXH3 so that the long-input path is the one compared";
    if (fn && fn(probe, sizeof probe) == XXH3_64bits(probe, sizeof probe))
        fast_hash = fn;
    else
        dlclose(lib);
}

uint64_t nvme_payload_hash(const void *p, size_t n)
{
    return fast_hash ? fast_hash(p, n) : XXH3_64bits(p, n);
}

bool nvme_frags_contiguous(const kvt_xfer *x, uint64_t fs)
{
    for (uint32_t f = 1; f < x->nfrags; f++)
        if ((const uint8_t *)x->frags[f] != (const uint8_t *)x->frags[0] + f * fs)
            return false;
    return true;
}

uint64_t nvme_frags_hash(const kvt_xfer *x, uint64_t fs)
{
    if (nvme_frags_contiguous(x, fs))
        return nvme_payload_hash(x->frags[0], fs * x->nfrags);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (uint32_t f = 0; f < x->nfrags; f++)
        XXH3_64bits_update(&st, x->frags[f], fs);
    return XXH3_64bits_digest(&st);
}


void nvme_checksum_init(void)
{
    pthread_once(&fast_hash_once, fast_hash_init);
}

bool nvme_checksum_is_fast(void)
{
    return fast_hash != NULL;
}
