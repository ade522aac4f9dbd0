/* registry.c — tier kinds by name, and the options each instance was given. */
#include <string.h>

#include "error.h"
#include "kvt_build_config.h"
#include "tier/tier.h"
#include "tier/cluster/tier_cluster.h"

/* Room for the built-in kinds and a few registered ones (test tiers). */
#define MAX_KINDS 8

#if !KVT_HAVE_CUDA
/* Without CUDA "hbm" still names a kind, one whose device is never there:
 * a config written for GPU machines opens without it, as on a GPU-less
 * machine (KVT_TCAP_OPTIONAL). */
static int hbm_absent_open(const kvt_tier_params *p, kvt_tier_impl **out, uint32_t *nslots)
{
    (void)p;
    (void)nslots;
    if (out)
        *out = NULL;
    return kvt__err(KVT_ENODEV, "hbm tier: this library is built without CUDA");
}

static const kvt_tier_opt_spec hbm_absent_options[] = {
    {"device", KVT_OPTTYPE_INT, 0, 1023, 0, 0, "CUDA device ordinal"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

static const kvt_tier_ops hbm_absent = {
    .version = KVT_TIER_OPS_VERSION,
    .name = "hbm",
    .caps = KVT_TCAP_DEVICE_PTR | KVT_TCAP_OPTIONAL,
    .options = hbm_absent_options,
    .open = hbm_absent_open,
};
#endif

static const kvt_tier_ops *kinds[MAX_KINDS] = {
#if KVT_HAVE_CUDA
    &kvt__tier_hbm,
#else
    &hbm_absent,
#endif
    &kvt__tier_dram,
#if KVT_HAVE_URING
    &kvt__tier_nvme,
    &kvt__tier_cluster,
#endif
};
static size_t nkinds = 2 + 2 * KVT_HAVE_URING;

const kvt_tier_ops *kvt__tier_find(const char *kind)
{
    if (!kind)
        return NULL;
    for (size_t i = 0; i < nkinds; i++)
        if (strcmp(kinds[i]->name, kind) == 0)
            return kinds[i];
    return NULL;
}

size_t kvt__tier_kinds(const kvt_tier_ops *const **out)
{
    if (out)
        *out = kinds;
    return nkinds;
}

int kvt__tier_register(const kvt_tier_ops *ops)
{
    if (!ops || !ops->name || !*ops->name || ops->version != KVT_TIER_OPS_VERSION)
        return kvt__err(KVT_EINVAL, "tier registration: no name or version %u (want %u)",
                        ops ? ops->version : 0, KVT_TIER_OPS_VERSION);
    if (kvt__tier_find(ops->name))
        return kvt__err(KVT_EINVAL, "tier kind \"%s\" is registered already", ops->name);
    if (nkinds == MAX_KINDS)
        return kvt__err(KVT_ENOMEM, "tier registry full (%d kinds)", MAX_KINDS);
    kinds[nkinds++] = ops;
    return 0;
}

const kvt_tier_opt_spec *kvt__tier_opt_spec(const kvt_tier_ops *ops, const char *name)
{
    if (!ops || !ops->options || !name)
        return NULL;
    for (const kvt_tier_opt_spec *o = ops->options; o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

void kvt__tier_params_defaults(kvt_tier_params *p, const kvt_tier_ops *ops)
{
    p->nopts = 0;
    for (const kvt_tier_opt_spec *o = ops->options; o && o->name && p->nopts < KVT_TIER_MAX_OPTS;
         o++)
        p->opts[p->nopts++] = (kvt_tier_optval){.spec = o, .i = o->def};
}

static kvt_tier_optval *find_mut(kvt_tier_params *p, const char *name, kvt_tier_opt_type type)
{
    for (size_t i = 0; i < p->nopts; i++)
        if (strcmp(p->opts[i].spec->name, name) == 0 && p->opts[i].spec->type == type)
            return &p->opts[i];
    return NULL;
}

int kvt__tier_params_set_int(kvt_tier_params *p, const char *name, int64_t v)
{
    kvt_tier_optval *o = find_mut(p, name, KVT_OPTTYPE_INT);
    if (!o)
        return kvt__err(KVT_EINVAL, "%s: no integer option \"%s\"", p->name ? p->name : "tier",
                        name);
    o->i = v;
    o->set = 1;
    return 0;
}

int kvt__tier_params_set_str(kvt_tier_params *p, const char *name, const char *v)
{
    kvt_tier_optval *o = find_mut(p, name, KVT_OPTTYPE_STR);
    if (!o)
        return kvt__err(KVT_EINVAL, "%s: no string option \"%s\"", p->name ? p->name : "tier",
                        name);
    o->s = (char *)v; /* borrowed: params never free their strings */
    o->set = v != NULL;
    return 0;
}

static const kvt_tier_optval *find_val(const kvt_tier_params *p, const char *name)
{
    for (size_t i = 0; i < p->nopts; i++)
        if (strcmp(p->opts[i].spec->name, name) == 0)
            return &p->opts[i];
    return NULL;
}

int64_t kvt__tier_opt_int(const kvt_tier_params *p, const char *name)
{
    const kvt_tier_optval *v = find_val(p, name);
    if (!v || v->spec->type != KVT_OPTTYPE_INT)
        return 0;
    return v->set ? v->i : v->spec->def;
}

const char *kvt__tier_opt_str(const kvt_tier_params *p, const char *name)
{
    const kvt_tier_optval *v = find_val(p, name);
    if (!v || v->spec->type != KVT_OPTTYPE_STR)
        return NULL;
    return v->s;
}
