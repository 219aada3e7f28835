/*
 * aimx_internal.h -- what the files of the AimX handler share with each other
 * and with nothing else: the parsed request, the error codes of
 * docs/protocol.md and the reply builders.  Strict JSON scanning is the core's
 * (aimdb/json.h).
 *
 * The flow of one request:
 *   aimx_request_parse  payload -> aimx_request, or an aimx_error
 *   aimx_list / aimx_get / aimx_query   aimx_request -> reply text
 *   aimx_answer*        hand the reply to the transport exactly once
 */
#ifndef AIMDB_AIMX_INTERNAL_H
#define AIMDB_AIMX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "aimdb/aimx.h"
#include "aimdb/history.h"
#include "aimdb/json.h"
#include "aimdb/runtime.h"

/* Values and attributes are user data and may nest as deep as cJSON allows. */
#define AIMX_VALUE_DEPTH 1000

/* Check a value's or attribute's JSON text before it is spliced into a reply. */
static inline void aimx_scan_value(const char *json, size_t len, aimdb_json_scan_result *out) {
    static const aimdb_json_scan_options opts = {.max_depth = AIMX_VALUE_DEPTH};
    aimdb_json_scan(json, len, &opts, out);
}

/* ------------------------------------------------------------- errors */

typedef enum aimx_code {
    AIMX_PARSE_ERROR,
    AIMX_INVALID_REQUEST,
    AIMX_METHOD_NOT_FOUND,
    AIMX_INVALID_PARAMS,
    AIMX_NOT_FOUND,
    AIMX_NOT_CONFIGURED,
    AIMX_PERMISSION_DENIED,
    AIMX_QUERY_ERROR,
    AIMX_INTERNAL_ERROR,
    AIMX_BUSY
} aimx_code;

/* What a busy reply from the handler itself suggests waiting (the
 * transport's own busy replies say when to retry in their own terms). */
#define AIMX_BUSY_RETRY_MS 100

/* The protocol's spelling of a code ("invalid_params"). */
const char *aimx_code_name(aimx_code code);

typedef struct aimx_error {
    aimx_code code;
    char message[320];
} aimx_error;

/* Fill err (printf-style) and return false, so callers can write
 * `return aimx_fail(err, ...)`.  A message cut short by the buffer is cut at
 * a character boundary: replies stay valid UTF-8. */
bool aimx_fail(aimx_error *err, aimx_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short, NUL-terminated preview of a client- or user-supplied name for
 * messages: at most 48 bytes of it, cut at a character boundary, "..." when
 * cut. */
typedef struct aimx_preview {
    char text[56];
} aimx_preview;
aimx_preview aimx_preview_of(const char *s);

/* ------------------------------------------------------------ requests */

typedef enum aimx_method {
    AIMX_RECORD_LIST,
    AIMX_RECORD_GET,
    AIMX_RECORD_QUERY
} aimx_method;

/* The request limits, with the defaults of aimx.h applied. */
typedef struct aimx_limits {
    size_t max_request_bytes;
    uint32_t max_limit;
    size_t max_reply_bytes;
} aimx_limits;

/* A validated request.  Strings point into tree, which the request owns. */
typedef struct aimx_request {
    char *id;          /* JSON text to echo (malloc'd); NULL = null */
    aimx_method method;
    const char *name;  /* list/query: pattern or NULL; get: the record */
    /* record.query, defaults applied (request.c) */
    const char *gateway; /* fleet history only: gateway pattern or NULL */
    bool has_start, has_end;
    uint32_t limit;    /* rows or buckets per record; 0 = no cap */
    int64_t start_ms, end_ms;
    int64_t every_ms;  /* 0: rows; > 0: buckets of this width */
    const char *field; /* NULL: the value itself */
    aimdb_agg agg[AIMDB_AGG_KINDS];
    unsigned n_agg;    /* 0: the default aggregates */
    cJSON *tree;
} aimx_request;

/* Parse and validate one request payload.  On false, err says why and
 * req->id holds the id to echo when it could be read.  Either way release
 * req with aimx_request_release. */
bool aimx_request_parse(const void *payload, size_t len, const aimx_limits *lim,
                        aimx_request *req, aimx_error *err);
void aimx_request_release(aimx_request *req);

/* ------------------------------------------------------------- replies */

/* Replies are malloc'd, NUL-terminated, handed to the transport which
 * free()s them.  Every builder returns NULL only when memory ran out. */

/* {"id":<id>,"error":{"code":"...","message":"..."}}; id NULL = null. */
char *aimx_reply_error(const char *id, const aimx_error *err, size_t *len);

/* {"id":<id>,"result":<result>} from a cJSON result (always deleted).
 * Over max_bytes (0 = no cap): NULL with *too_big = the size it would have
 * had; NULL with *too_big = 0 means out of memory. */
char *aimx_reply_tree(const char *id, cJSON *result, size_t max_bytes, size_t *too_big,
                      size_t *len);

/* Concatenate text pieces into one reply; raw JSON is spliced as is so big
 * values are neither re-parsed nor re-printed. */
typedef struct aimx_piece {
    const char *text;
    size_t len;
} aimx_piece;
size_t aimx_pieces_len(const aimx_piece *pieces, size_t n);
char *aimx_reply_concat(const aimx_piece *pieces, size_t n, size_t *len);

/* ----------------------------------------------------------- the handler */

/* Held by its creator and by every record.query until it is answered, so
 * a reply never depends on the transport keeping the handler. */
struct aimdb_aimx {
    aimdb_db *db;
    const aimdb_runtime *rt;
    aimx_limits limits;
    atomic_uint refs;
    int64_t log_interval_ms;
    pthread_mutex_t log_lock;   /* guards our_failures: errors come from any thread */
    aimdb_log_limit our_failures;
};

void aimx_hold(aimdb_aimx *x);
void aimx_release(aimdb_aimx *x);

/* One request in flight: who may see what, and where the reply goes. */
typedef struct aimx_call {
    aimdb_aimx *x;
    const aimdb_access *access; /* NULL: everything visible */
    aimdb_aimx_reply_fn reply;
    void *reply_ctx;
} aimx_call;

/* Deliver a finished reply (NULL = out of memory, see aimx.h). */
void aimx_answer(const aimdb_runtime *rt, aimdb_aimx_reply_fn reply, void *reply_ctx,
                 char *text, size_t len);
/* Build and deliver an error reply, logging it (see aimx.h for how). */
void aimx_answer_error(aimdb_aimx *x, aimdb_aimx_reply_fn reply, void *reply_ctx,
                       const char *id, const aimx_error *err);

/* The methods.  Each answers exactly once (query: later, on a query thread). */
void aimx_list(const aimx_call *call, const aimx_request *req);
void aimx_get(const aimx_call *call, const aimx_request *req);
void aimx_query(const aimx_call *call, const aimx_request *req);

#endif
