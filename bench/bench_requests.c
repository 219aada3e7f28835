/*
 * bench_requests.c -- bench_plugin --requests: what a request costs the
 * broker, side by side in one run (this machine is shared and noisy, so
 * only ratios against a baseline measured in the same round mean much).
 *
 * Every broker here filters by an acl_file (the costly case: each record a
 * request covers is checked against the file), and requests come from raw
 * MQTT 3.1.1 connections with TCP_NODELAY (packets encoded up front, so a
 * figure is the broker's, not a client library's).
 *
 * Record count.  A broker with a handful of records (HANDFUL) against one
 * with LARGE more plus HIDDEN records the client may not read, alternating,
 * median of the rounds: record.get of one record, record.list and
 * record.query of a narrow pattern (the same HANDFUL names in both), as
 * rates with requests pipelined; record.list x 2,000 sent at once, time to
 * the median reply.  Goal: record.get with LARGE records >= 0.7x its rate
 * with a handful.  And what a pattern's time says about hidden records: a
 * query whose prefix covers the HIDDEN names against one whose prefix
 * covers none.
 *
 * Flood.  A libmosquitto client in this process publishes QoS 0 to its own
 * subscription every PING_INTERVAL_MS (sleeping in between) and times each
 * round trip through the broker: idle, then while one client (and then 20)
 * sends FLOOD light queries at once, again and again on each last reply,
 * and while the same clients send as many plain PUBLISHes (the floor: what
 * any flood of packets does, with no aimdb work).  Every reply is counted
 * as a result, busy, or anything else.  Right after each libmosquitto ping
 * the same ping goes over a raw connection (one thread, blocking I/O): the
 * libmosquitto figure also holds the hand-over from the library's network
 * thread to the pinging one, which a flood delays by 1-2 ms more than it
 * delays the broker (measured side by side), so the goal is judged on the
 * raw ping, and both are printed.  Goal: nothing else; raw ping p99 within
 * 2 ms of the idle phase of the same round.  The figure is still client
 * to client, so it holds the ping client's own scheduling as well as the
 * broker's; the flooding threads run under SCHED_IDLE so that on a 2-core
 * machine they do not compete with the pinging threads for a CPU (they
 * still keep the broker thread busy: it answers tens of thousands of them
 * a second).  Beside each phase, from schedstat, the share of it the
 * broker's thread spent on a CPU and runnable but waiting for one: a flood
 * keeps that thread runnable, and where other processes keep the CPUs
 * busy the scheduler makes it wait its turn, for milliseconds at a time,
 * while the ping waits with it (perf sched on this shared machine: 78 to
 * 100% of those waits went to other processes, 0 to 4% to aimdb's
 * threads).  Each round is printed, then the medians.
 *
 * QoS.  Sequential record.get round trips at QoS 0 and at QoS 1, on a
 * broker with set_tcp_nodelay false (Mosquitto's default) and true.
 */
#define _GNU_SOURCE /* SCHED_IDLE */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mqtt_protocol.h>

#include "bench_requests.h"
#include "bench_util.h"
#include "client.h"
#include "harness.h"

#define HANDFUL 10
#define LARGE 20000
#define HIDDEN 3000
#define FLOOD 2000
#define FLOOD_CLIENTS 20
#define PING_INTERVAL_MS 2
#define PING_PHASE_MS 2000
#define REQUEST_TOPIC "$CONTROL/aimdb/v1"

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_plugin --requests: %s: %s\n", what, why);
    exit(1);
}

/* ------------------------------------------------------------ raw MQTT */

typedef struct wire {
    unsigned char *p;
    size_t len, cap;
} wire;

static void wire_put(wire *w, const void *data, size_t n) {
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 256;
        if (!(w->p = realloc(w->p, w->cap))) die("wire", "out of memory");
    }
    memcpy(w->p + w->len, data, n);
    w->len += n;
}

static void wire_byte(wire *w, unsigned char b) { wire_put(w, &b, 1); }

