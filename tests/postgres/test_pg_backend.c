/*
 * test_pg_backend.c -- the PostgreSQL history backend against a real
 * server (pg_server.h): schema created and checked, rows batched and
 * committed, the same query answers as the SQLite backend for the same
 * rows (ordering, limits, ranges, patterns with % and _ literal), gateway
 * patterns, latest-1 from record_latest (its trigger function replaced
 * when another version's, rebuilt by aimdb_record_latest_rebuild() after
 * writes the triggers missed, two rebuilds at once), a connect beside
 * open reads and writes that waits for neither, range reads that make the server sort
 * nothing (more gateways than one pipeline of statements), listings of
 * more pairs than a page, retention in chunks, an outage of the server
 * under load, the errors a bad URI, a refused login or a foreign table
 * give, a role of its own refused until granted the rights it needs (and
 * going on beside functions of another version it may not replace), and
 * an invalid index said at connect, and a stop that gives up on a server
 * that is down rather than waiting for it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "aimdb/persist.h"
#include "aimdb/postgres.h"
#include "aimdb/sqlite.h"
#include "harness.h"
#include "pg_server.h"


static aimdb_backend open_pg(const char *gateway) {
    aimdb_postgres_options o = {.uri = pg_test_server.uri, .gateway = gateway, .flush_interval_ms = 10};
    aimdb_backend b;
    char err[512] = "";
    int rc = aimdb_postgres_open(&o, &b, err, sizeof(err));
    if (rc != AIMDB_OK) fail_msg("aimdb_postgres_open: %s", err);
    return b;
}

static void store(aimdb_backend b, const char *record, const char *json, int64_t ts,
                  const char *topic) {
    assert_int_equal(b.ops->store(b.self, record, json, strlen(json), ts, topic), AIMDB_OK);
}

/* ------------------------------------------------------------ results */

typedef struct rows {
    char text[64][160]; /* "record|gateway|stored_at|topic|normalised value" */
    size_t n;
    size_t extra; /* rows past the array */
} rows;

/* Object members in key order, at every depth (insertion sort of the
 * child list: the objects here are small). */
static void sort_keys(cJSON *v) {
    if (!v) return;
    for (cJSON *c = v->child; c; c = c->next) sort_keys(c);
    if (!cJSON_IsObject(v)) return;
    cJSON *sorted = NULL;
    while (v->child) {
        cJSON *c = v->child;
        v->child = c->next;
        cJSON **at = &sorted;
        while (*at && strcmp((*at)->string, c->string) < 0) at = &(*at)->next;
        c->next = *at;
        *at = c;
    }
    v->child = sorted;
    cJSON *prev = NULL;
    for (cJSON *c = sorted; c; prev = c, c = c->next) c->prev = prev;
    if (sorted) sorted->prev = prev; /* cJSON keeps the last in child->prev */
}

/* The value as cJSON prints it unformatted with keys sorted: jsonb
 * normalises spacing and key order, so compare values printed one way. */
static void normalise(const char *json, size_t len, char *out, size_t cap) {
    cJSON *v = cJSON_ParseWithLength(json, len);
    assert_non_null(v);
    sort_keys(v);
    char *text = cJSON_PrintUnformatted(v);
    snprintf(out, cap, "%s", text);
    free(text);
    cJSON_Delete(v);
}

static int collect(const aimdb_history_row *row, void *ctx) {
    rows *r = ctx;
    if (r->n == sizeof(r->text) / sizeof(r->text[0])) {
        r->extra++;
        return 0;
    }
    char value[96];
    normalise(row->value_json, row->value_len, value, sizeof(value));
    snprintf(r->text[r->n++], sizeof(r->text[0]), "%s|%s|%lld|%s|%s", row->record,
             row->gateway ? row->gateway : "-", (long long)row->stored_at,
             row->source ? row->source : "-", value);
    return 0;
}

static void query(aimdb_backend b, const aimdb_query_params *q, rows *out) {
    memset(out, 0, sizeof(*out));
    char err[256] = "";
    int rc = b.ops->query(b.self, q, collect, out, err, sizeof(err));
    if (rc != AIMDB_OK) fail_msg("query: %s", err);
}

/* Strip the gateway field so SQLite's rows and PostgreSQL's compare. */
static void without_gateway(rows *r) {
    for (size_t i = 0; i < r->n; i++) {
        char *a = strchr(r->text[i], '|'), *b = a ? strchr(a + 1, '|') : NULL;
        if (b) memmove(a, b, strlen(b) + 1);
    }
}

/* -------------------------------------------------------------- tests */

static void test_schema_created_and_rows_committed(void **state) {
    (void)state;
    aimdb_backend b = open_pg("central");
    for (int i = 0; i < 1000; i++) {
        char json[64];
        snprintf(json, sizeof(json), "{\"n\":%d}", i);
        store(b, "temp::vienna", json, 1000 + i, "weather/vienna/temperature");
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 1000);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(DISTINCT value_json->>'n') FROM "
                                           "record_history WHERE gateway = 'central' AND "
                                           "source_id IS NULL"),
                     1000);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM pg_indexes WHERE tablename = "
                                           "'record_history' AND indexname IN "
                                           "('idx_record_time', 'idx_record_gateway_time')"),
                     2);
    aimdb_backend_stats st;
    b.ops->stats(b.self, &st);
    assert_int_equal(st.rows_stored, 1000);
    b.ops->close(b.self);
}

/* The rows every parity query runs on: names with % and _ (literal in
 * patterns), equal stored_at (store order decides), three topics. */
static void store_parity_rows(aimdb_backend b) {
    static const char *const names[] = {"a%b", "axb", "a_b", "temp::graz", "temp::linz",
                                        "temp::wien", "t"};
    for (int round = 0; round < 6; round++) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            char json[96];
            snprintf(json, sizeof(json), "{\"round\": %d, \"name\": \"%s\", \"x\": [1, 2.5]}",
                     round, names[i]);
            /* Rounds 2 and 3 share a millisecond. */
            int64_t ts = 10000 + (round == 3 ? 2 : round) * 100 + (int64_t)i;
            store(b, names[i], json, ts, round % 2 ? "topic/odd" : "topic/even");
        }
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
}

