/* rows.c — rows of named, typed values and their two renderings: JSON objects and a text table. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rows.h"

static int is_string(bench_type type)
{
    return type == BT_STR || type == BT_LABEL;
}

void bench_rows_init(bench_rows *t, const bench_field *fields, int nfields)
{
    memset(t, 0, sizeof *t);
    t->fields = fields;
    t->nfields = nfields;
}

void bench_rows_free(bench_rows *t)
{
    for (size_t i = 0; i < t->nrows * (size_t)t->nfields; i++)
        if (t->v[i].set && is_string(t->fields[i % (size_t)t->nfields].type))
            free(t->v[i].v.s);
    free(t->v);
    free(t->hidden);
    memset(t, 0, sizeof *t);
}

size_t bench_rows_add(bench_rows *t)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        bench_value *v = realloc(t->v, cap * (size_t)t->nfields * sizeof *v);
        if (v)
            t->v = v;
        char *h = v ? realloc(t->hidden, cap) : NULL;
        if (!h) {
            t->oom = 1;
            return t->nrows ? t->nrows - 1 : 0; /* later setters overwrite the last row */
        }
        t->hidden = h;
        t->cap = cap;
    }
    memset(&t->v[t->nrows * (size_t)t->nfields], 0, (size_t)t->nfields * sizeof *t->v);
    t->hidden[t->nrows] = 0;
    return t->nrows++;
}

void bench_rows_hide_text(bench_rows *t)
{
    if (t->nrows)
        t->hidden[t->nrows - 1] = 1;
}

static int field_index(const bench_rows *t, const char *key)
{
    for (int f = 0; f < t->nfields; f++)
        if (strcmp(t->fields[f].key, key) == 0)
            return f;
    return -1;
}

/* The last row's slot for key, checked against the type the caller sets. */
static bench_value *slot(bench_rows *t, const char *key, bench_type type)
{
    int f = field_index(t, key);
    if (f < 0 || !t->nrows || (t->fields[f].type != type &&
                               !(type == BT_STR && t->fields[f].type == BT_LABEL))) {
        fprintf(stderr, "kvtier-bench: internal: row field '%s' %s\n", key,
                f < 0 ? "is not declared" : !t->nrows ? "set before a row" : "has another type");
        return NULL;
    }
    bench_value *v = &t->v[(t->nrows - 1) * (size_t)t->nfields + (size_t)f];
    if (v->set && is_string(type))
        free(v->v.s);
    v->set = 1;
    return v;
}

void bench_rows_u64(bench_rows *t, const char *key, uint64_t x)
{
    bench_value *v = slot(t, key, BT_U64);
    if (v)
        v->v.u = x;
}

void bench_rows_i64(bench_rows *t, const char *key, int64_t x)
{
    bench_value *v = slot(t, key, BT_I64);
    if (v)
        v->v.i = x;
}

void bench_rows_num(bench_rows *t, const char *key, double x)
{
    bench_value *v = slot(t, key, BT_NUM);
    if (v)
        v->v.d = x;
}

void bench_rows_str(bench_rows *t, const char *key, const char *x)
{
    bench_value *v = slot(t, key, BT_STR);
    if (!v)
        return;
    v->v.s = x ? strdup(x) : NULL; /* NULL: JSON null, "-" in text */
    if (x && !v->v.s) {
        v->set = 0;
        t->oom = 1;
    }
}

void bench_rows_bool(bench_rows *t, const char *key, int x)
{
    bench_value *v = slot(t, key, BT_BOOL);
    if (v)
        v->v.b = x != 0;
}

static const bench_value *cell(const bench_rows *t, size_t row, int f)
{
    return &t->v[row * (size_t)t->nfields + (size_t)f];
}

const char *bench_rows_str_of(const bench_rows *t, size_t row, const char *key)
{
    int f = field_index(t, key);
    if (f < 0 || row >= t->nrows || !is_string(t->fields[f].type) || !cell(t, row, f)->set)
        return NULL;
    return cell(t, row, f)->v.s;
}

