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

#include <cmocka.h>

#include "aggregate_cases.h"
#include "aimdb/postgres.h"
#include "pg_server.h"

static pg_server server;
static aggregate_cases *cases;

static int setup_server(void **state) {
    (void)state;
    cases = aggregate_cases_load(AGGREGATE_CASES_JSON);
    pg_server_start_if_installed(&server);
    return 0;
}

static int teardown_server(void **state) {
    (void)state;
    pg_server_cleanup(&server);
    aggregate_cases_free(cases);
    return 0;
}

static int fresh_table(void **state) {
    (void)state;
    if (!server.running) skip();
    pg_exec(&server, "DROP TABLE IF EXISTS record_history");
    return 0;
}

static aimdb_backend open_pg(const char *gateway) {
    aimdb_postgres_options o = {.uri = server.uri, .gateway = gateway, .flush_interval_ms = 10};
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cases_one_gateway, fresh_table),
        cmocka_unit_test_setup(test_cases_two_gateways_apart, fresh_table),
    };
    return cmocka_run_group_tests(tests, setup_server, teardown_server);
}
