/*
 * test_aimx_requests.c -- the table of bad and edge requests: every row is
 * a payload and the exact answer it gets (id as echoed, error code, and the
 * part of the message that tells the client what to fix).  Also checks
 * that each failure is logged and that the echoed id is the client's text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimx_test.h"

/* Records the table runs against. */
static aimdb_db *db;
static aimdb_aimx *x;

static bool deny_secrets(const char *record, void *ctx) {
    (void)ctx;
    return strncmp(record, "secret::", 8) != 0;
}

static int setup(void **state) {
    (void)state;
    db = test_db_new();
    aimdb_record *rec;
    double v = 21.5;
    assert_int_equal(aimdb_record_register(db, "temp::a", NULL, &aimdb_codec_double, &rec), 0);
    assert_int_equal(aimdb_produce(rec, &v, sizeof(v)), 0);
    assert_int_equal(aimdb_record_register(db, "empty", NULL, &aimdb_codec_double, &rec), 0);
    assert_int_equal(aimdb_record_register(db, "secret::x", NULL, &aimdb_codec_double, &rec), 0);
    assert_int_equal(aimdb_produce(rec, &v, sizeof(v)), 0);
    x = aimdb_aimx_new(db, NULL);
    assert_non_null(x);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    aimdb_aimx_free(x);
    aimdb_db_free(db);
    return 0;
}

typedef struct bad_request {
    const char *what;
    const char *payload;
    size_t len;          /* 0: strlen(payload) */
    const char *id;      /* the id exactly as the reply must echo it */
    const char *code;
    const char *message; /* a part of the message */
} bad_request;

#define ROW(what, payload, id, code, message) {what, payload, 0, id, code, message}
#define BIN(what, payload, id, code, message) \
    {what, payload, sizeof(payload) - 1, id, code, message}

