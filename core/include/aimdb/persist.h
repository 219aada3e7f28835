/*
 * persist.h -- record history: the persistence layer and its backend interface.
 *
 * The layer attaches to a database from the outside, exactly as user code
 * could: a tap per persisted record serialises each value with the record's
 * codec and hands it to a backend, the produce timestamp becoming the row's
 * time.  Backends implement aimdb_backend_ops (SQLite ships in sqlite.h; a
 * PostgreSQL one needs nothing from this layer but this header, and
 * aimdb_pattern_match / aimdb_pattern_prefix_len in aimdb.h give it the same
 * matching rules).
 */
#ifndef AIMDB_PERSIST_H
#define AIMDB_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/access.h"
#include "aimdb/aimdb.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AIMDB_PERSIST_EXT "aimdb.persist"

/* One stored row, as a backend returns it.  Strings valid for the callback. */
typedef struct aimdb_history_row {
    const char *record;
    const char *value_json; /* not NUL-terminated: value_len bytes */
    size_t value_len;
    int64_t stored_at;      /* Unix ms: the value's produce time */
    const char *source;     /* the value's source, NULL if the row has none */
    const char *gateway;    /* the gateway that stored it (fleet backends); NULL: local */
    /* NULL, or why the backend could not read this row (e.g. "stored_at is
     * not an integer").  The layer skips and counts such rows; a backend
     * reports them instead of failing the whole query. */
    const char *defect;
} aimdb_history_row;

/* Row callback; a non-zero return stops the query and is returned by it. */
typedef int (*aimdb_row_fn)(const aimdb_history_row *row, void *ctx);

typedef struct aimdb_query_params {
    const char *pattern;      /* '*' = any run, all else literal; NULL = "*" */
    bool has_start, has_end;
    int64_t start_ms, end_ms; /* inclusive */
    uint32_t limit;           /* newest N visible rows per record (and gateway); 0 = no cap */
    /* Fleet backends (ops->fleet): which gateways, a pattern like `pattern`;
     * NULL = "*".  Rows come record ascending, then gateway ascending, newest
     * first within; limit counts per record and gateway.  Others ignore it. */
    const char *gateway;
    /* Optional (NULL: every row).  record() runs once per matching record
     * before any of its rows are read; for SEE_BY_SOURCE, value() runs per
     * row and a hidden row neither reaches fn nor counts against limit. */
    const aimdb_access *access;
} aimdb_query_params;

typedef struct aimdb_backend_stats {
    uint64_t rows_stored;   /* committed */
    uint64_t rows_failed;   /* given up on after an error (only at shutdown) */
    uint64_t write_errors;  /* failed commits (disk full, read-only, locked) */
    uint64_t batches;       /* committed transactions of rows */
    uint32_t queue_depth;
    uint32_t queue_capacity;
    uint32_t last_batch_rows;
    int64_t last_commit_us;
    int64_t db_bytes;       /* what its files take on disk (SQLite: the file, -wal and
                               -shm); -1 if unknown or not a file */
    uint64_t corrupt_errors; /* operations that found the database damaged */
    uint64_t recovered;     /* damaged databases moved aside and started anew */
    uint64_t reopened;      /* databases found deleted or replaced and reopened */
} aimdb_backend_stats;

typedef struct aimdb_backend_ops {
    const char *name;
    /* Rows carry the gateway that stored them and queries take a gateway
     * pattern (PostgreSQL, a fleet's history); false for local history. */
    bool fleet;
    /* Accept one row (copied; source may be NULL, see aimdb_value).  May wait while the backend's queue is full:
     * the caller is a tap, so waiting is lag, never a blocked producer.
     * AIMDB_ESTOPPED once close has begun. */
    int (*store)(void *self, const char *record, const char *json, size_t json_len,
                 int64_t ts_ms, const char *source);
    /* Return once every row stored before the call is committed; AIMDB_EIO
     * if a commit fails meanwhile (the rows stay queued and are retried). */
    int (*flush)(void *self);
    /* Matching rows, record ascending then newest first, fn on the calling
     * thread.  Never waits behind a write batch.  err gets the reason. */
    int (*query)(void *self, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                 char *err, size_t errlen);
    /* Delete rows older than cutoff_ms (stored_at < cutoff_ms): of `record`,
     * or if record is NULL of every record not named in except[].  Adds the
     * count to *deleted.  Must delete in bounded chunks so writes go on. */
    int (*cleanup)(void *self, const char *record, const char *const *except,
                   size_t n_except, int64_t cutoff_ms, uint64_t *deleted);
    void (*stats)(void *self, aimdb_backend_stats *out);
    /* Drain and commit everything accepted, release everything, free self.
     * No other call may run concurrently with or after it. */
    void (*close)(void *self);
} aimdb_backend_ops;

typedef struct aimdb_backend {
    const aimdb_backend_ops *ops;
    void *self;
} aimdb_backend;

typedef struct aimdb_persist aimdb_persist;

typedef struct aimdb_persist_options {
    int64_t default_retention_ms; /* 0 = keep forever; < 0 is AIMDB_EINVAL */
    int64_t sweep_interval_ms;    /* 0 = 24 h */
    unsigned query_threads;       /* 0 = 1 */
    unsigned query_queue;         /* pending history queries; 0 = 64 */
} aimdb_persist_options;

