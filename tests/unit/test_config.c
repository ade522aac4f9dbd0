/* test_config.c — bad input gets its specific error code, never a crash. */
#include <criterion/criterion.h>
#include <string.h>

#include "kvtier.h"
#include "../tier_kinds.h"

static kvt_config *base(void)
{
    kvt_config *c;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, 4096), 0);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 16 * 4096), 0);
    return c;
}

static int open_rc(kvt_config *c)
{
    kvt_store *s = NULL;
    int rc = kvt_open(c, &s);
    if (rc == 0)
        kvt_close(s);
    kvt_config_free(c);
    return rc;
}

Test(config, null_pointers)
{
    kvt_store *s;
    kvt_config *c = base();
    cr_assert_eq(kvt_config_new(NULL), KVT_ENULL);
    cr_assert_eq(kvt_config_set(NULL, KVT_OPT_FRAGS, 1), KVT_ENULL);
    cr_assert_eq(kvt_config_tier_set(NULL, kvt_test_tier(NULL, "dram"), "capacity", 1), KVT_ENULL);
    cr_assert_eq(kvt_config_tier_set_str(NULL, kvt_test_tier(NULL, "dram"), "policy", "lru"), KVT_ENULL);
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", NULL), KVT_ENULL);
    cr_assert_eq(kvt_config_set_clock(NULL, NULL, NULL), KVT_ENULL);
    cr_assert_eq(kvt_open(NULL, &s), KVT_ENULL);
    cr_assert_eq(kvt_open(c, NULL), KVT_ENULL);
    kvt_config_free(NULL);
    cr_assert_eq(kvt_close(NULL), 0);
    kvt_config_free(c);
}

Test(config, zero_and_absurd_sizes)
{
    kvt_config *c = base();
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, 0), KVT_ESIZE);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, -5), KVT_ESIZE);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_BYTES, (int64_t)1 << 40), KVT_ESIZE);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, 0), KVT_ESIZE);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_WORKERS, 0), KVT_ESIZE);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_WORKERS, 100000), KVT_ESIZE);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_BLOCK_TOKENS, 0), KVT_ESIZE);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", -1), KVT_ESIZE);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", -1), KVT_ESIZE);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "queue_depth", 0), KVT_ESIZE);
    cr_assert_eq(kvt_config_set(c, (kvt_option)999, 1), KVT_EINVAL);
    cr_assert_eq(kvt_config_tier_set(c, 9, "capacity", 1), KVT_EINVAL);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "victims", 7), KVT_EINVAL);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "admit", 7), KVT_EINVAL);
    cr_assert_str_neq(kvt_last_error(), "no error");
    kvt_config_free(c);
}

Test(config, block_bytes_required)
{
    kvt_config *c;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 1 << 20);
    cr_assert_eq(open_rc(c), KVT_ESIZE);
}

Test(config, frags_must_divide_block)
{
    kvt_config *c = base();
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, 3), 0);
    cr_assert_eq(open_rc(c), KVT_EFRAGS);
}

Test(config, capacity_below_one_block)
{
    kvt_config *c = base();
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 4095), 0);
    cr_assert_eq(open_rc(c), KVT_ECAPACITY);
}

Test(config, no_tier)
{
    kvt_config *c = base();
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", 0), 0);
    cr_assert_eq(open_rc(c), KVT_ENOTIER);
}

Test(config, unknown_policy)
{
    kvt_config *c = base();
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", "fifo-of-dreams"), KVT_EPOLICY);
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", "lru"), 0);
    kvt_config_free(c);
}

Test(config, setters_after_open_are_frozen)
{
    kvt_config *c = base();
    kvt_store *s;
    cr_assert_eq(kvt_open(c, &s), 0);
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, 2), KVT_EFROZEN);
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "ttl_ms", 5), KVT_EFROZEN);
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", "lru"), KVT_EFROZEN);
    cr_assert_eq(kvt_config_set_clock(c, NULL, NULL), KVT_EFROZEN);
    kvt_store *s2;
    cr_assert_eq(kvt_open(c, &s2), 0, "a frozen config still opens stores");
    cr_assert_eq(kvt_close(s2), 0);
    cr_assert_eq(kvt_close(s), 0);
    kvt_config_free(c);
}

Test(config, double_close)
{
    kvt_config *c = base();
    kvt_store *s;
    cr_assert_eq(kvt_open(c, &s), 0);
    kvt_config_free(c);
    cr_assert_eq(kvt_close(s), 0);
    cr_assert_eq(kvt_close(s), KVT_ECLOSED);
    int not_a_store = 0;
    cr_assert_eq(kvt_close((kvt_store *)&not_a_store), KVT_ECLOSED);
}

Test(config, nvme_without_path)
{
    kvt_config *c = base();
    cr_assert_eq(kvt_config_tier_set(c, kvt_test_tier(c, "nvme"), "capacity", 1 << 20), 0);
    cr_assert_eq(open_rc(c), KVT_EPATH);
}

