/*
 * sqlite_backend.c -- the SQLite history backend: options, connections and
 * the aimdb_backend vtable that the persistence layer calls.
 *
 * ":memory:" needs care: a plain :memory: database is private to the one
 * connection that opened it, so the read connections would see an empty
 * database.  It is therefore opened as a uniquely named shared-cache
 * in-memory database ("file:aimdb-mem-<pid>-<n>?mode=memory&cache=shared"),
 * which every connection of this backend (and nothing else) shares and
 * which lives until the last of them closes.  Shared cache has table locks
 * instead of WAL snapshots, so the readers run with read_uncommitted: they
 * never wait for a batch, at the price of possibly seeing rows of a batch
 * that is still being committed.  That trade is fine for the tests it
 * exists for; files get WAL and true snapshots.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqlite_internal.h"

int sq_open_connection(sq_backend *b, int flags, sqlite3 **out, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    /* NOMUTEX: each connection is used by one thread at a time (the writer
     * owns its own; a reader belongs to whoever took it from the pool).  The
     * shared-cache memory database keeps SQLite's own locking: there the
     * connections share one b-tree. */
    flags |= SQLITE_OPEN_URI | (b->memory ? SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_NOMUTEX);
    int rc = sqlite3_open_v2(b->uri, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        aimdb_errorf(err, errlen, "cannot open %s: %s", b->opts.path,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        *out = NULL;
        return AIMDB_EIO;
    }
    sqlite3_extended_result_codes(db, 1);
    *out = db;
    return AIMDB_OK;
}

int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *err, size_t errlen) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) == SQLITE_OK)
        return AIMDB_OK;
    aimdb_errorf(err, errlen, "preparing \"%s\": %s", sql, sqlite3_errmsg(db));
    *out = NULL;
    return AIMDB_EIO;
}

int sq_exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return AIMDB_OK;
    aimdb_errorf(err, errlen, "\"%s\": %s", sql, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return AIMDB_EIO;
}

int sq_seek_name(sqlite3_stmt *first, sqlite3_stmt *next, const char *from, size_t from_len,
                 char **buf, size_t *cap, bool *found) {
    sqlite3_stmt *st = first ? first : next;
    sqlite3_bind_text(st, 1, from, (int)from_len, SQLITE_TRANSIENT);
    *found = false;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            return rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        if (len + 1 > *cap) {
            char *grown = realloc(*buf, len + 1);
            if (!grown) {
                sqlite3_reset(st);
                return SQLITE_NOMEM;
            }
            *buf = grown;
            *cap = len + 1;
        }
        memcpy(*buf, sqlite3_column_text(st, 0), len + 1);
        sqlite3_reset(st);
        if (strlen(*buf) == len) break;
        st = next;
        sqlite3_bind_text(st, 1, *buf, (int)len, SQLITE_TRANSIENT);
    }
    *found = true;
    return SQLITE_OK;
}

/* ------------------------------------------------------------- vtable */

static int backend_store(void *self, const char *record, const char *json, size_t json_len,
                         int64_t ts_ms, const char *source) {
    sq_backend *b = self;
    if (!record || !*record || !json) return AIMDB_EINVAL;
    /* SQLite's own limit on a text value (1e9 by default); larger can
     * never be written, so it is refused here rather than retried forever. */
    size_t name_len = strlen(record);
    if (json_len + name_len > (size_t)b->max_text_bytes) return AIMDB_ETOOBIG;
    return sq_queue_put(&b->queue, record, name_len, json, json_len, ts_ms, source);
}

static void backend_stopping(void *self) {
    sq_backend *b = self;
    sq_queue_stopping(&b->queue);
}

static int backend_flush(void *self) {
    sq_backend *b = self;
    return sq_queue_flush(&b->queue);
}

static int backend_query(void *self, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                         char *err, size_t errlen) {
    if (!q || !fn) {
        aimdb_errorf(err, errlen, "query needs parameters and a row callback");
        return AIMDB_EINVAL;
    }
    return sq_readers_query(self, q, fn, ctx, err, errlen);
}

static int backend_aggregate(void *self, const aimdb_aggregate_params *a, aimdb_bucket_fn fn,
                             void *ctx, char *err, size_t errlen) {
    if (!a || !fn || a->every_ms <= 0) {
        aimdb_errorf(err, errlen, "aggregate needs parameters, every > 0 and a bucket callback");
        return AIMDB_EINVAL;
    }
    return sq_rollup_aggregate(self, a, fn, ctx, err, errlen);
}

static int backend_cleanup(void *self, const char *record, const char *const *except,
                           size_t n_except, int64_t cutoff_ms, uint64_t *deleted) {
    sq_backend *b = self;
    return sq_queue_cleanup(&b->queue, record, except, n_except, cutoff_ms, deleted);
}

