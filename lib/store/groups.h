/* groups.h — group tags of keys and kvt_remove_group (groups.c). */
#ifndef KVT_STORE_GROUPS_H
#define KVT_STORE_GROUPS_H

#include "store.h"

typedef struct kvt__groups kvt__groups;

/* opts->group, or 0 when opts is NULL or ends before it (an older caller). */
uint64_t kvt__io_group(const kvt_io_opts *o);
/* A put's tagging of its n keys, once it has stored them: opts->group, or
 * clearing their tags when it is 0. KVT_ENOMEM when the table can't grow
 * (the blocks stay stored, untagged). */
int kvt__groups_tag(kvt_store *s, const kvt_key *keys, size_t n, const kvt_io_opts *o);
/* kvt_remove_group: kvt__store_remove of the keys tagged `group`. */
int kvt__store_remove_group(kvt_store *s, uint64_t group);
/* At close (free_store). */
void kvt__groups_free(kvt_store *s);

#endif
