/*
 * bench_efficiency.c -- what storing an MQTT stream costs with aimdb against
 * what users write instead, side by side in one run.
 *
 * One libmosquitto client publishes MESSAGES small JSON values at QoS 0,
 * round-robin over TOPICS topics, through a real Mosquitto on loopback into
 * three storers, each keeping every value as a row in SQLite:
 *   - the plugin: aimdb_mosquitto.so in the broker, every topic a persisted
 *     record;
 *   - aimdb-bridge, subscribed to a broker without the plugin, same rules;
 *   - python_logger.py: paho-mqtt and sqlite3, batched commits (the
 *     baseline: what a competent user writes instead).
 * The floor is the broker alone with nobody subscribed: what Mosquitto
 * spends on the stream before anyone stores it.
 *
 * Figures, from the first publish until the last row is committed (the
 * largest row id, polled every POLL_MS):
 *   - CPU per stored message of the broker and of the storer, user + system
 *     from /proc (robust to the shared machine's load);
 *   - messages per second committed, as a ratio to the Python logger in the
 *     same round (load moves the rate itself, not much the ratio);
 *   - where the plugin's and aimdb-bridge's CPU goes, by the threads
 *     libaimdb and Paho name (schedstat), so a change shows in its part.
 * Goals: the plugin at least 5x and aimdb-bridge at least 3x less CPU per
 * message than the Python logger.  The broker queues without limit, so a
 * slow storer is measured, not dropped; the rows are counted again after
 * SIGTERM.  Alternating rounds, medians.
 *
 *   bench_efficiency [--quick]
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include "bench_util.h"
#include "harness.h"

#define TOPICS 1000
#define POLL_MS 20
#define READY_TIMEOUT_MS 10000
#define DRAIN_TIMEOUT_MS 300000
#define MAX_ROUNDS 8
#define PYTHON "/usr/bin/python3" /* Debian's, where python3-paho-mqtt installs */

typedef enum storer { STORE_FLOOR, STORE_PLUGIN, STORE_BRIDGE, STORE_PYTHON, STORERS } storer;

static const char *const storer_names[STORERS] = {
    "floor: broker alone, nobody subscribed", "aimdb plugin (in the broker)",
    "aimdb-bridge", "Python paho-mqtt + sqlite3"};

/* Where aimdb's CPU goes, per stored message: the threads libaimdb and
 * Paho name, the broker (the plugin's: Mosquitto's own thread, where the
 * plugin's callbacks run; the bridge's: the broker process, which delivers
 * every message to it), and the rest of the storer's process. */
typedef enum part { P_BROKER, P_WRITER, P_RELAY, P_WORKERS, P_RECEIVE, P_REST, PARTS } part;

static const char *const part_names[PARTS] = {"broker", "writer", "relay", "tap wkrs",
                                              "receive", "rest"};
/* Thread names by part (bench_thread_groups: group 0 is the main thread). */
static const char *const part_threads[P_REST] = {"", "aimdb-writer", "aimdb-relay",
                                                 "aimdb-worker", "MQTTAsync_rcv"};

typedef struct run_result {
    double msgs_per_s;
    double broker_us, storer_us; /* CPU per stored message */
    double part_us[PARTS];       /* the plugin and aimdb-bridge only */
    long long rows;              /* counted after SIGTERM */
} run_result;

static void die(const char *what) {
    fprintf(stderr, "bench_efficiency: %s\n", what);
    exit(1);
}

static void start_broker(broker *b, storer s) {
    broker_init(b);
    b->without_plugin = s != STORE_PLUGIN;
    if (s == STORE_PLUGIN)
        broker_write_aimdb(b, "database @DIR@/data/aimdb.db\nrecord bench::{1} bench/+/v persist\n");
    broker_write_conf(b, "max_queued_messages 0\n");
    if (!broker_start(b, NULL)) {
        broker_log_dump(b);
        die("the broker did not start");
    }
}

