/*
 * test_history.c -- what reaches SQLite through a real broker: history
 * survives a restart; SIGTERM loses nothing routed before it; kill -9
 * leaves a database SQLite calls intact and the broker starts again on
 * it; binary and text payloads come back byte for byte and subscribers get
 * them unchanged; a QoS 2 retransmission, which no Mosquitto lets a plugin
 * tell apart, is announced at start and stored twice.  Rows are counted
 * with the stock sqlite3 tool, as an operator would.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <mqtt_protocol.h>

#include "client.h"
#include "harness.h"

static broker b;

static int setup(void **state) {
    (void)state;
    broker_init(&b);
    broker_write_aimdb(&b, NULL);
    broker_write_conf(&b, NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    broker_cleanup(&b);
    return 0;
}

static void start(void) {
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        fail_msg("the broker did not start");
    }
}

static void sql_text(const char *sql, char *out, size_t cap) {
    char *argv[] = {"sqlite3", b.db_path, (char *)sql, NULL};
    assert_int_equal(run_tool(argv, out, cap, 10000), 0);
    out[strcspn(out, "\n")] = '\0';
}

/* The first value of a record.query reply. */
static cJSON *first_value(cJSON *reply) {
    cJSON *values = cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "result"), "values");
    return cJSON_GetObjectItem(cJSON_GetArrayItem(values, 0), "value");
}

static void test_history_survives_restart(void **state) {
    (void)state;
    start();
    client *c = client_connect(b.port, "restart", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    const char *cities[] = {"vienna", "graz", "linz"};
    char topic[64], payload[64];
    for (int i = 0; i < 3; i++) {
        snprintf(topic, sizeof(topic), "weather/%s/temperature", cities[i]);
        snprintf(payload, sizeof(payload), "%d.5", 20 + i);
        client_publish(c, topic, payload, strlen(payload), 1);
    }
    char *reply = client_query_until(c, "{\"name\":\"temp::*\"}", 3, 5000);
    assert_int_equal(reply_count(reply), 3);
    free(reply);
    client_disconnect(c);
    assert_int_equal(broker_stop(&b), 0);

    start();
    /* Said at start, and only what is true: every name has a rule. */
    assert_true(broker_log_wait(&b, "history holds 3 record(s) with no value since start", 5000));
    assert_false(file_contains(b.log_path, "no rule of aimdb.conf produces"));
    c = client_connect(b.port, "restart", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    reply = client_request(c, "{\"id\":1,\"method\":\"record.query\",\"params\":{\"name\":\"temp::graz\"}}",
                           NULL, 5000);
    cJSON *j = cJSON_Parse(reply);
    assert_int_equal(reply_count(reply), 1);
    assert_true(cJSON_IsNumber(first_value(j)));
    assert_true(first_value(j)->valuedouble == 21.5);
    cJSON_Delete(j);
    free(reply);
    client_disconnect(c);
    assert_int_equal(broker_stop(&b), 0);
}

/* Everything the broker accepted before SIGTERM is committed by exit:
 * QoS 0 messages followed by a QoS 1 fence (the broker handles one
 * connection's packets in order), then the signal at once. */
static void test_sigterm_loses_nothing(void **state) {
    (void)state;
    start();
    client *c = client_connect(b.port, "burst", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    enum { N = 20000 };
    char topic[64], payload[64];
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "weather/city%d/accuracy", i % 100);
        snprintf(payload, sizeof(payload), "{\"pct\":%d,\"seq\":%d}", i % 100, i);
        client_publish(c, topic, payload, strlen(payload), 0);
    }
    client_publish(c, "weather/fence/accuracy", "{\"fence\":true}", 14, 1);
    assert_int_equal(broker_stop(&b), 0); /* SIGTERM at once */
    client_disconnect(c);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name LIKE 'accuracy::%'"),
                     N + 1);
    assert_int_equal(sql_number(b.db_path, "SELECT count(DISTINCT record_name) FROM record_history "
                                "WHERE record_name LIKE 'accuracy::city%'"), 100);
}

/* kill -9 in the middle of a stream: SQLite finds its database intact
 * (WAL), the broker starts on it again and serves what was committed. */
