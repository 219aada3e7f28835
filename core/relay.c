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
 * The pusher never waits.  When the ring is full -- the relay thread got
 * no CPU for a while: measured in bench_plugin, a nice +10 relay on two
 * saturated cores once fell 16,384 values behind and the broker thread,
 * which used to yield until there was room, stalled for 15 ms -- a value
 * spills into a list node of its own, malloc'd by the pusher and freed by
 * the relay.  Every value carries the pusher's sequence number and the ring
 * and the list are each FIFO, so the relay keeps push order by always
 * taking the smaller of their two heads.  Memory is bounded: the bytes
 * values hold outside the ring's slots (spilled values, and payloads too
 * long for a slot) may not exceed MAX_HELD_BYTES; past it a push is refused
 * with AIMDB_EBUSY, for the caller to count -- a relay starved that long
 * has a problem no queue fixes.
 *
 * When both are empty the relay naps (NAP_NS) a few times before it
 * sleeps, so under load the pusher never pays for a wake-up; when idle it
 * sleeps on a condition variable and the next value wakes it.  Why naps
 * rather than a sched_yield spin: on two busy cores a spinning thread is
 * always runnable, took the CPU the broker and the tap workers needed
 * (1.6-1.9 us of relay CPU per message at QoS 1, most of it yielding) and
 * woke a tap worker for nearly every message; a nap lets ~100 us of values
 * gather, produced in one batch.
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aimdb/relay.h"
#include "core_internal.h"

#define RING_SLOTS 16384        /* power of two */
#define INLINE_BYTES 104        /* payloads up to this size need no malloc */
#define TAIL_PUBLISH_EVERY 1024 /* slots; power of two */
#define BURST 64                /* values produced per wake-up of the tap workers */
#define MAX_HELD_BYTES (64u << 20) /* ~3 s of a 400 k msg/s stream spilled */
#define NAP_NS 100000           /* a value waits at most this long (+ timer slack) */
#define NAPS_BEFORE_SLEEP 20    /* empty naps (~2 ms) before sleeping until woken */
#define FAIL_LOG_INTERVAL_MS 10000

typedef struct relay_slot {
    aimdb_record *record;
    int64_t ts_ms;
    uint64_t seq;  /* the pusher's count: orders the ring against the spill list */
    uint32_t len;
    void *heap;    /* the payload if longer than INLINE_BYTES, else NULL */
    unsigned char inline_data[INLINE_BYTES];
} relay_slot;

/* A value pushed while the ring was full.  The list always keeps its last
 * consumed node (at first an empty one): the pusher links after its tail,
 * the relay reads head->next, so the two never touch the same node's
 * fields except `next`. */
typedef struct spilled {
    _Atomic(struct spilled *) next;
    aimdb_record *record;
    int64_t ts_ms;
    uint64_t seq;
    size_t len;
    unsigned char data[];
} spilled;

/* head, tail and sleeping each have a cache line of their own: the
 * producer writes head on every value, the relay tail on every batch, and
 * a shared line would bounce between the two cores on every push. */
#define CACHE_LINE 64

struct aimdb_relay {
    const aimdb_runtime *rt;
    relay_slot *slots;
    /* Producer side: head, the last tail it saw (it rereads tail only when
     * the ring looks full by that one), the next sequence number and the
     * spill list's last node. */
    alignas(CACHE_LINE) _Atomic uint64_t head; /* next slot the producer fills */
    uint64_t tail_seen;
    uint64_t next_seq;
    spilled *spill_tail;
    /* Relay side: the next slot to read and the spill list's consumed node. */
    alignas(CACHE_LINE) _Atomic uint64_t tail;
    spilled *spill_head;
    alignas(CACHE_LINE) _Atomic bool sleeping; /* the relay is (about to be) waiting on `wake` */
    _Atomic bool stopping;
    _Atomic size_t held_bytes; /* heap held by queued values; pusher adds, relay subtracts */
    pthread_mutex_t lock;  /* only for sleeping and waking */
    pthread_cond_t wake;
    aimdb_thread *thread;
    _Atomic uint64_t failed;  /* values aimdb_produce refused */
    _Atomic uint64_t spills;  /* values that went through the spill list */
    aimdb_log_limit fail_log; /* relay thread only */
};

static void relay_free_stopped(aimdb_relay *r) {
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r->spill_head);
    free(r->slots);
    free(r);
}

static void produce(aimdb_relay *r, aimdb_record *record, const void *data, size_t len,
                    int64_t ts_ms) {
    int rc = aimdb_produce_at(record, data, len, ts_ms);
    if (rc == AIMDB_OK) return;
    atomic_fetch_add(&r->failed, 1);
    uint64_t held = 0;
    if (aimdb_log_limit_pass(&r->fail_log, aimdb_monotonic_ms(), FAIL_LOG_INTERVAL_MS, &held))
        aimdb_log(r->rt, AIMDB_LOG_WARNING,
                  "value for %s not recorded: %s (%llu similar since the last report)",
                  aimdb_record_name(record), aimdb_strerror(rc), (unsigned long long)held);
}

static void produce_slot(aimdb_relay *r, relay_slot *s) {
    produce(r, s->record, s->heap ? s->heap : s->inline_data, s->len, s->ts_ms);
    if (s->heap) atomic_fetch_sub(&r->held_bytes, s->len);
    free(s->heap);
    s->heap = NULL;
}

