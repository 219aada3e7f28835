/*
 * test_docs.c -- the examples of README.md and of every docs/NAME.md, run against a
 * real Mosquitto with the plugin, so that what the documentation shows is
 * what the product does.  Each document is one test, with its own broker
 * directory and port; its blocks run in document order.
 *
 * Which fenced blocks run (the info string after the opening ```):
 *
 *   ```LANG file=NAME   the block is written to NAME in the directory
 *                       (aimdb.conf, an acl file, a script); mosquitto.conf
 *                       is kept for the next broker start (below)
 *   ```console test     each "$ COMMAND" line (a line ending in '\'
 *                       continues it) is run by sh in the directory, with
 *                       stderr joined to stdout; the lines after it, up to
 *                       the next "$ ", are its expected output
 *   ```console test postgres
 *                       the same, against a real PostgreSQL server
 *                       (tests/postgres/pg_server.h) started for a
 *                       document that has one, "localhost:5432" being its address in
 *                       files, commands and output; not
 *                       run where there is none -- the count of such
 *                       blocks left out is printed
 *
 * Every other block is text for the reader.  A document that runs a
 * command before it starts a broker (the README, whose reader has `make
 * run` going) gets one started first, with the files it has written so
 * far.  Two commands are the broker's own, so they are carried out by the
 * harness:
 *
 *   $ mosquitto -c mosquitto.conf     stops the broker if one runs (it must
 *                                     exit cleanly) and starts one with the
 *                                     last mosquitto.conf block; the output
 *                                     is the broker's log from this start
 *   $ kill -HUP $(pidof mosquitto)    SIGHUP; the output is what the log
 *                                     gains from then on
 *
 * What a reader's machine has and a test cannot (port 1883, the plugin's
 * installed path) is substituted: "localhost:1883" in files and commands
 * becomes 127.0.0.1:PORT; mosquitto_pub, mosquitto_sub and mosquitto_rr
 * find "-h 127.0.0.1 -p PORT" in their configuration files
 * ($XDG_CONFIG_HOME/mosquitto_rr ...), so an example needs no -h or -p; in
 * mosquitto.conf the lines the harness writes itself (listener,
 * allow_anonymous, user, log_*, plugin, plugin_opt_config) are left out,
 * the rest follows them; node finds mqtt.js through a node_modules link
 * to web/node_modules, and the shell finds aimdb, aimdb-bridge and
 * aimdb-mcu-sim first in the build tree, as if installed.
 *
 * Matching: line by line, trailing blanks ignored; a line "..." stands
 * for any number of lines (none included); in both texts a run of ten or
 * more digits (Unix times in s or ms) and an ISO-8601 date-time are
 * each one token, and the broker's directory reads as ".".  Output that
 * does not match yet (a value not committed, a reply still on its way) is
 * retried until it does, for up to RETRY_MS: a command whose output is
 * shown must be safe to run twice.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "pg_server.h"

#define RETRY_MS 10000
#define COMMAND_TIMEOUT_MS 10000
#define OUTPUT_CAP (1 << 20)
#define MAX_DOCS 32

/* --------------------------------------------------------------- text */

typedef struct text {
    char *data;
    size_t len, cap;
} text;

static void text_add(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        t->data = realloc(t->data, cap);
        assert_non_null(t->data);
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_addf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_addf(text *t, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(buf));
    text_add(t, buf, (size_t)n);
}

static char *read_whole(const char *path, long from) {
    FILE *f = fopen(path, "rb");
    text t = {0};
    text_add(&t, "", 0);
    if (!f) return t.data;
    fseek(f, from, SEEK_SET);
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), f)) > 0;) text_add(&t, buf, n);
    fclose(f);
    return t.data;
}

/* s with every `from` replaced by `to` (malloc'd). */
static char *replace_all(const char *s, const char *from, const char *to) {
    text t = {0};
    text_add(&t, "", 0);
    size_t n = strlen(from);
    for (const char *p; n && (p = strstr(s, from)); s = p + n) {
        text_add(&t, s, (size_t)(p - s));
        text_add(&t, to, strlen(to));
    }
    text_add(&t, s, strlen(s));
    return t.data;
}

