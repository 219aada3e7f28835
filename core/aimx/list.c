/*
 * list.c -- record.list: every record the client may see, sorted by name.
 *
 * Each entry is {"record", "buffer", "persist", "topic_filter", ...}: name
 * and buffer come from the core, the rest from the record's attributes
 * (set by the persistence layer, the broker plugin, or any embedder), all
 * of them, in the order they were set.  "persist" is false and
 * "topic_filter" null when no layer said otherwise.  Attributes named
 * "record" or "buffer" cannot override the core's facts, and an attribute
 * whose text is not JSON is left out; both are logged, as they are bugs in
 * whoever set them.
 *
 * params.name (optional) is a record.query-style
 * pattern (aimdb_pattern_match), so a list too big for one reply can be
 * fetched in parts; only the records sharing its literal prefix are
 * looked at (aimdb_db_foreach_matching).
 */
#include <stdlib.h>
#include <string.h>

#include "aimx_internal.h"

/* ------------------------------------------------------------ collecting */

typedef struct record_set {
    aimdb_record **items;
    size_t n, cap;
} record_set;

static int collect_record(aimdb_record *rec, void *ctx) {
    record_set *set = ctx;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 32;
        aimdb_record **grown = realloc(set->items, cap * sizeof(*grown));
        if (!grown) return AIMDB_ENOMEM;
        set->items = grown;
        set->cap = cap;
    }
    set->items[set->n++] = rec;
    return 0;
}

/* The matching records come in name order, their pointers collected
 * under the registry lock and filtered outside it: the access predicate is
 * the transport's code and must not run under our locks.  Records live
 * until aimdb_db_free, so the pointers stay valid. */
static int visible_records(const aimx_call *call, const char *pattern, record_set *set) {
    int rc = aimdb_db_foreach_matching(call->x->db, pattern, collect_record, set);
    if (rc != 0) return rc;
    size_t kept = 0;
    for (size_t i = 0; i < set->n; i++)
        if (aimdb_access_record(call->access, aimdb_record_name(set->items[i])) != AIMDB_SEE_NONE)
            set->items[kept++] = set->items[i];
    set->n = kept;
    return 0;
}

/* ------------------------------------------------------------ attributes */

typedef struct attr_copy {
    char *key, *json;
} attr_copy;

typedef struct attr_list {
    attr_copy *items;
    size_t n, cap;
    bool failed;
} attr_list;

/* Runs under the record's lock: copy and return. */
static void copy_attr(const char *key, const char *json, void *ctx) {
    attr_list *list = ctx;
    if (list->failed) return;
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        attr_copy *grown = realloc(list->items, cap * sizeof(*grown));
        if (!grown) {
            list->failed = true;
            return;
        }
        list->items = grown;
        list->cap = cap;
    }
    attr_copy c = {strdup(key), strdup(json)};
    if (!c.key || !c.json) {
        free(c.key);
        free(c.json);
        list->failed = true;
        return;
    }
    list->items[list->n++] = c;
}

static void free_attrs(attr_list *list) {
    for (size_t i = 0; i < list->n; i++) {
        free(list->items[i].key);
        free(list->items[i].json);
    }
    free(list->items);
}

static const attr_copy *find_attr(const attr_list *list, const char *key) {
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->items[i].key, key) == 0) return &list->items[i];
    return NULL;
}

static bool attr_is_json(const aimx_call *call, const char *record, const attr_copy *a) {
    aimdb_json_scan_result scan;
    aimx_scan_value(a->json, strlen(a->json), &scan);
    if (scan.status == AIMDB_JSON_OK) return true;
    aimdb_log(call->x->rt, AIMDB_LOG_WARNING,
              "aimx: record.list leaves out attribute \"%s\" of %s: %s (byte %zu)", a->key,
              record, aimdb_json_problem(scan.status), scan.error_at);
    return false;
}

