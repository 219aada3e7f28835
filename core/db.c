/*
 * db.c -- the database: record registry, extensions, hooks, start and stop.
 *
 * Records are never removed before aimdb_db_free, so a record pointer handed
 * out once stays valid for the database's life; that is what lets the
 * broker plugin cache topic -> record without reference counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/hash.h"
#include "aimdb/name_index.h"
#include "core_internal.h"

typedef struct aimdb_hook {
    aimdb_hook_fn fn;
    void *ctx;
} aimdb_hook;

typedef struct aimdb_ext {
    char *key;
    void *value;
    void (*free_fn)(void *);
} aimdb_ext;

typedef enum aimdb_phase { PHASE_NEW, PHASE_RUNNING, PHASE_STOPPED } aimdb_phase;

struct aimdb_db {
    const aimdb_runtime *rt;
    size_t max_value_bytes;
    size_t max_records; /* SIZE_MAX: no limit */
    aimdb_pool *pool;
    aimdb_memory memory;

    /* Guards the registry: buckets, the ordered array and the extensions. */
    pthread_rwlock_t registry_lock;
    aimdb_record **buckets;   /* chained by record->hash_next */
    size_t nbuckets;          /* power of two */
    aimdb_record **ordered;   /* registration order */
    size_t nrecords, ordered_cap;
    aimdb_name_index by_name; /* over ordered, caught up by foreach_matching */
    aimdb_ext *exts;
    size_t nexts;

    /* Touched only by the thread driving start/stop (not thread-safe by
     * contract: one owner starts and stops a database). */
    aimdb_hook *start_hooks, *stopping_hooks, *stop_hooks;
    size_t nstart, nstopping, nstop;
    aimdb_phase phase;
    atomic_bool accepting; /* produce allowed: true until stop begins */
};

/* ------------------------------------------------------------ lifecycle */

aimdb_db *aimdb_db_new(const aimdb_db_options *opts) {
    aimdb_db_options o = opts ? *opts : (aimdb_db_options){0};
    aimdb_db *db = calloc(1, sizeof(*db));
    if (!db) return NULL;
    db->rt = o.runtime ? o.runtime : aimdb_runtime_pthread();
    db->max_value_bytes = o.max_value_bytes ? o.max_value_bytes : (size_t)1 << 20;
    db->max_records = o.max_records ? o.max_records : SIZE_MAX;
    db->nbuckets = 64;
    db->buckets = calloc(db->nbuckets, sizeof(*db->buckets));
    db->pool = aimdb_pool_new(db->rt, o.workers ? o.workers : 2);
    if (!db->buckets || !db->pool) {
        free(db->buckets);
        aimdb_pool_free(db->pool);
        free(db);
        return NULL;
    }
    pthread_rwlock_init(&db->registry_lock, NULL);
    aimdb_memory_init(&db->memory, o.max_memory);
    atomic_init(&db->accepting, true);
    return db;
}

static int run_hooks(aimdb_db *db, const aimdb_hook *hooks, size_t n, bool reverse) {
    int first_error = 0;
    for (size_t i = 0; i < n; i++) {
        const aimdb_hook *h = &hooks[reverse ? n - 1 - i : i];
        int rc = h->fn(db, h->ctx);
        if (rc != 0 && first_error == 0) {
            first_error = rc;
            if (!reverse) break; /* start stops at the first failure; stop runs all */
        }
    }
    return first_error;
}

int aimdb_db_start(aimdb_db *db) {
    if (db->phase != PHASE_NEW) return AIMDB_ESTATE;
    int rc = aimdb_pool_start(db->pool);
    if (rc != AIMDB_OK) return rc;
    db->phase = PHASE_RUNNING;
    rc = run_hooks(db, db->start_hooks, db->nstart, false);
    if (rc != 0) {
        aimdb_log(db->rt, AIMDB_LOG_ERROR, "start hook failed (%d); stopping", rc);
        aimdb_db_stop(db);
    }
    return rc;
}

