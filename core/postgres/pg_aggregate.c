/*
 * pg_aggregate.c -- aggregates computed by PostgreSQL (record.query with
 * "every" on a node whose history is PostgreSQL).
 *
 * Without them the persistence layer reads every raw row of the range
 * through pg_reader and buckets it in C: 30 days of 15 s values is 172,800
 * rows per record and gateway over the wire.  Here one statement per
 * record groups the rows on the server and sends one line per gateway and
 * bucket (720 for those 30 days into hours), and C merges the lines into
 * the layer's bucket set (aimdb_bucket_set_merge): where a bucket starts,
 * what first and last mean, which buckets a limit keeps and their order
 * stay the layer's rules, stated once in core/persist/aggregate.c.
 *
 * The answers are those of the layer's aggregation of pg_reader's rows
 * (tests/postgres runs the shared cases of tests/persist on both):
 *   - per record (names as pg_reader finds them), then per gateway in byte
 *     order (COLLATE "C", strcmp's order), the limit per pair;
 *   - a bucket is floor(stored_at / every), before the epoch too, in
 *     bigint arithmetic that cannot overflow;
 *   - the number is what aimdb_value_number finds in the value as JSONB
 *     prints it, which a strict SQL/JSON path reproduces: member steps
 *     into objects only (lax mode would step into arrays), the last of
 *     duplicate names (all JSONB keeps), a JSON number finite as a double
 *     (the numeric is range-checked before the cast, which would fail the
 *     query).  JSONB prints a name holding '"', '\' or a control character
 *     escaped, and no path reaches an escaped name in C: a field with such
 *     a segment finds no number here either;
 *   - first and last: the group gives the time of its first and last
 *     number, an index seek on idx_record_gateway_time the lowest (highest)
 *     id among that time's rows with a number -- store order, as C.3 says;
 *   - sum is exact (numeric) and rounded once; C adds doubles one by one,
 *     so the two can differ in the last digit of a sum of decimals.
 *
 * Access: a client sees a value if its callback (the broker's ACLs, in C)
 * lets it read the value's topic, which SQL cannot ask.  So a record
 * visible only by topic is grouped by topic too and C asks the callback
 * once per topic, merging only visible topics' lines: exact, and still
 * one line per topic and bucket on the wire, where declining would send
 * such a client back to reading every row.
 *
 * Each statement is planned with its values (an unnamed statement): the
 * generic plan cannot know how many buckets a range makes, guesses a
 * handful, and sorts every row to group them (3x slower measured on a
 * month); planning costs about a millisecond.
 */
#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* ---------------------------------------------------------------- SQL */

/* Numbers at the edge of a double, exactly: at and beyond DBL_HALF_ULP_MAX
 * (2^1024 - 2^970) strtod overflows to infinity; at and below
 * DBL_HALF_MIN (2^-1075, rounded up past it) it underflows to zero. */
#define PG_DBL_OVER                                                                 \
    "1.79769313486231580793728971405303415079934132710037826936173778980444968292764" \
    "750946649017977587207096330286416692887910946555547851940402630657488671505820" \
    "681908902000708383676273854845817711531764475730270069855571366959622842914819" \
    "860834936475292719074168444365510704342711559699508093042880177904174497792e308"
#define PG_DBL_UNDER "2.470328229206232720882843964341106861826e-324"

/* The numeric n as a double, NULL where that is not finite. */
#define PG_AGG_DOUBLE(n)                                                            \
    "CASE WHEN " n " > -" PG_DBL_OVER " AND " n " < " PG_DBL_OVER " THEN CASE WHEN " n \
    " > -" PG_DBL_UNDER " AND " n " < " PG_DBL_UNDER " THEN 0 ELSE " n "::float8 END END"

/* A sum beyond a double is the infinity C's additions reach. */
#define PG_AGG_SUM_DOUBLE(s)                                                        \
    "CASE WHEN " s " >= " PG_DBL_OVER " THEN 'Infinity'::float8 WHEN " s " <= -"   \
    PG_DBL_OVER " THEN '-Infinity'::float8 ELSE " PG_AGG_DOUBLE(s) " END"

/* The numeric of a row: of the value itself, or at the path $7 (built by
 * path_of; NULL finds nothing). */
