/*
 * acl.c -- which records a client may see: those whose source topics the
 * broker's ACLs let it read (contract C.4).
 *
 * The broker's own check, mosquitto_acl_check(), is what decides whether a
 * subscriber receives a message: it runs the acl_file, dynamic-security
 * and every other ACL plugin exactly as for a delivery.  Mosquitto 2.0.11
 * does not declare it for plugins, but its binary exports it; it is
 * resolved at init and, if absent, every record is hidden (fail closed)
 * with one clear log line.
 *
 * The check may run only on the broker thread, while history rows are
 * filtered on a query thread.  So each request gets a view, built on the
 * broker thread when the request arrives: one ACL check per catalogued
 * record, stored in a small read-only hash table the query thread then
 * consults.  A name the catalog does not know (history written under an
 * older aimdb.conf, or a record created after the view) has no source to
 * check; it is shown only to clients the broker does not restrict at all,
 * tested by reading PROBE_TOPIC, a topic no ACL grants by accident ('#'
 * does not match topics that start with '$').
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define PROBE_TOPIC "$aimdb/unrestricted"

typedef struct view_slot {
    const char *name; /* a catalog entry's name: lives as long as the plugin */
    bool allowed;
} view_slot;

struct acl_view {
    bool orphans_visible;
    size_t n_slots; /* power of two, at most half full */
    view_slot slots[];
};

bool acl_init(plugin *pl) {
    pl->acl_check = (broker_acl_check_fn)dlsym(RTLD_DEFAULT, "mosquitto_acl_check");
    if (!pl->acl_check)
        plugin_log(pl, AIMDB_LOG_ERROR,
                   "this broker does not export mosquitto_acl_check: records cannot be "
                   "checked against its ACLs, so every request sees no records");
    return pl->acl_check != NULL;
}

static bool may_read(plugin *pl, struct mosquitto *client, const char *topic) {
    return pl->acl_check(client, topic, 0, NULL, 0, false, MOSQ_ACL_READ) == MOSQ_ERR_SUCCESS;
}

static bool may_read_all(plugin *pl, struct mosquitto *client, const aimdb_sources *s) {
    for (size_t i = 0; i < s->n; i++)
        if (!may_read(pl, client, s->topics[i])) return false;
    return true;
}

static view_slot *slot_for(acl_view *v, const char *name) {
    size_t i = (size_t)catalog_hash(name) & (v->n_slots - 1);
    while (v->slots[i].name && strcmp(v->slots[i].name, name) != 0) i = (i + 1) & (v->n_slots - 1);
    return &v->slots[i];
}

acl_view *acl_view_new(plugin *pl, struct mosquitto *client) {
    size_t n = catalog_count(pl->catalog), n_slots = 8;
    while (n_slots < 2 * n) n_slots *= 2;
    acl_view *v = calloc(1, sizeof(*v) + n_slots * sizeof(v->slots[0]));
    if (!v) return NULL;
    v->n_slots = n_slots;
    if (!pl->acl_check) return v; /* fail closed: nothing allowed */
    v->orphans_visible = may_read(pl, client, PROBE_TOPIC);
    for (size_t i = 0; i < n; i++) {
        catalog_entry *e = catalog_at(pl->catalog, i);
        view_slot *s = slot_for(v, e->name);
        s->name = e->name;
        s->allowed = e->sources.n ? may_read_all(pl, client, &e->sources) : v->orphans_visible;
    }
    return v;
}

void acl_view_free(acl_view *v) {
    free(v);
}

bool acl_view_allows(const char *record, void *view) {
    acl_view *v = view;
    view_slot *s = slot_for(v, record);
    return s->name ? s->allowed : v->orphans_visible;
}
