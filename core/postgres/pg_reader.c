/*
 * pg_reader.c -- history queries on a connection of their own, so a query
 * never waits behind a write batch (PostgreSQL's MVCC snapshot, as WAL
 * gives SQLite's readers).  One query at a time on it; a query on a broken
 * connection reconnects once before it fails.  A query runs in one
 * REPEATABLE READ read-only transaction, so "latest N of every record" is
 * consistent across records.  Its COMMIT is sent without waiting for the
 * answer, which the next query reads first (ensure_reader): ending a
 * read-only transaction cannot lose anything, so the caller need not wait
 * a round trip for it.
 *
 * The same semantics as the SQLite backend, by the same steps:
 *   1. record names in the pattern's literal prefix, one index seek each
 *      (a recursive CTE: the loose index scan PostgreSQL has no plan for),
 *      each matched exactly in C with aimdb_pattern_match and offered to
 *      the access filter;
 *   2. per record, its gateways (seeks on idx_record_gateway_time) that
 *      match the gateway pattern (LIKE, every character but '*' escaped),
 *      and for each the newest rows first -- stored_at DESC, then id DESC,
 *      which is store order for rows of one millisecond -- inclusive range,
 *      LIMIT N per record and gateway;
 *   3. rows streamed (single-row mode), never the whole result in memory.
 * A record whose values are visible only by topic gets no LIMIT in SQL:
 * hidden rows must not count, so C counts and skips the rest.
 *
 * Latest-1 without a range (a dashboard's "every record now") reads
 * record_latest instead of steps 1-2 (pg_internal.h says what keeps it
 * exact): one statement for every record and gateway, sent with BEGIN in
 * one round trip (pg_latest_sql says why its values are literals).  Each
 * of its rows is the one newest row of its record and gateway, so it goes
 * to the caller as it is: no counting, no copy.  A record visible only by
 * topic takes the steps above, in the same transaction: its newest row may
 * be hidden while an older one is visible.
 *
 * Aggregates (pg_aggregate.c) take step 1 from here (pg_reader_each_name)
 * and run on this connection (pg_reader_run), a statement of their own
 * for a run of records.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

#define READ_BEGIN_SQL "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

/* Prepared once per connection (planning ROWS_SQL costs more than running
 * it for one record). */
static int prepare(PGconn *c, const char *name, const char *sql, int nparams, char *why,
                   size_t whylen) {
    PGresult *r = PQprepare(c, name, sql, nparams, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? AIMDB_OK : AIMDB_EIO;
    if (rc != AIMDB_OK) pg_why(c, r, why, whylen);
    PQclear(r);
    return rc;
}

/* Drain what is left of a streamed result (after the caller stopped), or
 * the answer to the previous query's COMMIT. */
static void drain(PGconn *c) {
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) PQclear(r);
}

static int ensure_reader(pg_backend *b, char *err, size_t errlen) {
    if (b->rconn && !pg_connection_lost(b->rconn)) {
        drain(b->rconn); /* the previous query's COMMIT */
        if (!pg_connection_lost(b->rconn)) return AIMDB_OK;
    }
    PQfinish(b->rconn);
    char why[512];
    b->rconn = pg_connect(b->uri, why, sizeof(why));
    int rc = b->rconn ? AIMDB_OK : AIMDB_EIO;
    /* A custom plan per execution cost 4 ms of planning against 2 ms of
     * running for one record over 100 gateways; the generic plan is the
     * same index walk. */
    if (rc == AIMDB_OK)
        rc = pg_exec_sql(b->rconn, "SET plan_cache_mode = force_generic_plan", why, sizeof(why));
    if (rc == AIMDB_OK) rc = prepare(b->rconn, "names", PG_NAMES_SQL, 1, why, sizeof(why));
    if (rc == AIMDB_OK) rc = prepare(b->rconn, "rows", PG_ROWS_SQL, 5, why, sizeof(why));
    if (rc != AIMDB_OK) {
        PQfinish(b->rconn);
        b->rconn = NULL;
        aimdb_errorf(err, errlen, "history query: cannot reach %s: %s", b->where, why);
    }
    return rc;
}

