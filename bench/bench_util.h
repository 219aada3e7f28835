/*
 * bench_util.h -- what the broker benchmarks (bench_plugin, bench_bridge,
 * bench_efficiency) share: a clock, a percentile of samples, the rows a
 * history database holds, the CPU a process and its threads have used, the
 * stream of small
 * JSON values a libmosquitto client publishes, and the ping stream that
 * measures how long the broker thread keeps a message waiting.
 */
#ifndef AIMDB_BENCH_UTIL_H
#define AIMDB_BENCH_UTIL_H

#include <stddef.h>
#include <time.h>
#include <sys/types.h>

#include "client.h"

/* Monotonic milliseconds, with their fraction. */
double bench_now_ms(void);

/* The p-th percentile (0..1) of n > 0 samples; sorts v. */
double bench_percentile(double *v, size_t n, double p);

/* Rows in record_history of the SQLite file at path (read-only, so a
 * running writer is not disturbed); -1 if it cannot be read. */
long long bench_count_rows(const char *path);

/* Round trips of a QoS 0 message c publishes to a topic it subscribed to
 * ("bench-ping/self"), one every interval_ms for phase_ms, into v (at most
 * cap); returns how many.  Exits if one is not back within a second. */
size_t bench_ping_phase(client *c, int phase_ms, int interval_ms, double *v, size_t cap);
/* One such round trip, in ms. */
double bench_ping(client *c);
/* Sleep until interval_ms after *due, which becomes that time. */
void bench_sleep_past(struct timespec *due, int interval_ms);

/* The largest id in record_history (the rows one writer has committed,
 * found without a scan, so it can be polled); -1 if it cannot be read. */
long long bench_last_row_id(const char *path);

/* User + system CPU seconds process pid has used, its finished threads
 * included (/proc/PID/stat, clock-tick resolution); -1 if it is gone. */
double bench_process_cpu_s(pid_t pid);

/* What threads have used: CPU time and time spent runnable but waiting
 * for a CPU (schedstat), and how many times they went to sleep (voluntary
 * context switches: each is a wake-up someone paid for). */
typedef struct bench_thread_use {
    long long cpu_ns, wait_ns, sleeps;
} bench_thread_use;

/* Sets use[0 .. groups-1] to what pid's threads have used, grouped by
 * name: group 0 is the process's main thread (its task id is pid) whatever
 * its name, group g > 0 every thread named names[g] (/proc/PID/task/TID/comm;
 * names[0] is not read).  Threads that have exited are in no group. */
void bench_thread_groups(pid_t pid, const char *const *names, size_t groups,
                         bench_thread_use *use);

/* Publish n values {"seq":I,"v":F} round-robin to bench/0/v ..
 * bench/(topics-1)/v from one libmosquitto client at QoS 0, the last one at
 * QoS 1 and awaited (the broker handles a connection's packets in order:
 * once it is acknowledged, all are in).  Exits the program if the client
 * cannot connect. */
void bench_publish_stream(int port, size_t n, size_t topics);

#endif
