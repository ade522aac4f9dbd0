/* dram.c — the DRAM tier: one NUMA-bound, pre-faulted, huge-page arena of slots, pinned for CUDA. */
#include "tier/dram.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "copy.h"
#include "cuda.h"
#include "error.h"
#include "numa_node.h"
#include "tier/xfer.h"

#define HUGE_PAGE ((size_t)2 << 20)
/* Ops per batch that need no allocation; bigger batches allocate. */
#define STACK_OPS 128

struct kvt_tier_impl {
    char *arena;
    size_t arena_bytes; /* mapped: nslots * block_bytes rounded up to HUGE_PAGE */
    size_t block_bytes;
    uint32_t nslots;
    int node;           /* -1: not bound */
    int helpers_on_node; /* the copier's helpers run on node's CPUs */
    int hugepages;      /* requested */
    int shared_fd;      /* the arena's memfd (option "shared"), else -1 */
    int hugetlb;        /* that memfd is on hugetlbfs pages */
    /* Where open's time went: the whole, the mapping (mmap, madvise, NUMA
     * bind), the first touch and the huge-page count from smaps. */
    uint64_t open_ns, map_ns, touch_ns, thp_scan_ns;
    unsigned touch_threads;
    uint64_t thp_bytes; /* arena bytes on transparent huge pages after the touch */
    kvt__copier *copier;
    /* CUDA (docs/gpu.md): the arena as a region the CUDA layer pins in the
     * background, and what moved to and from GPU memory. */
    kvt__cuda_region *cuda_region;
    int gpu_node; /* the default node was asked of the GPU's PCI device (sysfs) */
    kvt__cuda_counters cuda;
    _Atomic uint64_t bytes_written;
    _Atomic uint64_t bytes_read;
    kvt_tier_impl *next_shared; /* in shared_arenas */
};

/* The open shared arenas, for kvt__dram_shared_fd: a server finds its
 * store's arena by address, through whatever wraps the tier (staged,
 * faulty), whose ops hand slot_ptr on unchanged. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static kvt_tier_impl *shared_arenas;

static void shared_list(kvt_tier_impl *t, int add)
{
    pthread_mutex_lock(&shared_lock);
    kvt_tier_impl **at = &shared_arenas;
    while (*at && *at != t)
        at = &(*at)->next_shared;
    if (add && !*at) {
        t->next_shared = shared_arenas;
        shared_arenas = t;
    } else if (!add && *at) {
        *at = t->next_shared;
    }
    pthread_mutex_unlock(&shared_lock);
}

/* Bytes of [mem, mem + len) backed by transparent huge pages, from the
 * AnonHugePages lines of the mappings overlapping it. Huge pages are granted
 * or not by the kernel, whatever was asked, so the stat reports what is. */
static uint64_t thp_bytes_of(const void *mem, size_t len)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f)
        return 0;
    uintptr_t lo = (uintptr_t)mem, hi = lo + len;
    char *line = NULL;
    size_t cap = 0;
    int inside = 0;
    uint64_t kb = 0;
    while (getline(&line, &cap, f) > 0) {
        unsigned long a, b, v;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2)
            inside = a < hi && b > lo;
        else if (inside && sscanf(line, "AnonHugePages: %lu kB", &v) == 1)
            kb += v;
    }
    free(line);
    fclose(f);
    return kb * 1024 < len ? kb * 1024 : len;
}

static void dram_close(kvt_tier_impl *t)
{
    if (!t)
        return;
    if (t->shared_fd >= 0)
        shared_list(t, 0);
    kvt__cuda_region_remove(t->cuda_region); /* unpinned before unmapped */
    if (t->arena)
        munmap(t->arena, t->arena_bytes);
    if (t->shared_fd >= 0)
        close(t->shared_fd);
    kvt__copier_free(t->copier);
    kvt__free(t);
}

/* An anonymous mapping of `bytes` (a multiple of HUGE_PAGE) starting on a
 * HUGE_PAGE boundary, so that every 2 MiB of it can be one huge page. */
