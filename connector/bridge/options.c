/*
 * options.c -- what aimdb-bridge runs with: aimdb.conf (docs/configuration.md, read
 * by the same parser as the plugin's, with the bridge's three extra
 * settings broker, request_topic and client_id) and the command line,
 * whose settings win over the file's, also on every reload.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aimdb/broker_url.h"
#include "aimdb/postgres.h"
#include "bridge.h"
#include "cli_usage.h"

static const char usage[] =
    "usage: aimdb-bridge -c AIMDB.CONF [options]\n"
    "\n"
    "Feed the records of AIMDB.CONF from an MQTT broker, keep their history in\n"
    "SQLite and answer AimX requests (record.query, record.list, record.get)\n"
    "published to the request topic, replying to the MQTT v5 Response Topic.\n"
    "\n"
    "  -c, --config FILE        records and settings (aimdb.conf format)\n"
    "  -b, --broker URL         mqtt://HOST[:PORT], mqtts://..., ws://...\n"
    "                           (default: the file's broker, else mqtt://localhost:1883)\n"
    "  -i, --client-id ID       MQTT client id (default: aimdb-bridge-HOSTNAME)\n"
    "  -t, --request-topic T    where requests arrive (default: aimdb/CLIENT-ID/rpc)\n"
    "  -d, --database PATH      history database (default: ./data/CLIENT-ID.db)\n"
    "  -u, --user NAME          MQTT user name\n"
    "  -P, --password PW        MQTT password (better: the AIMDB_PASSWORD variable)\n"
    "      --cafile FILE        CA certificates for mqtts:// (default: the system's)\n"
    "      --cert FILE, --key FILE  client certificate and key\n"
    "  -h, --help               this text\n"
    "      --version            print the version and exit\n"
    "\n"
    "Signals: SIGTERM/SIGINT commit everything received and exit; SIGHUP reloads\n"
    "the records of AIMDB.CONF.\n";

static int add_override(bridge_options *o, const char *key, const char *value) {
    for (size_t i = 0; i < o->n_overrides; i++)
        if (strcmp(o->keys[i], key) == 0) {
            o->values[i] = value; /* the last one given wins */
            return 0;
        }
    o->keys[o->n_overrides] = key;
    o->values[o->n_overrides++] = value;
    return 0;
}

int options_parse(int argc, char **argv, bridge_options *o) {
    enum { OPT_CAFILE = 1000, OPT_CERT, OPT_KEY, OPT_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"broker", required_argument, NULL, 'b'},
        {"client-id", required_argument, NULL, 'i'},
        {"request-topic", required_argument, NULL, 't'},
        {"database", required_argument, NULL, 'd'},
        {"user", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'P'},
        {"cafile", required_argument, NULL, OPT_CAFILE},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:b:i:t:d:u:P:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config_path = optarg; break;
        case 'b': add_override(o, "broker", optarg); break;
        case 'i': add_override(o, "client_id", optarg); break;
        case 't': add_override(o, "request_topic", optarg); break;
        case 'd': add_override(o, "database", optarg); break;
        case 'u': o->username = optarg; break;
        case 'P': o->password = optarg; break;
        case OPT_CAFILE: o->ca_file = optarg; break;
        case OPT_CERT: o->cert_file = optarg; break;
        case OPT_KEY: o->key_file = optarg; break;
        case 'h': fputs(usage, stdout); return CLI_ASKED_HELP;
        case OPT_VERSION: cli_print_version(BRIDGE_WHO); return CLI_ASKED_VERSION;
        default: return cli_bad_option(BRIDGE_WHO, ch, argv);
        }
    }
    if (optind < argc) return cli_usage_error(BRIDGE_WHO, "unexpected argument '%s'", argv[optind]);
    if (!o->config_path) return cli_usage_error(BRIDGE_WHO, "no aimdb.conf given (-c FILE)");
    if (!o->password && getenv("AIMDB_PASSWORD") && *getenv("AIMDB_PASSWORD"))
        o->password = getenv("AIMDB_PASSWORD");
    return CLI_PARSED;
}

int options_load_conf(const bridge_options *o, aimdb_conf **out, char *err, size_t errlen) {
    aimdb_conf *conf = NULL;
    int rc = aimdb_conf_load(o->config_path, AIMDB_CONF_BRIDGE, &conf, err, errlen);
    for (size_t i = 0; rc == AIMDB_OK && i < o->n_overrides; i++)
        rc = aimdb_conf_override(conf, "--", o->keys[i], o->values[i], err, errlen);
    if (rc != AIMDB_OK) {
        aimdb_conf_free(conf);
        return rc;
    }
    *out = conf;
    return AIMDB_OK;
}

const char *options_broker(const aimdb_conf *conf) {
    return conf->settings.broker ? conf->settings.broker : AIMDB_BROKER_URL_DEFAULT;
}

const char *options_client_id(const aimdb_conf *conf, char *buf, size_t cap) {
    if (conf->settings.client_id) return conf->settings.client_id;
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || !*host) snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    /* One topic level, so it can name the request topic. */
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') *p = '-';
    snprintf(buf, cap, "aimdb-bridge-%s", host);
    return buf;
}

/* The client id as a file name: bytes a file name should not hold become
 * '-'; a long id is cut at 127 bytes. */
static void file_name_of(const char *client_id, char name[128]) {
    snprintf(name, 128, "%s", client_id);
    for (char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p)) *p = '-';
}

/* Each bridge its own history, beside the session it belongs to: the
 * broker keeps a session per client id (what was published while the
 * bridge was away), and the file that records it is named after the same
 * id.  Never the plugin's ./data/aimdb.db, so a broker with the plugin and
 * a bridge started in one directory keep two histories, and two bridges
 * with their own client ids keep two as well (sqlite_lock.c refuses a
 * second writer of one file in any case). */
const char *options_default_database(const char *client_id, char *buf, size_t cap) {
    char name[128];
    file_name_of(client_id, name);
    snprintf(buf, cap, "./data/%s.db", name);
    return buf;
}

/* The connector's session file (redelivery.c) lives beside the history it
 * keeps from duplicates, named after the session's client id.  A database
 * that is no file keeps it in ./data, where the default database would be
 * (created if missing, as for that database); :memory: needs none, since
 * its history does not outlive the process either. */
const char *options_session_file(const char *database, const char *client_id, char *buf,
                                 size_t cap) {
    if (strcmp(database, ":memory:") == 0) return NULL;
    char name[128];
    file_name_of(client_id, name);
    const char *slash = strrchr(database, '/');
    if (aimdb_postgres_is_uri(database) || strncmp(database, "file:", 5) == 0) {
        mkdir("./data", 0755); /* an error shows when the file is saved */
        snprintf(buf, cap, "./data/%s.session", name);
    } else if (!slash) {
        snprintf(buf, cap, "%s.session", name);
    } else {
        snprintf(buf, cap, "%.*s/%s.session", (int)(slash - database), database, name);
    }
    return buf;
}

const char *options_request_topic(const aimdb_conf *conf, const char *client_id, char *buf,
                                  size_t cap) {
    if (conf->settings.request_topic) return conf->settings.request_topic;
    snprintf(buf, cap, "aimdb/%s/rpc", client_id);
    return buf;
}
