/*
 * sqlite_rollup.c -- hourly rollups: what makes aggregates over months fast.
 *
 * Measured first (bench_sqlite --aggregate, 172,800 rows = 30 days of one
 * record at 15 s, into hourly buckets, best of 5 on the shared 2-core
 * machine): SQL GROUP BY with json_extract takes 287 ms and reading the
 * rows and decoding in C 147 ms; only stepping the index without reading
 * a value (14 ms) is within the 20 ms goal, and a year (2.1M rows) is 12x
 * all of these.  With the lines below the same month takes 2.8 ms p50 and
 * the year into days 11.5 ms (README, Performance).  So the writer
 * keeps record_rollup: per record, hour (UTC, a multiple of 3,600,000 ms),
 * topic and field, the count, sum, min, max, and first/last with their row
 * ids -- all mergeable, so any bucket that is a whole number of hours is a
 * sum of lines.  A month is 720 lines per field, a year 8,760.
 *
 * Which rows the lines hold is one number, rolled_up_to (W): every row with
 * id <= W and no other, updated in the same transaction as the lines.  When it is
 * caught up (ids W+1..) the writer adds each batch's rows up in memory as
 * it inserts them and stores the lines, with W, in the transaction of the
 * first batch ROLLUP_STORE_MS after the oldest row they hold (or on their
 * own when no batch comes): one upsert per line a second rather than per
 * line a batch, which at a 100 ms flush over 1,000 records was a quarter
 * of the writer's CPU.  Rows the lines miss (another tool inserted them, a
 * database from before rollups existed, a batch whose commit failed after
 * its rows were added up) are caught up from the table in chunks between
 * batches.
 * A query therefore reads, inside one snapshot:
 *   - lines for the whole hours inside [start, end] (rows id <= W);
 *   - the rows of the partial hours at either end, via the index;
 *   - the rows with id > W in the whole hours, via the index from the
 *     oldest such row's time (usually the last second; everything when W
 *     lags far behind).
 * Exact at any moment, never double counting (on a file: ":memory:" reads
 * uncommitted pages, see sqlite_backend.c, so there an aggregate racing a
 * commit may count that batch twice or not at all).  Fields: the line with field
 * "" is the value itself and counts every value (rows), so a field's
 * skipped values are rows - n; the writer rolls up every number a path can
 * reach (aimdb_value_numbers), and a value it cannot fully enumerate is
 * counted in "partial", which sends field queries on that hour to the rows.
 * Widths that are not whole hours read rows only.
 *
 * Retention deletes whole hours of lines with the rows, and rebuilds the
 * hour the cutoff falls in from the rows left.  Rows deleted by other tools
 * stay in the lines (DELETE FROM record_rollup and the state row rebuilds
 * them at the next start).
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/hash.h"
#include "aimdb/json.h"
#include "sqlite_internal.h"

#define ROLLUP_MAX_FIELDS 32        /* numbers rolled up per value */
#define CATCH_UP_ROWS 20000         /* rows per catch-up transaction */
#define TAIL_SCAN_MAX 200000        /* beyond this lag, queries do not look for its oldest row */
/* How long rows wait in memory for their lines to be stored: at most this
 * much of the newest history is read from rows by aggregates. */
#define ROLLUP_STORE_MS 1000
#define ROLLUP_STORE_LINES 16384    /* ... or until the map holds this many lines */

/* ------------------------------------------------------------ the map */

/* One line being added up: key = record NUL topic NUL field NUL. */
typedef struct rollup_line {
    char *key;
    size_t record_len, topic_len, field_len;
    int64_t bucket;
    int64_t rows, partial, n;
    double sum, min, max, first, last;
    int64_t first_at, first_id, last_at, last_id;
} rollup_line;

struct sq_rollup_map {
    rollup_line *lines;
    size_t n, cap;
    int32_t *slots; /* open addressing into lines, -1 free, at most half full */
    size_t n_slots;
};

static uint64_t line_hash(const char *key, size_t len, int64_t bucket) {
    return aimdb_hash(AIMDB_HASH_SEED ^ (uint64_t)bucket, key, len);
}

static size_t key_len(const rollup_line *l) {
    return l->record_len + l->topic_len + l->field_len + 3;
}

