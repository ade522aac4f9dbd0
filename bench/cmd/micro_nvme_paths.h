/* micro_nvme_paths.h — `kvtier-bench micro --tier nvme --paths A,B,...`: the striped NVMe tier next to its devices' raw loops. */
#ifndef KVT_BENCH_MICRO_NVME_PATHS_H
#define KVT_BENCH_MICRO_NVME_PATHS_H

#include <stdint.h>

#include "../bench.h"

/* For each block size x queue depth: an NVMe-only store striped across the
 * comma-separated paths (files or block devices, overwritten: recreate is
 * set, and left in place), put and get GB/s next to the sum of each
 * device's raw loop run alone on its share of the same blocks, in the same
 * run. Prints a table, or JSON. */
int bench_micro_nvme_paths(const char *paths, const bench_list *blocks, const bench_list *qds,
                           uint64_t total, int runs, int json);

#endif
