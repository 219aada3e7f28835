/*
 * test_limits.c -- the bounds a gateway relies on, through a real broker:
 * max_memory keeps what record buffers hold within their share while
 * large payloads stream in, counts the values that gave way in $SYS and
 * leaves history with every value; a rule's max_records= bounds that
 * rule's records only, so a noisy wildcard rule at its cap leaves the
 * others recording, while the global max_records still bounds them all,
 * and a reload counts the records already open.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mqtt_protocol.h>

#include "client.h"
#include "harness.h"

#define WAIT_MS 20000

static broker b;

static int setup(void **state) {
    (void)state;
    broker_init(&b);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    broker_cleanup(&b);
    return 0;
}

static void start(const char *aimdb_conf, const char *extra) {
    broker_write_aimdb(&b, aimdb_conf);
    broker_write_conf(&b, extra);
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        fail_msg("the broker did not start");
    }
}

/* Wait (bounded) until a query's number reaches want; the last one read. */
static long long sql_wait(const char *sql, long long want) {
    long long n = -1;
    for (long long deadline = now_ms() + WAIT_MS; now_ms() < deadline; sleep_ms(50))
        if ((n = sql_number(b.db_path, sql)) >= want) break;
    if (n < want) broker_log_dump(&b);
    return n;
}

#define BLOB_BYTES (128 * 1024)
#define BLOBS 80
#define BUFFER_SHARE (6 << 20) /* buffers and relay: 3/4 of max_memory 8M */

/* 80 payloads of 128 KiB into two records hold 10 MiB, more than the 6 MiB
 * max_memory 8M leaves buffers and relay: values give way (counted in
 * $SYS), what they hold comes back within the share, and history has
 * every value, each one distinct. */
static void test_max_memory_bounds_buffers_not_history(void **state) {
    (void)state;
    start("record blob::{1} blobs/+ persist format=binary\n",
          "sys_interval 1\nplugin_opt_max_memory 8M\nplugin_opt_flush_interval 10ms\n");
    client *pub = client_connect(b.port, "pub", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(pub);
    assert_int_equal(metric_wait(b.port, "$SYS/broker/aimdb/memory/limit", BUFFER_SHARE,
                                 BUFFER_SHARE, WAIT_MS),
                     BUFFER_SHARE);
    char *blob = malloc(BLOB_BYTES);
    assert_non_null(blob);
    const char *count = "SELECT count(DISTINCT value_json) FROM record_history";
    for (int i = 0; i < BLOBS; i++) {
        memset(blob, 'a' + i % 26, BLOB_BYTES);
        snprintf(blob, 16, "blob %d;", i);
        client_publish(pub, i % 2 ? "blobs/b" : "blobs/a", blob, BLOB_BYTES, 1);
        /* In steps of 8 values: a relay thread that gets no CPU on a busy
         * machine refuses values once its backlog alone fills the share,
         * which is not what this test is about. */
        if (i % 8 == 7) assert_int_equal(sql_wait(count, i + 1), i + 1);
    }
    free(blob);
    /* Every large value is in history now: the next values make the
     * buffers give way down to their share. */
    client_publish(pub, "blobs/a", "last a", 6, 1);
    client_publish(pub, "blobs/b", "last b", 6, 1);
    assert_int_equal(sql_wait(count, BLOBS + 2), BLOBS + 2);
    long long evicted = metric_wait(b.port, "$SYS/broker/aimdb/memory/evicted", 1, BLOBS, WAIT_MS);
    assert_true(evicted >= 1 && evicted <= BLOBS);
    long long held =
        metric_wait(b.port, "$SYS/broker/aimdb/memory/bytes", 1, BUFFER_SHARE, WAIT_MS);
    assert_true(held >= 1 && held <= BUFFER_SHARE);
    assert_true(broker_log_wait(&b, "max_memory: live values hold", 5000));
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name = 'blob::a'"),
                     BLOBS / 2 + 1);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE length(value_json) > 170000"),
                     BLOBS); /* base64 of 128 KiB, whole */
    client_disconnect(pub);
    assert_int_equal(broker_stop(&b), 0);
}

/* noisy/+ may open 3 records: 8 new names open 3 and drop 5 (logged),
 * while weather/+/accuracy keeps opening records, up to the global
 * max_records (8).  After a reload the records open still count: noisy/9
 * stays out, so the last free record goes to weather/bern. */
static void test_rule_cap_leaves_other_rules_recording(void **state) {
    (void)state;
    start("record noisy::{1} noisy/+ persist max_records=3\n"
          "record accuracy::{1} weather/+/accuracy persist\n",
          "plugin_opt_max_records 8\n");
    client *pub = client_connect(b.port, "pub", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(pub);
    char topic[64];
    for (int i = 1; i <= 8; i++) {
        snprintf(topic, sizeof(topic), "noisy/%d", i);
        client_publish(pub, topic, "1", 1, 1);
    }
    static const char *const cities[] = {"vienna", "newcity", "graz", "linz"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(topic, sizeof(topic), "weather/%s/accuracy", cities[i]);
        client_publish(pub, topic, "{\"pct\":90}", 10, 1);
    }
    client_publish(pub, "noisy/2", "2", 1, 1); /* an open record keeps recording */
    assert_int_equal(sql_wait("SELECT count(*) FROM record_history", 8), 8);
    assert_true(broker_log_wait(&b, "aimdb.conf:1 opened its max_records=3 records", 5000));
    assert_true(broker_log_wait(&b, "not recorded: too many records (max_records)", 5000));
    assert_int_equal(sql_number(b.db_path, "SELECT count(DISTINCT record_name) FROM record_history "
                                           "WHERE record_name LIKE 'noisy::%'"),
                     3);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name = 'accuracy::newcity'"),
                     1);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name = 'noisy::2'"),
                     2);

    broker_signal(&b, SIGHUP);
    assert_true(broker_log_wait(&b, "reloaded", 5000));
    client_publish(pub, "noisy/9", "9", 1, 1);
    client_publish(pub, "weather/bern/accuracy", "{\"pct\":80}", 10, 1);
    client_publish(pub, "weather/oslo/accuracy", "{\"pct\":70}", 10, 1); /* the global cap */
    client_publish(pub, "weather/vienna/accuracy", "{\"pct\":91}", 10, 1);
    assert_int_equal(sql_wait("SELECT count(*) FROM record_history", 10), 10);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name IN ('noisy::9', 'accuracy::oslo')"),
                     0);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name = 'accuracy::bern'"),
                     1);
    client_disconnect(pub);
    assert_int_equal(broker_stop(&b), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_max_memory_bounds_buffers_not_history, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rule_cap_leaves_other_rules_recording, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
