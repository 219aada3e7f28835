/*
 * bench_payload.c -- what turning an MQTT payload into its history JSON
 * costs a persist tap, per format.
 *
 * Every persisted message goes through its record codec's to_json on a
 * worker thread, so this bounds persist throughput.  The baseline, measured
 * in the same run on the same bytes, is the core's aimdb_codec_json, which
 * copies without looking: the ratio is the price of validating UTF-8 and
 * JSON strictly (and of escaping or base64 where the format needs it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aimdb/aimdb.h"
#include "aimdb/payload.h"

#define RUN_NS 200000000ull

static volatile long checksum_sink; /* keeps the work from being dropped */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ns per to_json call into a buffer large enough for any format. */
static double measure(const aimdb_codec *c, const char *p, size_t len, char *out, size_t cap) {
    long sum = 0;
    uint64_t calls = 0, start = now_ns(), elapsed;
    do {
        for (int i = 0; i < 64; i++) sum += c->to_json(p, len, out, cap);
        calls += 64;
        elapsed = now_ns() - start;
    } while (elapsed < RUN_NS);
    checksum_sink = sum;
    return (double)elapsed / (double)calls;
}

static void run(const char *title, const aimdb_codec *c, const char *p, size_t len) {
    size_t cap = 6 * len + 64; /* worst case: every byte a \u00XX escape */
    char *out = malloc(cap);
    if (!out) exit(1);
    if (c->to_json(p, len, out, cap) < 0) {
        fprintf(stderr, "bench_payload: %s has no JSON form\n", title);
        exit(1);
    }
    double base = measure(&aimdb_codec_json, p, len, out, cap);
    double ns = measure(c, p, len, out, cap);
    printf("%-34s %-12s %7zu B %9.0f ns %8.0f MB/s   copy %7.0f ns   x%.1f\n", title, c->name,
           len, ns, (double)len * 1e3 / ns, base, ns / base);
    free(out);
}

/* A JSON object of about `len` bytes, like a sensor sample. */
static size_t json_sample(char *p, size_t len) {
    size_t n = (size_t)snprintf(p, len, "{\"device\":\"gw-01\",\"t\":1732270000123,\"v\":[");
    for (int i = 0; n + 16 < len; i++) n += (size_t)snprintf(p + n, len - n, "%s%d.%02d", i ? "," : "", i % 97, i % 100);
    n += (size_t)snprintf(p + n, len - n, "]}");
    return n;
}

int main(void) {
    enum { BIG = 64 * 1024 };
    char *p = malloc(BIG);
    if (!p) return 1;
    printf("bench_payload: to_json per value; baseline aimdb_codec_json (plain copy)\n\n");

    size_t n = json_sample(p, 100);
    run("JSON sample", &aimdb_codec_mqtt_auto, p, n);
    run("JSON sample", &aimdb_codec_mqtt_json, p, n);
    n = json_sample(p, BIG);
    run("JSON sample", &aimdb_codec_mqtt_auto, p, n);

    static const char text[] = "temperature ok, door \"open\"\tsince 12:00\n";
    run("plain text", &aimdb_codec_mqtt_auto, text, sizeof(text) - 1);
    run("plain text", &aimdb_codec_mqtt_text, text, sizeof(text) - 1);

    uint32_t x = 1;
    for (size_t i = 0; i < BIG; i++) p[i] = (char)((x = x * 1103515245u + 12345u) >> 24);
    run("random bytes", &aimdb_codec_mqtt_auto, p, 100);
    run("random bytes", &aimdb_codec_mqtt_binary, p, BIG);
    free(p);
    return 0;
}
