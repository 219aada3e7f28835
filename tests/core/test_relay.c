/*
 * test_relay.c -- the hand-off of relay.h: every value pushed is produced,
 * in order, with its own timestamp and bytes (inline and heap-sized), also
 * past a full ring; stop produces what is still queued; refusals counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/relay.h"

#define MANY 100000 /* more than the ring holds: the pusher must wait */

static aimdb_db *started_db(void) {
    aimdb_db *db = aimdb_db_new(NULL);
    assert_non_null(db);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    return db;
}

static void test_order_timestamps_and_stop_drain(void **state) {
    (void)state;
    aimdb_db *db = started_db();
    aimdb_record *rec;
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, 131072};
    assert_int_equal(aimdb_record_register(db, "n", &ring, &aimdb_codec_int64, &rec), AIMDB_OK);
    aimdb_reader *reader;
    assert_int_equal(aimdb_reader_open(rec, &reader), AIMDB_OK);
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(NULL, &relay), AIMDB_OK);
    for (int64_t i = 0; i < MANY; i++)
        assert_int_equal(aimdb_relay_push(relay, rec, &i, sizeof(i), 1000 + i), AIMDB_OK);
    assert_int_equal(aimdb_relay_stop(relay), 0); /* everything produced before it returns */
    for (int64_t i = 0; i < MANY; i++) {
        aimdb_value v;
        uint64_t missed = 0;
        assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_OK);
        int64_t got;
        memcpy(&got, v.data, sizeof(got));
        assert_int_equal(got, i);
        assert_int_equal(v.ts_ms, 1000 + i);
    }
    aimdb_value v;
    uint64_t missed = 0;
    assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_EAGAIN);
    aimdb_reader_close(reader);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

static void test_large_values_keep_their_bytes(void **state) {
    (void)state;
    aimdb_db *db = started_db();
    aimdb_record *rec;
    aimdb_buffer_cfg ring = AIMDB_BUFFER_DEFAULT;
    assert_int_equal(aimdb_record_register(db, "blob", &ring, &aimdb_codec_json, &rec), AIMDB_OK);
    aimdb_reader *reader;
    assert_int_equal(aimdb_reader_open(rec, &reader), AIMDB_OK);
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(NULL, &relay), AIMDB_OK);
    static const size_t sizes[] = {0, 1, 104, 105, 5000, 70000};
    char *text = malloc(70001);
    assert_non_null(text);
    for (size_t k = 0; k < 6; k++) {
        memset(text, 'a' + (int)k, sizes[k]);
        assert_int_equal(aimdb_relay_push(relay, rec, text, sizes[k], 1), AIMDB_OK);
    }
    assert_int_equal(aimdb_relay_stop(relay), 0);
    for (size_t k = 0; k < 6; k++) {
        aimdb_value v;
        uint64_t missed = 0;
        assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_OK);
        assert_int_equal(v.len, sizes[k]);
        const char *bytes = v.data;
        for (size_t i = 0; i < v.len; i++) assert_int_equal(bytes[i], 'a' + (int)k);
    }
    free(text);
    aimdb_reader_close(reader);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

static void test_refusals_are_counted(void **state) {
    (void)state;
    aimdb_db *db = started_db();
    aimdb_record *rec;
    aimdb_buffer_cfg ring = AIMDB_BUFFER_DEFAULT;
    assert_int_equal(aimdb_record_register(db, "n", &ring, &aimdb_codec_int64, &rec), AIMDB_OK);
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(NULL, &relay), AIMDB_OK);
    int32_t wrong_size = 7; /* an int64 record refuses 4 bytes */
    assert_int_equal(aimdb_relay_push(relay, rec, &wrong_size, sizeof(wrong_size), 1), AIMDB_OK);
    assert_int_equal(aimdb_relay_push(relay, rec, &wrong_size, sizeof(wrong_size), 2), AIMDB_OK);
    assert_int_equal(aimdb_relay_stop(relay), 2);
    assert_int_equal(aimdb_relay_stop(NULL), 0);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_timestamps_and_stop_drain),
        cmocka_unit_test(test_large_values_keep_their_bytes),
        cmocka_unit_test(test_refusals_are_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
