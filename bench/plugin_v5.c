/*
 * plugin_v5.c -- the version handshake of the bench's floor plugins
 * (null_plugin.c, process_floor_plugin.c): plugin API v5, Mosquitto 2.0.
 */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5) return 5;
    return -1;
}
