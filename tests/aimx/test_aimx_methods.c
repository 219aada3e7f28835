/*
 * test_aimx_methods.c -- record.list and record.get on a live database:
 * the result shapes, sorting, attributes and their defaults, the access
 * predicate, patterns, the reply limit, values with no JSON form, and many
 * threads asking at once while values are produced.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimx_test.h"

static aimdb_record *add(aimdb_db *db, const char *name, const aimdb_buffer_cfg *buffer,
                         const aimdb_codec *codec) {
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, name, buffer, codec, &rec), AIMDB_OK);
    return rec;
}

static void produce_double(aimdb_record *rec, double v) {
    assert_int_equal(aimdb_produce(rec, &v, sizeof(v)), AIMDB_OK);
}

static void produce_text(aimdb_record *rec, const char *json) {
    assert_int_equal(aimdb_produce(rec, json, strlen(json)), AIMDB_OK);
}

static const cJSON *result_of(const cJSON *reply) {
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(reply, "result");
    if (!result) fail_msg("no result: %s", error_message(reply));
    return result;
}

/* The names of a record.list result, comma-separated. */
static void names_of(const cJSON *list, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    const cJSON *entry;
    cJSON_ArrayForEach(entry, list) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "record");
        assert_true(cJSON_IsString(name));
        used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? "," : "",
                                 name->valuestring);
        assert_true(used < cap);
    }
}

static void assert_list(aimdb_aimx *x, const char *params, test_allow_fn allow,
                        void *allow_ctx, const char *want) {
    char request[256], names[512];
    snprintf(request, sizeof(request), "{\"id\":1,\"method\":\"record.list\"%s%s}",
             params ? ",\"params\":" : "", params ? params : "");
    cJSON *reply = ask_json(x, request, allow, allow_ctx);
    names_of(result_of(reply), names, sizeof(names));
    if (strcmp(names, want) != 0) fail_msg("%s: got [%s], want [%s]", request, names, want);
    cJSON_Delete(reply);
}

/* ---------------------------------------------------------- record.list */

static void test_list_entries(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    aimdb_buffer_cfg latest = {AIMDB_BUFFER_LATEST, 0}, mailbox = {AIMDB_BUFFER_MAILBOX, 0};
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, 500};
    aimdb_record *temp = add(db, "temp::vienna", &ring, &aimdb_codec_double);
    add(db, "gateway::state", &latest, &aimdb_codec_json);
    aimdb_record *cmd = add(db, "cmd", &mailbox, &aimdb_codec_json);
    aimdb_record *acc = add(db, "accuracy::graz", NULL, &aimdb_codec_double);
    assert_int_equal(aimdb_record_set_attr(temp, "persist", "true"), AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr(temp, "retention_ms", "2592000000"), AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr_string(temp, "topic_filter", "sensors/+/temperature"),
                     AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr(temp, "unit", "{\"si\":\"K\",\"offset\":273.15}"),
                     AIMDB_OK);
    /* bugs in whoever set these: left out, logged */
    assert_int_equal(aimdb_record_set_attr(cmd, "broken", "{\"a\":"), AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr_string(cmd, "record", "impostor"), AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr(acc, "persist", "yes please"), AIMDB_OK);
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);

    unsigned logged = test_log_lines();
    cJSON *reply = ask_json(x, "{\"id\":\"l\",\"method\":\"record.list\"}", NULL, NULL);
    assert_true(test_log_lines() >= logged + 3);
    char *text = cJSON_PrintUnformatted(result_of(reply));
    assert_string_equal(
        text,
        "[{\"record\":\"accuracy::graz\",\"buffer\":\"ring:1024\",\"persist\":false,"
        "\"topic_filter\":null},"
        "{\"record\":\"cmd\",\"buffer\":\"mailbox\",\"persist\":false,\"topic_filter\":null},"
        "{\"record\":\"gateway::state\",\"buffer\":\"latest\",\"persist\":false,"
        "\"topic_filter\":null},"
        "{\"record\":\"temp::vienna\",\"buffer\":\"ring:500\",\"persist\":true,"
        "\"topic_filter\":\"sensors/+/temperature\",\"retention_ms\":2592000000,"
        "\"unit\":{\"si\":\"K\",\"offset\":273.15}}]");
    cJSON_free(text);
    cJSON_Delete(reply);

    /* params {} is the same as no params */
    assert_list(x, "{}", NULL, NULL, "accuracy::graz,cmd,gateway::state,temp::vienna");
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

