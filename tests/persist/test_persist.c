/*
 * test_persist.c -- the persistence layer on a real database and a real
 * SQLite backend: taps store values with their produce time, nothing is
 * lost at stop, rejections and lag are counted, bad rows are skipped, the
 * history service and the raw JSON form answer as the protocol expects, its
 * query threads sleep when there is nothing to answer, and retention
 * deletes exactly what it should, at start and on demand.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "aimdb/history.h"
#include "aimdb/persist.h"
#include "history_fixture.h"

/* ------------------------------------------------------------ helpers */

static aimdb_persist *attach(aimdb_db *db, const char *path, const aimdb_persist_options *po,
                             unsigned queue_rows) {
    aimdb_sqlite_options o = {.path = path, .queue_rows = queue_rows,
                              .batch_rows = queue_rows ? queue_rows / 4 : 0};
    aimdb_persist *p = NULL;
    assert_int_equal(aimdb_persist_attach(db, fixture_open(&o), po, &p), AIMDB_OK);
    assert_ptr_equal(aimdb_persist_of(db), p);
    return p;
}

static aimdb_record *record(aimdb_db *db, const char *name, aimdb_buffer_cfg buf,
                            const aimdb_codec *codec) {
    aimdb_record *rec = NULL;
    assert_int_equal(aimdb_record_register(db, name, &buf, codec, &rec), AIMDB_OK);
    return rec;
}

static void produce_double(aimdb_record *rec, double v, int64_t ts) {
    assert_int_equal(aimdb_produce_at(rec, &v, sizeof(v), ts), AIMDB_OK);
}

static aimdb_persist_stats stats(aimdb_persist *p) {
    aimdb_persist_stats s;
    aimdb_persist_stats_get(p, &s);
    return s;
}

typedef struct tap_target {
    aimdb_persist *p;
    uint64_t seen; /* enqueued + rejected + lagged */
} tap_target;

static bool taps_caught_up(void *ctx) {
    tap_target *t = ctx;
    aimdb_persist_stats s = stats(t->p);
    return s.rows_enqueued + s.rows_rejected + s.rows_lagged >= t->seen;
}

/* Wait until the taps handled n values, then until the backend committed. */
static void settle(aimdb_persist *p, uint64_t n) {
    tap_target t = {p, n};
    assert_true(fixture_wait(taps_caught_up, &t, 10000));
    assert_int_equal(aimdb_persist_flush(p), AIMDB_OK);
}

static void attr_json(const char *key, const char *json, void *ctx) {
    char **want = ctx;
    if (strcmp(key, want[0]) == 0) want[1] = strdup(json);
}

static char *attr_of(aimdb_record *rec, const char *key) {
    char *want[2] = {(char *)key, NULL};
    aimdb_record_foreach_attr(rec, attr_json, want);
    return want[1];
}

/* ------------------------------------------------------------ the tap */

