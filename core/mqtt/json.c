/*
 * json.c -- a strict JSON validator and the JSON string reader/writer the
 * payload codecs need.
 *
 * Why not cJSON: format=auto stores a payload "as is" when it is JSON, so
 * the test must be exactly RFC 8259, and cJSON 1.7 accepts "01", "1." and
 * raw control characters inside strings, and it does not check UTF-8.  It
 * also cuts a string at an escaped U+0000, which would lose text payloads
 * on the way back.  This file is a recursive-descent recogniser (bounded
 * depth) that never builds a tree, plus a string decoder that writes into a
 * sink, so nothing here allocates.
 */
#include <stdint.h>
#include <string.h>

#include "aimdb/payload.h"
#include "mqtt_internal.h"

static const char *skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static const char *read_digits(const char *p, const char *end) {
    if (p >= end || !is_digit(*p)) return NULL; /* at least one */
    while (p < end && is_digit(*p)) p++;
    return p;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static const char *read_number(const char *p, const char *end) {
    if (*p == '-') p++;
    if (p < end && *p == '0') p++;
    else if (!(p = read_digits(p, end))) return NULL;
    if (p < end && *p == '.' && !(p = read_digits(p + 1, end))) return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!(p = read_digits(p, end))) return NULL;
    }
    return p;
}

static const char *read_word(const char *p, const char *end, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) return NULL;
    return p + n;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits after "\u" at p, or -1. */
static long read_hex4(const char *p, const char *end) {
    if (end - p < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static void put_utf8(sink *out, uint32_t cp) {
    if (cp < 0x80) {
        sink_put(out, (char)cp);
    } else if (cp < 0x800) {
        sink_put(out, (char)(0xC0 | cp >> 6));
        sink_put(out, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        sink_put(out, (char)(0xE0 | cp >> 12));
        sink_put(out, (char)(0x80 | (cp >> 6 & 0x3F)));
        sink_put(out, (char)(0x80 | (cp & 0x3F)));
    } else {
        sink_put(out, (char)(0xF0 | cp >> 18));
        sink_put(out, (char)(0x80 | (cp >> 12 & 0x3F)));
        sink_put(out, (char)(0x80 | (cp >> 6 & 0x3F)));
        sink_put(out, (char)(0x80 | (cp & 0x3F)));
    }
}

/* "\uXXXX", or a surrogate pair "\uD8xx\uDCxx", at p (just after the 'u').
 * An unpaired surrogate has no Unicode meaning: rejected (RFC 7493). */
static const char *read_unicode_escape(const char *p, const char *end, sink *out) {
    long hi = read_hex4(p, end);
    if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF)) return NULL;
    p += 4;
    uint32_t cp = (uint32_t)hi;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return NULL;
        long lo = read_hex4(p + 2, end);
        if (lo < 0xDC00 || lo > 0xDFFF) return NULL;
        cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        p += 6;
    }
    if (out) put_utf8(out, cp);
    return p;
}

/* An escape at p (just after the backslash). */
static const char *read_escape(const char *p, const char *end, sink *out) {
    if (p >= end) return NULL;
    char c;
    switch (*p) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': return read_unicode_escape(p + 1, end, out);
    default: return NULL;
    }
    if (out) sink_put(out, c);
    return p + 1;
}

const char *json_read_string(const char *p, const char *end, sink *out) {
    p++; /* the opening quote */
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL; /* control characters must be escaped */
        if (c == '\\') {
            if (!(p = read_escape(p + 1, end, out))) return NULL;
            continue;
        }
        size_t n = c < 0x80 ? 1 : utf8_sequence_length((const unsigned char *)p,
                                                        (size_t)(end - p));
        if (n == 0) return NULL;
        if (out) sink_write(out, p, n);
        p += n;
    }
    return NULL; /* unterminated */
}

static const char *read_value(const char *p, const char *end, int depth);

/* The elements of an array or the members of an object, after the opening
 * bracket, up to and including the closing one. */
