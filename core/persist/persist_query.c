/*
 * persist_query.c -- synchronous history queries, and the one place where
 * rows are judged.
 *
 * Every query form (C rows, typed values, the protocol's JSON) passes
 * through persist_query_checked, so the rule is the same everywhere: a row
 * the backend could not read, a record name that is not UTF-8 or a value
 * that is not JSON is skipped and counted, never fatal, and each query that
 * skipped rows says so once in the log with the first reason.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/json.h"
#include "persist_internal.h"

typedef struct check_ctx {
    aimdb_row_fn fn;
    void *ctx;
    uint64_t skipped;
    char first[160]; /* the first skipped row, for the log */
} check_ctx;

static const char *row_defect(const aimdb_history_row *row) {
    if (row->defect) return row->defect;
    if (!aimdb_utf8_valid(row->record, strlen(row->record))) return "record name is not UTF-8";
    if (!aimdb_json_valid(row->value_json, row->value_len)) return "value is not valid JSON";
    return NULL;
}

static int checked_row(const aimdb_history_row *row, void *ctx) {
    check_ctx *c = ctx;
    const char *defect = row_defect(row);
    if (!defect) return c->fn(row, c->ctx);
    if (c->skipped++ == 0)
        snprintf(c->first, sizeof(c->first), "%.64s at %" PRId64 ": %s", row->record,
                 row->stored_at, defect);
    return 0;
}

static int check_params(aimdb_persist *p, const aimdb_query_params *q, bool has_fn,
                        char *err, size_t errlen) {
    if (!p || !q || !has_fn) {
        aimdb_errorf(err, errlen, "missing query, parameters or callback");
        return AIMDB_EINVAL;
    }
    if (q->has_start && q->has_end && q->start_ms > q->end_ms) {
        aimdb_errorf(err, errlen, "start (%" PRId64 ") is after end (%" PRId64 ")",
                     q->start_ms, q->end_ms);
        return AIMDB_EINVAL;
    }
    return AIMDB_OK;
}

static void log_failure(aimdb_persist *p, const aimdb_query_params *q, int rc, const char *err) {
    if (rc == AIMDB_EIO)
        aimdb_log(p->rt, AIMDB_LOG_ERROR, "persist: history query for \"%s\" failed: %s",
                  q->pattern ? q->pattern : "*", err && *err ? err : "backend error");
}

int persist_query_checked(aimdb_persist *p, const aimdb_query_params *q, aimdb_row_fn fn,
                          void *ctx, uint64_t *skipped, char *err, size_t errlen) {
    int rc = check_params(p, q, fn != NULL, err, errlen);
    if (rc != AIMDB_OK) return rc;
    check_ctx c = {.fn = fn, .ctx = ctx};
    pthread_rwlock_rdlock(&p->backend_lock);
    rc = AIMDB_ESTOPPED;
    if (p->closed) aimdb_errorf(err, errlen, "the database is stopped");
    else rc = p->backend.ops->query(p->backend.self, q, checked_row, &c, err, errlen);
    pthread_rwlock_unlock(&p->backend_lock);
    if (c.skipped) {
        atomic_fetch_add_explicit(&p->decode_skipped, c.skipped, memory_order_relaxed);
        aimdb_log(p->rt, AIMDB_LOG_WARNING,
                  "persist: history query for \"%s\" skipped %" PRIu64
                  " unreadable rows (first: %s)",
                  q->pattern ? q->pattern : "*", c.skipped, c.first);
    }
    if (skipped) *skipped += c.skipped;
    log_failure(p, q, rc, err);
    return rc;
}

