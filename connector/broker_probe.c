/*
 * broker_probe.c -- why a connection to a broker fails, in words.
 *
 * Paho's connect reports "failure" (or "TCP/TLS connect failure") for an
 * unknown host, a refused port and a silent one alike.  A person starting
 * the bridge or the CLI needs to know which, so after a failed connect we
 * repeat only the TCP part and keep the system's own reason.  The probe
 * runs only after a failure, never on the way to a working connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aimdb/broker_url.h"

/* 0 if connected, else an errno value (ETIMEDOUT when nothing answered). */
static int try_address(const struct addrinfo *ai, int timeout_ms) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return errno;
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n;
            do n = poll(&p, 1, timeout_ms);
            while (n < 0 && errno == EINTR);
            socklen_t len = sizeof(err);
            if (n == 0) err = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        }
    }
    close(fd);
    return err;
}

int aimdb_broker_probe(const aimdb_broker_url *url, int timeout_ms, char *why, size_t whylen) {
    char port[8];
    snprintf(port, sizeof(port), "%u", url->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(url->host, port, &hints, &list);
    if (gai != 0) {
        snprintf(why, whylen, "cannot resolve host '%s': %s", url->host,
                 gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return AIMDB_EIO;
    }
    int err = EHOSTUNREACH;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next)
        if ((err = try_address(ai, timeout_ms)) == 0) break;
    freeaddrinfo(list);
    if (err == 0) return AIMDB_OK;
    if (err == ETIMEDOUT) snprintf(why, whylen, "no answer within %d ms", timeout_ms);
    else snprintf(why, whylen, "%s", strerror(err));
    return AIMDB_EIO;
}

void aimdb_broker_explain(const aimdb_broker_url *url, const char *refusal, const char *detail,
                          int timeout_ms, char *why, size_t whylen) {
    if (refusal && *refusal) snprintf(why, whylen, "refused by the broker: %s", refusal);
    else if (aimdb_broker_probe(url, timeout_ms, why, whylen) == AIMDB_OK)
        snprintf(why, whylen, "%s (the TCP connection works; %s)",
                 url->tls ? "TLS handshake or MQTT connect failed" : "MQTT connect failed",
                 detail);
}
