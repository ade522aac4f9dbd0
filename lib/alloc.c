/* alloc.c — the allocation wrappers' slow paths and the OOM test hook (alloc.h). */
#include "alloc.h"

#include <errno.h>
#include <string.h>

#if KVT_HAVE_FAULTS

_Atomic long kvt__alloc_countdown = 0;
static _Atomic int sticky_mode = 0;
static _Atomic long failures = 0;

int kvt__alloc_tick(void)
{
    long c = atomic_load_explicit(&kvt__alloc_countdown, memory_order_relaxed);
    for (;;) {
        if (c == 0)
            return 0; /* disarmed meanwhile */
        if (c < 0) {  /* sticky, past the n-th: every allocation fails */
            atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
            return 1;
        }
        long next = c - 1;
        if (next == 0 && atomic_load_explicit(&sticky_mode, memory_order_relaxed))
            next = -1;
        if (atomic_compare_exchange_weak_explicit(&kvt__alloc_countdown, &c, next,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            if (c != 1)
                return 0;
            atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
            return 1;
        }
    }
}

void kvt__alloc_fail_mode(long n, int sticky)
{
    atomic_store_explicit(&kvt__alloc_countdown, 0, memory_order_relaxed);
    atomic_store_explicit(&sticky_mode, sticky != 0, memory_order_relaxed);
    atomic_store_explicit(&kvt__alloc_countdown, n > 0 ? n : 0, memory_order_seq_cst);
}

long kvt__alloc_failures(void)
{
    return atomic_load_explicit(&failures, memory_order_relaxed);
}

#else

void kvt__alloc_fail_mode(long n, int sticky)
{
    (void)n;
    (void)sticky;
}

long kvt__alloc_failures(void)
{
    return 0;
}

#endif

void kvt__alloc_fail_after(long n)
{
    kvt__alloc_fail_mode(n, 0);
}

int kvt__posix_memalign(void **out, size_t align, size_t size)
{
    if (KVT__ALLOC_FAILS())
        return ENOMEM;
    return posix_memalign(out, align, size);
}

char *kvt__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = kvt__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
