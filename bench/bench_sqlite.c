/*
 * bench_sqlite.c -- history: writer rows/s and query latency on 10M rows.
 *
 * Writes.  The SQLite backend (one writer thread, group commit) is measured
 * against two baselines run in the same process on the same machine, with
 * the same schema (docs/schema.md), the same pragmas and the same rows:
 *   ceiling   a single-threaded C loop doing the INSERTs with one prepared
 *             statement in 100,000-row transactions;
 *   per-row   the same INSERTs, one transaction each (how a naive writer,
 *             and the original design, stores a message).
 * Goals: >= 0.8x the ceiling, >= 5x per-row.  For scale, the whole stack
 * (produce -> persist tap -> backend) is timed on the same rows too.
 *
 * Queries.  A database of 1,000 records x 10,000 rows (10M, values every
 * 15 s) is built once under <build>/bench-data/ and reused.  Latest-1 over
 * all 1,000 records and a 5,760-row range of one record (one day) are timed
 * as p50/p99 through the backend (rows to a C callback) and through the
 * persistence layer's JSON form (validation + the protocol's array), against
 * a full index scan (GROUP BY) and the bare SQL of the range.
 *
 * Aggregates (--aggregate).  One record at 15 s: 30 days (172,800 rows)
 * into hourly buckets and a year (2,102,400 rows) into daily ones, through
 * the layer's JSON form (the reply record.query sends), p50/p99 against
 * fetching the same range raw, and the scans that decided for rollups: SQL
 * GROUP BY with json_extract, the rows decoded in C (the layer's own
 * aggregation), and stepping the index alone.
 *
 *   bench_sqlite [--sweep | --aggregate] [data-dir]
 * --sweep instead runs what chose the defaults: queue and batch sizes, and
 * the writer's CPU per flush interval at a trickle of rows; --aggregate
 * only the aggregates (its database, 2.3M rows, is built once too).
 */
#include <errno.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aimdb/persist.h"
#include "aimdb/sqlite.h"
#include "sqlite_internal.h"

#define RECORDS 1000
#define WRITE_ROWS 1000000
#define PER_ROW_ROWS 20000
#define RAW_TXN_ROWS 100000
#define BIG_ROWS_PER_RECORD 10000
#define BIG_STEP_MS 15000
#define BIG_T0 1700000000000LL
#define RANGE_ROWS 5760
#define QUERY_RUNS 200
#define AGG_STEP_MS 15000
#define AGG_MONTH_ROWS (30 * 5760)
#define AGG_YEAR_ROWS (365 * 5760)
#define AGG_T0 1700000000000LL

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_sqlite: %s: %s\n", what, why);
    exit(1);
}

/* out = a + b, or die if it does not fit. */
static void concat(char *out, size_t cap, const char *a, const char *b) {
    if ((size_t)snprintf(out, cap, "%s%s", a, b) >= cap) die(a, "path too long");
}

/* ------------------------------------------------------------- rows */

/* The rows every write run stores: RECORDS names round-robin, a small JSON
 * object per row, increasing times.  Made up front so no run pays for
 * formatting. */
typedef struct rowset {
    char names[RECORDS][24];
    char (*json)[32];
    size_t *json_len;
    size_t n;
} rowset;

static void rowset_init(rowset *r, size_t n) {
    for (int i = 0; i < RECORDS; i++) snprintf(r->names[i], sizeof(r->names[i]), "bench::r%04d", i);
    r->json = malloc(n * sizeof(*r->json));
    r->json_len = malloc(n * sizeof(*r->json_len));
    if (!r->json || !r->json_len) die("rows", "out of memory");
    for (size_t i = 0; i < n; i++)
        r->json_len[i] = (size_t)snprintf(r->json[i], sizeof(r->json[i]),
                                          "{\"temp\":%.2f,\"seq\":%zu}",
                                          20.0 + (double)(i % 1000) / 100.0, i);
    r->n = n;
}

static const char *row_name(const rowset *r, size_t i) { return r->names[i % RECORDS]; }

