/*
 * output.h -- how the `aimdb` CLI shows AimX results to a person: aligned
 * tables for record.query and record.list, times in local ISO-8601 with
 * the UTC offset, values as compact JSON.  (--json bypasses all of this
 * and prints the server's text.)  Internal to connector/tools.
 */
#ifndef AIMDB_OUTPUT_H
#define AIMDB_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* "2025-03-01T14:05:09.042+01:00" in the local time zone. */
void output_local_time(int64_t unix_ms, char *out, size_t cap);

/* record.query's {"count", "values": [...]}: RECORD, TIME, VALUE, and
 * GATEWAY after RECORD when entries name their gateway (fleet history).
 * -1 if the result does not have that shape (nothing printed). */
int output_query(const cJSON *result, FILE *out);

/* record.query's aggregates, {"count", "skipped", "values": [...]}: RECORD,
 * GATEWAY as above, TIME (the bucket's start), then a column per aggregate
 * named as the server names it (avg, min, ...).  -1 if the result has no
 * values array. */
int output_buckets(const cJSON *result, FILE *out);

/* record.list's array: RECORD, BUFFER, PERSIST, TOPIC_FILTER.  -1 if the
 * result is not an array. */
int output_list(const cJSON *result, FILE *out);

/* record.get's value on one line: a string as its text, anything else as
 * compact JSON.  -1 on out of memory. */
int output_value(const cJSON *value, FILE *out);

#endif
