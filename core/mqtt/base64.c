/*
 * base64.c -- RFC 4648 base64, the JSON form of payloads that are not text.
 *
 * Decoding is strict (padding required, zero pad bits, no whitespace) so
 * that every accepted text has exactly one payload and re-encodes to the
 * same text: a {"base64":...} row read back and written again is unchanged.
 */
#include "mqtt_internal.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(sink *out, const void *bytes, size_t len) {
    const unsigned char *p = bytes;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
        char quad[4] = {alphabet[v >> 18], alphabet[v >> 12 & 63], alphabet[v >> 6 & 63],
                        alphabet[v & 63]};
        sink_write(out, quad, 4);
    }
    if (i < len) {
        unsigned long v = (unsigned long)p[i] << 16;
        if (i + 1 < len) v |= (unsigned long)p[i + 1] << 8;
        char quad[4] = {alphabet[v >> 18], alphabet[v >> 12 & 63],
                        i + 1 < len ? alphabet[v >> 6 & 63] : '=', '='};
        sink_write(out, quad, 4);
    }
}

static int sextet(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool base64_decode(const char *text, size_t len, sink *out) {
    if (len % 4 != 0) return false;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        /* '=' may only end the text: "xx==" or "xxx=" */
        size_t pad = last && text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0;
        unsigned long v = 0;
        for (size_t k = 0; k < 4; k++) {
            int s = k < 4 - pad ? sextet(text[i + k]) : 0;
            if (s < 0) return false;
            v = v << 6 | (unsigned long)s;
        }
        sink_put(out, (char)(v >> 16));
        if (pad == 2) {
            if (v & 0xFFFF) return false; /* non-zero pad bits */
            continue;
        }
        sink_put(out, (char)(v >> 8 & 0xFF));
        if (pad == 1) {
            if (v & 0xFF) return false;
            continue;
        }
        sink_put(out, (char)(v & 0xFF));
    }
    return true;
}
