/*
 * sqlite_queue.c -- the bounded queue between the persist taps and the
 * SQLite writer thread.
 *
 * Why a ring of preallocated slots: every row is copied once, into a slot
 * whose buffer has grown to the largest row it held, so the steady state
 * allocates nothing.  Bounded twice: in rows (the slots) and in bytes
 * (max_bytes, the history's share of max_memory); a put waits for either,
 * which is the persist tap's backpressure.  Slot buffers of large rows are
 * freed when their row is done, so what the queue keeps allocated is
 * within its bounds too.  Why the writer reads slots without the lock: it
 * "takes" a batch (marks it as its own), commits straight from the slots and
 * only then frees them, so a failed commit still has every row for the retry
 * and producers never wait for SQLite, only for free slots.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_queue.h"

int sq_queue_init(sq_queue *q, uint32_t cap, size_t max_bytes, uint32_t batch_rows,
                  int64_t flush_ms) {
    memset(q, 0, sizeof(*q));
    q->slots = calloc(cap, sizeof(*q->slots));
    if (!q->slots) return AIMDB_ENOMEM;
    q->cap = cap;
    q->max_bytes = max_bytes ? max_bytes : SIZE_MAX;
    q->batch_rows = batch_rows;
    q->max_batch = cap / 2 > batch_rows ? cap / 2 : batch_rows;
    q->flush_ms = flush_ms;
    /* Deadlines are monotonic: a wall-clock jump must not stall a commit. */
    aimdb_cond_init_monotonic(&q->writer_wake);
    aimdb_cond_init_monotonic(&q->space);
    pthread_cond_init(&q->progress, NULL);
    pthread_mutex_init(&q->lock, NULL);
    return AIMDB_OK;
}

void sq_queue_destroy(sq_queue *q) {
    if (!q->slots) return;
    for (uint32_t i = 0; i < q->cap; i++) free(q->slots[i].bytes);
    free(q->slots);
    q->slots = NULL;
    pthread_cond_destroy(&q->writer_wake);
    pthread_cond_destroy(&q->space);
    pthread_cond_destroy(&q->progress);
    pthread_mutex_destroy(&q->lock);
}

static sq_slot *slot_at(const sq_queue *q, uint32_t offset) {
    return &q->slots[(q->head + offset) % q->cap];
}

static size_t row_bytes(size_t name_len, size_t json_len, const char *source) {
    return name_len + json_len + 2 + (source ? strlen(source) + 1 : 0);
}

static int slot_fill(sq_queue *q, sq_slot *s, const char *name, size_t name_len,
                     const char *json, size_t json_len, int64_t ts_ms, const char *source,
                     size_t need) {
    size_t source_len = source ? strlen(source) : 0;
    if (s->cap < need) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < need) cap *= 2;
        char *grown = realloc(s->bytes, cap);
        if (!grown) return AIMDB_ENOMEM;
        q->slot_bytes += cap - s->cap;
        s->bytes = grown;
        s->cap = cap;
    }
    s->row_bytes = need;
    memcpy(s->bytes, name, name_len);
    s->bytes[name_len] = '\0';
    memcpy(s->bytes + name_len + 1, json, json_len);
    s->bytes[name_len + 1 + json_len] = '\0';
    if (source) memcpy(s->bytes + name_len + json_len + 2, source, source_len + 1);
    s->name_len = name_len;
    s->json_len = json_len;
    s->has_source = source != NULL;
    s->source_len = source_len;
    s->ts_ms = ts_ms;
    s->arrived_ms = aimdb_monotonic_ms();
    return AIMDB_OK;
}

/* No room for a row of `need` bytes: every slot is taken, or the rows
 * queued already hold max_bytes (a row of any size gets into an empty
 * queue, so the bound never refuses what max_payload allows). */
static bool full_locked(const sq_queue *q, size_t need) {
    return q->count == q->cap || (q->count > 0 && q->queued_bytes + need > q->max_bytes);
}

/* Wait for q->space, until put_deadline_ms once one is set (the writer
 * moves it on whenever it frees room).  False when it has passed. */
static bool wait_for_space_locked(sq_queue *q) {
    q->space_waiters++;
    if (q->put_deadline_ms) {
        struct timespec deadline = aimdb_monotonic_deadline(q->put_deadline_ms);
        pthread_cond_timedwait(&q->space, &q->lock, &deadline);
    } else {
        pthread_cond_wait(&q->space, &q->lock);
    }
    q->space_waiters--;
    return !q->put_deadline_ms || aimdb_monotonic_ms() < q->put_deadline_ms;
}

