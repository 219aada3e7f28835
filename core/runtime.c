/*
 * runtime.c -- the default runtime: pthreads, the system clocks, stderr.
 *
 * Everything in the core that starts a thread, reads the time or logs goes
 * through an aimdb_runtime, so embedders can substitute their own; this is
 * the implementation used when they do not.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aimdb/runtime.h"

struct aimdb_thread {
    pthread_t id;
};

static int pthread_spawn(void *self, const char *name, aimdb_thread_kind kind,
                         void *(*fn)(void *), void *arg, aimdb_thread **out) {
    (void)self;
    (void)kind;
    aimdb_thread *t = malloc(sizeof(*t));
    if (!t) return -1;
    if (pthread_create(&t->id, NULL, fn, arg) != 0) {
        free(t);
        return -1;
    }
    if (name) {
        /* Linux limits thread names to 15 characters; a longer one is cut,
         * never an error, since the name only helps top and gdb. */
        char short_name[16];
        snprintf(short_name, sizeof(short_name), "%s", name);
        pthread_setname_np(t->id, short_name);
    }
    *out = t;
    return 0;
}

static void pthread_join_and_free(void *self, aimdb_thread *t) {
    (void)self;
    pthread_join(t->id, NULL);
    free(t);
}

static int64_t realtime_ms(void *self) {
    (void)self;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nanosleep_ms(void *self, int64_t ms) {
    (void)self;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void stderr_log(void *self, aimdb_log_level level, const char *fmt, va_list ap) {
    (void)self;
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level < AIMDB_LOG_INFO) return;
    /* One fprintf per line keeps lines from different threads whole. */
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "aimdb %s: %s\n", names[level], line);
}

static const aimdb_runtime pthread_runtime = {
    .spawn = pthread_spawn,
    .join = pthread_join_and_free,
    .now_ms = realtime_ms,
    .sleep_ms = nanosleep_ms,
    .log = stderr_log,
    .self = NULL,
};

const aimdb_runtime *aimdb_runtime_pthread(void) { return &pthread_runtime; }

void aimdb_log(const aimdb_runtime *rt, aimdb_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rt->log(rt->self, level, fmt, ap);
    va_end(ap);
}

void aimdb_release_block(const aimdb_runtime *rt, void *block) {
    if (rt->release)
        rt->release(rt->self, block);
    else
        free(block);
}

int64_t aimdb_monotonic_ms(void) {
    return aimdb_monotonic_us() / 1000;
}

int64_t aimdb_monotonic_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void aimdb_cond_init_monotonic(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

struct timespec aimdb_monotonic_deadline(int64_t at_ms) {
    return (struct timespec){.tv_sec = (time_t)(at_ms / 1000),
                             .tv_nsec = (long)(at_ms % 1000) * 1000000L};
}

struct timespec aimdb_monotonic_deadline_in(int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}
