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
 *
 * Submitting takes no lock the query threads take.  The plugin runs them
 * at idle priority (SCHED_IDLE), and a query thread preempted while it
 * held the FIFO's mutex left the broker thread waiting for it: 9 such
 * waits in 16 s of request floods (perf sched), each as long as the
 * machine kept the idle thread off a CPU.  So the FIFO is a lock-free
 * multi-producer list (aimdb/mpsc.h), a semaphore post wakes a query
 * thread, and the query threads take jobs one at a time under a mutex of
 * their own.  A request's copy is one allocation, which the query thread
 * that answers it releases through the runtime (runtime.h: the plugin
 * frees it on the broker thread that made it).
 *
 * A query thread lingers (LINGER_US, polling the semaphore and yielding)
 * after each job before it sleeps.  Under a flood of light requests it
 * otherwise slept and was woken for every one, ~10,000 times a second, and
 * that alone stalled pings through the broker by 3-3.6 ms at p99 on two
 * cores (perf sched): its CPU flipped between idle and busy too fast for
 * the scheduler's idle balancing, a client woken by the broker's reply was
 * queued on the broker's own busy CPU, and it waited there for the next
 * periodic balance, ~4 ms, while the other CPU went idle between queries.
 * A thread that keeps its CPU under SCHED_IDLE leaves that CPU free for
 * any normal thread to take at once, and the broker's post finds no
 * sleeper to wake with a system call.  The price is 200 us of polling after
 * the last query of a burst: idle-priority time in the plugin; in a process
 * whose query threads run at normal priority (aimdb-bridge) a yield hands
 * the CPU to any thread that wants it, so the polling takes only time left
 * over, at the cost of a busy CPU for those 200 us.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "persist_internal.h"

#define BUSY_LOG_INTERVAL_MS 10000
#define LINGER_US 200 /* after a job, poll this long before sleeping */

typedef struct query_job {
    aimdb_mpsc_node node;      /* first: the FIFO links nodes */
    aimdb_history_request req; /* pattern, field and gateway point into the job's block */
    aimdb_history_done_fn done;
    void *ctx;
} query_job;

void query_service_init(aimdb_persist *p) {
    query_service *s = &p->queries;
    aimdb_mpsc_init(&s->fifo);
    pthread_mutex_init(&s->pop_lock, NULL);
    pthread_mutex_init(&s->busy_lock, NULL);
    sem_init(&s->work, 0, 0);
    s->max_pending = p->opts.query_queue;
}

void query_service_destroy(aimdb_persist *p) {
    query_service *s = &p->queries;
    free(s->threads);
    sem_destroy(&s->work);
    pthread_mutex_destroy(&s->busy_lock);
    pthread_mutex_destroy(&s->pop_lock);
}

/* ---------------------------------------------------------- the threads */

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

/* The job a post announced.  Its push is complete, but another may still
 * be between its two steps and hold back the oldest job: that takes a few
 * instructions of a submitting thread, so wait for it. */
static query_job *take_job(query_service *s) {
    pthread_mutex_lock(&s->pop_lock);
    query_job *job;
    while (!(job = (query_job *)aimdb_mpsc_pop(&s->fifo))) sched_yield();
    pthread_mutex_unlock(&s->pop_lock);
    return job;
}

/* The next post.  Right after a job the thread polls for LINGER_US before
 * it sleeps (the top of this file says why). */
static void wait_for_work(query_service *s, bool after_job) {
    if (after_job) {
        int64_t until = aimdb_monotonic_us() + LINGER_US;
        do {
            if (sem_trywait(&s->work) == 0) return;
            sched_yield();
        } while (aimdb_monotonic_us() < until);
    }
    while (sem_wait(&s->work) != 0) { /* EINTR */
    }
}

static void *query_thread(void *arg) {
    aimdb_persist *p = arg;
    query_service *s = &p->queries;
    for (bool after_job = false;; after_job = true) {
        wait_for_work(s, after_job);
        if (atomic_load(&s->stopping)) break; /* queued jobs are answered by query_service_stop */
        query_job *job = take_job(s);
        run_job(p, job);
        aimdb_release_block(p->rt, job); /* allocated by the submitter's thread */
        atomic_fetch_sub(&s->pending, 1);
    }
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
    /* After this no submit queues a job: each either saw stopping or is
     * counted in submitting, and its job is in the FIFO once that is 0
     * (both orders are seq_cst). */
    atomic_store(&s->stopping, true);
    while (atomic_load(&s->submitting)) p->rt->sleep_ms(p->rt->self, 1);
    for (unsigned i = 0; i < s->started; i++) sem_post(&s->work);
    for (unsigned i = 0; i < s->started; i++) p->rt->join(p->rt->self, s->threads[i]);
    s->started = 0;
    query_job *job;
    while ((job = (query_job *)aimdb_mpsc_pop(&s->fifo))) {
        answer_stopped(job);
        aimdb_release_block(p->rt, job);
    }
}

/* The request and copies of its strings, in one block: one allocation on
 * the submitter's thread, one free on the query thread. */
static query_job *job_new(const aimdb_history_request *req, aimdb_history_done_fn done,
                          void *ctx) {
    const char *pattern = req->pattern ? req->pattern : "*";
    size_t np = strlen(pattern) + 1, nf = req->field ? strlen(req->field) + 1 : 0,
           ng = req->gateway ? strlen(req->gateway) + 1 : 0;
    query_job *job = malloc(sizeof(*job) + np + nf + ng);
    if (!job) return NULL;
    char *at = (char *)(job + 1);
    job->req = *req;
    job->req.pattern = memcpy(at, pattern, np);
    job->req.field = req->field ? memcpy(at + np, req->field, nf) : NULL;
    job->req.gateway = req->gateway ? memcpy(at + np + nf, req->gateway, ng) : NULL;
    job->done = done;
    job->ctx = ctx;
    return job;
}

static void log_busy(aimdb_persist *p) {
    query_service *s = &p->queries;
    uint64_t held;
    pthread_mutex_lock(&s->busy_lock);
    bool pass =
        aimdb_log_limit_pass(&s->busy_log, aimdb_monotonic_ms(), BUSY_LOG_INTERVAL_MS, &held);
    pthread_mutex_unlock(&s->busy_lock);
    if (pass)
        aimdb_log(p->rt, AIMDB_LOG_WARNING,
                  "persist: %u history queries already pending; refusing more "
                  "(%llu refused since the last message)",
                  s->max_pending, (unsigned long long)held);
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
    atomic_fetch_add(&s->submitting, 1);
    if (atomic_load(&s->stopping)) {
        rc = AIMDB_ESTOPPED;
    } else if (atomic_fetch_add(&s->pending, 1) >= s->max_pending) {
        atomic_fetch_sub(&s->pending, 1);
        rc = AIMDB_EAGAIN;
    } else {
        aimdb_mpsc_push(&s->fifo, &job->node);
        sem_post(&s->work);
    }
    atomic_fetch_sub(&s->submitting, 1);
    if (rc == AIMDB_EAGAIN) log_busy(p);
    if (rc != AIMDB_OK) free(job);
    return rc;
}