/* gateway pattern -> LIKE: '*' is '%', every other character literal. */
char *pg_like_of(const char *pattern) {
    size_t n = strlen(pattern);
    char *out = malloc(2 * n + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = pattern; *p; p++) {
        if (*p == '*') {
            *o++ = '%';
            continue;
        }
        if (*p == '%' || *p == '_' || *p == '\\') *o++ = '\\';
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

typedef struct query_run {
    pg_backend *b;
    const aimdb_query_params *q;
    aimdb_row_fn fn;
    void *ctx;
    char start[24], end[24], limit[16];
    char *like;
    char *err;
    size_t errlen;
    bool emitted; /* a row reached fn: the query can no longer be rerun */
} query_run;

/* Where a record's rows are: which gateway is being counted, how many
 * of its rows may still be returned. */
typedef struct record_rows {
    const char *name;
    aimdb_visibility seen;
    char *gateway; /* owned */
    uint32_t left;
} record_rows;

/* Offer row i of r to the caller; 0, the caller's stop, or AIMDB_ENOMEM. */
static int offer_row(query_run *run, record_rows *rr, PGresult *r, int i) {
    const aimdb_query_params *q = run->q;
    const char *gw = PQgetvalue(r, i, 0);
    if (!rr->gateway || strcmp(rr->gateway, gw) != 0) {
        free(rr->gateway);
        if (!(rr->gateway = strdup(gw))) return AIMDB_ENOMEM;
        rr->left = q->limit ? q->limit : UINT32_MAX;
    }
    const char *topic = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
    if (!rr->left || !aimdb_access_value(q->access, rr->seen, rr->name, topic)) return 0;
    aimdb_history_row row = {.record = rr->name, .value_json = PQgetvalue(r, i, 1),
                             .value_len = (size_t)PQgetlength(r, i, 1),
                             .stored_at = strtoll(PQgetvalue(r, i, 2), NULL, 10),
                             .source = topic, .gateway = rr->gateway};
    rr->left--;
    run->emitted = true;
    return run->fn(&row, run->ctx);
}

/* One record's rows, per gateway newest first.  With the limit in SQL the
 * result is bounded and comes whole; without, it is streamed row by row
 * (single-row mode: a range can be any size). */
static int run_record(query_run *run, const char *name) {
    const aimdb_query_params *q = run->q;
    record_rows rr = {.name = name, .seen = aimdb_access_record(q->access, name)};
    if (rr.seen == AIMDB_SEE_NONE) return 0;
    /* Visible by topic: hidden rows must not use up the limit. */
    bool sql_limit = q->limit && rr.seen == AIMDB_SEE_ALL;
    const char *params[5] = {name, run->start, run->end, sql_limit ? run->limit : NULL,
                             run->like};
    PGconn *c = run->b->rconn;
    if (!PQsendQueryPrepared(c, "rows", 5, params, NULL, NULL, 0) ||
        (!sql_limit && !PQsetSingleRowMode(c))) {
        pg_why(c, NULL, run->err, run->errlen);
        drain(c);
        return AIMDB_EIO;
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) {
            for (int i = 0; rc == 0 && i < PQntuples(r); i++) rc = offer_row(run, &rr, r, i);
        } else if (rc == 0) {
            pg_why(c, r, run->err, run->errlen);
            rc = AIMDB_EIO;
        }
        PQclear(r);
    }
    free(rr.gateway);
    return rc;
}

static int record_of_run(const char *name, void *ctx) { return run_record(ctx, name); }

static int run_matching(query_run *run, const char *pattern, size_t prefix_len) {
    return pg_reader_each_name(run->b, pattern, prefix_len, record_of_run, run, run->err,
                               run->errlen);
}

int pg_reader_each_name(pg_backend *b, const char *pattern, size_t prefix_len,
                        pg_name_fn fn, void *ctx, char *err, size_t errlen) {
    char *prefix = strndup(pattern, prefix_len);
    if (!prefix) return AIMDB_ENOMEM;
    const char *params[1] = {prefix};
    PGresult *names = PQexecPrepared(b->rconn, "names", 1, params, NULL, NULL, 0);
    free(prefix);
    int rc = AIMDB_OK;
    if (PQresultStatus(names) != PGRES_TUPLES_OK) {
        pg_why(b->rconn, names, err, errlen);
        rc = AIMDB_EIO;
    }
    for (int i = 0; rc == AIMDB_OK && i < PQntuples(names); i++) {
        const char *name = PQgetvalue(names, i, 0);
        if (aimdb_pattern_match(pattern, name)) rc = fn(name, ctx);
    }
    PQclear(names);
    return rc;
}

/* A prefix's lower bound is written out: PostgreSQL before 15 derives no
 * index range from starts_with. */
char *pg_latest_sql(PGconn *c, const char *prefix, bool exact, const char *like) {
    bool every_name = !exact && !*prefix;
    char *name = every_name ? NULL : PQescapeLiteral(c, prefix, strlen(prefix));
    char *gateways = like ? PQescapeLiteral(c, like, strlen(like)) : NULL;
    char *sql = NULL;
    if ((name || every_name) && (gateways || !like)) {
        const char *n = name ? name : "";
        size_t cap = 2 * strlen(n) + (gateways ? strlen(gateways) : 0) + 256;
        if ((sql = malloc(cap))) {
            size_t len = (size_t)snprintf(sql, cap, "SELECT gateway, value_json::text, stored_at, "
                                                    "topic, record_name FROM record_latest WHERE ");
            if (every_name)
                len += (size_t)snprintf(sql + len, cap - len, "true");
            else if (exact)
                len += (size_t)snprintf(sql + len, cap - len, "record_name = %s", n);
            else
                len += (size_t)snprintf(sql + len, cap - len,
                                        "record_name >= %s AND starts_with(record_name, %s)", n, n);
            snprintf(sql + len, cap - len, " AND %s%s ORDER BY record_name, gateway",
                     gateways ? "gateway LIKE " : "true", gateways ? gateways : "");
        }
    }
    PQfreemem(name);
    PQfreemem(gateways);
    return sql;
}

/* Row i of a record_latest result to the caller: the newest row of its
 * record and gateway, so visible (the record is SEE_ALL) and within the
 * limit of 1 by itself. */
static int offer_latest(query_run *run, PGresult *r, int i, const char *name) {
    aimdb_history_row row = {.record = name, .value_json = PQgetvalue(r, i, 1),
                             .value_len = (size_t)PQgetlength(r, i, 1),
                             .stored_at = strtoll(PQgetvalue(r, i, 2), NULL, 10),
                             .source = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3),
                             .gateway = PQgetvalue(r, i, 0)};
    run->emitted = true;
    return run->fn(&row, run->ctx);
}

