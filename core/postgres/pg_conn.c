/*
 * pg_conn.c -- what the backend and the uplink both do with a server:
 * connect, make sure the table is the one C.6 describes, and COPY rows.
 *
 * Why COPY: bench_postgres runs it beside multi-row INSERT (1,000-row
 * statements of 4,000 parameters) on the same table and rows; INSERT came
 * out at 0.74-1.15x of COPY over four runs on a loaded 2-core machine, so
 * no faster, and COPY needs no statement per batch size, no parameter
 * limit (65,535) and one round trip per batch.  A batch is one COPY in one
 * transaction, so its rows commit together or not at all -- which is what
 * lets the uplink resume from max(source_id) after any failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

bool aimdb_postgres_is_uri(const char *text) {
    return text && (strncmp(text, "postgresql://", 13) == 0 || strncmp(text, "postgres://", 11) == 0);
}

/* libpq parses a URI's shape but checks values only when it connects:
 * the two a typo most often breaks are checked here, so they fail at
 * start-up rather than on every retry. */
static bool value_ok(const char *key, const char *value) {
    if (strcmp(key, "port") == 0) {
        for (const char *p = value; *p; p++)
            if ((*p < '0' || *p > '9') && *p != ',') return false;
        return *value != '\0';
    }
    if (strcmp(key, "sslmode") == 0) {
        static const char *const modes[] = {"disable", "allow", "prefer", "require",
                                            "verify-ca", "verify-full"};
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
            if (strcmp(value, modes[i]) == 0) return true;
        return false;
    }
    return true;
}

int aimdb_postgres_uri_check(const char *uri, char *why, size_t whylen) {
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &msg);
    if (!opts) {
        char *nl = msg ? strchr(msg, '\n') : NULL;
        if (nl) *nl = '\0';
        aimdb_errorf(why, whylen, "%s", msg ? msg : "out of memory");
        PQfreemem(msg);
        return AIMDB_EINVAL;
    }
    int rc = AIMDB_OK;
    for (PQconninfoOption *o = opts; rc == AIMDB_OK && o->keyword; o++) {
        if (o->val && !value_ok(o->keyword, o->val)) {
            aimdb_errorf(why, whylen, "invalid %s \"%s\"", o->keyword, o->val);
            rc = AIMDB_EINVAL;
        }
    }
    PQconninfoFree(opts);
    return rc;
}

bool aimdb_postgres_describe(const char *uri, char *out, size_t cap) {
    PQconninfoOption *opts = PQconninfoParse(uri, NULL);
    if (!opts) {
        snprintf(out, cap, "?");
        return false;
    }
    const char *user = "", *host = "", *port = "", *db = "";
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val) continue;
        if (strcmp(o->keyword, "user") == 0) user = o->val;
        else if (strcmp(o->keyword, "host") == 0) host = o->val;
        else if (strcmp(o->keyword, "port") == 0) port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0) db = o->val;
    }
    snprintf(out, cap, "%s%s%s%s%s/%s", user, *user ? "@" : "", *host ? host : "localhost",
             *port ? ":" : "", port, db);
    PQconninfoFree(opts);
    return true;
}

void pg_why(PGconn *c, PGresult *r, char *why, size_t whylen) {
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg) msg = c ? PQerrorMessage(c) : "no connection";
    aimdb_errorf(why, whylen, "%s", msg);
    size_t n = why ? strlen(why) : 0;
    while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' ')) why[--n] = '\0';
    /* libpq's multi-line messages read better on one log line. */
    for (size_t i = 0; i < n; i++)
        if (why[i] == '\n' || why[i] == '\t') why[i] = ' ';
}

static void ignore_notice(void *arg, const char *message) { (void)arg, (void)message; }

bool pg_unreachable(const char *why) {
    static const char *const transient[] = {
        "Connection refused", "could not connect", "timeout expired", "starting up",
        "shutting down", "No route to host", "Network is unreachable", "could not translate host",
        "server closed the connection", "Connection reset", "in recovery mode"};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strstr(why, transient[i])) return true;
    return false;
}

