/*
 * broker_conf.c -- the broker settings the plugin must know but the plugin
 * API does not give it: sys_interval (metrics.c) and per_listener_settings
 * (plugin.c).  They are read from the configuration file the broker was
 * started with: the path after -c / --config-file in /proc/self/cmdline,
 * the last line "KEY VALUE" wins, as in Mosquitto.  Files pulled in with
 * include_dir are not read; without -c there is no file and every setting
 * has Mosquitto's default.
 */
#include <stdio.h>
#include <string.h>

#include "plugin.h"

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

bool broker_conf_get(const char *key, char *value, size_t cap) {
    char path[4096];
    broker_config_path(path, sizeof(path));
    FILE *f = *path ? fopen(path, "r") : NULL;
    if (!f) return false;
    bool found = false;
    char line[1024];
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        char *p = line + strspn(line, " \t");
        if (strncmp(p, key, klen) != 0 || !strchr(" \t", p[klen])) continue;
        p += klen + strspn(p + klen, " \t");
        size_t len = strcspn(p, " \t\r\n");
        if (len == 0 || len >= cap) continue;
        memcpy(value, p, len);
        value[len] = '\0';
        found = true;
    }
    fclose(f);
    return found;
}