/* Attribute values are spliced as written: an int64 beyond 2^53 survives. */
static void test_list_attribute_exact(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    aimdb_record *rec = add(db, "r", NULL, &aimdb_codec_int64);
    assert_int_equal(aimdb_record_set_attr(rec, "max", "9223372036854775807"), AIMDB_OK);
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);
    char *text = ask(x, "{\"id\":1,\"method\":\"record.list\"}", 31, NULL, NULL);
    assert_non_null(strstr(text, "\"max\":9223372036854775807}"));
    free(text);
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

static bool only_vienna(const char *record, void *ctx) {
    (*(unsigned *)ctx)++;
    return strstr(record, "vienna") != NULL;
}

static void test_list_predicate_and_patterns(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    const char *names[] = {"temp::vienna", "temp::graz", "hum::vienna", "temp%x", "t",
                           "temp::", "Temp::linz", "a*b"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        add(db, names[i], NULL, &aimdb_codec_double);
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);

    unsigned asked = 0;
    assert_list(x, NULL, only_vienna, &asked, "hum::vienna,temp::vienna");
    assert_int_equal(asked, 8); /* every record was put to the predicate */

    assert_list(x, "{\"name\":\"*\"}", NULL, NULL,
                "Temp::linz,a*b,hum::vienna,t,temp%x,temp::,temp::graz,temp::vienna");
    assert_list(x, "{\"name\":\"temp::*\"}", NULL, NULL, "temp::,temp::graz,temp::vienna");
    assert_list(x, "{\"name\":\"*vienna\"}", NULL, NULL, "hum::vienna,temp::vienna");
    assert_list(x, "{\"name\":\"t*p*:*a*\"}", NULL, NULL, "temp::graz,temp::vienna");
    assert_list(x, "{\"name\":\"t**\"}", NULL, NULL, "t,temp%x,temp::,temp::graz,temp::vienna");
    assert_list(x, "{\"name\":\"temp%x\"}", NULL, NULL, "temp%x");     /* % is literal */
    assert_list(x, "{\"name\":\"temp_x\"}", NULL, NULL, "");           /* _ is literal */
    assert_list(x, "{\"name\":\"te?p::graz\"}", NULL, NULL, "");       /* ? is literal */
    assert_list(x, "{\"name\":\"temp::*\"}", only_vienna, &asked, "temp::vienna");
    assert_list(x, "{\"name\":\"temp::vienna\"}", NULL, NULL, "temp::vienna");
    assert_list(x, "{\"name\":\"\"}", NULL, NULL, "");
    assert_list(x, "{\"name\":\"a*b\"}", NULL, NULL, "a*b");
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

static void test_list_empty_database(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);
    char *text = ask(x, "{\"id\":1,\"method\":\"record.list\"}", 31, NULL, NULL);
    assert_string_equal(text, "{\"id\":1,\"result\":[]}");
    free(text);
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

/* Over max_reply_bytes: an error that says how to narrow, never a cut list. */
static void test_list_too_big(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "rec::%03d", i);
        add(db, name, NULL, &aimdb_codec_double);
    }
    aimdb_aimx_options opts = {.max_reply_bytes = 2000};
    aimdb_aimx *x = aimdb_aimx_new(db, &opts);
    cJSON *reply = ask_json(x, "{\"id\":1,\"method\":\"record.list\"}", NULL, NULL);
    assert_string_equal(error_code(reply), "query_error");
    assert_non_null(strstr(error_message(reply), "over the reply limit of 2000"));
    assert_non_null(strstr(error_message(reply), "params.name"));
    cJSON_Delete(reply);
    /* narrowed, it fits */
    assert_list(x, "{\"name\":\"rec::00*\"}", NULL, NULL,
                "rec::000,rec::001,rec::002,rec::003,rec::004,rec::005,rec::006,rec::007,"
                "rec::008,rec::009");
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

/* ----------------------------------------------------------- record.get */

static void assert_get(aimdb_aimx *x, const char *request, const char *want) {
    char *text = ask(x, request, strlen(request), NULL, NULL);
    if (strcmp(text, want) != 0) fail_msg("%s: got %s, want %s", request, text, want);
    free(text);
}

static void test_get_values(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    produce_double(add(db, "temp::a", NULL, &aimdb_codec_double), 21.5);
    int64_t big = INT64_MAX;
    assert_int_equal(aimdb_produce(add(db, "count", NULL, &aimdb_codec_int64), &big, 8), 0);
    produce_text(add(db, "state", NULL, &aimdb_codec_json), "{\"on\":true,\"modes\":[1,2]}");
    produce_text(add(db, "label", NULL, &aimdb_codec_json), "\"caf\xc3\xa9\"");
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);

    assert_get(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"temp::a\"}}",
               "{\"id\":1,\"result\":21.5}");
    assert_get(x, "{\"id\":\"g\",\"method\":\"record.get\",\"params\":{\"name\":\"count\"}}",
               "{\"id\":\"g\",\"result\":9223372036854775807}");
    assert_get(x, "{\"method\":\"record.get\",\"params\":{\"record\":\"state\"},\"id\":2.50}",
               "{\"id\":2.50,\"result\":{\"on\":true,\"modes\":[1,2]}}");
    assert_get(x, "{\"method\":\"record.get\",\"params\":{\"record\":\"label\"}}",
               "{\"id\":null,\"result\":\"caf\xc3\xa9\"}");
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

