/*
 * postgres.h -- fleet history in PostgreSQL: a history backend for a
 * central node, and the uplink that copies a gateway's local SQLite
 * history there (store and forward).  Both use one table:
 *
 *   record_history(id BIGSERIAL PRIMARY KEY, gateway TEXT NOT NULL,
 *                  record_name TEXT NOT NULL, value_json JSONB NOT NULL,
 *                  stored_at BIGINT NOT NULL,   -- Unix ms
 *                  source_id BIGINT,            -- the gateway's local row id
 *                  topic TEXT,                  -- the MQTT topic (access control)
 *                  UNIQUE (gateway, source_id))
 *   idx_record_time ON (record_name, stored_at DESC)
 *   idx_record_gateway_time ON (record_name, gateway, stored_at DESC, id DESC)
 *
 * created if missing (record_name and gateway COLLATE "C", so a name
 * prefix is an index range).  A table whose columns mean something else
 * (another type, another collation, no unique (gateway, source_id)) is
 * refused with a message that says which column and what it should be.
 *
 * Connections take a libpq URI or key=value string as is: passwords,
 * TLS (sslmode=...), PGPASSFILE and the PG* environment are libpq's
 * business; nothing here parses or logs a password (logs name the server
 * as user@host:port/dbname).
 */
#ifndef AIMDB_POSTGRES_H
#define AIMDB_POSTGRES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/persist.h"
#include "aimdb/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Does text name a PostgreSQL database ("postgresql://" or "postgres://")? */
bool aimdb_postgres_is_uri(const char *text);
/* Is uri something libpq can connect with?  AIMDB_EINVAL with libpq's
 * reason in why otherwise.  Pure parsing, no connection; any thread. */
int aimdb_postgres_uri_check(const char *uri, char *why, size_t whylen);
/* The server as logs may name it: "user@host:port/dbname", never a
 * password; false (out "?") if libpq cannot parse uri.  Any thread. */
bool aimdb_postgres_describe(const char *uri, char *out, size_t cap);

/* ------------------------------------------------------------ backend */

/* Defaults: the SQLite backend's queue and batching (a COPY costs one
 * round trip whatever its size, so batches grow under load the same way). */
#define AIMDB_POSTGRES_DEFAULT_QUEUE_ROWS 131072u
#define AIMDB_POSTGRES_DEFAULT_BATCH_ROWS 4096u
#define AIMDB_POSTGRES_DEFAULT_FLUSH_MS 100u

typedef struct aimdb_postgres_options {
    const char *uri;              /* required */
    const char *gateway;          /* the gateway column of rows stored here; required */
    unsigned queue_rows;          /* bounded queue; 0 = default */
    size_t queue_bytes;           /* ... and in bytes of rows, as for SQLite; 0 = rows only */
    unsigned batch_rows;          /* commit when this many wait; 0 = default */
    unsigned flush_interval_ms;   /* ... or when the oldest waited this long; 0 = default */
    const aimdb_runtime *runtime; /* NULL = aimdb_runtime_pthread() */
} aimdb_postgres_options;

/*
 * Connect, create or check the schema, start the writer thread.  A server
 * that cannot be reached is not an error here: it is logged and the writer
 * retries with backoff while rows queue (store() waits once the queue is
 * full; close gives up on rows it could not commit within 5 s, counted in
 * rows_failed).  Errors: AIMDB_EINVAL (options, a URI libpq refuses, a
 * table whose columns mean something else, a refused login), AIMDB_ENOMEM;
 * err says why.  The backend is handed to aimdb_persist_attach or closed
 * with ops->close.  Queries take a gateway pattern and return each row's
 * gateway (aimdb_query_params.gateway, aimdb_history_row.gateway).
 */
int aimdb_postgres_open(const aimdb_postgres_options *opts, aimdb_backend *out, char *err,
                        size_t errlen);

/* ------------------------------------------------------------- uplink */

/*
 * The uplink: one thread that copies every row of a local SQLite history
 * file to PostgreSQL, in local id order (= commit order), each exactly
 * once: the resume point is max(source_id) of this gateway, read back from
 * PostgreSQL on every connect, each batch is one transaction, and UNIQUE
 * (gateway, source_id) refuses a row shipped twice.  Server down, login
 * refused, network gone: logged with libpq's reason and retried with
 * backoff (100 ms doubling to 30 s); nothing local waits for it.
 *
 * Local retention must not delete rows not yet shipped: the SQLite backend
 * asks aimdb_uplink_shipped_id (aimdb_sqlite_options.hold) and keeps rows
 * above it past their retention for up to hold_ms more.  Rows that
 * disappear before they were shipped anyway (past that bound, or deleted
 * by anything else) are counted in `lost` and logged.
 */
typedef struct aimdb_uplink aimdb_uplink;

typedef struct aimdb_uplink_options {
    const char *uri;              /* required */
    const char *gateway;          /* required: this gateway's name in the table */
    const char *sqlite_path;      /* the local history file (not :memory:) */
    unsigned batch_rows;          /* rows per transaction; 0 = 10000 */
    unsigned poll_ms;             /* how often new local rows are looked for; 0 = 100 */
    const aimdb_runtime *runtime; /* NULL = aimdb_runtime_pthread() */
} aimdb_uplink_options;

/* Check the options and create the uplink; the thread starts with
 * aimdb_uplink_start, so the local database can be opened in between.
 * AIMDB_EINVAL (err says why), AIMDB_ENOMEM. */
int aimdb_uplink_new(const aimdb_uplink_options *opts, aimdb_uplink **out, char *err,
                     size_t errlen);
int aimdb_uplink_start(aimdb_uplink *u);
/* Stop the thread (an operation in flight is cancelled) and free; NULL ok. */
void aimdb_uplink_free(aimdb_uplink *u);

/* The highest local id known to be in PostgreSQL (0 until the first
 * connect says).  Any thread; for the SQLite backend's retention hold. */
int64_t aimdb_uplink_shipped_id(void *uplink);

typedef enum aimdb_uplink_state {
    AIMDB_UPLINK_CONNECTING, /* not connected yet */
    AIMDB_UPLINK_CONNECTED,
    AIMDB_UPLINK_RETRYING    /* the last attempt failed; why says why */
} aimdb_uplink_state;

typedef struct aimdb_uplink_stats {
    aimdb_uplink_state state;
    char why[256];          /* the last failure, "" if none */
    uint64_t shipped;       /* rows committed to PostgreSQL by this process */
    uint64_t errors;        /* failed connects and batches */
    uint64_t lost;          /* rows deleted locally before they were shipped */
    uint64_t lag_rows;      /* local rows not yet shipped */
    int64_t lag_ms;         /* age (stored_at) of the oldest of them; 0 if none */
    int64_t shipped_id;     /* as aimdb_uplink_shipped_id */
} aimdb_uplink_stats;

void aimdb_uplink_stats_get(aimdb_uplink *u, aimdb_uplink_stats *out);
const char *aimdb_uplink_state_name(aimdb_uplink_state s); /* "connected", ... */

#ifdef __cplusplus
}
#endif
#endif
