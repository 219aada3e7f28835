/*
 * test_conf.c -- aimdb.conf (docs/configuration.md): good files, every error with its
 * exact message, overrides, and loading from disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "aimdb/mqtt_conf.h"

static aimdb_conf *parse_ok(const char *text, aimdb_conf_app app) {
    aimdb_conf *conf = NULL;
    char err[512] = "";
    int rc = aimdb_conf_parse(text, strlen(text), NULL, app, &conf, err, sizeof(err));
    if (rc != AIMDB_OK) fail_msg("unexpected error: %s", err);
    assert_non_null(conf);
    return conf;
}

static void expect_error(const char *text, aimdb_conf_app app, const char *message) {
    aimdb_conf *conf = (aimdb_conf *)1;
    char err[512] = "";
    assert_int_equal(aimdb_conf_parse(text, strlen(text), "aimdb.conf", app, &conf, err,
                                      sizeof(err)),
                     AIMDB_EINVAL);
    assert_null(conf);
    assert_string_equal(err, message);
}

/* A file with each kind of line: settings with comments, a commented-out
 * syntax summary, rules with options. */
static const char contract_example[] =
    "database  ./data/aimdb.db     # SQLite file; \":memory:\" allowed\n"
    "retention 7d                  # default history retention: s, m, h, d units\n"
    "# record NAME-TEMPLATE TOPIC-FILTER [persist] [buffer=ring:N|latest|mailbox]\n"
    "#        [retention=DURATION] [format=auto|json|text|binary]\n"
    "record accuracy::{1}   weather/+/accuracy     persist buffer=ring:500\n"
    "record temp::{1}       sensors/+/temperature  persist retention=30d\n"
    "record gateway::state  gateway/state          buffer=latest\n";

static void test_contract_example(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok(contract_example, AIMDB_CONF_PLUGIN);
    assert_string_equal(conf->settings.database, "./data/aimdb.db");
    assert_int_equal(conf->settings.retention_ms, 7 * 86400000LL);
    assert_int_equal(conf->n_rules, 3);

    const aimdb_conf_rule *r = &conf->rules[0];
    assert_string_equal(r->name_template, "accuracy::{1}");
    assert_string_equal(r->topic_filter, "weather/+/accuracy");
    assert_true(r->persist);
    assert_int_equal(r->buffer.kind, AIMDB_BUFFER_RING);
    assert_int_equal(r->buffer.capacity, 500);
    assert_int_equal(r->retention_ms, -1);
    assert_int_equal(r->format, AIMDB_FORMAT_AUTO);
    assert_int_equal(r->line, 5);

    r = &conf->rules[1];
    assert_true(r->persist);
    assert_int_equal(r->retention_ms, 30 * 86400000LL);
    assert_int_equal(r->buffer.kind, AIMDB_BUFFER_RING);
    assert_int_equal(r->buffer.capacity, 1024); /* the default */

    r = &conf->rules[2];
    assert_string_equal(r->name_template, "gateway::state");
    assert_false(r->persist);
    assert_int_equal(r->buffer.kind, AIMDB_BUFFER_LATEST);
    assert_int_equal(r->line, 7);
    aimdb_conf_free(conf);
}

static void test_defaults(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok("", AIMDB_CONF_PLUGIN);
    const aimdb_conf_settings *s = &conf->settings;
    assert_null(s->database);
    assert_int_equal(s->retention_ms, 0);
    assert_int_equal(s->synchronous, AIMDB_SQLITE_SYNC_NORMAL);
    assert_int_equal(s->batch_rows, 0);
    assert_int_equal(s->queue_rows, 0);
    assert_int_equal(s->flush_interval_ms, 0);
    assert_int_equal(s->sweep_interval_ms, 0);
    assert_int_equal(s->max_payload, 0);
    assert_int_equal(s->max_memory, 0);
    assert_int_equal(s->workers, 0);
    assert_int_equal(s->max_records, 0);
    assert_null(s->request_topic);
    assert_int_equal(conf->n_rules, 0);
    aimdb_conf_free(conf);
}

