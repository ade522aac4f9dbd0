/* registry.c — eviction policies by name, and which one a tier gets by default. */
#include <string.h>

#include "policy/policy.h"

extern const kvt_policy_ops kvt__policy_lru;
extern const kvt_policy_ops kvt__policy_sieve;
extern const kvt_policy_ops kvt__policy_s3fifo;
extern const kvt_policy_ops kvt__policy_prefix;

static const kvt_policy_ops *const policies[] = {
    &kvt__policy_lru,
    &kvt__policy_sieve,
    &kvt__policy_s3fifo,
    &kvt__policy_prefix,
};

/* Chosen on the Mooncake traces: see docs/policies.md. */
static const char default_name[] = "prefix";

const kvt_policy_ops *kvt__policy_find(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "default") == 0)
        name = default_name;
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
        if (strcmp(policies[i]->name, name) == 0)
            return policies[i];
    return NULL;
}

const char *kvt__policy_default(void)
{
    return default_name;
}
