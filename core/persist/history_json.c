/*
 * history_json.c -- a history query as the protocol's JSON array:
 *   [{"record":"...","value":<stored JSON>,"stored_at":<ms>}, ...]
 * with "gateway":"..." after "record" in rows of a fleet's history.
 *
 * Values are copied verbatim (they were checked against the JSON grammar
 * in persist_query.c), so numbers keep every digit they were stored with.
 * A size cap stops the query as soon as the array would exceed it: the
 * caller gets AIMDB_ETOOBIG and advice, never a truncated array.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist_internal.h"

static int json_buf_append(json_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) return AIMDB_ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return AIMDB_OK;
}

/* A JSON string literal of s (valid UTF-8): quotes, backslashes and control
 * characters escaped, everything else as is. */
static int append_string(json_buf *b, const char *s) {
    int rc = json_buf_append(b, "\"", 1);
    const char *run = s; /* start of bytes not yet copied */
    for (const char *c = s; rc == AIMDB_OK && *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        char esc[8];
        if (ch == '"' || ch == '\\') snprintf(esc, sizeof(esc), "\\%c", ch);
        else snprintf(esc, sizeof(esc), "\\u%04x", ch);
        rc = json_buf_append(b, run, (size_t)(c - run));
        if (rc == AIMDB_OK) rc = json_buf_append(b, esc, strlen(esc));
        run = c + 1;
    }
    if (rc == AIMDB_OK) rc = json_buf_append(b, run, strlen(run));
    if (rc == AIMDB_OK) rc = json_buf_append(b, "\"", 1);
    return rc;
}

typedef struct collect_ctx {
    json_buf *out;
    size_t max_bytes;
    size_t count;
} collect_ctx;

static int append_row(const aimdb_history_row *row, void *ctx) {
    collect_ctx *c = ctx;
    char tail[40];
    int rc = json_buf_append(c->out, c->count ? ",{\"record\":" : "{\"record\":",
                             c->count ? 11 : 10);
    if (rc == AIMDB_OK) rc = append_string(c->out, row->record);
    if (rc == AIMDB_OK && row->gateway) rc = json_buf_append(c->out, ",\"gateway\":", 11);
    if (rc == AIMDB_OK && row->gateway) rc = append_string(c->out, row->gateway);
    if (rc == AIMDB_OK) rc = json_buf_append(c->out, ",\"value\":", 9);
    if (rc == AIMDB_OK) rc = json_buf_append(c->out, row->value_json, row->value_len);
    int n = snprintf(tail, sizeof(tail), ",\"stored_at\":%" PRId64 "}", row->stored_at);
    if (rc == AIMDB_OK) rc = json_buf_append(c->out, tail, (size_t)n);
    if (rc != AIMDB_OK) return rc;
    c->count++;
    /* +1 for the closing bracket still to come. */
    if (c->max_bytes && c->out->len + 1 > c->max_bytes) return AIMDB_ETOOBIG;
    return 0;
}

int history_json_collect(aimdb_persist *p, const aimdb_query_params *q, size_t max_bytes,
                         json_buf *out, size_t *count, uint64_t *skipped, char *err,
                         size_t errlen) {
    collect_ctx c = {.out = out, .max_bytes = max_bytes};
    out->len = 0;
    int rc = json_buf_append(out, "[", 1);
    if (rc == AIMDB_OK) rc = persist_query_checked(p, q, append_row, &c, skipped, err, errlen);
    if (rc == AIMDB_OK) rc = json_buf_append(out, "]", 1);
    *count = c.count;
    if (rc == AIMDB_ETOOBIG)
        persist_errorf(err, errlen,
                       "result larger than %zu bytes (passed it after %zu values); narrow the "
                       "query: a shorter start/end range, a smaller limit or a more specific "
                       "name pattern",
                       max_bytes, c.count);
    else if (rc == AIMDB_ENOMEM)
        persist_errorf(err, errlen, "out of memory building the result");
    return rc;
}
