/*
 * kvtier.h — the whole public ABI of kvtier.
 *
 * kvtier keeps the KV-cache blocks of LLM inference engines across GPU memory
 * (HBM), host DRAM and NVMe, content-addressed by the token prefix they encode.
 *
 * Conventions, valid for every function below unless its comment says otherwise:
 *  - Functions return int: 0 or a non-negative count on success, a negative
 *    KVT_E* code on failure. kvt_strerror() names a code; kvt_last_error()
 *    gives this thread's message for the last failure, with detail.
 *  - Every function is thread-safe: any thread may call any function on the
 *    same store at the same time, except kvt_close(), which must be the last
 *    call on a store (calls racing with it get KVT_ECLOSED or are waited for).
 *  - Handles are opaque. Destroy functions accept NULL.
 *  - Nothing here prints, aborts, or keeps a pointer you pass beyond the call,
 *    except where "kept" is written (asynchronous operations keep their buffers
 *    until their ticket completes).
 *  - Structs that cross the ABI begin with `uint32_t size`: set it to
 *    sizeof(the struct) so that later versions can add fields. The library
 *    checks it as Linux's copy_struct_from_user() does: smaller than the
 *    first version of the struct: KVT_EINVAL; larger than the library's own
 *    (a caller built against a newer header): accepted if every byte past
 *    the library's struct is zero (no field it lacks is set), else
 *    KVT_ESIZE, as is any size over 4096 (nothing past it is read). The
 *    message names the field and the first non-zero byte. On KVT_ESIZE a
 *    caller may retry with the older size, leaving out the new fields.
 */
#ifndef KVTIER_H
#define KVTIER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KVT_BUILDING_LIBRARY)
#define KVT_API __attribute__((visibility("default")))
#else
#define KVT_API
#endif

/* ---------------------------------------------------------------- version */

#define KVT_VERSION_MAJOR 0
#define KVT_VERSION_MINOR 2
#define KVT_VERSION_PATCH 0
#define KVT_VERSION_NUMBER \
    (KVT_VERSION_MAJOR * 10000 + KVT_VERSION_MINOR * 100 + KVT_VERSION_PATCH)

/* The library's KVT_VERSION_NUMBER, to compare with the header you built against. */
KVT_API int kvt_version(void);
/* "MAJOR.MINOR.PATCH"; static storage. */
KVT_API const char *kvt_version_string(void);

/* ----------------------------------------------------------------- errors */

/* X(name, value, message): the one table behind the enum, kvt_strerror() and
 * the Python binding's exception classes. */
#define KVT_ERROR_TABLE(X)                                                        \
    X(KVT_OK, 0, "success")                                                       \
    X(KVT_EINVAL, -1, "invalid argument")                                         \
    X(KVT_ENULL, -2, "a required pointer is NULL")                                \
    X(KVT_ESIZE, -3, "size is zero or out of range")                              \
    X(KVT_EFRAGS, -4, "fragment count does not divide the block or does not match") \
    X(KVT_ECAPACITY, -5, "capacity is smaller than one block or not a whole number of slots") \
    X(KVT_EPOLICY, -6, "unknown eviction policy")                                 \
    X(KVT_EFROZEN, -7, "configuration is already in use by an open store")        \
    X(KVT_ECLOSED, -8, "store is closed, closing, or not a store")                \
    X(KVT_ENOENT, -9, "key not present")                                          \
    X(KVT_ETICKET, -10, "unknown ticket or ticket already consumed")              \
    X(KVT_ETIMEDOUT, -11, "timed out; the ticket is still pending")               \
    X(KVT_EINPROGRESS, -12, "operation still in progress")                        \
    X(KVT_EBUSY, -13, "too many operations in flight; retry later")               \
    X(KVT_EFULL, -14, "no room: every candidate for eviction is pinned or busy")  \
    X(KVT_ENOMEM, -15, "out of memory")                                           \
    X(KVT_EIO, -16, "I/O error")                                                  \
    X(KVT_ENOTSUP, -17, "not supported by this build or this tier")               \
    X(KVT_ENODEV, -18, "tier or device unavailable on this machine")              \
    X(KVT_EFORMAT, -19, "file holds another format or format version")            \
    X(KVT_EGEOMETRY, -20, "file was made for another block geometry")             \
    X(KVT_ELOCKED, -21, "file is in use by another store")                        \
    X(KVT_EPATH, -22, "path is unusable (directory, not writable, unsafe symlink)") \
    X(KVT_ENODIRECT, -23, "filesystem does not support O_DIRECT")                 \
    X(KVT_ECORRUPT, -24, "stored block failed verification")                      \
    X(KVT_ENOTIER, -25, "no tier is configured")                                  \
    X(KVT_EMEMKIND, -26, "memory kind not supported (device memory without CUDA?)") \
    X(KVT_ENOSPC, -27, "no space left on device")                                 \
    X(KVT_ENOTPINNED, -28, "key is not pinned")                                   \
    X(KVT_ESYS, -29, "operating system error")                                    \
    X(KVT_ETOOSMALL, -30, "file is smaller than its header")

typedef enum kvt_error {
#define KVT_X_ENUM(name, value, msg) name = value,
    KVT_ERROR_TABLE(KVT_X_ENUM)
#undef KVT_X_ENUM
} kvt_error;

/* Static text for a code (also for unknown codes). Never NULL. */
KVT_API const char *kvt_strerror(int code);
/* The symbolic name ("KVT_ENOENT") of a code, or NULL if unknown. */
KVT_API const char *kvt_error_name(int code);
/* This thread's message for the last failed kvtier call: the code's text plus
 * detail (which argument, which path, errno). Valid until this thread's next
 * kvtier call. Never NULL. */
KVT_API const char *kvt_last_error(void);

/* ------------------------------------------------------------------- keys */

/* A block's 128-bit content address in canonical order (XXH128_canonical_t:
 * high 64 bits big-endian, then low 64 bits). Fixed layout by the key spec. */
typedef struct kvt_key {
    uint8_t b[16];
} kvt_key;

/* Namespace field tags (docs/key-spec.md). Any tag 0..255 is allowed; these
 * are the conventional ones. */
enum {
    KVT_NS_MODEL = 1,   /* model name or id */
    KVT_NS_LAYOUT = 2,  /* dtype, KV layout, block shape */
    KVT_NS_RANK = 3,    /* tensor/pipeline parallel rank */
    KVT_NS_ADAPTER = 4, /* LoRA adapter id */
    KVT_NS_SALT = 5,    /* tenant salt: different salts never share blocks */
    KVT_NS_CUSTOM = 255 /* free-form */
};

