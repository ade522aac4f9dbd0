/* tier_cluster.h — the "cluster" tier kind (lib/tier/cluster/tier.c), for the tier registry. */
#ifndef KVT_TIER_CLUSTER_TIER_H
#define KVT_TIER_CLUSTER_TIER_H

#include "tier/tier.h"

/* Present with io_uring once tier.h has key-addressed tiers (KVT_TCAP_KEYED;
 * lib/meson.build builds tier.c then). The registry (lib/tier/registry.c,
 * issue 16) lists it next to the NVMe kind, under KVT_HAVE_URING:
 *     &kvt__tier_nvme, &kvt__tier_cluster,   nkinds = 2 + 2 * KVT_HAVE_URING */
extern const kvt_tier_ops kvt__tier_cluster;

#endif
