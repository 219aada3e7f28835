/*
 * test_connector.c -- the connector library against a real Mosquitto
 * (without the plugin) on a free loopback port: inbound links with
 * templates and overlapping filters, outbound links across a broker
 * restart, handlers with MQTT v5 request/response properties, and the
 * errors a user sees for bad URLs and unreachable brokers.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/connector.h"
#include "aimdb/payload.h"
#include "client.h"
#include "harness.h"

#define WAIT_MS test_wait_ms(5000)

/* ---------------------------------------------------- captured logs */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];

static void capture_log(void *self, aimdb_log_level level, const char *fmt, va_list ap) {
    (void)self;
    (void)level;
    pthread_mutex_lock(&log_lock);
    size_t used = strlen(log_text);
    if (used + 2 < sizeof(log_text)) {
        vsnprintf(log_text + used, sizeof(log_text) - used - 1, fmt, ap);
        strcat(log_text, "\n");
    }
    pthread_mutex_unlock(&log_lock);
}

static bool log_wait(const char *text, int timeout_ms) {
    for (long long end = now_ms() + timeout_ms;; sleep_ms(20)) {
        pthread_mutex_lock(&log_lock);
        bool found = strstr(log_text, text) != NULL;
        pthread_mutex_unlock(&log_lock);
        if (found) return true;
        if (now_ms() >= end) return false;
    }
}

/* ---------------------------------------------------------- fixture */

typedef struct fixture {
    broker b;
    aimdb_runtime rt;
    aimdb_db *db;
    aimdb_connector *conn;
    char url[64];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    broker_start_plain(&f->b);
    f->rt = *aimdb_runtime_pthread();
    f->rt.log = capture_log;
    aimdb_db_options o = {.runtime = &f->rt};
    f->db = aimdb_db_new(&o);
    assert_non_null(f->db);
    snprintf(f->url, sizeof(f->url), "mqtt://127.0.0.1:%d", f->b.port);
    log_text[0] = '\0';
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f->conn) aimdb_connector_stop(f->conn);
    aimdb_db_stop(f->db);
    aimdb_connector_free(f->conn);
    aimdb_db_free(f->db);
    broker_cleanup(&f->b);
    free(f);
    return 0;
}

static void connect_fast(fixture *f) {
    aimdb_connector_options o = {.broker = f->url, .retry_min_ms = 100, .retry_max_ms = 400};
    char err[256];
    assert_int_equal(aimdb_connector_new(f->db, &o, &f->conn, err, sizeof(err)), AIMDB_OK);
}

static void start(fixture *f) {
    assert_int_equal(aimdb_db_start(f->db), AIMDB_OK);
    assert_int_equal(aimdb_connector_start(f->conn), AIMDB_OK);
    assert_true(aimdb_connector_wait_connected(f->conn, WAIT_MS));
}

static bool stats_wait(aimdb_connector *c, size_t offset, uint64_t want) {
    for (long long end = now_ms() + WAIT_MS;; sleep_ms(10)) {
        aimdb_connector_stats s;
        aimdb_connector_stats_get(c, &s);
        if (*(uint64_t *)((char *)&s + offset) >= want) return true;
        if (now_ms() >= end) return false;
    }
}
#define STATS_WAIT(c, field, want) stats_wait(c, offsetof(aimdb_connector_stats, field), want)

static void copy_value(const aimdb_value *v, void *ctx) {
    snprintf(ctx, 64, "%.*s", (int)v->len, (const char *)v->data);
}

/* The record's newest value becomes want (bounded wait: values reach their
 * records through the connector's relay thread). */
static void assert_latest(aimdb_db *db, const char *record, const char *want) {
    char got[64] = "";
    for (long long end = now_ms() + WAIT_MS; now_ms() < end; sleep_ms(5)) {
        aimdb_record *rec = aimdb_db_find(db, record);
        if (rec && aimdb_record_peek_latest(rec, copy_value, got) == AIMDB_OK &&
            strcmp(got, want) == 0)
            return;
    }
    fail_msg("record %s: want \"%s\", have \"%s\"", record, want, got);
}

/* ------------------------------------------------------------ tests */

