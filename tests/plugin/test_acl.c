/*
 * test_acl.c -- "a client sees only records whose source topic the
 * broker's ACLs let it read" (docs/protocol.md), with Mosquitto's own password and ACL
 * files: record.query, record.list and record.get filter per user; history
 * no rule produces any more is shown only to unrestricted clients; a user
 * without write access to $CONTROL/aimdb/v1 gets no answer at all.
 * Patterns see what they match and no more, whatever their literal prefix
 * (each request checks only the names it reads), and a reload that
 * changes the acl_file applies to clients already connected (their
 * remembered decisions are dropped).
 */
#include <setjmp.h>
#include <signal.h>
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
    "user writer\n"
    "topic write #\n"
    "user alice\n"
    "topic read weather/vienna/#\n"
    "topic write $CONTROL/aimdb/v1\n"
    "user bob\n"
    "topic read weather/#\n"
    "topic write $CONTROL/aimdb/v1\n"
    "user carol\n"
    "topic read #\n"
    "topic read $aimdb/unrestricted\n"
    "topic write $CONTROL/aimdb/v1\n"
    "user dave\n"
    "topic read #\n";

static void add_user(const char *file, const char *user, bool create) {
    char out[256];
    char *argv[] = {"mosquitto_passwd", "-c", "-b", (char *)file, (char *)user, "secret", NULL};
    char *argv_add[] = {"mosquitto_passwd", "-b", (char *)file, (char *)user, "secret", NULL};
    assert_int_equal(run_tool(create ? argv : argv_add, out, sizeof(out), 10000), 0);
}

/* First run without ACLs and with a rule that is then removed, so that
 * history holds an "orphan" record; then restart with users and ACLs. */
static int setup(void **state) {
    (void)state;
    broker_init(&b);
    broker_write_aimdb(&b, "database @DIR@/data/aimdb.db\n"
                           "record accuracy::{1} weather/+/accuracy persist\n"
                           "record gateway::{1}  gateway/+/state    persist\n"
                           "record legacy::{1}   legacy/+           persist\n");
    broker_write_conf(&b, NULL);
    if (!broker_start(&b, NULL)) return -1;
    client *c = client_connect(b.port, "w", MQTT_PROTOCOL_V5, NULL, NULL);
    client_publish(c, "legacy/x", "1", 1, 1);
    client_publish(c, "gateway/gw1/state", "\"up\"", 4, 1);
    char *reply = client_query_until(c, "{}", 2, 5000);
    free(reply);
    client_disconnect(c);
    if (broker_stop(&b) != 0) return -1;

    char passwd[600], acl[600], extra[1400];
    snprintf(passwd, sizeof(passwd), "%s/passwd", b.dir);
    snprintf(acl, sizeof(acl), "%s/acl", b.dir);
    add_user(passwd, "writer", true);
    const char *users[] = {"alice", "bob", "carol", "dave"};
    for (int i = 0; i < 4; i++) add_user(passwd, users[i], false);
    write_file(acl, acl_text);
    broker_write_aimdb(&b, "database @DIR@/data/aimdb.db\n"
                           "record accuracy::{1} weather/+/accuracy persist\n"
                           "record gateway::{1}  gateway/+/state    persist\n");
    snprintf(extra, sizeof(extra), "password_file %s\nacl_file %s\n", passwd, acl);
    broker_write_conf(&b, extra);
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        return -1;
    }
    c = client_connect(b.port, "writer", MQTT_PROTOCOL_V5, "writer", "secret");
    if (!c) return -1;
    client_publish(c, "weather/vienna/accuracy", "{\"pct\":91}", 10, 1);
    client_publish(c, "weather/graz/accuracy", "{\"pct\":87}", 10, 1);
    client_disconnect(c);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int status = broker_stop(&b);
    broker_cleanup(&b);
    return status == 0 ? 0 : -1;
}

