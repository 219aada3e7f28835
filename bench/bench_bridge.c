/*
 * bench_bridge.c -- aimdb-bridge's ingest rate through a real Mosquitto,
 * against a plain subscriber measured in the same run.
 *
 * One libmosquitto client publishes MESSAGES small JSON values at QoS 0,
 * round-robin over TOPICS topics, as fast as it can.  Baseline: a
 * libmosquitto subscriber (QoS 1 subscription, keeping every message):
 * time from the first publish to the last message received.  Bridge: the
 * same stream into aimdb-bridge (every topic a persisted record): time from
 * the first publish to the last row committed in SQLite, polled every
 * POLL_MS.  The broker queues without limit, so a slow reader is measured,
 * not dropped.  Alternating, median of ROUNDS; the rows are counted again
 * after SIGTERM.
 *
 *   bench_bridge [--quick]
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "bench_util.h"
#include "client.h"
#include "harness.h"

#define TOPICS 1000
#define POLL_MS 5
#define DRAIN_TIMEOUT_MS 120000

static void die(const char *what) {
    fprintf(stderr, "bench_bridge: %s\n", what);
    exit(1);
}

static void start_broker(broker *b) {
    broker_init(b);
    b->without_plugin = true;
    broker_write_conf(b, "max_queued_messages 0\n");
    if (!broker_start(b, NULL)) die("the broker did not start");
}

/* Messages per second a plain subscriber receives. */
static double subscriber_run(size_t n) {
    broker b;
    start_broker(&b);
    client *sub = client_connect(b.port, "bench-sub", MQTT_PROTOCOL_V311, NULL, NULL);
    if (!sub) die("the subscriber cannot connect");
    client_subscribe(sub, "bench/+/v", 1);
    long long t0 = now_ms();
    bench_publish_stream(b.port, n, TOPICS);
    while (client_pending(sub) < n) {
        if (now_ms() - t0 > DRAIN_TIMEOUT_MS) die("the subscriber did not get every message");
        sleep_ms(POLL_MS);
    }
    double rate = (double)n / ((double)(now_ms() - t0) / 1e3);
    client_disconnect(sub);
    broker_stop(&b);
    broker_cleanup(&b);
    return rate;
}

/* Messages per second aimdb-bridge commits to SQLite; *rows: counted after
 * SIGTERM. */
static double bridge_run(size_t n, long long *rows) {
    broker b;
    start_broker(&b);
    char conf[HARNESS_PATH_MAX + 16], text[1024];
    snprintf(conf, sizeof(conf), "%s/bridge.conf", b.dir);
    snprintf(text, sizeof(text),
             "broker mqtt://127.0.0.1:%d\nclient_id bench-bridge\ndatabase %s\n"
             "record bench::{1} bench/+/v persist\n",
             b.port, b.db_path);
    write_file(conf, text);
    char *argv[] = {AIMDB_BRIDGE, "-c", conf, NULL};
    daemon_proc d;
    daemon_start(&d, b.dir, argv);
    if (!file_wait_for(d.log_path, "subscription(s) active", 10000)) die("the bridge did not connect");
    long long t0 = now_ms();
    bench_publish_stream(b.port, n, TOPICS);
    while (bench_count_rows(b.db_path) < (long long)n) {
        if (now_ms() - t0 > DRAIN_TIMEOUT_MS) die("the bridge did not record every message");
        sleep_ms(POLL_MS);
    }
    double rate = (double)n / ((double)(now_ms() - t0) / 1e3);
    if (daemon_stop(&d, SIGTERM) != 0) die("the bridge did not stop cleanly");
    *rows = bench_count_rows(b.db_path);
    broker_stop(&b);
    broker_cleanup(&b);
    return rate;
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (argc > 1 && !quick) {
        fprintf(strcmp(argv[1], "--help") == 0 ? stdout : stderr,
                "usage: bench_bridge [--quick]   (--quick: fewer messages, one round)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    size_t n = quick ? 20000 : 200000;
    int rounds = quick ? 1 : 3;
    double sub[8], bridge[8];
    bool all_rows = true;
    for (int i = 0; i < rounds; i++) {
        long long rows = 0;
        sub[i] = subscriber_run(n);
        bridge[i] = bridge_run(n, &rows);
        all_rows &= rows == (long long)n;
    }
    double ms = bench_percentile(sub, (size_t)rounds, 0.5);
    double mb = bench_percentile(bridge, (size_t)rounds, 0.5);
    printf("bench_bridge: %zu QoS 0 messages over %d topics, median of %d\n", n, TOPICS, rounds);
    printf("  plain subscriber, received     %9.0f msg/s\n", ms);
    printf("  aimdb-bridge, committed        %9.0f msg/s   (%.2fx the subscriber)\n", mb, mb / ms);
    printf("  rows in SQLite after SIGTERM   %s\n", all_rows ? "100% every round" : "NOT ALL");
    return all_rows ? 0 : 1;
}
