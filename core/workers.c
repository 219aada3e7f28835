/*
 * workers.c -- the fixed worker pool that runs every tap of every record.
 *
 * No thread per record: a producer that finds a tap idle marks it scheduled
 * and appends it to one run queue; a worker pops it, feeds it up to
 * TAP_BATCH values and either re-queues it (more waiting) or marks it idle.
 * Because a tap is in the queue or on a worker at most once, its callbacks
 * run one at a time and in order, and the queue needs no allocation: the
 * link lives in the tap.
 */
#include <stdlib.h>

#include "core_internal.h"

/* Values one tap gets before yielding its worker, so one busy record cannot
 * starve the others' taps. */
#define TAP_BATCH 64

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

void aimdb_pool_schedule(aimdb_pool *pool, aimdb_tap *tap) {
    pthread_mutex_lock(&pool->lock);
    tap->next_ready = NULL;
    if (pool->tail) pool->tail->next_ready = tap;
    else pool->head = tap;
    pool->tail = tap;
    if (pool->idle) pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->lock);
}

static aimdb_tap *pop_locked(aimdb_pool *pool) {
    aimdb_tap *tap = pool->head;
    pool->head = tap->next_ready;
    if (!pool->head) pool->tail = NULL;
    return tap;
}

/* Deliver one read result outside the record lock. */
static void deliver(aimdb_tap *tap, int rc, const aimdb_value *v, uint64_t missed) {
    if (rc == AIMDB_OK) {
        tap->ops.on_value(v, tap->ctx);
        atomic_fetch_add_explicit(&tap->delivered, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&tap->lag_events, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tap->missed, missed, memory_order_relaxed);
    if (tap->ops.on_lag) tap->ops.on_lag(missed, tap->ctx);
}

/* Feed a tap up to TAP_BATCH values; returns true if it must be re-queued. */
static bool run_tap(aimdb_pool *pool, aimdb_tap *tap) {
    aimdb_record *rec = tap->record;
    for (int i = 0; i < TAP_BATCH; i++) {
        const aimdb_slot *slot;
        aimdb_value v;
        uint64_t missed = 0;
        pthread_mutex_lock(&rec->lock);
        int rc = aimdb_buffer_read(&rec->buffer, AIMDB_READ_STREAM, &tap->cursor, &slot, &missed);
        if (rc == AIMDB_EAGAIN) {
            /* Cleared under the record lock, so a producer either sees the
             * tap idle and queues it, or its value was read above. */
            tap->scheduled = false;
            pthread_mutex_unlock(&rec->lock);
            return false;
        }
        if (rc == AIMDB_OK && aimdb_scratch_copy(&tap->scratch, slot, &v) != AIMDB_OK) {
            aimdb_log(pool->rt, AIMDB_LOG_ERROR, "tap on %s: out of memory, value %llu lost",
                      rec->name, (unsigned long long)slot->seq);
            rc = AIMDB_LAGGED;
            missed = 1;
        }
        pthread_mutex_unlock(&rec->lock);
        deliver(tap, rc, &v, missed);
    }
    return true;
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
        bool more = run_tap(pool, tap);
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
        if (pool->rt->spawn(pool->rt->self, "aimdb-worker", worker_main, pool,
                            &pool->threads[i]) != 0) {
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
