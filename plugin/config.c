/*
 * config.c -- where the plugin's configuration comes from
 * (docs/configuration.md, "Loading the plugin").
 *
 *   plugin_opt_config PATH        aimdb.conf (docs/configuration.md)
 *   plugin_opt_<setting> VALUE    any global setting of aimdb.conf,
 *                                 overriding the file
 *
 * The options are copied at init because Mosquitto hands none to
 * MOSQ_EVT_RELOAD: a reload reads the same file again and applies the same
 * overrides.  Parsing and every check belong to the mqtt layer
 * (mqtt_conf.h), so the plugin and aimdb-bridge accept exactly the same
 * files and word their errors the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

void options_free(plugin_options *o) {
    free(o->config_path);
    for (size_t i = 0; i < o->n_overrides; i++) {
        free(o->keys[i]);
        free(o->values[i]);
    }
    free(o->keys);
    free(o->values);
    memset(o, 0, sizeof(*o));
}

int options_copy(plugin_options *out, const struct mosquitto_opt *opts, int n, char *err,
                 size_t errlen) {
    memset(out, 0, sizeof(*out));
    size_t count = n > 0 ? (size_t)n : 0;
    out->keys = calloc(count + 1, sizeof(char *));
    out->values = calloc(count + 1, sizeof(char *));
    if (!out->keys || !out->values) goto nomem;
    for (size_t i = 0; i < count; i++) {
        const char *key = opts[i].key ? opts[i].key : "";
        const char *value = opts[i].value ? opts[i].value : "";
        if (strcmp(key, "config") == 0) {
            free(out->config_path);
            if (!(out->config_path = strdup(value))) goto nomem;
            continue;
        }
        out->keys[out->n_overrides] = strdup(key);
        out->values[out->n_overrides] = strdup(value);
        out->n_overrides++;
        if (!out->keys[out->n_overrides - 1] || !out->values[out->n_overrides - 1]) goto nomem;
    }
    return AIMDB_OK;
nomem:
    options_free(out);
    snprintf(err, errlen, "out of memory reading the plugin options");
    return AIMDB_ENOMEM;
}

int config_load(const plugin_options *o, aimdb_conf **out, char *err, size_t errlen) {
    aimdb_conf *conf = NULL;
    int rc = o->config_path
                 ? aimdb_conf_load(o->config_path, AIMDB_CONF_PLUGIN, &conf, err, errlen)
                 : aimdb_conf_parse("", 0, NULL, AIMDB_CONF_PLUGIN, &conf, err, errlen);
    for (size_t i = 0; rc == AIMDB_OK && i < o->n_overrides; i++)
        rc = aimdb_conf_override(conf, "plugin_opt_", o->keys[i], o->values[i], err, errlen);
    if (rc != AIMDB_OK) {
        aimdb_conf_free(conf);
        return rc;
    }
    *out = conf;
    return AIMDB_OK;
}
