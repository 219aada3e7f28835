/*
 * record.c -- one named record: produce, readers, taps, attributes.
 *
 * The record lock is held only for copying bytes in or out of the buffer,
 * never across a callback or anything that can wait on another thread: that
 * is what lets any thread produce without ever waiting for a consumer.
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/json.h"
#include "core_internal.h"

/* ------------------------------------------------------------- lifetime */

aimdb_record *aimdb_record_new(aimdb_db *db, const char *name, const aimdb_buffer_cfg *cfg,
                               const aimdb_codec *codec) {
    aimdb_record *rec = calloc(1, sizeof(*rec));
    if (!rec) return NULL;
    rec->db = db;
    rec->codec = codec;
    rec->name = strdup(name);
    if (!rec->name ||
        aimdb_buffer_init(&rec->buffer, cfg, codec->size, aimdb_db_memory(db)) != AIMDB_OK) {
        free(rec->name);
        free(rec);
        return NULL;
    }
    aimdb_cond_init_monotonic(&rec->readable); /* timeouts ignore clock jumps */
    pthread_mutex_init(&rec->lock, NULL);
    return rec;
}

void aimdb_record_free(aimdb_record *rec) {
    for (aimdb_tap *t = rec->taps, *next; t; t = next) {
        next = t->next;
        free(t->scratch.data);
        free(t);
    }
    for (aimdb_reader *r = rec->readers, *next; r; r = next) {
        next = r->next;
        free(r->scratch.data);
        free(r);
    }
    for (size_t i = 0; i < rec->nattrs; i++) {
        free(rec->attrs[i].key);
        free(rec->attrs[i].json);
    }
    free(rec->attrs);
    aimdb_buffer_free(&rec->buffer);
    pthread_cond_destroy(&rec->readable);
    pthread_mutex_destroy(&rec->lock);
    free(rec->name);
    free(rec);
}

void aimdb_record_wake_readers(aimdb_record *rec) {
    pthread_mutex_lock(&rec->lock);
    pthread_cond_broadcast(&rec->readable);
    pthread_mutex_unlock(&rec->lock);
}

void aimdb_record_barrier(aimdb_record *rec) {
    pthread_mutex_lock(&rec->lock);
    pthread_mutex_unlock(&rec->lock);
}

/* --------------------------------------------------------------- access */

const char *aimdb_record_name(const aimdb_record *rec) { return rec->name; }
const aimdb_codec *aimdb_record_codec(const aimdb_record *rec) { return rec->codec; }
aimdb_buffer_cfg aimdb_record_buffer(const aimdb_record *rec) { return rec->buffer.cfg; }

void aimdb_record_stats_get(aimdb_record *rec, aimdb_record_stats *out) {
    out->produced = atomic_load_explicit(&rec->produced, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&rec->rejected, memory_order_relaxed);
    out->overwritten = atomic_load_explicit(&rec->overwritten, memory_order_relaxed);
}

/* -------------------------------------------------------------- produce */

static int reject(aimdb_record *rec, int status) {
    atomic_fetch_add_explicit(&rec->rejected, 1, memory_order_relaxed);
    return status;
}

int aimdb_produce(aimdb_record *rec, const void *data, size_t len) {
    const aimdb_runtime *rt = aimdb_db_runtime(rec->db);
    return aimdb_produce_at(rec, data, len, rt->now_ms(rt->self));
}

int aimdb_produce_at(aimdb_record *rec, const void *data, size_t len, int64_t ts_ms) {
    return aimdb_produce_from(rec, data, len, ts_ms, NULL);
}

int aimdb_produce_from(aimdb_record *rec, const void *data, size_t len, int64_t ts_ms,
                       const char *source) {
    if (!data && len) return reject(rec, AIMDB_EINVAL);
    if (rec->codec->size && len != rec->codec->size) return reject(rec, AIMDB_EINVAL);
    if (len > aimdb_db_max_value_bytes(rec->db)) return reject(rec, AIMDB_ETOOBIG);
    /* Before the lock: a parser may run here, and the lock is only for
     * copying bytes. */
    if (rec->codec->accepts && !rec->codec->accepts(data ? data : "", len))
        return reject(rec, AIMDB_EFORMAT);

    bool overwritten = false;
    uint64_t gave_way = 0;
    pthread_mutex_lock(&rec->lock);
    /* Checked under the lock so aimdb_db_stop's barrier makes "produced
     * before stop" exact: after the barrier nothing more gets in. */
    if (!aimdb_db_accepting(rec->db)) {
        pthread_mutex_unlock(&rec->lock);
        return reject(rec, AIMDB_ESTOPPED);
    }
    int rc = aimdb_buffer_put(&rec->buffer, data, len, ts_ms, source, &overwritten);
    if (rc != AIMDB_OK) {
        pthread_mutex_unlock(&rec->lock);
        return reject(rec, rc);
    }
    if (rec->waiters) pthread_cond_broadcast(&rec->readable);
    /* An idle tap is queued once; a scheduled one will find this value when
     * it next reads.  The pool lock nests inside the record lock (see the
     * lock order in core_internal.h) and is held for a list append. */
    for (aimdb_tap *t = rec->taps; t; t = t->next) {
        if (!t->scheduled) {
            t->scheduled = true;
            aimdb_pool_schedule(aimdb_db_pool(rec->db), t);
        }
    }
    aimdb_memory *mem = rec->buffer.mem;
    if (aimdb_memory_over(mem)) gave_way = aimdb_record_give_way_locked(rec);
    pthread_mutex_unlock(&rec->lock);

    atomic_fetch_add_explicit(&rec->produced, 1, memory_order_relaxed);
    if (overwritten) atomic_fetch_add_explicit(&rec->overwritten, 1, memory_order_relaxed);
    if (aimdb_memory_over(mem)) gave_way += aimdb_db_relieve_memory(rec->db, rec);
    aimdb_memory_gave_way(mem, aimdb_db_runtime(rec->db), gave_way);
    return AIMDB_OK;
}

