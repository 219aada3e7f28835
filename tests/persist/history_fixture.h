/*
 * history_fixture.h -- helpers shared by the persist and sqlite tests:
 * scratch directories, collecting query rows, counting rows in a file with
 * plain SQLite, and waiting for a condition with a deadline.
 */
#ifndef AIMDB_HISTORY_FIXTURE_H
#define AIMDB_HISTORY_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "aimdb/sqlite.h"

/* A fresh directory under $TMPDIR (or /tmp); remove with fixture_rmtree. */
char *fixture_tmpdir(void);
/* Delete every file in dir, then dir; frees dir. */
void fixture_rmtree(char *dir);
/* dir/name, malloc'd. */
char *fixture_path(const char *dir, const char *name);

typedef struct fixture_row {
    char *record;
    char *value;
    int64_t stored_at;
    const char *defect; /* static strings from the backend, or NULL */
} fixture_row;

typedef struct fixture_rows {
    fixture_row *v;
    size_t n, cap;
} fixture_rows;

/* aimdb_row_fn appending to a fixture_rows. */
int fixture_collect(const aimdb_history_row *row, void *ctx);
void fixture_rows_free(fixture_rows *rows);

/* Open a SQLite backend or fail the test. */
aimdb_backend fixture_open(const aimdb_sqlite_options *opts);
/* Run q straight on the backend into rows; returns the query's status. */
int fixture_query(aimdb_backend b, const aimdb_query_params *q, fixture_rows *rows);

/* SELECT count(*) FROM record_history [WHERE where] on a file, with a
 * separate plain SQLite connection. */
int64_t fixture_count(const char *path, const char *where);
/* The first column of sql's first row on path's file (-1 without a row),
 * waiting up to 5 s for the writer's lock. */
int64_t fixture_number(const char *path, const char *sql);
/* For fixture_wait: the file's rollups have caught up with its last row
 * (ctx: the path). */
bool fixture_rolled_up(void *path);
/* Run SQL on a file with a plain SQLite connection; fails the test on error. */
void fixture_exec(const char *path, const char *sql);

/* Poll cond every millisecond until true or timeout_ms passes. */
bool fixture_wait(bool (*cond)(void *ctx), void *ctx, int64_t timeout_ms);
void fixture_sleep_ms(int64_t ms);

#endif
