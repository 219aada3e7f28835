#!/bin/sh
# Install the Debian packages a make target needs:
#   install-deps.sh build   what `make build` compiles and bundles with
#                           (the container image's build stage uses only this)
#   install-deps.sh broker  that, and what building Mosquitto from source
#                           needs (scripts/build-mosquitto.sh: the container
#                           image's broker, the compatibility matrix)
#   install-deps.sh all     all of it, and what the test suite, `make run`,
#                           the benchmarks and the fuzzer run: the stock
#                           clients, sqlite3, valgrind, a browser, clang with
#                           libFuzzer, a PostgreSQL server (started per test
#                           in a temporary directory, never as a service),
#                           Python's paho-mqtt (bench_efficiency's logger)
# Idempotent: apt-get runs only when a package is missing, so a second
# `make test` on a prepared machine touches nothing.
set -eu

# mosquitto-dev brings the broker itself; libssl-dev because Paho's CMake
# package names OpenSSL without pulling it in; libpq-dev for the PostgreSQL
# history backend and uplink.
PACKAGES="build-essential cmake pkg-config mosquitto-dev libmosquitto-dev
libsqlite3-dev libpaho-mqtt-dev libssl-dev libcjson-dev libcmocka-dev libpq-dev"
# Mosquitto's own build: the key that verifies Debian's source index, and
# the libraries the official image's flags link (2.0: libwebsockets; 2.1:
# argon2, editline, libmicrohttpd; both: uuid).
BROKER="debian-archive-keyring uuid-dev libwebsockets-dev libargon2-dev libedit-dev
libmicrohttpd-dev"
case "${1:-all}" in
build) ;;
broker) PACKAGES="$PACKAGES $BROKER" ;;
all) PACKAGES="$PACKAGES $BROKER mosquitto mosquitto-clients sqlite3 openssl valgrind chromium
clang libclang-rt-14-dev postgresql python3-paho-mqtt" ;;
*) echo "usage: install-deps.sh [build|broker|all]" >&2; exit 2 ;;
esac

# The dashboard's build and browser test need Node.js with npm.  NodeSource's
# nodejs bundles npm and conflicts with Debian's npm package, so they are
# looked for as commands, not as packages.
command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
