# The commands the README promises.  Each target installs what
# it needs first, so they work on a fresh Debian bookworm machine.

BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

# The compatibility matrix: Mosquitto builds the plugin's integration tests
# run against besides Debian's 2.0.11 (scripts/build-mosquitto.sh names:
# VERSION-make is built like the official image, VERSION-cmake with
# upstream's CMake), built once by `make test` and kept in $(BUILD)/mosquitto.
MOSQUITTO_MATRIX ?= 2.0.21-make 2.1.2-make 2.1.2-cmake
MOSQUITTO_CACHE = $(abspath $(BUILD))/mosquitto
MATRIX_FLAGS = -DAIMDB_MOSQUITTO_MATRIX="$(MOSQUITTO_MATRIX)" -DAIMDB_MOSQUITTO_CACHE=$(MOSQUITTO_CACHE)

.PHONY: all deps web build build-asan brokers test test-normal test-asan run bench fuzz clean

all: build

# `make build` installs what building needs, `make brokers` also what
# building Mosquitto needs (the container image builds both); any other goal
# (test, run, demo, bench, fuzz, build-asan) runs something and installs the
# rest.  From the goals, not per target: make runs `deps` once, for
# whichever goal reaches it first (`make build test` must install for the
# tests).
DEPS = $(if $(filter-out all build web clean brokers,$(MAKECMDGOALS)),all,$(if \
         $(filter brokers,$(MAKECMDGOALS)),broker,build))

deps:
	@scripts/install-deps.sh $(DEPS)

# The dashboard: `npm ci` only when the lock file is newer than the last
# install (npm writes node_modules/.package-lock.json), then web/src is
# bundled into web/dist, the folder Mosquitto serves (conf/mosquitto.conf).
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund

web: deps web/node_modules/.package-lock.json
	node web/build.mjs

build: deps web
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(MATRIX_FLAGS) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps web
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DAIMDB_SANITIZE=ON $(MATRIX_FLAGS) $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# The matrix's brokers (nothing to do once built: the script checks its stamp).
brokers: deps
	@for m in $(MOSQUITTO_MATRIX); do \
	  JOBS=$(JOBS) scripts/build-mosquitto.sh $(MOSQUITTO_CACHE) $$m || exit 1; done

# The whole suite twice: a normal build, then ASan + UBSan; each runs the
# plugin's integration tests against every broker of the matrix.
test: test-normal test-asan

test-normal: build brokers
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan brokers
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# conf/mosquitto.conf's two listeners, free before a broker is started on
# them: a second `make run` (or `make demo`) stops here, naming the port.
# (Started anyway, it would be refused by the first one's database lock.)
RUN_PORTS = 1883 8080
.PHONY: ports-free
ports-free:
	@for port in $(RUN_PORTS); do \
	  if bash -c "exec 3<>/dev/tcp/127.0.0.1/$$port" 2>/dev/null; then \
	    echo "make: 127.0.0.1:$$port is in use (another make run or make demo, or another broker): stop it first" >&2; \
	    exit 1; \
	  fi; \
	done

run: build ports-free
	mkdir -p data
	@echo "aimdb: mosquitto with the AimDB plugin on localhost:1883, history in ./data/"
	@echo "aimdb: dashboard at http://127.0.0.1:8080/"
	mosquitto -c conf/mosquitto.conf

# `make run` with data in it (issue 7): the same broker in the background,
# aimdb-mcu-sim publishing DEMO_BURST rounds at once (history for the
# dashboard's charts), then live values until Ctrl-C.  The broker runs in
# its own session, so Ctrl-C reaches the simulator first (it disconnects
# cleanly); the trap then stops the broker on every way out (Ctrl-C, kill,
# an error), so none is left behind.
DEMO_CITIES ?= 6
DEMO_BURST  ?= 24
DEMO_RATE   ?= 6
DEMO_LOG    ?= data/demo-mosquitto.log

.PHONY: demo
demo: build ports-free
	@mkdir -p data
	@setsid mosquitto -c conf/mosquitto.conf >$(DEMO_LOG) 2>&1 & broker=$$!; \
	stop_broker() { \
	  kill $$broker 2>/dev/null || return 0; \
	  for i in $$(seq 50); do kill -0 $$broker 2>/dev/null || return 0; sleep 0.1; done; \
	  kill -9 $$broker 2>/dev/null; \
	}; \
	trap stop_broker EXIT; trap 'exit 130' INT TERM; \
	ready=no; for i in $$(seq 50); do \
	  kill -0 $$broker 2>/dev/null || break; \
	  if $(BUILD)/aimdb --timeout 1s list >/dev/null 2>&1; then ready=yes; break; fi; \
	  sleep 0.2; \
	done; \
	if [ $$ready != yes ] || ! kill -0 $$broker 2>/dev/null; then \
	  echo "make demo: mosquitto did not come up with the AimDB plugin (is port 1883 or 8080 taken?); its log, $(DEMO_LOG):" >&2; \
	  cat $(DEMO_LOG) >&2; exit 1; \
	fi; \
	echo "aimdb demo: mosquitto with AimDB on localhost:1883 (log: $(DEMO_LOG)), history in ./data/"; \
	echo "aimdb demo: dashboard at http://127.0.0.1:8080/  (or: $(BUILD)/aimdb query 'accuracy::*')"; \
	echo "aimdb demo: Ctrl-C stops the simulator and the broker"; \
	$(BUILD)/aimdb-mcu-sim --city-count $(DEMO_CITIES) --burst $(DEMO_BURST) --rate $(DEMO_RATE)

# Every benchmark in bench/ (each prints its own ratios against a baseline).
bench: build
	@set -e; for b in $(BUILD)/bench_*; do \
	  [ -x "$$b" ] || continue; echo "== $$(basename $$b)"; "$$b"; done

# A long run of each fuzzer in turn (clang + libFuzzer, ASan + UBSan):
# AimX requests, MQTT payloads, then aimdb.conf.  FUZZ_TIME is each one's.
FUZZ_RUNS ?= 10000000
FUZZ_TIME ?= 3600
FUZZERS = aimx_fuzz:aimx:aimx.dict mqtt_payload_fuzz:payload:payload.dict conf_fuzz:conf:conf.dict

fuzz: build
	@test -x $(BUILD)/aimx_fuzz || { echo "make fuzz: needs clang with libFuzzer (clang, libclang-rt-14-dev)"; exit 1; }
	@set -e; for f in $(FUZZERS); do \
	  name=$${f%%:*}; rest=$${f#*:}; seeds=$${rest%%:*}; dict=$${rest#*:}; \
	  mkdir -p $(BUILD)/fuzz-corpus/$$name $(BUILD)/fuzz-artifacts; echo "== $$name"; \
	  $(BUILD)/$$name -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	    -dict=fuzz/$$dict -artifact_prefix=$(BUILD)/fuzz-artifacts/$$name- -print_final_stats=1 \
	    $(BUILD)/fuzz-corpus/$$name fuzz/corpus/$$seeds; done

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) web/dist
