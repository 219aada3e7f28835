/*
 * router.c -- topic -> (first matching rule, record name), the broker
 * thread's per-message work.
 *
 * docs/configuration.md says a topic goes to the first rule, in file order, that
 * matches it.  Testing every rule would make each message cost O(rules), so:
 *   - wildcard-free filters live in a hash table mapping the filter to its
 *     first rule: one lookup finds the only exact rule that can match;
 *   - wildcard filters are tried in rule order.  With many of them, only
 *     those that can match are tried: the ones whose literal first level
 *     equals the topic's (a second table finds that list) and the ones
 *     starting with a wildcard, the two lists merged on the fly;
 *   - whichever of the two is found first bounds the other: a wildcard scan
 *     stops at the exact rule's number, and the exact lookup is skipped when
 *     a wildcard rule matched before the first exact rule.
 * All lists hold rule numbers in ascending order (rules are only appended).
 * Nothing here allocates or locks after the router is built.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/aimdb.h"
#include "aimdb/mqtt_route.h"
#include "mqtt_internal.h"

typedef struct rule {
    char *filter;
    char *tmpl;
    bool fixed;       /* tmpl has no placeholder: the name is tmpl itself */
    size_t tmpl_len;
} rule;

/* Rule numbers, ascending. */
typedef struct rule_list {
    uint32_t *at;
    size_t n, cap;
} rule_list;

struct aimdb_router {
    rule *rules;
    size_t n_rules, cap_rules;
    table exact;         /* wildcard-free filter -> first rule with it */
    table by_level;      /* literal first level of a wildcard filter -> lists[i] */
    rule_list *lists;
    size_t n_lists, cap_lists;
    rule_list generic;   /* wildcard filters whose first level is a wildcard */
    rule_list wildcards; /* every wildcard filter */
    size_t first_exact;  /* lowest rule number with an exact filter, or SIZE_MAX */
};

/* Up to this many wildcard rules, routing tries them all in order. */
#define SCAN_ALL_WILDCARDS 8

aimdb_router *aimdb_router_new(void) {
    aimdb_router *r = calloc(1, sizeof(aimdb_router));
    if (r) r->first_exact = SIZE_MAX;
    return r;
}

void aimdb_router_free(aimdb_router *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_rules; i++) {
        free(r->rules[i].filter);
        free(r->rules[i].tmpl);
    }
    for (size_t i = 0; i < r->n_lists; i++) free(r->lists[i].at);
    free(r->rules);
    free(r->lists);
    free(r->generic.at);
    free(r->wildcards.at);
    table_free(&r->exact);
    table_free(&r->by_level);
    free(r);
}

/* items (n of `size` bytes, room for *cap) with room for one more: the same
 * or a moved array, or NULL on ENOMEM (items is then untouched). */
static void *room_for_one(void *items, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return items;
    size_t bigger = *cap ? *cap * 2 : 8;
    void *p = realloc(items, bigger * size);
    if (p) *cap = bigger;
    return p;
}

static int list_append(rule_list *l, uint32_t rule_no) {
    uint32_t *at = room_for_one(l->at, &l->cap, l->n, sizeof(*at));
    if (!at) return AIMDB_ENOMEM;
    l->at = at;
    l->at[l->n++] = rule_no;
    return AIMDB_OK;
}

static size_t first_level_length(const char *topic, size_t len) {
    const char *slash = memchr(topic, '/', len);
    return slash ? (size_t)(slash - topic) : len;
}

/* Append rule `no` to the list of its literal first level, creating the
 * list if new.  On ENOMEM nothing has changed. */
static int level_append(aimdb_router *r, const char *level, size_t len, uint32_t no) {
    uint32_t i;
    if (table_get(&r->by_level, level, len, &i)) return list_append(&r->lists[i], no);
    rule_list *lists = room_for_one(r->lists, &r->cap_lists, r->n_lists, sizeof(*lists));
    if (!lists) return AIMDB_ENOMEM;
    r->lists = lists;
    rule_list fresh = {0};
    if (list_append(&fresh, no) != AIMDB_OK ||
        table_put(&r->by_level, level, len, (uint32_t)r->n_lists) != AIMDB_OK) {
        free(fresh.at);
        return AIMDB_ENOMEM;
    }
    r->lists[r->n_lists++] = fresh;
    return AIMDB_OK;
}

/* Make rule number `no` (its filter already owned by the router) findable.
 * On ENOMEM nothing has changed, so the rule can be dropped cleanly. */
static int index_rule(aimdb_router *r, const char *filter, uint32_t no) {
    size_t len = strlen(filter);
    if (!strpbrk(filter, "+#")) {
        int rc = table_put(&r->exact, filter, len, no);
        if (rc == AIMDB_OK && r->first_exact == SIZE_MAX) r->first_exact = no;
        return rc == AIMDB_EEXIST ? AIMDB_OK : rc; /* an earlier rule has it */
    }
    if (list_append(&r->wildcards, no) != AIMDB_OK) return AIMDB_ENOMEM;
    int rc = filter[0] == '+' || filter[0] == '#'
                 ? list_append(&r->generic, no)
                 : level_append(r, filter, first_level_length(filter, len), no);
    if (rc != AIMDB_OK) r->wildcards.n--;
    return rc;
}

