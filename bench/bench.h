/* bench.h — what the kvtier-bench subcommands share: flags, timing, samples, JSON, tables, buffers, stores.
 * Layout: cmd/ one file per subcommand; workload/ request generators and the swarm run; model/ the
 * TTFT model; baseline/ what the library is measured against; report/ JSON, tables and rows;
 * common/ flags, clocks, samples, buffers; store_cfg.c every store's configuration. */
#ifndef KVT_BENCH_H
#define KVT_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kvtier.h"

/* Exit codes of every subcommand. */
enum {
    BENCH_OK = 0,
    BENCH_FAILED = 1, /* the library or the machine failed a step */
    BENCH_USAGE = 2   /* bad flags */
};

/* The version of the JSON layout; bumped when a documented field changes
 * meaning or goes away (adding fields does not bump it). */
#define BENCH_JSON_SCHEMA 1

/* A subcommand: parses its own flags (argv[0] is its name) and returns an
 * exit code. One file per subcommand; main.c's table lists them. */
typedef int (*bench_cmd_fn)(int argc, char **argv);
int bench_mixed(int argc, char **argv); /* cmd/cmd_mixed.c */
int bench_default(int argc, char **argv); /* cmd/cmd_default.c: the default run (no command) */
int bench_swarm(int argc, char **argv);   /* cmd/cmd_swarm.c */
int bench_compare(int argc, char **argv); /* cmd/cmd_compare.c */
int bench_micro(int argc, char **argv); /* cmd/cmd_micro.c */
int bench_micro_nvme(int argc, char **argv); /* cmd/cmd_micro_nvme.c: `micro --tier nvme` */
int bench_micro_cluster(int argc, char **argv); /* cmd/cmd_micro_cluster.c: `micro --tier cluster` */
int bench_index(int argc, char **argv); /* cmd/cmd_index.c */
int bench_layers(int argc, char **argv); /* cmd/cmd_layers.c */
int bench_micro_gpu(int argc, char **argv); /* cmd/cmd_micro_gpu.c: `micro --gpu` */
int bench_micro_shared(int argc, char **argv); /* cmd/cmd_micro_shared.c: `micro --shared` */
int bench_replay(int argc, char **argv); /* cmd/cmd_replay.c */
int bench_sweep(int argc, char **argv);  /* cmd/cmd_sweep.c */
int bench_close(int argc, char **argv);  /* cmd/cmd_close.c */

/* ------------------------------------------------------ common/args.c */

typedef enum {
    BARG_BOOL,      /* --name: sets an int to 1 */
    BARG_INT,       /* --name N: int64_t, decimal */
    BARG_SIZE,      /* --name 2M: uint64_t bytes, suffixes K M G (binary) */
    BARG_SIZE_LIST, /* --name 256K,2M: bench_list of uint64_t */
    BARG_STR        /* --name text: const char * */
} barg_kind;

#define BENCH_LIST_MAX 16
typedef struct bench_list {
    uint64_t v[BENCH_LIST_MAX];
    int n;
} bench_list;

typedef struct barg {
    const char *name; /* without the leading "--" */
    barg_kind kind;
    void *out;
    const char *help;
} barg;

/* Parses argv[1..argc) against spec (terminated by a zero entry). Accepts
 * "--name value" and "--name=value". Returns 0 when parsed, BENCH_USAGE
 * after printing why to stderr, or -1 after printing --help to stdout (the
 * caller then exits 0). cmd names the subcommand in messages. */
int bench_parse_args(const char *cmd, const char *summary, const barg *spec, int argc,
                     char **argv);
/* "256K" -> 262144. Returns 0, or -1 for text that is not a size. */
int bench_parse_size(const char *text, uint64_t *out);
/* Human size: 262144 -> "256 KiB". Returns buf. */
const char *bench_fmt_bytes(uint64_t bytes, char *buf, size_t cap);

/* ------------------------------------------------------ common/time.c */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* CPU time of the calling thread in nanoseconds: on a shared machine, what
 * wall time minus the time other processes ran. */
uint64_t bench_thread_cpu_ns(void);
/* CPU time of every thread of the process (the library's helpers too). */
uint64_t bench_process_cpu_ns(void);
/* Time the calling thread spent runnable but waiting for a CPU (the
 * scheduler's run delay, /proc/thread-self/schedstat), in nanoseconds;
 * UINT64_MAX where the kernel does not say. */
uint64_t bench_thread_run_delay_ns(void);
/* "2025-01-31T12:00:00Z" into buf. */
const char *bench_utc_date(char *buf, size_t cap);
/* The CPU model from /proc/cpuinfo ("unknown" if absent); static storage. */
const char *bench_cpu_model(void);
/* Online CPUs. */
int bench_cpus(void);
/* The 1-minute load average (/proc/loadavg), or -1: other work on the
 * machine shows here, and in a benchmark's spread. */
double bench_loadavg(void);

/* Progress on stderr, only when stderr is a terminal, at most ~10 lines a
 * second, each overwriting the last. bench_progress_done() clears it. */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_progress_done(void);

/* ----------------------------------------------------- common/stats.c */

/* A growable list of samples (latencies in microseconds, rates...). */
typedef struct bench_samples {
    double *v;
    size_t n, cap;
    int sorted;
} bench_samples;