/* The record names of a query or list reply, comma-separated. */
static void names_of(const char *reply, char *out, size_t cap) {
    cJSON *j = cJSON_Parse(reply);
    assert_non_null(j);
    cJSON *result = cJSON_GetObjectItem(j, "result");
    cJSON *items = cJSON_IsArray(result) ? result : cJSON_GetObjectItem(result, "values");
    out[0] = '\0';
    cJSON *it;
    cJSON_ArrayForEach(it, items) {
        if (*out) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, cJSON_GetObjectItem(it, "record")->valuestring, cap - strlen(out) - 1);
    }
    cJSON_Delete(j);
}

static void expect_query(const char *user, const char *want) {
    client *c = client_connect(b.port, user, MQTT_PROTOCOL_V5, user, "secret");
    assert_non_null(c);
    /* Wait until the two new values are committed (bob sees both). */
    char *reply = client_query_until(c, "{}", (int)(strchr(want, ',') ? 2 : 1), 3000);
    char names[512];
    names_of(reply, names, sizeof(names));
    assert_string_equal(names, want);
    free(reply);
    client_disconnect(c);
}

static void test_query_sees_readable_records_only(void **state) {
    (void)state;
    expect_query("alice", "accuracy::vienna");
    expect_query("bob", "accuracy::graz,accuracy::vienna");
    expect_query("carol", "accuracy::graz,accuracy::vienna,gateway::gw1,legacy::x");
}

/* The start-up line names the orphan and who sees it. */
static void test_orphans_said_at_start(void **state) {
    (void)state;
    assert_true(broker_log_wait(&b,
                                "history holds 2 record(s) with no value since start: "
                                "record.list and record.query show their history; 1 of them "
                                "no rule of aimdb.conf produces, so only clients without ACL "
                                "restrictions see those",
                                5000));
}

static void test_list_and_get_are_filtered(void **state) {
    (void)state;
    client *c = client_connect(b.port, "alice", MQTT_PROTOCOL_V311, "alice", "secret");
    assert_non_null(c);
    char *reply = client_request(c, "{\"id\":1,\"method\":\"record.list\"}", NULL, 5000);
    char names[512];
    names_of(reply, names, sizeof(names));
    assert_string_equal(names, "accuracy::vienna");
    free(reply);
    reply = client_request(c, "{\"id\":2,\"method\":\"record.get\",\"params\":{\"record\":\"accuracy::graz\"}}",
                           NULL, 5000);
    assert_non_null(strstr(reply, "\"permission_denied\""));
    free(reply);
    reply = client_request(c, "{\"id\":3,\"method\":\"record.get\",\"params\":{\"record\":\"accuracy::vienna\"}}",
                           NULL, 5000);
    assert_non_null(strstr(reply, "\"result\":{\"pct\":91}"));
    free(reply);
    client_disconnect(c);
}

/* dave may read everything but not write the request topic: the broker
 * refuses the request, and nothing answers. */
static void test_request_needs_write_access(void **state) {
    (void)state;
    client *c = client_connect(b.port, "dave", MQTT_PROTOCOL_V5, "dave", "secret");
    assert_non_null(c);
    char *reply = client_request(c, "{\"id\":1,\"method\":\"record.list\"}", "dave/reply", 500);
    assert_null(reply);
    client_disconnect(c);
}

static char *ask(client *c, const char *request) {
    char *reply = client_request(c, request, NULL, 5000);
    assert_non_null(reply);
    return reply;
}

static void expect_names(client *c, const char *method, const char *pattern, const char *want) {
    char request[256], names[512];
    snprintf(request, sizeof(request),
             "{\"id\":1,\"method\":\"%s\",\"params\":{\"name\":\"%s\"}}", method, pattern);
    char *reply = ask(c, request);
    names_of(reply, names, sizeof(names));
    if (strcmp(names, want) != 0) fail_msg("%s %s: got \"%s\", want \"%s\"", method, pattern, names, want);
    free(reply);
}

static void expect_get(client *c, const char *name, const char *want) {
    char request[256];
    snprintf(request, sizeof(request),
             "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"%s\"}}", name);
    char *reply = ask(c, request);
    if (!strstr(reply, want)) fail_msg("record.get %s: got %s, want %s", name, reply, want);
    free(reply);
}