/* ----------------------------------------------------------- matching */

static bool digits_at(const char *p, int n) {
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i])) return false;
    return true;
}

/* Length of an ISO-8601 date-time at p ("2026-12-03 07:04:21",
 * "2026-12-03T07:04:21.042+01:00", "...Z"), or 0. */
static size_t iso_time_at(const char *p) {
    if (!digits_at(p, 4) || p[4] != '-' || !digits_at(p + 5, 2) || p[7] != '-' ||
        !digits_at(p + 8, 2) || (p[10] != ' ' && p[10] != 'T') || !digits_at(p + 11, 2) ||
        p[13] != ':' || !digits_at(p + 14, 2) || p[16] != ':' || !digits_at(p + 17, 2))
        return 0;
    size_t n = 19;
    if (p[n] == '.' && isdigit((unsigned char)p[n + 1]))
        for (n++; isdigit((unsigned char)p[n]); n++) {
        }
    if (p[n] == 'Z') n++;
    else if ((p[n] == '+' || p[n] == '-') && digits_at(p + n + 1, 2) && p[n + 3] == ':' &&
             digits_at(p + n + 4, 2))
        n += 6;
    return n;
}

/* One line made comparable: times are tokens, trailing blanks gone. */
static char *normal_line(const char *s, size_t len) {
    text t = {0};
    text_add(&t, "", 0);
    for (size_t i = 0; i < len;) {
        size_t iso = iso_time_at(s + i);
        size_t run = 0;
        while (i + run < len && isdigit((unsigned char)s[i + run])) run++;
        bool starts_token = i == 0 || !isdigit((unsigned char)s[i - 1]);
        if (iso && i + iso <= len) {
            text_add(&t, "<TIME>", 6);
            i += iso;
        } else if (starts_token && run >= 10) {
            text_add(&t, "<NUMBER>", 8);
            i += run;
        } else {
            text_add(&t, s + i, 1);
            i++;
        }
    }
    while (t.len && (t.data[t.len - 1] == ' ' || t.data[t.len - 1] == '\t' ||
                     t.data[t.len - 1] == '\r'))
        t.data[--t.len] = '\0';
    return t.data;
}

typedef struct lines {
    char **items;
    size_t n;
} lines;

/* Split into normalised lines; trailing empty lines dropped. */
static lines split_lines(const char *s) {
    lines l = {0};
    for (const char *p = s; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        l.items = realloc(l.items, (l.n + 1) * sizeof(*l.items));
        assert_non_null(l.items);
        l.items[l.n++] = normal_line(p, len);
        p += len + (nl ? 1 : 0);
    }
    while (l.n && !*l.items[l.n - 1]) free(l.items[--l.n]);
    return l;
}

static void lines_free(lines *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
}

static bool match_from(const lines *want, size_t i, const lines *got, size_t j) {
    if (i == want->n) return j == got->n;
    if (strcmp(want->items[i], "...") == 0) {
        for (size_t k = j; k <= got->n; k++)
            if (match_from(want, i + 1, got, k)) return true;
        return false;
    }
    return j < got->n && strcmp(want->items[i], got->items[j]) == 0 &&
           match_from(want, i + 1, got, j + 1);
}

static bool output_matches(const char *want, const char *got) {
    lines w = split_lines(want), g = split_lines(got);
    bool ok = match_from(&w, 0, &g, 0);
    lines_free(&w);
    lines_free(&g);
    return ok;
}

/* ----------------------------------------------------------- a document */

typedef struct doc_run {
    const char *path;      /* the document */
    unsigned line;         /* of the command being run */
    broker b;
    bool broker_started;   /* b has been started at least once */
    char port[16];
    char *mosquitto_extra; /* the last mosquitto.conf block, filtered */
    unsigned tested;       /* commands run */
    pg_server pg;          /* started by the first postgres block */
    unsigned pg_left_out;  /* postgres blocks not run */
} doc_run;

static char *substitute(const doc_run *d, const char *s) {
    char local[64], pg[64];
    snprintf(local, sizeof(local), "127.0.0.1:%s", d->port);
    snprintf(pg, sizeof(pg), "127.0.0.1:%d", d->pg.port);
    char *mqtt = replace_all(s, "localhost:1883", local);
    if (!d->pg.running) return mqtt;
    char *both = replace_all(mqtt, "localhost:5432", pg);
    free(mqtt);
    return both;
}

