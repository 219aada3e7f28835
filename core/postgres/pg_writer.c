/*
 * pg_writer.c -- the one thread that writes a central node's history.
 *
 * It runs on the SQLite backend's row queue (sqlite_queue.h), so batching
 * follows the same rules: a commit when a batch fills or the oldest row
 * waited the flush interval, every waiting row up to half the queue under
 * load, retention chunks between batches.  A batch is BEGIN, one COPY,
 * COMMIT.
 *
 * Failures never lose rows while running: a broken connection or a server
 * that is down is logged (rate-limited), the connection dropped and made
 * again with backoff (50 ms doubling to 5 s) while the rows wait in the
 * queue.  A batch the server refuses for its data (a value jsonb does not
 * take, e.g. "\u0000") is halved until the offending row stands alone;
 * that row alone is dropped, counted in rows_failed and logged.  At
 * shutdown, after a grace of failures (sq_retry, the row queue's), the
 * remaining rows are given up (counted and logged).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* A connection with the schema in place, made if there is none. */
static int ensure_connection(pg_backend *b, char *why, size_t whylen) {
    if (b->wconn && !pg_connection_lost(b->wconn)) return AIMDB_OK;
    PQfinish(b->wconn);
    b->wconn = pg_connect(b->uri, why, whylen);
    if (!b->wconn) return AIMDB_EIO;
    char warning[1024];
    int rc = pg_schema_ensure(b->wconn, why, whylen, warning, sizeof(warning));
    if (rc == AIMDB_OK && *warning)
        aimdb_log(b->rt, AIMDB_LOG_WARNING, "history: %s: %s", b->where, warning);
    if (rc != AIMDB_OK) {
        PQfinish(b->wconn);
        b->wconn = NULL;
    }
    return rc;
}

static pg_row row_of(const sq_slot *s) {
    return (pg_row){.record = s->bytes, .record_len = s->name_len,
                    .json = s->bytes + s->name_len + 1, .json_len = s->json_len,
                    .stored_at = s->ts_ms, .source_id = -1,
                    .topic = s->has_source ? s->bytes + s->name_len + s->json_len + 2 : NULL,
                    .topic_len = s->source_len};
}

/* Commit the first n taken rows in one transaction.  *data_error: the
 * server refused the rows themselves (see pg_copy_run). */
static int commit_batch(pg_backend *b, uint32_t n, bool *data_error, char *why, size_t whylen) {
    *data_error = false;
    int rc = ensure_connection(b, why, whylen);
    if (rc != AIMDB_OK) return rc;
    int64_t started = aimdb_monotonic_us();
    b->copy.len = 0;
    for (uint32_t i = 0; rc == AIMDB_OK && i < n; i++) {
        pg_row row = row_of(sq_queue_taken(&b->queue, i));
        rc = pg_copy_add(&b->copy, b->gateway, &row);
    }
    if (rc != AIMDB_OK) {
        aimdb_errorf(why, whylen, "out of memory");
        return rc;
    }
    rc = pg_exec_sql(b->wconn, "BEGIN", why, whylen);
    if (rc == AIMDB_OK) rc = pg_copy_run(b->wconn, &b->copy, data_error, why, whylen);
    if (rc == AIMDB_OK) rc = pg_exec_sql(b->wconn, "COMMIT", why, whylen);
    if (rc != AIMDB_OK) {
        if (!pg_connection_lost(b->wconn)) PQclear(PQexec(b->wconn, "ROLLBACK"));
        return rc;
    }
    sq_writer_counts_committed(&b->counts, n, aimdb_monotonic_us() - started);
    return AIMDB_OK;
}

/* A refused batch is halved, with no backoff (the server is fine, one
 * row is not), until the row stands alone; every other failure is the
 * row queue's retry (sq_retry). */
static void batch_failed(pg_backend *b, sq_retry *r, uint32_t n, bool data_error,
                         const char *why) {
    if (!data_error) {
        sq_retry_failed(r, &b->queue, &b->counts, b->rt, b->where, n, why);
        return;
    }
    sq_writer_counts_failed(&b->counts);
    sq_queue_commit_failed(&b->queue);
    if (n > 1) {
        r->max_rows = n / 2;
        return;
    }
    /* This row alone is refused: it can never be written. */
    sq_queue_finish(&b->queue, 1, false);
    atomic_fetch_add_explicit(&b->counts.rows_failed, 1, memory_order_relaxed);
    aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: %s refused a row, dropped: %s", b->where, why);
    r->max_rows = 0;
}

/* ------------------------------------------------------------ retention */

/* The record name after $1 in byte order: one index seek. */
#define NEXT_NAME_SQL \
    "SELECT min(record_name) FROM record_history WHERE record_name > $1"

#define DELETE_CHUNK_SQL                                                           \
    "DELETE FROM record_history WHERE id IN (SELECT id FROM record_history "       \
    "WHERE record_name = $1 AND stored_at < $2 LIMIT $3)"

