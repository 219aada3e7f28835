# The commands the README promises (contract C.5).  Each target installs what
# it needs first, so they work on a fresh Debian bookworm machine.

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps web build build-asan test test-normal test-asan run bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

# The dashboard: `npm ci` only when the lock file is newer than the last
# install (npm writes node_modules/.package-lock.json), then web/src is
# bundled into web/dist, the folder Mosquitto serves (conf/mosquitto.conf).
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund

web: deps web/node_modules/.package-lock.json
	node web/build.mjs

build: deps web
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps web
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DAIMDB_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# The whole suite twice: a normal build, then ASan + UBSan.
test: test-normal test-asan

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

run: build
	mkdir -p data
	@echo "aimdb: mosquitto with the AimDB plugin on localhost:1883, history in ./data/"
	@echo "aimdb: dashboard at http://127.0.0.1:8080/"
	mosquitto -c conf/mosquitto.conf

# Every benchmark in bench/ (each prints its own ratios against a baseline).
bench: build
	@set -e; for b in $(BUILD)/bench_*; do \
	  [ -x "$$b" ] || continue; echo "== $$(basename $$b)"; "$$b"; done

# A long run of the AimX request fuzzer (clang + libFuzzer, ASan + UBSan).
FUZZ_RUNS ?= 10000000
FUZZ_TIME ?= 3600

fuzz: build
	@test -x $(BUILD)/aimx_fuzz || { echo "make fuzz: needs clang with libFuzzer (clang, libclang-rt-14-dev)"; exit 1; }
	mkdir -p $(BUILD)/fuzz-corpus $(BUILD)/fuzz-artifacts
	$(BUILD)/aimx_fuzz -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	  -dict=fuzz/aimx.dict -artifact_prefix=$(BUILD)/fuzz-artifacts/ -print_final_stats=1 \
	  $(BUILD)/fuzz-corpus fuzz/corpus/aimx

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) web/dist
