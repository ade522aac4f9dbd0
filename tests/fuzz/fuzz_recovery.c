/* fuzz_recovery.c — target (a): arbitrary bytes as an NVMe tier file; open, recover, read every block, reopen. */
/*
 * The input is the whole file, byte for byte: nothing is fixed up (no
 * checksum repaired), so the library sees exactly what a damaged disk could
 * hold. The seeds (corpus/recovery/) are files the library wrote itself,
 * which is how the fuzzer gets past the checksums at all.
 *
 * The store's geometry comes from the input's superblock when that is
 * plausible and small (so that mutations of a valid file keep opening),
 * else a default one. An independent reading of the format
 * (docs/nvme-format.md) predicts every outcome, and the run aborts when the
 * library disagrees:
 *   - kvt_open: the exact code (EFORMAT, EGEOMETRY, ETOOSMALL) and a file
 *     left byte for byte as it was when it refuses it;
 *   - recovery: exactly the keys of valid headers (twins once), nothing else;
 *   - each recovered block reads back equal to a slot that holds it with a
 *     matching payload checksum, or reports KVT_ECORRUPT (only when such a
 *     slot has a bad payload), and is then gone; a miss leaves the
 *     destination unwritten;
 *   - after removing some blocks and writing one more, a reopen finds
 *     exactly the blocks kept, with the same bytes.
 */
#include "kvt_build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz.h"
#include "kvtier.h"
#include "../tier_kinds.h"

#if !KVT_HAVE_URING
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    return 0; /* no NVMe tier in this build */
}
#else

#define UNIT 4096u
#define MAX_BB (256u << 10)   /* block_bytes taken from a superblock, at most */
#define MAX_SLOTS 8u          /* slots taken from a superblock, at most */
#define MAX_FILE (1u << 20)   /* file size such a geometry may need, at most */
#define MAX_FRAGS 256u
#define POISON 0xEE

typedef struct geom {
    uint64_t bb;
    uint32_t bt, fr, km, nslots;
} geom;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint64_t slot_bytes(uint64_t bb)
{
    return UNIT + (bb + UNIT - 1) / UNIT * UNIT;
}

static uint64_t file_bytes(const geom *g)
{
    return UNIT + (uint64_t)g->nslots * slot_bytes(g->bb);
}

/* The superblock's geometry when it is plausible and small, else a default. */
static geom pick_geometry(const uint8_t *d, size_t n)
{
    geom g = {.bb = 4096, .bt = 16, .fr = 1, .km = 0, .nslots = 2};
    if (n < 128 || memcmp(d, "KVTIERSB", 8))
        return g;
    uint64_t bb = le64(d + 24), count = le64(d + 48);
    uint32_t bt = le32(d + 32), fr = le32(d + 36), km = le32(d + 88);
    if (!bb || bb > MAX_BB || !count || count > MAX_SLOTS || !bt || bt > (1u << 24) || !fr ||
        fr > MAX_FRAGS || bb % fr || km > 1)
        return g;
    geom s = {.bb = bb, .bt = bt, .fr = fr, .km = km, .nslots = (uint32_t)count};
    return file_bytes(&s) <= MAX_FILE ? s : g;
}

/* What kvt_open must say of this file (docs/nvme-format.md, "Opening a
 * path", step 6); *formats: the file is formatted (nothing recovered). */
static int expect_open(const uint8_t *d, size_t n, const geom *g, bool *formats)
{
    *formats = false;
    if (n == 0) {
        *formats = true;
        return 0;
    }
    if (n < UNIT)
        return KVT_ETOOSMALL;
    bool blank = true;
    for (unsigned i = 0; i < UNIT && blank; i++)
        blank = d[i] == 0;
    if (blank) {
        *formats = true;
        return 0;
    }
    if (memcmp(d, "KVTIERSB", 8))
        return KVT_EFORMAT;
    if (le32(d + 8) != 1 || le32(d + 12) != 128 || le32(d + 16) != UNIT || le64(d + 56) != UNIT)
        return KVT_EFORMAT;
    if (le64(d + 120) != XXH3_64bits(d, 120))
        return KVT_EFORMAT;
    if (le64(d + 24) != g->bb || le32(d + 32) != g->bt || le32(d + 36) != g->fr ||
        le64(d + 40) != slot_bytes(g->bb) || le64(d + 48) != g->nslots)
        return KVT_EGEOMETRY;
    if (le32(d + 88) != g->km)
        return KVT_EGEOMETRY;
    if (n < file_bytes(g))
        return KVT_ETOOSMALL;
    return 0;
}

