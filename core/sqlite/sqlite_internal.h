/*
 * sqlite_internal.h -- the parts of the SQLite backend and the SQL they share.
 *
 *   sqlite_backend.c  options, opening connections, the aimdb_backend vtable
 *   sqlite_queue.c    the bounded queue between callers and the writer
 *                     (sqlite_queue.h; the PostgreSQL writer uses it too)
 *   sqlite_writer.c   the writer thread: group commit, retries, cleanup
 *   sqlite_reader.c   the read-connection pool and the history queries
 *   sqlite_recovery.c a damaged, deleted or replaced file: moved aside or
 *                     reopened, never fatal; what the files take on disk
 *   sqlite_rollup.c   hourly rollups kept by the writer; aggregates
 *
 * Every statement names idx_record_time with INDEXED BY: the queries are
 * only fast through that index, so a missing index is an error at prepare
 * time rather than a silent full scan of a table with millions of rows.
 */
#ifndef AIMDB_SQLITE_INTERNAL_H
#define AIMDB_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "aimdb/sqlite.h"
#include "sqlite_queue.h"

/* ------------------------------------------------------------------ SQL */

/* docs/schema.md, verbatim columns and index, plus `topic`: the value's
 * source (the MQTT topic it was published on), which access control needs
 * per row because two topics can feed one record.  NULL in rows written by
 * other tools, or before the column existed (SQ_ADD_TOPIC_SQL adds it to
 * such a table: ADD COLUMN of a nullable column only rewrites the schema,
 * not the rows, so it is instant on any size of table). */
#define SQ_SCHEMA_SQL                                                              \
    "CREATE TABLE IF NOT EXISTS record_history("                                   \
    "id INTEGER PRIMARY KEY AUTOINCREMENT, record_name TEXT NOT NULL, "            \
    "value_json TEXT NOT NULL, stored_at INTEGER NOT NULL, topic TEXT);"           \
    "CREATE INDEX IF NOT EXISTS idx_record_time ON record_history(record_name, stored_at DESC);"
#define SQ_HAS_TOPIC_SQL \
    "SELECT count(*) FROM pragma_table_info('record_history') WHERE name = 'topic'"
#define SQ_ADD_TOPIC_SQL "ALTER TABLE record_history ADD COLUMN topic TEXT"

/*
 * Tuning of the write connection (journal_mode and synchronous aside),
 * shared with bench_sqlite so its baselines run under the same settings.
 * Measured with bench_sqlite on 1,000 interleaved records:
 *   cache_size 16 MiB: every record's newest index leaf stays cached (the
 *     2 MiB default thrashes: about 2.5x slower);
 *   wal_autocheckpoint 10,000 pages: a checkpoint every ~40 MB of WAL
 *     instead of every 4 MB (each commit rewrites ~1 page per record, so
 *     the default checkpoints after nearly every batch: ~1.5x slower);
 *   journal_size_limit: the WAL file shrinks back to 64 MiB afterwards.
 */
#define SQ_WRITER_PRAGMAS                                                          \
    "PRAGMA cache_size=-16384; PRAGMA wal_autocheckpoint=10000; "                  \
    "PRAGMA journal_size_limit=67108864;"

#define SQ_INSERT_SQL                                                              \
    "INSERT INTO record_history(record_name, value_json, stored_at, topic) "       \
    "VALUES(?1, ?2, ?3, ?4)"

/* Distinct record names by skip-scan: one index seek per name, so a
 * pattern costs O(names * log rows) however many rows each name has.  The
 * caller stops when a name no longer starts with the pattern's prefix.
 * "< X''" keeps the walk to text: SQLite orders every BLOB after every
 * TEXT, and a name another tool stored as a BLOB, bound back as text,
 * would seek to itself again (numbers in this TEXT column are stored as
 * text, and NULL compares to nothing). */
#define SQ_FIRST_NAME_SQL                                                          \
    "SELECT record_name FROM record_history INDEXED BY idx_record_time "           \
    "WHERE record_name >= ?1 AND record_name < X'' ORDER BY record_name LIMIT 1"
