/*
 * test_sqlite_writer.c -- the writer thread under pressure: queries keep
 * working while it commits at full speed, closing with a full queue loses
 * nothing, and a full disk or a database locked by another process is
 * survived: logged, counted, retried, and every row is written once the
 * cause is gone.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "history_fixture.h"

static void store_number(aimdb_backend b, const char *record, int64_t v, int64_t ts) {
    char json[32];
    snprintf(json, sizeof(json), "%lld", (long long)v);
    assert_int_equal(b.ops->store(b.self, record, json, strlen(json), ts, NULL), AIMDB_OK);
}

static aimdb_backend_stats stats_of(aimdb_backend b) {
    aimdb_backend_stats s;
    b.ops->stats(b.self, &s);
    return s;
}

/* ------------------------------------------- queries during commits */

#define WRITE_ROWS 200000
#define WRITE_RECORDS 100

typedef struct writer_job {
    aimdb_backend b;
    _Atomic bool done;
    int failures; /* checked on the main thread: cmocka asserts only there */
} writer_job;

static void *write_fast(void *arg) {
    writer_job *job = arg;
    char name[32], json[32];
    for (int64_t i = 0; i < WRITE_ROWS; i++) {
        snprintf(name, sizeof(name), "w::%03d", (int)(i % WRITE_RECORDS));
        int n = snprintf(json, sizeof(json), "%lld", (long long)i);
        if (job->b.ops->store(job->b.self, name, json, (size_t)n, i, NULL) != AIMDB_OK)
            job->failures++;
    }
    if (job->b.ops->flush(job->b.self) != AIMDB_OK) job->failures++;
    atomic_store(&job->done, true);
    return NULL;
}

/* A latest-1 answer is at most one row per record, records ascending. */
static void check_latest(const fixture_rows *rows) {
    assert_true(rows->n <= WRITE_RECORDS);
    for (size_t i = 1; i < rows->n; i++)
        assert_true(strcmp(rows->v[i - 1].record, rows->v[i].record) < 0);
}

static void test_queries_while_writer_commits(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "busy.db");
    aimdb_sqlite_options o = {.path = path};
    writer_job job = {.b = fixture_open(&o)};
    pthread_t writer;
    assert_int_equal(pthread_create(&writer, NULL, write_fast, &job), 0);

    unsigned queries = 0;
    int64_t slowest = 0;
    uint64_t batches_seen = 0;
    while (!atomic_load(&job.done)) {
        fixture_rows rows = {0};
        int64_t t0 = aimdb_monotonic_ms();
        aimdb_query_params latest = {.pattern = "w::*", .limit = 1};
        assert_int_equal(fixture_query(job.b, &latest, &rows), AIMDB_OK);
        check_latest(&rows);
        fixture_rows_free(&rows);
        aimdb_query_params range = {.pattern = "w::007", .has_start = true, .start_ms = 0};
        assert_int_equal(fixture_query(job.b, &range, &rows), AIMDB_OK);
        for (size_t i = 1; i < rows.n; i++)
            assert_true(rows.v[i - 1].stored_at > rows.v[i].stored_at);
        fixture_rows_free(&rows);
        int64_t took = aimdb_monotonic_ms() - t0;
        if (took > slowest) slowest = took;
        queries++;
        batches_seen = stats_of(job.b).batches;
    }
    pthread_join(writer, NULL);
    assert_int_equal(job.failures, 0);
    print_message("  %u query pairs during %llu batches; slowest pair %lld ms\n", queries,
                  (unsigned long long)batches_seen, (long long)slowest);
    assert_true(queries >= 3);
    aimdb_backend_stats s = stats_of(job.b);
    assert_int_equal(s.rows_stored, WRITE_ROWS);
    assert_int_equal(s.write_errors, 0);
    assert_true(s.batches > 1 && s.batches < WRITE_ROWS / 8); /* group commit happened */
    assert_true(s.db_bytes > 0);
    job.b.ops->close(job.b.self);
    assert_int_equal(fixture_count(path, NULL), WRITE_ROWS);
    free(path);
    fixture_rmtree(dir);
}

