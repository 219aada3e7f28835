/*
 * broker_url.h -- broker addresses as people write them, checked before any
 * connection is tried, and why a TCP connection to one fails.
 *
 * Accepted: SCHEME://HOST[:PORT][/PATH] where SCHEME is
 *   mqtt, tcp     plain MQTT                    default port 1883
 *   mqtts, ssl    MQTT over TLS                 default port 8883
 *   ws, wss       MQTT over WebSockets (+TLS)   default port 80 / 443; PATH allowed
 * HOST is a name, an IPv4 address or a bracketed IPv6 address.  Everything
 * else (no scheme, an unknown one, "user:password@", a port that is not
 * 1..65535, a path on a non-WebSocket URL, a query) is refused with a message
 * naming the part that is wrong, e.g. "unknown scheme 'http' (mqtt, mqtts,
 * tcp, ssl, ws or wss)".
 *
 * Library aimdb_broker_url: libc only, so the synchronous Paho client (the
 * CLI, the simulator) and the asynchronous one (the connector) share it
 * without linking both Paho flavours into one program.  Pure and
 * thread-safe except where a function says it blocks.
 */
#ifndef AIMDB_BROKER_URL_H
#define AIMDB_BROKER_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "aimdb/aimdb.h" /* status codes only */

#ifdef __cplusplus
extern "C" {
#endif

#define AIMDB_BROKER_URL_DEFAULT "mqtt://localhost:1883"

typedef struct aimdb_broker_url {
    char scheme[8];   /* as written, lower case: "mqtt", "mqtts", ... */
    bool tls;         /* mqtts, ssl, wss */
    bool websocket;   /* ws, wss */
    char host[256];   /* without the brackets of an IPv6 address */
    unsigned port;    /* given or the scheme's default */
    char uri[600];    /* the form Paho takes: tcp://HOST:PORT, ssl://..., ws://HOST:PORT/PATH */
} aimdb_broker_url;

/* Parse and check text.  AIMDB_OK fills *out; AIMDB_EINVAL writes the
 * reason into err ("bad broker URL 'x': ...") and leaves *out undefined. */
int aimdb_broker_url_parse(const char *text, aimdb_broker_url *out, char *err, size_t errlen);

/*
 * Check the TLS files a connection to url would use before Paho sees them
 * (it reports a missing CA file as a failed handshake): each given file
 * readable, files only with a TLS URL, certificate and key together.
 * labels name the three files in messages ({"--cafile", "--cert", "--key"}
 * on a command line).  AIMDB_OK, or AIMDB_EINVAL with err set, e.g.
 * "--cafile /x.pem: cannot read the file".  Any NULL file is not given.
 */
int aimdb_broker_tls_files_check(const aimdb_broker_url *url, const char *ca_file,
                                 const char *cert_file, const char *key_file,
                                 const char *const labels[3], char *err, size_t errlen);

/*
 * Open (and close) a plain TCP connection to the broker, to explain a failed
 * MQTT connect: Paho reports only "failure", not whether the host is unknown,
 * refuses or does not answer.  AIMDB_OK if TCP connects (the problem is then
 * TLS or MQTT); otherwise AIMDB_EIO with why set to e.g. "cannot resolve
 * host 'x': Name or service not known", "Connection refused", "no answer
 * within 2000 ms".  Blocks up to about timeout_ms per address; any thread.
 */
int aimdb_broker_probe(const aimdb_broker_url *url, int timeout_ms, char *why, size_t whylen);

/*
 * Why a connect to url failed, in one phrase for "cannot connect to URL: ":
 * the broker's refusal if it sent one (refusal, e.g. "Not authorized"; NULL
 * or "" if none), else the probe's reason, else "TLS handshake or MQTT
 * connect failed (the TCP connection works; DETAIL)", detail being the
 * client library's own word.  Blocks in the probe; any thread.
 */
void aimdb_broker_explain(const aimdb_broker_url *url, const char *refusal, const char *detail,
                          int timeout_ms, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
