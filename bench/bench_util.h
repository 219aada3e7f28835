/*
 * bench_util.h -- what the broker benchmarks (bench_plugin, bench_bridge)
 * both need: a percentile of samples and the rows a history database holds.
 */
#ifndef AIMDB_BENCH_UTIL_H
#define AIMDB_BENCH_UTIL_H

#include <stddef.h>

/* The p-th percentile (0..1) of n > 0 samples; sorts v. */
double bench_percentile(double *v, size_t n, double p);

/* Rows in record_history of the SQLite file at path (read-only, so a
 * running writer is not disturbed); -1 if it cannot be read. */
long long bench_count_rows(const char *path);

#endif
