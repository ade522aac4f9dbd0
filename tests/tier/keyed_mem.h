/* keyed_mem.h — a test-only key-addressed tier: an in-memory table shared by
 * every instance in the process (as a node-shared store is by processes),
 * with its own TTL on its own virtual clock, completing operations on a
 * thread of its own. */
#ifndef KVT_TEST_KEYED_MEM_H
#define KVT_TEST_KEYED_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

/* Registers the kind "keyed_mem" (once per process; later calls do nothing). */
int keyed_mem_register(void);
/* What another process does: stores block bytes under key directly in the
 * shared table (replacing what was there). */
void keyed_mem_put_direct(const kvt_key *key, const void *bytes, size_t len);
/* Whether the table holds key (unexpired), and a copy of its bytes. */
int keyed_mem_get_direct(const kvt_key *key, void *out, size_t len);
/* Blocks in the table, expired ones included until next touched. */
size_t keyed_mem_count(void);
/* The tier's clock (ns), which its TTL runs on; starts at 0. */
void keyed_mem_set_now(uint64_t ns);
/* The next operation fails as a whole with `code` for every key. */
void keyed_mem_fail_next(int code);
/* CONTAINS operations executed so far, in all; *prefix gets how many of
 * them carried KVT_KEYED_PREFIX (the tier honours it: after the first key
 * not held it answers 0 without looking). */
uint64_t keyed_mem_contains_calls(uint64_t *prefix);
/* Empties the table. */
void keyed_mem_reset(void);

#endif
