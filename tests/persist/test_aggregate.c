/*
 * test_aggregate.c -- aggregates on the SQLite backend: the shared case
 * table (aggregate_cases.json) answered by its rollups and by the layer's
 * aggregation of its rows, on rows it stored itself, on rows another tool
 * wrote before and while it runs (the catch-up), after a failed commit,
 * and after retention cut an hour in two.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "aggregate_cases.h"
#include "history_fixture.h"

#define HOUR 3600000LL

static aggregate_cases *cases;

static void check_both(cases_db *d, const char *label) {
    assert_int_equal(aggregate_cases_check(cases, d, true, label), 0);
    assert_int_equal(aggregate_cases_check(cases, d, false, label), 0);
}

static void test_cases_on_rows_it_stored(void **state) {
    (void)state;
    char *dir = fixture_tmpdir(), *path = fixture_path(dir, "h.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    aggregate_cases_store(cases, b);
    cases_db *d = cases_db_open(b);
    /* Right away (the lines may still wait in the writer's memory), then
     * once the writer stored them, which it does within a second, by
     * itself: no row is left for a catch-up. */
    check_both(d, "stored, lines in memory");
    assert_true(fixture_wait(fixture_rolled_up, path, 10000));
    assert_true(fixture_number(path, "SELECT count(*) FROM record_rollup") > 0);
    check_both(d, "stored");
    cases_db_close(d);
    free(path);
    fixture_rmtree(dir);
}

