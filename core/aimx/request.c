/*
 * request.c -- from a request payload to a validated aimx_request.
 *
 * Every field is checked for presence, type and range before any method
 * runs, and the first problem in reading order is the one reported.  The
 * decisions, each pinned by tests/aimx:
 *
 *  - The payload must be strict JSON (aimdb/json.h), at most 16 levels deep:
 *    a request needs two, and refusing depth early keeps a hostile payload
 *    from costing anything.  Bad JSON or bad UTF-8 is parse_error; too
 *    deep, too big, or a string holding \u0000 is invalid_request.
 *  - "id" may be a number or a string and is echoed exactly as written
 *    (12345678901234567890 and 1.50 come back unchanged).  It may be
 *    missing or null: the reply then has "id": null, and MQTT v5
 *    correlation data can still pair it up.  Any other type is
 *    invalid_request, and the reply's id is null whenever the request's id
 *    cannot be trusted (unparsable payload, a duplicate "id").
 *  - Members other than id/method/params are invalid_request; parameters a
 *    method does not know are invalid_params, naming the parameter and the
 *    ones it accepts.  A key given twice is invalid_request (cJSON would
 *    keep both; we refuse to guess which one was meant).
 *  - A missing "params" means {}; anything but an object is invalid_params.
 *  - start/end follow aimdb_history_ts_from_double (history.h), the one
 *    rule for timestamps across the product: an integral number within
 *    int64.  limit is an integer from 1 to max_limit.  Numbers reach us as
 *    cJSON's doubles, so integrality is judged on the double: 1.0 and 1e3
 *    are integers, 1.5 is not, and beyond 2^53 (year 287396 in ms) a
 *    number is read as the nearest double.
 *  - record.query's parameters are translated here and nowhere else,
 *    defaults included (query.c only hands the result on): without limit
 *    one row (or bucket) per record when no time bound is given, else all.
 *  - every (aggregates) is an integer number of ms > 0 or a string of
 *    digits and a unit s, m, h or d ("15m"), at most 100 years; agg a
 *    non-empty array of distinct names (avg min max sum count first
 *    last); field a dotted path of non-empty member names, at most 256
 *    bytes.  agg and field without every are refused: they would be
 *    silently ignored otherwise.
 *  - gateway is a pattern like name, read here on every node; whether the
 *    history knows gateways (a fleet's, PostgreSQL) is the history
 *    service's to say, so query.c refuses it on any other node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/duration.h"
#include "aimdb/history.h"
#include "aimx_internal.h"

#define AIMX_REQUEST_DEPTH 16

typedef enum param_kind {
    PARAM_STRING,
    PARAM_TIME,  /* Unix ms: aimdb_history_ts_from_double */
    PARAM_LIMIT, /* 1 .. max_limit */
    PARAM_EVERY, /* ms > 0 or a duration string */
    PARAM_AGG,   /* array of aggregate names */
    PARAM_FIELD  /* dotted path */
} param_kind;

typedef struct param_spec {
    const char *name;
    param_kind kind;
} param_spec;

#define MAX_PARAMS 8
#define MAX_FIELD_BYTES 256

typedef struct method_spec {
    const char *name;
    aimx_method method;
    param_spec params[MAX_PARAMS];
    size_t nparams;
} method_spec;

/* record.list's "name": a pattern that narrows a
 * list too big for one reply. */
static const method_spec methods[] = {
    {"record.list", AIMX_RECORD_LIST, {{"name", PARAM_STRING}}, 1},
    {"record.get", AIMX_RECORD_GET, {{"record", PARAM_STRING}, {"name", PARAM_STRING}}, 2},
    {"record.query", AIMX_RECORD_QUERY,
     {{"name", PARAM_STRING}, {"limit", PARAM_LIMIT}, {"start", PARAM_TIME},
      {"end", PARAM_TIME}, {"every", PARAM_EVERY}, {"agg", PARAM_AGG}, {"field", PARAM_FIELD},
      {"gateway", PARAM_STRING}},
     8},
};

static const char *const envelope_names[] = {"id", "method", "params"};
enum { MEMBER_ID, MEMBER_METHOD, MEMBER_PARAMS, N_MEMBERS };

/* ----------------------------------------------------------- the payload */

