/*
 * test_aimx_query.c -- record.query end to end on the real persistence
 * layer and the SQLite backend (":memory:"): defaults, patterns, time
 * ranges, limits, the access predicate, the reply limit, replies on a query
 * thread, the handler freed while a query runs, a flood of queries, the
 * query's copies freed through the runtime, and queries after stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "aimdb/sqlite.h"
#include "aimx_test.h"

typedef struct fixture {
    aimdb_db *db;
    aimdb_persist *persist;
    aimdb_aimx *x;
} fixture;

static aimdb_record *persisted(fixture *f, const char *name, const aimdb_codec *codec) {
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(f->db, name, NULL, codec, &rec), AIMDB_OK);
    assert_int_equal(aimdb_persist_record(f->persist, rec, AIMDB_RETENTION_DEFAULT), AIMDB_OK);
    return rec;
}

static void put(aimdb_record *rec, double v, int64_t ts) {
    assert_int_equal(aimdb_produce_at(rec, &v, sizeof(v), ts), AIMDB_OK);
}

/* Taps run on workers: wait until they have handed every value to the
 * backend, then until the backend has committed them. */
static void wait_stored(aimdb_persist *p, uint64_t rows) {
    int64_t deadline = aimdb_monotonic_ms() + 10000;
    aimdb_persist_stats stats;
    for (aimdb_persist_stats_get(p, &stats); stats.rows_enqueued < rows;
         aimdb_persist_stats_get(p, &stats)) {
        assert_true(aimdb_monotonic_ms() < deadline);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    assert_int_equal(aimdb_persist_flush(p), AIMDB_OK);
}

/* History (record @ stored_at = value):
 *   secret::x  99@1000
 *   state      {"on":true}@5000
 *   temp::a    1@1000 2@2000 3@3000
 *   temp::b    10@1500 20@2500
 *   temp_x     7@4000         tempAx 8@4000   ('_' is literal)  */
static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    f->db = test_db_new();
    aimdb_sqlite_options so = {.path = ":memory:"};
    aimdb_backend backend;
    char err[256];
    assert_int_equal(aimdb_sqlite_open(&so, &backend, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(aimdb_persist_attach(f->db, backend, NULL, &f->persist), AIMDB_OK);
    aimdb_record *a = persisted(f, "temp::a", &aimdb_codec_double);
    aimdb_record *b = persisted(f, "temp::b", &aimdb_codec_double);
    aimdb_record *s = persisted(f, "secret::x", &aimdb_codec_double);
    aimdb_record *st = persisted(f, "state", &aimdb_codec_json);
    aimdb_record *u = persisted(f, "temp_x", &aimdb_codec_double);
    aimdb_record *v = persisted(f, "tempAx", &aimdb_codec_double);
    assert_int_equal(aimdb_db_start(f->db), AIMDB_OK);
    put(a, 1, 1000), put(a, 2, 2000), put(a, 3, 3000);
    put(b, 10, 1500), put(b, 20, 2500);
    put(s, 99, 1000);
    put(u, 7, 4000), put(v, 8, 4000);
    const char *on = "{\"on\":true}";
    assert_int_equal(aimdb_produce_at(st, on, strlen(on), 5000), AIMDB_OK);
    wait_stored(f->persist, 9);
    f->x = aimdb_aimx_new(f->db, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    aimdb_aimx_free(f->x);
    aimdb_db_free(f->db);
    free(f);
    return 0;
}

static bool refuse_secrets(const char *record, void *ctx) {
    (void)ctx;
    return strncmp(record, "secret::", 8) != 0;
}

/* The values of a result as "record@stored_at=value,..." after checking
 * the result's shape and that count matches. */
static void rows_of(const cJSON *reply, char *out, size_t cap) {
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(reply, "result");
    if (!result) fail_msg("error reply: %s", error_message(reply));
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(result, "count");
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(result, "values");
    assert_true(cJSON_IsNumber(count) && cJSON_IsArray(values));
    assert_int_equal(count->valueint, cJSON_GetArraySize(values));
    size_t used = 0;
    out[0] = '\0';
    const cJSON *row;
    cJSON_ArrayForEach(row, values) {
        const cJSON *record = cJSON_GetObjectItemCaseSensitive(row, "record");
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(row, "stored_at");
        char *value = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(row, "value"));
        assert_true(cJSON_IsString(record) && cJSON_IsNumber(at) && value);
        used += (size_t)snprintf(out + used, cap - used, "%s%s@%.0f=%s", used ? "," : "",
                                 record->valuestring, at->valuedouble, value);
        cJSON_free(value);
        assert_true(used < cap);
    }
}

static void assert_query(fixture *f, const char *params, test_allow_fn allow,
                         const char *want) {
    char request[256], rows[1024];
    snprintf(request, sizeof(request), "{\"id\":1,\"method\":\"record.query\"%s%s}",
             params ? ",\"params\":" : "", params ? params : "");
    cJSON *reply = ask_json(f->x, request, allow, NULL);
    rows_of(reply, rows, sizeof(rows));
    if (strcmp(rows, want) != 0) fail_msg("%s:\n got  %s\n want %s", request, rows, want);
    cJSON_Delete(reply);
}

static void test_query_defaults(void **state) {
    fixture *f = *state;
    /* no limit, no time bound: the newest row of every record, by name */
    const char *latest = "secret::x@1000=99,state@5000={\"on\":true},temp::a@3000=3,"
                         "temp::b@2500=20,tempAx@4000=8,temp_x@4000=7";
    assert_query(f, NULL, NULL, latest);
    assert_query(f, "{}", NULL, latest);
    assert_query(f, "{\"name\":\"*\"}", NULL, latest);
}

static void test_query_patterns_and_limits(void **state) {
    fixture *f = *state;
    assert_query(f, "{\"name\":\"temp::*\",\"limit\":2}", NULL,
                 "temp::a@3000=3,temp::a@2000=2,temp::b@2500=20,temp::b@1500=10");
    assert_query(f, "{\"name\":\"temp::a\",\"limit\":100000}", NULL,
                 "temp::a@3000=3,temp::a@2000=2,temp::a@1000=1");
    assert_query(f, "{\"name\":\"temp_x\"}", NULL, "temp_x@4000=7"); /* '_' is literal */
    assert_query(f, "{\"name\":\"*x\"}", NULL, "secret::x@1000=99,tempAx@4000=8,temp_x@4000=7");
    assert_query(f, "{\"name\":\"TEMP::*\"}", NULL, "");               /* case-sensitive */
    assert_query(f, "{\"name\":\"nothing\"}", NULL, "");
}

static void test_query_time_ranges(void **state) {
    fixture *f = *state;
    /* a time bound without limit: every row in range, both ends inclusive */
    assert_query(f, "{\"start\":1500,\"end\":2500}", NULL,
                 "temp::a@2000=2,temp::b@2500=20,temp::b@1500=10");
    assert_query(f, "{\"name\":\"temp::*\",\"start\":2000}", NULL,
                 "temp::a@3000=3,temp::a@2000=2,temp::b@2500=20");
    assert_query(f, "{\"end\":1000}", NULL, "secret::x@1000=99,temp::a@1000=1");
    assert_query(f, "{\"start\":1000,\"end\":3000,\"limit\":1}", NULL,
                 "secret::x@1000=99,temp::a@3000=3,temp::b@2500=20");
    assert_query(f, "{\"start\":2000,\"end\":2000}", NULL, "temp::a@2000=2");
    assert_query(f, "{\"start\":-5,\"end\":999}", NULL, "");
}

static void test_query_predicate(void **state) {
    fixture *f = *state;
    assert_query(f, "{\"name\":\"*::*\"}", refuse_secrets, "temp::a@3000=3,temp::b@2500=20");
    assert_query(f, "{\"name\":\"secret::*\",\"start\":0}", refuse_secrets, "");
}

/* The id is echoed as written on the asynchronous path too. */
static void test_query_echoes_id(void **state) {
    fixture *f = *state;
    const char *request = "{\"id\":123456789012345678901,\"method\":\"record.query\","
                          "\"params\":{\"name\":\"temp::b\"}}";
    char *text = ask(f->x, request, strlen(request), NULL, NULL);
    assert_non_null(strstr(text, "{\"id\":123456789012345678901,\"result\":{\"count\":1,"));
    free(text);
    request = "{\"method\":\"record.query\",\"id\":\"q\\u00e9\",\"params\":{\"name\":\"x\"}}";
    text = ask(f->x, request, strlen(request), NULL, NULL);
    assert_string_equal(text, "{\"id\":\"q\\u00e9\",\"result\":{\"count\":0,\"values\":[]}}");
    free(text);
}

/* Too big for one reply: query_error saying how to narrow; narrowed, fine. */
static void test_query_reply_limit(void **state) {
    fixture *f = *state;
    aimdb_aimx_options opts = {.max_reply_bytes = 300};
    aimdb_aimx *small = aimdb_aimx_new(f->db, &opts);
    unsigned logged = test_log_lines();
    cJSON *reply = ask_json(small, "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":0}}",
                            NULL, NULL);
    assert_string_equal(error_code(reply), "query_error");
    assert_string_equal(error_message(reply),
                        "the result is over the reply limit of 300 bytes; narrow the query "
                        "with start/end (a shorter time range), a smaller limit or a wider every");
    assert_true(test_log_lines() > logged);
    cJSON_Delete(reply);
    const char *narrow = "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":4500}}";
    char *text = ask(small, narrow, strlen(narrow), NULL, NULL);
    assert_string_equal(text, "{\"id\":1,\"result\":{\"count\":1,\"values\":[{\"record\":"
                              "\"state\",\"value\":{\"on\":true},\"stored_at\":5000}]}}");
    aimdb_aimx_free(small);

    /* the limit is exact: a reply of max_reply_bytes is sent, one more is not */
    size_t exact = strlen(text);
    free(text);
    for (size_t limit = exact - 1; limit <= exact; limit++) {
        opts.max_reply_bytes = limit;
        small = aimdb_aimx_new(f->db, &opts);
        reply = ask_json(small, narrow, NULL, NULL);
        assert_int_equal(cJSON_HasObjectItem(reply, "result"), limit == exact);
        cJSON_Delete(reply);
        aimdb_aimx_free(small);
    }
}

