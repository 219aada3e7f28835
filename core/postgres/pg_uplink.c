/*
 * pg_uplink.c -- store and forward: one thread copies every row of the
 * gateway's local SQLite history to PostgreSQL (see postgres.h).
 *
 * Why it reads the SQLite file rather than taking rows from the writer:
 * the file is the store.  Whatever happened meanwhile -- an outage of a
 * day, a gateway restart, a SIGKILL -- the rows not yet shipped are exactly
 * the local rows above max(source_id) of this gateway in PostgreSQL, which
 * is read back on every connect, so no bookkeeping of ours can drift from
 * what is really there.  Local ids are SQLite's AUTOINCREMENT rowids given
 * by the one writer thread, so id order is commit order.
 *
 * Each batch (up to batch_rows rows in id order) is BEGIN, COPY, COMMIT:
 * either all of it is in PostgreSQL or none, and UNIQUE (gateway,
 * source_id) refuses a second copy should two processes ever ship for one
 * gateway name.  A COMMIT whose answer was lost is the one ambiguous case,
 * and the next connect's max(source_id) settles it.
 *
 * The broker and the local writer never wait for any of this: the thread
 * has its own read-only SQLite connection (WAL: readers never block the
 * writer) and its own PostgreSQL connection.
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_internal.h"

#define DEFAULT_BATCH_ROWS 10000u
#define DEFAULT_POLL_MS 100u
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 30000
#define ERROR_LOG_INTERVAL_MS 10000
/* An idle uplink reopens the local file this often: the SQLite backend
 * may have moved a damaged file aside or reopened a replaced one, and a
 * connection keeps reading the file it opened. */
#define REOPEN_IDLE_MS 1000

#define RESUME_SQL "SELECT max(source_id) FROM record_history WHERE gateway = $1"
#define LOCAL_ROWS_SQL                                                             \
    "SELECT id, record_name, value_json, stored_at, topic FROM record_history "    \
    "WHERE id > ?1 ORDER BY id LIMIT ?2"
#define LOCAL_MAX_SQL "SELECT max(id) FROM record_history"
#define LOCAL_OLDEST_SQL "SELECT stored_at FROM record_history WHERE id > ?1 ORDER BY id LIMIT 1"

struct aimdb_uplink {
    const aimdb_runtime *rt;
    char *uri, *gateway, *sqlite_path;
    char where[256];
    unsigned batch_rows, poll_ms;
    aimdb_thread *thread;

    /* Thread only. */
    PGconn *conn;
    sqlite3 *local;
    sqlite3_stmt *rows, *max_id, *oldest;
    int64_t local_opened_ms; /* monotonic */
    aimdb_log_limit behind_log;
    pg_copy_buf copy;
    int64_t backoff_ms;
    bool first_batch_unchecked; /* PostgreSQL had no row of ours: no gap to count */
    aimdb_log_limit error_log;

    /* Guarded by lock: stopping, the cancel handle, the state for stats. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    PGcancel *cancel;
    aimdb_uplink_state state;
    char why[256];

    _Atomic int64_t shipped_id;
    _Atomic uint64_t shipped, errors, lost, lag_rows;
    _Atomic int64_t lag_ms;
};

const char *aimdb_uplink_state_name(aimdb_uplink_state s) {
    switch (s) {
    case AIMDB_UPLINK_CONNECTED: return "connected";
    case AIMDB_UPLINK_RETRYING: return "retrying";
    case AIMDB_UPLINK_CONNECTING: break;
    }
    return "connecting";
}

int64_t aimdb_uplink_shipped_id(void *uplink) {
    aimdb_uplink *u = uplink;
    return atomic_load(&u->shipped_id);
}

static bool stopping(aimdb_uplink *u) {
    pthread_mutex_lock(&u->lock);
    bool s = u->stopping;
    pthread_mutex_unlock(&u->lock);
    return s;
}

/* Sleep up to ms, returning early when stopping. */
static void pause_ms(aimdb_uplink *u, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += ms / 1000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&u->lock);
    if (!u->stopping) pthread_cond_timedwait(&u->wake, &u->lock, &ts);
    pthread_mutex_unlock(&u->lock);
}