#define SQ_NEXT_NAME_SQL                                                           \
    "SELECT record_name FROM record_history INDEXED BY idx_record_time "           \
    "WHERE record_name > ?1 AND record_name < X'' ORDER BY record_name LIMIT 1"

/*
 * One record's rows, newest stored_at first, straight off the index (no
 * sort, no LIMIT: the reader stops stepping).  Rows that share a stored_at
 * come in index order, which is id ascending -- the index's implicit rowid
 * tail -- while newest first means reverse store order (docs/schema.md); the reader
 * reverses each such run (sqlite_reader.c).  "ORDER BY stored_at DESC, id
 * DESC" would say it in SQL, but SQLite then sorts every run in a temp
 * b-tree: latest-1 over 1,000 records went from 3.8 to 7.2 ms.
 *
 * SQ_ROW_IDS_SQL is the same walk over the index alone, for latest-1: the
 * entry read past a run to see where it ends then costs no table seek, and
 * the one row returned is fetched by SQ_ROW_SQL (see emit_record).
 */
#define SQ_ROWS_WHERE                                                              \
    "FROM record_history INDEXED BY idx_record_time "                              \
    "WHERE record_name = ?1 AND stored_at >= ?2 AND stored_at <= ?3 "              \
    "ORDER BY stored_at DESC"
#define SQ_ROWS_SQL "SELECT stored_at, value_json, topic " SQ_ROWS_WHERE
#define SQ_ROW_IDS_SQL "SELECT stored_at, id " SQ_ROWS_WHERE
#define SQ_ROW_SQL "SELECT value_json, topic FROM record_history WHERE id = ?1"

/* Rollups (sqlite_rollup.c): per record, field ("" = the value itself),
 * hour and topic ("" = none).  rows and partial live on the "" line only. */
#define SQ_ROLLUP_MS 3600000LL
#define SQ_ROLLUP_SCHEMA_SQL                                                       \
    "CREATE TABLE IF NOT EXISTS record_rollup(record_name TEXT NOT NULL, "         \
    "field TEXT NOT NULL, bucket INTEGER NOT NULL, topic TEXT NOT NULL, "          \
    "rows INTEGER NOT NULL, partial INTEGER NOT NULL, n INTEGER NOT NULL, "        \
    "sum REAL NOT NULL, min REAL, max REAL, first REAL, last REAL, "               \
    "first_at INTEGER NOT NULL, first_id INTEGER NOT NULL, "                       \
    "last_at INTEGER NOT NULL, last_id INTEGER NOT NULL, "                         \
    "PRIMARY KEY(record_name, field, bucket, topic)) WITHOUT ROWID;"               \
    "CREATE TABLE IF NOT EXISTS record_rollup_state(id INTEGER PRIMARY KEY CHECK (id = 1), " \
    "rolled_up_to INTEGER NOT NULL);"
/* Each SET expression sees the line as it was; first and last go by
 * (stored_at, id). */
#define SQ_TAKES_FIRST                                                             \
    "(n = 0 OR (excluded.n > 0 AND (excluded.first_at, excluded.first_id) < (first_at, first_id)))"
#define SQ_TAKES_LAST                                                              \
    "(n = 0 OR (excluded.n > 0 AND (excluded.last_at, excluded.last_id) > (last_at, last_id)))"