static void test_queries_match_sqlite(void **state) {
    (void)state;
    aimdb_backend pg = open_pg("gw1");
    aimdb_sqlite_options so = {.path = ":memory:"};
    aimdb_backend sq;
    char err[256];
    assert_int_equal(aimdb_sqlite_open(&so, &sq, err, sizeof(err)), AIMDB_OK);
    store_parity_rows(pg);
    store_parity_rows(sq);
    const aimdb_query_params qs[] = {
        {.pattern = "*", .limit = 1},
        {.pattern = "*", .limit = 3},
        {.pattern = "*"},
        {.pattern = "a%b"},
        {.pattern = "a_b", .limit = 10},
        {.pattern = "a*b", .limit = 2},
        {.pattern = "temp::*", .has_start = true, .start_ms = 10101, .has_end = true,
         .end_ms = 10302},
        {.pattern = "temp::*", .has_start = true, .start_ms = 10200, .has_end = true,
         .end_ms = 10200},
        {.pattern = "temp::*", .has_start = true, .start_ms = 10201, .limit = 2},
        {.pattern = "t*", .has_end = true, .end_ms = 10306, .limit = 4},
        {.pattern = "temp::wien", .limit = 100},
        {.pattern = "nothing*"},
        {.pattern = "*::*n*", .limit = 2},
    };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        rows a, b;
        query(pg, &qs[i], &a);
        query(sq, &qs[i], &b);
        for (size_t k = 0; k < a.n; k++)
            assert_non_null(strstr(a.text[k], "|gw1|")); /* each value names its gateway */
        without_gateway(&a);
        without_gateway(&b);
        if (a.n != b.n) fail_msg("query %zu: %zu rows from PostgreSQL, %zu from SQLite", i, a.n, b.n);
        for (size_t k = 0; k < a.n; k++)
            if (strcmp(a.text[k], b.text[k]) != 0)
                fail_msg("query %zu row %zu: PostgreSQL %s, SQLite %s", i, k, a.text[k], b.text[k]);
    }
    /* The same millisecond: the last stored first (store order). */
    rows r;
    aimdb_query_params same = {.pattern = "t", .has_start = true, .start_ms = 10206,
                               .has_end = true, .end_ms = 10206};
    query(pg, &same, &r);
    assert_int_equal(r.n, 2);
    assert_non_null(strstr(r.text[0], "\"round\":3"));
    assert_non_null(strstr(r.text[1], "\"round\":2"));
    pg.ops->close(pg.self);
    sq.ops->close(sq.self);
}

static aimdb_visibility odd_only_record(const char *record, void *ctx) {
    (void)ctx;
    return strcmp(record, "t") == 0 ? AIMDB_SEE_BY_SOURCE : AIMDB_SEE_NONE;
}

static bool odd_only_value(const char *record, const char *source, void *ctx) {
    (void)record, (void)ctx;
    return source && strcmp(source, "topic/odd") == 0;
}

/* Per-value access by topic: hidden rows neither appear nor count. */
static void test_access_by_topic(void **state) {
    (void)state;
    aimdb_backend pg = open_pg("gw1");
    store_parity_rows(pg);
    aimdb_access acl = {.record = odd_only_record, .value = odd_only_value};
    aimdb_query_params q = {.pattern = "*", .limit = 2, .access = &acl};
    rows r;
    query(pg, &q, &r);
    assert_int_equal(r.n, 2);
    assert_non_null(strstr(r.text[0], "|topic/odd|"));
    assert_non_null(strstr(r.text[0], "\"round\":5"));
    assert_non_null(strstr(r.text[1], "\"round\":3"));
    pg.ops->close(pg.self);
}

static void test_gateway_patterns(void **state) {
    (void)state;
    aimdb_backend g[3] = {open_pg("site_1"), open_pg("site%2"), open_pg("sitex1")};
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++) {
            char json[32];
            snprintf(json, sizeof(json), "%d", i * 10 + k);
            store(g[i], "temp::x", json, 500 + k, NULL);
        }
        assert_int_equal(g[i].ops->flush(g[i].self), AIMDB_OK);
    }
    rows r;
    aimdb_query_params q = {.pattern = "temp::x", .limit = 1};
    query(g[0], &q, &r); /* every gateway: one row each, gateway ascending */
    assert_int_equal(r.n, 3);
    assert_string_equal(r.text[0], "temp::x|site%2|502|-|12");
    assert_string_equal(r.text[1], "temp::x|site_1|502|-|2");
    assert_string_equal(r.text[2], "temp::x|sitex1|502|-|22");
    q.gateway = "site_1"; /* _ is literal */
    query(g[0], &q, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "temp::x|site_1|502|-|2");
    q.gateway = "site%*"; /* % is literal */
    q.limit = 0;
    query(g[0], &q, &r);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.text[2], "temp::x|site%2|500|-|10");
    q.gateway = "*1";
    q.limit = 2;
    query(g[0], &q, &r);
    assert_int_equal(r.n, 4);
    for (int i = 0; i < 3; i++) g[i].ops->close(g[i].self);
}

/* ------------------------------------------------------- range reads */

#define SORT_GATEWAYS 70 /* more than one pipeline's statements (pg_reader.c) */
#define SORT_ROWS 60     /* per gateway and record */

/* The reply's order, checked row by row: record, then gateway ascending,
 * then newest first; and how many rows each record had. */
typedef struct ordered {
    char record[32], gateway[32];
    long long stored_at;
    size_t n, out_of_order;
} ordered;

static int check_order(const aimdb_history_row *row, void *ctx) {
    ordered *o = ctx;
    int by_record = strcmp(row->record, o->record);
    int by_gateway = by_record ? 0 : strcmp(row->gateway, o->gateway);
    if (o->n && (by_record < 0 || by_gateway < 0 ||
                 (!by_record && !by_gateway && row->stored_at >= o->stored_at)))
        o->out_of_order++;
    snprintf(o->record, sizeof(o->record), "%s", row->record);
    snprintf(o->gateway, sizeof(o->gateway), "%s", row->gateway);
    o->stored_at = row->stored_at;
    o->n++;
    return 0;
}

