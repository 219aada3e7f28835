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
#include "aimdb/history.h"

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

/*
 * Aggregates (record.query with "every").  A value's number is the JSON
 * number at field (aimdb_value_number); values without one are skipped and
 * counted.  Buckets start at multiples of every_ms since the Unix epoch.
 */
typedef struct aimdb_aggregate_params {
    aimdb_query_params q; /* which rows (access included); q.limit counts buckets
                             holding at least one number, 0 = every bucket */
    int64_t every_ms;     /* bucket width, > 0 */
    const char *field;    /* dotted path into an object value; NULL = the value itself */
    /* The caller reads neither first nor last: a backend may leave them 0
     * where finding them costs extra work (PostgreSQL's, an index seek
     * per bucket each). */
    bool without_first_last;
} aimdb_aggregate_params;

/* One bucket of one record (and, on a fleet backend, one gateway).
 * first/last: the number of the earliest / latest value, by stored_at and
 * among equal stored_at in store order (a burst in one millisecond ends
 * with the value stored last, the highest row id), as "newest first"
 * orders rows (C.3). */
typedef struct aimdb_bucket {
    const char *record;
    const char *gateway; /* whose rows (fleet backends); NULL: local history */
    int64_t start_ms;
    uint64_t count;     /* values with a number */
    uint64_t skipped;   /* visible values without one */
    double sum, min, max, first, last; /* meaningful when count > 0 */
} aimdb_bucket;

/* Bucket callback; a non-zero return stops the query and is returned by it. */
typedef int (*aimdb_bucket_fn)(const aimdb_bucket *b, void *ctx);

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
    /* Optional.  The database is stopping and its taps are being drained:
     * from now on store() waits for room a bounded time, then refuses the
     * row (AIMDB_ETIMEDOUT), so that a backend that cannot write (a server
     * down, a disk full) with its queue full delays the stop, never holds it.
     * Called once, from the stopping thread, while taps may be in store(). */
    void (*stopping)(void *self);
    /* Return once every row stored before the call is committed; AIMDB_EIO
     * if a commit fails meanwhile (the rows stay queued and are retried). */
    int (*flush)(void *self);
    /* Matching rows, record ascending then newest first, fn on the calling
     * thread.  Never waits behind a write batch.  err gets the reason. */
    int (*query)(void *self, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                 char *err, size_t errlen);
    /* Optional (NULL: the layer aggregates the rows of query itself).  The
     * buckets of a->q's rows, record ascending then newest first, each with
     * count + skipped > 0; after a->q.limit buckets with count > 0 a record
     * ends.  A fleet backend buckets per record and gateway, as its rows
     * come (gateway ascending within a record, the limit per pair).  Rows
     * a->q.access hides are in no bucket and not skipped.  Must give what
     * the layer's own aggregation of query gives (the shared cases in
     * tests/persist/aggregate_cases.json). */
    int (*aggregate)(void *self, const aimdb_aggregate_params *a, aimdb_bucket_fn fn,
                     void *ctx, char *err, size_t errlen);
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

/* Aggregates: buckets of each matching record, as aimdb_backend_ops.aggregate
 * describes, but without the buckets that hold no number: those only add to
 * *skipped (may be NULL), as do the values skipped in the buckets given.
 * Errors as aimdb_persist_query, and AIMDB_EINVAL for every_ms <= 0. */
int aimdb_persist_aggregate(aimdb_persist *p, const aimdb_aggregate_params *a,
                            aimdb_bucket_fn fn, void *ctx, uint64_t *skipped, char *err,
                            size_t errlen);

/* Typed form: each row decoded with its record's codec; rows that fail to
 * decode (or whose record is unknown here) are skipped and added to
 * *skipped (may be NULL).  v->data is valid for the callback only. */
typedef int (*aimdb_value_row_fn)(const char *record, const aimdb_value *v, void *ctx);
int aimdb_persist_query_values(aimdb_persist *p, const aimdb_query_params *q,
                               aimdb_value_row_fn fn, void *ctx, uint64_t *skipped);

