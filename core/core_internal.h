/*
 * core_internal.h -- the structures behind the opaque handles of aimdb.h,
 * shared by the core's own files and by nothing else.
 *
 * Lock order, outermost first (never take an earlier one while holding a
 * later one):  db->registry_lock  ->  record->lock  ->  pool->lock.
 * The producer path takes pool->lock inside record->lock, to queue a tap.
 */
#ifndef AIMDB_CORE_INTERNAL_H
#define AIMDB_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "aimdb/aimdb.h"

/* ----------------------------------------------------------------- memory */

/* A relay's backlog bound when the database sets no max_memory. */
#define AIMDB_RELAY_DEFAULT_LIMIT ((size_t)64 << 20)

/* The database's budget for value bytes (memory.c). */
typedef struct aimdb_memory {
    size_t limit;            /* bytes buffers and relays may hold; SIZE_MAX: no bound */
    size_t relay_limit;      /* bytes one relay's backlog may hold before it refuses */
    _Atomic size_t held;     /* bytes record buffers and relay backlogs hold now */
    _Atomic uint64_t gave_way; /* values that gave way */
    _Atomic size_t hand;     /* the next record asked to give way, in registration order */
    pthread_mutex_t log_lock;/* guards log */
    aimdb_log_limit log;
} aimdb_memory;

void aimdb_memory_init(aimdb_memory *m, size_t max_memory);
void aimdb_memory_destroy(aimdb_memory *m);
static inline void aimdb_memory_add(aimdb_memory *m, size_t bytes) {
    if (m) atomic_fetch_add_explicit(&m->held, bytes, memory_order_relaxed);
}
static inline void aimdb_memory_sub(aimdb_memory *m, size_t bytes) {
    if (m) atomic_fetch_sub_explicit(&m->held, bytes, memory_order_relaxed);
}
static inline bool aimdb_memory_over(const aimdb_memory *m) {
    return m && atomic_load_explicit(&m->held, memory_order_relaxed) > m->limit;
}
/* Count values that gave way and log it (rate-limited).  Any thread. */
void aimdb_memory_gave_way(aimdb_memory *m, const aimdb_runtime *rt, uint64_t values);

/* ----------------------------------------------------------------- buffer */

/* One stored value.  data grows to the largest value the slot has held and
 * is reused after that, so steady-state produce does not allocate.
 * A pointer to a slot, or into its data, is good only while the record lock
 * is held: a growing ring reallocs the slot array (and a fixed-size block),
 * so readers and taps copy out and peek_latest calls back under the lock. */
typedef struct aimdb_slot {
    unsigned char *data;
    size_t len;
    size_t cap;
    int64_t ts_ms;
    uint64_t seq;
    const char *source; /* aimdb_value.source: the producer's, never freed here */
} aimdb_slot;

/*
 * A ring starts with this many slots and doubles on demand up to its
 * capacity.  Most records a wildcard rule opens hold a value or a few, and
 * a ring:1024 allocated up front costs 1024 slots (40 KiB on 64-bit) each;
 * 8 slots is 320 bytes, one small malloc bin, enough for the sparse ones
 * never to grow, while a busy ring reaches 1024 in 7 doublings.
 */
#define AIMDB_RING_INITIAL_SLOTS 8u

/*
 * The value store of one record; every field is guarded by the owning
 * record's lock.  Sequence numbers start at 1 and never repeat, so a cursor
 * (the next seq a reader wants) is all a reader needs to know where it is:
 *   ring    holds seqs [oldest, next_seq) with oldest = max(1, next_seq - n,
 *           first_seq),
 *           seq s living in slots[(s - 1) % n], n = nslots; n grows from
 *           min(capacity, AIMDB_RING_INITIAL_SLOTS) to capacity and the
 *           ring wraps only at capacity (below it, oldest is 1);
 *   latest  and mailbox hold seq next_seq - 1 in slots[0] (if next_seq > 1);
 *   mailbox_full says whether a mailbox reader may still take it.
 */
typedef struct aimdb_buffer {
    aimdb_buffer_cfg cfg;
    size_t fixed_size; /* codec size; 0 = variable */
    aimdb_slot *slots;
    uint32_t nslots;   /* slots in use; a ring's double up to capacity */
    uint32_t slots_alloc; /* slots allocated (more than nslots after a failed growth) */
    uint64_t next_seq;
    /* A ring's values below first_seq gave way to max_memory (their slots
     * hold no bytes): it holds seqs [max(first_seq, oldest), next_seq). */
    uint64_t first_seq;
    bool mailbox_full;
    aimdb_memory *mem; /* charged with every byte allocated here; NULL: none */
} aimdb_buffer;

typedef enum aimdb_read_mode {
    AIMDB_READ_STREAM,   /* ring readers and every tap: follow the cursor */
    AIMDB_READ_TAKE      /* mailbox readers: consume the single slot */
} aimdb_read_mode;

int aimdb_buffer_init(aimdb_buffer *b, const aimdb_buffer_cfg *cfg, size_t fixed_size,
                      aimdb_memory *mem);
void aimdb_buffer_free(aimdb_buffer *b);
/* Store a copy, growing a ring that is full below its capacity;
 * AIMDB_ENOMEM leaves the buffer unchanged.  *overwritten is set when a
 * mailbox value nobody took is replaced. */