/* ------------------------------------------------- plain SQLite side */

static void exec_or_die(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) die(sql, msg ? msg : "?");
}

static void remove_db(const char *path) {
    char p[1024];
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        concat(p, sizeof(p), path, suffix[i]);
        unlink(p);
    }
}

/* A fresh file with the backend's schema and default pragmas. */
static sqlite3 *fresh_plain(const char *path) {
    remove_db(path);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) die(path, sqlite3_errmsg(db));
    exec_or_die(db, "PRAGMA journal_mode=WAL");
    exec_or_die(db, "PRAGMA synchronous=NORMAL");
    exec_or_die(db, SQ_WRITER_PRAGMAS);
    exec_or_die(db, SQ_SCHEMA_SQL);
    return db;
}

static void insert_plain(sqlite3_stmt *st, const rowset *r, size_t i) {
    sqlite3_bind_text(st, 1, row_name(r, i), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->json[i], (int)r->json_len[i], SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, BIG_T0 + (int64_t)i);
    if (sqlite3_step(st) != SQLITE_DONE) die("insert", sqlite3_errmsg(sqlite3_db_handle(st)));
    sqlite3_reset(st);
}

/* Rows/s of a plain loop; txn_rows = 1 is a transaction per row. */
static double plain_rows_per_s(const char *path, const rowset *r, size_t n, size_t txn_rows) {
    sqlite3 *db = fresh_plain(path);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, SQ_INSERT_SQL, -1, &st, NULL);
    double t0 = now_s();
    for (size_t i = 0; i < n; i += txn_rows) {
        if (txn_rows > 1) exec_or_die(db, "BEGIN");
        for (size_t j = i; j < i + txn_rows && j < n; j++) insert_plain(st, r, j);
        if (txn_rows > 1) exec_or_die(db, "COMMIT");
    }
    double took = now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return (double)n / took;
}

/* ---------------------------------------------------- backend side */

static aimdb_backend open_backend(const aimdb_sqlite_options *o) {
    aimdb_backend b;
    char err[256];
    if (aimdb_sqlite_open(o, &b, err, sizeof(err)) != AIMDB_OK) die(o->path, err);
    return b;
}

/* Rows/s from the first store() to the flush that commits the last. */
static double backend_rows_per_s(const char *path, const rowset *r, size_t n, unsigned batch,
                                 unsigned queue, aimdb_backend_stats *out) {
    remove_db(path);
    aimdb_sqlite_options o = {.path = path, .batch_rows = batch, .queue_rows = queue};
    aimdb_backend b = open_backend(&o);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        if (b.ops->store(b.self, row_name(r, i), r->json[i], r->json_len[i],
                         BIG_T0 + (int64_t)i, NULL) != AIMDB_OK)
            die("store", "refused");
    if (b.ops->flush(b.self) != AIMDB_OK) die("flush", "failed");
    double took = now_s() - t0;
    b.ops->stats(b.self, out);
    b.ops->close(b.self);
    return (double)n / took;
}

/* ------------------------------------------------- the whole stack */

typedef struct stack_probe {
    aimdb_persist *p;
    uint64_t want;
} stack_probe;

static bool stack_done(stack_probe *s) {
    aimdb_persist_stats st;
    aimdb_persist_stats_get(s->p, &st);
    return st.backend.rows_stored + st.rows_lagged + st.rows_store_failed >= s->want;
}

/* produce -> persist tap (worker pool, json codec) -> backend -> commit,
 * all running at once on the same cores, with the same rows as the other
 * runs.  Each record's ring holds more than the values it gets, so no tap
 * can lag: every value is a row. */