int aimdb_router_add(aimdb_router *r, const char *filter, const char *tmpl, char *err,
                     size_t errlen) {
    int rc = aimdb_topic_filter_check(filter, err, errlen);
    if (rc == AIMDB_OK) rc = aimdb_name_template_check(tmpl, filter, err, errlen);
    if (rc != AIMDB_OK) return rc;
    if (r->n_rules >= UINT32_MAX) return AIMDB_ENOMEM;
    rule ru = {strdup(filter), strdup(tmpl), aimdb_name_template_is_fixed(tmpl), strlen(tmpl)};
    rule *rules = room_for_one(r->rules, &r->cap_rules, r->n_rules, sizeof(*rules));
    if (rules) r->rules = rules;
    if (!ru.filter || !ru.tmpl || !rules ||
        index_rule(r, ru.filter, (uint32_t)r->n_rules) != AIMDB_OK) {
        free(ru.filter);
        free(ru.tmpl);
        return AIMDB_ENOMEM;
    }
    r->rules[r->n_rules++] = ru;
    return AIMDB_OK;
}

size_t aimdb_router_count(const aimdb_router *r) { return r->n_rules; }

const char *aimdb_router_filter(const aimdb_router *r, size_t no) {
    return no < r->n_rules ? r->rules[no].filter : NULL;
}

const char *aimdb_router_template(const aimdb_router *r, size_t no) {
    return no < r->n_rules ? r->rules[no].tmpl : NULL;
}

/* The first rule numbered below `before` in a or b (ascending lists, either
 * may be NULL) whose filter matches, else `before`.  Merging the two lists
 * keeps the file order across both. */
static size_t first_match_of(const aimdb_router *r, const rule_list *a, const rule_list *b,
                             size_t before, const char *topic, size_t len,
                             aimdb_topic_match *m) {
    size_t i = 0, j = 0;
    for (;;) {
        size_t from_a = a && i < a->n ? a->at[i] : SIZE_MAX;
        size_t from_b = b && j < b->n ? b->at[j] : SIZE_MAX;
        size_t next = from_a < from_b ? from_a : from_b;
        if (next >= before) return before; /* also: both lists exhausted */
        if (from_a < from_b) i++;
        else j++;
        if (aimdb_topic_matches(r->rules[next].filter, topic, len, m)) return next;
    }
}

/* The exact rule for topic if it is numbered below `before`, else `before`.
 * The hash is skipped when no exact rule comes early enough. */
static size_t exact_match(const aimdb_router *r, const char *topic, size_t len, size_t before) {
    uint32_t no;
    if (before > r->first_exact && table_get(&r->exact, topic, len, &no) && no < before)
        return no;
    return before;
}

/* Only the topic's first-level list and the generic list can match; "$..."
 * topics skip the generic list, whose filters never match them. */
static size_t indexed_wildcard_match(const aimdb_router *r, const char *topic, size_t len,
                                     size_t before, aimdb_topic_match *m) {
    const rule_list *lit = NULL, *gen = &r->generic;
    uint32_t i;
    if (table_get(&r->by_level, topic, first_level_length(topic, len), &i)) lit = &r->lists[i];
    if (len > 0 && topic[0] == '$') gen = NULL;
    return first_match_of(r, lit, gen, before, topic, len, m);
}

int aimdb_router_route(const aimdb_router *r, const char *topic, size_t len, char *name,
                       size_t cap, aimdb_route *out) {
    aimdb_topic_match m;
    size_t no;
    if (r->wildcards.n <= SCAN_ALL_WILDCARDS) {
        no = first_match_of(r, &r->wildcards, NULL, SIZE_MAX, topic, len, &m);
        no = exact_match(r, topic, len, no);
    } else {
        no = exact_match(r, topic, len, SIZE_MAX);
        no = indexed_wildcard_match(r, topic, len, no, &m);
    }
    if (no == SIZE_MAX) return AIMDB_ENOTFOUND;

    /* A placeholder needs a wildcard, so if the rule is not fixed, it is the
     * wildcard rule that filled m. */
    const rule *ru = &r->rules[no];
    size_t n;
    if (ru->fixed) {
        sink s = sink_text(name, cap);
        sink_write(&s, ru->tmpl, ru->tmpl_len);
        n = sink_finish_text(&s, cap);
    } else {
        n = aimdb_name_template_expand(ru->tmpl, &m, name, cap);
    }
    *out = (aimdb_route){no, n};
    if (n == 0) return AIMDB_EINVAL;
    if (name && n >= cap) return AIMDB_ETOOBIG;
    return AIMDB_OK;
}