/* The caller's stop after 100 rows, inside the first pipeline. */
static int stop_at_100(const aimdb_history_row *row, void *ctx) {
    (void)row;
    return ++*(size_t *)ctx == 100 ? 42 : 0;
}

/* The reader's server process killed at the first row, in the middle of
 * a pipeline's results; ctx counts the rows and then the killed. */
typedef struct kill_count {
    size_t rows;
    int64_t killed;
} kill_count;

static int kill_reader_at_first_row(const aimdb_history_row *row, void *ctx) {
    (void)row;
    kill_count *k = ctx;
    if (k->rows++ == 0)
        k->killed = pg_query_int(&pg_test_server,
                                 "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS t "
                                 "FROM pg_stat_activity WHERE query LIKE "
                                 "'SELECT value_json::text, stored_at%' AND "
                                 "pid <> pg_backend_pid()) k WHERE k.t");
    return 0;
}

static void query_in_order(aimdb_backend b, const aimdb_query_params *q, size_t want) {
    ordered o = {.n = 0};
    char err[512] = "";
    int rc = b.ops->query(b.self, q, check_order, &o, err, sizeof(err));
    if (rc != AIMDB_OK) fail_msg("query: %s", err);
    assert_int_equal(o.n, want);
    assert_int_equal(o.out_of_order, 0);
}

/* Each record's rows on each gateway are read from idx_record_gateway_time
 * in the reply's order, so the server sorts nothing.  The reader here may
 * not write a temporary file (temp_file_limit 0) and sorts in 64 kB at
 * most: a sort of a record's 4,200 rows (~500 kB) would fail the query. */
static void test_range_reads_sort_nothing(void **state) {
    (void)state;
    aimdb_backend setup = open_pg("site-00");
    setup.ops->close(setup.self);
    pg_exec(&pg_test_server,
            "INSERT INTO record_history(gateway, record_name, value_json, stored_at, topic) "
            "SELECT 'site-' || lpad(g::text, 2, '0'), 'temp::' || r, "
            "jsonb_build_object('t', k, 'pad', repeat('x', 80)), 1000 + k, 'temp/' || r "
            "FROM generate_series(1, 70) g, generate_series(1, 2) r, generate_series(1, 60) k");
    char uri[512];
    snprintf(uri, sizeof(uri), "%s?options=-c%%20work_mem%%3D64kB%%20-c%%20temp_file_limit%%3D0",
             pg_test_server.uri);
    aimdb_postgres_options o = {.uri = uri, .gateway = "reader"};
    aimdb_backend b;
    char err[512] = "";
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK)
        fail_msg("aimdb_postgres_open: %s", err);
    aimdb_query_params q = {.pattern = "temp::1", .has_start = true, .start_ms = 0,
                            .has_end = true, .end_ms = 5000};
    query_in_order(b, &q, SORT_GATEWAYS * SORT_ROWS); /* one record, every gateway */
    q.pattern = "temp::*"; /* two records: windows across records */
    query_in_order(b, &q, 2 * SORT_GATEWAYS * SORT_ROWS);
    q.limit = 7;
    query_in_order(b, &q, 2 * SORT_GATEWAYS * 7);
    q.gateway = "site-0*";
    query_in_order(b, &q, 2 * 9 * 7); /* site-01 .. site-09 */
    /* Stopped half-way through a pipeline: the rest is read and dropped,
     * and the connection serves the next query. */
    q.gateway = NULL;
    size_t seen = 0;
    assert_int_equal(b.ops->query(b.self, &q, stop_at_100, &seen, err, sizeof(err)), 42);
    assert_int_equal(seen, 100);
    query_in_order(b, &q, 2 * SORT_GATEWAYS * 7);
    /* Stopped in a window without a limit in SQL: the connection is
     * closed rather than read to the end, and the next query reconnects. */
    q.limit = 0;
    seen = 0;
    assert_int_equal(b.ops->query(b.self, &q, stop_at_100, &seen, err, sizeof(err)), 42);
    query_in_order(b, &q, 2 * SORT_GATEWAYS * SORT_ROWS);
    /* The connection lost mid-pipeline: the query fails (rows went out
     * already, so it is not run again: the later windows cannot be sent
     * or answered), and the next one reconnects. */
    kill_count k = {0, 0};
    assert_int_equal(b.ops->query(b.self, &q, kill_reader_at_first_row, &k, err, sizeof(err)),
                     AIMDB_EIO);
    assert_int_equal(k.killed, 1);
    assert_non_null(strstr(err, "terminating connection"));
    query_in_order(b, &q, 2 * SORT_GATEWAYS * SORT_ROWS);
    b.ops->close(b.self);
}

/* 127 records on 128 gateways and a 128th on 256: 16,512 pairs, a page of
 * the listing (16,384, pg_reader.c) and then some.  The edge cuts the
 * 128th record, the last of the first 128 an aggregate statement takes. */
#define PAGED_PAIRS (127 * 128 + 256)

static int count_bucket(const aimdb_bucket *bucket, void *ctx) {
    size_t *n = ctx;
    (*n)++;
    return bucket->count == 1 ? 0 : 1;
}

/* More pairs than a page of the listing: each query reads every pair
 * once, in order, across the page's edge; the record the edge cuts is
 * aggregated once, though its name starts the next statement's records. */
