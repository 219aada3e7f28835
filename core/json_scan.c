/*
 * json_scan.c -- the strict RFC 8259 scanner: one JSON check for the whole
 * product (json.h says why cJSON cannot be that check).
 *
 * It validates the whole text -- grammar, UTF-8 in strings (through
 * aimdb_utf8_sequence_length), escapes (surrogate pairs must pair up),
 * nesting depth -- and on request remembers where one member of the root
 * object stands, so a protocol can echo a value exactly as the client
 * wrote it without trusting a parser's re-printing.  It allocates nothing
 * and stops at the first problem; recursion is bounded by max_depth.
 */
#include <string.h>

#include "aimdb/json.h"

/*
 * The read position is passed in and out of each function (NULL out means
 * the scan stopped at a problem, already recorded in out) rather than kept
 * in this struct, so it can live in a register: on short payloads that
 * was the difference between this scanner and a plain recogniser.
 */
typedef struct scanner {
    const unsigned char *begin, *end;
    unsigned max_depth;
    const char *root_key;
    aimdb_json_scan_result *out;
} scanner;

static const unsigned char *fail(scanner *s, const unsigned char *at, aimdb_json_status status) {
    s->out->status = status;
    s->out->error_at = (size_t)(at - s->begin);
    return NULL;
}

