/*
 * mqtt_internal.h -- helpers shared by the files of aimdb_mqtt, not API.
 *
 * The codecs follow two output conventions of aimdb_codec: to_json writes
 * like snprintf (room kept for a NUL), from_json writes raw bytes (no NUL).
 * Both report the full length even when the buffer is too small, so callers
 * can size a second call.  A sink is that convention in one place.
 */
#ifndef AIMDB_MQTT_INTERNAL_H
#define AIMDB_MQTT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aimdb/aimdb.h"
#include "aimdb/json.h"

/* A bad value: the reason into why (aimdb_errorf), and AIMDB_EINVAL, so a
 * parser says both in one `return mqtt_invalid(why, whylen, ...)`. */
#define mqtt_invalid(why, whylen, ...) (aimdb_errorf((why), (whylen), __VA_ARGS__), AIMDB_EINVAL)

/* Invariant: bytes [0, min(len, limit)) of buf are written; len counts every
 * byte put, written or not. */
typedef struct sink {
    char *buf;
    size_t limit;
    size_t len;
} sink;

/* A sink that leaves room for a NUL (to_json) ... */
static inline sink sink_text(char *buf, size_t cap) {
    return (sink){buf, cap > 0 ? cap - 1 : 0, 0};
}
/* ... and one that fills buf to the last byte (from_json). */
static inline sink sink_bytes(void *buf, size_t cap) { return (sink){buf, cap, 0}; }

static inline void sink_put(sink *s, char c) {
    if (s->len < s->limit) s->buf[s->len] = c;
    s->len++;
}

static inline void sink_write(sink *s, const void *data, size_t n) {
    if (s->len < s->limit) {
        size_t room = s->limit - s->len;
        memcpy(s->buf + s->len, data, n < room ? n : room);
    }
    s->len += n;
}

/* NUL-terminate a text sink made by sink_text(buf, cap); returns len. */
static inline size_t sink_finish_text(sink *s, size_t cap) {
    if (cap > 0) s->buf[s->len < s->limit ? s->len : s->limit] = '\0';
    return s->len;
}

/* Write bytes (valid UTF-8) as a JSON string, quotes included. */
static inline void sink_json_string(sink *s, const void *bytes, size_t len) {
    size_t room = s->len < s->limit ? s->limit - s->len : 0;
    s->len += aimdb_json_string_write(bytes, len, room ? s->buf + s->len : NULL, room);
}
/* Decode the JSON string at [p, end) (p at its opening quote) into out.
 * Returns the byte after the closing quote, or NULL if it is not a valid
 * string.  out may be NULL to only validate. */
const char *json_read_string(const char *p, const char *end, sink *out);
/* If [json, json+len) is exactly one JSON string (whitespace around
 * allowed), the span of that string, quotes included; else false. */
bool json_whole_string(const char *json, size_t len, const char **start, const char **end);
/* If [json, json+len) is exactly {"<key>": "<string>"}, the span of the
 * string value, quotes included; else false. */
bool json_single_member_string(const char *json, size_t len, const char *key,
                               const char **start, const char **end);

/* RFC 4648 base64 with padding. */
void base64_encode(sink *out, const void *bytes, size_t len);
/* Canonical input only (padding, zero pad bits); false if invalid. */
bool base64_decode(const char *text, size_t len, sink *out);

/*
 * An open-addressing hash table from byte strings to rule numbers, built
 * once and then only read (concurrently, without locks).  Keys are not
 * copied: they must outlive the table.
 */
typedef struct table_slot {
    const char *key; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    uint32_t value;
} table_slot;

typedef struct table {
    table_slot *slots;
    size_t mask; /* capacity - 1; capacity a power of two, at most half full */
    size_t used;
} table;

uint64_t table_hash(const char *key, size_t len);
/* Insert key -> value unless key is there already (AIMDB_EEXIST, value kept).
 * AIMDB_OK or AIMDB_ENOMEM. */
int table_put(table *t, const char *key, size_t len, uint32_t value);
bool table_get(const table *t, const char *key, size_t len, uint32_t *value);
void table_free(table *t);

/* ------------------------------------------------ aimdb.conf settings */

struct aimdb_conf;

/* The setting called key, as an index for conf_setting_apply, or -1. */
int conf_setting_find(const char *key);
size_t conf_setting_count(void);
/* Parse value and store it in conf->settings; on error conf is unchanged
 * and why says what is wrong (without location). */
int conf_setting_apply(struct aimdb_conf *conf, int setting, const char *value, char *why,
                       size_t whylen);

/* "N" + unit into milliseconds; units ms (if allow_ms), s, m, h, d.  A bare
 * "0" is allowed.  false if malformed or above max_ms. */
bool conf_duration_parse(const char *text, bool allow_ms, int64_t max_ms, int64_t *out);

#endif
