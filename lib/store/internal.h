/* internal.h — what the files of lib/store/ share: constants, the types of
 * put runs and write-downs, and the helpers one file defines for the others.
 * Not part of the store's interface to the rest of the library (store.h). */
#ifndef KVT_STORE_INTERNAL_H
#define KVT_STORE_INTERNAL_H

#include "store.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "cuda.h"
#include "error.h"
#include "store/events.h"
#include "executor.h"
#include "killpoint.h"
#include "kvt_build_config.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
/* How long a slot request waits for blocks that are only in flight (being
 * read, filled or copied by another thread) before calling the tier full. */
#define MAX_SLOT_WAIT_NS (1000 * NS_PER_MS)

#define CNT(p, field) atomic_fetch_add_explicit(&(p)->field, 1, memory_order_relaxed)
#define ADD(p, field, v) atomic_fetch_add_explicit(&(p)->field, (v), memory_order_relaxed)

/* unref_read's `read` for a holder that did not read the copy. */
#define NOT_READ 1

/* kvt__leave()'s `demoted` when the caller demoted the block (demote.c). */
#define LEFT_DEMOTED 2

/* Up to this many victims are evicted, and demoted in one write to the tier
 * below, per round of take_slots. */
#define VICTIM_BATCH 64

/* The victims of a run of a put's items, demoted in one batch (one write
 * to the tier below for up to VICTIM_BATCH of them, where one at a time made
 * demotion a fifth of the NVMe tier's speed) on the store's demotion
 * executor while the put copies its previous run, or on the put's thread. */
typedef struct demotion {
    kvt__task task; /* first: the executor hands it back */
    kvt_store *s;
    int tier;
    size_t k, start, end; /* victims; the items [start, end) they make room for */
    uint32_t ids[VICTIM_BATCH], slots[VICTIM_BATCH];
    kvt__group done; /* the task, while posted */
    int posted;
} demotion;

typedef struct put_item {
    uint32_t id;
    uint32_t slot;
    uint32_t victim; /* entry still LEAVING `slot`, to demote first, or KVT_NO_ENTRY */
    size_t index;    /* in the caller's arrays */
} put_item;

/* A put's items in runs: each run's victims are demoted while the put
 * copies the previous run into the slots its victims left, so the copies
 * and the tier below's writes overlap (docs/architecture.md). */
typedef struct put_runs {
    kvt_store *s;
    int p;
    put_item *items;
    kvt_xfer *x;
    kvt_mem_kind mem;
    int32_t *status;
    int promoting;    /* a get's promotion, not a put */
    size_t per_run;   /* victims that close a run */
    size_t m;         /* items gathered */
    size_t start;     /* first item of the run being gathered */
    size_t victims;   /* in it so far */
    demotion d[2];    /* the run being demoted, and the one before it */
    int cur;          /* d[cur] is the last run started */
    int have_prev;    /* d[!cur] still to settle and copy */
    int stored;
    /* A reservation (reserve.c): settled items go here, unwritten and still
     * FILLING, instead of being written and published; NULL for a put. */
    put_item *kept;
    size_t nkept;
} put_runs;

/* Puts in progress by issue sequence, and removes' tombstones (remove.c). */
typedef struct kvt__pending {
    uint64_t seq;
    uint64_t count;
} kvt__pending;

typedef struct kvt__tomb {
    uint32_t id;
    uint64_t seq;
    kvt_key key;
} kvt__tomb;

/* Tombstones at most; a remove that would leave more waits for older puts. */
#define TOMB_CAP 4096

/* A block being written down to the persistent tier (flush.c). */
typedef struct down_item {
    uint32_t id;
    int src;
    uint32_t from;
    size_t index; /* in the caller's keys, or SIZE_MAX */
    kvt_key key;
} down_item;

/* Blocks per tier write. Small blocks need large batches: the device idles
 * while a batch's last writes drain, before the next batch starts. */
#define DOWN_BATCH 512

/* A write-down batch: the claimed items and what their one tier write
 * needs (on the heap: 50 KiB). */
typedef struct down_work {
    down_item it[DOWN_BATCH];
    kvt_xfer x[DOWN_BATCH];
    void *ptr[DOWN_BATCH];
    uint32_t to[DOWN_BATCH];
    int32_t st[DOWN_BATCH];
    size_t at[DOWN_BATCH];
} down_work;

