/*
 * crashloop.c — SIGKILL a writer/reader of an NVMe-backed store at random
 * times, reopen, verify: no wrong bytes ever, no acknowledged block missing.
 *
 *   crashloop [--kills N] [--seconds S] [--seed X] [--dir D]
 *             [--min-ms A] [--max-ms B] [--block-bytes N] [--universe N]
 *             [--whitebox R [--sites write,flush,meta,publish]]
 *
 * Each round forks a child that opens the store (recovering it), then puts
 * random batches of blocks whose bytes derive from their key index, reporting
 * each acknowledged index to the parent through a pipe, and reads random
 * blocks back, checking them itself. The parent kills it after a uniform
 * random delay in [A, B] ms, reopens the store, and checks every block of the
 * universe: a present block must read back exactly (or be reported corrupt,
 * if its put was never acknowledged), and every acknowledged block must be
 * present (the file holds the whole universe, so nothing is ever evicted).
 * Exit status 0 and a "N passed, 0 failed" line when all rounds verify.
 *
 * --whitebox R: instead of a SIGKILL from outside, the child (a fresh exec
 * of this program, so the library reads its environment anew) runs with
 * KVT_KILLPOINTS=rate=R,seed=S[,sites=...] (lib/killpoint.h) and exits with
 * status 86 + site at a kill point inside the library: an NVMe block write
 * submission, an fdatasync, a metadata update (superblock, slot discard) or
 * an index publish. To pass all four kinds of site, the child also removes
 * blocks (acknowledged removes must stay removed after the restart) and
 * now and then closes and reopens its store. The parent counts the exits per
 * site and verifies exactly as after a SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvtier.h"

static uint64_t block_bytes = 16384;
static uint32_t universe = 3000;
static char path[4096];
static int whitebox; /* child: removes and reopens too, and reports intents */

/* Records the child sends: an acknowledged put is the bare index; the top
 * two bits mark the others. Intents come first, so that the parent knows
 * what a kill in the middle of a call may have done. */
#define REC_KIND 0xc0000000u
#define REC_INTENT 0x40000000u        /* a put of this index is about to start */
#define REC_REMOVED 0x80000000u       /* this index was removed (acknowledged) */
#define REC_REMOVE_INTENT 0xc0000000u /* a remove of this index is about to start */
#define REC_INDEX 0x3fffffffu

/* Exit statuses of a child stopped at a kill point (lib/killpoint.h). */
#define KP_EXIT_BASE 86
#define KP_SITES 4
#define VERIFY_BATCH 64
static const char *const kp_names[KP_SITES] = {"write", "flush", "meta", "publish"};

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    kvt_ns_field f = {KVT_NS_CUSTOM, 9, "crashloop"};
    kvt_ns_key(&f, 1, &ns);
    uint32_t tok[2] = {i, ~i};
    kvt_key_chain(&ns, tok, 2, 2, &k, 1);
    return k;
}

static void fill(uint8_t *b, uint32_t i)
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull + 77;
    for (uint64_t j = 0; j < block_bytes; j += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(b + j, &x, 8);
    }
}

static double last_open_s; /* the successful attempt: the recovery time */

static int open_store(kvt_store **s)
{
    uint64_t slot;
    kvt_config *c;
    if (kvt_nvme_slot_bytes(block_bytes, &slot) || kvt_config_new(&c))
        return -1;
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)block_bytes);
    kvt_config_set(c, KVT_OPT_WORKERS, 1);
    kvt_config_set_tier(c, KVT_TIER_NVME, KVT_TOPT_CAPACITY, (int64_t)(slot * (universe + 64)));
    kvt_config_set_tier(c, KVT_TIER_NVME, KVT_TOPT_QUEUE_DEPTH, 32);
    kvt_config_set_tier_str(c, KVT_TIER_NVME, KVT_TSTR_PATH, path);
    /* The file's lock goes with the killed process's descriptors (an open
     * waits for a holder still exiting, up to 5 s); retried all the same,
     * as a supervisor would, should that ever not suffice. */
    int rc;
    for (int tries = 0;; tries++) {
        double t0 = now_s();
        rc = kvt_open(c, s);
        last_open_s = now_s() - t0;
        if (rc != KVT_ELOCKED || tries == 300)
            break;
        usleep(10000);
    }
    kvt_config_free(c);
    return rc;
}