static double stack_rows_per_s(const char *path, const rowset *r, aimdb_persist_stats *out) {
    size_t n = r->n;
    remove_db(path);
    aimdb_sqlite_options o = {.path = path};
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = NULL;
    if (aimdb_persist_attach(db, open_backend(&o), NULL, &p) != AIMDB_OK) die("attach", "failed");
    aimdb_record *recs[RECORDS];
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, (uint32_t)(n / RECORDS + 1)};
    char name[24];
    for (int i = 0; i < RECORDS; i++) {
        snprintf(name, sizeof(name), "bench::r%04d", i);
        if (aimdb_record_register(db, name, &ring, &aimdb_codec_json, &recs[i]) != AIMDB_OK ||
            aimdb_persist_record(p, recs[i], AIMDB_RETENTION_DEFAULT) != AIMDB_OK)
            die(name, "cannot persist");
    }
    if (aimdb_db_start(db) != AIMDB_OK) die("start", "failed");
    stack_probe probe = {p, n};
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        aimdb_produce_at(recs[i % RECORDS], r->json[i], r->json_len[i], BIG_T0 + (int64_t)i);
    while (!stack_done(&probe)) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    double took = now_s() - t0;
    aimdb_persist_stats_get(p, out);
    aimdb_db_free(db);
    return (double)n / took;
}

/* Machines running other work (CI, a shared 2-core box) make single runs
 * noisy; each figure is the best of RUNS, for baselines and backend alike. */
#define RUNS 3

static void bench_writes(const char *dir, const rowset *r) {
    char path[1024];
    concat(path, sizeof(path), dir, "/write.db");
    printf("\n== writes: %d records, %zu rows of ~%zu bytes, WAL, synchronous=NORMAL, best of %d\n",
           RECORDS, r->n, r->json_len[r->n / 2], RUNS);
    double ceiling = 0, per_row = 0, backend = 0;
    aimdb_backend_stats s = {0};
    for (int run = 0; run < RUNS; run++) {
        double c = plain_rows_per_s(path, r, r->n, RAW_TXN_ROWS);
        double p = plain_rows_per_s(path, r, PER_ROW_ROWS, 1);
        aimdb_backend_stats bs;
        double b = backend_rows_per_s(path, r, r->n, 0, 0, &bs);
        if (c > ceiling) ceiling = c;
        if (p > per_row) per_row = p;
        if (b > backend) backend = b, s = bs;
    }
    printf("ceiling   plain loop, %d-row transactions   %10.0f rows/s\n", RAW_TXN_ROWS, ceiling);
    printf("per-row   plain loop, 1 transaction per row  %10.0f rows/s  (%d rows)\n", per_row,
           PER_ROW_ROWS);
    printf("backend   writer thread, defaults            %10.0f rows/s  (%llu commits, "
           "%.0f rows each on average)\n",
           backend, (unsigned long long)s.batches, (double)r->n / (double)s.batches);
    printf("ratio     backend / ceiling = %.2fx (goal >= 0.8x)   backend / per-row = %.1fx "
           "(goal >= 5x)\n",
           backend / ceiling, backend / per_row);
    aimdb_persist_stats ps;
    double stack = stack_rows_per_s(path, r, &ps);
    printf("stack     produce -> tap -> backend          %10.0f rows/s  (%.2fx the backend "
           "alone; %llu lagged)\n",
           stack, stack / backend, (unsigned long long)ps.rows_lagged);
    remove_db(path);
}

/* -------------------------------------------- choosing the defaults */

static double process_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* CPU the writer spends per second on a trickle of rate rows/s. */
static double trickle_cpu(const char *path, const rowset *r, unsigned interval_ms, int rate) {
    remove_db(path);
    aimdb_sqlite_options o = {.path = path, .flush_interval_ms = interval_ms};
    aimdb_backend b = open_backend(&o);
    const int seconds = 2;
    double c0 = process_cpu_s();
    struct timespec gap = {0, 1000000000L / rate};
    for (int i = 0; i < rate * seconds; i++) {
        b.ops->store(b.self, row_name(r, (size_t)i), r->json[i], r->json_len[i], i, NULL);
        nanosleep(&gap, NULL);
    }
    double cpu = process_cpu_s() - c0;
    b.ops->close(b.self);
    return cpu / seconds;
}

