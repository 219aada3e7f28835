/*
 * status.c -- names for aimdb_status codes, and the one writer of the
 * reason every "char *err, size_t errlen" pair of the product receives.
 */
#include <stdarg.h>
#include <stdio.h>

#include "aimdb/aimdb.h"

const char *aimdb_strerror(int status) {
    switch (status) {
    case AIMDB_OK: return "ok";
    case AIMDB_LAGGED: return "reader lagged";
    case AIMDB_EINVAL: return "invalid argument";
    case AIMDB_EEXIST: return "already registered differently";
    case AIMDB_ENOMEM: return "out of memory";
    case AIMDB_ENOTFOUND: return "not found";
    case AIMDB_EAGAIN: return "nothing available";
    case AIMDB_ETIMEDOUT: return "timed out";
    case AIMDB_ESTOPPED: return "database stopped";
    case AIMDB_ETOOBIG: return "too large";
    case AIMDB_ESTATE: return "not allowed in this state";
    case AIMDB_EIO: return "I/O error";
    case AIMDB_EFULL: return "too many records (max_records)";
    case AIMDB_EBUSY: return "queue full (its consumer is behind)";
    case AIMDB_EFORMAT: return "not a value of the record's format";
    default: return "unknown error";
    }
}

void aimdb_errorf(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
