/*
 * duration.c -- the one parser of written durations (see duration.h).
 */
#include <string.h>

#include "aimdb/duration.h"

static const struct {
    const char *unit;
    int64_t ms;
} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};

/* The length of one unit in ms, 0 if unit names none (or ms, not allowed). */
static int64_t unit_ms(const char *unit, bool allow_ms, int64_t bare_unit_ms) {
    if (*unit == '\0') return bare_unit_ms;
    for (size_t i = allow_ms ? 0 : 1; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(unit, units[i].unit) == 0) return units[i].ms;
    return 0;
}

bool aimdb_duration_parse(const char *text, bool allow_ms, int64_t bare_unit_ms, int64_t max_ms,
                          int64_t *out) {
    if (!text) return false;
    const char *p = text;
    int64_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (max_ms - (*p - '0')) / 10) return false; /* above max_ms even at 1 ms each */
        n = n * 10 + (*p - '0');
    }
    if (p == text) return false;
    int64_t ms = unit_ms(p, allow_ms, bare_unit_ms);
    if (ms <= 0 || n > max_ms / ms) return false;
    *out = n * ms;
    return true;
}
