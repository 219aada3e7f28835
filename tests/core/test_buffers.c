/*
 * test_buffers.c -- the three buffer kinds, exactly as DESIGN.md states them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/aimdb.h"

static aimdb_record *make_record(aimdb_db **db, const char *buffer) {
    aimdb_buffer_cfg cfg;
    assert_int_equal(aimdb_buffer_parse(buffer, &cfg), AIMDB_OK);
    *db = aimdb_db_new(NULL);
    assert_non_null(*db);
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(*db, "r", &cfg, &aimdb_codec_int64, &rec), AIMDB_OK);
    return rec;
}

static void produce_n(aimdb_record *rec, int64_t from, int64_t to) {
    for (int64_t i = from; i <= to; i++) assert_int_equal(aimdb_produce(rec, &i, sizeof(i)), AIMDB_OK);
}

static int64_t next_value(aimdb_reader *r) {
    aimdb_value v;
    uint64_t missed = 0;
    assert_int_equal(aimdb_reader_try_recv(r, &v, &missed), AIMDB_OK);
    assert_int_equal(v.len, sizeof(int64_t));
    int64_t x;
    memcpy(&x, v.data, sizeof(x));
    return x;
}

static void expect_empty(aimdb_reader *r) {
    aimdb_value v;
    assert_int_equal(aimdb_reader_try_recv(r, &v, NULL), AIMDB_EAGAIN);
}

static void test_parse_and_format(void **state) {
    (void)state;
    aimdb_buffer_cfg cfg;
    char text[32];
    assert_int_equal(aimdb_buffer_parse("ring:500", &cfg), AIMDB_OK);
    assert_int_equal(cfg.kind, AIMDB_BUFFER_RING);
    assert_int_equal(cfg.capacity, 500);
    aimdb_buffer_format(&cfg, text, sizeof(text));
    assert_string_equal(text, "ring:500");
    assert_int_equal(aimdb_buffer_parse("latest", &cfg), AIMDB_OK);
    aimdb_buffer_format(&cfg, text, sizeof(text));
    assert_string_equal(text, "latest");
    assert_int_equal(aimdb_buffer_parse("mailbox", &cfg), AIMDB_OK);
    assert_int_equal(cfg.kind, AIMDB_BUFFER_MAILBOX);
    const char *bad[] = {"", "ring", "ring:", "ring:0", "ring:-1", "ring:12x", "ring:1048577",
                         "ring:99999999999999999999", "Latest", "mailbox ", "queue"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(aimdb_buffer_parse(bad[i], &cfg), AIMDB_EINVAL);
}

static void test_ring_new_reader_sees_only_later_values(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "ring:8");
    produce_n(rec, 1, 3);
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    expect_empty(r);
    produce_n(rec, 4, 5);
    assert_int_equal(next_value(r), 4);
    assert_int_equal(next_value(r), 5);
    expect_empty(r);
    aimdb_reader_close(r);
    aimdb_db_free(db);
}

static void test_ring_lag_reports_exact_missed_count(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "ring:4");
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    produce_n(rec, 1, 10); /* holds 7..10; the reader wanted 1 */
    aimdb_value v;
    uint64_t missed = 0;
    assert_int_equal(aimdb_reader_try_recv(r, &v, &missed), AIMDB_LAGGED);
    assert_int_equal(missed, 6);
    for (int64_t want = 7; want <= 10; want++) assert_int_equal(next_value(r), want);
    expect_empty(r);
    /* Lag in the middle of reading: read 11, fall behind again. */
    produce_n(rec, 11, 11);
    assert_int_equal(next_value(r), 11);
    produce_n(rec, 12, 20);
    assert_int_equal(aimdb_reader_try_recv(r, &v, &missed), AIMDB_LAGGED);
    assert_int_equal(missed, 5); /* 12..16 lost, 17..20 held */
    assert_int_equal(next_value(r), 17);
    aimdb_reader_close(r);
    aimdb_db_free(db);
}

static void test_ring_capacity_one(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "ring:1");
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    produce_n(rec, 1, 1);
    assert_int_equal(next_value(r), 1);
    produce_n(rec, 2, 3);
    aimdb_value v;
    uint64_t missed;
    assert_int_equal(aimdb_reader_try_recv(r, &v, &missed), AIMDB_LAGGED);
    assert_int_equal(missed, 1);
    assert_int_equal(next_value(r), 3);
    aimdb_db_free(db); /* frees the still-open reader too */
}

static void test_latest_collapses_and_late_reader_gets_current_once(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "latest");
    aimdb_reader *early;
    assert_int_equal(aimdb_reader_open(rec, &early), AIMDB_OK);
    expect_empty(early);
    produce_n(rec, 1, 5);
    assert_int_equal(next_value(early), 5); /* 1..4 collapsed, no lag */
    expect_empty(early);

    aimdb_reader *late;
    assert_int_equal(aimdb_reader_open(rec, &late), AIMDB_OK);
    assert_int_equal(next_value(late), 5);
    expect_empty(late);
    produce_n(rec, 6, 6);
    assert_int_equal(next_value(late), 6);
    assert_int_equal(next_value(early), 6);
    aimdb_db_free(db);
}

static void test_mailbox_each_value_to_exactly_one_reader(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "mailbox");
    aimdb_reader *a, *b;
    assert_int_equal(aimdb_reader_open(rec, &a), AIMDB_OK);
    assert_int_equal(aimdb_reader_open(rec, &b), AIMDB_OK);
    produce_n(rec, 1, 1);
    assert_int_equal(next_value(a), 1);
    expect_empty(b);
    expect_empty(a);
    produce_n(rec, 2, 3); /* 2 overwritten before anyone took it */
    assert_int_equal(next_value(b), 3);
    expect_empty(a);
    aimdb_record_stats st;
    aimdb_record_stats_get(rec, &st);
    assert_int_equal(st.produced, 3);
    assert_int_equal(st.overwritten, 1);
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_format),
        cmocka_unit_test(test_ring_new_reader_sees_only_later_values),
        cmocka_unit_test(test_ring_lag_reports_exact_missed_count),
        cmocka_unit_test(test_ring_capacity_one),
        cmocka_unit_test(test_latest_collapses_and_late_reader_gets_current_once),
        cmocka_unit_test(test_mailbox_each_value_to_exactly_one_reader),
    };
    return cmocka_run_group_tests_name("buffers", tests, NULL, NULL);
}
