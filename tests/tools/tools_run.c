/*
 * tools_run.c -- running the tools under test (see tools_run.h).
 *
 * The harness's run_tool captures stdout only; the tools' error messages
 * go to stderr and are part of what is tested, hence this runner: two
 * pipes read with poll until both close or the deadline passes.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    r->status = tool_wait(pid, (int)(deadline - now_ms()));
    r->elapsed_ms = now_ms() - start;
    return r->status;
}

pid_t tool_spawn(const char *program, const char *const *args, const char *dir) {
    char out_path[HARNESS_PATH_MAX], err_path[HARNESS_PATH_MAX];
    snprintf(out_path, sizeof(out_path), "%s/tool.out", dir);
    snprintf(err_path, sizeof(err_path), "%s/tool.err", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(null, 0);
        dup2(o, 1);
        dup2(e, 2);
        exec_tool(program, args);
    }
    return pid;
}

int tool_wait(pid_t pid, int timeout_ms) {
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

void tool_broker_url(int port, char *out, size_t cap) {
    snprintf(out, cap, "mqtt://127.0.0.1:%d", port);
}

int tool_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