/* Durability is not under test here, and one fdatasync per open and close
 * on the development VM's virtual disk costs more than the rest of a run:
 * the library's calls land here (this executable's definition wins over
 * libc's). Direct I/O bypasses the page cache either way, so what the next
 * open reads is what the last close left. */
int fdatasync(int fd)
{
    (void)fd;
    return 0;
}

/* ------------------------------------------------------------ the model */

typedef struct slot_model {
    bool valid; /* header valid for this store and slot */
    bool good;  /* and the payload checksum matches */
    kvt_key key;
    const uint8_t *payload;
} slot_model;

typedef struct key_model {
    kvt_key key;
    unsigned cands; /* bit i: slot i holds it with a valid header */
    bool any_bad;   /* a candidate's payload does not match its checksum */
    /* session 1's outcome */
    bool read_ok, corrupt, removed;
    const uint8_t *bytes; /* what it read back as */
} key_model;

static void model_slots(const uint8_t *d, const geom *g, slot_model *sm)
{
    uint64_t sb = slot_bytes(g->bb);
    for (uint32_t i = 0; i < g->nslots; i++) {
        const uint8_t *h = d + UNIT + (uint64_t)i * sb;
        slot_model *m = &sm[i];
        memcpy(m->key.b, h + 48, 16);
        m->payload = h + UNIT;
        m->valid = !memcmp(h, "KVTBLOCK", 8) && le32(h + 8) == 1 && le32(h + 12) == 128 &&
                   le64(h + 16) == g->bb && le32(h + 24) == g->bt && le32(h + 28) == g->fr &&
                   !memcmp(h + 32, d + 64, 16) && le64(h + 64) == g->bb && le32(h + 88) == i &&
                   le64(h + 120) == XXH3_64bits(h, 120);
        m->good = m->valid && le64(h + 72) == XXH3_64bits(m->payload, g->bb);
    }
}

static int find_key(const key_model *km, unsigned n, const kvt_key *k)
{
    for (unsigned i = 0; i < n; i++)
        if (!memcmp(km[i].key.b, k->b, 16))
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------- buffers */

static char path[512];
static unsigned env_skips;

typedef struct bufs {
    void *frag[MAX_FRAGS];
    void *base; /* one allocation for all fragments, or NULL */
    uint32_t fr;
    uint64_t fs;
} bufs;

/* mode 0: a malloc per fragment; 1: one malloc, fragments contiguous;
 * 2: one 4096-aligned allocation (large blocks then move directly). */
static void bufs_alloc(bufs *b, const geom *g, unsigned mode)
{
    memset(b, 0, sizeof *b);
    b->fr = g->fr;
    b->fs = g->bb / g->fr;
    if (mode == 0) {
        for (uint32_t f = 0; f < g->fr; f++)
            FUZZ_CHECK((b->frag[f] = malloc(b->fs)) != NULL, "malloc");
        return;
    }
    b->base = mode == 1 ? malloc(g->bb) : aligned_alloc(UNIT, (g->bb + UNIT - 1) / UNIT * UNIT);
    FUZZ_CHECK(b->base != NULL, "malloc");
    for (uint32_t f = 0; f < g->fr; f++)
        b->frag[f] = (uint8_t *)b->base + f * b->fs;
}

static void bufs_free(bufs *b)
{
    if (b->base)
        free(b->base);
    else
        for (uint32_t f = 0; f < b->fr; f++)
            free(b->frag[f]);
}

static void bufs_fill(bufs *b, int byte)
{
    for (uint32_t f = 0; f < b->fr; f++)
        memset(b->frag[f], byte, b->fs);
}

static bool bufs_equal(const bufs *b, const uint8_t *bytes)
{
    for (uint32_t f = 0; f < b->fr; f++)
        if (memcmp(b->frag[f], bytes + f * b->fs, b->fs))
            return false;
    return true;
}

static bool bufs_poisoned(const bufs *b)
{
    for (uint32_t f = 0; f < b->fr; f++)
        for (uint64_t i = 0; i < b->fs; i++)
            if (((const uint8_t *)b->frag[f])[i] != POISON)
                return false;
    return true;
}

static void bufs_set(bufs *b, const uint8_t *bytes)
{
    for (uint32_t f = 0; f < b->fr; f++)
        memcpy(b->frag[f], bytes + f * b->fs, b->fs);
}

/* -------------------------------------------------------------- store */

static void write_file(const uint8_t *d, size_t n)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0, "creating %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, d + done, n - done);
        FUZZ_CHECK(w > 0, "writing %s: %s", path, strerror(errno));
        done += (size_t)w;
    }
    FUZZ_CHECK(close(fd) == 0, "close");
}

