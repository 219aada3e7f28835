/*
 * bench_util.c -- helpers shared by the broker benchmarks (bench_util.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <sqlite3.h>

#include "bench_util.h"
#include "harness.h"

double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

size_t bench_ping_phase(client *c, int phase_ms, int interval_ms, double *v, size_t cap) {
    size_t n = 0;
    double end = bench_now_ms() + phase_ms;
    while (n < cap && bench_now_ms() < end) {
        double t0 = bench_now_ms();
        client_publish(c, "bench-ping/self", "ping", 4, 0);
        received m;
        if (!client_receive(c, 1000, &m)) {
            fprintf(stderr, "bench: a ping was not back within 1 s\n");
            exit(1);
        }
        received_free(&m);
        v[n++] = bench_now_ms() - t0;
        double next = t0 + interval_ms;
        while (bench_now_ms() < next) sleep_ms(0);
    }
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_percentile(double *v, size_t n, double p) {
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

long long bench_count_rows(const char *path) {
    sqlite3 *db;
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM record_history", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}
