/*
 * test_taps.c -- taps run on the worker pool, in order, lag instead of
 * blocking producers, and are drained by stop; a burst of produce calls
 * wakes the workers at its end, for every pool it touched.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "aimdb/aimdb.h"
#include "core_internal.h" /* aimdb_pool_burst_begin/end */

typedef struct tap_probe {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t producer;
    bool ran_on_producer;
    bool gate_closed;    /* on_value waits while true */
    uint64_t calls;      /* on_value entered */
    int64_t last;        /* last value seen; order check */
    bool out_of_order;
    uint64_t values, missed;
    int sleep_us;
} tap_probe;

static void probe_init(tap_probe *p) {
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    p->producer = pthread_self();
    p->last = -1;
}

static void probe_destroy(tap_probe *p) {
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->changed);
}

static void sleep_us(int us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

static void probe_value(const aimdb_value *v, void *ctx) {
    tap_probe *p = ctx;
    int64_t x;
    memcpy(&x, v->data, sizeof(x));
    pthread_mutex_lock(&p->lock);
    p->calls++;
    pthread_cond_broadcast(&p->changed);
    while (p->gate_closed) pthread_cond_wait(&p->changed, &p->lock);
    if (pthread_equal(pthread_self(), p->producer)) p->ran_on_producer = true;
    if (x <= p->last) p->out_of_order = true;
    p->last = x;
    p->values++;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    if (p->sleep_us) sleep_us(p->sleep_us);
}

static void probe_lag(uint64_t missed, void *ctx) {
    tap_probe *p = ctx;
    pthread_mutex_lock(&p->lock);
    p->missed += missed;
    pthread_mutex_unlock(&p->lock);
}

static const aimdb_tap_ops probe_ops = {probe_value, probe_lag};

static void wait_for_values(tap_probe *p, uint64_t n) {
    pthread_mutex_lock(&p->lock);
    while (p->values < n) pthread_cond_wait(&p->changed, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static aimdb_record *ring_record(aimdb_db *db, const char *name, uint32_t n) {
    aimdb_buffer_cfg cfg = {AIMDB_BUFFER_RING, n};
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, name, &cfg, &aimdb_codec_int64, &rec), AIMDB_OK);
    return rec;
}

static void produce_range(aimdb_record *rec, int64_t from, int64_t to) {
    for (int64_t i = from; i <= to; i++) assert_int_equal(aimdb_produce(rec, &i, sizeof(i)), AIMDB_OK);
}

static void test_tap_runs_on_worker_in_order(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec = ring_record(db, "r", 1024);
    tap_probe p;
    probe_init(&p);
    aimdb_tap *tap;
    assert_int_equal(aimdb_tap_add(rec, &probe_ops, &p, &tap), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    produce_range(rec, 0, 499);
    wait_for_values(&p, 500);
    assert_false(p.ran_on_producer);
    assert_false(p.out_of_order);
    aimdb_tap_stats st;
    aimdb_tap_stats_get(tap, &st);
    assert_int_equal(st.delivered, 500);
    assert_int_equal(st.missed, 0);
    aimdb_db_free(db);
    probe_destroy(&p);
}

static void test_slow_tap_lags_without_blocking_producer(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec = ring_record(db, "r", 16);
    tap_probe p;
    probe_init(&p);
    aimdb_tap *tap;
    assert_int_equal(aimdb_tap_add(rec, &probe_ops, &p, &tap), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    pthread_mutex_lock(&p.lock);
    p.gate_closed = true;
    pthread_mutex_unlock(&p.lock);
    produce_range(rec, 0, 0);
    pthread_mutex_lock(&p.lock);
    while (p.calls == 0) pthread_cond_wait(&p.changed, &p.lock);
    pthread_mutex_unlock(&p.lock);
    /* The tap is now stuck in its first call; if producers waited for it,
     * the next 999 calls would never return and the test would time out. */
    produce_range(rec, 1, 999);
    pthread_mutex_lock(&p.lock);
    p.gate_closed = false;
    pthread_cond_broadcast(&p.changed);
    pthread_mutex_unlock(&p.lock);
    aimdb_db_stop(db);
    aimdb_tap_stats st;
    aimdb_tap_stats_get(tap, &st);
    assert_int_equal(st.delivered + st.missed, 1000); /* exact: nothing silent */
    assert_int_equal(st.delivered, 17);               /* the first, then the 16 held */
    assert_int_equal(p.missed, st.missed);
    assert_int_equal(st.lag_events, 1);
    assert_int_equal(p.last, 999);
    assert_false(p.out_of_order);
    aimdb_db_free(db);
    probe_destroy(&p);
}

static void test_stop_drains_busy_taps(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec = ring_record(db, "r", 1024);
    tap_probe p;
    probe_init(&p);
    p.sleep_us = 500;
    assert_int_equal(aimdb_tap_add(rec, &probe_ops, &p, NULL), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    produce_range(rec, 0, 199);
    aimdb_db_stop(db); /* taps still busy for ~100 ms here */
    pthread_mutex_lock(&p.lock);
    assert_int_equal(p.values, 200);
    pthread_mutex_unlock(&p.lock);
    int64_t one = 1;
    assert_int_equal(aimdb_produce(rec, &one, sizeof(one)), AIMDB_ESTOPPED);
    aimdb_db_free(db);
    probe_destroy(&p);
}

static void test_values_before_start_reach_taps(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec = ring_record(db, "r", 64);
    tap_probe p;
    probe_init(&p);
    assert_int_equal(aimdb_tap_add(rec, &probe_ops, &p, NULL), AIMDB_OK);
    produce_range(rec, 1, 10);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    wait_for_values(&p, 10);
    aimdb_db_stop(db);
    /* Never started at all: stop still runs the taps over what was produced. */
    aimdb_db *idle = aimdb_db_new(NULL);
    aimdb_record *r2 = ring_record(idle, "r", 64);
    tap_probe q;
    probe_init(&q);
    assert_int_equal(aimdb_tap_add(r2, &probe_ops, &q, NULL), AIMDB_OK);
    produce_range(r2, 1, 5);
    aimdb_db_stop(idle);
    assert_int_equal(q.values, 5);
    aimdb_db_free(idle);
    aimdb_db_free(db);
    probe_destroy(&p);
    probe_destroy(&q);
}

static void test_tap_on_latest_sees_newest(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_buffer_cfg latest = {AIMDB_BUFFER_LATEST, 1};
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, "l", &latest, &aimdb_codec_int64, &rec), AIMDB_OK);
    tap_probe p;
    probe_init(&p);
    aimdb_tap *tap;
    assert_int_equal(aimdb_tap_add(rec, &probe_ops, &p, &tap), AIMDB_OK);
    produce_range(rec, 1, 50);
    aimdb_db_stop(db);
    assert_int_equal(p.last, 50);
    assert_false(p.out_of_order);
    assert_int_equal(p.missed, 0); /* collapse is the buffer's meaning, not lag */
    aimdb_db_free(db);
    probe_destroy(&p);
}

/* --- 1,000 records, one tap each, 4 workers, 2 producer threads --------- */

#define MANY 1000
#define PER_RECORD 100

typedef struct many_ctx {
    aimdb_record *recs[MANY];
    int first, step;
} many_ctx;

static void *produce_many(void *arg) {
    many_ctx *m = arg;
    for (int64_t v = 0; v < PER_RECORD; v++)
        for (int i = m->first; i < MANY; i += m->step)
            if (aimdb_produce(m->recs[i], &v, sizeof(v)) != AIMDB_OK) abort();
    return NULL;
}

/* Taps queued in a burst run once it ends, with the workers asleep when it
 * began; a tap of a second database queued inside the burst is woken for
 * at once (a burst holds back one pool's wake-ups). */
static void test_burst_wakes_workers_at_its_end(void **state) {
    (void)state;
    enum { RECORDS = 40, VALUES = 5 };
    aimdb_db *dbs[2] = {aimdb_db_new(NULL), aimdb_db_new(NULL)};
    static tap_probe probes[2][RECORDS];
    aimdb_record *recs[2][RECORDS];
    for (int d = 0; d < 2; d++) {
        for (int i = 0; i < RECORDS; i++) {
            char name[32];
            snprintf(name, sizeof(name), "rec::%d", i);
            recs[d][i] = ring_record(dbs[d], name, 64);
            probe_init(&probes[d][i]);
            aimdb_tap *tap;
            assert_int_equal(aimdb_tap_add(recs[d][i], &probe_ops, &probes[d][i], &tap), AIMDB_OK);
        }
        assert_int_equal(aimdb_db_start(dbs[d]), AIMDB_OK);
    }
    sleep_us(20000); /* every worker idle, waiting for a wake-up */
    aimdb_pool_burst_begin();
    for (int64_t v = 0; v < VALUES; v++)
        for (int i = 0; i < RECORDS; i++)
            for (int d = 0; d < 2; d++)
                assert_int_equal(aimdb_produce(recs[d][i], &v, sizeof(v)), AIMDB_OK);
    for (int i = 0; i < RECORDS; i++) wait_for_values(&probes[1][i], VALUES);
    aimdb_pool_burst_end();
    for (int i = 0; i < RECORDS; i++) wait_for_values(&probes[0][i], VALUES);
    for (int d = 0; d < 2; d++) {
        aimdb_db_stop(dbs[d]);
        for (int i = 0; i < RECORDS; i++) {
            assert_false(probes[d][i].out_of_order);
            probe_destroy(&probes[d][i]);
        }
        aimdb_db_free(dbs[d]);
    }
}

static void test_thousand_records_on_four_workers(void **state) {
    (void)state;
    aimdb_db_options opts = {.workers = 4};
    aimdb_db *db = aimdb_db_new(&opts);
    static tap_probe probes[MANY];
    many_ctx a = {.first = 0, .step = 2}, b = {.first = 1, .step = 2};
    aimdb_tap *taps[MANY];
    for (int i = 0; i < MANY; i++) {
        char name[32];
        snprintf(name, sizeof(name), "rec::%d", i);
        a.recs[i] = b.recs[i] = ring_record(db, name, 1024);
        probe_init(&probes[i]);
        assert_int_equal(aimdb_tap_add(a.recs[i], &probe_ops, &probes[i], &taps[i]), AIMDB_OK);
    }
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, produce_many, &a);
    pthread_create(&tb, NULL, produce_many, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    aimdb_db_stop(db);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(probes[i].values, PER_RECORD);
        assert_int_equal(probes[i].last, PER_RECORD - 1);
        assert_false(probes[i].out_of_order);
        probe_destroy(&probes[i]);
    }
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tap_runs_on_worker_in_order),
        cmocka_unit_test(test_slow_tap_lags_without_blocking_producer),
        cmocka_unit_test(test_stop_drains_busy_taps),
        cmocka_unit_test(test_values_before_start_reach_taps),
        cmocka_unit_test(test_tap_on_latest_sees_newest),
        cmocka_unit_test(test_thousand_records_on_four_workers),
        cmocka_unit_test(test_burst_wakes_workers_at_its_end),
    };
    return cmocka_run_group_tests_name("taps", tests, NULL, NULL);
}
