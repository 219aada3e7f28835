/*
 * sources.c -- which topics feed a record, so the broker's read ACL can
 * decide who may see it (docs/protocol.md: "a client sees only records whose
 * source topic the broker's ACLs let it read").
 *
 * A record's source is its rule's filter with every placeholder its name
 * template uses filled in: `accuracy::{1}` from `weather/+/accuracy` named
 * accuracy::vienna comes from weather/vienna/accuracy.  A '+' or '#' the
 * template does not use stays a wildcard (`all_temps` from sensors/+/temp
 * is fed by all of them); the broker's ACL code treats such a topic as
 * readable only when no ACL restricts the client, which is the safe side.
 *
 * A record's candidate sources come from reading its name back through
 * the templates: every rule whose template can produce the name and whose
 * filter routes the rebuilt topic back to that same rule and name.  (The
 * topic each value was actually published on travels with the value; the
 * candidates decide for values that carry none.)  A template like {1}-{2} can read a name several ways; all the
 * readings are kept (a client must be allowed to read each), up to
 * AIMDB_SOURCES_MAX, beyond which the name has no source at all.
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/gateway.h"

#define PARSE_STEP_LIMIT 100000 /* backtracking budget per name and rule */

/* Which placeholders a (checked) template uses. */
typedef struct template_refs {
    bool plus[AIMDB_TOPIC_MAX_PLUS + 1]; /* 1-based */
    bool rest;
} template_refs;

/* Parse the placeholder at t (t[0] == '{'): *index 0 for {#}, N for {N}.
 * Returns the text after '}'.  The template was checked by the mqtt layer. */
static const char *placeholder(const char *t, size_t *index) {
    t++;
    if (*t == '#') {
        *index = 0;
        return t + 2;
    }
    size_t n = 0;
    while (*t >= '0' && *t <= '9') n = n * 10 + (size_t)(*t++ - '0');
    *index = n;
    return t + 1;
}

static template_refs refs_of(const char *tmpl) {
    template_refs r;
    memset(&r, 0, sizeof(r));
    for (const char *t = tmpl; *t;) {
        if (*t != '{') {
            t++;
            continue;
        }
        size_t index;
        t = placeholder(t, &index);
        if (index == 0) r.rest = true;
        else if (index <= AIMDB_TOPIC_MAX_PLUS) r.plus[index] = true;
    }
    return r;
}

/* The filter with used placeholders filled from plus[] and rest.  '#' that
 * matched only the parent level ("" for a/#) gives the parent "a". */
static char *build_topic(const char *filter, const template_refs *refs,
                         const aimdb_topic_span *plus, aimdb_topic_span rest) {
    size_t cap = strlen(filter) + rest.len + 1;
    for (size_t i = 1; i <= AIMDB_TOPIC_MAX_PLUS; i++)
        if (refs->plus[i]) cap += plus[i - 1].len;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t len = 0, n_plus = 0;
    for (const char *level = filter;;) {
        const char *end = strchr(level, '/');
        size_t level_len = end ? (size_t)(end - level) : strlen(level);
        const char *text = level;
        size_t text_len = level_len;
        if (level_len == 1 && *level == '+') {
            n_plus++;
            if (n_plus <= AIMDB_TOPIC_MAX_PLUS && refs->plus[n_plus]) {
                text = plus[n_plus - 1].ptr;
                text_len = plus[n_plus - 1].len;
            }
        } else if (level_len == 1 && *level == '#' && refs->rest) {
            if (rest.len == 0) {
                if (len > 0) len--; /* drop the '/' before '#' */
                break;
            }
            text = rest.ptr;
            text_len = rest.len;
        }
        memcpy(out + len, text, text_len);
        len += text_len;
        if (!end) break;
        out[len++] = '/';
        level = end + 1;
    }
    out[len] = '\0';
    return out;
}

void aimdb_sources_free(aimdb_sources *s) {
    for (size_t i = 0; i < s->n; i++) free(s->topics[i]);
    s->n = 0;
}

/* ------------------------------------------------- reading a name back */

