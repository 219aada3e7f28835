/*
 * access.h -- who may see which values: the access predicate every reader
 * of values (live buffers, history, the request handler) applies the same way.
 *
 * Access is decided per value, by the value's source: the name of where it
 * came from (in the plugin and the bridge, the MQTT topic it was published
 * on).  Two sources can feed one record -- a template that reads one name
 * from two topics, or two rules producing the same name -- so a record as a
 * whole is only a shortcut: most records are visible or hidden entirely,
 * and only a record some of whose sources are hidden costs a decision per
 * value.  The transport builds the predicate (it knows the client and the
 * broker's ACLs); the layers here only call it.
 */
#ifndef AIMDB_ACCESS_H
#define AIMDB_ACCESS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aimdb_visibility {
    AIMDB_SEE_NONE,      /* no value of the record */
    AIMDB_SEE_ALL,       /* every value of the record */
    AIMDB_SEE_BY_SOURCE  /* ask value() for each value */
} aimdb_visibility;

/*
 * Both functions may run on any of aimdb's threads (a query thread, the
 * caller's) and must only read state that stays valid until the request
 * that carries them has been answered.  record() may be asked about names
 * that are not records (record.get of an unknown name).
 */
typedef struct aimdb_access {
    aimdb_visibility (*record)(const char *record, void *ctx);
    /* One value of a SEE_BY_SOURCE record; source NULL: not known (a
     * history row written by another tool or before sources were kept). */
    bool (*value)(const char *record, const char *source, void *ctx);
    void *ctx;
    /* Optional: when names is not NULL, record() answers SEE_NONE for every
     * name but these n_names, listed in ascending strcmp order.  A reader
     * may then visit only them instead of enumerating the names it holds,
     * so what it costs does not grow with the names the client may not
     * see (nor tell the client how many there are). */
    const char *const *names;
    size_t n_names;
} aimdb_access;

/* NULL access means every value is visible. */
static inline aimdb_visibility aimdb_access_record(const aimdb_access *a, const char *record) {
    return a ? a->record(record, a->ctx) : AIMDB_SEE_ALL;
}

static inline bool aimdb_access_value(const aimdb_access *a, aimdb_visibility seen,
                                      const char *record, const char *source) {
    return seen == AIMDB_SEE_ALL || (seen == AIMDB_SEE_BY_SOURCE && a->value(record, source, a->ctx));
}

#ifdef __cplusplus
}
#endif
#endif
