/*
 * aimx.h -- the AimX request handler (contract C.4), shared by every transport.
 *
 * A transport hands in a request payload and gets a reply payload back
 * through a callback: at once for record.list, record.get and errors, later
 * from a query thread for record.query.  The handler never does I/O itself.
 */
#ifndef AIMDB_AIMX_H
#define AIMDB_AIMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/aimdb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aimdb_aimx aimdb_aimx;

typedef struct aimdb_aimx_options {
    size_t max_request_bytes; /* 0 = 64 KiB */
    uint32_t max_limit;       /* largest accepted "limit"; 0 = 100000 */
    size_t max_reply_bytes;   /* 0 = 4 MiB; larger replies become an error */
} aimdb_aimx_options;

/* Access predicate: may this client see `record`?  Called from any thread. */
typedef bool (*aimdb_aimx_allow_fn)(const char *record, void *ctx);
/* Receives the reply; takes ownership of `reply` (free() it). */
typedef void (*aimdb_aimx_reply_fn)(char *reply, size_t len, void *ctx);

/* NULL on ENOMEM.  opts may be NULL.  db must outlive the handler. */
aimdb_aimx *aimdb_aimx_new(aimdb_db *db, const aimdb_aimx_options *opts);
/* Call after aimdb_db_stop, when no reply can still be pending. */
void aimdb_aimx_free(aimdb_aimx *x);

/*
 * Handle one request.  reply runs exactly once, inline or on a query thread;
 * allow_ctx and reply_ctx must stay valid until it has.  allow may be NULL.
 */
void aimdb_aimx_handle(aimdb_aimx *x, const void *payload, size_t len,
                       aimdb_aimx_allow_fn allow, void *allow_ctx,
                       aimdb_aimx_reply_fn reply, void *reply_ctx);

#ifdef __cplusplus
}
#endif
#endif
