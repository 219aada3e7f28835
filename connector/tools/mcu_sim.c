/*
 * mcu_sim.c -- aimdb-mcu-sim: the microcontrollers of the weather example
 * (conf/aimdb.conf), for the demo, the dashboard and the benchmarks.
 *
 * N cities each publish weather/<city>/temperature, .../forecast and
 * .../accuracy (weather_model.h has the payloads).  Messages go out in
 * rounds (every city's three topics, cities in the given order); --burst
 * sends rounds back to back first, so history is filled before anyone
 * looks (MQTT carries no timestamps: back-dating is not possible), then
 * --rate paces the rest.  The run ends after --count messages, after
 * --duration, or on SIGINT/SIGTERM, always with a clean disconnect and a
 * one-line summary on stdout.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aimdb/json.h"
#include "aimdb/runtime.h"
#include "cli_util.h"
#include "weather_model.h"

#define PROG "aimdb-mcu-sim"
#define MAX_CITIES 1000
#define MAX_CITY_NAME 64
#define MIN_RATE 0.001 /* one message in 17 minutes */
#define MAX_RATE 1000000
#define STOP_CHECK_MS 100 /* how soon a signal is noticed while pacing */
#define REPORTED_FAILURES 5

static const char usage_text[] =
    "Usage: aimdb-mcu-sim [OPTIONS]\n"
    "Simulate the weather example's sensors: each city publishes\n"
    "weather/<city>/temperature (a number, degrees C), weather/<city>/forecast\n"
    "(a JSON object) and weather/<city>/accuracy (a number, percent), in rounds.\n"
    "\n"
    "Options:\n"
    "  --cities LIST      comma-separated city names (default vienna,berlin,paris)\n"
    "  --city-count N     the first N of a built-in list of 20 cities (more: city21, ...)\n"
    "  --rate R           messages per second over all cities and topics, e.g. 10 or\n"
    "                     0.5 (default 10; 0 = as fast as the broker takes them)\n"
    "  --qos 0|1|2        publish QoS (default 1: a message counts as sent once the\n"
    "                     broker has acknowledged it)\n"
    "  --burst N          first publish N rounds back to back (history to look at)\n"
    "  --count N          stop after N messages in all (burst included)\n"
    "  --duration D       stop after D (e.g. 30s, 10m); else run until Ctrl-C\n"
    "  --seed S           seed of the random walks (default: from the clock)\n"
    CLI_CONNECTION_HELP("to connect and (QoS 1, 2) for the\n"
                        "                     broker to acknowledge each message")
    "  -h, --help         this text\n" CLI_VERSION_HELP
    "\n"
    "Prints one summary line at the end.  Exit status: 0 every message sent,\n"
    "1 connection failed or a message was not sent, 2 bad command line.\n"
    "Example: aimdb-mcu-sim --city-count 5 --burst 24 --rate 15\n";

static const char *const builtin_cities[] = {
    "vienna",  "berlin",   "paris",  "madrid",    "rome",      "london",   "oslo",
    "warsaw",  "prague",   "lisbon", "dublin",    "athens",    "helsinki", "budapest",
    "zurich",  "amsterdam", "brussels", "copenhagen", "stockholm", "bucharest"};
#define N_BUILTIN (sizeof(builtin_cities) / sizeof(builtin_cities[0]))

typedef struct sim_options {
    const char *city_arg;      /* --cities as given */
    char *city_list;           /* a copy of it, split in place */
    const char **cities;
    size_t ncities;
    char (*generated)[32];     /* names beyond the built-in list */
    double rate;               /* messages per second; 0: unpaced */
    uint64_t qos, burst, count, seed;
    bool has_count, has_seed;
    int64_t duration_ms;       /* 0: no limit */
    sync_options conn;
} sim_options;

typedef struct sim_run {
    sync_client *client;
    weather_model model;
    const sim_options *o;
    uint64_t sent, failed;
    long long start_ms, end_ms; /* end_ms: LLONG_MAX without --duration */
    bool lost;                  /* the connection is gone */
} sim_run;

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo) {
    (void)signo;
    stop_requested = 1;
}