typedef struct kvt_ns_field {
    uint32_t tag;     /* 0..255 */
    uint32_t len;     /* bytes at data */
    const void *data; /* may be NULL when len == 0 */
} kvt_ns_field;

/* The namespace key of `n` tagged fields, in the order given (key spec v1).
 * n may be 0. Errors: KVT_ENULL, KVT_EINVAL (tag > 255). Pure; no allocation. */
KVT_API int kvt_ns_key(const kvt_ns_field *fields, size_t n, kvt_key *out);

/* Chained block keys: out[i] = XXH3-128(canonical(prev) ‖ tokens of block i),
 * with prev = *parent for i == 0 (the namespace key, or the key of the block
 * before tokens[0] to continue a chain). Tokens are hashed as u32 LE.
 * Returns the number of keys written, ntokens / block_tokens (a partial last
 * block gets no key). Errors: KVT_ENULL, KVT_ESIZE (block_tokens == 0, or
 * out_cap too small). Pure; no allocation. */
KVT_API int kvt_key_chain(const kvt_key *parent, const uint32_t *tokens, size_t ntokens,
                          uint32_t block_tokens, kvt_key *out, size_t out_cap);

/* 32 lowercase hex digits + NUL into out[33]. Errors: KVT_ENULL. */
KVT_API int kvt_key_hex(const kvt_key *key, char out[33]);

/* Key modes: which hash computes keys (docs/key-spec.md). A store holds keys
 * of one mode (KVT_OPT_KEY_MODE). Keys of different modes match only by
 * chance (2^-128): their namespace magic strings differ. */
typedef enum kvt_key_mode {
    KVT_KEY_XXH3_128 = 0,   /* key spec v1, the default: fast, no secret, not
                               collision-resistant against chosen tokens */
    KVT_KEY_BLAKE2B_128 = 1 /* BLAKE2b with a 16-byte digest, keyed with a
                               per-deployment secret: for multi-tenant stores
                               whose prompts may be adversarial (needs libb2) */
} kvt_key_mode;

/* Secret lengths of KVT_KEY_BLAKE2B_128, bytes (XXH3-128 takes none). */
#define KVT_KEY_SECRET_MIN 16
#define KVT_KEY_SECRET_MAX 64

/* kvt_ns_key and kvt_key_chain in key mode `mode` (a kvt_key_mode), keyed
 * with secret[0..secret_len) when the mode takes one. KVT_KEY_XXH3_128 with
 * secret_len 0 gives exactly kvt_ns_key / kvt_key_chain. The secret is read
 * during the call only; keep it secret (whoever has it can compute keys).
 * Returns as kvt_ns_key / kvt_key_chain. Errors: theirs, and KVT_EINVAL
 * (unknown mode), KVT_ENOTSUP (mode not built in: BLAKE2b without libb2),
 * KVT_ENULL (secret NULL with secret_len > 0), KVT_ESIZE (secret_len outside
 * KVT_KEY_SECRET_MIN..MAX for BLAKE2b, or not 0 for XXH3). Pure; no
 * allocation; thread-safe. */
KVT_API int kvt_ns_key_mode(uint32_t mode, const void *secret, size_t secret_len,
                            const kvt_ns_field *fields, size_t n, kvt_key *out);
KVT_API int kvt_key_chain_mode(uint32_t mode, const void *secret, size_t secret_len,
                               const kvt_key *parent, const uint32_t *tokens, size_t ntokens,
                               uint32_t block_tokens, kvt_key *out, size_t out_cap);

/* Folds a key an engine computed itself (vLLM's block hash with its group,
 * SGLang's sha256 hex string, LMCache's chunk hash) into a kvtier key under
 * a namespace: out = XXH3-128("kvtier-fold-v1" ‖ canonical(*ns) ‖ bytes)
 * (docs/key-spec.md, "Folding engine keys"; the per-engine encodings of
 * `bytes` are specified there). ns is a namespace key (kvt_ns_key) carrying
 * what the engine's hash leaves out: model, rank, layout. A folded key is a
 * plain key: no prefix relation between folded keys is implied, so store
 * them with prefix-unaware policies or pass opts->parent yourself. Keys of
 * mode KVT_KEY_XXH3_128 only. Errors: KVT_ENULL (len > 0 with bytes NULL).
 * Pure; no allocation; thread-safe. */
KVT_API int kvt_key_fold(const kvt_key *ns, const void *bytes, size_t len, kvt_key *out);
/* n folds of fixed-length engine keys laid end to end: out[i] =
 * kvt_key_fold(ns, bytes + i * item_len, item_len). Returns n. Errors:
 * KVT_ENULL, KVT_ESIZE (n > INT32_MAX). Pure; thread-safe. */
KVT_API int kvt_key_fold_many(const kvt_key *ns, const void *bytes, size_t item_len, size_t n,
                              kvt_key *out);

/* ----------------------------------------------------------- configuration */

typedef struct kvt_config kvt_config;
typedef struct kvt_store kvt_store;

/* Tiers. A store is an ordered list of tier instances, fastest first, each
 * of a kind ("hbm", "dram", "nvme": docs/tiers.md) with options of its own.
 * Lookups report the instance index (0 = the fastest), or KVT_TIER_NONE.
 * Besides slot tiers, whose blocks this store places, a kind may be
 * key-addressed (a shared store that other processes fill, with its own
 * placement and TTL): lookups, contains and gets ask it for keys the slot
 * tiers miss, puts are written through to it, removes reach it; leases and
 * pins do not apply to blocks found only there. */
enum {
    KVT_MAX_TIERS = 8,      /* tier instances in one store, at most */
    KVT_MAX_SLOT_TIERS = 3, /* of them slot tiers (hbm, dram, nvme), at most: they are
                               added before any key-addressed one */
    KVT_TIER_NAME_MAX = 32, /* bytes of an instance name, NUL included */
    KVT_TIER_NONE = 255     /* in lookup results: not held */
};

