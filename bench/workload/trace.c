/* trace.c — reads Mooncake JSONL and WEKA kv-cache-tester JSON traces into one replay-ordered set of requests. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trace.h"

/* Mooncake's hash_ids are per 512-token block (its README, Appendix A). */
#define MOONCAKE_BLOCK_TOKENS 512
/* Subagents inside subagents: deeper than this is a malformed file, not an agent. */
#define MAX_NESTING 8
#define MAX_JSON_DEPTH 64
#define NO_IDX UINT32_MAX

/* ------------------------------------------------------------ JSON reader */

/* A cursor over one JSON text. Nothing is allocated: objects and arrays are
 * walked member by member and unwanted values skipped, so a 4 MB session
 * costs no more memory than its hash ids. Strings are returned raw (escapes
 * undecoded): the keys and values compared here contain none. */
typedef struct jr {
    const char *start, *p, *end;
    const char *err;    /* the first error, static text */
    const char *errpos; /* where it happened */
} jr;

static int jr_fail(jr *r, const char *msg)
{
    if (!r->err) {
        r->err = msg;
        r->errpos = r->p;
    }
    return -1;
}

static int jr_peek(jr *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static int jr_expect(jr *r, char c, const char *msg)
{
    if (jr_peek(r) != (unsigned char)c)
        return jr_fail(r, msg);
    r->p++;
    return 0;
}

static int jr_string(jr *r, const char **s, size_t *len)
{
    if (jr_peek(r) != '"')
        return jr_fail(r, "expected a string");
    const char *b = ++r->p;
    while (r->p < r->end && *r->p != '"') {
        if (*r->p == '\\' && r->end - r->p < 2)
            break;
        r->p += *r->p == '\\' ? 2 : 1;
    }
    if (r->p >= r->end)
        return jr_fail(r, "unterminated string");
    *s = b;
    *len = (size_t)(r->p - b);
    r->p++;
    return 0;
}

static int jr_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

/* The characters of a number, copied out so strtod stops where JSON does. */
static int jr_number_text(jr *r, char *buf, size_t cap)
{
    jr_peek(r);
    size_t n = 0;
    while (r->p < r->end && n + 1 < cap && strchr("+-0123456789.eE", *r->p) && *r->p)
        buf[n++] = *r->p++;
    buf[n] = 0;
    if (n == 0 || n + 1 == cap)
        return jr_fail(r, "expected a number");
    return 0;
}

static int jr_double(jr *r, double *out)
{
    char buf[64], *end;
    if (jr_number_text(r, buf, sizeof buf))
        return -1;
    errno = 0;
    *out = strtod(buf, &end);
    if (*end || errno || !isfinite(*out))
        return jr_fail(r, "malformed number");
    return 0;
}

static int jr_u64(jr *r, uint64_t *out)
{
    char buf[32], *end;
    const char *at = r->p;
    if (jr_number_text(r, buf, sizeof buf))
        return -1;
    errno = 0;
    *out = strtoull(buf, &end, 10);
    if (buf[0] < '0' || buf[0] > '9' || *end || errno) {
        r->p = at;
        return jr_fail(r, "expected a whole number from 0 to 2^64-1");
    }
    return 0;
}

static int jr_obj_begin(jr *r)
{
    return jr_expect(r, '{', "expected an object");
}

/* 1 and the next member's key (the cursor on its value), 0 after the closing
 * brace, -1 on error. *first starts at 1. */
static int jr_obj_next(jr *r, int *first, const char **key, size_t *klen)
{
    if (jr_peek(r) == '}') {
        r->p++;
        return 0;
    }
    if (!*first && jr_expect(r, ',', "expected ',' or '}'"))
        return -1;
    *first = 0;
    if (jr_string(r, key, klen) || jr_expect(r, ':', "expected ':'"))
        return -1;
    return 1;
}

static int jr_arr_begin(jr *r)
{
    return jr_expect(r, '[', "expected an array");
}

/* 1 when an element follows (the cursor on it), 0 after ']', -1 on error. */
static int jr_arr_next(jr *r, int *first)
{
    if (jr_peek(r) == ']') {
        r->p++;
        return 0;
    }
    if (!*first && jr_expect(r, ',', "expected ',' or ']'"))
        return -1;
    *first = 0;
    return 1;
}

static int jr_literal(jr *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return jr_fail(r, "unexpected character");
    r->p += n;
    return 0;
}

static int jr_skip(jr *r, int depth)
{
    if (depth > MAX_JSON_DEPTH)
        return jr_fail(r, "nested too deeply");
    int c = jr_peek(r), first = 1, k;
    const char *s;
    size_t len;
    double d;
    switch (c) {
    case '{':
        r->p++;
        while ((k = jr_obj_next(r, &first, &s, &len)) > 0)
            if (jr_skip(r, depth + 1))
                return -1;
        return k;
    case '[':
        r->p++;
        while ((k = jr_arr_next(r, &first)) > 0)
            if (jr_skip(r, depth + 1))
                return -1;
        return k;
    case '"':
        return jr_string(r, &s, &len);
    case 't':
        return jr_literal(r, "true");
    case 'f':
        return jr_literal(r, "false");
    case 'n':
        return jr_literal(r, "null");
    case -1:
        return jr_fail(r, "unexpected end of file");
    default:
        return jr_double(r, &d);
    }
}

/* ------------------------------------------------------------ parse state */

typedef struct slot {
    uint64_t id;
    uint32_t stream, idx; /* idx NO_IDX: empty */
} slot;

typedef struct parse_state {
    slot *map; /* (stream, hash id) -> unique block, open addressing */
    size_t mapcap;
    uint64_t *blk_id; /* per unique block */
    uint32_t *blk_stream;
    size_t blkcap;
    size_t reqcap, refcap, filecap;
} parse_state;

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * elem);
    if (q)
        *cap = c;
    return q;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static slot *map_find(slot *map, size_t cap, uint32_t stream, uint64_t id)
{
    size_t i = (size_t)mix(id ^ ((uint64_t)stream << 40) ^ stream) & (cap - 1);
    while (map[i].idx != NO_IDX && (map[i].id != id || map[i].stream != stream))
        i = (i + 1) & (cap - 1);
    return &map[i];
}