/* ------------------------------------------------------------ cities */

/* One topic level that also reads well in a record name. */
static bool valid_city(const char *name) {
    size_t len = strlen(name);
    if (len == 0 || len > MAX_CITY_NAME || !aimdb_utf8_valid(name, len)) return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || strchr("/+#*,\"\\", *p) || *p == 0x7f) return false;
    return true;
}

static int split_cities(sim_options *o) {
    size_t n = 1;
    for (const char *p = o->city_list; *p; p++) n += *p == ',';
    if (n > MAX_CITIES) return cli_usage_error(PROG, "--cities: at most %d cities", MAX_CITIES);
    o->cities = calloc(n, sizeof(*o->cities));
    if (!o->cities) return cli_usage_error(PROG, "out of memory");
    char *save = NULL;
    for (char *name = strtok_r(o->city_list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (!valid_city(name))
            return cli_usage_error(PROG, "--cities: '%s' is not a city name (one topic level of "
                                         "up to %d bytes, no / + # * , or spaces)",
                                   name, MAX_CITY_NAME);
        for (size_t i = 0; i < o->ncities; i++)
            if (strcmp(o->cities[i], name) == 0)
                return cli_usage_error(PROG, "--cities: '%s' is given twice", name);
        o->cities[o->ncities++] = name;
    }
    if (o->ncities == 0) return cli_usage_error(PROG, "--cities: no city named");
    return 0;
}

static int builtin_list(sim_options *o, size_t n) {
    o->cities = calloc(n, sizeof(*o->cities));
    o->generated = n > N_BUILTIN ? calloc(n - N_BUILTIN, sizeof(*o->generated)) : NULL;
    if (!o->cities || (n > N_BUILTIN && !o->generated)) return cli_usage_error(PROG, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (i < N_BUILTIN) {
            o->cities[i] = builtin_cities[i];
            continue;
        }
        snprintf(o->generated[i - N_BUILTIN], sizeof(*o->generated), "city%zu", i + 1);
        o->cities[i] = o->generated[i - N_BUILTIN];
    }
    o->ncities = n;
    return 0;
}

/* ------------------------------------------------------- command line */

enum {
    OPT_CITIES = 1,
    OPT_CITY_COUNT,
    OPT_RATE,
    OPT_QOS,
    OPT_BURST,
    OPT_COUNT,
    OPT_DURATION,
    OPT_SEED,
    OPT_VERSION
};

static const struct option long_options[] = {
    {"cities", required_argument, NULL, OPT_CITIES},
    {"city-count", required_argument, NULL, OPT_CITY_COUNT},
    {"rate", required_argument, NULL, OPT_RATE},
    {"qos", required_argument, NULL, OPT_QOS},
    {"burst", required_argument, NULL, OPT_BURST},
    {"count", required_argument, NULL, OPT_COUNT},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"seed", required_argument, NULL, OPT_SEED},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    CLI_CONNECTION_LONG_OPTIONS,
    {NULL, 0, NULL, 0}};

static bool number_option(const char *arg, uint64_t min, uint64_t max, uint64_t *out,
                          const char *name) {
    if (cli_parse_uint(arg, min, max, out)) return true;
    cli_usage_error(PROG, "--%s '%s': give a whole number from %llu to %llu", name, arg,
                    (unsigned long long)min, (unsigned long long)max);
    return false;
}

/* Messages per second: digits, and a decimal point with decimals if need
 * be (no sign, no exponent); 0 (unpaced) or from MIN_RATE to MAX_RATE. */
static bool rate_option(const char *arg, double *out) {
    const char *p = arg + strspn(arg, "0123456789");
    bool shaped = p != arg && p - arg <= 7;
    if (shaped && *p == '.') {
        const char *decimals = p + 1;
        p = decimals + strspn(decimals, "0123456789");
        shaped = p != decimals;
    }
    double rate = shaped && *p == '\0' ? strtod(arg, NULL) : -1;
    if (rate == 0 || (rate >= MIN_RATE && rate <= MAX_RATE)) {
        *out = rate;
        return true;
    }
    cli_usage_error(PROG, "--rate '%s': give messages per second, e.g. 10 or 2.5 (%g to %d; 0: "
                          "as fast as the broker takes them)",
                    arg, MIN_RATE, MAX_RATE);
    return false;
}

