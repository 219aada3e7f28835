/*
 * test_mpsc.c -- the lock-free FIFO of mpsc.h: one thread's pushes come out
 * in order; four threads pushing while the consumer pops lose nothing and
 * repeat nothing, each producer's nodes in its own order; and a push caught
 * between its two steps holds back the node before it and all after it,
 * and reads as "not empty" rather than as the end, however often the
 * consumer looks, on an empty list too.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "aimdb/mpsc.h"

#define PRODUCERS 4
#define PER_PRODUCER 50000

typedef struct item {
    aimdb_mpsc_node node; /* first: popped nodes are items */
    unsigned producer, seq;
} item;

static void test_one_thread_fifo_order(void **state) {
    (void)state;
    aimdb_mpsc q;
    aimdb_mpsc_init(&q);
    assert_null(aimdb_mpsc_pop(&q));
    assert_true(aimdb_mpsc_is_empty(&q));
    item items[100];
    for (unsigned round = 0; round < 3; round++) { /* the stub goes in and out again */
        for (unsigned i = 0; i < 100; i++) {
            items[i].seq = i;
            aimdb_mpsc_push(&q, &items[i].node);
        }
        for (unsigned i = 0; i < 100; i++) {
            item *it = (item *)aimdb_mpsc_pop(&q);
            assert_non_null(it);
            assert_int_equal(it->seq, i);
        }
        assert_null(aimdb_mpsc_pop(&q));
        assert_true(aimdb_mpsc_is_empty(&q));
    }
}

typedef struct producer {
    aimdb_mpsc *q;
    item *items;
    unsigned id;
    atomic_bool *go;
} producer;

static void *produce(void *arg) {
    producer *p = arg;
    while (!atomic_load(p->go)) sched_yield();
    for (unsigned i = 0; i < PER_PRODUCER; i++) {
        p->items[i].producer = p->id;
        p->items[i].seq = i;
        aimdb_mpsc_push(p->q, &p->items[i].node);
        if (i % 1024 == 0) sched_yield(); /* let the consumer catch up and empty the list */
    }
    return NULL;
}

static void test_many_producers_lose_and_repeat_nothing(void **state) {
    (void)state;
    aimdb_mpsc q;
    aimdb_mpsc_init(&q);
    atomic_bool go = false;
    pthread_t threads[PRODUCERS];
    producer prods[PRODUCERS];
    for (unsigned i = 0; i < PRODUCERS; i++) {
        prods[i] = (producer){&q, calloc(PER_PRODUCER, sizeof(item)), i, &go};
        assert_non_null(prods[i].items);
        assert_int_equal(pthread_create(&threads[i], NULL, produce, &prods[i]), 0);
    }
    atomic_store(&go, true);
    unsigned next_seq[PRODUCERS] = {0};
    unsigned popped = 0;
    time_t give_up = time(NULL) + 60; /* a lost node fails here rather than hangs */
    while (popped < PRODUCERS * PER_PRODUCER) {
        item *it = (item *)aimdb_mpsc_pop(&q);
        if (!it) {
            if (time(NULL) > give_up)
                fail_msg("%u of %u nodes popped", popped, PRODUCERS * PER_PRODUCER);
            sched_yield();
            continue;
        }
        assert_true(it->producer < PRODUCERS);
        assert_int_equal(it->seq, next_seq[it->producer]); /* each producer's order, no repeat */
        next_seq[it->producer]++;
        popped++;
    }
    for (unsigned i = 0; i < PRODUCERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(next_seq[i], PER_PRODUCER);
        free(prods[i].items);
    }
    assert_null(aimdb_mpsc_pop(&q));
    assert_true(aimdb_mpsc_is_empty(&q));
}

/* The state between a push's exchange and its link, made by hand: what a
 * consumer sees while a producer is preempted right there.  Returns the
 * node whose link is missing. */
static aimdb_mpsc_node *push_first_step(aimdb_mpsc *q, item *it) {
    atomic_store(&it->node.next, NULL);
    return atomic_exchange(&q->last, &it->node);
}

/* However often the consumer looks, nothing comes and the list is not empty. */
static void assert_held_up(aimdb_mpsc *q) {
    for (int look = 0; look < 3; look++) {
        assert_null(aimdb_mpsc_pop(q));
        assert_false(aimdb_mpsc_is_empty(q));
    }
}

static void test_a_push_under_way_is_not_the_end(void **state) {
    (void)state;
    aimdb_mpsc q;
    aimdb_mpsc_init(&q);
    item a = {.seq = 1}, b = {.seq = 2}, c = {.seq = 3};
    aimdb_mpsc_push(&q, &a.node);
    aimdb_mpsc_node *prev = push_first_step(&q, &b);
    aimdb_mpsc_push(&q, &c.node); /* c queued behind b */
    assert_held_up(&q);           /* a waits for its link to b; c is beyond b */
    atomic_store(&prev->next, &b.node); /* b's second step */
    assert_ptr_equal(aimdb_mpsc_pop(&q), &a.node);
    assert_ptr_equal(aimdb_mpsc_pop(&q), &b.node);
    assert_ptr_equal(aimdb_mpsc_pop(&q), &c.node);
    assert_null(aimdb_mpsc_pop(&q));
    assert_true(aimdb_mpsc_is_empty(&q));
}

/* The same on an empty list: the half-way node's predecessor is the stub. */
static void test_a_push_under_way_on_an_empty_list(void **state) {
    (void)state;
    aimdb_mpsc q;
    aimdb_mpsc_init(&q);
    item a = {.seq = 1};
    aimdb_mpsc_node *prev = push_first_step(&q, &a);
    assert_ptr_equal(prev, &q.stub);
    assert_held_up(&q);
    atomic_store(&prev->next, &a.node);
    assert_ptr_equal(aimdb_mpsc_pop(&q), &a.node);
    assert_null(aimdb_mpsc_pop(&q));
    assert_true(aimdb_mpsc_is_empty(&q));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_thread_fifo_order),
        cmocka_unit_test(test_many_producers_lose_and_repeat_nothing),
        cmocka_unit_test(test_a_push_under_way_is_not_the_end),
        cmocka_unit_test(test_a_push_under_way_on_an_empty_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