#define PG_NUMBER_OF_VALUE "CASE WHEN jsonb_typeof(value_json) = 'number' THEN value_json::numeric END"
#define PG_NUMBER_AT_PATH "jsonb_path_query_first(value_json, $7::jsonpath, '{}', true)::numeric"

/* Rows matching WHERE with their numeric n and double x (NULL: no number).
 * OFFSET 0 keeps each level computed once per row: inlined, the JSON path
 * and the cast would run once per aggregate that names them. */
#define PG_AGG_ROWS(NUMBER, WHERE)                                                  \
    "(SELECT gateway, topic, stored_at, id, n, " PG_AGG_DOUBLE("n") " AS x FROM ("  \
    "SELECT gateway, topic, stored_at, id, " NUMBER " AS n FROM record_history "    \
    "WHERE " WHERE " OFFSET 0) s OFFSET 0)"

/* The row of a line's first or last number (its time in g.COL). */
#define PG_AGG_AT(col)                                                              \
    "record_name = $1 AND gateway = g.gateway AND stored_at = g." col               \
    " AND (NOT $6 OR topic IS NOT DISTINCT FROM g.topic)"

/* $1 record, $2 $3 range, $4 gateway LIKE, $5 every, $6 by topic, ($7
 * path).  Lines of one (gateway, topic if $6, bucket): gateway, topic, a
 * time in the bucket, values, numbers, sum, min, max, first, first_at,
 * first_id, last, last_at, last_id.  MATERIALIZED: the grouping is
 * planned apart from the ORDER BY, which would otherwise talk the planner
 * into sorting every row instead of hashing them. */
#define PG_AGG_SQL(NUMBER)                                                          \
    "WITH g AS MATERIALIZED (SELECT gateway, CASE WHEN $6 THEN topic END AS topic, "  \
    "min(stored_at) AS at, count(*) AS vals, count(x) AS n, "                       \
    "sum(n) FILTER (WHERE x IS NOT NULL) AS sum, min(x) AS min, max(x) AS max, "    \
    "min(stored_at) FILTER (WHERE x IS NOT NULL) AS first_at, "                     \
    "max(stored_at) FILTER (WHERE x IS NOT NULL) AS last_at FROM "                  \
    PG_AGG_ROWS(NUMBER, "record_name = $1 AND stored_at >= $2 AND stored_at <= $3 " \
                        "AND gateway LIKE $4") " v "                                \
    "GROUP BY 1, 2, CASE WHEN stored_at >= 0 THEN stored_at / $5 "                  \
    "ELSE -((-(stored_at + 1)) / $5) - 1 END) "                                     \
    "SELECT g.gateway, g.topic, g.at, g.vals, g.n, " PG_AGG_SUM_DOUBLE("g.sum") ", " \
    "g.min, g.max, f.x, g.first_at, f.id, l.x, g.last_at, l.id FROM g "             \
    "LEFT JOIN LATERAL (SELECT id, x FROM " PG_AGG_ROWS(NUMBER, PG_AGG_AT("first_at")) \
    " h WHERE x IS NOT NULL ORDER BY id LIMIT 1) f ON g.n > 0 "                     \
    "LEFT JOIN LATERAL (SELECT id, x FROM " PG_AGG_ROWS(NUMBER, PG_AGG_AT("last_at"))  \
    " h WHERE x IS NOT NULL ORDER BY id DESC LIMIT 1) l ON g.n > 0 "                \
    "ORDER BY g.gateway, g.topic"

static const char value_sql[] = PG_AGG_SQL(PG_NUMBER_OF_VALUE);
static const char path_sql[] = PG_AGG_SQL(PG_NUMBER_AT_PATH);

enum { COL_GATEWAY, COL_TOPIC, COL_AT, COL_VALUES, COL_COUNT, COL_SUM, COL_MIN, COL_MAX,
       COL_FIRST, COL_FIRST_AT, COL_FIRST_ID, COL_LAST, COL_LAST_AT, COL_LAST_ID, COLS };

/* ------------------------------------------------------------- a field */

/* Can a path segment reach a member as JSONB prints it (unescaped)? */
static bool reachable(const char *seg, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (seg[i] == '"' || seg[i] == '\\' || (unsigned char)seg[i] < 0x20) return false;
    return true;
}

