/*
 * aimdb.h -- the AimDB core: named records, typed buffers, producers, readers,
 * taps, extensions.
 *
 * A record is a named stream of values of one codec, kept in a buffer:
 *   ring:N   the last N values; a reader that falls behind is told exactly how
 *            many it missed and resumes at the oldest value still held;
 *   latest   only the newest value; a late reader gets it once;
 *   mailbox  one slot; each value goes to exactly one reader.
 * Any thread may produce and a producer never waits for a consumer.  Taps are
 * callbacks run in order on the runtime's fixed worker pool; a slow tap lags
 * (counted), it never slows a producer.
 *
 * Errors are negative aimdb_status codes; aimdb_strerror() names them.
 * Unless a function says otherwise it is safe to call from any thread.
 */
#ifndef AIMDB_AIMDB_H
#define AIMDB_AIMDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aimdb/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aimdb_status {
    AIMDB_OK = 0,
    AIMDB_LAGGED = 1,      /* reader fell behind; *missed says by how much */
    AIMDB_EINVAL = -1,     /* bad argument */
    AIMDB_EEXIST = -2,     /* name taken with a different codec or buffer */
    AIMDB_ENOMEM = -3,
    AIMDB_ENOTFOUND = -4,
    AIMDB_EAGAIN = -5,     /* nothing to receive right now */
    AIMDB_ETIMEDOUT = -6,
    AIMDB_ESTOPPED = -7,   /* the database is stopping or stopped */
    AIMDB_ETOOBIG = -8,    /* value larger than the configured maximum */
    AIMDB_ESTATE = -9,     /* call not valid in the database's current phase */
    AIMDB_EIO = -10,       /* a backend or system call failed (see the log) */
    AIMDB_EFULL = -11,     /* the database holds max_records records already */
    AIMDB_EBUSY = -12,     /* a queue is at its limit: its consumer is behind */
    AIMDB_EFORMAT = -13    /* bytes that are no value of the record's codec (accepts) */
} aimdb_status;

const char *aimdb_strerror(int status);

/* Format a reason into err[0..errlen) as snprintf does; nothing when err is
 * NULL or errlen 0, so callers pass on whatever buffer they were given. */
void aimdb_errorf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct aimdb_db aimdb_db;
typedef struct aimdb_record aimdb_record;
typedef struct aimdb_reader aimdb_reader;
typedef struct aimdb_tap aimdb_tap;

/* ------------------------------------------------------------------ codecs */

/*
 * How a record's bytes become JSON and back.  Two codecs are the same codec
 * when every field is equal; registering a known name with another codec is
 * AIMDB_EEXIST.  All functions must be pure and thread-safe.
 */
typedef struct aimdb_codec {
    const char *name;  /* e.g. "double", "json", "mqtt-auto" */
    size_t size;       /* fixed value size in bytes; 0 = variable length */
    /* snprintf-style: write the JSON text of value into out (NUL-terminated
     * when cap > 0) and return its length, or -1 if it has no JSON form. */
    long (*to_json)(const void *value, size_t len, char *out, size_t cap);
    /* Parse JSON text into out; return the value's length (which may exceed
     * cap: call again with a larger buffer), or -1 if the JSON is invalid. */
    long (*from_json)(const char *json, size_t json_len, void *out, size_t cap);
    /* Optional: whether bytes are a value of this codec at all.  NULL takes
     * any bytes (of `size`, if fixed).  aimdb_produce refuses the others
     * (AIMDB_EFORMAT) before they reach the buffer, so no reader, tap or
     * record.get ever sees them: a codec whose to_json can fail for some
     * bytes sets it to keep values without a JSON form out of its records.
     * It runs on the producer's thread, for every value. */
    bool (*accepts)(const void *value, size_t len);
} aimdb_codec;

extern const aimdb_codec aimdb_codec_double; /* 8-byte double <-> JSON number */
extern const aimdb_codec aimdb_codec_int64;  /* int64_t <-> JSON integer */
extern const aimdb_codec aimdb_codec_json;   /* variable bytes holding JSON text */

/* ----------------------------------------------------------------- buffers */

