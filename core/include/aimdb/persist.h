/*
 * persist.h -- record history: the persistence layer and its backend interface.
 *
 * The layer attaches to a database from the outside, exactly as user code
 * could: a tap per persisted record serialises each value with the record's
 * codec and hands it to a backend, the produce timestamp becoming the row's
 * time.  Backends implement aimdb_backend_ops (SQLite ships in sqlite.h; a
 * PostgreSQL one needs nothing from this layer but this header).
 */
#ifndef AIMDB_PERSIST_H
#define AIMDB_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/aimdb.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AIMDB_PERSIST_EXT "aimdb.persist"

/* One stored row, as a backend returns it.  Strings valid for the callback. */
typedef struct aimdb_history_row {
    const char *record;
    const char *value_json;
    size_t value_len;
    int64_t stored_at; /* Unix ms: the value's produce time */
} aimdb_history_row;

/* Row callback; a non-zero return stops the query and is returned by it. */
typedef int (*aimdb_row_fn)(const aimdb_history_row *row, void *ctx);

typedef struct aimdb_query_params {
    const char *pattern;      /* '*' = any run, all else literal; NULL = "*" */
    bool has_start, has_end;
    int64_t start_ms, end_ms; /* inclusive */
    uint32_t limit;           /* newest N per record; 0 = no cap */
} aimdb_query_params;

typedef struct aimdb_backend_stats {
    uint64_t rows_stored;   /* committed */
    uint64_t rows_failed;   /* given up on after an error */
    uint64_t write_errors;  /* failed commits (disk full, read-only, locked) */
    uint64_t batches;
    uint32_t queue_depth;
    uint32_t queue_capacity;
    uint32_t last_batch_rows;
    int64_t last_commit_us;
    int64_t db_bytes;       /* -1 if unknown */
} aimdb_backend_stats;

typedef struct aimdb_backend_ops {
    const char *name;
    /* Accept one row (copied).  May wait while the backend's queue is full:
     * the caller is a tap, so waiting is lag, never a blocked producer. */
    int (*store)(void *self, const char *record, const char *json, size_t json_len,
                 int64_t ts_ms);
    /* Return once every row stored before the call is committed. */
    int (*flush)(void *self);
    /* Matching rows, record ascending then newest first, fn on the calling
     * thread.  Never waits behind a write batch.  err gets the reason. */
    int (*query)(void *self, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                 char *err, size_t errlen);
    /* Delete rows older than cutoff_ms: of `record`, or if record is NULL of
     * every record not named in except[].  Adds the count to *deleted. */
    int (*cleanup)(void *self, const char *record, const char *const *except,
                   size_t n_except, int64_t cutoff_ms, uint64_t *deleted);
    void (*stats)(void *self, aimdb_backend_stats *out);
    /* Drain and commit everything accepted, release everything, free self. */
    void (*close)(void *self);
} aimdb_backend_ops;

typedef struct aimdb_backend {
    const aimdb_backend_ops *ops;
    void *self;
} aimdb_backend;

typedef struct aimdb_persist aimdb_persist;

typedef struct aimdb_persist_options {
    int64_t default_retention_ms; /* 0 = keep forever */
    int64_t sweep_interval_ms;    /* 0 = 24 h */
    unsigned query_threads;       /* 0 = 1 */
} aimdb_persist_options;

/*
 * Attach persistence to an unstarted database.  Takes ownership of backend
 * (closed by aimdb_db_stop, or at once if this fails).  Publishes
 * AIMDB_PERSIST_EXT and the AIMDB_HISTORY_EXT service; sweeps retention at
 * start and then every interval.  opts may be NULL.
 */
int aimdb_persist_attach(aimdb_db *db, aimdb_backend backend,
                         const aimdb_persist_options *opts, aimdb_persist **out);

/* The layer attached to db, or NULL. */
aimdb_persist *aimdb_persist_of(aimdb_db *db);

/* Persist a record from now on (idempotent).  retention_ms 0 = the default.
 * Sets the record's "persist" and "retention_ms" attributes. */
int aimdb_persist_record(aimdb_persist *p, aimdb_record *rec, int64_t retention_ms);

/* Synchronous queries on the calling thread (never behind a write batch). */
int aimdb_persist_query(aimdb_persist *p, const aimdb_query_params *q, aimdb_row_fn fn,
                        void *ctx, char *err, size_t errlen);
int aimdb_persist_latest(aimdb_persist *p, const char *pattern, uint32_t n,
                         aimdb_row_fn fn, void *ctx);
int aimdb_persist_range(aimdb_persist *p, const char *pattern, int64_t start_ms,
                        int64_t end_ms, uint32_t cap, aimdb_row_fn fn, void *ctx);

/* Typed form: each row decoded with its record's codec; rows that fail to
 * decode (or whose record is unknown) are skipped and counted. */
typedef int (*aimdb_value_row_fn)(const char *record, const aimdb_value *v, void *ctx);
int aimdb_persist_query_values(aimdb_persist *p, const aimdb_query_params *q,
                               aimdb_value_row_fn fn, void *ctx, uint64_t *skipped);

/* Wait until every value already handed to the taps is committed. */
int aimdb_persist_flush(aimdb_persist *p);
/* Run one retention sweep now; adds the rows deleted to *deleted. */
int aimdb_persist_sweep(aimdb_persist *p, uint64_t *deleted);

typedef struct aimdb_persist_stats {
    uint64_t rows_enqueued;      /* handed to the backend */
    uint64_t rows_rejected;      /* codec had no JSON form (e.g. format=json) */
    uint64_t rows_lagged;        /* lost because a persist tap fell behind */
    uint64_t rows_store_failed;  /* backend refused */
    uint64_t decode_skipped;     /* query rows skipped */
    uint64_t swept;              /* rows deleted by retention */
    aimdb_backend_stats backend;
} aimdb_persist_stats;
void aimdb_persist_stats_get(aimdb_persist *p, aimdb_persist_stats *out);

#ifdef __cplusplus
}
#endif
#endif
