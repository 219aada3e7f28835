/*
 * tools_run.c -- running the tools under test (see tools_run.h).
 *
 * The harness's run_tool captures stdout only; the tools' error messages
 * go to stderr and are part of what is tested, hence this runner: two
 * pipes read with poll until both close or the deadline passes.
 */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "tools_run.h"

#define MAX_ARGS 64

static void exec_tool(const char *program, const char *const *args) {
    char *argv[MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = (char *)program;
    for (size_t i = 0; args[i] && n <= MAX_ARGS; i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;
    execv(program, argv);
    _exit(127);
}

typedef struct sink {
    int fd;
    char *buf;
    size_t cap, len;
} sink;

/* Read what is there; false once the pipe is closed. */
static bool drain(sink *s) {
    char chunk[4096];
    ssize_t r = read(s->fd, chunk, sizeof(chunk));
    if (r <= 0) return false;
    size_t take = (size_t)r < s->cap - 1 - s->len ? (size_t)r : s->cap - 1 - s->len;
    memcpy(s->buf + s->len, chunk, take);
    s->len += take;
    s->buf[s->len] = '\0';
    return true;
}

/* The exit status once pid exits within timeout_ms, else -1 (killed). */
static int wait_or_kill(pid_t pid, int timeout_ms) {
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int st;
    for (;;) {
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (now_ms() >= deadline) break;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

int tool_run(const char *program, const char *const *args, int timeout_ms, tool_result *r) {
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    long long start = now_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        exec_tool(program, args);
    }
    close(out[1]);
    close(err[1]);
    sink sinks[2] = {{out[0], r->out, sizeof(r->out), 0}, {err[0], r->err, sizeof(r->err), 0}};
    r->out[0] = r->err[0] = '\0';
    bool open_[2] = {true, true};
    long long deadline = start + timeout_ms;
    while ((open_[0] || open_[1]) && now_ms() < deadline) {
        struct pollfd p[2] = {{open_[0] ? out[0] : -1, POLLIN, 0}, {open_[1] ? err[0] : -1, POLLIN, 0}};
        if (poll(p, 2, (int)(deadline - now_ms())) <= 0) continue;
        for (int i = 0; i < 2; i++)
            if (p[i].revents && !drain(&sinks[i])) open_[i] = false;
    }
    close(out[0]);
    close(err[0]);
    r->status = wait_or_kill(pid, (int)(deadline - now_ms()));
    r->elapsed_ms = now_ms() - start;
    return r->status;
}

int tool_run_on(const char *program, const char *url, int timeout_ms, tool_result *r,
                const char *a0, va_list more) {
    const char *args[40] = {"--broker", url};
    size_t n = 2;
    for (const char *a = a0; a && n < 39; a = va_arg(more, const char *)) args[n++] = a;
    args[n] = NULL;
    int st = tool_run(program, args, timeout_ms, r);
    if (st != 0) {
        const char *base = strrchr(program, '/');
        fprintf(stderr, "%s exited %d; stderr: %s", base ? base + 1 : program, st, r->err);
    }
    return st;
}

void tool_broker_url(int port, char *out, size_t cap) {
    snprintf(out, cap, "mqtt://127.0.0.1:%d", port);
}