/* Store-wide options, set with kvt_config_set(). */
typedef enum kvt_option {
    KVT_OPT_BLOCK_BYTES = 1,  /* bytes per block (required), 1 .. 1 GiB */
    KVT_OPT_BLOCK_TOKENS = 2, /* tokens per block, informative (bench, NVMe geometry); default 16 */
    KVT_OPT_FRAGS = 3,        /* fragments per block, must divide block bytes; default 1 */
    KVT_OPT_WORKERS = 4,      /* background threads for async operations; default 2, 1..64;
                                 as many again for copies with a write-through tier */
    KVT_OPT_COPY_THREADS = 5, /* threads that copy one large batch; default 2, 1..64 */
    KVT_OPT_MAX_INFLIGHT = 6, /* pending tickets before KVT_EBUSY; default 1024 */
    KVT_OPT_MANUAL_CLOCK = 7, /* 1: time moves only by kvt_clock_set() (virtual time) */
    KVT_OPT_KEY_MODE = 8,     /* kvt_key_mode of the keys this store is given; default
                                 KVT_KEY_XXH3_128. A declaration: the store never sees
                                 tokens, so it cannot check a key's mode; persistent tiers
                                 record it and refuse a file of another mode
                                 (KVT_EGEOMETRY). Readable as the stat "key_mode". */
    KVT_OPT_CLOSE_FLUSH_MS = 9 /* kvt_close writes blocks held only in DRAM/HBM down to the
                                 persistent tier (as kvt_flush of everything) for at most
                                 this long, so that a reopen is warm; 0 skips it (close
                                 drops them). Default 60000. 0..86400000. */
} kvt_option;

/* Options every tier instance takes, by name (kvt_config_tier_set / _str):
 *  "capacity"     bytes; 0 (default) leaves the instance out of the store.
 *                 A whole number of slots: kvt_slot_bytes() gives a slot's size
 *  "ttl_ms"       idle time after which a block leaves the tier; 0 = never
 *  "victims"      kvt_victims: what happens to blocks leaving the tier
 *  "admit"        kvt_admit: how blocks enter the tier
 *  "admit_after"  KVT_ADMIT_AFTER_N: accesses before admission; default 2, 1..65535
 *  "policy"       (string) eviction policy: "prefix" (default), "lru", "s3fifo",
 *                 "sieve"; docs/policies.md
 *  "faults"       (string) test builds: fault-injection spec, e.g.
 *                 "eio=0.01,torn=0.05", "cqe_eio=0.01" (at completion);
 *                 docs/nvme-format.md
 * Options of one kind (docs/tiers.md lists them all):
 *  dram: "numa_node" (-1 default: nearest the GPU or local), "hugepages" (1
 *        default: ask for transparent huge pages), "device" (the GPU whose NUMA
 *        node is the default one, in a process already using CUDA, and whose
 *        context pins the arena; default 0)
 *  nvme: "path" (string, required: file or block device), "queue_depth"
 *        (io_uring, default 64, 1..4096), "sqpoll" (1: kernel submission
 *        polling thread), "recreate" (1: overwrite a file of another
 *        format or geometry), "unit" (a new file's header and alignment
 *        unit: 0 = 512 bytes for blocks under 256 KiB, else 4096; 512..4096)
 *  hbm:  "device" (CUDA device ordinal, default 0) */

typedef enum kvt_victims {
    KVT_VICTIM_DEMOTE = 0, /* move to the next enabled tier below (default) */
    KVT_VICTIM_DROP = 1    /* forget */
} kvt_victims;

typedef enum kvt_admit {
    KVT_ADMIT_WRITE_BACK = 0,    /* enter on put (topmost tier) or on demotion (default) */
    KVT_ADMIT_WRITE_THROUGH = 1, /* every put is also written here, asynchronously */
    KVT_ADMIT_AFTER_N = 2        /* enter only after "admit_after" accesses */
} kvt_admit;

/* Returns the current time in nanoseconds; must be monotonic. Called from any
 * thread, often: keep it cheap and thread-safe. */
typedef uint64_t (*kvt_clock_fn)(void *user);

/* New config with defaults into *out. Errors: KVT_ENULL, KVT_ENOMEM. */
KVT_API int kvt_config_new(kvt_config **out);
/* Frees a config. NULL is fine. A store opened from it does not need it. */
KVT_API void kvt_config_free(kvt_config *cfg);
/* Setters. Values are checked here when they can be (KVT_ESIZE, KVT_EINVAL),
 * the rest at kvt_open. After a kvt_open() with this config: KVT_EFROZEN.
 * A config is not thread-safe: set it up from one thread. */
KVT_API int kvt_config_set(kvt_config *cfg, kvt_option opt, int64_t value);
/* Adds a tier instance of kind `kind` below those added before (add the
 * fastest first) and returns its index, which the setters below, lookups
 * and kvt_store_tier_name() use. name: the instance's name in stats
 * ("<name>.hits") and kvt_store_tier_find(); 1..31 of [A-Za-z0-9_-]; NULL
 * gives the kind's name, or the kind's name with 1, 2, ... appended when
 * that is taken ("nvme1"). The same kind may be added more than once. The
 * instance starts with every option at its default (capacity 0).
 * Errors: KVT_ENULL, KVT_EFROZEN, KVT_ENOTSUP (no kind of that name in
 * this build: "nvme" without io_uring; "hbm" is in every build, its device
 * missing without CUDA, see kvt_store_tier_available), KVT_EINVAL
 * (bad or taken name, or a slot tier after a key-addressed one), KVT_ESIZE
 * (already KVT_MAX_TIERS instances, or KVT_MAX_SLOT_TIERS slot tiers). */
KVT_API int kvt_config_add_tier(kvt_config *cfg, const char *kind, const char *name);
/* The index of the config's tier instance named `name`. Errors: KVT_ENULL,
 * KVT_ENOENT (none of that name). */
KVT_API int kvt_config_tier_find(const kvt_config *cfg, const char *name);
/* Sets integer option `opt` (above) of tier instance `tier` (as returned
 * by kvt_config_add_tier). Errors: KVT_ENULL, KVT_EFROZEN, KVT_EINVAL (no
 * such instance, an option its kind does not take or takes as a string, a
 * value that is not one of an enum's), KVT_ESIZE (out of range); the
 * message names the option. */
KVT_API int kvt_config_tier_set(kvt_config *cfg, int tier, const char *opt, int64_t value);
/* Sets string option `opt` of tier instance `tier`; the string is copied.
 * NULL clears an optional string ("faults"). Errors as kvt_config_tier_set,
 * and KVT_EPOLICY for an unknown policy name, KVT_EPATH for an empty path. */
KVT_API int kvt_config_tier_set_str(kvt_config *cfg, int tier, const char *opt,
                                    const char *value);
/* Replace the store's clock (default CLOCK_MONOTONIC). fn NULL restores it. */
KVT_API int kvt_config_set_clock(kvt_config *cfg, kvt_clock_fn fn, void *user);

/* ------------------------------------------------------------------ store */