/* The newest value of a ring; a mailbox is peeked, not consumed. */
static void test_get_latest_and_mailbox(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    aimdb_buffer_cfg ring = {AIMDB_BUFFER_RING, 4}, mailbox = {AIMDB_BUFFER_MAILBOX, 0};
    aimdb_record *r = add(db, "ring", &ring, &aimdb_codec_double);
    for (int i = 1; i <= 10; i++) produce_double(r, i);
    aimdb_record *m = add(db, "box", &mailbox, &aimdb_codec_double);
    aimdb_reader *reader;
    assert_int_equal(aimdb_reader_open(m, &reader), AIMDB_OK);
    produce_double(m, 7);
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);

    assert_get(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"ring\"}}",
               "{\"id\":1,\"result\":10}");
    assert_get(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"box\"}}",
               "{\"id\":1,\"result\":7}");
    aimdb_value v;
    uint64_t missed;
    assert_int_equal(aimdb_reader_try_recv(reader, &v, &missed), AIMDB_OK);
    assert_int_equal(v.len, sizeof(double));
    aimdb_reader_close(reader);
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

/* A value longer than the first encode buffer is encoded whole. */
static void test_get_large_value(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    size_t n = 5000;
    char *json = malloc(n + 3);
    json[0] = '"';
    memset(json + 1, 'v', n);
    memcpy(json + 1 + n, "\"", 2);
    produce_text(add(db, "big", NULL, &aimdb_codec_json), json);
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);
    char *text = ask(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"big\"}}",
                     56, NULL, NULL);
    assert_int_equal(strlen(text), strlen("{\"id\":1,\"result\":}") + n + 2);
    assert_non_null(strstr(text, json));
    free(text);

    /* the same value over a small reply limit: an error, not a cut value */
    aimdb_aimx_options opts = {.max_reply_bytes = 1000};
    aimdb_aimx *small = aimdb_aimx_new(db, &opts);
    cJSON *reply =
        ask_json(small, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"big\"}}",
                 NULL, NULL);
    assert_string_equal(error_code(reply), "query_error");
    assert_non_null(strstr(error_message(reply), "5020-byte reply, over the reply limit of 1000"));
    cJSON_Delete(reply);
    aimdb_aimx_free(small);
    aimdb_aimx_free(x);
    aimdb_db_free(db);
    free(json);
}

/* Values that cannot be shown as JSON are query_error, and logged. */
static void test_get_value_without_json_form(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    produce_double(add(db, "nan", NULL, &aimdb_codec_double), NAN);
    produce_text(add(db, "junk", NULL, &aimdb_codec_json), "{\"a\":tru}");
    produce_text(add(db, "two", NULL, &aimdb_codec_json), "1 2");
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);

    unsigned logged = test_log_lines();
    cJSON *reply = ask_json(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"nan\"}}",
                            NULL, NULL);
    assert_string_equal(error_code(reply), "query_error");
    assert_string_equal(error_message(reply),
                        "the latest value of \"nan\" has no JSON form (codec double)");
    assert_true(test_log_lines() > logged);
    cJSON_Delete(reply);

    reply = ask_json(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"junk\"}}",
                     NULL, NULL);
    assert_string_equal(error_code(reply), "query_error");
    assert_string_equal(error_message(reply),
                        "the latest value of \"junk\" is not valid JSON (codec json, byte 5)");
    cJSON_Delete(reply);

    reply = ask_json(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"two\"}}",
                     NULL, NULL);
    assert_string_equal(error_code(reply), "query_error");
    cJSON_Delete(reply);

    /* values nest up to 1000 levels (cJSON's limit), not one more */
    char deep[2 * 1001 + 1];
    memset(deep, '[', 1001);
    memset(deep + 1001, ']', 1001);
    deep[2002] = '\0';
    produce_text(add(db, "deep", NULL, &aimdb_codec_json), deep);
    reply = ask_json(x, "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"deep\"}}",
                     NULL, NULL);
    assert_string_equal(error_message(reply),
                        "the latest value of \"deep\" is nested too deeply (codec json, byte 1000)");
    cJSON_Delete(reply);
    memset(deep, '[', 999);
    memset(deep + 999, ']', 999);
    deep[1998] = '\0';
    produce_text(add(db, "deep999", NULL, &aimdb_codec_json), deep);
    const char *get999 = "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"deep999\"}}";
    char *text = ask(x, get999, strlen(get999), NULL, NULL);
    assert_int_equal(strlen(text), strlen("{\"id\":1,\"result\":}") + 1998);
    free(text);
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

