/*
 * topic.c -- MQTT topic names and filters: validation and matching.
 *
 * The rules are MQTT 3.1.1 / 5.0 section 4.7, implemented here once so the
 * plugin (where the broker has already checked them) and the bridge (where
 * nobody has) agree on what a rule matches.  Matching walks filter and topic
 * level by level in one pass and records what each wildcard matched, which
 * is what name templates are expanded from.
 */
#include <stdio.h>
#include <string.h>

#include "aimdb/aimdb.h"
#include "aimdb/json.h"
#include "aimdb/mqtt_route.h"

static int fail(char *err, size_t errlen, const char *reason) {
    if (errlen > 0) snprintf(err, errlen, "%s", reason);
    return AIMDB_EINVAL;
}

int aimdb_topic_filter_check(const char *filter, char *err, size_t errlen) {
    if (!filter || !*filter) return fail(err, errlen, "empty topic filter");
    size_t len = strlen(filter);
    if (len > AIMDB_TOPIC_MAX_LEN) return fail(err, errlen, "longer than 65535 bytes");
    if (!aimdb_utf8_valid(filter, len)) return fail(err, errlen, "not valid UTF-8");
    for (const char *level = filter;;) {
        const char *stop = strchr(level, '/');
        size_t n = stop ? (size_t)(stop - level) : strlen(level);
        bool plus = memchr(level, '+', n) != NULL, hash = memchr(level, '#', n) != NULL;
        if (plus && n != 1) return fail(err, errlen, "'+' must be a whole level");
        if (hash && (n != 1 || stop))
            return fail(err, errlen, "'#' must be the last level, on its own");
        if (!stop) return AIMDB_OK;
        level = stop + 1;
    }
}

int aimdb_topic_name_check(const char *topic, size_t len, char *err, size_t errlen) {
    if (!topic || len == 0) return fail(err, errlen, "empty topic");
    if (len > AIMDB_TOPIC_MAX_LEN) return fail(err, errlen, "longer than 65535 bytes");
    if (!aimdb_utf8_valid(topic, len)) return fail(err, errlen, "not valid UTF-8");
    if (memchr(topic, '\0', len)) return fail(err, errlen, "contains U+0000");
    if (memchr(topic, '+', len) || memchr(topic, '#', len))
        return fail(err, errlen, "a topic name cannot contain '+' or '#'");
    return AIMDB_OK;
}

/* Where the topic level starting at t ends: at its '/' or at end. */
static const char *level_end(const char *t, const char *end) {
    const char *slash = memchr(t, '/', (size_t)(end - t));
    return slash ? slash : end;
}

/*
 * Invariant at the top of the loop: f and t are at the start of a level
 * (after a '/', or at the beginning), and every level before matched.
 */
bool aimdb_topic_matches(const char *filter, const char *topic, size_t len,
                         aimdb_topic_match *m) {
    aimdb_topic_match scratch;
    if (!m) m = &scratch;
    const char *f = filter, *t = topic, *end = topic + len;
    /* MQTT 4.7.2: "$..." topics are the server's, hidden from wildcards. */
    if (len > 0 && topic[0] == '$' && (f[0] == '+' || f[0] == '#')) return false;
    m->n_plus = 0;
    m->has_rest = false;
    for (;;) {
        if (f[0] == '#') {
            m->has_rest = true;
            m->rest = (aimdb_topic_span){t, (size_t)(end - t)};
            return true;
        }
        if (f[0] == '+') {
            const char *stop = level_end(t, end);
            if (m->n_plus < AIMDB_TOPIC_MAX_PLUS)
                m->plus[m->n_plus] = (aimdb_topic_span){t, (size_t)(stop - t)};
            m->n_plus++;
            t = stop;
            f++;
        } else {
            for (; *f && *f != '/'; f++, t++)
                if (t == end || *t != *f) return false;
            if (t < end && *t != '/') return false; /* topic level is longer */
        }
        /* f is at '/' or the end of the filter; t at '/' or the end. */
        if (*f == '\0') return t == end;
        if (t == end) {
            /* "a/#" also matches "a": '#' includes the parent level */
            if (f[1] != '#') return false;
            m->has_rest = true;
            m->rest = (aimdb_topic_span){end, 0};
            return true;
        }
        f++;
        t++;
    }
}