static void test_listing_in_pages(void **state) {
    (void)state;
    aimdb_backend b = open_pg("g-0000");
    pg_exec(&pg_test_server,
            "INSERT INTO record_history(gateway, record_name, value_json, stored_at) "
            "SELECT 'g-' || lpad(g::text, 4, '0'), 'p::' || lpad(r::text, 3, '0'), to_jsonb(g), "
            "1000 + g FROM generate_series(1, 128) r, generate_series(1, 256) g "
            "WHERE g <= 128 OR r = 128");
    aimdb_query_params q = {.pattern = "p::*", .limit = 1}; /* latest-1: the listing itself */
    query_in_order(b, &q, PAGED_PAIRS);
    q.has_start = q.has_end = true; /* a range: every pair read */
    q.start_ms = 0;
    q.end_ms = 10000;
    query_in_order(b, &q, PAGED_PAIRS);
    aimdb_aggregate_params a = {.q = {.pattern = "p::*"}, .every_ms = 3600000};
    size_t buckets = 0;
    char err[512] = "";
    assert_int_equal(b.ops->aggregate(b.self, &a, count_bucket, &buckets, err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(buckets, PAGED_PAIRS); /* one per record and gateway */
    b.ops->close(b.self);
}

/* ------------------------------------------------- latest-1 (record_latest) */

/* "t" in full, "u" by topic: the newest "u" row is hidden. */
static aimdb_visibility t_all_u_by_topic(const char *record, void *ctx) {
    (void)ctx;
    return strcmp(record, "u") == 0 ? AIMDB_SEE_BY_SOURCE : AIMDB_SEE_ALL;
}

/* Latest-1 of pattern, answered from record_latest, and the same derived
 * from record_history alone (any range takes that path): both into out
 * (the first), failing if they differ. */
static void latest_both_ways(aimdb_backend b, const char *pattern, const aimdb_access *acl,
                             rows *out) {
    aimdb_query_params fast = {.pattern = pattern, .limit = 1, .access = acl};
    aimdb_query_params derived = fast;
    derived.has_start = true;
    derived.start_ms = INT64_MIN;
    rows d;
    query(b, &fast, out);
    query(b, &derived, &d);
    assert_int_equal(out->n, d.n);
    for (size_t i = 0; i < d.n; i++) assert_string_equal(out->text[i], d.text[i]);
}

/* Ties, rows out of order, hidden newest values, retention, and every
 * other writer of record_history (psql's INSERT, UPDATE, DELETE,
 * TRUNCATE, a missing trigger): record_latest answers as the rows do. */
static void test_latest_exact(void **state) {
    (void)state;
    aimdb_backend g1 = open_pg("gw1"), g2 = open_pg("gw2");
    store(g1, "t", "1", 500, "topic/a"); /* a tie: the last stored is the newest */
    store(g1, "t", "2", 500, "topic/a");
    store(g1, "t", "3", 500, "topic/a");
    store(g1, "t::late", "10", 600, NULL); /* then an older one */
    store(g1, "t::late", "11", 400, NULL);
    store(g1, "u", "20", 100, "topic/odd");
    store(g1, "u", "21", 200, "topic/even");
    store(g2, "t", "30", 100, NULL);
    assert_int_equal(g1.ops->flush(g1.self), AIMDB_OK);
    assert_int_equal(g2.ops->flush(g2.self), AIMDB_OK);
    rows r;
    latest_both_ways(g1, "*", NULL, &r);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.text[0], "t|gw1|500|topic/a|3");
    assert_string_equal(r.text[1], "t|gw2|100|-|30");
    assert_string_equal(r.text[2], "t::late|gw1|600|-|10");
    assert_string_equal(r.text[3], "u|gw1|200|topic/even|21");
    aimdb_access acl = {.record = t_all_u_by_topic, .value = odd_only_value};
    latest_both_ways(g1, "*", &acl, &r); /* the hidden 21 does not hide 20 */
    assert_int_equal(r.n, 4);
    assert_string_equal(r.text[3], "u|gw1|100|topic/odd|20");
    latest_both_ways(g1, "t", NULL, &r); /* one record, not its prefix's */
    assert_int_equal(r.n, 2);

    uint64_t deleted = 0; /* retention: older rows, then the newest too */
    assert_int_equal(g1.ops->cleanup(g1.self, "t::late", NULL, 0, 500, &deleted), AIMDB_OK);
    latest_both_ways(g1, "t::*", NULL, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "t::late|gw1|600|-|10");
    assert_int_equal(g1.ops->cleanup(g1.self, "t::late", NULL, 0, 700, &deleted), AIMDB_OK);
    latest_both_ways(g1, "t::*", NULL, &r);
    assert_int_equal(r.n, 0);

    pg_exec(&pg_test_server, "DELETE FROM record_history WHERE gateway = 'gw1' AND value_json = '3'");
    latest_both_ways(g1, "t", NULL, &r);
    assert_string_equal(r.text[0], "t|gw1|500|topic/a|2");
    pg_exec(&pg_test_server, "UPDATE record_history SET stored_at = 900 WHERE value_json = '1'");
    latest_both_ways(g1, "t", NULL, &r);
    assert_string_equal(r.text[0], "t|gw1|900|topic/a|1");
    pg_exec(&pg_test_server, "UPDATE record_history SET gateway = 'gw3' WHERE value_json = '30'");
    latest_both_ways(g1, "*", NULL, &r);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.text[1], "t|gw3|100|-|30");
    pg_exec(&pg_test_server, "INSERT INTO record_history(gateway, record_name, value_json, stored_at) "
                     "VALUES ('gw1', 'v', '40', 50)");
    latest_both_ways(g1, "v", NULL, &r);
    assert_int_equal(r.n, 1);

    /* A trigger gone: the next connect rebuilds record_latest from the rows. */
    pg_exec(&pg_test_server, "DROP TRIGGER aimdb_latest_insert ON record_history");
    pg_exec(&pg_test_server, "INSERT INTO record_history(gateway, record_name, value_json, stored_at) "
                     "VALUES ('gw1', 'v', '41', 60)");
    g2.ops->close(g2.self);
    g2 = open_pg("gw2");
    latest_both_ways(g2, "v", NULL, &r);
    assert_string_equal(r.text[0], "v|gw1|60|-|41");
    pg_exec(&pg_test_server, "TRUNCATE record_history");
    latest_both_ways(g2, "*", NULL, &r);
    assert_int_equal(r.n, 0);
    g1.ops->close(g1.self);
    g2.ops->close(g2.self);
}

/* record_latest's trigger function as another AimDB version might have
 * left it (this one keeps nothing), made by the tables' owner. */
static void install_another_versions_latest_function(void) {
    pg_exec(&pg_test_server, "CREATE OR REPLACE FUNCTION aimdb_record_latest() RETURNS trigger "
                             "LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$");
}

/* A database whose trigger function is another version's: the next
 * connect puts this version's in its place. */