/*
 * The protocol's form, synchronously: *out receives the result object of
 * req (history.h: rows or, with every_ms, buckets) as a malloc'd,
 * NUL-terminated string the caller frees.  req->max_bytes caps it (0 = no
 * cap).  AIMDB_EINVAL (start after end, every_ms < 0), AIMDB_ETOOBIG (err
 * says how to narrow the query), AIMDB_EIO, AIMDB_ESTOPPED.
 */
int aimdb_persist_query_json(aimdb_persist *p, const aimdb_history_request *req, char **out,
                             size_t *out_len, char *err, size_t errlen);

/*
 * The number a value holds at a dotted field path ("wind.speed": member
 * "speed" of member "wind" of the object value; NULL or "" = the value
 * itself), the one rule every backend's aggregates follow: the value there
 * must be a JSON number finite as a double (not a string, boolean or null);
 * a member name matches a path segment when its text between the quotes is
 * the segment byte for byte (no escapes); of duplicate names the last
 * counts.  json is valid JSON of len bytes.  Pure; any thread.
 */
bool aimdb_value_number(const char *json, size_t len, const char *field, double *out);

/* Longest field path a query may name (and aimdb_value_numbers reports). */
#define AIMDB_FIELD_MAX 256

/*
 * Every field path under which aimdb_value_number finds a number in json,
 * with that number: fn("", v) for a number value, fn("wind.speed", v) for
 * the members of objects, at most max_fields calls.  True if that is all
 * of them: a path not reported then gives no number.  False (fn may have
 * run) when it cannot promise so: more numbers, an object with more than
 * 64 members or a name given twice.  Paths longer than AIMDB_FIELD_MAX and
 * members whose name holds '.' or an escape cannot be queried and are left
 * out.  Pure; any thread.
 */
typedef void (*aimdb_field_number_fn)(const char *field, size_t field_len, double v,
                                      void *ctx);
bool aimdb_value_numbers(const char *json, size_t len, unsigned max_fields,
                         aimdb_field_number_fn fn, void *ctx);

/*
 * One record's buckets as they fill, for backends that aggregate in C (the
 * layer's own aggregation and SQLite's use it).  A part is what some values
 * of one bucket add up to.  Which number is first and last is decided by
 * (stored_at, order), order being the store position among equal times
 * (the row id: a higher order was stored later).  Not thread-safe; one set
 * per query.
 */
typedef struct aimdb_bucket_part {
    int64_t ts_ms;                 /* any time inside the bucket */
    uint64_t values;               /* visible values (a bucket's skipped: values - count) */
    uint64_t count;                /* those with a number (parts may count them apart) */
    double sum, min, max, first, last; /* meaningful when count > 0 */
    int64_t first_at, first_order;     /* the first number's stored_at and order */
    int64_t last_at, last_order;
} aimdb_bucket_part;

typedef struct aimdb_bucket_set aimdb_bucket_set;

/* every_ms > 0; NULL when out of memory. */
aimdb_bucket_set *aimdb_bucket_set_new(int64_t every_ms);
/* AIMDB_OK or AIMDB_ENOMEM. */
int aimdb_bucket_set_merge(aimdb_bucket_set *s, const aimdb_bucket_part *part);
/* One visible value: its number if has_number, else a skipped value. */
int aimdb_bucket_set_add(aimdb_bucket_set *s, int64_t ts_ms, int64_t order, bool has_number,
                         double number);
/* Hand the buckets to fn as aimdb_backend_ops.aggregate says (newest first,
 * ending after limit buckets with a number; 0 = all), each naming record and
 * gateway (NULL but on a fleet backend), then empty the set.  Returns fn's
 * first non-zero return, else 0. */
int aimdb_bucket_set_emit(aimdb_bucket_set *s, const char *record, const char *gateway,
                          uint32_t limit, aimdb_bucket_fn fn, void *ctx);
void aimdb_bucket_set_free(aimdb_bucket_set *s);

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
