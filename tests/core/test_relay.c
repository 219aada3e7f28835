/*
 * test_relay.c -- the hand-off of relay.h: every value pushed is produced,
 * in order, with its own timestamp and bytes (inline and heap-sized), also
 * across many queue segments; the pusher never waits for a stalled relay
 * thread (the queue grows, up to a byte bound that never refuses a value on
 * its own); stop produces what is still queued; refusals counted.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/relay.h"

#define MANY 100000 /* many segments' worth */
#define SEGMENT_SLOTS 4096 /* relay.c's */
/* Values pushed while the relay runs.  Below relay.c's 64 MiB bound (64
 * segments) even if the relay thread consumed nothing meanwhile -- as under
 * valgrind, which runs one thread at a time and may let the pusher run
 * its whole loop first: a refusal past the bound is the relay's contract,
 * not a wait, so this test must not reach it. */
#define CONCURRENT_PUSHES (48 * SEGMENT_SLOTS)

static aimdb_db *started_db(void) {
    aimdb_db *db = aimdb_db_new(NULL);
    assert_non_null(db);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    return db;
}

static void test_order_timestamps_and_stop_drain(void **state) {
    (void)state;
    aimdb_db *db = started_db();
    aimdb_record *rec;
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, 131072};
    assert_int_equal(aimdb_record_register(db, "n", &ring, &aimdb_codec_int64, &rec), AIMDB_OK);
    aimdb_reader *reader;
    assert_int_equal(aimdb_reader_open(rec, &reader), AIMDB_OK);
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(NULL, &relay), AIMDB_OK);
    for (int64_t i = 0; i < MANY; i++)
        assert_int_equal(aimdb_relay_push(relay, rec, &i, sizeof(i), 1000 + i, NULL), AIMDB_OK);
    assert_int_equal(aimdb_relay_stop(relay), 0); /* everything produced before it returns */
    for (int64_t i = 0; i < MANY; i++) {
        aimdb_value v;
        uint64_t missed = 0;
        assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_OK);
        int64_t got;
        memcpy(&got, v.data, sizeof(got));
        assert_int_equal(got, i);
        assert_int_equal(v.ts_ms, 1000 + i);
    }
    aimdb_value v;
    uint64_t missed = 0;
    assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_EAGAIN);
    aimdb_reader_close(reader);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

/* A runtime whose threads start only when the test opens the gate: a
 * relay thread that gets no CPU, made deterministic. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_opened = PTHREAD_COND_INITIALIZER;
static bool gate_open;

typedef struct gated {
    void *(*fn)(void *);
    void *arg;
} gated;

static void *wait_at_gate(void *arg) {
    gated g = *(gated *)arg;
    free(arg);
    pthread_mutex_lock(&gate_lock);
    while (!gate_open) pthread_cond_wait(&gate_opened, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return g.fn(g.arg);
}

static int gated_spawn(void *self, const char *name, aimdb_thread_kind kind, void *(*fn)(void *),
                       void *arg, aimdb_thread **out) {
    (void)self;
    const aimdb_runtime *base = aimdb_runtime_pthread();
    gated *g = malloc(sizeof(*g));
    assert_non_null(g);
    *g = (gated){fn, arg};
    return base->spawn(base->self, name, kind, wait_at_gate, g, out);
}

static aimdb_runtime gated_runtime(void) {
    aimdb_runtime rt = *aimdb_runtime_pthread();
    rt.spawn = gated_spawn;
    gate_open = false;
    return rt;
}

static void open_gate(void) {
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_opened);
    pthread_mutex_unlock(&gate_lock);
}

static void expect_sequence(aimdb_reader *reader, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        aimdb_value v;
        uint64_t missed = 0;
        assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_OK);
        int64_t got;
        memcpy(&got, v.data, sizeof(got));
        if (got != i || v.ts_ms != 1000 + i)
            fail_msg("value %lld: got %lld stamped %lld", (long long)i, (long long)got,
                     (long long)v.ts_ms);
    }
    aimdb_value v;
    uint64_t missed = 0;
    assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_EAGAIN);
}

/* With the relay thread stalled, pushes return at once and the queue grows
 * by segments (two are in hand; every further 4,096 values take a third,
 * fourth...); once it runs, everything is produced in push order while more
 * is pushed. */
