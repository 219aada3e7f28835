/*
 * test_threads.c -- the plugin's threads stay out of the broker's way
 * (plugin/host.c), read from /proc/<broker>/task while it runs: every
 * aimdb thread blocks the broker's signals and runs at nice +10 relative to
 * the broker, pipeline threads (relay, tap workers, SQLite writer,
 * retention) as normal threads, query threads under SCHED_IDLE, and the
 * broker thread keeps the priority it was started with.
 */
#define _GNU_SOURCE /* SCHED_IDLE */
#include <dirent.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cmocka.h>

#include "harness.h"

typedef struct task {
    pid_t tid;
    char name[32];
    long nice;
    long policy;
    unsigned long long blocked; /* SigBlk: bit n-1 is signal n */
} task;

static bool read_line_of(const char *path, const char *prefix, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool found = false;
    char line[512];
    while (!found && fgets(line, sizeof(line), f))
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            snprintf(out, cap, "%s", line + strlen(prefix));
            found = true;
        }
    fclose(f);
    return found;
}

/* /proc/PID/task/TID/stat: fields after the name in parentheses; nice is
 * field 19 and policy field 41 (proc(5)), i.e. the 17th and 39th after it. */
static bool read_task(pid_t pid, pid_t tid, task *t) {
    char path[96], text[1024], blk[64];
    t->tid = tid;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    if (!read_line_of(path, "", text, sizeof(text))) return false;
    char *open = strchr(text, '('), *close = strrchr(text, ')');
    if (!open || !close) return false;
    snprintf(t->name, sizeof(t->name), "%.*s", (int)(close - open - 1), open + 1);
    char *field = close + 2, *save = NULL;
    long values[40] = {0};
    int n = 0;
    for (char *tok = strtok_r(field, " ", &save); tok && n < 40; tok = strtok_r(NULL, " ", &save))
        values[n++] = strtol(tok, NULL, 10);
    if (n < 40) return false;
    t->nice = values[16];
    t->policy = values[38];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
    if (!read_line_of(path, "SigBlk:", blk, sizeof(blk))) return false;
    t->blocked = strtoull(blk, NULL, 16);
    return true;
}

static size_t read_tasks(pid_t pid, task *out, size_t cap) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < cap;)
        if (e->d_name[0] != '.' && read_task(pid, (pid_t)atoi(e->d_name), &out[n])) n++;
    closedir(d);
    return n;
}

static bool blocks(const task *t, int signo) {
    return (t->blocked >> (signo - 1)) & 1;
}

static const char *say(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *say(char *why, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return why;
}

/* Why the broker's threads are not as they should be, or NULL.  The broker
 * inherits this process's nice; aimdb's threads run 10 above it (at most
 * 19).  Signals are blocked before a thread starts, but a new thread lowers
 * its own priority as its first step, so a thread just started may not
 * have yet. */
static const char *threads_wrong(pid_t pid, char *why, size_t cap) {
    task tasks[64];
    size_t n = read_tasks(pid, tasks, 64), query = 0, pipeline = 0;
    const int broker_signals[] = {SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGRTMIN + 1};
    long started_at = getpriority(PRIO_PROCESS, 0), background = started_at + 10;
    if (background > 19) background = 19;
    for (size_t i = 0; i < n; i++) {
        const task *t = &tasks[i];
        if (t->tid == pid) { /* the broker thread: as started */
            if (t->nice != started_at || t->policy != SCHED_OTHER)
                return say(why, cap, "the broker thread: policy %ld nice %ld", t->policy,
                           t->nice);
            continue;
        }
        if (strncmp(t->name, "aimdb-", 6) != 0) continue;
        for (size_t s = 0; s < sizeof(broker_signals) / sizeof(broker_signals[0]); s++)
            if (!blocks(t, broker_signals[s]))
                return say(why, cap, "%s does not block signal %d", t->name, broker_signals[s]);
        bool is_query = strcmp(t->name, "aimdb-query") == 0;
        if (t->nice != background || t->policy != (is_query ? SCHED_IDLE : SCHED_OTHER))
            return say(why, cap, "%s: policy %ld nice %ld", t->name, t->policy, t->nice);
        if (is_query) query++;
        else pipeline++;
    }
    /* the relay, a tap worker and the writer at least; a query thread */
    if (query < 1 || pipeline < 3)
        return say(why, cap, "%zu query and %zu pipeline threads", query, pipeline);
    return NULL;
}

static void test_threads_yield_to_the_broker(void **state) {
    (void)state;
    broker b;
    assert_true(broker_start_weather(&b));
    char why[160];
    const char *wrong = threads_wrong(b.pid, why, sizeof(why));
    for (long long end = now_ms() + 5000; wrong && now_ms() < end; sleep_ms(50))
        wrong = threads_wrong(b.pid, why, sizeof(why));
    if (wrong) fail_msg("%s", wrong);
    assert_int_equal(broker_stop(&b), 0);
    broker_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_yield_to_the_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
