/*
 * test_persist_text.c -- the text rules of history: which numbers are
 * timestamps, and the log rate limiter.  Record-name patterns and which
 * stored values count as JSON are the core's rules, pinned in tests/core.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aimdb/history.h"
#include "aimdb/persist.h"

static void test_json_numbers_as_timestamps(void **state) {
    (void)state;
    int64_t t;
    assert_true(aimdb_history_ts_from_double(0, &t) && t == 0);
    assert_true(aimdb_history_ts_from_double(-1, &t) && t == -1);
    assert_true(aimdb_history_ts_from_double(1700000000123.0, &t) && t == 1700000000123);
    assert_true(aimdb_history_ts_from_double(-9223372036854775808.0, &t) && t == INT64_MIN);
    assert_true(aimdb_history_ts_from_double(9223372036854774784.0, &t)); /* largest below 2^63 */
    /* 2^63: what 9223372036854775807 (INT64_MAX) reads as */
    assert_true(aimdb_history_ts_from_double(9223372036854775808.0, &t) && t == INT64_MAX);
    assert_false(aimdb_history_ts_from_double(9223372036854777856.0, &t)); /* next above */
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
        cmocka_unit_test(test_json_numbers_as_timestamps),
        cmocka_unit_test(test_log_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
