/* tier_cluster.h — the "cluster" tier kind (lib/tier/cluster/tier.c), for the tier registry. */
#ifndef KVT_TIER_CLUSTER_TIER_H
#define KVT_TIER_CLUSTER_TIER_H

#include "tier/tier.h"

/* Present only with io_uring and a tier.h that has key-addressed tiers
 * (KVT_TCAP_KEYED): lib/meson.build defines KVT_HAVE_CLUSTER_TIER then. */
extern const kvt_tier_ops kvt__tier_cluster;

#endif
