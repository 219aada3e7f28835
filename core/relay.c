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
 * the hot thread only copies the value into a single-producer
 * single-consumer queue (no lock, no system call while the relay thread is
 * awake) and one relay thread calls aimdb_produce_at with the time the
 * value was received.
 *
 * The queue is a chain of segments of SEGMENT_SLOTS slots: the pusher fills
 * one and links the next, the relay empties one, follows the link and
 * hands the emptied segment back through a one-segment spare.  In the
 * steady state two segments take turns and nothing is allocated; when the
 * relay falls behind (it got no CPU: on two saturated cores a nice +10
 * relay was seen 16,384 values behind) the pusher allocates another
 * segment, one malloc per 4,096 values, and never waits.  The fixed ring
 * this replaces made the pusher -- Mosquitto's broker thread -- yield for
 * room, once for 15 ms in a bench_plugin run; a per-value spill list
 * tried next cost a malloc per value, whose free on the relay contended
 * for the broker's arena lock (a reviewer measured 29-40 ms waits).
 * Memory is bounded: payloads too long for a slot count toward the
 * database's max_memory while queued (memory.c: older live values give
 * way to them), and once the values queued hold the whole share of
 * buffers and relays (64 MiB without max_memory) in segments beyond the
 * first two and such payloads, a push is refused with AIMDB_EBUSY for the
 * caller to count -- a relay starved that long has a problem no queue
 * fixes.  Any single value is taken while
 * the queue holds less than that, so the bound never refuses a value
 * max_payload allows.
 *
 * When the queue is empty the relay naps (NAP_NS) a few times before it
 * sleeps, so under load the pusher never pays for a wake-up; an idle relay
 * sleeps on a semaphore that the next push posts (sem_post never blocks).
 * Why naps rather than a sched_yield spin: on two busy cores a spinning
 * thread is always runnable, took the CPU the broker and the tap workers
 * needed (1.6-1.9 us of relay CPU per message at QoS 1, most of it
 * yielding) and woke a tap worker for nearly every message; a nap lets
 * ~1 ms of values gather, produced in one burst (the tap workers are
 * woken once per BURST values, workers.c).  Why 1 ms: at ~20,000 values/s
 * (aimdb-bridge under bench_efficiency) 100 us naps gathered ~7 values per
 * wake-up and cost 1.7 us of relay and 1.0 us of tap-worker CPU per value,
 * 1 ms naps 0.8 and 0.7 us; a live value is still visible within ~1 ms,
 * and history commits every 100 ms anyway.
 */
#include <semaphore.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aimdb/relay.h"
#include "core_internal.h"

#define SEGMENT_SLOTS 4096
/* Payloads up to this size (most telemetry) are copied into the slot, a
 * slot being 256 bytes: a longer one is malloc'd here and freed by the
 * relay thread, and that pair shares glibc's arena lock with the broker's
 * own allocations -- a relay preempted inside free() would stall it. */
#define INLINE_BYTES 216
#define NAP_NS 1000000             /* a value waits at most this long (+ timer slack) */
#define NAPS_BEFORE_SLEEP 2        /* empty naps (~2 ms) before sleeping until woken */
#define BURST 64                   /* values produced per wake-up of the tap workers */
#define FAIL_LOG_INTERVAL_MS 10000
#define CACHE_LINE 64

typedef struct relay_slot {
    aimdb_record *record;
    const char *source;
    int64_t ts_ms;
    uint32_t len;
    void *heap; /* the payload if longer than INLINE_BYTES, else NULL */
    unsigned char inline_data[INLINE_BYTES];
} relay_slot;

_Static_assert(sizeof(relay_slot) == 256, "a slot is meant to be 4 cache lines");

typedef struct segment {
    _Atomic(struct segment *) next; /* set by the pusher before it publishes a slot of it */
    relay_slot slots[SEGMENT_SLOTS];
} segment;

/* Each side's fields have cache lines of their own: the pusher writes its
 * line on every value, the relay its line on every burst, and a shared line
 * would bounce between the two cores on every push.  Byte accounting has no
 * read-modify-write: each side keeps a running total of its own, and
 * held = added - released. */
struct aimdb_relay {
    const aimdb_runtime *rt;
    aimdb_thread *thread;
    sem_t wake;

    /* Pusher only (head is also read by the relay). */
    alignas(CACHE_LINE) _Atomic uint64_t head; /* values pushed */
    segment *write_seg;
    unsigned write_pos;
    uint64_t bytes_added;