static int next_name(pg_backend *b, const char *after, char **name, char *why, size_t whylen) {
    const char *params[1] = {after ? after : ""};
    PGresult *r = PQexecParams(b->wconn, after ? NEXT_NAME_SQL
                                               : "SELECT min(record_name) FROM record_history",
                               after ? 1 : 0, NULL, params, NULL, NULL, 0);
    int rc = AIMDB_OK;
    char *next = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_why(b->wconn, r, why, whylen);
        rc = AIMDB_EIO;
    } else if (!PQgetisnull(r, 0, 0) && !(next = strdup(PQgetvalue(r, 0, 0)))) {
        rc = AIMDB_ENOMEM;
    }
    PQclear(r);
    free(*name);
    *name = next;
    return rc;
}

static int delete_chunk(pg_backend *b, const char *record, int64_t cutoff, int64_t *deleted,
                        char *why, size_t whylen) {
    char cut[24], chunk[16];
    snprintf(cut, sizeof(cut), "%lld", (long long)cutoff);
    snprintf(chunk, sizeof(chunk), "%d", PG_CLEANUP_CHUNK);
    const char *params[3] = {record, cut, chunk};
    PGresult *r = PQexecParams(b->wconn, DELETE_CHUNK_SQL, 3, NULL, params, NULL, NULL, 0);
    int rc = AIMDB_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pg_why(b->wconn, r, why, whylen);
        rc = AIMDB_EIO;
        *deleted = 0;
    } else {
        *deleted = strtoll(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    return rc;
}

static bool excepted(const sq_cleanup *c, const char *name) {
    for (size_t i = 0; i < c->n_except; i++)
        if (strcmp(c->except[i], name) == 0) return true;
    return false;
}

/* One chunk of c (its own transaction), then back to the queue. */
static void cleanup_step(pg_backend *b, sq_cleanup *c) {
    char why[512];
    int rc = ensure_connection(b, why, sizeof(why));
    if (rc == AIMDB_OK && !c->record && !c->started) rc = next_name(b, NULL, &c->current, why, sizeof(why));
    c->started = true;
    while (rc == AIMDB_OK && !c->record && c->current && excepted(c, c->current))
        rc = next_name(b, c->current, &c->current, why, sizeof(why));
    const char *target = c->record ? c->record : c->current;
    bool finished = rc != AIMDB_OK || !target;
    if (!finished) {
        int64_t n = 0;
        rc = delete_chunk(b, target, c->cutoff_ms, &n, why, sizeof(why));
        c->deleted += (uint64_t)n;
        if (rc != AIMDB_OK || (n < PG_CLEANUP_CHUNK && c->record)) {
            finished = true;
        } else if (n < PG_CLEANUP_CHUNK) {
            rc = next_name(b, c->current, &c->current, why, sizeof(why));
            finished = rc != AIMDB_OK || !c->current;
        }
    }
    if (rc != AIMDB_OK) {
        aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: retention delete in %s failed: %s",
                  b->where, why);
        c->rc = AIMDB_EIO;
    }
    if (finished) {
        free(c->current);
        c->current = NULL;
        sq_queue_cleanup_done(&b->queue, c);
    }
}

/* --------------------------------------------------------------- thread */

static void *writer_main(void *arg) {
    pg_backend *b = arg;
    sq_retry retry = {0};
    char why[512];
    for (;;) {
        uint32_t n = 0;
        sq_cleanup *c = NULL;
        sq_work w = sq_queue_next_work(&b->queue, retry.retry_at, retry.max_rows, 0, 0, &n,
                                       &c);
        if (w == SQ_WORK_EXIT) break;
        if (w == SQ_WORK_CLEANUP) {
            cleanup_step(b, c);
            continue;
        }
        if (w != SQ_WORK_ROWS) continue;
        bool data_error;
        if (commit_batch(b, n, &data_error, why, sizeof(why)) == AIMDB_OK)
            sq_retry_committed(&retry, &b->queue, b->rt, b->where, n);
        else
            batch_failed(b, &retry, n, data_error, why);
    }
    PQfinish(b->wconn);
    b->wconn = NULL;
    return NULL;
}

int pg_writer_start(pg_backend *b, char *err, size_t errlen) {
    if (b->rt->spawn(b->rt->self, "aimdb-pg-writer", AIMDB_THREAD_PIPELINE, writer_main, b,
                     &b->writer) != 0) {
        aimdb_errorf(err, errlen, "cannot start the history writer thread");
        return AIMDB_EIO;
    }
    return AIMDB_OK;
}

void pg_writer_stop(pg_backend *b) {
    if (!b->writer) return;
    sq_queue_close(&b->queue);
    b->rt->join(b->rt->self, b->writer);
    b->writer = NULL;
}
