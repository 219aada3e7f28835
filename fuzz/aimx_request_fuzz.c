/*
 * aimx_request_fuzz.c -- libFuzzer target: any bytes as an AimX request.
 *
 * Each input goes to two handlers over one small database (default limits,
 * and tight ones so the size and limit checks trip), with an access
 * predicate that refuses some names.  Every reply must hold the contract:
 * delivered exactly once; strict JSON and valid UTF-8; an object with "id"
 * and exactly one of "result" and "error"; an error code of docs/protocol.md and a
 * message; never internal_error (nothing here can run out of memory, so an
 * internal_error would mean the scanner and cJSON disagree); and an echoed
 * id is text the client actually sent.  Anything else aborts.
 */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aimdb/aimx.h"
#include "aimdb/json.h"
#include "aimx_internal.h"

static aimdb_db *db;
static aimdb_aimx *roomy, *tight;

static void quiet(void *self, aimdb_log_level level, const char *fmt, va_list ap) {
    (void)self, (void)level, (void)fmt, (void)ap;
}

static aimdb_runtime runtime;

static void add(const char *name, const aimdb_codec *codec, const void *value, size_t len,
                const char *attr_key, const char *attr_json) {
    aimdb_record *rec;
    if (aimdb_record_register(db, name, NULL, codec, &rec) != AIMDB_OK) abort();
    if (value && aimdb_produce(rec, value, len) != AIMDB_OK) abort();
    if (attr_key && aimdb_record_set_attr(rec, attr_key, attr_json) != AIMDB_OK) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    runtime = *aimdb_runtime_pthread();
    runtime.log = quiet;
    aimdb_db_options opts = {.runtime = &runtime};
    db = aimdb_db_new(&opts);
    double temp = 21.5, nan = NAN;
    int64_t big = INT64_MAX;
    add("temp::a", &aimdb_codec_double, &temp, sizeof(temp), "persist", "true");
    add("temp::b", &aimdb_codec_int64, &big, sizeof(big), "topic_filter", "\"t/+/b\"");
    add("state", &aimdb_codec_json, "{\"on\":[true,null]}", 18, "unit", "{\"x\":");
    add("empty", &aimdb_codec_double, NULL, 0, "record", "\"impostor\"");
    add("secret::x", &aimdb_codec_double, &temp, sizeof(temp), NULL, NULL);
    add("nan", &aimdb_codec_double, &nan, sizeof(nan), NULL, NULL);
    add("junk", &aimdb_codec_json, "{\"a\":", 5, NULL, NULL);
    roomy = aimdb_aimx_new(db, NULL);
    aimdb_aimx_options small = {.max_request_bytes = 256, .max_limit = 5, .max_reply_bytes = 160};
    tight = aimdb_aimx_new(db, &small);
    if (!db || !roomy || !tight) abort();
    return 0;
}

/* secret::* hidden, shared::* visible value by value (none has a source
 * here, so none is shown), the rest visible. */
static aimdb_visibility refuse_secrets(const char *record, void *ctx) {
    (void)ctx;
    if (strncmp(record, "secret::", 8) == 0) return AIMDB_SEE_NONE;
    return strncmp(record, "shared::", 8) == 0 ? AIMDB_SEE_BY_SOURCE : AIMDB_SEE_ALL;
}

static bool sourced_values_only(const char *record, const char *source, void *ctx) {
    (void)record, (void)ctx;
    return source != NULL;
}

static const aimdb_access secrets_hidden = {refuse_secrets, sourced_values_only, NULL, NULL, 0};

typedef struct catch {
    unsigned calls;
    char *text;
    size_t len;
} catch;

static void keep(char *reply, size_t len, void *ctx) {
    catch *c = ctx;
    c->calls++;
    free(c->text);
    c->text = reply;
    c->len = len;
}

static bool known_code(const char *code) {
    static const char *const codes[] = {"parse_error",    "invalid_request", "method_not_found",
                                        "invalid_params", "not_found",       "not_configured",
                                        "permission_denied", "query_error"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0) return true;
    return false; /* internal_error included: see the top */
}

static void check_reply(const catch *c, const uint8_t *data, size_t size) {
    if (c->calls != 1 || !c->text || strlen(c->text) != c->len) abort();
    static const aimdb_json_scan_options opts = {.max_depth = AIMX_VALUE_DEPTH,
                                                 .root_key = "id"};
    aimdb_json_scan_result scan;
    aimdb_json_scan(c->text, c->len, &opts, &scan);
    if (scan.status != AIMDB_JSON_OK || scan.root_key_count != 1) abort();
    cJSON *reply = cJSON_ParseWithLength(c->text, c->len);
    if (!cJSON_IsObject(reply)) abort();
    bool has_result = cJSON_HasObjectItem(reply, "result");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");
    if (has_result == (error != NULL)) abort();
    if (error) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
        if (!cJSON_IsString(code) || !known_code(code->valuestring)) abort();
        if (!cJSON_IsString(message) || message->valuestring[0] == '\0') abort();
    }
    /* An echoed id is the client's own text. */
    bool null_id = scan.root_value_len == 4 && memcmp(scan.root_value, "null", 4) == 0;
    if (!null_id && !memmem(data, size, scan.root_value, scan.root_value_len)) abort();
    cJSON_Delete(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    aimdb_aimx *handlers[] = {roomy, tight};
    for (size_t i = 0; i < 2; i++) {
        catch c = {0};
        aimdb_aimx_handle(handlers[i], data, size, &secrets_hidden, keep, &c);
        check_reply(&c, data, size);
        free(c.text);
    }
    return 0;
}
