/*
 * bench_plugin.c -- aimdb_mosquitto.so end to end, through a real
 * /usr/sbin/mosquitto on a loopback port, every figure against a baseline
 * measured in the same run.
 *
 * Ingest.  PUBLISHERS raw MQTT 3.1.1 connections (packets encoded up front,
 * so the clients cost as little as possible) send small JSON payloads
 * round-robin to 1,000 topics (after one warm-up message per topic: the
 * plugin opens a record on its first value), at QoS 0 (closed by one QoS 1
 * fence: the broker handles a connection's packets in order) and at QoS 1
 * (every PUBACK awaited).  Throughput = messages / (last acknowledgement - first
 * byte), for the same broker without the plugin and with it (every topic a
 * persisted record), alternating, median of ROUNDS.  Goal: >= 0.9x.  After
 * each plugin run the broker gets SIGTERM and the rows in SQLite are
 * counted.  Goal: 100%.  Two floors run in the same rounds: a plugin that
 * does nothing but own one thread (null_plugin.c) and one with no thread
 * that copies every message to a child process (process_floor_plugin.c):
 * what threads in the broker's process cost before any work is done.
 * Where a shortfall goes, per message and from /proc: the event loop's CPU
 * and its time waiting for a CPU, and each plugin thread group's CPU and
 * sleeps (a sleep is a wake-up paid for).
 *
 * Query.  A history of 1,000 records x 10,000 rows, built once through the
 * SQLite backend under <build>/bench-data/, is served by the plugin; on the
 * otherwise idle broker MQTT v5 requests time the round trip (publish to
 * reply received) of latest-1 for "*" (1,000 values) and of latest-10 of
 * one record.  Goal: p50 < 5 ms.
 *
 * Stall.  A client pings itself through the broker (QoS 0 to its own
 * subscription) every PING_INTERVAL_MS, first with nothing else going on,
 * then while another client runs latest-1 "*" queries back to back.
 * Goal: ping p99 within 2 ms of its baseline.
 *
 * Requests (bench_requests.c): record.get, record.list and record.query by
 * record count, floods, and QoS 0 against QoS 1 round trips.
 *
 *   bench_plugin [--quick] [--ingest | --queries | --requests | --flood]
 *   (--quick: fewer messages and rounds; each other option: those figures only)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <mqtt_protocol.h>
#include <sqlite3.h>

#include "aimdb/sqlite.h"
#include "bench_requests.h"
#include "bench_util.h"
#include "client.h"
#include "harness.h"

#define TOPICS 1000
#define PUBLISHERS 2
#define HISTORY_RECORDS 1000
#define HISTORY_ROWS 10000
#define HISTORY_T0 1700000000000LL
#define HISTORY_STEP_MS 15000
#define QUERY_RUNS 300
#define PING_INTERVAL_MS 2
#define PING_PHASE_MS 4000

static const char ingest_rules[] = "database @DIR@/data/aimdb.db\n"
                                   "record bench::{1} bench/+/v persist\n";

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_plugin: %s: %s\n", what, why);
    exit(1);
}

/* ------------------------------------------------------- raw publisher */

typedef struct publisher {
    int index, qos, port;
    size_t stride;           /* message i goes to topic (i * stride + index) % TOPICS */
    size_t count;            /* messages in the stream */
    unsigned char *stream;   /* every PUBLISH, encoded */
    size_t len;
    int fd;
    pthread_barrier_t *start;
    double done_ms;          /* when the last acknowledgement arrived */
} publisher;

