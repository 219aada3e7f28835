#!/bin/sh
# build-mosquitto.sh CACHE NAME -- one broker of the compatibility matrix
# (tests/plugin/CMakeLists.txt lists them), built once and kept in CACHE.
#
# NAME is VERSION-STYLE:
#   2.0.21-make, 2.1.2-make  the way the official eclipse-mosquitto image
#                            builds it: `make ... binary` with the image's
#                            flags, so the broker exports exactly
#                            src/linker.syms (the plugin API) and nothing
#                            else -- the build most operators run
#   2.1.2-cmake              upstream's CMake defaults (a source build)
#
# The source is upstream's release as Debian ships it (the .orig tarball of
# Debian's source package, trixie for 2.0.21 and sid for 2.1.2), fetched by
# `apt-get source` through a private apt configuration under CACHE/apt: its
# own sources list with deb-src lines only, its own state and cache, so the
# machine's apt sources are never read or changed.  Debian's patches are
# not applied: the official image builds upstream's code.  The tarball's
# SHA-256 is pinned below, so a second upload under the same version cannot
# change what is tested.
#
# Cached: CACHE/NAME/stamp records what was built (tarball, flags); when it
# matches, nothing is fetched or compiled.  A lock keeps two concurrent
# callers (the normal and the ASan test runs) from building at once.
#
# Prints nothing on a cache hit; the build's own output goes to
# CACHE/NAME/build.log (shown if it fails).
set -eu

[ $# -eq 2 ] || { echo "usage: build-mosquitto.sh CACHE VERSION-STYLE" >&2; exit 2; }
cache=$1
name=$2
version=${name%-*}
style=${name##*-}
jobs=${JOBS:-2}

case "$version" in
2.0.21) sha256=551daff96cd0675faf888f8881536177934424ecc45924fecf94cffe207f6e81 ;;
2.1.2) sha256=a8e37cc4c1d4141e56c5a8729c5fa36b1f0b1ca95378a12131d68f0509de122a ;;
*) echo "build-mosquitto: no pinned source for Mosquitto $version" >&2; exit 2 ;;
esac

# The official image's make flags (docker/2.0/Dockerfile and
# docker/2.1-alpine/Dockerfile in Mosquitto's source), less its include
# paths for the libwebsockets it builds itself: 2.0 links Debian's
# libwebsockets instead.  2.0's image also turns TLS-PSK off.
common="WITH_ADNS=no WITH_DOCS=no WITH_SHARED_LIBRARIES=yes WITH_SRV=no WITH_STRIP=yes WITH_WEBSOCKETS=yes prefix=/usr"
case "$name" in
2.0.*-make) flags="$common WITH_TLS_PSK=no" ;;
2.1.*-make) flags="$common" ;;
2.1.*-cmake) flags="-DWITH_DOCS=OFF -DWITH_TESTS=OFF" ;;
*) echo "build-mosquitto: unknown build $name (make or cmake)" >&2; exit 2 ;;
esac

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
out=$cache/$name
stamp_want="mosquitto $version sha256 $sha256 $style: $flags CFLAGS=-Wall -O2"

exec 9>"$cache/.lock"
flock 9
if [ -x "$out/mosquitto" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp_want" ]; then
    exit 0
fi

echo "build-mosquitto: building Mosquitto $version ($style) into $out"
start=$(date +%s)

# ---- the private apt configuration: deb-src lines only, state under $cache
apt=$cache/apt
mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/state/lists/partial" \
    "$apt/cache/archives/partial" "$cache/downloads"
cat >"$apt/etc/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
EOF
cat >"$apt/apt.conf" <<EOF
Dir::Etc::SourceList "$apt/etc/sources.list";
Dir::Etc::SourceParts "$apt/etc/sources.list.d";
Dir::Etc::Preferences "$apt/etc/preferences";
Dir::Etc::PreferencesParts "$apt/etc/preferences.d";
Dir::State "$apt/state";
Dir::Cache "$apt/cache";
APT::Sandbox::User "$(id -un)";
EOF
export APT_CONFIG="$apt/apt.conf"

# The newest Debian revision of this upstream version in either suite.
debian_version() {
    apt-cache showsrc mosquitto 2>/dev/null |
        sed -n "s/^Version: \($version-[^ ]*\)$/\1/p" | sort -V | tail -n 1
}
tarball=$cache/downloads/mosquitto_$version.orig.tar.gz
if ! echo "$sha256  $tarball" | sha256sum -c --status 2>/dev/null; then
    deb=$(debian_version)
    if [ -z "$deb" ]; then
        apt-get update -qq
        deb=$(debian_version)
    fi
    if [ -z "$deb" ]; then
        echo "build-mosquitto: Debian's trixie and sid no longer carry mosquitto $version;" \
             "update the matrix (tests/plugin/CMakeLists.txt, this script's pins)" >&2
        exit 1
    fi
    (cd "$cache/downloads" && apt-get source -qq --download-only "mosquitto=$deb")
    echo "$sha256  $tarball" | sha256sum -c --status || {
        echo "build-mosquitto: $tarball does not have the pinned SHA-256" >&2
        exit 1
    }
fi

# ---- build in a fresh tree
rm -rf "$out"
mkdir -p "$out/src"
tar -xzf "$tarball" -C "$out/src" --strip-components=1
log=$out/build.log
build() {
    case "$style" in
    make)
        # shellcheck disable=SC2086
        make -C "$out/src" -j "$jobs" CFLAGS="-Wall -O2" $flags binary
        ln -s src/src/mosquitto "$out/mosquitto"
        ln -s src/lib "$out/lib"
        ;;
    cmake)
        # shellcheck disable=SC2086
        cmake -S "$out/src" -B "$out/cmake" $flags
        cmake --build "$out/cmake" -j "$jobs" --target mosquitto libmosquitto
        ln -s cmake/src/mosquitto "$out/mosquitto"
        ln -s cmake/lib "$out/lib"
        ;;
    esac
}
if ! build >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "build-mosquitto: building $name failed (whole log: $log)" >&2
    exit 1
fi
"$out/mosquitto" -h 2>&1 | head -n 1 | grep -q "version $version" || {
    echo "build-mosquitto: $out/mosquitto does not report version $version" >&2
    exit 1
}
echo "$stamp_want" >"$out/stamp"
echo "build-mosquitto: $name built in $(($(date +%s) - start)) s"
