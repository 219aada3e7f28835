/*
 * hash.h -- FNV-1a, the one non-cryptographic hash of the code base.
 *
 * Every user hashes short keys that no adversary chooses to collide with
 * anything that matters (record names from the operator's rules, a
 * message's topic and payload to recognise the broker sending it again), so
 * a tiny, well-known hash beats a keyed one.  Chain calls to hash several
 * pieces as one: aimdb_hash(aimdb_hash(AIMDB_HASH_SEED, a, n), b, m).
 */
#ifndef AIMDB_HASH_H
#define AIMDB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define AIMDB_HASH_SEED 14695981039346656037ull /* FNV-1a's 64-bit offset basis */

/* h extended by the n bytes at p.  Pure; any thread. */
static inline uint64_t aimdb_hash(uint64_t h, const void *p, size_t n) {
    for (const unsigned char *b = p, *end = b + n; b < end; b++) h = (h ^ *b) * 1099511628211ull;
    return h;
}

#endif