int sq_queue_put(sq_queue *q, const char *name, size_t name_len, const char *json,
                 size_t json_len, int64_t ts_ms, const char *source) {
    size_t need = row_bytes(name_len, json_len, source);
    pthread_mutex_lock(&q->lock);
    bool in_time = true;
    while (full_locked(q, need) && !q->closing && in_time) in_time = wait_for_space_locked(q);
    if (q->closing || !in_time) {
        pthread_mutex_unlock(&q->lock);
        return q->closing ? AIMDB_ESTOPPED : AIMDB_ETIMEDOUT;
    }
    int rc = slot_fill(q, slot_at(q, q->count), name, name_len, json, json_len, ts_ms, source,
                       need);
    if (rc == AIMDB_OK) {
        q->queued_bytes += need;
        q->count++;
        q->accepted++;
        /* The writer needs to hear of the first waiting row (to start the
         * flush timer) and of a full batch; anything else it finds itself. */
        uint32_t waiting = q->count - q->taken;
        if (waiting == 1 || waiting == q->batch_rows) pthread_cond_signal(&q->writer_wake);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int sq_queue_flush(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    uint64_t target = q->accepted;
    uint64_t failed_before = q->failed_commits, dropped_before = q->dropped;
    if (q->flush_target < target) {
        q->flush_target = target;
        pthread_cond_signal(&q->writer_wake);
    }
    while (q->finished < target && q->failed_commits == failed_before)
        pthread_cond_wait(&q->progress, &q->lock);
    int rc = q->finished >= target && q->dropped == dropped_before ? AIMDB_OK : AIMDB_EIO;
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int sq_queue_run_cleanup(sq_queue *q, sq_cleanup *c) {
    pthread_mutex_lock(&q->lock);
    if (q->closing) {
        pthread_mutex_unlock(&q->lock);
        return AIMDB_ESTOPPED;
    }
    c->next = NULL;
    if (q->cleanups_tail) q->cleanups_tail->next = c;
    else q->cleanups = c;
    q->cleanups_tail = c;
    pthread_cond_signal(&q->writer_wake);
    while (!c->done) pthread_cond_wait(&q->progress, &q->lock);
    pthread_mutex_unlock(&q->lock);
    return c->rc;
}

void sq_queue_stopping(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    if (!q->put_deadline_ms) q->put_deadline_ms = aimdb_monotonic_ms() + SQ_STOP_GRACE_MS;
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->lock);
}

void sq_queue_close(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closing = true;
    pthread_cond_broadcast(&q->writer_wake);
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->lock);
}

uint32_t sq_queue_depth(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    uint32_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

bool sq_queue_closing(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    bool closing = q->closing;
    pthread_mutex_unlock(&q->lock);
    return closing;
}

/* ------------------------------------------------------- writer side */

/* Are rows ready to commit now?  A taken batch is a retry; otherwise rows
 * are due when a batch is full, the oldest has waited flush_ms, a flush
 * wants them, or the queue is closing. */
static bool rows_due_locked(const sq_queue *q, int64_t now) {
    if (q->count == 0) return false;
    if (q->taken > 0 || q->closing) return true;
    if (q->count >= q->batch_rows) return true;
    if (q->flush_target > q->finished) return true;
    return now >= slot_at(q, 0)->arrived_ms + q->flush_ms;
}

static void wait_until_locked(sq_queue *q, int64_t deadline_ms) {
    if (deadline_ms == INT64_MAX) {
        pthread_cond_wait(&q->writer_wake, &q->lock);
        return;
    }
    struct timespec deadline = aimdb_monotonic_deadline(deadline_ms);
    pthread_cond_timedwait(&q->writer_wake, &q->lock, &deadline);
}

sq_work sq_queue_next_work(sq_queue *q, int64_t retry_at_ms, uint32_t max_rows,
                           int64_t check_at_ms, int64_t background_at_ms, uint32_t *n,
                           sq_cleanup **cleanup) {
    pthread_mutex_lock(&q->lock);
    for (;;) {
        int64_t now = aimdb_monotonic_ms();
        /* A check comes first: it may find the file the rows would go to
         * deleted or damaged (the writer checks before each commit too). */
        if (q->poked || (check_at_ms != 0 && now >= check_at_ms)) {
            q->poked = false;
            pthread_mutex_unlock(&q->lock);
            return SQ_WORK_CHECK;
        }
        bool held = retry_at_ms != 0 && now < retry_at_ms;
        bool due = rows_due_locked(q, now);
        bool idle = (!due || held) && !q->cleanups;
        bool background = background_at_ms != 0 && now >= background_at_ms;
        if (background && !q->closing && (idle || !q->background_went_last)) {
            q->background_went_last = true;
            pthread_mutex_unlock(&q->lock);
            return SQ_WORK_BACKGROUND;
        }
        /* Rows and cleanup chunks alternate, so neither starves the other. */
        if (due && !held && !(q->cleanups && q->rows_went_last)) {
            q->background_went_last = false;
            uint32_t room = q->max_batch > q->taken ? q->max_batch - q->taken : 0;
            uint32_t waiting = q->count - q->taken;
            q->taken += waiting < room ? waiting : room;
            *n = max_rows && max_rows < q->taken ? max_rows : q->taken;
            q->rows_went_last = true;
            pthread_mutex_unlock(&q->lock);
            return SQ_WORK_ROWS;
        }
        if (q->cleanups) {
            *cleanup = q->cleanups;
            q->rows_went_last = false;
            pthread_mutex_unlock(&q->lock);
            return SQ_WORK_CLEANUP;
        }
        if (q->closing && q->count == 0) {
            pthread_mutex_unlock(&q->lock);
            return SQ_WORK_EXIT;
        }
        int64_t deadline = INT64_MAX;
        if (held) deadline = retry_at_ms;
        else if (q->count > 0) deadline = slot_at(q, 0)->arrived_ms + q->flush_ms;
        if (check_at_ms != 0 && check_at_ms < deadline) deadline = check_at_ms;
        if (background_at_ms != 0 && background_at_ms < deadline) deadline = background_at_ms;
        wait_until_locked(q, deadline);
    }
}

void sq_queue_poke(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->poked = true;
    pthread_cond_signal(&q->writer_wake);
    pthread_mutex_unlock(&q->lock);
}

const sq_slot *sq_queue_taken(const sq_queue *q, uint32_t i) { return slot_at(q, i); }

/* A finished row's slot keeps its buffer for the next row if the buffer is
 * small and the free slots' buffers are within half of max_bytes; a row
 * of a large value would otherwise stay allocated in its slot for good. */
static void release_slot_locked(sq_queue *q, sq_slot *s) {
    q->queued_bytes -= s->row_bytes;
    s->row_bytes = 0;
    if (s->cap <= SQ_SLOT_KEEP_BYTES && q->slot_bytes <= q->max_bytes / 2) return;
    q->slot_bytes -= s->cap;
    free(s->bytes);
    s->bytes = NULL;
    s->cap = 0;
}

static void release_locked(sq_queue *q, uint32_t n, bool committed) {
    for (uint32_t i = 0; i < n; i++) release_slot_locked(q, slot_at(q, i));
    q->head = (q->head + n) % q->cap;
    q->count -= n;
    /* An empty ring starts over at slot 0, so a queue that never gets deep
     * only ever grows buffers for its first few slots. */
    if (q->count == 0) q->head = 0;
    q->finished += n;
    if (!committed) q->dropped += n;
    /* A writer that frees room is keeping up: a stopping queue's puts get
     * the whole grace again, so a slow but working writer loses nothing. */
    if (q->put_deadline_ms) q->put_deadline_ms = aimdb_monotonic_ms() + SQ_STOP_GRACE_MS;
    pthread_cond_broadcast(&q->progress);
    if (q->space_waiters) pthread_cond_broadcast(&q->space);
}

void sq_queue_finish(sq_queue *q, uint32_t n, bool committed) {
    pthread_mutex_lock(&q->lock);
    q->taken -= n;
    release_locked(q, n, committed);
    pthread_mutex_unlock(&q->lock);
}

uint32_t sq_queue_drop_all(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    uint32_t n = q->count;
    q->taken = 0;
    release_locked(q, n, false);
    pthread_mutex_unlock(&q->lock);
    return n;
}

void sq_queue_commit_failed(sq_queue *q) {
    pthread_mutex_lock(&q->lock);
    q->failed_commits++;
    pthread_cond_broadcast(&q->progress);
    pthread_mutex_unlock(&q->lock);
}

void sq_queue_cleanup_done(sq_queue *q, sq_cleanup *c) {
    pthread_mutex_lock(&q->lock);
    /* The writer only ever works on the head cleanup. */
    q->cleanups = c->next;
    if (!q->cleanups) q->cleanups_tail = NULL;
    c->done = true;
    pthread_cond_broadcast(&q->progress);
    pthread_mutex_unlock(&q->lock);
}

int sq_queue_cleanup(sq_queue *q, const char *record, const char *const *except,
                     size_t n_except, int64_t cutoff_ms, uint64_t *deleted) {
    if (n_except && !except) return AIMDB_EINVAL;
    sq_cleanup c = {.record = record, .except = except, .n_except = n_except,
                    .cutoff_ms = cutoff_ms};
    int rc = sq_queue_run_cleanup(q, &c);
    if (deleted) *deleted += c.deleted;
    return rc;
}

void sq_writer_counts_committed(sq_writer_counts *c, uint32_t n, int64_t commit_us) {
    atomic_fetch_add_explicit(&c->rows_stored, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->batches, 1, memory_order_relaxed);
    atomic_store_explicit(&c->last_batch_rows, n, memory_order_relaxed);
    atomic_store_explicit(&c->last_commit_us, commit_us, memory_order_relaxed);
}

#define RETRY_MIN_MS 50
#define RETRY_MAX_MS 5000
#define RETRY_LOG_INTERVAL_MS 10000

void sq_retry_reset(sq_retry *r) {
    r->retry_at = r->backoff = r->give_up_at = 0;
    r->failures = 0;
    r->max_rows = 0;
}

void sq_retry_failed(sq_retry *r, sq_queue *q, sq_writer_counts *c, const aimdb_runtime *rt,
                     const char *where, uint32_t n, const char *why) {
    int64_t now = aimdb_monotonic_ms();
    sq_writer_counts_failed(c);
    sq_queue_commit_failed(q);
    r->failures++;
    r->backoff = r->backoff ? r->backoff * 2 : RETRY_MIN_MS;
    if (r->backoff > RETRY_MAX_MS) r->backoff = RETRY_MAX_MS;
    r->retry_at = now + r->backoff;
    uint64_t held;
    if (aimdb_log_limit_pass(&r->error_log, now, RETRY_LOG_INTERVAL_MS, &held))
        aimdb_log(rt, AIMDB_LOG_ERROR,
                  "history: writing %u rows to %s failed: %s; rows kept, retrying "
                  "(%llu failures so far, %llu not logged)",
                  n, where, why, (unsigned long long)r->failures, (unsigned long long)held);
    if (!sq_queue_closing(q)) return;
    if (r->give_up_at == 0) r->give_up_at = now + SQ_STOP_GRACE_MS;
    if (now < r->give_up_at) return;
    uint32_t lost = sq_queue_drop_all(q);
    atomic_fetch_add_explicit(&c->rows_failed, lost, memory_order_relaxed);
    aimdb_log(rt, AIMDB_LOG_ERROR, "history: shutting down with %s still failing (%s): %u rows lost",
              where, why, lost);
}

void sq_retry_committed(sq_retry *r, sq_queue *q, const aimdb_runtime *rt, const char *where,
                        uint32_t n) {
    sq_queue_finish(q, n, true);
    uint64_t held;
    if (r->failures && aimdb_log_limit_pass(&r->resume_log, aimdb_monotonic_ms(),
                                            RETRY_LOG_INTERVAL_MS, &held))
        aimdb_log(rt, AIMDB_LOG_INFO,
                  "history: writing to %s resumed after %llu failures (%llu resumptions not "
                  "logged)",
                  where, (unsigned long long)r->failures, (unsigned long long)held);
    sq_retry_reset(r);
}

void sq_writer_counts_failed(sq_writer_counts *c) {
    atomic_fetch_add_explicit(&c->write_errors, 1, memory_order_relaxed);
}

void sq_writer_counts_read(sq_writer_counts *c, sq_queue *q, aimdb_backend_stats *out) {
    out->rows_stored = atomic_load(&c->rows_stored);
    out->rows_failed = atomic_load(&c->rows_failed);
    out->write_errors = atomic_load(&c->write_errors);
    out->batches = atomic_load(&c->batches);
    out->queue_depth = sq_queue_depth(q);
    out->queue_capacity = q->cap;
    out->last_batch_rows = atomic_load(&c->last_batch_rows);
    out->last_commit_us = atomic_load(&c->last_commit_us);
}
