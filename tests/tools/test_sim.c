/*
 * test_sim.c -- aimdb-mcu-sim against a real Mosquitto with the plugin,
 * watched by a real subscriber: topics, order and payload shapes (the
 * ones web/src/values.js reads), --count, --seed, --rate, --duration,
 * QoS 2, a clean disconnect on SIGTERM, and its errors.
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

#include "aimdb/version.h"
#include "client.h"
#include "harness.h"
#include "tools_run.h"

#define RUN_MS 15000

static broker b;
static char url[64];
static tool_result r;

/* aimdb-mcu-sim --broker URL ARGS... */
static int sim(const char *a0, ...) {
    va_list ap;
    va_start(ap, a0);
    int st = tool_run_on(AIMDB_SIM, url, RUN_MS, &r, a0, ap);
    va_end(ap);
    return st;
}

static client *watch(const char *id) {
    client *c = client_connect(b.port, id, MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    client_subscribe(c, "weather/#", 1);
    return c;
}

static int start_broker(void **state) {
    (void)state;
    if (!broker_start_weather(&b)) return -1;
    tool_broker_url(b.port, url, sizeof(url));
    return 0;
}

static int stop_broker(void **state) {
    (void)state;
    return broker_stop_and_clean(&b);
}

static void check_payload(const char *kind, const char *payload) {
    cJSON *j = cJSON_Parse(payload);
    assert_non_null(j);
    if (strcmp(kind, "temperature") == 0) {
        assert_true(cJSON_IsNumber(j));
        assert_true(j->valuedouble > -40 && j->valuedouble < 60);
    } else if (strcmp(kind, "accuracy") == 0) {
        assert_true(cJSON_IsNumber(j)); /* what the dashboard reads first */
        assert_true(j->valuedouble >= 0 && j->valuedouble <= 100);
    } else {
        assert_string_equal(kind, "forecast");
        double high = cJSON_GetObjectItem(j, "high")->valuedouble;
        double low = cJSON_GetObjectItem(j, "low")->valuedouble;
        assert_true(high > low);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "sky")));
        int rain = cJSON_GetObjectItem(j, "rain_pct")->valueint;
        assert_true(rain >= 0 && rain <= 100);
    }
    cJSON_Delete(j);
}

/* Rounds of every city's three topics, in the given order. */
static void test_publishes_rounds(void **state) {
    (void)state;
    client *c = watch("watch-rounds");
    assert_int_equal(sim("--cities", "oslo,rome", "--count", "12", "--rate", "0", NULL), 0);
    assert_non_null(strstr(r.out, "aimdb-mcu-sim: sent 12, failed 0, "));
    static const char *const cities[] = {"oslo", "rome"};
    static const char *const kinds[] = {"temperature", "forecast", "accuracy"};
    for (int i = 0; i < 12; i++) {
        received m;
        assert_true(client_receive(c, 5000, &m));
        char want[64];
        snprintf(want, sizeof(want), "weather/%s/%s", cities[(i / 3) % 2], kinds[i % 3]);
        assert_string_equal(m.topic, want);
        check_payload(kinds[i % 3], m.payload);
        received_free(&m);
    }
    received extra;
    assert_false(client_receive(c, 300, &extra));
    client_disconnect(c);
}

/* The payloads of a run, concatenated. */
static void payloads_of_run(const char *seed, char *out, size_t cap) {
    client *c = watch("watch-seed");
    assert_int_equal(sim("--cities", "lima", "--count", "9", "--rate", "0", "--seed", seed, NULL), 0);
    out[0] = '\0';
    for (int i = 0; i < 9; i++) {
        received m;
        assert_true(client_receive(c, 5000, &m));
        strncat(out, m.payload, cap - strlen(out) - 2);
        strcat(out, "|");
        received_free(&m);
    }
    client_disconnect(c);
}

