/*
 * bench_postgres.c -- fleet history: rows/s into PostgreSQL and the fleet
 * query's latency, against raw libpq loops on the same server, table
 * (docs/schema.md) and rows, in the same run.
 *
 *   ceiling     a C loop doing COPY (text format) of 10,000-row
 *               transactions: what the server takes at best (and the
 *               same with record_latest's triggers off: what they cost);
 *   multi-row   the same rows as INSERT ... VALUES of 1,000 rows each
 *               (4,000 parameters), 10,000 rows per transaction: the other
 *               way a batch can be written (pg_conn.c says why COPY);
 *   backend     aimdb_postgres_open, store() every row, flush;
 *   uplink      a local SQLite history of the same rows shipped by
 *               aimdb_uplink from the first row to the last.
 * Each round measures all of them on an emptied table, in the opposite
 * order to the round before (so drift in the machine's load favours
 * none), and reports each as a ratio to its ceiling in that round; the
 * summary is the median of those ratios.  Beside rows/s, the CPU time the
 * server's process(es) for the writer spent per row (/proc: the work the
 * writer asks of the server, which other load on the machine moves much
 * less than it moves wall time), as the ceiling's divided by the
 * writer's: below 1 means the server works harder for the writer's rows.
 * Goals: backend and uplink >= 0.8x the ceiling (record_latest's triggers
 * run in every one of them, the ceiling's too).  Then latest-1 over 100
 * gateways x 100 records (10 rows each) through the backend, p50/p99 (goal
 * p50 < 20 ms), interleaved with its statement run bare and with the
 * derivation from record_history; and raw range reads through the backend
 * against one statement per record run bare, which sorts each record's
 * rows (a long range of one record on two gateways, 345,600 rows; a short
 * one of 1,000 records).
 *
 * The server is a throw-away cluster started like the tests' (fsync off:
 * the figures are about our code, not the disk).
 * bench_postgres [rows per round (100000)] [rounds (5); 0: the query alone]
 */
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aimdb/postgres.h"
#include "aimdb/sqlite.h"
#include "harness.h"
#include "pg_internal.h"
#include "pg_server.h"

#define TXN_ROWS 10000
#define INSERT_ROWS 1000
#define RECORDS 100
#define GATEWAYS 100
#define QUERY_RUNS 60
#define RANGE_RUNS 7
#define MAX_ROUNDS 20

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_postgres: %s: %s\n", what, why);
    exit(1);
}

static PGconn *connect_or_die(const pg_server *s) {
    PGconn *c = PQconnectdb(s->uri);
    if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
    return c;
}

static void exec_or_die(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(sql, PQerrorMessage(c));
    PQclear(r);
}

/* User + system CPU seconds of process pid (/proc/PID/stat). */
static double process_cpu_s(int pid) {
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(line, sizeof(line), f)) die("cpu", path);
    fclose(f);
    unsigned long utime = 0, stime = 0;
    const char *after = strrchr(line, ')'); /* comm may hold spaces */
    if (!after || sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                         &utime, &stime) != 2)
        die("cpu", path);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of the server processes serving AimDB's connections
 * (application_name aimdb, pg_conn.c) over their lives so far. */
static double aimdb_server_cpu_s(const pg_server *s) {
    PGconn *c = connect_or_die(s);
    PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name = 'aimdb'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die("pg_stat_activity", PQerrorMessage(c));
    double cpu = 0;
    for (int i = 0; i < PQntuples(r); i++) cpu += process_cpu_s(atoi(PQgetvalue(r, i, 0)));
    PQclear(r);
    PQfinish(c);
    return cpu;
}

/* What a writer did: rows/s, and its server's CPU per row. */
typedef struct measured {
    double rate, cpu_us;
} measured;

/* Row i: one of RECORDS records, a small JSON object, a time. */
static void row_text(long i, char *record, size_t rcap, char *json, size_t jcap, long long *ts) {
    snprintf(record, rcap, "temp::%03ld", i % RECORDS);
    snprintf(json, jcap, "{\"value\":%ld.5,\"unit\":\"C\",\"seq\":%ld}", i % 400, i);
    *ts = 1700000000000LL + i;
}

