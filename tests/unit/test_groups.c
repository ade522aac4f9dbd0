/* test_groups.c — group tags on put (kvt_io_opts.group) and kvt_remove_group: exact counts, retagging, clearing, old option sizes, tags of evicted keys. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "kvtier.h"
#include "../tier_kinds.h"

#define BLOCK 1024

static kvt_store *open_dram(uint64_t blocks)
{
    kvt_config *c;
    kvt_store *s;
    cr_assert_eq(kvt_config_new(&c), 0);
    kvt_config_set(c, KVT_OPT_BLOCK_BYTES, BLOCK);
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "capacity", (int64_t)(blocks * BLOCK));
    kvt_config_tier_set(c, kvt_test_tier(c, "dram"), "hugepages", 0);
    cr_assert_eq(kvt_config_tier_set_str(c, kvt_test_tier(c, "dram"), "policy", "lru"), 0);
    cr_assert_eq(kvt_open(c, &s), 0, "%s", kvt_last_error());
    kvt_config_free(c);
    return s;
}

static kvt_key key_of(uint32_t i)
{
    kvt_key k;
    memset(&k, 0, sizeof k);
    /* spread over the table like real keys: a hash in the first 8 bytes */
    uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull;
    memcpy(k.b, &h, sizeof h);
    memcpy(k.b + 8, &i, sizeof i);
    k.b[15] = 0x61;
    return k;
}

static uint8_t buf[BLOCK];

static int put_group(kvt_store *s, uint32_t first, uint32_t n, uint64_t group)
{
    kvt_key keys[64];
    void *ptrs[64];
    cr_assert(n <= 64);
    for (uint32_t i = 0; i < n; i++) {
        keys[i] = key_of(first + i);
        ptrs[i] = buf;
    }
    kvt_io_opts o = {.size = sizeof o, .group = group};
    return kvt_put(s, keys, n, ptrs, &o, NULL);
}

static int held(kvt_store *s, uint32_t i)
{
    kvt_key k = key_of(i);
    return kvt_contains(s, &k, 1, NULL);
}

Test(groups, removes_exactly_the_group)
{
    kvt_store *s = open_dram(64);
    cr_assert_eq(put_group(s, 1, 3, 7), 3);
    cr_assert_eq(put_group(s, 4, 2, 8), 2);
    cr_assert_eq(put_group(s, 6, 1, 0), 1);
    cr_assert_eq(kvt_remove_group(s, 7), 3);
    for (uint32_t i = 1; i <= 6; i++)
        cr_assert_eq(held(s, i), i >= 4, "key %u", i);
    cr_assert_eq(kvt_remove_group(s, 7), 0, "the group is forgotten");
    cr_assert_eq(kvt_remove_group(s, 0), KVT_EINVAL);
    cr_assert_eq(kvt_remove_group(s, 12345), 0);
    cr_assert_eq(kvt_remove_group(s, 8), 2);
    cr_assert_eq(held(s, 6), 1);
    cr_assert_eq(kvt_remove_group(NULL, 8), KVT_ENULL);
    cr_assert_eq(kvt_close(s), 0);
}

Test(groups, last_put_naming_a_key_sets_its_group)
{
    kvt_store *s = open_dram(64);
    cr_assert_eq(put_group(s, 1, 2, 7), 2);
    cr_assert_eq(put_group(s, 1, 1, 9), 1); /* held already: retagged */
    cr_assert_eq(put_group(s, 2, 1, 0), 1); /* held already: untagged */
    cr_assert_eq(kvt_remove_group(s, 7), 0);
    cr_assert_eq(held(s, 1) + held(s, 2), 2);
    cr_assert_eq(kvt_remove_group(s, 9), 1);
    cr_assert_eq(held(s, 1), 0);
    cr_assert_eq(held(s, 2), 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(groups, an_older_callers_opts_have_no_group)
{
    kvt_store *s = open_dram(64);
    kvt_key k = key_of(1);
    void *p = buf;
    kvt_io_opts o = {.size = offsetof(kvt_io_opts, group), .group = 7}; /* not read */
    cr_assert_eq(kvt_put(s, &k, 1, &p, &o, NULL), 1, "%s", kvt_last_error());
    cr_assert_eq(kvt_remove_group(s, 7), 0);
    o.size = offsetof(kvt_io_opts, group) - 1;
    cr_assert_eq(kvt_put(s, &k, 1, &p, &o, NULL), KVT_EINVAL, "smaller than the first version");
    cr_assert_eq(kvt_close(s), 0);
}

Test(groups, asynchronous_puts_are_tagged)
{
    kvt_store *s = open_dram(64);
    kvt_key keys[4];
    void *ptrs[4];
    for (uint32_t i = 0; i < 4; i++) {
        keys[i] = key_of(i);
        ptrs[i] = buf;
    }
    kvt_io_opts o = {.size = sizeof o, .group = 3};
    kvt_ticket t;
    cr_assert_eq(kvt_put(s, keys, 4, ptrs, &o, &t), 0);
    cr_assert_eq(kvt_wait(s, t, -1), 4);
    cr_assert_eq(kvt_remove_group(s, 3), 4);
    cr_assert_eq(kvt_close(s), 0);
}

Test(groups, an_evicted_key_stored_again_without_a_group_is_not_in_it)
{
    kvt_store *s = open_dram(2);
    cr_assert_eq(put_group(s, 1, 1, 5), 1);
    cr_assert_eq(put_group(s, 2, 2, 0), 2); /* evicts 1 */
    cr_assert_eq(held(s, 1), 0);
    cr_assert_eq(put_group(s, 1, 1, 0), 1); /* 1 again, no group */
    cr_assert_eq(kvt_remove_group(s, 5), 0);
    cr_assert_eq(held(s, 1), 1);
    cr_assert_eq(kvt_close(s), 0);
}

Test(groups, many_keys_grow_and_sweep_the_table)
{
    /* 3000 tagged puts through 64 slots: the table sweeps the tags of
     * evicted keys, and the group holds exactly what is still stored. */
    kvt_store *s = open_dram(64);
    for (uint32_t i = 0; i < 3000; i += 50)
        cr_assert_eq(put_group(s, i, 50, 4), 50);
    int still = 0;
    for (uint32_t i = 0; i < 3000; i++)
        still += held(s, i);
    cr_assert_eq(still, 64);
    cr_assert_eq(kvt_remove_group(s, 4), 64);
    for (uint32_t i = 0; i < 3000; i++)
        cr_assert_eq(held(s, i), 0);
    kvt_store *big = open_dram(4096);
    for (uint32_t i = 0; i < 3000; i += 60)
        cr_assert_eq(put_group(big, i, 60, 1 + (i / 60) % 2), 60);
    cr_assert_eq(kvt_remove_group(big, 1), 1500);
    cr_assert_eq(kvt_remove_group(big, 2), 1500);
    cr_assert_eq(kvt_close(big), 0);
    cr_assert_eq(kvt_close(s), 0);
}
