/* args.c — flag tables for the subcommands: parsing, sizes with suffixes, --help text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"

int bench_parse_size(const char *text, uint64_t *out)
{
    if (!text || !*text || *text == '-')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    case 't':
    case 'T':
        shift = 40;
        end++;
        break;
    }
    /* "2M", "2MiB" and "2MB" all mean 2 << 20: sizes here are memory sizes. */
    if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
        end += strlen(end);
    if (*end)
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

const char *bench_fmt_bytes(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    uint64_t v = bytes;
    /* Whole units only when exact, so that "256 KiB" never hides 262145. */
    while (u < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (v >= 10240 && u < 4) {
        double d = (double)bytes;
        int w = 0;
        while (w < 4 && d >= 1024) {
            d /= 1024;
            w++;
        }
        snprintf(buf, cap, "%.1f %s", d, unit[w]);
    } else {
        snprintf(buf, cap, "%" PRIu64 " %s", v, unit[u]);
    }
    return buf;
}

static const char *kind_meta(barg_kind k)
{
    switch (k) {
    case BARG_BOOL:
        return "";
    case BARG_INT:
        return " N";
    case BARG_SIZE:
        return " SIZE";
    case BARG_SIZE_LIST:
        return " SIZE[,SIZE...]";
    case BARG_STR:
        return " TEXT";
    }
    return "";
}

static void usage(FILE *f, const char *cmd, const char *summary, const barg *spec)
{
    fprintf(f, "usage: kvtier-bench %s [flags]\n  %s\n\nflags:\n", cmd, summary);
    for (const barg *a = spec; a->name; a++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", a->name, kind_meta(a->kind));
        fprintf(f, "  %-30s %s\n", left, a->help);
    }
    fprintf(f, "  %-30s %s\n", "--help", "this text");
    fprintf(f, "\nSIZE: bytes, or with a binary suffix: 256K, 2M, 1G (also 2MiB).\n");
}

static int bad(const char *cmd, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "kvtier-bench %s: ", cmd);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nTry 'kvtier-bench %s --help'.\n", cmd);
    return BENCH_USAGE;
}

static int set_value(const char *cmd, const barg *a, const char *v)
{
    switch (a->kind) {
    case BARG_BOOL:
        *(int *)a->out = 1;
        return 0;
    case BARG_INT: {
        errno = 0;
        char *end;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return bad(cmd, "--%s wants a whole number, not '%s'", a->name, v);
        *(int64_t *)a->out = x;
        return 0;
    }
    case BARG_SIZE:
        if (bench_parse_size(v, (uint64_t *)a->out))
            return bad(cmd, "--%s wants a size like 2M or 262144, not '%s'", a->name, v);
        return 0;
    case BARG_SIZE_LIST: {
        bench_list *l = a->out;
        l->n = 0;
        char buf[512];
        if (strlen(v) >= sizeof buf)
            return bad(cmd, "--%s: list too long: '%s'", a->name, v);
        strcpy(buf, v);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (l->n == BENCH_LIST_MAX)
                return bad(cmd, "--%s: more than 16 values in '%s'", a->name, v);
            if (bench_parse_size(tok, &l->v[l->n]))
                return bad(cmd, "--%s wants sizes like 256K,2M, not '%s'", a->name, v);
            l->n++;
        }
        if (l->n == 0)
            return bad(cmd, "--%s wants at least one value, got '%s'", a->name, v);
        return 0;
    }
    case BARG_STR:
        *(const char **)a->out = v;
        return 0;
    }
    return BENCH_USAGE;
}

int bench_parse_args(const char *cmd, const char *summary, const barg *spec, int argc,
                     char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout, cmd, summary, spec);
            return -1;
        }
        if (strncmp(arg, "--", 2) != 0)
            return bad(cmd, "unexpected argument '%s'%s", arg, "");
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const barg *a = spec;
        while (a->name && !(strlen(a->name) == len && strncmp(a->name, name, len) == 0))
            a++;
        if (!a->name)
            return bad(cmd, "unknown flag '%s'%s", arg, "");
        const char *value = NULL;
        if (a->kind == BARG_BOOL) {
            if (eq)
                return bad(cmd, "--%s takes no value ('%s')", a->name, arg);
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return bad(cmd, "--%s needs a value%s", a->name, "");
        }
        int rc = set_value(cmd, a, value);
        if (rc)
            return rc;
    }
    return 0;
}
