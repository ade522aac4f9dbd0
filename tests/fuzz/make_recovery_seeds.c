/* make_recovery_seeds.c — writes the seed files of corpus/recovery/: NVMe files the library made, and a few damaged on purpose. */
/*
 * Usage: fuzz-make-recovery-seeds DIR   (DIR on a filesystem with O_DIRECT)
 * The checksums in a kvtier file are what keep a fuzzer from ever making
 * one by chance, so the seeds are written by the library itself (through
 * the public API), plus copies damaged the way disks and crashes damage
 * them: a torn write (fault injection), a flipped payload bit, a header
 * copied to another slot, a twin re-checksummed for its new slot, a
 * truncated file, a bad superblock. libFuzzer mutates from there.
 */
#include "kvt_build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define UNIT 4096u

static const char *dir;

static void die(const char *what, int rc)
{
    fprintf(stderr, "make_recovery_seeds: %s: %s (%s)\n", what, kvt_error_name(rc),
            kvt_last_error());
    exit(1);
}

static uint64_t slot_bytes(uint64_t bb)
{
    return UNIT + (bb + UNIT - 1) / UNIT * UNIT;
}

typedef struct spec {
    const char *name;
    uint64_t bb;
    uint32_t bt, fr, km, nslots;
    unsigned puts, removes;
    const char *faults;
} spec;

static kvt_key key_of(unsigned i)
{
    kvt_key k;
    for (int j = 0; j < 16; j++)
        k.b[j] = (uint8_t)(i * 37 + j * 11 + 1);
    return k;
}

/* Makes the file of spec s at DIR/name through the library. */
static void make(const spec *s)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, s->name);
    unlink(path);
    kvt_config *c;
    kvt_config_new(&c);
    int rc = kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)s->bb);
    rc |= kvt_config_set(c, KVT_OPT_BLOCK_TOKENS, s->bt);
    rc |= kvt_config_set(c, KVT_OPT_FRAGS, s->fr);
    rc |= kvt_config_set(c, KVT_OPT_KEY_MODE, s->km);
    rc |= kvt_config_set(c, KVT_OPT_WORKERS, 1);
    rc |= kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity",
                              (int64_t)(s->nslots * slot_bytes(s->bb)));
    rc |= kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    if (s->faults)
        rc |= kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "faults", s->faults);
    if (rc)
        die("config", rc);
    kvt_store *st;
    if ((rc = kvt_open(c, &st)))
        die(path, rc);
    kvt_config_free(c);
    uint64_t fs = s->bb / s->fr;
    void **frag = calloc(s->fr, sizeof *frag);
    for (uint32_t f = 0; f < s->fr; f++) {
        frag[f] = malloc(fs);
        for (uint64_t i = 0; i < fs; i++)
            ((uint8_t *)frag[f])[i] = (uint8_t)(i * 7 + f);
    }
    for (unsigned i = 0; i < s->puts; i++) {
        kvt_key k = key_of(i);
        ((uint8_t *)frag[0])[0] = (uint8_t)i; /* blocks differ */
        int32_t status;
        kvt_io_opts o = {.size = sizeof o, .status = &status};
        rc = kvt_put(st, &k, 1, frag, &o, NULL);
        if (rc < 0)
            die("put", rc);
    }
    for (unsigned i = 0; i < s->removes; i++) {
        kvt_key k = key_of(i);
        kvt_remove(st, &k, 1);
    }
    if ((rc = kvt_close(st)))
        die("close", rc);
    for (uint32_t f = 0; f < s->fr; f++)
        free(frag[f]);
    free(frag);
    printf("%s\n", path);
}

static uint8_t *load(const char *name, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*n ? *n : 1);
    if (fread(b, 1, *n, f) != *n) {
        perror(path);
        exit(1);
    }
    fclose(f);
    return b;
}

static void save(const char *name, const uint8_t *b, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f)) {
        perror(path);
        exit(1);
    }
    printf("%s\n", path);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    static const spec specs[] = {
        {"lib-4k-2slots", 4096, 16, 1, 0, 2, 2, 0, NULL},
        {"lib-1000b-frags4-3slots-removed", 1000, 7, 4, 0, 3, 3, 1, NULL},
        {"lib-128k-frags2-direct", 131072, 16, 2, 0, 1, 1, 0, NULL},
        {"lib-512b-blake2-4slots", 512, 1, 1, 1, 4, 4, 0, NULL},
        {"lib-torn-second-write", 4096, 16, 1, 0, 2, 2, 0, "nth=2:torn4k"},
        {"lib-torn512-first", 8192, 32, 2, 0, 2, 2, 0, "nth=1:torn512"},
        {"lib-half-full", 2048, 16, 1, 0, 4, 2, 0, NULL},
        {"lib-empty-store", 4096, 16, 1, 0, 2, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        make(&specs[i]);

    size_t n;
    uint8_t *b = load("lib-4k-2slots", &n);
    uint64_t sb = slot_bytes(4096);
    uint8_t *s0 = b + UNIT, *s1 = b + UNIT + sb;

    uint8_t *c = malloc(n);
    memcpy(c, b, n);
    c[UNIT + UNIT + 100] ^= 1; /* a payload bit of slot 0 */
    save("bad-payload-bit", c, n);

    memcpy(c, b, n);
    memcpy(c + UNIT + sb, s0, sb); /* slot 0 copied over slot 1: wrong slot index */
    save("misplaced-header", c, n);

    memcpy(c + UNIT + sb, s0, sb); /* and re-checksummed for slot 1: a twin */
    put32(c + UNIT + sb + 88, 1);
    put64(c + UNIT + sb + 120, XXH3_64bits(c + UNIT + sb, 120));
    save("twin-valid", c, n);

    c[UNIT + sb + UNIT + 5] ^= 0x40; /* the twin's payload damaged */
    save("twin-bad-payload", c, n);

    memcpy(c, b, n);
    c[33] ^= 1; /* block_tokens, checksum left stale */
    save("superblock-bad-sum", c, n);

    memcpy(c, b, n);
    put64(c + 48, 9); /* 9 slots: another geometry, re-checksummed */
    put64(c + 120, XXH3_64bits(c, 120));
    save("superblock-other-geometry", c, n);

    save("truncated", b, n - 100);
    save("superblock-only", b, UNIT);
    save("tiny", b, 100);
    save("empty", b, 0);
    memset(c, 0, UNIT);
    memcpy(c + UNIT, s1, sb); /* blank superblock: formatted */
    save("blank-superblock", c, UNIT + sb);
    free(c);
    free(b);
    return 0;
}
