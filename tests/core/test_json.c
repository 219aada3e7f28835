/*
 * test_json.c -- the core's strict UTF-8 and JSON checks (aimdb/json.h),
 * pinned against the inputs cJSON would wrongly accept.  The tables are the
 * union of what the MQTT payload formats, the history layer and the AimX
 * handler each tested when they had validators of their own: one check
 * now serves them all, so every case they cared about is kept here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/json.h"

#define S(lit) lit, sizeof(lit) - 1 /* a literal as (bytes, length) */

/* One input and the verdict a check must give on it. */
typedef struct verdict {
    const char *s;
    size_t len;
    bool valid;
} verdict;

static void expect_verdicts(const char *what, bool (*check)(const void *, size_t),
                            const verdict *cases, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (check(cases[i].s, cases[i].len) != cases[i].valid)
            fail_msg("%s case %zu '%.*s': expected %s", what, i, (int)cases[i].len, cases[i].s,
                     cases[i].valid ? "valid" : "invalid");
}

/* ------------------------------------------------------------- UTF-8 */

static void test_utf8_valid(void **state) {
    (void)state;
    static const verdict cases[] = {
        {S(""), true},
        {S("plain ascii"), true},
        {S("a\0b"), true},                     /* U+0000 is a character */
        {S("\xc2\x80"), true},                 /* U+0080 */
        {S("\xdf\xbf"), true},                 /* U+07FF */
        {S("\xe0\xa0\x80"), true},             /* U+0800 */
        {S("\xed\x9f\xbf"), true},             /* U+D7FF */
        {S("\xee\x80\x80"), true},             /* U+E000 */
        {S("\xef\xbf\xbf"), true},             /* U+FFFF */
        {S("\xf0\x90\x80\x80"), true},         /* U+10000 */
        {S("\xf0\x9f\x98\x80"), true},         /* U+1F600 */
        {S("\xf4\x8f\xbf\xbf"), true},         /* U+10FFFF */
        {S("caf\xc3\xa9"), true},
        {S("\xc0\x80"), false},                /* overlong U+0000 */
        {S("\xc0\xaf"), false},                /* overlong '/' */
        {S("\xc1\xbf"), false},                /* overlong U+007F */
        {S("\xe0\x9f\xbf"), false},            /* overlong U+07FF */
        {S("\xf0\x8f\xbf\xbf"), false},        /* overlong U+FFFF */
        {S("\xed\xa0\x80"), false},            /* U+D800 surrogate */
        {S("\xed\xbf\xbf"), false},            /* U+DFFF surrogate */
        {S("\xf4\x90\x80\x80"), false},        /* U+110000 */
        {S("\xf5\x80\x80\x80"), false},
        {S("\xff"), false},
        {S("\x80"), false},                    /* stray continuation */
        {S("\xc3"), false},                    /* truncated two-byte */
        {S("\xe2\x82"), false},                /* truncated */
        {S("ok\xe2\x82\xac\xe2\x82"), false},  /* truncated after a good one */
        {S("\xe2\x28\xa1"), false},            /* bad continuation */
    };
    expect_verdicts("UTF-8", aimdb_utf8_valid, cases, sizeof(cases) / sizeof(cases[0]));
    assert_true(aimdb_utf8_valid(NULL, 0));
}

/* The one function everything else measures characters with. */
static void test_utf8_sequence_length(void **state) {
    (void)state;
    assert_int_equal(aimdb_utf8_sequence_length("a\xc3\xa9", 3), 1);
    assert_int_equal(aimdb_utf8_sequence_length("\0", 1), 1);
    assert_int_equal(aimdb_utf8_sequence_length("\xc3\xa9x", 3), 2); /* one sequence only */
    assert_int_equal(aimdb_utf8_sequence_length("\xe2\x82\xac", 3), 3);
    assert_int_equal(aimdb_utf8_sequence_length("\xf0\x9f\x98\x80", 4), 4);
    /* avail bounds the read: a sequence cut by it is no sequence */
    assert_int_equal(aimdb_utf8_sequence_length("\xe2\x82\xac", 2), 0);
    assert_int_equal(aimdb_utf8_sequence_length("\xf0\x9f\x98\x80", 3), 0);
    assert_int_equal(aimdb_utf8_sequence_length("a", 0), 0);
    assert_int_equal(aimdb_utf8_sequence_length("\x80", 1), 0);
    assert_int_equal(aimdb_utf8_sequence_length("\xed\xa0\x80", 3), 0);
}