static void backend_stats(void *self, aimdb_backend_stats *out) {
    sq_backend *b = self;
    *out = (aimdb_backend_stats){
        .db_bytes = atomic_load(&b->db_bytes),
        .corrupt_errors = atomic_load(&b->health.corrupt),
        .recovered = atomic_load(&b->health.recovered),
        .reopened = atomic_load(&b->health.reopened),
    };
    sq_writer_counts_read(&b->counts, &b->queue, out);
}

/* Tear down whatever open got to; every step tolerates "never opened". */
static void backend_free(sq_backend *b) {
    sq_writer_stop(b);
    sq_writer_close_connection(b);
    sq_readers_close(b);
    sq_rollup_map_free(b->rollup_map);
    sq_queue_destroy(&b->queue);
    sq_health_destroy(b);
    sq_lock_release(b);
    free(b->uri);
    free(b);
}

static void backend_close(void *self) { backend_free(self); }

static const aimdb_backend_ops sqlite_ops = {
    .name = "sqlite",
    .store = backend_store,
    .stopping = backend_stopping,
    .flush = backend_flush,
    .query = backend_query,
    .aggregate = backend_aggregate,
    .cleanup = backend_cleanup,
    .stats = backend_stats,
    .close = backend_close,
};

/* --------------------------------------------------------------- open */

static int check_options(const aimdb_sqlite_options *o, char *err, size_t errlen) {
    if (!o || !o->path || !*o->path) {
        aimdb_errorf(err, errlen, "sqlite: a database path (or \":memory:\") is required");
        return AIMDB_EINVAL;
    }
    if (o->synchronous != AIMDB_SQLITE_SYNC_NORMAL && o->synchronous != AIMDB_SQLITE_SYNC_OFF &&
        o->synchronous != AIMDB_SQLITE_SYNC_FULL) {
        aimdb_errorf(err, errlen, "sqlite: synchronous must be off, normal or full");
        return AIMDB_EINVAL;
    }
    if (o->hold_ms < 0) {
        aimdb_errorf(err, errlen, "sqlite: hold_ms must not be negative");
        return AIMDB_EINVAL;
    }
    if (o->max_db_bytes < 0) {
        aimdb_errorf(err, errlen, "sqlite: max_db_bytes must not be negative");
        return AIMDB_EINVAL;
    }
    return AIMDB_OK;
}

static aimdb_sqlite_options with_defaults(const aimdb_sqlite_options *o) {
    aimdb_sqlite_options d = *o;
    if (!d.queue_rows) d.queue_rows = AIMDB_SQLITE_DEFAULT_QUEUE_ROWS;
    if (!d.batch_rows) d.batch_rows = AIMDB_SQLITE_DEFAULT_BATCH_ROWS;
    /* A batch larger than the queue could never fill. */
    if (d.batch_rows > d.queue_rows) d.batch_rows = d.queue_rows;
    if (!d.flush_interval_ms) d.flush_interval_ms = AIMDB_SQLITE_DEFAULT_FLUSH_MS;
    if (!d.read_connections) d.read_connections = AIMDB_SQLITE_DEFAULT_READERS;
    if (!d.runtime) d.runtime = aimdb_runtime_pthread();
    return d;
}

static char *memory_uri(void) {
    static _Atomic unsigned counter;
    char buf[96];
    snprintf(buf, sizeof(buf), "file:aimdb-mem-%ld-%u?mode=memory&cache=shared",
             (long)getpid(), atomic_fetch_add(&counter, 1));
    return strdup(buf);
}

int aimdb_sqlite_open(const aimdb_sqlite_options *opts, aimdb_backend *out, char *err,
                      size_t errlen) {
    int rc = check_options(opts, err, errlen);
    if (rc != AIMDB_OK) return rc;
    sq_backend *b = calloc(1, sizeof(*b));
    if (!b) {
        aimdb_errorf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    b->opts = with_defaults(opts);
    b->rt = b->opts.runtime;
    b->lock_fd = -1;
    b->memory = strcmp(opts->path, ":memory:") == 0;
    b->uri = b->memory ? memory_uri() : strdup(opts->path);
    atomic_init(&b->db_bytes, -1);
    sq_health_init(b);
    rc = b->uri ? sq_queue_init(&b->queue, b->opts.queue_rows, b->opts.queue_bytes,
                                b->opts.batch_rows, b->opts.flush_interval_ms)
                : AIMDB_ENOMEM;
    if (rc == AIMDB_ENOMEM) aimdb_errorf(err, errlen, "out of memory");
    if (rc == AIMDB_OK) rc = sq_lock_take(b, err, errlen);
    if (rc == AIMDB_OK) rc = sq_health_open(b, err, errlen);
    if (rc == AIMDB_OK) rc = sq_readers_open(b, err, errlen);
    if (rc == AIMDB_OK) rc = sq_writer_start(b, err, errlen);
    if (rc != AIMDB_OK) {
        backend_free(b);
        return rc;
    }
    *out = (aimdb_backend){&sqlite_ops, b};
    return AIMDB_OK;
}