/* One sim option; false (usage error printed) if its value is bad. */
static bool sim_option(int opt, const char *arg, sim_options *o, uint64_t *city_count) {
    switch (opt) {
    case OPT_CITIES: o->city_arg = arg; return true;
    case OPT_CITY_COUNT: return number_option(arg, 1, MAX_CITIES, city_count, "city-count");
    case OPT_RATE: return rate_option(arg, &o->rate);
    case OPT_QOS: return number_option(arg, 0, 2, &o->qos, "qos");
    case OPT_BURST: return number_option(arg, 0, 1000000, &o->burst, "burst");
    case OPT_COUNT: return (o->has_count = number_option(arg, 1, UINT32_MAX, &o->count, "count"));
    case OPT_SEED: return (o->has_seed = number_option(arg, 0, UINT64_MAX, &o->seed, "seed"));
    case OPT_DURATION:
        if (cli_parse_duration_ms(arg, &o->duration_ms)) return true;
        cli_usage_error(PROG, "--duration '%s': give a duration such as 30s, 10m or 2h", arg);
        return false;
    }
    return false;
}

/* CLI_PARSED, CLI_ASKED_HELP, CLI_ASKED_VERSION or CLI_EXIT_USAGE (the
 * error printed). */
static int parse_options(int argc, char **argv, sim_options *o) {
    opterr = 0;
    uint64_t city_count = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        int taken = cli_connection_option(PROG, opt, optarg, &o->conn);
        if (taken < 0) return CLI_EXIT_USAGE;
        if (taken) continue;
        if (opt == 'h') return CLI_ASKED_HELP;
        if (opt == OPT_VERSION) return CLI_ASKED_VERSION;
        if (opt == '?' || opt == ':') return cli_bad_option(PROG, opt, argv);
        if (!sim_option(opt, optarg, o, &city_count)) return CLI_EXIT_USAGE;
    }
    if (optind < argc) return cli_usage_error(PROG, "unexpected '%s'", argv[optind]);
    if (o->city_arg && city_count) return cli_usage_error(PROG, "--cities or --city-count, not both");
    if (o->city_arg) {
        o->city_list = strdup(o->city_arg);
        return o->city_list ? split_cities(o) : cli_usage_error(PROG, "out of memory");
    }
    return builtin_list(o, city_count ? city_count : 3);
}

static void free_options(sim_options *o) {
    free(o->city_list);
    free((void *)o->cities);
    free(o->generated);
}

/* -------------------------------------------------------------- run */

static uint64_t default_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

/* Service the connection until due; false if the run must end first
 * (a signal, --duration, or the connection is lost). */
static bool wait_until(sim_run *r, long long due) {
    char err[512];
    for (;;) {
        long long now = aimdb_monotonic_ms();
        if (stop_requested || now >= r->end_ms) return false;
        if (now >= due) return true;
        long long until = due < now + STOP_CHECK_MS ? due : now + STOP_CHECK_MS;
        char *topic;
        MQTTClient_message *msg;
        int got = sync_receive(r->client, until < r->end_ms ? until : r->end_ms, &topic, &msg, err,
                               sizeof(err));
        if (got > 0) { /* nothing is subscribed; a stray message is dropped */
            MQTTClient_freeMessage(&msg);
            MQTTClient_free(topic);
        }
        if (got < 0) {
            fprintf(stderr, PROG ": %s\n", err);
            r->lost = true;
            return false;
        }
    }
}

