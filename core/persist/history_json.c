/*
 * history_json.c -- a history request's result object, the protocol's JSON:
 *   {"count":N,"values":[{"record":"...","value":<stored JSON>,"stored_at":<ms>}, ...]}
 * and with every (aggregates) {"count":N,"skipped":S,"values":[...]} whose
 * values are {"avg":..,"min":..,...} in the order asked for, stored_at the
 * bucket's start.  In a fleet's history each element has "gateway":"..."
 * after "record", rows and buckets alike.
 *
 * Stored values are copied verbatim (they were checked against the JSON
 * grammar in persist_query.c), so numbers keep every digit they were
 * stored with; computed ones are printed in the fewest digits that read
 * back as the same double.  A size cap stops the query as soon as the
 * object would exceed it: the caller gets AIMDB_ETOOBIG and advice, never
 * a truncated array.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/json.h"
#include "persist_internal.h"

/* Room for n more bytes and a NUL. */
static int json_buf_reserve(json_buf *b, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) return AIMDB_ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    return AIMDB_OK;
}

static int json_buf_append(json_buf *b, const char *s, size_t n) {
    int rc = json_buf_reserve(b, n);
    if (rc != AIMDB_OK) return rc;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return AIMDB_OK;
}

/* A JSON string literal of s (valid UTF-8). */
static int append_string(json_buf *b, const char *s) {
    size_t len = strlen(s), n = aimdb_json_string_write(s, len, NULL, 0);
    int rc = json_buf_reserve(b, n);
    if (rc != AIMDB_OK) return rc;
    b->len += aimdb_json_string_write(s, len, b->data + b->len, n);
    b->data[b->len] = '\0';
    return AIMDB_OK;
}

typedef struct collect_ctx {
    json_buf *out;
    size_t max_bytes;  /* 0 = no cap */
    size_t head_bytes; /* the narrowest head the values will get */
    size_t count;
    const aimdb_history_request *req;
} collect_ctx;

/* The element's opening up to its value: {"record":"<name>","value":, with
 * "gateway":"<name>" between them when the row or bucket names one. */
static int append_element_head(collect_ctx *c, const char *record, const char *gateway) {
    int rc = json_buf_append(c->out, c->count ? ",{\"record\":" : "{\"record\":",
                             c->count ? 11 : 10);
    if (rc == AIMDB_OK) rc = append_string(c->out, record);
    if (rc == AIMDB_OK && gateway) rc = json_buf_append(c->out, ",\"gateway\":", 11);
    if (rc == AIMDB_OK && gateway) rc = append_string(c->out, gateway);
    if (rc == AIMDB_OK) rc = json_buf_append(c->out, ",\"value\":", 9);
    return rc;
}

static int append_element_tail(collect_ctx *c, int64_t stored_at) {
    char tail[40];
    int n = snprintf(tail, sizeof(tail), ",\"stored_at\":%" PRId64 "}", stored_at);
    int rc = json_buf_append(c->out, tail, (size_t)n);
    if (rc != AIMDB_OK) return rc;
    c->count++;
    /* +2 for the closing bracket and brace still to come. */
    if (c->max_bytes && c->head_bytes + c->out->len + 2 > c->max_bytes) return AIMDB_ETOOBIG;
    return 0;
}

static int append_row(const aimdb_history_row *row, void *ctx) {
    collect_ctx *c = ctx;
    int rc = append_element_head(c, row->record, row->gateway);
    if (rc == AIMDB_OK) rc = json_buf_append(c->out, row->value_json, row->value_len);
    return rc == AIMDB_OK ? append_element_tail(c, row->stored_at) : rc;
}

/* The fewest significant digits that read back as v; null if not finite. */
static int append_double(json_buf *b, double v) {
    if (!isfinite(v)) return json_buf_append(b, "null", 4);
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof(text), "%.*g", digits, v);
        if (strtod(text, NULL) == v) break;
    }
    return json_buf_append(b, text, strlen(text));
}

static int append_aggregate(json_buf *b, aimdb_agg agg, const aimdb_bucket *bucket) {
    char count[24];
    switch (agg) {
    case AIMDB_AGG_AVG: return append_double(b, bucket->sum / (double)bucket->count);
    case AIMDB_AGG_MIN: return append_double(b, bucket->min);
    case AIMDB_AGG_MAX: return append_double(b, bucket->max);
    case AIMDB_AGG_SUM: return append_double(b, bucket->sum);
    case AIMDB_AGG_FIRST: return append_double(b, bucket->first);
    case AIMDB_AGG_LAST: return append_double(b, bucket->last);
    case AIMDB_AGG_COUNT:
    case AIMDB_AGG_KINDS: break;
    }
    snprintf(count, sizeof(count), "%" PRIu64, bucket->count);
    return json_buf_append(b, count, strlen(count));
}

static const aimdb_agg default_aggs[] = {AIMDB_AGG_AVG, AIMDB_AGG_MIN, AIMDB_AGG_MAX,
                                         AIMDB_AGG_COUNT};

