#!/bin/sh
# entrypoint.sh -- the container's first process: gives the broker its
# password, then becomes the broker (exec, so PID 1 is mosquitto and gets
# docker stop's SIGTERM, on which the plugin commits everything routed).
#
# The image publishes MQTT (1883) and the dashboard with MQTT over
# WebSockets (8080), so it never starts a broker that anyone who reaches
# those ports could use without a password: they could read every topic,
# publish anything and query all history.  Either
#   - AIMDB_PASSWORD (and AIMDB_USER, default aimdb) is set: it becomes
#     /etc/aimdb/passwd at every start, so a new value and a restart change
#     the password; or
#   - a password file made with mosquitto_passwd is mounted at
#     /etc/aimdb/passwd (several users; add an acl_file the same way);
# with neither, the container stops here and says how to set one.
set -eu

PASSWORD_FILE=/etc/aimdb/passwd

if [ -n "${AIMDB_PASSWORD:-}" ]; then
    rm -f "$PASSWORD_FILE"
    # On stdin (asked twice), not as an argument: never in the process list.
    printf '%s\n%s\n' "$AIMDB_PASSWORD" "$AIMDB_PASSWORD" |
        mosquitto_passwd -c "$PASSWORD_FILE" "${AIMDB_USER:-aimdb}" >/dev/null
    # Mosquitto reads it after it has become user mosquitto.
    chown root:mosquitto "$PASSWORD_FILE"
    chmod 0640 "$PASSWORD_FILE"
elif [ ! -s "$PASSWORD_FILE" ]; then
    cat >&2 <<'MSG'
aimdb: no password set, and this broker will not run open to anyone who can
reach its ports.  Set one, e.g.
    AIMDB_PASSWORD='choose-one' docker compose -f docker/docker-compose.yml up
    docker run -e AIMDB_PASSWORD='choose-one' -p 1883:1883 -p 8080:8080 aimdb-mosquitto
(user "aimdb", or AIMDB_USER), or mount a mosquitto_passwd file at
/etc/aimdb/passwd.  See docker/README.md.
MSG
    exit 1
fi
# The broker has no use for it; keep it out of its environment.
unset AIMDB_PASSWORD
exec "$@"