static void test_seed_reproduces(void **state) {
    (void)state;
    char a[2048], b2[2048], other[2048];
    payloads_of_run("42", a, sizeof(a));
    payloads_of_run("42", b2, sizeof(b2));
    payloads_of_run("43", other, sizeof(other));
    assert_string_equal(a, b2);
    assert_string_not_equal(a, other);
}

/* 10 messages at 20/s: the last one is due 450 ms after the first. */
static void test_rate_paces(void **state) {
    (void)state;
    assert_int_equal(sim("--count", "10", "--rate", "20", "--qos", "0", NULL), 0);
    assert_true(r.elapsed_ms >= 430);
    assert_true(r.elapsed_ms < 5000);
    assert_non_null(strstr(r.out, "sent 10, failed 0"));
}

/* A fractional rate: 3 messages at 2.5/s, the last due 800 ms after the
 * first, and said so at the start. */
static void test_fractional_rate_paces(void **state) {
    (void)state;
    assert_int_equal(sim("--count", "3", "--rate", "2.5", "--qos", "0", NULL), 0);
    assert_true(r.elapsed_ms >= 780);
    assert_true(r.elapsed_ms < 5000);
    assert_non_null(strstr(r.err, "2.5 msg/s"));
    assert_non_null(strstr(r.out, "sent 3, failed 0"));
}

/* --burst rounds go out at once, then --duration ends the run. */
static void test_burst_then_duration(void **state) {
    (void)state;
    client *c = watch("watch-burst");
    assert_int_equal(sim("--city-count", "4", "--burst", "5", "--rate", "1", "--duration", "700ms", NULL), 0);
    assert_true(r.elapsed_ms >= 600);
    assert_true(r.elapsed_ms < 5000);
    size_t n = 0;
    received m;
    while (client_receive(c, 500, &m)) {
        n++;
        received_free(&m);
    }
    /* 5 rounds of 4 cities x 3 topics, then 1/s for 0.7 s: one more */
    assert_int_equal(n, 61);
    assert_non_null(strstr(r.out, "sent 61, failed 0"));
    client_disconnect(c);
}

static void test_qos2(void **state) {
    (void)state;
    client *c = watch("watch-qos2");
    assert_int_equal(sim("--qos", "2", "--count", "30", "--rate", "0", NULL), 0);
    assert_non_null(strstr(r.out, "sent 30, failed 0"));
    for (int i = 0; i < 30; i++) {
        received m;
        assert_true(client_receive(c, 5000, &m));
        received_free(&m);
    }
    client_disconnect(c);
}

/* Did the broker see a clean DISCONNECT from a client whose id starts with prefix? */
static bool clean_disconnect_logged(const char *prefix) {
    FILE *f = fopen(b.log_path, "r");
    assert_non_null(f);
    char line[512];
    bool clean = false;
    while (fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, "Client ");
        if (at && strncmp(at + 7, prefix, strlen(prefix)) == 0 && strstr(line, " disconnected.\n"))
            clean = true;
    }
    fclose(f);
    return clean;
}

/* Without --count/--duration it runs until SIGTERM, then disconnects
 * cleanly and still prints its summary. */
static void test_sigterm_stops_cleanly(void **state) {
    (void)state;
    char *argv[] = {AIMDB_SIM, "--broker", url, "--rate", "50", NULL};
    daemon_proc d;
    daemon_start(&d, b.dir, argv);
    sleep_ms(600);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    char text[512] = "";
    FILE *f = fopen(d.log_path, "r");
    assert_non_null(f);
    while (fgets(text, sizeof(text), f) && !strstr(text, "aimdb-mcu-sim: sent ")) {
    }
    fclose(f);
    assert_non_null(strstr(text, "aimdb-mcu-sim: sent "));
    assert_non_null(strstr(text, "failed 0"));
    long long deadline = now_ms() + 3000;
    while (!clean_disconnect_logged("aimdb-mcu-sim-") && now_ms() < deadline) sleep_ms(50);
    assert_true(clean_disconnect_logged("aimdb-mcu-sim-"));
}

