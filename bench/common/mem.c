/* mem.c — benchmark buffers (huge pages, pre-faulted) and RSS. The memcpy baseline: baseline/memcpy.c. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../bench.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *bench_alloc(size_t bytes)
{
    if (!bytes)
        return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (bytes >= HUGE_PAGE)
        madvise(p, bytes, MADV_HUGEPAGE); /* a hint: no huge pages is still a buffer */
    bench_fill(p, bytes, (uintptr_t)p);
    return p;
}

void bench_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

void bench_fill(void *p, size_t bytes, uint64_t seed)
{
    uint64_t x = bench_rand_seed(seed);
    uint64_t *w = p;
    size_t n = bytes / sizeof *w;
    /* One random word per cache line, the rest derived: fast enough to fill
     * gigabytes, and no page is all zeros (a kernel could share those). */
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            x = bench_rand(&x);
        w[i] = x + i;
    }
    memset((char *)p + n * sizeof *w, 0x5a, bytes - n * sizeof *w);
}

uint64_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    unsigned long size = 0, resident = 0;
    int ok = fscanf(f, "%lu %lu", &size, &resident) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok ? (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096) : 0;
}
