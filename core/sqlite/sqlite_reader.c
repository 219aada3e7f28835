/*
 * sqlite_reader.c -- history queries on a small pool of read connections.
 *
 * Readers have their own connections so that, in WAL mode, a query reads a
 * snapshot while the writer commits: neither waits for the other.  A query
 * holds one connection inside one read transaction, so "latest N of every
 * record" is consistent across records.
 *
 * How a pattern is answered without scanning the table: the distinct
 * record names in the pattern's literal prefix are walked with one index
 * seek each (skip-scan), each name is matched exactly in C and offered to
 * the caller's accept filter, and then that record's rows come straight off
 * idx_record_time, newest first, LIMIT N.  Cost: O(names * log rows + rows
 * returned), whatever the table size.
 *
 * When the writer opens its path anew (the file was damaged and moved
 * aside, or deleted or replaced: sqlite_recovery.c) it bumps the health
 * generation; a reader of an older one still has the previous file open
 * and is closed when idle and reopened when next taken.  A query that finds
 * the file damaged says so to the writer, which moves it aside.
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/history.h"
#include "sqlite_internal.h"

#define READER_BUSY_MS 5000

struct sq_reader {
    sqlite3 *db;
    sqlite3_stmt *begin, *end, *first_name, *next_name, *rows, *row_ids, *row;
    sqlite3_stmt *agg[SQ_AGG_STATEMENTS]; /* sqlite_rollup.c's */
    unsigned generation; /* of the file db has open (health.generation) */
    sq_reader *next_idle;
};

/* Leaves next_idle alone: an idle reader is closed in place in the pool. */
static void reader_close(sq_backend *b, sq_reader *r) {
    sqlite3_stmt **all[] = {&r->begin,     &r->end,  &r->first_name, &r->next_name,
                             &r->rows, &r->row_ids, &r->row};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    for (size_t i = 0; i < SQ_AGG_STATEMENTS; i++) {
        sqlite3_finalize(r->agg[i]);
        r->agg[i] = NULL;
    }
    if (r->db && sqlite3_close(r->db) != SQLITE_OK)
        aimdb_log(b->rt, AIMDB_LOG_ERROR, "history: closing a reader of %s: %s", b->opts.path,
                  sqlite3_errmsg(r->db));
    r->db = NULL;
}

static int reader_open(sq_backend *b, sq_reader *r, char *err, size_t errlen) {
    /* Read before opening: should the writer open a new file meanwhile,
     * this reader counts as stale and is reopened, never the reverse. */
    r->generation = atomic_load(&b->health.generation);
    /* An in-memory database is one shared cache (see sqlite_backend.c);
     * its readers read uncommitted pages rather than wait on table locks. */
    int flags = b->memory ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    int rc = sq_open_connection(b, flags, &r->db, err, errlen);
    if (rc != AIMDB_OK) return rc;
    sqlite3_busy_timeout(r->db, READER_BUSY_MS);
    rc = sq_exec(r->db, "PRAGMA query_only=1", err, errlen);
    /* latest-1 over every record touches a few index pages per record; with
     * SQLite's 2 MiB default cache they are re-read on every query.  64 MiB
     * per reader took latest-1 for "*" over 1,000 records x 10,000 rows
     * from 7.9 to 3.0 ms p50 (bench_plugin); mmap made it slower. */
    if (rc == AIMDB_OK) rc = sq_exec(r->db, "PRAGMA cache_size=-65536", err, errlen);
    if (rc == AIMDB_OK && b->memory) rc = sq_exec(r->db, "PRAGMA read_uncommitted=1", err, errlen);
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } list[] = {
        {&r->begin, "BEGIN"},
        {&r->end, "COMMIT"},
        {&r->first_name, SQ_FIRST_NAME_SQL},
        {&r->next_name, SQ_NEXT_NAME_SQL},
        {&r->rows, SQ_ROWS_SQL},
        {&r->row_ids, SQ_ROW_IDS_SQL},
        {&r->row, SQ_ROW_SQL},
    };
    for (size_t i = 0; rc == AIMDB_OK && i < sizeof(list) / sizeof(list[0]); i++)
        rc = sq_prepare(r->db, list[i].sql, list[i].st, err, errlen);
    for (size_t i = 0; rc == AIMDB_OK && i < SQ_AGG_STATEMENTS; i++)
        rc = sq_prepare(r->db, sq_agg_sql[i], &r->agg[i], err, errlen);
    if (rc != AIMDB_OK) reader_close(b, r);
    return rc;
}

