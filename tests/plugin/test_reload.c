/*
 * test_reload.c -- SIGHUP re-reads aimdb.conf: new rules route from the
 * next message on and new fixed-name records appear; an invalid file is
 * refused with its line in the log and the running rules stay; settings
 * that need a restart say so.
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

#define RULES_V1 "database @DIR@/data/aimdb.db\n" \
                 "record accuracy::{1} weather/+/accuracy persist\n"
#define RULES_V2 RULES_V1 \
                 "record humidity::{1} sensors/+/humidity persist\n" \
                 "record hub::state    hub/state          buffer=latest\n"

static int count_of(client *c, const char *pattern, int want) {
    char params[256];
    snprintf(params, sizeof(params), "{\"name\":\"%s\",\"limit\":100}", pattern);
    char *reply = client_query_until(c, params, want, want ? 5000 : 0);
    int n = reply_count(reply);
    free(reply);
    return n;
}

static void reload(broker *b, const char *rules, const char *expect_log) {
    broker_write_aimdb(b, rules);
    broker_signal(b, SIGHUP);
    if (!broker_log_wait(b, expect_log, 5000)) {
        broker_log_dump(b);
        fail_msg("no \"%s\" in the log", expect_log);
    }
}

static void test_reload_applies_a_valid_file(void **state) {
    (void)state;
    broker b;
    broker_init(&b);
    broker_write_aimdb(&b, RULES_V1);
    broker_write_conf(&b, NULL);
    assert_true(broker_start(&b, NULL));
    client *c = client_connect(b.port, "reload", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    client_publish(c, "sensors/a/humidity", "40", 2, 1);
    client_publish(c, "weather/a/accuracy", "1", 1, 1);
    assert_int_equal(count_of(c, "accuracy::*", 1), 1);
    assert_int_equal(count_of(c, "humidity::*", 0), 0);

    reload(&b, RULES_V2, "reloaded");
    client_publish(c, "sensors/a/humidity", "41", 2, 1);
    assert_int_equal(count_of(c, "humidity::a", 1), 1);
    char *reply = client_request(c, "{\"id\":1,\"method\":\"record.list\",\"params\":{\"name\":\"hub::*\"}}",
                                 "reload/reply", 5000);
    assert_non_null(strstr(reply, "\"record\":\"hub::state\""));
    free(reply);

    /* Broken file: refused with its line, the running rules stay. */
    reload(&b, RULES_V2 "record broken::{1}\n", "aimdb.conf:5: record needs a name template");
    assert_true(broker_log_wait(&b, "keeping the previous configuration", 0));
    client_publish(c, "sensors/b/humidity", "42", 2, 1);
    assert_int_equal(count_of(c, "humidity::b", 1), 1);

    /* A global setting cannot change under a running database. */
    reload(&b, "retention 1d\n" RULES_V2, "setting 'retention' changed");
    client_disconnect(c);
    assert_int_equal(broker_stop(&b), 0);
    broker_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_applies_a_valid_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
