/*
 * aggregate.c -- buckets of history: the number in a value, the bucket set
 * backends fill, and aimdb_persist_aggregate.
 *
 * The rules live here once for every backend: which number a value holds
 * (aimdb_value_number), where a bucket starts (a multiple of every since
 * the epoch, also before it), what first and last mean (store order), and
 * which buckets a limit keeps.  A backend without its own aggregate gets
 * the layer's: its query rows, newest first in reverse store order, fed
 * into a bucket set per record -- per record and gateway on a fleet
 * backend, the grouping its rows and their limit already have, so a bucket
 * never mixes two sites' values and "limit" means the same with and without
 * "every".  SQLite has its own (rollups, see
 * sqlite_rollup.c) built on the same set, and tests/persist runs one table
 * of cases against both.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "persist_internal.h"

/* ------------------------------------------------ the number in a value */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* At '"': past the closing quote.  *escaped: the string holds a backslash. */
static bool skip_string(cursor *c, bool *escaped) {
    *escaped = false;
    for (c->p++; c->p < c->end; c->p++) {
        if (*c->p == '"') {
            c->p++;
            return true;
        }
        if (*c->p == '\\') {
            *escaped = true;
            c->p++;
        }
    }
    return false;
}

/* Past one value of any kind; containers by counting brackets outside
 * strings (the text is JSON, so they pair up; if not, the end stops it). */
static bool skip_value(cursor *c) {
    bool escaped;
    if (c->p >= c->end) return false;
    if (*c->p == '"') return skip_string(c, &escaped);
    if (*c->p != '{' && *c->p != '[') {
        while (c->p < c->end && !strchr(",}] \t\r\n", *c->p)) c->p++;
        return true;
    }
    size_t depth = 0;
    while (c->p < c->end) {
        char ch = *c->p;
        if (ch == '"') {
            if (!skip_string(c, &escaped)) return false;
            continue;
        }
        c->p++;
        if (ch == '{' || ch == '[') depth++;
        else if ((ch == '}' || ch == ']') && --depth == 0) return true;
    }
    return false;
}

/* At a member's '"': its name (raw bytes between the quotes; escaped if it
 * holds a backslash), leaving *c at the member's value. */
static bool read_key(cursor *c, const char **key, size_t *len, bool *escaped) {
    *key = c->p + 1;
    if (!skip_string(c, escaped)) return false;
    *len = (size_t)(c->p - 1 - *key);
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':') return false;
    c->p++;
    skip_ws(c);
    return true;
}

/* At '{': the value of the last member named seg[0..seg_len), left in *c. */
static bool find_member(cursor *c, const char *seg, size_t seg_len) {
    const char *found = NULL;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') return false;
    while (c->p < c->end && *c->p == '"') {
        const char *key;
        size_t key_len;
        bool escaped;
        if (!read_key(c, &key, &key_len, &escaped)) return false;
        if (!escaped && key_len == seg_len && memcmp(key, seg, seg_len) == 0) found = c->p;
        if (!skip_value(c)) return false;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ',') break;
        c->p++;
        skip_ws(c);
    }
    if (!found) return false;
    c->p = found;
    return true;
}

