# littlehorse-client for Lua: one entry point for every task.
#   make demo    build, start the dev server, post a real event, print it
#   make test    every check CI runs (installs missing Debian packages first)
#   make check   the quick loop: build, then every spec under Lua 5.4 (no apt, no extra suites)
#   make test-load   the same with every core kept busy by CPU hogs (scripts/with-load.sh)
#   make proto   regenerate src/gen/ from proto/ (committed; `make proto-check` fails when stale)

LUA_VERSION ?= 5.4
ROCKSPEC    := littlehorse-client-0.1.0-1.rockspec
TREE        := $(CURDIR)/lua_modules
BUILD       := $(CURDIR)/build
CC          ?= cc
CFLAGS      ?= -O2 -g
# -Wno-missing-braces: protoc-c initialises a oneof holding bytes with {0}
WARN        := -Wall -Wextra -Wno-unused-parameter -Wno-missing-braces
PROTO_FILES := $(shell cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
GEN_SRC     := $(patsubst %.proto,src/gen/%.pb-c.c,$(PROTO_FILES))
DEV_SRC     := $(wildcard devserver/*.c)
DEV_HDR     := $(wildcard devserver/*.h)
GRPC_LIBS   := -lgrpc -lgpr -lprotobuf-c -lpthread

.PHONY: all deps build devserver proto proto-check check test test-load demo bench bench-instructions fuzz soak clean

all: build devserver

# Debian packages the build and the tests need; installs only what is missing.
deps:
	@sh scripts/deps.sh

build: $(TREE)/lib/lua/$(LUA_VERSION)/littlehorse/core.so

$(TREE)/lib/lua/$(LUA_VERSION)/littlehorse/core.so: $(ROCKSPEC) $(wildcard src/*.c src/*.h lua/littlehorse/*.lua) $(GEN_SRC)
	@mkdir -p $(BUILD)
	luarocks --lua-version=$(LUA_VERSION) --tree $(TREE) make $(ROCKSPEC) CFLAGS="$(CFLAGS) -fPIC $(WARN)" >$(BUILD)/luarocks.log 2>&1 \
	  || { cat $(BUILD)/luarocks.log; exit 1; }
	@rm -rf src/*.o src/gen/*.o src/gen/google/*/*.o littlehorse
	@touch $@

devserver: $(BUILD)/lh-devserver

$(BUILD)/lh-devserver: $(DEV_SRC) $(DEV_HDR) src/status_names.h $(GEN_SRC)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -Isrc/gen -o $@ $(DEV_SRC) $(GEN_SRC) $(GRPC_LIBS)

proto:
	rm -rf src/gen && mkdir -p src/gen
	cd proto && protoc-c -I. --c_out=../src/gen $(PROTO_FILES)

proto-check:
	@rm -rf $(BUILD)/gen-check && mkdir -p $(BUILD)/gen-check
	@cd proto && protoc-c -I. --c_out=$(BUILD)/gen-check $(PROTO_FILES)
	@diff -r $(BUILD)/gen-check src/gen >/dev/null \
	  || { echo "src/gen is stale: run 'make proto' and commit the result"; diff -r $(BUILD)/gen-check src/gen | head -20; exit 1; }
	@echo "proto-check: src/gen matches proto/"

# The contributors' loop: the build, the dev server and busted under Lua 5.4 over spec/.
# Installs nothing and runs none of the extra suites (sanitizers, valgrind, GC, other Luas,
# nginx, fuzzing): `make test` is the full gate.
check: build devserver
	busted

test: deps proto-check build devserver
	sh scripts/test.sh

# Busy CI: the whole suite while one CPU hog per core runs (stopped by PID however it ends).
test-load: deps proto-check build devserver
	sh scripts/with-load.sh sh scripts/test.sh

demo: deps build devserver
	sh scripts/demo.sh

# Benchmarks (not tests): prints a table with ratios against baselines measured in the same run.
bench: deps build devserver
	sh bench/run.sh

# Instructions per call (callgrind), ours against the two C clients' (not decoding / decoding
# the reply), with the gates `make bench` also checks: noise-free, for work on the binding's
# overhead.
bench-instructions: deps build devserver
	sh bench/instructions.sh

# Long fuzzing runs (a short run of each target is part of `make test`).
fuzz: deps build
	sh scripts/fuzz.sh long

# One hour of mixed calls against a dev server failing 10% of replies; RSS and fds sampled.
soak: deps build devserver
	sh scripts/soak.sh

clean:
	rm -rf $(BUILD) $(TREE) src/*.o src/gen/*.o littlehorse