static void publish(sim_run *r, uint64_t k) {
    size_t ncities = r->model.ncities;
    size_t city = (size_t)((k / WEATHER_KINDS) % ncities);
    char topic[256], payload[256], err[512];
    weather_reading(&r->model, city, (weather_kind)(k % WEATHER_KINDS), topic, sizeof(topic), payload,
                    sizeof(payload));
    if (sync_publish(r->client, topic, payload, strlen(payload), (int)r->o->qos, NULL, err,
                     sizeof(err)) == 0) {
        r->sent++;
        return;
    }
    r->failed++;
    r->lost = !sync_connected(r->client);
    if (r->failed <= REPORTED_FAILURES || r->lost)
        fprintf(stderr, PROG ": %s%s\n", err,
                r->failed == REPORTED_FAILURES && !r->lost ? " (further failures only counted)" : "");
}

/* When the n-th paced message is due, at rate (> 0) messages per second. */
static long long paced_due(long long from, uint64_t n, double rate) {
    return from + (long long)((double)n * 1000.0 / rate);
}

static void run(sim_run *r) {
    const sim_options *o = r->o;
    uint64_t burst_msgs = o->burst * r->model.ncities * WEATHER_KINDS;
    long long paced_from = 0;
    for (uint64_t k = 0; !stop_requested && !r->lost; k++) {
        if (o->has_count && k >= o->count) break;
        if (aimdb_monotonic_ms() >= r->end_ms) break;
        if (k == burst_msgs) paced_from = aimdb_monotonic_ms();
        if (k >= burst_msgs && o->rate > 0 &&
            !wait_until(r, paced_due(paced_from, k - burst_msgs, o->rate)))
            break;
        publish(r, k);
    }
}

static void announce(const sim_run *r, uint64_t seed) {
    const sim_options *o = r->o;
    fprintf(stderr, PROG ": %zu %s (%s%s) on %s, ", o->ncities, o->ncities == 1 ? "city" : "cities",
            o->cities[0], o->ncities > 1 ? ", ..." : "", sync_broker(r->client));
    if (o->burst)
        fprintf(stderr, "burst of %llu round%s, ", (unsigned long long)o->burst, o->burst == 1 ? "" : "s");
    if (o->rate > 0) fprintf(stderr, "%g msg/s", o->rate);
    else fprintf(stderr, "unpaced");
    fprintf(stderr, ", QoS %llu, seed %llu%s\n", (unsigned long long)o->qos, (unsigned long long)seed,
            o->has_count || o->duration_ms ? "" : "; Ctrl-C stops");
}

static void summary(const sim_run *r) {
    double secs = (double)(aimdb_monotonic_ms() - r->start_ms) / 1000.0;
    printf(PROG ": sent %llu, failed %llu, %.2f s, %.1f msg/s\n", (unsigned long long)r->sent,
           (unsigned long long)r->failed, secs, secs > 0 ? (double)r->sent / secs : 0.0);
    fflush(stdout);
}

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: a wait ends at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int simulate(const sim_options *o) {
    sim_run r = {.o = o};
    uint64_t seed = o->has_seed ? o->seed : default_seed();
    if (weather_model_init(&r.model, o->cities, o->ncities, seed) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    char err[1024];
    catch_stop_signals();
    int rc = sync_connect(&o->conn, &r.client, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        weather_model_free(&r.model);
        return rc == -2 ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    announce(&r, seed);
    r.start_ms = aimdb_monotonic_ms();
    r.end_ms = o->duration_ms ? r.start_ms + o->duration_ms : LLONG_MAX;
    run(&r);
    sync_close(r.client);
    weather_model_free(&r.model);
    summary(&r);
    return r.failed || r.lost ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int main(int argc, char **argv) {
    sim_options o = {.rate = 10, .qos = 1};
    cli_connection_defaults(&o.conn, "aimdb-mcu-sim");
    int rc = parse_options(argc, argv, &o);
    if (rc == CLI_ASKED_HELP) {
        fputs(usage_text, stdout);
        rc = CLI_EXIT_OK;
    } else if (rc == CLI_ASKED_VERSION) {
        rc = cli_print_version(PROG);
    } else if (rc == CLI_PARSED) {
        rc = simulate(&o);
    }
    free_options(&o);
    return rc;
}
