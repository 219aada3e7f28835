/*
 * sqlite_writer.c -- the one thread that writes history.
 *
 * SQLite allows one writer at a time; giving that role to a single thread
 * that owns the write connection turns thousands of small inserts into a few
 * large transactions (group commit): a commit costs the same whether it
 * carries one row or thousands, so rows per second scale with batch size.
 * Retention deletes run here too, one bounded chunk at a time between row
 * batches, so a big sweep never stalls incoming history; so do the hourly
 * rollups (sqlite_rollup.c): in each batch's own transaction, and rows
 * the rollups miss caught up in chunks, between batches.
 *
 * A failed commit (disk full, database locked by another process, I/O
 * error) never loses rows and never stops the thread: the batch stays in
 * the queue and is retried with exponential backoff while the error is
 * logged (rate-limited) and counted.  Only at shutdown, after a grace of
 * failures (sq_retry, the row queue's), are the remaining rows given up.
 *
 * Before each commit, and every second while idle, sqlite_recovery.c checks
 * the file: a damaged one (reported by a commit, a retention delete or a
 * query) is moved aside and replaced by a new one, a deleted or replaced
 * one reopened at its path.  The rows of a batch that failed on the old
 * file are then committed at once to the new one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

/* How long a statement waits for another process's lock before it fails
 * and the retry loop takes over (so the thread stays responsive). */
#define WRITER_BUSY_MS 1000

static const char *sync_pragma(aimdb_sqlite_sync s) {
    switch (s) {
    case AIMDB_SQLITE_SYNC_OFF: return "PRAGMA synchronous=OFF";
    case AIMDB_SQLITE_SYNC_FULL: return "PRAGMA synchronous=FULL";
    case AIMDB_SQLITE_SYNC_NORMAL: break;
    }
    return "PRAGMA synchronous=NORMAL";
}

/* WAL is what lets readers run while a batch commits; a database that
 * cannot switch (e.g. a filesystem without shared memory) is refused. */
static int enable_wal(sqlite3 *db, char *err, size_t errlen) {
    sqlite3_stmt *st;
    int rc = sq_prepare(db, "PRAGMA journal_mode=WAL", &st, err, errlen);
    if (rc != AIMDB_OK) return rc;
    int step = sqlite3_step(st);
    const char *mode = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (!mode || strcmp(mode, "wal") != 0) {
        aimdb_errorf(err, errlen, "cannot enable WAL journal mode: %s",
                     mode ? mode : sqlite3_errmsg(db));
        rc = AIMDB_EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

static int64_t query_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int configure(sq_backend *b, char *err, size_t errlen) {
    sqlite3 *db = b->wdb;
    if (sqlite3_db_readonly(db, "main") == 1) {
        aimdb_errorf(err, errlen, "%s is read-only", b->opts.path);
        return AIMDB_EIO;
    }
    sqlite3_busy_timeout(db, WRITER_BUSY_MS);
    int rc = b->memory ? AIMDB_OK : enable_wal(db, err, errlen);
    if (rc == AIMDB_OK) rc = sq_exec(db, sync_pragma(b->opts.synchronous), err, errlen);
    if (rc == AIMDB_OK) rc = sq_exec(db, SQ_WRITER_PRAGMAS, err, errlen);
    if (rc == AIMDB_OK) rc = sq_exec(db, SQ_SCHEMA_SQL, err, errlen);
    if (rc == AIMDB_OK) rc = sq_exec(db, SQ_ROLLUP_SCHEMA_SQL, err, errlen);
    if (rc == AIMDB_OK && query_int(db, SQ_HAS_TOPIC_SQL) == 0)
        rc = sq_exec(db, SQ_ADD_TOPIC_SQL, err, errlen);
    if (rc != AIMDB_OK) return rc;
    b->page_size = query_int(db, "PRAGMA page_size");
    b->max_text_bytes = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1);
    if (b->opts.max_db_bytes > 0 && b->page_size > 0) {
        char sql[64];
        int64_t pages = b->opts.max_db_bytes / b->page_size;
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld",
                 (long long)(pages > 1 ? pages : 1));
        rc = sq_exec(db, sql, err, errlen);
    }
    return rc;
}

static int prepare_all(sq_backend *b, char *err, size_t errlen) {
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } list[] = {
        {&b->begin, "BEGIN IMMEDIATE"},
        {&b->commit, "COMMIT"},
        {&b->rollback, "ROLLBACK"},
        {&b->insert, SQ_INSERT_SQL},
        {&b->first_name, SQ_FIRST_NAME_SQL},
        {&b->next_name, SQ_NEXT_NAME_SQL},
        {&b->delete_chunk, SQ_DELETE_CHUNK_SQL},
        {&b->rollup_upsert, SQ_ROLLUP_UPSERT_SQL},
        {&b->rollup_set_w, SQ_ROLLUP_SET_W_SQL},
        {&b->rollup_rows_after, SQ_ROLLUP_ROWS_AFTER_SQL},
        {&b->rollup_delete_before, SQ_ROLLUP_DELETE_BEFORE_SQL},
        {&b->rollup_hour_rows, SQ_ROLLUP_RANGE_ROWS_SQL},
    };
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        int rc = sq_prepare(b->wdb, list[i].sql, list[i].st, err, errlen);
        if (rc != AIMDB_OK) return rc;
    }
    return AIMDB_OK;
}

