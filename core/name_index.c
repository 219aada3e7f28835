/*
 * name_index.c -- items in name order for prefix lookups (name_index.h).
 *
 * qsort's comparator cannot be handed the name accessor, so new items are
 * merge-sorted here (a scratch array as large as they are), then merged
 * with the sorted run in one linear pass.
 */
#include <stdlib.h>
#include <string.h>

#include "aimdb/aimdb.h"
#include "aimdb/name_index.h"

static void merge(void **out, void *const *a, size_t na, void *const *b, size_t nb,
                  aimdb_name_of_fn name_of) {
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) out[k++] = strcmp(name_of(a[i]), name_of(b[j])) <= 0 ? a[i++] : b[j++];
    while (i < na) out[k++] = a[i++];
    while (j < nb) out[k++] = b[j++];
}

/* Sort v[0..n) by name, using tmp[0..n) as scratch. */
static void sort_by_name(void **v, void **tmp, size_t n, aimdb_name_of_fn name_of) {
    if (n < 2) return;
    size_t half = n / 2;
    sort_by_name(v, tmp, half, name_of);
    sort_by_name(v + half, tmp, n - half, name_of);
    merge(tmp, v, half, v + half, n - half, name_of);
    memcpy(v, tmp, n * sizeof(*v));
}

static int catch_up(aimdb_name_index *ix, void *const *items, size_t count,
                    aimdb_name_of_fn name_of) {
    size_t n_new = count - ix->n_sorted;
    if (n_new == 0) return AIMDB_OK;
    void **merged = malloc(count * sizeof(*merged));
    void **fresh = malloc(2 * n_new * sizeof(*fresh));
    if (!merged || !fresh) {
        free(merged);
        free(fresh);
        return AIMDB_ENOMEM;
    }
    memcpy(fresh, items + ix->n_sorted, n_new * sizeof(*fresh));
    sort_by_name(fresh, fresh + n_new, n_new, name_of);
    merge(merged, ix->sorted, ix->n_sorted, fresh, n_new, name_of);
    free(fresh);
    free(ix->sorted);
    ix->sorted = merged;
    ix->n_sorted = count;
    return AIMDB_OK;
}

/* First position whose name, cut to len bytes, compares above prefix
 * (above_too) or at least equal to it.  Cutting keeps the order, so both
 * are boundaries of one range. */
static size_t bound(const aimdb_name_index *ix, aimdb_name_of_fn name_of, const char *prefix,
                    size_t len, int above_too) {
    size_t lo = 0, hi = ix->n_sorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strncmp(name_of(ix->sorted[mid]), prefix, len);
        if (cmp < 0 || (above_too && cmp == 0)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int aimdb_name_index_range(aimdb_name_index *ix, void *const *items, size_t count,
                           aimdb_name_of_fn name_of, const char *prefix, size_t len,
                           size_t *first, size_t *n) {
    int rc = catch_up(ix, items, count, name_of);
    if (rc != AIMDB_OK) return rc;
    *first = bound(ix, name_of, prefix, len, 0);
    *n = bound(ix, name_of, prefix, len, 1) - *first;
    return AIMDB_OK;
}

void aimdb_name_index_free(aimdb_name_index *ix) {
    free(ix->sorted);
    ix->sorted = NULL;
    ix->n_sorted = 0;
}