static void test_tap_stores_values_with_produce_time(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist_options po = {.default_retention_ms = 7 * 86400000LL};
    aimdb_persist *p = attach(db, ":memory:", &po, 0);
    aimdb_record *rec = record(db, "temp::a", AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    char *attr = attr_of(rec, "persist");
    assert_string_equal(attr, "true");
    free(attr);
    attr = attr_of(rec, "retention_ms");
    assert_string_equal(attr, "604800000");
    free(attr);
    assert_int_equal(aimdb_persist_record(p, rec, 3600000), AIMDB_OK); /* idempotent */
    attr = attr_of(rec, "retention_ms");
    assert_string_equal(attr, "3600000");
    free(attr);

    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    /* Recent times (within the retention the sweeper enforces meanwhile),
     * spaced apart and in the past so they cannot be the tap's own clock. */
    int64_t t0 = aimdb_runtime_pthread()->now_ms(NULL) - 60000;
    for (int i = 0; i < 10; i++) produce_double(rec, i + 0.5, t0 + i * 10);
    settle(p, 10);

    fixture_rows rows = {0};
    assert_int_equal(aimdb_persist_latest(p, "temp::*", 3, fixture_collect, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.v[0].value, "9.5");
    assert_int_equal(rows.v[0].stored_at, t0 + 90); /* the produce time, not the tap's */
    assert_string_equal(rows.v[2].value, "7.5");
    fixture_rows_free(&rows);

    assert_int_equal(aimdb_persist_range(p, "temp::a", t0 + 20, t0 + 40, 0, fixture_collect,
                                         &rows),
                     AIMDB_OK);
    assert_int_equal(rows.n, 3);
    fixture_rows_free(&rows);
    assert_int_equal(aimdb_persist_range(p, "temp::a", t0 + 40, t0 + 20, 0, fixture_collect,
                                         &rows),
                     AIMDB_EINVAL);
    assert_int_equal(aimdb_persist_latest(p, "*", 0, fixture_collect, &rows), AIMDB_EINVAL);

    aimdb_persist_stats s = stats(p);
    assert_int_equal(s.rows_enqueued, 10);
    assert_int_equal(s.backend.rows_stored, 10);
    aimdb_db_free(db);
}

static void test_stop_with_full_queue_loses_nothing(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "stop.db");
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = attach(db, path, NULL, 64); /* tiny queue: full all the time */
    aimdb_record *rec = record(db, "n", (aimdb_buffer_cfg){AIMDB_BUFFER_RING, 1 << 17},
                               &aimdb_codec_int64);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    const int64_t n = 50000;
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(aimdb_produce_at(rec, &i, sizeof(i), i), AIMDB_OK);
    aimdb_db_stop(db); /* drains the taps, then commits everything queued */
    aimdb_persist_stats s = stats(p);
    assert_int_equal(s.rows_lagged, 0);
    assert_int_equal(s.rows_enqueued, n);
    assert_int_equal(s.backend.rows_stored, n);
    assert_int_equal(aimdb_persist_flush(p), AIMDB_ESTOPPED);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_ESTOPPED);
    assert_int_equal(aimdb_persist_latest(p, "*", 1, fixture_collect, NULL), AIMDB_ESTOPPED);
    aimdb_db_free(db);
    assert_int_equal(fixture_count(path, NULL), n);
    assert_int_equal(fixture_count(path, "CAST(value_json AS INTEGER) = stored_at"), n);
    free(path);
    fixture_rmtree(dir);
}

static long even_to_json(const void *value, size_t len, char *out, size_t cap) {
    int64_t v;
    memcpy(&v, value, sizeof(v));
    if (len != sizeof(v) || v % 2) return -1;
    return snprintf(out, cap, "%lld", (long long)v);
}

static const aimdb_codec even_codec = {"even-only", sizeof(int64_t), even_to_json, NULL, NULL};

static void test_values_without_json_are_rejected_and_counted(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = attach(db, ":memory:", NULL, 0);
    aimdb_record *rec = record(db, "even", AIMDB_BUFFER_DEFAULT, &even_codec);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    for (int64_t i = 0; i < 10; i++) assert_int_equal(aimdb_produce(rec, &i, sizeof(i)), AIMDB_OK);
    settle(p, 10);
    aimdb_persist_stats s = stats(p);
    assert_int_equal(s.rows_rejected, 5);
    assert_int_equal(s.rows_enqueued, 5);
    fixture_rows rows = {0};
    assert_int_equal(aimdb_persist_latest(p, "even", 100, fixture_collect, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 5);
    for (size_t i = 0; i < rows.n; i++) assert_int_equal(atoi(rows.v[i].value) % 2, 0);
    fixture_rows_free(&rows);
    aimdb_db_free(db);
}

/* A long JSON value grows the tap's scratch buffer instead of failing. */
static void test_large_values_are_stored_whole(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = attach(db, ":memory:", NULL, 0);
    aimdb_record *rec = record(db, "doc", AIMDB_BUFFER_DEFAULT, &aimdb_codec_json);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    size_t len = 100000;
    char *doc = malloc(len + 1);
    memset(doc, 'x', len);
    doc[0] = '"';
    doc[len - 1] = '"';
    doc[len] = '\0';
    assert_int_equal(aimdb_produce(rec, doc, len), AIMDB_OK);
    settle(p, 1);
    fixture_rows rows = {0};
    assert_int_equal(aimdb_persist_latest(p, "doc", 1, fixture_collect, &rows), AIMDB_OK);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.v[0].value, doc);
    fixture_rows_free(&rows);
    free(doc);
    aimdb_db_free(db);
}

