/*
 * json_scan.c -- a strict RFC 8259 check that runs in front of cJSON.
 *
 * cJSON builds the request tree, but it is lenient in ways a protocol
 * cannot be: it accepts invalid UTF-8 and raw control characters in
 * strings, numbers such as "+1", "01" or ".5", silently cuts strings at an
 * escaped \u0000, and keeps no positions.  Replies echo the request's id as
 * the client wrote it (so 12345678901234567890 is not rounded through a
 * double), and raw JSON taken from codecs and attributes is spliced into
 * replies unparsed; both are only safe if the text is known to be exactly
 * JSON.  So this scanner validates the whole text -- grammar, UTF-8 (no
 * overlongs, no surrogates, nothing above U+10FFFF), escapes (surrogate
 * pairs must pair up), nesting depth -- and remembers where the root
 * object's "id" value is.  It allocates nothing and stops at the first
 * problem; recursion is bounded by max_depth.
 */
#include <string.h>

#include "aimx_internal.h"

typedef struct scanner {
    const unsigned char *begin, *p, *end;
    unsigned depth, max_depth;
    aimx_json_scan *out;
} scanner;

static bool fail(scanner *s, aimx_json_status status) {
    s->out->status = status;
    s->out->error_at = (size_t)(s->p - s->begin);
    return false;
}

static bool at_end(const scanner *s) { return s->p >= s->end; }