/* Latest-1 of the records matching pattern, from record_latest, with the
 * transaction's BEGIN in the same round trip.  The result comes whole (one
 * row per record and gateway: the size of the answer), so a record visible
 * only by topic can run its own query in between, in the same record
 * order. */
static int run_latest(query_run *run, const char *pattern, size_t prefix_len) {
    PGconn *c = run->b->rconn;
    char *prefix = strndup(pattern, prefix_len);
    const char *like = strcmp(run->like, "%") == 0 ? NULL : run->like; /* every gateway */
    char *sql = prefix ? pg_latest_sql(c, prefix, pattern[prefix_len] == '\0', like) : NULL;
    size_t cap = sql ? sizeof(READ_BEGIN_SQL ";") + strlen(sql) : 0;
    char *batch = cap ? malloc(cap) : NULL;
    if (batch) snprintf(batch, cap, READ_BEGIN_SQL ";%s", sql);
    free(prefix);
    free(sql);
    if (!batch) return AIMDB_ENOMEM;
    PGresult *r = PQexec(c, batch);
    free(batch);
    int rc = AIMDB_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_why(c, r, run->err, run->errlen);
        rc = AIMDB_EIO;
    }
    const char *name = NULL;
    aimdb_visibility seen = AIMDB_SEE_NONE;
    for (int i = 0; rc == AIMDB_OK && i < PQntuples(r); i++) {
        const char *row_name = PQgetvalue(r, i, 4);
        if (!name || strcmp(name, row_name) != 0) {
            name = row_name;
            seen = aimdb_pattern_match(pattern, name) ? aimdb_access_record(run->q->access, name)
                                                      : AIMDB_SEE_NONE;
            if (seen == AIMDB_SEE_BY_SOURCE) rc = run_record(run, name);
        }
        if (rc == AIMDB_OK && seen == AIMDB_SEE_ALL) rc = offer_latest(run, r, i, name);
    }
    PQclear(r);
    return rc;
}