static void wire_string(wire *w, const char *s) {
    size_t n = strlen(s);
    wire_byte(w, (unsigned char)(n >> 8));
    wire_byte(w, (unsigned char)n);
    wire_put(w, s, n);
}

static void wire_remaining(wire *w, size_t n) {
    do {
        unsigned char b = n % 128;
        n /= 128;
        wire_byte(w, (unsigned char)(b | (n ? 0x80 : 0)));
    } while (n);
}

static void wire_publish(wire *w, int qos, uint16_t mid, const char *topic, const char *payload) {
    size_t tl = strlen(topic), pl = strlen(payload);
    wire_byte(w, (unsigned char)(0x30 | qos << 1));
    wire_remaining(w, 2 + tl + (qos ? 2 : 0) + pl);
    wire_string(w, topic);
    if (qos) {
        wire_byte(w, (unsigned char)(mid >> 8));
        wire_byte(w, (unsigned char)mid);
    }
    wire_put(w, payload, pl);
}

static void write_all(int fd, const unsigned char *p, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* A connection and what it has read and not consumed yet. */
typedef struct conn {
    int fd;
    unsigned char *buf;
    size_t have, used, cap;
} conn;

/* Next packet: its first byte and body.  False after timeout_ms. */
static bool next_packet(conn *c, int timeout_ms, unsigned char *type, const unsigned char **body,
                        size_t *len) {
    double deadline = bench_now_ms() + timeout_ms;
    for (;;) {
        size_t avail = c->have - c->used, n = 0, mult = 1, i = 1;
        const unsigned char *p = c->buf + c->used;
        bool complete = false;
        while (avail > i) {
            n += (size_t)(p[i] & 0x7f) * mult;
            mult *= 128;
            if (!(p[i++] & 0x80)) {
                complete = avail >= i + n;
                break;
            }
        }
        if (complete) {
            *type = p[0];
            *body = p + i;
            *len = n;
            c->used += i + n;
            return true;
        }
        if (c->used) {
            memmove(c->buf, c->buf + c->used, c->have - c->used);
            c->have -= c->used;
            c->used = 0;
        }
        if (c->have == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 1 << 16;
            if (!(c->buf = realloc(c->buf, c->cap))) die("read", "out of memory");
        }
        int left = (int)(deadline - bench_now_ms());
        struct pollfd pfd = {c->fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, left) <= 0) return false;
        ssize_t r = read(c->fd, c->buf + c->have, c->cap - c->have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("read", r == 0 ? "connection closed" : strerror(errno));
        c->have += (size_t)r;
    }
}

/* A connection under a client id never used before in this process (a
 * reused id would take over a session the broker may still be closing). */
static conn conn_open(int port, const char *name) {
    static atomic_int serial;
    char id[64];
    snprintf(id, sizeof(id), "%s-%d", name, atomic_fetch_add(&serial, 1));
    conn c = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c.fd, (struct sockaddr *)&a, sizeof(a)) != 0) die("connect", strerror(errno));
    wire body = {0}, w = {0};
    wire_string(&body, "MQTT");
    wire_byte(&body, 4);    /* 3.1.1 */
    wire_byte(&body, 0x02); /* clean session */
    wire_byte(&body, 0);
    wire_byte(&body, 60);
    wire_string(&body, id);
    wire_byte(&w, 0x10);
    wire_remaining(&w, body.len);
    wire_put(&w, body.p, body.len);
    write_all(c.fd, w.p, w.len);
    free(body.p);
    free(w.p);
    unsigned char type;
    const unsigned char *b;
    size_t n;
    if (!next_packet(&c, 5000, &type, &b, &n) || type != 0x20 || n != 2 || b[1] != 0)
        die("connect", "refused");
    return c;
}

static void conn_close(conn *c) {
    close(c->fd);
    free(c->buf);
}

typedef enum { REPLY_RESULT, REPLY_BUSY, REPLY_OTHER } reply_kind;

