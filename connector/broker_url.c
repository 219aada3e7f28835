/*
 * broker_url.c -- parsing and checking broker URLs (see broker_url.h).
 *
 * Paho accepts almost any string at create time and fails later, at
 * connect, with a bare "failure"; checking here means a typo in --broker or
 * aimdb.conf is reported at start-up, with the part that is wrong.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aimdb/broker_url.h"

typedef struct scheme_info {
    const char *name;
    const char *paho; /* the scheme Paho is given */
    unsigned port;
    bool tls, websocket;
} scheme_info;

static const scheme_info schemes[] = {
    {"mqtt", "tcp", 1883, false, false}, {"tcp", "tcp", 1883, false, false},
    {"mqtts", "ssl", 8883, true, false}, {"ssl", "ssl", 8883, true, false},
    {"ws", "ws", 80, false, true},       {"wss", "wss", 443, true, true},
};

static int fail(char *err, size_t errlen, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const char *text, const char *fmt, ...) {
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (errlen) snprintf(err, errlen, "bad broker URL '%s': %s", text, why);
    return AIMDB_EINVAL;
}

static const scheme_info *find_scheme(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i].name) == len && strncasecmp(schemes[i].name, name, len) == 0)
            return &schemes[i];
    return NULL;
}

/* A DNS name or IPv4 address: letters, digits, '-', '.', '_'. */
static bool valid_name(const char *s, size_t len) {
    if (len == 0 || len > 253) return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
            return false;
    return true;
}

static bool valid_ipv6(const char *s, size_t len) {
    if (len < 2 || len > 45) return false;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.') return false;
    return true;
}

/* Digits only, 1..65535. */
static bool parse_port(const char *s, size_t len, unsigned *out) {
    if (len == 0 || len > 5) return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535) return false;
    *out = v;
    return true;
}

int aimdb_broker_url_parse(const char *text, aimdb_broker_url *out, char *err, size_t errlen) {
    if (!text || !*text) return fail(err, errlen, text ? text : "", "empty");
    const char *sep = strstr(text, "://");
    if (!sep)
        return fail(err, errlen, text, "no scheme (write e.g. mqtt://%s:1883)",
                    strchr(text, ':') || strchr(text, '/') ? "host" : text);
    const scheme_info *sc = find_scheme(text, (size_t)(sep - text));
    if (!sc)
        return fail(err, errlen, text, "unknown scheme '%.*s' (mqtt, mqtts, tcp, ssl, ws or wss)",
                    (int)(sep - text), text);

    const char *host = sep + 3;
    size_t authority = strcspn(host, "/?#");
    if (memchr(host, '@', authority))
        return fail(err, errlen, text,
                    "credentials do not belong in the URL (use --user/--password)");
    const char *host_end, *port_at = NULL;
    bool bracketed = host[0] == '[';
    if (bracketed) {
        const char *close = memchr(host, ']', authority);
        if (!close) return fail(err, errlen, text, "'[' without ']' around an IPv6 address");
        host_end = close;
        if (close + 1 < host + authority) {
            if (close[1] != ':') return fail(err, errlen, text, "unexpected text after ']'");
            port_at = close + 2;
        }
        host++;
    } else {
        const char *colon = memchr(host, ':', authority);
        host_end = colon ? colon : host + authority;
        if (colon) port_at = colon + 1;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0) return fail(err, errlen, text, "no host");
    if (bracketed ? !valid_ipv6(host, host_len) : !valid_name(host, host_len))
        return fail(err, errlen, text, "bad host '%.*s'", (int)host_len, host);

    unsigned port = sc->port;
    if (port_at) {
        size_t port_len = (size_t)(sep + 3 + authority - port_at);
        if (!parse_port(port_at, port_len, &port))
            return fail(err, errlen, text, "bad port '%.*s' (1 to 65535)", (int)port_len, port_at);
    }

    const char *rest = sep + 3 + authority;
    if (strpbrk(rest, "?#")) return fail(err, errlen, text, "a query or fragment is not allowed");
    if (!sc->websocket && strcmp(rest, "") != 0 && strcmp(rest, "/") != 0)
        return fail(err, errlen, text, "a path is allowed only for ws:// and wss://");
    for (const char *p = rest; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return fail(err, errlen, text, "the path holds a space or control character");

    memset(out, 0, sizeof(*out));
    snprintf(out->scheme, sizeof(out->scheme), "%s", sc->name);
    out->tls = sc->tls;
    out->websocket = sc->websocket;
    memcpy(out->host, host, host_len);
    out->port = port;
    int n = snprintf(out->uri, sizeof(out->uri), "%s://%s%.*s%s:%u%s", sc->paho,
                     bracketed ? "[" : "", (int)host_len, host, bracketed ? "]" : "", port,
                     sc->websocket ? rest : "");
    if (n < 0 || (size_t)n >= sizeof(out->uri)) return fail(err, errlen, text, "too long");
    return AIMDB_OK;
}

int aimdb_broker_tls_files_check(const aimdb_broker_url *url, const char *ca_file,
                                 const char *cert_file, const char *key_file,
                                 const char *const labels[3], char *err, size_t errlen) {
    const char *files[] = {ca_file, cert_file, key_file};
    for (size_t i = 0; i < 3; i++) {
        if (!files[i]) continue;
        if (!url->tls) {
            snprintf(err, errlen, "%s needs a TLS broker URL (mqtts://, ssl:// or wss://)",
                     labels[i]);
            return AIMDB_EINVAL;
        }
        if (access(files[i], R_OK) != 0) {
            snprintf(err, errlen, "%s %s: cannot read the file", labels[i], files[i]);
            return AIMDB_EINVAL;
        }
    }
    if (!cert_file != !key_file) {
        snprintf(err, errlen, "%s and %s go together", labels[1], labels[2]);
        return AIMDB_EINVAL;
    }
    return AIMDB_OK;
}