static void reset_table(const pg_server *s) {
    PGconn *c = connect_or_die(s);
    exec_or_die(c, "TRUNCATE record_history");
    /* TRUNCATE empties record_latest with a DELETE (its trigger): vacuumed
     * too, so every measurement starts from the same table. */
    exec_or_die(c, "VACUUM ANALYZE record_history, record_latest");
    PQfinish(c);
}

/* record_latest's triggers off (what the table costs a COPY) or on. */
static void set_latest_triggers(const pg_server *s, bool on) {
    PGconn *c = connect_or_die(s);
    exec_or_die(c, on ? "ALTER TABLE record_history ENABLE TRIGGER USER"
                      : "ALTER TABLE record_history DISABLE TRIGGER USER");
    PQfinish(c);
}

/* with_source: rows as the uplink writes them (source_id and topic set). */
static measured raw_copy(const pg_server *s, long rows, bool with_source) {
    PGconn *c = connect_or_die(s);
    char *buf = malloc((size_t)TXN_ROWS * 160);
    double cpu0 = process_cpu_s(PQbackendPID(c)), t0 = now_s();
    for (long done = 0; done < rows;) {
        size_t len = 0;
        long n = rows - done < TXN_ROWS ? rows - done : TXN_ROWS;
        for (long k = 0; k < n; k++) {
            char record[32], json[96];
            long long ts;
            row_text(done + k, record, sizeof(record), json, sizeof(json), &ts);
            if (with_source)
                len += (size_t)sprintf(buf + len, "bench\t%s\t%s\t%lld\t%ld\tsensors/x/temperature\n",
                                       record, json, ts, done + k + 1);
            else
                len += (size_t)sprintf(buf + len, "bench\t%s\t%s\t%lld\t\\N\t\\N\n", record,
                                       json, ts);
        }
        exec_or_die(c, "BEGIN");
        PGresult *r = PQexec(c, "COPY record_history(gateway, record_name, value_json, "
                                "stored_at, source_id, topic) FROM STDIN");
        PQclear(r);
        if (PQputCopyData(c, buf, (int)len) != 1 || PQputCopyEnd(c, NULL) != 1)
            die("copy", PQerrorMessage(c));
        while ((r = PQgetResult(c))) {
            if (PQresultStatus(r) != PGRES_COMMAND_OK) die("copy", PQerrorMessage(c));
            PQclear(r);
        }
        exec_or_die(c, "COMMIT");
        done += n;
    }
    measured m = {rows / (now_s() - t0), (process_cpu_s(PQbackendPID(c)) - cpu0) * 1e6 / rows};
    free(buf);
    PQfinish(c);
    return m;
}

static measured raw_insert(const pg_server *s, long rows) {
    PGconn *c = connect_or_die(s);
    /* INSERT ... VALUES ($1,$2,$3::jsonb,$4), ... for INSERT_ROWS rows. */
    size_t cap = (size_t)INSERT_ROWS * 64 + 256;
    char *sql = malloc(cap);
    size_t len = (size_t)sprintf(sql, "INSERT INTO record_history(gateway, record_name, "
                                      "value_json, stored_at) VALUES ");
    for (int k = 0; k < INSERT_ROWS; k++)
        len += (size_t)sprintf(sql + len, "%s($%d,$%d,$%d::jsonb,$%d::bigint)", k ? "," : "",
                               4 * k + 1, 4 * k + 2, 4 * k + 3, 4 * k + 4);
    PGresult *prep = PQprepare(c, "ins", sql, 0, NULL);
    if (PQresultStatus(prep) != PGRES_COMMAND_OK) die("prepare", PQerrorMessage(c));
    PQclear(prep);
    static char text[INSERT_ROWS][3][96];
    const char *values[4 * INSERT_ROWS];
    double cpu0 = process_cpu_s(PQbackendPID(c)), t0 = now_s();
    for (long done = 0; done < rows;) {
        if (done % TXN_ROWS == 0) exec_or_die(c, "BEGIN");
        for (int k = 0; k < INSERT_ROWS; k++) {
            long long ts;
            row_text(done + k, text[k][0], sizeof(text[k][0]), text[k][1], sizeof(text[k][1]),
                     &ts);
            snprintf(text[k][2], sizeof(text[k][2]), "%lld", ts);
            values[4 * k] = "bench";
            values[4 * k + 1] = text[k][0];
            values[4 * k + 2] = text[k][1];
            values[4 * k + 3] = text[k][2];
        }
        PGresult *r = PQexecPrepared(c, "ins", 4 * INSERT_ROWS, values, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) die("insert", PQerrorMessage(c));
        PQclear(r);
        done += INSERT_ROWS;
        if (done % TXN_ROWS == 0 || done >= rows) exec_or_die(c, "COMMIT");
    }
    measured m = {rows / (now_s() - t0), (process_cpu_s(PQbackendPID(c)) - cpu0) * 1e6 / rows};
    free(sql);
    PQfinish(c);
    return m;
}

