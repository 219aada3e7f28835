/*
 * bench_pg_aggregate.c -- aggregates over a fleet's history in PostgreSQL:
 * computed by the server (pg_aggregate.c) against the persistence layer's
 * own aggregation of the backend's raw rows (what answers without it: every
 * row of the range crosses the wire and is bucketed in C), side by side in
 * one run, the two interleaved so both see the same load.
 *
 * History: R records on G gateways, 30 days at 15 s each (172,800 rows per
 * record and gateway; 4 x 5 by default, 3,456,000 rows), values
 * {"t": <a multiple of 0.25>, "rh": <integer>}.  Requests, through
 * aimdb_persist_query_json (the protocol's answer, JSON included), field
 * "t", 1 h buckets, avg/min/max/count:
 *   fleet   every record on every gateway, the whole 30 days;
 *   panel   one record on one gateway (a dashboard's chart), 30 days;
 *   many    100 small records on 10 gateways, a day at 15 min each
 *           (96,000 rows, four a bucket): where a line costs the server
 *           about what its rows save.
 * Each run checks that both answers are the same text (the values are
 * exact in binary, so even the sums agree to the last digit).  What each
 * way moves from the server is counted in SQL from the rows it reads:
 * protocol bytes of the raw rows pg_reader fetches (4 text columns), and
 * of the lines pg_aggregate.c fetches (14 binary columns, topic NULL).
 *
 * Wall time on this shared machine swings with other work, so each run
 * also counts the CPU it took: the server processes of aimdb's
 * connections (/proc/PID/stat) plus this process (getrusage) -- the work
 * the query costs whoever runs it -- and this process alone, which stands
 * for the broker or aimdb-bridge that answers the query.
 *
 * The server is a throw-away cluster started like the tests'.
 *   bench_pg_aggregate [records gateways runs]
 */
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aimdb/postgres.h"
#include "pg_server.h"

#define DAY_MS 86400000LL
#define STEP_MS 15000LL
#define ROWS_PER_PAIR (30 * DAY_MS / STEP_MS)
#define T0 1700000000000LL
#define MAX_RUNS 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_pg_aggregate: %s: %s\n", what, why);
    exit(1);
}

static void exec_or_die(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(sql, PQerrorMessage(c));
    PQclear(r);
}

/* The history, one INSERT per gateway (the table made by the backend). */
static void seed(const pg_server *s, int records, int gateways) {
    PGconn *c = PQconnectdb(s->uri);
    if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
    double t0 = now_s();
    for (int g = 0; g < gateways; g++) {
        char sql[1024];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO record_history(gateway, record_name, value_json, stored_at, topic) "
                 "SELECT 'gw-%02d', 'temp::' || lpad(r::text, 2, '0'), "
                 "jsonb_build_object('t', ((i * 7919 + r) %% 160) * 0.25, 'rh', i %% 100), "
                 "%lld + i * %lld, 'sensors/' || r || '/t' "
                 "FROM generate_series(1, %d) r, generate_series(0::bigint, %lld) i",
                 g, T0, STEP_MS, records, (long long)ROWS_PER_PAIR - 1);
        exec_or_die(c, sql);
    }
    exec_or_die(c, "VACUUM ANALYZE record_history");
    PQfinish(c);
    printf("seeded %lld rows (%d records x %d gateways x %lld) in %.0f s\n",
           (long long)ROWS_PER_PAIR * records * gateways, records, gateways,
           (long long)ROWS_PER_PAIR, now_s() - t0);
}

/* 100 records x 10 gateways x a day at 15 min, named small::NNN. */
static void seed_many(const pg_server *s) {
    PGconn *c = PQconnectdb(s->uri);
    if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
    exec_or_die(c, "INSERT INTO record_history(gateway, record_name, value_json, stored_at, topic) "
                   "SELECT 'gw-' || lpad(g::text, 2, '0'), 'small::' || lpad(r::text, 3, '0'), "
                   "jsonb_build_object('t', (i % 40) * 0.5), 1700000000000 + i * 900000, "
                   "'small/' || r FROM generate_series(0, 9) g, generate_series(1, 100) r, "
                   "generate_series(0::bigint, 95) i");
    exec_or_die(c, "VACUUM ANALYZE record_history");
    PQfinish(c);
}

