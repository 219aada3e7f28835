/*
 * test_requests.c -- docs/protocol.md over a real broker: the three request
 * paths (MQTT v5 Response Topic + Correlation Data, v3.1.1 default reply
 * topic, the stock mosquitto_rr), privacy of replies, errors, record.get
 * and record.list, record.get on format=json, a client that leaves
 * before its reply, and a flood from one client (every request answered,
 * a result or busy; other clients keep their share).
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

static int start_broker(void **state) {
    (void)state;
    if (!broker_start_weather(&b)) return -1;
    client *c = client_connect(b.port, "seed", MQTT_PROTOCOL_V311, NULL, NULL);
    if (!c) return -1;
    client_publish(c, "weather/vienna/accuracy", "{\"pct\":91}", 10, 1);
    client_publish(c, "weather/graz/accuracy", "{\"pct\":87}", 10, 1);
    client_publish(c, "gateway/state", "online", 6, 1);
    client_disconnect(c);
    return 0;
}

static int stop_broker(void **state) {
    (void)state;
    return broker_stop_and_clean(&b);
}

static cJSON *parse(const char *text) {
    assert_non_null(text);
    cJSON *j = cJSON_Parse(text);
    if (!j) fprintf(stderr, "not JSON: %s\n", text);
    assert_non_null(j);
    return j;
}

static const char *error_code(cJSON *reply) {
    cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "error"), "code");
    return cJSON_IsString(code) ? code->valuestring : "";
}

/* v5: the reply goes to the Response Topic and carries the request's
 * Correlation Data (client_request checks it), with the request's id. */
static void test_v5_response_topic(void **state) {
    (void)state;
    client *c = client_connect(b.port, "v5-client", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    client_subscribe(c, "app/replies/#", 1);
    char *reply = client_query_until(c, "{\"name\":\"accuracy::*\"}", 2, 5000);
    cJSON *j = parse(reply);
    assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, 1);
    assert_int_equal(reply_count(reply), 2);
    cJSON *values = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "values");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(values, 0), "record")->valuestring,
                        "accuracy::graz");
    cJSON_Delete(j);
    free(reply);

    reply = client_request(c, "{\"id\":\"x-7\",\"method\":\"record.list\"}", "app/replies/list", 5000);
    j = parse(reply);
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "x-7");
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "result")));
    cJSON_Delete(j);
    free(reply);
    client_disconnect(c);
}

/* v3.1.1 has no Response Topic: the reply comes on the default topic, and
 * reaches the client even though it subscribed to nothing. */
static void test_v311_default_topic(void **state) {
    (void)state;
    client *c = client_connect(b.port, "v311-client", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    char *reply = client_query_until(c, "{\"name\":\"accuracy::vienna\"}", 1, 5000);
    cJSON *j = parse(reply);
    cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "values"), 0);
    assert_string_equal(cJSON_GetObjectItem(v, "record")->valuestring, "accuracy::vienna");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(v, "value"), "pct")->valueint, 91);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(v, "stored_at")));
    cJSON_Delete(j);
    free(reply);
    client_disconnect(c);
}

/* The stock request/response client, as a user would run it. */
static void test_mosquitto_rr(void **state) {
    (void)state;
    char port[16], out[8192];
    snprintf(port, sizeof(port), "%d", b.port);
    char *argv[] = {"mosquitto_rr", "-h", "127.0.0.1", "-p", port, "-t", "$CONTROL/aimdb/v1",
                    "-e", "rr/reply", "-W", "5", "-m",
                    "{\"id\":42,\"method\":\"record.get\",\"params\":{\"record\":\"gateway::state\"}}",
                    NULL};
    assert_int_equal(run_tool(argv, out, sizeof(out), 10000), 0);
    cJSON *j = parse(out);
    assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, 42);
    cJSON *result = cJSON_GetObjectItem(j, "result");
    assert_true(cJSON_IsString(result));
    assert_string_equal(result->valuestring, "online");
    cJSON_Delete(j);
}

/* Nobody but the requester sees a reply: not a '#' subscriber, not a
 * '$CONTROL/#' subscriber, not even one subscribed to the very reply
 * topics.  The eavesdropper demonstrably receives ordinary traffic. */
