/*
 * test_multiprocess.c — one kvtierd, several client processes (fork), as on
 * a node: four put/get clients on a shared pool of keys checking every byte
 * they get back (a block's bytes follow from its key, so any client can
 * check any block), a scheduler-like client doing lookups with leases only,
 * clients SIGKILLed at random moments and started again, and the server
 * SIGKILLed and restarted: blocks made durable before are there again (NVMe
 * warm), clients reconnect. Every get with status 0 must return the right
 * bytes. A plain program (no Criterion): exit 0 pass, 1 fail, 77 skip.
 *   test-shared-multiprocess [--seconds N]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "kvtier.h"
#include "spawn.h"

#define BLOCK (16u * 1024u)
#define FRAGS 2u
#define POOL 256u
#define SENTINELS 32u
#define WORKERS 4
#define BATCH 8u

static char dir[256], sock[320], nvme_path[320];
static int have_nvme;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void key_of(uint32_t i, kvt_key *k)
{
    memset(k, 0, sizeof *k);
    uint64_t s = 0x6b76746965720000ull + i, a = next_rand(&s), b = next_rand(&s);
    memcpy(k->b, &a, 8);
    memcpy(k->b + 8, &b, 8);
}

static void fill(uint8_t *p, const kvt_key *k)
{
    uint64_t s;
    memcpy(&s, k->b + 3, 8);
    for (size_t i = 0; i < BLOCK; i += 8) {
        uint64_t v = next_rand(&s);
        memcpy(p + i, &v, 8);
    }
}

static pid_t start_server(void)
{
    char nvme_bytes[32];
    uint64_t slot = 0;
    if (kvt_slot_bytes("nvme", BLOCK, &slot) == 0)
        snprintf(nvme_bytes, sizeof nvme_bytes, "%llu", (unsigned long long)(slot * 512));
    const char *with_nvme[] = {"--block-bytes", "16K", "--frags", "2", "--dram", "512K",
                               "--nvme", nvme_bytes, "--nvme-path", nvme_path,
                               "--nvme-recreate", "--close-flush-ms", "2000", NULL};
    const char *dram_only[] = {"--block-bytes", "16K", "--frags", "2", "--dram", "2M", NULL};
    if (have_nvme) {
        pid_t pid = kvtierd_start(sock, with_nvme);
        if (pid > 0 || have_nvme == 1)
            return pid;
        fprintf(stderr, "multiprocess: kvtierd with NVMe did not start here; DRAM only\n");
        have_nvme = 0;
    }
    return kvtierd_start(sock, dram_only);
}

static kvt_store *connect_until(double deadline)
{
    kvt_store *s = NULL;
    while (now_s() < deadline) {
        if (kvt_connect(sock, NULL, &s) == 0)
            return s;
        usleep(20000);
    }
    return NULL;
}

/* A put/get client: random batches from the pool; bytes checked. */
static int worker(uint64_t seed, double deadline)
{
    uint8_t *buf = malloc((size_t)BATCH * BLOCK);
    void *ptrs[BATCH * FRAGS];
    for (unsigned i = 0; i < BATCH * FRAGS; i++)
        ptrs[i] = buf + (size_t)i * (BLOCK / FRAGS);
    kvt_store *s = connect_until(deadline);
    long gets = 0, hits = 0, wrong = 0;
    while (s && now_s() < deadline) {
        uint32_t n = 1 + (uint32_t)rand_below(&seed, BATCH);
        kvt_key k[BATCH];
        for (uint32_t i = 0; i < n; i++)
            key_of(SENTINELS + (uint32_t)rand_below(&seed, POOL), &k[i]);
        int32_t st[BATCH];
        kvt_io_opts o = {.size = sizeof o, .status = st};
        int rc;
        if (rand_below(&seed, 2)) {
            for (uint32_t i = 0; i < n; i++)
                fill(buf + (size_t)i * BLOCK, &k[i]);
            rc = kvt_put(s, k, n, ptrs, &o, NULL);
        } else {
            memset(buf, 0xee, (size_t)n * BLOCK);
            rc = kvt_get(s, k, n, ptrs, &o, NULL);
            gets += n;
            if (rc >= 0) {
                uint8_t want[BLOCK];
                for (uint32_t i = 0; i < n; i++) {
                    if (st[i])
                        continue;
                    hits++;
                    fill(want, &k[i]);
                    if (memcmp(want, buf + (size_t)i * BLOCK, BLOCK))
                        wrong++;
                }
            }
        }
        if (rc == KVT_ECLOSED) {
            kvt_close(s);
            s = connect_until(deadline);
        } else if (rc < 0) {
            fprintf(stderr, "worker: %s\n", kvt_last_error());
            return 1;
        }
    }
    kvt_close(s);
    free(buf);
    fprintf(stderr, "worker %d: %ld blocks asked, %ld hits, %ld wrong\n", (int)getpid(), gets,
            hits, wrong);
    return wrong ? 1 : 0;
}

/* The scheduler: how many leading blocks are cached, leases taken and
 * given back, never a put or get. */
static int scheduler(uint64_t seed, double deadline)
{
    kvt_store *s = connect_until(deadline);
    while (s && now_s() < deadline) {
        kvt_key k[16];
        uint32_t first = SENTINELS + (uint32_t)rand_below(&seed, POOL - 16);
        for (uint32_t i = 0; i < 16; i++)
            key_of(first + i, &k[i]);
        int rc = kvt_lookup(s, k, 16, NULL, 200);
        if (rc > 0) {
            int32_t st[16];
            int released = kvt_release(s, k, (size_t)rc, st);
            if (released >= 0 && released != rc) {
                /* a lease may run out first, never more released than taken */
                if (released > rc)
                    return 1;
            }
        }
        if (rc == KVT_ECLOSED) {
            kvt_close(s);
            s = connect_until(deadline);
        } else if (rc < 0) {
            fprintf(stderr, "scheduler: %s\n", kvt_last_error());
            return 1;
        }
    }
    kvt_close(s);
    return 0;
}

