/*
 * retention.c -- deleting history older than each record's retention.
 *
 * A sweep asks the backend to delete, per record with a retention of its
 * own, rows older than now - retention, and then, for every other record in
 * history (including ones no longer configured), rows older than now - the
 * default.  The backend deletes in bounded chunks, so a large catch-up never
 * holds up incoming rows.
 *
 * The sweeper thread runs the first sweep as soon as the database starts
 * (catching up after downtime without delaying start-up) and then one per
 * interval.  Every failure is logged and counted; the next sweep retries.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "persist_internal.h"

/* now - retention without overflowing for absurdly long retentions. */
static int64_t cutoff_for(int64_t now_ms, int64_t retention_ms) {
    return now_ms < INT64_MIN + retention_ms ? INT64_MIN : now_ms - retention_ms;
}

typedef struct own_retention {
    const char *name;
    int64_t retention_ms;
} own_retention;

/* Records with a retention of their own (0 = forever included: they must be
 * kept out of the default sweep too), copied under the lock (names live as
 * long as the database).  NULL with *n = 0 when there are none. */
static int snapshot_own(aimdb_persist *p, own_retention **out, size_t *n) {
    pthread_mutex_lock(&p->lock);
    own_retention *list = p->ntaps ? calloc(p->ntaps, sizeof(*list)) : NULL;
    size_t count = 0;
    for (size_t i = 0; list && i < p->ntaps; i++)
        if (p->taps[i]->retention_ms != AIMDB_RETENTION_DEFAULT)
            list[count++] = (own_retention){p->taps[i]->name, p->taps[i]->retention_ms};
    bool failed = p->ntaps && !list;
    pthread_mutex_unlock(&p->lock);
    *out = list;
    *n = count;
    return failed ? AIMDB_ENOMEM : AIMDB_OK;
}

static void note_failure(aimdb_persist *p, int rc, const char *what, int *first) {
    aimdb_log(p->rt, AIMDB_LOG_ERROR, "persist: retention sweep of %s failed: %s", what,
              aimdb_strerror(rc));
    if (*first == AIMDB_OK) *first = rc;
}

/* Both passes; the backend lock is held shared by the caller. */
static int sweep_locked(aimdb_persist *p, uint64_t *deleted) {
    const aimdb_backend_ops *ops = p->backend.ops;
    int64_t now = p->rt->now_ms(p->rt->self);
    own_retention *own;
    size_t n_own;
    int first = snapshot_own(p, &own, &n_own);
    if (first != AIMDB_OK) return first;
    const char **except = n_own ? calloc(n_own, sizeof(*except)) : NULL;
    if (n_own && !except) {
        free(own);
        return AIMDB_ENOMEM;
    }
    for (size_t i = 0; i < n_own; i++) {
        except[i] = own[i].name;
        if (own[i].retention_ms == 0) continue; /* kept forever */
        int rc = ops->cleanup(p->backend.self, own[i].name, NULL, 0,
                              cutoff_for(now, own[i].retention_ms), deleted);
        if (rc != AIMDB_OK) note_failure(p, rc, own[i].name, &first);
    }
    if (p->opts.default_retention_ms > 0) {
        int rc = ops->cleanup(p->backend.self, NULL, except, n_own,
                              cutoff_for(now, p->opts.default_retention_ms), deleted);
        if (rc != AIMDB_OK) note_failure(p, rc, "records with the default retention", &first);
    }
    free(except);
    free(own);
    return first;
}

int aimdb_persist_sweep(aimdb_persist *p, uint64_t *deleted) {
    if (!p) return AIMDB_EINVAL;
    uint64_t n = 0;
    int64_t started = aimdb_monotonic_ms();
    pthread_rwlock_rdlock(&p->backend_lock);
    int rc = p->closed ? AIMDB_ESTOPPED : sweep_locked(p, &n);
    pthread_rwlock_unlock(&p->backend_lock);
    if (rc == AIMDB_ESTOPPED) return rc;
    atomic_fetch_add_explicit(&p->swept, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->sweeps, 1, memory_order_relaxed);
    if (rc != AIMDB_OK) atomic_fetch_add_explicit(&p->sweep_errors, 1, memory_order_relaxed);
    aimdb_log(p->rt, n ? AIMDB_LOG_INFO : AIMDB_LOG_DEBUG,
              "persist: retention sweep deleted %" PRIu64 " rows in %" PRId64 " ms%s", n,
              aimdb_monotonic_ms() - started, rc == AIMDB_OK ? "" : " (with errors)");
    if (deleted) *deleted += n;
    return rc;
}

/* ------------------------------------------------------------- thread */

void sweeper_init(aimdb_persist *p) {
    sweeper *s = &p->sweeper;
    aimdb_cond_init_monotonic(&s->wake);
    pthread_mutex_init(&s->lock, NULL);
}

void sweeper_destroy(aimdb_persist *p) {
    pthread_cond_destroy(&p->sweeper.wake);
    pthread_mutex_destroy(&p->sweeper.lock);
}

/* Sleep until the next sweep is due; false when stopping. */
static bool wait_interval(aimdb_persist *p) {
    sweeper *s = &p->sweeper;
    int64_t now = aimdb_monotonic_ms();
    /* Saturate: an interval of "never" must not overflow into the past. */
    int64_t due = p->opts.sweep_interval_ms > INT64_MAX / 2 - now
                      ? INT64_MAX / 2
                      : now + p->opts.sweep_interval_ms;
    struct timespec deadline = aimdb_monotonic_deadline(due);
    pthread_mutex_lock(&s->lock);
    while (!s->stopping && aimdb_monotonic_ms() < due)
        pthread_cond_timedwait(&s->wake, &s->lock, &deadline);
    bool go_on = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return go_on;
}

static bool stopping(aimdb_persist *p) {
    pthread_mutex_lock(&p->sweeper.lock);
    bool stop = p->sweeper.stopping;
    pthread_mutex_unlock(&p->sweeper.lock);
    return stop;
}

static void *sweeper_main(void *arg) {
    aimdb_persist *p = arg;
    while (!stopping(p)) {
        aimdb_persist_sweep(p, NULL);
        if (!wait_interval(p)) break;
    }
    return NULL;
}

int sweeper_start(aimdb_persist *p) {
    if (p->rt->spawn(p->rt->self, "aimdb-sweeper", AIMDB_THREAD_PIPELINE, sweeper_main, p,
                     &p->sweeper.thread) != 0) {
        aimdb_log(p->rt, AIMDB_LOG_ERROR, "persist: cannot start the retention sweeper thread");
        p->sweeper.thread = NULL;
        return AIMDB_EIO;
    }
    return AIMDB_OK;
}

void sweeper_stop(aimdb_persist *p) {
    sweeper *s = &p->sweeper;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->thread) p->rt->join(p->rt->self, s->thread);
    s->thread = NULL;
}