PGconn *pg_connect(const char *uri, char *why, size_t whylen) {
    /* Ours first, the URI after (expand_dbname): what the URI says wins;
     * client_encoding last, since rows are UTF-8 whatever the URI says. */
    const char *keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "application_name", "dbname",
                          "client_encoding", NULL};
    const char *values[] = {"10", "30", "10", "3", "aimdb", uri, "UTF8", NULL};
    PGconn *c = PQconnectdbParams(keys, values, 1);
    if (c && PQstatus(c) == CONNECTION_OK) {
        /* NOTICEs ("relation already exists, skipping") are not for the log. */
        PQsetNoticeProcessor(c, ignore_notice, NULL);
        return c;
    }
    pg_why(c, NULL, why, whylen);
    PQfinish(c);
    return NULL;
}

bool pg_connection_lost(PGconn *c) { return !c || PQstatus(c) != CONNECTION_OK; }

int pg_exec_sql(PGconn *c, const char *sql, char *why, size_t whylen) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? AIMDB_OK : AIMDB_EIO;
    if (rc != AIMDB_OK) pg_why(c, r, why, whylen);
    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------- schema */

/* What each column must be: its type as format_type names it, and for
 * text the collation the queries' prefix ranges need: byte order, which
 * "C", "POSIX" and the default collation of a C-locale database all are. */
static const struct {
    const char *name, *type, *collation;
    bool not_null;
} expected[] = {
    {"id", "bigint", "", true},
    {"gateway", "text", "C", true},
    {"record_name", "text", "C", true},
    {"value_json", "jsonb", "", true},
    {"stored_at", "bigint", "", true},
    {"source_id", "bigint", "", false},
    {"topic", "text", "", false},
};

#define COLUMNS_SQL                                                                \
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "       \
    "CASE WHEN c.collname = 'default' THEN (SELECT CASE WHEN datcollate IN ('C', 'POSIX') " \
    "THEN 'C' ELSE datcollate END FROM pg_database WHERE datname = current_database()) " \
    "WHEN c.collname = 'POSIX' THEN 'C' ELSE coalesce(c.collname, '') END "       \
    "FROM pg_attribute a "                                                         \
    "LEFT JOIN pg_collation c ON c.oid = a.attcollation AND a.attcollation <> 0 "  \
    "WHERE a.attrelid = 'record_history'::regclass AND a.attnum > 0 "              \
    "AND NOT a.attisdropped"

/* A unique index on exactly (gateway, source_id): exactly-once rests on it.
 * Valid: one a failed CREATE UNIQUE INDEX CONCURRENTLY left behind may
 * hold duplicates already. */
#define UNIQUE_SQL                                                                 \
    "SELECT count(*) FROM pg_index i WHERE i.indrelid = 'record_history'::regclass " \
    "AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 2 "                    \
    "AND i.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = i.indrelid " \
    "AND attname = 'gateway') "                                                    \
    "AND i.indkey[1] = (SELECT attnum FROM pg_attribute WHERE attrelid = i.indrelid " \
    "AND attname = 'source_id')"

/* What a storing node does with the tables, whichever role it logs in
 * as: COPY into record_history (its id from the sequence), SELECT there
 * (the uplink's resume point, queries), and the triggers, which run with
 * the node's rights, upsert record_latest.  Retention's DELETE is not
 * asked for here: a node without it stores and answers, and each sweep
 * logs the server's refusal.  Columns: the role quoted, the sequence, the
 * rights missing ("" when none). */
#define PRIVILEGE_MISSING(right, table)                                            \
    "CASE WHEN NOT has_table_privilege('" table "', '" right "') "                  \
    "THEN '" right " on " table "' END, "
