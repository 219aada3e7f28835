/*
 * payload.h -- MQTT payloads as record values: the four storage formats.
 *
 * A record fed from MQTT holds the raw payload bytes, exactly as the device
 * sent them.  Its codec decides how those bytes look as JSON (history,
 * record.get) and how JSON turns back into the bytes (typed history):
 *
 *   auto    valid JSON is stored as is; other valid UTF-8 becomes a JSON
 *           string; anything else {"base64":"..."}.  An empty payload is the
 *           JSON string "".  Nothing a device sends is lost.
 *   json    valid JSON as is; anything else has no JSON form (to_json -1)
 *           and is no value of the record (accepts false): aimdb_produce
 *           refuses it (AIMDB_EFORMAT), so neither history nor record.get
 *           ever sees it.
 *   text    a JSON string if the payload is valid UTF-8, else base64.
 *   binary  always {"base64":"..."}.
 *
 * "Valid JSON" and "valid UTF-8" are the strict checks of json.h
 * (aimdb_json_valid, aimdb_utf8_valid): RFC 8259 with UTF-8 strings and no
 * unpaired surrogate escapes, whitespace around the value allowed and kept;
 * RFC 3629 without overlongs or surrogates.  Base64 is RFC 4648 with padding.
 *
 * from_json is the inverse of to_json: from_json(to_json(p)) == p for every
 * payload of the json, text and binary formats.  Under auto two payloads can
 * share a JSON form, and from_json picks the likelier sender:
 *   - a JSON string whose content is not itself JSON decodes to that content
 *     (a device that sent the 4 bytes "ON" with quotes gets ON back);
 *   - {"base64":B} decodes to B's bytes only if those bytes are not valid
 *     UTF-8 (otherwise the device must have sent that very JSON object);
 *   - any other JSON decodes to its own text.
 * All codecs are pure and thread-safe.
 */
#ifndef AIMDB_PAYLOAD_H
#define AIMDB_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "aimdb/aimdb.h"
#include "aimdb/json.h" /* the validity rules above; users of payloads test with them */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aimdb_payload_format {
    AIMDB_FORMAT_AUTO = 0, /* the default */
    AIMDB_FORMAT_JSON,
    AIMDB_FORMAT_TEXT,
    AIMDB_FORMAT_BINARY
} aimdb_payload_format;

/* One const codec per format (codecs compare by every field, so use these
 * objects, never copies).  Names: "mqtt-auto", "mqtt-json", "mqtt-text",
 * "mqtt-binary"; all variable length (size 0). */
extern const aimdb_codec aimdb_codec_mqtt_auto;
extern const aimdb_codec aimdb_codec_mqtt_json;
extern const aimdb_codec aimdb_codec_mqtt_text;
extern const aimdb_codec aimdb_codec_mqtt_binary;

/* The codec for a format (static storage); NULL for an out-of-range value. */
const aimdb_codec *aimdb_payload_codec(aimdb_payload_format format);

/* Parse "auto" | "json" | "text" | "binary".  AIMDB_OK or AIMDB_EINVAL. */
int aimdb_payload_format_parse(const char *text, aimdb_payload_format *out);
/* The keyword for a format ("auto", ...); "unknown" if out of range. */
const char *aimdb_payload_format_name(aimdb_payload_format format);

#ifdef __cplusplus
}
#endif
#endif