static void test_tap_lag_is_counted(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = attach(db, ":memory:", NULL, 0);
    aimdb_record *rec = record(db, "small", (aimdb_buffer_cfg){AIMDB_BUFFER_RING, 8},
                               &aimdb_codec_double);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    /* Before start no tap runs: the ring keeps only the last 8 of 100. */
    for (int i = 0; i < 100; i++) produce_double(rec, i, 1000 + i);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    settle(p, 100);
    aimdb_persist_stats s = stats(p);
    assert_int_equal(s.rows_lagged, 92);
    assert_int_equal(s.rows_enqueued, 8);
    aimdb_db_free(db);
}

/* -------------------------------------------------- reading history */

static void store_row(aimdb_persist *p, aimdb_backend b, const char *record, const char *json,
                      int64_t ts) {
    (void)p;
    assert_int_equal(b.ops->store(b.self, record, json, strlen(json), ts, NULL), AIMDB_OK);
}

static void test_corrupt_rows_are_skipped_and_counted(void **state) {
    (void)state;
    char *dir = fixture_tmpdir();
    char *path = fixture_path(dir, "corrupt.db");
    aimdb_sqlite_options o = {.path = path};
    aimdb_backend b = fixture_open(&o);
    store_row(NULL, b, "r", "1", 10);
    store_row(NULL, b, "r", "{\"ok\":true}", 60);
    assert_int_equal(b.ops->flush(b.self), AIMDB_OK);
    fixture_exec(path, "INSERT INTO record_history(record_name, value_json, stored_at) VALUES"
                       "('r', '{bad', 20), ('r', '01', 30), ('r', '5', 40.5),"
                       "('r', '\"' || char(1) || '\"', 50), ('r', CAST(X'22FF22' AS TEXT), 55)");
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = NULL;
    assert_int_equal(aimdb_persist_attach(db, b, NULL, &p), AIMDB_OK);

    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "r"};
    char err[128];
    assert_int_equal(aimdb_persist_query(p, &q, fixture_collect, &rows, err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(rows.n, 2);
    assert_string_equal(rows.v[0].value, "{\"ok\":true}");
    assert_string_equal(rows.v[1].value, "1");
    fixture_rows_free(&rows);
    assert_int_equal(stats(p).decode_skipped, 5);

    char *out = NULL;
    aimdb_history_request req = {.pattern = "r", .has_start = true};
    assert_int_equal(aimdb_persist_query_json(p, &req, &out, NULL, err, sizeof(err)), AIMDB_OK);
    cJSON *json = cJSON_Parse(out);
    assert_non_null(json);
    assert_int_equal(cJSON_GetObjectItem(json, "count")->valueint, 2);
    cJSON_Delete(json);
    free(out);
    assert_int_equal(stats(p).decode_skipped, 10);
    aimdb_db_free(db);
    free(path);
    fixture_rmtree(dir);
}

static int collect_typed(const char *record, const aimdb_value *v, void *ctx) {
    double *sum = ctx;
    double d;
    assert_string_equal(record, "typed");
    assert_int_equal(v->len, sizeof(d));
    memcpy(&d, v->data, sizeof(d));
    *sum += d;
    return 0;
}

static void test_typed_query_decodes_with_the_record_codec(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_sqlite_options o = {.path = ":memory:"};
    aimdb_backend b = fixture_open(&o);
    store_row(NULL, b, "typed", "1.25", 1);
    store_row(NULL, b, "typed", "2.5", 2);
    store_row(NULL, b, "typed", "\"not a number\"", 3);
    store_row(NULL, b, "typed-unknown", "3", 3);
    aimdb_persist *p = NULL;
    assert_int_equal(aimdb_persist_attach(db, b, NULL, &p), AIMDB_OK);
    record(db, "typed", AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
    assert_int_equal(aimdb_persist_flush(p), AIMDB_OK);
    double sum = 0;
    uint64_t skipped = 0;
    aimdb_query_params q = {.pattern = "typed"};
    assert_int_equal(aimdb_persist_query_values(p, &q, collect_typed, &sum, &skipped), AIMDB_OK);
    assert_true(sum == 3.75);
    assert_int_equal(skipped, 1);
    q.pattern = "typed-*"; /* rows of a record this db does not know */
    assert_int_equal(aimdb_persist_query_values(p, &q, collect_typed, &sum, &skipped), AIMDB_OK);
    assert_int_equal(skipped, 2);
    assert_int_equal(stats(p).decode_skipped, 2);
    aimdb_db_free(db);
}

/* -------------------------------------------------- history service */

typedef struct answer {
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool answered;
    int status;
    size_t count;
    char *values, *error;
} answer;

static void answer_init(answer *a) {
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->done, NULL);
}

static void answer_free(answer *a) {
    free(a->values);
    free(a->error);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->done);
}