static const bad_request table[] = {
    /* ---- not JSON or not UTF-8: parse_error, id null, with the scan's offset.
     * One row per verdict of the core's scanner; the grammar and UTF-8
     * rules themselves are pinned, on these same payloads, in
     * tests/core/test_json.c. */
    BIN("empty payload", "", "null", "parse_error", "empty request"),
    ROW("garbage after the object", "{\"id\":1,\"method\":\"record.list\"} x", "null",
        "parse_error", "invalid JSON at byte 32"),
    ROW("invalid UTF-8 byte", "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"\xff\"}}",
        "null", "parse_error", "invalid UTF-8 at byte 50"),
    /* ---- JSON, but not a request: invalid_request */
    ROW("array (batch)", "[{\"id\":1,\"method\":\"record.list\"}]", "null", "invalid_request",
        "batches are not supported"),
    ROW("string", "\"record.list\"", "null", "invalid_request", "must be a JSON object"),
    ROW("number", "42", "null", "invalid_request", "must be a JSON object"),
    ROW("null", "null", "null", "invalid_request", "must be a JSON object"),
    ROW("nesting 17 deep", "{\"id\":1,\"method\":\"record.list\",\"params\":{\"name\":"
        "[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}}", "null", "invalid_request",
        "nesting deeper than 16 levels at byte 62"),
    ROW("\\u0000 in a string", "{\"id\":7,\"method\":\"record.list\\u0000x\"}", "7",
        "invalid_request", "must not contain \\u0000"),
    ROW("unknown member", "{\"id\":1,\"method\":\"record.list\",\"extra\":true}", "1",
        "invalid_request", "unknown member \"extra\" in the request"),
    ROW("duplicate method", "{\"id\":1,\"method\":\"record.list\",\"method\":\"record.get\"}",
        "1", "invalid_request", "duplicate member \"method\""),
    ROW("duplicate id", "{\"id\":1,\"id\":2,\"method\":\"record.list\"}", "null",
        "invalid_request", "duplicate member \"id\""),
    ROW("id true", "{\"id\":true,\"method\":\"record.list\"}", "null", "invalid_request",
        "id must be a number or a string"),
    ROW("id object", "{\"id\":{\"n\":1},\"method\":\"record.list\"}", "null", "invalid_request",
        "id must be a number or a string"),
    ROW("id array", "{\"id\":[1],\"method\":\"record.list\"}", "null", "invalid_request",
        "id must be a number or a string"),
    ROW("method missing", "{\"id\":1}", "1", "invalid_request", "method is missing"),
    ROW("method a number", "{\"id\":1,\"method\":7}", "1", "invalid_request",
        "method must be a string"),
    ROW("method null", "{\"id\":\"a\",\"method\":null}", "\"a\"", "invalid_request",
        "method must be a string"),
    ROW("method an array", "{\"id\":1,\"method\":[\"record.list\"]}", "1", "invalid_request",
        "method must be a string"),
    /* ---- methods */
    ROW("unknown method", "{\"id\":1,\"method\":\"record.delete\"}", "1", "method_not_found",
        "unknown method \"record.delete\""),
    ROW("method names are case-sensitive", "{\"id\":1,\"method\":\"Record.List\"}", "1",
        "method_not_found", "unknown method"),
    ROW("empty method", "{\"id\":1,\"method\":\"\"}", "1", "method_not_found",
        "unknown method \"\""),
    /* ---- params */
    ROW("params an array", "{\"id\":1,\"method\":\"record.list\",\"params\":[]}", "1",
        "invalid_params", "params must be an object"),
    ROW("params null", "{\"id\":1,\"method\":\"record.list\",\"params\":null}", "1",
        "invalid_params", "params must be an object"),
    ROW("params a string", "{\"id\":1,\"method\":\"record.get\",\"params\":\"temp::a\"}", "1",
        "invalid_params", "params must be an object"),
    ROW("unknown query parameter", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"from\":1}}",
        "1", "invalid_params",
        "unknown parameter \"from\" for record.query (it takes name, limit, start, end, every, "
        "agg, field, gateway)"),
    ROW("gateway not a string",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"gateway\":1}}", "1",
        "invalid_params", "params.gateway must be a string"),
    ROW("unknown list parameter", "{\"id\":1,\"method\":\"record.list\",\"params\":{\"record\":\"a\"}}",
        "1", "invalid_params", "unknown parameter \"record\" for record.list (it takes name)"),
    ROW("duplicate parameter",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":1,\"limit\":2}}", "1",
        "invalid_request", "duplicate parameter \"limit\""),
    ROW("limit a string", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":\"10\"}}",
        "1", "invalid_params", "params.limit must be an integer from 1 to 100000"),
    ROW("limit true", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":true}}", "1",
        "invalid_params", "params.limit must be an integer"),
    ROW("limit zero", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":0}}", "1",
        "invalid_params", "params.limit must be an integer from 1 to 100000"),
    ROW("limit negative", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":-1}}", "1",
        "invalid_params", "params.limit must be an integer from 1 to 100000"),
    ROW("limit fractional", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":1.5}}",
        "1", "invalid_params", "params.limit must be an integer"),
    ROW("limit over max_limit",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":100001}}", "1",
        "invalid_params", "from 1 to 100000"),
    ROW("limit overflowing a double",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":1e400}}", "1",
        "invalid_params", "params.limit must be an integer"),
    ROW("start a string", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":\"0\"}}",
        "1", "invalid_params", "params.start must be an integer Unix time in ms"),
    ROW("start fractional",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":1700000000000.5}}", "1",
        "invalid_params", "params.start must be an integer"),
    ROW("start beyond int64", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":1e19}}",
        "1", "invalid_params", "params.start must be an integer Unix time in ms (within int64)"),
    ROW("end minus infinity", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"end\":-1e400}}",
        "1", "invalid_params", "params.end must be an integer"),
    ROW("start after end",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":10,\"end\":5}}", "1",
        "invalid_params", "params.start (10) is after params.end (5)"),
    /* ---- aggregates: every, agg, field */
    ROW("every zero", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":0}}", "1",
        "invalid_params", "params.every must be a bucket width"),
    ROW("every fractional", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":1.5}}",
        "1", "invalid_params", "params.every must be a bucket width"),
    ROW("every an unknown unit",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":\"1w\"}}", "1",
        "invalid_params", "params.every must be a bucket width"),
    ROW("every a bare string number",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":\"60\"}}", "1",
        "invalid_params", "params.every"),
    ROW("every over 100 years",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":\"36526d\"}}", "1",
        "invalid_params", "at most 100 years"),
    ROW("agg not an array",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":1000,\"agg\":\"avg\"}}", "1",
        "invalid_params", "params.agg must be an array"),
    ROW("agg empty",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":1000,\"agg\":[]}}", "1",
        "invalid_params", "params.agg must not be empty"),
    ROW("agg unknown",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":1000,\"agg\":[\"median\"]}}",
        "1", "invalid_params", "params.agg: unknown aggregate \"median\""),
    ROW("agg twice",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":1000,\"agg\":[\"min\",\"min\"]}}",
        "1", "invalid_params", "params.agg lists \"min\" twice"),
    ROW("agg without every",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"agg\":[\"min\"]}}", "1",
        "invalid_params", "params.agg needs params.every"),
    ROW("field with an empty name",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":\"1h\",\"field\":\"a..b\"}}",
        "1", "invalid_params", "params.field must be a dotted path"),
    ROW("field not a string",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"every\":\"1h\",\"field\":1}}", "1",
        "invalid_params", "params.field must be a dotted path"),
    ROW("field without every",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"field\":\"x\"}}", "1",
        "invalid_params", "params.field needs params.every"),
    ROW("query name a number", "{\"id\":1,\"method\":\"record.query\",\"params\":{\"name\":5}}",
        "1", "invalid_params", "params.name must be a string"),
    ROW("list name null", "{\"id\":1,\"method\":\"record.list\",\"params\":{\"name\":null}}", "1",
        "invalid_params", "params.name must be a string"),
    ROW("get without a record", "{\"id\":1,\"method\":\"record.get\"}", "1", "invalid_params",
        "params.record is required"),
    ROW("get with record and name",
        "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"a\",\"name\":\"a\"}}", "1",
        "invalid_params", "not both"),
    ROW("get record a number", "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":1}}",
        "1", "invalid_params", "params.record must be a string"),
    /* ---- valid requests the database cannot answer */
    ROW("get an unknown record",
        "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"temp::zz\"}}", "1",
        "not_found", "no record named \"temp::zz\""),
    ROW("get a record with no value",
        "{\"id\":1,\"method\":\"record.get\",\"params\":{\"name\":\"empty\"}}", "1", "not_found",
        "record \"empty\" has no value yet"),
    ROW("get a refused record",
        "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"secret::x\"}}", "1",
        "permission_denied", "not allowed to read record \"secret::x\""),
    ROW("get a refused name that does not exist (no existence leak)",
        "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"secret::nope\"}}", "1",
        "permission_denied", "not allowed to read record \"secret::nope\""),
    ROW("query without persistence", "{\"id\":\"q1\",\"method\":\"record.query\"}", "\"q1\"",
        "not_configured", "history is not configured"),
    ROW("bad query params are reported before not_configured",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":0}}", "1", "invalid_params",
        "params.limit"),
    /* ---- ids are echoed as written */
    ROW("string id with escapes", "{\"id\":\"a\\u00e9\\\"b\",\"method\":\"nope\"}",
        "\"a\\u00e9\\\"b\"", "method_not_found", "unknown method \"nope\""),
    ROW("id beyond 2^64", "{\"id\":12345678901234567890123,\"method\":\"nope\"}",
        "12345678901234567890123", "method_not_found", "unknown method"),
    ROW("fractional id", "{\"id\":1.50,\"method\":\"nope\"}", "1.50", "method_not_found",
        "unknown method"),
    ROW("negative zero id", "{\"id\":-0,\"method\":\"nope\"}", "-0", "method_not_found",
        "unknown method"),
    ROW("id overflowing a double", "{\"id\":1e400,\"method\":\"nope\"}", "1e400",
        "method_not_found", "unknown method"),
    ROW("null id", "{\"id\":null,\"method\":\"nope\"}", "null", "method_not_found",
        "unknown method"),
    ROW("no id", "{\"method\":\"nope\"}", "null", "method_not_found", "unknown method"),
    ROW("escaped key spelling id", "{\"\\u0069d\":5,\"method\":\"nope\"}", "5",
        "method_not_found", "unknown method"),
    ROW("long unknown parameter name is cut in the message",
        "{\"id\":1,\"method\":\"record.list\",\"params\":{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}}",
        "1", "invalid_params",
        "unknown parameter \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\""),
    ROW("long multi-byte method name is cut on a character boundary",
        "{\"id\":1,\"method\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\xc3\xa9\"}",
        "1", "method_not_found",
        "unknown method \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...\""),
};

