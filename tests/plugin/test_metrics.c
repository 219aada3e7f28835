/*
 * test_metrics.c -- $SYS/broker/aimdb/... at the broker's sys_interval:
 * messages routed and rows stored reach what was published, a payload that
 * format=json keeps out is rejected (not dropped), the relay's backlog is
 * published and back to 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mqtt_protocol.h>

#include "client.h"
#include "harness.h"

static long long metric(int port, const char *topic, long long want) {
    return metric_wait(port, topic, want, want, test_wait_ms(8000));
}

static void test_sys_metrics(void **state) {
    (void)state;
    broker b;
    broker_init(&b);
    broker_write_aimdb(&b, NULL);
    broker_write_conf(&b, "sys_interval 1");
    assert_true(broker_start(&b, NULL));
    client *pub = client_connect(b.port, "pub", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(pub);
    for (int i = 0; i < 50; i++) client_publish(pub, "weather/m/accuracy", "{\"x\":1}", 7, 1);
    client_publish(pub, "not/routed", "x", 1, 1);
    client_publish(pub, "weather/m/forecast", "not json", 8, 1);
    assert_int_equal(metric(b.port, "$SYS/broker/aimdb/messages/routed", 51), 51);
    assert_int_equal(metric(b.port, "$SYS/broker/aimdb/rows/stored", 50), 50);
    assert_int_equal(metric(b.port, "$SYS/broker/aimdb/rows/rejected", 1), 1);
    assert_int_equal(metric(b.port, "$SYS/broker/aimdb/messages/dropped", 0), 0);
    /* everything handed over is in its record; the queue never grew */
    assert_int_equal(metric(b.port, "$SYS/broker/aimdb/relay/backlog", 0), 0);
    assert_int_equal(metric(b.port, "$SYS/broker/aimdb/relay/grown", 0), 0);
    client_disconnect(pub);
    assert_int_equal(broker_stop(&b), 0);
    broker_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sys_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