/* Copy text into a fixed field, cut to fit (a reason need not be whole). */
static void copy_cut(char *out, size_t cap, const char *text) {
    size_t n = strlen(text);
    if (n >= cap) n = cap - 1;
    memcpy(out, text, n);
    out[n] = '\0';
}

static void set_state(aimdb_uplink *u, aimdb_uplink_state s, const char *why) {
    pthread_mutex_lock(&u->lock);
    u->state = s;
    copy_cut(u->why, sizeof(u->why), why ? why : "");
    pthread_mutex_unlock(&u->lock);
}

static void disconnect(aimdb_uplink *u) {
    pthread_mutex_lock(&u->lock);
    PQfreeCancel(u->cancel);
    u->cancel = NULL;
    pthread_mutex_unlock(&u->lock);
    PQfinish(u->conn);
    u->conn = NULL;
}

static void note_lag(aimdb_uplink *u);

/* A failure: counted, logged (rate-limited), connection dropped, backoff. */
static void failed(aimdb_uplink *u, const char *what, const char *why) {
    atomic_fetch_add(&u->errors, 1);
    note_lag(u); /* the lag grows while nothing ships */
    char line[512];
    snprintf(line, sizeof(line), "%s: %s", what, why);
    set_state(u, AIMDB_UPLINK_RETRYING, line);
    uint64_t held;
    u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : RETRY_MIN_MS;
    if (u->backoff_ms > RETRY_MAX_MS) u->backoff_ms = RETRY_MAX_MS;
    if (!stopping(u) &&
        aimdb_log_limit_pass(&u->error_log, aimdb_monotonic_ms(), ERROR_LOG_INTERVAL_MS, &held))
        aimdb_log(u->rt, AIMDB_LOG_ERROR,
                  "uplink to %s: %s; retrying in %lld ms (%" PRIu64 " similar not logged)",
                  u->where, line, (long long)u->backoff_ms, held);
    disconnect(u);
    pause_ms(u, u->backoff_ms);
}

/* --------------------------------------------------------------- local */

static void close_local(aimdb_uplink *u) {
    sqlite3_finalize(u->rows);
    sqlite3_finalize(u->max_id);
    sqlite3_finalize(u->oldest);
    sqlite3_close(u->local);
    u->rows = u->max_id = u->oldest = NULL;
    u->local = NULL;
}

