/*
 * catalog.c -- every record name the plugin knows, by name.
 *
 * Ingest looks a routed name up here on every message, so this is a hash
 * table (open addressing, FNV-1a, at most half full) rather than a walk of
 * the database's records; it also keeps what the database does not: where
 * each record's values come from (for ACLs) and names that exist only in
 * history.  Broker thread only.  Entries are allocated one by one and
 * never freed before catalog_free, so a pointer to an entry or its name
 * stays valid for the plugin's whole life (acl.c relies on it).
 *
 * A request for a pattern needs the names it can match, and every name a
 * pattern matches starts with its literal prefix (the part before the
 * first '*').  So the catalog also keeps its entries sorted by name, and
 * the names with a prefix are one range found by binary search.  Names are
 * never removed, so the sorted array only grows; names added since the
 * last range lookup wait in insertion order (order[n_sorted..count)) and
 * are sorted and merged in by the next lookup: ingest, which adds names,
 * never pays for the order, and a request pays O(names) only after new
 * names arrived.
 */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

struct catalog {
    catalog_entry **slots; /* hash table; NULL = empty */
    size_t n_slots;        /* power of two */
    catalog_entry **order; /* insertion order, for iteration */
    size_t count, order_cap;
    catalog_entry **sorted; /* order[0..n_sorted), by name (strcmp) */
    size_t n_sorted;
};

uint64_t catalog_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

catalog *catalog_new(void) {
    catalog *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->n_slots = 64;
    c->slots = calloc(c->n_slots, sizeof(*c->slots));
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

void catalog_free(catalog *c) {
    if (!c) return;
    for (size_t i = 0; i < c->count; i++) {
        aimdb_sources_free(&c->order[i]->sources);
        aimdb_sources_free(&c->order[i]->topics);
        free(c->order[i]->name);
        free(c->order[i]);
    }
    free(c->order);
    free(c->sorted);
    free(c->slots);
    free(c);
}

static catalog_entry **slot_for(catalog_entry **slots, size_t n_slots, const char *name) {
    size_t i = (size_t)catalog_hash(name) & (n_slots - 1);
    while (slots[i] && strcmp(slots[i]->name, name) != 0) i = (i + 1) & (n_slots - 1);
    return &slots[i];
}

catalog_entry *catalog_find(catalog *c, const char *name) {
    return *slot_for(c->slots, c->n_slots, name);
}

static bool grow(catalog *c) {
    if (c->count == c->order_cap) {
        size_t cap = c->order_cap ? c->order_cap * 2 : 64;
        catalog_entry **order = realloc(c->order, cap * sizeof(*order));
        if (!order) return false;
        c->order = order;
        c->order_cap = cap;
    }
    if ((c->count + 1) * 2 <= c->n_slots) return true;
    size_t n_slots = c->n_slots * 2;
    catalog_entry **slots = calloc(n_slots, sizeof(*slots));
    if (!slots) return false;
    for (size_t i = 0; i < c->count; i++)
        *slot_for(slots, n_slots, c->order[i]->name) = c->order[i];
    free(c->slots);
    c->slots = slots;
    c->n_slots = n_slots;
    return true;
}

catalog_entry *catalog_add(catalog *c, const char *name, aimdb_sources *sources) {
    catalog_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(name)) || !grow(c)) {
        if (e) free(e->name);
        free(e);
        return NULL;
    }
    e->sources = *sources;
    memset(sources, 0, sizeof(*sources));
    *slot_for(c->slots, c->n_slots, name) = e;
    c->order[c->count++] = e;
    return e;
}

size_t catalog_count(const catalog *c) {
    return c->count;
}

catalog_entry *catalog_at(catalog *c, size_t i) {
    return i < c->count ? c->order[i] : NULL;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(catalog_entry *const *)a)->name, (*(catalog_entry *const *)b)->name);
}

/* Sort the names added since the last lookup and merge them in. */
static bool merge_new_names(catalog *c) {
    size_t n_new = c->count - c->n_sorted;
    if (n_new == 0) return true;
    catalog_entry **merged = malloc(c->count * sizeof(*merged));
    catalog_entry **fresh = malloc(n_new * sizeof(*fresh));
    if (!merged || !fresh) {
        free(merged);
        free(fresh);
        return false;
    }
    memcpy(fresh, c->order + c->n_sorted, n_new * sizeof(*fresh));
    qsort(fresh, n_new, sizeof(*fresh), by_name);
    size_t i = 0, j = 0, k = 0;
    while (i < c->n_sorted && j < n_new)
        merged[k++] = strcmp(c->sorted[i]->name, fresh[j]->name) < 0 ? c->sorted[i++] : fresh[j++];
    while (i < c->n_sorted) merged[k++] = c->sorted[i++];
    while (j < n_new) merged[k++] = fresh[j++];
    free(fresh);
    free(c->sorted);
    c->sorted = merged;
    c->n_sorted = c->count;
    return true;
}

/* First position in sorted whose name, cut to len bytes, compares above
 * prefix (above_too) or at least equal to it (!above_too).  Cutting keeps
 * the order, so both are boundaries of one range. */
static size_t bound(const catalog *c, const char *prefix, size_t len, bool above_too) {
    size_t lo = 0, hi = c->n_sorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strncmp(c->sorted[mid]->name, prefix, len);
        if (cmp < 0 || (above_too && cmp == 0)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

bool catalog_prefix_range(catalog *c, const char *prefix, size_t len, size_t *first,
                          size_t *n) {
    if (!merge_new_names(c)) return false;
    *first = bound(c, prefix, len, false);
    *n = bound(c, prefix, len, true) - *first;
    return true;
}

catalog_entry *catalog_sorted_at(const catalog *c, size_t i) {
    return i < c->n_sorted ? c->sorted[i] : NULL;
}