static reply_kind kind_of(const unsigned char *payload, size_t len) {
    char head[160];
    size_t n = len < sizeof(head) - 1 ? len : sizeof(head) - 1;
    memcpy(head, payload, n);
    head[n] = '\0';
    if (strstr(head, "\"result\":")) return REPLY_RESULT;
    if (strstr(head, "\"code\":\"busy\"")) return REPLY_BUSY;
    return REPLY_OTHER;
}

/* The next reply (a PUBLISH; acknowledged if QoS 1), or false on timeout. */
static bool next_reply(conn *c, int timeout_ms, reply_kind *kind) {
    unsigned char type;
    const unsigned char *b;
    size_t n;
    while (next_packet(c, timeout_ms, &type, &b, &n)) {
        if ((type & 0xf0) != 0x30) continue; /* a PUBACK of ours */
        int qos = (type >> 1) & 3;
        size_t tl = (size_t)b[0] << 8 | b[1], at = 2 + tl + (qos ? 2 : 0);
        if (qos) {
            unsigned char ack[4] = {0x40, 2, b[2 + tl], b[3 + tl]};
            write_all(c->fd, ack, 4);
        }
        *kind = kind_of(b + at, n - at);
        return true;
    }
    return false;
}

/* count copies of one request, encoded back to back. */
static wire requests(const char *payload, size_t count, int qos) {
    wire w = {0};
    for (size_t i = 0; i < count; i++) wire_publish(&w, qos, (uint16_t)(i % 65535 + 1), REQUEST_TOPIC, payload);
    return w;
}

/* ------------------------------------------------------------- brokers */

static const char acl_text[] =
    "topic read bench/#\n"
    "topic write bench/#\n"
    "topic write secret/#\n"
    "topic readwrite bench-ping/#\n"
    "topic write $CONTROL/aimdb/v1\n"
    "pattern read devices/%c/#\n"
    "user admin\n"
    "topic read #\n";

static void start_broker(broker *b, const char *extra_conf) {
    broker_init(b);
    broker_write_aimdb(b, "database @DIR@/data/aimdb.db\n"
                          "max_records 100000\n"
                          "record bench::{1}  bench/+/v  persist\n"
                          "record hidden::{1} secret/+/v persist\n");
    char acl[1024], conf[2048];
    snprintf(acl, sizeof(acl), "%s/acl", b->dir);
    write_file(acl, acl_text);
    snprintf(conf, sizeof(conf), "acl_file %s\n%s", acl, extra_conf ? extra_conf : "");
    broker_write_conf(b, conf);
    if (!broker_start(b, NULL)) {
        broker_log_dump(b);
        die("broker", "did not start");
    }
}

static void stop_broker(broker *b) {
    if (broker_stop(b) != 0) die("broker", "did not stop cleanly");
    broker_cleanup(b);
}

/* One value to each of n topics FORMAT % i, QoS 0 with a QoS 1 fence
 * (the broker handles a connection's packets in order). */
static void feed(int port, const char *format, int n) {
    conn c = conn_open(port, "bench-feed");
    wire w = {0};
    char topic[64];
    for (int i = 0; i < n; i++) {
        snprintf(topic, sizeof(topic), format, i);
        wire_publish(&w, 0, 0, topic, "{\"v\":1.5}");
    }
    wire_publish(&w, 1, 1, "bench/fence", "{}");
    write_all(c.fd, w.p, w.len);
    unsigned char type;
    const unsigned char *b;
    size_t len;
    if (!next_packet(&c, 60000, &type, &b, &len) || type != 0x40) die("feed", "no fence");
    free(w.p);
    conn_close(&c);
}

/* Wait until history holds want rows (the writer commits in batches). */
static void wait_rows(broker *b, long long want) {
    double deadline = bench_now_ms() + 30000;
    while (bench_count_rows(b->db_path) < want)
        if (bench_now_ms() > deadline) die("history", "rows not committed within 30 s");
        else sleep_ms(20);
}