static int map_grow(parse_state *ps)
{
    size_t cap = ps->mapcap ? ps->mapcap * 2 : 1 << 16;
    slot *map = malloc(cap * sizeof *map);
    if (!map)
        return -1;
    for (size_t i = 0; i < cap; i++)
        map[i].idx = NO_IDX;
    for (size_t i = 0; i < ps->mapcap; i++)
        if (ps->map[i].idx != NO_IDX)
            *map_find(map, cap, ps->map[i].stream, ps->map[i].id) = ps->map[i];
    free(ps->map);
    ps->map = map;
    ps->mapcap = cap;
    return 0;
}

/* The unique block of (stream, id), made on first sight; NO_IDX without memory. */
static uint32_t block_of(trace_set *ts, parse_state *ps, uint32_t stream, uint64_t id)
{
    if (2 * (ts->nblocks + 1) > ps->mapcap && map_grow(ps))
        return NO_IDX;
    slot *s = map_find(ps->map, ps->mapcap, stream, id);
    if (s->idx != NO_IDX)
        return s->idx;
    if (ts->nblocks >= NO_IDX - 1)
        return NO_IDX;
    size_t cap = ps->blkcap;
    uint64_t *ids = grow(ps->blk_id, &cap, ts->nblocks + 1, sizeof *ids);
    if (!ids)
        return NO_IDX;
    ps->blk_id = ids;
    cap = ps->blkcap;
    uint32_t *st = grow(ps->blk_stream, &cap, ts->nblocks + 1, sizeof *st);
    if (!st)
        return NO_IDX;
    ps->blk_stream = st;
    ps->blkcap = cap;
    s->id = id;
    s->stream = stream;
    s->idx = (uint32_t)ts->nblocks;
    ps->blk_id[ts->nblocks] = id;
    ps->blk_stream[ts->nblocks] = stream;
    return (uint32_t)ts->nblocks++;
}

