/*
 * pg_internal.h -- the parts of the PostgreSQL backend and uplink, and the
 * SQL they share.
 *
 *   pg_conn.c     connecting (libpq's URI as is, our defaults under it),
 *                 the schema (created or checked), COPY of a batch of rows
 *   pg_backend.c  the aimdb_backend vtable and open
 *   pg_writer.c   the writer thread: batches from the row queue, retries,
 *                 reconnects, retention chunks
 *   pg_reader.c   history queries on their own connection
 *   pg_aggregate.c  aggregates computed by the server, on that connection
 *   pg_uplink.c   the store-and-forward thread (local SQLite -> PostgreSQL)
 */
#ifndef AIMDB_PG_INTERNAL_H
#define AIMDB_PG_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "aimdb/postgres.h"
#include "sqlite_queue.h"

/* ------------------------------------------------------------------ SQL */

/* docs/schema.md's table, with two additions of ours: `topic` (per-value
 * access control, as in SQLite) and idx_record_gateway_time, which gives
 * one record on one gateway newest first (PG_PAIR_ROWS_SQL).  COLLATE "C":
 * byte order, so a literal name prefix is an index range, as in SQLite.
 * The advisory lock makes concurrent first connects (two gateways, or
 * the writer and the reader) create the table once.
 *
 * A connect to a database that has all of it takes no lock on
 * record_history: what is there is looked up in the catalogs first.  ALTER
 * TABLE ... ADD COLUMN IF NOT EXISTS takes ACCESS EXCLUSIVE even when the
 * column exists, and CREATE INDEX IF NOT EXISTS takes SHARE before it
 * looks; each waited for any open read (a Grafana panel's) or write, and
 * while it waited every other reader and writer of the fleet queued
 * behind it.  CREATE TABLE IF NOT EXISTS, likewise, asks for CREATE on the
 * schema before it looks, which a gateway's own role has not (PostgreSQL 15
 * took it from PUBLIC on schema public): such a role connects to a schema
 * its owner made, needing only the rights pg_schema_ensure checks. */
#define PG_ADD_INDEX(name, columns)                                                \
    "IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid " \
    "WHERE i.indrelid = 'record_history'::regclass AND c.relname = '" name "') THEN " \
    PG_REFUSE_TAKEN_NAME(name)                                                     \
    "CREATE INDEX " name " ON record_history" columns "; END IF; "
/* An index name is unique in its schema, not per table: a record_history
 * renamed aside (record_history_2025) keeps idx_record_time, and the new
 * table's CREATE INDEX would fail on "already exists".  Said plainly
 * instead, like a table of another shape (pg_conn.c): refusing the connect
 * beats running on, unindexed, with every query a scan. */
#define PG_REFUSE_TAKEN_NAME(name)                                                 \
    "IF EXISTS (SELECT 1 FROM pg_class WHERE relname = '" name "' AND relnamespace = " \
    "(SELECT relnamespace FROM pg_class WHERE oid = 'record_history'::regclass)) THEN " \
    "RAISE EXCEPTION 'the name " name " is taken by %, so record_history cannot have "  \
    "its index; rename that (ALTER INDEX ... RENAME TO ...)', coalesce((SELECT "       \
    "'an index of table ' || i.indrelid::regclass FROM pg_index i JOIN pg_class c "    \
    "ON c.oid = i.indexrelid WHERE c.relname = '" name "' AND c.relnamespace = "       \
    "(SELECT relnamespace FROM pg_class WHERE oid = 'record_history'::regclass)), "    \
    "'a relation that is not an index'); END IF; "
#define PG_SCHEMA_SQL                                                              \
    "SELECT pg_advisory_xact_lock(7240513);"                                        \
    "DO $aimdb$ BEGIN "                                                            \
    "IF to_regclass('record_history') IS NULL THEN "                               \
    "CREATE TABLE record_history("                                                 \
    "id BIGSERIAL PRIMARY KEY, gateway TEXT COLLATE \"C\" NOT NULL, "              \
    "record_name TEXT COLLATE \"C\" NOT NULL, value_json JSONB NOT NULL, "         \
    "stored_at BIGINT NOT NULL, source_id BIGINT, topic TEXT, "                    \
    "UNIQUE (gateway, source_id)); END IF; "                                       \
    "IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'record_history'::regclass " \
    "AND attname = 'topic' AND NOT attisdropped) THEN "                            \
    "ALTER TABLE record_history ADD COLUMN topic TEXT; END IF; "                   \
    PG_ADD_INDEX("idx_record_time", "(record_name, stored_at DESC)")               \
    PG_ADD_INDEX("idx_record_gateway_time", "(record_name, gateway, stored_at DESC, id DESC)") \
    "END $aimdb$;"                                                                 \
    PG_LATEST_SQL