static void test_latest_function_replaced(void **state) {
    (void)state;
    aimdb_backend g = open_pg("gw1");
    g.ops->close(g.self);
    install_another_versions_latest_function();
    g = open_pg("gw1");
    store(g, "t", "1", 100, NULL);
    store(g, "t", "2", 200, NULL);
    assert_int_equal(g.ops->flush(g.self), AIMDB_OK);
    rows r;
    latest_both_ways(g, "*", NULL, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "t|gw1|200|-|2");
    g.ops->close(g.self);
}

/* Rows written and deleted while the triggers do not fire (a session as
 * a replica, as a data-only restore writes) leave record_latest stale
 * until aimdb_record_latest_rebuild(), which a database an older AimDB
 * set up (no such function) gains at the next connect. */
static void test_latest_rebuilt_after_replica_writes(void **state) {
    (void)state;
    aimdb_backend g = open_pg("gw1");
    store(g, "t", "1", 100, NULL);
    store(g, "gone", "9", 50, NULL);
    assert_int_equal(g.ops->flush(g.self), AIMDB_OK);
    g.ops->close(g.self);
    pg_exec(&pg_test_server, "DROP FUNCTION aimdb_record_latest_rebuild()");
    pg_exec(&pg_test_server, "SET session_replication_role = replica; "
                     "INSERT INTO record_history(gateway, record_name, value_json, stored_at) "
                     "VALUES ('gw1', 't', '2', 200), ('gw9', 'u', '3', 300); "
                     "DELETE FROM record_history WHERE value_json IN ('1', '9')");
    g = open_pg("gw1");
    rows r;
    aimdb_query_params q = {.pattern = "*", .limit = 1};
    query(g, &q, &r); /* the entries of the deleted rows, as they were */
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "gone|gw1|50|-|9");
    assert_string_equal(r.text[1], "t|gw1|100|-|1");
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT aimdb_record_latest_rebuild()"), 2);
    latest_both_ways(g, "*", NULL, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "t|gw1|200|-|2");
    assert_string_equal(r.text[1], "u|gw9|300|-|3");
    g.ops->close(g.self);
}

/* Two rebuilds at once: the second waits for the first and answers too
 * (under a lock that let both in, its INSERT met the first one's rows). */
static void test_latest_rebuilds_at_once(void **state) {
    (void)state;
    aimdb_backend g = open_pg("gw1");
    store(g, "t", "1", 100, NULL);
    store(g, "u", "2", 100, NULL);
    assert_int_equal(g.ops->flush(g.self), AIMDB_OK);
    PGconn *first = PQconnectdb(pg_test_server.uri), *second = PQconnectdb(pg_test_server.uri);
    assert_int_equal(PQstatus(first), CONNECTION_OK);
    assert_int_equal(PQstatus(second), CONNECTION_OK);
    PGresult *res = PQexec(first, "BEGIN; SELECT aimdb_record_latest_rebuild()");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    assert_int_equal(PQsendQuery(second, "SELECT aimdb_record_latest_rebuild()"), 1);
    /* The second is in: the server shows it waiting for the first's lock. */
    assert_true(pg_wait_int(&pg_test_server, "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND query LIKE '%rebuild%'",
                            1, 10000) == 1);
    res = PQexec(first, "COMMIT");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    res = PQgetResult(second);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) fail_msg("second rebuild: %s", PQerrorMessage(second));
    assert_string_equal(PQgetvalue(res, 0, 0), "2");
    PQclear(res);
    assert_null(PQgetResult(second));
    PQfinish(first);
    PQfinish(second);
    rows r;
    latest_both_ways(g, "*", NULL, &r);
    assert_int_equal(r.n, 2);
    g.ops->close(g.self);
}

/* A node connects beside an open read and an open write of record_history
 * (a long Grafana query, another node's batch) without waiting for them:
 * its connect finds the schema complete and locks nothing there.  Its
 * lock_timeout turns a wait into a failed open. */
static void test_connect_beside_open_transactions(void **state) {
    (void)state;
    aimdb_backend setup = open_pg("gw1");
    setup.ops->close(setup.self);
    PGconn *reader = PQconnectdb(pg_test_server.uri), *writer = PQconnectdb(pg_test_server.uri);
    assert_int_equal(PQstatus(reader), CONNECTION_OK);
    assert_int_equal(PQstatus(writer), CONNECTION_OK);
    PGresult *res = PQexec(reader, "BEGIN; SELECT count(*) FROM record_history");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    res = PQexec(writer, "BEGIN; INSERT INTO record_history(gateway, record_name, value_json, "
                         "stored_at) VALUES ('gw2', 't', '1', 100)");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    char uri[512];
    snprintf(uri, sizeof(uri), "%s?options=-c%%20lock_timeout%%3D2000", pg_test_server.uri);
    aimdb_postgres_options o = {.uri = uri, .gateway = "gw3"};
    aimdb_backend b;
    char err[512] = "";
    int rc = aimdb_postgres_open(&o, &b, err, sizeof(err));
    /* Ended before failing: left open, they would block the next test's
     * DROP TABLE for good. */
    PQfinish(reader);
    PQfinish(writer);
    if (rc != AIMDB_OK) fail_msg("aimdb_postgres_open beside open transactions: %s", err);
    b.ops->close(b.self);
}

/* Latest-1 writes names and gateway patterns into its statement as
 * literals: quotes and backslashes in them are characters like any other. */
static void test_latest_quoted_names(void **state) {
    (void)state;
    aimdb_backend g = open_pg("it's\\gw");
    store(g, "o'k\\t", "1", 100, NULL);
    store(g, "o'k\\u", "2", 100, NULL);
    store(g, "o'kx", "3", 100, NULL);
    assert_int_equal(g.ops->flush(g.self), AIMDB_OK);
    rows r;
    latest_both_ways(g, "o'k\\t", NULL, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "o'k\\t|it's\\gw|100|-|1");
    latest_both_ways(g, "o'k\\*", NULL, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[1], "o'k\\u|it's\\gw|100|-|2");
    aimdb_query_params q = {.pattern = "*", .limit = 1, .gateway = "it's\\*"};
    query(g, &q, &r);
    assert_int_equal(r.n, 3);
    q.gateway = "it's";
    query(g, &q, &r);
    assert_int_equal(r.n, 0);
    g.ops->close(g.self);
}

