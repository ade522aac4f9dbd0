/* stress_util.h — what the plain stress programs share: a failing check that
 * exits, a xorshift generator, a monotonic clock and key-derived block bytes. */
#ifndef KVT_STRESS_UTIL_H
#define KVT_STRESS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A program that wants more in the message (a seed) defines its own first. */
#ifndef CHECK
#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, "\n");                                                   \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)
#endif

static inline uint64_t stress_rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline double stress_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Block i's bytes (len a multiple of 8): a xorshift stream seeded by i and a
 * per-program salt, so that every block differs from every other. */
static inline void stress_fill(uint8_t *buf, size_t len, uint64_t i, uint64_t salt)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + salt;
    for (size_t j = 0; j < len; j += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + j, &x, 8);
    }
}

#endif
