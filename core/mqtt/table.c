/*
 * table.c -- the hash table behind O(1) routing of exact topics.
 *
 * Linear probing over a power-of-two array kept at most half full, with the
 * full hash stored per slot so a probe compares bytes only on a real
 * candidate.  Topics come from untrusted clients, but only the rules from
 * aimdb.conf are ever inserted: a client can choose what to look up, never
 * how the keys cluster, so a fast non-keyed hash is safe here.
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/aimdb.h"
#include "mqtt_internal.h"

/* 8 bytes per step, multiply-xorshift mixing (in the spirit of wyhash and
 * Murmur's finaliser): a few ns for a typical 20-60 byte topic. */
uint64_t table_hash(const char *key, size_t len) {
    const uint64_t k = 0x9E3779B97F4A7C15ull;
    uint64_t h = len * k;
    for (; len >= 8; key += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, key, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    if (len > 0) memcpy(&tail, key, len);
    h = (h ^ tail) * k;
    h ^= h >> 32;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

static table_slot *find_slot(const table *t, const char *key, size_t len, uint64_t hash) {
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        table_slot *s = &t->slots[i];
        if (!s->key) return s;
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static int grow(table *t) {
    size_t cap = t->slots ? (t->mask + 1) * 2 : 16;
    table_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots) return AIMDB_ENOMEM;
    table bigger = {slots, cap - 1, t->used};
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        const table_slot *s = &t->slots[i];
        if (s->key) *find_slot(&bigger, s->key, s->len, s->hash) = *s;
    }
    free(t->slots);
    *t = bigger;
    return AIMDB_OK;
}

int table_put(table *t, const char *key, size_t len, uint32_t value) {
    if ((!t->slots || (t->used + 1) * 2 > t->mask + 1) && grow(t) != AIMDB_OK)
        return AIMDB_ENOMEM;
    uint64_t hash = table_hash(key, len);
    table_slot *s = find_slot(t, key, len, hash);
    if (s->key) return AIMDB_EEXIST;
    *s = (table_slot){key, len, hash, value};
    t->used++;
    return AIMDB_OK;
}

bool table_get(const table *t, const char *key, size_t len, uint32_t *value) {
    if (!t->slots) return false;
    const table_slot *s = find_slot(t, key, len, table_hash(key, len));
    if (!s->key) return false;
    *value = s->value;
    return true;
}

void table_free(table *t) {
    free(t->slots);
    *t = (table){0};
}