/* -------------------------------------------------------------- JSON */

static void test_json_valid(void **state) {
    (void)state;
    static const verdict cases[] = {
        {S("0"), true}, {S("-0"), true}, {S("21.5"), true}, {S("1.5"), true},
        {S("-1.5e-10"), true}, {S("-12.5e+3"), true}, {S("1E9"), true}, {S("1E+2"), true},
        {S("true"), true}, {S("false"), true}, {S("null"), true}, {S("\"\""), true},
        {S("\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\""), true}, {S("\"\\u00e9\\n\""), true},
        {S("\"\\u00e9\\uD83D\\uDE00\""), true}, {S("\"\xc3\xa9\""), true},
        {S("\"caf\xc3\xa9\""), true}, {S("\"\xf0\x9f\x98\x80\""), true},
        {S("\"a\\u0000b\""), true}, /* valid; the scan reports it (has_nul) */
        {S("{}"), true}, {S("[]"), true}, {S(" \t\r\n{\"a\" : [1, true, null, {}]} \n"), true},
        {S(" [1, {\"a\": [null]}] "), true}, {S("{\"a\":1,\"b\":\"x\"}"), true},
        {S("{\"a\":1,\"a\":2}"), true}, /* duplicate keys are JSON (RFC 8259 says SHOULD) */
        /* cJSON 1.7.15 accepts these four: */
        {S("01"), false}, {S("1."), false}, {S("\"a\tb\""), false}, {S("[1.]"), false},
        {S(""), false}, {S(" "), false}, {S(".5"), false}, {S("+1"), false}, {S("-"), false},
        {S("1e"), false}, {S("1e+"), false}, {S("0x10"), false}, {S("NaN"), false},
        {S("Infinity"), false}, {S("-Infinity"), false}, {S("tru"), false}, {S("nulll"), false},
        {S("True"), false}, {S("[1,]"), false}, {S("[,1]"), false}, {S("{\"a\":1,}"), false},
        {S("{a:1}"), false}, {S("{\"a\"}"), false}, {S("{\"a\":}"), false}, {S("'a'"), false},
        {S("'x'"), false}, {S("\"abc"), false}, {S("\"\\x\""), false}, {S("\"\\u12\""), false},
        {S("\"\\ud800\""), false}, {S("\"\\udc00\""), false}, {S("\"\\ud800\\u0041\""), false},
        {S("\"\\ud800x\""), false}, {S("\"\x01\""), false}, {S("\"\xff\""), false},
        {S("\"\xc3\""), false}, {S("\"\xc0\xaf\""), false}, {S("\"\xed\xa0\x80\""), false},
        {S("\"\xf4\x90\x80\x80\""), false}, {S("1 2"), false}, {S("[1] 2"), false},
        {S("{} x"), false}, {S("[1]]"), false}, {S("1\0"), false}, {S("\"a\0b\""), false},
        {S("[1"), false}, {S("{"), false}, {S("\xc3\xa9"), false}, {S("hello"), false},
        {S("\xef\xbb\xbf{}"), false}, /* a byte order mark is not whitespace */
    };
    expect_verdicts("JSON", aimdb_json_valid, cases, sizeof(cases) / sizeof(cases[0]));
    assert_false(aimdb_json_valid(NULL, 0));
}

/* Where a scan stops and why: the offsets AimX puts into parse_error
 * messages ("invalid JSON at byte 7"), on the payloads it was pinned with. */
