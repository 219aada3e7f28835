/*
 * test_payload.c -- the payload formats: the JSON form of each format, and
 * from_json giving back the original bytes.  What counts as JSON and as
 * UTF-8 is the core's rule (aimdb/json.h), pinned in tests/core/test_json.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/aimdb.h"
#include "aimdb/payload.h"

#define S(lit) lit, sizeof(lit) - 1 /* a literal as (bytes, length) */

/* ---------------------------------------------------------- codecs */

/* to_json the caller's way: ask for the length, then fill.  NULL if -1. */
static char *to_json(const aimdb_codec *c, const void *p, size_t len, long *n) {
    *n = c->to_json(p, len, NULL, 0);
    if (*n < 0) return NULL;
    char *out = malloc((size_t)*n + 1);
    assert_non_null(out);
    assert_int_equal(c->to_json(p, len, out, (size_t)*n + 1), *n);
    assert_int_equal(strlen(out), *n); /* JSON text has no NUL byte */
    return out;
}

/* from_json the same way; the bytes, or NULL if -1. */
static char *from_json(const aimdb_codec *c, const char *json, size_t len, long *n) {
    *n = c->from_json(json, len, NULL, 0);
    if (*n < 0) return NULL;
    char *out = malloc((size_t)*n + 1);
    assert_non_null(out);
    assert_int_equal(c->from_json(json, len, out, (size_t)*n), *n);
    return out;
}

/* payload -> expected JSON -> expected payload back. */
static void expect_codec(const aimdb_codec *c, const void *payload, size_t len, const char *json,
                         const void *back, size_t back_len) {
    long n;
    char *text = to_json(c, payload, len, &n);
    if (!text) fail_msg("%s: no JSON form, expected %s", c->name, json);
    assert_string_equal(text, json);
    char *bytes = from_json(c, text, (size_t)n, &n);
    if (!bytes) fail_msg("%s: %s does not decode", c->name, json);
    assert_int_equal(n, back_len);
    assert_memory_equal(bytes, back, back_len);
    free(text);
    free(bytes);
}

static void round_trip(const aimdb_codec *c, const void *payload, size_t len, const char *json) {
    expect_codec(c, payload, len, json, payload, len);
}

static void test_auto(void **state) {
    (void)state;
    const aimdb_codec *c = &aimdb_codec_mqtt_auto;
    round_trip(c, S("{\"t\":21.5}"), "{\"t\":21.5}");
    round_trip(c, S(" [1, 2] \n"), " [1, 2] \n"); /* JSON is kept byte for byte */
    round_trip(c, S("21.5"), "21.5");
    round_trip(c, S("hello"), "\"hello\"");
    round_trip(c, S("ON"), "\"ON\"");
    round_trip(c, S("01"), "\"01\"");             /* not JSON: a string */
    round_trip(c, S("a\"b\\c\n\x01\x1f\x7f/"), "\"a\\\"b\\\\c\\n\\u0001\\u001f\x7f/\"");
    round_trip(c, S("a\0b"), "\"a\\u0000b\"");
    round_trip(c, S("gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80"), "\"gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80\"");
    round_trip(c, S("\xff\x00\x01"), "{\"base64\":\"/wAB\"}");
    round_trip(c, S("ok\xed\xa0\x80"), "{\"base64\":\"b2vtoIA=\"}"); /* a surrogate is not text */
    round_trip(c, "", 0, "\"\"");                /* empty payload: the empty string */
    round_trip(c, NULL, 0, "\"\"");
    /* a literal {"base64":...} whose content is text was sent as JSON */
    round_trip(c, S("{\"base64\":\"aGk=\"}"), "{\"base64\":\"aGk=\"}");
    /* a JSON string whose content is itself JSON must have been sent as is */
    round_trip(c, S("\"5\""), "\"5\"");
    /* the one ambiguity: "ON" with quotes and ON without store the same
     * JSON, which decodes to the likelier one (payload.h) */
    expect_codec(c, S("\"ON\""), "\"ON\"", S("ON"));
}