static void test_kill9_leaves_a_clean_database(void **state) {
    (void)state;
    start();
    client *c = client_connect(b.port, "stream", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    char payload[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(payload, sizeof(payload), "{\"seq\":%d}", i);
        client_publish(c, "weather/crash/accuracy", payload, strlen(payload), i % 500 == 0 ? 1 : 0);
    }
    sleep_ms(300); /* some batches committed, maybe one half-written */
    for (int i = 0; i < 2000; i++) client_publish(c, "weather/crash/accuracy", "{\"late\":1}", 10, 0);
    broker_kill9(&b);
    client_disconnect(c);

    char out[256];
    sql_text("PRAGMA integrity_check", out, sizeof(out));
    assert_string_equal(out, "ok");
    long long rows = sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name='accuracy::crash'");
    assert_true(rows > 0);

    start();
    c = client_connect(b.port, "after", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    char *reply = client_query_until(c, "{\"name\":\"accuracy::crash\",\"limit\":100000}", (int)rows, 5000);
    assert_int_equal(reply_count(reply), rows);
    free(reply);
    client_disconnect(c);
    assert_int_equal(broker_stop(&b), 0);
}

static char *base64_of(const unsigned char *data, size_t len) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
    assert_non_null(out);
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (i + 1 < len ? (unsigned)data[i + 1] << 8 : 0) |
                     (i + 2 < len ? data[i + 2] : 0);
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < len ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? abc[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Payloads come back as the devices sent them, per format; subscribers
 * receive them unchanged; format=json keeps non-JSON out of history only. */
static void test_binary_and_text_round_trip(void **state) {
    (void)state;
    start();
    client *sub = client_connect(b.port, "watcher", MQTT_PROTOCOL_V311, NULL, NULL);
    client *c = client_connect(b.port, "formats", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(sub);
    assert_non_null(c);
    client_subscribe(sub, "raw/#", 1);
    client_subscribe(sub, "weather/#", 1);
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++) bytes[i] = (unsigned char)(255 - i);
    const char *text = "gr\xc3\xbc\xc3\x9f dich \xe2\x82\xac 5";
    const char *not_json = "warm-ish";
    client_publish(c, "raw/dev1/binary", bytes, sizeof(bytes), 1);
    client_publish(c, "raw/dev1/text", text, strlen(text), 1);
    client_publish(c, "weather/dev1/accuracy", bytes, 16, 1);      /* auto, not UTF-8 */
    client_publish(c, "weather/dev1/forecast", not_json, strlen(not_json), 1); /* json */
    client_publish(c, "weather/dev1/forecast", "{\"rain\":0.2}", 12, 1);

    received m;
    size_t lens[] = {sizeof(bytes), strlen(text), 16, strlen(not_json), 12};
    for (int i = 0; i < 5; i++) {
        assert_true(client_receive(sub, 5000, &m));
        assert_int_equal(m.len, lens[i]);
        if (i == 0) assert_memory_equal(m.payload, bytes, sizeof(bytes));
        received_free(&m);
    }

    char *b64 = base64_of(bytes, sizeof(bytes)), *b64_16 = base64_of(bytes, 16);
    char *reply = client_query_until(c, "{\"name\":\"blob::dev1\"}", 1, 5000);
    cJSON *j = cJSON_Parse(reply);
    assert_string_equal(cJSON_GetObjectItem(first_value(j), "base64")->valuestring, b64);
    cJSON_Delete(j);
    free(reply);
    reply = client_query_until(c, "{\"name\":\"note::dev1\"}", 1, 5000);
    j = cJSON_Parse(reply);
    assert_string_equal(first_value(j)->valuestring, text);
    cJSON_Delete(j);
    free(reply);
    reply = client_query_until(c, "{\"name\":\"accuracy::dev1\"}", 1, 5000);
    j = cJSON_Parse(reply);
    assert_string_equal(cJSON_GetObjectItem(first_value(j), "base64")->valuestring, b64_16);
    cJSON_Delete(j);
    free(reply);
    reply = client_query_until(c, "{\"name\":\"forecast::dev1\",\"limit\":10}", 1, 5000);
    assert_int_equal(reply_count(reply), 1); /* only the JSON one */
    j = cJSON_Parse(reply);
    assert_true(cJSON_GetObjectItem(first_value(j), "rain")->valuedouble == 0.2);
    cJSON_Delete(j);
    free(reply);
    free(b64);
    free(b64_16);
    client_disconnect(c);
    client_disconnect(sub);
    assert_int_equal(broker_stop(&b), 0);

    char out[4096];
    sql_text("SELECT value_json FROM record_history WHERE record_name='note::dev1'", out, sizeof(out));
    assert_string_equal(out, "\"gr\xc3\xbc\xc3\x9f dich \xe2\x82\xac 5\"");
}

/* Messages the plugin refuses to record: a broker with one plugin option,
 * a subscriber that proves they are still delivered, and a v5 publisher
 * that also asks what was recorded. */
typedef struct refusal {
    client *watcher, *pub;
} refusal;

static refusal start_refusing(const char *plugin_option, const char *watched) {
    broker_write_conf(&b, plugin_option);
    start();
    refusal r = {client_connect(b.port, "watcher", MQTT_PROTOCOL_V311, NULL, NULL),
                 client_connect(b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL)};
    assert_non_null(r.watcher);
    assert_non_null(r.pub);
    client_subscribe(r.watcher, watched, 1);
    return r;
}

/* The refused message reached the watcher, the history query finds want
 * values, and the log gives the reason. */
static char *refused_yet_delivered(refusal *r, size_t len, const char *query, int want,
                                   const char *reason) {
    received m;
    assert_true(client_receive(r->watcher, 5000, &m));
    assert_int_equal(m.len, len);
    received_free(&m);
    char *reply = client_query_until(r->pub, query, want, 5000);
    assert_int_equal(reply_count(reply), want);
    assert_true(broker_log_wait(&b, reason, 5000));
    client_disconnect(r->pub);
    client_disconnect(r->watcher);
    assert_int_equal(broker_stop(&b), 0);
    return reply;
}

/* A payload over max_payload is delivered as always but not recorded,
 * and the log says why. */
static void test_oversized_payload_delivered_not_recorded(void **state) {
    (void)state;
    refusal r = start_refusing("plugin_opt_max_payload 64", "weather/#");
    char big[100];
    memset(big, 'x', sizeof(big));
    client_publish(r.pub, "weather/big/accuracy", big, sizeof(big), 1);
    client_publish(r.pub, "weather/big/accuracy", "{\"ok\":1}", 8, 1);
    free(refused_yet_delivered(&r, sizeof(big), "{\"name\":\"accuracy::big\",\"limit\":10}", 1,
                               "larger than max_payload"));
}

/* Past max_records a new name gets no record: its messages are delivered
 * as always, not recorded, and the log says why; records already open keep
 * recording.  (gateway::state, a fixed name, is open from the start.) */
static void test_max_records_refuses_new_names(void **state) {
    (void)state;
    refusal r = start_refusing("plugin_opt_max_records 3", "weather/c/#");
    static const char *const topics[] = {"weather/a/accuracy", "weather/b/accuracy",
                                         "weather/c/accuracy", "weather/a/accuracy"};
    for (size_t i = 0; i < 4; i++) client_publish(r.pub, topics[i], "{\"pct\":90}", 10, 1);
    char *reply = refused_yet_delivered(&r, 10, "{\"name\":\"accuracy::*\",\"limit\":10}", 3,
                                        "not recorded: too many records (max_records)");
    assert_null(strstr(reply, "accuracy::c"));
    free(reply);
    assert_int_equal(
        sql_number(b.db_path,
                   "SELECT count(*) FROM record_history WHERE record_name='accuracy::a'"),
        2);
    assert_int_equal(
        sql_number(b.db_path,
                   "SELECT count(*) FROM record_history WHERE record_name='accuracy::c'"),
        0);
}

/* ------------------------------------------- QoS 2 retransmission */

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void raw_send(int fd, const unsigned char *p, size_t len) {
    assert_int_equal(write(fd, p, len), (ssize_t)len);
}

/* Read one packet (all fit in 127 bytes here); returns its first byte. */
static int raw_read(int fd, unsigned char *body, size_t *len) {
    unsigned char head[2];
    size_t got = 0;
    while (got < 2) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t r = read(fd, head + got, 2 - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_true(head[1] < 128);
    for (got = 0; got < head[1];) {
        ssize_t r = read(fd, body + got, head[1] - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    *len = head[1];
    return head[0];
}

/* MQTT 3.1.1 CONNECT, client id "q2client", clean session off, then CONNACK. */
static int raw_session(int port) {
    int fd = raw_connect(port);
    static const unsigned char connect_packet[] = {
        0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 60,
        0, 8, 'q', '2', 'c', 'l', 'i', 'e', 'n', 't'};
    raw_send(fd, connect_packet, sizeof(connect_packet));
    unsigned char body[128];
    size_t len;
    assert_int_equal(raw_read(fd, body, &len), 0x20);
    assert_int_equal(body[1], 0);
    return fd;
}

/* PUBLISH QoS 2 on weather/q2/accuracy, packet id mid, payload {"n":1}. */
static void raw_publish_qos2(int fd, uint16_t mid, bool dup) {
    unsigned char p[] = {(unsigned char)(0x34 | (dup ? 0x08 : 0)), 2 + 19 + 2 + 7,
                         0, 19, 'w', 'e', 'a', 't', 'h', 'e', 'r', '/', 'q', '2', '/',
                         'a', 'c', 'c', 'u', 'r', 'a', 'c', 'y',
                         (unsigned char)(mid >> 8), (unsigned char)mid,
                         '{', '"', 'n', '"', ':', '1', '}'};
    raw_send(fd, p, sizeof(p));
}

static void raw_expect(int fd, int type, uint16_t mid) {
    unsigned char body[128];
    size_t len;
    assert_int_equal(raw_read(fd, body, &len), type);
    assert_int_equal(body[0] << 8 | body[1], mid);
}

/* No Mosquitto tells a plugin that a QoS 2 PUBLISH is a retransmission,
 * so the plugin says at start -- before any QoS 2 message -- that one may
 * be stored twice, and it is: the broker delivers it once, history holds
 * it twice, and nothing is lost.  Should a broker ever stop raising the
 * event for the retransmission, the row count here says so. */
static void test_qos2_retransmission_said_at_start(void **state) {
    (void)state;
    start();
    assert_true(broker_log_wait(&b, "QoS 2: Mosquitto tells plugins no packet id", 5000));
    client *sub = client_connect(b.port, "q2-watcher", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(sub);
    client_subscribe(sub, "weather/q2/#", 2);

    /* The PUBREC is "lost": the sender reconnects and sends it again. */
    int fd = raw_session(b.port);
    raw_publish_qos2(fd, 7, false);
    raw_expect(fd, 0x50, 7);
    close(fd);
    fd = raw_session(b.port);
    raw_publish_qos2(fd, 7, true);
    raw_expect(fd, 0x50, 7);
    static const unsigned char pubrel[] = {0x62, 2, 0, 7};
    raw_send(fd, pubrel, sizeof(pubrel));
    raw_expect(fd, 0x70, 7);
    /* The same bytes as a new message (new id, no DUP) are a second value. */
    raw_publish_qos2(fd, 8, false);
    raw_expect(fd, 0x50, 8);
    static const unsigned char pubrel8[] = {0x62, 2, 0, 8};
    raw_send(fd, pubrel8, sizeof(pubrel8));
    raw_expect(fd, 0x70, 8);
    close(fd);

    received m;
    for (int i = 0; i < 2; i++) {
        assert_true(client_receive(sub, 5000, &m));
        received_free(&m);
    }
    assert_false(client_receive(sub, 200, &m));
    client_disconnect(sub);
    assert_int_equal(broker_stop(&b), 0);
    assert_int_equal(sql_number(b.db_path, "SELECT count(*) FROM record_history "
                                           "WHERE record_name='accuracy::q2'"),
                     3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_history_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_leaves_a_clean_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_and_text_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_payload_delivered_not_recorded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_max_records_refuses_new_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_retransmission_said_at_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
