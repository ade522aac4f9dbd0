/*
 * killpoint.h — whitebox crash points (tests/crash/crashloop.c --whitebox).
 *
 * With KVT_KILLPOINTS=rate=R,seed=S[,sites=write,flush,meta,publish] in the
 * environment, the process calls _exit(86 + site) with probability R each
 * time it passes a kill point of a selected site (all sites by default):
 *   write    an NVMe block write is about to be submitted
 *   flush    an fdatasync of the NVMe file is about to run
 *   meta     NVMe metadata is about to change (superblock write, slot discard)
 *   publish  a block just written is about to become visible in the index
 * The environment is read once, at the first kill point; unset (or a build
 * without fault injection) each kill point costs one relaxed load and a
 * predictable branch. A malformed value disables kill points (the library
 * never prints; kvt__killpoint_state() tells tests).
 */
#ifndef KVT_KILLPOINT_H
#define KVT_KILLPOINT_H

#include <stdatomic.h>

#include "kvt_build_config.h"

typedef enum kvt__kp_site {
    KVT__KP_WRITE = 0,
    KVT__KP_FLUSH = 1,
    KVT__KP_META = 2,
    KVT__KP_PUBLISH = 3,
    KVT__KP_SITES
} kvt__kp_site;

/* Exit status of a process killed at `site`. */
#define KVT__KP_EXIT_BASE 86

#if KVT_HAVE_FAULTS
/* 0: environment not read yet; 1: off; 2: armed. */
extern _Atomic int kvt__kp_state;
void kvt__killpoint_slow(kvt__kp_site site);
#define KVT_KILLPOINT(site)                                                            \
    do {                                                                               \
        if (__builtin_expect(atomic_load_explicit(&kvt__kp_state, memory_order_relaxed) \
                                 != 1, 0))                                             \
            kvt__killpoint_slow(site);                                                 \
    } while (0)
#else
#define KVT_KILLPOINT(site) ((void)(site))
#endif

/* "write", "flush", "meta", "publish". */
const char *kvt__killpoint_name(kvt__kp_site site);
/* After the first kill point: 1 armed, 0 off (unset, malformed, or built
 * without fault injection), -1 not read yet. */
int kvt__killpoint_state(void);

#endif
