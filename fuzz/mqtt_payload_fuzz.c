/*
 * mqtt_payload_fuzz.c -- libFuzzer target: any bytes as an MQTT payload, and
 * as the JSON a history read turns back into one.
 *
 * A device can publish anything, and every byte of it reaches the four
 * payload codecs (payload.h) on the persist taps and the request threads.
 * Each input is run through all four, which must keep their contract:
 *   - to_json is snprintf-like: a short buffer gets a NUL-terminated prefix
 *     of the same text and the same length back;
 *   - its text is strict JSON and valid UTF-8 with no NUL in it, and it
 *     fails (-1) only for the json format, exactly for the bytes that
 *     format's accepts refuses;
 *   - from_json undoes it: the same bytes again for json, text and binary;
 *     under auto, bytes whose JSON form is the same value (payload.h: the
 *     string "\u8d00" sent with its quotes comes back as its content);
 *   - the input read as JSON by from_json never crashes, and what it gives
 *     has a JSON form again.
 * The strict checks themselves are held against second opinions: UTF-8
 * against a decoder written here from RFC 3629's table, JSON against cJSON
 * (every text aimdb calls valid must parse there).  Anything else aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aimdb/json.h"
#include "aimdb/payload.h"

#define SHORT_CAPS 3

static void require(bool ok, const char *what, const aimdb_codec *c) {
    if (ok) return;
    fprintf(stderr, "mqtt_payload_fuzz: %s: %s\n", c ? c->name : "checks", what);
    abort();
}

/* RFC 3629, section 4, one well-formed sequence at a time. */
static bool reference_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b <= 0x7F) more = 0;
        else if (b >= 0xC2 && b <= 0xDF) more = 1;
        else if (b == 0xE0) more = 2, lo = 0xA0;
        else if (b == 0xED) more = 2, hi = 0x9F; /* no surrogates */
        else if (b >= 0xE1 && b <= 0xEF) more = 2;
        else if (b == 0xF0) more = 3, lo = 0x90;
        else if (b == 0xF4) more = 3, hi = 0x8F; /* nothing past U+10FFFF */
        else if (b >= 0xF1 && b <= 0xF3) more = 3;
        else return false;
        if (n - i - 1 < more) return false;
        for (size_t k = 1; k <= more; k++) {
            uint8_t c = s[i + k];
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return false;
        }
        i += more + 1;
    }
    return true;
}

/* Nesting deeper than cJSON's own limit is valid JSON cJSON refuses. */
static bool shallow(const uint8_t *s, size_t n) {
    size_t depth = 0;
    for (size_t i = 0; i < n; i++)
        if ((s[i] == '[' || s[i] == '{') && ++depth >= CJSON_NESTING_LIMIT) return false;
    return true;
}

static void check_json_against_cjson(const uint8_t *s, size_t n) {
    if (!aimdb_json_valid(s, n) || !shallow(s, n)) return;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)s, n, &end, false);
    require(j != NULL, "valid JSON that cJSON cannot parse", NULL);
    cJSON_Delete(j);
}

/* The same JSON value: the same text, or equal as cJSON reads them (a
 * string escaped one way and written out the other). */
static bool same_json(const char *a, size_t alen, const char *b, size_t blen) {
    if (alen == blen && memcmp(a, b, alen) == 0) return true;
    cJSON *x = cJSON_ParseWithLength(a, alen), *y = cJSON_ParseWithLength(b, blen);
    bool same = x && y && cJSON_Compare(x, y, true);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

/* to_json into a buffer of its own size: the length, the text, the
 * prefix a short buffer gets.  The text, malloc'd, or NULL for -1. */
static char *json_form(const aimdb_codec *c, const uint8_t *p, size_t n, long *len) {
    *len = c->to_json(p, n, NULL, 0);
    if (*len < 0) return NULL;
    char *text = malloc((size_t)*len + 1);
    require(text != NULL, "out of memory", c);
    require(c->to_json(p, n, text, (size_t)*len + 1) == *len, "length changed", c);
    require(strlen(text) == (size_t)*len, "not NUL-terminated at its length", c);
    size_t caps[SHORT_CAPS] = {1, (size_t)*len / 2 + 1, (size_t)*len};
    char *part = malloc((size_t)*len + 1);
    require(part != NULL, "out of memory", c);
    for (size_t i = 0; i < SHORT_CAPS; i++) {
        memset(part, 'X', (size_t)*len + 1);
        require(c->to_json(p, n, part, caps[i]) == *len, "short buffer, other length", c);
        require(memcmp(part, text, caps[i] - 1) == 0 && part[caps[i] - 1] == '\0',
                "short buffer, not a prefix", c);
    }
    free(part);
    return text;
}

/* from_json of text into a buffer of its own size (malloc'd, at least one
 * byte); -1 leaves *out NULL. */
static long payload_of(const aimdb_codec *c, const char *text, size_t len, uint8_t **out) {
    *out = NULL;
    long n = c->from_json(text, len, NULL, 0);
    if (n < 0) return n;
    *out = malloc((size_t)n + 1);
    require(*out != NULL, "out of memory", c);
    require(c->from_json(text, len, *out, (size_t)n) == n, "from_json length changed", c);
    return n;
}

static void check_codec(const aimdb_codec *c, const uint8_t *p, size_t n) {
    long len;
    char *text = json_form(c, p, n, &len);
    bool accepted = !c->accepts || c->accepts(p, n);
    require((text != NULL) == accepted, "to_json fails for bytes accepts takes", c);
    require(text || c == &aimdb_codec_mqtt_json, "no JSON form", c);
    if (!text) return;
    require(aimdb_json_valid(text, (size_t)len), "to_json is not strict JSON", c);
    require(aimdb_utf8_valid(text, (size_t)len), "to_json is not UTF-8", c);
    check_json_against_cjson((const uint8_t *)text, (size_t)len);

    uint8_t *back;
    long m = payload_of(c, text, (size_t)len, &back);
    require(m >= 0, "from_json refuses to_json's text", c);
    if (c == &aimdb_codec_mqtt_auto) {
        long again_len;
        char *again = json_form(c, back, (size_t)m, &again_len);
        require(again && same_json(again, (size_t)again_len, text, (size_t)len),
                "auto: from_json gives bytes of another JSON value", c);
        free(again);
    } else {
        require((size_t)m == n && (n == 0 || memcmp(back, p, n) == 0),
                "from_json is not to_json's inverse", c);
    }
    free(back);
    free(text);
}

/* The input as the JSON a history read hands back. */
static void check_from_arbitrary_json(const aimdb_codec *c, const uint8_t *p, size_t n) {
    uint8_t *back;
    long m = payload_of(c, (const char *)p, n, &back);
    if (m < 0) return;
    long len;
    char *text = json_form(c, back, (size_t)m, &len);
    require(text || c == &aimdb_codec_mqtt_json, "from_json gives bytes without a JSON form", c);
    free(text);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    require(aimdb_utf8_valid(data, size) == reference_utf8_valid(data, size),
            "UTF-8 check disagrees with RFC 3629", NULL);
    check_json_against_cjson(data, size);
    static const aimdb_payload_format formats[] = {AIMDB_FORMAT_AUTO, AIMDB_FORMAT_JSON,
                                                   AIMDB_FORMAT_TEXT, AIMDB_FORMAT_BINARY};
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        const aimdb_codec *c = aimdb_payload_codec(formats[i]);
        check_codec(c, data, size);
        check_from_arbitrary_json(c, data, size);
    }
    return 0;
}
