/*
 * test_pg_plugin.c -- fleet history end to end: real Mosquitto brokers
 * with the plugin and a real PostgreSQL server.
 *   - gateways with `uplink` ship every local row; a central node with
 *     `database postgresql://` stores its own and answers record.query for
 *     the whole fleet with `gateway` patterns, each value naming its gateway
 *     (aggregates too: a bucket per record and gateway);
 *   - PostgreSQL stopped while messages keep coming, then started: every
 *     local row exactly once, $SYS uplink/state says retrying and why;
 *   - the gateway killed with SIGKILL while a batch is in flight (held on
 *     a table lock), then restarted: no duplicates, no gaps;
 *   - a bad URI stops start-up with aimdb.conf:LINE; a refused login is
 *     logged and retried;
 *   - aimdb-bridge as a central node (database postgresql://) on a broker
 *     without the plugin.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "client.h"
#include "harness.h"
#include "pg_server.h"

#define WAIT_MS 30000


/* A broker whose aimdb.conf is the rule below plus `settings`. */
static void start_node(broker *b, const char *settings) {
    broker_init(b);
    char text[2048];
    snprintf(text, sizeof(text),
             "%s\n"
             "record temp::{1} sensors/+/temperature persist\n",
             settings);
    broker_write_aimdb(b, text);
    broker_write_conf(b, "sys_interval 1");
    if (!broker_start(b, NULL)) {
        broker_log_dump(b);
        fail_msg("broker did not start");
    }
}

static void start_gateway(broker *b, const char *name) {
    char settings[1024];
    snprintf(settings, sizeof(settings), "database @DIR@/data/aimdb.db\nuplink %s\ngateway %s",
             pg_test_server.uri, name);
    start_node(b, settings);
}