static bool read_number(cursor *c, double *out) {
    const char *start = c->p;
    if (start >= c->end || (*start != '-' && (*start < '0' || *start > '9'))) return false;
    const char *p = start;
    while (p < c->end && strchr("0123456789+-.eE", *p) && *p) p++;
    char buf[400];
    size_t len = (size_t)(p - start);
    if (len >= sizeof(buf)) return false;
    memcpy(buf, start, len);
    buf[len] = '\0';
    char *stop;
    double v = strtod(buf, &stop);
    if (stop != buf + len || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool aimdb_value_number(const char *json, size_t len, const char *field, double *out) {
    cursor c = {json, json + len};
    skip_ws(&c);
    const char *seg = field && *field ? field : NULL;
    while (seg) {
        const char *dot = strchr(seg, '.');
        size_t seg_len = dot ? (size_t)(dot - seg) : strlen(seg);
        if (c.p >= c.end || *c.p != '{' || !find_member(&c, seg, seg_len)) return false;
        seg = dot ? dot + 1 : NULL;
    }
    return read_number(&c, out);
}

/* Every number aimdb_value_number can reach (see persist.h). */
typedef struct numbers_walk {
    char path[AIMDB_FIELD_MAX + 1];
    unsigned left; /* calls of fn still allowed */
    aimdb_field_number_fn fn;
    void *ctx;
} numbers_walk;

#define WALK_MAX_MEMBERS 64

static bool walk_value(cursor *c, numbers_walk *w, size_t path_len);

/* A member name that a path segment can spell: no escape, no '.'. */
static bool addressable(const char *key, size_t len, bool escaped) {
    return !escaped && len > 0 && !memchr(key, '.', len);
}

static bool walk_object(cursor *c, numbers_walk *w, size_t path_len) {
    const char *keys[WALK_MAX_MEMBERS];
    size_t lens[WALK_MAX_MEMBERS], n = 0;
    bool complete = true;
    c->p++;
    skip_ws(c);
    while (c->p < c->end && *c->p == '"') {
        const char *key;
        size_t key_len;
        bool escaped;
        if (!read_key(c, &key, &key_len, &escaped)) return false;
        size_t sub = path_len + (path_len ? 1 : 0) + key_len;
        if (addressable(key, key_len, escaped) && sub <= AIMDB_FIELD_MAX) {
            if (n == WALK_MAX_MEMBERS) return false;
            for (size_t i = 0; i < n; i++)
                if (lens[i] == key_len && memcmp(keys[i], key, key_len) == 0) return false;
            keys[n] = key, lens[n++] = key_len;
            if (path_len) w->path[path_len] = '.';
            memcpy(w->path + sub - key_len, key, key_len);
            w->path[sub] = '\0';
            complete = walk_value(c, w, sub) && complete;
            w->path[path_len] = '\0';
        } else if (!skip_value(c)) {
            return false;
        }
        skip_ws(c);
        if (c->p >= c->end || *c->p != ',') break;
        c->p++;
        skip_ws(c);
    }
    if (c->p < c->end && *c->p == '}') c->p++;
    return complete;
}

static bool walk_value(cursor *c, numbers_walk *w, size_t path_len) {
    if (c->p < c->end && *c->p == '{') return walk_object(c, w, path_len);
    const char *at = c->p;
    if (!skip_value(c)) return false;
    cursor number = {at, c->p};
    double v;
    if (!read_number(&number, &v)) return true;
    if (w->left == 0) return false;
    w->left--;
    w->fn(w->path, path_len, v, w->ctx);
    return true;
}

bool aimdb_value_numbers(const char *json, size_t len, unsigned max_fields,
                         aimdb_field_number_fn fn, void *ctx) {
    numbers_walk w = {.left = max_fields, .fn = fn, .ctx = ctx};
    cursor c = {json, json + len};
    skip_ws(&c);
    return walk_value(&c, &w, 0);
}

/* ---------------------------------------------------------- bucket set */

typedef struct bucket_entry {
    int64_t start;
    uint64_t values, count;
    double sum, min, max, first, last;
    int64_t first_at, first_order, last_at, last_order;
} bucket_entry;

/* Entries in arrival order; slots an open-addressing index of them by
 * start (-1 = free), at most half full. */
struct aimdb_bucket_set {
    int64_t every;
    bucket_entry *entries;
    size_t n, cap;
    int32_t *slots;
    size_t n_slots; /* a power of two */
};

aimdb_bucket_set *aimdb_bucket_set_new(int64_t every_ms) {
    if (every_ms <= 0) return NULL;
    aimdb_bucket_set *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->every = every_ms;
    return s;
}

void aimdb_bucket_set_free(aimdb_bucket_set *s) {
    if (!s) return;
    free(s->entries);
    free(s->slots);
    free(s);
}

/* The bucket holding ts: floor division, so times before the epoch fall
 * in the bucket below them too.  INT64_MIN if that start is not
 * representable. */
static int64_t bucket_start(int64_t ts, int64_t every) {
    int64_t into = ts % every;
    if (into < 0) into += every;
    int64_t start;
    return __builtin_sub_overflow(ts, into, &start) ? INT64_MIN : start;
}

static size_t slot_of(const aimdb_bucket_set *s, int64_t start) {
    uint64_t h = (uint64_t)start * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (s->n_slots - 1);
}

static int grow_slots(aimdb_bucket_set *s) {
    size_t n = s->n_slots ? s->n_slots * 2 : 64;
    int32_t *slots = malloc(n * sizeof(*slots));
    if (!slots) return AIMDB_ENOMEM;
    memset(slots, 0xff, n * sizeof(*slots));
    free(s->slots);
    s->slots = slots;
    s->n_slots = n;
    for (size_t i = 0; i < s->n; i++) {
        size_t at = slot_of(s, s->entries[i].start);
        while (s->slots[at] >= 0) at = (at + 1) & (n - 1);
        s->slots[at] = (int32_t)i;
    }
    return AIMDB_OK;
}

static bucket_entry *entry_for(aimdb_bucket_set *s, int64_t start) {
    if (s->n_slots == 0 || (s->n + 1) * 2 > s->n_slots) {
        if (s->n >= INT32_MAX / 4 || grow_slots(s) != AIMDB_OK) return NULL;
    }
    size_t at = slot_of(s, start);
    for (; s->slots[at] >= 0; at = (at + 1) & (s->n_slots - 1))
        if (s->entries[s->slots[at]].start == start) return &s->entries[s->slots[at]];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        bucket_entry *grown = realloc(s->entries, cap * sizeof(*grown));
        if (!grown) return NULL;
        s->entries = grown;
        s->cap = cap;
    }
    s->slots[at] = (int32_t)s->n;
    bucket_entry *e = &s->entries[s->n++];
    *e = (bucket_entry){.start = start};
    return e;
}

/* (at, order) comes before (at2, order2). */
static bool before(int64_t at, int64_t order, int64_t at2, int64_t order2) {
    return at < at2 || (at == at2 && order < order2);
}

static void take_first(bucket_entry *e, const aimdb_bucket_part *part) {
    e->first = part->first, e->first_at = part->first_at, e->first_order = part->first_order;
}

static void take_last(bucket_entry *e, const aimdb_bucket_part *part) {
    e->last = part->last, e->last_at = part->last_at, e->last_order = part->last_order;
}

int aimdb_bucket_set_merge(aimdb_bucket_set *s, const aimdb_bucket_part *part) {
    bucket_entry *e = entry_for(s, bucket_start(part->ts_ms, s->every));
    if (!e) return AIMDB_ENOMEM;
    e->values += part->values;
    if (part->count == 0) return AIMDB_OK;
    if (e->count == 0) {
        e->min = part->min;
        e->max = part->max;
        take_first(e, part);
        take_last(e, part);
    } else {
        if (part->min < e->min) e->min = part->min;
        if (part->max > e->max) e->max = part->max;
        if (before(part->first_at, part->first_order, e->first_at, e->first_order))
            take_first(e, part);
        if (before(e->last_at, e->last_order, part->last_at, part->last_order))
            take_last(e, part);
    }
    e->count += part->count;
    e->sum += part->sum;
    return AIMDB_OK;
}

int aimdb_bucket_set_add(aimdb_bucket_set *s, int64_t ts_ms, int64_t order, bool has_number,
                         double number) {
    aimdb_bucket_part part = {.ts_ms = ts_ms, .values = 1};
    if (has_number)
        part = (aimdb_bucket_part){.ts_ms = ts_ms, .values = 1, .count = 1, .sum = number,
                                   .min = number,
                                   .max = number, .first = number, .last = number,
                                   .first_at = ts_ms, .first_order = order,
                                   .last_at = ts_ms, .last_order = order};
    return aimdb_bucket_set_merge(s, &part);
}

static int newest_first(const void *a, const void *b) {
    int64_t x = ((const bucket_entry *)a)->start, y = ((const bucket_entry *)b)->start;
    return x < y ? 1 : x > y ? -1 : 0;
}

int aimdb_bucket_set_emit(aimdb_bucket_set *s, const char *record, const char *gateway,
                          uint32_t limit, aimdb_bucket_fn fn, void *ctx) {
    if (s->n > 1) qsort(s->entries, s->n, sizeof(*s->entries), newest_first);
    uint32_t with_numbers = 0;
    int rc = 0;
    for (size_t i = 0; i < s->n && rc == 0 && (!limit || with_numbers < limit); i++) {
        const bucket_entry *e = &s->entries[i];
        aimdb_bucket b = {.record = record, .gateway = gateway, .start_ms = e->start,
                          .count = e->count,
                          .skipped = e->values > e->count ? e->values - e->count : 0,
                          .sum = e->sum, .min = e->min, .max = e->max,
                          .first = e->first, .last = e->last};
        with_numbers += e->count > 0;
        rc = fn(&b, ctx);
    }
    s->n = 0;
    if (s->slots) memset(s->slots, 0xff, s->n_slots * sizeof(*s->slots));
    return rc;
}

/* ----------------------------------------------- the layer's aggregation */

/* Rows of one query, newest first within a record (and gateway), into a
 * set per record and gateway: the rows of one pair are contiguous (record
 * ascending, then gateway ascending on a fleet backend; gateway NULL
 * elsewhere). */
typedef struct rows_to_buckets {
    const aimdb_aggregate_params *a;
    aimdb_bucket_set *set;
    char *record;  /* whose rows the set holds; NULL before the first row */
    char *gateway; /* and from which gateway; NULL for local history */
    int64_t order; /* falls with every row: rows come in reverse store order */
    aimdb_bucket_fn fn;
    void *ctx;
} rows_to_buckets;

static int flush_group(rows_to_buckets *r) {
    if (!r->record) return 0;
    int rc = aimdb_bucket_set_emit(r->set, r->record, r->gateway, r->a->q.limit, r->fn,
                                   r->ctx);
    free(r->record);
    free(r->gateway);
    r->record = r->gateway = NULL;
    return rc;
}

static bool same_text(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int bucket_row(const aimdb_history_row *row, void *ctx) {
    rows_to_buckets *r = ctx;
    if (!r->record || strcmp(r->record, row->record) != 0 ||
        !same_text(r->gateway, row->gateway)) {
        int rc = flush_group(r);
        if (rc) return rc;
        r->record = strdup(row->record);
        r->gateway = row->gateway ? strdup(row->gateway) : NULL;
        if (!r->record || (row->gateway && !r->gateway)) return AIMDB_ENOMEM;
    }
    double v;
    bool has = aimdb_value_number(row->value_json, row->value_len, r->a->field, &v);
    return aimdb_bucket_set_add(r->set, row->stored_at, r->order--, has, v);
}

static int aggregate_rows(aimdb_persist *p, const aimdb_aggregate_params *a,
                          aimdb_bucket_fn fn, void *ctx, char *err, size_t errlen) {
    rows_to_buckets r = {.a = a, .set = aimdb_bucket_set_new(a->every_ms), .fn = fn,
                         .ctx = ctx, .order = INT64_MAX};
    if (!r.set) return AIMDB_ENOMEM;
    aimdb_query_params q = a->q;
    q.limit = 0; /* the limit counts buckets: bucket_row's sets apply it */
    int rc = persist_query_checked(p, &q, bucket_row, &r, NULL, err, errlen);
    if (rc == AIMDB_OK) rc = flush_group(&r);
    free(r.record);
    free(r.gateway);
    aimdb_bucket_set_free(r.set);
    return rc;
}

/* Buckets without a number only count as skipped. */
typedef struct numbered {
    aimdb_bucket_fn fn;
    void *ctx;
    uint64_t skipped;
} numbered;

static int numbered_bucket(const aimdb_bucket *b, void *ctx) {
    numbered *n = ctx;
    n->skipped += b->skipped;
    return b->count ? n->fn(b, n->ctx) : 0;
}

int aimdb_persist_aggregate(aimdb_persist *p, const aimdb_aggregate_params *a,
                            aimdb_bucket_fn fn, void *ctx, uint64_t *skipped, char *err,
                            size_t errlen) {
    if (!p || !a || !fn || a->every_ms <= 0) {
        aimdb_errorf(err, errlen, "missing parameters, or every is not positive");
        return AIMDB_EINVAL;
    }
    numbered n = {.fn = fn, .ctx = ctx};
    int rc;
    if (p->backend.ops->aggregate)
        rc = persist_aggregate_checked(p, a, numbered_bucket, &n, err, errlen);
    else
        rc = aggregate_rows(p, a, numbered_bucket, &n, err, errlen);
    if (skipped) *skipped += n.skipped;
    return rc;
}
