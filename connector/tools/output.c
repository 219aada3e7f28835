/*
 * output.c -- the CLI's human-readable output (see output.h).
 *
 * A table is printed in two passes over the result (widths, then rows) so
 * nothing but one row's cells is held at a time.  The last column is never
 * padded: it holds values of any length.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output.h"

#define MAX_COLUMNS 10 /* record, gateway, time and the seven aggregates */

typedef struct table {
    const char *headers[MAX_COLUMNS];
    size_t ncols;
    bool gateway; /* record.query from fleet history: GATEWAY after RECORD */
    /* Fill cells[0..ncols) for one array entry, each malloc'd (NULL = "-"). */
    void (*cells)(const struct table *t, const cJSON *entry, char **cells);
} table;

void output_local_time(int64_t unix_ms, char *out, size_t cap) {
    time_t secs = (time_t)(unix_ms / 1000);
    int millis = (int)(unix_ms % 1000);
    if (millis < 0) { /* before 1970: floor, so the milliseconds stay positive */
        secs--;
        millis += 1000;
    }
    struct tm tm;
    char date[32], zone[8];
    if (!localtime_r(&secs, &tm) || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
        strftime(zone, sizeof(zone), "%z", &tm) != 5) {
        snprintf(out, cap, "%lld", (long long)unix_ms);
        return;
    }
    /* %z is +hhmm; ISO-8601's extended form wants +hh:mm. */
    snprintf(out, cap, "%s.%03d%.3s:%s", date, millis, zone, zone + 3);
}

static char *compact(const cJSON *item) {
    return item ? cJSON_PrintUnformatted(item) : NULL;
}

static char *text_of(const cJSON *item) {
    return cJSON_IsString(item) ? strdup(item->valuestring) : compact(item);
}

/* RECORD, GATEWAY (in t's fleet table) and TIME of a record.query entry;
 * the number of cells filled. */
static size_t record_and_time(const table *t, const cJSON *entry, char **cells) {
    size_t n = 0;
    cells[n++] = text_of(cJSON_GetObjectItemCaseSensitive(entry, "record"));
    if (t->gateway) cells[n++] = text_of(cJSON_GetObjectItemCaseSensitive(entry, "gateway"));
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(entry, "stored_at");
    char **time = &cells[n++];
    *time = NULL;
    /* docs/protocol.md: times are int64 ms; anything else is shown as the server sent it */
    if (cJSON_IsNumber(at) && at->valuedouble > -9.2e18 && at->valuedouble < 9.2e18 &&
        (*time = malloc(40)))
        output_local_time((int64_t)at->valuedouble, *time, 40);
    else if (at)
        *time = compact(at);
    return n;
}

static void query_cells(const table *t, const cJSON *entry, char **cells) {
    size_t n = record_and_time(t, entry, cells);
    cells[n] = compact(cJSON_GetObjectItemCaseSensitive(entry, "value"));
}

/* An aggregate row: one column per member of the value, by its header. */
static void bucket_cells(const table *t, const cJSON *entry, char **cells) {
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(entry, "value");
    for (size_t i = record_and_time(t, entry, cells); i < t->ncols; i++)
        cells[i] = compact(cJSON_GetObjectItemCaseSensitive(value, t->headers[i]));
}

static void list_cells(const table *t, const cJSON *entry, char **cells) {
    (void)t;
    static const char *const keys[] = {"record", "buffer", "persist", "topic_filter"};
    for (size_t i = 0; i < 4; i++)
        cells[i] = text_of(cJSON_GetObjectItemCaseSensitive(entry, keys[i]));
}

static const char *shown(const char *cell) { return cell ? cell : "-"; }

static void free_cells(char **cells, size_t n) {
    for (size_t i = 0; i < n; i++) free(cells[i]);
}

static void print_row(const table *t, const size_t *width, const char *const *cells, FILE *out) {
    for (size_t i = 0; i + 1 < t->ncols; i++)
        fprintf(out, "%-*s  ", (int)width[i], shown(cells[i]));
    fprintf(out, "%s\n", shown(cells[t->ncols - 1]));
}

static void print_table(const table *t, const cJSON *array, FILE *out) {
    size_t width[MAX_COLUMNS] = {0};
    char *cells[MAX_COLUMNS];
    for (size_t i = 0; i < t->ncols; i++) width[i] = strlen(t->headers[i]);
    const cJSON *entry;
    cJSON_ArrayForEach(entry, array) {
        t->cells(t, entry, cells);
        for (size_t i = 0; i < t->ncols; i++)
            if (strlen(shown(cells[i])) > width[i]) width[i] = strlen(shown(cells[i]));
        free_cells(cells, t->ncols);
    }
    print_row(t, width, t->headers, out);
    cJSON_ArrayForEach(entry, array) {
        t->cells(t, entry, cells);
        print_row(t, width, (const char *const *)cells, out);
        free_cells(cells, t->ncols);
    }
}

/* Fleet history names each entry's gateway; a node's own history does not. */
static bool names_gateways(const cJSON *values) {
    const cJSON *entry;
    cJSON_ArrayForEach(entry, values) {
        if (cJSON_GetObjectItemCaseSensitive(entry, "gateway")) return true;
    }
    return false;
}

/* RECORD, GATEWAY if any entry names one, TIME: the columns every
 * record.query table starts with. */
static void query_columns(table *t, const cJSON *values) {
    t->headers[t->ncols++] = "RECORD";
    t->gateway = names_gateways(values);
    if (t->gateway) t->headers[t->ncols++] = "GATEWAY";
    t->headers[t->ncols++] = "TIME";
}

int output_query(const cJSON *result, FILE *out) {
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(result, "values");
    if (!cJSON_IsArray(values)) return -1;
    table t = {.cells = query_cells};
    query_columns(&t, values);
    t.headers[t.ncols++] = "VALUE";
    print_table(&t, values, out);
    return 0;
}

int output_buckets(const cJSON *result, FILE *out) {
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(result, "values");
    if (!cJSON_IsArray(values)) return -1;
    table t = {.cells = bucket_cells};
    query_columns(&t, values);
    size_t fixed = t.ncols;
    /* The columns are the aggregates the server answered, in its order. */
    const cJSON *first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(values, 0), "value");
    const cJSON *agg;
    cJSON_ArrayForEach(agg, first) if (t.ncols < MAX_COLUMNS) t.headers[t.ncols++] = agg->string;
    if (t.ncols == fixed) t.headers[t.ncols++] = "VALUE";
    print_table(&t, values, out);
    return 0;
}

int output_list(const cJSON *result, FILE *out) {
    if (!cJSON_IsArray(result)) return -1;
    static const table t = {{"RECORD", "BUFFER", "PERSIST", "TOPIC_FILTER"}, 4, false, list_cells};
    print_table(&t, result, out);
    return 0;
}

int output_value(const cJSON *value, FILE *out) {
    char *text = text_of(value);
    if (!text) return -1;
    fprintf(out, "%s\n", text);
    free(text);
    return 0;
}
