/* fuzz.h — what the fuzz targets share: the libFuzzer entry points, checks that abort with a reason, the scratch directory. */
#ifndef KVT_FUZZ_H
#define KVT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvtier.h"

/* Each target defines these; libFuzzer (clang -fsanitize=fuzzer) or the
 * corpus replayer (replay_main.c, any compiler) calls them. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broke: say which, then abort so that libFuzzer keeps the
 * input and the replayer's test fails. */
#define FUZZ_FAIL(...)                                                       \
    do {                                                                     \
        fprintf(stderr, "%s:%d: invariant violated: ", __FILE__, __LINE__);  \
        fprintf(stderr, __VA_ARGS__);                                        \
        fprintf(stderr, "\n  kvt_last_error(): %s\n", kvt_last_error());     \
        abort();                                                             \
    } while (0)

#define FUZZ_CHECK(cond, ...)                                                \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: (%s) is false\n", __FILE__, __LINE__, #cond); \
            FUZZ_FAIL(__VA_ARGS__);                                          \
        }                                                                    \
    } while (0)

/* A library return value: a count (>= 0) or one of the table's codes. */
#define FUZZ_CODE(rc, what)                                                  \
    do {                                                                     \
        int fuzz_rc_ = (rc);                                                 \
        if (fuzz_rc_ < 0 && !kvt_error_name(fuzz_rc_))                       \
            FUZZ_FAIL("%s returned %d, which is no KVT_E* code", what, fuzz_rc_); \
    } while (0)

/* The directory for the targets' scratch files: $KVT_FUZZ_DIR, else the
 * current directory. It must be on a filesystem with O_DIRECT (not tmpfs):
 * the NVMe tier refuses tmpfs. */
static inline const char *kvt_fuzz_dir(void)
{
    const char *d = getenv("KVT_FUZZ_DIR");
    return d && *d ? d : ".";
}

#endif