static void populate(broker *b, bool large) {
    feed(b->port, "bench/t%05d/v", large ? LARGE : HANDFUL);
    if (large) feed(b->port, "secret/h%05d/v", HIDDEN);
    wait_rows(b, large ? LARGE + HIDDEN : HANDFUL);
}

/* -------------------------------------------------------- measurements */

/* Time the broker's own thread (its event loop, where requests are
 * handled) has spent on a CPU and runnable but waiting for one, from
 * schedstat.  CPU time is barely moved by what else the machine runs, unlike
 * a rate; the wait is what the machine's scheduler adds. */
typedef struct loop_time {
    double run_ms, wait_ms;
} loop_time;

static loop_time loop_schedstat(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    long long run = 0, wait = 0;
    if (!f || fscanf(f, "%lld %lld", &run, &wait) != 2) die("schedstat", path);
    fclose(f);
    return (loop_time){(double)run / 1e6, (double)wait / 1e6};
}

static double loop_cpu_us(pid_t pid) { return loop_schedstat(pid).run_ms * 1e3; }

/* A rate and the broker thread's CPU per request while it was measured. */
typedef struct figure {
    double per_s, cpu_us;
} figure;

/* Requests per second: count requests sent at once, window at most in
 * flight (0: all), every reply of the wanted kind. */
static double rate(int port, const char *request, size_t count, size_t window) {
    conn c = conn_open(port, "bench-rate");
    if (!window) window = count;
    size_t sent = 0, got = 0;
    double t0 = bench_now_ms();
    while (got < count) {
        while (sent < count && sent - got < window) {
            size_t n = count - sent < window - (sent - got) ? count - sent : window - (sent - got);
            wire batch = requests(request, n, 0);
            write_all(c.fd, batch.p, batch.len);
            free(batch.p);
            sent += n;
        }
        reply_kind k;
        if (!next_reply(&c, 30000, &k)) die("rate", "no reply within 30 s");
        if (k != REPLY_RESULT) die("rate", "a reply that is not a result");
        got++;
    }
    double s = (bench_now_ms() - t0) / 1e3;
    conn_close(&c);
    return (double)count / s;
}

/* count requests at once; the time until the median reply, in ms. */
static double burst_p50(int port, const char *request, size_t count) {
    conn c = conn_open(port, "bench-burst");
    wire w = requests(request, count, 0);
    double t0 = bench_now_ms(), *at = malloc(count * sizeof(*at));
    write_all(c.fd, w.p, w.len);
    for (size_t i = 0; i < count; i++) {
        reply_kind k;
        if (!next_reply(&c, 60000, &k)) die("burst", "no reply within 60 s");
        at[i] = bench_now_ms() - t0;
    }
    double p50 = bench_percentile(at, count, 0.5);
    free(at);
    free(w.p);
    conn_close(&c);
    return p50;
}

/* Sequential round trips at qos: p50 in ms. */
static double round_trip_p50(int port, const char *request, int qos, int runs) {
    conn c = conn_open(port, "bench-rtt");
    double *v = malloc((size_t)runs * sizeof(*v));
    for (int i = -20; i < runs; i++) { /* 20 to warm up */
        wire w = {0};
        wire_publish(&w, qos, (uint16_t)(i + 21), REQUEST_TOPIC, request);
        double t0 = bench_now_ms();
        write_all(c.fd, w.p, w.len);
        free(w.p);
        reply_kind k;
        if (!next_reply(&c, 5000, &k)) die("round trip", "no reply within 5 s");
        if (i >= 0) v[i] = bench_now_ms() - t0;
    }
    double p50 = bench_percentile(v, (size_t)runs, 0.5);
    free(v);
    conn_close(&c);
    return p50;
}

static const char get_one[] =
    "{\"id\":1,\"method\":\"record.get\",\"params\":{\"record\":\"bench::t00003\"}}";
