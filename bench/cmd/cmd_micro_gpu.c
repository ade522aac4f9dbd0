/* gpu.c — `kvtier-bench micro --gpu`: GPU <-> DRAM and GPU <-> NVMe GB/s per fragment size next to raw pinned copies, and pinned open time. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../bench.h"

static const char summary[] =
    "GPU memory <-> store GB/s, each next to the best raw method measured in the same run\n"
    "  (cudaMemcpyAsync of 16 MiB pieces between device memory and pinned host memory):\n"
    "  put (GPU -> DRAM) and get (DRAM -> GPU) for each fragment size, both directions\n"
    "  at once, GPU -> NVMe -> GPU, and the time to open a store whose DRAM tier is\n"
    "  pinned for the GPU. Medians over calls. KVTIER_CUDA_COPY=ce|batch|kernel forces\n"
    "  the library's small-fragment method (crossover sweeps: docs/gpu.md).";

#if !KVT_BENCH_CUDA

int bench_micro_gpu(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kvtier-bench micro --gpu: this kvtier-bench was built without CUDA.\n%s\n",
            summary);
    return BENCH_FAILED;
}

#else

#include <cuda_runtime_api.h>
#include <dlfcn.h>

/* The bench links only libkvtier, like an application: the CUDA runtime
 * is loaded here the way the library loads it. */
#define CU_FNS(X)                                                                         \
    X(cudaSetDevice) X(cudaGetDeviceCount) X(cudaMalloc) X(cudaFree) X(cudaHostAlloc)      \
    X(cudaFreeHost) X(cudaMemset) X(cudaMemcpyAsync) X(cudaStreamCreateWithFlags)          \
    X(cudaStreamSynchronize) X(cudaStreamDestroy) X(cudaGetErrorString)                    \
    X(cudaDeviceGetPCIBusId) X(cudaDeviceSynchronize)
static struct {
#define X(name) __typeof__(name) *name;
    CU_FNS(X)
#undef X
} cu;

static int cu_load(char *why, size_t cap)
{
    const char *env = getenv("KVTIER_CUDART");
    char name[64], path[sizeof KVT_BENCH_CUDA_HOME + 80];
    snprintf(name, sizeof name, "libcudart.so.%d", CUDART_VERSION / 1000);
    snprintf(path, sizeof path, "%s/lib64/%s", KVT_BENCH_CUDA_HOME, name);
    void *h = dlopen(env && *env ? env : name, RTLD_NOW | RTLD_LOCAL);
    if (!h && !(env && *env))
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, cap, "no CUDA runtime (%s)", dlerror());
        return -1;
    }
#define X(name)                                                                          \
    {                                                                                    \
        void *sym = dlsym(h, #name);                                                     \
        if (!sym) {                                                                      \
            snprintf(why, cap, "CUDA runtime lacks %s", #name);                          \
            return -1;                                                                   \
        }                                                                                \
        memcpy(&cu.name, &sym, sizeof sym);                                              \
    }
    CU_FNS(X)
#undef X
    int n = 0;
    cudaError_t e = cu.cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(why, cap, "no CUDA device (%s)", e ? cu.cudaGetErrorString(e) : "0 devices");
        return -1;
    }
    return 0;
}

#define CK(call)                                                                          \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess) {                                                          \
            fprintf(stderr, "kvtier-bench micro --gpu: %s: %s\n", #call,                  \
                    cu.cudaGetErrorString(e_));                                           \
            return BENCH_FAILED;                                                          \
        }                                                                                 \
    } while (0)

#define RAW_PIECE ((size_t)16 << 20)

typedef struct gpu_cfg {
    int device;
    uint64_t block_min, total, batch;
    int64_t calls;
} gpu_cfg;

typedef struct row {
    uint64_t frag, block;
    size_t blocks_per_call;
    double put, get, raw_d2h, raw_h2d; /* medians, GB/s */
    double bidir, raw_bidir;           /* aggregate GB/s, both directions at once */
    uint64_t kernel_bytes, batch_bytes, ce_bytes, pageable_bytes;
} row;

