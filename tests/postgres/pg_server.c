/*
 * pg_server.c -- a throw-away PostgreSQL cluster per test program (see
 * pg_server.h).  initdb and pg_ctl run as child processes with a deadline;
 * the server itself is pg_ctl's child, found again through its data
 * directory for stop and restart.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "harness.h"
#include "pg_server.h"

#define TOOL_TIMEOUT_S 60
#define PG_USER "postgres"

/* Servers still running when the process exits (a failed assertion ends
 * a cmocka group without its teardown). */
#define MAX_SERVERS 4
static pg_server *live[MAX_SERVERS];

static bool find_bin(char *out, size_t cap) {
    glob_t g;
    bool found = false;
    if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        /* The highest version: glob sorts, and versions share a width. */
        snprintf(out, cap, "%s", g.gl_pathv[g.gl_pathc - 1]);
        char *slash = strrchr(out, '/');
        *slash = '\0';
        found = true;
    }
    globfree(&g);
    return found;
}

bool pg_server_available(void) {
    char bin[256];
    return find_bin(bin, sizeof(bin)) && (geteuid() != 0 || getpwnam(PG_USER) != NULL);
}

void pg_server_start_if_installed(pg_server *s) {
    if (pg_server_available()) pg_server_start(s);
    else fprintf(stderr, "no PostgreSQL server package (postgresql): skipped\n");
}

/* As root, become the postgres user (the server refuses to run as root). */
static void drop_root(void) {
    if (geteuid() != 0) return;
    struct passwd *pw = getpwnam(PG_USER);
    if (!pw || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
        _exit(126);
}

/* Run bin/tool with args (NULL-terminated) as the cluster's user, output
 * appended to dir/tools.log; its exit status, -1 after TOOL_TIMEOUT_S. */
static int run_pg_tool(pg_server *s, const char *tool, ...) {
    char path[320], log[320];
    snprintf(path, sizeof(path), "%s/%s", s->bin, tool);
    snprintf(log, sizeof(log), "%s/tools.log", s->dir);
    char *argv[24] = {path};
    va_list ap;
    va_start(ap, tool);
    size_t n = 1;
    while (n < 23 && (argv[n] = va_arg(ap, char *)) != NULL) n++;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDONLY);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        if (null >= 0) dup2(null, 0);
        drop_root();
        execv(path, argv);
        _exit(127);
    }
    long long deadline = now_ms() + TOOL_TIMEOUT_S * 1000LL;
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_ms(20);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void remember(pg_server *s, bool on) {
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (on && !live[i]) {
            live[i] = s;
            return;
        }
        if (!on && live[i] == s) live[i] = NULL;
    }
}

static void stop_all_at_exit(void) {
    for (size_t i = 0; i < MAX_SERVERS; i++)
        if (live[i]) pg_server_cleanup(live[i]);
}

static void start_server(pg_server *s) {
    char data[200], opts[400];
    snprintf(data, sizeof(data), "%s/data", s->dir);
    /* fsync off: a test cluster need not survive power loss, and the
     * machine is shared.  The socket directory is the cluster's own. */
    snprintf(opts, sizeof(opts),
             "-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c synchronous_commit=off "
             "-c full_page_writes=off",
             s->port, s->dir);
    int rc = run_pg_tool(s, "pg_ctl", "-D", data, "-l", s->log_path, "-o", opts, "-w", "-t",
                         "30", "start", (char *)NULL);
    if (rc != 0) {
        pg_server_log_dump(s);
        fail_msg("pg_ctl start failed (%d)", rc);
    }
    s->running = true;
}