static const char list_narrow[] =
    "{\"id\":2,\"method\":\"record.list\",\"params\":{\"name\":\"bench::t0000*\"}}";
static const char query_narrow[] =
    "{\"id\":3,\"method\":\"record.query\",\"params\":{\"name\":\"bench::t0000*\"}}";
static const char query_hidden[] =
    "{\"id\":4,\"method\":\"record.query\",\"params\":{\"name\":\"hidden::*\"}}";
static const char query_nothing[] =
    "{\"id\":5,\"method\":\"record.query\",\"params\":{\"name\":\"nothing::*\"}}";
static const char query_light[] =
    "{\"id\":6,\"method\":\"record.query\",\"params\":{\"name\":\"bench::t00003\"}}";

static figure measured_rate(pid_t pid, int port, const char *request, size_t count,
                           size_t window) {
    double cpu0 = loop_cpu_us(pid);
    figure f = {.per_s = rate(port, request, count, window)};
    f.cpu_us = (loop_cpu_us(pid) - cpu0) / (double)count;
    return f;
}

/* Sequential round trips: p50, and the broker thread's CPU per request. */
static figure measured_round_trip(pid_t pid, int port, const char *request, int runs) {
    double cpu0 = loop_cpu_us(pid);
    figure f = {.per_s = round_trip_p50(port, request, 0, runs)};
    f.cpu_us = (loop_cpu_us(pid) - cpu0) / (double)(runs + 20);
    return f;
}

enum { F_GET, F_LIST, F_QUERY, F_HIDDEN, F_NOTHING, N_FIGURES };

static void measure_counts(const broker *b, bool quick, bool large, figure *f,
                           double *list_burst_p50) {
    size_t n = quick ? 1000 : 4000;
    rate(b->port, get_one, 200, 0); /* warm up */
    f[F_GET] = measured_rate(b->pid, b->port, get_one, n, 0);
    f[F_LIST] = measured_rate(b->pid, b->port, list_narrow, n / 2, 0);
    f[F_QUERY] = measured_rate(b->pid, b->port, query_narrow, n / 4, 16);
    *list_burst_p50 = burst_p50(b->port, list_narrow, 2000);
    if (large) {
        f[F_HIDDEN] = measured_round_trip(b->pid, b->port, query_hidden, 100);
        f[F_NOTHING] = measured_round_trip(b->pid, b->port, query_nothing, 100);
    }
}

static double median(double *v, int n) { return bench_percentile(v, (size_t)n, 0.5); }

static double median_of(figure v[][3], int which, int rounds, bool cpu) {
    double x[3];
    for (int r = 0; r < rounds; r++) x[r] = cpu ? v[which][r].cpu_us : v[which][r].per_s;
    return median(x, rounds);
}

static bool bench_record_count(bool quick) {
    int rounds = quick ? 1 : 3;
    figure f[2][N_FIGURES][3];
    double burst[2][3];
    for (int r = 0; r < rounds; r++) {
        for (int large = 0; large < 2; large++) {
            broker b;
            start_broker(&b, NULL);
            populate(&b, large);
            figure got[N_FIGURES] = {0};
            measure_counts(&b, quick, large, got, &burst[large][r]);
            for (int i = 0; i < N_FIGURES; i++) f[large][i][r] = got[i];
            stop_broker(&b);
        }
    }
    printf("requests by record count: %d records against %d + %d hidden (acl_file), "
           "median of %d round(s); rate, then broker-thread CPU per request\n",
           HANDFUL, LARGE, HIDDEN, rounds);
    static const char *const labels[] = {"record.get of one record   ",
                                         "record.list, 10 by pattern ",
                                         "record.query, 10 by pattern"};
    bool ok = true;
    for (int i = F_GET; i <= F_QUERY; i++) {
        double r0 = median_of(f[0], i, rounds, false), r1 = median_of(f[1], i, rounds, false);
        double c0 = median_of(f[0], i, rounds, true), c1 = median_of(f[1], i, rounds, true);
        printf("  %s %8.0f/s %8.0f/s %5.2fx   CPU %6.1f us %6.1f us", labels[i], r0, r1,
               r1 / r0, c0, c1);
        if (i == F_GET) {
            printf("   goal >= 0.70x  %s", r1 / r0 >= 0.7 ? "ok" : "MISSED");
            ok = r1 / r0 >= 0.7;
        }
        printf("\n");
    }
    printf("  record.list x 2,000 sent at once: median reply after %.0f ms   %.0f ms\n",
           median(burst[0], rounds), median(burst[1], rounds));
    printf("  pattern query round trip, p50 and broker-thread CPU: \"hidden::*\" (%d hidden) "
           "%.2f ms %.1f us, \"nothing::*\" %.2f ms %.1f us\n",
           HIDDEN, median_of(f[1], F_HIDDEN, rounds, false), median_of(f[1], F_HIDDEN, rounds, true),
           median_of(f[1], F_NOTHING, rounds, false), median_of(f[1], F_NOTHING, rounds, true));
    return ok;
}