/* --------------------------------------------------------------- parsing */

typedef struct ctx {
    trace_set *ts;
    parse_state *ps;
    jr r;
    trace_file *file;
    uint32_t session;
    const char *oom; /* set when memory ran out */
} ctx;

/* "hash_ids": [...] appended to the set's references. Returns the count or -1. */
static int64_t read_ids(ctx *c, uint32_t stream)
{
    jr *r = &c->r;
    int first = 1, k;
    int64_t n = 0;
    if (jr_arr_begin(r))
        return -1;
    while ((k = jr_arr_next(r, &first)) > 0) {
        uint64_t id;
        if (jr_u64(r, &id))
            return -1;
        uint32_t b = block_of(c->ts, c->ps, stream, id);
        trace_set *ts = c->ts;
        uint32_t *ref = grow(ts->ref, &c->ps->refcap, ts->nref + 1, sizeof *ts->ref);
        if (b == NO_IDX || !ref) {
            c->oom = "out of memory for the trace's blocks";
            return jr_fail(r, c->oom);
        }
        ts->ref = ref;
        ts->ref[ts->nref++] = b;
        n++;
    }
    if (k < 0)
        return -1;
    if (n > (int64_t)UINT32_MAX)
        return jr_fail(r, "a request of more than 2^32 blocks");
    return n;
}

static int add_request(ctx *c, double t_s, uint32_t stream, uint64_t off, uint32_t n)
{
    trace_set *ts = c->ts;
    trace_req *req = grow(ts->req, &c->ps->reqcap, ts->nreq + 1, sizeof *req);
    if (!req) {
        c->oom = "out of memory for the trace's requests";
        return jr_fail(&c->r, c->oom);
    }
    ts->req = req;
    if (t_s < 0 || t_s > 1e9) /* 30 years: a time no trace has */
        return jr_fail(&c->r, "a request time below 0 or above 1e9 s");
    req[ts->nreq++] = (trace_req){.t_ns = (uint64_t)llround(t_s * 1e9),
                                  .off = off,
                                  .n = n,
                                  .stream = stream,
                                  .session = c->session};
    c->file->requests++;
    c->file->refs += n;
    return 0;
}

/* One Mooncake line's object: "timestamp" (ms) and "hash_ids". */
static int mooncake_request(ctx *c, uint32_t stream)
{
    jr *r = &c->r;
    int first = 1, k, have_t = 0, have_ids = 0;
    const char *key;
    size_t klen;
    double t_ms = 0;
    uint64_t off = c->ts->nref;
    int64_t n = 0;
    if (jr_obj_begin(r))
        return -1;
    while ((k = jr_obj_next(r, &first, &key, &klen)) > 0) {
        if (jr_is(key, klen, "timestamp")) {
            if (jr_double(r, &t_ms))
                return -1;
            have_t = 1;
        } else if (jr_is(key, klen, "hash_ids")) {
            if (have_ids)
                return jr_fail(r, "two \"hash_ids\" in one request");
            if ((n = read_ids(c, stream)) < 0)
                return -1;
            have_ids = 1;
        } else if (jr_skip(r, 1)) {
            return -1;
        }
    }
    if (k < 0)
        return -1;
    if (!have_ids)
        return jr_fail(r, "a request without \"hash_ids\"");
    if (!have_t)
        return jr_fail(r, "a request without \"timestamp\"");
    return add_request(c, t_ms / 1e3, stream, off, (uint32_t)n);
}

static int parse_mooncake(ctx *c)
{
    uint32_t stream = c->ts->nstreams++;
    c->file->streams = 1;
    c->file->block_tokens = MOONCAKE_BLOCK_TOKENS;
    while (jr_peek(&c->r) != -1)
        if (mooncake_request(c, stream))
            return -1;
    return 0;
}

static int weka_requests(ctx *c, uint32_t stream, int depth);

