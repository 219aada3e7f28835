/*
 * test_records.c -- registration, codecs, produce rules, attributes,
 * extensions and hooks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/aimdb.h"

static void test_register_same_name(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *a, *b;
    assert_int_equal(aimdb_record_register(db, "temp::vienna", NULL, &aimdb_codec_double, &a),
                     AIMDB_OK);
    /* Same codec and buffer: the existing record, not an error. */
    assert_int_equal(aimdb_record_register(db, "temp::vienna", NULL, &aimdb_codec_double, &b),
                     AIMDB_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(aimdb_record_register(db, "temp::vienna", NULL, &aimdb_codec_int64, &b),
                     AIMDB_EEXIST);
    aimdb_buffer_cfg latest = {AIMDB_BUFFER_LATEST, 1};
    assert_int_equal(aimdb_record_register(db, "temp::vienna", &latest, &aimdb_codec_double, &b),
                     AIMDB_EEXIST);
    assert_ptr_equal(aimdb_db_find(db, "temp::vienna"), a);
    assert_null(aimdb_db_find(db, "temp::graz"));
    assert_int_equal(aimdb_record_register(db, "", NULL, &aimdb_codec_double, &b), AIMDB_EINVAL);
    aimdb_buffer_cfg bad = {AIMDB_BUFFER_RING, 0};
    assert_int_equal(aimdb_record_register(db, "x", &bad, &aimdb_codec_double, &b), AIMDB_EINVAL);
    assert_int_equal(aimdb_db_record_count(db), 1);
    aimdb_db_free(db);
}

/* max_records bounds new names only: a name already registered is still
 * found and re-registered, and a refused name leaves no trace. */
static void test_max_records(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(&(aimdb_db_options){.max_records = 2});
    aimdb_record *a, *b, *c;
    assert_int_equal(aimdb_record_register(db, "a", NULL, &aimdb_codec_int64, &a), AIMDB_OK);
    assert_int_equal(aimdb_record_register(db, "b", NULL, &aimdb_codec_int64, &b), AIMDB_OK);
    assert_int_equal(aimdb_record_register(db, "c", NULL, &aimdb_codec_int64, &c), AIMDB_EFULL);
    assert_string_equal(aimdb_strerror(AIMDB_EFULL), "too many records (max_records)");
    assert_null(aimdb_db_find(db, "c"));
    assert_int_equal(aimdb_record_register(db, "a", NULL, &aimdb_codec_int64, &c), AIMDB_OK);
    assert_ptr_equal(c, a);
    assert_int_equal(aimdb_db_record_count(db), 2);
    aimdb_db_free(db);
}

static int count_record(aimdb_record *rec, void *ctx) {
    (void)rec;
    (*(size_t *)ctx)++;
    return 0;
}

static void test_many_records_lookup(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        aimdb_record *r;
        snprintf(name, sizeof(name), "rec::%d", i);
        assert_int_equal(aimdb_record_register(db, name, NULL, &aimdb_codec_int64, &r), AIMDB_OK);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "rec::%d", i);
        aimdb_record *r = aimdb_db_find(db, name);
        assert_non_null(r);
        assert_string_equal(aimdb_record_name(r), name);
    }
    size_t n = 0;
    assert_int_equal(aimdb_db_foreach_record(db, count_record, &n), 0);
    assert_int_equal(n, 5000);
    aimdb_db_free(db);
}

typedef struct matched {
    char names[64][16];
    size_t n;
} matched;

static int keep_name(aimdb_record *rec, void *ctx) {
    matched *m = ctx;
    snprintf(m->names[m->n++], sizeof(m->names[0]), "%s", aimdb_record_name(rec));
    return 0;
}

static int by_strcmp(const void *a, const void *b) { return strcmp(a, b); }

/* foreach_matching visits exactly the names the pattern matches, in name
 * order, whatever was added since the last walk. */
