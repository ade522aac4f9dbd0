/* test_nodevice.c — without a GPU: device-pointer calls fail with the documented codes, HBM is reported unavailable, the rest works. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "kvt_build_config.h"
#include "kvtier.h"
#include "tier/staged.h"
#include "tier/tier.h"
#include "../tier_kinds.h"

/* Runs in the unit suite twice: as the machine is (no GPU here: no driver,
 * or a driver without devices) and with KVTIER_CUDART=none (as on a
 * machine without the CUDA runtime). Where a GPU is usable these
 * behaviours don't apply: the gpu suite covers that machine. */

#define BLOCK 4096
#define FRAGS 2

/* What a device-pointer call returns here (kvtier.h, "CUDA"). */
static int no_device_code(void)
{
    return KVT_HAVE_CUDA ? KVT_ENODEV : KVT_EMEMKIND;
}

static void require_no_gpu(void)
{
    if (kvt__cuda_load() == 0)
        cr_skip_test("a CUDA device is present (%d): the gpu suite covers this machine",
                     kvt__cuda_device_count());
}

static kvt_key key_of(uint32_t i)
{
    kvt_key ns, k;
    kvt_ns_key(NULL, 0, &ns);
    uint32_t tok[1] = {i};
    kvt_key_chain(&ns, tok, 1, 1, &k, 1);
    return k;
}

static kvt_store *open_store(int with_hbm, int with_dram)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, FRAGS), 0);
    if (with_hbm)
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "hbm"), "capacity", 64 * BLOCK), 0);
    if (with_dram) {
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 16 * BLOCK), 0);
        cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0), 0);
    }
    int rc = kvt_open(c, &s);
    kvt_config_free(c);
    if (rc)
        return NULL;
    return s;
}

typedef struct host_blocks {
    uint8_t mem[4][BLOCK];
    void *ptrs[4 * FRAGS];
} host_blocks;

static void blocks_init(host_blocks *b, int value)
{
    memset(b->mem, value, sizeof b->mem);
    for (int i = 0; i < 4; i++)
        for (int f = 0; f < FRAGS; f++)
            b->ptrs[i * FRAGS + f] = b->mem[i] + f * (BLOCK / FRAGS);
}

Test(nodevice, device_pointers_refused_with_clear_code)
{
    require_no_gpu();
    kvt_store *s = open_store(0, 1);
    cr_assert_not_null(s, "open: %s", kvt_last_error());
    host_blocks b;
    blocks_init(&b, 0x11);
    kvt_key keys[4];
    for (uint32_t i = 0; i < 4; i++)
        keys[i] = key_of(i);
    kvt_io_opts o = {.size = sizeof o, .mem_kind = KVT_MEM_CUDA, .device = 0};
    int want = no_device_code();

    int rc = kvt_put(s, keys, 4, b.ptrs, &o, NULL);
    cr_assert_eq(rc, want, "put: %d (%s)", rc, kvt_last_error());
    cr_assert(strlen(kvt_last_error()) > strlen(kvt_strerror(want)), "no detail: %s",
              kvt_last_error());
    kvt_ticket t = 0;
    rc = kvt_put(s, keys, 4, b.ptrs, &o, &t);
    cr_assert_eq(rc, want, "async put: %d (%s)", rc, kvt_last_error());
    cr_assert_eq(kvt_lookup(s, keys, 4, NULL, 0), 0, "a refused put stored blocks");

    /* The same blocks from host memory work, and a get into "device
     * memory" is refused without touching the destination. */
    cr_assert_eq(kvt_put(s, keys, 4, b.ptrs, NULL, NULL), 4, "%s", kvt_last_error());
    host_blocks d;
    blocks_init(&d, 0xA5);
    rc = kvt_get(s, keys, 4, d.ptrs, &o, NULL);
    cr_assert_eq(rc, want, "get: %d (%s)", rc, kvt_last_error());
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < BLOCK; j++)
            cr_assert_eq(d.mem[i][j], 0xA5, "destination written");
    cr_assert_eq(kvt_get(s, keys, 4, d.ptrs, NULL, NULL), 4, "%s", kvt_last_error());
    cr_assert_eq(memcmp(d.mem, b.mem, sizeof d.mem), 0);

    /* An out-of-range device is no better. */
    o.device = 7;
    cr_assert_eq(kvt_get(s, keys, 4, d.ptrs, &o, NULL), want);
    cr_assert_eq(kvt_close(s), 0);
}

