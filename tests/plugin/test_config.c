/*
 * test_config.c -- docs/configuration.md at start-up: every configuration
 * error stops the broker (plugin init fails, Mosquitto exits non-zero)
 * with "aimdb.conf:LINE: reason" or "plugin_opt_KEY: reason" in its log;
 * overrides given as plugin_opt_<setting> win over the file; a database
 * the broker's user cannot write says why and what to do; a rule that does
 * not do what it seems to is said.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <mqtt_protocol.h>

#include "client.h"
#include "harness.h"

#define HEAD "database @DIR@/data/aimdb.db\n"

static const struct bad_config {
    const char *aimdb_conf;   /* written as aimdb.conf */
    const char *extra;        /* more mosquitto.conf lines */
    const char *log;          /* must appear in the broker's log */
} bad[] = {
    {HEAD "retension 7d\n", NULL, "aimdb.conf:2: unknown key 'retension'"},
    {HEAD "retention 7y\n", NULL, "aimdb.conf:2: bad retention '7y'"},
    {HEAD "retention 7d\nretention 8d\n", NULL, "aimdb.conf:3: 'retention' already set on line 2"},
    {HEAD "# comment\n\nrecord a::{1} weather/+x/acc persist\n", NULL,
     "aimdb.conf:4: bad topic filter 'weather/+x/acc'"},
    {HEAD "record a::{2} weather/+/acc\n", NULL, "aimdb.conf:2: bad name template 'a::{2}'"},
    {HEAD "record a::{1} weather/+/acc buffer=ring:0\n", NULL, "aimdb.conf:2: bad buffer 'ring:0'"},
    {HEAD "record a::{1} weather/+/acc persist format=xml\n", NULL, "aimdb.conf:2: bad format 'xml'"},
    {HEAD "record a::{1} weather/+/acc retention=1d\n", NULL,
     "aimdb.conf:2: retention= needs persist"},
    {HEAD "record a::{1} weather/+/acc persist colour=red\n", NULL,
     "aimdb.conf:2: unknown record option 'colour"},
    {HEAD "record a::{1}\n", NULL, "aimdb.conf:2: record needs a name template and a topic filter"},
    {HEAD "record g::x a/b persist\nrecord g::x c/d buffer=latest\n", NULL,
     "aimdb.conf:3: record 'g::x' is also defined on line 2"},
    {HEAD "broker tcp://127.0.0.1:1883\n", NULL, "aimdb.conf:2: 'broker' is an aimdb-bridge setting"},
    {HEAD "synchronous sometimes\n", NULL, "aimdb.conf:2: bad synchronous 'sometimes'"},
    {HEAD, "plugin_opt_retention forever", "plugin_opt_retention: bad retention 'forever'"},
    {HEAD, "plugin_opt_colour blue", "plugin_opt_colour: unknown"},
    {HEAD, "plugin_opt_batch_rows 0", "plugin_opt_batch_rows: bad batch_rows '0'"},
    {"database /proc/aimdb-none/x/aimdb.db\n", NULL, "database /proc/aimdb-none/x/aimdb.db"},
    {"database /tmp\n", NULL, "database /tmp: cannot open /tmp: unable to open database file; "
                             "/tmp is a directory: name a file in it, e.g. /tmp/aimdb.db"},
};

static void prepend(const char *path, const char *head) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char *both = malloc(strlen(head) + n + 1);
    assert_non_null(both);
    sprintf(both, "%s%s", head, text);
    write_file(path, both);
    free(both);
}

static void expect_refused(const struct bad_config *c) {
    broker b;
    broker_init(&b);
    broker_write_aimdb(&b, c->aimdb_conf);
    broker_write_conf(&b, c->extra);
    int status = 0;
    bool started = broker_start(&b, &status);
    if (started || status <= 0 || !broker_log_wait(&b, c->log, 0)) {
        fprintf(stderr, "expected a refusal with \"%s\" (started %d, status %d)\n", c->log,
                started, status);
        broker_log_dump(&b);
    }
    assert_false(started);
    assert_true(status > 0);
    assert_true(broker_log_wait(&b, c->log, 0));
    assert_false(broker_log_blames_us(&b));
    broker_cleanup(&b);
}

static void test_every_config_error_stops_startup(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) expect_refused(&bad[i]);
}

/* Mosquitto 2.0.11 raises no MOSQ_EVT_TICK with per-listener settings, so
 * replies could not go out: refused at start, with the reason. */
