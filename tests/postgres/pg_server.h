/*
 * pg_server.h -- a real PostgreSQL server for the tests: Debian's
 * `postgresql` package (initdb and pg_ctl from /usr/lib/postgresql/N/bin),
 * a cluster in a temporary directory, listening on a free 127.0.0.1 port
 * with trust authentication on loopback only (no password exists to leak),
 * run as the `postgres` user when the tests run as root (PostgreSQL refuses
 * to run as root).  Stopped and removed by pg_server_cleanup, also at exit
 * if a test failed on the way.
 *
 * Every wait is bounded: initdb, start and stop each have a deadline
 * (pg_ctl -w -t), and a server that misses one fails the test.
 */
#ifndef AIMDB_TEST_PG_SERVER_H
#define AIMDB_TEST_PG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pg_server {
    char dir[128];       /* temporary; the cluster is dir/data */
    char bin[256];       /* the package's bin directory */
    char log_path[320];  /* the server's log */
    char uri[256];       /* postgresql://postgres@127.0.0.1:PORT/postgres */
    int port;
    bool running;
} pg_server;

/* Is Debian's server installed?  Tests skip (with a message) when not. */
bool pg_server_available(void);

/* Create the cluster and start it; fails the test if it does not come up. */
void pg_server_start(pg_server *s);
/* The same when the server is installed; else says the tests are skipped
 * and leaves s not running (the tests then skip). */
void pg_server_start_if_installed(pg_server *s);
/* Stop (fast shutdown: clients disconnected) and start again on the same
 * port and data: an outage.  Both bounded. */
void pg_server_stop(pg_server *s);
void pg_server_restart(pg_server *s);
/* Stop if running, remove the directory. */
void pg_server_cleanup(pg_server *s);
/* Print the server's log to stderr (on failure). */
void pg_server_log_dump(const pg_server *s);

/* Run SQL on the server (its own connection) and return the first column
 * of the first row as an integer; fails the test on error.  NULL: -1. */
int64_t pg_query_int(const pg_server *s, const char *sql);
/* The same, the value as text into out (NUL-terminated, cut to cap); false
 * if there is no row or the value is NULL. */
bool pg_query_text(const pg_server *s, const char *sql, char *out, size_t cap);
/* Run SQL that returns nothing of interest; fails the test on error. */
void pg_exec(const pg_server *s, const char *sql);
/* Wait (bounded) until pg_query_int(sql) >= want; the last value seen. */
int64_t pg_wait_int(const pg_server *s, const char *sql, int64_t want, int timeout_ms);

/* A record name no btree index entry can hold (PostgreSQL's limit is about
 * 2,700 bytes after compression; these 6,000 pseudo-random hex digits do
 * not compress).  Static storage. */
const char *pg_unindexable_name(void);

/* The server a test program's tests share, with its cmocka fixtures:
 * group setup starts it (or says the tests are skipped), group teardown
 * stops and removes it; a test's setup skips the test without a server,
 * else drops record_history so that the test starts on an empty database. */
extern pg_server pg_test_server;
int pg_test_server_setup(void **state);
int pg_test_server_teardown(void **state);
int pg_test_fresh_history(void **state);

#endif