/* ------------------------------------------------------------- threads */

typedef struct thread_catch {
    reply_catch c;
    pthread_t replier;
} thread_catch;

static void note_thread(char *reply, size_t len, void *ctx) {
    thread_catch *t = ctx;
    t->replier = pthread_self();
    reply_catch_fn(reply, len, &t->c);
}

/* The reply comes from a query thread, never the caller's; and the handler
 * may be freed before it arrives. */
static void test_query_replies_on_query_thread(void **state) {
    fixture *f = *state;
    aimdb_aimx *x = aimdb_aimx_new(f->db, NULL);
    thread_catch t;
    reply_catch_init(&t.c);
    t.replier = pthread_self();
    const char *request = "{\"id\":9,\"method\":\"record.query\",\"params\":{\"limit\":3}}";
    test_access access;
    aimdb_aimx_handle(x, request, strlen(request), test_access_of(&access, refuse_secrets, NULL),
                      note_thread, &t);
    aimdb_aimx_free(x);
    reply_catch_wait(&t.c);
    assert_false(pthread_equal(t.replier, pthread_self()));
    assert_non_null(strstr(t.c.text, "\"count\":8"));
    reply_catch_free(&t.c);
}

/* Far more queries than the service queues: each gets exactly one reply,
 * a result or busy with a retry hint, nothing else. */