static bool check_scan(const aimdb_json_scan_result *scan, aimx_error *err) {
    switch (scan->status) {
    case AIMDB_JSON_OK:
        return true;
    case AIMDB_JSON_SYNTAX:
        return aimx_fail(err, AIMX_PARSE_ERROR, "invalid JSON at byte %zu", scan->error_at);
    case AIMDB_JSON_UTF8:
        return aimx_fail(err, AIMX_PARSE_ERROR, "invalid UTF-8 at byte %zu", scan->error_at);
    case AIMDB_JSON_DEEP:
        return aimx_fail(err, AIMX_INVALID_REQUEST,
                         "nesting deeper than %d levels at byte %zu; a request is a flat "
                         "object with a flat params object",
                         AIMX_REQUEST_DEPTH, scan->error_at);
    }
    return aimx_fail(err, AIMX_INTERNAL_ERROR, "unknown scan status");
}

/* The id to echo: the root's only "id", as written, if a number or string. */
static bool take_id(const aimdb_json_scan_result *scan, aimx_request *req, aimx_error *err) {
    if (scan->root_key_count != 1) return true;
    const char *id = scan->root_value;
    size_t len = scan->root_value_len;
    if (id[0] != '"' && id[0] != '-' && (id[0] < '0' || id[0] > '9')) return true;
    req->id = malloc(len + 1);
    if (!req->id) return aimx_fail(err, AIMX_INTERNAL_ERROR, "out of memory reading the id");
    memcpy(req->id, id, len);
    req->id[len] = '\0';
    return true;
}

/* ------------------------------------------------------------- members */

typedef enum member_problem { MEMBERS_OK, MEMBER_UNKNOWN, MEMBER_DUPLICATE } member_problem;

/* Sort obj's members into found[] by name; the first unknown or repeated
 * member in document order is returned in *bad. */
static member_problem find_members(const cJSON *obj, const char *const *names, size_t n,
                                   const cJSON **found, const cJSON **bad) {
    for (size_t i = 0; i < n; i++) found[i] = NULL;
    for (const cJSON *m = obj->child; m; m = m->next) {
        size_t i = 0;
        while (i < n && strcmp(m->string, names[i]) != 0) i++;
        *bad = m;
        if (i == n) return MEMBER_UNKNOWN;
        if (found[i]) return MEMBER_DUPLICATE;
        found[i] = m;
    }
    return MEMBERS_OK;
}

static const method_spec *find_method(const char *name) {
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(methods[i].name, name) == 0) return &methods[i];
    return NULL;
}

/* ---------------------------------------------------------- parameters */

/* A number whose double value is an integer in [1, max]. */
static bool limit_in(const cJSON *item, uint32_t max, int64_t *out) {
    int64_t i;
    if (!cJSON_IsNumber(item) || !aimdb_history_ts_from_double(item->valuedouble, &i))
        return false;
    if (i < 1 || i > (int64_t)max) return false;
    *out = i;
    return true;
}

static bool every_of(const cJSON *item, int64_t *out) {
    if (cJSON_IsString(item)) /* "15m": a unit is required, ms is not one */
        return aimdb_duration_parse(item->valuestring, false, 0, AIMDB_DURATION_MAX_MS, out) &&
               *out > 0;
    return cJSON_IsNumber(item) && aimdb_history_ts_from_double(item->valuedouble, out) &&
           *out > 0 && *out <= AIMDB_DURATION_MAX_MS;
}

static bool field_ok(const cJSON *item) {
    if (!cJSON_IsString(item)) return false;
    const char *f = item->valuestring;
    size_t len = strlen(f);
    if (len == 0 || len > MAX_FIELD_BYTES || f[0] == '.' || f[len - 1] == '.') return false;
    return strstr(f, "..") == NULL;
}

static bool agg_error(aimx_error *err, const char *why) {
    return aimx_fail(err, AIMX_INVALID_PARAMS,
                     "params.agg %s (an array of \"avg\", \"min\", \"max\", \"sum\", "
                     "\"count\", \"first\", \"last\")",
                     why);
}

/* The names of params.agg into req, each once. */
static bool read_aggs(const cJSON *item, aimx_request *req, aimx_error *err) {
    if (!cJSON_IsArray(item)) return agg_error(err, "must be an array");
    if (!item->child) return agg_error(err, "must not be empty");
    const cJSON *it;
    cJSON_ArrayForEach(it, item) {
        if (!cJSON_IsString(it)) return agg_error(err, "must hold strings only");
        aimdb_agg a = 0;
        while (a < AIMDB_AGG_KINDS && strcmp(aimdb_agg_name(a), it->valuestring) != 0) a++;
        if (a == AIMDB_AGG_KINDS)
            return aimx_fail(err, AIMX_INVALID_PARAMS,
                             "params.agg: unknown aggregate \"%s\" (avg, min, max, sum, "
                             "count, first, last)",
                             aimx_preview_of(it->valuestring).text);
        for (unsigned i = 0; i < req->n_agg; i++)
            if (req->agg[i] == a)
                return aimx_fail(err, AIMX_INVALID_PARAMS, "params.agg lists \"%s\" twice",
                                 aimdb_agg_name(a));
        req->agg[req->n_agg++] = a;
    }
    return true;
}