static char *map_aligned(size_t bytes)
{
    char *map = mmap(NULL, bytes + HUGE_PAGE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    size_t head = (HUGE_PAGE - ((uintptr_t)map & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
    if (head)
        munmap(map, head);
    munmap(map + head + bytes, HUGE_PAGE - head);
    return map + head;
}

/* Free reserved huge pages of the default size (HugePages_Free *
 * Hugepagesize from /proc/meminfo) cover `bytes`: only then is a hugetlbfs
 * memfd tried, since a hugetlb mapping short of pages faults with SIGBUS
 * on first touch rather than failing at mmap. */
static int hugetlb_pages_for(size_t bytes)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[128];
    unsigned long long free_pages = 0, page_kb = 0, v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "HugePages_Free: %llu", &v) == 1)
            free_pages = v;
        else if (sscanf(line, "Hugepagesize: %llu kB", &v) == 1)
            page_kb = v;
    }
    fclose(f);
    return page_kb * 1024 == HUGE_PAGE && free_pages * page_kb * 1024 >= bytes;
}

/* A memfd of `bytes`, sealed so that no client can resize it (a client that
 * shrank it would have the store fault on its next copy) nor change its
 * seals (F_SEAL_SEAL: one that added F_SEAL_FUTURE_WRITE would lock every
 * later client out of the arena). -1 with errno when any step fails. */
static int sealed_memfd(size_t bytes, unsigned huge_flag)
{
    int fd = memfd_create("kvtier-dram", MFD_CLOEXEC | MFD_ALLOW_SEALING | huge_flag);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)bytes) ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Option "shared": the arena as a memfd mapped MAP_SHARED at `at` (from
 * map_aligned, replaced in place), so that a server can pass the fd to its
 * clients and they copy blocks in and out themselves (docs/shared.md).
 * Huge pages from hugetlbfs when enough are reserved and the kernel seals
 * such a memfd; otherwise ordinary shared memory, which always seals. */
