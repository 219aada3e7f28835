/*
 * broker_acl.c -- "may client C read topic T?", the question behind every
 * record a request may see (docs/protocol.md: a client sees a value only if
 * the broker's ACLs let it read the topic it was published on).
 *
 * Mosquitto gives plugins no way to ask: its ACL check is internal in 2.0
 * and 2.1 alike (neither mosquitto_broker.h declares it; a broker built
 * like the official image exports only src/linker.syms, and 2.1 changed
 * its signature), and a plugin's own MOSQ_EVT_ACL_CHECK callback is asked
 * in turn, never told the others' answers.  What a plugin can know is the
 * broker's configuration, so at start the plugin reads it (broker_conf.c)
 * and decides which of three cases holds, logging it once:
 *
 *   open      no acl_file and no plugin but aimdb: Mosquitto then lets
 *             every client read every topic, and so every client sees
 *             every record.
 *   acl_file  the broker's acl_file and no other plugin: the plugin reads
 *             the same file and answers with Mosquitto's own rules (below),
 *             so a client sees exactly what the broker would deliver to it.
 *   closed    anything it cannot answer for: another plugin is loaded
 *             (dynamic-security or any other: its decisions cannot be
 *             asked for), or the configuration or acl_file cannot be read
 *             or parsed.  Nothing is shown to anyone; requests still work
 *             and return what an unprivileged client sees: nothing.
 *
 * Never showing a value a client may not read is the rule; the cost of
 * "closed" falls on brokers with security plugins, and is said at start.
 * A reload (SIGHUP) makes Mosquitto read its acl_file again, and the
 * plugin with it; what holds is logged again if it changed.
 *
 * Mosquitto's rules for a read, as in 2.0's security_default.c and 2.1's
 * acl-file plugin: a client without an id may read nothing, a topic
 * beginning with "$share" is never readable; then the client's entries
 * ("topic" lines after "user NAME", or before the first "user" line for a
 * client without a username), deny entries first, where a topic starting
 * with '$' is matched only by an entry starting with '$'; then, if any
 * "pattern" lines exist, a username or client id containing '+' or '#' is
 * refused, and the patterns (deny first; those with %u skipped for a
 * client without a username) are tried with %c and %u filled in -- 2.1's
 * mosquitto_topic_matches_sub_with_pattern where the broker has it, else
 * 2.0's substitution into the text.  The first match decides; none denies.
 */
#define _GNU_SOURCE /* dladdr */
#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin.h"

typedef enum { ACL_OPEN, ACL_FILE, ACL_CLOSED } acl_mode;

typedef struct acl_entry {
    struct acl_entry *next;
    int access;             /* MOSQ_ACL_NONE (deny), _READ, _WRITE or both */
    bool needs_username;    /* a pattern with %u */
    char topic[];
} acl_entry;

typedef struct acl_user {
    struct acl_user *next;
    char *name;             /* NULL: the clients without a username */
    acl_entry *entries;
} acl_user;

struct broker_acl {
    acl_mode mode;
    acl_user *users;
    acl_entry *patterns;
    char what[2048];        /* what holds, as logged */
};

/* ------------------------------------------------------------ the file */

static void entries_free(acl_entry *e) {
    while (e) {
        acl_entry *next = e->next;
        free(e);
        e = next;
    }
}

static void acl_free(broker_acl *a) {
    if (!a) return;
    for (acl_user *u = a->users, *next; u; u = next) {
        next = u->next;
        entries_free(u->entries);
        free(u->name);
        free(u);
    }
    entries_free(a->patterns);
    free(a);
}

/* Deny entries go first: they are tried before any grant. */
static bool add_entry(acl_entry **list, const char *topic, int access) {
    acl_entry *e = malloc(sizeof(*e) + strlen(topic) + 1);
    if (!e) return false;
    e->access = access;
    e->needs_username = strstr(topic, "%u") != NULL;
    strcpy(e->topic, topic);
    if (access == MOSQ_ACL_NONE) {
        e->next = *list;
        *list = e;
    } else {
        e->next = NULL;
        while (*list) list = &(*list)->next;
        *list = e;
    }
    return true;
}

static acl_user *user_for(broker_acl *a, const char *name) {
    acl_user **u = &a->users;
    for (; *u; u = &(*u)->next)
        if (name ? (*u)->name && strcmp((*u)->name, name) == 0 : !(*u)->name) return *u;
    *u = calloc(1, sizeof(**u));
    if (*u && name && !((*u)->name = strdup(name))) {
        free(*u);
        *u = NULL;
    }
    return *u;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static bool access_of(const char *word, int *access) {
    static const struct {
        const char *word;
        int access;
    } words[] = {{"read", MOSQ_ACL_READ},
                 {"write", MOSQ_ACL_WRITE},
                 {"readwrite", MOSQ_ACL_READ | MOSQ_ACL_WRITE},
                 {"deny", MOSQ_ACL_NONE}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcmp(word, words[i].word) == 0) {
            *access = words[i].access;
            return true;
        }
    }
    return false;
}