static measured backend_rows(const pg_server *s, long rows) {
    aimdb_postgres_options o = {.uri = s->uri, .gateway = "bench"};
    aimdb_backend b;
    char err[512];
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK) die("open", err);
    double cpu0 = aimdb_server_cpu_s(s), t0 = now_s(); /* open made the writer's connection */
    for (long i = 0; i < rows; i++) {
        char record[32], json[96];
        long long ts;
        row_text(i, record, sizeof(record), json, sizeof(json), &ts);
        if (b.ops->store(b.self, record, json, strlen(json), ts, NULL) != AIMDB_OK)
            die("store", "refused");
    }
    if (b.ops->flush(b.self) != AIMDB_OK) die("flush", "failed");
    measured m = {rows / (now_s() - t0), (aimdb_server_cpu_s(s) - cpu0) * 1e6 / rows};
    b.ops->close(b.self);
    return m;
}

/* A local SQLite history of the rows, written before the clock starts. */
static void build_local(const char *path, long rows) {
    aimdb_sqlite_options so = {.path = path};
    aimdb_backend b;
    char err[512];
    if (aimdb_sqlite_open(&so, &b, err, sizeof(err)) != AIMDB_OK) die("sqlite", err);
    for (long i = 0; i < rows; i++) {
        char record[32], json[96];
        long long ts;
        row_text(i, record, sizeof(record), json, sizeof(json), &ts);
        b.ops->store(b.self, record, json, strlen(json), ts, "sensors/x/temperature");
    }
    if (b.ops->flush(b.self) != AIMDB_OK) die("sqlite flush", "failed");
    b.ops->close(b.self);
}

/* The uplink connects on its own thread: its server process's whole life
 * counts (the connect and the resume point with the rows). */
static measured uplink_rows(const pg_server *s, const char *path, long rows) {
    aimdb_uplink_options uo = {.uri = s->uri, .gateway = "bench", .sqlite_path = path,
                               .poll_ms = 1};
    aimdb_uplink *u;
    char err[512];
    if (aimdb_uplink_new(&uo, &u, err, sizeof(err)) != AIMDB_OK) die("uplink", err);
    double t0 = now_s();
    aimdb_uplink_start(u);
    aimdb_uplink_stats st;
    do {
        usleep(1000);
        aimdb_uplink_stats_get(u, &st);
    } while ((long)st.shipped < rows && now_s() - t0 < 600);
    measured m = {rows / (now_s() - t0), aimdb_server_cpu_s(s) * 1e6 / rows};
    aimdb_uplink_free(u);
    if ((long)st.shipped != rows) die("uplink", "did not ship every row in 10 minutes");
    return m;
}