/* The first matching link names the record, and a message the broker
 * sends once per overlapping subscription is produced once. */
static void test_inbound_first_match_once(void **state) {
    fixture *f = *state;
    connect_fast(f);
    aimdb_link_in links[] = {
        {.filter = "sensors/+/temp", .name_template = "temp::{1}", .qos = 1},
        {.filter = "sensors/#", .name_template = "any::{#}", .qos = 1},
    };
    char err[256];
    assert_int_equal(aimdb_connector_set_links_in(f->conn, links, 2, err, sizeof(err)), AIMDB_OK);
    start(f);
    client *pub = client_connect(f->b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL);
    client_publish(pub, "sensors/a/temp", "21.5", 4, 1);
    client_publish(pub, "sensors/b/hum", "40", 2, 1);
    client_publish(pub, "elsewhere", "x", 1, 1);
    assert_true(STATS_WAIT(f->conn, produced, 2));
    assert_true(STATS_WAIT(f->conn, duplicates, 1)); /* sensors/a/temp's second copy */
    sleep_ms(200);
    aimdb_connector_stats s;
    aimdb_connector_stats_get(f->conn, &s);
    assert_int_equal(s.produced, 2);
    assert_int_equal(s.unrouted, 0);
    assert_int_equal(s.received, 3);
    assert_latest(f->db, "temp::a", "21.5");
    assert_latest(f->db, "any::b/hum", "40");
    assert_null(aimdb_db_find(f->db, "any::a/temp"));
    assert_ptr_equal(aimdb_record_codec(aimdb_db_find(f->db, "temp::a")), &aimdb_codec_mqtt_auto);
    client_disconnect(pub);
}

/* A name the database refuses (max_records) drops its messages, counted
 * and logged with the reason; the record already open keeps receiving. */
static void test_refused_record_is_counted(void **state) {
    fixture *f = *state;
    aimdb_db_free(f->db);
    f->db = aimdb_db_new(&(aimdb_db_options){.runtime = &f->rt, .max_records = 1});
    assert_non_null(f->db);
    connect_fast(f);
    aimdb_link_in link = {.filter = "sensors/+/temp", .name_template = "temp::{1}", .qos = 1};
    char err[256];
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &link, 1, err, sizeof(err)), AIMDB_OK);
    start(f);
    client *pub = client_connect(f->b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL);
    client_publish(pub, "sensors/a/temp", "1", 1, 1);
    client_publish(pub, "sensors/b/temp", "2", 1, 1);
    client_publish(pub, "sensors/a/temp", "3", 1, 1);
    assert_true(STATS_WAIT(f->conn, produced, 2));
    assert_true(STATS_WAIT(f->conn, dropped, 1));
    assert_latest(f->db, "temp::a", "3");
    assert_null(aimdb_db_find(f->db, "temp::b"));
    assert_true(log_wait("too many records (max_records)", WAIT_MS));
    client_disconnect(pub);
}

/* Links replaced while running: the new filter is subscribed, the old one
 * is not routed any more, and a bad link keeps the old set. */
static void test_links_replaced_while_running(void **state) {
    fixture *f = *state;
    connect_fast(f);
    aimdb_link_in first = {.filter = "old/+", .name_template = "old::{1}", .qos = 1};
    char err[256];
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &first, 1, err, sizeof(err)), AIMDB_OK);
    start(f);
    aimdb_link_in bad = {.filter = "new/+", .name_template = "new::{2}", .qos = 1};
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &bad, 1, err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_non_null(strstr(err, "link 1 (new/+ -> new::{2})"));
    aimdb_link_in second = {.filter = "new/+", .name_template = "new::{1}", .qos = 1};
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &second, 1, err, sizeof(err)),
                     AIMDB_OK);
    assert_true(aimdb_connector_wait_connected(f->conn, WAIT_MS)); /* SUBACK in */
    client *pub = client_connect(f->b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL);
    client_publish(pub, "old/x", "1", 1, 1);
    client_publish(pub, "new/y", "2", 1, 1);
    assert_true(STATS_WAIT(f->conn, produced, 1));
    assert_latest(f->db, "new::y", "2");
    assert_null(aimdb_db_find(f->db, "old::x"));
    client_disconnect(pub);
}

