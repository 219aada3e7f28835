/*
 * sqlite.h -- the SQLite history backend.
 *
 * One writer thread owns the write connection (WAL) and commits many rows per
 * transaction; callers enqueue into a bounded queue.  Queries use separate
 * read connections so they never wait behind a batch.  Schema: contract C.3.
 */
#ifndef AIMDB_SQLITE_H
#define AIMDB_SQLITE_H

#include "aimdb/persist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aimdb_sqlite_sync {
    AIMDB_SQLITE_SYNC_NORMAL = 0, /* default: durable at checkpoints, safe on power loss in WAL */
    AIMDB_SQLITE_SYNC_OFF,
    AIMDB_SQLITE_SYNC_FULL
} aimdb_sqlite_sync;

typedef struct aimdb_sqlite_options {
    const char *path;             /* file, or ":memory:" */
    aimdb_sqlite_sync synchronous;
    unsigned queue_rows;          /* bounded queue; 0 = default */
    unsigned batch_rows;          /* commit when this many rows wait; 0 = default */
    unsigned flush_interval_ms;   /* ... or when the oldest waited this long; 0 = default */
    unsigned read_connections;    /* 0 = default */
    const aimdb_runtime *runtime; /* NULL = aimdb_runtime_pthread() */
} aimdb_sqlite_options;

/* Parse "off" | "normal" | "full".  AIMDB_EINVAL otherwise. */
int aimdb_sqlite_sync_parse(const char *text, aimdb_sqlite_sync *out);

/* Open (creating the file, parent directory excluded, and schema if needed)
 * and start the writer thread.  On error returns < 0 and writes the reason
 * into err. */
int aimdb_sqlite_open(const aimdb_sqlite_options *opts, aimdb_backend *out,
                      char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