/* aimdb-bridge or the Python logger, subscribed and ready. */
static void start_storer(daemon_proc *d, broker *b, storer s) {
    char port[16], conf[HARNESS_PATH_MAX + 16], data[HARNESS_PATH_MAX], text[1024];
    snprintf(port, sizeof(port), "%d", b->port);
    snprintf(data, sizeof(data), "%s/data", b->dir);
    mkdir(data, 0700);
    if (s == STORE_BRIDGE) {
        snprintf(conf, sizeof(conf), "%s/bridge.conf", b->dir);
        snprintf(text, sizeof(text),
                 "broker mqtt://127.0.0.1:%d\nclient_id bench-bridge\ndatabase %s\n"
                 "record bench::{1} bench/+/v persist\n",
                 b->port, b->db_path);
        write_file(conf, text);
        char *argv[] = {AIMDB_BRIDGE, "-c", conf, NULL};
        daemon_start(d, b->dir, argv);
    } else {
        char *argv[] = {PYTHON, PYTHON_LOGGER, "127.0.0.1", port, "bench/+/v", b->db_path, NULL};
        daemon_start(d, b->dir, argv);
    }
    const char *ready = s == STORE_BRIDGE ? "subscription(s) active" : "subscribed";
    if (!file_wait_for(d->log_path, ready, READY_TIMEOUT_MS)) {
        file_dump(d->log_path);
        die(s == STORE_BRIDGE ? "aimdb-bridge did not subscribe"
                        : "the Python logger did not subscribe (is python3-paho-mqtt installed?)");
    }
}

static double cpu_s(pid_t pid) {
    double s = bench_process_cpu_s(pid);
    if (s < 0) die("a process to measure is gone");
    return s;
}

/* The parts of what aimdb's threads used between use0 and use1, over n
 * messages; the rest is what they do not account for of cpu_s, the CPU
 * of the process they are in (the broker thread's taken off for the
 * plugin). */
static void split_parts(run_result *r, const bench_thread_use *use0,
                        const bench_thread_use *use1, double cpu_s, size_t n) {
    double named_us = 0;
    for (int p = P_WRITER; p < P_REST; p++) {
        r->part_us[p] = (double)(use1[p].cpu_ns - use0[p].cpu_ns) / 1e3 / (double)n;
        named_us += r->part_us[p];
    }
    /* The process's CPU is in clock ticks, the threads' in ns: a rest within
     * a tick of none reads as none. */
    double rest_us = cpu_s * 1e6 / (double)n - named_us;
    r->part_us[P_REST] = rest_us > 0 ? rest_us : 0;
}

/* The stream through one storer: from the first publish until every row
 * is committed (the floor: until the broker has taken every message). */
static run_result run(storer s, size_t n) {
    broker b;
    daemon_proc d = {0};
    start_broker(&b, s);
    bool daemon = s == STORE_BRIDGE || s == STORE_PYTHON;
    if (daemon) start_storer(&d, &b, s);
    pid_t aimdb = s == STORE_PLUGIN ? b.pid : d.pid;
    bench_thread_use use0[P_REST], use1[P_REST];
    bench_thread_groups(aimdb, part_threads, P_REST, use0);
    double broker0 = cpu_s(b.pid), storer0 = daemon ? cpu_s(d.pid) : 0;
    long long t0 = now_ms();
    bench_publish_stream(b.port, n, TOPICS);
    while (s != STORE_FLOOR && bench_last_row_id(b.db_path) < (long long)n) {
        if (now_ms() - t0 > DRAIN_TIMEOUT_MS) die("a storer did not record every message");
        sleep_ms(POLL_MS);
    }
    long long t1 = now_ms();
    double broker1 = cpu_s(b.pid), storer1 = daemon ? cpu_s(d.pid) : 0;
    bench_thread_groups(aimdb, part_threads, P_REST, use1);
    run_result r = {
        .msgs_per_s = (double)n / ((double)(t1 - t0 > 0 ? t1 - t0 : 1) / 1e3),
        .broker_us = (broker1 - broker0) * 1e6 / (double)n,
        .storer_us = (storer1 - storer0) * 1e6 / (double)n,
    };
    if (s == STORE_PLUGIN) {
        double loop_s = (double)(use1[0].cpu_ns - use0[0].cpu_ns) / 1e9;
        r.part_us[P_BROKER] = loop_s * 1e6 / (double)n;
        split_parts(&r, use0, use1, broker1 - broker0 - loop_s, n);
    } else if (s == STORE_BRIDGE) {
        r.part_us[P_BROKER] = r.broker_us;
        split_parts(&r, use0, use1, storer1 - storer0, n);
    }
    if (daemon && daemon_stop(&d, SIGTERM) != 0) die("a storer did not stop cleanly");
    if (broker_stop(&b) != 0) die("the broker did not stop cleanly");
    r.rows = s == STORE_FLOOR ? (long long)n : bench_count_rows(b.db_path);
    broker_cleanup(&b);
    return r;
}

