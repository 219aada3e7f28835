/*
 * test_bridge.c -- aimdb-bridge as an operator runs it: the real binary
 * beside a real Mosquitto without the plugin, fed by real clients, asked
 * over MQTT v5 and v3.1.1, restarted under, reloaded, stopped with
 * SIGTERM; the start-up errors it must explain; and a history file that is
 * not a database, which it moves aside as the plugin does instead of
 * refusing to start.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "aimdb/version.h"
#include "client.h"
#include "harness.h"

#define WAIT_MS test_wait_ms(10000)
#define REQUEST_TOPIC "aimdb/bridge-test/rpc"

static const char rules[] =
    "record temp::{1}      weather/+/temperature  persist\n"
    "record accuracy::{1}  weather/+/accuracy     persist buffer=ring:500\n";

typedef struct fixture {
    broker b;
    daemon_proc bridge;
    char conf[HARNESS_PATH_MAX];
} fixture;

/* aimdb.conf for the bridge: the broker's port, a database in the test's
 * directory (unless database is NULL: the bridge's default), a fixed client
 * id (hence the request topic), then rules. */
static void write_conf_with(fixture *f, const char *database, const char *more_rules) {
    char text[2048], db_line[HARNESS_PATH_MAX + 16] = "";
    if (database) snprintf(db_line, sizeof(db_line), "database %s\n", database);
    snprintf(text, sizeof(text), "broker mqtt://127.0.0.1:%d\nclient_id bridge-test\n%s%s%s",
             f->b.port, db_line, rules, more_rules ? more_rules : "");
    write_file(f->conf, text);
}

static void write_bridge_conf(fixture *f, const char *more_rules) {
    write_conf_with(f, f->b.db_path, more_rules);
}

/* With AIMDB_TEST_VALGRIND set to valgrind's path (CTest's
 * test_bridge_valgrind), every bridge runs under it: a leak or a bad access
 * on any of its exits (SIGTERM, start-up errors, --help) changes the exit
 * status the tests expect.  A second bridge runs in dir (its log is
 * dir/aimdb-bridge.log). */
static void start_bridge_in(fixture *f, daemon_proc *d, const char *dir, const char *extra_arg) {
    char *valgrind = getenv("AIMDB_TEST_VALGRIND");
    char *plain[] = {AIMDB_BRIDGE, "-c", f->conf, (char *)extra_arg, NULL};
    char *wrapped[] = {valgrind, "-q", "--error-exitcode=9", "--leak-check=full",
                       "--errors-for-leak-kinds=definite,indirect", AIMDB_BRIDGE, "-c", f->conf,
                       (char *)extra_arg, NULL};
    daemon_start(d, dir, valgrind ? wrapped : plain);
}

static void start_bridge(fixture *f, const char *extra_arg) {
    start_bridge_in(f, &f->bridge, f->b.dir, extra_arg);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    broker_start_plain(&f->b);
    snprintf(f->conf, sizeof(f->conf), "%s/bridge.conf", f->b.dir);
    write_bridge_conf(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f->bridge.pid) daemon_stop(&f->bridge, SIGKILL);
    broker_cleanup(&f->b);
    free(f);
    return 0;
}

static void wait_bridge_connected(fixture *f) {
    if (!file_wait_for(f->bridge.log_path, "subscription(s) active", WAIT_MS)) {
        file_dump(f->bridge.log_path);
        fail_msg("aimdb-bridge did not connect");
    }
}

static client *asker(fixture *f, int protocol) {
    client *c = client_connect(f->b.port, protocol == MQTT_PROTOCOL_V5 ? "asker5" : "asker3",
                               protocol, NULL, NULL);
    assert_non_null(c);
    client_set_request_topic(c, REQUEST_TOPIC);
    client_subscribe(c, protocol == MQTT_PROTOCOL_V5 ? "test/reply" : REQUEST_TOPIC "/response",
                     1);
    return c;
}

static void publish_temps(client *c, const char *city, int n) {
    char topic[128], value[32];
    snprintf(topic, sizeof(topic), "weather/%s/temperature", city);
    for (int i = 0; i < n; i++) {
        snprintf(value, sizeof(value), "%d.5", i);
        client_publish(c, topic, value, strlen(value), 1);
    }
}

