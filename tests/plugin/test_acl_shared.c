/*
 * test_acl_shared.c -- one record name fed by several topics, and the ACL
 * rule per value: a client sees a value only if the broker's ACLs let it
 * read the topic that value was published on, whatever order the topics
 * first appeared in.
 *
 * `record dev::{1}::{2} devices/+/+` makes dev::pub::secret::x of both
 * devices/pub/secret::x (the spy may read it) and devices/pub::secret/x
 * (only the victim may).  The spy publishing first must not open the
 * victim's values to it, nor the victim publishing first hide them from
 * the victim.  Two rules making one name (accuracy::{1} of weather/+/accuracy
 * and of other/+/x) are the same case.  A real acl_file decides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <mqtt_protocol.h>

#include "client.h"
#include "harness.h"

static broker b;

static const char acl_text[] =
    "user spy\n"
    "topic readwrite devices/pub/#\n"
    "topic write $CONTROL/aimdb/v1\n"
    "user victim\n"
    "topic readwrite devices/pub::secret/#\n"
    "topic write $CONTROL/aimdb/v1\n"
    "user weather\n"
    "topic read weather/#\n"
    "topic write $CONTROL/aimdb/v1\n"
    "user admin\n"
    "topic readwrite #\n"
    "topic read $aimdb/unrestricted\n"
    "topic write $CONTROL/aimdb/v1\n";

static void add_user(const char *file, const char *user, bool create) {
    char out[256];
    char *argv[] = {"mosquitto_passwd", "-c", "-b", (char *)file, (char *)user, "secret", NULL};
    char *argv_add[] = {"mosquitto_passwd", "-b", (char *)file, (char *)user, "secret", NULL};
    assert_int_equal(run_tool(create ? argv : argv_add, out, sizeof(out), 10000), 0);
}

static client *login(const char *user) {
    client *c = client_connect(b.port, user, MQTT_PROTOCOL_V5, user, "secret");
    assert_non_null(c);
    return c;
}

static void publish_as(const char *user, const char *topic, const char *payload) {
    client *c = login(user);
    client_publish(c, topic, payload, strlen(payload), 1);
    client_disconnect(c);
}

static int setup(void **state) {
    (void)state;
    broker_init(&b);
    char passwd[600], acl[600], extra[1400];
    snprintf(passwd, sizeof(passwd), "%s/passwd", b.dir);
    snprintf(acl, sizeof(acl), "%s/acl", b.dir);
    const char *users[] = {"spy", "victim", "weather", "admin"};
    for (int i = 0; i < 4; i++) add_user(passwd, users[i], i == 0);
    write_file(acl, acl_text);
    broker_write_aimdb(&b, "database @DIR@/data/aimdb.db\n"
                           "record dev::{1}::{2}  devices/+/+          persist\n"
                           "record accuracy::{1}  weather/+/accuracy   persist\n"
                           "record accuracy::{1}  other/+/x            persist\n"
                           "record shadow::{1}    weather/+/accuracy\n");
    snprintf(extra, sizeof(extra), "password_file %s\nacl_file %s\n", passwd, acl);
    broker_write_conf(&b, extra);
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        return -1;
    }
    /* x: the spy's topic first; y: the victim's first. */
    publish_as("spy", "devices/pub/secret::x", "1");
    publish_as("victim", "devices/pub::secret/x", "2");
    publish_as("victim", "devices/pub::secret/y", "3");
    publish_as("spy", "devices/pub/secret::y", "4");
    publish_as("admin", "weather/vienna/accuracy", "10");
    publish_as("admin", "other/vienna/x", "20");
    /* Everything committed before any test asks. */
    client *c = login("admin");
    char *reply = client_query_until(c, "{\"limit\":10}", 6, 5000);
    assert_int_equal(reply_count(reply), 6);
    free(reply);
    client_disconnect(c);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return broker_stop_and_clean(&b);
}

/* The values of a record.query reply as "record=value,..." in reply order. */
static void values_of(const char *reply, char *out, size_t cap) {
    cJSON *j = cJSON_Parse(reply);
    assert_non_null(j);
    cJSON *values = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "values");
    assert_true(cJSON_IsArray(values));
    out[0] = '\0';
    cJSON *it;
    cJSON_ArrayForEach(it, values) {
        char *v = cJSON_PrintUnformatted(cJSON_GetObjectItem(it, "value"));
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s=%s", len ? "," : "",
                 cJSON_GetObjectItem(it, "record")->valuestring, v);
        free(v);
    }
    cJSON_Delete(j);
}

static void expect_query(const char *user, const char *params, const char *want) {
    client *c = login(user);
    char request[512];
    snprintf(request, sizeof(request), "{\"id\":1,\"method\":\"record.query\",\"params\":%s}",
             params);
    char *reply = client_request(c, request, NULL, 5000);
    assert_non_null(reply);
    char got[1024];
    values_of(reply, got, sizeof(got));
    if (strcmp(got, want) != 0) fail_msg("%s asked %s: got [%s], want [%s]", user, params, got, want);
    free(reply);
    client_disconnect(c);
}

