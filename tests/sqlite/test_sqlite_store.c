/*
 * test_sqlite_store.c -- the SQLite backend's contract: what is stored comes
 * back, patterns mean exactly what docs/protocol.md says, order and limits hold, ranges
 * are inclusive and uncapped, cleanup counts are exact, and every query
 * statement goes through idx_record_time (EXPLAIN QUERY PLAN).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "history_fixture.h"
#include "sqlite_internal.h"

static aimdb_backend open_memory(void) {
    aimdb_sqlite_options o = {.path = ":memory:"};
    return fixture_open(&o);
}

static void store(aimdb_backend b, const char *record, const char *json, int64_t ts) {
    assert_int_equal(b.ops->store(b.self, record, json, strlen(json), ts, NULL), AIMDB_OK);
}

static void store_number(aimdb_backend b, const char *record, int64_t v, int64_t ts) {
    char json[32];
    snprintf(json, sizeof(json), "%lld", (long long)v);
    store(b, record, json, ts);
}

/* Query with pattern, limit and optional bounds; flushes first. */
static void query(aimdb_backend b, const char *pattern, uint32_t limit, fixture_rows *rows) {
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    aimdb_query_params q = {.pattern = pattern, .limit = limit};
    assert_int_equal(fixture_query(b, &q, rows), AIMDB_OK);
}

static void assert_records(const fixture_rows *rows, const char *const *expected, size_t n) {
    assert_int_equal(rows->n, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(rows->v[i].record, expected[i]);
}

static void test_store_and_wildcard_query(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    store(b, "temp::vienna", "21.5", 1000);
    store(b, "temp::graz", "{\"c\":19}", 1001);
    store(b, "hum::vienna", "\"wet\"", 1002);
    store(b, "temp::vienna", "22.5", 2000);

    fixture_rows rows = {0};
    query(b, "temp::*", 1, &rows);
    const char *temp[] = {"temp::graz", "temp::vienna"};
    assert_records(&rows, temp, 2);
    assert_string_equal(rows.v[0].value, "{\"c\":19}");
    assert_int_equal(rows.v[0].stored_at, 1001);
    assert_string_equal(rows.v[1].value, "22.5");
    assert_int_equal(rows.v[1].stored_at, 2000);
    fixture_rows_free(&rows);

    query(b, "*::vienna", 0, &rows);
    const char *vienna[] = {"hum::vienna", "temp::vienna", "temp::vienna"};
    assert_records(&rows, vienna, 3);
    fixture_rows_free(&rows);

    query(b, NULL, 0, &rows);
    assert_int_equal(rows.n, 4);
    fixture_rows_free(&rows);

    query(b, "temp::graz", 0, &rows); /* no '*': exactly one record */
    const char *graz[] = {"temp::graz"};
    assert_records(&rows, graz, 1);
    fixture_rows_free(&rows);

    query(b, "*m*:v*", 0, &rows); /* several stars, backtracking */
    assert_records(&rows, vienna, 3);
    fixture_rows_free(&rows);

    query(b, "temp::vienna*", 0, &rows); /* '*' also matches the empty run */
    assert_int_equal(rows.n, 2);
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

static void test_time_range_is_inclusive_and_uncapped(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    for (int64_t ts = 100; ts <= 110; ts++) store_number(b, "r", ts, ts);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);

    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "r", .has_start = true, .has_end = true,
                            .start_ms = 102, .end_ms = 105};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 4);
    for (size_t i = 0; i < 4; i++) assert_int_equal(rows.v[i].stored_at, 105 - (int64_t)i);
    fixture_rows_free(&rows);

    q = (aimdb_query_params){.pattern = "r", .has_start = true, .start_ms = 108};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 3);
    fixture_rows_free(&rows);

    q = (aimdb_query_params){.pattern = "r", .has_end = true, .end_ms = 100};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 1);
    assert_int_equal(rows.v[0].stored_at, 100);
    fixture_rows_free(&rows);

    q = (aimdb_query_params){.pattern = "r", .has_start = true, .has_end = true,
                             .start_ms = 103, .end_ms = 103};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 1);
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

