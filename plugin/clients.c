/*
 * clients.c -- what the plugin keeps per client that sends requests: its
 * share of the requests pending, and the broker's read decisions for it.
 *
 * Pending requests.  A request holds memory (its ACL view) and, for
 * record.query, a place in the history queue (AIMDB_GATEWAY_PENDING_QUERIES
 * in all) until its reply is published.  One client sending as fast as it
 * can must not take every place, so each client has a share: with N
 * clients that have requests pending (the asking one included), a client
 * may have at most PENDING_BUDGET / (N + 1) pending (at least 1), and all
 * together at most PENDING_BUDGET.  A lone flood holds at most half the
 * budget; k floods converge to k/(k+1) of it, always leaving room for one
 * more client.  A request beyond its share or the budget is answered
 * `busy` at once, with when to retry (docs/protocol.md); nothing else is
 * affected.
 *
 * Read decisions.  A request's ACL view (acl.c) asks broker_may_read about
 * every topic of every record it covers, and a dashboard asks the same
 * thing again and again.  So decisions are remembered per client, keyed by
 * the topic's address: the catalog's interned strings and PROBE_TOPIC keep
 * their address and text until a reload, and a reload forgets everything.
 * What invalidates them, which is everything that can change the answer:
 *   - acl_init (plugin start and every reload: the broker reads its
 *     acl_file again then, and the catalog's rule sources are replaced)
 *     bumps pl->acl_generation; a state from an older generation starts
 *     over.  The broker's ACLs change in no other way that this plugin can
 *     answer for (with a security plugin loaded every check fails closed).
 *   - The client's id or username differing from those the decisions were
 *     made for (a new connection at the same address, a re-authentication)
 *     starts over.
 *   - MOSQ_EVT_DISCONNECT removes the client's state.
 * Memory is bounded: MAX_DECISIONS per client (then its table starts over)
 * and MAX_DECISIONS_TOTAL over all clients (then new answers are not kept).
 *
 * Broker thread only.  States are in a chained hash table by client
 * address; a state outlives its client's disconnect while requests of
 * that client are still pending (they point at it), and is freed with the
 * last of them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define PENDING_BUDGET AIMDB_GATEWAY_PENDING_QUERIES
#define BUSY_RETRY_MS 100
#define MAX_DECISIONS 4096
#define MAX_DECISIONS_TOTAL (256 * 1024)

typedef struct decision {
    const char *topic; /* NULL: empty slot */
    bool may_read;
} decision;

struct client_state {
    client_state *next;             /* bucket chain; broker thread */
    const struct mosquitto *client; /* the key; compared, never dereferenced */
    bool gone;                      /* disconnected: out of the table */
    unsigned pending;
    /* Decisions are valid for this generation and identity only. */
    uint64_t generation;
    char *id, *username;
    decision *decisions;            /* open addressing, at most half full */
    size_t n_slots, n_decisions;
};

struct clients {
    client_state **buckets;
    size_t n_buckets, count;
    unsigned pending;               /* over every client */
    unsigned busy_clients;          /* clients with pending > 0 */
    size_t decisions;               /* over every client */
};

static size_t hash_ptr(const void *p, size_t n) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (n - 1);
}

static void forget_decisions(plugin *pl, client_state *cs) {
    pl->clients->decisions -= cs->n_decisions;
    free(cs->decisions);
    cs->decisions = NULL;
    cs->n_slots = cs->n_decisions = 0;
}

static void state_free(plugin *pl, client_state *cs) {
    forget_decisions(pl, cs);
    free(cs->id);
    free(cs->username);
    free(cs);
}

static bool same(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Decisions made for another identity or generation start over. */
static bool bind_identity(plugin *pl, client_state *cs, struct mosquitto *client) {
    const char *id = mosquitto_client_id(client), *username = mosquitto_client_username(client);
    if (cs->generation == pl->acl_generation && same(cs->id, id) && same(cs->username, username))
        return true;
    forget_decisions(pl, cs);
    free(cs->id);
    free(cs->username);
    cs->id = id ? strdup(id) : NULL;
    cs->username = username ? strdup(username) : NULL;
    cs->generation = pl->acl_generation;
    return (!id || cs->id) && (!username || cs->username);
}

static bool grow_buckets(struct clients *t) {
    size_t n = t->n_buckets ? t->n_buckets * 2 : 64;
    client_state **buckets = calloc(n, sizeof(*buckets));
    if (!buckets) return false;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (client_state *cs = t->buckets[i], *next; cs; cs = next) {
            next = cs->next;
            size_t b = hash_ptr(cs->client, n);
            cs->next = buckets[b];
            buckets[b] = cs;
        }
    }
    free(t->buckets);
    t->buckets = buckets;
    t->n_buckets = n;
    return true;
}

