/*
 * name_index.h -- items in name order, for "every name with this prefix".
 *
 * A pattern (aimdb_pattern_match) can only match names that start with its
 * literal prefix, and in name order those are one range, found by binary
 * search.  The index is a sorted copy of an owner's insertion-order array
 * of items that are never removed or reordered; items the owner appended
 * since the last lookup are sorted and merged in by the next one, so
 * adding stays O(1) for the owner and a lookup costs O(log n), plus O(n)
 * once after items were added.  Not thread-safe: the owner serialises.
 */
#ifndef AIMDB_NAME_INDEX_H
#define AIMDB_NAME_INDEX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef const char *(*aimdb_name_of_fn)(const void *item);

typedef struct aimdb_name_index {
    void **sorted;   /* the first n_sorted items of the owner's array, by name (strcmp) */
    size_t n_sorted;
} aimdb_name_index;

/* Bring ix up to items[0..count) and find the items whose name starts
 * with prefix[0..len): sorted[*first .. *first + *n).  AIMDB_OK, or
 * AIMDB_ENOMEM (ix unchanged).  Zero-initialise ix. */
int aimdb_name_index_range(aimdb_name_index *ix, void *const *items, size_t count,
                           aimdb_name_of_fn name_of, const char *prefix, size_t len,
                           size_t *first, size_t *n);
void aimdb_name_index_free(aimdb_name_index *ix);

#ifdef __cplusplus
}
#endif
#endif
