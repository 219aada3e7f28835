/*
 * query.c -- record.query: history rows from whatever persistence layer
 * published an aimdb_history_service (history.h), answered on its query
 * thread, never on the caller's.
 *
 * The parameters arrive translated, defaults applied (request.c); only
 * "gateway" is judged here, refused unless the history is a fleet's, which
 * request.c cannot know.  The service gets a byte cap derived from
 * max_reply_bytes so it stops building an answer that could not be sent;
 * over it the client gets query_error saying how to narrow the query --
 * never a truncated array.  Its result
 * object is spliced into the reply as the JSON text it already is.
 *
 * Status mapping: ETOOBIG and EIO are query_error; a query the service
 * cannot queue (EAGAIN: its queue is full) is busy with a retry hint;
 * ESTOPPED or any other failure to queue is internal_error; no service is
 * not_configured.  Rows the service skipped as undecodable are
 * counted and logged there, not here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/history.h"
#include "aimx_internal.h"

/* Everything the completion needs, in one allocation owned by it, so the
 * reply does not depend on the handler still existing. */
typedef struct query_call {
    aimdb_aimx *x;       /* held until answered */
    const aimdb_runtime *rt;
    size_t max_reply;
    aimdb_aimx_reply_fn reply;
    void *reply_ctx;
    const char *pattern; /* points into id[], after the id */
    char id[];           /* JSON text of the id, then the pattern */
} query_call;

static const char reply_head[] = "{\"id\":";
static const char result_head[] = ",\"result\":";
static const char reply_tail[] = "}";

/* Bytes of a reply that are not the result object. */
static size_t envelope_bytes(const char *id) {
    return strlen(reply_head) + strlen(id) + strlen(result_head) + strlen(reply_tail);
}

static void too_big(const query_call *q, aimx_error *err) {
    aimx_fail(err, AIMX_QUERY_ERROR,
              "the result is over the reply limit of %zu bytes; narrow the query with "
              "start/end (a shorter time range), a smaller limit or a wider every",
              q->max_reply);
}

static void answer_rows(const query_call *q, const aimdb_history_result *res) {
    aimx_piece pieces[] = {{reply_head, strlen(reply_head)}, {q->id, strlen(q->id)},
                           {result_head, strlen(result_head)},
                           {res->result_json, res->result_len},
                           {reply_tail, strlen(reply_tail)}};
    size_t n = sizeof(pieces) / sizeof(pieces[0]);
    if (aimx_pieces_len(pieces, n) > q->max_reply) {
        aimx_error err;
        too_big(q, &err);
        aimx_answer_error(q->x, q->reply, q->reply_ctx, q->id, &err);
        return;
    }
    size_t len = 0;
    char *text = aimx_reply_concat(pieces, n, &len);
    aimx_answer(q->rt, q->reply, q->reply_ctx, text, len);
}

/* Made on the caller's thread, most often freed on a query thread: through
 * the runtime, which may hand it back (runtime.h). */
static void free_query_call(query_call *q) {
    const aimdb_runtime *rt = q->rt;
    aimx_release(q->x);
    aimdb_release_block(rt, q);
}

/* The service's completion, on a query thread. */
static void query_done(const aimdb_history_result *res, void *ctx) {
    query_call *q = ctx;
    const char *why = res->error ? res->error : aimdb_strerror(res->status);
    aimx_error err;
    switch (res->status) {
    case AIMDB_OK:
        answer_rows(q, res);
        free_query_call(q);
        return;
    case AIMDB_ETOOBIG:
        aimdb_log(q->rt, AIMDB_LOG_DEBUG, "aimx: history service: %s", why);
        too_big(q, &err);
        break;
    case AIMDB_EIO:
        aimx_fail(&err, AIMX_QUERY_ERROR, "the history query failed: %s", why);
        break;
    default:
        aimx_fail(&err, AIMX_INTERNAL_ERROR, "the history query did not run: %s", why);
        break;
    }
    aimx_answer_error(q->x, q->reply, q->reply_ctx, q->id, &err);
    free_query_call(q);
}

static query_call *new_query_call(const aimx_call *call, const aimx_request *req) {
    const char *id = req->id ? req->id : "null";
    const char *pattern = req->name ? req->name : "*";
    size_t id_size = strlen(id) + 1, pattern_size = strlen(pattern) + 1;
    query_call *q = malloc(sizeof(*q) + id_size + pattern_size);
    if (!q) return NULL;
    aimx_hold(call->x);
    q->x = call->x;
    q->rt = call->x->rt;
    q->max_reply = call->x->limits.max_reply_bytes;
    q->reply = call->reply;
    q->reply_ctx = call->reply_ctx;
    memcpy(q->id, id, id_size);
    memcpy(q->id + id_size, pattern, pattern_size);
    q->pattern = q->id + id_size;
    return q;
}

static bool start_query(const aimx_call *call, const aimx_request *req, aimx_error *err) {
    aimdb_history_service *svc = aimdb_ext_get(call->x->db, AIMDB_HISTORY_EXT);
    if (!svc)
        return aimx_fail(err, AIMX_NOT_CONFIGURED,
                         "history is not configured: no persistence layer is attached");
    if (req->gateway && !svc->fleet)
        return aimx_fail(err, AIMX_INVALID_PARAMS,
                         "params.gateway is for fleet history (database postgresql://...); "
                         "this node's history is its own");
    query_call *q = new_query_call(call, req);
    if (!q) return aimx_fail(err, AIMX_INTERNAL_ERROR, "out of memory starting a query");
    size_t envelope = envelope_bytes(q->id);
    aimdb_history_request h = {
        .pattern = q->pattern,
        .has_start = req->has_start,
        .has_end = req->has_end,
        .start_ms = req->start_ms,
        .end_ms = req->end_ms,
        .limit = req->limit,
        .every_ms = req->every_ms,
        .field = req->field, /* copied by query_json */
        .n_agg = req->n_agg,
        /* 0 would mean "no cap": a limit smaller than any envelope still caps */
        .max_bytes = q->max_reply > envelope ? q->max_reply - envelope : 1,
        .access = call->access,
        .gateway = req->gateway, /* copied by query_json */
    };
    memcpy(h.agg, req->agg, sizeof(h.agg));
    int rc = svc->query_json(svc->self, &h, query_done, q);
    if (rc == AIMDB_OK) return true; /* q belongs to query_done now */
    free_query_call(q);
    if (rc == AIMDB_EAGAIN)
        return aimx_fail(err, AIMX_BUSY,
                         "the history queue is full (too many queries pending); retry in %d ms", AIMX_BUSY_RETRY_MS);
    return aimx_fail(err, AIMX_INTERNAL_ERROR, "the history query could not be queued: %s",
                     aimdb_strerror(rc));
}

void aimx_query(const aimx_call *call, const aimx_request *req) {
    aimx_error err;
    if (!start_query(call, req, &err))
        aimx_answer_error(call->x, call->reply, call->reply_ctx, req->id, &err);
}
