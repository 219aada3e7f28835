/*
 * duration.h -- durations as people write them: digits, then a unit
 * ("250ms", "30s", "15m", "1h", "7d").  aimdb.conf, the request protocol
 * and the command-line tools read durations with this one parser; each
 * says which units it takes and what a bare number means.
 */
#ifndef AIMDB_DURATION_H
#define AIMDB_DURATION_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 100 years in ms: the longest duration any caller takes. */
#define AIMDB_DURATION_MAX_MS (36525LL * 86400000LL)

/*
 * Parse text into *out (ms).  The units are s, m, h and d, and ms when
 * allow_ms; digits without a unit are bare_unit_ms each, or refused when
 * bare_unit_ms is 0.  False (and *out untouched) for anything else: a sign,
 * spaces, a fraction, an unknown unit, a value above max_ms.  0 is a valid
 * result; callers that cannot use it refuse it.  Pure; any thread.
 */
bool aimdb_duration_parse(const char *text, bool allow_ms, int64_t bare_unit_ms, int64_t max_ms,
                          int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
