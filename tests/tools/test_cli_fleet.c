/*
 * test_cli_fleet.c -- the `aimdb` CLI on a central node: a real Mosquitto
 * with the plugin keeping history in a real PostgreSQL server (`database
 * postgresql://`, gateway site-b, its own rows) and a second real broker
 * shipping its SQLite rows there through its uplink (gateway site-a).
 * `query --gateway PATTERN` picks gateways the way docs/protocol.md's
 * patterns say, raw values and aggregates; the table gets a GATEWAY
 * column, --json passes the server's "gateway" members through; a SQLite
 * node refuses the parameter.  Skipped without a PostgreSQL server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "harness.h"
#include "pg_server.h"
#include "tools_run.h"

#define RUN_MS 15000
#define WAIT_MS 30000

static pg_server server;
static broker site_a, central; /* central stores its own rows as site-b */
static char central_url[64];
static tool_result r; /* large: one at a time */

/* aimdb --broker URL ARGS... */
static int cli_on(const char *url, const char *a0, ...) {
    va_list ap;
    va_start(ap, a0);
    int st = tool_run_on(AIMDB_CLI, url, RUN_MS, &r, a0, ap);
    va_end(ap);
    return st;
}

static void start_node(broker *b, const char *settings) {
    broker_init(b);
    char text[1024];
    snprintf(text, sizeof(text), "%s\nrecord temp::{1} sensors/+/temperature persist\n", settings);
    broker_write_aimdb(b, text);
    broker_write_conf(b, NULL);
    if (!broker_start(b, NULL)) {
        broker_log_dump(b);
        fail_msg("broker did not start");
    }
}

/* mosquitto_pub of each value, QoS 1: stored in this order. */
static void publish(const broker *b, const char *topic, const char *const *values) {
    char port[16];
    snprintf(port, sizeof(port), "%d", b->port);
    for (; *values; values++) {
        char out[256];
        char *argv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t",
                        (char *)topic, "-m", (char *)*values, NULL};
        assert_int_equal(run_tool(argv, out, sizeof(out), 10000), 0);
    }
}

static void wait_rows(const char *gateway, int64_t rows) {
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM record_history WHERE gateway = '%s'", gateway);
    int64_t got = pg_wait_int(&server, sql, rows, WAIT_MS);
    if (got != rows) fail_msg("gateway %s: %lld rows in PostgreSQL, want %lld", gateway,
                              (long long)got, (long long)rows);
}

static int start_fleet(void **state) {
    (void)state;
    pg_server_start_if_installed(&server);
    if (!server.running) return 0;
    char settings[512];
    snprintf(settings, sizeof(settings), "database %s\ngateway site-b", server.uri);
    start_node(&central, settings);
    snprintf(settings, sizeof(settings), "database @DIR@/data/aimdb.db\nuplink %s\ngateway site-a",
             server.uri);
    start_node(&site_a, settings);
    tool_broker_url(central.port, central_url, sizeof(central_url));
    publish(&site_a, "sensors/kitchen/temperature", (const char *const[]){"1", "2", "3", NULL});
    publish(&central, "sensors/kitchen/temperature", (const char *const[]){"10", "11", NULL});
    publish(&central, "sensors/hall/temperature", (const char *const[]){"20", NULL});
    wait_rows("site-a", 3);
    wait_rows("site-b", 3);
    return 0;
}

static int stop_fleet(void **state) {
    (void)state;
    int rc = 0;
    if (server.running) {
        rc |= broker_stop(&site_a) | broker_stop(&central);
        broker_cleanup(&site_a);
        broker_cleanup(&central);
    }
    pg_server_cleanup(&server);
    return rc;
}

static int need_server(void **state) {
    (void)state;
    if (!server.running) skip();
    return 0;
}

/* ------------------------------------------------------------ helpers */

static int line_count(const char *text) {
    int n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n;
}

/* Line i (0-based) of r.out as its whitespace-separated fields, joined by
 * single blanks with the TIME column (the one holding a 'T' between
 * digits) left out: "temp::kitchen site-a 3". */
static const char *row(int i) {
    static char joined[512];
    const char *p = r.out;
    while (i-- > 0 && p && (p = strchr(p, '\n'))) p++;
    assert_non_null(p);
    joined[0] = '\0';
    while (*p && *p != '\n') {
        while (*p == ' ') p++;
        size_t len = strcspn(p, " \n");
        if (len == 0) break;
        bool is_time = len > 11 && p[10] == 'T' && p[4] == '-';
        if (!is_time) {
            size_t at = strlen(joined);
            snprintf(joined + at, sizeof(joined) - at, "%s%.*s", at ? " " : "", (int)len, p);
        }
        p += len;
    }
    return joined;
}