static void test_patterns_see_what_they_match(void **state) {
    (void)state;
    client *alice = client_connect(b.port, "alice", MQTT_PROTOCOL_V311, "alice", "secret");
    client *carol = client_connect(b.port, "carol", MQTT_PROTOCOL_V311, "carol", "secret");
    assert_non_null(alice);
    assert_non_null(carol);
    const char *methods[] = {"record.query", "record.list"};
    for (int m = 0; m < 2; m++) {
        expect_names(alice, methods[m], "accuracy::*", "accuracy::vienna");
        expect_names(alice, methods[m], "accuracy::v*", "accuracy::vienna");
        expect_names(alice, methods[m], "accuracy::g*", "");
        expect_names(alice, methods[m], "*::vienna", "accuracy::vienna");
        expect_names(alice, methods[m], "a*a", "accuracy::vienna");
        expect_names(alice, methods[m], "accuracy::vienna", "accuracy::vienna");
        expect_names(alice, methods[m], "accuracy::vienn", "");
        expect_names(alice, methods[m], "*", "accuracy::vienna");
    }
    /* gateway::gw1 is in history only (record.list shows live records) */
    expect_names(carol, "record.query", "*ay::*", "gateway::gw1");
    expect_names(carol, "record.query", "gateway::*", "gateway::gw1");
    expect_names(carol, "record.list", "gateway::*", "");
    /* history only (no rule): in a pattern's scope for an unrestricted
     * client, never for a restricted one */
    expect_names(carol, "record.query", "legacy::*", "legacy::x");
    expect_names(carol, "record.query", "*x", "legacy::x");
    expect_names(alice, "record.query", "legacy::*", "");
    /* record.get names one record exactly: '*' is an ordinary character */
    expect_get(alice, "accuracy::*", "\"permission_denied\"");
    expect_get(carol, "accuracy::*", "\"not_found\"");
    expect_get(carol, "accuracy::vienn", "\"not_found\"");
    expect_get(alice, "accuracy::vienna", "\"result\":{\"pct\":91}");
    client_disconnect(alice);
    client_disconnect(carol);
}

/* Last: it changes the acl_file.  A connected client asks the same thing
 * before and after a reload and gets the new file's answer. */
static void test_reload_applies_to_connected_clients(void **state) {
    (void)state;
    client *alice = client_connect(b.port, "alice-reload", MQTT_PROTOCOL_V311, "alice", "secret");
    assert_non_null(alice);
    for (int i = 0; i < 3; i++) { /* asked again: remembered */
        expect_get(alice, "accuracy::vienna", "\"result\":{\"pct\":91}");
        expect_get(alice, "accuracy::graz", "\"permission_denied\"");
        expect_names(alice, "record.list", "accuracy::*", "accuracy::vienna");
    }
    char acl[600];
    snprintf(acl, sizeof(acl), "%s/acl", b.dir);
    write_file(acl, "user alice\n"
                    "topic read weather/graz/#\n"
                    "topic write $CONTROL/aimdb/v1\n");
    broker_signal(&b, SIGHUP);
    if (!broker_log_wait(&b, "reloaded", 5000)) {
        broker_log_dump(&b);
        fail_msg("no reload in the log");
    }
    expect_get(alice, "accuracy::vienna", "\"permission_denied\"");
    expect_get(alice, "accuracy::graz", "\"result\":{\"pct\":87}");
    expect_names(alice, "record.list", "accuracy::*", "accuracy::graz");
    expect_names(alice, "record.query", "*", "accuracy::graz");
    client_disconnect(alice);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_sees_readable_records_only),
        cmocka_unit_test(test_orphans_said_at_start),
        cmocka_unit_test(test_list_and_get_are_filtered),
        cmocka_unit_test(test_request_needs_write_access),
        cmocka_unit_test(test_patterns_see_what_they_match),
        cmocka_unit_test(test_reload_applies_to_connected_clients),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
