/*
 * persist_tap.c -- the tap that turns a persisted record's values into rows.
 *
 * It runs on the core's worker pool, never on the producer's thread, so the
 * work done here (JSON encoding, and waiting when the backend's queue is
 * full) shows up as tap lag, never as a slower producer.  The row's time is
 * the value's produce time, not the time this tap happens to run.
 *
 * Steady state allocates nothing: the JSON goes into a per-tap scratch
 * buffer that grows to the largest value's up to 64 KiB (larger ones are
 * freed after use), and the backend copies the row into its own
 * preallocated queue.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "persist_internal.h"

#define LOG_INTERVAL_MS 10000
#define SCRATCH_KEEP_BYTES (64 * 1024)

/* The value's JSON in t->scratch; its length, or -1 if it has none. */
static long encode(persist_tap *t, const aimdb_value *v) {
    const aimdb_codec *codec = aimdb_record_codec(t->rec);
    long n = codec->to_json(v->data, v->len, t->scratch, t->scratch_cap);
    if (n < 0 || (size_t)n < t->scratch_cap) return n;
    char *grown = realloc(t->scratch, (size_t)n + 1);
    if (!grown) return -1;
    t->scratch = grown;
    t->scratch_cap = (size_t)n + 1;
    return codec->to_json(v->data, v->len, t->scratch, t->scratch_cap);
}

/* The JSON of a large value is not kept once the backend copied it: every
 * persisted record would hold its largest value's JSON for good. */
static void release_large_scratch(persist_tap *t) {
    if (t->scratch_cap <= SCRATCH_KEEP_BYTES) return;
    free(t->scratch);
    t->scratch = NULL;
    t->scratch_cap = 0;
}

static void on_value(const aimdb_value *v, void *ctx) {
    persist_tap *t = ctx;
    aimdb_persist *p = t->p;
    uint64_t held;
    long n = encode(t, v);
    if (n < 0) {
        atomic_fetch_add_explicit(&p->rows_rejected, 1, memory_order_relaxed);
        if (aimdb_log_limit_pass(&t->reject_log, aimdb_monotonic_ms(), LOG_INTERVAL_MS, &held))
            aimdb_log(p->rt, AIMDB_LOG_WARNING,
                      "persist: record %s: value #%" PRIu64 " has no JSON form; not stored "
                      "(%" PRIu64 " more since the last message)",
                      t->name, v->seq, held);
        return;
    }
    int rc = p->backend.ops->store(p->backend.self, t->name, t->scratch, (size_t)n, v->ts_ms,
                                     v->source);
    if (rc != AIMDB_OK) {
        atomic_fetch_add_explicit(&p->rows_store_failed, 1, memory_order_relaxed);
        if (aimdb_log_limit_pass(&t->store_log, aimdb_monotonic_ms(), LOG_INTERVAL_MS, &held))
            aimdb_log(p->rt, AIMDB_LOG_ERROR,
                      "persist: record %s: %s backend refused a row: %s "
                      "(%" PRIu64 " more since the last message)",
                      t->name, p->backend.ops->name, aimdb_strerror(rc), held);
        return;
    }
    atomic_fetch_add_explicit(&p->rows_enqueued, 1, memory_order_relaxed);
    release_large_scratch(t);
}

static void on_lag(uint64_t missed, void *ctx) {
    persist_tap *t = ctx;
    aimdb_persist *p = t->p;
    uint64_t held;
    atomic_fetch_add_explicit(&p->rows_lagged, missed, memory_order_relaxed);
    if (aimdb_log_limit_pass(&t->lag_log, aimdb_monotonic_ms(), LOG_INTERVAL_MS, &held))
        aimdb_log(p->rt, AIMDB_LOG_WARNING,
                  "persist: record %s: history fell behind the record's buffer; %" PRIu64
                  " values not stored (%" PRIu64 " more lag events since the last message)",
                  t->name, missed, held);
}

const aimdb_tap_ops persist_tap_ops = {on_value, on_lag};
