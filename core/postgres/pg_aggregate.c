/*
 * pg_aggregate.c -- aggregates computed by PostgreSQL (record.query with
 * "every" on a node whose history is PostgreSQL).
 *
 * Without them the persistence layer reads every raw row of the range
 * through pg_reader and buckets it in C: 30 days of 15 s values is 172,800
 * rows per record and gateway over the wire.  Here one statement for up to
 * AGG_CHUNK records groups the rows on the server and sends one line per
 * record, gateway and bucket (720 a pair for those 30 days into hours),
 * and C merges the lines into
 * the layer's bucket set (aimdb_bucket_set_merge): where a bucket starts,
 * what first and last mean, which buckets a limit keeps and their order
 * stay the layer's rules, stated once in core/persist/aggregate.c.
 *
 * The answers are those of the layer's aggregation of pg_reader's rows
 * (tests/postgres runs the shared cases of tests/persist on both):
 *   - per record (names from pg_reader_each_name), then per gateway in byte
 *     order (COLLATE "C", strcmp's order), the limit per pair;
 *   - a bucket is floor(stored_at / every), before the epoch too, in
 *     bigint arithmetic that cannot overflow;
 *   - the number is what aimdb_value_number finds in the value as JSONB
 *     prints it: members of objects only, the last of duplicate names (all
 *     JSONB keeps), a JSON number finite as a double.  The JSON operator
 *     #> steps into objects only unless a segment reads as an integer (an
 *     array index to it): such fields take a strict SQL/JSON path, which
 *     never steps into arrays, at several times the cost.  JSONB prints a
 *     name holding '"', '\' or a control character escaped, and no path
 *     reaches an escaped name in C: a field with such a segment finds no
 *     number here either.  Numbers are range-checked as numerics, since a
 *     cast beyond a double fails the query instead of skipping the value;
 *   - first and last: the group gives the time of its first and last
 *     number, an index seek on idx_record_gateway_time the lowest (highest)
 *     id among that time's rows with a number -- store order, as C.3 says;
 *   - sum, min and max are taken over numerics and rounded to doubles once
 *     per bucket: the layer adds doubles one by one, so a sum of decimals
 *     can differ in its last digit (min and max cannot: rounding keeps
 *     order).
 *
 * Access: a client sees a value if its callback (the broker's ACLs, in C)
 * lets it read the value's topic.  SQL cannot apply that predicate (it is
 * a call into the broker, not a list it could be given), and declining
 * would send such a client back to reading every row.  So a record
 * visible only by topic is grouped by topic too (its statement holds only
 * such records: a run of records of one visibility shares one) and C asks
 * the callback once per topic, merging only visible topics' lines: exact,
 * with the callback asked as for raw rows, and a line per topic and bucket
 * on the wire (a record fed by one topic has no more lines than without).
 *
 * Each statement is planned with its values (force_custom_plan for the
 * transaction: the reader's connection plans generically, pg_reader.c).
 * The generic plan cannot know which records, gateways and range it reads
 * (for one chart it took the index without the gateway, which holds
 * every gateway's rows of the record), nor that first and last are not
 * wanted (it ran both seeks for every line and dropped their rows: 24,000
 * lines of small records, two thirds of the statement's time), nor how
 * many buckets a range makes; planning costs a millisecond or two.
 *
 * What it saves is the wire and the client: a month of one record and
 * gateway is 720 lines instead of 172,800 rows, and the node asking does
 * not parse them.  The server still reads every row, at about the cost of
 * sending it: on one machine over loopback a month of a fleet is 1.3-1.7x
 * faster, one chart 1.1-1.3x, and 100 records with four rows a bucket
 * 0.5-1.1x, where a line costs the server about what its rows save
 * (bench/bench_pg_aggregate.c; README, Performance: Fleet aggregates).
 */
#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* ---------------------------------------------------------------- SQL */

/* Numbers at the edge of a double, exactly: at and beyond 2^1024 - 2^970
 * strtod overflows to infinity; at and below 2^-1075 (rounded up past it)
 * it underflows to zero. */
#define PG_DBL_OVER                                                                 \
    "1.79769313486231580793728971405303415079934132710037826936173778980444968292764" \
    "750946649017977587207096330286416692887910946555547851940402630657488671505820" \
    "681908902000708383676273854845817711531764475730270069855571366959622842914819" \
    "860834936475292719074168444365510704342711559699508093042880177904174497792e308"
#define PG_DBL_UNDER "2.470328229206232720882843964341106861826e-324"