static void on_done(const aimdb_history_result *res, void *ctx) {
    answer *a = ctx;
    pthread_mutex_lock(&a->lock);
    a->status = res->status;
    a->count = 0;
    a->values = NULL;
    if (res->result_json) { /* the values array of the result object, and its count */
        cJSON *result = cJSON_ParseWithLength(res->result_json, res->result_len);
        assert_non_null(result);
        a->count = (size_t)cJSON_GetObjectItem(result, "count")->valuedouble;
        a->values = cJSON_PrintUnformatted(cJSON_GetObjectItem(result, "values"));
        cJSON_Delete(result);
    }
    a->error = res->error ? strdup(res->error) : NULL;
    a->answered = true;
    pthread_cond_signal(&a->done);
    pthread_mutex_unlock(&a->lock);
}

static void answer_wait(answer *a) {
    pthread_mutex_lock(&a->lock);
    while (!a->answered) pthread_cond_wait(&a->done, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

static aimdb_visibility not_a2(const char *record, void *ctx) {
    (void)ctx;
    return strcmp(record, "a::2") != 0 ? AIMDB_SEE_ALL : AIMDB_SEE_NONE;
}

static const aimdb_access without_a2 = {not_a2, NULL, NULL, NULL, 0};

/* An access that lists all it may show (access.h): only those are read. */
static const char *const listed_names[] = {"a::0", "a::1", "b::1"};

static aimdb_visibility only_listed(const char *record, void *ctx) {
    (void)ctx;
    for (size_t i = 0; i < 3; i++)
        if (strcmp(record, listed_names[i]) == 0) return AIMDB_SEE_ALL;
    return AIMDB_SEE_NONE;
}

static const aimdb_access listed = {only_listed, NULL, NULL, listed_names, 3};

static void ask(aimdb_history_service *svc, const aimdb_history_request *req, answer *a) {
    answer_init(a);
    assert_int_equal(svc->query_json(svc->self, req, on_done, a), AIMDB_OK);
    answer_wait(a);
}

static void test_history_service_answers_json(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist *p = attach(db, ":memory:", NULL, 0);
    const char *names[] = {"a::1", "a::2", "b::1"};
    for (int i = 0; i < 3; i++) {
        aimdb_record *rec = record(db, names[i], AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
        assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
        for (int v = 0; v < 5; v++) produce_double(rec, v, 1000 + v);
    }
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    settle(p, 15);
    aimdb_history_service *svc = aimdb_ext_get(db, AIMDB_HISTORY_EXT);
    assert_non_null(svc);

    answer a;
    aimdb_history_request req = {.pattern = "a::*", .limit = 1};
    ask(svc, &req, &a);
    assert_int_equal(a.status, AIMDB_OK);
    assert_int_equal(a.count, 2);
    cJSON *json = cJSON_Parse(a.values);
    assert_true(cJSON_IsArray(json));
    assert_int_equal(cJSON_GetArraySize(json), 2);
    cJSON *first = cJSON_GetArrayItem(json, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "record")->valuestring, "a::1");
    assert_true(cJSON_GetObjectItem(first, "value")->valuedouble == 4);
    assert_true(cJSON_GetObjectItem(first, "stored_at")->valuedouble == 1004);
    cJSON_Delete(json);
    answer_free(&a);

    req = (aimdb_history_request){.pattern = "a::*", .access = &without_a2};
    ask(svc, &req, &a);
    assert_int_equal(a.count, 5);
    assert_null(strstr(a.values, "a::2"));
    answer_free(&a);

    req = (aimdb_history_request){.pattern = "*", .limit = 1, .access = &listed};
    ask(svc, &req, &a);
    assert_int_equal(a.count, 2); /* a::0 has no rows */
    assert_non_null(strstr(a.values, "\"a::1\""));
    assert_true(strstr(a.values, "\"a::1\"") < strstr(a.values, "\"b::1\""));
    answer_free(&a);
    req = (aimdb_history_request){.pattern = "*::1", .access = &listed};
    ask(svc, &req, &a);
    assert_int_equal(a.count, 10);
    assert_null(strstr(a.values, "a::2"));
    answer_free(&a);
    req = (aimdb_history_request){.pattern = "b*", .access = &listed};
    ask(svc, &req, &a);
    assert_int_equal(a.count, 5);
    assert_null(strstr(a.values, "a::"));
    answer_free(&a);

    req = (aimdb_history_request){.pattern = "*", .max_bytes = 100};
    ask(svc, &req, &a);
    assert_int_equal(a.status, AIMDB_ETOOBIG);
    assert_non_null(strstr(a.error, "start/end"));
    assert_non_null(strstr(a.error, "limit"));
    answer_free(&a);

    req = (aimdb_history_request){.pattern = "*", .max_bytes = 100000};
    ask(svc, &req, &a); /* fits: the whole array, never a truncated one */
    assert_int_equal(a.status, AIMDB_OK);
    assert_int_equal(a.count, 15);
    answer_free(&a);

    req = (aimdb_history_request){.has_start = true, .has_end = true, .start_ms = 5,
                                  .end_ms = 4};
    assert_int_equal(svc->query_json(svc->self, &req, on_done, NULL), AIMDB_EINVAL);
    aimdb_db_stop(db);
    req = (aimdb_history_request){.pattern = "*"};
    assert_int_equal(svc->query_json(svc->self, &req, on_done, NULL), AIMDB_ESTOPPED);
    aimdb_db_free(db);
}

static void test_queued_queries_are_answered_at_stop(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    attach(db, ":memory:", NULL, 0);
    aimdb_history_service *svc = aimdb_ext_get(db, AIMDB_HISTORY_EXT);
    answer a;
    answer_init(&a);
    aimdb_history_request req = {.pattern = "*"};
    /* Not started: no query thread yet, so the query waits in the queue. */
    assert_int_equal(svc->query_json(svc->self, &req, on_done, &a), AIMDB_OK);
    aimdb_db_free(db);
    assert_true(a.answered);
    assert_int_equal(a.status, AIMDB_ESTOPPED);
    answer_free(&a);
}

/* Submitters on several threads racing the query threads and then the
 * database stopping, each until it is refused: every accepted query is
 * answered exactly once (with its result or AIMDB_ESTOPPED), every
 * refused one never. */
#define RACE_THREADS 4
#define RACE_EACH 100000
#define RACE_STOP_AFTER 2000

typedef struct race {
    aimdb_history_service *svc;
    int status[RACE_THREADS][RACE_EACH];
    _Atomic int answers[RACE_THREADS][RACE_EACH];
    int tried[RACE_THREADS];
    _Atomic int submitted;
} race;

static void count_answer(const aimdb_history_result *res, void *ctx) {
    (void)res;
    atomic_fetch_add((_Atomic int *)ctx, 1);
}

typedef struct racer {
    race *r;
    int thread;
} racer;

static void *submit_many(void *arg) {
    racer *me = arg;
    race *r = me->r;
    aimdb_history_request req = {.pattern = "nothing::*"};
    for (int i = 0; i < RACE_EACH; i++) {
        int rc = r->svc->query_json(r->svc->self, &req, count_answer, &r->answers[me->thread][i]);
        r->status[me->thread][i] = rc;
        atomic_fetch_add(&r->submitted, 1);
        if (rc == AIMDB_ESTOPPED) {
            r->tried[me->thread] = i + 1;
            return NULL;
        }
    }
    r->tried[me->thread] = RACE_EACH;
    return NULL;
}

static void test_queries_from_many_threads_are_answered_once(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist_options po = {.query_threads = 3, .query_queue = 100000};
    attach(db, ":memory:", &po, 0);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    static race r;
    memset(&r, 0, sizeof(r));
    r.svc = aimdb_ext_get(db, AIMDB_HISTORY_EXT);
    pthread_t t[RACE_THREADS];
    racer who[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        who[i] = (racer){&r, i};
        assert_int_equal(pthread_create(&t[i], NULL, submit_many, &who[i]), 0);
    }
    while (atomic_load(&r.submitted) < RACE_STOP_AFTER) sched_yield();
    aimdb_db_stop(db);
    for (int i = 0; i < RACE_THREADS; i++) pthread_join(t[i], NULL);
    int accepted = 0, refused = 0;
    for (int i = 0; i < RACE_THREADS; i++)
        for (int j = 0; j < r.tried[i]; j++) {
            bool ok = r.status[i][j] == AIMDB_OK;
            assert_true(ok || r.status[i][j] == AIMDB_ESTOPPED || r.status[i][j] == AIMDB_EAGAIN);
            assert_int_equal(atomic_load(&r.answers[i][j]), ok ? 1 : 0);
            accepted += ok;
            refused += !ok;
        }
    assert_true(accepted >= RACE_STOP_AFTER / 2);
    assert_true(refused >= RACE_THREADS); /* each thread ended on a refusal */
    aimdb_db_free(db);
}

static _Atomic int blocks_released;

static void count_and_free(void *self, void *block) {
    (void)self;
    atomic_fetch_add(&blocks_released, 1);
    free(block);
}

/* A query's copy is made on the submitter's thread and freed through the
 * runtime, which a host uses to free it back where it was made
 * (runtime.h): answered or answered at stop, each goes that way once. */
static void test_query_copies_go_back_through_the_runtime(void **state) {
    (void)state;
    aimdb_runtime rt = *aimdb_runtime_pthread();
    rt.release = count_and_free;
    atomic_store(&blocks_released, 0);
    aimdb_db *db = aimdb_db_new(&(aimdb_db_options){.runtime = &rt});
    attach(db, ":memory:", NULL, 0);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    aimdb_history_service *svc = aimdb_ext_get(db, AIMDB_HISTORY_EXT);
    enum { ASKED = 10 };
    for (int i = 0; i < ASKED; i++) {
        answer a;
        ask(svc, &(aimdb_history_request){.pattern = "*"}, &a);
        answer_free(&a);
    }
    aimdb_db_stop(db); /* joins the query threads: every release is done */
    assert_int_equal(atomic_load(&blocks_released), ASKED);
    aimdb_db_free(db);
}

/* CPU time of this process so far, user + system, in ms. */
static double process_cpu_ms(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

/* A query thread polls for a moment after each query (query_service.c);
 * then it must sleep: a gateway between two dashboard refreshes spends
 * nothing on its query threads.  A thread that never stopped polling would
 * take the whole 500 ms measured here. */
static void test_query_threads_sleep_between_bursts(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist_options po = {.query_threads = 2};
    attach(db, ":memory:", &po, 0);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    aimdb_history_service *svc = aimdb_ext_get(db, AIMDB_HISTORY_EXT);
    for (int i = 0; i < 20; i++) {
        answer a;
        aimdb_history_request req = {.pattern = "*", .limit = 1};
        ask(svc, &req, &a);
        assert_int_equal(a.status, AIMDB_OK);
        answer_free(&a);
    }
    nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL); /* past any polling */
    double cpu0 = process_cpu_ms();
    nanosleep(&(struct timespec){0, 500 * 1000000L}, NULL);
    double idle_cpu = process_cpu_ms() - cpu0;
    aimdb_db_stop(db);
    aimdb_db_free(db);
    if (idle_cpu >= 50) fail_msg("%.1f ms of CPU in 500 ms with no query to run", idle_cpu);
}

/* ------------------------------------------------------- JSON form */

static int as_json(aimdb_persist *p, aimdb_history_request req, char **out) {
    char err[256];
    *out = NULL;
    return aimdb_persist_query_json(p, &req, out, NULL, err, sizeof(err));
}

static void test_json_form_is_the_protocols_result(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_sqlite_options o = {.path = ":memory:"};
    aimdb_backend b = fixture_open(&o);
    for (int64_t ts = 1; ts <= 5; ts++) {
        store_row(NULL, b, "x::1", "1", ts);
        store_row(NULL, b, "x::2", "2", ts);
    }
    aimdb_persist *p = NULL;
    assert_int_equal(aimdb_persist_attach(db, b, NULL, &p), AIMDB_OK);
    assert_int_equal(aimdb_persist_flush(p), AIMDB_OK);
    char *out;

    assert_int_equal(as_json(p, (aimdb_history_request){.limit = 1}, &out), AIMDB_OK);
    assert_string_equal(out, "{\"count\":2,\"values\":[{\"record\":\"x::1\",\"value\":1,"
                             "\"stored_at\":5},{\"record\":\"x::2\",\"value\":2,\"stored_at\":5}]}");
    free(out);
    assert_int_equal(as_json(p, (aimdb_history_request){.pattern = "x::2", .has_start = true,
                                                        .start_ms = 2},
                             &out),
                     AIMDB_OK);
    assert_non_null(strstr(out, "\"count\":4")); /* limit 0: every row */
    free(out);
    /* Buckets of 2 ms: [4,5], [2,3] (and [0,1] beyond the limit). */
    aimdb_history_request agg = {.pattern = "x::1", .every_ms = 2, .limit = 2, .n_agg = 2,
                                 .agg = {AIMDB_AGG_SUM, AIMDB_AGG_COUNT}};
    assert_int_equal(as_json(p, agg, &out), AIMDB_OK);
    assert_string_equal(out, "{\"count\":2,\"skipped\":0,\"values\":[{\"record\":\"x::1\","
                             "\"value\":{\"sum\":2,\"count\":2},\"stored_at\":4},{\"record\":"
                             "\"x::1\",\"value\":{\"sum\":2,\"count\":2},\"stored_at\":2}]}");
    free(out);
    agg = (aimdb_history_request){.pattern = "*", .every_ms = 2, .max_bytes = 60};
    assert_int_equal(as_json(p, agg, &out), AIMDB_ETOOBIG);
    assert_null(out);
    aimdb_db_free(db);
}

/* ------------------------------------------------------- retention */

typedef struct sweep_target {
    aimdb_persist *p;
} sweep_target;

static bool swept_once(void *ctx) { return stats(((sweep_target *)ctx)->p).sweeps >= 1; }

static void test_retention_at_start_and_per_record(void **state) {
    (void)state;
    const int64_t hour = 3600000;
    int64_t now = aimdb_runtime_pthread()->now_ms(NULL);
    aimdb_sqlite_options o = {.path = ":memory:"};
    aimdb_backend b = fixture_open(&o);
    const char *names[] = {"short", "default", "gone::x", "forever-ish", "forever"};
    for (int i = 0; i < 5; i++)
        for (int64_t age = 1; age <= 5; age++) /* 30, 60, ... 150 minutes old */
            store_row(NULL, b, names[i], "0", now - age * hour / 2 - 1000);

    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist_options po = {.default_retention_ms = 2 * hour};
    aimdb_persist *p = NULL;
    assert_int_equal(aimdb_persist_attach(db, b, &po, &p), AIMDB_OK);
    aimdb_record *shorter = record(db, "short", AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
    aimdb_record *dflt = record(db, "default", AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
    aimdb_record *longer = record(db, "forever-ish", AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
    aimdb_record *forever = record(db, "forever", AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
    assert_int_equal(aimdb_persist_record(p, shorter, hour), AIMDB_OK);
    assert_int_equal(aimdb_persist_record(p, dflt, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    assert_int_equal(aimdb_persist_record(p, longer, 100 * hour), AIMDB_OK);
    assert_int_equal(aimdb_persist_record(p, forever, 0), AIMDB_OK); /* retention=0: keep */
    assert_int_equal(aimdb_persist_flush(p), AIMDB_OK);

    /* The first sweep runs by itself at start (catch-up after downtime). */
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    sweep_target t = {p};
    assert_true(fixture_wait(swept_once, &t, 10000));
    aimdb_persist_stats s = stats(p);
    /* Rows are 30, 60, 90, 120 and 150 minutes (and a second) old.  short
     * (1 h) loses 4; default and gone::x (2 h) lose 2 each; forever-ish and forever none. */
    assert_int_equal(s.swept, 8);
    assert_int_equal(s.sweep_errors, 0);

    fixture_rows rows = {0};
    aimdb_query_params q = {.pattern = "*"};
    assert_int_equal(aimdb_persist_query(p, &q, fixture_collect, &rows, NULL, 0), AIMDB_OK);
    size_t per[5] = {0};
    for (size_t i = 0; i < rows.n; i++)
        for (int n = 0; n < 5; n++)
            if (strcmp(rows.v[i].record, names[n]) == 0) per[n]++;
    assert_int_equal(per[0], 1);
    assert_int_equal(per[1], 3);
    assert_int_equal(per[2], 3);
    assert_int_equal(per[3], 5);
    assert_int_equal(per[4], 5);
    fixture_rows_free(&rows);

    /* A shorter retention takes effect at the next sweep. */
    assert_int_equal(aimdb_persist_record(p, longer, hour / 4), AIMDB_OK);
    uint64_t deleted = 0;
    assert_int_equal(aimdb_persist_sweep(p, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 5);
    deleted = 0;
    assert_int_equal(aimdb_persist_sweep(p, &deleted), AIMDB_OK);
    assert_int_equal(deleted, 0);
    aimdb_db_free(db);
}

/* ------------------------------------------------------- misuse */

static void test_bad_calls_get_clear_errors(void **state) {
    (void)state;
    aimdb_sqlite_options o = {.path = ":memory:"};
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_persist_options bad = {.default_retention_ms = -1};
    assert_int_equal(aimdb_persist_attach(db, fixture_open(&o), &bad, NULL), AIMDB_EINVAL);
    assert_int_equal(aimdb_persist_attach(NULL, fixture_open(&o), NULL, NULL), AIMDB_EINVAL);
    assert_null(aimdb_persist_of(db));
    aimdb_persist *p = attach(db, ":memory:", NULL, 0);
    assert_int_equal(aimdb_persist_attach(db, fixture_open(&o), NULL, NULL), AIMDB_ESTATE);
    aimdb_record *rec = record(db, "r", AIMDB_BUFFER_DEFAULT, &aimdb_codec_double);
    assert_int_equal(aimdb_persist_record(p, rec, -5), AIMDB_EINVAL);
    assert_int_equal(aimdb_persist_record(p, rec, AIMDB_RETENTION_DEFAULT - 1), AIMDB_EINVAL);
    assert_int_equal(aimdb_persist_record(NULL, rec, AIMDB_RETENTION_DEFAULT), AIMDB_EINVAL);
    assert_int_equal(aimdb_persist_query(p, NULL, fixture_collect, NULL, NULL, 0), AIMDB_EINVAL);
    aimdb_db_free(db);

    db = aimdb_db_new(NULL);
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    assert_int_equal(aimdb_persist_attach(db, fixture_open(&o), NULL, NULL), AIMDB_ESTATE);
    aimdb_db_stop(db);
    assert_int_equal(aimdb_persist_attach(db, fixture_open(&o), NULL, NULL), AIMDB_ESTATE);
    aimdb_db_free(db);

    /* Someone else serves history already: refused, not shadowed. */
    db = aimdb_db_new(NULL);
    static aimdb_history_service other;
    assert_int_equal(aimdb_ext_set(db, AIMDB_HISTORY_EXT, &other, NULL), AIMDB_OK);
    assert_int_equal(aimdb_persist_attach(db, fixture_open(&o), NULL, NULL), AIMDB_ESTATE);
    assert_null(aimdb_persist_of(db));
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tap_stores_values_with_produce_time),
        cmocka_unit_test(test_stop_with_full_queue_loses_nothing),
        cmocka_unit_test(test_values_without_json_are_rejected_and_counted),
        cmocka_unit_test(test_large_values_are_stored_whole),
        cmocka_unit_test(test_tap_lag_is_counted),
        cmocka_unit_test(test_corrupt_rows_are_skipped_and_counted),
        cmocka_unit_test(test_typed_query_decodes_with_the_record_codec),
        cmocka_unit_test(test_history_service_answers_json),
        cmocka_unit_test(test_queued_queries_are_answered_at_stop),
        cmocka_unit_test(test_queries_from_many_threads_are_answered_once),
        cmocka_unit_test(test_query_threads_sleep_between_bursts),
        cmocka_unit_test(test_query_copies_go_back_through_the_runtime),
        cmocka_unit_test(test_json_form_is_the_protocols_result),
        cmocka_unit_test(test_retention_at_start_and_per_record),
        cmocka_unit_test(test_bad_calls_get_clear_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