/* A broker restart: the session comes back by itself, subscriptions are
 * restored, and an outbound `latest` record publishes only its newest
 * value of the outage. */
static void test_restart_resumes_both_directions(void **state) {
    fixture *f = *state;
    connect_fast(f);
    aimdb_record *cmd;
    aimdb_buffer_cfg latest = {AIMDB_BUFFER_LATEST, 0};
    assert_int_equal(aimdb_record_register(f->db, "cmd", &latest, &aimdb_codec_mqtt_auto, &cmd),
                     AIMDB_OK);
    char err[256];
    assert_int_equal(aimdb_connector_link_out(f->conn, cmd, "out/cmd", 1, true, NULL, NULL, err,
                                              sizeof(err)),
                     AIMDB_OK);
    aimdb_link_in in = {.filter = "in/#", .name_template = "in::{#}", .qos = 1};
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &in, 1, err, sizeof(err)), AIMDB_OK);
    start(f);

    client *sub = client_connect(f->b.port, "sub", MQTT_PROTOCOL_V5, NULL, NULL);
    client_subscribe(sub, "out/#", 1);
    assert_int_equal(aimdb_produce(cmd, "1", 1), AIMDB_OK);
    received m;
    assert_true(client_receive(sub, WAIT_MS, &m));
    assert_string_equal(m.payload, "1");
    received_free(&m);
    client_disconnect(sub);

    assert_int_equal(broker_stop(&f->b), 0);
    assert_true(log_wait("lost the connection", WAIT_MS));
    assert_int_equal(aimdb_produce(cmd, "2", 1), AIMDB_OK);
    assert_int_equal(aimdb_produce(cmd, "3", 1), AIMDB_OK);
    assert_true(log_wait("Connection refused; retrying", WAIT_MS));
    assert_true(broker_start(&f->b, NULL));
    assert_true(aimdb_connector_wait_connected(f->conn, WAIT_MS));
    assert_true(STATS_WAIT(f->conn, published, 2));

    sub = client_connect(f->b.port, "sub2", MQTT_PROTOCOL_V5, NULL, NULL);
    client_subscribe(sub, "out/#", 1); /* retained: the value published after the restart */
    assert_true(client_receive(sub, WAIT_MS, &m));
    assert_string_equal(m.payload, "3");
    received_free(&m);
    client_publish(sub, "in/after/restart", "ok", 2, 1);
    assert_true(STATS_WAIT(f->conn, produced, 1));
    assert_latest(f->db, "in::after/restart", "ok");
    client_disconnect(sub);

    aimdb_connector_stats s;
    aimdb_connector_stats_get(f->conn, &s);
    assert_int_equal(s.published, 2); /* "1", then only "3" */
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.disconnects, 1);
    assert_true(s.connect_failures >= 1);
}

/* A persistent session outlives a broker restart (the broker persists it):
 * a link removed while the broker is away is unsubscribed once the session
 * is back, so its traffic stops; the link kept still works. */
static void test_links_removed_while_down_are_unsubscribed(void **state) {
    fixture *f = *state;
    char extra[HARNESS_PATH_MAX + 64];
    snprintf(extra, sizeof(extra), "persistence true\npersistence_location %s/\n", f->b.dir);
    assert_int_equal(broker_stop(&f->b), 0);
    broker_write_conf(&f->b, extra);
    assert_true(broker_start(&f->b, NULL));
    aimdb_connector_options o = {.broker = f->url, .client_id = "persistent-links",
                                 .retry_min_ms = 100, .retry_max_ms = 400,
                                 .session_expiry_s = 600};
    char err[256];
    assert_int_equal(aimdb_connector_new(f->db, &o, &f->conn, err, sizeof(err)), AIMDB_OK);
    aimdb_link_in both[] = {
        {.filter = "keep/+", .name_template = "keep::{1}", .qos = 1},
        {.filter = "drop/+", .name_template = "drop::{1}", .qos = 1},
    };
    assert_int_equal(aimdb_connector_set_links_in(f->conn, both, 2, err, sizeof(err)), AIMDB_OK);
    start(f);
    assert_int_equal(broker_stop(&f->b), 0);
    assert_true(log_wait("lost the connection", WAIT_MS));
    assert_int_equal(aimdb_connector_set_links_in(f->conn, both, 1, err, sizeof(err)), AIMDB_OK);
    assert_true(broker_start(&f->b, NULL));
    assert_true(aimdb_connector_wait_connected(f->conn, WAIT_MS));
    client *pub = client_connect(f->b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL);
    sleep_ms(200); /* the UNSUBSCRIBE went out before the SUBSCRIBEs waited for */
    client_publish(pub, "drop/x", "1", 1, 1);
    client_publish(pub, "keep/x", "2", 1, 1);
    assert_true(STATS_WAIT(f->conn, produced, 1));
    sleep_ms(200);
    aimdb_connector_stats s;
    aimdb_connector_stats_get(f->conn, &s);
    assert_int_equal(s.received, 1); /* drop/x never came */
    assert_latest(f->db, "keep::x", "2");
    client_disconnect(pub);
}