#define SQ_ROLLUP_UPSERT_SQL                                                       \
    "INSERT INTO record_rollup(record_name, field, bucket, topic, rows, partial, n, sum, " \
    "min, max, first, last, first_at, first_id, last_at, last_id) "                \
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) " \
    "ON CONFLICT(record_name, field, bucket, topic) DO UPDATE SET "                \
    "rows = rows + excluded.rows, partial = partial + excluded.partial, "          \
    "min = CASE WHEN n = 0 OR (excluded.n > 0 AND excluded.min < min) "           \
    "THEN excluded.min ELSE min END, "                                             \
    "max = CASE WHEN n = 0 OR (excluded.n > 0 AND excluded.max > max) "           \
    "THEN excluded.max ELSE max END, "                                             \
    "first = CASE WHEN " SQ_TAKES_FIRST " THEN excluded.first ELSE first END, "    \
    "first_at = CASE WHEN " SQ_TAKES_FIRST " THEN excluded.first_at ELSE first_at END, " \
    "first_id = CASE WHEN " SQ_TAKES_FIRST " THEN excluded.first_id ELSE first_id END, " \
    "last = CASE WHEN " SQ_TAKES_LAST " THEN excluded.last ELSE last END, "        \
    "last_at = CASE WHEN " SQ_TAKES_LAST " THEN excluded.last_at ELSE last_at END, " \
    "last_id = CASE WHEN " SQ_TAKES_LAST " THEN excluded.last_id ELSE last_id END, " \
    "sum = sum + excluded.sum, n = n + excluded.n"
#define SQ_ROLLUP_SET_W_SQL                                                        \
    "INSERT INTO record_rollup_state(id, rolled_up_to) VALUES(1, ?1) "             \
    "ON CONFLICT(id) DO UPDATE SET rolled_up_to = excluded.rolled_up_to"
#define SQ_ROLLUP_GET_W_SQL "SELECT rolled_up_to FROM record_rollup_state WHERE id = 1"
#define SQ_ROLLUP_ROWS_AFTER_SQL                                                   \
    "SELECT id, record_name, value_json, stored_at, topic FROM record_history "    \
    "WHERE id > ?1 ORDER BY id LIMIT ?2"
#define SQ_ROLLUP_DELETE_BEFORE_SQL                                                \
    "DELETE FROM record_rollup WHERE record_name = ?1 AND bucket < ?2"
/* One record's rows in [?2, ?3] with ?4 < id <= ?5, in no particular order. */
#define SQ_ROLLUP_RANGE_ROWS_SQL                                                   \
    "SELECT id, value_json, stored_at, topic FROM record_history "                 \
    "INDEXED BY idx_record_time "                                                  \
    "WHERE record_name = ?1 AND stored_at >= ?2 AND stored_at <= ?3 AND id > ?4 AND id <= ?5"

/* The reader's statements for aggregates, prepared with the others. */
enum {
    SQ_AGG_ROWS,      /* SQ_ROLLUP_RANGE_ROWS_SQL */
    SQ_AGG_LINES,     /* lines of a record, of "" and a field, in [?3, ?4) */
    SQ_AGG_MARK,      /* rolled_up_to */
    SQ_AGG_MAX_ID,
    SQ_AGG_TAIL_FROM, /* the oldest stored_at of rows with id > ?1 */
    SQ_AGG_STATEMENTS
};
extern const char *const sq_agg_sql[SQ_AGG_STATEMENTS];

/* Retention deletes a bounded chunk per transaction (see SQ_CLEANUP_CHUNK).
 * Rows above id ?4 are held until older than ?5 (the retention hold of
 * aimdb_sqlite_options; without one ?4 is the largest id). */
#define SQ_DELETE_CHUNK_SQL                                                        \
    "DELETE FROM record_history WHERE id IN (SELECT id FROM record_history "       \
    "INDEXED BY idx_record_time WHERE record_name = ?1 AND stored_at < ?2 "        \
    "AND (id <= ?4 OR stored_at < ?5) LIMIT ?3)"

/* Rows per retention transaction: big enough to be efficient, small enough
 * (a few ms) that the writer's row batches are never held up noticeably. */
#define SQ_CLEANUP_CHUNK 5000

/* --------------------------------------------------------------- health */

/* Which file a path named, by device and inode (ino 0: no file). */
typedef struct sq_file_id {
    dev_t dev;
    ino_t ino;
} sq_file_id;

