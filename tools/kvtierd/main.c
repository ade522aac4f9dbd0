/*
 * kvtierd — serves one kvtier store to every process on a node
 * (docs/shared.md). Foreground, logs to stderr, exits cleanly on SIGTERM or
 * SIGINT: stops serving (releasing every client's pins), then closes the
 * store, which writes DRAM-only blocks down to NVMe and flushes it.
 *
 *   kvtierd --socket /run/kvtier.sock --block-bytes 2M --dram 8G \
 *           [--nvme 64G --nvme-path /data/kv.kvt] [--metrics-port 9400]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvtier.h"
#include "metrics.h"

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ kvtierd: ", when, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kvtierd --socket PATH --block-bytes N [options]\n"
            "  --socket PATH        unix socket to serve on (mode 0600)\n"
            "  --block-bytes N      bytes per block (K/M/G suffixes)\n"
            "  --frags N            fragments per block (default 1)\n"
            "  --block-tokens N     tokens per block (default 16)\n"
            "  --dram N             DRAM tier capacity in bytes\n"
            "  --dram-shared        DRAM arena in a memfd that clients copy blocks into and\n"
            "                       out of themselves (zero copy, protocol v2; the default\n"
            "                       without --tenant-uid)\n"
            "  --dram-private       DRAM arena private to kvtierd: clients go through staging\n"
            "  --nvme N             NVMe tier capacity in bytes (a multiple of the slot size)\n"
            "  --nvme-path PATH     NVMe tier file\n"
            "  --nvme-recreate      overwrite an NVMe file of another format or geometry\n"
            "  --policy NAME        eviction policy of every tier (prefix, lru, s3fifo, sieve)\n"
            "  --workers N          store worker threads\n"
            "  --close-flush-ms N   time allowed at exit to write DRAM blocks down to NVMe\n"
            "  --staging-blocks N   staging blocks per client (default 64, at most 256 MiB)\n"
            "  --max-clients N      clients at once (default 256)\n"
            "  --group GID          let this group connect too (socket 0660)\n"
            "  --tenant-uid         keep each uid's blocks apart (keys folded with the uid)\n"
            "  --metrics-port PORT  serve Prometheus metrics on http://127.0.0.1:PORT/metrics\n"
            "  --help\n");
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    uint64_t mul = 1;
    switch (*end) {
    case 'K': case 'k': mul = 1ull << 10; end++; break;
    case 'M': case 'm': mul = 1ull << 20; end++; break;
    case 'G': case 'g': mul = 1ull << 30; end++; break;
    case 'T': case 't': mul = 1ull << 40; end++; break;
    default: break;
    }
    if (*end || (v && mul > UINT64_MAX / v))
        return -1;
    *out = v * mul;
    return 0;
}

typedef struct args {
    const char *socket, *nvme_path, *policy;
    uint64_t block_bytes, frags, block_tokens, dram, nvme, workers, close_flush_ms;
    uint64_t staging_blocks, max_clients, group, metrics_port;
    int has_group, has_workers, has_flush, recreate, tenant_uid, dram_private;
} args;

static int parse_args(int argc, char **argv, args *a)
{
    enum { O_SOCKET = 256, O_BLOCK, O_FRAGS, O_TOKENS, O_DRAM, O_NVME, O_NVME_PATH, O_RECREATE,
           O_POLICY, O_WORKERS, O_FLUSH, O_STAGING, O_MAXCL, O_GROUP, O_METRICS, O_HELP,
           O_TENANT, O_DRAM_SHARED, O_DRAM_PRIVATE };
    static const struct option opts[] = {
        {"socket", required_argument, 0, O_SOCKET}, {"block-bytes", required_argument, 0, O_BLOCK},
        {"frags", required_argument, 0, O_FRAGS}, {"block-tokens", required_argument, 0, O_TOKENS},
        {"dram", required_argument, 0, O_DRAM}, {"nvme", required_argument, 0, O_NVME},
        {"nvme-path", required_argument, 0, O_NVME_PATH}, {"nvme-recreate", no_argument, 0, O_RECREATE},
        {"policy", required_argument, 0, O_POLICY}, {"workers", required_argument, 0, O_WORKERS},
        {"close-flush-ms", required_argument, 0, O_FLUSH},
        {"staging-blocks", required_argument, 0, O_STAGING},
        {"max-clients", required_argument, 0, O_MAXCL}, {"group", required_argument, 0, O_GROUP},
        {"metrics-port", required_argument, 0, O_METRICS}, {"help", no_argument, 0, O_HELP},
        {"tenant-uid", no_argument, 0, O_TENANT},
        {"dram-shared", no_argument, 0, O_DRAM_SHARED},
        {"dram-private", no_argument, 0, O_DRAM_PRIVATE},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        uint64_t *num = NULL;
        switch (o) {
        case O_SOCKET: a->socket = optarg; break;
        case O_NVME_PATH: a->nvme_path = optarg; break;
        case O_POLICY: a->policy = optarg; break;
        case O_RECREATE: a->recreate = 1; break;
        case O_TENANT: a->tenant_uid = 1; break;
        case O_DRAM_SHARED: a->dram_private = 0; break;
        case O_DRAM_PRIVATE: a->dram_private = 1; break;
        case O_BLOCK: num = &a->block_bytes; break;
        case O_FRAGS: num = &a->frags; break;
        case O_TOKENS: num = &a->block_tokens; break;
        case O_DRAM: num = &a->dram; break;
        case O_NVME: num = &a->nvme; break;
        case O_WORKERS: num = &a->workers; a->has_workers = 1; break;
        case O_FLUSH: num = &a->close_flush_ms; a->has_flush = 1; break;
        case O_STAGING: num = &a->staging_blocks; break;
        case O_MAXCL: num = &a->max_clients; break;
        case O_GROUP: num = &a->group; a->has_group = 1; break;
        case O_METRICS: num = &a->metrics_port; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (num && parse_size(optarg, num)) {
            logf_("not a number: --%s %s", opts[o - O_SOCKET].name, optarg);
            return -1;
        }
    }
    if (optind < argc || !a->socket || !a->block_bytes) {
        usage(stderr);
        return -1;
    }
    if (a->metrics_port > 65535 || a->group > UINT32_MAX || a->staging_blocks > UINT32_MAX ||
        a->max_clients > UINT32_MAX) {
        logf_("an option is out of range");
        return -1;
    }
    return 0;
}

/* The setters, each checked, naming the option that failed. */
#define SET(call, what)                                                         \
    do {                                                                        \
        int rc_ = (call);                                                       \
        if (rc_) {                                                              \
            logf_("%s: %s", what, kvt_last_error());                            \
            kvt_config_free(cfg);                                               \
            return rc_;                                                         \
        }                                                                       \
    } while (0)

