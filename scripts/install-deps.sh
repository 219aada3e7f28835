#!/bin/sh
# Install the Debian packages the build, the tests and `make run` need.
# Idempotent: apt-get runs only when a package is missing, so a second
# `make test` on a prepared machine touches nothing.
set -eu

PACKAGES="build-essential cmake pkg-config clang libclang-rt-14-dev
mosquitto mosquitto-clients mosquitto-dev libmosquitto-dev
libsqlite3-dev sqlite3 libpaho-mqtt-dev libcjson-dev libcmocka-dev
valgrind chromium openssl"

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
