/*
 * catalog.c -- every record name the plugin knows, by name.
 *
 * Ingest looks a routed name up here on every message, so this is a hash
 * table (open addressing, FNV-1a, at most half full) rather than a walk of
 * the database's records.  A slot keeps its entry's hash, so a probe past
 * other names reads only the table, and an entry holds its name in the same
 * allocation: with 1,000 records the cache misses of a lookup (slot, entry,
 * name) were ~4% of the broker thread's time per message.  The catalog also
 * keeps what the database does not: where each record's values come from
 * (for ACLs) and names that exist only in history.  Broker thread only.  Entries are allocated one by one and
 * never freed before catalog_free, so a pointer to an entry or its name
 * stays valid for the plugin's whole life (acl.c relies on it).
 *
 * A request for a pattern needs the names it can match, and every name a
 * pattern matches starts with its literal prefix (the part before the
 * first '*').  So the catalog also keeps its entries in name order
 * (aimdb/name_index.h), where the names with a prefix are one range found
 * by binary search; ingest, which adds names, never pays for the order,
 * and a request pays O(names) only after new names arrived.
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/hash.h"
#include "aimdb/name_index.h"
#include "plugin.h"

typedef struct catalog_slot {
    uint64_t hash;
    catalog_entry *entry; /* NULL = empty */
} catalog_slot;

struct catalog {
    catalog_slot *slots;   /* hash table */
    size_t n_slots;        /* power of two */
    catalog_entry **order; /* insertion order, for iteration */
    size_t count, order_cap;
    aimdb_name_index by_name; /* over order */
};

uint64_t catalog_hash(const char *s) { return aimdb_hash(AIMDB_HASH_SEED, s, strlen(s)); }

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
        free(c->order[i]); /* and its name */
    }
    free(c->order);
    aimdb_name_index_free(&c->by_name);
    free(c->slots);
    free(c);
}

static catalog_slot *slot_for(catalog_slot *slots, size_t n_slots, uint64_t hash,
                              const char *name) {
    size_t i = (size_t)hash & (n_slots - 1);
    while (slots[i].entry && (slots[i].hash != hash || strcmp(slots[i].entry->name, name) != 0))
        i = (i + 1) & (n_slots - 1);
    return &slots[i];
}

catalog_entry *catalog_find(catalog *c, const char *name) {
    return slot_for(c->slots, c->n_slots, catalog_hash(name), name)->entry;
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
    catalog_slot *slots = calloc(n_slots, sizeof(*slots));
    if (!slots) return false;
    for (size_t i = 0; i < c->count; i++) {
        uint64_t hash = catalog_hash(c->order[i]->name);
        *slot_for(slots, n_slots, hash, c->order[i]->name) =
            (catalog_slot){hash, c->order[i]};
    }
    free(c->slots);
    c->slots = slots;
    c->n_slots = n_slots;
    return true;
}

catalog_entry *catalog_add(catalog *c, const char *name, aimdb_sources *sources) {
    size_t len = strlen(name);
    catalog_entry *e = calloc(1, sizeof(*e) + len + 1);
    if (!e || !grow(c)) {
        free(e);
        return NULL;
    }
    e->name = memcpy((char *)(e + 1), name, len + 1);
    e->sources = *sources;
    memset(sources, 0, sizeof(*sources));
    uint64_t hash = catalog_hash(name);
    *slot_for(c->slots, c->n_slots, hash, name) = (catalog_slot){hash, e};
    c->order[c->count++] = e;
    return e;
}

size_t catalog_count(const catalog *c) {
    return c->count;
}

catalog_entry *catalog_at(catalog *c, size_t i) {
    return i < c->count ? c->order[i] : NULL;
}

static const char *entry_name(const void *e) {
    return ((const catalog_entry *)e)->name;
}

bool catalog_prefix_range(catalog *c, const char *prefix, size_t len, size_t *first,
                          size_t *n) {
    return aimdb_name_index_range(&c->by_name, (void *const *)c->order, c->count, entry_name,
                                  prefix, len, first, n) == AIMDB_OK;
}

catalog_entry *catalog_sorted_at(const catalog *c, size_t i) {
    return i < c->by_name.n_sorted ? c->by_name.sorted[i] : NULL;
}
