/*
 * json.c -- the JSON string reader the payload codecs need.
 *
 * Whether a text is JSON at all is the core's question (aimdb/json.h), and
 * so is writing a string (aimdb_json_string_write); these helpers take
 * JSON strings apart: decoding into a sink (cJSON would cut a string at an
 * escaped U+0000 and lose text payloads on the way back) and recognising
 * the two shapes from_json reads (a lone string, {"base64": "..."}).
 * Escapes and UTF-8 sequences are measured by the core's own functions, so
 * a string is valid here exactly when the core scanner says so.  Nothing
 * here allocates.
 */
#include <stdint.h>
#include <string.h>

#include "aimdb/json.h"
#include "mqtt_internal.h"

static const char *skip_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
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

const char *json_read_string(const char *p, const char *end, sink *out) {
    p++; /* the opening quote */
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL; /* control characters must be escaped */
        if (c == '\\') {
            uint32_t cp;
            size_t n = aimdb_json_escape_decode(p + 1, (size_t)(end - p - 1), &cp);
            if (n == 0) return NULL;
            if (out) put_utf8(out, cp);
            p += 1 + n;
            continue;
        }
        size_t n = c < 0x80 ? 1 : aimdb_utf8_sequence_length(p, (size_t)(end - p));
        if (n == 0) return NULL;
        if (out) sink_write(out, p, n);
        p += n;
    }
    return NULL; /* unterminated */
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
