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
 * broker thread when the request arrives: one ACL check per topic each
 * catalogued record was fed from (and per topic its name could come from),
 * stored in a small read-only hash table the query thread then consults.  A name the catalog does not know (history written under an
 * older aimdb.conf, or a record created after the view) has no source to
 * check; it is shown only to clients the broker does not restrict at all,
 * tested by reading PROBE_TOPIC, a topic no ACL grants by accident ('#'
 * does not match topics that start with '$').
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define PROBE_TOPIC "$aimdb/unrestricted"

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
    aimdb_access access; /* over this view, for the AimX handler */
    size_t n_slots;      /* power of two, at most half full */
    view_slot slots[];
};

static bool may_read_all(plugin *pl, struct mosquitto *client, const aimdb_sources *s) {
    for (size_t i = 0; i < s->n; i++)
        if (!broker_may_read(pl, client, s->topics[i])) return false;
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
static void decide(plugin *pl, struct mosquitto *client, const catalog_entry *e,
                   bool unrestricted, view_slot *s) {
    s->others_ok = e->sources.n ? may_read_all(pl, client, &e->sources) : unrestricted;
    s->n_topics = (uint8_t)e->topics.n;
    bool all = s->others_ok, any = s->others_ok;
    for (size_t i = 0; i < e->topics.n; i++) {
        s->topics[i] = e->topics.topics[i];
        s->topic_ok[i] = broker_may_read(pl, client, e->topics.topics[i]);
        all &= s->topic_ok[i];
        any |= s->topic_ok[i];
    }
    s->seen = all ? AIMDB_SEE_ALL : any ? AIMDB_SEE_BY_SOURCE : AIMDB_SEE_NONE;
}

static aimdb_visibility view_record(const char *record, void *ctx) {
    const acl_view *v = ctx;
    const view_slot *s = slot_for(v, record);
    if (s->name) return s->seen;
    return v->orphans_visible ? AIMDB_SEE_ALL : AIMDB_SEE_NONE;
}

static bool view_value(const char *record, const char *source, void *ctx) {
    const view_slot *s = slot_for(ctx, record);
    if (!s->name) return false; /* view_record said SEE_NONE or SEE_ALL */
    for (size_t i = 0; source && i < s->n_topics; i++)
        if (s->topics[i] == source || strcmp(s->topics[i], source) == 0) return s->topic_ok[i];
    return s->others_ok;
}

acl_view *acl_view_new(plugin *pl, struct mosquitto *client) {
    size_t n = catalog_count(pl->catalog), n_slots = 8;
    while (n_slots < 2 * n) n_slots *= 2;
    acl_view *v = calloc(1, sizeof(*v) + n_slots * sizeof(v->slots[0]));
    if (!v) return NULL;
    v->n_slots = n_slots;
    v->access = (aimdb_access){view_record, view_value, v};
    v->orphans_visible = broker_may_read(pl, client, PROBE_TOPIC);
    for (size_t i = 0; i < n; i++) {
        catalog_entry *e = catalog_at(pl->catalog, i);
        view_slot *s = slot_for(v, e->name);
        s->name = e->name;
        decide(pl, client, e, v->orphans_visible, s);
    }
    return v;
}

void acl_view_free(acl_view *v) {
    free(v);
}

const aimdb_access *acl_view_access(const acl_view *v) {
    return &v->access;
}
