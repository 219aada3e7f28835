/*
 * utf8.c -- strict UTF-8 (RFC 3629): the one place that knows which byte
 * sequences are characters.
 *
 * Whether bytes are text decides how a payload is stored, whether a
 * history row is served and whether a request is read, so "UTF-8" must
 * mean exactly what every JSON consumer downstream accepts: no overlong
 * forms, no UTF-16 surrogates, nothing above U+10FFFF.  The ranges below
 * are the well-formed byte sequences table of Unicode (chapter 3, table
 * 3-7).  Everything else that walks UTF-8 -- the JSON scanner, the MQTT
 * string codecs -- measures sequences with aimdb_utf8_sequence_length.
 */
#include "aimdb/json.h"

static bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t aimdb_utf8_sequence_length(const void *bytes, size_t avail) {
    const unsigned char *s = bytes;
    if (avail == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0; /* a stray continuation byte, or overlong C0/C1 */
    if (c < 0xE0) return avail >= 2 && is_continuation(s[1]) ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3 || !is_continuation(s[1]) || !is_continuation(s[2])) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F) return 0; /* U+D800..U+DFFF */
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || !is_continuation(s[1]) || !is_continuation(s[2]) ||
            !is_continuation(s[3]))
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] > 0x8F) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

bool aimdb_utf8_valid(const void *s, size_t len) {
    if (len == 0) return true; /* s may be NULL then */
    const unsigned char *p = s, *end = p + len;
    while (p < end) {
        if (*p < 0x80) { /* ASCII dominates real payloads: no call for it */
            p++;
            continue;
        }
        size_t n = aimdb_utf8_sequence_length(p, (size_t)(end - p));
        if (n == 0) return false;
        p += n;
    }
    return true;
}
