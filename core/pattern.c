/*
 * pattern.c -- record-name patterns: the one rule of docs/protocol.md for
 * record.query, record.list and every history backend.
 *
 * '*' matches any run of characters, also an empty one; every other byte,
 * '%', '_', '?', '[' and '\' included, matches only itself.  Backends use
 * the literal prefix to seek an index and this matcher for the exact
 * answer, so no SQL wildcard semantics (LIKE, GLOB) ever leak into what a
 * client's pattern means.
 */
#include <string.h>

#include "aimdb/aimdb.h"

size_t aimdb_pattern_prefix_len(const char *pattern) {
    return pattern ? strcspn(pattern, "*") : 0;
}

/* Greedy match with backtracking to the last '*' only: a later '*' can
 * absorb whatever an earlier one would have, so remembering one resume
 * point is enough and the worst case stays O(len(pattern) * len(name)). */
bool aimdb_pattern_match(const char *pattern, const char *name) {
    const char *p = pattern ? pattern : "*";
    const char *s = name;
    const char *after_star = NULL; /* pattern position just past the last '*' */
    const char *star_from = NULL;  /* where that '*' began absorbing name bytes */
    while (*s) {
        if (*p == '*') {
            after_star = ++p;
            star_from = s;
        } else if (*p && *p == *s) {
            p++;
            s++;
        } else if (after_star) {
            p = after_star;
            s = ++star_from;
        } else {
            return false;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}