static void test_json_scan_errors(void **state) {
    (void)state;
    static const struct {
        const char *what;
        const char *s;
        size_t len;
        aimdb_json_status status;
        size_t at;
    } cases[] = {
        {"only whitespace", S(" \n\t "), AIMDB_JSON_SYNTAX, 4},
        {"unterminated object", S("{"), AIMDB_JSON_SYNTAX, 1},
        {"bare word", S("record.list"), AIMDB_JSON_SYNTAX, 0},
        {"garbage after the value", S("{\"id\":1,\"method\":\"record.list\"} x"),
         AIMDB_JSON_SYNTAX, 32},
        {"trailing comma", S("{\"id\":1,\"method\":\"record.list\",}"), AIMDB_JSON_SYNTAX, 31},
        {"single quotes", S("{'id':1}"), AIMDB_JSON_SYNTAX, 1},
        {"plus sign in a number", S("{\"id\":+1,\"method\":\"record.list\"}"),
         AIMDB_JSON_SYNTAX, 6},
        {"leading zero", S("{\"id\":01,\"method\":\"record.list\"}"), AIMDB_JSON_SYNTAX, 7},
        {"NaN", S("{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":NaN}}"),
         AIMDB_JSON_SYNTAX, 50},
        {"unescaped control character", S("{\"id\":1,\"method\":\"record\x01.list\"}"),
         AIMDB_JSON_SYNTAX, 24},
        {"lone surrogate escape (at its backslash)",
         S("{\"id\":\"\\ud800\",\"method\":\"record.list\"}"), AIMDB_JSON_SYNTAX, 7},
        {"bad escape letter", S("[\"ab\\x\"]"), AIMDB_JSON_SYNTAX, 4},
        {"malformed number (at its first byte)", S("[1, 2.e5]"), AIMDB_JSON_SYNTAX, 4},
        {"NUL byte after the value", S("{\"id\":1,\"method\":\"record.list\"}\0"),
         AIMDB_JSON_SYNTAX, 31},
        {"byte order mark", S("\xef\xbb\xbf{\"id\":1,\"method\":\"record.list\"}"),
         AIMDB_JSON_SYNTAX, 0},
        {"invalid UTF-8 byte",
         S("{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"\xff\"}}"),
         AIMDB_JSON_UTF8, 50},
        {"overlong UTF-8", S("{\"id\":1,\"method\":\"record.\xc0\xafget\"}"), AIMDB_JSON_UTF8,
         25},
        {"UTF-8 encoded surrogate", S("{\"id\":\"\xed\xa0\x80\",\"method\":\"record.list\"}"),
         AIMDB_JSON_UTF8, 7},
        {"truncated UTF-8 sequence", S("{\"id\":\"\xe2\x82\",\"method\":\"record.list\"}"),
         AIMDB_JSON_UTF8, 7},
        {"non-ASCII outside a string is syntax", S("[1,\xc3\xa9]"), AIMDB_JSON_SYNTAX, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        aimdb_json_scan_result r;
        aimdb_json_scan(cases[i].s, cases[i].len, NULL, &r);
        if (r.status != cases[i].status || r.error_at != cases[i].at)
            fail_msg("%s: got \"%s\" at byte %zu, want \"%s\" at byte %zu", cases[i].what,
                     aimdb_json_problem(r.status), r.error_at,
                     aimdb_json_problem(cases[i].status), cases[i].at);
    }
    assert_string_equal(aimdb_json_problem(AIMDB_JSON_OK), "valid JSON");
    assert_string_equal(aimdb_json_problem(AIMDB_JSON_SYNTAX), "not valid JSON");
    assert_string_equal(aimdb_json_problem(AIMDB_JSON_UTF8), "not valid UTF-8");
    assert_string_equal(aimdb_json_problem(AIMDB_JSON_DEEP), "nested too deeply");
}

static void test_json_has_nul(void **state) {
    (void)state;
    aimdb_json_scan_result r;
    aimdb_json_scan(S("{\"id\":7,\"method\":\"record.list\\u0000x\"}"), NULL, &r);
    assert_int_equal(r.status, AIMDB_JSON_OK);
    assert_true(r.has_nul);
    aimdb_json_scan(S("{\"\\u0000\":1}"), NULL, &r); /* in a key too */
    assert_true(r.has_nul);
    aimdb_json_scan(S("[\"\\u0001\", \"0\"]"), NULL, &r);
    assert_int_equal(r.status, AIMDB_JSON_OK);
    assert_false(r.has_nul);
}