static void bench_sweep(const char *dir, const rowset *r) {
    char path[1024];
    concat(path, sizeof(path), dir, "/sweep.db");
    printf("\n== sweep: queue_rows (a transaction takes up to half) -> rows/s\n");
    unsigned queues[] = {8192, 32768, 65536, 131072, 262144};
    for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
        aimdb_backend_stats s;
        double rps = backend_rows_per_s(path, r, r->n, 0, queues[i], &s);
        printf("queue %6u  %10.0f rows/s  %6.0f rows per commit\n", queues[i], rps,
               (double)r->n / (double)s.batches);
    }
    printf("\n== sweep: batch_rows (queue default) -> rows/s\n");
    unsigned batches[] = {256, 1024, 4096, 16384};
    for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
        aimdb_backend_stats s;
        double rps = backend_rows_per_s(path, r, r->n, batches[i], 0, &s);
        printf("batch %6u  %10.0f rows/s  %6.0f rows per commit\n", batches[i], rps,
               (double)r->n / (double)s.batches);
    }
    printf("\n== sweep: flush interval -> writer CPU at 1,000 rows/s\n");
    unsigned intervals[] = {10, 50, 100, 250};
    for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++)
        printf("flush %4u ms  %5.1f%% of a core\n", intervals[i],
               100 * trickle_cpu(path, r, intervals[i], 1000));
    remove_db(path);
}

/* ------------------------------------------------------ 10M rows */

