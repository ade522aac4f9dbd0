/* killpoint.c — whitebox crash points (killpoint.h): parsing KVT_KILLPOINTS, the draw. */
#include "killpoint.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const site_names[KVT__KP_SITES] = {"write", "flush", "meta", "publish"};

const char *kvt__killpoint_name(kvt__kp_site site)
{
    return (unsigned)site < KVT__KP_SITES ? site_names[site] : "unknown";
}

#if KVT_HAVE_FAULTS

_Atomic int kvt__kp_state = 0;
/* Probability as a threshold on 64 random bits, so the draw is one compare. */
static uint64_t threshold;
static uint64_t seed;
static unsigned site_mask;
static _Atomic uint64_t draws;

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* "write,flush" (the value of sites=, up to the end of the string: sites is
 * the last item) into a mask; 0 on an unknown name. */
static unsigned parse_sites(const char *v)
{
    unsigned mask = 0;
    while (*v) {
        size_t len = strcspn(v, ",");
        int found = 0;
        for (int k = 0; k < KVT__KP_SITES; k++) {
            if (strlen(site_names[k]) == len && !strncmp(v, site_names[k], len)) {
                mask |= 1u << k;
                found = 1;
            }
        }
        if (!found)
            return 0;
        v += len;
        if (*v == ',')
            v++;
    }
    return mask;
}

/* 1 when spec arms kill points; fills threshold, seed and site_mask. */
static int parse(const char *spec)
{
    double rate = -1.0;
    uint64_t sd = 1;
    unsigned mask = (1u << KVT__KP_SITES) - 1;
    char buf[256];
    if (!spec || !*spec || strlen(spec) >= sizeof buf)
        return 0;
    strcpy(buf, spec);
    char *p = buf;
    while (*p) {
        char *item = p;
        size_t len = strcspn(p, ",");
        if (!strncmp(item, "sites=", 6)) { /* takes the rest: its value has commas */
            mask = parse_sites(item + 6);
            if (!mask)
                return 0;
            break;
        }
        p += len;
        if (*p == ',')
            *p++ = '\0';
        char *eq = strchr(item, '=');
        if (!eq)
            return 0;
        *eq = '\0';
        char *end;
        if (!strcmp(item, "rate")) {
            rate = strtod(eq + 1, &end);
            if (end == eq + 1 || *end || !(rate >= 0.0 && rate <= 1.0))
                return 0;
        } else if (!strcmp(item, "seed")) {
            sd = strtoull(eq + 1, &end, 0);
            if (end == eq + 1 || *end)
                return 0;
        } else {
            return 0;
        }
    }
    if (rate <= 0.0)
        return 0;
    threshold = rate >= 1.0 ? UINT64_MAX : (uint64_t)(rate * 18446744073709551616.0);
    seed = sd;
    site_mask = mask;
    return 1;
}

void kvt__killpoint_slow(kvt__kp_site site)
{
    int st = atomic_load_explicit(&kvt__kp_state, memory_order_acquire);
    if (st == 0) {
        /* Racing first readers parse the same string to the same values. */
        static _Atomic int parsing = 0;
        if (atomic_exchange(&parsing, 1) == 0) {
            st = parse(getenv("KVT_KILLPOINTS")) ? 2 : 1;
            atomic_store_explicit(&kvt__kp_state, st, memory_order_release);
        } else {
            while ((st = atomic_load_explicit(&kvt__kp_state, memory_order_acquire)) == 0)
                ;
        }
    }
    if (st != 2 || !(site_mask & (1u << site)))
        return;
    uint64_t n = atomic_fetch_add_explicit(&draws, 1, memory_order_relaxed);
    uint64_t r = splitmix64(seed ^ splitmix64(n));
    if (threshold == UINT64_MAX || r < threshold)
        _exit(KVT__KP_EXIT_BASE + (int)site);
}

int kvt__killpoint_state(void)
{
    int st = atomic_load_explicit(&kvt__kp_state, memory_order_acquire);
    return st == 0 ? -1 : st == 2;
}

#else

int kvt__killpoint_state(void)
{
    return 0;
}

#endif
