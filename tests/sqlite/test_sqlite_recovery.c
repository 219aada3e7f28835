/*
 * test_sqlite_recovery.c -- history that is damaged, deleted or replaced
 * under the SQLite backend never stops it (sqlite_recovery.c): a file that
 * is not a database, or whose pages are garbage, is moved aside byte for
 * byte and a new one started -- found at open, by a commit or by a query --
 * and no queued row is lost; a file deleted or replaced while open is
 * noticed (also while idle), the path opened again and queries follow; a
 * new history continues the ids of the one it replaces, and a file's ids
 * move past those an uplink has shipped; a
 * file found damaged again within a minute of a move waits for that minute
 * (a failing card), a report against a file already replaced is dropped;
 * and db_bytes is what the files take, the WAL included.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "history_fixture.h"
#include "sqlite_internal.h" /* sq_health_report: damage as a query reports it */

static aimdb_backend_stats stats_of(aimdb_backend b) {
    aimdb_backend_stats s;
    b.ops->stats(b.self, &s);
    return s;
}

static void store_number(aimdb_backend b, const char *record, int64_t v) {
    char json[32];
    snprintf(json, sizeof(json), "%lld", (long long)v);
    assert_int_equal(b.ops->store(b.self, record, json, strlen(json), v, NULL), AIMDB_OK);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *data = malloc(*len + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, *len, f), *len);
    fclose(f);
    return data;
}

static void spill(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int64_t size_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

static char *with_suffix(const char *path, const char *suffix) {
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s%s", path, suffix);
    return p;
}

/* The one file in dir named NAME.corrupt-* (not a -wal or -shm of it);
 * NULL if there is none, a test failure if there are several. */
static char *find_aside(const char *dir, const char *name) {
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "%s.corrupt-", name);
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *found = NULL;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        if (strstr(e->d_name, "-wal") || strstr(e->d_name, "-shm")) continue;
        assert_null(found);
        found = fixture_path(dir, e->d_name);
    }
    closedir(d);
    return found;
}

/* A real history file as the backend leaves it: WAL mode, rows committed,
 * closed cleanly. */
static void make_history(const char *path, int rows) {
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    char record[32];
    for (int i = 0; i < rows; i++) {
        snprintf(record, sizeof(record), "old::%d", i % 10);
        store_number(b, record, i);
    }
    b.ops->close(b.self);
    assert_int_equal(fixture_count(path, NULL), rows);
}

/* Garbage over every page but the first: the header and the schema (page
 * 1) still read, the table and its index do not. */
static void corrupt_pages(const char *path) {
    size_t len;
    char *data = slurp(path, &len);
    size_t page = ((size_t)(unsigned char)data[16] << 8) | (unsigned char)data[17];
    assert_true(len >= 3 * page);
    for (size_t i = page; i < len; i++) data[i] = (char)(0xA5 ^ (i * 31));
    spill(path, data, len);
    free(data);
}

static int64_t count_rows(aimdb_backend b) {
    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "*", .has_start = true, .start_ms = INT64_MIN};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_OK);
    int64_t n = (int64_t)rows.n;
    fixture_rows_free(&rows);
    return n;
}

typedef struct want {
    aimdb_backend b;
    uint64_t recovered, reopened, stored;
} want;

static bool reached(void *ctx) {
    want *w = ctx;
    aimdb_backend_stats s = stats_of(w->b);
    return s.recovered >= w->recovered && s.reopened >= w->reopened &&
           s.rows_stored >= w->stored;
}

/* The file moved aside is byte for byte what was there. */
static void check_aside(const char *dir, const char *name, const char *was, size_t was_len) {
    char *aside = find_aside(dir, name);
    if (!aside) fail_msg("no %s.corrupt-* in %s", name, dir);
    size_t len;
    char *data = slurp(aside, &len);
    assert_int_equal(len, was_len);
    assert_memory_equal(data, was, len);
    free(data);
    free(aside);
}

/* ------------------------------------------------------------- damaged */

