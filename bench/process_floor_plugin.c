/*
 * process_floor_plugin.c -- a Mosquitto plugin that copies every message
 * (topic and payload) into a shared-memory ring read by a child process,
 * and owns no thread.  bench_plugin runs the broker with it beside the
 * broker alone, null_plugin.c and aimdb: the floor of a plugin that does
 * its work in another process, so the broker's process stays
 * single-threaded (glibc's malloc and syscall wrappers then skip their
 * atomics, null_plugin.c) -- the measurement behind the question whether
 * aimdb's threads should move out of the broker.
 *
 * The child reads every byte (a checksum) and discards it; a message that
 * finds the ring full is counted and dropped, and the counts are written to
 * the broker's log at cleanup so a run that dropped can be told apart.
 */
#define _GNU_SOURCE /* PR_SET_PDEATHSIG */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define RING_BYTES (8u << 20) /* ~160,000 small messages */
#define NAP_NS 100000         /* the child's wait when the ring is empty */

typedef struct shared {
    _Atomic uint64_t head; /* bytes written, by the broker */
    char pad1[56];
    _Atomic uint64_t tail; /* bytes read, by the child */
    char pad2[56];
    _Atomic int stopping;
    unsigned char ring[RING_BYTES];
} shared;

static mosquitto_plugin_id_t *plugin_id;
static shared *sh;
static pid_t child;
static uint64_t head, tail_seen, copied, dropped; /* broker thread only */

static void put(uint64_t at, const void *src, size_t n) {
    size_t off = at % RING_BYTES, first = n < RING_BYTES - off ? n : RING_BYTES - off;
    memcpy(sh->ring + off, src, first);
    memcpy(sh->ring, (const unsigned char *)src + first, n - first);
}

static int on_message(int event, void *event_data, void *userdata) {
    (void)event;
    (void)userdata;
    const struct mosquitto_evt_message *ev = event_data;
    uint32_t lens[2] = {(uint32_t)strlen(ev->topic), ev->payloadlen};
    uint64_t need = (sizeof(lens) + lens[0] + lens[1] + 7) & ~(uint64_t)7;
    if (head + need - tail_seen > RING_BYTES) {
        tail_seen = atomic_load_explicit(&sh->tail, memory_order_acquire);
        if (head + need - tail_seen > RING_BYTES) {
            dropped++;
            return MOSQ_ERR_SUCCESS;
        }
    }
    put(head, lens, sizeof(lens));
    put(head + sizeof(lens), ev->topic, lens[0]);
    put(head + sizeof(lens) + lens[0], ev->payload, lens[1]);
    head += need;
    copied++;
    atomic_store_explicit(&sh->head, head, memory_order_release);
    return MOSQ_ERR_SUCCESS;
}

static void read_until_stopped(void) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the broker */
    uint64_t tail = 0;
    volatile uint64_t checksum = 0;
    for (;;) {
        uint64_t h = atomic_load_explicit(&sh->head, memory_order_acquire);
        if (h == tail) {
            if (atomic_load(&sh->stopping)) return;
            nanosleep(&(struct timespec){0, NAP_NS}, NULL);
            continue;
        }
        for (; tail != h; tail++) checksum += sh->ring[tail % RING_BYTES];
        atomic_store_explicit(&sh->tail, tail, memory_order_release);
    }
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count) {
    (void)userdata;
    (void)options;
    (void)option_count;
    plugin_id = identifier;
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return MOSQ_ERR_NOMEM;
    if ((child = fork()) < 0) return MOSQ_ERR_UNKNOWN;
    if (child == 0) {
        read_until_stopped();
        _exit(0);
    }
    return mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
    (void)userdata;
    (void)options;
    (void)option_count;
    atomic_store(&sh->stopping, 1);
    waitpid(child, NULL, 0);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "process floor: %llu messages copied, %llu dropped",
                         (unsigned long long)copied, (unsigned long long)dropped);
    munmap(sh, sizeof(*sh));
    return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
}