static int stored_rows(fixture *f) {
    char *argv[] = {"sqlite3", f->b.db_path, "select count(*) from record_history", NULL};
    char out[64] = "";
    assert_int_equal(run_tool(argv, out, sizeof(out), WAIT_MS), 0);
    return atoi(out);
}

/* Y of the bridge's last "stopped: X message(s) received, Y recorded". */
static int recorded_at_stop(fixture *f) {
    FILE *in = fopen(f->bridge.log_path, "r");
    assert_non_null(in);
    char line[1024];
    int recorded = -1;
    while (fgets(line, sizeof(line), in)) {
        const char *at = strstr(line, "message(s) received, ");
        if (strstr(line, "aimdb-bridge: stopped:") && at)
            recorded = atoi(at + strlen("message(s) received, "));
    }
    fclose(in);
    assert_true(recorded >= 0);
    return recorded;
}

/* ------------------------------------------------------------ tests */

static void test_ingest_query_both_protocols_and_sigterm(void **state) {
    fixture *f = *state;
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    client *c5 = asker(f, MQTT_PROTOCOL_V5);
    publish_temps(c5, "vienna", 3);
    client_publish(c5, "weather/oslo/accuracy", "{\"pct\":91}", 10, 1);

    char *reply = client_query_until(c5, "{\"name\":\"temp::*\",\"limit\":10}", 3, WAIT_MS);
    assert_int_equal(reply_count(reply), 3);
    assert_non_null(strstr(reply, "\"record\":\"temp::vienna\",\"value\":2.5"));
    free(reply);

    client *c3 = asker(f, MQTT_PROTOCOL_V311);
    reply = client_request(c3, "{\"id\":7,\"method\":\"record.get\",\"params\":{\"record\":"
                               "\"accuracy::oslo\"}}", NULL, WAIT_MS);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "\"id\":7"));
    assert_non_null(strstr(reply, "\"pct\":91"));
    free(reply);
    reply = client_request(c3, "{\"id\":8,\"method\":\"no.such\"}", NULL, WAIT_MS);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "\"error\""));
    free(reply);
    client_disconnect(c3);

    /* Everything the bridge received before SIGTERM is in SQLite after it;
     * what the broker had not delivered yet waits in the bridge's session
     * and is recorded when it is back: no message is lost either way. */
    publish_temps(c5, "lima", 500);
    client_disconnect(c5);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_int_equal(stored_rows(f), recorded_at_stop(f));
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    for (long long end = now_ms() + WAIT_MS; stored_rows(f) < 504 && now_ms() < end;)
        sleep_ms(50);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_int_equal(stored_rows(f), 504);
}

/* Values 0 .. FLOW_VALUES-1 to weather/flow/temperature at QoS 1, as fast
 * as mosquitto_pub sends them: the broker then keeps a full window of
 * messages in flight to the bridge. */
#define FLOW_VALUES 4000

typedef struct flow {
    int port;
    int status;
} flow;

static void *publish_flow(void *arg) {
    flow *fl = arg;
    char cmd[256], out[256];
    snprintf(cmd, sizeof(cmd), "seq 0 %d | mosquitto_pub -p %d -q 1 -l -t weather/flow/temperature",
             FLOW_VALUES - 1, fl->port);
    char *argv[] = {"sh", "-c", cmd, NULL};
    fl->status = run_tool(argv, out, sizeof(out), WAIT_MS);
    return NULL;
}

static int sql_int(fixture *f, const char *sql) {
    char *argv[] = {"sqlite3", f->b.db_path, (char *)sql, NULL};
    char out[64] = "";
    assert_int_equal(run_tool(argv, out, sizeof(out), WAIT_MS), 0);
    return atoi(out);
}

/* Once the flow's values are in: stop the bridge, then every value must be
 * there exactly once. */
