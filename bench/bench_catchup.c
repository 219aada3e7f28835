/*
 * bench_catchup.c -- catch-up after an outage: one hour of a 1,000 msg/s
 * gateway (3.6 M rows in its local SQLite history) shipped by the uplink
 * to an empty PostgreSQL, and what that costs the gateway's local work.
 *
 * The backlog is written with plain SQL (as bench_sqlite builds its 10M
 * rows) and rolled up by the SQLite backend before anything is timed, as
 * a gateway that ran through the outage would have it.  A live stream of
 * 1,000 rows/s (10 every 10 ms, 100 records) then flows through the
 * backend for the whole run, and the main thread queries latest-1 of all
 * records every 100 ms, in three phases measured side by side:
 *
 *   outage     the uplink not running (what the gateway does while the
 *              server is unreachable: the baseline);
 *   catch-up   the uplink started against the empty server, until its lag
 *              is 0 rows (every backlog row shipped, and the live ones);
 *   caught up  the uplink shipping the live stream.
 *
 * Per phase: rows the backend committed per second, store() p99, a row's
 * store -> commit time (a flush every 250 ms), latest-1 p50/p99, and how
 * late the stream's thread woke against its schedule.  Goal:
 * local figures within 10% of the outage phase during catch-up.
 *
 * The server is a throw-away cluster on this machine (fsync off), so it
 * competes with the gateway for the same cores, as a remote one would not.
 *
 *   bench_catchup [--quick] [rows]    --quick: 360,000 rows (6 minutes of
 *                                     backlog), the hour extrapolated
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aimdb/postgres.h"
#include "aimdb/sqlite.h"
#include "pg_server.h"
#include "sqlite_internal.h"

#define RECORDS 100
#define RATE 1000          /* live rows/s */
#define TICK_MS 10         /* the stream stores RATE * TICK_MS / 1000 rows per tick */
#define QUERY_GAP_MS 100
#define FLUSH_GAP_MS 250   /* how often the stream times a store -> commit */
#define HOUR_ROWS 3600000L
#define CATCH_UP_LIMIT_S 1800

enum { OUTAGE, CATCH_UP, CAUGHT_UP, PHASES };
static const char *const phase_name[PHASES] = {"outage (uplink off)", "catch-up",
                                               "caught up"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_catchup: %s: %s\n", what, why);
    exit(1);
}

/* ------------------------------------------------------------ samples */

typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static void add_sample(samples *s, double x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof(double));
        if (!s->v) die("samples", "out of memory");
    }
    s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of s; 0 if empty. */
static double quantile(samples *s, double q) {
    if (!s->n) return 0;
    qsort(s->v, s->n, sizeof(double), cmp_double);
    size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
    return s->v[i];
}

/* Guarded by the stream thread alone while it runs; read after it stops. */
typedef struct phase_figures {
    samples store_us, commit_ms, query_ms;
    double started_s, ended_s;
    uint64_t committed_at_start, committed_at_end;
    double late_ms_max; /* how far the stream fell behind its schedule */
} phase_figures;

static phase_figures figures[PHASES];
static _Atomic int current_phase = OUTAGE;
static _Atomic bool stream_stop;

/* --------------------------------------------------------- the backlog */

static void exec_or_die(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) die(sql, msg ? msg : "?");
}

static void row_text(long i, char *record, size_t rcap, char *json, size_t jcap) {
    snprintf(record, rcap, "temp::%03ld", i % RECORDS);
    snprintf(json, jcap, "{\"value\":%ld.5,\"unit\":\"C\",\"seq\":%ld}", i % 400, i);
}