static void test_replies_are_private(void **state) {
    (void)state;
    client *spy = client_connect(b.port, "spy", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(spy);
    client_subscribe(spy, "#", 1);
    client_subscribe(spy, "$CONTROL/#", 1);
    client_subscribe(spy, "private/replies", 1);
    client *c5 = client_connect(b.port, "asker-v5", MQTT_PROTOCOL_V5, NULL, NULL);
    client *c3 = client_connect(b.port, "asker-v311", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c5);
    assert_non_null(c3);
    char *r = client_request(c5, "{\"id\":1,\"method\":\"record.query\"}", "private/replies", 5000);
    assert_non_null(r);
    free(r);
    r = client_request(c3, "{\"id\":2,\"method\":\"record.list\"}", NULL, 5000);
    assert_non_null(r);
    free(r);
    r = client_request(c3, "not json", NULL, 5000);
    assert_non_null(r);
    free(r);
    client_publish(c3, "weather/linz/accuracy", "{\"pct\":80}", 10, 1);
    received m;
    assert_true(client_receive(spy, 5000, &m));
    assert_string_equal(m.topic, "weather/linz/accuracy");
    received_free(&m);
    sleep_ms(300);
    while (client_receive(spy, 0, &m)) {
        fprintf(stderr, "eavesdropper got %s: %s\n", m.topic, m.payload);
        fail();
    }
    client_disconnect(c3);
    client_disconnect(c5);
    client_disconnect(spy);
}

static void test_errors(void **state) {
    (void)state;
    client *c = client_connect(b.port, "errors", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    static const struct {
        const char *request, *code;
    } cases[] = {
        {"{\"id\":1,", "parse_error"},
        {"{\"id\":2,\"method\":\"record.nope\"}", "method_not_found"},
        {"{\"id\":3,\"method\":\"record.get\",\"params\":{\"record\":\"nope::x\"}}", "not_found"},
        {"{\"id\":4,\"method\":\"record.query\",\"params\":{\"limit\":\"ten\"}}", "invalid_params"},
        {"", "parse_error"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *reply = client_request(c, cases[i].request, "errors/reply", 5000);
        cJSON *j = parse(reply);
        assert_string_equal(error_code(j), cases[i].code);
        cJSON_Delete(j);
        free(reply);
    }
    client_disconnect(c);
}

/* record.get NAME, parsed (caller deletes). */
static cJSON *get_record(client *c, const char *name) {
    char request[256];
    snprintf(request, sizeof(request),
             "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"%s\"}}", name);
    char *reply = client_request(c, request, "get/reply", 5000);
    cJSON *j = parse(reply);
    free(reply);
    return j;
}

/* Until NAME has a value.  The plugin produces values in the order they
 * were published, so everything published before NAME's value has reached
 * its record then. */
static void wait_for_value(client *c, const char *name) {
    for (long long deadline = now_ms() + 5000;; sleep_ms(20)) {
        cJSON *j = get_record(c, name);
        bool has = cJSON_GetObjectItem(j, "result") != NULL;
        cJSON_Delete(j);
        if (has) return;
        assert_true(now_ms() < deadline);
    }
}

/* format=json keeps a payload that is not JSON out of the record, as out
 * of history: record.get answers the latest JSON value (what record.query
 * says is latest), and a record that only ever got other payloads has no
 * value to show (not_found), instead of a query_error on every request. */
static void test_get_format_json(void **state) {
    (void)state;
    client *c = client_connect(b.port, "json-get", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    client_publish(c, "weather/jget/forecast", "{\"rain\":0.2}", 12, 1);
    client_publish(c, "weather/jget/forecast", "warm-ish", 8, 1);
    client_publish(c, "weather/jjunk/forecast", "junk", 4, 1);
    client_publish(c, "raw/jget/text", "after", 5, 1);
    wait_for_value(c, "note::jget");

    cJSON *j = get_record(c, "forecast::jget");
    cJSON *rain = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "rain");
    if (!cJSON_IsNumber(rain)) fprintf(stderr, "record.get forecast::jget: %s\n", cJSON_PrintUnformatted(j));
    assert_true(cJSON_IsNumber(rain));
    assert_true(rain->valuedouble == 0.2);
    cJSON_Delete(j);
    j = get_record(c, "forecast::jjunk");
    assert_string_equal(error_code(j), "not_found");
    cJSON_Delete(j);
    client_disconnect(c);
}

/* A client that disconnects right after asking: the broker stays up, and
 * a new connection with the same client id gets no stale reply. */
static void test_requester_leaves_early(void **state) {
    (void)state;
    for (int i = 0; i < 5; i++) {
        client *c = client_connect(b.port, "leaver", MQTT_PROTOCOL_V5, NULL, NULL);
        assert_non_null(c);
        const char *q = "{\"id\":1,\"method\":\"record.query\"}";
        client_publish(c, "$CONTROL/aimdb/v1", q, strlen(q), 0);
        client_disconnect(c);
    }
    client *again = client_connect(b.port, "leaver", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(again);
    received m;
    assert_false(client_receive(again, 300, &m));
    char *reply = client_request(again, "{\"id\":9,\"method\":\"record.list\"}", "again/reply", 5000);
    assert_non_null(reply);
    free(reply);
    client_disconnect(again);
}

static bool is_result(cJSON *reply) {
    return cJSON_GetObjectItem(reply, "result") != NULL;
}

/* FLOOD queries sent as fast as one client can: each is answered exactly
 * once, with a result or busy saying when to retry; meanwhile another
 * client's requests all get results, as its share is never taken. */
static void test_flood_from_one_client(void **state) {
    (void)state;
    enum { FLOOD = 2000, OTHER = 20 };
    client *flood = client_connect(b.port, "flooder", MQTT_PROTOCOL_V311, NULL, NULL);
    client *other = client_connect(b.port, "bystander", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(flood);
    assert_non_null(other);
    char request[160];
    for (int i = 0; i < FLOOD; i++) {
        int n = snprintf(request, sizeof(request),
                         "{\"id\":%d,\"method\":\"record.query\",\"params\":"
                         "{\"name\":\"accuracy::vienna\"}}",
                         i);
        client_publish(flood, "$CONTROL/aimdb/v1", request, (size_t)n, 0);
    }
    for (int i = 0; i < OTHER; i++) {
        char *reply = client_request(other, "{\"id\":\"o\",\"method\":\"record.query\","
                                            "\"params\":{\"name\":\"accuracy::*\"}}",
                                     NULL, 10000);
        cJSON *j = parse(reply);
        if (!is_result(j)) fail_msg("the bystander got %s", reply);
        cJSON_Delete(j);
        free(reply);
    }
    static bool answered[FLOOD];
    int results = 0, busy = 0;
    long long deadline = now_ms() + 60000;
    for (int got = 0; got < FLOOD; got++) {
        received m;
        int left = (int)(deadline - now_ms());
        if (left <= 0 || !client_receive(flood, left, &m))
            fail_msg("%d of %d requests answered", got, FLOOD);
        cJSON *j = parse(m.payload);
        cJSON *id = cJSON_GetObjectItem(j, "id");
        assert_true(cJSON_IsNumber(id) && id->valueint >= 0 && id->valueint < FLOOD);
        assert_false(answered[id->valueint]);
        answered[id->valueint] = true;
        if (is_result(j)) {
            results++;
        } else {
            if (strcmp(error_code(j), "busy") != 0) fail_msg("reply %s", m.payload);
            const char *message = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring;
            assert_non_null(strstr(message, "retry"));
            busy++;
        }
        cJSON_Delete(j);
        received_free(&m);
    }
    assert_int_equal(results + busy, FLOOD);
    assert_true(results >= 1);
    client_disconnect(flood);
    client_disconnect(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v5_response_topic),
        cmocka_unit_test(test_v311_default_topic),
        cmocka_unit_test(test_mosquitto_rr),
        cmocka_unit_test(test_replies_are_private),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_get_format_json),
        cmocka_unit_test(test_requester_leaves_early),
        cmocka_unit_test(test_flood_from_one_client),
    };
    return cmocka_run_group_tests(tests, start_broker, stop_broker);
}
