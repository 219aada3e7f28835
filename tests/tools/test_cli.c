/*
 * test_cli.c -- the `aimdb` CLI against a real Mosquitto with the plugin,
 * its history seeded by the real aimdb-mcu-sim: query (table and --json,
 * default latest, --limit, --since, --start/--end), list, get, error
 * replies, no reply, unreachable and refusing brokers, bad URLs, usage
 * errors, and v5 reply matching by Correlation Data (a stand-in responder
 * sends decoys first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "aimdb/version.h"
#include "client.h"
#include "harness.h"
#include "tools_run.h"

#define RUN_MS 15000

static broker b;
static char url[64];
static tool_result r; /* large: one at a time */

/* ------------------------------------------------------------ helpers */

/* aimdb --broker URL ARGS... */
static int cli(const char *a0, ...) {
    va_list ap;
    va_start(ap, a0);
    int st = tool_run_on(AIMDB_CLI, url, RUN_MS, &r, a0, ap);
    va_end(ap);
    return st;
}

static cJSON *out_json(void) {
    cJSON *j = cJSON_Parse(r.out);
    if (!j) fprintf(stderr, "stdout is not JSON: %s\n", r.out);
    assert_non_null(j);
    return j;
}

static const char *str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static int line_count(const char *text) {
    int n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n;
}

/* Line i (0-based) of text split into whitespace-separated fields. */
static int fields_of_line(const char *text, int i, char fields[][128], int max) {
    const char *p = text;
    while (i-- > 0 && (p = strchr(p, '\n'))) p++;
    assert_non_null(p);
    int n = 0;
    while (*p && *p != '\n' && n < max) {
        while (*p == ' ') p++;
        size_t len = strcspn(p, " \n");
        if (len == 0) break;
        snprintf(fields[n++], 128, "%.*s", (int)len, p);
        p += len;
    }
    return n;
}

/* ------------------------------------------------------------ fixture */

static int seed_history(void) {
    const char *args[] = {"--broker", url, "--cities", "vienna,graz", "--burst", "4", "--count", "24",
                          "--rate", "0", "--seed", "7", NULL};
    if (tool_run(AIMDB_SIM, args, RUN_MS, &r) != 0 || !strstr(r.out, "sent 24, failed 0")) {
        fprintf(stderr, "simulator: %s%s", r.out, r.err);
        return -1;
    }
    client *c = client_connect(b.port, "seed", MQTT_PROTOCOL_V5, NULL, NULL);
    if (!c) return -1;
    client_publish(c, "gateway/state", "online", 6, 1);
    /* history commits in batches: wait until every row is there */
    char *reply = client_query_until(c, "{\"name\":\"*\",\"limit\":100}", 24, 10000);
    int count = reply_count(reply);
    free(reply);
    client_disconnect(c);
    return count == 24 ? 0 : -1;
}

static int start_broker(void **state) {
    (void)state;
    if (!broker_start_weather(&b)) return -1;
    tool_broker_url(b.port, url, sizeof(url));
    return seed_history();
}

static int stop_broker(void **state) {
    (void)state;
    return broker_stop_and_clean(&b);
}

/* -------------------------------------------------------------- query */

