/*
 * cli_util.c -- command-line values the connector's programs share (see
 * cli_util.h), so "--timeout 5s" and "--since 2h" mean the same everywhere.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aimdb/duration.h"
#include "cli_util.h"

#define MAX_TIMEOUT_MS 3600000                  /* an hour: it must fit an int */

bool cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
    if (!text || !isdigit((unsigned char)*text)) return false;
    uint64_t v = 0;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p)) return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_duration_ms(const char *text, int64_t *out) {
    int64_t ms;
    if (!aimdb_duration_parse(text, true, 1000, AIMDB_DURATION_MAX_MS, &ms) || ms == 0) return false;
    *out = ms;
    return true;
}

void cli_unique_token(char *out, size_t cap) {
    char host[64] = "host";
    if (gethostname(host, sizeof(host) - 1) != 0) snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') *p = '-';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* pid and clock tell runs apart; the nanoseconds make two runs in one
     * pid namespace at the same second differ too. */
    unsigned mix = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16) ^ (unsigned)ts.tv_sec;
    snprintf(out, cap, "%s-%ld-%08x", host, (long)getpid(), mix);
}


void cli_format_duration(int64_t ms, char *out, size_t cap) {
    if (ms % 1000 == 0) snprintf(out, cap, "%lld s", (long long)(ms / 1000));
    else if (ms < 1000) snprintf(out, cap, "%lld ms", (long long)ms);
    else snprintf(out, cap, "%.1f s", (double)ms / 1000.0);
}

void cli_connection_defaults(sync_options *o, const char *id_prefix) {
    memset(o, 0, sizeof(*o));
    o->id_prefix = id_prefix;
    o->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
    /* --password overrides it; the environment keeps it out of `ps`. */
    const char *env = getenv("AIMDB_PASSWORD");
    o->password = env && *env ? env : NULL;
}

int cli_connection_option(const char *prog, int opt, const char *arg, sync_options *o) {
    int64_t ms;
    switch (opt) {
    case CLI_OPT_BROKER: o->broker = arg; return 1;
    case CLI_OPT_USER: o->username = arg; return 1;
    case CLI_OPT_PASSWORD: o->password = arg; return 1;
    case CLI_OPT_CAFILE: o->ca_file = arg; return 1;
    case CLI_OPT_CERT: o->cert_file = arg; return 1;
    case CLI_OPT_KEY: o->key_file = arg; return 1;
    case CLI_OPT_TIMEOUT:
        if (!cli_parse_duration_ms(arg, &ms) || ms > MAX_TIMEOUT_MS) {
            cli_usage_error(prog, "--timeout '%s': give a duration up to 1h, e.g. 500ms, 5s, 2m", arg);
            return -1;
        }
        o->timeout_ms = (int)ms;
        return 1;
    default:
        return 0;
    }
}