static const char *read_elements(const char *p, const char *end, int depth, char close,
                                 bool members) {
    p = skip_space(p, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
        if (members) {
            if (p >= end || *p != '"' || !(p = json_read_string(p, end, NULL))) return NULL;
            p = skip_space(p, end);
            if (p >= end || *p != ':') return NULL;
            p = skip_space(p + 1, end);
        }
        if (!(p = read_value(p, end, depth))) return NULL;
        p = skip_space(p, end);
        if (p < end && *p == close) return p + 1;
        if (p >= end || *p != ',') return NULL;
        p = skip_space(p + 1, end);
    }
}

static const char *read_value(const char *p, const char *end, int depth) {
    if (p >= end) return NULL;
    switch (*p) {
    case '{':
    case '[':
        if (depth >= AIMDB_JSON_MAX_DEPTH) return NULL;
        return read_elements(p + 1, end, depth + 1, *p == '{' ? '}' : ']', *p == '{');
    case '"': return json_read_string(p, end, NULL);
    case 't': return read_word(p, end, "true");
    case 'f': return read_word(p, end, "false");
    case 'n': return read_word(p, end, "null");
    default: return *p == '-' || is_digit(*p) ? read_number(p, end) : NULL;
    }
}

bool aimdb_json_valid(const void *s, size_t len) {
    if (len == 0) return false;
    const char *end = (const char *)s + len;
    const char *p = read_value(skip_space(s, end), end, 0);
    return p && skip_space(p, end) == end;
}

bool json_whole_string(const char *json, size_t len, const char **start, const char **end) {
    const char *stop = json + len;
    const char *p = skip_space(json, stop);
    if (p >= stop || *p != '"') return false;
    const char *q = json_read_string(p, stop, NULL);
    if (!q || skip_space(q, stop) != stop) return false;
    *start = p;
    *end = q;
    return true;
}

bool json_single_member_string(const char *json, size_t len, const char *key,
                               const char **start, const char **end) {
    const char *stop = json + len;
    const char *p = skip_space(json, stop);
    if (p >= stop || *p != '{') return false;
    p = skip_space(p + 1, stop);
    char name[32];
    sink k = sink_bytes(name, sizeof(name));
    if (p >= stop || *p != '"' || !(p = json_read_string(p, stop, &k))) return false;
    if (k.len != strlen(key) || k.len > sizeof(name) || memcmp(name, key, k.len) != 0)
        return false;
    p = skip_space(p, stop);
    if (p >= stop || *p != ':') return false;
    p = skip_space(p + 1, stop);
    if (p >= stop || *p != '"') return false;
    const char *value = p;
    if (!(p = json_read_string(p, stop, NULL))) return false;
    const char *value_end = p;
    p = skip_space(p, stop);
    if (p >= stop || *p != '}' || skip_space(p + 1, stop) != stop) return false;
    *start = value;
    *end = value_end;
    return true;
}

/* Bytes that may stand in a JSON string unescaped: everything from 0x20 on
 * except '"' and '\'.  Runs of them are copied in one go. */
static bool needs_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

void json_write_string(sink *out, const void *bytes, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = bytes, *end = p + len;
    sink_put(out, '"');
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && !needs_escape(*p)) p++;
        sink_write(out, run, (size_t)(p - run));
        if (p == end) break;
        unsigned char c = *p++;
        sink_put(out, '\\');
        switch (c) {
        case '"': sink_put(out, '"'); break;
        case '\\': sink_put(out, '\\'); break;
        case '\b': sink_put(out, 'b'); break;
        case '\f': sink_put(out, 'f'); break;
        case '\n': sink_put(out, 'n'); break;
        case '\r': sink_put(out, 'r'); break;
        case '\t': sink_put(out, 't'); break;
        default:
            sink_write(out, "u00", 3);
            sink_put(out, hex[c >> 4]);
            sink_put(out, hex[c & 0xF]);
        }
    }
    sink_put(out, '"');
}
