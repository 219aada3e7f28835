/*
 * mpsc.h -- a FIFO any number of threads push to without a lock and one
 * consumer at a time pops from (Dmitry Vyukov's intrusive MPSC list).
 *
 * It exists for the hand-overs between the broker thread and aimdb's
 * idle-priority threads.  A mutex shared with a thread that runs under
 * SCHED_IDLE is a priority inversion: when the holder is preempted, the
 * broker thread waits for a thread the kernel runs last.  A push here is
 * one atomic exchange and one store and never waits for anyone.
 *
 * The price is one state a mutex would hide: between a push's exchange and
 * its store the node is in the list but not reachable, and so is every
 * node pushed after it; the node before it cannot be popped either, since
 * popping a node needs its successor's link.  aimdb_mpsc_pop then returns
 * NULL although the list is not empty; aimdb_mpsc_is_empty tells the two apart, and the consumer
 * decides whether to wait (a few instructions of a running thread) or come
 * back later (the broker thread, which must not wait).
 *
 * Nodes are embedded in the caller's items (first member, or found with an
 * offset); the list never allocates and owns nothing.
 */
#ifndef AIMDB_MPSC_H
#define AIMDB_MPSC_H

#include <stdbool.h>

typedef struct aimdb_mpsc_node {
    struct aimdb_mpsc_node *_Atomic next;
} aimdb_mpsc_node;

/* Invariant: `first` reaches every pushed node not yet popped through
 * `next` links, up to `last`, the newest; `stub` stands in for a node
 * whenever the list would otherwise be empty, so `last` is never NULL. */
typedef struct aimdb_mpsc {
    aimdb_mpsc_node *_Atomic last; /* producers' end */
    aimdb_mpsc_node *first;        /* consumer's end, the consumer's alone */
    aimdb_mpsc_node stub;
} aimdb_mpsc;

/* An empty list.  Before any other call; nothing to destroy. */
void aimdb_mpsc_init(aimdb_mpsc *q);

/* Append n (any thread, never blocks).  n belongs to the list until popped. */
void aimdb_mpsc_push(aimdb_mpsc *q, aimdb_mpsc_node *n);

/* The oldest node, or NULL: empty, or a push is still between its two
 * steps -- the oldest node's own, or the one right behind it.  One consumer
 * at a time (the caller's lock or thread). */
aimdb_mpsc_node *aimdb_mpsc_pop(aimdb_mpsc *q);

/* After a NULL pop: true if nothing was pushed and not popped (a push
 * racing this call may make it stale at once).  The consumer's call. */
bool aimdb_mpsc_is_empty(aimdb_mpsc *q);

#endif
