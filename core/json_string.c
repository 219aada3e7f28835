/*
 * json_string.c -- text as a JSON string literal: the one writer behind
 * record attributes, history rows and the MQTT payload formats, so every
 * string the product prints is escaped the same way.
 *
 * Quote, backslash and the control characters below U+0020 are escaped,
 * with the short forms where JSON has them (\n, \t, ...); every other byte
 * is copied as is, in runs, as the text is valid UTF-8 already (callers
 * check that).  Output is counted past the buffer's end, like snprintf, so
 * one call with no room sizes the next.
 */
#include <string.h>

#include "aimdb/json.h"

/* Copy what fits of data[0..n) at *len, and count all of it. */
static void put(char *out, size_t cap, size_t *len, const void *data, size_t n) {
    if (*len < cap) memcpy(out + *len, data, n < cap - *len ? n : cap - *len);
    *len += n;
}

static bool stands_as_is(unsigned char c) { return c >= 0x20 && c != '"' && c != '\\'; }

/* The escape of c (one that does not stand as is) into esc; its length. */
static size_t escape(unsigned char c, char esc[6]) {
    static const char hex[] = "0123456789abcdef";
    static const char short_form[] = {['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
                                      ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't'};
    esc[0] = '\\';
    if (c < sizeof(short_form) && short_form[c]) {
        esc[1] = short_form[c];
        return 2;
    }
    memcpy(esc + 1, "u00", 3);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 0xF];
    return 6;
}

size_t aimdb_json_string_write(const void *text, size_t len, char *out, size_t cap) {
    const unsigned char *p = text, *end = p + len;
    size_t n = 0;
    put(out, cap, &n, "\"", 1);
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && stands_as_is(*p)) p++;
        put(out, cap, &n, run, (size_t)(p - run));
        if (p == end) break;
        char esc[6];
        put(out, cap, &n, esc, escape(*p++, esc));
    }
    put(out, cap, &n, "\"", 1);
    return n;
}