/* 2,000 rows at path, then pages of them corrupted; the file's bytes. */
static char *damaged_history(const char *path, size_t *len) {
    make_history(path, 2000);
    corrupt_pages(path);
    return slurp(path, len);
}

static void test_not_a_database_is_moved_aside(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    char text[4096];
    size_t len = 0;
    while (len + 40 < sizeof(text))
        len += (size_t)snprintf(text + len, sizeof(text) - len, "not the pages of a db\n");
    spill(path, text, len);

    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o); /* not refused */
    aimdb_backend_stats s = stats_of(b);
    assert_int_equal(s.recovered, 1);
    assert_int_equal(s.corrupt_errors, 1);
    check_aside(dir, "h.db", text, len);
    for (int i = 0; i < 3; i++) store_number(b, "new", i);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(count_rows(b), 3);
    b.ops->close(b.self);
    assert_int_equal(fixture_count(path, NULL), 3);
    free(path);
    fixture_rmtree(dir);
}

static void test_corrupt_pages_found_by_a_commit(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    size_t len;
    char *was = damaged_history(path, &len);

    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o); /* page 1 is sound: opens */
    assert_int_equal(stats_of(b).recovered, 0);
    store_number(b, "new", 7);
    want w = {.b = b, .recovered = 1, .stored = 1};
    assert_true(fixture_wait(reached, &w, 10000));
    aimdb_backend_stats s = stats_of(b);
    assert_true(s.corrupt_errors >= 1);
    assert_true(s.write_errors >= 1);  /* the commit on the damaged file */
    assert_int_equal(s.rows_failed, 0); /* ... whose row went to the new one */
    check_aside(dir, "h.db", was, len);
    assert_int_equal(count_rows(b), 1);
    b.ops->close(b.self);
    assert_int_equal(fixture_count(path, NULL), 1);
    free(was);
    free(path);
    fixture_rmtree(dir);
}

static void test_corrupt_pages_found_by_a_query(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    size_t len;
    char *was = damaged_history(path, &len);

    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "old::*", .limit = 1};
    assert_int_equal(fixture_query(b, &q, &rows), AIMDB_EIO); /* that query fails ... */
    fixture_rows_free(&rows);
    want w = {.b = b, .recovered = 1};
    assert_true(fixture_wait(reached, &w, 10000)); /* ... and the writer moves the file */
    check_aside(dir, "h.db", was, len);
    assert_int_equal(count_rows(b), 0); /* readers are on the new file */
    store_number(b, "new", 1);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(count_rows(b), 1);
    assert_int_equal(stats_of(b).recovered, 1);
    b.ops->close(b.self);
    free(was);
    free(path);
    fixture_rmtree(dir);
}

/* Files moved aside: NAME.corrupt-YYYYMMDDTHHMMSSZ (their -wal, -shm not). */
static int count_asides(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".corrupt-") && e->d_name[strlen(e->d_name) - 1] == 'Z';
    closedir(d);
    return n;
}

static void test_damage_again_within_a_minute_waits(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    sq_backend *sb = b.self;
    unsigned gen = atomic_load(&sb->health.generation);

    /* Against a file that was already replaced: dropped. */
    sq_health_report(sb, gen - 1, "a test", "stale");
    fixture_sleep_ms(1500); /* the writer checks at once when poked, and every second */
    assert_int_equal(stats_of(b).recovered, 0);

    sq_health_report(sb, gen, "a test", "first");
    want w = {.b = b, .recovered = 1};
    assert_true(fixture_wait(reached, &w, 5000));
    assert_int_equal(count_asides(dir), 1);

    store_number(b, "kept", 1);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    sq_health_report(sb, atomic_load(&sb->health.generation), "a test", "second");
    fixture_sleep_ms(1500);
    aimdb_backend_stats s = stats_of(b);
    assert_int_equal(s.recovered, 1); /* held back: moved again a minute after the first */
    assert_int_equal(s.corrupt_errors, 3);
    assert_int_equal(count_asides(dir), 1);
    assert_int_equal(count_rows(b), 1);
    b.ops->close(b.self);
    free(path);
    fixture_rmtree(dir);
}