static void test_unreachable(void **state) {
    (void)state;
    char nowhere[64];
    tool_broker_url(free_port(), nowhere, sizeof(nowhere));
    const char *args[] = {"--broker", nowhere, "--count", "1", NULL};
    assert_int_equal(tool_run(AIMDB_SIM, args, RUN_MS, &r), 1);
    assert_true(r.elapsed_ms < 3000);
    assert_non_null(strstr(r.err, "cannot connect to"));
    assert_non_null(strstr(r.err, "Connection refused"));
}

static void test_help_and_usage_errors(void **state) {
    (void)state;
    const char *help[] = {"--help", NULL};
    assert_int_equal(tool_run(AIMDB_SIM, help, RUN_MS, &r), 0);
    assert_non_null(strstr(r.out, "Usage: aimdb-mcu-sim"));
    /* its own words for --timeout: a publisher waits for acknowledgements */
    assert_non_null(strstr(r.out, "broker to acknowledge each message"));
    assert_null(strstr(r.out, "for each answer"));
    const char *version[] = {"--version", NULL};
    assert_int_equal(tool_run(AIMDB_SIM, version, RUN_MS, &r), 0);
    assert_string_equal(r.out, "aimdb-mcu-sim " AIMDB_VERSION "\n");
    static const struct {
        const char *args[4];
        const char *says;
    } cases[] = {
        {{"--qos", "3", NULL}, "--qos '3'"},
        {{"--rate", "fast", NULL}, "--rate 'fast'"},
        {{"--rate", "2.5.1", NULL}, "--rate '2.5.1'"},
        {{"--rate", ".5", NULL}, "--rate '.5'"},
        {{"--rate", "1e3", NULL}, "--rate '1e3'"},
        {{"--rate", "-1", NULL}, "--rate '-1'"},
        {{"--rate", "0.0001", NULL}, "--rate '0.0001'"},
        {{"--cities", "a/b", NULL}, "'a/b' is not a city name"},
        {{"--cities", "a,a", NULL}, "'a' is given twice"},
        {{"--cities", ",", NULL}, "no city named"},
        {{"--cities", "a", "--city-count", "2"}, "--cities or --city-count, not both"},
        {{"--city-count", "0", NULL}, "--city-count '0'"},
        {{"--count", "0", NULL}, "--count '0'"},
        {{"--duration", "soon", NULL}, "--duration 'soon'"},
        {{"--broker", "tcp//x", NULL}, "bad broker URL"},
        {{"extra", NULL}, "unexpected 'extra'"},
        {{"--nope", NULL}, "unknown option '--nope'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[8] = {"--broker", "mqtt://127.0.0.1:1"};
        for (size_t k = 0; k < 4 && cases[i].args[k]; k++) args[2 + k] = cases[i].args[k];
        int st = tool_run(AIMDB_SIM, args, RUN_MS, &r);
        if (st != 2 || !strstr(r.err, cases[i].says)) fprintf(stderr, "case %zu: exit %d, %s", i, st, r.err);
        assert_int_equal(st, 2);
        assert_non_null(strstr(r.err, cases[i].says));
        /* the command line's own problems point to --help (a bad URL is
         * found where the connection is made) */
        if (strcmp(cases[i].says, "bad broker URL") != 0)
            assert_non_null(strstr(r.err, "Try 'aimdb-mcu-sim --help'"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publishes_rounds),
        cmocka_unit_test(test_seed_reproduces),
        cmocka_unit_test(test_rate_paces),
        cmocka_unit_test(test_fractional_rate_paces),
        cmocka_unit_test(test_burst_then_duration),
        cmocka_unit_test(test_qos2),
        cmocka_unit_test(test_sigterm_stops_cleanly),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_help_and_usage_errors),
    };
    return cmocka_run_group_tests(tests, start_broker, stop_broker);
}
