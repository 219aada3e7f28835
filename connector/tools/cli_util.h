/*
 * cli_util.h -- what the connector's command-line programs (aimdb,
 * aimdb-mcu-sim) parse the same way: the options that reach a broker,
 * durations, counts, unique names and the password taken from the
 * environment (how a usage error is told: cli_usage.h).  Internal to
 * connector/tools.
 */
#ifndef AIMDB_CLI_UTIL_H
#define AIMDB_CLI_UTIL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_usage.h"
#include "sync_client.h"

/* "250ms", "5s", "10m", "2h", "7d"; a bare number is seconds.  Above 0 and at
 * most 100 years.  False if text is anything else. */
bool cli_parse_duration_ms(const char *text, int64_t *out);

/* A decimal integer in [min, max], nothing else around it. */
bool cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* "HOSTNAME-PID-RANDOM": unique per process run and safe as one topic level
 * (letters, digits, '-', '.'). */
void cli_unique_token(char *out, size_t cap);

/* Options every program takes to reach a broker (getopt_long values above
 * any short option). */
enum {
    CLI_OPT_BROKER = 1000,
    CLI_OPT_USER,
    CLI_OPT_PASSWORD,
    CLI_OPT_TIMEOUT,
    CLI_OPT_CAFILE,
    CLI_OPT_CERT,
    CLI_OPT_KEY,
};
#define CLI_CONNECTION_LONG_OPTIONS                                                          \
    {"broker", required_argument, NULL, CLI_OPT_BROKER},                                     \
        {"user", required_argument, NULL, CLI_OPT_USER},                                     \
        {"password", required_argument, NULL, CLI_OPT_PASSWORD},                             \
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},                               \
        {"cafile", required_argument, NULL, CLI_OPT_CAFILE},                                 \
        {"cert", required_argument, NULL, CLI_OPT_CERT},                                     \
        {"key", required_argument, NULL, CLI_OPT_KEY}
/* Their help, with what --timeout waits for in this program. */
#define CLI_CONNECTION_HELP(timeout_waits_for)                                               \
    "  --broker URL       mqtt://, mqtts://, ws:// or wss:// (default mqtt://localhost:1883)\n" \
    "  --user NAME        MQTT user name\n"                                                 \
    "  --password PW      MQTT password (default: $AIMDB_PASSWORD)\n"                      \
    "  --timeout D        wait at most D " timeout_waits_for " (default 5s)\n"             \
    "  --cafile, --cert, --key FILE   TLS trust store, client certificate and key\n"

#define CLI_DEFAULT_TIMEOUT_MS 5000

/* Defaults for the connection options: the default broker, 5 s, and the
 * password from $AIMDB_PASSWORD if set. */
void cli_connection_defaults(sync_options *o, const char *id_prefix);

/* Take one connection option into *o: 1 if opt was one, 0 if it is not,
 * -1 if its value is bad (the usage error is printed). */
int cli_connection_option(const char *prog, int opt, const char *arg, sync_options *o);

/* "5 s", "250 ms", "1.5 s": a duration in words for messages. */
void cli_format_duration(int64_t ms, char *out, size_t cap);

#endif
