/*
 * sqlite_queue.h -- the bounded row queue between the persist taps and a
 * history writer thread: slots reused without allocation, group commit
 * that adapts to load, flush waits, retention requests interleaved with row
 * batches.  Nothing in it is SQLite's: the PostgreSQL backend's writer
 * (core/postgres) runs on the same queue, so both backends batch, flush,
 * retry and drain by one set of rules.  Library aimdb_row_queue.
 */
#ifndef AIMDB_SQLITE_QUEUE_H
#define AIMDB_SQLITE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/aimdb.h"
#include "aimdb/persist.h"
#include "aimdb/runtime.h"

/* One queued row: name and JSON, each NUL-terminated, in one buffer that
 * grows to the largest row the slot has held and is then reused. */
typedef struct sq_slot {
    char *bytes;
    size_t cap;
    size_t name_len, json_len; /* json starts at bytes + name_len + 1 */
    bool has_source;           /* then the source, after json's NUL */
    size_t source_len;
    int64_t ts_ms;
    int64_t arrived_ms;        /* monotonic: when it was queued */
    size_t row_bytes;          /* bytes of the row it holds; 0 when free */
} sq_slot;

/* A free slot keeps a buffer up to this size for its next row. */
#define SQ_SLOT_KEEP_BYTES 1024

/* A retention request handed to the writer; lives on the caller's stack
 * until done.  The writer runs it one chunk at a time between batches. */
typedef struct sq_cleanup {
    const char *record;         /* NULL: every record not in except[] */
    const char *const *except;
    size_t n_except;
    int64_t cutoff_ms;
    uint64_t deleted;
    int rc;
    bool done;
    char *current;              /* writer only: record being swept (NULL form) */
    bool started;               /* writer only */
    struct sq_cleanup *next;
} sq_cleanup;

/*
 * The queue between callers (taps) and the writer.  One mutex guards it all.
 *
 * Group commit adapts to the load: a commit becomes due when batch_rows
 * rows wait (or the oldest waited flush_ms), and then takes every waiting
 * row up to half the queue.  A commit costs about one page write per
 * record it touches, whatever its row count, so under overload batches
 * grow until that cost is amortised, while the other half of the queue
 * keeps accepting rows.
 * Slots form a ring: [head, head + taken) belong to the writer, which reads
 * them without the lock while it commits; [head + taken, head + count) wait.
 * Invariants: taken <= count <= cap; row number k (1-based, in store order)
 * is finished (committed or dropped) iff k <= finished; accepted - finished
 * == count.
 */
typedef struct sq_queue {
    pthread_mutex_t lock;
    pthread_cond_t writer_wake; /* rows to commit, a cleanup, or closing */
    pthread_cond_t space;       /* a slot was freed */
    pthread_cond_t progress;    /* rows finished, a commit failed, a cleanup done */
    sq_slot *slots;
    uint32_t cap, head, count, taken;
    size_t max_bytes;          /* rows queued hold at most this (SIZE_MAX: no bound) */
    size_t queued_bytes;       /* bytes of the rows queued */
    size_t slot_bytes;         /* bytes of every slot's buffer, free slots too */
    uint32_t batch_rows;       /* rows waiting that make a commit due */
    uint32_t max_batch;        /* rows one transaction takes: half the queue */
    int64_t flush_ms;
    uint64_t accepted, finished, dropped;
    uint64_t flush_target;     /* rows up to here are due now (a flush waits) */
    uint64_t failed_commits;   /* bumped on every failed commit */
    uint32_t space_waiters;
    int64_t put_deadline_ms;   /* stopping: puts wait no longer than this (0: no bound) */
    bool closing;
    bool poked;                /* sq_queue_poke: the writer should check the file */
    bool rows_went_last;       /* alternation of row batches and cleanup chunks */
    bool background_went_last; /* alternation of row batches and background work */
    sq_cleanup *cleanups, *cleanups_tail;
} sq_queue;

typedef enum sq_work {
    SQ_WORK_ROWS,
    SQ_WORK_CLEANUP,
    SQ_WORK_CHECK,
    SQ_WORK_BACKGROUND, /* the writer's own work (SQLite: rollups to catch up) */
    SQ_WORK_EXIT
} sq_work;

int sq_queue_init(sq_queue *q, uint32_t cap, size_t max_bytes, uint32_t batch_rows,
                  int64_t flush_ms);
void sq_queue_destroy(sq_queue *q);
/* Copy a row in, waiting for space.  AIMDB_ESTOPPED once closing;
 * AIMDB_ETIMEDOUT when the wait outlasts the grace sq_queue_stopping set. */
int sq_queue_put(sq_queue *q, const char *name, size_t name_len, const char *json,
                 size_t json_len, int64_t ts_ms, const char *source);
/* How long a stopping database's rows may wait for a writer that cannot
 * commit: first for room in the queue (sq_queue_stopping), then, once the
 * queue is closing, for their commit (sq_retry_failed drops them after it). */
