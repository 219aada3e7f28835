/*
 * codec.c -- the built-in value codecs: double, int64 and raw JSON text.
 *
 * Codecs are how the core stays ignorant of value types while persistence
 * and protocols still get JSON.  Each is a const object so that identity
 * (aimdb_record_register's "same codec") is a field-by-field comparison.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/aimdb.h"

/* Copy a bounded, not necessarily NUL-terminated, JSON number into buf so
 * strtod/strtoll can parse it; too long to be a number means invalid. */
static int number_text(const char *json, size_t len, char *buf, size_t cap) {
    if (len == 0 || len >= cap) return -1;
    memcpy(buf, json, len);
    buf[len] = '\0';
    return 0;
}

static long double_to_json(const void *value, size_t len, char *out, size_t cap) {
    double d;
    if (len != sizeof(d)) return -1;
    memcpy(&d, value, sizeof(d));
    if (!isfinite(d)) return -1; /* JSON has no NaN or Infinity */
    return snprintf(out, cap, "%.17g", d);
}

static long double_from_json(const char *json, size_t len, void *out, size_t cap) {
    char buf[64], *end;
    if (number_text(json, len, buf, sizeof(buf)) != 0) return -1;
    errno = 0;
    double d = strtod(buf, &end);
    if (end == buf || *end != '\0' || !isfinite(d)) return -1;
    if (cap >= sizeof(d)) memcpy(out, &d, sizeof(d));
    return sizeof(d);
}

static long int64_to_json(const void *value, size_t len, char *out, size_t cap) {
    int64_t v;
    if (len != sizeof(v)) return -1;
    memcpy(&v, value, sizeof(v));
    return snprintf(out, cap, "%lld", (long long)v);
}

static long int64_from_json(const char *json, size_t len, void *out, size_t cap) {
    char buf[32], *end;
    if (number_text(json, len, buf, sizeof(buf)) != 0) return -1;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (end == buf || *end != '\0' || errno == ERANGE) return -1;
    int64_t i = v;
    if (cap >= sizeof(i)) memcpy(out, &i, sizeof(i));
    return sizeof(i);
}

/* The json codec trusts its producers to hand it JSON text: checking every
 * value here would put a parser on the produce path.  Readers of history
 * validate rows instead (a bad one is skipped and counted). */
static long json_copy(const void *value, size_t len, char *out, size_t cap) {
    if (cap > 0) {
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(out, value, n);
        out[n] = '\0';
    }
    return (long)len;
}

static long json_from_json(const char *json, size_t len, void *out, size_t cap) {
    if (len <= cap) memcpy(out, json, len);
    return (long)len;
}

const aimdb_codec aimdb_codec_double = {"double", sizeof(double), double_to_json,
                                        double_from_json, NULL};
const aimdb_codec aimdb_codec_int64 = {"int64", sizeof(int64_t), int64_to_json,
                                       int64_from_json, NULL};
const aimdb_codec aimdb_codec_json = {"json", 0, json_copy, json_from_json, NULL};
