/*
 * conf.c -- reading aimdb.conf (docs/configuration.md): lines, tokens, record rules,
 * and the overrides that come after the file.
 *
 * A configuration mistake must stop start-up with the file and line, so
 * every check happens here, once, for both the plugin and the bridge: the
 * filter and template of each rule, every option, every value.  What comes
 * out is trusted by the router and the applications.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/json.h"
#include "aimdb/mqtt_conf.h"
#include "aimdb/mqtt_route.h"
#include "aimdb/postgres.h"
#include "mqtt_internal.h"

#define CONF_MAX_BYTES (16u << 20) /* no real aimdb.conf comes near this */

typedef struct parser {
    aimdb_conf *conf;
    const char *display; /* error prefix: the file's basename */
    unsigned line;       /* 1-based, the line being parsed */
    unsigned *set_on;    /* per setting: the line that set it, 0 = not yet */
    size_t cap_rules;
    table fixed_names;   /* placeholder-free template -> its first rule */
    char *err;
    size_t errlen;
} parser;

static int line_error(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int line_error(parser *ps, const char *fmt, ...) {
    if (ps->errlen == 0) return AIMDB_EINVAL;
    int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->display, ps->line);
    if (n > 0 && (size_t)n < ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return AIMDB_EINVAL;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/*
 * The next blank-separated token of the line (NUL-terminated in place), or
 * NULL at the end of the line or at a comment.  hash_is_token lets a token
 * start with '#': the filter position of a record line, where "#" is the
 * filter that matches everything.
 */
static char *next_token(char **cursor, bool hash_is_token) {
    char *p = *cursor;
    while (is_blank(*p)) p++;
    if (*p == '\0' || (*p == '#' && !hash_is_token)) {
        *cursor = p;
        return NULL;
    }
    char *start = p;
    while (*p && !is_blank(*p)) p++;
    if (*p) *p++ = '\0';
    *cursor = p;
    return start;
}

/* ------------------------------------------------------------ records */

enum { OPT_PERSIST = 1, OPT_BUFFER = 2, OPT_RETENTION = 4, OPT_FORMAT = 8, OPT_MAX_RECORDS = 16 };

static const struct {
    const char *name;
    unsigned bit;
    bool takes_value;
} options[] = {
    {"persist", OPT_PERSIST, false},
    {"buffer", OPT_BUFFER, true},
    {"retention", OPT_RETENTION, true},
    {"format", OPT_FORMAT, true},
    {"max_records", OPT_MAX_RECORDS, true},
};

/* A rule's max_records= may not exceed the global setting's largest value. */
#define RULE_MAX_RECORDS 10000000u

/* Store the value of one option; its name and form are already checked. */
static int option_value(parser *ps, unsigned bit, const char *value, aimdb_conf_rule *rule) {
    switch (bit) {
    case OPT_PERSIST: rule->persist = true; return AIMDB_OK;
    case OPT_BUFFER:
        if (aimdb_buffer_parse(value, &rule->buffer) != AIMDB_OK)
            return line_error(ps, "bad buffer '%s' (ring:N with N from 1 to %u, latest or mailbox)",
                              value, AIMDB_RING_MAX);
        return AIMDB_OK;
    case OPT_RETENTION:
        if (!conf_duration_parse(value, false, INT64_MAX, &rule->retention_ms))
            return line_error(ps, "bad retention '%s' (a number with s, m, h or d, e.g. 30d; "
                                  "0 keeps forever)", value);
        return AIMDB_OK;
    case OPT_MAX_RECORDS: {
        char *end = NULL;
        unsigned long n = value[0] >= '0' && value[0] <= '9' ? strtoul(value, &end, 10) : 0;
        if (n == 0 || *end || n > RULE_MAX_RECORDS)
            return line_error(ps, "bad max_records '%s' (an integer from 1 to %u)", value,
                              RULE_MAX_RECORDS);
        rule->max_records = (unsigned)n;
        return AIMDB_OK;
    }
    default:
        if (aimdb_payload_format_parse(value, &rule->format) != AIMDB_OK)
            return line_error(ps, "bad format '%s' (auto, json, text or binary)", value);
        return AIMDB_OK;
    }
}

static int parse_option(parser *ps, const char *opt, aimdb_conf_rule *rule, unsigned *seen) {
    const char *eq = strchr(opt, '=');
    size_t len = eq ? (size_t)(eq - opt) : strlen(opt);
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (strlen(options[i].name) != len || memcmp(options[i].name, opt, len) != 0) continue;
        if (options[i].takes_value && !eq)
            return line_error(ps, "option '%s' needs a value (%s=...)", opt, opt);
        if (!options[i].takes_value && eq)
            return line_error(ps, "option '%.*s' takes no value", (int)len, opt);
        if (*seen & options[i].bit)
            return line_error(ps, "duplicate option '%s'", options[i].name);
        *seen |= options[i].bit;
        return option_value(ps, options[i].bit, eq ? eq + 1 : NULL, rule);
    }
    return line_error(ps,
                      "unknown record option '%s' (persist, buffer=, retention=, format=, "
                      "max_records=)",
                      opt);
}

static int add_rule(parser *ps, aimdb_conf_rule *rule, const char *name, const char *filter) {
    aimdb_conf *conf = ps->conf;
    if (conf->n_rules == ps->cap_rules) {
        size_t cap = ps->cap_rules ? ps->cap_rules * 2 : 8;
        aimdb_conf_rule *rules = realloc(conf->rules, cap * sizeof(*rules));
        if (!rules) return AIMDB_ENOMEM;
        conf->rules = rules;
        ps->cap_rules = cap;
    }
    rule->name_template = strdup(name);
    rule->topic_filter = strdup(filter);
    if (!rule->name_template || !rule->topic_filter) {
        free(rule->name_template);
        free(rule->topic_filter);
        return AIMDB_ENOMEM;
    }
    conf->rules[conf->n_rules++] = *rule;
    return AIMDB_OK;
}

static bool same_options(const aimdb_conf_rule *a, const aimdb_conf_rule *b) {
    return a->persist == b->persist && a->retention_ms == b->retention_ms &&
           a->format == b->format && a->buffer.kind == b->buffer.kind &&
           a->buffer.capacity == b->buffer.capacity;
}

/*
 * Several rules may feed one record (`record t a/t` and `record t b/t`), but
 * a record has one buffer, one codec and one history policy: rules that name
 * the same record must agree, or registering it would fail at start-up with
 * no line to point at.  Names made from placeholders can only collide at
 * run time; the applications handle that.  rule is the last one added.
 */
static int check_fixed_name(parser *ps, size_t rule_no) {
    const aimdb_conf_rule *rule = &ps->conf->rules[rule_no];
    const char *name = rule->name_template;
    if (!aimdb_name_template_is_fixed(name)) return AIMDB_OK;
    uint32_t first;
    if (table_get(&ps->fixed_names, name, strlen(name), &first)) {
        const aimdb_conf_rule *earlier = &ps->conf->rules[first];
        if (same_options(earlier, rule)) return AIMDB_OK;
        return line_error(ps, "record '%s' is also defined on line %u with other options "
                              "(persist, buffer, retention and format must match)",
                          name, earlier->line);
    }
    if (table_put(&ps->fixed_names, name, strlen(name), (uint32_t)rule_no) != AIMDB_OK)
        return AIMDB_ENOMEM;
    return AIMDB_OK;
}

/* record NAME-TEMPLATE TOPIC-FILTER [options...]; cursor is after "record". */
static int parse_record(parser *ps, char **cursor) {
    char *name = next_token(cursor, false);
    char *filter = name ? next_token(cursor, true) : NULL;
    if (!filter) return line_error(ps, "record needs a name template and a topic filter");
    char why[256];
    if (aimdb_topic_filter_check(filter, why, sizeof(why)) != AIMDB_OK)
        return line_error(ps, "bad topic filter '%s': %s", filter, why);
    if (aimdb_name_template_check(name, filter, why, sizeof(why)) != AIMDB_OK)
        return line_error(ps, "bad name template '%s': %s", name, why);

    aimdb_conf_rule rule = {.buffer = AIMDB_BUFFER_DEFAULT,
                            .retention_ms = -1,
                            .format = AIMDB_FORMAT_AUTO,
                            .line = ps->line};
    unsigned seen = 0;
    for (char *opt; (opt = next_token(cursor, false));) {
        int rc = parse_option(ps, opt, &rule, &seen);
        if (rc != AIMDB_OK) return rc;
    }
    if ((seen & OPT_RETENTION) && !rule.persist)
        return line_error(ps, "retention= needs persist (only persisted records keep history)");
    int rc = add_rule(ps, &rule, name, filter);
    return rc == AIMDB_OK ? check_fixed_name(ps, ps->conf->n_rules - 1) : rc;
}

/* ----------------------------------------------------------- settings */

/* KEY VALUE; cursor is after the key. */
static int parse_setting(parser *ps, const char *key, char **cursor) {
    int idx = conf_setting_find(key);
    if (idx < 0) return line_error(ps, "unknown key '%s'", key);
    char *value = next_token(cursor, false);
    if (!value) return line_error(ps, "'%s' needs a value", key);
    char *extra = next_token(cursor, false);
    if (extra) return line_error(ps, "'%s' takes one value, '%s' is one too many", key, extra);
    if (ps->set_on[idx]) return line_error(ps, "'%s' already set on line %u", key, ps->set_on[idx]);
    char why[512];
    int rc = conf_setting_apply(ps->conf, idx, value, why, sizeof(why));
    if (rc != AIMDB_OK) {
        line_error(ps, "%s", why);
        return rc;
    }
    ps->set_on[idx] = ps->line;
    return AIMDB_OK;
}

static int parse_line(parser *ps, char *line, size_t len) {
    if (memchr(line, '\0', len)) return line_error(ps, "NUL byte in line");
    if (!aimdb_utf8_valid(line, len)) return line_error(ps, "not valid UTF-8");
    char *cursor = line;
    char *key = next_token(&cursor, false);
    if (!key) return AIMDB_OK; /* blank or comment */
    if (strcmp(key, "record") == 0) {
        int rc = parse_record(ps, &cursor);
        if (rc == AIMDB_ENOMEM) line_error(ps, "out of memory");
        return rc;
    }
    return parse_setting(ps, key, &cursor);
}

/* -------------------------------------------------------------- entry */

static aimdb_conf *conf_new(aimdb_conf_app app) {
    aimdb_conf *conf = calloc(1, sizeof(*conf));
    if (!conf) return NULL;
    conf->app = app;
    conf->settings.synchronous = AIMDB_SQLITE_SYNC_NORMAL;
    conf->settings.uplink_hold_ms = -1;
    return conf;
}

void aimdb_conf_free(aimdb_conf *conf) {
    if (!conf) return;
    aimdb_conf_settings *s = &conf->settings;
    free(s->database);
    free(s->uplink);
    free(s->gateway);
    free(s->request_topic);
    free(s->broker);
    free(s->client_id);
    for (size_t i = 0; i < conf->n_rules; i++) {
        free(conf->rules[i].name_template);
        free(conf->rules[i].topic_filter);
    }
    free(conf->rules);
    free(conf);
}

/* The uplink copies local SQLite history: there must be a file of it. */
static int check_uplink(parser *ps) {
    const aimdb_conf_settings *s = &ps->conf->settings;
    if (!s->uplink || !s->database) return AIMDB_OK;
    ps->line = ps->set_on[conf_setting_find("uplink")];
    if (aimdb_postgres_is_uri(s->database))
        return line_error(ps, "uplink copies local SQLite history, but database (line %u) is "
                              "PostgreSQL already",
                          ps->set_on[conf_setting_find("database")]);
    if (strcmp(s->database, ":memory:") == 0)
        return line_error(ps, "uplink needs a history file, but database (line %u) is :memory:",
                          ps->set_on[conf_setting_find("database")]);
    return AIMDB_OK;
}

static int out_of_memory(char *err, size_t errlen) {
    if (errlen > 0) snprintf(err, errlen, "out of memory");
    return AIMDB_ENOMEM;
}

int aimdb_conf_parse(const char *text, size_t len, const char *display_name,
                     aimdb_conf_app app, aimdb_conf **out, char *err, size_t errlen) {
    *out = NULL;
    aimdb_conf *conf = conf_new(app);
    char *copy = malloc(len + 1); /* tokens are cut in place */
    unsigned *set_on = calloc(conf_setting_count(), sizeof(*set_on));
    if (!conf || !copy || !set_on) {
        aimdb_conf_free(conf);
        free(copy);
        free(set_on);
        return out_of_memory(err, errlen);
    }
    if (len > 0) memcpy(copy, text, len);
    copy[len] = '\0';

    parser ps = {.conf = conf,
                 .display = display_name ? display_name : "aimdb.conf",
                 .line = 1,
                 .set_on = set_on,
                 .err = err,
                 .errlen = errlen};
    int rc = AIMDB_OK;
    char *end = copy + len;
    for (char *line = copy; rc == AIMDB_OK && line < end; ps.line++) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *stop = nl ? nl : end;
        *stop = '\0';
        rc = parse_line(&ps, line, (size_t)(stop - line));
        line = stop + 1;
    }
    if (rc == AIMDB_OK) rc = check_uplink(&ps);
    free(copy);
    free(set_on);
    table_free(&ps.fixed_names);
    if (rc != AIMDB_OK) {
        aimdb_conf_free(conf);
        return rc;
    }
    *out = conf;
    return AIMDB_OK;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The whole file into a fresh buffer; errno tells why on NULL. */
static char *read_file(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) break;
        if (n < cap) {
            *len = n;
            return buf;
        }
        if (cap >= CONF_MAX_BYTES) {
            errno = EFBIG;
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) break;
        buf = bigger;
        cap *= 2;
    }
    free(buf);
    return NULL;
}