/* Whether the file still holds exactly d[0..n). */
static bool file_is(const uint8_t *d, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "opening %s: %s", path, strerror(errno));
    struct stat st;
    FUZZ_CHECK(fstat(fd, &st) == 0, "fstat");
    bool same = (uint64_t)st.st_size == n;
    uint8_t buf[8192];
    for (size_t off = 0; same && off < n;) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        ssize_t r = pread(fd, buf, k, (off_t)off);
        FUZZ_CHECK(r > 0, "reading %s back", path);
        same = !memcmp(buf, d + off, (size_t)r);
        off += (size_t)r;
    }
    close(fd);
    return same;
}

static kvt_config *make_config(const geom *g)
{
    kvt_config *c;
    FUZZ_CHECK(kvt_config_new(&c) == 0, "config");
    int rc = kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)g->bb);
    rc |= kvt_config_set(c, KVT_OPT_BLOCK_TOKENS, g->bt);
    rc |= kvt_config_set(c, KVT_OPT_FRAGS, g->fr);
    rc |= kvt_config_set(c, KVT_OPT_KEY_MODE, g->km);
    rc |= kvt_config_set(c, KVT_OPT_WORKERS, 1);
    rc |= kvt_config_set(c, KVT_OPT_COPY_THREADS, 1);
    rc |= kvt_config_set(c, KVT_OPT_MANUAL_CLOCK, 1);
    rc |= kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(2 * g->bb));
    rc |= kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity",
                              (int64_t)(g->nslots * slot_bytes(g->bb)));
    rc |= kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "queue_depth", 4);
    rc |= kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "admit", KVT_ADMIT_WRITE_THROUGH);
    rc |= kvt_config_tier_set_str(c, kvt_test_tier(c, "nvme"), "path", path);
    FUZZ_CHECK(rc == 0, "configuring the store");
    return c;
}

/* Codes that say the machine, not the file, stopped kvt_open. */
static bool environmental(int rc)
{
    return rc == KVT_ENOMEM || rc == KVT_ENODEV || rc == KVT_ESYS || rc == KVT_ENOSPC ||
           rc == KVT_ELOCKED;
}

static int open_store(const geom *g, kvt_store **s)
{
    kvt_config *c = make_config(g);
    int rc = kvt_open(c, s);
    kvt_config_free(c);
    FUZZ_CODE(rc, "kvt_open");
    if (rc && environmental(rc) && env_skips++ < 5)
        fprintf(stderr, "fuzz_recovery: kvt_open: %s (environment; input skipped)\n",
                kvt_last_error());
    return rc;
}

static uint64_t stat_of(kvt_store *s, const char *name)
{
    uint64_t v = 0;
    int rc = kvt_stat(s, name, &v);
    FUZZ_CHECK(rc == 0, "kvt_stat(%s) = %d", name, rc);
    return v;
}

static int lookup1(kvt_store *s, const kvt_key *k, uint8_t *tier)
{
    uint8_t t = 0x77;
    int rc = kvt_lookup(s, k, 1, &t, 0);
    FUZZ_CHECK(rc == 0 || rc == 1, "kvt_lookup = %d", rc);
    FUZZ_CHECK(rc ? t < KVT_MAX_TIERS : t == KVT_TIER_NONE, "lookup tier %u for hit %d", t, rc);
    if (tier)
        *tier = t;
    return rc;
}

/* kvt_get of one block into b (poisoned first); returns its status. */
static int get1(kvt_store *s, const kvt_key *k, bufs *b)
{
    bufs_fill(b, POISON);
    int32_t st = 0x7777;
    kvt_io_opts o = {.size = sizeof o, .status = &st};
    int rc = kvt_get(s, k, 1, b->frag, &o, NULL);
    FUZZ_CODE(rc, "kvt_get");
    FUZZ_CHECK(rc == 0 || rc == 1, "kvt_get = %d", rc);
    FUZZ_CHECK(rc == 1 ? st == 0 : st < 0, "kvt_get = %d with status %d", rc, st);
    FUZZ_CODE(st, "kvt_get status");
    if (st == KVT_ENOENT)
        FUZZ_CHECK(bufs_poisoned(b), "a missed block's destination was written");
    return st;
}