/* Raw ceiling: one direction of `bytes` in 16 MiB cudaMemcpyAsync pieces. */
static double raw_copy(void *dev, void *host, size_t bytes, int h2d, cudaStream_t st)
{
    uint64_t t0 = bench_now_ns();
    for (size_t off = 0; off < bytes; off += RAW_PIECE) {
        size_t len = bytes - off < RAW_PIECE ? bytes - off : RAW_PIECE;
        if (h2d)
            cu.cudaMemcpyAsync((char *)dev + off, (char *)host + off, len,
                               cudaMemcpyHostToDevice, st);
        else
            cu.cudaMemcpyAsync((char *)host + off, (char *)dev + off, len,
                               cudaMemcpyDeviceToHost, st);
    }
    cu.cudaStreamSynchronize(st);
    return (double)bytes / (double)(bench_now_ns() - t0);
}

/* Waits (up to 60 s) for the DRAM arena to be pinned; returns ms waited. */
static double wait_pinned(kvt_store *s, uint64_t since)
{
    for (int i = 0; i < 60000; i++) {
        uint64_t p = bench_stat(s, "dram.cuda_pinned_bytes"), a = bench_stat(s, "dram.arena_bytes");
        if (a && p >= a)
            break;
        usleep(1000);
    }
    return (double)(bench_now_ns() - since) / 1e6;
}

typedef struct bidir_arg {
    kvt_store *s;
    const kvt_key *keys;
    size_t n;
    void **ptrs;
    int calls;
    int put;
    uint64_t bytes;
    int failed;
} bidir_arg;

static void *bidir_main(void *p)
{
    bidir_arg *a = p;
    kvt_io_opts o = {.size = sizeof o, .mem_kind = KVT_MEM_CUDA};
    for (int c = 0; c < a->calls && !a->failed; c++) {
        int got = a->put ? kvt_put(a->s, a->keys, a->n, a->ptrs, &o, NULL)
                         : kvt_get(a->s, a->keys, a->n, a->ptrs, &o, NULL);
        if (got != (int)a->n)
            a->failed = 1;
        if (a->put) /* so the next put copies again; costs about a lookup, counted */
            kvt_remove(a->s, a->keys, a->n);
    }
    return NULL;
}

typedef struct raw_arg {
    void *dev, *host;
    size_t bytes;
    int h2d, calls;
    cudaStream_t st;
} raw_arg;

static void *raw_main(void *p)
{
    raw_arg *a = p;
    for (int c = 0; c < a->calls; c++)
        raw_copy(a->dev, a->host, a->bytes, a->h2d, a->st);
    return NULL;
}

/* Interleaved fragments (fragment f of block i at (f * n + i) * frag), as
 * in layer-separate engine layouts. */
static void frag_ptrs(void **ptrs, char *base, size_t n, size_t frags, size_t frag)
{
    for (size_t i = 0; i < n; i++)
        for (size_t f = 0; f < frags; f++)
            ptrs[i * frags + f] = base + (f * n + i) * frag;
}

static kvt_store *open_store(bench_tier tier, uint64_t block, size_t frags,
                             uint64_t capacity_blocks, int device, const char *path)
{
    bench_store_spec spec = bench_store_spec_default("micro --gpu");
    spec.block_bytes = block;
    spec.frags = (uint32_t)frags;
    if (tier == BENCH_NVME) {
        uint64_t slot;
        if (bench_slot_bytes(block, &slot) == 0)
            spec.tier[BENCH_NVME] = (bench_tier_spec){
                .capacity = capacity_blocks * slot, .path = path, .recreate = 1};
    } else {
        spec.tier[BENCH_DRAM] = (bench_tier_spec){
            .capacity = capacity_blocks * block, .device = device, .has_device = 1};
    }
    kvt_store *s = NULL;
    bench_store_open(&spec, &s);
    return s;
}

/* Put and get medians for one fragment size through `tier`; for DRAM also
 * the raw ceiling and both directions at once. */
