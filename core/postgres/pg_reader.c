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
 * The same semantics as the SQLite backend:
 *   1. the (record, gateway) pairs with rows, from record_latest
 *      (pg_internal.h says what keeps it exact): the records in the
 *      pattern's literal prefix on the gateways matching the gateway
 *      pattern (LIKE, every character but '*' escaped), by record and
 *      gateway, each record matched exactly in C with aimdb_pattern_match
 *      and offered to the access filter;
 *   2. per pair, its rows newest first -- stored_at DESC, then id DESC,
 *      which is store order for rows of one millisecond -- inclusive
 *      range, LIMIT N, straight from idx_record_gateway_time;
 *   3. rows streamed (single-row mode), never a range whole in memory,
 *      and the listing of step 1 read in pages (LISTING_PAGE).
 * A record whose values are visible only by topic gets no LIMIT in SQL:
 * hidden rows must not count, so C counts and skips the rest.
 *
 * Why a statement per pair: one statement per record, joining its
 * gateways, would end in a sort of all the record's rows -- PostgreSQL
 * does not know that a nested loop emits them in order -- which spills to
 * disk once they outgrow work_mem; each pair's statement is an index walk
 * in the reply's order.  They go in pipelines of PIPELINE_PAIRS
 * (run_window), so a record on 100 gateways costs two round trips, not
 * 100.
 *
 * Latest-1 without a range (a dashboard's "every record now") reads
 * record_latest's rows themselves: a statement per page of records and
 * gateways, the first sent with BEGIN in one round trip (pg_latest_sql
 * says why its values are literals).  Each of its rows is the one newest
 * row of its record and gateway, so it goes to the caller as it is: no
 * counting, no copy.  A record visible only by topic takes steps 2-3 for
 * its pairs, in the same transaction: its newest row may be hidden while
 * an older one is visible.
 *
 * Aggregates (pg_aggregate.c) take the record names from the same
 * listing (pg_reader_each_name) and run on this connection
 * (pg_reader_run), a statement of their own for a run of records.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* enable_sort off: a listing (pg_latest_sql) is in record_latest's
 * primary key order, and its keyset pages are meant to walk that index.
 * With a selective gateway pattern and no record prefix the planner would
 * rather scan the whole table and sort it, for every page. */
#define READ_BEGIN_SQL                                                             \
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL enable_sort = off"

/* Prepared once per connection: a pair's statement runs once per record
 * and gateway, and planning each would cost about as much as running it. */
static int prepare(PGconn *c, const char *name, const char *sql, int nparams, char *why,
                   size_t whylen) {
    PGresult *r = PQprepare(c, name, sql, nparams, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? AIMDB_OK : AIMDB_EIO;
    if (rc != AIMDB_OK) pg_why(c, r, why, whylen);
    PQclear(r);
    return rc;
}

/* Read the answer to the previous query's COMMIT. */
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
    /* Generic plans: each statement here walks the same index whatever
     * its values, and planning it anew per execution would cost about as
     * much as running it for one record or pair. */
    if (rc == AIMDB_OK)
        rc = pg_exec_sql(b->rconn, "SET plan_cache_mode = force_generic_plan", why, sizeof(why));
    if (rc == AIMDB_OK) rc = prepare(b->rconn, "pair_rows", PG_PAIR_ROWS_SQL, 5, why, sizeof(why));
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
    const char *pattern; /* the record pattern */
    bool latest;         /* latest-1 without a range: answered by the listing */
    bool emitted;        /* a row reached fn: the query can no longer be rerun */
    bool stopped;        /* fn returned non-zero */
} query_run;

/* Statements per round trip: 64 pairs a round trip is most of what a
 * fleet's round trips could save.  libpq holds them until the sync (a few
 * KB); were a write to block, libpq reads results meanwhile, so a
 * blocking connection cannot deadlock with the server. */
#define PIPELINE_PAIRS 64

/* A record and gateway whose rows a query reads; the strings are in the
 * result that listed the pairs. */
typedef struct pair {
    const char *record, *gateway;
    aimdb_visibility seen;
} pair;

typedef struct pair_window {
    pair pairs[PIPELINE_PAIRS];
    int n;
} pair_window;

/* Row i of a pair's result to the caller while the pair has rows left;
 * 0, the caller's stop, or AIMDB_ENOMEM. */
static int offer_row(query_run *run, const pair *p, uint32_t *left, PGresult *r, int i) {
    const char *topic = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
    if (!*left || !aimdb_access_value(run->q->access, p->seen, p->record, topic)) return 0;
    aimdb_history_row row = {.record = p->record, .value_json = PQgetvalue(r, i, 0),
                             .value_len = (size_t)PQgetlength(r, i, 0),
                             .stored_at = strtoll(PQgetvalue(r, i, 1), NULL, 10),
                             .source = topic, .gateway = p->gateway};
    (*left)--;
    run->emitted = true;
    int rc = run->fn(&row, run->ctx);
    run->stopped = rc != 0;
    return rc;
}

/* The limit is in SQL, so the result is bounded and comes whole; without,
 * it is streamed row by row (single-row mode: a range can be any size).
 * Rows of a record visible only by topic are counted in C instead: hidden
 * ones must not use up the limit. */
static bool pair_is_bounded(const query_run *run, const pair *p) {
    return run->q->limit && p->seen == AIMDB_SEE_ALL;
}

/* One pair's results, then a NULL; after the caller's stop, only if
 * drain.  A failed statement's error is kept unless the caller already
 * stopped. */
static int read_pair(query_run *run, const pair *p, int rc, bool drain) {
    PGconn *c = run->b->rconn;
    uint32_t left = run->q->limit ? run->q->limit : UINT32_MAX;
    if (!pair_is_bounded(run, p))
        (void)PQsetSingleRowMode(c); /* refused for a statement the pipeline aborted */
    PGresult *r;
    while ((drain || !run->stopped) && (r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) {
            for (int i = 0; rc == 0 && i < PQntuples(r); i++) rc = offer_row(run, p, &left, r, i);
        } else if (rc == 0) {
            pg_why(c, r, run->err, run->errlen);
            rc = AIMDB_EIO;
        }
        PQclear(r);
    }
    return rc;
}

static bool send_pair(query_run *run, const pair *p) {
    const char *params[5] = {p->record, p->gateway, run->start, run->end,
                             pair_is_bounded(run, p) ? run->limit : NULL};
    return PQsendQueryPrepared(run->b->rconn, "pair_rows", 5, params, NULL, NULL, 0) == 1;
}

/* A window that cannot finish closes the connection (the next query
 * connects anew, ensure_reader) rather than leave it in pipeline mode, or
 * idle in a transaction that holds its snapshot and locks. */
static int abandon_window(query_run *run, int rc) {
    if (rc == 0) {
        pg_why(run->b->rconn, NULL, run->err, run->errlen);
        rc = AIMDB_EIO;
    }
    PQfinish(run->b->rconn);
    run->b->rconn = NULL;
    return rc;
}

/* Every pair's limit is in SQL: after a stop, the rest is small enough to
 * read rather than reconnect. */
static bool window_is_bounded(const query_run *run, const pair_window *w) {
    for (int i = 0; i < w->n; i++)
        if (!pair_is_bounded(run, &w->pairs[i])) return false;
    return true;
}

/* The window's pairs in one round trip: every statement sent, then one
 * sync, then each one's rows in turn.  After an error the server skips the
 * rest up to the sync (PGRES_PIPELINE_ABORTED), which is read all the
 * same, so the connection leaves pipeline mode ready for the next query.
 * After the caller's stop, an unbounded window could have whole ranges
 * left to read (a month of each of its records): it is abandoned. */
static int run_window(query_run *run, const pair_window *w) {
    PGconn *c = run->b->rconn;
    if (!PQenterPipelineMode(c)) return abandon_window(run, 0);
    int sent = 0;
    while (sent < w->n && send_pair(run, &w->pairs[sent])) sent++;
    if (sent < w->n || !PQpipelineSync(c)) return abandon_window(run, 0);
    bool drain = window_is_bounded(run, w);
    int rc = 0;
    for (int i = 0; i < sent && !pg_connection_lost(c) && (drain || !run->stopped); i++)
        rc = read_pair(run, &w->pairs[i], rc, drain);
    if (run->stopped && !drain) return abandon_window(run, rc);
    PGresult *sync;
    while ((sync = PQgetResult(c)) != NULL) { /* the sync's result, or what a broken one left */
        bool synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
        PQclear(sync);
        if (synced) break;
    }
    if (!PQexitPipelineMode(c)) return abandon_window(run, rc);
    return rc;
}

/* Read the pairs gathered so far. */
static int flush_pairs(query_run *run, pair_window *w) {
    int rc = w->n ? run_window(run, w) : 0;
    w->n = 0;
    return rc;
}

/* Add a pair; a full window is read at once. */
static int add_pair(query_run *run, pair_window *w, const pair *p) {
    w->pairs[w->n++] = *p;
    return w->n == PIPELINE_PAIRS ? flush_pairs(run, w) : 0;
}

static char *escaped(PGconn *c, const char *text) {
    return PQescapeLiteral(c, text, strlen(text));
}

/* A prefix's lower bound is written out: PostgreSQL before 15 derives no
 * index range from starts_with. */
char *pg_latest_sql(PGconn *c, const pg_listing *l) {
    bool every_name = !l->exact && !*l->prefix;
    char *name = every_name ? NULL : escaped(c, l->prefix);
    char *gateways = l->like ? escaped(c, l->like) : NULL;
    char *after_r = l->after_record ? escaped(c, l->after_record) : NULL;
    char *after_g = l->after_gateway ? escaped(c, l->after_gateway) : NULL;
    char *sql = NULL;
    if ((name || every_name) && (gateways || !l->like) && (after_r || !l->after_record) &&
        (after_g || !l->after_gateway)) {
        const char *n = name ? name : "";
        size_t cap = strlen(l->columns) + 2 * strlen(n) + (gateways ? strlen(gateways) : 0) +
                     (after_r ? strlen(after_r) : 0) + (after_g ? strlen(after_g) : 0) + 256;
        sql = malloc(cap);
        size_t len = 0;
#define APPEND(...) (len += (size_t)snprintf(sql + len, cap - len, __VA_ARGS__))
        if (sql) {
            APPEND("SELECT %s FROM record_latest WHERE ", l->columns);
            if (every_name) APPEND("true");
            else if (l->exact) APPEND("record_name = %s", n);
            else APPEND("record_name >= %s AND starts_with(record_name, %s)", n, n);
            if (gateways) APPEND(" AND gateway LIKE %s", gateways);
            if (after_r && after_g)
                APPEND(" AND (record_name, gateway) > (%s, %s)", after_r, after_g);
            APPEND(" ORDER BY record_name, gateway");
            if (l->limit) APPEND(" LIMIT %d", l->limit);
        }
#undef APPEND
    }
    PQfreemem(name);
    PQfreemem(gateways);
    PQfreemem(after_r);
    PQfreemem(after_g);
    return sql;
}

/* Row i of a latest-1 listing to the caller: the newest row of its record
 * and gateway, so visible (the record is SEE_ALL) and within the limit of
 * 1 by itself. */
static int offer_latest(query_run *run, PGresult *r, int i, const char *name) {
    aimdb_history_row row = {.record = name, .value_json = PQgetvalue(r, i, 2),
                             .value_len = (size_t)PQgetlength(r, i, 2),
                             .stored_at = strtoll(PQgetvalue(r, i, 3), NULL, 10),
                             .source = PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
                             .gateway = PQgetvalue(r, i, 1)};
    run->emitted = true;
    return run->fn(&row, run->ctx);
}

/* Pairs listed per statement: what a query holds of the listing at once,
 * however wide the fleet (16,384 rows of latest-1 are about 2 MB; 100
 * records on 100 gateways take one page). */
#define LISTING_PAGE 16384

/* A listing read page by page, each page starting after the last pair of
 * the page before (kept here: a page's strings go with it). */
typedef struct listing_pages {
    pg_listing l;
    char *after_record, *after_gateway; /* owned */
    bool more;                          /* the last page read was full */
} listing_pages;

static void listing_init(listing_pages *p, const char *columns, const char *prefix, bool exact,
                         const char *like) {
    *p = (listing_pages){.l = {.columns = columns, .prefix = prefix, .exact = exact,
                               .like = like, .limit = LISTING_PAGE},
                         .more = true};
}

static void listing_free(listing_pages *p) {
    free(p->after_record);
    free(p->after_gateway);
}

/* The next page into *page (its status is the caller's to check), with
 * begin's statement in the same round trip if not NULL.  AIMDB_ENOMEM when
 * nothing could be sent. */
static int next_page(PGconn *c, listing_pages *p, const char *begin, PGresult **page) {
    p->l.after_record = p->after_record;
    p->l.after_gateway = p->after_gateway;
    char *sql = pg_latest_sql(c, &p->l);
    size_t cap = sql ? (begin ? strlen(begin) : 0) + strlen(sql) + 2 : 0;
    char *batch = cap ? malloc(cap) : NULL;
    if (batch) snprintf(batch, cap, "%s%s%s", begin ? begin : "", begin ? ";" : "", sql);
    free(sql);
    if (!batch) return AIMDB_ENOMEM;
    *page = PQexec(c, batch);
    free(batch);
    return AIMDB_OK;
}

/* A page used: where the next one starts, if there is one. */
static int turn_page(listing_pages *p, PGresult *page) {
    int n = PQntuples(page);
    p->more = n == LISTING_PAGE;
    if (!p->more) return AIMDB_OK;
    free(p->after_record);
    free(p->after_gateway);
    p->after_record = strdup(PQgetvalue(page, n - 1, 0));
    p->after_gateway = strdup(PQgetvalue(page, n - 1, 1));
    return p->after_record && p->after_gateway ? AIMDB_OK : AIMDB_ENOMEM;
}

/* Every page of p in turn to fn, begin's statement sent with the first
 * (if not NULL); stops at the first non-zero return. */
typedef int (*page_fn)(PGresult *page, void *ctx);
static int each_page(pg_backend *b, listing_pages *p, const char *begin, page_fn fn, void *ctx,
                     char *err, size_t errlen) {
    int rc = AIMDB_OK;
    for (; rc == AIMDB_OK && p->more; begin = NULL) {
        PGresult *r = NULL;
        rc = next_page(b->rconn, p, begin, &r);
        if (rc == AIMDB_OK && PQresultStatus(r) != PGRES_TUPLES_OK) { /* NULL too */
            pg_why(b->rconn, r, err, errlen);
            rc = AIMDB_EIO;
        }
        if (rc == AIMDB_OK) rc = fn(r, ctx);
        if (rc == AIMDB_OK) rc = turn_page(p, r);
        PQclear(r);
    }
    if (rc == AIMDB_ENOMEM) aimdb_errorf(err, errlen, "out of memory");
    return rc;
}

/* The query over one page of pairs, in its order.  Latest-1 answers from
 * the listing itself (one row per record and gateway: the answer) but for
 * records visible only by topic, whose pairs are read, each record's before
 * the next record's rows; anything else reads every pair, windows spanning
 * records.  The page's pairs are all read before it goes. */
static int run_page(PGresult *r, void *ctx) {
    query_run *run = ctx;
    const char *pattern = run->pattern;
    bool latest = run->latest;
    pair_window w = {.n = 0};
    const char *name = NULL;
    aimdb_visibility seen = AIMDB_SEE_NONE;
    int rc = AIMDB_OK;
    for (int i = 0; rc == AIMDB_OK && i < PQntuples(r); i++) {
        const char *row_name = PQgetvalue(r, i, 0);
        if (!name || strcmp(name, row_name) != 0) {
            if (latest) rc = flush_pairs(run, &w);
            name = row_name;
            seen = aimdb_pattern_match(pattern, name) ? aimdb_access_record(run->q->access, name)
                                                      : AIMDB_SEE_NONE;
        }
        if (rc != AIMDB_OK || seen == AIMDB_SEE_NONE) continue;
        if (latest && seen == AIMDB_SEE_ALL)
            rc = offer_latest(run, r, i, name);
        else
            rc = add_pair(run, &w, &(pair){name, PQgetvalue(r, i, 1), seen});
    }
    if (rc == AIMDB_OK) rc = flush_pairs(run, &w);
    return rc;
}

/* The query, page by page of its listing; BEGIN goes with the first. */
static int run_pairs(query_run *run) {
    size_t prefix_len = aimdb_pattern_prefix_len(run->pattern);
    char *prefix = strndup(run->pattern, prefix_len);
    if (!prefix) return AIMDB_ENOMEM;
    listing_pages p;
    listing_init(&p, run->latest ? PG_LATEST_COLUMNS : "record_name, gateway", prefix,
                 run->pattern[prefix_len] == '\0',
                 strcmp(run->like, "%") == 0 ? NULL : run->like); /* "%": every gateway */
    int rc = each_page(run->b, &p, READ_BEGIN_SQL, run_page, run, run->err, run->errlen);
    listing_free(&p);
    free(prefix);
    return rc;
}

typedef struct names_run {
    const char *pattern;
    const listing_pages *pages;
    pg_name_fn fn;
    void *ctx;
} names_run;

/* A name comes once per gateway, in a run that a page's edge can cut:
 * the page before ended with after_record. */
static int names_of_page(PGresult *r, void *ctx) {
    names_run *n = ctx;
    const char *last = n->pages->after_record;
    int rc = AIMDB_OK;
    for (int i = 0; rc == AIMDB_OK && i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0);
        if (last && strcmp(last, name) == 0) continue;
        last = name;
        if (aimdb_pattern_match(n->pattern, name)) rc = n->fn(name, n->ctx);
    }
    return rc;
}

int pg_reader_each_name(pg_backend *b, const char *pattern, size_t prefix_len,
                        pg_name_fn fn, void *ctx, char *err, size_t errlen) {
    char *prefix = strndup(pattern, prefix_len);
    if (!prefix) return AIMDB_ENOMEM;
    listing_pages p;
    listing_init(&p, "record_name, gateway", prefix, false, NULL);
    names_run n = {.pattern = pattern, .pages = &p, .fn = fn, .ctx = ctx};
    int rc = each_page(b, &p, NULL, names_of_page, &n, err, errlen);
    listing_free(&p);
    free(prefix);
    return rc;
}

static int run_query(query_run *run) {
    int rc = run_pairs(run);
    /* Answered by ensure_reader's drain before the next query.  Failing to
     * send it means a broken connection, which the next query finds. */
    (void)PQsendQuery(run->b->rconn, "COMMIT");
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
    query_run run = {.b = b, .q = q, .fn = fn, .ctx = ctx, .err = err, .errlen = errlen,
                     .pattern = q->pattern ? q->pattern : "*",
                     .latest = q->limit == 1 && !q->has_start && !q->has_end};
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