Test(config, io_argument_errors)
{
    kvt_config *c = base();
    kvt_store *s;
    cr_assert_eq(kvt_config_set(c, KVT_OPT_FRAGS, 2), 0);
    cr_assert_eq(kvt_open(c, &s), 0);
    kvt_config_free(c);
    static uint8_t buf[4096];
    kvt_key k = {{1}};
    void *p[2] = {buf, buf + 2048};
    void *holes[2] = {buf, NULL};
    kvt_ticket t;
    cr_assert_eq(kvt_put(NULL, &k, 1, p, NULL, NULL), KVT_ENULL);
    cr_assert_eq(kvt_put(s, NULL, 1, p, NULL, NULL), KVT_ENULL);
    cr_assert_eq(kvt_put(s, &k, 0, p, NULL, NULL), KVT_ESIZE);
    cr_assert_eq(kvt_put(s, &k, 1, NULL, NULL, NULL), KVT_ENULL);
    cr_assert_eq(kvt_put(s, &k, 1, holes, NULL, NULL), KVT_ENULL);
    kvt_io_opts o = {.size = sizeof o, .frags = 3};
    cr_assert_eq(kvt_put(s, &k, 1, p, &o, NULL), KVT_EFRAGS, "fragment count mismatch");
    o.frags = 2;
    cr_assert_eq(kvt_put(s, &k, 1, p, &o, NULL), 1);
    kvt_io_opts small = {.size = 4};
    cr_assert_eq(kvt_get(s, &k, 1, p, &small, NULL), KVT_EINVAL);
    kvt_io_opts kind = {.size = sizeof kind, .mem_kind = 9};
    cr_assert_eq(kvt_get(s, &k, 1, p, &kind, NULL), KVT_EINVAL);
    cr_assert_eq(kvt_get(s, &k, 1, p, NULL, &t), 0);
    cr_assert_eq(kvt_wait(s, t, -1), 1);
    cr_assert_eq(kvt_wait(s, t, -1), KVT_ETICKET, "ticket used twice");
    cr_assert_eq(kvt_lookup(s, NULL, 1, NULL, 0), KVT_ENULL);
    cr_assert_eq(kvt_lookup(s, &k, 0, NULL, 0), KVT_ESIZE);
    cr_assert_eq(kvt_lookup(s, &k, 1, NULL, 0xffffffffu), KVT_ESIZE);
    cr_assert_eq(kvt_pin(s, &k, 1, 0), KVT_ESIZE);
    kvt_key absent = {{2}};
    cr_assert_eq(kvt_pin(s, &absent, 1, 100), KVT_ENOENT, "a lease on an absent key");
    cr_assert_eq(kvt_remove(s, NULL, 1), KVT_ENULL);
    cr_assert_eq(kvt_stat(s, NULL, NULL), KVT_ENULL);
    cr_assert_eq(kvt_close(s), 0);
}

/* Tier instances: added by kind, named, options checked by each kind. */
Test(config, tier_instances_by_kind)
{
    kvt_config *c;
    cr_assert_eq(kvt_config_new(&c), 0);
    cr_assert_eq(kvt_config_add_tier(c, "dram", NULL), 0);
    cr_assert_eq(kvt_config_add_tier(c, "dram", NULL), 1, "the same kind twice");
    cr_assert_eq(kvt_config_tier_find(c, "dram1"), 1);
    cr_assert_eq(kvt_config_add_tier(c, "dram", "dram1"), KVT_EINVAL, "a taken name");
    cr_assert_eq(kvt_config_add_tier(c, "dram", "a.b"), KVT_EINVAL, "names appear in stats");
    cr_assert_eq(kvt_config_add_tier(c, "floppy", NULL), KVT_ENOTSUP);
    cr_assert(strstr(kvt_last_error(), "floppy"), "%s", kvt_last_error());
    cr_assert_eq(kvt_config_add_tier(NULL, "dram", NULL), KVT_ENULL);
    cr_assert_eq(kvt_config_add_tier(c, NULL, NULL), KVT_ENULL);
    cr_assert_eq(kvt_config_add_tier(c, "dram", "fast"), 2);
    cr_assert_eq(kvt_config_add_tier(c, "dram", NULL), KVT_ESIZE, "at most KVT_MAX_SLOT_TIERS");
    cr_assert_eq(kvt_config_tier_find(c, "nope"), KVT_ENOENT);

    /* Options of the kind and generic ones; others name themselves. */
    cr_assert_eq(kvt_config_tier_set(c, 0, "numa_node", -1), 0);
    cr_assert_eq(kvt_config_tier_set(c, 0, "queue_depth", 8), KVT_EINVAL, "an NVMe option");
    cr_assert(strstr(kvt_last_error(), "queue_depth"), "%s", kvt_last_error());
    cr_assert_eq(kvt_config_tier_set(c, 0, "numa_node", 5000), KVT_ESIZE);
    cr_assert(strstr(kvt_last_error(), "numa_node"), "%s", kvt_last_error());
    cr_assert_eq(kvt_config_tier_set(c, 0, "policy", 1), KVT_EINVAL, "a string option");
    cr_assert_eq(kvt_config_tier_set_str(c, 0, "hugepages", "1"), KVT_EINVAL, "an integer one");
    cr_assert_eq(kvt_config_tier_set_str(c, 0, "faults", "seed=1"), 0, "every tier takes faults");
    cr_assert_eq(kvt_config_tier_set(c, 3, "capacity", 1), KVT_EINVAL, "no such instance");
    cr_assert_eq(kvt_config_tier_set(c, -1, "capacity", 1), KVT_EINVAL);
    cr_assert_eq(kvt_config_tier_set(c, 0, NULL, 1), KVT_ENULL);
    kvt_config_free(c);
}

Test(config, slot_bytes_by_kind)
{
    uint64_t v = 0;
    cr_assert_eq(kvt_slot_bytes("dram", 4096, &v), 0);
    cr_assert_eq(v, 4096, "a memory tier's slot is the block");
    cr_assert_eq(kvt_slot_bytes("floppy", 4096, &v), KVT_ENOTSUP);
    cr_assert_eq(kvt_slot_bytes("dram", 0, &v), KVT_ESIZE);
    cr_assert_eq(kvt_slot_bytes(NULL, 4096, &v), KVT_ENULL);
    cr_assert_eq(kvt_slot_bytes("dram", 4096, NULL), KVT_ENULL);
}