/* record_latest: the newest row of every (record, gateway) -- its id,
 * time, value and topic -- so latest-1 of a fleet is one index range of a
 * table with a row per pair, where deriving it from record_history costs
 * two index seeks per pair (and joining the id back, one more); and every
 * other query's list of the pairs it reads (pg_reader.c).
 *
 * What keeps it exact: statement triggers on record_history, so every
 * writer -- the backend's COPY, the uplink's, an older AimDB, psql --
 * updates it in its own transaction.  INSERT keeps the max (stored_at,
 * id) per pair.  DELETE and UPDATE re-derive each pair whose newest row
 * went (the pair's entry dropped when no row is left); TRUNCATE empties
 * it.  Races: the INSERT side locks the entry even when its rows are
 * older (DO UPDATE without WHERE), and the DELETE side locks the entries
 * first and re-derives in a later statement (a fresh snapshot under READ
 * COMMITTED), so an insert that committed before the lock is seen and one
 * after it compares against the re-derived row.  Rebuilt (table, triggers,
 * then a backfill from record_history) whenever one of the four triggers
 * is missing or disabled -- a table made before them, or record_history
 * dropped and made anew: CREATE TRIGGER blocks writes to record_history
 * until the transaction commits, so the backfill misses no row.
 *
 * The triggers are ordinary (ENABLE: they fire while session_replication_role
 * is origin or local), not ENABLE ALWAYS, which would buy nothing and cost
 * a broken subscription.  Logical replication's apply fires no INSERT,
 * UPDATE or DELETE statement trigger (PostgreSQL's "Logical Replication,
 * Architecture"), so a subscriber has to take record_latest from its
 * publisher, as a publication FOR ALL TABLES does; and a table sync, which
 * under ALWAYS does fire the INSERT trigger, would derive entries that the
 * publisher's own rows of record_latest, when synced after it, collide
 * with.  Rows that reach record_history with the triggers off some other
 * way (a data-only restore with --disable-triggers, a load by a session as
 * a replica) are brought in by aimdb_record_latest_rebuild(), the backfill
 * below, which an operator calls (docs/schema.md). */
/* Column col of the newer of the stored entry and the batch's row. */
#define PG_LATEST_KEEP(col)                                                        \
    col " = CASE WHEN (excluded.stored_at, excluded.id) > (l.stored_at, l.id) "    \
        "THEN excluded." col " ELSE l." col " END"
/* The triggers' function.  The INSERT side takes each pair's newest row
 * of the statement's rows by a hash aggregate of max(stored_at) and a
 * join back, so only the rows of that millisecond are sorted (for their
 * id): sorting every row of a batch, values and all, was two thirds of
 * what the triggers cost a COPY (perf of bench_postgres).  EXECUTE plans
 * it for each statement's rows: a plan kept from a one-row statement
 * would join a 10,000-row batch by nested loop. */
