/*
 * payload.c -- the four MQTT payload formats as aimdb_codec values.
 *
 * A record fed from MQTT stores the payload bytes untouched; the format only
 * decides their JSON face (payload.h has the rules and the reasoning behind
 * from_json's choices).  The broker thread never runs this: accepts runs
 * where values are produced (the plugin's relay thread), to_json on persist
 * taps and request threads, from_json when history is read back.
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/json.h"
#include "aimdb/payload.h"
#include "mqtt_internal.h"

/* ------------------------------------------------------------ to JSON */

/* Empty payloads may come with a NULL pointer; give them a real one so no
 * pointer arithmetic is done on NULL. */
static const void *nonnull(const void *value) { return value ? value : ""; }

static long copy_text(const void *value, size_t len, char *out, size_t cap) {
    sink s = sink_text(out, cap);
    sink_write(&s, value, len);
    return (long)sink_finish_text(&s, cap);
}

static long base64_object(const void *value, size_t len, char *out, size_t cap) {
    sink s = sink_text(out, cap);
    sink_write(&s, "{\"base64\":\"", 11);
    base64_encode(&s, nonnull(value), len);
    sink_write(&s, "\"}", 2);
    return (long)sink_finish_text(&s, cap);
}

static long binary_to_json(const void *value, size_t len, char *out, size_t cap) {
    return base64_object(value, len, out, cap);
}

static long text_to_json(const void *value, size_t len, char *out, size_t cap) {
    value = nonnull(value);
    if (!aimdb_utf8_valid(value, len)) return base64_object(value, len, out, cap);
    sink s = sink_text(out, cap);
    sink_json_string(&s, value, len);
    return (long)sink_finish_text(&s, cap);
}

static long json_to_json(const void *value, size_t len, char *out, size_t cap) {
    if (!aimdb_json_valid(value, len)) return -1;
    return copy_text(value, len, out, cap);
}

/* format=json keeps non-JSON payloads out of the record itself, not only out
 * of history: a record.get (or any reader) then answers the latest value
 * that is JSON, as history's latest does, instead of failing on a stray
 * payload -- and a record that only ever got non-JSON holds no value
 * (not_found) rather than one it can never show.  The cost is a second
 * parse of each value of such a record, on the producer's thread. */
static bool json_accepts(const void *value, size_t len) { return aimdb_json_valid(value, len); }

static long auto_to_json(const void *value, size_t len, char *out, size_t cap) {
    if (aimdb_json_valid(value, len)) return copy_text(value, len, out, cap);
    return text_to_json(value, len, out, cap);
}

/* ---------------------------------------------------------- from JSON */

static long copy_bytes(const char *json, size_t len, void *out, size_t cap) {
    sink s = sink_bytes(out, cap);
    sink_write(&s, json, len);
    return (long)s.len;
}

/* Results of the shape readers below besides a length. */
enum { OTHER_SHAPE = -1, NO_MEMORY = -2 };

/* Decode the JSON string [start, end) into a fresh buffer (the caller frees
 * it); *n gets its length.  A decoded string is never longer than its JSON
 * form, so end - start bytes are enough. */
static char *decode_string(const char *start, const char *end, size_t *n) {
    char *text = malloc((size_t)(end - start));
    if (!text) return NULL;
    sink t = sink_bytes(text, (size_t)(end - start));
    json_read_string(start, end, &t);
    *n = t.len;
    return text;
}

/* The content of a JSON string into out, OTHER_SHAPE if json is not one. */
static long string_content(const char *json, size_t len, void *out, size_t cap) {
    const char *start, *end;
    if (!json_whole_string(json, len, &start, &end)) return OTHER_SHAPE;
    sink s = sink_bytes(out, cap);
    json_read_string(start, end, &s);
    return (long)s.len;
}

/*
 * The payload inside {"base64":"..."} into out, OTHER_SHAPE if json has
 * another shape or the base64 is invalid.  The whole payload is decoded into
 * scratch memory first because *is_utf8 (may be NULL) needs all of it even
 * when the caller only asks for the length; history reads are not a hot path.
 */