/* A handler sees the v5 Response Topic and Correlation Data and answers
 * through aimdb_connector_publish, from its callback (on Paho's thread, so
 * the outcome is checked by the test's thread). */
static _Atomic int echo_publish_rc = -1000;

static void echo_handler(const aimdb_mqtt_message *m, void *ctx) {
    aimdb_connector **conn = ctx;
    aimdb_mqtt_message reply = {
        .topic = m->response_topic ? m->response_topic : "replies/default",
        .payload = m->payload,
        .len = m->len,
        .qos = 1,
        .correlation = m->correlation,
        .correlation_len = m->correlation_len,
    };
    echo_publish_rc = aimdb_connector_publish(*conn, &reply);
}

static void test_handler_request_response(void **state) {
    fixture *f = *state;
    connect_fast(f);
    char err[256];
    assert_int_equal(aimdb_connector_handle(f->conn, "svc/echo", 1, echo_handler, &f->conn, err,
                                            sizeof(err)),
                     AIMDB_OK);
    aimdb_link_in all = {.filter = "#", .name_template = "all::{#}", .qos = 0};
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &all, 1, err, sizeof(err)), AIMDB_OK);
    start(f);
    client *c = client_connect(f->b.port, "asker", MQTT_PROTOCOL_V5, NULL, NULL);
    client_subscribe(c, "replies/#", 1);
    client_set_request_topic(c, "svc/echo");
    char *reply = client_request(c, "{\"ping\":1}", "replies/mine", WAIT_MS);
    assert_non_null(reply); /* client_request checks the correlation data */
    assert_string_equal(reply, "{\"ping\":1}");
    assert_int_equal(echo_publish_rc, AIMDB_OK);
    free(reply);
    /* The handler took it: the catch-all link never produced the request. */
    assert_null(aimdb_db_find(f->db, "all::svc/echo"));
    client_disconnect(c);
}

/* A fixed-size record goes out as its codec's JSON, a custom serialiser
 * decides for itself (and may skip a value). */
static long as_celsius(const aimdb_value *v, char *out, size_t cap, void *ctx) {
    (void)ctx;
    double d;
    memcpy(&d, v->data, sizeof(d));
    if (d < -273.15) return -1; /* not a temperature: skipped */
    return snprintf(out, cap, "%.1f C", d);
}

