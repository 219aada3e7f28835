/*
 * history.h -- the history-query service, as protocol layers see it.
 *
 * AimX must answer record.query without knowing which persistence layer (if
 * any) is attached.  The persistence layer publishes an aimdb_history_service
 * in the database's extension map under AIMDB_HISTORY_EXT; a protocol layer
 * looks it up and gets AIMDB_ENOTFOUND-style "not configured" when absent.
 * This header is the whole contract between the two: no persist include.
 */
#ifndef AIMDB_HISTORY_H
#define AIMDB_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/access.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AIMDB_HISTORY_EXT "aimdb.history"

/* What an aggregate bucket reports, in the order a request lists them. */
typedef enum aimdb_agg {
    AIMDB_AGG_AVG,
    AIMDB_AGG_MIN,
    AIMDB_AGG_MAX,
    AIMDB_AGG_SUM,
    AIMDB_AGG_COUNT,
    AIMDB_AGG_FIRST,
    AIMDB_AGG_LAST,
    AIMDB_AGG_KINDS
} aimdb_agg;

/* The protocol's name of an aggregate ("avg"), or NULL. */
static inline const char *aimdb_agg_name(aimdb_agg a) {
    static const char *const names[AIMDB_AGG_KINDS] = {"avg",   "min",   "max", "sum",
                                                       "count", "first", "last"};
    return (unsigned)a < AIMDB_AGG_KINDS ? names[a] : NULL;
}

typedef struct aimdb_history_request {
    const char *pattern;      /* '*' = any run of characters, all else literal; NULL = "*" */
    bool has_start, has_end;
    int64_t start_ms, end_ms; /* Unix ms, both inclusive */
    uint32_t limit;           /* newest N per record (and gateway on fleet history;
                                 buckets with every_ms); 0 = no cap */
    /* Fleet history only (aimdb_history_service.fleet): which gateways, a
     * pattern like `pattern`; NULL = "*". */
    const char *gateway;
    /* 0: rows.  > 0: one bucket of this width per record and non-empty
     * bucket instead (persist.h, aimdb_persist_aggregate), reporting
     * agg[0..n_agg) in that order (n_agg 0: avg, min, max, count) of the
     * number at field (NULL: the value itself). */
    int64_t every_ms;
    const char *field;
    aimdb_agg agg[AIMDB_AGG_KINDS];
    unsigned n_agg;
    size_t max_bytes;         /* cap on result_json; 0 = none.  Over it: AIMDB_ETOOBIG */
    /* Who sees which rows (aimdb/access.h), NULL = every row.  Called on a
     * query thread; *access must stay valid until done() has run. */
    const aimdb_access *access;
} aimdb_history_request;

typedef struct aimdb_history_result {
    int status;              /* AIMDB_OK, AIMDB_ETOOBIG, AIMDB_EIO, AIMDB_ESTOPPED */
    /* OK: the result object of C.4, {"count":N,"values":[{"record","value",
     * "stored_at"},...]}, "gateway" after "record" in fleet history; with
     * every_ms also "skipped" (values without a number), each value an
     * object of the aggregates asked for. */
    const char *result_json;
    size_t result_len;
    uint64_t skipped;        /* rows that could not be decoded and were left out */
    const char *error;       /* human-readable reason when status != AIMDB_OK */
} aimdb_history_result;

/* Called exactly once per accepted request, on a query thread (or, for
 * requests still queued when the database stops, with AIMDB_ESTOPPED on the
 * thread stopping it); res and its strings are valid for the call only. */
typedef void (*aimdb_history_done_fn)(const aimdb_history_result *res, void *ctx);

typedef struct aimdb_history_service {
    /* Queue a query (req is copied).  AIMDB_OK: done will run later.  Any
     * error: done will not run: AIMDB_EINVAL (start after end, every_ms < 0), AIMDB_EAGAIN
     * (too many queries pending), AIMDB_ESTOPPED, AIMDB_ENOMEM.  Never
     * blocks on the database. */
    int (*query_json)(void *self, const aimdb_history_request *req,
                      aimdb_history_done_fn done, void *ctx);
    void *self;
    /* The history is a fleet's (PostgreSQL): rows name their gateway and
     * requests may give a gateway pattern. */
    bool fleet;
} aimdb_history_service;

/*
 * A JSON number as a Unix-ms timestamp.  Protocol parsers see numbers as
 * doubles; this is the one place that decides which are valid: integral and
 * within signed 64 bits (NaN, infinities, 1.5 and 1e19 are not).  Returns
 * true and sets *out, or false.  Pure; any thread.
 */
static inline bool aimdb_history_ts_from_double(double v, int64_t *out) {
    /* 2^63 is the double nearest INT64_MAX, the "no end" other languages
     * write (Long.MAX_VALUE, math.MaxInt64): read as that, as every other
     * integer beyond 2^53 is read as the nearest double.  -2^63 is exact. */
    if (v == 9223372036854775808.0) {
        *out = INT64_MAX;
        return true;
    }
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return false;
    int64_t t = (int64_t)v;
    if ((double)t != v) return false;
    *out = t;
    return true;
}

#ifdef __cplusplus
}
#endif
#endif