static bool check_param(const param_spec *spec, const cJSON *item, const aimx_limits *lim,
                        int64_t *number, aimx_error *err) {
    switch (spec->kind) {
    case PARAM_STRING:
        if (cJSON_IsString(item)) return true;
        return aimx_fail(err, AIMX_INVALID_PARAMS, "params.%s must be a string", spec->name);
    case PARAM_TIME:
        if (cJSON_IsNumber(item) && aimdb_history_ts_from_double(item->valuedouble, number))
            return true;
        return aimx_fail(err, AIMX_INVALID_PARAMS,
                         "params.%s must be an integer Unix time in ms (within int64)",
                         spec->name);
    case PARAM_LIMIT:
        if (limit_in(item, lim->max_limit, number)) return true;
        return aimx_fail(err, AIMX_INVALID_PARAMS, "params.%s must be an integer from 1 to %u",
                         spec->name, (unsigned)lim->max_limit);
    case PARAM_EVERY:
        if (every_of(item, number)) return true;
        return aimx_fail(err, AIMX_INVALID_PARAMS,
                         "params.%s must be a bucket width: an integer number of ms > 0 or a "
                         "duration such as \"30s\", \"15m\", \"1h\", \"7d\" (at most 100 "
                         "years)",
                         spec->name);
    case PARAM_AGG:
        return true; /* read_aggs, once the request holds the list */
    case PARAM_FIELD:
        if (field_ok(item)) return true;
        return aimx_fail(err, AIMX_INVALID_PARAMS,
                         "params.%s must be a dotted path of member names such as "
                         "\"wind.speed\" (no empty name, at most %d bytes)",
                         spec->name, MAX_FIELD_BYTES);
    }
    return aimx_fail(err, AIMX_INTERNAL_ERROR, "unknown parameter kind");
}

static void list_names(const method_spec *m, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->nparams && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", m->params[i].name);
}

static bool member_error(member_problem problem, const cJSON *bad, const method_spec *m,
                         aimx_error *err) {
    aimx_preview name = aimx_preview_of(bad->string);
    if (problem == MEMBER_DUPLICATE)
        return aimx_fail(err, AIMX_INVALID_REQUEST, "duplicate %s \"%s\"",
                         m ? "parameter" : "member", name.text);
    if (!m)
        return aimx_fail(err, AIMX_INVALID_REQUEST,
                         "unknown member \"%s\" in the request (a request has id, method "
                         "and params)",
                         name.text);
    char known[64];
    list_names(m, known, sizeof(known));
    return aimx_fail(err, AIMX_INVALID_PARAMS, "unknown parameter \"%s\" for %s (it takes %s)",
                     name.text, m->name, known);
}

/* record.query; found[] in the order of its method_spec. */
static bool assemble_query(const cJSON *const *found, const int64_t *number, aimx_request *req,
                           aimx_error *err) {
    req->name = found[0] ? found[0]->valuestring : NULL;
    bool has_start = found[2] != NULL, has_end = found[3] != NULL;
    if (has_start && has_end && number[2] > number[3])
        return aimx_fail(err, AIMX_INVALID_PARAMS, "params.start (%lld) is after params.end (%lld)",
                         (long long)number[2], (long long)number[3]);
    /* C.4: without limit, the latest row (bucket) per record unless a time
     * bound is given, then every one in the range. */
    req->limit = found[1] ? (uint32_t)number[1] : has_start || has_end ? 0 : 1;
    req->has_start = has_start, req->start_ms = number[2];
    req->has_end = has_end, req->end_ms = number[3];
    req->every_ms = found[4] ? number[4] : 0;
    if (!found[4] && (found[5] || found[6]))
        return aimx_fail(err, AIMX_INVALID_PARAMS,
                         "params.%s needs params.every (the bucket width of an aggregate)",
                         found[5] ? "agg" : "field");
    req->field = found[6] ? found[6]->valuestring : NULL;
    req->gateway = found[7] ? found[7]->valuestring : NULL;
    return !found[5] || read_aggs(found[5], req, err);
}

