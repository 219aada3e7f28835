/*
 * broker_conf.c -- the broker settings the plugin must know but the plugin
 * API does not give it: sys_interval (metrics.c), per_listener_settings
 * (plugin.c), and what decides who may read what (broker_acl.c: acl_file
 * and the plugins loaded).  They are read from the configuration file the
 * broker was started with: the path after -c / --config-file in
 * /proc/self/cmdline, read the way Mosquitto reads it -- "KEY VALUE" lines,
 * '#' comments, the value the rest of the line, the files of an include_dir
 * given in the main file read where that line stands, in Mosquitto's order
 * (names ending in .conf, case-insensitively sorted).  Without -c there is
 * no file and every setting has Mosquitto's default.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define LINE_MAX_LEN 4096
#define BROKER_CONF_STOPPED (-1) /* the line callback said stop */

/* The path after -c / --config-file in the broker's command line, or "". */
static void broker_config_path(char *out, size_t cap) {
    out[0] = '\0';
    FILE *f = fopen("/proc/self/cmdline", "r");
    if (!f) return;
    char args[4096];
    size_t n = fread(args, 1, sizeof(args) - 1, f);
    fclose(f);
    args[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(args + i) + 1) {
        const char *arg = args + i;
        bool flag = strcmp(arg, "-c") == 0 || strcmp(arg, "--config-file") == 0;
        size_t next = i + strlen(arg) + 1;
        if (flag && next < n) snprintf(out, cap, "%s", args + next);
    }
}

typedef struct reader {
    broker_conf_line_fn fn;
    void *ctx;
    char *bad;      /* the file that could not be read */
    size_t bad_cap;
} reader;

static int read_file(reader *r, const char *path, bool main_file);

/* include_dir's order: case-insensitive first, then by case. */
static int include_order(const void *a, const void *b) {
    const unsigned char *s = *(const unsigned char *const *)a, *t = *(const unsigned char *const *)b;
    for (; *s && *t; s++, t++) {
        int d = toupper(*s) - toupper(*t);
        if (d == 0) d = *s - *t;
        if (d != 0) return d;
    }
    return *s - *t;
}

static int read_include_dir(reader *r, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(r->bad, r->bad_cap, "%s", dir);
        return BROKER_CONF_UNREADABLE;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = BROKER_CONF_OK;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".conf") != 0) continue;
        char **grown = realloc(names, (n + 1) * sizeof(*names));
        size_t plen = strlen(dir) + len + 2;
        char *path = grown ? malloc(plen) : NULL;
        if (grown) names = grown;
        if (!path) {
            snprintf(r->bad, r->bad_cap, "%s (out of memory)", dir);
            rc = BROKER_CONF_UNREADABLE;
            break;
        }
        snprintf(path, plen, "%s/%s", dir, e->d_name);
        names[n++] = path;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), include_order);
    for (size_t i = 0; i < n; i++) {
        if (rc == BROKER_CONF_OK) rc = read_file(r, names[i], false);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int read_file(reader *r, const char *path, bool main_file) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(r->bad, r->bad_cap, "%s", path);
        return BROKER_CONF_UNREADABLE;
    }
    int rc = BROKER_CONF_OK;
    char line[LINE_MAX_LEN];
    while (rc == BROKER_CONF_OK && fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
        if (line[0] == '#') continue;
        char *key = line + strspn(line, " \t");
        if (!*key) continue;
        char *value = key + strcspn(key, " \t");
        if (*value) *value++ = '\0';
        value += strspn(value, " \t");
        if (main_file && strcmp(key, "include_dir") == 0) {
            rc = read_include_dir(r, value); /* Mosquitto: from the main file only */
        } else if (!r->fn(key, value, r->ctx)) {
            rc = BROKER_CONF_STOPPED;
        }
    }
    fclose(f);
    return rc;
}

int broker_conf_each(broker_conf_line_fn fn, void *ctx, char *bad, size_t bad_cap) {
    char path[4096];
    broker_config_path(path, sizeof(path));
    if (!*path) return BROKER_CONF_NONE;
    reader r = {fn, ctx, bad, bad_cap};
    int rc = read_file(&r, path, true);
    return rc == BROKER_CONF_STOPPED ? BROKER_CONF_OK : rc;
}

typedef struct lookup {
    const char *key;
    char *value;
    size_t cap;
    bool found;
} lookup;

static bool last_value(const char *key, const char *value, void *ctx) {
    lookup *l = ctx;
    if (strcmp(key, l->key) == 0 && *value && strlen(value) < l->cap) {
        strcpy(l->value, value);
        l->found = true;
    }
    return true;
}

bool broker_conf_get(const char *key, char *value, size_t cap) {
    lookup l = {key, value, cap, false};
    char bad[8];
    broker_conf_each(last_value, &l, bad, sizeof(bad));
    return l.found;
}
