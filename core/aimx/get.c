/*
 * get.c -- record.get: the newest value a record holds, live from its
 * buffer; the result is the value itself, as the record's codec writes it.
 *
 * Decisions:
 *  - The access predicate is asked first, with the name as requested.  A
 *    name the client sees nothing of is permission_denied whether or not
 *    such a record exists, so the answer never tells a client about records
 *    it may not see; only names it may see can be not_found (unknown, or
 *    nothing produced yet that it may read).
 *  - The answer is the newest value the client may see, looking back
 *    through what the buffer holds: in a record fed by two topics, a
 *    value from the one it may not read neither shows nor hides the other's.
 *  - The codec's text is checked to be JSON before it is spliced into the
 *    reply (the json codec trusts its producers).  A value with no JSON
 *    form, or text that is not JSON, is query_error: the request was fine,
 *    the data cannot be shown.
 *  - Peeking never consumes: a mailbox keeps its value for its reader.
 */
#include <stdlib.h>
#include <string.h>

#include "aimx_internal.h"

typedef struct value_copy {
    unsigned char *data;
    size_t len;
    bool failed;
} value_copy;

/* Runs under the record's lock: copy and return. */
static void copy_value(const aimdb_value *v, void *ctx) {
    value_copy *c = ctx;
    c->data = malloc(v->len ? v->len : 1);
    if (!c->data) {
        c->failed = true;
        return;
    }
    memcpy(c->data, v->data, v->len);
    c->len = v->len;
}

/* The codec's JSON text of the value (malloc'd), or NULL with *no_form set
 * when the codec has none, or NULL alone when memory ran out.  A codec
 * follows snprintf: a first call that needs more room says how much. */
static char *encode(const aimdb_codec *codec, const value_copy *v, size_t *len, bool *no_form) {
    size_t cap = 256;
    *no_form = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *text = malloc(cap);
        if (!text) return NULL;
        long n = codec->to_json(v->data, v->len, text, cap);
        if (n >= 0 && (size_t)n < cap) {
            *len = (size_t)n;
            return text;
        }
        free(text);
        if (n < 0) break;
        cap = (size_t)n + 1;
    }
    *no_form = true; /* -1, or a codec that asked for more room twice */
    return NULL;
}

static bool answer_value(const aimx_call *call, const aimx_request *req, aimdb_record *rec,
                         const value_copy *v, aimx_error *err) {
    const aimdb_codec *codec = aimdb_record_codec(rec);
    aimx_preview name = aimx_preview_of(req->name);
    size_t n = 0;
    bool no_form;
    char *json = encode(codec, v, &n, &no_form);
    if (!json && no_form)
        return aimx_fail(err, AIMX_QUERY_ERROR,
                         "the latest value of \"%s\" has no JSON form (codec %s)", name.text,
                         codec->name);
    if (!json) return aimx_fail(err, AIMX_INTERNAL_ERROR, "out of memory encoding a value");

    aimdb_json_scan_result scan;
    aimx_scan_value(json, n, &scan);
    const char *id = req->id ? req->id : "null";
    aimx_piece pieces[] = {{"{\"id\":", 6}, {id, strlen(id)}, {",\"result\":", 10}, {json, n},
                           {"}", 1}};
    size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
    size_t total = aimx_pieces_len(pieces, npieces);
    size_t max = call->x->limits.max_reply_bytes;
    bool ok = false;
    if (scan.status != AIMDB_JSON_OK) {
        aimx_fail(err, AIMX_QUERY_ERROR, "the latest value of \"%s\" is %s (codec %s, byte %zu)",
                  name.text, aimdb_json_problem(scan.status), codec->name, scan.error_at);
    } else if (total > max) {
        aimx_fail(err, AIMX_QUERY_ERROR,
                  "the latest value of \"%s\" makes a %zu-byte reply, over the reply limit "
                  "of %zu",
                  name.text, total, max);
    } else {
        size_t len = 0;
        char *text = aimx_reply_concat(pieces, npieces, &len);
        aimx_answer(call->x->rt, call->reply, call->reply_ctx, text, len);
        ok = true;
    }
    free(json);
    return ok;
}

/* The newest value a client may see, copied (one ctx for both callbacks). */
typedef struct visible_value {
    const aimx_call *call;
    const char *record;
    aimdb_visibility seen;
    value_copy copy;
} visible_value;

static bool may_see(const aimdb_value *v, void *ctx) {
    visible_value *w = ctx;
    return aimdb_access_value(w->call->access, w->seen, w->record, v->source);
}

static void copy_visible(const aimdb_value *v, void *ctx) {
    copy_value(v, &((visible_value *)ctx)->copy);
}

static bool get_value(const aimx_call *call, const aimx_request *req, aimx_error *err) {
    aimx_preview name = aimx_preview_of(req->name);
    visible_value w = {call, req->name, aimdb_access_record(call->access, req->name), {0}};
    if (w.seen == AIMDB_SEE_NONE)
        return aimx_fail(err, AIMX_PERMISSION_DENIED, "not allowed to read record \"%s\"",
                         name.text);
    aimdb_record *rec = aimdb_db_find(call->x->db, req->name);
    if (!rec) return aimx_fail(err, AIMX_NOT_FOUND, "no record named \"%s\"", name.text);
    int rc = w.seen == AIMDB_SEE_ALL ? aimdb_record_peek_latest(rec, copy_visible, &w)
                                     : aimdb_record_peek_newest_where(rec, may_see, copy_visible, &w);
    value_copy v = w.copy;
    if (rc == AIMDB_ENOTFOUND)
        return aimx_fail(err, AIMX_NOT_FOUND, "record \"%s\" has no value %s", name.text,
                         w.seen == AIMDB_SEE_ALL ? "yet" : "you may read");
    bool ok;
    if (rc != AIMDB_OK || v.failed)
        ok = aimx_fail(err, AIMX_INTERNAL_ERROR, "reading \"%s\" failed: %s", name.text,
                       v.failed ? "out of memory" : aimdb_strerror(rc));
    else
        ok = answer_value(call, req, rec, &v, err);
    free(v.data);
    return ok;
}

void aimx_get(const aimx_call *call, const aimx_request *req) {
    aimx_error err;
    if (!get_value(call, req, &err))
        aimx_answer_error(call->x, call->reply, call->reply_ctx, req->id, &err);
}
