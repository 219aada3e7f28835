/*
 * broker_api.c -- what this broker offers the plugin, found once at init,
 * so that one aimdb_mosquitto.so loads into every supported Mosquitto.
 *
 * Linking.  The plugin calls only what every supported broker exports --
 * the plugin API (mosquitto_broker.h and mosquitto_plugin.h of 2.0), which
 * is exactly what a broker built like the official image exports (its
 * src/linker.syms) -- and libmosquitto's public functions, which it links
 * as an ordinary dependency (libmosquitto.so.1).  The dynamic linker
 * searches the broker executable first, so a function the broker itself
 * exports (Debian's 2.0.11 exports everything; 2.1 exports the property
 * readers) is taken from the broker, and the rest (mosquitto_strerror, and
 * the property readers on 2.0.19 and later) from libmosquitto.  Nothing
 * internal to the broker is looked up.
 *
 * Memory.  mosquitto_property_read_string/_binary return a copy the caller
 * frees, and which free is right depends on who allocated it.  A
 * broker's own allocator counts bytes ($SYS/broker/heap/current) and
 * checks them against memory_limit; freeing memory it did not count with
 * its mosquitto_free counts bytes down that were never counted up -- the
 * count wraps, and with a memory_limit every later allocation of the
 * broker fails.  2.1's readers, which the broker exports, allocate with
 * that counting allocator: their copies go back through mosquitto_free.
 * Every 2.0 reader a plugin can get allocates with plain calloc: those
 * that 2.0.11 to 2.0.20 export from the broker (Mosquitto's
 * property_mosq.c calls calloc, not its counting allocator) and
 * libmosquitto's, where nothing counts: their copies go back through
 * free.  Measured on every broker of the matrix by test_broker.c.
 *
 * Mosquitto 2.1, when present, is used through its public API, looked up
 * by name (the plugin is built once, against 2.0's headers):
 * mosquitto_plugin_set_info names the plugin in the broker's log and
 * $SYS, and mosquitto_topic_matches_sub_with_pattern is 2.1's own acl_file
 * pattern matching (broker_acl.c).  2.1's MOSQ_EVT_MESSAGE_IN is 2.0's
 * MOSQ_EVT_MESSAGE under a new name (the same number), so ingest needs
 * nothing.
 *
 * QoS 2.  A sender that lost the broker's PUBREC sends the PUBLISH again
 * with the same packet id.  Every supported Mosquitto (2.0.11, 2.0.21,
 * 2.1.2: handle_publish.c) raises MOSQ_EVT_MESSAGE before it looks that id
 * up, and the event carries neither the id nor the DUP flag; no public
 * function or event tells a plugin the message was a retransmission (2.1's
 * persistence events fire only for persisted sessions and are marked
 * unstable).  So such a message is stored again: at least once, never
 * lost, and subscribers still get it once.  Said at start, once.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdlib.h>

#include "aimdb/version.h"
#include "plugin.h"

typedef int (*set_info_fn)(mosquitto_plugin_id_t *id, const char *name, const char *version);

/* Are two functions defined by the same loaded object? */
static bool same_object(void *a, void *b) {
    Dl_info x, y;
    return dladdr(a, &x) && dladdr(b, &y) && x.dli_fbase == y.dli_fbase;
}

void broker_api_init(plugin *pl) {
    set_info_fn set_info = (set_info_fn)dlsym(RTLD_DEFAULT, "mosquitto_plugin_set_info");
    pl->broker.api_2_1 = set_info != NULL;
    if (set_info) set_info(pl->id, "aimdb", AIMDB_VERSION);
    pl->broker.matches_with_pattern = (broker_pattern_match_fn)dlsym(
        RTLD_DEFAULT, "mosquitto_topic_matches_sub_with_pattern");
    /* The broker exports the readers as one set, or none of them. */
    bool counted = pl->broker.api_2_1 && same_object((void *)mosquitto_property_read_string,
                                                     (void *)mosquitto_free);
    pl->broker.free_read = counted ? mosquitto_free : free;
    plugin_log(pl, AIMDB_LOG_INFO, "broker: Mosquitto %s plugin API",
               pl->broker.api_2_1 ? "2.1" : "2.0");
    plugin_log(pl, AIMDB_LOG_WARNING,
               "QoS 2: Mosquitto tells plugins no packet id, so a PUBLISH its sender "
               "retransmits (after a lost PUBREC) may be stored twice; never lost, and "
               "subscribers still receive it once");
}

void broker_free_read(const plugin *pl, void *p) {
    pl->broker.free_read(p);
}