#define HANDED_OUT_SQL "SELECT seq FROM sqlite_sequence WHERE name = 'record_history'"
#define START_IDS_INSERT_SQL                                                      \
    "INSERT INTO sqlite_sequence(name, seq) SELECT 'record_history', ?1 WHERE NOT " \
    "EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'record_history')"
#define START_IDS_RAISE_SQL \
    "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'record_history' AND seq < ?1"

/* Make the next id record_history hands out greater than id.  last_id
 * becomes id even if that fails, which is logged once rather than tried
 * again on every commit. */
static void start_ids_after(sq_backend *b, int64_t id) {
    const char *const sql[] = {START_IDS_INSERT_SQL, START_IDS_RAISE_SQL};
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(b->wdb, sql[i], -1, &st, NULL);
        if (rc != SQLITE_OK) break;
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(b->wdb);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK)
        aimdb_log(b->rt, AIMDB_LOG_WARNING,
                  "history: %s: new rows' ids cannot be made to start after %lld (%s); an "
                  "uplink takes those up to it for rows already shipped",
                  b->opts.path, (long long)id, sqlite3_errmsg(b->wdb));
    b->health.last_id = id;
}

/*
 * A new history continues the ids of the one it replaces (a damaged file
 * moved aside, a deleted one: sqlite_recovery.c).  Ids are what an uplink
 * resumes by (pg_uplink.c): a file counting from 1 again would have its
 * rows taken for rows already shipped, and they would never reach the
 * fleet.  AUTOINCREMENT keeps the highest id a file has handed out in
 * sqlite_sequence, which is an ordinary table: a file with no entry there
 * has never had a row, and starts after last_id.  A file that has one (the
 * same file reopened, a restored backup) keeps its own, and adds to what
 * is known; keep_ids_above_shipped moves a backup's on if an uplink has
 * shipped past it.  A sequence that cannot be read (a damaged page) is
 * left to whoever reads rows next, who finds the damage.
 */
static void continue_ids(sq_backend *b) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(b->wdb, HANDED_OUT_SQL, -1, &st, NULL) != SQLITE_OK) return;
    int step = sqlite3_step(st);
    int64_t seq = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (step == SQLITE_ROW && seq > b->health.last_id) b->health.last_id = seq;
    else if (step == SQLITE_DONE && b->health.last_id > 0) start_ids_after(b, b->health.last_id);
}

/*
 * A file whose ids lag what an uplink has already shipped -- a backup
 * restored in its place, also while the broker was stopped, or the
 * successor of a file found damaged at start, whose last id could not be
 * read -- would hand out ids the uplink takes for shipped ones.  So before
 * each batch, inside its transaction, they are moved past the shipped id
 * (hold_after: an atomic load; the UPDATE runs only when they lag).  Rows
 * committed before the uplink first connected keep their low ids.
 */
static void keep_ids_above_shipped(sq_backend *b) {
    const aimdb_sqlite_options *o = &b->opts;
    int64_t shipped = o->hold_after ? o->hold_after(o->hold_ctx) : 0;
    if (shipped > b->health.last_id) start_ids_after(b, shipped);
}

int sq_writer_open(sq_backend *b, char *err, size_t errlen) {
    int rc = sq_open_connection(b, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &b->wdb, err,
                                errlen);
    if (rc == AIMDB_OK) rc = configure(b, err, errlen);
    if (rc == AIMDB_OK) rc = prepare_all(b, err, errlen);
    if (rc == AIMDB_OK) continue_ids(b);
    if (rc == AIMDB_OK && sq_rollup_open(b) != SQLITE_OK) {
        aimdb_errorf(err, errlen, "out of memory");
        rc = AIMDB_ENOMEM;
    }
    return rc;
}

void sq_writer_close_connection(sq_backend *b) {
    sqlite3_stmt **all[] = {&b->begin,         &b->commit,       &b->rollback,
                            &b->insert,        &b->first_name,   &b->next_name,
                            &b->delete_chunk,  &b->rollup_upsert, &b->rollup_set_w,
                            &b->rollup_rows_after, &b->rollup_delete_before,
                            &b->rollup_hour_rows};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    if (b->wdb && sqlite3_close(b->wdb) != SQLITE_OK)
        aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: closing %s: %s", b->opts.path,
                  sqlite3_errmsg(b->wdb));
    b->wdb = NULL;
}

