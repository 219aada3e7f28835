/*
 * bench_route.c -- what routing one MQTT message costs the broker thread.
 *
 * aimdb_router_route runs on Mosquitto's only thread for every message, so
 * its cost bounds the broker's throughput.  Each scenario is a realistic
 * aimdb.conf shape; the baseline, measured in the same run on the same
 * topics, is the obvious router: test every rule in order with
 * aimdb_topic_matches, then expand the template.  Reported: ns per route for
 * both and the speed-up.  Each measurement runs for a fixed time, not a
 * fixed count, so slow baselines do not stretch the run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aimdb/aimdb.h"
#include "aimdb/mqtt_route.h"

#define RUN_NS 200000000ull /* per measurement */
#define MAX_RULES 1100
#define N_TOPICS 1000

typedef struct scenario {
    const char *title;
    size_t n_rules;
    char filters[MAX_RULES][48];
    char templates[MAX_RULES][48];
    size_t n_topics;
    char topics[N_TOPICS][48];
} scenario;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void rule(scenario *s, const char *filter, const char *tmpl) {
    snprintf(s->filters[s->n_rules], sizeof(s->filters[0]), "%s", filter);
    snprintf(s->templates[s->n_rules], sizeof(s->templates[0]), "%s", tmpl);
    s->n_rules++;
}

static void topic(scenario *s, const char *t) {
    snprintf(s->topics[s->n_topics++], sizeof(s->topics[0]), "%s", t);
}

/* The naive router: first rule in order whose filter matches. */
static size_t linear_route(const scenario *s, const char *t, size_t len, char *name, size_t cap) {
    aimdb_topic_match m;
    for (size_t i = 0; i < s->n_rules; i++) {
        if (aimdb_topic_matches(s->filters[i], t, len, &m)) {
            aimdb_name_template_expand(s->templates[i], &m, name, cap);
            return i;
        }
    }
    return SIZE_MAX;
}

/* Written after each run so the compiler cannot drop the work. */
static volatile size_t checksum_sink;

/* ns per route over the scenario's topics, run for RUN_NS. */
static double measure(const scenario *s, const aimdb_router *r) {
    size_t checksum = 0;
    size_t lens[N_TOPICS];
    for (size_t i = 0; i < s->n_topics; i++) lens[i] = strlen(s->topics[i]);
    char name[256];
    uint64_t routes = 0, start = now_ns(), elapsed;
    do {
        for (size_t i = 0; i < s->n_topics; i++) {
            if (r) {
                aimdb_route out;
                int rc = aimdb_router_route(r, s->topics[i], lens[i], name, sizeof(name), &out);
                checksum += rc == AIMDB_OK ? out.rule + (unsigned char)name[0] : 7;
            } else {
                checksum += linear_route(s, s->topics[i], lens[i], name, sizeof(name));
            }
        }
        routes += s->n_topics;
        elapsed = now_ns() - start;
    } while (elapsed < RUN_NS);
    checksum_sink = checksum;
    return (double)elapsed / (double)routes;
}

static void run(const scenario *s) {
    aimdb_router *r = aimdb_router_new();
    char err[128];
    for (size_t i = 0; i < s->n_rules; i++) {
        if (aimdb_router_add(r, s->filters[i], s->templates[i], err, sizeof(err)) != AIMDB_OK) {
            fprintf(stderr, "bench_route: bad rule %s: %s\n", s->filters[i], err);
            exit(1);
        }
    }
    /* both routers must agree before their speed means anything */
    for (size_t i = 0; i < s->n_topics; i++) {
        aimdb_route out;
        char a[256], b[256];
        size_t len = strlen(s->topics[i]);
        int rc = aimdb_router_route(r, s->topics[i], len, a, sizeof(a), &out);
        size_t want = linear_route(s, s->topics[i], len, b, sizeof(b));
        if ((rc == AIMDB_OK ? out.rule : SIZE_MAX) != want ||
            (rc == AIMDB_OK && strcmp(a, b) != 0)) {
            fprintf(stderr, "bench_route: routers disagree on %s\n", s->topics[i]);
            exit(1);
        }
    }
    double fast = measure(s, r);
    double slow = measure(s, NULL);
    printf("%-44s %5zu rules %7.1f ns/route   linear %8.1f ns   x%.0f\n", s->title, s->n_rules,
           fast, slow, slow / fast);
    aimdb_router_free(r);
}