/* A postgres block runs only with a server, started before the document's
 * first block so that its files name it too. */
static bool postgres_ready(doc_run *d) {
    if (d->pg.running) return true;
    if (!pg_server_available()) return false;
    pg_server_start(&d->pg);
    return true;
}

/* The broker's directory reads as "." in its output, the PostgreSQL
 * server as localhost:5432. */
static char *relative(const doc_run *d, const char *s) {
    char dir[sizeof(d->b.dir) + 1], pg[64];
    snprintf(dir, sizeof(dir), "%s/", d->b.dir);
    snprintf(pg, sizeof(pg), "127.0.0.1:%d", d->pg.port);
    char *a = replace_all(s, dir, "");
    char *b = replace_all(a, d->b.dir, ".");
    free(a);
    if (!d->pg.running) return b;
    char *c = replace_all(b, pg, "localhost:5432");
    free(b);
    return c;
}

static void report(const doc_run *d, const char *command, const char *want, const char *got) {
    fprintf(stderr,
            "%s:%u: the example's output differs\n--- command\n%s\n--- expected\n%s\n--- got\n%s"
            "\n---\n",
            d->path, d->line, command, want, got);
}

/* Lines of mosquitto.conf that the harness writes itself. */
static bool harness_owns(const char *line) {
    static const char *const keys[] = {"listener", "allow_anonymous", "user", "log_dest",
                                       "log_type", "plugin", "plugin_opt_config"};
    size_t n = strcspn(line, " \t");
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i]) == n && strncmp(line, keys[i], n) == 0) return true;
    return false;
}

static void keep_mosquitto_conf(doc_run *d, const char *block) {
    text t = {0};
    text_add(&t, "", 0);
    for (const char *p = block; *p;) {
        size_t len = strcspn(p, "\n");
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        if (!harness_owns(line)) text_addf(&t, "%s\n", line);
        p += len + (p[len] ? 1 : 0);
    }
    free(d->mosquitto_extra);
    d->mosquitto_extra = t.data;
}

static void write_block_file(doc_run *d, const char *name, const char *block) {
    assert_null(strchr(name, '/'));
    if (strcmp(name, "mosquitto.conf") == 0) {
        keep_mosquitto_conf(d, block);
        return;
    }
    char path[HARNESS_PATH_MAX + 128];
    snprintf(path, sizeof(path), "%s/%s", d->b.dir, name);
    char *t = substitute(d, block);
    write_file(path, t);
    free(t);
}

/* Stop the running broker, which must exit cleanly. */
static void stop_broker(doc_run *d) {
    if (!d->b.pid) return;
    int status = broker_stop(&d->b);
    if (status != 0) broker_log_dump(&d->b);
    assert_int_equal(status, 0);
}

static char *log_since(const doc_run *d, long offset) {
    char *raw = read_whole(d->b.log_path, offset);
    char *out = relative(d, raw);
    free(raw);
    return out;
}

/* Wait (bounded) until the log from offset on matches want. */
static void expect_log(doc_run *d, const char *command, long offset, const char *want) {
    char *got = NULL;
    bool ok = false;
    for (long long deadline = now_ms() + RETRY_MS;; sleep_ms(50)) {
        free(got);
        got = log_since(d, offset);
        ok = output_matches(want, got);
        if (ok || now_ms() >= deadline) break;
    }
    if (!ok) report(d, command, want, got);
    free(got);
    assert_true(ok);
}

static void start_broker(doc_run *d, const char *command, const char *want) {
    stop_broker(d);
    /* Each start gets a log of its own: the harness judges a stop by the
     * whole log, and under ASan a refused start leaves Mosquitto's own
     * leak report in it (not ours: broker_log_blames_us below). */
    char previous[sizeof(d->b.log_path) + 16];
    snprintf(previous, sizeof(previous), "%s.previous", d->b.log_path);
    if (file_size(d->b.log_path) > 0) assert_int_equal(rename(d->b.log_path, previous), 0);
    long offset = 0;
    broker_write_conf(&d->b, d->mosquitto_extra);
    int status = 0;
    d->broker_started = true;
    /* Not started: an example of a refused configuration, whose log says
     * why (started, it has logged "running": harness.c). */
    if (!broker_start(&d->b, &status)) assert_false(broker_log_blames_us(&d->b));
    expect_log(d, command, offset, want);
}

