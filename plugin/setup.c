/*
 * setup.c -- the libaimdb stack inside the broker: the record database,
 * SQLite history behind the persistence layer, the AimX handler and the
 * relay thread, built from aimdb.conf's settings and started at plugin
 * init; stopped at cleanup so that every value routed before the broker
 * was told to stop is committed before it exits.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aimdb/sqlite.h"
#include "plugin.h"

/* SQLite creates the file, not its directory; the default ./data/ (and any
 * other missing last directory) is created here, once, with a log line. */
static int ensure_directory(plugin *pl, const char *path, char *err, size_t errlen) {
    if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) return AIMDB_OK;
    char *copy = strdup(path);
    if (!copy) return AIMDB_ENOMEM;
    const char *dir = dirname(copy);
    struct stat st;
    int rc = AIMDB_OK;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0750) == 0) {
            plugin_log(pl, AIMDB_LOG_INFO, "created %s for the history database", dir);
        } else {
            snprintf(err, errlen, "database %s: cannot create directory %s: %s", path, dir,
                     strerror(errno));
            rc = AIMDB_EIO;
        }
    }
    free(copy);
    return rc;
}

static int open_history(plugin *pl, const aimdb_conf_settings *s, char *err, size_t errlen) {
    const char *path = pl->database_path;
    int rc = ensure_directory(pl, path, err, errlen);
    if (rc != AIMDB_OK) return rc;
    aimdb_sqlite_options so = {
        .path = path,
        .synchronous = s->synchronous,
        .queue_rows = s->queue_rows,
        .batch_rows = s->batch_rows,
        .flush_interval_ms = s->flush_interval_ms,
        .runtime = &pl->runtime,
    };
    aimdb_backend backend;
    char why[512];
    rc = aimdb_sqlite_open(&so, &backend, why, sizeof(why));
    if (rc != AIMDB_OK) {
        snprintf(err, errlen, "database %s: %s", path, why);
        return rc;
    }
    aimdb_persist_options po = {
        .default_retention_ms = s->retention_ms,
        .sweep_interval_ms = s->sweep_interval_ms,
    };
    rc = aimdb_persist_attach(pl->db, backend, &po, &pl->persist);
    if (rc != AIMDB_OK) snprintf(err, errlen, "database %s: %s", path, aimdb_strerror(rc));
    return rc;
}

int setup_open(plugin *pl, const aimdb_conf *conf, char *err, size_t errlen) {
    const aimdb_conf_settings *s = &conf->settings;
    pl->max_payload = s->max_payload ? s->max_payload : PLUGIN_DEFAULT_MAX_PAYLOAD;
    aimdb_db_options dbo = {
        .runtime = &pl->runtime,
        .workers = s->workers,
        .max_value_bytes = pl->max_payload,
    };
    pl->database_path = strdup(config_database(conf));
    pl->db = pl->database_path ? aimdb_db_new(&dbo) : NULL;
    if (!pl->db) {
        snprintf(err, errlen, "out of memory creating the database");
        setup_close(pl);
        return AIMDB_ENOMEM;
    }
    int rc = open_history(pl, s, err, errlen);
    if (rc == AIMDB_OK && !(pl->aimx = aimdb_aimx_new(pl->db, NULL))) {
        snprintf(err, errlen, "out of memory creating the request handler");
        rc = AIMDB_ENOMEM;
    }
    if (rc == AIMDB_OK && (rc = aimdb_db_start(pl->db)) != AIMDB_OK)
        snprintf(err, errlen, "database %s: cannot start: %s", pl->database_path,
                 aimdb_strerror(rc));
    if (rc == AIMDB_OK && (rc = relay_start(pl, &pl->relay)) != AIMDB_OK)
        snprintf(err, errlen, "cannot start the relay thread: %s", aimdb_strerror(rc));
    if (rc != AIMDB_OK) setup_close(pl);
    return rc;
}

void setup_close(plugin *pl) {
    relay_stop(pl->relay); /* every value received is produced ... */
    pl->relay = NULL;
    if (pl->db) aimdb_db_stop(pl->db); /* ... then tapped and committed */
    aimdb_aimx_free(pl->aimx);
    aimdb_db_free(pl->db);
    free(pl->database_path);
    pl->aimx = NULL;
    pl->db = NULL;
    pl->persist = NULL;
    pl->database_path = NULL;
}