static void test_cases_on_rows_another_tool_wrote(void **state) {
    (void)state;
    char *dir = fixture_tmpdir(), *path = fixture_path(dir, "h.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend empty = fixture_open(&o); /* the schema only */
    empty.ops->close(empty.self);
    char *sql = aggregate_cases_sql(cases);
    fixture_exec(path, "DELETE FROM record_rollup; DELETE FROM record_rollup_state");
    fixture_exec(path, sql);
    aimdb_backend b = fixture_open(&o);
    cases_db *d = cases_db_open(b);
    /* Right away (the catch-up may be anywhere), then once it is done. */
    assert_int_equal(aggregate_cases_check(cases, d, true, "seeded, catching up"), 0);
    assert_true(fixture_wait(fixture_rolled_up, path, 10000));
    check_both(d, "seeded, caught up");
    /* Rows written while it runs go through the catch-up too. */
    fixture_exec(path, "INSERT INTO record_history(record_name, value_json, stored_at) "
                       "VALUES('late::x', '5', 7200000), ('late::x', '7', 7200001)");
    assert_int_equal(b.ops->store(b.self, "late::x", "9", 1, 7200002, NULL), AIMDB_OK);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    aimdb_history_request req = {.pattern = "late::x", .every_ms = HOUR, .n_agg = 3,
                                 .agg = {AIMDB_AGG_COUNT, AIMDB_AGG_FIRST, AIMDB_AGG_LAST}};
    char *out = NULL;
    assert_int_equal(aimdb_persist_query_json(cases_db_persist(d), &req, &out, NULL, NULL, 0),
                     AIMDB_OK);
    assert_string_equal(out, "{\"count\":1,\"skipped\":0,\"values\":[{\"record\":\"late::x\","
                             "\"value\":{\"count\":3,\"first\":5,\"last\":9},\"stored_at\":7200000}]}");
    free(out);
    assert_true(fixture_wait(fixture_rolled_up, path, 10000));
    assert_true(aggregate_layers_agree(d, &req));
    cases_db_close(d);
    free(sql);
    free(path);
    fixture_rmtree(dir);
}

static void test_retention_cuts_the_rollups_with_the_rows(void **state) {
    (void)state;
    char *dir = fixture_tmpdir(), *path = fixture_path(dir, "h.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    const int64_t t0 = 100 * HOUR;
    char v[16];
    for (int i = 0; i < 30; i++) { /* every 10 minutes for 5 hours */
        snprintf(v, sizeof(v), "{\"x\":%d}", i);
        assert_int_equal(b.ops->store(b.self, "r", v, strlen(v), t0 + i * HOUR / 6, "t"),
                         AIMDB_OK);
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    uint64_t deleted = 0;
    int64_t cutoff = t0 + 2 * HOUR + 25 * 60000; /* inside the third hour */
    assert_int_equal(b.ops->cleanup(b.self, "r", NULL, 0, cutoff, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 15);
    assert_int_equal(fixture_number(path, "SELECT count(*) FROM record_rollup WHERE bucket < 102 * 3600000"),
                     0);
    cases_db *d = cases_db_open(b);
    aimdb_history_request req = {.pattern = "r", .every_ms = HOUR, .field = "x", .n_agg = 4,
                                 .agg = {AIMDB_AGG_COUNT, AIMDB_AGG_SUM, AIMDB_AGG_FIRST,
                                         AIMDB_AGG_MIN}};
    assert_true(aggregate_layers_agree(d, &req));
    char *out = NULL;
    assert_int_equal(aimdb_persist_query_json(cases_db_persist(d), &req, &out, NULL, NULL, 0),
                     AIMDB_OK);
    /* The third hour keeps the rows from 2:30 on: 15, 16, 17. */
    assert_non_null(strstr(out, "{\"count\":3,\"sum\":48,\"first\":15,\"min\":15},\"stored_at\":367200000"));
    free(out);
    cases_db_close(d);
    free(path);
    fixture_rmtree(dir);
}

typedef struct buckets_seen {
    aimdb_bucket b[4];
    size_t n;
} buckets_seen;

static int keep_bucket(const aimdb_bucket *b, void *ctx) {
    buckets_seen *seen = ctx;
    if (seen->n < 4) seen->b[seen->n++] = *b;
    return 0;
}

static int stop_at_first(const aimdb_bucket *b, void *ctx) {
    (void)b, (void)ctx;
    return 42;
}

/* The typed form: buckets as structs, skipped values apart, fn's stop. */
static void test_typed_buckets(void **state) {
    (void)state;
    aimdb_sqlite_options o = {.path = ":memory:"};
    aimdb_backend b = fixture_open(&o);
    const char *values[] = {"{\"w\":2}", "{\"w\":\"x\"}", "{\"w\":4}", "{\"v\":1}"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(b.ops->store(b.self, "t", values[i], strlen(values[i]), HOUR + i, NULL),
                         AIMDB_OK);
    assert_int_equal(b.ops->store(b.self, "t", "\"y\"", 3, 3 * HOUR, NULL), AIMDB_OK);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    cases_db *d = cases_db_open(b);
    aimdb_aggregate_params a = {.q = {.pattern = "t"}, .every_ms = HOUR, .field = "w"};
    buckets_seen seen = {0};
    uint64_t skipped = 0;
    assert_int_equal(aimdb_persist_aggregate(cases_db_persist(d), &a, keep_bucket, &seen,
                                             &skipped, NULL, 0),
                     AIMDB_OK);
    assert_int_equal(seen.n, 1); /* the bucket at 3 h has no number: only skipped */
    assert_string_equal(seen.b[0].record, "t");
    assert_int_equal(seen.b[0].start_ms, HOUR);
    assert_int_equal(seen.b[0].count, 2);
    assert_int_equal(seen.b[0].skipped, 2);
    assert_true(seen.b[0].sum == 6 && seen.b[0].first == 2 && seen.b[0].last == 4);
    assert_int_equal(skipped, 3);
    assert_int_equal(aimdb_persist_aggregate(cases_db_persist(d), &a, stop_at_first, NULL, NULL,
                                             NULL, 0),
                     42);
    a.every_ms = 0;
    assert_int_equal(aimdb_persist_aggregate(cases_db_persist(d), &a, keep_bucket, &seen, NULL,
                                             NULL, 0),
                     AIMDB_EINVAL);
    cases_db_close(d);
}

static int setup(void **state) {
    (void)state;
    cases = aggregate_cases_load(AGGREGATE_CASES_JSON);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    aggregate_cases_free(cases);
    return 0;
}

static bool a_write_failed(void *ctx) {
    aimdb_backend *b = ctx;
    aimdb_backend_stats st = {0};
    b->ops->stats(b->self, &st);
    return st.write_errors > 0;
}

/* Once caught up, the lines of f::x hold each of its `rows` rows (values
 * summing to `sum`) exactly once, and both layers answer alike; closes b. */
static void expect_each_row_once(aimdb_backend b, char *dir, char *path, int64_t rows,
                                 int64_t sum) {
    assert_true(fixture_wait(fixture_rolled_up, path, 10000));
    assert_int_equal(fixture_number(path, "SELECT count(*) FROM record_history"), rows);
    assert_int_equal(fixture_number(path, "SELECT sum(rows) FROM record_rollup WHERE field = ''"), rows);
    assert_int_equal(fixture_number(path, "SELECT sum(n) FROM record_rollup WHERE field = 'x'"), rows);
    assert_int_equal(fixture_number(path, "SELECT sum(sum) FROM record_rollup WHERE field = 'x'"), sum);
    cases_db *d = cases_db_open(b);
    aimdb_history_request req = {.pattern = "f::x", .every_ms = HOUR, .field = "x", .n_agg = 2,
                                 .agg = {AIMDB_AGG_COUNT, AIMDB_AGG_SUM}};
    assert_true(aggregate_layers_agree(d, &req));
    cases_db_close(d);
    free(path);
    fixture_rmtree(dir);
}

/* A commit fails while lines of committed rows wait in memory: once the
 * lock is gone every row is in the lines exactly once (after a failure
 * they start over from the table, by the catch-up). */
static void test_a_failed_commit_counts_each_row_once(void **state) {
    (void)state;
    char *dir = fixture_tmpdir(), *path = fixture_path(dir, "h.db");
    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    sqlite3_busy_timeout(other, 10000); /* the writer may be storing lines just then */
    char v[16];
    for (int i = 0; i < 100; i++) {
        if (i == 50) {
            /* The first half committed, its lines most likely still in memory;
             * then another connection sits on the write lock. */
            assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
            assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                             SQLITE_OK);
        }
        snprintf(v, sizeof(v), "{\"x\":%d}", i);
        assert_int_equal(b.ops->store(b.self, "f::x", v, strlen(v), 5 * HOUR + i, "t"),
                         AIMDB_OK);
    }
    assert_true(fixture_wait(a_write_failed, &b, 10000));
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    expect_each_row_once(b, dir, path, 100, 4950);
}

static void exec_sql(const char *path, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Storing the lines fails after rows were added up in memory (a trigger
 * refuses them, where a full disk or an I/O error could fail that write):
 * the sums start over from the table, so once lines can be written again
 * every row is in them exactly once. */
static void test_a_refused_line_write_counts_each_row_once(void **state) {
    (void)state;
    char *dir = fixture_tmpdir(), *path = fixture_path(dir, "h.db");
    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o);
    char v[32];
    int64_t stored = 0, sum = 0;
    for (; stored < 10; stored++) {
        snprintf(v, sizeof(v), "{\"x\":%lld}", (long long)stored);
        assert_int_equal(b.ops->store(b.self, "f::x", v, strlen(v), 5 * HOUR + stored, "t"),
                         AIMDB_OK);
        sum += stored;
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_true(fixture_wait(fixture_rolled_up, path, 10000));
    exec_sql(path, "CREATE TABLE refuse_lines(x);"
                   "INSERT INTO refuse_lines VALUES (1);"
                   "CREATE TRIGGER refuse_new_lines BEFORE INSERT ON record_rollup"
                   " WHEN EXISTS (SELECT 1 FROM refuse_lines)"
                   " BEGIN SELECT RAISE(ABORT, 'lines refused'); END;"
                   "CREATE TRIGGER refuse_line_updates BEFORE UPDATE ON record_rollup"
                   " WHEN EXISTS (SELECT 1 FROM refuse_lines)"
                   " BEGIN SELECT RAISE(ABORT, 'lines refused'); END;");
    /* Rows keep coming, a batch every few ms, until a write of their lines
     * (due a second after the first) has been refused. */
    aimdb_backend_stats st = {0};
    while (st.write_errors == 0) {
        assert_true(stored < 10 + 1000); /* ten seconds at most */
        snprintf(v, sizeof(v), "{\"x\":%lld}", (long long)stored);
        assert_int_equal(b.ops->store(b.self, "f::x", v, strlen(v), 5 * HOUR + stored, "t"),
                         AIMDB_OK);
        sum += stored++;
        usleep(10000);
        b.ops->stats(b.self, &st);
    }
    exec_sql(path, "DELETE FROM refuse_lines");
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    expect_each_row_once(b, dir, path, stored, sum);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_on_rows_it_stored),
        cmocka_unit_test(test_cases_on_rows_another_tool_wrote),
        cmocka_unit_test(test_retention_cuts_the_rollups_with_the_rows),
        cmocka_unit_test(test_a_failed_commit_counts_each_row_once),
        cmocka_unit_test(test_a_refused_line_write_counts_each_row_once),
        cmocka_unit_test(test_typed_buckets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