static void signal_broker(doc_run *d, const char *command, const char *want) {
    assert_true(d->b.pid > 0);
    long offset = (long)file_size(d->b.log_path);
    broker_signal(&d->b, SIGHUP);
    expect_log(d, command, offset, want);
}

static void run_shell(doc_run *d, const char *command, const char *want) {
    char *cmd = substitute(d, command);
    text script = {0};
    text_addf(&script,
              "cd '%s' && export XDG_CONFIG_HOME='%s/.config' PATH='%s':\"$PATH\" && "
              "exec 2>&1 && ",
              d->b.dir, d->b.dir, AIMDB_BUILD_DIR);
    text_add(&script, cmd, strlen(cmd));
    char *argv[] = {"sh", "-c", script.data, NULL};
    char *got = malloc(OUTPUT_CAP);
    assert_non_null(got);
    char *rel = NULL;
    bool ok = false;
    for (long long deadline = now_ms() + RETRY_MS;; sleep_ms(100)) {
        run_tool(argv, got, OUTPUT_CAP, COMMAND_TIMEOUT_MS);
        free(rel);
        rel = relative(d, got);
        ok = output_matches(want, rel);
        if (ok || !*want || now_ms() >= deadline) break;
    }
    if (!ok) report(d, command, want, rel);
    free(rel);
    free(got);
    free(script.data);
    free(cmd);
    assert_true(ok);
}

static void run_command(doc_run *d, const char *command, const char *want) {
    d->tested++;
    if (strcmp(command, "mosquitto -c mosquitto.conf") == 0) {
        start_broker(d, command, want);
    } else if (strcmp(command, "kill -HUP $(pidof mosquitto)") == 0) {
        signal_broker(d, command, want);
    } else {
        if (!d->broker_started) start_broker(d, "(the broker a reader has running)", "...\n");
        run_shell(d, command, want);
    }
}

/* A ```console test block: commands and the output each shows. */
static void run_console(doc_run *d, const char *block, unsigned first_line) {
    const char *p = block;
    unsigned line = first_line;
    if (strncmp(p, "$ ", 2) != 0) {
        fprintf(stderr, "%s:%u: a console test block starts with \"$ \"\n", d->path, line);
        fail();
    }
    while (*p) {
        text cmd = {0}, want = {0};
        text_add(&want, "", 0);
        d->line = line;
        p += 2; /* "$ " */
        for (;;) {
            size_t len = strcspn(p, "\n");
            bool more = len > 0 && p[len - 1] == '\\';
            text_add(&cmd, p, len); /* sh reads the '\\' and newline as a continuation */
            p += len + (p[len] ? 1 : 0);
            line++;
            if (!more || !*p) break;
            text_add(&cmd, "\n", 1);
        }
        while (*p && strncmp(p, "$ ", 2) != 0) {
            size_t len = strcspn(p, "\n");
            text_add(&want, p, len);
            text_add(&want, "\n", 1);
            p += len + (p[len] ? 1 : 0);
            line++;
        }
        run_command(d, cmd.data, want.data);
        free(cmd.data);
        free(want.data);
    }
}

/* The info string's words: the language, then "test" or "file=NAME". */
static void run_block(doc_run *d, const char *info, const char *block, unsigned first_line) {
    char words[256];
    snprintf(words, sizeof(words), "%s", info);
    bool console = false, test = false, postgres = false;
    const char *file = NULL;
    int i = 0;
    for (char *save, *w = strtok_r(words, " \t", &save); w; w = strtok_r(NULL, " \t", &save), i++) {
        if (i == 0) console = strcmp(w, "console") == 0;
        else if (strcmp(w, "test") == 0) test = true;
        else if (strcmp(w, "postgres") == 0) postgres = true;
        else if (strncmp(w, "file=", 5) == 0) file = w + 5;
    }
    if (file) write_block_file(d, file, block);
    else if (console && test && postgres && !postgres_ready(d)) d->pg_left_out++;
    else if (console && test) run_console(d, block, first_line);
}

