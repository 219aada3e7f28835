/*
 * mqtt_route.h -- MQTT topic filters, record-name templates and the router
 * that maps a topic to the first matching rule of aimdb.conf.
 *
 * Filters follow MQTT 3.1.1/5.0 section 4.7: '/' separates levels, '+' is a
 * whole level, '#' is a whole level and the last one, and matches its parent
 * too ("a/#" matches "a").  A topic starting with '$' never matches a filter
 * starting with a wildcard.  Levels may be empty ("a//b").
 *
 * A name template is the record name with placeholders: {N} is the text of
 * the N-th '+' level of the filter (1-based), {#} the text '#' matched (""
 * when it matched the parent only).  Any other '{' or '}' is an error.
 *
 * The router is built once (not thread-safe while adding), then routes from
 * any number of threads at once without locks or allocation: exact filters
 * through a hash table, wildcard filters indexed by their first level and
 * tried in rule order, so the first rule in file order always wins.
 */
#ifndef AIMDB_MQTT_ROUTE_H
#define AIMDB_MQTT_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AIMDB_TOPIC_MAX_LEN 65535 /* MQTT's UTF-8 string limit */
#define AIMDB_TOPIC_MAX_PLUS 32   /* '+' levels a template may refer to */

/* ------------------------------------------------------------ topics */

/* Check a topic filter.  AIMDB_OK, or AIMDB_EINVAL with the reason (no
 * prefix, e.g. "'+' must be a whole level") written into err. */
int aimdb_topic_filter_check(const char *filter, char *err, size_t errlen);

/* Check a topic name, the publish side: non-empty, at most
 * AIMDB_TOPIC_MAX_LEN bytes, valid UTF-8 without U+0000, no '+' or '#'.
 * AIMDB_OK or AIMDB_EINVAL with the reason in err. */
int aimdb_topic_name_check(const char *topic, size_t len, char *err, size_t errlen);

/* A piece of the topic a wildcard matched; points into the topic. */
typedef struct aimdb_topic_span {
    const char *ptr;
    size_t len;
} aimdb_topic_span;

typedef struct aimdb_topic_match {
    size_t n_plus;                             /* '+' levels in the filter */
    aimdb_topic_span plus[AIMDB_TOPIC_MAX_PLUS]; /* the first n_plus (at most
                                                 * AIMDB_TOPIC_MAX_PLUS) */
    bool has_rest;                             /* the filter ends in '#' */
    aimdb_topic_span rest;                     /* what '#' matched */
} aimdb_topic_match;

/* Does topic (len bytes, no NUL needed) match the valid filter?  On a match
 * fills *m if m is not NULL.  Pure; no allocation. */
bool aimdb_topic_matches(const char *filter, const char *topic, size_t len,
                         aimdb_topic_match *m);

/* ---------------------------------------------------------- templates */

/* Check a name template against the filter it belongs to (the filter must
 * be valid): {N} needs N '+' levels, {#} a trailing '#'.  AIMDB_OK, or
 * AIMDB_EINVAL with the reason in err. */
int aimdb_name_template_check(const char *tmpl, const char *filter, char *err, size_t errlen);

/* Expand a checked template with a match of its filter.  snprintf
 * semantics: writes at most cap-1 bytes plus a NUL (if cap > 0) and returns
 * the full length.  No allocation. */
size_t aimdb_name_template_expand(const char *tmpl, const aimdb_topic_match *m, char *out,
                                  size_t cap);

/* True if the template has no placeholder, i.e. every topic of the rule
 * goes to one record. */
bool aimdb_name_template_is_fixed(const char *tmpl);

/* ------------------------------------------------------------- router */

typedef struct aimdb_router aimdb_router;

/* An empty router; NULL on ENOMEM.  Free with aimdb_router_free. */
aimdb_router *aimdb_router_new(void);
void aimdb_router_free(aimdb_router *r);

/*
 * Append a rule; its index is the number of rules added before it, so add
 * them in file order.  filter and tmpl are copied and checked as above:
 * AIMDB_EINVAL with the reason in err, AIMDB_ENOMEM (the rule is not added,
 * the router stays usable).  Not thread-safe: add every rule before the
 * first route.
 */
int aimdb_router_add(aimdb_router *r, const char *filter, const char *tmpl, char *err,
                     size_t errlen);

size_t aimdb_router_count(const aimdb_router *r);
/* The rule's filter and template (owned by the router); NULL if out of range. */
const char *aimdb_router_filter(const aimdb_router *r, size_t rule);
const char *aimdb_router_template(const aimdb_router *r, size_t rule);

typedef struct aimdb_route {
    size_t rule;     /* index of the first rule whose filter matches */
    size_t name_len; /* full length of the record name, even if cut */
} aimdb_route;

/*
 * Route a topic (len bytes, no NUL needed) to the first matching rule and
 * write the record name, NUL-terminated, into name[cap].  Returns
 *   AIMDB_OK        *out filled, name complete;
 *   AIMDB_ENOTFOUND no rule matches;
 *   AIMDB_ETOOBIG   *out filled, but the name needs name_len + 1 bytes;
 *   AIMDB_EINVAL    *out filled, but the rule makes an empty name (e.g.
 *                   "{1}" for an empty level): drop the message and log it.
 * name may be NULL with cap 0 to learn only the rule.  Thread-safe, lock-free
 * and allocation-free; O(1) for exact filters.
 */
int aimdb_router_route(const aimdb_router *r, const char *topic, size_t len, char *name,
                       size_t cap, aimdb_route *out);

#ifdef __cplusplus
}
#endif
#endif
