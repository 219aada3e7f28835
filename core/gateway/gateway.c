/*
 * gateway.c -- the libaimdb stack an aimdb.conf describes: the record
 * database, history behind the persistence layer (SQLite, or PostgreSQL
 * for a central node), the uplink that copies local history to
 * PostgreSQL, and the AimX handler, opened together and closed so that
 * every value produced before the close is committed (see gateway.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aimdb/gateway.h"
#include "aimdb/postgres.h"
#include "aimdb/sqlite.h"

const char *aimdb_gateway_database(const aimdb_conf_settings *s, const char *default_database) {
    return s->database ? s->database : default_database;
}

/* The name of the user this process runs as (its uid if it has none),
 * which is not always the one who started it: Mosquitto started as root
 * switches to mosquitto.conf's `user` before it loads plugins. */
static void user_name(char *out, size_t cap) {
    uid_t uid = geteuid();
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
        snprintf(out, cap, "%s", found->pw_name);
    else
        snprintf(out, cap, "%ld", (long)uid);
}

/* Why this process cannot create or write path, and what to do about it,
 * as "; ..." to append to the error that failed on it; "" when the path's
 * access explains nothing (the error is then SQLite's own, e.g. a damaged
 * file).  SQLite says only "unable to open database file" or "attempt to
 * write a readonly database" for all of these.  Asked after the failure,
 * from errno, so it describes what went wrong rather than guessing. */
static void explain_access(const char *path, char *out, size_t cap) {
    *out = '\0';
    char *copy = strdup(path);
    if (!copy) return;
    const char *dir = dirname(copy);
    char user[128];
    user_name(user, sizeof(user));
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        snprintf(out, cap, "; %s is a directory: name a file in it, e.g. %s/aimdb.db", path, path);
    } else if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) {
        /* SQLite creates the file there, and the -wal and -shm files beside
         * it on every open, so the directory must be writable. */
        int e = errno;
        if (e == EACCES || e == EPERM)
            snprintf(out, cap,
                     "; directory %s is not writable by user %s, who must create the "
                     "database and its -wal and -shm files there: make it writable for that "
                     "user (chown %s %s) or choose a database path it can write",
                     dir, user, user, dir);
        else if (e == ENOENT)
            snprintf(out, cap, "; directory %s does not exist: create it (mkdir -p %s)", dir, dir);
        else if (e == EROFS)
            snprintf(out, cap,
                     "; directory %s is on a read-only file system: choose a database path "
                     "on a writable one",
                     dir);
        else
            snprintf(out, cap, "; directory %s: %s", dir, strerror(e));
    } else if (exists && faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0) {
        snprintf(out, cap,
                 "; %s is not writable by user %s (%s): make it writable for that user "
                 "(chown %s %s) or choose another database path",
                 path, user, strerror(errno), user, path);
    }
    free(copy);
}

/* SQLite creates the file, not its directory; the default ./data/ (and any
 * other missing last directory) is created here, once, with a log line. */
static int ensure_directory(aimdb_gateway *gw, const char *path, char *err, size_t errlen) {
    if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) return AIMDB_OK;
    char *copy = strdup(path);
    if (!copy) return AIMDB_ENOMEM;
    const char *dir = dirname(copy);
    struct stat st;
    int rc = AIMDB_OK;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0750) == 0) {
            aimdb_log(gw->runtime, AIMDB_LOG_INFO, "created %s for the history database", dir);
        } else {
            char why[1024];
            int e = errno;
            explain_access(dir, why, sizeof(why));
            snprintf(err, errlen, "database %s: cannot create directory %s: %s%s", path, dir,
                     strerror(e), why);
            rc = AIMDB_EIO;
        }
    }
    free(copy);
    return rc;
}

/* The node's name in fleet history: `gateway`, else the host name. */
static int gateway_name(const aimdb_conf_settings *s, char **out, char *err, size_t errlen) {
    char host[256] = "";
    if (!s->gateway && (gethostname(host, sizeof(host) - 1) != 0 || !*host)) {
        snprintf(err, errlen, "gateway: no name given and the host name is unknown; set "
                              "'gateway NAME' in aimdb.conf");
        return AIMDB_EINVAL;
    }
    *out = strdup(s->gateway ? s->gateway : host);
    return *out ? AIMDB_OK : AIMDB_ENOMEM;
}

