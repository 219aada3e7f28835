/*
 * conf_settings.c -- the global settings of aimdb.conf: one table row per
 * key, with its parser, its limits and who may use it.
 *
 * The same rows serve the file (`retention 7d`) and the overrides
 * (`plugin_opt_retention 7d`), so both accept exactly the same values and
 * say the same thing when a value is wrong.  Each parser validates fully
 * before it stores, so a rejected value leaves the settings untouched.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/duration.h"
#include "aimdb/json.h"
#include "aimdb/mqtt_conf.h"
#include "aimdb/mqtt_route.h"
#include "aimdb/postgres.h"
#include "mqtt_internal.h"

/* ------------------------------------------------------------ numbers */

/* Decimal digits only (no sign, no spaces); false if empty or above max. */
static bool parse_digits(const char *text, const char **end, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *end = p;
    *out = v;
    return p != text;
}

bool conf_duration_parse(const char *text, bool allow_ms, int64_t max_ms, int64_t *out) {
    if (strcmp(text, "0") == 0) { /* a bare 0: "keep forever", "never" */
        *out = 0;
        return true;
    }
    return aimdb_duration_parse(text, allow_ms, 0, max_ms, out);
}

/* ----------------------------------------------------------- settings */

typedef struct setting setting;
typedef int (*apply_fn)(const setting *s, aimdb_conf_settings *cfg, const char *value,
                        char *why, size_t whylen);

struct setting {
    const char *key;
    bool bridge_only;
    apply_fn apply;
    size_t field;   /* offsetof the value in aimdb_conf_settings */
    uint64_t max;   /* largest value accepted (numbers, durations, sizes) */
    uint64_t min;   /* smallest size accepted; 0: anything above 0 */
};

#define FIELD(name) offsetof(aimdb_conf_settings, name)
#define AT(cfg, s, type) ((type *)((char *)(cfg) + (s)->field))

/* Replace an owned string; the old one is freed only once the copy exists. */
static int store_string(char **slot, const char *value) {
    char *copy = strdup(value);
    if (!copy) return AIMDB_ENOMEM;
    free(*slot);
    *slot = copy;
    return AIMDB_OK;
}

static int apply_string(const setting *s, aimdb_conf_settings *cfg, const char *value,
                      char *why, size_t whylen) {
    if (!aimdb_utf8_valid(value, strlen(value)))
        return mqtt_invalid(why, whylen, "%s is not valid UTF-8", s->key);
    return store_string(AT(cfg, s, char *), value);
}

/* A span of s, m, h or d; zero_means says what 0 does, for the error. */
static int apply_span(const setting *s, aimdb_conf_settings *cfg, const char *value, char *why,
                      size_t whylen, const char *zero_means) {
    int64_t ms;
    if (!conf_duration_parse(value, false, (int64_t)s->max, &ms))
        return mqtt_invalid(why, whylen, "bad %s '%s' (a number with s, m, h or d, e.g. 7d; 0 %s)",
                            s->key, value, zero_means);
    *AT(cfg, s, int64_t) = ms;
    return AIMDB_OK;
}

static int apply_retention(const setting *s, aimdb_conf_settings *cfg, const char *value,
                           char *why, size_t whylen) {
    return apply_span(s, cfg, value, why, whylen, "keeps forever");
}

static int apply_hold(const setting *s, aimdb_conf_settings *cfg, const char *value, char *why,
                      size_t whylen) {
    return apply_span(s, cfg, value, why, whylen, "holds nothing");
}

/* An interval: ms allowed, and 0 would mean "never", which is not offered. */
static int parse_interval(const setting *s, const char *value, int64_t *ms, char *why,
                          size_t whylen) {
    if (!conf_duration_parse(value, true, (int64_t)s->max, ms) || *ms == 0)
        return mqtt_invalid(why, whylen,
                            "bad %s '%s' (a number above 0 with ms, s, m, h or d, e.g. 200ms)",
                            s->key, value);
    return AIMDB_OK;
}

static int apply_interval_ms(const setting *s, aimdb_conf_settings *cfg, const char *value,
                             char *why, size_t whylen) {
    int64_t ms;
    int rc = parse_interval(s, value, &ms, why, whylen);
    if (rc == AIMDB_OK) *AT(cfg, s, unsigned) = (unsigned)ms;
    return rc;
}

static int apply_interval_ms64(const setting *s, aimdb_conf_settings *cfg, const char *value,
                               char *why, size_t whylen) {
    int64_t ms;
    int rc = parse_interval(s, value, &ms, why, whylen);
    if (rc == AIMDB_OK) *AT(cfg, s, int64_t) = ms;
    return rc;
}

