/*
 * weather_model.c -- the simulated weather (see weather_model.h).
 *
 * splitmix64 rather than rand(): it is seedable per model, the same on
 * every libc, and good enough for weather.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/hash.h"
#include "weather_model.h"

static const char *const kind_names[WEATHER_KINDS] = {"temperature", "forecast", "accuracy"};

static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double uniform(uint64_t *state, double lo, double hi) {
    return lo + (hi - lo) * (double)(next_u64(state) >> 11) / 9007199254740992.0;
}

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* A city's climate depends on its name, not on the seed. */
static uint64_t name_hash(const char *s) { return aimdb_hash(AIMDB_HASH_SEED, s, strlen(s)); }

int weather_model_init(weather_model *m, const char *const *names, size_t n, uint64_t seed) {
    m->rng = seed;
    m->ncities = n;
    m->cities = calloc(n ? n : 1, sizeof(*m->cities));
    if (!m->cities) return -1;
    for (size_t i = 0; i < n; i++) {
        weather_city *c = &m->cities[i];
        c->name = names[i];
        c->base = 4.0 + (double)(name_hash(names[i]) % 200) / 10.0; /* 4..24 C */
        c->temperature = c->base + uniform(&m->rng, -3.0, 3.0);
        c->accuracy = uniform(&m->rng, 70.0, 95.0);
    }
    return 0;
}

void weather_model_free(weather_model *m) {
    free(m->cities);
    m->cities = NULL;
}

/* A step of the walk, pulled back toward the city's climate. */
static void step_temperature(weather_model *m, weather_city *c) {
    c->temperature += uniform(&m->rng, -0.5, 0.5) + 0.05 * (c->base - c->temperature);
    c->temperature = clamp(c->temperature, c->base - 15.0, c->base + 15.0);
}

static void forecast(weather_model *m, const weather_city *c, char *out, size_t cap) {
    static const char *const skies[] = {"sunny", "cloudy", "rain", "fog"};
    const char *sky = skies[next_u64(&m->rng) % 4];
    if (c->temperature < 1.0 && strcmp(sky, "rain") == 0) sky = "snow";
    bool wet = strcmp(sky, "rain") == 0 || strcmp(sky, "snow") == 0;
    int rain = wet ? 60 + (int)(next_u64(&m->rng) % 41) : (int)(next_u64(&m->rng) % 31);
    snprintf(out, cap, "{\"high\":%.1f,\"low\":%.1f,\"sky\":\"%s\",\"rain_pct\":%d}",
             c->temperature + uniform(&m->rng, 2.0, 6.0),
             c->temperature - uniform(&m->rng, 2.0, 6.0), sky, rain);
}

void weather_reading(weather_model *m, size_t i, weather_kind kind, char *topic, size_t topic_cap,
                     char *payload, size_t payload_cap) {
    weather_city *c = &m->cities[i];
    snprintf(topic, topic_cap, "weather/%s/%s", c->name, kind_names[kind]);
    switch (kind) {
    case WEATHER_TEMPERATURE:
        step_temperature(m, c);
        snprintf(payload, payload_cap, "%.1f", c->temperature);
        break;
    case WEATHER_FORECAST:
        forecast(m, c, payload, payload_cap);
        break;
    case WEATHER_ACCURACY:
    case WEATHER_KINDS:
        c->accuracy = clamp(c->accuracy + uniform(&m->rng, -1.5, 1.5), 40.0, 99.5);
        snprintf(payload, payload_cap, "%.1f", c->accuracy);
        break;
    }
}
