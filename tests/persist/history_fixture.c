/*
 * history_fixture.c -- see history_fixture.h.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "history_fixture.h"

char *fixture_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char *dir = fixture_path(base && *base ? base : "/tmp", "aimdb-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

void fixture_rmtree(char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = fixture_path(dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
    free(dir);
}

char *fixture_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int fixture_collect(const aimdb_history_row *row, void *ctx) {
    fixture_rows *rows = ctx;
    if (rows->n == rows->cap) {
        rows->cap = rows->cap ? rows->cap * 2 : 64;
        rows->v = realloc(rows->v, rows->cap * sizeof(*rows->v));
        assert_non_null(rows->v);
    }
    fixture_row *r = &rows->v[rows->n++];
    r->record = strdup(row->record);
    r->value = strndup(row->value_json, row->value_len);
    r->stored_at = row->stored_at;
    r->defect = row->defect;
    return 0;
}

void fixture_rows_free(fixture_rows *rows) {
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].record);
        free(rows->v[i].value);
    }
    free(rows->v);
    *rows = (fixture_rows){0};
}

aimdb_backend fixture_open(const aimdb_sqlite_options *opts) {
    aimdb_backend b = {0};
    char err[256] = "";
    int rc = aimdb_sqlite_open(opts, &b, err, sizeof(err));
    if (rc != AIMDB_OK) fail_msg("aimdb_sqlite_open(%s): %s", opts->path, err);
    return b;
}

int fixture_query(aimdb_backend b, const aimdb_query_params *q, fixture_rows *rows) {
    char err[256] = "";
    int rc = b.ops->query(b.self, q, fixture_collect, rows, err, sizeof(err));
    if (rc != AIMDB_OK) print_message("query: %s\n", err);
    return rc;
}

static sqlite3 *open_plain(const char *path) {
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) fail_msg("open %s: %s", path, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    return db;
}

int64_t fixture_count(const char *path, const char *where) {
    sqlite3 *db = open_plain(path);
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM record_history%s%s", where ? " WHERE " : "",
             where ? where : "");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

int64_t fixture_number(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

bool fixture_rolled_up(void *path) {
    return fixture_number(path, "SELECT rolled_up_to FROM record_rollup_state") ==
           fixture_number(path, "SELECT max(id) FROM record_history");
}

void fixture_exec(const char *path, const char *sql) {
    sqlite3 *db = open_plain(path);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

void fixture_sleep_ms(int64_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

bool fixture_wait(bool (*cond)(void *ctx), void *ctx, int64_t timeout_ms) {
    int64_t deadline = aimdb_monotonic_ms() + timeout_ms;
    while (!cond(ctx)) {
        if (aimdb_monotonic_ms() > deadline) return false;
        fixture_sleep_ms(1);
    }
    return true;
}