static void test_a_stalled_relay_never_makes_the_pusher_wait(void **state) {
    (void)state;
    aimdb_db *db = started_db();
    aimdb_record *rec;
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, 4 * MANY};
    assert_int_equal(aimdb_record_register(db, "n", &ring, &aimdb_codec_int64, &rec), AIMDB_OK);
    aimdb_reader *reader;
    assert_int_equal(aimdb_reader_open(rec, &reader), AIMDB_OK);
    aimdb_runtime rt = gated_runtime();
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(&rt, &relay), AIMDB_OK);
    int64_t i = 0;
    for (; i < 5 * SEGMENT_SLOTS; i++)
        assert_int_equal(aimdb_relay_push(relay, rec, &i, sizeof(i), 1000 + i, NULL), AIMDB_OK);
    assert_int_equal(aimdb_relay_backlog(relay), 5 * SEGMENT_SLOTS);
    assert_int_equal(aimdb_relay_grown(relay), 3);
    open_gate();
    for (; i < CONCURRENT_PUSHES; i++)
        assert_int_equal(aimdb_relay_push(relay, rec, &i, sizeof(i), 1000 + i, NULL), AIMDB_OK);
    assert_int_equal(aimdb_relay_stop(relay), 0);
    expect_sequence(reader, CONCURRENT_PUSHES);
    aimdb_reader_close(reader);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

/* What a stalled relay holds is bounded (64 MiB of segments and long
 * payloads): past it a push is refused with AIMDB_EBUSY, and what was
 * accepted is still produced. */
static void test_held_bytes_are_bounded(void **state) {
    (void)state;
    aimdb_db *db = started_db();
    aimdb_record *rec;
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, 256};
    assert_int_equal(aimdb_record_register(db, "n", &ring, &aimdb_codec_int64, &rec), AIMDB_OK);
    aimdb_runtime rt = gated_runtime();
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(&rt, &relay), AIMDB_OK);
    int64_t accepted = 0;
    int rc;
    while ((rc = aimdb_relay_push(relay, rec, &accepted, sizeof(accepted), 1, NULL)) == AIMDB_OK)
        accepted++;
    assert_int_equal(rc, AIMDB_EBUSY);
    /* whole segments of 1 MiB each, about 64 MiB of them */
    assert_int_equal(accepted % SEGMENT_SLOTS, 0);
    assert_in_range(accepted, 60 * SEGMENT_SLOTS, 70 * SEGMENT_SLOTS);
    open_gate();
    assert_int_equal(aimdb_relay_stop(relay), 0);
    aimdb_record_stats stats;
    aimdb_record_stats_get(rec, &stats);
    assert_int_equal(stats.produced, accepted);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

/* The bound never refuses a value on its own: one larger than the whole
 * bound is taken while the queue holds nothing; the next one is not. */
static void test_one_value_over_the_bound_is_taken(void **state) {
    (void)state;
    size_t size = 70u << 20;
    aimdb_db *db = aimdb_db_new(&(aimdb_db_options){.max_value_bytes = size});
    assert_non_null(db);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    aimdb_record *rec;
    aimdb_buffer_cfg latest = {AIMDB_BUFFER_LATEST, 1};
    assert_int_equal(aimdb_record_register(db, "blob", &latest, &aimdb_codec_json, &rec),
                     AIMDB_OK);
    aimdb_runtime rt = gated_runtime();
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(&rt, &relay), AIMDB_OK);
    char *big = malloc(size);
    assert_non_null(big);
    memset(big, 'x', size);
    assert_int_equal(aimdb_relay_push(relay, rec, big, size, 1, NULL), AIMDB_OK);
    assert_int_equal(aimdb_relay_push(relay, rec, big, 300, 2, NULL), AIMDB_EBUSY); /* not inline */
    open_gate();
    assert_int_equal(aimdb_relay_stop(relay), 0);
    aimdb_record_stats stats;
    aimdb_record_stats_get(rec, &stats);
    assert_int_equal(stats.produced, 1);
    free(big);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

