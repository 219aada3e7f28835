/*
 * workers.c -- the fixed worker pool that runs every tap of every record.
 *
 * No thread per record: a producer that finds a tap idle marks it scheduled
 * and appends it to one run queue; a worker pops it, feeds it up to
 * TAP_BATCH values and either re-queues it (more waiting) or marks it idle.
 * Because a tap is in the queue or on a worker at most once, its callbacks
 * run one at a time and in order, and the queue needs no allocation: the
 * link lives in the tap.
 *
 * Waking a worker is a futex call, and a woken worker that finds the
 * producer still holding the pool lock sleeps again.  A thread that
 * produces in bursts (the relay, relay.c) marks the burst, and the workers
 * are woken once at its end, outside every lock: measured in bench_plugin
 * at QoS 1, tap workers slept and woke ~410 times per 1,000 messages with a
 * wake per idle tap, ~270 with a wake per burst, and the relay's and the
 * workers' CPU per message fell by 30%.
 */
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

#define SCRATCH_KEEP_BYTES (2 * TAP_BATCH_BYTES)

struct aimdb_pool {
    const aimdb_runtime *rt;
    unsigned nworkers;
    aimdb_thread **threads;

    pthread_mutex_t lock;   /* guards everything below */
    pthread_cond_t work;    /* signalled when the queue gains a tap or on stop */
    aimdb_tap *head, *tail; /* run queue, linked through tap->next_ready */
    unsigned idle;          /* workers waiting on `work` */
    unsigned running;       /* workers started */
    bool stopping;
};

aimdb_pool *aimdb_pool_new(const aimdb_runtime *rt, unsigned workers) {
    aimdb_pool *pool = calloc(1, sizeof(*pool));
    if (!pool) return NULL;
    pool->threads = calloc(workers, sizeof(*pool->threads));
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    pool->rt = rt;
    pool->nworkers = workers;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work, NULL);
    return pool;
}

void aimdb_pool_free(aimdb_pool *pool) {
    if (!pool) return;
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

/* The calling thread's burst: the one pool whose wake-ups it holds back
 * (a tap of another pool is woken for at once) and how many taps wait. */
static _Thread_local struct {
    bool on;
    aimdb_pool *pool;
    unsigned queued;
} burst;

void aimdb_pool_schedule(aimdb_pool *pool, aimdb_tap *tap) {
    bool deferred = burst.on && (!burst.pool || burst.pool == pool);
    pthread_mutex_lock(&pool->lock);
    tap->next_ready = NULL;
    if (pool->tail) pool->tail->next_ready = tap;
    else pool->head = tap;
    pool->tail = tap;
    if (pool->idle && !deferred) pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    if (deferred) {
        burst.pool = pool;
        burst.queued++;
    }
}

void aimdb_pool_burst_begin(void) {
    burst.on = true;
    burst.pool = NULL;
    burst.queued = 0;
}

void aimdb_pool_burst_end(void) {
    aimdb_pool *pool = burst.pool;
    burst.on = false;
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    /* A signal wakes one waiter; idle only drops once a woken worker runs. */
    for (unsigned i = 0; i < burst.queued && i < pool->idle; i++)
        pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->lock);
}

static aimdb_tap *pop_locked(aimdb_pool *pool) {
    aimdb_tap *tap = pool->head;
    pool->head = tap->next_ready;
    if (!pool->head) pool->tail = NULL;
    return tap;
}

/* One read result, copied out under the record lock and delivered after it:
 * bytes live in the tap's scratch at `offset` (an offset, not a pointer,
 * because the scratch may move while the batch is being filled). */
typedef struct tap_item {
    int rc;             /* AIMDB_OK or AIMDB_LAGGED */
    uint64_t missed;
    size_t offset, len;
    int64_t ts_ms;
    uint64_t seq;
    const char *source;
} tap_item;

/* Copy up to TAP_BATCH results, and about TAP_BATCH_BYTES of values, in
 * one lock hold: one lock round trip per batch instead of per value is what
 * keeps a tap from fighting its producer for the record lock. */