static int map_shared_at(kvt_tier_impl *t, char *at, size_t bytes)
{
    int huge = 0, fd = -1;
#ifdef MFD_HUGETLB
    if (t->hugepages && hugetlb_pages_for(bytes) &&
        (fd = sealed_memfd(bytes, MFD_HUGETLB)) >= 0)
        huge = 1;
#endif
    if (fd < 0 && (fd = sealed_memfd(bytes, 0)) < 0)
        return -1;
    if (mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    t->shared_fd = fd;
    t->hugetlb = huge;
    t->arena_bytes = bytes;
    shared_list(t, 1);
    return 0;
}

static int dram_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    uint64_t started = kvt__monotonic_ns();
    if (!p || !out || !nslots)
        return kvt__err(KVT_ENULL, "dram tier open: %s is NULL",
                        !p ? "params" : !out ? "out" : "nslots");
    *out = NULL;
    int numa_node = (int)kvt__tier_opt_int(p, "numa_node");
    int device = (int)kvt__tier_opt_int(p, "device");
    if (p->block_bytes == 0)
        return kvt__err(KVT_ESIZE, "dram tier: block_bytes is 0");
    if (p->capacity < p->block_bytes)
        return kvt__err(KVT_ECAPACITY,
                        "dram tier: capacity %llu bytes is less than one block of %llu",
                        (unsigned long long)p->capacity, (unsigned long long)p->block_bytes);
    uint64_t slots = p->capacity / p->block_bytes;
    if (slots > UINT32_MAX)
        return kvt__err(KVT_ECAPACITY, "dram tier: %llu slots, more than 2^32 - 1",
                        (unsigned long long)slots);
    uint64_t used = slots * p->block_bytes;
    if (used > SIZE_MAX - 2 * HUGE_PAGE)
        return kvt__err(KVT_ECAPACITY, "dram tier: %llu bytes do not fit the address space",
                        (unsigned long long)used);
    size_t bytes = ((size_t)used + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);

    /* In a process that already uses CUDA (an engine), the default node is
     * the GPU's: copies to and from it then cross no socket link. CUDA is
     * not brought into processes that don't use it for this. */
    char bus[32];
    const char *pci = NULL;
    if (numa_node < 0 && kvt__cuda_in_process() &&
        kvt__cuda_pci_bus_id(device, bus, sizeof bus) == 0)
        pci = bus;
    int node, rc = kvt__numa_node_for(numa_node, pci, &node);
    if (rc < 0)
        return rc;

    kvt_tier_impl *t = kvt__calloc(1, sizeof *t);
    if (!t)
        return kvt__err(KVT_ENOMEM, "dram tier: state");
    t->block_bytes = (size_t)p->block_bytes;
    t->nslots = (uint32_t)slots;
    t->gpu_node = pci != NULL;
    t->hugepages = kvt__tier_opt_int(p, "hugepages") != 0;
    t->shared_fd = -1;
    t->copier = kvt__copier_new(p->copy_threads);
    if (!t->copier) {
        dram_close(t);
        return kvt__err(KVT_ENOMEM, "dram tier: copier with %u threads", p->copy_threads);
    }
    uint64_t step = kvt__monotonic_ns();
    t->arena = map_aligned(bytes);
    if (!t->arena) {
        int e = errno;
        dram_close(t);
        return kvt__err_errno(KVT_ENOMEM, e, "dram tier: mmap of %zu bytes", bytes);
    }
    t->arena_bytes = bytes;
    if (kvt__tier_opt_int(p, "shared") && map_shared_at(t, t->arena, bytes)) {
        int e = errno;
        dram_close(t);
        return kvt__err_errno(KVT_ENOMEM, e, "dram tier: shared arena (memfd) of %zu bytes", bytes);
    }

    /* Failures of these hints are not errors: a kernel without THP still
     * gives a working arena. Huge pages off is honoured even where THP is
     * "always", since whoever asked may be measuring the difference.
     * DONTFORK: after a fork() the parent's every first write to a slot
     * would take a copy-on-write fault, and the child can't use the store. */
    if (!t->hugetlb) /* shmem takes the hint where shmem_enabled is "advise" */
        madvise(t->arena, bytes, t->hugepages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    madvise(t->arena, bytes, MADV_DONTFORK);

    /* Bound before the first touch: pages land on their node when faulted. */
    rc = kvt__numa_bind(t->arena, bytes, node);
    if (rc < 0) {
        if (numa_node >= 0) {
            dram_close(t);
            return rc;
        }
        node = -1; /* the chosen node was a preference, not a demand */
    }
    t->node = node;
    t->map_ns = kvt__monotonic_ns() - step;

    /* Helpers on the arena's node: copies read or write it without
     * crossing the socket interconnect. The touch runs there too: mbind
     * places the pages whoever faults them, but zeroing them from the node's
     * own CPUs keeps that traffic local. */
    cpu_set_t cpus;
    int have_cpus = node >= 0 && kvt__numa_node_cpus(node, &cpus) == 0;
    if (have_cpus)
        t->helpers_on_node = kvt__copier_set_affinity(t->copier, &cpus) == 0;
    kvt__err_clear(); /* the open succeeds: no message from the optional steps */

    /* With huge pages asked for, one write per 2 MiB faults a whole huge
     * page where the kernel grants one. Where smaps says it did not grant
     * them all, the arena is touched again at every page: writes to pages
     * already there cost no fault, and the rest get theirs. */
    long page = sysconf(_SC_PAGESIZE);
    size_t small = page > 0 ? (size_t)page : 4096;
    step = kvt__monotonic_ns();
    t->touch_threads = kvt__prefault(t->arena, bytes, t->hugepages ? HUGE_PAGE : small,
                                     have_cpus ? &cpus : NULL);
    t->touch_ns = kvt__monotonic_ns() - step;
    step = kvt__monotonic_ns();
    t->thp_bytes = thp_bytes_of(t->arena, bytes);
    t->thp_scan_ns = kvt__monotonic_ns() - step;
    if (t->hugepages && t->thp_bytes < bytes) {
        step = kvt__monotonic_ns();
        kvt__prefault(t->arena, bytes, small, have_cpus ? &cpus : NULL);
        t->touch_ns += kvt__monotonic_ns() - step;
    }

    /* Pinning 8 GiB takes seconds: it runs in the background, chunk by
     * chunk, and copies use each chunk's fast paths once it is pinned. It
     * starts now in a CUDA process, else at the first GPU copy or when the
     * HBM tier opens. */
    rc = kvt__cuda_region_add(t->arena, bytes, t->block_bytes, device, &t->cuda_region);
    if (rc) {
        dram_close(t);
        return rc;
    }
    if (kvt__cuda_in_process())
        kvt__cuda_region_pin(t->cuda_region);
    kvt__err_clear();

    t->open_ns = kvt__monotonic_ns() - started;
    *out = t;
    *nslots = t->nslots;
    return 0;
}

/* Runs a batch of copies: host memory on the copier's threads, GPU memory
 * (dev >= 0) by the CUDA layer. After a CUDA failure (rc) the rest of the
 * batch is skipped and rc kept. */
static int run_ops(kvt_tier_impl *t, const kvt__copy_op *ops, size_t k, int dev, int to_slots,
                   int rc)
{
    if (dev < 0) {
        kvt__copier_run(t->copier, ops, k);
        return 0;
    }
    if (rc)
        return rc;
    return kvt__cuda_copy(dev, to_slots ? KVT__CUDA_D2H : KVT__CUDA_H2D, 0, ops, k, &t->cuda);
}

/* Both directions: every fragment of every valid xfer goes into one batch,
 * so that the copier can split the whole transfer across its threads. */
static int dram_move(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem, int to_slots)
{
    const char *what = to_slots ? "write" : "read";
    if (!t || (n && !x))
        return kvt__err(KVT_ENULL, "dram tier %s: %s is NULL", what, t ? "xfers" : "tier");
    if (mem != KVT_MEM_HOST && (mem != KVT_MEM_CUDA || !KVT_HAVE_CUDA)) {
        for (size_t i = 0; i < n; i++)
            x[i].status = KVT_EMEMKIND;
        return kvt__err(KVT_EMEMKIND, "dram tier %s: memory kind %d (host%s memory only)", what,
                        (int)mem, KVT_HAVE_CUDA ? " or CUDA" : "");
    }

    int first = 0;
    size_t first_at = 0, want = 0;
    for (size_t i = 0; i < n; i++) {
        x[i].status = kvt__xfer_check(&x[i], t->block_bytes, t->nslots);
        if (x[i].status == 0)
            want += kvt__xfer_frags(&x[i]);
        else if (!first) {
            first = x[i].status;
            first_at = i;
        }
    }

    /* GPU memory: the device of the first fragment does the copies (a call
     * is one device's memory, kvt_io_opts.device). */
    int dev = -1, gpu_rc = 0;
    if (mem == KVT_MEM_CUDA && want) {
        for (size_t i = 0; i < n && dev < 0; i++)
            if (!x[i].status && (gpu_rc = kvt__cuda_ptr_device(x[i].frags[0], &dev)) != 0)
                break;
        if (gpu_rc) {
            for (size_t i = 0; i < n; i++)
                if (!x[i].status)
                    x[i].status = gpu_rc;
            return gpu_rc;
        }
        kvt__cuda_region_pin(t->cuda_region);
    }

    kvt__copy_op stack[STACK_OPS], *ops = stack;
    size_t cap = STACK_OPS;
    if (want > cap) {
        kvt__copy_op *big = kvt__malloc(want * sizeof *big);
        /* Without memory, the batch goes in stack-sized pieces instead. */
        if (big) {
            ops = big;
            cap = want;
        }
    }
    size_t k = 0;
    uint64_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        if (x[i].status)
            continue;
        size_t frag = t->block_bytes / x[i].nfrags;
        char *slot = t->arena + (size_t)x[i].slot * t->block_bytes;
        for (uint32_t f = 0; f < kvt__xfer_frags(&x[i]); f++) {
            if (k == cap) {
                gpu_rc = run_ops(t, ops, k, dev, to_slots, gpu_rc);
                k = 0;
            }
            char *at = slot + (size_t)(x[i].first + f) * frag;
            ops[k++] = to_slots ? (kvt__copy_op){at, x[i].frags[f], frag}
                                : (kvt__copy_op){x[i].frags[f], at, frag};
        }
        moved += frag * kvt__xfer_frags(&x[i]);
    }
    if (k)
        gpu_rc = run_ops(t, ops, k, dev, to_slots, gpu_rc);
    if (ops != stack)
        kvt__free(ops);
    if (gpu_rc) {
        /* A failed CUDA batch can't say which copies landed. */
        for (size_t i = 0; i < n; i++)
            if (!x[i].status)
                x[i].status = KVT_EIO;
        return gpu_rc;
    }
    atomic_fetch_add_explicit(to_slots ? &t->bytes_written : &t->bytes_read, moved,
                              memory_order_relaxed);
    if (first)
        return kvt__err(first, "dram tier %s: xfer %zu (slot %u of %u, %u fragments)", what,
                        first_at, x[first_at].slot, t->nslots, x[first_at].nfrags);
    return 0;
}

