/*
 * aimdb.c -- the `aimdb` command-line client: history queries, the record
 * list and live values from a broker running the AimDB plugin (or the
 * aimdb-bridge daemon), over AimX requests (docs/protocol.md).
 *
 * One run is one request: parse the command line completely (a usage error
 * never touches the network), connect, ask, print, exit 0 / 1 / 2 as
 * cli_util.h defines.  Every failure is one line on stderr naming the
 * broker and the cause; stdout carries only the answer, so it pipes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli_util.h"
#include "output.h"
#include "rpc.h"

#define PROG "aimdb"
#define AGG_KINDS 7
#define DEFAULT_TOPIC "$CONTROL/aimdb/v1"

static const char usage_text[] =
    "Usage: aimdb [OPTIONS] COMMAND [ARG]\n"
    "Ask a broker running AimDB for history and live values (MQTT v5 request/response).\n"
    "\n"
    "Commands:\n"
    "  query [PATTERN]    stored values of the records matching PATTERN (default *;\n"
    "                     '*' matches any run of characters): the latest one per\n"
    "                     record, or every value in a time range\n"
    "      --limit N            at most N values per record (newest first)\n"
    "      --since D            from D ago until now (e.g. 30m, 2h, 7d)\n"
    "      --start MS, --end MS a time range in Unix milliseconds (both inclusive)\n"
    "      --every D            aggregates: one row per bucket of D (e.g. 15m, 1h, 1d;\n"
    "                           buckets start at multiples of D since 1970 UTC)\n"
    "      --agg LIST           of avg,min,max,sum,count,first,last (default\n"
    "                           avg,min,max,count)\n"
    "      --field F            the number at F in object values (e.g. wind.speed)\n"
    "      --gateway P          fleet history (database postgresql://...): only the\n"
    "                           gateways matching the pattern P (e.g. 'site-*'); the\n"
    "                           output then has a GATEWAY column\n"
    "  list [PATTERN]     the records the broker keeps (buffer, persist, topic filter)\n"
    "  get NAME           the latest live value of one record\n"
    "\n"
    "Options:\n"
    "  --json             print the result as the JSON the server sent\n"
    "  --topic T          request topic (default $CONTROL/aimdb/v1; aimdb-bridge: its\n"
    "                     request_topic)\n" CLI_CONNECTION_HELP("to connect and for each answer")
    "  -h, --help         this text\n" CLI_VERSION_HELP
    "\n"
    "Exit status: 0 answered, 1 failed (no connection, no reply, error reply),\n"
    "2 bad command line.\n"
    "Examples: aimdb query 'accuracy::*' --since 24h --limit 5\n"
    "          aimdb query 'accuracy::*' --since 7d --every 1h --agg avg,min,max\n"
    "          aimdb query 'accuracy::*' --gateway 'site-*'\n";

typedef struct command_line {
    const char *command; /* "query", "list", "get" */
    const char *arg;     /* pattern or record name; NULL if not given */
    const char *topic;
    bool json;
    bool has_limit, has_since, has_start, has_end, has_every;
    uint64_t limit;
    int64_t since_ms, start_ms, end_ms, every_ms;
    const char *aggs[AGG_KINDS]; /* --agg, in its order; none: the server's default */
    size_t n_aggs;
    const char *field;
    const char *gateway; /* --gateway: a pattern of gateway names; NULL: every gateway */
    const char *query_only; /* the first query-only option seen, for the error */
    sync_options conn;
} command_line;

enum { OPT_JSON = 1, OPT_TOPIC, OPT_LIMIT, OPT_SINCE, OPT_START, OPT_END, OPT_EVERY, OPT_AGG,
       OPT_FIELD, OPT_GATEWAY, OPT_VERSION };

static const char *const agg_names[AGG_KINDS] = {"avg",   "min",   "max", "sum",
                                                 "count", "first", "last"};