int sq_readers_open(sq_backend *b, char *err, size_t errlen) {
    unsigned n = b->opts.read_connections;
    b->readers = calloc(n, sizeof(*b->readers));
    if (!b->readers) {
        aimdb_errorf(err, errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    pthread_mutex_init(&b->pool_lock, NULL);
    pthread_cond_init(&b->pool_free, NULL);
    for (unsigned i = 0; i < n; i++) {
        int rc = reader_open(b, &b->readers[i], err, errlen);
        if (rc != AIMDB_OK) return rc; /* sq_readers_close releases the opened ones */
        b->readers[i].next_idle = b->idle;
        b->idle = &b->readers[i];
    }
    return AIMDB_OK;
}

void sq_readers_close(sq_backend *b) {
    if (!b->readers) return;
    for (unsigned i = 0; i < b->opts.read_connections; i++) reader_close(b, &b->readers[i]);
    free(b->readers);
    b->readers = NULL;
    pthread_cond_destroy(&b->pool_free);
    pthread_mutex_destroy(&b->pool_lock);
}

static bool stale(sq_backend *b, const sq_reader *r) {
    return r->generation != atomic_load(&b->health.generation);
}

static void release(sq_backend *b, sq_reader *r) {
    if (r->db && stale(b, r)) reader_close(b, r); /* let go of the previous file now */
    pthread_mutex_lock(&b->pool_lock);
    r->next_idle = b->idle;
    b->idle = r;
    pthread_cond_signal(&b->pool_free);
    pthread_mutex_unlock(&b->pool_lock);
}

/* A reader with a connection on the current file; AIMDB_EIO (err says why)
 * if it had to be reopened and could not be. */
static int acquire(sq_backend *b, sq_reader **out, char *err, size_t errlen) {
    pthread_mutex_lock(&b->pool_lock);
    while (!b->idle) pthread_cond_wait(&b->pool_free, &b->pool_lock);
    sq_reader *r = b->idle;
    b->idle = r->next_idle;
    pthread_mutex_unlock(&b->pool_lock);
    if (!r->db || stale(b, r)) {
        reader_close(b, r);
        int rc = reader_open(b, r, err, errlen);
        if (rc != AIMDB_OK) {
            release(b, r);
            return rc;
        }
    }
    *out = r;
    return AIMDB_OK;
}

void sq_readers_drop_stale(sq_backend *b) {
    if (!b->readers) return; /* still opening: the readers open the new file */
    pthread_mutex_lock(&b->pool_lock);
    for (sq_reader *r = b->idle; r; r = r->next_idle)
        if (r->db && stale(b, r)) reader_close(b, r);
    pthread_mutex_unlock(&b->pool_lock);
}

/* ------------------------------------------------------------- queries */

/* A row held back until the entry after it is seen (see emit_record):
 * copied out of its statement, whose next step invalidates the column
 * pointers, or only its id when the rows are walked by id. */
typedef struct held_row {
    int64_t stored_at, id;
    const char *defect;
    bool copied;       /* bytes hold the row; else it is fetched by id */
    bool has_source;
    char *bytes;       /* value_json NUL, then source NUL; grows, reused */
    size_t cap, value_len;
} held_row;

/* One query in progress on one reader. */
typedef struct query_run {
    sq_reader *r;
    const aimdb_query_params *q;
    aimdb_row_fn fn;
    void *ctx;
    int sqlite_rc; /* the SQLite failure, if that is what stopped the query */
    sq_name_fn each; /* NULL: emit_record */
    void *each_ctx;
    /* The run of rows sharing one stored_at, in index (= id) order:
     * [0, n_held).  Grows to the longest run seen, then is reused. */
    held_row *held;
    size_t n_held, cap_held;
} query_run;

/* stored_at as docs/schema.md defines it: an integer.  Another tool may
 * have written something else; such a row is reported, not fatal. */
static const char *read_stored_at(sqlite3_stmt *st, int col, int64_t *out) {
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
        *out = sqlite3_column_int64(st, col);
        return NULL;
    case SQLITE_FLOAT:
        if (aimdb_history_ts_from_double(sqlite3_column_double(st, col), out)) return NULL;
        return "stored_at is not an integer Unix-ms time within signed 64 bits";
    default:
        *out = 0;
        return "stored_at is not a number";
    }
}

/* Copy value_json and topic (columns col, col + 1) into h. */
static int copy_values(held_row *h, sqlite3_stmt *st, int col) {
    const char *value = (const char *)sqlite3_column_text(st, col);
    size_t value_len = value ? (size_t)sqlite3_column_bytes(st, col) : 0;
    const char *source = (const char *)sqlite3_column_text(st, col + 1);
    size_t source_len = source ? (size_t)sqlite3_column_bytes(st, col + 1) : 0;
    size_t need = value_len + source_len + 2;
    if (h->cap < need) {
        char *grown = realloc(h->bytes, need);
        if (!grown) return SQLITE_NOMEM;
        h->bytes = grown;
        h->cap = need;
    }
    if (!value) h->defect = "value_json is NULL";
    if (value_len) memcpy(h->bytes, value, value_len);
    h->bytes[value_len] = '\0';
    h->value_len = value_len;
    h->has_source = source != NULL;
    if (source) memcpy(h->bytes + value_len + 1, source, source_len + 1);
    h->copied = true;
    return SQLITE_ROW;
}

/* Add the statement's current entry to the end of the held run, with its
 * values when the statement carries them. */
static int hold_row(query_run *run, sqlite3_stmt *st, bool by_id) {
    if (run->n_held == run->cap_held) {
        size_t cap = run->cap_held ? run->cap_held * 2 : 4;
        held_row *grown = realloc(run->held, cap * sizeof(*grown));
        if (!grown) return SQLITE_NOMEM;
        memset(grown + run->cap_held, 0, (cap - run->cap_held) * sizeof(*grown));
        run->held = grown;
        run->cap_held = cap;
    }
    held_row *h = &run->held[run->n_held];
    h->defect = read_stored_at(st, 0, &h->stored_at);
    h->copied = false;
    int rc = SQLITE_ROW;
    if (by_id) h->id = sqlite3_column_int64(st, 1);
    else rc = copy_values(h, st, 1);
    if (rc == SQLITE_ROW) run->n_held++;
    return rc;
}

/* Offer one row to the caller unless the access predicate hides it (a
 * hidden row is not counted against the limit). */
static int offer(query_run *run, const char *name, aimdb_visibility seen,
                 const aimdb_history_row *row, uint32_t *left) {
    if (!aimdb_access_value(run->q->access, seen, name, row->source)) return 0;
    (*left)--;
    return run->fn(row, run->ctx);
}

/* Fetch a row held by id and offer it straight from the statement (the
 * read transaction keeps the row there). */
static int offer_by_id(query_run *run, const char *name, aimdb_visibility seen,
                       const held_row *h, uint32_t *left) {
    sqlite3_stmt *st = run->r->row;
    sqlite3_bind_int64(st, 1, h->id);
    int rc = sqlite3_step(st), stop = 0;
    if (rc == SQLITE_ROW) {
        const char *value = (const char *)sqlite3_column_text(st, 0);
        aimdb_history_row row = {.record = name, .value_json = value ? value : "",
                                 .value_len = value ? (size_t)sqlite3_column_bytes(st, 0) : 0,
                                 .stored_at = h->stored_at,
                                 .source = (const char *)sqlite3_column_text(st, 1),
                                 .defect = value ? h->defect : "value_json is NULL"};
        stop = offer(run, name, seen, &row, left);
    } else {
        run->sqlite_rc = rc == SQLITE_DONE ? SQLITE_CORRUPT : rc; /* an entry without its row */
        stop = AIMDB_EIO;
    }
    sqlite3_reset(st);
    return stop;
}

/* Hand the held run to the caller newest first, i.e. last stored first. */
static int emit_held(query_run *run, const char *name, aimdb_visibility seen, uint32_t *left) {
    int stop = 0;
    for (size_t i = run->n_held; i-- > 0 && !stop && *left;) {
        const held_row *h = &run->held[i];
        if (!h->copied) {
            stop = offer_by_id(run, name, seen, h, left);
            continue;
        }
        aimdb_history_row row = {.record = name, .value_json = h->bytes,
                                 .value_len = h->value_len, .stored_at = h->stored_at,
                                 .source = h->has_source ? h->bytes + h->value_len + 1 : NULL,
                                 .defect = h->defect};
        stop = offer(run, name, seen, &row, left);
    }
    run->n_held = 0;
    return stop;
}

/*
 * One record's rows.  A run of equal stored_at is held back until the
 * first older entry (or the end) closes it, then emitted reversed.  The
 * entry that closes it is read in vain, and when the walk carries values
 * that costs a table seek: +17% instructions on latest-1 over 1,000
 * records, one such seek per row returned.  So latest-1 walks the index
 * alone and fetches its one row by id (+10% over a walk that ignored
 * ties).  Any larger limit, or none, walks with values: a fetch by id
 * costs more than that seek (a 5,760-row range: +53%), and the seek is
 * paid once per record, not per row.
 */
static int emit_record(query_run *run, const char *name) {
    const aimdb_query_params *q = run->q;
    aimdb_visibility seen = aimdb_access_record(q->access, name);
    if (seen == AIMDB_SEE_NONE) return 0;
    bool by_id = q->limit == 1;
    sqlite3_stmt *st = by_id ? run->r->row_ids : run->r->rows;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, q->has_start ? q->start_ms : INT64_MIN);
    sqlite3_bind_int64(st, 3, q->has_end ? q->end_ms : INT64_MAX);
    uint32_t left = q->limit ? q->limit : UINT32_MAX;
    int rc, stop = 0;
    run->n_held = 0;
    while (!stop && left && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (run->n_held && sqlite3_column_int64(st, 0) != run->held[0].stored_at)
            stop = emit_held(run, name, seen, &left);
        if (!stop && left) rc = hold_row(run, st, by_id);
        if (rc != SQLITE_ROW) break;
    }
    if (!stop && (rc == SQLITE_DONE || rc == SQLITE_ROW)) {
        rc = SQLITE_DONE;
        stop = emit_held(run, name, seen, &left);
    }
    if (!stop && rc != SQLITE_DONE) run->sqlite_rc = rc;
    run->n_held = 0;
    sqlite3_reset(st);
    return stop ? stop : run->sqlite_rc ? AIMDB_EIO : 0;
}