Test(nodevice, stream_refused_flags_checked)
{
    require_no_gpu();
    kvt_store *s = open_store(0, 1);
    cr_assert_not_null(s, "open: %s", kvt_last_error());
    host_blocks b;
    blocks_init(&b, 0x22);
    kvt_key keys[4];
    for (uint32_t i = 0; i < 4; i++)
        keys[i] = key_of(100 + i);
    /* Host memory ordered on a stream still needs CUDA. The pointer is
     * never dereferenced: no CUDA means it is not even looked at. */
    kvt_io_opts o = {.size = sizeof o, .stream = (void *)(uintptr_t)0x1};
    int rc = kvt_put(s, keys, 4, b.ptrs, &o, NULL);
    cr_assert_eq(rc, KVT_HAVE_CUDA ? KVT_ENODEV : KVT_ENOTSUP, "%d (%s)", rc, kvt_last_error());
    o.stream = NULL;
    o.flags = KVT_IO_STREAM_WAIT; /* without a stream: no effect, not an error */
    cr_assert_eq(kvt_put(s, keys, 4, b.ptrs, &o, NULL), 4, "%s", kvt_last_error());
    o.flags = 1u << 20;
    cr_assert_eq(kvt_get(s, keys, 4, b.ptrs, &o, NULL), KVT_EINVAL);
    o.flags = 1u << 31; /* the library's own marker: never from callers */
    cr_assert_eq(kvt_get(s, keys, 4, b.ptrs, &o, NULL), KVT_EINVAL);
    cr_assert_eq(kvt_close(s), 0);
}

Test(nodevice, hbm_configured_store_opens_without_it)
{
    require_no_gpu();
    kvt_store *s = open_store(1, 1);
    cr_assert_not_null(s, "a store with an HBM capacity must open without a GPU: %s",
                       kvt_last_error());
    cr_assert_eq(kvt_test_tier_available(s, "hbm"), KVT_ENODEV);
    cr_assert_eq(kvt_test_tier_available(s, "dram"), 1);
    cr_assert_eq(kvt_test_tier_available(s, "nvme"), 0);

    host_blocks b, d;
    blocks_init(&b, 0);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < BLOCK; j++)
            b.mem[i][j] = (uint8_t)(i * 37 + j * 11 + (j >> 9));
    blocks_init(&d, 0xA5);
    kvt_key keys[4];
    for (uint32_t i = 0; i < 4; i++)
        keys[i] = key_of(200 + i);
    cr_assert_eq(kvt_put(s, keys, 4, b.ptrs, NULL, NULL), 4, "%s", kvt_last_error());
    uint8_t tiers[4];
    cr_assert_eq(kvt_lookup(s, keys, 4, tiers, 0), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tiers[i], TIER_DRAM);
    cr_assert_eq(kvt_get(s, keys, 4, d.ptrs, NULL, NULL), 4, "%s", kvt_last_error());
    cr_assert_eq(memcmp(d.mem, b.mem, sizeof d.mem), 0);
    uint64_t v;
    cr_assert_eq(kvt_stat(s, "hbm.hits", &v), KVT_ENOENT, "an unavailable tier has no stats");
    cr_assert_eq(kvt_close(s), 0);
}

Test(nodevice, hbm_only_store_reports_no_tier)
{
    require_no_gpu();
    kvt_store *s = open_store(1, 0);
    cr_assert_null(s);
    cr_assert(strstr(kvt_last_error(), "no configured tier") != NULL, "%s", kvt_last_error());
}