/* A database whose history is PostgreSQL; without_own: the backend's
 * aggregate hidden from the layer, which then aggregates query's rows. */
typedef struct side {
    aimdb_db *db;
    aimdb_persist *p;
    aimdb_backend_ops ops;
} side;

static void open_side(side *sd, const pg_server *s, bool without_own) {
    aimdb_postgres_options o = {.uri = s->uri, .gateway = "bench"};
    aimdb_backend b;
    char err[512];
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK) die("open", err);
    sd->ops = *b.ops;
    if (without_own) sd->ops.aggregate = NULL;
    sd->db = aimdb_db_new(NULL);
    if (!sd->db ||
        aimdb_persist_attach(sd->db, (aimdb_backend){&sd->ops, b.self}, NULL, &sd->p) != AIMDB_OK)
        die("attach", "failed");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The server processes of aimdb's connections (application_name). */
typedef struct backends {
    int pid[16];
    int n;
} backends;

static void find_backends(const pg_server *s, backends *b) {
    PGconn *c = PQconnectdb(s->uri);
    if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name = 'aimdb'");
    b->n = 0;
    for (int i = 0; i < PQntuples(r) && b->n < 16; i++) b->pid[b->n++] = atoi(PQgetvalue(r, i, 0));
    PQclear(r);
    PQfinish(c);
}

/* CPU ms so far of those processes. */
static double server_cpu_ms(const backends *b) {
    double ticks = 0;
    for (int i = 0; i < b->n; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", b->pid[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')'); /* fields after the command name */
        unsigned long utime = 0, stime = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                        &stime) == 2)
            ticks += (double)(utime + stime);
    }
    return ticks * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* CPU ms so far of this process: where aimdb runs (the broker's, or
 * aimdb-bridge's). */
static double own_cpu_ms(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
           ru.ru_stime.tv_usec / 1e3;
}

typedef struct timing {
    double ms[MAX_RUNS], cpu[MAX_RUNS], own[MAX_RUNS];
    int n;
    size_t bytes;
} timing;

static char *time_one(aimdb_persist *p, const aimdb_history_request *req, const backends *b,
                      timing *t) {
    char *out = NULL, err[256] = "";
    double s0 = server_cpu_ms(b), o0 = own_cpu_ms(), t0 = now_s();
    if (aimdb_persist_query_json(p, req, &out, &t->bytes, err, sizeof(err)) != AIMDB_OK)
        die("query", err);
    t->ms[t->n] = (now_s() - t0) * 1000;
    t->own[t->n] = own_cpu_ms() - o0;
    t->cpu[t->n] = server_cpu_ms(b) - s0 + t->own[t->n];
    t->n++;
    return out;
}

static double pct_of(double *v, int n, int p) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    int i = (n * p + 99) / 100 - 1; /* nearest rank */
    return v[i < 0 ? 0 : i];
}

static double pct(timing *t, int p) { return pct_of(t->ms, t->n, p); }

/* Protocol bytes of the raw rows and of the lines for the rows in WHERE
 * (DataRow: 7 bytes, then 4 per column and the value). */
static void wire_bytes(const pg_server *s, const char *where, double *rows_mb, double *lines_kb) {
    PGconn *c = PQconnectdb(s->uri);
    if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT sum(23 + octet_length(gateway) + octet_length(value_json::text) + "
             "octet_length(stored_at::text) + octet_length(topic)) FROM record_history WHERE %s), "
             "(SELECT sum(159 + octet_length(gateway)) FROM (SELECT DISTINCT gateway, "
             "record_name, stored_at / 3600000 FROM record_history WHERE %s) l(gateway))",
             where, where);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die(sql, PQerrorMessage(c));
    *rows_mb = atof(PQgetvalue(r, 0, 0)) / 1e6;
    *lines_kb = atof(PQgetvalue(r, 0, 1)) / 1e3;
    PQclear(r);
    PQfinish(c);
}