static int visit(query_run *run, const char *name) {
    if (!run->each) return emit_record(run, name);
    return run->each(run->r->agg, name, run->each_ctx, &run->sqlite_rc);
}

/* Seek the name after `from` (or the first >= it); errors end the run. */
static int seek(query_run *run, bool after, const char *from, size_t from_len, char **buf,
                size_t *cap, bool *found) {
    int rc = sq_seek_name(after ? NULL : run->r->first_name, run->r->next_name, from, from_len,
                          buf, cap, found);
    if (rc == SQLITE_OK) return 0;
    run->sqlite_rc = rc;
    return AIMDB_EIO;
}

static int emit_matching(query_run *run, const char *pattern, size_t prefix_len) {
    char *name = NULL;
    size_t cap = 0;
    bool found;
    int rc = seek(run, false, pattern, prefix_len, &name, &cap, &found);
    while (rc == 0 && found && strncmp(name, pattern, prefix_len) == 0) {
        if (aimdb_pattern_match(pattern, name)) rc = visit(run, name);
        if (rc != 0) break;
        rc = seek(run, true, name, strlen(name), &name, &cap, &found);
    }
    free(name);
    return rc;
}

/* The names the access predicate lists as all it may show (access.h):
 * only those are visited, in the order given (ascending, as the index). */
