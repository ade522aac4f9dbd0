/* format.h — the NVMe tier's media format: superblock, slot headers, checksums. */
#ifndef KVT_NVME_FORMAT_H
#define KVT_NVME_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier/nvme.h"
#include "tier/tier.h"

/*
 * Media format (docs/nvme-format.md is the reference; keep them in step):
 *   [0, 4096)                  superblock: sb_* fields, rest zero
 *   4096 + i * slot_bytes      slot i: a header unit (hdr_* fields, rest
 *                              zero), then the payload, padded to the unit
 * The unit is 4096 bytes (format versions 1 and 2) or 512, 1024 or 2048
 * (version 3), recorded in the superblock. All integers little-endian. Both headers end in an XXH3-64 of their first
 * 120 bytes. Nothing here may change without a new format version: a file
 * written by an earlier build must open unchanged.
 */
#define UNIT KVT__NVME_UNIT /* the whole unit; staging keeps headers UNIT apart */
#define SLOTS_OFF KVT__NVME_SLOTS_OFFSET
#define HDR_BYTES 128u /* bytes of either header in use */

/* What a file records about its blocks, and what every slot header repeats. */
typedef struct nvme_geometry {
    uint64_t block_bytes, slot_bytes; /* slot_bytes = unit + round_up(block_bytes, unit) */
    uint32_t unit;                    /* the layout unit: header unit, payload rounding */
    uint32_t block_tokens, frags, nslots, key_mode;
    uint8_t store_id[16];
    /* Striping (format version 2): this device is member stripe_index of
     * stripe_count, of a set of stripe_slots slots named by set_id.
     * stripe_count 0: a single file (format version 1). */
    uint32_t stripe_index, stripe_count, stripe_slots;
    uint8_t set_id[16];
} nvme_geometry;

static inline uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static inline uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Sets g's unit and the slot size that follows from it. */
static inline void nvme_geo_set_unit(nvme_geometry *g, uint32_t unit)
{
    g->unit = unit;
    g->slot_bytes = kvt__nvme_slot_bytes_in(g->block_bytes, unit);
}

/* Media offset of slot `slot`. */
static inline uint64_t nvme_slot_offset(const nvme_geometry *g, uint32_t slot)
{
    return SLOTS_OFF + (uint64_t)slot * g->slot_bytes;
}

/* A new store id: random bytes, or (no entropy) a hash of the time and pid. */
void nvme_new_store_id(uint8_t id[16]);

/* The superblock of g into b (UNIT bytes). */
void nvme_sb_encode(const nvme_geometry *g, uint8_t *b);

/* The slot count a capacity asks for: capacity / the slot in `unit` (an
 * existing file's; 0: none) when that divides it, else capacity /
 * kvt__nvme_slot_bytes(), else capacity / the 4096-unit slot (capacities
 * sized before format version 3); KVT_ECAPACITY (no message) when none
 * divides it or it is 0 or over UINT32_MAX slots. */
int nvme_capacity_slots(uint64_t block_bytes, uint64_t capacity, uint32_t unit, uint32_t *nslots);
/* The layout unit a superblock records, or 0 when buf (UNIT bytes) is not
 * a valid superblock. */
uint32_t nvme_sb_unit(const uint8_t *buf);

/* Checks a superblock against the geometry asked for (g) and the file's
 * size: 0 and g->store_id (and, for a stripe member, g->set_id) set, or
 * KVT_EFORMAT, KVT_EGEOMETRY or KVT_ETOOSMALL with the reason. The file's
 * unit is adopted (g->unit, g->slot_bytes): an existing file keeps its
 * layout. Its slot count must be g->nslots or, for a single file
 * (capacity != 0), capacity / its own slot size. A version-1 superblock
 * passes only for a single file, a version-2 one only for the member of a
 * set of the same count at the same index; version 3 either way, by its
 * stripe count. */
int nvme_sb_check(nvme_geometry *g, const uint8_t *buf, uint64_t size, uint64_t capacity,
                  const char *path);

/* The header unit (g->unit bytes) of x's block, payload checksum `sum`. */
void nvme_hdr_encode(const nvme_geometry *g, uint8_t *h, const kvt_xfer *x, uint64_t sum,
                     uint64_t seq);

/* Whether h is a valid header of this store for `slot` (everything but the
 * payload checksum); the key it names goes to *key. */
bool nvme_hdr_valid(const nvme_geometry *g, const uint8_t *h, uint32_t slot, kvt_key *key);

/* The payload checksum a header records. */
uint64_t nvme_hdr_payload_sum(const uint8_t *h);

/* What is wrong with x for this geometry (a KVT_E* code, or 0), without a
 * message: hashing threads must not set the caller's. *bad_frag: the NULL
 * fragment, for KVT_ENULL (UINT32_MAX: no array). */
int nvme_xfer_problem(const nvme_geometry *g, const kvt_xfer *x, uint32_t *bad_frag);

/* ---------------------------------------------------------------- checksums */

/* Looks up the fastest payload hash once per process; call before hashing. */
void nvme_checksum_init(void);
/* Whether the run-time dispatched (AVX2/AVX-512) XXH3 is in use. */
bool nvme_checksum_is_fast(void);
/* XXH3-64 of a linear payload. */
uint64_t nvme_payload_hash(const void *p, size_t n);
/* Whether x's fragments (fs bytes each) lie back to back: one linear payload. */
bool nvme_frags_contiguous(const kvt_xfer *x, uint64_t fs);
/* XXH3-64 of x's payload, its fragments concatenated. */
uint64_t nvme_frags_hash(const kvt_xfer *x, uint64_t fs);

#endif