/* The reply must begin {"id":<id>, with id byte-for-byte as expected. */
static void assert_id_echo(const char *reply, const char *id) {
    size_t n = strlen(id);
    if (strncmp(reply, "{\"id\":", 6) != 0 || strncmp(reply + 6, id, n) != 0 ||
        reply[6 + n] != ',')
        fail_msg("reply %s does not echo id %s", reply, id);
}

static void test_bad_request_table(void **state) {
    (void)state;
    size_t rows = sizeof(table) / sizeof(table[0]);
    assert_true(rows >= 40);
    for (size_t i = 0; i < rows; i++) {
        const bad_request *row = &table[i];
        size_t len = row->len ? row->len : strlen(row->payload);
        unsigned logged = test_log_lines();
        char *text = ask(x, row->payload, len, deny_secrets, NULL);
        cJSON *reply = cJSON_Parse(text);
        const char *code = error_code(reply);
        const char *message = error_message(reply);
        if (!code || strcmp(code, row->code) != 0 || !message ||
            !strstr(message, row->message))
            fail_msg("row %zu (%s): got %s, want %s containing '%s'", i, row->what, text,
                     row->code, row->message);
        assert_id_echo(text, row->id);
        if (test_log_lines() == logged) fail_msg("row %zu (%s) was not logged", i, row->what);
        cJSON_Delete(reply);
        free(text);
    }
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Deep nesting is refused at the 17th level, however deep the payload. */
static void test_very_deep_nesting(void **state) {
    (void)state;
    size_t depth = 60000; /* near the 64 KiB request limit */
    char *payload = repeat('[', depth);
    char *text = ask(x, payload, depth, NULL, NULL);
    cJSON *reply = cJSON_Parse(text);
    assert_string_equal(error_code(reply), "invalid_request");
    assert_non_null(strstr(error_message(reply), "nesting deeper than 16 levels at byte 16"));
    cJSON_Delete(reply);
    free(text);
    free(payload);
}

/* max_request_bytes: one byte over is refused before parsing; at the limit
 * the request is read. */
static void test_request_size_limit(void **state) {
    (void)state;
    aimdb_aimx_options opts = {.max_request_bytes = 100};
    aimdb_aimx *small = aimdb_aimx_new(db, &opts);
    char payload[128];
    const char *head = "{\"id\":1,\"method\":\"record.list\",\"params\":{\"name\":\"";
    const char *tail = "\"}}";
    size_t fill = 100 - strlen(head) - strlen(tail);
    snprintf(payload, sizeof(payload), "%s%.*s%s", head, (int)fill,
             "****************************************************************", tail);
    assert_int_equal(strlen(payload), 100);
    cJSON *reply = ask_json(small, payload, NULL, NULL);
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(reply, "result")));
    cJSON_Delete(reply);

    char *text = ask(small, payload, strlen(payload) + 1, NULL, NULL); /* + the NUL */
    reply = cJSON_Parse(text);
    assert_string_equal(error_code(reply), "invalid_request");
    assert_string_equal(error_message(reply), "request is 101 bytes, over the limit of 100");
    assert_id_echo(text, "null");
    cJSON_Delete(reply);
    free(text);
    aimdb_aimx_free(small);

    /* the default limit is 64 KiB */
    char *big = repeat(' ', 64 * 1024 + 1);
    memcpy(big, "{}", 2);
    reply = ask_json(x, big, NULL, NULL);
    assert_string_equal(error_code(reply), "invalid_request");
    assert_non_null(strstr(error_message(reply), "over the limit of 65536"));
    cJSON_Delete(reply);
    free(big);
}

