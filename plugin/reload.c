/*
 * reload.c -- MOSQ_EVT_RELOAD (SIGHUP): read aimdb.conf again.
 *
 * The records file is re-read with the overrides given at start (Mosquitto
 * passes no options on reload).  An invalid file changes nothing: the
 * error is logged with its line and the running rules stay.  A valid one
 * replaces the rule set whole; from the next message on, topics route by
 * the new rules, fixed-name records of new rules exist, and records gain
 * persistence or a new retention.  What cannot change under a running
 * database is logged as taking effect at the next restart: the global
 * settings, a record's buffer or format, and switching persistence off.
 *
 * The broker's access rules are read again too (broker_acl.c), as the
 * broker reads its acl_file again.
 *
 * What the callback returns depends on the broker: Mosquitto 2.0 stops
 * calling other plugins' reload handlers (and reloading its v4 auth
 * plugins) after the first that does not return MOSQ_ERR_PLUGIN_DEFER,
 * while 2.1 takes anything but MOSQ_ERR_SUCCESS as a failed reload and
 * shuts down.
 */
#include "plugin.h"

static int reloaded(const plugin *pl) {
    return pl->broker.api_2_1 ? MOSQ_ERR_SUCCESS : MOSQ_ERR_PLUGIN_DEFER;
}

/* Records already open follow the rule that now produces their name. */
static void update_open_records(plugin *pl, const aimdb_ruleset *rs) {
    for (size_t i = 0; i < catalog_count(pl->catalog); i++) {
        catalog_entry *e = catalog_at(pl->catalog, i);
        size_t rule;
        aimdb_sources src;
        if (aimdb_sources_from_name(rs, e->name, &rule, &src) != AIMDB_OK) continue;
        records_update(pl, e, rs, rule);
        aimdb_sources_free(&e->sources);
        e->sources = src;
    }
}

int reload_on_reload(int event, void *event_data, void *userdata) {
    (void)event;
    (void)event_data;
    plugin *pl = userdata;
    acl_init(pl); /* Mosquitto reads its acl_file again on reload, whatever aimdb.conf says */
    aimdb_conf *conf;
    aimdb_ruleset *rs;
    char err[512];
    int rc = config_load(&pl->options, &conf, err, sizeof(err));
    if (rc == AIMDB_OK) {
        aimdb_gateway_warn_settings(&pl->gw, pl->rules->conf, conf, AIMDB_GATEWAY_DEFAULT_DATABASE,
                                    PLUGIN_WHO);
        rc = aimdb_ruleset_build(conf, &rs, err, sizeof(err));
    }
    if (rc != AIMDB_OK) {
        plugin_log(pl, AIMDB_LOG_ERROR, "reload: %s; keeping the previous configuration", err);
        return reloaded(pl);
    }
    aimdb_conf_warn_rules(rs->conf, &pl->runtime);
    aimdb_ruleset *old = pl->rules;
    pl->rules = rs;
    records_open_fixed(pl, rs);
    update_open_records(pl, rs);
    records_scan_history(pl, rs);
    aimdb_ruleset_free(old);
    plugin_log(pl, AIMDB_LOG_INFO, "reloaded %s: %zu rule(s)",
               pl->options.config_path ? pl->options.config_path : "(no aimdb.conf)",
               rs->conf->n_rules);
    return reloaded(pl);
}
