/*
 * sqlite.h -- the SQLite history backend.
 *
 * One writer thread owns the write connection (WAL) and commits many rows per
 * transaction; callers enqueue into a bounded queue.  Queries use separate
 * read connections so they never wait behind a batch.  Schema: docs/schema.md.
 *
 * Write errors (disk full, locked by another process, I/O errors such as a
 * filesystem remounted read-only) never stop the process: the writer logs
 * them, counts them in write_errors, keeps the failed rows and retries with
 * backoff, halving the transaction each time so whatever still fits gets
 * written; meanwhile the queue fills and store() waits, which the persist
 * taps see as lag.  Only at shutdown, after a grace period, are unwritable
 * rows dropped (counted in rows_failed and logged).  A file that cannot be
 * opened for writing at all is refused by aimdb_sqlite_open.
 *
 * A file that is damaged (not a database, corrupt pages: at open, on a
 * commit, a retention delete or a query) is moved aside to
 * FILE.corrupt-<UTC time> and a new one started; a file deleted or replaced
 * while open is noticed and its path reopened (sqlite_recovery.c; counted
 * in corrupt_errors, recovered and reopened).
 */
#ifndef AIMDB_SQLITE_H
#define AIMDB_SQLITE_H

#include "aimdb/persist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aimdb_sqlite_sync {
    AIMDB_SQLITE_SYNC_NORMAL = 0, /* default: in WAL, a crash of the process loses nothing
                                     committed; power loss may lose the last commits */
    AIMDB_SQLITE_SYNC_OFF,
    AIMDB_SQLITE_SYNC_FULL
} aimdb_sqlite_sync;

/*
 * Defaults, chosen with `bench_sqlite --sweep` (1,000 interleaved records):
 * a commit costs about one page write per record it touches, so rows/s
 * grows with rows per commit; under load a transaction takes every waiting
 * row up to half the queue, and 131,072 rows (64 Ki per commit) reach
 * ~0.9x a plain loop with 100,000-row transactions (32 Ki: ~0.75x).  Slots
 * hold a row each and grow only as deep as the queue ever got.  The flush
 * interval bounds how old an uncommitted row gets (the loss window of a
 * crash): 10 ms cost measurably more writer CPU at a trickle; 50-250 ms
 * the same, and 100 ms halves the commits (WAL writes) of 50 ms.
 */
#define AIMDB_SQLITE_DEFAULT_QUEUE_ROWS 131072u
#define AIMDB_SQLITE_DEFAULT_BATCH_ROWS 4096u
#define AIMDB_SQLITE_DEFAULT_FLUSH_MS 100u
#define AIMDB_SQLITE_DEFAULT_READERS 2u

typedef struct aimdb_sqlite_options {
    /* A file, or ":memory:" (a private in-memory database shared by this
     * backend's own connections only; for tests).  "file:" URIs accepted. */
    const char *path;
    aimdb_sqlite_sync synchronous;
    unsigned queue_rows;          /* bounded queue; 0 = default */
    /* ... and bounded in bytes of the rows it holds (the history's share
     * of max_memory); 0 = rows only.  A row of any size enters an empty
     * queue.  A full queue makes store() wait (the persist tap's lag). */
    size_t queue_bytes;
    unsigned batch_rows;          /* commit when this many rows wait; 0 = default
                                     (a commit then takes up to queue_rows / 2) */
    unsigned flush_interval_ms;   /* ... or when the oldest waited this long; 0 = default */
    unsigned read_connections;    /* 0 = default */
    /* Cap on the database file (PRAGMA max_page_count); 0 = none.  Hitting
     * it is a disk-full error: writing resumes once retention frees pages. */
    int64_t max_db_bytes;
    const aimdb_runtime *runtime; /* NULL = aimdb_runtime_pthread() */
    /* Retention hold, for an uplink that copies rows elsewhere: rows whose
     * id is above hold_after(hold_ctx) (not copied yet) are kept past their
     * retention for up to hold_ms more, and new rows get ids above it (a
     * file whose ids lag it, such as a restored backup, would otherwise
     * hand out ids already copied).  hold_after runs on the writer thread,
     * at every commit.  NULL: no hold. */
    int64_t (*hold_after)(void *hold_ctx);
    void *hold_ctx;
    int64_t hold_ms;
} aimdb_sqlite_options;

/* Open (creating the file, parent directory excluded, and schema if needed)
 * and start the writer thread.  A file has one backend at a time, in any
 * process: it holds an exclusive lock on FILE.lock until closed.  On error
 * returns < 0 (AIMDB_EINVAL for bad options, AIMDB_EIO for SQLite failures
 * and a file another backend has open) and writes the reason into err.
 * The backend is handed to aimdb_persist_attach or closed with ops->close. */
int aimdb_sqlite_open(const aimdb_sqlite_options *opts, aimdb_backend *out,
                      char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