/* entry.c */
uint32_t kvt__rel_ms(const kvt_store *s, uint64_t now);
uint32_t kvt__rel_s(const kvt_store *s, uint64_t now);
int kvt__pinned(kvt_store *s, kvt_entry *e, uint64_t now);
int kvt__retained(kvt_store *s, const kvt_entry *e, uint64_t now);
int kvt__readable(const kvt_entry *e, int t);
int kvt__fastest(const kvt_entry *e);
/* A reader's reference on e's copy in tier t (the slot stays put while it
 * copies), counted a hit; 0 when the 16-bit count is full — 65,535 readers
 * at once, a batch or HOLDs naming one key that often — rather than wrap it
 * and let the slot be reused under them. Shard lock held. */
static inline int kvt__read_ref(kvt_entry *e, int t)
{
    if (e->refs[t] == UINT16_MAX)
        return 0;
    e->refs[t]++;
    if (e->hits < UINT16_MAX)
        e->hits++;
    return 1;
}
int kvt__persistent(const kvt_store *s, int t);
void kvt__fill_begin(kvt_store *s, kvt_entry *e, int t);
void kvt__fill_end(kvt_store *s, kvt_entry *e, int t);
void kvt__remove_barrier(kvt_store *s);

/* ttl.c */
void kvt__idle_push(kvt_tier_rt *tr, uint32_t slot, uint64_t stamp);
void kvt__idle_remove(kvt_tier_rt *tr, uint32_t slot);
void kvt__forget_slot(kvt_tier_rt *tr, uint32_t slot);
void kvt__expire_due(kvt_store *s);

/* slots.c */
void kvt__release_slots(kvt_store *s, int t, const uint32_t *slots, size_t n, int discard);
void kvt__release_slot(kvt_store *s, int t, uint32_t slot, int discard);
int kvt__entry_unused(kvt_index *ix, kvt_shard *sh, uint32_t id);
int kvt__discard_on_media(kvt_store *s, int t, const uint32_t *slots, size_t n);
void kvt__unref_read(kvt_store *s, uint32_t id, int t, int32_t read);
void kvt__unref(kvt_store *s, uint32_t id, int t);
void kvt__nap_briefly(void);
void kvt__backoff(int round);
uint32_t kvt__zombie_hold(kvt_entry *e, int t);
void kvt__zombie_discard(kvt_store *s, uint32_t id, const uint32_t *zombie);
int kvt__copy_between(kvt_store *s, int from, uint32_t fslot, int to, uint32_t tslot,
                        const kvt_key *key);
int kvt__publish(kvt_store *s, uint32_t id, int t, uint32_t slot, uint64_t now, int write_through);
void kvt__unfill(kvt_store *s, uint32_t id, int t);
int kvt__leave(kvt_store *s, uint32_t id, int t, uint32_t slot, int demoted);
int kvt__claim_leaving(kvt_store *s, uint32_t id, int t, uint64_t now);
uint32_t kvt__take_slot_for(kvt_store *s, int t, int wait, uint32_t *pending);

/* demote.c */
void kvt__demote_batch(kvt_store *s, int t, const uint32_t *ids, const uint32_t *from,
                         size_t k);
/* A free slot of tier t for a block arriving, or KVT_NO_SLOT: a victim the
 * tier demotes is demoted (kvt__demote_batch) and let go first. */
uint32_t kvt__make_room(kvt_store *s, int t, int wait);

/* put.c */
/* kvt__put_reserve's *code for a put issued before a remove of the key:
 * not stored, and reported as stored then removed (kvtier.h, kvt_remove). */
#define PUT_CANCELLED 1
/* kvt__put_reserve's *code for a key another put is still writing: this
 * put may only count it once that write has landed (kvt__store_put waits
 * for it after its own blocks, which may be that other write, are done). */
#define PUT_PENDING 2
/* Finds or reserves key in tier p (FILLING, invisible to readers). Returns
 * the entry id to fill, or KVT_NO_ENTRY with *code 0 (held), PUT_CANCELLED,
 * PUT_PENDING or an error. */
uint32_t kvt__put_reserve(kvt_store *s, const kvt_key *key, uint64_t parent, int p,
                          uint32_t retain_until, uint64_t seq, int *code);
/* KVT_IO_DURABLE's write-down and flush of the blocks with status 0. */
int kvt__make_durable(kvt_store *s, const kvt_key *keys, size_t n, int32_t *status, int stored);
void kvt__frag_ptrs(const kvt_store *s, void *const *ptrs, size_t i, kvt_xfer *x);
int32_t kvt__xfer_code(int32_t status, int fallback);
void kvt__touch_all(kvt_store *s, int t, const uint32_t *ids, const uint32_t *slots,
                      size_t n, uint64_t now);
void kvt__run_drain(put_runs *r);
int kvt__run_add(put_runs *r, uint32_t id, size_t index, const kvt_key *key,
                   void *const *ptrs);
