/* rows.h — a small row/column model: a command fills rows of named, typed values once; a JSON
 * renderer and a text-table renderer print the same rows, so the two outputs cannot drift. */
#ifndef KVT_BENCH_ROWS_H
#define KVT_BENCH_ROWS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../bench.h"

typedef enum bench_type {
    BT_U64,  /* JSON integer */
    BT_I64,  /* JSON integer */
    BT_NUM,  /* JSON number; NaN and infinities are null */
    BT_STR,  /* JSON string (copied into the rows), or null */
    BT_BOOL, /* JSON true / false */
    BT_LABEL /* a string for the text view only (JSON spells it elsewhere) */
} bench_type;

/* A field of every row: its JSON member name and type, in JSON order. */
typedef struct bench_field {
    const char *key;
    bench_type type;
} bench_field;

#define BENCH_COL_KEYS 3
/* A column of the text view: which fields it shows and how.
 * - fmt with one integer or string key: printf of the value as its type
 *   (uint64_t, int64_t, const char *); NULL fmt: the type's plain form.
 * - fmt "bytes": a human size of a u64 field ("256 KiB").
 * - fmt "yes|no" on a bool field: the word for true, then for false.
 * - a number key, several keys, or a `per`: printf of each value as a double
 *   × scale (÷ per), e.g. a ratio and its spread: "%.1f%% (%.0f-%.0f)", scale 100.
 * A cell whose fields are absent prints "-"; a NaN prints as printf prints it. */
typedef struct bench_col {
    const char *head;
    const char *fmt;
    const char *keys[BENCH_COL_KEYS];
    double scale;     /* 0: 1 */
    char align;       /* 'l' or 'r' (the default) */
    const char *when; /* a field: the cell prints "-" unless it is set, non-zero and not NaN
                         (a string: non-empty) */
    const char *per;  /* a field every value is divided by (a share of a total) */
} bench_col;

/* Columns by designated initializers (the other members stay zero). */
#define BENCH_COL(head_, fmt_, ...) {.head = (head_), .fmt = (fmt_), .keys = {__VA_ARGS__}}
#define BENCH_COL_LEFT(head_, fmt_, ...)                                                          \
    {.head = (head_), .fmt = (fmt_), .keys = {__VA_ARGS__}, .align = 'l'}
/* A ratio in percent with its 10th-90th percentile spread: "97.1% (93-99)". */
#define BENCH_COL_RATIO(head_, key_, p10_, p90_)                                                  \
    {.head = (head_), .fmt = "%.1f%% (%.0f-%.0f)", .keys = {(key_), (p10_), (p90_)}, .scale = 100}

typedef struct bench_value {
    int set; /* 0: absent (omitted from JSON, "-" in text) */
    union {
        uint64_t u;
        int64_t i;
        double d;
        char *s;
        int b;
    } v;
} bench_value;

typedef struct bench_rows {
    const bench_field *fields;
    int nfields;
    bench_value *v; /* row-major, nfields per row */
    char *hidden;   /* per row: 1 = JSON only, left out of the text table */
    size_t nrows, cap;
    int oom; /* a row or string could not be stored: the output comes out short */
} bench_rows;

/* fields: nfields entries that outlive the rows. */
void bench_rows_init(bench_rows *t, const bench_field *fields, int nfields);
void bench_rows_free(bench_rows *t);
/* Starts a row with every field absent; returns its index. */
size_t bench_rows_add(bench_rows *t);
/* The last row is JSON only: the text table leaves it out. */
void bench_rows_hide_text(bench_rows *t);
/* Sets a field of the last row by key. The key must be one of the fields
 * and the setter must match its type (a programming error otherwise: the
 * value is dropped and a message printed). */
void bench_rows_u64(bench_rows *t, const char *key, uint64_t v);
void bench_rows_i64(bench_rows *t, const char *key, int64_t v);
void bench_rows_num(bench_rows *t, const char *key, double v);
void bench_rows_str(bench_rows *t, const char *key, const char *v); /* BT_STR, BT_LABEL; NULL: null */
void bench_rows_bool(bench_rows *t, const char *key, int v);

/* A string (or label) field of a row, or NULL when absent. */
const char *bench_rows_str_of(const bench_rows *t, size_t row, const char *key);

/* JSON: the rows as an array of objects (member `key`, NULL in an array). */
void bench_rows_json(const bench_rows *t, bench_json *j, const char *key);
/* JSON: one row as an object (member `key`). */
void bench_rows_json_row(const bench_rows *t, size_t row, bench_json *j, const char *key);
/* CSV: a header of the field keys (labels left out), then one line per row,
 * hidden rows included; absent values and NaN are empty, infinities "inf",
 * booleans 1/0, strings quoted. */
void bench_rows_csv(const bench_rows *t, FILE *f);
/* Text: the columns cols[0..ncols) of every row, aligned, indented. */
void bench_rows_text(const bench_rows *t, const bench_col *cols, int ncols, FILE *f, int indent);

#endif
