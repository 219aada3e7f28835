/*
 * weather_model.h -- plausible sensor readings for the weather example of
 * conf/aimdb.conf, for aimdb-mcu-sim.
 *
 * Per city: a temperature in degrees Celsius (bare JSON number, e.g.
 * 17.4), a forecast document ({"high":21.3,"low":12.8,"sky":"cloudy",
 * "rain_pct":40}) and the forecast's accuracy in percent (bare JSON number
 * 0..100, which the dashboard in web/ shows as is).  Temperature and
 * accuracy are bounded random walks, so a chart of the history looks like
 * weather rather than noise; the same seed gives the same readings.
 * Internal to connector/tools; one thread per model.
 */
#ifndef AIMDB_WEATHER_MODEL_H
#define AIMDB_WEATHER_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum weather_kind {
    WEATHER_TEMPERATURE,
    WEATHER_FORECAST,
    WEATHER_ACCURACY,
    WEATHER_KINDS
} weather_kind;

typedef struct weather_city {
    const char *name; /* borrowed: outlives the model */
    double base, temperature, accuracy;
} weather_city;

typedef struct weather_model {
    uint64_t rng;
    weather_city *cities;
    size_t ncities;
} weather_model;

/* Start every city at a plausible value derived from its name and seed.
 * names must outlive the model.  -1 on out of memory. */
int weather_model_init(weather_model *m, const char *const *names, size_t n, uint64_t seed);
void weather_model_free(weather_model *m);

/* The next reading of one kind for city i: topic weather/<city>/<kind>
 * and its JSON payload, both NUL-terminated (cut to their capacities,
 * which 256 bytes each always fit for names up to 64 bytes). */
void weather_reading(weather_model *m, size_t i, weather_kind kind, char *topic, size_t topic_cap,
                     char *payload, size_t payload_cap);

#endif