/* The history started in place of a damaged file continues its ids, also
 * across a restart on the new file. */
static void test_a_new_history_continues_the_ids(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    for (int i = 0; i < 10; i++) store_number(b, "before", i);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    sq_backend *sb = b.self;
    sq_health_report(sb, atomic_load(&sb->health.generation), "a test", "damaged");
    want w = {.b = b, .recovered = 1};
    assert_true(fixture_wait(reached, &w, 5000));
    store_number(b, "after", 1);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    b.ops->close(b.self);
    assert_int_equal(fixture_number(path, "SELECT id FROM record_history"), 11);

    b = fixture_open(&o);
    store_number(b, "after", 2);
    b.ops->close(b.self);
    assert_int_equal(fixture_number(path, "SELECT max(id) FROM record_history"), 12);
    free(path);
    fixture_rmtree(dir);
}

static int64_t shipped_50(void *ctx) {
    (void)ctx;
    return 50;
}

typedef struct failed_then_stored {
    aimdb_backend b;
    const char *path;
} failed_then_stored;

/* The first commit has failed: let the next one through. */
static bool failed_once(void *ctx) {
    failed_then_stored *f = ctx;
    if (stats_of(f->b).write_errors == 0) return false;
    fixture_exec(f->path, "DELETE FROM fail");
    return true;
}

/* Behind an uplink that has shipped 50 rows, new rows get ids after them,
 * also when the batch that first moved the ids rolled back. */
static void test_ids_move_past_the_shipped_ones(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    make_history(path, 3); /* ids 1..3, as in a restored backup */
    fixture_exec(path, "CREATE TABLE fail(x); INSERT INTO fail VALUES (1); "
                       "CREATE TRIGGER fail_once BEFORE INSERT ON record_history "
                       "WHEN EXISTS (SELECT 1 FROM fail) BEGIN SELECT RAISE(ABORT, 'a test'); END");
    aimdb_sqlite_options o = {.path = path, .hold_after = shipped_50, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o);
    store_number(b, "after", 1);
    failed_then_stored f = {b, path};
    assert_true(fixture_wait(failed_once, &f, 5000));
    want w = {.b = b, .stored = 1};
    assert_true(fixture_wait(reached, &w, 10000));
    b.ops->close(b.self);
    assert_int_equal(fixture_number(path, "SELECT id FROM record_history "
                                          "WHERE record_name = 'after'"),
                     51);
    free(path);
    fixture_rmtree(dir);
}

/* ---------------------------------------------------- deleted, replaced */

/* The file is deleted while open, alone (the -wal and -shm left behind,
 * which must not be applied to the new file) or with them (rm h.db*). */
static void deleted_while_open(bool with_companions) {
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    char *wal = with_suffix(path, "-wal"), *shm = with_suffix(path, "-shm");
    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o);
    for (int i = 0; i < 10; i++) store_number(b, "before", i);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(count_rows(b), 10);

    assert_int_equal(unlink(path), 0);
    if (with_companions) {
        assert_int_equal(unlink(wal), 0);
        assert_int_equal(unlink(shm), 0);
    }
    want w = {.b = b, .reopened = 1};
    assert_true(fixture_wait(reached, &w, 5000)); /* noticed while idle */
    assert_int_equal(count_rows(b), 0);           /* queries left the deleted file */
    for (int i = 0; i < 5; i++) store_number(b, "after", i);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(count_rows(b), 5);
    aimdb_backend_stats s = stats_of(b);
    assert_int_equal(s.reopened, 1);
    assert_int_equal(s.recovered, 0);
    assert_int_equal(s.rows_stored, 15);
    b.ops->close(b.self);
    assert_int_equal(fixture_count(path, NULL), 5);
    assert_int_equal(fixture_count(path, "record_name = 'after'"), 5);
    /* The new file's ids continue the deleted one's (an uplink resumes by them). */
    assert_int_equal(fixture_number(path, "SELECT min(id) FROM record_history"), 11);
    free(wal);
    free(shm);
    free(path);
    fixture_rmtree(dir);
}