int aimdb_conf_load(const char *path, aimdb_conf_app app, aimdb_conf **out, char *err,
                    size_t errlen) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    size_t len = 0;
    char *text = f ? read_file(f, &len) : NULL;
    int saved = errno;
    if (f) fclose(f);
    if (!text) {
        if (errlen > 0) snprintf(err, errlen, "%s: cannot read: %s", path, strerror(saved));
        return saved == ENOMEM ? AIMDB_ENOMEM : AIMDB_EIO;
    }
    int rc = aimdb_conf_parse(text, len, base_name(path), app, out, err, errlen);
    free(text);
    return rc;
}

int aimdb_conf_override(aimdb_conf *conf, const char *prefix, const char *key,
                        const char *value, char *err, size_t errlen) {
    if (!prefix) prefix = "";
    if (!key) key = "";
    int idx = conf_setting_find(key);
    char why[512];
    int rc = AIMDB_EINVAL;
    if (idx < 0) snprintf(why, sizeof(why), "unknown setting");
    else if (!value || !*value) snprintf(why, sizeof(why), "needs a value");
    else rc = conf_setting_apply(conf, idx, value, why, sizeof(why));
    if (rc != AIMDB_OK && errlen > 0) snprintf(err, errlen, "%s%s: %s", prefix, key, why);
    return rc;
}
