/*
 * gateway_records.c -- records opened the way their aimdb.conf rule says:
 * codec and buffer, a description for record.list, history if the rule
 * persists; and a reloaded rule applied to a record that already runs.
 */
#include <stdatomic.h>

#include "aimdb/gateway.h"

static void describe(aimdb_gateway *gw, aimdb_record *rec, const aimdb_conf_rule *r) {
    int rc = aimdb_record_set_attr_string(rec, "topic_filter", r->topic_filter);
    if (rc == AIMDB_OK)
        rc = aimdb_record_set_attr_string(rec, "format", aimdb_payload_format_name(r->format));
    if (rc != AIMDB_OK)
        aimdb_log(gw->runtime, AIMDB_LOG_WARNING, "record %s: cannot set its description: %s",
                  aimdb_record_name(rec), aimdb_strerror(rc));
}

static bool persist(aimdb_gateway *gw, aimdb_record *rec, const aimdb_rule_options *o) {
    int rc = aimdb_persist_record(gw->persist, rec, o->retention_ms);
    if (rc != AIMDB_OK)
        aimdb_log(gw->runtime, AIMDB_LOG_ERROR,
                  "record %s (aimdb.conf:%u): cannot persist it: %s", aimdb_record_name(rec),
                  o->line, aimdb_strerror(rc));
    return rc == AIMDB_OK;
}

/* Has the rule opened its max_records= records?  Said once per rule and
 * configuration: the drops themselves are the caller's to report. */
static bool rule_full(aimdb_gateway *gw, const aimdb_ruleset *rs, size_t rule) {
    const aimdb_rule_options *o = &rs->options[rule];
    if (!o->max_records || atomic_load(&rs->opened[rule]) < o->max_records) return false;
    if (!atomic_exchange(&rs->cap_logged[rule], true))
        aimdb_log(gw->runtime, AIMDB_LOG_WARNING,
                  "aimdb.conf:%u opened its max_records=%zu records: values for further "
                  "names of this rule are not recorded (the other rules are not affected)",
                  o->line, o->max_records);
    return true;
}

int aimdb_gateway_open_record(aimdb_gateway *gw, const aimdb_ruleset *rs, size_t rule,
                              const char *name, aimdb_record **out, bool *persisting) {
    const aimdb_rule_options *o = &rs->options[rule];
    bool is_new = !aimdb_db_find(gw->db, name);
    if (is_new && rule_full(gw, rs, rule)) return AIMDB_EFULL;
    int rc = aimdb_record_register(gw->db, name, &o->buffer, o->codec, out);
    if (rc == AIMDB_EFULL) return rc;
    if (rc == AIMDB_OK && is_new) atomic_fetch_add(&rs->opened[rule], 1);
    if (rc != AIMDB_OK) {
        aimdb_log(gw->runtime, AIMDB_LOG_ERROR, "record %s (aimdb.conf:%u): cannot register it: %s",
                  name, o->line, aimdb_strerror(rc));
        return rc;
    }
    describe(gw, *out, &rs->conf->rules[rule]);
    *persisting = o->persist && persist(gw, *out, o);
    return AIMDB_OK;
}

bool aimdb_gateway_reapply_record(aimdb_gateway *gw, aimdb_record *rec, const aimdb_ruleset *rs,
                                  size_t rule, bool persisting, const char *who) {
    const aimdb_rule_options *o = &rs->options[rule];
    atomic_fetch_add(&rs->opened[rule], 1);
    aimdb_buffer_cfg buffer = aimdb_record_buffer(rec);
    bool same_buffer = o->buffer.kind == buffer.kind &&
                       (buffer.kind != AIMDB_BUFFER_RING || o->buffer.capacity == buffer.capacity);
    if (o->codec != aimdb_record_codec(rec) || !same_buffer)
        aimdb_log(gw->runtime, AIMDB_LOG_WARNING,
                  "record %s: aimdb.conf:%u changes its buffer or format; the record keeps "
                  "its current ones until %s restarts", aimdb_record_name(rec), o->line, who);
    if (o->persist) return persist(gw, rec, o) || persisting;
    if (persisting)
        aimdb_log(gw->runtime, AIMDB_LOG_WARNING,
                  "record %s: aimdb.conf:%u no longer persists it; its history keeps being "
                  "written until %s restarts", aimdb_record_name(rec), o->line, who);
    return persisting;
}