/* Puts the sentinels and makes them durable (a separate process, so that
 * the test's own process stays without threads for its forks). */
static int sentinels(int check)
{
    kvt_store *s = connect_until(now_s() + 10);
    if (!s)
        return 1;
    uint8_t *buf = malloc((size_t)SENTINELS * BLOCK);
    void *ptrs[SENTINELS * FRAGS];
    kvt_key k[SENTINELS];
    for (uint32_t i = 0; i < SENTINELS; i++) {
        key_of(i, &k[i]);
        fill(buf + (size_t)i * BLOCK, &k[i]);
    }
    for (unsigned i = 0; i < SENTINELS * FRAGS; i++)
        ptrs[i] = buf + (size_t)i * (BLOCK / FRAGS);
    int32_t st[SENTINELS];
    kvt_io_opts o = {.size = sizeof o, .status = st, .flags = check ? 0 : KVT_IO_DURABLE};
    int rc;
    if (!check) {
        rc = kvt_put(s, k, SENTINELS, ptrs, &o, NULL);
    } else {
        memset(buf, 0, (size_t)SENTINELS * BLOCK);
        rc = kvt_get(s, k, SENTINELS, ptrs, &o, NULL);
        uint8_t want[BLOCK];
        for (uint32_t i = 0; rc == (int)SENTINELS && i < SENTINELS; i++) {
            fill(want, &k[i]);
            if (memcmp(want, buf + (size_t)i * BLOCK, BLOCK))
                rc = -1000;
        }
    }
    if (rc != (int)SENTINELS)
        fprintf(stderr, "sentinels (%s): %d: %s\n", check ? "check" : "put", rc, kvt_last_error());
    kvt_close(s);
    free(buf);
    return rc == (int)SENTINELS ? 0 : 1;
}

static pid_t spawn(int (*fn)(uint64_t, double), uint64_t seed, double deadline)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(seed, deadline));
    return pid;
}

static int run_child(int check)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(sentinels(check));
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(int argc, char **argv)
{
    double seconds = 4;
    if (argc == 3 && !strcmp(argv[1], "--seconds"))
        seconds = atof(argv[2]);
    uint64_t seed = test_seed("multiprocess");
    signal(SIGPIPE, SIG_IGN);
    scratch_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/kv.sock", dir);
    snprintf(nvme_path, sizeof nvme_path, "%s/kv.kvt", dir);
    uint64_t slot;
    have_nvme = kvt_slot_bytes("nvme", BLOCK, &slot) == 0 ? 2 : 0; /* 2: try, fall back */
    pid_t server = start_server();
    if (server <= 0) {
        fprintf(stderr, "multiprocess: kvtierd did not start\n");
        return 1;
    }
    int fail = 0;
    if (have_nvme && run_child(0)) {
        fprintf(stderr, "multiprocess: could not store the sentinels\n");
        fail = 1;
    }
    double t0 = now_s(), deadline = t0 + seconds;
    pid_t kids[WORKERS + 1];
    for (int i = 0; i < WORKERS; i++)
        kids[i] = spawn(worker, next_rand(&seed), deadline);
    kids[WORKERS] = spawn(scheduler, next_rand(&seed), deadline);
    int kills = 0, server_killed = 0;
    while (now_s() < deadline - 0.5) {
        usleep(50000 + (useconds_t)rand_below(&seed, 200000));
        double t = now_s() - t0;
        if (!server_killed && t > seconds / 2) {
            int st;
            if (waitpid(server, &st, WNOHANG) == server) { /* died (a sanitizer report?) */
                fprintf(stderr, "multiprocess: kvtierd died on its own (status %#x)\n", st);
                fail = 1;
                server = -1;
                break;
            }
            kvtierd_stop(server, SIGKILL);
            server_killed = 1;
            usleep(100000);
            if ((server = start_server()) <= 0) {
                fprintf(stderr, "multiprocess: kvtierd did not restart\n");
                fail = 1;
                break;
            }
            if (have_nvme && run_child(1)) {
                fprintf(stderr, "multiprocess: durable blocks lost over a server restart\n");
                fail = 1;
            }
            continue;
        }
        int victim = (int)rand_below(&seed, WORKERS + 1);
        kill(kids[victim], SIGKILL);
        waitpid(kids[victim], NULL, 0);
        kills++;
        kids[victim] = spawn(victim == WORKERS ? scheduler : worker, next_rand(&seed), deadline);
    }
    for (int i = 0; i <= WORKERS; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "multiprocess: client %d failed (status %#x)\n", i, st);
            fail = 1;
        }
    }
    if (server > 0) {
        int st = kvtierd_stop(server, SIGTERM);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "multiprocess: kvtierd exit status %#x on SIGTERM\n", st);
            fail = 1;
        }
    }
    scratch_remove(dir);
    fprintf(stderr, "multiprocess: %d clients killed, server %s, NVMe %s: %s\n", kills,
            server_killed ? "killed and restarted" : "not killed", have_nvme ? "on" : "off",
            fail ? "FAIL" : "ok");
    return fail;
}
