/*
 * other_plugin.c -- a Mosquitto plugin that does nothing.  Loaded beside
 * aimdb in test_broker.c, it stands for any plugin whose access decisions
 * aimdb cannot see (dynamic-security, an auth plugin): aimdb must then
 * hide every record rather than guess.
 */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
    for (int i = 0; i < supported_version_count; i++)
        if (supported_versions[i] == 5) return 5;
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count) {
    (void)identifier;
    (void)options;
    (void)option_count;
    *userdata = NULL;
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
    (void)userdata;
    (void)options;
    (void)option_count;
    return MOSQ_ERR_SUCCESS;
}
