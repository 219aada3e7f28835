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
 * The callback returns MOSQ_ERR_PLUGIN_DEFER: Mosquitto 2.0.11 stops
 * calling other plugins' reload handlers after the first that does not.
 */
#include <string.h>

#include "plugin.h"

static void warn_settings_changed(plugin *pl, const aimdb_conf *was, const aimdb_conf *now) {
    const aimdb_conf_settings *a = &was->settings, *b = &now->settings;
    const struct {
        const char *key;
        bool changed;
    } settings[] = {
        {"database", strcmp(config_database(was), config_database(now)) != 0},
        {"retention", a->retention_ms != b->retention_ms},
        {"synchronous", a->synchronous != b->synchronous},
        {"batch_rows", a->batch_rows != b->batch_rows},
        {"queue_rows", a->queue_rows != b->queue_rows},
        {"flush_interval", a->flush_interval_ms != b->flush_interval_ms},
        {"sweep_interval", a->sweep_interval_ms != b->sweep_interval_ms},
        {"max_payload", a->max_payload != b->max_payload},
        {"workers", a->workers != b->workers},
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (settings[i].changed)
            plugin_log(pl, AIMDB_LOG_WARNING,
                       "reload: setting '%s' changed; it takes effect when the broker restarts",
                       settings[i].key);
}

/* Records already open follow the rule that now produces their name. */
static void update_open_records(plugin *pl, const ruleset *rs) {
    for (size_t i = 0; i < catalog_count(pl->catalog); i++) {
        catalog_entry *e = catalog_at(pl->catalog, i);
        size_t rule;
        source_list src;
        if (source_from_name(rs, e->name, &rule, &src) != AIMDB_OK) continue;
        records_update(pl, e, rs, rule);
        if (src.n) {
            source_list_free(&e->sources);
            e->sources = src;
        }
    }
}

int reload_on_reload(int event, void *event_data, void *userdata) {
    (void)event;
    (void)event_data;
    plugin *pl = userdata;
    aimdb_conf *conf;
    ruleset *rs;
    char err[512];
    int rc = config_load(&pl->options, &conf, err, sizeof(err));
    if (rc == AIMDB_OK) {
        warn_settings_changed(pl, pl->rules->conf, conf);
        rc = ruleset_build(conf, &rs, err, sizeof(err));
    }
    if (rc != AIMDB_OK) {
        plugin_log(pl, AIMDB_LOG_ERROR, "reload: %s; keeping the previous configuration", err);
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    ruleset *old = pl->rules;
    pl->rules = rs;
    records_open_fixed(pl, rs);
    update_open_records(pl, rs);
    records_scan_history(pl, rs);
    ruleset_free(old);
    plugin_log(pl, AIMDB_LOG_INFO, "reloaded %s: %zu rule(s)",
               pl->options.config_path ? pl->options.config_path : "(no aimdb.conf)",
               rs->conf->n_rules);
    return MOSQ_ERR_PLUGIN_DEFER;
}