static void test_foreach_matching(void **state) {
    (void)state;
    static const char *const names[] = {"b", "ab", "a", "a*b", "abc", "a\xc3\xa9", "aa",
                                        "z::1", "a:", "ab::x", "b", "A", "ab\x7f", "ac"};
    static const char *const patterns[] = {"*",  "a*",  "ab*", "a*b", "a\\*b", "a\xc3*",
                                           "ab", "abd*", "",   "*b",  "z::*",  "ab\x7f*"};
    aimdb_db *db = aimdb_db_new(NULL);
    size_t n_names = sizeof(names) / sizeof(names[0]);
    for (size_t added = 0; added <= n_names; added += 5) {
        for (size_t i = added; i < added + 5 && i < n_names; i++) {
            aimdb_record *r;
            int rc = aimdb_record_register(db, names[i], NULL, &aimdb_codec_int64, &r);
            assert_int_equal(rc, AIMDB_OK); /* "b" twice: the same record */
        }
        for (size_t p = 0; p < sizeof(patterns) / sizeof(patterns[0]); p++) {
            matched got = {0}, want = {0};
            assert_int_equal(aimdb_db_foreach_matching(db, patterns[p], keep_name, &got), 0);
            aimdb_db_foreach_record(db, keep_name, &want);
            size_t kept = 0;
            for (size_t i = 0; i < want.n; i++)
                if (aimdb_pattern_match(patterns[p], want.names[i]))
                    memmove(want.names[kept++], want.names[i], sizeof(want.names[0]));
            want.n = kept;
            qsort(want.names, want.n, sizeof(want.names[0]), by_strcmp);
            assert_int_equal(got.n, want.n);
            for (size_t i = 0; i < got.n; i++) assert_string_equal(got.names[i], want.names[i]);
        }
    }
    aimdb_db_free(db);
}

static void test_produce_rules(void **state) {
    (void)state;
    aimdb_db_options opts = {.max_value_bytes = 16};
    aimdb_db *db = aimdb_db_new(&opts);
    aimdb_record *d, *j;
    assert_int_equal(aimdb_record_register(db, "d", NULL, &aimdb_codec_double, &d), AIMDB_OK);
    assert_int_equal(aimdb_record_register(db, "j", NULL, &aimdb_codec_json, &j), AIMDB_OK);
    float f = 1.0f;
    assert_int_equal(aimdb_produce(d, &f, sizeof(f)), AIMDB_EINVAL);
    assert_int_equal(aimdb_produce(j, "\"0123456789abcdef\"", 18), AIMDB_ETOOBIG);
    assert_int_equal(aimdb_produce(j, "", 0), AIMDB_OK);
    assert_int_equal(aimdb_produce_at(j, "1", 1, 1234), AIMDB_OK);
    aimdb_record_stats st;
    aimdb_record_stats_get(j, &st);
    assert_int_equal(st.produced, 2);
    assert_int_equal(st.rejected, 1);
    aimdb_db_stop(db);
    double x = 1;
    assert_int_equal(aimdb_produce(d, &x, sizeof(x)), AIMDB_ESTOPPED);
    aimdb_db_free(db);
}

struct copy {
    char text[64];
    int64_t ts;
};

static void copy_value(const aimdb_value *v, void *ctx) {
    struct copy *c = ctx;
    memcpy(c->text, v->data, v->len);
    c->text[v->len] = '\0';
    c->ts = v->ts_ms;
}

static void test_peek_latest_keeps_the_value(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_buffer_cfg mailbox = {AIMDB_BUFFER_MAILBOX, 1};
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, "m", &mailbox, &aimdb_codec_json, &rec), AIMDB_OK);
    struct copy c = {0};
    assert_int_equal(aimdb_record_peek_latest(rec, copy_value, &c), AIMDB_ENOTFOUND);
    assert_int_equal(aimdb_produce_at(rec, "{\"a\":1}", 7, 99), AIMDB_OK);
    assert_int_equal(aimdb_record_peek_latest(rec, copy_value, &c), AIMDB_OK);
    assert_string_equal(c.text, "{\"a\":1}");
    assert_int_equal(c.ts, 99);
    aimdb_reader *r;
    aimdb_value v;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    assert_int_equal(aimdb_reader_try_recv(r, &v, NULL), AIMDB_OK); /* still there */
    aimdb_reader_close(r);
    aimdb_db_free(db);
}

/* A codec that takes only bytes starting with '{' (and calls them JSON). */
static bool starts_with_brace(const void *value, size_t len) {
    return len > 0 && *(const char *)value == '{';
}
static long braces_to_json(const void *value, size_t len, char *out, size_t cap) {
    return snprintf(out, cap, "%.*s", (int)len, (const char *)value);
}
static const aimdb_codec braces = {"braces", 0, braces_to_json, NULL, starts_with_brace};

