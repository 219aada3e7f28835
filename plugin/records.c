/*
 * records.c -- turning aimdb.conf rules into records.
 *
 * A record is opened the first time a value arrives for its name (templated
 * names cannot be known before), except records with a fixed name, which
 * exist from start-up so record.list shows them at once.  Opening itself
 * (codec, buffer, description, history) is the gateway's
 * (aimdb_gateway_open_record), the same as in aimdb-bridge; the catalog
 * keeps what the plugin needs beside it: the record's source topics.
 *
 * Names found only in history are catalogued without a record, so their
 * history stays visible (and ACL-checked) after a restart; they get a
 * record when their next value arrives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

static void adopt(catalog_entry *e, aimdb_record *rec, const aimdb_rule_options *o,
                  bool persisting) {
    e->record = rec;
    e->options = *o;
    e->options.persist = persisting;
}

/* Every topic a rule could produce name from (see catalog_entry.sources);
 * empty if none or too many.  AIMDB_ENOMEM only. */
static int candidate_sources(const aimdb_ruleset *rs, const char *name, aimdb_sources *out) {
    size_t rule;
    int rc = aimdb_sources_from_name(rs, name, &rule, out);
    return rc == AIMDB_ENOTFOUND ? AIMDB_OK : rc;
}

int records_open(plugin *pl, catalog_entry *e, const aimdb_ruleset *rs, size_t rule) {
    aimdb_record *rec;
    bool persisting;
    int rc = aimdb_gateway_open_record(&pl->gw, rs, rule, e->name, &rec, &persisting);
    if (rc == AIMDB_OK) adopt(e, rec, &rs->options[rule], persisting);
    return rc;
}

int records_open_routed(plugin *pl, const aimdb_ruleset *rs, size_t rule, const char *name,
                        const char *topic, catalog_entry **e) {
    if (*e) return records_open(pl, *e, rs, rule);
    /* The record first: a name the database refuses (max_records) must
     * leave no catalog entry behind, or a client inventing names would
     * grow the catalog instead. */
    aimdb_record *rec;
    bool persisting;
    int rc = aimdb_gateway_open_record(&pl->gw, rs, rule, name, &rec, &persisting);
    if (rc != AIMDB_OK) return rc;
    (void)topic; /* interned by the caller, with every later topic (records_source) */
    aimdb_sources src;
    if ((rc = candidate_sources(rs, name, &src)) != AIMDB_OK) return rc;
    if (!(*e = catalog_add(pl->catalog, name, &src))) {
        aimdb_sources_free(&src);
        return AIMDB_ENOMEM; /* the record stays open; the next value catalogues it */
    }
    adopt(*e, rec, &rs->options[rule], persisting);
    return AIMDB_OK;
}

const char *records_source(catalog_entry *e, const char *topic) {
    aimdb_sources *t = &e->topics;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->topics[i], topic) == 0) return t->topics[i];
    if (t->n == AIMDB_SOURCES_MAX || !(t->topics[t->n] = strdup(topic))) return NULL;
    return t->topics[t->n++];
}

void records_update(plugin *pl, catalog_entry *e, const aimdb_ruleset *rs, size_t rule) {
    if (!e->record) return; /* opened with the new rule when a value comes */
    const aimdb_rule_options *o = &rs->options[rule];
    bool was = e->options.persist;
    e->options.persist =
        aimdb_gateway_reapply_record(&pl->gw, e->record, rs, rule, was, PLUGIN_WHO);
    if (e->options.persist && o->persist) e->options.retention_ms = o->retention_ms;
    e->options.line = o->line;
}

int records_open_fixed(plugin *pl, const aimdb_ruleset *rs) {
    for (size_t i = 0; i < rs->conf->n_rules; i++) {
        const aimdb_conf_rule *r = &rs->conf->rules[i];
        if (!aimdb_name_template_is_fixed(r->name_template)) continue;
        catalog_entry *e = catalog_find(pl->catalog, r->name_template);
        if (!e) {
            aimdb_sources src;
            if (candidate_sources(rs, r->name_template, &src) != AIMDB_OK ||
                !(e = catalog_add(pl->catalog, r->name_template, &src))) {
                aimdb_sources_free(&src);
                plugin_log(pl, AIMDB_LOG_ERROR, "record %s: out of memory", r->name_template);
                return AIMDB_ENOMEM;
            }
        }
        if (e->record) records_update(pl, e, rs, i);
        else if (records_open(pl, e, rs, i) == AIMDB_EFULL)
            plugin_log(pl, AIMDB_LOG_WARNING, "record %s (aimdb.conf:%u) not opened: %s",
                       r->name_template, rs->options[i].line, aimdb_strerror(AIMDB_EFULL));
    }
    return AIMDB_OK;
}

/* ------------------------------------------------------------ history */

typedef struct name_list {
    char **names;
    size_t n, cap;
    bool nomem;
} name_list;

/* An access predicate that only collects: seeing nothing means no row is
 * read, so listing names costs one index seek per name. */
static aimdb_visibility collect_name(const char *record, void *ctx) {
    name_list *l = ctx;
    if (l->nomem) return AIMDB_SEE_NONE;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **names = realloc(l->names, cap * sizeof(*names));
        if (!names) {
            l->nomem = true;
            return AIMDB_SEE_NONE;
        }
        l->names = names;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(record))) l->nomem = true;
    else l->n++;
    return AIMDB_SEE_NONE;
}

static int no_rows(const aimdb_history_row *row, void *ctx) {
    (void)row;
    (void)ctx;
    return 0;
}

void records_scan_history(plugin *pl, const aimdb_ruleset *rs) {
    name_list l = {0};
    aimdb_access collect = {collect_name, NULL, &l, NULL, 0};
    aimdb_query_params q = {.limit = 1, .access = &collect};
    char err[256] = "";
    int rc = aimdb_persist_query(pl->gw.persist, &q, no_rows, NULL, err, sizeof(err));
    if (rc == AIMDB_OK && l.nomem) rc = AIMDB_ENOMEM;
    size_t added = 0, orphans = 0;
    for (size_t i = 0; rc == AIMDB_OK && i < l.n; i++) {
        if (catalog_find(pl->catalog, l.names[i])) continue;
        size_t rule;
        aimdb_sources src;
        int found = aimdb_sources_from_name(rs, l.names[i], &rule, &src);
        if (found == AIMDB_ENOTFOUND) {
            orphans++;
            continue;
        }
        catalog_entry *e = found == AIMDB_OK ? catalog_add(pl->catalog, l.names[i], &src) : NULL;
        if (!e) {
            aimdb_sources_free(&src);
            rc = AIMDB_ENOMEM;
            break;
        }
        e->options = rs->options[rule];
        added++;
    }
    for (size_t i = 0; i < l.n; i++) free(l.names[i]);
    free(l.names);
    if (rc != AIMDB_OK) {
        plugin_log(pl, AIMDB_LOG_ERROR, "listing the records in history failed: %s",
                   *err ? err : aimdb_strerror(rc));
        return;
    }
    if (!added && !orphans) return;
    char orphan_note[160] = "";
    if (orphans)
        snprintf(orphan_note, sizeof(orphan_note),
                 "; %zu of them no rule of aimdb.conf produces, so only clients without ACL "
                 "restrictions see those",
                 orphans);
    plugin_log(pl, AIMDB_LOG_INFO,
               "history holds %zu record(s) with no value since start: record.list and "
               "record.query show their history%s",
               added + orphans, orphan_note);
}
