/* client.h — a connected store (client.c: the connection and the calls;
 * client_async.c: tickets, run on a thread of the client's own). */
#ifndef KVT_SHARED_CLIENT_H
#define KVT_SHARED_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cuda.h"
#include "kvtier.h"

typedef struct kvt__job kvt__job;

typedef struct kvt__client {
    uint32_t magic; /* KVT_CLIENT_MAGIC; first, where a store has its own */
    int fd;
    _Atomic int dead; /* the server went away: every call KVT_ECLOSED */
    uint64_t block_bytes;
    uint32_t frags;
    uint32_t nslots;   /* staging blocks */
    uint32_t max_keys; /* per request */
    uint8_t *staging;
    size_t staging_bytes;
    /* Protocol v2: the server's shared DRAM arena, where puts and gets copy
     * blocks directly (NULL: the staging path only). zc: RESERVE/HOLD replies. */
    uint8_t *arena;
    size_t arena_bytes;
    uint8_t *zc;
    struct kvt__copier *copier; /* the arena copies, split as a store's DRAM tier splits them */
    /* KVT_MEM_CUDA calls (CUDA builds): the arena mapping as a CUDA region,
     * announced and pinned at the first device call (client_io.c), removed
     * before the unmap; what those copies moved, by method. */
    kvt__cuda_region *cuda_region;
    int cuda_region_added;
    kvt__cuda_counters cuda;
    int ntiers; /* the served store's tier instances, as the server names them */
    char tier_name[KVT_MAX_TIERS][KVT_TIER_NAME_MAX];
    int32_t tier_available[KVT_MAX_TIERS];

    /* One request at a time: it uses the connection's staging slots. */
    pthread_mutex_t lock;
    uint32_t seq;
    uint8_t *in, *out; /* message buffers */

    /* Tickets (client_async.c). */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;    /* a job queued, or stopping */
    pthread_cond_t qdone;    /* a job done */
    kvt__job *queue, *queue_tail; /* waiting to run, in order */
    kvt__job *jobs;          /* every job not yet consumed */
    uint32_t inflight;
    uint64_t next_ticket;
    int stopping;
    int started;
    pthread_t worker;
    int efd;
} kvt__client;

/* One round trip (client.c): request op with keys (and staging slots),
 * reply payload copied to res (res_len bytes expected exactly, except
 * STATS: *stats points into the reply). Returns the server's result; its
 * message becomes this thread's. Caller holds c->lock. */
int kvt__client_rpc(kvt__client *c, uint16_t op, uint32_t n, uint32_t arg0, uint32_t arg1,
                    const kvt_key *keys, const uint32_t *slots, void *res, size_t res_len,
                    const uint8_t **stats, size_t *stats_len, uint32_t *stats_n, const char *fn);
/* Marks the connection dead (the server went away, or can't be trusted):
 * KVT_ECLOSED from here on. */
int kvt__client_gone(kvt__client *c, const char *fn);

/* Starts the ticket thread and eventfd; stops them (running what is queued). */
int kvt__client_async_start(kvt__client *c);
void kvt__client_async_stop(kvt__client *c);
/* Queues an asynchronous put or get. */
int kvt__client_submit(kvt__client *c, int is_put, const kvt_key *keys, size_t n,
                       void *const *ptrs, const kvt_io_opts *o, kvt_ticket *ticket);
/* The synchronous put/get the ticket thread runs. */
int kvt__client_io(kvt__client *c, int is_put, const kvt_key *keys, size_t n, void *const *ptrs,
                   const kvt_io_opts *o);

#endif
