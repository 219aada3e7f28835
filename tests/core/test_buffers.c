/*
 * test_buffers.c -- the three buffer kinds, exactly as their semantics are documented,
 * and rings that grow on demand without changing any of it.
 *
 * Built with the core's internals (core_internal.h) to watch a ring's slot
 * count, and with the core's realloc wrapped (see CMakeLists.txt) so a test
 * can make the growth of a ring fail.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/aimdb.h"
#include "core_internal.h"

/* -------------------------------------------------- realloc on demand */

/* Fail the n-th realloc from now (1 = the next one); 0 = never.  Only set
 * while no worker runs, so the workers only ever read it. */
static int realloc_fail_in;
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n) {
    if (realloc_fail_in > 0 && --realloc_fail_in == 0) return NULL;
    return __real_realloc(p, n);
}

/* ------------------------------------------------------------ helpers */

static aimdb_record *make_record_with(aimdb_db **db, const char *buffer,
                                      const aimdb_codec *codec) {
    aimdb_buffer_cfg cfg;
    assert_int_equal(aimdb_buffer_parse(buffer, &cfg), AIMDB_OK);
    *db = aimdb_db_new(NULL);
    assert_non_null(*db);
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(*db, "r", &cfg, codec, &rec), AIMDB_OK);
    return rec;
}

static aimdb_record *make_record(aimdb_db **db, const char *buffer) {
    return make_record_with(db, buffer, &aimdb_codec_int64);
}

static uint32_t slots_of(aimdb_record *rec) {
    pthread_mutex_lock(&rec->lock);
    uint32_t n = rec->buffer.nslots;
    pthread_mutex_unlock(&rec->lock);
    return n;
}

static void copy_latest(const aimdb_value *v, void *ctx) {
    memcpy(ctx, v->data, sizeof(int64_t));
}

static int64_t latest_of(aimdb_record *rec) {
    int64_t x = -1;
    assert_int_equal(aimdb_record_peek_latest(rec, copy_latest, &x), AIMDB_OK);
    return x;
}

static void expect_lag(aimdb_reader *r, uint64_t want) {
    aimdb_value v;
    uint64_t missed = 0;
    assert_int_equal(aimdb_reader_try_recv(r, &v, &missed), AIMDB_LAGGED);
    assert_int_equal(missed, want);
}

static void expect_stats(aimdb_record *rec, uint64_t produced, uint64_t rejected) {
    aimdb_record_stats st;
    aimdb_record_stats_get(rec, &st);
    assert_int_equal(st.produced, produced);
    assert_int_equal(st.rejected, rejected);
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

/* ------------------------------------------------------ growing rings */

/* The slot count a ring of `capacity` has after `values` values. */
static uint32_t expected_slots(uint32_t capacity, uint64_t values) {
    uint32_t n = capacity < AIMDB_RING_INITIAL_SLOTS ? capacity : AIMDB_RING_INITIAL_SLOTS;
    while (n < values && n < capacity) n = n * 2 < capacity ? n * 2 : capacity;
    return n;
}

static void test_ring_starts_small_and_doubles_to_capacity(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "ring:1024");
    assert_int_equal(slots_of(rec), AIMDB_RING_INITIAL_SLOTS);
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    for (int64_t i = 1; i <= 1024 + 300; i++) {
        produce_n(rec, i, i);
        assert_int_equal(slots_of(rec), expected_slots(1024, (uint64_t)i));
        assert_int_equal(latest_of(rec), i);
    }
    assert_int_equal(slots_of(rec), 1024);
    /* Exactly the last 1024 are held, as if the ring had been full size
     * from the start. */
    expect_lag(r, 300);
    for (int64_t want = 301; want <= 1024 + 300; want++) assert_int_equal(next_value(r), want);
    expect_empty(r);
    aimdb_db_free(db);
}

static void test_ring_growth_stops_at_capacity_not_a_power_of_two(void **state) {
    (void)state;
    const char *cfg[] = {"ring:20", "ring:5", "ring:1", "ring:9"};
    const uint32_t cap[] = {20, 5, 1, 9};
    for (size_t c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
        aimdb_db *db;
        aimdb_record *rec = make_record(&db, cfg[c]);
        for (int64_t i = 1; i <= 50; i++) {
            produce_n(rec, i, i);
            assert_int_equal(slots_of(rec), expected_slots(cap[c], (uint64_t)i));
        }
        assert_int_equal(slots_of(rec), cap[c]);
        aimdb_db_free(db);
    }
}