void bench_rows_json_row(const bench_rows *t, size_t row, bench_json *j, const char *key)
{
    bench_json_object(j, key);
    for (int f = 0; f < t->nfields; f++) {
        const bench_field *fd = &t->fields[f];
        const bench_value *v = cell(t, row, f);
        if (fd->type == BT_LABEL || !v->set)
            continue;
        switch (fd->type) {
        case BT_U64:
            bench_json_u64(j, fd->key, v->v.u);
            break;
        case BT_I64:
            bench_json_i64(j, fd->key, v->v.i);
            break;
        case BT_NUM:
            bench_json_num(j, fd->key, v->v.d);
            break;
        case BT_STR:
            bench_json_str(j, fd->key, v->v.s);
            break;
        case BT_BOOL:
            bench_json_bool(j, fd->key, v->v.b);
            break;
        case BT_LABEL:
            break;
        }
    }
    bench_json_end_object(j);
}

void bench_rows_json(const bench_rows *t, bench_json *j, const char *key)
{
    bench_json_array(j, key);
    for (size_t r = 0; r < t->nrows; r++)
        bench_rows_json_row(t, r, j, NULL);
    bench_json_end_array(j);
}

void bench_rows_csv(const bench_rows *t, FILE *f)
{
    int first = 1;
    for (int i = 0; i < t->nfields; i++)
        if (t->fields[i].type != BT_LABEL)
            fprintf(f, "%s%s", first ? "" : ",", t->fields[i].key), first = 0;
    fputc('\n', f);
    for (size_t r = 0; r < t->nrows; r++) {
        first = 1;
        for (int i = 0; i < t->nfields; i++) {
            const bench_field *fd = &t->fields[i];
            if (fd->type == BT_LABEL)
                continue;
            if (!first)
                fputc(',', f);
            first = 0;
            const bench_value *v = cell(t, r, i);
            if (!v->set)
                continue;
            switch (fd->type) {
            case BT_U64:
                fprintf(f, "%" PRIu64, v->v.u);
                break;
            case BT_I64:
                fprintf(f, "%" PRId64, v->v.i);
                break;
            case BT_NUM:
                if (isinf(v->v.d))
                    fputs(v->v.d > 0 ? "inf" : "-inf", f);
                else if (!isnan(v->v.d))
                    fprintf(f, "%.6g", v->v.d);
                break;
            case BT_STR:
                if (v->v.s) { /* quoted, quotes doubled (RFC 4180) */
                    fputc('"', f);
                    for (const char *c = v->v.s; *c; c++)
                        fputs(*c == '"' ? "\"\"" : (char[2]){*c, 0}, f);
                    fputc('"', f);
                }
                break;
            case BT_BOOL:
                fputs(v->v.b ? "1" : "0", f);
                break;
            case BT_LABEL:
                break;
            }
        }
        fputc('\n', f);
    }
}

static double as_double(bench_type type, const bench_value *v)
{
    switch (type) {
    case BT_U64:
        return (double)v->v.u;
    case BT_I64:
        return (double)v->v.i;
    case BT_NUM:
        return v->v.d;
    case BT_BOOL:
        return v->v.b;
    case BT_STR:
    case BT_LABEL:
        break;
    }
    return NAN;
}

/* One text cell of column c in row r, or "-" where a value is absent (a NaN prints as
 * printf prints it, as the bench's tables always did). */
/* Whether column c's `when` field lets row r's cell show. */
static int shown(const bench_rows *t, size_t r, const bench_col *c)
{
    if (!c->when)
        return 1;
    int f = field_index(t, c->when);
    if (f < 0 || !cell(t, r, f)->set)
        return 0;
    const bench_value *v = cell(t, r, f);
    switch (t->fields[f].type) {
    case BT_STR:
    case BT_LABEL:
        return v->v.s && v->v.s[0] != 0;
    default: {
        double d = as_double(t->fields[f].type, v);
        return d == d && d != 0; /* NaN: no */
    }
    }
}

