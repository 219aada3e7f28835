/*
 * test_broker.c -- what the plugin makes of the broker it is loaded into
 * (plugin/broker_acl.c, plugin/broker_api.c), run against every Mosquitto
 * of the compatibility matrix:
 *
 *   - who may read what: no ACLs at all shows every record to everyone;
 *     an acl_file (here given through include_dir) is applied with
 *     Mosquitto's rules -- the anonymous section, deny before grant,
 *     patterns with %u -- and read again on SIGHUP; another plugin, whose
 *     decisions cannot be known, hides every record.  Each case is said
 *     once in the log at start.
 *   - the property readers' copies go back to the allocator they came
 *     from: the broker's byte count ($SYS/broker/heap/current) does not
 *     fall by what libmosquitto allocated.
 *   - Mosquitto 2.1 is told the plugin's name (mosquitto_plugin_set_info).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <mqtt_protocol.h>

#include "aimdb/version.h"
#include "client.h"
#include "harness.h"

#define RULES "database @DIR@/data/aimdb.db\n"                 \
              "record accuracy::{1} weather/+/accuracy persist\n" \
              "record gateway::{1}  gateway/+/state    persist\n"

static broker b;

static int teardown(void **state) {
    (void)state;
    return broker_stop_and_clean(&b);
}

static void start(const char *extra) {
    broker_init(&b);
    broker_write_aimdb(&b, RULES);
    broker_write_conf(&b, extra);
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        fail_msg("the broker did not start");
    }
}

static void expect_log(const char *text) {
    if (!broker_log_wait(&b, text, 5000)) {
        broker_log_dump(&b);
        fail_msg("no \"%s\" in the log", text);
    }
}

/* One value for each of the three records, from a client the ACLs (if
 * any) let write everything. */
static void seed(void) {
    client *c = client_connect(b.port, "seed", MQTT_PROTOCOL_V5, "writer", NULL);
    assert_non_null(c);
    client_publish(c, "weather/vienna/accuracy", "91", 2, 1);
    client_publish(c, "weather/graz/accuracy", "87", 2, 1);
    client_publish(c, "gateway/gw1/state", "\"up\"", 4, 1);
    client_disconnect(c);
}

static long long rows_stored(void) {
    char out[64];
    char *argv[] = {"sqlite3", b.db_path, "SELECT count(*) FROM record_history", NULL};
    return run_tool(argv, out, sizeof(out), 10000) == 0 ? atoll(out) : -1;
}

static void wait_rows(long long want) {
    long long deadline = now_ms() + 5000;
    while (rows_stored() < want && now_ms() < deadline) sleep_ms(50);
    assert_int_equal(rows_stored(), want);
}

/* What a client (username NULL: anonymous) sees of every record, as the
 * comma-separated names a latest-1 query returns. */
static void expect_sees(const char *username, const char *want) {
    client *c = client_connect(b.port, username ? username : "anonymous", MQTT_PROTOCOL_V5,
                               username, NULL);
    assert_non_null(c);
    char *reply = client_request(c, "{\"id\":1,\"method\":\"record.query\"}", "sees/reply", 5000);
    if (!reply) broker_log_dump(&b);
    assert_non_null(reply);
    char names[256] = "";
    for (const char *p = reply; (p = strstr(p, "\"record\":\"")); p += 10) {
        const char *name = p + 10;
        if (*names) strcat(names, ",");
        strncat(names, name, strcspn(name, "\""));
    }
    if (strcmp(names, want) != 0) fprintf(stderr, "%s sees: %s\n", username, reply);
    assert_string_equal(names, want);
    free(reply);
    client_disconnect(c);
}

static void test_no_acls_show_everything(void **state) {
    (void)state;
    start(NULL);
    expect_log("ACL: the broker has no acl_file and no security plugin");
    seed();
    wait_rows(3);
    expect_sees(NULL, "accuracy::graz,accuracy::vienna,gateway::gw1");
    expect_sees("erin", "accuracy::graz,accuracy::vienna,gateway::gw1");
}

static const char acl_rules[] =
    "# anonymous clients\n"
    "topic read gateway/+/state\n"
    "topic write $CONTROL/aimdb/v1\n"
    "user writer\n"
    "topic write #\n"
    "user erin\n"
    "topic read weather/#\n"
    "topic deny weather/graz/#\n"
    "topic write $CONTROL/aimdb/v1\n"
    "pattern read weather/%u/accuracy\n"
    "pattern write $CONTROL/aimdb/v1\n";