static void compare(const char *what, side *native, side *layer, const backends *procs,
                    const aimdb_history_request *req, int runs, long long rows, double rows_mb,
                    double lines_kb) {
    timing a = {0}, b = {0};
    bool same = true;
    for (int i = 0; i < runs; i++) {
        char *x = time_one(native->p, req, procs, &a), *y = time_one(layer->p, req, procs, &b);
        same = same && strcmp(x, y) == 0;
        free(x);
        free(y);
    }
    double a50 = pct(&a, 50), b50 = pct(&b, 50);
    printf("%-6s %9lld rows -> %6zu bytes of JSON   server: p50 %8.1f ms  p99 %8.1f ms   "
           "layer over raw rows: p50 %8.1f ms  p99 %8.1f ms   %.2fx   same answer: %s\n"
           "       CPU p50, server + client: server %.0f ms, layer %.0f ms (%.2fx); "
           "of that in aimdb's process: %.0f ms, %.0f ms\n"
           "       from the server: %.1f MB of rows, or %.0f kB of lines (%.0fx less)\n",
           what, rows, a.bytes, a50, pct(&a, 99), b50, pct(&b, 99), b50 / a50,
           same ? "yes" : "NO", pct_of(a.cpu, a.n, 50), pct_of(b.cpu, b.n, 50),
           pct_of(b.cpu, b.n, 50) / pct_of(a.cpu, a.n, 50), pct_of(a.own, a.n, 50),
           pct_of(b.own, b.n, 50), rows_mb, lines_kb, rows_mb * 1e3 / lines_kb);
}

int main(int argc, char **argv) {
    int records = argc > 1 ? atoi(argv[1]) : 4;
    int gateways = argc > 2 ? atoi(argv[2]) : 5;
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (records < 1 || records > 99 || gateways < 1 || gateways > 99 || runs < 1 ||
        runs > MAX_RUNS)
        die("usage", "bench_pg_aggregate [records 1-99] [gateways 1-99] [runs 1-64]");
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress as it comes, also into a file */
    if (!pg_server_available()) die("server", "Debian's postgresql package is not installed");
    pg_server s;
    pg_server_start(&s);
    side native, layer;
    open_side(&native, &s, false); /* creates the table */
    open_side(&layer, &s, true);
    seed(&s, records, gateways);
    const int64_t end = T0 + (ROWS_PER_PAIR - 1) * STEP_MS;
    aimdb_history_request fleet = {.pattern = "temp::*", .has_start = true, .start_ms = T0,
                                   .has_end = true, .end_ms = end, .every_ms = 3600000,
                                   .field = "t"};
    aimdb_history_request panel = fleet;
    panel.pattern = "temp::01";
    panel.gateway = "gw-00";
    printf("30 d at 15 s into 1 h buckets of field \"t\" (avg, min, max, count), %d runs "
           "each, interleaved\n", runs);
    /* Connect both readers, then find every aimdb connection. */
    char *warm = time_one(native.p, &panel, &(backends){0}, &(timing){0}); /* connects */
    free(warm);
    warm = time_one(layer.p, &panel, &(backends){0}, &(timing){0});
    free(warm);
    backends procs;
    find_backends(&s, &procs);
    double mb, kb;
    wire_bytes(&s, "record_name = 'temp::01' AND gateway = 'gw-00'", &mb, &kb);
    compare("panel", &native, &layer, &procs, &panel, runs, (long long)ROWS_PER_PAIR, mb, kb);
    wire_bytes(&s, "true", &mb, &kb);
    compare("fleet", &native, &layer, &procs, &fleet, runs,
            (long long)ROWS_PER_PAIR * records * gateways, mb, kb);
    seed_many(&s);
    aimdb_history_request many = {.pattern = "small::*", .has_start = true, .start_ms = T0,
                                  .has_end = true, .end_ms = T0 + DAY_MS - 1,
                                  .every_ms = 3600000, .field = "t"};
    wire_bytes(&s, "record_name LIKE 'small::%'", &mb, &kb);
    compare("many", &native, &layer, &procs, &many, runs, 96000, mb, kb);
    aimdb_db_free(native.db);
    aimdb_db_free(layer.db);
    pg_server_cleanup(&s);
    return 0;
}