static int dram_write(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return dram_move(t, x, n, mem, 1);
}

static int dram_read(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    return dram_move(t, x, n, mem, 0);
}

static void *dram_slot_ptr(kvt_tier_impl *t, uint32_t slot)
{
    if (!t || slot >= t->nslots)
        return NULL;
    return t->arena + (size_t)slot * t->block_bytes;
}

static void dram_stats(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    if (!t || !fn)
        return;
    fn("dram.slots", t->nslots, user);
    fn("dram.numa_node", t->node < 0 ? UINT64_MAX : (uint64_t)t->node, user);
    fn("dram.hugepages", (uint64_t)t->hugepages, user);
    fn("dram.helpers_on_node", (uint64_t)t->helpers_on_node, user);
    fn("dram.thp_bytes", t->thp_bytes, user);
    fn("dram.open_ms", (t->open_ns + 500000) / 1000000, user);
    fn("dram.mmap_ms", (t->map_ns + 500000) / 1000000, user);
    fn("dram.touch_ms", (t->touch_ns + 500000) / 1000000, user);
    fn("dram.touch_threads", t->touch_threads, user);
    fn("dram.thp_scan_ms", (t->thp_scan_ns + 500000) / 1000000, user);
    fn("dram.arena_bytes", t->arena_bytes, user);
    if (t->shared_fd >= 0) /* only then: a private arena's stats stay as they were */
        fn("dram.shared_hugetlb", (uint64_t)t->hugetlb, user);
    fn("dram.copy_threads", kvt__copier_threads(t->copier), user);
    uint64_t pooled, busy;
    kvt__copier_counts(t->copier, &pooled, &busy);
    fn("dram.copy_batches_pooled", pooled, user);
    fn("dram.copy_batches_busy", busy, user);
    fn("dram.bytes_written", atomic_load_explicit(&t->bytes_written, memory_order_relaxed), user);
    fn("dram.bytes_read", atomic_load_explicit(&t->bytes_read, memory_order_relaxed), user);
#if KVT_HAVE_CUDA
    uint64_t pinned, pin_ms;
    kvt__cuda_region_stats(t->cuda_region, &pinned, &pin_ms);
    fn("dram.cuda_pinned_bytes", pinned, user);
    fn("dram.cuda_pin_ms", pin_ms, user);
    fn("dram.numa_asked_gpu", (uint64_t)t->gpu_node, user);
    kvt__cuda_counters_visit(&t->cuda, "dram", fn, user);
#endif
}