static void send(int fd, uint32_t rec)
{
    if (write(fd, &rec, sizeof rec) != sizeof rec)
        _exit(5);
}

/* The child: put and read until killed. Acknowledged indices go to fd. */
static void child(int fd, uint64_t seed)
{
    kvt_store *s;
    int rc = open_store(&s);
    if (rc) {
        fprintf(stderr, "child: open: %s\n", kvt_last_error());
        _exit(3);
    }
    enum { MAXB = 16 };
    uint8_t *buf = malloc(MAXB * block_bytes), *want = malloc(block_bytes);
    void *ptrs[MAXB];
    kvt_key keys[MAXB];
    uint32_t idx[MAXB];
    int32_t st[MAXB];
    for (;;) {
        uint32_t n = 1 + (uint32_t)(rng(&seed) % MAXB);
        for (uint32_t i = 0; i < n; i++) {
            idx[i] = (uint32_t)(rng(&seed) % universe);
            keys[i] = key_of(idx[i]);
            ptrs[i] = buf + i * block_bytes;
        }
        kvt_io_opts o = {.size = sizeof o, .status = st};
        uint64_t dice = rng(&seed);
        if (whitebox && dice % 40 == 0) {
            /* close (fdatasync) and reopen (recovery) */
            if (kvt_close(s) != 0)
                _exit(4);
            if ((rc = open_store(&s)) != 0) {
                fprintf(stderr, "child: reopen: %s\n", kvt_last_error());
                _exit(3);
            }
        } else if (whitebox && dice % 10 == 1) {
            uint32_t m = 1 + (uint32_t)(dice / 10 % n); /* 1..n: keys set this round */
            for (uint32_t i = 0; i < m; i++)
                send(fd, idx[i] | REC_REMOVE_INTENT);
            if (kvt_remove(s, keys, m) < 0)
                _exit(4);
            for (uint32_t i = 0; i < m; i++)
                send(fd, idx[i] | REC_REMOVED);
        } else if (dice % 3) {
            for (uint32_t i = 0; i < n; i++) {
                fill(buf + i * block_bytes, idx[i]);
                if (whitebox)
                    send(fd, idx[i] | REC_INTENT);
            }
            if (kvt_put(s, keys, n, ptrs, &o, NULL) < 0)
                _exit(4);
            for (uint32_t i = 0; i < n; i++)
                if (st[i] == 0)
                    send(fd, idx[i]);
        } else {
            memset(buf, 0xA5, n * block_bytes);
            if (kvt_get(s, keys, n, ptrs, &o, NULL) < 0)
                _exit(4);
            for (uint32_t i = 0; i < n; i++) {
                if (st[i])
                    continue;
                fill(want, idx[i]);
                if (memcmp(want, buf + i * block_bytes, block_bytes)) {
                    fprintf(stderr, "child: WRONG BYTES for block %u\n", idx[i]);
                    _exit(6);
                }
            }
        }
    }
}

/* Appends what the pipe holds now (all of it, to EOF, when `all`) to *buf.
 * The parent drains the pipe while a whitebox child runs, so that a child
 * that lives long never blocks on a full pipe (64 KiB) before its kill point. */