static void test_all_settings(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok("database :memory:\n"
                                "retention 0\n"
                                "synchronous full\n"
                                "batch_rows 512\n"
                                "queue_rows 65536\n"
                                "flush_interval 200ms\n"
                                "sweep_interval 1h\n"
                                "max_payload 256k\n"
                                "max_memory 32M\n"
                                "workers 4\n"
                                "max_records 50000\n"
                                "request_topic aimdb/v1/request\n"
                                "broker tcp://127.0.0.1:1883\n"
                                "client_id aimdb-bridge-1\n",
                                AIMDB_CONF_BRIDGE);
    const aimdb_conf_settings *s = &conf->settings;
    assert_string_equal(s->database, ":memory:");
    assert_int_equal(s->retention_ms, 0);
    assert_int_equal(s->synchronous, AIMDB_SQLITE_SYNC_FULL);
    assert_int_equal(s->batch_rows, 512);
    assert_int_equal(s->queue_rows, 65536);
    assert_int_equal(s->flush_interval_ms, 200);
    assert_int_equal(s->sweep_interval_ms, 3600000);
    assert_int_equal(s->max_payload, 256 * 1024);
    assert_int_equal(s->max_memory, 32u << 20);
    assert_int_equal(s->workers, 4);
    assert_int_equal(s->max_records, 50000);
    assert_string_equal(s->request_topic, "aimdb/v1/request");
    assert_string_equal(s->broker, "tcp://127.0.0.1:1883");
    assert_string_equal(s->client_id, "aimdb-bridge-1");
    aimdb_conf_free(conf);
}

/* Fleet history: a PostgreSQL database, or an uplink beside SQLite. */
static void test_postgres_settings(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok("database postgresql://aimdb@db.example:5433/fleet?sslmode=verify-full\n"
                                "gateway central-1\n",
                                AIMDB_CONF_PLUGIN);
    assert_string_equal(conf->settings.database,
                        "postgresql://aimdb@db.example:5433/fleet?sslmode=verify-full");
    assert_string_equal(conf->settings.gateway, "central-1");
    assert_null(conf->settings.uplink);
    assert_int_equal(conf->settings.uplink_hold_ms, -1);
    aimdb_conf_free(conf);
    conf = parse_ok("database ./data/aimdb.db\n"
                    "uplink postgres://site@cloud/fleet\n"
                    "gateway site-7\n"
                    "uplink_hold 30d\n",
                    AIMDB_CONF_PLUGIN);
    assert_string_equal(conf->settings.uplink, "postgres://site@cloud/fleet");
    assert_int_equal(conf->settings.uplink_hold_ms, 30 * 86400000LL);
    aimdb_conf_free(conf);
}

static void test_durations_and_sizes(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int64_t retention_ms;
    } durations[] = {{"retention 45s", 45000},        {"retention 90m", 5400000},
                     {"retention 36h", 129600000},    {"retention 1d", 86400000},
                     {"retention 0s", 0},             {"retention 0", 0}};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        aimdb_conf *conf = parse_ok(durations[i].text, AIMDB_CONF_PLUGIN);
        assert_int_equal(conf->settings.retention_ms, durations[i].retention_ms);
        aimdb_conf_free(conf);
    }
    static const struct {
        const char *text;
        size_t bytes;
    } sizes[] = {{"max_payload 1000", 1000}, {"max_payload 2K", 2048},
                 {"max_payload 3M", 3u << 20}, {"max_payload 256M", 256u << 20}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        aimdb_conf *conf = parse_ok(sizes[i].text, AIMDB_CONF_PLUGIN);
        assert_int_equal(conf->settings.max_payload, sizes[i].bytes);
        aimdb_conf_free(conf);
    }
    static const struct {
        const char *text;
        size_t bytes;
    } memory[] = {{"max_memory 1048576", 1u << 20}, {"max_memory 1024k", 1u << 20},
                  {"max_memory 64M", 64u << 20},    {"max_memory 2G", (size_t)2 << 30},
                  {"max_memory 1024G", (size_t)1024 << 30}};
    for (size_t i = 0; i < sizeof(memory) / sizeof(memory[0]); i++) {
        aimdb_conf *conf = parse_ok(memory[i].text, AIMDB_CONF_PLUGIN);
        assert_int_equal(conf->settings.max_memory, memory[i].bytes);
        aimdb_conf_free(conf);
    }
}

/* A rule's own max_records=; without it the rule has none (0). */
static void test_rule_max_records(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok("record noisy::{1} noisy/+ max_records=500 persist\n"
                                "record quiet::{1} quiet/+\n",
                                AIMDB_CONF_PLUGIN);
    assert_int_equal(conf->n_rules, 2);
    assert_int_equal(conf->rules[0].max_records, 500);
    assert_true(conf->rules[0].persist);
    assert_int_equal(conf->rules[1].max_records, 0);
    aimdb_conf_free(conf);
}

