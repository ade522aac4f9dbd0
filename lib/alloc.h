/*
 * alloc.h — every heap allocation of the library goes through these, so
 * that tests can make the n-th one fail (SQLite-style OOM loops,
 * tests/unit/test_alloc_faults.c).
 *
 * With fault injection compiled in (KVT_HAVE_FAULTS), each wrapper costs one
 * relaxed atomic load and a predictable branch while no failure is armed;
 * without it they are the libc calls. Memory from these wrappers is freed by
 * kvt__free (which is free()), so a pointer from libc may also be passed.
 */
#ifndef KVT_ALLOC_H
#define KVT_ALLOC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "kvt_build_config.h"

#if KVT_HAVE_FAULTS
/* Allocations left before the armed failure; 0 when nothing is armed. */
extern _Atomic long kvt__alloc_countdown;
/* Slow path: counts this allocation down; 1 when it must fail. */
int kvt__alloc_tick(void);
#define KVT__ALLOC_FAILS()                                                             \
    (__builtin_expect(atomic_load_explicit(&kvt__alloc_countdown, memory_order_relaxed) \
                          != 0, 0) && kvt__alloc_tick())
#else
#define KVT__ALLOC_FAILS() 0
#endif

static inline void *kvt__malloc(size_t n)
{
    return KVT__ALLOC_FAILS() ? NULL : malloc(n);
}

static inline void *kvt__calloc(size_t n, size_t size)
{
    return KVT__ALLOC_FAILS() ? NULL : calloc(n, size);
}

/* On failure the old block is left as it was (as realloc). */
static inline void *kvt__realloc(void *p, size_t n)
{
    return KVT__ALLOC_FAILS() ? NULL : realloc(p, n);
}

/* size is rounded up to a multiple of align (C11 asks for it). */
static inline void *kvt__aligned_alloc(size_t align, size_t size)
{
    if (KVT__ALLOC_FAILS())
        return NULL;
    return aligned_alloc(align, (size + align - 1) / align * align);
}

/* 0 or an errno value (ENOMEM), as posix_memalign. */
int kvt__posix_memalign(void **out, size_t align, size_t size);

char *kvt__strdup(const char *s);

static inline void kvt__free(void *p)
{
    free(p);
}

/* Test hook (fault-injection builds; elsewhere it does nothing): the n-th
 * allocation from now (n >= 1; 1 = the next one) fails, once, in whichever
 * thread makes it; n <= 0 disarms. Thread-safe. */
void kvt__alloc_fail_after(long n);
/* Like kvt__alloc_fail_after, but with `sticky` every allocation after the
 * n-th fails too, until disarmed (SQLite's "persistent" OOM mode). */
void kvt__alloc_fail_mode(long n, int sticky);
/* Failures injected since the process started. */
long kvt__alloc_failures(void);

#endif
