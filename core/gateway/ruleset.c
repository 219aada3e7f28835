/*
 * ruleset.c -- the rules of one aimdb.conf, ready to route: the router
 * (first match wins, exact filters in O(1)) and, per rule, the options its
 * records are opened with and how many it opened (see gateway.h).  calloc
 * leaves the counts 0 and the flags false, as atomics may be initialised.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aimdb/gateway.h"

int aimdb_ruleset_build(aimdb_conf *conf, aimdb_ruleset **out, char *err, size_t errlen) {
    aimdb_ruleset *rs = calloc(1, sizeof(*rs));
    if (rs) {
        rs->conf = conf;
        rs->router = aimdb_router_new();
        rs->options = calloc(conf->n_rules + 1, sizeof(*rs->options));
        rs->opened = calloc(conf->n_rules + 1, sizeof(*rs->opened));
        rs->cap_logged = calloc(conf->n_rules + 1, sizeof(*rs->cap_logged));
    }
    if (!rs || !rs->router || !rs->options || !rs->opened || !rs->cap_logged) {
        if (!rs) aimdb_conf_free(conf);
        aimdb_ruleset_free(rs);
        snprintf(err, errlen, "out of memory building the rules");
        return AIMDB_ENOMEM;
    }
    for (size_t i = 0; i < conf->n_rules; i++) {
        const aimdb_conf_rule *r = &conf->rules[i];
        char why[256];
        int rc = aimdb_router_add(rs->router, r->topic_filter, r->name_template, why, sizeof(why));
        if (rc != AIMDB_OK) {
            /* The parser checked filter and template already: only memory. */
            snprintf(err, errlen, "aimdb.conf:%u: %s", r->line, why);
            aimdb_ruleset_free(rs);
            return rc;
        }
        rs->options[i] = (aimdb_rule_options){
            .codec = aimdb_payload_codec(r->format),
            .buffer = r->buffer,
            .persist = r->persist,
            /* aimdb.conf and the persistence layer agree: -1 the default, 0 forever */
            .retention_ms = r->retention_ms < 0 ? AIMDB_RETENTION_DEFAULT : r->retention_ms,
            .max_records = r->max_records,
            .line = r->line,
        };
    }
    *out = rs;
    return AIMDB_OK;
}

void aimdb_ruleset_free(aimdb_ruleset *rs) {
    if (!rs) return;
    aimdb_router_free(rs->router);
    aimdb_conf_free(rs->conf);
    free(rs->options);
    free((void *)rs->opened);
    free((void *)rs->cap_logged);
    free(rs);
}