static char *nested(size_t depth) {
    char *s = malloc(2 * depth + 1);
    assert_non_null(s);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    return s;
}

/* Nesting is bounded: deep input is refused, never a stack crash. */
static void test_json_depth(void **state) {
    (void)state;
    char *deep = nested(AIMDB_JSON_MAX_DEPTH + 1);
    assert_false(aimdb_json_valid(deep, strlen(deep)));
    assert_true(aimdb_json_valid(deep + 1, strlen(deep) - 2)); /* exactly the limit */
    aimdb_json_scan_result r;
    aimdb_json_scan(deep, strlen(deep), NULL, &r);
    assert_int_equal(r.status, AIMDB_JSON_DEEP);
    assert_int_equal(r.error_at, AIMDB_JSON_MAX_DEPTH); /* the bracket one too deep */
    free(deep);

    size_t depth = 100000;
    deep = nested(depth);
    assert_false(aimdb_json_valid(deep, 2 * depth));
    assert_true(aimdb_json_valid(deep + depth - 100, 200)); /* 100 levels is fine */
    free(deep);

    /* A caller's own limit: AimX requests stop at 16, values go to 1000. */
    const char *request = "{\"id\":1,\"method\":\"record.list\",\"params\":{\"name\":"
                          "[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}}";
    aimdb_json_scan_options sixteen = {.max_depth = 16};
    aimdb_json_scan(request, strlen(request), &sixteen, &r);
    assert_int_equal(r.status, AIMDB_JSON_DEEP);
    assert_int_equal(r.error_at, 62);
    sixteen.max_depth = 17;
    aimdb_json_scan(request, strlen(request), &sixteen, &r);
    assert_int_equal(r.status, AIMDB_JSON_OK);
    deep = nested(1000);
    aimdb_json_scan_options thousand = {.max_depth = 1000};
    aimdb_json_scan(deep, 2000, &thousand, &r);
    assert_int_equal(r.status, AIMDB_JSON_OK);
    free(deep);
}

/* ------------------------------------------------------- root member */

static void expect_root(const char *text, const char *key, unsigned count, const char *value) {
    aimdb_json_scan_options opts = {.root_key = key};
    aimdb_json_scan_result r;
    aimdb_json_scan(text, strlen(text), &opts, &r);
    if (r.status != AIMDB_JSON_OK) fail_msg("%s: %s", text, aimdb_json_problem(r.status));
    if (r.root_key_count != count)
        fail_msg("%s: %u \"%s\" members, want %u", text, r.root_key_count,
                 key ? key : "(no key)", count);
    if (!value) {
        assert_null(r.root_value);
        return;
    }
    if (!r.root_value || r.root_value_len != strlen(value) ||
        memcmp(r.root_value, value, r.root_value_len) != 0)
        fail_msg("%s: value '%.*s', want '%s'", text, (int)r.root_value_len,
                 r.root_value ? r.root_value : "", value);
}

/* The value's raw text, exactly as written: a protocol echoes it without
 * re-printing (no rounding of 12345678901234567890123 through a double). */
static void test_root_key(void **state) {
    (void)state;
    expect_root("{\"id\":7,\"method\":\"m\"}", "id", 1, "7");
    expect_root("{\"method\":\"m\", \"id\" : 12345678901234567890123 }", "id", 1,
                "12345678901234567890123");
    expect_root("{\"id\":1.50}", "id", 1, "1.50");
    expect_root("{\"id\":\"a\\u00e9\\\"b\"}", "id", 1, "\"a\\u00e9\\\"b\"");
    expect_root("{\"id\":{\"n\":[1]}}", "id", 1, "{\"n\":[1]}");
    expect_root("{\"\\u0069d\":5}", "id", 1, "5");            /* compared unescaped */
    expect_root("{\"id\":1,\"id\":2}", "id", 2, "1");         /* counted; the first kept */
    expect_root("{\"params\":{\"id\":3}}", "id", 0, NULL);    /* root members only */
    expect_root("[{\"id\":3}]", "id", 0, NULL);
    expect_root("{\"idx\":1,\"i\":2,\"Id\":3,\"\":4}", "id", 0, NULL);
    expect_root("{\"\xc3\xa9\":1}", "id", 0, NULL);
    expect_root("\"id\"", "id", 0, NULL);
    expect_root("{\"id\":7}", NULL, 0, NULL);                  /* no key asked for */
    expect_root("{\"method\":\"m\"}", "method", 1, "\"m\"");  /* any member name */
}