static int open_store(const args *a, kvt_store **out)
{
    kvt_config *cfg;
    if (kvt_config_new(&cfg)) {
        logf_("config: %s", kvt_last_error());
        return -1;
    }
    SET(kvt_config_set(cfg, KVT_OPT_BLOCK_BYTES, (int64_t)a->block_bytes), "--block-bytes");
    if (a->frags)
        SET(kvt_config_set(cfg, KVT_OPT_FRAGS, (int64_t)a->frags), "--frags");
    if (a->block_tokens)
        SET(kvt_config_set(cfg, KVT_OPT_BLOCK_TOKENS, (int64_t)a->block_tokens), "--block-tokens");
    if (a->has_workers)
        SET(kvt_config_set(cfg, KVT_OPT_WORKERS, (int64_t)a->workers), "--workers");
    if (a->has_flush)
        SET(kvt_config_set(cfg, KVT_OPT_CLOSE_FLUSH_MS, (int64_t)a->close_flush_ms),
            "--close-flush-ms");
    /* Tiers, fastest first: DRAM, then NVMe (docs/tiers.md). */
    if (a->dram) {
        int t = kvt_config_add_tier(cfg, "dram", NULL);
        SET(t < 0 ? t : 0, "--dram");
        SET(kvt_config_tier_set(cfg, t, "capacity", (int64_t)a->dram), "--dram");
        /* Tenants never get the arena (one would read the others' blocks):
         * no reason to share it then. */
        if (!a->dram_private && !a->tenant_uid)
            SET(kvt_config_tier_set(cfg, t, "shared", 1), "--dram-shared");
        if (a->policy)
            SET(kvt_config_tier_set_str(cfg, t, "policy", a->policy), "--policy");
    }
    if (a->nvme) {
        int t = kvt_config_add_tier(cfg, "nvme", NULL);
        SET(t < 0 ? t : 0, "--nvme");
        SET(kvt_config_tier_set(cfg, t, "capacity", (int64_t)a->nvme), "--nvme");
        if (a->nvme_path)
            SET(kvt_config_tier_set_str(cfg, t, "path", a->nvme_path), "--nvme-path");
        if (a->recreate)
            SET(kvt_config_tier_set(cfg, t, "recreate", 1), "--nvme-recreate");
        if (a->policy)
            SET(kvt_config_tier_set_str(cfg, t, "policy", a->policy), "--policy");
    }
    int rc = kvt_open(cfg, out);
    if (rc)
        logf_("opening the store: %s", kvt_last_error());
    kvt_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    args a;
    if (parse_args(argc, argv, &a))
        return 2;
    /* Signals are taken by sigwait below: blocked before any thread starts,
     * so the library's threads inherit the mask and none runs a handler. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    kvt_store *store;
    if (open_store(&a, &store))
        return 1;
    kvt_serve_opts so = {.size = sizeof so,
                         .flags = (a.has_group ? KVT_SERVE_GROUP : 0) |
                                  (a.tenant_uid ? KVT_SERVE_TENANT_UID : 0),
                         .gid = (uint32_t)a.group,
                         .staging_blocks = (uint32_t)a.staging_blocks,
                         .max_clients = (uint32_t)a.max_clients};
    kvt_server *srv;
    if (kvt_serve(store, a.socket, &so, &srv)) {
        logf_("serving %s: %s", a.socket, kvt_last_error());
        kvt_close(store);
        return 1;
    }
    kvtierd_metrics *metrics = NULL;
    if (a.metrics_port) {
        char err[256];
        metrics = kvtierd_metrics_start(store, srv, (uint16_t)a.metrics_port, err, sizeof err);
        if (!metrics) {
            logf_("metrics on 127.0.0.1:%u: %s", (unsigned)a.metrics_port, err);
            kvt_serve_stop(srv);
            kvt_close(store);
            return 1;
        }
        logf_("metrics on http://127.0.0.1:%u/metrics", (unsigned)a.metrics_port);
    }
    logf_("serving %s: blocks of %llu bytes, DRAM %llu bytes, NVMe %llu bytes%s%s (pid %d)",
          a.socket, (unsigned long long)a.block_bytes, (unsigned long long)a.dram,
          (unsigned long long)a.nvme, a.nvme_path ? " at " : "", a.nvme_path ? a.nvme_path : "",
          (int)getpid());

    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
        logf_("SIGHUP: nothing to reload; SIGTERM stops");
    logf_("%s: stopping", strsignal(sig));
    kvtierd_metrics_stop(metrics);
    kvt_serve_stop(srv);
    int rc = kvt_close(store);
    if (rc)
        logf_("closing the store: %s", kvt_last_error());
    else
        logf_("store closed; bye");
    return rc ? 1 : 0;
}