static void test_record_options(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok(
        "record all::{#} #\n"
        "  record\tdev::{1}::{2}  dev/+/+/state  buffer=mailbox format=json   # trailing\n"
        "record raw::{#} raw/# persist format=binary retention=0 buffer=ring:1\n"
        "record txt text/x format=text\r\n"
        "record c#1 a/b\n"
        "database ./x#1.db\n",
        AIMDB_CONF_PLUGIN);
    assert_int_equal(conf->n_rules, 5);
    assert_string_equal(conf->rules[0].topic_filter, "#");
    assert_string_equal(conf->rules[1].name_template, "dev::{1}::{2}");
    assert_int_equal(conf->rules[1].buffer.kind, AIMDB_BUFFER_MAILBOX);
    assert_int_equal(conf->rules[1].format, AIMDB_FORMAT_JSON);
    assert_int_equal(conf->rules[2].retention_ms, 0); /* forever, not "default" */
    assert_int_equal(conf->rules[2].format, AIMDB_FORMAT_BINARY);
    assert_int_equal(conf->rules[2].buffer.capacity, 1);
    assert_string_equal(conf->rules[3].topic_filter, "text/x"); /* CRLF line */
    assert_int_equal(conf->rules[3].format, AIMDB_FORMAT_TEXT);
    /* '#' inside a token is not a comment */
    assert_string_equal(conf->rules[4].name_template, "c#1");
    assert_string_equal(conf->rules[4].topic_filter, "a/b");
    assert_string_equal(conf->settings.database, "./x#1.db");
    aimdb_conf_free(conf);
}

/* Several topics may feed one record when the rules agree on it. */
static void test_rules_sharing_a_record(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok("record t a/b persist buffer=ring:8\n"
                                "record t::{1} x/+ format=json\n"
                                "record t c/+ persist buffer=ring:8\n"
                                "record t::{1} y/+\n", /* placeholders: judged at run time */
                                AIMDB_CONF_PLUGIN);
    assert_int_equal(conf->n_rules, 4);
    aimdb_conf_free(conf);
}

