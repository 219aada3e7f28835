/*
 * test_pg_uplink.c -- the uplink and the local retention hold, against a
 * real PostgreSQL server and real SQLite files:
 *   - rows deleted locally before they were shipped are counted as lost
 *     (and the rest ships, resuming from PostgreSQL's max(source_id));
 *   - a new local history, the old file deleted, ships after the old one,
 *     and so do rows written to a backup restored in its place;
 *   - a row PostgreSQL refuses (jsonb takes no \u0000, an index entry no
 *     record name of 6,000 random bytes) is skipped alone;
 *   - SQLite retention keeps rows above the shipped id past their
 *     retention for up to the hold, then deletes them.
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

#include "aimdb/postgres.h"
#include "aimdb/sqlite.h"
#include "harness.h"
#include "pg_server.h"

static char dir[64], path[128];

static int fresh(void **state) {
    pg_test_fresh_history(state);
    snprintf(dir, sizeof(dir), "/tmp/aimdb-uplink-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/local.db", dir);
    return 0;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static aimdb_backend open_local(const aimdb_sqlite_options *extra) {
    aimdb_sqlite_options so = extra ? *extra : (aimdb_sqlite_options){0};
    so.path = path;
    aimdb_backend b;
    char err[256];
    if (aimdb_sqlite_open(&so, &b, err, sizeof(err)) != AIMDB_OK) fail_msg("sqlite: %s", err);
    return b;
}

/* Values from .. to-1 of record r, stored at ts0 + value, committed. */
static void store_values(aimdb_backend b, int from, int to, int64_t ts0) {
    for (int i = from; i < to; i++) {
        char json[32];
        snprintf(json, sizeof(json), "%d", i);
        assert_int_equal(b.ops->store(b.self, "r", json, strlen(json), ts0 + i, "t/r"), AIMDB_OK);
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
}

static void store_local(int from, int to, int64_t ts0) {
    aimdb_backend b = open_local(NULL);
    store_values(b, from, to, ts0);
    b.ops->close(b.self);
}

static void local_exec(const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static int64_t local_int(const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static aimdb_uplink *start_uplink(void) {
    aimdb_uplink_options uo = {.uri = pg_test_server.uri, .gateway = "g", .sqlite_path = path,
                               .poll_ms = 10};
    aimdb_uplink *u;
    char err[256];
    if (aimdb_uplink_new(&uo, &u, err, sizeof(err)) != AIMDB_OK) fail_msg("uplink: %s", err);
    assert_int_equal(aimdb_uplink_start(u), AIMDB_OK);
    return u;
}

/* Wait until the uplink has shipped up to local id `id`. */
static aimdb_uplink_stats wait_shipped(aimdb_uplink *u, int64_t id) {
    aimdb_uplink_stats st;
    long long deadline = now_ms() + 30000;
    do {
        aimdb_uplink_stats_get(u, &st);
        if (st.shipped_id >= id && st.lag_rows == 0) return st;
        sleep_ms(10);
    } while (now_ms() < deadline);
    fail_msg("shipped up to %lld, not %lld (state %s: %s)", (long long)st.shipped_id,
             (long long)id, aimdb_uplink_state_name(st.state), st.why);
    return st;
}

static void test_lost_rows_counted(void **state) {
    (void)state;
    store_local(0, 100, 1000);
    aimdb_uplink *u = start_uplink();
    aimdb_uplink_stats st = wait_shipped(u, 100);
    assert_int_equal(st.shipped, 100);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.state, AIMDB_UPLINK_CONNECTED);
    aimdb_uplink_free(u);
    /* While no uplink runs, 100 more rows, of which 50 vanish unshipped. */
    store_local(100, 200, 1000);
    local_exec("DELETE FROM record_history WHERE id BETWEEN 101 AND 150");
    u = start_uplink();
    st = wait_shipped(u, 200);
    assert_int_equal(st.shipped, 50);
    assert_int_equal(st.lost, 50);
    aimdb_uplink_free(u);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 150);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT min(source_id) FROM record_history WHERE "
                                           "source_id > 100"),
                     151);
    /* The first rows of a gateway new to PostgreSQL are no loss: a local
     * history whose oldest rows retention deleted before the uplink came. */
    pg_exec(&pg_test_server, "TRUNCATE record_history");
    local_exec("DELETE FROM record_history WHERE id <= 160");
    u = start_uplink();
    st = wait_shipped(u, 200);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.shipped, 40);
    aimdb_uplink_free(u);
}

/* After 100 rows were shipped, 20 more written through b (closed here, u
 * freed) ship as local rows 101..120, none lost. */