/* The state of sqlite_recovery.c (see there). */
typedef struct sq_health {
    char *file;                 /* the database file SQLite opened; NULL: none (:memory:) */
    /* Writer thread only. */
    sq_file_id db, wal, shm;    /* what file, -wal and -shm were when the writer opened them */
    /* The highest record_history id handed out in any file the writer has
     * had open (0: none known); a new history continues after it. */
    int64_t last_id;
    int64_t next_check_ms, next_recovery_ms; /* monotonic */
    aimdb_log_limit held_log, reopen_log;
    /* Damage reported by a reader or the writer, handled by the writer. */
    pthread_mutex_t lock;
    bool damaged;
    unsigned damaged_generation;
    char why[256];
    /* Bumped whenever the writer opens the path anew: readers of an older
     * generation have the previous file open and reopen. */
    _Atomic unsigned generation;
    _Atomic uint64_t corrupt, recovered, reopened;
} sq_health;

/* -------------------------------------------------------------- backend */

typedef struct sq_reader sq_reader;
typedef struct sq_rollup_map sq_rollup_map;

typedef struct sq_backend {
    const aimdb_runtime *rt;
    char *uri;            /* what sqlite3_open_v2 gets */
    bool memory;          /* :memory: (shared-cache, see sqlite_backend.c) */
    int lock_fd;          /* FILE.lock, flocked while open; -1: none (sqlite_lock.c) */
    aimdb_sqlite_options opts; /* defaults filled in; path not owned */
    sq_queue queue;

    /* Writer thread only. */
    sqlite3 *wdb;
    sqlite3_stmt *begin, *commit, *rollback, *insert;
    sqlite3_stmt *first_name, *next_name, *delete_chunk;
    sqlite3_stmt *rollup_upsert, *rollup_set_w, *rollup_rows_after, *rollup_delete_before,
        *rollup_hour_rows;
    aimdb_thread *writer;
    /* Rollups (sqlite_rollup.c): rows with id <= rolled_up_to are in the
     * lines, no other; those up to rollup_mapped_to are added up in
     * rollup_map, to be stored by rollup_store_at (monotonic ms, 0 = none);
     * behind: some rows after them wait for a catch-up. */
    int64_t rolled_up_to, rollup_mapped_to, rollup_pending, rollup_store_at;
    bool rollup_known;       /* rolled_up_to was read from this file */
    bool rollup_behind;
    int64_t rollup_retry_at; /* monotonic ms: a failed catch-up waits until then */
    aimdb_log_limit rollup_log;
    sq_rollup_map *rollup_map;
    int64_t page_size;
    int64_t max_text_bytes;    /* SQLITE_LIMIT_LENGTH, read at open; immutable after */

    /* Read pool (sqlite_reader.c). */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_free;
    sq_reader *readers;   /* array of opts.read_connections */
    sq_reader *idle;      /* free list, guarded by pool_lock */

    sq_health health;

    sq_writer_counts counts;
    _Atomic int64_t db_bytes; /* the file, -wal and -shm; -1 unknown (sqlite_recovery.c) */
} sq_backend;

/* Take the path's lock before anything opens the database: AIMDB_EIO with
 * err naming the holder's pid when another backend, in any process, has it.
 * Released after the last connection closed. */
int sq_lock_take(sq_backend *b, char *err, size_t errlen);
void sq_lock_release(sq_backend *b);

/* Open a connection on b->uri with flags; on failure closes it, writes the
 * reason to err and returns AIMDB_EIO. */
