/*
 * metrics.c -- $SYS/broker/aimdb/...: what the plugin did, published next
 * to the broker's own $SYS tree, at its sys_interval, retained, and only
 * the values that changed (as Mosquitto does for its own).
 *
 * Mosquitto does not tell plugins its sys_interval, so it is read from its
 * configuration file (broker_conf.c), else Mosquitto's default of 10 s;
 * 0 turns the metrics off as it turns off $SYS.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define DEFAULT_SYS_INTERVAL_S 10

static int64_t broker_sys_interval_s(void) {
    char value[32];
    long long seconds;
    char rest[2];
    if (!broker_conf_get("sys_interval", value, sizeof(value)) ||
        sscanf(value, "%lld%1s", &seconds, rest) != 1 || seconds < 0)
        return DEFAULT_SYS_INTERVAL_S;
    return seconds;
}

void metrics_init(plugin *pl) {
    memset(&pl->metrics, 0, sizeof(pl->metrics));
    pl->metrics.interval_ms = broker_sys_interval_s() * 1000;
    pl->metrics.next_ms = aimdb_monotonic_ms();
}

static void publish_value(const char *name, uint64_t value) {
    char topic[128], text[32];
    snprintf(topic, sizeof(topic), "$SYS/broker/aimdb/%s", name);
    int len = snprintf(text, sizeof(text), "%" PRIu64, value);
    mosquitto_broker_publish_copy(NULL, topic, len, text, 0, true, NULL);
}

static void publish_text(const char *name, const char *text) {
    char topic[128];
    snprintf(topic, sizeof(topic), "$SYS/broker/aimdb/%s", name);
    mosquitto_broker_publish_copy(NULL, topic, (int)strlen(text), text, 0, true, NULL);
}

/* uplink/...: only with an uplink configured. */
static void publish_uplink(plugin *pl) {
    metrics *m = &pl->metrics;
    aimdb_uplink_stats us;
    aimdb_uplink_stats_get(pl->gw.uplink, &us);
    char state[sizeof(m->uplink_state)];
    snprintf(state, sizeof(state), "%s%s%s", aimdb_uplink_state_name(us.state),
             us.state == AIMDB_UPLINK_RETRYING ? ": " : "",
             us.state == AIMDB_UPLINK_RETRYING ? us.why : "");
    if (!m->published_once || strcmp(state, m->uplink_state) != 0) {
        memcpy(m->uplink_state, state, sizeof(state));
        publish_text("uplink/state", state);
    }
    const struct {
        const char *name;
        uint64_t value;
    } values[] = {
        {"uplink/shipped", us.shipped},
        {"uplink/lag/rows", us.lag_rows},
        {"uplink/lag/ms", (uint64_t)(us.lag_ms > 0 ? us.lag_ms : 0)},
        {"uplink/errors", us.errors},
        {"uplink/lost", us.lost},
    };
    _Static_assert(sizeof(values) / sizeof(values[0]) ==
                       sizeof(m->uplink_last) / sizeof(m->uplink_last[0]),
                   "metrics.uplink_last has one slot per value");
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        if (m->published_once && m->uplink_last[i] == values[i].value) continue;
        m->uplink_last[i] = values[i].value;
        publish_value(values[i].name, values[i].value);
    }
}

void metrics_tick(plugin *pl) {
    metrics *m = &pl->metrics;
    int64_t now = aimdb_monotonic_ms();
    if (m->interval_ms <= 0 || now < m->next_ms) return;
    m->next_ms = now + m->interval_ms;

    aimdb_persist_stats ps;
    aimdb_persist_stats_get(pl->gw.persist, &ps);
    aimdb_memory_stats ms;
    aimdb_db_memory_stats(pl->gw.db, &ms);
    const plugin_counters *c = &pl->counters;
    const struct {
        const char *name;
        uint64_t value;
    } values[] = {
        {"messages/routed", c->routed},
        {"messages/unrouted", c->unrouted},
        {"messages/dropped", c->dropped + aimdb_relay_failed(pl->relay)},
        {"relay/backlog", aimdb_relay_backlog(pl->relay)},
        {"relay/grown", aimdb_relay_grown(pl->relay)}, /* aimdb's threads fell behind */
        {"rows/stored", ps.backend.rows_stored},
        /* No JSON form: refused by its record (format=json) or by the persist tap. */
        {"rows/rejected", ps.rows_rejected + aimdb_relay_refused(pl->relay)},
        {"rows/dropped", ps.rows_lagged + ps.rows_store_failed + ps.backend.rows_failed},
        {"rows/write_errors", ps.backend.write_errors},
        {"queue/depth", ps.backend.queue_depth},
        {"batch/rows", ps.backend.last_batch_rows},
        {"batch/commit_us", (uint64_t)(ps.backend.last_commit_us > 0 ? ps.backend.last_commit_us : 0)},
        {"database/bytes", (uint64_t)(ps.backend.db_bytes > 0 ? ps.backend.db_bytes : 0)},
        /* non-zero: history was damaged or deleted under the broker (the log says more) */
        {"database/corrupt", ps.backend.corrupt_errors},
        {"database/recovered", ps.backend.recovered},
        {"database/reopened", ps.backend.reopened},
        {"records", aimdb_db_record_count(pl->gw.db)},
        /* What record buffers hold for values, their share of max_memory,
         * and the live values that gave way to it (history keeps them). */
        {"memory/bytes", ms.held},
        {"memory/limit", ms.limit},
        {"memory/evicted", ms.evicted},
        {"requests", c->requests},
    };
    _Static_assert(sizeof(values) / sizeof(values[0]) <= sizeof(m->last) / sizeof(m->last[0]),
                   "metrics.last is too small");
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        if (m->published_once && m->last[i] == values[i].value) continue;
        m->last[i] = values[i].value;
        publish_value(values[i].name, values[i].value);
    }
    /* Whose values this broker's live messages are, on a node whose
     * history names gateways: what lets the dashboard of a central node
     * draw them into its own gateway's cards (web/README.md).  Set at
     * start only (a reload cannot change it).  Without one nothing is
     * published: Mosquitto keeps no retained $SYS message across a
     * restart, so no earlier start's name can linger. */
    if (!m->published_once && pl->gw.gateway) publish_text("gateway", pl->gw.gateway);
    if (pl->gw.uplink) publish_uplink(pl);
    m->published_once = true;
}