void aimdb_db_stop(aimdb_db *db) {
    if (db->phase == PHASE_STOPPED) return;
    atomic_store(&db->accepting, false);
    /* Produce checks `accepting` under the record lock; passing through
     * every record lock once means no produce is still half way in. */
    pthread_rwlock_rdlock(&db->registry_lock);
    for (size_t i = 0; i < db->nrecords; i++) aimdb_record_barrier(db->ordered[i]);
    pthread_rwlock_unlock(&db->registry_lock);

    if (db->phase == PHASE_RUNNING) run_hooks(db, db->stopping_hooks, db->nstopping, true);
    /* Values produced before start have queued taps too: run them. */
    if (db->phase == PHASE_NEW && aimdb_pool_start(db->pool) != AIMDB_OK)
        aimdb_log(db->rt, AIMDB_LOG_ERROR, "stop: cannot start workers to drain taps");
    aimdb_pool_drain_and_join(db->pool);
    bool was_running = db->phase == PHASE_RUNNING;
    db->phase = PHASE_STOPPED;
    if (was_running) run_hooks(db, db->stop_hooks, db->nstop, true);

    pthread_rwlock_rdlock(&db->registry_lock);
    for (size_t i = 0; i < db->nrecords; i++) aimdb_record_wake_readers(db->ordered[i]);
    pthread_rwlock_unlock(&db->registry_lock);
}

void aimdb_db_free(aimdb_db *db) {
    if (!db) return;
    aimdb_db_stop(db);
    for (size_t i = db->nexts; i-- > 0;) {
        if (db->exts[i].free_fn) db->exts[i].free_fn(db->exts[i].value);
        free(db->exts[i].key);
    }
    for (size_t i = 0; i < db->nrecords; i++) aimdb_record_free(db->ordered[i]);
    free(db->exts);
    free(db->ordered);
    aimdb_name_index_free(&db->by_name);
    free(db->buckets);
    free(db->start_hooks);
    free(db->stopping_hooks);
    free(db->stop_hooks);
    aimdb_pool_free(db->pool);
    aimdb_memory_destroy(&db->memory);
    pthread_rwlock_destroy(&db->registry_lock);
    free(db);
}

static int add_hook(aimdb_db *db, aimdb_hook **hooks, size_t *n, aimdb_hook_fn fn, void *ctx) {
    if (!fn) return AIMDB_EINVAL;
    if (db->phase != PHASE_NEW) return AIMDB_ESTATE;
    aimdb_hook *grown = realloc(*hooks, (*n + 1) * sizeof(*grown));
    if (!grown) return AIMDB_ENOMEM;
    grown[(*n)++] = (aimdb_hook){fn, ctx};
    *hooks = grown;
    return AIMDB_OK;
}

int aimdb_db_on_start(aimdb_db *db, aimdb_hook_fn fn, void *ctx) {
    return add_hook(db, &db->start_hooks, &db->nstart, fn, ctx);
}

int aimdb_db_on_stopping(aimdb_db *db, aimdb_hook_fn fn, void *ctx) {
    return add_hook(db, &db->stopping_hooks, &db->nstopping, fn, ctx);
}

int aimdb_db_on_stop(aimdb_db *db, aimdb_hook_fn fn, void *ctx) {
    return add_hook(db, &db->stop_hooks, &db->nstop, fn, ctx);
}

const aimdb_runtime *aimdb_db_runtime(const aimdb_db *db) { return db->rt; }
bool aimdb_db_running(const aimdb_db *db) { return db->phase == PHASE_RUNNING; }
bool aimdb_db_accepting(const aimdb_db *db) { return atomic_load(&db->accepting); }
size_t aimdb_db_max_value_bytes(const aimdb_db *db) { return db->max_value_bytes; }
aimdb_pool *aimdb_db_pool(aimdb_db *db) { return db->pool; }
aimdb_memory *aimdb_db_memory(aimdb_db *db) { return &db->memory; }

/* Records asked per produce: enough to converge, little enough that a
 * produce never walks a large registry. */
#define RELIEVE_VISITS 8

uint64_t aimdb_db_relieve_memory(aimdb_db *db, aimdb_record *except) {
    uint64_t n = 0;
    pthread_rwlock_rdlock(&db->registry_lock);
    for (size_t i = 0; i < RELIEVE_VISITS && i < db->nrecords && aimdb_memory_over(&db->memory);
         i++) {
        aimdb_record *rec = db->ordered[atomic_fetch_add(&db->memory.hand, 1) % db->nrecords];
        if (rec == except) continue;
        pthread_mutex_lock(&rec->lock);
        n += aimdb_record_give_way_locked(rec);
        pthread_mutex_unlock(&rec->lock);
    }
    pthread_rwlock_unlock(&db->registry_lock);
    return n;
}

void aimdb_db_memory_stats(aimdb_db *db, aimdb_memory_stats *out) {
    const aimdb_memory *m = &db->memory;
    out->limit = m->limit == SIZE_MAX ? 0 : m->limit;
    out->held = atomic_load_explicit(&m->held, memory_order_relaxed);
    out->evicted = atomic_load_explicit(&m->gave_way, memory_order_relaxed);
}

