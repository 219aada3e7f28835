/*
 * aimx_test.c -- the shared helpers of the AimX tests (see aimx_test.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "aimx_test.h"

test_log aimx_test_log = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void keep_log(void *self, aimdb_log_level level, const char *fmt, va_list ap) {
    (void)self;
    pthread_mutex_lock(&aimx_test_log.lock);
    aimx_test_log.lines++;
    if (level == AIMDB_LOG_WARNING) aimx_test_log.warnings++;
    vsnprintf(aimx_test_log.last, sizeof(aimx_test_log.last), fmt, ap);
    pthread_mutex_unlock(&aimx_test_log.lock);
}

static _Atomic unsigned released_blocks;

static void count_release(void *self, void *block) {
    (void)self;
    atomic_fetch_add(&released_blocks, 1);
    free(block);
}

static aimdb_runtime test_runtime;

aimdb_db *test_db_new(void) {
    test_runtime = *aimdb_runtime_pthread();
    test_runtime.log = keep_log;
    test_runtime.release = count_release;
    aimdb_db_options opts = {.runtime = &test_runtime};
    aimdb_db *db = aimdb_db_new(&opts);
    assert_non_null(db);
    return db;
}

unsigned test_released_blocks(void) {
    return atomic_load(&released_blocks);
}

unsigned test_log_lines(void) {
    pthread_mutex_lock(&aimx_test_log.lock);
    unsigned n = aimx_test_log.lines;
    pthread_mutex_unlock(&aimx_test_log.lock);
    return n;
}

unsigned test_log_warnings(void) {
    pthread_mutex_lock(&aimx_test_log.lock);
    unsigned n = aimx_test_log.warnings;
    pthread_mutex_unlock(&aimx_test_log.lock);
    return n;
}

char *test_log_last(void) {
    pthread_mutex_lock(&aimx_test_log.lock);
    char *last = strdup(aimx_test_log.last);
    pthread_mutex_unlock(&aimx_test_log.lock);
    assert_non_null(last);
    return last;
}

void reply_catch_init(reply_catch *c) {
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->done, NULL);
}

void reply_catch_free(reply_catch *c) {
    free(c->text);
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->lock);
}

void reply_catch_fn(char *reply, size_t len, void *ctx) {
    reply_catch *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (c->calls++ == 0) {
        c->text = reply;
        c->len = len;
    } else {
        free(reply); /* counted; the test fails on calls != 1 */
    }
    pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->lock);
}

void reply_catch_wait(reply_catch *c) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    while (c->calls == 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&c->done, &c->lock, &deadline);
    pthread_mutex_unlock(&c->lock);
    assert_int_equal(c->calls, 1);
}

static aimdb_visibility whole_record(const char *record, void *ctx) {
    test_access *t = ctx;
    return t->allow(record, t->allow_ctx) ? AIMDB_SEE_ALL : AIMDB_SEE_NONE;
}

static bool no_value(const char *record, const char *source, void *ctx) {
    (void)record, (void)source, (void)ctx;
    return false; /* never asked: whole_record never says SEE_BY_SOURCE */
}

const aimdb_access *test_access_of(test_access *t, test_allow_fn allow, void *allow_ctx) {
    if (!allow) return NULL;
    *t = (test_access){allow, allow_ctx, {whole_record, no_value, t, NULL, 0}};
    return &t->access;
}

char *ask(aimdb_aimx *x, const char *payload, size_t len, test_allow_fn allow,
          void *allow_ctx) {
    reply_catch c;
    reply_catch_init(&c);
    test_access t;
    aimdb_aimx_handle(x, payload, len, test_access_of(&t, allow, allow_ctx), reply_catch_fn, &c);
    reply_catch_wait(&c);
    assert_non_null(c.text);
    assert_int_equal(strlen(c.text), c.len);
    cJSON *reply = cJSON_ParseWithLength(c.text, c.len);
    assert_true(cJSON_IsObject(reply));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(reply, "id"));
    /* exactly one of result and error */
    assert_true(cJSON_HasObjectItem(reply, "result") != cJSON_HasObjectItem(reply, "error"));
    cJSON_Delete(reply);
    char *text = c.text;
    c.text = NULL;
    reply_catch_free(&c);
    return text;
}

cJSON *ask_json(aimdb_aimx *x, const char *payload, test_allow_fn allow, void *allow_ctx) {
    char *text = ask(x, payload, strlen(payload), allow, allow_ctx);
    cJSON *reply = cJSON_Parse(text);
    free(text);
    return reply;
}

const char *error_code(const cJSON *reply) {
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
    return cJSON_IsString(code) ? code->valuestring : NULL;
}

const char *error_message(const cJSON *reply) {
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
    return cJSON_IsString(message) ? message->valuestring : NULL;
}