static void check_time_field(const char *field, double stored_at) {
    /* TZ=UTC: the field is stored_at exactly, in ISO-8601 with +00:00 */
    time_t secs = (time_t)(stored_at / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char want[64], date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(want, sizeof(want), "%s.%03d+00:00", date, (int)((long long)stored_at % 1000));
    assert_string_equal(field, want);
}

/* The table shows exactly the rows of --json, in the same order. */
static void test_query_table_matches_json(void **state) {
    (void)state;
    assert_int_equal(cli("query", "accuracy::*", "--limit", "100", "--json", NULL), 0);
    cJSON *j = out_json();
    assert_int_equal(cJSON_GetObjectItem(j, "count")->valueint, 8);
    cJSON *values = cJSON_GetObjectItem(j, "values");
    assert_string_equal(str(cJSON_GetArrayItem(values, 0), "record"), "accuracy::graz");
    assert_string_equal(str(cJSON_GetArrayItem(values, 7), "record"), "accuracy::vienna");

    setenv("TZ", "UTC", 1);
    int st = cli("query", "accuracy::*", "--limit", "100", NULL);
    unsetenv("TZ");
    assert_int_equal(st, 0);
    assert_int_equal(line_count(r.out), 9);
    char f[4][128];
    assert_int_equal(fields_of_line(r.out, 0, f, 4), 3);
    assert_string_equal(f[0], "RECORD");
    assert_string_equal(f[1], "TIME");
    assert_string_equal(f[2], "VALUE");
    int i = 1;
    const cJSON *v;
    cJSON_ArrayForEach(v, values) {
        assert_int_equal(fields_of_line(r.out, i++, f, 4), 3);
        assert_string_equal(f[0], str(v, "record"));
        check_time_field(f[1], cJSON_GetObjectItem(v, "stored_at")->valuedouble);
        char *value = cJSON_PrintUnformatted(cJSON_GetObjectItem(v, "value"));
        assert_string_equal(f[2], value);
        double pct = cJSON_GetObjectItem(v, "value")->valuedouble;
        assert_true(pct >= 0 && pct <= 100);
        free(value);
    }
    cJSON_Delete(j);
}

/* Local time carries its offset, half hours included. */
static void test_query_time_zone_offset(void **state) {
    (void)state;
    setenv("TZ", "IST-5:30", 1);
    int st = cli("query", "accuracy::graz", NULL);
    unsetenv("TZ");
    assert_int_equal(st, 0);
    char f[4][128];
    assert_int_equal(fields_of_line(r.out, 1, f, 4), 3);
    assert_int_equal(strlen(f[1]), 29);
    assert_string_equal(f[1] + 23, "+05:30");
}

/* No pattern: the latest value of every persisted record. */
static void test_query_default_latest(void **state) {
    (void)state;
    assert_int_equal(cli("query", "--json", NULL), 0);
    cJSON *j = out_json();
    assert_int_equal(cJSON_GetObjectItem(j, "count")->valueint, 6); /* 3 kinds x 2 cities */
    cJSON_Delete(j);
}

static void test_query_limit(void **state) {
    (void)state;
    assert_int_equal(cli("query", "temp::*", "--limit", "2", "--json", NULL), 0);
    cJSON *j = out_json();
    cJSON *values = cJSON_GetObjectItem(j, "values");
    assert_int_equal(cJSON_GetArraySize(values), 4);
    double first = cJSON_GetObjectItem(cJSON_GetArrayItem(values, 0), "stored_at")->valuedouble;
    double second = cJSON_GetObjectItem(cJSON_GetArrayItem(values, 1), "stored_at")->valuedouble;
    assert_true(first >= second); /* newest first */
    cJSON_Delete(j);
}

/* --since: every row in the range (no implicit limit); a range with no
 * rows is an empty answer, not an error. */
static void test_query_since_and_range(void **state) {
    (void)state;
    assert_int_equal(cli("query", "forecast::*", "--since", "1h", "--json", NULL), 0);
    cJSON *j = out_json();
    assert_int_equal(cJSON_GetObjectItem(j, "count")->valueint, 8);
    double newest = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "values"), 0),
                                        "stored_at")->valuedouble;
    cJSON_Delete(j);

    char start[32];
    snprintf(start, sizeof(start), "%.0f", newest);
    assert_int_equal(cli("query", "forecast::graz", "--start", start, "--json", NULL), 0);
    j = out_json();
    assert_int_equal(cJSON_GetObjectItem(j, "count")->valueint, 1);
    cJSON_Delete(j);

    assert_int_equal(cli("query", "forecast::*", "--start", "0", "--end", "1", NULL), 0);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "no stored values match 'forecast::*' in that time range"));
}

/* --every: buckets whose counts add up to the raw values of the same range,
 * and whose min and max are theirs; the table has a column per aggregate. */