/* ----------------------------------------------------------- extensions */

int aimdb_ext_set(aimdb_db *db, const char *key, void *value, void (*free_fn)(void *)) {
    if (!key) return AIMDB_EINVAL;
    int rc = AIMDB_OK;
    pthread_rwlock_wrlock(&db->registry_lock);
    for (size_t i = 0; i < db->nexts; i++) {
        if (strcmp(db->exts[i].key, key) == 0) {
            rc = AIMDB_EEXIST;
            goto out;
        }
    }
    aimdb_ext *grown = realloc(db->exts, (db->nexts + 1) * sizeof(*grown));
    char *k = strdup(key);
    if (grown) db->exts = grown;
    if (!grown || !k) {
        free(k);
        rc = AIMDB_ENOMEM;
        goto out;
    }
    db->exts[db->nexts++] = (aimdb_ext){k, value, free_fn};
out:
    pthread_rwlock_unlock(&db->registry_lock);
    return rc;
}

void *aimdb_ext_get(aimdb_db *db, const char *key) {
    void *value = NULL;
    pthread_rwlock_rdlock(&db->registry_lock);
    for (size_t i = 0; i < db->nexts && !value; i++)
        if (strcmp(db->exts[i].key, key) == 0) value = db->exts[i].value;
    pthread_rwlock_unlock(&db->registry_lock);
    return value;
}

/* ------------------------------------------------------------- registry */

static size_t name_hash(const char *name) {
    return (size_t)aimdb_hash(AIMDB_HASH_SEED, name, strlen(name));
}

static aimdb_record *find_locked(aimdb_db *db, const char *name) {
    aimdb_record *r = db->buckets[name_hash(name) & (db->nbuckets - 1)];
    while (r && strcmp(r->name, name) != 0) r = r->hash_next;
    return r;
}

/* Keep the load factor at or under 1 so lookups stay O(1). */
static int grow_buckets_locked(aimdb_db *db) {
    size_t n = db->nbuckets * 2;
    aimdb_record **b = calloc(n, sizeof(*b));
    if (!b) return AIMDB_ENOMEM;
    for (size_t i = 0; i < db->nrecords; i++) {
        aimdb_record *r = db->ordered[i];
        size_t slot = name_hash(r->name) & (n - 1);
        r->hash_next = b[slot];
        b[slot] = r;
    }
    free(db->buckets);
    db->buckets = b;
    db->nbuckets = n;
    return AIMDB_OK;
}

static bool same_codec(const aimdb_codec *a, const aimdb_codec *b) {
    return a == b || (a->size == b->size && a->to_json == b->to_json &&
                      a->from_json == b->from_json && a->accepts == b->accepts &&
                      strcmp(a->name, b->name) == 0);
}

static bool same_buffer(aimdb_buffer_cfg a, aimdb_buffer_cfg b) {
    return a.kind == b.kind && (a.kind != AIMDB_BUFFER_RING || a.capacity == b.capacity);
}

static bool valid_buffer(const aimdb_buffer_cfg *cfg) {
    switch (cfg->kind) {
    case AIMDB_BUFFER_RING: return cfg->capacity >= 1 && cfg->capacity <= AIMDB_RING_MAX;
    case AIMDB_BUFFER_LATEST:
    case AIMDB_BUFFER_MAILBOX: return true;
    }
    return false;
}

/* The record already registered under name (AIMDB_OK, or AIMDB_EEXIST if
 * with another codec or buffer); else AIMDB_EFULL at max_records -- records
 * are never removed (pointers to them are handed out for the db's
 * lifetime), so an embedder that opens a record per name a client chooses
 * (a wildcard topic rule) needs the limit to bound its memory -- or
 * AIMDB_ENOTFOUND.  Any lock mode. */
static int existing_locked(aimdb_db *db, const char *name, const aimdb_buffer_cfg *cfg,
                           const aimdb_codec *codec, aimdb_record **out) {
    aimdb_record *rec = find_locked(db, name);
    if (!rec) return db->nrecords >= db->max_records ? AIMDB_EFULL : AIMDB_ENOTFOUND;
    if (!same_codec(rec->codec, codec) || !same_buffer(rec->buffer.cfg, *cfg)) return AIMDB_EEXIST;
    *out = rec;
    return AIMDB_OK;
}