/* want: the result text, or an error code in quotes. */
static void expect_get(const char *user, const char *record, const char *want) {
    client *c = login(user);
    char request[512], expected[256];
    snprintf(request, sizeof(request),
             "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"%s\"}}", record);
    char *reply = client_request(c, request, NULL, 5000);
    assert_non_null(reply);
    if (want[0] == '"') snprintf(expected, sizeof(expected), "\"code\":%s", want);
    else snprintf(expected, sizeof(expected), "\"result\":%s}", want);
    if (!strstr(reply, expected)) fail_msg("%s got %s: %s, want %s", user, record, reply, want);
    free(reply);
    client_disconnect(c);
}

static const char dev_query[] = "{\"name\":\"dev::*\",\"limit\":10}";

static void test_history_shows_only_readable_topics(void **state) {
    (void)state;
    expect_query("spy", dev_query, "dev::pub::secret::x=1,dev::pub::secret::y=4");
    expect_query("victim", dev_query, "dev::pub::secret::x=2,dev::pub::secret::y=3");
    expect_query("admin", dev_query,
                 "dev::pub::secret::x=2,dev::pub::secret::x=1,"
                 "dev::pub::secret::y=4,dev::pub::secret::y=3");
}

/* record.get is the newest value the client may read, not the newest. */
static void test_get_is_the_newest_readable_value(void **state) {
    (void)state;
    expect_get("spy", "dev::pub::secret::x", "1");
    expect_get("spy", "dev::pub::secret::y", "4");
    expect_get("victim", "dev::pub::secret::x", "2");
    expect_get("victim", "dev::pub::secret::y", "3");
    expect_get("admin", "dev::pub::secret::x", "2");
    expect_get("weather", "dev::pub::secret::x", "\"permission_denied\"");
}

static void test_two_rules_feeding_one_name(void **state) {
    (void)state;
    expect_query("weather", "{\"name\":\"accuracy::vienna\",\"limit\":10}",
                 "accuracy::vienna=10");
    expect_query("admin", "{\"name\":\"accuracy::vienna\",\"limit\":10}",
                 "accuracy::vienna=20,accuracy::vienna=10");
    expect_get("weather", "accuracy::vienna", "10");
    expect_get("admin", "accuracy::vienna", "20");
    expect_get("spy", "accuracy::vienna", "\"permission_denied\"");
}

/* A value the client may not read is in no bucket: one bucket of 36,500
 * days holds everything published here. */
static void test_aggregates_count_only_readable_values(void **state) {
    (void)state;
    const char *dev = "{\"name\":\"dev::*\",\"every\":\"36500d\",\"agg\":[\"count\",\"sum\"]}";
    expect_query("spy", dev,
                 "dev::pub::secret::x={\"count\":1,\"sum\":1},"
                 "dev::pub::secret::y={\"count\":1,\"sum\":4}");
    expect_query("victim", dev,
                 "dev::pub::secret::x={\"count\":1,\"sum\":2},"
                 "dev::pub::secret::y={\"count\":1,\"sum\":3}");
    expect_query("admin", dev,
                 "dev::pub::secret::x={\"count\":2,\"sum\":3},"
                 "dev::pub::secret::y={\"count\":2,\"sum\":7}");
    const char *acc = "{\"name\":\"accuracy::vienna\",\"every\":\"36500d\",\"agg\":[\"last\"]}";
    expect_query("weather", acc, "accuracy::vienna={\"last\":10}");
    expect_query("admin", acc, "accuracy::vienna={\"last\":20}");
    expect_query("spy", acc, "");
}

/* History keeps the topic of every value, for SQL and for the ACL. */
static void test_rows_keep_their_topic(void **state) {
    (void)state;
    char db[600], out[4096];
    snprintf(db, sizeof(db), "%s/data/aimdb.db", b.dir);
    char *argv[] = {"sqlite3", db,
                    "SELECT topic FROM record_history WHERE record_name = 'dev::pub::secret::x' "
                    "ORDER BY id",
                    NULL};
    assert_int_equal(run_tool(argv, out, sizeof(out), 10000), 0);
    assert_string_equal(out, "devices/pub/secret::x\ndevices/pub::secret/x\n");
}

/* Both overlaps are said at start-up, with both line numbers. */
static void test_overlapping_rules_are_reported(void **state) {
    (void)state;
    assert_true(broker_log_wait(&b,
                                "aimdb.conf:4: record names of this rule ('accuracy::{1}') can "
                                "also come from line 3",
                                1000));
    assert_true(broker_log_wait(&b,
                                "aimdb.conf:5: this rule never receives a message: line 3 has "
                                "the same filter 'weather/+/accuracy'",
                                1000));
    assert_false(broker_log_wait(&b, "aimdb.conf:3: record names", 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_shows_only_readable_topics),
        cmocka_unit_test(test_get_is_the_newest_readable_value),
        cmocka_unit_test(test_two_rules_feeding_one_name),
        cmocka_unit_test(test_aggregates_count_only_readable_values),
        cmocka_unit_test(test_rows_keep_their_topic),
        cmocka_unit_test(test_overlapping_rules_are_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