size_t kvt__victims_per_run(const kvt_store *s, int p);

/* reserve.c — a put in two halves, and reads under references, for a
 * server whose clients copy blocks into and out of a shared DRAM arena
 * themselves (lib/shared/server.c, docs/shared.md). */
/* Per-key outcomes of kvt__store_reserve and kvt__store_hold besides 0
 * (reserved: the caller writes the slot; held: read the slot) and errors. */
/* How long a put waits for another put of the same key to land (tests
 * shorten s->pending_wait_ns). */
#define KVT__PENDING_WAIT_NS (10ull * 1000000000ull)
#define KVT__ZC_HELD 1  /* the store holds the block already: nothing to copy */
#define KVT__ZC_STAGE 2 /* not here: take the copying path (kvt_put, kvt_get) */
typedef struct kvt__reservation kvt__reservation;
/* Reserves slots of the put tier for keys: status[i] 0 with slots[i] the
 * slot to fill, KVT__ZC_HELD, KVT__ZC_STAGE or an error. Victims are
 * demoted as a put's are. *out (NULL when nothing was reserved) must be
 * committed or aborted. o: flags (KVT_IO_DURABLE), retain_s. */
int kvt__store_reserve(kvt_store *s, const kvt_key *keys, size_t n, const kvt_io_opts *o,
                       int32_t *status, uint32_t *slots, kvt__reservation **out);
/* Makes a reservation's blocks readable and does what a put does after
 * its copy; frees r. status (r's n): final per key (0, KVT__ZC_STAGE or an
 * error). Returns the blocks stored (held ones included). */
int kvt__store_commit(kvt__reservation *r, int32_t *status);
/* Releases a reservation unwritten: nothing becomes visible; frees r. */
void kvt__store_abort(kvt__reservation *r);
/* Keys in the reservation r. */
size_t kvt__reservation_keys(const kvt__reservation *r);
/* Takes read references on the top tier's copies of keys (promoting from
 * below first unless no_promote): status[i] 0 with ids[i], slots[i],
 * KVT_ENOENT, KVT__ZC_STAGE (in a slower tier only) or an error. The
 * slots are neither overwritten nor freed until kvt__store_unhold. */
int kvt__store_hold(kvt_store *s, const kvt_key *keys, size_t n, int no_promote, uint32_t *ids,
                    uint32_t *slots, int32_t *status);
void kvt__store_unhold(kvt_store *s, const uint32_t *ids, size_t n);

/* writethrough.c */
/* Starts and stops the store's write-through executor (none when no tier
 * below the put tier is written through). */
int kvt__writethrough_open(kvt_store *s, unsigned threads);
void kvt__writethrough_close(kvt_store *s);
/* Write-through copies of entry id, just published in tier p: claimed by
 * kvt__publish under the shard lock, then queued (writethrough.c). */
unsigned kvt__write_through_claim(kvt_store *s, kvt_entry *e, int p);
void kvt__write_through_submit(kvt_store *s, uint32_t id, int p, unsigned mask);

/* get.c */
void kvt__drop_corrupt(kvt_store *s, uint32_t id, int t, uint32_t slot);

/* ------------------------------------------------------------ keyed.c */

/* kvt_contains over the slot tiers only (lookup.c). */
int kvt__contains_local(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *tiers);
/* Opens / closes the config's key-addressed tiers. */
int kvt__keyed_open(kvt_store *s);
void kvt__keyed_close(kvt_store *s);
/* Keys [from, n) not held locally: asks the key-addressed tiers, fastest
 * first. lookup (stop_at_miss): extends the hit prefix from `from`, returns
 * its new end; contains: fills tiers[i] for keys whose tiers[i] is
 * KVT_TIER_NONE, returns how many it found. */
size_t kvt__keyed_lookup(kvt_store *s, const kvt_key *keys, size_t from, size_t n, uint8_t *tiers,
                         int stop_at_miss);
/* Reads the keys with got[i] == 0 from the key-addressed tiers; sets got[i]
 * and status[i] (optional) for those read. Returns how many. */
size_t kvt__keyed_get(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                      kvt_mem_kind mem, uint8_t *got, int32_t *status);
/* Writes the blocks with status[i] == 0 (all when status is NULL) to every
 * key-addressed tier. A failure there changes no put's status. */
void kvt__keyed_put(kvt_store *s, const kvt_key *keys, size_t n, void *const *ptrs,
                    kvt_mem_kind mem, const int32_t *status);
/* Removes the keys from every key-addressed tier; held[i] (optional) gets
 * 1 for those one of them held. */
void kvt__keyed_remove(kvt_store *s, const kvt_key *keys, size_t n, uint8_t *held);

#endif