static void test_errors(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"database x\n\n# c\n\nretension 7d\n", "aimdb.conf:5: unknown key 'retension'"},
        {"retention\n", "aimdb.conf:1: 'retention' needs a value"},
        {"retention 7d # c\nretention 1d\n", "aimdb.conf:2: 'retention' already set on line 1"},
        {"database a b\n", "aimdb.conf:1: 'database' takes one value, 'b' is one too many"},
        {"retention 7x\n",
         "aimdb.conf:1: bad retention '7x' (a number with s, m, h or d, e.g. 7d; 0 keeps forever)"},
        {"retention 7ms\n",
         "aimdb.conf:1: bad retention '7ms' (a number with s, m, h or d, e.g. 7d; 0 keeps forever)"},
        {"retention -1d\n",
         "aimdb.conf:1: bad retention '-1d' (a number with s, m, h or d, e.g. 7d; 0 keeps forever)"},
        {"retention d\n",
         "aimdb.conf:1: bad retention 'd' (a number with s, m, h or d, e.g. 7d; 0 keeps forever)"},
        {"retention 99999999999999999999d\n",
         "aimdb.conf:1: bad retention '99999999999999999999d' (a number with s, m, h or d, "
         "e.g. 7d; 0 keeps forever)"},
        {"flush_interval 0\n",
         "aimdb.conf:1: bad flush_interval '0' (a number above 0 with ms, s, m, h or d, e.g. 200ms)"},
        {"flush_interval 200\n",
         "aimdb.conf:1: bad flush_interval '200' (a number above 0 with ms, s, m, h or d, e.g. "
         "200ms)"},
        {"sweep_interval 2y\n",
         "aimdb.conf:1: bad sweep_interval '2y' (a number above 0 with ms, s, m, h or d, e.g. "
         "200ms)"},
        {"synchronous fast\n", "aimdb.conf:1: bad synchronous 'fast' (off, normal or full)"},
        {"synchronous NORMAL\n", "aimdb.conf:1: bad synchronous 'NORMAL' (off, normal or full)"},
        {"batch_rows 0\n", "aimdb.conf:1: bad batch_rows '0' (an integer from 1 to 1000000)"},
        {"queue_rows 1e3\n", "aimdb.conf:1: bad queue_rows '1e3' (an integer from 1 to 10000000)"},
        {"workers 1000\n", "aimdb.conf:1: bad workers '1000' (an integer from 1 to 256)"},
        {"max_records 0\n", "aimdb.conf:1: bad max_records '0' (an integer from 1 to 10000000)"},
        {"max_payload 1G\n",
         "aimdb.conf:1: bad max_payload '1G' (bytes, or a number with k, M or G; above 0, "
         "at most 256M)"},
        {"max_payload 300M\n",
         "aimdb.conf:1: bad max_payload '300M' (bytes, or a number with k, M or G; above 0, "
         "at most 256M)"},
        {"max_payload 99999999999999999999k\n", /* overflows before the unit is read */
         "aimdb.conf:1: bad max_payload '99999999999999999999k' (bytes, or a number with k, M "
         "or G; above 0, at most 256M)"},
        {"max_memory 512k\n",
         "aimdb.conf:1: bad max_memory '512k' (bytes, or a number with k, M or G; at least 1M, "
         "at most 1024G)"},
        {"max_memory 2T\n",
         "aimdb.conf:1: bad max_memory '2T' (bytes, or a number with k, M or G; at least 1M, "
         "at most 1024G)"},
        {"max_memory 1025G\n",
         "aimdb.conf:1: bad max_memory '1025G' (bytes, or a number with k, M or G; at least 1M, "
         "at most 1024G)"},
        {"max_memory 64 M\n", "aimdb.conf:1: 'max_memory' takes one value, 'M' is one too many"},
        {"max_memory\n", "aimdb.conf:1: 'max_memory' needs a value"},
        {"broker localhost\n",
         "aimdb.conf:1: 'broker' is an aimdb-bridge setting; the plugin does not use it"},
        {"request_topic x\n",
         "aimdb.conf:1: 'request_topic' is an aimdb-bridge setting; the plugin does not use it"},
        {"client_id x\n",
         "aimdb.conf:1: 'client_id' is an aimdb-bridge setting; the plugin does not use it"},
        {"database postgresql://u:pw@h:port/db\n",
         "aimdb.conf:1: bad database PostgreSQL URI (u@h:port/db): invalid port \"port\""},
        {"uplink postgresql://h/db?sslmode=always\n",
         "aimdb.conf:1: bad uplink PostgreSQL URI (h/db): invalid sslmode \"always\""},
        {"uplink postgresql://h/db?nosuchoption=1\n",
         "aimdb.conf:1: bad uplink PostgreSQL URI: invalid URI query parameter: "
         "\"nosuchoption\""},
        {"uplink ./other.db\n",
         "aimdb.conf:1: bad uplink './other.db' (a PostgreSQL URI: postgresql://user@host/db)"},
        {"database :memory:\nuplink postgresql://h/db\n",
         "aimdb.conf:2: uplink needs a history file, but database (line 1) is :memory:"},
        {"uplink postgresql://h/db\n# c\ndatabase postgresql://h/db\n",
         "aimdb.conf:1: uplink copies local SQLite history, but database (line 3) is "
         "PostgreSQL already"},
        {"gateway a*b\n", "aimdb.conf:1: bad gateway 'a*b' (no blanks, control characters or '*')"},
        {"uplink_hold 1w\n",
         "aimdb.conf:1: bad uplink_hold '1w' (a number with s, m, h or d, e.g. 7d; 0 holds "
         "nothing)"},
        {"record\n", "aimdb.conf:1: record needs a name template and a topic filter"},
        {"record x\n", "aimdb.conf:1: record needs a name template and a topic filter"},
        {"record x # comment\n", "aimdb.conf:1: unknown record option 'comment' (persist, "
                                 "buffer=, retention=, format=, max_records=)"},
        {"record x a/b+\n", "aimdb.conf:1: bad topic filter 'a/b+': '+' must be a whole level"},
        {"record x a/#/b\n",
         "aimdb.conf:1: bad topic filter 'a/#/b': '#' must be the last level, on its own"},
        {"record x a#\n",
         "aimdb.conf:1: bad topic filter 'a#': '#' must be the last level, on its own"},
        {"record t::{3} a/+/+\n",
         "aimdb.conf:1: bad name template 't::{3}': {3} refers to a '+' level the filter does not have (it has 2)"},
        {"record t::{1} a/b\n",
         "aimdb.conf:1: bad name template 't::{1}': {1} refers to a '+' level the filter does not have (it has 0)"},
        {"record t::{#} a/+\n",
         "aimdb.conf:1: bad name template 't::{#}': {#} needs a filter ending in '#'"},
        {"record t::{0} a/+\n",
         "aimdb.conf:1: bad name template 't::{0}': bad placeholder '{0}' (use {1}..{N} or {#})"},
        {"record t::{01} a/+\n",
         "aimdb.conf:1: bad name template 't::{01}': bad placeholder '{01}' (use {1}..{N} or {#})"},
        {"record t::{x} a/+\n",
         "aimdb.conf:1: bad name template 't::{x}': bad placeholder '{x}' (use {1}..{N} or {#})"},
        {"record t::{} a/+\n",
         "aimdb.conf:1: bad name template 't::{}': bad placeholder '{}' (use {1}..{N} or {#})"},
        {"record t::{1 a/+\n", "aimdb.conf:1: bad name template 't::{1': '{' without '}'"},
        {"record t::1} a/+\n", "aimdb.conf:1: bad name template 't::1}': '}' without '{'"},
        {"record t::{33} a/+\n",
         "aimdb.conf:1: bad name template 't::{33}': {33} is above the limit of {32}"},
        {"record t a/b persist persist\n", "aimdb.conf:1: duplicate option 'persist'"},
        {"record t a/b buffer=latest buffer=mailbox\n", "aimdb.conf:1: duplicate option 'buffer'"},
        {"record t a/b persist=yes\n", "aimdb.conf:1: option 'persist' takes no value"},
        {"record t a/b buffer\n", "aimdb.conf:1: option 'buffer' needs a value (buffer=...)"},
        {"record t a/b buffer=ring:0\n",
         "aimdb.conf:1: bad buffer 'ring:0' (ring:N with N from 1 to 1048576, latest or mailbox)"},
        {"record t a/b buffer=queue\n",
         "aimdb.conf:1: bad buffer 'queue' (ring:N with N from 1 to 1048576, latest or mailbox)"},
        {"record t a/b persist retention=30\n",
         "aimdb.conf:1: bad retention '30' (a number with s, m, h or d, e.g. 30d; 0 keeps "
         "forever)"},
        {"record t a/b retention=30d\n",
         "aimdb.conf:1: retention= needs persist (only persisted records keep history)"},
        {"record t a/b format=xml\n",
         "aimdb.conf:1: bad format 'xml' (auto, json, text or binary)"},
        {"record t a/b Persist\n",
         "aimdb.conf:1: unknown record option 'Persist' (persist, buffer=, retention=, format=, "
         "max_records=)"},
        {"record t::{1} a/+ max_records=0\n",
         "aimdb.conf:1: bad max_records '0' (an integer from 1 to 10000000)"},
        {"record t::{1} a/+ max_records=-5\n",
         "aimdb.conf:1: bad max_records '-5' (an integer from 1 to 10000000)"},
        {"record t::{1} a/+ max_records=12k\n",
         "aimdb.conf:1: bad max_records '12k' (an integer from 1 to 10000000)"},
        {"record t::{1} a/+ max_records=10000001\n",
         "aimdb.conf:1: bad max_records '10000001' (an integer from 1 to 10000000)"},
        {"record t::{1} a/+ max_records\n",
         "aimdb.conf:1: option 'max_records' needs a value (max_records=...)"},
        {"record t::{1} a/+ max_records=5 max_records=6\n",
         "aimdb.conf:1: duplicate option 'max_records'"},
        {"record t a/b\nrecord u c/\xff\n", "aimdb.conf:2: not valid UTF-8"},
        {"record t a/b buffer=latest\n\nrecord t c/d\n",
         "aimdb.conf:3: record 't' is also defined on line 1 with other options (persist, "
         "buffer, retention and format must match)"},
        {"record t a/b persist\nrecord t c/d persist retention=1d\n",
         "aimdb.conf:2: record 't' is also defined on line 1 with other options (persist, "
         "buffer, retention and format must match)"},
        {"record t a/+ format=text\nrecord t c/d\n",
         "aimdb.conf:2: record 't' is also defined on line 1 with other options (persist, "
         "buffer, retention and format must match)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].text, AIMDB_CONF_PLUGIN, cases[i].message);
}