static int insert_locked(aimdb_db *db, const char *name, const aimdb_buffer_cfg *cfg,
                         const aimdb_codec *codec, aimdb_record **out) {
    if (db->nrecords == db->ordered_cap) {
        size_t cap = db->ordered_cap ? db->ordered_cap * 2 : 16;
        aimdb_record **grown = realloc(db->ordered, cap * sizeof(*grown));
        if (!grown) return AIMDB_ENOMEM;
        db->ordered = grown;
        db->ordered_cap = cap;
    }
    if (db->nrecords >= db->nbuckets && grow_buckets_locked(db) != AIMDB_OK) return AIMDB_ENOMEM;
    aimdb_record *rec = aimdb_record_new(db, name, cfg, codec);
    if (!rec) return AIMDB_ENOMEM;
    size_t slot = name_hash(name) & (db->nbuckets - 1);
    rec->hash_next = db->buckets[slot];
    db->buckets[slot] = rec;
    db->ordered[db->nrecords++] = rec;
    *out = rec;
    return AIMDB_OK;
}

int aimdb_record_register(aimdb_db *db, const char *name, const aimdb_buffer_cfg *buffer,
                          const aimdb_codec *codec, aimdb_record **out) {
    aimdb_buffer_cfg cfg = buffer ? *buffer : AIMDB_BUFFER_DEFAULT;
    if (!name || !*name || !codec || !codec->name || !codec->to_json || !out ||
        !valid_buffer(&cfg))
        return AIMDB_EINVAL;
    /* A name already registered, or a registry at max_records, is answered
     * under the read lock: a stream of refused names must not take the write
     * lock (and wait for every reader) once per value. */
    pthread_rwlock_rdlock(&db->registry_lock);
    int rc = existing_locked(db, name, &cfg, codec, out);
    pthread_rwlock_unlock(&db->registry_lock);
    if (rc != AIMDB_ENOTFOUND) return rc;
    pthread_rwlock_wrlock(&db->registry_lock);
    rc = existing_locked(db, name, &cfg, codec, out); /* registered meanwhile? */
    if (rc == AIMDB_ENOTFOUND) rc = insert_locked(db, name, &cfg, codec, out);
    pthread_rwlock_unlock(&db->registry_lock);
    return rc;
}

aimdb_record *aimdb_db_find(aimdb_db *db, const char *name) {
    if (!name) return NULL;
    pthread_rwlock_rdlock(&db->registry_lock);
    aimdb_record *rec = find_locked(db, name);
    pthread_rwlock_unlock(&db->registry_lock);
    return rec;
}

int aimdb_db_foreach_record(aimdb_db *db, int (*fn)(aimdb_record *rec, void *ctx), void *ctx) {
    int rc = 0;
    pthread_rwlock_rdlock(&db->registry_lock);
    for (size_t i = 0; i < db->nrecords && rc == 0; i++) rc = fn(db->ordered[i], ctx);
    pthread_rwlock_unlock(&db->registry_lock);
    return rc;
}

static const char *record_name(const void *rec) {
    return aimdb_record_name(rec);
}

/* Catching the index up changes it, so that takes the write lock, once
 * after records were added; the walk itself needs only the read lock and
 * sees the records indexed by then. */
int aimdb_db_foreach_matching(aimdb_db *db, const char *pattern,
                              int (*fn)(aimdb_record *rec, void *ctx), void *ctx) {
    const char *p = pattern ? pattern : "*";
    size_t len = aimdb_pattern_prefix_len(p), first, n;
    pthread_rwlock_rdlock(&db->registry_lock);
    bool behind = db->by_name.n_sorted < db->nrecords;
    pthread_rwlock_unlock(&db->registry_lock);
    int rc = AIMDB_OK;
    if (behind) {
        pthread_rwlock_wrlock(&db->registry_lock);
        rc = aimdb_name_index_range(&db->by_name, (void *const *)db->ordered, db->nrecords,
                                    record_name, p, len, &first, &n);
        pthread_rwlock_unlock(&db->registry_lock);
        if (rc != AIMDB_OK) return rc;
    }
    pthread_rwlock_rdlock(&db->registry_lock);
    aimdb_name_index_range(&db->by_name, (void *const *)db->ordered, db->by_name.n_sorted,
                           record_name, p, len, &first, &n); /* up to date: cannot fail */
    for (size_t i = first; i < first + n && rc == 0; i++) {
        aimdb_record *rec = db->by_name.sorted[i];
        if (aimdb_pattern_match(p, aimdb_record_name(rec))) rc = fn(rec, ctx);
    }
    pthread_rwlock_unlock(&db->registry_lock);
    return rc;
}

size_t aimdb_db_record_count(aimdb_db *db) {
    pthread_rwlock_rdlock(&db->registry_lock);
    size_t n = db->nrecords;
    pthread_rwlock_unlock(&db->registry_lock);
    return n;
}
