/*
 * conf_fuzz.c -- libFuzzer target: any bytes as aimdb.conf.
 *
 * The promise to operators (docs/configuration.md) is that a file either
 * starts the node or stops it with one line saying where and why.  Each
 * input (its first byte picks the plugin's or aimdb-bridge's reading) must
 * give exactly one of:
 *   - AIMDB_OK with a configuration whose every rule would pass the
 *     checks again on its own (a valid filter, a template of that filter,
 *     the line it came from, rules in file order);
 *   - AIMDB_EINVAL, no configuration, and a message of one line reading
 *     "aimdb.conf:LINE: reason", LINE being a line of the input.
 * Anything else aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/mqtt_conf.h"
#include "aimdb/mqtt_route.h"

#define NAME "aimdb.conf"

static void require(bool ok, const char *what, const char *err) {
    if (ok) return;
    fprintf(stderr, "conf_fuzz: %s (message: \"%s\")\n", what, err ? err : "");
    abort();
}

/* Lines as the parser counts them: one more than the '\n's. */
static unsigned long lines_in(const uint8_t *text, size_t len) {
    unsigned long n = 1;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    return n;
}

static void check_error(const char *err, unsigned long lines) {
    require(strncmp(err, NAME ":", sizeof(NAME)) == 0, "error without the file's name", err);
    char *end;
    unsigned long line = strtoul(err + sizeof(NAME), &end, 10);
    require(end != err + sizeof(NAME) && line >= 1 && line <= lines,
            "error without a line of the file", err);
    require(end[0] == ':' && end[1] == ' ' && end[2] != '\0', "error without a reason", err);
    require(!strpbrk(err, "\n\r"), "error of more than one line", err);
}

static void check_conf(const aimdb_conf *conf, unsigned long lines) {
    char why[256];
    unsigned prev = 0;
    for (size_t i = 0; i < conf->n_rules; i++) {
        const aimdb_conf_rule *r = &conf->rules[i];
        require(r->line > prev && r->line <= lines, "rule out of file order", NULL);
        prev = r->line;
        require(aimdb_topic_filter_check(r->topic_filter, why, sizeof(why)) == AIMDB_OK,
                "a rule with a bad filter", why);
        require(aimdb_name_template_check(r->name_template, r->topic_filter, why,
                                          sizeof(why)) == AIMDB_OK,
                "a rule with a bad template", why);
        require(r->persist || r->retention_ms < 0, "retention= without persist", NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    aimdb_conf_app app = data[0] & 1 ? AIMDB_CONF_BRIDGE : AIMDB_CONF_PLUGIN;
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    aimdb_conf *conf = (aimdb_conf *)1;
    char err[512] = "";
    int rc = aimdb_conf_parse((const char *)text, len, NAME, app, &conf, err, sizeof(err));
    unsigned long lines = lines_in(text, len);
    if (rc == AIMDB_OK) {
        require(conf != NULL, "AIMDB_OK without a configuration", NULL);
        check_conf(conf, lines);
        aimdb_conf_free(conf);
        return 0;
    }
    require(rc == AIMDB_EINVAL, "neither AIMDB_OK nor AIMDB_EINVAL", err);
    require(conf == NULL, "an error with a configuration", err);
    check_error(err, lines);
    return 0;
}
