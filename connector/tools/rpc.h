/*
 * rpc.h -- one AimX request (docs/protocol.md) from the `aimdb` CLI over a
 * sync_client, answered on a private MQTT v5 Response Topic.
 *
 * The reply topic is aimdb/cli/<the client's unique token>/reply and every
 * request carries fresh Correlation Data, so a reply is taken only if both
 * match: a late answer to an earlier run or request is skipped, never
 * mistaken for this one.  Internal to connector/tools.  One thread.
 */
#ifndef AIMDB_RPC_H
#define AIMDB_RPC_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "sync_client.h"

typedef enum rpc_status {
    RPC_RESULT,      /* the reply has a result */
    RPC_ERROR_REPLY, /* the reply has an error: code and message set */
    RPC_FAILED       /* no usable reply (timeout, connection lost, not JSON): err says why */
} rpc_status;

typedef struct rpc_reply {
    cJSON *tree;              /* the whole reply */
    const cJSON *result;      /* RPC_RESULT: inside tree */
    char *result_text;        /* RPC_RESULT: the result exactly as the server wrote it */
    size_t result_len;
    const char *code, *message; /* RPC_ERROR_REPLY: inside tree */
} rpc_reply;

/* Send {"id", "method", "params"} to request_topic and wait until
 * timeout_ms for the matching reply.  params may be NULL and stays the
 * caller's.  *out is filled for RPC_RESULT and RPC_ERROR_REPLY and must be
 * released with rpc_reply_free; for RPC_FAILED it is empty. */
rpc_status rpc_call(sync_client *c, const char *request_topic, const char *method,
                    const cJSON *params, int timeout_ms, rpc_reply *out, char *err,
                    size_t errlen);

void rpc_reply_free(rpc_reply *r);

#endif