static void test_query_aggregates(void **state) {
    (void)state;
    assert_int_equal(cli("query", "accuracy::*", "--since", "7d", "--json", NULL), 0);
    cJSON *raw = out_json();
    double raw_count = 0, raw_min = 1e300, raw_max = -1e300;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(raw, "values")) {
        double x = cJSON_GetObjectItem(v, "value")->valuedouble;
        raw_count++;
        if (x < raw_min) raw_min = x;
        if (x > raw_max) raw_max = x;
    }
    cJSON_Delete(raw);
    assert_true(raw_count >= 8);

    assert_int_equal(cli("query", "accuracy::*", "--since", "7d", "--every", "1h", "--agg",
                         "count,min,max", "--json", NULL),
                     0);
    cJSON *agg = out_json();
    assert_int_equal(cJSON_GetObjectItem(agg, "skipped")->valueint, 0);
    double count = 0, min = 1e300, max = -1e300;
    int buckets = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(agg, "values")) {
        const cJSON *value = cJSON_GetObjectItem(v, "value");
        assert_int_equal((int64_t)cJSON_GetObjectItem(v, "stored_at")->valuedouble % 3600000, 0);
        count += cJSON_GetObjectItem(value, "count")->valuedouble;
        if (cJSON_GetObjectItem(value, "min")->valuedouble < min)
            min = cJSON_GetObjectItem(value, "min")->valuedouble;
        if (cJSON_GetObjectItem(value, "max")->valuedouble > max)
            max = cJSON_GetObjectItem(value, "max")->valuedouble;
        buckets++;
    }
    cJSON_Delete(agg);
    assert_true(count == raw_count);
    assert_true(min == raw_min && max == raw_max);

    assert_int_equal(cli("query", "accuracy::*", "--since", "7d", "--every", "1h", "--agg",
                         "avg,min,max", NULL),
                     0);
    assert_int_equal(line_count(r.out), 1 + buckets);
    char f[8][128];
    assert_int_equal(fields_of_line(r.out, 0, f, 8), 5);
    assert_string_equal(f[2], "avg");
    assert_string_equal(f[4], "max");
    assert_int_equal(fields_of_line(r.out, 1, f, 8), 5);
    assert_true(atof(f[3]) <= atof(f[2]) && atof(f[2]) <= atof(f[4]));
}

/* ---------------------------------------------------------- list, get */

static void test_list(void **state) {
    (void)state;
    assert_int_equal(cli("list", NULL), 0);
    char f[5][128];
    bool seen_accuracy = false, seen_gateway = false;
    for (int i = 1; i < line_count(r.out); i++) {
        assert_int_equal(fields_of_line(r.out, i, f, 5), 4);
        if (strcmp(f[0], "accuracy::vienna") == 0) {
            seen_accuracy = true;
            assert_string_equal(f[1], "ring:500");
            assert_string_equal(f[2], "true");
            assert_string_equal(f[3], "weather/+/accuracy");
        } else if (strcmp(f[0], "gateway::state") == 0) {
            seen_gateway = true;
            assert_string_equal(f[1], "latest");
            assert_string_equal(f[2], "false");
        }
    }
    assert_true(seen_accuracy && seen_gateway);

    assert_int_equal(cli("list", "temp::*", "--json", NULL), 0);
    cJSON *j = out_json();
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_string_equal(str(cJSON_GetArrayItem(j, 0), "record"), "temp::graz");
    assert_string_equal(str(cJSON_GetArrayItem(j, 0), "topic_filter"), "weather/+/temperature");
    cJSON_Delete(j);
}

static void test_get(void **state) {
    (void)state;
    assert_int_equal(cli("get", "gateway::state", NULL), 0);
    assert_string_equal(r.out, "online\n");
    assert_int_equal(cli("get", "gateway::state", "--json", NULL), 0);
    assert_string_equal(r.out, "\"online\"\n");

    /* the live value is the newest one in history */
    assert_int_equal(cli("query", "accuracy::vienna", "--json", NULL), 0);
    cJSON *j = out_json();
    char *latest = cJSON_PrintUnformatted(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "values"), 0), "value"));
    cJSON_Delete(j);
    assert_int_equal(cli("get", "accuracy::vienna", NULL), 0);
    char want[64];
    snprintf(want, sizeof(want), "%s\n", latest);
    assert_string_equal(r.out, want);
    free(latest);
}

/* ---------------------------------------------------------- failures */

static void test_error_replies(void **state) {
    (void)state;
    assert_int_equal(cli("get", "nope::x", NULL), 1);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "aimdb: not_found: "));
    assert_non_null(strstr(r.err, "nope::x"));

    assert_int_equal(cli("query", "--limit", "4000000000", NULL), 1); /* over max_limit */
    assert_non_null(strstr(r.err, "aimdb: invalid_params: params.limit"));
}

static void test_no_reply(void **state) {
    (void)state;
    assert_int_equal(cli("--topic", "aimdb/nobody/home", "--timeout", "500ms", "list", NULL), 1);
    assert_true(r.elapsed_ms < 5000);
    char want[256];
    snprintf(want, sizeof(want),
             "aimdb: no reply from %s on aimdb/nobody/home within 500 ms (is the aimdb plugin loaded?)\n",
             url);
    assert_string_equal(r.err, want);
}