/* The strict SQL/JSON path of a dotted field ("wind.speed" ->
 * strict $."wind"."speed" ? (@.type() == "number")), or *out NULL when
 * a segment reaches nothing.  AIMDB_OK or AIMDB_ENOMEM. */
static int path_of(const char *field, char **out) {
    static const char head[] = "strict $", tail[] = " ? (@.type() == \"number\")";
    size_t n = strlen(field), segs = 1;
    for (const char *p = field; *p; p++) segs += *p == '.';
    char *path = malloc(sizeof(head) + n + 3 * segs + sizeof(tail)), *o = path;
    if (!path) return AIMDB_ENOMEM;
    o += sprintf(o, "%s", head);
    for (const char *seg = field;;) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        if (!reachable(seg, len)) {
            free(path);
            *out = NULL;
            return AIMDB_OK;
        }
        o += sprintf(o, ".\"%.*s\"", (int)len, seg);
        if (!dot) break;
        seg = dot + 1;
    }
    sprintf(o, "%s", tail);
    *out = path;
    return AIMDB_OK;
}

/* --------------------------------------------------------------- a run */

typedef struct agg_run {
    pg_backend *b;
    const aimdb_aggregate_params *a;
    aimdb_bucket_fn fn;
    void *ctx;
    bool delivered; /* a bucket reached fn: the query cannot be rerun */
    const char *sql;
    char start[24], end[24], every[24];
    char *like, *path;
    aimdb_bucket_set *set;
    char *gateway;  /* whose lines the set holds; NULL: none yet */
    char *topic;    /* the last topic asked about, and the answer */
    bool topic_known, topic_seen;
    char *err;
    size_t errlen;
} agg_run;

static int deliver(const aimdb_bucket *b, void *ctx) {
    agg_run *run = ctx;
    run->delivered = true;
    return run->fn(b, run->ctx);
}

/* The set's buckets to the caller, then the set belongs to no gateway. */
static int emit(agg_run *run, const char *record) {
    if (!run->gateway) return 0;
    int rc = aimdb_bucket_set_emit(run->set, record, run->gateway, run->a->q.limit, deliver,
                                   run);
    free(run->gateway);
    run->gateway = NULL;
    return rc;
}

static int64_t int8_at(PGresult *r, int col) {
    uint64_t v;
    memcpy(&v, PQgetvalue(r, 0, col), sizeof(v));
    return (int64_t)be64toh(v);
}

