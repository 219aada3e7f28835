/*
 * control.c -- MOSQ_EVT_CONTROL on $CONTROL/aimdb/v1: AimX requests.
 *
 * Mosquitto never forwards $CONTROL topics to subscribers and has already
 * applied its write ACL to the request.  Here, on the broker thread, the
 * request gets its reply address and its ACL view (acl.c: the broker's ACL
 * check must run on this thread) and goes to the AimX handler, which
 * answers record.list and record.get at once and record.query later from a
 * query thread.  Replies given at once are published before returning.
 */
#include "plugin.h"

int control_on_request(int event, void *event_data, void *userdata) {
    (void)event;
    plugin *pl = userdata;
    const struct mosquitto_evt_control *ev = event_data;
    pl->counters.requests++;
    request *r = request_new(pl, ev);
    if (!r) {
        plugin_log(pl, AIMDB_LOG_ERROR, "request from %s not answered: out of memory",
                   mosquitto_client_id(ev->client));
        return MOSQ_ERR_SUCCESS;
    }
    const void *payload = ev->payloadlen ? ev->payload : "";
    aimdb_aimx_handle(pl->gw.aimx, payload, ev->payloadlen, acl_view_access(request_view(r)),
                      request_reply, r);
    outbox_drain(pl, true);
    return MOSQ_ERR_SUCCESS;
}
