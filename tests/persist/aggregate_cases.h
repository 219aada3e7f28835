/*
 * aggregate_cases.h -- the table of aggregate cases every history backend
 * must answer alike (aggregate_cases.json), and its runner.
 *
 * Backend-agnostic: the runner stores the table's rows through any
 * aimdb_backend (or finds them there already), answers each case through
 * the persistence layer's JSON form -- with the backend's own aggregate
 * and with the layer's aggregation of its rows -- and compares with the
 * expected result object.  A backend's test needs only an empty history
 * and these calls.
 */
#ifndef AIMDB_AGGREGATE_CASES_H
#define AIMDB_AGGREGATE_CASES_H

#include <stdbool.h>

#include "aimdb/persist.h"

/* The table, parsed (cJSON *); exits the test on a missing or bad file. */
typedef struct aggregate_cases aggregate_cases;
aggregate_cases *aggregate_cases_load(const char *path);
void aggregate_cases_free(aggregate_cases *c);

/* Store the table's rows through b in order and wait for them to commit. */
void aggregate_cases_store(const aggregate_cases *c, aimdb_backend b);
/* Each row as SQL for record_history(record_name, value_json, stored_at,
 * topic), one INSERT per row, for seeding a database directly (malloc'd). */
char *aggregate_cases_sql(const aggregate_cases *c);

/* A database with persistence attached to b, whose aggregate the runner
 * may switch off (the layer's own aggregation then answers). */
typedef struct cases_db cases_db;
cases_db *cases_db_open(aimdb_backend b);
aimdb_persist *cases_db_persist(cases_db *d);
void cases_db_close(cases_db *d);

/* Run every case; print each mismatch under label and return how many
 * failed (0 = all passed).  own: the backend's aggregate, else the layer's. */
int aggregate_cases_check(const aggregate_cases *c, cases_db *d, bool own, const char *label);
/* The same on a fleet backend to which the table was stored once by each
 * gateway in gateways[] (n >= 1, ascending): every case without a gateway
 * pattern must give each gateway's buckets apart (per record, gateway
 * ascending, the limit per record and gateway), each naming its gateway,
 * count and skipped summed; and with gateway = gateways[0] that gateway's
 * alone.  n = 0 is aggregate_cases_check. */
int aggregate_cases_check_fleet(const aggregate_cases *c, cases_db *d, bool own,
                                const char *const *gateways, size_t n, const char *label);

/* The result objects of req through the backend's aggregate and the
 * layer's are equal (printing both if not). */
bool aggregate_layers_agree(cases_db *d, const aimdb_history_request *req);

#endif
