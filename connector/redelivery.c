/*
 * redelivery.c -- recognising a message the broker sends a second time.
 *
 * QoS 1 is "at least once": a broker resends every message whose PUBACK it
 * has not processed when a session resumes.  That is not only after a lost
 * connection.  Mosquitto reads one packet per client per loop while it keeps
 * writing, so when the connector disconnects in the middle of a stream the
 * socket is reset with a burst of our PUBACKs still unread on the broker's
 * side; every message they acknowledged is sent again on the next connect
 * (measured: 17-19 of Mosquitto's 20 in flight, one restart in 40).
 * Recording those again would put the same value twice into history.
 *
 * A resent message keeps its packet identifier, and a broker numbers the
 * messages of one session in turn, so within one session a packet id,
 * topic and payload name a delivery: the list keeps a 64-bit hash of the
 * three (a false match takes some 2^-54 with a full list).  The connector
 * advertises a Receive Maximum of REDELIVERY_WINDOW: the broker then never
 * has more unacknowledged messages than that, so every message it can
 * resend is among the last REDELIVERY_WINDOW taken, which is all this
 * keeps.  A QoS 1 message counts as resent only with its DUP flag; Paho
 * clears the flag of QoS 2 messages (it drops their in-session copies
 * itself), so for QoS 2 the match alone decides, which is what saves a
 * restart's copies.
 *
 * The list is session state: emptied when a connect finds no session, and,
 * given a file, saved when the connector stops, read back and removed when
 * it starts, so a restart recognises the last messages of the process
 * before.  A process that is killed saves nothing, and leaves no stale list
 * behind: its restart may record up to a window of messages twice, as
 * QoS 1 allows, and never loses one.
 *
 * Only Paho's receive thread touches the list while the connector runs;
 * load and save run before start and after stop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aimdb/hash.h"
#include "connector_internal.h"

static const char FILE_MAGIC[8] = {'A', 'I', 'M', 'D', 'B', 'R', 'D', '1'};

uint64_t redelivery_key(int msgid, const char *topic, size_t topic_len, const void *payload,
                        size_t len) {
    uint16_t id = (uint16_t)msgid;
    uint64_t h = aimdb_hash(AIMDB_HASH_SEED, &id, sizeof(id));
    h = aimdb_hash(h, topic, topic_len);
    h = aimdb_hash(h, "", 1); /* "a/b"+"c" and "a/bc"+"" differ */
    return aimdb_hash(h, payload, len);
}

void redelivery_clear(redelivery *r) { memset(r, 0, sizeof(*r)); }

bool redelivery_seen(const redelivery *r, uint64_t key) {
    for (size_t i = 0; i < r->count; i++)
        if (r->taken[i] == key) return true;
    return false;
}

void redelivery_note(redelivery *r, uint64_t key) {
    r->taken[r->next] = key;
    r->next = (r->next + 1) % REDELIVERY_WINDOW;
    if (r->count < REDELIVERY_WINDOW) r->count++;
}

/* The file: FILE_MAGIC, then count and next as uint32, then the keys,
 * in this machine's byte order (the file never leaves it).  Written to a
 * temporary name and renamed, so a crash mid-write leaves the old file or
 * the new one, never half of either. */
int redelivery_save(const redelivery *r, const char *path, char *err, size_t errlen) {
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "path too long");
        return AIMDB_EINVAL;
    }
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        snprintf(err, errlen, "%s", strerror(errno));
        return AIMDB_EIO;
    }
    uint32_t head[2] = {(uint32_t)r->count, (uint32_t)r->next};
    bool ok = fwrite(FILE_MAGIC, sizeof(FILE_MAGIC), 1, out) == 1 &&
              fwrite(head, sizeof(head), 1, out) == 1 &&
              fwrite(r->taken, sizeof(r->taken[0]), r->count, out) == r->count;
    if (fclose(out) != 0) ok = false;
    if (ok && rename(tmp, path) == 0) return AIMDB_OK;
    snprintf(err, errlen, "%s", strerror(errno ? errno : EIO));
    remove(tmp);
    return AIMDB_EIO;
}

/* A missing file is an empty list (a first start); one that is not ours
 * or is cut short is refused with the reason, and the list stays empty.
 * The file is removed once read: only a stop writes the next one. */
int redelivery_load(redelivery *r, const char *path, char *err, size_t errlen) {
    redelivery_clear(r);
    FILE *in = fopen(path, "rb");
    if (!in) {
        if (errno == ENOENT) return AIMDB_OK;
        snprintf(err, errlen, "%s", strerror(errno));
        return AIMDB_EIO;
    }
    char magic[sizeof(FILE_MAGIC)];
    uint32_t head[2];
    bool ok = fread(magic, sizeof(magic), 1, in) == 1 &&
              memcmp(magic, FILE_MAGIC, sizeof(magic)) == 0 &&
              fread(head, sizeof(head), 1, in) == 1 && head[0] <= REDELIVERY_WINDOW &&
              head[1] < REDELIVERY_WINDOW &&
              (head[0] == REDELIVERY_WINDOW || head[1] == head[0]) && /* the invariant */
              fread(r->taken, sizeof(r->taken[0]), head[0], in) == head[0];
    fclose(in);
    remove(path);
    if (!ok) {
        redelivery_clear(r);
        snprintf(err, errlen, "not a list of deliveries (damaged or cut short)");
        return AIMDB_EINVAL;
    }
    r->count = head[0];
    r->next = head[1];
    return AIMDB_OK;
}