static void stop_bridge_with_each_flow_value_once(fixture *f) {
    for (long long end = now_ms() + WAIT_MS; stored_rows(f) < FLOW_VALUES && now_ms() < end;)
        sleep_ms(50);
    sleep_ms(300); /* a second copy, if one came, would be committed by now */
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_int_equal(sql_int(f, "select count(distinct value_json) from record_history"),
                     FLOW_VALUES);
    assert_int_equal(stored_rows(f), FLOW_VALUES);
}

/* Stopped while the broker streams to it, the bridge leaves acknowledgements
 * the broker has not read yet (Mosquitto reads one packet per loop), and
 * the broker sends those messages again when the bridge is back: each is
 * recognised (the connector's session file) and every value is recorded
 * exactly once. */
static void test_sigterm_mid_stream_records_each_value_once(void **state) {
    fixture *f = *state;
    /* Mosquitto keeps 1,000 messages for an absent client by default. */
    assert_int_equal(broker_stop(&f->b), 0);
    broker_write_conf(&f->b, "max_queued_messages 0\n");
    assert_true(broker_start(&f->b, NULL));
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    flow fl = {.port = f->b.port};
    pthread_t publisher;
    assert_int_equal(pthread_create(&publisher, NULL, publish_flow, &fl), 0);
    for (long long end = now_ms() + WAIT_MS; stored_rows(f) < 200 && now_ms() < end;)
        sleep_ms(20);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    pthread_join(publisher, NULL);
    assert_int_equal(fl.status, 0);
    stop_bridge_with_each_flow_value_once(f);
}

/* The broker restarts, its persistence keeping the bridge's session, while
 * the bridge (paused) holds in its socket messages it has not acknowledged:
 * it records them once it runs again, and the restarted broker sends them
 * again with DUP on the resumed session.  Each is recognised and skipped,
 * so every value is recorded exactly once.  Without the check the broker's
 * in-flight window (the bridge's Receive Maximum) would be stored twice. */
static void test_broker_restart_mid_stream_records_each_value_once(void **state) {
    fixture *f = *state;
    assert_int_equal(broker_stop(&f->b), 0);
    broker_write_conf(&f->b, "max_queued_messages 0\npersistence true\n"
                             "persistence_location @DIR@/\n");
    assert_true(broker_start(&f->b, NULL));
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    assert_int_equal(kill(f->bridge.pid, SIGSTOP), 0);
    flow fl = {.port = f->b.port};
    publish_flow(&fl); /* every value accepted by the broker: in flight or queued */
    assert_int_equal(fl.status, 0);
    assert_int_equal(broker_stop(&f->b), 0); /* saves the session */
    assert_true(broker_start(&f->b, NULL));
    assert_int_equal(kill(f->bridge.pid, SIGCONT), 0);
    stop_bridge_with_each_flow_value_once(f);
    assert_true(file_contains(f->bridge.log_path, "1 reconnect(s)"));
    assert_true(file_contains(f->bridge.log_path, "resent by the broker and skipped"));
    assert_false(file_contains(f->bridge.log_path, ", 0 resent by the broker"));
}

/* Published while the bridge is down: queued by the broker in the bridge's
 * persistent session, recorded once it is back -- and a retained message
 * it recorded before is not recorded again when it resubscribes. */
static void test_messages_while_down_are_recorded(void **state) {
    fixture *f = *state;
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    char port[16], out[256];
    snprintf(port, sizeof(port), "%d", f->b.port);
    char *retained[] = {"mosquitto_pub", "-p", port, "-q", "1", "-r", "-t",
                        "weather/kept/temperature", "-m", "7.5", NULL};
    assert_int_equal(run_tool(retained, out, sizeof(out), WAIT_MS), 0);
    for (long long end = now_ms() + WAIT_MS; stored_rows(f) < 1 && now_ms() < end;) sleep_ms(50);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    client *c = client_connect(f->b.port, "pub", MQTT_PROTOCOL_V5, NULL, NULL);
    publish_temps(c, "away", 100);
    client_disconnect(c);
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    for (long long end = now_ms() + WAIT_MS; stored_rows(f) < 101 && now_ms() < end;)
        sleep_ms(50);
    sleep_ms(300); /* a retained copy, if one came, would be committed by now */
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_int_equal(stored_rows(f), 101);
}