static void test_large_values_keep_their_bytes(void **state) {
    (void)state;
    aimdb_db *db = started_db();
    aimdb_record *rec;
    aimdb_buffer_cfg ring = AIMDB_BUFFER_DEFAULT;
    assert_int_equal(aimdb_record_register(db, "blob", &ring, &aimdb_codec_json, &rec), AIMDB_OK);
    aimdb_reader *reader;
    assert_int_equal(aimdb_reader_open(rec, &reader), AIMDB_OK);
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(NULL, &relay), AIMDB_OK);
    static const size_t sizes[] = {0, 1, 224, 225, 5000, 70000}; /* 224: relay.c's inline */
    char *text = malloc(70001);
    assert_non_null(text);
    for (size_t k = 0; k < 6; k++) {
        memset(text, 'a' + (int)k, sizes[k]);
        assert_int_equal(aimdb_relay_push(relay, rec, text, sizes[k], 1, NULL), AIMDB_OK);
    }
    assert_int_equal(aimdb_relay_stop(relay), 0);
    for (size_t k = 0; k < 6; k++) {
        aimdb_value v;
        uint64_t missed = 0;
        assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_OK);
        assert_int_equal(v.len, sizes[k]);
        const char *bytes = v.data;
        for (size_t i = 0; i < v.len; i++) assert_int_equal(bytes[i], 'a' + (int)k);
    }
    free(text);
    aimdb_reader_close(reader);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

static bool accepts_nothing(const void *value, size_t len) {
    (void)value;
    (void)len;
    return false;
}
static long no_json(const void *value, size_t len, char *out, size_t cap) {
    (void)value;
    (void)len;
    (void)out;
    (void)cap;
    return -1;
}

/* Failures count as failed; bytes a record's codec does not accept count
 * apart, as refused. */
static void test_refusals_are_counted(void **state) {
    (void)state;
    static const aimdb_codec strict = {"strict", 0, no_json, NULL, accepts_nothing};
    aimdb_db *db = started_db();
    aimdb_record *rec, *picky;
    aimdb_buffer_cfg ring = AIMDB_BUFFER_DEFAULT;
    assert_int_equal(aimdb_record_register(db, "n", &ring, &aimdb_codec_int64, &rec), AIMDB_OK);
    assert_int_equal(aimdb_record_register(db, "p", &ring, &strict, &picky), AIMDB_OK);
    aimdb_relay *relay;
    assert_int_equal(aimdb_relay_start(NULL, &relay), AIMDB_OK);
    int32_t wrong_size = 7; /* an int64 record refuses 4 bytes */
    assert_int_equal(aimdb_relay_push(relay, rec, &wrong_size, sizeof(wrong_size), 1, NULL), AIMDB_OK);
    assert_int_equal(aimdb_relay_push(relay, picky, "x", 1, 2, NULL), AIMDB_OK);
    assert_int_equal(aimdb_relay_push(relay, rec, &wrong_size, sizeof(wrong_size), 3, NULL), AIMDB_OK);
    while (aimdb_relay_backlog(relay) > 0) sched_yield();
    assert_int_equal(aimdb_relay_refused(relay), 1);
    assert_int_equal(aimdb_relay_failed(relay), 2);
    assert_int_equal(aimdb_relay_stop(relay), 2);
    assert_int_equal(aimdb_relay_stop(NULL), 0);
    aimdb_db_stop(db);
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_timestamps_and_stop_drain),
        cmocka_unit_test(test_large_values_keep_their_bytes),
        cmocka_unit_test(test_a_stalled_relay_never_makes_the_pusher_wait),
        cmocka_unit_test(test_held_bytes_are_bounded),
        cmocka_unit_test(test_one_value_over_the_bound_is_taken),
        cmocka_unit_test(test_refusals_are_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
