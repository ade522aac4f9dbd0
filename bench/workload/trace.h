/* trace.h — request traces (Mooncake JSONL, WEKA kv-cache-tester JSON) and their replay through a store. */
#ifndef KVT_BENCH_TRACE_H
#define KVT_BENCH_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

/* ------------------------------------------------------------- trace.c */

/* One request: its blocks are ref[off .. off + n) of the set, each an index
 * into the set's unique blocks. */
typedef struct trace_req {
    uint64_t t_ns;    /* replay time: ns since the set's start (see trace_set) */
    uint64_t off;     /* first reference */
    uint32_t n;       /* blocks, a partial last block included */
    uint32_t stream;  /* namespace: a Mooncake file, a WEKA session or subagent */
    uint32_t session; /* the --trace file it came from (a subagent is its session's) */
} trace_req;

typedef enum trace_format { TRACE_MOONCAKE = 1, TRACE_WEKA = 2 } trace_format;

typedef struct trace_file {
    char *path;
    trace_format format;
    uint32_t block_tokens; /* 512 (Mooncake), the file's block_size (WEKA) */
    uint32_t streams;      /* namespaces it opened: 1, or 1 + subagents */
    uint64_t requests, refs;
} trace_file;

/* Requests of every file, merged in replay order (docs/bench.md, "replay"):
 * each stream's requests in file order, at the time the file gives (WEKA:
 * `t` s since the session began, a subagent's `t` added to its start; all
 * sessions begin at 0; Mooncake: `timestamp` ms), a time earlier than the
 * stream's previous one raised to it; streams merged by time, ties in stream
 * order (--trace order; a session before its subagents), then file order.
 * Blocks are unique per (stream, hash_id): equal ids of two streams are
 * different blocks. */
typedef struct trace_set {
    trace_req *req;
    size_t nreq;
    uint32_t *ref; /* unique block index per reference */
    size_t nref;
    kvt_key *key; /* per unique block: its store key (trace_key) */
    size_t nblocks;
    trace_file *file;
    uint32_t nfiles, nstreams;
    uint32_t max_n;  /* the longest request, blocks */
    uint64_t end_ns; /* time of the last request */
    void *parse;     /* trace.c's state between trace_add and trace_finish */
} trace_set;

/* Adds a file to a set (a directory: its *.json and *.jsonl files, sorted by
 * name). The format is detected from the content: an object with
 * "hash_ids" on its first line is Mooncake JSONL, an object with "requests"
 * a WEKA session. Returns 0, or -1 after writing why into err. */
int trace_add(trace_set *ts, const char *path, char *err, size_t errcap);
/* Orders the requests for replay and computes the keys; after the last
 * trace_add. Returns 0 or -1 (message in err). */
int trace_finish(trace_set *ts, char *err, size_t errcap);
void trace_free(trace_set *ts);
/* A one-word summary of the set's formats: "mooncake", "weka" or "mixed". */
const char *trace_formats(const trace_set *ts);

/* The store key of hash id `id` of stream `stream`: the chain key of the
 * tokens {id mod 2^32, id >> 32} (block_tokens 2) under the namespace key of
 * fields {KVT_NS_CUSTOM: "kvtier-bench-replay", KVT_NS_SALT: stream as u32
 * LE}. A trace's ids already name whole prefixes, so the id alone is the
 * block's content; the stream keeps namespaces apart. */
int trace_key(uint32_t stream, uint64_t id, kvt_key *out);

/* ------------------------------------------------------- cmd_replay.c */

/* One replay: a fresh store, every request of the set, the store closed. */
typedef struct replay_cfg {
    const char *policy;     /* every tier's; NULL = the library's default */
    uint64_t dram_blocks;   /* 0: every unique block of the set (nothing is evicted) */
    uint64_t nvme_blocks;   /* 0: no NVMe tier */
    uint64_t ttl_ms;        /* every tier's idle TTL; 0: none */
    uint64_t block_bytes;
    const char *dir;        /* where the NVMe file goes */
    int verify;             /* check every block a get returns */
    uint32_t put_batch;     /* most blocks per kvt_put call; 0 = the whole request */
} replay_cfg;

typedef struct replay_result {
    uint64_t requests, total_blocks, hit_blocks;
    uint64_t seen_blocks; /* the hits of a store that never loses a block */
    uint64_t dram_blocks, nvme_blocks;
    uint64_t dram_hits, nvme_hits; /* the store's dram.hits / nvme.hits */
    uint64_t lookup_nvme_blocks;   /* leading blocks kvt_lookup placed in NVMe */
    uint64_t dram_evictions, nvme_evictions, dram_expirations, nvme_expirations;
    uint64_t nvme_demotions_in, dram_promotions_in, nvme_writes;
    uint64_t put_rejected, put_present, get_short, verify_errors;
    double wall_s;
    char policy[32]; /* the policy in effect (the default's name when none was asked) */
} replay_result;

/* Runs one replay. h (optional, nreq entries) gets each request's hit.
 * Returns 0, BENCH_USAGE (the library refused the configuration: unknown
 * policy, bad size) or BENCH_FAILED, after printing why to stderr. */
int replay_run(const trace_set *ts, const replay_cfg *cfg, replay_result *out, uint32_t *h);

/* Re-prefills due to expiry: requests whose hit h_ttl is below h_base,
 * the same request's hit in the same store without a TTL. */
typedef struct replay_expiry {
    uint64_t requests; /* requests that lost hits */
    uint64_t blocks;   /* sum of h_base - h_ttl over them */
    double per_session; /* requests / sessions (--trace files) */
} replay_expiry;
void replay_expiry_count(const trace_set *ts, const uint32_t *h_ttl, const uint32_t *h_base,
                         replay_expiry *out);

/* The hits of a store that never loses a block: per request, the leading
 * blocks that an earlier request referenced. Returns their sum. */
uint64_t replay_seen(const trace_set *ts, uint32_t *h);

/* Runs cfg and, when it has a TTL, counts the re-prefills due to expiry
 * against a baseline: h_base when given (the same store without a TTL, run
 * by the caller), else the seen-before hits when nothing can be evicted
 * (one tier that holds every block: "seen"), else a second run without the
 * TTL ("no-ttl run"). *baseline names the one used ("none" without TTL).
 * h (optional) gets each request's hit. Returns as replay_run. */
int replay_with_expiry(const trace_set *ts, const replay_cfg *cfg, replay_result *res,
                       replay_expiry *exp, const char **baseline, const uint32_t *h_base,
                       uint32_t *h);

/* Removes every "--trace PATH" / "--trace=PATH" from argv (argc updated),
 * collecting the paths, so the remaining flags parse with bench_parse_args.
 * Returns 0 or BENCH_USAGE (message printed). */
int replay_take_traces(const char *cmd, int *argc, char **argv, const char **paths, int *npaths,
                       int max);
/* Reads the paths into ts (trace_add, trace_finish). Returns 0, or
 * BENCH_USAGE after printing why (no trace, unreadable or malformed). */
int replay_load(const char *cmd, const char *const *paths, int npaths, trace_set *ts,
                double *parse_s);

/* "--ttl" text: seconds (decimals allowed), or 0 / "inf" / "none" for no
 * TTL. Returns 0 and *ms (0 = none), or -1. */
int replay_parse_ttl(const char *text, uint64_t *ms);

#endif