Test(nodevice, layer_without_gpu)
{
    require_no_gpu();
    cr_assert_eq(kvt__cuda_load(), KVT_ENODEV);
    cr_assert(kvt__cuda_why()[0] != '\0');
    cr_assert_eq(kvt__cuda_device_count(), 0);
    cr_assert_eq(kvt__cuda_check_device(0), KVT_ENODEV);
    char bus[32];
    cr_assert_eq(kvt__cuda_pci_bus_id(0, bus, sizeof bus), KVT_ENODEV);
    void *p = NULL;
    cr_assert_eq(kvt__cuda_malloc(0, 4096, &p), KVT_ENODEV);
    /* Hooks around operations are no-ops without a stream. */
    cr_assert_eq(kvt__cuda_io_begin(NULL), 0);
    kvt_io_opts o = {.size = sizeof o};
    cr_assert_eq(kvt__cuda_io_begin(&o), 0);
    kvt__cuda_io_end(&o);
    /* A region is announced but never pinned. */
    static char arena[1 << 16] __attribute__((aligned(4096)));
    kvt__cuda_region *r;
    cr_assert_eq(kvt__cuda_region_add(arena, sizeof arena, 4096, 0, &r), 0);
    kvt__cuda_region_pin(r);
    cr_assert_eq(kvt__cuda_host_pinned(arena, 4096), 0);
    uint64_t pinned, ms;
    kvt__cuda_region_stats(r, &pinned, &ms);
    cr_assert_eq(pinned, 0);
    kvt__cuda_region_remove(r);
#if KVT_HAVE_CUDA
    cr_assert_null(kvt__cuda_rt());
    /* The HBM tier itself says why. */
    kvt_tier_params prm = {.name = "hbm", .capacity = 1 << 20, .block_bytes = 4096,
                           .frags = 1};
    kvt__tier_params_defaults(&prm, &kvt__tier_hbm);
    kvt_tier_impl *t = NULL;
    uint32_t n = 0;
    cr_assert_eq(kvt__tier_hbm.open(&prm, &t, &n), KVT_ENODEV);
    cr_assert_null(t);
    cr_assert(strstr(kvt_last_error(), "hbm tier") != NULL, "%s", kvt_last_error());
#endif
}

/* The staging wrapper (lib/tier/staged.c) passes host memory straight
 * through to the tier under it. */
static int calls;
static int fake_write(kvt_tier_impl *t, kvt_xfer *x, size_t n, kvt_mem_kind mem)
{
    (void)t;
    calls++;
    for (size_t i = 0; i < n; i++)
        x[i].status = mem == KVT_MEM_HOST ? 0 : KVT_EMEMKIND;
    return 0;
}

Test(nodevice, tier_calls_without_cuda_memory_pass_through)
{
    require_no_gpu();
    kvt_tier_ops ops = {.version = KVT_TIER_OPS_VERSION, .name = "fake", .write = fake_write,
                        .read = fake_write};
    kvt_tier_handle h = {.ops = &ops, .impl = NULL, .caps = ops.caps};
    cr_assert_eq(kvt__staged_wrap(&h, 64), 0, "%s", kvt_last_error());
    cr_assert(h.ops != &ops);
    cr_assert(h.caps & KVT_TCAP_CUDA_MEM);
    cr_assert_eq(kvt__staged_inner(&h)->ops, &ops);
    uint8_t buf[64];
    void *p = buf;
    kvt_xfer x = {.slot = 0, .nfrags = 1, .frags = &p};
    cr_assert_eq(h.ops->write(h.impl, &x, 1, KVT_MEM_HOST), 0);
    cr_assert_eq(h.ops->read(h.impl, &x, 1, KVT_MEM_HOST), 0);
    cr_assert_eq(calls, 2);
    /* Device memory for a host-only tier, with no GPU: refused, the tier
     * never called. */
    int rc = h.ops->write(h.impl, &x, 1, KVT_MEM_CUDA);
    cr_assert(rc == KVT_ENODEV || rc == KVT_EMEMKIND, "%d", rc);
    cr_assert_eq(x.status, rc);
    cr_assert_eq(calls, 2);
    h.ops->close(h.impl); /* frees the wrapper; the fake tier has no close */
}

/* The wrapper forwards every other operation to the tier under it, with the
 * inner tier's own state, and keeps absent (NULL) operations absent, since
 * the store skips those. No GPU needed: nothing here moves device memory. */
static kvt_tier_impl *const fake_impl = (kvt_tier_impl *)&calls;
static int fake_discards, fake_closes, fake_stats;

static int fake_slot_usable(kvt_tier_impl *t, uint32_t slot)
{
    cr_assert_eq(t, fake_impl);
    return slot != 5;
}

