/*
 * test_redelivery.c -- the connector's list of the last deliveries taken
 * (connector/redelivery.c): what it recognises, what it forgets, and the
 * file that carries it across a restart, including files it must refuse.
 * The bridge's end-to-end case is test_bridge's mid-stream SIGTERM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "connector_internal.h"

static uint64_t key_of(int msgid, const char *topic, const char *payload) {
    return redelivery_key(msgid, topic, strlen(topic), payload, strlen(payload));
}

static void test_a_delivery_is_known_by_packet_id_and_content(void **state) {
    (void)state;
    static redelivery r;
    redelivery_clear(&r);
    redelivery_note(&r, key_of(7, "a/b", "1"));
    assert_true(redelivery_seen(&r, key_of(7, "a/b", "1")));
    assert_false(redelivery_seen(&r, key_of(8, "a/b", "1")));  /* another message */
    assert_false(redelivery_seen(&r, key_of(7, "a/b", "2")));  /* the id reused */
    assert_false(redelivery_seen(&r, key_of(7, "a/b1", "")));  /* topic and payload */
    redelivery_clear(&r);
    assert_false(redelivery_seen(&r, key_of(7, "a/b", "1")));
}

static void test_only_the_last_window_is_kept(void **state) {
    (void)state;
    static redelivery r;
    redelivery_clear(&r);
    for (uint64_t i = 0; i < REDELIVERY_WINDOW + 10; i++) redelivery_note(&r, i);
    assert_int_equal(r.count, REDELIVERY_WINDOW);
    for (uint64_t i = 0; i < 10; i++) assert_false(redelivery_seen(&r, i));
    for (uint64_t i = 10; i < REDELIVERY_WINDOW + 10; i++) assert_true(redelivery_seen(&r, i));
}

static void temp_path(char *buf, size_t cap) {
    const char *dir = getenv("TMPDIR");
    snprintf(buf, cap, "%s/aimdb-redelivery-XXXXXX", dir ? dir : "/tmp");
    int fd = mkstemp(buf);
    assert_true(fd >= 0);
    close(fd);
}

static void test_the_file_carries_the_list_across_a_restart(void **state) {
    (void)state;
    static redelivery before, after;
    char path[256], err[256];
    temp_path(path, sizeof(path));
    redelivery_clear(&before);
    for (uint64_t i = 0; i < REDELIVERY_WINDOW + 3; i++) redelivery_note(&before, i * 31);
    assert_int_equal(redelivery_save(&before, path, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(redelivery_load(&after, path, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(after.count, before.count);
    assert_int_equal(after.next, before.next);
    assert_memory_equal(after.taken, before.taken, sizeof(before.taken));
    /* The ring goes on where it stopped: the oldest entry is replaced. */
    redelivery_note(&after, 5);
    assert_false(redelivery_seen(&after, 3 * 31));
    assert_true(redelivery_seen(&after, 4 * 31));
    assert_int_equal(access(path, F_OK), -1); /* read once: a kill leaves no stale list */
    /* No file: a first start (or after a kill), an empty list, no error. */
    assert_int_equal(redelivery_load(&after, path, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(after.count, 0);
}

static void refused(const char *path, const void *bytes, size_t n) {
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(bytes, 1, n, out), n);
    fclose(out);
    static redelivery r;
    redelivery_note(&r, 1);
    char err[256] = "";
    assert_int_equal(redelivery_load(&r, path, err, sizeof(err)), AIMDB_EINVAL);
    assert_non_null(strstr(err, "damaged or cut short"));
    assert_int_equal(r.count, 0);
}

static void test_a_damaged_file_is_refused_and_the_list_is_empty(void **state) {
    (void)state;
    static redelivery r;
    char path[256], err[256];
    temp_path(path, sizeof(path));
    refused(path, "SQLite format 3", 15);
    redelivery_clear(&r);
    for (uint64_t i = 0; i < 40; i++) redelivery_note(&r, i);
    assert_int_equal(redelivery_save(&r, path, err, sizeof(err)), AIMDB_OK);
    FILE *in = fopen(path, "rb");
    char whole[8 + 8 + 40 * sizeof(uint64_t)];
    assert_int_equal(fread(whole, 1, sizeof(whole), in), sizeof(whole));
    fclose(in);
    refused(path, whole, sizeof(whole) - 1);            /* cut short */
    uint32_t too_many = REDELIVERY_WINDOW + 1;
    memcpy(whole + 8, &too_many, sizeof(too_many));
    refused(path, whole, sizeof(whole));                /* a count no list has */
    uint32_t count = 40, next = 5;
    memcpy(whole + 8, &count, sizeof(count));
    memcpy(whole + 12, &next, sizeof(next));
    refused(path, whole, sizeof(whole)); /* not full, yet not appending at its end */
}

static void test_a_save_that_cannot_write_says_why(void **state) {
    (void)state;
    static redelivery r;
    char err[256] = "";
    redelivery_clear(&r);
    assert_int_equal(redelivery_save(&r, "/nonexistent-dir/x.session", err, sizeof(err)),
                     AIMDB_EIO);
    assert_non_null(strstr(err, "No such file or directory"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_delivery_is_known_by_packet_id_and_content),
        cmocka_unit_test(test_only_the_last_window_is_kept),
        cmocka_unit_test(test_the_file_carries_the_list_across_a_restart),
        cmocka_unit_test(test_a_damaged_file_is_refused_and_the_list_is_empty),
        cmocka_unit_test(test_a_save_that_cannot_write_says_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