/* rows at 1,000 rows/s ending now, interleaved over RECORDS records. */
static void build_backlog(const char *path, long rows) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) die(path, sqlite3_errmsg(db));
    exec_or_die(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144");
    exec_or_die(db, SQ_SCHEMA_SQL);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, SQ_INSERT_SQL, -1, &st, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(db));
    int64_t t0 = wall_ms() - rows * 1000 / RATE;
    exec_or_die(db, "BEGIN");
    for (long i = 0; i < rows; i++) {
        char record[32], json[96];
        row_text(i, record, sizeof(record), json, sizeof(json));
        sqlite3_bind_text(st, 1, record, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, json, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, t0 + i * 1000 / RATE);
        sqlite3_bind_text(st, 4, "sensors/x/temperature", -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) die("backlog", sqlite3_errmsg(db));
        sqlite3_reset(st);
        if (i % 100000 == 99999) exec_or_die(db, "COMMIT; BEGIN");
    }
    exec_or_die(db, "COMMIT");
    sqlite3_finalize(st);
    exec_or_die(db, "PRAGMA journal_mode=WAL");
    sqlite3_close(db);
}

static int64_t local_int(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

/* The backend rolls up rows it did not write in the background; wait
 * until it has (bounded), so no phase pays for it. */
static void wait_rolled_up(const char *path, int64_t max_id) {
    double t0 = now_s();
    while (local_int(path, "SELECT rolled_up_to FROM record_rollup_state") < max_id) {
        if (now_s() - t0 > 900) die("rollup", "not caught up in 15 minutes");
        usleep(200000);
    }
    if (local_int(path, "SELECT sum(rows) FROM record_rollup WHERE field = ''") != max_id)
        die("rollup", "the lines do not hold every backlog row");
    printf("backlog rolled up by the backend in %.1f s\n", now_s() - t0);
}

/* ---------------------------------------------------------- the stream */

static aimdb_backend local;

static void sleep_until(struct timespec *due) {
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, due, NULL) != 0) {
    }
}

static void advance(struct timespec *t, long ms) {
    t->tv_nsec += ms * 1000000L;
    t->tv_sec += t->tv_nsec / 1000000000L;
    t->tv_nsec %= 1000000000L;
}

/* RATE rows/s on a fixed schedule; every FLUSH_GAP_MS a flush times how
 * long a row stored now takes to be committed. */
static void *stream_main(void *arg) {
    (void)arg;
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    long seq = 0;
    for (long tick = 0; !atomic_load(&stream_stop); tick++) {
        advance(&due, TICK_MS);
        sleep_until(&due);
        phase_figures *f = &figures[atomic_load(&current_phase)];
        double late = (now_s() - ((double)due.tv_sec + due.tv_nsec / 1e9)) * 1000;
        if (late > f->late_ms_max) f->late_ms_max = late;
        for (int k = 0; k < RATE * TICK_MS / 1000; k++, seq++) {
            char record[32], json[96];
            row_text(seq, record, sizeof(record), json, sizeof(json));
            double t0 = now_s();
            if (local.ops->store(local.self, record, json, strlen(json), wall_ms(),
                                 "sensors/x/temperature") != AIMDB_OK)
                die("store", "refused");
            add_sample(&f->store_us, (now_s() - t0) * 1e6);
        }
        if (tick % (FLUSH_GAP_MS / TICK_MS) == 0) {
            double t0 = now_s();
            if (local.ops->flush(local.self) != AIMDB_OK) die("flush", "failed");
            add_sample(&f->commit_ms, (now_s() - t0) * 1000);
        }
    }
    return NULL;
}

static int count_row(const aimdb_history_row *row, void *ctx) {
    (void)row;
    (*(long *)ctx)++;
    return 0;
}

static void query_once(samples *into) {
    aimdb_query_params q = {.pattern = "*", .limit = 1};
    char err[256];
    long got = 0;
    double t0 = now_s();
    if (local.ops->query(local.self, &q, count_row, &got, err, sizeof(err)) != AIMDB_OK)
        die("query", err);
    add_sample(into, (now_s() - t0) * 1000);
    if (got != RECORDS) die("query", "latest-1 did not return every record");
}

static void phase_begin(int p) {
    aimdb_backend_stats st;
    local.ops->stats(local.self, &st);
    figures[p].committed_at_start = st.rows_stored;
    figures[p].started_s = now_s();
    atomic_store(&current_phase, p);
}

static void phase_end(int p) {
    aimdb_backend_stats st;
    local.ops->stats(local.self, &st);
    figures[p].committed_at_end = st.rows_stored;
    figures[p].ended_s = now_s();
}