static void test_escape_decode(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        size_t n;
        uint32_t cp;
    } cases[] = {
        {S("n"), 1, '\n'}, {S("\"x"), 1, '"'}, {S("/"), 1, '/'}, {S("t"), 1, '\t'},
        {S("u00e9"), 5, 0xE9}, {S("u0000"), 5, 0}, {S("uFFFF"), 5, 0xFFFF},
        {S("uD83D\\uDE00rest"), 11, 0x1F600}, {S("udbff\\udfff"), 11, 0x10FFFF},
        {S("x"), 0, 0}, {S("N"), 0, 0}, {S("u12"), 0, 0}, {S("u12g4"), 0, 0},
        {S("ud800"), 0, 0}, {S("udc00"), 0, 0}, {S("ud800\\u0041"), 0, 0},
        {S("ud800\\ud800"), 0, 0}, {S("ud800\\n"), 0, 0}, {S("ud800\\udc0"), 0, 0},
        {S(""), 0, 0}, {S("\0"), 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t cp = 0xDEAD;
        size_t n = aimdb_json_escape_decode(cases[i].s, cases[i].len, &cp);
        if (n != cases[i].n || (n && cp != cases[i].cp))
            fail_msg("case %zu '\\%.*s': read %zu (U+%04X), want %zu (U+%04X)", i,
                     (int)cases[i].len, cases[i].s, n, (unsigned)cp, cases[i].n,
                     (unsigned)cases[i].cp);
    }
    /* avail bounds the read: the same bytes cut short are no escape */
    uint32_t cp;
    assert_int_equal(aimdb_json_escape_decode("u00e9", 4, &cp), 0);
    assert_int_equal(aimdb_json_escape_decode("uD83D\\uDE00", 10, &cp), 0);
}

/* Every escape the writer makes, the sizing call, and a buffer too small:
 * only cap bytes written, the whole length returned. */
static void test_string_write(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t len;
        const char *json;
    } cases[] = {
        {S(""), "\"\""},
        {S("plain été"), "\"plain été\""},
        {S("q\"b\\/"), "\"q\\\"b\\\\/\""},
        {S("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\""},
        {S("\x01\x1f\x7f"), "\"\\u0001\\u001f\x7f\""},
        {S("a\0b"), "\"a\\u0000b\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        size_t want = strlen(cases[i].json);
        assert_int_equal(aimdb_json_string_write(cases[i].text, cases[i].len, NULL, 0), want);
        memset(out, '#', sizeof(out));
        assert_int_equal(aimdb_json_string_write(cases[i].text, cases[i].len, out, sizeof(out)),
                         want);
        assert_memory_equal(out, cases[i].json, want);
        assert_int_equal(out[want], '#'); /* no NUL added */
        assert_true(aimdb_json_valid(out, want));
    }
    char small[5];
    memset(small, '#', sizeof(small));
    assert_int_equal(aimdb_json_string_write(S("ab\ncd"), small, 4), 8);
    assert_memory_equal(small, "\"ab\\#", 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),      cmocka_unit_test(test_utf8_sequence_length),
        cmocka_unit_test(test_json_valid),      cmocka_unit_test(test_json_scan_errors),
        cmocka_unit_test(test_json_has_nul),    cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_root_key),        cmocka_unit_test(test_escape_decode),
        cmocka_unit_test(test_string_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