/* Opens a store: allocates and pre-faults the DRAM arena, opens or recovers
 * the NVMe file, starts worker threads. Blocking (recovery may take seconds).
 * The config is frozen (later setters fail) but remains the caller's to free.
 * Errors: KVT_ENULL, KVT_ESIZE, KVT_EFRAGS, KVT_ECAPACITY, KVT_EPOLICY,
 * KVT_ENOTIER, KVT_ENOMEM, KVT_ENODEV, and the NVMe file errors
 * (KVT_EFORMAT, KVT_EGEOMETRY, KVT_ELOCKED, KVT_EPATH, KVT_ENODIRECT,
 * KVT_ETOOSMALL, KVT_EIO).
 * KVT_ELOCKED comes at once when an open store holds the NVMe file, in this
 * process or another. A store whose process died holds nothing once its
 * process is reaped, except that its I/O still in flight is waited for (up
 * to 5 s, then KVT_ELOCKED) before the file is read or written. A child of
 * fork() cannot use its parent's stores and does not keep their files
 * locked. */
KVT_API int kvt_open(kvt_config *cfg, kvt_store **out);

/* Closes a store: waits for every operation in flight (queued async
 * operations still run; their tickets complete and are then discarded),
 * writes blocks held only in DRAM/HBM down to the persistent tier for up to
 * KVT_OPT_CLOSE_FLUSH_MS (so that the next kvt_open finds them), flushes
 * persistent tiers (fdatasync), frees everything. NULL is fine (returns 0).
 * Closing a store twice, or a pointer that is not an open store, returns
 * KVT_ECLOSED (stores are tracked by address; nothing is dereferenced). */
KVT_API int kvt_close(kvt_store *store);

/* Bytes one block of block_bytes takes in a slot of tier kind `kind` into
 * *out: block_bytes for memory tiers; for "nvme" header + payload rounded
 * up (docs/nvme-format.md). A tier's capacity must be a whole multiple of
 * it. Pure. Errors: KVT_ENULL, KVT_ESIZE (0), KVT_ENOTSUP (no such kind in
 * this build). */
KVT_API int kvt_slot_bytes(const char *kind, uint64_t block_bytes, uint64_t *out);

/* The number of tier instances the store's config declared (open or not);
 * instance indices are 0 .. count - 1, fastest first. Errors: KVT_ECLOSED. */
KVT_API int kvt_store_tier_count(kvt_store *store);
/* The name of instance `tier` ("dram", "nvme1"), valid while the store is
 * open; NULL for a closed store or an index out of range. */
KVT_API const char *kvt_store_tier_name(kvt_store *store, int tier);
/* The index of the instance named `name`. Errors: KVT_ENULL, KVT_ENOENT (no
 * instance of that name), KVT_ECLOSED. */
KVT_API int kvt_store_tier_find(kvt_store *store, const char *name);
/* Whether instance `tier` is open in this store: 1 yes, 0 left out
 * (capacity 0), or KVT_ENODEV when its device is missing here (e.g. HBM
 * without a GPU). Errors: KVT_EINVAL (index out of range), KVT_ECLOSED. */
KVT_API int kvt_store_tier_available(kvt_store *store, int tier);

/* The store's current time in nanoseconds (0 for a NULL or closed store). */
KVT_API uint64_t kvt_clock_now(kvt_store *store);
/* Manual clock only (KVT_OPT_MANUAL_CLOCK): set the time; it may not go back.
 * Errors: KVT_ENOTSUP without a manual clock, KVT_EINVAL going back. */
KVT_API int kvt_clock_set(kvt_store *store, uint64_t now_ns);

/* Applies idle-TTL expiry at the current time now. Returns blocks that left
 * a tier. Blocking if demotions need I/O. On a virtual clock (manual or the
 * caller's kvt_clock_fn) every operation does this first, so expiry is exact;
 * on the default real clock the workers do it every 100 ms instead, so
 * operations never wait for it (a block may outlive its TTL by that much). */
KVT_API int kvt_expire(kvt_store *store);

/* ----------------------------------------------------------- data movement */

/* Caller memory kinds. */
typedef enum kvt_mem_kind {
    KVT_MEM_HOST = 0, /* ordinary or pinned host memory */
    KVT_MEM_CUDA = 1  /* CUDA device memory on kvt_io_opts.device */
} kvt_mem_kind;

/* Flags for kvt_io_opts.flags. Other bits: KVT_EINVAL. */
enum {
    KVT_IO_NO_PROMOTE = 1u << 0, /* get: do not copy lower-tier hits up into DRAM/HBM */
    KVT_IO_STREAM_WAIT = 1u << 1, /* async call with a stream: the stream itself waits for
                                    the library (see "CUDA" below) */
    KVT_IO_DURABLE = 1u << 2     /* put: complete (return, or the ticket) only once each
                                    block is on the persistent tier and flushed, as
                                    kvt_flush() of these keys; see "Durability" below.
                                    KVT_ENOTSUP on a store without a persistent tier */
};

/* CUDA (CUDA builds; docs/gpu.md). The library loads the CUDA runtime at
 * first use and runs without one.
 *  - Device memory: mem_kind KVT_MEM_CUDA, every pointer device (or managed)
 *    memory of `device`; the first and last pointers are checked. Any tier
 *    takes it: DRAM and HBM directly, NVMe through pinned staging.
 *  - No usable GPU (no driver, no runtime, no device, `device` out of
 *    range): KVT_ENODEV. A library built without CUDA: KVT_EMEMKIND (and
 *    KVT_ENOTSUP for a stream). Host memory labelled CUDA, memory of another
 *    device, or device memory labelled HOST: KVT_EMEMKIND.
 *  - stream (a cudaStream_t, also cudaStreamLegacy/cudaStreamPerThread;
 *    host or device memory): the operation comes after the work queued on
 *    the stream before the call: a put does not read the source, a get does
 *    not write the destination, before that work is done. A synchronous call
 *    waits for that work, then moves the bytes, then returns. An
 *    asynchronous call returns at once and notes the point in the stream.
 *  - KVT_IO_STREAM_WAIT, with a stream and a ticket: the stream is gated at
 *    the call, so work the engine queues on it afterwards waits until the
 *    library is done with the caller's memory (get: destination written;
 *    put: source read) without the host waiting: queue the next kernels at
 *    once, and consume the ticket later for the per-block results (a missed
 *    block leaves its destination unwritten; the gate opens anyway). Without
 *    a ticket the flag changes nothing: the call returns when done. A gated
 *    stream waits on the library's worker threads; keep gated calls few
 *    enough that workers are free (KVT_OPT_WORKERS).
 *  - Without a stream, completion (return, or the ticket) means the bytes
 *    are in place; the library never touches the caller's memory later. */

