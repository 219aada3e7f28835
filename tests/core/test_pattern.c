/*
 * test_pattern.c -- record-name patterns (aimdb.h, docs/protocol.md): '*' is
 * any run, every other byte literal, case-sensitive.  record.list,
 * record.query and the SQLite backend all match with this one function,
 * so its table is the whole rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/aimdb.h"

static void test_pattern_match(void **state) {
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
        /* the names record.list is tested with */
        {"temp::*", "Temp::linz", false},      {"*vienna", "hum::vienna", true},
        {"t*p*:*a*", "temp::graz", true},      {"t*p*:*a*", "temp%x", false},
        {"t**", "t", true},                    {"te?p::graz", "temp::graz", false},
        {"temp_x", "temp%x", false},           {"a*b", "a*b", true},
        {"temp::vienna", "temp::vienna", true}, {"temp::vienna", "temp::viennaX", false},
        {"\xc3\xa9*", "\xc3\xa9t\xc3\xa9", true}, /* bytes, so UTF-8 needs nothing special */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (aimdb_pattern_match(cases[i].pattern, cases[i].name) != cases[i].match)
            fail_msg("pattern \"%s\" vs \"%s\": expected %s", cases[i].pattern, cases[i].name,
                     cases[i].match ? "match" : "no match");
    }
    assert_true(aimdb_pattern_match(NULL, "x")); /* NULL = "*" */
    assert_true(aimdb_pattern_match(NULL, ""));
}

static void test_pattern_prefix_len(void **state) {
    (void)state;
    assert_int_equal(aimdb_pattern_prefix_len("temp::*"), 6);
    assert_int_equal(aimdb_pattern_prefix_len("*x"), 0);
    assert_int_equal(aimdb_pattern_prefix_len("a%_*b*"), 3); /* only '*' ends the prefix */
    assert_int_equal(aimdb_pattern_prefix_len("exact"), 5);
    assert_int_equal(aimdb_pattern_prefix_len(""), 0);
    assert_int_equal(aimdb_pattern_prefix_len(NULL), 0);
}

/* Worst case stays polynomial: many stars against a long near-miss. */
static void test_pattern_worst_case(void **state) {
    (void)state;
    char name[4001];
    memset(name, 'a', 4000);
    name[4000] = '\0';
    assert_false(aimdb_pattern_match("*a*a*a*a*a*a*a*a*a*a*b", name));
    name[3999] = 'b';
    assert_true(aimdb_pattern_match("*a*a*a*a*a*a*a*a*a*a*b", name));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_pattern_prefix_len),
        cmocka_unit_test(test_pattern_worst_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