static void exact_rules(scenario *s, size_t n) {
    char f[48], t[48];
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof(f), "site/%zu/sensor/temperature", i);
        snprintf(t, sizeof(t), "temp::%zu", i);
        rule(s, f, t);
    }
}

/* N_TOPICS topics of fmt, numbered 0, 1, ... or, scattered, in the order
 * 0, 919, 838, ... (each of 1,000 numbers once per thousand topics). */
static void numbered_topics(scenario *s, const char *fmt, bool scattered) {
    for (size_t i = 0; i < N_TOPICS; i++) {
        char t[48];
        snprintf(t, sizeof(t), fmt, scattered ? (i * 7919) % 1000 : i);
        topic(s, t);
    }
}

int main(void) {
    scenario *s = calloc(1, sizeof(*s));
    if (!s) return 1;
    printf("bench_route: ns per aimdb_router_route (topic -> rule + record name)\n"
           "baseline: every rule in order with aimdb_topic_matches (same topics, same run)\n\n");

    /* 1,000 exact rules; topics hit each once */
    exact_rules(s, 1000);
    numbered_topics(s, "site/%zu/sensor/temperature", true);
    s->title = "1000 exact rules, every topic a hit";
    run(s);

    /* same rules, topics nobody configured */
    s->n_topics = 0;
    numbered_topics(s, "site/%zu/sensor/humidity", false);
    s->title = "1000 exact rules, every topic a miss";
    run(s);

    /* the documented example: a few wildcard rules */
    memset(s, 0, sizeof(*s));
    rule(s, "weather/+/accuracy", "accuracy::{1}");
    rule(s, "sensors/+/temperature", "temp::{1}");
    rule(s, "gateway/state", "gateway::state");
    rule(s, "dev/+/+/raw/#", "raw::{1}::{2}::{#}");
    for (size_t i = 0; i < N_TOPICS; i++) {
        char t[48];
        static const char *const forms[] = {"weather/city%zu/accuracy", "sensors/s%zu/temperature",
                                            "gateway/state", "dev/%zu/x/raw/a/b"};
        snprintf(t, sizeof(t), forms[i % 4], i);
        topic(s, t);
    }
    s->title = "4 rules (3 wildcard), all hits";
    run(s);

    /* a catch-all first: every topic is a wildcard match with {#} */
    memset(s, 0, sizeof(*s));
    rule(s, "#", "all::{#}");
    exact_rules(s, 1000);
    numbered_topics(s, "site/%zu/sensor/temperature", false);
    s->title = "'#' first, then 1000 exact rules";
    run(s);

    /* 5 wildcard rules ahead of 1,000 exact ones, other first levels */
    memset(s, 0, sizeof(*s));
    rule(s, "weather/+/accuracy", "accuracy::{1}");
    rule(s, "+/status", "status::{1}");
    rule(s, "dev/+/+/raw/#", "raw::{1}::{2}::{#}");
    rule(s, "alarm/#", "alarm::{#}");
    rule(s, "+/+/sensor/humidity", "hum::{1}::{2}");
    exact_rules(s, 1000);
    numbered_topics(s, "site/%zu/sensor/temperature", true);
    s->title = "5 wildcard + 1000 exact rules, exact hits";
    run(s);

    /* 1,000 wildcard rules, one per device: the first-level index */
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < 1000; i++) {
        char f[48], t[48];
        snprintf(f, sizeof(f), "dev%zu/+/temperature", i);
        snprintf(t, sizeof(t), "temp::%zu::{1}", i);
        rule(s, f, t);
    }
    for (size_t i = 0; i < N_TOPICS; i++) {
        char t[48];
        snprintf(t, sizeof(t), "dev%zu/probe%zu/temperature", (i * 7919) % 1000, i % 4);
        topic(s, t);
    }
    s->title = "1000 wildcard rules, distinct first levels";
    run(s);

    free(s);
    return 0;
}