static void expect_the_next_rows_ship(aimdb_backend b, aimdb_uplink *u) {
    store_values(b, 100, 120, 1000);
    aimdb_uplink_stats st = wait_shipped(u, 120);
    assert_int_equal(st.shipped, 120);
    assert_int_equal(st.lost, 0);
    b.ops->close(b.self);
    aimdb_uplink_free(u);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history "
                                                   "WHERE value_json = '119' AND source_id = 120"),
                     1);
}

/* The local file deleted while the broker runs: the new history it gets
 * continues the ids, so its rows ship after the ones already shipped. */
static void test_rows_of_a_new_local_history_ship(void **state) {
    (void)state;
    store_local(0, 100, 1000);
    aimdb_uplink *u = start_uplink();
    wait_shipped(u, 100);
    aimdb_backend b = open_local(NULL);
    assert_int_equal(unlink(path), 0);
    aimdb_backend_stats bs;
    long long deadline = now_ms() + 10000;
    do {
        sleep_ms(20);
        b.ops->stats(b.self, &bs);
    } while (bs.reopened == 0 && now_ms() < deadline);
    assert_int_equal(bs.reopened, 1);
    expect_the_next_rows_ship(b, u);
}

/* A backup restored in place of the local history while no broker ran:
 * its ids lag the shipped ones, so the writer moves them past those and
 * the rows written after it ship. */
static void test_rows_after_a_restored_backup_ship(void **state) {
    (void)state;
    char backup[160];
    snprintf(backup, sizeof(backup), "%s/backup.db", dir);
    store_local(0, 30, 1000);
    copy_file(path, backup);
    store_local(30, 100, 1000);
    aimdb_uplink *u = start_uplink();
    wait_shipped(u, 100);
    assert_int_equal(rename(backup, path), 0);
    aimdb_sqlite_options so = {.hold_after = aimdb_uplink_shipped_id, .hold_ctx = u};
    aimdb_backend b = open_local(&so);
    expect_the_next_rows_ship(b, u);
}

static void test_refused_row_skipped(void **state) {
    (void)state;
    aimdb_backend b = open_local(NULL);
    for (int i = 0; i < 300; i++) {
        const char *json = i == 123 ? "\"\\u0000\"" : "\"fine\"";
        const char *name = i == 200 ? pg_unindexable_name() : "r";
        assert_int_equal(b.ops->store(b.self, name, json, strlen(json), i, NULL), AIMDB_OK);
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    b.ops->close(b.self);
    aimdb_uplink *u = start_uplink();
    aimdb_uplink_stats st = wait_shipped(u, 300);
    assert_int_equal(st.shipped, 298);
    assert_int_equal(st.lost, 2);
    aimdb_uplink_free(u);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history WHERE "
                                           "source_id IN (124, 201)"),
                     0);
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 298);
}

static int64_t shipped_50(void *ctx) {
    (void)ctx;
    return 50;
}

static void test_retention_hold(void **state) {
    (void)state;
    aimdb_backend b = open_local(NULL);
    for (int i = 0; i < 100; i++) /* ids 1..100, stored_at 0..99 */
        assert_int_equal(b.ops->store(b.self, "r", "1", 1, i, NULL), AIMDB_OK);
    b.ops->close(b.self);
    /* Opened again behind an uplink that has shipped the first 50 (before
     * they were written, new ids would start after them). */
    aimdb_sqlite_options held = {.hold_after = shipped_50, .hold_ms = 1000};
    b = open_local(&held);
    uint64_t deleted = 0;
    /* Every row is past its retention; only the 50 shipped ones go. */
    assert_int_equal(b.ops->cleanup(b.self, NULL, NULL, 0, 1000, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 50);
    assert_int_equal(local_int("SELECT min(id) FROM record_history"), 51);
    /* Past the hold as well (stored_at < 1060 - 1000): ids 51..60 go. */
    assert_int_equal(b.ops->cleanup(b.self, "r", NULL, 0, 1060, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 60);
    assert_int_equal(local_int("SELECT count(*) FROM record_history"), 40);
    b.ops->close(b.self);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lost_rows_counted, fresh, remove_dir),
        cmocka_unit_test_setup_teardown(test_rows_of_a_new_local_history_ship, fresh, remove_dir),
        cmocka_unit_test_setup_teardown(test_rows_after_a_restored_backup_ship, fresh, remove_dir),
        cmocka_unit_test_setup_teardown(test_refused_row_skipped, fresh, remove_dir),
        cmocka_unit_test_setup_teardown(test_retention_hold, fresh, remove_dir),
    };
    return cmocka_run_group_tests(tests, pg_test_server_setup, pg_test_server_teardown);
}
