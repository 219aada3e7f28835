/*
 * bench_util.h -- what the broker benchmarks (bench_plugin, bench_bridge)
 * share: a clock, a percentile of samples, the rows a history database
 * holds, and the ping stream that measures how long the broker thread
 * keeps a message waiting.
 */
#ifndef AIMDB_BENCH_UTIL_H
#define AIMDB_BENCH_UTIL_H

#include <stddef.h>

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

#endif
