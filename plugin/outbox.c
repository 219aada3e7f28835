/*
 * outbox.c -- the one way from aimdb's threads to the broker thread.
 *
 * Mosquitto may be called only on its own thread, but replies are computed
 * on query threads and log lines come from any thread.  They are queued
 * here (a mutex-guarded FIFO: pushes are rare and short, so a lock is
 * simpler than lock-free and never contended for long) and delivered on
 * the broker thread, in order, when MOSQ_EVT_TICK drains the queue.
 *
 * An idle Mosquitto 2.0.11 ticks only every ~100 ms, so an item that must
 * go out at once (a reply) wakes the broker (wake.c).  One wake-up is
 * enough for any number of items queued before the drain, so only the
 * first push after a drain signals.
 */
#include <stdlib.h>

#include "plugin.h"

void outbox_init(outbox *o) {
    pthread_mutex_init(&o->lock, NULL);
    o->head = NULL;
    o->tail = &o->head;
    o->depth = 0;
    o->wake_pending = false;
}

void outbox_destroy(outbox *o) {
    pthread_mutex_destroy(&o->lock);
}

void outbox_push(plugin *pl, outbox_item *item, bool urgent) {
    outbox *o = &pl->outbox;
    item->next = NULL;
    pthread_mutex_lock(&o->lock);
    *o->tail = item;
    o->tail = &item->next;
    o->depth++;
    bool signal_now = urgent && !o->wake_pending;
    if (signal_now) o->wake_pending = true;
    pthread_mutex_unlock(&o->lock);
    /* The broker thread drains right after the event it is handling. */
    if (signal_now && !on_broker_thread(pl)) wake_broker(&pl->wake);
}

void outbox_drain(plugin *pl, bool broker_alive) {
    outbox *o = &pl->outbox;
    pthread_mutex_lock(&o->lock);
    outbox_item *item = o->head;
    o->head = NULL;
    o->tail = &o->head;
    o->depth = 0;
    o->wake_pending = false;
    pthread_mutex_unlock(&o->lock);
    while (item) {
        outbox_item *next = item->next;
        item->deliver(item, pl, broker_alive);
        item = next;
    }
}

size_t outbox_depth(outbox *o) {
    pthread_mutex_lock(&o->lock);
    size_t n = o->depth;
    pthread_mutex_unlock(&o->lock);
    return n;
}