static void skip_space(scanner *s) {
    while (!at_end(s) && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool expect(scanner *s, unsigned char c) {
    if (at_end(s) || *s->p != c) return fail(s, AIMX_JSON_SYNTAX);
    s->p++;
    return true;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits of a \u escape. */
static bool scan_hex4(scanner *s, uint32_t *unit) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = at_end(s) ? -1 : hex_value(*s->p);
        if (d < 0) return fail(s, AIMX_JSON_SYNTAX);
        v = v * 16 + (uint32_t)d;
        s->p++;
    }
    *unit = v;
    return true;
}

/* The escape after a backslash (p is past it); a high surrogate must be
 * followed by an escaped low one, and a low one may not stand alone. */
static bool scan_escape(scanner *s, uint32_t *cp) {
    if (at_end(s)) return fail(s, AIMX_JSON_SYNTAX);
    unsigned char c = *s->p;
    static const char simple[] = "\"\\/bfnrt";
    static const char decoded[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(simple, c) : NULL;
    if (hit) {
        s->p++;
        *cp = (unsigned char)decoded[hit - simple];
        return true;
    }
    if (c != 'u') return fail(s, AIMX_JSON_SYNTAX);
    s->p++;
    uint32_t unit;
    if (!scan_hex4(s, &unit)) return false;
    if (unit >= 0xDC00 && unit <= 0xDFFF) return fail(s, AIMX_JSON_SYNTAX);
    if (unit >= 0xD800 && unit <= 0xDBFF) {
        uint32_t low;
        if (!expect(s, '\\') || !expect(s, 'u') || !scan_hex4(s, &low)) return false;
        if (low < 0xDC00 || low > 0xDFFF) return fail(s, AIMX_JSON_SYNTAX);
        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    }
    if (unit == 0) s->out->has_nul = true;
    *cp = unit;
    return true;
}

/* One multi-byte UTF-8 character (the lead byte is >= 0x80). */
static bool scan_utf8(scanner *s, uint32_t *cp) {
    unsigned char lead = *s->p;
    size_t n;
    uint32_t v, min;
    if (lead >= 0xC2 && lead <= 0xDF) {
        n = 2, v = lead & 0x1F, min = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        n = 3, v = lead & 0x0F, min = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        n = 4, v = lead & 0x07, min = 0x10000;
    } else {
        return fail(s, AIMX_JSON_UTF8);
    }
    if ((size_t)(s->end - s->p) < n) return fail(s, AIMX_JSON_UTF8);
    for (size_t i = 1; i < n; i++) {
        if ((s->p[i] & 0xC0) != 0x80) return fail(s, AIMX_JSON_UTF8);
        v = (v << 6) | (s->p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return fail(s, AIMX_JSON_UTF8);
    s->p += n;
    *cp = v;
    return true;
}

/* A string (p at the opening quote).  If want is given, *equal says whether
 * the decoded string is exactly want (an ASCII word). */
static bool scan_string(scanner *s, const char *want, bool *equal) {
    size_t matched = 0;
    bool same = want != NULL;
    s->p++;
    for (;;) {
        if (at_end(s)) return fail(s, AIMX_JSON_SYNTAX);
        unsigned char c = *s->p;
        uint32_t cp;
        if (c == '"') break;
        if (c == '\\') {
            s->p++;
            if (!scan_escape(s, &cp)) return false;
        } else if (c < 0x20) {
            return fail(s, AIMX_JSON_SYNTAX); /* control characters must be escaped */
        } else if (c < 0x80) {
            cp = c;
            s->p++;
        } else if (!scan_utf8(s, &cp)) {
            return false;
        }
        if (same && want[matched] != '\0' && cp == (unsigned char)want[matched])
            matched++;
        else
            same = false;
    }
    s->p++;
    if (equal) *equal = same && want[matched] == '\0';
    return true;
}

static bool scan_digits(scanner *s) {
    if (at_end(s) || *s->p < '0' || *s->p > '9') return fail(s, AIMX_JSON_SYNTAX);
    while (!at_end(s) && *s->p >= '0' && *s->p <= '9') s->p++;
    return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(scanner *s) {
    if (*s->p == '-') s->p++;
    if (!at_end(s) && *s->p == '0') {
        s->p++;
    } else if (!scan_digits(s)) {
        return false;
    }
    if (!at_end(s) && *s->p == '.') {
        s->p++;
        if (!scan_digits(s)) return false;
    }
    if (!at_end(s) && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (!at_end(s) && (*s->p == '+' || *s->p == '-')) s->p++;
        if (!scan_digits(s)) return false;
    }
    return true;
}

static bool scan_word(scanner *s, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail(s, AIMX_JSON_SYNTAX);
    s->p += n;
    return true;
}

static bool scan_value(scanner *s);

static bool enter(scanner *s) {
    if (++s->depth > s->max_depth) return fail(s, AIMX_JSON_DEEP);
    s->p++;
    skip_space(s);
    return true;
}

static bool scan_array(scanner *s) {
    if (!enter(s)) return false;
    if (!at_end(s) && *s->p == ']') {
        s->p++;
        s->depth--;
        return true;
    }
    for (;;) {
        if (!scan_value(s)) return false;
        skip_space(s);
        if (!at_end(s) && *s->p == ',') {
            s->p++;
            skip_space(s);
            continue;
        }
        if (!expect(s, ']')) return false;
        s->depth--;
        return true;
    }
}

/* Only the root object's members are compared with "id". */
static bool scan_member(scanner *s, bool root) {
    bool is_id = false;
    if (at_end(s) || *s->p != '"') return fail(s, AIMX_JSON_SYNTAX);
    if (!scan_string(s, root ? "id" : NULL, &is_id)) return false;
    skip_space(s);
    if (!expect(s, ':')) return false;
    skip_space(s);
    const unsigned char *value = s->p;
    if (!scan_value(s)) return false;
    if (is_id && s->out->id_count++ == 0) {
        s->out->id = (const char *)value;
        s->out->id_len = (size_t)(s->p - value);
    }
    return true;
}

static bool scan_object(scanner *s) {
    if (!enter(s)) return false;
    bool root = s->depth == 1;
    if (!at_end(s) && *s->p == '}') {
        s->p++;
        s->depth--;
        return true;
    }
    for (;;) {
        if (!scan_member(s, root)) return false;
        skip_space(s);
        if (!at_end(s) && *s->p == ',') {
            s->p++;
            skip_space(s);
            continue;
        }
        if (!expect(s, '}')) return false;
        s->depth--;
        return true;
    }
}

static bool scan_value(scanner *s) {
    if (at_end(s)) return fail(s, AIMX_JSON_SYNTAX);
    switch (*s->p) {
    case '{': return scan_object(s);
    case '[': return scan_array(s);
    case '"': return scan_string(s, NULL, NULL);
    case 't': return scan_word(s, "true");
    case 'f': return scan_word(s, "false");
    case 'n': return scan_word(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return scan_number(s);
        return fail(s, AIMX_JSON_SYNTAX);
    }
}

const char *aimx_json_problem(aimx_json_status status) {
    switch (status) {
    case AIMX_JSON_OK: return "valid JSON";
    case AIMX_JSON_SYNTAX: return "not valid JSON";
    case AIMX_JSON_UTF8: return "not valid UTF-8";
    case AIMX_JSON_DEEP: return "nested too deeply";
    }
    return "unreadable";
}

void aimx_json_scan_text(const char *text, size_t len, unsigned max_depth,
                         aimx_json_scan *out) {
    memset(out, 0, sizeof(*out));
    scanner s = {(const unsigned char *)text, (const unsigned char *)text,
                 (const unsigned char *)text + len, 0, max_depth, out};
    skip_space(&s);
    if (!scan_value(&s)) return;
    skip_space(&s);
    if (!at_end(&s)) fail(&s, AIMX_JSON_SYNTAX); /* something after the value */
}