static void test_ring_reader_behind_across_growth(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "ring:20");
    aimdb_reader *early, *mid;
    assert_int_equal(aimdb_reader_open(rec, &early), AIMDB_OK);
    produce_n(rec, 1, 6);
    for (int64_t want = 1; want <= 3; want++) assert_int_equal(next_value(early), want);
    assert_int_equal(aimdb_reader_open(rec, &mid), AIMDB_OK);
    /* 8 -> 16 slots while early is 3 values behind: nothing lost. */
    produce_n(rec, 7, 12);
    assert_int_equal(slots_of(rec), 16);
    for (int64_t want = 4; want <= 12; want++) assert_int_equal(next_value(early), want);
    expect_empty(early);
    /* 16 -> 20, then the ring wraps: holds 21..40.  early wanted 13, mid
     * (which never read) wanted 7: the exact counts lost. */
    produce_n(rec, 13, 40);
    assert_int_equal(slots_of(rec), 20);
    expect_lag(early, 8);
    expect_lag(mid, 14);
    for (int64_t want = 21; want <= 40; want++) {
        assert_int_equal(next_value(early), want);
        assert_int_equal(next_value(mid), want);
    }
    expect_empty(early);
    expect_empty(mid);
    expect_stats(rec, 40, 0);
    aimdb_db_free(db);
}

/* Variable-size values keep their own allocations when the slot array
 * moves; check the bytes, not just the count. */
static void test_variable_size_values_survive_growth(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record_with(&db, "ring:40", &aimdb_codec_json);
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    char text[64];
    for (int i = 1; i <= 50; i++) {
        int n = snprintf(text, sizeof(text), "{\"n\":%d,\"pad\":\"%.*s\"}", i, i % 17,
                         "xxxxxxxxxxxxxxxxx");
        assert_int_equal(aimdb_produce(rec, text, (size_t)n), AIMDB_OK);
    }
    assert_int_equal(slots_of(rec), 40);
    expect_lag(r, 10);
    for (int i = 11; i <= 50; i++) {
        int n = snprintf(text, sizeof(text), "{\"n\":%d,\"pad\":\"%.*s\"}", i, i % 17,
                         "xxxxxxxxxxxxxxxxx");
        aimdb_value v;
        assert_int_equal(aimdb_reader_try_recv(r, &v, NULL), AIMDB_OK);
        assert_int_equal(v.len, (size_t)n);
        assert_memory_equal(v.data, text, (size_t)n);
        assert_int_equal(v.seq, (uint64_t)i);
    }
    expect_empty(r);
    aimdb_db_free(db);
}

static void test_latest_and_mailbox_keep_one_slot(void **state) {
    (void)state;
    const char *cfg[] = {"latest", "mailbox"};
    for (size_t c = 0; c < 2; c++) {
        aimdb_db *db;
        aimdb_record *rec = make_record(&db, cfg[c]);
        assert_int_equal(slots_of(rec), 1);
        produce_n(rec, 1, 100);
        assert_int_equal(slots_of(rec), 1);
        assert_int_equal(latest_of(rec), 100);
        aimdb_db_free(db);
    }
}

/* A growth that fails rejects that one value, visibly and counted; the
 * ring neither loses what it holds nor wraps early, and the next produce
 * grows it.  Fixed-size growth reallocs twice (slot array, value block):
 * either may fail. */
static void test_failed_growth_rejects_the_value(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "ring:32");
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    produce_n(rec, 1, 8);
    int64_t nine = 9;
    for (int fail = 1; fail <= 2; fail++) {
        realloc_fail_in = fail;
        assert_int_equal(aimdb_produce(rec, &nine, sizeof(nine)), AIMDB_ENOMEM);
        assert_int_equal(realloc_fail_in, 0);
        assert_int_equal(slots_of(rec), 8);
        assert_int_equal(latest_of(rec), 8);
    }
    expect_stats(rec, 8, 2);
    produce_n(rec, 9, 9);
    assert_int_equal(slots_of(rec), 16);
    for (int64_t want = 1; want <= 9; want++) assert_int_equal(next_value(r), want);
    expect_empty(r);
    aimdb_db_free(db);
}

/* Variable size: the slot array grows, then the new slot's data cannot be
 * allocated.  The value is rejected; the grown ring is still correct. */
