/*
 * ingest.c -- aimdb.conf's rules as the connector's inbound links: rule i
 * is link i, so the first rule whose filter matches names the record, as
 * in the plugin, and a record is opened by the gateway with its rule's
 * codec, buffer and history the first time a value arrives for its name.
 *
 * Every link subscribes at QoS 1: history wants each value, and the broker
 * never delivers above the publisher's QoS anyway.
 *
 * A reload builds new links over a new rule set.  The open callback gets
 * the rule set its links were built from (its ctx), never a newer one, so
 * a link index always means the rule it was made from; the old set is
 * freed once the connector says no message uses the old links.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

#define LINK_QOS 1

struct ingest {
    aimdb_ruleset *rs;
    aimdb_gateway *gw;
};

static int open_record(const char *name, size_t rule, void *ctx, aimdb_record **out) {
    ingest *in = ctx;
    bool persisting;
    return aimdb_gateway_open_record(in->gw, in->rs, rule, name, out, &persisting);
}

static void read_persist_attr(const char *key, const char *json, void *ctx) {
    if (strcmp(key, "persist") == 0) *(bool *)ctx = strcmp(json, "true") == 0;
}

/* A record already open follows the rule that now produces its name. */
static int reapply(aimdb_record *rec, void *ctx) {
    ingest *in = ctx;
    size_t rule;
    aimdb_sources src;
    if (aimdb_sources_from_name(in->rs, aimdb_record_name(rec), &rule, &src) != AIMDB_OK)
        return 0;
    aimdb_sources_free(&src);
    bool persisting = false;
    aimdb_record_foreach_attr(rec, read_persist_attr, &persisting);
    aimdb_gateway_reapply_record(in->gw, rec, in->rs, rule, persisting, BRIDGE_WHO);
    return 0;
}

/* Records with a fixed name exist from the start, so record.list shows
 * them before their first value. */
static void open_fixed(ingest *in) {
    for (size_t i = 0; i < in->rs->conf->n_rules; i++) {
        const char *name = in->rs->conf->rules[i].name_template;
        aimdb_record *rec;
        if (aimdb_name_template_is_fixed(name) && !aimdb_db_find(in->gw->db, name) &&
            open_record(name, i, in, &rec) == AIMDB_EFULL)
            aimdb_log(in->gw->runtime, AIMDB_LOG_WARNING,
                      "record %s (aimdb.conf:%u) not opened: %s", name, in->rs->options[i].line,
                      aimdb_strerror(AIMDB_EFULL));
    }
}

int ingest_apply(ingest **state, aimdb_ruleset *rs, aimdb_gateway *gw, aimdb_connector *conn,
                 char *err, size_t errlen) {
    ingest *in = calloc(1, sizeof(*in));
    aimdb_link_in *links = calloc(rs->conf->n_rules + 1, sizeof(*links));
    if (!in || !links) {
        free(in);
        free(links);
        aimdb_ruleset_free(rs);
        snprintf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    in->rs = rs;
    in->gw = gw;
    for (size_t i = 0; i < rs->conf->n_rules; i++)
        links[i] = (aimdb_link_in){
            .filter = rs->conf->rules[i].topic_filter,
            .name_template = rs->conf->rules[i].name_template,
            .qos = LINK_QOS,
            .open = open_record,
            .open_ctx = in,
        };
    int rc = aimdb_connector_set_links_in(conn, links, rs->conf->n_rules, err, errlen);
    free(links);
    if (rc != AIMDB_OK) {
        ingest_free(in);
        return rc;
    }
    if (*state) aimdb_db_foreach_record(gw->db, reapply, in);
    open_fixed(in);
    ingest_free(*state);
    *state = in;
    return AIMDB_OK;
}

const aimdb_ruleset *ingest_rules(const ingest *state) { return state->rs; }

void ingest_free(ingest *state) {
    if (!state) return;
    aimdb_ruleset_free(state->rs);
    free(state);
}