/* Queries every QUERY_GAP_MS until seconds have passed or done(ctx). */
static void run_phase(int p, double seconds, bool (*done)(void *), void *ctx) {
    phase_begin(p);
    while (now_s() - figures[p].started_s < seconds && !(done && done(ctx))) {
        query_once(&figures[p].query_ms);
        usleep(QUERY_GAP_MS * 1000);
    }
    phase_end(p);
}

/* ------------------------------------------------------------ catch-up */

typedef struct catch_up {
    aimdb_uplink *uplink;
    int64_t backlog_max_id;
} catch_up;

static bool caught_up(void *ctx) {
    catch_up *c = ctx;
    aimdb_uplink_stats st;
    aimdb_uplink_stats_get(c->uplink, &st);
    if (st.lost || st.errors) die("uplink", st.why[0] ? st.why : "lost rows or errors");
    return st.shipped_id >= c->backlog_max_id && st.lag_rows == 0;
}

/* The figures of one phase, in the order report prints them. */
enum { RATE_COL, STORE_P99, COMMIT_P50, COMMIT_P99, LATE_MAX, QUERY_P50, QUERY_P99, COLUMNS };

static void phase_columns(phase_figures *f, double col[COLUMNS]) {
    double secs = f->ended_s - f->started_s;
    col[RATE_COL] = (double)(f->committed_at_end - f->committed_at_start) / secs;
    col[STORE_P99] = quantile(&f->store_us, 0.99);
    col[COMMIT_P50] = quantile(&f->commit_ms, 0.5);
    col[COMMIT_P99] = quantile(&f->commit_ms, 0.99);
    col[LATE_MAX] = f->late_ms_max;
    col[QUERY_P50] = quantile(&f->query_ms, 0.5);
    col[QUERY_P99] = quantile(&f->query_ms, 0.99);
}

