/*
 * test_memory.c -- max_memory: what record buffers hold is counted, past
 * their share the oldest values give way (the producing record's first,
 * then other records'), never a record's newest value nor one a tap has
 * not read, and the values that gave way are counted.
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

#define KIB 1024

static long raw_to_json(const void *value, size_t len, char *out, size_t cap) {
    (void)value;
    return snprintf(out, cap, "%zu", len);
}

static long raw_from_json(const char *json, size_t json_len, void *out, size_t cap) {
    (void)json;
    (void)out;
    (void)cap;
    return (long)json_len;
}

static const aimdb_codec raw = {"raw", 0, raw_to_json, raw_from_json, NULL};
static const aimdb_buffer_cfg ring100 = {AIMDB_BUFFER_RING, 100};

static aimdb_db *db_with_memory(size_t max_memory) {
    aimdb_db *db = aimdb_db_new(&(aimdb_db_options){.max_memory = max_memory});
    assert_non_null(db);
    return db;
}

static aimdb_record *record(aimdb_db *db, const char *name) {
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, name, &ring100, &raw, &rec), AIMDB_OK);
    return rec;
}

/* A value of len bytes whose first byte says which one it is. */
static void produce(aimdb_record *rec, size_t len, unsigned char tag) {
    unsigned char *v = malloc(len);
    memset(v, 0, len);
    v[0] = tag;
    assert_int_equal(aimdb_produce(rec, v, len), AIMDB_OK);
    free(v);
}

static bool count_held(const aimdb_value *v, void *ctx) {
    (void)v;
    ++*(size_t *)ctx;
    return false; /* look at every value */
}

static void ignore(const aimdb_value *v, void *ctx) {
    (void)v;
    (void)ctx;
}

/* How many values the record still holds. */
static size_t held_values(aimdb_record *rec) {
    size_t n = 0;
    aimdb_record_peek_newest_where(rec, count_held, ignore, &n);
    return n;
}

static void newest_tag(const aimdb_value *v, void *ctx) {
    *(unsigned char *)ctx = ((const unsigned char *)v->data)[0];
}

static aimdb_memory_stats stats(aimdb_db *db) {
    aimdb_memory_stats s;
    aimdb_db_memory_stats(db, &s);
    return s;
}

/* Buffers and relays get three quarters of max_memory; without max_memory there is no bound and
 * nothing gives way, but what is held is still counted. */
static void test_limit_and_accounting(void **state) {
    (void)state;
    aimdb_db *db = db_with_memory(0);
    aimdb_record *rec = record(db, "r");
    size_t empty = stats(db).held;
    assert_true(empty > 0); /* the ring's first slots */
    for (int i = 0; i < 50; i++) produce(rec, KIB, (unsigned char)i);
    aimdb_memory_stats s = stats(db);
    assert_int_equal(s.limit, 0);
    assert_true(s.held >= empty + 50 * KIB);
    assert_int_equal(s.evicted, 0);
    assert_int_equal(held_values(rec), 50);
    aimdb_db_free(db);

    db = db_with_memory(64 * KIB);
    assert_int_equal(stats(db).limit, 48 * KIB);
    aimdb_db_free(db);
}

/* Past the buffers' share the producing record's oldest values give way:
 * what is held stays within the share, the newest values are all there,
 * and every value that gave way is counted. */
static void test_oldest_give_way(void **state) {
    (void)state;
    aimdb_db *db = db_with_memory(64 * KIB);
    aimdb_record *rec = record(db, "r");
    for (int i = 0; i < 80; i++) produce(rec, KIB, (unsigned char)i);
    aimdb_memory_stats s = stats(db);
    assert_true(s.held <= s.limit);
    size_t held = held_values(rec);
    assert_true(held > 10 && held < 48);
    assert_int_equal(s.evicted, 80 - held);
    unsigned char tag = 0;
    assert_int_equal(aimdb_record_peek_latest(rec, newest_tag, &tag), AIMDB_OK);
    assert_int_equal(tag, 79);
    aimdb_db_free(db);
}

/* A reader that fell behind values that gave way is told exactly how many
 * it missed, then reads on from the oldest value still held. */