#define PRIVILEGES_SQL                                                             \
    "SELECT quote_ident(current_user), coalesce(s.seq, ''), concat_ws(', ', "     \
    PRIVILEGE_MISSING("SELECT", "record_history") PRIVILEGE_MISSING("INSERT", "record_history") \
    PRIVILEGE_MISSING("SELECT", "record_latest") PRIVILEGE_MISSING("INSERT", "record_latest") \
    PRIVILEGE_MISSING("UPDATE", "record_latest")                                   \
    "CASE WHEN s.seq IS NOT NULL AND NOT has_sequence_privilege(s.seq, 'USAGE') "  \
    "THEN 'USAGE on ' || s.seq END) "                                              \
    "FROM (SELECT pg_get_serial_sequence('record_history', 'id') AS seq) s"

/* Indexes of record_history a failed CREATE INDEX CONCURRENTLY (or one
 * still running) left invalid: the server keeps them up to date but plans
 * no query with them. */
#define INVALID_INDEXES_SQL                                                        \
    "SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_index i "       \
    "JOIN pg_class c ON c.oid = i.indexrelid "                                     \
    "WHERE i.indrelid = 'record_history'::regclass AND NOT i.indisvalid"

static int check_column(PGresult *r, int row, char *why, size_t whylen) {
    const char *name = PQgetvalue(r, row, 0), *type = PQgetvalue(r, row, 1);
    bool not_null = strcmp(PQgetvalue(r, row, 2), "t") == 0;
    const char *coll = PQgetvalue(r, row, 3);
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        if (strcmp(expected[i].name, name) != 0) continue;
        if (strcmp(expected[i].type, type) != 0) {
            aimdb_errorf(why, whylen,
                      "table record_history is not aimdb's: column %s is %s, expected %s", name,
                      type, expected[i].type);
            return AIMDB_EINVAL;
        }
        if (expected[i].not_null && !not_null) {
            aimdb_errorf(why, whylen,
                      "table record_history is not aimdb's: column %s allows NULL, expected "
                      "NOT NULL",
                      name);
            return AIMDB_EINVAL;
        }
        if (*expected[i].collation && strcmp(expected[i].collation, coll) != 0) {
            aimdb_errorf(why, whylen,
                      "table record_history: column %s has collation \"%s\"; aimdb needs "
                      "\"C\" (ALTER TABLE record_history ALTER COLUMN %s TYPE text COLLATE "
                      "\"C\")",
                      name, coll, name);
            return AIMDB_EINVAL;
        }
        return AIMDB_OK;
    }
    return AIMDB_OK; /* extra columns are allowed */
}

static int check_columns(PGconn *c, char *why, size_t whylen) {
    PGresult *r = PQexec(c, COLUMNS_SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_why(c, r, why, whylen);
        PQclear(r);
        return AIMDB_EIO;
    }
    int rc = AIMDB_OK;
    size_t seen = 0;
    for (int i = 0; rc == AIMDB_OK && i < PQntuples(r); i++) {
        rc = check_column(r, i, why, whylen);
        for (size_t k = 0; k < sizeof(expected) / sizeof(expected[0]); k++)
            if (strcmp(expected[k].name, PQgetvalue(r, i, 0)) == 0) seen++;
    }
    PQclear(r);
    if (rc == AIMDB_OK && seen != sizeof(expected) / sizeof(expected[0])) {
        aimdb_errorf(why, whylen,
                  "table record_history is not aimdb's: it lacks columns of id, gateway, "
                  "record_name, value_json, stored_at, source_id");
        rc = AIMDB_EINVAL;
    }
    return rc;
}

/* A role short of rights is refused at connect, like a table of another
 * shape: every batch would fail otherwise, and the reason is easier to
 * act on with the statements that fix it. */