void pg_server_start(pg_server *s) {
    static bool hooked;
    if (!hooked) atexit(stop_all_at_exit), hooked = true;
    memset(s, 0, sizeof(*s));
    assert_true(find_bin(s->bin, sizeof(s->bin)));
    snprintf(s->dir, sizeof(s->dir), "/tmp/aimdb-pg-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(PG_USER);
        assert_non_null(pw);
        assert_int_equal(chown(s->dir, pw->pw_uid, pw->pw_gid), 0);
    }
    snprintf(s->log_path, sizeof(s->log_path), "%s/server.log", s->dir);
    s->port = free_port();
    snprintf(s->uri, sizeof(s->uri), "postgresql://" PG_USER "@127.0.0.1:%d/postgres", s->port);
    remember(s, true);
    char data[200];
    snprintf(data, sizeof(data), "%s/data", s->dir);
    /* Trust on loopback only (initdb's -A covers local and host lines,
     * and the server listens on 127.0.0.1 alone); C collation and UTF-8,
     * as the schema's COLLATE "C" text expects. */
    int rc = run_pg_tool(s, "initdb", "-D", data, "-A", "trust", "-U", PG_USER, "-E", "UTF8",
                         "--locale=C", "--no-sync", (char *)NULL);
    if (rc != 0) {
        char log[320];
        snprintf(log, sizeof(log), "%s/tools.log", s->dir);
        file_dump(log);
        fail_msg("initdb failed (%d)", rc);
    }
    start_server(s);
}

void pg_server_stop(pg_server *s) {
    if (!s->running) return;
    char data[200];
    snprintf(data, sizeof(data), "%s/data", s->dir);
    int rc = run_pg_tool(s, "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop",
                         (char *)NULL);
    s->running = false;
    if (rc != 0) {
        pg_server_log_dump(s);
        fail_msg("pg_ctl stop failed (%d)", rc);
    }
}

void pg_server_restart(pg_server *s) {
    pg_server_stop(s);
    start_server(s);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void pg_server_cleanup(pg_server *s) {
    if (!s->dir[0]) return;
    if (s->running) {
        char data[200];
        snprintf(data, sizeof(data), "%s/data", s->dir);
        /* Immediate: nothing to keep, and a stuck client must not hold it. */
        run_pg_tool(s, "pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop",
                    (char *)NULL);
        s->running = false;
    }
    nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    remember(s, false);
    s->dir[0] = '\0';
}

void pg_server_log_dump(const pg_server *s) { file_dump(s->log_path); }

/* ------------------------------------------------------------ queries */

static void quiet(void *arg, const char *message) { (void)arg, (void)message; }

static PGresult *run_sql(const pg_server *s, const char *sql, PGconn **conn) {
    *conn = PQconnectdb(s->uri);
    if (PQstatus(*conn) != CONNECTION_OK) fail_msg("connect %s: %s", s->uri, PQerrorMessage(*conn));
    PQsetNoticeProcessor(*conn, quiet, NULL); /* "does not exist, skipping" */
    PGresult *r = PQexec(*conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(*conn));
    return r;
}

bool pg_query_text(const pg_server *s, const char *sql, char *out, size_t cap) {
    PGconn *conn;
    PGresult *r = run_sql(s, sql, &conn);
    bool found = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0);
    if (found) snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(conn);
    return found;
}

int64_t pg_query_int(const pg_server *s, const char *sql) {
    char text[64];
    if (!pg_query_text(s, sql, text, sizeof(text))) return -1;
    return strtoll(text, NULL, 10);
}

void pg_exec(const pg_server *s, const char *sql) {
    PGconn *conn;
    PQclear(run_sql(s, sql, &conn));
    PQfinish(conn);
}

/* pg_query_int that says -2 instead of failing (no table yet, no server). */
static int64_t try_query_int(const pg_server *s, const char *sql) {
    PGconn *c = PQconnectdb(s->uri);
    int64_t v = -2;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            v = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

int64_t pg_wait_int(const pg_server *s, const char *sql, int64_t want, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    int64_t v;
    while ((v = try_query_int(s, sql)) < want && now_ms() < deadline) sleep_ms(50);
    return v;
}

pg_server pg_test_server;

int pg_test_server_setup(void **state) {
    (void)state;
    pg_server_start_if_installed(&pg_test_server);
    return 0;
}

int pg_test_server_teardown(void **state) {
    (void)state;
    pg_server_cleanup(&pg_test_server);
    return 0;
}

int pg_test_fresh_history(void **state) {
    (void)state;
    if (!pg_test_server.running) skip();
    pg_exec(&pg_test_server, "DROP TABLE IF EXISTS record_history");
    return 0;
}

const char *pg_unindexable_name(void) {
    static char name[6001];
    uint32_t x = 2463534242u; /* xorshift32: the same name every run */
    for (size_t i = 0; i + 1 < sizeof(name); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        name[i] = "0123456789abcdef"[x & 15];
    }
    return name;
}