static const struct option long_options[] = {
    {"json", no_argument, NULL, OPT_JSON},        {"topic", required_argument, NULL, OPT_TOPIC},
    {"limit", required_argument, NULL, OPT_LIMIT}, {"since", required_argument, NULL, OPT_SINCE},
    {"start", required_argument, NULL, OPT_START}, {"end", required_argument, NULL, OPT_END},
    {"every", required_argument, NULL, OPT_EVERY}, {"agg", required_argument, NULL, OPT_AGG},
    {"field", required_argument, NULL, OPT_FIELD},
    {"gateway", required_argument, NULL, OPT_GATEWAY},
    {"help", no_argument, NULL, 'h'},              {"version", no_argument, NULL, OPT_VERSION},
    CLI_CONNECTION_LONG_OPTIONS,
    {NULL, 0, NULL, 0}};

/* ------------------------------------------------------ command line */

static bool parse_ms(const char *text, int64_t *out) {
    uint64_t v;
    if (!cli_parse_uint(text, 0, INT64_MAX, &v)) return false;
    *out = (int64_t)v;
    return true;
}

static const char *option_name(int opt) {
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == opt) return o->name;
    return "?";
}

/* --agg a,b,c into cl->aggs, each name once. */
static bool parse_aggs(const char *arg, command_line *cl) {
    cl->n_aggs = 0;
    for (const char *name = arg;; name++) {
        size_t len = strcspn(name, ","), k = 0;
        while (k < AGG_KINDS && (strlen(agg_names[k]) != len || strncmp(agg_names[k], name, len)))
            k++;
        if (k == AGG_KINDS || cl->n_aggs == AGG_KINDS) return false;
        for (size_t i = 0; i < cl->n_aggs; i++)
            if (cl->aggs[i] == agg_names[k]) return false;
        cl->aggs[cl->n_aggs++] = agg_names[k];
        name += len;
        if (!*name) return true;
    }
}

/* One query-only option; false (usage error printed) if its value is bad. */
static bool query_option(int opt, const char *arg, command_line *cl) {
    bool ok = true;
    switch (opt) {
    case OPT_LIMIT:
        ok = cl->has_limit = cli_parse_uint(arg, 1, UINT32_MAX, &cl->limit);
        if (!ok) cli_usage_error(PROG, "--limit '%s': give a whole number from 1", arg);
        break;
    case OPT_SINCE:
        ok = cl->has_since = cli_parse_duration_ms(arg, &cl->since_ms);
        if (!ok) cli_usage_error(PROG, "--since '%s': give a duration such as 30m, 2h or 7d", arg);
        break;
    case OPT_EVERY:
        ok = cl->has_every = cli_parse_duration_ms(arg, &cl->every_ms);
        if (!ok) cli_usage_error(PROG, "--every '%s': give a duration such as 15m, 1h or 1d", arg);
        break;
    case OPT_AGG:
        ok = parse_aggs(arg, cl);
        if (!ok)
            cli_usage_error(PROG, "--agg '%s': give distinct names of avg, min, max, sum, "
                            "count, first, last, separated by commas", arg);
        break;
    case OPT_FIELD:
        cl->field = arg;
        ok = *arg && *arg != '.' && arg[strlen(arg) - 1] != '.' && !strstr(arg, "..");
        if (!ok) cli_usage_error(PROG, "--field '%s': give a dotted path such as wind.speed", arg);
        break;
    case OPT_GATEWAY:
        cl->gateway = arg;
        ok = *arg != '\0';
        if (!ok)
            cli_usage_error(PROG, "--gateway '': give a pattern of gateway names such as site-*");
        break;
    case OPT_START:
    case OPT_END:
        ok = parse_ms(arg, opt == OPT_START ? &cl->start_ms : &cl->end_ms);
        if (opt == OPT_START) cl->has_start = ok;
        else cl->has_end = ok;
        if (!ok)
            cli_usage_error(PROG, "--%s '%s': give a time in Unix milliseconds",
                            opt == OPT_START ? "start" : "end", arg);
        break;
    }
    if (!cl->query_only) cl->query_only = option_name(opt);
    return ok;
}

/* Options in any order, around the command: CLI_PARSED, CLI_ASKED_HELP,
 * CLI_ASKED_VERSION or CLI_EXIT_USAGE (the error printed). */