static int check_privileges(PGconn *c, char *why, size_t whylen) {
    PGresult *r = PQexec(c, PRIVILEGES_SQL);
    int rc = AIMDB_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_why(c, r, why, whylen);
        rc = AIMDB_EIO;
    } else if (*PQgetvalue(r, 0, 2)) {
        const char *role = PQgetvalue(r, 0, 0), *seq = PQgetvalue(r, 0, 1);
        char seq_grant[256] = "";
        if (*seq)
            snprintf(seq_grant, sizeof(seq_grant), "; GRANT USAGE ON SEQUENCE %s TO %s", seq,
                     role);
        aimdb_errorf(why, whylen,
                     "role %s lacks %s, which a node storing history needs (GRANT SELECT, "
                     "INSERT ON record_history TO %s; GRANT SELECT, INSERT, UPDATE ON "
                     "record_latest TO %s%s; and DELETE on both for a central node with "
                     "retention)",
                     role, PQgetvalue(r, 0, 2), role, role, seq_grant);
        rc = AIMDB_EINVAL;
    }
    PQclear(r);
    return rc;
}

/* Appends a warning to those pg_schema_ensure gives back. */
static void warn(char *warning, size_t warnlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(char *warning, size_t warnlen, const char *fmt, ...) {
    size_t used = strlen(warning);
    if (used && used + 2 < warnlen) memcpy(warning + used, "; ", 3), used += 2;
    va_list ap;
    va_start(ap, fmt);
    if (used < warnlen) vsnprintf(warning + used, warnlen - used, fmt, ap);
    va_end(ap);
}

static void check_indexes(PGconn *c, char *warning, size_t warnlen) {
    PGresult *r = PQexec(c, INVALID_INDEXES_SQL);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0))
        warn(warning, warnlen,
             "record_history's index %s is invalid (a CREATE INDEX CONCURRENTLY failed, or "
             "is running): queries that need it scan the table until it is rebuilt (REINDEX "
             "INDEX CONCURRENTLY %s)",
             PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 0));
    PQclear(r);
}

static void check_functions(PGconn *c, char *warning, size_t warnlen) {
    PGresult *r = PQexec(c, PG_STALE_FUNCTIONS_SQL);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && *PQgetvalue(r, 0, 0))
        warn(warning, warnlen,
             "function %s: another AimDB version's, or missing, and this role may not "
             "replace it (the one there stays in use); a node that connects as the owner "
             "of the tables does",
             PQgetvalue(r, 0, 0));
    PQclear(r);
}

int pg_schema_ensure(PGconn *c, char *why, size_t whylen, char *warning, size_t warnlen) {
    if (warnlen) *warning = '\0';
    char sql[sizeof(PG_SCHEMA_SQL) + 32];
    snprintf(sql, sizeof(sql), "BEGIN;%sCOMMIT", PG_SCHEMA_SQL);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = AIMDB_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        /* A table of another shape can fail the index or column statements
         * (no such column): say what the columns are instead, if we can. */
        pg_why(c, r, why, whylen);
        rc = AIMDB_EIO;
        PQclear(PQexec(c, "ROLLBACK"));
    }
    PQclear(r);
    char columns_why[512];
    int crc = check_columns(c, columns_why, sizeof(columns_why));
    if (crc == AIMDB_EINVAL || (rc == AIMDB_OK && crc != AIMDB_OK)) {
        aimdb_errorf(why, whylen, "%s", columns_why);
        return crc;
    }
    if (rc != AIMDB_OK) return rc;
    r = PQexec(c, UNIQUE_SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_why(c, r, why, whylen);
        rc = AIMDB_EIO;
    } else if (strcmp(PQgetvalue(r, 0, 0), "0") == 0) {
        aimdb_errorf(why, whylen,
                  "table record_history has no UNIQUE (gateway, source_id), which shipping "
                  "each row exactly once needs (ALTER TABLE record_history ADD UNIQUE "
                  "(gateway, source_id))");
        rc = AIMDB_EINVAL;
    }
    PQclear(r);
    if (rc == AIMDB_OK) rc = check_privileges(c, why, whylen);
    if (rc == AIMDB_OK) check_indexes(c, warning, warnlen);
    if (rc == AIMDB_OK) check_functions(c, warning, warnlen);
    return rc;
}