static int apply_count(const setting *s, aimdb_conf_settings *cfg, const char *value,
                       char *why, size_t whylen) {
    const char *end;
    uint64_t n;
    if (!parse_digits(value, &end, s->max, &n) || *end || n == 0)
        return mqtt_invalid(why, whylen, "bad %s '%s' (an integer from 1 to %llu)", s->key, value,
                            (unsigned long long)s->max);
    *AT(cfg, s, unsigned) = (unsigned)n;
    return AIMDB_OK;
}

/* n in the largest of G, M and k that divides it ("256M"), else bytes. */
static const char *size_text(uint64_t n, char *out, size_t cap) {
    static const struct {
        const char *unit;
        uint64_t scale;
    } units[] = {{"G", 1ull << 30}, {"M", 1ull << 20}, {"k", 1ull << 10}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (n % units[i].scale == 0) {
            snprintf(out, cap, "%llu%s", (unsigned long long)(n / units[i].scale), units[i].unit);
            return out;
        }
    }
    snprintf(out, cap, "%llu", (unsigned long long)n);
    return out;
}

/* Bytes, or a number with k (KiB), M (MiB) or G (GiB), from s->min (at
 * least 1) to s->max. */
static int apply_size(const setting *s, aimdb_conf_settings *cfg, const char *value,
                      char *why, size_t whylen) {
    const char *unit;
    uint64_t n, scale = 1;
    bool ok = parse_digits(value, &unit, s->max, &n);
    if (ok && (strcmp(unit, "k") == 0 || strcmp(unit, "K") == 0)) scale = 1ull << 10;
    else if (ok && strcmp(unit, "M") == 0) scale = 1ull << 20;
    else if (ok && strcmp(unit, "G") == 0) scale = 1ull << 30;
    else if (ok && *unit) ok = false; /* unit is unset when parse_digits failed */
    if (!ok || n == 0 || n > s->max / scale || n * scale < s->min) {
        char low[32] = "above 0", high[32];
        if (s->min > 1)
            snprintf(low, sizeof(low), "at least %s", size_text(s->min, high, sizeof(high)));
        return mqtt_invalid(why, whylen,
                            "bad %s '%s' (bytes, or a number with k, M or G; %s, at most %s)",
                            s->key, value, low, size_text(s->max, high, sizeof(high)));
    }
    *AT(cfg, s, size_t) = (size_t)(n * scale);
    return AIMDB_OK;
}

static int apply_synchronous(const setting *s, aimdb_conf_settings *cfg, const char *value,
                             char *why, size_t whylen) {
    static const struct {
        const char *word;
        aimdb_sqlite_sync mode;
    } modes[] = {{"off", AIMDB_SQLITE_SYNC_OFF},
                 {"normal", AIMDB_SQLITE_SYNC_NORMAL},
                 {"full", AIMDB_SQLITE_SYNC_FULL}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(value, modes[i].word) == 0) {
            *AT(cfg, s, aimdb_sqlite_sync) = modes[i].mode;
            return AIMDB_OK;
        }
    }
    return mqtt_invalid(why, whylen, "bad %s '%s' (off, normal or full)", s->key, value);
}

static int apply_topic(const setting *s, aimdb_conf_settings *cfg, const char *value,
                       char *why, size_t whylen) {
    char reason[128];
    if (aimdb_topic_name_check(value, strlen(value), reason, sizeof(reason)) != AIMDB_OK)
        return mqtt_invalid(why, whylen, "bad %s '%s': %s", s->key, value, reason);
    return store_string(AT(cfg, s, char *), value);
}

/* "scheme://rest" as Paho wants it; Paho itself judges scheme and host. */
static int apply_broker(const setting *s, aimdb_conf_settings *cfg, const char *value,
                        char *why, size_t whylen) {
    const char *sep = strstr(value, "://");
    if (!sep || sep == value || sep[3] == '\0')
        return mqtt_invalid(why, whylen, "bad %s '%s' (a URI such as tcp://127.0.0.1:1883)",
                            s->key, value);
    return store_string(AT(cfg, s, char *), value);
}

/* A PostgreSQL URI as libpq reads it; the error names the server as logs
 * do, never the URI itself, which may hold a password. */