int persist_aggregate_checked(aimdb_persist *p, const aimdb_aggregate_params *a,
                              aimdb_bucket_fn fn, void *ctx, char *err, size_t errlen) {
    int rc = check_params(p, &a->q, fn != NULL, err, errlen);
    if (rc != AIMDB_OK) return rc;
    pthread_rwlock_rdlock(&p->backend_lock);
    rc = AIMDB_ESTOPPED;
    if (p->closed) aimdb_errorf(err, errlen, "the database is stopped");
    else rc = p->backend.ops->aggregate(p->backend.self, a, fn, ctx, err, errlen);
    pthread_rwlock_unlock(&p->backend_lock);
    log_failure(p, &a->q, rc, err);
    return rc;
}

int aimdb_persist_query(aimdb_persist *p, const aimdb_query_params *q, aimdb_row_fn fn,
                        void *ctx, char *err, size_t errlen) {
    return persist_query_checked(p, q, fn, ctx, NULL, err, errlen);
}

int aimdb_persist_latest(aimdb_persist *p, const char *pattern, uint32_t n, aimdb_row_fn fn,
                         void *ctx) {
    if (n == 0) return AIMDB_EINVAL;
    aimdb_query_params q = {.pattern = pattern, .limit = n};
    return persist_query_checked(p, &q, fn, ctx, NULL, NULL, 0);
}

int aimdb_persist_range(aimdb_persist *p, const char *pattern, int64_t start_ms,
                        int64_t end_ms, uint32_t cap, aimdb_row_fn fn, void *ctx) {
    aimdb_query_params q = {.pattern = pattern, .has_start = true, .has_end = true,
                            .start_ms = start_ms, .end_ms = end_ms, .limit = cap};
    return persist_query_checked(p, &q, fn, ctx, NULL, NULL, 0);
}

/* ------------------------------------------------------------- typed */

typedef struct typed_ctx {
    aimdb_persist *p;
    aimdb_value_row_fn fn;
    void *ctx;
    uint64_t skipped;
    unsigned char *buf; /* decoded value; grows */
    size_t cap;
} typed_ctx;

/* Decode with the record's codec into t->buf; the length or -1. */
static long decode(typed_ctx *t, const aimdb_codec *codec, const aimdb_history_row *row) {
    if (!codec->from_json) return -1;
    long n = codec->from_json(row->value_json, row->value_len, t->buf, t->cap);
    if (n >= 0 && (size_t)n > t->cap) {
        unsigned char *grown = realloc(t->buf, (size_t)n);
        if (!grown) return -1;
        t->buf = grown;
        t->cap = (size_t)n;
        n = codec->from_json(row->value_json, row->value_len, t->buf, t->cap);
    }
    if (n >= 0 && codec->size && (size_t)n != codec->size) return -1;
    return n;
}

static int typed_row(const aimdb_history_row *row, void *ctx) {
    typed_ctx *t = ctx;
    aimdb_record *rec = aimdb_db_find(t->p->db, row->record);
    long n = rec ? decode(t, aimdb_record_codec(rec), row) : -1;
    if (n < 0) {
        t->skipped++;
        return 0;
    }
    aimdb_value v = {.data = t->buf, .len = (size_t)n, .ts_ms = row->stored_at, .seq = 0,
                     .source = row->source};
    return t->fn(row->record, &v, t->ctx);
}

int aimdb_persist_query_values(aimdb_persist *p, const aimdb_query_params *q,
                               aimdb_value_row_fn fn, void *ctx, uint64_t *skipped) {
    if (!fn) return AIMDB_EINVAL;
    typed_ctx t = {.p = p, .fn = fn, .ctx = ctx};
    int rc = persist_query_checked(p, q, typed_row, &t, skipped, NULL, 0);
    if (t.skipped) {
        atomic_fetch_add_explicit(&p->decode_skipped, t.skipped, memory_order_relaxed);
        aimdb_log(p->rt, AIMDB_LOG_WARNING,
                  "persist: typed history query skipped %" PRIu64
                  " rows its record's codec cannot decode (or of unknown records)",
                  t.skipped);
    }
    if (skipped) *skipped += t.skipped;
    free(t.buf);
    return rc;
}