    /* Relay only (bytes_released is read by the pusher, tail by anyone). */
    alignas(CACHE_LINE) _Atomic uint64_t tail; /* values produced */
    _Atomic uint64_t bytes_released;
    segment *read_seg;
    unsigned read_pos;
    aimdb_log_limit fail_log;
    _Atomic uint64_t failed;  /* values aimdb_produce refused, but for their format */
    _Atomic uint64_t refused; /* values not of their record's format (AIMDB_EFORMAT) */

    /* Both. */
    alignas(CACHE_LINE) _Atomic bool sleeping; /* the relay waits, or is about to, on `wake` */
    _Atomic bool stopping;
    _Atomic(segment *) spare; /* an emptied segment the relay hands back */
    _Atomic uint64_t grown;   /* segments the pusher had to allocate beyond the first two */
};

static segment *segment_new(void) {
    segment *s = malloc(sizeof(*s));
    if (s) atomic_init(&s->next, NULL);
    return s;
}

/* The queue is empty, but the pusher may have linked a segment after the
 * relay's last one (a push refused after the link), so free the chain. */
static void relay_free_stopped(aimdb_relay *r) {
    sem_destroy(&r->wake);
    free(atomic_load(&r->spare));
    for (segment *s = r->read_seg, *next; s; s = next) {
        next = atomic_load(&s->next);
        free(s);
    }
    free(r);
}

static void produce(aimdb_relay *r, relay_slot *s) {
    const void *data = s->heap ? s->heap : s->inline_data;
    int rc = aimdb_produce_from(s->record, data, s->len, s->ts_ms, s->source);
    if (s->heap) {
        free(s->heap);
        aimdb_memory_sub(aimdb_db_memory(s->record->db), s->len);
        atomic_store_explicit(&r->bytes_released,
                              atomic_load_explicit(&r->bytes_released, memory_order_relaxed) +
                                  s->len,
                              memory_order_release);
    }
    if (rc == AIMDB_OK) return;
    /* A device that sends what its record's format excludes is no loss of
     * ours: counted apart, so a refused payload does not read as a drop. */
    atomic_fetch_add(rc == AIMDB_EFORMAT ? &r->refused : &r->failed, 1);
    uint64_t held = 0;
    if (aimdb_log_limit_pass(&r->fail_log, aimdb_monotonic_ms(), FAIL_LOG_INTERVAL_MS, &held))
        aimdb_log(r->rt, AIMDB_LOG_WARNING,
                  "value for %s not recorded: %s (%llu similar since the last report)",
                  aimdb_record_name(s->record), aimdb_strerror(rc), (unsigned long long)held);
}

/* Leave an emptied segment for the one the pusher linked after it: hand it
 * back as the spare, or free it (and its bytes) if a spare is waiting. */
static void next_read_segment(aimdb_relay *r) {
    segment *done = r->read_seg;
    r->read_seg = atomic_load_explicit(&done->next, memory_order_acquire);
    r->read_pos = 0;
    atomic_store_explicit(&done->next, NULL, memory_order_relaxed);
    segment *none = NULL;
    if (atomic_compare_exchange_strong(&r->spare, &none, done)) return;
    free(done);
    atomic_store_explicit(&r->bytes_released,
                          atomic_load_explicit(&r->bytes_released, memory_order_relaxed) +
                              sizeof(segment),
                          memory_order_release);
}

/* Produce everything queued, in push order, waking the tap workers once
 * per BURST values; false if there was nothing. */
static bool drain(aimdb_relay *r) {
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail == head) return false;
    aimdb_pool_burst_begin();
    for (; tail != head; tail++) {
        if (r->read_pos == SEGMENT_SLOTS) next_read_segment(r);
        produce(r, &r->read_seg->slots[r->read_pos++]);
        if ((tail + 1) % BURST == 0) {
            aimdb_pool_burst_end();
            aimdb_pool_burst_begin();
        }
    }
    aimdb_pool_burst_end();
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    return true;
}

/* Sleep until a push.  `sleeping` is set before the last look at head and
 * the pusher reads it after publishing head (both seq_cst), so one of the
 * two always sees the other: no lost wake-up.  Whoever clears the flag
 * first owns it; if that is a pusher, its post is consumed here so the
 * next sleep does not return at once. */