static double float8_at(PGresult *r, int col) {
    uint64_t bits = (uint64_t)int8_at(r, col);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

static bool topic_visible(agg_run *run, const char *record, aimdb_visibility seen,
                          const char *topic) {
    if (seen == AIMDB_SEE_ALL) return true;
    bool same = run->topic_known && (run->topic == topic ||
                                     (run->topic && topic && strcmp(run->topic, topic) == 0));
    if (same) return run->topic_seen;
    free(run->topic);
    run->topic = topic ? strdup(topic) : NULL;
    run->topic_known = !topic || run->topic; /* out of memory: ask again next time */
    run->topic_seen = aimdb_access_value(run->a->q.access, seen, record, topic);
    return run->topic_seen;
}

/* One line (a single-row result, binary) into the set of its gateway. */
static int take_line(agg_run *run, const char *record, aimdb_visibility seen, PGresult *r) {
    const char *gateway = PQgetvalue(r, 0, COL_GATEWAY);
    if (!run->gateway || strcmp(run->gateway, gateway) != 0) {
        int rc = emit(run, record);
        if (rc) return rc;
        if (!(run->gateway = strdup(gateway))) return AIMDB_ENOMEM;
    }
    const char *topic = PQgetisnull(r, 0, COL_TOPIC) ? NULL : PQgetvalue(r, 0, COL_TOPIC);
    if (!topic_visible(run, record, seen, topic)) return 0;
    aimdb_bucket_part part = {.ts_ms = int8_at(r, COL_AT),
                              .values = (uint64_t)int8_at(r, COL_VALUES),
                              .count = (uint64_t)int8_at(r, COL_COUNT)};
    if (part.count && (PQgetisnull(r, 0, COL_FIRST) || PQgetisnull(r, 0, COL_LAST))) {
        aimdb_errorf(run->err, run->errlen, "a bucket of %s lost its first or last row", record);
        return AIMDB_EIO;
    }
    if (part.count) {
        part.sum = float8_at(r, COL_SUM);
        part.min = float8_at(r, COL_MIN);
        part.max = float8_at(r, COL_MAX);
        part.first = float8_at(r, COL_FIRST);
        part.first_at = int8_at(r, COL_FIRST_AT);
        part.first_order = int8_at(r, COL_FIRST_ID);
        part.last = float8_at(r, COL_LAST);
        part.last_at = int8_at(r, COL_LAST_AT);
        part.last_order = int8_at(r, COL_LAST_ID);
    }
    return aimdb_bucket_set_merge(run->set, &part);
}

/* One record's lines, streamed (single-row mode: a long range in narrow
 * buckets can be many lines), then its last gateway's buckets. */
static int aggregate_record(const char *name, void *ctx) {
    agg_run *run = ctx;
    aimdb_visibility seen = aimdb_access_record(run->a->q.access, name);
    if (seen == AIMDB_SEE_NONE) return 0;
    free(run->topic); /* a topic's verdict is per record */
    run->topic = NULL;
    run->topic_known = false;
    const char *params[7] = {name,      run->start, run->end, run->like, run->every,
                             seen == AIMDB_SEE_BY_SOURCE ? "t" : "f", run->path};
    int nparams = run->sql == path_sql ? 7 : 6;
    PGconn *c = run->b->rconn;
    PGresult *r;
    if (!PQsendQueryParams(c, run->sql, nparams, NULL, params, NULL, NULL, 1) ||
        !PQsetSingleRowMode(c)) {
        pg_why(c, NULL, run->err, run->errlen);
        while ((r = PQgetResult(c)) != NULL) PQclear(r);
        return AIMDB_EIO;
    }
    int rc = 0;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && rc == 0) {
            rc = take_line(run, name, seen, r);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
            pg_why(c, r, run->err, run->errlen);
            rc = AIMDB_EIO;
        }
        PQclear(r);
    }
    if (rc == 0) rc = emit(run, name);
    free(run->gateway); /* what a failure left */
    run->gateway = NULL;
    return rc;
}

static int aggregate_matching(pg_backend *b, void *ctx) {
    agg_run *run = ctx;
    const char *pattern = run->a->q.pattern ? run->a->q.pattern : "*";
    size_t prefix_len = aimdb_pattern_prefix_len(pattern);
    if (pattern[prefix_len] == '\0') return aggregate_record(pattern, run); /* one record */
    return pg_reader_each_name(b, pattern, prefix_len, aggregate_record, run, run->err,
                               run->errlen);
}

int pg_aggregate(void *self, const aimdb_aggregate_params *a, aimdb_bucket_fn fn, void *ctx,
                 char *err, size_t errlen) {
    if (!a || !fn || a->every_ms <= 0) {
        aimdb_errorf(err, errlen, "an aggregate needs a bucket width > 0 and a callback");
        return AIMDB_EINVAL;
    }
    const aimdb_query_params *q = &a->q;
    agg_run run = {.b = self, .a = a, .fn = fn, .ctx = ctx, .sql = value_sql, .err = err,
                   .errlen = errlen};
    snprintf(run.start, sizeof(run.start), "%" PRId64, q->has_start ? q->start_ms : INT64_MIN);
    snprintf(run.end, sizeof(run.end), "%" PRId64, q->has_end ? q->end_ms : INT64_MAX);
    snprintf(run.every, sizeof(run.every), "%" PRId64, a->every_ms);
    int rc = AIMDB_OK;
    if (a->field && *a->field) {
        run.sql = path_sql;
        rc = path_of(a->field, &run.path);
    }
    run.like = pg_like_of(q->gateway ? q->gateway : "*");
    run.set = aimdb_bucket_set_new(a->every_ms);
    if (rc == AIMDB_OK && (!run.like || !run.set)) rc = AIMDB_ENOMEM;
    if (rc == AIMDB_OK) rc = pg_reader_run(self, aggregate_matching, &run, &run.delivered, err,
                                           errlen);
    else aimdb_errorf(err, errlen, "out of memory");
    aimdb_bucket_set_free(run.set);
    free(run.like);
    free(run.path);
    free(run.topic);
    return rc;
}