#define PG_LATEST_FUNCTION_BODY                                                    \
    " BEGIN "                                                                      \
    "IF TG_OP = 'TRUNCATE' THEN DELETE FROM record_latest; RETURN NULL; END IF; "  \
    "IF TG_OP <> 'INSERT' THEN "                                                   \
    "PERFORM 1 FROM record_latest l WHERE l.id IN (SELECT id FROM old_rows) "      \
    "ORDER BY l.record_name, l.gateway FOR UPDATE; "                               \
    "DELETE FROM record_latest l WHERE l.id IN (SELECT id FROM old_rows) AND NOT EXISTS (" \
    "SELECT 1 FROM record_history h WHERE h.record_name = l.record_name "          \
    "AND h.gateway = l.gateway); "                                                 \
    "UPDATE record_latest l SET (id, stored_at, value_json, topic) = ("           \
    "SELECT h.id, h.stored_at, h.value_json, h.topic "                             \
    "FROM record_history h WHERE h.record_name = l.record_name AND h.gateway = l.gateway " \
    "ORDER BY h.stored_at DESC, h.id DESC LIMIT 1) "                               \
    "WHERE l.id IN (SELECT id FROM old_rows); "                                    \
    "END IF; "                                                                     \
    "IF TG_OP <> 'DELETE' THEN EXECUTE $q$"                                        \
    "INSERT INTO record_latest AS l SELECT DISTINCT ON (n.record_name, n.gateway) " \
    "n.record_name, n.gateway, n.id, n.stored_at, n.value_json, n.topic FROM new_rows n " \
    "JOIN (SELECT record_name, gateway, max(stored_at) AS stored_at FROM new_rows " \
    "GROUP BY record_name, gateway) m ON m.record_name = n.record_name "           \
    "AND m.gateway = n.gateway AND m.stored_at = n.stored_at "                     \
    "ORDER BY n.record_name, n.gateway, n.id DESC "                                \
    "ON CONFLICT (record_name, gateway) DO UPDATE SET "                            \
    PG_LATEST_KEEP("id") ", " PG_LATEST_KEEP("stored_at") ", "                     \
    PG_LATEST_KEEP("value_json") ", " PG_LATEST_KEEP("topic") "$q$; "              \
    "END IF; RETURN NULL; END "
/* record_latest made anew from record_history, in the caller's
 * transaction; returns the pairs it holds.  SHARE ROW EXCLUSIVE blocks
 * writers to record_history until that transaction ends, so no row
 * committed meanwhile is missed, and a second rebuild (which under SHARE
 * would insert what the first one did and fail on the primary key);
 * readers go on reading the old entries until then (DELETE, not
 * TRUNCATE, which would lock them out). */
#define PG_LATEST_REBUILD_BODY                                                     \
    " DECLARE pairs bigint; BEGIN "                                                \
    "LOCK TABLE record_history IN SHARE ROW EXCLUSIVE MODE; DELETE FROM record_latest; " \
    "INSERT INTO record_latest SELECT DISTINCT ON (record_name, gateway) "         \
    "record_name, gateway, id, stored_at, value_json, topic FROM record_history "  \
    "ORDER BY record_name, gateway, stored_at DESC, id DESC; "                     \
    "GET DIAGNOSTICS pairs = ROW_COUNT; RETURN pairs; END "
/* Is function `name`'s text other than body (a database another AimDB
 * version set up, or no such function yet)? */
#define PG_FUNCTION_STALE(name, body)                                              \
    "(SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure('" name "()')) "      \
    "IS DISTINCT FROM $f$" body "$f$"
/* Replaces function `name` (declared as `decl`) when stale and the role
 * may: it owns the function, or may create one where there is none.  A
 * gateway's own role (docs/schema.md) may not; it goes on with the
 * function there, and pg_schema_ensure warns until a node connects as the
 * owner.  plpgsql, whose body is not checked against tables that do not
 * exist yet. */
#define PG_REPLACE_FUNCTION(name, decl, body)                                      \
    "IF " PG_FUNCTION_STALE(name, body) " AND coalesce((SELECT pg_has_role(proowner, " \
    "'MEMBER') FROM pg_proc WHERE oid = to_regprocedure('" name "()')), "          \
    "has_schema_privilege(current_schema(), 'CREATE')) THEN "                      \
    "CREATE OR REPLACE FUNCTION " name "() " decl " LANGUAGE plpgsql "             \
    "AS $f$" body "$f$; END IF; "
/* The functions left stale (above), as a list ("" when none). */
#define PG_STALE_FUNCTIONS_SQL                                                     \
    "SELECT concat_ws(', ', CASE WHEN "                                            \
    PG_FUNCTION_STALE("aimdb_record_latest", PG_LATEST_FUNCTION_BODY)              \
    " THEN 'aimdb_record_latest()' END, CASE WHEN "                                \
    PG_FUNCTION_STALE("aimdb_record_latest_rebuild", PG_LATEST_REBUILD_BODY)       \
    " THEN 'aimdb_record_latest_rebuild()' END)"
/* The functions are replaced whenever their text is not this one, the
 * table and triggers rebuilt when a trigger is missing or disabled. */
