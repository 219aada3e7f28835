/*
 * test_duration.c -- the one parser of written durations (aimdb/duration.h),
 * as aimdb.conf, the request protocol and the tools call it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aimdb/duration.h"

static int64_t parsed(const char *text, bool allow_ms, int64_t bare, int64_t max) {
    int64_t ms = -1;
    return aimdb_duration_parse(text, allow_ms, bare, max, &ms) ? ms : -1;
}

static void test_units(void **state) {
    (void)state;
    const int64_t max = AIMDB_DURATION_MAX_MS;
    assert_int_equal(parsed("250ms", true, 0, max), 250);
    assert_int_equal(parsed("30s", false, 0, max), 30000);
    assert_int_equal(parsed("15m", false, 0, max), 900000);
    assert_int_equal(parsed("1h", false, 0, max), 3600000);
    assert_int_equal(parsed("7d", false, 0, max), 604800000);
    assert_int_equal(parsed("0s", false, 0, max), 0);
    assert_int_equal(parsed("250ms", false, 0, max), -1); /* ms not offered */
    assert_int_equal(parsed("5", false, 0, max), -1);     /* a unit is required */
    assert_int_equal(parsed("5", true, 1000, max), 5000); /* bare seconds (the tools) */
}

static void test_refusals(void **state) {
    (void)state;
    const int64_t max = AIMDB_DURATION_MAX_MS;
    const char *bad[] = {"", "s", "-1s", "+1s", " 1s", "1s ", "1.5s", "1 s", "1S", "1w", "1sec",
                         "1hh"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parsed(bad[i], true, 0, max), -1);
    int64_t untouched = 42;
    assert_false(aimdb_duration_parse(NULL, true, 0, max, &untouched));
    assert_int_equal(untouched, 42);
}

static void test_bounds(void **state) {
    (void)state;
    assert_int_equal(parsed("36525d", false, 0, AIMDB_DURATION_MAX_MS), AIMDB_DURATION_MAX_MS);
    assert_int_equal(parsed("36526d", false, 0, AIMDB_DURATION_MAX_MS), -1);
    assert_int_equal(parsed("1h", true, 0, 3600000), 3600000);
    assert_int_equal(parsed("3601s", true, 0, 3600000), -1);
    /* digits that overflow 64 bits are refused, not wrapped */
    assert_int_equal(parsed("99999999999999999999999ms", true, 0, INT64_MAX), -1);
    assert_int_equal(parsed("9223372036854775807ms", true, 0, INT64_MAX), INT64_MAX);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
