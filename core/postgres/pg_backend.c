/*
 * pg_backend.c -- the PostgreSQL history backend: options, the first
 * connection, and the aimdb_backend vtable the persistence layer calls.
 *
 * Open connects once to check the URI, the login and the table: those are
 * configuration errors and stop start-up with a message.  A server that is
 * down is not: history waits in the queue while the writer retries, as it
 * would for an outage later on.
 */
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

static int backend_store(void *self, const char *record, const char *json, size_t json_len,
                         int64_t ts_ms, const char *source) {
    pg_backend *b = self;
    if (!record || !*record || !json) return AIMDB_EINVAL;
    return sq_queue_put(&b->queue, record, strlen(record), json, json_len, ts_ms, source);
}

static void backend_stopping(void *self) {
    pg_backend *b = self;
    sq_queue_stopping(&b->queue);
}

static int backend_flush(void *self) {
    pg_backend *b = self;
    return sq_queue_flush(&b->queue);
}

static int backend_query(void *self, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                         char *err, size_t errlen) {
    if (!q || !fn) {
        aimdb_errorf(err, errlen, "query needs parameters and a row callback");
        return AIMDB_EINVAL;
    }
    return pg_reader_query(self, q, fn, ctx, err, errlen);
}

static int backend_cleanup(void *self, const char *record, const char *const *except,
                           size_t n_except, int64_t cutoff_ms, uint64_t *deleted) {
    pg_backend *b = self;
    return sq_queue_cleanup(&b->queue, record, except, n_except, cutoff_ms, deleted);
}

static void backend_stats(void *self, aimdb_backend_stats *out) {
    pg_backend *b = self;
    *out = (aimdb_backend_stats){
        .db_bytes = -1,
    };
    sq_writer_counts_read(&b->counts, &b->queue, out);
}

static void backend_free(pg_backend *b) {
    pg_writer_stop(b);
    PQfinish(b->wconn);
    pg_reader_close(b);
    sq_queue_destroy(&b->queue);
    pthread_mutex_destroy(&b->read_lock);
    free(b->copy.data);
    free(b->uri);
    free(b->gateway);
    free(b);
}

static void backend_close(void *self) { backend_free(self); }

static const aimdb_backend_ops postgres_ops = {
    .name = "postgres",
    .fleet = true,
    .store = backend_store,
    .stopping = backend_stopping,
    .flush = backend_flush,
    .query = backend_query,
    .aggregate = pg_aggregate,
    .cleanup = backend_cleanup,
    .stats = backend_stats,
    .close = backend_close,
};

static aimdb_postgres_options with_defaults(const aimdb_postgres_options *o) {
    aimdb_postgres_options d = *o;
    if (!d.queue_rows) d.queue_rows = AIMDB_POSTGRES_DEFAULT_QUEUE_ROWS;
    if (!d.batch_rows) d.batch_rows = AIMDB_POSTGRES_DEFAULT_BATCH_ROWS;
    if (d.batch_rows > d.queue_rows) d.batch_rows = d.queue_rows;
    if (!d.flush_interval_ms) d.flush_interval_ms = AIMDB_POSTGRES_DEFAULT_FLUSH_MS;
    if (!d.runtime) d.runtime = aimdb_runtime_pthread();
    return d;
}

/* The first connection: a refused login or a foreign table is a
 * configuration error; an unreachable server only a warning. */
static int first_connect(pg_backend *b, char *err, size_t errlen) {
    char why[512];
    b->wconn = pg_connect(b->uri, why, sizeof(why));
    if (!b->wconn) {
        if (!pg_unreachable(why)) {
            aimdb_errorf(err, errlen, "%s: %s", b->where, why);
            return AIMDB_EINVAL;
        }
        aimdb_log(b->rt, AIMDB_LOG_WARNING,
                  "history: cannot reach %s yet (%s); rows are kept and writing is retried",
                  b->where, why);
        return AIMDB_OK;
    }
    char warning[1024];
    int rc = pg_schema_ensure(b->wconn, why, sizeof(why), warning, sizeof(warning));
    if (rc != AIMDB_OK) aimdb_errorf(err, errlen, "%s: %s", b->where, why);
    else if (*warning) aimdb_log(b->rt, AIMDB_LOG_WARNING, "history: %s: %s", b->where, warning);
    return rc == AIMDB_EIO ? AIMDB_EINVAL : rc;
}

int aimdb_postgres_open(const aimdb_postgres_options *opts, aimdb_backend *out, char *err,
                        size_t errlen) {
    if (!opts || !opts->uri || !opts->gateway || !*opts->gateway) {
        aimdb_errorf(err, errlen, "postgres: a URI and a gateway name are required");
        return AIMDB_EINVAL;
    }
    char why[256];
    if (aimdb_postgres_uri_check(opts->uri, why, sizeof(why)) != AIMDB_OK) {
        aimdb_errorf(err, errlen, "bad PostgreSQL URI: %s", why);
        return AIMDB_EINVAL;
    }
    pg_backend *b = calloc(1, sizeof(*b));
    if (!b) {
        aimdb_errorf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    b->opts = with_defaults(opts);
    b->rt = b->opts.runtime;
    b->uri = strdup(opts->uri);
    b->gateway = strdup(opts->gateway);
    pthread_mutex_init(&b->read_lock, NULL);
    aimdb_postgres_describe(opts->uri, b->where, sizeof(b->where));
    int rc = b->uri && b->gateway ? sq_queue_init(&b->queue, b->opts.queue_rows,
                                                  b->opts.queue_bytes,
                                                  b->opts.batch_rows, b->opts.flush_interval_ms)
                                  : AIMDB_ENOMEM;
    if (rc == AIMDB_ENOMEM) aimdb_errorf(err, errlen, "out of memory");
    if (rc == AIMDB_OK) rc = first_connect(b, err, errlen);
    if (rc == AIMDB_OK) rc = pg_writer_start(b, err, errlen);
    if (rc != AIMDB_OK) {
        backend_free(b);
        return rc;
    }
    b->opts.uri = b->uri;
    b->opts.gateway = b->gateway;
    *out = (aimdb_backend){&postgres_ops, b};
    return AIMDB_OK;
}