static void test_reader_lags_exactly(void **state) {
    (void)state;
    aimdb_db *db = db_with_memory(64 * KIB);
    aimdb_record *rec = record(db, "r");
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    for (int i = 0; i < 80; i++) produce(rec, KIB, (unsigned char)i);
    size_t held = held_values(rec);
    aimdb_value v;
    uint64_t missed = 0;
    assert_int_equal(aimdb_reader_try_recv(r, &v, &missed), AIMDB_LAGGED);
    assert_int_equal(missed, 80 - held);
    assert_int_equal(aimdb_reader_try_recv(r, &v, &missed), AIMDB_OK);
    assert_int_equal(((const unsigned char *)v.data)[0], 80 - held);
    aimdb_reader_close(r);
    aimdb_db_free(db);
}

/* A record whose own values cannot give way (it holds only its newest)
 * makes other records' oldest values give way; each keeps its newest. */
static void test_other_records_give_way(void **state) {
    (void)state;
    aimdb_db *db = db_with_memory(64 * KIB);
    aimdb_record *small = record(db, "small");
    for (int i = 0; i < 20; i++) produce(small, KIB, (unsigned char)i);
    assert_int_equal(stats(db).evicted, 0);
    aimdb_record *big = record(db, "big");
    produce(big, 40 * KIB, 1);
    aimdb_memory_stats s = stats(db);
    assert_true(s.held <= s.limit);
    assert_true(s.evicted > 0);
    assert_int_equal(held_values(big), 1);
    assert_int_equal(held_values(small), 20 - s.evicted);
    unsigned char tag = 0;
    aimdb_record_peek_latest(small, newest_tag, &tag);
    assert_int_equal(tag, 19);
    /* One value larger than the whole share is kept: a record's newest
     * value never gives way. */
    produce(big, 80 * KIB, 2);
    assert_int_equal(held_values(big), 1);
    assert_int_equal(held_values(small), 1);
    aimdb_db_free(db);
}

static void on_value(const aimdb_value *v, void *ctx) {
    (void)v;
    ++*(size_t *)ctx;
}

/* A value a tap has not read yet (history's) never gives way: the buffer
 * holds more than its share until the tap has read it, and then gives way
 * without waiting for another value. */
static void test_unread_values_stay(void **state) {
    (void)state;
    aimdb_db *db = db_with_memory(64 * KIB);
    aimdb_record *rec = record(db, "r");
    size_t seen = 0;
    aimdb_tap_ops ops = {.on_value = on_value};
    assert_int_equal(aimdb_tap_add(rec, &ops, &seen, NULL), AIMDB_OK);
    /* Not started: the tap runs no value yet. */
    for (int i = 0; i < 60; i++) produce(rec, KIB, (unsigned char)i);
    aimdb_memory_stats s = stats(db);
    assert_true(s.held > s.limit);
    assert_int_equal(s.evicted, 0);
    assert_int_equal(held_values(rec), 60);
    aimdb_db_stop(db); /* runs the tap over every value */
    assert_int_equal(seen, 60);
    /* Read now: they give way as the tap reads them, with no new value. */
    s = stats(db);
    assert_true(s.held <= s.limit);
    assert_int_equal(s.evicted, 60 - held_values(rec));
    aimdb_db_free(db);
}

/* A slot that held a large value gives it back when small ones follow. */
static void test_large_slot_shrinks(void **state) {
    (void)state;
    aimdb_db *db = db_with_memory(0);
    aimdb_buffer_cfg latest = {AIMDB_BUFFER_LATEST, 1};
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, "l", &latest, &raw, &rec), AIMDB_OK);
    size_t empty = stats(db).held;
    produce(rec, 512 * KIB, 1);
    assert_true(stats(db).held >= empty + 512 * KIB);
    produce(rec, 100, 2);
    assert_true(stats(db).held < empty + KIB);
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_and_accounting),
        cmocka_unit_test(test_oldest_give_way),
        cmocka_unit_test(test_reader_lags_exactly),
        cmocka_unit_test(test_other_records_give_way),
        cmocka_unit_test(test_unread_values_stay),
        cmocka_unit_test(test_large_slot_shrinks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
