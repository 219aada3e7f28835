/*
 * json.h -- strict JSON and UTF-8 recognition, and the JSON string writer,
 * one implementation for every layer (MQTT payload formats, history rows,
 * record attributes, AimX requests and replies).
 *
 * Why not cJSON: the product stores and serves JSON text verbatim (a payload
 * "as is" under format=auto, history values spliced into replies, request
 * ids echoed as written), which is only safe if the text is exactly JSON.
 * cJSON is lenient: it accepts "01", "1." and "+1", raw tabs and other
 * control characters inside strings, and invalid UTF-8; it cuts strings at
 * an escaped \u0000 and keeps no positions.  So:
 *
 *   "valid JSON"  is RFC 8259 exactly: no leading zeros, no "1.", no raw
 *                 control characters in strings, nothing after the value
 *                 (whitespace around it is allowed); strings are valid
 *                 UTF-8 and escapes are well formed with no unpaired
 *                 surrogate (RFC 7493).  An escaped \u0000 is valid (the
 *                 scan reports it); a raw NUL byte anywhere is not.
 *   "valid UTF-8" is RFC 3629: no overlong forms, no surrogates
 *                 (U+D800..U+DFFF), nothing above U+10FFFF.
 *
 * Strings are written with quote, backslash and control characters escaped
 * (\n, \t, ... where JSON has a short form, else \u00XX) and every other
 * byte as is.
 *
 * Everything here is pure libc: no allocation, no global state, so every
 * function is thread-safe and reads its input only within the given length
 * (no NUL terminator needed).
 */
#ifndef AIMDB_JSON_H
#define AIMDB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- UTF-8 */

/* Length (1..4) of the well-formed UTF-8 sequence at s, or 0 if there is
 * none within avail bytes (avail 0 gives 0).  Pure; reads s[0..avail). */
size_t aimdb_utf8_sequence_length(const void *s, size_t avail);

/* Is s[0..len) strict UTF-8?  NUL bytes are valid (U+0000); s may be NULL
 * when len is 0.  Pure, never fails. */
bool aimdb_utf8_valid(const void *s, size_t len);

/* -------------------------------------------------------------- JSON */

/* Arrays/objects nested deeper than this are invalid unless a scan asks for
 * another limit; recursion is bounded by it, so hostile input cannot
 * exhaust the stack. */
#define AIMDB_JSON_MAX_DEPTH 512

/* Is s[0..len) exactly one valid JSON value (see above), nested at most
 * AIMDB_JSON_MAX_DEPTH deep?  len 0 is invalid; s may be NULL then.  Pure. */
bool aimdb_json_valid(const void *s, size_t len);

typedef enum aimdb_json_status {
    AIMDB_JSON_OK,
    AIMDB_JSON_SYNTAX, /* not RFC 8259 JSON */
    AIMDB_JSON_UTF8,   /* a string holds bytes that are not UTF-8 */
    AIMDB_JSON_DEEP    /* more nested arrays/objects than allowed */
} aimdb_json_status;

typedef struct aimdb_json_scan_options {
    unsigned max_depth;   /* nesting limit; 0 = AIMDB_JSON_MAX_DEPTH */
    /* NULL, or an ASCII member name to locate in the root object (compared
     * after unescaping, so "\u0069d" is "id"). */
    const char *root_key;
} aimdb_json_scan_options;

typedef struct aimdb_json_scan_result {
    aimdb_json_status status;
    size_t error_at;      /* where the first problem is (a bad number: its first byte) */
    bool has_nul;         /* some string holds \u0000: valid, but C strings cut there */
    /* The raw text of the first root_key member's value, pointing into the
     * scanned text (NULL if none), and how many such members the root
     * object has.  Filled only as far as the scan got. */
    const char *root_value;
    size_t root_value_len;
    unsigned root_key_count;
} aimdb_json_scan_result;

/* Scan text[0..len) as one JSON value, stopping at the first problem; the
 * verdict and details go to *out (never NULL).  opts may be NULL
 * (defaults, no root key).  Pure; allocates nothing. */
void aimdb_json_scan(const void *text, size_t len, const aimdb_json_scan_options *opts,
                     aimdb_json_scan_result *out);

/* What is wrong with a text of this status, for messages ("not valid
 * UTF-8"); static storage. */
const char *aimdb_json_problem(aimdb_json_status status);

/* Decode the JSON string escape at s, just after its backslash, within
 * avail bytes: a one-letter escape or \uXXXX, a high surrogate together
 * with the \uXXXX low one that must follow it.  Returns the bytes read with
 * the code point in *cp, or 0 if the escape is not valid.  Pure. */
size_t aimdb_json_escape_decode(const void *s, size_t avail, uint32_t *cp);

/* Write text[0..len) (valid UTF-8; NUL bytes allowed) as a JSON string
 * literal, quotes included, into out[0..cap) without a terminating NUL.
 * Returns the literal's whole length, also when it did not fit (only cap
 * bytes are written), so a call with cap 0 (out may be NULL) sizes the
 * next.  Pure. */
size_t aimdb_json_string_write(const void *text, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
