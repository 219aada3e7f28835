/*
 * bench_core.c -- produce -> tap throughput, latency and allocations.
 *
 * One producer thread writes fixed-size values into 1 record and then into
 * 1,000 records, each with one tap on the worker pool.  Every value carries
 * its monotonic produce time, so the tap measures produce -> callback
 * latency.  The baseline, measured in the same run, is the bare producer
 * with no tap: the ratio shows what taps cost the producer.  Allocation
 * counts come from --wrap'd malloc/calloc/realloc (see CMakeLists.txt).
 * Last, the heap one sparse record costs (one value in a ring:1024), the
 * case the plugin meets for every record name a wildcard rule produces.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aimdb/aimdb.h"

/* ------------------------------------------------ allocation counting */

static _Atomic uint64_t allocations;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __real_realloc(p, n);
}

/* ------------------------------------------------------------- values */

typedef struct sample {
    uint64_t produced_ns;
    uint64_t n;
} sample;

static long sample_to_json(const void *v, size_t len, char *out, size_t cap) {
    sample s;
    if (len != sizeof(s)) return -1;
    memcpy(&s, v, sizeof(s));
    return snprintf(out, cap, "%llu", (unsigned long long)s.n);
}

static const aimdb_codec sample_codec = {"bench-sample", sizeof(sample), sample_to_json, NULL,
                                         NULL};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --------------------------------------------------------------- taps */

/* Latencies are kept for every value: the array is allocated up front, so
 * recording does not disturb the allocation count. */
typedef struct latency_log {
    uint64_t *ns;
    size_t cap;
    _Atomic size_t n;
    _Atomic uint64_t missed;
} latency_log;

static void record_latency(const aimdb_value *v, void *ctx) {
    latency_log *log = ctx;
    sample s;
    memcpy(&s, v->data, sizeof(s));
    size_t i = atomic_fetch_add_explicit(&log->n, 1, memory_order_relaxed);
    if (i < log->cap) log->ns[i] = now_ns() - s.produced_ns;
}

static void record_lag(uint64_t missed, void *ctx) {
    atomic_fetch_add(&((latency_log *)ctx)->missed, missed);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* --------------------------------------------------------------- runs */

typedef struct result {
    double values_per_s;
    double p50_us, p99_us;
    double allocs_per_value;
    uint64_t missed;
} result;

static void produce_all(aimdb_record **recs, size_t nrecs, uint64_t per_record) {
    for (uint64_t n = 0; n < per_record; n++) {
        for (size_t r = 0; r < nrecs; r++) {
            sample s = {now_ns(), n};
            if (aimdb_produce(recs[r], &s, sizeof(s)) != AIMDB_OK) abort();
        }
    }
}

#define RING_CAPACITY 4096

static result run(size_t nrecs, uint64_t per_record, bool with_taps) {
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record **recs = calloc(nrecs, sizeof(*recs));
    latency_log log = {0};
    log.cap = nrecs * per_record;
    log.ns = calloc(log.cap, sizeof(*log.ns));
    aimdb_buffer_cfg cfg = {AIMDB_BUFFER_RING, RING_CAPACITY};
    aimdb_tap_ops ops = {record_latency, record_lag};
    for (size_t i = 0; i < nrecs; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bench::%zu", i);
        if (aimdb_record_register(db, name, &cfg, &sample_codec, &recs[i]) != AIMDB_OK) abort();
        if (with_taps && aimdb_tap_add(recs[i], &ops, &log, NULL) != AIMDB_OK) abort();
    }
    aimdb_db_start(db);
    /* Warm-up: rings grow on demand, so one lap fills every ring to its
     * capacity; the tap scratch buffers reach full size too.  What is
     * measured after it is the steady state. */
    produce_all(recs, nrecs, RING_CAPACITY);
    while (with_taps && atomic_load(&log.n) + atomic_load(&log.missed) < nrecs * RING_CAPACITY) {
    }
    atomic_store(&log.n, 0);
    atomic_store(&log.missed, 0);

    uint64_t allocs_before = atomic_load(&allocations);
    uint64_t t0 = now_ns();
    produce_all(recs, nrecs, per_record);
    uint64_t total = nrecs * per_record;
    while (with_taps && atomic_load(&log.n) + atomic_load(&log.missed) < total) {
    }
    uint64_t elapsed = now_ns() - t0;
    uint64_t allocs = atomic_load(&allocations) - allocs_before;
    aimdb_db_stop(db);

    result res = {0};
    res.values_per_s = (double)total / ((double)elapsed / 1e9);
    res.allocs_per_value = (double)allocs / (double)total;
    res.missed = atomic_load(&log.missed);
    size_t n = atomic_load(&log.n);
    if (n > log.cap) n = log.cap;
    if (n) {
        qsort(log.ns, n, sizeof(*log.ns), cmp_u64);
        res.p50_us = (double)log.ns[n / 2] / 1e3;
        res.p99_us = (double)log.ns[n * 99 / 100] / 1e3;
    }
    aimdb_db_free(db);
    free(log.ns);
    free(recs);
    return res;
}

static void report(const char *label, size_t nrecs, uint64_t per_record) {
    result base = run(nrecs, per_record, false);
    result tapped = run(nrecs, per_record, true);
    printf("%-12s baseline produce %11.0f values/s | with tap %11.0f values/s (%.2fx) | "
           "latency p50 %7.1f us p99 %8.1f us | lagged %llu | allocs/value %.4f\n",
           label, base.values_per_s, tapped.values_per_s,
           tapped.values_per_s / base.values_per_s, tapped.p50_us, tapped.p99_us,
           (unsigned long long)tapped.missed, tapped.allocs_per_value);
}

/* Heap in use, from glibc: includes malloc's own per-chunk overhead. */
static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Heap bytes per record for 1,000 ring:1024 records holding one value
 * each.  Measured on this thread before any worker starts, so every
 * allocation lands in the main arena that mallinfo2 reports. */
static void report_sparse(const char *label, const aimdb_codec *codec, const void *value,
                          size_t len) {
    enum { N = 1000 };
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_buffer_cfg cfg = {AIMDB_BUFFER_RING, 1024};
    size_t before = heap_in_use();
    for (int i = 0; i < N; i++) {
        char name[32];
        aimdb_record *rec;
        snprintf(name, sizeof(name), "sparse::%d", i);
        if (aimdb_record_register(db, name, &cfg, codec, &rec) != AIMDB_OK) abort();
        if (aimdb_produce(rec, value, len) != AIMDB_OK) abort();
    }
    size_t per_record = (heap_in_use() - before) / N;
    printf("%-12s ring:1024 holding one value: %zu heap bytes per record\n", label, per_record);
    aimdb_db_free(db);
}

int main(void) {
    printf("bench_core: fixed-size 16-byte values, ring:%d, 2 tap workers\n", RING_CAPACITY);
    report("1 record", 1, 2000000);
    report("1000 records", 1000, 2000);
    int64_t i = 42;
    report_sparse("sparse int64", &aimdb_codec_int64, &i, sizeof(i));
    report_sparse("sparse json", &aimdb_codec_json, "{\"t\":21.5}", 10);
    return 0;
}
