/*
 * harness.h -- a real Mosquitto with the real plugin (or without it, for
 * aimdb-bridge and the connector), for integration tests: a temporary
 * directory, a free loopback port, mosquitto.conf and aimdb.conf written
 * there, the broker started and stopped with signals, our own daemons run
 * beside it, and stock command-line tools run with a deadline.
 *
 * The broker is Debian's /usr/sbin/mosquitto, or the binary named by
 * $AIMDB_TEST_MOSQUITTO with its own libmosquitto from
 * $AIMDB_TEST_MOSQUITTO_LIBDIR: a build of the compatibility matrix
 * (tests/plugin/CMakeLists.txt).
 *
 * Everything is bounded in time; a broker that does not start, answer or
 * stop in time fails the test (and is killed).  Built with sanitizers, the
 * broker is started with the ASan runtime preloaded and its log is checked
 * for sanitizer reports when it stops.
 */
#ifndef AIMDB_TEST_HARNESS_H
#define AIMDB_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HARNESS_PATH_MAX 512

typedef struct broker {
    char dir[128];                     /* temporary; removed by broker_cleanup */
    char conf_path[HARNESS_PATH_MAX];  /* dir/mosquitto.conf */
    char aimdb_path[HARNESS_PATH_MAX]; /* dir/aimdb.conf */
    char log_path[HARNESS_PATH_MAX];   /* the broker's stdout and stderr */
    char db_path[HARNESS_PATH_MAX];    /* dir/data/aimdb.db (the tests' default) */
    int port;
    pid_t pid;                         /* 0 when not running */
    bool without_plugin;               /* broker_write_conf leaves the plugin out */
    const char *user;                  /* the broker's `user`; NULL: the current user */
} broker;

/* A loopback port nothing listens on right now (for a second listener). */
int free_port(void);

/* A fresh directory and a free port (no files written yet). */
void broker_init(broker *b);
/* Write aimdb.conf.  NULL text: the default weather rules. */
void broker_write_aimdb(broker *b, const char *text);
/* Write mosquitto.conf: listener, allow_anonymous, user, logging, the
 * plugin with plugin_opt_config (unless without_plugin), then extra lines
 * (may be NULL). */
void broker_write_conf(broker *b, const char *extra);

/* broker_init, the default weather rules, the plugin, started; false (the
 * log dumped) if it did not come up.  The usual fixture. */
bool broker_start_weather(broker *b);

/* broker_init, then a broker without the plugin written and started (for
 * the connector and aimdb-bridge, which bring their own aimdb). */
void broker_start_plain(broker *b);

/* Start and wait (bounded) until it logs that it is running (its signal
 * handlers are then in place) and accepts connections.  False if it exited
 * first (its status in *status if not NULL) or did not come up. */
bool broker_start(broker *b, int *status);
/* SIGTERM and reap; returns the exit status (-1 if it had to be killed).
 * Fails the test on sanitizer reports in the log. */
int broker_stop(broker *b);
/* SIGKILL and reap. */
void broker_kill9(broker *b);
/* Send a signal (e.g. SIGHUP) to the running broker. */
void broker_signal(broker *b, int signo);
/* Stop if running, then remove the directory. */
void broker_cleanup(broker *b);
/* broker_stop then broker_cleanup: 0 if the broker exited cleanly, else -1
 * (what a cmocka group teardown returns). */
int broker_stop_and_clean(broker *b);

/* Does the log contain text?  Waits up to timeout_ms for it to appear. */
bool broker_log_wait(broker *b, const char *text, int timeout_ms);
/* A sanitizer report in the log that involves our code: any ASan or UBSan
 * error, or a leak with a frame in the plugin or libaimdb (Mosquitto
 * itself leaks when a plugin's init fails, which is not ours to fix). */
bool broker_log_blames_us(broker *b);
/* Print the log to stderr (on failure). */
void broker_log_dump(broker *b);

/* A program of ours in the background (aimdb-bridge), started like the
 * broker: stdin from /dev/null, stdout and stderr in DIR/BASENAME.log (new
 * for each start), killed if the test process dies. */
typedef struct daemon_proc {
    pid_t pid; /* 0 once reaped */
    char log_path[HARNESS_PATH_MAX];
} daemon_proc;

/* Start argv[0] (an absolute path) with argv, in dir. */
void daemon_start(daemon_proc *d, const char *dir, char *const argv[]);
/* Its exit status once it exits by itself, or -1 after timeout_ms. */
int daemon_wait_exit(daemon_proc *d, int timeout_ms);
/* Send signo and reap (killed if it does not exit in time; -1 then).  Fails
 * the test on a sanitizer report in its log, which is dumped unless the
 * exit was clean. */
int daemon_stop(daemon_proc *d, int signo);

/* Does a file contain text (in one line)?  The wait variant polls for up to
 * timeout_ms. */
bool file_contains(const char *path, const char *text);
bool file_wait_for(const char *path, const char *text, int timeout_ms);
/* Print a file to stderr (on failure). */
void file_dump(const char *path);

/* Write a file (fails the test on error). */
void write_file(const char *path, const char *text);
/* Copy a file byte for byte (fails the test on error). */
void copy_file(const char *from, const char *to);
/* Do two files hold the same bytes?  False if either cannot be read. */
bool files_equal(const char *a, const char *b);
/* Size of a file; 0 if there is none. */
long long file_size(const char *path);
/* The first entry of dir whose name starts with prefix and ends with
 * suffix, as dir/name in out; false if there is none. */
bool file_find(const char *dir, const char *prefix, const char *suffix, char *out, size_t cap);

/* Run argv (argv[0] a program on PATH) with stdin from /dev/null, capture
 * stdout into out (NUL-terminated, cut to cap), kill it after timeout_ms.
 * Returns its exit status, or -1 if it timed out or could not run. */
int run_tool(char *const argv[], char *out, size_t cap, int timeout_ms);
/* The number the stock sqlite3 tool prints for sql on the database at
 * path (a count, say); -1 if the tool fails. */
long long sql_number(const char *path, const char *sql);

/* Monotonic milliseconds. */
long long now_ms(void);
/* How long to wait for something that takes ms on a normal run: ms times
 * $AIMDB_TEST_TIME_SCALE (set for the tests CTest runs under valgrind,
 * which runs code 20-50 times slower).  Every wait in the tests is a bound
 * on a condition, so a longer one only delays a test that fails anyway. */
int test_wait_ms(int ms);
void sleep_ms(int ms);

#endif
