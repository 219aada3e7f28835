/*
 * persist_internal.h -- the structure behind aimdb_persist, shared by the
 * files of the persistence layer and by nothing else.
 *
 *   persist.c        attach, lifecycle hooks, persisted records, stats
 *   persist_tap.c    the tap: value -> JSON -> backend
 *   persist_query.c  synchronous queries: validation, skipping bad rows
 *   aggregate.c      buckets: a value's number, the bucket set, aggregates
 *   history_json.c   a history request's result object, the protocol's JSON
 *   query_service.c  the history service: query threads for AimX
 *   retention.c      sweeps and the sweeper thread
 *
 * Lock order: p->lock -> record->lock (aimdb_tap_add, attributes).
 * backend_lock is never taken while holding p->lock.
 */
#ifndef AIMDB_PERSIST_INTERNAL_H
#define AIMDB_PERSIST_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "aimdb/history.h"
#include "aimdb/mpsc.h"
#include "aimdb/persist.h"

/* One persisted record: the tap's context. */
typedef struct persist_tap {
    aimdb_persist *p;
    aimdb_record *rec;
    const char *name;          /* the record's own name: lives as long as the db */
    int64_t retention_ms;      /* guarded by p->lock; AIMDB_RETENTION_DEFAULT or own (0 = forever) */
    /* Touched only by the tap's callbacks, which never run concurrently. */
    char *scratch;             /* JSON of the current value (persist_tap.c) */
    size_t scratch_cap;
    aimdb_log_limit reject_log, store_log, lag_log;
} persist_tap;

/* The query threads behind AIMDB_HISTORY_EXT (query_service.c). */
typedef struct query_service {
    aimdb_mpsc fifo;             /* accepted, not yet taken; popped under pop_lock */
    pthread_mutex_t pop_lock;    /* query threads take jobs one at a time */
    sem_t work;                  /* a post per queued job, and one per thread at stop */
    _Atomic unsigned pending;    /* accepted and not answered yet */
    unsigned max_pending;
    _Atomic bool stopping;       /* no more queries are accepted */
    _Atomic unsigned submitting; /* submits under way: stop waits for none */
    pthread_mutex_t busy_lock;   /* busy_log's; taken by submitters only */
    aimdb_log_limit busy_log;    /* refusals when the FIFO is full */
    aimdb_thread **threads;
    unsigned nthreads, started;
} query_service;

/* The retention sweeper (retention.c). */
typedef struct sweeper {
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* monotonic clock */
    bool stopping;
    aimdb_thread *thread;
} sweeper;

struct aimdb_persist {
    aimdb_db *db;
    const aimdb_runtime *rt;
    aimdb_persist_options opts; /* defaults filled in */
    aimdb_history_service service;

    /* Calls into the backend hold this shared; closing it holds it
     * exclusively, so close never runs under a query or sweep. */
    pthread_rwlock_t backend_lock;
    aimdb_backend backend;
    bool closed;                /* guarded by backend_lock */
    aimdb_backend_stats final_stats; /* taken just before close */

    pthread_mutex_t lock;       /* guards taps and stopped */
    persist_tap **taps;
    size_t ntaps, taps_cap;
    bool stopped;
    bool started;               /* on_start ran; only the start/stop thread touches it */

    query_service queries;
    sweeper sweeper;

    _Atomic uint64_t rows_enqueued, rows_rejected, rows_lagged, rows_store_failed;
    _Atomic uint64_t decode_skipped, swept, sweeps, sweep_errors;
};

/* persist_tap.c */
extern const aimdb_tap_ops persist_tap_ops;

/* persist_query.c: the validated query every other form builds on;
 * *skipped (may be NULL) gets this query's skipped rows. */
int persist_query_checked(aimdb_persist *p, const aimdb_query_params *q, aimdb_row_fn fn,
                          void *ctx, uint64_t *skipped, char *err, size_t errlen);

/* persist_query.c: the backend's own aggregate, validated and under the
 * backend lock (aimdb_persist_aggregate, aggregate.c, decides which runs). */
int persist_aggregate_checked(aimdb_persist *p, const aimdb_aggregate_params *a,
                              aimdb_bucket_fn fn, void *ctx, char *err, size_t errlen);

/* history_json.c: a growable text buffer. */
typedef struct json_buf {
    char *data;     /* NUL-terminated; owned by the caller (free) */
    size_t len, cap;
} json_buf;
/* Fill out with req's result object (history.h); AIMDB_ETOOBIG (err says how
 * to narrow) if it would exceed req->max_bytes (0 = no cap).  *decode_skipped
 * (may be NULL) gets the rows left out as unreadable. */
int history_json_result(aimdb_persist *p, const aimdb_history_request *req, json_buf *out,
                        uint64_t *decode_skipped, char *err, size_t errlen);

/* query_service.c */
void query_service_init(aimdb_persist *p);
int query_service_start(aimdb_persist *p);
/* Refuse new queries, answer queued ones with AIMDB_ESTOPPED, join threads. */
void query_service_stop(aimdb_persist *p);
void query_service_destroy(aimdb_persist *p);
int query_service_submit(void *self, const aimdb_history_request *req,
                         aimdb_history_done_fn done, void *ctx);

/* retention.c */
void sweeper_init(aimdb_persist *p);
int sweeper_start(aimdb_persist *p);
void sweeper_stop(aimdb_persist *p);
void sweeper_destroy(aimdb_persist *p);

#endif