static void test_json_format(void **state) {
    (void)state;
    const aimdb_codec *c = &aimdb_codec_mqtt_json;
    round_trip(c, S("{\"a\":[1,2]}"), "{\"a\":[1,2]}");
    round_trip(c, S("\"ON\""), "\"ON\"");
    long n;
    assert_null(to_json(c, S("hello"), &n));
    assert_int_equal(n, -1);
    assert_int_equal(c->to_json("", 0, NULL, 0), -1);
    assert_int_equal(c->to_json(S("01"), NULL, 0), -1);
    assert_int_equal(c->to_json(S("\xff"), NULL, 0), -1);
    assert_int_equal(c->from_json(S("nope"), NULL, 0), -1);
    /* exactly what has a JSON form is a value of the record */
    assert_true(c->accepts(S(" {\"a\":1} ")));
    assert_false(c->accepts(S("hello")));
    assert_false(c->accepts("", 0));
    assert_false(c->accepts(S("\xff")));
    /* the other formats have a JSON form for every payload */
    assert_null(aimdb_codec_mqtt_auto.accepts);
    assert_null(aimdb_codec_mqtt_text.accepts);
    assert_null(aimdb_codec_mqtt_binary.accepts);
}

static void test_text_format(void **state) {
    (void)state;
    const aimdb_codec *c = &aimdb_codec_mqtt_text;
    round_trip(c, S("{\"a\":1}"), "\"{\\\"a\\\":1}\"");
    round_trip(c, S("21.5"), "\"21.5\"");
    round_trip(c, "", 0, "\"\"");
    round_trip(c, S("\xc3"), "{\"base64\":\"ww==\"}");
    round_trip(c, S("\"5\""), "\"\\\"5\\\"\""); /* text has no ambiguity */
    assert_int_equal(c->from_json(S("42"), NULL, 0), -1);
    assert_int_equal(c->from_json(S("{\"a\":1}"), NULL, 0), -1);
}

