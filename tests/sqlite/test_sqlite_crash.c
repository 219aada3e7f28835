/*
 * test_sqlite_crash.c -- a process killed with SIGKILL in the middle of
 * writing leaves a sound database that lost at most one flush window.
 *
 * A child process stores rows through the backend as fast as it can and
 * notes, in memory shared with the parent, when each store() returned.  The
 * parent kills it at a moment of its choosing, reopens the file with plain
 * SQLite and checks: integrity_check says ok; the rows present are exactly
 * the first M stored, in order, without gaps; and every row stored more than
 * one flush interval (plus a margin for the commit itself) before the kill
 * is among them.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "history_fixture.h"

#define MAX_ROWS 1000000
#define FLUSH_MS 50
/* Time a due batch may still need to reach the disk: queue ahead of it
 * plus the commit, generous for sanitizer builds on a loaded machine. */
#define COMMIT_MARGIN_MS 500

typedef struct shared_log {
    _Atomic int64_t stored;          /* rows whose store() returned */
    int64_t returned_ms[MAX_ROWS];   /* monotonic time each returned */
} shared_log;

static void child_writes(const char *path, shared_log *log) {
    aimdb_sqlite_options o = {.path = path, .queue_rows = 4096, .batch_rows = 1024,
                              .flush_interval_ms = FLUSH_MS};
    aimdb_backend b;
    char err[256];
    if (aimdb_sqlite_open(&o, &b, err, sizeof(err)) != AIMDB_OK) {
        fprintf(stderr, "child: %s\n", err);
        _exit(2);
    }
    char json[32];
    for (int64_t i = 0; i < MAX_ROWS; i++) {
        int n = snprintf(json, sizeof(json), "%lld", (long long)i);
        if (b.ops->store(b.self, "crash", json, (size_t)n, i, NULL) != AIMDB_OK) _exit(3);
        log->returned_ms[i] = aimdb_monotonic_ms();
        atomic_store(&log->stored, i + 1);
    }
    for (;;) pause(); /* wait for the signal */
}

static int64_t scalar(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void check_survivors(const char *path, const shared_log *log, int64_t killed_at) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);

    int64_t rows = scalar(db, "SELECT count(*) FROM record_history");
    /* Rows are the first `rows` stored, in order, nothing missing between. */
    assert_int_equal(scalar(db, "SELECT coalesce(max(id), 0) FROM record_history"), rows);
    assert_int_equal(scalar(db, "SELECT count(*) FROM record_history "
                                "WHERE CAST(value_json AS INTEGER) = id - 1 AND stored_at = id - 1"),
                     rows);
    sqlite3_close(db);

    int64_t stored = atomic_load(&log->stored);
    int64_t must_have = 0; /* rows stored more than a flush window before the kill */
    while (must_have < stored &&
           log->returned_ms[must_have] <= killed_at - FLUSH_MS - COMMIT_MARGIN_MS)
        must_have++;
    print_message("  stored %lld, on disk %lld, lost %lld; required at least %lld\n",
                  (long long)stored, (long long)rows, (long long)(stored - rows),
                  (long long)must_have);
    assert_true(rows <= stored);
    assert_true(rows >= must_have);
}

static void kill_mid_write(int64_t run_ms) {
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "crash.db");
    shared_log *log = mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(log != MAP_FAILED);
    atomic_init(&log->stored, 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) child_writes(path, log);

    /* Let it write for a while, at least until rows are flowing. */
    int64_t deadline = aimdb_monotonic_ms() + 10000;
    while (atomic_load(&log->stored) == 0 && aimdb_monotonic_ms() < deadline)
        fixture_sleep_ms(1);
    fixture_sleep_ms(run_ms);
    int64_t killed_at = aimdb_monotonic_ms();
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(atomic_load(&log->stored) > 0);

    check_survivors(path, log, killed_at);
    munmap(log, sizeof(*log));
    free(path);
    fixture_rmtree(dir);
}

static void test_sigkill_mid_write(void **state) {
    (void)state;
    /* Different moments, so some kills land inside a commit. */
    kill_mid_write(600);
    kill_mid_write(900);
    kill_mid_write(1300);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_mid_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
