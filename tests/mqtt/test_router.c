/*
 * test_router.c -- the router: first rule in file order wins whatever mix of
 * exact and wildcard rules matches, "$" topics, result codes, and a
 * randomised cross-check against the obvious linear scan.
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

static aimdb_router *build(const char *const *rules, size_t n) {
    aimdb_router *r = aimdb_router_new();
    assert_non_null(r);
    char err[128];
    for (size_t i = 0; i < n; i += 2)
        if (aimdb_router_add(r, rules[i], rules[i + 1], err, sizeof(err)) != AIMDB_OK)
            fail_msg("rule %s %s: %s", rules[i], rules[i + 1], err);
    return r;
}

/* Route and expect rule `want` (-1: no rule) with record name `name`. */
static void expect_route(const aimdb_router *r, const char *topic, int want, const char *name) {
    char buf[128];
    aimdb_route route;
    int rc = aimdb_router_route(r, topic, strlen(topic), buf, sizeof(buf), &route);
    if (want < 0) {
        if (rc != AIMDB_ENOTFOUND) fail_msg("'%s' routed to rule %zu", topic, route.rule);
        return;
    }
    if (rc != AIMDB_OK) fail_msg("'%s': %s", topic, aimdb_strerror(rc));
    if (route.rule != (size_t)want) fail_msg("'%s' went to rule %zu, not %d", topic, route.rule, want);
    assert_string_equal(buf, name);
    assert_int_equal(route.name_len, strlen(name));
}

/* Append wildcard rules no test topic matches, enough to switch the router
 * from trying every wildcard rule to its first-level index. */
static void pad_with_wildcards(aimdb_router *r) {
    char filter[32], err[64];
    for (int i = 0; i < 12; i++) {
        snprintf(filter, sizeof(filter), "pad%d/+", i);
        assert_int_equal(aimdb_router_add(r, filter, "pad", err, sizeof(err)), AIMDB_OK);
    }
}

static void first_rule_wins(bool padded) {
    static const char *const rules[] = {
        "a/+/c", "wild1::{1}",  /* 0 */
        "a/b/c", "exact1",      /* 1: shadowed by 0 for a/b/c */
        "x/y",   "exact2",      /* 2: beats 3 */
        "x/#",   "wild2::{#}",  /* 3 */
        "+/y",   "wild3::{1}",  /* 4: after 2 and 3 */
        "q/r",   "exact3",      /* 5 */
        "q/r",   "exact4",      /* 6: duplicate of 5, never used */
        "#",     "rest::{#}",   /* 7: catch-all */
        "m/n",   "exact5",      /* 8: after the catch-all, never used */
    };
    aimdb_router *r = build(rules, sizeof(rules) / sizeof(rules[0]));
    if (padded) pad_with_wildcards(r);
    assert_int_equal(aimdb_router_count(r), padded ? 21 : 9);
    expect_route(r, "a/b/c", 0, "wild1::b");  /* wildcard before the exact rule wins */
    expect_route(r, "a/z/c", 0, "wild1::z");
    expect_route(r, "x/y", 2, "exact2");      /* exact before the wildcard wins */
    expect_route(r, "x/y/z", 3, "wild2::y/z");
    expect_route(r, "x", 3, "wild2::");
    expect_route(r, "k/y", 4, "wild3::k");
    expect_route(r, "q/r", 5, "exact3");      /* the first of two equal filters */
    expect_route(r, "m/n", 7, "rest::m/n");   /* the catch-all comes first */
    expect_route(r, "other", 7, "rest::other");
    assert_string_equal(aimdb_router_filter(r, 3), "x/#");
    assert_string_equal(aimdb_router_template(r, 3), "wild2::{#}");
    assert_null(aimdb_router_filter(r, 21));
    assert_null(aimdb_router_template(r, 21));
    aimdb_router_free(r);
}

static void test_first_rule_wins(void **state) {
    (void)state;
    first_rule_wins(false);
    first_rule_wins(true);
}

