/*
 * reply.c -- the reply payloads of docs/protocol.md and the error messages in
 * them.
 *
 * Every reply is one malloc'd, NUL-terminated buffer that the transport
 * free()s.  cJSON prints with whatever allocator its global hooks name, and
 * the broker shares cJSON in-process, so printed text is copied into our own
 * malloc'd buffer instead of touching the hooks.  Results that are already
 * JSON text (history rows, codec output) are spliced in as they are: a
 * multi-megabyte history answer is copied once, never parsed and reprinted.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimx_internal.h"

const char *aimx_code_name(aimx_code code) {
    static const char *const names[] = {
        [AIMX_PARSE_ERROR] = "parse_error",
        [AIMX_INVALID_REQUEST] = "invalid_request",
        [AIMX_METHOD_NOT_FOUND] = "method_not_found",
        [AIMX_INVALID_PARAMS] = "invalid_params",
        [AIMX_NOT_FOUND] = "not_found",
        [AIMX_NOT_CONFIGURED] = "not_configured",
        [AIMX_PERMISSION_DENIED] = "permission_denied",
        [AIMX_QUERY_ERROR] = "query_error",
        [AIMX_INTERNAL_ERROR] = "internal_error",
        [AIMX_BUSY] = "busy",
    };
    return names[code];
}

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8
 * sequence: text cut by a buffer must stay valid UTF-8 in the reply. */
static size_t utf8_cut(const char *s, size_t n) {
    size_t start = n;
    while (start > 0 && ((unsigned char)s[start - 1] & 0xC0) == 0x80) start--;
    if (start == 0) return n; /* no lead byte: nothing multi-byte to protect */
    unsigned char lead = (unsigned char)s[start - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n - (start - 1) >= need ? n : start - 1;
}

bool aimx_fail(aimx_error *err, aimx_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(err->message))
        err->message[utf8_cut(err->message, sizeof(err->message) - 1)] = '\0';
    err->code = code;
    return false;
}

aimx_preview aimx_preview_of(const char *s) {
    enum { KEEP = 48 };
    aimx_preview p;
    size_t n = strlen(s);
    if (n <= KEEP) {
        memcpy(p.text, s, n + 1);
    } else {
        n = utf8_cut(s, KEEP);
        memcpy(p.text, s, n);
        memcpy(p.text + n, "...", 4);
    }
    return p;
}

/* Print a tree into a buffer we allocated ourselves (see the top). */
static char *print_owned(const cJSON *root, size_t *len) {
    char *printed = cJSON_PrintUnformatted(root);
    if (!printed) return NULL;
    size_t n = strlen(printed);
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, printed, n + 1);
        *len = n;
    }
    cJSON_free(printed);
    return out;
}

/* {"id": <id>} with id raw JSON text (already validated), NULL = null. */
static cJSON *envelope(const char *id) {
    cJSON *root = cJSON_CreateObject();
    cJSON *item = id ? cJSON_CreateRaw(id) : cJSON_CreateNull();
    if (!root || !item || !cJSON_AddItemToObject(root, "id", item)) {
        cJSON_Delete(root);
        cJSON_Delete(item);
        return NULL;
    }
    return root;
}

char *aimx_reply_error(const char *id, const aimx_error *err, size_t *len) {
    cJSON *root = envelope(id);
    cJSON *error = cJSON_AddObjectToObject(root, "error");
    char *out = NULL;
    if (cJSON_AddStringToObject(error, "code", aimx_code_name(err->code)) &&
        cJSON_AddStringToObject(error, "message", err->message))
        out = print_owned(root, len);
    cJSON_Delete(root);
    return out;
}

char *aimx_reply_tree(const char *id, cJSON *result, size_t max_bytes, size_t *too_big,
                      size_t *len) {
    *too_big = 0;
    cJSON *root = envelope(id);
    if (!root || !result || !cJSON_AddItemToObject(root, "result", result)) {
        cJSON_Delete(root);
        cJSON_Delete(result);
        return NULL;
    }
    char *out = print_owned(root, len);
    cJSON_Delete(root);
    if (out && max_bytes && *len > max_bytes) {
        *too_big = *len;
        free(out);
        return NULL;
    }
    return out;
}

size_t aimx_pieces_len(const aimx_piece *pieces, size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += pieces[i].len;
    return total;
}

char *aimx_reply_concat(const aimx_piece *pieces, size_t n, size_t *len) {
    size_t total = aimx_pieces_len(pieces, n);
    char *out = malloc(total + 1);
    if (!out) return NULL;
    char *w = out;
    for (size_t i = 0; i < n; i++) {
        memcpy(w, pieces[i].text, pieces[i].len);
        w += pieces[i].len;
    }
    *w = '\0';
    *len = total;
    return out;
}