static int open_sqlite(aimdb_gateway *gw, const aimdb_conf_settings *s, const char *path,
                       aimdb_backend *backend, char *err, size_t errlen) {
    int rc = ensure_directory(gw, path, err, errlen);
    if (rc != AIMDB_OK) return rc;
    aimdb_sqlite_options so = {
        .path = path,
        .synchronous = s->synchronous,
        .queue_rows = s->queue_rows,
        .queue_bytes = gw->max_memory / 4, /* the write queue's share (aimdb.h) */
        .batch_rows = s->batch_rows,
        .flush_interval_ms = s->flush_interval_ms,
        .runtime = gw->runtime,
    };
    if (gw->uplink) {
        so.hold_after = aimdb_uplink_shipped_id;
        so.hold_ctx = gw->uplink;
        so.hold_ms = s->uplink_hold_ms >= 0 ? s->uplink_hold_ms
                                            : AIMDB_GATEWAY_DEFAULT_UPLINK_HOLD_MS;
    }
    char why[512];
    rc = aimdb_sqlite_open(&so, backend, why, sizeof(why));
    if (rc != AIMDB_OK) {
        char access[1024];
        explain_access(path, access, sizeof(access));
        snprintf(err, errlen, "database %s: %s%s", path, why, access);
    }
    return rc;
}

static int open_postgres(aimdb_gateway *gw, const aimdb_conf_settings *s, const char *uri,
                         aimdb_backend *backend, char *err, size_t errlen) {
    aimdb_postgres_options po = {
        .uri = uri,
        .gateway = gw->gateway,
        .queue_rows = s->queue_rows,
        .queue_bytes = gw->max_memory / 4, /* the write queue's share (aimdb.h) */
        .batch_rows = s->batch_rows,
        .flush_interval_ms = s->flush_interval_ms,
        .runtime = gw->runtime,
    };
    char why[768];
    int rc = aimdb_postgres_open(&po, backend, why, sizeof(why));
    /* why names the server already (user@host:port/db, no password). */
    if (rc != AIMDB_OK) snprintf(err, errlen, "database %s", why);
    return rc;
}

/* The uplink is created before SQLite opens (retention asks it what is
 * shipped) and started once the database runs. */
static int new_uplink(aimdb_gateway *gw, const aimdb_conf_settings *s, const char *path,
                      char *err, size_t errlen) {
    if (!s->uplink) return AIMDB_OK;
    aimdb_uplink_options uo = {.uri = s->uplink, .gateway = gw->gateway, .sqlite_path = path,
                               .runtime = gw->runtime};
    char why[512];
    int rc = aimdb_uplink_new(&uo, &gw->uplink, why, sizeof(why));
    if (rc != AIMDB_OK) snprintf(err, errlen, "%s", why);
    return rc;
}

static int open_history(aimdb_gateway *gw, const aimdb_conf_settings *s, const char *database,
                        char *err, size_t errlen) {
    aimdb_backend backend;
    bool fleet = aimdb_postgres_is_uri(database);
    int rc = fleet ? open_postgres(gw, s, database, &backend, err, errlen)
                   : new_uplink(gw, s, database, err, errlen);
    if (rc == AIMDB_OK && !fleet) rc = open_sqlite(gw, s, database, &backend, err, errlen);
    if (rc != AIMDB_OK) return rc;
    aimdb_persist_options po = {
        .default_retention_ms = s->retention_ms,
        .sweep_interval_ms = s->sweep_interval_ms,
        .query_queue = AIMDB_GATEWAY_PENDING_QUERIES,
    };
    rc = aimdb_persist_attach(gw->db, backend, &po, &gw->persist);
    if (rc != AIMDB_OK)
        snprintf(err, errlen, "database %s: %s", gw->database_path, aimdb_strerror(rc));
    return rc;
}

/* What logs call the database: a path as is, a URI without its password. */
static char *display_name(const char *database) {
    if (!aimdb_postgres_is_uri(database)) return strdup(database);
    char where[256], text[300];
    aimdb_postgres_describe(database, where, sizeof(where));
    snprintf(text, sizeof(text), "postgresql://%s", where);
    return strdup(text);
}