#define PG_LATEST_SQL                                                              \
    "DO $aimdb$ BEGIN "                                                            \
    PG_REPLACE_FUNCTION("aimdb_record_latest", "RETURNS trigger", PG_LATEST_FUNCTION_BODY) \
    PG_REPLACE_FUNCTION("aimdb_record_latest_rebuild", "RETURNS bigint", PG_LATEST_REBUILD_BODY) \
    "IF (SELECT count(*) FROM pg_trigger WHERE tgrelid = "                         \
    "'record_history'::regclass AND tgname LIKE 'aimdb\\_latest\\_%' AND tgenabled <> 'D') < 4 THEN " \
    "DROP TABLE IF EXISTS record_latest;"                                          \
    "DROP TRIGGER IF EXISTS aimdb_latest_insert ON record_history;"                \
    "DROP TRIGGER IF EXISTS aimdb_latest_update ON record_history;"                \
    "DROP TRIGGER IF EXISTS aimdb_latest_delete ON record_history;"                \
    "DROP TRIGGER IF EXISTS aimdb_latest_truncate ON record_history;"              \
    "CREATE TABLE record_latest(record_name TEXT COLLATE \"C\" NOT NULL, "          \
    "gateway TEXT COLLATE \"C\" NOT NULL, id BIGINT NOT NULL, stored_at BIGINT NOT NULL, " \
    "value_json JSONB NOT NULL, topic TEXT, PRIMARY KEY (record_name, gateway));"  \
    "CREATE TRIGGER aimdb_latest_insert AFTER INSERT ON record_history "           \
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION aimdb_record_latest();" \
    "CREATE TRIGGER aimdb_latest_update AFTER UPDATE ON record_history "           \
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "                     \
    "FOR EACH STATEMENT EXECUTE FUNCTION aimdb_record_latest();"                   \
    "CREATE TRIGGER aimdb_latest_delete AFTER DELETE ON record_history "           \
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION aimdb_record_latest();" \
    "CREATE TRIGGER aimdb_latest_truncate AFTER TRUNCATE ON record_history "       \
    "FOR EACH STATEMENT EXECUTE FUNCTION aimdb_record_latest();"                   \
    "PERFORM aimdb_record_latest_rebuild();"                                       \
    "END IF; END $aimdb$;"

#define PG_COPY_SQL                                                                \
    "COPY record_history(gateway, record_name, value_json, stored_at, source_id, topic) " \
    "FROM STDIN"

/* $1 record, $2 gateway, $3 $4 range, $5 limit (NULL: all): one pair's
 * rows, newest first, in the order idx_record_gateway_time keeps them, so
 * the server streams them from the index without a sort. */
#define PG_PAIR_ROWS_SQL                                                              \
    "SELECT value_json::text, stored_at, topic FROM record_history "               \
    "WHERE record_name = $1 AND gateway = $2 AND stored_at >= $3 AND stored_at <= $4 " \
    "ORDER BY stored_at DESC, id DESC LIMIT $5"

/* A listing of record_latest's rows, by record and gateway: latest-1
 * itself (PG_LATEST_COLUMNS), or the pairs other queries read. */
typedef struct pg_listing {
    const char *columns; /* the select list, record_name and gateway first */
    const char *prefix;  /* records with this name prefix; "" and not exact: every record */
    bool exact;          /* exactly the record named prefix */
    const char *like;    /* gateways matching this LIKE pattern; NULL: every gateway */
    const char *after_record, *after_gateway; /* only pairs past this one (both or
                                                 neither; NULL: from the start) */
    int limit;           /* at most this many rows; 0: all */
} pg_listing;
#define PG_LATEST_COLUMNS "record_name, gateway, value_json::text, stored_at, topic"
/* The statement for l, its values written in as literals, so that the
 * plan is made for them: a prefix, a LIKE pattern with a literal start and
 * the pair to start after become ranges of record_latest's primary key,
 * whose order is the listing's, so the rows come in index order with no
 * sort (a generic plan guesses a few rows and sorts them all; the reader
 * also turns sorting off, pg_reader.c).  Malloc'd; NULL when out of
 * memory. */
char *pg_latest_sql(PGconn *c, const pg_listing *l);

/* Rows per retention transaction, as in SQLite: a few ms each, so row
 * batches are never held up noticeably. */
#define PG_CLEANUP_CHUNK 5000

/* ------------------------------------------------------------ pg_conn.c */

/* Connect with uri (libpq's own parsing, environment and password file)
 * under our defaults: connect_timeout 10 s, TCP keepalives, application
 * name aimdb, UTF-8.  NULL with the reason in why on failure. */