/* Returns 0, or -1 without memory (the sample is lost). */
int bench_samples_add(bench_samples *s, double x);
/* Nearest-rank percentile, p in [0, 100]: the smallest sample with at least
 * p% of the samples at or below it. NaN when empty. Sorts in place. */
double bench_percentile(bench_samples *s, double p);
double bench_median(bench_samples *s);
double bench_min(bench_samples *s);
double bench_max(bench_samples *s);
double bench_sum(const bench_samples *s);
void bench_samples_free(bench_samples *s);

/* ------------------------------------------------------ report/json.c */

/* A streaming writer of one pretty-printed JSON value. Keys are passed for
 * members of objects and NULL for elements of arrays (and the top value). */
#define BENCH_JSON_DEPTH 16
typedef struct bench_json {
    FILE *f;
    int depth;
    int count[BENCH_JSON_DEPTH]; /* members written at each depth */
} bench_json;

void bench_json_init(bench_json *j, FILE *f);
void bench_json_object(bench_json *j, const char *key);
void bench_json_end_object(bench_json *j);
void bench_json_array(bench_json *j, const char *key);
void bench_json_end_array(bench_json *j);
void bench_json_str(bench_json *j, const char *key, const char *value);
void bench_json_u64(bench_json *j, const char *key, uint64_t value);
void bench_json_i64(bench_json *j, const char *key, int64_t value);
/* NaN and infinities are written as null (JSON has no such numbers). */
void bench_json_num(bench_json *j, const char *key, double value);
void bench_json_bool(bench_json *j, const char *key, int value);
/* Writes the fields every subcommand's object begins with: bench, schema,
 * kvtier_version, date, cpu_model, cpus, loadavg_1m, buildtype. */
void bench_json_header(bench_json *j, const char *bench);

/* ----------------------------------------------------- report/table.c */

#define BENCH_TABLE_COLS 12
typedef struct bench_table {
    int ncols;
    const char *head[BENCH_TABLE_COLS];
    char align[BENCH_TABLE_COLS]; /* 'l' or 'r' */
    char **cells;                 /* row-major */
    size_t ncells, cap;
} bench_table;

/* headers: ncols strings; align: ncols characters of 'l' / 'r'. */
void bench_table_init(bench_table *t, int ncols, const char *const *headers, const char *align);
/* Appends the next cell, row by row. */
void bench_table_cell(bench_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_table_print(const bench_table *t, FILE *f, int indent);
void bench_table_free(bench_table *t);
/* The first lines of every human report: what ran, on what, which build. */
void bench_print_header(FILE *f, const char *what);

/* ------------------------------------------------------- common/mem.c */

/* Anonymous memory on transparent huge pages when the kernel allows (like the
 * DRAM tier's arena, so that a memcpy baseline and the library pay the same
 * TLB costs), written once so no page fault lands in a measurement. NULL on
 * failure. Free with bench_free(p, bytes). */
void *bench_alloc(size_t bytes);
void bench_free(void *p, size_t bytes);
/* Fills with a cheap pseudo-random pattern so that no page is shared zero. */
void bench_fill(void *p, size_t bytes, uint64_t seed);
/* Resident set size of this process in bytes (/proc/self/statm). */
uint64_t bench_rss_bytes(void);

/* baseline/memcpy.c: a memcpy baseline: nthreads participants (the caller plus nthreads - 1
 * persistent threads) copy one batch of ops, split evenly by bytes. This is
 * what the library's copier is measured against. */
typedef struct bench_copy_op {
    void *dst;
    const void *src;
    size_t len;
} bench_copy_op;
typedef struct bench_copier bench_copier;
bench_copier *bench_copier_new(unsigned nthreads);
void bench_copier_run(bench_copier *c, const bench_copy_op *ops, size_t n);
void bench_copier_free(bench_copier *c);

/* baseline/crew.c: nthreads persistent threads that each call fn(arg) once per
 * round; the bench's baselines (the anchors' file pool, the raw loop's
 * hashing threads) run on one. A crew is driven by one thread at a time;
 * with 0 threads a round does nothing. NULL without memory or threads. */
typedef struct bench_crew bench_crew;
bench_crew *bench_crew_new(unsigned nthreads);
void bench_crew_free(bench_crew *c);
unsigned bench_crew_threads(const bench_crew *c);
/* Starts a round and returns at once. */
void bench_crew_start(bench_crew *c, void (*fn)(void *arg), void *arg);
/* Returns when every thread is back from the round's fn. */
void bench_crew_wait(bench_crew *c);

/* ---------------------------------------------- common/temp_files.c */

/* Temporary files (NVMe files), removed by bench_temp_remove and, while
 * registered, on SIGINT / SIGTERM / SIGHUP. Thread-safe. register returns a
 * handle, or -1 when BENCH_MAX_TEMP are registered (the caller goes on
 * without the signal-time removal). remove takes the handle (-1: nothing). */
#define BENCH_MAX_TEMP 16
int bench_temp_register(const char *path);
void bench_temp_remove(int handle);

/* ------------------------------------------------------- store_cfg.h */

#include "store_cfg.h"

/* A non-zero generator state from any seed (splitmix64 of it). */
static inline uint64_t bench_rand_seed(uint64_t seed)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}

/* xorshift64*: the bench's only randomness, seeded from flags. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [lo, hi]. */
static inline uint64_t bench_rand_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    return lo + bench_rand(state) % (hi - lo + 1);
}

#endif
