/* numa.c — NUMA node choice (configured, nearest a PCI device, local) and range binding. */
#include "numa_node.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "kvt_build_config.h"

#if KVT_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

/* Reads a small signed integer from a sysfs file; fallback when unreadable. */
static int read_int_file(const char *path, int fallback)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return fallback;
    int v;
    if (fscanf(f, "%d", &v) != 1)
        v = fallback;
    fclose(f);
    return v;
}

/* Canonical sysfs name "dddd:bb:dd.f" (lowercase; domains past 0xffff, as
 * behind Intel VMD, print longer) of a PCI bus id, or -1.
 * Only hex digits, ':' and '.' are accepted, so the id cannot walk the tree. */
static int pci_sysfs_name(const char *id, char out[24])
{
    size_t len = strlen(id);
    if (len == 0 || len > 32)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)id[i]) && id[i] != ':' && id[i] != '.')
            return -1;
    unsigned domain = 0, bus, dev, fn;
    char tail;
    if (strchr(id, ':') != strrchr(id, ':')) {
        /* nvidia-smi prints an 8-digit domain; sysfs uses 4. */
        if (sscanf(id, "%x:%x:%x.%x%c", &domain, &bus, &dev, &fn, &tail) != 4)
            return -1;
    } else if (sscanf(id, "%x:%x.%x%c", &bus, &dev, &fn, &tail) != 3) {
        return -1;
    }
    if (bus > 0xff || dev > 0x1f || fn > 7)
        return -1;
    snprintf(out, 24, "%04x:%02x:%02x.%x", domain, bus, dev, fn);
    return 0;
}

/* The node sysfs gives a PCI device, or -1 (unknown, or a machine without
 * NUMA, where the file reads -1). */
static int pci_node(const char *pci_bus_id)
{
    char name[24], path[96];
    if (!pci_bus_id || pci_sysfs_name(pci_bus_id, name) != 0)
        return -1;
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/numa_node", name);
    return read_int_file(path, -1);
}

static int local_node(void)
{
    unsigned cpu, node;
    if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0)
        return -1;
    return (int)node;
}

#if KVT_HAVE_NUMA

static int numa_usable(void)
{
    return numa_available() >= 0;
}

/* A node this process may allocate memory on. */
static int node_exists(int node)
{
    return node <= numa_max_node() && numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)node);
}

#else

static int numa_usable(void)
{
    return 0;
}

/* Without libnuma, existence is still checkable, so that a bad node number
 * is refused the same way in every build. */
static int node_exists(int node)
{
    char path[64];
    if (node == 0)
        return 1;
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d", node);
    return access(path, F_OK) == 0;
}

#endif

static int choose(int configured, const char *pci_bus_id, int *node)
{
    int usable = numa_usable();
    if (configured >= 0) {
        if (!node_exists(configured))
            return kvt__err(KVT_EINVAL, "NUMA node %d does not exist or has no memory here",
                            configured);
        *node = usable ? configured : -1;
        return 0;
    }
    if (!usable)
        return 0;
    int n = pci_node(pci_bus_id);
    if (n >= 0 && node_exists(n)) {
        *node = n;
        return 0;
    }
    n = local_node();
    if (n >= 0 && node_exists(n))
        *node = n;
    return 0;
}

int kvt__numa_node_for(int configured, const char *pci_bus_id, int *node)
{
    if (!node)
        return kvt__err(KVT_ENULL, "kvt__numa_node_for: node is NULL");
    *node = -1;
    return choose(configured, pci_bus_id, node);
}

int kvt__numa_bind(void *mem, size_t len, int node)
{
    if (node < 0 || len == 0)
        return 0;
#if KVT_HAVE_NUMA
    /* mbind() rather than numa_tonode_memory(): libnuma reports failures by
     * printing to stderr, which a library must not do. */
    enum { BITS = 8 * sizeof(unsigned long) };
    unsigned long mask[1024 / BITS] = {0};
    if ((size_t)node >= sizeof mask * 8)
        return kvt__err(KVT_EINVAL, "NUMA node %d is beyond the 1024 nodes supported", node);
    mask[(size_t)node / BITS] |= 1ul << ((size_t)node % BITS);
    /* The kernel reads maxnode - 1 bits. */
    if (mbind(mem, len, MPOL_BIND, mask, sizeof mask * 8 + 1, 0) != 0)
        return kvt__err_errno(KVT_ESYS, errno, "mbind of %zu bytes to NUMA node %d", len, node);
    return 0;
#else
    (void)mem;
    return kvt__err(KVT_ENOTSUP, "NUMA binding to node %d: built without libnuma", node);
#endif
}

int kvt__cpulist_parse(const char *text, cpu_set_t *set)
{
    CPU_ZERO(set);
    const char *at = text;
    while (*at && *at != '\n') {
        char *end;
        if (!isdigit((unsigned char)*at))
            return kvt__err(KVT_EINVAL, "cpulist \"%s\": expected a CPU number", text);
        unsigned long lo = strtoul(at, &end, 10), hi = lo;
        at = end;
        if (*at == '-') {
            if (!isdigit((unsigned char)at[1]))
                return kvt__err(KVT_EINVAL, "cpulist \"%s\": range without an end", text);
            hi = strtoul(at + 1, &end, 10);
            at = end;
        }
        if (hi < lo || hi >= CPU_SETSIZE)
            return kvt__err(KVT_EINVAL, "cpulist \"%s\": bad range %lu-%lu", text, lo, hi);
        for (unsigned long cpu = lo; cpu <= hi; cpu++)
            CPU_SET(cpu, set);
        if (*at == ',')
            at++;
        else if (*at && *at != '\n')
            return kvt__err(KVT_EINVAL, "cpulist \"%s\": unexpected '%c'", text, *at);
    }
    return 0;
}

int kvt__numa_node_cpus(int node, cpu_set_t *set)
{
    char path[64], text[4096];
    if (node < 0)
        return kvt__err(KVT_EINVAL, "CPUs of NUMA node %d", node);
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", node);
    FILE *f = fopen(path, "re");
    if (!f)
        return kvt__err_errno(KVT_EINVAL, errno, "CPUs of NUMA node %d: %s", node, path);
    int ok = fgets(text, sizeof text, f) != NULL;
    fclose(f);
    if (!ok)
        return kvt__err(KVT_EINVAL, "CPUs of NUMA node %d: %s is empty", node, path);
    int rc = kvt__cpulist_parse(text, set);
    if (rc < 0)
        return rc;
    /* Not narrowed to this thread's affinity: the caller may be pinned to
     * one CPU, the helpers should not be. The kernel drops CPUs outside the
     * process's cpuset when the set is applied. */
    if (CPU_COUNT(set) == 0)
        return kvt__err(KVT_EINVAL, "NUMA node %d has no CPUs", node);
    return 0;
}
