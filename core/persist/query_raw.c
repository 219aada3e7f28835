/*
 * query_raw.c -- the JSON-in, JSON-out form of a history query.
 *
 * A protocol layer holds a record.query params object (contract C.4) and
 * wants the result object back; this file is the whole translation, so the
 * rules for those parameters live in one place: "name" a pattern (default
 * "*"), "gateway" the same on a fleet's history (and only there), "limit"
 * a positive integer per record, "start"/"end" integral Unix ms within
 * signed 64 bits (both inclusive), and without "limit" one row per record
 * unless a time bound is given.  JSON numbers arrive as doubles:
 * 1.5, 1e19 or -1e300 are refused with the parameter's name, never rounded.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist_internal.h"

typedef struct raw_params {
    aimdb_query_params q;
    bool has_limit;
    char *pattern; /* owned */
    char *gateway; /* owned */
    bool fleet;    /* the backend knows gateways: "gateway" is a parameter */
} raw_params;

static int bad(char *err, size_t errlen, const char *key, const char *what) {
    persist_errorf(err, errlen, "invalid params: \"%s\" %s", key, what);
    return AIMDB_EINVAL;
}

static int parse_member(const cJSON *item, raw_params *r, char *err, size_t errlen) {
    const char *key = item->string;
    int64_t v;
    bool is_name = strcmp(key, "name") == 0;
    if (is_name || (r->fleet && strcmp(key, "gateway") == 0)) {
        if (!cJSON_IsString(item)) return bad(err, errlen, key, "must be a string");
        char **slot = is_name ? &r->pattern : &r->gateway;
        free(*slot);
        *slot = strdup(item->valuestring);
        return *slot ? AIMDB_OK : AIMDB_ENOMEM;
    }
    if (strcmp(key, "limit") == 0) {
        if (!cJSON_IsNumber(item) || !aimdb_history_ts_from_double(item->valuedouble, &v) ||
            v < 1 || v > UINT32_MAX)
            return bad(err, errlen, key, "must be an integer from 1 to 4294967295");
        r->q.limit = (uint32_t)v;
        r->has_limit = true;
        return AIMDB_OK;
    }
    bool is_start = strcmp(key, "start") == 0;
    if (is_start || strcmp(key, "end") == 0) {
        if (!cJSON_IsNumber(item) || !aimdb_history_ts_from_double(item->valuedouble, &v))
            return bad(err, errlen, key,
                       "must be an integer Unix time in milliseconds within signed 64 bits");
        if (is_start) r->q.has_start = true, r->q.start_ms = v;
        else r->q.has_end = true, r->q.end_ms = v;
        return AIMDB_OK;
    }
    return bad(err, errlen, key, "is not a parameter of a history query");
}

static int parse_members(const char *params, size_t len, raw_params *r, char *err,
                         size_t errlen) {
    if (!params || len == 0) return AIMDB_OK; /* no params: all defaults */
    cJSON *root = cJSON_ParseWithLength(params, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        persist_errorf(err, errlen, "invalid params: not a JSON object");
        return AIMDB_EINVAL;
    }
    int rc = AIMDB_OK;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        rc = parse_member(item, r, err, errlen);
        if (rc != AIMDB_OK) break;
    }
    cJSON_Delete(root);
    return rc;
}

static int parse_params(const char *params, size_t len, raw_params *r, char *err,
                        size_t errlen) {
    int rc = parse_members(params, len, r, err, errlen);
    if (rc == AIMDB_OK && r->q.has_start && r->q.has_end && r->q.start_ms > r->q.end_ms) {
        persist_errorf(err, errlen, "invalid params: \"start\" is after \"end\"");
        rc = AIMDB_EINVAL;
    }
    /* C.4: no limit and no time bound means the latest value per record. */
    if (!r->has_limit && !r->q.has_start && !r->q.has_end) r->q.limit = 1;
    r->q.pattern = r->pattern;
    r->q.gateway = r->gateway;
    return rc;
}

static int wrap_result(const json_buf *values, size_t count, char **out, size_t *out_len) {
    char head[48];
    int n = snprintf(head, sizeof(head), "{\"count\":%zu,\"values\":", count);
    size_t len = (size_t)n + values->len + 1;
    char *text = malloc(len + 1);
    if (!text) return AIMDB_ENOMEM;
    memcpy(text, head, (size_t)n);
    memcpy(text + n, values->data, values->len);
    text[len - 1] = '}';
    text[len] = '\0';
    *out = text;
    if (out_len) *out_len = len;
    return AIMDB_OK;
}

int aimdb_persist_query_raw(aimdb_persist *p, const char *params, size_t params_len,
                            const aimdb_access *access, size_t max_bytes, char **out, size_t *out_len, char *err,
                            size_t errlen) {
    if (!p || !out) return AIMDB_EINVAL;
    *out = NULL;
    raw_params r = {.fleet = p->backend.ops->fleet};
    int rc = parse_params(params, params_len, &r, err, errlen);
    r.q.access = access;
    json_buf values = {0};
    size_t count = 0;
    if (rc == AIMDB_OK)
        rc = history_json_collect(p, &r.q, max_bytes, &values, &count, NULL, err, errlen);
    if (rc == AIMDB_OK) rc = wrap_result(&values, count, out, out_len);
    free(values.data);
    free(r.pattern);
    free(r.gateway);
    return rc;
}