static void sleep_until_work(aimdb_relay *r) {
    atomic_store(&r->sleeping, true);
    if (atomic_load(&r->head) == atomic_load(&r->tail) && !atomic_load(&r->stopping)) {
        while (sem_wait(&r->wake) != 0) { /* EINTR */
        }
        return; /* the waker cleared `sleeping` */
    }
    if (!atomic_exchange(&r->sleeping, false))
        while (sem_wait(&r->wake) != 0) { /* a pusher's post is on its way */
        }
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

int aimdb_relay_start(const aimdb_runtime *rt, aimdb_relay **out) {
    aimdb_relay *r = aligned_alloc(CACHE_LINE, sizeof(*r)); /* a multiple of CACHE_LINE */
    if (r) memset(r, 0, sizeof(*r));
    segment *first = r ? segment_new() : NULL, *second = first ? segment_new() : NULL;
    if (!second) {
        free(first);
        free(r);
        return AIMDB_ENOMEM;
    }
    r->write_seg = r->read_seg = first;
    atomic_store(&r->spare, second);
    r->rt = rt ? rt : aimdb_runtime_pthread();
    sem_init(&r->wake, 0, 0);
    if (r->rt->spawn(r->rt->self, "aimdb-relay", AIMDB_THREAD_PIPELINE, relay_main, r,
                     &r->thread) != 0) {
        relay_free_stopped(r);
        return AIMDB_EIO;
    }
    *out = r;
    return AIMDB_OK;
}

static uint64_t held_bytes(aimdb_relay *r) {
    return r->bytes_added - atomic_load_explicit(&r->bytes_released, memory_order_acquire);
}

/* Link a fresh segment after the full one: the spare if the relay left
 * one, else a new one while the bound allows. */
static int next_write_segment(aimdb_relay *r, size_t limit) {
    segment *s = atomic_exchange(&r->spare, NULL);
    if (!s) {
        if (held_bytes(r) >= limit) return AIMDB_EBUSY;
        if (!(s = segment_new())) return AIMDB_ENOMEM;
        r->bytes_added += sizeof(segment);
        atomic_fetch_add_explicit(&r->grown, 1, memory_order_relaxed);
    }
    atomic_store_explicit(&r->write_seg->next, s, memory_order_release);
    r->write_seg = s;
    r->write_pos = 0;
    return AIMDB_OK;
}

int aimdb_relay_push(aimdb_relay *r, aimdb_record *record, const void *data, size_t len,
                     int64_t ts_ms, const char *source) {
    /* The database's memory is looked at only when bytes are added: the
     * common push touches no line but the relay's own. */
    if (r->write_pos == SEGMENT_SLOTS) {
        int rc = next_write_segment(r, aimdb_db_memory(record->db)->relay_limit);
        if (rc != AIMDB_OK) return rc;
    }
    relay_slot *s = &r->write_seg->slots[r->write_pos];
    s->heap = NULL;
    if (len > INLINE_BYTES) {
        if (held_bytes(r) >= aimdb_db_memory(record->db)->relay_limit) return AIMDB_EBUSY;
        if (!(s->heap = malloc(len))) return AIMDB_ENOMEM;
        r->bytes_added += len;
        aimdb_memory_add(aimdb_db_memory(record->db), len);
    }
    memcpy(s->heap ? s->heap : s->inline_data, data, len);
    s->record = record;
    s->source = source;
    s->len = (uint32_t)len;
    s->ts_ms = ts_ms;
    r->write_pos++;
    atomic_store(&r->head, atomic_load_explicit(&r->head, memory_order_relaxed) + 1);
    if (atomic_load(&r->sleeping) && atomic_exchange(&r->sleeping, false)) sem_post(&r->wake);
    return AIMDB_OK;
}

uint64_t aimdb_relay_stop(aimdb_relay *r) {
    if (!r) return 0;
    atomic_store(&r->stopping, true);
    if (atomic_exchange(&r->sleeping, false)) sem_post(&r->wake);
    r->rt->join(r->rt->self, r->thread);
    uint64_t failed = atomic_load(&r->failed);
    relay_free_stopped(r);
    return failed;
}

uint64_t aimdb_relay_failed(aimdb_relay *r) {
    return r ? atomic_load(&r->failed) : 0;
}

uint64_t aimdb_relay_refused(aimdb_relay *r) {
    return r ? atomic_load(&r->refused) : 0;
}

uint64_t aimdb_relay_backlog(aimdb_relay *r) {
    return r ? atomic_load(&r->head) - atomic_load(&r->tail) : 0;
}

uint64_t aimdb_relay_grown(aimdb_relay *r) {
    return r ? atomic_load(&r->grown) : 0;
}