typedef struct reading {
    const aimdb_ruleset *rs;
    size_t rule;
    const char *name;
    const char *filter;
    template_refs refs;
    aimdb_topic_span plus[AIMDB_TOPIC_MAX_PLUS];
    bool plus_set[AIMDB_TOPIC_MAX_PLUS + 1];
    aimdb_topic_span rest;
    bool rest_set;
    long steps;
    bool overflow; /* too many readings or too much work */
    bool nomem;
    aimdb_sources *out;
} reading;

/* Does the rebuilt topic route back to this rule and this very name? */
static bool routes_back(const reading *r, const char *topic) {
    size_t cap = strlen(r->name) + 1;
    char *name = malloc(cap);
    if (!name) return false;
    aimdb_route route;
    int rc = aimdb_router_route(r->rs->router, topic, strlen(topic), name, cap, &route);
    bool same = rc == AIMDB_OK && route.rule == r->rule && strcmp(name, r->name) == 0;
    free(name);
    return same;
}

static void keep_reading(reading *r) {
    char *topic = build_topic(r->filter, &r->refs, r->plus, r->rest);
    if (!topic) {
        r->nomem = true;
        return;
    }
    bool keep = routes_back(r, topic);
    for (size_t i = 0; keep && i < r->out->n; i++) keep = strcmp(r->out->topics[i], topic) != 0;
    if (keep && r->out->n == AIMDB_SOURCES_MAX) r->overflow = true;
    else if (keep) r->out->topics[r->out->n++] = topic, topic = NULL;
    free(topic);
}

static bool span_equals(aimdb_topic_span s, const char *text) {
    return strncmp(s.ptr, text, s.len) == 0;
}

/* Match template t against name n, binding placeholders; every complete
 * match is one reading. */
static void read_at(reading *r, const char *t, const char *n) {
    if (r->overflow || r->nomem || ++r->steps > PARSE_STEP_LIMIT) {
        r->overflow = r->overflow || r->steps > PARSE_STEP_LIMIT;
        return;
    }
    while (*t && *t != '{') {
        if (*t++ != *n++) return;
    }
    if (*t == '\0') {
        if (*n == '\0') keep_reading(r);
        return;
    }
    size_t index;
    const char *after = placeholder(t, &index);
    bool *set = index ? &r->plus_set[index] : &r->rest_set;
    aimdb_topic_span *span = index ? &r->plus[index - 1] : &r->rest;
    if (*set) { /* used twice: must repeat the same text */
        if (strlen(n) >= span->len && span_equals(*span, n)) read_at(r, after, n + span->len);
        return;
    }
    *set = true;
    for (size_t len = 0;; len++) {
        *span = (aimdb_topic_span){n, len};
        read_at(r, after, n + len);
        /* A '+' level never spans a '/'; '#' may take anything. */
        if (n[len] == '\0' || (index && n[len] == '/')) break;
    }
    *set = false;
}

/* Every rule is read, not only the first that can produce the name: two
 * rules making one name (`accuracy::{1}` from weather/+/accuracy and from
 * other/+/x) both feed the record, and a client must be allowed every one
 * of their topics to see values whose own topic is not known. */
int aimdb_sources_from_name(const aimdb_ruleset *rs, const char *name, size_t *rule,
                            aimdb_sources *out) {
    memset(out, 0, sizeof(*out));
    bool found = false, overflow = false;
    for (size_t i = 0; i < aimdb_router_count(rs->router) && !overflow; i++) {
        const char *tmpl = aimdb_router_template(rs->router, i);
        size_t before = out->n;
        reading r = {.rs = rs, .rule = i, .name = name,
                     .filter = aimdb_router_filter(rs->router, i),
                     .refs = refs_of(tmpl), .out = out};
        read_at(&r, tmpl, name);
        if (r.nomem) {
            aimdb_sources_free(out);
            return AIMDB_ENOMEM;
        }
        overflow = r.overflow;
        if (!found && (out->n > before || overflow)) {
            found = true;
            *rule = i;
        }
    }
    if (overflow) aimdb_sources_free(out); /* ambiguous: no source */
    return found ? AIMDB_OK : AIMDB_ENOTFOUND;
}