static void test_unreachable(void **state) {
    (void)state;
    char nowhere[64];
    tool_broker_url(free_port(), nowhere, sizeof(nowhere));
    const char *args[] = {"--broker", nowhere, "list", NULL};
    assert_int_equal(tool_run(AIMDB_CLI, args, RUN_MS, &r), 1);
    assert_true(r.elapsed_ms < 3000);
    char want[256];
    snprintf(want, sizeof(want), "aimdb: cannot connect to %s: Connection refused\n", nowhere);
    assert_string_equal(r.err, want);
}

/* A broker that refuses the client says so, apart from one that is down. */
static void test_refused(void **state) {
    (void)state;
    broker strict;
    broker_init(&strict);
    strict.without_plugin = true;
    broker_write_conf(&strict, "allow_anonymous false\n");
    assert_true(broker_start(&strict, NULL));
    char strict_url[64];
    tool_broker_url(strict.port, strict_url, sizeof(strict_url));
    const char *args[] = {"--broker", strict_url, "--user", "someone", "--password", "x", "list", NULL};
    int st = tool_run(AIMDB_CLI, args, RUN_MS, &r);
    broker_stop(&strict);
    broker_cleanup(&strict);
    assert_int_equal(st, 1);
    assert_non_null(strstr(r.err, "refused by the broker: Not authorized"));
}

static void test_bad_urls(void **state) {
    (void)state;
    static const char *const bad[] = {"http://localhost", "localhost:1883", "mqtt://", "mqtt://h:0",
                                      "mqtt://h:65536", "mqtt://user:pw@h", "mqtt://h/path"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *args[] = {"--broker", bad[i], "list", NULL};
        assert_int_equal(tool_run(AIMDB_CLI, args, RUN_MS, &r), 2);
        assert_non_null(strstr(r.err, "bad broker URL"));
    }
    const char *tls[] = {"--broker", "mqtts://localhost", "--cafile", "/nonexistent/ca.pem", "list", NULL};
    assert_int_equal(tool_run(AIMDB_CLI, tls, RUN_MS, &r), 2);
    assert_non_null(strstr(r.err, "--cafile /nonexistent/ca.pem: cannot read the file"));
}

static void test_help(void **state) {
    (void)state;
    const char *args[] = {"--help", NULL};
    assert_int_equal(tool_run(AIMDB_CLI, args, RUN_MS, &r), 0);
    assert_non_null(strstr(r.out, "Usage: aimdb"));
    assert_non_null(strstr(r.out, "--timeout D        wait at most D to connect and for each answer"));
    assert_string_equal(r.err, "");
}

/* The project's one version string, on stdout, exit 0, before anything
 * else is looked at. */
static void test_version(void **state) {
    (void)state;
    const char *args[] = {"--version", "no-such-command", NULL};
    assert_int_equal(tool_run(AIMDB_CLI, args, RUN_MS, &r), 0);
    assert_string_equal(r.out, "aimdb " AIMDB_VERSION "\n");
    assert_string_equal(r.err, "");
}

/* Every bad command line is exit 2 with the problem named, before any
 * connection (the broker URL points nowhere). */