int aimdb_gateway_open(aimdb_gateway *gw, const aimdb_conf_settings *s,
                       const char *default_database, const aimdb_runtime *runtime, char *err,
                       size_t errlen) {
    memset(gw, 0, sizeof(*gw));
    gw->runtime = runtime;
    gw->max_payload = s->max_payload ? s->max_payload : AIMDB_GATEWAY_DEFAULT_MAX_PAYLOAD;
    gw->max_records = s->max_records ? s->max_records : AIMDB_GATEWAY_DEFAULT_MAX_RECORDS;
    gw->max_memory = s->max_memory ? s->max_memory : AIMDB_GATEWAY_DEFAULT_MAX_MEMORY;
    aimdb_db_options dbo = {
        .runtime = runtime,
        .workers = s->workers,
        .max_value_bytes = gw->max_payload,
        .max_records = gw->max_records,
        .max_memory = gw->max_memory,
    };
    const char *database = aimdb_gateway_database(s, default_database);
    gw->database_path = display_name(database);
    gw->db = gw->database_path ? aimdb_db_new(&dbo) : NULL;
    if (!gw->db) {
        snprintf(err, errlen, "out of memory creating the database");
        aimdb_gateway_close(gw);
        return AIMDB_ENOMEM;
    }
    int rc = AIMDB_OK;
    if (s->uplink || aimdb_postgres_is_uri(database)) rc = gateway_name(s, &gw->gateway, err, errlen);
    if (rc == AIMDB_OK) rc = open_history(gw, s, database, err, errlen);
    if (rc == AIMDB_OK && !(gw->aimx = aimdb_aimx_new(gw->db, NULL))) {
        snprintf(err, errlen, "out of memory creating the request handler");
        rc = AIMDB_ENOMEM;
    }
    if (rc == AIMDB_OK && (rc = aimdb_db_start(gw->db)) != AIMDB_OK)
        snprintf(err, errlen, "database %s: cannot start: %s", gw->database_path,
                 aimdb_strerror(rc));
    if (rc == AIMDB_OK && gw->uplink && (rc = aimdb_uplink_start(gw->uplink)) != AIMDB_OK)
        snprintf(err, errlen, "uplink: cannot start its thread: %s", aimdb_strerror(rc));
    if (rc != AIMDB_OK) aimdb_gateway_close(gw);
    return rc;
}

void aimdb_gateway_close(aimdb_gateway *gw) {
    if (gw->db) aimdb_db_stop(gw->db); /* taps drained, history committed */
    aimdb_aimx_free(gw->aimx);
    aimdb_db_free(gw->db);
    /* After the history (whose retention asks it what is shipped): rows
     * committed last ship at the next start. */
    aimdb_uplink_free(gw->uplink);
    free(gw->database_path);
    free(gw->gateway);
    gw->uplink = NULL;
    gw->gateway = NULL;
    gw->db = NULL;
    gw->persist = NULL;
    gw->aimx = NULL;
    gw->database_path = NULL;
}

static bool same_text(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

void aimdb_gateway_warn_settings(const aimdb_gateway *gw, const aimdb_conf *was,
                                 const aimdb_conf *now, const char *default_database,
                                 const char *who) {
    const aimdb_conf_settings *a = &was->settings, *b = &now->settings;
    const struct {
        const char *key;
        bool changed;
    } settings[] = {
        {"database", strcmp(aimdb_gateway_database(a, default_database),
                            aimdb_gateway_database(b, default_database)) != 0},
        {"retention", a->retention_ms != b->retention_ms},
        {"synchronous", a->synchronous != b->synchronous},
        {"batch_rows", a->batch_rows != b->batch_rows},
        {"queue_rows", a->queue_rows != b->queue_rows},
        {"flush_interval", a->flush_interval_ms != b->flush_interval_ms},
        {"sweep_interval", a->sweep_interval_ms != b->sweep_interval_ms},
        {"uplink", !same_text(a->uplink, b->uplink)},
        {"gateway", !same_text(a->gateway, b->gateway)},
        {"uplink_hold", a->uplink_hold_ms != b->uplink_hold_ms},
        {"max_payload", a->max_payload != b->max_payload},
        {"max_records", a->max_records != b->max_records},
        {"max_memory", a->max_memory != b->max_memory},
        {"workers", a->workers != b->workers},
        {"broker", !same_text(a->broker, b->broker)},
        {"request_topic", !same_text(a->request_topic, b->request_topic)},
        {"client_id", !same_text(a->client_id, b->client_id)},
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (settings[i].changed)
            aimdb_log(gw->runtime, AIMDB_LOG_WARNING,
                      "reload: setting '%s' changed; it takes effect when %s restarts",
                      settings[i].key, who);
}