static int parse_options(int argc, char **argv, command_line *cl) {
    opterr = 0; /* our own messages, with the --help hint */
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        int taken = cli_connection_option(PROG, opt, optarg, &cl->conn);
        if (taken < 0) return CLI_EXIT_USAGE;
        if (taken) continue;
        switch (opt) {
        case 'h': return CLI_ASKED_HELP;
        case OPT_VERSION: return CLI_ASKED_VERSION;
        case OPT_JSON: cl->json = true; break;
        case OPT_TOPIC: cl->topic = optarg; break;
        case OPT_LIMIT:
        case OPT_SINCE:
        case OPT_START:
        case OPT_END:
        case OPT_EVERY:
        case OPT_AGG:
        case OPT_FIELD:
        case OPT_GATEWAY:
            if (!query_option(opt, optarg, cl)) return CLI_EXIT_USAGE;
            break;
        default: return cli_bad_option(PROG, opt, argv);
        }
    }
    return CLI_PARSED;
}

/* A request topic is a topic name: no wildcards, not empty. */
static bool valid_topic(const char *t) { return *t && !strpbrk(t, "+#"); }

/* What the options say together: the command, its argument, the ranges. */
static int check_command(int argc, char **argv, command_line *cl) {
    if (optind >= argc) return cli_usage_error(PROG, "no command (query, list or get)");
    cl->command = argv[optind];
    int nargs = argc - optind - 1;
    cl->arg = nargs > 0 ? argv[optind + 1] : NULL;
    bool query = strcmp(cl->command, "query") == 0, get = strcmp(cl->command, "get") == 0;
    if (!query && !get && strcmp(cl->command, "list") != 0)
        return cli_usage_error(PROG, "unknown command '%s' (query, list or get)", cl->command);
    if (nargs > 1) return cli_usage_error(PROG, "%s: unexpected '%s'", cl->command, argv[optind + 2]);
    if (get && (!cl->arg || !*cl->arg)) return cli_usage_error(PROG, "get: which record? (aimdb get NAME)");
    if (cl->arg && !*cl->arg) return cli_usage_error(PROG, "%s: the pattern is empty", cl->command);
    if (!query && cl->query_only)
        return cli_usage_error(PROG, "--%s applies to query only", cl->query_only);
    if (cl->has_since && (cl->has_start || cl->has_end))
        return cli_usage_error(PROG, "--since or --start/--end, not both");
    if (cl->has_start && cl->has_end && cl->start_ms > cl->end_ms)
        return cli_usage_error(PROG, "--start is after --end");
    if (!cl->has_every && (cl->n_aggs || cl->field))
        return cli_usage_error(PROG, "--%s needs --every (the width of a bucket)",
                               cl->n_aggs ? "agg" : "field");
    if (!valid_topic(cl->topic))
        return cli_usage_error(PROG, "--topic '%s': a topic name, without + or #", cl->topic);
    return 0;
}

/* ----------------------------------------------------------- request */

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool add_number(cJSON *obj, const char *key, bool has, int64_t v) {
    return !has || cJSON_AddNumberToObject(obj, key, (double)v);
}

static cJSON *build_params(const command_line *cl, const char **method) {
    cJSON *p = cJSON_CreateObject();
    bool ok = p != NULL;
    if (strcmp(cl->command, "get") == 0) {
        *method = "record.get";
        ok = ok && cJSON_AddStringToObject(p, "record", cl->arg);
        return ok ? p : (cJSON_Delete(p), NULL);
    }
    *method = strcmp(cl->command, "list") == 0 ? "record.list" : "record.query";
    ok = ok && (!cl->arg || cJSON_AddStringToObject(p, "name", cl->arg));
    int64_t start = cl->has_since ? wall_ms() - cl->since_ms : cl->start_ms;
    ok = ok && add_number(p, "limit", cl->has_limit, (int64_t)cl->limit) &&
         add_number(p, "start", cl->has_since || cl->has_start, start) &&
         add_number(p, "end", cl->has_end, cl->end_ms) &&
         add_number(p, "every", cl->has_every, cl->every_ms) &&
         (!cl->field || cJSON_AddStringToObject(p, "field", cl->field)) &&
         (!cl->gateway || cJSON_AddStringToObject(p, "gateway", cl->gateway)) &&
         (!cl->n_aggs ||
          cJSON_AddItemToObject(p, "agg", cJSON_CreateStringArray(cl->aggs, (int)cl->n_aggs)));
    return ok ? p : (cJSON_Delete(p), NULL);
}

