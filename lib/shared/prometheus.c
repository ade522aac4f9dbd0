/* prometheus.c — kvt_stats_prometheus: a store's statistics in the
 * Prometheus text exposition format, for engines and kvtierd to serve. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "kvtier.h"

typedef struct render {
    char *buf;
    size_t cap, len; /* len: what the whole text needs */
} render;

/* The stats as visited, so that one metric's lines (a tier each) can be
 * written together, as the format asks. */
typedef struct stat_list {
    struct {
        char name[128];
        uint64_t value;
        int done;
    } *v;
    size_t n, cap;
    int failed;
} stat_list;

static void collect(const char *name, uint64_t value, void *user)
{
    stat_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 128;
        void *v = kvt__realloc(l->v, cap * sizeof *l->v);
        if (!v) {
            l->failed = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->n].name, sizeof l->v[l->n].name, "%s", name);
    l->v[l->n].value = value;
    l->v[l->n].done = 0;
    l->n++;
}

static const char *base_name(const char *name)
{
    static const char *const tiers[] = {"hbm.", "dram.", "nvme."};
    for (size_t t = 0; t < sizeof tiers / sizeof *tiers; t++)
        if (!strncmp(name, tiers[t], strlen(tiers[t])))
            return name + strlen(tiers[t]);
    return name;
}

static void emit(render *r, const char *text, size_t l)
{
    if (r->len < r->cap) {
        size_t room = r->cap - r->len;
        memcpy(r->buf + r->len, text, l < room ? l : room);
    }
    r->len += l;
}

/* "dram.hits" -> kvtier_hits{tier="dram"}; "lookups" -> kvtier_lookups;
 * anything outside [a-zA-Z0-9_] becomes '_' (metric name rules). */
static void add_stat(const char *name, uint64_t value, void *user)
{
    render *r = user;
    static const char *const tiers[] = {"hbm", "dram", "nvme"};
    const char *tier = NULL;
    const char *dot = strchr(name, '.');
    if (dot)
        for (size_t t = 0; t < sizeof tiers / sizeof *tiers; t++)
            if ((size_t)(dot - name) == strlen(tiers[t]) && !strncmp(name, tiers[t], dot - name))
                tier = tiers[t];
    const char *base = tier ? dot + 1 : name;
    char line[384];
    size_t l = (size_t)snprintf(line, sizeof line, "kvtier_");
    for (const char *p = base; *p && l < 200; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '_';
        line[l++] = ok ? ch : '_';
    }
    if (tier)
        l += (size_t)snprintf(line + l, sizeof line - l, "{tier=\"%s\"}", tier);
    l += (size_t)snprintf(line + l, sizeof line - l, " %llu\n", (unsigned long long)value);
    emit(r, line, l);
}

int kvt_stats_prometheus(kvt_store *store, char *buf, size_t cap)
{
    kvt__err_clear();
    if (!buf && cap)
        return kvt__err(KVT_ENULL, "kvt_stats_prometheus: buf is NULL");
    render r = {.buf = buf, .cap = cap};
    stat_list l = {0};
    int rc = kvt_stats(store, collect, &l);
    if (rc < 0 || l.failed) {
        kvt__free(l.v);
        return rc < 0 ? rc : kvt__err(KVT_ENOMEM, "kvt_stats_prometheus: out of memory");
    }
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].done)
            continue;
        const char *base = base_name(l.v[i].name);
        for (size_t j = i; j < l.n; j++)
            if (!l.v[j].done && !strcmp(base_name(l.v[j].name), base)) {
                add_stat(l.v[j].name, l.v[j].value, &r);
                l.v[j].done = 1;
            }
    }
    kvt__free(l.v);
    if (cap)
        buf[r.len < cap ? r.len : cap - 1] = 0;
    if (r.len > INT32_MAX)
        return kvt__err(KVT_ESIZE, "kvt_stats_prometheus: text too long");
    return (int)r.len;
}