/* The first seq some tap of rec has not read: values below it are in every
 * tap's hands (history among them) and may give way. */
static uint64_t first_unread(const aimdb_record *rec) {
    uint64_t unread = UINT64_MAX;
    for (const aimdb_tap *t = rec->taps; t; t = t->next)
        if (t->cursor < unread) unread = t->cursor;
    return unread;
}

uint64_t aimdb_record_give_way_locked(aimdb_record *rec) {
    uint64_t unread = first_unread(rec), n = 0;
    while (aimdb_memory_over(rec->buffer.mem) && aimdb_buffer_give_way(&rec->buffer, unread))
        n++;
    return n;
}

int aimdb_record_peek_latest(aimdb_record *rec, void (*fn)(const aimdb_value *v, void *ctx),
                             void *ctx) {
    return aimdb_record_peek_newest_where(rec, NULL, fn, ctx);
}

int aimdb_record_peek_newest_where(aimdb_record *rec,
                                   bool (*keep)(const aimdb_value *v, void *ctx),
                                   void (*fn)(const aimdb_value *v, void *ctx), void *ctx) {
    pthread_mutex_lock(&rec->lock);
    const aimdb_slot *s;
    aimdb_value v;
    for (uint64_t n = 0; (s = aimdb_buffer_back(&rec->buffer, n)); n++) {
        v = (aimdb_value){s->data, s->len, s->ts_ms, s->seq, s->source};
        if (!keep || keep(&v, ctx)) break;
    }
    if (s) fn(&v, ctx);
    pthread_mutex_unlock(&rec->lock);
    return s ? AIMDB_OK : AIMDB_ENOTFOUND;
}

/* -------------------------------------------------------------- readers */

int aimdb_reader_open(aimdb_record *rec, aimdb_reader **out) {
    aimdb_reader *r = calloc(1, sizeof(*r));
    if (!r) return AIMDB_ENOMEM;
    r->record = rec;
    pthread_mutex_lock(&rec->lock);
    r->cursor = aimdb_buffer_start_cursor(&rec->buffer, false);
    r->next = rec->readers;
    if (rec->readers) rec->readers->prev = r;
    rec->readers = r;
    pthread_mutex_unlock(&rec->lock);
    *out = r;
    return AIMDB_OK;
}

void aimdb_reader_close(aimdb_reader *r) {
    if (!r) return;
    aimdb_record *rec = r->record;
    pthread_mutex_lock(&rec->lock);
    if (r->prev) r->prev->next = r->next;
    else rec->readers = r->next;
    if (r->next) r->next->prev = r->prev;
    pthread_mutex_unlock(&rec->lock);
    free(r->scratch.data);
    free(r);
}

static aimdb_read_mode reader_mode(const aimdb_record *rec) {
    return rec->buffer.cfg.kind == AIMDB_BUFFER_MAILBOX ? AIMDB_READ_TAKE : AIMDB_READ_STREAM;
}

/* One read attempt with the lock held; copies out so the caller may unlock. */
static int read_locked(aimdb_reader *r, aimdb_value *out, uint64_t *missed) {
    const aimdb_slot *slot;
    uint64_t lost = 0;
    int rc = aimdb_buffer_read(&r->record->buffer, reader_mode(r->record), &r->cursor, &slot,
                               &lost);
    if (rc == AIMDB_OK) return aimdb_scratch_copy(&r->scratch, slot, out);
    if (rc == AIMDB_LAGGED && missed) *missed = lost;
    return rc;
}