/* Per-call options for kvt_put / kvt_get. May be NULL for all defaults. */
typedef struct kvt_io_opts {
    uint32_t size;         /* sizeof(kvt_io_opts) (checked: see the top of this file) */
    uint32_t mem_kind;     /* kvt_mem_kind of the caller's pointers; default HOST */
    int32_t device;        /* CUDA device of the pointers when mem_kind == CUDA; the
                              stream's device is its own */
    uint32_t flags;        /* KVT_IO_* */
    void *stream;          /* cudaStream_t the caller's work is ordered on, or NULL */
    uint32_t retain_s;     /* put: keep these blocks at least this long (soft pin) */
    uint32_t frags;        /* fragments per block in ptrs: 0 = the store's; else must equal it */
    const kvt_key *parent; /* put: key of the block before keys[0] (prefix policies) */
    int32_t *status;       /* optional, n entries: per-block result (0 or KVT_E*), see
                              kvt_put and kvt_get for the codes; written only when the
                              call (or its ticket) succeeds, unspecified when it fails */
    /* Added in 0.1 (issue 20); a caller whose size ends before it gets 0. */
    uint64_t group;        /* put: tags every block of the call with this group (a
                              model version, a tenant, a document), for
                              kvt_remove_group; 0 = no group, and a put with 0 clears
                              the tags of its keys. A key's group is that of the last
                              put that named it, stored or found held. get: ignored */
    /* Added in 0.2 (issue 20, layer-wise I/O); a caller whose size ends before
     * them gets 0, the whole block. get: only fragments frag_first ..
     * frag_first + frag_count - 1 of each block are copied, and ptrs holds
     * frag_count pointers per block (block i's fragment frag_first + f at
     * ptrs[i * frag_count + f]); the rest of the block is not read into the
     * caller's memory, and no block is promoted. frag_count 0: the whole
     * block (frag_first must then be 0). A range past the block's fragments:
     * KVT_EINVAL. put: a layer-wise save of those fragments of each block
     * (ptrs as for get), assembled into whole blocks (kvt_put, "Layer-wise
     * puts"). Host memory only (KVT_MEM_CUDA with a range: KVT_ENOTSUP),
     * and a store with a key-addressed tier or connected to a server:
     * KVT_ENOTSUP; a put also needs a DRAM put tier. */
    uint32_t frag_first;
    uint32_t frag_count;
} kvt_io_opts;

typedef uint64_t kvt_ticket;

/* How many leading keys are held, longest prefix first: stops at the first
 * key not held. tiers (optional, n entries) gets, for each key, the fastest
 * tier holding it, or KVT_TIER_NONE from the first miss on. lease_ms > 0 pins
 * the held blocks against eviction and expiry until kvt_release() or the lease
 * runs out, whichever comes first. Does not count as an access (a get does).
 * After the local (slot) tiers, the prefix goes on in key-addressed tiers
 * (blocks other processes or nodes put: docs/tiers.md), which may do I/O;
 * with lease_ms > 0 they are not asked (their blocks can't be pinned) and the
 * count stops where the local tiers stop. Returns the hit count. Takes no
 * global lock; the local part never blocks on I/O on the real clock (on a
 * virtual clock it first applies due expiry: kvt_expire).
 * Errors: KVT_ENULL, KVT_ESIZE (n == 0), KVT_ECLOSED. */
KVT_API int kvt_lookup(kvt_store *store, const kvt_key *keys, size_t n, uint8_t *tiers,
                       uint32_t lease_ms);

/* For each of n keys, whether it is held: tiers (optional, n entries) gets
 * the fastest tier holding it, or KVT_TIER_NONE, for every key (no stop at
 * the first miss, unlike kvt_lookup). Returns the number held. Removed keys
 * read as not held. Does not count as an access, pins nothing, reads no
 * block. Thread-safe; takes no global lock; never blocks on I/O on the real
 * clock (on a virtual clock it first applies due expiry: kvt_expire).
 * Errors: KVT_ENULL, KVT_ESIZE (n == 0), KVT_ECLOSED. */
KVT_API int kvt_contains(kvt_store *store, const kvt_key *keys, size_t n, uint8_t *tiers);

/* Counts as an access to each held key of n, without copying it: refreshes
 * its recency in the eviction policy and its idle time (TTL) in the fastest
 * tier holding it, and counts a hit toward admission (KVT_ADMIT_AFTER_N) as
 * a get would. Absent keys are skipped. Returns the number held (touched).
 * Thread-safe; takes each tier's lock once, as a get does; never blocks on
 * I/O on the real clock (on a virtual clock it first applies due expiry:
 * kvt_expire). Errors: KVT_ENULL, KVT_ESIZE (n == 0), KVT_ENOMEM,
 * KVT_ECLOSED. */
KVT_API int kvt_touch(kvt_store *store, const kvt_key *keys, size_t n);

/* Pins n present keys for lease_ms (> 0); returns n. All or nothing:
 * KVT_ENOENT if any key is absent (nothing is pinned). Pins nest: each must
 * be released, or the lease (one deadline per block: the latest) ends them. */
KVT_API int kvt_pin(kvt_store *store, const kvt_key *keys, size_t n, uint32_t lease_ms);
/* Releases one pin of each key. Returns the number released; keys without a
 * live pin are skipped and reported by KVT_ENOTPINNED in status (optional). */
KVT_API int kvt_release(kvt_store *store, const kvt_key *keys, size_t n, int32_t *status);

