/*
 * aimx_test.h -- what the AimX tests share: a database whose runtime keeps
 * the log (so tests can see that every failure is logged), and a reply
 * catcher that works for inline and query-thread replies alike.
 */
#ifndef AIMX_TEST_H
#define AIMX_TEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "aimdb/aimx.h"

/* The log of the test runtime: lines counted (WARNING lines also apart),
 * the last one kept. */
typedef struct test_log {
    pthread_mutex_t lock;
    unsigned lines, warnings;
    char last[1024];
} test_log;

extern test_log aimx_test_log;

/* A database on the pthread runtime, logging into aimx_test_log. */
aimdb_db *test_db_new(void);
unsigned test_log_lines(void);
/* Blocks freed through the test runtime's release (runtime.h), so far. */
unsigned test_released_blocks(void);
unsigned test_log_warnings(void);
/* The last line logged (caller frees). */
char *test_log_last(void);

/* One reply, delivered exactly once (a second delivery fails the test). */
typedef struct reply_catch {
    pthread_mutex_t lock;
    pthread_cond_t done;
    unsigned calls;
    char *text;
    size_t len;
} reply_catch;

void reply_catch_init(reply_catch *c);
void reply_catch_free(reply_catch *c);
void reply_catch_fn(char *reply, size_t len, void *ctx);
/* Wait up to 10 s for the reply; fails the test on timeout. */
void reply_catch_wait(reply_catch *c);

/* Handle payload[0..len) and wait for its reply; returns the reply text
 * (caller frees) after checking it is one strict JSON object. */
/* A whole-record predicate, as most tests need: a record is all visible or
 * hidden.  test_access wraps one in an aimdb_access (a->ctx is the wrapper). */
typedef bool (*test_allow_fn)(const char *record, void *ctx);
typedef struct test_access {
    test_allow_fn allow;
    void *allow_ctx;
    aimdb_access access;
} test_access;
/* NULL if allow is NULL (everything visible); else &t->access. */
const aimdb_access *test_access_of(test_access *t, test_allow_fn allow, void *allow_ctx);

char *ask(aimdb_aimx *x, const char *payload, size_t len, test_allow_fn allow,
          void *allow_ctx);
/* ask() a NUL-terminated payload and parse the reply (caller deletes). */
cJSON *ask_json(aimdb_aimx *x, const char *payload, test_allow_fn allow, void *allow_ctx);

/* The error code of a reply, or NULL if it is a result. */
const char *error_code(const cJSON *reply);
const char *error_message(const cJSON *reply);

#endif