static void test_outbound_codec_and_serializer(void **state) {
    fixture *f = *state;
    connect_fast(f);
    aimdb_record *plain, *custom;
    aimdb_buffer_cfg ring = AIMDB_BUFFER_DEFAULT;
    assert_int_equal(aimdb_record_register(f->db, "plain", &ring, &aimdb_codec_double, &plain),
                     AIMDB_OK);
    assert_int_equal(aimdb_record_register(f->db, "custom", &ring, &aimdb_codec_double, &custom),
                     AIMDB_OK);
    char err[256];
    assert_int_equal(aimdb_connector_link_out(f->conn, plain, "out/plain", 1, false, NULL, NULL,
                                              err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(aimdb_connector_link_out(f->conn, custom, "out/custom", 1, false, as_celsius,
                                              NULL, err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(aimdb_connector_link_out(f->conn, plain, "out/+", 1, false, NULL, NULL, err,
                                              sizeof(err)),
                     AIMDB_EINVAL);
    assert_non_null(strstr(err, "'out/+'"));
    start(f);
    client *sub = client_connect(f->b.port, "sub", MQTT_PROTOCOL_V5, NULL, NULL);
    client_subscribe(sub, "out/#", 1);
    double values[] = {21.5, -300.0, 4.25};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(aimdb_produce(plain, &values[i], sizeof(double)), AIMDB_OK);
        assert_int_equal(aimdb_produce(custom, &values[i], sizeof(double)), AIMDB_OK);
    }
    const char *want_plain[] = {"21.5", "-300", "4.25"}, *want_custom[] = {"21.5 C", "4.2 C"};
    size_t n_plain = 0, n_custom = 0;
    while (n_plain < 3 || n_custom < 2) {
        received m;
        assert_true(client_receive(sub, WAIT_MS, &m));
        if (strcmp(m.topic, "out/plain") == 0) assert_string_equal(m.payload, want_plain[n_plain++]);
        else assert_string_equal(m.payload, want_custom[n_custom++]);
        received_free(&m);
    }
    aimdb_connector_stats s;
    aimdb_connector_stats_get(f->conn, &s);
    assert_int_equal(s.publish_failed, 1); /* the skipped one */
    client_disconnect(sub);
}

/* mqtts:// through Paho's OpenSSL build: a broker certificate signed by the
 * CA given is accepted, one from another CA is refused with a reason. */
static void openssl(char *const args[]) {
    char *argv[24] = {"openssl"};
    for (size_t i = 0; args[i] && i < 22; i++) argv[i + 1] = args[i];
    char out[4096];
    if (run_tool(argv, out, sizeof(out), 30000) != 0) fail_msg("openssl %s failed", args[0]);
}

static void make_ca(fixture *f, const char *name) {
    char key[HARNESS_PATH_MAX + 16], crt[HARNESS_PATH_MAX + 16];
    snprintf(key, sizeof(key), "%s/%s.key", f->b.dir, name);
    snprintf(crt, sizeof(crt), "%s/%s.crt", f->b.dir, name);
    openssl((char *[]){"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                          "-out", crt, "-days", "1", "-subj", "/CN=aimdb test CA", NULL});
}

static void test_tls(void **state) {
    fixture *f = *state;
    char path[7][HARNESS_PATH_MAX + 32];
    const char *names[] = {"ca.crt", "ca.key", "server.key", "server.csr", "server.crt", "san.ext",
                           "other.crt"};
    for (size_t i = 0; i < 7; i++) snprintf(path[i], sizeof(path[i]), "%s/%s", f->b.dir, names[i]);
    make_ca(f, "ca");
    make_ca(f, "other");
    openssl((char *[]){"req", "-newkey", "rsa:2048", "-nodes", "-keyout", path[2], "-out",
                          path[3], "-subj", "/CN=127.0.0.1", NULL});
    write_file(path[5], "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\n");
    openssl((char *[]){"x509", "-req", "-in", path[3], "-CA", path[0], "-CAkey", path[1],
                          "-CAcreateserial", "-out", path[4], "-days", "1", "-extfile", path[5],
                          NULL});
    int tls_port = free_port();
    char extra[4 * HARNESS_PATH_MAX];
    snprintf(extra, sizeof(extra), "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n",
             tls_port, path[0], path[4], path[2]);
    assert_int_equal(broker_stop(&f->b), 0);
    broker_write_conf(&f->b, extra);
    assert_true(broker_start(&f->b, NULL));

    char url[64], err[256];
    snprintf(url, sizeof(url), "mqtts://127.0.0.1:%d", tls_port);
    aimdb_connector_options o = {.broker = url, .ca_file = path[0], .retry_min_ms = 100,
                                 .retry_max_ms = 400};
    assert_int_equal(aimdb_connector_new(f->db, &o, &f->conn, err, sizeof(err)), AIMDB_OK);
    aimdb_link_in in = {.filter = "secure/+", .name_template = "secure::{1}", .qos = 1};
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &in, 1, err, sizeof(err)), AIMDB_OK);
    start(f);
    client *pub = client_connect(f->b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL);
    client_publish(pub, "secure/x", "1", 1, 1);
    assert_true(STATS_WAIT(f->conn, produced, 1));
    client_disconnect(pub);

    aimdb_connector *wrong;
    o.ca_file = path[6];
    assert_int_equal(aimdb_connector_new(f->db, &o, &wrong, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(aimdb_connector_start(wrong), AIMDB_OK);
    assert_false(aimdb_connector_wait_connected(wrong, 500));
    assert_true(log_wait("TLS handshake or MQTT connect failed", WAIT_MS));
    aimdb_connector_free(wrong);
}

static void test_bad_options_are_refused_with_reason(void **state) {
    fixture *f = *state;
    char err[256] = "";
    aimdb_connector_options o = {.broker = "mqtt//127.0.0.1"};
    assert_int_equal(aimdb_connector_new(f->db, &o, &f->conn, err, sizeof(err)), AIMDB_EINVAL);
    assert_null(f->conn);
    assert_non_null(strstr(err, "bad broker URL 'mqtt//127.0.0.1': no scheme"));
    o = (aimdb_connector_options){.broker = f->url, .ca_file = "/etc/hostname"};
    assert_int_equal(aimdb_connector_new(f->db, &o, &f->conn, err, sizeof(err)), AIMDB_EINVAL);
    assert_non_null(strstr(err, "CA file needs a TLS broker URL"));
    o = (aimdb_connector_options){.broker = "mqtts://127.0.0.1", .ca_file = "/no/such/ca.pem"};
    assert_int_equal(aimdb_connector_new(f->db, &o, &f->conn, err, sizeof(err)), AIMDB_EINVAL);
    assert_non_null(strstr(err, "CA file /no/such/ca.pem: cannot read the file"));
    connect_fast(f);
    aimdb_link_in bad = {.filter = "a/#/b", .name_template = "x", .qos = 1};
    assert_int_equal(aimdb_connector_set_links_in(f->conn, &bad, 1, err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_non_null(strstr(err, "link 1 (a/#/b -> x)"));
}

/* The broker says no: the log gives its reason, not a number. */
static void test_refusal_is_explained(void **state) {
    fixture *f = *state;
    assert_int_equal(broker_stop(&f->b), 0);
    broker_write_conf(&f->b, "allow_anonymous false\n");
    assert_true(broker_start(&f->b, NULL));
    connect_fast(f);
    assert_int_equal(aimdb_db_start(f->db), AIMDB_OK);
    assert_int_equal(aimdb_connector_start(f->conn), AIMDB_OK);
    assert_true(log_wait("refused by the broker: Not authorized; retrying in", WAIT_MS));
}

/* Nothing listens: start succeeds, the connector keeps trying and says
 * why; stop ends it promptly. */
static void test_unreachable_broker_is_retried_and_explained(void **state) {
    fixture *f = *state;
    assert_int_equal(broker_stop(&f->b), 0);
    connect_fast(f);
    assert_int_equal(aimdb_db_start(f->db), AIMDB_OK);
    assert_int_equal(aimdb_connector_start(f->conn), AIMDB_OK);
    assert_false(aimdb_connector_wait_connected(f->conn, 300));
    assert_true(log_wait("Connection refused; retrying in", WAIT_MS));
    assert_true(STATS_WAIT(f->conn, connect_failures, 2));
    aimdb_mqtt_message m = {.topic = "a", .payload = "x", .len = 1};
    assert_int_equal(aimdb_connector_publish(f->conn, &m), AIMDB_EAGAIN);
    long long t0 = now_ms();
    aimdb_connector_stop(f->conn);
    assert_true(now_ms() - t0 < 3000);
    assert_int_equal(aimdb_connector_publish(f->conn, &m), AIMDB_ESTOPPED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inbound_first_match_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_record_is_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_replaced_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resumes_both_directions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_removed_while_down_are_unsubscribed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_handler_request_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_codec_and_serializer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options_are_refused_with_reason, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusal_is_explained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_broker_is_retried_and_explained, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