/* Stores n blocks. ptrs holds n * frags pointers: fragment f of block i at
 * ptrs[i * frags + f], each block_bytes / frags long, of opts->mem_kind.
 * A block already held is left as it is and counts as stored. A block held
 * only as an NVMe copy recovered at open and not read since is read back
 * first (blocking): if it fails verification, these bytes are stored.
 * Sync (ticket NULL): returns blocks stored when the bytes are copied.
 * Async: returns 0 at once and *ticket; the library keeps ptrs, keys and
 * status and reads the source until the ticket completes.
 * A block that can't be stored gets its code in status and is not counted;
 * it is not stored, and what the store held under its key before is as it
 * was. The codes (status[i]):
 *  0              stored, or already held, or stored and then removed by a
 *                 kvt_remove that started after this put was issued;
 *  KVT_EFULL      no slot: every candidate for eviction in the tier a put
 *                 enters is pinned, retained or in use for over 1 s, or
 *                 the index is full;
 *  KVT_EIO        the tier's write failed (the slot stays free), or reading
 *                 back a recovered copy not yet trusted (above) failed;
 *  KVT_ENOSPC     the NVMe tier's filesystem is full (or over quota);
 *  KVT_ENOMEM     no memory for that read-back, or (CUDA builds) for the
 *                 staging of device memory or the HBM tier's copy list;
 *  KVT_EMEMKIND, KVT_ENODEV, KVT_EIO  device memory (CUDA builds): a
 *                 fragment that is not device memory of opts->device, the
 *                 device lost, a failed CUDA copy.
 * With KVT_IO_DURABLE a block counts only once it is on the persistent tier
 * and flushed; one stored but not made durable gets kvt_flush's code
 * (KVT_ENOENT: removed or evicted before it was written down; KVT_EFULL:
 * no room there; KVT_EIO...) and stays where it was stored. The call
 * returns KVT_EIO when the flush itself failed.
 * Errors: KVT_ENULL, KVT_ESIZE, KVT_EMEMKIND, KVT_ENODEV, KVT_ENOTSUP,
 * KVT_EINVAL (see "CUDA" above), KVT_EBUSY (too many tickets pending),
 * KVT_ECLOSED; KVT_EINVAL, KVT_ESIZE also for opts->size (top of file);
 * KVT_ENOMEM when opts->group could not be recorded (the blocks are
 * stored, but in no group).
 *
 * Layer-wise puts (opts->frag_count > 0): only fragments frag_first ..
 * frag_first+frag_count-1 of each block are given, ptrs holding frag_count
 * pointers per block. A block is assembled: its fragments are copied
 * straight into a slot of the DRAM put tier reserved for it, invisible to
 * lookup, get, contains and eviction, and when its last fragment arrives
 * it is committed as a whole-block put of it would be (write-through,
 * events, TTL; retain_s and KVT_IO_DURABLE of the call that started it,
 * group of the call that completed it), in that call, so that call's
 * completion (sync return or ticket) covers it. One completion per call.
 * Status 0 and counted: fragments taken (the block assembling, completed,
 * or already held whole, in which case nothing is written: same key, same
 * bytes). A fragment put twice while its block assembles is overwritten
 * (last wins). At most 256 blocks assemble at once per store: one more
 * gets KVT_EBUSY in status; KVT_EFULL when no slot can be reserved; and
 * KVT_EBUSY when a whole-block put of the key is in flight for over
 * ~64 backoff rounds. A block never completed is aborted, never visible
 * and its slot freed, by kvt_remove of its key (which does not count it as
 * held), kvt_clear, kvt_close, a whole-block kvt_put of its key (which
 * stores its own bytes), and once 10 s (store clock) have passed since its
 * first fragment (checked by every range put, whole put and kvt_remove
 * while blocks assemble); its fragments must then all be put again. Stats:
 * "assembling" (blocks now), "assembled", "assembly_aborted". */
KVT_API int kvt_put(kvt_store *store, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *opts, kvt_ticket *ticket);

/* Copies n blocks into the caller's memory (ptrs laid out as for kvt_put).
 * Counts as an access (refreshes TTL and recency); lower-tier hits are
 * promoted unless KVT_IO_NO_PROMOTE. Returns blocks copied (sync) or 0 and a
 * ticket (async). A missing block gets KVT_ENOENT in status and its
 * destination is left unwritten. A block that failed verification gets
 * KVT_ECORRUPT (and is dropped); its destination holds unspecified bytes,
 * since a large NVMe block is read straight into aligned caller memory and
 * verified there (docs/nvme-format.md): only a 0 status makes the bytes the
 * block's. The codes (status[i]):
 *  0              copied: the destination holds the block;
 *  KVT_ENOENT     not held; destination unwritten; or removed, expired or
 *                 evicted while this get read it (destination unspecified);
 *  KVT_ECORRUPT   failed verification and dropped from that tier;
 *                 destination unspecified;
 *  KVT_EIO        the tier's read failed (or, with device memory, a CUDA
 *                 copy), KVT_ENOSPC likewise (a device's completion); the
 *                 block stays held (it was not found bad, a later get may
 *                 return it); destination unspecified;
 *  KVT_ENOMEM, KVT_EMEMKIND, KVT_ENODEV  device memory (CUDA builds), as
 *                 for kvt_put; destination unspecified.
 * A failed promotion (KVT_IO_NO_PROMOTE unset) changes no status: the bytes
 * were copied, the block stays where it was. Layer-wise: with
 * opts->frag_count > 0 only fragments frag_first .. frag_first+frag_count-1
 * of each block are copied, ptrs holding frag_count pointers per block, one
 * completion for the call, nothing promoted (kvt_io_opts; a range out of
 * the block: KVT_EINVAL). Errors as kvt_put. */
KVT_API int kvt_get(kvt_store *store, const kvt_key *keys, size_t n, void *const *ptrs,
                    const kvt_io_opts *opts, kvt_ticket *ticket);

/* Forgets n keys in every tier. Returns how many were held (readable in some
 * tier when the remove reached them, including blocks on their way out by
 * eviction, expiry or demotion). Blocking: it waits for media writes of
 * these keys already under way, and flushes (below).
 *
 * A remove is final. Once it returns, no lookup, pin, get or flush in this
 * process finds these keys, nor does a store reopened on the same
 * persistent tier, after a clean close or a SIGKILL at any moment — until a
 * put issued after the remove started stores a key again. Everything in
 * flight for a key when the remove reaches it is cancelled:
 *  - a put of the key issued (called, for an asynchronous one) before the
 *    remove started, and not yet complete: it ends without leaving the key
 *    stored. Its status and count treat the block as stored, then removed
 *    (it was ordered before the remove); the stat "put_cancelled" counts it;
 *  - a put issued after the remove started may store the key again (the two
 *    overlap; either order is a valid outcome);
 *  - write-through copies, demotions and promotions of the key: dropped,
 *    and their media writes invalidated;
 *  - pinned blocks and blocks being read are removed too (a pin protects
 *    from eviction, not from removal); a get running at the same time as
 *    the remove may still return the bytes, or report KVT_ENOENT.
 * On a persistent tier the block is invalidated on media and the tier
 * flushed (fdatasync) before the remove returns, so it stays removed after
 * power loss too, where the device honours flushes. */
KVT_API int kvt_remove(kvt_store *store, const kvt_key *keys, size_t n);

/* Removes every block whose key's group (kvt_io_opts.group of the last put
 * naming it) is `group` (> 0), as final as kvt_remove of those keys, and
 * forgets the group. Returns how many were held. Puts with this group that
 * run at the same time may leave their keys stored (ordered after it).
 * Tags live in this process: a store reopened on a persistent tier has
 * none (its blocks are then in no group). Thread-safe; blocking (as
 * kvt_remove). Errors: KVT_EINVAL (group 0), KVT_ENOMEM, KVT_EIO (as
 * kvt_remove), KVT_ECLOSED. */