/* One entry of a WEKA requests[]: a request (it has "hash_ids"), or a
 * subagent (it has "requests"): a stream of its own whose times count from
 * the subagent's "t". Members may come in any order, so a subagent's
 * requests are read first and shifted once its "t" is known. */
static int weka_entry(ctx *c, uint32_t stream, int depth)
{
    jr *r = &c->r;
    trace_set *ts = c->ts;
    int first = 1, k, have_t = 0, have_ids = 0, sub = 0;
    const char *key;
    size_t klen;
    double t = 0;
    uint64_t off = ts->nref;
    size_t sub_from = 0, sub_to = 0;
    int64_t n = 0;
    if (jr_obj_begin(r))
        return -1;
    while ((k = jr_obj_next(r, &first, &key, &klen)) > 0) {
        if (jr_is(key, klen, "t")) {
            if (jr_double(r, &t))
                return -1;
            have_t = 1;
        } else if (jr_is(key, klen, "hash_ids") && !sub) {
            if (have_ids)
                return jr_fail(r, "two \"hash_ids\" in one request");
            off = ts->nref;
            if ((n = read_ids(c, stream)) < 0)
                return -1;
            have_ids = 1;
        } else if (jr_is(key, klen, "requests") && !have_ids && !sub) {
            if (depth >= MAX_NESTING)
                return jr_fail(r, "subagents nested too deeply");
            uint32_t s = ts->nstreams++;
            c->file->streams++;
            sub_from = ts->nreq;
            if (weka_requests(c, s, depth + 1))
                return -1;
            sub_to = ts->nreq;
            sub = 1;
        } else if (jr_skip(r, 1)) {
            return -1;
        }
    }
    if (k < 0)
        return -1;
    if (!have_t)
        return jr_fail(r, "an entry without \"t\"");
    if (sub) {
        if (t < 0 || t > 1e9)
            return jr_fail(r, "a subagent start below 0 or above 1e9 s");
        uint64_t base = (uint64_t)llround(t * 1e9);
        for (size_t i = sub_from; i < sub_to; i++)
            ts->req[i].t_ns += base;
        return 0;
    }
    if (!have_ids)
        return 0; /* neither a request nor a subagent: nothing to replay */
    return add_request(c, t, stream, off, (uint32_t)n);
}

static int weka_requests(ctx *c, uint32_t stream, int depth)
{
    int first = 1, k;
    if (jr_arr_begin(&c->r))
        return -1;
    while ((k = jr_arr_next(&c->r, &first)) > 0)
        if (weka_entry(c, stream, depth))
            return -1;
    return k;
}

static int parse_weka(ctx *c)
{
    jr *r = &c->r;
    int first = 1, k, have_reqs = 0;
    const char *key, *v;
    size_t klen, vlen;
    uint32_t stream = c->ts->nstreams++;
    c->file->streams = 1;
    if (jr_obj_begin(r))
        return -1;
    while ((k = jr_obj_next(r, &first, &key, &klen)) > 0) {
        if (jr_is(key, klen, "requests")) {
            if (have_reqs)
                return jr_fail(r, "two \"requests\" arrays");
            if (weka_requests(c, stream, 0))
                return -1;
            have_reqs = 1;
        } else if (jr_is(key, klen, "block_size")) {
            uint64_t b;
            if (jr_u64(r, &b))
                return -1;
            if (b == 0 || b > UINT32_MAX)
                return jr_fail(r, "block_size out of range");
            c->file->block_tokens = (uint32_t)b;
        } else if (jr_is(key, klen, "hash_id_scope")) {
            /* Only per-file ids are known; a global scope would need one
             * namespace for all files, which this reader does not do. */
            if (jr_string(r, &v, &vlen))
                return -1;
            if (!jr_is(v, vlen, "local"))
                return jr_fail(r, "hash_id_scope is not \"local\" (only local is supported)");
        } else if (jr_skip(r, 1)) {
            return -1;
        }
    }
    if (k < 0)
        return -1;
    if (!have_reqs)
        return jr_fail(r, "no \"requests\" array");
    if (jr_peek(r) != -1)
        return jr_fail(r, "text after the session's object");
    return 0;
}