/* max_limit is configurable, and limit == max_limit is accepted. */
static void test_max_limit_option(void **state) {
    (void)state;
    aimdb_aimx_options opts = {.max_limit = 10};
    aimdb_aimx *small = aimdb_aimx_new(db, &opts);
    cJSON *reply = ask_json(
        small, "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":11}}", NULL, NULL);
    assert_string_equal(error_code(reply), "invalid_params");
    assert_string_equal(error_message(reply), "params.limit must be an integer from 1 to 10");
    cJSON_Delete(reply);
    /* valid: reaches the history lookup, which is not configured here */
    reply = ask_json(small, "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":10}}",
                     NULL, NULL);
    assert_string_equal(error_code(reply), "not_configured");
    cJSON_Delete(reply);
    aimdb_aimx_free(small);
}

/* Edge values that are valid: integral floats, negative times, int64
 * edges, the empty pattern, and whitespace everywhere JSON allows it. */
static void test_valid_edges(void **state) {
    (void)state;
    static const char *const valid[] = {
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":1.0}}",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"limit\":1e2}}",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":-1,\"end\":-1}}",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"start\":-9223372036854775808}}",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"end\":9223372036854775807}}",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"end\":9007199254740993}}",
        "{\"id\":1,\"method\":\"record.query\",\"params\":{\"name\":\"\"}}",
        " \r\n\t{ \"method\" : \"record.query\" , \"params\" : { } , \"id\" : 1 } \n",
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        cJSON *reply = ask_json(x, valid[i], NULL, NULL);
        if (strcmp(error_code(reply), "not_configured") != 0)
            fail_msg("%s: %s", valid[i], error_message(reply));
        cJSON_Delete(reply);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_request_table),
        cmocka_unit_test(test_very_deep_nesting),
        cmocka_unit_test(test_request_size_limit),
        cmocka_unit_test(test_max_limit_option),
        cmocka_unit_test(test_valid_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
