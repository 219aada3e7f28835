/*
 * query_service.c -- the history service (AIMDB_HISTORY_EXT) that protocol
 * layers call: queries queued here and answered on the layer's own query
 * threads.
 *
 * A protocol handler runs on a thread that must not block (the broker's
 * event loop), while a history query can read thousands of rows.  So
 * query_json only copies the request into a bounded FIFO and returns; a
 * query thread (spawned through the database's runtime at start) runs it
 * and calls done.  The bound turns a flood of requests into a clear
 * AIMDB_EAGAIN instead of unbounded memory.
 */
#include <stdlib.h>
#include <string.h>

#include "persist_internal.h"

#define BUSY_LOG_INTERVAL_MS 10000

struct query_job {
    aimdb_history_request req; /* pattern, field and gateway point at the job's own copies */
    aimdb_history_done_fn done;
    void *ctx;
    query_job *next;
};

void query_service_init(aimdb_persist *p) {
    query_service *s = &p->queries;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    s->max_pending = p->opts.query_queue;
}

void query_service_destroy(aimdb_persist *p) {
    query_service *s = &p->queries;
    free(s->threads);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->lock);
}

static void job_free(query_job *job) {
    free((char *)job->req.pattern);
    free((char *)job->req.field);
    free((char *)job->req.gateway);
    free(job);
}

static void answer_stopped(query_job *job) {
    aimdb_history_result res = {.status = AIMDB_ESTOPPED, .error = "the database is stopping"};
    job->done(&res, job->ctx);
}

static void run_job(aimdb_persist *p, query_job *job) {
    json_buf out = {0};
    char err[256] = "";
    aimdb_history_result res = {0};
    res.status = history_json_result(p, &job->req, &out, &res.skipped, err, sizeof(err));
    if (res.status == AIMDB_OK) {
        res.result_json = out.data;
        res.result_len = out.len;
    } else {
        /* Only the documented statuses reach the protocol; the rest is
         * a backend failure as far as a client can tell. */
        if (res.status != AIMDB_ETOOBIG && res.status != AIMDB_ESTOPPED) res.status = AIMDB_EIO;
        res.error = *err ? err : aimdb_strerror(res.status);
    }
    job->done(&res, job->ctx);
    free(out.data);
}

static void *query_thread(void *arg) {
    aimdb_persist *p = arg;
    query_service *s = &p->queries;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->work, &s->lock);
        if (s->stopping) break; /* queued jobs are answered by query_service_stop */
        query_job *job = s->head;
        s->head = job->next;
        if (!s->head) s->tail = NULL;
        pthread_mutex_unlock(&s->lock);
        run_job(p, job);
        job_free(job);
        pthread_mutex_lock(&s->lock);
        s->pending--;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int query_service_start(aimdb_persist *p) {
    query_service *s = &p->queries;
    s->threads = calloc(p->opts.query_threads, sizeof(*s->threads));
    if (!s->threads) return AIMDB_ENOMEM;
    s->nthreads = p->opts.query_threads;
    for (unsigned i = 0; i < s->nthreads; i++) {
        if (p->rt->spawn(p->rt->self, "aimdb-query", AIMDB_THREAD_QUERY, query_thread, p,
                         &s->threads[i]) != 0) {
            aimdb_log(p->rt, AIMDB_LOG_ERROR, "persist: cannot start history query thread %u",
                      i);
            return AIMDB_EIO; /* the db stops again; on_stop joins those started */
        }
        s->started++;
    }
    return AIMDB_OK;
}

void query_service_stop(aimdb_persist *p) {
    query_service *s = &p->queries;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    query_job *queued = s->head;
    s->head = s->tail = NULL;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->started; i++) p->rt->join(p->rt->self, s->threads[i]);
    s->started = 0;
    while (queued) {
        query_job *next = queued->next;
        answer_stopped(queued);
        job_free(queued);
        queued = next;
    }
}

static query_job *job_new(const aimdb_history_request *req, aimdb_history_done_fn done,
                          void *ctx) {
    query_job *job = calloc(1, sizeof(*job));
    char *pattern = strdup(req->pattern ? req->pattern : "*");
    char *field = req->field ? strdup(req->field) : NULL;
    char *gateway = req->gateway ? strdup(req->gateway) : NULL;
    if (!job || !pattern || (req->field && !field) || (req->gateway && !gateway)) {
        free(job);
        free(pattern);
        free(field);
        free(gateway);
        return NULL;
    }
    job->req = *req;
    job->req.pattern = pattern;
    job->req.field = field;
    job->req.gateway = gateway;
    job->done = done;
    job->ctx = ctx;
    return job;
}

int query_service_submit(void *self, const aimdb_history_request *req,
                         aimdb_history_done_fn done, void *ctx) {
    aimdb_persist *p = self;
    if (!req || !done) return AIMDB_EINVAL;
    if (req->has_start && req->has_end && req->start_ms > req->end_ms) return AIMDB_EINVAL;
    if (req->every_ms < 0 || req->n_agg > AIMDB_AGG_KINDS) return AIMDB_EINVAL;
    query_job *job = job_new(req, done, ctx);
    if (!job) return AIMDB_ENOMEM;
    query_service *s = &p->queries;
    int rc = AIMDB_OK;
    pthread_mutex_lock(&s->lock);
    if (s->stopping) rc = AIMDB_ESTOPPED;
    else if (s->pending >= s->max_pending) rc = AIMDB_EAGAIN;
    if (rc == AIMDB_OK) {
        if (s->tail) s->tail->next = job;
        else s->head = job;
        s->tail = job;
        s->pending++;
        pthread_cond_signal(&s->work);
    }
    uint64_t held;
    if (rc == AIMDB_EAGAIN &&
        aimdb_log_limit_pass(&s->busy_log, aimdb_monotonic_ms(), BUSY_LOG_INTERVAL_MS, &held))
        aimdb_log(p->rt, AIMDB_LOG_WARNING,
                  "persist: %u history queries already pending; refusing more "
                  "(%llu refused since the last message)",
                  s->max_pending, (unsigned long long)held);
    pthread_mutex_unlock(&s->lock);
    if (rc != AIMDB_OK) job_free(job);
    return rc;
}
