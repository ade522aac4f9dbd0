/* table.c — column-aligned text tables and the header lines of human reports. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bench.h"

#ifndef KVT_BENCH_BUILDTYPE
#define KVT_BENCH_BUILDTYPE "unknown"
#endif

void bench_table_init(bench_table *t, int ncols, const char *const *headers, const char *align)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols < BENCH_TABLE_COLS ? ncols : BENCH_TABLE_COLS;
    for (int c = 0; c < t->ncols; c++) {
        t->head[c] = headers[c];
        t->align[c] = align && align[c] == 'l' ? 'l' : 'r';
    }
}

void bench_table_cell(bench_table *t, const char *fmt, ...)
{
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **cells = realloc(t->cells, cap * sizeof *cells);
        if (!cells)
            return; /* the table comes out short; nothing else to do */
        t->cells = cells;
        t->cap = cap;
    }
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t->cells[t->ncells++] = strdup(buf);
}

static size_t width(const char *s)
{
    return s ? strlen(s) : 0;
}

void bench_table_print(const bench_table *t, FILE *f, int indent)
{
    size_t w[BENCH_TABLE_COLS] = {0};
    for (int c = 0; c < t->ncols; c++)
        w[c] = width(t->head[c]);
    for (size_t i = 0; i < t->ncells; i++) {
        size_t c = i % (size_t)t->ncols;
        if (width(t->cells[i]) > w[c])
            w[c] = width(t->cells[i]);
    }
    size_t rows = (t->ncells + (size_t)t->ncols - 1) / (size_t)t->ncols;
    for (size_t r = 0; r <= rows; r++) {
        fprintf(f, "%*s", indent, "");
        for (int c = 0; c < t->ncols; c++) {
            size_t i = (r - 1) * (size_t)t->ncols + (size_t)c;
            const char *s = r == 0 ? t->head[c] : i < t->ncells ? t->cells[i] : "";
            if (!s)
                s = "";
            int last = c == t->ncols - 1;
            if (t->align[c] == 'l' && last)
                fputs(s, f); /* no trailing blanks */
            else if (t->align[c] == 'l')
                fprintf(f, "%-*s", (int)w[c], s);
            else
                fprintf(f, "%*s", (int)w[c], s);
            if (!last)
                fputs("  ", f);
        }
        fputc('\n', f);
    }
}

void bench_table_free(bench_table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

void bench_print_header(FILE *f, const char *what)
{
    char date[32];
    fprintf(f, "kvtier-bench %s: %s\n", kvt_version_string(), what);
    fprintf(f, "  machine: %s, %d CPUs, load average %.2f; build: %s; %s\n", bench_cpu_model(),
            bench_cpus(), bench_loadavg(), KVT_BENCH_BUILDTYPE, bench_utc_date(date, sizeof date));
}