/* The aimdb CLI asks the bridge as it asks the plugin, given --topic. */
static void test_cli_against_bridge(void **state) {
    fixture *f = *state;
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    client *c = asker(f, MQTT_PROTOCOL_V5);
    publish_temps(c, "paris", 2);
    free(client_query_until(c, "{\"name\":\"temp::paris\",\"limit\":10}", 2, WAIT_MS));
    client_disconnect(c);
    char url[64], out[8192];
    snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", f->b.port);
    char *table[] = {AIMDB_CLI, "--broker", url, "--topic", REQUEST_TOPIC, "query", "temp::*",
                     "--limit", "10", NULL};
    assert_int_equal(run_tool(table, out, sizeof(out), WAIT_MS), 0);
    assert_non_null(strstr(out, "temp::paris"));
    assert_non_null(strstr(out, "1.5"));
    char *json[] = {AIMDB_CLI, "--broker", url, "--topic", REQUEST_TOPIC, "--json", "list", NULL};
    assert_int_equal(run_tool(json, out, sizeof(out), WAIT_MS), 0);
    assert_non_null(strstr(out, "\"record\":\"temp::paris\""));
    assert_non_null(strstr(out, "\"topic_filter\":\"weather/+/temperature\""));
    char *missing[] = {AIMDB_CLI, "--broker", url, "--topic", REQUEST_TOPIC, "get", "nope", NULL};
    assert_int_equal(run_tool(missing, out, sizeof(out), WAIT_MS), 1);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
}

static void test_broker_restart_while_running(void **state) {
    fixture *f = *state;
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    client *c = asker(f, MQTT_PROTOCOL_V5);
    publish_temps(c, "rome", 2);
    free(client_query_until(c, "{\"name\":\"temp::rome\",\"limit\":10}", 2, WAIT_MS));
    client_disconnect(c);

    assert_int_equal(broker_stop(&f->b), 0);
    assert_true(file_wait_for(f->bridge.log_path, "lost the connection", WAIT_MS));
    assert_true(file_wait_for(f->bridge.log_path, "Connection refused; retrying", WAIT_MS));
    assert_true(broker_start(&f->b, NULL));

    /* Resumed: subscriptions restored, requests answered, history kept. */
    c = asker(f, MQTT_PROTOCOL_V5);
    char *reply = NULL;
    for (long long end = now_ms() + WAIT_MS; !reply && now_ms() < end;)
        reply = client_request(c, "{\"id\":1,\"method\":\"record.list\"}", "test/reply", 500);
    assert_non_null(reply);
    free(reply);
    publish_temps(c, "rome", 5);
    reply = client_query_until(c, "{\"name\":\"temp::rome\",\"limit\":100}", 7, WAIT_MS);
    assert_int_equal(reply_count(reply), 7);
    free(reply);
    client_disconnect(c);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_true(file_contains(f->bridge.log_path, "1 reconnect(s)"));
}

static void test_sighup_reloads_and_keeps_a_bad_file_out(void **state) {
    fixture *f = *state;
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    write_bridge_conf(f, "record extra::{1} extra/+ persist\n");
    kill(f->bridge.pid, SIGHUP);
    assert_true(file_wait_for(f->bridge.log_path, "reloaded", WAIT_MS));
    client *c = asker(f, MQTT_PROTOCOL_V5);
    sleep_ms(200); /* the new subscription's SUBACK */
    client_publish(c, "extra/a", "42", 2, 1);
    char *reply = client_query_until(c, "{\"name\":\"extra::*\"}", 1, WAIT_MS);
    assert_int_equal(reply_count(reply), 1);
    free(reply);

    write_file(f->conf, "record broken\n");
    kill(f->bridge.pid, SIGHUP);
    assert_true(file_wait_for(f->bridge.log_path, "keeping the previous configuration", WAIT_MS));
    assert_true(file_contains(f->bridge.log_path, "bridge.conf:1:"));
    client_publish(c, "extra/b", "43", 2, 1);
    reply = client_query_until(c, "{\"name\":\"extra::*\",\"limit\":10}", 2, WAIT_MS);
    assert_int_equal(reply_count(reply), 2);
    free(reply);
    client_disconnect(c);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
}

