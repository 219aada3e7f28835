/*
 * rule_warnings.c -- rules of aimdb.conf that do not do what they seem to,
 * said once at start-up (and on reload) with their line numbers.
 *
 * Three mistakes are silent otherwise:
 *   - a rule whose filter an earlier rule already has never receives a
 *     message (the first match wins);
 *   - two rules whose templates can make the same name feed one record from
 *     two topics -- correct (access is decided per value, by its topic) but
 *     rarely meant.  "Can make the same name" reads each placeholder as any
 *     text: two templates overlap when some name matches both, which
 *     over-approximates (a {N} never holds a '/') on the side of saying too
 *     much;
 *   - `persist` on a latest or mailbox buffer.  The persist tap reads the
 *     buffer as any reader does (DESIGN: a latest buffer's intermediate
 *     values collapse), and it reads once per burst the relay produces, so
 *     values that arrive within about a millisecond of each other -- a
 *     device sending a few at once -- reach history as the last of them
 *     alone, with nothing counted.  Legal, since the buffer says so, but not
 *     what `persist` is written for.  A ring hands a tap every value, and
 *     one that falls a whole ring behind is counted (rows/dropped).
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/gateway.h"

/* The template with every {..} placeholder as one '*'. */
static char *as_glob(const char *tmpl) {
    char *out = malloc(strlen(tmpl) + 1), *o = out;
    if (!out) return NULL;
    for (const char *t = tmpl; *t;) {
        if (*t == '{' && strchr(t, '}')) {
            *o++ = '*';
            t = strchr(t, '}') + 1;
        } else {
            *o++ = *t++;
        }
    }
    *o = '\0';
    return out;
}

/* Is there a string both globs ('*' = any run) match?  Dynamic programming
 * over suffixes: can[i][j] says p+i and q+j share a match. */
static bool globs_overlap(const char *p, const char *q) {
    size_t n = strlen(p), m = strlen(q);
    bool *can = calloc((n + 1) * (m + 1), sizeof(*can));
    if (!can) return false;
#define CAN(i, j) can[(i) * (m + 1) + (j)]
    for (size_t i = n + 1; i-- > 0;) {
        for (size_t j = m + 1; j-- > 0;) {
            bool v;
            if (i == n && j == m) v = true;
            else if (i < n && p[i] == '*') v = CAN(i + 1, j) || (j < m && CAN(i, j + 1));
            else if (j < m && q[j] == '*') v = CAN(i, j + 1) || (i < n && CAN(i + 1, j));
            else v = i < n && j < m && p[i] == q[j] && CAN(i + 1, j + 1);
            CAN(i, j) = v;
        }
    }
    bool overlap = CAN(0, 0);
#undef CAN
    free(can);
    return overlap;
}

static void warn_collapsing_history(const aimdb_conf_rule *rule, const aimdb_runtime *rt) {
    if (!rule->persist || rule->buffer.kind == AIMDB_BUFFER_RING) return;
    aimdb_log(rt, AIMDB_LOG_WARNING,
              "aimdb.conf:%u: persist with buffer=%s: history stores the newest value each "
              "time it reads one, so of values that arrive together it keeps only the last; "
              "leave buffer= out (a ring) to keep every value",
              rule->line, rule->buffer.kind == AIMDB_BUFFER_LATEST ? "latest" : "mailbox");
}

void aimdb_conf_warn_rules(const aimdb_conf *conf, const aimdb_runtime *rt) {
    for (size_t j = 0; j < conf->n_rules; j++) {
        const aimdb_conf_rule *later = &conf->rules[j];
        warn_collapsing_history(later, rt);
        char *later_glob = as_glob(later->name_template);
        for (size_t i = 0; i < j && later_glob; i++) {
            const aimdb_conf_rule *earlier = &conf->rules[i];
            if (strcmp(earlier->topic_filter, later->topic_filter) == 0) {
                aimdb_log(rt, AIMDB_LOG_WARNING,
                          "aimdb.conf:%u: this rule never receives a message: line %u has "
                          "the same filter '%s' and the first matching rule wins",
                          later->line, earlier->line, later->topic_filter);
                break; /* it produces nothing, so no name overlap to tell either */
            }
            char *earlier_glob = as_glob(earlier->name_template);
            if (earlier_glob && globs_overlap(earlier_glob, later_glob))
                aimdb_log(rt, AIMDB_LOG_WARNING,
                          "aimdb.conf:%u: record names of this rule ('%s') can also come "
                          "from line %u ('%s'): such a record gets values of both filters "
                          "(each value is shown to whoever may read its own topic)",
                          later->line, later->name_template, earlier->line,
                          earlier->name_template);
            free(earlier_glob);
        }
        free(later_glob);
    }
}