/* Which format: the first object's keys decide. */
static trace_format detect(const char *text, size_t len)
{
    jr r = {.start = text, .p = text, .end = text + len};
    int first = 1, k;
    const char *key;
    size_t klen;
    trace_format f = 0;
    if (jr_obj_begin(&r))
        return 0;
    while ((k = jr_obj_next(&r, &first, &key, &klen)) > 0) {
        if (jr_is(key, klen, "hash_ids"))
            f = TRACE_MOONCAKE;
        else if (jr_is(key, klen, "requests") && !f)
            f = TRACE_WEKA;
        if (jr_skip(&r, 1))
            return 0;
    }
    return k == 0 ? f : 0;
}

static int errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static char *read_all(const char *path, size_t *len, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errf(err, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t n = 0, bufcap = 0;
    char *buf = NULL;
    for (;;) {
        char *b = grow(buf, &bufcap, n + 65536, 1);
        if (!b) {
            errf(err, cap, "%s: out of memory", path);
            break;
        }
        buf = b;
        size_t got = fread(buf + n, 1, bufcap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                errf(err, cap, "%s: read error", path);
            else {
                fclose(f);
                *len = n;
                return buf;
            }
            break;
        }
    }
    free(buf);
    fclose(f);
    return NULL;
}

static int add_file(trace_set *ts, const char *path, char *err, size_t cap)
{
    if (!ts->parse && !(ts->parse = calloc(1, sizeof(parse_state))))
        return errf(err, cap, "out of memory");
    parse_state *ps = ts->parse;
    size_t len;
    char *text = read_all(path, &len, err, cap);
    if (!text)
        return -1;
    trace_format fmt = detect(text, len);
    if (!fmt) {
        free(text);
        return errf(err, cap,
                    "%s: neither Mooncake JSONL (objects with \"hash_ids\", one per line) nor a "
                    "WEKA session (an object with \"requests\")",
                    path);
    }
    trace_file *files = grow(ts->file, &ps->filecap, ts->nfiles + 1, sizeof *files);
    char *copy = strdup(path);
    if (!files || !copy) {
        free(text);
        free(copy);
        return errf(err, cap, "out of memory");
    }
    ts->file = files;
    trace_file *f = &files[ts->nfiles];
    *f = (trace_file){.path = copy, .format = fmt};
    ctx c = {.ts = ts, .ps = ps, .r = {.start = text, .p = text, .end = text + len}, .file = f,
             .session = ts->nfiles};
    ts->nfiles++;
    int rc = fmt == TRACE_MOONCAKE ? parse_mooncake(&c) : parse_weka(&c);
    if (rc) {
        if (!c.r.errpos)
            c.r.errpos = text;
        size_t line = 1, at = (size_t)(c.r.errpos - text);
        for (const char *q = text; q < c.r.errpos; q++)
            line += *q == '\n';
        errf(err, cap, "%s: line %zu (byte %zu): %s", path, line, at,
             c.r.err ? c.r.err : "malformed JSON");
    }
    free(text);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

int trace_add(trace_set *ts, const char *path, char *err, size_t cap)
{
    struct stat st;
    if (stat(path, &st))
        return errf(err, cap, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return add_file(ts, path, err, cap);
    DIR *d = opendir(path);
    if (!d)
        return errf(err, cap, "%s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, ncap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !(has_suffix(e->d_name, ".json") || has_suffix(e->d_name, ".jsonl")))
            continue;
        char **nn = grow(names, &ncap, n + 1, sizeof *names);
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *full = nn ? malloc(len) : NULL;
        if (!full) {
            if (nn)
                names = nn;
            rc = errf(err, cap, "out of memory");
            break;
        }
        names = nn;
        snprintf(full, len, "%s/%s", path, e->d_name);
        names[n++] = full;
    }
    closedir(d);
    if (!rc && n == 0)
        rc = errf(err, cap, "%s: a directory without *.json or *.jsonl files", path);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = add_file(ts, names[i], err, cap);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ------------------------------------------------------------- ordering */

typedef struct order {
    uint64_t t;
    uint32_t stream;
    uint32_t seq;
} order;

static int by_time(const void *a, const void *b)
{
    const order *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int trace_key(uint32_t stream, uint64_t id, kvt_key *out)
{
    static const char tag[] = "kvtier-bench-replay";
    uint8_t le[4] = {(uint8_t)stream, (uint8_t)(stream >> 8), (uint8_t)(stream >> 16),
                     (uint8_t)(stream >> 24)};
    kvt_ns_field f[2] = {{.tag = KVT_NS_CUSTOM, .len = sizeof tag - 1, .data = tag},
                         {.tag = KVT_NS_SALT, .len = 4, .data = le}};
    kvt_key ns;
    uint32_t tok[2] = {(uint32_t)id, (uint32_t)(id >> 32)};
    if (kvt_ns_key(f, 2, &ns) < 0 || kvt_key_chain(&ns, tok, 2, 2, out, 1) != 1)
        return -1;
    return 0;
}

int trace_finish(trace_set *ts, char *err, size_t cap)
{
    parse_state *ps = ts->parse;
    if (!ps || ts->nreq == 0)
        return errf(err, cap, "the traces hold no requests");
    if (ts->nreq > UINT32_MAX)
        return errf(err, cap, "more than 2^32 requests");
    order *o = malloc(ts->nreq * sizeof *o);
    uint64_t *last = calloc(ts->nstreams, sizeof *last);
    trace_req *sorted = malloc(ts->nreq * sizeof *sorted);
    ts->key = malloc((ts->nblocks ? ts->nblocks : 1) * sizeof *ts->key);
    if (!o || !last || !sorted || !ts->key) {
        free(o);
        free(last);
        free(sorted);
        return errf(err, cap, "out of memory ordering %zu requests", ts->nreq);
    }
    /* Requests were appended in file order per stream: raise each time to
     * its stream's latest so far (the store's clock can't go back), then
     * merge the streams by time. */
    for (size_t i = 0; i < ts->nreq; i++) {
        trace_req *q = &ts->req[i];
        if (q->t_ns < last[q->stream])
            q->t_ns = last[q->stream];
        last[q->stream] = q->t_ns;
        o[i] = (order){.t = q->t_ns, .stream = q->stream, .seq = (uint32_t)i};
    }
    qsort(o, ts->nreq, sizeof *o, by_time);
    ts->max_n = 0;
    for (size_t i = 0; i < ts->nreq; i++) {
        sorted[i] = ts->req[o[i].seq];
        if (sorted[i].n > ts->max_n)
            ts->max_n = sorted[i].n;
    }
    ts->end_ns = sorted[ts->nreq - 1].t_ns;
    free(ts->req);
    ts->req = sorted;
    free(o);
    free(last);
    for (size_t b = 0; b < ts->nblocks; b++)
        if (trace_key(ps->blk_stream[b], ps->blk_id[b], &ts->key[b]))
            return errf(err, cap, "kvt_key_chain: %s", kvt_last_error());
    free(ps->map);
    free(ps->blk_id);
    free(ps->blk_stream);
    free(ps);
    ts->parse = NULL;
    return 0;
}

void trace_free(trace_set *ts)
{
    parse_state *ps = ts->parse;
    if (ps) {
        free(ps->map);
        free(ps->blk_id);
        free(ps->blk_stream);
        free(ps);
    }
    for (uint32_t i = 0; i < ts->nfiles; i++)
        free(ts->file[i].path);
    free(ts->file);
    free(ts->req);
    free(ts->ref);
    free(ts->key);
    memset(ts, 0, sizeof *ts);
}

const char *trace_formats(const trace_set *ts)
{
    int m = 0, w = 0;
    for (uint32_t i = 0; i < ts->nfiles; i++) {
        m |= ts->file[i].format == TRACE_MOONCAKE;
        w |= ts->file[i].format == TRACE_WEKA;
    }
    return m && w ? "mixed" : m ? "mooncake" : "weka";
}
