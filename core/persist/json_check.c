/*
 * json_check.c -- is a stored value really JSON?
 *
 * History results embed each stored value verbatim (re-printing would lose
 * number precision: cJSON holds numbers as doubles), so a value must be
 * checked against the JSON grammar itself before it is served: one bad row
 * (written by another tool, or a bug) must be skipped, not break the whole
 * reply for every client.  cJSON is not strict enough for that: it takes
 * "01", "1." and invalid UTF-8.  This checker follows RFC 8259 exactly,
 * allocates nothing and bounds nesting so hostile input cannot exhaust the
 * stack.
 */
#include <string.h>

#include "persist_internal.h"

#define MAX_DEPTH 512

typedef struct cursor {
    const unsigned char *p, *end;
} cursor;

/* Length of the UTF-8 sequence at s (shortest form, no surrogates, at most
 * U+10FFFF), or 0 if it is not one. */
static size_t utf8_sequence(const unsigned char *s, const unsigned char *end) {
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else return 0;
    if ((size_t)(end - s) < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

bool utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        size_t n = utf8_sequence(p, end);
        if (n == 0) return false;
        p += n;
    }
    return true;
}

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool take(cursor *c, char ch) {
    if (c->p < c->end && *c->p == (unsigned char)ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool is_digit(const cursor *c) { return c->p < c->end && *c->p >= '0' && *c->p <= '9'; }

static bool digits(cursor *c) {
    if (!is_digit(c)) return false;
    while (is_digit(c)) c->p++;
    return true;
}

static bool is_hex(unsigned char h) {
    return (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
}

static bool string(cursor *c) {
    if (!take(c, '"')) return false;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20) return false;
        if (ch == '\\') {
            c->p++;
            if (c->p >= c->end) return false;
            unsigned char e = *c->p++;
            if (e == 'u') {
                if (c->end - c->p < 4) return false;
                for (int i = 0; i < 4; i++)
                    if (!is_hex(*c->p++)) return false;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return false;
            }
            continue;
        }
        size_t n = utf8_sequence(c->p, c->end);
        if (n == 0) return false;
        c->p += n;
    }
    return false;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool number(cursor *c) {
    take(c, '-');
    if (take(c, '0')) {
        if (is_digit(c)) return false;
    } else if (!digits(c)) {
        return false;
    }
    if (take(c, '.') && !digits(c)) return false;
    if (take(c, 'e') || take(c, 'E')) {
        if (!take(c, '+')) take(c, '-');
        if (!digits(c)) return false;
    }
    return true;
}

static bool literal(cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
    c->p += n;
    return true;
}

static bool value(cursor *c, int depth);

/* Array or object: open, then comma-separated members, then close. */
static bool container(cursor *c, int depth, char close, bool keyed) {
    c->p++; /* the opening bracket */
    if (depth >= MAX_DEPTH) return false;
    skip_space(c);
    if (take(c, close)) return true;
    for (;;) {
        skip_space(c);
        if (keyed) {
            if (!string(c)) return false;
            skip_space(c);
            if (!take(c, ':')) return false;
            skip_space(c);
        }
        if (!value(c, depth + 1)) return false;
        skip_space(c);
        if (take(c, close)) return true;
        if (!take(c, ',')) return false;
    }
}

static bool value(cursor *c, int depth) {
    if (c->p >= c->end) return false;
    switch (*c->p) {
    case '{': return container(c, depth, '}', true);
    case '[': return container(c, depth, ']', false);
    case '"': return string(c);
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    default: return number(c);
    }
}

bool json_text_valid(const char *text, size_t len) {
    cursor c = {(const unsigned char *)text, (const unsigned char *)text + len};
    skip_space(&c);
    if (!value(&c, 0)) return false;
    skip_space(&c);
    return c.p == c.end;
}
