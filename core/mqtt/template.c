/*
 * template.c -- record-name templates: "accuracy::{1}" + "weather/vienna/
 * accuracy" matched by "weather/+/accuracy" gives "accuracy::vienna".
 *
 * A template is checked once, against its filter, when aimdb.conf is read;
 * expansion then trusts it and runs on the broker thread for every message,
 * so it only copies bytes.
 */
#include <stdio.h>
#include <string.h>

#include "aimdb/aimdb.h"
#include "aimdb/mqtt_route.h"
#include "mqtt_internal.h"

/* A placeholder's number: {N} gives N (1-based), {#} gives 0.  Checked
 * templates only: p is just after the '{'. */
static size_t placeholder(const char *p, const char **after) {
    size_t n = 0;
    if (*p == '#') p++;
    else
        while (*p >= '0' && *p <= '9') n = n * 10 + (size_t)(*p++ - '0');
    *after = p + 1; /* the '}' */
    return n;
}

/* What the filter offers: its '+' levels and whether it ends in '#'. */
static size_t count_plus(const char *filter, bool *has_hash) {
    size_t n = 0;
    *has_hash = false;
    const char *level = filter;
    for (;;) {
        if (level[0] == '+' && (level[1] == '/' || level[1] == '\0')) n++;
        if (level[0] == '#') *has_hash = true;
        const char *slash = strchr(level, '/');
        if (!slash) return n;
        level = slash + 1;
    }
}

/* Check the placeholder at p (just after '{') and set *after past it. */
static int check_placeholder(const char *p, const char **after, size_t n_plus, bool has_hash,
                             char *err, size_t errlen) {
    const char *close = strchr(p, '}');
    if (!close) return mqtt_invalid(err, errlen, "'{' without '}'");
    int width = (int)(close - p);
    *after = close + 1;
    if (width == 1 && *p == '#') {
        if (!has_hash) return mqtt_invalid(err, errlen, "{#} needs a filter ending in '#'");
        return AIMDB_OK;
    }
    size_t n = 0;
    bool digits = width > 0 && width <= 9 && p[0] != '0';
    for (int i = 0; digits && i < width; i++) {
        digits = p[i] >= '0' && p[i] <= '9';
        n = n * 10 + (size_t)(p[i] - '0');
    }
    if (!digits)
        return mqtt_invalid(err, errlen, "bad placeholder '{%.*s}' (use {1}..{N} or {#})",
                            width > 40 ? 40 : width, p);
    if (n > AIMDB_TOPIC_MAX_PLUS)
        return mqtt_invalid(err, errlen, "{%zu} is above the limit of {%d}", n,
                            AIMDB_TOPIC_MAX_PLUS);
    if (n > n_plus)
        return mqtt_invalid(err, errlen,
                            "{%zu} refers to a '+' level the filter does not have (it has %zu)",
                            n, n_plus);
    return AIMDB_OK;
}

int aimdb_name_template_check(const char *tmpl, const char *filter, char *err, size_t errlen) {
    if (!tmpl || !*tmpl) return mqtt_invalid(err, errlen, "empty name template");
    bool has_hash;
    size_t n_plus = count_plus(filter, &has_hash);
    for (const char *p = tmpl; *p;) {
        if (*p == '}') return mqtt_invalid(err, errlen, "'}' without '{'");
        if (*p != '{') {
            p++;
            continue;
        }
        int rc = check_placeholder(p + 1, &p, n_plus, has_hash, err, errlen);
        if (rc != AIMDB_OK) return rc;
    }
    return AIMDB_OK;
}

bool aimdb_name_template_is_fixed(const char *tmpl) { return strchr(tmpl, '{') == NULL; }

size_t aimdb_name_template_expand(const char *tmpl, const aimdb_topic_match *m, char *out,
                                  size_t cap) {
    sink s = sink_text(out, cap);
    for (const char *p = tmpl; *p;) {
        const char *brace = strchr(p, '{');
        if (!brace) {
            sink_write(&s, p, strlen(p));
            break;
        }
        sink_write(&s, p, (size_t)(brace - p));
        size_t n = placeholder(brace + 1, &p);
        const aimdb_topic_span *span = n == 0 ? &m->rest : &m->plus[n - 1];
        sink_write(&s, span->ptr, span->len);
    }
    return sink_finish_text(&s, cap);
}