/* ---------------------------------------------------------- row batches */

/* Step a statement that returns no row, then reset it. */
static int step_done(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int insert_row(sq_backend *b, const sq_slot *s) {
    sqlite3_bind_text(b->insert, 1, s->bytes, (int)s->name_len, SQLITE_STATIC);
    sqlite3_bind_text(b->insert, 2, s->bytes + s->name_len + 1, (int)s->json_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(b->insert, 3, s->ts_ms);
    if (s->has_source)
        sqlite3_bind_text(b->insert, 4, s->bytes + s->name_len + s->json_len + 2,
                          (int)s->source_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(b->insert, 4);
    int rc = sqlite3_step(b->insert);
    sqlite3_reset(b->insert);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void note_commit(sq_backend *b, uint32_t n, int64_t started_us) {
    sq_writer_counts_committed(&b->counts, n, aimdb_monotonic_us() - started_us);
}

/* Commit the first n taken rows in one transaction.  On failure the
 * transaction is rolled back, the rows stay taken, and why says what
 * happened. */
static int commit_batch(sq_backend *b, uint32_t n, char *why, size_t whylen) {
    if (!b->wdb) {
        /* A reopen failed (logged where it happened); the checks retry it. */
        snprintf(why, whylen, "the database is not open");
        return SQLITE_CANTOPEN;
    }
    int64_t started = aimdb_monotonic_us();
    int rc = step_done(b->begin);
    int64_t known_id = b->health.last_id; /* again if the batch, with any move, rolls back */
    if (rc == SQLITE_OK) keep_ids_above_shipped(b);
    for (uint32_t i = 0; rc == SQLITE_OK && i < n; i++)
        rc = insert_row(b, sq_queue_taken(&b->queue, i));
    int64_t last_id = sqlite3_last_insert_rowid(b->wdb); /* before the rollups' upserts */
    if (rc == SQLITE_OK) rc = sq_rollup_batch(b, n);
    if (rc == SQLITE_OK) rc = step_done(b->commit);
    sq_rollup_batch_done(b, rc == SQLITE_OK);
    if (rc == SQLITE_OK) {
        b->health.last_id = last_id;
        note_commit(b, n, started);
        return SQLITE_OK;
    }
    snprintf(why, whylen, "%s (SQLite error %d)", sqlite3_errmsg(b->wdb),
             sqlite3_extended_errcode(b->wdb));
    if (sq_health_damage_rc(rc))
        sq_health_report(b, atomic_load(&b->health.generation), "writing rows",
                         sqlite3_errmsg(b->wdb));
    if (!sqlite3_get_autocommit(b->wdb)) step_done(b->rollback);
    b->health.last_id = known_id;
    return rc;
}

/* After a failure the next attempt commits half as many rows (down to
 * one): on a nearly full disk whatever still fits gets written, and the
 * size grows back after a success. */
static void batch_failed(sq_backend *b, sq_retry *r, uint32_t n, const char *why) {
    sq_retry_failed(r, &b->queue, &b->counts, b->rt, b->opts.path, n, why);
    r->max_rows = n > 1 ? n / 2 : 1;
}

/* ------------------------------------------------------------ retention */

/* Move *name to the record after `after` (or the first if after is NULL);
 * NULL when there is none. */
static int seek_name(sq_backend *b, const char *after, char **name) {
    char *next = NULL;
    size_t cap = 0;
    bool found;
    int rc = sq_seek_name(after ? NULL : b->first_name, b->next_name, after ? after : "",
                          after ? strlen(after) : 0, &next, &cap, &found);
    if (!found) {
        free(next);
        next = NULL;
    }
    free(*name);
    *name = next;
    return rc;
}

static int delete_chunk(sq_backend *b, const char *record, int64_t cutoff, int64_t *deleted) {
    const aimdb_sqlite_options *o = &b->opts;
    int64_t held_above = o->hold_after ? o->hold_after(o->hold_ctx) : INT64_MAX;
    int64_t held_until = cutoff >= INT64_MIN + o->hold_ms ? cutoff - o->hold_ms : INT64_MIN;
    sqlite3_bind_text(b->delete_chunk, 1, record, -1, SQLITE_STATIC);
    sqlite3_bind_int64(b->delete_chunk, 2, cutoff);
    sqlite3_bind_int(b->delete_chunk, 3, SQ_CLEANUP_CHUNK);
    sqlite3_bind_int64(b->delete_chunk, 4, held_above);
    sqlite3_bind_int64(b->delete_chunk, 5, held_until);
    int rc = sqlite3_step(b->delete_chunk);
    sqlite3_reset(b->delete_chunk);
    *deleted = rc == SQLITE_DONE ? sqlite3_changes64(b->wdb) : 0;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static bool excepted(const sq_cleanup *c, const char *name) {
    for (size_t i = 0; i < c->n_except; i++)
        if (strcmp(c->except[i], name) == 0) return true;
    return false;
}

/* One chunk of c, then back to the queue, so row batches keep flowing
 * during a long sweep.  c stays queued until its last record comes back
 * with a short chunk.  The NULL-record form walks the distinct names with
 * index seeks, deleting through the index for each, never scanning. */
static void cleanup_step(sq_backend *b, sq_cleanup *c) {
    if (!b->wdb) { /* a reopen failed: the sweep fails, as on any write error */
        aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: retention delete in %s failed: the "
                  "database is not open", b->opts.path);
        c->rc = AIMDB_EIO;
        free(c->current);
        c->current = NULL;
        sq_queue_cleanup_done(&b->queue, c);
        return;
    }
    int rc = SQLITE_OK;
    if (!c->record && !c->started) rc = seek_name(b, NULL, &c->current);
    c->started = true;
    while (rc == SQLITE_OK && !c->record && c->current && excepted(c, c->current))
        rc = seek_name(b, c->current, &c->current);
    const char *target = c->record ? c->record : c->current;
    bool finished = rc != SQLITE_OK || !target;
    if (!finished) {
        int64_t n = 0;
        rc = delete_chunk(b, target, c->cutoff_ms, &n);
        c->deleted += (uint64_t)n;
        if (rc == SQLITE_OK && n < SQ_CLEANUP_CHUNK) sq_rollup_trim(b, target, c->cutoff_ms);
        if (rc != SQLITE_OK || (n < SQ_CLEANUP_CHUNK && c->record)) {
            finished = true;
        } else if (n < SQ_CLEANUP_CHUNK) {
            rc = seek_name(b, c->current, &c->current);
            finished = rc != SQLITE_OK || !c->current;
        }
    }
    if (rc != SQLITE_OK) {
        aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: retention delete in %s failed: %s",
                  b->opts.path, sqlite3_errmsg(b->wdb));
        if (sq_health_damage_rc(rc))
            sq_health_report(b, atomic_load(&b->health.generation), "a retention delete",
                             sqlite3_errmsg(b->wdb));
        c->rc = AIMDB_EIO;
    }
    if (finished) {
        free(c->current);
        c->current = NULL;
        sq_queue_cleanup_done(&b->queue, c);
    }
}

/* --------------------------------------------------------------- thread */

static void checkpoint_and_close(sq_backend *b) {
    sq_rollup_store(b);
    if (!b->memory && b->wdb) {
        int log_frames = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(b->wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames,
                                           &done);
        if (rc != SQLITE_OK)
            aimdb_log(b->rt, AIMDB_LOG_WARNING, "history: final checkpoint of %s: %s",
                      b->opts.path, sqlite3_errmsg(b->wdb));
    }
    sq_writer_close_connection(b);
}

static void *writer_main(void *arg) {
    sq_backend *b = arg;
    sq_retry retry = {0};
    char why[256];
    for (;;) {
        uint32_t n = 0;
        sq_cleanup *c = NULL;
        sq_work w = sq_queue_next_work(&b->queue, retry.retry_at, retry.max_rows,
                                       sq_health_due(b), sq_rollup_due(b), &n, &c);
        if (w == SQ_WORK_EXIT) break;
        if (w == SQ_WORK_BACKGROUND) {
            sq_rollup_work(b);
            continue;
        }
        if (w == SQ_WORK_CLEANUP) {
            cleanup_step(b, c);
            continue;
        }
        /* On a new file the old one's failures say nothing: no backoff, and
         * rows that failed on a damaged file are committed at once. */
        if (sq_health_check(b)) sq_retry_reset(&retry);
        if (w == SQ_WORK_CHECK) continue;
        if (commit_batch(b, n, why, sizeof(why)) == SQLITE_OK) {
            sq_retry_committed(&retry, &b->queue, b->rt, b->opts.path, n);
        } else {
            batch_failed(b, &retry, n, why);
        }
    }
    checkpoint_and_close(b);
    return NULL;
}

int sq_writer_start(sq_backend *b, char *err, size_t errlen) {
    if (b->rt->spawn(b->rt->self, "aimdb-writer", AIMDB_THREAD_PIPELINE, writer_main, b,
                     &b->writer) != 0) {
        aimdb_errorf(err, errlen, "cannot start the history writer thread");
        return AIMDB_EIO;
    }
    return AIMDB_OK;
}

void sq_writer_stop(sq_backend *b) {
    if (!b->writer) return;
    sq_queue_close(&b->queue);
    b->rt->join(b->rt->self, b->writer);
    b->writer = NULL;
}