static size_t fill_batch_locked(aimdb_tap *tap, tap_item *items, size_t *used) {
    aimdb_buffer *buf = &tap->record->buffer;
    size_t n = 0;
    *used = 0;
    while (n < TAP_BATCH && *used < TAP_BATCH_BYTES) {
        const aimdb_slot *slot;
        tap_item *it = &items[n];
        it->missed = 0;
        it->rc = aimdb_buffer_read(buf, AIMDB_READ_STREAM, &tap->cursor, &slot, &it->missed);
        if (it->rc == AIMDB_EAGAIN) break;
        if (it->rc == AIMDB_OK) {
            if (aimdb_scratch_reserve(&tap->scratch, *used + slot->len) != AIMDB_OK) {
                it->rc = AIMDB_LAGGED; /* out of memory: this value is lost, and counted */
                it->missed = 1;
            } else {
                memcpy(tap->scratch.data + *used, slot->data, slot->len);
                it->offset = *used;
                it->len = slot->len;
                it->ts_ms = slot->ts_ms;
                it->seq = slot->seq;
                it->source = slot->source;
                *used += slot->len;
            }
        }
        n++;
    }
    return n;
}

static void deliver(aimdb_tap *tap, const tap_item *it) {
    if (it->rc == AIMDB_OK) {
        aimdb_value v = {tap->scratch.data + it->offset, it->len, it->ts_ms, it->seq,
                         it->source};
        tap->ops.on_value(&v, tap->ctx);
        atomic_fetch_add_explicit(&tap->delivered, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&tap->lag_events, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tap->missed, it->missed, memory_order_relaxed);
    if (tap->ops.on_lag) tap->ops.on_lag(it->missed, tap->ctx);
}

/* Feed a tap one batch; returns true if it must be re-queued. */
static bool run_tap(aimdb_tap *tap) {
    tap_item items[TAP_BATCH];
    size_t used;
    aimdb_record *rec = tap->record;
    pthread_mutex_lock(&rec->lock);
    size_t n = fill_batch_locked(tap, items, &used);
    pthread_mutex_unlock(&rec->lock);
    for (size_t i = 0; i < n; i++) deliver(tap, &items[i]);
    /* Beyond what batches of small values need, the copy of large values
     * is not kept between batches: every tap would hold its largest. */
    if (tap->scratch.cap > SCRATCH_KEEP_BYTES) {
        free(tap->scratch.data);
        tap->scratch = (aimdb_scratch){0};
    }
    /* `scheduled` stays set until the callbacks have returned: clearing it
     * earlier would let a producer queue the tap on a second worker while
     * this one is still inside on_value.  Cleared under the record lock, so
     * a producer either sees the tap idle and queues it, or its value is
     * pending here and the tap is re-queued. */
    pthread_mutex_lock(&rec->lock);
    bool more = aimdb_buffer_pending(&rec->buffer, tap->cursor);
    if (!more) tap->scheduled = false;
    /* Values kept over max_memory only because this tap had not read them
     * give way now, not at the record's next value, which may never come. */
    uint64_t gave_way = aimdb_record_give_way_locked(rec);
    pthread_mutex_unlock(&rec->lock);
    aimdb_memory_gave_way(rec->buffer.mem, aimdb_db_runtime(rec->db), gave_way);
    return more;
}

static void *worker_main(void *arg) {
    aimdb_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->head && !pool->stopping) {
            pool->idle++;
            pthread_cond_wait(&pool->work, &pool->lock);
            pool->idle--;
        }
        /* Stopping with an empty queue: any tap still on another worker is
         * re-queued by that worker, which then runs it itself. */
        if (!pool->head) break;
        aimdb_tap *tap = pop_locked(pool);
        pthread_mutex_unlock(&pool->lock);
        bool more = run_tap(tap);
        pthread_mutex_lock(&pool->lock);
        if (more) {
            tap->next_ready = NULL;
            if (pool->tail) pool->tail->next_ready = tap;
            else pool->head = tap;
            pool->tail = tap;
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int aimdb_pool_start(aimdb_pool *pool) {
    for (unsigned i = 0; i < pool->nworkers; i++) {
        if (pool->rt->spawn(pool->rt->self, "aimdb-worker", AIMDB_THREAD_PIPELINE, worker_main,
                            pool, &pool->threads[i]) != 0) {
            aimdb_log(pool->rt, AIMDB_LOG_ERROR, "cannot start tap worker %u", i);
            aimdb_pool_drain_and_join(pool);
            return AIMDB_EIO;
        }
        pool->running++;
    }
    return AIMDB_OK;
}

void aimdb_pool_drain_and_join(aimdb_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->running; i++) pool->rt->join(pool->rt->self, pool->threads[i]);
    pool->running = 0;
}