static void dollar_topics(bool padded) {
    static const char *const rules[] = {
        "#",       "all::{#}",
        "+/state", "state::{1}",
        "$SYS/broker/uptime", "uptime",
        "$SYS/+/load", "load::{1}",
    };
    aimdb_router *r = build(rules, sizeof(rules) / sizeof(rules[0]));
    if (padded) pad_with_wildcards(r);
    expect_route(r, "dev/state", 0, "all::dev/state");
    expect_route(r, "$SYS/broker/uptime", 2, "uptime"); /* '#' does not take it */
    expect_route(r, "$SYS/broker/load", 3, "load::broker");
    expect_route(r, "$dev/state", -1, NULL);             /* '+/state' does not either */
    expect_route(r, "$SYS/other", -1, NULL);
    aimdb_router_free(r);
}

static void test_dollar_topics(void **state) {
    (void)state;
    dollar_topics(false);
    dollar_topics(true);
}

static void test_no_rules_and_no_match(void **state) {
    (void)state;
    aimdb_router *r = aimdb_router_new();
    expect_route(r, "a", -1, NULL);
    char err[64];
    assert_int_equal(aimdb_router_add(r, "a/b", "ab", err, sizeof(err)), AIMDB_OK);
    expect_route(r, "a", -1, NULL);
    expect_route(r, "a/b/c", -1, NULL);
    expect_route(r, "a/b", 0, "ab");
    aimdb_router_free(r);
}

static void test_add_rejects_bad_rules(void **state) {
    (void)state;
    aimdb_router *r = aimdb_router_new();
    char err[128];
    assert_int_equal(aimdb_router_add(r, "a/+x", "n", err, sizeof(err)), AIMDB_EINVAL);
    assert_string_equal(err, "'+' must be a whole level");
    assert_int_equal(aimdb_router_add(r, "a/+", "n::{2}", err, sizeof(err)), AIMDB_EINVAL);
    assert_string_equal(err, "{2} refers to a '+' level the filter does not have (it has 1)");
    assert_int_equal(aimdb_router_count(r), 0);
    aimdb_router_free(r);
}

static void test_result_codes(void **state) {
    (void)state;
    static const char *const rules[] = {"a/+/b", "{1}", "long/+", "name::{1}", "fixed/+", "const"};
    aimdb_router *r = build(rules, sizeof(rules) / sizeof(rules[0]));
    aimdb_route route;
    char small[8];

    /* an empty name is reported, with the rule */
    assert_int_equal(aimdb_router_route(r, "a//b", 4, small, sizeof(small), &route), AIMDB_EINVAL);
    assert_int_equal(route.rule, 0);
    assert_int_equal(route.name_len, 0);

    /* a name that does not fit: cut, terminated, full length reported */
    assert_int_equal(aimdb_router_route(r, "long/segment", 12, small, sizeof(small), &route),
                     AIMDB_ETOOBIG);
    assert_int_equal(route.rule, 1);
    assert_int_equal(route.name_len, 13);
    assert_string_equal(small, "name::s");
    assert_int_equal(aimdb_router_route(r, "fixed/x", 7, small, 5, &route), AIMDB_ETOOBIG);
    assert_string_equal(small, "cons");
    assert_int_equal(aimdb_router_route(r, "fixed/x", 7, small, 6, &route), AIMDB_OK);
    assert_string_equal(small, "const");

    /* rule only */
    assert_int_equal(aimdb_router_route(r, "long/segment", 12, NULL, 0, &route), AIMDB_OK);
    assert_int_equal(route.rule, 1);
    assert_int_equal(route.name_len, 13);

    /* the topic need not be NUL-terminated */
    assert_int_equal(aimdb_router_route(r, "fixed/xJUNK", 7, small, sizeof(small), &route),
                     AIMDB_OK);
    assert_int_equal(route.rule, 2);
    aimdb_router_free(r);
}