static void expect_exit(fixture *f, const char *extra_arg, int status, const char *message) {
    start_bridge(f, extra_arg);
    int got = daemon_wait_exit(&f->bridge, WAIT_MS);
    if (got != status || !file_contains(f->bridge.log_path, message)) {
        file_dump(f->bridge.log_path);
        fail_msg("want exit %d and \"%s\", got %d", status, message, got);
    }
    remove(f->bridge.log_path);
}

static void test_startup_errors_are_explained(void **state) {
    fixture *f = *state;
    expect_exit(f, "--broker=mqtt://127.0.0.1:99999", 1, "bad port '99999'");
    expect_exit(f, "--broker=http://x", 1, "unknown scheme 'http'");
    assert_int_not_equal(access(f->b.db_path, F_OK), 0); /* no database left behind */
    expect_exit(f, "--request-topic=a/+/b", 1, "request_topic 'a/+/b'");
    /* a usage error is one line and a pointer to --help, as the other
     * programs say it, not the whole usage text */
    start_bridge(f, "--bogus");
    assert_int_equal(daemon_wait_exit(&f->bridge, WAIT_MS), 2);
    assert_true(file_contains(f->bridge.log_path, "aimdb-bridge: unknown option '--bogus'"));
    assert_true(file_contains(f->bridge.log_path, "Try 'aimdb-bridge --help'."));
    assert_false(file_contains(f->bridge.log_path, "usage: aimdb-bridge"));
    remove(f->bridge.log_path);
    expect_exit(f, "--help", 0, "usage: aimdb-bridge");
    expect_exit(f, "--version", 0, "aimdb-bridge " AIMDB_VERSION);
    write_file(f->conf, "broker mqtt://127.0.0.1:1\nrecord x::{1} a/+ persist retention=3x\n");
    expect_exit(f, NULL, 1, "bridge.conf:2:");
    write_file(f->conf, "max_payload 0\n");
    expect_exit(f, NULL, 1, "bridge.conf:1:");
    write_file(f->conf, "\nmax_memory 100k\n");
    expect_exit(f, NULL, 1, "bridge.conf:2: bad max_memory '100k' (bytes, or a number with k, M "
                            "or G; at least 1M, at most 1024G)");
}

/* aimdb-bridge reads max_memory from the same aimdb.conf: 24 payloads of
 * 128 KiB are twice what 2M leaves buffers and relay, so old live values
 * give way (logged), while history gets every one. */
static void test_max_memory_bounds_the_bridge(void **state) {
    fixture *f = *state;
    write_bridge_conf(f, "max_memory 2M\nflush_interval 10ms\n"
                         "record blob::{1} blobs/+ persist format=binary\n");
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    client *c = client_connect(f->b.port, "blobs", MQTT_PROTOCOL_V311, NULL, NULL);
    assert_non_null(c);
    enum { BYTES = 128 * 1024, BLOBS = 24 };
    char *blob = malloc(BYTES);
    assert_non_null(blob);
    for (int i = 0; i < BLOBS; i++) {
        memset(blob, 'a' + i, BYTES);
        client_publish(c, i % 2 ? "blobs/b" : "blobs/a", blob, BYTES, 1);
        /* in steps: a starved relay refusing values is not the point here */
        for (long long end = now_ms() + WAIT_MS; i % 4 == 3 && stored_rows(f) < i + 1 &&
                                                 now_ms() < end;)
            sleep_ms(20);
    }
    free(blob);
    client_disconnect(c);
    for (long long end = now_ms() + WAIT_MS; stored_rows(f) < BLOBS && now_ms() < end;)
        sleep_ms(20);
    assert_int_equal(stored_rows(f), BLOBS);
    assert_true(file_wait_for(f->bridge.log_path, "max_memory: live values hold", WAIT_MS));
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_int_equal(stored_rows(f), BLOBS);
}

/* The same core/gateway open path as the plugin's: the file is moved aside
 * byte for byte, a new history started, the bridge runs. */
