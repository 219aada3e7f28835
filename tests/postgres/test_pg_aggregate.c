/*
 * test_pg_aggregate.c -- aggregates on the PostgreSQL backend against a
 * real server (pg_server.h): the shared case table (tests/persist's
 * aggregate_cases.json) answered by the server (pg_aggregate.c) and by the
 * persistence layer's aggregation of the backend's rows, stored by one
 * gateway and by two.  With two, every bucket holds one gateway's values:
 * buckets group by record and gateway as raw rows do, and a limit counts
 * per pair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aggregate_cases.h"
#include "aimdb/postgres.h"
#include "pg_server.h"

static aggregate_cases *cases;

static int setup_server(void **state) {
    cases = aggregate_cases_load(AGGREGATE_CASES_JSON);
    return pg_test_server_setup(state);
}

static int teardown_server(void **state) {
    pg_test_server_teardown(state);
    aggregate_cases_free(cases);
    return 0;
}

static aimdb_visibility by_topic(const char *record, void *ctx) {
    (void)record, (void)ctx;
    return AIMDB_SEE_BY_SOURCE;
}

static bool not_hidden(const char *record, const char *source, void *ctx) {
    (void)record, (void)ctx;
    return !source || strncmp(source, "hidden/", 7) != 0;
}

static aimdb_backend open_pg(const char *gateway) {
    aimdb_postgres_options o = {.uri = pg_test_server.uri, .gateway = gateway, .flush_interval_ms = 10};
    aimdb_backend b;
    char err[512] = "";
    if (aimdb_postgres_open(&o, &b, err, sizeof(err)) != AIMDB_OK)
        fail_msg("aimdb_postgres_open: %s", err);
    return b;
}

static void test_cases_one_gateway(void **state) {
    (void)state;
    const char *gateways[] = {"site-a"};
    aimdb_backend b = open_pg(gateways[0]);
    aggregate_cases_store(cases, b);
    cases_db *d = cases_db_open(b);
    assert_non_null(b.ops->aggregate);
    assert_int_equal(aggregate_cases_check_fleet(cases, d, true, gateways, 1, "one gateway"), 0);
    assert_int_equal(
        aggregate_cases_check_fleet(cases, d, false, gateways, 1, "one gateway, layer"), 0);
    cases_db_close(d);
}

static void test_cases_two_gateways_apart(void **state) {
    (void)state;
    const char *gateways[] = {"site-a", "site-b"};
    aimdb_backend a = open_pg(gateways[0]), b = open_pg(gateways[1]);
    aggregate_cases_store(cases, b);
    aggregate_cases_store(cases, a);
    cases_db *d = cases_db_open(a);
    assert_int_equal(aggregate_cases_check_fleet(cases, d, true, gateways, 2, "two gateways"), 0);
    assert_int_equal(
        aggregate_cases_check_fleet(cases, d, false, gateways, 2, "two gateways, layer"), 0);
    cases_db_close(d);
    b.ops->close(b.self);
}

/* Values whose number only a careful path finds (or must not find). */
static const char *const edge_values[] = {
    "[{\"b\": 1}]",              /* "0.b": an array is no object */
    "{\"0\": {\"b\": 2}}",
    "{\"a\\\"b\": 3}",            /* a name JSONB prints escaped */
    "{\"\\u0061\": 4}",          /* "a", spelt with an escape */
    "{\"\": {\"\": 5}, \"a\": {\"\": 6}}",
    "1e-330", "-1e-330",         /* underflow: 0 */
    "1e308", "1.7976931348623157e308", "1e309", "-1e309",
    "{\"a\": 1e400}", "{\"a\": [7]}", "{\"a\": \"8\"}", "{\"a\": 9.5}",
};

/* Both layers agree on every edge value under every field, whole and
 * by topic with one topic hidden and a limit. */
static void test_layers_agree_on_edges(void **state) {
    (void)state;
    aimdb_backend b = open_pg("site-a");
    size_t n = sizeof(edge_values) / sizeof(edge_values[0]);
    for (size_t i = 0; i < n; i++) {
        const char *topic = i % 3 == 0 ? "hidden/t" : "open/t";
        assert_int_equal(b.ops->store(b.self, "edge", edge_values[i], strlen(edge_values[i]),
                                      (int64_t)i * 1000, topic),
                         AIMDB_OK);
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    cases_db *d = cases_db_open(b);
    const char *fields[] = {NULL, "", "0.b", "0", "a\"b", "a", ".", "a.", ".a", "b"};
    aimdb_access hide = {.record = by_topic, .value = not_hidden};
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        aimdb_history_request req = {.pattern = "edge", .every_ms = 2000, .field = fields[f],
                                     .n_agg = 7, .agg = {AIMDB_AGG_AVG, AIMDB_AGG_MIN,
                                                         AIMDB_AGG_MAX, AIMDB_AGG_SUM,
                                                         AIMDB_AGG_COUNT, AIMDB_AGG_FIRST,
                                                         AIMDB_AGG_LAST}};
        assert_true(aggregate_layers_agree(d, &req));
        req.access = &hide;
        req.limit = 2;
        assert_true(aggregate_layers_agree(d, &req));
    }
    /* And what they agree on is the rule, not a shared mistake. */
    aimdb_history_request req = {.pattern = "edge", .every_ms = 100000, .field = "0.b",
                                 .n_agg = 2, .agg = {AIMDB_AGG_COUNT, AIMDB_AGG_SUM}};
    char *out = NULL, err[256] = "";
    assert_int_equal(aimdb_persist_query_json(cases_db_persist(d), &req, &out, NULL, err,
                                              sizeof(err)),
                     AIMDB_OK);
    assert_string_equal(out, "{\"count\":1,\"skipped\":14,\"values\":[{\"record\":\"edge\","
                             "\"gateway\":\"site-a\",\"value\":{\"count\":1,\"sum\":2},"
                             "\"stored_at\":0}]}");
    free(out);
    cases_db_close(d);
}

