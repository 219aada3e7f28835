/*
 * null_plugin.c -- a Mosquitto plugin that listens to MOSQ_EVT_MESSAGE, does
 * nothing with it, and keeps one idle thread.  bench_plugin runs the broker
 * with it beside the broker alone and the broker with aimdb: the floor
 * under aimdb's ratio, what a plugin costs before it does any work.
 *
 * Why the thread: any plugin that works off the broker thread has one, and
 * that alone costs Mosquitto ~0.1 us per message (measured: 0.98x without
 * it, 0.92x with it).  glibc runs malloc, free and stdio without locks
 * while a process has a single thread; from the second thread on, every
 * one of the broker's several allocations per message takes an atomic
 * arena lock.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

static mosquitto_plugin_id_t *plugin_id;
static pthread_t idle_thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop = PTHREAD_COND_INITIALIZER;
static bool stopping;

static void *idle(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) pthread_cond_wait(&stop, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int on_message(int event, void *event_data, void *userdata) {
    (void)event;
    (void)event_data;
    (void)userdata;
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count) {
    (void)userdata;
    (void)options;
    (void)option_count;
    plugin_id = identifier;
    if (pthread_create(&idle_thread, NULL, idle, NULL) != 0) return MOSQ_ERR_UNKNOWN;
    return mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
    (void)userdata;
    (void)options;
    (void)option_count;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&stop);
    pthread_mutex_unlock(&lock);
    pthread_join(idle_thread, NULL);
    return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
}