static int check_pg_uri(const setting *s, const char *value, char *why, size_t whylen) {
    char reason[256], where[256];
    if (aimdb_postgres_uri_check(value, reason, sizeof(reason)) == AIMDB_OK) return AIMDB_OK;
    if (!aimdb_postgres_describe(value, where, sizeof(where)))
        return mqtt_invalid(why, whylen, "bad %s PostgreSQL URI: %s", s->key, reason);
    return mqtt_invalid(why, whylen, "bad %s PostgreSQL URI (%s): %s", s->key, where, reason);
}

/* A SQLite path, or a PostgreSQL URI (history kept there, C.6). */
static int apply_database(const setting *s, aimdb_conf_settings *cfg, const char *value,
                          char *why, size_t whylen) {
    if (aimdb_postgres_is_uri(value) && check_pg_uri(s, value, why, whylen) != AIMDB_OK)
        return AIMDB_EINVAL;
    return apply_string(s, cfg, value, why, whylen);
}

static int apply_uplink(const setting *s, aimdb_conf_settings *cfg, const char *value,
                        char *why, size_t whylen) {
    if (!aimdb_postgres_is_uri(value))
        return mqtt_invalid(why, whylen, "bad %s '%s' (a PostgreSQL URI: postgresql://user@host/db)",
                    s->key, value);
    if (check_pg_uri(s, value, why, whylen) != AIMDB_OK) return AIMDB_EINVAL;
    return store_string(AT(cfg, s, char *), value);
}

/* A gateway's name: what the fleet table's gateway column says, so
 * printable and without blanks (it is also a query pattern's target). */
static int apply_gateway_name(const setting *s, aimdb_conf_settings *cfg, const char *value,
                              char *why, size_t whylen) {
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x21 || *p == 0x7f || *p == '*')
            return mqtt_invalid(why, whylen, "bad %s '%s' (no blanks, control characters or '*')",
                        s->key, value);
    if (strlen(value) > 255) return mqtt_invalid(why, whylen, "bad %s: longer than 255 bytes", s->key);
    return apply_string(s, cfg, value, why, whylen);
}

#define DAY_MS 86400000ull
#define YEARS_100_MS (36525ull * DAY_MS)

static const setting settings[] = {
    {"database", false, apply_database, FIELD(database), 0, 0},
    {"retention", false, apply_retention, FIELD(retention_ms), YEARS_100_MS, 0},
    {"synchronous", false, apply_synchronous, FIELD(synchronous), 0, 0},
    {"batch_rows", false, apply_count, FIELD(batch_rows), 1000000, 0},
    {"queue_rows", false, apply_count, FIELD(queue_rows), 10000000, 0},
    {"flush_interval", false, apply_interval_ms, FIELD(flush_interval_ms), 3600000, 0},
    {"sweep_interval", false, apply_interval_ms64, FIELD(sweep_interval_ms), 365 * DAY_MS, 0},
    {"max_payload", false, apply_size, FIELD(max_payload), 256ull << 20, 0},
    {"max_memory", false, apply_size, FIELD(max_memory), 1024ull << 30, 1ull << 20},
    {"workers", false, apply_count, FIELD(workers), 256, 0},
    {"max_records", false, apply_count, FIELD(max_records), 10000000, 0},
    {"uplink", false, apply_uplink, FIELD(uplink), 0, 0},
    {"gateway", false, apply_gateway_name, FIELD(gateway), 0, 0},
    {"uplink_hold", false, apply_hold, FIELD(uplink_hold_ms), YEARS_100_MS, 0},
    {"request_topic", true, apply_topic, FIELD(request_topic), 0, 0},
    {"broker", true, apply_broker, FIELD(broker), 0, 0},
    {"client_id", true, apply_string, FIELD(client_id), 0, 0},
};

size_t conf_setting_count(void) { return sizeof(settings) / sizeof(settings[0]); }

int conf_setting_find(const char *key) {
    for (size_t i = 0; i < conf_setting_count(); i++)
        if (strcmp(settings[i].key, key) == 0) return (int)i;
    return -1;
}

int conf_setting_apply(aimdb_conf *conf, int index, const char *value, char *why,
                       size_t whylen) {
    const setting *s = &settings[index];
    if (s->bridge_only && conf->app != AIMDB_CONF_BRIDGE)
        return mqtt_invalid(why, whylen,
                            "'%s' is an aimdb-bridge setting; the plugin does not use it", s->key);
    int rc = s->apply(s, &conf->settings, value, why, whylen);
    if (rc == AIMDB_ENOMEM) aimdb_errorf(why, whylen, "out of memory");
    return rc;
}