/* ------------------------------------------------- randomised reference */

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static unsigned rnd(unsigned n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static const char *const words[] = {"a", "b", "c", "", "$s"};

/* A random filter or topic of 1..4 levels over a tiny alphabet, so that
 * rules overlap a lot. */
static void random_path(char *out, size_t cap, bool filter) {
    unsigned levels = 1 + rnd(4);
    out[0] = '\0';
    for (unsigned i = 0; i < levels; i++) {
        const char *w = words[rnd(5)];
        if (i > 0 && w[0] == '$') w = "d"; /* '$' only matters first */
        if (levels == 1 && !*w) w = "a";   /* neither may be empty */
        if (filter) {
            unsigned k = rnd(10);
            if (k < 3) w = "+";
            else if (k == 3 && i == levels - 1) w = "#";
        }
        if (i > 0) strncat(out, "/", cap - strlen(out) - 1);
        strncat(out, w, cap - strlen(out) - 1);
    }
}

/* The router must agree with "first rule whose filter matches", with few
 * wildcard rules (all tried) and many (first-level index). */
static void test_random_against_linear_scan(void **state) {
    (void)state;
    for (int round = 0; round < 60; round++) {
        enum { MAX_RULES = 40 };
        int rules = 1 + round % MAX_RULES;
        char filters[MAX_RULES][32];
        aimdb_router *r = aimdb_router_new();
        char err[64];
        for (int i = 0; i < rules; i++) {
            random_path(filters[i], sizeof(filters[i]), true);
            assert_int_equal(aimdb_router_add(r, filters[i], "n", err, sizeof(err)), AIMDB_OK);
        }
        for (int t = 0; t < 200; t++) {
            char topic[32];
            random_path(topic, sizeof(topic), false);
            int want = -1;
            for (int i = 0; i < rules && want < 0; i++)
                if (aimdb_topic_matches(filters[i], topic, strlen(topic), NULL)) want = i;
            aimdb_route route;
            int rc = aimdb_router_route(r, topic, strlen(topic), NULL, 0, &route);
            if (want < 0 && rc != AIMDB_ENOTFOUND)
                fail_msg("'%s': router says rule %zu, scan says none", topic, route.rule);
            if (want >= 0 && (rc != AIMDB_OK || route.rule != (size_t)want))
                fail_msg("'%s': router says %d/%zu, scan says %d", topic, rc, route.rule, want);
        }
        aimdb_router_free(r);
    }
}

/* Enough exact and first-level-indexed rules to make both tables grow. */
static void test_many_rules(void **state) {
    (void)state;
    aimdb_router *r = aimdb_router_new();
    char filter[64], name[64], err[64];
    for (int i = 0; i < 3000; i++) {
        if (i % 3 == 0) snprintf(filter, sizeof(filter), "site%d/+/temp", i);
        else snprintf(filter, sizeof(filter), "site%d/dev/temp", i);
        snprintf(name, sizeof(name), i % 3 == 0 ? "w%d::{1}" : "e%d", i);
        assert_int_equal(aimdb_router_add(r, filter, name, err, sizeof(err)), AIMDB_OK);
    }
    for (int i = 0; i < 3000; i++) {
        char topic[64], want[64];
        snprintf(topic, sizeof(topic), "site%d/dev/temp", i);
        snprintf(want, sizeof(want), i % 3 == 0 ? "w%d::dev" : "e%d", i);
        expect_route(r, topic, i, want);
    }
    expect_route(r, "site3000/dev/temp", -1, NULL);
    aimdb_router_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_rule_wins),
        cmocka_unit_test(test_dollar_topics),
        cmocka_unit_test(test_no_rules_and_no_match),
        cmocka_unit_test(test_add_rejects_bad_rules),
        cmocka_unit_test(test_result_codes),
        cmocka_unit_test(test_random_against_linear_scan),
        cmocka_unit_test(test_many_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