/* --------------------------------------------------------------- COPY */

static int reserve(pg_copy_buf *b, size_t more) {
    if (b->len + more <= b->cap) return AIMDB_OK;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) return AIMDB_ENOMEM;
    b->data = grown;
    b->cap = cap;
    return AIMDB_OK;
}

/* COPY text format: backslash, tab, newline and carriage return escaped
 * (worst case doubles the length). */
static void put_text(pg_copy_buf *b, const char *s, size_t n) {
    char *out = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        switch (ch) {
        case '\\': *out++ = '\\', *out++ = '\\'; break;
        case '\t': *out++ = '\\', *out++ = 't'; break;
        case '\n': *out++ = '\\', *out++ = 'n'; break;
        case '\r': *out++ = '\\', *out++ = 'r'; break;
        default: *out++ = ch;
        }
    }
    b->len = (size_t)(out - b->data);
}

int pg_copy_add(pg_copy_buf *b, const char *gateway, const pg_row *row) {
    size_t gw_len = strlen(gateway);
    size_t need = 2 * (gw_len + row->record_len + row->json_len + row->topic_len) + 64;
    if (reserve(b, need) != AIMDB_OK) return AIMDB_ENOMEM;
    put_text(b, gateway, gw_len);
    b->data[b->len++] = '\t';
    put_text(b, row->record, row->record_len);
    b->data[b->len++] = '\t';
    put_text(b, row->json, row->json_len);
    int n = row->source_id >= 0
                ? snprintf(b->data + b->len, 48, "\t%lld\t%lld\t", (long long)row->stored_at,
                           (long long)row->source_id)
                : snprintf(b->data + b->len, 48, "\t%lld\t\\N\t", (long long)row->stored_at);
    b->len += (size_t)n;
    if (row->topic) put_text(b, row->topic, row->topic_len);
    else memcpy(b->data + b->len, "\\N", 2), b->len += 2;
    b->data[b->len++] = '\n';
    return AIMDB_OK;
}

/* A value or row the server refuses, which no retry can store: class 22
 * data exception, class 23 constraint, class 54 program limit (a record
 * name too long for a btree index entry, ~2,700 bytes once compressed; a
 * value over jsonb's limits).  Except a unique violation: that row is
 * there already (a second process shipping under the same gateway name),
 * and the uplink's answer is to reconnect and read the resume point again. */
static bool is_data_error(PGresult *r) {
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state || strcmp(state, "23505") == 0) return false;
    return strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
           strncmp(state, "54", 2) == 0;
}

int pg_copy_run(PGconn *c, const pg_copy_buf *b, bool *data_error, char *why, size_t whylen) {
    *data_error = false;
    PGresult *r = PQexec(c, PG_COPY_SQL);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        pg_why(c, r, why, whylen);
        PQclear(r);
        return AIMDB_EIO;
    }
    PQclear(r);
    /* Blocking connection: PQputCopyData returns 1 or -1, never 0.  In
     * pieces, as its length is an int. */
    bool sent = true;
    for (size_t off = 0; sent && off < b->len; off += 1u << 20) {
        size_t n = b->len - off < (1u << 20) ? b->len - off : (1u << 20);
        sent = PQputCopyData(c, b->data + off, (int)n) == 1;
    }
    if (PQputCopyEnd(c, sent ? NULL : "aimdb: sending rows failed") != 1) sent = false;
    int rc = AIMDB_OK;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == AIMDB_OK) {
            pg_why(c, r, why, whylen);
            *data_error = is_data_error(r);
            rc = AIMDB_EIO;
        }
        PQclear(r);
    }
    if (rc == AIMDB_OK && !sent) {
        pg_why(c, NULL, why, whylen);
        rc = AIMDB_EIO;
    }
    return rc;
}