/* Fill req from the method's parameters; found[i] matches m->params[i]. */
static bool assemble(const method_spec *m, const cJSON *const *found, const int64_t *number,
                     aimx_request *req, aimx_error *err) {
    switch (m->method) {
    case AIMX_RECORD_LIST:
        req->name = found[0] ? found[0]->valuestring : NULL;
        return true;
    case AIMX_RECORD_GET:
        if (found[0] && found[1])
            return aimx_fail(err, AIMX_INVALID_PARAMS,
                             "give params.record or params.name, not both");
        if (!found[0] && !found[1])
            return aimx_fail(err, AIMX_INVALID_PARAMS,
                             "params.record is required (the record's name)");
        req->name = (found[0] ? found[0] : found[1])->valuestring;
        return true;
    case AIMX_RECORD_QUERY:
        return assemble_query(found, number, req, err);
    }
    return aimx_fail(err, AIMX_INTERNAL_ERROR, "unknown method");
}

static bool parse_params(const method_spec *m, const cJSON *params, const aimx_limits *lim,
                         aimx_request *req, aimx_error *err) {
    const cJSON *found[MAX_PARAMS] = {NULL};
    int64_t number[MAX_PARAMS] = {0};
    if (params) {
        if (!cJSON_IsObject(params))
            return aimx_fail(err, AIMX_INVALID_PARAMS, "params must be an object");
        const char *names[MAX_PARAMS];
        for (size_t i = 0; i < m->nparams; i++) names[i] = m->params[i].name;
        const cJSON *bad;
        member_problem problem = find_members(params, names, m->nparams, found, &bad);
        if (problem != MEMBERS_OK) return member_error(problem, bad, m, err);
    }
    for (size_t i = 0; i < m->nparams; i++)
        if (found[i] && !check_param(&m->params[i], found[i], lim, &number[i], err))
            return false;
    return assemble(m, found, number, req, err);
}

/* ------------------------------------------------------------- request */

static bool parse_envelope(const aimx_limits *lim, aimx_request *req, aimx_error *err) {
    const cJSON *root = req->tree;
    if (!cJSON_IsObject(root))
        return aimx_fail(err, AIMX_INVALID_REQUEST,
                         cJSON_IsArray(root)
                             ? "the request must be a JSON object; batches are not supported"
                             : "the request must be a JSON object");
    const cJSON *member[N_MEMBERS], *bad;
    member_problem problem = find_members(root, envelope_names, N_MEMBERS, member, &bad);
    if (problem != MEMBERS_OK) return member_error(problem, bad, NULL, err);

    const cJSON *id = member[MEMBER_ID];
    if (id && !cJSON_IsNumber(id) && !cJSON_IsString(id) && !cJSON_IsNull(id))
        return aimx_fail(err, AIMX_INVALID_REQUEST, "id must be a number or a string");
    const cJSON *method = member[MEMBER_METHOD];
    if (!method) return aimx_fail(err, AIMX_INVALID_REQUEST, "method is missing");
    if (!cJSON_IsString(method))
        return aimx_fail(err, AIMX_INVALID_REQUEST, "method must be a string");
    const method_spec *m = find_method(method->valuestring);
    if (!m)
        return aimx_fail(err, AIMX_METHOD_NOT_FOUND,
                         "unknown method \"%s\" (methods: record.list, record.get, "
                         "record.query)",
                         aimx_preview_of(method->valuestring).text);
    req->method = m->method;
    return parse_params(m, member[MEMBER_PARAMS], lim, req, err);
}

bool aimx_request_parse(const void *payload, size_t len, const aimx_limits *lim,
                        aimx_request *req, aimx_error *err) {
    memset(req, 0, sizeof(*req));
    if (len == 0)
        return aimx_fail(err, AIMX_PARSE_ERROR,
                         "empty request; send a JSON object such as "
                         "{\"id\":1,\"method\":\"record.list\"}");
    if (len > lim->max_request_bytes)
        return aimx_fail(err, AIMX_INVALID_REQUEST, "request is %zu bytes, over the limit of %zu",
                         len, lim->max_request_bytes);
    static const aimdb_json_scan_options opts = {.max_depth = AIMX_REQUEST_DEPTH,
                                                 .root_key = "id"};
    aimdb_json_scan_result scan;
    aimdb_json_scan(payload, len, &opts, &scan);
    if (!check_scan(&scan, err) || !take_id(&scan, req, err)) return false;
    if (scan.has_nul)
        return aimx_fail(err, AIMX_INVALID_REQUEST,
                         "strings in a request must not contain \\u0000");
    req->tree = cJSON_ParseWithLength(payload, len);
    if (!req->tree)
        return aimx_fail(err, AIMX_INTERNAL_ERROR, "out of memory parsing the request");
    return parse_envelope(lim, req, err);
}

void aimx_request_release(aimx_request *req) {
    free(req->id);
    cJSON_Delete(req->tree);
    req->id = NULL;
    req->tree = NULL;
}
