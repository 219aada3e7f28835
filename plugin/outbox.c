/*
 * outbox.c -- the one way from aimdb's threads to the broker thread.
 *
 * Mosquitto may be called only on its own thread, but replies are computed
 * on query threads and log lines come from any thread.  They are queued
 * here and delivered on the broker thread, in order, when MOSQ_EVT_TICK
 * drains the queue.
 *
 * The queue is the lock-free list of aimdb/mpsc.h, not a mutex-guarded one:
 * the query threads that push replies run under SCHED_IDLE, and a mutex
 * they share with the broker thread made it wait for a preempted holder
 * (2 such waits in 16 s of request floods, perf sched).  The cost is a
 * push caught between its two steps: the drain can deliver neither it, nor
 * the item before it, nor any behind it, and must not wait for it; it
 * comes back for them through the wake-up's backup timer (wake.c),
 * BACKUP_MS later.
 *
 * An idle Mosquitto 2.0.11 ticks only every ~100 ms, so an item that must
 * go out at once (a reply) wakes the broker (wake.c).  One wake-up is
 * enough for any number of items queued before the drain, so only the
 * first urgent push after a drain signals.
 */
#include <stdlib.h>

#include "plugin.h"

void outbox_init(outbox *o) {
    aimdb_mpsc_init(&o->fifo);
    atomic_init(&o->depth, 0);
    atomic_init(&o->wake_pending, false);
}

/* Every access to wake_pending is an exchange, so they fall in one order.
 * The push comes before this one, and the drain's exchange before its pops:
 * if the drain's comes first, this push (or an urgent one between the two)
 * reads false and signals for the next drain; if this one comes first, the
 * drain synchronises with it, so the item is in the list the drain walks
 * (deliverable unless a push ahead of it is half-way: see the drain). */
void outbox_push(plugin *pl, outbox_item *item, bool urgent) {
    outbox *o = &pl->outbox;
    atomic_fetch_add(&o->depth, 1); /* before the push: depth never undercounts */
    aimdb_mpsc_push(&o->fifo, &item->node);
    bool signal_now = urgent && !atomic_exchange(&o->wake_pending, true);
    /* The broker thread drains right after the event it is handling. */
    if (signal_now && !on_broker_thread(pl)) wake_broker(&pl->wake);
}

/* Delivers at most the items counted in depth when the drain began, so a
 * stream of replies cannot keep the broker thread here; what it leaves is
 * delivered by the next drain, which an urgent push signals for (a log
 * line waits for the next tick).  Stopped by a push caught half-way, it
 * arms the backup timer to come back for what that push holds up. */
void outbox_drain(plugin *pl, bool broker_alive) {
    outbox *o = &pl->outbox;
    atomic_exchange(&o->wake_pending, false);
    bool stalled = false;
    for (size_t budget = atomic_load(&o->depth); budget > 0; budget--) {
        aimdb_mpsc_node *node = aimdb_mpsc_pop(&o->fifo);
        if (!node) {
            stalled = !aimdb_mpsc_is_empty(&o->fifo);
            break;
        }
        atomic_fetch_sub(&o->depth, 1);
        outbox_item *item = (outbox_item *)node;
        item->deliver(item, pl, broker_alive);
    }
    if (stalled) wake_broker_later(&pl->wake);
}

size_t outbox_depth(outbox *o) {
    return atomic_load(&o->depth);
}
