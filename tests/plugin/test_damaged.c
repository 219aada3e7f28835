/*
 * test_damaged.c -- history that is damaged, deleted or growing in its WAL
 * never takes MQTT down, through a real broker: started on a file that is
 * not a database, or on a real history whose pages were overwritten with
 * garbage, it serves MQTT, moves the file aside byte for byte, records new
 * history and says so in $SYS/broker/aimdb/database/recovered; the file
 * deleted under the running broker is noticed, recreated, counted in
 * database/reopened and the next messages are in the new file; and
 * database/bytes is what the file, its -wal and its -shm take.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <mqtt_protocol.h>

#include "client.h"
#include "harness.h"

#define WAIT_MS 10000
#define SYS "$SYS/broker/aimdb/"

static broker b;

static int setup(void **state) {
    (void)state;
    broker_init(&b);
    broker_write_aimdb(&b, NULL);
    broker_write_conf(&b, "sys_interval 1");
    char data[HARNESS_PATH_MAX + 8];
    snprintf(data, sizeof(data), "%s/data", b.dir);
    assert_int_equal(mkdir(data, 0750), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (b.pid) return broker_stop_and_clean(&b);
    broker_cleanup(&b); /* the test stopped it to look at the files */
    return 0;
}

static void start(void) {
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        fail_msg("the broker did not start");
    }
}

/* A subscriber to $SYS/broker/aimdb/# (metrics are retained). */
static void publish_accuracy(client *c, const char *city, int n) {
    char topic[64], payload[64];
    snprintf(topic, sizeof(topic), "weather/%s/accuracy", city);
    for (int i = 0; i < n; i++) {
        snprintf(payload, sizeof(payload), "{\"pct\":%d}", i);
        client_publish(c, topic, payload, strlen(payload), 1);
    }
}

/* Where the damaged file went: data/aimdb.db.corrupt-YYYYMMDDTHHMMSSZ. */
static void moved_aside(char *out, size_t cap) {
    char data[HARNESS_PATH_MAX + 8];
    snprintf(data, sizeof(data), "%s/data", b.dir);
    if (!file_find(data, "aimdb.db.corrupt-", "Z", out, cap)) {
        broker_log_dump(&b);
        fail_msg("no aimdb.db.corrupt-* in %s", data);
    }
}

/* After a recovery: the broker serves MQTT, new history is recorded and
 * queryable, the damaged file is aside as it was, $SYS and the log say so. */
static void check_recovered(const char *original) {
    client *c = client_connect(b.port, "after", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    publish_accuracy(c, "fresh", 2);
    assert_int_equal(metric_wait(b.port, SYS "database/recovered", 1, 1, WAIT_MS), 1);
    char *reply = client_query_until(c, "{\"name\":\"accuracy::*\",\"limit\":100}", 2, WAIT_MS);
    assert_int_equal(reply_count(reply), 2); /* only the new rows: a new history */
    assert_non_null(strstr(reply, "accuracy::fresh"));
    free(reply);
    client_disconnect(c);
    assert_true(broker_log_wait(&b, "moved it aside to", WAIT_MS));
    char aside[HARNESS_PATH_MAX * 2];
    moved_aside(aside, sizeof(aside));
    assert_true(files_equal(aside, original));
    assert_int_equal(broker_stop(&b), 0);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history"), 2);
}

static void test_not_a_database(void **state) {
    (void)state;
    char original[HARNESS_PATH_MAX + 16];
    snprintf(original, sizeof(original), "%s/original", b.dir);
    write_file(original, "backup of the router config, not a database\n");
    copy_file(original, b.db_path);
    start(); /* a history problem does not stop the broker */
    check_recovered(original);
}

/* Garbage over every page but the first of a real history (page 1, the
 * header and the schema, still reads: the damage shows on the first write,
 * query or retention sweep, not at open). */
static void corrupt_pages(const char *path) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    long long size = file_size(path);
    assert_true(size >= 3 * 4096);
    assert_int_equal(fseek(f, 4096, SEEK_SET), 0);
    for (long long i = 4096; i < size; i++) fputc((int)(0xA5 ^ (i * 31)) & 0xff, f);
    assert_int_equal(fclose(f), 0);
}