/* Add a (validated) attribute as raw JSON, or the fallback when absent. */
static bool add_known(const aimx_call *call, cJSON *entry, const char *record,
                      const attr_list *attrs, const char *key, cJSON *fallback) {
    const attr_copy *a = find_attr(attrs, key);
    cJSON *item = a && attr_is_json(call, record, a) ? cJSON_CreateRaw(a->json) : NULL;
    if (item) {
        cJSON_Delete(fallback);
    } else {
        item = fallback;
    }
    return item && cJSON_AddItemToObject(entry, key, item);
}

/* ---------------------------------------------------------------- entry */

static bool core_fact(const char *key) {
    return strcmp(key, "record") == 0 || strcmp(key, "buffer") == 0;
}

static bool add_attrs(const aimx_call *call, cJSON *entry, const char *record,
                      const attr_list *attrs) {
    if (!add_known(call, entry, record, attrs, "persist", cJSON_CreateFalse()) ||
        !add_known(call, entry, record, attrs, "topic_filter", cJSON_CreateNull()))
        return false;
    for (size_t i = 0; i < attrs->n; i++) {
        const attr_copy *a = &attrs->items[i];
        if (strcmp(a->key, "persist") == 0 || strcmp(a->key, "topic_filter") == 0) continue;
        if (core_fact(a->key)) {
            aimdb_log(call->x->rt, AIMDB_LOG_WARNING,
                      "aimx: record.list ignores attribute \"%s\" of %s: the core's value wins",
                      a->key, record);
            continue;
        }
        if (!attr_is_json(call, record, a)) continue;
        cJSON *raw = cJSON_CreateRaw(a->json);
        if (!raw || !cJSON_AddItemToObject(entry, a->key, raw)) {
            cJSON_Delete(raw);
            return false;
        }
    }
    return true;
}

static cJSON *describe(const aimx_call *call, aimdb_record *rec) {
    const char *name = aimdb_record_name(rec);
    aimdb_buffer_cfg cfg = aimdb_record_buffer(rec);
    char buffer[32];
    aimdb_buffer_format(&cfg, buffer, sizeof(buffer));
    attr_list attrs = {0};
    aimdb_record_foreach_attr(rec, copy_attr, &attrs);

    cJSON *entry = cJSON_CreateObject();
    bool ok = entry && !attrs.failed && cJSON_AddStringToObject(entry, "record", name) &&
              cJSON_AddStringToObject(entry, "buffer", buffer) &&
              add_attrs(call, entry, name, &attrs);
    free_attrs(&attrs);
    if (!ok) {
        cJSON_Delete(entry);
        return NULL;
    }
    return entry;
}

/* --------------------------------------------------------------- method */

static cJSON *describe_all(const aimx_call *call, const record_set *set) {
    cJSON *array = cJSON_CreateArray();
    for (size_t i = 0; array && i < set->n; i++) {
        cJSON *entry = describe(call, set->items[i]);
        if (!entry || !cJSON_AddItemToArray(array, entry)) {
            cJSON_Delete(entry);
            cJSON_Delete(array);
            return NULL;
        }
    }
    return array;
}

void aimx_list(const aimx_call *call, const aimx_request *req) {
    aimdb_aimx *x = call->x;
    aimx_error err;
    record_set set = {0};
    cJSON *array = NULL;
    if (visible_records(call, req->name, &set) == 0) array = describe_all(call, &set);
    free(set.items);
    if (!array) {
        aimx_fail(&err, AIMX_INTERNAL_ERROR, "out of memory listing records");
        aimx_answer_error(x, call->reply, call->reply_ctx, req->id, &err);
        return;
    }
    size_t len = 0, too_big;
    char *text = aimx_reply_tree(req->id, array, x->limits.max_reply_bytes, &too_big, &len);
    if (!text && too_big) {
        aimx_fail(&err, AIMX_QUERY_ERROR,
                  "the record list is %zu bytes, over the reply limit of %zu; narrow it "
                  "with params.name, a pattern such as \"temp::*\"",
                  too_big, x->limits.max_reply_bytes);
        aimx_answer_error(x, call->reply, call->reply_ctx, req->id, &err);
        return;
    }
    aimx_answer(x->rt, call->reply, call->reply_ctx, text, len);
}
