/*
 * setup.c -- the libaimdb stack inside the broker: the gateway (record
 * database, SQLite history, AimX handler; gateway.h) built from
 * aimdb.conf's settings and the relay thread that feeds it, started at
 * plugin init and stopped at cleanup so that every value routed before the
 * broker was told to stop is committed before it exits.
 */
#include <stdio.h>

#include "plugin.h"

int setup_open(plugin *pl, const aimdb_conf *conf, char *err, size_t errlen) {
    int rc = aimdb_gateway_open(&pl->gw, &conf->settings, AIMDB_GATEWAY_DEFAULT_DATABASE,
                                &pl->runtime, err, errlen);
    if (rc != AIMDB_OK) return rc;
    if ((rc = aimdb_relay_start(&pl->runtime, &pl->relay)) != AIMDB_OK) {
        snprintf(err, errlen, "cannot start the relay thread: %s", aimdb_strerror(rc));
        setup_close(pl);
    }
    return rc;
}

void setup_close(plugin *pl) {
    aimdb_relay_stop(pl->relay); /* every value received is produced ... */
    pl->relay = NULL;
    aimdb_gateway_close(&pl->gw); /* ... then tapped and committed */
}