/* Produce the spill list's next value and make its node the consumed one. */
static void produce_spilled(aimdb_relay *r, spilled *next) {
    produce(r, next->record, next->data, next->len, next->ts_ms);
    atomic_fetch_sub(&r->held_bytes, sizeof(*next) + next->len);
    free(r->spill_head);
    r->spill_head = next;
}

/* Produce everything queued, in push order, waking the tap workers once
 * per BURST values; false if there was nothing.  The ring's head is reread
 * whenever the ring looks empty: a value seen in the list was pushed after
 * every smaller-numbered ring value, so those are visible by then even if
 * the first look at head missed them. */
static bool drain(aimdb_relay *r) {
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load(&r->head);
    bool any = false;
    aimdb_pool_burst_begin();
    for (unsigned n = 1;; n++) {
        spilled *next = atomic_load(&r->spill_head->next);
        if (tail == head) head = atomic_load(&r->head);
        relay_slot *s = tail != head ? &r->slots[tail & (RING_SLOTS - 1)] : NULL;
        if (s && (!next || s->seq < next->seq)) {
            produce_slot(r, s);
            /* Hand slots back as it goes: after a stall the pusher refills
             * the ring instead of spilling until the whole backlog is done. */
            if ((++tail & (TAIL_PUBLISH_EVERY - 1)) == 0)
                atomic_store_explicit(&r->tail, tail, memory_order_release);
        } else if (next) {
            produce_spilled(r, next);
        } else {
            break;
        }
        any = true;
        if (n % BURST == 0) {
            aimdb_pool_burst_end();
            aimdb_pool_burst_begin();
        }
    }
    aimdb_pool_burst_end();
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    return any;
}

static bool queue_empty(aimdb_relay *r) {
    return atomic_load(&r->head) == atomic_load(&r->tail) && !atomic_load(&r->spill_head->next);
}

/* Sleep until the producer pushes.  `sleeping` is set before the last look
 * at the queue and the producer reads it after publishing a value (both
 * seq_cst), so one of the two always sees the other: no lost wake-up. */
static void sleep_until_work(aimdb_relay *r) {
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->sleeping, true);
    while (queue_empty(r) && !atomic_load(&r->stopping)) pthread_cond_wait(&r->wake, &r->lock);
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
    if (!r || !(r->slots = calloc(RING_SLOTS, sizeof(*r->slots))) ||
        !(r->spill_head = calloc(1, sizeof(*r->spill_head)))) {
        if (r) free(r->slots);
        free(r);
        return AIMDB_ENOMEM;
    }
    r->spill_tail = r->spill_head;
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

/* Count bytes a queued value holds outside the slots; false past the cap. */
static bool hold(aimdb_relay *r, size_t bytes) {
    if (atomic_fetch_add(&r->held_bytes, bytes) + bytes <= MAX_HELD_BYTES) return true;
    atomic_fetch_sub(&r->held_bytes, bytes);
    return false;
}

static bool ring_has_room(aimdb_relay *r, uint64_t head) {
    if (head - r->tail_seen < RING_SLOTS) return true;
    r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    return head - r->tail_seen < RING_SLOTS;
}

static int push_to_ring(aimdb_relay *r, uint64_t head, aimdb_record *record, const void *data,
                        size_t len, int64_t ts_ms) {
    relay_slot *s = &r->slots[head & (RING_SLOTS - 1)];
    s->heap = NULL;
    if (len > INLINE_BYTES) {
        if (!hold(r, len)) return AIMDB_EBUSY;
        if (!(s->heap = malloc(len))) {
            atomic_fetch_sub(&r->held_bytes, len);
            return AIMDB_ENOMEM;
        }
    }
    memcpy(s->heap ? s->heap : s->inline_data, data, len);
    s->record = record;
    s->len = (uint32_t)len;
    s->ts_ms = ts_ms;
    s->seq = r->next_seq;
    atomic_store(&r->head, head + 1);
    return AIMDB_OK;
}

static int push_to_list(aimdb_relay *r, aimdb_record *record, const void *data, size_t len,
                        int64_t ts_ms) {
    if (!hold(r, sizeof(spilled) + len)) return AIMDB_EBUSY;
    spilled *v = malloc(sizeof(*v) + len);
    if (!v) {
        atomic_fetch_sub(&r->held_bytes, sizeof(*v) + len);
        return AIMDB_ENOMEM;
    }
    atomic_init(&v->next, NULL);
    v->record = record;
    v->ts_ms = ts_ms;
    v->seq = r->next_seq;
    v->len = len;
    memcpy(v->data, data, len);
    atomic_store(&r->spill_tail->next, v);
    r->spill_tail = v;
    atomic_fetch_add_explicit(&r->spills, 1, memory_order_relaxed);
    return AIMDB_OK;
}

int aimdb_relay_push(aimdb_relay *r, aimdb_record *record, const void *data, size_t len,
                     int64_t ts_ms) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    int rc = ring_has_room(r, head) ? push_to_ring(r, head, record, data, len, ts_ms)
                                    : push_to_list(r, record, data, len, ts_ms);
    if (rc != AIMDB_OK) return rc;
    r->next_seq++;
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

uint64_t aimdb_relay_spills(aimdb_relay *r) {
    return r ? atomic_load(&r->spills) : 0;
}