static size_t put_string(unsigned char *p, const char *s, size_t n) {
    p[0] = (unsigned char)(n >> 8);
    p[1] = (unsigned char)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

/* One PUBLISH (remaining length < 128, as every packet here). */
static size_t encode_publish(unsigned char *p, int qos, uint16_t mid, const char *topic,
                             const char *payload) {
    size_t tl = strlen(topic), pl = strlen(payload);
    size_t rem = 2 + tl + (qos ? 2 : 0) + pl, n = 0;
    p[n++] = (unsigned char)(0x30 | qos << 1);
    p[n++] = (unsigned char)rem;
    n += put_string(p + n, topic, tl);
    if (qos) {
        p[n++] = (unsigned char)(mid >> 8);
        p[n++] = (unsigned char)mid;
    }
    memcpy(p + n, payload, pl);
    return n + pl;
}

static void encode_stream(publisher *pub) {
    pub->stream = malloc(pub->count * 64 + 64);
    if (!pub->stream) die("stream", "out of memory");
    char topic[32], payload[48];
    uint16_t mid = 0;
    for (size_t i = 0; i < pub->count; i++) {
        snprintf(topic, sizeof(topic), "bench/t%04zu/v", (i * pub->stride + (size_t)pub->index) % TOPICS);
        snprintf(payload, sizeof(payload), "{\"seq\":%zu,\"v\":%d.5}", i, (int)(i % 40));
        if (++mid == 0) mid = 1;
        pub->len += encode_publish(pub->stream + pub->len, pub->qos, mid, topic, payload);
    }
    /* QoS 0 ends with a QoS 1 fence on a topic no rule routes. */
    if (pub->qos == 0) pub->len += encode_publish(pub->stream + pub->len, 1, 1, "bench-fence", "{}");
}

static void write_all(int fd, const unsigned char *p, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
}

static void read_exactly(int fd, unsigned char *p, size_t len) {
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("read", r == 0 ? "connection closed" : strerror(errno));
        p += r;
        len -= (size_t)r;
    }
}

static void connect_publisher(publisher *pub) {
    pub->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pub->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(pub->fd, (struct sockaddr *)&a, sizeof(a)) != 0) die("connect", strerror(errno));
    char id[16];
    int idl = snprintf(id, sizeof(id), "pub-%d", pub->index);
    unsigned char p[64] = {0x10, (unsigned char)(10 + 2 + idl), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60};
    size_t n = 12 + put_string(p + 12, id, (size_t)idl);
    write_all(pub->fd, p, n);
    unsigned char connack[4];
    read_exactly(pub->fd, connack, 4);
    if (connack[0] != 0x20 || connack[3] != 0) die("connect", "refused");
}

