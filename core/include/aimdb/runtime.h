/*
 * runtime.h -- the few services libaimdb needs from its host.
 *
 * The core never calls pthread_create, clock_gettime or a logger directly: it
 * goes through this vtable so an embedder (a broker plugin, a daemon, a test)
 * can route logs into its own log and, if it must, run workers on its own
 * threads.  aimdb_runtime_pthread() is the ready-made implementation.
 */
#ifndef AIMDB_RUNTIME_H
#define AIMDB_RUNTIME_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aimdb_log_level {
    AIMDB_LOG_DEBUG,
    AIMDB_LOG_INFO,
    AIMDB_LOG_WARNING,
    AIMDB_LOG_ERROR
} aimdb_log_level;

typedef struct aimdb_thread aimdb_thread; /* opaque, owned by the runtime */

/* What a thread is for, so that a host sharing the machine with more
 * important work (a broker) can schedule it.  The default runtime ignores it. */
typedef enum aimdb_thread_kind {
    AIMDB_THREAD_PIPELINE, /* moves values along (relay, tap workers, SQLite writer,
                            * retention, a connector's session): must keep pace */
    AIMDB_THREAD_QUERY     /* answers history requests: may wait for spare CPU */
} aimdb_thread_kind;

typedef struct aimdb_runtime {
    /* Start fn(arg) on a new thread named name (for top and gdb).  Returns 0
     * and sets *out, or -1. */
    int (*spawn)(void *self, const char *name, aimdb_thread_kind kind, void *(*fn)(void *),
                 void *arg, aimdb_thread **out);
    /* Wait for a spawned thread to return and release its handle. */
    void (*join)(void *self, aimdb_thread *thread);
    /* Wall-clock time in Unix milliseconds (the timestamp every value carries). */
    int64_t (*now_ms)(void *self);
    void (*sleep_ms)(void *self, int64_t ms);
    /* Must be safe to call from any thread. */
    void (*log)(void *self, aimdb_log_level level, const char *fmt, va_list ap);
    /* Free a block that a caller's thread malloc'd and handed to libaimdb (a
     * query's copy), from the aimdb thread done with it; the block is at
     * least 4 pointers long and the host may use those bytes.  NULL: free()
     * at once.  A host whose calling thread must never wait on a malloc lock
     * held by an aimdb thread gives the block back to that thread to free
     * (plugin/host.c says why). */
    void (*release)(void *self, void *block);
    void *self;
} aimdb_runtime;

/* The default runtime: pthreads, CLOCK_REALTIME, logs to stderr at INFO and
 * above.  Static storage; never freed. */
const aimdb_runtime *aimdb_runtime_pthread(void);

/* printf-style helper over rt->log. */
void aimdb_log(const aimdb_runtime *rt, aimdb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* block freed through rt->release, or free() when the runtime has none.
 * Any thread. */
void aimdb_release_block(const aimdb_runtime *rt, void *block);

/* Monotonic milliseconds and microseconds, for deadlines and intervals
 * (never for timestamps).  Any thread. */
int64_t aimdb_monotonic_ms(void);
int64_t aimdb_monotonic_us(void);

/* Initialise cond so that its timed waits run on the monotonic clock: a
 * wall-clock step then neither stalls nor hurries them.  Every condition
 * with a timed wait is made this way; destroy with pthread_cond_destroy. */
void aimdb_cond_init_monotonic(pthread_cond_t *cond);

/* Deadlines for pthread_cond_timedwait on such a condition: the instant
 * at_ms of aimdb_monotonic_ms(), or ms from now (to the nanosecond).  Pure
 * arithmetic over the clock; any thread. */
struct timespec aimdb_monotonic_deadline(int64_t at_ms);
struct timespec aimdb_monotonic_deadline_in(int64_t ms);

/*
 * Rate-limit a repeating log line: returns true at most once per
 * interval_ms (and the first time); *held (may be NULL) gets the number of
 * calls suppressed since the last true.  Zero-initialise.  Not
 * thread-safe: keep one per thread or guard it.
 */
typedef struct aimdb_log_limit {
    int64_t next_ms;
    uint64_t held;
    bool started;
} aimdb_log_limit;
bool aimdb_log_limit_pass(aimdb_log_limit *l, int64_t now_ms, int64_t interval_ms,
                          uint64_t *held);

#ifdef __cplusplus
}
#endif
#endif
