/*
 * mpsc.c -- the lock-free multi-producer FIFO (mpsc.h says why and what).
 *
 * A push swings `last` to its node first and links the previous last to it
 * second; the exchange orders producers, the link publishes the node to the
 * consumer (release, paired with the consumer's acquire loads).  The
 * consumer walks from `first`; it re-inserts the stub behind the last real
 * node so that popping that node never leaves `last` dangling.
 */
#include "aimdb/mpsc.h"

#include <stdatomic.h>
#include <stddef.h>

void aimdb_mpsc_init(aimdb_mpsc *q) {
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->last, &q->stub);
    q->first = &q->stub;
}

void aimdb_mpsc_push(aimdb_mpsc *q, aimdb_mpsc_node *n) {
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    aimdb_mpsc_node *prev = atomic_exchange_explicit(&q->last, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

aimdb_mpsc_node *aimdb_mpsc_pop(aimdb_mpsc *q) {
    aimdb_mpsc_node *first = q->first;
    aimdb_mpsc_node *next = atomic_load_explicit(&first->next, memory_order_acquire);
    if (first == &q->stub) {
        if (!next) return NULL;
        q->first = first = next;
        next = atomic_load_explicit(&first->next, memory_order_acquire);
    }
    if (!next) {
        if (first != atomic_load_explicit(&q->last, memory_order_acquire)) return NULL;
        aimdb_mpsc_push(q, &q->stub); /* first is the last node: the stub goes behind it */
        next = atomic_load_explicit(&first->next, memory_order_acquire);
        if (!next) return NULL;
    }
    q->first = next;
    return first;
}

/* After a NULL pop, `first` is short of `last` when some push has swung
 * `last` and not linked yet, or when a push completed after pop looked
 * (harmless: the caller just looks again); an empty list has both on the
 * stub. */
bool aimdb_mpsc_is_empty(aimdb_mpsc *q) {
    return q->first == atomic_load_explicit(&q->last, memory_order_acquire);
}