static void test_retention_in_chunks(void **state) {
    (void)state;
    aimdb_backend b = open_pg("central");
    for (int i = 0; i < 12000; i++) store(b, i % 2 ? "old::a" : "old::b", "1", 1000 + i, NULL);
    store(b, "keep", "2", 1000, NULL);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    uint64_t deleted = 0;
    const char *except[] = {"keep"};
    assert_int_equal(b.ops->cleanup(b.self, NULL, except, 1, 1000 + 11000, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 11000);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 1001);
    assert_int_equal(b.ops->cleanup(b.self, "keep", NULL, 0, 2000, &deleted), AIMDB_OK);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history WHERE "
                                           "record_name = 'keep'"),
                     0);
    b.ops->close(b.self);
}

/* The server stopped while rows keep coming, then started: every row
 * exactly once. */
static void test_outage_under_load(void **state) {
    (void)state;
    aimdb_backend b = open_pg("central");
    int n = 0;
    for (; n < 2000; n++) {
        char json[32];
        snprintf(json, sizeof(json), "%d", n);
        store(b, "load", json, n, NULL);
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    pg_server_stop(&pg_test_server);
    for (; n < 6000; n++) {
        char json[32];
        snprintf(json, sizeof(json), "%d", n);
        store(b, "load", json, n, NULL);
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_EIO); /* commits fail meanwhile */
    pg_server_restart(&pg_test_server);
    /* flush returns EIO on each failed attempt; the rows stay queued. */
    long long deadline = now_ms() + 30000;
    while (b.ops->flush(b.self) != AIMDB_OK && now_ms() < deadline) sleep_ms(50);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 6000);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(DISTINCT value_json) FROM record_history"),
                     6000);
    /* The query connection broke too: it reconnects. */
    rows r;
    aimdb_query_params q = {.pattern = "load", .limit = 1};
    query(b, &q, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "load|central|5999|-|5999");
    b.ops->close(b.self);
}

/* Rows the server can never take -- a value jsonb refuses, a name too long
 * for the indexes -- are dropped alone; the rest of their batch is stored. */
static void test_refused_rows_are_dropped_alone(void **state) {
    (void)state;
    aimdb_backend b = open_pg("central");
    for (int i = 0; i < 100; i++)
        store(b, i == 60 ? pg_unindexable_name() : "s", i == 40 ? "\"\\u0000\"" : "\"ok\"", i,
              NULL);
    b.ops->flush(b.self);
    assert_int_equal(pg_wait_int(&pg_test_server, "SELECT count(*) FROM record_history", 98, 10000), 98);
    aimdb_backend_stats st;
    b.ops->stats(b.self, &st);
    assert_int_equal(st.rows_failed, 2);
    assert_int_equal(st.rows_stored, 98);
    b.ops->close(b.self);
}

static void expect_open_error(const char *uri, const char *text) {
    aimdb_postgres_options o = {.uri = uri, .gateway = "g"};
    aimdb_backend b;
    char err[512] = "";
    assert_int_equal(aimdb_postgres_open(&o, &b, err, sizeof(err)), AIMDB_EINVAL);
    if (!strstr(err, text)) fail_msg("error '%s' does not say '%s'", err, text);
}

static void test_errors(void **state) {
    (void)state;
    char uri[256];
    expect_open_error("postgresql://127.0.0.1:notaport/x", "bad PostgreSQL URI");
    expect_open_error("postgresql://a@b@c?sslmode=sometimes", "bad PostgreSQL URI");
    snprintf(uri, sizeof(uri), "postgresql://nobody_here@127.0.0.1:%d/postgres", pg_test_server.port);
    expect_open_error(uri, "nobody_here");
    /* The message names the server, never a password. */
    snprintf(uri, sizeof(uri), "postgresql://nobody_here:s3cret@127.0.0.1:%d/postgres",
             pg_test_server.port);
    aimdb_postgres_options o = {.uri = uri, .gateway = "g"};
    aimdb_backend b;
    char err[512] = "";
    assert_int_equal(aimdb_postgres_open(&o, &b, err, sizeof(err)), AIMDB_EINVAL);
    assert_null(strstr(err, "s3cret"));
    assert_non_null(strstr(err, "nobody_here@127.0.0.1:"));
    pg_exec(&pg_test_server, "CREATE TABLE record_history(id BIGSERIAL PRIMARY KEY, gateway TEXT NOT "
                     "NULL, record_name TEXT NOT NULL, value_json TEXT NOT NULL, stored_at "
                     "BIGINT NOT NULL, source_id BIGINT)");
    expect_open_error(pg_test_server.uri, "column value_json is text, expected jsonb");
    pg_exec(&pg_test_server, "DROP TABLE record_history");
    pg_exec(&pg_test_server, "CREATE TABLE record_history(id BIGSERIAL PRIMARY KEY, gateway TEXT "
                     "COLLATE \"C\" NOT NULL, record_name TEXT COLLATE \"C\" NOT NULL, "
                     "value_json JSONB NOT NULL, stored_at BIGINT NOT NULL, source_id BIGINT)");
    expect_open_error(pg_test_server.uri, "no UNIQUE (gateway, source_id)");
    /* Nor is one a failed CREATE UNIQUE INDEX CONCURRENTLY left invalid. */
    pg_exec(&pg_test_server, "INSERT INTO record_history(gateway, record_name, value_json, "
                             "stored_at, source_id) "
                             "VALUES ('g', 'r', '1', 1, 7), ('g', 'r', '2', 2, 7)");
    PGconn *c = PQconnectdb(pg_test_server.uri);
    PGresult *res = PQexec(c, "CREATE UNIQUE INDEX CONCURRENTLY gateway_source ON "
                              "record_history(gateway, source_id)");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    PQfinish(c);
    expect_open_error(pg_test_server.uri, "no UNIQUE (gateway, source_id)");
    pg_exec(&pg_test_server, "DROP TABLE record_history");
    pg_exec(&pg_test_server, "CREATE TABLE record_history(id BIGSERIAL PRIMARY KEY, gateway TEXT "
                     "COLLATE \"und-x-icu\" NOT NULL, record_name TEXT NOT NULL, "
                     "value_json JSONB NOT NULL, stored_at BIGINT NOT NULL, source_id BIGINT, "
                     "UNIQUE (gateway, source_id))");
    expect_open_error(pg_test_server.uri, "column gateway has collation \"und-x-icu\"; aimdb needs \"C\"");
    pg_exec(&pg_test_server, "DROP TABLE record_history");
    /* Last year's table renamed aside keeps its index names. */
    aimdb_backend old = open_pg("gw1");
    old.ops->close(old.self);
    pg_exec(&pg_test_server, "ALTER TABLE record_history RENAME TO record_history_2025");
    expect_open_error(pg_test_server.uri, "the name idx_record_time is taken by an index of "
                                          "table record_history_2025");
    pg_exec(&pg_test_server, "DROP TABLE record_history_2025");
}

