/*
 * relay.c -- a hot thread's hand-off to aimdb_produce (see relay.h).
 *
 * aimdb_produce never waits for a consumer, but it does take the record's
 * lock and, when a tap was idle, the worker pool's lock and a futex wake.
 * Measured in the broker with 1,000 records each receiving sparse values,
 * that costs ~5-13 us per message (contention with the workers; on a busy
 * machine a preempted lock holder stalls it for milliseconds), as much as
 * Mosquitto's own handling of the message; in aimdb-bridge, producing on
 * Paho's receive thread, waking tap workers was most of its profile.  So
 * the hot thread only copies the value into this single-producer
 * single-consumer ring (no lock, no system call while the relay thread is
 * awake) and one relay thread calls aimdb_produce_at with the time the
 * value was received.
 *
 * Order is kept: one producer, one consumer, FIFO.  Nothing is dropped:
 * if the ring is full (the relay is RING_SLOTS values behind) the producer
 * yields until there is room -- back-pressure only when the pipeline
 * behind it is saturated.  When the ring is empty the relay naps (NAP_NS)
 * a few times before it sleeps, so under load the producer never pays for
 * a wake-up; when idle it sleeps on a condition variable and the next
 * value wakes it.  Why naps rather than a sched_yield spin: on two busy
 * cores a spinning thread is always runnable, took the CPU the broker and
 * the tap workers needed (1.6-1.9 us of relay CPU per message at QoS 1,
 * most of it yielding) and woke a tap worker for nearly every message; a
 * nap lets ~100 us of values gather, produced in one batch.
 */
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aimdb/relay.h"

#define RING_SLOTS 16384        /* power of two */
#define INLINE_BYTES 104        /* payloads up to this size need no malloc */
#define NAP_NS 100000           /* a value waits at most this long (+ timer slack) */
#define NAPS_BEFORE_SLEEP 20    /* empty naps (~2 ms) before sleeping until woken */
#define FAIL_LOG_INTERVAL_MS 10000

typedef struct relay_slot {
    aimdb_record *record;
    int64_t ts_ms;
    uint32_t len;
    void *heap; /* the payload if longer than INLINE_BYTES, else NULL */
    unsigned char inline_data[INLINE_BYTES];
} relay_slot;

/* head, tail and sleeping each have a cache line of their own: the
 * producer writes head on every value, the relay tail on every batch, and
 * a shared line would bounce between the two cores on every push. */
#define CACHE_LINE 64

struct aimdb_relay {
    const aimdb_runtime *rt;
    relay_slot *slots;
    /* Producer side: head and the last tail it saw (it rereads tail only
     * when the ring looks full by that one). */
    alignas(CACHE_LINE) _Atomic uint64_t head; /* next slot the producer fills */
    uint64_t tail_seen;
    alignas(CACHE_LINE) _Atomic uint64_t tail; /* next slot the relay reads; relay only */
    alignas(CACHE_LINE) _Atomic bool sleeping; /* the relay is (about to be) waiting on `wake` */
    _Atomic bool stopping;
    pthread_mutex_t lock;  /* only for sleeping and waking */
    pthread_cond_t wake;
    aimdb_thread *thread;
    _Atomic uint64_t failed; /* values aimdb_produce refused */
    aimdb_log_limit fail_log; /* relay thread only */
};

static void relay_free_stopped(aimdb_relay *r) {
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r->slots);
    free(r);
}

static void produce(aimdb_relay *r, relay_slot *s) {
    const void *data = s->heap ? s->heap : s->inline_data;
    int rc = aimdb_produce_at(s->record, data, s->len, s->ts_ms);
    free(s->heap);
    s->heap = NULL;
    if (rc == AIMDB_OK) return;
    atomic_fetch_add(&r->failed, 1);
    uint64_t held = 0;
    if (aimdb_log_limit_pass(&r->fail_log, aimdb_monotonic_ms(), FAIL_LOG_INTERVAL_MS, &held))
        aimdb_log(r->rt, AIMDB_LOG_WARNING,
                   "value for %s not recorded: %s (%llu similar since the last report)",
                   aimdb_record_name(s->record), aimdb_strerror(rc), (unsigned long long)held);
}

/* Produce everything queued; false if there was nothing. */
static bool drain(aimdb_relay *r) {
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail == head) return false;
    for (; tail != head; tail++) produce(r, &r->slots[tail & (RING_SLOTS - 1)]);
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    return true;
}

/* Sleep until the producer pushes.  `sleeping` is set before the last look
 * at head and the producer reads it after publishing head (both seq_cst), so
 * one of the two always sees the other: no lost wake-up. */
static void sleep_until_work(aimdb_relay *r) {
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->sleeping, true);
    while (atomic_load(&r->head) == atomic_load(&r->tail) && !atomic_load(&r->stopping))
        pthread_cond_wait(&r->wake, &r->lock);
    atomic_store(&r->sleeping, false);
    pthread_mutex_unlock(&r->lock);
}

static void *relay_main(void *arg) {
    aimdb_relay *r = arg;
    for (unsigned idle = 0;;) {
        if (drain(r)) {
            idle = 0;
        } else if (atomic_load(&r->stopping)) {
            if (!drain(r)) break;
        } else if (++idle < NAPS_BEFORE_SLEEP) {
            nanosleep(&(struct timespec){0, NAP_NS}, NULL);
        } else {
            sleep_until_work(r);
            idle = 0;
        }
    }
    return NULL;
}

static void wake_relay(aimdb_relay *r) {
    pthread_mutex_lock(&r->lock);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

int aimdb_relay_start(const aimdb_runtime *rt, aimdb_relay **out) {
    aimdb_relay *r = aligned_alloc(CACHE_LINE, sizeof(*r)); /* a multiple of CACHE_LINE */
    if (r) memset(r, 0, sizeof(*r));
    if (!r || !(r->slots = calloc(RING_SLOTS, sizeof(*r->slots)))) {
        free(r);
        return AIMDB_ENOMEM;
    }
    r->rt = rt ? rt : aimdb_runtime_pthread();
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    if (r->rt->spawn(r->rt->self, "aimdb-relay", AIMDB_THREAD_PIPELINE, relay_main, r,
                     &r->thread) != 0) {
        relay_free_stopped(r);
        return AIMDB_EIO;
    }
    *out = r;
    return AIMDB_OK;
}

int aimdb_relay_push(aimdb_relay *r, aimdb_record *record, const void *data, size_t len,
                     int64_t ts_ms) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (head - r->tail_seen == RING_SLOTS) {
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - r->tail_seen < RING_SLOTS) break;
        if (atomic_load(&r->sleeping)) wake_relay(r);
        sched_yield();
    }
    relay_slot *s = &r->slots[head & (RING_SLOTS - 1)];
    s->heap = NULL;
    if (len > INLINE_BYTES && !(s->heap = malloc(len))) return AIMDB_ENOMEM;
    memcpy(s->heap ? s->heap : s->inline_data, data, len);
    s->record = record;
    s->len = (uint32_t)len;
    s->ts_ms = ts_ms;
    atomic_store(&r->head, head + 1);
    if (atomic_load(&r->sleeping)) wake_relay(r);
    return AIMDB_OK;
}

uint64_t aimdb_relay_stop(aimdb_relay *r) {
    if (!r) return 0;
    atomic_store(&r->stopping, true);
    wake_relay(r);
    r->rt->join(r->rt->self, r->thread);
    uint64_t failed = atomic_load(&r->failed);
    relay_free_stopped(r);
    return failed;
}

uint64_t aimdb_relay_failed(aimdb_relay *r) {
    return r ? atomic_load(&r->failed) : 0;
}