/* One line, split as Mosquitto splits it (single spaces between the
 * first words, the rest of the line trimmed).  *user is the current
 * "user" section.  False with why set on a line Mosquitto refuses. */
static bool parse_line(broker_acl *a, char *line, char **user, char *why, size_t cap) {
    char *save = NULL, *word = strtok_r(line, " ", &save);
    if (!word) return true;
    if (strcmp(word, "user") == 0) {
        char *name = strtok_r(NULL, "", &save);
        if (!name) {
            snprintf(why, cap, "missing username");
            return false;
        }
        free(*user);
        if (!(*user = strdup(trim(name)))) goto nomem;
        return true;
    }
    bool pattern = strcmp(word, "pattern") == 0;
    if (!pattern && strcmp(word, "topic") != 0) {
        snprintf(why, cap, "invalid line '%s'", word);
        return false;
    }
    char *access_word = strtok_r(NULL, " ", &save), *topic = strtok_r(NULL, "", &save);
    int access = MOSQ_ACL_READ | MOSQ_ACL_WRITE;
    if (!access_word) {
        snprintf(why, cap, "empty topic");
        return false;
    }
    if (!topic) {
        topic = access_word; /* "topic T": read and write */
    } else if (!access_of(access_word, &access)) {
        snprintf(why, cap, "invalid access type '%s'", access_word);
        return false;
    } else {
        topic = trim(topic);
    }
    if (mosquitto_sub_topic_check(topic) != MOSQ_ERR_SUCCESS) {
        snprintf(why, cap, "invalid topic '%s'", topic);
        return false;
    }
    acl_user *u = pattern ? NULL : user_for(a, *user);
    if ((!pattern && !u) || !add_entry(pattern ? &a->patterns : &u->entries, topic, access))
        goto nomem;
    return true;
nomem:
    snprintf(why, cap, "out of memory");
    return false;
}

static bool parse_file(broker_acl *a, const char *path, char *why, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "cannot read it");
        return false;
    }
    char *line = NULL, *user = NULL;
    size_t line_cap = 0;
    unsigned lineno = 0;
    bool ok = true;
    while (ok && getline(&line, &line_cap, f) >= 0) {
        lineno++;
        size_t n = strlen(line);
        while (n > 0 && isspace((unsigned char)line[n - 1])) line[--n] = '\0';
        if (line[0] == '#') continue;
        char detail[512];
        if (!(ok = parse_line(a, line, &user, detail, sizeof(detail))))
            snprintf(why, cap, "line %u: %s", lineno, detail);
    }
    free(line);
    free(user);
    fclose(f);
    return ok;
}

/* --------------------------------------------------- the configuration */

typedef struct scan {
    struct stat self;        /* aimdb_mosquitto.so */
    bool self_known;
    char acl_file[1024];     /* the last acl_file line, or "" */
    char others[512];        /* the other plugins, comma-separated */
} scan;

/* Is path the object this code runs from? */
static bool is_self(const scan *s, const char *path) {
    struct stat st;
    return s->self_known && stat(path, &st) == 0 && st.st_dev == s->self.st_dev &&
           st.st_ino == s->self.st_ino;
}

static bool scan_line(const char *key, const char *value, void *ctx) {
    scan *s = ctx;
    if (strcmp(key, "acl_file") == 0) {
        snprintf(s->acl_file, sizeof(s->acl_file), "%s", value);
        return true;
    }
    const char *path = NULL;
    if (strcmp(key, "plugin") == 0 || strcmp(key, "auth_plugin") == 0 ||
        strcmp(key, "global_plugin") == 0) {
        path = value;
    } else if (strcmp(key, "plugin_load") == 0) { /* 2.1: plugin_load NAME PATH */
        path = value + strcspn(value, " \t");
        path += strspn(path, " \t");
    }
    if (path && *path && !is_self(s, path)) {
        size_t n = strlen(s->others);
        snprintf(s->others + n, sizeof(s->others) - n, "%s%s", n ? ", " : "", path);
    }
    return true;
}

static void find_self(scan *s) {
    Dl_info info;
    s->self_known = dladdr((void *)find_self, &info) && info.dli_fname &&
                    stat(info.dli_fname, &s->self) == 0;
}