/* A flood of failures on our side logs one WARNING line per interval,
 * the next carrying the count held back; the replies are all sent. */
static void test_our_failures_log_at_most_once_per_interval(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    produce_double(add(db, "nan", NULL, &aimdb_codec_double), NAN);
    enum { FLOOD = 200, INTERVAL = 1000 };
    aimdb_aimx_options opts = {.log_interval_ms = INTERVAL};
    aimdb_aimx *x = aimdb_aimx_new(db, &opts);
    const char *get = "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"nan\"}}";
    unsigned warned = test_log_warnings();
    int64_t t0 = aimdb_monotonic_ms();
    for (int i = 0; i < FLOOD; i++) {
        cJSON *reply = ask_json(x, get, NULL, NULL);
        assert_string_equal(error_code(reply), "query_error");
        cJSON_Delete(reply);
    }
    int64_t spent = aimdb_monotonic_ms() - t0;
    unsigned during = test_log_warnings() - warned;
    assert_true(during >= 1 && during <= 2 + spent / INTERVAL);
    if (spent < INTERVAL) assert_int_equal(during, 1);
    /* the next line after the interval says how many were held back */
    int64_t deadline = aimdb_monotonic_ms() + 5 * INTERVAL;
    while (test_log_warnings() == warned + during && aimdb_monotonic_ms() < deadline)
        cJSON_Delete(ask_json(x, get, NULL, NULL));
    assert_int_equal(test_log_warnings(), warned + during + 1);
    char *last = test_log_last();
    assert_non_null(strstr(last, "more query_error/internal_error replies not logged"));
    unsigned long long held = strtoull(strrchr(last, '(') + 1, NULL, 10);
    assert_true(held >= 1);
    if (spent < INTERVAL) assert_true(held >= FLOOD - 1);
    free(last);
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

/* -------------------------------------------------------------- threads */

typedef struct asker {
    aimdb_aimx *x;
    int rounds;
    int bad; /* counted here, asserted on the main thread (cmocka is not thread-safe) */
} asker;

static void *ask_many(void *arg) {
    asker *a = arg;
    for (int i = 0; i < a->rounds; i++) {
        const char *request =
            i % 2 ? "{\"id\":1,\"method\":\"record.list\"}"
                  : "{\"id\":2,\"method\":\"record.get\",\"params\":{\"record\":\"hot\"}}";
        reply_catch c;
        reply_catch_init(&c);
        aimdb_aimx_handle(a->x, request, strlen(request), NULL, reply_catch_fn, &c);
        cJSON *reply = c.calls == 1 ? cJSON_Parse(c.text) : NULL; /* answered inline */
        if (!cJSON_GetObjectItemCaseSensitive(reply, "result"))
            __atomic_add_fetch(&a->bad, 1, __ATOMIC_RELAXED);
        cJSON_Delete(reply);
        reply_catch_free(&c);
    }
    return NULL;
}

/* Several transports' threads at once, while the records change. */
static void test_concurrent_requests(void **state) {
    (void)state;
    aimdb_db *db = test_db_new();
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    aimdb_record *hot = add(db, "hot", NULL, &aimdb_codec_json);
    produce_text(hot, "0");
    aimdb_aimx *x = aimdb_aimx_new(db, NULL);
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    asker a = {x, 500, 0};
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, ask_many, &a);
    char name[32], value[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(value, sizeof(value), "[%d,\"%d\"]", i, i);
        produce_text(hot, value);
        if (i % 20 == 0) {
            snprintf(name, sizeof(name), "new::%d", i);
            add(db, name, NULL, &aimdb_codec_double);
        }
    }
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    assert_int_equal(a.bad, 0);
    aimdb_aimx_free(x);
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_entries),
        cmocka_unit_test(test_list_attribute_exact),
        cmocka_unit_test(test_list_predicate_and_patterns),
        cmocka_unit_test(test_list_empty_database),
        cmocka_unit_test(test_list_too_big),
        cmocka_unit_test(test_get_values),
        cmocka_unit_test(test_get_latest_and_mailbox),
        cmocka_unit_test(test_get_large_value),
        cmocka_unit_test(test_get_value_without_json_form),
        cmocka_unit_test(test_our_failures_log_at_most_once_per_interval),
        cmocka_unit_test(test_concurrent_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
