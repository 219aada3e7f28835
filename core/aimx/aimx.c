/*
 * aimx.c -- the AimX handler object: limits, dispatch, and the one place a
 * reply is handed to the transport.
 *
 * The handler keeps no per-request state of its own: a request is parsed,
 * answered inline (record.list, record.get, every error) or handed with a
 * self-contained context to the history service (record.query), whose
 * completion builds the reply on a query thread.  Each such query holds a
 * reference to the handler, so the transport can free it while a query is
 * still running.
 *
 * Logging: a reply that reports the client's mistake (bad JSON, unknown
 * record, refused record ...) or an overload (busy) is logged at DEBUG, so
 * a misbehaving client cannot flood the broker's log; a failure on our
 * side (query_error, internal_error) is logged at WARNING, at most once per
 * log_interval_ms: the first at once, then one per interval carrying the
 * number held back since the last line.
 */
#include <stdlib.h>
#include <string.h>

#include "aimx_internal.h"

#define DEFAULT_LOG_INTERVAL_MS 10000

struct aimdb_aimx_request {
    aimdb_aimx *x;
    bool valid;       /* else err is the answer */
    aimx_request req;
    aimx_error err;
};

aimdb_aimx *aimdb_aimx_new(aimdb_db *db, const aimdb_aimx_options *opts) {
    aimdb_aimx_options o = opts ? *opts : (aimdb_aimx_options){0};
    aimdb_aimx *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->db = db;
    x->rt = aimdb_db_runtime(db);
    x->limits.max_request_bytes = o.max_request_bytes ? o.max_request_bytes : 64 * 1024;
    x->limits.max_limit = o.max_limit ? o.max_limit : 100000;
    x->limits.max_reply_bytes = o.max_reply_bytes ? o.max_reply_bytes : 4 * 1024 * 1024;
    x->log_interval_ms = o.log_interval_ms > 0 ? o.log_interval_ms : DEFAULT_LOG_INTERVAL_MS;
    atomic_init(&x->refs, 1);
    pthread_mutex_init(&x->log_lock, NULL);
    return x;
}

void aimx_hold(aimdb_aimx *x) {
    atomic_fetch_add(&x->refs, 1);
}

void aimx_release(aimdb_aimx *x) {
    if (!x || atomic_fetch_sub(&x->refs, 1) != 1) return;
    pthread_mutex_destroy(&x->log_lock);
    free(x);
}

void aimdb_aimx_free(aimdb_aimx *x) { aimx_release(x); }

void aimx_answer(const aimdb_runtime *rt, aimdb_aimx_reply_fn reply, void *reply_ctx,
                 char *text, size_t len) {
    if (!text) {
        aimdb_log(rt, AIMDB_LOG_ERROR, "aimx: out of memory building a reply; none sent");
        len = 0;
    }
    reply(text, len, reply_ctx);
}

static void log_error(aimdb_aimx *x, const char *id, const aimx_error *err) {
    const char *shown = id ? aimx_preview_of(id).text : "null";
    if (err->code != AIMX_QUERY_ERROR && err->code != AIMX_INTERNAL_ERROR) {
        aimdb_log(x->rt, AIMDB_LOG_DEBUG, "aimx: request %s: %s: %s", shown,
                  aimx_code_name(err->code), err->message);
        return;
    }
    uint64_t held = 0;
    pthread_mutex_lock(&x->log_lock);
    bool pass = aimdb_log_limit_pass(&x->our_failures, aimdb_monotonic_ms(), x->log_interval_ms,
                                     &held);
    pthread_mutex_unlock(&x->log_lock);
    if (!pass) return;
    if (held)
        aimdb_log(x->rt, AIMDB_LOG_WARNING,
                  "aimx: request %s: %s: %s (%llu more query_error/internal_error replies "
                  "not logged since the last such line)",
                  shown, aimx_code_name(err->code), err->message, (unsigned long long)held);
    else
        aimdb_log(x->rt, AIMDB_LOG_WARNING, "aimx: request %s: %s: %s", shown,
                  aimx_code_name(err->code), err->message);
}

void aimx_answer_error(aimdb_aimx *x, aimdb_aimx_reply_fn reply, void *reply_ctx,
                       const char *id, const aimx_error *err) {
    log_error(x, id, err);
    size_t len = 0;
    char *text = aimx_reply_error(id, err, &len);
    aimx_answer(x->rt, reply, reply_ctx, text, len);
}

aimdb_aimx_request *aimdb_aimx_parse(aimdb_aimx *x, const void *payload, size_t len) {
    aimdb_aimx_request *r = calloc(1, sizeof(*r));
    if (!r) {
        aimdb_log(x->rt, AIMDB_LOG_ERROR, "aimx: out of memory reading a request; no reply");
        return NULL;
    }
    r->x = x;
    r->valid = aimx_request_parse(payload, len, &x->limits, &r->req, &r->err);
    return r;
}

aimdb_aimx_scope aimdb_aimx_scope_of(const aimdb_aimx_request *r) {
    if (!r->valid) return (aimdb_aimx_scope){AIMDB_AIMX_READS_NOTHING, NULL};
    if (r->req.method == AIMX_RECORD_GET) return (aimdb_aimx_scope){AIMDB_AIMX_READS_NAME, r->req.name};
    return (aimdb_aimx_scope){AIMDB_AIMX_READS_PATTERN, r->req.name ? r->req.name : "*"};
}

static void request_free(aimdb_aimx_request *r) {
    aimx_request_release(&r->req);
    free(r);
}

void aimdb_aimx_run(aimdb_aimx_request *r, const aimdb_access *access,
                    aimdb_aimx_reply_fn reply, void *reply_ctx) {
    aimx_call call = {r->x, access, reply, reply_ctx};
    if (!r->valid) {
        aimx_answer_error(r->x, reply, reply_ctx, r->req.id, &r->err);
    } else {
        switch (r->req.method) {
        case AIMX_RECORD_LIST: aimx_list(&call, &r->req); break;
        case AIMX_RECORD_GET: aimx_get(&call, &r->req); break;
        case AIMX_RECORD_QUERY: aimx_query(&call, &r->req); break;
        }
    }
    request_free(r);
}

void aimdb_aimx_refuse(aimdb_aimx_request *r, aimdb_aimx_refusal why, const char *message,
                       aimdb_aimx_reply_fn reply, void *reply_ctx) {
    aimx_error err;
    aimx_fail(&err, why == AIMDB_AIMX_BUSY ? AIMX_BUSY : AIMX_INTERNAL_ERROR, "%s", message);
    aimx_answer_error(r->x, reply, reply_ctx, r->req.id, &err);
    request_free(r);
}

void aimdb_aimx_handle(aimdb_aimx *x, const void *payload, size_t len,
                       const aimdb_access *access, aimdb_aimx_reply_fn reply, void *reply_ctx) {
    aimdb_aimx_request *r = aimdb_aimx_parse(x, payload, len);
    if (r) aimdb_aimx_run(r, access, reply, reply_ctx);
}