static int measure(row *r, const gpu_cfg *g, bench_tier tier, const char *path, char *dev_a, char *dev_b,
                   char *pinned, cudaStream_t st, cudaStream_t st2)
{
    size_t frags = (size_t)(r->block / r->frag), n = (size_t)(g->batch / r->block);
    if (!n)
        n = 1;
    r->blocks_per_call = n;
    size_t bytes = n * (size_t)r->block;
    int calls = (int)(g->calls > 0 ? g->calls : (int64_t)(g->total / bytes));
    if (calls < 3)
        calls = 3;
    kvt_store *s = open_store(tier, r->block, frags, 3 * n + 1, g->device, path);
    if (!s)
        return BENCH_FAILED;
    if (tier == BENCH_DRAM)
        wait_pinned(s, bench_now_ns());
    kvt_key *keys = malloc(2 * n * sizeof *keys);
    void **pa = malloc(n * frags * sizeof *pa), **pb = malloc(n * frags * sizeof *pb);
    bench_samples put = {0}, get = {0}, rd = {0}, rh = {0};
    int rc = BENCH_FAILED;
    if (!keys || !pa || !pb || bench_keys(keys, 2 * n, r->frag * 7 + r->block))
        goto out;
    frag_ptrs(pa, dev_a, n, frags, (size_t)r->frag);
    frag_ptrs(pb, dev_b, n, frags, (size_t)r->frag);
    kvt_io_opts o = {.size = sizeof o, .mem_kind = KVT_MEM_CUDA, .device = g->device};
    /* The get side's blocks, stored once (also the warm-up). */
    if (kvt_put(s, keys + n, n, pb, &o, NULL) != (int)n) {
        fprintf(stderr, "kvtier-bench micro --gpu: warm-up put: %s\n", kvt_last_error());
        goto out;
    }
    for (int c = 0; c < calls; c++) {
        bench_progress("micro --gpu: %" PRIu64 " B fragments, call %d/%d", r->frag, c + 1, calls);
        uint64_t t0 = bench_now_ns();
        int got = kvt_put(s, keys, n, pa, &o, NULL);
        uint64_t t1 = bench_now_ns();
        if (got != (int)n) {
            fprintf(stderr, "kvtier-bench micro --gpu: put stored %d of %zu: %s\n", got, n,
                    got < 0 ? kvt_last_error() : "rejected");
            goto out;
        }
        kvt_remove(s, keys, n); /* untimed: the next put copies again */
        uint64_t t2 = bench_now_ns();
        got = kvt_get(s, keys + n, n, pb, &o, NULL);
        uint64_t t3 = bench_now_ns();
        if (got != (int)n) {
            fprintf(stderr, "kvtier-bench micro --gpu: get copied %d of %zu: %s\n", got, n,
                    got < 0 ? kvt_last_error() : "missing");
            goto out;
        }
        bench_samples_add(&put, (double)bytes / (double)(t1 - t0));
        bench_samples_add(&get, (double)bytes / (double)(t3 - t2));
        if (tier == BENCH_DRAM) {
            bench_samples_add(&rd, raw_copy(dev_a, pinned, bytes, 0, st));
            bench_samples_add(&rh, raw_copy(dev_a, pinned, bytes, 1, st));
        }
    }
    r->put = bench_median(&put);
    r->get = bench_median(&get);
    if (tier == BENCH_DRAM) {
        r->raw_d2h = bench_median(&rd);
        r->raw_h2d = bench_median(&rh);
        /* Both directions at once: puts from one thread while another gets. */
        bidir_arg a = {s, keys, n, pa, calls, 1, 0, 0}, b = {s, keys + n, n, pb, calls, 0, 0, 0};
        pthread_t ta, tb;
        uint64_t t0 = bench_now_ns();
        pthread_create(&ta, NULL, bidir_main, &a);
        pthread_create(&tb, NULL, bidir_main, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        r->bidir = 2.0 * (double)calls * (double)bytes / (double)(bench_now_ns() - t0);
        if (a.failed || b.failed) {
            fprintf(stderr, "kvtier-bench micro --gpu: both directions: a call failed: %s\n",
                    kvt_last_error());
            goto out;
        }
        raw_arg x = {dev_a, pinned, bytes, 0, calls, st};
        raw_arg y = {dev_b, pinned + bytes, bytes, 1, calls, st2};
        t0 = bench_now_ns();
        pthread_create(&ta, NULL, raw_main, &x);
        pthread_create(&tb, NULL, raw_main, &y);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        r->raw_bidir = 2.0 * (double)calls * (double)bytes / (double)(bench_now_ns() - t0);
        r->kernel_bytes = bench_stat(s, "dram.cuda_kernel_bytes");
        r->batch_bytes = bench_stat(s, "dram.cuda_batch_bytes");
        r->ce_bytes = bench_stat(s, "dram.cuda_ce_bytes");
        r->pageable_bytes = bench_stat(s, "dram.cuda_pageable_bytes");
    }
    rc = BENCH_OK;
out:
    bench_samples_free(&put);
    bench_samples_free(&get);
    bench_samples_free(&rd);
    bench_samples_free(&rh);
    free(keys);
    free(pa);
    free(pb);
    kvt_close(s);
    return rc;
}

/* Time to open (and close) a store with a DRAM tier of `bytes`, pinned for
 * the GPU: open returns before pinning ends; both times are reported. */
static int measure_open(uint64_t bytes, int device, double *open_ms, double *pinned_ms,
                        double *close_ms)
{
    char who[64];
    snprintf(who, sizeof who, "micro --gpu (open with %" PRIu64 " B of DRAM)", bytes);
    bench_store_spec spec = bench_dram_spec(who, 2 << 20, bytes);
    spec.tier[BENCH_DRAM].device = device;
    spec.tier[BENCH_DRAM].has_device = 1;
    spec.tier[BENCH_HBM] = (bench_tier_spec){.capacity = 64 << 20, .device = device, .has_device = 1};
    kvt_store *s = NULL;
    uint64_t t0 = bench_now_ns(); /* configuring takes microseconds; opening pins memory */
    int rc = bench_store_open(&spec, &s);
    *open_ms = (double)(bench_now_ns() - t0) / 1e6;
    if (rc)
        return BENCH_FAILED;
    *pinned_ms = wait_pinned(s, t0);
    t0 = bench_now_ns();
    kvt_close(s);
    *close_ms = (double)(bench_now_ns() - t0) / 1e6;
    return BENCH_OK;
}

int bench_micro_gpu(int argc, char **argv)
{
    int gpu = 0, json = 0, no_nvme = 0;
    int64_t device = 0, calls = 0;
    uint64_t total = 2ull << 30, batch = 256ull << 20, block_min = 2ull << 20, open_bytes = 8ull << 30;
    bench_list sizes = {{16 << 10, 64 << 10, 256 << 10, 2 << 20, 16 << 20}, 5};
    bench_list nvme_sizes = {{2 << 20}, 1};
    const char *nvme_path = "kvtier-bench-gpu.kvt";
    const barg spec[] = {
        {"gpu", BARG_BOOL, &gpu, "this subcommand (micro --gpu)"},
        {"device", BARG_INT, &device, "CUDA device (default 0)"},
        {"sizes", BARG_SIZE_LIST, &sizes, "fragment sizes (default 16K,64K,256K,2M,16M)"},
        {"block-bytes", BARG_SIZE, &block_min,
         "block size, or the fragment size where larger (default 2M)"},
        {"batch-bytes", BARG_SIZE, &batch, "bytes per put/get call (default 256M)"},
        {"total-bytes", BARG_SIZE, &total, "bytes per size and direction (default 2G)"},
        {"calls", BARG_INT, &calls, "calls per size and direction (default total/batch)"},
        {"nvme", BARG_STR, &nvme_path, "NVMe tier file for GPU -> NVMe -> GPU (default ./kvtier-bench-gpu.kvt)"},
        {"nvme-sizes", BARG_SIZE_LIST, &nvme_sizes, "fragment sizes through NVMe (default 2M)"},
        {"no-nvme", BARG_BOOL, &no_nvme, "skip GPU -> NVMe -> GPU"},
        {"open-bytes", BARG_SIZE, &open_bytes, "DRAM tier of the open-time run, 0 skips (default 8G)"},
        {"json", BARG_BOOL, &json, "print one JSON object instead of a table"},
        {0},
    };
    int rc = bench_parse_args("micro --gpu", summary, spec, argc, argv);
    if (rc)
        return rc < 0 ? BENCH_OK : rc;
    char why[256];
    if (cu_load(why, sizeof why)) {
        fprintf(stderr, "kvtier-bench micro --gpu: %s\n", why);
        return BENCH_FAILED;
    }
    gpu_cfg g = {(int)device, block_min, total, batch, calls};
    uint64_t maxblock = block_min;
    for (int i = 0; i < sizes.n; i++)
        if (sizes.v[i] > maxblock)
            maxblock = sizes.v[i];
    size_t buf = (size_t)(batch > maxblock ? batch : maxblock);
    char *dev_a, *dev_b, *pinned;
    cudaStream_t st, st2;
    CK(cu.cudaSetDevice(g.device));
    CK(cu.cudaMalloc((void **)&dev_a, buf));
    CK(cu.cudaMalloc((void **)&dev_b, buf));
    CK(cu.cudaMemset(dev_a, 0x5a, buf));
    CK(cu.cudaMemset(dev_b, 0xa5, buf));
    CK(cu.cudaHostAlloc((void **)&pinned, 2 * buf, cudaHostAllocDefault));
    memset(pinned, 1, 2 * buf);
    CK(cu.cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cu.cudaStreamCreateWithFlags(&st2, cudaStreamNonBlocking));

    row rows[BENCH_LIST_MAX], nrows[BENCH_LIST_MAX];
    memset(rows, 0, sizeof rows);
    memset(nrows, 0, sizeof nrows);
    rc = BENCH_OK;
    for (int i = 0; i < sizes.n && rc == BENCH_OK; i++) {
        rows[i].frag = sizes.v[i];
        rows[i].block = sizes.v[i] > block_min ? sizes.v[i] : block_min;
        rows[i].block -= rows[i].block % rows[i].frag;
        rc = measure(&rows[i], &g, BENCH_DRAM, NULL, dev_a, dev_b, pinned, st, st2);
    }
    for (int i = 0; !no_nvme && i < nvme_sizes.n && rc == BENCH_OK; i++) {
        nrows[i].frag = nvme_sizes.v[i];
        nrows[i].block = nvme_sizes.v[i] > block_min ? nvme_sizes.v[i] : block_min;
        nrows[i].block -= nrows[i].block % nrows[i].frag;
        rc = measure(&nrows[i], &g, BENCH_NVME, nvme_path, dev_a, dev_b, pinned, st, st2);
        unlink(nvme_path);
    }
    double open_ms = 0, pinned_ms = 0, close_ms = 0;
    if (rc == BENCH_OK && open_bytes)
        rc = measure_open(open_bytes, g.device, &open_ms, &pinned_ms, &close_ms);
    bench_progress_done();
    cu.cudaStreamDestroy(st);
    cu.cudaStreamDestroy(st2);
    cu.cudaFree(dev_a);
    cu.cudaFree(dev_b);
    cu.cudaFreeHost(pinned);
    if (rc != BENCH_OK)
        return rc;

    char bus[32] = "?";
    cu.cudaDeviceGetPCIBusId(bus, sizeof bus, g.device);
    const char *method = getenv("KVTIER_CUDA_COPY");
    if (json) {
        bench_json j;
        bench_json_init(&j, stdout);
        bench_json_object(&j, NULL);
        bench_json_header(&j, "micro-gpu");
        bench_json_object(&j, "config");
        bench_json_i64(&j, "device", g.device);
        bench_json_str(&j, "pci_bus_id", bus);
        bench_json_str(&j, "copy_method", method ? method : "auto");
        bench_json_u64(&j, "batch_bytes", batch);
        bench_json_u64(&j, "total_bytes", total);
        bench_json_str(&j, "raw", "cudaMemcpyAsync, 16 MiB pieces, pinned host memory");
        bench_json_str(&j, "ratio_is", "kvtier's GB/s / the link's best (raw: 16 MiB pieces, not "
                                       "the row's fragments): what of the link the store uses, "
                                       "not a loop doing the same copies");
        bench_json_str(&j, "statistic", "median over calls (GB/s = 1e9 bytes/s)");
        bench_json_end_object(&j);
        bench_json_array(&j, "dram");
        for (int i = 0; i < sizes.n; i++) {
            const row *r = &rows[i];
            bench_json_object(&j, NULL);
            bench_json_u64(&j, "fragment_bytes", r->frag);
            bench_json_u64(&j, "block_bytes", r->block);
            bench_json_u64(&j, "blocks_per_call", r->blocks_per_call);
            bench_json_num(&j, "put_gb_per_s", r->put);
            bench_json_num(&j, "raw_d2h_gb_per_s", r->raw_d2h);
            bench_json_num(&j, "put_ratio", r->put / r->raw_d2h);
            bench_json_num(&j, "get_gb_per_s", r->get);
            bench_json_num(&j, "raw_h2d_gb_per_s", r->raw_h2d);
            bench_json_num(&j, "get_ratio", r->get / r->raw_h2d);
            bench_json_num(&j, "both_gb_per_s", r->bidir);
            bench_json_num(&j, "raw_both_gb_per_s", r->raw_bidir);
            bench_json_u64(&j, "kernel_bytes", r->kernel_bytes);
            bench_json_u64(&j, "batch_bytes", r->batch_bytes);
            bench_json_u64(&j, "ce_bytes", r->ce_bytes);
            bench_json_u64(&j, "pageable_bytes", r->pageable_bytes);
            bench_json_end_object(&j);
        }
        bench_json_end_array(&j);
        bench_json_array(&j, "nvme");
        for (int i = 0; !no_nvme && i < nvme_sizes.n; i++) {
            bench_json_object(&j, NULL);
            bench_json_u64(&j, "fragment_bytes", nrows[i].frag);
            bench_json_u64(&j, "block_bytes", nrows[i].block);
            bench_json_num(&j, "put_gb_per_s", nrows[i].put);
            bench_json_num(&j, "get_gb_per_s", nrows[i].get);
            bench_json_end_object(&j);
        }
        bench_json_end_array(&j);
        bench_json_object(&j, "open");
        bench_json_u64(&j, "dram_bytes", open_bytes);
        bench_json_num(&j, "open_ms", open_ms);
        bench_json_num(&j, "pinned_ms", pinned_ms);
        bench_json_num(&j, "close_ms", close_ms);
        bench_json_num(&j, "open_target_ms", 500);
        bench_json_end_object(&j);
        bench_json_end_object(&j);
        fputc('\n', stdout);
        return BENCH_OK;
    }
    bench_print_header(stdout, "micro --gpu: GPU memory <-> store, next to raw pinned copies");
    printf("device %d (%s), small-fragment method: %s; GB/s = 1e9 B/s, medians\n", g.device, bus,
           method ? method : "auto");
    printf("ratio: kvtier over the link's best (raw: 16 MiB pinned pieces, not the row's\n"
           "fragments): how much of the link the store uses, not a loop doing its copies\n\n");
    static const char *const head[] = {"fragment", "put",  "raw d2h", "ratio", "get",
                                       "raw h2d",  "ratio", "both", "raw both", "path"};
    bench_table t;
    bench_table_init(&t, 10, head, "rrrrrrrrrl");
    for (int i = 0; i < sizes.n; i++) {
        const row *r = &rows[i];
        char b[32];
        bench_table_cell(&t, "%s", bench_fmt_bytes(r->frag, b, sizeof b));
        bench_table_cell(&t, "%.1f", r->put);
        bench_table_cell(&t, "%.1f", r->raw_d2h);
        bench_table_cell(&t, "%.2f", r->put / r->raw_d2h);
        bench_table_cell(&t, "%.1f", r->get);
        bench_table_cell(&t, "%.1f", r->raw_h2d);
        bench_table_cell(&t, "%.2f", r->get / r->raw_h2d);
        bench_table_cell(&t, "%.1f", r->bidir);
        bench_table_cell(&t, "%.1f", r->raw_bidir);
        bench_table_cell(&t, "%s", r->kernel_bytes ? "kernel"
                                   : r->batch_bytes ? "batch"
                                                    : "copy engines");
    }
    bench_table_print(&t, stdout, 2);
    bench_table_free(&t);
    for (int i = 0; !no_nvme && i < nvme_sizes.n; i++) {
        char b[32];
        printf("\nGPU -> NVMe -> GPU, %s fragments: put %.2f GB/s, get %.2f GB/s (%s)\n",
               bench_fmt_bytes(nrows[i].frag, b, sizeof b), nrows[i].put, nrows[i].get, nvme_path);
    }
    if (open_bytes) {
        char b[32];
        printf("\nopen with a %s pinned DRAM tier: %.0f ms (target <= 500), pinned after %.0f ms, "
               "close %.0f ms\n",
               bench_fmt_bytes(open_bytes, b, sizeof b), open_ms, pinned_ms, close_ms);
    }
    return BENCH_OK;
}

#endif