/* Count PUBACKs until every message (QoS 1) or the fence (QoS 0) is in. */
static void *read_acks(void *arg) {
    publisher *pub = arg;
    size_t want = pub->qos ? pub->count : 1, got = 0;
    unsigned char buf[65536];
    size_t have = 0;
    while (got < want) {
        ssize_t r = read(pub->fd, buf + have, sizeof(buf) - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("read acks", r == 0 ? "connection closed" : strerror(errno));
        have += (size_t)r;
        size_t used = 0;
        while (have - used >= 4) {
            if (buf[used] != 0x40 || buf[used + 1] != 2) die("read acks", "unexpected packet");
            got++;
            used += 4;
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    pub->done_ms = bench_now_ms();
    return NULL;
}

static void *run_publisher(void *arg) {
    publisher *pub = arg;
    pthread_t reader;
    pthread_create(&reader, NULL, read_acks, pub);
    if (pub->start) pthread_barrier_wait(pub->start);
    write_all(pub->fd, pub->stream, pub->len);
    pthread_join(reader, NULL);
    return NULL;
}

/* One message per topic before timing: the plugin opens a record on a
 * topic's first message (once in a broker's life), and the figure wanted
 * is the steady state. */
static void warm_up(int port) {
    publisher pub = {.index = PUBLISHERS, .stride = 1, .qos = 0, .port = port, .count = TOPICS};
    encode_stream(&pub);
    connect_publisher(&pub);
    run_publisher(&pub);
    close(pub.fd);
    free(pub.stream);
}

/* ---------------------------------------------------------------- ingest */

/* The broker's own thread (its event loop) and the plugin's threads that
 * ingest costs, grouped by the names libaimdb gives them. */
enum { T_LOOP, T_RELAY, T_WORKERS, T_WRITER, T_GROUPS };
static const char *const thread_group_names[T_GROUPS] = {"", "aimdb-relay", "aimdb-worker",
                                                        "aimdb-writer"};

typedef struct ingest_result {
    double msgs_per_s;
    double cpu_us[T_GROUPS];  /* CPU per message while publishing, per thread group */
    double sleeps[T_GROUPS];  /* sleeps per 1,000 messages, per thread group */
    double loop_wait_us;      /* the event loop's wait for a CPU per message */
    double stop_ms;      /* SIGTERM to exit (plugin: draining to SQLite) */
    long long rows;      /* rows in SQLite after the stop (plugin only) */
} ingest_result;

/* The brokers an ingest round compares. */
typedef enum broker_kind {
    BROKER_ALONE,
    BROKER_NULL_PLUGIN,    /* null_plugin.c: what a plugin with a thread costs doing nothing */
    BROKER_PROCESS_FLOOR,  /* process_floor_plugin.c: no thread, messages to another process */
    BROKER_AIMDB
} broker_kind;

static const char *plugin_line(broker_kind kind) {
    switch (kind) {
    case BROKER_NULL_PLUGIN: return "plugin " NULL_PLUGIN_PATH "\n";
    case BROKER_PROCESS_FLOOR: return "plugin " PROCESS_FLOOR_PLUGIN_PATH "\n";
    default: return NULL; /* alone, or aimdb (broker_write_conf adds the plugin) */
    }
}

static ingest_result ingest_run(broker_kind kind, int qos, size_t messages) {
    bool with_plugin = kind == BROKER_AIMDB;
    broker b;
    broker_init(&b);
    b.without_plugin = !with_plugin;
    broker_write_aimdb(&b, ingest_rules);
    broker_write_conf(&b, plugin_line(kind));
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        die("ingest", "the broker did not start");
    }
    warm_up(b.port);
    publisher pubs[PUBLISHERS];
    pthread_t threads[PUBLISHERS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, PUBLISHERS + 1);
    for (int i = 0; i < PUBLISHERS; i++) {
        pubs[i] = (publisher){.index = i, .stride = PUBLISHERS, .qos = qos, .port = b.port,
                              .count = messages / PUBLISHERS, .start = &start};
        encode_stream(&pubs[i]);
        connect_publisher(&pubs[i]);
        pthread_create(&threads[i], NULL, run_publisher, &pubs[i]);
    }
    bench_thread_use use0[T_GROUPS], use1[T_GROUPS];
    bench_thread_groups(b.pid, thread_group_names, T_GROUPS, use0);
    pthread_barrier_wait(&start);
    double t0 = bench_now_ms(), t1 = t0;
    for (int i = 0; i < PUBLISHERS; i++) {
        pthread_join(threads[i], NULL);
        if (pubs[i].done_ms > t1) t1 = pubs[i].done_ms;
    }
    bench_thread_groups(b.pid, thread_group_names, T_GROUPS, use1);
    size_t sent = messages / PUBLISHERS * PUBLISHERS;
    ingest_result r = {.msgs_per_s = (double)sent / ((t1 - t0) / 1e3)};
    for (int g = 0; g < T_GROUPS; g++) {
        r.cpu_us[g] = (double)(use1[g].cpu_ns - use0[g].cpu_ns) / 1e3 / (double)sent;
        r.sleeps[g] = (double)(use1[g].sleeps - use0[g].sleeps) * 1e3 / (double)sent;
    }
    r.loop_wait_us = (double)(use1[T_LOOP].wait_ns - use0[T_LOOP].wait_ns) / 1e3 / (double)sent;
    double s0 = bench_now_ms();
    int status = broker_stop(&b);
    r.stop_ms = bench_now_ms() - s0;
    if (status != 0) die("ingest", "the broker did not stop cleanly");
    if (kind == BROKER_PROCESS_FLOOR && !broker_log_wait(&b, " 0 dropped", 0))
        die("ingest", "the process floor dropped messages (its ring was full): not a floor");
    for (int i = 0; i < PUBLISHERS; i++) {
        close(pubs[i].fd);
        free(pubs[i].stream);
    }
    pthread_barrier_destroy(&start);
    r.rows = with_plugin ? bench_count_rows(b.db_path) - TOPICS : 0; /* the warm-up's rows */
    broker_cleanup(&b);
    return r;
}

static double median3(double *v, int n) {
    return bench_percentile(v, (size_t)n, 0.5);
}

static bool bench_ingest(int qos, size_t messages, int rounds) {
    double base[8], with[8], null[8], proc[8], stop_base[8], stop_with[8], loop_base[8];
    double loop_null[8], loop_proc[8];
    double wait_base[8], wait_with[8];
    double cpu_with[T_GROUPS][8], sleeps_with[T_GROUPS][8];
    bool all_rows = true;
    long long rows = 0;
    for (int i = 0; i < rounds; i++) {
        ingest_result rb = ingest_run(BROKER_ALONE, qos, messages);
        ingest_result rn = ingest_run(BROKER_NULL_PLUGIN, qos, messages);
        ingest_result rp = ingest_run(BROKER_PROCESS_FLOOR, qos, messages);
        ingest_result rw = ingest_run(BROKER_AIMDB, qos, messages);
        base[i] = rb.msgs_per_s;
        null[i] = rn.msgs_per_s;
        loop_null[i] = rn.cpu_us[T_LOOP];
        proc[i] = rp.msgs_per_s;
        loop_proc[i] = rp.cpu_us[T_LOOP];
        with[i] = rw.msgs_per_s;
        stop_base[i] = rb.stop_ms;
        stop_with[i] = rw.stop_ms;
        loop_base[i] = rb.cpu_us[T_LOOP];
        wait_base[i] = rb.loop_wait_us;
        wait_with[i] = rw.loop_wait_us;
        for (int g = 0; g < T_GROUPS; g++) {
            cpu_with[g][i] = rw.cpu_us[g];
            sleeps_with[g][i] = rw.sleeps[g];
        }
        rows = rw.rows;
        all_rows &= rw.rows == (long long)(messages / PUBLISHERS * PUBLISHERS);
    }
    double mb = median3(base, rounds), mw = median3(with, rounds);
    printf("ingest QoS %d: %zu msgs x %d rounds, %d publishers, %d topics\n", qos,
           messages / PUBLISHERS * PUBLISHERS, rounds, PUBLISHERS, TOPICS);
    printf("  broker alone      %9.0f msg/s   (stop %.0f ms)\n", mb, median3(stop_base, rounds));
    printf("  broker + aimdb    %9.0f msg/s   (stop incl. final commit %.0f ms)\n", mw,
           median3(stop_with, rounds));
    printf("  ratio             %9.2fx        goal >= 0.90x  %s\n", mw / mb,
           mw / mb >= 0.9 ? "ok" : "MISSED");
    double mn = median3(null, rounds);
    printf("  floor: broker + a plugin that ignores every message and has one idle thread\n"
           "                    %9.0f msg/s   (%.2fx; event-loop CPU %.2f us per message)\n",
           mn, mn / mb, median3(loop_null, rounds));
    double mp = median3(proc, rounds);
    printf("  floor: broker + a plugin with no thread that copies every message to a child "
           "process\n"
           "                    %9.0f msg/s   (%.2fx; event-loop CPU %.2f us per message)\n",
           mp, mp / mb, median3(loop_proc, rounds));
    double lb = median3(loop_base, rounds), lw = median3(cpu_with[T_LOOP], rounds);
    printf("  broker event-loop CPU per message: alone %.2f us, with aimdb %.2f us (%.2fx);\n"
           "  the rest of a shortfall is CPU taken by the plugin's threads (%d cores here):\n",
           lb, lw, lb / lw, (int)sysconf(_SC_NPROCESSORS_ONLN));
    printf("  broker event loop runnable but waiting for a CPU, per message: alone %.2f us, "
           "with aimdb %.2f us\n",
           median3(wait_base, rounds), median3(wait_with, rounds));
    printf("  plugin threads while publishing, CPU per message (sleeps per 1,000 messages):\n"
           "    relay %.2f us (%.0f), tap workers %.2f us (%.0f), SQLite writer %.2f us (%.1f)\n",
           median3(cpu_with[T_RELAY], rounds), median3(sleeps_with[T_RELAY], rounds),
           median3(cpu_with[T_WORKERS], rounds), median3(sleeps_with[T_WORKERS], rounds),
           median3(cpu_with[T_WRITER], rounds), median3(sleeps_with[T_WRITER], rounds));
    printf("  rows in SQLite    %lld of %zu after SIGTERM (every round: %s)\n", rows,
           messages / PUBLISHERS * PUBLISHERS, all_rows ? "100%" : "NOT ALL");
    return all_rows;
}

/* --------------------------------------------------------------- history */

static void build_history(const char *path) {
    char tmp[PATH_MAX + 80];
    snprintf(tmp, sizeof(tmp), "%s.building", path);
    remove(tmp);
    printf("building %s (1,000 x 10,000 rows through the SQLite backend, once) ...\n", path);
    fflush(stdout);
    double t0 = bench_now_ms();
    aimdb_sqlite_options so = {.path = tmp, .synchronous = AIMDB_SQLITE_SYNC_OFF};
    aimdb_backend be;
    char err[256];
    if (aimdb_sqlite_open(&so, &be, err, sizeof(err)) != AIMDB_OK) die(tmp, err);
    char name[32], json[64];
    for (int t = 0; t < HISTORY_ROWS; t++) {
        for (int r = 0; r < HISTORY_RECORDS; r++) {
            snprintf(name, sizeof(name), "bench::r%04d", r);
            int n = snprintf(json, sizeof(json), "{\"v\":%d.%02d,\"seq\":%d}", 10 + (t + r) % 20,
                             (t * 7 + r) % 100, t);
            if (be.ops->store(be.self, name, json, (size_t)n,
                              HISTORY_T0 + (int64_t)t * HISTORY_STEP_MS, NULL) != AIMDB_OK)
                die(tmp, "store failed");
        }
    }
    be.ops->close(be.self); /* drains and commits everything */
    if (rename(tmp, path) != 0) die("rename", strerror(errno));
    printf("built in %.0f s\n", (bench_now_ms() - t0) / 1e3);
}

static bool history_ready(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return false;
    return bench_count_rows(path) == (long long)HISTORY_RECORDS * HISTORY_ROWS;
}

/* ------------------------------------------------------------ query, stall */

static double time_request(client *c, const char *request, int want_count) {
    double t0 = bench_now_ms();
    char *reply = client_request_qos(c, request, "bench/reply", 0, 10000);
    double ms = bench_now_ms() - t0;
    if (!reply) die("query", "no reply within 10 s");
    if (want_count >= 0 && reply_count(reply) != want_count) {
        fprintf(stderr, "reply: %.300s\n", reply);
        die("query", "unexpected count");
    }
    free(reply);
    return ms;
}

static bool bench_one_query(client *c, const char *label, const char *request, int want) {
    double v[QUERY_RUNS];
    for (int i = 0; i < 20; i++) time_request(c, request, want); /* warm caches */
    for (int i = 0; i < QUERY_RUNS; i++) v[i] = time_request(c, request, want);
    double p50 = bench_percentile(v, QUERY_RUNS, 0.5), p99 = bench_percentile(v, QUERY_RUNS, 0.99);
    printf("  %-28s p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms   goal p50 < 5 ms  %s\n", label,
           p50, p99, v[QUERY_RUNS - 1], p50 < 5 ? "ok" : "MISSED");
    return p50 < 5;
}

static const char latest_all[] =
    "{\"id\":1,\"method\":\"record.query\",\"params\":{\"name\":\"*\"}}";
static const char latest10_one[] =
    "{\"id\":2,\"method\":\"record.query\",\"params\":{\"name\":\"bench::r0500\",\"limit\":10}}";

typedef struct query_load {
    int port;
    atomic_bool stop;
    long done;
} query_load;

static void *run_queries(void *arg) {
    query_load *q = arg;
    client *c = client_connect(q->port, "bench-load", MQTT_PROTOCOL_V5, NULL, NULL);
    if (!c) die("stall", "cannot connect");
    while (!atomic_load(&q->stop)) {
        time_request(c, latest_all, HISTORY_RECORDS);
        q->done++;
    }
    client_disconnect(c);
    return NULL;
}


static bool bench_stall(int port) {
    client *c = client_connect(port, "bench-ping", MQTT_PROTOCOL_V311, NULL, NULL);
    if (!c) die("stall", "cannot connect");
    client_subscribe(c, "bench-ping/self", 0);
    enum { CAP = PING_PHASE_MS / PING_INTERVAL_MS + 1 };
    static double base[CAP], busy[CAP];
    size_t nb = bench_ping_phase(c, PING_PHASE_MS, PING_INTERVAL_MS, base, CAP);
    query_load q = {.port = port};
    pthread_t t;
    pthread_create(&t, NULL, run_queries, &q);
    sleep_ms(200);
    size_t nq = bench_ping_phase(c, PING_PHASE_MS, PING_INTERVAL_MS, busy, CAP);
    atomic_store(&q.stop, true);
    pthread_join(t, NULL);
    client_disconnect(c);
    double b50 = bench_percentile(base, nb, 0.5), b99 = bench_percentile(base, nb, 0.99);
    double q50 = bench_percentile(busy, nq, 0.5), q99 = bench_percentile(busy, nq, 0.99);
    printf("stall: ping through the broker every %d ms, %zu pings per phase\n", PING_INTERVAL_MS, nb);
    printf("  idle broker                  p50 %6.3f ms  p99 %6.3f ms\n", b50, b99);
    printf("  during %4ld latest-1 * queries p50 %6.3f ms  p99 %6.3f ms\n", q.done, q50, q99);
    printf("  p99 increase %.3f ms   goal <= 2 ms  %s\n", q99 - b99, q99 - b99 <= 2 ? "ok" : "MISSED");
    return q99 - b99 <= 2;
}

static void bench_queries(const char *history_path) {
    broker b;
    broker_init(&b);
    char rules[PATH_MAX + 200];
    snprintf(rules, sizeof(rules), "database %s\nrecord bench::{1} bench/+/v persist\n", history_path);
    broker_write_aimdb(&b, rules);
    broker_write_conf(&b, NULL);
    if (!broker_start(&b, NULL)) {
        broker_log_dump(&b);
        die("query", "the broker did not start");
    }
    client *c = client_connect(b.port, "bench-query", MQTT_PROTOCOL_V5, NULL, NULL);
    if (!c) die("query", "cannot connect");
    printf("query round trip over MQTT v5, idle broker, %d x %d rows, %d runs each\n",
           HISTORY_RECORDS, HISTORY_ROWS, QUERY_RUNS);
    bench_one_query(c, "latest-1 of \"*\" (1,000 rows)", latest_all, HISTORY_RECORDS);
    bench_one_query(c, "latest-10 of one record", latest10_one, 10);
    client_disconnect(c);
    bench_stall(b.port);
    if (broker_stop(&b) != 0) die("query", "the broker did not stop cleanly");
    broker_cleanup(&b);
}

static const char usage[] =
    "usage: bench_plugin [--quick] [--ingest | --queries | --requests | --flood]\n"
    "  --quick     fewer messages and one round instead of three\n"
    "  --ingest    the ingest figures only (no history, queries or stall)\n"
    "  --queries   the query round trips and the stall only (no ingest)\n"
    "  --requests  requests by record count, floods, QoS 0 and 1 only\n"
    "  --flood     the request floods only\n";

int main(int argc, char **argv) {
    bool quick = false, ingest_only = false, queries_only = false, requests_only = false,
         flood_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--requests") == 0 && !ingest_only && !queries_only &&
                   !flood_only) {
            requests_only = true;
        } else if (strcmp(argv[i], "--flood") == 0 && !ingest_only && !queries_only &&
                   !requests_only) {
            flood_only = true;
        } else if (strcmp(argv[i], "--ingest") == 0 && !queries_only && !requests_only &&
                   !flood_only) {
            ingest_only = true;
        } else if (strcmp(argv[i], "--queries") == 0 && !ingest_only && !requests_only &&
                   !flood_only) {
            queries_only = true;
        } else {
            fprintf(strcmp(argv[i], "--help") == 0 ? stdout : stderr, "%s", usage);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (requests_only) return bench_requests(quick) ? 0 : 1;
    if (flood_only) return bench_request_flood() ? 0 : 1;
    size_t messages = quick ? 50000 : 400000;
    int rounds = quick ? 1 : 3;
    bool ok = true;
    if (!queries_only) {
        ok = bench_ingest(0, messages, rounds);
        ok &= bench_ingest(1, messages / 2, rounds);
    }
    if (ingest_only) return ok ? 0 : 1;

    /* Absolute: the broker runs in its own directory. */
    char self[1024], where[PATH_MAX], dir[PATH_MAX + 16], path[PATH_MAX + 64];
    snprintf(self, sizeof(self), "%s", argv[0]);
    if (!realpath(dirname(self), where)) die(argv[0], strerror(errno));
    snprintf(dir, sizeof(dir), "%s/bench-data", where);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/plugin-history-10m.db", dir);
    if (!history_ready(path)) build_history(path);
    bench_queries(path);
    return ok ? 0 : 1;
}