static void test_special_characters_are_literal(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    const char *names[] = {"a%b", "a_b", "axb", "a?b", "a[b]", "a\\b", "a\\\\b", "aXb", "A%b"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        store_number(b, names[i], (int64_t)i, 1);

    /* Each special character matches only itself, never "any character". */
    const char *literal[] = {"a%b", "a_b", "a?b", "a[b]", "a\\b", "a\\\\b"};
    for (size_t i = 0; i < sizeof(literal) / sizeof(literal[0]); i++) {
        fixture_rows rows = {0};
        query(b, literal[i], 0, &rows);
        assert_records(&rows, &literal[i], 1);
        fixture_rows_free(&rows);
    }
    fixture_rows rows = {0};
    query(b, "a%*", 0, &rows); /* the prefix "a%" is literal too */
    assert_records(&rows, literal, 1);
    fixture_rows_free(&rows);

    query(b, "a\\*", 0, &rows); /* backslash does not escape the star */
    const char *backslashed[] = {"a\\\\b", "a\\b"};
    assert_records(&rows, backslashed, 2);
    fixture_rows_free(&rows);

    query(b, "A*", 0, &rows); /* case-sensitive */
    const char *upper[] = {"A%b"};
    assert_records(&rows, upper, 1);
    fixture_rows_free(&rows);

    query(b, "*b", 0, &rows);
    assert_int_equal(rows.n, 8); /* all but "a[b]" */
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

static void test_order_and_per_record_limit(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    /* Stored out of time order, interleaved across records. */
    const int64_t times[] = {50, 10, 40, 30, 20};
    const char *names[] = {"s::c", "s::a", "s::b"};
    for (size_t t = 0; t < 5; t++)
        for (size_t r = 0; r < 3; r++) store_number(b, names[r], times[t], times[t]);

    fixture_rows rows = {0};
    query(b, "s::*", 2, &rows);
    const char *expected[] = {"s::a", "s::a", "s::b", "s::b", "s::c", "s::c"};
    assert_records(&rows, expected, 6);
    for (size_t i = 0; i < 6; i += 2) {
        assert_int_equal(rows.v[i].stored_at, 50);
        assert_int_equal(rows.v[i + 1].stored_at, 40);
    }
    fixture_rows_free(&rows);

    query(b, "s::*", 0, &rows);
    assert_int_equal(rows.n, 15);
    for (size_t i = 1; i < rows.n; i++) {
        int order = strcmp(rows.v[i - 1].record, rows.v[i].record);
        assert_true(order < 0 || (order == 0 && rows.v[i - 1].stored_at > rows.v[i].stored_at));
    }
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

static void test_range_of_100000_rows_comes_back_whole(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    const int64_t n = 100000;
    for (int64_t i = 0; i < n; i++) {
        store_number(b, "big", i, 1000000 + i);
        if (i % 10 == 0) store_number(b, "other", i, 1000000 + i);
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "big", .has_start = true, .has_end = true,
                            .start_ms = 1000000, .end_ms = 1000000 + n - 1};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, n);
    for (int64_t i = 0; i < n; i++) assert_int_equal(rows.v[i].stored_at, 1000000 + n - 1 - i);
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

static void test_extreme_timestamps_round_trip(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    store(b, "t", "1", INT64_MIN);
    store(b, "t", "2", INT64_MAX);
    store(b, "t", "3", 0);
    fixture_rows rows = {0};
    query(b, "t", 0, &rows);
    assert_int_equal(rows.n, 3);
    assert_true(rows.v[0].stored_at == INT64_MAX);
    assert_true(rows.v[1].stored_at == 0);
    assert_true(rows.v[2].stored_at == INT64_MIN);
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

static void test_cleanup_row_counts(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    for (int64_t ts = 0; ts < 100; ts++) {
        store_number(b, "keep", ts, ts);
        store_number(b, "drop", ts, ts);
        store_number(b, "default", ts, ts);
    }
    /* More than one chunk, to see chunks add up exactly. */
    for (int64_t ts = 0; ts < 2 * SQ_CLEANUP_CHUNK + 123; ts++) store_number(b, "many", ts, ts);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);

    uint64_t deleted = 0;
    assert_int_equal(b.ops->cleanup(b.self, "drop", NULL, 0, 60, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 60); /* stored_at < cutoff: 0..59 */

    deleted = 0;
    const char *except[] = {"keep", "drop"};
    assert_int_equal(b.ops->cleanup(b.self, NULL, except, 2, 90, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 90 + 90); /* "default" and "many" */

    deleted = 0;
    assert_int_equal(b.ops->cleanup(b.self, "many", NULL, 0, INT64_MAX, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 2 * SQ_CLEANUP_CHUNK + 123 - 90);

    fixture_rows rows = {0};
    query(b, "*", 0, &rows);
    size_t keep = 0, drop = 0, dflt = 0;
    for (size_t i = 0; i < rows.n; i++) {
        if (strcmp(rows.v[i].record, "keep") == 0) keep++;
        if (strcmp(rows.v[i].record, "drop") == 0) drop++;
        if (strcmp(rows.v[i].record, "default") == 0) dflt++;
    }
    assert_int_equal(keep, 100);
    assert_int_equal(drop, 40);
    assert_int_equal(dflt, 10);
    assert_int_equal(rows.n, 150);
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

/* A statement whose every step of the plan is what: SQ_ROW_IDS_SQL must
 * not touch the table (that is what it is for), SQ_ROW_SQL one row. */
static void assert_plan_reads_only(sqlite3 *db, const char *sql, const char *what) {
    char explain[1024];
    snprintf(explain, sizeof(explain), "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, explain, -1, &st, NULL), SQLITE_OK);
    int steps = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        print_message("  plan: %s\n", detail);
        assert_non_null(strstr(detail, what));
        steps++;
    }
    assert_int_equal(steps, 1);
    sqlite3_finalize(st);
}

/* Every statement a query or cleanup runs must search idx_record_time:
 * no table scan, no sort in a temporary b-tree. */
static void assert_plan_uses_index(sqlite3 *db, const char *sql) {
    char explain[1024];
    snprintf(explain, sizeof(explain), "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, explain, -1, &st, NULL), SQLITE_OK);
    bool uses_index = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        print_message("  plan: %s\n", detail);
        if (strstr(detail, "INDEX idx_record_time (record_name")) uses_index = true;
        assert_null(strstr(detail, "SCAN"));
        assert_null(strstr(detail, "TEMP B-TREE"));
    }
    sqlite3_finalize(st);
    assert_true(uses_index);
}

static void test_query_plans_use_the_index(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "plan.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    for (int i = 0; i < 1000; i++) store_number(b, i % 2 ? "x::1" : "y::2", i, i);
    b.ops->close(b.self);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    /* With statistics the planner could prefer another plan; INDEXED BY must
     * keep it on the index either way. */
    assert_int_equal(sqlite3_exec(db, "ANALYZE", NULL, NULL, NULL), SQLITE_OK);
    assert_plan_uses_index(db, SQ_FIRST_NAME_SQL);
    assert_plan_uses_index(db, SQ_NEXT_NAME_SQL);
    assert_plan_uses_index(db, SQ_ROWS_SQL);
    assert_plan_uses_index(db, SQ_ROW_IDS_SQL);
    assert_plan_reads_only(db, SQ_ROW_IDS_SQL, "COVERING INDEX idx_record_time");
    assert_plan_reads_only(db, SQ_ROW_SQL, "INTEGER PRIMARY KEY (rowid=?)");
    assert_plan_uses_index(db, SQ_DELETE_CHUNK_SQL);
    sqlite3_close(db);

    /* The schema is exactly docs/schema.md. */
    assert_int_equal(fixture_count(path, "id > 0 AND typeof(stored_at) = 'integer'"), 1000);
    free(path);
    fixture_rmtree(dir);
}

static void test_memory_databases_are_private(void **state) {
    (void)state;
    aimdb_backend a = open_memory(), b = open_memory();
    store(a, "only::a", "1", 1);
    fixture_rows rows = {0};
    query(b, "*", 0, &rows);
    assert_int_equal(rows.n, 0);
    query(a, "*", 0, &rows); /* a's readers see a's writer */
    assert_int_equal(rows.n, 1);
    fixture_rows_free(&rows);
    a.ops->close(a.self);
    b.ops->close(b.self);
}

static void test_bad_options_and_arguments(void **state) {
    (void)state;
    aimdb_backend b;
    char err[256] = "";
    aimdb_sqlite_options o = {.path = NULL};
    assert_int_equal(aimdb_sqlite_open(&o, &b, err, sizeof(err)), AIMDB_EINVAL);
    assert_non_null(strstr(err, "path"));
    o.path = "/nonexistent-dir-for-aimdb/x.db";
    assert_int_equal(aimdb_sqlite_open(&o, &b, err, sizeof(err)), AIMDB_EIO);
    assert_non_null(strstr(err, "x.db"));
    o = (aimdb_sqlite_options){.path = ":memory:", .synchronous = (aimdb_sqlite_sync)7};
    assert_int_equal(aimdb_sqlite_open(&o, &b, err, sizeof(err)), AIMDB_EINVAL);

    /* A database that cannot be written is refused at open, clearly. */
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "ro.db");
    o = (aimdb_sqlite_options){.path = path};
    b = fixture_open(&o);
    b.ops->close(b.self);
    char uri[1024];
    snprintf(uri, sizeof(uri), "file:%s?mode=ro", path);
    o.path = uri;
    assert_int_equal(aimdb_sqlite_open(&o, &b, err, sizeof(err)), AIMDB_EIO);
    assert_non_null(strstr(err, "read-only"));
    fixture_exec(path, "DROP INDEX idx_record_time"); /* and one without its index */
    o.path = path;
    err[0] = '\0';
    assert_int_equal(aimdb_sqlite_open(&o, &b, err, sizeof(err)), AIMDB_OK);
    b.ops->close(b.self); /* the index is created again */
    free(path);
    fixture_rmtree(dir);

    b = open_memory();
    assert_int_equal(b.ops->store(b.self, "", "1", 1, 0, NULL), AIMDB_EINVAL);
    assert_int_equal(b.ops->store(b.self, NULL, "1", 1, 0, NULL), AIMDB_EINVAL);
    assert_int_equal(b.ops->store(b.self, "r", NULL, 0, 0, NULL), AIMDB_EINVAL);
    b.ops->close(b.self);
}

static void test_rows_with_bad_times_are_flagged(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "bad.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    store(b, "r", "1", 10);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    /* Another tool wrote a fractional time: reported, not fatal. */
    fixture_exec(path, "INSERT INTO record_history(record_name, value_json, stored_at) "
                       "VALUES('r', '2', 20.5), ('r', '3', 30.0)");
    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "r"};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 3);
    assert_null(rows.v[0].defect); /* 30.0 is an integral time */
    assert_int_equal(rows.v[0].stored_at, 30);
    assert_non_null(rows.v[1].defect);
    assert_null(rows.v[2].defect);
    fixture_rows_free(&rows);
    b.ops->close(b.self);
    free(path);
    fixture_rmtree(dir);
}

/* A table another tool made, without NOT NULL, with names no query can
 * ask for: NULL, BLOBs (one that reads "r" up to a NUL, one plain), and
 * text holding a NUL byte.  Every walk over the names -- queries, the
 * rollup catch-up at open, the retention sweep -- steps over them and
 * goes on: none crashes, loops, or counts them as record "r". */
static void test_foreign_names_are_stepped_over(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "foreign.db");
    fixture_exec(path,
                 "CREATE TABLE record_history(id INTEGER PRIMARY KEY AUTOINCREMENT, "
                 "record_name TEXT, value_json TEXT, stored_at INTEGER, topic TEXT);"
                 "CREATE INDEX idx_record_time ON record_history(record_name, stored_at DESC);"
                 "INSERT INTO record_history(record_name, value_json, stored_at) VALUES"
                 "('r', '1', 10), (NULL, '2', 11), (X'72003A3A78', '3', 12), "
                 "(CAST(X'7200' AS TEXT), '4', 13), (X'7373', '6', 15), ('s', '5', 14)");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    assert_true(fixture_wait(fixture_rolled_up, path, 10000));
    assert_int_equal(fixture_number(path, "SELECT count(DISTINCT record_name) FROM record_rollup"), 2);
    assert_int_equal(fixture_number(path, "SELECT rows FROM record_rollup "
                                     "WHERE record_name = 'r' AND field = ''"), 1);

    fixture_rows rows = {0};
    query(b, "*", 0, &rows);
    assert_records(&rows, (const char *const[]){"r", "s"}, 2);
    fixture_rows_free(&rows);

    uint64_t deleted = 0;
    assert_int_equal(b.ops->cleanup(b.self, NULL, NULL, 0, 15, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 2); /* r at 10 and s at 14, nothing of the others */
    assert_int_equal(fixture_count(path, NULL), 4);
    b.ops->close(b.self);
    free(path);
    fixture_rmtree(dir);
}

/* Newest first is reverse store order: values stored in one millisecond
 * (a device flushing its backlog) come back last stored first, for
 * latest-N, for a limit that cuts a run of equal times, and for ranges. */
static void test_equal_times_come_back_last_stored_first(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    for (int64_t i = 0; i < 200; i++) store_number(b, "burst", i, 1000 + i / 40);
    fixture_rows rows = {0};
    query(b, "burst", 1, &rows);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.v[0].value, "199");
    fixture_rows_free(&rows);
    query(b, "burst", 45, &rows); /* all of the last run (40) and 5 of the one before */
    assert_int_equal(rows.n, 45);
    for (size_t i = 0; i < rows.n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", 199 - (int)i);
        assert_string_equal(rows.v[i].value, want);
    }
    fixture_rows_free(&rows);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    aimdb_query_params range = {.pattern = "b*", .has_start = true, .start_ms = 1001,
                                .has_end = true, .end_ms = 1003};
    assert_int_equal(fixture_query(b, &range, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 120);
    for (size_t i = 0; i < rows.n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", 159 - (int)i);
        assert_string_equal(rows.v[i].value, want);
    }
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

/* An access predicate that hides every value published on "hidden". */
static aimdb_visibility by_source(const char *record, void *ctx) {
    (void)record, (void)ctx;
    return AIMDB_SEE_BY_SOURCE;
}

static bool not_hidden(const char *record, const char *source, void *ctx) {
    (void)record, (void)ctx;
    return !source || strcmp(source, "hidden") != 0;
}

/* Latest-1 fetches its row by id after walking the index (sqlite_reader.c):
 * rows the client may not see are passed over, through and across runs of
 * equal times, until the newest visible one. */
static void test_latest_is_the_newest_visible_value(void **state) {
    (void)state;
    aimdb_backend b = open_memory();
    const struct {
        const char *json, *source;
        int64_t ts;
    } rows_in[] = {{"1", "open", 1000}, {"2", "open", 2000}, {"3", "hidden", 2000},
                   {"4", "hidden", 3000}, {"5", NULL, 3000}, {"6", "hidden", 3000}};
    for (size_t i = 0; i < sizeof(rows_in) / sizeof(rows_in[0]); i++)
        assert_int_equal(b.ops->store(b.self, "mixed", rows_in[i].json, 1, rows_in[i].ts,
                                      rows_in[i].source),
                         AIMDB_OK);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    aimdb_access access = {.record = by_source, .value = not_hidden};
    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "mixed", .limit = 1, .access = &access};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.v[0].value, "5");
    fixture_rows_free(&rows);
    q.has_end = true, q.end_ms = 2999; /* the newest visible before 3000 */
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.v[0].value, "2");
    fixture_rows_free(&rows);
    b.ops->close(b.self);
}

/* One backend writes a file: a second one on the same path is refused,
 * naming the holder, until the first is closed; a memory database is
 * never locked. */
static void test_second_writer_is_refused(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "one.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend first = fixture_open(&o), second;
    char err[512] = "", want[64];
    assert_int_equal(aimdb_sqlite_open(&o, &second, err, sizeof(err)), AIMDB_EIO);
    snprintf(want, sizeof(want), "in use by process %ld", (long)getpid());
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "one.db.lock"));
    first.ops->close(first.self);
    second = fixture_open(&o);
    second.ops->close(second.self);

    aimdb_sqlite_options m = {.path = ":memory:"};
    aimdb_backend a = fixture_open(&m), b = fixture_open(&m);
    a.ops->close(a.self);
    b.ops->close(b.self);
    free(path);
    fixture_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_and_wildcard_query),
        cmocka_unit_test(test_time_range_is_inclusive_and_uncapped),
        cmocka_unit_test(test_special_characters_are_literal),
        cmocka_unit_test(test_order_and_per_record_limit),
        cmocka_unit_test(test_equal_times_come_back_last_stored_first),
        cmocka_unit_test(test_latest_is_the_newest_visible_value),
        cmocka_unit_test(test_range_of_100000_rows_comes_back_whole),
        cmocka_unit_test(test_extreme_timestamps_round_trip),
        cmocka_unit_test(test_cleanup_row_counts),
        cmocka_unit_test(test_query_plans_use_the_index),
        cmocka_unit_test(test_memory_databases_are_private),
        cmocka_unit_test(test_bad_options_and_arguments),
        cmocka_unit_test(test_second_writer_is_refused),
        cmocka_unit_test(test_rows_with_bad_times_are_flagged),
        cmocka_unit_test(test_foreign_names_are_stepped_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