static void test_per_listener_settings_refused(void **state) {
    (void)state;
    broker b;
    broker_init(&b);
    broker_write_aimdb(&b, HEAD);
    broker_write_conf(&b, NULL);
    prepend(b.conf_path, "per_listener_settings true\n"); /* must come first */
    int status = 0;
    assert_false(broker_start(&b, &status));
    assert_true(status > 0);
    assert_true(broker_log_wait(&b, "per_listener_settings true is not supported", 0));
    broker_cleanup(&b);
}

static void test_missing_config_file(void **state) {
    (void)state;
    broker b;
    broker_init(&b);
    /* plugin_opt_config names a file that is not there */
    broker_write_conf(&b, NULL);
    int status = 0;
    assert_false(broker_start(&b, &status));
    assert_true(status > 0);
    assert_true(broker_log_wait(&b, "aimdb.conf: cannot read:", 0));
    assert_false(broker_log_blames_us(&b));
    broker_cleanup(&b);
}

/* The user test_database_not_writable's broker runs as, or NULL (skip).
 * Root may write anything, so as root the broker becomes 'mosquitto', as
 * a packaged one does, and finds our files root's. */
static const char *unprivileged_user(void) {
    if (geteuid() == 0) return getpwnam("mosquitto") ? "mosquitto" : NULL;
    struct passwd *pw = getpwuid(geteuid());
    return pw ? pw->pw_name : NULL;
}

/* b with its history at b->dir/SUB/aimdb.db (the path in db), SUB made
 * with mode, the broker running as user. */
