/*
 * bench_util.c -- helpers shared by the broker benchmarks (bench_util.h).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench_util.h"
#include "client.h"
#include "harness.h"

double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Pings are paced by sleeping until the next one is due, not by polling
 * the clock: a thread that wakes every few tens of microseconds competes
 * for the CPUs with the broker it measures (perf sched: 16,000 to 22,000
 * wake-ups of the pinging thread in a 2 s phase, up to a third of a CPU,
 * preempting a flooded broker thread every ~60 us). */
void bench_sleep_past(struct timespec *due, int interval_ms) {
    due->tv_nsec += (long)interval_ms * 1000000L;
    due->tv_sec += due->tv_nsec / 1000000000L;
    due->tv_nsec %= 1000000000L;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, due, NULL) == EINTR) {
    }
}

double bench_ping(client *c) {
    double t0 = bench_now_ms();
    client_publish(c, "bench-ping/self", "ping", 4, 0);
    received m;
    if (!client_receive(c, 1000, &m)) {
        fprintf(stderr, "bench: a ping was not back within 1 s\n");
        exit(1);
    }
    received_free(&m);
    return bench_now_ms() - t0;
}

size_t bench_ping_phase(client *c, int phase_ms, int interval_ms, double *v, size_t cap) {
    size_t n = 0;
    double end = bench_now_ms() + phase_ms;
    while (n < cap && bench_now_ms() < end) {
        struct timespec due;
        clock_gettime(CLOCK_MONOTONIC, &due);
        v[n++] = bench_ping(c);
        bench_sleep_past(&due, interval_ms);
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

long long bench_last_row_id(const char *path) {
    sqlite3 *db;
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM record_history", -1, &st,
                           NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

/* Fields 14 and 15 of /proc/PID/stat, counted after the ')' that ends the
 * command name (which may itself hold spaces and parentheses). */
double bench_process_cpu_s(pid_t pid) {
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(line, 1, sizeof(line) - 1, f) : 0;
    if (f) fclose(f);
    line[len] = '\0';
    char *p = strrchr(line, ')');
    unsigned long long utime, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void add_thread_use(pid_t pid, const char *tid, bench_thread_use *sum) {
    char path[PATH_MAX], line[128];
    snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, tid);
    FILE *f = fopen(path, "r");
    long long n, wait;
    if (f && fscanf(f, "%lld %lld", &n, &wait) == 2) {
        sum->cpu_ns += n;
        sum->wait_ns += wait;
    }
    if (f) fclose(f);
    snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, tid);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "voluntary_ctxt_switches: %lld", &n) == 1) sum->sleeps += n;
    if (f) fclose(f);
}

void bench_thread_groups(pid_t pid, const char *const *names, size_t groups,
                         bench_thread_use *use) {
    char dir[64], tid_main[16];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    snprintf(tid_main, sizeof(tid_main), "%d", (int)pid);
    memset(use, 0, groups * sizeof(*use));
    add_thread_use(pid, tid_main, &use[0]);
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        char path[PATH_MAX], comm[32] = "";
        snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (!fgets(comm, sizeof(comm), f)) comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        for (size_t g = 1; g < groups; g++)
            if (strcmp(comm, names[g]) == 0) add_thread_use(pid, e->d_name, &use[g]);
    }
    closedir(d);
}

void bench_publish_stream(int port, size_t n, size_t topics) {
    client *pub = client_connect(port, "bench-pub", MQTT_PROTOCOL_V311, NULL, NULL);
    if (!pub) {
        fprintf(stderr, "bench: the publisher cannot connect\n");
        exit(1);
    }
    char topic[32], value[48];
    for (size_t i = 0; i < n; i++) {
        snprintf(topic, sizeof(topic), "bench/%zu/v", i % topics);
        int len = snprintf(value, sizeof(value), "{\"seq\":%zu,\"v\":%.2f}", i, (double)i / 7);
        client_publish(pub, topic, value, (size_t)len, i + 1 == n ? 1 : 0);
    }
    client_disconnect(pub);
}