/* ------------------------------------------------------------ answer */

static int print_result(const command_line *cl, const rpc_reply *r) {
    if (cl->json) {
        printf("%.*s\n", (int)r->result_len, r->result_text);
        return CLI_EXIT_OK;
    }
    int rc;
    if (strcmp(cl->command, "get") == 0) {
        rc = output_value(r->result, stdout);
    } else if (strcmp(cl->command, "list") == 0) {
        rc = output_list(r->result, stdout);
        if (rc == 0 && cJSON_GetArraySize(r->result) == 0)
            fprintf(stderr, PROG ": no records%s%s\n", cl->arg ? " match " : "", cl->arg ? cl->arg : "");
    } else {
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(r->result, "values");
        if (cJSON_IsArray(values) && cJSON_GetArraySize(values) == 0) {
            fprintf(stderr, PROG ": no stored values match '%s'%s%s%s%s\n", cl->arg ? cl->arg : "*",
                    cl->gateway ? " on gateways '" : "", cl->gateway ? cl->gateway : "",
                    cl->gateway ? "'" : "",
                    cl->has_since || cl->has_start || cl->has_end ? " in that time range" : "");
            return CLI_EXIT_OK;
        }
        rc = cl->has_every ? output_buckets(r->result, stdout) : output_query(r->result, stdout);
        const cJSON *skipped = cJSON_GetObjectItemCaseSensitive(r->result, "skipped");
        if (rc == 0 && cJSON_IsNumber(skipped) && skipped->valuedouble > 0)
            fprintf(stderr, PROG ": %.0f value(s) without a number%s%s skipped\n",
                    skipped->valuedouble, cl->field ? " at " : "", cl->field ? cl->field : "");
    }
    if (rc == 0) return CLI_EXIT_OK;
    fprintf(stderr, PROG ": unexpected result from the server: %.200s\n", r->result_text);
    return CLI_EXIT_FAILURE;
}

static int run(const command_line *cl) {
    const char *method;
    cJSON *params = build_params(cl, &method);
    if (!params) {
        fprintf(stderr, PROG ": out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    char err[1024];
    sync_client *c;
    int rc = sync_connect(&cl->conn, &c, err, sizeof(err));
    if (rc != 0) {
        cJSON_Delete(params);
        fprintf(stderr, PROG ": %s\n", err);
        return rc == -2 ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    rpc_reply reply;
    rpc_status st = rpc_call(c, cl->topic, method, params, cl->conn.timeout_ms, &reply, err, sizeof(err));
    cJSON_Delete(params);
    sync_close(c);
    if (st == RPC_FAILED) {
        fprintf(stderr, PROG ": %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    if (st == RPC_ERROR_REPLY) {
        fprintf(stderr, PROG ": %s: %s\n", reply.code, reply.message);
        rc = CLI_EXIT_FAILURE;
    } else {
        rc = print_result(cl, &reply);
    }
    rpc_reply_free(&reply);
    return rc;
}

int main(int argc, char **argv) {
    command_line cl = {.topic = DEFAULT_TOPIC};
    cli_connection_defaults(&cl.conn, "aimdb-cli");
    int rc = parse_options(argc, argv, &cl);
    if (rc == CLI_ASKED_HELP) {
        fputs(usage_text, stdout);
        return CLI_EXIT_OK;
    }
    if (rc == CLI_ASKED_VERSION) return cli_print_version(PROG);
    if (rc != CLI_PARSED) return rc;
    rc = check_command(argc, argv, &cl);
    return rc != 0 ? rc : run(&cl);
}
