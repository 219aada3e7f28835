/*
 * acl.c -- which values a client may see: those published on a topic the
 * broker's ACLs let it read (docs/protocol.md, "Access control").  Two
 * topics can feed one record name (`dev::{1}::{2}` reads dev::a::b::c from
 * devices/a/b::c and from devices/a::b/c; two rules can make one name), so
 * the decision is per value, by the topic each value carries (its source,
 * aimdb/access.h), and a record's first topic decides nothing for the others.
 *
 * Whether a client may read a topic is broker_may_read's answer
 * (broker_acl.c: what the broker's configuration decides, fail closed
 * where the plugin cannot know).
 *
 * The check may run only on the broker thread, while history rows are
 * filtered on a query thread.  So each request gets a view, built on the
 * broker thread when the request arrives, of the names the request reads
 * (aimdb_aimx_scope_of): one name for record.get (a hash lookup), the
 * catalog's range of names with a pattern's literal prefix for a pattern
 * (a binary search, catalog.c), of which only the names the pattern
 * matches are checked.  Per covered record, one ACL check per topic it was
 * fed from (and per topic its name could come from), remembered per client
 * (clients.c), stored in a small read-only hash table the query thread
 * then consults.  A name outside the scope is SEE_NONE: the handler never
 * asks about one, and an answer for it was never checked.  A name in the
 * scope the catalog does not know (history written under an older
 * aimdb.conf, or a record created after the view) has no source to check;
 * it is shown only to clients the broker does not restrict at all, tested
 * by reading PROBE_TOPIC, a topic no ACL grants by accident ('#' does not
 * match topics that start with '$').
 *
 * For a client that does not see such names, the view also lists, in
 * name order, every name it may see (aimdb_access.names): the history
 * query then visits only those, instead of every name in history with the
 * pattern's prefix.
 *
 * The broker thread's work per request is thus proportional to what the
 * request matches, with one remainder a client can observe: the prefix
 * range is walked in full, with a string compare per name and one (then
 * remembered) ACL decision per topic, so a pattern's time still grows a
 * little with the hidden names that share its prefix ("hidden::*" over
 * 3,000 of them).  That tells a client roughly how many such names exist,
 * never which ones or what they hold.  Hiding even that would need every
 * answer padded to the worst case's time, a price on every request: not
 * worth it for a count, at about half a microsecond of broker CPU per name
 * (bench_plugin --requests: 1.7 ms for 3,000).
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* One object, so its address is a key for remembered decisions (clients.c). */
static const char PROBE_TOPIC[] = "$aimdb/unrestricted";

/* One catalogued record as one client sees it.  Topic pointers are the
 * catalog entry's interned strings (never freed while the plugin lives),
 * copied with their count so the query thread never reads the entry,
 * which ingest keeps appending topics to. */
typedef struct view_slot {
    const char *name; /* a catalog entry's name: lives as long as the plugin */
    aimdb_visibility seen;
    bool others_ok;   /* values from a topic not listed below, or from none */
    uint8_t n_topics;
    bool topic_ok[AIMDB_SOURCES_MAX];
    const char *topics[AIMDB_SOURCES_MAX];
} view_slot;

struct acl_view {
    bool orphans_visible;
    aimdb_aimx_reads reads;
    char *scope;         /* the name or pattern read (NULL: nothing) */
    const char **visible; /* in name order: the access's names, if !orphans_visible */
    aimdb_access access; /* over this view, for the AimX handler */
    size_t n_slots;      /* power of two, at most half full */
    view_slot slots[];
};

typedef struct asker {
    plugin *pl;
    struct mosquitto *client;
    client_state *cs;
} asker;

static bool may_read(const asker *a, const char *topic) {
    return client_may_read(a->pl, a->cs, a->client, topic);
}

static bool may_read_all(const asker *a, const aimdb_sources *s) {
    for (size_t i = 0; i < s->n; i++)
        if (!may_read(a, s->topics[i])) return false;
    return true;
}

static view_slot *slot_for(const acl_view *v, const char *name) {
    size_t i = (size_t)catalog_hash(name) & (v->n_slots - 1);
    while (v->slots[i].name && strcmp(v->slots[i].name, name) != 0) i = (i + 1) & (v->n_slots - 1);
    return (view_slot *)&v->slots[i];
}

/* A value published on a topic this entry has seen is decided by that
 * topic; any other value (a topic beyond the entry's list, a history row
 * without one) by every topic a rule could have produced the name from --
 * if that set is unknown (ambiguous), only an unrestricted client sees it. */
static void decide(const asker *a, const catalog_entry *e, bool unrestricted, view_slot *s) {
    s->others_ok = e->sources.n ? may_read_all(a, &e->sources) : unrestricted;
    s->n_topics = (uint8_t)e->topics.n;
    bool all = s->others_ok, any = s->others_ok;
    for (size_t i = 0; i < e->topics.n; i++) {
        s->topics[i] = e->topics.topics[i];
        s->topic_ok[i] = may_read(a, e->topics.topics[i]);
        all &= s->topic_ok[i];
        any |= s->topic_ok[i];
    }
    s->seen = all ? AIMDB_SEE_ALL : any ? AIMDB_SEE_BY_SOURCE : AIMDB_SEE_NONE;
}

