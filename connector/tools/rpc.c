/*
 * rpc.c -- one AimX request and its reply over MQTT v5 (see rpc.h).
 *
 * The reply topic is subscribed before the request is published, so even
 * an instant answer cannot be missed.  The result is handed on as the
 * exact text the server sent (found with the core's strict JSON scanner):
 * re-printing it through cJSON would round big integers in stored values
 * and in the echoed id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/json.h"
#include "aimdb/runtime.h"
#include "cli_util.h"
#include "rpc.h"

/* Requests go at QoS 0: a request is answered or times out, so a PUBACK
 * adds nothing but a round trip, and on a broker without set_tcp_nodelay
 * the reply then waits ~40 ms behind the PUBACK for the delayed ACK.  The
 * reply comes at the request's QoS. */
#define REQUEST_QOS 0
#define REPLY_QOS 0

typedef struct pending {
    char reply_topic[192];
    char correlation[192];
    long id;
} pending;

/* Each call in a run gets its own id and correlation. */
static void new_pending(sync_client *c, pending *p) {
    static long counter;
    p->id = ++counter;
    snprintf(p->reply_topic, sizeof(p->reply_topic), "aimdb/cli/%s/reply", sync_token(c));
    snprintf(p->correlation, sizeof(p->correlation), "%s/%ld", sync_token(c), p->id);
}

static char *request_text(const pending *p, const char *method, const cJSON *params) {
    cJSON *req = cJSON_CreateObject();
    char *text = NULL;
    if (req && cJSON_AddNumberToObject(req, "id", (double)p->id) &&
        cJSON_AddStringToObject(req, "method", method)) {
        cJSON *copy = params ? cJSON_Duplicate(params, 1) : NULL;
        if (!params || cJSON_AddItemToObject(req, "params", copy)) text = cJSON_PrintUnformatted(req);
        else cJSON_Delete(copy);
    }
    cJSON_Delete(req);
    return text;
}

static int add_string_property(MQTTProperties *props, enum MQTTPropertyCodes code,
                               const char *value) {
    MQTTProperty p = {.identifier = code};
    p.value.data.data = (char *)value;
    p.value.data.len = (int)strlen(value);
    return MQTTProperties_add(props, &p);
}

static int send_request(sync_client *c, const char *topic, const pending *p, const char *text,
                        char *err, size_t errlen) {
    MQTTProperties props = MQTTProperties_initializer;
    int rc = -1;
    if (add_string_property(&props, MQTTPROPERTY_CODE_RESPONSE_TOPIC, p->reply_topic) != 0 ||
        add_string_property(&props, MQTTPROPERTY_CODE_CORRELATION_DATA, p->correlation) != 0)
        snprintf(err, errlen, "out of memory building the request");
    else
        rc = sync_publish(c, topic, text, strlen(text), REQUEST_QOS, &props, err, errlen);
    MQTTProperties_free(&props);
    return rc;
}

static bool is_our_reply(const pending *p, const char *topic, MQTTClient_message *m) {
    if (strcmp(topic, p->reply_topic) != 0) return false;
    MQTTProperty *cd = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    return cd && (size_t)cd->value.data.len == strlen(p->correlation) &&
           memcmp(cd->value.data.data, p->correlation, strlen(p->correlation)) == 0;
}

static const char *string_member(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Sort a reply payload into *out. */
static rpc_status read_reply(const char *payload, size_t len, rpc_reply *out, char *err,
                             size_t errlen) {
    static const aimdb_json_scan_options opts = {.root_key = "result"};
    aimdb_json_scan_result scan;
    aimdb_json_scan(payload, len, &opts, &scan);
    out->tree = scan.status == AIMDB_JSON_OK ? cJSON_ParseWithLength(payload, len) : NULL;
    if (!cJSON_IsObject(out->tree)) {
        snprintf(err, errlen, "the reply is not a JSON object: %.200s", payload);
        return RPC_FAILED;
    }
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(out->tree, "error");
    if (error) {
        out->code = string_member(error, "code");
        out->message = string_member(error, "message");
        if (!out->code) out->code = "(no code)";
        if (!out->message) out->message = "(no message)";
        return RPC_ERROR_REPLY;
    }
    out->result = cJSON_GetObjectItemCaseSensitive(out->tree, "result");
    out->result_text = scan.root_value ? strndup(scan.root_value, scan.root_value_len) : NULL;
    if (!out->result || !out->result_text) {
        snprintf(err, errlen, "the reply has neither a result nor an error: %.200s", payload);
        return RPC_FAILED;
    }
    out->result_len = scan.root_value_len;
    return RPC_RESULT;
}

static char *copy_payload(const MQTTClient_message *m) {
    char *copy = malloc((size_t)m->payloadlen + 1);
    if (!copy) return NULL;
    memcpy(copy, m->payload, (size_t)m->payloadlen);
    copy[m->payloadlen] = '\0';
    return copy;
}

/* The first message on our reply topic with our correlation, until deadline. */
static rpc_status await_reply(sync_client *c, const char *request_topic, const pending *p,
                              long long deadline, int timeout_ms, rpc_reply *out, char *err,
                              size_t errlen) {
    for (;;) {
        char *topic;
        MQTTClient_message *m;
        int got = sync_receive(c, deadline, &topic, &m, err, errlen);
        if (got < 0) return RPC_FAILED;
        if (got == 0) {
            char within[32];
            cli_format_duration(timeout_ms, within, sizeof(within));
            snprintf(err, errlen, "no reply from %s on %s within %s (is the aimdb plugin loaded?)",
                     sync_broker(c), request_topic, within);
            return RPC_FAILED;
        }
        rpc_status st = RPC_FAILED;
        bool ours = is_our_reply(p, topic, m);
        if (ours) {
            char *payload = copy_payload(m); /* NUL-terminated for cJSON */
            st = payload ? read_reply(payload, (size_t)m->payloadlen, out, err, errlen) : RPC_FAILED;
            if (!payload) snprintf(err, errlen, "out of memory reading the reply");
            free(payload);
        }
        MQTTClient_freeMessage(&m);
        MQTTClient_free(topic);
        if (ours) return st;
    }
}

rpc_status rpc_call(sync_client *c, const char *request_topic, const char *method,
                    const cJSON *params, int timeout_ms, rpc_reply *out, char *err,
                    size_t errlen) {
    memset(out, 0, sizeof(*out));
    long long deadline = aimdb_monotonic_ms() + timeout_ms; /* for the whole exchange */
    pending p;
    new_pending(c, &p);
    char *text = request_text(&p, method, params);
    if (!text) {
        snprintf(err, errlen, "out of memory building the request");
        return RPC_FAILED;
    }
    rpc_status st = RPC_FAILED;
    if (sync_subscribe(c, p.reply_topic, REPLY_QOS, err, errlen) == 0 &&
        send_request(c, request_topic, &p, text, err, errlen) == 0)
        st = await_reply(c, request_topic, &p, deadline, timeout_ms, out, err, errlen);
    free(text);
    if (st == RPC_FAILED) rpc_reply_free(out);
    return st;
}

void rpc_reply_free(rpc_reply *r) {
    cJSON_Delete(r->tree);
    free(r->result_text);
    memset(r, 0, sizeof(*r));
}