static void test_bridge_errors(void **state) {
    (void)state;
    expect_error("broker localhost:1883\n", AIMDB_CONF_BRIDGE,
                 "aimdb.conf:1: bad broker 'localhost:1883' (a URI such as tcp://127.0.0.1:1883)");
    expect_error("request_topic a/+/b\n", AIMDB_CONF_BRIDGE,
                 "aimdb.conf:1: bad request_topic 'a/+/b': a topic name cannot contain '+' or '#'");
}

static void test_nul_byte(void **state) {
    (void)state;
    static const char text[] = "database x\nretention 1d\0garbage\n";
    aimdb_conf *conf;
    char err[128];
    assert_int_equal(aimdb_conf_parse(text, sizeof(text) - 1, "x.conf", AIMDB_CONF_PLUGIN, &conf,
                                      err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "x.conf:2: NUL byte in line");
}

static void test_error_truncated_to_buffer(void **state) {
    (void)state;
    aimdb_conf *conf;
    char err[16];
    memset(err, 'X', sizeof(err));
    assert_int_equal(aimdb_conf_parse("nope 1", 6, NULL, AIMDB_CONF_PLUGIN, &conf, err,
                                      sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "aimdb.conf:1: u"); /* cut, still terminated */
}

static void test_overrides(void **state) {
    (void)state;
    aimdb_conf *conf = parse_ok("database a.db\nretention 7d\n", AIMDB_CONF_PLUGIN);
    char err[256];
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "retention", "1h", err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(conf->settings.retention_ms, 3600000);
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "database", "/tmp/with space.db",
                                         err, sizeof(err)),
                     AIMDB_OK);
    assert_string_equal(conf->settings.database, "/tmp/with space.db");
    /* the last value given wins */
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "retention", "2h", err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(conf->settings.retention_ms, 7200000);
    /* every synchronous mode, through the one parser the file also uses */
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "synchronous", "off", err,
                                         sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(conf->settings.synchronous, AIMDB_SQLITE_SYNC_OFF);
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "synchronous", "normal", err,
                                         sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(conf->settings.synchronous, AIMDB_SQLITE_SYNC_NORMAL);

    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "retention", "x", err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "plugin_opt_retention: bad retention 'x' (a number with s, m, h or "
                             "d, e.g. 7d; 0 keeps forever)");
    assert_int_equal(conf->settings.retention_ms, 7200000); /* unchanged */

    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "retension", "1d", err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "plugin_opt_retension: unknown setting");
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "broker", "tcp://h:1", err,
                                         sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "plugin_opt_broker: 'broker' is an aimdb-bridge setting; the plugin "
                             "does not use it");
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "workers", "", err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "plugin_opt_workers: needs a value");
    assert_int_equal(aimdb_conf_override(conf, NULL, "record", "x a/b", err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "record: unknown setting");
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "max_memory", "8M", err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(conf->settings.max_memory, 8u << 20);
    assert_int_equal(aimdb_conf_override(conf, "plugin_opt_", "max_memory", "8X", err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_string_equal(err, "plugin_opt_max_memory: bad max_memory '8X' (bytes, or a number with "
                             "k, M or G; at least 1M, at most 1024G)");
    assert_int_equal(conf->settings.max_memory, 8u << 20);
    aimdb_conf_free(conf);
}

static void test_load_file(void **state) {
    (void)state;
    char dir[] = "/tmp/aimdb-conf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/aimdb.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(contract_example, f);
    fputs("retension 1d\n", f);
    fclose(f);

    aimdb_conf *conf = (aimdb_conf *)1;
    char err[256];
    assert_int_equal(aimdb_conf_load(path, AIMDB_CONF_PLUGIN, &conf, err, sizeof(err)),
                     AIMDB_EINVAL);
    assert_null(conf);
    assert_string_equal(err, "aimdb.conf:8: unknown key 'retension'"); /* basename */

    f = fopen(path, "w");
    fputs(contract_example, f);
    fclose(f);
    assert_int_equal(aimdb_conf_load(path, AIMDB_CONF_PLUGIN, &conf, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(conf->n_rules, 3);
    aimdb_conf_free(conf);

    unlink(path);
    assert_int_equal(aimdb_conf_load(path, AIMDB_CONF_PLUGIN, &conf, err, sizeof(err)), AIMDB_EIO);
    char expected[256];
    snprintf(expected, sizeof(expected), "%s: cannot read: No such file or directory", path);
    assert_string_equal(err, expected);
    assert_int_equal(aimdb_conf_load(dir, AIMDB_CONF_PLUGIN, &conf, err, sizeof(err)), AIMDB_EIO);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_settings),
        cmocka_unit_test(test_postgres_settings),
        cmocka_unit_test(test_durations_and_sizes),
        cmocka_unit_test(test_record_options),
        cmocka_unit_test(test_rule_max_records),
        cmocka_unit_test(test_rules_sharing_a_record),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bridge_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_error_truncated_to_buffer),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