/* A gateway logging in as a role of its own, on a schema its owner made:
 * refused until the role has the rights it needs, with the statements
 * that grant them; then it stores and answers with those alone
 * (PostgreSQL 15 gives PUBLIC no CREATE on schema public). */
static void test_a_role_of_its_own(void **state) {
    (void)state;
    aimdb_backend setup = open_pg("gw1");
    setup.ops->close(setup.self);
    pg_exec(&pg_test_server, "CREATE ROLE aimdb_gw LOGIN");
    char uri[256], err[1024] = "";
    snprintf(uri, sizeof(uri), "postgresql://aimdb_gw@127.0.0.1:%d/postgres", pg_test_server.port);
    aimdb_postgres_options o = {.uri = uri, .gateway = "gw2", .flush_interval_ms = 10};
    aimdb_backend b;
    assert_int_equal(aimdb_postgres_open(&o, &b, err, sizeof(err)), AIMDB_EINVAL);
    const char *lacks = "role aimdb_gw lacks SELECT on record_history, INSERT on record_history, "
                        "SELECT on record_latest, INSERT on record_latest, UPDATE on "
                        "record_latest, USAGE on public.record_history_id_seq, ";
    if (!strstr(err, lacks)) fail_msg("error '%s' does not say '%s'", err, lacks);
    /* What the message says to run is all it takes. */
    char *grants = strstr(err, "(GRANT "), *end = strstr(err, "; and DELETE");
    assert_non_null(grants);
    assert_non_null(end);
    *end = '\0';
    pg_exec(&pg_test_server, grants + 1);
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK)
        fail_msg("aimdb_postgres_open with the rights granted: %s", err);
    store(b, "t", "1", 1000, NULL);
    store(b, "t", "2", 2000, NULL);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    rows r;
    aimdb_query_params q = {.pattern = "t", .limit = 1};
    query(b, &q, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "t|gw2|2000|-|2");
    /* Retention without DELETE fails on its own, and stores go on. */
    uint64_t deleted = 0;
    assert_int_not_equal(b.ops->cleanup(b.self, "t", NULL, 0, 1500, &deleted), AIMDB_OK);
    store(b, "t", "3", 3000, NULL);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    pg_exec(&pg_test_server, "GRANT DELETE ON record_history, record_latest TO aimdb_gw");
    assert_int_equal(b.ops->cleanup(b.self, "t", NULL, 0, 1500, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 1);
    b.ops->close(b.self);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 2);
    pg_exec(&pg_test_server, "DROP OWNED BY aimdb_gw; DROP ROLE aimdb_gw");
}

static char warnings[2048];
static void capture_warning(void *self, aimdb_log_level level, const char *fmt, va_list ap) {
    (void)self;
    size_t used = strlen(warnings);
    if (level == AIMDB_LOG_WARNING && used + 2 < sizeof(warnings)) {
        vsnprintf(warnings + used, sizeof(warnings) - used - 1, fmt, ap);
        strcat(warnings, "\n");
    }
}

/* An index a failed CREATE INDEX CONCURRENTLY left invalid is there by
 * name but serves no query: said at connect, which goes on (rows are
 * stored as before; only queries are slower). */
static void test_invalid_index_is_said(void **state) {
    (void)state;
    aimdb_backend setup = open_pg("gw1");
    store(setup, "t", "1", 1000, NULL);
    store(setup, "t", "2", 1000, NULL);
    setup.ops->close(setup.self);
    pg_exec(&pg_test_server, "DROP INDEX idx_record_time");
    PGconn *c = PQconnectdb(pg_test_server.uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, "CREATE UNIQUE INDEX CONCURRENTLY idx_record_time ON "
                              "record_history(record_name, stored_at DESC)");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR); /* (t, 1000) twice */
    PQclear(res);
    PQfinish(c);
    aimdb_runtime rt = *aimdb_runtime_pthread();
    rt.log = capture_warning;
    warnings[0] = '\0';
    aimdb_postgres_options o = {.uri = pg_test_server.uri, .gateway = "gw1", .runtime = &rt};
    aimdb_backend b;
    char err[512] = "";
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK)
        fail_msg("aimdb_postgres_open beside an invalid index: %s", err);
    b.ops->close(b.self);
    const char *said = "record_history's index idx_record_time is invalid";
    if (!strstr(warnings, said)) fail_msg("warnings '%s' do not say '%s'", warnings, said);
    /* Rebuilt, nothing more is said. */
    pg_exec(&pg_test_server, "DROP INDEX idx_record_time");
    warnings[0] = '\0';
    assert_int_equal(aimdb_postgres_open(&o, &b, err, sizeof(err)), AIMDB_OK);
    b.ops->close(b.self);
    assert_null(strstr(warnings, "invalid"));
}

/* A database another AimDB version set up (its trigger function of
 * another text, no rebuild function), reached by a gateway's own role,
 * which may replace neither: it stores with the function there and says
 * so; the owner's next connect replaces them. */