/* --------------------------------------------------------------- flood */

typedef struct flood_load {
    int port;
    bool requests;  /* else plain PUBLISHes: the floor */
    atomic_bool stop;
    atomic_long results, busy, other;
} flood_load;

/* The floor: the same packets' worth of plain QoS 0 PUBLISHes to a topic
 * nobody reads, FLOOD at a time closed by a QoS 1 fence (the broker
 * handles a connection's packets in order): what any flood of packets
 * does to the ping, with no request to answer. */
static void flood_publishes(flood_load *f, conn *c) {
    wire w = {0};
    for (int i = 0; i < FLOOD; i++) wire_publish(&w, 0, 0, "bench-ping/nobody", query_light);
    wire_publish(&w, 1, 1, "bench-ping/nobody", "{}");
    while (!atomic_load(&f->stop)) {
        write_all(c->fd, w.p, w.len);
        unsigned char type;
        const unsigned char *b;
        size_t n;
        if (!next_packet(c, 30000, &type, &b, &n) || type != 0x40) die("flood", "no fence");
    }
    free(w.p);
}

static void *run_flood(void *arg) {
    flood_load *f = arg;
    struct sched_param idle = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle); /* see the top */
    conn c = conn_open(f->port, "bench-flood");
    if (!f->requests) {
        flood_publishes(f, &c);
        conn_close(&c);
        return NULL;
    }
    wire w = requests(query_light, FLOOD, 0);
    while (!atomic_load(&f->stop)) {
        write_all(c.fd, w.p, w.len);
        for (int i = 0; i < FLOOD; i++) {
            reply_kind k;
            if (!next_reply(&c, 30000, &k)) die("flood", "a request was not answered within 30 s");
            atomic_fetch_add(k == REPLY_RESULT ? &f->results : k == REPLY_BUSY ? &f->busy : &f->other, 1);
        }
    }
    free(w.p);
    conn_close(&c);
    return NULL;
}


enum { PING_CAP = PING_PHASE_MS / PING_INTERVAL_MS + 1, FLOOD_ROUNDS = 3 };

#define RAW_PING_TOPIC "bench-ping/raw"

/* The same ping on a raw connection: one thread, blocking I/O, nothing
 * between the socket and the clock but the kernel, where the libmosquitto
 * ping crosses from the library's network thread to the pinging one. */
typedef struct raw_ping {
    conn c;
    wire publish;
} raw_ping;