KVT_API int kvt_remove_group(kvt_store *store, uint64_t group);

/* Removes every block, in every tier: as final as kvt_remove of every key
 * held (the same guarantees, a reopen included). Returns how many were
 * held. Puts that run at the same time as the clear, in any thread, may
 * leave their keys stored: they count as ordered after it. Thread-safe;
 * blocking (as kvt_remove, once per chunk of keys). Errors: KVT_ENOMEM, KVT_EIO (as kvt_remove: the keys are
 * removed, but a flush or an invalidation failed), KVT_ECLOSED. */
KVT_API int kvt_clear(kvt_store *store);

/* Durability. What survives what:
 *  - DRAM and HBM hold blocks for the life of the process. Unless written
 *    down (here, by KVT_IO_DURABLE, or by kvt_close: KVT_OPT_CLOSE_FLUSH_MS),
 *    a block held only there is gone after the process exits or is killed.
 *  - NVMe: a block whose write completed (an NVMe put returned, a
 *    write-through copy or demotion finished) is on the device: it survives
 *    SIGKILL of the process and is found by the next kvt_open. Writes are
 *    O_DIRECT without FUA: the device may still hold them in a volatile
 *    cache, and a fresh file's extents are recorded in filesystem metadata
 *    not yet committed, so power loss or a kernel crash can lose blocks
 *    written since the last flush (never return wrong bytes: every block is
 *    verified on read).
 *  - kvt_flush(), KVT_IO_DURABLE, kvt_remove and kvt_close flush the
 *    persistent tier (fdatasync: device cache and metadata): what they
 *    report durable survives power loss on a device that honours flushes.
 *
 * kvt_flush writes the given blocks down to the persistent tier (the first
 * tier whose blocks survive a restart: NVMe) where they are not there yet,
 * waits for such writes already under way, then flushes. keys == NULL with
 * n == 0: every block held only in faster tiers. Returns the number of the
 * given keys now durable (status, optional, n entries: 0, or KVT_ENOENT for
 * a key not held, KVT_EFULL when the persistent tier had no room, KVT_EIO
 * and the like when its write failed); with keys == NULL, the number of
 * blocks it wrote down. A block evicted from the persistent tier later by
 * its policy or TTL is gone like any other: durable means not lost to a
 * crash, not kept forever. Blocking. Errors: KVT_ENULL (keys NULL with
 * n > 0), KVT_ENOTSUP (no persistent tier), KVT_EIO (the flush failed: then
 * nothing this call wrote is known durable), KVT_ECLOSED. */
KVT_API int kvt_flush(kvt_store *store, const kvt_key *keys, size_t n, int32_t *status);

/* ---------------------------------------------------------------- tickets */

/* Waits up to timeout_ms (-1 forever, 0 poll) for a ticket. On completion
 * returns the operation's result and consumes the ticket (a failed
 * operation's detail becomes this thread's kvt_last_error()); KVT_ETIMEDOUT
 * leaves it pending; KVT_ETICKET for unknown or consumed tickets. */
KVT_API int kvt_wait(kvt_store *store, kvt_ticket ticket, int timeout_ms);
/* kvt_wait with timeout 0, but KVT_EINPROGRESS while pending. */
KVT_API int kvt_poll(kvt_store *store, kvt_ticket ticket);
/* An eventfd (EFD_NONBLOCK) that becomes readable whenever tickets complete;
 * read it to reset, then kvt_poll your tickets. Owned by the store. */
KVT_API int kvt_eventfd(kvt_store *store);

/* ----------------------------------------------------------------- events */

/* An event stream of blocks leaving: engines that mirror what the store
 * holds (vLLM's KV events, a router's prefix index) learn of evictions,
 * expirations and removals without polling. Off until kvt_events_enable. */

/* Why a block left (kvt_event.kind). */
typedef enum kvt_event_kind {
    KVT_EVENT_EVICTED = 1, /* pushed out of `tier` by its policy to make room */
    KVT_EVENT_EXPIRED = 2, /* idle in `tier` longer than its KVT_TOPT_TTL_MS */
    KVT_EVENT_REMOVED = 3  /* kvt_remove or kvt_clear: gone from every tier */
} kvt_event_kind;

/* One block leaving. Fixed layout, 32 bytes (new fields would come with a
 * new struct and call). */
typedef struct kvt_event {
    kvt_key key;
    uint64_t time_ns;    /* the store's clock (kvt_clock_now) when it left */
    uint8_t kind;        /* kvt_event_kind */
    uint8_t tier;        /* the tier it left; KVT_TIER_NONE for REMOVED (all) */
    uint8_t to;          /* EVICTED, EXPIRED: the tier it is demoted to
                            (KVT_TOPT_VICTIMS demote, a tier below), else
                            KVT_TIER_NONE: dropped from `tier` (a copy a
                            write-through tier holds stays). A demotion that
                            then fails (no room below, a write error) drops
                            the block: its event still names `to`. */
    uint8_t reserved[5]; /* zero */
} kvt_event;

/* Turns the stream on: from now on each eviction, expiration and removal
 * of a held key queues one kvt_event (in the order they happen, per
 * thread; events of different threads interleave), up to `capacity` events
 * not yet taken; further ones are dropped and counted (kvt_events_take's
 * overflow). Once per store. Events of blocks that a corrupt read dropped,
 * or that kvt_close writes down and frees, are not reported.
 * Errors: KVT_ESIZE (capacity 0 or over 1 << 24), KVT_EINVAL (already on),
 * KVT_ENOMEM, KVT_ESYS (no eventfd), KVT_ECLOSED. Thread-safe. */
KVT_API int kvt_events_enable(kvt_store *store, uint32_t capacity);
/* Moves up to cap queued events into out[], oldest first, and returns how
 * many. overflow (optional) gets the number of events dropped because the
 * queue was full since the last call that asked for it, and resets it.
 * Non-blocking; thread-safe (concurrent callers get disjoint events).
 * Errors: KVT_ENULL (out NULL with cap > 0), KVT_EINVAL (stream not on),
 * KVT_ECLOSED. */
KVT_API int kvt_events_take(kvt_store *store, kvt_event *out, size_t cap,
                            uint64_t *overflow);
/* An eventfd (EFD_NONBLOCK, owned by the store, not the tickets' one of
 * kvt_eventfd) that is signalled when an event is queued into an empty
 * queue: read it to reset it, then call kvt_events_take until it returns
 * 0 (events queued meanwhile signal again). Errors: KVT_EINVAL (stream not
 * on), KVT_ECLOSED. */