static void drain(int fd, uint8_t **buf, size_t *len, size_t *cap, int all)
{
    for (;;) {
        if (*cap - *len < 65536) {
            *cap = *cap * 2 + 65536;
            *buf = realloc(*buf, *cap);
            if (!*buf) {
                fprintf(stderr, "crashloop: out of memory for the child's records\n");
                exit(1);
            }
        }
        ssize_t r = read(fd, *buf + *len, *cap - *len);
        if (r > 0) {
            *len += (size_t)r;
            continue;
        }
        if (r == 0 || !all)
            return; /* EOF, or nothing more for now */
        if (errno != EAGAIN && errno != EINTR)
            return;
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Whitebox child: a fresh exec, told what to do by the environment. */
static void exec_child(int fd, uint64_t child_seed, const char *kp_spec)
{
    char spec[sizeof path + 128];
    snprintf(spec, sizeof spec, "%d:%llu:%llu:%u:%s", fd, (unsigned long long)child_seed,
             (unsigned long long)block_bytes, universe, path);
    setenv("KVT_CRASHLOOP_CHILD", spec, 1);
    setenv("KVT_KILLPOINTS", kp_spec, 1);
    execl("/proc/self/exe", "crashloop-child", (char *)NULL);
    perror("crashloop: exec");
    _exit(7);
}

static void run_exec_child(const char *spec)
{
    int fd, off = 0;
    unsigned long long sd, bb;
    unsigned u;
    if (sscanf(spec, "%d:%llu:%llu:%u:%n", &fd, &sd, &bb, &u, &off) != 4 || !off) {
        fprintf(stderr, "crashloop child: bad KVT_CRASHLOOP_CHILD\n");
        _exit(2);
    }
    block_bytes = bb;
    universe = u;
    snprintf(path, sizeof path, "%s", spec + off);
    whitebox = 1;
    child(fd, sd);
}

int main(int argc, char **argv)
{
    if (getenv("KVT_CRASHLOOP_CHILD"))
        run_exec_child(getenv("KVT_CRASHLOOP_CHILD"));
    /* The parent itself must never stop at a kill point. */
    unsetenv("KVT_KILLPOINTS");
    long kills = 20;
    double seconds = 0, min_ms = 100, max_ms = 600, kp_rate = 0;
    const char *kp_sites = NULL;
    long trace = -1; /* --trace I: print every event of block I (debugging) */
    /* The last HIST events of each block (round << 2 | kind), printed when
     * a check fails on it. */
    enum { HIST = 12 };
    uint64_t seed = (uint64_t)time(NULL);
    const char *dir = getenv("KVT_BUILD_ROOT") ? getenv("KVT_BUILD_ROOT") : ".";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "crashloop: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--kills"))
            kills = atol(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "--min-ms"))
            min_ms = atof(v);
        else if (!strcmp(a, "--max-ms"))
            max_ms = atof(v);
        else if (!strcmp(a, "--block-bytes"))
            block_bytes = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--universe"))
            universe = (uint32_t)atol(v);
        else if (!strcmp(a, "--whitebox"))
            kp_rate = atof(v);
        else if (!strcmp(a, "--sites"))
            kp_sites = v;
        else if (!strcmp(a, "--trace"))
            trace = atol(v);
        else {
            fprintf(stderr, "crashloop: unknown flag %s\n", a);
            return 2;
        }
        i++;
    }
    whitebox = kp_rate > 0;
    if (block_bytes == 0 || block_bytes % 8 || universe == 0 || universe > REC_INDEX ||
        max_ms < min_ms || kp_rate < 0 || kp_rate > 1) {
        fprintf(stderr, "crashloop: bad sizes\n");
        return 2;
    }
    if (seed == 0)
        seed = 1;
    snprintf(path, sizeof path, "%s/crashloop-%d.kvt", dir, (int)getpid());
    unlink(path);
    if (whitebox)
        printf("crashloop: seed %llu, file %s, %s %g s / %ld kills, whitebox: kill points at "
               "rate %g, sites %s\n",
               (unsigned long long)seed, path, seconds > 0 ? "for" : "up to", seconds, kills,
               kp_rate, kp_sites ? kp_sites : "write,flush,meta,publish");
    else
        printf("crashloop: seed %llu, file %s, %s %g s / %ld kills, kill after %g..%g ms\n",
               (unsigned long long)seed, path, seconds > 0 ? "for" : "up to", seconds, kills,
               min_ms, max_ms);
    fflush(stdout);

    uint8_t *acked = calloc(universe, 1), *buf = malloc(VERIFY_BATCH * block_bytes), *want = malloc(block_bytes);
    /* removed[i]: its last acknowledged event was a remove, with no put of
     * it started since: it must not come back. */
    uint8_t *removed = calloc(universe, 1);
    uint32_t *hist = calloc((size_t)universe * HIST, sizeof *hist);
    uint32_t *nev = calloc(universe, sizeof *nev); /* events seen per block */
    static const char *const kind_names[4] = {"put acknowledged", "put starts", "removed",
                                              "remove starts"};
    const char *last_site = "SIGKILL";
    uint8_t *recbuf = NULL;
    size_t reclen = 0, reccap = 0;
    uint64_t site_hits[KP_SITES] = {0}, resurrected = 0, nremoved = 0;
    size_t cap_rec = 1024, nrec = 0;
    double *recovery = malloc(cap_rec * sizeof *recovery);
    uint64_t wrong = 0, missing = 0, verified = 0, corrupt = 0;
    long done = 0;
    double start = now_s();
    uint64_t r = seed;
    while (seconds > 0 ? now_s() - start < seconds : done < kills) {
        int fds[2];
        if (pipe(fds)) {
            perror("pipe");
            return 1;
        }
        uint64_t child_seed = rng(&r);
        char kp_spec[200];
        if (whitebox)
            snprintf(kp_spec, sizeof kp_spec, "rate=%.17g,seed=%llu%s%s", kp_rate,
                     (unsigned long long)rng(&r), kp_sites ? ",sites=" : "",
                     kp_sites ? kp_sites : "");
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            if (whitebox)
                exec_child(fds[1], child_seed, kp_spec);
            child(fds[1], child_seed);
        }
        close(fds[1]);
        fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
        reclen = 0;
        int status;
        if (whitebox) {
            /* It stops itself; a child that runs 120 s without reaching a
             * kill point is a failure (rate too low, or kill points off). */
            double t0 = now_s();
            while (waitpid(pid, &status, WNOHANG) == 0) {
                if (now_s() - t0 > 120) {
                    kill(pid, SIGKILL);
                    waitpid(pid, &status, 0);
                    fprintf(stderr, "crashloop: whitebox child reached no kill point in 120 s "
                                    "(%s)\n", kp_spec);
                    return 1;
                }
                drain(fds[0], &recbuf, &reclen, &reccap, 0);
                struct timespec nap = {0, 2000000};
                nanosleep(&nap, NULL);
            }
            int site = WIFEXITED(status) ? WEXITSTATUS(status) - KP_EXIT_BASE : -1;
            if (site < 0 || site >= KP_SITES) {
                fprintf(stderr, "crashloop: whitebox child ended with status %d, not at a kill "
                                "point (%s)\n", status, kp_spec);
                return 1;
            }
            site_hits[site]++;
            last_site = kp_names[site];
            if (trace >= 0)
                fprintf(stderr, "crashloop: round %ld: child stopped at kill point '%s'\n",
                        done + 1, kp_names[site]);
        } else {
            double delay = min_ms + (max_ms - min_ms) * (double)(rng(&r) % 1000001) / 1e6;
            /* Sleep until the kill, draining the pipe meanwhile (a child
             * blocked on a full pipe would stop doing I/O). */
            double kill_at = now_s() + delay / 1e3;
            for (double left; (left = kill_at - now_s()) > 0;) {
                drain(fds[0], &recbuf, &reclen, &reccap, 0);
                double nap_s = left < 0.002 ? left : 0.002;
                struct timespec ts = {0, (long)(nap_s * 1e9)};
                nanosleep(&ts, NULL);
            }
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
                fprintf(stderr, "crashloop: child ended by itself (status %d) before the kill\n", status);
                return 1;
            }
        }
        drain(fds[0], &recbuf, &reclen, &reccap, 1);
        for (size_t off = 0; off + sizeof(uint32_t) <= reclen; off += sizeof(uint32_t)) {
            uint32_t rec;
            memcpy(&rec, recbuf + off, sizeof rec);
            uint32_t idx = rec & REC_INDEX;
            if (idx >= universe)
                continue;
            uint32_t kind = rec & REC_KIND;
            hist[(size_t)idx * HIST + nev[idx]++ % HIST] = (uint32_t)(done + 1) << 2 | kind >> 30;
            if ((long)idx == trace)
                fprintf(stderr, "crashloop: round %ld: block %u %s\n", done + 1, idx,
                        kind == REC_REMOVED         ? "removed"
                        : kind == REC_REMOVE_INTENT ? "remove starts"
                        : kind == REC_INTENT        ? "put starts"
                                                    : "put acknowledged");
            if (kind == REC_REMOVED) {
                removed[idx] = 1;
                nremoved++;
            } else if (kind == REC_REMOVE_INTENT) {
                acked[idx] = 0; /* a remove started: the block may be gone or not */
                removed[idx] = 0;
            } else if (kind == REC_INTENT) {
                removed[idx] = 0; /* a put started: it may or may not have landed */
            } else {
                acked[idx] = 1;
                removed[idx] = 0;
            }
        }
        close(fds[0]);
        done++;

        kvt_store *s;
        if (open_store(&s)) {
            fprintf(stderr, "crashloop: reopen after kill %ld: %s\n", done, kvt_last_error());
            return 1;
        }
        if (nrec == cap_rec)
            recovery = realloc(recovery, (cap_rec *= 2) * sizeof *recovery);
        recovery[nrec++] = last_open_s;
        /* Read back the whole universe, VERIFY_BATCH blocks per call (one
         * call per block made verification most of a round's overhead). */
        for (uint32_t base = 0; base < universe; base += VERIFY_BATCH) {
            uint32_t nb = universe - base < VERIFY_BATCH ? universe - base : VERIFY_BATCH;
            kvt_key keys[VERIFY_BATCH];
            void *ptrs[VERIFY_BATCH];
            int32_t sts[VERIFY_BATCH];
            for (uint32_t j = 0; j < nb; j++) {
                keys[j] = key_of(base + j);
                ptrs[j] = buf + (size_t)j * block_bytes;
            }
            memset(buf, 0x5A, (size_t)nb * block_bytes);
            kvt_io_opts o = {.size = sizeof o, .status = sts, .flags = KVT_IO_NO_PROMOTE};
            if (kvt_get(s, keys, nb, ptrs, &o, NULL) < 0) {
                fprintf(stderr, "crashloop: get after kill %ld: %s\n", done, kvt_last_error());
                return 1;
            }
            for (uint32_t j = 0; j < nb; j++) {
                uint32_t i = base + j;
                int32_t st = sts[j];
                uint64_t failures = wrong + missing + resurrected;
                if (st == 0) {
                    fill(want, i);
                    if (memcmp(want, ptrs[j], block_bytes)) {
                        wrong++;
                        fprintf(stderr, "crashloop: WRONG BYTES for block %u after kill %ld\n", i, done);
                    }
                    verified++;
                    if (removed[i]) {
                        resurrected++;
                        fprintf(stderr, "crashloop: block %u was removed (acknowledged) but is back "
                                        "after kill %ld\n", i, done);
                    }
                } else if (st == KVT_ECORRUPT) {
                    corrupt++; /* a torn, never-acknowledged write, detected */
                    if (acked[i]) {
                        missing++;
                        fprintf(stderr, "crashloop: acknowledged block %u reads corrupt\n", i);
                    }
                } else if (acked[i]) {
                    missing++;
                    fprintf(stderr, "crashloop: acknowledged block %u missing after kill %ld\n", i, done);
                }
                if (wrong + missing + resurrected != failures) {
                    fprintf(stderr, "crashloop: block %u: the child stopped at %s; its last events "
                                    "(round: event):", i, last_site);
                    for (uint32_t e = nev[i] > HIST ? nev[i] - HIST : 0; e < nev[i]; e++) {
                        uint32_t h = hist[(size_t)i * HIST + e % HIST];
                        fprintf(stderr, " %u: %s;", h >> 2, kind_names[h & 3]);
                    }
                    fprintf(stderr, "\n");
                }
            }
        }
        kvt_close(s);
        if (wrong || missing || resurrected)
            break;
    }
    qsort(recovery, nrec, sizeof *recovery, cmp_double);
    uint64_t nacked = 0;
    for (uint32_t i = 0; i < universe; i++)
        nacked += acked[i];
    printf("crashloop: kills %ld, blocks verified %llu, wrong bytes %llu, acknowledged %llu, "
           "acknowledged missing %llu, torn unacknowledged detected %llu, recovery p50 %.1f ms max %.1f ms\n",
           done, (unsigned long long)verified, (unsigned long long)wrong,
           (unsigned long long)nacked, (unsigned long long)missing, (unsigned long long)corrupt,
           nrec ? recovery[nrec / 2] * 1e3 : 0.0, nrec ? recovery[nrec - 1] * 1e3 : 0.0);
    if (whitebox) {
        printf("crashloop: whitebox kill points hit:");
        for (int k = 0; k < KP_SITES; k++)
            printf(" %s %llu%s", kp_names[k], (unsigned long long)site_hits[k],
                   k + 1 < KP_SITES ? "," : ";");
        printf(" removes acknowledged %llu, resurrected %llu\n", (unsigned long long)nremoved,
               (unsigned long long)resurrected);
    }
    unlink(path);
    free(acked);
    free(removed);
    free(hist);
    free(nev);
    free(recbuf);
    free(buf);
    free(want);
    free(recovery);
    int ok = wrong == 0 && missing == 0 && resurrected == 0 && done > 0;
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