int aimdb_buffer_put(aimdb_buffer *b, const void *data, size_t len, int64_t ts_ms,
                     const char *source, bool *overwritten);
/* Free a ring's oldest value if it is older than its newest and than
 * `unread` (the first seq some tap has not read); false if there is none
 * such (or its bytes are a fixed-size block, which frees nothing). */
bool aimdb_buffer_give_way(aimdb_buffer *b, uint64_t unread);
/* Where a new reader (or tap) starts. */
uint64_t aimdb_buffer_start_cursor(const aimdb_buffer *b, bool is_tap);
/* Next value for *cursor: AIMDB_OK with *slot set (good until the record
 * lock is released), AIMDB_LAGGED with *missed, or AIMDB_EAGAIN.  Advances
 * *cursor. */
int aimdb_buffer_read(aimdb_buffer *b, aimdb_read_mode mode, uint64_t *cursor,
                      const aimdb_slot **slot, uint64_t *missed);
/* The held value n places before the newest (0: the newest), or NULL past
 * the oldest one held. */
const aimdb_slot *aimdb_buffer_back(const aimdb_buffer *b, uint64_t n);
/* Would a stream read at cursor find something (a value or a lag)? */
bool aimdb_buffer_pending(const aimdb_buffer *b, uint64_t cursor);

/* A growable private copy of a value, so callbacks run without the lock. */
typedef struct aimdb_scratch {
    unsigned char *data;
    size_t cap;
} aimdb_scratch;
int aimdb_scratch_reserve(aimdb_scratch *s, size_t n);
int aimdb_scratch_copy(aimdb_scratch *s, const aimdb_slot *slot, aimdb_value *out);

/* ------------------------------------------------------------------- taps */

/* Values (and bytes) one tap gets per turn on a worker, so one busy record
 * cannot starve the other records' taps. */
#define TAP_BATCH 64
#define TAP_BATCH_BYTES (256 * 1024)

struct aimdb_tap {
    aimdb_record *record;
    aimdb_tap_ops ops;
    void *ctx;
    uint64_t cursor;      /* guarded by record->lock */
    bool scheduled;       /* guarded by record->lock: queued or running */
    aimdb_tap *next;      /* record's tap list, append-only */
    aimdb_tap *next_ready;/* guarded by pool->lock: run-queue link */
    aimdb_scratch scratch;/* touched only by the worker running the tap */
    _Atomic uint64_t delivered, lag_events, missed;
};

/* --------------------------------------------------------------- readers */

struct aimdb_reader {
    aimdb_record *record;
    uint64_t cursor;      /* guarded by record->lock */
    aimdb_scratch scratch;
    aimdb_reader *prev, *next; /* record's open readers, guarded by record->lock */
};

/* ----------------------------------------------------------------- record */

typedef struct aimdb_attr {
    char *key;
    char *json;
} aimdb_attr;

struct aimdb_record {
    aimdb_db *db;
    char *name;
    const aimdb_codec *codec;
    aimdb_record *hash_next;  /* guarded by db->registry_lock */

    pthread_mutex_t lock;     /* guards everything below but the atomics */
    pthread_cond_t readable;  /* broadcast on produce when waiters > 0 */
    unsigned waiters;
    aimdb_buffer buffer;
    aimdb_tap *taps, *taps_tail;
    aimdb_reader *readers;
    aimdb_attr *attrs;
    size_t nattrs;

    _Atomic uint64_t produced, rejected, overwritten;
};

aimdb_record *aimdb_record_new(aimdb_db *db, const char *name, const aimdb_buffer_cfg *cfg,
                               const aimdb_codec *codec);
void aimdb_record_free(aimdb_record *rec);
/* Wake blocked readers so they notice the database stopped. */
void aimdb_record_wake_readers(aimdb_record *rec);
/* Wait for produce calls already inside the record's lock to finish. */
void aimdb_record_barrier(aimdb_record *rec);

/* ---------------------------------------------------------- worker pool */

typedef struct aimdb_pool aimdb_pool;

aimdb_pool *aimdb_pool_new(const aimdb_runtime *rt, unsigned workers);
int aimdb_pool_start(aimdb_pool *pool);
/* Queue a tap whose `scheduled` flag the caller has just set. */
void aimdb_pool_schedule(aimdb_pool *pool, aimdb_tap *tap);
/* A burst of produce calls on the calling thread (the relay's batches):
 * taps queued in between wake no worker until the end, which wakes as many
 * idle workers as taps were queued.  Not nested. */
void aimdb_pool_burst_begin(void);
void aimdb_pool_burst_end(void);
/* Run every queued tap dry, then join the workers. */
void aimdb_pool_drain_and_join(aimdb_pool *pool);
void aimdb_pool_free(aimdb_pool *pool);

/* ------------------------------------------------------------------- db */

aimdb_pool *aimdb_db_pool(aimdb_db *db);
aimdb_memory *aimdb_db_memory(aimdb_db *db);
/* Ask a few records other than `except` to give way, in turn, while the
 * buffers hold more than their budget; how many values gave way.  Takes
 * the registry's read lock and each record's lock: hold none. */
uint64_t aimdb_db_relieve_memory(aimdb_db *db, aimdb_record *except);
/* Make rec's oldest values give way while the buffers are over budget;
 * how many did.  rec->lock held. */
uint64_t aimdb_record_give_way_locked(aimdb_record *rec);
bool aimdb_db_accepting(const aimdb_db *db);

#endif