static bool map_grow(sq_rollup_map *m) {
    size_t n = m->n_slots ? m->n_slots * 2 : 256;
    int32_t *slots = malloc(n * sizeof(*slots));
    if (!slots) return false;
    memset(slots, 0xff, n * sizeof(*slots));
    for (size_t i = 0; i < m->n; i++) {
        size_t at = line_hash(m->lines[i].key, key_len(&m->lines[i]), m->lines[i].bucket) & (n - 1);
        while (slots[at] >= 0) at = (at + 1) & (n - 1);
        slots[at] = (int32_t)i;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n;
    return true;
}

static rollup_line *map_line(sq_rollup_map *m, const char *record, const char *topic,
                             const char *field, size_t field_len, int64_t bucket) {
    if ((m->n + 1) * 2 > m->n_slots && (m->n >= INT32_MAX / 4 || !map_grow(m))) return NULL;
    size_t rl = strlen(record), tl = strlen(topic), len = rl + tl + field_len + 3;
    char key[AIMDB_FIELD_MAX * 2 + 64], *k = len <= sizeof(key) ? key : malloc(len);
    if (!k) return NULL;
    memcpy(k, record, rl + 1);
    memcpy(k + rl + 1, topic, tl + 1);
    memcpy(k + rl + tl + 2, field, field_len);
    k[len - 1] = '\0';
    size_t at = line_hash(k, len, bucket) & (m->n_slots - 1);
    rollup_line *found = NULL;
    for (; m->slots[at] >= 0; at = (at + 1) & (m->n_slots - 1)) {
        rollup_line *l = &m->lines[m->slots[at]];
        if (l->bucket == bucket && key_len(l) == len && memcmp(l->key, k, len) == 0) {
            found = l;
            break;
        }
    }
    if (!found && m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        rollup_line *grown = realloc(m->lines, cap * sizeof(*grown));
        if (grown) m->lines = grown, m->cap = cap;
    }
    if (!found && m->n < m->cap) {
        char *owned = k == key ? malloc(len) : k;
        if (owned) {
            if (owned != k) memcpy(owned, k, len);
            k = owned;
            m->slots[at] = (int32_t)m->n;
            found = &m->lines[m->n++];
            *found = (rollup_line){.key = owned, .record_len = rl, .topic_len = tl,
                                   .field_len = field_len, .bucket = bucket};
        }
    }
    if (k != key && (!found || found->key != k)) free(k);
    return found;
}

static void map_clear(sq_rollup_map *m) {
    for (size_t i = 0; i < m->n; i++) free(m->lines[i].key);
    m->n = 0;
    if (m->slots) memset(m->slots, 0xff, m->n_slots * sizeof(*m->slots));
}

void sq_rollup_map_free(sq_rollup_map *m) {
    if (!m) return;
    map_clear(m);
    free(m->lines);
    free(m->slots);
    free(m);
}

/* first/last by (stored_at, id), as aimdb_bucket says. */
static void line_add(rollup_line *l, double v, int64_t ts, int64_t id) {
    if (l->n == 0 || v < l->min) l->min = v;
    if (l->n == 0 || v > l->max) l->max = v;
    if (l->n == 0 || ts < l->first_at || (ts == l->first_at && id < l->first_id))
        l->first = v, l->first_at = ts, l->first_id = id;
    if (l->n == 0 || ts > l->last_at || (ts == l->last_at && id > l->last_id))
        l->last = v, l->last_at = ts, l->last_id = id;
    l->n++;
    l->sum += v;
}

/* ------------------------------------------------------- adding rows */

typedef struct row_in {
    sq_rollup_map *m;
    const char *record, *topic;
    int64_t bucket, ts, id;
    bool failed;
} row_in;

static void add_number(const char *field, size_t field_len, double v, void *ctx) {
    row_in *r = ctx;
    rollup_line *l = map_line(r->m, r->record, r->topic, field, field_len, r->bucket);
    if (!l) r->failed = true;
    else line_add(l, v, r->ts, r->id);
}

/* The hour holding ts; ts >= INT64_MIN + SQ_ROLLUP_MS (callers check). */
static int64_t hour_of(int64_t ts) {
    int64_t into = ts % SQ_ROLLUP_MS;
    if (into < 0) into += SQ_ROLLUP_MS;
    return ts - into;
}

/* One row into the map.  Rows that are not JSON are in no line, as the
 * layer's own aggregation leaves them out. */
static int rollup_row(sq_rollup_map *m, const char *record, const char *json, size_t len,
                      int64_t ts, const char *topic, int64_t id) {
    if (ts < INT64_MIN + SQ_ROLLUP_MS || !aimdb_json_valid(json, len)) return SQLITE_OK;
    row_in r = {.m = m, .record = record, .topic = topic ? topic : "", .bucket = hour_of(ts),
                .ts = ts, .id = id};
    rollup_line *all = map_line(m, record, r.topic, "", 0, r.bucket);
    if (!all) return SQLITE_NOMEM;
    all->rows++;
    if (!aimdb_value_numbers(json, len, ROLLUP_MAX_FIELDS, add_number, &r)) {
        all = map_line(m, record, r.topic, "", 0, r.bucket);
        if (all) all->partial++;
        else r.failed = true;
    }
    return r.failed ? SQLITE_NOMEM : SQLITE_OK;
}

/* Every line of the map upserted into record_rollup, then the map emptied. */
static int map_store(sq_backend *b, sq_rollup_map *m) {
    sqlite3_stmt *st = b->rollup_upsert;
    int rc = SQLITE_OK;
    for (size_t i = 0; i < m->n && rc == SQLITE_OK; i++) {
        const rollup_line *l = &m->lines[i];
        sqlite3_bind_text(st, 1, l->key, (int)l->record_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, l->key + l->record_len + l->topic_len + 2, (int)l->field_len,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, l->bucket);
        sqlite3_bind_text(st, 4, l->key + l->record_len + 1, (int)l->topic_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, l->rows);
        sqlite3_bind_int64(st, 6, l->partial);
        sqlite3_bind_int64(st, 7, l->n);
        sqlite3_bind_double(st, 8, l->sum);
        double stats[] = {l->min, l->max, l->first, l->last};
        for (int k = 0; k < 4; k++) {
            if (l->n) sqlite3_bind_double(st, 9 + k, stats[k]);
            else sqlite3_bind_null(st, 9 + k);
        }
        int64_t orders[] = {l->first_at, l->first_id, l->last_at, l->last_id};
        for (int k = 0; k < 4; k++) sqlite3_bind_int64(st, 13 + k, l->n ? orders[k] : 0);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    map_clear(m);
    return rc;
}

static int set_rolled_up_to(sq_backend *b, int64_t w) {
    sqlite3_bind_int64(b->rollup_set_w, 1, w);
    int rc = sqlite3_step(b->rollup_set_w);
    sqlite3_reset(b->rollup_set_w);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One integer from sql: SQLITE_ROW (*out set), SQLITE_DONE (no row, or
 * NULL: *out = 0) or the failure. */
static int single_int(sqlite3 *db, const char *sql, int64_t *out) {
    sqlite3_stmt *st;
    *out = 0;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_ROW)
        rc = SQLITE_DONE;
    sqlite3_finalize(st);
    return rc;
}

/* Where the lines stand in this file.  Until it is known nothing is rolled
 * up: guessing 0 would add rows the lines already hold a second time. */
static int know_where(sq_backend *b) {
    if (b->rollup_known) return SQLITE_OK;
    int64_t w, max_id;
    int rc = single_int(b->wdb, SQ_ROLLUP_GET_W_SQL, &w);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = single_int(b->wdb, "SELECT max(id) FROM record_history", &max_id);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    b->rolled_up_to = b->rollup_mapped_to = w;
    b->rollup_behind = max_id > w;
    b->rollup_known = true;
    return SQLITE_OK;
}

/* ------------------------------------------------------------ writer */

/* Nothing is read here: opening must not touch the data pages (a file
 * whose pages are damaged opens, and its first write finds it out). */
int sq_rollup_open(sq_backend *b) {
    if (!b->rollup_map) b->rollup_map = calloc(1, sizeof(*b->rollup_map));
    if (!b->rollup_map) return SQLITE_NOMEM;
    map_clear(b->rollup_map);
    b->rollup_store_at = 0;
    b->rollup_mapped_to = b->rolled_up_to;
    b->rollup_known = false;
    b->rollup_behind = true; /* until know_where says */
    b->rollup_retry_at = 0;
    return SQLITE_OK;
}

/* The lines of every row up to rollup_mapped_to, stored with that W in
 * the transaction open on the write connection; the commit makes it
 * rolled_up_to (sq_rollup_batch_done). */
static int store_lines(sq_backend *b) {
    b->rollup_store_at = 0;
    if (b->rollup_mapped_to == b->rolled_up_to) return SQLITE_OK;
    int rc = map_store(b, b->rollup_map);
    if (rc == SQLITE_OK) rc = set_rolled_up_to(b, b->rollup_mapped_to);
    if (rc == SQLITE_OK) b->rollup_pending = b->rollup_mapped_to;
    return rc;
}

/* Rows were added up that no committed line holds (their transaction
 * failed): the lines start over from W, read back from the table. */
static void forget_lines(sq_backend *b) {
    map_clear(b->rollup_map);
    b->rollup_store_at = 0;
    b->rollup_mapped_to = b->rolled_up_to;
    b->rollup_behind = true;
}

int sq_rollup_batch(sq_backend *b, uint32_t n) {
    int64_t last = sqlite3_last_insert_rowid(b->wdb), first = last - n + 1;
    b->rollup_pending = 0;
    if (!b->rollup_known || b->rollup_behind) return SQLITE_OK; /* the catch-up takes these */
    if (first != b->rollup_mapped_to + 1) {
        /* Rows someone else inserted come first: the lines so far are
         * stored, the rest is caught up. */
        b->rollup_behind = true;
        return store_lines(b);
    }
    int rc = SQLITE_OK;
    for (uint32_t i = 0; i < n && rc == SQLITE_OK; i++) {
        const sq_slot *s = sq_queue_taken(&b->queue, i);
        const char *json = s->bytes + s->name_len + 1;
        rc = rollup_row(b->rollup_map, s->bytes, json, s->json_len, s->ts_ms,
                        s->has_source ? json + s->json_len + 1 : NULL, first + i);
    }
    if (rc != SQLITE_OK) return rc;
    b->rollup_mapped_to = last;
    int64_t now = aimdb_monotonic_ms();
    if (!b->rollup_store_at) b->rollup_store_at = now + ROLLUP_STORE_MS;
    if (now >= b->rollup_store_at || b->rollup_map->n >= ROLLUP_STORE_LINES ||
        sq_queue_closing(&b->queue))
        rc = store_lines(b);
    return rc;
}

void sq_rollup_batch_done(sq_backend *b, bool committed) {
    if (committed && b->rollup_pending) b->rolled_up_to = b->rollup_pending;
    if (!committed && b->rollup_mapped_to != b->rolled_up_to) forget_lines(b);
    b->rollup_pending = 0;
}

void sq_rollup_store(sq_backend *b) {
    if (!b->wdb || b->rollup_mapped_to == b->rolled_up_to) return;
    int rc = sqlite3_step(b->begin);
    sqlite3_reset(b->begin);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (rc == SQLITE_OK) rc = store_lines(b);
    if (rc == SQLITE_OK && (rc = sqlite3_step(b->commit)) == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_reset(b->commit);
    if (rc != SQLITE_OK) {
        /* The sums start over from the table (sq_rollup_batch_done); the
         * catch-up logs if writing lines keeps failing. */
        sq_writer_counts_failed(&b->counts);
        if (!sqlite3_get_autocommit(b->wdb)) {
            sqlite3_step(b->rollback);
            sqlite3_reset(b->rollback);
        }
    }
    sq_rollup_batch_done(b, rc == SQLITE_OK);
}

int64_t sq_rollup_due(const sq_backend *b) {
    if (!b->wdb) return 0;
    if (b->rollup_behind) return b->rollup_retry_at > 1 ? b->rollup_retry_at : 1;
    return b->rollup_store_at;
}

#define CATCH_UP_RETRY_MS 1000

/* Column col as a record name, or NULL where another tool's row has none
 * a query could ask for: NULL, a BLOB (queries bind names as text, which
 * no BLOB equals) or text holding a NUL byte (as a C string, another
 * record's name).  Rolled up, such a row would count in another record's
 * hours, or in hours no raw query shows. */
static const char *record_name(sqlite3_stmt *st, int col) {
    if (sqlite3_column_type(st, col) != SQLITE_TEXT) return NULL;
    const char *name = (const char *)sqlite3_column_text(st, col);
    return name && strlen(name) == (size_t)sqlite3_column_bytes(st, col) ? name : NULL;
}

static void catch_up(sq_backend *b) {
    sqlite3_stmt *st = b->rollup_rows_after;
    size_t rows = 0;
    int rc = sqlite3_step(b->begin);
    sqlite3_reset(b->begin);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (rc == SQLITE_OK) rc = know_where(b);
    int64_t w = b->rolled_up_to;
    int step = SQLITE_DONE;
    if (rc == SQLITE_OK && !b->rollup_behind) rc = SQLITE_DONE; /* caught up already */
    sqlite3_bind_int64(st, 1, b->rolled_up_to);
    sqlite3_bind_int(st, 2, CATCH_UP_ROWS);
    while (rc == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        w = sqlite3_column_int64(st, 0);
        const char *record = record_name(st, 1);
        const char *json = (const char *)sqlite3_column_text(st, 2);
        rows++;
        if (record && json && sqlite3_column_type(st, 3) == SQLITE_INTEGER)
            rc = rollup_row(b->rollup_map, record, json,
                            (size_t)sqlite3_column_bytes(st, 2), sqlite3_column_int64(st, 3),
                            (const char *)sqlite3_column_text(st, 4), w);
    }
    if (rc == SQLITE_OK && step != SQLITE_DONE) rc = step;
    sqlite3_reset(st);
    if (rc == SQLITE_OK) rc = map_store(b, b->rollup_map);
    if (rc == SQLITE_OK) rc = set_rolled_up_to(b, w);
    if (rc == SQLITE_OK || rc == SQLITE_DONE) {
        rc = sqlite3_step(b->commit);
        sqlite3_reset(b->commit);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    map_clear(b->rollup_map);
    if (rc != SQLITE_OK) {
        /* A damaged file is left to the next commit to find (and move
         * aside): rolling up is never what decides about the history. */
        sq_writer_counts_failed(&b->counts);
        uint64_t held;
        if (aimdb_log_limit_pass(&b->rollup_log, aimdb_monotonic_ms(), 10000, &held))
            aimdb_log(b->rt, AIMDB_LOG_ERROR,
                      "history: rolling up rows of %s: %s; aggregates read those rows "
                      "instead, trying again in a second (%llu such lines not logged)",
                      b->opts.path, sqlite3_errmsg(b->wdb), (unsigned long long)held);
        if (!sqlite3_get_autocommit(b->wdb)) {
            sqlite3_step(b->rollback);
            sqlite3_reset(b->rollback);
        }
        b->rollup_retry_at = aimdb_monotonic_ms() + CATCH_UP_RETRY_MS;
        return;
    }
    b->rolled_up_to = b->rollup_mapped_to = w;
    if (rows < CATCH_UP_ROWS) b->rollup_behind = false;
}

void sq_rollup_work(sq_backend *b) {
    if (b->rollup_behind) catch_up(b);
    else sq_rollup_store(b);
}

/* Lines of record before cutoff go; the hour holding cutoff is rebuilt
 * from the rows still there.  One transaction, which stores the lines
 * waiting in memory first (the rebuild uses the map). */
void sq_rollup_trim(sq_backend *b, const char *record, int64_t cutoff) {
    if (cutoff <= INT64_MIN + SQ_ROLLUP_MS) return;
    /* The last hour has no end to rebuild to: everything before it goes. */
    int64_t hour = cutoff > INT64_MAX - SQ_ROLLUP_MS ? cutoff : hour_of(cutoff);
    int rc = sqlite3_step(b->begin);
    sqlite3_reset(b->begin);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (rc == SQLITE_OK) rc = store_lines(b);
    sqlite3_stmt *del = b->rollup_delete_before;
    sqlite3_bind_text(del, 1, record, -1, SQLITE_STATIC);
    /* The hour the cutoff falls in goes too, and is rebuilt below. */
    sqlite3_bind_int64(del, 2, hour == cutoff ? hour : hour + 1);
    if (rc == SQLITE_OK && (rc = sqlite3_step(del)) == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_reset(del);
    sqlite3_stmt *st = b->rollup_hour_rows;
    if (rc == SQLITE_OK && hour != cutoff) {
        sqlite3_bind_text(st, 1, record, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, hour);
        sqlite3_bind_int64(st, 3, hour + SQ_ROLLUP_MS - 1);
        sqlite3_bind_int64(st, 4, INT64_MIN);
        sqlite3_bind_int64(st, 5, b->rollup_mapped_to); /* the lines' rows only */
        int step;
        while (rc == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
            const char *json = (const char *)sqlite3_column_text(st, 1);
            if (json && sqlite3_column_type(st, 2) == SQLITE_INTEGER)
                rc = rollup_row(b->rollup_map, record, json, (size_t)sqlite3_column_bytes(st, 1),
                                sqlite3_column_int64(st, 2),
                                (const char *)sqlite3_column_text(st, 3),
                                sqlite3_column_int64(st, 0));
        }
        if (rc == SQLITE_OK && step != SQLITE_DONE) rc = step;
        sqlite3_reset(st);
        if (rc == SQLITE_OK) rc = map_store(b, b->rollup_map);
    }
    if (rc == SQLITE_OK && (rc = sqlite3_step(b->commit)) == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_reset(b->commit);
    map_clear(b->rollup_map);
    if (rc != SQLITE_OK) {
        aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: trimming the rollups of %s in %s: %s",
                  record, b->opts.path, sqlite3_errmsg(b->wdb));
        if (!sqlite3_get_autocommit(b->wdb)) {
            sqlite3_step(b->rollback);
            sqlite3_reset(b->rollback);
        }
    }
    sq_rollup_batch_done(b, rc == SQLITE_OK);
}

/* ------------------------------------------------------------ reader */

const char *const sq_agg_sql[SQ_AGG_STATEMENTS] = {
    [SQ_AGG_ROWS] = SQ_ROLLUP_RANGE_ROWS_SQL,
    [SQ_AGG_LINES] = "SELECT bucket, topic, field, rows, partial, n, sum, min, max, first, "
                     "first_at, first_id, last, last_at, last_id FROM record_rollup WHERE "
                     "record_name = ?1 AND "
                     "field IN ('', ?2) AND bucket >= ?3 AND bucket < ?4",
    [SQ_AGG_MARK] = "SELECT rolled_up_to FROM record_rollup_state",
    [SQ_AGG_MAX_ID] = "SELECT max(id) FROM record_history",
    [SQ_AGG_TAIL_FROM] = "SELECT min(stored_at) FROM record_history WHERE id > ?1",
};

/* What one aggregate query knows about the snapshot it reads. */
typedef struct agg_run {
    const aimdb_aggregate_params *a;
    aimdb_bucket_fn fn;
    void *ctx;
    aimdb_bucket_set *set;
    bool marks_read;
    int64_t w;          /* rolled_up_to in this snapshot */
    int64_t tail_from;  /* oldest stored_at of rows with id > w; INT64_MAX: none */
    int stop;           /* fn's non-zero return */
    /* the visibility of the last topic asked about */
    char *topic;
    bool topic_seen;
} agg_run;

static int read_marks(agg_run *run, sqlite3_stmt *const *st) {
    int64_t max_id = 0;
    run->w = 0;
    int rc = sqlite3_step(st[SQ_AGG_MARK]);
    if (rc == SQLITE_ROW) run->w = sqlite3_column_int64(st[SQ_AGG_MARK], 0);
    sqlite3_reset(st[SQ_AGG_MARK]);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    rc = sqlite3_step(st[SQ_AGG_MAX_ID]);
    if (rc == SQLITE_ROW) max_id = sqlite3_column_int64(st[SQ_AGG_MAX_ID], 0);
    sqlite3_reset(st[SQ_AGG_MAX_ID]);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    run->tail_from = INT64_MAX;
    if (max_id > run->w && max_id - run->w > TAIL_SCAN_MAX) {
        run->tail_from = INT64_MIN;
    } else if (max_id > run->w) {
        sqlite3_bind_int64(st[SQ_AGG_TAIL_FROM], 1, run->w);
        rc = sqlite3_step(st[SQ_AGG_TAIL_FROM]);
        if (rc == SQLITE_ROW && sqlite3_column_type(st[SQ_AGG_TAIL_FROM], 0) == SQLITE_INTEGER)
            run->tail_from = sqlite3_column_int64(st[SQ_AGG_TAIL_FROM], 0);
        else if (rc == SQLITE_ROW)
            run->tail_from = INT64_MIN; /* a stored_at that is not an integer: rows decide */
        sqlite3_reset(st[SQ_AGG_TAIL_FROM]);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    }
    run->marks_read = true;
    return SQLITE_OK;
}

static bool visible(agg_run *run, const char *record, aimdb_visibility seen, const char *topic) {
    if (seen == AIMDB_SEE_ALL) return true;
    const char *source = topic && *topic ? topic : NULL;
    if (run->topic && source && strcmp(run->topic, source) == 0) return run->topic_seen;
    bool ok = aimdb_access_value(run->a->q.access, seen, record, source);
    free(run->topic);
    run->topic = source ? strdup(source) : NULL;
    run->topic_seen = ok;
    return ok;
}

/* Rows of record in [from, to] with id > after, into the set. */
static int add_rows(agg_run *run, sqlite3_stmt *st, const char *record, aimdb_visibility seen,
                    int64_t from, int64_t to, int64_t after) {
    if (from > to) return SQLITE_OK;
    sqlite3_bind_text(st, 1, record, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    sqlite3_bind_int64(st, 4, after);
    sqlite3_bind_int64(st, 5, INT64_MAX);
    int rc, added = SQLITE_OK;
    while (added == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *json = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        if (!json || sqlite3_column_type(st, 2) != SQLITE_INTEGER || !aimdb_json_valid(json, len))
            continue;
        if (!visible(run, record, seen, (const char *)sqlite3_column_text(st, 3))) continue;
        double v;
        bool has = aimdb_value_number(json, len, run->a->field, &v);
        if (aimdb_bucket_set_add(run->set, sqlite3_column_int64(st, 2),
                                 sqlite3_column_int64(st, 0), has, v) != AIMDB_OK)
            added = SQLITE_NOMEM;
    }
    sqlite3_reset(st);
    return added != SQLITE_OK ? added : rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Lines of the whole hours [h0, h1) into the set; *partial when a field
 * query meets an hour whose values were not all enumerated.  The "" line
 * brings the values, the field's line (the same line for "") the numbers. */
static int add_lines(agg_run *run, sqlite3_stmt *st, const char *record, aimdb_visibility seen,
                     int64_t h0, int64_t h1, bool *partial) {
    const char *field = run->a->field ? run->a->field : "";
    sqlite3_bind_text(st, 1, record, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, field, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, h0);
    sqlite3_bind_int64(st, 4, h1);
    int rc = SQLITE_DONE, added = SQLITE_OK;
    while (added == SQLITE_OK && !*partial && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!visible(run, record, seen, (const char *)sqlite3_column_text(st, 1))) continue;
        bool all = sqlite3_column_bytes(st, 2) == 0;
        aimdb_bucket_part part = {.ts_ms = sqlite3_column_int64(st, 0)};
        if (all) {
            part.values = (uint64_t)sqlite3_column_int64(st, 3);
            if (*field && sqlite3_column_int64(st, 4) > 0) *partial = true;
        }
        if (all == !*field) {
            part.count = (uint64_t)sqlite3_column_int64(st, 5);
            part.sum = sqlite3_column_double(st, 6);
            part.min = sqlite3_column_double(st, 7);
            part.max = sqlite3_column_double(st, 8);
            part.first = sqlite3_column_double(st, 9);
            part.first_at = sqlite3_column_int64(st, 10);
            part.first_order = sqlite3_column_int64(st, 11);
            part.last = sqlite3_column_double(st, 12);
            part.last_at = sqlite3_column_int64(st, 13);
            part.last_order = sqlite3_column_int64(st, 14);
        }
        if (aimdb_bucket_set_merge(run->set, &part) != AIMDB_OK) added = SQLITE_NOMEM;
    }
    sqlite3_reset(st);
    if (added != SQLITE_OK) return added;
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* The hour holding t, or INT64_MIN where that is not representable. */
static int64_t hour_floor(int64_t t) {
    return t < INT64_MIN + SQ_ROLLUP_MS ? INT64_MIN : hour_of(t);
}

static int64_t hour_ceil(int64_t t) {
    int64_t h = hour_floor(t);
    return h == t || h > INT64_MAX - SQ_ROLLUP_MS ? h : h + SQ_ROLLUP_MS;
}

static int emit(agg_run *run, const char *record) {
    run->stop = aimdb_bucket_set_emit(run->set, record, NULL, run->a->q.limit, run->fn,
                                      run->ctx);
    return SQLITE_OK;
}

/* One record: lines where whole hours allow, rows elsewhere (see the top).
 * Returns an SQLite code; what fn returned is in run->stop. */
static int aggregate_record(agg_run *run, sqlite3_stmt *const *st, const char *record,
                            aimdb_visibility seen) {
    const aimdb_query_params *q = &run->a->q;
    int64_t start = q->has_start ? q->start_ms : INT64_MIN;
    int64_t end = q->has_end ? q->end_ms : INT64_MAX;
    /* Whole hours [h0, h1) inside [start, end]. */
    int64_t h0 = q->has_start ? hour_ceil(start) : INT64_MIN;
    int64_t h1 = q->has_end && end < INT64_MAX ? hour_floor(end + 1) : INT64_MAX;
    bool hours = run->a->every_ms % SQ_ROLLUP_MS == 0 && h0 < h1;
    int rc = SQLITE_OK;
    if (hours && !run->marks_read) rc = read_marks(run, st);
    bool partial = false;
    if (rc == SQLITE_OK && hours)
        rc = add_lines(run, st[SQ_AGG_LINES], record, seen, h0, h1, &partial);
    if (rc != SQLITE_OK) return rc;
    if (hours && !partial) {
        if (q->has_start && h0 > start)
            rc = add_rows(run, st[SQ_AGG_ROWS], record, seen, start, h0 - 1, INT64_MIN);
        if (rc == SQLITE_OK && q->has_end && h1 <= end)
            rc = add_rows(run, st[SQ_AGG_ROWS], record, seen, h1, end, INT64_MIN);
        int64_t from = run->tail_from > h0 ? run->tail_from : h0;
        if (rc == SQLITE_OK && run->tail_from != INT64_MAX)
            rc = add_rows(run, st[SQ_AGG_ROWS], record, seen, from,
                          h1 == INT64_MAX ? INT64_MAX : h1 - 1, run->w);
        return rc == SQLITE_OK ? emit(run, record) : rc;
    }
    if (partial) { /* start over from the rows */
        aimdb_bucket_set_free(run->set);
        run->set = aimdb_bucket_set_new(run->a->every_ms);
        if (!run->set) return SQLITE_NOMEM;
    }
    rc = add_rows(run, st[SQ_AGG_ROWS], record, seen, start, end, INT64_MIN);
    return rc == SQLITE_OK ? emit(run, record) : rc;
}

static int aggregate_name(sqlite3_stmt *const *st, const char *record, void *ctx,
                          int *sqlite_rc) {
    agg_run *run = ctx;
    aimdb_visibility seen = aimdb_access_record(run->a->q.access, record);
    if (seen == AIMDB_SEE_NONE) return 0;
    free(run->topic); /* a topic's verdict is per record */
    run->topic = NULL;
    int rc = aggregate_record(run, st, record, seen);
    if (rc == SQLITE_NOMEM) return AIMDB_ENOMEM;
    if (rc != SQLITE_OK) {
        *sqlite_rc = rc;
        return AIMDB_EIO;
    }
    return run->stop;
}

int sq_rollup_aggregate(sq_backend *b, const aimdb_aggregate_params *a, aimdb_bucket_fn fn,
                        void *ctx, char *err, size_t errlen) {
    agg_run run = {.a = a, .fn = fn, .ctx = ctx, .set = aimdb_bucket_set_new(a->every_ms)};
    if (!run.set) {
        aimdb_errorf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    int rc = sq_readers_each(b, &a->q, aggregate_name, &run, err, errlen);
    aimdb_bucket_set_free(run.set);
    free(run.topic);
    return rc;
}
