/* tier_cluster.h — the "cluster" tier kind (lib/tier/cluster/tier.c), for the tier registry. */
#ifndef KVT_TIER_CLUSTER_TIER_H
#define KVT_TIER_CLUSTER_TIER_H

#include "tier/tier.h"

/* Present with io_uring; the registry (lib/tier/registry.c) lists it. */
extern const kvt_tier_ops kvt__tier_cluster;

#endif
