/* rand.c — the tests' seeded randomness (rand.h). */
#include "rand.h"

#include <errno.h> /* program_invocation_short_name (_GNU_SOURCE, meson.build) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The test program's file name: Criterion's workers run as "boxfort-worker", but
 * /proc/self/exe still names the binary (test-unit-dram, ...). */
static const char *program_name(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0)
        return program_invocation_short_name;
    buf[n] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

uint64_t test_seed(const char *test)
{
    static uint64_t seed;
    if (!seed) {
        char exe[512];
        const char *env = getenv("KVT_TEST_SEED");
        seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
        if (!seed)
            seed = 1;
        fprintf(stderr, "%s %s: seed %llu (rerun with KVT_TEST_SEED=%llu)\n",
                program_name(exe, sizeof exe), test ? test : "", (unsigned long long)seed,
                (unsigned long long)seed);
    }
    return seed;
}

uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rand_below(uint64_t *s, uint64_t n)
{
    return next_rand(s) % n; /* the bias of % is far below what any test can see */
}

void fill_random(void *p, size_t len, uint64_t *s)
{
    unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v = next_rand(s);
        memcpy(b + i, &v, 8);
    }
    uint64_t v = next_rand(s);
    for (; i < len; i++, v >>= 8)
        b[i] = (unsigned char)v;
}

void fill_pattern(void *p, size_t len, uint64_t id, uint64_t salt)
{
    uint64_t s = id * 0x9e3779b97f4a7c15ull ^ salt;
    fill_random(p, len, &s);
}
