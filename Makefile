# Thin front for CMake.  `make` builds build/axon, build/libaxon.{a,so} and
# build/examples/*; `make test` runs the whole suite on every backend.
MAKEFLAGS += --no-print-directory
BUILD   ?= build
SANDIR  ?= build-san
TSANDIR ?= build-tsan
FUZZDIR ?= build-fuzz
JOBS    ?= $(shell nproc)
PREFIX  ?= /usr/local
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 20

.PHONY: all deps run test san tsan fuzz fuzz-smoke bench install format format-check clean

all: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh build

# The hub with its embedded defaults: HTTP (API, SSE, pages, metrics) on
# 127.0.0.1:8080, line chat on 7000, UDP on 7001, history in ./axon-data
# (RUN_ARGS: more `axon serve` options).  The build is quiet: its output
# goes to $(BUILD)/build.log, and only what is not progress (warnings,
# errors) is shown, so the hub's addresses are the last thing on the screen.
RUN_ARGS ?=
PROGRESS = ^\[ *[0-9]+%\]|^-- |^Consolidate compiler|^Scanning dependencies|^g?make(\[[0-9]+\])?: |^\s*$$
run: deps
	@mkdir -p $(BUILD)
	@echo "axon: building in $(BUILD)/ (log: $(BUILD)/build.log)"
	@{ cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) && \
	  cmake --build $(BUILD) -j $(JOBS); } >$(BUILD)/build.log 2>&1; st=$$?; \
	  grep -vE '$(PROGRESS)' $(BUILD)/build.log; \
	  [ $$st -eq 0 ] || { echo "axon: the build failed (log: $(BUILD)/build.log)"; exit 1; }
	@exec $(BUILD)/axon serve $(RUN_ARGS)

test: all
	@scripts/deps.sh test fuzz
	@$(MAKE) --no-print-directory windows-maybe
	@cd $(BUILD) && $(CURDIR)/scripts/ctest-twice.sh
	@$(MAKE) --no-print-directory fuzz-smoke

san:
	@scripts/deps.sh build test
	@cmake -S . -B $(SANDIR) -DAXON_SANITIZE=ON -DAXON_WERROR=ON >/dev/null
	@cmake --build $(SANDIR) -j $(JOBS)
	@cd $(SANDIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CURDIR)/scripts/ctest-twice.sh

# ThreadSanitizer: the hub under --threads 4 with clients publishing from
# every thread (tests/integration/test_serve_threads.py), on the epoll and
# io_uring backends.
# CI runs it after `make san`; only the axon binary is built with TSan (the
# whole suite under it would take several times the CI budget).
tsan:
	@scripts/deps.sh build test
	@cmake -S . -B $(TSANDIR) -DAXON_TSAN=ON >/dev/null
	@cmake --build $(TSANDIR) -j $(JOBS) --target axon
	@for b in epoll uring; do \
	  AXON_BACKEND=$$b TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	    /usr/bin/python3 tests/integration/test_serve_threads.py $(TSANDIR) || exit 1; \
	done

fuzz:
	@scripts/deps.sh build fuzz
	@CC=clang cmake -S . -B $(FUZZDIR) -DAXON_FUZZ=ON >/dev/null
	@cmake --build $(FUZZDIR) -j $(JOBS) --target fuzzers

# A short libFuzzer run of every target over its committed corpus.
fuzz-smoke: fuzz
	@scripts/fuzz-smoke.sh $(FUZZDIR) $(FUZZ_SECONDS) $(JOBS)

bench: all
	@scripts/deps.sh bench
	@bench/run-all.sh

install: all
	@cmake --install $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	@rm -rf $(BUILD) $(SANDIR) $(FUZZDIR)

# Windows: a MinGW-w64 cross build in $(WINDIR)/ (libaxon.a, libaxon.dll,
# axon.exe, the examples, axon_unit.exe); tests/integration/test_windows.py
# runs it under Wine.  `make test` builds it when MinGW-w64 and Wine can be
# installed, and says why not otherwise.
WINDIR ?= build-win
.PHONY: windows windows-maybe
windows:
	@scripts/deps.sh windows
	@cmake -S . -B $(WINDIR) -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake >/dev/null
	@cmake --build $(WINDIR) -j $(JOBS)

windows-maybe:
	@if scripts/deps.sh windows; then $(MAKE) --no-print-directory windows; else \
	  echo "axon: skipping the Windows build and its Wine tests: MinGW-w64 and Wine could not be installed"; fi