static void publish_n(int port, const char *topic, int from, int to) {
    client *c = client_connect(port, "pub", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    for (int i = from; i < to; i++) {
        char json[48];
        int n = snprintf(json, sizeof(json), "{\"n\":%d}", i);
        /* QoS 1 in bursts: the broker has it before the next burst. */
        client_publish(c, topic, json, (size_t)n, i % 100 == 99 ? 1 : 0);
    }
    client_publish(c, topic, "{\"last\":true}", 13, 1);
    client_disconnect(c);
}

static int64_t local_count(const broker *b) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(b->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM record_history", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Every local row of gateway gw is in PostgreSQL once, with its record,
 * time, value and topic, and nothing else of gw is: no duplicates (the
 * unique constraint), no gaps (count and max equal the local ones). */
static void assert_shipped_exactly(const broker *b, const char *gw, int64_t rows) {
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM record_history WHERE gateway = '%s' AND source_id IS NOT NULL",
             gw);
    int64_t got = pg_wait_int(&pg_test_server, sql, rows, WAIT_MS);
    if (got != rows) fail_msg("gateway %s: %lld rows in PostgreSQL, %lld local", gw, (long long)got,
                              (long long)rows);
    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT source_id) FROM record_history WHERE gateway = '%s'", gw);
    assert_int_equal(pg_query_int(&pg_test_server, sql), rows);
    /* Row by row against the local file: same id, record, time, value, topic. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(b->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), sum(id), sum(stored_at % 1000003), "
                                        "sum(length(record_name)), max(id) FROM record_history",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char want[256], have[256];
    snprintf(want, sizeof(want), "%lld|%lld|%lld|%lld|%lld", sqlite3_column_int64(st, 0),
             sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
             sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4));
    sqlite3_finalize(st);
    sqlite3_close(db);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) || '|' || sum(source_id) || '|' || sum(stored_at %% 1000003) || "
             "'|' || sum(length(record_name)) || '|' || max(source_id) FROM record_history "
             "WHERE gateway = '%s' AND topic = 'sensors/' || substr(record_name, 7) || "
             "'/temperature' AND (value_json ? 'n' OR value_json ? 'last')",
             gw);
    assert_true(pg_query_text(&pg_test_server, sql, have, sizeof(have)));
    assert_string_equal(have, want);
}

/* Wait until the retained $SYS value of topic starts with prefix (text)
 * or, for a number, satisfies at_least (prefix NULL).  Each look is a
 * fresh subscription, which gets the current retained value at once. */
static void wait_sys(int port, const char *topic, const char *prefix, long long at_least) {
    char last[512] = "(nothing)";
    for (long long deadline = now_ms() + WAIT_MS; now_ms() < deadline;) {
        client *c = client_connect(port, "watch", MQTT_PROTOCOL_V311, NULL, NULL);
        assert_non_null(c);
        client_subscribe(c, topic, 0);
        received m;
        bool hit = false;
        if (client_receive(c, 1500, &m)) {
            snprintf(last, sizeof(last), "%s", m.payload);
            hit = prefix ? strncmp(m.payload, prefix, strlen(prefix)) == 0
                         : atoll(m.payload) >= at_least;
            received_free(&m);
        }
        client_disconnect(c);
        if (hit) return;
        sleep_ms(200);
    }
    fail_msg("%s: '%s', never %s%s", topic, last, prefix ? "starting with " : "at least",
             prefix ? prefix : "the number");
}

static long long sys_number(int port, const char *topic) {
    client *c = client_connect(port, "watch", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    client_subscribe(c, topic, 0);
    received m;
    assert_true(client_receive(c, WAIT_MS, &m));
    long long v = atoll(m.payload);
    received_free(&m);
    client_disconnect(c);
    return v;
}

/* --------------------------------------------------------------- tests */

static void test_fleet(void **state) {
    (void)state;
    broker a, b, central;
    start_gateway(&a, "site-a");
    start_gateway(&b, "site_b");
    char settings[512];
    snprintf(settings, sizeof(settings), "database %s\ngateway central", pg_test_server.uri);
    start_node(&central, settings);
    publish_n(a.port, "sensors/kitchen/temperature", 0, 300);
    publish_n(b.port, "sensors/kitchen/temperature", 1000, 1200);
    publish_n(b.port, "sensors/hall/temperature", 0, 10);
    publish_n(central.port, "sensors/dc/temperature", 0, 5);
    assert_shipped_exactly(&a, "site-a", 301);
    assert_shipped_exactly(&b, "site_b", 212);
    assert_int_equal(pg_wait_int(&pg_test_server, "SELECT count(*) FROM record_history WHERE gateway = "
                                          "'central' AND source_id IS NULL",
                                 6, WAIT_MS),
                     6);
    client *c = client_connect(central.port, "dash", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    client_subscribe(c, "test/reply", 1);
    /* Latest per record and gateway, record ascending then gateway. */
    char *reply = client_query_until(c, "{\"name\":\"temp::*\"}", 4, WAIT_MS);
    assert_int_equal(reply_count(reply), 4);
    const char *order[] = {"\"record\":\"temp::dc\",\"gateway\":\"central\"",
                           "\"record\":\"temp::hall\",\"gateway\":\"site_b\"",
                           "\"record\":\"temp::kitchen\",\"gateway\":\"site-a\"",
                           "\"record\":\"temp::kitchen\",\"gateway\":\"site_b\""};
    const char *at = reply;
    for (size_t i = 0; i < 4; i++) {
        const char *hit = strstr(at, order[i]);
        if (!hit) fail_msg("reply lacks %s after position %zu: %s", order[i], (size_t)(at - reply), reply);
        at = hit + 1;
    }
    free(reply);
    /* A gateway pattern: _ literal, * any run. */
    reply = client_query_until(c, "{\"name\":\"temp::kitchen\",\"gateway\":\"site_*\",\"limit\":3}",
                               3, WAIT_MS);
    if (reply_count(reply) != 3) fail_msg("reply: %s", reply);
    assert_null(strstr(reply, "site-a"));
    assert_non_null(strstr(reply, "{\"record\":\"temp::kitchen\",\"gateway\":\"site_b\",\"value\":"
                                  "{\"last\": true}"));
    free(reply);
    reply = client_query_until(c, "{\"name\":\"temp::kitchen\",\"gateway\":\"site?a\"}", 0, WAIT_MS);
    assert_int_equal(reply_count(reply), 0);
    free(reply);
    /* Aggregates group as rows do: one bucket per record and gateway, never
     * two sites' values in one (every bucket 10 years wide: all of today). */
    reply = client_query_until(c, "{\"name\":\"temp::kitchen\",\"every\":\"3650d\","
                                  "\"field\":\"n\",\"agg\":[\"count\",\"min\",\"max\"]}",
                               2, WAIT_MS);
    if (reply_count(reply) != 2 || !strstr(reply, "\"skipped\":2,") ||
        !strstr(reply, "{\"record\":\"temp::kitchen\",\"gateway\":\"site-a\",\"value\":"
                       "{\"count\":300,\"min\":0,\"max\":299}") ||
        !strstr(reply, "{\"record\":\"temp::kitchen\",\"gateway\":\"site_b\",\"value\":"
                       "{\"count\":200,\"min\":1000,\"max\":1199}"))
        fail_msg("aggregate reply: %s", reply);
    free(reply);
    client_disconnect(c);
    /* A SQLite node has no gateways: the parameter is refused. */
    c = client_connect(a.port, "dash", MQTT_PROTOCOL_V5, NULL, NULL);
    client_subscribe(c, "test/reply", 1);
    reply = client_request(c, "{\"id\":1,\"method\":\"record.query\",\"params\":{\"gateway\":\"x\"}}",
                           "test/reply", WAIT_MS);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "invalid_params"));
    free(reply);
    client_disconnect(c);
    wait_sys(a.port, "$SYS/broker/aimdb/uplink/state", "connected", 0);
    wait_sys(a.port, "$SYS/broker/aimdb/uplink/shipped", NULL, 301);
    assert_int_equal(sys_number(a.port, "$SYS/broker/aimdb/uplink/shipped"), 301);
    assert_int_equal(sys_number(a.port, "$SYS/broker/aimdb/uplink/lag/rows"), 0);
    assert_int_equal(sys_number(a.port, "$SYS/broker/aimdb/uplink/lost"), 0);
    assert_int_equal(sys_number(a.port, "$SYS/broker/aimdb/uplink/errors"), 0);
    assert_int_equal(broker_stop(&a), 0);
    assert_int_equal(broker_stop(&b), 0);
    assert_int_equal(broker_stop(&central), 0);
    broker_cleanup(&a);
    broker_cleanup(&b);
    broker_cleanup(&central);
}

static void test_outage_under_load(void **state) {
    (void)state;
    broker a;
    start_gateway(&a, "site-a");
    publish_n(a.port, "sensors/kitchen/temperature", 0, 1000);
    assert_shipped_exactly(&a, "site-a", 1001);
    pg_server_stop(&pg_test_server);
    publish_n(a.port, "sensors/kitchen/temperature", 1000, 4000);
    wait_sys(a.port, "$SYS/broker/aimdb/uplink/state", "retrying: ", 0);
    assert_true(broker_log_wait(&a, "uplink to postgres@127.0.0.1:", WAIT_MS));
    /* The lag is visible while the server is away: the rows stored since. */
    wait_sys(a.port, "$SYS/broker/aimdb/uplink/lag/rows", NULL, 3001);
    wait_sys(a.port, "$SYS/broker/aimdb/uplink/lag/ms", NULL, 1);
    assert_true(sys_number(a.port, "$SYS/broker/aimdb/uplink/errors") >= 1);
    pg_server_restart(&pg_test_server);
    /* Local history was never held up: all 3,002 rows are there. */
    assert_int_equal(local_count(&a), 4002);
    assert_shipped_exactly(&a, "site-a", 4002);
    wait_sys(a.port, "$SYS/broker/aimdb/uplink/state", "connected", 0);
    wait_sys(a.port, "$SYS/broker/aimdb/uplink/shipped", NULL, 4002);
    assert_int_equal(broker_stop(&a), 0);
    broker_cleanup(&a);
}

/* Hold the uplink's next COPY on a table lock, kill the broker while it
 * waits there, release, start the broker again. */
static void test_sigkill_mid_shipping(void **state) {
    (void)state;
    broker a;
    start_gateway(&a, "site-a");
    publish_n(a.port, "sensors/kitchen/temperature", 0, 500);
    assert_shipped_exactly(&a, "site-a", 501);
    PGconn *lock = PQconnectdb(pg_test_server.uri);
    assert_int_equal(PQstatus(lock), CONNECTION_OK);
    PQclear(PQexec(lock, "BEGIN"));
    PGresult *r = PQexec(lock, "LOCK TABLE record_history IN EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    publish_n(a.port, "sensors/kitchen/temperature", 500, 3000);
    /* The uplink's COPY is in flight, waiting for the lock. */
    assert_int_equal(pg_wait_int(&pg_test_server, "SELECT count(*) FROM pg_stat_activity WHERE "
                                          "application_name = 'aimdb' AND wait_event_type = 'Lock'",
                                 1, WAIT_MS),
                     1);
    broker_kill9(&a);
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    /* The killed connection's transaction never commits. */
    assert_int_equal(pg_query_int(&pg_test_server, "SELECT count(*) FROM record_history"), 501);
    assert_true(broker_start(&a, NULL));
    int64_t local = local_count(&a);
    assert_true(local > 501);
    assert_shipped_exactly(&a, "site-a", local);
    assert_true(broker_log_wait(&a, "resuming after local row 501", WAIT_MS));
    assert_int_equal(broker_stop(&a), 0);
    broker_cleanup(&a);
}

static void test_bad_uri_and_refused_login(void **state) {
    (void)state;
    broker b;
    broker_init(&b);
    broker_write_aimdb(&b, "database @DIR@/data/aimdb.db\n"
                           "uplink postgresql://u:secret@127.0.0.1:nope/db\n");
    broker_write_conf(&b, NULL);
    assert_false(broker_start(&b, NULL));
    assert_true(broker_log_wait(&b, "aimdb.conf:2: bad uplink PostgreSQL URI "
                                    "(u@127.0.0.1:nope/db): invalid port \"nope\"",
                                5000));
    assert_false(file_contains(b.log_path, "secret"));
    broker_cleanup(&b);

    broker_init(&b);
    broker_write_aimdb(&b, "database postgresql://127.0.0.1/x\nuplink postgresql://h/db\n");
    broker_write_conf(&b, NULL);
    assert_false(broker_start(&b, NULL));
    assert_true(broker_log_wait(&b, "aimdb.conf:2: uplink copies local SQLite history, but "
                                    "database (line 1) is PostgreSQL already",
                                5000));
    broker_cleanup(&b);

    /* A login the server refuses: logged with the reason, retried; MQTT
     * and local history go on. */
    char settings[512];
    snprintf(settings, sizeof(settings),
             "database @DIR@/data/aimdb.db\nuplink postgresql://nobody@127.0.0.1:%d/postgres\n"
             "gateway g",
             pg_test_server.port);
    start_node(&b, settings);
    wait_sys(b.port, "$SYS/broker/aimdb/uplink/state",
             "retrying: connecting: connection to server at \"127.0.0.1\"", 0);
    assert_true(broker_log_wait(&b, "role \"nobody\" does not exist; retrying in", WAIT_MS));
    publish_n(b.port, "sensors/x/temperature", 0, 10);
    long long deadline = now_ms() + WAIT_MS;
    while (local_count(&b) < 11 && now_ms() < deadline) sleep_ms(50);
    assert_int_equal(local_count(&b), 11);
    assert_int_equal(broker_stop(&b), 0);
    broker_cleanup(&b);
}

static void add_user(const char *file, const char *user, bool create) {
    char out[256];
    char *argv[] = {"mosquitto_passwd", "-c", "-b", (char *)file, (char *)user, "secret", NULL};
    char *argv_add[] = {"mosquitto_passwd", "-b", (char *)file, (char *)user, "secret", NULL};
    assert_int_equal(run_tool(create ? argv : argv_add, out, sizeof(out), 10000), 0);
}

/* The per-value ACL on a central node: each row keeps the topic it was
 * published on at its gateway, and the central broker's read ACL decides
 * by that topic. */
static void test_central_acl(void **state) {
    (void)state;
    broker a, central;
    start_gateway(&a, "site-a");
    publish_n(a.port, "sensors/kitchen/temperature", 0, 3);
    publish_n(a.port, "sensors/hall/temperature", 0, 3);
    assert_shipped_exactly(&a, "site-a", 8);
    broker_init(&central);
    char text[1024], passwd[HARNESS_PATH_MAX + 16], acl[HARNESS_PATH_MAX + 16], extra[2048];
    snprintf(text, sizeof(text),
             "database %s\ngateway central\nrecord temp::{1} sensors/+/temperature persist\n",
             pg_test_server.uri);
    broker_write_aimdb(&central, text);
    snprintf(passwd, sizeof(passwd), "%s/passwd", central.dir);
    snprintf(acl, sizeof(acl), "%s/acl", central.dir);
    add_user(passwd, "alice", true);
    add_user(passwd, "carol", false);
    write_file(acl, "user alice\ntopic read sensors/kitchen/#\ntopic write $CONTROL/aimdb/v1\n"
                    "user carol\ntopic read #\ntopic write $CONTROL/aimdb/v1\n");
    snprintf(extra, sizeof(extra), "password_file %s\nacl_file %s\n", passwd, acl);
    broker_write_conf(&central, extra);
    if (!broker_start(&central, NULL)) {
        broker_log_dump(&central);
        fail_msg("central broker did not start");
    }
    const struct {
        const char *user;
        int count;
        bool hall;
    } who[] = {{"alice", 4, false}, {"carol", 8, true}};
    for (size_t i = 0; i < 2; i++) {
        client *c = client_connect(central.port, who[i].user, MQTT_PROTOCOL_V5, who[i].user,
                                   "secret");
        assert_non_null(c);
        client_subscribe(c, "test/reply", 1);
        char *reply = client_query_until(c, "{\"name\":\"temp::*\",\"limit\":10}",
                                         who[i].count, WAIT_MS);
        if (reply_count(reply) != who[i].count) fail_msg("%s: %s", who[i].user, reply);
        assert_int_equal(strstr(reply, "temp::hall") != NULL, who[i].hall);
        assert_non_null(strstr(reply, "\"gateway\":\"site-a\""));
        free(reply);
        client_disconnect(c);
    }
    assert_int_equal(broker_stop(&a), 0);
    assert_int_equal(broker_stop(&central), 0);
    broker_cleanup(&a);
    broker_cleanup(&central);
}

/* aimdb-bridge on a plain broker, history in PostgreSQL under its
 * gateway name, answering a fleet query. */
static void test_bridge_central(void **state) {
    (void)state;
    broker b;
    broker_start_plain(&b);
    char conf[HARNESS_PATH_MAX + 16], text[1024];
    snprintf(conf, sizeof(conf), "%s/bridge.conf", b.dir);
    snprintf(text, sizeof(text),
             "broker mqtt://127.0.0.1:%d\nclient_id pg-bridge\ndatabase %s\ngateway cloud\n"
             "record temp::{1} sensors/+/temperature persist\n",
             b.port, pg_test_server.uri);
    write_file(conf, text);
    daemon_proc d;
    char *argv[] = {AIMDB_BRIDGE, "-c", conf, NULL};
    daemon_start(&d, b.dir, argv);
    if (!file_wait_for(d.log_path, "subscription(s) active", WAIT_MS)) {
        file_dump(d.log_path);
        fail_msg("aimdb-bridge did not start");
    }
    assert_true(file_contains(d.log_path, "history in postgresql://postgres@127.0.0.1:"));
    publish_n(b.port, "sensors/roof/temperature", 0, 20);
    assert_int_equal(pg_wait_int(&pg_test_server, "SELECT count(*) FROM record_history WHERE gateway = "
                                          "'cloud'",
                                 21, WAIT_MS),
                     21);
    client *c = client_connect(b.port, "dash", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    client_set_request_topic(c, "aimdb/pg-bridge/rpc");
    client_subscribe(c, "test/reply", 1);
    char *reply = client_query_until(c, "{\"name\":\"temp::roof\",\"gateway\":\"cl*\","
                                        "\"limit\":2}",
                                     2, WAIT_MS);
    if (reply_count(reply) != 2) fail_msg("reply: %s", reply);
    assert_non_null(strstr(reply, "{\"record\":\"temp::roof\",\"gateway\":\"cloud\",\"value\":"
                                  "{\"last\": true}"));
    free(reply);
    client_disconnect(c);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    assert_int_equal(broker_stop(&b), 0);
    broker_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_fleet, pg_test_fresh_history),
        cmocka_unit_test_setup(test_outage_under_load, pg_test_fresh_history),
        cmocka_unit_test_setup(test_sigkill_mid_shipping, pg_test_fresh_history),
        cmocka_unit_test_setup(test_bad_uri_and_refused_login, pg_test_fresh_history),
        cmocka_unit_test_setup(test_bridge_central, pg_test_fresh_history),
        cmocka_unit_test_setup(test_central_acl, pg_test_fresh_history),
    };
    return cmocka_run_group_tests(tests, pg_test_server_setup, pg_test_server_teardown);
}