static void test_a_role_of_its_own_beside_another_version(void **state) {
    (void)state;
    aimdb_backend setup = open_pg("gw1");
    setup.ops->close(setup.self);
    install_another_versions_latest_function();
    pg_exec(&pg_test_server, "DROP FUNCTION aimdb_record_latest_rebuild()");
    pg_exec(&pg_test_server, "CREATE ROLE aimdb_gw LOGIN; "
                             "GRANT SELECT, INSERT ON record_history TO aimdb_gw; "
                             "GRANT SELECT, INSERT, UPDATE ON record_latest TO aimdb_gw; "
                             "GRANT USAGE ON SEQUENCE record_history_id_seq TO aimdb_gw");
    aimdb_runtime rt = *aimdb_runtime_pthread();
    rt.log = capture_warning;
    warnings[0] = '\0';
    char uri[256], err[1024] = "";
    snprintf(uri, sizeof(uri), "postgresql://aimdb_gw@127.0.0.1:%d/postgres", pg_test_server.port);
    aimdb_postgres_options o = {.uri = uri, .gateway = "gw2", .runtime = &rt};
    aimdb_backend b;
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK)
        fail_msg("aimdb_postgres_open beside another version's functions: %s", err);
    store(b, "t", "1", 1000, NULL);
    b.ops->close(b.self);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 1);
    const char *said = "function aimdb_record_latest(), aimdb_record_latest_rebuild(): another "
                       "AimDB version's, or missing, and this role may not replace it";
    if (!strstr(warnings, said)) fail_msg("warnings '%s' do not say '%s'", warnings, said);
    aimdb_backend owner = open_pg("gw1");
    owner.ops->close(owner.self);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT aimdb_record_latest_rebuild()"), 1);
    warnings[0] = '\0';
    assert_int_equal(aimdb_postgres_open(&o, &b, err, sizeof(err)), AIMDB_OK);
    store(b, "t", "2", 2000, NULL);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    rows r;
    latest_both_ways(b, "t", NULL, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "t|gw2|2000|-|2");
    b.ops->close(b.self);
    assert_null(strstr(warnings, "function"));
    pg_exec(&pg_test_server, "DROP OWNED BY aimdb_gw; DROP ROLE aimdb_gw");
}

typedef struct stopper {
    aimdb_db *db;
    atomic_bool done;
} stopper;

static void *stop_db(void *arg) {
    stopper *s = arg;
    aimdb_db_stop(s->db);
    atomic_store(&s->done, true);
    return NULL;
}

/* The server down, the queue full and more values in the record's buffer
 * than it holds: a stop gives up on them after the grace instead of waiting
 * for the server for good (the broker's shutdown hung here), counting what
 * it could not store. */
static void test_stop_with_the_server_down(void **state) {
    (void)state;
    aimdb_postgres_options o = {.uri = pg_test_server.uri, .gateway = "gw1", .queue_rows = 64,
                                .batch_rows = 16, .flush_interval_ms = 10};
    aimdb_backend b;
    char err[512] = "";
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK)
        fail_msg("aimdb_postgres_open: %s", err);
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = NULL;
    assert_int_equal(aimdb_persist_attach(db, b, NULL, &p), AIMDB_OK);
    aimdb_record *rec = NULL;
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, 4096};
    assert_int_equal(aimdb_record_register(db, "r", &ring, &aimdb_codec_int64, &rec), AIMDB_OK);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    pg_server_stop(&pg_test_server);
    for (int64_t i = 0; i < 1000; i++)
        assert_int_equal(aimdb_produce_at(rec, &i, sizeof(i), 1000 + i), AIMDB_OK);
    stopper s = {.db = db};
    pthread_t t;
    int64_t started = aimdb_monotonic_ms();
    assert_int_equal(pthread_create(&t, NULL, stop_db, &s), 0);
    while (!atomic_load(&s.done) && aimdb_monotonic_ms() < started + 60000) usleep(10000);
    int64_t took = aimdb_monotonic_ms() - started;
    pg_server_restart(&pg_test_server);
    if (!atomic_load(&s.done))
        fail_msg("aimdb_db_stop still waiting after %lld ms", (long long)took);
    pthread_join(t, NULL);
    aimdb_persist_stats st;
    aimdb_persist_stats_get(p, &st);
    assert_int_equal(st.rows_enqueued + st.rows_store_failed, 1000);
    assert_true(st.rows_store_failed > 0);
    assert_int_equal(st.backend.rows_stored, 0);
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_schema_created_and_rows_committed, pg_test_fresh_history),
        cmocka_unit_test_setup(test_queries_match_sqlite, pg_test_fresh_history),
        cmocka_unit_test_setup(test_access_by_topic, pg_test_fresh_history),
        cmocka_unit_test_setup(test_gateway_patterns, pg_test_fresh_history),
        cmocka_unit_test_setup(test_range_reads_sort_nothing, pg_test_fresh_history),
        cmocka_unit_test_setup(test_listing_in_pages, pg_test_fresh_history),
        cmocka_unit_test_setup(test_latest_exact, pg_test_fresh_history),
        cmocka_unit_test_setup(test_latest_quoted_names, pg_test_fresh_history),
        cmocka_unit_test_setup(test_latest_function_replaced, pg_test_fresh_history),
        cmocka_unit_test_setup(test_latest_rebuilt_after_replica_writes, pg_test_fresh_history),
        cmocka_unit_test_setup(test_latest_rebuilds_at_once, pg_test_fresh_history),
        cmocka_unit_test_setup(test_connect_beside_open_transactions, pg_test_fresh_history),
        cmocka_unit_test_setup(test_retention_in_chunks, pg_test_fresh_history),
        cmocka_unit_test_setup(test_refused_rows_are_dropped_alone, pg_test_fresh_history),
        cmocka_unit_test_setup(test_errors, pg_test_fresh_history),
        cmocka_unit_test_setup(test_a_role_of_its_own, pg_test_fresh_history),
        cmocka_unit_test_setup(test_invalid_index_is_said, pg_test_fresh_history),
        cmocka_unit_test_setup(test_a_role_of_its_own_beside_another_version,
                               pg_test_fresh_history),
        cmocka_unit_test_setup(test_outage_under_load, pg_test_fresh_history),
        cmocka_unit_test_setup(test_stop_with_the_server_down, pg_test_fresh_history),
    };
    return cmocka_run_group_tests(tests, pg_test_server_setup, pg_test_server_teardown);
}
