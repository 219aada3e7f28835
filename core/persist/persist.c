/*
 * persist.c -- the persistence layer: attaching to a database, persisted
 * records, lifecycle and statistics.
 *
 * The core knows nothing of this layer.  It lives in the database's
 * extension map (AIMDB_PERSIST_EXT, plus the AIMDB_HISTORY_EXT service for
 * protocol layers), watches records through ordinary taps and follows the
 * database's life through on_start/on_stop hooks, exactly as any user code
 * could.
 *
 * Lifecycle: attach opens nothing (the backend arrives open) and starts no
 * thread.  on_start starts the query threads and the sweeper (whose first
 * sweep runs at once).  aimdb_db_stop drains every tap before it runs the
 * on_stop hooks, so by on_stop no tap can call the backend any more: the
 * hook stops the threads, answers queued queries with AIMDB_ESTOPPED and
 * closes the backend, which commits everything the taps handed it.  Before
 * the drain, on_stopping tells the backend to bound how long a store waits
 * for room, so a backend that cannot write cannot hold the drain for good.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist_internal.h"

#define DEFAULT_SWEEP_INTERVAL_MS (24LL * 3600 * 1000)
#define DEFAULT_QUERY_QUEUE 64
#define INITIAL_SCRATCH 256

/* Close the backend once, keeping its last statistics for stats_get.  No
 * tap runs any more, so after the flush the statistics are final (unless
 * the flush failed: then close retries and logs what it had to give up). */
static void close_backend(aimdb_persist *p) {
    pthread_rwlock_wrlock(&p->backend_lock);
    if (!p->closed) {
        p->backend.ops->flush(p->backend.self);
        p->backend.ops->stats(p->backend.self, &p->final_stats);
        p->backend.ops->close(p->backend.self);
        p->closed = true;
    }
    pthread_rwlock_unlock(&p->backend_lock);
}

/* The hooks find the layer through the extension map, not a context
 * pointer: they are registered before the layer exists, so a failed
 * attach leaves behind hooks that find nothing, never a dangling pointer. */
static int on_start(aimdb_db *db, void *ctx) {
    (void)ctx;
    aimdb_persist *p = aimdb_persist_of(db);
    if (!p || p->started) return 0; /* hooks of an earlier, failed attach */
    p->started = true;
    int rc = query_service_start(p);
    if (rc == AIMDB_OK) rc = sweeper_start(p);
    return rc;
}

static void stop_layer(aimdb_persist *p) {
    pthread_mutex_lock(&p->lock);
    p->stopped = true;
    pthread_mutex_unlock(&p->lock);
    sweeper_stop(p);
    query_service_stop(p);
    close_backend(p);
}

static int on_stopping(aimdb_db *db, void *ctx) {
    (void)ctx;
    aimdb_persist *p = aimdb_persist_of(db);
    if (p && p->backend.ops->stopping) p->backend.ops->stopping(p->backend.self);
    return 0;
}

static int on_stop(aimdb_db *db, void *ctx) {
    (void)ctx;
    aimdb_persist *p = aimdb_persist_of(db);
    if (p) stop_layer(p);
    return 0;
}

/* The extension's destructor, run by aimdb_db_free.  A database that never
 * ran had no on_stop: its queued queries and its backend end here. */
static void persist_free(void *value) {
    aimdb_persist *p = value;
    stop_layer(p);
    for (size_t i = 0; i < p->ntaps; i++) {
        free(p->taps[i]->scratch);
        free(p->taps[i]);
    }
    free(p->taps);
    query_service_destroy(p);
    sweeper_destroy(p);
    pthread_mutex_destroy(&p->lock);
    pthread_rwlock_destroy(&p->backend_lock);
    free(p);
}

static aimdb_persist_options options_with_defaults(const aimdb_persist_options *opts) {
    aimdb_persist_options o = opts ? *opts : (aimdb_persist_options){0};
    if (!o.sweep_interval_ms) o.sweep_interval_ms = DEFAULT_SWEEP_INTERVAL_MS;
    if (!o.query_threads) o.query_threads = 1;
    if (!o.query_queue) o.query_queue = DEFAULT_QUERY_QUEUE;
    return o;
}