static void write_acl(const char *rules) {
    char path[HARNESS_PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/acl", b.dir);
    write_file(path, rules);
}

static void test_acl_file_rules(void **state) {
    (void)state;
    broker_init(&b);
    char dir[HARNESS_PATH_MAX + 8], file[2 * HARNESS_PATH_MAX], line[2 * HARNESS_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/conf.d", b.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(file, sizeof(file), "%s/acl.conf", dir);
    snprintf(line, sizeof(line), "acl_file %s/acl\n", b.dir);
    write_file(file, line);
    write_acl(acl_rules);
    broker_write_aimdb(&b, RULES);
    broker_write_conf(&b, "include_dir @DIR@/conf.d\n");
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        fail_msg("the broker did not start");
    }
    expect_log("ACL: records are filtered by the broker's acl_file");
    seed();
    wait_rows(3);
    expect_sees(NULL, "gateway::gw1");               /* the anonymous section */
    expect_sees("erin", "accuracy::vienna");         /* deny first, wherever it stands */
    expect_sees("graz", "accuracy::graz");           /* no section: the %u pattern */

    /* SIGHUP: Mosquitto reads its acl_file again, and so does aimdb. */
    write_acl("topic write $CONTROL/aimdb/v1\n"
              "user erin\ntopic read weather/#\ntopic write $CONTROL/aimdb/v1\n");
    broker_signal(&b, SIGHUP);
    expect_log("aimdb: reloaded");
    expect_sees("erin", "accuracy::graz,accuracy::vienna");
    expect_sees(NULL, "");
}

static void test_another_plugin_hides_everything(void **state) {
    (void)state;
    start("plugin " AIMDB_TEST_OTHER_PLUGIN "\n");
    expect_log("ACL: the broker also loads " AIMDB_TEST_OTHER_PLUGIN);
    expect_log("every record is hidden from every client");
    seed();
    wait_rows(3);
    expect_sees(NULL, "");
    client *c = client_connect(b.port, "lister", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    char *reply = client_request(c, "{\"id\":1,\"method\":\"record.list\"}", NULL, 5000);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "\"result\":[]"));
    free(reply);
    client_disconnect(c);
}

/* The latest $SYS/broker/heap/current the client has received. */
static long long heap_now(client *c) {
    long long value = -1;
    received m;
    for (int wait = 3000; client_receive(c, wait, &m); wait = 0) {
        value = atoll(m.payload);
        received_free(&m);
    }
    return value;
}

/* Each request's 4 KB Response Topic is copied by
 * mosquitto_property_read_string, with the broker's counting allocator
 * (2.1) or with plain calloc (2.0, libmosquitto).  Freed the wrong way,
 * the broker's count would move by about 4 KB per request: 800 KB here,
 * down (and wrap) or up. */
static void test_heap_count_survives_property_copies(void **state) {
    (void)state;
    start("sys_interval 1\n");
    client *c = client_connect(b.port, "heap", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    char topic[4096];
    memset(topic, 'r', sizeof(topic) - 1);
    topic[sizeof(topic) - 1] = '\0';
    topic[1] = '/';
    client *watch = client_connect(b.port, "heap-watch", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(watch);
    client_subscribe(watch, "$SYS/broker/heap/current", 0);
    long long before = heap_now(watch);
    assert_true(before > 0);
    for (int i = 0; i < 200; i++) {
        char *reply = client_request_qos(c, "{\"id\":1,\"method\":\"record.list\"}", topic, 0, 5000);
        assert_non_null(reply);
        free(reply);
    }
    sleep_ms(1500); /* a $SYS interval after the last request */
    long long after = heap_now(watch);
    fprintf(stderr, "heap/current before %lld, after %lld bytes\n", before, after);
    assert_true(after > before - 400 * 1024); /* mosquitto_free on calloc's copies */
    assert_true(after < before + 400 * 1024); /* free on the broker's counted ones */
    client_disconnect(watch);
    client_disconnect(c);
}

static void test_plugin_api_level_is_logged(void **state) {
    (void)state;
    start(NULL);
    expect_log("aimdb: broker: Mosquitto 2.");
    if (broker_log_wait(&b, "broker: Mosquitto 2.1 plugin API", 0))
        expect_log("Plugin aimdb version " AIMDB_VERSION " loaded");
    else
        assert_false(broker_log_wait(&b, "Plugin aimdb version", 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_no_acls_show_everything, teardown),
        cmocka_unit_test_teardown(test_acl_file_rules, teardown),
        cmocka_unit_test_teardown(test_another_plugin_hides_everything, teardown),
        cmocka_unit_test_teardown(test_heap_count_survives_property_copies, teardown),
        cmocka_unit_test_teardown(test_plugin_api_level_is_logged, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
