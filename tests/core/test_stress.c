/*
 * test_stress.c -- many producer threads, blocking readers and a tap on one
 * ring: nothing lost or duplicated when nothing overflows, and exact lag
 * accounting (received + missed == produced) when it does.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "aimdb/aimdb.h"

#define PRODUCERS 4
#define READERS 3

typedef struct stress {
    aimdb_record *rec;
    uint64_t per_producer;
    int slow_every;      /* reader pauses every N values (0 = never) */
} stress;

typedef struct producer_arg {
    stress *s;
    uint64_t id;
} producer_arg;

typedef struct reader_result {
    stress *s;
    aimdb_reader *reader;
    uint64_t received, missed, duplicates, disorder;
    uint8_t *seen;       /* one byte per produced value */
} reader_result;

static uint64_t encode(uint64_t producer, uint64_t n) { return producer << 32 | n; }

static void *run_producer(void *arg) {
    producer_arg *p = arg;
    for (uint64_t n = 0; n < p->s->per_producer; n++) {
        uint64_t v = encode(p->id, n);
        if (aimdb_produce(p->s->rec, &v, sizeof(v)) != AIMDB_OK) abort();
    }
    return NULL;
}

static void pause_briefly(void) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

static void *run_reader(void *arg) {
    reader_result *r = arg;
    uint64_t total = PRODUCERS * r->s->per_producer;
    int64_t next_of[PRODUCERS] = {0};
    while (r->received + r->missed < total) {
        aimdb_value v;
        uint64_t missed = 0;
        int rc = aimdb_reader_recv(r->reader, 5000, &v, &missed);
        if (rc == AIMDB_LAGGED) {
            r->missed += missed;
            continue;
        }
        if (rc != AIMDB_OK) break; /* timeout: the asserts will report it */
        uint64_t x;
        memcpy(&x, v.data, sizeof(x));
        uint64_t producer = x >> 32, n = x & 0xffffffffu;
        uint64_t idx = producer * r->s->per_producer + n;
        if (r->seen[idx]++) r->duplicates++;
        if ((int64_t)n < next_of[producer]) r->disorder++;
        next_of[producer] = (int64_t)n + 1;
        r->received++;
        if (r->s->slow_every && r->received % (uint64_t)r->s->slow_every == 0) pause_briefly();
    }
    return NULL;
}

typedef struct tap_count {
    _Atomic uint64_t values, missed;
} tap_count;

static void count_value(const aimdb_value *v, void *ctx) {
    (void)v;
    atomic_fetch_add(&((tap_count *)ctx)->values, 1);
}

static void count_lag(uint64_t missed, void *ctx) {
    atomic_fetch_add(&((tap_count *)ctx)->missed, missed);
}

static void run_stress(uint32_t ring, uint64_t per_producer, int slow_every, bool expect_lag) {
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_buffer_cfg cfg = {AIMDB_BUFFER_RING, ring};
    stress s = {.per_producer = per_producer, .slow_every = slow_every};
    assert_int_equal(aimdb_record_register(db, "stress", &cfg, &aimdb_codec_int64, &s.rec),
                     AIMDB_OK);
    tap_count tc = {0};
    aimdb_tap_ops ops = {count_value, count_lag};
    aimdb_tap *tap;
    assert_int_equal(aimdb_tap_add(s.rec, &ops, &tc, &tap), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);

    uint64_t total = PRODUCERS * per_producer;
    reader_result readers[READERS];
    pthread_t rt[READERS], pt[PRODUCERS];
    producer_arg pa[PRODUCERS];
    for (int i = 0; i < READERS; i++) {
        readers[i] = (reader_result){.s = &s, .seen = calloc(total, 1)};
        assert_int_equal(aimdb_reader_open(s.rec, &readers[i].reader), AIMDB_OK);
        pthread_create(&rt[i], NULL, run_reader, &readers[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (producer_arg){&s, (uint64_t)i};
        pthread_create(&pt[i], NULL, run_producer, &pa[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) pthread_join(pt[i], NULL);
    for (int i = 0; i < READERS; i++) pthread_join(rt[i], NULL);
    aimdb_db_stop(db);

    uint64_t lagged = 0;
    for (int i = 0; i < READERS; i++) {
        reader_result *r = &readers[i];
        assert_int_equal(r->received + r->missed, total);
        assert_int_equal(r->duplicates, 0);
        assert_int_equal(r->disorder, 0);
        if (!expect_lag) assert_int_equal(r->missed, 0);
        lagged += r->missed;
        free(r->seen);
    }
    aimdb_tap_stats ts;
    aimdb_tap_stats_get(tap, &ts);
    assert_int_equal(ts.delivered + ts.missed, total);
    assert_int_equal(atomic_load(&tc.values), ts.delivered);
    assert_int_equal(atomic_load(&tc.missed), ts.missed);
    if (!expect_lag) assert_int_equal(ts.missed, 0);
    if (expect_lag) assert_true(lagged > 0);
    aimdb_db_free(db);
}

static void test_no_loss_without_overflow(void **state) {
    (void)state;
    run_stress(1u << 17, 25000, 0, false);
}

static void test_exact_lag_with_overflow(void **state) {
    (void)state;
    run_stress(64, 50000, 50, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_loss_without_overflow),
        cmocka_unit_test(test_exact_lag_with_overflow),
    };
    return cmocka_run_group_tests_name("stress", tests, NULL, NULL);
}