static raw_ping raw_ping_open(int port) {
    raw_ping p = {.c = conn_open(port, "bench-raw-ping")};
    wire w = {0};
    wire_byte(&w, 0x82); /* SUBSCRIBE */
    wire_remaining(&w, 2 + 2 + strlen(RAW_PING_TOPIC) + 1);
    wire_byte(&w, 0);
    wire_byte(&w, 1);
    wire_string(&w, RAW_PING_TOPIC);
    wire_byte(&w, 0);
    write_all(p.c.fd, w.p, w.len);
    free(w.p);
    unsigned char type;
    const unsigned char *b;
    size_t n;
    if (!next_packet(&p.c, 5000, &type, &b, &n) || type != 0x90) die("raw ping", "no SUBACK");
    wire_publish(&p.publish, 0, 0, RAW_PING_TOPIC, "ping");
    return p;
}

static double raw_ping_once(raw_ping *p) {
    double t0 = bench_now_ms();
    write_all(p->c.fd, p->publish.p, p->publish.len);
    unsigned char type;
    const unsigned char *b;
    size_t n;
    do {
        if (!next_packet(&p->c, 1000, &type, &b, &n)) die("raw ping", "not back within 1 s");
    } while ((type & 0xf0) != 0x30);
    return bench_now_ms() - t0;
}

static void raw_ping_close(raw_ping *p) {
    conn_close(&p->c);
    free(p->publish.p);
}

/* A phase's ping p99 (ms), libmosquitto's and the raw one's, and the
 * broker thread's share of the phase on a CPU and waiting for one. */
typedef struct phase_figure {
    double p99, raw_p99, on_cpu, waiting;
} phase_figure;

/* One phase: both pings, one after the other every PING_INTERVAL_MS,
 * while clients flood (0: idle); replies counted in f. */
static phase_figure ping_phase(const broker *b, client *ping, raw_ping *raw, int clients,
                               flood_load *f) {
    static double v[PING_CAP], rv[PING_CAP];
    pthread_t t[FLOOD_CLIENTS];
    atomic_store(&f->stop, false);
    f->port = b->port;
    for (int i = 0; i < clients; i++) pthread_create(&t[i], NULL, run_flood, f);
    if (clients) sleep_ms(300);
    loop_time l0 = loop_schedstat(b->pid);
    double t0 = bench_now_ms();
    size_t n = 0;
    while (n < PING_CAP && bench_now_ms() < t0 + PING_PHASE_MS) {
        struct timespec due;
        clock_gettime(CLOCK_MONOTONIC, &due);
        v[n] = bench_ping(ping);
        rv[n++] = raw_ping_once(raw);
        bench_sleep_past(&due, PING_INTERVAL_MS);
    }
    double wall = bench_now_ms() - t0;
    loop_time l1 = loop_schedstat(b->pid);
    atomic_store(&f->stop, true);
    for (int i = 0; i < clients; i++) pthread_join(t[i], NULL);
    return (phase_figure){bench_percentile(v, n, 0.99), bench_percentile(rv, n, 0.99),
                          (l1.run_ms - l0.run_ms) / wall, (l1.wait_ms - l0.wait_ms) / wall};
}

static void print_loop(const phase_figure *p) {
    printf("   broker thread on a CPU %3.0f%%, waiting for one %3.0f%%\n", p->on_cpu * 100,
           p->waiting * 100);
}

/* Idle, then one client and FLOOD_CLIENTS flooding with plain PUBLISHes
 * (the floor) and with requests, interleaved FLOOD_ROUNDS times: the
 * machine's load changes by the second, so each phase is compared with the
 * idle phase next to it, as the median of the rounds. */
