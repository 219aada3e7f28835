/*
 * test_topic.c -- MQTT filter validation, topic matching (with what each
 * wildcard captured) and record-name template expansion.
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
#include "aimdb/mqtt_route.h"

static void test_filter_check(void **state) {
    (void)state;
    static const char *const valid[] = {"a",   "a/b", "+",     "#",     "a/+",  "+/a", "a/#",
                                        "+/#", "/",   "//",    "a//b",  "/+/",  "$SYS/#",
                                        "+/+", "é/ü", "a b/c", "sport/tennis/+/#"};
    char err[128];
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        if (aimdb_topic_filter_check(valid[i], err, sizeof(err)) != AIMDB_OK)
            fail_msg("'%s' rejected: %s", valid[i], err);
    static const struct {
        const char *filter;
        const char *reason;
    } invalid[] = {
        {"", "empty topic filter"},
        {"a+", "'+' must be a whole level"},
        {"+a/b", "'+' must be a whole level"},
        {"a/++", "'+' must be a whole level"},
        {"a#", "'#' must be the last level, on its own"},
        {"#/a", "'#' must be the last level, on its own"},
        {"a/#/", "'#' must be the last level, on its own"},
        {"a/##", "'#' must be the last level, on its own"},
        {"a/\xc0\xaf", "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        assert_int_equal(aimdb_topic_filter_check(invalid[i].filter, err, sizeof(err)),
                         AIMDB_EINVAL);
        assert_string_equal(err, invalid[i].reason);
    }
    assert_int_equal(aimdb_topic_filter_check(NULL, err, sizeof(err)), AIMDB_EINVAL);
    char *huge = malloc(AIMDB_TOPIC_MAX_LEN + 2);
    memset(huge, 'a', AIMDB_TOPIC_MAX_LEN + 1);
    huge[AIMDB_TOPIC_MAX_LEN + 1] = '\0';
    assert_int_equal(aimdb_topic_filter_check(huge, err, sizeof(err)), AIMDB_EINVAL);
    assert_string_equal(err, "longer than 65535 bytes");
    huge[AIMDB_TOPIC_MAX_LEN] = '\0';
    assert_int_equal(aimdb_topic_filter_check(huge, err, sizeof(err)), AIMDB_OK);
    free(huge);
}

static void test_name_check(void **state) {
    (void)state;
    char err[128];
    assert_int_equal(aimdb_topic_name_check("a/b", 3, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(aimdb_topic_name_check("$CONTROL/aimdb/v1", 17, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(aimdb_topic_name_check("", 0, err, sizeof(err)), AIMDB_EINVAL);
    assert_string_equal(err, "empty topic");
    assert_int_equal(aimdb_topic_name_check("a/+", 3, err, sizeof(err)), AIMDB_EINVAL);
    assert_string_equal(err, "a topic name cannot contain '+' or '#'");
    assert_int_equal(aimdb_topic_name_check("a\0b", 3, err, sizeof(err)), AIMDB_EINVAL);
    assert_string_equal(err, "contains U+0000");
    assert_int_equal(aimdb_topic_name_check("a\xed\xa0\x80", 4, err, sizeof(err)), AIMDB_EINVAL);
    assert_string_equal(err, "not valid UTF-8");
}

/* The matching table: MQTT 3.1.1 section 4.7 examples plus edge cases. */
static void test_matching(void **state) {
    (void)state;
    static const struct {
        const char *filter, *topic;
        bool match;
    } cases[] = {
        {"sport/tennis/player1/#", "sport/tennis/player1", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
        {"sport/#", "sport", true},
        {"sport/#", "sports", false},
        {"#", "anything/at/all", true},
        {"#", "/", true},
        {"sport/tennis/+", "sport/tennis/player1", true},
        {"sport/tennis/+", "sport/tennis/player1/ranking", false},
        {"sport/tennis/+", "sport/tennis", false},
        {"sport/tennis/+", "sport/tennis/", true},
        {"sport/+", "sport", false},
        {"sport/+", "sport/", true},
        {"+/+", "/finance", true},
        {"/+", "/finance", true},
        {"+", "/finance", false},
        {"+", "finance", true},
        {"+", "", true},
        {"a/b", "a/b", true},
        {"a/b", "a/bc", false},
        {"a/bc", "a/b", false},
        {"a/b", "a/b/", false},
        {"a//b", "a//b", true},
        {"a/+/b", "a//b", true},
        {"a/+/b", "a/x/y/b", false},
        {"+/+/+", "a/b/c", true},
        {"+/+/+", "a/b", false},
        {"a/+/#", "a/x", true},
        {"a/+/#", "a", false},
        {"A/b", "a/b", false}, /* case-sensitive */
        /* MQTT 4.7.2: wildcards at the start never match "$..." topics */
        {"#", "$SYS/broker/load", false},
        {"+/monitor/Clients", "$SYS/monitor/Clients", false},
        {"$SYS/#", "$SYS/monitor/Clients", true},
        {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
        {"a/#", "a/$x", true}, /* only the first level is special */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = aimdb_topic_matches(cases[i].filter, cases[i].topic, strlen(cases[i].topic),
                                       NULL);
        if (got != cases[i].match)
            fail_msg("'%s' vs '%s': got %d, want %d", cases[i].filter, cases[i].topic, got,
                     cases[i].match);
    }
}

static void assert_span(aimdb_topic_span s, const char *want) {
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void test_captures(void **state) {
    (void)state;
    aimdb_topic_match m;
    const char *t = "dev/42/x/state/a/b";
    assert_true(aimdb_topic_matches("dev/+/+/state/#", t, strlen(t), &m));
    assert_int_equal(m.n_plus, 2);
    assert_span(m.plus[0], "42");
    assert_span(m.plus[1], "x");
    assert_true(m.has_rest);
    assert_span(m.rest, "a/b");

    /* '#' matching the parent level captures nothing */
    assert_true(aimdb_topic_matches("dev/#", "dev", 3, &m));
    assert_true(m.has_rest);
    assert_span(m.rest, "");
    assert_true(aimdb_topic_matches("dev/#", "dev/", 4, &m));
    assert_span(m.rest, "");

    /* empty levels are captured as empty */
    assert_true(aimdb_topic_matches("+/+/+", "//", 2, &m));
    assert_int_equal(m.n_plus, 3);
    for (int i = 0; i < 3; i++) assert_span(m.plus[i], "");
    assert_false(m.has_rest);

    /* the topic need not be NUL-terminated */
    assert_true(aimdb_topic_matches("a/+", "a/bXYZ", 3, &m));
    assert_span(m.plus[0], "b");
    assert_false(aimdb_topic_matches("a/b", "a/bXYZ", 4, &m));
}

static void test_many_plus(void **state) {
    (void)state;
    /* 40 '+' levels: all counted, the first AIMDB_TOPIC_MAX_PLUS captured */
    char filter[128] = "", topic[256] = "";
    for (int i = 0; i < 40; i++) {
        strcat(filter, i ? "/+" : "+");
        char level[8];
        snprintf(level, sizeof(level), i ? "/%d" : "%d", i);
        strcat(topic, level);
    }
    aimdb_topic_match m;
    assert_true(aimdb_topic_matches(filter, topic, strlen(topic), &m));
    assert_int_equal(m.n_plus, 40);
    assert_span(m.plus[AIMDB_TOPIC_MAX_PLUS - 1], "31");
}

static void test_template_expand(void **state) {
    (void)state;
    static const struct {
        const char *tmpl, *filter, *topic, *name;
    } cases[] = {
        {"accuracy::{1}", "weather/+/accuracy", "weather/vienna/accuracy", "accuracy::vienna"},
        {"{2}.{1}", "+/+", "a/b", "b.a"},
        {"x::{1}::{1}", "+/y", "q/y", "x::q::q"},
        {"all::{#}", "raw/#", "raw/a/b/c", "all::a/b/c"},
        {"all::{#}", "raw/#", "raw", "all::"},
        {"{1}:{#}", "+/#", "dev/a/b", "dev:a/b"},
        {"fixed", "a/+", "a/z", "fixed"},
        {"e::{1}", "a/+/b", "a//b", "e::"},
        {"ü::{1}", "+", "ß", "ü::ß"},
    };
    char err[128], out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(aimdb_name_template_check(cases[i].tmpl, cases[i].filter, err, sizeof(err)),
                         AIMDB_OK);
        aimdb_topic_match m;
        assert_true(aimdb_topic_matches(cases[i].filter, cases[i].topic, strlen(cases[i].topic), &m));
        size_t n = aimdb_name_template_expand(cases[i].tmpl, &m, out, sizeof(out));
        assert_int_equal(n, strlen(cases[i].name));
        assert_string_equal(out, cases[i].name);
    }
    assert_true(aimdb_name_template_is_fixed("gateway::state"));
    assert_false(aimdb_name_template_is_fixed("t::{1}"));
}

static void test_template_expand_truncates(void **state) {
    (void)state;
    aimdb_topic_match m;
    assert_true(aimdb_topic_matches("a/+", "a/longsegment", 13, &m));
    char out[8];
    memset(out, 'X', sizeof(out));
    assert_int_equal(aimdb_name_template_expand("n::{1}", &m, out, sizeof(out)), 14);
    assert_string_equal(out, "n::long"); /* snprintf semantics */
    assert_int_equal(aimdb_name_template_expand("n::{1}", &m, NULL, 0), 14);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_check),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_many_plus),
        cmocka_unit_test(test_template_expand),
        cmocka_unit_test(test_template_expand_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