static const unsigned char *skip_space(const unsigned char *p, const unsigned char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const unsigned char *expect(scanner *s, const unsigned char *p, unsigned char c) {
    return p < s->end && *p == c ? p + 1 : fail(s, p, AIMDB_JSON_SYNTAX);
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The four hex digits at s, or -1. */
static long hex4(const unsigned char *s, size_t avail) {
    if (avail < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_value(s[i]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* An unpaired surrogate has no Unicode meaning (RFC 7493): a high one must
 * be followed by an escaped low one, and a low one may not stand alone. */
size_t aimdb_json_escape_decode(const void *bytes, size_t avail, uint32_t *cp) {
    static const char simple[] = "\"\\/bfnrt";
    static const char decoded[] = "\"\\/\b\f\n\r\t";
    const unsigned char *s = bytes;
    if (avail == 0) return 0;
    const char *hit = s[0] ? strchr(simple, s[0]) : NULL;
    if (hit) {
        *cp = (unsigned char)decoded[hit - simple];
        return 1;
    }
    long unit = s[0] == 'u' ? hex4(s + 1, avail - 1) : -1;
    if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF)) return 0;
    if (unit < 0xD800 || unit > 0xDBFF) {
        *cp = (uint32_t)unit;
        return 5;
    }
    if (avail < 7 || s[5] != '\\' || s[6] != 'u') return 0;
    long low = hex4(s + 7, avail - 7);
    if (low < 0xDC00 || low > 0xDFFF) return 0;
    *cp = 0x10000 + (((uint32_t)unit - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
    return 11;
}

/* A string (p at the opening quote); returns the byte after its closing
 * quote. */
static const unsigned char *scan_string(scanner *s, const unsigned char *p) {
    const unsigned char *end = s->end;
    p++;
    for (;;) {
        if (p >= end) return fail(s, p, AIMDB_JSON_SYNTAX);
        unsigned char c = *p;
        if (c == '"') return p + 1;
        size_t n;
        if (c == '\\') {
            uint32_t cp;
            n = aimdb_json_escape_decode(p + 1, (size_t)(end - p - 1), &cp);
            if (n == 0) return fail(s, p, AIMDB_JSON_SYNTAX);
            if (cp == 0) s->out->has_nul = true;
            n++; /* the backslash */
        } else if (c < 0x20) {
            return fail(s, p, AIMDB_JSON_SYNTAX); /* control characters must be escaped */
        } else if (c < 0x80) {
            n = 1; /* ASCII dominates real text: no call for it */
        } else {
            n = aimdb_utf8_sequence_length(p, (size_t)(end - p));
            if (n == 0) return fail(s, p, AIMDB_JSON_UTF8);
        }
        p += n;
    }
}

/* Does the string [p, end) -- quotes included, already scanned, so every
 * escape is valid -- decode to exactly want?  A code point is compared with
 * one byte of want, which is why want must be ASCII.  Runs only on the root
 * object's keys, and only when a root_key was asked for. */
static bool string_is(const unsigned char *p, const unsigned char *end, const char *want) {
    for (p++, end--; p < end; p++, want++) {
        uint32_t cp = *p;
        if (*p == '\\') p += aimdb_json_escape_decode(p + 1, (size_t)(end - p - 1), &cp);
        if (*want == '\0' || cp != (unsigned char)*want) return false;
    }
    return *want == '\0';
}

/* Past a run of at least one digit at p, or NULL. */
static const unsigned char *read_digits(const unsigned char *p, const unsigned char *end) {
    if (p >= end || *p < '0' || *p > '9') return NULL;
    while (p < end && *p >= '0' && *p <= '9') p++;
    return p;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  Past it, or NULL. */
static const unsigned char *read_number(const unsigned char *p, const unsigned char *end) {
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

/* A malformed number is reported at its first byte: one failure exit keeps
 * the hot path of number-heavy payloads short. */
static const unsigned char *scan_number(scanner *s, const unsigned char *p) {
    const unsigned char *past = read_number(p, s->end);
    return past ? past : fail(s, p, AIMDB_JSON_SYNTAX);
}

static const unsigned char *scan_word(scanner *s, const unsigned char *p, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - p) < n || memcmp(p, word, n) != 0)
        return fail(s, p, AIMDB_JSON_SYNTAX);
    return p + n;
}

static const unsigned char *scan_value(scanner *s, const unsigned char *p, unsigned depth);

/* One member of an object at depth (p at its key).  Only the root object's
 * members (depth 1) are compared with root_key. */
static const unsigned char *scan_member(scanner *s, const unsigned char *p, unsigned depth) {
    const unsigned char *key = p;
    if (p >= s->end || *p != '"') return fail(s, p, AIMDB_JSON_SYNTAX);
    if (!(p = scan_string(s, p))) return NULL;
    bool is_key = s->root_key && depth == 1 && string_is(key, p, s->root_key);
    if (!(p = expect(s, skip_space(p, s->end), ':'))) return NULL;
    const unsigned char *value = skip_space(p, s->end);
    if (!(p = scan_value(s, value, depth))) return NULL;
    if (is_key && s->out->root_key_count++ == 0) {
        s->out->root_value = (const char *)value;
        s->out->root_value_len = (size_t)(p - value);
    }
    return p;
}

/* The elements of an array or the members of an object (p at the opening
 * bracket, which makes the nesting depth), up to and including the closing
 * bracket. */
static const unsigned char *scan_container(scanner *s, const unsigned char *p, unsigned depth,
                                           bool members) {
    const unsigned char *end = s->end;
    unsigned char close = members ? '}' : ']';
    if (depth > s->max_depth) return fail(s, p, AIMDB_JSON_DEEP);
    p = skip_space(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
        p = members ? scan_member(s, p, depth) : scan_value(s, p, depth);
        if (!p) return NULL;
        p = skip_space(p, end);
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
            continue;
        }
        return p < end && *p == close ? p + 1 : fail(s, p, AIMDB_JSON_SYNTAX);
    }
}

/* One value inside depth containers.  scan_container has one call site so
 * that it is inlined: the recursion is then one function calling itself. */
static const unsigned char *scan_value(scanner *s, const unsigned char *p, unsigned depth) {
    if (p >= s->end) return fail(s, p, AIMDB_JSON_SYNTAX);
    switch (*p) {
    case '{':
    case '[': return scan_container(s, p, depth + 1, *p == '{');
    case '"': return scan_string(s, p);
    case 't': return scan_word(s, p, "true");
    case 'f': return scan_word(s, p, "false");
    case 'n': return scan_word(s, p, "null");
    default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) return scan_number(s, p);
        return fail(s, p, AIMDB_JSON_SYNTAX);
    }
}

const char *aimdb_json_problem(aimdb_json_status status) {
    switch (status) {
    case AIMDB_JSON_OK: return "valid JSON";
    case AIMDB_JSON_SYNTAX: return "not valid JSON";
    case AIMDB_JSON_UTF8: return "not valid UTF-8";
    case AIMDB_JSON_DEEP: return "nested too deeply";
    }
    return "unreadable";
}

void aimdb_json_scan(const void *text, size_t len, const aimdb_json_scan_options *opts,
                     aimdb_json_scan_result *out) {
    memset(out, 0, sizeof(*out));
    const unsigned char *begin = len ? text : (const unsigned char *)""; /* NULL when empty */
    scanner s = {begin, begin + len, AIMDB_JSON_MAX_DEPTH, NULL, out};
    if (opts) {
        if (opts->max_depth) s.max_depth = opts->max_depth;
        s.root_key = opts->root_key;
    }
    const unsigned char *p = scan_value(&s, skip_space(begin, s.end), 0);
    if (p && (p = skip_space(p, s.end)) != s.end)
        fail(&s, p, AIMDB_JSON_SYNTAX); /* something after the value */
}

bool aimdb_json_valid(const void *s, size_t len) {
    aimdb_json_scan_result r;
    aimdb_json_scan(s, len, NULL, &r);
    return r.status == AIMDB_JSON_OK;
}