bool bench_request_flood(void) {
    broker b;
    start_broker(&b, NULL);
    populate(&b, false);
    client *ping = client_connect(b.port, "bench-ping", MQTT_PROTOCOL_V311, NULL, NULL);
    if (!ping) die("ping", "cannot connect");
    client_subscribe(ping, "bench-ping/self", 0);
    raw_ping raw = raw_ping_open(b.port);
    enum { PHASES = 4 };
    static const struct {
        const char *label;
        int clients;
        bool requests;
    } phases[PHASES] = {{" 1 client,  plain PUBLISHes (floor)", 1, false},
                        {" 1 client,  requests             ", 1, true},
                        {"20 clients, plain PUBLISHes (floor)", FLOOD_CLIENTS, false},
                        {"20 clients, requests             ", FLOOD_CLIENTS, true}};
    double idle[FLOOD_ROUNDS], delta[PHASES][FLOOD_ROUNDS];
    double raw_idle[FLOOD_ROUNDS], raw_delta[PHASES][FLOOD_ROUNDS];
    flood_load f[PHASES] = {0}, none = {0};
    printf("flood: light record.query (latest-1 of one record) sent %d at a time, again on "
           "each last reply; a libmosquitto ping and a raw one through the broker every %d ms; "
           "%d rounds, then medians\n",
           FLOOD, PING_INTERVAL_MS, FLOOD_ROUNDS);
    for (int r = 0; r < FLOOD_ROUNDS; r++) {
        phase_figure quiet = ping_phase(&b, ping, &raw, 0, &none);
        idle[r] = quiet.p99;
        raw_idle[r] = quiet.raw_p99;
        printf("  round %d  idle                                ping p99 %7.3f ms, raw %7.3f ms"
               "        ", r + 1, quiet.p99, quiet.raw_p99);
        print_loop(&quiet);
        for (int p = 0; p < PHASES; p++) {
            f[p].requests = phases[p].requests;
            phase_figure got = ping_phase(&b, ping, &raw, phases[p].clients, &f[p]);
            delta[p][r] = got.p99 - idle[r];
            raw_delta[p][r] = got.raw_p99 - raw_idle[r];
            printf("           %s ping p99 %+7.3f ms, raw %+7.3f ms over idle", phases[p].label,
                   delta[p][r], raw_delta[p][r]);
            print_loop(&got);
        }
    }
    raw_ping_close(&raw);
    client_disconnect(ping);
    stop_broker(&b);
    printf("  median   idle                                ping p99 %7.3f ms, raw %7.3f ms\n",
           median(idle, FLOOD_ROUNDS), median(raw_idle, FLOOD_ROUNDS));
    bool ok = true;
    for (int p = 0; p < PHASES; p++) {
        double d = median(delta[p], FLOOD_ROUNDS), rd = median(raw_delta[p], FLOOD_ROUNDS);
        if (!phases[p].requests) {
            printf("           %s ping p99 %+7.3f ms, raw %+7.3f ms over idle\n", phases[p].label,
                   d, rd);
            continue;
        }
        long other = atomic_load(&f[p].other);
        bool row_ok = other == 0 && rd <= 2;
        printf("           %s ping p99 %+7.3f ms, raw %+7.3f ms over idle; replies: %ld "
               "results, %ld busy, %ld other   goal: 0 other, raw ping <= +2 ms  %s\n",
               phases[p].label, d, rd, atomic_load(&f[p].results), atomic_load(&f[p].busy),
               other, row_ok ? "ok" : "MISSED");
        ok &= row_ok;
    }
    return ok;
}

/* ----------------------------------------------------------------- QoS */

static void bench_qos(void) {
    printf("request round trip (record.get, sequential), p50:\n");
    for (int nodelay = 0; nodelay < 2; nodelay++) {
        broker b;
        start_broker(&b, nodelay ? "set_tcp_nodelay true\n" : "set_tcp_nodelay false\n");
        populate(&b, false);
        double q0 = round_trip_p50(b.port, get_one, 0, 200);
        double q1 = round_trip_p50(b.port, get_one, 1, nodelay ? 200 : 20);
        printf("  set_tcp_nodelay %-5s  QoS 0 %7.3f ms (%5.0f/s)   QoS 1 %7.3f ms (%5.0f/s)\n",
               nodelay ? "true" : "false", q0, 1e3 / q0, q1, 1e3 / q1);
        stop_broker(&b);
    }
}

bool bench_requests(bool quick) {
    bool ok = bench_record_count(quick);
    ok &= bench_request_flood();
    bench_qos();
    return ok;
}
