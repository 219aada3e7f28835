/*
 * aimx.c -- the AimX handler object: limits, dispatch, and the one place a
 * reply is handed to the transport.
 *
 * The handler keeps no per-request state of its own: a request is parsed,
 * answered inline (record.list, record.get, every error) or handed with a
 * self-contained context to the history service (record.query), whose
 * completion builds the reply on a query thread.  That is why the handler
 * can be freed while a query is still running.
 *
 * Logging: a reply that reports the client's mistake (bad JSON, unknown
 * record, refused record ...) is logged at DEBUG, so a misbehaving client
 * cannot flood the broker's log; a failure on our side (query_error,
 * internal_error) is logged at WARNING.
 */
#include <stdlib.h>

#include "aimx_internal.h"

aimdb_aimx *aimdb_aimx_new(aimdb_db *db, const aimdb_aimx_options *opts) {
    aimdb_aimx_options o = opts ? *opts : (aimdb_aimx_options){0};
    aimdb_aimx *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->db = db;
    x->rt = aimdb_db_runtime(db);
    x->limits.max_request_bytes = o.max_request_bytes ? o.max_request_bytes : 64 * 1024;
    x->limits.max_limit = o.max_limit ? o.max_limit : 100000;
    x->limits.max_reply_bytes = o.max_reply_bytes ? o.max_reply_bytes : 4 * 1024 * 1024;
    return x;
}

void aimdb_aimx_free(aimdb_aimx *x) { free(x); }

void aimx_answer(const aimdb_runtime *rt, aimdb_aimx_reply_fn reply, void *reply_ctx,
                 char *text, size_t len) {
    if (!text) {
        aimdb_log(rt, AIMDB_LOG_ERROR, "aimx: out of memory building a reply; none sent");
        len = 0;
    }
    reply(text, len, reply_ctx);
}

void aimx_answer_error(const aimdb_runtime *rt, aimdb_aimx_reply_fn reply, void *reply_ctx,
                       const char *id, const aimx_error *err) {
    bool ours = err->code == AIMX_QUERY_ERROR || err->code == AIMX_INTERNAL_ERROR;
    aimdb_log(rt, ours ? AIMDB_LOG_WARNING : AIMDB_LOG_DEBUG, "aimx: request %s: %s: %s",
              id ? aimx_preview_of(id).text : "null", aimx_code_name(err->code), err->message);
    size_t len = 0;
    char *text = aimx_reply_error(id, err, &len);
    aimx_answer(rt, reply, reply_ctx, text, len);
}

void aimdb_aimx_handle(aimdb_aimx *x, const void *payload, size_t len,
                       const aimdb_access *access, aimdb_aimx_reply_fn reply, void *reply_ctx) {
    aimx_call call = {x, access, reply, reply_ctx};
    aimx_request req;
    aimx_error err;
    if (!aimx_request_parse(payload, len, &x->limits, &req, &err)) {
        aimx_answer_error(x->rt, reply, reply_ctx, req.id, &err);
    } else {
        switch (req.method) {
        case AIMX_RECORD_LIST: aimx_list(&call, &req); break;
        case AIMX_RECORD_GET: aimx_get(&call, &req); break;
        case AIMX_RECORD_QUERY: aimx_query(&call, &req); break;
        }
    }
    aimx_request_release(&req);
}
