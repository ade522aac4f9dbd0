/* fuzz_trace.c — target (c): kvtier-bench's trace reader (bench/workload/trace.c) on arbitrary bytes. */
/*
 * The input is one or more trace files separated by the 4 bytes "\0--\0"
 * (up to MAX_FILES; see trace.dict). They are written to a scratch
 * directory and loaded exactly as `kvtier-bench replay --trace A --trace B`
 * does (replay_load in bench/cmd/cmd_replay.c): trace_add per file, stopping at
 * the first refusal, then trace_finish, then trace_free. Besides no crash,
 * no leak and no UB, a set that loads must be consistent: every request's
 * references inside the set, every reference a known block, requests in
 * replay order (time, then stream), per-file counts adding up to the set's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "trace.h"

#define MAX_FILES 4
/* Latest replay time a set can hold: a request's time is at most 1e9 s
 * (trace.c refuses later ones), and a WEKA subagent adds its start to its
 * requests' times, nested at most 8 deep under the session: 9 * 1e9 s. */
#define MAX_T_NS 9000000000000000000ull
#define MAX_INPUT (1u << 20)

static char dir[512];
static const uint8_t sep[4] = {0, '-', '-', 0};

static void cleanup(void)
{
    char p[600];
    for (int i = 0; i < MAX_FILES; i++) {
        snprintf(p, sizeof p, "%s/t%d.json", dir, i);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Small files, never synced: memory is the fastest place (tmpfs is fine
     * here, the NVMe tier is not involved). */
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : kvt_fuzz_dir();
    snprintf(dir, sizeof dir, "%s/kvt-fuzz-trace-%d", base, (int)getpid());
    if (mkdir(dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "fuzz_trace: mkdir %s: %s\n", dir, strerror(errno));
        abort();
    }
    atexit(cleanup);
    return 0;
}

static void write_piece(const char *path, const uint8_t *d, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0, "creating %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, d + done, n - done);
        FUZZ_CHECK(w > 0, "writing %s", path);
        done += (size_t)w;
    }
    close(fd);
}

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end)
{
    for (; end - p >= 4; p++)
        if (!memcmp(p, sep, 4))
            return p;
    return NULL;
}

/* A set trace_finish accepted is consistent. */
static void check_set(const trace_set *ts)
{
    FUZZ_CHECK(ts->nreq > 0, "a finished set without requests");
    FUZZ_CHECK(ts->parse == NULL, "trace_finish left its parse state");
    uint64_t reqs = 0, refs = 0, streams = 0;
    for (uint32_t f = 0; f < ts->nfiles; f++) {
        const trace_file *tf = &ts->file[f];
        FUZZ_CHECK(tf->format == TRACE_MOONCAKE || tf->format == TRACE_WEKA, "file %u format %d",
                   f, (int)tf->format);
        FUZZ_CHECK(tf->streams >= 1, "file %u opened no stream", f);
        reqs += tf->requests;
        refs += tf->refs;
        streams += tf->streams;
    }
    FUZZ_CHECK(reqs == ts->nreq, "files count %llu requests, the set %zu",
               (unsigned long long)reqs, ts->nreq);
    FUZZ_CHECK(refs == ts->nref, "files count %llu references, the set %zu",
               (unsigned long long)refs, ts->nref);
    FUZZ_CHECK(streams == ts->nstreams, "files opened %llu streams, the set has %u",
               (unsigned long long)streams, ts->nstreams);
    uint32_t max_n = 0;
    for (size_t i = 0; i < ts->nreq; i++) {
        const trace_req *q = &ts->req[i];
        FUZZ_CHECK(q->off <= ts->nref && q->n <= ts->nref - q->off,
                   "request %zu: references [%llu, +%u) outside the set's %zu", i,
                   (unsigned long long)q->off, q->n, ts->nref);
        FUZZ_CHECK(q->stream < ts->nstreams, "request %zu: stream %u of %u", i, q->stream,
                   ts->nstreams);
        FUZZ_CHECK(q->session < ts->nfiles, "request %zu: session %u of %u files", i, q->session,
                   ts->nfiles);
        FUZZ_CHECK(q->t_ns <= MAX_T_NS, "request %zu at %llu ns: a time no valid trace gives "
                   "(a subagent's \"t\" below 0 or above 1e9 s?)", i, (unsigned long long)q->t_ns);
        if (i) {
            const trace_req *p = &ts->req[i - 1];
            FUZZ_CHECK(p->t_ns < q->t_ns || (p->t_ns == q->t_ns && p->stream <= q->stream),
                       "requests %zu and %zu out of replay order", i - 1, i);
        }
        if (q->n > max_n)
            max_n = q->n;
    }
    FUZZ_CHECK(ts->max_n == max_n, "max_n %u, longest request %u", ts->max_n, max_n);
    FUZZ_CHECK(ts->end_ns == ts->req[ts->nreq - 1].t_ns, "end_ns is not the last request's time");
    for (size_t i = 0; i < ts->nref; i++)
        FUZZ_CHECK(ts->ref[i] < ts->nblocks, "reference %zu names block %u of %zu", i, ts->ref[i],
                   ts->nblocks);
    const char *f = trace_formats(ts);
    FUZZ_CHECK(!strcmp(f, "mooncake") || !strcmp(f, "weka") || !strcmp(f, "mixed"),
               "trace_formats: %s", f);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (!dir[0])
        LLVMFuzzerInitialize(NULL, NULL);
    if (n > MAX_INPUT)
        return 0;
    char paths[MAX_FILES][600];
    int nfiles = 0;
    const uint8_t *p = d, *end = d + n;
    while (nfiles < MAX_FILES) {
        const uint8_t *s = nfiles + 1 < MAX_FILES ? find_sep(p, end) : NULL;
        const uint8_t *e = s ? s : end;
        snprintf(paths[nfiles], sizeof paths[nfiles], "%s/t%d.json", dir, nfiles);
        write_piece(paths[nfiles], p, (size_t)(e - p));
        nfiles++;
        if (!s)
            break;
        p = s + 4;
    }

    trace_set ts;
    memset(&ts, 0, sizeof ts);
    char err[1024];
    bool ok = true;
    for (int i = 0; i < nfiles && ok; i++) {
        err[0] = 0;
        ok = trace_add(&ts, paths[i], err, sizeof err) == 0;
        FUZZ_CHECK(ok || err[0], "trace_add refused %s without a message", paths[i]);
    }
    if (ok) {
        err[0] = 0;
        if (trace_finish(&ts, err, sizeof err) == 0)
            check_set(&ts);
        else
            FUZZ_CHECK(err[0], "trace_finish refused the set without a message");
    }
    FUZZ_CHECK(memchr(err, 0, sizeof err) != NULL, "error message not terminated");
    trace_free(&ts);
    return 0;
}
