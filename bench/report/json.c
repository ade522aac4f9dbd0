/* json.c — a small streaming JSON writer: pretty-printed, escaped, non-finite numbers as null. */
#include <math.h>
#include <stdio.h>

#include "../bench.h"

#ifndef KVT_BENCH_BUILDTYPE
#define KVT_BENCH_BUILDTYPE "unknown"
#endif

void bench_json_init(bench_json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->count[0] = 0;
}

static void indent(bench_json *j)
{
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->f);
}

static void string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Separator, newline and indentation before a member, then its key. */
static void member(bench_json *j, const char *key)
{
    if (j->depth > 0) {
        if (j->count[j->depth]++)
            fputc(',', j->f);
        fputc('\n', j->f);
        indent(j);
    }
    if (key) {
        string(j->f, key);
        fputs(": ", j->f);
    }
}

static void open_(bench_json *j, const char *key, char c)
{
    member(j, key);
    fputc(c, j->f);
    if (j->depth + 1 < BENCH_JSON_DEPTH)
        j->depth++;
    j->count[j->depth] = 0;
}

static void close_(bench_json *j, char c)
{
    int had = j->count[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (had) {
        fputc('\n', j->f);
        indent(j);
    }
    fputc(c, j->f);
    if (j->depth == 0)
        fputc('\n', j->f);
}

void bench_json_object(bench_json *j, const char *key)
{
    open_(j, key, '{');
}

void bench_json_end_object(bench_json *j)
{
    close_(j, '}');
}

void bench_json_array(bench_json *j, const char *key)
{
    open_(j, key, '[');
}

void bench_json_end_array(bench_json *j)
{
    close_(j, ']');
}

void bench_json_str(bench_json *j, const char *key, const char *value)
{
    member(j, key);
    if (value)
        string(j->f, value);
    else
        fputs("null", j->f);
}

void bench_json_u64(bench_json *j, const char *key, uint64_t value)
{
    member(j, key);
    fprintf(j->f, "%llu", (unsigned long long)value);
}

void bench_json_i64(bench_json *j, const char *key, int64_t value)
{
    member(j, key);
    fprintf(j->f, "%lld", (long long)value);
}

void bench_json_num(bench_json *j, const char *key, double value)
{
    member(j, key);
    if (!isfinite(value))
        fputs("null", j->f);
    else if (fabs(value) >= 1e4 && fabs(value) < 1e15)
        fprintf(j->f, "%.0f", value); /* rates: whole numbers read better */
    else
        fprintf(j->f, "%.5g", value); /* measurements carry ~4 digits at best */
}

void bench_json_bool(bench_json *j, const char *key, int value)
{
    member(j, key);
    fputs(value ? "true" : "false", j->f);
}

void bench_json_header(bench_json *j, const char *bench)
{
    char date[32];
    bench_json_str(j, "bench", bench);
    bench_json_i64(j, "schema", BENCH_JSON_SCHEMA);
    bench_json_str(j, "kvtier_version", kvt_version_string());
    bench_json_str(j, "date", bench_utc_date(date, sizeof date));
    bench_json_str(j, "cpu_model", bench_cpu_model());
    bench_json_i64(j, "cpus", bench_cpus());
    bench_json_num(j, "loadavg_1m", bench_loadavg());
    bench_json_str(j, "buildtype", KVT_BENCH_BUILDTYPE);
}