/* The numeric n (finite as a double) as a double. */
#define PG_AGG_DOUBLE(n)                                                            \
    "CASE WHEN " n " > -" PG_DBL_UNDER " AND " n " < " PG_DBL_UNDER " THEN 0::float8 " \
    "ELSE " n "::float8 END"

/* A sum beyond a double is the infinity C's additions reach. */
#define PG_AGG_SUM_DOUBLE(s)                                                        \
    "CASE WHEN " s " >= " PG_DBL_OVER " THEN 'Infinity'::float8 WHEN " s " <= -"   \
    PG_DBL_OVER " THEN '-Infinity'::float8 ELSE " PG_AGG_DOUBLE(s) " END"

/* Where a row's number is (j: its JSON there, NULL if nothing): the value
 * itself, the members $8 (text[]: one name per segment), or the SQL/JSON
 * path $8 (field_of says which). */
#define PG_JSON_VALUE "value_json"
#define PG_JSON_MEMBERS "value_json #> $8::text[]"
#define PG_JSON_PATH "jsonb_path_query_first(value_json, $8::jsonpath, '{}', true)"

/* Rows matching WHERE and their number x, a numeric (NULL: none): summed
 * exactly and compared as numerics, only the line's results become
 * doubles (rounding keeps order, so min and max are those of the
 * doubles).  OFFSET 0 keeps each level computed once per row: inlined,
 * each aggregate naming x would extract it again. */
#define PG_AGG_COLS "record_name, gateway, topic, stored_at, id"
#define PG_AGG_ROWS(JSON, WHERE)                                                    \
    "(SELECT " PG_AGG_COLS ", CASE WHEN n > -" PG_DBL_OVER " AND n < " PG_DBL_OVER  \
    " THEN n END AS x FROM (SELECT " PG_AGG_COLS ", "                               \
    "CASE WHEN jsonb_typeof(j) = 'number' THEN j::numeric END AS n FROM ("          \
    "SELECT " PG_AGG_COLS ", " JSON " AS j FROM record_history "                    \
    "WHERE " WHERE " OFFSET 0) s0 OFFSET 0) s1 OFFSET 0)"

/* The row of a line's first or last number (its time in g.COL). */
#define PG_AGG_AT(col)                                                              \
    "record_name = g.record_name AND gateway = g.gateway AND stored_at = g." col    \
    " AND (NOT $6 OR topic IS NOT DISTINCT FROM g.topic)"

/* $1 records (text[]), $2 $3 range, $4 gateway LIKE, $5 every, $6 by
 * topic, $7 first and last wanted (false: NULL, their seeks not run), ($8
 * field).  Lines of one (record, gateway, topic if $6, bucket): record,
 * gateway, topic, a time in the bucket, values, numbers, sum, min, max,
 * first, first_at, first_id, last, last_at, last_id, in record and gateway
 * order (COLLATE "C": the order pg_reader_each_name finds names in).  MATERIALIZED: the grouping is planned apart
 * from the ORDER BY, which would otherwise talk the planner into sorting
 * every row instead of hashing them. */
#define PG_AGG_SQL(JSON)                                                            \
    "WITH g AS MATERIALIZED (SELECT record_name, gateway, "                         \
    "CASE WHEN $6 THEN topic END AS topic, "                                        \
    "min(stored_at) AS at, count(*) AS vals, count(x) AS n, sum(x) AS sum, "        \
    "min(x) AS min, max(x) AS max, "                                                \
    "min(stored_at) FILTER (WHERE x IS NOT NULL) AS first_at, "                     \
    "max(stored_at) FILTER (WHERE x IS NOT NULL) AS last_at FROM "                  \
    PG_AGG_ROWS(JSON, "record_name = ANY ($1::text[]) AND stored_at >= $2 "         \
                      "AND stored_at <= $3 AND gateway LIKE $4") " v "              \
    "GROUP BY 1, 2, 3, CASE WHEN stored_at >= 0 THEN stored_at / $5 "                  \
    "ELSE -((-(stored_at + 1)) / $5) - 1 END) "                                     \
    "SELECT g.record_name, g.gateway, g.topic, g.at, g.vals, g.n, " PG_AGG_SUM_DOUBLE("g.sum") ", " \
    PG_AGG_DOUBLE("g.min") ", " PG_AGG_DOUBLE("g.max") ", " PG_AGG_DOUBLE("f.x") ", " \
    "g.first_at, f.id, " PG_AGG_DOUBLE("l.x") ", g.last_at, l.id FROM g "           \
    "LEFT JOIN LATERAL (SELECT id, x FROM " PG_AGG_ROWS(JSON, PG_AGG_AT("first_at")) \
    " h WHERE x IS NOT NULL ORDER BY id LIMIT 1) f ON $7 AND g.n > 0 "              \
    "LEFT JOIN LATERAL (SELECT id, x FROM " PG_AGG_ROWS(JSON, PG_AGG_AT("last_at"))  \
    " h WHERE x IS NOT NULL ORDER BY id DESC LIMIT 1) l ON $7 AND g.n > 0 "         \
    "ORDER BY g.record_name, g.gateway, g.topic"

