/*
 * test_broker_url.c -- broker URLs: what is accepted, the URI Paho gets, and
 * the reason given for each kind of mistake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "aimdb/broker_url.h"

static void test_accepted(void **state) {
    (void)state;
    static const struct {
        const char *text, *uri;
        unsigned port;
        bool tls, websocket;
    } cases[] = {
        {"mqtt://localhost", "tcp://localhost:1883", 1883, false, false},
        {"mqtt://127.0.0.1:1884", "tcp://127.0.0.1:1884", 1884, false, false},
        {"tcp://broker.example.org:1", "tcp://broker.example.org:1", 1, false, false},
        {"MQTTS://gw.local", "ssl://gw.local:8883", 8883, true, false},
        {"ssl://gw.local:65535/", "ssl://gw.local:65535", 65535, true, false},
        {"ws://host/mqtt", "ws://host:80/mqtt", 80, false, true},
        {"wss://host:8081/a/b", "wss://host:8081/a/b", 8081, true, true},
        {"mqtt://[::1]:1883", "tcp://[::1]:1883", 1883, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        aimdb_broker_url u;
        char err[256] = "";
        assert_int_equal(aimdb_broker_url_parse(cases[i].text, &u, err, sizeof(err)), AIMDB_OK);
        assert_string_equal(u.uri, cases[i].uri);
        assert_int_equal(u.port, cases[i].port);
        assert_int_equal(u.tls, cases[i].tls);
        assert_int_equal(u.websocket, cases[i].websocket);
    }
}

static void test_refused_with_reason(void **state) {
    (void)state;
    static const struct {
        const char *text, *reason;
    } cases[] = {
        {"", "empty"},
        {"localhost:1883", "no scheme"},
        {"http://host", "unknown scheme 'http'"},
        {"mqtt://", "no host"},
        {"mqtt://user:pw@host", "credentials do not belong in the URL"},
        {"mqtt://host:0", "bad port '0'"},
        {"mqtt://host:65536", "bad port '65536'"},
        {"mqtt://host:12a", "bad port '12a'"},
        {"mqtt://host/path", "a path is allowed only for ws:// and wss://"},
        {"mqtt://host?x=1", "a query or fragment is not allowed"},
        {"mqtt://ho st", "bad host 'ho st'"},
        {"mqtt://[::1", "'[' without ']'"},
        {"ws://host/a b", "the path holds a space or control character"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        aimdb_broker_url u;
        char err[256] = "";
        assert_int_equal(aimdb_broker_url_parse(cases[i].text, &u, err, sizeof(err)),
                         AIMDB_EINVAL);
        if (!strstr(err, cases[i].reason))
            fail_msg("'%s': got \"%s\", want \"%s\"", cases[i].text, err, cases[i].reason);
        assert_non_null(strstr(err, "bad broker URL"));
    }
}

static void test_probe_explains_refusal(void **state) {
    (void)state;
    aimdb_broker_url u;
    char err[256], why[256] = "";
    /* Port 1 on loopback: nothing listens there on a test machine. */
    assert_int_equal(aimdb_broker_url_parse("mqtt://127.0.0.1:1", &u, err, sizeof(err)), AIMDB_OK);
    assert_int_equal(aimdb_broker_probe(&u, 1000, why, sizeof(why)), AIMDB_EIO);
    assert_non_null(strstr(why, "refused"));
    assert_int_equal(aimdb_broker_url_parse("mqtt://no-such-host.invalid", &u, err, sizeof(err)),
                     AIMDB_OK);
    assert_int_equal(aimdb_broker_probe(&u, 1000, why, sizeof(why)), AIMDB_EIO);
    assert_non_null(strstr(why, "cannot resolve host 'no-such-host.invalid'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused_with_reason),
        cmocka_unit_test(test_probe_explains_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
