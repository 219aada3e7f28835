/*
 * tools_run.h -- running the built `aimdb` and `aimdb-mcu-sim` binaries in
 * the tools' integration tests, with stdout and stderr kept apart, so a
 * test can check both what a program answers and what it says is wrong.
 */
#ifndef AIMDB_TOOLS_RUN_H
#define AIMDB_TOOLS_RUN_H

#include <stdarg.h>
#include <stddef.h>

#define TOOL_OUT_MAX 65536

typedef struct tool_result {
    int status;            /* exit status; -1 if killed at the deadline or by a signal */
    long long elapsed_ms;
    char out[TOOL_OUT_MAX]; /* stdout, NUL-terminated (cut to fit) */
    char err[8192];        /* stderr, NUL-terminated (cut to fit) */
} tool_result;

/* Run program with the NULL-terminated args (argv[1..]), stdin from
 * /dev/null, kill it after timeout_ms.  r is filled; returns r->status. */
int tool_run(const char *program, const char *const *args, int timeout_ms, tool_result *r);

/* tool_run with the args "--broker", url, then a0... up to a NULL; on a
 * non-zero exit the status and stderr are printed (the test's log). */
int tool_run_on(const char *program, const char *url, int timeout_ms, tool_result *r,
                const char *a0, va_list more);

/* "mqtt://127.0.0.1:PORT" into out. */
void tool_broker_url(int port, char *out, size_t cap);

#endif