/* What a codec does not accept never reaches the buffer: readers and
 * peek_latest see the value before it, the refusal is counted. */
static void test_codec_refuses_bytes(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, "b", NULL, &braces, &rec), AIMDB_OK);
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    assert_int_equal(aimdb_produce(rec, "x", 1), AIMDB_EFORMAT);
    struct copy c = {0};
    assert_int_equal(aimdb_record_peek_latest(rec, copy_value, &c), AIMDB_ENOTFOUND);
    assert_int_equal(aimdb_produce_at(rec, "{1", 2, 5), AIMDB_OK);
    assert_int_equal(aimdb_produce(rec, "", 0), AIMDB_EFORMAT);
    assert_int_equal(aimdb_produce(rec, "2}", 2), AIMDB_EFORMAT);
    assert_int_equal(aimdb_record_peek_latest(rec, copy_value, &c), AIMDB_OK);
    assert_string_equal(c.text, "{1");
    aimdb_value v;
    assert_int_equal(aimdb_reader_try_recv(r, &v, NULL), AIMDB_OK);
    assert_int_equal(v.seq, 1);
    assert_int_equal(aimdb_reader_try_recv(r, &v, NULL), AIMDB_EAGAIN);
    aimdb_record_stats st;
    aimdb_record_stats_get(rec, &st);
    assert_int_equal(st.produced, 1);
    assert_int_equal(st.rejected, 3);
    /* accepts is part of the codec: the same name and functions without it
     * is another codec */
    static const aimdb_codec lax = {"braces", 0, braces_to_json, NULL, NULL};
    aimdb_record *again;
    assert_int_equal(aimdb_record_register(db, "b", NULL, &lax, &again), AIMDB_EEXIST);
    aimdb_reader_close(r);
    aimdb_db_free(db);
}

static void test_timestamps_are_produce_time(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, "t", NULL, &aimdb_codec_int64, &rec), AIMDB_OK);
    aimdb_reader *r;
    assert_int_equal(aimdb_reader_open(rec, &r), AIMDB_OK);
    const aimdb_runtime *rt = aimdb_db_runtime(db);
    int64_t before = rt->now_ms(rt->self), one = 1;
    assert_int_equal(aimdb_produce(rec, &one, sizeof(one)), AIMDB_OK);
    int64_t after = rt->now_ms(rt->self);
    aimdb_value v;
    assert_int_equal(aimdb_reader_try_recv(r, &v, NULL), AIMDB_OK);
    assert_true(v.ts_ms >= before && v.ts_ms <= after);
    assert_int_equal(v.seq, 1);
    aimdb_db_free(db);
}

static void test_codecs(void **state) {
    (void)state;
    char out[64];
    double d = 21.5, back = 0;
    assert_int_equal(aimdb_codec_double.to_json(&d, sizeof(d), out, sizeof(out)), 4);
    assert_string_equal(out, "21.5");
    assert_int_equal(aimdb_codec_double.from_json("21.5", 4, &back, sizeof(back)), 8);
    assert_true(back == 21.5);
    assert_int_equal(aimdb_codec_double.from_json("21.5x", 5, &back, sizeof(back)), -1);
    assert_int_equal(aimdb_codec_double.from_json("\"1\"", 3, &back, sizeof(back)), -1);
    double nan = 0.0 / 0.0;
    assert_int_equal(aimdb_codec_double.to_json(&nan, sizeof(nan), out, sizeof(out)), -1);
    int64_t i = -9223372036854775807LL - 1, ib = 0;
    long n = aimdb_codec_int64.to_json(&i, sizeof(i), out, sizeof(out));
    assert_string_equal(out, "-9223372036854775808");
    assert_int_equal(aimdb_codec_int64.from_json(out, (size_t)n, &ib, sizeof(ib)), 8);
    assert_true(ib == i);
    assert_int_equal(aimdb_codec_int64.from_json("9223372036854775808", 19, &ib, sizeof(ib)), -1);
    /* snprintf semantics: a short buffer reports the length needed. */
    assert_int_equal(aimdb_codec_json.to_json("{\"k\":true}", 10, out, 4), 10);
    assert_string_equal(out, "{\"k");
}

