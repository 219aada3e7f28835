/*
 * test_persist_text.c -- the text rules of history: record-name patterns,
 * which stored values count as JSON, which numbers are timestamps, and the
 * log rate limiter.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/history.h"
#include "aimdb/persist.h"
#include "persist_internal.h"

static void test_pattern_matching(void **state) {
    (void)state;
    static const struct {
        const char *pattern, *name;
        bool match;
    } cases[] = {
        {"*", "", true},           {"*", "anything", true},    {"", "", true},
        {"", "a", false},          {"a", "a", true},           {"a", "A", false},
        {"a*", "a", true},         {"a*", "abc", true},        {"a*", "ba", false},
        {"*c", "abc", true},       {"*c", "abd", false},       {"a*c", "ac", true},
        {"a*c", "abbbc", true},    {"a*c", "abcd", false},     {"a**c", "abc", true},
        {"*b*b*", "abxb", true},   {"*b*b*", "abx", false},    {"a*b*c", "aXbYbZc", true},
        {"a%c", "abc", false},     {"a%c", "a%c", true},       {"a_c", "abc", false},
        {"a_c", "a_c", true},      {"a?c", "abc", false},      {"a?c", "a?c", true},
        {"a[b]c", "abc", false},   {"a[b]c", "a[b]c", true},   {"a\\*", "a\\xyz", true},
        {"a\\*", "a*", false},     {"*::vienna", "temp::vienna", true},
        {"temp::*", "temp::", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (aimdb_pattern_match(cases[i].pattern, cases[i].name) != cases[i].match)
            fail_msg("pattern \"%s\" vs \"%s\": expected %s", cases[i].pattern, cases[i].name,
                     cases[i].match ? "match" : "no match");
    }
    assert_true(aimdb_pattern_match(NULL, "x")); /* NULL = "*" */
    assert_int_equal(aimdb_pattern_prefix_len("temp::*"), 6);
    assert_int_equal(aimdb_pattern_prefix_len("*x"), 0);
    assert_int_equal(aimdb_pattern_prefix_len("exact"), 5);
    assert_int_equal(aimdb_pattern_prefix_len(NULL), 0);

    /* Worst case stays polynomial: many stars against a long near-miss. */
    char name[4001];
    memset(name, 'a', 4000);
    name[4000] = '\0';
    assert_false(aimdb_pattern_match("*a*a*a*a*a*a*a*a*a*a*b", name));
}

static bool valid(const char *text) { return json_text_valid(text, strlen(text)); }

static void test_stored_values_must_be_strict_json(void **state) {
    (void)state;
    const char *good[] = {"0", "-0", "1.5", "-12.5e+3", "1E9", "\"\"", "\"\\u00e9\\n\"",
                          "\"caf\xc3\xa9\"", "\"\xf0\x9f\x98\x80\"", "true", "false", "null",
                          "[]", "{}", " [1, {\"a\": [null]}] ", "{\"a\":1,\"b\":\"x\"}"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!valid(good[i])) fail_msg("should be valid JSON: %s", good[i]);
    const char *bad[] = {"",         " ",       "01",        "1.",          "+1",
                         ".5",       "1e",      "-",         "NaN",         "Infinity",
                         "tru",      "[1,]",    "{\"a\"}",   "{\"a\":1,}",  "{a:1}",
                         "\"abc",    "\"\\x\"", "\"\\u12\"", "\"\x01\"",    "[1] 2",
                         "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
                         "'x'"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid(bad[i])) fail_msg("should be invalid JSON: %s", bad[i]);
    /* Embedded NUL within the given length is not JSON. */
    assert_false(json_text_valid("1\0", 2));

    /* Nesting is bounded: deep enough input is refused, not a stack crash. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    assert_false(valid(deep));
    assert_true(json_text_valid(deep + depth - 100, 200)); /* 100 levels is fine */
    free(deep);

    assert_true(utf8_valid("plain", 5));
    assert_false(utf8_valid("\xff", 1));
}

static void test_json_numbers_as_timestamps(void **state) {
    (void)state;
    int64_t t;
    assert_true(aimdb_history_ts_from_double(0, &t) && t == 0);
    assert_true(aimdb_history_ts_from_double(-1, &t) && t == -1);
    assert_true(aimdb_history_ts_from_double(1700000000123.0, &t) && t == 1700000000123);
    assert_true(aimdb_history_ts_from_double(-9223372036854775808.0, &t) && t == INT64_MIN);
    assert_true(aimdb_history_ts_from_double(9223372036854774784.0, &t)); /* largest below 2^63 */
    assert_false(aimdb_history_ts_from_double(9223372036854775808.0, &t)); /* 2^63 */
    assert_false(aimdb_history_ts_from_double(1e19, &t));
    assert_false(aimdb_history_ts_from_double(-1e19, &t));
    assert_false(aimdb_history_ts_from_double(1e300, &t));
    assert_false(aimdb_history_ts_from_double(1.5, &t));
    assert_false(aimdb_history_ts_from_double(NAN, &t));
    assert_false(aimdb_history_ts_from_double(INFINITY, &t));
    assert_false(aimdb_history_ts_from_double(-INFINITY, &t));
}

static void test_log_limit(void **state) {
    (void)state;
    aimdb_log_limit l = {0};
    uint64_t held = 99;
    assert_true(aimdb_log_limit_pass(&l, 1000, 100, &held));
    assert_int_equal(held, 0);
    assert_false(aimdb_log_limit_pass(&l, 1050, 100, &held));
    assert_false(aimdb_log_limit_pass(&l, 1099, 100, &held));
    assert_true(aimdb_log_limit_pass(&l, 1100, 100, &held));
    assert_int_equal(held, 2);
    assert_true(aimdb_log_limit_pass(&l, 5000, 100, NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_matching),
        cmocka_unit_test(test_stored_values_must_be_strict_json),
        cmocka_unit_test(test_json_numbers_as_timestamps),
        cmocka_unit_test(test_log_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
