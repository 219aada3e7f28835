/*
 * host.c -- the runtime libaimdb runs on inside Mosquitto.
 *
 * What differs from the default pthread runtime:
 *
 *   Threads block every signal.  The broker handles SIGINT/TERM/HUP/USR1/2
 *   with flags its loop checks; a process signal delivered to one of our
 *   threads instead would leave the broker asleep for up to 100 ms, and our
 *   wake-up signal (wake.c) must reach the broker thread only.
 *
 *   Threads run at a lower priority (BACKGROUND_NICE above the broker
 *   thread's nice, at most 19: relative, so a broker started at nice 15
 *   does not get aimdb threads that outrank it).  The broker
 *   thread serves every client; when CPUs are scarce, a query thread woken
 *   by a request must not preempt it for a whole time slice (measured:
 *   ping latency through the broker rose by ~4 ms at p99 while latest-1
 *   queries ran, on 2 busy cores).  Queues between the threads give
 *   back-pressure, so background work waits rather than starves.
 *
 *   Query threads (AIMDB_THREAD_QUERY) go further, to SCHED_IDLE: they never
 *   preempt a normal thread on wake-up and run on CPU time nobody else
 *   wants.  Even at nice +10 a 2.5 ms latest-1 `*` query stalled pings
 *   through the broker by +2.0 to +2.4 ms at p99; under SCHED_IDLE +0.7 ms,
 *   while latest-1 `*` on an idle broker went from 2.6 to 3-4 ms p50
 *   (bench_plugin --queries).  The price: on a broker that keeps every CPU
 *   busy for long, history queries wait until it lets up.  Pipeline threads
 *   (relay, tap workers, writer, retention) stay at nice +10: they must keep
 *   pace.
 *
 *   Blocks the broker thread made and an aimdb thread is done with (a
 *   query's copies) are freed back on the broker thread (host_release).
 *
 *   Logs go to the broker's log, which is not thread-safe (with
 *   `log_dest topic` it even publishes).  On the broker thread a line is
 *   logged at once; from any other thread it is queued in the outbox and
 *   logged at the next tick.  The queue is bounded: past LOG_BACKLOG lines
 *   waiting, lines are counted and dropped, and the count is logged.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "plugin.h"

#define LOG_BACKLOG 4096
#define BACKGROUND_NICE 10
#define MAX_NICE 19
#define LOG_LINE_MAX 1024

static _Atomic uint64_t logs_dropped;

bool on_broker_thread(const plugin *pl) {
    return pthread_equal(pthread_self(), pl->broker_thread);
}

static int broker_level(aimdb_log_level level) {
    switch (level) {
    case AIMDB_LOG_DEBUG: return MOSQ_LOG_DEBUG;
    case AIMDB_LOG_INFO: return MOSQ_LOG_INFO;
    case AIMDB_LOG_WARNING: return MOSQ_LOG_WARNING;
    default: return MOSQ_LOG_ERR;
    }
}

typedef struct log_item {
    outbox_item item;
    aimdb_log_level level;
    char text[];
} log_item;

static void report_dropped(void) {
    uint64_t n = atomic_exchange(&logs_dropped, 0);
    if (n)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "aimdb: %llu log lines dropped (log backlog full)",
                             (unsigned long long)n);
}

/* Log lines are written even at shutdown: they are the last word on what
 * the stop did. */
static void deliver_log(outbox_item *item, plugin *pl, bool broker_alive) {
    (void)pl;
    (void)broker_alive;
    log_item *l = (log_item *)item;
    report_dropped();
    mosquitto_log_printf(broker_level(l->level), "aimdb: %s", l->text);
    free(l);
}

static void host_log(void *self, aimdb_log_level level, const char *fmt, va_list ap) {
    plugin *pl = self;
    char line[LOG_LINE_MAX];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (on_broker_thread(pl)) {
        report_dropped();
        mosquitto_log_printf(broker_level(level), "aimdb: %s", line);
        return;
    }
    size_t len = strlen(line);
    log_item *l = outbox_depth(&pl->outbox) < LOG_BACKLOG ? malloc(sizeof(*l) + len + 1) : NULL;
    if (!l) {
        atomic_fetch_add(&logs_dropped, 1);
        return;
    }
    l->item.deliver = deliver_log;
    l->level = level;
    memcpy(l->text, line, len + 1);
    outbox_push(pl, &l->item, false);
}

/* A block from the broker thread, back from an aimdb thread to be freed
 * where it was made.  glibc frees a block into the arena it came from,
 * under that arena's lock, and the broker thread allocates from the main
 * arena all the time: a query thread freeing a request's copy there held
 * the lock it needed, and under SCHED_IDLE could be preempted holding it
 * (3,398 waits of the broker thread in 28 s of request floods, up to
 * 0.47 ms each: perf trace).  So the block rides the outbox, its first
 * bytes reused as the item, and is freed on the next tick. */
static void deliver_free(outbox_item *item, plugin *pl, bool broker_alive) {
    (void)pl;
    (void)broker_alive;
    free(item);
}

static void host_release(void *self, void *block) {
    plugin *pl = self;
    if (on_broker_thread(pl)) {
        free(block);
        return;
    }
    _Static_assert(sizeof(outbox_item) <= 4 * sizeof(void *), "runtime.h promises 4 pointers");
    outbox_item *item = block;
    item->deliver = deliver_free;
    outbox_push(pl, item, false);
}

typedef struct background {
    void *(*fn)(void *);
    void *arg;
    int nice;
    bool idle;
} background;

static void *run_in_background(void *arg) {
    background b = *(background *)arg;
    free(arg);
    /* Linux nice is per thread; failure only costs latency, never work. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), b.nice);
    if (b.idle) {
        struct sched_param none = {0};
        (void)sched_setscheduler(0, SCHED_IDLE, &none); /* this thread only */
    }
    return b.fn(b.arg);
}

static int host_spawn(void *self, const char *name, aimdb_thread_kind kind, void *(*fn)(void *),
                      void *arg, aimdb_thread **out) {
    plugin *pl = self;
    const aimdb_runtime *base = aimdb_runtime_pthread();
    background *b = malloc(sizeof(*b));
    if (!b) return -1;
    int nice = pl->broker_nice + BACKGROUND_NICE;
    *b = (background){fn, arg, nice < MAX_NICE ? nice : MAX_NICE, kind == AIMDB_THREAD_QUERY};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* inherited by the new thread */
    int rc = base->spawn(base->self, name, kind, run_in_background, b, out);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) free(b);
    return rc;
}

static void host_join(void *self, aimdb_thread *t) {
    (void)self;
    const aimdb_runtime *base = aimdb_runtime_pthread();
    base->join(base->self, t);
}

static int64_t host_now_ms(void *self) {
    (void)self;
    const aimdb_runtime *base = aimdb_runtime_pthread();
    return base->now_ms(base->self);
}

static void host_sleep_ms(void *self, int64_t ms) {
    (void)self;
    const aimdb_runtime *base = aimdb_runtime_pthread();
    base->sleep_ms(base->self, ms);
}

void host_runtime_init(plugin *pl) {
    pl->broker_nice = getpriority(PRIO_PROCESS, 0); /* this thread's: the broker's */
    pl->runtime = (aimdb_runtime){
        .spawn = host_spawn,
        .join = host_join,
        .now_ms = host_now_ms,
        .sleep_ms = host_sleep_ms,
        .log = host_log,
        .release = host_release,
        .self = pl,
    };
}

void plugin_log(plugin *pl, aimdb_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    host_log(pl, level, fmt, ap);
    va_end(ap);
}