static bool in_scope(const acl_view *v, const char *record) {
    switch (v->reads) {
    case AIMDB_AIMX_READS_NAME: return strcmp(v->scope, record) == 0;
    case AIMDB_AIMX_READS_PATTERN: return aimdb_pattern_match(v->scope, record);
    default: return false;
    }
}

static aimdb_visibility view_record(const char *record, void *ctx) {
    const acl_view *v = ctx;
    const view_slot *s = slot_for(v, record);
    if (s->name) return s->seen;
    return v->orphans_visible && in_scope(v, record) ? AIMDB_SEE_ALL : AIMDB_SEE_NONE;
}

static bool view_value(const char *record, const char *source, void *ctx) {
    const view_slot *s = slot_for(ctx, record);
    if (!s->name) return false; /* view_record said SEE_NONE or SEE_ALL */
    for (size_t i = 0; source && i < s->n_topics; i++)
        if (s->topics[i] == source || strcmp(s->topics[i], source) == 0) return s->topic_ok[i];
    return s->others_ok;
}

/* The catalog entries scope covers, in *first .. *first + *n of
 * catalog_sorted_at, or the one entry *named (a name it does not know:
 * none).  False on ENOMEM. */
static bool covered(plugin *pl, aimdb_aimx_scope scope, catalog_entry **named, size_t *first,
                    size_t *n) {
    *named = NULL;
    *first = *n = 0;
    if (scope.reads == AIMDB_AIMX_READS_NAME) {
        *named = catalog_find(pl->catalog, scope.name);
        return true;
    }
    if (scope.reads != AIMDB_AIMX_READS_PATTERN) return true;
    return catalog_prefix_range(pl->catalog, scope.name, aimdb_pattern_prefix_len(scope.name),
                                first, n);
}

/* The decisions for the entries a scope covers, in name order.  Those a
 * restricted client sees nothing of are not kept: for it a name the view
 * does not hold is SEE_NONE anyway, so the view's size follows what the
 * client may see. */
typedef struct decided {
    view_slot *slots;
    size_t n, cap;
} decided;

static bool decide_into(decided *d, const asker *a, const catalog_entry *e, bool unrestricted) {
    view_slot s = {.name = e->name};
    decide(a, e, unrestricted, &s);
    if (s.seen == AIMDB_SEE_NONE && !unrestricted) return true;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        view_slot *grown = realloc(d->slots, cap * sizeof(*grown));
        if (!grown) return false;
        d->slots = grown;
        d->cap = cap;
    }
    d->slots[d->n++] = s;
    return true;
}

static bool decide_scope(plugin *pl, const asker *a, aimdb_aimx_scope scope, bool unrestricted,
                         decided *d) {
    catalog_entry *named;
    size_t first, n;
    if (!covered(pl, scope, &named, &first, &n)) return false;
    if (named && !decide_into(d, a, named, unrestricted)) return false;
    for (size_t i = first; i < first + n; i++) {
        const catalog_entry *e = catalog_sorted_at(pl->catalog, i);
        if (aimdb_pattern_match(scope.name, e->name) && !decide_into(d, a, e, unrestricted))
            return false;
    }
    return true;
}

/* The view over the decisions; for a restricted client also the list of
 * the names it may see (all those kept), for readers to visit alone. */
static acl_view *view_of(const decided *d, aimdb_aimx_scope scope, bool unrestricted) {
    size_t n_slots = 8;
    while (n_slots < 2 * d->n) n_slots *= 2;
    acl_view *v = calloc(1, sizeof(*v) + n_slots * sizeof(v->slots[0]));
    if (!v) return NULL;
    v->n_slots = n_slots;
    v->reads = scope.reads;
    v->orphans_visible = unrestricted;
    v->access = (aimdb_access){view_record, view_value, v, NULL, 0};
    if ((scope.name && !(v->scope = strdup(scope.name))) ||
        (!unrestricted && !(v->visible = malloc((d->n + 1) * sizeof(*v->visible))))) {
        acl_view_free(v);
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++) {
        *slot_for(v, d->slots[i].name) = d->slots[i];
        if (v->visible) v->visible[i] = d->slots[i].name;
    }
    if (v->visible) {
        v->access.names = v->visible;
        v->access.n_names = d->n;
    }
    return v;
}

acl_view *acl_view_new(plugin *pl, struct mosquitto *client, client_state *cs,
                       aimdb_aimx_scope scope) {
    asker a = {pl, client, cs};
    bool unrestricted = scope.reads != AIMDB_AIMX_READS_NOTHING && may_read(&a, PROBE_TOPIC);
    decided d = {0};
    acl_view *v = decide_scope(pl, &a, scope, unrestricted, &d) ? view_of(&d, scope, unrestricted)
                                                                 : NULL;
    free(d.slots);
    return v;
}

void acl_view_free(acl_view *v) {
    if (v) {
        free(v->scope);
        free(v->visible);
    }
    free(v);
}

const aimdb_access *acl_view_access(const acl_view *v) {
    return &v->access;
}