static void text_cell(const bench_rows *t, size_t r, const bench_col *c, bench_table *tab)
{
    int f[BENCH_COL_KEYS], n = 0;
    if (!shown(t, r, c)) {
        bench_table_cell(tab, "-");
        return;
    }
    for (; n < BENCH_COL_KEYS && c->keys[n]; n++) {
        f[n] = field_index(t, c->keys[n]);
        if (f[n] < 0 || !cell(t, r, f[n])->set) {
            bench_table_cell(tab, "-");
            return;
        }
    }
    if (n == 0) {
        bench_table_cell(tab, "-");
        return;
    }
    const bench_field *fd = &t->fields[f[0]];
    const bench_value *v = cell(t, r, f[0]);
    if (n == 1 && c->fmt && strcmp(c->fmt, "bytes") == 0) {
        char buf[32];
        uint64_t bytes = fd->type == BT_U64 ? v->v.u : 0;
        bench_table_cell(tab, "%s", bench_fmt_bytes(bytes, buf, sizeof buf));
        return;
    }
    double scale = c->scale ? c->scale : 1;
    if (c->per) {
        int p = field_index(t, c->per);
        if (p < 0 || !cell(t, r, p)->set) {
            bench_table_cell(tab, "-");
            return;
        }
        scale /= as_double(t->fields[p].type, cell(t, r, p));
    }
    if (n == 1 && fd->type != BT_NUM && !c->per) {
        /* The fmt comes from the command's column table, never from input. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        switch (fd->type) {
        case BT_U64:
            bench_table_cell(tab, c->fmt ? c->fmt : "%" PRIu64, v->v.u);
            break;
        case BT_I64:
            bench_table_cell(tab, c->fmt ? c->fmt : "%" PRId64, v->v.i);
            break;
        case BT_STR:
        case BT_LABEL:
            if (v->v.s)
                bench_table_cell(tab, c->fmt ? c->fmt : "%s", v->v.s);
            else
                bench_table_cell(tab, "-");
            break;
        case BT_BOOL: {
            /* fmt "met|MISSED": the words for true and false */
            const char *bar = c->fmt ? strchr(c->fmt, '|') : NULL;
            if (bar && v->v.b)
                bench_table_cell(tab, "%.*s", (int)(bar - c->fmt), c->fmt);
            else if (bar)
                bench_table_cell(tab, "%s", bar + 1);
            else
                bench_table_cell(tab, "%s", v->v.b ? "yes" : "no");
            break;
        }
        case BT_NUM:
            break;
        }
        return;
    }
    double d[BENCH_COL_KEYS] = {0};
    for (int k = 0; k < n; k++) {
        d[k] = as_double(t->fields[f[k]].type, cell(t, r, f[k])) * scale;
    }
    bench_table_cell(tab, c->fmt ? c->fmt : "%.2f", d[0], d[1], d[2]);
#pragma GCC diagnostic pop
}

void bench_rows_text(const bench_rows *t, const bench_col *cols, int ncols, FILE *f, int indent)
{
    const char *head[BENCH_TABLE_COLS];
    char align[BENCH_TABLE_COLS + 1] = {0};
    if (ncols > BENCH_TABLE_COLS)
        ncols = BENCH_TABLE_COLS;
    for (int c = 0; c < ncols; c++) {
        head[c] = cols[c].head;
        align[c] = cols[c].align == 'l' ? 'l' : 'r';
    }
    bench_table tab;
    bench_table_init(&tab, ncols, head, align);
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < ncols && !t->hidden[r]; c++)
            text_cell(t, r, &cols[c], &tab);
    bench_table_print(&tab, f, indent);
    bench_table_free(&tab);
}
