/*
 * qos2.c -- storing a QoS 2 message once when its sender retransmits it.
 *
 * A QoS 2 sender that lost the broker's PUBREC sends the PUBLISH again with
 * the DUP flag and the same packet id.  Mosquitto 2.0.11 (handle_publish.c)
 * raises MOSQ_EVT_MESSAGE *before* it looks the id up among the messages
 * it already holds from that client, so without this check the plugin
 * would store a retransmission twice, while subscribers get it once.
 *
 * The event carries neither the DUP flag nor the packet id, so both are
 * read from the packet the broker is handling: the start of its client
 * struct (up to in_packet) is mirrored below from Mosquitto 2.0.11's
 * lib/mosquitto_internal.h as Debian builds it (WITH_BROKER, WITH_EPOLL,
 * WITH_ADNS).  The mirror is trusted only after it has been verified
 * against the broker's public accessors on a live client; then the id is
 * looked up with the broker's own db__message_store_find(), exactly as
 * Mosquitto does a few lines later.  If the symbol is missing or the
 * layout does not verify (another build or version), one warning is
 * logged and every message is stored: at least once, never lost.
 */
#include <dlfcn.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

/* struct mosquitto__packet (2.0.11) */
typedef struct broker_packet {
    uint8_t *payload;
    void *next;
    uint32_t remaining_mult;
    uint32_t remaining_length;
    uint32_t packet_length;
    uint32_t to_process;
    uint32_t pos;
    uint16_t mid;
    uint8_t command;
    int8_t remaining_count;
} broker_packet;

/* The first members of struct mosquitto (2.0.11, broker build). */
typedef struct broker_client_head {
    int ident;
    int sock;
    uint32_t maximum_packet_size;
    void *adns;
    int protocol;
    char *address;
    char *id;
    char *username;
    char *password;
    uint16_t keepalive;
    uint16_t last_mid;
    int state;
    time_t last_msg_in;
    time_t next_msg_out;
    time_t ping_t;
    broker_packet in_packet;
} broker_client_head;

typedef int (*store_find_fn)(struct mosquitto *context, uint16_t mid, void **stored);

#define CMD_PUBLISH 0x30
#define PUBLISH_DUP 0x08

void qos2_init(plugin *pl) {
    pl->qos2.store_find = dlsym(RTLD_DEFAULT, "db__message_store_find");
    pl->qos2.layout_checked = false;
    pl->qos2.layout_ok = false;
}

/* The mirror matches if the fields the public accessors expose are where
 * the mirror says, and the packet being handled is this very PUBLISH. */
static bool layout_matches(const struct mosquitto_evt_message *ev) {
    const broker_client_head *h = (const void *)ev->client;
    const broker_packet *p = &h->in_packet;
    return h->id == mosquitto_client_id(ev->client) &&
           h->address == mosquitto_client_address(ev->client) &&
           h->keepalive == mosquitto_client_keepalive(ev->client) &&
           (p->command & 0xF0) == CMD_PUBLISH && ((p->command >> 1) & 3) == ev->qos &&
           p->payload != NULL && p->remaining_length >= 4;
}

static bool usable(plugin *pl, const struct mosquitto_evt_message *ev) {
    if (!pl->qos2.layout_checked) {
        pl->qos2.layout_checked = true;
        pl->qos2.layout_ok = pl->qos2.store_find && layout_matches(ev);
        if (!pl->qos2.layout_ok)
            plugin_log(pl, AIMDB_LOG_WARNING,
                       "this broker build does not match Mosquitto 2.0.11's layout: QoS 2 "
                       "retransmissions may be stored twice (never lost)");
    }
    return pl->qos2.layout_ok && layout_matches(ev);
}

bool qos2_is_duplicate(plugin *pl, const struct mosquitto_evt_message *ev) {
    if (ev->qos != 2 || !usable(pl, ev)) return false;
    const broker_packet *p = &((const broker_client_head *)(const void *)ev->client)->in_packet;
    if (!(p->command & PUBLISH_DUP)) return false;
    /* Variable header: topic length, topic, packet id. */
    uint32_t topic_len = (uint32_t)p->payload[0] << 8 | p->payload[1];
    if (topic_len + 4 > p->remaining_length) return false;
    uint16_t mid = (uint16_t)(p->payload[2 + topic_len] << 8 | p->payload[3 + topic_len]);
    void *stored = NULL;
    store_find_fn find = (store_find_fn)pl->qos2.store_find;
    return find(ev->client, mid, &stored) == MOSQ_ERR_SUCCESS && stored != NULL;
}