static void test_failed_value_after_growth_keeps_ring(void **state) {
    (void)state;
    aimdb_db *db;
    aimdb_record *rec = make_record_with(&db, "ring:32", &aimdb_codec_json);
    for (int i = 1; i <= 8; i++) assert_int_equal(aimdb_produce(rec, "[1]", 3), AIMDB_OK);
    realloc_fail_in = 2;
    assert_int_equal(aimdb_produce(rec, "[9]", 3), AIMDB_ENOMEM);
    assert_int_equal(slots_of(rec), 16);
    expect_stats(rec, 8, 1);
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    assert_int_equal(aimdb_produce(rec, "[9]", 3), AIMDB_OK);
    aimdb_value v;
    assert_int_equal(aimdb_reader_try_recv(r, &v, NULL), AIMDB_OK);
    assert_int_equal(v.seq, 9);
    assert_memory_equal(v.data, "[9]", 3);
    aimdb_db_free(db);
}

/* Initialisation that runs out of memory frees what it took (the leak
 * checkers see to that). */
static void test_buffer_init_out_of_memory(void **state) {
    (void)state;
    aimdb_buffer_cfg cfg = AIMDB_BUFFER_DEFAULT;
    for (int fail = 1; fail <= 2; fail++) {
        aimdb_buffer b;
        realloc_fail_in = fail;
        assert_int_equal(aimdb_buffer_init(&b, &cfg, sizeof(int64_t), NULL), AIMDB_ENOMEM);
        assert_null(b.slots);
    }
    aimdb_buffer b;
    assert_int_equal(aimdb_buffer_init(&b, &cfg, sizeof(int64_t), NULL), AIMDB_OK);
    assert_int_equal(b.nslots, AIMDB_RING_INITIAL_SLOTS);
    aimdb_buffer_free(&b);
}

/* A tap on the worker pool reads while the producer grows the ring under
 * it (run under ASan and valgrind).  Whatever it falls behind is counted:
 * values + missed add up, in order, ending at the last value. */
typedef struct tap_tally {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int64_t last;
    uint64_t values, missed;
    bool out_of_order;
} tap_tally;

static void tally_value(const aimdb_value *v, void *ctx) {
    tap_tally *t = ctx;
    int64_t x;
    memcpy(&x, v->data, sizeof(x));
    pthread_mutex_lock(&t->lock);
    if (x <= t->last) t->out_of_order = true;
    t->last = x;
    t->values++;
    pthread_cond_broadcast(&t->done);
    pthread_mutex_unlock(&t->lock);
}

static void tally_lag(uint64_t missed, void *ctx) {
    tap_tally *t = ctx;
    pthread_mutex_lock(&t->lock);
    t->missed += missed;
    pthread_cond_broadcast(&t->done);
    pthread_mutex_unlock(&t->lock);
}

static void test_tap_reads_while_ring_grows(void **state) {
    (void)state;
    enum { TOTAL = 5000 };
    tap_tally t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, false};
    aimdb_db *db;
    aimdb_record *rec = make_record(&db, "ring:1024");
    aimdb_tap_ops ops = {tally_value, tally_lag};
    assert_int_equal(aimdb_tap_add(rec, &ops, &t, NULL), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    produce_n(rec, 1, TOTAL);
    pthread_mutex_lock(&t.lock);
    while (t.values + t.missed < TOTAL) pthread_cond_wait(&t.done, &t.lock);
    pthread_mutex_unlock(&t.lock);
    assert_false(t.out_of_order);
    assert_int_equal(t.last, TOTAL);
    assert_int_equal(slots_of(rec), 1024);
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
        cmocka_unit_test(test_ring_starts_small_and_doubles_to_capacity),
        cmocka_unit_test(test_ring_growth_stops_at_capacity_not_a_power_of_two),
        cmocka_unit_test(test_ring_reader_behind_across_growth),
        cmocka_unit_test(test_variable_size_values_survive_growth),
        cmocka_unit_test(test_latest_and_mailbox_keep_one_slot),
        cmocka_unit_test(test_failed_growth_rejects_the_value),
        cmocka_unit_test(test_failed_value_after_growth_keeps_ring),
        cmocka_unit_test(test_buffer_init_out_of_memory),
        cmocka_unit_test(test_tap_reads_while_ring_grows),
    };
    return cmocka_run_group_tests_name("buffers", tests, NULL, NULL);
}
