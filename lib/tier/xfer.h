/* tier/xfer.h — the checks every tier (and wrapper) makes of one kvt_xfer before moving its bytes. */
#ifndef KVT_TIER_XFER_H
#define KVT_TIER_XFER_H

#include <stdint.h>

#include "kvtier.h"
#include "tier/tier.h"

/* Inline: tiers run these once per block on their fastest paths (DRAM
 * reads), where each used to be a static function of the tier's own file. */

/* The fragments of x: 0, KVT_EFRAGS (none, or they don't divide a
 * block_bytes block evenly) or KVT_ENULL (no array, or a NULL fragment).
 * Codes only, no message: the caller names the tier and the xfer. */
/* Fragments an xfer moves: its range (KVT_TCAP_FRAG_RANGE tiers), or all. */
static inline uint32_t kvt__xfer_frags(const kvt_xfer *x)
{
    return x->count ? x->count : x->nfrags;
}

/* A range outside the block is KVT_EINVAL; `frags` then holds count pointers. */
static inline int kvt__xfer_check_frags(const kvt_xfer *x, uint64_t block_bytes)
{
    if (x->nfrags == 0 || block_bytes % x->nfrags)
        return KVT_EFRAGS;
    if (x->count && (x->first >= x->nfrags || x->count > x->nfrags - x->first))
        return KVT_EINVAL;
    if (!x->frags)
        return KVT_ENULL;
    for (uint32_t f = 0; f < kvt__xfer_frags(x); f++)
        if (!x->frags[f])
            return KVT_ENULL;
    return 0;
}

/* The same, after the slot: KVT_EINVAL when it is not below nslots. */
static inline int kvt__xfer_check(const kvt_xfer *x, uint64_t block_bytes, uint32_t nslots)
{
    if (x->slot >= nslots)
        return KVT_EINVAL;
    return kvt__xfer_check_frags(x, block_bytes);
}

#endif
