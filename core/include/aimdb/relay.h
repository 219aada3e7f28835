/*
 * relay.h -- handing values from one hot thread to aimdb_produce without
 * a lock or a system call on that thread.
 *
 * For a thread that must not wait: Mosquitto's broker thread (the plugin),
 * Paho's receive thread (the connector).  It copies each value into a
 * single-producer ring; a relay thread of its own produces them in order,
 * in batches, with the timestamp the value was pushed with.  The pusher
 * never waits: when the relay thread gets no CPU the queue grows by
 * segments of 4,096 values.  The payloads it holds count toward the
 * record's database's max_memory (older live values give way to them),
 * and it refuses values only once its backlog alone holds the whole share
 * of buffers and relays (64 MiB without max_memory; relay.c).
 */
#ifndef AIMDB_RELAY_H
#define AIMDB_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "aimdb/aimdb.h"
#include "aimdb/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aimdb_relay aimdb_relay;

/* Start the relay thread on rt (NULL: aimdb_runtime_pthread(); rt must
 * outlive the relay).  AIMDB_ENOMEM, or AIMDB_EIO if no thread. */
int aimdb_relay_start(const aimdb_runtime *rt, aimdb_relay **out);

/* Queue a copy of a value for rec, stamped ts_ms, from source (kept as a
 * pointer, see aimdb_produce_from; NULL allowed).  One thread only (the
 * same one every time); never waits.  AIMDB_ENOMEM if the value cannot be
 * copied, AIMDB_EBUSY if the relay is so far behind that the values it
 * holds reached its byte limit (the caller counts the drop).  Values
 * aimdb_produce refuses later are counted (aimdb_relay_failed, or
 * aimdb_relay_refused for AIMDB_EFORMAT) and logged, rate-limited. */
int aimdb_relay_push(aimdb_relay *r, aimdb_record *rec, const void *data, size_t len,
                     int64_t ts_ms, const char *source);

/* Produce everything queued, stop the thread and free; returns how many
 * values aimdb_produce refused in all, but for their format.  No push, and no other call on r,
 * may run or follow.  NULL is fine (0). */
uint64_t aimdb_relay_stop(aimdb_relay *r);

/* Values aimdb_produce refused (too big, stopped, out of memory); any
 * thread.  0 for NULL. */
uint64_t aimdb_relay_failed(aimdb_relay *r);

/* Values aimdb_produce refused as no value of their record's codec
 * (AIMDB_EFORMAT: a payload that is not JSON on a format=json record); any
 * thread.  0 for NULL. */
uint64_t aimdb_relay_refused(aimdb_relay *r);

/* Values pushed and not yet produced; any thread.  0 for NULL. */
uint64_t aimdb_relay_backlog(aimdb_relay *r);

/* Times the queue grew by a segment of 4,096 values beyond its usual two
 * (the relay thread had fallen that far behind); any thread.  0 for NULL. */
uint64_t aimdb_relay_grown(aimdb_relay *r);

#ifdef __cplusplus
}
#endif
#endif