/* ------------------------------------------------ close, full queue */

static void test_close_with_full_queue_loses_nothing(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "full.db");
    aimdb_sqlite_options o = {.path = path, .queue_rows = 64, .batch_rows = 16};
    aimdb_backend b = fixture_open(&o);
    const int64_t n = 20000;
    for (int64_t i = 0; i < n; i++) store_number(b, "q", i, i); /* waits when full */
    aimdb_backend_stats s = stats_of(b);
    assert_int_equal(s.queue_capacity, 64);
    assert_true(s.queue_depth <= 64);
    b.ops->close(b.self); /* at once, with the queue (nearly) full */
    assert_int_equal(fixture_count(path, NULL), n);
    assert_int_equal(fixture_count(path, "CAST(value_json AS INTEGER) = stored_at"), n);
    free(path);
    fixture_rmtree(dir);
}

/* ------------------------------------------------ timing of commits */

typedef struct visible_probe {
    aimdb_backend b;
    size_t want;
} visible_probe;

static bool rows_visible(void *ctx) {
    visible_probe *v = ctx;
    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "*"};
    bool ok = fixture_query(v->b, &q, &rows) == AIMDB_OK && rows.n == v->want;
    fixture_rows_free(&rows);
    return ok;
}

static void test_rows_commit_after_the_flush_interval(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "timer.db");
    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = 50};
    visible_probe v = {.b = fixture_open(&o), .want = 3};
    for (int64_t i = 0; i < 3; i++) store_number(v.b, "t", i, i);
    /* Far fewer rows than a batch and no flush: only the timer commits. */
    assert_true(fixture_wait(rows_visible, &v, 10000));
    assert_true(stats_of(v.b).batches >= 1);
    v.b.ops->close(v.b.self);
    free(path);
    fixture_rmtree(dir);
}

typedef struct cleanup_job {
    aimdb_backend b;
    uint64_t deleted;
    int rc;
    _Atomic bool done;
} cleanup_job;

static void *cleanup_everything(void *arg) {
    cleanup_job *job = arg;
    job->rc = job->b.ops->cleanup(job->b.self, NULL, NULL, 0, INT64_MAX, &job->deleted);
    atomic_store(&job->done, true);
    return NULL;
}

typedef struct shrink_probe {
    const char *path;
    int64_t below;
} shrink_probe;

static bool rows_below(void *ctx) {
    shrink_probe *p = ctx;
    return fixture_count(p->path, NULL) < p->below;
}

static void test_cleanup_lets_writes_through(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "sweep.db");
    aimdb_sqlite_options o = {.path = path};
    cleanup_job job = {.b = fixture_open(&o)};
    const int64_t old_rows = 200000; /* 40 chunks to delete */
    for (int64_t i = 0; i < old_rows; i++) store_number(job.b, "old", i, i);
    assert_int_equal(job.b.ops->flush(job.b.self), AIMDB_OK);

    pthread_t sweeper;
    assert_int_equal(pthread_create(&sweeper, NULL, cleanup_everything, &job), 0);
    shrink_probe started = {path, old_rows};
    assert_true(fixture_wait(rows_below, &started, 10000)); /* a chunk is gone */
    store_number(job.b, "new", 1, 1);
    assert_int_equal(job.b.ops->flush(job.b.self), AIMDB_OK);
    /* The row was committed between two chunks, long before the last. */
    assert_false(atomic_load(&job.done));
    pthread_join(sweeper, NULL);
    assert_int_equal(job.rc, AIMDB_OK);
    /* "new" sorts before "old", where the sweep already was: it waits for
     * the next sweep. */
    assert_int_equal(job.deleted, old_rows);
    assert_int_equal(fixture_count(path, NULL), 1);
    job.b.ops->close(job.b.self);
    free(path);
    fixture_rmtree(dir);
}

/* ---------------------------------------------------- failures */