typedef enum aimdb_buffer_kind {
    AIMDB_BUFFER_RING,
    AIMDB_BUFFER_LATEST,
    AIMDB_BUFFER_MAILBOX
} aimdb_buffer_kind;

typedef struct aimdb_buffer_cfg {
    aimdb_buffer_kind kind;
    uint32_t capacity; /* ring only: 1 .. AIMDB_RING_MAX */
} aimdb_buffer_cfg;

#define AIMDB_RING_MAX 1048576u
#define AIMDB_BUFFER_DEFAULT ((aimdb_buffer_cfg){AIMDB_BUFFER_RING, 1024})

/* Parse "ring:N", "latest" or "mailbox".  Returns AIMDB_OK or AIMDB_EINVAL. */
int aimdb_buffer_parse(const char *text, aimdb_buffer_cfg *out);
/* Write the canonical text form ("ring:500"); snprintf semantics. */
int aimdb_buffer_format(const aimdb_buffer_cfg *cfg, char *out, size_t cap);

/* ---------------------------------------------------------------- database */

typedef struct aimdb_db_options {
    const aimdb_runtime *runtime; /* NULL: aimdb_runtime_pthread() */
    unsigned workers;             /* tap worker threads; 0: 2 */
    size_t max_value_bytes;       /* largest variable value; 0: 1 MiB */
    size_t max_records;           /* registering a new name beyond it: AIMDB_EFULL; 0: no limit */
    /* Bytes held for values; 0: no bound.  Record buffers and relay
     * backlogs (relay.h) share three quarters of it: past that a produce
     * makes the oldest live values give way (its own record's first, then
     * other records' in turn), never a record's newest value nor one a tap
     * has not read yet.  The last quarter is for a history write queue,
     * which its backend is given (sqlite.h queue_bytes). */
    size_t max_memory;
} aimdb_db_options;

/* Create an empty, unstarted database.  opts may be NULL.  NULL on ENOMEM. */
aimdb_db *aimdb_db_new(const aimdb_db_options *opts);

/* Start the worker pool, then run the on_start hooks in registration order.
 * A hook's non-zero return stops the database again and is returned. */
int aimdb_db_start(aimdb_db *db);

/*
 * Stop: refuse new values, run the on_stopping hooks (in reverse order), run
 * every tap over every value produced before the call, join the workers, run
 * the on_stop hooks (in reverse order), and wake blocked readers with
 * AIMDB_ESTOPPED.  Idempotent.  Must not be called from a tap callback.
 */
void aimdb_db_stop(aimdb_db *db);

/* Stop if needed, then free every record, reader, tap and extension.  The
 * caller must hold no reader, tap or record pointer afterwards. */
void aimdb_db_free(aimdb_db *db);

typedef int (*aimdb_hook_fn)(aimdb_db *db, void *ctx);
/* Hooks must be added before aimdb_db_start; AIMDB_ESTATE after. */
int aimdb_db_on_start(aimdb_db *db, aimdb_hook_fn fn, void *ctx);
/* on_stopping runs before the taps are drained, on the stopping thread: for
 * a tap that may wait (on a full queue) to bound that wait, so the drain ends. */
int aimdb_db_on_stopping(aimdb_db *db, aimdb_hook_fn fn, void *ctx);
int aimdb_db_on_stop(aimdb_db *db, aimdb_hook_fn fn, void *ctx);

const aimdb_runtime *aimdb_db_runtime(const aimdb_db *db);
bool aimdb_db_running(const aimdb_db *db);
/* The largest variable-length value produce accepts (max_value_bytes). */
size_t aimdb_db_max_value_bytes(const aimdb_db *db);

typedef struct aimdb_memory_stats {
    size_t limit;      /* bytes buffers and relays may hold (3/4 of max_memory); 0: none */
    size_t held;       /* bytes record buffers and relay backlogs hold now */
    uint64_t evicted;  /* values that gave way to stay within limit */
} aimdb_memory_stats;
void aimdb_db_memory_stats(aimdb_db *db, aimdb_memory_stats *out);

/*
 * Extensions: a keyed map where optional layers (persistence, protocols) keep
 * their state.  The db owns value once set and calls free_fn(value) in
 * aimdb_db_free.  Setting an existing key is AIMDB_EEXIST.
 */
