/*
 * test_alloc_failure.c -- running out of memory while building a router or
 * reading aimdb.conf is reported as AIMDB_ENOMEM and leaves nothing broken.
 *
 * malloc, calloc and realloc are wrapped at link time (CMakeLists.txt) so
 * the N-th call can fail; every N up to the last allocation is tried.  A
 * router that refused a rule must still route every rule it accepted
 * exactly like a fresh router built from those rules, and nothing may leak
 * (the ASan build checks that).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/mqtt_conf.h"
#include "aimdb/mqtt_route.h"

/* ------------------------------------------------ failure injection */

static long calls_left = -1; /* fail when it reaches 0; < 0: never */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static bool fail_now(void) { return calls_left >= 0 && calls_left-- == 0; }
void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return fail_now() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }

/* ------------------------------------------------------------ router */

/* Enough rules of every kind to make lists and both tables grow. */
static void rule_at(int i, char *filter, char *tmpl, size_t cap) {
    switch (i % 4) {
    case 0: snprintf(filter, cap, "site/%d/temp", i); break;      /* exact */
    case 1: snprintf(filter, cap, "dev%d/+/temp", i / 8); break;  /* indexed level */
    case 2: snprintf(filter, cap, "+/%d/#", i); break;            /* generic */
    default: snprintf(filter, cap, "site/%d/temp", i - 3); break; /* duplicate exact */
    }
    snprintf(tmpl, cap, i % 4 == 1 || i % 4 == 2 ? "r%d::{1}" : "r%d", i);
}

enum { RULES = 60 };

static void check_router_after_failure(long fail_at) {
    char filter[48], tmpl[48], err[128];
    bool accepted[RULES];
    aimdb_router *r = aimdb_router_new();
    assert_non_null(r);
    calls_left = fail_at;
    for (int i = 0; i < RULES; i++) {
        rule_at(i, filter, tmpl, sizeof(filter));
        int rc = aimdb_router_add(r, filter, tmpl, err, sizeof(err));
        assert_true(rc == AIMDB_OK || rc == AIMDB_ENOMEM);
        accepted[i] = rc == AIMDB_OK;
    }
    calls_left = -1;

    /* the same rules, the refused ones left out, with plenty of memory */
    aimdb_router *ref = aimdb_router_new();
    for (int i = 0; i < RULES; i++) {
        if (!accepted[i]) continue;
        rule_at(i, filter, tmpl, sizeof(filter));
        assert_int_equal(aimdb_router_add(ref, filter, tmpl, err, sizeof(err)), AIMDB_OK);
    }
    assert_int_equal(aimdb_router_count(r), aimdb_router_count(ref));
    for (int i = 0; i < RULES; i++) {
        char topic[48], a[64], b[64];
        snprintf(topic, sizeof(topic), i % 2 ? "dev%d/x/temp" : "site/%d/temp", i / 2);
        aimdb_route ra, rb;
        int rca = aimdb_router_route(r, topic, strlen(topic), a, sizeof(a), &ra);
        int rcb = aimdb_router_route(ref, topic, strlen(topic), b, sizeof(b), &rb);
        assert_int_equal(rca, rcb);
        if (rca == AIMDB_OK) {
            assert_int_equal(ra.rule, rb.rule);
            assert_string_equal(a, b);
        }
    }
    aimdb_router_free(ref);
    aimdb_router_free(r);
}

static void test_router_out_of_memory(void **state) {
    (void)state;
    for (long n = 0; n < 400; n++) check_router_after_failure(n);
}

/* -------------------------------------------------------------- conf */

static const char conf_text[] =
    "database ./data/aimdb.db\n"
    "retention 7d\n"
    "record accuracy::{1} weather/+/accuracy persist buffer=ring:500\n"
    "record temp::{1} sensors/+/temperature persist retention=30d\n"
    "record gateway::state gateway/state buffer=latest\n"
    "record a a/1\nrecord b a/2\nrecord c a/3\nrecord d a/4\nrecord e a/5\n"
    "record f a/6\nrecord g a/7\nrecord h a/8\nrecord i a/9\nrecord a a/10\n";

static void test_conf_out_of_memory(void **state) {
    (void)state;
    bool succeeded = false;
    for (long n = 0; n < 200 && !succeeded; n++) {
        aimdb_conf *conf = (aimdb_conf *)1;
        char err[128] = "";
        calls_left = n;
        int rc = aimdb_conf_parse(conf_text, sizeof(conf_text) - 1, NULL, AIMDB_CONF_PLUGIN,
                                  &conf, err, sizeof(err));
        calls_left = -1;
        if (rc == AIMDB_OK) {
            assert_int_equal(conf->n_rules, 13);
            aimdb_conf_free(conf);
            succeeded = true;
            continue;
        }
        assert_int_equal(rc, AIMDB_ENOMEM);
        assert_null(conf);
        assert_non_null(strstr(err, "out of memory"));
    }
    assert_true(succeeded); /* enough allocations were let through */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_out_of_memory),
        cmocka_unit_test(test_conf_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