static void test_binary_format(void **state) {
    (void)state;
    const aimdb_codec *c = &aimdb_codec_mqtt_binary;
    /* RFC 4648 section 10 vectors */
    round_trip(c, "", 0, "{\"base64\":\"\"}");
    round_trip(c, S("f"), "{\"base64\":\"Zg==\"}");
    round_trip(c, S("fo"), "{\"base64\":\"Zm8=\"}");
    round_trip(c, S("foo"), "{\"base64\":\"Zm9v\"}");
    round_trip(c, S("foob"), "{\"base64\":\"Zm9vYg==\"}");
    round_trip(c, S("fooba"), "{\"base64\":\"Zm9vYmE=\"}");
    round_trip(c, S("foobar"), "{\"base64\":\"Zm9vYmFy\"}");
    round_trip(c, S("{\"a\":1}"), "{\"base64\":\"eyJhIjoxfQ==\"}");

    long n;
    char *b = from_json(c, S(" { \"base64\" : \"\\/w==\" } "), &n); /* escapes, spaces */
    assert_non_null(b);
    assert_int_equal(n, 1);
    assert_int_equal((unsigned char)b[0], 0xff);
    free(b);
    static const char *const bad[] = {
        "\"Zg==\"",                          /* not the object */
        "{\"base64\":\"Zg\"}",               /* missing padding */
        "{\"base64\":\"Zh==\"}",             /* non-zero pad bits */
        "{\"base64\":\"Zm9=\"}",             /* non-zero pad bits */
        "{\"base64\":\"Z===\"}",
        "{\"base64\":\"Zg==Zg==\"}",         /* padding in the middle */
        "{\"base64\":\"Zm 9v\"}",
        "{\"base64\":\"Zg==\",\"x\":1}",     /* another member */
        "{\"base6\":\"Zg==\"}",
        "{\"base64\":1}",
        "{\"base64\":\"Zg==\"",              /* not JSON */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (c->from_json(bad[i], strlen(bad[i]), NULL, 0) != -1) fail_msg("accepted %s", bad[i]);
}

static void test_short_buffers(void **state) {
    (void)state;
    const aimdb_codec *c = &aimdb_codec_mqtt_auto;
    char out[6];
    memset(out, 'X', sizeof(out));
    assert_int_equal(c->to_json(S("hello world"), out, sizeof(out)), 13);
    assert_string_equal(out, "\"hell"); /* cut like snprintf */
    memset(out, 'X', sizeof(out));
    assert_int_equal(c->from_json(S("\"hello world\""), out, 4), 11);
    assert_memory_equal(out, "hellXX", 6); /* exactly cap bytes written */
    assert_int_equal(aimdb_codec_mqtt_binary.to_json(S("foobar"), out, 1), 21);
    assert_string_equal(out, "");
}

/* A 1 MiB payload of each kind through the codec it would meet. */
static void test_large_payloads(void **state) {
    (void)state;
    enum { MIB = 1 << 20 };
    char *p = malloc(MIB);
    assert_non_null(p);
    long n;

    uint32_t x = 12345;
    for (size_t i = 0; i < MIB; i++) p[i] = (char)((x = x * 1103515245u + 12345u) >> 24);
    char *json = to_json(&aimdb_codec_mqtt_auto, p, MIB, &n);
    assert_non_null(json);
    assert_int_equal(n, 11 + (MIB + 2) / 3 * 4 + 2); /* random bytes: base64 */
    char *back = from_json(&aimdb_codec_mqtt_auto, json, (size_t)n, &n);
    assert_int_equal(n, MIB);
    assert_memory_equal(back, p, MIB);
    free(json);
    free(back);

    for (size_t i = 0; i < MIB; i++) p[i] = "line \"q\"\n\t\\"[i % 12]; /* NUL included */
    json = to_json(&aimdb_codec_mqtt_text, p, MIB, &n);
    back = from_json(&aimdb_codec_mqtt_text, json, (size_t)n, &n);
    assert_int_equal(n, MIB);
    assert_memory_equal(back, p, MIB);
    free(json);
    free(back);

    p[0] = '[';
    for (size_t i = 1; i + 1 < MIB; i += 2) memcpy(p + i, "1,", 2);
    p[MIB - 1] = ']';
    p[MIB - 2] = '1';
    json = to_json(&aimdb_codec_mqtt_json, p, MIB, &n);
    assert_int_equal(n, MIB);
    assert_memory_equal(json, p, MIB);
    free(json);
    free(p);
}

static void test_codec_identity(void **state) {
    (void)state;
    static const struct {
        aimdb_payload_format f;
        const char *word;
        const aimdb_codec *codec;
        const char *codec_name;
    } formats[] = {
        {AIMDB_FORMAT_AUTO, "auto", &aimdb_codec_mqtt_auto, "mqtt-auto"},
        {AIMDB_FORMAT_JSON, "json", &aimdb_codec_mqtt_json, "mqtt-json"},
        {AIMDB_FORMAT_TEXT, "text", &aimdb_codec_mqtt_text, "mqtt-text"},
        {AIMDB_FORMAT_BINARY, "binary", &aimdb_codec_mqtt_binary, "mqtt-binary"},
    };
    for (size_t i = 0; i < 4; i++) {
        aimdb_payload_format f;
        assert_int_equal(aimdb_payload_format_parse(formats[i].word, &f), AIMDB_OK);
        assert_int_equal(f, formats[i].f);
        assert_string_equal(aimdb_payload_format_name(f), formats[i].word);
        assert_ptr_equal(aimdb_payload_codec(f), formats[i].codec);
        assert_string_equal(formats[i].codec->name, formats[i].codec_name);
        assert_int_equal(formats[i].codec->size, 0);
    }
    aimdb_payload_format f;
    assert_int_equal(aimdb_payload_format_parse("JSON", &f), AIMDB_EINVAL);
    assert_int_equal(aimdb_payload_format_parse(NULL, &f), AIMDB_EINVAL);
    assert_null(aimdb_payload_codec((aimdb_payload_format)7));
    assert_string_equal(aimdb_payload_format_name((aimdb_payload_format)7), "unknown");

    /* the core tells the formats apart: one name, one format */
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec, *again;
    aimdb_buffer_cfg buf = AIMDB_BUFFER_DEFAULT;
    assert_int_equal(aimdb_record_register(db, "r", &buf, &aimdb_codec_mqtt_auto, &rec), AIMDB_OK);
    assert_int_equal(aimdb_record_register(db, "r", &buf, aimdb_payload_codec(AIMDB_FORMAT_AUTO),
                                           &again),
                     AIMDB_OK);
    assert_ptr_equal(rec, again);
    assert_int_equal(aimdb_record_register(db, "r", &buf, &aimdb_codec_mqtt_text, &again),
                     AIMDB_EEXIST);
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_json_format),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_binary_format),
        cmocka_unit_test(test_short_buffers),
        cmocka_unit_test(test_large_payloads),
        cmocka_unit_test(test_codec_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