static void test_corrupt_pages(void **state) {
    (void)state;
    start();
    client *c = client_connect(b.port, "before", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    const char *cities[] = {"vienna", "graz", "linz", "wels"};
    for (int i = 0; i < 4; i++) publish_accuracy(c, cities[i], 250);
    char *reply = client_query_until(c, "{\"name\":\"accuracy::*\",\"limit\":1000}", 1000, WAIT_MS);
    assert_int_equal(reply_count(reply), 1000);
    free(reply);
    client_disconnect(c);
    assert_int_equal(broker_stop(&b), 0);

    corrupt_pages(b.db_path);
    char original[HARNESS_PATH_MAX + 16];
    snprintf(original, sizeof(original), "%s/original", b.dir);
    copy_file(b.db_path, original);
    start();
    check_recovered(original);
}

static void test_deleted_while_running(void **state) {
    (void)state;
    start();
    client *c = client_connect(b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    publish_accuracy(c, "old", 10);
    char *reply = client_query_until(c, "{\"name\":\"accuracy::old\",\"limit\":100}", 10, WAIT_MS);
    assert_int_equal(reply_count(reply), 10);
    free(reply);

    assert_int_equal(unlink(b.db_path), 0); /* its -wal and -shm stay behind */
    /* noticed while idle: nothing was published since */
    assert_int_equal(metric_wait(b.port, SYS "database/reopened", 1, 1, WAIT_MS), 1);
    assert_true(broker_log_wait(&b, "was deleted while in use", WAIT_MS));
    publish_accuracy(c, "new", 5);
    reply = client_query_until(c, "{\"name\":\"accuracy::*\",\"limit\":100}", 5, WAIT_MS);
    assert_int_equal(reply_count(reply), 5); /* queries left the deleted file */
    assert_null(strstr(reply, "accuracy::old"));
    free(reply);
    client_disconnect(c);
    assert_int_equal(broker_stop(&b), 0);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name = 'accuracy::new'"), 5);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history"), 5);
}

static void test_database_bytes_include_the_wal(void **state) {
    (void)state;
    start();
    client *c = client_connect(b.port, "pub", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    char payload[256], topic[64];
    memset(payload, 'x', sizeof(payload));
    payload[0] = payload[sizeof(payload) - 2] = '"';
    payload[sizeof(payload) - 1] = '\0';
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "weather/c%d/accuracy", i % 50);
        client_publish(c, topic, payload, strlen(payload), i == N - 1 ? 1 : 0);
    }
    assert_int_equal(metric_wait(b.port, SYS "rows/stored", N, N, WAIT_MS), N);
    client_disconnect(c);
    /* The rows' rollups are written up to a second after them: the files are
     * measured once the writer has nothing more to add. */
    long long until = now_ms() + test_wait_ms(WAIT_MS);
    while (sql_number(b.db_path, "SELECT rolled_up_to FROM record_rollup_state") < N &&
           now_ms() < until)
        sleep_ms(20);
    assert_int_equal(sql_number(b.db_path, "SELECT rolled_up_to FROM record_rollup_state"), N);

    char wal[HARNESS_PATH_MAX + 8], shm[HARNESS_PATH_MAX + 8];
    snprintf(wal, sizeof(wal), "%s-wal", b.db_path);
    snprintf(shm, sizeof(shm), "%s-shm", b.db_path);
    assert_true(file_size(wal) > 1024 * 1024); /* rows sit in the WAL until a checkpoint */
    long long files = file_size(b.db_path) + file_size(wal) + file_size(shm);
    long long got = metric_wait(b.port, SYS "database/bytes", files, files, WAIT_MS);
    if (got != files)
        fail_msg("database/bytes %lld; the files take %lld (db %lld, -wal %lld, -shm %lld)",
                 got, files, file_size(b.db_path), file_size(wal), file_size(shm));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_bytes_include_the_wal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