static void test_damaged_database_is_moved_aside(void **state) {
    fixture *f = *state;
    char data[HARNESS_PATH_MAX + 8], original[HARNESS_PATH_MAX + 16];
    snprintf(data, sizeof(data), "%s/data", f->b.dir);
    snprintf(original, sizeof(original), "%s/original", f->b.dir);
    assert_int_equal(mkdir(data, 0750), 0);
    write_file(original, "not a database: the bridge must not refuse to start on it\n");
    copy_file(original, f->b.db_path);
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    assert_true(file_contains(f->bridge.log_path, "moved it aside to"));
    char aside[HARNESS_PATH_MAX * 2];
    assert_true(file_find(data, "aimdb.db.corrupt-", "Z", aside, sizeof(aside)));
    assert_true(files_equal(aside, original));
    client *c = asker(f, MQTT_PROTOCOL_V5);
    publish_temps(c, "oslo", 3);
    char *reply = client_query_until(c, "{\"name\":\"temp::oslo\",\"limit\":10}", 3, WAIT_MS);
    assert_int_equal(reply_count(reply), 3);
    free(reply);
    client_disconnect(c);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_int_equal(stored_rows(f), 3);
}

/* The summary at SIGTERM counts the requests answered, error replies
 * included. */
static void test_sigterm_summary_counts_requests(void **state) {
    fixture *f = *state;
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    client *c = asker(f, MQTT_PROTOCOL_V5);
    char *reply = client_request(c, "{\"id\":1,\"method\":\"record.list\"}", "test/reply", WAIT_MS);
    assert_non_null(reply);
    free(reply);
    reply = client_request(c, "{\"id\":2,\"method\":\"no.such\"}", "test/reply", WAIT_MS);
    assert_non_null(strstr(reply, "\"error\""));
    free(reply);
    client_disconnect(c);
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
    assert_true(file_contains(f->bridge.log_path, "; 2 request(s) answered; 0 reconnect(s)"));
}

/* Without database in aimdb.conf or -d, the history is named after the
 * client id (never the plugin's ./data/aimdb.db); and a second bridge on a
 * database the first one writes is refused at start, naming the first. */
static void test_default_database_and_one_writer(void **state) {
    fixture *f = *state;
    write_conf_with(f, NULL, NULL);
    start_bridge(f, NULL);
    wait_bridge_connected(f);
    assert_true(file_contains(f->bridge.log_path, "history in ./data/bridge-test.db"));
    char path[HARNESS_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/data/bridge-test.db", f->b.dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/data/aimdb.db", f->b.dir);
    assert_int_not_equal(access(path, F_OK), 0);

    /* the same file, named from another directory */
    char second_dir[HARNESS_PATH_MAX + 16], db[HARNESS_PATH_MAX + 32], want[64];
    snprintf(second_dir, sizeof(second_dir), "%s/second", f->b.dir);
    assert_int_equal(mkdir(second_dir, 0750), 0);
    snprintf(db, sizeof(db), "--database=%s/data/bridge-test.db", f->b.dir);
    daemon_proc second;
    start_bridge_in(f, &second, second_dir, db);
    int status = daemon_wait_exit(&second, WAIT_MS);
    snprintf(want, sizeof(want), "in use by process %ld", (long)f->bridge.pid);
    if (status != 1 || !file_contains(second.log_path, want)) {
        file_dump(second.log_path);
        fail_msg("want exit 1 and \"%s\", got %d", want, status);
    }
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
}

/* Nothing listens at the broker's address: the bridge stays up, says why
 * it cannot connect and still stops cleanly. */
static void test_unreachable_broker_keeps_retrying(void **state) {
    fixture *f = *state;
    assert_int_equal(broker_stop(&f->b), 0);
    start_bridge(f, NULL);
    assert_true(file_wait_for(f->bridge.log_path, "Connection refused; retrying in", WAIT_MS));
    assert_int_equal(daemon_stop(&f->bridge, SIGTERM), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_query_both_protocols_and_sigterm, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_mid_stream_records_each_value_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart_mid_stream_records_each_value_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_while_down_are_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_against_bridge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sighup_reloads_and_keeps_a_bad_file_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_max_memory_bounds_the_bridge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_errors_are_explained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_broker_keeps_retrying, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_database_is_moved_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_summary_counts_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_database_and_one_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