typedef struct error_probe {
    aimdb_backend b;
    uint64_t errors_before;
} error_probe;

static bool write_failed(void *ctx) {
    error_probe *p = ctx;
    return stats_of(p->b).write_errors > p->errors_before;
}

/* The database's own size, the WAL's pages included, as max_page_count
 * caps it (db_bytes counts the files, -wal and -shm too). */
static int64_t logical_bytes(const char *path) {
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT page_count * page_size FROM "
                                            "pragma_page_count(), pragma_page_size()",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t bytes = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return bytes;
}

static bool flush_succeeds(void *ctx) {
    error_probe *p = ctx;
    return p->b.ops->flush(p->b.self) == AIMDB_OK;
}

static void test_disk_full_recovers(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "small.db");
    /* A 1 MiB cap is the "disk": max_page_count. */
    aimdb_sqlite_options o = {.path = path, .max_db_bytes = 1 << 20, .queue_rows = 8192,
                              .batch_rows = 64, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o);
    char json[512];
    memset(json, 'x', sizeof(json));
    json[0] = '"';
    json[sizeof(json) - 2] = '"';
    json[sizeof(json) - 1] = '\0';
    const int64_t n = 4000; /* ~2.4 MB of rows: cannot all fit */
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(b.ops->store(b.self, "fill", json, strlen(json), i, NULL), AIMDB_OK);

    error_probe probe = {.b = b};
    assert_true(fixture_wait(write_failed, &probe, 10000));
    assert_int_equal(b.ops->flush(b.self), AIMDB_EIO); /* still full: flush says so */
    aimdb_backend_stats s = stats_of(b);
    assert_true(s.rows_stored < (uint64_t)n);
    assert_int_equal(s.rows_failed, 0);
    assert_true(s.queue_depth > 0); /* the failed rows wait, none dropped */
    assert_true(logical_bytes(path) <= o.max_db_bytes);

    /* Free space the way retention would; the stuck rows then commit. */
    int64_t deleted_total = 0;
    while (stats_of(b).queue_depth > 0) {
        uint64_t deleted = 0;
        assert_int_equal(b.ops->cleanup(b.self, "fill", NULL, 0, INT64_MAX, &deleted), AIMDB_OK);
        deleted_total += (int64_t)deleted;
        fixture_sleep_ms(20);
    }
    assert_true(fixture_wait(flush_succeeds, &probe, 20000));
    s = stats_of(b);
    assert_int_equal(s.rows_stored, n);
    assert_int_equal(s.rows_failed, 0);
    assert_true(s.write_errors > 0);
    b.ops->close(b.self);
    assert_int_equal(fixture_count(path, NULL), n - deleted_total);
    free(path);
    fixture_rmtree(dir);
}

static void test_locked_database_recovers(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "locked.db");
    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o);

    /* Another process (here: connection) takes the write lock and sits on it.
     * It waits for the lock as any other process would: the writer holds it
     * for moments of its own (start-up catch-up, a flush), and under load
     * one of them can be under way just now. */
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    sqlite3_busy_timeout(other, 10000);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int64_t i = 0; i < 100; i++) store_number(b, "locked", i, i);
    error_probe probe = {.b = b};
    assert_true(fixture_wait(write_failed, &probe, 10000));
    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "*"};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK); /* reads still work */
    assert_int_equal(rows.n, 0);

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_true(fixture_wait(flush_succeeds, &probe, 20000));
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 100);
    fixture_rows_free(&rows);
    assert_int_equal(stats_of(b).rows_failed, 0);
    b.ops->close(b.self);
    free(path);
    fixture_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queries_while_writer_commits),
        cmocka_unit_test(test_close_with_full_queue_loses_nothing),
        cmocka_unit_test(test_rows_commit_after_the_flush_interval),
        cmocka_unit_test(test_cleanup_lets_writes_through),
        cmocka_unit_test(test_disk_full_recovers),
        cmocka_unit_test(test_locked_database_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