static aimdb_persist *persist_new(aimdb_db *db, aimdb_backend backend,
                                  const aimdb_persist_options *opts) {
    aimdb_persist *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->db = db;
    p->rt = aimdb_db_runtime(db);
    p->opts = options_with_defaults(opts);
    p->backend = backend;
    p->service = (aimdb_history_service){query_service_submit, p, backend.ops->fleet};
    pthread_rwlock_init(&p->backend_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    query_service_init(p);
    sweeper_init(p);
    return p;
}

static int attach_error(aimdb_backend backend, int rc) {
    backend.ops->close(backend.self);
    return rc;
}

int aimdb_persist_attach(aimdb_db *db, aimdb_backend backend,
                         const aimdb_persist_options *opts, aimdb_persist **out) {
    if (!backend.ops) return AIMDB_EINVAL;
    if (!db || (opts && (opts->default_retention_ms < 0 || opts->sweep_interval_ms < 0)))
        return attach_error(backend, AIMDB_EINVAL);
    if (aimdb_db_running(db) || aimdb_ext_get(db, AIMDB_PERSIST_EXT) ||
        aimdb_ext_get(db, AIMDB_HISTORY_EXT))
        return attach_error(backend, AIMDB_ESTATE);
    /* Hooks first: they fail with AIMDB_ESTATE on a stopped database. */
    int rc = aimdb_db_on_start(db, on_start, NULL);
    if (rc == AIMDB_OK) rc = aimdb_db_on_stopping(db, on_stopping, NULL);
    if (rc == AIMDB_OK) rc = aimdb_db_on_stop(db, on_stop, NULL);
    if (rc != AIMDB_OK) return attach_error(backend, rc);
    aimdb_persist *p = persist_new(db, backend, opts);
    if (!p) return attach_error(backend, AIMDB_ENOMEM);
    rc = aimdb_ext_set(db, AIMDB_PERSIST_EXT, p, persist_free);
    if (rc != AIMDB_OK) {
        persist_free(p); /* closes the backend */
        return rc;
    }
    /* The db owns p now; only memory can still fail, and then the layer
     * stays attached, persisting but not serving AimX, until the db is freed. */
    rc = aimdb_ext_set(db, AIMDB_HISTORY_EXT, &p->service, NULL);
    if (rc != AIMDB_OK) {
        aimdb_log(p->rt, AIMDB_LOG_ERROR, "persist: cannot publish the history service: %s",
                  aimdb_strerror(rc));
        return rc;
    }
    if (out) *out = p;
    return AIMDB_OK;
}

aimdb_persist *aimdb_persist_of(aimdb_db *db) {
    return db ? aimdb_ext_get(db, AIMDB_PERSIST_EXT) : NULL;
}

/* ------------------------------------------------------------ records */

static persist_tap *find_tap_locked(aimdb_persist *p, aimdb_record *rec) {
    for (size_t i = 0; i < p->ntaps; i++)
        if (p->taps[i]->rec == rec) return p->taps[i];
    return NULL;
}

static int add_tap_locked(aimdb_persist *p, aimdb_record *rec, int64_t retention_ms) {
    if (p->ntaps == p->taps_cap) {
        size_t cap = p->taps_cap ? p->taps_cap * 2 : 8;
        persist_tap **grown = realloc(p->taps, cap * sizeof(*grown));
        if (!grown) return AIMDB_ENOMEM;
        p->taps = grown;
        p->taps_cap = cap;
    }
    persist_tap *t = calloc(1, sizeof(*t));
    char *scratch = malloc(INITIAL_SCRATCH);
    if (!t || !scratch) {
        free(t);
        free(scratch);
        return AIMDB_ENOMEM;
    }
    *t = (persist_tap){.p = p, .rec = rec, .name = aimdb_record_name(rec),
                       .retention_ms = retention_ms, .scratch = scratch,
                       .scratch_cap = INITIAL_SCRATCH};
    int rc = aimdb_tap_add(rec, &persist_tap_ops, t, NULL);
    if (rc != AIMDB_OK) {
        free(scratch);
        free(t);
        return rc;
    }
    p->taps[p->ntaps++] = t;
    return AIMDB_OK;
}

int aimdb_persist_record(aimdb_persist *p, aimdb_record *rec, int64_t retention_ms) {
    if (!p || !rec || retention_ms < AIMDB_RETENTION_DEFAULT) return AIMDB_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = AIMDB_OK;
    persist_tap *t = p->stopped ? NULL : find_tap_locked(p, rec);
    if (p->stopped) rc = AIMDB_ESTOPPED;
    else if (t) t->retention_ms = retention_ms;
    else rc = add_tap_locked(p, rec, retention_ms);
    pthread_mutex_unlock(&p->lock);
    if (rc != AIMDB_OK) return rc;

    char text[24];
    snprintf(text, sizeof(text), "%" PRId64,
             retention_ms == AIMDB_RETENTION_DEFAULT ? p->opts.default_retention_ms : retention_ms);
    rc = aimdb_record_set_attr(rec, "persist", "true");
    if (rc == AIMDB_OK) rc = aimdb_record_set_attr(rec, "retention_ms", text);
    return rc;
}

/* ------------------------------------------------------------- others */

int aimdb_persist_flush(aimdb_persist *p) {
    if (!p) return AIMDB_EINVAL;
    pthread_rwlock_rdlock(&p->backend_lock);
    int rc = p->closed ? AIMDB_ESTOPPED : p->backend.ops->flush(p->backend.self);
    pthread_rwlock_unlock(&p->backend_lock);
    return rc;
}

void aimdb_persist_stats_get(aimdb_persist *p, aimdb_persist_stats *out) {
    *out = (aimdb_persist_stats){
        .rows_enqueued = atomic_load(&p->rows_enqueued),
        .rows_rejected = atomic_load(&p->rows_rejected),
        .rows_lagged = atomic_load(&p->rows_lagged),
        .rows_store_failed = atomic_load(&p->rows_store_failed),
        .decode_skipped = atomic_load(&p->decode_skipped),
        .swept = atomic_load(&p->swept),
        .sweeps = atomic_load(&p->sweeps),
        .sweep_errors = atomic_load(&p->sweep_errors),
    };
    pthread_rwlock_rdlock(&p->backend_lock);
    if (p->closed) out->backend = p->final_stats;
    else p->backend.ops->stats(p->backend.self, &out->backend);
    pthread_rwlock_unlock(&p->backend_lock);
}
