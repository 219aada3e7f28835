/*
 * aimx.h -- the AimX request handler (docs/protocol.md), shared by every transport.
 *
 * A transport hands in a request payload and gets a reply payload back
 * through a callback: at once for record.list, record.get and errors, later
 * from a query thread for record.query.  The handler never does I/O itself
 * and never blocks on a query.
 *
 * Requests: {"id": <number|string>, "method": "<name>", "params": {...}}.
 * Replies:  {"id": <same>, "result": ...} or
 *           {"id": <same or null>, "error": {"code": "...", "message": "..."}}.
 * The id is echoed exactly as the client wrote it; it may be omitted (the
 * reply then carries null).  Methods and parameters:
 *   record.list   [name: pattern]  -> [{"record","buffer","persist","topic_filter",...}]
 *                 sorted by name; name narrows the list
 *   record.get    record (or name) -> the record's latest live value
 *   record.query  [name] [limit] [start] [end] -> {"count": N, "values": [...]}
 * Patterns: '*' matches any run of characters, all else is literal.
 * Request errors are logged at DEBUG; failures on our side (query_error,
 * internal_error) at WARNING, at most once per log_interval_ms with the
 * count of those held back, so a flood of failing requests cannot flood
 * the log.  busy (overload, see aimdb_aimx_refuse) is logged at DEBUG.
 */
#ifndef AIMDB_AIMX_H
#define AIMDB_AIMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/access.h"
#include "aimdb/aimdb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aimdb_aimx aimdb_aimx;

typedef struct aimdb_aimx_options {
    size_t max_request_bytes; /* 0 = 64 KiB; larger requests are invalid_request */
    uint32_t max_limit;       /* largest accepted "limit"; 0 = 100000 */
    size_t max_reply_bytes;   /* 0 = 4 MiB; a larger result is a query_error that says
                               * how to narrow the request, never a truncated reply */
    int64_t log_interval_ms;  /* 0 = 10 s: at most one WARNING line per interval */
} aimdb_aimx_options;

/* Receives the reply and owns it: free() it.  reply is NULL (len 0) only if
 * memory ran out building it; the failure is logged and nothing can be sent. */
typedef void (*aimdb_aimx_reply_fn)(char *reply, size_t len, void *ctx);

/* NULL on ENOMEM.  opts may be NULL.  db must outlive the handler and every
 * reply still pending. */
aimdb_aimx *aimdb_aimx_new(aimdb_db *db, const aimdb_aimx_options *opts);

/* Release the handler.  Pending record.query replies do not need it: they
 * still arrive (each holds the handler until it has been answered). */
void aimdb_aimx_free(aimdb_aimx *x);

/*
 * Handle one request (payload need not be NUL-terminated and is not kept).
 * reply runs exactly once, inline or on a query thread, possibly before
 * this returns; *access and reply_ctx must stay valid until it has run.
 * access (aimdb/access.h) decides what the client sees: record.list shows
 * the records it does not answer SEE_NONE for, record.get the newest value
 * it may see (a SEE_NONE name is permission_denied, existing or not, so it
 * is asked about names that are not records too), record.query the rows it
 * may see.  NULL: everything visible.  Safe to call from any thread.
 */
void aimdb_aimx_handle(aimdb_aimx *x, const void *payload, size_t len,
                       const aimdb_access *access, aimdb_aimx_reply_fn reply, void *reply_ctx);

/*
 * The same in steps, for a transport whose access predicate costs work per
 * name it covers (the broker plugin checks the broker's ACLs on the broker
 * thread): parse, ask which names the request reads, build the access for
 * exactly those, run.  access is then asked only about names in the scope.
 */
typedef struct aimdb_aimx_request aimdb_aimx_request;

typedef enum aimdb_aimx_reads {
    AIMDB_AIMX_READS_NOTHING, /* the reply is an error; access is never asked */
    AIMDB_AIMX_READS_NAME,    /* one record name, exactly (record.get) */
    AIMDB_AIMX_READS_PATTERN  /* names matching a pattern (record.list, record.query) */
} aimdb_aimx_reads;

typedef struct aimdb_aimx_scope {
    aimdb_aimx_reads reads;
    const char *name; /* the name or pattern ("*" if the request gave none); owned by
                       * the request, valid until it is run or refused */
} aimdb_aimx_scope;

/* Parse and validate a request (payload is not kept).  NULL only when
 * memory ran out (logged; no reply can be built).  Any thread. */
aimdb_aimx_request *aimdb_aimx_parse(aimdb_aimx *x, const void *payload, size_t len);
aimdb_aimx_scope aimdb_aimx_scope_of(const aimdb_aimx_request *r);
/* Answer r as aimdb_aimx_handle does, and free it. */
void aimdb_aimx_run(aimdb_aimx_request *r, const aimdb_access *access,
                    aimdb_aimx_reply_fn reply, void *reply_ctx);
/* Why a transport answers a request itself instead of running it. */
typedef enum aimdb_aimx_refusal {
    AIMDB_AIMX_BUSY,          /* overloaded (docs/protocol.md, busy) */
    AIMDB_AIMX_INTERNAL_ERROR /* it could not prepare the request (out of memory) */
} aimdb_aimx_refusal;

/* Answer r with that error and free it; message (copied) says when to
 * retry.  reply runs before this returns. */
void aimdb_aimx_refuse(aimdb_aimx_request *r, aimdb_aimx_refusal why, const char *message,
                       aimdb_aimx_reply_fn reply, void *reply_ctx);

#ifdef __cplusplus
}
#endif
#endif