/*
 * Attach persistence to an unstarted database (AIMDB_ESTATE otherwise, or
 * if a persistence layer or history service is attached already).  Takes
 * ownership of backend whatever the outcome: closed at once on failure,
 * otherwise by aimdb_db_stop (or aimdb_db_free if the db never ran).  Publishes
 * AIMDB_PERSIST_EXT and the AIMDB_HISTORY_EXT service.  Retention is swept
 * on a thread of its own, at start and then every interval.  Call from the
 * thread that owns start/stop.  opts may be NULL.
 */
int aimdb_persist_attach(aimdb_db *db, aimdb_backend backend,
                         const aimdb_persist_options *opts, aimdb_persist **out);

/* The layer attached to db, or NULL. */
aimdb_persist *aimdb_persist_of(aimdb_db *db);

/* retention_ms of a record that follows the layer's default retention.
 * 0 means keep forever, as everywhere else (aimdb.conf's retention=0). */
#define AIMDB_RETENTION_DEFAULT (-1)

/* Persist a record from now on (before or after start; AIMDB_ESTOPPED after
 * stop).  Again on the same record only updates the retention.
 * retention_ms: AIMDB_RETENTION_DEFAULT, 0 = forever, or > 0; anything else
 * is AIMDB_EINVAL.  Sets the record's attributes "persist" (true) and
 * "retention_ms" (effective, 0 = forever). */
int aimdb_persist_record(aimdb_persist *p, aimdb_record *rec, int64_t retention_ms);

/*
 * Synchronous queries on the calling thread (never behind a write batch).
 * Rows the backend flags or whose value is not valid JSON (UTF-8) are
 * skipped, counted in decode_skipped and logged once per query.  Errors:
 * AIMDB_EINVAL (start after end), AIMDB_EIO (backend; err says why),
 * AIMDB_ESTOPPED, or fn's own non-zero return.  err may be NULL.
 */
int aimdb_persist_query(aimdb_persist *p, const aimdb_query_params *q, aimdb_row_fn fn,
                        void *ctx, char *err, size_t errlen);
/* Newest n (>= 1) rows of each matching record. */
int aimdb_persist_latest(aimdb_persist *p, const char *pattern, uint32_t n,
                         aimdb_row_fn fn, void *ctx);
/* Rows with start_ms <= stored_at <= end_ms; cap = newest N per record, 0 = all. */
int aimdb_persist_range(aimdb_persist *p, const char *pattern, int64_t start_ms,
                        int64_t end_ms, uint32_t cap, aimdb_row_fn fn, void *ctx);

/* Typed form: each row decoded with its record's codec; rows that fail to
 * decode (or whose record is unknown here) are skipped and added to
 * *skipped (may be NULL).  v->data is valid for the callback only. */
typedef int (*aimdb_value_row_fn)(const char *record, const aimdb_value *v, void *ctx);
int aimdb_persist_query_values(aimdb_persist *p, const aimdb_query_params *q,
                               aimdb_value_row_fn fn, void *ctx, uint64_t *skipped);

/*
 * Raw form for protocol layers: params is a record.query params object
 * (contract C.4: "name", "limit", "start", "end", with its defaults, and
 * "gateway" where the backend is a fleet's, each value then naming its
 * "gateway"); *out
 * receives the result object {"count":N,"values":[...]} as a malloc'd,
 * NUL-terminated string the caller frees.  access may be NULL; max_bytes 0 =
 * no cap.  AIMDB_EINVAL (bad params; err names the parameter),
 * AIMDB_ETOOBIG (err says how to narrow the query), AIMDB_EIO, AIMDB_ESTOPPED.
 */
int aimdb_persist_query_raw(aimdb_persist *p, const char *params, size_t params_len,
                            const aimdb_access *access, size_t max_bytes, char **out,
                            size_t *out_len, char *err, size_t errlen);

/* Wait until every value already handed to the backend is committed. */
int aimdb_persist_flush(aimdb_persist *p);
/* Run one retention sweep now on the calling thread; adds the rows deleted
 * to *deleted (may be NULL).  Failures are logged; the first is returned. */
int aimdb_persist_sweep(aimdb_persist *p, uint64_t *deleted);

typedef struct aimdb_persist_stats {
    uint64_t rows_enqueued;      /* handed to the backend */
    uint64_t rows_rejected;      /* codec had no JSON form (e.g. double NaN; format=json
                                    refuses such payloads before they reach the record) */
    uint64_t rows_lagged;        /* lost because a persist tap fell behind */
    uint64_t rows_store_failed;  /* backend refused */
    uint64_t decode_skipped;     /* query rows skipped */
    uint64_t swept;              /* rows deleted by retention */
    uint64_t sweeps;             /* retention sweeps completed (ok or not) */
    uint64_t sweep_errors;       /* sweeps that hit an error */
    aimdb_backend_stats backend;
} aimdb_persist_stats;
void aimdb_persist_stats_get(aimdb_persist *p, aimdb_persist_stats *out);

#ifdef __cplusplus
}
#endif
#endif