static double median(double *v, int n) {
    return bench_percentile(v, (size_t)n, 0.5);
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (argc > 1 && !quick) {
        fprintf(strcmp(argv[1], "--help") == 0 ? stdout : stderr,
                "usage: bench_efficiency [--quick]   (--quick: fewer messages, one round)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    size_t n = quick ? 20000 : 200000;
    int rounds = quick ? 1 : 3;
    double rate_ratio[STORERS][MAX_ROUNDS], broker_us[STORERS][MAX_ROUNDS];
    double storer_us[STORERS][MAX_ROUNDS], total_us[STORERS][MAX_ROUNDS];
    double rate[STORERS][MAX_ROUNDS], part_us[STORERS][PARTS][MAX_ROUNDS];
    bool all_rows = true;
    for (int i = 0; i < rounds; i++) {
        run_result r[STORERS];
        for (int s = 0; s < STORERS; s++) {
            r[s] = run((storer)s, n);
            all_rows &= r[s].rows == (long long)n;
        }
        for (int s = 0; s < STORERS; s++) {
            rate[s][i] = r[s].msgs_per_s;
            rate_ratio[s][i] = r[s].msgs_per_s / r[STORE_PYTHON].msgs_per_s;
            broker_us[s][i] = r[s].broker_us;
            storer_us[s][i] = r[s].storer_us;
            total_us[s][i] = r[s].broker_us + r[s].storer_us;
            for (int p = 0; p < PARTS; p++) part_us[s][p][i] = r[s].part_us[p];
        }
    }
    double python_us = median(total_us[STORE_PYTHON], rounds);
    printf("bench_efficiency: %zu QoS 0 JSON messages over %d topics, median of %d round(s)\n",
           n, TOPICS, rounds);
    printf("  %-40s %10s %9s   %s\n", "", "committed", "rate vs", "CPU per stored message (us)");
    printf("  %-40s %10s %9s   %7s %7s %7s  %s\n", "", "msg/s", "Python", "broker", "storer",
           "total", "Python/this");
    for (int s = 0; s < STORERS; s++) {
        double total = median(total_us[s], rounds);
        printf("  %-40s %10.0f %8.2fx   %7.2f %7.2f %7.2f  %6.1fx\n", storer_names[s],
               median(rate[s], rounds), median(rate_ratio[s], rounds),
               median(broker_us[s], rounds), median(storer_us[s], rounds), total,
               python_us / total);
    }
    printf("  where aimdb's CPU goes, us per stored message (broker: the plugin's event-loop"
           " thread,\n  aimdb-bridge's broker process; receive: Paho's; rest: the storer's other"
           " threads):\n  %-40s", "");
    for (int p = 0; p < PARTS; p++) printf(" %8s", part_names[p]);
    printf("\n");
    for (int s = STORE_PLUGIN; s <= STORE_BRIDGE; s++) {
        printf("  %-40s", storer_names[s]);
        for (int p = 0; p < PARTS; p++) printf(" %8.2f", median(part_us[s][p], rounds));
        printf("\n");
    }
    double plugin = python_us / median(total_us[STORE_PLUGIN], rounds);
    double bridge = python_us / median(total_us[STORE_BRIDGE], rounds);
    printf("  goals: plugin >= 5x less CPU than Python: %.1fx (%s); aimdb-bridge >= 3x: %.1fx (%s)\n",
           plugin, plugin >= 5 ? "met" : "NOT met", bridge, bridge >= 3 ? "met" : "NOT met");
    printf("  rows in SQLite after SIGTERM   %s\n", all_rows ? "100% every run" : "NOT ALL");
    return all_rows ? 0 : 1;
}