static void prepare(broker *b, const char *user, const char *sub, mode_t mode, char *db,
                    size_t cap) {
    broker_init(b);
    if (geteuid() == 0) b->user = user;
    assert_int_equal(chmod(b->dir, 0755), 0); /* the broker's user reads its conf */
    char dir[sizeof(b->dir) + 64], conf[HARNESS_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s", b->dir, sub);
    assert_int_equal(mkdir(dir, mode), 0);
    assert_int_equal(chmod(dir, mode), 0); /* whatever the umask */
    snprintf(db, cap, "%s/aimdb.db", dir);
    snprintf(conf, sizeof(conf), "database %s\n", db);
    broker_write_aimdb(b, conf);
    broker_write_conf(b, NULL);
}

/* Refused at start, saying want and hint; b is cleaned up. */
static void refused_with(broker *b, const char *want, const char *hint) {
    int status = 0;
    bool started = broker_start(b, &status);
    bool said = broker_log_wait(b, want, 0) && broker_log_wait(b, hint, 0);
    if (started || !said) {
        fprintf(stderr, "expected a refusal with \"%s\" and \"%s\"\n", want, hint);
        broker_log_dump(b);
    }
    assert_false(started);
    assert_true(status > 0);
    assert_true(said);
    assert_false(broker_log_blames_us(b));
    broker_cleanup(b);
}

/* A database directory or file the broker's user may not write (the usual
 * first run of a broker started as root).  SQLite says only "unable to
 * open database file" or "is read-only"; the refusal says which directory
 * or file, which user, and the command that fixes it. */
static void test_database_not_writable(void **state) {
    (void)state;
    const char *user = unprivileged_user();
    if (!user) skip();
    broker b;
    char db[HARNESS_PATH_MAX], want[1024], hint[1024];

    prepare(&b, user, "locked", 0555, db, sizeof(db));
    snprintf(want, sizeof(want), "directory %s/locked is not writable by user %s", b.dir, user);
    snprintf(hint, sizeof(hint), "(chown %s %s/locked)", user, b.dir);
    refused_with(&b, want, hint);

    prepare(&b, user, "open", 0777, db, sizeof(db));
    write_file(db, ""); /* an empty file is an empty database to SQLite */
    assert_int_equal(chmod(db, 0444), 0);
    snprintf(want, sizeof(want), "%s is not writable by user %s", db, user);
    snprintf(hint, sizeof(hint), "(chown %s %s)", user, db);
    refused_with(&b, want, hint);
}

/* A value published to b is recorded: query (one record's) finds it. */
static void expect_recorded(const broker *b, const char *topic, const char *value,
                            const char *query) {
    client *c = client_connect(b->port, "recorded", MQTT_PROTOCOL_V5, NULL, NULL);
    assert_non_null(c);
    client_publish(c, topic, value, strlen(value), 1);
    char *reply = client_query_until(c, query, 1, 5000);
    assert_int_equal(reply_count(reply), 1);
    free(reply);
    client_disconnect(c);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* plugin_opt_database overrides the file's database; the default ./data/
 * directory is created beside the broker's working directory. */
static void test_plugin_opt_overrides_the_file(void **state) {
    (void)state;
    broker b;
    broker_init(&b);
    broker_write_aimdb(&b, "database @DIR@/data/from-file.db\n"
                           "record t::{1} t/+ persist\n");
    broker_write_conf(&b, "plugin_opt_database @DIR@/other/override.db");
    assert_true(broker_start(&b, NULL));
    expect_recorded(&b, "t/x", "1", "{}");
    assert_int_equal(broker_stop(&b), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/other/override.db", b.dir);
    assert_true(file_exists(path));
    snprintf(path, sizeof(path), "%s/data/from-file.db", b.dir);
    assert_false(file_exists(path));
    broker_cleanup(&b);
}

/* persist on a latest or mailbox buffer is said at start-up, with its
 * line: history keeps only the last of values that arrive together.  The
 * advice holds: a ring's history keeps a burst whole. */
static void test_persist_on_a_collapsing_buffer_is_said(void **state) {
    (void)state;
    broker b;
    broker_init(&b);
    broker_write_aimdb(&b, HEAD "record r::{1} burst/+/r persist\n"
                                "record l::{1} burst/+/l persist buffer=latest\n"
                                "record m::{1} burst/+/m persist buffer=mailbox\n"
                                "record n::{1} burst/+/n buffer=latest\n");
    broker_write_conf(&b, NULL);
    assert_true(broker_start(&b, NULL));
    assert_true(broker_log_wait(&b,
                                "aimdb.conf:3: persist with buffer=latest: history stores the "
                                "newest value each time it reads one, so of values that arrive "
                                "together it keeps only the last; leave buffer= out (a ring) to "
                                "keep every value",
                                test_wait_ms(1000)));
    assert_true(broker_log_wait(&b, "aimdb.conf:4: persist with buffer=mailbox", 0));
    assert_false(broker_log_wait(&b, "aimdb.conf:2: persist", 0));
    assert_false(broker_log_wait(&b, "aimdb.conf:5:", 0));

    client *c = client_connect(b.port, "burst", MQTT_PROTOCOL_V311, NULL, NULL);
    char value[16];
    for (int topic = 0; topic < 2; topic++)
        for (int i = 1; i <= 100; i++) {
            int len = snprintf(value, sizeof(value), "%d", i);
            client_publish(c, topic ? "burst/a/l" : "burst/a/r", value, (size_t)len,
                           i == 100 ? 1 : 0);
        }
    client_disconnect(c);
    assert_int_equal(broker_stop(&b), 0); /* commits every value routed */
    char db[HARNESS_PATH_MAX + 16];
    snprintf(db, sizeof(db), "%s/data/aimdb.db", b.dir);
    assert_int_equal(sql_number(db, "SELECT count(*) FROM record_history "
                                    "WHERE record_name = 'r::a'"),
                     100);
    /* However many collapsed, the last value is history's newest. */
    assert_int_equal(sql_number(db, "SELECT value_json FROM record_history "
                                    "WHERE record_name = 'l::a' ORDER BY id DESC LIMIT 1"),
                     100);
    broker_cleanup(&b);
}

/* Two brokers on one history (`make run` twice): the second is refused
 * at start, before it listens, naming the database and the first broker;
 * the first keeps recording. */
static void test_second_broker_on_one_database_refused(void **state) {
    (void)state;
    broker first, second;
    assert_true(broker_start_weather(&first));
    broker_init(&second);
    char conf[HARNESS_PATH_MAX + 16], want[HARNESS_PATH_MAX + 64];
    snprintf(conf, sizeof(conf), "database %s\n", first.db_path);
    broker_write_aimdb(&second, conf);
    broker_write_conf(&second, NULL);
    snprintf(want, sizeof(want), "database %s: in use by process %ld", first.db_path,
             (long)first.pid);
    refused_with(&second, want, "give each its own database");
    expect_recorded(&first, "weather/oslo/temperature", "1.5", "{\"name\":\"temp::oslo\"}");
    assert_int_equal(broker_stop_and_clean(&first), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_config_error_stops_startup),
        cmocka_unit_test(test_per_listener_settings_refused),
        cmocka_unit_test(test_missing_config_file),
        cmocka_unit_test(test_database_not_writable),
        cmocka_unit_test(test_plugin_opt_overrides_the_file),
        cmocka_unit_test(test_persist_on_a_collapsing_buffer_is_said),
        cmocka_unit_test(test_second_broker_on_one_database_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