/* -------------------------------------------------------------- tests */

/* Without --gateway: every gateway's latest, by record then gateway. */
static void test_every_gateway(void **state) {
    (void)state;
    assert_int_equal(cli_on(central_url, "query", "temp::*", NULL), 0);
    assert_int_equal(line_count(r.out), 4);
    assert_string_equal(row(0), "RECORD GATEWAY TIME VALUE");
    assert_string_equal(row(1), "temp::hall site-b 20");
    assert_string_equal(row(2), "temp::kitchen site-a 3");
    assert_string_equal(row(3), "temp::kitchen site-b 11");
    assert_string_equal(r.err, "");
}

/* Patterns: '*' any run, every other character literal ('?' too). */
static void test_gateway_patterns(void **state) {
    (void)state;
    assert_int_equal(cli_on(central_url, "query", "temp::*", "--gateway", "*-a", NULL), 0);
    assert_int_equal(line_count(r.out), 2);
    assert_string_equal(row(1), "temp::kitchen site-a 3");

    assert_int_equal(cli_on(central_url, "query", "--gateway", "site-b", "--limit", "10", NULL), 0);
    assert_int_equal(line_count(r.out), 4);
    assert_string_equal(row(1), "temp::hall site-b 20");
    assert_string_equal(row(2), "temp::kitchen site-b 11");
    assert_string_equal(row(3), "temp::kitchen site-b 10");

    assert_int_equal(cli_on(central_url, "query", "temp::kitchen", "--gateway", "site-*",
                            "--start", "0", NULL), 0);
    assert_int_equal(line_count(r.out), 6);
    assert_string_equal(row(1), "temp::kitchen site-a 3");
    assert_string_equal(row(3), "temp::kitchen site-a 1");
    assert_string_equal(row(5), "temp::kitchen site-b 10");

    assert_int_equal(cli_on(central_url, "query", "temp::*", "--gateway", "site?b", NULL), 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "aimdb: no stored values match 'temp::*' on gateways 'site?b'\n");
}

/* Aggregates: a bucket per record and gateway, GATEWAY before TIME. */
static void test_gateway_aggregates(void **state) {
    (void)state;
    assert_int_equal(cli_on(central_url, "query", "temp::kitchen", "--gateway", "site-*", "--every",
                            "3650d", "--agg", "count,max", NULL), 0);
    assert_int_equal(line_count(r.out), 3);
    assert_string_equal(row(0), "RECORD GATEWAY TIME count max");
    assert_string_equal(row(1), "temp::kitchen site-a 3 3");
    assert_string_equal(row(2), "temp::kitchen site-b 2 11");
}

/* --json is the server's text: each value names its gateway. */
static void test_gateway_json(void **state) {
    (void)state;
    assert_int_equal(cli_on(central_url, "query", "temp::kitchen", "--gateway", "site-a", "--json",
                            NULL), 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    cJSON *values = cJSON_GetObjectItem(j, "values");
    assert_int_equal(cJSON_GetArraySize(values), 1);
    cJSON *v = cJSON_GetArrayItem(values, 0);
    assert_string_equal(cJSON_GetObjectItem(v, "gateway")->valuestring, "site-a");
    assert_int_equal(cJSON_GetObjectItem(v, "value")->valueint, 3);
    cJSON_Delete(j);
    assert_non_null(strstr(r.out, "{\"record\":\"temp::kitchen\",\"gateway\":\"site-a\",\"value\":3,"));
}

/* A gateway's own SQLite history has no gateways: the server's refusal
 * is printed, exit 1; without --gateway there is no GATEWAY column. */
static void test_sqlite_node(void **state) {
    (void)state;
    char url[64];
    tool_broker_url(site_a.port, url, sizeof(url));
    assert_int_equal(cli_on(url, "query", "--gateway", "site-a", NULL), 1);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "aimdb: invalid_params: params.gateway is for fleet history"));
    assert_int_equal(cli_on(url, "query", "temp::*", NULL), 0);
    assert_string_equal(row(0), "RECORD TIME VALUE");
    assert_string_equal(row(1), "temp::kitchen 3");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_gateway, need_server),
        cmocka_unit_test_setup(test_gateway_patterns, need_server),
        cmocka_unit_test_setup(test_gateway_aggregates, need_server),
        cmocka_unit_test_setup(test_gateway_json, need_server),
        cmocka_unit_test_setup(test_sqlite_node, need_server),
    };
    return cmocka_run_group_tests(tests, start_fleet, stop_fleet);
}