static void test_usage_errors(void **state) {
    (void)state;
    static const struct {
        const char *args[6];
        const char *says;
    } cases[] = {
        {{NULL}, "no command"},
        {{"drop", NULL}, "unknown command 'drop'"},
        {{"get", NULL}, "get: which record?"},
        {{"get", "a", "b", NULL}, "unexpected 'b'"},
        {{"query", "", NULL}, "the pattern is empty"},
        {{"query", "--limit", "0", NULL}, "--limit '0'"},
        {{"query", "--limit", "ten", NULL}, "--limit 'ten'"},
        {{"list", "--limit", "3", NULL}, "--limit applies to query only"},
        {{"query", "--since", "yesterday", NULL}, "--since 'yesterday'"},
        {{"query", "--since", "2h", "--start", "1", NULL}, "--since or --start/--end, not both"},
        {{"query", "--start", "5", "--end", "1", NULL}, "--start is after --end"},
        {{"query", "--start", "-5", NULL}, "--start '-5'"},
        {{"query", "--every", "soon", NULL}, "--every 'soon'"},
        {{"query", "--every", "1h", "--agg", "median", NULL}, "--agg 'median'"},
        {{"query", "--every", "1h", "--agg", "avg,avg", NULL}, "--agg 'avg,avg'"},
        {{"query", "--every", "1h", "--field", "a..b", NULL}, "--field 'a..b'"},
        {{"query", "--agg", "avg", NULL}, "--agg needs --every"},
        {{"query", "--field", "x", NULL}, "--field needs --every"},
        {{"list", "--every", "1h", NULL}, "--every applies to query only"},
        {{"query", "--gateway", "", NULL}, "--gateway '': give a pattern of gateway names"},
        {{"get", "x", "--gateway", "site-*", NULL}, "--gateway applies to query only"},
        {{"list", "--timeout", "0", NULL}, "--timeout '0'"},
        {{"list", "--topic", "a/#", NULL}, "--topic 'a/#'"},
        {{"list", "--bogus", NULL}, "unknown option '--bogus'"},
        {{"list", "--topic", NULL}, "--topic needs a value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[10] = {"--broker", "mqtt://127.0.0.1:1"};
        for (size_t k = 0; cases[i].args[k]; k++) args[2 + k] = cases[i].args[k];
        int st = tool_run(AIMDB_CLI, args, RUN_MS, &r);
        if (st != 2 || !strstr(r.err, cases[i].says) || !strstr(r.err, "Try 'aimdb --help'"))
            fprintf(stderr, "case %zu: exit %d, stderr: %s", i, st, r.err);
        assert_int_equal(st, 2);
        assert_non_null(strstr(r.err, cases[i].says));
        assert_string_equal(r.out, "");
    }
}

/* --------------------------------------------------- v5 correlation */

/* A stand-in server on a private topic: for each request it first sends
 * two decoys to the Response Topic (wrong Correlation Data, none), then
 * the real reply.  The CLI must print only the real one. */
typedef struct responder {
    char request[1024];
    char response_topic[256];
    int requests;
} responder;

static void send_reply(struct mosquitto *m, const char *topic, const void *corr, uint16_t corr_len,
                       const char *payload) {
    mosquitto_property *props = NULL;
    if (corr) mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr, corr_len);
    mosquitto_publish_v5(m, NULL, topic, (int)strlen(payload), payload, 1, false, props);
    mosquitto_property_free_all(&props);
}

static void on_request(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props) {
    responder *rs = obj;
    char *topic = NULL;
    void *corr = NULL;
    uint16_t corr_len = 0;
    mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &topic, false);
    mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false);
    snprintf(rs->request, sizeof(rs->request), "%.*s", msg->payloadlen, (const char *)msg->payload);
    snprintf(rs->response_topic, sizeof(rs->response_topic), "%s", topic ? topic : "");
    if (topic && corr) {
        send_reply(m, topic, "not-yours", 9, "{\"id\":1,\"result\":\"decoy\"}");
        send_reply(m, topic, NULL, 0, "{\"id\":1,\"result\":\"decoy\"}");
        cJSON *req = cJSON_Parse(rs->request);
        char reply[128];
        snprintf(reply, sizeof(reply), "{\"id\":%d,\"result\":\"real\"}",
                 cJSON_GetObjectItem(req, "id")->valueint);
        cJSON_Delete(req);
        send_reply(m, topic, corr, corr_len, reply);
    }
    free(topic);
    free(corr);
    rs->requests++;
}

static void test_reply_correlation(void **state) {
    (void)state;
    responder rs = {0};
    struct mosquitto *m = mosquitto_new("responder", true, &rs);
    assert_non_null(m);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_message_v5_callback_set(m, on_request);
    assert_int_equal(mosquitto_connect(m, "127.0.0.1", b.port, 30), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_subscribe(m, NULL, "test/rpc", 1), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(m), MOSQ_ERR_SUCCESS);
    sleep_ms(200); /* the SUBACK */

    int st = cli("--topic", "test/rpc", "get", "anything", "--json", NULL);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    assert_int_equal(st, 0);
    assert_string_equal(r.out, "\"real\"\n");
    assert_int_equal(rs.requests, 1);
    assert_non_null(strstr(rs.response_topic, "aimdb/cli/"));
    cJSON *req = cJSON_Parse(rs.request);
    assert_non_null(req);
    assert_string_equal(str(req, "method"), "record.get");
    assert_string_equal(str(cJSON_GetObjectItem(req, "params"), "record"), "anything");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(req, "id")));
    cJSON_Delete(req);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_table_matches_json),
        cmocka_unit_test(test_query_time_zone_offset),
        cmocka_unit_test(test_query_default_latest),
        cmocka_unit_test(test_query_limit),
        cmocka_unit_test(test_query_aggregates),
        cmocka_unit_test(test_query_since_and_range),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_error_replies),
        cmocka_unit_test(test_no_reply),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_reply_correlation),
    };
    mosquitto_lib_init();
    int failed = cmocka_run_group_tests(tests, start_broker, stop_broker);
    mosquitto_lib_cleanup();
    return failed;
}