static long base64_content(const char *json, size_t len, void *out, size_t cap,
                           bool *is_utf8) {
    const char *start, *end;
    if (!json_single_member_string(json, len, "base64", &start, &end)) return OTHER_SHAPE;
    size_t n;
    char *text = decode_string(start, end, &n);
    size_t most = n / 4 * 3 + 1;
    char *bytes = text ? malloc(most) : NULL;
    long result = NO_MEMORY;
    if (bytes) {
        sink b = sink_bytes(bytes, most);
        result = OTHER_SHAPE;
        if (base64_decode(text, n, &b)) {
            if (is_utf8) *is_utf8 = aimdb_utf8_valid(bytes, b.len);
            result = copy_bytes(bytes, b.len, out, cap);
        }
    }
    free(bytes);
    free(text);
    return result;
}

static long binary_from_json(const char *json, size_t len, void *out, size_t cap) {
    long n = base64_content(json, len, out, cap, NULL);
    return n >= 0 ? n : -1;
}

static long text_from_json(const char *json, size_t len, void *out, size_t cap) {
    long n = string_content(json, len, out, cap);
    if (n == OTHER_SHAPE) n = base64_content(json, len, out, cap, NULL);
    return n >= 0 ? n : -1;
}

static long json_from_json(const char *json, size_t len, void *out, size_t cap) {
    if (!aimdb_json_valid(json, len)) return -1;
    return copy_bytes(json, len, out, cap);
}

/* See payload.h for why each shape decodes the way it does. */
static long auto_from_json(const char *json, size_t len, void *out, size_t cap) {
    if (!aimdb_json_valid(json, len)) return -1;
    const char *start, *end;
    if (json_whole_string(json, len, &start, &end)) {
        size_t n;
        char *content = decode_string(start, end, &n);
        if (!content) return -1;
        long r = aimdb_json_valid(content, n) ? copy_bytes(json, len, out, cap)
                                               : copy_bytes(content, n, out, cap);
        free(content);
        return r;
    }
    bool is_utf8 = true;
    long n = base64_content(json, len, out, cap, &is_utf8);
    if (n == NO_MEMORY) return -1;
    if (n >= 0 && !is_utf8) return n;
    return copy_bytes(json, len, out, cap);
}

/* ------------------------------------------------------------ formats */

/* Only json can fail to_json, so only json refuses bytes. */
const aimdb_codec aimdb_codec_mqtt_auto = {"mqtt-auto", 0, auto_to_json, auto_from_json, NULL};
const aimdb_codec aimdb_codec_mqtt_json = {"mqtt-json", 0, json_to_json, json_from_json,
                                           json_accepts};
const aimdb_codec aimdb_codec_mqtt_text = {"mqtt-text", 0, text_to_json, text_from_json, NULL};
const aimdb_codec aimdb_codec_mqtt_binary = {"mqtt-binary", 0, binary_to_json,
                                             binary_from_json, NULL};

static const struct {
    const char *name;
    const aimdb_codec *codec;
} formats[] = {
    [AIMDB_FORMAT_AUTO] = {"auto", &aimdb_codec_mqtt_auto},
    [AIMDB_FORMAT_JSON] = {"json", &aimdb_codec_mqtt_json},
    [AIMDB_FORMAT_TEXT] = {"text", &aimdb_codec_mqtt_text},
    [AIMDB_FORMAT_BINARY] = {"binary", &aimdb_codec_mqtt_binary},
};

static bool known(aimdb_payload_format f) {
    return (unsigned)f < sizeof(formats) / sizeof(formats[0]);
}

const aimdb_codec *aimdb_payload_codec(aimdb_payload_format format) {
    return known(format) ? formats[format].codec : NULL;
}

const char *aimdb_payload_format_name(aimdb_payload_format format) {
    return known(format) ? formats[format].name : "unknown";
}

int aimdb_payload_format_parse(const char *text, aimdb_payload_format *out) {
    for (unsigned f = 0; text && f < sizeof(formats) / sizeof(formats[0]); f++) {
        if (strcmp(text, formats[f].name) == 0) {
            *out = (aimdb_payload_format)f;
            return AIMDB_OK;
        }
    }
    return AIMDB_EINVAL;
}