static int open_local(aimdb_uplink *u, char *why, size_t whylen) {
    if (u->local) return AIMDB_OK;
    int rc = sqlite3_open_v2(u->sqlite_path, &u->local,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(u->local, 1000);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(u->local, LOCAL_ROWS_SQL, -1, &u->rows, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(u->local, LOCAL_MAX_SQL, -1, &u->max_id, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(u->local, LOCAL_OLDEST_SQL, -1, &u->oldest, NULL);
    u->local_opened_ms = aimdb_monotonic_ms();
    if (rc == SQLITE_OK) return AIMDB_OK;
    aimdb_errorf(why, whylen, "reading %s: %s", u->sqlite_path,
              u->local ? sqlite3_errmsg(u->local) : sqlite3_errstr(rc));
    close_local(u);
    return AIMDB_EIO;
}

static int64_t local_max_id(aimdb_uplink *u) {
    int64_t v = 0;
    if (sqlite3_step(u->max_id) == SQLITE_ROW) v = sqlite3_column_int64(u->max_id, 0);
    sqlite3_reset(u->max_id);
    return v;
}

/* Read the next rows after `after` into the COPY buffer; *n rows, their
 * first and last id and the oldest stored_at.  SQLite errors: AIMDB_EIO. */
typedef struct local_batch {
    uint32_t n;
    int64_t first_id, last_id;
} local_batch;

static int read_batch(aimdb_uplink *u, int64_t after, uint32_t max, local_batch *out,
                      char *why, size_t whylen) {
    *out = (local_batch){0};
    u->copy.len = 0;
    sqlite3_bind_int64(u->rows, 1, after);
    sqlite3_bind_int64(u->rows, 2, max);
    int rc;
    while ((rc = sqlite3_step(u->rows)) == SQLITE_ROW) {
        const char *topic = (const char *)sqlite3_column_text(u->rows, 4);
        pg_row row = {
            .record = (const char *)sqlite3_column_text(u->rows, 1),
            .record_len = (size_t)sqlite3_column_bytes(u->rows, 1),
            .json = (const char *)sqlite3_column_text(u->rows, 2),
            .json_len = (size_t)sqlite3_column_bytes(u->rows, 2),
            .stored_at = sqlite3_column_int64(u->rows, 3),
            .source_id = sqlite3_column_int64(u->rows, 0),
            .topic = topic,
            .topic_len = topic ? (size_t)sqlite3_column_bytes(u->rows, 4) : 0,
        };
        if (!row.record || !row.json) continue; /* NOT NULL columns: another tool's row */
        if (pg_copy_add(&u->copy, u->gateway, &row) != AIMDB_OK) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (out->n++ == 0) out->first_id = row.source_id;
        out->last_id = row.source_id;
    }
    if (rc != SQLITE_DONE) aimdb_errorf(why, whylen, "reading %s: %s", u->sqlite_path,
                                     rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(u->local));
    sqlite3_reset(u->rows);
    return rc == SQLITE_DONE ? AIMDB_OK : AIMDB_EIO;
}

/* ------------------------------------------------------------ connect */

static int read_resume(aimdb_uplink *u, char *why, size_t whylen) {
    const char *params[1] = {u->gateway};
    PGresult *r = PQexecParams(u->conn, RESUME_SQL, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_why(u->conn, r, why, whylen);
        PQclear(r);
        return AIMDB_EIO;
    }
    bool none = PQgetisnull(r, 0, 0);
    int64_t resume = none ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    u->first_batch_unchecked = none;
    atomic_store(&u->shipped_id, resume);
    if (none)
        aimdb_log(u->rt, AIMDB_LOG_INFO,
                  "uplink to %s: connected as gateway '%s', no rows of it there yet: shipping "
                  "all local history",
                  u->where, u->gateway);
    else
        aimdb_log(u->rt, AIMDB_LOG_INFO,
                  "uplink to %s: connected as gateway '%s', resuming after local row %" PRId64,
                  u->where, u->gateway, resume);
    return AIMDB_OK;
}

static int connect_server(aimdb_uplink *u, char *why, size_t whylen) {
    u->conn = pg_connect(u->uri, why, whylen);
    if (!u->conn) return AIMDB_EIO;
    char warning[1024];
    int rc = pg_schema_ensure(u->conn, why, whylen, warning, sizeof(warning));
    if (rc == AIMDB_OK && *warning)
        aimdb_log(u->rt, AIMDB_LOG_WARNING, "uplink to %s: %s", u->where, warning);
    if (rc == AIMDB_OK) rc = read_resume(u, why, whylen);
    if (rc != AIMDB_OK) return rc;
    pthread_mutex_lock(&u->lock);
    u->cancel = PQgetCancel(u->conn);
    pthread_mutex_unlock(&u->lock);
    set_state(u, AIMDB_UPLINK_CONNECTED, NULL);
    return AIMDB_OK;
}

/* --------------------------------------------------------------- ship */

/* Rows above the shipped id, and how old the first of them is.  Before
 * the first connect every local row counts: nothing is known shipped. */
static void note_lag(aimdb_uplink *u) {
    if (!u->local) return;
    int64_t max_id = local_max_id(u), shipped = atomic_load(&u->shipped_id);
    int64_t oldest = 0;
    sqlite3_bind_int64(u->oldest, 1, shipped);
    if (sqlite3_step(u->oldest) == SQLITE_ROW) oldest = sqlite3_column_int64(u->oldest, 0);
    sqlite3_reset(u->oldest);
    atomic_store(&u->lag_rows, (uint64_t)(max_id > shipped ? max_id - shipped : 0));
    uint64_t held;
    if (max_id > 0 && max_id < shipped &&
        aimdb_log_limit_pass(&u->behind_log, aimdb_monotonic_ms(), 600000, &held))
        aimdb_log(u->rt, AIMDB_LOG_ERROR,
                  "uplink to %s: local history %s ends at row %" PRId64 ", below the %" PRId64
                  " already shipped (a restored backup, or a new file after one found damaged "
                  "at start): the rows it holds are taken as shipped; rows written from now on "
                  "get ids after %" PRId64 " and ship",
                  u->where, u->sqlite_path, max_id, shipped, shipped);
    int64_t now = u->rt->now_ms(u->rt->self);
    atomic_store(&u->lag_ms, oldest && now > oldest ? now - oldest : 0);
}

/* Rows that vanished locally between the resume point and the next row. */
static void count_gap(aimdb_uplink *u, const local_batch *b) {
    int64_t shipped = atomic_load(&u->shipped_id);
    bool unchecked = u->first_batch_unchecked;
    u->first_batch_unchecked = false;
    if (unchecked || b->first_id <= shipped + 1) return;
    int64_t gap = b->first_id - shipped - 1;
    atomic_fetch_add(&u->lost, (uint64_t)gap);
    aimdb_log(u->rt, AIMDB_LOG_ERROR,
              "uplink to %s: %" PRId64 " local rows (ids %" PRId64 "-%" PRId64
              ") were deleted before they were shipped (held past their retention for uplink_hold, "
              "or deleted by something else); counted in uplink/lost",
              u->where, gap, shipped + 1, b->first_id - 1);
}

/* One batch; AIMDB_OK also when there was nothing to ship (*idle).  On
 * failure *local says the local file failed, *data_error that the server
 * refused the rows themselves. */
static int ship_batch(aimdb_uplink *u, uint32_t max, bool *idle, bool *local, bool *data_error,
                      char *why, size_t whylen) {
    local_batch lb;
    *idle = *data_error = false;
    int rc = read_batch(u, atomic_load(&u->shipped_id), max, &lb, why, whylen);
    *local = rc != AIMDB_OK;
    if (rc != AIMDB_OK) return rc;
    if (lb.n == 0) {
        *idle = true;
        note_lag(u);
        return AIMDB_OK;
    }
    rc = pg_exec_sql(u->conn, "BEGIN", why, whylen);
    if (rc == AIMDB_OK) rc = pg_copy_run(u->conn, &u->copy, data_error, why, whylen);
    if (rc == AIMDB_OK) rc = pg_exec_sql(u->conn, "COMMIT", why, whylen);
    if (rc != AIMDB_OK) {
        if (!pg_connection_lost(u->conn)) PQclear(PQexec(u->conn, "ROLLBACK"));
        /* A single row the server refuses can never ship: skip it. */
        if (*data_error && lb.n == 1) {
            count_gap(u, &lb);
            atomic_store(&u->shipped_id, lb.last_id);
            atomic_fetch_add(&u->lost, 1);
            aimdb_log(u->rt, AIMDB_LOG_ERROR,
                      "uplink to %s: local row %" PRId64 " refused (%s); skipped, counted "
                      "in uplink/lost",
                      u->where, lb.last_id, why);
            return AIMDB_OK;
        }
        return rc;
    }
    count_gap(u, &lb);
    atomic_store(&u->shipped_id, lb.last_id);
    atomic_fetch_add(&u->shipped, lb.n);
    note_lag(u);
    return AIMDB_OK;
}

static void *uplink_main(void *arg) {
    aimdb_uplink *u = arg;
    char why[512];
    uint32_t max = u->batch_rows;
    while (!stopping(u)) {
        if (open_local(u, why, sizeof(why)) != AIMDB_OK) {
            failed(u, "local history", why);
            continue;
        }
        if (!u->conn && connect_server(u, why, sizeof(why)) != AIMDB_OK) {
            failed(u, "connecting", why);
            continue;
        }
        bool idle, local, data_error;
        if (ship_batch(u, max, &idle, &local, &data_error, why, sizeof(why)) != AIMDB_OK) {
            if (data_error) { /* halve until the refused row stands alone */
                max = max > 1 ? max / 2 : 1;
                continue;
            }
            if (local) close_local(u); /* reopened next: the file may have been replaced */
            failed(u, local ? "local history" : "shipping", why);
            continue;
        }
        u->backoff_ms = 0;
        max = u->batch_rows;
        if (!idle) continue;
        if (aimdb_monotonic_ms() - u->local_opened_ms >= REOPEN_IDLE_MS) close_local(u);
        pause_ms(u, u->poll_ms);
    }
    disconnect(u);
    close_local(u);
    return NULL;
}

/* ----------------------------------------------------------- lifecycle */

int aimdb_uplink_new(const aimdb_uplink_options *opts, aimdb_uplink **out, char *err,
                     size_t errlen) {
    *out = NULL;
    if (!opts || !opts->uri || !opts->gateway || !*opts->gateway || !opts->sqlite_path) {
        aimdb_errorf(err, errlen, "uplink: a URI, a gateway name and the local history file are "
                               "required");
        return AIMDB_EINVAL;
    }
    if (strcmp(opts->sqlite_path, ":memory:") == 0) {
        aimdb_errorf(err, errlen, "uplink: needs a history file (database is :memory:)");
        return AIMDB_EINVAL;
    }
    char why[256];
    if (aimdb_postgres_uri_check(opts->uri, why, sizeof(why)) != AIMDB_OK) {
        aimdb_errorf(err, errlen, "uplink: bad PostgreSQL URI: %s", why);
        return AIMDB_EINVAL;
    }
    aimdb_uplink *u = calloc(1, sizeof(*u));
    if (!u) return AIMDB_ENOMEM;
    u->rt = opts->runtime ? opts->runtime : aimdb_runtime_pthread();
    u->uri = strdup(opts->uri);
    u->gateway = strdup(opts->gateway);
    u->sqlite_path = strdup(opts->sqlite_path);
    u->batch_rows = opts->batch_rows ? opts->batch_rows : DEFAULT_BATCH_ROWS;
    u->poll_ms = opts->poll_ms ? opts->poll_ms : DEFAULT_POLL_MS;
    aimdb_postgres_describe(opts->uri, u->where, sizeof(u->where));
    pthread_mutex_init(&u->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&u->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (!u->uri || !u->gateway || !u->sqlite_path) {
        aimdb_uplink_free(u);
        aimdb_errorf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    *out = u;
    return AIMDB_OK;
}

int aimdb_uplink_start(aimdb_uplink *u) {
    if (u->thread) return AIMDB_ESTATE;
    return u->rt->spawn(u->rt->self, "aimdb-uplink", AIMDB_THREAD_PIPELINE, uplink_main, u,
                        &u->thread) == 0
               ? AIMDB_OK
               : AIMDB_EIO;
}

void aimdb_uplink_free(aimdb_uplink *u) {
    if (!u) return;
    if (u->thread) {
        pthread_mutex_lock(&u->lock);
        u->stopping = true;
        pthread_cond_broadcast(&u->wake);
        char buf[64];
        if (u->cancel) PQcancel(u->cancel, buf, sizeof(buf));
        pthread_mutex_unlock(&u->lock);
        u->rt->join(u->rt->self, u->thread);
    }
    pthread_cond_destroy(&u->wake);
    pthread_mutex_destroy(&u->lock);
    free(u->copy.data);
    free(u->uri);
    free(u->gateway);
    free(u->sqlite_path);
    free(u);
}

void aimdb_uplink_stats_get(aimdb_uplink *u, aimdb_uplink_stats *out) {
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&u->lock);
    out->state = u->state;
    copy_cut(out->why, sizeof(out->why), u->why);
    pthread_mutex_unlock(&u->lock);
    out->shipped = atomic_load(&u->shipped);
    out->errors = atomic_load(&u->errors);
    out->lost = atomic_load(&u->lost);
    out->lag_rows = atomic_load(&u->lag_rows);
    out->lag_ms = atomic_load(&u->lag_ms);
    out->shipped_id = atomic_load(&u->shipped_id);
}