PGconn *pg_connect(const char *uri, char *why, size_t whylen);
/* Create the table and indexes if missing, then check that the columns
 * mean what C.6 says and that the role may store rows.  AIMDB_EINVAL (the
 * table is someone else's, or the role lacks a right: why says which and
 * how to fix it) or AIMDB_EIO (the server failed: why says why).  On
 * AIMDB_OK, warning is "" or what the caller should log (an invalid index). */
int pg_schema_ensure(PGconn *c, char *why, size_t whylen, char *warning, size_t warnlen);
/* Does a failed connect's reason say the server is down or out of reach
 * (retry), rather than that the URI, the login or the database is wrong? */
bool pg_unreachable(const char *why);
/* Did the connection break (as opposed to the server refusing a statement)? */
bool pg_connection_lost(PGconn *c);
/* libpq's message, without its trailing newline, into why. */
void pg_why(PGconn *c, PGresult *r, char *why, size_t whylen);

/* One row to COPY.  source_id < 0: NULL (rows stored directly). */
typedef struct pg_row {
    const char *record;
    size_t record_len;
    const char *json;
    size_t json_len;
    int64_t stored_at;
    int64_t source_id;
    const char *topic; /* NULL: none */
    size_t topic_len;
} pg_row;

typedef struct pg_copy_buf {
    char *data;
    size_t len, cap;
} pg_copy_buf;

/* Append one row in COPY text format (escaped). */
int pg_copy_add(pg_copy_buf *b, const char *gateway, const pg_row *row);
/* Run COPY of the buffer's rows inside the caller's transaction.
 * AIMDB_OK, or AIMDB_EIO with why; *data_error is true when the server
 * refused the data itself (SQLSTATE class 22 or 23: a value jsonb does not
 * take), false for everything else (a broken connection, or a unique
 * violation: the rows are there already). */
int pg_copy_run(PGconn *c, const pg_copy_buf *b, bool *data_error, char *why, size_t whylen);
/* Run SQL returning no rows; AIMDB_EIO with why. */
int pg_exec_sql(PGconn *c, const char *sql, char *why, size_t whylen);

/* --------------------------------------------------------------- backend */

typedef struct pg_backend {
    const aimdb_runtime *rt;
    char *uri, *gateway;
    char where[256]; /* the server as logs name it */
    aimdb_postgres_options opts;
    sq_queue queue;

    /* Writer thread only. */
    PGconn *wconn;
    pg_copy_buf copy;
    aimdb_thread *writer;

    /* The query connection (pg_reader.c), one query at a time. */
    pthread_mutex_t read_lock;
    PGconn *rconn;

    sq_writer_counts counts;
} pg_backend;

int pg_writer_start(pg_backend *b, char *err, size_t errlen);
void pg_writer_stop(pg_backend *b);
int pg_reader_query(pg_backend *b, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                    char *err, size_t errlen);
void pg_reader_close(pg_backend *b);

/* One query on b->rconn, its transaction included (a REPEATABLE READ read
 * only one, so what it reads is one snapshot); an AIMDB_ code. */
typedef int (*pg_read_fn)(pg_backend *b, void *ctx);
/* Run fn on the query connection (connected and its statements prepared
 * on demand), one query at a time; once more on a fresh connection if the
 * connection broke while *delivered is still false (nothing reached the
 * caller).  err gets the reason, naming the server. */
int pg_reader_run(pg_backend *b, pg_read_fn fn, void *ctx, const bool *delivered, char *err,
                  size_t errlen);
/* Inside pg_reader_run: fn(name) for every record name matching pattern,
 * ascending, found in record_latest's range of its literal prefix
 * (prefix_len bytes, aimdb_pattern_prefix_len); stops at fn's first
 * non-zero return. */
typedef int (*pg_name_fn)(const char *name, void *ctx);
int pg_reader_each_name(pg_backend *b, const char *pattern, size_t prefix_len, pg_name_fn fn,
                        void *ctx, char *err, size_t errlen);
/* A gateway pattern as LIKE: '*' is '%', every other character literal
 * (malloc'd; NULL when out of memory). */
char *pg_like_of(const char *pattern);

/* aimdb_backend_ops.aggregate (pg_aggregate.c). */
int pg_aggregate(void *self, const aimdb_aggregate_params *a, aimdb_bucket_fn fn, void *ctx,
                 char *err, size_t errlen);


#endif