static void test_query_flood(void **state) {
    fixture *f = *state;
    enum { N = 300 };
    reply_catch *c = calloc(N, sizeof(*c));
    const char *request = "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":0}}";
    for (int i = 0; i < N; i++) {
        reply_catch_init(&c[i]);
        aimdb_aimx_handle(f->x, request, strlen(request), NULL, reply_catch_fn, &c[i]);
    }
    int results = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        reply_catch_wait(&c[i]);
        cJSON *reply = cJSON_Parse(c[i].text);
        if (cJSON_GetObjectItemCaseSensitive(reply, "result")) {
            results++;
        } else {
            assert_string_equal(error_code(reply), "busy");
            assert_string_equal(error_message(reply),
                                "the history queue is full (too many queries pending); retry "
                                "in 100 ms");
            refused++;
        }
        cJSON_Delete(reply);
        reply_catch_free(&c[i]);
    }
    assert_int_equal(results + refused, N);
    /* At least a queue's worth (64) is answered, less the one slot the
     * previous test's query may still hold: the service frees a slot only
     * after that query's reply callback has returned. */
    assert_true(results >= 63);
    free(c);
}

/* After stop the service refuses: internal_error, logged. */
/* A query's copies -- the handler's call and the history service's job --
 * are made on the caller's thread and freed through the runtime, which a
 * host uses to free them where they were made (runtime.h). */
static void test_query_copies_go_back_through_the_runtime(void **state) {
    fixture *f = *state;
    unsigned before = test_released_blocks();
    enum { ASKED = 5 };
    for (int i = 0; i < ASKED; i++)
        assert_query(f, "{\"name\":\"temp::b\",\"limit\":1}", NULL, "temp::b@2500=20");
    /* Released right after each reply, on the query thread (at least: an
     * earlier test's last releases may land in this window too). */
    int64_t deadline = aimdb_monotonic_ms() + 10000;
    while (test_released_blocks() - before < 2 * ASKED && aimdb_monotonic_ms() < deadline) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    assert_true(test_released_blocks() - before >= 2 * ASKED);
}

static void test_query_after_stop(void **state) {
    fixture *f = *state;
    aimdb_db_stop(f->db);
    unsigned logged = test_log_lines();
    cJSON *reply = ask_json(f->x, "{\"id\":1,\"method\":\"record.query\"}", NULL, NULL);
    assert_string_equal(error_code(reply), "internal_error");
    assert_non_null(strstr(error_message(reply), "could not be queued"));
    assert_true(test_log_lines() > logged);
    cJSON_Delete(reply);
    /* live reads still work on a stopped database */
    reply = ask_json(f->x, "{\"id\":2,\"method\":\"record.get\",\"params\":{\"record\":\"temp::a\"}}",
                     NULL, NULL);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(reply, "result")->valuedouble, 3);
    cJSON_Delete(reply);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_defaults),
        cmocka_unit_test(test_query_patterns_and_limits),
        cmocka_unit_test(test_query_time_ranges),
        cmocka_unit_test(test_query_predicate),
        cmocka_unit_test(test_query_echoes_id),
        cmocka_unit_test(test_query_reply_limit),
        cmocka_unit_test(test_query_replies_on_query_thread),
        cmocka_unit_test(test_query_flood),
        cmocka_unit_test(test_query_copies_go_back_through_the_runtime),
        cmocka_unit_test(test_query_after_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