static int count_row(const aimdb_history_row *row, void *ctx) {
    (void)row;
    (*(long *)ctx)++;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The baselines, run bare from a C loop (rows fetched whole, values not
 * looked at): the backend's latest-1 statement on record_latest, and
 * latest-1 derived from record_history alone, prepared: the record names
 * (NAMES_SQL, one index seek each: a loose index scan as a recursive CTE)
 * and per record ROWS_SQL, its gateways by a recursive CTE, each one's
 * newest rows through a LATERAL join. */
#define NAMES_SQL                                                                     \
    "WITH RECURSIVE names(n) AS ("                                                 \
    "SELECT min(record_name) FROM record_history WHERE record_name >= $1 "         \
    "UNION ALL SELECT (SELECT min(record_name) FROM record_history "               \
    "WHERE record_name > names.n) FROM names "                                     \
    "WHERE names.n IS NOT NULL AND starts_with(names.n, $1)) "                     \
    "SELECT n FROM names WHERE n IS NOT NULL AND starts_with(n, $1)"
#define ROWS_SQL                                                                      \
    "WITH RECURSIVE gw(g) AS ("                                                    \
    "SELECT min(gateway) FROM record_history WHERE record_name = $1 "              \
    "UNION ALL SELECT (SELECT min(gateway) FROM record_history "                   \
    "WHERE record_name = $1 AND gateway > gw.g) FROM gw WHERE gw.g IS NOT NULL) "  \
    "SELECT gw.g, r.value_json::text, r.stored_at, r.topic FROM gw "               \
    "CROSS JOIN LATERAL (SELECT value_json, stored_at, topic, id FROM record_history " \
    "WHERE record_name = $1 AND gateway = gw.g AND stored_at >= $2 AND stored_at <= $3 " \
    "ORDER BY stored_at DESC, id DESC LIMIT $4) r "                                \
    "WHERE gw.g IS NOT NULL AND gw.g LIKE $5 "                                     \
    "ORDER BY gw.g, r.stored_at DESC, r.id DESC"

static double raw_latest_table(PGconn *c) {
    char *sql = pg_latest_sql(c, &(pg_listing){.columns = PG_LATEST_COLUMNS, .prefix = ""});
    if (!sql) die("latest", "out of memory");
    double t0 = now_s();
    PQclear(PQexec(c, sql));
    double ms = (now_s() - t0) * 1000;
    free(sql);
    return ms;
}

/* How the server runs the latest-1 statement: its plan's first line. */
static void print_latest_plan(PGconn *c) {
    char *sql = pg_latest_sql(c, &(pg_listing){.columns = PG_LATEST_COLUMNS, .prefix = ""});
    size_t cap = sql ? strlen(sql) + 16 : 0;
    char *explain = cap ? malloc(cap) : NULL;
    if (!explain) die("latest", "out of memory");
    snprintf(explain, cap, "EXPLAIN %s", sql);
    PGresult *r = PQexec(c, explain);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die("explain", PQerrorMessage(c));
    printf("  its plan: %s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    free(explain);
    free(sql);
}

/* The one-statement-per-record way bare: the names with prefix, then
 * ROWS_SQL for each over the whole range, limit per pair (NULL: all),
 * results fetched whole. */
static double raw_per_record(PGconn *c, const char *prefix, const char *limit) {
    const char *p1[1] = {prefix};
    double t0 = now_s();
    PGresult *names = PQexecPrepared(c, "names", 1, p1, NULL, NULL, 0);
    for (int i = 0; i < PQntuples(names); i++) {
        const char *p[5] = {PQgetvalue(names, i, 0), "-9223372036854775808",
                            "9223372036854775807", limit, "%"};
        PGresult *r = PQexecPrepared(c, "rows", 5, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die("rows", PQerrorMessage(c));
        PQclear(r);
    }
    PQclear(names);
    return (now_s() - t0) * 1000;
}

/* The table filled by the caller: analysed, the baseline's statements
 * prepared on c, and the backend opened. */
static aimdb_backend open_for_queries(const pg_server *s, PGconn *c) {
    exec_or_die(c, "VACUUM ANALYZE record_history, record_latest");
    exec_or_die(c, "SET plan_cache_mode = force_generic_plan");
    PQclear(PQprepare(c, "names", NAMES_SQL, 1, NULL));
    PQclear(PQprepare(c, "rows", ROWS_SQL, 5, NULL));
    aimdb_postgres_options o = {.uri = s->uri, .gateway = "bench"};
    aimdb_backend b;
    char err[512];
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK) die("open", err);
    return b;
}

static void fleet_query(const pg_server *s) {
    PGconn *c = connect_or_die(s);
    exec_or_die(c, "TRUNCATE record_history");
    exec_or_die(c, "INSERT INTO record_history(gateway, record_name, value_json, stored_at) "
                   "SELECT 'gw' || lpad(g::text, 3, '0'), 'temp::' || lpad(r::text, 3, '0'), "
                   "jsonb_build_object('value', k), 1700000000000 + k "
                   "FROM generate_series(1, 100) g, generate_series(1, 100) r, "
                   "generate_series(1, 10) k");
    aimdb_backend b = open_for_queries(s, c);
    char err[512];
    double ms[QUERY_RUNS], raw[QUERY_RUNS], table[QUERY_RUNS];
    long got = 0;
    for (int i = 0; i < QUERY_RUNS; i++) { /* interleaved: both see the same load */
        aimdb_query_params q = {.pattern = "*", .limit = 1};
        got = 0;
        double t0 = now_s();
        if (b.ops->query(b.self, &q, count_row, &got, err, sizeof(err)) != AIMDB_OK)
            die("query", err);
        ms[i] = (now_s() - t0) * 1000;
        raw[i] = raw_per_record(c, "", "1");
        table[i] = raw_latest_table(c);
    }
    b.ops->close(b.self);
    qsort(ms, QUERY_RUNS, sizeof(ms[0]), cmp_double);
    qsort(raw, QUERY_RUNS, sizeof(raw[0]), cmp_double);
    qsort(table, QUERY_RUNS, sizeof(table[0]), cmp_double);
    printf("fleet latest-1, %d gateways x %d records (%ld rows back): p50 %.1f ms, p99 %.1f ms "
           "(goal p50 < 20 ms)\n"
           "  its SQL (record_latest) bare: p50 %.1f ms (%.2fx); derived from record_history "
           "alone (skip scans per record) bare: p50 %.1f ms (%.1fx the backend)\n",
           GATEWAYS, RECORDS, got, ms[QUERY_RUNS / 2], ms[QUERY_RUNS - 1],
           table[QUERY_RUNS / 2], ms[QUERY_RUNS / 2] / table[QUERY_RUNS / 2],
           raw[QUERY_RUNS / 2], raw[QUERY_RUNS / 2] / ms[QUERY_RUNS / 2]);
    print_latest_plan(c);
    PQfinish(c);
}

static double backend_range(aimdb_backend b, const char *pattern, long *got) {
    aimdb_query_params q = {.pattern = pattern, .has_start = true, .start_ms = INT64_MIN,
                            .has_end = true, .end_ms = INT64_MAX};
    char err[512];
    *got = 0;
    double t0 = now_s();
    if (b.ops->query(b.self, &q, count_row, got, err, sizeof(err)) != AIMDB_OK) die("query", err);
    return (now_s() - t0) * 1000;
}

/* Raw range reads through the backend (a statement per record and gateway,
 * pipelined, each streamed from idx_record_gateway_time in the reply's
 * order) against one statement per record run bare, which sorts all of
 * the record's rows: a long range of one record on two gateways, and a
 * short one of many records on one. */
static void fleet_range(const pg_server *s) {
    PGconn *c = connect_or_die(s);
    exec_or_die(c, "TRUNCATE record_history");
    exec_or_die(c, "INSERT INTO record_history(gateway, record_name, value_json, stored_at, topic) "
                   "SELECT 'site-' || g, 'temp::hall', jsonb_build_object('t', k % 100 * 0.25, "
                   "'rh', k % 90), 1700000000000 + k::bigint * 15000, 'sensors/hall/temp' "
                   "FROM generate_series(1, 2) g, generate_series(1, 172800) k");
    exec_or_die(c, "INSERT INTO record_history(gateway, record_name, value_json, stored_at) "
                   "SELECT 'solo', 'many::' || lpad(r::text, 4, '0'), jsonb_build_object('v', k), "
                   "1700000000000 + k FROM generate_series(1, 1000) r, generate_series(1, 10) k");
    aimdb_backend b = open_for_queries(s, c);
    const struct {
        const char *pattern, *prefix, *what;
    } cases[] = {{"temp::hall", "temp::hall", "one record on 2 gateways"},
                 {"many::*", "many::", "1,000 records on one gateway"}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        double ms[RANGE_RUNS], raw[RANGE_RUNS];
        long got = 0;
        for (int i = 0; i < RANGE_RUNS; i++) { /* interleaved */
            ms[i] = backend_range(b, cases[k].pattern, &got);
            raw[i] = raw_per_record(c, cases[k].prefix, NULL);
        }
        qsort(ms, RANGE_RUNS, sizeof(ms[0]), cmp_double);
        qsort(raw, RANGE_RUNS, sizeof(raw[0]), cmp_double);
        printf("fleet range, %s (%ld rows): p50 %.1f ms; one statement per record bare: "
               "p50 %.1f ms (%.2fx the backend)\n",
               cases[k].what, got, ms[RANGE_RUNS / 2], raw[RANGE_RUNS / 2],
               raw[RANGE_RUNS / 2] / ms[RANGE_RUNS / 2]);
    }
    b.ops->close(b.self);
    PQfinish(c);
}

static double median(const double *v, int n) {
    double sorted[MAX_ROUNDS];
    memcpy(sorted, v, (size_t)n * sizeof(*v));
    qsort(sorted, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/* What one round measures, in this order or the reverse: each next to
 * its ceiling. */
enum { UNTRACKED, CEILING, BACKEND, INSERT, CEILING_SOURCE, UPLINK, KINDS };

static measured measure(int kind, const pg_server *s, const char *path, long rows) {
    reset_table(s);
    switch (kind) {
    case CEILING: return raw_copy(s, rows, false);
    case UNTRACKED: {
        set_latest_triggers(s, false);
        measured m = raw_copy(s, rows, false);
        set_latest_triggers(s, true);
        return m;
    }
    case INSERT: return raw_insert(s, rows);
    case BACKEND: return backend_rows(s, rows);
    case CEILING_SOURCE: return raw_copy(s, rows, true);
    default: return uplink_rows(s, path, rows);
    }
}

/* Rounds of every writer and its ceiling, each round's ratios and their
 * medians. */
static void write_rounds(const pg_server *s, const char *path, long rows, int rounds) {
    printf("%ld rows of %d records per measurement, %d rounds, 4 indexes (primary key, unique, "
           "idx_record_time, idx_record_gateway_time)\n",
           rows, RECORDS, rounds);
    /* ratio: rows/s against the ceiling's; cpu: the ceiling's server CPU
     * per row against the writer's (for UNTRACKED: the ceiling's against
     * it, what the triggers cost). */
    double rate[KINDS][MAX_ROUNDS], cpu_us[KINDS][MAX_ROUNDS];
    double ratio[KINDS][MAX_ROUNDS], cpu[KINDS][MAX_ROUNDS];
    static const int ceiling_of[KINDS] = {[UNTRACKED] = CEILING, [CEILING] = -1,
                                          [BACKEND] = CEILING, [INSERT] = CEILING,
                                          [CEILING_SOURCE] = -1, [UPLINK] = CEILING_SOURCE};
    for (int k = 0; k < rounds; k++) {
        for (int i = 0; i < KINDS; i++) {
            int kind = k % 2 ? KINDS - 1 - i : i;
            measured m = measure(kind, s, path, rows);
            rate[kind][k] = m.rate;
            cpu_us[kind][k] = m.cpu_us;
        }
        for (int kind = 0; kind < KINDS; kind++) {
            int base = ceiling_of[kind];
            if (base < 0) continue;
            bool inverse = kind == UNTRACKED; /* the ceiling against it */
            ratio[kind][k] = inverse ? rate[base][k] / rate[kind][k]
                                     : rate[kind][k] / rate[base][k];
            cpu[kind][k] = inverse ? cpu_us[kind][k] / cpu_us[base][k]
                                   : cpu_us[base][k] / cpu_us[kind][k];
        }
        printf("round %d: ceiling %.0f rows/s (server %.1f us/row); backend %.2fx (cpu %.2fx), "
               "uplink %.2fx (cpu %.2fx) of %.0f, INSERT %.2fx (cpu %.2fx), triggers %.2fx "
               "(cpu %.2fx)\n",
               k + 1, rate[CEILING][k], cpu_us[CEILING][k], ratio[BACKEND][k], cpu[BACKEND][k],
               ratio[UPLINK][k], cpu[UPLINK][k], rate[CEILING_SOURCE][k], ratio[INSERT][k],
               cpu[INSERT][k], ratio[UNTRACKED][k], cpu[UNTRACKED][k]);
    }
    printf("medians of %d rounds (rows/s; server CPU per row as a ratio, 1 = the ceiling's):\n",
           rounds);
    printf("ceiling (raw COPY)            %9.0f rows/s, server %.1f us/row\n",
           median(rate[CEILING], rounds), median(cpu_us[CEILING], rounds));
    printf("raw COPY without record_latest's triggers %.0f rows/s: the ceiling is %.2fx that "
           "(cpu %.2fx)\n",
           median(rate[UNTRACKED], rounds), median(ratio[UNTRACKED], rounds),
           median(cpu[UNTRACKED], rounds));
    printf("multi-row INSERT              %9.0f rows/s  %.2fx the ceiling (cpu %.2fx)\n",
           median(rate[INSERT], rounds), median(ratio[INSERT], rounds),
           median(cpu[INSERT], rounds));
    printf("backend (store + flush)       %9.0f rows/s  %.2fx (goal >= 0.8x) (cpu %.2fx)\n",
           median(rate[BACKEND], rounds), median(ratio[BACKEND], rounds),
           median(cpu[BACKEND], rounds));
    printf("ceiling with source_id, topic %9.0f rows/s, server %.1f us/row\n",
           median(rate[CEILING_SOURCE], rounds), median(cpu_us[CEILING_SOURCE], rounds));
    printf("uplink (SQLite -> PG)         %9.0f rows/s  %.2fx that ceiling (goal >= 0.8x) "
           "(cpu %.2fx)\n",
           median(rate[UPLINK], rounds), median(ratio[UPLINK], rounds),
           median(cpu[UPLINK], rounds));
}

/* argv[i] if it is a whole number, else the usage and exit (2; 0 for --help). */
static long number_argument(char **argv, int i) {
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (end != argv[i] && *end == '\0' && v >= 0) return v;
    bool help = strcmp(argv[i], "--help") == 0;
    fputs("usage: bench_postgres [rows per round (100000)] [rounds (5); 0: the query alone]\n",
          help ? stdout : stderr);
    exit(help ? 0 : 2);
}

int main(int argc, char **argv) {
    long rows = argc > 1 ? number_argument(argv, 1) : 100000;
    rows = rows < TXN_ROWS ? TXN_ROWS : rows / TXN_ROWS * TXN_ROWS; /* whole transactions */
    int rounds = argc > 2 ? (int)number_argument(argv, 2) : 5;
    rounds = rounds < 0 ? 0 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
    if (!pg_server_available()) die("server", "Debian's postgresql package is not installed");
    pg_server s;
    pg_server_start(&s);
    /* The schema, created as the backend creates it. */
    aimdb_postgres_options o = {.uri = s.uri, .gateway = "bench"};
    aimdb_backend b;
    char err[512];
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK) die("open", err);
    b.ops->close(b.self);
    char dir[] = "/tmp/aimdb-bench-pg-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", "failed");
    char path[128];
    snprintf(path, sizeof(path), "%s/local.db", dir);
    if (rounds) {
        build_local(path, rows);
        write_rounds(&s, path, rows, rounds);
    }
    fleet_query(&s);
    fleet_range(&s);
    unlink(path);
    char side[160];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    rmdir(dir);
    pg_server_cleanup(&s);
    return 0;
}