/* What holds on this broker, decided from its configuration. */
static broker_acl *acl_detect(void) {
    broker_acl *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    scan s = {0};
    find_self(&s);
    char bad[512], why[600];
    int rc = broker_conf_each(scan_line, &s, bad, sizeof(bad));
    a->mode = ACL_CLOSED;
    if (rc == BROKER_CONF_UNREADABLE) {
        snprintf(a->what, sizeof(a->what),
                 "cannot read the broker's configuration (%s): every record is hidden from "
                 "every client", bad);
    } else if (*s.others) {
        snprintf(a->what, sizeof(a->what),
                 "the broker also loads %s, whose access decisions a plugin cannot ask for "
                 "(Mosquitto offers no ACL query): every record is hidden from every client",
                 s.others);
    } else if (*s.acl_file && !parse_file(a, s.acl_file, why, sizeof(why))) {
        snprintf(a->what, sizeof(a->what),
                 "acl_file %s: %s: every record is hidden from every client", s.acl_file, why);
    } else if (*s.acl_file) {
        a->mode = ACL_FILE;
        snprintf(a->what, sizeof(a->what),
                 "records are filtered by the broker's acl_file %s, read by aimdb with "
                 "Mosquitto's rules (again on reload)", s.acl_file);
    } else {
        a->mode = ACL_OPEN;
        snprintf(a->what, sizeof(a->what),
                 "the broker has no acl_file and no security plugin: every client may read "
                 "every topic and sees every record");
    }
    return a;
}

bool acl_init(plugin *pl) {
    broker_acl *a = acl_detect();
    if (!a) {
        plugin_log(pl, AIMDB_LOG_ERROR, "ACL: out of memory: every record is hidden");
    } else if (!pl->acl || strcmp(pl->acl->what, a->what) != 0) {
        plugin_log(pl, a->mode == ACL_CLOSED ? AIMDB_LOG_WARNING : AIMDB_LOG_INFO, "ACL: %s",
                   a->what);
    }
    acl_free(pl->acl);
    pl->acl = a;
    pl->acl_generation++; /* every remembered decision is stale (clients.c) */
    return a && a->mode != ACL_CLOSED;
}

void acl_cleanup(plugin *pl) {
    acl_free(pl->acl);
    pl->acl = NULL;
}

/* ------------------------------------------------------------ the check */

/* 2.0's pattern matching: %c and %u replaced in the text, then matched. */
static bool pattern_matches_2_0(const char *pattern, const char *topic, const char *id,
                                const char *username) {
    size_t cap = strlen(pattern) + 1, n = 0;
    for (const char *p = pattern; (p = strchr(p, '%')); p++)
        cap += strlen(id) + (username ? strlen(username) : 0);
    char *text = malloc(cap);
    if (!text) return false;
    for (const char *p = pattern; *p; p++) {
        const char *fill = NULL;
        if (p[0] == '%' && p[1] == 'c') fill = id;
        else if (p[0] == '%' && p[1] == 'u') fill = username;
        if (fill) {
            n += (size_t)sprintf(text + n, "%s", fill);
            p++;
        } else {
            text[n++] = *p;
        }
    }
    text[n] = '\0';
    bool match = false;
    mosquitto_topic_matches_sub(text, topic, &match);
    free(text);
    return match;
}

/* MOSQ_ERR_SUCCESS, MOSQ_ERR_ACL_DENIED, or -1 if no entry matched. */
static int first_match(const plugin *pl, const acl_entry *e, bool patterns, const char *topic,
                       const char *id, const char *username) {
    for (; e; e = e->next) {
        bool match = false;
        if (patterns) {
            if (e->needs_username && !username) continue;
            if (pl->broker.matches_with_pattern) {
                if (pl->broker.matches_with_pattern(e->topic, topic, id, username, &match) !=
                    MOSQ_ERR_SUCCESS)
                    return MOSQ_ERR_ACL_DENIED;
            } else {
                match = pattern_matches_2_0(e->topic, topic, id, username);
            }
        } else {
            if (topic[0] == '$' && e->topic[0] != '$') continue;
            mosquitto_topic_matches_sub(e->topic, topic, &match);
        }
        if (!match) continue;
        if (e->access == MOSQ_ACL_NONE) return MOSQ_ERR_ACL_DENIED;
        if (e->access & MOSQ_ACL_READ) return MOSQ_ERR_SUCCESS;
    }
    return -1;
}

static bool file_allows(const plugin *pl, const broker_acl *a, const char *topic, const char *id,
                        const char *username) {
    const acl_user *u = a->users;
    while (u && !(username ? u->name && strcmp(u->name, username) == 0 : !u->name)) u = u->next;
    int rc = first_match(pl, u ? u->entries : NULL, false, topic, id, username);
    if (rc >= 0) return rc == MOSQ_ERR_SUCCESS;
    if (!a->patterns) return false;
    if ((username && strpbrk(username, "+#")) || strpbrk(id, "+#")) return false;
    return first_match(pl, a->patterns, true, topic, id, username) == MOSQ_ERR_SUCCESS;
}

bool broker_may_read(plugin *pl, struct mosquitto *client, const char *topic) {
    const char *id = mosquitto_client_id(client);
    if (!pl->acl || !id || strncmp(topic, "$share", 6) == 0) return false;
    switch (pl->acl->mode) {
    case ACL_OPEN: return true;
    case ACL_FILE: return file_allows(pl, pl->acl, topic, id, mosquitto_client_username(client));
    default: return false;
    }
}
