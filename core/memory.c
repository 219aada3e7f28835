/*
 * memory.c -- the budget for the bytes a database holds for values
 * (aimdb_db_options.max_memory), so that a gateway's memory stays bounded
 * however large or many the values devices send.
 *
 * Record buffers and relay backlogs share three quarters of it, counted in
 * `held`: every byte a buffer allocates for values (slot arrays, value
 * bytes) and every payload a relay copies and has not produced yet is
 * added, and taken off when freed.  A produce that leaves `held` above the
 * limit makes live values give way, oldest first: the producing record's
 * own oldest values (the record that needs room pays first), then, if that
 * is not enough, the oldest values of the other records in turn (a clock
 * hand over the registry, a few records per produce, so no produce does
 * work that grows with the number of records).  New values are never
 * refused for memory: they displace old ones.  A record always keeps its
 * newest value (record.get answers it), and a value some tap has not read
 * yet stays: history gets every value (those bytes are bounded by the
 * ring's own capacity, as before).  Values that gave way are counted
 * (aimdb_db_memory_stats) and logged, rate-limited.
 *
 * A relay refuses a push only once its backlog alone holds the whole
 * share (relay.c): a relay that far behind has no CPU, and no queue fixes
 * that.  The last quarter is the history write queue's, bounded by whoever
 * opens the backend (the gateway gives SQLite's queue that many bytes; a
 * full queue makes the persist tap wait while its values wait, unread and
 * so kept, in their record's buffer).
 */
#include <stdint.h>

#include "core_internal.h"

#define GIVE_WAY_LOG_INTERVAL_MS 10000

void aimdb_memory_init(aimdb_memory *m, size_t max_memory) {
    m->limit = max_memory ? max_memory / 4 * 3 : SIZE_MAX;
    m->relay_limit = max_memory ? m->limit : AIMDB_RELAY_DEFAULT_LIMIT;
    atomic_init(&m->held, 0);
    atomic_init(&m->gave_way, 0);
    atomic_init(&m->hand, 0);
    pthread_mutex_init(&m->log_lock, NULL);
    m->log = (aimdb_log_limit){0};
}

void aimdb_memory_destroy(aimdb_memory *m) { pthread_mutex_destroy(&m->log_lock); }

void aimdb_memory_gave_way(aimdb_memory *m, const aimdb_runtime *rt, uint64_t values) {
    if (!values) return;
    uint64_t total = atomic_fetch_add_explicit(&m->gave_way, values, memory_order_relaxed) + values;
    uint64_t held;
    pthread_mutex_lock(&m->log_lock);
    bool pass = aimdb_log_limit_pass(&m->log, aimdb_monotonic_ms(), GIVE_WAY_LOG_INTERVAL_MS,
                                     &held);
    pthread_mutex_unlock(&m->log_lock);
    if (pass)
        aimdb_log(rt, AIMDB_LOG_WARNING,
                  "max_memory: live values hold %zu of their %zu bytes; the oldest give way "
                  "(%llu so far; history is not affected)",
                  atomic_load_explicit(&m->held, memory_order_relaxed), m->limit,
                  (unsigned long long)total);
}