struct attrs {
    char joined[256];
};

static void join_attr(const char *key, const char *json, void *ctx) {
    struct attrs *a = ctx;
    size_t n = strlen(a->joined);
    snprintf(a->joined + n, sizeof(a->joined) - n, "%s=%s;", key, json);
}

static void test_attributes(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    aimdb_record *rec;
    assert_int_equal(aimdb_record_register(db, "a", NULL, &aimdb_codec_json, &rec), AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr_string(rec, "topic_filter", "weather/+/\"x\"\\\n"),
                     AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr(rec, "persist", "false"), AIMDB_OK);
    assert_int_equal(aimdb_record_set_attr(rec, "persist", "true"), AIMDB_OK);
    struct attrs a = {{0}};
    aimdb_record_foreach_attr(rec, join_attr, &a);
    assert_string_equal(a.joined, "topic_filter=\"weather/+/\\\"x\\\"\\\\\\n\";persist=true;");
    aimdb_db_free(db);
}

static int seq_log[8];
static int seq_n;

static int hook_a(aimdb_db *db, void *ctx) {
    (void)db;
    seq_log[seq_n++] = *(int *)ctx;
    return 0;
}

static void free_counter(void *p) { (*(int *)p)++; }

static void test_hooks_and_extensions(void **state) {
    (void)state;
    seq_n = 0;
    int one = 1, two = 2, three = 3, four = 4, freed = 0;
    aimdb_db *db = aimdb_db_new(NULL);
    assert_int_equal(aimdb_db_on_start(db, hook_a, &one), AIMDB_OK);
    assert_int_equal(aimdb_db_on_start(db, hook_a, &two), AIMDB_OK);
    assert_int_equal(aimdb_db_on_stop(db, hook_a, &three), AIMDB_OK);
    assert_int_equal(aimdb_db_on_stop(db, hook_a, &four), AIMDB_OK);
    assert_int_equal(aimdb_ext_set(db, "layer", &freed, free_counter), AIMDB_OK);
    assert_int_equal(aimdb_ext_set(db, "layer", &freed, free_counter), AIMDB_EEXIST);
    assert_ptr_equal(aimdb_ext_get(db, "layer"), &freed);
    assert_null(aimdb_ext_get(db, "other"));
    assert_false(aimdb_db_running(db));
    assert_int_equal(aimdb_db_start(db), AIMDB_OK);
    assert_true(aimdb_db_running(db));
    assert_int_equal(aimdb_db_start(db), AIMDB_ESTATE);
    assert_int_equal(aimdb_db_on_start(db, hook_a, &one), AIMDB_ESTATE);
    aimdb_db_stop(db);
    aimdb_db_stop(db); /* idempotent */
    assert_int_equal(seq_n, 4);
    int want[] = {1, 2, 4, 3}; /* stop hooks in reverse */
    for (int i = 0; i < 4; i++) assert_int_equal(seq_log[i], want[i]);
    assert_int_equal(freed, 0);
    aimdb_db_free(db);
    assert_int_equal(freed, 1);
}

static int failing_hook(aimdb_db *db, void *ctx) {
    (void)db;
    (void)ctx;
    return -42;
}

static void test_failing_start_hook_stops(void **state) {
    (void)state;
    aimdb_db *db = aimdb_db_new(NULL);
    assert_int_equal(aimdb_db_on_start(db, failing_hook, NULL), AIMDB_OK);
    assert_int_equal(aimdb_db_start(db), -42);
    assert_false(aimdb_db_running(db));
    aimdb_db_free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_same_name),
        cmocka_unit_test(test_max_records),
        cmocka_unit_test(test_many_records_lookup),
        cmocka_unit_test(test_foreach_matching),
        cmocka_unit_test(test_produce_rules),
        cmocka_unit_test(test_codec_refuses_bytes),
        cmocka_unit_test(test_peek_latest_keeps_the_value),
        cmocka_unit_test(test_timestamps_are_produce_time),
        cmocka_unit_test(test_codecs),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_hooks_and_extensions),
        cmocka_unit_test(test_failing_start_hook_stops),
    };
    return cmocka_run_group_tests_name("records", tests, NULL, NULL);
}