bool clients_init(plugin *pl) {
    pl->clients = calloc(1, sizeof(*pl->clients));
    return pl->clients && grow_buckets(pl->clients);
}

client_state *clients_get(plugin *pl, struct mosquitto *client) {
    struct clients *t = pl->clients;
    client_state **at = &t->buckets[hash_ptr(client, t->n_buckets)];
    client_state *cs = *at;
    while (cs && cs->client != client) cs = cs->next;
    if (!cs) {
        if (t->count + 1 > t->n_buckets && !grow_buckets(t)) return NULL;
        if (!(cs = calloc(1, sizeof(*cs)))) return NULL;
        cs->client = client;
        at = &t->buckets[hash_ptr(client, t->n_buckets)];
        cs->next = *at;
        *at = cs;
        t->count++;
    }
    return bind_identity(pl, cs, client) ? cs : NULL;
}

void clients_gone(plugin *pl, const struct mosquitto *client) {
    struct clients *t = pl->clients;
    client_state **at = &t->buckets[hash_ptr(client, t->n_buckets)];
    while (*at && (*at)->client != client) at = &(*at)->next;
    client_state *cs = *at;
    if (!cs) return;
    *at = cs->next;
    t->count--;
    cs->gone = true;
    if (cs->pending == 0) state_free(pl, cs);
}

void clients_free(plugin *pl) {
    struct clients *t = pl->clients;
    if (!t) return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (client_state *cs = t->buckets[i], *next; cs; cs = next) {
            next = cs->next;
            state_free(pl, cs);
        }
    }
    free(t->buckets);
    free(t);
    pl->clients = NULL;
}

/* ------------------------------------------------------------- pending */

bool client_admit(plugin *pl, client_state *cs, char *why, size_t cap) {
    struct clients *t = pl->clients;
    unsigned with_pending = t->busy_clients + (cs->pending == 0);
    unsigned share = PENDING_BUDGET / (with_pending + 1);
    if (share < 1) share = 1;
    if (t->pending >= PENDING_BUDGET) {
        snprintf(why, cap,
                 "the server has %u requests pending, all it takes at once; retry in %d ms",
                 t->pending, BUSY_RETRY_MS);
        return false;
    }
    if (cs->pending >= share) {
        snprintf(why, cap,
                 "%u of your requests are pending, your share of the %u the server takes at "
                 "once with %u client(s) waiting; retry when one of them is answered (or in "
                 "%d ms)",
                 cs->pending, PENDING_BUDGET, with_pending, BUSY_RETRY_MS);
        return false;
    }
    if (cs->pending++ == 0) t->busy_clients++;
    t->pending++;
    return true;
}

void client_release(plugin *pl, client_state *cs) {
    struct clients *t = pl->clients;
    t->pending--;
    if (--cs->pending == 0) {
        t->busy_clients--;
        if (cs->gone) state_free(pl, cs);
    }
}

/* ----------------------------------------------------------- decisions */

static decision *slot_for(decision *slots, size_t n_slots, const char *topic) {
    size_t i = hash_ptr(topic, n_slots);
    while (slots[i].topic && slots[i].topic != topic) i = (i + 1) & (n_slots - 1);
    return &slots[i];
}

/* Room for one more decision; false if it is not to be kept. */
static bool make_room(plugin *pl, client_state *cs) {
    if (cs->n_decisions >= MAX_DECISIONS) forget_decisions(pl, cs);
    if (pl->clients->decisions >= MAX_DECISIONS_TOTAL) return false;
    if ((cs->n_decisions + 1) * 2 <= cs->n_slots) return true;
    size_t n = cs->n_slots ? cs->n_slots * 2 : 64;
    decision *slots = calloc(n, sizeof(*slots));
    if (!slots) return false;
    for (size_t i = 0; i < cs->n_slots; i++)
        if (cs->decisions[i].topic) *slot_for(slots, n, cs->decisions[i].topic) = cs->decisions[i];
    free(cs->decisions);
    cs->decisions = slots;
    cs->n_slots = n;
    return true;
}

bool client_may_read(plugin *pl, client_state *cs, struct mosquitto *client, const char *topic) {
    if (cs->n_slots) {
        const decision *d = slot_for(cs->decisions, cs->n_slots, topic);
        if (d->topic) return d->may_read;
    }
    bool may = broker_may_read(pl, client, topic);
    if (make_room(pl, cs)) {
        *slot_for(cs->decisions, cs->n_slots, topic) = (decision){topic, may};
        cs->n_decisions++;
        pl->clients->decisions++;
    }
    return may;
}
