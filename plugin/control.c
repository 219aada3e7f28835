/*
 * control.c -- MOSQ_EVT_CONTROL on $CONTROL/aimdb/v1: AimX requests.
 *
 * Mosquitto never forwards $CONTROL topics to subscribers and has already
 * applied its write ACL to the request.  Here, on the broker thread, a
 * request gets its reply address, is parsed, is admitted if its client's
 * share of the pending requests allows (clients.c; else `busy` at once),
 * gets the ACL view of exactly the names it reads (acl.c: the broker's ACL
 * check must run on this thread) and goes to the AimX handler, which
 * answers record.list and record.get at once and record.query later from a
 * query thread.  Replies given at once are published before returning.
 */
#include "plugin.h"

#define BUSY_WHY_MAX 256

static void answer(plugin *pl, request *r, aimdb_aimx_request *ar, struct mosquitto *client) {
    char why[BUSY_WHY_MAX];
    if (!request_admit(r, why, sizeof(why))) {
        aimdb_aimx_refuse(ar, AIMDB_AIMX_BUSY, why, request_reply, r);
        return;
    }
    acl_view *v = acl_view_new(pl, client, request_client(r), aimdb_aimx_scope_of(ar));
    if (!v) {
        aimdb_aimx_refuse(ar, AIMDB_AIMX_INTERNAL_ERROR,
                          "out of memory deciding what you may see; retry later", request_reply,
                          r);
        return;
    }
    request_set_view(r, v);
    aimdb_aimx_run(ar, acl_view_access(v), request_reply, r);
}

int control_on_request(int event, void *event_data, void *userdata) {
    (void)event;
    plugin *pl = userdata;
    const struct mosquitto_evt_control *ev = event_data;
    pl->counters.requests++;
    request *r = request_new(pl, ev);
    aimdb_aimx_request *ar =
        r ? aimdb_aimx_parse(pl->gw.aimx, ev->payloadlen ? ev->payload : "", ev->payloadlen)
          : NULL;
    if (!ar) {
        if (r) request_drop(r);
        plugin_log(pl, AIMDB_LOG_ERROR, "request from %s not answered: out of memory",
                   mosquitto_client_id(ev->client));
        return MOSQ_ERR_SUCCESS;
    }
    answer(pl, r, ar, ev->client);
    outbox_drain(pl, true);
    return MOSQ_ERR_SUCCESS;
}