int aimdb_ext_set(aimdb_db *db, const char *key, void *value, void (*free_fn)(void *));
void *aimdb_ext_get(aimdb_db *db, const char *key);

/* ----------------------------------------------------------------- records */

/*
 * Register a record (before or after start).  Names are unique: the same name
 * with the same codec and buffer returns the existing record; with another
 * codec or buffer it is AIMDB_EEXIST; a new name when the db holds
 * max_records records is AIMDB_EFULL.  codec must outlive the db.  Records
 * live until aimdb_db_free, so *out stays valid that long.
 */
int aimdb_record_register(aimdb_db *db, const char *name, const aimdb_buffer_cfg *buffer,
                          const aimdb_codec *codec, aimdb_record **out);

/* Look a record up by exact name; NULL if unknown. */
aimdb_record *aimdb_db_find(aimdb_db *db, const char *name);

/* Call fn for every record, in registration order, until fn returns non-zero
 * (which is returned).  fn must not register records. */
int aimdb_db_foreach_record(aimdb_db *db, int (*fn)(aimdb_record *rec, void *ctx), void *ctx);
/* The same for the records whose name matches pattern (aimdb_pattern_match;
 * NULL = "*"), in name order: O(log records + records sharing the
 * pattern's literal prefix).  AIMDB_ENOMEM if the name order could not be
 * brought up to date.  fn must not register records. */
int aimdb_db_foreach_matching(aimdb_db *db, const char *pattern,
                              int (*fn)(aimdb_record *rec, void *ctx), void *ctx);
size_t aimdb_db_record_count(aimdb_db *db);

/*
 * Record-name patterns, one rule everywhere (docs/protocol.md: record.query,
 * record.list, history backends): '*' matches any run of characters, also
 * an empty one; every other byte ('%', '_', '?', '[' and '\' included)
 * matches only itself, case-sensitively.  Pure and thread-safe.
 */
/* Does name match pattern?  pattern NULL means "*".  O(len(pattern) *
 * len(name)) worst case. */
bool aimdb_pattern_match(const char *pattern, const char *name);
/* Bytes before the first '*': the part an index can seek to.  A pattern with
 * no '*' names exactly one record (prefix_len == strlen); NULL gives 0. */
size_t aimdb_pattern_prefix_len(const char *pattern);

const char *aimdb_record_name(const aimdb_record *rec);
const aimdb_codec *aimdb_record_codec(const aimdb_record *rec);
aimdb_buffer_cfg aimdb_record_buffer(const aimdb_record *rec);

/* Free-form attributes that describe a record to clients (record.list):
 * key -> JSON text.  Copied; replacing a key is allowed. */
int aimdb_record_set_attr(aimdb_record *rec, const char *key, const char *json);
/* Same, with value a plain string that is JSON-escaped here. */
int aimdb_record_set_attr_string(aimdb_record *rec, const char *key, const char *value);
/* Call fn(key, json) for each attribute in insertion order (under a lock:
 * fn must be short and must not touch this record's attributes). */
void aimdb_record_foreach_attr(aimdb_record *rec,
                               void (*fn)(const char *key, const char *json, void *ctx),
                               void *ctx);

typedef struct aimdb_record_stats {
    uint64_t produced;  /* values accepted */
    uint64_t rejected;  /* values refused (too big, wrong size, no memory, stopped) */
    uint64_t overwritten; /* values dropped by the buffer before any reader took them (mailbox) */
} aimdb_record_stats;
void aimdb_record_stats_get(aimdb_record *rec, aimdb_record_stats *out);

/* ------------------------------------------------------------ values, I/O */

typedef struct aimdb_value {
    const void *data;
    size_t len;
    int64_t ts_ms;  /* produce time, Unix milliseconds */
    uint64_t seq;   /* 1-based position in the record's stream */
    /* Where the value came from (the MQTT topic, in the plugin and the
     * bridge), as the producer gave it, or NULL.  The core keeps the
     * pointer, never the text: see aimdb_produce_from. */
    const char *source;
} aimdb_value;

