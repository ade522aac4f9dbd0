/* clock.h — nanoseconds from a POSIX clock, for the library's timers and stamps. */
#ifndef KVT_CLOCK_H
#define KVT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t kvt__clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC: for intervals. */
static inline uint64_t kvt__monotonic_ns(void)
{
    return kvt__clock_ns(CLOCK_MONOTONIC);
}

#endif