static const char value_sql[] = PG_AGG_SQL(PG_JSON_VALUE);
static const char members_sql[] = PG_AGG_SQL(PG_JSON_MEMBERS);
static const char path_sql[] = PG_AGG_SQL(PG_JSON_PATH);

enum { COL_RECORD, COL_GATEWAY, COL_TOPIC, COL_AT, COL_VALUES, COL_COUNT, COL_SUM, COL_MIN, COL_MAX,
       COL_FIRST, COL_FIRST_AT, COL_FIRST_ID, COL_LAST, COL_LAST_AT, COL_LAST_ID };

/* ------------------------------------------------------------- a field */

/* Can a path segment reach a member as JSONB prints it (unescaped)? */
static bool reachable(const char *seg, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (seg[i] == '"' || seg[i] == '\\' || (unsigned char)seg[i] < 0x20) return false;
    return true;
}

/* Would #> read the segment as an array index (strtol, as PostgreSQL)? */
static bool index_like(const char *seg, size_t len) {
    char text[AIMDB_FIELD_MAX + 1], *end;
    if (len > AIMDB_FIELD_MAX) return true; /* longer than any index: the path is right anyway */
    if (len == 0) return false;
    memcpy(text, seg, len);
    text[len] = '\0';
    (void)strtol(text, &end, 10);
    return end != text && *end == '\0';
}

/* The statement and $8 for a dotted field: "wind.speed" is the members
 * {"wind","speed"}, or the path strict $."wind"."speed" ? (@.type() ==
 * "number") if a segment reads as an index; *param NULL (nothing is
 * found) when a segment reaches no member.  AIMDB_OK or AIMDB_ENOMEM. */
static int field_of(const char *field, const char **sql, char **param) {
    size_t n = strlen(field), segs = 1;
    bool reaches = true, as_path = false;
    for (const char *seg = field;; segs++) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        reaches = reaches && reachable(seg, len);
        as_path = as_path || index_like(seg, len);
        if (!dot) break;
        seg = dot + 1;
    }
    *sql = as_path && reaches ? path_sql : members_sql;
    *param = NULL;
    if (!reaches) return AIMDB_OK;
    static const char tail[] = " ? (@.type() == \"number\")";
    char *out = malloc(n + 4 * segs + sizeof("strict $") + sizeof(tail)), *o = out;
    if (!out) return AIMDB_ENOMEM;
    o += sprintf(o, "%s", as_path ? "strict $" : "{");
    for (const char *seg = field;;) {
        const char *dot = strchr(seg, '.');
        int len = dot ? (int)(dot - seg) : (int)strlen(seg);
        if (as_path) o += sprintf(o, ".\"%.*s\"", len, seg);
        else o += sprintf(o, "%s\"%.*s\"", seg == field ? "" : ",", len, seg);
        if (!dot) break;
        seg = dot + 1;
    }
    sprintf(o, "%s", as_path ? tail : "}");
    *param = out;
    return AIMDB_OK;
}

/* --------------------------------------------------------------- a run */

/* Records per statement: one statement for all of a request's records
 * (a plan and a round trip each cost more than a small record's rows), in
 * chunks so that one statement's groups -- records x gateways x buckets,
 * held by the server until the last row is read -- stay bounded. */
#define AGG_CHUNK 128

/* Consecutive records of one visibility, waiting for their statement. */
typedef struct agg_chunk {
    char *names[AGG_CHUNK]; /* owned, ascending */
    int n;
    aimdb_visibility seen; /* of every name: SEE_ALL or SEE_BY_SOURCE */
} agg_chunk;

typedef struct agg_run {
    pg_backend *b;
    const aimdb_aggregate_params *a;
    aimdb_bucket_fn fn;
    void *ctx;
    bool delivered; /* a bucket reached fn: the query cannot be rerun */
    const char *sql;
    char start[24], end[24], every[24];
    char *like;
    char *field; /* $8 (field_of) */
    agg_chunk chunk;
    aimdb_bucket_set *set;
    char *record, *gateway; /* whose lines the set holds; NULL: none yet */
    char *topic;            /* the last topic asked about, and the answer */
    bool topic_known, topic_seen;
    char *err;
    size_t errlen;
} agg_run;