static void write_client_config(const doc_run *d) {
    char path[HARNESS_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/.config", d->b.dir);
    assert_int_equal(mkdir(path, 0700), 0);
    static const char *const tools[] = {"mosquitto_pub", "mosquitto_sub", "mosquitto_rr"};
    char options[64];
    snprintf(options, sizeof(options), "-h 127.0.0.1\n-p %s\n", d->port);
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
        snprintf(path, sizeof(path), "%s/.config/%s", d->b.dir, tools[i]);
        write_file(path, options);
    }
    snprintf(path, sizeof(path), "%s/node_modules", d->b.dir);
    assert_int_equal(symlink(AIMDB_WEB_MODULES, path), 0);
}

static void run_document(const char *path) {
    doc_run d = {.path = path};
    broker_init(&d.b);
    snprintf(d.port, sizeof(d.port), "%d", d.b.port);
    write_client_config(&d);
    char *doc = read_whole(path, 0);
    if (strstr(doc, "```console test postgres")) postgres_ready(&d);
    text block = {0}, info = {0};
    bool inside = false;
    unsigned line = 1, block_line = 0;
    for (const char *p = doc; *p; line++) {
        size_t len = strcspn(p, "\n");
        bool fence = len >= 3 && strncmp(p, "```", 3) == 0;
        if (!inside && fence) {
            inside = true;
            info.len = block.len = 0;
            text_add(&info, p + 3, len - 3);
            text_add(&block, "", 0);
            block_line = line + 1;
        } else if (inside && fence && len == 3) {
            inside = false;
            run_block(&d, info.data, block.data, block_line);
        } else if (inside) {
            text_add(&block, p, len);
            text_add(&block, "\n", 1);
        }
        p += len + (p[len] ? 1 : 0);
    }
    if (inside) {
        fprintf(stderr, "%s:%u: a fenced block is not closed\n", path, block_line - 1);
        fail();
    }
    fprintf(stderr, "%s: %u example command(s) ran as shown\n", path, d.tested);
    if (d.pg_left_out)
        fprintf(stderr, "%s: %u PostgreSQL block(s) left out (no server here, or the "
                        "sanitizer build)\n", path, d.pg_left_out);
    stop_broker(&d);
    pg_server_cleanup(&d.pg);
    broker_cleanup(&d.b);
    free(doc);
    free(block.data);
    free(info.data);
    free(d.mosquitto_extra);
}

/* ----------------------------------------------------------- the tests */

static void test_document(void **state) {
    run_document(*state);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const struct CMUnitTest *)a)->name, ((const struct CMUnitTest *)b)->name);
}

int main(void) {
    static char paths[MAX_DOCS][HARNESS_PATH_MAX];
    struct CMUnitTest tests[MAX_DOCS];
    size_t n = 0;
    snprintf(paths[n], sizeof(paths[n]), "%s/README.md", AIMDB_SOURCE_DIR);
    tests[n] = (struct CMUnitTest){"README.md", test_document, NULL, NULL, paths[n]};
    n++;
    char dir[HARNESS_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/docs", AIMDB_SOURCE_DIR);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "no %s\n", dir);
        return 1;
    }
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".md") != 0) continue;
        if (n == MAX_DOCS) {
            fprintf(stderr, "more than %d documents: raise MAX_DOCS\n", MAX_DOCS);
            return 1;
        }
        if (snprintf(paths[n], sizeof(paths[n]), "%s/%s", dir, e->d_name) >= (int)sizeof(paths[n]))
            continue;
        tests[n] = (struct CMUnitTest){paths[n] + strlen(AIMDB_SOURCE_DIR) + 1, test_document,
                                       NULL, NULL, paths[n]};
        n++;
    }
    closedir(d);
    qsort(tests + 1, n - 1, sizeof(tests[0]), by_name);
    return _cmocka_run_group_tests("docs", tests, n, NULL, NULL);
}
