/*
 * aggregate_cases.c -- the runner of aggregate_cases.json (see the header).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aggregate_cases.h"

struct aggregate_cases {
    cJSON *doc;
};

static void die(const char *what) {
    fprintf(stderr, "aggregate cases: %s\n", what);
    exit(1);
}

aggregate_cases *aggregate_cases_load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    aggregate_cases *c = calloc(1, sizeof(*c));
    if (!c || !(c->doc = cJSON_Parse(text))) die("not JSON");
    return c;
}

void aggregate_cases_free(aggregate_cases *c) {
    if (!c) return;
    cJSON_Delete(c->doc);
    free(c);
}

static const cJSON *rows_of(const aggregate_cases *c) {
    return cJSON_GetObjectItem(c->doc, "rows");
}

void aggregate_cases_store(const aggregate_cases *c, aimdb_backend b) {
    const cJSON *row;
    cJSON_ArrayForEach(row, rows_of(c)) {
        const char *record = cJSON_GetArrayItem(row, 0)->valuestring;
        int64_t ts = (int64_t)cJSON_GetArrayItem(row, 1)->valuedouble;
        const char *json = cJSON_GetArrayItem(row, 2)->valuestring;
        const cJSON *topic = cJSON_GetArrayItem(row, 3);
        if (b.ops->store(b.self, record, json, strlen(json), ts,
                         cJSON_IsString(topic) ? topic->valuestring : NULL) != AIMDB_OK)
            die("store");
    }
    if (b.ops->flush(b.self) != AIMDB_OK) die("flush");
}

/* 'text' with quotes doubled. */
static void sql_quote(char **out, size_t *len, size_t *cap, const char *s) {
    size_t need = *len + 2 * strlen(s) + 3;
    if (need > *cap) {
        *cap = need * 2;
        *out = realloc(*out, *cap);
        if (!*out) die("out of memory");
    }
    (*out)[(*len)++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') (*out)[(*len)++] = '\'';
        (*out)[(*len)++] = *s;
    }
    (*out)[(*len)++] = '\'';
    (*out)[*len] = '\0';
}

static void sql_add(char **out, size_t *len, size_t *cap, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *out = realloc(*out, *cap);
        if (!*out) die("out of memory");
    }
    memcpy(*out + *len, s, n + 1);
    *len += n;
}

char *aggregate_cases_sql(const aggregate_cases *c) {
    char *out = NULL;
    size_t len = 0, cap = 0;
    const cJSON *row;
    sql_add(&out, &len, &cap, "BEGIN;");
    cJSON_ArrayForEach(row, rows_of(c)) {
        char ts[40];
        sql_add(&out, &len, &cap,
                "INSERT INTO record_history(record_name, value_json, stored_at, topic) VALUES(");
        sql_quote(&out, &len, &cap, cJSON_GetArrayItem(row, 0)->valuestring);
        sql_add(&out, &len, &cap, ",");
        sql_quote(&out, &len, &cap, cJSON_GetArrayItem(row, 2)->valuestring);
        snprintf(ts, sizeof(ts), ",%" PRId64 ",", (int64_t)cJSON_GetArrayItem(row, 1)->valuedouble);
        sql_add(&out, &len, &cap, ts);
        const cJSON *topic = cJSON_GetArrayItem(row, 3);
        if (cJSON_IsString(topic)) sql_quote(&out, &len, &cap, topic->valuestring);
        else sql_add(&out, &len, &cap, "NULL");
        sql_add(&out, &len, &cap, ");");
    }
    sql_add(&out, &len, &cap, "COMMIT;");
    return out;
}

/* ------------------------------------------------------------ the db */

/* The backend behind a table of operations the runner can change: its own
 * aggregate, or none (then the layer aggregates its rows). */
struct cases_db {
    aimdb_db *db;
    aimdb_persist *p;
    aimdb_backend_ops ops;
    aimdb_backend inner;
};

cases_db *cases_db_open(aimdb_backend b) {
    cases_db *d = calloc(1, sizeof(*d));
    if (!d) die("out of memory");
    d->inner = b;
    d->ops = *b.ops;
    d->db = aimdb_db_new(NULL);
    if (!d->db || aimdb_persist_attach(d->db, (aimdb_backend){&d->ops, b.self}, NULL, &d->p) !=
                      AIMDB_OK)
        die("attach");
    return d;
}

aimdb_persist *cases_db_persist(cases_db *d) { return d->p; }

void cases_db_close(cases_db *d) {
    aimdb_db_free(d->db);
    free(d);
}

static void use_own(cases_db *d, bool own) {
    d->ops.aggregate = own ? d->inner.ops->aggregate : NULL;
}

/* --------------------------------------------------------- the cases */

typedef struct hidden {
    const cJSON *topics;
} hidden;

static aimdb_visibility by_source(const char *record, void *ctx) {
    (void)record, (void)ctx;
    return AIMDB_SEE_BY_SOURCE;
}

static bool topic_visible(const char *record, const char *source, void *ctx) {
    (void)record;
    const hidden *h = ctx;
    const cJSON *t;
    cJSON_ArrayForEach(t, h->topics) if (source && strcmp(t->valuestring, source) == 0) return false;
    return true;
}

static int64_t number(const cJSON *obj, const char *key, bool *has) {
    const cJSON *it = cJSON_GetObjectItem(obj, key);
    *has = it != NULL;
    return it ? (int64_t)it->valuedouble : 0;
}