static int deliver(const aimdb_bucket *b, void *ctx) {
    agg_run *run = ctx;
    run->delivered = true;
    return run->fn(b, run->ctx);
}

/* The set's buckets to the caller, then the set belongs to no pair. */
static int emit(agg_run *run) {
    if (!run->gateway) return 0;
    int rc = aimdb_bucket_set_emit(run->set, run->record, run->gateway, run->a->q.limit,
                                   deliver, run);
    free(run->gateway);
    run->gateway = NULL;
    return rc;
}

/* Lines of record from here on: a topic's verdict is per record. */
static int begin_record(agg_run *run, const char *record) {
    free(run->record);
    free(run->topic);
    run->topic = NULL;
    run->topic_known = false;
    return (run->record = strdup(record)) ? 0 : AIMDB_ENOMEM;
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

static bool topic_visible(agg_run *run, aimdb_visibility seen, const char *topic) {
    if (seen == AIMDB_SEE_ALL) return true;
    bool same = run->topic_known && (run->topic == topic ||
                                     (run->topic && topic && strcmp(run->topic, topic) == 0));
    if (same) return run->topic_seen;
    free(run->topic);
    run->topic = topic ? strdup(topic) : NULL;
    run->topic_known = !topic || run->topic; /* out of memory: ask again next time */
    run->topic_seen = aimdb_access_value(run->a->q.access, seen, run->record, topic);
    return run->topic_seen;
}

/* A line's record and gateway: a new pair emits the previous one's. */
static int pair_of_line(agg_run *run, PGresult *r) {
    const char *record = PQgetvalue(r, 0, COL_RECORD), *gateway = PQgetvalue(r, 0, COL_GATEWAY);
    bool same_record = run->record && strcmp(run->record, record) == 0;
    if (same_record && run->gateway && strcmp(run->gateway, gateway) == 0) return 0;
    int rc = emit(run);
    if (rc == 0 && !same_record) rc = begin_record(run, record);
    if (rc == 0 && !(run->gateway = strdup(gateway))) rc = AIMDB_ENOMEM;
    return rc;
}

/* One line (a single-row result, binary) into the set of its pair. */
static int take_line(agg_run *run, aimdb_visibility seen, PGresult *r) {
    int rc = pair_of_line(run, r);
    if (rc) return rc;
    const char *topic = PQgetisnull(r, 0, COL_TOPIC) ? NULL : PQgetvalue(r, 0, COL_TOPIC);
    if (!topic_visible(run, seen, topic)) return 0;
    aimdb_bucket_part part = {.ts_ms = int8_at(r, COL_AT),
                              .values = (uint64_t)int8_at(r, COL_VALUES),
                              .count = (uint64_t)int8_at(r, COL_COUNT)};
    if (part.count) {
        part.sum = float8_at(r, COL_SUM);
        part.min = float8_at(r, COL_MIN);
        part.max = float8_at(r, COL_MAX);
    }
    if (part.count && !run->a->without_first_last) {
        if (PQgetisnull(r, 0, COL_FIRST) || PQgetisnull(r, 0, COL_LAST)) {
            aimdb_errorf(run->err, run->errlen, "a bucket of %s lost its first or last row",
                         run->record);
            return AIMDB_EIO;
        }
        part.first = float8_at(r, COL_FIRST);
        part.first_at = int8_at(r, COL_FIRST_AT);
        part.first_order = int8_at(r, COL_FIRST_ID);
        part.last = float8_at(r, COL_LAST);
        part.last_at = int8_at(r, COL_LAST_AT);
        part.last_order = int8_at(r, COL_LAST_ID);
    }
    return aimdb_bucket_set_merge(run->set, &part);
}

/* The chunk's names as a text[] literal ({"a","b\"c"}); NULL: no memory. */
static char *array_of(const agg_chunk *k) {
    size_t cap = 3;
    for (int i = 0; i < k->n; i++) cap += 2 * strlen(k->names[i]) + 3;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    *o++ = '{';
    for (int i = 0; i < k->n; i++) {
        if (i) *o++ = ',';
        *o++ = '"';
        for (const char *c = k->names[i]; *c; c++) {
            if (*c == '"' || *c == '\\') *o++ = '\\';
            *o++ = *c;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

static void chunk_clear(agg_chunk *k) {
    for (int i = 0; i < k->n; i++) free(k->names[i]);
    k->n = 0;
}

/* The chunk's lines, streamed (single-row mode: a long range in narrow
 * buckets can be many lines), then its last pair's buckets. */
static int aggregate_chunk(agg_run *run) {
    agg_chunk *k = &run->chunk;
    if (k->n == 0) return 0;
    char *records = array_of(k);
    if (!records) {
        aimdb_errorf(run->err, run->errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    const char *params[8] = {records,   run->start, run->end, run->like, run->every,
                             k->seen == AIMDB_SEE_BY_SOURCE ? "t" : "f",
                             run->a->without_first_last ? "f" : "t", run->field};
    int nparams = run->sql == value_sql ? 7 : 8;
    PGconn *c = run->b->rconn;
    PGresult *r;
    int rc = 0;
    if (!PQsendQueryParams(c, run->sql, nparams, NULL, params, NULL, NULL, 1) ||
        !PQsetSingleRowMode(c)) {
        pg_why(c, NULL, run->err, run->errlen);
        rc = AIMDB_EIO;
    }
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && rc == 0) {
            rc = take_line(run, k->seen, r);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
            pg_why(c, r, run->err, run->errlen);
            rc = AIMDB_EIO;
        }
        PQclear(r);
    }
    free(records);
    if (rc == 0) rc = emit(run);
    free(run->gateway); /* what a failure left */
    run->gateway = NULL;
    chunk_clear(k);
    return rc;
}

/* A record the request matches joins the chunk; a full chunk, or one of
 * the other visibility, runs first (records stay in name order). */
static int aggregate_record(const char *name, void *ctx) {
    agg_run *run = ctx;
    agg_chunk *k = &run->chunk;
    aimdb_visibility seen = aimdb_access_record(run->a->q.access, name);
    if (seen == AIMDB_SEE_NONE) return 0;
    int rc = k->n == AGG_CHUNK || (k->n && k->seen != seen) ? aggregate_chunk(run) : 0;
    if (rc) return rc;
    if (!(k->names[k->n] = strdup(name))) {
        aimdb_errorf(run->err, run->errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    k->n++;
    k->seen = seen;
    return 0;
}

/* The snapshot, and the planner's defaults for it only: plans with the
 * statement's values (see the top); and it cannot estimate how many
 * buckets an expression of stored_at makes, guesses half the rows, and
 * then prefers sorting every row to hashing them (2x slower on a month,
 * measured) and compiling the statement (JIT, 0.7 s on a month of one
 * gateway) to running it.  One round trip. */
#define PG_AGG_BEGIN                                                                \
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "                              \
    "SET LOCAL plan_cache_mode = force_custom_plan; "                               \
    "SET LOCAL enable_sort = off; SET LOCAL jit = off"

static int aggregate_matching(pg_backend *b, void *ctx) {
    agg_run *run = ctx;
    /* Anew on every try: a try cut short by a lost connection left lines. */
    aimdb_bucket_set_free(run->set);
    free(run->record);
    run->record = NULL;
    if (!(run->set = aimdb_bucket_set_new(run->a->every_ms))) {
        aimdb_errorf(run->err, run->errlen, "out of memory");
        return AIMDB_ENOMEM;
    }
    char why[512];
    if (pg_exec_sql(b->rconn, PG_AGG_BEGIN, why, sizeof(why)) != AIMDB_OK) {
        aimdb_errorf(run->err, run->errlen, "%s", why);
        PQclear(PQexec(b->rconn, "ROLLBACK")); /* if BEGIN went through */
        return AIMDB_EIO;
    }
    const char *pattern = run->a->q.pattern ? run->a->q.pattern : "*";
    size_t prefix_len = aimdb_pattern_prefix_len(pattern);
    int rc = pattern[prefix_len] == '\0' /* one record */
                 ? aggregate_record(pattern, run)
                 : pg_reader_each_name(b, pattern, prefix_len, aggregate_record, run,
                                       run->err, run->errlen);
    if (rc == 0) rc = aggregate_chunk(run);
    chunk_clear(&run->chunk); /* what a failure left */
    /* Read only: ending it cannot lose anything. */
    PQclear(PQexec(b->rconn, "COMMIT"));
    return rc;
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
    if (a->field && *a->field) rc = field_of(a->field, &run.sql, &run.field);
    run.like = pg_like_of(q->gateway ? q->gateway : "*");
    if (rc == AIMDB_OK && !run.like) rc = AIMDB_ENOMEM;
    if (rc == AIMDB_OK) rc = pg_reader_run(self, aggregate_matching, &run, &run.delivered, err,
                                           errlen);
    else aimdb_errorf(err, errlen, "out of memory");
    aimdb_bucket_set_free(run.set);
    free(run.like);
    free(run.field);
    free(run.record);
    free(run.topic);
    return rc;
}