int aimdb_reader_recv(aimdb_reader *r, int64_t timeout_ms, aimdb_value *out, uint64_t *missed) {
    aimdb_record *rec = r->record;
    struct timespec deadline = aimdb_monotonic_deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&rec->lock);
    int rc;
    /* Values produced before stop are still delivered; only an empty
     * buffer reports the stop. */
    while ((rc = read_locked(r, out, missed)) == AIMDB_EAGAIN) {
        if (!aimdb_db_accepting(rec->db)) {
            rc = AIMDB_ESTOPPED;
            break;
        }
        rec->waiters++;
        int w = timeout_ms < 0 ? pthread_cond_wait(&rec->readable, &rec->lock)
                               : pthread_cond_timedwait(&rec->readable, &rec->lock, &deadline);
        rec->waiters--;
        if (w != 0) {
            rc = read_locked(r, out, missed);
            if (rc == AIMDB_EAGAIN) rc = AIMDB_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&rec->lock);
    return rc;
}

int aimdb_reader_try_recv(aimdb_reader *r, aimdb_value *out, uint64_t *missed) {
    pthread_mutex_lock(&r->record->lock);
    int rc = read_locked(r, out, missed);
    if (rc == AIMDB_EAGAIN && !aimdb_db_accepting(r->record->db)) rc = AIMDB_ESTOPPED;
    pthread_mutex_unlock(&r->record->lock);
    return rc;
}

/* ----------------------------------------------------------------- taps */

int aimdb_tap_add(aimdb_record *rec, const aimdb_tap_ops *ops, void *ctx, aimdb_tap **out) {
    if (!ops || !ops->on_value) return AIMDB_EINVAL;
    aimdb_tap *t = calloc(1, sizeof(*t));
    if (!t) return AIMDB_ENOMEM;
    t->record = rec;
    t->ops = *ops;
    t->ctx = ctx;
    /* A fixed-size record's batches have a known size: allocate it now so
     * the steady state never does. */
    if (rec->codec->size && aimdb_scratch_reserve(&t->scratch, TAP_BATCH * rec->codec->size)) {
        free(t);
        return AIMDB_ENOMEM;
    }
    pthread_mutex_lock(&rec->lock);
    t->cursor = aimdb_buffer_start_cursor(&rec->buffer, true);
    if (rec->taps_tail) rec->taps_tail->next = t;
    else rec->taps = t;
    rec->taps_tail = t;
    pthread_mutex_unlock(&rec->lock);
    if (out) *out = t;
    return AIMDB_OK;
}

void aimdb_tap_stats_get(aimdb_tap *tap, aimdb_tap_stats *out) {
    out->delivered = atomic_load_explicit(&tap->delivered, memory_order_relaxed);
    out->lag_events = atomic_load_explicit(&tap->lag_events, memory_order_relaxed);
    out->missed = atomic_load_explicit(&tap->missed, memory_order_relaxed);
}

/* --------------------------------------------------------- attributes */

/* A fresh NUL-terminated JSON string literal of s, or NULL. */
static char *json_string(const char *s) {
    size_t len = strlen(s), n = aimdb_json_string_write(s, len, NULL, 0);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    aimdb_json_string_write(s, len, out, n);
    out[n] = '\0';
    return out;
}

/* Takes ownership of json. */
static int set_attr_owned(aimdb_record *rec, const char *key, char *json) {
    if (!json) return AIMDB_ENOMEM;
    int rc = AIMDB_OK;
    pthread_mutex_lock(&rec->lock);
    size_t i = 0;
    while (i < rec->nattrs && strcmp(rec->attrs[i].key, key) != 0) i++;
    if (i < rec->nattrs) {
        free(rec->attrs[i].json);
        rec->attrs[i].json = json;
    } else {
        aimdb_attr *grown = realloc(rec->attrs, (rec->nattrs + 1) * sizeof(*grown));
        char *k = strdup(key);
        if (!grown || !k) {
            if (grown) rec->attrs = grown;
            free(k);
            free(json);
            rc = AIMDB_ENOMEM;
        } else {
            rec->attrs = grown;
            rec->attrs[rec->nattrs++] = (aimdb_attr){k, json};
        }
    }
    pthread_mutex_unlock(&rec->lock);
    return rc;
}

int aimdb_record_set_attr(aimdb_record *rec, const char *key, const char *json) {
    if (!key || !json) return AIMDB_EINVAL;
    return set_attr_owned(rec, key, strdup(json));
}

int aimdb_record_set_attr_string(aimdb_record *rec, const char *key, const char *value) {
    if (!key || !value) return AIMDB_EINVAL;
    return set_attr_owned(rec, key, json_string(value));
}

void aimdb_record_foreach_attr(aimdb_record *rec,
                               void (*fn)(const char *key, const char *json, void *ctx),
                               void *ctx) {
    pthread_mutex_lock(&rec->lock);
    for (size_t i = 0; i < rec->nattrs; i++) fn(rec->attrs[i].key, rec->attrs[i].json, ctx);
    pthread_mutex_unlock(&rec->lock);
}