static kvt_key derived_key(uint64_t h, uint64_t salt)
{
    kvt_key k;
    uint64_t a = XXH3_64bits_withSeed(&h, sizeof h, salt), b = XXH3_64bits_withSeed(&a, sizeof a, salt);
    memcpy(k.b, &a, 8);
    memcpy(k.b + 8, &b, 8);
    return k;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "%s/fuzz-recovery-%d.kvt", kvt_fuzz_dir(), (int)getpid());
    /* The NVMe tier refuses memory filesystems: every input would end in
     * KVT_ENODIRECT. 77 is meson's "skipped". */
    struct statfs fs;
    if (statfs(kvt_fuzz_dir(), &fs) == 0 && ((uint32_t)fs.f_type == (uint32_t)TMPFS_MAGIC ||
                                              (uint32_t)fs.f_type == (uint32_t)RAMFS_MAGIC)) {
        fprintf(stderr, "fuzz_recovery: %s is on tmpfs, where the NVMe tier refuses to run; "
                        "set KVT_FUZZ_DIR to a directory on a disk\n", kvt_fuzz_dir());
        exit(77);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (!path[0])
        LLVMFuzzerInitialize(NULL, NULL);
    if (n > MAX_FILE + UNIT)
        return 0; /* larger than any geometry this target uses needs */
    geom g = pick_geometry(d, n);
    bool formats;
    int want = expect_open(d, n, &g, &formats);
    uint64_t h = XXH3_64bits(d, n);
    write_file(d, n);

    kvt_store *s = NULL;
    int rc = open_store(&g, &s);
    if (rc && environmental(rc) && want == 0)
        goto out;
    FUZZ_CHECK(rc == want, "kvt_open = %s, the format says %s", kvt_error_name(rc) ? kvt_error_name(rc) : "?",
               kvt_error_name(want));
    if (rc) {
        FUZZ_CHECK(file_is(d, n), "kvt_open refused the file (%s) but changed it",
                   kvt_error_name(rc));
        goto out;
    }

    /* The blocks the file holds, by an independent reading of the format. */
    slot_model sm[MAX_SLOTS];
    key_model km[MAX_SLOTS];
    unsigned nk = 0;
    memset(km, 0, sizeof km);
    if (!formats) {
        model_slots(d, &g, sm);
        for (uint32_t i = 0; i < g.nslots; i++) {
            if (!sm[i].valid)
                continue;
            int k = find_key(km, nk, &sm[i].key);
            if (k < 0) {
                k = (int)nk++;
                km[k].key = sm[i].key;
            }
            km[k].cands |= 1u << i;
            km[k].any_bad |= !sm[i].good;
        }
    } else {
        memset(sm, 0, sizeof sm);
    }
    FUZZ_CHECK(stat_of(s, "nvme.recovered") == nk, "recovered %llu blocks, the file holds %u",
               (unsigned long long)stat_of(s, "nvme.recovered"), nk);

    unsigned mode = (unsigned)(h % 3);
    bufs b, b2;
    bufs_alloc(&b, &g, mode);
    bufs_alloc(&b2, &g, (mode + 1) % 3);
    /* Blocks move straight into caller memory that meets the device's
     * direct-I/O alignment (which malloc'd memory may well do); others
     * bounce through staging. */
    uint64_t mem_align = stat_of(s, "nvme.dio_mem_align"),
             len_align = stat_of(s, "nvme.dio_len_align");
    bool direct = len_align && b.fs % len_align == 0;
    for (uint32_t f = 0; f < b.fr && direct; f++)
        direct = mem_align && (uintptr_t)b.frag[f] % mem_align == 0;

    /* Session 1: every recovered block reads back right or reports corrupt. */
    for (unsigned k = 0; k < nk; k++) {
        key_model *m = &km[k];
        uint8_t tier;
        FUZZ_CHECK(lookup1(s, &m->key, &tier) == 1 && tier == TIER_NVME,
                   "recovered block %u not found in NVMe (tier %u)", k, tier);
        int st = get1(s, &m->key, &b);
        if (st == 0) {
            for (uint32_t i = 0; i < g.nslots && !m->bytes; i++)
                if ((m->cands >> i & 1) && sm[i].good && bufs_equal(&b, sm[i].payload))
                    m->bytes = sm[i].payload;
            FUZZ_CHECK(m->bytes, "block %u read back bytes that no slot holding it has", k);
            m->read_ok = true;
            /* Promoted into DRAM: the same bytes again. */
            FUZZ_CHECK(get1(s, &m->key, &b2) == 0 && bufs_equal(&b2, m->bytes),
                       "block %u: a second get disagrees", k);
        } else {
            FUZZ_CHECK(st == KVT_ECORRUPT, "block %u: get status %s", k, kvt_error_name(st));
            FUZZ_CHECK(m->any_bad, "block %u reported corrupt, but every slot holding it verifies",
                       k);
            /* docs/nvme-format.md: a direct read leaves the destination
             * unspecified on ECORRUPT; a staged one leaves it untouched.
             * (kvtier.h's kvt_get promises "left unwritten" for every
             * size; reported, see docs/fuzzing.md.) */
            FUZZ_CHECK(direct || bufs_poisoned(&b), "block %u: ECORRUPT wrote the destination", k);
            FUZZ_CHECK(lookup1(s, &m->key, NULL) == 0, "block %u still held after ECORRUPT", k);
            m->corrupt = true;
        }
    }
    /* Nothing else was recovered: keys of invalid headers and made-up keys miss. */
    for (uint32_t i = 0; i < g.nslots && !formats; i++)
        if (!sm[i].valid && find_key(km, nk, &sm[i].key) < 0)
            FUZZ_CHECK(lookup1(s, &sm[i].key, NULL) == 0, "slot %u's invalid header was recovered",
                       i);
    kvt_key absent = derived_key(h, 1);
    if (find_key(km, nk, &absent) < 0) {
        FUZZ_CHECK(lookup1(s, &absent, NULL) == 0, "a made-up key is held");
        FUZZ_CHECK(get1(s, &absent, &b) == KVT_ENOENT, "a made-up key did not miss");
    }

    /* Remove some, and write one more block when the tier has room. */
    unsigned used = 0;
    for (unsigned k = 0; k < nk; k++) {
        key_model *m = &km[k];
        if (m->read_ok && (h >> (8 + k) & 1)) {
            FUZZ_CHECK(kvt_remove(s, &m->key, 1) == 1, "kvt_remove of block %u", k);
            FUZZ_CHECK(lookup1(s, &m->key, NULL) == 0, "block %u held after kvt_remove", k);
            m->removed = true;
        }
        used += m->read_ok && !m->removed;
    }
    kvt_key fresh = derived_key(h, 2);
    uint8_t *fresh_bytes = NULL;
    if (used < g.nslots && find_key(km, nk, &fresh) < 0) {
        fresh_bytes = malloc(g.bb);
        FUZZ_CHECK(fresh_bytes != NULL, "malloc");
        for (uint64_t i = 0; i < g.bb; i++)
            fresh_bytes[i] = (uint8_t)(h >> (8 * (i % 8))) ^ (uint8_t)(i * 131);
        bufs_set(&b, fresh_bytes);
        int32_t st = 0x7777;
        kvt_io_opts o = {.size = sizeof o, .status = &st};
        rc = kvt_put(s, &fresh, 1, b.frag, &o, NULL);
        FUZZ_CHECK(rc == 1 && st == 0, "kvt_put of a new block = %d, status %d", rc, st);
    }
    FUZZ_CHECK(kvt_close(s) == 0, "kvt_close");
    s = NULL;

    /* Session 2: exactly the blocks kept come back, with the same bytes. */
    rc = open_store(&g, &s);
    if (rc && environmental(rc))
        goto done;
    FUZZ_CHECK(rc == 0, "reopening the file the store just closed: %s", kvt_error_name(rc));
    unsigned kept = 0;
    for (unsigned k = 0; k < nk; k++)
        kept += km[k].read_ok && !km[k].removed;
    uint64_t rec = stat_of(s, "nvme.recovered");
    FUZZ_CHECK(rec == kept + (fresh_bytes != NULL), "reopen recovered %llu blocks, expected %u",
               (unsigned long long)rec, kept + (fresh_bytes != NULL));
    for (unsigned k = 0; k < nk; k++) {
        key_model *m = &km[k];
        if (m->read_ok && !m->removed)
            FUZZ_CHECK(get1(s, &m->key, &b) == 0 && bufs_equal(&b, m->bytes),
                       "block %u: not the same after reopening", k);
        else
            FUZZ_CHECK(lookup1(s, &m->key, NULL) == 0, "block %u (%s) came back after reopening",
                       k, m->removed ? "removed" : "corrupt");
    }
    if (fresh_bytes)
        FUZZ_CHECK(get1(s, &fresh, &b) == 0 && bufs_equal(&b, fresh_bytes),
                   "the block written through to NVMe did not come back");
    FUZZ_CHECK(kvt_close(s) == 0, "kvt_close");
    s = NULL;
done:
    free(fresh_bytes);
    bufs_free(&b);
    bufs_free(&b2);
out:
    if (s)
        kvt_close(s);
    unlink(path);
    return 0;
}
#endif