static void report(long rows, bool quick) {
    printf("\n%-20s %7s %9s %12s %12s %12s %9s %12s %12s\n", "phase", "seconds",
           "rows/s", "store() p99", "commit p50", "commit p99", "late max", "latest-1 p50",
           "latest-1 p99");
    double base[COLUMNS];
    phase_columns(&figures[OUTAGE], base);
    for (int p = 0; p < PHASES; p++) {
        phase_figures *f = &figures[p];
        double col[COLUMNS];
        phase_columns(f, col);
        printf("%-20s %7.1f %9.0f %9.0f us %9.2f ms %9.2f ms %6.1f ms %9.2f ms %9.2f ms\n",
               phase_name[p], f->ended_s - f->started_s, col[RATE_COL], col[STORE_P99],
               col[COMMIT_P50], col[COMMIT_P99], col[LATE_MAX], col[QUERY_P50],
               col[QUERY_P99]);
        if (p == OUTAGE) continue;
        printf("%-20s %7s", "  / outage", "");
        const int width[COLUMNS] = {9, 12, 12, 12, 9, 12, 12};
        for (int k = 0; k < COLUMNS; k++) printf(" %*.2fx", width[k] - 1, col[k] / base[k]);
        printf("\n");
    }
    printf("goal: rows/s and latencies within 10%% of the outage phase during catch-up\n");
    phase_figures *c = &figures[CATCH_UP];
    double secs = c->ended_s - c->started_s;
    double shipped = (double)rows + (double)(c->committed_at_end - c->committed_at_start);
    printf("\ncatch-up: %ld backlog rows (+ %.0f live) shipped in %.1f s, %.0f rows/s, "
           "%.0fx real time\n", rows, shipped - (double)rows, secs, shipped / secs,
           (double)rows / RATE / secs);
    if (quick || rows != HOUR_ROWS) {
        /* Shipping has to outrun the live stream: the hour's backlog drains at
         * (rate - RATE) rows/s. */
        double net = shipped / secs - RATE;
        printf("extrapolated, not measured: one hour (%ld rows) at this rate: %.0f s\n",
               HOUR_ROWS, (double)HOUR_ROWS / net);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress as it happens */
    bool quick = false;
    long rows = HOUR_ROWS;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--quick")) {
            rows = HOUR_ROWS / 10, quick = true;
        } else if ((rows = strtol(argv[i], &end, 10)), end == argv[i] || *end != '\0') {
            bool help = strcmp(argv[i], "--help") == 0;
            fputs("usage: bench_catchup [--quick] [rows (at least 10000)]\n",
                  help ? stdout : stderr);
            return help ? 0 : 2;
        }
    }
    if (rows < 10000) die("rows", "at least 10000");
    double window_s = quick ? 10 : 30;
    if (!pg_server_available()) die("server", "Debian's postgresql package is not installed");
    pg_server s;
    pg_server_start(&s);
    char dir[] = "/tmp/aimdb-bench-catchup-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", "failed");
    char path[128];
    snprintf(path, sizeof(path), "%s/local.db", dir);

    double t0 = now_s();
    build_backlog(path, rows);
    printf("backlog: %ld rows of %d records written with plain SQL in %.1f s\n", rows, RECORDS,
           now_s() - t0);
    int64_t backlog_max_id = local_int(path, "SELECT max(id) FROM record_history");

    /* Opened as the gateway opens it: the uplink exists first, for the hold. */
    aimdb_uplink_options uo = {.uri = s.uri, .gateway = "site-1", .sqlite_path = path};
    aimdb_uplink *u;
    char err[512];
    if (aimdb_uplink_new(&uo, &u, err, sizeof(err)) != AIMDB_OK) die("uplink", err);
    aimdb_sqlite_options so = {.path = path, .hold_after = aimdb_uplink_shipped_id,
                               .hold_ctx = u, .hold_ms = 30LL * 86400000};
    if (aimdb_sqlite_open(&so, &local, err, sizeof(err)) != AIMDB_OK) die("sqlite", err);
    wait_rolled_up(path, backlog_max_id);

    pthread_t stream;
    if (pthread_create(&stream, NULL, stream_main, NULL) != 0) die("thread", "failed");
    printf("live stream of %d rows/s and latest-1 every %d ms: %.0f s with the uplink off\n",
           RATE, QUERY_GAP_MS, window_s);
    run_phase(OUTAGE, window_s, NULL, NULL);
    printf("uplink started: catch-up\n");
    if (aimdb_uplink_start(u) != AIMDB_OK) die("uplink", "cannot start");
    catch_up c = {.uplink = u, .backlog_max_id = backlog_max_id};
    run_phase(CATCH_UP, CATCH_UP_LIMIT_S, caught_up, &c);
    if (!caught_up(&c)) die("uplink", "not caught up in 30 minutes");
    printf("caught up: %.0f s more\n", window_s);
    run_phase(CAUGHT_UP, window_s, NULL, NULL);
    atomic_store(&stream_stop, true);
    pthread_join(stream, NULL);
    aimdb_uplink_stats st;
    aimdb_uplink_stats_get(u, &st);
    report(rows, quick);

    aimdb_uplink_free(u);
    local.ops->close(local.self);
    int64_t in_pg = pg_query_int(&s, "SELECT count(*) FROM record_history");
    int64_t local_rows = local_int(path, "SELECT count(*) FROM record_history");
    printf("rows: %" PRId64 " local, %" PRId64 " in PostgreSQL (the last live ones may not "
           "have shipped before the uplink stopped), uplink errors %" PRIu64 ", lost %" PRIu64
           "\n", local_rows, in_pg, st.errors, st.lost);
    /* Every local id from 1 up, each once: no gap, no copy. */
    int64_t off = pg_query_int(&s, "SELECT (count(*) - count(DISTINCT source_id)) + "
                                   "(max(source_id) - count(*)) FROM record_history");
    if (off != 0 || in_pg < backlog_max_id) die("check", "rows missing or shipped twice");
    char side[160];
    unlink(path);
    const char *ext[] = {"-wal", "-shm", ".lock"};
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        snprintf(side, sizeof(side), "%s%s", path, ext[i]);
        unlink(side);
    }
    rmdir(dir);
    pg_server_cleanup(&s);
    return 0;
}