static int fake_discard(kvt_tier_impl *t, const uint32_t *slots, size_t n)
{
    cr_assert_eq(t, fake_impl);
    cr_assert_eq(n, 2);
    cr_assert_eq(slots[1], 7);
    fake_discards++;
    return KVT_EIO; /* passed back as it is */
}

static void fake_close(kvt_tier_impl *t)
{
    cr_assert_eq(t, fake_impl);
    fake_closes++;
}

static void fake_stat_visit(kvt_tier_impl *t, kvt_stat_fn fn, void *user)
{
    cr_assert_eq(t, fake_impl);
    fake_stats++;
    fn("fake.things", 42, user);
}

static void stat_sum(const char *name, uint64_t value, void *user)
{
    cr_assert_str_eq(name, "fake.things");
    *(uint64_t *)user += value;
}

Test(nodevice, staged_wrapper_forwards_and_keeps_absent_operations_absent)
{
    kvt_tier_ops ops = {.version = KVT_TIER_OPS_VERSION, .name = "fake",
                        .caps = KVT_TCAP_PERSISTENT | KVT_TCAP_VERIFIES, .close = fake_close,
                        .write = fake_write, .read = fake_write, .discard = fake_discard,
                        .stats = fake_stat_visit, .slot_usable = fake_slot_usable};
    kvt_tier_handle h = {.ops = &ops, .impl = fake_impl, .caps = ops.caps};
    cr_assert_eq(kvt__staged_wrap(&h, 4096), 0, "%s", kvt_last_error());
    cr_assert(h.ops->slot_usable(h.impl, 4));
    cr_assert_not(h.ops->slot_usable(h.impl, 5));
    cr_assert_str_eq(h.ops->name, "fake");
    cr_assert_eq(h.ops->version, KVT_TIER_OPS_VERSION);
    cr_assert_eq(h.caps, KVT_TCAP_PERSISTENT | KVT_TCAP_VERIFIES | KVT_TCAP_CUDA_MEM);
    cr_assert_eq(h.ops->caps, h.caps);
    cr_assert_null(h.ops->open);
    cr_assert_null(h.ops->flush);
    cr_assert_null(h.ops->slot_ptr);
    cr_assert_null(h.ops->recover);
    const kvt_tier_handle *in = kvt__staged_inner(&h);
    cr_assert_eq(in->ops, &ops);
    cr_assert_eq(in->impl, fake_impl);

    uint32_t slots[2] = {3, 7};
    cr_assert_eq(h.ops->discard(h.impl, slots, 2), KVT_EIO);
    cr_assert_eq(fake_discards, 1);
    uint64_t sum = 0;
    h.ops->stats(h.impl, stat_sum, &sum);
    cr_assert_eq(sum, 42);
    cr_assert_eq(fake_stats, 1);
    h.ops->close(h.impl);
    cr_assert_eq(fake_closes, 1);
}

/* A tier that takes device memory itself is left as it is; a handle that
 * is no wrapper is its own inner tier. */
Test(nodevice, staged_wrap_leaves_cuda_memory_tiers_alone)
{
    kvt_tier_ops ops = {.version = KVT_TIER_OPS_VERSION, .name = "fake",
                        .caps = KVT_TCAP_HOST_PTR | KVT_TCAP_CUDA_MEM, .write = fake_write,
                        .read = fake_write};
    kvt_tier_handle h = {.ops = &ops, .impl = fake_impl, .caps = ops.caps};
    cr_assert_eq(kvt__staged_wrap(&h, 4096), 0);
    cr_assert_eq(h.ops, &ops);
    cr_assert_eq(h.impl, fake_impl);
    cr_assert_eq(h.caps, ops.caps);
    cr_assert_eq(kvt__staged_inner(&h), &h);
    ops.caps = h.caps = KVT_TCAP_KEYED; /* key-addressed: its own ops decide */
    cr_assert_eq(kvt__staged_wrap(&h, 4096), 0);
    cr_assert_eq(h.ops, &ops);
    cr_assert_eq(kvt__staged_wrap(NULL, 4096), KVT_ENULL);
    ops.caps = 0;
    h.caps = 0;
    cr_assert_eq(kvt__staged_wrap(&h, 0), KVT_EINVAL);
    cr_assert_eq(h.ops, &ops, "a failed wrap leaves the handle unchanged");
}