#define SQ_STOP_GRACE_MS 5000
/* The database is stopping and its taps are being drained into the queue:
 * from now on a put waits for room at most SQ_STOP_GRACE_MS after the
 * writer last freed some, so that a writer failing with the queue full (a
 * server down, a disk full) delays the stop by that much instead of
 * holding it for good, while one that commits, however slowly, loses
 * nothing. */
void sq_queue_stopping(sq_queue *q);
/* Wait until every row accepted before the call is finished.  AIMDB_EIO if a
 * commit failed meanwhile or any of them was dropped. */
int sq_queue_flush(sq_queue *q);
/* Hand a cleanup to the writer and wait for it; returns its rc. */
int sq_queue_run_cleanup(sq_queue *q, sq_cleanup *c);
/* Refuse new rows and cleanups; the writer drains what is queued. */
void sq_queue_close(sq_queue *q);
uint32_t sq_queue_depth(sq_queue *q);

/* Writer side.  Waits for work: a check of the file (poked, or check_at_ms
 * passed: monotonic, 0 = none), a cleanup (always eligible), or rows that
 * are due (batch full, oldest older than flush_ms, flush wanted, closing)
 * and not held back by retry_at_ms (monotonic; 0 = no backoff).  For rows,
 * *n = how many to commit: every waiting row up to max_batch (a retried
 * batch included), so under load transactions grow to half the queue; a
 * non-zero max_rows caps that further (retries after a failure).
 * background_at_ms: from then on (monotonic; 0 = never) the writer has
 * work of its own (SQ_WORK_BACKGROUND), taken when nothing else is waiting
 * and otherwise every other turn with rows, so neither starves. */
sq_work sq_queue_next_work(sq_queue *q, int64_t retry_at_ms, uint32_t max_rows,
                           int64_t check_at_ms, int64_t background_at_ms, uint32_t *n,
                           sq_cleanup **cleanup);
/* Any thread: have the writer return SQ_WORK_CHECK soon. */
void sq_queue_poke(sq_queue *q);
const sq_slot *sq_queue_taken(const sq_queue *q, uint32_t i);
/* The first n taken rows are finished: committed, or dropped if !committed.
 * Rows taken beyond n stay taken: they go first in the next transaction. */
void sq_queue_finish(sq_queue *q, uint32_t n, bool committed);
/* Drop everything still queued (shutdown gave up); returns how many. */
uint32_t sq_queue_drop_all(sq_queue *q);
void sq_queue_commit_failed(sq_queue *q);
void sq_queue_cleanup_done(sq_queue *q, sq_cleanup *c);
bool sq_queue_closing(sq_queue *q);

/* Retention through the writer: hand it the cleanup of record (NULL: every
 * record not in except[]) below cutoff_ms and wait; *deleted (if not NULL)
 * grows by the rows it deleted.  AIMDB_EINVAL for n_except without except. */
int sq_queue_cleanup(sq_queue *q, const char *record, const char *const *except,
                     size_t n_except, int64_t cutoff_ms, uint64_t *deleted);

/* What a writer thread counts; written by the writer, read by any thread. */
typedef struct sq_writer_counts {
    _Atomic uint64_t rows_stored, rows_failed, write_errors, batches;
    _Atomic uint32_t last_batch_rows;
    _Atomic int64_t last_commit_us;
} sq_writer_counts;

/* A writer thread's retry state, one policy for every backend: after a
 * failed commit the next waits a backoff doubling from 50 ms to 5 s;
 * failures and resumption are logged at most once per 10 s each; once the
 * queue is closing, failures go on for 5 s more, then the rows still
 * queued are given up (counted in rows_failed).  max_rows (0 = no cap) is
 * the caller's: how many rows the next attempt may take.  Only the writer
 * thread touches it. */
typedef struct sq_retry {
    int64_t retry_at;   /* monotonic ms; 0 = not backing off */
    int64_t backoff;
    int64_t give_up_at; /* set once failing while closing */
    uint64_t failures;  /* consecutive */
    uint32_t max_rows;
    aimdb_log_limit error_log, resume_log; /* kept across resets */
} sq_retry;

/* Writer: a commit of n taken rows to `where` failed for `why`: counted,
 * the rows kept for the retry (or, closing and past the grace, every
 * queued row dropped), backed off and logged. */
void sq_retry_failed(sq_retry *r, sq_queue *q, sq_writer_counts *c, const aimdb_runtime *rt,
                     const char *where, uint32_t n, const char *why);
/* Writer: the n taken rows committed to `where`: finished in q; after
 * failures, their end logged; the retry state cleared. */
void sq_retry_committed(sq_retry *r, sq_queue *q, const aimdb_runtime *rt, const char *where,
                        uint32_t n);
/* Writer: the retry state cleared (no backoff, no cap), the log limits kept. */
void sq_retry_reset(sq_retry *r);

/* Writer: a batch of n rows committed in commit_us. */
void sq_writer_counts_committed(sq_writer_counts *c, uint32_t n, int64_t commit_us);
/* Writer: a transaction failed (rows or rollup lines; retried). */
void sq_writer_counts_failed(sq_writer_counts *c);
/* The counts and q's depth and capacity into *out; other fields untouched. */
void sq_writer_counts_read(sq_writer_counts *c, sq_queue *q, aimdb_backend_stats *out);

#endif