static bool big_db_ready(const char *path) {
    sqlite3 *db;
    if (access(path, R_OK) != 0 || sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL))
        return false;
    sqlite3_stmt *st;
    bool ok = sqlite3_prepare_v2(db, "SELECT rows FROM bench_meta", -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW &&
              sqlite3_column_int64(st, 0) == (int64_t)RECORDS * BIG_ROWS_PER_RECORD;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* Rows interleaved in time as a live system writes them (every record
 * every 15 s), built under a temporary name and renamed when complete so
 * an interrupted build is never mistaken for a finished one. */
static void build_big_db(const char *path) {
    char tmp[1024];
    concat(tmp, sizeof(tmp), path, ".building");
    printf("building %s (10M rows, once) ...\n", path);
    fflush(stdout);
    double t0 = now_s();
    remove_db(tmp);
    sqlite3 *db;
    if (sqlite3_open(tmp, &db) != SQLITE_OK) die(tmp, sqlite3_errmsg(db));
    exec_or_die(db, "PRAGMA journal_mode=OFF");
    exec_or_die(db, "PRAGMA synchronous=OFF");
    exec_or_die(db, "PRAGMA cache_size=-262144");
    exec_or_die(db, SQ_SCHEMA_SQL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, SQ_INSERT_SQL, -1, &st, NULL);
    char name[24], json[48];
    exec_or_die(db, "BEGIN");
    for (int t = 0; t < BIG_ROWS_PER_RECORD; t++) {
        for (int rec = 0; rec < RECORDS; rec++) {
            snprintf(name, sizeof(name), "bench::r%04d", rec);
            int n = snprintf(json, sizeof(json), "{\"temp\":%.2f,\"seq\":%d}",
                             20.0 + (double)((t + rec) % 1000) / 100.0, t);
            sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, json, n, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 3, BIG_T0 + (int64_t)t * BIG_STEP_MS);
            if (sqlite3_step(st) != SQLITE_DONE) die("build", sqlite3_errmsg(db));
            sqlite3_reset(st);
        }
        if (t % 1000 == 999) {
            exec_or_die(db, "COMMIT");
            exec_or_die(db, "BEGIN");
        }
    }
    exec_or_die(db, "COMMIT");
    sqlite3_finalize(st);
    exec_or_die(db, "CREATE TABLE bench_meta(rows INTEGER); INSERT INTO bench_meta VALUES(10000000)");
    exec_or_die(db, "PRAGMA journal_mode=WAL");
    sqlite3_close(db);
    if (rename(tmp, path) != 0) die("rename", strerror(errno));
    printf("built in %.0f s\n", now_s() - t0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct timing {
    double samples[QUERY_RUNS];
    int n;
} timing;

static void report(const char *what, timing *t, size_t rows) {
    qsort(t->samples, (size_t)t->n, sizeof(double), cmp_double);
    printf("%-44s p50 %8.2f ms   p99 %8.2f ms   (%zu rows)\n", what,
           t->samples[t->n / 2] * 1e3, t->samples[(t->n * 99) / 100] * 1e3, rows);
}

static int count_row(const aimdb_history_row *row, void *ctx) {
    size_t *n = ctx;
    *n += row->value_len > 0;
    return 0;
}

/* History written by another tool is rolled up by the open backend's
 * writer in the background; query figures are taken once it is done. */
static bool rolled_up(const char *path) {
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return false;
    sqlite3_stmt *st;
    bool done = sqlite3_prepare_v2(db,
                                   "SELECT (SELECT rolled_up_to FROM record_rollup_state) = "
                                   "(SELECT max(id) FROM record_history)",
                                   -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return done;
}

static void wait_rolled_up(const char *path) {
    double t0 = now_s();
    while (!rolled_up(path)) {
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    if (now_s() - t0 > 1)
        printf("(rows written by another tool rolled up in %.0f s)\n", now_s() - t0);
}

/* The persistence layer over path's history once its rollups caught up,
 * so what is timed is the queries, not the catch-up. */
static aimdb_backend open_history(const char *path, aimdb_db **db, aimdb_persist **p) {
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = open_backend(&o);
    wait_rolled_up(path);
    *db = aimdb_db_new(NULL);
    *p = NULL;
    if (aimdb_persist_attach(*db, b, NULL, p) != AIMDB_OK) die("attach", "failed");
    return b;
}

/* Which 5,760-row window run i asks for: spread over records and time. */
static void range_of(int i, char *name, size_t cap, int64_t *start, int64_t *end) {
    int rec = (i * 7919) % RECORDS;
    int first = (i * 104729) % (BIG_ROWS_PER_RECORD - RANGE_ROWS);
    snprintf(name, cap, "bench::r%04d", rec);
    *start = BIG_T0 + (int64_t)first * BIG_STEP_MS;
    *end = *start + (int64_t)(RANGE_ROWS - 1) * BIG_STEP_MS;
}

static double time_group_by(const char *path) {
    sqlite3 *db;
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db,
                       "SELECT record_name, max(stored_at) FROM record_history "
                       "GROUP BY record_name",
                       -1, &st, NULL);
    double best = 1e9;
    for (int run = 0; run < 3; run++) {
        double t0 = now_s();
        int rows = 0;
        while (sqlite3_step(st) == SQLITE_ROW) rows++;
        sqlite3_reset(st);
        double took = now_s() - t0;
        if (rows != RECORDS) die("group by", "wrong row count");
        if (took < best) best = took;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return best;
}

static double time_plain_range(const char *path, timing *t) {
    sqlite3 *db;
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, SQ_ROWS_SQL, -1, &st, NULL);
    char name[24];
    for (t->n = 0; t->n < QUERY_RUNS; t->n++) {
        int64_t start, end;
        range_of(t->n, name, sizeof(name), &start, &end);
        double t0 = now_s();
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, start);
        sqlite3_bind_int64(st, 3, end);
        size_t rows = 0;
        while (sqlite3_step(st) == SQLITE_ROW) rows += sqlite3_column_bytes(st, 1) > 0;
        sqlite3_reset(st);
        t->samples[t->n] = now_s() - t0;
        if (rows != RANGE_ROWS) die("plain range", "wrong row count");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    qsort(t->samples, (size_t)t->n, sizeof(double), cmp_double);
    return t->samples[t->n / 2];
}

static void bench_queries(const char *dir) {
    char path[1024];
    concat(path, sizeof(path), dir, "/history-10m.db");
    if (!big_db_ready(path)) build_big_db(path);
    printf("\n== queries: %d records x %d rows = 10M rows (%s)\n", RECORDS, BIG_ROWS_PER_RECORD,
           path);
    aimdb_db *db;
    aimdb_persist *p;
    aimdb_backend b = open_history(path, &db, &p);

    timing t;
    size_t rows = 0;
    aimdb_query_params latest = {.pattern = "bench::*", .limit = 1};
    char err[256];
    for (t.n = 0; t.n < QUERY_RUNS; t.n++) {
        rows = 0;
        double t0 = now_s();
        if (b.ops->query(b.self, &latest, count_row, &rows, err, sizeof(err)) != AIMDB_OK)
            die("latest", err);
        t.samples[t.n] = now_s() - t0;
    }
    report("latest-1, 1,000 records: backend rows", &t, rows);
    double latest_p50 = t.samples[t.n / 2];
    aimdb_history_request latest_json = {.pattern = "bench::*", .limit = 1};
    size_t len = 0;
    for (t.n = 0; t.n < QUERY_RUNS; t.n++) {
        char *out;
        double t0 = now_s();
        if (aimdb_persist_query_json(p, &latest_json, &out, &len, err, sizeof(err)) != AIMDB_OK)
            die("latest json", err);
        t.samples[t.n] = now_s() - t0;
        free(out);
    }
    report("latest-1, 1,000 records: JSON reply", &t, RECORDS);
    double group_by = time_group_by(path);
    printf("%-44s      %8.2f ms   -> skip-scan is %.0fx faster\n",
           "baseline: full index scan (GROUP BY)", group_by * 1e3, group_by / latest_p50);

    char name[24];
    for (t.n = 0; t.n < QUERY_RUNS; t.n++) {
        aimdb_query_params range = {.pattern = name, .has_start = true, .has_end = true};
        range_of(t.n, name, sizeof(name), &range.start_ms, &range.end_ms);
        rows = 0;
        double t0 = now_s();
        if (b.ops->query(b.self, &range, count_row, &rows, err, sizeof(err)) != AIMDB_OK)
            die("range", err);
        t.samples[t.n] = now_s() - t0;
        if (rows != RANGE_ROWS) die("range", "wrong row count");
    }
    report("range of 5,760 rows: backend rows", &t, rows);
    double range_p50 = t.samples[t.n / 2];
    for (t.n = 0; t.n < QUERY_RUNS; t.n++) {
        char *out;
        aimdb_history_request range = {.pattern = name, .has_start = true, .has_end = true};
        range_of(t.n, name, sizeof(name), &range.start_ms, &range.end_ms);
        double t0 = now_s();
        if (aimdb_persist_query_json(p, &range, &out, &len, err, sizeof(err)) != AIMDB_OK)
            die("range json", err);
        t.samples[t.n] = now_s() - t0;
        free(out);
    }
    report("range of 5,760 rows: JSON reply", &t, RANGE_ROWS);
    printf("%-44s JSON reply %zu bytes\n", "", len);
    aimdb_db_free(db); /* closes the backend */
    timing plain;
    double plain_p50 = time_plain_range(path, &plain);
    printf("%-44s p50 %8.2f ms   -> backend costs %.2fx the bare SQL\n",
           "baseline: bare SQL of the range", plain_p50 * 1e3, range_p50 / plain_p50);
}

/* ------------------------------------------------------- aggregates */

/* Both records stored through the backend, so the writer rolls them up
 * as it commits (its rows/s with rollups are printed). */
static void build_agg_db(const char *path) {
    char tmp[1024];
    concat(tmp, sizeof(tmp), path, ".building");
    remove_db(tmp);
    printf("building %s (one record for 30 days, one for a year, at 15 s) ...\n", path);
    fflush(stdout);
    aimdb_sqlite_options o = {.path = tmp};
    aimdb_backend b = open_backend(&o);
    double t0 = now_s();
    char json[64];
    const struct {
        const char *name;
        int rows;
    } recs[] = {{"agg::month", AGG_MONTH_ROWS}, {"agg::year", AGG_YEAR_ROWS}};
    size_t total = 0;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < recs[r].rows; i++, total++) {
            int n = snprintf(json, sizeof(json), "{\"absolute_error\":%.3f,\"station\":\"vienna\"}",
                             (double)((i * 7919) % 5000) / 1000.0);
            if (b.ops->store(b.self, recs[r].name, json, (size_t)n,
                             AGG_T0 + (int64_t)i * AGG_STEP_MS, "weather/vienna/accuracy") !=
                AIMDB_OK)
                die("store", "failed");
        }
    if (b.ops->flush(b.self) != AIMDB_OK) die("flush", "failed");
    double took = now_s() - t0;
    b.ops->close(b.self);
    printf("stored %zu rows with rollups in %.1f s: %.0f rows/s\n", total, took,
           (double)total / took);
    if (rename(tmp, path) != 0) die("rename", strerror(errno));
    remove_db(tmp); /* the -wal and -shm the closed backend left under its old name */
}

static double best_of_scan(const char *path, const char *sql, int64_t start, int64_t end,
                           bool decode, size_t *out_rows) {
    sqlite3 *db;
    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    exec_or_die(db, "PRAGMA cache_size=-65536");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die(sql, sqlite3_errmsg(db));
    double best = 1e9;
    for (int run = 0; run < 5; run++) {
        aimdb_bucket_set *set = aimdb_bucket_set_new(3600000);
        sqlite3_bind_text(st, 1, "agg::month", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, start);
        sqlite3_bind_int64(st, 3, end);
        double t0 = now_s();
        size_t rows = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            rows++;
            if (!decode) continue;
            double v;
            bool has = aimdb_value_number((const char *)sqlite3_column_text(st, 1),
                                          (size_t)sqlite3_column_bytes(st, 1), "absolute_error", &v);
            aimdb_bucket_set_add(set, sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 0),
                                 has, v);
        }
        sqlite3_reset(st);
        double took = now_s() - t0;
        if (took < best) best = took;
        *out_rows = rows;
        aimdb_bucket_set_free(set);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return best;
}

static void time_json(aimdb_persist *p, const aimdb_history_request *req, int runs,
                      const char *what, size_t *bytes) {
    timing t;
    char err[256];
    for (t.n = 0; t.n < runs; t.n++) {
        char *out;
        double t0 = now_s();
        if (aimdb_persist_query_json(p, req, &out, bytes, err, sizeof(err)) != AIMDB_OK)
            die(what, err);
        t.samples[t.n] = now_s() - t0;
        free(out);
    }
    qsort(t.samples, (size_t)t.n, sizeof(double), cmp_double);
    printf("%-44s p50 %8.2f ms   p99 %8.2f ms   (%zu bytes, %d runs)\n", what,
           t.samples[t.n / 2] * 1e3, t.samples[(t.n * 99) / 100] * 1e3, *bytes, runs);
}

static void bench_aggregates(const char *dir) {
    char path[1024];
    concat(path, sizeof(path), dir, "/history-agg.db");
    if (access(path, R_OK) != 0) build_agg_db(path);
    const int64_t month_end = AGG_T0 + (int64_t)(AGG_MONTH_ROWS - 1) * AGG_STEP_MS;
    const int64_t year_end = AGG_T0 + (int64_t)(AGG_YEAR_ROWS - 1) * AGG_STEP_MS;
    const int64_t month_start = month_end - 30LL * 86400000 + 1; /* not on an hour */
    const int64_t year_start = year_end - 365LL * 86400000 + 1;
    printf("\n== aggregates: one record at 15 s (%s)\n", path);
    size_t rows = 0;
    const char *by_sql =
        "SELECT (stored_at / 3600000) * 3600000 AS b, "
        "avg(json_extract(value_json, '$.absolute_error')), "
        "min(json_extract(value_json, '$.absolute_error')), "
        "max(json_extract(value_json, '$.absolute_error')), count(*) "
        "FROM record_history INDEXED BY idx_record_time WHERE record_name = ?1 AND "
        "stored_at >= ?2 AND stored_at <= ?3 GROUP BY b ORDER BY b DESC";
    double group = best_of_scan(path, by_sql, month_start, month_end, false, &rows);
    printf("%-44s best %7.2f ms   (%zu buckets)\n", "scan: SQL GROUP BY json_extract, 30 d",
           group * 1e3, rows);
    const char *rows_sql = "SELECT id, value_json, stored_at FROM record_history INDEXED BY "
                           "idx_record_time WHERE record_name = ?1 AND stored_at >= ?2 AND "
                           "stored_at <= ?3";
    double decode = best_of_scan(path, rows_sql, month_start, month_end, true, &rows);
    printf("%-44s best %7.2f ms   (%zu rows)\n", "scan: rows decoded in C, 30 d", decode * 1e3,
           rows);
    const char *index_sql = "SELECT stored_at FROM record_history INDEXED BY idx_record_time "
                            "WHERE record_name = ?1 AND stored_at >= ?2 AND stored_at <= ?3";
    double index = best_of_scan(path, index_sql, month_start, month_end, false, &rows);
    printf("%-44s best %7.2f ms   (%zu rows)\n", "scan: the index alone, 30 d", index * 1e3, rows);

    aimdb_db *db;
    aimdb_persist *p;
    open_history(path, &db, &p);
    size_t bytes;
    aimdb_history_request month = {.pattern = "agg::month", .has_start = true,
                                   .start_ms = month_start, .has_end = true,
                                   .end_ms = month_end, .every_ms = 3600000,
                                   .field = "absolute_error"};
    time_json(p, &month, QUERY_RUNS, "30 d into 1 h buckets (rollups)", &bytes);
    aimdb_history_request month_raw = month;
    month_raw.every_ms = 0, month_raw.field = NULL;
    time_json(p, &month_raw, 10, "30 d raw (172,800 rows)", &bytes);
    aimdb_history_request year = {.pattern = "agg::year", .has_start = true,
                                  .start_ms = year_start, .has_end = true, .end_ms = year_end,
                                  .every_ms = 86400000, .field = "absolute_error"};
    time_json(p, &year, QUERY_RUNS, "365 d into 1 d buckets (rollups)", &bytes);
    aimdb_history_request year_raw = year;
    year_raw.every_ms = 0, year_raw.field = NULL;
    time_json(p, &year_raw, 3, "365 d raw (2,102,400 rows)", &bytes);
    aimdb_history_request quarter = month;
    quarter.every_ms = 900000; /* not whole hours: the rows */
    time_json(p, &quarter, 10, "30 d into 15 min buckets (rows in C)", &bytes);
    aimdb_db_free(db);
}

static const char usage[] = "usage: bench_sqlite [--sweep | --aggregate] [data-dir]\n";

int main(int argc, char **argv) {
    bool sweep = argc > 1 && strcmp(argv[1], "--sweep") == 0;
    bool aggregate = argc > 1 && strcmp(argv[1], "--aggregate") == 0;
    int first_free = 1 + (sweep || aggregate);
    const char *given = argc > first_free ? argv[first_free] : NULL;
    /* Any other option (--help among them) is not a data directory to
     * build ten million rows in. */
    if (argc > first_free + 1 || (given && given[0] == '-')) {
        bool help = given && strcmp(given, "--help") == 0;
        fputs(usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    char dir[1024];
    if (given) {
        snprintf(dir, sizeof(dir), "%s", given);
    } else {
        char self[1024];
        snprintf(self, sizeof(self), "%s", argv[0]);
        concat(dir, sizeof(dir), dirname(self), "/bench-data");
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) die(dir, strerror(errno));
    printf("bench_sqlite: SQLite %s, data in %s\n", sqlite3_libversion(), dir);
    rowset r;
    rowset_init(&r, WRITE_ROWS);
    if (sweep) {
        bench_sweep(dir, &r);
    } else if (aggregate) {
        bench_aggregates(dir);
    } else {
        bench_writes(dir, &r);
        bench_queries(dir);
        bench_aggregates(dir);
    }
    free(r.json);
    free(r.json_len);
    return 0;
}