/* Visibility by record name: every third record hidden, every third by
 * topic, the rest whole. */
static aimdb_visibility by_name(const char *record, void *ctx) {
    (void)ctx;
    const char *digits = strpbrk(record, "0123456789");
    int i = digits ? atoi(digits) : 0;
    return i % 3 == 0 ? AIMDB_SEE_NONE : i % 3 == 1 ? AIMDB_SEE_BY_SOURCE : AIMDB_SEE_ALL;
}

/* More records than one statement takes, names a text[] must quote, runs
 * of whole, hidden and by-topic records, two gateways: both layers give
 * the same answer, with and without a limit. */
static void test_layers_agree_on_many_records(void **state) {
    (void)state;
    aimdb_backend a = open_pg("site-a"), b = open_pg("site-b");
    for (int i = 0; i < 300; i++) {
        char name[64], value[64];
        snprintf(name, sizeof(name), "%s%03d", i % 7 == 0 ? "m\\\"{x}," : "m/", i);
        for (int k = 0; k < 3; k++) {
            aimdb_backend *on = (i + k) % 2 ? &a : &b;
            int len = snprintf(value, sizeof(value), "{\"t\": %d.5}", i * 10 + k);
            const char *topic = k == 1 ? "hidden/t" : "open/t";
            assert_int_equal(on->ops->store(on->self, name, value, (size_t)len,
                                            (int64_t)(i % 5 + k) * 1000, topic),
                             AIMDB_OK);
        }
    }
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    assert_int_equal(a.ops->flush(a.self), AIMDB_OK);
    cases_db *d = cases_db_open(a);
    aimdb_access mixed = {.record = by_name, .value = not_hidden};
    aimdb_history_request req = {.pattern = "m*", .every_ms = 2000, .field = "t", .n_agg = 5,
                                 .agg = {AIMDB_AGG_AVG, AIMDB_AGG_SUM, AIMDB_AGG_COUNT,
                                         AIMDB_AGG_FIRST, AIMDB_AGG_LAST}};
    assert_true(aggregate_layers_agree(d, &req));
    req.access = &mixed;
    assert_true(aggregate_layers_agree(d, &req));
    req.limit = 1;
    req.gateway = "site-*";
    assert_true(aggregate_layers_agree(d, &req));
    cases_db_close(d);
    b.ops->close(b.self);
}

/* A server restarted between two aggregates: the second reconnects and
 * gives the same answer. */
static void test_reconnects_after_a_restart(void **state) {
    (void)state;
    aimdb_backend b = open_pg("site-a");
    aggregate_cases_store(cases, b);
    cases_db *d = cases_db_open(b);
    aimdb_history_request req = {.pattern = "*", .every_ms = 3600000, .n_agg = 2,
                                 .agg = {AIMDB_AGG_COUNT, AIMDB_AGG_LAST}};
    char *before = NULL, *after = NULL, err[256] = "";
    assert_int_equal(aimdb_persist_query_json(cases_db_persist(d), &req, &before, NULL, err,
                                              sizeof(err)),
                     AIMDB_OK);
    pg_server_restart(&pg_test_server);
    assert_int_equal(aimdb_persist_query_json(cases_db_persist(d), &req, &after, NULL, err,
                                              sizeof(err)),
                     AIMDB_OK);
    assert_string_equal(before, after);
    free(before);
    free(after);
    cases_db_close(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cases_one_gateway, pg_test_fresh_history),
        cmocka_unit_test_setup(test_cases_two_gateways_apart, pg_test_fresh_history),
        cmocka_unit_test_setup(test_layers_agree_on_edges, pg_test_fresh_history),
        cmocka_unit_test_setup(test_layers_agree_on_many_records, pg_test_fresh_history),
        cmocka_unit_test_setup(test_reconnects_after_a_restart, pg_test_fresh_history),
    };
    return cmocka_run_group_tests(tests, setup_server, teardown_server);
}