static int append_bucket(const aimdb_bucket *bucket, void *ctx) {
    collect_ctx *c = ctx;
    const aimdb_agg *aggs = c->req->n_agg ? c->req->agg : default_aggs;
    unsigned n = c->req->n_agg ? c->req->n_agg : 4;
    int rc = append_element_head(c, bucket->record, bucket->gateway);
    for (unsigned i = 0; rc == AIMDB_OK && i < n; i++) {
        rc = json_buf_append(c->out, i ? ",\"" : "{\"", 2);
        const char *name = aimdb_agg_name(aggs[i]);
        if (rc == AIMDB_OK) rc = json_buf_append(c->out, name, strlen(name));
        if (rc == AIMDB_OK) rc = json_buf_append(c->out, "\":", 2);
        if (rc == AIMDB_OK) rc = append_aggregate(c->out, aggs[i], bucket);
    }
    if (rc == AIMDB_OK) rc = json_buf_append(c->out, "}", 1);
    return rc == AIMDB_OK ? append_element_tail(c, bucket->start_ms) : rc;
}

static int format_head(char *head, size_t cap, const aimdb_history_request *req, size_t count,
                       uint64_t skipped) {
    if (req->every_ms)
        return snprintf(head, cap, "{\"count\":%zu,\"skipped\":%" PRIu64 ",\"values\":",
                        count, skipped);
    return snprintf(head, cap, "{\"count\":%zu,\"values\":", count);
}

/* The values array into out, then the head put in front of it. */
static int collect(aimdb_persist *p, const aimdb_history_request *req, collect_ctx *c,
                   uint64_t *skipped, char *err, size_t errlen) {
    aimdb_query_params q = {.pattern = req->pattern, .has_start = req->has_start,
                            .has_end = req->has_end, .start_ms = req->start_ms,
                            .end_ms = req->end_ms, .limit = req->limit, .access = req->access,
                            .gateway = req->gateway};
    int rc = json_buf_append(c->out, "[", 1);
    if (rc != AIMDB_OK) return rc;
    if (!req->every_ms) return persist_query_checked(p, &q, append_row, c, skipped, err, errlen);
    aimdb_aggregate_params a = {.q = q, .every_ms = req->every_ms, .field = req->field,
                                .without_first_last = true};
    for (unsigned i = 0; i < req->n_agg; i++)
        if (req->agg[i] == AIMDB_AGG_FIRST || req->agg[i] == AIMDB_AGG_LAST)
            a.without_first_last = false;
    return aimdb_persist_aggregate(p, &a, append_bucket, c, skipped, err, errlen);
}

static int prepend_head(json_buf *b, const char *head, size_t head_len) {
    int rc = json_buf_append(b, "]}", 2); /* room for the head grows the buffer too */
    if (rc == AIMDB_OK) rc = json_buf_append(b, head, head_len);
    if (rc != AIMDB_OK) return rc;
    size_t body = b->len - head_len;
    memmove(b->data + head_len, b->data, body);
    memcpy(b->data, head, head_len);
    return AIMDB_OK;
}

int history_json_result(aimdb_persist *p, const aimdb_history_request *req, json_buf *out,
                        uint64_t *decode_skipped, char *err, size_t errlen) {
    if (req->every_ms < 0) {
        aimdb_errorf(err, errlen, "every is negative");
        return AIMDB_EINVAL;
    }
    char head[96];
    collect_ctx c = {.out = out, .max_bytes = req->max_bytes, .req = req,
                     .head_bytes = (size_t)format_head(head, sizeof(head), req, 0, 0)};
    uint64_t skipped = 0;
    out->len = 0;
    int rc = collect(p, req, &c, req->every_ms ? &skipped : decode_skipped, err, errlen);
    if (rc == AIMDB_OK) {
        int n = format_head(head, sizeof(head), req, c.count, skipped);
        rc = prepend_head(out, head, (size_t)n);
    }
    if (rc == AIMDB_ETOOBIG)
        aimdb_errorf(err, errlen,
                     "result larger than %zu bytes (passed it after %zu values); narrow the "
                     "query: a shorter start/end range, a smaller limit, a wider every or a "
                     "more specific name pattern",
                       req->max_bytes, c.count);
    else if (rc == AIMDB_ENOMEM)
        aimdb_errorf(err, errlen, "out of memory building the result");
    return rc;
}

int aimdb_persist_query_json(aimdb_persist *p, const aimdb_history_request *req, char **out,
                             size_t *out_len, char *err, size_t errlen) {
    if (!p || !req || !out) return AIMDB_EINVAL;
    json_buf b = {0};
    int rc = history_json_result(p, req, &b, NULL, err, errlen);
    if (rc != AIMDB_OK) {
        free(b.data);
        b.data = NULL;
        b.len = 0;
    }
    *out = b.data;
    if (out_len) *out_len = b.len;
    return rc;
}