KVT_API int kvt_events_fd(kvt_store *store);

/* ------------------------------------------------------------------ stats */

/* Called once per statistic; names are stable (docs/tuning.md). */
typedef void (*kvt_stat_fn)(const char *name, uint64_t value, void *user);

/* Visits every statistic (counters and gauges, per tier "dram.hits" etc.).
 * Returns the number visited. Lock-free reads: values may be slightly apart. */
KVT_API int kvt_stats(kvt_store *store, kvt_stat_fn fn, void *user);
/* One statistic by name into *value. KVT_ENOENT for unknown names. */
KVT_API int kvt_stat(kvt_store *store, const char *name, uint64_t *value);

/* ----------------------------------------------------------- shared store
 * One store served to every process on a node (docs/shared.md): a process
 * that opened a store serves it on a unix socket; other processes connect
 * and get a kvt_store * on which the data calls work as on their own:
 * kvt_lookup (leases), kvt_contains, kvt_touch, kvt_pin/kvt_release,
 * kvt_put/kvt_get (sync and tickets, kvt_eventfd), kvt_remove, kvt_clear,
 * kvt_flush, kvt_stats/kvt_stat (the server's store, plus "client.*"),
 * kvt_store_tier_count/_name/_find/_available (the served store's tiers).
 * On a connected store the calls that act on this process's own store
 * (kvt_clock_set, kvt_expire, kvt_serve) return KVT_ENOTSUP; so do
 * kvt_remove_group and kvt_events_*, device memory (KVT_MEM_CUDA) and
 * streams, for now; a put with kvt_io_opts.group set gets KVT_ENOTSUP, and
 * .parent is not passed on.
 * Block bytes travel through shared memory, never the socket. When the
 * server goes away, calls fail at once with KVT_ECLOSED (tickets complete
 * with it); kvt_close the store and kvt_connect again. */

typedef struct kvt_server kvt_server;

enum {
    KVT_SERVE_GROUP = 1u << 0,     /* kvt_serve_opts.gid may connect too (socket 0660) */
    KVT_SERVE_TENANT_UID = 1u << 1 /* each peer uid is a tenant: the server folds the uid
                                      into every key it is sent, so clients of different
                                      uids never reach each other's blocks, even by
                                      guessing keys; kvt_clear is then KVT_ENOTSUP */
};

/* Options for kvt_serve. May be NULL for all defaults. */
typedef struct kvt_serve_opts {
    uint32_t size;           /* sizeof(kvt_serve_opts) (checked: see the top of this file) */
    uint32_t flags;          /* KVT_SERVE_* */
    uint32_t gid;            /* with KVT_SERVE_GROUP: the group let in besides the owner */
    uint32_t staging_blocks; /* most staging blocks per client; 0: 64 (at most 256 MiB) */
    uint32_t max_clients;    /* connections at once; 0: 256; more are refused (KVT_EBUSY) */
} kvt_serve_opts;

/* Serves store on a unix socket at path (SOCK_SEQPACKET, mode 0600, 0660
 * with KVT_SERVE_GROUP; peers are checked by SO_PEERCRED: same uid, root,
 * or the group). Runs on threads of its own (one per client) until
 * kvt_serve_stop; the store must stay open until then. A stale socket file
 * (no server behind it) is replaced. Errors: KVT_ENULL, KVT_EPATH (path
 * too long, not a socket, not creatable), KVT_ELOCKED (a server is
 * listening there), KVT_ENOTSUP (store is itself a connected one),
 * KVT_ECLOSED, KVT_ENOMEM, KVT_ESYS. */
KVT_API int kvt_serve(kvt_store *store, const char *path, const kvt_serve_opts *opts,
                      kvt_server **out);
/* Stops serving: refuses new clients, closes every connection (releasing
 * its pins and leases), waits for requests in progress, removes the socket
 * file, frees srv. NULL is fine. Blocking. The store stays open. */
KVT_API int kvt_serve_stop(kvt_server *srv);
/* The server's own statistics ("server.clients", "server.connections",
 * "server.refused", "server.malformed", "server.requests", and for zero
 * copy through a shared DRAM arena "server.zero_copy", "server.zero_copy_blocks",
 * "server.staged_blocks": docs/shared.md), then per
 * connected client "client.<pid>.requests" and "client.<pid>.pins" (pins
 * and leases it holds). fn runs under the server's client-list lock: it
 * must not call kvt_serve_stop. Returns the number visited.
 * Errors: KVT_ENULL. */
KVT_API int kvt_serve_stats(kvt_server *srv, kvt_stat_fn fn, void *user);

/* Options for kvt_connect. May be NULL for all defaults. */
typedef struct kvt_connect_opts {
    uint32_t size;           /* sizeof(kvt_connect_opts) (checked: see the top of this file) */
    uint32_t timeout_ms;     /* for the handshake; 0: 5000 */
    uint64_t block_bytes;    /* the geometry expected; 0: the server's */
    uint32_t frags;          /* likewise; 0: the server's */
    uint32_t staging_blocks; /* staging wished for; 0: the server's choice */
    uint32_t copy_threads;   /* threads that copy one large batch into or out of the
                                server's shared arena, as KVT_OPT_COPY_THREADS does in
                                process; 0: 2 (that option's default), 1..64 */
    uint32_t reserved;       /* 0 */
} kvt_connect_opts;

/* Connects to a kvtier server at path and returns in *out a store to use
 * as any other; kvt_close it when done. Blocking (the handshake).
 * Errors: KVT_ENULL, KVT_EPATH (path too long), KVT_ENODEV (no server
 * there), KVT_EFORMAT (not a kvtier server, or another protocol version),
 * KVT_EGEOMETRY (another block geometry than opts asked), KVT_EBUSY (the
 * server is full), KVT_ETIMEDOUT (no answer), KVT_EPATH also when the
 * server does not let this uid in, KVT_ENOMEM, KVT_ESYS. */
KVT_API int kvt_connect(const char *path, const kvt_connect_opts *opts, kvt_store **out);

/* Renders kvt_stats(store) in the Prometheus text format (version 0.0.4)
 * into buf (cap bytes, NUL-terminated when cap > 0): metric names
 * "kvtier_<stat>", per tier as a label {tier="dram"}. Returns the length
 * the text needs, without the NUL, as snprintf does: larger than or equal
 * to cap means it was cut; call again with more. Works on connected
 * stores too. Errors: those of kvt_stats; KVT_ENULL (buf NULL, cap > 0). */
KVT_API int kvt_stats_prometheus(kvt_store *store, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* KVTIER_H */
