/*
 * bench_requests.h -- bench_plugin --requests (bench_requests.c): what a
 * request costs the broker by record count, under a flood, and at QoS 0
 * and 1.
 */
#ifndef AIMDB_BENCH_REQUESTS_H
#define AIMDB_BENCH_REQUESTS_H

#include <stdbool.h>

/* Print the figures; false if a goal was missed. */
bool bench_requests(bool quick);
/* The flood figures alone (bench_plugin --flood). */
bool bench_request_flood(void);

#endif
