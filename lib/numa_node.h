/* numa_node.h — choosing the NUMA node for host memory and binding ranges to it. */
/* Not named numa.h: lib/ is on the include path, where it would hide libnuma's <numa.h>. */
#ifndef KVT_NUMA_NODE_H
#define KVT_NUMA_NODE_H

#include <sched.h>
#include <stddef.h>

/* Puts into *node the node host memory should live on:
 *  - configured >= 0: that node; KVT_EINVAL (with a message) if this machine
 *    has no such node with memory;
 *  - else the node of the PCI device pci_bus_id ("0000:3b:00.0", also
 *    "3b:00.0" and nvidia-smi's "00000000:3B:00.0"; may be NULL) when sysfs
 *    knows it;
 *  - else the node of the CPU the caller runs on.
 * *node is -1, meaning "do not bind", when NUMA is unavailable (no libnuma in
 * this build, or the kernel refuses memory policies); a configured node that
 * exists is then not an error. Returns 0 or KVT_EINVAL (the node goes out
 * through a pointer because -1, "no node", is also KVT_EINVAL's value). */
int kvt__numa_node_for(int configured, const char *pci_bus_id, int *node);

/* Binds [mem, mem + len) to node (MPOL_BIND) so that pages faulted later are
 * allocated there. mem must be page-aligned. Node -1 does nothing. 0 or
 * KVT_EINVAL / KVT_ESYS (KVT_ENOTSUP for a node >= 0 in a build without
 * libnuma, where kvt__numa_node_for never returns one). */
int kvt__numa_bind(void *mem, size_t len, int node);

/* The CPUs of a node, from sysfs, into *set. 0, or KVT_EINVAL for a node
 * without CPUs or unknown to sysfs. */
int kvt__numa_node_cpus(int node, cpu_set_t *set);

/* Parses a sysfs cpulist ("0-3,8,10-11", newline optional) into *set
 * (cleared first). 0 or KVT_EINVAL for malformed text or CPUs past
 * CPU_SETSIZE. */
int kvt__cpulist_parse(const char *text, cpu_set_t *set);

#endif