int sq_open_connection(sq_backend *b, int flags, sqlite3 **out, char *err, size_t errlen);
int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *err, size_t errlen);
/* Run SQL that returns no rows of interest; AIMDB_EIO with err on failure. */
int sq_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* The next record name of the skip-scan: the first name >= from (first,
 * SQ_FIRST_NAME_SQL) or > from (next, SQ_NEXT_NAME_SQL; first NULL), the
 * first from_len bytes of from, copied into *buf (grown with realloc,
 * owned by the caller).  *found is false past the last name.  Names that
 * hold a NUL byte (another tool's rows) are stepped over: as C strings
 * they would read as another record.  SQLITE_OK or SQLite's error. */
int sq_seek_name(sqlite3_stmt *first, sqlite3_stmt *next, const char *from, size_t from_len,
                 char **buf, size_t *cap, bool *found);

/* Writer: open its connection (schema, pragmas, statements), start and stop
 * its thread (stop drains, checkpoints and closes the connection).  On a
 * failed open the connection, if SQLite opened one, stays in b->wdb for the
 * caller to inspect (which file, which error) and close. */
int sq_writer_open(sq_backend *b, char *err, size_t errlen);
int sq_writer_start(sq_backend *b, char *err, size_t errlen);
void sq_writer_stop(sq_backend *b);
/* Close the write connection if open (used on open errors, before start). */
void sq_writer_close_connection(sq_backend *b);

/* Reader pool.  open after the writer created the schema. */
int sq_readers_open(sq_backend *b, char *err, size_t errlen);
void sq_readers_close(sq_backend *b);
int sq_readers_query(sq_backend *b, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                     char *err, size_t errlen);
/* Every record q->pattern matches (q->access not applied), in one read
 * transaction: each(statements, name, ctx, &sqlite_rc); a non-zero return
 * stops and is returned; an SQLite failure sets *sqlite_rc (then return
 * AIMDB_EIO) and err says why. */
typedef int (*sq_name_fn)(sqlite3_stmt *const *agg, const char *name, void *ctx,
                          int *sqlite_rc);
int sq_readers_each(sq_backend *b, const aimdb_query_params *q, sq_name_fn each, void *ctx,
                    char *err, size_t errlen);

/* Rollups (sqlite_rollup.c), writer thread only except sq_rollup_aggregate.
 * open: after the schema, read where the lines stand.  batch: inside a row
 * batch's transaction, after its n inserts (adds them up, stores the lines
 * when due); batch_done once it committed or not.  due: when the writer has
 * rollup work of its own (monotonic ms, 0 = none), which work does: one
 * chunk of rows the lines miss, or the lines waiting in memory, each in its
 * own transaction.  store: those lines now (before the connection closes).
 * trim: after retention deleted a record's rows before cutoff. */
int sq_rollup_open(sq_backend *b);
int sq_rollup_batch(sq_backend *b, uint32_t n);
void sq_rollup_batch_done(sq_backend *b, bool committed);
int64_t sq_rollup_due(const sq_backend *b);
void sq_rollup_work(sq_backend *b);
void sq_rollup_store(sq_backend *b);
void sq_rollup_trim(sq_backend *b, const char *record, int64_t cutoff);
void sq_rollup_map_free(sq_rollup_map *m);
/* aimdb_backend_ops.aggregate, on the calling thread. */
int sq_rollup_aggregate(sq_backend *b, const aimdb_aggregate_params *a, aimdb_bucket_fn fn,
                        void *ctx, char *err, size_t errlen);

/* Close the idle readers of an older health generation now (the busy ones
 * close when released); each reopens when next taken. */
void sq_readers_drop_stale(sq_backend *b);

/* Health (sqlite_recovery.c).  init/destroy: any time before/after use. */
void sq_health_init(sq_backend *b);
void sq_health_destroy(sq_backend *b);
/* Open the writer's connection; a file that is damaged (not a database,
 * corrupt) is moved aside and a new one created in its place. */
int sq_health_open(sq_backend *b, char *err, size_t errlen);
/* Writer thread, before each commit and when sq_health_due says: act on
 * reported damage, notice a deleted or replaced file, update db_bytes.
 * True if the writer's connection is now on another file (or none). */
bool sq_health_check(sq_backend *b);
/* Monotonic ms of the next idle check; 0 = never (not a file). */
int64_t sq_health_due(const sq_backend *b);
/* Is this SQLite result a damaged file (SQLITE_CORRUPT*, SQLITE_NOTADB)? */
bool sq_health_damage_rc(int rc);
/* Any thread: an operation on the file of health generation gen found it
 * damaged; counted, and the writer moves the file aside. */
void sq_health_report(sq_backend *b, unsigned gen, const char *what, const char *msg);

#endif