static int emit_listed(query_run *run, const char *pattern) {
    const aimdb_access *a = run->q->access;
    int rc = 0;
    for (size_t i = 0; i < a->n_names && rc == 0; i++)
        if (aimdb_pattern_match(pattern, a->names[i])) rc = visit(run, a->names[i]);
    return rc;
}

/* Every record q's pattern matches, in one read transaction. */
static int walk(sq_backend *b, query_run *run, char *err, size_t errlen) {
    int rc = acquire(b, &run->r, err, errlen);
    if (rc != AIMDB_OK) return rc;
    const char *pattern = run->q->pattern ? run->q->pattern : "*";
    size_t prefix_len = aimdb_pattern_prefix_len(pattern);
    rc = sqlite3_step(run->r->begin);
    sqlite3_reset(run->r->begin);
    if (rc != SQLITE_DONE) {
        run->sqlite_rc = rc;
        rc = AIMDB_EIO;
    } else if (pattern[prefix_len] == '\0') {
        rc = visit(run, pattern); /* no '*': exactly one record */
    } else if (run->q->access && run->q->access->names) {
        rc = emit_listed(run, pattern);
    } else {
        rc = emit_matching(run, pattern, prefix_len);
    }
    if (run->sqlite_rc)
        aimdb_errorf(err, errlen, "history query failed: %s", sqlite3_errmsg(run->r->db));
    if (sq_health_damage_rc(run->sqlite_rc))
        sq_health_report(b, run->r->generation, "a history query", sqlite3_errmsg(run->r->db));
    /* A read transaction: ending it cannot lose anything, only release the
     * snapshot, so its result does not change the query's. */
    sqlite3_step(run->r->end);
    sqlite3_reset(run->r->end);
    release(b, run->r);
    for (size_t i = 0; i < run->cap_held; i++) free(run->held[i].bytes);
    free(run->held);
    return rc;
}

int sq_readers_query(sq_backend *b, const aimdb_query_params *q, aimdb_row_fn fn, void *ctx,
                     char *err, size_t errlen) {
    query_run run = {.q = q, .fn = fn, .ctx = ctx};
    return walk(b, &run, err, errlen);
}

int sq_readers_each(sq_backend *b, const aimdb_query_params *q, sq_name_fn each, void *ctx,
                    char *err, size_t errlen) {
    query_run run = {.q = q, .each = each, .each_ctx = ctx};
    return walk(b, &run, err, errlen);
}