void *kvt__dram_arena(kvt_tier_impl *t, size_t *bytes)
{
    if (bytes)
        *bytes = t ? t->arena_bytes : 0;
    return t ? t->arena : NULL;
}

int kvt__dram_shared_fd(const void *base, size_t *bytes)
{
    int fd = -1;
    *bytes = 0;
    pthread_mutex_lock(&shared_lock);
    for (kvt_tier_impl *t = shared_arenas; t; t = t->next_shared)
        if (t->arena == base) {
            fd = t->shared_fd;
            *bytes = t->arena_bytes;
        }
    pthread_mutex_unlock(&shared_lock);
    return fd;
}

static const kvt_tier_opt_spec dram_options[] = {
    {"numa_node", KVT_OPTTYPE_INT, -1, 1023, -1, 0,
     "node for the arena; -1: nearest the GPU (in a CUDA process) or local"},
    {"hugepages", KVT_OPTTYPE_INT, 0, 1, 1, 0, "1: ask for transparent huge pages"},
    {"device", KVT_OPTTYPE_INT, 0, 1023, 0, 0,
     "the GPU whose NUMA node is the default and whose context pins the arena"},
    {"shared", KVT_OPTTYPE_INT, 0, 1, 0, 0,
     "1: the arena in a memfd (MAP_SHARED) that a server passes to its clients"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

const kvt_tier_ops kvt__tier_dram = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "dram",
    .caps = KVT_TCAP_HOST_PTR | KVT_TCAP_FRAG_RANGE | (KVT_HAVE_CUDA ? KVT_TCAP_CUDA_MEM : 0),
    .options = dram_options,
    .open = dram_open,
    .close = dram_close,
    .write = dram_write,
    .read = dram_read,
    .discard = NULL,
    .slot_ptr = dram_slot_ptr,
    .recover = NULL,
    .stats = dram_stats,
};
