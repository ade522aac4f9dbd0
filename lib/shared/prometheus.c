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

static void emit(render *r, const char *text, size_t l)
{
    if (r->len < r->cap) {
        size_t room = r->cap - r->len;
        memcpy(r->buf + r->len, text, l < room ? l : room);
    }
    r->len += l;
}

/* A tier's statistics are "<tier>.<name>" (the tier instance's name);
 * "client." and "server." ones are not a tier's. Returns the part after
 * the tier's name, or name itself; *tier_len gets the tier name's length. */
static const char *split_tier(const char *name, size_t *tier_len)
{
    const char *dot = strchr(name, '.');
    *tier_len = 0;
    if (!dot || dot == name || !strncmp(name, "client.", 7) || !strncmp(name, "server.", 7))
        return name;
    *tier_len = (size_t)(dot - name);
    return dot + 1;
}

static const char *base_name(const char *name)
{
    size_t l;
    return split_tier(name, &l);
}

/* "dram.hits" -> kvtier_hits{tier="dram"}; "lookups" -> kvtier_lookups;
 * anything outside [a-zA-Z0-9_] becomes '_' (metric name rules). */
static void add_stat(render *r, const char *name, uint64_t value)
{
    size_t tier_len;
    const char *base = split_tier(name, &tier_len);
    char line[384];
    size_t l = (size_t)snprintf(line, sizeof line, "kvtier_");
    for (const char *p = base; *p && l < 200; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '_';
        line[l++] = ok ? ch : '_';
    }
    if (tier_len) /* tier names are [A-Za-z0-9_-]: nothing to escape */
        l += (size_t)snprintf(line + l, sizeof line - l, "{tier=\"%.*s\"}",
                              (int)(tier_len < 64 ? tier_len : 64), name);
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
                add_stat(&r, l.v[j].name, l.v[j].value);
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