static void test_deleted_file_is_recreated(void **state) {
    (void)state;
    deleted_while_open(false);
    deleted_while_open(true);
}

/* Deleted before anything was written since the open: noticed while idle
 * all the same. */
static void test_deleted_before_any_write_is_noticed(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    make_history(path, 3);
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    assert_int_equal(count_rows(b), 3);
    assert_int_equal(unlink(path), 0);
    want w = {.b = b, .reopened = 1};
    assert_true(fixture_wait(reached, &w, 5000));
    assert_int_equal(count_rows(b), 0);
    b.ops->close(b.self);
    free(path);
    fixture_rmtree(dir);
}

static void test_replaced_file_is_reopened(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    char *backup = fixture_path(dir, "backup.db");
    make_history(backup, 3);
    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = 5};
    aimdb_backend b = fixture_open(&o);
    for (int i = 0; i < 2; i++) store_number(b, "mine", i);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);

    assert_int_equal(rename(backup, path), 0); /* an operator restores a backup */
    for (int i = 0; i < 4; i++) store_number(b, "later", i);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(stats_of(b).reopened, 1);
    assert_int_equal(count_rows(b), 3 + 4);
    b.ops->close(b.self);
    assert_int_equal(fixture_count(path, NULL), 3 + 4);
    assert_int_equal(fixture_count(path, "record_name = 'mine'"), 0);
    /* A file that has handed out ids keeps its own sequence. */
    assert_int_equal(fixture_number(path, "SELECT max(id) FROM record_history"), 3 + 4);
    free(backup);
    free(path);
    fixture_rmtree(dir);
}

/* ------------------------------------------------------------ db_bytes */

typedef struct bytes_probe {
    aimdb_backend b;
    const char *path, *wal, *shm;
    int64_t files;
} bytes_probe;

static bool bytes_match(void *ctx) {
    bytes_probe *p = ctx;
    p->files = size_of(p->path) + size_of(p->wal) + size_of(p->shm);
    return stats_of(p->b).db_bytes == p->files;
}

static void test_db_bytes_counts_the_wal(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "h.db");
    char *wal = with_suffix(path, "-wal"), *shm = with_suffix(path, "-shm");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    char json[128];
    memset(json, 'x', sizeof(json));
    json[0] = json[sizeof(json) - 2] = '"';
    json[sizeof(json) - 1] = '\0';
    for (int64_t i = 0; i < 20000; i++)
        assert_int_equal(b.ops->store(b.self, "big", json, strlen(json), i, NULL), AIMDB_OK);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    /* Below wal_autocheckpoint: everything is still in the WAL. */
    assert_true(size_of(wal) > 2 * 1024 * 1024);
    bytes_probe p = {.b = b, .path = path, .wal = wal, .shm = shm};
    if (!fixture_wait(bytes_match, &p, 5000))
        fail_msg("db_bytes %lld, the files take %lld (db %lld, wal %lld, shm %lld)",
                 (long long)stats_of(b).db_bytes, (long long)p.files, (long long)size_of(path),
                 (long long)size_of(wal), (long long)size_of(shm));
    b.ops->close(b.self);
    free(wal);
    free(shm);
    free(path);
    fixture_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_a_database_is_moved_aside),
        cmocka_unit_test(test_corrupt_pages_found_by_a_commit),
        cmocka_unit_test(test_corrupt_pages_found_by_a_query),
        cmocka_unit_test(test_damage_again_within_a_minute_waits),
        cmocka_unit_test(test_a_new_history_continues_the_ids),
        cmocka_unit_test(test_ids_move_past_the_shipped_ones),
        cmocka_unit_test(test_deleted_file_is_recreated),
        cmocka_unit_test(test_deleted_before_any_write_is_noticed),
        cmocka_unit_test(test_replaced_file_is_reopened),
        cmocka_unit_test(test_db_bytes_counts_the_wal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