static void request_of(const cJSON *r, aimdb_history_request *req) {
    bool has;
    *req = (aimdb_history_request){0};
    const cJSON *name = cJSON_GetObjectItem(r, "name");
    req->pattern = name ? name->valuestring : NULL;
    req->start_ms = number(r, "start", &req->has_start);
    req->end_ms = number(r, "end", &req->has_end);
    req->limit = (uint32_t)number(r, "limit", &has);
    req->every_ms = number(r, "every", &has);
    const cJSON *field = cJSON_GetObjectItem(r, "field");
    req->field = field ? field->valuestring : NULL;
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(r, "agg")) {
        aimdb_agg k = 0;
        while (k < AIMDB_AGG_KINDS && strcmp(aimdb_agg_name(k), a->valuestring) != 0) k++;
        req->agg[req->n_agg++] = k;
    }
}

static char *answer(cases_db *d, const aimdb_history_request *req) {
    char *out = NULL, err[256] = "";
    int rc = aimdb_persist_query_json(d->p, req, &out, NULL, err, sizeof(err));
    if (rc != AIMDB_OK) {
        char *why = malloc(300);
        snprintf(why, 300, "error %d: %s", rc, err);
        return why;
    }
    return out;
}

/* What a fleet backend holding the table once per gateway in gateways[]
 * (ascending) answers for want: per record, each gateway's values in turn,
 * each naming its gateway; count and skipped summed over the gateways. */
static cJSON *fleet_result(const cJSON *want, const char *const *gateways, size_t n) {
    cJSON *out = cJSON_Duplicate(want, true), *values = cJSON_CreateArray();
    const cJSON *from = cJSON_GetObjectItem(want, "values");
    for (const cJSON *run = from->child; run;) {
        const char *record = cJSON_GetObjectItem(run, "record")->valuestring;
        const cJSON *end = run;
        while (end && strcmp(cJSON_GetObjectItem(end, "record")->valuestring, record) == 0)
            end = end->next;
        for (size_t g = 0; g < n; g++)
            for (const cJSON *v = run; v != end; v = v->next) {
                cJSON *copy = cJSON_Duplicate(v, true);
                cJSON_AddStringToObject(copy, "gateway", gateways[g]);
                cJSON_AddItemToArray(values, copy);
            }
        run = end;
    }
    cJSON_ReplaceItemInObject(out, "values", values);
    const char *sums[] = {"count", "skipped"};
    for (size_t i = 0; i < 2; i++) {
        cJSON *it = cJSON_GetObjectItem(out, sums[i]);
        if (it) cJSON_SetNumberValue(it, it->valuedouble * (double)n);
    }
    return out;
}

/* One case: its request (gateway set) against want; false after printing. */
static bool case_holds(cases_db *d, const cJSON *kase, const char *gateway, const cJSON *want,
                       const char *label) {
    aimdb_history_request req;
    request_of(cJSON_GetObjectItem(kase, "request"), &req);
    req.gateway = gateway;
    hidden h = {cJSON_GetObjectItem(kase, "hidden_topics")};
    aimdb_access access = {.record = by_source, .value = topic_visible, .ctx = &h};
    if (cJSON_GetArraySize(h.topics) > 0) req.access = &access;
    char *got = answer(d, &req);
    cJSON *parsed = cJSON_Parse(got);
    bool same = parsed && cJSON_Compare(parsed, want, true);
    if (!same) {
        char *w = cJSON_PrintUnformatted(want);
        fprintf(stderr, "%s: case \"%s\"%s%s\n  got  %s\n  want %s\n", label,
                cJSON_GetObjectItem(kase, "name")->valuestring, gateway ? ", gateway " : "",
                gateway ? gateway : "", got, w);
        free(w);
    }
    cJSON_Delete(parsed);
    free(got);
    return same;
}

int aggregate_cases_check_fleet(const aggregate_cases *c, cases_db *d, bool own,
                                const char *const *gateways, size_t n, const char *label) {
    int failed = 0;
    use_own(d, own);
    const cJSON *kase;
    cJSON_ArrayForEach(kase, cJSON_GetObjectItem(c->doc, "cases")) {
        const cJSON *want = cJSON_GetObjectItem(kase, "result");
        if (!n) {
            failed += !case_holds(d, kase, NULL, want, label);
            continue;
        }
        cJSON *all = fleet_result(want, gateways, n), *one = fleet_result(want, gateways, 1);
        failed += !case_holds(d, kase, NULL, all, label);
        failed += !case_holds(d, kase, gateways[0], one, label);
        cJSON_Delete(all);
        cJSON_Delete(one);
    }
    use_own(d, true);
    return failed;
}

int aggregate_cases_check(const aggregate_cases *c, cases_db *d, bool own, const char *label) {
    return aggregate_cases_check_fleet(c, d, own, NULL, 0, label);
}

bool aggregate_layers_agree(cases_db *d, const aimdb_history_request *req) {
    use_own(d, true);
    char *own = answer(d, req);
    use_own(d, false);
    char *layer = answer(d, req);
    use_own(d, true);
    cJSON *a = cJSON_Parse(own), *b = cJSON_Parse(layer);
    bool same = a && b && cJSON_Compare(a, b, true);
    if (!same) fprintf(stderr, "backend: %s\nlayer:   %s\n", own, layer);
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(own);
    free(layer);
    return same;
}
