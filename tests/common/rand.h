/*
 * rand.h — the tests' seeded randomness, in one place: a run's seed is
 * printed once and KVT_TEST_SEED replays it; the generator is splitmix64, so
 * the same seed gives the same bytes on every machine.
 *
 * Linked into every test program (tests/meson.build). Not thread-safe except
 * where a function says so: each thread keeps its own state word.
 */
#ifndef KVT_TEST_RAND_H
#define KVT_TEST_RAND_H

#include <stddef.h>
#include <stdint.h>

/* The process's seed: KVT_TEST_SEED (decimal or 0x hex) when set, else from
 * the time and pid; never 0. The first call prints "<program> <test>: seed N
 * (rerun with KVT_TEST_SEED=N)" to stderr; later calls return the same seed
 * silently. Criterion runs each test in its own process: one seed per test,
 * printed with the test's name. */
uint64_t test_seed(const char *test);

/* The next 64 random bits of the stream *s (splitmix64: any *s is fine). */
uint64_t next_rand(uint64_t *s);

/* A number in [0, n) from the stream *s; n > 0. */
uint64_t rand_below(uint64_t *s, uint64_t n);

/* Fills len bytes at p from the stream *s. */
void fill_random(void *p, size_t len, uint64_t *s);

/* Fills len bytes at p with the pattern of block `id` under `salt`: the same
 * (id, salt) always gives the same bytes, other ids other bytes, so a block
 * read back can be checked from its id alone, in another process too. */
void fill_pattern(void *p, size_t len, uint64_t id, uint64_t salt);

#endif