/*
 * Produce a value stamped with the runtime's clock (or ts_ms).  Copies the
 * bytes; never waits for a consumer.  AIMDB_EINVAL if a fixed-size codec gets
 * another length, AIMDB_EFORMAT if the codec does not accept the bytes,
 * AIMDB_ETOOBIG over max_value_bytes, AIMDB_ESTOPPED after
 * stop, AIMDB_ENOMEM if the value cannot be stored (a ring growing, a
 * larger payload); refusals are counted in the record's rejected.
 * Steady-state produce does not allocate.
 */
int aimdb_produce(aimdb_record *rec, const void *data, size_t len);
int aimdb_produce_at(aimdb_record *rec, const void *data, size_t len, int64_t ts_ms);
/* The same with the value's source (aimdb/access.h decides visibility by
 * it; history stores its text).  source is not copied: it must stay valid
 * until aimdb_db_free -- an interned string the producer owns. */
int aimdb_produce_from(aimdb_record *rec, const void *data, size_t len, int64_t ts_ms,
                       const char *source);

/* Call fn with the newest value the record holds, without consuming it (a
 * mailbox keeps its value).  fn runs under the record's lock: copy and return.
 * AIMDB_ENOTFOUND if nothing was ever produced. */
int aimdb_record_peek_latest(aimdb_record *rec, void (*fn)(const aimdb_value *v, void *ctx),
                             void *ctx);
/* The same for the newest value that keep() accepts, looking back through
 * every value the buffer still holds (a ring's last N; latest and mailbox
 * hold one).  keep also runs under the lock: decide from v alone.
 * AIMDB_ENOTFOUND if no held value is kept. */
int aimdb_record_peek_newest_where(aimdb_record *rec,
                                   bool (*keep)(const aimdb_value *v, void *ctx),
                                   void (*fn)(const aimdb_value *v, void *ctx), void *ctx);

/* Subscribe.  A ring reader sees values produced after this call; a latest
 * reader first gets the current value (if any) once; a mailbox reader
 * competes with the others.  Free with aimdb_reader_close. */
int aimdb_reader_open(aimdb_record *rec, aimdb_reader **out);

/*
 * Receive the next value into *out (data valid until the reader's next call).
 * AIMDB_LAGGED sets *missed to the exact count of values lost (ring only); the
 * next call returns the oldest value still held.  recv waits up to timeout_ms
 * (< 0: forever) and returns AIMDB_ETIMEDOUT; try_recv returns AIMDB_EAGAIN.
 * AIMDB_ESTOPPED once the database stops.  One thread per reader at a time.
 */
int aimdb_reader_recv(aimdb_reader *r, int64_t timeout_ms, aimdb_value *out, uint64_t *missed);
int aimdb_reader_try_recv(aimdb_reader *r, aimdb_value *out, uint64_t *missed);
void aimdb_reader_close(aimdb_reader *r);

/* -------------------------------------------------------------------- taps */

typedef struct aimdb_tap_ops {
    /* One value, in produce order, on a worker thread.  v->data is valid for
     * the call only. */
    void (*on_value)(const aimdb_value *v, void *ctx);
    /* Optional: the tap fell behind a ring and lost `missed` values. */
    void (*on_lag)(uint64_t missed, void *ctx);
} aimdb_tap_ops;

/*
 * Attach a tap: ops run on the worker pool, never on the producer's thread,
 * one call at a time per tap, in order.  Taps observe and never consume: on a
 * ring a tap sees every value unless it lags; on latest and mailbox it sees
 * the newest value when it runs.  ctx must stay valid until aimdb_db_stop
 * returns.  The tap is owned by the record.
 */
int aimdb_tap_add(aimdb_record *rec, const aimdb_tap_ops *ops, void *ctx, aimdb_tap **out);

typedef struct aimdb_tap_stats {
    uint64_t delivered;  /* on_value calls */
    uint64_t lag_events; /* times the tap fell behind */
    uint64_t missed;     /* values it never saw because of lag */
} aimdb_tap_stats;
void aimdb_tap_stats_get(aimdb_tap *tap, aimdb_tap_stats *out);

#ifdef __cplusplus
}
#endif
#endif