static int run_query(query_run *run) {
    const char *pattern = run->q->pattern ? run->q->pattern : "*";
    size_t prefix_len = aimdb_pattern_prefix_len(pattern);
    const aimdb_query_params *q = run->q;
    PGconn *c = run->b->rconn;
    int rc;
    if (q->limit == 1 && !q->has_start && !q->has_end) {
        rc = run_latest(run, pattern, prefix_len); /* BEGIN included */
    } else {
        char why[512];
        rc = pg_exec_sql(c, READ_BEGIN_SQL, why, sizeof(why));
        if (rc != AIMDB_OK) {
            aimdb_errorf(run->err, run->errlen, "%s", why);
            return rc;
        }
        if (pattern[prefix_len] == '\0') rc = run_record(run, pattern); /* one record */
        else rc = run_matching(run, pattern, prefix_len);
    }
    /* Answered by ensure_reader's drain before the next query.  Failing to
     * send it means a broken connection, which the next query finds. */
    (void)PQsendQuery(c, "COMMIT");
    return rc;
}

int pg_reader_run(pg_backend *b, pg_read_fn fn, void *ctx, const bool *delivered, char *err,
                  size_t errlen) {
    pthread_mutex_lock(&b->read_lock);
    int rc = ensure_reader(b, err, errlen);
    if (rc == AIMDB_OK) {
        rc = fn(b, ctx);
        /* A connection that broke since the last query: once more, anew
         * (only if the caller has seen nothing yet). */
        if (rc == AIMDB_EIO && !*delivered && pg_connection_lost(b->rconn) &&
            (rc = ensure_reader(b, err, errlen)) == AIMDB_OK)
            rc = fn(b, ctx);
    }
    if (rc == AIMDB_EIO && err && *err && !strstr(err, b->where)) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        aimdb_errorf(err, errlen, "history query on %s failed: %s", b->where, why);
    }
    pthread_mutex_unlock(&b->read_lock);
    return rc;
}

static int query_on(pg_backend *b, void *ctx) {
    (void)b;
    return run_query(ctx);
}

int pg_reader_query(pg_backend *b, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                    char *err, size_t errlen) {
    query_run run = {.b = b, .q = q, .fn = fn, .ctx = ctx, .err = err, .errlen = errlen};
    snprintf(run.start, sizeof(run.start), "%" PRId64, q->has_start ? q->start_ms : INT64_MIN);
    snprintf(run.end, sizeof(run.end), "%" PRId64, q->has_end ? q->end_ms : INT64_MAX);
    snprintf(run.limit, sizeof(run.limit), "%" PRIu32, q->limit);
    run.like = pg_like_of(q->gateway ? q->gateway : "*");
    if (!run.like) return AIMDB_ENOMEM;
    int rc = pg_reader_run(b, query_on, &run, &run.emitted, err, errlen);
    free(run.like);
    return rc;
}

void pg_reader_close(pg_backend *b) {
    PQfinish(b->rconn);
    b->rconn = NULL;
}
